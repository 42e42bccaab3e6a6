//! `revoke_sessions` against an in-memory store, a manual clock, a vending STS and an IAM
//! stand-in that keeps one role's inline policy: the marker, the write, a merge, a failure
//! that keeps the revocation and is retried after its backoff, and the cleanup.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use secrecy::SecretString;

use super::revocation_policy::POLICY_NAME;
use super::tests::{cmd, op, setup};
use super::{Decision, RevokeSessions, RevokeSessionsSettings};
use crate::ids::{OrgName, Role};
use crate::keyspace;
use crate::model::OrgStatus;
use crate::ports::Txn;
use crate::ports::aws::ec2::AwsError;
use crate::ports::aws::iam::Iam;
use crate::ports::aws::{AssumeRoleRequest, CallerIdentity, Sts, StsError, TemporaryCredentials};
use crate::services::Services;

#[derive(Debug, Default)]
struct Vending(Mutex<Vec<AssumeRoleRequest>>);

#[async_trait]
impl Sts for Vending {
    async fn assume_role(&self, req: &AssumeRoleRequest) -> Result<TemporaryCredentials, StsError> {
        self.0.lock().unwrap().push(req.clone());
        Ok(TemporaryCredentials {
            access_key_id: "ASIA".into(),
            secret_access_key: SecretString::from("s"),
            session_token: SecretString::from("t"),
            expiration: time::OffsetDateTime::now_utc(),
            assumed_role_arn: "arn:aws:sts::111122223333:assumed-role/r/x".into(),
        })
    }
    async fn own_identity(&self) -> Result<CallerIdentity, StsError> {
        Err(StsError::Unavailable("x".into()))
    }
    async fn caller_identity(
        &self,
        _: &str,
        _: &SecretString,
        _: Option<&SecretString>,
    ) -> Result<CallerIdentity, StsError> {
        Err(StsError::Unavailable("x".into()))
    }
}

/// One role's inline policy; `fail` makes every call fail.
#[derive(Debug, Default)]
struct OneRole {
    doc: Mutex<Option<String>>,
    fail: Mutex<bool>,
}

impl OneRole {
    fn check(&self, role: &str, policy: &str) -> Result<(), AwsError> {
        assert_eq!((role, policy), ("r", POLICY_NAME));
        if *self.fail.lock().unwrap() {
            return Err(AwsError::Service {
                code: "NoSuchEntity".into(),
                message: "The role with name r cannot be found.".into(),
                request_id: None,
            });
        }
        Ok(())
    }

    fn doc(&self) -> Option<serde_json::Value> {
        let d = self.doc.lock().unwrap().clone()?;
        Some(serde_json::from_str(&d).unwrap())
    }
}

#[async_trait]
impl Iam for OneRole {
    async fn get_role_policy(
        &self,
        _: &TemporaryCredentials,
        role: &str,
        policy: &str,
    ) -> Result<Option<String>, AwsError> {
        self.check(role, policy)?;
        Ok(self.doc.lock().unwrap().clone())
    }
    async fn put_role_policy(
        &self,
        _: &TemporaryCredentials,
        role: &str,
        policy: &str,
        document: &str,
    ) -> Result<(), AwsError> {
        self.check(role, policy)?;
        *self.doc.lock().unwrap() = Some(document.to_owned());
        Ok(())
    }
    async fn delete_role_policy(
        &self,
        _: &TemporaryCredentials,
        role: &str,
        policy: &str,
    ) -> Result<(), AwsError> {
        self.check(role, policy)?;
        *self.doc.lock().unwrap() = None;
        Ok(())
    }
}

async fn validate(s: &Services) {
    let key = keyspace::org(&OrgName::parse("acme").unwrap());
    let mut rec = s.records.get(&key).await.unwrap().unwrap().value;
    rec.status = OrgStatus::Validated;
    rec.role_arn = Some("arn:aws:iam::111122223333:role/r".into());
    let txn = s.records.put(Txn::new(), &key, &rec).unwrap();
    assert!(s.records.vault().commit(txn).await.unwrap());
}

