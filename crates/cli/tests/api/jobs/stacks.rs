//! Stack and inventory jobs against moto, as the customer account 111122223333.
//!
//! moto limits what these can show: its CloudFormation ignores a launch template's
//! MetadataOptions (the job's `require_imdsv2` step switches such instances, as it would a
//! template that lost the setting) and cannot delete a stack holding a route table (so the
//! delete test uses the `ec2` blueprint, whose VPC the test makes itself).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::engine::aws_denying;
use super::keypairs::recorded_policies;
use super::{create_job, customer_aws, jobs_app, unique, wait_job};
use crate::credentials::errors::replica_at;
use crate::support::{Engine, TestApp, moto_url};

fn apply(blueprint: &str, name: &str, parameters: Value) -> Value {
    json!({"kind": "stack.apply", "access_level": "operator", "reason": "test",
           "spec": {"blueprint": blueprint, "name": name, "parameters": parameters}})
}

/// Starts a job, waits for its end, and returns it.
async fn run(app: &TestApp, org: &str, body: Value) -> Value {
    let r = create_job(app, &app.admin_token, org, &unique("k"), body).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    wait_job(app, &app.admin_token, r.body["id"].as_str().unwrap()).await
}

/// The customer's live stacks called `name`.
fn customer_stacks(name: &str) -> Vec<Value> {
    customer_aws(&["cloudformation", "describe-stacks"])["Stacks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["StackName"] == name && s["StackStatus"] != "DELETE_COMPLETE")
        .cloned()
        .collect()
}

fn step_names(job: &Value) -> Vec<String> {
    job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_workload_stack_is_applied_updated_and_inspected_with_a_narrow_session(engine: Engine) {
    let (app, _) = jobs_app(engine, "", "stk-org").await;
    let name = unique("shop");
    // Parameters are checked against the blueprint before anything runs.
    for (params, field) in [
        (
            json!({"SshCidr": "203.0.113.7/32", "Bogus": "1"}),
            "spec.parameters.Bogus",
        ),
        (json!({}), "spec.parameters.SshCidr"),
        (json!({"SshCidr": "0.0.0.0"}), "spec.parameters.SshCidr"),
    ] {
        let r = create_job(
            &app,
            &app.admin_token,
            "stk-org",
            &unique("bad"),
            apply("workload", &name, params),
        )
        .await;
        assert_eq!((r.status, r.code()), (400, "invalid_field"), "{:?}", r.body);
        assert_eq!(r.body["error"]["field"], field, "{:?}", r.body);
    }
    let recorder = crate::support::MOTO_RECORDER.lock().await;
    let http = reqwest::Client::new();
    http.post(format!("{}/moto-api/recorder/start-recording", moto_url()))
        .send()
        .await
        .unwrap();
    let params = json!({"SshCidr": "203.0.113.7/32", "DeletionProtection": "false"});
    let started = Instant::now();
    let job = run(&app, "stk-org", apply("workload", &name, params)).await;
    eprintln!(
        "stack.apply (workload, create) took {:?} end to end",
        started.elapsed()
    );
    let id = job["id"].as_str().unwrap().to_owned();
    let policies = recorded_policies(&id).await;
    for step in ["stop-recording", "reset-recording"] {
        http.post(format!("{}/moto-api/recorder/{step}", moto_url()))
            .send()
            .await
            .unwrap();
    }
    drop(recorder);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["progress"], 100);
    let stack = format!("rolegate-stk-org-{name}");
    let result = &job["result"];
    assert_eq!(result["stack_name"], stack.as_str());
    assert_eq!(result["operation"], "create");
    assert_eq!(result["status"], "CREATE_COMPLETE");
    for o in [
        "VpcId",
        "SubnetAId",
        "SubnetBId",
        "InstanceId",
        "DbInstanceId",
    ] {
        assert!(
            result["outputs"][o].as_str().is_some_and(|v| !v.is_empty()),
            "{o}: {job}"
        );
    }
    // Stack events became steps, between submit and wait.
    let names = step_names(&job);
    let (submit, wait) = (
        names.iter().position(|n| n == "submit").unwrap(),
        names.iter().position(|n| n == "wait").unwrap(),
    );
    assert!(
        names[submit + 1..wait]
            .iter()
            .any(|n| n == &format!("{stack} CREATE_COMPLETE")),
        "{names:?}"
    );
    for s in job["steps"].as_array().unwrap() {
        assert_eq!(s["state"], "succeeded", "{s}");
    }
    // The stack is in the customer's account, tagged with the job.
    let found = customer_stacks(&stack);
    assert_eq!(found.len(), 1);
    assert!(found[0]["Tags"].to_string().contains(&id), "{found:?}");
    // Its instance requires IMDSv2.
    let instance = result["outputs"]["InstanceId"].as_str().unwrap();
    let described = customer_aws(&["ec2", "describe-instances", "--instance-ids", instance]);
    assert_eq!(
        described["Reservations"][0]["Instances"][0]["MetadataOptions"]["HttpTokens"], "required",
        "{described}"
    );
    assert_eq!(result["instances"][0]["id"], instance);
    // The AssumeRole carried the policy whose SHA-256 is on the job: CloudFormation only on
    // this stack, the blueprint's resource actions only through CloudFormation.
    assert!(!policies.is_empty(), "moto recorded the job's AssumeRole");
    for p in &policies {
        assert_eq!(
            format!("{:x}", Sha256::digest(p.as_bytes())),
            job["session"]["session_policy_sha256"].as_str().unwrap()
        );
        let v: Value = serde_json::from_str(p).unwrap();
        for s in v["Statement"].as_array().unwrap() {
            let (actions, resource) = (s["Action"].to_string(), s["Resource"].as_str().unwrap());
            if actions.contains("cloudformation:") {
                assert_eq!(
                    resource,
                    format!("arn:aws:cloudformation:*:*:stack/{stack}/*"),
                    "{p}"
                );
            } else if actions.contains("rds:") {
                assert!(
                    s["Condition"]
                        .to_string()
                        .contains("cloudformation.amazonaws.com"),
                    "{p}"
                );
            }
        }
    }

    // A second apply with a changed parameter updates the stack.
    let params = json!({"SshCidr": "198.51.100.0/24", "DeletionProtection": "false"});
    let update = run(&app, "stk-org", apply("workload", &name, params)).await;
    assert_eq!(update["state"], "succeeded", "{update}");
    assert_eq!(update["result"]["operation"], "update");
    assert_eq!(update["result"]["status"], "UPDATE_COMPLETE");
    assert_eq!(customer_stacks(&stack).len(), 1);
    let resources = customer_aws(&[
        "cloudformation",
        "list-stack-resources",
        "--stack-name",
        &stack,
    ]);
    let sg_id = resources["StackResourceSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["LogicalResourceId"] == "InstanceSecurityGroup")
        .and_then(|r| r["PhysicalResourceId"].as_str())
        .unwrap()
        .to_owned();
    let sg = customer_aws(&["ec2", "describe-security-groups", "--group-ids", &sg_id]);
    assert!(sg.to_string().contains("198.51.100.0/24"), "{sg}");

    // Inspect and inventory report it.
    let inspect = run(
        &app,
        "stk-org",
        json!({"kind": "stack.inspect", "spec": {"name": name}, "access_level": "operator"}),
    )
    .await;
    assert_eq!(inspect["state"], "succeeded", "{inspect}");
    assert_eq!(inspect["result"]["status"], "UPDATE_COMPLETE");
    assert_eq!(inspect["result"]["blueprint"], "workload");
    assert!(
        inspect["result"]["resources"].as_array().unwrap().len() >= 10,
        "{inspect}"
    );
    let inv = run(
        &app,
        "stk-org",
        json!({"kind": "inventory", "spec": {}, "access_level": "operator"}),
    )
    .await;
    assert_eq!(inv["state"], "succeeded", "{inv}");
    let r = &inv["result"];
    assert!(
        r["instances"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == instance),
        "{r}"
    );
    assert!(
        r["vpcs"]
            .to_string()
            .contains(result["outputs"]["VpcId"].as_str().unwrap())
    );
    assert!(
        r["db_instances"]
            .to_string()
            .contains(result["outputs"]["DbInstanceId"].as_str().unwrap())
    );
    assert!(
        r["stacks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == stack.as_str() && s["tags"]["rolegate:blueprint"] == "workload"),
        "{r}"
    );
    assert!(r["key_pairs"].is_array());
    let inspect_missing = run(
        &app,
        "stk-org",
        json!({"kind": "stack.inspect", "spec": {"name": "none"}, "access_level": "operator"}),
    )
    .await;
    assert_eq!(
        inspect_missing["error"]["code"], "stack_not_found",
        "{inspect_missing}"
    );
}

async fn a_stack_delete_removes_it_and_the_inventory_no_longer_lists_its_instance(engine: Engine) {
    let (app, _) = jobs_app(engine, "", "del-org").await;
    let vpc = customer_aws(&["ec2", "create-vpc", "--cidr-block", "10.42.0.0/16"])["Vpc"]["VpcId"]
        .as_str()
        .unwrap()
        .to_owned();
    let subnet = customer_aws(&[
        "ec2",
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--cidr-block",
        "10.42.1.0/24",
    ])["Subnet"]["SubnetId"]
        .as_str()
        .unwrap()
        .to_owned();
    let name = unique("web");
    let params = json!({"VpcId": vpc, "SubnetId": subnet, "SshCidr": "203.0.113.7/32"});
    let job = run(&app, "del-org", apply("ec2", &name, params)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let instance = job["result"]["outputs"]["InstanceId"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = |inv: &Value| {
        inv["result"]["instances"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == instance.as_str())
    };
    let inventory = json!({"kind": "inventory", "spec": {}, "access_level": "operator"});
    assert!(listed(&run(&app, "del-org", inventory.clone()).await));
    let del = run(
        &app,
        "del-org",
        json!({"kind": "stack.delete", "spec": {"name": name}, "access_level": "operator"}),
    )
    .await;
    assert_eq!(del["state"], "succeeded", "{del}");
    assert_eq!(del["result"]["existed"], true);
    assert!(customer_stacks(&format!("rolegate-del-org-{name}")).is_empty());
    assert!(
        !listed(&run(&app, "del-org", inventory).await),
        "the instance is gone"
    );
    // Deleting what is not there succeeds and says so.
    let again = run(
        &app,
        "del-org",
        json!({"kind": "stack.delete", "spec": {"name": name}, "access_level": "operator"}),
    )
    .await;
    assert_eq!(
        (
            again["state"].as_str(),
            again["result"]["existed"].as_bool()
        ),
        (Some("succeeded"), Some(false)),
        "{again}"
    );
}

async fn two_stack_applies_on_one_stack_run_one_after_the_other_and_stream_every_step(
    engine: Engine,
) {
    // Each submit holds a while, so that overlapping runs would be seen.
    let (app, _) = jobs_app(engine, "test_step_delay_ms = 700\n", "slk-org").await;
    let name = unique("net");
    let a = create_job(
        &app,
        &app.admin_token,
        "slk-org",
        "a",
        apply("vpc", &name, json!({})),
    )
    .await;
    let b = create_job(
        &app,
        &app.admin_token,
        "slk-org",
        "b",
        apply("vpc", &name, json!({"SubnetBCidr": "10.0.2.0/24"})),
    )
    .await;
    let (a, b) = (
        a.body["id"].as_str().unwrap().to_owned(),
        b.body["id"].as_str().unwrap().to_owned(),
    );
    let events = app
        .client
        .get(app.url(&format!("/api/jobs/{a}/events")))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    let text = tokio::spawn(async move {
        let text = tokio::time::timeout(Duration::from_secs(60), events.text()).await;
        text.expect("the stream ends with the job")
            .expect("the stream reads")
    });
    let mut saw_a_running = false;
    loop {
        let ja = app
            .get(&format!("/api/jobs/{a}"), &app.admin_token)
            .await
            .body;
        let jb = app
            .get(&format!("/api/jobs/{b}"), &app.admin_token)
            .await
            .body;
        if ja["state"] == "running" {
            assert_eq!(jb["state"], "queued", "b waits for a: {jb}");
            saw_a_running = true;
        }
        if ["succeeded", "failed"].contains(&jb["state"].as_str().unwrap()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert!(saw_a_running);
    let (ja, jb) = (
        wait_job(&app, &app.admin_token, &a).await,
        wait_job(&app, &app.admin_token, &b).await,
    );
    assert_eq!(
        (ja["state"].as_str(), jb["state"].as_str()),
        (Some("succeeded"), Some("succeeded")),
        "{ja} {jb}"
    );
    assert_eq!(
        (
            ja["result"]["operation"].as_str(),
            jb["result"]["operation"].as_str()
        ),
        (Some("create"), Some("update"))
    );
    assert!(jb["started_at"].as_str() >= ja["finished_at"].as_str());
    // The event stream delivered every step of a, stack events included.
    let text = text.await.unwrap();
    for step in step_names(&ja) {
        assert!(
            text.contains(&format!("\"name\":\"{step}\"")),
            "{step} in {text}"
        );
    }
    assert!(text.contains("event: end"), "{text}");
}

async fn a_role_that_may_not_use_cloudformation_fails_the_stack_job_at_its_step(engine: Engine) {
    // The app validates the org against moto and runs no jobs; a replica whose AWS endpoint
    // is the stand-in runs them. The stand-in refuses every CloudFormation call (its query
    // API is the one at version 2010-05-15) as CloudFormation refuses such a role.
    let (app, _) = jobs_app(engine, "workers = 0\n", "cfd-org").await;
    let xml = r#"<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:sts::111122223333:assumed-role/rolegate/job is not authorized to perform: cloudformation:DescribeStacks</Message></Error><RequestId>denied-cfn</RequestId></ErrorResponse>"#;
    let url = aws_denying("Version=2010-05-15", "denied-cfn", xml).await;
    let _replica = replica_at(&app, engine, &url, "[jobs]\npoll_ms = 50\n").await;
    let name = unique("deny");
    let r = create_job(
        &app,
        &app.admin_token,
        "cfd-org",
        "d",
        apply("vpc", &name, json!({})),
    )
    .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let job = wait_job(&app, &app.admin_token, r.body["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "failed", "{job}");
    let e = &job["error"];
    assert_eq!(e["code"], "aws_access_denied", "{job}");
    assert_eq!(e["step"], "submit", "{job}");
    assert_eq!(e["aws_code"], "AccessDenied", "{job}");
    assert_eq!(job["steps"][0]["name"], "assume_role");
    assert_eq!(job["steps"][0]["state"], "succeeded", "{job}");
    assert_eq!(job["steps"][1]["name"], "submit");
    assert_eq!(job["steps"][1]["state"], "failed", "{job}");
    assert_eq!(job["steps"][1]["aws_request_id"], "denied-cfn", "{job}");
    assert!(customer_stacks(&format!("rolegate-cfd-org-{name}")).is_empty());
    let events = app.audit_events().await;
    assert!(
        events
            .iter()
            .any(|e| e.action == "job.failed" && e.code.as_deref() == Some("aws_access_denied"))
    );
}

async fn stack_jobs_for_another_org_or_an_unvalidated_one_are_refused_and_audited(engine: Engine) {
    let (app, _) = jobs_app(engine, "", "srf-org").await;
    let pending = app.register(&app.admin_token, "spd-org").await;
    assert_eq!(pending.status, 201);
    let other = app.register(&app.admin_token, "sot-org").await;
    let other_key = other.body["api_key"].as_str().unwrap().to_owned();
    let body = apply("vpc", &unique("net"), json!({}));
    // Another org's API key: 403. An org that is not validated: 412. Both audited.
    let r = create_job(&app, &other_key, "srf-org", "x1", body.clone()).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"), "{:?}", r.body);
    let r = create_job(&app, &app.admin_token, "spd-org", "x2", body).await;
    assert_eq!(
        (r.status, r.code()),
        (412, "org_not_validated"),
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
    assert!(refused("srf-org", "forbidden"), "audited 403");
    assert!(refused("spd-org", "org_not_validated"), "audited 412");
    assert!(
        events.iter().any(|e| e.org.as_deref() == Some("spd-org")
            && e.code.as_deref() == Some("org_not_validated")
            && e.details["kind"] == "stack.apply"),
        "the 412 names the kind"
    );
    // Neither made a job.
    for org in ["srf-org", "spd-org"] {
        let list = app
            .get(&format!("/api/orgs/{org}/jobs"), &app.admin_token)
            .await;
        assert_eq!(list.status, 200, "{:?}", list.body);
        assert_eq!(list.body["jobs"], json!([]), "{org}: {:?}", list.body);
    }
}

crate::both_engines!(
    a_workload_stack_is_applied_updated_and_inspected_with_a_narrow_session,
    a_stack_delete_removes_it_and_the_inventory_no_longer_lists_its_instance,
    two_stack_applies_on_one_stack_run_one_after_the_other_and_stream_every_step,
    a_role_that_may_not_use_cloudformation_fails_the_stack_job_at_its_step,
    stack_jobs_for_another_org_or_an_unvalidated_one_are_refused_and_audited,
);
