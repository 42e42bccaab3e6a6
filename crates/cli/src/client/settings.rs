//! Where the client finds its server and credential: flags, then `ROLEGATE_*` environment
//! variables, then the client config file. The environment is passed in as a function so
//! that tests never touch the process environment.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use reqwest::Url;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::args::ConnectionArgs;

/// Reads one environment variable; `|k| std::env::var(k).ok()` in the binary.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The server address used when no flag, variable or config file names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// How the client authenticates: an operator token or an organisation's API key.
#[derive(Debug)]
pub enum Credential {
    /// `Authorization: Bearer rgt_…` (a `rgk_…` key also works this way).
    Token(SecretString),
    /// `X-Api-Key: rgk_…`.
    ApiKey(SecretString),
}

impl Credential {
    /// The secret itself, for the request header and for redaction.
    pub fn secret(&self) -> &str {
        match self {
            Self::Token(s) | Self::ApiKey(s) => s.expose_secret(),
        }
    }

    /// A SHA-256 of the kind and the secret: names the principal in cache keys without
    /// revealing it.
    pub fn digest(&self) -> String {
        let kind = match self {
            Self::Token(_) => "token",
            Self::ApiKey(_) => "api_key",
        };
        hex(&Sha256::digest(format!("{kind}\0{}", self.secret())))
    }
}

/// Resolved client settings.
#[derive(Debug)]
pub struct ClientSettings {
    /// The server's base URL, ending in `/`.
    pub server: Url,
    pub credential: Credential,
    /// Extra trusted certificate authorities (PEM), from `--ca-file`, `ROLEGATE_CA_FILE` or
    /// `ca_file`.
    pub ca_pem: Option<Vec<u8>>,
    /// Things worth telling the user on stderr (never a secret).
    pub warnings: Vec<String>,
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read client config file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("client config file {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error(
        "client config file {} holds a secret but is readable by group or others; run `chmod 600 {}`",
        path.display(), path.display()
    )]
    TooOpen { path: PathBuf },
    #[error("{0}")]
    Invalid(String),
}

/// The client config file's keys (`server`, `token`, `token_file`, `api_key`, `api_key_file`,
/// `ca_file`).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    server: Option<String>,
    token: Option<SecretString>,
    token_file: Option<PathBuf>,
    api_key: Option<SecretString>,
    api_key_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
}

/// Resolves the settings: flags > environment > config file > defaults.
pub fn resolve(flags: &ConnectionArgs, env: Env<'_>) -> Result<ClientSettings, SettingsError> {
    let mut warnings = Vec::new();
    let (path, file) = load_config(flags, env)?;
    let server = flags
        .server
        .clone()
        .or_else(|| non_empty(env("ROLEGATE_SERVER")))
        .or_else(|| file.server.clone())
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let server = parse_server(&server, &mut warnings)?;

    let from_flags = one_of(
        "--token and --api-key",
        flags.token.clone().map(Credential::Token),
        flags.api_key.clone().map(Credential::ApiKey),
    )?;
    let from_env = || {
        one_of(
            "ROLEGATE_TOKEN and ROLEGATE_API_KEY",
            non_empty(env("ROLEGATE_TOKEN")).map(|t| Credential::Token(t.into())),
            non_empty(env("ROLEGATE_API_KEY")).map(|k| Credential::ApiKey(k.into())),
        )
    };
    let credential = match from_flags {
        Some(c) => c,
        None => match from_env()? {
            Some(c) => c,
            None => from_file(&file, path.as_deref(), &mut warnings)?.ok_or_else(|| {
                let place = path.as_ref().map_or_else(
                    || "a client config file".to_owned(),
                    |p| p.display().to_string(),
                );
                SettingsError::Invalid(format!(
                    "no credential: pass --api-key or --token, set ROLEGATE_API_KEY or \
                     ROLEGATE_TOKEN, or set api_key_file or token_file in {place}"
                ))
            })?,
        },
    };
    let ca_file = flags
        .ca_file
        .clone()
        .or_else(|| non_empty(env("ROLEGATE_CA_FILE")).map(PathBuf::from))
        .or_else(|| {
            // Relative to the config file, like the other *_file keys.
            let dir = path
                .as_deref()
                .and_then(Path::parent)
                .unwrap_or(Path::new("."));
            file.ca_file.as_ref().map(|p| dir.join(p))
        });
    let ca_pem = ca_file.map(|p| read_ca(&p)).transpose()?;
    Ok(ClientSettings {
        server,
        credential,
        ca_pem,
        warnings,
    })
}

