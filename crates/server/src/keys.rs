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
            if !path.exists() {
                if !create {
                    return Err(bad(
                        "master_key",
                        format!(
                            "no master key configured and {} does not exist; run `rolegate serve` once or set ROLEGATE_MASTER_KEY",
                            path.display()
                        ),
                    ));
                }
                write_private(&path, &format!("{}\n", MasterKey::generate().to_base64())).map_err(
                    |e| {
                        bad(
                            "master_key",
                            format!("cannot create {}: {e}", path.display()),
                        )
                    },
                )?;
                tracing::warn!(path = %path.display(), "no master key configured; generated one. Back it up: without it the store cannot be read");
            }
            let text = std::fs::read_to_string(&path)
                .map_err(|e| bad("master_key", format!("cannot read {}: {e}", path.display())))?;
            parse_keys("master_key", &text)?
        }
    };
    Keyring::new(&keys).map_err(|e| bad("master_key", e.to_string()))
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
