//! Layering, defaults and validation of settings.
#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn defaults_work_with_no_config() {
    let s = Settings::defaults().unwrap();
    assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.data_dir, PathBuf::from("./data"));
    assert!(matches!(s.master_key, MasterKeySource::Generated));
}

#[test]
fn env_overrides_file_and_flags_override_env() {
    let file: RawSettings = toml::from_str("listen = \"127.0.0.1:1\"\nstore = \"sqlite\"").unwrap();
    let env = file
        .overlay_env(|k| (k == "ROLEGATE_LISTEN").then(|| "127.0.0.1:2".to_owned()))
        .unwrap();
    assert_eq!(env.listen.as_deref(), Some("127.0.0.1:2"));
    let flags = RawSettings {
        listen: Some("127.0.0.1:3".into()),
        ..RawSettings::default()
    };
    assert_eq!(env.overlay(flags).validate().unwrap().listen.port(), 3);
}

#[test]
fn a_higher_layer_replaces_either_form_of_a_paired_secret() {
    let file: RawSettings =
        toml::from_str("master_key_file = \"/k\"\nstore_file = \"/s\"").unwrap();
    let env = file
        .clone()
        .overlay_env(|k| match k {
            "ROLEGATE_MASTER_KEY" => Some("a2V5".to_owned()),
            "ROLEGATE_STORE" => Some("sqlite".to_owned()),
            _ => None,
        })
        .unwrap();
    assert_eq!(env.master_key.as_deref(), Some("a2V5"));
    assert!(env.master_key_file.is_none() && env.store_file.is_none());
    assert!(
        env.clone().validate().is_ok(),
        "env wins, no 'not both' error"
    );
    let flags = RawSettings {
        master_key_file: Some("/flag".into()),
        store_file: Some("/flag-store".into()),
        ..RawSettings::default()
    };
    let top = env.overlay(flags);
    assert!(top.master_key.is_none() && top.store.is_none());
    assert_eq!(top.master_key_file.as_deref(), Some(Path::new("/flag")));
    // Within one layer, both forms are still a mistake that names the setting.
    let e = RawSettings {
        master_key: Some("a2V5".into()),
        master_key_file: Some("/k".into()),
        ..RawSettings::default()
    }
    .validate()
    .unwrap_err();
    assert_eq!(e.setting, "master_key");
}

#[test]
fn secrets_can_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    std::fs::write(&path, "sqlite\n").unwrap();
    let s = RawSettings {
        store_file: Some(path.clone()),
        ..RawSettings::default()
    }
    .validate()
    .unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&s.store),
        "sqlite",
        "newline trimmed"
    );
    std::fs::write(&path, "\n").unwrap();
    let e = read_secret_file("store_file", &path).unwrap_err();
    assert_eq!(e.setting, "store_file");
    assert!(e.reason.contains("empty"));
    let e = read_secret_file("aws.secret_access_key_file", &dir.path().join("nope")).unwrap_err();
    assert_eq!(e.setting, "aws.secret_access_key_file");
}

#[test]
fn invalid_settings_name_themselves() {
    let e = RawSettings {
        listen: Some("nope".into()),
        ..RawSettings::default()
    }
    .validate()
    .unwrap_err();
    assert_eq!(e.setting, "listen");
    let e = RawSettings {
        store: Some("mysql://x".into()),
        ..RawSettings::default()
    }
    .validate()
    .unwrap_err();
    assert_eq!(e.setting, "store");
    for pg in [
        "postgres://rg@db/x?sslmode=verify-full",
        "postgresql://rg@db/x",
    ] {
        let s = RawSettings {
            store: Some(pg.into()),
            ..RawSettings::default()
        }
        .validate()
        .unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&s.store), pg);
    }
    let e = toml::from_str::<RawSettings>("bogus = 1").unwrap_err();
    assert!(e.to_string().contains("bogus"));
    let e = RawSettings::default()
        .overlay_env(|k| (k == "ROLEGATE_IDEMPOTENCY_TTL_SECS").then(|| "x".into()))
        .unwrap_err();
    assert_eq!(e.setting, "ROLEGATE_IDEMPOTENCY_TTL_SECS");
}

