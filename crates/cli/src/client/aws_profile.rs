//! Writes one `[NAME]` section of the AWS shared credentials file (`~/.aws/credentials` or
//! `$AWS_SHARED_CREDENTIALS_FILE`). Only the key lines rolegate owns in that section change;
//! every other line, comment and section stays byte for byte. The file is replaced
//! atomically, mode 0600, under an advisory lock on `<file>.lock`, so that two rolegate
//! processes writing profiles at once never lose one another's update. A value from the
//! server with a newline or any other control character is refused: it could add keys or
//! sections to the file.

use std::path::{Path, PathBuf};

use secrecy::ExposeSecret as _;

use super::atomic;
use super::format::expiration;
use super::http::Credentials;
pub use super::profile_name::ProfileName;
use super::settings::Env;

/// The keys rolegate writes, in this order. `x_security_token_expires` is informational
/// (the AWS tools ignore it; several credential helpers write it).
const KEYS: [&str; 4] = [
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "x_security_token_expires",
];

/// `$AWS_SHARED_CREDENTIALS_FILE` (with `~/` expanded), else `~/.aws/credentials`.
pub fn credentials_path(env: Env<'_>) -> Option<PathBuf> {
    let home = env("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    match env("AWS_SHARED_CREDENTIALS_FILE").filter(|p| !p.is_empty()) {
        Some(p) => match (p.strip_prefix("~/"), &home) {
            (Some(rest), Some(h)) => Some(h.join(rest)),
            _ => Some(PathBuf::from(p)),
        },
        None => home.map(|h| h.join(".aws").join("credentials")),
    }
}

/// Writes `credentials` into the `[name]` section of the file at `path`.
pub fn write(path: &Path, name: &ProfileName, credentials: &Credentials) -> std::io::Result<()> {
    let exp = expiration(credentials);
    let values = [
        credentials.access_key_id.as_str(),
        credentials.secret_access_key.expose_secret(),
        credentials.session_token.expose_secret(),
        exp.as_str(),
    ];
    for (key, value) in KEYS.iter().zip(values) {
        if value.is_empty() || value.chars().any(char::is_control) {
            // The value itself is never shown: it may be a secret.
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the server's value for {key} is empty or holds a newline or control \
                     character; the credentials file was not changed"
                ),
            ));
        }
    }
    // Write through a symlink (dotfile managers) rather than replacing it.
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        atomic::ensure_dir(dir, false)?;
    }
    // The lock is on a file beside the credentials file, not on it: the rename below
    // replaces that file, and a lock on the old one would not exclude the next writer.
    let mut lock_path = path.clone().into_os_string();
    lock_path.push(".lock");
    let lock = {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)?
    };
    lock.lock()?;
    let existing = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let updated = update(&existing, name, &values);
    let written = atomic::write_private(&path, updated.as_bytes());
    drop(lock);
    written
}

/// The ini key of a line, lower-cased, or `None` for blanks, comments and continuations.
fn key_of(line: &str) -> Option<String> {
    if line.starts_with([' ', '\t']) {
        return None;
    }
    let t = line.trim();
    if t.is_empty() || t.starts_with(['#', ';']) {
        return None;
    }
    let end = t.find(['=', ':']).unwrap_or(t.len());
    Some(t[..end].trim().to_ascii_lowercase())
}

fn is_header(line: &str) -> bool {
    let t = line.trim();
    t.starts_with('[') && t.ends_with(']')
}

fn is_continuation(line: &str) -> bool {
    line.starts_with([' ', '\t']) && !line.trim().is_empty()
}

