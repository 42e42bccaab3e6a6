use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use serde_json::json;

use crate::support::{Engine, spawn_app};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every file in `dir` that is not 0600, with its mode.
fn open_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && mode(p) != 0o600)
        .map(|p| format!("{} {:o}", p.display(), mode(&p)))
        .collect()
}

/// After a run that wrote to the store and to the rate-limit file, the data directory is
/// 0700 and everything in it (the database, its -wal and -shm, the rate-limit database,
/// master.key, admin.token) is 0600.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_file_in_the_data_dir_is_private() {
    let app = spawn_app(Engine::Sqlite).await;
    assert_eq!(app.register(&app.admin_token, "perm-org").await.status, 201);
    assert_eq!(app.get("/api/orgs", "rgt_wrong").await.status, 401);
    let r = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"user_id": "perm-user", "role": "operator"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let names: Vec<String> = std::fs::read_dir(&app.data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for expected in ["rolegate.db", "rolegate.db-wal", "admin.token"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing: {names:?}"
        );
    }
    assert_eq!(open_files(&app.data_dir), Vec::<String>::new());
    assert_eq!(mode(&app.data_dir), 0o700);
}

/// Files and a directory left open by an older version are tightened at start-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_data_dir_is_tightened_at_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    // A first run, as an older version left it: everything readable by every local user.
    drop(super::build(&dir, "sqlite", "").await.unwrap());
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(!open_files(&dir).is_empty());
    drop(super::build(&dir, "sqlite", "").await.unwrap());
    assert_eq!(open_files(&dir), Vec::<String>::new());
    assert_eq!(mode(&dir), 0o700);
}
