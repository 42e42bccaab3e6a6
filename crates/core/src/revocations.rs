//! Queuing `revoke_sessions` denies (ADR 0024) from every area that revokes something: a
//! grant (access), an operator (users) and an API key (orgs). Each queues a sealed marker
//! **in the revocation's own transaction**, so the deny cannot be lost if the process dies
//! between them; the access sweeper writes it into the customer's role later.
//!
//! Below the areas: it knows records, the keyspace and the levels, and no area, so users
//! and orgs reach it without importing access (which imports them).

use std::collections::BTreeSet;

use crate::error::Error;
use crate::ids::{OrgName, UserId};
use crate::keyspace;
use crate::levels::CredentialPolicy;
use crate::model::{OperatorRevocation, PendingRevocation, RevokedBy};
use crate::ports::Txn;
use crate::principal::Principal;
use crate::records::Records;

/// Margin added to every statement's expiry, for clock skew between rolegate and AWS.
pub const EXPIRY_MARGIN_SECS: i64 = 300;
/// The longest session STS hands out (12 hours): the bound when no level says less.
pub const MAX_SESSION_SECS: i64 = 12 * 3600;
/// A job's sessions: 900 s each.
const JOB_SESSION_SECS: i64 = 900;
/// How long after an operator's disable its scope is looked up again: an issuance that
/// authenticated before the disable commits its audit event after STS answers, and the
/// deny's time is rounded up to the minute, so one in flight is in the history by then.
pub const SETTLE_SECS: i64 = 120;

/// Which orgs get deny statements written into their role (off by default: the customer's
/// stack must have been created with the template's `AllowRevocations` option).
#[derive(Debug, Clone, Default)]
pub struct RevokeSessionsSettings {
    /// Every org.
    pub all_orgs: bool,
    /// These orgs (when not `all_orgs`).
    pub orgs: BTreeSet<OrgName>,
}

impl RevokeSessionsSettings {
    #[must_use]
    pub fn applies(&self, org: &OrgName) -> bool {
        self.all_orgs || self.orgs.contains(org)
    }

    /// Whether any org has it.
    #[must_use]
    pub fn any(&self) -> bool {
        self.all_orgs || !self.orgs.is_empty()
    }
}

/// The longest a session any level (or a job) hands out can live, in seconds.
#[must_use]
pub fn longest_session_secs(levels: &CredentialPolicy) -> i64 {
    levels
        .levels()
        .map(|l| i64::from(l.max_duration_secs()))
        .max()
        .unwrap_or(MAX_SESSION_SECS)
        .max(JOB_SESSION_SECS)
}

/// Adds `marker`'s sealed put to `txn` under a fresh id (`access/revq/<org>/<id>`), to be
/// committed with the revocation itself.
pub fn queue(records: &Records, txn: Txn, marker: &PendingRevocation) -> Result<Txn, Error> {
    records.put(
        txn,
        &keyspace::access_revocation(&marker.org, &marker_id(records)),
        marker,
    )
}

/// `<12 hex digits of milliseconds><16 random hex digits>`: sorted by time, never reused.
fn marker_id(records: &Records) -> String {
    format!(
        "{:012x}{}",
        records.clock().now_ms().max(0),
        rolegate_crypto::short_id()
    )
}

/// What the operator and API-key revocations need: the setting and how long their
/// sessions can live. Built once at wiring (`services`) and shared by users and orgs.
#[derive(Debug, Clone)]
pub struct RevocationQueue {
    settings: RevokeSessionsSettings,
    /// The longest session a principal could have been handed, in seconds.
    longest_secs: i64,
}

impl Default for RevocationQueue {
    fn default() -> Self {
        Self {
            settings: RevokeSessionsSettings::default(),
            longest_secs: MAX_SESSION_SECS,
        }
    }
}

impl RevocationQueue {
    #[must_use]
    pub fn new(settings: RevokeSessionsSettings, levels: &CredentialPolicy) -> Self {
        Self {
            settings,
            longest_secs: longest_session_secs(levels),
        }
    }

    /// When a deny written at `now` can go: the last session it can affect has expired.
    fn expires(&self, now: i64) -> i64 {
        now + self.longest_secs + EXPIRY_MARGIN_SECS
    }

    /// Queues the deny of the sessions API key `key_id` of `org` obtained before `now`,
    /// when `revoke_sessions` applies to `org`. `Ok(None)`: nothing queued.
    pub fn queue_api_key(
        &self,
        records: &Records,
        txn: Txn,
        org: &OrgName,
        key_id: &str,
        now: i64,
    ) -> Result<(Txn, Option<PendingRevocation>), Error> {
        if !self.settings.applies(org) {
            return Ok((txn, None));
        }
        let marker = PendingRevocation {
            org: org.clone(),
            by: RevokedBy::SourceIdentity,
            value: crate::credentials::session::source_identity(&Principal::OrgKey {
                org: org.clone(),
                key_id: key_id.to_owned(),
            }),
            before_unix: now,
            expires_unix: self.expires(now),
        };
        Ok((queue(records, txn, &marker)?, Some(marker)))
    }

    /// Queues the deny of operator `user`'s sessions obtained before `now`, for the orgs
    /// the access sweeper will find it used (`access/revu/<id>`), when `revoke_sessions`
    /// applies to any org. `Ok(None)`: nothing queued.
    pub fn queue_operator(
        &self,
        records: &Records,
        txn: Txn,
        user: &UserId,
        now: i64,
    ) -> Result<(Txn, Option<OperatorRevocation>), Error> {
        if !self.settings.any() {
            return Ok((txn, None));
        }
        let marker = OperatorRevocation {
            user_id: user.clone(),
            source_identity: crate::credentials::session::source_identity(&Principal::Operator {
                user_id: user.clone(),
                role: crate::ids::Role::Operator,
            }),
            before_unix: now,
            expires_unix: self.expires(now),
            settle_unix: now + SETTLE_SECS,
            queued: BTreeSet::new(),
        };
        let key = keyspace::access_operator_revocation(&marker_id(records));
        Ok((records.put(txn, &key, &marker)?, Some(marker)))
    }
}
