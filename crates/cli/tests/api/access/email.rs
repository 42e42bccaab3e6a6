//! Email customer approvers (issue 12 §6, ADR 0025) against a real SMTP server (`aiosmtpd`
//! from the test venv, on a free port, writing a maildir): only the org's key names them,
//! strictly checked addresses, 412 without `[smtp]`; rolegate mails the request and its two
//! single-use links, the test reads the received message, follows the approve link (GET
//! shows, POST decides) and the grant is active; a reused link is 409; while the mail
//! server is down the delivery backs off on the test clock and lands when it is back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde_json::json;

use super::{creds, decide, people, request};
use crate::both_engines;
use crate::onboarding::{onboarding_app, validated_org};
use crate::support::{Engine, TestApp, free_port, venv_bin};

/// `operator` needs one approval from `group:sre`, and on `mail-org` the customer's too.
const EMAIL_TOML: &str = r#"
[access]
sweep_interval_ms = 100
[access.groups]
sre = ["bob", "carol"]
[credentials.access_levels.readonly]
policy_arns = ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
[credentials.access_levels.operator]
max_duration_secs = 3600
[credentials.access_levels.operator.approval]
requires_approval = true
approvers = ["group:sre"]
reason_required = true
max_duration_secs = 14400
request_ttl_secs = 600
[credentials.access_levels.operator.approval.orgs.mail-org]
customer_approval = true
"#;

/// A running `aiosmtpd` that stores every message in a maildir; stopped when dropped.
struct SmtpServer {
    _child: tokio::process::Child,
}

