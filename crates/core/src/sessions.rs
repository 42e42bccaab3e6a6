//! Portal sessions: a browser signs in once (an operator token, or the company's identity
//! provider) and gets a random session id in a cookie. The session is a sealed record in
//! the store under the id's keyed digest, so every replica sees a sign-out at once, and a
//! stolen store holds no usable id.
//!
//! Each request resolves the session and then the operator's record: a disabled operator,
//! or one whose record is gone, loses every session at once, and the role is always the
//! current one. Sessions end after `idle` without a request and `absolute` after sign-in,
//! whichever comes first (ended sessions are deleted and audited as `session.expired`).

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use crate::audit::AuditRecord;
use crate::error::Error;
use crate::keyspace;
use crate::model::{OidcPending, Secret, SessionRecord, UserRecord};
use crate::policy::{Action, Facts};
use crate::ports::Txn;
use crate::principal::{Caller, Principal, RequestContext};
use crate::records::{Change, Records};

/// The prefix of a session id (the cookie's value).
pub const SESSION_PREFIX: &str = "rgs_";
/// The prefix of a session's form token.
pub const FORM_TOKEN_PREFIX: &str = "rgf_";
/// An OIDC sign-in must come back from the identity provider within this.
const OIDC_PENDING_TTL: Duration = Duration::from_secs(600);
/// A session's last-seen time is written at most this often.
const TOUCH_EVERY_MS: i64 = 60_000;

/// How long sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    /// Without a request for this long, a session ends (default 1 h).
    pub idle: Duration,
    /// After this long from sign-in, a session ends whatever happens (default 8 h).
    pub absolute: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(3600),
            absolute: Duration::from_secs(8 * 3600),
        }
    }
}

/// A new session: its id (for the cookie) and form token. Shown to the browser only.
#[derive(Debug)]
pub struct Opened {
    pub id: SecretString,
    pub form_token: SecretString,
}

/// A live session, resolved for one request.
#[derive(Debug, Clone)]
pub struct Active {
    /// The operator, with its current role, as every service call takes it.
    pub caller: Caller,
    /// What the request's form token must equal.
    pub form_token: Secret,
    /// Unix milliseconds at which the session ends at the latest.
    pub ends_ms: i64,
}

/// Why a cookie does not resolve to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// No such session: never was, signed out, or purged.
    Unknown,
    /// Idle or absolute timeout (audited now).
    Expired,
    /// The operator was disabled or removed (audited now).
    Revoked,
}

/// The sessions area.
#[derive(Debug, Clone)]
pub struct Sessions {
    records: Records,
    settings: SessionSettings,
}

impl Sessions {
    #[must_use]
    pub fn new(records: Records, settings: SessionSettings) -> Self {
        Self { records, settings }
    }

    #[must_use]
    pub fn settings(&self) -> SessionSettings {
        self.settings
    }

    fn key(&self, id: &str) -> keyspace::Key<SessionRecord> {
        let digest = self.records.pepper().digest("portal-session", id).to_hex();
        keyspace::portal_session(&digest)
    }

    /// Opens a session for `principal`, which sign-in has just proven (`method`: `token`
    /// or `oidc`). Audited as `session.login`.
    pub async fn open(
        &self,
        principal: Principal,
        ctx: RequestContext,
        method: &'static str,
    ) -> Result<Opened, Error> {
        let caller = Caller::new(principal, ctx);
        let Principal::Operator { user_id, .. } = &caller.principal else {
            return Err(Error::forbidden("only operators sign in to the portal"));
        };
        self.records
            .authorize(&caller, Action::SignIn, &Facts::user(user_id))
            .await?;
        let id = rolegate_crypto::secret_token(SESSION_PREFIX);
        let form_token = rolegate_crypto::secret_token(FORM_TOKEN_PREFIX);
        let now = self.records.clock().now_ms();
        let record = SessionRecord {
            user_id: user_id.clone(),
            method: method.to_owned(),
            form_token: Secret::new(form_token.expose_secret()),
            created_ms: now,
            last_seen_ms: now,
        };
        let key = self.key(id.expose_secret());
        let txn = Txn::new().absent(key.as_str());
        let txn =
            self.records
                .vault()
                .put_ttl(txn, key.as_str(), &record, self.settings.absolute)?;
        let audit = AuditRecord::new(Action::SignIn.name())
            .target(user_id.to_string())
            .details(serde_json::json!({"method": method}));
        if !self.records.commit(&caller, txn, audit).await? {
            // 256 random bits collided: not in this universe, but never overwrite.
            return Err(Error::Contention);
        }
        Ok(Opened { id, form_token })
    }

