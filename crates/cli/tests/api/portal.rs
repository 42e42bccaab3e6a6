//! The operator portal (issue 13) in a real browser: Debian's headless Chromium driven over
//! WebDriver by chromedriver, against the real server, moto and the template's own Lambda.
//! Screenshots of each main page land under the target directory
//! (`target/tmp/portal-screenshots`).

use std::time::Duration;

use serde_json::Value;

use crate::support::TestApp;

/// The WebDriver client.
mod webdriver;

/// Just-in-time access: request, approve from the queue, credentials under the grant,
/// revoke, refused.
mod access;
/// Blueprints through generated forms, live job steps, the inventory.
mod stacks;

/// Token sign-in, the operator journey (register → onboard → validated live →
/// credentials → copy), key pairs, admin pages, the network log.
mod journey;
/// Sign-in through a real mock OIDC provider (oauth2-mock-server): groups → roles, refused
/// tokens and states, key rotation, deprovisioning.
mod oidc;
/// Sessions, CSRF and headers: expiry, disabling, logout on every replica, cross-origin
/// posts, missing form tokens, CSP and no-store on every page.
mod sessions;

use webdriver::{Browser, screenshot_dir};

/// Signs `token` in through the login form and waits for the home page.
pub(crate) async fn sign_in(b: &Browser, app: &TestApp, token: &str) {
    b.goto(&app.url("/login")).await;
    b.type_into("#token", token).await;
    b.click("main form button[type=submit]").await;
    b.wait_path("/").await;
    b.find("#register-heading").await;
}

/// Saves a screenshot named `name` (a main page).
pub(crate) async fn shot(b: &Browser, name: &str) {
    b.screenshot(&screenshot_dir().join(format!("{name}.png")))
        .await;
}

/// A session over plain HTTP (no browser): its cookie header and form token.
pub(crate) struct HttpSession {
    pub cookie: String,
    pub csrf: String,
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Signs in over HTTP as a same-origin form would.
pub(crate) async fn http_sign_in(app: &TestApp, token: &str) -> HttpSession {
    let c = client();
    let r = c
        .post(app.url("/login"))
        .header("origin", &app.base)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    let set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("__Host-rolegate="))
        .expect("a __Host- session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    let cookie = set.split(';').next().unwrap().to_owned();
    let home = c
        .get(app.url("/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    HttpSession {
        cookie,
        csrf: form_token(&home),
    }
}

/// The form token in a page's HTML.
pub(crate) fn form_token(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form token") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

/// The audit events with `action`.
pub(crate) async fn events(app: &TestApp, action: &str) -> Vec<Value> {
    app.audit_events()
        .await
        .into_iter()
        .filter(|e| e.action == action)
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}
