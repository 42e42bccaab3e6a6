//! The engine against an in-memory store, a manual clock, an STS that always vends, an
//! EC2 that keeps key pairs in a map, and a CloudFormation whose updates run until cancelled.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::json;

use super::{CreateJobCommand, JobSettings, NoObserver};
use crate::clock::{Clock as _, ManualClock};
use crate::error::{Code, Error};
use crate::ids::{OrgName, Role, UserId};
use crate::keyspace;
use crate::model::{JobRecord, JobState, OrgStatus, Secret, SecretState, StepState};
use crate::orgs::RegisterOrgCommand;
use crate::ports::aws::ec2::{AwsError, CreatedKeyPair, Ec2, InventoryItem, KeyPairInfo, KeyType};
use crate::ports::aws::{AssumeRoleRequest, CallerIdentity, Sts, StsError, TemporaryCredentials};
use crate::ports::{KvStore as _, Txn};
use crate::principal::{Caller, Principal, RequestContext};
use crate::services::{Config, Ports, Services};
use crate::testing::{MemoryStore, NoSts};
use crate::vault::Vault;

#[derive(Debug, Default)]
struct VendingSts {
    calls: Mutex<Vec<AssumeRoleRequest>>,
}

#[async_trait]
impl Sts for VendingSts {
    async fn assume_role(&self, req: &AssumeRoleRequest) -> Result<TemporaryCredentials, StsError> {
        self.calls.lock().unwrap().push(req.clone());
        Ok(TemporaryCredentials {
            access_key_id: "ASIA".into(),
            secret_access_key: SecretString::from("s"),
            session_token: SecretString::from("t"),
            expiration: time::OffsetDateTime::now_utc(),
            assumed_role_arn: format!(
                "arn:aws:sts::111122223333:assumed-role/r/{}",
                req.session_name
            ),
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

#[derive(Debug, Default)]
struct MapEc2 {
    keys: Mutex<HashMap<String, KeyPairInfo>>,
    deny: bool,
}

#[async_trait]
impl Ec2 for MapEc2 {
    async fn create_key_pair(
        &self,
        _: &TemporaryCredentials,
        name: &str,
        _: KeyType,
        tags: &[(String, String)],
    ) -> Result<CreatedKeyPair, AwsError> {
        if self.deny {
            return Err(AwsError::AccessDenied {
                code: "UnauthorizedOperation".into(),
                message: "no".into(),
                request_id: Some("r-1".into()),
            });
        }
        let mut keys = self.keys.lock().unwrap();
        if keys.contains_key(name) {
            return Err(AwsError::Service {
                code: "InvalidKeyPair.Duplicate".into(),
                message: "dup".into(),
                request_id: None,
            });
        }
        let info = KeyPairInfo {
            name: name.into(),
            key_pair_id: format!("key-{}", keys.len()),
            fingerprint: "f".into(),
            tags: tags.to_vec(),
        };
        keys.insert(name.into(), info.clone());
        Ok(CreatedKeyPair {
            info,
            private_key: Secret::new("-----BEGIN OPENSSH PRIVATE KEY-----\nx\n"),
            request_id: Some("r-2".into()),
        })
    }
    async fn import_key_pair(
        &self,
        _: &TemporaryCredentials,
        _: &str,
        _: &str,
        _: &[(String, String)],
    ) -> Result<(KeyPairInfo, Option<String>), AwsError> {
        Err(AwsError::Unavailable("x".into()))
    }
    async fn find_key_pair(
        &self,
        _: &TemporaryCredentials,
        name: &str,
    ) -> Result<Option<KeyPairInfo>, AwsError> {
        Ok(self.keys.lock().unwrap().get(name).cloned())
    }
    async fn delete_key_pair(
        &self,
        _: &TemporaryCredentials,
        name: &str,
    ) -> Result<Option<String>, AwsError> {
        self.keys.lock().unwrap().remove(name);
        Ok(None)
    }
    async fn describe_vpcs(
        &self,
        _: &TemporaryCredentials,
    ) -> Result<Vec<InventoryItem>, AwsError> {
        Ok(Vec::new())
    }
    async fn describe_instances(
        &self,
        _: &TemporaryCredentials,
        _: &[String],
    ) -> Result<Vec<InventoryItem>, AwsError> {
        Ok(Vec::new())
    }
    async fn list_key_pairs(
        &self,
        _: &TemporaryCredentials,
    ) -> Result<Vec<InventoryItem>, AwsError> {
        Ok(Vec::new())
    }
    async fn require_imdsv2(
        &self,
        _: &TemporaryCredentials,
        _: &str,
    ) -> Result<Option<String>, AwsError> {
        Ok(None)
    }
}

struct Rig {
    services: Services,
    store: Arc<MemoryStore>,
    clock: ManualClock,
    admin: Caller,
    sts: Arc<VendingSts>,
    ec2: Arc<MapEc2>,
    cfn: Arc<stack::UpdatingCfn>,
}

async fn rig(deny: bool) -> Rig {
    let store = Arc::new(MemoryStore::default());
    let ring = rolegate_crypto::Keyring::new(&[rolegate_crypto::MasterKey::generate()]).unwrap();
    let clock = ManualClock::new(1_800_000_000_000);
    let sts = Arc::new(VendingSts::default());
    let ec2 = Arc::new(MapEc2 {
        deny,
        ..MapEc2::default()
    });
    let cfn = Arc::new(stack::UpdatingCfn::default());
    let ports = Ports {
        vault: Vault::new(store.clone(), Arc::new(ring)),
        clock: Arc::new(clock.clone()),
        sts: sts.clone(),
        federation: Arc::new(NoSts),
        templates: None,
    };
    let settings = JobSettings {
        workers: 2,
        lease: Duration::from_secs(30),
        poll: Duration::from_millis(10),
        ..JobSettings::default()
    };
    let services = Services::new(ports, Config::offline())
        .await
        .unwrap()
        .with_jobs(
            crate::ports::aws::JobClients {
                ec2: ec2.clone(),
                cloudformation: cfn.clone(),
                ..crate::ports::aws::JobClients::none()
            },
            settings,
        );
    let admin = Caller::new(
        Principal::Operator {
            user_id: UserId::parse("admin").unwrap(),
            role: Role::Admin,
        },
        RequestContext::system("test"),
    );
    let org = OrgName::parse("acme").unwrap();
    services
        .orgs
        .register(
            &admin,
            RegisterOrgCommand {
                name: org.clone(),
                expected_account_id: None,
            },
        )
        .await
        .unwrap();
    let key = keyspace::org(&org);
    let mut rec = services.records.get(&key).await.unwrap().unwrap().value;
    rec.status = OrgStatus::Validated;
    rec.role_arn = Some("arn:aws:iam::111122223333:role/r".into());
    let txn = services.records.put(Txn::new(), &key, &rec).unwrap();
    assert!(services.records.vault().commit(txn).await.unwrap());
    Rig {
        services,
        store,
        clock,
        admin,
        sts,
        ec2,
        cfn,
    }
}

fn create_cmd(kind: &str, name: &str) -> CreateJobCommand {
    CreateJobCommand::parse(
        "acme",
        Some(kind),
        &json!({"name": name}),
        Some("operator"),
        Some("test"),
    )
    .unwrap()
}

async fn wait_final(r: &Rig, id: &str) -> JobRecord {
    for _ in 0..500 {
        let j = r.services.jobs.get(&r.admin, id).await.unwrap();
        if j.state.is_final() {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {id} did not end");
}

fn run_pool(r: &Rig) -> tokio::task::JoinHandle<()> {
    tokio::spawn(r.services.jobs.clone().run_workers(Arc::new(NoObserver)))
}

#[tokio::test]
async fn a_key_pair_job_runs_with_its_own_policy_and_hands_out_the_key_once() {
    let r = rig(false).await;
    let job = r
        .services
        .jobs
        .create(&r.admin, &create_cmd("keypair.create", "k1"))
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Queued);
    let pool = run_pool(&r);
    let done = wait_final(&r, &job.id).await;
    pool.abort();
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    assert_eq!(done.progress, 100);
    assert!(done.steps.iter().all(|s| s.state == StepState::Succeeded));
    assert_eq!(done.steps[1].aws_request_id.as_deref(), Some("r-2"));
    let call = r.sts.calls.lock().unwrap()[0].clone();
    let policy = call.policy.unwrap();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(policy.as_bytes()));
    assert_eq!(done.session.unwrap().session_policy_sha256, sha);
    assert!(
        call.tags.contains(&("rolegate:job".into(), job.id.clone())),
        "{:?}",
        call.tags
    );
    assert_eq!(call.source_identity.as_deref(), Some("admin"));
    // Nothing of the job is left behind but the job, its index and the secret.
    for prefix in ["jobq/", "joblease/", "joblock/"] {
        assert!(
            r.store
                .list(prefix, None, 10)
                .await
                .unwrap()
                .items
                .is_empty(),
            "{prefix}"
        );
    }
    let s = r
        .services
        .jobs
        .take_secret(&r.admin, &job.id)
        .await
        .unwrap();
    assert!(s.private_key.expose().contains("PRIVATE KEY"));
    let again = r
        .services
        .jobs
        .take_secret(&r.admin, &job.id)
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::SecretAlreadyRetrieved);
    assert_eq!(Code::SecretAlreadyRetrieved.status(), 410);
}

#[tokio::test]
async fn an_unread_secret_is_purged_in_time() {
    let r = rig(false).await;
    let job = r
        .services
        .jobs
        .create(&r.admin, &create_cmd("keypair.create", "k1"))
        .await
        .unwrap();
    let pool = run_pool(&r);
    wait_final(&r, &job.id).await;
    pool.abort();
    assert_eq!(r.services.jobs.purge_expired_secrets().await.unwrap(), 0);
    r.clock.advance_ms(15 * 60 * 1000 + 1);
    assert_eq!(r.services.jobs.purge_expired_secrets().await.unwrap(), 1);
    let j = r.services.jobs.get(&r.admin, &job.id).await.unwrap();
    assert_eq!(j.secret, SecretState::Purged);
    assert!(
        r.store
            .list("jobsec/", None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let events = r
        .services
        .records
        .vault()
        .list_all::<crate::audit::AuditEvent>(crate::audit::EVENT_PREFIX)
        .await
        .unwrap();
    assert!(
        events.iter().any(|(_, e)| e.action == "job.secret_purged"
            && e.target.as_deref() == Some(job.id.as_str())),
        "the purge is audited"
    );
    assert_eq!(
        r.services
            .jobs
            .take_secret(&r.admin, &job.id)
            .await
            .unwrap_err()
            .code(),
        Code::SecretPurged
    );
}

#[tokio::test]
async fn a_denied_call_fails_the_job_at_its_step() {
    let r = rig(true).await;
    let job = r
        .services
        .jobs
        .create(&r.admin, &create_cmd("keypair.create", "k1"))
        .await
        .unwrap();
    let pool = run_pool(&r);
    let done = wait_final(&r, &job.id).await;
    pool.abort();
    assert_eq!(done.state, JobState::Failed);
    let e = done.error.unwrap();
    assert_eq!(
        (e.code.as_str(), e.step.as_deref(), e.aws_code.as_deref()),
        (
            "aws_access_denied",
            Some("create_key_pair"),
            Some("UnauthorizedOperation")
        )
    );
    assert_eq!(done.steps[1].state, StepState::Failed);
}

#[tokio::test]
async fn leases_lapse_by_the_clock_and_targets_take_one_job_at_a_time() {
    let r = rig(false).await;
    let jobs = &r.services.jobs;
    let a = jobs
        .create(&r.admin, &create_cmd("keypair.create", "k1"))
        .await
        .unwrap();
    let b = jobs
        .create(&r.admin, &create_cmd("keypair.delete", "k1"))
        .await
        .unwrap();
    assert!(jobs.claim("w1", &a.id).await.unwrap().is_some());
    // A live lease keeps others off; the target's lock keeps b waiting.
    assert!(jobs.claim("w2", &a.id).await.unwrap().is_none());
    assert!(jobs.claim("w2", &b.id).await.unwrap().is_none());
    r.clock.advance_ms(31_000);
    assert!(
        jobs.claim("w2", &a.id).await.unwrap().is_some(),
        "a lapsed lease is resumed"
    );
    assert!(
        jobs.claim("w3", &b.id).await.unwrap().is_none(),
        "the target is still a's"
    );
}

#[tokio::test]
async fn a_resumed_create_replaces_the_key_pair_it_lost() {
    let r = rig(false).await;
    let job = r
        .services
        .jobs
        .create(&r.admin, &create_cmd("keypair.create", "k1"))
        .await
        .unwrap();
    // A crashed run: the step had called AWS, and the key pair carries the job's tag.
    let key = keyspace::job(&job.id);
    let mut rec = r.services.records.get(&key).await.unwrap().unwrap().value;
    rec.state = JobState::Running;
    rec.called_aws = true;
    let txn = r.services.records.put(Txn::new(), &key, &rec).unwrap();
    assert!(r.services.records.vault().commit(txn).await.unwrap());
    r.ec2.keys.lock().unwrap().insert(
        "k1".into(),
        KeyPairInfo {
            name: "k1".into(),
            key_pair_id: "key-old".into(),
            fingerprint: "f".into(),
            tags: vec![("rolegate:job".into(), job.id.clone())],
        },
    );
    let pool = run_pool(&r);
    let done = wait_final(&r, &job.id).await;
    pool.abort();
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
    let keys = r.ec2.keys.lock().unwrap();
    assert_eq!(keys.len(), 1);
    assert_ne!(keys["k1"].key_pair_id, "key-old");
    assert_eq!(done.attempts, 1);
}

#[tokio::test]
async fn cancel_works_until_aws_is_called() {
    let r = rig(false).await;
    let jobs = &r.services.jobs;
    let a = jobs
        .create(&r.admin, &create_cmd("keypair.create", "k1"))
        .await
        .unwrap();
    let c = jobs.cancel(&r.admin, &a.id).await.unwrap();
    assert_eq!(c.state, JobState::Cancelled);
    assert!(
        r.store
            .list("jobq/", None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let e = jobs.cancel(&r.admin, &a.id).await.unwrap_err();
    assert_eq!(e.code(), Code::NotCancellable);
    let missing = jobs
        .get(&r.admin, "j000000000000ffffffffffffffff")
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::NotFound { .. }));
    let _ = r.clock.now_ms();
}

/// Stack updates and their cancellation (moto implements neither a running update nor
/// CancelUpdateStack).
mod stack;
