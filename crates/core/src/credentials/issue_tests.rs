//! Issuance against an in-memory store and an STS that takes its time: a request cancelled
//! mid-flight (its client went away) must neither leak the fill lock nor waste the call.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::audit::AuditEvent;
use crate::clock::SystemClock;
use crate::credentials::IssueCommand;
use crate::error::{Code, Error};
use crate::ids::{OrgName, Role, UserId};
use crate::keyspace;
use crate::orgs::{OrgStatus, RegisterOrgCommand};
use crate::ports::aws::{AssumeRoleRequest, CallerIdentity, Sts, StsError, TemporaryCredentials};
use crate::ports::{KvStore as _, Txn};
use crate::principal::{Caller, Principal, RequestContext};
use crate::services::{Config, Ports, Services};
use crate::testing::{MemoryStore, NoSts};
use crate::vault::Vault;

#[derive(Debug, Default)]
struct SlowSts {
    calls: AtomicUsize,
    /// Every call fails as unreachable (after the same delay).
    unreachable: AtomicBool,
}

#[async_trait]
impl Sts for SlowSts {
    async fn assume_role(&self, req: &AssumeRoleRequest) -> Result<TemporaryCredentials, StsError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        if self.unreachable.load(Ordering::SeqCst) {
            return Err(StsError::Unavailable("connection refused".into()));
        }
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
    async fn own_identity(&self) -> Result<CallerIdentity, StsError> {
        Err(StsError::Unavailable("not used".into()))
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

/// Services over a fresh store with `sts`, and one validated org owned by `admin`.
async fn rig(sts: Arc<SlowSts>) -> (Services, Arc<MemoryStore>, Caller, OrgName) {
    rig_with(sts, Config::offline()).await
}

async fn rig_with(
    sts: Arc<SlowSts>,
    config: Config,
) -> (Services, Arc<MemoryStore>, Caller, OrgName) {
    let store = Arc::new(MemoryStore::default());
    let ring = rolegate_crypto::Keyring::new(&[rolegate_crypto::MasterKey::generate()]).unwrap();
    let vault = Vault::new(store.clone(), Arc::new(ring));
    let ports = Ports {
        vault,
        clock: Arc::new(SystemClock),
        sts,
        federation: Arc::new(NoSts),
        templates: None,
    };
    let services = Services::new(ports, config).await.unwrap();
    let admin = Caller::new(
        Principal::Operator {
            user_id: UserId::parse("admin").unwrap(),
            role: Role::Admin,
        },
        RequestContext::system("test"),
    );
    let org = OrgName::parse("slow-org").unwrap();
    let cmd = RegisterOrgCommand {
        name: org.clone(),
        expected_account_id: None,
    };
    services.orgs.register(&admin, cmd).await.unwrap();
    let key = keyspace::org(&org);
    let mut rec = services.records.get(&key).await.unwrap().unwrap().value;
    rec.status = OrgStatus::Validated;
    rec.role_arn = Some("arn:aws:iam::111122223333:role/r".into());
    let txn = services.records.put(Txn::new(), &key, &rec).unwrap();
    assert!(services.records.vault().commit(txn).await.unwrap());
    (services, store, admin, org)
}

#[tokio::test]
async fn a_cancelled_request_still_fills_the_cache_and_releases_the_lock() {
    let sts = Arc::new(SlowSts::default());
    let (services, store, admin, _) = rig(sts.clone()).await;
    let cmd = IssueCommand::parse(Some("slow-org"), None, None, None, false).unwrap();
    let request = {
        let (services, admin, cmd) = (services.clone(), admin.clone(), cmd.clone());
        tokio::spawn(async move { services.credentials.issue(&admin, &cmd).await })
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
    let again = services.credentials.issue(&admin, &cmd).await.unwrap();
    assert!(again.cached);
    assert_eq!(sts.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_api_key_gets_only_granted_levels_and_a_refusal_is_audited_without_sts() {
    let sts = Arc::new(SlowSts::default());
    let (services, _, admin, org) = rig(sts.clone()).await;
    let rotated = services.orgs.rotate_api_key(&admin, &org).await.unwrap();
    let principal = services
        .orgs
        .authenticate_api_key(secrecy::ExposeSecret::expose_secret(&rotated.api_key))
        .await
        .unwrap()
        .unwrap();
    let key = Caller::new(principal, RequestContext::system("probe"));
    let cmd = IssueCommand::parse(Some("slow-org"), Some("operator"), None, None, false).unwrap();
    let err = services.credentials.issue(&key, &cmd).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Forbidden {
                code: Code::AccessLevelNotAllowed,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(sts.calls.load(Ordering::SeqCst), 0, "no STS call");
    let events: Vec<AuditEvent> = services
        .records
        .vault()
        .list_all::<AuditEvent>(keyspace::AUDIT_EVENT.prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let last = events.last().unwrap();
    assert_eq!(last.action, "credentials.issue");
    assert_eq!(last.code.as_deref(), Some("access_level_not_allowed"));
    assert_eq!(last.details["access_level"], "operator");
    // The default level works for the key, and the owner (an admin here) gets `operator`.
    let ok = IssueCommand::parse(Some("slow-org"), None, None, None, false).unwrap();
    assert_eq!(
        services
            .credentials
            .issue(&key, &ok)
            .await
            .unwrap()
            .access_level,
        "readonly"
    );
    let op = services.credentials.issue(&admin, &cmd).await.unwrap();
    assert_eq!(op.access_level, "operator");
}

/// Requests waiting on one key's fill while STS is unreachable share the fill's failure:
/// one call, not one round of retries each (the last of N used to wait N calls).
#[tokio::test]
async fn waiters_share_a_fill_that_could_not_reach_sts() {
    let sts = Arc::new(SlowSts::default());
    sts.unreachable.store(true, Ordering::SeqCst);
    let (services, _, admin, _) = rig(sts.clone()).await;
    let cmd = IssueCommand::parse(Some("slow-org"), None, None, None, true).unwrap();
    let start = std::time::Instant::now();
    let requests: Vec<_> = (0..5)
        .map(|_| {
            let (services, admin, cmd) = (services.clone(), admin.clone(), cmd.clone());
            tokio::spawn(async move { services.credentials.issue(&admin, &cmd).await })
        })
        .collect();
    for r in requests {
        let err = r.await.unwrap().unwrap_err();
        assert_eq!(err.code(), Code::StsUnavailable, "{err:?}");
    }
    assert_eq!(sts.calls.load(Ordering::SeqCst), 1, "one call for all five");
    assert!(
        start.elapsed() < Duration::from_millis(600),
        "{:?}",
        start.elapsed()
    );
    // A request that arrives after the failure tries STS again.
    sts.unreachable.store(false, Ordering::SeqCst);
    assert!(services.credentials.issue(&admin, &cmd).await.is_ok());
    assert_eq!(sts.calls.load(Ordering::SeqCst), 2);
}

/// ADR 0022: a request the policy refuses steps only the caller's budget; one it admits
/// steps the caller's and the org's together, once, and a refusing budget charges neither.
#[tokio::test]
async fn budgets_are_stepped_together_once_admitted() {
    use crate::ports::RateLimit;
    let budget = |burst| RateLimit {
        burst,
        period: Duration::from_secs(3600 * u64::from(burst)),
    };
    let mut config = Config::offline();
    config.credentials_per_principal = budget(3);
    config.credentials_per_org = budget(2);
    let sts = Arc::new(SlowSts::default());
    let (services, store, admin, org) = rig_with(sts.clone(), config).await;
    let stranger = Caller::new(
        Principal::Operator {
            user_id: UserId::parse("stranger").unwrap(),
            role: Role::Operator,
        },
        RequestContext::system("test"),
    );
    let cmd = IssueCommand::parse(Some("slow-org"), None, None, None, false).unwrap();
    let org_key = keyspace::rate::credentials_per_org(org.as_str());
    // The stranger is refused three times (forbidden), then limited: its own budget.
    for _ in 0..3 {
        let e = services
            .credentials
            .issue(&stranger, &cmd)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Forbidden, "{e:?}");
    }
    let e = services
        .credentials
        .issue(&stranger, &cmd)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            Error::RateLimited {
                limit: "credentials_per_principal",
                ..
            }
        ),
        "{e:?}"
    );
    // The admin spends both budgets: twice, then the org's refuses and the admin's third
    // step is left unspent.
    for _ in 0..2 {
        services.credentials.issue(&admin, &cmd).await.unwrap();
    }
    let e = services.credentials.issue(&admin, &cmd).await.unwrap_err();
    assert!(
        matches!(&e, Error::RateLimited { limit: "credentials_per_org", decision } if decision.limit == 2),
        "{e:?}"
    );
    let now = services.records.clock().now_ms();
    let admin_key = keyspace::rate::credentials_per_principal(&admin.principal.actor());
    let d = store.rate_step(&admin_key, now, budget(3)).await.unwrap();
    assert_eq!(
        (d.allowed, d.remaining),
        (true, 0),
        "the org's refusal did not charge the admin"
    );
    assert!(
        !store
            .rate_step(&org_key, now, budget(2))
            .await
            .unwrap()
            .allowed
    );
    assert_eq!(
        sts.calls.load(Ordering::SeqCst),
        1,
        "one fill, then cache hits"
    );
}
