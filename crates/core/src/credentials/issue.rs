//! `issue_credentials`: authorise, check the org, then serve from the sealed cache or call
//! `AssumeRole` once per cache key (single-flight within a process, and a short store lock
//! across replicas), and audit every issuance, fresh or cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use super::{Credentials, session};
use crate::audit::AuditRecord;
use crate::error::{Code, Error};
use crate::ids::OrgName;
use crate::keyspace::{self, Key};
use crate::levels::{AccessLevel, MIN_DURATION_SECS};
use crate::model::{CachedCredentials, OrgRecord, OrgStatus, Secret};
use crate::policy::Action;
use crate::ports::Txn;
use crate::ports::aws::{AssumeRoleRequest, StsError, TemporaryCredentials};
use crate::principal::{Caller, Principal};
use crate::vault::Versioned;

/// How long a replica may hold the cross-replica lock on one cache key.
const LOCK_TTL: Duration = Duration::from_secs(30);
/// How long a request waits for another replica's issuance before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(20);
const LOCK_POLL: Duration = Duration::from_millis(50);
/// How many times an issuance decides again after the org or its key changed under it.
const ISSUE_ATTEMPTS: usize = 3;

/// A validated credentials request.
#[derive(Debug, Clone)]
pub struct IssueCommand {
    pub org: OrgName,
    pub access_level: Option<String>,
    pub duration_secs: Option<i64>,
    pub reason: Option<String>,
    pub force_refresh: bool,
    /// Set for a workload's `POST /sessions` (issue 14); `None` for every other caller.
    pub workload: Option<WorkloadIssue>,
}

/// What a verified workload certificate adds to an issuance.
#[derive(Debug, Clone, Default)]
pub struct WorkloadIssue {
    /// Session tags mapped from the certificate (after rolegate's own).
    pub tags: Vec<(String, String)>,
    /// The client's `roleSessionName`, when its profile accepts one (already checked).
    pub session_name: Option<String>,
    /// The profile's maximum, already bounded by the certificate's `notAfter`.
    pub max_duration_secs: u32,
    /// The role the client asked for: it must be the org's bound role.
    pub role_arn: Option<String>,
    /// Keys that must still exist when the issuance commits (the profile, the anchor).
    pub present: Vec<String>,
    /// Merged into the audit event's details (serial, subject, issuer, fingerprint, …).
    pub audit: serde_json::Value,
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
            workload: None,
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
    /// The role assumed (the org's bound role).
    pub role_arn: String,
    /// The grant the credentials were issued under (a level that needs approval), and its
    /// end (unix seconds): `expiration` is never later.
    pub grant: Option<(String, i64)>,
}

/// One async mutex per cache key being filled in this process. It holds when (clock ms) the
/// last fill through it ended without reaching STS, so that the requests that waited for
/// that fill share its answer instead of each retrying in turn.
#[derive(Debug, Default)]
pub struct Flights {
    slots: Mutex<HashMap<String, Slot>>,
}

type Slot = Arc<tokio::sync::Mutex<Option<i64>>>;

impl Flights {
    fn slot(&self, key: &str) -> Slot {
        let mut map = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(key.to_owned()).or_default().clone()
    }

    /// Drops the slot once nobody else holds or waits on it.
    fn release(&self, key: &str, slot: Slot) {
        let mut map = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        // The map holds one reference and `slot` another: nobody else is waiting.
        if Arc::strong_count(&slot) <= 2 {
            map.remove(key);
        }
    }
}

/// `arn:PARTITION:iam::…` → `PARTITION`.
fn partition_of(role_arn: &str) -> String {
    role_arn.split(':').nth(1).unwrap_or("aws").to_owned()
}

