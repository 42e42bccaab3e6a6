//! The follower and the outbox against an in-memory store and a manual clock: events become
//! notifications, a failing sink is retried with backoff and then dead-lettered, a dead
//! letter goes back to the outbox, one replica delivers at a time, and chat actions are
//! refused when replayed or unlinked.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{ChatAction, NotifySettings};
use crate::access::{Decision, RequestAccessCommand};
use crate::clock::ManualClock;
use crate::error::Code;
use crate::ids::{OrgName, Role, UserId};
use crate::levels::{AccessLevel, ApprovalSettings, CredentialPolicy, LevelApproval};
use crate::orgs::RegisterOrgCommand;
use crate::ports::notify::{Decide, DeliveryError, Notification, Notifier};
use crate::principal::{Caller, Principal, RequestContext};
use crate::services::{Config, Ports, Services};
use crate::testing::{MemoryStore, NoSts};
use crate::users::CreateUserCommand;
use crate::vault::Vault;

/// Records what it is given; fails the first `fail` deliveries.
#[derive(Debug, Default)]
struct Sink {
    got: Mutex<Vec<Notification>>,
    fail: AtomicU32,
}

#[async_trait]
impl Notifier for Sink {
    fn name(&self) -> &'static str {
        "webhook"
    }
    async fn deliver(&self, n: &Notification) -> Result<(), DeliveryError> {
        if self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1))
            .is_ok()
        {
            return Err(DeliveryError("HTTP 500".into()));
        }
        self.got.lock().unwrap().push(n.clone());
        Ok(())
    }
}

fn op(id: &str, role: Role) -> Caller {
    Caller::new(
        Principal::Operator {
            user_id: UserId::parse(id).unwrap(),
            role,
        },
        RequestContext::system("test"),
    )
}

fn settings() -> NotifySettings {
    NotifySettings {
        max_attempts: 3,
        backoff_base: Duration::from_secs(10),
        ..NotifySettings::default()
    }
}

async fn setup(store: Arc<MemoryStore>, clock: &ManualClock, sink: Arc<Sink>) -> Services {
    let groups = BTreeMap::from([("sre".to_owned(), vec!["bob".to_owned()])]);
    let rule = ApprovalSettings {
        requires_approval: Some(true),
        approvers: Some(vec!["group:sre".into()]),
        chat_approval_max_duration_secs: Some(3600),
        break_glass: Some(true),
        ..Default::default()
    }
    .build(&groups)
    .unwrap();
    let operator = AccessLevel::new("operator", None, vec![], 3600)
        .unwrap()
        .with_approval(LevelApproval {
            default: rule,
            orgs: BTreeMap::new(),
        });
    let readonly = AccessLevel::new("readonly", None, vec![], 3600).unwrap();
    let levels =
        CredentialPolicy::new(vec![readonly, operator], "readonly", 3600, None, "x".into())
            .unwrap();
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| rolegate_crypto::MasterKey::generate().to_base64());
    let ring =
        rolegate_crypto::Keyring::new(&[rolegate_crypto::MasterKey::from_base64(key).unwrap()])
            .unwrap();
    let ports = Ports {
        vault: Vault::new(store, Arc::new(ring)),
        clock: Arc::new(clock.clone()),
        sts: Arc::new(NoSts),
        federation: Arc::new(NoSts),
        templates: None,
    };
    let s = Services::new(
        ports,
        Config {
            levels,
            ..Config::offline()
        },
    )
    .await
    .unwrap()
    .with_notifiers(vec![sink], settings());
    s.notify.init_cursor().await.unwrap();
    s
}

async fn world() -> (Services, ManualClock, Arc<Sink>, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::default());
    let clock = ManualClock::new(1_800_000_000_000);
    let sink = Arc::new(Sink::default());
    let s = setup(store.clone(), &clock, sink.clone()).await;
    let admin = Caller::system("test");
    for (id, role) in [("alice", "operator"), ("bob", "operator")] {
        s.users
            .create(&admin, CreateUserCommand::parse(id, role, None).unwrap())
            .await
            .unwrap();
    }
    s.orgs
        .register(
            &op("alice", Role::Operator),
            RegisterOrgCommand {
                name: OrgName::parse("acme").unwrap(),
                expected_account_id: None,
            },
        )
        .await
        .unwrap();
    (s, clock, sink, store)
}

