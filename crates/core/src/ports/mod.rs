//! Ports: the traits that adapters outside `core` implement.

/// Storage primitives implemented by `rolegate-store`.
pub mod store;

pub use store::{Condition, KvStore, Page, RateDecision, RateLimit, StoreError, Txn, Write, gcra};
