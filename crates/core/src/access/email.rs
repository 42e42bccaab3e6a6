//! The email a customer approver reached by mail receives: rendered, when it is sent, from
//! the same sealed delivery body a webhook approver is POSTed (so both channels carry the
//! same request and the same two single-use links). Plain text only: nothing in it is
//! markup, so nothing a requester types can become a link or a button.

use serde::Deserialize;

use crate::ports::mail::{Email, MailError};

/// The part of the delivery body the email shows.
#[derive(Debug, Deserialize)]
struct Body {
    request: Request,
    approve_url: String,
    deny_url: String,
}

#[derive(Debug, Deserialize)]
struct Request {
    id: String,
    org: String,
    access_level: String,
    requested_by: String,
    duration_secs: u32,
    reason: Option<String>,
    ticket: Option<String>,
    starts_at: Option<String>,
    expires_at: String,
}

/// `2h 30m`, `45m`, `1h`.
fn duration(secs: u32) -> String {
    let (h, m) = (secs / 3600, (secs % 3600) / 60);
    match (h, m) {
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h {m}m"),
    }
}

/// One line of free text: control characters become spaces.
fn line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The message for `to` from a delivery's JSON `body`.
pub(super) fn render(to: &str, body: &str) -> Result<Email, MailError> {
    let b: Body = serde_json::from_str(body)
        .map_err(|_| MailError("the delivery's body could not be read".into()))?;
    let r = &b.request;
    let reason = r
        .reason
        .as_deref()
        .map_or_else(|| "(none given)".into(), line);
    let ticket = r.ticket.as_deref().map_or_else(|| "(none)".into(), line);
    let starts = r
        .starts_at
        .as_deref()
        .unwrap_or("as soon as it is approved");
    let subject = format!(
        "[rolegate] {} asks for {} access to {} for {}",
        r.requested_by,
        r.access_level,
        r.org,
        duration(r.duration_secs)
    );
    let text = format!(
        "{who} asks for access to {org}'s AWS account through rolegate.\n\
         Your organisation requires your approval before it is granted.\n\
         \n\
         Organisation:  {org}\n\
         Requested by:  {who}\n\
         Access level:  {level}\n\
         Duration:      {dur} ({secs} seconds)\n\
         Reason:        {reason}\n\
         Ticket:        {ticket}\n\
         Starts:        {starts}\n\
         Request:       {id}\n\
         Answer by:     {expires}\n\
         \n\
         To APPROVE:\n\
         {approve}\n\
         \n\
         To DENY:\n\
         {deny}\n\
         \n\
         Opening a link in a browser shows the request and one button; nothing is\n\
         decided until it is pressed. Without a browser: curl -X POST '<link>'\n\
         Each link decides once, and stops working at {expires}.\n\
         Do not forward this message: whoever holds a link can decide with it.\n",
        who = r.requested_by,
        org = r.org,
        level = r.access_level,
        dur = duration(r.duration_secs),
        secs = r.duration_secs,
        id = r.id,
        expires = r.expires_at,
        approve = b.approve_url,
        deny = b.deny_url,
    );
    Ok(Email {
        to: to.to_owned(),
        subject: line(&subject),
        text,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn the_email_names_the_request_and_both_links() {
        let body = serde_json::json!({
            "type": "rolegate.access_request",
            "approver_id": "c1",
            "request": {
                "id": "a1", "org": "acme", "access_level": "operator",
                "requested_by": "user:dave", "duration_secs": 9000,
                "reason": "INC-1\r\nBcc: x@evil.example", "ticket": null,
                "starts_at": null, "created_at": "2026-01-01T00:00:00Z",
                "expires_at": "2026-01-01T00:10:00Z"
            },
            "approve_url": "https://rg.example/api/customer-approvals?token=rga_a",
            "deny_url": "https://rg.example/api/customer-approvals?token=rga_d",
        });
        let m = super::render("ops@acme.example", &body.to_string()).unwrap();
        assert_eq!(m.to, "ops@acme.example");
        assert_eq!(
            m.subject,
            "[rolegate] user:dave asks for operator access to acme for 2h 30m"
        );
        for want in [
            "Organisation:  acme",
            "Requested by:  user:dave",
            "Access level:  operator",
            "Duration:      2h 30m (9000 seconds)",
            "Reason:        INC-1  Bcc: x@evil.example",
            "Ticket:        (none)",
            "Answer by:     2026-01-01T00:10:00Z",
            "To APPROVE:\nhttps://rg.example/api/customer-approvals?token=rga_a\n",
            "To DENY:\nhttps://rg.example/api/customer-approvals?token=rga_d\n",
        ] {
            assert!(m.text.contains(want), "{want}\n{}", m.text);
        }
        assert!(!format!("{m:?}").contains("rga_"), "Debug hides the links");
        assert!(super::render("x@y.example", "{}").is_err());
        assert_eq!(super::duration(2700), "45m");
        assert_eq!(super::duration(3600), "1h");
    }
}
