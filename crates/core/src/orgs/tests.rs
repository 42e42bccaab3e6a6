#![allow(clippy::unwrap_used)]

use secrecy::ExposeSecret as _;

use super::*;
use crate::audit::{self, AuditEvent};
use crate::ids::Role;
use crate::testing;

fn alice() -> Principal {
    Principal::Operator {
        user_id: UserId::parse("alice").unwrap(),
        role: Role::Operator,
    }
}

fn ctx(n: usize) -> RequestContext {
    RequestContext {
        request_id: format!("req-{n}"),
        source_ip: Some("127.0.0.1".to_owned()),
        actor: "user:alice".to_owned(),
    }
}

fn batch(names: &[&str]) -> Vec<(RequestContext, RegisterOrgCommand)> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| (ctx(i), RegisterOrgCommand::parse(n, None).unwrap()))
        .collect()
}

async fn event_count(services: &Services) -> u64 {
    let report = audit::verify(&services.vault).await.unwrap();
    assert!(report.breaks.is_empty(), "{:?}", report.breaks);
    report.events
}

#[tokio::test]
async fn bulk_registration_writes_what_single_registration_writes() {
    let (services, store) = testing::services().await;
    let single = services
        .register_org(
            &ctx(99),
            &alice(),
            RegisterOrgCommand::parse("solo", None).unwrap(),
        )
        .await
        .unwrap();
    let names: Vec<String> = (0..20).map(|i| format!("bulk-{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let before = store.commits();
    let orgs = services
        .register_orgs(&alice(), batch(&refs))
        .await
        .unwrap();
    assert_eq!(
        store.commits(),
        before + 1,
        "one batch, one store transaction"
    );
    assert_eq!(orgs.len(), 20);

    for (reg, name) in std::iter::once(&single)
        .chain(&orgs)
        .zip(std::iter::once("solo").chain(refs.iter().copied()))
    {
        assert_eq!(reg.org.org_name, name);
        let principal = services
            .authenticate_api_key(reg.api_key.expose_secret())
            .await
            .unwrap()
            .unwrap();
        let org = OrgName::parse(name).unwrap();
        assert_eq!(services.get_org(&principal, &org).await.unwrap(), reg.org);
        assert_eq!(services.get_org(&alice(), &org).await.unwrap(), reg.org);
    }
    // The owner index, the ExternalId index and the records have one entry per org.
    let page = services.list_orgs(&alice(), None, 100).await.unwrap();
    assert_eq!(page.orgs.len(), 21);
    for prefix in ["extid/", "apikey/", "org/"] {
        let keys = services
            .vault
            .store()
            .list(prefix, None, 100)
            .await
            .unwrap();
        assert_eq!(keys.items.len(), 21, "{prefix}");
    }
    // One org.create per org, in order, each with its own request context.
    assert_eq!(event_count(&services).await, 21);
    let events = services
        .vault
        .list_all::<AuditEvent>(audit::EVENT_PREFIX)
        .await
        .unwrap();
    for (i, (_, ev)) in events.iter().skip(1).enumerate() {
        assert_eq!(ev.action, "org.create");
        assert_eq!(ev.org.as_deref(), Some(names[i].as_str()));
        assert_eq!(ev.request_id, format!("req-{i}"));
        assert_eq!(ev.details["api_key_id"], orgs[i].org.api_key_id);
    }
}

#[tokio::test]
async fn bulk_registration_is_all_or_nothing_when_a_name_is_taken() {
    let (services, _) = testing::services().await;
    services
        .register_org(
            &ctx(0),
            &alice(),
            RegisterOrgCommand::parse("taken", None).unwrap(),
        )
        .await
        .unwrap();
    let err = services
        .register_orgs(&alice(), batch(&["free-one", "taken", "free-two"]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                code: "org_exists",
                ..
            }
        ),
        "{err:?}"
    );
    for name in ["free-one", "free-two"] {
        let err = services
            .get_org(&alice(), &OrgName::parse(name).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{name}: {err:?}");
    }
    assert_eq!(event_count(&services).await, 1);
}

#[tokio::test]
async fn a_name_repeated_in_the_batch_is_refused_before_any_write() {
    let (services, store) = testing::services().await;
    let before = store.commits();
    // Case-insensitive names: these are the same org.
    let err = services
        .register_orgs(&alice(), batch(&["twice", "other", "TWICE"]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                code: "org_exists",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.commits(), before);
    assert_eq!(event_count(&services).await, 0);
}

#[tokio::test]
async fn api_keys_cannot_register_in_bulk_and_an_empty_batch_is_a_no_op() {
    let (services, store) = testing::services().await;
    let key = Principal::OrgKey {
        org: OrgName::parse("acme").unwrap(),
        key_id: "k".to_owned(),
    };
    let err = services
        .register_orgs(&key, batch(&["abc"]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    let before = store.commits();
    assert!(
        services
            .register_orgs(&alice(), Vec::new())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.commits(), before);
}
