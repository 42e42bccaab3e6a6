//! The `[portal]` table: the operator portal's sessions.
//!
//! ```toml
//! [portal]
//! enabled = true                  # serve the portal under / (the API stays under /api)
//! session_idle_secs = 3600        # a session without a request for this long ends
//! session_absolute_secs = 28800   # and every session ends this long after sign-in
//! ```

use std::time::Duration;

use rolegate_core::sessions::SessionSettings;
use serde::Deserialize;

use super::{ConfigError, bad};

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPortal {
    pub enabled: Option<bool>,
    pub session_idle_secs: Option<u64>,
    pub session_absolute_secs: Option<u64>,
}

/// The validated `[portal]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortalSettings {
    pub enabled: bool,
    pub sessions: SessionSettings,
}

impl RawPortal {
    pub fn validate(self) -> Result<PortalSettings, ConfigError> {
        let d = SessionSettings::default();
        let idle = self.session_idle_secs.unwrap_or(d.idle.as_secs());
        if !(60..=86_400).contains(&idle) {
            return Err(bad(
                "portal.session_idle_secs",
                "must be between 60 and 86400",
            ));
        }
        let absolute = self.session_absolute_secs.unwrap_or(d.absolute.as_secs());
        if !(idle..=7 * 86_400).contains(&absolute) {
            return Err(bad(
                "portal.session_absolute_secs",
                "must be between portal.session_idle_secs and 604800",
            ));
        }
        Ok(PortalSettings {
            enabled: self.enabled.unwrap_or(true),
            sessions: SessionSettings {
                idle: Duration::from_secs(idle),
                absolute: Duration::from_secs(absolute),
            },
        })
    }
}
