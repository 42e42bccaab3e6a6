//! `rolegate jobs create|list|show|wait|cancel` and `rolegate keypair create`: jobs in an
//! organisation's AWS account. Job JSON goes to stdout; progress goes to stderr (one
//! updating line on a terminal, plain lines otherwise). A private key goes only to stdout
//! or to a 0600 file, never to stderr or an argument.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::args::ConnectionArgs;
use super::http::{ApiClient, ClientError};
use super::settings::Env;

/// How often `wait` looks at the job.
const POLL: Duration = Duration::from_millis(500);

/// `rolegate jobs …`.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Start a job (prints it; `--wait` follows it to its end).
    #[command(
        after_help = "Examples:\n  rolegate jobs create --org acme-corp --kind keypair.delete --access-level operator --spec '{\"name\":\"old\"}' --wait"
    )]
    Create(CreateArgs),
    /// List an organisation's jobs.
    #[command(
        after_help = "Examples:\n  rolegate jobs list --org acme-corp --state failed --kind keypair.create"
    )]
    List(ListArgs),
    /// Print a job.
    #[command(after_help = "Examples:\n  rolegate jobs show j0190f3c2a1b4e5d6c7b8a9f0e1d2c")]
    Show(IdArgs),
    /// Follow a job to its end; exits 1 if it failed or was cancelled.
    #[command(
        after_help = "Examples:\n  rolegate jobs wait j0190f3c2a1b4e5d6c7b8a9f0e1d2c && echo done"
    )]
    Wait(IdArgs),
    /// Cancel a job that has not called AWS yet (or a stack update: it rolls back).
    #[command(after_help = "Examples:\n  rolegate jobs cancel j0190f3c2a1b4e5d6c7b8a9f0e1d2c")]
    Cancel(IdArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[arg(long, value_name = "ORG")]
    pub org: String,
    /// keypair.create, keypair.import, keypair.delete, stack.apply, stack.delete,
    /// stack.inspect or inventory.
    #[arg(long, value_name = "KIND")]
    pub kind: String,
    /// The kind's spec as JSON, e.g. '{"name":"deploy","public_key":"ssh-ed25519 AAAA…"}'.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub spec: String,
    #[arg(long, value_name = "LEVEL")]
    pub access_level: Option<String>,
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Makes a retry of this very command safe [default: a fresh one].
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Follow the job to its end.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[arg(long, value_name = "ORG")]
    pub org: String,
    #[arg(long, value_name = "STATE")]
    pub state: Option<String>,
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The job's id.
    pub id: String,
}

/// `rolegate keypair …`.
#[derive(Debug, Subcommand)]
pub enum KeypairCommand {
    /// Create a key pair in the organisation's account, wait, and fetch its private key
    /// (once). Prefer `jobs create --kind keypair.import`: the private key then never
    /// leaves your machine.
    #[command(
        after_help = "Examples:\n  rolegate keypair create --org acme-corp --name deploy --out deploy.pem\n  rolegate keypair create --org acme-corp --name legacy --type rsa > legacy.pem"
    )]
    Create(KeypairCreateArgs),
}

#[derive(Debug, Args)]
pub struct KeypairCreateArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[arg(long, value_name = "ORG")]
    pub org: String,
    /// The key pair's name in EC2.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    #[arg(long = "type", value_name = "TYPE", default_value = "ed25519", value_parser = ["ed25519", "rsa"])]
    pub key_type: String,
    #[arg(long, value_name = "LEVEL", default_value = "operator")]
    pub access_level: String,
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Write the private key to this file (mode 0600, must not exist) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

impl ApiClient {
    pub(super) async fn job_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, ClientError> {
        let url = self.url(path)?;
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(k) = idempotency_key {
            req = req.header("idempotency-key", k);
        }
        self.send(req).await
    }
}

pub(super) fn print_json(v: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string_pretty(v)?)?;
    out.flush()?;
    Ok(())
}

pub(super) fn connect(connection: &ConnectionArgs, env: Env<'_>) -> anyhow::Result<ApiClient> {
    let settings = super::settings::resolve(connection, env)?;
    Ok(ApiClient::new(settings)?)
}

/// A line for people about where a job is.
fn describe(job: &Value) -> String {
    let current = job["steps"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|s| s["state"] == "running")
                .or_else(|| s.iter().find(|s| s["state"] == "pending"))
                .or(s.last())
        })
        .and_then(|s| s["name"].as_str())
        .unwrap_or("");
    format!(
        "{} {} {:>3}% {} {}",
        job["id"].as_str().unwrap_or(""),
        job["kind"].as_str().unwrap_or(""),
        job["progress"].as_u64().unwrap_or(0),
        job["state"].as_str().unwrap_or(""),
        current
    )
}

