//! The `rolegate` binary: `serve`, offline admin commands (`keygen`, `admin token`,
//! `rekey`, `audit verify|checkpoint|export`, `store copy`), the client commands (`creds`,
//! `creds serve`, `console`, `exec`, `profiles generate`), `completions`, `man` and `version`;
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
    /// Store: "sqlite" (default), "sqlite:///path.db", "postgres://user@host/db" or
    /// "redis://host:port". A URL with a password: use ROLEGATE_STORE_FILE instead, so that it
    /// is not in the process arguments.
    #[arg(long, global = true, help_heading = SERVER_OPTIONS, value_name = "URL")]
    store: Option<String>,
    /// File holding base64 master keys, one per line, oldest first (newest seals).
    #[arg(long, global = true, help_heading = SERVER_OPTIONS, value_name = "FILE")]
    master_key_file: Option<PathBuf>,
}

// Parsed once per process: boxing the large variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service: the API under /api, its docs at /docs, and the operator
    /// portal under / (sign in with an operator token, or through the identity provider
    /// configured in [oidc]; [portal] sets the session timeouts).
    ///
    /// It writes an audit checkpoint (the chain head, signed) to the log at start, every
    /// minute, after every 10,000 events and on the way out: info lines with target
    /// rolegate::audit::checkpoint, for `audit verify --checkpoint`.
    #[command(after_help = "\
Examples:
  rolegate serve --listen 0.0.0.0:8443 --tls-cert-file cert.pem --tls-key-file key.pem
  ROLEGATE_STORE=redis://127.0.0.1:6379 rolegate serve --listen 127.0.0.1:0")]
    Serve(ServeArgs),
    /// Print a new random base64 master key.
    #[command(after_help = "\
Examples:
  rolegate keygen                                              # one base64 key on stdout
  (umask 077; rolegate keygen >> /etc/rolegate/master.keys)    # newest key last: it seals")]
    Keygen,
    /// Administrative commands that work offline, directly against the store.
    #[command(after_help = "\
Examples:
  rolegate admin token --data-dir /var/lib/rolegate")]
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Re-seal every stored record under the newest master key.
    ///
    /// Cached credentials sealed under an older key are dropped (the next request mints new
    /// ones). Idempotency records are left to expire: keep the old key in the ring for
    /// `idempotency_ttl_secs` after a rekey. Nonces and locks hold no data.
    #[command(after_help = "\
Examples:
  rolegate keygen >> master.keys && rolegate rekey --master-key-file master.keys")]
    Rekey,
    /// The audit log.
    #[command(after_help = "\
Examples:
  rolegate audit verify --data-dir /var/lib/rolegate
  rolegate audit export --since 2026-01-01T00:00:00Z > audit.jsonl")]
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Move a store between engines (for example SQLite to PostgreSQL).
    #[command(after_help = "\
Examples:
  rolegate store copy --from sqlite --to-file /run/secrets/pg-url --data-dir /var/lib/rolegate")]
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Get temporary AWS credentials for an organisation from a rolegate server.
    #[command(after_help = "\
Examples:
  rolegate creds --org acme-corp                                # the server's JSON
  eval \"$(rolegate creds --org acme-corp --format env)\"       # export AWS_* in this shell
  rolegate creds --org acme-corp --format aws-profile acme      # a ~/.aws/credentials profile
  # in ~/.aws/config (or let `rolegate profiles generate` write it):
  #   credential_process = rolegate creds --org acme-corp --format credential-process
  rolegate creds serve --org acme-corp                          # a local endpoint for SDKs
  # a workload with an X.509 certificate instead of an API key (docs/workload-identity.md):
  rolegate creds --certificate leaf.pem --private-key leaf.key \\
    --trust-anchor ANCHOR_ARN --profile PROFILE_ARN --format credential-process")]
    Creds(client::args::CredsCommand),
    /// Certificates for trying workload identity (not for production).
    #[command(after_help = "\
Examples:
  rolegate pki dev-ca --out ./dev-pki --common-name build-agent-1")]
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Print an AWS console sign-in URL for an organisation, from a rolegate server.
    #[command(after_help = "\
