//! The two issuance budgets, spent in one store round trip (ADR 0022): a request the
//! policy admits steps the caller's bucket and the org's together, all or nothing; a
//! request refused before that (an unknown level, another org, an org that does not exist)
//! steps the caller's alone, so a caller hammering a forbidden org is still limited, and
//! nobody can spend an org's budget without being admitted to it.

use super::Credentials;
use crate::error::Error;
use crate::ids::OrgName;
use crate::keyspace;
use crate::policy::Action;
use crate::ports::RateLimit;
use crate::principal::Caller;

/// The config keys of the two budgets: the name a 429 is counted under.
pub const PER_PRINCIPAL: &str = "credentials_per_principal";
pub const PER_ORG: &str = "credentials_per_org";

impl Credentials {
    /// The caller's own bucket: operators and API keys have one; a workload's issuance is
    /// limited per source address before its certificate is verified (`sessions_per_ip`).
    fn caller_bucket(&self, caller: &Caller, action: Action) -> Option<String> {
        (action != Action::CreateWorkloadSession)
            .then(|| keyspace::rate::credentials_per_principal(&caller.principal.actor()))
    }

    /// A request refused before the policy admitted it: one step of the caller's bucket.
    /// A spent bucket turns the refusal into the 429 (the caller is told to slow down, not
    /// what it keeps asking for); a store that cannot step leaves the refusal as it is,
    /// since nothing was done.
    pub(super) async fn refused(&self, caller: &Caller, action: Action, e: Error) -> Error {
        if matches!(e, Error::Store(_)) {
            return e;
        }
        let Some(key) = self.caller_bucket(caller, action) else {
            return e;
        };
        match self.records.rate_step(&key, self.caller_budget).await {
            Ok(d) if !d.allowed => Error::RateLimited {
                limit: PER_PRINCIPAL,
                decision: d,
            },
            Ok(_) => e,
            Err(step) => {
                tracing::warn!(error = %step, "could not step the caller's issuance budget");
                e
            }
        }
    }

    /// A request the policy admitted for `org`: the caller's and the org's budgets in one
    /// all-or-nothing step. The 429 names the budget that refused (the caller's first).
    pub(super) async fn charge(
        &self,
        caller: &Caller,
        action: Action,
        org: &OrgName,
    ) -> Result<(), Error> {
        let org_key = keyspace::rate::credentials_per_org(org.as_str());
        let caller_key = self.caller_bucket(caller, action);
        let mut steps: Vec<(&str, RateLimit)> = Vec::with_capacity(2);
        let mut names = Vec::with_capacity(2);
        if let Some(k) = &caller_key {
            steps.push((k.as_str(), self.caller_budget));
            names.push(PER_PRINCIPAL);
        }
        steps.push((org_key.as_str(), self.org_budget));
        names.push(PER_ORG);
        let decisions = self.records.rate_steps(&steps).await?;
        match names.into_iter().zip(decisions).find(|(_, d)| !d.allowed) {
            None => Ok(()),
            Some((limit, decision)) => Err(Error::RateLimited { limit, decision }),
        }
    }
}
