//! Operators (staff): creation, listing, disabling and token rotation, and bearer-token
//! authentication. Only a keyed digest of a token is stored (ADR 0003).

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use crate::audit::AuditRecord;
use crate::ids::{Role, UserId};
use crate::ports::Txn;
use crate::principal::{Principal, RequestContext};
use crate::{Error, Services};

pub const TOKEN_PREFIX: &str = "rgt_";
const MAX_METADATA_BYTES: usize = 4096;

fn user_key(id: &UserId) -> String {
    format!("user/{id}")
}

fn token_key(digest_hex: &str) -> String {
    format!("tok/{digest_hex}")
}

/// The stored operator record (sealed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub user_id: UserId,
    pub role: Role,
    pub metadata: serde_json::Value,
    pub token_digest: String,
    pub disabled: bool,
    pub created_at: String,
    pub created_by: String,
    pub token_rotated_at: Option<String>,
}

/// What the token index points at; deleted when the token dies.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenEntry {
    user_id: UserId,
    role: Role,
    digest: String,
}

/// The public view of an operator: no token material.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub user_id: String,
    pub role: Role,
    pub metadata: serde_json::Value,
    pub disabled: bool,
    pub created_at: String,
    pub created_by: String,
    pub token_rotated_at: Option<String>,
}

impl From<&UserRecord> for User {
    fn from(r: &UserRecord) -> Self {
        Self {
            user_id: r.user_id.to_string(),
            role: r.role,
            metadata: r.metadata.clone(),
            disabled: r.disabled,
            created_at: r.created_at.clone(),
            created_by: r.created_by.clone(),
            token_rotated_at: r.token_rotated_at.clone(),
        }
    }
}

/// A validated request to create an operator.
#[derive(Debug, Clone)]
pub struct CreateUserCommand {
    pub user_id: UserId,
    pub role: Role,
    pub metadata: serde_json::Value,
}

impl CreateUserCommand {
    pub fn parse(
        user_id: &str,
        role: &str,
        metadata: Option<serde_json::Value>,
    ) -> Result<Self, Error> {
        let metadata = metadata.unwrap_or_else(|| serde_json::json!({}));
        if !metadata.is_object() {
            return Err(Error::invalid("metadata", "metadata must be a JSON object"));
        }
        if metadata.to_string().len() > MAX_METADATA_BYTES {
            return Err(Error::invalid(
                "metadata",
                "metadata must be at most 4096 bytes of JSON",
            ));
        }
        Ok(Self {
            user_id: UserId::parse(user_id)?,
            role: Role::parse(role)?,
            metadata,
        })
    }
}

fn require_admin(p: &Principal) -> Result<(), Error> {
    if p.is_admin() {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "this action requires the admin role".to_owned(),
        ))
    }
}

impl Services {
    fn token_digest(&self, token: &str) -> String {
        self.pepper.digest("token", token).to_hex()
    }

