//! Listing and reading requests and grants. Admins see every request; an operator sees its
//! own and those it may approve (the policy's `Scoped`), each in its state as of now.

use super::{Access, may_approve, plausible_id};
use crate::error::Error;
use crate::ids::OrgName;
use crate::keyspace;
use crate::model::{AccessRequestRecord, AccessState};
use crate::policy::{Action, Facts};
use crate::principal::Caller;

/// What a listing keeps.
#[derive(Debug, Clone, Default)]
pub struct AccessFilter {
    /// Only requests in one of these states (as of now).
    pub states: Vec<AccessState>,
    pub org: Option<OrgName>,
    /// Only the caller's own requests.
    pub mine: bool,
    /// Only requests that became grants (approved at some point).
    pub grants_only: bool,
    /// Only break-glass grants nobody has reviewed yet.
    pub needs_review: bool,
    /// The last id of the previous page.
    pub cursor: Option<String>,
    pub limit: usize,
}

/// One page of requests, oldest first.
#[derive(Debug, Clone)]
pub struct AccessPage {
    pub requests: Vec<AccessRequestRecord>,
    pub next_cursor: Option<String>,
}

impl Access {
    /// Whether `caller` may see `rec`.
    fn visible(&self, caller: &Caller, rec: &AccessRequestRecord) -> bool {
        caller.principal.is_admin()
            || caller.principal.actor() == format!("user:{}", rec.requested_by)
            || may_approve(caller, self.rule_of(rec).as_ref())
    }

    /// A page of the requests `caller` may see that pass `filter`.
    pub async fn list(
        &self,
        caller: &Caller,
        action: Action,
        filter: &AccessFilter,
    ) -> Result<AccessPage, Error> {
        self.records
            .authorize(caller, action, &Facts::default())
            .await?;
        if let Some(c) = &filter.cursor
            && !plausible_id(c)
        {
            return Err(Error::invalid(
                "cursor",
                "cursor is not one this server gave",
            ));
        }
        let limit = filter.limit.clamp(1, 500);
        let now = self.now();
        let me = caller.principal.actor();
        let prefix = keyspace::ACCESS_REQUEST.prefix;
        let store = self.records.vault().store();
        let mut after = filter.cursor.as_ref().map(|c| format!("{prefix}{c}"));
        let mut out = Vec::new();
        loop {
            let page = store.list(prefix, after.as_deref(), 200).await?;
            for (key, raw) in &page.items {
                after = Some(key.clone());
                let rec: AccessRequestRecord = self.records.vault().open(key, raw)?;
                let rec = rec.view_at(now);
                let keep = self.visible(caller, &rec)
                    && (filter.states.is_empty() || filter.states.contains(&rec.state))
                    && filter.org.as_ref().is_none_or(|o| *o == rec.org)
                    && (!filter.mine || me == format!("user:{}", rec.requested_by))
                    && (!filter.grants_only || rec.grant_end_unix.is_some())
                    && (!filter.needs_review || (rec.review_required && rec.review.is_none()));
                if keep {
                    out.push(rec);
                    if out.len() == limit {
                        let next = key.strip_prefix(prefix).map(str::to_owned);
                        return Ok(AccessPage {
                            requests: out,
                            next_cursor: next,
                        });
                    }
                }
            }
            if page.next.is_none() {
                return Ok(AccessPage {
                    requests: out,
                    next_cursor: None,
                });
            }
        }
    }

    /// One request, if `caller` may see it (else 404: nothing about it leaks).
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<AccessRequestRecord, Error> {
        self.records
            .authorize(caller, Action::ReadAccessRequest, &Facts::default())
            .await?;
        let not_found = Error::NotFound {
            what: keyspace::ACCESS_REQUEST.name,
        };
        if !plausible_id(id) {
            return Err(not_found);
        }
        let rec = self
            .records
            .get(&keyspace::access_request(id))
            .await?
            .ok_or(Error::NotFound {
                what: keyspace::ACCESS_REQUEST.name,
            })?;
        if !self.visible(caller, &rec.value) {
            return Err(not_found);
        }
        Ok(rec.value.view_at(self.now()))
    }
}