    /// The live session behind the cookie's `id`, with the operator as it is now.
    pub async fn resolve(&self, id: &str, ctx: &RequestContext) -> Result<Active, Ended> {
        match self.try_resolve(id, ctx).await {
            Ok(active) => Ok(active),
            Err(Resolve::Ended(e)) => Err(e),
            Err(Resolve::Failed(e)) => {
                // A store failure is no sign-in: the browser goes to the login page and
                // the error is in the log.
                tracing::error!(error = %e, "could not resolve a portal session");
                Err(Ended::Unknown)
            }
        }
    }

    async fn try_resolve(&self, id: &str, ctx: &RequestContext) -> Result<Active, Resolve> {
        if !id.starts_with(SESSION_PREFIX) || id.len() > 128 {
            return Err(Resolve::Ended(Ended::Unknown));
        }
        let key = self.key(id);
        let Some(cur) = self.records.get(&key).await? else {
            return Err(Resolve::Ended(Ended::Unknown));
        };
        let session = cur.value;
        let now = self.records.clock().now_ms();
        let ends_ms = self.ends_ms(&session);
        let user = self
            .records
            .get_cached(&keyspace::user(&session.user_id))
            .await?;
        let user = user.map(|u| u.value).filter(|u: &UserRecord| !u.disabled);
        let caller = |role| {
            Caller::new(
                Principal::Operator {
                    user_id: session.user_id.clone(),
                    role,
                },
                ctx.clone(),
            )
        };
        let Some(user) = user else {
            // The operator was disabled (or removed): the session dies now.
            let audit = AuditRecord::new("session.revoked")
                .target(session.user_id.to_string())
                .details(serde_json::json!({"reason": "operator disabled"}));
            self.end(&caller(crate::ids::Role::Operator), &key, cur.rev, audit)
                .await?;
            return Err(Resolve::Ended(Ended::Revoked));
        };
        let caller = caller(user.role);
        if now >= ends_ms {
            let reason = if now - session.created_ms >= ms(self.settings.absolute) {
                "absolute"
            } else {
                "idle"
            };
            let audit = AuditRecord::new("session.expired")
                .target(session.user_id.to_string())
                .details(serde_json::json!({"timeout": reason}));
            self.end(&caller, &key, cur.rev, audit).await?;
            return Err(Resolve::Ended(Ended::Expired));
        }
        if now - session.last_seen_ms >= TOUCH_EVERY_MS {
            self.touch(&caller, &key, now).await?;
        }
        Ok(Active {
            caller,
            form_token: session.form_token,
            ends_ms,
        })
    }

    /// When `session` ends if nothing else happens.
    fn ends_ms(&self, session: &SessionRecord) -> i64 {
        (session.last_seen_ms + ms(self.settings.idle))
            .min(session.created_ms + ms(self.settings.absolute))
    }

