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
    AccessRequestRecord, ApproverChannel, CustomerApproval, CustomerApprover, CustomerDelivery,
    CustomerLink, OrgRecord, OrgStatus, Secret,
};
use crate::policy::Action;
use crate::ports::Txn;
use crate::principal::Caller;
use crate::records::Change;

/// At most this many customer approvers per org.
pub const MAX_CUSTOMER_APPROVERS: usize = 5;
/// At most this many characters of webhook URL.
pub const MAX_WEBHOOK_URL_CHARS: usize = 512;
/// At most this many characters of email address (RFC 5321's path limit less the brackets).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Every link token starts with this.
pub const LINK_TOKEN_PREFIX: &str = "rga_";
/// Every approver's signing secret starts with this.
const SIGNING_SECRET_PREFIX: &str = "rgw_";
/// The pepper purpose of link digests.
const LINK_PURPOSE: &str = "customer-approval-link";

/// A customer approver as the org's key sees it once: a webhook with the secret deliveries
/// to it are signed with (and its callbacks may be), or an email address (no secret).
#[derive(Debug, Clone)]
pub struct NewCustomerApprover {
    pub id: String,
    pub channel: ApproverChannel,
    /// The webhook URL or the email address.
    pub url: String,
    /// Webhooks only.
    pub signing_secret: Option<Secret>,
}

/// A customer approver as anyone allowed to read the org sees it.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomerApproverView {
    pub id: String,
    /// `webhook` or `email`.
    pub kind: ApproverChannel,
    /// A webhook approver's URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// An email approver's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub created_at: String,
}

impl From<&CustomerApprover> for CustomerApproverView {
    fn from(a: &CustomerApprover) -> Self {
        let (url, email) = match a.channel {
            ApproverChannel::Webhook => (Some(a.url.clone()), None),
            ApproverChannel::Email => (None, Some(a.url.clone())),
        };
        Self {
            id: a.id.clone(),
            kind: a.channel,
            url,
            email,
            created_at: a.created_at.clone(),
        }
    }
}

/// Checks an email address strictly: ASCII `local@domain`, at most 254 characters; the
/// local part a dot-atom (letters, digits, ``!#$%&'*+/=?^_`{|}~-`` and single inner dots,
/// at most 64); the domain at least two DNS labels (letters, digits, inner hyphens, at
/// most 63 each). No quoted local parts, comments, IP literals or display names: what is
/// accepted is exactly what is sent to, so nothing can smuggle a second recipient or a
/// header into the SMTP envelope.
pub fn parse_email_address(raw: &str) -> Result<String, Error> {
    let bad = |why: &str| {
        Error::invalid(
            "emails",
            format!("email address {why}: name@example.com, at most {MAX_EMAIL_CHARS} characters"),
        )
    };
    if raw.len() > MAX_EMAIL_CHARS {
        return Err(bad("is too long"));
    }
    if !raw.is_ascii() || raw.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(bad("must be ASCII without spaces or control characters"));
    }
    let Some((local, domain)) = raw.split_once('@') else {
        return Err(bad("needs an @"));
    };
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(atext));
    if !local_ok {
        return Err(bad("has an invalid part before the @"));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.chars().any(|c| c.is_ascii_alphabetic()));
    if !domain_ok {
        return Err(bad("has an invalid domain (after the @)"));
    }
    Ok(raw.to_owned())
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

    /// Names the org's customer approvers, webhooks and email addresses, replacing any
    /// before (the org's API key only; each webhook gets a new signing secret, shown
    /// once). Email approvers need `[smtp]`: without it, 412 `email_not_configured`.
    #[tracing::instrument(skip_all, fields(org = %org))]
    pub async fn set_customer_approvers(
        &self,
        caller: &Caller,
        org: &OrgName,
        urls: &[String],
        emails: &[String],
    ) -> Result<Vec<NewCustomerApprover>, Error> {
        self.orgs
            .load(caller, Action::SetCustomerApprovers, org)
            .await?;
        let total = urls.len().saturating_add(emails.len());
        if total == 0 || total > MAX_CUSTOMER_APPROVERS {
            return Err(Error::invalid(
                if emails.is_empty() {
                    "webhooks"
                } else {
                    "emails"
                },
                format!(
                    "name 1 to {MAX_CUSTOMER_APPROVERS} approvers in webhooks and emails together (DELETE removes them all)"
                ),
            ));
        }
        let mut parsed = Vec::with_capacity(total);
        for u in urls {
            let u = parse_webhook_url(u)?;
            if parsed.contains(&(ApproverChannel::Webhook, u.clone())) {
                return Err(Error::invalid("webhooks", "a webhook URL is named twice"));
            }
            parsed.push((ApproverChannel::Webhook, u));
        }
        for e in emails {
            let e = parse_email_address(e)?;
            if parsed
                .iter()
                .any(|(c, a)| *c == ApproverChannel::Email && a.eq_ignore_ascii_case(&e))
            {
                return Err(Error::invalid("emails", "an email address is named twice"));
            }
            parsed.push((ApproverChannel::Email, e));
        }
        if !emails.is_empty() && !self.mail {
            return Err(Error::Precondition {
                code: Code::EmailNotConfigured,
                message: "this server cannot send email: its configuration has no [smtp] table; name webhooks instead, or ask the provider to configure SMTP".into(),
                details: serde_json::json!({"field": "emails"}),
            });
        }
        let stamp = self.records.now();
        let fresh: Vec<CustomerApprover> = parsed
            .into_iter()
            .map(|(channel, url)| CustomerApprover {
                id: format!("c{}", rolegate_crypto::short_id()),
                channel,
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
                channel: a.channel,
                url: a.url,
                signing_secret: (a.channel == ApproverChannel::Webhook).then_some(a.secret),
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
                        .map(|a| {
                            serde_json::json!({"id": a.id, "kind": a.channel.as_str(), "url": a.url})
                        })
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
                channel: approver.channel,
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
    use super::{parse_email_address, parse_webhook_url};

    #[test]
    fn email_addresses_are_plain_dot_atoms_at_dns_names() {
        for ok in [
            "security@acme.example",
            "first.last+rolegate@mail.acme.example",
            "o'brien@acme.co.uk",
            "x@a-b.example",
        ] {
            assert_eq!(parse_email_address(ok).unwrap(), ok);
        }
        for bad in [
            "",
            "acme.example",
            "@acme.example",
            "security@",
            "security@localhost",
            "security@acme",
            "Security <security@acme.example>",
            "\"quoted\"@acme.example",
            ".a@acme.example",
            "a.@acme.example",
            "a..b@acme.example",
            "a@@acme.example",
            "a@acme..example",
            "a@-acme.example",
            "a@acme-.example",
            "a@[127.0.0.1]",
            "a@127.0.0.1",
            "a b@acme.example",
            "a@acme.example\r\nBcc: x@evil.example",
            "a@acme.example,b@acme.example",
            "é@acme.example",
            &format!("{}@acme.example", "a".repeat(65)),
            &format!("a@{}.example", "b".repeat(250)),
        ] {
            let e = parse_email_address(bad).unwrap_err();
            assert!(
                matches!(e, crate::error::Error::Invalid { ref field, .. } if field == "emails"),
                "{bad}"
            );
        }
    }

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
