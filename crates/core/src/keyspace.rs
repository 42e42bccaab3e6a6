//! Every record family rolegate keeps: its prefix, what its values are, whether they are
//! sealed, and what `rekey` does with them. Keys are built here and nowhere else, so the
//! layout of the store can be read in one page, and the vault's rekey rules come from this
//! table instead of naming domain prefixes itself.

use std::marker::PhantomData;

use crate::ids::{OrgName, UserId};
use crate::model::{
    AccessRequestRecord, ApiKeyEntry, AuditEvent, AuditHead, CachedCredentials, CustomerDelivery,
    CustomerLink, JobLease, JobRecord, JobSecret, OidcPending, OperatorRevocation, OrgRecord,
    PendingRevocation, RevocationState, SessionRecord, TokenEntry, TrustAnchorRecord, UserRecord,
    WorkloadProfileRecord,
};
use crate::model::{ChatLink, NotifyCursor, OutboxEntry, SeenAddresses};

/// What `rekey` does with a family's records when they are sealed under an older key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rekey {
    /// Open and seal again under the current key.
    Reseal,
    /// Delete: the data is derived and will be made again (cached credentials: a re-seal
    /// would lose their expiry, and the next request mints new ones).
    Drop,
    /// Leave alone: unsealed markers, or records that expire soon on their own (keep the
    /// old key in the ring that long).
    Skip,
}

/// One record family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// A short name, for errors and the table below.
    pub name: &'static str,
    /// Every key of the family starts with this (the whole key, for singletons).
    pub prefix: &'static str,
    /// What the value is.
    pub value: &'static str,
    /// Whether values pass through the sealing barrier.
    pub sealed: bool,
    pub rekey: Rekey,
}

macro_rules! family {
    ($id:ident, $name:literal, $prefix:literal, $value:literal, $sealed:literal, $rekey:ident) => {
        pub const $id: Family = Family {
            name: $name,
            prefix: $prefix,
            value: $value,
            sealed: $sealed,
            rekey: Rekey::$rekey,
        };
    };
}

family!(
    SYS_PEPPER,
    "pepper",
    "sys/pepper",
    "32 random bytes: the digest pepper",
    true,
    Reseal
);
family!(ORG, "organisation", "org/", "OrgRecord", true, Reseal);
family!(
    OWNER,
    "owner index",
    "owner/",
    "OrgName (owner/<user>/<org>)",
    true,
    Reseal
);
family!(
    API_KEY,
    "API-key index",
    "apikey/",
    "ApiKeyEntry (apikey/<digest>)",
    true,
    Reseal
);
family!(
    EXTERNAL_ID,
    "ExternalId index",
    "extid/",
    "OrgName (extid/<digest>)",
    true,
    Reseal
);
family!(USER, "user", "user/", "UserRecord", true, Reseal);
family!(
    TOKEN,
    "token index",
    "tok/",
    "TokenEntry (tok/<digest>)",
    true,
    Reseal
);
family!(
    AUDIT_HEAD,
    "audit head",
    "audit/head",
    "AuditHead",
    true,
    Reseal
);
family!(
    AUDIT_EVENT,
    "audit event",
    "audit/ev/",
    "AuditEvent (audit/ev/<seq:020>)",
    true,
    Reseal
);
family!(
    AUDIT_ORG,
    "audit org index",
    "audit/org/",
    "() (audit/org/<org>/<seq:020>)",
    true,
    Reseal
);
family!(
    IDEMPOTENCY,
    "idempotency record",
    "idem/",
    "a stored response (idem/<sha256>), TTL",
    true,
    Skip
);
family!(
    NONCE,
    "callback nonce",
    "nonce/",
    "unsealed marker (nonce/<org>/<nonce>), TTL",
    false,
    Skip
);
family!(
    CREDENTIALS,
    "cached credentials",
    "cred/",
    "CachedCredentials (cred/<org>/<digest>), TTL",
    true,
    Drop
);
family!(
    CREDENTIAL_LOCK,
    "credential fill lock",
    "credlock/",
    "unsealed marker (credlock/<digest>), TTL",
    false,
    Skip
);

