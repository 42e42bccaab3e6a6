//! Workload identity against moto: a CA, leaf certificates and CRLs made here with rcgen
//! (nothing committed), anchors and profiles through the API, and `POST /sessions` signed
//! as the Roles Anywhere credential helper signs it (its `signer.go`): the session is a real
//! moto AssumeRole in the customer account, attributed to the certificate's CN, and every
//! refusal is 403 with its reason in the audit log.

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams,
    SanType, SerialNumber,
};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use time::{Duration, OffsetDateTime};

use crate::credentials::creds_app;
use crate::onboarding::onboarding_toml;
use crate::onboarding::{CUSTOMER, validated_org};
use crate::support::{
    AppOptions, Engine, Resp, TestApp, aws_cli, into_resp, moto_url, spawn_with, venv_bin,
};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

struct Leaf {
    der: Vec<u8>,
    pem: String,
    key: EcdsaKeyPair,
    key_pem: String,
    serial: u64,
}

fn leaf(ca: &Ca, cn: &str, serial: u64, not_after: OffsetDateTime) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name
        .push(DnType::OrganizationalUnitName, "ci-runners");
    p.subject_alt_names = vec![SanType::DnsName(
        format!("{cn}.example.com").try_into().unwrap(),
    )];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.serial_number = Some(SerialNumber::from(serial));
    p.not_before = OffsetDateTime::now_utc() - Duration::days(2);
    p.not_after = not_after;
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    let ring_key = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        &key.serialize_der(),
        &SystemRandom::new(),
    )
    .unwrap();
    Leaf {
        der: cert.der().to_vec(),
        pem: cert.pem(),
        key: ring_key,
        key_pem: key.serialize_pem(),
        serial,
    }
}

fn crl(ca: &Ca, revoked: &[u64], next_update: OffsetDateTime) -> Vec<u8> {
    let now = OffsetDateTime::now_utc();
    CertificateRevocationListParams {
        this_update: now - Duration::hours(3),
        next_update,
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: now - Duration::hours(1),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ca.cert, &ca.key)
    .unwrap()
    .der()
    .to_vec()
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The headers of a CreateSession request signed over `signed_body`, as signer.go makes
/// them: content-type, host, x-amz-date and x-amz-x509 signed, SHA-256 of the body.
fn signed_headers(
    app: &TestApp,
    l: &Leaf,
    date: OffsetDateTime,
    signed_body: &[u8],
) -> Vec<(String, String)> {
    let host = app.base.trim_start_matches("http://").to_owned();
    let amz_date = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        date.year(),
        u8::from(date.month()),
        date.day(),
        date.hour(),
        date.minute(),
        date.second()
    );
    let x509 = B64.encode(&l.der);
    let headers = [
        ("content-type", "application/json".to_owned()),
        ("host", host),
        ("x-amz-date", amz_date.clone()),
        ("x-amz-x509", x509),
    ];
    let canonical_headers: Vec<String> = headers.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    let signed = "content-type;host;x-amz-date;x-amz-x509";
    let canonical = format!(
        "POST\n/sessions\n\n{}\n\n{signed}\n{}",
        canonical_headers.join("\n"),
        hex::encode(Sha256::digest(signed_body))
    );
    let scope = format!("{}/us-east-1/rolesanywhere/aws4_request", &amz_date[..8]);
    let to_sign = format!(
        "AWS4-X509-ECDSA-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let sig = l
        .key
        .sign(&SystemRandom::new(), to_sign.as_bytes())
        .unwrap();
    let mut out: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| *k != "host")
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    out.push((
        "authorization".to_owned(),
        format!(
            "AWS4-X509-ECDSA-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={}",
            l.serial,
            hex::encode(sig.as_ref())
        ),
    ));
    out
}

async fn post_session(app: &TestApp, headers: &[(String, String)], body: &[u8]) -> Resp {
    let mut req = app.client.post(app.url("/sessions")).body(body.to_vec());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    into_resp(req.send().await.unwrap()).await
}

struct Setup {
    anchor_arn: String,
    anchor_id: String,
    profile_arn: String,
    role_arn: String,
}

fn body(s: &Setup) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "durationSeconds": 3600,
        "profileArn": s.profile_arn,
        "roleArn": s.role_arn,
        "trustAnchorArn": s.anchor_arn,
    }))
    .unwrap()
}

