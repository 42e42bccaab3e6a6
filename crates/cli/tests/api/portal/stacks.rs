//! Blueprints in the browser: the `vpc` blueprint's form is generated from its template's
//! parameters, a bad value is refused by the server's own check, the applied stack's job
//! reaches `succeeded` on a page that updates by itself, and the inventory job's result
//! lists the stack.

use super::journey::nothing_left_loopback;
use super::webdriver::Browser;
use super::{client, http_sign_in, shot, sign_in};
use crate::jobs::{jobs_app, unique};
use crate::support::Engine;

async fn a_blueprint_is_applied_from_its_form_and_the_inventory_lists_it(engine: Engine) {
    let org = format!("bp-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let (app, _) = jobs_app(engine, "", &org).await;
    let page = format!("/orgs/{org}/stacks");

    // The page is locked down like every other.
    let s = http_sign_in(&app, &app.admin_token).await;
    let r = client()
        .get(app.url(&page))
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"));

    let b = Browser::start().await;
    sign_in(&b, &app, &app.admin_token).await;
    b.goto(&app.url(&format!("/orgs/{org}"))).await;
    b.click("#stacks-link").await;
    b.wait_path(&page).await;
    // The form follows the template: defaults, allowed values, descriptions.
    assert_eq!(b.attr("#vpc-VpcCidr", "value").await, "10.0.0.0/16");
    b.find("#vpc-EnableNat option[value='true']").await;
    assert_eq!(
        b.execute("return document.querySelector('#vpc-EnableNat').value;")
            .await
            .as_str(),
        Some("false")
    );
    assert!(b.text("#vpc-VpcCidr-hint").await.contains("IPv4 CIDR"));
    b.find("#workload-SshCidr[required]").await;

    // A value outside the template's pattern: the server's check names it.
    let name = unique("net");
    b.type_into("#vpc-name", &name).await;
    b.type_into("#vpc-VpcCidr", "10.0.0.0/8").await;
    b.click("#apply-vpc").await;
    b.wait_text("#error-code", "invalid_field", 10).await;
    assert!(b.text("#error-message").await.contains("VpcCidr"));

    // Applied with the defaults: live steps until succeeded, no manual refresh.
    b.goto(&app.url(&page)).await;
    b.type_into("#vpc-name", &name).await;
    shot(&b, "stacks").await;
    b.click("#apply-vpc").await;
    b.wait_path("/jobs/").await;
    b.wait_text("#job-state", "succeeded", 90).await;
    assert!(b.text("#job-result").await.contains("VpcId"));
    shot(&b, "stack-job").await;

    // The inventory lists the stack it made.
    b.click("#back-to-stacks").await;
    b.wait_path(&page).await;
    b.find(&format!("#inspect-{name}")).await;
    b.click("#run-inventory").await;
    b.wait_path("/jobs/").await;
    b.wait_text("#job-state", "succeeded", 90).await;
    let stack = format!("rolegate-{org}-{name}");
    let tables = b.text("main").await;
    assert!(tables.contains("stacks ("), "{tables}");
    assert!(tables.contains(&stack), "{tables}");
    shot(&b, "inventory").await;

    nothing_left_loopback(&b, &app).await;
    b.quit().await;
}

mod sqlite {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_blueprint_is_applied_from_its_form_and_the_inventory_lists_it() {
        super::a_blueprint_is_applied_from_its_form_and_the_inventory_lists_it(Engine::Sqlite)
            .await;
    }
}

mod postgres {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_blueprint_is_applied_from_its_form_and_the_inventory_lists_it() {
        super::a_blueprint_is_applied_from_its_form_and_the_inventory_lists_it(Engine::Postgres)
            .await;
    }
}
