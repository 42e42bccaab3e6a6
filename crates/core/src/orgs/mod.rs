//! Organisations (the provider's customers): registration, lookup, API-key rotation,
//! offboarding, and API-key authentication.

use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretString};

use crate::audit::AuditRecord;
use crate::error::{Code, Error};
use crate::ids::{OrgName, UserId};
use crate::keyspace;
use crate::levels::{AccessLevel, CredentialPolicy};
use crate::model::{AccessRequestRecord, ApiKeyEntry, Secret};
use crate::policy::{self, Action, Facts, NetworkFact, Owner};
use crate::ports::Txn;
use crate::principal::{Caller, Principal};
use crate::records::{Change, Records};
use crate::revocations::RevocationQueue;
use crate::vault::Versioned;

/// Registering many organisations in one transaction (imports, the benchmark seeder).
mod bulk;
/// The grant a caller holds for a level on an org.
pub mod grant;
/// Source allowlists and `bind_source_ip`.
mod network;
/// Registration, single and bulk, against an in-memory store.
#[cfg(test)]
mod tests;

pub use crate::ids::AccountId;
pub use crate::model::{Org, OrgRecord, OrgStatus};
pub use network::NetworkCommand;

pub const API_KEY_PREFIX: &str = "rgk_";
pub const CALLBACK_SECRET_PREFIX: &str = "rgc_";
/// An unused callback secret stops working after this long.
pub const CALLBACK_SECRET_TTL: time::Duration = time::Duration::days(7);

/// What registration returns, once: the API key is never shown again.
#[derive(Debug)]
pub struct RegisteredOrg {
    pub org: Org,
    pub api_key: SecretString,
}

/// A validated registration.
#[derive(Debug, Clone)]
pub struct RegisterOrgCommand {
    pub name: OrgName,
    pub expected_account_id: Option<AccountId>,
}

impl RegisterOrgCommand {
    pub fn parse(org_name: &str, account_id: Option<&str>) -> Result<Self, Error> {
        Ok(Self {
            name: OrgName::parse(org_name)?,
            expected_account_id: account_id.map(AccountId::parse).transpose()?,
        })
    }
}

/// One page of organisations.
#[derive(Debug, Clone)]
pub struct OrgPage {
    pub orgs: Vec<Org>,
    pub next: Option<String>,
}

fn org_exists(name: &OrgName) -> Error {
    Error::conflict(
        Code::OrgExists,
        format!("organisation {name} already exists"),
    )
}

/// The organisations area.
#[derive(Debug, Clone)]
pub struct Orgs {
    records: Records,
    /// Access levels, to tell each caller which it may use.
    levels: Arc<CredentialPolicy>,
    /// `revoke_sessions`: what an API key's rotation queues for its sessions.
    revocations: RevocationQueue,
}

impl Orgs {
    #[must_use]
    pub fn new(records: Records, levels: Arc<CredentialPolicy>) -> Self {
        Self {
            records,
            levels,
            revocations: RevocationQueue::default(),
        }
    }

    /// The same area, queuing a rotated API key's `revoke_sessions` deny.
    #[must_use]
    pub fn with_revocations(mut self, revocations: RevocationQueue) -> Self {
        self.revocations = revocations;
        self
    }

    /// Resolves an org API key. `None` for unknown, rotated or offboarded keys.
    #[tracing::instrument(skip_all)]
    pub async fn authenticate_api_key(&self, key: &str) -> Result<Option<Principal>, Error> {
        if !key.starts_with(API_KEY_PREFIX) || key.len() > 128 {
            return Ok(None);
        }
        let digest = self.records.pepper().digest("api-key", key);
        let Some(entry) = self
            .records
            .get_cached(&keyspace::api_key(&digest.to_hex()))
            .await?
        else {
            return Ok(None);
        };
        let stored = hex::decode(&entry.value.digest).unwrap_or_default();
        if !rolegate_crypto::ct_eq(&stored, &digest.0) {
            return Ok(None);
        }
        Ok(Some(Principal::OrgKey {
            org: entry.value.org,
            key_id: entry.value.key_id,
        }))
    }

