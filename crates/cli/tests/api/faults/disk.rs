//! The disk fills under the SQLite engine: the data directory is a small tmpfs, and a
//! filler file takes the rest of it while the load runs. Writes get 503 with
//! `Retry-After`; once the filler is gone writes resume without a restart, every
//! acknowledged write is there, the chain verifies, SQLite's integrity check passes, and a
//! restart opens the same store.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use super::ledger::{Load, LoadOptions, Verdict, report, verify};
use super::rig::{Rig, config};
use crate::support::moto_url;

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `Err` says why it could not be mounted (not root, no `CAP_SYS_ADMIN` in a container).
    fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "rolegate-faults",
            ])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Self { dir })
        } else {
            Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the file system holding `path` with a file there; returns the file.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).and_then(|()| f.flush()).is_ok() {}
    path
}

fn integrity_check(db: &Path) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('pragma integrity_check').fetchone()[0])",
        ])
        .arg(db)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
        + String::from_utf8_lossy(&out.stderr).trim()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: timing-sensitive, run alone by scripts/test (--ignored --test-threads 1)"]
async fn a_full_disk_gets_503_corrupts_nothing_and_recovers() {
    let fs = match Tmpfs::mount("32m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("fault-report scenario=disk_full engine=sqlite skipped: {why}");
            return;
        }
    };
    let data = tempfile::tempdir_in(fs.path()).unwrap();
    let mut rig = Rig::start_in(data, "sqlite", &config(moto_url(), "max_attempts = 1", ""));
    let orgs = rig.orgs("df", 3).await;
    let load = Load::start(rig.base.clone(), &rig.token, orgs, LoadOptions::default());
    load.progress(40, 60).await;

    let filler = fill(fs.path());
    let full = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, code, retry) = rig
        .call(
            rig.client
                .post(rig.url("/api/orgs"))
                .bearer_auth(&rig.token)
                .header("idempotency-key", "disk-full")
                .json(&json!({"org_name": "disk-full"})),
        )
        .await;
    assert_eq!(status, 503, "{code}");
    assert!(retry.is_some(), "503 {code} without Retry-After");
    tokio::time::sleep(Duration::from_secs(1)).await;
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    load.progress(40, 30).await;
    let ledger = load.stop().await;

    let refused = ledger.refused(full + Duration::from_millis(500), freed);
    let codes: std::collections::BTreeSet<_> =
        refused.iter().map(|r| (r.status, r.code.clone())).collect();
    let recovery = ledger.first_ack_after(freed).map(|a| a - freed);
    let v: Verdict = verify(&ledger, &rig.vault().await).await;
    rig.kill();
    let integrity = integrity_check(&rig.data_dir().join("rolegate.db"));
    rig.restart();
    let after_restart = verify(&ledger, &rig.vault().await).await;
    report(
        "disk_full",
        "sqlite",
        &v,
        recovery,
        &format!(
            "refusals_during={} codes={codes:?} integrity={integrity}",
            refused.len()
        ),
    );
    v.assert_whole();
    after_restart.assert_whole();
    assert_eq!(integrity, "ok");
    for r in &refused {
        assert!(r.status == 503 && r.retry_after, "{r:?}");
    }
}