async fn setup(app: &TestApp, org: &str, ca: &Ca) -> Setup {
    setup_pem(app, org, &ca.cert.pem()).await
}

async fn setup_pem(app: &TestApp, org: &str, ca_pem: &str) -> Setup {
    validated_org(app, &app.admin_token, org).await;
    let r = app
        .post(
            &format!("/api/orgs/{org}/trust-anchors"),
            &app.admin_token,
            json!({"name": "build-ca", "certificate_bundle_pem": ca_pem}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let anchor_arn = r.body["trust_anchor_arn"].as_str().unwrap().to_owned();
    assert!(
        anchor_arn.starts_with("arn:aws:rolesanywhere:us-east-1:"),
        "{anchor_arn}"
    );
    let anchor_id = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!("/api/orgs/{org}/workload-profiles"),
            &app.admin_token,
            json!({
                "name": "builders",
                "max_duration_secs": 3600,
                "require": [{"field": "subject_cn", "pattern": "build-*"}],
                "attribute_mappings": [
                    {"field": "subject_ou", "tag": "team"},
                    {"field": "san_dns", "tag": "host"},
                ],
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let profile_arn = r.body["profile_arn"].as_str().unwrap().to_owned();
    Setup {
        anchor_arn,
        anchor_id,
        profile_arn,
        role_arn: format!("arn:aws:iam::{CUSTOMER}:role/rolegate-{org}"),
    }
}

fn refusal_reasons(events: &[rolegate_core::audit::AuditEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| {
            e.action == "workload.session" && e.code.as_deref() == Some("workload_auth_failed")
        })
        .map(|e| e.details["reason"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn moto_recording(path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", moto_url()))
        .send()
        .await
        .unwrap()
}

async fn certificate_sessions_and_every_refusal(engine: Engine) {
    let app = creds_app(engine, "").await;
    let org = format!("wi-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let ca1 = ca("rolegate test CA");
    let s = setup(&app, &org, &ca1).await;
    let now = OffsetDateTime::now_utc();
    let good = leaf(&ca1, "build-agent-1", 1001, now + Duration::days(30));

    // A session: moto's recorder sees the AssumeRole with the CN and the mapped tags (one
    // test at a time records: the recorder is moto's, shared by the whole binary).
    let recorder = crate::support::MOTO_RECORDER.lock().await;
    let _ = moto_recording("/moto-api/recorder/start-recording").await;
    let b = body(&s);
    let h = signed_headers(&app, &good, now, &b);
    let r = post_session(&app, &h, &b).await;
    let recording = moto_recording("/moto-api/recorder/download-recording")
        .await
        .text()
        .await
        .unwrap();
    let _ = moto_recording("/moto-api/recorder/stop-recording").await;
    // moto keeps the recording in a file in its working directory: leave none behind.
    let _ = moto_recording("/moto-api/recorder/reset-recording").await;
    drop(recorder);
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let set = &r.body["credentialSet"][0];
    assert_eq!(set["sourceIdentity"], "build-agent-1");
    assert_eq!(set["roleArn"], s.role_arn.as_str());
    let c = &set["credentials"];
    let out = aws_cli(
        &["sts", "get-caller-identity", "--output", "json"],
        Some((
            c["accessKeyId"].as_str().unwrap(),
            c["secretAccessKey"].as_str().unwrap(),
            c["sessionToken"].as_str().unwrap(),
        )),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let who: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(who["Account"], CUSTOMER, "{who}");
    let assume = recording
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            let body = v["body"].as_str()?.to_owned();
            match v["body_encoded"].as_bool() {
                Some(true) => String::from_utf8(B64.decode(body).ok()?).ok(),
                _ => Some(body),
            }
        })
        // The session's, not the onboarding check's (`rolegate-verify-…`).
        .find(|b| {
            b.contains("Action=AssumeRole") && b.contains(&org) && !b.contains("rolegate-verify")
        })
        .unwrap_or_else(|| {
            panic!(
                "no AssumeRole with the CN in moto's recording: {}",
                &recording[..recording.len().min(3000)]
            )
        });
    for needle in [
        "SourceIdentity=build-agent-1",
        "Key=team",
        "Value=ci-runners",
        "Key=host",
    ] {
        assert!(
            assume.contains(needle) || assume.contains(&needle.replace('=', "%3D")),
            "{needle} not in {assume}"
        );
    }

    // The same signed request again is a replay.
    let r = post_session(&app, &h, &b).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert_eq!(r.body["__type"], "AccessDeniedException");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .starts_with("signature_replayed"),
        "{:?}",
        r.body
    );

    // Each refusal, with what it says.
    let tampered = {
        let h = signed_headers(&app, &good, now, &b);
        let mut other: Value = serde_json::from_slice(&b).unwrap();
        other["durationSeconds"] = json!(900);
        (h, serde_json::to_vec(&other).unwrap())
    };
    let r = post_session(&app, &tampered.0, &tampered.1).await;
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .starts_with("signature_mismatch"),
        "{:?}",
        r.body
    );

    let skewed = signed_headers(&app, &good, now - Duration::minutes(10), &b);
    let r = post_session(&app, &skewed, &b).await;
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .starts_with("date_out_of_range"),
        "{:?}",
        r.body
    );

    let outsider = leaf(&ca1, "deploy-bot", 1002, now + Duration::days(30));
    let r = post_session(&app, &signed_headers(&app, &outsider, now, &b), &b).await;
    assert_eq!(r.status, 403);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .starts_with("condition_not_met"),
        "{:?}",
        r.body
    );

    let ca2 = ca("another CA");
    let stranger = leaf(&ca2, "build-agent-2", 1003, now + Duration::days(30));
    let r = post_session(&app, &signed_headers(&app, &stranger, now, &b), &b).await;
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .starts_with("untrusted_issuer"),
        "{:?}",
        r.body
    );

    let expired = leaf(&ca1, "build-agent-3", 1004, now - Duration::days(1));
    let r = post_session(&app, &signed_headers(&app, &expired, now, &b), &b).await;
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .starts_with("certificate_expired"),
        "{:?}",
        r.body
    );

    // A CRL revoking 1005: that certificate is refused, the good one still works.
    let revoked = leaf(&ca1, "build-agent-5", 1005, now + Duration::days(30));
    let r = app
        .send(
            app.client
                .put(app.url(&format!("/api/trust-anchors/{}/crl", s.anchor_id)))
                .bearer_auth(&app.admin_token)
                .body(crl(&ca1, &[1005], now + Duration::days(1))),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["crl"]["revoked"], 1);
    let r = post_session(&app, &signed_headers(&app, &revoked, now, &b), &b).await;
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .starts_with("certificate_revoked"),
        "{:?}",
        r.body
    );
    let r = post_session(&app, &signed_headers(&app, &good, now, &b), &b).await;
    assert_eq!(r.status, 201, "{:?}", r.body);

    // A role other than the bound one is refused (rolegate never assumes a named role).
    let mut other_role: Value = serde_json::from_slice(&b).unwrap();
    other_role["roleArn"] = json!(format!("arn:aws:iam::{CUSTOMER}:role/admin"));
    let other_role = serde_json::to_vec(&other_role).unwrap();
    let r = post_session(
        &app,
        &signed_headers(&app, &good, now, &other_role),
        &other_role,
    )
    .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .starts_with("role_not_bound"),
        "{:?}",
        r.body
    );
    let events = app.audit_events().await;
    assert!(
        events.iter().any(|e| e.action == "workload.session"
            && e.code.as_deref() == Some("workload_auth_failed")
            && e.details["reason"]
                .as_str()
                .unwrap_or_default()
                .starts_with("role_not_bound")),
        "role_not_bound not audited"
    );

    // A CRL two hours past its nextUpdate (grace: one hour): the anchor fails closed.
    let r = app
        .send(
            app.client
                .put(app.url(&format!(
                    "/api/trust-anchors/{}/crl",
                    s.anchor_arn.replace('/', "%2F")
                )))
                .bearer_auth(&app.admin_token)
                .body(crl(&ca1, &[], now - Duration::hours(2))),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["crl"]["stale"], true);
    let r = post_session(&app, &signed_headers(&app, &good, now, &b), &b).await;
    assert!(
        r.body["message"].as_str().unwrap().starts_with("crl_stale"),
        "{:?}",
        r.body
    );

    // Every refusal is in the log with its reason; sessions carry the certificate.
    let events = app.audit_events().await;
    let reasons = refusal_reasons(&events);
    for want in [
        "signature_replayed",
        "signature_mismatch",
        "date_out_of_range",
        "condition_not_met",
        "untrusted_issuer",
        "certificate_expired",
        "certificate_revoked",
        "crl_stale",
    ] {
        assert!(
            reasons.iter().any(|r| r == want),
            "{want} not audited: {reasons:?}"
        );
    }
    let ok: Vec<_> = events
        .iter()
        .filter(|e| e.action == "workload.session" && e.code.is_none())
        .collect();
    assert_eq!(ok.len(), 2, "{ok:?}");
    let fp = hex::encode(Sha256::digest(&good.der));
    for e in ok {
        assert_eq!(e.details["fingerprint_sha256"], fp.as_str());
        // 1001, as the serial's DER bytes.
        assert_eq!(e.details["serial"], "03e9");
        assert!(
            e.details["subject"]
                .as_str()
                .unwrap()
                .contains("CN=build-agent-1")
        );
        assert!(
            e.details["issuer"]
                .as_str()
                .unwrap()
                .contains("rolegate test CA")
        );
        assert_eq!(e.org.as_deref(), Some(org.as_str()));
    }
}