    /// Registers an organisation owned by the calling operator.
    pub async fn register(
        &self,
        caller: &Caller,
        cmd: RegisterOrgCommand,
    ) -> Result<RegisteredOrg, Error> {
        let owner = self.registering_owner(caller).await?;
        let name = cmd.name.clone();
        let (txn, audit, mut registered) = self.prepare_registration(&owner, cmd)?;
        if !self.records.commit(caller, txn, audit).await? {
            return Err(org_exists(&name));
        }
        registered.org.access_levels = self.levels_for(caller, &name, &owner);
        Ok(registered)
    }

    /// The operator who will own what `caller` registers, once the policy allows it.
    async fn registering_owner(&self, caller: &Caller) -> Result<UserId, Error> {
        self.records
            .authorize(caller, Action::RegisterOrg, &Facts::default())
            .await?;
        match &caller.principal {
            Principal::Operator { user_id, .. } => Ok(user_id.clone()),
            // The policy admits only operators; anything else is refused here too.
            Principal::OrgKey { .. }
            | Principal::Stack { .. }
            | Principal::System { .. }
            | Principal::Workload { .. } => Err(Error::forbidden(
                "only operators can register organisations",
            )),
        }
    }

    /// The writes (conditional on the name, key and ExternalId being free), the audit record
    /// and the answer of one registration, not yet committed.
    fn prepare_registration(
        &self,
        owner: &UserId,
        cmd: RegisterOrgCommand,
    ) -> Result<(Txn, AuditRecord, RegisteredOrg), Error> {
        let pepper = self.records.pepper();
        let api_key = rolegate_crypto::secret_token(API_KEY_PREFIX);
        let key_id = rolegate_crypto::short_id();
        let api_digest = pepper.digest("api-key", api_key.expose_secret()).to_hex();
        let external_id = rolegate_crypto::external_id();
        let ext_digest = pepper.digest("external-id", &external_id).to_hex();
        let now = self.records.now();
        let record = OrgRecord {
            name: cmd.name.clone(),
            external_id,
            owner: owner.clone(),
            status: OrgStatus::Pending,
            api_key_id: key_id.clone(),
            api_key_digest: api_digest.clone(),
            callback_secret: Secret::new(
                rolegate_crypto::secret_token(CALLBACK_SECRET_PREFIX).expose_secret(),
            ),
            expected_account_id: cmd.expected_account_id,
            account_id: None,
            role_arn: None,
            created_at: now.clone(),
            updated_at: now,
            offboarded_at: None,
            callback_secret_expires_at: Some(crate::clock::rfc3339(
                self.records.clock().now() + CALLBACK_SECRET_TTL,
            )),
            callback_secret_used: false,
            previous_callback_secret: None,
            trust_check: None,
            status_message: None,
            last_callback_at: None,
            stack_id: None,
            max_session_duration: None,
            allowed_cidrs: Vec::new(),
            api_key_allowed_cidrs: Vec::new(),
            bind_source_ip: false,
            customer_approvers: Vec::new(),
        };
        let okey = keyspace::org(&cmd.name);
        let akey = keyspace::api_key(&api_digest);
        let ekey = keyspace::external_id(&ext_digest);
        let entry = ApiKeyEntry {
            org: cmd.name.clone(),
            key_id: key_id.clone(),
            digest: api_digest,
        };
        let txn = Txn::new()
            .absent(okey.as_str())
            .absent(akey.as_str())
            .absent(ekey.as_str());
        let txn = self.records.put(txn, &okey, &record)?;
        let txn = self.records.put(txn, &akey, &entry)?;
        let txn = self.records.put(txn, &ekey, &cmd.name)?;
        let txn = self
            .records
            .put(txn, &keyspace::owner(owner, &cmd.name), &cmd.name)?;
        let audit = AuditRecord::new(Action::RegisterOrg.name())
            .org(cmd.name.to_string())
            .target(cmd.name.to_string())
            .details(serde_json::json!({"api_key_id": key_id}));
        let registered = RegisteredOrg {
            org: Org::from(&record),
            api_key,
        };
        Ok((txn, audit, registered))
    }

