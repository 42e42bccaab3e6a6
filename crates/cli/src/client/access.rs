//! `rolegate request|approve|deny|revoke|requests`: just-in-time access from the command
//! line. Request JSON goes to stdout; `request --wait` reports on stderr while it waits.

use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Value, json};

use super::args::ConnectionArgs;
use super::http::{ApiClient, ClientError};
use super::settings::Env;

/// How often `request --wait` looks at the request.
const POLL: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
pub struct RequestArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[arg(long, value_name = "ORG")]
    pub org: String,
    /// An access level that needs approval on the org.
    #[arg(long, value_name = "LEVEL")]
    pub level: String,
    /// How long the grant lasts: seconds, or with a unit (90m, 2h, 1d).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: u64,
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    #[arg(long, value_name = "REF")]
    pub ticket: Option<String>,
    /// Take the grant at once where the level's rule allows it (reason required; audited
    /// and flagged for review).
    #[arg(long)]
    pub break_glass: bool,
    /// Wait until the request is decided; exits 1 unless it became a grant.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct DecideArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The request's id.
    pub id: String,
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
}

#[derive(Debug, Args)]
pub struct RequestsArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Only your own requests.
    #[arg(long)]
    pub mine: bool,
    #[arg(long, value_name = "STATE")]
    pub state: Option<String>,
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
    /// Only break-glass grants nobody has reviewed yet (for `rolegate review`).
    #[arg(long)]
    pub needs_review: bool,
}

#[derive(Debug, Args)]
pub struct ReviewArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The break-glass grant's id.
    pub id: String,
    /// What the review found (required; at most 512 characters).
    #[arg(long, value_name = "TEXT")]
    pub comment: String,
}

/// `90`, `90s`, `15m`, `2h`, `1d` → seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 3600, 90m or 2h"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: the unit must be s, m, h or d")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too long"))
}

impl ApiClient {
    async fn access_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let url = self.url(path)?;
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req).await
    }
}

fn connect(connection: &ConnectionArgs, env: Env<'_>) -> anyhow::Result<ApiClient> {
    let settings = super::settings::resolve(connection, env)?;
    Ok(ApiClient::new(settings)?)
}

fn print_json(v: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string_pretty(v)?)?;
    out.flush()?;
    Ok(())
}

fn check_id(id: &str) -> anyhow::Result<()> {
    if id.len() != 29
        || !id.starts_with('a')
        || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'a')
    {
        bail!("not an access request id: {id:?}");
    }
    Ok(())
}

fn query(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `rolegate request`.
pub async fn request(a: &RequestArgs, env: Env<'_>) -> anyhow::Result<()> {
    let client = connect(&a.connection, env)?;
    let body = json!({
        "org_name": a.org, "access_level": a.level, "duration_secs": a.duration,
        "reason": a.reason, "ticket": a.ticket, "break_glass": a.break_glass,
    });
    let mut rec = client
        .access_call(reqwest::Method::POST, "api/access-requests", Some(&body))
        .await?;
    if a.wait {
        let id = rec["id"].as_str().unwrap_or_default().to_owned();
        writeln!(
            std::io::stderr(),
            "request {id} is {}; waiting for approval…",
            rec["state"].as_str().unwrap_or("?")
        )?;
        while rec["state"] == "pending" {
            tokio::time::sleep(POLL).await;
            rec = client
                .access_call(
                    reqwest::Method::GET,
                    &format!("api/access-requests/{id}"),
                    None,
                )
                .await?;
        }
    }
    print_json(&rec)?;
    if a.wait && !matches!(rec["state"].as_str(), Some("approved" | "active")) {
        bail!(
            "request {} ended {}",
            rec["id"].as_str().unwrap_or(""),
            rec["state"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

/// `rolegate approve|deny|revoke|review ID`.
pub async fn decide(a: &DecideArgs, what: &str, env: Env<'_>) -> anyhow::Result<()> {
    post_decision(&a.connection, &a.id, a.comment.as_deref(), what, env).await
}

/// `POST /api/access-requests/{id}/{what}` with the comment; prints the record.
async fn post_decision(
    connection: &ConnectionArgs,
    id: &str,
    comment: Option<&str>,
    what: &str,
    env: Env<'_>,
) -> anyhow::Result<()> {
    check_id(id)?;
    let client = connect(connection, env)?;
    let rec = client
        .access_call(
            reqwest::Method::POST,
            &format!("api/access-requests/{id}/{what}"),
            Some(&json!({"comment": comment})),
        )
        .await
        .with_context(|| format!("cannot {what} {id}"))?;
    print_json(&rec)
}

/// `rolegate review ID --comment TEXT`.
pub async fn review(a: &ReviewArgs, env: Env<'_>) -> anyhow::Result<()> {
    post_decision(&a.connection, &a.id, Some(&a.comment), "review", env).await
}

/// `rolegate requests`.
pub async fn requests(a: &RequestsArgs, env: Env<'_>) -> anyhow::Result<()> {
    let client = connect(&a.connection, env)?;
    let mut path = format!("api/access-requests?limit=500&mine={}", a.mine);
    if a.needs_review {
        path.push_str("&needs_review=true");
    }
    for (k, v) in [("state", &a.state), ("org", &a.org)] {
        if let Some(v) = v {
            path.push_str(&format!("&{k}={}", query(v)));
        }
    }
    print_json(
        &client
            .access_call(reqwest::Method::GET, &path, None)
            .await?,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("90m"), Ok(5400));
        assert_eq!(parse_duration("900"), Ok(900));
        assert_eq!(parse_duration("1d"), Ok(86_400));
        assert!(parse_duration("2w").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