#[derive(Clone)]
struct Plan {
    rec: OrgRecord,
    /// The org record's revision when the caller was authorized: the issuance commits only
    /// if it is still the same, so an offboarding, a binding reset or a key rotation that
    /// lands while STS is being called wins (the credentials are never handed out).
    org_rev: Vec<u8>,
    role_arn: String,
    /// Shared with the configuration: an issuance copies no policy text.
    level: Arc<AccessLevel>,
    duration_secs: u32,
    cache_key: Key<CachedCredentials>,
    /// The cross-replica fill lock of `cache_key`.
    lock_key: String,
    source_identity: String,
    /// The action issuing (decides the audit event's name).
    action: Action,
    /// With `bind_source_ip`, the inline session policy: the level's plus the deny outside
    /// the allowed blocks. Otherwise `None`, and the level's own policy is used (built
    /// only when STS is called: a cache hit copies no policy text).
    bound_policy: Option<String>,
    /// The grant that admitted the caller: its id, key, revision and end (unix seconds).
    /// The issuance commits only if it is unchanged, so a revocation wins.
    grant: Option<GrantUse>,
}

#[derive(Clone)]
struct GrantUse {
    id: String,
    key: String,
    rev: Vec<u8>,
    end: i64,
}

impl Credentials {
    /// Issues credentials for `cmd.org` to `caller`, from the cache when they are fresh
    /// enough. The level is decided with the org, before anything else happens: a level the
    /// caller is not granted is 403 `access_level_not_allowed`, audited, and no STS call.
    #[tracing::instrument(skip_all, fields(org = %cmd.org))]
    pub async fn issue(&self, caller: &Caller, cmd: &IssueCommand) -> Result<Issued, Error> {
        self.issue_as(caller, cmd, Action::IssueCredentials).await
    }

    /// Issues credentials to a verified workload (`caller` is a `Principal::Workload`).
    pub async fn issue_workload(
        &self,
        caller: &Caller,
        cmd: &IssueCommand,
    ) -> Result<Issued, Error> {
        self.issue_as(caller, cmd, Action::CreateWorkloadSession)
            .await
    }

    pub(super) async fn issue_as(
        &self,
        caller: &Caller,
        cmd: &IssueCommand,
        action: Action,
    ) -> Result<Issued, Error> {
        let level = match self.levels.shared_level(cmd.access_level.as_deref()) {
            Ok(level) => level,
            Err(e) => return Err(self.refused(caller, action, e).await),
        };
        // The budgets are spent once per request, whatever the attempts below.
        let mut charged = false;
        for _ in 0..ISSUE_ATTEMPTS {
            // Authorisation first: another org's key, another operator's org, or an
            // ungranted level is 403 and leaves only the refusal in the log (and a step of
            // the caller's own budget).
            let (cur, grant) = match self
                .orgs
                .load_granted(caller, action, &cmd.org, Some(&**level))
                .await
            {
                Ok(loaded) => loaded,
                Err(e) if charged => return Err(e),
                Err(e) => return Err(self.refused(caller, action, e).await),
            };
            let grant = grant.and_then(|g| {
                Some(GrantUse {
                    key: keyspace::access_request(&g.value.id).to_string(),
                    end: g.value.grant_end_unix?,
                    id: g.value.id,
                    rev: g.rev,
                })
            });
            // Only a caller the policy admitted for this org spends the org's budget, so
            // nobody can exhaust another org's issuance; the caller's is spent with it.
            if !charged {
                self.charge(caller, action, &cmd.org).await?;
                charged = true;
            }
            let result = match self.plan(caller, cmd, level, cur, action, grant) {
                Ok(plan) => self.issue_planned(caller, cmd, &plan).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(Some(issued)) => return Ok(issued),
                // The org or the key changed under the issuance: decide again on what it
                // is now (an offboarded org or a rotated key is refused).
                Ok(None) => {}
                Err(e) => return Err(self.audit_failure(caller, cmd, e).await),
            }
        }
        Err(self.audit_failure(caller, cmd, Error::Contention).await)
    }

