//! `rolegate access-history --org X [--after C] [--follow]`: the org's access history as
//! JSON lines on stdout (one event per line, for a SIEM), read through the export endpoint
//! page by page. The cursor to resume from goes to stderr at the end (and with `--follow`
//! after every page that moved it), so `> file.jsonl` keeps only events.

use std::io::Write as _;
use std::time::Duration;

use anyhow::bail;
use clap::Args;

use super::args::ConnectionArgs;
use super::http::ApiClient;
use super::settings::Env;

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[arg(long, value_name = "ORG")]
    pub org: String,
    /// Resume after this cursor (the `cursor` a previous run printed on stderr).
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<u64>,
    /// Only this action (credentials.issue, credentials.console, job.create, access.request,
    /// access.approve, access.customer_decision, …).
    #[arg(long, value_name = "ACTION")]
    pub action: Option<String>,
    /// Keep waiting for new events, polling every `--interval` seconds, until interrupted.
    #[arg(long)]
    pub follow: bool,
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub interval: u64,
}

fn org_ok(org: &str) -> bool {
    !org.is_empty()
        && org.len() <= 63
        && org
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Runs `rolegate access-history`.
pub async fn access_history(a: &HistoryArgs, env: Env<'_>) -> anyhow::Result<()> {
    if !org_ok(&a.org) {
        bail!("not an organisation name: {:?}", a.org);
    }
    if let Some(act) = &a.action
        && !act
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_')
    {
        bail!("not an action name: {act:?}");
    }
    let settings = super::settings::resolve(&a.connection, env)?;
    let client = ApiClient::new(settings)?;
    let mut cursor = a.after;
    loop {
        let mut path = format!("/api/orgs/{}/access-history/export?limit=1000", a.org);
        if let Some(c) = cursor {
            path.push_str(&format!("&after={c}"));
        }
        if let Some(act) = &a.action {
            path.push_str(&format!("&action={act}"));
        }
        let (body, headers) = client.get_raw(&path).await?;
        {
            let mut out = std::io::stdout().lock();
            out.write_all(&body)?;
            out.flush()?;
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let next = header("rolegate-cursor").and_then(|c| c.parse::<u64>().ok());
        let moved = next.is_some() && next != cursor;
        if next.is_some() {
            cursor = next;
        }
        if header("rolegate-more") == Some("true") {
            continue;
        }
        if !a.follow {
            break;
        }
        if moved && let Some(c) = cursor {
            note(&format!("cursor {c}"));
        }
        tokio::time::sleep(Duration::from_secs(a.interval.max(1))).await;
    }
    match cursor {
        Some(c) => note(&format!("cursor {c} (resume with --after {c})")),
        None => note("no events yet"),
    }
    Ok(())
}

/// A line on stderr (stdout holds only events). Never a secret: cursors are numbers.
fn note(message: &str) {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("rolegate: {message}");
    }
}
