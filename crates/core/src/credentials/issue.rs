//! `issue_credentials`: authorise, check the org, then serve from the sealed cache or call
//! `AssumeRole` once per cache key (single-flight within a process, and a short store lock
//! across replicas), and audit every issuance, fresh or cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use super::levels::{AccessLevel, CredentialPolicy, MIN_DURATION_SECS};
use super::session;
use crate::audit::AuditRecord;
use crate::ids::OrgName;
use crate::orgs::{OrgRecord, OrgStatus};
use crate::ports::Txn;
use crate::ports::aws::{AssumeRoleRequest, TemporaryCredentials};
use crate::principal::{Principal, RequestContext};
use crate::{Error, Services};

/// How long a replica may hold the cross-replica lock on one cache key.
const LOCK_TTL: Duration = Duration::from_secs(30);
/// How long a request waits for another replica's issuance before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(20);
const LOCK_POLL: Duration = Duration::from_millis(50);

/// A validated credentials request.
#[derive(Debug, Clone)]
pub struct IssueCommand {
    pub org: OrgName,
    pub access_level: Option<String>,
    pub duration_secs: Option<i64>,
    pub reason: Option<String>,
    pub force_refresh: bool,
}

impl IssueCommand {
    pub fn parse(
        org_name: Option<&str>,
        access_level: Option<&str>,
        duration_secs: Option<i64>,
        reason: Option<&str>,
        force_refresh: bool,
    ) -> Result<Self, Error> {
        let org = org_name.ok_or_else(|| Error::invalid("org_name", "org_name is required"))?;
        Ok(Self {
            org: OrgName::parse(org)?,
            access_level: access_level.map(str::to_owned),
            duration_secs,
            reason: session::parse_reason(reason)?,
            force_refresh,
        })
    }
}

/// Credentials as handed to the caller, with how they were made.
#[derive(Debug, Clone)]
pub struct Issued {
    pub credentials: TemporaryCredentials,
    pub session_name: String,
    pub source_identity: String,
    pub access_level: String,
    pub duration_secs: u32,
    pub region: String,
    /// The partition of the bound role (`aws`, `aws-cn`, `aws-us-gov`).
    pub partition: String,
    pub cached: bool,
}

/// A cached credential, sealed as a whole under `cred/<org>/<digest>`.
#[derive(Clone, Serialize, Deserialize)]
struct CachedCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    /// Unix seconds.
    expiration: i64,
    assumed_role_arn: String,
    session_name: String,
    source_identity: String,
    /// The bound role they were minted for: a binding change makes them unusable.
    role_arn: String,
    issued_at_ms: i64,
}

/// One async mutex per cache key being filled in this process.
#[derive(Debug, Default)]
pub struct Flights {
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Flights {
    fn slot(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(key.to_owned()).or_default().clone()
    }

    /// Drops the slot once nobody else holds or waits on it.
    fn release(&self, key: &str, slot: Arc<tokio::sync::Mutex<()>>) {
        let mut map = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        // The map holds one reference and `slot` another: nobody else is waiting.
        if Arc::strong_count(&slot) <= 2 {
            map.remove(key);
        }
    }
}

fn lock_key(cache_key: &str) -> String {
    let digest = cache_key
        .strip_prefix(super::CACHE_PREFIX)
        .unwrap_or(cache_key);
    format!("{}{digest}", super::LOCK_PREFIX)
}

/// `arn:PARTITION:iam::…` → `PARTITION`.
fn partition_of(role_arn: &str) -> String {
    role_arn.split(':').nth(1).unwrap_or("aws").to_owned()
}

#[derive(Clone)]
struct Plan {
    rec: OrgRecord,
    role_arn: String,
    level: AccessLevel,
    duration_secs: u32,
    cache_key: String,
    source_identity: String,
}

impl Services {
    /// Issues credentials for `cmd.org` to `by`, from the cache when they are fresh enough.
    #[tracing::instrument(skip_all, fields(org = %cmd.org))]
    pub async fn issue_credentials(
        &self,
        ctx: &RequestContext,
        by: &Principal,
        cmd: &IssueCommand,
        policy: &CredentialPolicy,
    ) -> Result<Issued, Error> {
        // Authorisation first: an API key for another org, or another operator's org, is 403
        // and leaves no trace but the denial.
        let rec = self.org_record(by, &cmd.org).await?.value;
        match self.plan(by, cmd, policy, rec) {
            Ok(plan) => match self.issue_planned(ctx, by, cmd, policy, &plan).await {
                Ok(issued) => Ok(issued),
                Err(e) => Err(self.audit_failure(ctx, cmd, e).await),
            },
            Err(e) => Err(self.audit_failure(ctx, cmd, e).await),
        }
    }

