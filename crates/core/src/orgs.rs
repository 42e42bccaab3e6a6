//! Organisations (the provider's customers): registration, lookup, API-key rotation and
//! offboarding, and API-key authentication.

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use crate::audit::AuditRecord;
use crate::ids::{OrgName, UserId};
use crate::ports::Txn;
use crate::principal::{Principal, RequestContext};
use crate::{Error, Services};

/// Registering many organisations in one transaction (imports, the benchmark seeder).
mod bulk;
/// Registration, single and bulk, against an in-memory store.
#[cfg(test)]
mod tests;

pub const API_KEY_PREFIX: &str = "rgk_";
pub const CALLBACK_SECRET_PREFIX: &str = "rgc_";

pub(crate) fn org_key(name: &OrgName) -> String {
    format!("org/{name}")
}
pub(crate) fn api_key_key(digest_hex: &str) -> String {
    format!("apikey/{digest_hex}")
}
fn external_id_key(digest_hex: &str) -> String {
    format!("extid/{digest_hex}")
}
fn owner_key(owner: &UserId, name: &OrgName) -> String {
    format!("owner/{owner}/{name}")
}

/// Lifecycle of an organisation's onboarding.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgStatus {
    Pending,
    CallbackReceived,
    Validated,
    UnsafeTrust,
    Failed,
    Offboarded,
}

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(input: &str) -> Result<Self, Error> {
        if input.len() == 12 && input.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(input.to_owned()))
        } else {
            Err(Error::invalid(
                "account_id",
                "account_id must be exactly 12 digits",
            ))
        }
    }
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AccountId {
    type Error = Error;
    fn try_from(v: String) -> Result<Self, Error> {
        Self::parse(&v)
    }
}
impl From<AccountId> for String {
    fn from(v: AccountId) -> Self {
        v.0
    }
}

/// The stored organisation record (sealed as a whole).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrgRecord {
    pub name: OrgName,
    pub external_id: String,
    pub owner: UserId,
    pub status: OrgStatus,
    pub api_key_id: String,
    pub api_key_digest: String,
    pub callback_secret: String,
    pub expected_account_id: Option<AccountId>,
    pub account_id: Option<AccountId>,
    pub role_arn: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub offboarded_at: Option<String>,
    /// When the current callback secret stops working if unused (RFC 3339).
    #[serde(default)]
    pub callback_secret_expires_at: Option<String>,
    /// Whether a verified callback has used the current secret (then it does not expire).
    #[serde(default)]
    pub callback_secret_used: bool,
    /// The secret a live stack was deployed with, kept when new links replace it so that
    /// stack's Update and Delete notifications still verify; dropped once a callback uses
    /// the current secret.
    #[serde(default)]
    pub previous_callback_secret: Option<String>,
    /// Result of the trust-policy check after binding (`external_id_enforced`,
    /// `external_id_not_enforced`, or why the check failed).
    #[serde(default)]
    pub trust_check: Option<String>,
    /// A human-readable explanation of the current status, when it needs one.
    #[serde(default)]
    pub status_message: Option<String>,
    #[serde(default)]
    pub last_callback_at: Option<String>,
    /// The CloudFormation stack that reported the binding.
    #[serde(default)]
    pub stack_id: Option<String>,
    /// The bound role's MaxSessionDuration, as its stack reported it.
    #[serde(default)]
    pub max_session_duration: Option<u32>,
}

/// What the API-key index points at.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ApiKeyEntry {
    org: OrgName,
    key_id: String,
    digest: String,
}

/// The public view of an organisation: the ExternalId is included (AWS does not treat it as
/// a secret); the API key and callback secret never are.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Org {
    pub org_name: String,
    pub external_id: String,
    pub status: OrgStatus,
    pub owner: String,
    pub api_key_id: String,
    pub expected_account_id: Option<String>,
    pub account_id: Option<String>,
    pub role_arn: Option<String>,
    pub trust_check: Option<String>,
    pub status_message: Option<String>,
    pub last_callback_at: Option<String>,
    /// The bound role's MaxSessionDuration, when its stack reported it.
    pub max_session_duration: Option<u32>,
    pub created_at: String,
    pub updated_at: String,
    pub offboarded_at: Option<String>,
}

impl From<&OrgRecord> for Org {
    fn from(r: &OrgRecord) -> Self {
        Self {
            org_name: r.name.to_string(),
            external_id: r.external_id.clone(),
            status: r.status,
            owner: r.owner.to_string(),
            api_key_id: r.api_key_id.clone(),
            expected_account_id: r
                .expected_account_id
                .as_ref()
                .map(|a| a.as_str().to_owned()),
            account_id: r.account_id.as_ref().map(|a| a.as_str().to_owned()),
            role_arn: r.role_arn.clone(),
            trust_check: r.trust_check.clone(),
            status_message: r.status_message.clone(),
            last_callback_at: r.last_callback_at.clone(),
            max_session_duration: r.max_session_duration,
            created_at: r.created_at.clone(),
            updated_at: r.updated_at.clone(),
            offboarded_at: r.offboarded_at.clone(),
        }
    }
}

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

