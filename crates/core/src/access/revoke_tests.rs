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
use crate::clock::Clock as _;
use crate::ids::{OrgName, Role, UserId};
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

/// `name` registered by alice and validated with the stand-in's role.
async fn validated(s: &Services, name: &str) -> OrgName {
    let org = OrgName::parse(name).unwrap();
    if s.records.get(&keyspace::org(&org)).await.unwrap().is_none() {
        s.orgs
            .register(
                &op("alice", Role::Operator),
                crate::orgs::RegisterOrgCommand {
                    name: org.clone(),
                    expected_account_id: None,
                },
            )
            .await
            .unwrap();
    }
    let key = keyspace::org(&org);
    let mut rec = s.records.get(&key).await.unwrap().unwrap().value;
    rec.status = OrgStatus::Validated;
    rec.role_arn = Some("arn:aws:iam::111122223333:role/r".into());
    let txn = s.records.put(Txn::new(), &key, &rec).unwrap();
    assert!(s.records.vault().commit(txn).await.unwrap());
    org
}

/// Users, orgs and access with `revoke_sessions` on `orgs`.
fn with_revocations(s: &mut Services, orgs: &[&OrgName], iam: Arc<OneRole>) {
    let settings = RevokeSessionsSettings {
        all_orgs: false,
        orgs: orgs.iter().map(|o| (*o).clone()).collect(),
    };
    let queue = crate::revocations::RevocationQueue::new(settings.clone(), s.credentials.levels());
    s.users = s.users.clone().with_revocations(queue.clone());
    s.orgs = s.orgs.clone().with_revocations(queue);
    s.access = s.access.clone().with_revoke_sessions(RevokeSessions {
        sts: Arc::new(Vending::default()),
        iam,
        settings,
    });
}

