use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::{create_job, customer_key_pairs, jobs_app, key_pairs, keypair_body, unique, wait_job};
use crate::onboarding::CUSTOMER;
use crate::sealing::raw_store_bytes;
use crate::support::{Engine, moto_url};

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The `Policy` of every AssumeRole moto recorded whose session tags name `job`.
pub(super) async fn recorded_policies(job: &str) -> Vec<String> {
    let text = reqwest::get(format!(
        "{}/moto-api/recorder/download-recording",
        moto_url()
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let entry: Value = serde_json::from_str(line).unwrap();
        let body = entry["body"].as_str().unwrap_or_default();
        let body = if entry["body_encoded"] == true {
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .unwrap(),
            )
            .unwrap_or_default()
        } else {
            body.to_owned()
        };
        if !body.contains("Action=AssumeRole") {
            continue;
        }
        let url = reqwest::Url::parse(&format!("http://x/?{body}")).unwrap();
        let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        if params.iter().any(|(_, v)| v == job) {
            out.extend(
                params
                    .into_iter()
                    .filter(|(k, _)| k == "Policy")
                    .map(|(_, v)| v),
            );
        }
    }
    out
}

async fn a_key_pair_job_makes_the_key_in_the_customer_account_and_hands_it_out_once(
    engine: Engine,
) {
    let (app, _) = jobs_app(engine, "", "kp-org").await;
    let name = unique("kp");
    let recorder = crate::support::MOTO_RECORDER.lock().await;
    reqwest::Client::new()
        .post(format!("{}/moto-api/recorder/start-recording", moto_url()))
        .send()
        .await
        .unwrap();
    let r = create_job(&app, &app.admin_token, "kp-org", "one", keypair_body(&name)).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("location"),
        Some(format!("/api/jobs/{id}").as_str())
    );
    assert_eq!(r.body["state"], "queued");
    let started = std::time::Instant::now();
    let job = wait_job(&app, &app.admin_token, &id).await;
    eprintln!("keypair.create took {:?} end to end", started.elapsed());
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["progress"], 100);
    assert_eq!(job["secret"], "available");
    for s in job["steps"].as_array().unwrap() {
        assert_eq!(s["state"], "succeeded", "{s}");
    }
    assert!(
        job["steps"][1]["aws_request_id"].as_str().is_some(),
        "{job}"
    );
    let session = &job["session"];
    assert!(
        session["assumed_role_arn"]
            .as_str()
            .unwrap()
            .starts_with(&format!("arn:aws:sts::{CUSTOMER}:assumed-role/")),
        "{job}"
    );
    assert_eq!(session["source_identity"], "admin");
    // The key pair is in the customer's account, tagged with the job, and not in ours.
    let found = customer_key_pairs(&name);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0]["Tags"].to_string().contains(&id), "{found:?}");
    assert!(
        key_pairs(None, &name).is_empty(),
        "not in the provider's account"
    );
    // The AssumeRole that moto saw carried the policy whose hash is on the job.
    let policies = recorded_policies(&id).await;
    for step in ["stop-recording", "reset-recording"] {
        reqwest::Client::new()
            .post(format!("{}/moto-api/recorder/{step}", moto_url()))
            .send()
            .await
            .unwrap();
    }
    drop(recorder);
    assert!(!policies.is_empty(), "moto recorded the job's AssumeRole");
    for p in &policies {
        assert_eq!(
            format!("{:x}", Sha256::digest(p.as_bytes())),
            session["session_policy_sha256"].as_str().unwrap()
        );
        let v: Value = serde_json::from_str(p).unwrap();
        let actions: Vec<&str> = v["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Action"].as_str().unwrap())
            .collect();
        assert!(
            actions.contains(&"ec2:CreateKeyPair") && actions.iter().all(|a| !a.contains('*')),
            "{p}"
        );
    }
    // Sealed at rest before the read.
    let before = raw_store_bytes(&app).await;
    assert!(!contains(&before, "PRIVATE KEY"), "the key is sealed");
    let s = app
        .get(&format!("/api/jobs/{id}/secret"), &app.admin_token)
        .await;
    assert_eq!(s.status, 200, "{:?}", s.body);
    assert_eq!(s.header("cache-control"), Some("no-store"));
    let pem = s.body["private_key"].as_str().unwrap().to_owned();
    assert!(pem.contains("PRIVATE KEY"), "{}", &pem[..30]);
    // It parses: ssh-keygen derives its public key.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pem");
    std::fs::write(&path, &pem).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = std::process::Command::new("ssh-keygen")
        .args(["-y", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ssh-ed25519 "));
    let again = app
        .get(&format!("/api/jobs/{id}/secret"), &app.admin_token)
        .await;
    assert_eq!(
        (again.status, again.code()),
        (410, "secret_already_retrieved")
    );
    let body_line = pem.lines().nth(1).unwrap();
    let after = raw_store_bytes(&app).await;
    assert!(
        !contains(&after, body_line) && !contains(&before, body_line),
        "never in plaintext"
    );
    // The audit log has the job's life, and no key.
    let events = app.audit_events().await;
    let actions: Vec<_> = events
        .iter()
        .filter(|e| e.target.as_deref() == Some(id.as_str()))
        .map(|e| e.action.clone())
        .collect();
    for a in [
        "job.create",
        "job.start",
        "job.succeeded",
        "job.secret_read",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
    assert!(!serde_json::to_string(&events).unwrap().contains(body_line));
}

async fn the_same_idempotency_key_gives_one_job_and_one_key_pair(engine: Engine) {
    let (app, _) = jobs_app(engine, "", "idem-org").await;
    let name = unique("idem");
    let body = keypair_body(&name);
    let a = create_job(&app, &app.admin_token, "idem-org", "k1", body.clone()).await;
    let b = create_job(&app, &app.admin_token, "idem-org", "k1", body).await;
    assert_eq!(
        (a.status, b.status),
        (202, 202),
        "{:?} {:?}",
        a.body,
        b.body
    );
    assert_eq!(a.body["id"], b.body["id"]);
    assert_eq!(b.header("idempotent-replayed"), Some("true"));
    let other = create_job(
        &app,
        &app.admin_token,
        "idem-org",
        "k1",
        keypair_body(&unique("idem")),
    )
    .await;
    assert_eq!(
        (other.status, other.code()),
        (422, "idempotency_key_reused")
    );
    let missing = app
        .post(
            "/api/orgs/idem-org/jobs",
            &app.admin_token,
            keypair_body(&name),
        )
        .await;
    assert_eq!(
        (missing.status, missing.code()),
        (400, "idempotency_key_required")
    );
    wait_job(&app, &app.admin_token, a.body["id"].as_str().unwrap()).await;
    // The worker counted it.
    let text = crate::metrics::scrape(&app).await;
    let kind = [("kind", "keypair.create")];
    let ok = [("kind", "keypair.create"), ("outcome", "succeeded")];
    assert_eq!(
        crate::metrics::sample(&text, "rolegate_jobs_total", &ok),
        1.0,
        "{text}"
    );
    assert_eq!(
        crate::metrics::sample(&text, "rolegate_job_duration_seconds_count", &kind),
        1.0
    );
    assert!(text.contains("rolegate_jobs_queued "), "{text}");
    let list = app
        .get(
            "/api/orgs/idem-org/jobs?kind=keypair.create",
            &app.admin_token,
        )
        .await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    assert_eq!(list.body["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(customer_key_pairs(&name).len(), 1);
}

async fn bad_specs_and_callers_are_refused_and_audited(engine: Engine) {
    let (app, key) = jobs_app(engine, "", "ref-org").await;
    let pending = app.register(&app.admin_token, "pending-org").await;
    assert_eq!(pending.status, 201);
    let other = app.register(&app.admin_token, "other-org").await;
    let other_key = other.body["api_key"].as_str().unwrap().to_owned();
    for (body, field) in [
        (
            json!({"kind": "keypair.create", "spec": {"name": "a*b"}}),
            "spec.name",
        ),
        (
            json!({"kind": "keypair.create", "spec": {"name": "a", "type": "dsa"}}),
            "spec.type",
        ),
        (
            json!({"kind": "keypair.import", "spec": {"name": "a", "public_key": "ssh-rsa nope"}}),
            "spec.public_key",
        ),
        (json!({"kind": "vpc.create", "spec": {}}), "kind"),
    ] {
        let r = create_job(&app, &app.admin_token, "ref-org", &unique("bad"), body).await;
        assert_eq!((r.status, r.code()), (400, "invalid_field"), "{:?}", r.body);
        assert_eq!(r.body["error"]["field"], field, "{:?}", r.body);
    }
    // Another org's API key: 403. An org that is not validated: 412. Both audited.
    let r = create_job(
        &app,
        &other_key,
        "ref-org",
        "x1",
        json!({"kind": "keypair.delete", "spec": {"name": "a"}}),
    )
    .await;
    assert_eq!((r.status, r.code()), (403, "forbidden"), "{:?}", r.body);
    let r = create_job(
        &app,
        &app.admin_token,
        "pending-org",
        "x2",
        keypair_body("a"),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (412, "org_not_validated"),
        "{:?}",
        r.body
    );
    // The org's own key may not use a level it is not granted.
    let r = create_job(&app, &key, "ref-org", "x3", keypair_body("a")).await;
    assert_eq!(
        (r.status, r.code()),
        (403, "access_level_not_allowed"),
        "{:?}",
        r.body
    );
    let events = app.audit_events().await;
    let refused = |org: &str, code: &str| {
        events.iter().any(|e| {
            e.action == "job.create"
                && e.org.as_deref() == Some(org)
                && e.code.as_deref() == Some(code)
        })
    };
    assert!(refused("ref-org", "forbidden"), "audited 403");
    assert!(refused("pending-org", "org_not_validated"), "audited 412");
    let g = app
        .get("/api/jobs/j000000000000ffffffffffffffff", &app.admin_token)
        .await;
    assert_eq!(g.status, 404);
}

async fn import_and_delete_run_in_the_customer_account(engine: Engine) {
    let (app, _) = jobs_app(engine, "", "imp-org").await;
    let name = unique("imp");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let out = std::process::Command::new("ssh-keygen")
        .args(["-t", "ed25519", "-N", "", "-q", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let public = std::fs::read_to_string(dir.path().join("k.pub")).unwrap();
    let body = json!({"kind": "keypair.import", "spec": {"name": name, "public_key": public.trim()}, "access_level": "operator"});
    let r = create_job(&app, &app.admin_token, "imp-org", "i1", body).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let job = wait_job(&app, &app.admin_token, r.body["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["secret"], "none");
    assert_eq!(customer_key_pairs(&name).len(), 1);
    let s = app
        .get(
            &format!("/api/jobs/{}/secret", job["id"].as_str().unwrap()),
            &app.admin_token,
        )
        .await;
    assert_eq!(s.status, 404, "an import has no secret");
    let body =
        json!({"kind": "keypair.delete", "spec": {"name": name}, "access_level": "operator"});
    let r = create_job(&app, &app.admin_token, "imp-org", "d1", body).await;
    let job = wait_job(&app, &app.admin_token, r.body["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["existed"], true);
    assert!(customer_key_pairs(&name).is_empty());
}

crate::both_engines!(
    a_key_pair_job_makes_the_key_in_the_customer_account_and_hands_it_out_once,
    the_same_idempotency_key_gives_one_job_and_one_key_pair,
    bad_specs_and_callers_are_refused_and_audited,
    import_and_delete_run_in_the_customer_account,
);
