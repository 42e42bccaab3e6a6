//! `rolegate bench-seed` (hidden from `--help`; used by `bench/run --scale`): fills a store
//! with organisations and audit events quickly, offline, through the real domain code. The
//! orgs are registered by `Services::register_orgs` (the records `POST /api/orgs` writes,
//! sealed by the Vault) and every event is appended through `Audit`, so the hash chain is
//! the one the service would have built; only the transactions are larger.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use rolegate_core::audit::AuditRecord;
use rolegate_core::ids::{OrgName, UserId};
use rolegate_core::keyspace;
use rolegate_core::orgs::RegisterOrgCommand;
use rolegate_core::ports::Txn;
use rolegate_core::{Caller, Principal, RequestContext, Services};
use secrecy::ExposeSecret as _;

/// What to seed.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Organisations to register, named `<PREFIX>-0000001`, ….
    #[arg(long, default_value_t = 100_000)]
    orgs: usize,
    /// Audit events to write in all: each org's `org.create`, then filler (failed logins and
    /// rejected callbacks, as the service records them) up to this count.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// The operator who owns the orgs; must exist (`rolegate admin token` creates `admin`).
    #[arg(long, default_value = "admin")]
    owner: String,
    /// Org name prefix (a letter first, then letters, digits or `-`).
    #[arg(long, default_value = "seed")]
    name_prefix: String,
    /// Write `<org> <api key>` lines for a sample of the orgs to this file (mode 0600).
    #[arg(long, value_name = "FILE")]
    keys_out: Option<PathBuf>,
    /// Write `<org> <callback secret>` lines for the same sample to this file (mode 0600),
    /// so the benchmark can validate those orgs through signed callbacks.
    #[arg(long, value_name = "FILE")]
    secrets_out: Option<PathBuf>,
    /// How many orgs' API keys to write, spread evenly over the seeded orgs.
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// Orgs or events per store transaction.
    #[arg(long, default_value_t = 2000)]
    batch: usize,
}

/// The filler events, in rotation: what the service appends, with no other write, for a
/// failed login or a rejected callback.
fn filler(i: usize, orgs: &[OrgName]) -> (RequestContext, AuditRecord) {
    let ip = format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
    let mut ctx = RequestContext {
        request_id: uuid::Uuid::new_v4().to_string(),
        source_ip: Some(ip),
        actor: "anonymous".to_owned(),
    };
    if orgs.is_empty() || i.is_multiple_of(3) {
        let rec = AuditRecord::new("auth.failed")
            .failure("unauthorized")
            .details(serde_json::json!({"credential": "api_key"}));
        return (ctx, rec);
    }
    ctx.actor = "callback".to_owned();
    // A spread that touches every org's index over time, not only the first few.
    let org = &orgs[i.wrapping_mul(7919) % orgs.len()];
    let code = if i % 3 == 1 {
        "invalid_signature"
    } else {
        "stale_timestamp"
    };
    let rec = AuditRecord::new("onboarding.callback.rejected")
        .failure(code)
        .org(org.to_string());
    (ctx, rec)
}

/// Registers the orgs and appends the events; writes the sampled keys.
pub async fn run(services: &Services, args: &SeedArgs) -> anyhow::Result<String> {
    let started = Instant::now();
    let batch = args.batch.max(1);
    let owner = UserId::parse(&args.owner)?;
    let user = services
        .users
        .get(&Caller::system("bench-seed"), &owner)
        .await
        .with_context(|| format!("the owner {owner} must exist (run `rolegate admin token`)"))?;
    anyhow::ensure!(!user.disabled, "the owner {owner} is disabled");
    let by = Caller::new(
        Principal::Operator {
            user_id: owner,
            role: user.role,
        },
        RequestContext::system("bench-seed"),
    );
    let names = (1..=args.orgs)
        .map(|i| OrgName::parse(&format!("{}-{i:07}", args.name_prefix)))
        .collect::<Result<Vec<_>, _>>()
        .context("--name-prefix must start with a letter and fit a 32-character org name")?;
    // Every `step`-th org, from the first, until `keys` are written.
    let step = (args.orgs / args.keys.max(1)).max(1);
    let mut sample = String::new();
    let mut secrets = String::new();
    for (chunk_no, chunk) in names.chunks(batch).enumerate() {
        let cmds = chunk
            .iter()
            .map(|name| {
                let ctx = RequestContext {
                    request_id: uuid::Uuid::new_v4().to_string(),
                    source_ip: Some("127.0.0.1".to_owned()),
                    actor: by.principal.actor(),
                };
                let cmd = RegisterOrgCommand {
                    name: name.clone(),
                    expected_account_id: None,
                };
                (ctx, cmd)
            })
            .collect();
        let registered = services.orgs.register_batch(&by, cmds).await?;
        for (j, reg) in registered.iter().enumerate() {
            let i = chunk_no * batch + j;
            if i.is_multiple_of(step) && i / step < args.keys {
                writeln!(
                    sample,
                    "{} {}",
                    reg.org.org_name,
                    reg.api_key.expose_secret()
                )?;
                if args.secrets_out.is_some() {
                    let name = OrgName::parse(&reg.org.org_name)?;
                    let rec = services
                        .records
                        .get(&keyspace::org(&name))
                        .await?
                        .context("a just-registered org is missing")?;
                    writeln!(
                        secrets,
                        "{} {}",
                        reg.org.org_name,
                        rec.value.callback_secret.expose()
                    )?;
                }
            }
        }
        let before = chunk_no * batch;
        progress("orgs", before, before + chunk.len(), args.orgs, started);
    }
    if let Some(path) = &args.keys_out {
        rolegate_server::keys::write_private(path, &sample)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.secrets_out {
        rolegate_server::keys::write_private(path, &secrets)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let fill = args.events.saturating_sub(args.orgs);
    let mut done = 0;
    while done < fill {
        let n = batch.min(fill - done);
        let entries: Vec<_> = (done..done + n).map(|i| filler(i, &names)).collect();
        if !services
            .records
            .audit()
            .commit_batch(Txn::new(), &entries)
            .await?
        {
            anyhow::bail!("the audit log refused a batch of events");
        }
        progress(
            "events",
            args.orgs + done,
            args.orgs + done + n,
            args.events,
            started,
        );
        done += n;
    }
    Ok(format!(
        "seeded {} orgs and {} audit events in {:.1}s",
        args.orgs,
        args.orgs + fill,
        started.elapsed().as_secs_f64()
    ))
}

/// A progress line on stderr each time `before..done` crosses a tenth of `total`.
fn progress(what: &str, before: usize, done: usize, total: usize, started: Instant) {
    let total = total.max(1);
    if before * 10 / total != done * 10 / total {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "bench-seed: {what} {done}/{total} ({:.1}s)",
            started.elapsed().as_secs_f64()
        );
    }
}
