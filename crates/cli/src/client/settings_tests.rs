#![allow(clippy::unwrap_used)]
use std::collections::HashMap;

use super::*;

fn flags() -> ConnectionArgs {
    ConnectionArgs {
        server: None,
        token: None,
        api_key: None,
        config_file: None,
        ca_file: None,
    }
}

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| map.get(k).cloned()
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn kind_and_secret(c: &Credential) -> (&'static str, &str) {
    match c {
        Credential::Token(_) => ("token", c.secret()),
        Credential::ApiKey(_) => ("api_key", c.secret()),
    }
}

#[test]
fn flags_beat_env_beat_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    write(&dir.path().join("key"), "rgk_fromfile\n", 0o600);
    write(
        &cfg,
        "server = \"http://127.0.0.1:1/\"\napi_key_file = \"key\"\n",
        0o644,
    );
    let cfg_s = cfg.to_str().unwrap();
    // The file alone; api_key_file is relative to the config file and trimmed.
    let s = resolve(&flags(), &env_of(&[("ROLEGATE_CLIENT_CONFIG", cfg_s)])).unwrap();
    assert_eq!(s.server.as_str(), "http://127.0.0.1:1/");
    assert_eq!(kind_and_secret(&s.credential), ("api_key", "rgk_fromfile"));
    // The environment wins over the file, for the server and for the credential.
    let env = env_of(&[
        ("ROLEGATE_CLIENT_CONFIG", cfg_s),
        ("ROLEGATE_SERVER", "http://127.0.0.1:2"),
        ("ROLEGATE_TOKEN", "rgt_fromenv"),
    ]);
    let s = resolve(&flags(), &env).unwrap();
    assert_eq!(s.server.as_str(), "http://127.0.0.1:2/");
    assert_eq!(kind_and_secret(&s.credential), ("token", "rgt_fromenv"));
    // Flags win over both.
    let f = ConnectionArgs {
        server: Some("https://rolegate.example/base".into()),
        api_key: Some("rgk_fromflag".into()),
        ..flags()
    };
    let s = resolve(&f, &env).unwrap();
    assert_eq!(s.server.as_str(), "https://rolegate.example/base/");
    assert_eq!(kind_and_secret(&s.credential), ("api_key", "rgk_fromflag"));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn the_default_config_file_is_under_xdg_or_home_and_optional() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_str().unwrap();
    // Missing default file: fine, if a credential comes from elsewhere.
    let s = resolve(
        &flags(),
        &env_of(&[("HOME", home), ("ROLEGATE_API_KEY", "rgk_x")]),
    )
    .unwrap();
    assert_eq!(s.server.as_str(), "http://127.0.0.1:8080/");
    std::fs::create_dir_all(dir.path().join(".config/rolegate")).unwrap();
    write(
        &dir.path().join(".config/rolegate/config.toml"),
        "server = \"http://127.0.0.1:3\"\ntoken = \"rgt_home\"\n",
        0o600,
    );
    let s = resolve(&flags(), &env_of(&[("HOME", home)])).unwrap();
    assert_eq!(kind_and_secret(&s.credential), ("token", "rgt_home"));
    let (path, required) = config_path(
        &flags(),
        &env_of(&[("HOME", home), ("XDG_CONFIG_HOME", "/xdg")]),
    );
    assert_eq!(path, Some(PathBuf::from("/xdg/rolegate/config.toml")));
    assert!(!required);
    // An explicitly named file must exist.
    let f = ConnectionArgs {
        config_file: Some(dir.path().join("nope.toml")),
        ..flags()
    };
    let e = resolve(&f, &env_of(&[("ROLEGATE_API_KEY", "rgk_x")])).unwrap_err();
    assert!(matches!(e, SettingsError::Read { .. }), "{e}");
}

