//! The client commands, `rolegate creds` and `rolegate console`: they ask a rolegate server
//! for credentials or a console link and print them in the form the caller needs. Secrets go
//! to stdout or to 0600 files only; stderr gets codes, messages and request ids.

/// The command-line arguments and the `--format` parser.
pub mod args;
/// Atomic 0600 file replacement, shared by the cache and the credentials-file writer.
mod atomic;
/// The `[NAME]` section writer for `~/.aws/credentials`.
pub mod aws_profile;
/// The credential_process cache, refreshed ahead of expiry.
pub mod cache;
/// Output formats: json, shell exports, credential_process JSON.
pub mod format;
/// The HTTP calls and the server's error shape.
pub mod http;
/// Settings resolution: flags, then environment, then the client config file.
pub mod settings;

use std::io::Write as _;

use anyhow::Context as _;
use rolegate_core::clock::Clock;
use secrecy::ExposeSecret as _;

use self::args::{ConsoleArgs, CredsArgs, Format};
use self::cache::{Cache, CacheKey};
use self::http::{ApiClient, ConsoleRequest, CredentialsRequest};
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

/// `rolegate creds`: fetches credentials and prints or writes them in `format`.
pub async fn creds(
    args: &CredsArgs,
    format: Format,
    env: Env<'_>,
    clock: &dyn Clock,
) -> anyhow::Result<()> {
    let client = connect(&args.connection, env)?;
    let request = |force_refresh: bool| CredentialsRequest {
        org_name: &args.org,
        access_level: args.access_level.as_deref(),
        duration_seconds: args.duration,
        reason: args.reason.as_deref(),
        force_refresh: force_refresh || args.force_refresh,
    };
    let credentials = if format == Format::CredentialProcess {
        let cache = Cache::locate(args.cache_dir.as_deref(), env)
            .context("no cache directory: set HOME, XDG_CACHE_HOME or --cache-dir")?;
        let key = CacheKey {
            server: client.server().as_str(),
            org: &args.org,
            access_level: args.access_level.as_deref(),
            principal: client.credential().digest(),
            duration: args.duration,
        };
        let lookup = cache
            .get_or_fetch(&key, clock.now(), args.force_refresh, |force| {
                let body = request(force);
                let client = &client;
                async move { client.credentials(&body).await }
            })
            .await?;
        lookup.warnings.iter().for_each(|w| warn(w));
        lookup.credentials
    } else {
        client.credentials(&request(false)).await?
    };
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