Examples:
  rolegate console --org acme-corp
  xdg-open \"$(rolegate console --org acme-corp --destination https://console.aws.amazon.com/s3/)\"")]
    Console(client::args::ConsoleArgs),
    /// Run one command with an organisation's AWS credentials in its environment.
    ///
    /// Sets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
    /// AWS_CREDENTIAL_EXPIRATION, AWS_REGION/AWS_DEFAULT_REGION and ROLEGATE_EXEC_ORG for the
    /// command only, and removes AWS_PROFILE and every other variable an SDK would read for
    /// credentials (and ROLEGATE_TOKEN/ROLEGATE_API_KEY). rolegate then becomes the command:
    /// signals and the exit status are the command's own. With --server-mode the command
    /// gets a local endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI and
    /// AWS_CONTAINER_AUTHORIZATION_TOKEN) that refreshes credentials ahead of expiry;
    /// rolegate stays to serve it, forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT, and exits
    /// with the command's status (128 + N if signal N killed it). Refuses to run inside
    /// another `rolegate exec` (ROLEGATE_EXEC_ORG is set) unless --force.
    #[command(after_help = "\
Examples:
  rolegate exec --org acme-corp -- aws sts get-caller-identity
  rolegate exec --org acme-corp --access-level operator --reason 'INC-42' -- terraform plan
  rolegate exec --org acme-corp --server-mode -- terraform apply   # outlives one session
  rolegate exec --org acme-corp -- \"$SHELL\"                         # a shell for one org")]
    Exec(client::args::ExecArgs),
    /// Jobs in an organisation's AWS account: create, list, show, wait, cancel.
    #[command(after_help = "\
Examples:
  rolegate jobs create --org acme-corp --kind keypair.import --access-level operator --wait \\
      --spec '{\"name\":\"deploy\",\"public_key\":\"ssh-ed25519 AAAA… me@host\"}'
  rolegate jobs list --org acme-corp --state failed
  rolegate jobs wait j0190f3c2a1b4e5d6c7b8a9f0e1d2c")]
    Jobs {
        #[command(subcommand)]
        command: client::jobs::JobsCommand,
    },
    /// Ask for an access level that needs approval, for a while (just-in-time access).
    #[command(after_help = "\
Examples:
  rolegate request --org acme-corp --level operator --duration 2h --reason \"INC-123\" --wait
  rolegate request --org acme-corp --level operator --duration 30m --reason 'prod down' --break-glass")]
    Request(client::access::RequestArgs),
    /// Approve someone else's access request (you must be an approver of its level).
    #[command(after_help = "\
Examples:
  rolegate approve a0190f3c2a1b4e5d6c7b8a9f0e1d2c --comment 'ok for INC-123'")]
    Approve(client::access::DecideArgs),
    /// Deny someone else's access request.
    #[command(after_help = "\
Examples:
  rolegate deny a0190f3c2a1b4e5d6c7b8a9f0e1d2c --comment 'use readonly'")]
    Deny(client::access::DecideArgs),
    /// Revoke a grant now: issuance under it stops on every replica and cached credentials
    /// are dropped.
    #[command(after_help = "\
Examples:
  rolegate revoke a0190f3c2a1b4e5d6c7b8a9f0e1d2c --comment 'incident closed'")]
    Revoke(client::access::DecideArgs),
    /// List access requests: yours, and those you may approve.
    #[command(after_help = "\
Examples:
  rolegate requests --mine
  rolegate requests --state pending --org acme-corp
  rolegate requests --needs-review     # break-glass grants waiting for an admin's review")]
    Requests(client::access::RequestsArgs),
    /// Mark a break-glass grant reviewed (admins; never the grant's holder).
    #[command(after_help = "\