    /// Loads an org for `action`, as the policy allows: an API key for another org gets 403
    /// whether or not the org exists; otherwise a missing org is 404 and someone else's 403.
    pub async fn load(
        &self,
        caller: &Caller,
        action: Action,
        name: &OrgName,
    ) -> Result<Versioned<OrgRecord>, Error> {
        self.load_with(caller, action, name, None).await
    }

    /// [`Orgs::load`] for an action under an access level (credentials): the level's grants
    /// decide too, in the same decision.
    pub async fn load_with(
        &self,
        caller: &Caller,
        action: Action,
        name: &OrgName,
        level: Option<&AccessLevel>,
    ) -> Result<Versioned<OrgRecord>, Error> {
        Ok(self.load_granted(caller, action, name, level).await?.0)
    }

    /// [`Orgs::load_with`], and the grant that admitted the caller when the level needs
    /// approval on this org (the caller's running grant is looked up and shown to the
    /// policy; without one the answer is 403 `grant_required`).
    pub async fn load_granted(
        &self,
        caller: &Caller,
        action: Action,
        name: &OrgName,
        level: Option<&AccessLevel>,
    ) -> Result<(Versioned<OrgRecord>, Option<Versioned<AccessRequestRecord>>), Error> {
        let rec = self.records.get_cached(&keyspace::org(name)).await?;
        let owner = rec
            .as_ref()
            .map_or(Owner::NoSuchOrg, |r| Owner::Is(&r.value.owner));
        let now = self.records.clock().now().unix_timestamp();
        let grant = match (level, &caller.principal) {
            (Some(l), Principal::Operator { user_id, .. }) if l.requires_grant(name) => {
                grant::active_grant(&self.records, name, l.name(), user_id, now).await?
            }
            _ => None,
        };
        // The principal's own allowlist: an operator's is on its record, the API key's on
        // the org's.
        let user_cidrs = match (level, &caller.principal) {
            (Some(_), Principal::Operator { user_id, .. }) => self
                .records
                .get_cached(&keyspace::user(user_id))
                .await?
                .map(|u| u.value.allowed_cidrs)
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let mut facts = Facts::org(name, owner);
        if let Some(level) = level {
            let principal: &[crate::network::Cidr] = match (&caller.principal, &rec) {
                (Principal::OrgKey { .. }, Some(r)) => &r.value.api_key_allowed_cidrs,
                _ => &user_cidrs,
            };
            facts = facts
                .with_level(level)
                .with_grant(grant.as_ref().and_then(|g| grant::fact(&g.value, now)))
                .with_network(NetworkFact {
                    source: caller.ctx.source_ip.as_deref(),
                    org: rec.as_ref().map_or(&[], |r| &r.value.allowed_cidrs),
                    principal,
                });
        }
        if let Err(e) = self.records.authorize(caller, action, &facts).await {
            if e.code() == Code::SourceIpNotAllowed {
                // An alert for the operators' log pipeline (the refusal itself is audited).
                tracing::warn!(
                    target: "rolegate::access::source_ip",
                    org = %name, actor = %caller.ctx.actor,
                    source_ip = caller.ctx.source_ip.as_deref().unwrap_or("unknown"),
                    action = action.name(),
                    "source address outside an allowlist: refused"
                );
            }
            return Err(e);
        }
        let rec = rec.ok_or(Error::NotFound {
            what: keyspace::ORG.name,
        })?;
        Ok((rec, grant))
    }

    /// The public view of `rec` for `caller`, with the levels it may use.
    #[must_use]
    pub fn view(&self, caller: &Caller, rec: &OrgRecord) -> Org {
        let mut org = Org::from(rec);
        org.access_levels = self.levels_for(caller, &rec.name, &rec.owner);
        org
    }

    fn levels_for(&self, caller: &Caller, name: &OrgName, owner: &UserId) -> Vec<String> {
        self.levels
            .levels()
            .filter(|l| {
                let facts = Facts::org(name, Owner::Is(owner)).with_level(l);
                policy::authorize(caller, Action::IssueCredentials, &facts).is_ok()
            })
            .map(|l| l.name().to_owned())
            .collect()
    }

    pub async fn get(&self, caller: &Caller, name: &OrgName) -> Result<Org, Error> {
        let rec = self.load(caller, Action::ReadOrg, name).await?;
        Ok(self.view(caller, &rec.value))
    }

    /// A page of the orgs the caller may see, ordered by name.
    pub async fn list(
        &self,
        caller: &Caller,
        after: Option<&str>,
        limit: usize,
    ) -> Result<OrgPage, Error> {
        self.records
            .authorize(caller, Action::ListOrgs, &Facts::default())
            .await?;
        let limit = limit.clamp(1, 500);
        // Whose orgs the listing shows: every org, one owner's, or one org.
        let prefix = match &caller.principal {
            Principal::OrgKey { org, .. } => {
                return Ok(OrgPage {
                    orgs: vec![self.get(caller, org).await?],
                    next: None,
                });
            }
            Principal::Operator { user_id, .. } if !caller.principal.is_admin() => {
                keyspace::owner_prefix(user_id)
            }
            Principal::Operator { .. } | Principal::System { .. } => {
                keyspace::ORG.prefix.to_owned()
            }
            Principal::Stack { .. } | Principal::Workload { .. } => {
                return Err(Error::forbidden(
                    "onboarding stacks and workloads cannot list orgs",
                ));
            }
        };
        let by_owner = prefix != keyspace::ORG.prefix;
        let after_key = after.map(|a| format!("{prefix}{a}"));
        let vault = self.records.vault();
        let page = vault
            .store()
            .list(&prefix, after_key.as_deref(), limit)
            .await?;
        let mut orgs = Vec::with_capacity(page.items.len());
        for (key, raw) in &page.items {
            if by_owner {
                let name: OrgName = vault.open(key, raw)?;
                if let Some(rec) = self.records.get_cached(&keyspace::org(&name)).await? {
                    orgs.push(self.view(caller, &rec.value));
                }
            } else {
                orgs.push(self.view(caller, &vault.open::<OrgRecord>(key, raw)?));
            }
        }
        let next = page.next.map(|k| k[prefix.len()..].to_owned());
        Ok(OrgPage { orgs, next })
    }

    /// Issues a new API key; the old one stops working in the same transaction. With
    /// `revoke_sessions` on a validated org, that transaction also queues the deny of the
    /// sessions the old key obtained (`apikey.<old key id>`).
    pub async fn rotate_api_key(
        &self,
        caller: &Caller,
        name: &OrgName,
    ) -> Result<RegisteredOrg, Error> {
        self.load(caller, Action::RotateOrgApiKey, name).await?;
        let mut issued: Option<SecretString> = None;
        let updated = self
            .records
            .update(caller, &keyspace::org(name), |cur| {
                if cur.status == OrgStatus::Offboarded {
                    return Err(Error::offboarded(name));
                }
                let api_key = rolegate_crypto::secret_token(API_KEY_PREFIX);
                let digest = self
                    .records
                    .pepper()
                    .digest("api-key", api_key.expose_secret())
                    .to_hex();
                let mut rec = cur.clone();
                let old_digest = std::mem::replace(&mut rec.api_key_digest, digest.clone());
                let old_id = std::mem::replace(&mut rec.api_key_id, rolegate_crypto::short_id());
                rec.updated_at = self.records.now();
                let entry = ApiKeyEntry {
                    org: name.clone(),
                    key_id: rec.api_key_id.clone(),
                    digest: digest.clone(),
                };
                let new_key = keyspace::api_key(&digest);
                let txn = Txn::new()
                    .absent(new_key.as_str())
                    .delete(keyspace::api_key(&old_digest).as_str());
                let txn = self.records.put(txn, &new_key, &entry)?;
                // Only an org with a role to write into (the writer refuses any other).
                let (txn, queued) = if cur.status == OrgStatus::Validated && cur.role_arn.is_some()
                {
                    let now = self.records.clock().now().unix_timestamp();
                    self.revocations
                        .queue_api_key(&self.records, txn, name, &old_id, now)?
                } else {
                    (txn, None)
                };
                let mut details =
                    serde_json::json!({"old_api_key_id": old_id, "api_key_id": rec.api_key_id});
                if let Some(m) = queued {
                    details["revoke_sessions"] = serde_json::json!({
                        "source_identity": m.value,
                        "expires_unix": m.expires_unix,
                    });
                }
                let audit = AuditRecord::new(Action::RotateOrgApiKey.name())
                    .org(name.to_string())
                    .target(name.to_string())
                    .details(details);
                issued = Some(api_key);
                Ok(Change::write_with(rec, txn, audit))
            })
            .await?;
        self.evict_after_change(name).await;
        let api_key = issued.ok_or(Error::Contention)?;
        Ok(RegisteredOrg {
            org: self.view(caller, &updated.value),
            api_key,
        })
    }

    /// Offboards an org: its API key dies, it gets no more credentials, and the record stays
    /// as a tombstone so the audit trail keeps its subject. Offboarding an offboarded org
    /// answers the record again.
    pub async fn offboard(&self, caller: &Caller, name: &OrgName) -> Result<Org, Error> {
        self.load(caller, Action::OffboardOrg, name).await?;
        let updated = self
            .offboard_record(caller, name, "deleted by operator", None)
            .await?;
        Ok(self.view(caller, &updated))
    }

    /// Marks `name` offboarded (its API key deleted, its cache dropped), for `reason`.
    pub(crate) async fn offboard_record(
        &self,
        caller: &Caller,
        name: &OrgName,
        reason: &str,
        stack_id: Option<&str>,
    ) -> Result<OrgRecord, Error> {
        let now = self.records.now();
        let updated = self
            .records
            .update(caller, &keyspace::org(name), |cur| {
                if cur.status == OrgStatus::Offboarded {
                    return Ok(Change::Keep);
                }
                let mut rec = cur.clone();
                let from = rec.status;
                rec.status = OrgStatus::Offboarded;
                rec.offboarded_at = Some(now.clone());
                rec.updated_at.clone_from(&now);
                if stack_id.is_some() {
                    rec.status_message =
                        Some("the customer deleted the onboarding stack".to_owned());
                    rec.last_callback_at = Some(now.clone());
                }
                let txn = Txn::new().delete(keyspace::api_key(&rec.api_key_digest).as_str());
                let mut details = serde_json::json!({"from_status": from, "reason": reason});
                if let Some(s) = stack_id {
                    details["stack_id"] = serde_json::Value::from(s);
                }
                let audit = AuditRecord::new(Action::OffboardOrg.name())
                    .org(name.to_string())
                    .target(name.to_string())
                    .details(details);
                Ok(Change::write_with(rec, txn, audit))
            })
            .await?;
        if updated.changed {
            self.evict_after_change(name).await;
        }
        Ok(updated.value)
    }

    /// Drops every cached credential of `org`. Returns how many were dropped.
    pub async fn evict_credentials(&self, org: &OrgName) -> Result<usize, Error> {
        self.records
            .delete_prefix(&keyspace::credentials_prefix(org))
            .await
    }

    /// Evicts after a committed change (rotation, offboarding, a binding reset). The change
    /// stands either way, and issuance re-checks the org's status and binding, so a failure
    /// is logged rather than reported.
    pub(crate) async fn evict_after_change(&self, org: &OrgName) {
        if let Err(e) = self.evict_credentials(org).await {
            tracing::error!(error = %e, %org, "could not evict cached credentials");
        }
    }

    /// The record layer, for the areas built on this one.
    #[must_use]
    pub fn records(&self) -> &Records {
        &self.records
    }
}
