use super::webdriver::Browser;
use super::{client, events, http_sign_in, shot, sign_in};
use crate::support::{AppOptions, Engine, spawn_app, spawn_with};

/// Every page a signed-in operator can open, and the login page.
const PAGES: &[&str] = &[
    "/",
    "/credentials",
    "/access",
    "/access/new",
    "/audit",
    "/operators",
    "/login",
];

#[tokio::test]
async fn an_anonymous_visit_goes_to_the_login_page_and_every_page_is_locked_down() {
    let app = spawn_app(Engine::Sqlite).await;
    let c = client();
    for path in ["/", "/credentials", "/audit", "/operators", "/orgs/acme"] {
        let r = c.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers()["location"], "/login", "{path}");
    }
    let s = http_sign_in(&app, &app.admin_token).await;
    for path in PAGES {
        let r = c
            .get(app.url(path))
            .header("cookie", &s.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        let html = r.text().await.unwrap();
        assert!(
            !html.contains("<script>") && !html.contains(" style="),
            "{path}: inline code"
        );
        assert!(!html.contains("https://"), "{path}: no outside asset");
    }
    // An error page: one shape, with the code and the request id.
    let r = c
        .get(app.url("/orgs/nope-nope"))
        .header("cookie", &s.cookie)
        .header("x-request-id", "portal-test-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let html = r.text().await.unwrap();
    assert!(
        html.contains("<code id=\"error-code\">not_found</code>"),
        "{html}"
    );
    assert!(html.contains("portal-test-1"), "{html}");
    // A wrong token: 401 with the form again, audited as auth.failed.
    let r = c
        .post(app.url("/login"))
        .header("origin", &app.base)
        .form(&[("token", "rgt_wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let failed = events(&app, "auth.failed").await;
    assert!(
        failed
            .iter()
            .any(|e| e["details"]["credential"] == "portal_token"),
        "{failed:?}"
    );
    assert_eq!(events(&app, "session.login").await.len(), 1);
}

#[tokio::test]
async fn failed_sign_ins_share_the_api_rate_limit() {
    let app = spawn_with(
        Engine::Sqlite,
        AppOptions {
            toml: "[rate_limits]\nauth_failures_per_ip = { burst = 3, period_secs = 60 }\n".into(),
            ..Default::default()
        },
    )
    .await;
    // Two wrong bearer tokens on the API, then the portal's budget is nearly spent too.
    for _ in 0..2 {
        assert_eq!(app.get("/api/users", "rgt_wrong").await.status, 401);
    }
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = c
            .post(app.url("/login"))
            .header("origin", &app.base)
            .form(&[("token", "rgt_wrong")])
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn cross_origin_posts_and_missing_form_tokens_are_refused() {
    let app = spawn_app(Engine::Sqlite).await;
    let s = http_sign_in(&app, &app.admin_token).await;
    let c = client();
    let post = |headers: Vec<(&'static str, String)>, csrf: Option<&str>| {
        let mut r = c.post(app.url("/orgs")).header("cookie", &s.cookie);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        let mut form = vec![("org_name", "csrf-test".to_owned())];
        if let Some(t) = csrf {
            form.push(("csrf", t.to_owned()));
        }
        r.form(&form).send()
    };
    let same = || vec![("sec-fetch-site", "same-origin".to_owned())];
    for (headers, token) in [
        (
            vec![("sec-fetch-site", "cross-site".to_owned())],
            Some(s.csrf.as_str()),
        ),
        (
            vec![("sec-fetch-site", "same-site".to_owned())],
            Some(s.csrf.as_str()),
        ),
        (
            vec![("origin", "http://evil.example".to_owned())],
            Some(s.csrf.as_str()),
        ),
        (vec![], Some(s.csrf.as_str())),
        (same(), None),
        (same(), Some("rgf_wrong")),
    ] {
        let r = post(headers.clone(), token).await.unwrap();
        assert_eq!(r.status(), 403, "{headers:?} {token:?}");
    }
    assert_eq!(
        app.get("/api/orgs/csrf-test", &app.admin_token)
            .await
            .status,
        404
    );
    let r = post(same(), Some(&s.csrf)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.get("/api/orgs/csrf-test", &app.admin_token)
            .await
            .status,
        200
    );

    // A real cross-origin form in the browser (another port is another origin).
    let b = Browser::start().await;
    sign_in(&b, &app, &app.admin_token).await;
    let target = app.url("/orgs");
    let evil = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let target = target.clone();
            async move {
                axum::response::Html(format!(
                    "<form id=f method=post action='{target}'><input name=org_name value=evil-org></form>\
                     <script>document.getElementById('f').submit()</script>"
                ))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil_url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, evil).await });
    b.goto(&evil_url).await;
    b.wait_text("#error-code", "forbidden", 10).await;
    assert_eq!(
        app.get("/api/orgs/evil-org", &app.admin_token).await.status,
        404
    );
    b.quit().await;
}

async fn session_expiry_and_disabling_end_the_session(engine: Engine) {
    let app = spawn_with(
        engine,
        AppOptions {
            manual_clock: true,
            ..Default::default()
        },
    )
    .await;
    let token = app.create_user("dave", "operator").await;
    let b = Browser::start().await;
    sign_in(&b, &app, &token).await;
    // Idle for an hour: the next page is the login page, saying why.
    app.clock.advance_ms(3_601_000);
    b.click("nav a[href='/audit']").await;
    b.wait_path("/login").await;
    assert!(b.text("#notice").await.contains("expired"));
    shot(&b, "session-expired").await;
    assert_eq!(events(&app, "session.expired").await.len(), 1);

    // Signed in again, then disabled by an admin: the open page stops working on its next
    // action.
    sign_in(&b, &app, &token).await;
    assert_eq!(
        app.delete("/api/users/dave", &app.admin_token).await.status,
        200
    );
    b.type_into("#org_name", "after-disable").await;
    b.click("form[action='/orgs'] button").await;
    b.wait_path("/login").await;
    assert!(b.text("#notice").await.contains("disabled"));
    assert_eq!(events(&app, "session.revoked").await.len(), 1);
    assert_eq!(
        app.get("/api/orgs/after-disable", &app.admin_token)
            .await
            .status,
        404
    );
    b.quit().await;
}

mod sqlite {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn session_expiry_and_disabling_end_the_session() {
        super::session_expiry_and_disabling_end_the_session(Engine::Sqlite).await;
    }
}

mod redis {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn session_expiry_and_disabling_end_the_session() {
        super::session_expiry_and_disabling_end_the_session(Engine::Redis).await;
    }
}

/// Two replicas on one PostgreSQL: signing out on one ends the session on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logout_works_on_every_replica() {
    let a = spawn_app(Engine::Postgres).await;
    let b = spawn_with(
        Engine::Postgres,
        AppOptions {
            store: Some(a.store.clone()),
            master_key: Some(a.master_key.clone()),
            ..Default::default()
        },
    )
    .await;
    let s = http_sign_in(&a, &a.admin_token).await;
    let c = client();
    let home =
        |app: &crate::support::TestApp| c.get(app.url("/")).header("cookie", &s.cookie).send();
    assert_eq!(
        home(&b).await.unwrap().status(),
        200,
        "the session works on B"
    );
    let r = c
        .post(a.url("/logout"))
        .header("cookie", &s.cookie)
        .header("origin", &a.base)
        .form(&[("csrf", s.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login?ended=signed_out");
    let r = home(&b).await.unwrap();
    assert_eq!(r.status(), 303, "B refuses the signed-out session");
    assert_eq!(r.headers()["location"], "/login");
    assert_eq!(events(&a, "session.logout").await.len(), 1);
}