    /// Resolves a bearer token to its operator. `None` for unknown, rotated or disabled tokens.
    #[tracing::instrument(skip_all)]
    pub async fn authenticate_token(&self, token: &str) -> Result<Option<Principal>, Error> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
            return Ok(None);
        }
        let digest = self.pepper.digest("token", token);
        let hex = digest.to_hex();
        let Some(entry) = self.vault.get::<TokenEntry>(&token_key(&hex)).await? else {
            return Ok(None);
        };
        let stored = hex::decode(&entry.value.digest).unwrap_or_default();
        if !rolegate_crypto::ct_eq(&stored, &digest.0) {
            return Ok(None);
        }
        Ok(Some(Principal::Operator {
            user_id: entry.value.user_id,
            role: entry.value.role,
        }))
    }

    /// Creates an operator and returns its token, which is never stored or shown again.
    pub async fn create_user(
        &self,
        ctx: &RequestContext,
        by: &Principal,
        cmd: CreateUserCommand,
    ) -> Result<(User, SecretString), Error> {
        require_admin(by)?;
        self.insert_user(ctx, cmd, &by.actor()).await
    }

    /// Creates an operator without an authenticated caller: bootstrap and offline admin tokens.
    pub async fn insert_user(
        &self,
        ctx: &RequestContext,
        cmd: CreateUserCommand,
        created_by: &str,
    ) -> Result<(User, SecretString), Error> {
        let token = rolegate_crypto::secret_token(TOKEN_PREFIX);
        let digest = self.token_digest(token.expose_secret());
        let record = UserRecord {
            user_id: cmd.user_id.clone(),
            role: cmd.role,
            metadata: cmd.metadata,
            token_digest: digest.clone(),
            disabled: false,
            created_at: self.now(),
            created_by: created_by.to_owned(),
            token_rotated_at: None,
        };
        let ukey = user_key(&cmd.user_id);
        let tkey = token_key(&digest);
        let entry = TokenEntry {
            user_id: cmd.user_id.clone(),
            role: cmd.role,
            digest,
        };
        let txn = Txn::new().absent(ukey.clone()).absent(tkey.clone());
        let txn = self.vault.put(txn, &ukey, &record)?;
        let txn = self.vault.put(txn, &tkey, &entry)?;
        let audit = AuditRecord::new("user.create")
            .target(cmd.user_id.to_string())
            .details(serde_json::json!({"role": cmd.role}));
        if !self.audit.commit_with(ctx, txn, audit).await? {
            return Err(Error::conflict(
                "user_exists",
                format!("user {} already exists", cmd.user_id),
            ));
        }
        Ok((User::from(&record), token))
    }

    /// Every operator (admins), or only the caller (operators).
    pub async fn list_users(&self, by: &Principal) -> Result<Vec<User>, Error> {
        match by {
            Principal::Operator {
                role: Role::Admin, ..
            } => {
                let all = self.vault.list_all::<UserRecord>("user/").await?;
                Ok(all.iter().map(|(_, r)| User::from(r)).collect())
            }
            Principal::Operator { user_id, .. } => {
                Ok(self.get_user(by, user_id).await.map(|u| vec![u])?)
            }
            Principal::OrgKey { .. } => Err(Error::Forbidden(
                "API keys cannot list operators".to_owned(),
            )),
        }
    }

    pub async fn get_user(&self, by: &Principal, id: &UserId) -> Result<User, Error> {
        let allowed =
            by.is_admin() || matches!(by, Principal::Operator { user_id, .. } if user_id == id);
        if !allowed {
            return Err(Error::Forbidden(
                "operators can only see themselves".to_owned(),
            ));
        }
        let rec = self
            .vault
            .get::<UserRecord>(&user_key(id))
            .await?
            .ok_or(Error::NotFound { what: "user" })?;
        Ok(User::from(&rec.value))
    }

    /// Disables an operator: its token stops working at once, on every replica.
    pub async fn disable_user(
        &self,
        ctx: &RequestContext,
        by: &Principal,
        id: &UserId,
    ) -> Result<User, Error> {
        require_admin(by)?;
        if matches!(by, Principal::Operator { user_id, .. } if user_id == id) {
            return Err(Error::conflict(
                "cannot_disable_self",
                "an admin cannot disable its own account",
            ));
        }
        for _ in 0..8 {
            let key = user_key(id);
            let cur = self
                .vault
                .get::<UserRecord>(&key)
                .await?
                .ok_or(Error::NotFound { what: "user" })?;
            if cur.value.disabled {
                return Ok(User::from(&cur.value));
            }
            let mut rec = cur.value.clone();
            rec.disabled = true;
            let txn = Txn::new()
                .equals(key.clone(), cur.rev)
                .delete(token_key(&rec.token_digest));
            let txn = self.vault.put(txn, &key, &rec)?;
            if self
                .audit
                .commit_with(
                    ctx,
                    txn,
                    AuditRecord::new("user.disable").target(id.to_string()),
                )
                .await?
            {
                return Ok(User::from(&rec));
            }
        }
        Err(Error::Contention)
    }

    /// Issues a new token for `id` (an admin for anyone, an operator for itself). The old
    /// token dies in the same transaction.
    pub async fn rotate_user_token(
        &self,
        ctx: &RequestContext,
        by: &Principal,
        id: &UserId,
    ) -> Result<(User, SecretString), Error> {
        let allowed =
            by.is_admin() || matches!(by, Principal::Operator { user_id, .. } if user_id == id);
        if !allowed {
            return Err(Error::Forbidden(
                "operators can only rotate their own token".to_owned(),
            ));
        }
        self.reissue_token(ctx, id).await
    }

    /// Rotates a token without an authenticated caller (offline `admin token`).
    pub async fn reissue_token(
        &self,
        ctx: &RequestContext,
        id: &UserId,
    ) -> Result<(User, SecretString), Error> {
        for _ in 0..8 {
            let key = user_key(id);
            let cur = self
                .vault
                .get::<UserRecord>(&key)
                .await?
                .ok_or(Error::NotFound { what: "user" })?;
            if cur.value.disabled {
                return Err(Error::conflict(
                    "user_disabled",
                    format!("user {id} is disabled"),
                ));
            }
            let token = rolegate_crypto::secret_token(TOKEN_PREFIX);
            let digest = self.token_digest(token.expose_secret());
            let mut rec = cur.value.clone();
            let old = std::mem::replace(&mut rec.token_digest, digest.clone());
            rec.token_rotated_at = Some(self.now());
            let entry = TokenEntry {
                user_id: id.clone(),
                role: rec.role,
                digest: digest.clone(),
            };
            let txn = Txn::new()
                .equals(key.clone(), cur.rev)
                .absent(token_key(&digest))
                .delete(token_key(&old));
            let txn = self.vault.put(txn, &key, &rec)?;
            let txn = self.vault.put(txn, &token_key(&digest), &entry)?;
            if self
                .audit
                .commit_with(
                    ctx,
                    txn,
                    AuditRecord::new("user.token.rotate").target(id.to_string()),
                )
                .await?
            {
                return Ok((User::from(&rec), token));
            }
        }
        Err(Error::Contention)
    }

    /// Whether any operator exists (bootstrap check).
    pub async fn has_users(&self) -> Result<bool, Error> {
        Ok(!self
            .vault
            .store()
            .list("user/", None, 1)
            .await?
            .items
            .is_empty())
    }
}
