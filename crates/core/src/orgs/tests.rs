#![allow(clippy::unwrap_used)]

use secrecy::ExposeSecret as _;

use super::*;
use crate::audit::{self, AuditEvent};
use crate::ids::Role;
use crate::principal::RequestContext;
use crate::services::Services;
use crate::testing;

fn alice() -> Caller {
    Caller::new(
        Principal::Operator {
            user_id: UserId::parse("alice").unwrap(),
            role: Role::Operator,
        },
        ctx(0),
    )
}

fn as_alice(n: usize) -> Caller {
    Caller {
        ctx: ctx(n),
        ..alice()
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
    let report = audit::verify(services.records.vault()).await.unwrap();
    assert!(report.breaks.is_empty(), "{:?}", report.breaks);
    report.events
}

#[tokio::test]
async fn bulk_registration_writes_what_single_registration_writes() {
    let (services, store) = testing::services().await;
    let single = services
        .orgs
        .register(
            &as_alice(99),
            RegisterOrgCommand::parse("solo", None).unwrap(),
        )
        .await
        .unwrap();
    let names: Vec<String> = (0..20).map(|i| format!("bulk-{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let before = store.commits();
    let orgs = services
        .orgs
        .register_batch(&alice(), batch(&refs))
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
            .orgs
            .authenticate_api_key(reg.api_key.expose_secret())
            .await
            .unwrap()
            .unwrap();
        let key = Caller::new(principal, ctx(0));
        let org = OrgName::parse(name).unwrap();
        let mut seen_by_key = services.orgs.get(&key, &org).await.unwrap();
        assert_eq!(
            seen_by_key.access_levels,
            ["readonly"],
            "keys: the default level"
        );
        seen_by_key.access_levels = reg.org.access_levels.clone();
        assert_eq!(seen_by_key, reg.org);
        assert_eq!(services.orgs.get(&alice(), &org).await.unwrap(), reg.org);
    }
    // The owner index, the ExternalId index and the records have one entry per org.
    let page = services.orgs.list(&alice(), None, 100).await.unwrap();
    assert_eq!(page.orgs.len(), 21);
    for prefix in ["extid/", "apikey/", "org/"] {
        let keys = services
            .records
            .vault()
            .store()
            .list(prefix, None, 100)
            .await
            .unwrap();
        assert_eq!(keys.items.len(), 21, "{prefix}");
    }
    // One org.create per org, in order, each with its own request context.
    assert_eq!(event_count(&services).await, 21);
    let events = services
        .records
        .vault()
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
        .orgs
        .register(&alice(), RegisterOrgCommand::parse("taken", None).unwrap())
        .await
        .unwrap();
    let err = services
        .orgs
        .register_batch(&alice(), batch(&["free-one", "taken", "free-two"]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                code: Code::OrgExists,
                ..
            }
        ),
        "{err:?}"
    );
    for name in ["free-one", "free-two"] {
        let err = services
            .orgs
            .get(&alice(), &OrgName::parse(name).unwrap())
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
        .orgs
        .register_batch(&alice(), batch(&["twice", "other", "TWICE"]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                code: Code::OrgExists,
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
    let key = Caller::new(
        Principal::OrgKey {
            org: OrgName::parse("acme").unwrap(),
            key_id: "k".to_owned(),
        },
        ctx(0),
    );
    let err = services
        .orgs
        .register_batch(&key, batch(&["abc"]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");
    let before = store.commits();
    assert!(
        services
            .orgs
            .register_batch(&alice(), Vec::new())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.commits(), before);
}