#[test]
fn the_example_config_parses_and_shows_the_defaults() {
    let text = include_str!("../../../../rolegate.example.toml");
    let example = toml::from_str::<RawSettings>(text)
        .unwrap()
        .validate()
        .unwrap();
    let defaults = Settings::defaults().unwrap();
    assert_eq!(example.listen, defaults.listen);
    assert_eq!(example.metrics_enabled, defaults.metrics_enabled);
    assert_eq!(example.trust_forwarded_for, defaults.trust_forwarded_for);
    assert_eq!(example.idempotency_ttl, defaults.idempotency_ttl);
    assert_eq!(example.allow_plain_http, defaults.allow_plain_http);
    assert_eq!(
        example.store_allow_volatile_redis,
        defaults.store_allow_volatile_redis
    );
    assert_eq!(
        (
            example.timeouts.header_read,
            example.timeouts.body_read,
            example.timeouts.request
        ),
        (
            defaults.timeouts.header_read,
            defaults.timeouts.body_read,
            defaults.timeouts.request
        )
    );
    for level in ["readonly", "operator"] {
        assert_eq!(
            example.credentials.level(Some(level)).unwrap(),
            defaults.credentials.level(Some(level)).unwrap(),
            "the example's {level} level is the built-in one"
        );
    }
    assert_eq!(
        example.credentials.default_level(),
        defaults.credentials.default_level()
    );
    assert_eq!(example.console.issuer, defaults.console.issuer);
}

#[test]
fn metrics_are_on_by_default_and_can_be_turned_off() {
    assert!(Settings::defaults().unwrap().metrics_enabled);
    let file: RawSettings = toml::from_str("metrics_enabled = false").unwrap();
    assert!(!file.clone().validate().unwrap().metrics_enabled);
    let env = file
        .overlay_env(|k| (k == "ROLEGATE_METRICS_ENABLED").then(|| "true".to_owned()))
        .unwrap();
    assert!(env.validate().unwrap().metrics_enabled);
    let e = RawSettings::default()
        .overlay_env(|k| (k == "ROLEGATE_METRICS_ENABLED").then(|| "yes".into()))
        .unwrap_err();
    assert_eq!(e.setting, "ROLEGATE_METRICS_ENABLED");
    let e = toml::from_str::<RawSettings>("metrics_enabled = \"on\"").unwrap_err();
    assert!(e.to_string().contains("metrics_enabled"), "{e}");
}

#[test]
fn the_onboarding_region_must_be_in_its_partition() {
    let e = toml::from_str::<RawSettings>("[onboarding]\npartition = \"aws-cn\"")
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(e.setting, "onboarding.region");
    assert!(e.reason.contains("us-east-1"), "{}", e.reason);
    let ok = toml::from_str::<RawSettings>(
        "[aws]\nregion = \"cn-north-1\"\n[onboarding]\npartition = \"aws-cn\"",
    )
    .unwrap()
    .validate();
    assert!(ok.is_ok());
    let gov = toml::from_str::<RawSettings>(
        "[onboarding]\npartition = \"aws-us-gov\"\nregion = \"us-gov-west-1\"",
    )
    .unwrap()
    .validate();
    assert!(gov.is_ok());
}

#[test]
fn edge_settings_come_from_env_and_are_checked() {
    let raw = RawSettings::default()
        .overlay_env(|k| match k {
            "ROLEGATE_HEADER_READ_TIMEOUT_SECS" => Some("3".to_owned()),
            "ROLEGATE_ALLOW_PLAIN_HTTP" => Some("true".to_owned()),
            "ROLEGATE_STORE_ALLOW_VOLATILE_REDIS" => Some("true".to_owned()),
            "ROLEGATE_LISTEN" => Some("0.0.0.0:8080".to_owned()),
            _ => None,
        })
        .unwrap();
    let s = raw.validate().unwrap();
    assert_eq!(s.timeouts.header_read, Duration::from_secs(3));
    assert!(s.allow_plain_http && s.store_allow_volatile_redis);
    let e = RawSettings {
        request_timeout_secs: Some(0),
        ..RawSettings::default()
    }
    .validate()
    .unwrap_err();
    assert_eq!(e.setting, "request_timeout_secs");
    let e = RawSettings::default()
        .overlay_env(|k| (k == "ROLEGATE_ALLOW_PLAIN_HTTP").then(|| "yes".to_owned()))
        .unwrap_err();
    assert_eq!(e.setting, "ROLEGATE_ALLOW_PLAIN_HTTP");
}