    fn plan(
        &self,
        by: &Principal,
        cmd: &IssueCommand,
        policy: &CredentialPolicy,
        rec: OrgRecord,
    ) -> Result<Plan, Error> {
        let level = policy.level(cmd.access_level.as_deref())?;
        // The level's maximum, and the role's own MaxSessionDuration when its stack said.
        let role_max = rec.max_session_duration.unwrap_or(u32::MAX);
        let max = level.max_duration_secs().min(role_max);
        let duration_secs = match cmd.duration_secs {
            None => policy.default_duration_secs.min(max),
            Some(d) if (i64::from(MIN_DURATION_SECS)..=i64::from(max)).contains(&d) => {
                u32::try_from(d).unwrap_or(max)
            }
            Some(_) => {
                let why = if role_max < level.max_duration_secs() {
                    "the role's MaxSessionDuration".to_owned()
                } else {
                    format!("access level {}", level.name())
                };
                return Err(Error::invalid(
                    "duration_seconds",
                    format!(
                        "duration_seconds must be between {MIN_DURATION_SECS} and {max} for {why}"
                    ),
                ));
            }
        };
        let role_arn = match (&rec.status, &rec.role_arn) {
            (OrgStatus::Validated, Some(arn)) => arn.clone(),
            (status, _) => {
                let status = serde_json::to_value(status).unwrap_or_default();
                let onboarding = format!("/api/orgs/{}/onboarding", cmd.org);
                return Err(Error::Precondition {
                    code: "org_not_validated",
                    message: format!(
                        "organisation {} is {}, not validated: onboard its AWS account first (GET {onboarding} or POST /api/integrate)",
                        cmd.org,
                        status.as_str().unwrap_or("not validated")
                    ),
                    details: serde_json::json!({"status": status, "onboarding": onboarding}),
                });
            }
        };
        let source_identity = session::source_identity(by);
        let mut h = Sha256::new();
        for part in [
            by.actor().as_str(),
            level.name(),
            level.policy_hash(),
            &duration_secs.to_string(),
            &role_arn,
        ] {
            h.update(part);
            h.update([0]);
        }
        let cache_key = format!(
            "{}{}",
            super::cache_prefix(&cmd.org),
            hex::encode(&h.finalize()[..16])
        );
        Ok(Plan {
            rec,
            role_arn,
            level: level.clone(),
            duration_secs,
            cache_key,
            source_identity,
        })
    }

    async fn issue_planned(
        &self,
        ctx: &RequestContext,
        by: &Principal,
        cmd: &IssueCommand,
        policy: &CredentialPolicy,
        plan: &Plan,
    ) -> Result<Issued, Error> {
        let window = policy.window_for(plan.duration_secs);
        if !cmd.force_refresh
            && let Some(hit) = self.cached(plan, window, None).await?
        {
            return self.serve(ctx, cmd, policy, plan, hit, true, None).await;
        }
        let started_ms = self.clock.now_ms();
        // The fill runs in its own task: if this request's client goes away, the STS call,
        // the cache write and the lock's release still happen (other requests may be
        // waiting on them), instead of leaving the key locked until the lock's TTL.
        let (me, ctx, by, cmd, policy, plan) = (
            self.clone(),
            ctx.clone(),
            by.clone(),
            cmd.clone(),
            policy.clone(),
            plan.clone(),
        );
        tokio::spawn(async move {
            let slot = me.flights.slot(&plan.cache_key);
            let result = {
                let _guard = slot.lock().await;
                me.fill(&ctx, &by, &cmd, &policy, &plan, window, started_ms)
                    .await
            };
            me.flights.release(&plan.cache_key, slot);
            result
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "credential issuance task failed");
            Error::Contention
        })?
    }