Examples:
  rolegate review a0190f3c2a1b4e5d6c7b8a9f0e1d2c --comment 'INC-123: justified, postmortem filed'")]
    Review(client::access::ReviewArgs),
    /// An organisation's access history as JSON lines (for a SIEM): who obtained
    /// credentials, console sessions or ran jobs, and the access requests on it. Prints the
    /// cursor to resume from on stderr.
    #[command(
        name = "access-history",
        after_help = "\
Examples:
  rolegate access-history --org acme-corp > history.jsonl   # with ROLEGATE_API_KEY set
  rolegate access-history --org acme-corp --after 1042 >> history.jsonl
  rolegate access-history --org acme-corp --follow --action credentials.issue"
    )]
    AccessHistory(client::history::HistoryArgs),
    /// EC2 key pairs in an organisation's AWS account.
    #[command(after_help = "\
Examples:
  rolegate keypair create --org acme-corp --name deploy --out deploy.pem   # 0600
  rolegate keypair create --org acme-corp --name legacy --type rsa > legacy.pem")]
    Keypair {
        #[command(subcommand)]
        command: client::jobs::KeypairCommand,
    },
    /// CloudFormation stacks from rolegate's blueprints in an organisation's AWS account.
    #[command(after_help = "\
Examples:
  rolegate stack apply --org acme-corp --blueprint workload --name shop \\
      --param SshCidr=203.0.113.7/32 --wait
  rolegate stack inspect --org acme-corp --name shop
  rolegate stack delete --org acme-corp --name shop --wait")]
    Stack {
        #[command(subcommand)]
        command: client::stack::StackCommand,
    },
    /// The VPCs, EC2 and RDS instances, key pairs and rolegate stacks of an organisation's
    /// AWS account, with tags (a read-only job).
    #[command(after_help = "\
Examples:
  rolegate inventory --org acme-corp | jq '.result.instances'")]
    Inventory(client::stack::InventoryArgs),
    /// Operators (admins): change an operator's role, link a Slack user for approve-from-chat.
    #[command(after_help = "\
Examples:
  rolegate user role carol admin
  rolegate user link-slack bob --slack-user-id U024BE7LH")]
    User {
        #[command(subcommand)]
        command: client::users::UserCommand,
    },
    /// AWS config profiles for the organisations you may use.
    #[command(after_help = "\
Examples:
  rolegate profiles generate --region eu-west-1")]
    Profiles {
        #[command(subcommand)]
        command: ProfilesCommand,
    },
    /// Print a shell completion script.
    #[command(after_help = "\
Examples:
  rolegate completions bash > ~/.local/share/bash-completion/completions/rolegate
  rolegate completions zsh > \"${fpath[1]}/_rolegate\"
  rolegate completions fish > ~/.config/fish/completions/rolegate.fish")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff).
    #[command(after_help = "\
Examples:
  rolegate man > ~/.local/share/man/man1/rolegate.1 && man rolegate
  rolegate man | man -l -")]
    Man,
    /// Print the version.
    #[command(after_help = "\
Examples:
  rolegate version")]
    Version,
    /// For benchmarks only (bench/run --scale): register many orgs and append many audit
    /// events directly to the store, through the domain code. Never on a production store.
    #[command(hide = true)]
    BenchSeed(bench_seed::SeedArgs),
}

/// `rolegate serve`'s own flags. Each is also a config-file key and a ROLEGATE_* variable.
#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080; port 0 picks a free port). A
    /// non-loopback address needs TLS or --allow-plain-http [env: ROLEGATE_LISTEN].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Serve HTTPS with this PEM certificate chain; re-read on SIGHUP
    /// [env: ROLEGATE_TLS_CERT_FILE].
    #[arg(long, value_name = "FILE", requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// The PEM private key of --tls-cert-file; re-read on SIGHUP [env: ROLEGATE_TLS_KEY_FILE].
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// Allow plain HTTP on a non-loopback address, behind a TLS-terminating proxy
    /// [env: ROLEGATE_ALLOW_PLAIN_HTTP].
    #[arg(long)]
    allow_plain_http: bool,
    /// Seconds a client has to send a request's headers, else 408 (default 10)
    /// [env: ROLEGATE_HEADER_READ_TIMEOUT_SECS].
    #[arg(long, value_name = "SECS")]
    header_read_timeout_secs: Option<u64>,
    /// Seconds a client has to send a request's body, else 408 (default 30)
    /// [env: ROLEGATE_BODY_READ_TIMEOUT_SECS].
    #[arg(long, value_name = "SECS")]
    body_read_timeout_secs: Option<u64>,
    /// Seconds a handler has to answer, else 503 handler_timeout (default 60)
    /// [env: ROLEGATE_REQUEST_TIMEOUT_SECS].
    #[arg(long, value_name = "SECS")]
    request_timeout_secs: Option<u64>,
    /// Start on a Redis whose persistence can lose acknowledged writes (AOF off, appendfsync
    /// no, an evicting maxmemory-policy, or CONFIG disabled); /api/ready then says degraded
    /// [env: ROLEGATE_STORE_ALLOW_VOLATILE_REDIS].
    #[arg(long)]
    store_allow_volatile_redis: bool,
}