family!(
    TRUST_ANCHOR,
    "trust anchor",
    "wi/anchor/",
    "TrustAnchorRecord (wi/anchor/<org>/<uuid>)",
    true,
    Reseal
);
family!(
    TRUST_ANCHOR_ID,
    "trust anchor index",
    "wi/anchor-id/",
    "OrgName (wi/anchor-id/<uuid>)",
    true,
    Reseal
);
family!(
    WORKLOAD_PROFILE,
    "workload profile",
    "wi/profile/",
    "WorkloadProfileRecord (wi/profile/<org>/<uuid>)",
    true,
    Reseal
);
family!(
    WORKLOAD_PROFILE_ID,
    "workload profile index",
    "wi/profile-id/",
    "OrgName (wi/profile-id/<uuid>)",
    true,
    Reseal
);
family!(
    SESSION_REPLAY,
    "workload signature replay marker",
    "wi/replay/",
    "unsealed marker (wi/replay/<sha256 of the signature>), TTL",
    false,
    Skip
);

family!(JOB, "job", "job/", "JobRecord (job/<id>)", true, Reseal);
family!(
    JOB_ORG,
    "job org index",
    "jobidx/",
    "() (jobidx/<org>/<id>)",
    true,
    Reseal
);
family!(
    JOB_QUEUE,
    "job queue",
    "jobq/",
    "unsealed marker (jobq/<id>) while a job has not ended",
    false,
    Skip
);
family!(
    JOB_LEASE,
    "job lease",
    "joblease/",
    "JobLease (joblease/<id>), renewed while a worker runs the job",
    true,
    Skip
);
family!(
    JOB_LOCK,
    "job target lock",
    "joblock/",
    "job id (joblock/<org>/<target>) while a job on that target runs",
    true,
    Reseal
);
family!(
    JOB_SECRET,
    "job secret",
    "jobsec/",
    "JobSecret (jobsec/<id>): a private key until read once or purged",
    true,
    Reseal
);

family!(
    PORTAL_SESSION,
    "portal session",
    "psess/",
    "SessionRecord (psess/<digest of the cookie's id>), TTL: the absolute timeout",
    true,
    Reseal
);
family!(
    ACCESS_REQUEST,
    "access request",
    "access/req/",
    "AccessRequestRecord (access/req/<id>): a request and the grant it becomes",
    true,
    Reseal
);
family!(
    PORTAL_OIDC,
    "portal sign-in in flight",
    "poidc/",
    "OidcPending (poidc/<digest of the OIDC state>), TTL 10 minutes",
    true,
    Skip
);
family!(
    ACCESS_OPEN,
    "open access request",
    "access/open/",
    "unsealed marker (access/open/<id>) until the request reaches a final state",
    false,
    Skip
);
family!(
    ACCESS_GRANT,
    "grant index",
    "access/grant/",
    "() (access/grant/<org>/<level>/<user>/<id>) once approved, until it ends",
    true,
    Reseal
);

family!(
    NOTIFY_CURSOR,
    "notification cursor",
    "notify/cursor",
    "NotifyCursor: the last audit seq turned into notifications, and the delivery lease",
    true,
    Reseal
);
family!(
    NOTIFY_OUTBOX,
    "notification outbox",
    "notify/out/",
    "OutboxEntry (notify/out/<seq:020>-<n>.<sink>) until delivered",
    true,
    Reseal
);
family!(
    NOTIFY_DEAD,
    "notification dead letter",
    "notify/dead/",
    "OutboxEntry (notify/dead/<seq:020>-<n>.<sink>) given up after the last retry",
    true,
    Reseal
);
family!(
    NOTIFY_SEEN_IP,
    "seen source addresses",
    "notify/ip/",
    "SeenAddresses (notify/ip/<digest of the actor>): the last 16 credential sources",
    true,
    Reseal
);
family!(
    CHAT_LINK,
    "chat link",
    "chatlink/",
    "ChatLink (chatlink/slack/<Slack user id>): the operator a chat user acts as",
    true,
    Reseal
);
family!(
    CHAT_REPLAY,
    "chat interaction marker",
    "chatreplay/",
    "unsealed marker (chatreplay/<digest>), TTL 15 minutes: a chat action already handled",
    false,
    Skip
);

