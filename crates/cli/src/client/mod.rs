//! The client commands, `rolegate creds`, `creds serve`, `console`, `exec` and `profiles
//! generate`: they ask a rolegate server for credentials, a console link or the orgs the
//! caller may use, and hand them over in the form the caller needs. Secrets go to stdout, to
//! 0600 files, to a child's environment or to a loopback endpoint that wants a token; never
//! to stderr or a process's arguments. stderr gets codes, messages and request ids.

/// The command-line arguments and the `--format` parser.
/// `rolegate request|approve|deny|revoke|requests`: just-in-time access.
pub mod access;
pub mod args;
/// Atomic file replacement, shared by the cache and the AWS file writers.
mod atomic;
/// The `[NAME]` section writer for `~/.aws/credentials`.
pub mod aws_profile;
/// The credential_process cache, refreshed ahead of expiry.
pub mod cache;
/// `rolegate creds serve`: the local ECS container-credentials endpoint.
pub mod ecs;
/// `rolegate exec`: one command with credentials in its environment.
pub mod exec;
/// Output formats: json, shell exports, credential_process JSON.
pub mod format;
/// `rolegate access-history`: an org's access history as JSON lines, resumable.
pub mod history;
/// The HTTP calls and the server's error shape.
pub mod http;
/// `rolegate jobs …` and `rolegate keypair create`.
pub mod jobs;
/// A validated AWS profile name.
pub mod profile_name;
/// `rolegate profiles generate`: rolegate's section of `~/.aws/config`.
pub mod profiles;
/// Settings resolution: flags, then environment, then the client config file.
pub mod settings;
/// `rolegate stack apply|delete|inspect` and `rolegate inventory`.
pub mod stack;
/// `rolegate user role|link-slack`: an admin changes an operator's role or chat link.
pub mod users;
/// `creds --certificate`: a workload's signed CreateSession; `pki dev-ca`.
pub mod workload;

use std::io::Write as _;

use anyhow::Context as _;
use rolegate_core::clock::Clock;
use secrecy::ExposeSecret as _;

use self::args::{ConsoleArgs, CredsArgs, Format, TargetArgs};
use self::cache::{Cache, CacheKey};
use self::http::{ApiClient, ClientError, ConsoleRequest, Credentials, CredentialsRequest};
use self::settings::Env;

/// Prints a warning on stderr. Callers pass text that holds no secret.
fn warn(message: &str) {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("rolegate: warning: {message}");
    }
}

fn connect(connection: &args::ConnectionArgs, env: Env<'_>) -> anyhow::Result<ApiClient> {
    let settings = settings::resolve(connection, env)?;
    settings.warnings.iter().for_each(|w| warn(w));
    Ok(ApiClient::new(settings)?)
}

/// One org's credentials from one server for one principal, through the local cache:
/// what `creds --format credential-process`, `creds serve` and `exec` share, so that they
/// reuse each other's cached credentials.
#[derive(Debug)]
pub struct Source {
    client: ApiClient,
    cache: Cache,
    org: String,
    access_level: Option<String>,
    duration: Option<u32>,
    reason: Option<String>,
}

impl Source {
    /// Resolves the connection settings and the cache directory.
    pub fn new(
        connection: &args::ConnectionArgs,
        target: &TargetArgs,
        env: Env<'_>,
    ) -> anyhow::Result<Self> {
        let client = connect(connection, env)?;
        let cache = Cache::locate(target.cache_dir.as_deref(), env)
            .context("no cache directory: set HOME, XDG_CACHE_HOME or --cache-dir")?;
        Ok(Self {
            client,
            cache,
            org: target.org.clone(),
            access_level: target.access_level.clone(),
            duration: target.duration,
            reason: target.reason.clone(),
        })
    }

    pub fn org(&self) -> &str {
        &self.org
    }

    /// Cached credentials while they have more than the refresh window left, else fresh
    /// ones (stored for next time). Warnings go to stderr.
    pub async fn get(
        &self,
        clock: &dyn Clock,
        force_refresh: bool,
    ) -> Result<Credentials, ClientError> {
        let key = CacheKey {
            server: self.client.server().as_str(),
            org: &self.org,
            access_level: self.access_level.as_deref(),
            principal: self.client.credential().digest(),
            duration: self.duration,
        };
        let lookup = self
            .cache
            .get_or_fetch(&key, clock.now(), force_refresh, |force| {
                let body = self.request(force || force_refresh);
                async move { self.client.credentials(&body).await }
            })
            .await?;
        lookup.warnings.iter().for_each(|w| warn(w));
        Ok(lookup.credentials)
    }

