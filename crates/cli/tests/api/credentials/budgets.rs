//! ADR 0022: the caller's and the org's issuance budgets, stepped together once the policy
//! admits the caller (all or nothing), the caller's alone when it refuses.

use serde_json::json;

use super::{creds_app, issue};
use crate::metrics::{sample, scrape};
use crate::onboarding::validated_org;
use crate::support::{Engine, Resp, TestApp};

const PER_ORG: &str = "credentials_per_org";
const PER_PRINCIPAL: &str = "credentials_per_principal";

fn limited(r: &Resp, name: &str, burst: &str) {
    assert_eq!((r.status, r.code()), (429, "rate_limited"), "{:?}", r.body);
    assert_eq!(r.body["error"]["details"]["limit"], name, "{:?}", r.body);
    assert_eq!(
        r.header("ratelimit-limit"),
        Some(burst),
        "the refusing budget's headers"
    );
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    assert!(r.header("retry-after").is_some());
}

async fn rejections(app: &TestApp, limit: &str) -> f64 {
    sample(
        &scrape(app).await,
        "rolegate_rate_limit_rejections_total",
        &[("limit", limit)],
    )
}

/// An org's spent budget refuses without charging the caller's: the caller still has all
/// of its own for another org, and each 429 is counted under the budget that refused.
async fn a_spent_org_budget_charges_nothing_else(engine: Engine) {
    let app = creds_app(
        engine,
        "[rate_limits]\ncredentials_per_org = { burst = 2, period_secs = 3600 }\ncredentials_per_principal = { burst = 3, period_secs = 3600 }\n",
    )
    .await;
    let admin = app.admin_token.clone();
    validated_org(&app, &admin, "budget-x").await;
    validated_org(&app, &admin, "budget-y").await;
    for _ in 0..2 {
        let r = issue(&app, &admin, json!({"org_name": "budget-x"})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    for _ in 0..4 {
        let r = issue(&app, &admin, json!({"org_name": "budget-x"})).await;
        limited(&r, PER_ORG, "2");
    }
    // Had those four charged the caller, this would be its fourth step of three.
    let r = issue(&app, &admin, json!({"org_name": "budget-y"})).await;
    assert_eq!(r.status, 200, "the caller's budget is intact: {:?}", r.body);
    // Now the caller's own budget is spent (3 of 3), while budget-y still has one.
    let r = issue(&app, &admin, json!({"org_name": "budget-y"})).await;
    limited(&r, PER_PRINCIPAL, "3");
    assert_eq!(rejections(&app, "credentials_per_org").await, 4.0);
    assert_eq!(rejections(&app, "credentials_per_principal").await, 1.0);
}

/// A caller the policy refuses spends its own budget only: hammering a forbidden org ends
/// in 429s, and the org's budget is untouched.
async fn a_refused_caller_is_still_limited(engine: Engine) {
    let app = creds_app(
        engine,
        "[rate_limits]\ncredentials_per_org = { burst = 2, period_secs = 3600 }\ncredentials_per_principal = { burst = 3, period_secs = 3600 }\n",
    )
    .await;
    let victim = validated_org(&app, &app.admin_token, "budget-v").await;
    let attacker = validated_org(&app, &app.admin_token, "budget-a").await;
    for _ in 0..3 {
        let r = issue(&app, &attacker, json!({"org_name": "budget-v"})).await;
        assert_eq!((r.status, r.code()), (403, "forbidden"), "{:?}", r.body);
    }
    for body in [
        json!({"org_name": "budget-v"}),
        json!({"org_name": "no-such-org"}),
        json!({"org_name": "budget-a", "access_level": "nope"}),
    ] {
        let r = issue(&app, &attacker, body).await;
        limited(&r, PER_PRINCIPAL, "3");
    }
    // The victim's budget was never spent: both of its steps remain.
    for _ in 0..2 {
        let r = issue(&app, &victim, json!({"org_name": "budget-v"})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    limited(
        &issue(&app, &victim, json!({"org_name": "budget-v"})).await,
        PER_ORG,
        "2",
    );
    assert_eq!(rejections(&app, "credentials_per_principal").await, 3.0);
    assert_eq!(rejections(&app, "credentials_per_org").await, 1.0);
}

crate::both_engines!(
    a_spent_org_budget_charges_nothing_else,
    a_refused_caller_is_still_limited,
);
