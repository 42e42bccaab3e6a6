//! Workload identity (issue 14): an org's trust anchors and workload profiles, and
//! `create_session`, the Roles-Anywhere-compatible exchange of a signed request for the
//! org's customer-role credentials. See docs/workload-identity.md.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::audit::AuditRecord;
use crate::credentials::{Credentials, Issued};
use crate::error::Error;
use crate::ids::OrgName;
use crate::keyspace::{self, Key};
use crate::levels::{CredentialPolicy, Grantee, MIN_DURATION_SECS};
use crate::model::{
    AttributeMapping, Condition, StoredCrl, TrustAnchorRecord, WorkloadProfileRecord,
};
use crate::orgs::Orgs;
use crate::policy::Action;
use crate::ports::Txn;
use crate::principal::Caller;
use crate::records::Records;

/// `POST /sessions`.
mod session;
/// The request signature (SigV4 with X.509 keys).
pub mod sigv4;
/// Certificates, chains, CRLs.
pub mod x509;

/// AWS allows 50 session tags; rolegate sets up to 3 of its own.
pub const MAX_MAPPED_TAGS: usize = 47;
/// How far `X-Amz-Date` may be from the server's clock.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;
/// Bounds on a trust anchor's bundle and a profile's conditions.
const MAX_ANCHOR_CERTS: usize = 10;
const MAX_CONDITIONS: usize = 20;
const MAX_CHAIN: usize = 5;

/// Where the ARNs say rolegate's anchors and profiles live.
#[derive(Debug, Clone)]
pub struct WorkloadSettings {
    /// The region in the ARNs (and the region clients sign for).
    pub region: String,
    /// The provider's account id in the ARNs.
    pub account_id: String,
    /// How long past its `nextUpdate` a CRL is still honoured.
    pub crl_grace: Duration,
}

impl Default for WorkloadSettings {
    fn default() -> Self {
        Self {
            region: "us-east-1".to_owned(),
            account_id: "000000000000".to_owned(),
            crl_grace: Duration::from_secs(3600),
        }
    }
}

/// The workload-identity area.
#[derive(Debug, Clone)]
pub struct Workloads {
    records: Records,
    orgs: Orgs,
    credentials: Credentials,
    levels: Arc<CredentialPolicy>,
    settings: WorkloadSettings,
}

/// A trust anchor as the API shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrustAnchor {
    pub trust_anchor_arn: String,
    pub id: String,
    pub org_name: String,
    pub name: String,
    /// The subjects of the bundle's certificates.
    pub certificates: Vec<String>,
    pub crl: Option<CrlView>,
    pub created_at: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrlView {
    pub this_update: String,
    pub next_update: Option<String>,
    pub revoked: usize,
    /// Past `nextUpdate` plus the grace period: the anchor refuses every certificate.
    pub stale: bool,
}

/// A workload profile as the API shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadProfile {
    pub profile_arn: String,
    pub id: String,
    pub org_name: String,
    pub name: String,
    pub access_level: String,
    pub max_duration_secs: u32,
    pub require: Vec<Condition>,
    pub attribute_mappings: Vec<AttributeMapping>,
    pub accept_role_session_name: bool,
    pub created_at: String,
}

/// A profile to create.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProfile {
    /// 1 to 64 characters, no control characters.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 64, pattern = r"^[^\x00-\x1f\x7f]+$")
    )]
    pub name: String,
    /// Defaults to the default level; it must grant `workloads`.
    pub access_level: Option<String>,
    /// Defaults to 3600; at most the level's maximum.
    pub max_duration_secs: Option<u32>,
    #[serde(default)]
    pub require: Vec<Condition>,
    #[serde(default)]
    pub attribute_mappings: Vec<AttributeMapping>,
    #[serde(default)]
    pub accept_role_session_name: bool,
}

