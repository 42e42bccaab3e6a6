#![allow(clippy::unwrap_used)]
use std::os::unix::fs::PermissionsExt as _;
use std::sync::Mutex;

use super::*;

const T0: i64 = 1_800_000_000;

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(T0 + secs).unwrap()
}

fn creds(id: &str, expires: i64) -> Credentials {
    serde_json::from_value(serde_json::json!({
        "access_key_id": id,
        "secret_access_key": "very-secret",
        "session_token": "session-token",
        "expiration": rolegate_core::clock::rfc3339(at(expires)),
        "assumed_role_arn": "arn:aws:sts::111122223333:assumed-role/rolegate-acme/s",
    }))
    .unwrap()
}

fn key(duration: Option<u32>) -> CacheKey<'static> {
    CacheKey {
        server: "http://127.0.0.1:8080/",
        org: "acme",
        access_level: None,
        principal: "digest".to_owned(),
        duration,
    }
}

/// A stand-in server: answers from a script and records each call's `force_refresh`.
struct Fake {
    answers: Mutex<Vec<Result<Credentials, ClientError>>>,
    calls: Mutex<Vec<bool>>,
}

impl Fake {
    fn new(answers: Vec<Result<Credentials, ClientError>>) -> Self {
        Self {
            answers: Mutex::new(answers),
            calls: Mutex::new(Vec::new()),
        }
    }

    async fn fetch(&self, force: bool) -> Result<Credentials, ClientError> {
        self.calls.lock().unwrap().push(force);
        self.answers.lock().unwrap().remove(0)
    }

    fn calls(&self) -> Vec<bool> {
        self.calls.lock().unwrap().clone()
    }
}

fn api_error(status: u16, code: &str) -> ClientError {
    ClientError::Api {
        status,
        code: code.to_owned(),
        message: "m".to_owned(),
        request_id: "r".to_owned(),
    }
}

async fn get(
    cache: &Cache,
    k: &CacheKey<'_>,
    now: i64,
    fake: &Fake,
) -> Result<Lookup, ClientError> {
    cache
        .get_or_fetch(k, at(now), false, |f| fake.fetch(f))
        .await
}

#[test]
fn the_refresh_window_is_five_minutes_or_a_quarter() {
    assert_eq!(
        refresh_window(Duration::from_secs(3600)),
        Duration::from_secs(300)
    );
    assert_eq!(
        refresh_window(Duration::from_secs(900)),
        Duration::from_secs(225)
    );
}

#[tokio::test]
async fn served_from_a_private_file_until_the_refresh_window() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path().join("rolegate"));
    let k = key(Some(3600));
    let fake = Fake::new(vec![Ok(creds("A", 3600)), Ok(creds("B", 7000))]);
    assert_eq!(
        get(&cache, &k, 0, &fake)
            .await
            .unwrap()
            .credentials
            .access_key_id,
        "A"
    );
    let path = cache.path(&k);
    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    assert_eq!(name.len(), 64 + ".json".len(), "{name}");
    assert!(!name.contains("digest") && !name.contains("acme"));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    // 301 s before expiry: still cached.
    let hit = get(&cache, &k, 3299, &fake).await.unwrap();
    assert_eq!(hit.credentials.access_key_id, "A");
    assert_eq!(fake.calls(), [false]);
    // 300 s before expiry: refreshed, and the file replaced.
    let miss = get(&cache, &k, 3300, &fake).await.unwrap();
    assert_eq!(miss.credentials.access_key_id, "B");
    assert_eq!(fake.calls(), [false, false]);
    assert!(std::fs::read_to_string(&path).unwrap().contains("\"B\""));
}

#[tokio::test]
async fn short_lifetimes_refresh_at_a_quarter_and_unknown_ones_use_what_was_issued() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path().to_path_buf());
    let fake = Fake::new(vec![
        Ok(creds("A", 900)),
        Ok(creds("B", 2000)),
        Ok(creds("C", 1000)),
        Ok(creds("D", 2000)),
    ]);
    let k = key(Some(900));
    get(&cache, &k, 0, &fake).await.unwrap();
    assert_eq!(
        get(&cache, &k, 674, &fake)
            .await
            .unwrap()
            .credentials
            .access_key_id,
        "A"
    );
    assert_eq!(
        get(&cache, &k, 675, &fake)
            .await
            .unwrap()
            .credentials
            .access_key_id,
        "B"
    );
    // No duration asked: the lifetime is what the server issued (1000 s: window 250 s).
    let k = key(None);
    get(&cache, &k, 0, &fake).await.unwrap();
    assert_eq!(
        get(&cache, &k, 749, &fake)
            .await
            .unwrap()
            .credentials
            .access_key_id,
        "C"
    );
    assert_eq!(
        get(&cache, &k, 750, &fake)
            .await
            .unwrap()
            .credentials
            .access_key_id,
        "D"
    );
}