family!(
    ACCESS_REVOCATION,
    "pending revocation",
    "access/revq/",
    "PendingRevocation (access/revq/<org>/<id>) until written into the customer's role",
    true,
    Reseal
);
family!(
    ACCESS_REVOCATION_OPERATOR,
    "pending operator revocation",
    "access/revu/",
    "OperatorRevocation (access/revu/<id>) until the sweeper has queued it for every org the operator used",
    true,
    Reseal
);
family!(
    ACCESS_REVOCATION_STATE,
    "revocation policy state",
    "access/revs/",
    "RevocationState (access/revs/<org>): the org's rolegate-revocations policy, its next cleanup, its last failure",
    true,
    Reseal
);
family!(
    ACCESS_REVOCATION_LOCK,
    "revocation writer lock",
    "access/revlock/",
    "unsealed marker (access/revlock/<org>), TTL 60 s: one replica writes an org's policy at a time",
    false,
    Skip
);

family!(
    ACCESS_LINK,
    "customer approval link",
    "access/link/",
    "CustomerLink (access/link/<digest of the link's token>), TTL: the request's",
    true,
    Reseal
);
family!(
    ACCESS_DELIVERY,
    "customer approval delivery",
    "access/deliver/",
    "CustomerDelivery (access/deliver/<id>): a signed POST still owed to a customer approver",
    true,
    Reseal
);

/// Every family kept in the key-value store, in the order of the table above.
pub const FAMILIES: &[Family] = &[
    SYS_PEPPER,
    ORG,
    OWNER,
    API_KEY,
    EXTERNAL_ID,
    USER,
    TOKEN,
    AUDIT_HEAD,
    AUDIT_EVENT,
    AUDIT_ORG,
    IDEMPOTENCY,
    NONCE,
    CREDENTIALS,
    CREDENTIAL_LOCK,
    TRUST_ANCHOR,
    TRUST_ANCHOR_ID,
    WORKLOAD_PROFILE,
    WORKLOAD_PROFILE_ID,
    SESSION_REPLAY,
    JOB,
    JOB_ORG,
    JOB_QUEUE,
    JOB_LEASE,
    JOB_LOCK,
    JOB_SECRET,
    PORTAL_SESSION,
    PORTAL_OIDC,
    ACCESS_REQUEST,
    ACCESS_OPEN,
    ACCESS_GRANT,
    NOTIFY_CURSOR,
    NOTIFY_OUTBOX,
    NOTIFY_DEAD,
    NOTIFY_SEEN_IP,
    CHAT_LINK,
    CHAT_REPLAY,
    ACCESS_REVOCATION,
    ACCESS_REVOCATION_OPERATOR,
    ACCESS_REVOCATION_STATE,
    ACCESS_REVOCATION_LOCK,
    ACCESS_LINK,
    ACCESS_DELIVERY,
];

/// The family `key` belongs to (the longest matching prefix), if any.
#[must_use]
pub fn family_of(key: &str) -> Option<&'static Family> {
    FAMILIES
        .iter()
        .filter(|f| key.starts_with(f.prefix))
        .max_by_key(|f| f.prefix.len())
}

/// A storage key whose value has type `T`.
#[derive(Debug)]
pub struct Key<T> {
    raw: String,
    family: &'static Family,
    _value: PhantomData<fn() -> T>,
}

impl<T> Clone for Key<T> {
    fn clone(&self) -> Self {
        Self {
            raw: self.raw.clone(),
            family: self.family,
            _value: PhantomData,
        }
    }
}

impl<T> Key<T> {
    fn new(family: &'static Family, rest: &str) -> Self {
        Self {
            raw: format!("{}{rest}", family.prefix),
            family,
            _value: PhantomData,
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    #[must_use]
    pub fn family(&self) -> &'static Family {
        self.family
    }
}

impl<T> std::fmt::Display for Key<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}