/// The parts of a `POST /sessions` request that the signature covers.
#[derive(Debug, Clone)]
pub struct SessionRequest {
    pub query: String,
    /// Every header, as received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// CreateSession's body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionBody {
    duration_seconds: Option<i64>,
    profile_arn: String,
    role_arn: Option<String>,
    trust_anchor_arn: String,
    role_session_name: Option<String>,
}

/// A granted session.
#[derive(Debug, Clone)]
pub struct Session {
    pub issued: Issued,
    pub role_arn: String,
    pub subject_arn: String,
}

fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(crate::clock::rfc3339)
        .unwrap_or_default()
}

/// The UUID at the end of `arn` after `…:<kind>/`.
fn arn_id<'a>(arn: &'a str, kind: &str) -> Option<&'a str> {
    let (head, id) = arn.rsplit_once(&format!(":{kind}/"))?;
    (head.starts_with("arn:") && uuid::Uuid::parse_str(id).is_ok()).then_some(id)
}

fn is_tag_key(k: &str) -> bool {
    (1..=128).contains(&k.chars().count())
        && !k.to_ascii_lowercase().starts_with("aws:")
        && !k.starts_with("rolegate:")
        && k.chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c))
}

impl Workloads {
    #[must_use]
    pub fn new(
        orgs: Orgs,
        credentials: Credentials,
        levels: Arc<CredentialPolicy>,
        settings: WorkloadSettings,
    ) -> Self {
        Self {
            records: orgs.records().clone(),
            orgs,
            credentials,
            levels,
            settings,
        }
    }

    fn arn(&self, kind: &str, id: &str) -> String {
        format!(
            "arn:aws:rolesanywhere:{}:{}:{kind}/{id}",
            self.settings.region, self.settings.account_id
        )
    }

    fn crl_stale(&self, crl: &StoredCrl, now: i64) -> bool {
        let grace = i64::try_from(self.settings.crl_grace.as_secs()).unwrap_or(i64::MAX);
        crl.next_update
            .is_some_and(|n| now > n.saturating_add(grace))
    }

    fn anchor_view(&self, r: &TrustAnchorRecord) -> TrustAnchor {
        let now = self.records.clock().now().unix_timestamp();
        TrustAnchor {
            trust_anchor_arn: self.arn("trust-anchor", &r.id),
            id: r.id.clone(),
            org_name: r.org.to_string(),
            name: r.name.clone(),
            certificates: r
                .certificates
                .iter()
                .filter_map(|c| x509::unb64(c).ok())
                .filter_map(|d| x509::subject_of(&d))
                .collect(),
            crl: r.crl.as_ref().map(|c| CrlView {
                this_update: rfc3339(c.this_update),
                next_update: c.next_update.map(rfc3339),
                revoked: c.revoked,
                stale: self.crl_stale(c, now),
            }),
            created_at: r.created_at.clone(),
        }
    }

    fn profile_view(&self, r: &WorkloadProfileRecord) -> WorkloadProfile {
        WorkloadProfile {
            profile_arn: self.arn("profile", &r.id),
            id: r.id.clone(),
            org_name: r.org.to_string(),
            name: r.name.clone(),
            access_level: r.access_level.clone(),
            max_duration_secs: r.max_duration_secs,
            require: r.require.clone(),
            attribute_mappings: r.attribute_mappings.clone(),
            accept_role_session_name: r.accept_role_session_name,
            created_at: r.created_at.clone(),
        }
    }

