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
    assert_eq!(example.portal, defaults.portal);
}

#[test]
fn portal_session_timeouts_are_bounded() {
    let d = Settings::defaults().unwrap().portal;
    assert!(d.enabled);
    assert_eq!(d.sessions.idle.as_secs(), 3600);
    assert_eq!(d.sessions.absolute.as_secs(), 8 * 3600);
    for (text, setting) in [
        (
            "[portal]\nsession_idle_secs = 10",
            "portal.session_idle_secs",
        ),
        (
            "[portal]\nsession_idle_secs = 7200\nsession_absolute_secs = 3600",
            "portal.session_absolute_secs",
        ),
        (
            "[portal]\nsession_absolute_secs = 9999999",
            "portal.session_absolute_secs",
        ),
    ] {
        let e = toml::from_str::<RawSettings>(text)
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(e.setting, setting, "{text}");
    }
    let off = toml::from_str::<RawSettings>("[portal]\nenabled = false").unwrap();
    assert!(!off.validate().unwrap().portal.enabled);
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

mod props {
    use super::*;
    use proptest::prelude::*;

    /// Settings whose values are checked without touching the filesystem (no `*_file`,
    /// no `data_dir`), each with values of the right and the wrong kind.
    const KEYS: &[&str] = &[
        "listen",
        "store",
        "allow_plain_http",
        "header_read_timeout_secs",
        "body_read_timeout_secs",
        "request_timeout_secs",
        "idempotency_ttl_secs",
        "trust_forwarded_for",
        "metrics_enabled",
        "metrics_token",
        "master_key",
        "log_format",
        "log_level",
    ];
    const TABLES: &[(&str, &[&str])] = &[
        (
            "rate_limits",
            &[
                "auth_failures_per_ip",
                "callback_per_ip",
                "credentials_per_org",
            ],
        ),
        (
            "aws",
            &[
                "region",
                "endpoint_url",
                "connect_timeout_ms",
                "max_attempts",
            ],
        ),
        (
            "onboarding",
            &[
                "provider_account_id",
                "partition",
                "region",
                "template_url_ttl_secs",
                "max_session_duration",
                "access_level",
                "callback_url",
            ],
        ),
        (
            "credentials",
            &["default_access_level", "default_duration_secs"],
        ),
    ];

    fn toml_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            (0u64..100_000).prop_map(|n| n.to_string()),
            any::<bool>().prop_map(|b| b.to_string()),
            any::<String>().prop_map(|s| toml::Value::String(s).to_string()),
            "[a-z0-9:./-]{0,24}".prop_map(|s| format!("{s:?}")),
            (0u32..3, 0u64..100_000)
                .prop_map(|(b, p)| format!("{{ burst = {b}, period_secs = {p} }}")),
            Just("[1, 2]".to_owned()),
        ]
    }

    fn document() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec((0..KEYS.len(), toml_value()), 0..5),
            proptest::collection::vec((0..TABLES.len(), 0usize..8, toml_value()), 0..5),
        )
            .prop_map(|(top, tables)| {
                let mut text = String::new();
                let mut seen = std::collections::BTreeSet::new();
                for (k, v) in top {
                    if seen.insert(KEYS[k]) {
                        text.push_str(&format!("{} = {v}\n", KEYS[k]));
                    }
                }
                for (t, k, v) in tables {
                    let (table, keys) = TABLES[t];
                    let key = keys[k % keys.len()];
                    if seen.insert(key) {
                        text.push_str(&format!("[{table}]\n{key} = {v}\n"));
                    }
                }
                text
            })
    }

    fn check(text: &[u8]) -> Result<(), TestCaseError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rolegate.toml");
        std::fs::write(&path, text).unwrap();
        match RawSettings::from_file(&path) {
            Ok(raw) => match raw.validate() {
                Ok(_) => {}
                Err(e) => prop_assert!(!e.setting.is_empty() && !e.reason.is_empty(), "{e}"),
            },
            Err(e) => prop_assert_eq!(e.setting, "config"),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Any bytes as the config file: settings, or an error naming the setting; never a
        /// panic.
        #[test]
        fn any_file_is_settings_or_a_named_error(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            check(&bytes)?;
        }

        /// Well-formed TOML with known settings of any value (wrong types, out-of-range
        /// numbers, odd strings): the same.
        #[test]
        fn any_known_setting_value_is_accepted_or_named(text in document()) {
            check(text.as_bytes())?;
        }
    }
}