impl ServeArgs {
    fn flags(&self) -> RawSettings {
        RawSettings {
            listen: self.listen.clone(),
            tls_cert_file: self.tls_cert_file.clone(),
            tls_key_file: self.tls_key_file.clone(),
            allow_plain_http: self.allow_plain_http.then_some(true),
            header_read_timeout_secs: self.header_read_timeout_secs,
            body_read_timeout_secs: self.body_read_timeout_secs,
            request_timeout_secs: self.request_timeout_secs,
            store_allow_volatile_redis: self.store_allow_volatile_redis.then_some(true),
            ..RawSettings::default()
        }
    }
}

#[derive(Debug, Subcommand)]
enum PkiCommand {
    /// Make a throw-away CA and a client certificate it issued (ca.pem, ca.key, leaf.pem,
    /// leaf.key; keys 0600), to try `POST /sessions` locally. NOT FOR PRODUCTION.
    #[command(after_help = "\
Examples:
  rolegate pki dev-ca --out ./dev-pki --common-name build-agent-1
  rolegate creds --server http://127.0.0.1:8080 --certificate ./dev-pki/leaf.pem \\
    --private-key ./dev-pki/leaf.key --trust-anchor ANCHOR_ARN --profile PROFILE_ARN")]
    DevCa {
        /// The directory to write into (files there must not exist yet).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The leaf certificate's CN (its SourceIdentity in CloudTrail).
        #[arg(long, value_name = "NAME", default_value = "dev-workload")]
        common_name: String,
    },
}

#[derive(Debug, Subcommand)]
enum ProfilesCommand {
    /// Write a `[profile PREFIX<org>-<level>]` into ~/.aws/config for every organisation and
    /// access level the server lets you use, each with a credential_process that runs this
    /// binary, and the region.
    ///
    /// Only the section between rolegate's begin and end comments is rewritten; every other
    /// line stays as it is. The file is replaced atomically, and not touched when nothing
    /// changed. Organisations not yet validated are skipped.
    #[command(after_help = "\
Examples:
  rolegate profiles generate --region eu-west-1
  aws --profile rg-acme-corp-readonly sts get-caller-identity
  rolegate profiles generate --prefix acme- --access-level readonly --dry-run")]
    Generate(client::args::GenerateArgs),
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Issue a new admin token: creates the admin user, or rotates its token if it exists.
    /// Prints the token on stdout.
    #[command(after_help = "\
Examples:
  rolegate admin token                       # the user `admin`
  rolegate admin token --user-id ops-admin --data-dir /var/lib/rolegate")]
    Token {
        /// The admin's user id.
        #[arg(long, default_value = "admin")]
        user_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copy every record from one store to another as sealed bytes (nothing is decrypted:
    /// a record's key is its associated data), keeping remaining TTLs; then verify the audit
    /// chain on the target with the master key, and print counts. Stop every rolegate
    /// process using the source first. Rate-limit buckets are not copied.
    ///
    /// A store URL with a password must not go in the process arguments: give it through
    /// --from-file / --to-file or ROLEGATE_COPY_FROM / ROLEGATE_COPY_TO instead.
    #[command(after_help = "\
Examples:
  rolegate store copy --from sqlite --to-file /run/secrets/pg-url   # one node to replicas
  ROLEGATE_COPY_TO=postgres://rolegate@127.0.0.1/rolegate rolegate store copy --from sqlite
  rolegate store copy --from-file old-url --to-file new-url --force  # over a partial copy")]
    Copy(CopyArgs),
}

#[derive(Debug, Args)]
struct CopyArgs {
    /// Source store ("sqlite", "sqlite:///path.db", "postgres://...", "redis://...").
    #[arg(
        long,
        value_name = "URL",
        env = "ROLEGATE_COPY_FROM",
        hide_env_values = true
    )]
    from: Option<String>,
    /// File holding the source store URL (wins over --from and ROLEGATE_COPY_FROM).
    #[arg(long, value_name = "FILE")]
    from_file: Option<PathBuf>,
    /// Target store.
    #[arg(
        long,
        value_name = "URL",
        env = "ROLEGATE_COPY_TO",
        hide_env_values = true
    )]
    to: Option<String>,
    /// File holding the target store URL (wins over --to and ROLEGATE_COPY_TO).
    #[arg(long, value_name = "FILE")]
    to_file: Option<PathBuf>,
    /// Write into a target that already holds records (same keys are overwritten).
    #[arg(long)]
    force: bool,
}