    fn check_name(name: &str) -> Result<String, Error> {
        let n = name.trim();
        if n.is_empty() || n.chars().count() > 64 || n.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                "name must be 1 to 64 characters without control characters",
            ));
        }
        Ok(n.to_owned())
    }

    /// Registers a CA bundle for `org`.
    pub async fn create_anchor(
        &self,
        caller: &Caller,
        org: &OrgName,
        name: &str,
        bundle_pem: &str,
    ) -> Result<TrustAnchor, Error> {
        self.orgs
            .load_with(caller, Action::CreateTrustAnchor, org, None)
            .await?;
        let name = Self::check_name(name)?;
        let certs = x509::parse_bundle(bundle_pem)
            .map_err(|e| Error::invalid("certificate_bundle_pem", e))?;
        if certs.len() > MAX_ANCHOR_CERTS {
            return Err(Error::invalid(
                "certificate_bundle_pem",
                format!("a bundle holds at most {MAX_ANCHOR_CERTS} certificates"),
            ));
        }
        for c in &certs {
            let der = rustls_pki_types::CertificateDer::from(c.as_slice());
            webpki::anchor_from_trusted_cert(&der).map_err(|e| {
                Error::invalid(
                    "certificate_bundle_pem",
                    format!("a certificate cannot be a trust anchor: {e:?}"),
                )
            })?;
        }
        let id = uuid::Uuid::new_v4().to_string();
        let rec = TrustAnchorRecord {
            id: id.clone(),
            org: org.clone(),
            name,
            certificates: certs.iter().map(|c| x509::b64(c)).collect(),
            crl: None,
            created_at: self.records.now(),
        };
        let view = self.anchor_view(&rec);
        let audit = AuditRecord::new(Action::CreateTrustAnchor.name())
            .org(org.to_string())
            .target(view.trust_anchor_arn.clone())
            .details(serde_json::json!({"name": rec.name, "certificates": view.certificates}));
        let (key, idx) = (
            keyspace::trust_anchor(org, &id),
            keyspace::trust_anchor_id(&id),
        );
        self.insert_indexed(caller, org, (&key, &idx), &rec, audit)
            .await?;
        Ok(view)
    }

    pub async fn list_anchors(
        &self,
        caller: &Caller,
        org: &OrgName,
    ) -> Result<Vec<TrustAnchor>, Error> {
        let prefix = keyspace::trust_anchors_prefix(org);
        self.list_indexed(caller, Action::ListTrustAnchors, org, &prefix, |r| {
            self.anchor_view(r)
        })
        .await
    }

    pub async fn delete_anchor(
        &self,
        caller: &Caller,
        org: &OrgName,
        id: &str,
    ) -> Result<(), Error> {
        let action = Action::DeleteTrustAnchor;
        self.orgs.load_with(caller, action, org, None).await?;
        let id = Self::id_or_arn(id, "trust-anchor")?;
        let (key, idx) = (
            keyspace::trust_anchor(org, &id),
            keyspace::trust_anchor_id(&id),
        );
        let arn = self.arn("trust-anchor", &id);
        self.delete_indexed(caller, action, org, (&key, &idx), arn)
            .await
    }

    /// Writes one of `org`'s records with its global id index (anchors and profiles), both
    /// or neither, audited.
    async fn insert_indexed<T: Serialize>(
        &self,
        caller: &Caller,
        org: &OrgName,
        (key, idx): (&Key<T>, &Key<OrgName>),
        rec: &T,
        audit: AuditRecord,
    ) -> Result<(), Error> {
        let txn = Txn::new().absent(key.as_str()).absent(idx.as_str());
        let txn = self.records.put(txn, key, rec)?;
        let txn = self.records.put(txn, idx, org)?;
        if !self.records.commit(caller, txn, audit).await? {
            return Err(Error::Contention);
        }
        Ok(())
    }

    /// Every record of `org` under `prefix`, as views, once the caller may `action` there.
    async fn list_indexed<T: DeserializeOwned, V>(
        &self,
        caller: &Caller,
        action: Action,
        org: &OrgName,
        prefix: &str,
        view: impl Fn(&T) -> V,
    ) -> Result<Vec<V>, Error> {
        self.orgs.load_with(caller, action, org, None).await?;
        let all: Vec<(String, T)> = self.records.vault().list_all(prefix).await?;
        Ok(all.iter().map(|(_, r)| view(r)).collect())
    }

    /// Deletes one of `org`'s records and its id index (404 when it is not there), audited
    /// as `action` on `arn`. The caller has been authorised.
    async fn delete_indexed<T: DeserializeOwned>(
        &self,
        caller: &Caller,
        action: Action,
        org: &OrgName,
        (key, idx): (&Key<T>, &Key<OrgName>),
        arn: String,
    ) -> Result<(), Error> {
        if self.records.get(key).await?.is_none() {
            return Err(Error::NotFound {
                what: key.family().name,
            });
        }
        let txn = Txn::new()
            .present(key.as_str())
            .delete(key.as_str())
            .delete(idx.as_str());
        let audit = AuditRecord::new(action.name())
            .org(org.to_string())
            .target(arn);
        self.records.commit(caller, txn, audit).await?;
        Ok(())
    }

    fn id_or_arn(raw: &str, kind: &str) -> Result<String, Error> {
        let id = arn_id(raw, kind).unwrap_or(raw);
        uuid::Uuid::parse_str(id)
            .map(|u| u.to_string())
            .map_err(|_| Error::invalid("id", format!("not a {kind} id or ARN")))
    }

    /// Replaces the anchor's CRL (PEM or DER). It must be issued by one of its certificates.
    pub async fn put_crl(
        &self,
        caller: &Caller,
        id: &str,
        body: &[u8],
    ) -> Result<TrustAnchor, Error> {
        let id = Self::id_or_arn(id, "trust-anchor")?;
        let org = self
            .records
            .get(&keyspace::trust_anchor_id(&id))
            .await?
            .map(|v| v.value);
        // Unknown anchors are decided like unknown orgs: the policy first, then 404.
        let Some(org) = org else {
            self.records
                .authorize(caller, Action::UploadCrl, &crate::policy::Facts::default())
                .await?;
            return Err(Error::NotFound {
                what: keyspace::TRUST_ANCHOR.name,
            });
        };
        self.orgs
            .load_with(caller, Action::UploadCrl, &org, None)
            .await?;
        let crl = x509::parse_crl(body).map_err(|e| Error::invalid("crl", e))?;
        let now = self.records.now();
        let updated = self
            .records
            .update(caller, &keyspace::trust_anchor(&org, &id), |rec| {
                let issuers: Vec<String> = rec
                    .certificates
                    .iter()
                    .filter_map(|c| x509::unb64(c).ok())
                    .filter_map(|d| x509::subject_of(&d))
                    .collect();
                if !issuers.contains(&crl.issuer) {
                    return Err(Error::invalid(
                        "crl",
                        format!(
                            "the CRL's issuer {} is none of the anchor's certificates",
                            crl.issuer
                        ),
                    ));
                }
                let mut next = rec.clone();
                next.crl = Some(StoredCrl {
                    der: x509::b64(&crl.der),
                    this_update: crl.this_update,
                    next_update: crl.next_update,
                    revoked: crl.revoked,
                    uploaded_at: now.clone(),
                });
                let audit = AuditRecord::new(Action::UploadCrl.name())
                    .org(org.to_string())
                    .target(self.arn("trust-anchor", &id))
                    .details(serde_json::json!({
                        "this_update": rfc3339(crl.this_update),
                        "next_update": crl.next_update.map(rfc3339),
                        "revoked": crl.revoked,
                    }));
                Ok(crate::records::Change::write(next, audit))
            })
            .await?;
        Ok(self.anchor_view(&updated.value))
    }

    /// Creates a profile for `org`.
    pub async fn create_profile(
        &self,
        caller: &Caller,
        org: &OrgName,
        p: NewProfile,
    ) -> Result<WorkloadProfile, Error> {
        self.orgs
            .load_with(caller, Action::CreateWorkloadProfile, org, None)
            .await?;
        let name = Self::check_name(&p.name)?;
        let level = self
            .levels
            .level(p.access_level.as_deref())
            .map_err(|e| Error::invalid("access_level", e.to_string()))?;
        if !level.allows(Grantee::Workloads) {
            return Err(Error::invalid(
                "access_level",
                format!(
                    "access level {} is not granted to workloads (it allows: {}); add \"workloads\" to its allow list",
                    level.name(),
                    level.grantees().join(", ")
                ),
            ));
        }
        let max = p.max_duration_secs.unwrap_or(3600);
        if !(MIN_DURATION_SECS..=level.max_duration_secs()).contains(&max) {
            return Err(Error::invalid(
                "max_duration_secs",
                format!(
                    "max_duration_secs must be between {MIN_DURATION_SECS} and {} (access level {})",
                    level.max_duration_secs(),
                    level.name()
                ),
            ));
        }
        if p.require.len() > MAX_CONDITIONS {
            return Err(Error::invalid(
                "require",
                format!("at most {MAX_CONDITIONS} conditions"),
            ));
        }
        for c in &p.require {
            if c.pattern.is_empty()
                || c.pattern.chars().count() > 256
                || c.pattern.chars().any(char::is_control)
            {
                return Err(Error::invalid(
                    "require",
                    "a pattern is 1 to 256 characters without control characters",
                ));
            }
        }
        if p.attribute_mappings.len() > MAX_MAPPED_TAGS {
            return Err(Error::invalid(
                "attribute_mappings",
                format!(
                    "at most {MAX_MAPPED_TAGS} mappings (AWS allows 50 session tags, rolegate sets 3)"
                ),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for m in &p.attribute_mappings {
            if !is_tag_key(&m.tag) {
                return Err(Error::invalid(
                    "attribute_mappings",
                    format!(
                        "tag {:?} must be 1 to 128 characters of letters, digits, spaces and _.:/=+-@, and not start with aws: or rolegate:",
                        m.tag
                    ),
                ));
            }
            // STS compares tag keys case-insensitively.
            if !seen.insert(m.tag.to_lowercase()) {
                return Err(Error::invalid(
                    "attribute_mappings",
                    format!("tag {:?} is mapped twice", m.tag),
                ));
            }
        }
        let id = uuid::Uuid::new_v4().to_string();
        let rec = WorkloadProfileRecord {
            id: id.clone(),
            org: org.clone(),
            name,
            access_level: level.name().to_owned(),
            max_duration_secs: max,
            require: p.require,
            attribute_mappings: p.attribute_mappings,
            accept_role_session_name: p.accept_role_session_name,
            created_at: self.records.now(),
        };
        let view = self.profile_view(&rec);
        let audit = AuditRecord::new(Action::CreateWorkloadProfile.name())
            .org(org.to_string())
            .target(view.profile_arn.clone())
            .details(serde_json::to_value(&view).unwrap_or_default());
        let key = keyspace::workload_profile(org, &id);
        let idx = keyspace::workload_profile_id(&id);
        self.insert_indexed(caller, org, (&key, &idx), &rec, audit)
            .await?;
        Ok(view)
    }

    pub async fn list_profiles(
        &self,
        caller: &Caller,
        org: &OrgName,
    ) -> Result<Vec<WorkloadProfile>, Error> {
        let prefix = keyspace::workload_profiles_prefix(org);
        self.list_indexed(caller, Action::ListWorkloadProfiles, org, &prefix, |r| {
            self.profile_view(r)
        })
        .await
    }

    pub async fn delete_profile(
        &self,
        caller: &Caller,
        org: &OrgName,
        id: &str,
    ) -> Result<(), Error> {
        let action = Action::DeleteWorkloadProfile;
        self.orgs.load_with(caller, action, org, None).await?;
        let id = Self::id_or_arn(id, "profile")?;
        let key = keyspace::workload_profile(org, &id);
        let idx = keyspace::workload_profile_id(&id);
        let arn = self.arn("profile", &id);
        self.delete_indexed(caller, action, org, (&key, &idx), arn)
            .await
    }
}
