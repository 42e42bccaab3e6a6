//! rolegate's domain: validated identifiers, models, services, and the ports (traits) that
//! adapters implement. This crate must not depend on HTTP, Redis, SQLite or AWS crates.
//!
//! The `openapi` feature (used by the server) derives `utoipa::ToSchema` on the public views
//! (`Org`, `User`, `AuditEvent`, …) so the API document is generated from the very types that
//! are serialised; utoipa only builds schema values and does no I/O.

use std::sync::Arc;

/// The hash-chained audit log.
pub mod audit;
/// The injected clock.
pub mod clock;
/// Credential vending and its cache.
pub mod credentials;
/// The domain error type with stable codes.
pub mod error;
/// Idempotency-Key records.
pub mod idempotency;
/// Validated identifiers (`OrgName`, `UserId`, `Role`).
pub mod ids;
/// Customer onboarding: signed callbacks, binding, links.
pub mod onboarding;
/// Organisations: registration, lookup, key rotation, offboarding.
pub mod orgs;
/// Traits implemented by storage (and later AWS) adapters.
pub mod ports;
/// Callers and per-request context.
pub mod principal;
/// Operators and their bearer tokens.
pub mod users;
/// The sealing barrier between services and storage.
pub mod vault;

/// In-memory test doubles (a `KvStore`, an STS) for this crate's unit tests.
#[cfg(test)]
mod testing;

pub use error::Error;
pub use principal::{Principal, RequestContext};

use clock::Clock;
use rolegate_crypto::Pepper;

/// The domain services, wired to one store, keyring and clock.
#[derive(Debug, Clone)]
pub struct Services {
    pub vault: vault::Vault,
    pub audit: Arc<audit::Audit>,
    pub clock: Arc<dyn Clock>,
    /// STS, for onboarding checks and credential vending.
    pub sts: Arc<dyn ports::aws::Sts>,
    /// The console federation endpoint, for sign-in URLs.
    pub federation: Arc<dyn ports::aws::Federation>,
    /// In-process single-flight for credential issuance.
    flights: Arc<credentials::Flights>,
    pepper: Pepper,
}

impl Services {
    /// Wires the services and loads (or creates) the store's token pepper.
    pub async fn new(
        vault: vault::Vault,
        clock: Arc<dyn Clock>,
        sts: Arc<dyn ports::aws::Sts>,
        federation: Arc<dyn ports::aws::Federation>,
    ) -> Result<Self, Error> {
        let pepper = vault.pepper().await?;
        let audit = audit::Audit::new(vault.clone(), clock.clone());
        Ok(Self {
            vault,
            audit,
            clock,
            sts,
            federation,
            flights: Arc::default(),
            pepper,
        })
    }

    /// The current time as RFC 3339 (`Z`, whole seconds).
    #[must_use]
    pub fn now(&self) -> String {
        clock::rfc3339(self.clock.now())
    }

    /// A salted digest for correlating a non-secret-but-sensitive value in audit events.
    #[must_use]
    pub fn correlation_digest(&self, value: &str) -> String {
        self.pepper.digest("audit-correlation", value).to_hex()[..16].to_owned()
    }
}
