//! The customer's say (ADR 0013): the approvers an org's API key names, and what a request
//! on a level with `customer_approval` owes them: two single-use links each (approve, deny),
//! written with the request in one transaction, and a delivery record the delivery loop
//! (`deliver`) sends. Only the peppered digest of a link's token is stored; the token itself
//! is in the sealed delivery record until it is sent, and nowhere a provider route reads.

use super::Access;
use crate::audit::AuditRecord;
use crate::error::{Code, Error};
use crate::ids::OrgName;
use crate::keyspace;
use crate::model::{
    AccessRequestRecord, CustomerApproval, CustomerApprover, CustomerDelivery, CustomerLink,
    OrgRecord, OrgStatus, Secret,
};
use crate::policy::Action;
use crate::ports::Txn;
use crate::principal::Caller;
use crate::records::Change;

/// At most this many customer approvers per org.
pub const MAX_CUSTOMER_APPROVERS: usize = 5;
/// At most this many characters of webhook URL.
pub const MAX_WEBHOOK_URL_CHARS: usize = 512;
/// Every link token starts with this.
pub const LINK_TOKEN_PREFIX: &str = "rga_";
/// Every approver's signing secret starts with this.
const SIGNING_SECRET_PREFIX: &str = "rgw_";
/// The pepper purpose of link digests.
const LINK_PURPOSE: &str = "customer-approval-link";

/// A customer approver as the org's key sees it once, with the secret deliveries to it are
/// signed with (and its callbacks may be).
#[derive(Debug, Clone)]
pub struct NewCustomerApprover {
    pub id: String,
    pub url: String,
    pub signing_secret: Secret,
}

/// A customer approver as anyone allowed to read the org sees it.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomerApproverView {
    pub id: String,
    pub url: String,
    pub created_at: String,
}

impl From<&CustomerApprover> for CustomerApproverView {
    fn from(a: &CustomerApprover) -> Self {
        Self {
            id: a.id.clone(),
            url: a.url.clone(),
            created_at: a.created_at.clone(),
        }
    }
}

/// Checks a webhook URL: `https://` (or `http://` to a loopback address, for local
/// receivers), no credentials in it, no spaces or control characters.
pub fn parse_webhook_url(raw: &str) -> Result<String, Error> {
    let bad = |why: &str| {
        Error::invalid(
            "webhooks",
            format!(
                "webhook URL {why}: https://host[:port]/path, at most {MAX_WEBHOOK_URL_CHARS} characters"
            ),
        )
    };
    if raw.chars().count() > MAX_WEBHOOK_URL_CHARS {
        return Err(bad("is too long"));
    }
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("has spaces or control characters"));
    }
    let (https, rest) = if let Some(r) = raw.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = raw.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad("must start with https://"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("must name a host (and no user or password)"));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !https && !loopback {
        return Err(bad(
            "must use https:// (http:// only to a loopback address)",
        ));
    }
    Ok(raw.to_owned())
}

/// A new link token: 256 random bits.
fn link_token() -> Secret {
    Secret::new(
        secrecy::ExposeSecret::expose_secret(&rolegate_crypto::secret_token(LINK_TOKEN_PREFIX))
            .to_owned(),
    )
}

impl Access {
    /// The digest a link is stored under.
    pub(super) fn link_digest(&self, token: &str) -> String {
        self.records.pepper().digest(LINK_PURPOSE, token).to_hex()
    }

