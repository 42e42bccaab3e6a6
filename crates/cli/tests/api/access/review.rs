//! Break-glass review: a break-glass grant is listed by `needs_review=true` until an admin
//! other than its holder reviews it with a comment (audited); the holder, a non-admin, a
//! second review and a grant that was not break-glass are refused. The CLI does the same.

use serde_json::json;

use super::{ACCESS_TOML, cli, people, request};
use crate::both_engines;
use crate::onboarding::{onboarding_app, validated_org};
use crate::support::Engine;

async fn break_glass_grants_are_reviewed_by_another_admin(engine: Engine) {
    let app = onboarding_app(engine, false, false, ACCESS_TOML).await;
    let p = people(&app).await;
    let erin = app.create_user("erin", "admin").await;
    validated_org(&app, &p.alice, "bg-org").await;
    let glass = |token: String| {
        let app = &app;
        async move {
            let r = app
                .post(
                    "/api/access-requests",
                    &token,
                    json!({"org_name": "bg-org", "access_level": "operator", "duration_secs": 1800, "break_glass": true, "reason": "prod down"}),
                )
                .await;
            assert_eq!(r.status, 201, "{:?}", r.body);
            r.body["id"].as_str().unwrap().to_owned()
        }
    };
    let mine = glass(app.admin_token.clone()).await;
    let daves = glass(p.dave.clone()).await;
    let normal = request(&app, &p.dave, "bg-org", 3600).await;
    let normal = normal["id"].as_str().unwrap().to_owned();
    let listed = |token: String| {
        let app = &app;
        async move {
            let r = app
                .get("/api/access-requests?needs_review=true", &token)
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            let mut ids: Vec<String> = r.body["requests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    let mut both = vec![mine.clone(), daves.clone()];
    both.sort();
    assert_eq!(listed(erin.clone()).await, both);
    let review = |token: String, id: String, body: serde_json::Value| {
        let app = &app;
        async move {
            app.post(&format!("/api/access-requests/{id}/review"), &token, body)
                .await
        }
    };
    let ok = json!({"comment": "justified: INC-123"});
    // Not an admin; the holder (an admin); no comment.
    let r = review(p.bob.clone(), daves.clone(), ok.clone()).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"), "{:?}", r.body);
    let r = review(app.admin_token.clone(), mine.clone(), ok.clone()).await;
    assert_eq!((r.status, r.code()), (403, "self_approval"), "{:?}", r.body);
    let r = review(erin.clone(), daves.clone(), json!({})).await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (400, Some("comment")),
        "{:?}",
        r.body
    );
    // Another admin reviews it.
    let r = review(erin.clone(), daves.clone(), ok.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["review_required"], false);
    assert_eq!(r.body["review"]["by"], "erin");
    assert_eq!(r.body["review"]["comment"], "justified: INC-123");
    assert_eq!(listed(erin.clone()).await, vec![mine.clone()]);
    for id in [&daves, &normal] {
        let r = review(erin.clone(), id.clone(), ok.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (409, "review_not_needed"),
            "{:?}",
            r.body
        );
    }
    let audited: Vec<_> = app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.action == "access.review")
        .collect();
    assert!(
        audited.iter().any(|e| e.actor == "user:erin"
            && e.target.as_deref() == Some(daves.as_str())
            && e.details["comment"] == "justified: INC-123"),
        "{audited:?}"
    );
    assert!(
        audited
            .iter()
            .any(|e| e.code.as_deref() == Some("self_approval"))
    );

    // The CLI: list what needs review, review it.
    let out = cli(&app, &erin, &["requests", "--needs-review"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&mine) && !text.contains(&daves), "{text}");
    let out = cli(&app, &erin, &["review", &mine, "--comment", "fine"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(listed(erin.clone()).await.is_empty());
}

both_engines!(break_glass_grants_are_reviewed_by_another_admin);