#[test]
fn an_inline_secret_in_a_group_or_world_readable_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    for mode in [0o644, 0o640, 0o604] {
        write(&cfg, "api_key = \"rgk_inline_secret\"\n", mode);
        let f = ConnectionArgs {
            config_file: Some(cfg.clone()),
            ..flags()
        };
        let e = resolve(&f, &env_of(&[])).unwrap_err();
        assert!(matches!(e, SettingsError::TooOpen { .. }), "{mode:o}: {e}");
        assert!(e.to_string().contains("chmod 600"));
        assert!(!e.to_string().contains("rgk_inline_secret"));
    }
    write(&cfg, "api_key = \"rgk_inline_secret\"\n", 0o600);
    let f = ConnectionArgs {
        config_file: Some(cfg.clone()),
        ..flags()
    };
    assert!(resolve(&f, &env_of(&[])).is_ok());
    // A key file readable by others only warns (mounted secrets are often 0644).
    write(&dir.path().join("k"), "rgk_k", 0o644);
    write(&cfg, "api_key_file = \"k\"\n", 0o644);
    let s = resolve(&f, &env_of(&[])).unwrap();
    assert_eq!(s.warnings.len(), 1);
    assert!(!s.warnings[0].contains("rgk_k"));
}

#[test]
fn ambiguous_or_missing_credentials_are_errors() {
    let both = ConnectionArgs {
        token: Some("rgt_a".into()),
        api_key: Some("rgk_b".into()),
        ..flags()
    };
    let e = resolve(&both, &env_of(&[])).unwrap_err().to_string();
    assert!(e.contains("only one of --token and --api-key"), "{e}");
    let env = env_of(&[("ROLEGATE_TOKEN", "rgt_a"), ("ROLEGATE_API_KEY", "rgk_b")]);
    assert!(resolve(&flags(), &env).is_err());
    // Empty variables count as unset.
    let e = resolve(&flags(), &env_of(&[("ROLEGATE_TOKEN", "")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no credential"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    write(&cfg, "token = \"rgt_a\"\ntoken_file = \"t\"\n", 0o600);
    let f = ConnectionArgs {
        config_file: Some(cfg),
        ..flags()
    };
    assert!(resolve(&f, &env_of(&[])).is_err());
}

#[test]
fn config_errors_do_not_quote_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    write(&cfg, "tokne = \"rgt_typo_secret\"\n", 0o600);
    let f = ConnectionArgs {
        config_file: Some(cfg),
        ..flags()
    };
    let e = resolve(&f, &env_of(&[])).unwrap_err().to_string();
    assert!(e.contains("tokne"), "{e}");
    assert!(!e.contains("rgt_typo_secret"), "{e}");
}

#[test]
fn server_addresses_are_checked() {
    let with = |server: &str| {
        let f = ConnectionArgs {
            server: Some(server.into()),
            api_key: Some("rgk_x".into()),
            ..flags()
        };
        resolve(&f, &env_of(&[]))
    };
    for bad in [
        "ftp://h/",
        "not a url",
        "https://user:pw@h/",
        "https://h/?q=1",
    ] {
        let e = with(bad).unwrap_err().to_string();
        assert!(e.starts_with("server address"), "{e}");
        assert!(!e.contains("pw"), "{e}");
    }
    assert!(with("http://localhost:8080").unwrap().warnings.is_empty());
    assert!(with("http://[::1]:8080").unwrap().warnings.is_empty());
    let s = with("http://rolegate.internal:8080").unwrap();
    assert!(s.warnings[0].contains("plain http"));
}

#[test]
fn the_principal_digest_hides_the_secret_and_tells_kinds_apart() {
    let t = Credential::Token("rgk_same".into());
    let k = Credential::ApiKey("rgk_same".into());
    assert_ne!(t.digest(), k.digest());
    assert_eq!(t.digest().len(), 64);
    assert!(!t.digest().contains("rgk_same"));
    assert!(!format!("{t:?}").contains("rgk_same"));
}
