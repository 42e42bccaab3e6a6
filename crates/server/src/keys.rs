//! Loading the master keyring: inline (`master_key`), from a file (`master_key_file`), or a
//! key generated on first start in `<data_dir>/master.key` (mode 0600).

use std::io::Write as _;
use std::path::Path;

use rolegate_crypto::{Keyring, MasterKey};
use secrecy::ExposeSecret as _;

use crate::config::{ConfigError, MasterKeySource, Settings};

fn bad(setting: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.to_owned(),
        reason: reason.into(),
    }
}

/// Parses base64 keys separated by commas or newlines, oldest first.
pub fn parse_keys(setting: &str, text: &str) -> Result<Vec<MasterKey>, ConfigError> {
    let keys = text
        .split([',', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .enumerate()
        .map(|(i, k)| {
            MasterKey::from_base64(k).map_err(|e| bad(setting, format!("key {}: {e}", i + 1)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(bad(setting, "no key found"));
    }
    Ok(keys)
}

/// The generated key file's path.
#[must_use]
pub fn generated_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("master.key")
}

/// Loads the keyring. With `create`, a missing generated key file is created.
pub fn load_keyring(settings: &Settings, create: bool) -> Result<Keyring, ConfigError> {
    let keys = match &settings.master_key {
        MasterKeySource::Inline(k) => parse_keys("master_key", k.expose_secret())?,
        MasterKeySource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                bad(
                    "master_key_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            parse_keys("master_key_file", &text)?
        }
        MasterKeySource::Generated => {
            let path = generated_path(&settings.data_dir);
            if create {
                create_key_file(&path)?;
            } else if !path.exists() {
                return Err(bad(
                    "master_key",
                    format!(
                        "no master key configured and {} does not exist; run `rolegate serve` once or set ROLEGATE_MASTER_KEY",
                        path.display()
                    ),
                ));
            }
            parse_keys("master_key", &read_key_file(&path)?)?
        }
    };
    Keyring::new(&keys).map_err(|e| bad("master_key", e.to_string()))
}

/// Creates the generated key file unless it exists, atomically: `create_new` fails when
/// another process (a second `serve`, an admin command) created it first, and then its key
/// is the one used.
fn create_key_file(path: &Path) -> Result<(), ConfigError> {
    let fail = |e: std::io::Error| {
        bad(
            "master_key",
            format!("cannot create {}: {e}", path.display()),
        )
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = match opts.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(fail(e)),
    };
    // One write of the whole line: a reader that finds the line's end has the whole key.
    f.write_all(format!("{}\n", MasterKey::generate().to_base64()).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(fail)?;
    tracing::warn!(path = %path.display(), "no master key configured; generated one. Back it up: without it the store cannot be read");
    Ok(())
}

/// Reads the generated key file. Another process may have just created it and not yet
/// written its line: wait (up to 2 s) for a complete line rather than read half a key.
fn read_key_file(path: &Path) -> Result<String, ConfigError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad("master_key", format!("cannot read {}: {e}", path.display())))?;
        if text.ends_with('\n') || std::time::Instant::now() >= deadline {
            return Ok(text);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Writes a file readable only by its owner, creating parent directories.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::{Arc, Barrier};

    use super::*;

    /// Processes starting together on one empty data dir must all end up with one key.
    #[test]
    fn concurrent_first_starts_agree_on_one_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let mut settings = Settings::defaults().unwrap();
            settings.data_dir = dir.path().to_path_buf();
            let barrier = Arc::new(Barrier::new(8));
            let ids: Vec<String> = (0..8)
                .map(|_| {
                    let (settings, barrier) = (settings.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        load_keyring(&settings, true)
                            .map(|r| r.current_id().to_string())
                            .unwrap_or_else(|e| format!("error: {e}"))
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect();
            assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
            assert!(!ids[0].starts_with("error"), "{ids:?}");
        }
    }
}