/// A store URL from the flag (or its environment variable) or from a file.
fn copy_url(name: &str, inline: Option<&String>, file: Option<&PathBuf>) -> anyhow::Result<String> {
    match (inline, file) {
        (_, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --{name}-file {}", path.display()))?;
            let url = text.trim();
            anyhow::ensure!(!url.is_empty(), "--{name}-file {} is empty", path.display());
            Ok(url.to_owned())
        }
        (Some(url), None) if !url.trim().is_empty() => Ok(url.trim().to_owned()),
        _ => anyhow::bail!(
            "give the {name} store with --{name}, --{name}-file or ROLEGATE_COPY_{}",
            name.to_ascii_uppercase()
        ),
    }
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
    #[command(after_help = "\
Examples:
  rolegate audit verify --config /etc/rolegate/rolegate.toml || alert 'audit chain broken'
  rolegate audit verify --checkpoint /var/log/rolegate/checkpoints.jsonl")]
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
    #[command(after_help = "\
Examples:
  rolegate audit checkpoint >> /secure/elsewhere/rolegate-checkpoints.jsonl")]
    Checkpoint,
    /// Stream events as JSON lines.
    #[command(after_help = "\
Examples:
  rolegate audit export --since 2026-01-01T00:00:00Z | jq 'select(.action == \"credentials.issue\")'")]
    Export {
        /// Only events at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
    },
}