    /// Names the org's customer approvers, replacing any before (the org's API key only;
    /// each gets a new signing secret, shown once).
    #[tracing::instrument(skip_all, fields(org = %org))]
    pub async fn set_customer_approvers(
        &self,
        caller: &Caller,
        org: &OrgName,
        urls: &[String],
    ) -> Result<Vec<NewCustomerApprover>, Error> {
        self.orgs
            .load(caller, Action::SetCustomerApprovers, org)
            .await?;
        if urls.is_empty() || urls.len() > MAX_CUSTOMER_APPROVERS {
            return Err(Error::invalid(
                "webhooks",
                format!("name 1 to {MAX_CUSTOMER_APPROVERS} webhooks (DELETE removes them all)"),
            ));
        }
        let mut parsed = Vec::with_capacity(urls.len());
        for u in urls {
            let u = parse_webhook_url(u)?;
            if parsed.contains(&u) {
                return Err(Error::invalid("webhooks", "a webhook URL is named twice"));
            }
            parsed.push(u);
        }
        let stamp = self.records.now();
        let fresh: Vec<CustomerApprover> = parsed
            .into_iter()
            .map(|url| CustomerApprover {
                id: format!("c{}", rolegate_crypto::short_id()),
                url,
                secret: Secret::new(
                    secrecy::ExposeSecret::expose_secret(&rolegate_crypto::secret_token(
                        SIGNING_SECRET_PREFIX,
                    ))
                    .to_owned(),
                ),
                created_at: stamp.clone(),
            })
            .collect();
        self.replace_approvers(caller, org, Action::SetCustomerApprovers, &fresh)
            .await?;
        Ok(fresh
            .into_iter()
            .map(|a| NewCustomerApprover {
                id: a.id,
                url: a.url,
                signing_secret: a.secret,
            })
            .collect())
    }

    /// Removes every customer approver (the org's key, or an admin): levels that need the
    /// customer's approval then refuse new requests until the key names approvers again.
    #[tracing::instrument(skip_all, fields(org = %org))]
    pub async fn clear_customer_approvers(
        &self,
        caller: &Caller,
        org: &OrgName,
    ) -> Result<(), Error> {
        self.orgs
            .load(caller, Action::ClearCustomerApprovers, org)
            .await?;
        self.replace_approvers(caller, org, Action::ClearCustomerApprovers, &[])
            .await
    }

    /// The org's customer approvers, without their secrets (whoever may read the org).
    pub async fn customer_approvers(
        &self,
        caller: &Caller,
        org: &OrgName,
    ) -> Result<Vec<CustomerApproverView>, Error> {
        let rec = self.orgs.load(caller, Action::ReadOrg, org).await?;
        Ok(rec
            .value
            .customer_approvers
            .iter()
            .map(CustomerApproverView::from)
            .collect())
    }

    async fn replace_approvers(
        &self,
        caller: &Caller,
        org: &OrgName,
        action: Action,
        with: &[CustomerApprover],
    ) -> Result<(), Error> {
        let stamp = self.records.now();
        self.records
            .update(caller, &keyspace::org(org), |cur: &OrgRecord| {
                if cur.status == OrgStatus::Offboarded {
                    return Err(Error::offboarded(org));
                }
                if with.is_empty() && cur.customer_approvers.is_empty() {
                    return Ok(Change::Keep);
                }
                let mut next = cur.clone();
                next.customer_approvers = with.to_vec();
                next.updated_at = stamp.clone();
                let shown = |l: &[CustomerApprover]| {
                    l.iter()
                        .map(|a| serde_json::json!({"id": a.id, "url": a.url}))
                        .collect::<Vec<_>>()
                };
                let audit = AuditRecord::new(action.name())
                    .org(org.to_string())
                    .target(org.to_string())
                    .details(serde_json::json!({
                        "approvers": shown(with),
                        "previous": shown(&cur.customer_approvers),
                    }));
                Ok(Change::write(next, audit))
            })
            .await?;
        Ok(())
    }

