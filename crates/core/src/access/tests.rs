//! The access area against an in-memory store and a manual clock: self-approval, approvers,
//! quorum, concurrent approvals, the grant the policy needs, expiry by the clock, revoke.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{AccessFilter, Decision, RequestAccessCommand};
use crate::clock::ManualClock;
use crate::error::{Code, Error};
use crate::ids::{OrgName, Role, UserId};
use crate::levels::{AccessLevel, ApprovalSettings, CredentialPolicy, LevelApproval};
use crate::model::AccessState;
use crate::orgs::RegisterOrgCommand;
use crate::policy::Action;
use crate::principal::{Caller, Principal, RequestContext};
use crate::services::{Config, Ports, Services};
use crate::testing::{MemoryStore, NoSts};
use crate::vault::Vault;

pub(super) fn op(id: &str, role: Role) -> Caller {
    Caller::new(
        Principal::Operator {
            user_id: UserId::parse(id).unwrap(),
            role,
        },
        RequestContext::system("test"),
    )
}

pub(super) async fn setup(min_approvals: u32) -> (Services, ManualClock) {
    let groups = BTreeMap::from([(
        "sre".to_owned(),
        vec!["bob".to_owned(), "carol".to_owned(), "dave".to_owned()],
    )]);
    let rule = ApprovalSettings {
        requires_approval: Some(true),
        approvers: Some(vec!["group:sre".into()]),
        min_approvals: Some(min_approvals),
        reason_required: Some(true),
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
    let clock = ManualClock::new(1_800_000_000_000);
    let ring = rolegate_crypto::Keyring::new(&[rolegate_crypto::MasterKey::generate()]).unwrap();
    let ports = Ports {
        vault: Vault::new(Arc::new(MemoryStore::default()), Arc::new(ring)),
        clock: Arc::new(clock.clone()),
        sts: Arc::new(NoSts),
        federation: Arc::new(NoSts),
        templates: None,
    };
    let services = Services::new(
        ports,
        Config {
            levels,
            ..Config::offline()
        },
    )
    .await
    .unwrap();
    services
        .orgs
        .register(
            &op("alice", Role::Operator),
            RegisterOrgCommand {
                name: OrgName::parse("acme").unwrap(),
                expected_account_id: None,
            },
        )
        .await
        .unwrap();
    (services, clock)
}

pub(super) fn cmd(duration: i64, break_glass: bool) -> RequestAccessCommand {
    RequestAccessCommand::parse(
        Some("acme"),
        Some("operator"),
        Some(duration),
        Some("INC-1"),
        None,
        None,
        break_glass,
    )
    .unwrap()
}

fn code(e: &Error) -> Code {
    e.code()
}

/// The org's owner itself needs a grant for `operator`, once it requires approval.
async fn uses_level(s: &Services, caller: &Caller) -> Result<(), Error> {
    let org = OrgName::parse("acme").unwrap();
    let level = s.credentials.levels().level(Some("operator")).unwrap();
    s.orgs
        .load_with(caller, Action::IssueCredentials, &org, Some(level))
        .await
        .map(|_| ())
}

#[tokio::test]
async fn requests_need_other_approvers_and_grants_bound_the_level() {
    let (s, clock) = setup(1).await;
    let alice = op("alice", Role::Operator);
    let bob = op("bob", Role::Operator);
    let eve = op("eve", Role::Operator);
    let root = op("root", Role::Admin);
    assert_eq!(
        code(&uses_level(&s, &alice).await.unwrap_err()),
        Code::GrantRequired
    );
    let req = s.access.request(&alice, &cmd(3600, false)).await.unwrap();
    assert_eq!(req.state, AccessState::Pending);
    // The requester, an operator outside the rule, and an admin the rule does not name.
    let e = s
        .access
        .decide(&alice, &req.id, Decision::Approve, None)
        .await
        .unwrap_err();
    assert_eq!(code(&e), Code::SelfApproval);
    for who in [&eve, &root] {
        let e = s
            .access
            .decide(who, &req.id, Decision::Approve, None)
            .await
            .unwrap_err();
        assert!(
            matches!(code(&e), Code::NotAnApprover | Code::NotFound),
            "{e}"
        );
    }
    let ok = s
        .access
        .decide(&bob, &req.id, Decision::Approve, Some("ok"))
        .await
        .unwrap();
    assert_eq!(ok.state, AccessState::Active);
    uses_level(&s, &alice).await.unwrap();
    // Bob holds no grant (and does not own the org): approving is not using.
    assert_eq!(
        code(&uses_level(&s, &bob).await.unwrap_err()),
        Code::Forbidden
    );
    // With less than 900 s left, the grant no longer admits.
    clock.advance_ms((3600 - 899) * 1000);
    assert_eq!(
        code(&uses_level(&s, &alice).await.unwrap_err()),
        Code::GrantEnding
    );
    clock.advance_ms(900 * 1000);
    assert_eq!(
        code(&uses_level(&s, &alice).await.unwrap_err()),
        Code::GrantRequired
    );
    assert_eq!(s.access.sweep().await.unwrap(), 1);
    let after = s.access.get(&alice, &req.id).await.unwrap();
    assert_eq!(after.state, AccessState::Expired);
}

#[tokio::test]
async fn concurrent_approvals_make_one_transition_and_a_quorum_counts_both() {
    for min in [1, 2] {
        let (s, _clock) = setup(min).await;
        let alice = op("alice", Role::Operator);
        let req = s.access.request(&alice, &cmd(3600, false)).await.unwrap();
        let (bob, carol) = (op("bob", Role::Operator), op("carol", Role::Operator));
        let (a, b) = tokio::join!(
            s.access.decide(&bob, &req.id, Decision::Approve, None),
            s.access.decide(&carol, &req.id, Decision::Approve, None),
        );
        let oks = [&a, &b].iter().filter(|r| r.is_ok()).count();
        let rec = s.access.get(&alice, &req.id).await.unwrap();
        assert_eq!(rec.state, AccessState::Active, "min {min}");
        if min == 1 {
            assert_eq!(oks, 1, "one transition");
            let e = a.err().or(b.err()).unwrap();
            assert_eq!(code(&e), Code::InvalidTransition);
            assert_eq!(rec.approvals.len(), 1);
        } else {
            assert_eq!(oks, 2, "both count");
            assert_eq!(rec.approvals.len(), 2);
        }
    }
}

#[tokio::test]
async fn pending_requests_expire_revoke_stops_use_and_break_glass_is_flagged() {
    let (s, clock) = setup(1).await;
    let alice = op("alice", Role::Operator);
    let bob = op("bob", Role::Operator);
    let stale = s.access.request(&alice, &cmd(3600, false)).await.unwrap();
    clock.advance_ms(24 * 3600 * 1000 + 1000);
    let e = s
        .access
        .decide(&bob, &stale.id, Decision::Approve, None)
        .await
        .unwrap_err();
    assert_eq!(code(&e), Code::InvalidTransition);
    let glass = s.access.request(&alice, &cmd(3600, true)).await.unwrap();
    assert_eq!(glass.state, AccessState::Active);
    assert!(glass.review_required && glass.break_glass);
    uses_level(&s, &alice).await.unwrap();
    // The holder cannot revoke; an approver can, and use stops at once.
    let e = s
        .access
        .decide(&alice, &glass.id, Decision::Revoke, None)
        .await
        .unwrap_err();
    assert_eq!(code(&e), Code::SelfApproval);
    let revoked = s
        .access
        .decide(&bob, &glass.id, Decision::Revoke, Some("done"))
        .await
        .unwrap();
    assert_eq!(revoked.state, AccessState::Revoked);
    assert_eq!(
        code(&uses_level(&s, &alice).await.unwrap_err()),
        Code::GrantRequired
    );
    let page = s
        .access
        .list(
            &alice,
            Action::ListAccessRequests,
            &AccessFilter {
                states: vec![AccessState::Expired],
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.requests.len(), 1);
    assert_eq!(page.requests[0].id, stale.id);
    // A reason is required; a longer grant than the rule allows is refused.
    let no_reason = RequestAccessCommand::parse(
        Some("acme"),
        Some("operator"),
        Some(900),
        None,
        None,
        None,
        false,
    )
    .unwrap();
    assert_eq!(
        code(&s.access.request(&alice, &no_reason).await.unwrap_err()),
        Code::InvalidField
    );
}

#[tokio::test]
async fn a_request_form_offers_only_the_levels_that_need_a_grant_with_their_rule() {
    let (s, _clock) = setup(2).await;
    let offered = s.access.requestable(&OrgName::parse("acme").unwrap());
    let names: Vec<&str> = offered.iter().map(|r| r.access_level.as_str()).collect();
    assert_eq!(names, ["operator"], "readonly needs no grant");
    let rule = &offered[0].rule;
    assert!(rule.requires_approval && rule.reason_required && rule.break_glass);
    assert_eq!(rule.min_approvals, 2);
}