#[must_use]
pub fn pepper() -> Key<Vec<u8>> {
    Key::new(&SYS_PEPPER, "")
}
#[must_use]
pub fn org(name: &OrgName) -> Key<OrgRecord> {
    Key::new(&ORG, name.as_str())
}
#[must_use]
pub fn owner(owner: &UserId, name: &OrgName) -> Key<OrgName> {
    Key::new(&OWNER, &format!("{owner}/{name}"))
}
/// The prefix of every org `owner` owns.
#[must_use]
pub fn owner_prefix(owner: &UserId) -> String {
    format!("{}{owner}/", OWNER.prefix)
}
#[must_use]
pub fn api_key(digest_hex: &str) -> Key<ApiKeyEntry> {
    Key::new(&API_KEY, digest_hex)
}
#[must_use]
pub fn external_id(digest_hex: &str) -> Key<OrgName> {
    Key::new(&EXTERNAL_ID, digest_hex)
}
#[must_use]
pub fn user(id: &UserId) -> Key<UserRecord> {
    Key::new(&USER, id.as_str())
}
#[must_use]
pub fn token(digest_hex: &str) -> Key<TokenEntry> {
    Key::new(&TOKEN, digest_hex)
}
#[must_use]
pub fn audit_head() -> Key<AuditHead> {
    Key::new(&AUDIT_HEAD, "")
}
#[must_use]
pub fn audit_event(seq: u64) -> Key<AuditEvent> {
    Key::new(&AUDIT_EVENT, &format!("{seq:020}"))
}
#[must_use]
pub fn audit_org(org: &str, seq: u64) -> Key<()> {
    Key::new(&AUDIT_ORG, &format!("{org}/{seq:020}"))
}
/// The prefix of `org`'s audit index.
#[must_use]
pub fn audit_org_prefix(org: &str) -> String {
    format!("{}{org}/", AUDIT_ORG.prefix)
}
/// An idempotency record; `digest` is the SHA-256 of the scoped client key.
#[must_use]
pub fn idempotency(digest_hex: &str) -> String {
    format!("{}{digest_hex}", IDEMPOTENCY.prefix)
}
#[must_use]
pub fn nonce(org: &OrgName, nonce: &str) -> String {
    format!("{}{org}/{nonce}", NONCE.prefix)
}
#[must_use]
pub fn credentials(org: &OrgName, digest_hex: &str) -> Key<CachedCredentials> {
    Key::new(&CREDENTIALS, &format!("{org}/{digest_hex}"))
}
/// The prefix of every cached credential of `org`.
#[must_use]
pub fn credentials_prefix(org: &OrgName) -> String {
    format!("{}{org}/", CREDENTIALS.prefix)
}
#[must_use]
pub fn credential_lock(digest_hex: &str) -> String {
    format!("{}{digest_hex}", CREDENTIAL_LOCK.prefix)
}

#[must_use]
pub fn trust_anchor(org: &OrgName, id: &str) -> Key<TrustAnchorRecord> {
    Key::new(&TRUST_ANCHOR, &format!("{org}/{id}"))
}
#[must_use]
pub fn trust_anchors_prefix(org: &OrgName) -> String {
    format!("{}{org}/", TRUST_ANCHOR.prefix)
}
#[must_use]
pub fn trust_anchor_id(id: &str) -> Key<OrgName> {
    Key::new(&TRUST_ANCHOR_ID, id)
}
#[must_use]
pub fn workload_profile(org: &OrgName, id: &str) -> Key<WorkloadProfileRecord> {
    Key::new(&WORKLOAD_PROFILE, &format!("{org}/{id}"))
}
#[must_use]
pub fn workload_profiles_prefix(org: &OrgName) -> String {
    format!("{}{org}/", WORKLOAD_PROFILE.prefix)
}
#[must_use]
pub fn workload_profile_id(id: &str) -> Key<OrgName> {
    Key::new(&WORKLOAD_PROFILE_ID, id)
}
/// A used request signature; `digest` is the SHA-256 of its bytes.
#[must_use]
pub fn session_replay(digest_hex: &str) -> String {
    format!("{}{digest_hex}", SESSION_REPLAY.prefix)
}