fn registering_operator(by: &Principal) -> Result<&UserId, Error> {
    match by {
        Principal::Operator { user_id, .. } => Ok(user_id),
        Principal::OrgKey { .. } => Err(Error::Forbidden(
            "API keys cannot register organisations".to_owned(),
        )),
    }
}

fn org_exists(name: &OrgName) -> Error {
    Error::conflict("org_exists", format!("organisation {name} already exists"))
}

impl Services {
    /// Resolves an org API key. `None` for unknown, rotated or offboarded keys.
    #[tracing::instrument(skip_all)]
    pub async fn authenticate_api_key(&self, key: &str) -> Result<Option<Principal>, Error> {
        if !key.starts_with(API_KEY_PREFIX) || key.len() > 128 {
            return Ok(None);
        }
        let digest = self.pepper.digest("api-key", key);
        let Some(entry) = self
            .vault
            .get::<ApiKeyEntry>(&api_key_key(&digest.to_hex()))
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
    pub async fn register_org(
        &self,
        ctx: &RequestContext,
        by: &Principal,
        cmd: RegisterOrgCommand,
    ) -> Result<RegisteredOrg, Error> {
        let owner = registering_operator(by)?;
        let name = cmd.name.clone();
        let (txn, audit, registered) = self.prepare_registration(owner, cmd)?;
        if !self.audit.commit_with(ctx, txn, audit).await? {
            return Err(org_exists(&name));
        }
        Ok(registered)
    }

    /// The writes (conditional on the name, key and ExternalId being free), the audit record
    /// and the answer of one registration, not yet committed.
    fn prepare_registration(
        &self,
        owner: &UserId,
        cmd: RegisterOrgCommand,
    ) -> Result<(Txn, AuditRecord, RegisteredOrg), Error> {
        let api_key = rolegate_crypto::secret_token(API_KEY_PREFIX);
        let key_id = rolegate_crypto::short_id();
        let api_digest = self
            .pepper
            .digest("api-key", api_key.expose_secret())
            .to_hex();
        let external_id = rolegate_crypto::external_id();
        let ext_digest = self.pepper.digest("external-id", &external_id).to_hex();
        let now = self.now();
        let record = OrgRecord {
            name: cmd.name.clone(),
            external_id,
            owner: owner.clone(),
            status: OrgStatus::Pending,
            api_key_id: key_id.clone(),
            api_key_digest: api_digest.clone(),
            callback_secret: rolegate_crypto::secret_token(CALLBACK_SECRET_PREFIX)
                .expose_secret()
                .to_owned(),
            expected_account_id: cmd.expected_account_id,
            account_id: None,
            role_arn: None,
            created_at: now.clone(),
            updated_at: now,
            offboarded_at: None,
            callback_secret_expires_at: Some(crate::clock::rfc3339(
                self.clock.now() + crate::onboarding::CALLBACK_SECRET_TTL,
            )),
            callback_secret_used: false,
            previous_callback_secret: None,
            trust_check: None,
            status_message: None,
            last_callback_at: None,
            stack_id: None,
            max_session_duration: None,
        };
        let okey = org_key(&cmd.name);
        let akey = api_key_key(&api_digest);
        let ekey = external_id_key(&ext_digest);
        let entry = ApiKeyEntry {
            org: cmd.name.clone(),
            key_id: key_id.clone(),
            digest: api_digest,
        };
        let txn = Txn::new()
            .absent(okey.clone())
            .absent(akey.clone())
            .absent(ekey.clone());
        let txn = self.vault.put(txn, &okey, &record)?;
        let txn = self.vault.put(txn, &akey, &entry)?;
        let txn = self.vault.put(txn, &ekey, &cmd.name)?;
        let txn = self
            .vault
            .put(txn, &owner_key(owner, &cmd.name), &cmd.name)?;
        let audit = AuditRecord::new("org.create")
            .org(cmd.name.to_string())
            .target(cmd.name.to_string())
            .details(serde_json::json!({"api_key_id": key_id}));
        let registered = RegisteredOrg {
            org: Org::from(&record),
            api_key,
        };
        Ok((txn, audit, registered))
    }

    /// Loads an org the caller may see: 404 when absent, 403 when someone else's.
    pub async fn org_record(
        &self,
        by: &Principal,
        name: &OrgName,
    ) -> Result<crate::vault::Versioned<OrgRecord>, Error> {
        let rec = self.vault.get::<OrgRecord>(&org_key(name)).await?;
        // An API key learns nothing about other orgs: 403 whether or not the org exists.
        if let Principal::OrgKey { org, .. } = by
            && org != name
        {
            return Err(Error::Forbidden(
                "this API key belongs to another organisation".to_owned(),
            ));
        }
        let rec = rec.ok_or(Error::NotFound {
            what: "organisation",
        })?;
        if !by.can_access_org(name, &rec.value.owner) {
            return Err(Error::Forbidden(
                "this organisation belongs to another operator".to_owned(),
            ));
        }
        Ok(rec)
    }

    pub async fn get_org(&self, by: &Principal, name: &OrgName) -> Result<Org, Error> {
        Ok(Org::from(&self.org_record(by, name).await?.value))
    }

    /// A page of the orgs the caller may see, ordered by name.
    pub async fn list_orgs(
        &self,
        by: &Principal,
        after: Option<&str>,
        limit: usize,
    ) -> Result<OrgPage, Error> {
        let limit = limit.clamp(1, 500);
        match by {
            Principal::OrgKey { org, .. } => Ok(OrgPage {
                orgs: vec![self.get_org(by, org).await?],
                next: None,
            }),
            Principal::Operator { user_id, role } => {
                let prefix = if *role == crate::ids::Role::Admin {
                    "org/".to_owned()
                } else {
                    format!("owner/{user_id}/")
                };
                let after_key = after.map(|a| format!("{prefix}{a}"));
                let page = self
                    .vault
                    .store()
                    .list(&prefix, after_key.as_deref(), limit)
                    .await?;
                let mut orgs = Vec::with_capacity(page.items.len());
                for (key, raw) in &page.items {
                    if *role == crate::ids::Role::Admin {
                        orgs.push(Org::from(&self.vault.open::<OrgRecord>(key, raw)?));
                    } else {
                        let name: OrgName = self.vault.open(key, raw)?;
                        if let Some(rec) = self.vault.get::<OrgRecord>(&org_key(&name)).await? {
                            orgs.push(Org::from(&rec.value));
                        }
                    }
                }
                let next = page.next.map(|k| k[prefix.len()..].to_owned());
                Ok(OrgPage { orgs, next })
            }
        }
    }

    /// Issues a new API key; the old one stops working in the same transaction.
    pub async fn rotate_api_key(
        &self,
        ctx: &RequestContext,
        by: &Principal,
        name: &OrgName,
    ) -> Result<RegisteredOrg, Error> {
        if matches!(by, Principal::OrgKey { .. }) {
            return Err(Error::Forbidden(
                "only operators can rotate an organisation's API key".to_owned(),
            ));
        }
        for _ in 0..8 {
            let cur = self.org_record(by, name).await?;
            if cur.value.status == OrgStatus::Offboarded {
                return Err(Error::conflict(
                    "org_offboarded",
                    format!("organisation {name} is offboarded"),
                ));
            }
            let api_key = rolegate_crypto::secret_token(API_KEY_PREFIX);
            let digest = self
                .pepper
                .digest("api-key", api_key.expose_secret())
                .to_hex();
            let mut rec = cur.value.clone();
            let old_digest = std::mem::replace(&mut rec.api_key_digest, digest.clone());
            let old_id = std::mem::replace(&mut rec.api_key_id, rolegate_crypto::short_id());
            rec.updated_at = self.now();
            let okey = org_key(name);
            let entry = ApiKeyEntry {
                org: name.clone(),
                key_id: rec.api_key_id.clone(),
                digest: digest.clone(),
            };
            let txn = Txn::new()
                .equals(okey.clone(), cur.rev)
                .absent(api_key_key(&digest))
                .delete(api_key_key(&old_digest));
            let txn = self.vault.put(txn, &okey, &rec)?;
            let txn = self.vault.put(txn, &api_key_key(&digest), &entry)?;
            let audit = AuditRecord::new("org.api_key.rotate")
                .org(name.to_string())
                .target(name.to_string())
                .details(
                    serde_json::json!({"old_api_key_id": old_id, "api_key_id": rec.api_key_id}),
                );
            if self.audit.commit_with(ctx, txn, audit).await? {
                self.evict_after_change(name).await;
                return Ok(RegisteredOrg {
                    org: Org::from(&rec),
                    api_key,
                });
            }
        }
        Err(Error::Contention)
    }

    /// Offboards an org: its API key dies, it gets no more credentials, and the record stays
    /// as a tombstone so the audit trail keeps its subject.
    pub async fn offboard_org(
        &self,
        ctx: &RequestContext,
        by: &Principal,
        name: &OrgName,
    ) -> Result<Org, Error> {
        if matches!(by, Principal::OrgKey { .. }) {
            return Err(Error::Forbidden(
                "only operators can offboard an organisation".to_owned(),
            ));
        }
        for _ in 0..8 {
            let cur = self.org_record(by, name).await?;
            if cur.value.status == OrgStatus::Offboarded {
                return Ok(Org::from(&cur.value));
            }
            let mut rec = cur.value.clone();
            let from = rec.status;
            rec.status = OrgStatus::Offboarded;
            rec.offboarded_at = Some(self.now());
            rec.updated_at = self.now();
            let okey = org_key(name);
            let txn = Txn::new()
                .equals(okey.clone(), cur.rev)
                .delete(api_key_key(&rec.api_key_digest));
            let txn = self.vault.put(txn, &okey, &rec)?;
            let audit = AuditRecord::new("org.offboard")
                .org(name.to_string())
                .target(name.to_string())
                .details(serde_json::json!({"from_status": from, "reason": "deleted by operator"}));
            if self.audit.commit_with(ctx, txn, audit).await? {
                self.evict_after_change(name).await;
                return Ok(Org::from(&rec));
            }
        }
        Err(Error::Contention)
    }
}
