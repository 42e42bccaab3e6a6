//! The `[jobs]` table: the worker pool and the one-time secrets.
//!
//! ```toml
//! [jobs]
//! workers = 4              # jobs this replica runs at once (0: none, an API-only replica)
//! lease_secs = 30          # a crashed replica's jobs are resumed after this
//! secret_ttl_secs = 900    # an unread private key is purged after this
//! ```

use std::time::Duration;

use rolegate_core::jobs::JobSettings;
use serde::Deserialize;

use super::{ConfigError, bad};

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJobs {
    pub workers: Option<usize>,
    pub lease_secs: Option<u64>,
    pub poll_ms: Option<u64>,
    pub secret_ttl_secs: Option<u64>,
    /// For tests only: a pause after each job's AWS call, before its result is recorded,
    /// so that a test can kill the server mid-step.
    pub test_step_delay_ms: Option<u64>,
}

impl RawJobs {
    pub fn validate(self) -> Result<JobSettings, ConfigError> {
        let d = JobSettings::default();
        let workers = self.workers.unwrap_or(d.workers);
        if workers > 64 {
            return Err(bad("jobs.workers", "must be at most 64"));
        }
        let lease_secs = self.lease_secs.unwrap_or(d.lease.as_secs());
        if !(1..=3600).contains(&lease_secs) {
            return Err(bad("jobs.lease_secs", "must be between 1 and 3600"));
        }
        let poll_ms = self.poll_ms.unwrap_or(250);
        if !(10..=60_000).contains(&poll_ms) {
            return Err(bad("jobs.poll_ms", "must be between 10 and 60000"));
        }
        let ttl = self.secret_ttl_secs.unwrap_or(d.secret_ttl.as_secs());
        if !(1..=86_400).contains(&ttl) {
            return Err(bad("jobs.secret_ttl_secs", "must be between 1 and 86400"));
        }
        Ok(JobSettings {
            workers,
            lease: Duration::from_secs(lease_secs),
            poll: Duration::from_millis(poll_ms),
            secret_ttl: Duration::from_secs(ttl),
            test_step_delay: self.test_step_delay_ms.map(Duration::from_millis),
        })
    }
}
