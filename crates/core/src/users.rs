//! Operators (staff): creation, listing, disabling and token rotation, and bearer-token
//! authentication. Only a keyed digest of a token is stored (ADR 0003).

use secrecy::{ExposeSecret as _, SecretString};

use crate::audit::AuditRecord;
use crate::error::{Code, Error};
use crate::ids::{Role, UserId};
use crate::keyspace;
use crate::model::TokenEntry;
use crate::policy::{Action, Facts};
use crate::ports::Txn;
use crate::principal::{Caller, Principal};
use crate::records::{Change, Records};
use crate::revocations::RevocationQueue;

pub use crate::model::{User, UserRecord};

pub const TOKEN_PREFIX: &str = "rgt_";
const MAX_METADATA_BYTES: usize = 4096;

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

/// The operators area.
#[derive(Debug, Clone)]
pub struct Users {
    records: Records,
    /// `revoke_sessions`: what disabling queues for the sessions already handed out.
    revocations: RevocationQueue,
}

impl Users {
    #[must_use]
    pub fn new(records: Records) -> Self {
        Self {
            records,
            revocations: RevocationQueue::default(),
        }
    }

    /// The same area, queuing a disabled operator's `revoke_sessions` deny.
    #[must_use]
    pub fn with_revocations(mut self, revocations: RevocationQueue) -> Self {
        self.revocations = revocations;
        self
    }

    fn token_digest(&self, token: &str) -> String {
        self.records.pepper().digest("token", token).to_hex()
    }