    /// For a new request `rec` on a level that needs the customer's approval: what the
    /// request must carry, and the links and deliveries to write with it. 412 without
    /// approvers, 501 without `access.public_url`.
    pub(super) fn customer_writes(
        &self,
        org: &OrgRecord,
        rec: &mut AccessRequestRecord,
        mut txn: Txn,
    ) -> Result<Txn, Error> {
        if org.customer_approvers.is_empty() {
            return Err(Error::Precondition {
                code: Code::NoCustomerApprovers,
                message: format!(
                    "access level {} on {} needs the customer's approval, and {} has named no customer approvers",
                    rec.access_level, rec.org, rec.org
                ),
                details: serde_json::json!({"org": rec.org.to_string()}),
            });
        }
        let Some(base) = self.public_url.as_deref() else {
            return Err(Error::NotConfigured(
                "customer approval needs access.public_url (the address customers reach rolegate at)".into(),
            ));
        };
        let now = self.now();
        let ttl = std::time::Duration::from_secs(
            u64::try_from(rec.request_expires_unix - now)
                .unwrap_or(0)
                .saturating_add(3600),
        );
        rec.customer = Some(CustomerApproval {
            approvers: org
                .customer_approvers
                .iter()
                .map(|a| a.id.clone())
                .collect(),
            decision: None,
            decided_by: None,
            decided_at: None,
        });
        for approver in &org.customer_approvers {
            let mut urls = Vec::with_capacity(2);
            for decision in ["approve", "deny"] {
                let token = link_token();
                let link = CustomerLink {
                    request_id: rec.id.clone(),
                    approver_id: approver.id.clone(),
                    decision: decision.to_owned(),
                    expires_unix: rec.request_expires_unix,
                };
                let key = keyspace::access_link(&self.link_digest(token.expose()));
                txn = self.records.vault().put_ttl(
                    txn.absent(key.as_str()),
                    key.as_str(),
                    &link,
                    ttl,
                )?;
                urls.push(format!(
                    "{}/api/customer-approvals?token={}",
                    base.trim_end_matches('/'),
                    token.expose()
                ));
            }
            let body = serde_json::json!({
                "type": "rolegate.access_request",
                "approver_id": approver.id,
                "request": {
                    "id": rec.id,
                    "org": rec.org.to_string(),
                    "access_level": rec.access_level,
                    "requested_by": rec.requested_by,
                    "duration_secs": rec.duration_secs,
                    "reason": rec.reason,
                    "ticket": rec.ticket,
                    "starts_at": rec.starts_at,
                    "created_at": rec.created_at,
                    "expires_at": rec.request_expires_at,
                },
                "approve_url": urls[0],
                "deny_url": urls[1],
            });
            let id = format!("d{:012x}{}", now.max(0), rolegate_crypto::short_id());
            let delivery = CustomerDelivery {
                id: id.clone(),
                request_id: rec.id.clone(),
                org: rec.org.to_string(),
                approver_id: approver.id.clone(),
                url: approver.url.clone(),
                secret: approver.secret.clone(),
                body: Secret::new(body.to_string()),
                attempts: 0,
                next_unix: now,
                expires_unix: rec.request_expires_unix,
            };
            txn = self
                .records
                .put(txn, &keyspace::access_delivery(&id), &delivery)?;
        }
        Ok(txn)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::parse_webhook_url;

    #[test]
    fn webhook_urls_are_https_or_loopback_http_without_credentials() {
        for ok in [
            "https://approvals.acme.example/rolegate",
            "https://a.example:8443/x?y=1",
            "http://127.0.0.1:9000/hook",
            "http://localhost/hook",
            "http://[::1]:8080/hook",
        ] {
            assert_eq!(parse_webhook_url(ok).unwrap(), ok);
        }
        for bad in [
            "http://198.51.100.1/x",
            "http://example.com/x",
            "ftp://example.com",
            "https://",
            "https://user:pw@example.com/",
            "https://example.com/ x",
            "https://example.com/\n",
            &format!("https://example.com/{}", "a".repeat(600)),
            "http://127.0.0.1.evil.example/",
        ] {
            let e = parse_webhook_url(bad).unwrap_err();
            assert!(
                matches!(e, crate::error::Error::Invalid { ref field, .. } if field == "webhooks"),
                "{bad}"
            );
        }
    }
}