    fn plan(
        &self,
        caller: &Caller,
        cmd: &IssueCommand,
        level: &Arc<AccessLevel>,
        org: Versioned<OrgRecord>,
        action: Action,
        grant: Option<GrantUse>,
    ) -> Result<Plan, Error> {
        let (rec, org_rev) = (org.value, org.rev);
        let by = &caller.principal;
        // The level's maximum, and the role's own MaxSessionDuration when its stack said
        // (and, for a workload, its profile's and its certificate's).
        let role_max = rec.max_session_duration.unwrap_or(u32::MAX);
        let workload_max = cmd
            .workload
            .as_ref()
            .map_or(u32::MAX, |w| w.max_duration_secs);
        let max = level.max_duration_secs().min(role_max).min(workload_max);
        let duration_secs = match cmd.duration_secs {
            None => self.levels.default_duration_secs.min(max),
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
        // A grant bounds every credential issued under it: the policy already refused one
        // with less than 900 s left.
        let duration_secs = match &grant {
            Some(g) => {
                let left = g.end - self.records.clock().now().unix_timestamp();
                u32::try_from(left.max(0)).map_or(duration_secs, |l| duration_secs.min(l))
            }
            None => duration_secs,
        };
        let role_arn = match (&rec.status, &rec.role_arn) {
            (OrgStatus::Validated, Some(arn)) => arn.clone(),
            (status, _) => {
                let status = serde_json::to_value(status).unwrap_or_default();
                let onboarding = format!("/api/orgs/{}/onboarding", cmd.org);
                return Err(Error::Precondition {
                    code: Code::OrgNotValidated,
                    message: format!(
                        "organisation {} is {}, not validated: onboard its AWS account first (GET {onboarding} or POST /api/integrate)",
                        cmd.org,
                        status.as_str().unwrap_or("not validated")
                    ),
                    details: serde_json::json!({"status": status, "onboarding": onboarding}),
                });
            }
        };
        if let Some(asked) = cmd.workload.as_ref().and_then(|w| w.role_arn.as_deref())
            && asked != role_arn
        {
            return Err(Error::Forbidden {
                code: Code::WorkloadAuthFailed,
                message: format!(
                    "role_not_bound: roleArn {asked:?} is not organisation {}'s bound role",
                    cmd.org
                ),
            });
        }
        let source_identity = session::source_identity(by);
        let bound_policy = if rec.bind_source_ip {
            Some(super::bind::bound_policy(
                level,
                &self.bound_sources(caller, &rec)?,
            )?)
        } else {
            None
        };
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
        if rec.bind_source_ip {
            // Credentials bound to some addresses are never served for others.
            h.update(bound_policy.as_deref().unwrap_or_default());
            h.update([0]);
        }
        if let Some(g) = &grant {
            // Credentials minted under one grant are never served under another.
            h.update(&g.id);
            h.update([0]);
        }
        if let Some(w) = &cmd.workload {
            // A session name the client chose or different tags make different credentials.
            h.update(w.session_name.as_deref().unwrap_or_default());
            h.update([0]);
            for (k, v) in &w.tags {
                h.update(k);
                h.update([1]);
                h.update(v);
                h.update([0]);
            }
        }
        let digest = hex::encode(&h.finalize()[..16]);
        Ok(Plan {
            rec,
            org_rev,
            role_arn,
            level: Arc::clone(level),
            duration_secs,
            cache_key: keyspace::credentials(&cmd.org, &digest),
            lock_key: keyspace::credential_lock(&digest),
            source_identity,
            action,
            bound_policy,
            grant,
        })
    }

    /// Where `bind_source_ip` lets the credentials be used from: the org's allowlist, else
    /// the API key's, else the caller's own address.
    fn bound_sources(&self, caller: &Caller, rec: &OrgRecord) -> Result<Vec<String>, Error> {
        let key_list = match caller.principal {
            Principal::OrgKey { .. } => rec.api_key_allowed_cidrs.as_slice(),
            _ => &[],
        };
        let list = if rec.allowed_cidrs.is_empty() {
            key_list
        } else {
            rec.allowed_cidrs.as_slice()
        };
        if !list.is_empty() {
            return Ok(list.iter().map(ToString::to_string).collect());
        }
        caller
            .ctx
            .source_ip
            .as_deref()
            .and_then(|ip| crate::network::Cidr::parse(ip).ok())
            .map(|c| vec![c.to_string()])
            .ok_or_else(|| Error::Forbidden {
                code: Code::SourceIpNotAllowed,
                message: "bind_source_ip: the request's source address is unknown, and the organisation has no allowlist to bind to".to_owned(),
            })
    }

    async fn issue_planned(
        &self,
        caller: &Caller,
        cmd: &IssueCommand,
        plan: &Plan,
    ) -> Result<Option<Issued>, Error> {
        let window = self.levels.window_for(plan.duration_secs);
        if !cmd.force_refresh
            && let Some(hit) = self.cached(plan, window, None).await?
        {
            return self.serve(caller, cmd, plan, hit, true, None).await;
        }
        let started_ms = self.records.clock().now_ms();
        // The fill runs in its own task: if this request's client goes away, the STS call,
        // the cache write and the lock's release still happen (other requests may be
        // waiting on them), instead of leaving the key locked until the lock's TTL.
        let (me, caller, cmd, plan) = (self.clone(), caller.clone(), cmd.clone(), plan.clone());
        tokio::spawn(async move {
            let slot = me.flights.slot(plan.cache_key.as_str());
            let result = {
                let mut unreachable_at = slot.lock().await;
                match *unreachable_at {
                    // A fill that ended after this request arrived could not reach STS: that
                    // is this request's answer too. Without this, N requests waiting on one
                    // key while STS is down took N rounds of the SDK's retries, the last
                    // one N operation timeouts (found by the fault suite, issue 17).
                    Some(at) if at >= started_ms => Err(Error::from_sts(StsError::Unavailable(
                        "the fill this request waited for could not reach STS".to_owned(),
                    ))),
                    _ => {
                        let result = me.fill(&caller, &cmd, &plan, window, started_ms).await;
                        if matches!(&result, Err(e) if e.code() == Code::StsUnavailable) {
                            *unreachable_at = Some(me.records.clock().now_ms());
                        }
                        result
                    }
                }
            };
            me.flights.release(plan.cache_key.as_str(), slot);
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
    async fn fill(
        &self,
        caller: &Caller,
        cmd: &IssueCommand,
        plan: &Plan,
        window: Duration,
        started_ms: i64,
    ) -> Result<Option<Issued>, Error> {
        // A forced refresh still accepts credentials minted after it arrived.
        let fresh_since = cmd.force_refresh.then_some(started_ms);
        if let Some(hit) = self.cached(plan, window, fresh_since).await? {
            return self.serve(caller, cmd, plan, hit, true, None).await;
        }
        let lock = plan.lock_key.clone();
        let store = self.records.vault().store();
        if store.single_process() {
            // One process serves from this store: this flight is the only one for the key,
            // so no other filler exists to wait for (ADR 0016). The entry's commit below
            // deletes the (absent) lock key, which costs nothing.
            return self.mint(caller, cmd, plan).await;
        }
        let waited_until = tokio::time::Instant::now() + LOCK_WAIT;
        loop {
            let claim = Txn::new()
                .absent(lock.clone())
                .put_ttl(lock.clone(), Vec::new(), LOCK_TTL);
            if store.commit(claim).await? {
                // Another replica may have filled the cache and released the lock between
                // the check above and this claim: look once more before calling STS.
                if let Some(hit) = self.cached(plan, window, fresh_since).await? {
                    let _ = store.commit(Txn::new().delete(lock)).await;
                    return self.serve(caller, cmd, plan, hit, true, None).await;
                }
                break;
            }
            // Another replica is calling STS for this key: wait for its result. What it mints
            // may predate this request (it started first): that is fresh enough unless this
            // request forces a refresh.
            if tokio::time::Instant::now() >= waited_until {
                return Err(Error::Contention);
            }
            self.records.clock().sleep(LOCK_POLL).await;
            if let Some(hit) = self.cached(plan, window, fresh_since).await? {
                return self.serve(caller, cmd, plan, hit, true, None).await;
            }
        }
        let result = self.mint(caller, cmd, plan).await;
        if !matches!(result, Ok(Some(_))) {
            // Best effort (the lock's TTL frees it anyway), so that waiters retry at once.
            let _ = store.commit(Txn::new().delete(lock)).await;
        }
        result
    }

    async fn mint(
        &self,
        caller: &Caller,
        cmd: &IssueCommand,
        plan: &Plan,
    ) -> Result<Option<Issued>, Error> {
        let by = &caller.principal;
        let session_name = match cmd.workload.as_ref().and_then(|w| w.session_name.clone()) {
            Some(chosen) => chosen,
            None => session::session_name(&cmd.org, by, &rolegate_crypto::short_id()),
        };
        let mut tags = session::session_tags(&cmd.org, by, cmd.reason.as_deref());
        if let Some(g) = &plan.grant {
            // What a revocation's deny statement matches (`revoke_sessions`).
            tags.push((
                crate::access::revocation_policy::TAG_GRANT.to_owned(),
                g.id.clone(),
            ));
        }
        if let Some(w) = &cmd.workload {
            tags.extend(w.tags.iter().cloned());
        }
        let req = AssumeRoleRequest {
            role_arn: plan.role_arn.clone(),
            external_id: Some(plan.rec.external_id.clone()),
            session_name: session_name.clone(),
            source_identity: Some(plan.source_identity.clone()),
            tags,
            policy: plan
                .bound_policy
                .clone()
                .or_else(|| plan.level.policy().map(str::to_owned)),
            policy_arns: plan.level.policy_arns().to_vec(),
            duration_seconds: i32::try_from(plan.duration_secs).unwrap_or(i32::MAX),
        };
        let creds = self.sts.assume_role(&req).await.map_err(Error::from_sts)?;
        let clock = self.records.clock();
        let entry = CachedCredentials {
            access_key_id: creds.access_key_id.clone(),
            secret_access_key: Secret::new(creds.secret_access_key.expose_secret()),
            session_token: Secret::new(creds.session_token.expose_secret()),
            expiration: creds.expiration.unix_timestamp(),
            assumed_role_arn: creds.assumed_role_arn.clone(),
            session_name,
            source_identity: plan.source_identity.clone(),
            role_arn: plan.role_arn.clone(),
            issued_at_ms: clock.now_ms(),
        };
        let ttl_secs = entry.expiration - clock.now().unix_timestamp();
        let txn = Txn::new().delete(plan.lock_key.clone());
        let txn = if ttl_secs > 0 {
            self.records.vault().put_ttl(
                txn,
                plan.cache_key.as_str(),
                &entry,
                Duration::from_secs(ttl_secs.unsigned_abs()),
            )?
        } else {
            txn
        };
        self.serve(caller, cmd, plan, entry, false, Some(txn)).await
    }

    /// The cached entry for the plan, if it is still fresh enough (and, with
    /// `minted_since`, minted at or after that instant).
    async fn cached(
        &self,
        plan: &Plan,
        window: Duration,
        minted_since: Option<i64>,
    ) -> Result<Option<CachedCredentials>, Error> {
        let Some(hit) = self.records.get(&plan.cache_key).await? else {
            return Ok(None);
        };
        let c = hit.value;
        let now = self.records.clock().now().unix_timestamp();
        let window = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
        let fresh = c.expiration - now > window
            && c.role_arn == plan.role_arn
            && minted_since.is_none_or(|t| c.issued_at_ms >= t);
        Ok(fresh.then_some(c))
    }

    /// Audits the issuance (with `txn`, the cache write, when fresh) and hands it out. If
    /// the event cannot be written the credentials are not returned. The commit is
    /// conditioned on the org record being the one the caller was authorized against (and,
    /// for an API key, on the key still existing): `None` when either changed meanwhile, and
    /// then nothing was written and nothing is handed out.
    async fn serve(
        &self,
        caller: &Caller,
        cmd: &IssueCommand,
        plan: &Plan,
        c: CachedCredentials,
        cached: bool,
        txn: Option<Txn>,
    ) -> Result<Option<Issued>, Error> {
        let expiration =
            OffsetDateTime::from_unix_timestamp(c.expiration).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let mut details = serde_json::json!({
                "access_level": plan.level.name(),
                "session_name": c.session_name,
                "source_identity": c.source_identity,
                "expiration": crate::clock::rfc3339(expiration),
                "duration_seconds": plan.duration_secs,
                "cached": cached,
                "force_refresh": cmd.force_refresh,
                "reason": cmd.reason,
        });
        let mut txn = txn
            .unwrap_or_default()
            .equals(keyspace::org(&cmd.org).as_str(), plan.org_rev.clone());
        if let Some(g) = &plan.grant {
            txn = txn.equals(g.key.clone(), g.rev.clone());
            details["grant_id"] = serde_json::Value::from(g.id.clone());
        }
        if let Some(w) = &cmd.workload {
            if let (Some(d), Some(extra)) = (details.as_object_mut(), w.audit.as_object()) {
                d.extend(extra.clone());
            }
            for key in &w.present {
                txn = txn.present(key.clone());
            }
        }
        // The issuance itself is `credentials.issue` (a console sign-in records its own event
        // after it); a workload's is `workload.session`.
        let name = match plan.action {
            Action::CreateWorkloadSession => plan.action.name(),
            _ => Action::IssueCredentials.name(),
        };
        let audit = AuditRecord::new(name)
            .org(cmd.org.to_string())
            .target(plan.role_arn.clone())
            .details(details);
        if let Principal::OrgKey { .. } = caller.principal {
            txn = txn.present(keyspace::api_key(&plan.rec.api_key_digest).as_str());
        }
        let committed = self
            .records
            .commit(caller, txn, audit)
            .await
            .map_err(|e| match e {
                e @ Error::AuditUnavailable(_) => e,
                other => Error::AuditUnavailable(Box::new(other)),
            })?;
        if !committed {
            return Ok(None);
        }
        Ok(Some(Issued {
            credentials: TemporaryCredentials {
                access_key_id: c.access_key_id,
                secret_access_key: SecretString::from(c.secret_access_key.expose().to_owned()),
                session_token: SecretString::from(c.session_token.expose().to_owned()),
                expiration,
                assumed_role_arn: c.assumed_role_arn,
            },
            session_name: c.session_name,
            source_identity: c.source_identity,
            access_level: plan.level.name().to_owned(),
            duration_secs: plan.duration_secs,
            region: self.levels.region.clone(),
            partition: partition_of(&plan.role_arn),
            cached,
            role_arn: plan.role_arn.clone(),
            grant: plan.grant.as_ref().map(|g| (g.id.clone(), g.end)),
        }))
    }

    /// Records a failed issuance with its error code, and returns the error. The action
    /// failed either way; a failure to log it is only logged. Refusals by the policy were
    /// recorded when they were made.
    async fn audit_failure(&self, caller: &Caller, cmd: &IssueCommand, e: Error) -> Error {
        // A workload refused here (its roleArn is not the bound role) was not refused by the
        // policy, so it is recorded here.
        let policy_refusal = matches!(&e, Error::Forbidden { code, .. }
            if !matches!(code, Code::WorkloadAuthFailed | Code::SourceIpNotAllowed));
        if !policy_refusal && !matches!(e, Error::AuditUnavailable(_) | Error::Store(_)) {
            let (action, mut extra) = match &cmd.workload {
                Some(w) => (Action::CreateWorkloadSession, w.audit.clone()),
                None => (Action::IssueCredentials, serde_json::Value::Null),
            };
            if let Some(x) = extra.as_object_mut() {
                x.insert("reason".into(), e.to_string().into());
            }
            let mut details = serde_json::json!({
                "access_level": cmd.access_level,
                "force_refresh": cmd.force_refresh,
            });
            if let (Some(d), Some(extra)) = (details.as_object_mut(), extra.as_object()) {
                d.extend(extra.clone());
            }
            let audit = AuditRecord::new(action.name())
                .org(cmd.org.to_string())
                .target(cmd.org.to_string())
                .failure(e.code().as_str())
                .details(details);
            if let Err(err) = self.records.record(caller, audit).await {
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