    /// Resolves a bearer token to its operator. `None` for unknown, rotated or disabled tokens.
    #[tracing::instrument(skip_all)]
    pub async fn authenticate_token(&self, token: &str) -> Result<Option<Principal>, Error> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
            return Ok(None);
        }
        let digest = self.records.pepper().digest("token", token);
        let Some(entry) = self
            .records
            .get_cached(&keyspace::token(&digest.to_hex()))
            .await?
        else {
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
    pub async fn create(
        &self,
        caller: &Caller,
        cmd: CreateUserCommand,
    ) -> Result<(User, SecretString), Error> {
        self.records
            .authorize(caller, Action::CreateUser, &Facts::user(&cmd.user_id))
            .await?;
        let token = rolegate_crypto::secret_token(TOKEN_PREFIX);
        let digest = self.token_digest(token.expose_secret());
        let record = UserRecord {
            user_id: cmd.user_id.clone(),
            role: cmd.role,
            metadata: cmd.metadata,
            token_digest: digest.clone(),
            disabled: false,
            created_at: self.records.now(),
            created_by: caller.principal.actor(),
            token_rotated_at: None,
            allowed_cidrs: Vec::new(),
        };
        let ukey = keyspace::user(&cmd.user_id);
        let tkey = keyspace::token(&digest);
        let entry = TokenEntry {
            user_id: cmd.user_id.clone(),
            role: cmd.role,
            digest,
        };
        let txn = Txn::new().absent(ukey.as_str()).absent(tkey.as_str());
        let txn = self.records.put(txn, &ukey, &record)?;
        let txn = self.records.put(txn, &tkey, &entry)?;
        let audit = AuditRecord::new(Action::CreateUser.name())
            .target(cmd.user_id.to_string())
            .details(serde_json::json!({"role": cmd.role}));
        if !self.records.commit(caller, txn, audit).await? {
            return Err(Error::conflict(
                Code::UserExists,
                format!("user {} already exists", cmd.user_id),
            ));
        }
        Ok((User::from(&record), token))
    }

    /// Every operator (admins), or only the caller (operators).
    pub async fn list(&self, caller: &Caller) -> Result<Vec<User>, Error> {
        self.records
            .authorize(caller, Action::ListUsers, &Facts::default())
            .await?;
        match &caller.principal {
            Principal::Operator { user_id, .. } if !caller.principal.is_admin() => {
                Ok(vec![self.get(caller, user_id).await?])
            }
            _ => {
                let all = self
                    .records
                    .vault()
                    .list_all::<UserRecord>(keyspace::USER.prefix)
                    .await?;
                Ok(all.iter().map(|(_, r)| User::from(r)).collect())
            }
        }
    }

    pub async fn get(&self, caller: &Caller, id: &UserId) -> Result<User, Error> {
        self.records
            .authorize(caller, Action::ReadUser, &Facts::user(id))
            .await?;
        let rec = self
            .records
            .get(&keyspace::user(id))
            .await?
            .ok_or(Error::NotFound { what: "user" })?;
        Ok(User::from(&rec.value))
    }

    /// Disables an operator: its token stops working at once, on every replica. With
    /// `revoke_sessions`, the same transaction queues the deny of the sessions it already
    /// obtained (the access sweeper finds the orgs from the access history).
    pub async fn disable(&self, caller: &Caller, id: &UserId) -> Result<User, Error> {
        self.records
            .authorize(caller, Action::DisableUser, &Facts::user(id))
            .await?;
        if matches!(&caller.principal, Principal::Operator { user_id, .. } if user_id == id) {
            return Err(Error::conflict(
                Code::CannotDisableSelf,
                "an admin cannot disable its own account",
            ));
        }
        let updated = self
            .records
            .update(caller, &keyspace::user(id), |cur| {
                if cur.disabled {
                    return Ok(Change::Keep);
                }
                let mut rec = cur.clone();
                rec.disabled = true;
                let txn = Txn::new().delete(keyspace::token(&rec.token_digest).as_str());
                let now = self.records.clock().now().unix_timestamp();
                let (txn, queued) = self
                    .revocations
                    .queue_operator(&self.records, txn, id, now)?;
                let mut audit = AuditRecord::new(Action::DisableUser.name()).target(id.to_string());
                if let Some(m) = queued {
                    audit = audit.details(serde_json::json!({"revoke_sessions": {
                        "source_identity": m.source_identity,
                        "expires_unix": m.expires_unix,
                    }}));
                }
                Ok(Change::write_with(rec, txn, audit))
            })
            .await?;
        if updated.changed {
            // Cached credentials are keyed by digests that do not name the operator: drop
            // them all (every caller mints afresh on its next request).
            if let Err(e) = self
                .records
                .delete_prefix(keyspace::CREDENTIALS.prefix)
                .await
            {
                tracing::error!(error = %e, "could not drop cached credentials of a disabled operator");
            }
        }
        Ok(User::from(&updated.value))
    }

    /// Sets the source blocks `id` may use credentials, console sign-ins and jobs from
    /// (empty: anywhere).
    pub async fn set_allowed_cidrs(
        &self,
        caller: &Caller,
        id: &UserId,
        cidrs: Vec<crate::network::Cidr>,
    ) -> Result<User, Error> {
        self.records
            .authorize(caller, Action::SetUserNetwork, &Facts::user(id))
            .await?;
        let updated = self
            .records
            .update(caller, &keyspace::user(id), |cur| {
                if cur.allowed_cidrs == cidrs {
                    return Ok(Change::Keep);
                }
                let mut rec = cur.clone();
                rec.allowed_cidrs = cidrs.clone();
                let shown: Vec<String> = cidrs.iter().map(ToString::to_string).collect();
                let audit = AuditRecord::new(Action::SetUserNetwork.name())
                    .target(id.to_string())
                    .details(serde_json::json!({"allowed_cidrs": shown}));
                Ok(Change::write(rec, audit))
            })
            .await?;
        Ok(User::from(&updated.value))
    }

    /// Issues a new token for `id` (an admin for anyone, an operator for itself, rolegate
    /// itself for `rolegate admin token`). The old token dies in the same transaction.
    pub async fn rotate_token(
        &self,
        caller: &Caller,
        id: &UserId,
    ) -> Result<(User, SecretString), Error> {
        self.records
            .authorize(caller, Action::RotateUserToken, &Facts::user(id))
            .await?;
        let mut issued: Option<SecretString> = None;
        let updated = self
            .records
            .update(caller, &keyspace::user(id), |cur| {
                if cur.disabled {
                    return Err(Error::conflict(
                        Code::UserDisabled,
                        format!("user {id} is disabled"),
                    ));
                }
                let token = rolegate_crypto::secret_token(TOKEN_PREFIX);
                let digest = self.token_digest(token.expose_secret());
                let mut rec = cur.clone();
                let old = std::mem::replace(&mut rec.token_digest, digest.clone());
                rec.token_rotated_at = Some(self.records.now());
                let entry = TokenEntry {
                    user_id: id.clone(),
                    role: rec.role,
                    digest: digest.clone(),
                };
                let new_key = keyspace::token(&digest);
                let txn = Txn::new()
                    .absent(new_key.as_str())
                    .delete(keyspace::token(&old).as_str());
                let txn = self.records.put(txn, &new_key, &entry)?;
                let audit = AuditRecord::new(Action::RotateUserToken.name()).target(id.to_string());
                issued = Some(token);
                Ok(Change::write_with(rec, txn, audit))
            })
            .await?;
        let token = issued.ok_or(Error::Contention)?;
        Ok((User::from(&updated.value), token))
    }

    /// Changes an operator's role (admins). Its token entry carries the role too, and
    /// changes in the same transaction; portal sessions read the role on every request.
    pub async fn set_role(&self, caller: &Caller, id: &UserId, role: Role) -> Result<User, Error> {
        self.records
            .authorize(caller, Action::SetUserRole, &Facts::user(id))
            .await?;
        if matches!(&caller.principal, Principal::Operator { user_id, .. } if user_id == id) {
            return Err(Error::conflict(
                Code::CannotDisableSelf,
                "an admin cannot change its own role",
            ));
        }
        let updated = self
            .records
            .update(caller, &keyspace::user(id), |cur| {
                if cur.role == role {
                    return Ok(Change::Keep);
                }
                if cur.disabled {
                    return Err(Error::conflict(
                        Code::UserDisabled,
                        format!("user {id} is disabled"),
                    ));
                }
                let mut rec = cur.clone();
                let from = std::mem::replace(&mut rec.role, role);
                let tkey = keyspace::token(&rec.token_digest);
                let entry = TokenEntry {
                    user_id: id.clone(),
                    role,
                    digest: rec.token_digest.clone(),
                };
                let txn = self
                    .records
                    .put(Txn::new().present(tkey.as_str()), &tkey, &entry)?;
                let audit = AuditRecord::new(Action::SetUserRole.name())
                    .target(id.to_string())
                    .details(serde_json::json!({"from": from, "to": role}));
                Ok(Change::write_with(rec, txn, audit))
            })
            .await?;
        Ok(User::from(&updated.value))
    }

    /// Signs in someone the company's identity provider vouched for (`caller` is
    /// `Caller::system("oidc")`): creates the operator on first login with `role`, brings
    /// an existing one's role in line, or, with no role (the IdP's groups no longer map),
    /// disables it. `None`: not (or no longer) an operator.
    pub async fn provision(
        &self,
        caller: &Caller,
        id: &UserId,
        role: Option<Role>,
        metadata: serde_json::Value,
    ) -> Result<Option<Principal>, Error> {
        let existing = self
            .records
            .get(&keyspace::user(id))
            .await?
            .map(|r| r.value);
        match (existing, role) {
            (None, None) => Ok(None),
            (Some(rec), None) => {
                if !rec.disabled {
                    self.disable(caller, id).await?;
                }
                Ok(None)
            }
            (Some(rec), Some(_)) if rec.disabled => Ok(None),
            (Some(rec), Some(role)) => {
                if rec.role != role {
                    self.set_role(caller, id, role).await?;
                }
                Ok(Some(Principal::Operator {
                    user_id: id.clone(),
                    role,
                }))
            }
            (None, Some(role)) => {
                let cmd = CreateUserCommand {
                    user_id: id.clone(),
                    role,
                    metadata,
                };
                // The token is never shown: this operator signs in through the IdP (an
                // admin can still rotate one for API use).
                match self.create(caller, cmd).await {
                    Ok(_) | Err(Error::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
                Ok(Some(Principal::Operator {
                    user_id: id.clone(),
                    role,
                }))
            }
        }
    }

    /// Whether any operator exists (bootstrap check).
    pub async fn any(&self) -> Result<bool, Error> {
        Ok(!self
            .records
            .vault()
            .store()
            .list(keyspace::USER.prefix, None, 1)
            .await?
            .items
            .is_empty())
    }
}
