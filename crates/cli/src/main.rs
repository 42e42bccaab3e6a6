//! The `rolegate` binary: `serve`, offline admin commands (`keygen`, `admin token`,
//! `rekey`, `audit verify|checkpoint|export`), the client commands (`creds`, `console`) and `version`;
//! and `bench-seed`, hidden, for the load benchmarks in `bench/`.

/// The client commands: talk to a rolegate server for credentials and console links.
mod client;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, CommandFactory as _, Parser, Subcommand};
use rolegate_core::Caller;
use rolegate_core::audit::checkpoint::Checkpoint;
use rolegate_core::clock::SystemClock;
use rolegate_core::ids::{Role, UserId};
use rolegate_core::users::CreateUserCommand;
use rolegate_server::app::open_services;
use rolegate_server::config::{LogFormat, RawSettings, Settings};
use secrecy::ExposeSecret as _;

/// `bench-seed`: bulk data for the load benchmarks.
mod bench_seed;

/// rolegate: a self-hosted broker for short-lived AWS credentials in customer accounts.
#[derive(Debug, Parser)]
#[command(name = "rolegate", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// The help heading of [`GlobalArgs`], which the client commands ignore.
const SERVER_OPTIONS: &str = "Server and offline-command options";

/// Settings of the server and the offline commands (the client commands ignore them).
/// Precedence: config file < ROLEGATE_* env < flags.
#[derive(Debug, Args)]
struct GlobalArgs {
    /// TOML config file (see rolegate.example.toml).
    #[arg(long, global = true, help_heading = SERVER_OPTIONS, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (default ./data): SQLite file, generated master key, admin token.
    #[arg(long, global = true, help_heading = SERVER_OPTIONS, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Store: "sqlite" (default), "sqlite:///path.db" or "redis://host:port".
    #[arg(long, global = true, help_heading = SERVER_OPTIONS, value_name = "URL")]
    store: Option<String>,
    /// File holding base64 master keys, one per line, oldest first (newest seals).
    #[arg(long, global = true, help_heading = SERVER_OPTIONS, value_name = "FILE")]
    master_key_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service.
    ///
    /// It writes an audit checkpoint (the chain head, signed) to the log at start, every
    /// minute, after every 10,000 events and on the way out: info lines with target
    /// rolegate::audit::checkpoint, for `audit verify --checkpoint`.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080; port 0 picks a free port).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Print a new random base64 master key.
    Keygen,
    /// Administrative commands that work offline, directly against the store.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Re-seal every stored record under the newest master key.
    ///
    /// Cached credentials sealed under an older key are dropped (the next request mints new
    /// ones). Idempotency records are left to expire: keep the old key in the ring for
    /// `idempotency_ttl_secs` after a rekey. Nonces and locks hold no data.
    Rekey,
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Get temporary AWS credentials for an organisation from a rolegate server.
    Creds(client::args::CredsArgs),
    /// Print an AWS console sign-in URL for an organisation, from a rolegate server.
    Console(client::args::ConsoleArgs),
    /// Print the version.
    Version,
    /// For benchmarks only (bench/run --scale): register many orgs and append many audit
    /// events directly to the store, through the domain code. Never on a production store.
    #[command(hide = true)]
    BenchSeed(bench_seed::SeedArgs),
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Issue a new admin token: creates the admin user, or rotates its token if it exists.
    /// Prints the token on stdout.
    Token {
        /// The admin's user id.
        #[arg(long, default_value = "admin")]
        user_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the hash chain and report every broken link. Exits 1 if any.
    ///
    /// Walks the stored events by listing them (never by counting up to the head), so it is
    /// bounded by what is stored; a record under `audit/ev/` that is not an event of the
    /// chain (not 20 digits, or beyond the head) is reported by its key. At most 1,000
    /// problems are listed, the rest counted. The head must match the last event.
    ///
    /// A store rolled back to an older head, with the newer events deleted, is a consistent
    /// chain: only a checkpoint taken before the rollback reveals it. With `--checkpoint`,
    /// the checkpoint's MAC is checked first (a forged one is refused, exit 2), then the
    /// store must hold its head: "store is behind the checkpoint" or "diverges at seq N"
    /// otherwise (exit 1).
    Verify {
        /// A file with checkpoints, one per line: the output of `rolegate audit checkpoint`
        /// or the server's JSON log (lines with target rolegate::audit::checkpoint; other
        /// lines are skipped). The newest one (highest seq) is authenticated and compared.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Print the current checkpoint as one JSON line: the head's sequence number and hash,
    /// the time, the master key id and an HMAC-SHA256 under a key derived from the master
    /// key. Keep it (or the server's log, which has one every minute and every 10,000
    /// events) outside the store, for `audit verify --checkpoint`.
    Checkpoint,
    /// Stream events as JSON lines.
    Export {
        /// Only events at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
    },
}

fn settings(global: &GlobalArgs, listen: Option<String>) -> anyhow::Result<Settings> {
    let file = match &global.config {
        Some(path) => RawSettings::from_file(path)?,
        None => RawSettings::default(),
    };
    let flags = RawSettings {
        listen,
        data_dir: global.data_dir.clone(),
        store: global.store.clone(),
        master_key_file: global.master_key_file.clone(),
        ..RawSettings::default()
    };
    let mut raw = file.overlay_env(|k| std::env::var(k).ok())?;
    if flags.master_key_file.is_some() {
        raw.master_key = None;
    }
    Ok(raw.overlay(flags).validate()?)
}

/// Exits with clap's usage error for `subcommand` (status 2).
fn usage_error(subcommand: &str, message: String) -> ! {
    let mut cli = Cli::command();
    cli.build();
    let mut cmd = match cli.find_subcommand(subcommand) {
        Some(sub) => sub.clone(),
        None => cli,
    };
    cmd.error(clap::error::ErrorKind::InvalidValue, message)
        .exit()
}

/// The newest checkpoint in `path` (highest seq). Its MAC is checked by `verify`.
fn read_checkpoint(path: &std::path::Path) -> anyhow::Result<Checkpoint> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--checkpoint: cannot read {}", path.display()))?;
    Checkpoint::parse_all(&text)
        .into_iter()
        .max_by_key(|c| c.seq)
        .with_context(|| {
            format!(
                "--checkpoint: no checkpoint in {} (expected the output of `rolegate audit checkpoint` or log lines with target {})",
                path.display(),
                rolegate_core::audit::checkpoint::LOG_TARGET
            )
        })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("rolegate: {e:#}");
            }
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let ok = std::process::ExitCode::SUCCESS;
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Creds(args) => {
            let format = client::args::Format::parse(&args.format, args.profile.as_deref())
                .unwrap_or_else(|m| usage_error("creds", m));
            drop(out);
            client::creds(&args, format, &|k| std::env::var(k).ok(), &SystemClock).await?;
        }
        Command::Console(args) => {
            drop(out);
            client::console(&args, &|k| std::env::var(k).ok()).await?;
        }
        Command::Version => writeln!(out, "rolegate {}", env!("CARGO_PKG_VERSION"))?,
        Command::Keygen => writeln!(
            out,
            "{}",
            rolegate_crypto::MasterKey::generate().to_base64()
        )?,
        Command::Serve { listen } => {
            drop(out);
            let settings = settings(&cli.global, listen)?;
            rolegate_server::telemetry::init(settings.log_format, &settings.log_level);
            let app = rolegate_server::Application::build(settings).await?;
            if let Some(addr) = app.local_addr() {
                tracing::info!(%addr, "listening");
                // For people and scripts; on stderr so that stdout carries only log lines
                // (JSON when it is not a terminal).
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("rolegate listening on http://{addr}");
                }
            }
            app.run_until_stopped().await?;
        }
        Command::Admin {
            command: AdminCommand::Token { user_id },
        } => {
            let settings = settings(&cli.global, None)?;
            rolegate_server::telemetry::init(LogFormat::Pretty, "warn");
            let services = open_services(&settings, true, Arc::new(SystemClock)).await?;
            let id = UserId::parse(&user_id)?;
            let system = Caller::system("admin-token");
            // Only an admin's token is reissued here: look before rotating.
            let token = match services.users.get(&system, &id).await {
                Ok(user) if user.role == Role::Admin => {
                    services.users.rotate_token(&system, &id).await?.1
                }
                Ok(_) => anyhow::bail!("user {id} exists but is not an admin"),
                Err(rolegate_core::Error::NotFound { .. }) => {
                    let cmd = CreateUserCommand::parse(
                        id.as_str(),
                        "admin",
                        Some(serde_json::json!({"created_by": "cli"})),
                    )?;
                    services.users.create(&system, cmd).await?.1
                }
                Err(e) => return Err(e.into()),
            };
            writeln!(out, "{}", token.expose_secret())?;
        }
        Command::BenchSeed(args) => {
            let settings = settings(&cli.global, None)?;
            rolegate_server::telemetry::init(LogFormat::Pretty, "warn");
            let services = open_services(&settings, false, Arc::new(SystemClock)).await?;
            let summary = bench_seed::run(&services, &args).await?;
            writeln!(out, "{summary}")?;
        }
        Command::Rekey => {
            let settings = settings(&cli.global, None)?;
            let services = open_services(&settings, false, Arc::new(SystemClock)).await?;
            let vault = services.records.vault();
            let (resealed, total) = vault.rekey().await?;
            writeln!(
                out,
                "re-sealed {resealed} of {total} records under key {}",
                vault.keyring().current_id()
            )?;
        }
        Command::Audit {
            command: AuditCommand::Verify { checkpoint },
        } => {
            let checkpoint = checkpoint.as_deref().map(read_checkpoint).transpose()?;
            let settings = settings(&cli.global, None)?;
            let services = open_services(&settings, false, Arc::new(SystemClock)).await?;
            let report = services
                .audit
                .verify(&Caller::system("audit-verify"), checkpoint.as_ref())
                .await?;
            if report.breaks.is_empty() {
                writeln!(out, "audit chain intact: {} events", report.events)?;
            } else {
                for b in &report.breaks {
                    writeln!(out, "BROKEN: {b}")?;
                }
                writeln!(
                    out,
                    "audit chain broken: {} problem(s) in {} events; first: {}",
                    report.breaks.len(),
                    report.events,
                    report.breaks[0]
                )?;
                return Ok(std::process::ExitCode::from(1));
            }
        }
        Command::Audit {
            command: AuditCommand::Checkpoint,
        } => {
            let settings = settings(&cli.global, None)?;
            let services = open_services(&settings, false, Arc::new(SystemClock)).await?;
            let cp = services
                .audit
                .checkpoint(&Caller::system("audit-checkpoint"))
                .await?;
            writeln!(out, "{}", cp.to_json())?;
        }
        Command::Audit {
            command: AuditCommand::Export { since },
        } => {
            let settings = settings(&cli.global, None)?;
            let services = open_services(&settings, false, Arc::new(SystemClock)).await?;
            let since = since
                .map(|s| {
                    time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                })
                .transpose()
                .context("--since must be an RFC 3339 time such as 2026-01-01T00:00:00Z")?;
            let system = Caller::system("audit-export");
            let mut after: Option<u64> = None;
            loop {
                let page = services.audit.export(&system, after, 500).await?;
                for ev in &page.events {
                    let keep = since.is_none_or(|s| {
                        time::OffsetDateTime::parse(
                            &ev.time,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .is_ok_and(|t| t >= s)
                    });
                    if keep {
                        serde_json::to_writer(&mut out, ev)?;
                        out.write_all(b"\n")?;
                    }
                }
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        }
    }
    Ok(ok)
}