/// Every value the SourceIdentity statements of `doc` name.
fn identities(doc: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["Condition"]["StringEquals"]["aws:SourceIdentity"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

async fn keys(s: &Services, prefix: &str) -> Vec<String> {
    s.records
        .vault()
        .store()
        .list(prefix, None, 100)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

async fn scope_events(s: &Services) -> Vec<crate::audit::AuditEvent> {
    let mut out = Vec::new();
    for (_, e) in s
        .records
        .vault()
        .list_all::<crate::audit::AuditEvent>(keyspace::AUDIT_EVENT.prefix)
        .await
        .unwrap()
    {
        if e.action == "access.revocation_scope" {
            out.push(e);
        }
    }
    out
}

#[tokio::test]
async fn a_disabled_operator_and_a_rotated_key_are_denied_where_they_reached() {
    let (mut s, clock) = setup(1).await;
    let acme = validated(&s, "acme").await;
    let other = validated(&s, "other").await;
    let iam = Arc::new(OneRole::default());
    with_revocations(&mut s, &[&acme, &other], iam.clone());
    let admin = op("root", Role::Admin);
    s.users
        .create(
            &admin,
            crate::users::CreateUserCommand::parse("dave", "operator", None).unwrap(),
        )
        .await
        .unwrap();
    let dave = op("dave", Role::Operator);
    // Dave got credentials in acme (and only read `other`); Erin got some in `other`.
    s.records
        .record(
            &dave,
            crate::audit::AuditRecord::new("credentials.issue").org("acme"),
        )
        .await
        .unwrap();
    s.records
        .record(
            &dave,
            crate::audit::AuditRecord::new("org.read").org("other"),
        )
        .await
        .unwrap();
    s.records
        .record(
            &op("erin", Role::Operator),
            crate::audit::AuditRecord::new("credentials.issue").org("other"),
        )
        .await
        .unwrap();
    clock.advance_ms(5_000);
    let disabled_at = clock.now().unix_timestamp();
    s.users
        .disable(&admin, &UserId::parse("dave").unwrap())
        .await
        .unwrap();
    // One marker, committed with the disable.
    assert_eq!(
        keys(&s, keyspace::ACCESS_REVOCATION_OPERATOR.prefix)
            .await
            .len(),
        1
    );

    assert_eq!(s.access.write_revocations().await.unwrap(), 1);
    let doc = iam.doc().unwrap();
    assert_eq!(identities(&doc), vec!["dave".to_owned()]);
    let st = &doc["Statement"][0];
    assert_eq!(
        (&st["Effect"], &st["Action"]),
        (&"Deny".into(), &"*".into())
    );
    let before = st["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        before,
        crate::clock::rfc3339_unix(super::revocation_policy::round_up(disabled_at))
    );
    // `other` was never used by dave: nothing queued there.
    assert!(
        keys(&s, &keyspace::access_revocation_prefix(&other))
            .await
            .is_empty()
    );
    let scoped = scope_events(&s).await;
    assert_eq!(scoped.len(), 1);
    assert_eq!(scoped[0].details["orgs"], serde_json::json!(["acme"]));
    assert_eq!(scoped[0].target.as_deref(), Some("dave"));
    // Until it settles the lookup runs again, and queues nothing twice.
    assert_eq!(s.access.write_revocations().await.unwrap(), 0);
    assert_eq!(
        keys(&s, keyspace::ACCESS_REVOCATION_OPERATOR.prefix)
            .await
            .len(),
        1
    );
    clock.advance_ms(121_000);
    s.access.write_revocations().await.unwrap();
    assert!(
        keys(&s, keyspace::ACCESS_REVOCATION_OPERATOR.prefix)
            .await
            .is_empty()
    );
    let scoped = scope_events(&s).await;
    assert_eq!(scoped.len(), 2);
    assert_eq!(scoped[1].details["settled"], true);
    assert_eq!(scoped[1].details["queued"], serde_json::json!(["acme"]));

    // Rotating acme's key denies the old key's sessions, in acme only.
    let old_key = s
        .records
        .get(&keyspace::org(&acme))
        .await
        .unwrap()
        .unwrap()
        .value
        .api_key_id;
    s.orgs
        .rotate_api_key(&op("alice", Role::Operator), &acme)
        .await
        .unwrap();
    assert_eq!(
        keys(&s, &keyspace::access_revocation_prefix(&acme))
            .await
            .len(),
        1
    );
    assert!(
        keys(&s, &keyspace::access_revocation_prefix(&other))
            .await
            .is_empty()
    );
    assert_eq!(s.access.write_revocations().await.unwrap(), 1);
    assert_eq!(
        identities(&iam.doc().unwrap()),
        vec![format!("apikey.{old_key}"), "dave".to_owned()]
    );

    // Past the longest session (the levels' 3600 s) plus the margin, both statements go.
    clock.advance_ms((3_600 + 301) * 1000);
    assert_eq!(s.access.write_revocations().await.unwrap(), 1);
    assert!(iam.doc().is_none());
}

#[tokio::test]
async fn without_the_setting_disabling_and_rotating_queue_nothing() {
    let (mut s, _clock) = setup(1).await;
    let acme = validated(&s, "acme").await;
    let iam = Arc::new(OneRole::default());
    with_revocations(&mut s, &[], iam.clone());
    let admin = op("root", Role::Admin);
    s.users
        .create(
            &admin,
            crate::users::CreateUserCommand::parse("dave", "operator", None).unwrap(),
        )
        .await
        .unwrap();
    s.records
        .record(
            &op("dave", Role::Operator),
            crate::audit::AuditRecord::new("credentials.issue").org("acme"),
        )
        .await
        .unwrap();
    s.users
        .disable(&admin, &UserId::parse("dave").unwrap())
        .await
        .unwrap();
    s.orgs
        .rotate_api_key(&op("alice", Role::Operator), &acme)
        .await
        .unwrap();
    assert!(
        keys(&s, keyspace::ACCESS_REVOCATION_OPERATOR.prefix)
            .await
            .is_empty()
    );
    assert!(
        keys(&s, keyspace::ACCESS_REVOCATION.prefix)
            .await
            .is_empty()
    );
    assert_eq!(s.access.write_revocations().await.unwrap(), 0);
    assert!(iam.doc().is_none());
}
