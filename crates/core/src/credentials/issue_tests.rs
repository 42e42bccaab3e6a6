//! Issuance against an in-memory store and an STS that takes its time: a request cancelled
//! mid-flight (its client went away) must neither leak the fill lock nor waste the call.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::clock::SystemClock;
use crate::credentials::{CredentialPolicy, IssueCommand};
use crate::ids::{OrgName, Role, UserId};
use crate::orgs::{OrgRecord, OrgStatus, RegisterOrgCommand};
use crate::ports::aws::{AssumeRoleRequest, CallerIdentity, Sts, StsError, TemporaryCredentials};
use crate::ports::{KvStore as _, Txn};
use crate::testing::{MemoryStore, NoSts};
use crate::vault::Vault;
use crate::{Principal, RequestContext, Services};

#[derive(Debug, Default)]
struct SlowSts {
    calls: AtomicUsize,
}

#[async_trait]
impl Sts for SlowSts {
    async fn assume_role(&self, req: &AssumeRoleRequest) -> Result<TemporaryCredentials, StsError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(TemporaryCredentials {
            access_key_id: format!("ASIASLOW{n:012}"),
            secret_access_key: SecretString::from("slow-secret".to_owned()),
            session_token: SecretString::from("slow-token".to_owned()),
            expiration: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            assumed_role_arn: format!(
                "arn:aws:sts::111122223333:assumed-role/r/{}",
                req.session_name
            ),
        })
    }
    async fn caller_identity(
        &self,
        _: &str,
        _: &SecretString,
        _: Option<&SecretString>,
    ) -> Result<CallerIdentity, StsError> {
        Err(StsError::Unavailable("not used".into()))
    }
}

async fn keys(store: &MemoryStore, prefix: &str) -> usize {
    store.list(prefix, None, 100).await.unwrap().items.len()
}

#[tokio::test]
async fn a_cancelled_request_still_fills_the_cache_and_releases_the_lock() {
    let store = Arc::new(MemoryStore::default());
    let ring = rolegate_crypto::Keyring::new(&[rolegate_crypto::MasterKey::generate()]).unwrap();
    let vault = Vault::new(store.clone(), Arc::new(ring));
    let sts = Arc::new(SlowSts::default());
    let services = Services::new(vault, Arc::new(SystemClock), sts.clone(), Arc::new(NoSts))
        .await
        .unwrap();
    let admin = Principal::Operator {
        user_id: UserId::parse("admin").unwrap(),
        role: Role::Admin,
    };
    let ctx = RequestContext::system("test");
    let org = OrgName::parse("slow-org").unwrap();
    let cmd = RegisterOrgCommand {
        name: org.clone(),
        expected_account_id: None,
    };
    services.register_org(&ctx, &admin, cmd).await.unwrap();
    let key = format!("org/{org}");
    let mut rec = services
        .vault
        .get::<OrgRecord>(&key)
        .await
        .unwrap()
        .unwrap()
        .value;
    rec.status = OrgStatus::Validated;
    rec.role_arn = Some("arn:aws:iam::111122223333:role/r".into());
    let txn = services.vault.put(Txn::new(), &key, &rec).unwrap();
    assert!(services.vault.commit(txn).await.unwrap());

    let policy = CredentialPolicy::defaults("aws", "us-east-1".into());
    let cmd = IssueCommand::parse(Some("slow-org"), None, None, None, false).unwrap();
    let request = {
        let (services, admin, ctx, cmd, policy) = (
            services.clone(),
            admin.clone(),
            ctx.clone(),
            cmd.clone(),
            policy.clone(),
        );
        tokio::spawn(async move {
            services
                .issue_credentials(&ctx, &admin, &cmd, &policy)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    request.abort();
    assert!(request.await.unwrap_err().is_cancelled());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        keys(&store, "credlock/").await,
        0,
        "the fill lock was released"
    );
    assert_eq!(
        keys(&store, "cred/slow-org/").await,
        1,
        "the call was not wasted"
    );
    let again = services
        .issue_credentials(&ctx, &admin, &cmd, &policy)
        .await
        .unwrap();
    assert!(again.cached);
    assert_eq!(sts.calls.load(Ordering::SeqCst), 1);
}