#[must_use]
pub fn job(id: &str) -> Key<JobRecord> {
    Key::new(&JOB, id)
}
#[must_use]
pub fn job_org(org: &OrgName, id: &str) -> Key<()> {
    Key::new(&JOB_ORG, &format!("{org}/{id}"))
}
/// The prefix of `org`'s job index.
#[must_use]
pub fn job_org_prefix(org: &OrgName) -> String {
    format!("{}{org}/", JOB_ORG.prefix)
}
#[must_use]
pub fn job_queue(id: &str) -> String {
    format!("{}{id}", JOB_QUEUE.prefix)
}
#[must_use]
pub fn job_lease(id: &str) -> Key<JobLease> {
    Key::new(&JOB_LEASE, id)
}
#[must_use]
pub fn job_lock(org: &OrgName, target: &str) -> Key<String> {
    Key::new(&JOB_LOCK, &format!("{org}/{target}"))
}
#[must_use]
pub fn job_secret(id: &str) -> Key<JobSecret> {
    Key::new(&JOB_SECRET, id)
}

/// A portal session; `digest` is the keyed digest of the cookie's session id.
#[must_use]
pub fn portal_session(digest_hex: &str) -> Key<SessionRecord> {
    Key::new(&PORTAL_SESSION, digest_hex)
}

/// An OIDC sign-in in flight; `digest` is the keyed digest of its `state`.
#[must_use]
pub fn portal_oidc(digest_hex: &str) -> Key<OidcPending> {
    Key::new(&PORTAL_OIDC, digest_hex)
}

#[must_use]
pub fn access_request(id: &str) -> Key<AccessRequestRecord> {
    Key::new(&ACCESS_REQUEST, id)
}
#[must_use]
pub fn access_open(id: &str) -> String {
    format!("{}{id}", ACCESS_OPEN.prefix)
}
#[must_use]
pub fn access_grant(org: &OrgName, level: &str, user: &str, id: &str) -> Key<()> {
    Key::new(&ACCESS_GRANT, &format!("{org}/{level}/{user}/{id}"))
}
/// The prefix of `user`'s grants for `level` on `org`.
#[must_use]
pub fn access_grant_prefix(org: &OrgName, level: &str, user: &str) -> String {
    format!("{}{org}/{level}/{user}/", ACCESS_GRANT.prefix)
}

#[must_use]
pub fn notify_cursor() -> Key<NotifyCursor> {
    Key::new(&NOTIFY_CURSOR, "")
}
/// An outbox entry; `entry_id` is `<seq:020>-<n>.<sink>`, so entries list in log order.
#[must_use]
pub fn notify_outbox(entry_id: &str) -> Key<OutboxEntry> {
    Key::new(&NOTIFY_OUTBOX, entry_id)
}
#[must_use]
pub fn notify_dead(entry_id: &str) -> Key<OutboxEntry> {
    Key::new(&NOTIFY_DEAD, entry_id)
}
#[must_use]
pub fn notify_seen_ip(actor_digest: &str) -> Key<SeenAddresses> {
    Key::new(&NOTIFY_SEEN_IP, actor_digest)
}
#[must_use]
pub fn chat_link_slack(slack_user_id: &str) -> Key<ChatLink> {
    Key::new(&CHAT_LINK, &format!("slack/{slack_user_id}"))
}
#[must_use]
pub fn chat_replay(digest_hex: &str) -> String {
    format!("{}{digest_hex}", CHAT_REPLAY.prefix)
}

/// `access/revq/<org>/<id>`: a revocation to write into the org's role.
#[must_use]
pub fn access_revocation(org: &OrgName, id: &str) -> Key<PendingRevocation> {
    Key::new(&ACCESS_REVOCATION, &format!("{org}/{id}"))
}

/// `access/revq/<org>/`.
#[must_use]
pub fn access_revocation_prefix(org: &OrgName) -> String {
    format!("{}{org}/", ACCESS_REVOCATION.prefix)
}

/// `access/revu/<id>`: a disabled operator's revocation, not yet queued for every org.
#[must_use]
pub fn access_operator_revocation(id: &str) -> Key<OperatorRevocation> {
    Key::new(&ACCESS_REVOCATION_OPERATOR, id)
}