/// The new file content: `existing` with the `[name]` section's rolegate keys set to `values`
/// (in [`KEYS`] order), the section appended if it is missing.
fn update(existing: &str, name: &ProfileName, values: &[&str; 4]) -> String {
    let nl = if existing.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let header = format!("[{}]", name.as_str());
    let lines: Vec<&str> = existing.split_inclusive('\n').collect();
    let line_for = |i: usize| format!("{} = {}{nl}", KEYS[i], values[i]);

    let Some(start) = lines.iter().position(|l| l.trim() == header) else {
        let mut out = existing.to_owned();
        if !out.is_empty() {
            if !out.ends_with('\n') {
                out.push_str(nl);
            }
            // One blank line before the new section, unless the file already ends with one.
            if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                out.push_str(nl);
            }
        }
        out.push_str(&header);
        out.push_str(nl);
        (0..KEYS.len()).for_each(|i| out.push_str(&line_for(i)));
        return out;
    };
    let end = lines[start + 1..]
        .iter()
        .position(|l| is_header(l))
        .map_or(lines.len(), |p| start + 1 + p);

    let mut out: Vec<String> = lines[..=start].iter().map(|l| (*l).to_owned()).collect();
    if let Some(l) = out.last_mut().filter(|l| !l.ends_with('\n')) {
        l.push_str(nl);
    }
    let mut written = [false; 4];
    let mut skipping_continuation = false;
    for line in &lines[start + 1..end] {
        if skipping_continuation && is_continuation(line) {
            continue;
        }
        skipping_continuation = false;
        match key_of(line).and_then(|k| KEYS.iter().position(|o| *o == k)) {
            Some(i) => {
                if !written[i] {
                    out.push(line_for(i));
                    written[i] = true;
                }
                skipping_continuation = true;
            }
            None => out.push((*line).to_owned()),
        }
    }
    // Missing keys go after the section's last non-blank line, before any blank separator.
    let mut insert_at = out.len();
    while insert_at > start + 1 && out[insert_at - 1].trim().is_empty() {
        insert_at -= 1;
    }
    if let Some(last) = out.get_mut(insert_at - 1).filter(|l| !l.ends_with('\n')) {
        last.push_str(nl);
    }
    let missing: Vec<String> = (0..KEYS.len())
        .filter(|i| !written[*i])
        .map(line_for)
        .collect();
    out.splice(insert_at..insert_at, missing);
    let mut text = out.concat();
    for line in &lines[end..] {
        text.push_str(line);
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    const V: [&str; 4] = ["AKNEW", "SECRETNEW", "TOKENNEW", "2026-12-01T18:00:00Z"];

    fn name(s: &str) -> ProfileName {
        ProfileName::parse(s).unwrap()
    }

    #[test]
    fn profile_names_are_validated() {
        for ok in ["dev", "acme-corp.read", "a_b@c+d", "X1"] {
            assert!(ProfileName::parse(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(65);
        for bad in [
            "",
            "a b",
            "a]",
            "[a",
            "a\nb",
            "a=b",
            "a;b",
            "é",
            long.as_str(),
        ] {
            assert!(ProfileName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_existing_section_is_updated_in_place_and_the_rest_is_untouched() {
        let before = "# my creds\n[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = S\n\n\
                      [dev]\n; note\nregion = eu-west-1\naws_access_key_id=AKOLD\naws_session_token = OLD\n  continued\n\n\
                      [prod]\naws_access_key_id = AKPROD\n";
        let after = update(before, &name("dev"), &V);
        assert_eq!(
            after,
            "# my creds\n[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = S\n\n\
             [dev]\n; note\nregion = eu-west-1\naws_access_key_id = AKNEW\naws_session_token = TOKENNEW\n\
             aws_secret_access_key = SECRETNEW\nx_security_token_expires = 2026-12-01T18:00:00Z\n\n\
             [prod]\naws_access_key_id = AKPROD\n"
        );
        // Idempotent: a second write with the same values changes nothing.
        assert_eq!(update(&after, &name("dev"), &V), after);
    }

    #[test]
    fn a_missing_section_is_appended() {
        let before = "[default]\naws_access_key_id = AKDEFAULT";
        let after = update(before, &name("dev"), &V);
        assert_eq!(
            after,
            "[default]\naws_access_key_id = AKDEFAULT\n\n[dev]\naws_access_key_id = AKNEW\n\
             aws_secret_access_key = SECRETNEW\naws_session_token = TOKENNEW\n\
             x_security_token_expires = 2026-12-01T18:00:00Z\n"
        );
        assert!(update("", &name("dev"), &V).starts_with("[dev]\n"));
        let spaced = update("[a]\nk = v\n\n", &name("dev"), &V);
        assert!(spaced.starts_with("[a]\nk = v\n\n[dev]\n"), "{spaced}");
    }

    #[test]
    fn a_last_section_without_trailing_newline_and_crlf_files_work() {
        let after = update("[dev]\r\nregion = x", &name("dev"), &V);
        assert!(after.starts_with("[dev]\r\nregion = x\r\naws_access_key_id = AKNEW\r\n"));
        assert!(!after.replace("\r\n", "").contains('\n'));
        // A similarly named section is not ours.
        let other = "[dev2]\naws_access_key_id = KEEP\n";
        assert!(update(other, &name("dev"), &V).starts_with(other));
    }

    #[test]
    fn write_is_atomic_0600_and_follows_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real-credentials");
        std::fs::write(&real, "[keep]\naws_access_key_id = K\n").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o644)).unwrap();
        let link = dir.path().join("credentials");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let c = crate::client::format::tests::sample(None);
        write(&link, &name("dev"), &c).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        let text = std::fs::read_to_string(&real).unwrap();
        assert!(text.starts_with("[keep]\naws_access_key_id = K\n\n[dev]\n"));
        let mode = std::fs::metadata(&real).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A new file in a new directory.
        let fresh = dir.path().join("new/.aws/credentials");
        write(&fresh, &name("dev"), &c).unwrap();
        assert!(
            std::fs::read_to_string(&fresh)
                .unwrap()
                .contains("aws_secret_access_key = se'cr$et`x\n")
        );
    }

    #[test]
    fn a_value_with_a_newline_or_control_character_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(&path, "[keep]\naws_access_key_id = K\n").unwrap();
        for bad in [
            "TOK\n[default]\naws_access_key_id = EVIL",
            "TOK\rX",
            "T\u{1b}[31m",
            "",
        ] {
            let mut c = crate::client::format::tests::sample(None);
            c.session_token = bad.to_owned().into();
            let e = write(&path, &name("dev"), &c).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{bad:?}");
            assert!(e.to_string().contains("aws_session_token"), "{e}");
            if !bad.is_empty() {
                assert!(!e.to_string().contains(bad), "the value is not echoed");
            }
        }
        let mut c = crate::client::format::tests::sample(None);
        c.access_key_id = "AK\nX".to_owned();
        assert!(write(&path, &name("dev"), &c).is_err());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[keep]\naws_access_key_id = K\n",
            "untouched"
        );
    }

    #[test]
    fn a_writer_waits_for_the_lock_of_another() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(&path, "").unwrap();
        let held = std::fs::File::create(dir.path().join("credentials.lock")).unwrap();
        held.lock().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let writer_path = path.clone();
        let writer = std::thread::spawn(move || {
            let c = crate::client::format::tests::sample(None);
            write(&writer_path, &name("dev"), &c).unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300))
                .is_err(),
            "wrote while another process held the lock"
        );
        held.unlock().unwrap();
        rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        writer.join().unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("[dev]"));
    }

    #[test]
    fn the_path_honours_aws_shared_credentials_file() {
        let env = |k: &str| match k {
            "HOME" => Some("/home/u".to_owned()),
            "AWS_SHARED_CREDENTIALS_FILE" => Some("~/creds".to_owned()),
            _ => None,
        };
        assert_eq!(credentials_path(&env), Some(PathBuf::from("/home/u/creds")));
        let env = |k: &str| (k == "HOME").then(|| "/home/u".to_owned());
        assert_eq!(
            credentials_path(&env),
            Some(PathBuf::from("/home/u/.aws/credentials"))
        );
    }
}