fn grants(doc: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["Condition"]["StringEquals"]["aws:PrincipalTag/rolegate:grant"]
                .as_array()
                .cloned()
                .unwrap()
        })
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_revocation_is_written_merged_retried_and_cleaned_up() {
    let (mut s, clock) = setup(1).await;
    validate(&s).await;
    let sts = Arc::new(Vending::default());
    let iam = Arc::new(OneRole::default());
    s.access = s.access.clone().with_revoke_sessions(RevokeSessions {
        sts: sts.clone(),
        iam: iam.clone(),
        settings: RevokeSessionsSettings {
            all_orgs: false,
            orgs: [OrgName::parse("acme").unwrap()].into(),
        },
    });
    let alice = op("alice", Role::Operator);
    let bob = op("bob", Role::Operator);
    let grant = |_: ()| async {
        let r = s.access.request(&alice, &cmd(3600, false)).await.unwrap();
        s.access
            .decide(&bob, &r.id, Decision::Approve, None)
            .await
            .unwrap();
        r.id
    };
    // Nothing queued, nothing written.
    assert_eq!(s.access.write_revocations().await.unwrap(), 0);

    // IAM fails: the revocation stands, stays queued, and the failure is recorded.
    *iam.fail.lock().unwrap() = true;
    let g1 = grant(()).await;
    s.access
        .decide(&bob, &g1, Decision::Revoke, None)
        .await
        .unwrap();
    assert_eq!(s.access.write_revocations().await.unwrap(), 1);
    let acme = OrgName::parse("acme").unwrap();
    let state = s
        .records
        .get(&keyspace::access_revocation_state(&acme))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(state.attempts, 1);
    assert!(state.last_error.unwrap().contains("NoSuchEntity"));
    let queued = s
        .records
        .vault()
        .store()
        .list(&keyspace::access_revocation_prefix(&acme), None, 10)
        .await
        .unwrap();
    assert_eq!(queued.items.len(), 1);
    // Not before its backoff.
    *iam.fail.lock().unwrap() = false;
    assert_eq!(s.access.write_revocations().await.unwrap(), 0);
    assert!(iam.doc().is_none());
    clock.advance_ms(61_000);
    assert_eq!(s.access.write_revocations().await.unwrap(), 1);
    let doc = iam.doc().unwrap();
    assert_eq!(grants(&doc), vec![g1.clone()]);
    assert_eq!(doc["Statement"][0]["Effect"], "Deny");
    // The writer's session: the bound role, the ExternalId, only the three IAM calls.
    let call = sts.0.lock().unwrap().last().unwrap().clone();
    assert_eq!(call.role_arn, "arn:aws:iam::111122223333:role/r");
    assert!(call.external_id.is_some());
    let policy = call.policy.unwrap();
    assert!(policy.contains("iam:PutRolePolicy") && !policy.contains("\"*\""));

    // A second revocation merges into the same policy.
    let g2 = grant(()).await;
    s.access
        .decide(&bob, &g2, Decision::Revoke, None)
        .await
        .unwrap();
    assert_eq!(s.access.write_revocations().await.unwrap(), 1);
    let mut both = vec![g1.clone(), g2.clone()];
    both.sort();
    assert_eq!(grants(&iam.doc().unwrap()), both);
    // Nothing due: nothing written.
    assert_eq!(s.access.write_revocations().await.unwrap(), 0);

    // Past the grants' end (+ margin) the statements go, and the policy with them.
    clock.advance_ms(3_600_000 + 301_000);
    assert_eq!(s.access.write_revocations().await.unwrap(), 1);
    assert!(iam.doc().is_none());
    assert!(
        s.records
            .get(&keyspace::access_revocation_state(&acme))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(s.access.write_revocations().await.unwrap(), 0);
}

#[tokio::test]
async fn orgs_without_the_setting_queue_nothing() {
    let (mut s, _clock) = setup(1).await;
    validate(&s).await;
    let iam = Arc::new(OneRole::default());
    s.access = s.access.clone().with_revoke_sessions(RevokeSessions {
        sts: Arc::new(Vending::default()),
        iam: iam.clone(),
        settings: RevokeSessionsSettings::default(),
    });
    let alice = op("alice", Role::Operator);
    let bob = op("bob", Role::Operator);
    let r = s.access.request(&alice, &cmd(3600, false)).await.unwrap();
    s.access
        .decide(&bob, &r.id, Decision::Approve, None)
        .await
        .unwrap();
    s.access
        .decide(&bob, &r.id, Decision::Revoke, None)
        .await
        .unwrap();
    assert_eq!(s.access.write_revocations().await.unwrap(), 0);
    assert!(iam.doc().is_none());
}
