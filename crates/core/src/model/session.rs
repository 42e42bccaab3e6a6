//! Portal sessions: a browser's sign-in, kept server-side (the cookie holds only a random
//! id, whose keyed digest is the record's key).

use serde::{Deserialize, Serialize};

use crate::ids::UserId;
use crate::model::Secret;

/// One signed-in browser (sealed like every record). The operator's role is not kept: it is
/// read from the operator's record on every request, so a role change or a disable takes
/// effect at once, on every replica.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    pub user_id: UserId,
    /// How the operator signed in: `token` or `oidc`.
    pub method: String,
    /// The per-session form token every unsafe portal request must carry.
    pub form_token: Secret,
    /// Unix milliseconds.
    pub created_ms: i64,
    /// Unix milliseconds of the last request, refreshed at most once a minute.
    pub last_seen_ms: i64,
}

/// An OIDC sign-in between the redirect to the identity provider and its answer: what the
/// answer must match. Taken (deleted) by the first answer carrying its `state`, so a state
/// or nonce works once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OidcPending {
    pub nonce: Secret,
    pub pkce_verifier: Secret,
    /// Where to go after sign-in (a portal path).
    pub next: String,
}