    /// Inside this process's flight for the key: re-check the cache (another task may just
    /// have filled it), then take the cross-replica lock and call STS.
    #[allow(clippy::too_many_arguments)]
    async fn fill(
        &self,
        ctx: &RequestContext,
        by: &Principal,
        cmd: &IssueCommand,
        policy: &CredentialPolicy,
        plan: &Plan,
        window: Duration,
        started_ms: i64,
    ) -> Result<Issued, Error> {
        // A forced refresh still accepts credentials minted after it arrived.
        let fresh_since = cmd.force_refresh.then_some(started_ms);
        if let Some(hit) = self.cached(plan, window, fresh_since).await? {
            return self.serve(ctx, cmd, policy, plan, hit, true, None).await;
        }
        let lock = lock_key(&plan.cache_key);
        let waited_until = tokio::time::Instant::now() + LOCK_WAIT;
        loop {
            let claim = Txn::new()
                .absent(lock.clone())
                .put_ttl(lock.clone(), Vec::new(), LOCK_TTL);
            if self.vault.store().commit(claim).await? {
                break;
            }
            // Another replica is calling STS for this key: wait for its result.
            if tokio::time::Instant::now() >= waited_until {
                return Err(Error::Contention);
            }
            tokio::time::sleep(LOCK_POLL).await;
            if let Some(hit) = self.cached(plan, window, Some(started_ms)).await? {
                return self.serve(ctx, cmd, policy, plan, hit, true, None).await;
            }
        }
        let result = self.mint(ctx, by, cmd, policy, plan, &lock).await;
        if result.is_err() {
            // Best effort: the lock's TTL frees it anyway.
            let _ = self.vault.store().commit(Txn::new().delete(lock)).await;
        }
        result
    }

    async fn mint(
        &self,
        ctx: &RequestContext,
        by: &Principal,
        cmd: &IssueCommand,
        policy: &CredentialPolicy,
        plan: &Plan,
        lock: &str,
    ) -> Result<Issued, Error> {
        let session_name = session::session_name(&cmd.org, by, &rolegate_crypto::short_id());
        let req = AssumeRoleRequest {
            role_arn: plan.role_arn.clone(),
            external_id: Some(plan.rec.external_id.clone()),
            session_name: session_name.clone(),
            source_identity: Some(plan.source_identity.clone()),
            tags: session::session_tags(&cmd.org, by, cmd.reason.as_deref()),
            policy: plan.level.policy().map(str::to_owned),
            policy_arns: plan.level.policy_arns().to_vec(),
            duration_seconds: i32::try_from(plan.duration_secs).unwrap_or(i32::MAX),
        };
        let creds = self.sts.assume_role(&req).await.map_err(super::sts_error)?;
        let entry = CachedCredentials {
            access_key_id: creds.access_key_id.clone(),
            secret_access_key: creds.secret_access_key.expose_secret().to_owned(),
            session_token: creds.session_token.expose_secret().to_owned(),
            expiration: creds.expiration.unix_timestamp(),
            assumed_role_arn: creds.assumed_role_arn.clone(),
            session_name,
            source_identity: plan.source_identity.clone(),
            role_arn: plan.role_arn.clone(),
            issued_at_ms: self.clock.now_ms(),
        };
        let ttl_secs = entry.expiration - self.clock.now().unix_timestamp();
        let txn = Txn::new().delete(lock.to_owned());
        let txn = if ttl_secs > 0 {
            self.vault.put_ttl(
                txn,
                &plan.cache_key,
                &entry,
                Duration::from_secs(ttl_secs.unsigned_abs()),
            )?
        } else {
            txn
        };
        self.serve(ctx, cmd, policy, plan, entry, false, Some(txn))
            .await
    }

