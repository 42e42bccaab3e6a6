//! Credential vending. Cached credentials live under `cred/<org>/…` (sealed), so that
//! offboarding, a binding reset or an API-key rotation can drop an org's cache at once.

use std::sync::Arc;

use crate::ports::RateLimit;

use crate::levels::CredentialPolicy;
use crate::orgs::Orgs;
use crate::ports::aws::{Federation, Sts};
use crate::records::Records;

/// `bind_source_ip`: the session policy's deny outside the allowed blocks.
pub mod bind;
/// The caller's and the org's issuance budgets, stepped together (ADR 0022).
pub mod budget;
/// Console sign-in URLs through the federation endpoint.
pub mod console;
/// The issuance path: cache, single-flight, STS, audit.
pub mod issue;
/// Session names, SourceIdentity and session tags.
pub mod session;
/// Checking submitted credentials with GetCallerIdentity.
pub mod validate;

pub use crate::levels::{AccessLevel, LevelError};
pub use console::{ConsoleLogin, ConsoleSettings};
pub use issue::{Flights, IssueCommand, Issued, WorkloadIssue};
pub use validate::{ValidateCommand, Validation};

/// The credentials area.
#[derive(Debug, Clone)]
pub struct Credentials {
    records: Records,
    orgs: Orgs,
    sts: Arc<dyn Sts>,
    federation: Arc<dyn Federation>,
    levels: Arc<CredentialPolicy>,
    console: ConsoleSettings,
    /// Issuances per org, spent only by callers the policy admitted for that org.
    org_budget: RateLimit,
    /// Issuances per caller (operators and API keys), spent with the org's budget in one
    /// step, or alone when the request is refused before that (ADR 0022).
    caller_budget: RateLimit,
    /// In-process single-flight for issuance.
    flights: Arc<Flights>,
}

impl Credentials {
    #[must_use]
    pub fn new(
        orgs: Orgs,
        sts: Arc<dyn Sts>,
        federation: Arc<dyn Federation>,
        levels: Arc<CredentialPolicy>,
        console: ConsoleSettings,
        org_budget: RateLimit,
    ) -> Self {
        Self {
            records: orgs.records().clone(),
            orgs,
            sts,
            federation,
            levels,
            console,
            org_budget,
            caller_budget: RateLimit {
                burst: 120,
                period: std::time::Duration::from_secs(60),
            },
            flights: Arc::default(),
        }
    }

    /// Sets the per-caller issuance budget (`rate_limits.credentials_per_principal`).
    #[must_use]
    pub fn with_caller_budget(mut self, caller_budget: RateLimit) -> Self {
        self.caller_budget = caller_budget;
        self
    }

    /// The configured access levels.
    #[must_use]
    pub fn levels(&self) -> &CredentialPolicy {
        &self.levels
    }
}