fn settings(global: &GlobalArgs, serve: Option<RawSettings>) -> anyhow::Result<Settings> {
    let file = match &global.config {
        Some(path) => RawSettings::from_file(path)?,
        None => RawSettings::default(),
    };
    let flags = RawSettings {
        data_dir: global.data_dir.clone(),
        store: global.store.clone(),
        master_key_file: global.master_key_file.clone(),
        ..serve.unwrap_or_default()
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

/// Threads the runtime may start for blocking work: SQLite's calls (four readers and one
/// writer do the work) and file I/O. tokio's default, 512, lets a burst of concurrent
/// requests start a thread each, nearly all of them waiting on SQLite's locks (the fault
/// suite's thirty slow STS calls at once started eleven); bounded, a burst queues instead.
const MAX_BLOCKING_THREADS: usize = 16;

fn main() -> std::process::ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(run(Cli::parse())),
        Err(e) => Err(anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    match result {
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
        Command::Creds(client::args::CredsCommand {
            serve: Some(client::args::CredsSubcommand::Serve(args)),
            ..
        }) => {
            drop(out);
            client::ecs::serve(&args, &|k| std::env::var(k).ok(), Arc::new(SystemClock)).await?;
        }
        Command::Creds(client::args::CredsCommand { serve: None, args })
            if args.certificate.is_some() =>
        {
            let format = client::args::Format::parse(&args.format, None)
                .unwrap_or_else(|m| usage_error("creds", m));
            drop(out);
            let env = |k: &str| std::env::var(k).ok();
            client::creds_with_certificate(&args, format, &env, &SystemClock).await?;
        }
        Command::Pki {
            command:
                PkiCommand::DevCa {
                    out: dir,
                    common_name,
                },
        } => {
            let files = client::workload::dev_ca(&dir, &common_name)?;
            writeln!(
                out,
                "# rolegate dev CA: a THROW-AWAY CA for trying workload identity. NOT FOR PRODUCTION:\n# its key sits unprotected in {} and it signs whatever this command is told to.",
                dir.display()
            )?;
            for f in files {
                writeln!(out, "{}", f.display())?;
            }
        }
        Command::Creds(client::args::CredsCommand { serve: None, args }) => {
            let format = client::args::Format::parse(&args.format, args.profile.as_deref())
                .unwrap_or_else(|m| usage_error("creds", m));
            // clap requires --org unless `serve` is given.
            let Some(org) = args.org.as_deref() else {
                usage_error("creds", "--org is required".to_owned())
            };
            drop(out);
            let env = |k: &str| std::env::var(k).ok();
            client::creds(&args, org, format, &env, &SystemClock).await?;
        }
        Command::Console(args) => {
            drop(out);
            client::console(&args, &|k| std::env::var(k).ok()).await?;
        }
        Command::Jobs { command } => {
            drop(out);
            client::jobs::jobs(&command, &|k| std::env::var(k).ok()).await?;
        }
        Command::Keypair { command } => {
            drop(out);
            client::jobs::keypair(&command, &|k| std::env::var(k).ok()).await?;
        }
        Command::Stack { command } => {
            drop(out);
            client::stack::stack(&command, &|k| std::env::var(k).ok()).await?;
        }
        Command::Inventory(args) => {
            drop(out);
            client::stack::inventory(&args, &|k| std::env::var(k).ok()).await?;
        }
        Command::User { command } => {
            drop(out);
            client::users::user(&command, &|k| std::env::var(k).ok()).await?;
        }
        Command::Request(args) => {
            drop(out);
            client::access::request(&args, &|k| std::env::var(k).ok()).await?;
        }
        Command::Approve(args) => {
            drop(out);
            client::access::decide(&args, "approve", &|k| std::env::var(k).ok()).await?;
        }
        Command::Deny(args) => {
            drop(out);
            client::access::decide(&args, "deny", &|k| std::env::var(k).ok()).await?;
        }
        Command::Revoke(args) => {
            drop(out);
            client::access::decide(&args, "revoke", &|k| std::env::var(k).ok()).await?;
        }
        Command::Requests(args) => {
            drop(out);
            client::access::requests(&args, &|k| std::env::var(k).ok()).await?;
        }
        Command::Review(args) => {
            drop(out);
            client::access::review(&args, &|k| std::env::var(k).ok()).await?;
        }
        Command::AccessHistory(args) => {
            drop(out);
            client::history::access_history(&args, &|k| std::env::var(k).ok()).await?;
        }
        Command::Exec(args) => {
            drop(out);
            let env = |k: &str| std::env::var(k).ok();
            return client::exec::run(&args, &env, Arc::new(SystemClock)).await;
        }
        Command::Profiles {
            command: ProfilesCommand::Generate(args),
        } => {
            drop(out);
            client::profiles::generate(&args, &|k| std::env::var(k).ok()).await?;
        }
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "rolegate", &mut out);
        }
        Command::Man => clap_mangen::Man::new(Cli::command()).render(&mut out)?,
        Command::Version => writeln!(out, "rolegate {}", env!("CARGO_PKG_VERSION"))?,
        Command::Keygen => writeln!(
            out,
            "{}",
            rolegate_crypto::MasterKey::generate().to_base64()
        )?,
        Command::Serve(args) => {
            drop(out);
            let settings = settings(&cli.global, Some(args.flags()))?;
            rolegate_server::telemetry::init(settings.log_format, &settings.log_level);
            let app = rolegate_server::Application::build(settings).await?;
            if let Some(addr) = app.local_addr() {
                tracing::info!(%addr, "listening");
                // For people and scripts; on stderr so that stdout carries only log lines
                // (JSON when it is not a terminal).
                #[allow(clippy::print_stderr)]
                {
                    let scheme = if app.state().settings.tls.is_some() {
                        "https"
                    } else {
                        "http"
                    };
                    eprintln!("rolegate listening on {scheme}://{addr}");
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
        Command::Store {
            command: StoreCommand::Copy(args),
        } => {
            let from = copy_url("from", args.from.as_ref(), args.from_file.as_ref())?;
            let to = copy_url("to", args.to.as_ref(), args.to_file.as_ref())?;
            let mut settings = settings(&cli.global, None)?;
            rolegate_server::telemetry::init(LogFormat::Pretty, "warn");
            // The key ring is loaded before anything is written, so that a missing key fails
            // the command before the copy rather than after it.
            let ring = rolegate_server::keys::load_keyring(&settings, false)?;
            let report = rolegate_store::copy(&from, &to, &settings.data_dir, args.force).await?;
            writeln!(
                out,
                "copied {} records ({} with a TTL, {} bytes sealed) from {} to {}",
                report.records, report.with_ttl, report.bytes, report.from_engine, report.to_engine
            )?;
            settings.store = to.into();
            let store =
                rolegate_store::connect(settings.store.expose_secret(), &settings.data_dir).await?;
            let vault = rolegate_core::vault::Vault::new(store, Arc::new(ring));
            let report = rolegate_core::audit::verify(&vault).await?;
            if let Some(first) = report.breaks.first() {
                writeln!(
                    out,
                    "audit chain on the target BROKEN: {} problem(s) in {} events; first: {first}",
                    report.breaks.len(),
                    report.events
                )?;
                return Ok(std::process::ExitCode::from(1));
            }
            writeln!(
                out,
                "audit chain on the target intact: {} events",
                report.events
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

#[cfg(test)]
mod tests {
    use super::*;

    fn visit(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        // clap's generated `help` subcommands are not ours to document.
        let ours = |s: &&clap::Command| !s.is_hide_set() && s.get_name() != "help";
        for sub in cmd.get_subcommands().filter(ours) {
            let path = format!("{path} {}", sub.get_name());
            let help = sub
                .get_after_help()
                .or_else(|| sub.get_after_long_help())
                .map(ToString::to_string)
                .unwrap_or_default();
            if !help.contains("Examples:\n  rolegate ") {
                missing.push(path.clone());
            }
            visit(sub, &path, missing);
        }
    }

    #[test]
    fn the_cli_is_consistent_and_every_subcommand_shows_an_example() {
        Cli::command().debug_assert();
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        visit(&cmd, "rolegate", &mut missing);
        assert!(missing.is_empty(), "no example in --help: {missing:?}");
    }

    #[test]
    fn creds_takes_flags_or_serve_but_not_both() {
        assert!(Cli::try_parse_from(["rolegate", "creds", "--org", "acme"]).is_ok());
        assert!(Cli::try_parse_from(["rolegate", "creds", "serve", "--org", "acme"]).is_ok());
        assert!(Cli::try_parse_from(["rolegate", "creds"]).is_err());
        assert!(Cli::try_parse_from(["rolegate", "creds", "serve"]).is_err());
    }

    #[test]
    fn exec_takes_the_command_after_or_without_a_double_dash() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args).map(|c| c.command) {
            Ok(Command::Exec(e)) => Some(e.command),
            _ => None,
        };
        let want: Vec<std::ffi::OsString> = ["aws", "s3", "ls", "--recursive"]
            .iter()
            .map(Into::into)
            .collect();
        assert_eq!(
            parse(&[
                "rolegate",
                "exec",
                "--org",
                "a",
                "--",
                "aws",
                "s3",
                "ls",
                "--recursive"
            ]),
            Some(want.clone())
        );
        assert_eq!(
            parse(&[
                "rolegate",
                "exec",
                "--org",
                "a",
                "aws",
                "s3",
                "ls",
                "--recursive"
            ]),
            Some(want)
        );
        assert_eq!(parse(&["rolegate", "exec", "--org", "a"]), None);
    }
}
