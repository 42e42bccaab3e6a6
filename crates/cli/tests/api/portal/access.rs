//! Just-in-time access in the browser: operator A asks for a level that needs approval,
//! approver B approves it from the queue with a comment, A's credentials run under the
//! grant and say how long it has left, B revokes it from the grants list, and A's next
//! attempt is refused with `grant_required`.

use super::journey::nothing_left_loopback;
use super::webdriver::Browser;
use super::{client, events, form_token, http_sign_in, shot, sign_in};
use crate::onboarding::{onboarding_app, validated_org};
use crate::support::Engine;

/// `operator` needs bob's approval; `readonly` does not.
const ACCESS_TOML: &str = r#"
[access]
sweep_interval_ms = 100
[credentials.access_levels.readonly]
policy_arns = ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
[credentials.access_levels.operator]
max_duration_secs = 3600
[credentials.access_levels.operator.approval]
requires_approval = true
approvers = ["bob"]
reason_required = true
max_duration_secs = 14400
"#;

/// Picks `value` in the `<select>` `css` (as a keyboard user would, without the keys).
async fn pick(b: &Browser, css: &str, value: &str) {
    b.find(css).await;
    let script =
        format!("const s = document.querySelector({css:?}); s.value = {value:?}; return s.value;");
    assert_eq!(b.execute(&script).await.as_str(), Some(value), "{css}");
}

async fn a_grant_is_requested_approved_used_and_revoked_in_the_browser(engine: Engine) {
    let app = onboarding_app(engine, false, false, ACCESS_TOML).await;
    let alice = app.create_user("alice", "operator").await;
    let bob = app.create_user("bob", "operator").await;
    let org = format!("jit-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    validated_org(&app, &alice, &org).await;

    // A: the credentials page links the level that needs a grant to the request form.
    let a = Browser::start().await;
    sign_in(&a, &app, &alice).await;
    a.goto(&app.url(&format!("/credentials?org={org}"))).await;
    a.click(&format!("#request-{org}-operator")).await;
    a.wait_path("/access/new").await;
    let chosen = a
        .execute("return document.querySelector('#choice').value;")
        .await;
    assert_eq!(chosen.as_str(), Some(format!("{org}|operator").as_str()));
    assert!(a.text("#choice").await.contains("reason required"));
    a.type_into("#reason", "INC-7: payments stuck").await;
    a.type_into("#duration_mins", "60").await;
    shot(&a, "access-request").await;
    a.click("#submit-request").await;
    a.wait_path("/access").await;
    let row = a.attr("#mine tbody tr", "id").await;
    let id = row.strip_prefix("mine-").unwrap().to_owned();
    assert_eq!(a.text(&format!("#state-{id}")).await, "pending");
    // Not in A's own queue, and approving it anyway is refused: no self-approval.
    assert!(a.try_find(&format!("#queue-{id}")).await.is_none());
    let s = http_sign_in(&app, &alice).await;
    let r = client()
        .post(app.url(&format!("/access/requests/{id}/approve")))
        .header("cookie", &s.cookie)
        .header("origin", &app.base)
        .form(&[("csrf", s.csrf.as_str()), ("comment", "me")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("id=\"error-code\""));

    // B: the queue, approve with a comment; the grant is running.
    let b = Browser::start().await;
    sign_in(&b, &app, &bob).await;
    b.click("nav a[href='/access']").await;
    b.wait_path("/access").await;
    b.find(&format!("#queue-{id}")).await;
    assert!(b.text(&format!("#queue-{id}")).await.contains("INC-7"));
    b.type_into(&format!("#comment-{id}"), "ok for INC-7").await;
    shot(&b, "access-queue").await;
    b.click(&format!("#approve-{id}")).await;
    b.wait_path("/access").await;
    b.find(&format!("#grant-{id}")).await;
    assert!(b.text(&format!("#grant-{id}")).await.contains("active"));
    shot(&b, "access-grants").await;
    let approved = events(&app, "access.approve").await;
    assert!(
        approved
            .iter()
            .any(|e| e["outcome"] == "success" && e["actor"] == "user:bob"),
        "{approved:?}"
    );

    // A: credentials under the grant, with the time it has left.
    a.goto(&app.url("/access")).await;
    assert_eq!(a.text(&format!("#state-{id}")).await, "active");
    // The holder sees its grant but has no revoke button, and the service refuses it too.
    a.find(&format!("#grant-{id}")).await;
    assert!(a.try_find(&format!("#revoke-{id}")).await.is_none());
    let r = client()
        .post(app.url(&format!("/access/requests/{id}/revoke")))
        .header("cookie", &s.cookie)
        .header("origin", &app.base)
        .form(&[("csrf", s.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        a.text(&format!("#mine-{id}"))
            .await
            .contains("ok for INC-7")
    );
    a.goto(&app.url(&format!("/credentials?org={org}"))).await;
    assert!(a.text("#choice").await.contains("operator (grant,"));
    pick(&a, "#choice", &format!("{org}|operator")).await;
    a.click("#get").await;
    let banner = a.text("#grant").await;
    assert!(banner.contains(&id), "{banner}");
    let left = a.text("#grant-left").await;
    assert!(left.ends_with("min") || left.ends_with('h'), "{left}");
    assert!(
        a.text("#env")
            .await
            .starts_with("export AWS_ACCESS_KEY_ID=")
    );
    shot(&a, "credentials-grant").await;
    // A opens the form again while the grant runs…
    a.goto(&app.url(&format!("/credentials?org={org}"))).await;
    pick(&a, "#choice", &format!("{org}|operator")).await;

    // …B revokes the grant from the list (the holder has no revoke button)…
    b.goto(&app.url("/access")).await;
    b.type_into(&format!("#revoke-comment-{id}"), "incident closed")
        .await;
    b.click(&format!("#revoke-{id}")).await;
    b.wait_path("/access").await;
    b.find("#grants-empty").await;
    // One revocation, by bob; alice's attempt is in the log as a refusal.
    let revokes = events(&app, "access.revoke").await;
    let by = |actor: &str, outcome: &str| {
        revokes
            .iter()
            .filter(|e| e["actor"] == actor && e["outcome"] == outcome)
            .count()
    };
    assert_eq!(
        (by("user:bob", "success"), by("user:alice", "failure")),
        (1, 1),
        "{revokes:?}"
    );

    // …and A's next attempt is refused, on the one error page, with a way to ask again.
    a.click("#get").await;
    a.wait_text("#error-code", "grant_required", 10).await;
    a.find("#request-access").await;
    shot(&a, "access-refused").await;
    let html = client()
        .get(app.url("/access"))
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&format!("id=\"state-{id}\">revoked")),
        "{html}"
    );
    assert!(!form_token(&html).is_empty());

    nothing_left_loopback(&a, &app).await;
    nothing_left_loopback(&b, &app).await;
    a.quit().await;
    b.quit().await;
}

mod sqlite {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_grant_is_requested_approved_used_and_revoked_in_the_browser() {
        super::a_grant_is_requested_approved_used_and_revoked_in_the_browser(Engine::Sqlite).await;
    }
}

mod postgres {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_grant_is_requested_approved_used_and_revoked_in_the_browser() {
        super::a_grant_is_requested_approved_used_and_revoked_in_the_browser(Engine::Postgres)
            .await;
    }
}