/// Anchors and profiles are the owner's and admins' business; an API key gets 403, and
/// bad input is a 400 that names the field.
async fn anchors_and_profiles_are_checked_and_owner_only(engine: Engine) {
    let app = creds_app(engine, "").await;
    let key = validated_org(&app, &app.admin_token, "wi-admin").await;
    let ca1 = ca("c");
    let r = app
        .post(
            "/api/orgs/wi-admin/trust-anchors",
            &key,
            json!({"name": "x", "certificate_bundle_pem": ca1.cert.pem()}),
        )
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let r = app
        .post(
            "/api/orgs/wi-admin/trust-anchors",
            &app.admin_token,
            json!({"name": "x", "certificate_bundle_pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(
        r.body["error"]["field"], "certificate_bundle_pem",
        "{:?}",
        r.body
    );
    for (bad, field) in [
        (
            json!({"name": "p", "access_level": "operator"}),
            "access_level",
        ),
        (
            json!({"name": "p", "max_duration_secs": 60}),
            "max_duration_secs",
        ),
        (
            json!({"name": "p", "attribute_mappings": [{"field": "subject_cn", "tag": "aws:x"}]}),
            "attribute_mappings",
        ),
    ] {
        let r = app
            .post(
                "/api/orgs/wi-admin/workload-profiles",
                &app.admin_token,
                bad,
            )
            .await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(r.body["error"]["field"], field, "{:?}", r.body);
    }
    let r = app
        .get("/api/orgs/wi-admin/trust-anchors", &app.admin_token)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["trust_anchors"].as_array().unwrap().len(), 0);
    let r = app
        .send(
            app.client
                .put(app.url(&format!("/api/trust-anchors/{}/crl", uuid::Uuid::new_v4())))
                .bearer_auth(&app.admin_token)
                .body(b"garbage".to_vec()),
        )
        .await;
    assert_eq!(r.status, 404, "{:?}", r.body);
}

/// The official client: `iam-rolesanywhere-session` (PyPI), unchanged, pointed at rolegate's
/// TLS listener with `endpoint=`, gets credentials and makes calls that land in the
/// customer's account.
async fn the_official_python_client_gets_credentials(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    // A server certificate for localhost from a throw-away CA, as the TLS tests make one.
    let tls_ca_key = KeyPair::generate().unwrap();
    let mut tls_ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    tls_ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    tls_ca
        .distinguished_name
        .push(DnType::CommonName, "rolegate TLS test CA");
    let tls_ca = tls_ca.self_signed(&tls_ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &tls_ca, &tls_ca_key)
        .unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("server.pem"), server.pem()).unwrap();
    std::fs::write(path("server.key"), server_key.serialize_pem()).unwrap();
    std::fs::write(path("tls-ca.pem"), tls_ca.pem()).unwrap();
    let toml = format!(
        "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n{}",
        path("server.pem").display(),
        path("server.key").display(),
        onboarding_toml(false, "")
    );
    let mut app = spawn_with(
        engine,
        AppOptions {
            toml,
            ..AppOptions::default()
        },
    )
    .await;
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    app.base = format!("https://localhost:{port}");
    app.client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(tls_ca.pem().as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();

    let org = format!("wi-py-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let ca1 = ca("rolegate python CA");
    let s = setup(&app, &org, &ca1).await;
    let l = leaf(
        &ca1,
        "build-python-1",
        2001,
        OffsetDateTime::now_utc() + Duration::days(30),
    );
    std::fs::write(path("leaf.pem"), &l.pem).unwrap();
    std::fs::write(path("leaf.key"), &l.key_pem).unwrap();
    let script = r#"
import json, sys
from iam_rolesanywhere_session import IAMRolesAnywhereSession
a = json.loads(sys.argv[1])
session = IAMRolesAnywhereSession(
    profile_arn=a["profile"], role_arn=a["role"], trust_anchor_arn=a["anchor"],
    certificate=a["cert"], private_key=a["key"], region="us-east-1",
    endpoint=a["endpoint"], verify=a["ca"], session_duration=900,
).get_session()
who = session.client("sts", endpoint_url=a["moto"]).get_caller_identity()
ec2 = session.client("ec2", endpoint_url=a["moto"], region_name="us-east-1")
pair = ec2.create_key_pair(KeyName=a["keyname"])
print(json.dumps({"account": who["Account"], "arn": who["Arn"], "key": pair["KeyName"]}))
"#;
    let args = json!({
        "profile": s.profile_arn, "role": s.role_arn, "anchor": s.anchor_arn,
        "cert": path("leaf.pem"), "key": path("leaf.key"), "ca": path("tls-ca.pem"),
        "endpoint": format!("localhost:{port}"), "moto": moto_url(), "keyname": org,
    });
    let out = std::process::Command::new(venv_bin("python"))
        .arg("-c")
        .arg(script)
        .arg(args.to_string())
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["account"], CUSTOMER, "{v}");
    assert_eq!(v["key"], org.as_str(), "{v}");
    assert!(v["arn"].as_str().unwrap().contains("build-python-1"), "{v}");
    // The key pair is in the customer's account, where rolegate's session put the call.
    let (id, secret, token) = crate::support::customer_credentials(CUSTOMER);
    let listed = aws_cli(
        &[
            "ec2",
            "describe-key-pairs",
            "--key-names",
            &org,
            "--output",
            "json",
        ],
        Some((&id, &secret, &token)),
    );
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
}

/// rolegate's own client: `pki dev-ca` makes a CA and leaf, and `creds --certificate`
/// signs CreateSession itself as the AWS CLI's `credential_process`, with no API key.
async fn rolegate_creds_with_a_certificate_is_a_credential_process(engine: Engine) {
    use std::os::unix::fs::PermissionsExt as _;
    let app = creds_app(engine, "").await;
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let out = std::process::Command::new(crate::process::BIN)
        .args(["pki", "dev-ca", "--out"])
        .arg(&pki)
        .args(["--common-name", "build-cli-1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("NOT FOR PRODUCTION"));
    let key = pki.join("leaf.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let org = format!("wi-cli-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let s = setup_pem(
        &app,
        &org,
        &std::fs::read_to_string(pki.join("ca.pem")).unwrap(),
    )
    .await;
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile wi]\ncredential_process = {} creds --server {} --certificate {} --private-key {} --trust-anchor {} --profile {} --format credential-process\n",
            crate::process::BIN,
            app.base,
            pki.join("leaf.pem").display(),
            key.display(),
            s.anchor_arn,
            s.profile_arn,
        ),
    )
    .unwrap();
    let out = std::process::Command::new(venv_bin("aws"))
        .args([
            "sts",
            "get-caller-identity",
            "--profile",
            "wi",
            "--output",
            "json",
        ])
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_ENDPOINT_URL", moto_url())
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("ROLEGATE_API_KEY")
        .env_remove("ROLEGATE_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let who: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(who["Account"], CUSTOMER, "{who}");
    assert!(
        who["Arn"].as_str().unwrap().contains("build-cli-1"),
        "{who}"
    );

    // A certificate the profile refuses: the client exits non-zero with the reason, and
    // no key material on stderr.
    let out = std::process::Command::new(crate::process::BIN)
        .args(["pki", "dev-ca", "--out"])
        .arg(dir.path().join("other"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = std::process::Command::new(crate::process::BIN)
        .args(["creds", "--server", &app.base, "--certificate"])
        .arg(dir.path().join("other/leaf.pem"))
        .arg("--private-key")
        .arg(dir.path().join("other/leaf.key"))
        .args(["--trust-anchor", &s.anchor_arn, "--profile", &s.profile_arn])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("untrusted_issuer"), "{stderr}");
    assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
}

/// Junk costs a source its budget before any parsing: the third request is 429.
async fn sessions_are_rate_limited_per_source_before_verification(engine: Engine) {
    let app = spawn_with(
        engine,
        AppOptions {
            toml: "[rate_limits]\nsessions_per_ip = { burst = 2, period_secs = 3600 }\n".into(),
            ..AppOptions::default()
        },
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = post_session(&app, &[], b"junk").await;
        statuses.push(r.status);
    }
    assert_eq!(statuses, vec![403, 403, 429]);
    let reasons = refusal_reasons(&app.audit_events().await);
    // Refusals that name no real anchor are aggregated per source like failed logins: the
    // first is an event of its own, the rest of the minute one event with their count.
    assert_eq!(reasons, vec!["malformed_authorization"], "{reasons:?}");
}

/// Deleting an anchor or a profile: owner and admins only, by id or ARN; its certificates
/// get no more sessions at once; a second delete is 404, a malformed id 400, and each delete
/// is audited with the ARN.
async fn deleted_anchors_and_profiles_issue_nothing(engine: Engine) {
    let app = creds_app(engine, "").await;
    let org = format!("wi-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let ca1 = ca("rolegate delete CA");
    let s = setup(&app, &org, &ca1).await;
    let now = OffsetDateTime::now_utc();
    let good = leaf(&ca1, "build-agent-9", 9001, now + Duration::days(30));
    let b = body(&s);
    let r = post_session(&app, &signed_headers(&app, &good, now, &b), &b).await;
    assert_eq!(r.status, 201, "{:?}", r.body);

    let key = app
        .post(
            &format!("/api/orgs/{org}/api-key"),
            &app.admin_token,
            json!({}),
        )
        .await;
    // The ARN form, its slash escaped as a client must.
    let anchor = format!(
        "/api/orgs/{org}/trust-anchors/{}",
        s.anchor_arn.replace('/', "%2F")
    );
    let api_key = key.body["api_key"].as_str().expect("a rotated key");
    let r = app.delete(&anchor, api_key).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let r = app
        .delete(
            &format!("/api/orgs/{org}/trust-anchors/not-an-id"),
            &app.admin_token,
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.body["error"]["field"], "id", "{:?}", r.body);
    let r = app.delete(&anchor, &app.admin_token).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = app.delete(&anchor, &app.admin_token).await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    let r = post_session(&app, &signed_headers(&app, &good, now, &b), &b).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let r = app
        .get(&format!("/api/orgs/{org}/trust-anchors"), &app.admin_token)
        .await;
    assert_eq!(r.body["trust_anchors"], json!([]), "{:?}", r.body);

    let profile_id = s.profile_arn.rsplit('/').next().unwrap().to_owned();
    let profile = format!("/api/orgs/{org}/workload-profiles/{profile_id}");
    let r = app.delete(&profile, &app.admin_token).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = app.delete(&profile, &app.admin_token).await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    let r = app
        .get(
            &format!("/api/orgs/{org}/workload-profiles"),
            &app.admin_token,
        )
        .await;
    assert_eq!(r.body["workload_profiles"], json!([]), "{:?}", r.body);

    let events = app.audit_events().await;
    for (action, target) in [
        ("trust_anchor.delete", s.anchor_arn.as_str()),
        ("workload_profile.delete", s.profile_arn.as_str()),
    ] {
        let e = events
            .iter()
            .find(|e| e.action == action && e.outcome == rolegate_core::audit::Outcome::Success)
            .unwrap_or_else(|| panic!("no {action} event"));
        assert_eq!(e.target.as_deref(), Some(target), "{e:?}");
        assert_eq!(e.org.as_deref(), Some(org.as_str()));
    }
}

crate::both_engines!(
    deleted_anchors_and_profiles_issue_nothing,
    sessions_are_rate_limited_per_source_before_verification,
    rolegate_creds_with_a_certificate_is_a_credential_process,
    the_official_python_client_gets_credentials,
    certificate_sessions_and_every_refusal,
    anchors_and_profiles_are_checked_and_owner_only,
);