/// The config file to read: `--config-file`, `ROLEGATE_CLIENT_CONFIG` (both must exist), or
/// `$XDG_CONFIG_HOME/rolegate/config.toml`, `~/.config/rolegate/config.toml` (optional).
pub fn config_path(flags: &ConnectionArgs, env: Env<'_>) -> (Option<PathBuf>, bool) {
    if let Some(p) = &flags.config_file {
        return (Some(p.clone()), true);
    }
    if let Some(p) = non_empty(env("ROLEGATE_CLIENT_CONFIG")) {
        return (Some(PathBuf::from(p)), true);
    }
    let base = non_empty(env("XDG_CONFIG_HOME"))
        .map(PathBuf::from)
        .or_else(|| non_empty(env("HOME")).map(|h| PathBuf::from(h).join(".config")));
    (base.map(|b| b.join("rolegate").join("config.toml")), false)
}

fn load_config(
    flags: &ConnectionArgs,
    env: Env<'_>,
) -> Result<(Option<PathBuf>, ConfigFile), SettingsError> {
    let (path, required) = config_path(flags, env);
    let Some(path) = path else {
        return Ok((None, ConfigFile::default()));
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((None, ConfigFile::default()));
        }
        Err(source) => return Err(SettingsError::Read { path, source }),
    };
    let file: ConfigFile = toml::from_str(&text).map_err(|e| SettingsError::Parse {
        path: path.clone(),
        // toml's message quotes the offending line, which could be a secret: keep only
        // the description of what is wrong.
        message: e.message().to_owned(),
    })?;
    if (file.token.is_some() || file.api_key.is_some()) && readable_by_others(&path) {
        return Err(SettingsError::TooOpen { path });
    }
    Ok((Some(path), file))
}

fn from_file(
    file: &ConfigFile,
    path: Option<&Path>,
    warnings: &mut Vec<String>,
) -> Result<Option<Credential>, SettingsError> {
    let dir = path.and_then(Path::parent).unwrap_or(Path::new("."));
    let read = |p: &PathBuf, warnings: &mut Vec<String>| -> Result<SecretString, SettingsError> {
        let p = dir.join(p);
        let text = std::fs::read_to_string(&p).map_err(|source| SettingsError::Read {
            path: p.clone(),
            source,
        })?;
        if readable_by_others(&p) {
            warnings.push(format!(
                "{} is readable by group or others; consider `chmod 600 {}`",
                p.display(),
                p.display()
            ));
        }
        let secret = text.trim();
        if secret.is_empty() {
            return Err(SettingsError::Invalid(format!("{} is empty", p.display())));
        }
        Ok(secret.to_owned().into())
    };
    let token = match (&file.token, &file.token_file) {
        (Some(_), Some(_)) => return Err(both("token and token_file")),
        (Some(t), None) => Some(Credential::Token(t.clone())),
        (None, Some(p)) => Some(Credential::Token(read(p, warnings)?)),
        (None, None) => None,
    };
    let key = match (&file.api_key, &file.api_key_file) {
        (Some(_), Some(_)) => return Err(both("api_key and api_key_file")),
        (Some(k), None) => Some(Credential::ApiKey(k.clone())),
        (None, Some(p)) => Some(Credential::ApiKey(read(p, warnings)?)),
        (None, None) => None,
    };
    one_of("a token and an API key in the config file", token, key)
}

/// Reads a CA bundle and checks that it holds at least one PEM certificate.
fn read_ca(path: &Path) -> Result<Vec<u8>, SettingsError> {
    let pem = std::fs::read(path).map_err(|source| SettingsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => Ok(pem),
        _ => Err(SettingsError::Invalid(format!(
            "CA file {} holds no PEM certificate",
            path.display()
        ))),
    }
}

fn one_of(
    what: &str,
    token: Option<Credential>,
    key: Option<Credential>,
) -> Result<Option<Credential>, SettingsError> {
    match (token, key) {
        (Some(_), Some(_)) => Err(both(what)),
        (t, k) => Ok(t.or(k)),
    }
}

fn both(what: &str) -> SettingsError {
    SettingsError::Invalid(format!("set only one of {what}"))
}

fn parse_server(raw: &str, warnings: &mut Vec<String>) -> Result<Url, SettingsError> {
    // Text with an `@` may carry a password: it is not echoed.
    let shown = if raw.contains('@') {
        String::new()
    } else {
        format!(" {raw:?}")
    };
    let bad = |why: &str| SettingsError::Invalid(format!("server address{shown}: {why}"));
    let mut url = Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must start with http:// or https://"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not hold a user name or password"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if url.scheme() == "http" && !loopback {
        warnings.push(format!(
            "the server {url} is plain http: the credential and the AWS keys cross the network unencrypted"
        ));
    }
    Ok(url)
}

fn readable_by_others(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