    /// Moves the last-seen time (no event: it is no one's action).
    async fn touch(
        &self,
        caller: &Caller,
        key: &keyspace::Key<SessionRecord>,
        now: i64,
    ) -> Result<(), Error> {
        let absolute = ms(self.settings.absolute);
        match self
            .records
            .update(caller, key, |cur| {
                let mut next = cur.clone();
                next.last_seen_ms = now.max(cur.last_seen_ms);
                let left = (cur.created_ms + absolute - now).max(1);
                let ttl = Duration::from_millis(u64::try_from(left).unwrap_or(1));
                Ok(Change::Touch {
                    value: next,
                    ttl: Some(ttl),
                })
            })
            .await
        {
            // Signed out meanwhile: this request still had a live session.
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes the session with its event, unless it changed meanwhile (then whoever
    /// changed it decided).
    async fn end(
        &self,
        caller: &Caller,
        key: &keyspace::Key<SessionRecord>,
        rev: Vec<u8>,
        audit: AuditRecord,
    ) -> Result<(), Error> {
        let txn = Txn::new().equals(key.as_str(), rev).delete(key.as_str());
        self.records.commit(caller, txn, audit).await?;
        Ok(())
    }

    /// Signs the caller out: the session is deleted, on every replica at once. Audited as
    /// `session.logout`.
    pub async fn close(&self, caller: &Caller, id: &str) -> Result<(), Error> {
        let Principal::Operator { user_id, .. } = &caller.principal else {
            return Err(Error::forbidden("only operators have portal sessions"));
        };
        self.records
            .authorize(caller, Action::SignOut, &Facts::user(user_id))
            .await?;
        let key = self.key(id);
        let Some(cur) = self.records.get(&key).await? else {
            return Ok(());
        };
        if &cur.value.user_id != user_id {
            return Err(Error::forbidden("not your session"));
        }
        let audit = AuditRecord::new(Action::SignOut.name()).target(user_id.to_string());
        self.end(caller, &key, cur.rev, audit).await
    }
}

impl Sessions {
    fn oidc_key(&self, state: &str) -> keyspace::Key<OidcPending> {
        let digest = self.records.pepper().digest("portal-oidc", state).to_hex();
        keyspace::portal_oidc(&digest)
    }

    /// Remembers an OIDC sign-in sent to the identity provider under its `state` (for 10
    /// minutes). Nobody's action yet: the outcome is audited when it comes back.
    pub async fn begin_sign_in(&self, state: &str, pending: &OidcPending) -> Result<(), Error> {
        let key = self.oidc_key(state);
        let txn = Txn::new().absent(key.as_str());
        let txn = self
            .records
            .vault()
            .put_ttl(txn, key.as_str(), pending, OIDC_PENDING_TTL)?;
        if !self.records.vault().commit(txn).await? {
            return Err(Error::Contention);
        }
        Ok(())
    }

    /// Takes the sign-in behind `state`: `None` for an unknown, expired or already used
    /// state. Deleted here, so each state (and its nonce and PKCE verifier) works once.
    pub async fn take_sign_in(&self, state: &str) -> Result<Option<OidcPending>, Error> {
        if state.is_empty() || state.len() > 256 {
            return Ok(None);
        }
        let key = self.oidc_key(state);
        let Some(cur) = self.records.get(&key).await? else {
            return Ok(None);
        };
        let txn = Txn::new()
            .equals(key.as_str(), cur.rev)
            .delete(key.as_str());
        // Another request took it first: for this one it is used.
        Ok(self.records.vault().commit(txn).await?.then_some(cur.value))
    }
}

enum Resolve {
    Ended(Ended),
    Failed(Error),
}

impl From<Error> for Resolve {
    fn from(e: Error) -> Self {
        Self::Failed(e)
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::ids::{Role, UserId};
    use crate::services::{Config, Ports, Services};
    use crate::testing::{MemoryStore, NoSts};
    use crate::users::CreateUserCommand;
    use crate::vault::Vault;

    async fn rig() -> (Services, ManualClock, Principal) {
        let store = Arc::new(MemoryStore::default());
        let ring =
            rolegate_crypto::Keyring::new(&[rolegate_crypto::MasterKey::generate()]).unwrap();
        let clock = ManualClock::new(1_800_000_000_000);
        let ports = Ports {
            vault: Vault::new(store, Arc::new(ring)),
            clock: Arc::new(clock.clone()),
            sts: Arc::new(NoSts),
            federation: Arc::new(NoSts),
            templates: None,
        };
        let services = Services::new(ports, Config::offline()).await.unwrap();
        let cmd = CreateUserCommand::parse("alice", "operator", None).unwrap();
        services
            .users
            .create(&Caller::system("test"), cmd)
            .await
            .unwrap();
        let alice = Principal::Operator {
            user_id: UserId::parse("alice").unwrap(),
            role: Role::Operator,
        };
        (services, clock, alice)
    }

    fn ctx() -> RequestContext {
        RequestContext::system("t")
    }

    #[tokio::test]
    async fn idle_and_absolute_timeouts_end_sessions() {
        let (s, clock, alice) = rig().await;
        let opened = s
            .sessions
            .open(alice.clone(), ctx(), "token")
            .await
            .unwrap();
        let id = opened.id.expose_secret().to_owned();
        let active = s.sessions.resolve(&id, &ctx()).await.unwrap();
        assert_eq!(active.caller.principal, alice);
        assert_eq!(
            active.form_token.expose(),
            opened.form_token.expose_secret()
        );
        // Requests every 50 minutes keep it alive (the last-seen time moves) ...
        for _ in 0..9 {
            clock.advance_ms(50 * 60_000);
            s.sessions.resolve(&id, &ctx()).await.unwrap();
        }
        // ... until 8 hours after sign-in.
        clock.advance_ms(50 * 60_000);
        assert_eq!(
            s.sessions.resolve(&id, &ctx()).await.unwrap_err(),
            Ended::Expired
        );
        assert_eq!(
            s.sessions.resolve(&id, &ctx()).await.unwrap_err(),
            Ended::Unknown,
            "an ended session is gone"
        );
        // An hour without a request ends a fresh one.
        let id = s
            .sessions
            .open(alice, ctx(), "token")
            .await
            .unwrap()
            .id
            .expose_secret()
            .to_owned();
        clock.advance_ms(3_600_000);
        assert_eq!(
            s.sessions.resolve(&id, &ctx()).await.unwrap_err(),
            Ended::Expired
        );
        assert_eq!(
            s.sessions
                .resolve("rgs_never-issued", &ctx())
                .await
                .unwrap_err(),
            Ended::Unknown
        );
    }

    #[tokio::test]
    async fn disabling_revokes_role_changes_apply_and_sign_out_ends() {
        let (s, _, alice) = rig().await;
        let uid = UserId::parse("alice").unwrap();
        let system = Caller::system("test");
        let id = s
            .sessions
            .open(alice.clone(), ctx(), "token")
            .await
            .unwrap()
            .id
            .expose_secret()
            .to_owned();
        s.users.set_role(&system, &uid, Role::Admin).await.unwrap();
        let active = s.sessions.resolve(&id, &ctx()).await.unwrap();
        assert!(
            active.caller.principal.is_admin(),
            "the role is read per request"
        );
        s.users.disable(&system, &uid).await.unwrap();
        assert_eq!(
            s.sessions.resolve(&id, &ctx()).await.unwrap_err(),
            Ended::Revoked
        );
        // Sign-out deletes the record.
        let (s, _, alice) = rig().await;
        let id = s
            .sessions
            .open(alice.clone(), ctx(), "token")
            .await
            .unwrap()
            .id
            .expose_secret()
            .to_owned();
        let caller = s.sessions.resolve(&id, &ctx()).await.unwrap().caller;
        s.sessions.close(&caller, &id).await.unwrap();
        assert_eq!(
            s.sessions.resolve(&id, &ctx()).await.unwrap_err(),
            Ended::Unknown
        );
        // Only operators sign in.
        let key = Principal::OrgKey {
            org: crate::ids::OrgName::parse("acme").unwrap(),
            key_id: "k".into(),
        };
        assert!(s.sessions.open(key, ctx(), "token").await.is_err());
    }

    #[tokio::test]
    async fn an_oidc_state_works_once() {
        let (s, _, _) = rig().await;
        let pending = OidcPending {
            nonce: Secret::new("n"),
            pkce_verifier: Secret::new("v"),
            next: "/".into(),
        };
        s.sessions.begin_sign_in("state-1", &pending).await.unwrap();
        let taken = s.sessions.take_sign_in("state-1").await.unwrap().unwrap();
        assert_eq!(taken.nonce.expose(), "n");
        assert!(s.sessions.take_sign_in("state-1").await.unwrap().is_none());
        assert!(s.sessions.take_sign_in("other").await.unwrap().is_none());
        assert!(s.sessions.take_sign_in("").await.unwrap().is_none());
    }
}
