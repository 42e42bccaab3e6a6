//! A Redis store must not lose acknowledged writes silently: an audit event, an org's API key
//! or a revocation that vanishes on restart or under memory pressure is a security failure.
//! At start-up rolegate reads the server's `appendonly`, `appendfsync` and
//! `maxmemory-policy` and refuses to start unless the append-only file is on, it is synced
//! `always` or `everysec`, and the policy is `noeviction`. `store_allow_volatile_redis = true`
//! starts anyway, with a warning, and `GET /api/ready` reports `degraded`.
//!
//! `everysec` (Redis's default with AOF) can lose up to about one second of acknowledged
//! writes on a crash of the Redis host (not of the Redis process alone); `always` loses none
//! and costs an fsync per write.

use secrecy::ExposeSecret as _;

use rolegate_store::RedisPersistence;

use crate::config::{ConfigError, Settings, bad};

/// Checks the store's persistence and returns the reasons it is degraded (empty when it is
/// not, and for SQLite).
///
/// # Errors
/// A [`ConfigError`] naming `store` and each offending Redis setting, unless
/// `store_allow_volatile_redis` is set; or when Redis cannot be reached.
pub async fn check(settings: &Settings) -> Result<Vec<String>, ConfigError> {
    let persistence = rolegate_store::redis_persistence(settings.store.expose_secret())
        .await
        .map_err(|e| bad("store", e.to_string()))?;
    let Some(persistence) = persistence else {
        return Ok(Vec::new());
    };
    let problems = problems(&persistence);
    if problems.is_empty() {
        return Ok(problems);
    }
    if settings.store_allow_volatile_redis {
        for p in &problems {
            tracing::warn!(problem = %p, "store_allow_volatile_redis = true: starting on a Redis that can lose acknowledged writes; /api/ready reports degraded");
        }
        return Ok(problems);
    }
    Err(bad(
        "store",
        format!(
            "the Redis server can lose acknowledged writes: {}. Fix its configuration, or set \
             store_allow_volatile_redis = true to start anyway (degraded)",
            problems.join("; ")
        ),
    ))
}

/// What is wrong with `p`, one sentence per setting.
#[must_use]
pub fn problems(p: &RedisPersistence) -> Vec<String> {
    let (appendonly, appendfsync, policy) = match p {
        RedisPersistence::Settings {
            appendonly,
            appendfsync,
            maxmemory_policy,
        } => (appendonly, appendfsync, maxmemory_policy),
        RedisPersistence::Unknown(reason) => {
            return vec![format!(
                "cannot read appendonly, appendfsync and maxmemory-policy because CONFIG GET \
                 is refused ({reason}); managed Redis services often disable CONFIG. Check \
                 those settings with your provider and set store_allow_volatile_redis = true"
            )];
        }
    };
    let mut out = Vec::new();
    if appendonly != "yes" {
        out.push(format!(
            "appendonly is {appendonly:?} (needs \"yes\": without the append-only file a \
             restart loses every write since the last snapshot)"
        ));
    }
    if !matches!(appendfsync.as_str(), "always" | "everysec") {
        out.push(format!(
            "appendfsync is {appendfsync:?} (needs \"always\" or \"everysec\")"
        ));
    }
    if policy != "noeviction" {
        out.push(format!(
            "maxmemory-policy is {policy:?} (needs \"noeviction\": any other policy deletes \
             keys when memory runs out)"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(a: &str, f: &str, p: &str) -> RedisPersistence {
        RedisPersistence::Settings {
            appendonly: a.into(),
            appendfsync: f.into(),
            maxmemory_policy: p.into(),
        }
    }

    #[test]
    fn each_setting_is_named() {
        assert!(problems(&settings("yes", "everysec", "noeviction")).is_empty());
        assert!(problems(&settings("yes", "always", "noeviction")).is_empty());
        let all = problems(&settings("no", "no", "allkeys-lru")).join("; ");
        for name in ["appendonly", "appendfsync", "maxmemory-policy"] {
            assert!(all.contains(name), "{all}");
        }
        let unknown = problems(&RedisPersistence::Unknown("ERR unknown command".into()));
        assert!(unknown[0].contains("CONFIG"), "{unknown:?}");
    }
}