    /// The cached entry for the plan, if it is still fresh enough (and, with
    /// `minted_since`, minted at or after that instant).
    async fn cached(
        &self,
        plan: &Plan,
        window: Duration,
        minted_since: Option<i64>,
    ) -> Result<Option<CachedCredentials>, Error> {
        let Some(hit) = self.vault.get::<CachedCredentials>(&plan.cache_key).await? else {
            return Ok(None);
        };
        let c = hit.value;
        let now = self.clock.now().unix_timestamp();
        let window = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
        let fresh = c.expiration - now > window
            && c.role_arn == plan.role_arn
            && minted_since.is_none_or(|t| c.issued_at_ms >= t);
        Ok(fresh.then_some(c))
    }

    /// Audits the issuance (with `txn`, the cache write, when fresh) and hands it out. If
    /// the event cannot be written the credentials are not returned.
    #[allow(clippy::too_many_arguments)]
    async fn serve(
        &self,
        ctx: &RequestContext,
        cmd: &IssueCommand,
        policy: &CredentialPolicy,
        plan: &Plan,
        c: CachedCredentials,
        cached: bool,
        txn: Option<Txn>,
    ) -> Result<Issued, Error> {
        let expiration =
            OffsetDateTime::from_unix_timestamp(c.expiration).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let audit = AuditRecord::new("credentials.issue")
            .org(cmd.org.to_string())
            .target(plan.role_arn.clone())
            .details(serde_json::json!({
                "access_level": plan.level.name(),
                "session_name": c.session_name,
                "source_identity": c.source_identity,
                "expiration": crate::clock::rfc3339(expiration),
                "duration_seconds": plan.duration_secs,
                "cached": cached,
                "force_refresh": cmd.force_refresh,
                "reason": cmd.reason,
            }));
        let committed = self
            .audit
            .commit_with(ctx, txn.unwrap_or_default(), audit)
            .await
            .map_err(|e| match e {
                e @ Error::AuditUnavailable(_) => e,
                other => Error::AuditUnavailable(Box::new(other)),
            })?;
        if !committed {
            return Err(Error::Contention);
        }
        Ok(Issued {
            credentials: TemporaryCredentials {
                access_key_id: c.access_key_id,
                secret_access_key: SecretString::from(c.secret_access_key),
                session_token: SecretString::from(c.session_token),
                expiration,
                assumed_role_arn: c.assumed_role_arn,
            },
            session_name: c.session_name,
            source_identity: c.source_identity,
            access_level: plan.level.name().to_owned(),
            duration_secs: plan.duration_secs,
            region: policy.region.clone(),
            partition: partition_of(&plan.role_arn),
            cached,
        })
    }

    /// Records a failed issuance with its error code, and returns the error. The action
    /// failed either way; a failure to log it is only logged.
    async fn audit_failure(&self, ctx: &RequestContext, cmd: &IssueCommand, e: Error) -> Error {
        let code = e.code();
        if !matches!(e, Error::AuditUnavailable(_) | Error::Store(_)) {
            let audit = AuditRecord::new("credentials.issue")
                .org(cmd.org.to_string())
                .target(cmd.org.to_string())
                .failure(code)
                .details(serde_json::json!({
                    "access_level": cmd.access_level,
                    "force_refresh": cmd.force_refresh,
                }));
            if let Err(err) = self.audit.append(ctx, audit).await {
                tracing::error!(error = %err, "could not audit a failed credential issuance");
            }
        }
        e
    }
}

/// Cancellation: a request whose client goes away mid-fill.
#[cfg(test)]
#[path = "issue_tests.rs"]
mod tests;