async fn request(s: &Services, secs: i64) -> String {
    let cmd = RequestAccessCommand::parse(
        Some("acme"),
        Some("operator"),
        Some(secs),
        Some("INC-1"),
        None,
        None,
        false,
    )
    .unwrap();
    s.access
        .request(&op("alice", Role::Operator), &cmd)
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn a_new_request_reaches_the_approvers_with_buttons_or_a_link() {
    let (s, _clock, sink, _) = world().await;
    let short = request(&s, 1800).await;
    let long = request(&s, 3600 + 60).await;
    s.notify.tick().await.unwrap();
    let got = sink.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[0].event, "access.requested");
    assert_eq!(got[0].recipients, vec!["bob".to_owned()]);
    assert_eq!(got[0].user, "user:alice");
    assert_eq!(got[0].org.as_deref(), Some("acme"));
    assert_eq!(got[0].environment.as_deref(), Some("operator"));
    assert_eq!(
        got[0].decide,
        Some(Decide::Buttons {
            request_id: short.clone()
        })
    );
    assert_eq!(got[1].decide, Some(Decide::Link { request_id: long }));
    // Delivered once: a second round sends nothing more.
    s.notify.tick().await.unwrap();
    assert_eq!(sink.got.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn failures_back_off_then_dead_letter_then_retry() {
    let (s, clock, sink, _) = world().await;
    sink.fail.store(3, Ordering::SeqCst);
    request(&s, 1800).await;
    s.notify.tick().await.unwrap(); // attempt 1 fails; next in 10 s
    s.notify.tick().await.unwrap(); // not due
    clock.advance_ms(9_000);
    s.notify.tick().await.unwrap(); // still not due
    assert_eq!(sink.fail.load(Ordering::SeqCst), 2);
    clock.advance_ms(1_000);
    s.notify.tick().await.unwrap(); // attempt 2 fails; next in 20 s
    clock.advance_ms(19_000);
    s.notify.tick().await.unwrap();
    assert_eq!(sink.fail.load(Ordering::SeqCst), 1);
    clock.advance_ms(1_000);
    s.notify.tick().await.unwrap(); // attempt 3 fails: dead letter
    assert!(sink.got.lock().unwrap().is_empty());
    let admin = op("root", Role::Admin);
    let dead = s.notify.dead_letters(&admin).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 500"));
    let e = s
        .notify
        .dead_letters(&op("bob", Role::Operator))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Forbidden);
    s.notify
        .retry_dead_letter(&admin, &dead[0].id)
        .await
        .unwrap();
    assert!(s.notify.dead_letters(&admin).await.unwrap().is_empty());
    s.notify.tick().await.unwrap();
    assert_eq!(sink.got.lock().unwrap().len(), 1);
    let again = s.notify.retry_dead_letter(&admin, &dead[0].id).await;
    assert_eq!(again.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn one_replica_delivers_at_a_time() {
    let (s, clock, sink, store) = world().await;
    let other_sink = Arc::new(Sink::default());
    let other = setup(store, &clock, other_sink.clone()).await;
    s.notify.tick().await.unwrap(); // takes the lease
    request(&s, 1800).await;
    other.notify.tick().await.unwrap();
    assert!(other_sink.got.lock().unwrap().is_empty());
    s.notify.tick().await.unwrap();
    assert_eq!(sink.got.lock().unwrap().len(), 1);
    // The holder goes quiet: after the lease lapses the other replica takes over.
    clock.advance_ms(31_000);
    request(&s, 1800).await;
    other.notify.tick().await.unwrap();
    assert_eq!(other_sink.got.lock().unwrap().len(), 1);
    assert_eq!(sink.got.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn chat_actions_are_linked_once_and_bounded() {
    let (s, _clock, _sink, _) = world().await;
    let admin = op("root", Role::Admin);
    let id = request(&s, 1800).await;
    let press = |user: &str, ts: &str, id: &str| ChatAction {
        chat_user: user.to_owned(),
        decision: Decision::Approve,
        request_id: id.to_owned(),
        action_ts: ts.to_owned(),
    };
    let ctx = || RequestContext::system("slack");
    let e = s
        .notify
        .slack_action(ctx(), &press("U0BOB", "1.1", &id))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ChatUserNotLinked);
    let bob = UserId::parse("bob").unwrap();
    assert_eq!(
        s.notify
            .link_slack(&op("bob", Role::Operator), &bob, "U0BOB")
            .await
            .unwrap_err()
            .code(),
        Code::Forbidden
    );
    s.notify.link_slack(&admin, &bob, "U0BOB").await.unwrap();
    let done = s
        .notify
        .slack_action(ctx(), &press("U0BOB", "1.2", &id))
        .await
        .unwrap();
    assert_eq!(done.request.state.as_str(), "active");
    let e = s
        .notify
        .slack_action(ctx(), &press("U0BOB", "1.2", &id))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InteractionReplayed);
    // Unlinked again: refused again.
    s.notify.unlink_slack(&admin, &bob, "U0BOB").await.unwrap();
    let e = s
        .notify
        .slack_action(ctx(), &press("U0BOB", "1.5", &id))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ChatUserNotLinked);
    s.notify.link_slack(&admin, &bob, "U0BOB").await.unwrap();
    let long = request(&s, 3600 + 60).await;
    let e = s
        .notify
        .slack_action(ctx(), &press("U0BOB", "1.3", &long))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ChatApprovalNotAllowed);
    // Self-approval stays refused from chat.
    let alice = UserId::parse("alice").unwrap();
    s.notify
        .link_slack(&admin, &alice, "U0ALICE")
        .await
        .unwrap();
    let mine = request(&s, 1800).await;
    let e = s
        .notify
        .slack_action(ctx(), &press("U0ALICE", "1.4", &mine))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::SelfApproval);
}

#[tokio::test]
async fn a_new_address_is_noticed_after_the_first() {
    use crate::audit::AuditRecord;
    let (s, _clock, sink, _) = world().await;
    let at = |ip: &str| {
        let mut c = op("alice", Role::Operator);
        c.ctx.source_ip = Some(ip.to_owned());
        c
    };
    let issue = || AuditRecord::new("credentials.issue").org("acme");
    s.records.record(&at("192.0.2.1"), issue()).await.unwrap();
    s.records.record(&at("192.0.2.1"), issue()).await.unwrap();
    s.notify.tick().await.unwrap();
    assert!(sink.got.lock().unwrap().is_empty());
    s.records
        .record(&at("198.51.100.9"), issue())
        .await
        .unwrap();
    s.notify.tick().await.unwrap();
    let got = sink.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event, "credentials.new_ip");
    assert_eq!(got[0].source_ip.as_deref(), Some("198.51.100.9"));
}
