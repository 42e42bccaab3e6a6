//! `rolegate exec -- CMD ARGS…`: runs one command with one org's credentials in its
//! environment, and nowhere else.
//!
//! With static keys, rolegate replaces itself with the command (execve): the command has
//! rolegate's process id, gets every signal sent to it (a terminal's Ctrl-C exactly once;
//! terraform aborts hard on a second one) and its exit status is the status. With
//! `--server-mode`, rolegate must stay to serve the local endpoint: it runs the command as a
//! child, forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT to it, and exits with its status
//! (128 + the signal's number when a signal killed it).

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

use nix::sys::signal::Signal;
use rolegate_core::clock::Clock;
use secrecy::{ExposeSecret as _, SecretString};

use super::Source;
use super::args::ExecArgs;
use super::ecs;
use super::format::expiration;
use super::http::Credentials;
use super::settings::Env;

/// Set in the command's environment to the org; a nested `rolegate exec` refuses to run
/// while it is set, unless `--force`.
pub const NEST_VAR: &str = "ROLEGATE_EXEC_ORG";

/// Removed from the command's environment: anything an SDK would read for credentials
/// before (or instead of) the ones given, and rolegate's own credential, which the command
/// has no use for: it gets one org's AWS credentials, not the key that mints them.
/// `AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE` stay: they hold settings other than
/// credentials, and environment credentials come first in every SDK's chain.
const REMOVED: &[&str] = &[
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_SESSION_EXPIRATION",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "ROLEGATE_TOKEN",
    "ROLEGATE_API_KEY",
];

/// How the command gets its credentials.
#[derive(Debug)]
pub enum Given<'a> {
    /// Static keys in the environment.
    Keys(&'a Credentials),
    /// The local endpoint's URL and token (and the region, if the server named one).
    Endpoint {
        url: &'a str,
        token: &'a SecretString,
        region: Option<&'a str>,
    },
}

/// The command's environment changes: variables to remove, then variables to set.
pub fn environment(
    org: &str,
    given: &Given<'_>,
) -> (Vec<&'static str>, Vec<(&'static str, String)>) {
    let mut set = vec![(NEST_VAR, org.to_owned())];
    let region = match given {
        Given::Keys(c) => {
            set.push(("AWS_ACCESS_KEY_ID", c.access_key_id.clone()));
            set.push((
                "AWS_SECRET_ACCESS_KEY",
                c.secret_access_key.expose_secret().to_owned(),
            ));
            set.push((
                "AWS_SESSION_TOKEN",
                c.session_token.expose_secret().to_owned(),
            ));
            set.push(("AWS_CREDENTIAL_EXPIRATION", expiration(c)));
            c.region.as_deref()
        }
        Given::Endpoint { url, token, region } => {
            set.push((ecs::FULL_URI, (*url).to_owned()));
            set.push((ecs::AUTH_TOKEN, token.expose_secret().to_owned()));
            *region
        }
    };
    if let Some(r) = region.filter(|r| !r.is_empty()) {
        // AWS_REGION for the SDKs and the AWS CLI v2, AWS_DEFAULT_REGION for the AWS CLI v1.
        set.push(("AWS_REGION", r.to_owned()));
        set.push(("AWS_DEFAULT_REGION", r.to_owned()));
    }
    let remove = REMOVED
        .iter()
        .copied()
        .filter(|k| !set.iter().any(|(s, _)| s == k))
        .collect();
    (remove, set)
}

/// Refuses to run inside another `rolegate exec` unless `force`: two sets of credentials in
/// one shell make it unclear which account a command acts in.
pub fn check_nesting(env: Env<'_>, force: bool) -> Result<(), String> {
    match env(NEST_VAR).filter(|v| !v.is_empty()) {
        Some(outer) if !force => Err(format!(
            "already inside `rolegate exec` for org {outer:?} ({NEST_VAR} is set): running \
             another would mix two orgs' credentials in one shell. Leave that shell first, \
             or pass --force to replace its credentials for this command"
        )),
        _ => Ok(()),
    }
}

fn command(args: &ExecArgs) -> anyhow::Result<(&OsString, &[OsString])> {
    args.command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no command given: rolegate exec --org ORG -- COMMAND"))
}

/// The shell's convention when a command cannot be started: 127 not found, 126 otherwise.
fn cannot_run(program: &OsString, e: &std::io::Error) -> ExitCode {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("rolegate: cannot run {:?}: {e}", program);
    }
    if e.kind() == std::io::ErrorKind::NotFound {
        ExitCode::from(127)
    } else {
        ExitCode::from(126)
    }
}

/// `rolegate exec`.
pub async fn run(args: &ExecArgs, env: Env<'_>, clock: Arc<dyn Clock>) -> anyhow::Result<ExitCode> {
    check_nesting(env, args.force).map_err(anyhow::Error::msg)?;
    let (program, rest) = command(args)?;
    let source = Arc::new(Source::new(&args.connection, &args.target, env)?);
    // Credentials first: a refusal fails here, before the command starts.
    let credentials = source.get(&*clock, false).await?;
    if !args.server_mode {
        use std::os::unix::process::CommandExt as _;
        let (remove, set) = environment(source.org(), &Given::Keys(&credentials));
        let mut cmd = std::process::Command::new(program);
        cmd.args(rest);
        remove.iter().for_each(|k| {
            cmd.env_remove(k);
        });
        cmd.envs(set);
        // Returns only if the command could not be started.
        let e = cmd.exec();
        return Ok(cannot_run(program, &e));
    }
    if let Some(path) = super::aws_profile::credentials_path(env)
        && has_default_profile(&path)
    {
        super::warn(&format!(
            "{} has a [default] profile: SDKs read it before the local endpoint \
             --server-mode gives the command",
            path.display()
        ));
    }
    let server = ecs::Server::start(
        Arc::clone(&source),
        clock,
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await?;
    let (remove, set) = environment(
        source.org(),
        &Given::Endpoint {
            url: server.url(),
            token: server.token(),
            region: credentials.region.as_deref(),
        },
    );
    drop(credentials);
    // Listen before the child starts, so that no signal in between kills rolegate alone.
    let mut signals = Signals::new()?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(rest).envs(set);
    remove.iter().for_each(|k| {
        cmd.env_remove(k);
    });
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            server.stop().await?;
            return Ok(cannot_run(program, &e));
        }
    };
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            sig = signals.next() => forward(&child, sig),
        }
    };
    server.stop().await?;
    Ok(exit_code(status))
}