/// `access/revs/<org>`.
#[must_use]
pub fn access_revocation_state(org: &OrgName) -> Key<RevocationState> {
    Key::new(&ACCESS_REVOCATION_STATE, org.as_str())
}

/// `access/revlock/<org>`.
#[must_use]
pub fn access_revocation_lock(org: &OrgName) -> String {
    format!("{}{org}", ACCESS_REVOCATION_LOCK.prefix)
}
/// A customer approval link, by the peppered digest of its token.
#[must_use]
pub fn access_link(digest: &str) -> Key<CustomerLink> {
    Key::new(&ACCESS_LINK, digest)
}
/// A delivery owed to a customer approver.
#[must_use]
pub fn access_delivery(id: &str) -> Key<CustomerDelivery> {
    Key::new(&ACCESS_DELIVERY, id)
}

/// Rate-limit buckets: a namespace of their own in every engine (never listed, never
/// sealed: a bucket holds only a time).
pub mod rate {
    use std::net::{IpAddr, Ipv6Addr};

    /// The source a per-address limit counts against: an IPv4 address as it is, an IPv6
    /// address as its /64 (one subscriber usually holds a whole /64, so counting per exact
    /// address would give it 2^64 budgets). An IPv4-mapped IPv6 address counts as its IPv4
    /// address; anything that is not an address (`unknown`) is kept as it is.
    #[must_use]
    pub fn source(ip: &str) -> String {
        match ip.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => v4.to_string(),
            Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = v6.segments();
                    let prefix = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                    format!("{prefix}/64")
                }
            },
            Err(_) => ip.to_owned(),
        }
    }

    /// Failed authentications from `ip` (counted per [`source`]).
    #[must_use]
    pub fn auth_failures(ip: &str) -> String {
        format!("rl/authfail/{}", source(ip))
    }
    #[must_use]
    pub fn credentials_per_principal(actor: &str) -> String {
        format!("rl/creds-principal/{actor}")
    }
    #[must_use]
    pub fn credentials_per_org(org: &str) -> String {
        format!("rl/creds-org/{org}")
    }
    #[must_use]
    pub fn validate_per_principal(actor: &str) -> String {
        format!("rl/validate-principal/{actor}")
    }
    #[must_use]
    pub fn jobs_per_principal(actor: &str) -> String {
        format!("rl/jobs-principal/{actor}")
    }
    /// Callbacks from `ip` (counted per [`source`]).
    #[must_use]
    pub fn callback_per_ip(ip: &str) -> String {
        format!("rl/callback-ip/{}", source(ip))
    }
    /// Workload sessions from `ip` (counted per [`source`]).
    #[must_use]
    pub fn sessions_per_ip(ip: &str) -> String {
        format!("rl/sessions-ip/{}", source(ip))
    }
    /// Customer approval links opened or used from `ip` (counted per [`source`]).
    #[must_use]
    pub fn customer_links_per_ip(ip: &str) -> String {
        format!("rl/custlink-ip/{}", source(ip))
    }
    #[must_use]
    pub fn callback_per_org(org: &str) -> String {
        format!("rl/callback-org/{org}")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_key_builder_lands_in_its_family() {
        let org_name = OrgName::parse("acme").unwrap();
        let uid = UserId::parse("alice").unwrap();
        for (key, family) in [
            (org(&org_name).to_string(), &ORG),
            (owner(&uid, &org_name).to_string(), &OWNER),
            (api_key("ab").to_string(), &API_KEY),
            (external_id("ab").to_string(), &EXTERNAL_ID),
            (user(&uid).to_string(), &USER),
            (token("ab").to_string(), &TOKEN),
            (audit_head().to_string(), &AUDIT_HEAD),
            (audit_event(7).to_string(), &AUDIT_EVENT),
            (audit_org("acme", 7).to_string(), &AUDIT_ORG),
            (idempotency("ab"), &IDEMPOTENCY),
            (nonce(&org_name, "n"), &NONCE),
            (credentials(&org_name, "ab").to_string(), &CREDENTIALS),
            (credential_lock("ab"), &CREDENTIAL_LOCK),
            (pepper().to_string(), &SYS_PEPPER),
            (trust_anchor(&org_name, "u").to_string(), &TRUST_ANCHOR),
            (trust_anchor_id("u").to_string(), &TRUST_ANCHOR_ID),
            (
                workload_profile(&org_name, "u").to_string(),
                &WORKLOAD_PROFILE,
            ),
            (workload_profile_id("u").to_string(), &WORKLOAD_PROFILE_ID),
            (session_replay("ab"), &SESSION_REPLAY),
            (job("j1").to_string(), &JOB),
            (job_org(&org_name, "j1").to_string(), &JOB_ORG),
            (job_queue("j1"), &JOB_QUEUE),
            (job_lease("j1").to_string(), &JOB_LEASE),
            (job_lock(&org_name, "keypair:k").to_string(), &JOB_LOCK),
            (job_secret("j1").to_string(), &JOB_SECRET),
            (portal_session("ab").to_string(), &PORTAL_SESSION),
            (portal_oidc("ab").to_string(), &PORTAL_OIDC),
            (access_request("a1").to_string(), &ACCESS_REQUEST),
            (access_open("a1"), &ACCESS_OPEN),
            (
                access_grant(&org_name, "operator", "alice", "a1").to_string(),
                &ACCESS_GRANT,
            ),
            (notify_cursor().to_string(), &NOTIFY_CURSOR),
            (notify_outbox("1-0.slack").to_string(), &NOTIFY_OUTBOX),
            (notify_dead("1-0.slack").to_string(), &NOTIFY_DEAD),
            (notify_seen_ip("ab").to_string(), &NOTIFY_SEEN_IP),
            (chat_link_slack("U1").to_string(), &CHAT_LINK),
            (chat_replay("ab"), &CHAT_REPLAY),
            (
                access_revocation(&org_name, "r1").to_string(),
                &ACCESS_REVOCATION,
            ),
            (
                access_operator_revocation("r1").to_string(),
                &ACCESS_REVOCATION_OPERATOR,
            ),
            (
                access_revocation_state(&org_name).to_string(),
                &ACCESS_REVOCATION_STATE,
            ),
            (access_revocation_lock(&org_name), &ACCESS_REVOCATION_LOCK),
            (access_link("ab").to_string(), &ACCESS_LINK),
            (access_delivery("d1").to_string(), &ACCESS_DELIVERY),
        ] {
            assert_eq!(family_of(&key), Some(family), "{key}");
        }
    }

    #[test]
    fn per_address_limits_count_ipv6_per_64() {
        for (a, b) in [
            ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"),
            ("2001:DB8:1:2::1", "2001:db8:1:2::2"),
            ("::ffff:192.0.2.1", "192.0.2.1"),
        ] {
            assert_eq!(rate::auth_failures(a), rate::auth_failures(b), "{a} {b}");
            assert_eq!(
                rate::callback_per_ip(a),
                rate::callback_per_ip(b),
                "{a} {b}"
            );
        }
        for (a, b) in [
            ("2001:db8:1:2::1", "2001:db8:1:3::1"),
            ("192.0.2.1", "192.0.2.2"),
        ] {
            assert_ne!(rate::auth_failures(a), rate::auth_failures(b), "{a} {b}");
            assert_ne!(
                rate::callback_per_ip(a),
                rate::callback_per_ip(b),
                "{a} {b}"
            );
        }
        assert_eq!(rate::source("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(rate::source("192.0.2.1"), "192.0.2.1");
        assert_eq!(rate::source("unknown"), "unknown");
    }

    #[test]
    fn prefixes_do_not_shadow_each_other() {
        for a in FAMILIES {
            for b in FAMILIES {
                if a != b {
                    assert!(
                        !(a.prefix.starts_with(b.prefix) && a.rekey != b.rekey),
                        "{} inside {} with other rekey rules",
                        a.name,
                        b.name
                    );
                }
            }
        }
        assert_eq!(family_of("unknown/x"), None);
    }
}
