//! The `credential_process` cache. The AWS CLI runs the process for every command, so
//! credentials are kept in a 0600 file (directory 0700) per server, org, access level,
//! principal and duration, named by a SHA-256 of those (never by the token), and served
//! from there while they have more than the refresh window left.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use super::atomic;
use super::http::{ClientError, Credentials};
use super::settings::{Env, hex};

/// Never refresh earlier than this before expiry.
const MAX_REFRESH_WINDOW: Duration = Duration::from_secs(300);
/// When the server cannot be reached, still-valid cached credentials with at least this
/// much left are used (with a warning) rather than failing.
const MIN_FALLBACK_LIFETIME: Duration = Duration::from_secs(60);

/// What the cache file is for. Two lookups share a file only if all of these match.
#[derive(Debug)]
pub struct CacheKey<'a> {
    pub server: &'a str,
    pub org: &'a str,
    pub access_level: Option<&'a str>,
    /// [`super::settings::Credential::digest`].
    pub principal: String,
    pub duration: Option<u32>,
}

impl CacheKey<'_> {
    /// A SHA-256 of the parts; a token never appears in a file name.
    pub fn file_name(&self) -> String {
        let parts = serde_json::json!([
            1,
            self.server,
            self.org,
            self.access_level,
            self.principal,
            self.duration
        ]);
        format!("{}.json", hex(&Sha256::digest(parts.to_string())))
    }
}

/// One cache file: the server's response and when it arrived.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    #[serde(with = "time::serde::rfc3339")]
    fetched_at: OffsetDateTime,
    credentials: Credentials,
}

/// The result of [`Cache::get_or_fetch`], with anything to warn about (never a secret).
#[derive(Debug)]
pub struct Lookup {
    pub credentials: Credentials,
    pub warnings: Vec<String>,
}

/// The cache directory.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
}

/// `min(5 min, 25 % of the lifetime)`.
pub fn refresh_window(lifetime: Duration) -> Duration {
    MAX_REFRESH_WINDOW.min(lifetime / 4)
}

fn remaining(c: &Credentials, now: OffsetDateTime) -> Duration {
    Duration::try_from(c.expiration - now).unwrap_or(Duration::ZERO)
}

impl Cache {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// `--cache-dir`, `$ROLEGATE_CACHE_DIR`, `$XDG_CACHE_HOME/rolegate`, `~/.cache/rolegate`.
    pub fn locate(flag: Option<&Path>, env: Env<'_>) -> Option<Self> {
        let var = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        flag.map(Path::to_path_buf)
            .or_else(|| var("ROLEGATE_CACHE_DIR"))
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("rolegate")))
            .or_else(|| var("HOME").map(|h| h.join(".cache").join("rolegate")))
            .map(Self::new)
    }

    pub fn path(&self, key: &CacheKey<'_>) -> PathBuf {
        self.dir.join(key.file_name())
    }

    /// The cached entry, or `None` if missing, unreadable, corrupt or not a private file.
    fn load(&self, key: &CacheKey<'_>) -> Option<Entry> {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.path(key);
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
            return None;
        }
        serde_json::from_slice(&std::fs::read(&path).ok()?).ok()
    }

    fn store(&self, key: &CacheKey<'_>, entry: &Entry) -> std::io::Result<()> {
        atomic::ensure_dir(&self.dir, true)?;
        let bytes = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        atomic::write_private(&self.path(key), &bytes)?;
        self.prune(entry.fetched_at);
        Ok(())
    }

    /// Removes entries that have expired (say, for a rotated key), so the directory does not
    /// grow. Only files named like entries are looked at; failures are ignored.
    fn prune(&self, now: OffsetDateTime) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for path in dir.filter_map(|e| e.ok().map(|e| e.path())) {
            let ours = path.extension().is_some_and(|x| x == "json")
                && path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()));
            let expired = ours
                && std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Entry>(&b).ok())
                    .is_some_and(|e| e.credentials.expiration <= now);
            if expired {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    /// Cached credentials if they have more than the refresh window left, else fresh ones
    /// from `fetch(force_refresh)` (stored for next time). If the server hands back
    /// credentials already inside the window (its own cache), asks once more with
    /// `force_refresh`.
    pub async fn get_or_fetch<F, Fut>(
        &self,
        key: &CacheKey<'_>,
        now: OffsetDateTime,
        skip_cache: bool,
        fetch: F,
    ) -> Result<Lookup, ClientError>
    where
        F: Fn(bool) -> Fut,
        Fut: Future<Output = Result<Credentials, ClientError>>,
    {
        let lifetime = |e: &Entry| match key.duration {
            Some(d) => Duration::from_secs(u64::from(d)),
            None => Duration::try_from(e.credentials.expiration - e.fetched_at)
                .unwrap_or(Duration::ZERO),
        };
        let cached = if skip_cache { None } else { self.load(key) };
        if let Some(entry) = &cached
            && remaining(&entry.credentials, now) > refresh_window(lifetime(entry))
        {
            return Ok(Lookup {
                credentials: entry.credentials.clone(),
                warnings: Vec::new(),
            });
        }
        let mut warnings = Vec::new();
        let mut fresh = match fetch(skip_cache).await {
            Ok(c) => c,
            Err(e) if e.is_transient() => match cached {
                Some(entry) if remaining(&entry.credentials, now) >= MIN_FALLBACK_LIFETIME => {
                    warnings.push(format!(
                        "could not refresh ({e}); using cached credentials that expire at {}",
                        super::format::expiration(&entry.credentials)
                    ));
                    return Ok(Lookup {
                        credentials: entry.credentials,
                        warnings,
                    });
                }
                _ => return Err(e),
            },
            Err(e) => return Err(e),
        };
        let entry_for = |c: Credentials| Entry {
            fetched_at: now,
            credentials: c,
        };
        if !skip_cache
            && remaining(&fresh, now) <= refresh_window(lifetime(&entry_for(fresh.clone())))
            && let Ok(newer) = fetch(true).await
        {
            fresh = newer;
        }
        let entry = entry_for(fresh);
        if let Err(e) = self.store(key, &entry) {
            warnings.push(format!(
                "cannot write the credential cache in {}: {e}",
                self.dir.display()
            ));
        }
        Ok(Lookup {
            credentials: entry.credentials,
            warnings,
        })
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