/// Starts `aiosmtpd` on 127.0.0.1:`port`, storing mail under `dir`, and waits until it
/// answers.
async fn smtp_server(port: u16, dir: &Path) -> SmtpServer {
    let child = tokio::process::Command::new(venv_bin("python"))
        .args(["-m", "aiosmtpd", "-n", "-l"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("aiosmtpd is in the test venv (scripts/requirements-test.txt)");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return SmtpServer { _child: child };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("aiosmtpd did not start on port {port}");
}

/// The messages in the maildir, oldest first.
fn messages(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.join("new")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap());
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// A received message: unfolded headers (lower-case names) and the decoded text body.
struct Mail {
    headers: Vec<(String, String)>,
    text: String,
}

impl Mail {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

fn parse_mail(raw: &str) -> Mail {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            headers.last_mut().unwrap().1.push_str(line);
        } else if let Some((n, v)) = line.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let encoding = headers
        .iter()
        .find(|(n, _)| n == "content-transfer-encoding")
        .map_or("7bit".to_owned(), |(_, v)| v.to_ascii_lowercase());
    let text = match encoding.as_str() {
        "quoted-printable" => quoted_printable(body),
        "base64" => String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(body.split_whitespace().collect::<String>())
                .unwrap(),
        )
        .unwrap(),
        "7bit" | "8bit" => body.to_owned(),
        other => panic!("unexpected transfer encoding {other}"),
    };
    Mail { headers, text }
}

/// RFC 2045 quoted-printable: `=` at a line's end joins it to the next; `=XX` is a byte.
fn quoted_printable(body: &str) -> String {
    let joined = body.replace("=\n", "");
    let b = joined.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

async fn set_approvers(app: &TestApp, who: &str, body: serde_json::Value) -> crate::support::Resp {
    app.send(
        app.client
            .put(app.url("/api/orgs/mail-org/customer-approvers"))
            .bearer_auth(who)
            .json(&body),
    )
    .await
}

/// Waits (polling, at most 15 s) for `n` messages.
async fn received(dir: &Path, n: usize) -> Vec<String> {
    for _ in 0..150 {
        let got = messages(dir);
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("only {} messages", messages(dir).len());
}

/// Without `[smtp]` an email approver is refused (412), and nothing is stored; bad
/// addresses are 400 naming `emails`.
async fn email_approvers_need_smtp(engine: Engine) {
    let app = onboarding_app(engine, false, true, EMAIL_TOML).await;
    let p = people(&app).await;
    let key = validated_org(&app, &p.alice, "mail-org").await;
    let r = set_approvers(&app, &key, json!({"emails": ["security@acme.example"]})).await;
    assert_eq!(
        (r.status, r.code()),
        (412, "email_not_configured"),
        "{:?}",
        r.body
    );
    let listed = app.get("/api/orgs/mail-org/customer-approvers", &key).await;
    assert_eq!(listed.body["approvers"], json!([]), "{:?}", listed.body);
    for bad in [
        "no-at-sign",
        "Security <security@acme.example>",
        "a@b",
        "a..b@acme.example",
        "a@acme.example\r\nBcc: x@evil.example",
        "a@-acme.example",
    ] {
        let r = set_approvers(&app, &key, json!({"emails": [bad]})).await;
        assert_eq!((r.status, r.code()), (400, "invalid_field"), "{bad}");
        assert_eq!(r.body["error"]["field"], "emails", "{:?}", r.body);
    }
    let r = set_approvers(&app, &key, json!({})).await;
    assert_eq!((r.status, r.code()), (400, "invalid_field"));
}

/// The customer approves by email: the message names the request and carries both links;
/// while the mail server is down the delivery backs off on the test clock.
async fn customer_approval_by_email(engine: Engine) {
    let port = free_port();
    let smtp = format!(
        "{EMAIL_TOML}\n[smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"rolegate@provider.example\"\ntimeout_ms = 2000\n"
    );
    let app = onboarding_app(engine, false, true, &smtp).await;
    let p = people(&app).await;
    let key = validated_org(&app, &p.alice, "mail-org").await;
    // Only the org's key names approvers.
    let body = json!({"emails": ["security@acme.example"]});
    for who in [&app.admin_token, &p.alice] {
        let r = set_approvers(&app, who, body.clone()).await;
        assert_eq!((r.status, r.code()), (403, "forbidden"), "{:?}", r.body);
    }
    let r = set_approvers(&app, &key, body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let approver = &r.body["approvers"][0];
    assert_eq!(approver["kind"], "email");
    assert_eq!(approver["email"], "security@acme.example");
    assert!(approver.get("signing_secret").is_none(), "{approver}");
    let listed = app.get("/api/orgs/mail-org/customer-approvers", &key).await;
    assert_eq!(listed.body["approvers"][0]["kind"], "email");

    // The mail server is down: the first attempt fails and books a retry 10 s later.
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("mail");
    let req = request(&app, &p.dave, "mail-org", 5400).await;
    let id = req["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _server = smtp_server(port, &maildir).await;
    // Up now, but the retry waits for its backoff: were the first attempt not made (and
    // booked), the delivery would be due and sent at once.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(messages(&maildir).len(), 0, "no retry before the backoff");
    app.clock.advance_ms(11_000);
    let got = received(&maildir, 1).await;
    assert_eq!(got.len(), 1);
    let mail = parse_mail(&got[0]);
    assert!(
        mail.header("to").contains("security@acme.example"),
        "{}",
        mail.header("to")
    );
    assert!(mail.header("from").contains("rolegate@provider.example"));
    let subject = mail.header("subject");
    assert!(
        subject.contains("dave") && subject.contains("operator") && subject.contains("mail-org"),
        "{subject}"
    );
    for want in [
        "Organisation:  mail-org",
        "Requested by:  dave",
        "Access level:  operator",
        "Duration:      1h 30m (5400 seconds)",
        "Reason:        INC-123",
        &format!("Request:       {id}"),
        req["request_expires_at"].as_str().unwrap(),
    ] {
        assert!(mail.text.contains(want), "{want} not in\n{}", mail.text);
    }
    let links: Vec<&str> = mail
        .text
        .lines()
        .filter(|l| l.starts_with(&format!("{}/api/customer-approvals?token=rga_", app.base)))
        .collect();
    assert_eq!(links.len(), 2, "{}", mail.text);
    let approve_at = mail.text.find("To APPROVE:").unwrap();
    let deny_at = mail.text.find("To DENY:").unwrap();
    let (approve, deny) = (links[0].to_owned(), links[1].to_owned());
    assert!(approve_at < mail.text.find(&approve).unwrap());
    assert!(deny_at < mail.text.find(&deny).unwrap());
    let token = approve.split("token=").nth(1).unwrap().to_owned();

    // The links never reach the provider's routes or the audit log.
    for path in [
        format!("/api/access-requests/{id}"),
        "/api/audit?org=mail-org".to_owned(),
    ] {
        let r = app.get(&path, &app.admin_token).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(!String::from_utf8_lossy(&r.raw).contains(&token), "{path}");
    }
    let events = serde_json::to_string(
        &app.audit_events()
            .await
            .iter()
            .map(|e| &e.details)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(!events.contains(&token));

    // The provider's quorum, then the customer's link: GET shows, POST decides.
    let r = decide(&app, &p.bob, &id, "approve").await;
    assert_eq!(r.body["state"], "pending", "{:?}", r.body);
    let shown = app.send(app.client.get(&approve)).await;
    assert_eq!(shown.status, 200, "{:?}", shown.body);
    assert_eq!(shown.body["decision"], "approve");
    assert_eq!(shown.body["request"]["state"], "pending");
    // The approver opens the mail's link in a browser: a page showing the request and one
    // button, with the portal's headers (no Referer can carry the token away); opening it
    // decides nothing.
    const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let page = app
        .send(app.client.get(&approve).header("accept", BROWSER))
        .await;
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.raw).into_owned();
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("form-action 'self'")
    );
    for want in [
        "Approve an access request",
        "INC-123",
        "mail-org",
        "id=\"decide\"",
        id.as_str(),
    ] {
        assert!(html.contains(want), "{want} not in {html}");
    }
    assert!(
        html.contains(&format!("action=\"/api/customer-approvals?token={token}\"")),
        "{html}"
    );
    let r = app
        .get(&format!("/api/access-requests/{id}"), &p.dave)
        .await;
    assert_eq!(r.body["state"], "pending", "{:?}", r.body);
    // Pressing the button: the browser's form post, answered with a page.
    let done = app
        .send(
            app.client
                .post(&approve)
                .header("accept", BROWSER)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(""),
        )
        .await;
    assert_eq!(done.status, 200);
    let html = String::from_utf8_lossy(&done.raw).into_owned();
    assert!(html.contains("Request approved"), "{html}");
    assert!(!html.contains("id=\"decide\""), "{html}");
    let r = app
        .get(&format!("/api/access-requests/{id}"), &p.dave)
        .await;
    assert_eq!(r.body["state"], "active", "{:?}", r.body);
    let c = creds(&app, &p.dave, "mail-org", false).await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    assert_eq!(c.body["grant_id"], id.as_str());
    // Reused in the browser: the refusal as a page, with the API's status.
    let again = app
        .send(app.client.post(&approve).header("accept", BROWSER))
        .await;
    assert_eq!(again.status, 409);
    let html = String::from_utf8_lossy(&again.raw).into_owned();
    assert!(html.contains("cannot be used"), "{html}");
    // Reused, or the sibling link: 409.
    for u in [&approve, &deny] {
        let r = app.send(app.client.post(u)).await;
        assert_eq!(
            (r.status, r.code()),
            (409, "approval_link_used"),
            "{:?}",
            r.body
        );
    }
    // A signed POST on an email approver's link never verifies: it has no secret to sign with.
    let id2 = request(&app, &p.dave, "mail-org", 3600).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = received(&maildir, 2).await;
    let second = parse_mail(&got[1]);
    assert!(second.text.contains(&id2));
    let approve2 = second
        .text
        .lines()
        .find(|l| l.contains("token=rga_"))
        .unwrap()
        .to_owned();
    let now = app.clock_now_ms().await / 1000;
    let forged = rolegate_crypto::webhook::sign(b"", now, b"");
    let r = app
        .send(
            app.client
                .post(&approve2)
                .header("x-rolegate-signature", forged),
        )
        .await;
    assert_eq!(r.status, 401, "{:?}", r.body);
}

both_engines!(email_approvers_need_smtp, customer_approval_by_email);
