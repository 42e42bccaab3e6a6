//! `rolegate stack apply|delete|inspect` and `rolegate inventory`: stack and inventory jobs
//! in an organisation's AWS account, through `POST /api/orgs/{org}/jobs`. The job (and, at
//! its end, its result) goes to stdout; progress to stderr.

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::args::ConnectionArgs;
use super::jobs::{connect, follow, outcome, print_json, urlencode};
use super::settings::Env;

/// `rolegate stack …`.
#[derive(Debug, Subcommand)]
pub enum StackCommand {
    /// Create or update the stack `rolegate-<org>-<name>` from a blueprint (vpc, ec2, rds,
    /// workload); `--wait` follows it and prints its outputs.
    #[command(
        after_help = "Examples:\n  rolegate stack apply --org acme-corp --blueprint ec2 --name web \\\n      --param VpcId=vpc-0abc… --param SubnetId=subnet-0def… --param SshCidr=203.0.113.7/32 --wait\n  rolegate stack apply --org acme-corp --blueprint workload --name shop --param SshCidr=203.0.113.7/32 --wait"
    )]
    Apply(ApplyArgs),
    /// Delete the stack and wait for it to go (with `--wait`).
    #[command(after_help = "Examples:\n  rolegate stack delete --org acme-corp --name web --wait")]
    Delete(NameArgs),
    /// Report the stack's status, outputs, last events and resources.
    #[command(after_help = "Examples:\n  rolegate stack inspect --org acme-corp --name web")]
    Inspect(NameArgs),
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// vpc, ec2, rds or workload.
    #[arg(long, value_name = "BLUEPRINT")]
    pub blueprint: String,
    /// The stack's short name (the stack is `rolegate-<org>-<name>`).
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// A blueprint parameter, `Name=value`; repeat for more.
    #[arg(long = "param", value_name = "K=V")]
    pub params: Vec<String>,
    /// Delete and recreate a stack whose creation failed (ROLLBACK_COMPLETE).
    #[arg(long)]
    pub replace_failed: bool,
}

#[derive(Debug, Args)]
pub struct NameArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// The stack's short name.
    #[arg(long, value_name = "NAME")]
    pub name: String,
}

/// What every job command takes.
#[derive(Debug, Args)]
pub struct JobArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[arg(long, value_name = "ORG")]
    pub org: String,
    #[arg(long, value_name = "LEVEL")]
    pub access_level: Option<String>,
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Follow the job to its end (a progress bar on a terminal); exits 1 if it failed or
    /// was cancelled.
    #[arg(long)]
    pub wait: bool,
}

/// `rolegate inventory`.
#[derive(Debug, Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    pub job: JobArgs,
}

/// `--param K=V …` as a JSON object.
fn params(raw: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut out = Map::new();
    for p in raw {
        let Some((k, v)) = p.split_once('=') else {
            bail!("--param {p:?} is not Name=value");
        };
        if k.is_empty() {
            bail!("--param {p:?} has no name");
        }
        if out.insert(k.to_owned(), Value::from(v)).is_some() {
            bail!("--param {k} is given twice");
        }
    }
    Ok(out)
}

/// Starts the job and, with `--wait`, follows it and prints the final job.
async fn run(a: &JobArgs, kind: &str, spec: Value, env: Env<'_>) -> anyhow::Result<()> {
    let client = connect(&a.connection, env)?;
    let body =
        json!({"kind": kind, "spec": spec, "access_level": a.access_level, "reason": a.reason});
    let key = uuid::Uuid::new_v4().to_string();
    let path = format!("api/orgs/{}/jobs", urlencode(&a.org));
    let job = client
        .job_call(reqwest::Method::POST, &path, Some(&body), Some(&key))
        .await?;
    // `inspect` and `inventory` are only useful with their result: they always wait.
    if !a.wait && !matches!(kind, "stack.inspect" | "inventory") {
        return print_json(&job);
    }
    let id = job["id"]
        .as_str()
        .context("the server sent a job without an id")?;
    let done = follow(&client, id).await?;
    print_json(&done)?;
    outcome(&done)
}

/// `rolegate stack …`.
pub async fn stack(cmd: &StackCommand, env: Env<'_>) -> anyhow::Result<()> {
    match cmd {
        StackCommand::Apply(a) => {
            let spec = json!({"blueprint": a.blueprint, "name": a.name,
                              "parameters": params(&a.params)?, "replace_failed": a.replace_failed});
            run(&a.job, "stack.apply", spec, env).await
        }
        StackCommand::Delete(a) => run(&a.job, "stack.delete", json!({"name": a.name}), env).await,
        StackCommand::Inspect(a) => {
            run(&a.job, "stack.inspect", json!({"name": a.name}), env).await
        }
    }
}

/// `rolegate inventory`.
pub async fn inventory(a: &InventoryArgs, env: Env<'_>) -> anyhow::Result<()> {
    run(&a.job, "inventory", json!({}), env).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn params_are_name_value_pairs() {
        let p = params(&["A=1".into(), "B=x=y".into(), "C=".into()]).unwrap();
        assert_eq!(Value::Object(p), json!({"A": "1", "B": "x=y", "C": ""}));
        assert!(params(&["A".into()]).is_err());
        assert!(params(&["=1".into()]).is_err());
        assert!(params(&["A=1".into(), "A=2".into()]).is_err());
    }
}
