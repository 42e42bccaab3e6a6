//! Workload identity records: an org's trust anchors (CA bundles, with their CRL) and its
//! workload profiles (what a certificate must say, and what it gets).

use serde::{Deserialize, Serialize};

use crate::ids::OrgName;

/// A CA bundle an org trusts to name its workloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustAnchorRecord {
    /// A UUID; the ARN is made from it.
    pub id: String,
    pub org: OrgName,
    pub name: String,
    /// The CA certificates, DER, base64 (standard alphabet).
    pub certificates: Vec<String>,
    /// The uploaded CRL, if any: once there is one, a stale one fails the anchor closed.
    pub crl: Option<StoredCrl>,
    pub created_at: String,
}

/// A CRL as uploaded, with the dates rolegate judges it by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCrl {
    /// DER, base64.
    pub der: String,
    /// Unix seconds.
    pub this_update: i64,
    /// Unix seconds; `None` when the CRL names no next update (then it never goes stale).
    pub next_update: Option<i64>,
    pub revoked: usize,
    pub uploaded_at: String,
}

/// A certificate field a profile can match on or map to a session tag.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertField {
    SubjectCn,
    SubjectOu,
    SubjectO,
    SanDns,
    SanUri,
    SanEmail,
}

/// `field` must match `pattern` (exact, or with `*` standing for any run of characters).
/// A field with several values (OUs, SANs) matches when any value does.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    pub field: CertField,
    pub pattern: String,
}

/// The first value of `field` becomes the session tag `tag`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeMapping {
    pub field: CertField,
    pub tag: String,
}

/// What a certificate must say to get credentials under this profile, and what it gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadProfileRecord {
    pub id: String,
    pub org: OrgName,
    pub name: String,
    pub access_level: String,
    pub max_duration_secs: u32,
    /// Every condition must hold.
    pub require: Vec<Condition>,
    pub attribute_mappings: Vec<AttributeMapping>,
    pub accept_role_session_name: bool,
    pub created_at: String,
}