    fn request(&self, force_refresh: bool) -> CredentialsRequest<'_> {
        CredentialsRequest {
            org_name: &self.org,
            access_level: self.access_level.as_deref(),
            duration_seconds: self.duration,
            reason: self.reason.as_deref(),
            force_refresh,
        }
    }
}

/// `rolegate creds`: fetches credentials and prints or writes them in `format`.
pub async fn creds(
    args: &CredsArgs,
    org: &str,
    format: Format,
    env: Env<'_>,
    clock: &dyn Clock,
) -> anyhow::Result<()> {
    let target = TargetArgs {
        org: org.to_owned(),
        access_level: args.access_level.clone(),
        duration: args.duration,
        reason: args.reason.clone(),
        cache_dir: args.cache_dir.clone(),
    };
    let credentials = if format == Format::CredentialProcess {
        Source::new(&args.connection, &target, env)?
            .get(clock, args.force_refresh)
            .await?
    } else {
        let client = connect(&args.connection, env)?;
        client
            .credentials(&CredentialsRequest {
                org_name: org,
                access_level: args.access_level.as_deref(),
                duration_seconds: args.duration,
                reason: args.reason.as_deref(),
                force_refresh: args.force_refresh,
            })
            .await?
    };
    if let (Some(id), Some(end)) = (&credentials.grant_id, credentials.grant_expires_at) {
        // On stderr: stdout is the credentials' format alone.
        let left = (end - clock.now()).whole_minutes().max(0);
        writeln!(
            std::io::stderr(),
            "rolegate: issued under grant {id}, which ends in {}h{:02}m ({})",
            left / 60,
            left % 60,
            rolegate_core::clock::rfc3339(end)
        )?;
    }
    emit(format, &credentials, env)
}

/// `rolegate creds --certificate …`: a workload's own signed CreateSession. The server and
/// CA file come from the flags or ROLEGATE_SERVER / ROLEGATE_CA_FILE; no token or key.
pub async fn creds_with_certificate(
    args: &CredsArgs,
    format: Format,
    env: Env<'_>,
    clock: &dyn Clock,
) -> anyhow::Result<()> {
    let server = args
        .connection
        .server
        .clone()
        .or_else(|| env("ROLEGATE_SERVER"))
        .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
    let ca_file = args
        .connection
        .ca_file
        .clone()
        .or_else(|| env("ROLEGATE_CA_FILE").map(Into::into));
    let (Some(certificate), Some(private_key), Some(trust_anchor), Some(profile)) = (
        args.certificate.as_deref(),
        args.private_key.as_deref(),
        args.trust_anchor.as_deref(),
        args.profile.as_deref(),
    ) else {
        anyhow::bail!("--certificate needs --private-key, --trust-anchor and --profile");
    };
    let now = time::OffsetDateTime::from_unix_timestamp(clock.now_ms() / 1000)?;
    let credentials = workload::session(
        &workload::SessionArgs {
            server: &server,
            ca_file: ca_file.as_deref(),
            certificate,
            private_key,
            trust_anchor,
            profile,
            role_arn: args.role_arn.as_deref(),
            duration: args.duration,
        },
        now,
    )
    .await?;
    emit(format, &credentials, env)
}

/// Writes `credentials` in `format`.
fn emit(format: Format, credentials: &Credentials, env: Env<'_>) -> anyhow::Result<()> {
    let credentials = credentials.clone();
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => out.write_all(format::json(&credentials)?.as_bytes())?,
        Format::Env => out.write_all(format::env(&credentials).as_bytes())?,
        Format::CredentialProcess => {
            out.write_all(format::credential_process(&credentials).as_bytes())?;
        }
        Format::AwsProfile(name) => {
            let path = aws_profile::credentials_path(env)
                .context("no credentials file: set HOME or AWS_SHARED_CREDENTIALS_FILE")?;
            aws_profile::write(&path, &name, &credentials)
                .with_context(|| format!("cannot write {}", path.display()))?;
            writeln!(
                out,
                "wrote profile [{}] to {} (expires {})",
                name.as_str(),
                path.display(),
                format::expiration(&credentials)
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

/// `rolegate console`: prints a console sign-in URL, and only that, on stdout.
pub async fn console(args: &ConsoleArgs, env: Env<'_>) -> anyhow::Result<()> {
    let client = connect(&args.connection, env)?;
    let link = client
        .console(&ConsoleRequest {
            org_name: &args.org,
            access_level: args.access_level.as_deref(),
            duration_seconds: args.duration,
            reason: args.reason.as_deref(),
            destination: args.destination.as_deref(),
        })
        .await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", link.url.expose_secret())?;
    out.flush()?;
    Ok(())
}
