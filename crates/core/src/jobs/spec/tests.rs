//! Specs and their session policies.

#![allow(clippy::unwrap_used)]

use super::*;

const ED: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIASRa/zrYWi1u1X0hXDCx8ZYwlyipc4h34Bep/vYpUD7 me@host";

#[test]
fn specs_are_validated_and_name_the_field() {
    let ok = JobSpec::parse("keypair.create", &json!({"name": "web-1"})).unwrap();
    assert_eq!(ok.target(), "keypair:web-1");
    for (kind, spec, field) in [
        ("keypair.create", json!({"name": "a*"}), "spec.name"),
        ("keypair.create", json!({"name": ""}), "spec.name"),
        ("keypair.create", json!({}), "spec.name"),
        (
            "keypair.create",
            json!({"name": "x".repeat(256)}),
            "spec.name",
        ),
        (
            "keypair.create",
            json!({"name": "a", "type": "dsa"}),
            "spec.type",
        ),
        ("keypair.create", json!({"name": "a", "extra": 1}), "spec"),
        (
            "keypair.import",
            json!({"name": "a", "public_key": "ssh-ed25519 !!"}),
            "spec.public_key",
        ),
        (
            "keypair.import",
            json!({"name": "a", "public_key": "-----BEGIN OPENSSH PRIVATE KEY-----"}),
            "spec.public_key",
        ),
        (
            "keypair.import",
            json!({"name": "a", "public_key": ED.replace("ssh-ed25519", "ssh-rsa")}),
            "spec.public_key",
        ),
        ("nope", json!({}), "kind"),
    ] {
        match JobSpec::parse(kind, &spec) {
            Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field, "{kind} {spec}"),
            other => panic!("{kind} {spec}: {other:?}"),
        }
    }
    let imp = JobSpec::parse("keypair.import", &json!({"name": "a", "public_key": ED})).unwrap();
    assert_eq!(
        imp.to_value()["public_key"]
            .as_str()
            .unwrap()
            .split(' ')
            .count(),
        2
    );
}

fn org() -> OrgName {
    OrgName::parse(&"o".repeat(32)).unwrap()
}

#[test]
fn stack_and_inventory_specs_are_validated_and_their_policies_fit() {
    let ssh = json!({"SshCidr": "203.0.113.7/32", "VolumeSize": 20, "DeletionProtection": false});
    let apply = JobSpec::parse(
        "stack.apply",
        &json!({"blueprint": "workload", "name": "n".repeat(64), "parameters": ssh, "replace_failed": true}),
    )
    .unwrap();
    assert_eq!(apply.to_value()["parameters"]["VolumeSize"], "20");
    let long = "n".repeat(64);
    for spec in [
        apply,
        JobSpec::parse("stack.delete", &json!({"name": long})).unwrap(),
        JobSpec::parse("stack.inspect", &json!({"name": long})).unwrap(),
        JobSpec::parse("inventory", &json!({})).unwrap(),
        JobSpec::parse("inventory", &Value::Null).unwrap(),
    ] {
        let p = spec.session_policy(&org(), "j0123456789abcdef0123456789ab");
        check_policy_size(&p).unwrap_or_else(|e| panic!("{}: {e}", spec.kind()));
        let v: Value = serde_json::from_str(&p).unwrap();
        for s in v["Statement"].as_array().unwrap() {
            let r = s["Resource"].as_str().unwrap();
            let actions = s["Action"].to_string();
            if actions.contains("cloudformation:") && spec.kind() != "inventory" {
                assert!(
                    r.contains(&format!("stack/rolegate-{}-{long}/", org())),
                    "{s}"
                );
            } else if spec.kind() == "inventory" {
                assert!(
                    !actions.contains("Create") && !actions.contains("Delete"),
                    "{s}"
                );
            } else if !actions.contains("Describe") && !actions.contains("ModifyInstanceMetadata") {
                assert!(s["Condition"].to_string().contains("aws:CalledVia"), "{s}");
            }
        }
    }
    for (kind, spec, field) in [
        ("stack.apply", json!({"name": "a"}), "spec.blueprint"),
        (
            "stack.apply",
            json!({"blueprint": "nope", "name": "a"}),
            "spec.blueprint",
        ),
        ("stack.apply", json!({"blueprint": "vpc"}), "spec.name"),
        (
            "stack.apply",
            json!({"blueprint": "vpc", "name": "a_b"}),
            "spec.name",
        ),
        (
            "stack.apply",
            json!({"blueprint": "vpc", "name": "-a"}),
            "spec.name",
        ),
        (
            "stack.apply",
            json!({"blueprint": "vpc", "name": "a", "parameters": {"X": "1"}}),
            "spec.parameters.X",
        ),
        (
            "stack.apply",
            json!({"blueprint": "ec2", "name": "a", "parameters": {"VpcId": "vpc-01234567", "SubnetId": "subnet-01234567"}}),
            "spec.parameters.SshCidr",
        ),
        (
            "stack.apply",
            json!({"blueprint": "vpc", "name": "a", "parameters": {"EnableNat": [1]}}),
            "spec.parameters.EnableNat",
        ),
        ("stack.delete", json!({"name": "a*"}), "spec.name"),
        ("inventory", json!({"x": 1}), "spec"),
    ] {
        match JobSpec::parse(kind, &spec) {
            Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field, "{kind} {spec}"),
            other => panic!("{kind} {spec}: {other:?}"),
        }
    }
}

#[test]
fn session_policies_are_narrow_and_fit() {
    let long = "n".repeat(255);
    for spec in [
        JobSpec::parse("keypair.create", &json!({"name": long})).unwrap(),
        JobSpec::parse("keypair.import", &json!({"name": long, "public_key": ED})).unwrap(),
        JobSpec::parse("keypair.delete", &json!({"name": long})).unwrap(),
    ] {
        let p = spec.session_policy(&org(), "j0123456789abcdef0123456789ab");
        check_policy_size(&p).unwrap();
        let v: Value = serde_json::from_str(&p).unwrap();
        for s in v["Statement"].as_array().unwrap() {
            let r = s["Resource"].as_str().unwrap();
            assert!(
                (r == "*" && s["Action"] == "ec2:DescribeKeyPairs") || r.ends_with(&long),
                "{s}"
            );
        }
    }
    let p = JobSpec::parse("keypair.create", &json!({"name": "k"}))
        .unwrap()
        .session_policy(&org(), "j1");
    assert!(p.contains("\"aws:RequestTag/rolegate:job\":\"j1\""), "{p}");
    assert!(check_policy_size(&"x".repeat(2049)).is_err());
}