/// Whether the shared credentials file has a `[default]` section.
fn has_default_profile(path: &std::path::Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| text.lines().any(|l| l.trim() == "[default]"))
}

/// The four signals forwarded to the child.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            quit: signal(SignalKind::quit())?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.int.recv() => Signal::SIGINT,
            _ = self.term.recv() => Signal::SIGTERM,
            _ = self.hup.recv() => Signal::SIGHUP,
            _ = self.quit.recv() => Signal::SIGQUIT,
        }
    }
}

/// Sends `sig` to the child, except a Ctrl-C or Ctrl-\ from the terminal: the terminal sends
/// those to its whole foreground process group, the child included, and a second one would
/// make tools such as terraform abort instead of stopping cleanly.
fn forward(child: &tokio::process::Child, sig: Signal) {
    use nix::unistd::{Pid, getpgrp, tcgetpgrp};
    let from_terminal = matches!(sig, Signal::SIGINT | Signal::SIGQUIT)
        && tcgetpgrp(std::io::stdin()).is_ok_and(|fg| fg == getpgrp());
    if from_terminal {
        return;
    }
    // `id()` is `None` once the child has been reaped: nothing left to signal.
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
    }
}

/// The child's exit code, or 128 + the signal that killed it, as a shell reports it.
pub fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt as _;
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        (None, None) => 1,
    };
    ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::process::ExitStatusExt as _;

    use super::*;

    fn get<'a>(set: &'a [(&'static str, String)], k: &str) -> Option<&'a str> {
        set.iter().find(|(s, _)| *s == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn static_keys_replace_every_other_source_of_credentials() {
        let c = crate::client::format::tests::sample(Some("eu-west-1"));
        let (remove, set) = environment("acme", &Given::Keys(&c));
        assert_eq!(get(&set, "AWS_ACCESS_KEY_ID"), Some("ASIAEXAMPLE"));
        assert_eq!(get(&set, "AWS_SECRET_ACCESS_KEY"), Some("se'cr$et`x"));
        assert_eq!(get(&set, "AWS_SESSION_TOKEN"), Some("tok/+="));
        assert_eq!(
            get(&set, "AWS_CREDENTIAL_EXPIRATION"),
            Some("2026-12-01T17:00:00Z")
        );
        assert_eq!(get(&set, "AWS_REGION"), Some("eu-west-1"));
        assert_eq!(get(&set, "AWS_DEFAULT_REGION"), Some("eu-west-1"));
        assert_eq!(get(&set, NEST_VAR), Some("acme"));
        for k in [
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_SECURITY_TOKEN",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ROLE_ARN",
            "ROLEGATE_API_KEY",
            "ROLEGATE_TOKEN",
        ] {
            assert!(remove.contains(&k), "{k}");
        }
        // Nothing is both removed and set.
        assert!(!remove.iter().any(|k| get(&set, k).is_some()));
        let (_, set) = environment(
            "acme",
            &Given::Keys(&crate::client::format::tests::sample(None)),
        );
        assert_eq!(get(&set, "AWS_REGION"), None);
    }

    #[test]
    fn server_mode_gives_the_endpoint_and_no_keys() {
        let token = SecretString::from("rgl_tok");
        let (remove, set) = environment(
            "acme",
            &Given::Endpoint {
                url: "http://127.0.0.1:1234/",
                token: &token,
                region: Some("us-east-1"),
            },
        );
        assert_eq!(get(&set, ecs::FULL_URI), Some("http://127.0.0.1:1234/"));
        assert_eq!(get(&set, ecs::AUTH_TOKEN), Some("rgl_tok"));
        assert_eq!(get(&set, "AWS_REGION"), Some("us-east-1"));
        for k in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
        ] {
            assert!(remove.contains(&k), "{k}");
        }
        assert!(!remove.contains(&ecs::FULL_URI));
    }

    #[test]
    fn nesting_is_refused_unless_forced() {
        let inside = |k: &str| (k == NEST_VAR).then(|| "outer-org".to_owned());
        let e = check_nesting(&inside, false).unwrap_err();
        assert!(e.contains("\"outer-org\"") && e.contains("--force"), "{e}");
        assert!(check_nesting(&inside, true).is_ok());
        assert!(check_nesting(&|_| None, false).is_ok());
        assert!(check_nesting(&|_| Some(String::new()), false).is_ok());
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        let code = |raw: i32| format!("{:?}", exit_code(std::process::ExitStatus::from_raw(raw)));
        // A wait status: exit code in the high byte, or the signal in the low bits.
        assert_eq!(code(3 << 8), format!("{:?}", ExitCode::from(3)));
        assert_eq!(code(0), format!("{:?}", ExitCode::from(0)));
        assert_eq!(code(15), format!("{:?}", ExitCode::from(143)));
        assert_eq!(code(9), format!("{:?}", ExitCode::from(137)));
    }
}