#[tokio::test]
async fn corrupt_or_loosely_permitted_files_are_ignored_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path().to_path_buf());
    let k = key(Some(3600));
    let path = cache.path(&k);
    std::fs::write(&path, b"{not json").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let fake = Fake::new(vec![Ok(creds("A", 3600)), Ok(creds("B", 3600))]);
    assert_eq!(
        get(&cache, &k, 0, &fake)
            .await
            .unwrap()
            .credentials
            .access_key_id,
        "A"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(v["credentials"]["access_key_id"], "A");
    // A valid entry that others could have written or read is not trusted.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        get(&cache, &k, 10, &fake)
            .await
            .unwrap()
            .credentials
            .access_key_id,
        "B"
    );
    assert_eq!(fake.calls().len(), 2);
}

#[tokio::test]
async fn a_transient_failure_falls_back_to_still_valid_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path().to_path_buf());
    let k = key(Some(3600));
    let fake = Fake::new(vec![
        Ok(creds("A", 3600)),
        Err(api_error(503, "sts_throttled")),
        Err(api_error(401, "unauthorized")),
        Err(api_error(502, "sts_unavailable")),
    ]);
    get(&cache, &k, 0, &fake).await.unwrap();
    // Inside the window, the server is busy: the cached ones, with a warning.
    let l = get(&cache, &k, 3400, &fake).await.unwrap();
    assert_eq!(l.credentials.access_key_id, "A");
    assert!(l.warnings[0].contains("sts_throttled"), "{:?}", l.warnings);
    assert!(!l.warnings[0].contains("very-secret"));
    // A refusal is not papered over.
    let e = get(&cache, &k, 3400, &fake).await.unwrap_err();
    assert!(matches!(e, ClientError::Api { status: 401, .. }));
    // Less than a minute left: the error.
    assert!(get(&cache, &k, 3550, &fake).await.is_err());
}

#[tokio::test]
async fn near_expiry_answers_are_refreshed_once_and_force_skips_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path().to_path_buf());
    let k = key(Some(3600));
    // The server's own cache hands back credentials with 100 s left: ask once more.
    let fake = Fake::new(vec![Ok(creds("OLD", 100)), Ok(creds("NEW", 3600))]);
    let l = get(&cache, &k, 0, &fake).await.unwrap();
    assert_eq!(l.credentials.access_key_id, "NEW");
    assert_eq!(fake.calls(), [false, true]);
    // --force-refresh: no cache read, force_refresh sent, the file still updated.
    let fake = Fake::new(vec![Ok(creds("FORCED", 3600))]);
    let l = cache
        .get_or_fetch(&k, at(10), true, |f| fake.fetch(f))
        .await
        .unwrap();
    assert_eq!(l.credentials.access_key_id, "FORCED");
    assert_eq!(fake.calls(), [true]);
    let fake = Fake::new(vec![]);
    let l = get(&cache, &k, 20, &fake).await.unwrap();
    assert_eq!(l.credentials.access_key_id, "FORCED");
}

#[test]
fn every_part_of_the_key_names_a_different_file() {
    let base = key(Some(3600)).file_name();
    let variants = [
        CacheKey {
            server: "https://other/",
            ..key(Some(3600))
        },
        CacheKey {
            org: "other",
            ..key(Some(3600))
        },
        CacheKey {
            access_level: Some("admin"),
            ..key(Some(3600))
        },
        CacheKey {
            principal: "other".into(),
            ..key(Some(3600))
        },
        key(Some(900)),
        key(None),
    ];
    for v in variants {
        assert_ne!(v.file_name(), base, "{v:?}");
    }
}

#[test]
fn the_directory_comes_from_flag_env_xdg_or_home() {
    let env = |k: &str| match k {
        "HOME" => Some("/h".to_owned()),
        "XDG_CACHE_HOME" => Some("/x".to_owned()),
        _ => None,
    };
    assert_eq!(
        Cache::locate(None, &env).unwrap().dir,
        PathBuf::from("/x/rolegate")
    );
    assert_eq!(
        Cache::locate(Some(Path::new("/f")), &env).unwrap().dir,
        PathBuf::from("/f")
    );
    let home_only = |k: &str| (k == "HOME").then(|| "/h".to_owned());
    assert_eq!(
        Cache::locate(None, &home_only).unwrap().dir,
        PathBuf::from("/h/.cache/rolegate")
    );
    assert!(Cache::locate(None, &|_| None).is_none());
}

#[tokio::test]
async fn writing_an_entry_prunes_expired_ones_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path().to_path_buf());
    let old = CacheKey {
        org: "old",
        ..key(Some(900))
    };
    let fake = Fake::new(vec![Ok(creds("OLD", 900)), Ok(creds("NEW", 5000))]);
    get(&cache, &old, 0, &fake).await.unwrap();
    let unrelated = dir.path().join("notes.json");
    std::fs::write(&unrelated, b"{}").unwrap();
    // Long after the old entry expired, another key is fetched and stored.
    get(&cache, &key(Some(3600)), 1000, &fake).await.unwrap();
    assert!(!cache.path(&old).exists());
    assert!(cache.path(&key(Some(3600))).exists());
    assert!(unrelated.exists());
}
