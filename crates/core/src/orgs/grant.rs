//! The grant a caller holds for a level on an org: looked up whenever a level that needs
//! approval is used, so that the one policy decides with it (credentials, console sign-in,
//! jobs all pass through [`Orgs::load_granted`](super::Orgs::load_granted)).

use crate::error::Error;
use crate::ids::{OrgName, UserId};
use crate::keyspace;
use crate::model::{AccessRequestRecord, AccessState};
use crate::policy::GrantFact;
use crate::records::Records;
use crate::vault::Versioned;

/// `user`'s running grant for `level` on `org` with the latest end, read from the store
/// (so a revocation on any replica is seen by the next request). `now` is unix seconds.
pub async fn active_grant(
    records: &Records,
    org: &OrgName,
    level: &str,
    user: &UserId,
    now: i64,
) -> Result<Option<Versioned<AccessRequestRecord>>, Error> {
    let prefix = keyspace::access_grant_prefix(org, level, user.as_str());
    let page = records.vault().store().list(&prefix, None, 100).await?;
    let mut best: Option<Versioned<AccessRequestRecord>> = None;
    for (key, _) in page.items {
        let Some(id) = key.strip_prefix(&prefix) else {
            continue;
        };
        let Some(rec) = records.get(&keyspace::access_request(id)).await? else {
            continue;
        };
        let ok = rec.value.state_at(now) == AccessState::Active
            && rec.value.org == *org
            && rec.value.access_level == level
            && rec.value.requested_by == user.as_str();
        if ok
            && best
                .as_ref()
                .is_none_or(|b| end(&b.value) < end(&rec.value))
        {
            best = Some(rec);
        }
    }
    Ok(best)
}

fn end(r: &AccessRequestRecord) -> i64 {
    r.grant_end_unix.unwrap_or(i64::MIN)
}

/// What the policy is shown of `rec` at `now`.
#[must_use]
pub fn fact(rec: &AccessRequestRecord, now: i64) -> Option<GrantFact<'_>> {
    Some(GrantFact {
        id: &rec.id,
        holder: &rec.requested_by,
        org: &rec.org,
        level: &rec.access_level,
        start: rec.grant_start_unix?,
        end: rec.grant_end_unix?,
        now,
    })
}
