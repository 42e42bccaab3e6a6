//! The data directory holds the store, its rate-limit file, the generated master key and the
//! first admin's token: the directory is 0700 and every file in it 0600. New files are
//! created that way (the SQLite engine pre-creates its files 0600, and SQLite gives the
//! `-wal` and `-shm` files the database file's mode); a directory or file left more open by
//! an older version or by hand is tightened at start-up, with a log line.

use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::Path;

use crate::config::{ConfigError, bad};

/// Creates `dir` (0700) if missing, and tightens it and the files directly in it.
///
/// # Errors
/// A [`ConfigError`] naming `data_dir` when the directory cannot be created or a permission
/// cannot be changed (for example, files owned by another user).
pub fn secure_data_dir(dir: &Path) -> Result<(), ConfigError> {
    let fail = |what: &Path, e: std::io::Error| {
        bad("data_dir", format!("cannot secure {}: {e}", what.display()))
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| fail(dir, e))?;
    tighten(dir, 0o700).map_err(|e| fail(dir, e))?;
    for entry in std::fs::read_dir(dir).map_err(|e| fail(dir, e))? {
        let entry = entry.map_err(|e| fail(dir, e))?;
        // Never follow a symlink here: it may point anywhere.
        let kind = entry.file_type().map_err(|e| fail(&entry.path(), e))?;
        if kind.is_file() {
            tighten(&entry.path(), 0o600).map_err(|e| fail(&entry.path(), e))?;
        }
    }
    Ok(())
}

/// Removes group and other permissions from `path` when it has any, and logs it.
fn tighten(path: &Path, mode: u32) -> std::io::Result<()> {
    let old = std::fs::symlink_metadata(path)?.permissions().mode() & 0o7777;
    if old & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        tracing::warn!(
            path = %path.display(),
            old_mode = format!("{old:o}"),
            new_mode = format!("{mode:o}"),
            "tightened the permissions of a data directory entry that other local users could read"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn an_open_directory_and_its_files_are_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let db = dir.join("rolegate.db");
        std::fs::write(&db, b"x").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        secure_data_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&db), 0o600);
        let fresh = tmp.path().join("new/deeper");
        secure_data_dir(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
    }
}
