//! Done-when 5: IP allowlists per org, per API key and per operator, through the
//! trusted-proxy header; a miss is 403 `source_ip_not_allowed`, audited, with no STS call;
//! with `bind_source_ip` moto's recorder shows the deny in the session policy.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::both_engines;
use crate::onboarding::{onboarding_toml, validated_org};
use crate::support::{AppOptions, Engine, Resp, TestApp, moto_url, spawn_with};

async fn from(app: &TestApp, ip: &str, token: &str, body: Value) -> Resp {
    app.send(
        app.client
            .post(app.url("/api/credentials"))
            .bearer_auth(token)
            .header("x-forwarded-for", ip)
            .json(&body),
    )
    .await
}

async fn recorder(path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", moto_url()))
        .send()
        .await
        .unwrap()
}

/// The `Policy` parameters of the AssumeRole calls moto recorded for `org`'s sessions.
fn recorded_policies(recording: &str, org: &str) -> Vec<String> {
    recording
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            let body = v["body"].as_str()?.to_owned();
            match v["body_encoded"].as_bool() {
                Some(true) => String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(body)
                        .ok()?,
                )
                .ok(),
                _ => Some(body),
            }
        })
        .filter(|b| b.contains("Action=AssumeRole") && b.contains(org))
        .flat_map(|b| {
            let url = reqwest::Url::parse(&format!("http://x/?{b}")).unwrap();
            url.query_pairs()
                .filter(|(k, _)| k == "Policy")
                .map(|(_, v)| v.into_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn allowlists_refuse_outsiders_and_bind_the_session(engine: Engine) {
    let app = spawn_with(
        engine,
        AppOptions {
            toml: format!("trust_forwarded_for = true\n{}", onboarding_toml(false, "")),
            ..Default::default()
        },
    )
    .await;
    let alice = app.create_user("alice", "operator").await;
    let key = validated_org(&app, &alice, "net-org").await;
    let body = json!({"org_name": "net-org"});
    assert_eq!(
        from(&app, "198.51.100.9", &key, body.clone()).await.status,
        200
    );

    // The org's blocks: IPv4 and IPv6, for every caller.
    let r = app
        .send(
            app.client
                .put(app.url("/api/orgs/net-org/network"))
                .bearer_auth(&alice)
                .json(&json!({"allowed_cidrs": ["203.0.113.0/24", "2001:db8::/32"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["allowed_cidrs"][0], "2001:db8::/32");
    let bad = app
        .send(
            app.client
                .put(app.url("/api/orgs/net-org/network"))
                .bearer_auth(&alice)
                .json(&json!({"allowed_cidrs": ["203.0.113.9/24"]})),
        )
        .await;
    assert_eq!(
        (bad.status, bad.body["error"]["field"].as_str()),
        (400, Some("allowed_cidrs"))
    );
    // The org's key may not loosen its own allowlist.
    let r = app
        .send(
            app.client
                .put(app.url("/api/orgs/net-org/network"))
                .header("x-api-key", &key)
                .json(&json!({"allowed_cidrs": []})),
        )
        .await;
    assert_eq!(r.status, 403);

    let r = from(&app, "198.51.100.9", &key, body.clone()).await;
    assert_eq!(
        (r.status, r.code()),
        (403, "source_ip_not_allowed"),
        "{:?}",
        r.body
    );
    for ok in ["203.0.113.77", "2001:db8:5::1"] {
        let r = from(&app, ok, &key, body.clone()).await;
        assert_eq!(r.status, 200, "{ok}: {:?}", r.body);
    }
    // The operator's own blocks narrow further (both lists must admit).
    let r = app
        .send(
            app.client
                .put(app.url("/api/users/alice/allowed-cidrs"))
                .bearer_auth(&app.admin_token)
                .json(&json!({"allowed_cidrs": ["203.0.113.128/25"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = from(&app, "203.0.113.77", &alice, body.clone()).await;
    assert_eq!(
        (r.status, r.code()),
        (403, "source_ip_not_allowed"),
        "{:?}",
        r.body
    );
    let r = from(&app, "203.0.113.200", &alice, body.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // Console sign-in obeys it too.
    let r = app
        .send(
            app.client
                .post(app.url("/api/credentials/console"))
                .bearer_auth(&alice)
                .header("x-forwarded-for", "192.0.2.1")
                .json(&body),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (403, "source_ip_not_allowed"),
        "{:?}",
        r.body
    );
    // Every miss is audited with the source address.
    let misses: Vec<_> = app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.code.as_deref() == Some("source_ip_not_allowed"))
        .collect();
    assert!(misses.len() >= 3, "{misses:?}");
    assert!(
        misses
            .iter()
            .any(|e| e.source_ip.as_deref() == Some("198.51.100.9")),
        "{misses:?}"
    );

    // bind_source_ip: the session policy carries the deny, as moto's recorder shows.
    let r = app
        .send(
            app.client
                .put(app.url("/api/orgs/net-org/network"))
                .bearer_auth(&alice)
                .json(&json!({"bind_source_ip": true})),
        )
        .await;
    assert_eq!((r.status, &r.body["bind_source_ip"]), (200, &json!(true)));
    let lock = crate::support::MOTO_RECORDER.lock().await;
    let _ = recorder("/moto-api/recorder/start-recording").await;
    let r = from(&app, "203.0.113.77", &key, body.clone()).await;
    let recording = recorder("/moto-api/recorder/download-recording")
        .await
        .text()
        .await
        .unwrap();
    let _ = recorder("/moto-api/recorder/stop-recording").await;
    let _ = recorder("/moto-api/recorder/reset-recording").await;
    drop(lock);
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body["cached"], false,
        "bound credentials are other credentials"
    );
    let policies = recorded_policies(&recording, "net-org");
    assert_eq!(policies.len(), 1, "{recording}");
    let policy: Value = serde_json::from_str(&policies[0]).unwrap();
    let deny = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Effect"] == "Deny")
        .unwrap_or_else(|| panic!("no deny in {policy}"));
    assert_eq!(
        deny["Condition"]["NotIpAddress"]["aws:SourceIp"],
        json!(["2001:db8::/32", "203.0.113.0/24"])
    );
    assert_eq!(deny["Condition"]["Bool"]["aws:ViaAWSService"], "false");
    assert!(policies[0].len() <= 2048);
}

both_engines!(allowlists_refuse_outsiders_and_bind_the_session);