/// Follows the job to its end, showing progress on stderr (an `indicatif` bar with the
/// current step on a terminal, a plain line per change otherwise); returns the final job.
pub(super) async fn follow(client: &ApiClient, id: &str) -> anyhow::Result<Value> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(100);
        // The template is a constant; should it ever not parse, the default style is used.
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos:>3}% {msg}")
        {
            bar.set_style(style.progress_chars("#>-"));
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let mut last = String::new();
    loop {
        let job = client
            .job_call(reqwest::Method::GET, &format!("api/jobs/{id}"), None, None)
            .await?;
        let line = describe(&job);
        if line != last {
            match &bar {
                Some(bar) => {
                    bar.set_position(job["progress"].as_u64().unwrap_or(0));
                    bar.set_message(line.clone());
                }
                None => {
                    let mut err = std::io::stderr().lock();
                    writeln!(err, "{line}")?;
                }
            }
            last = line;
        }
        if matches!(
            job["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            if let Some(bar) = &bar {
                bar.finish();
            }
            return Ok(job);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The job's end as the exit status: failed and cancelled are errors.
pub(super) fn outcome(job: &Value) -> anyhow::Result<()> {
    match job["state"].as_str() {
        Some("succeeded") => Ok(()),
        Some("failed") => {
            let e = &job["error"];
            bail!(
                "job {} failed at {}: {}: {}{}",
                job["id"].as_str().unwrap_or(""),
                e["step"].as_str().unwrap_or("?"),
                e["code"].as_str().unwrap_or("?"),
                e["message"].as_str().unwrap_or(""),
                e["aws_code"]
                    .as_str()
                    .map(|c| format!(" (AWS {c})"))
                    .unwrap_or_default()
            )
        }
        other => bail!(
            "job {} ended {}",
            job["id"].as_str().unwrap_or(""),
            other.unwrap_or("?")
        ),
    }
}

fn check_id(id: &str) -> anyhow::Result<()> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        bail!("not a job id: {id:?}");
    }
    Ok(())
}

/// `rolegate jobs …`.
pub async fn jobs(cmd: &JobsCommand, env: Env<'_>) -> anyhow::Result<()> {
    match cmd {
        JobsCommand::Create(a) => {
            let client = connect(&a.connection, env)?;
            let spec: Value = serde_json::from_str(&a.spec).context("--spec is not JSON")?;
            let body = json!({"kind": a.kind, "spec": spec, "access_level": a.access_level, "reason": a.reason});
            let key = a
                .idempotency_key
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let path = format!("api/orgs/{}/jobs", urlencode(&a.org));
            let job = client
                .job_call(reqwest::Method::POST, &path, Some(&body), Some(&key))
                .await?;
            if !a.wait {
                return print_json(&job);
            }
            let id = job["id"].as_str().unwrap_or_default().to_owned();
            let done = follow(&client, &id).await?;
            print_json(&done)?;
            outcome(&done)
        }
        JobsCommand::List(a) => {
            let client = connect(&a.connection, env)?;
            let mut path = format!("api/orgs/{}/jobs?limit=500", urlencode(&a.org));
            for (k, v) in [("state", &a.state), ("kind", &a.kind)] {
                if let Some(v) = v {
                    path.push_str(&format!("&{k}={}", urlencode(v)));
                }
            }
            print_json(
                &client
                    .job_call(reqwest::Method::GET, &path, None, None)
                    .await?,
            )
        }
        JobsCommand::Show(a) => {
            check_id(&a.id)?;
            let client = connect(&a.connection, env)?;
            print_json(
                &client
                    .job_call(
                        reqwest::Method::GET,
                        &format!("api/jobs/{}", a.id),
                        None,
                        None,
                    )
                    .await?,
            )
        }
        JobsCommand::Wait(a) => {
            check_id(&a.id)?;
            let client = connect(&a.connection, env)?;
            let done = follow(&client, &a.id).await?;
            print_json(&done)?;
            outcome(&done)
        }
        JobsCommand::Cancel(a) => {
            check_id(&a.id)?;
            let client = connect(&a.connection, env)?;
            let path = format!("api/jobs/{}/cancel", a.id);
            print_json(
                &client
                    .job_call(reqwest::Method::POST, &path, None, None)
                    .await?,
            )
        }
    }
}

/// `rolegate keypair create`.
pub async fn keypair(cmd: &KeypairCommand, env: Env<'_>) -> anyhow::Result<()> {
    let KeypairCommand::Create(a) = cmd;
    if let Some(out) = &a.out
        && out.exists()
    {
        bail!("{} exists; refusing to overwrite a key file", out.display());
    }
    let client = connect(&a.connection, env)?;
    let body = json!({"kind": "keypair.create", "spec": {"name": a.name, "type": a.key_type},
                      "access_level": a.access_level, "reason": a.reason});
    let key = uuid::Uuid::new_v4().to_string();
    let path = format!("api/orgs/{}/jobs", urlencode(&a.org));
    let job = client
        .job_call(reqwest::Method::POST, &path, Some(&body), Some(&key))
        .await?;
    let id = job["id"].as_str().unwrap_or_default().to_owned();
    let done = follow(&client, &id).await?;
    outcome(&done)?;
    let secret = client
        .job_call(
            reqwest::Method::GET,
            &format!("api/jobs/{id}/secret"),
            None,
            None,
        )
        .await?;
    let pem = secret["private_key"]
        .as_str()
        .context("the server sent no private key")?;
    match &a.out {
        Some(out) => {
            super::atomic::write_private(out, pem.as_bytes())
                .with_context(|| format!("cannot write {}", out.display()))?;
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "rolegate: wrote the private key of {} to {} (mode 0600)",
                    a.name,
                    out.display()
                );
            }
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(pem.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(())
}

/// Percent-encodes a path or query part.
pub(super) fn urlencode(s: &str) -> String {
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
