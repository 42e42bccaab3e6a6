#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use super::*;
use crate::clock::SystemClock;
use crate::testing;

fn ctx(n: usize) -> RequestContext {
    RequestContext {
        request_id: format!("req-{n}"),
        source_ip: Some("127.0.0.1".to_owned()),
        actor: format!("user:u{n}"),
    }
}

fn entries(from: usize, n: usize) -> Vec<(RequestContext, AuditRecord)> {
    (from..from + n)
        .map(|i| {
            let rec = AuditRecord::new("test.event").details(serde_json::json!({"i": i}));
            // Every other event names an org, so the per-org index is written too.
            let rec = if i % 2 == 0 { rec.org("acme") } else { rec };
            (ctx(i), rec)
        })
        .collect()
}

async fn events(vault: &Vault) -> Vec<AuditEvent> {
    vault
        .list_all::<AuditEvent>(EVENT_PREFIX)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e)
        .collect()
}

#[tokio::test]
async fn a_batch_chains_exactly_like_single_appends() {
    let (services, store) = testing::services().await;
    let audit = services.records.audit();
    for (c, r) in entries(0, 3) {
        audit.append(&c, r).await.unwrap();
    }
    let before = store.commits();
    let txn = services
        .records
        .vault()
        .put(Txn::new(), "thing/1", &"payload")
        .unwrap();
    assert!(audit.commit_batch(txn, &entries(3, 5)).await.unwrap());
    assert_eq!(
        store.commits(),
        before + 1,
        "one batch, one store transaction"
    );
    for (c, r) in entries(8, 2) {
        audit.append(&c, r).await.unwrap();
    }

    let report = verify(services.records.vault()).await.unwrap();
    assert_eq!(report.events, 10);
    assert!(report.breaks.is_empty(), "{:?}", report.breaks);
    let all = events(services.records.vault()).await;
    let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    for (i, e) in all.iter().enumerate() {
        assert_eq!(
            e.request_id,
            format!("req-{i}"),
            "entries keep their own context"
        );
        assert_eq!(e.actor, format!("user:u{i}"));
        assert_eq!(e.details["i"], i);
    }
    let head = services
        .records
        .vault()
        .get::<AuditHead>(HEAD_KEY)
        .await
        .unwrap();
    assert_eq!(head.unwrap().value.hash, all[9].hash);
    let indexed = services
        .records
        .vault()
        .store()
        .list(&format!("{ORG_INDEX_PREFIX}acme/"), None, 100)
        .await
        .unwrap();
    assert_eq!(indexed.items.len(), 5);
    let thing = services
        .records
        .vault()
        .get::<String>("thing/1")
        .await
        .unwrap();
    assert_eq!(thing.unwrap().value, "payload");
}

#[tokio::test]
async fn a_batch_whose_conditions_fail_writes_nothing() {
    let (services, _) = testing::services().await;
    let audit = services.records.audit();
    audit
        .append(&ctx(0), AuditRecord::new("first"))
        .await
        .unwrap();
    let txn = services
        .records
        .vault()
        .put(Txn::new(), "taken", &1)
        .unwrap();
    assert!(
        audit
            .commit_with(&ctx(1), txn, AuditRecord::new("x"))
            .await
            .unwrap()
    );

    let txn = services
        .records
        .vault()
        .put(Txn::new().absent("taken"), "other", &2)
        .unwrap();
    assert!(!audit.commit_batch(txn, &entries(2, 4)).await.unwrap());
    assert!(
        services
            .records
            .vault()
            .get::<i32>("other")
            .await
            .unwrap()
            .is_none()
    );
    let report = verify(services.records.vault()).await.unwrap();
    assert_eq!(report.events, 2);
    assert!(report.breaks.is_empty());
    // The log goes on from where it was.
    assert!(
        audit
            .commit_batch(Txn::new(), &entries(2, 4))
            .await
            .unwrap()
    );
    let report = verify(services.records.vault()).await.unwrap();
    assert_eq!((report.events, report.breaks.len()), (6, 0));
}

#[tokio::test]
async fn an_empty_batch_is_refused() {
    let (services, store) = testing::services().await;
    let before = store.commits();
    let err = services
        .records
        .audit()
        .commit_batch(Txn::new().put("k", vec![1]), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    assert_eq!(
        store.commits(),
        before,
        "an unaudited write must not reach the store"
    );
}

#[tokio::test]
async fn a_batch_rechains_after_another_replica_moved_the_head() {
    let (services, _) = testing::services().await;
    let other = Audit::new(services.records.vault().clone(), Arc::new(SystemClock));
    // Both replicas have seen the head...
    services
        .records
        .audit()
        .append(&ctx(0), AuditRecord::new("a"))
        .await
        .unwrap();
    other.append(&ctx(1), AuditRecord::new("b")).await.unwrap();
    // ...and this one's cached head is now stale.
    assert!(
        services
            .records
            .audit()
            .commit_batch(Txn::new(), &entries(2, 50))
            .await
            .unwrap()
    );
    other.append(&ctx(52), AuditRecord::new("c")).await.unwrap();
    let report = verify(services.records.vault()).await.unwrap();
    assert_eq!(report.events, 53);
    assert!(report.breaks.is_empty(), "{:?}", report.breaks);
}

#[tokio::test]
async fn verify_sees_an_edited_event_inside_a_batch() {
    let (services, store) = testing::services().await;
    assert!(
        services
            .records
            .audit()
            .commit_batch(Txn::new(), &entries(0, 10))
            .await
            .unwrap()
    );
    let key = event_key(4);
    let mut ev = services
        .records
        .vault()
        .get::<AuditEvent>(&key)
        .await
        .unwrap()
        .unwrap()
        .value;
    ev.actor = "user:someone-else".to_owned();
    store.poke(&key, services.records.vault().seal(&key, &ev).unwrap());
    let report = verify(services.records.vault()).await.unwrap();
    assert_eq!(report.breaks, vec![ChainBreak::HashMismatch { seq: 4 }]);
}

#[tokio::test]
async fn query_pages_follow_the_cursor_to_the_end_with_and_without_filters() {
    use crate::audit_log::{AuditQuery, RawAuditQuery};
    use crate::ids::{Role, UserId};

    let (services, _) = testing::services().await;
    assert!(
        services
            .records
            .audit()
            .commit_batch(Txn::new(), &entries(0, 10))
            .await
            .unwrap()
    );
    let admin = crate::Caller::new(
        crate::Principal::Operator {
            user_id: UserId::parse("root").unwrap(),
            role: Role::Admin,
        },
        RequestContext::default(),
    );
    for (action, limit, want) in [
        (None, "3", (1..=10).collect::<Vec<u64>>()),
        (None, "5", (1..=10).collect()),
        (None, "10", (1..=10).collect()),
        (Some("test.event"), "4", (1..=10).collect()),
        (Some("nothing"), "4", Vec::new()),
    ] {
        let (mut seen, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
        loop {
            let q = AuditQuery::parse(&RawAuditQuery {
                action,
                limit: Some(limit),
                cursor: cursor.as_deref(),
                ..RawAuditQuery::default()
            })
            .unwrap();
            let page = services.audit.query(&admin, &q).await.unwrap();
            pages += 1;
            seen.extend(page.events.iter().map(|e| e.seq));
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
            assert!(pages < 20, "the cursor does not advance");
        }
        assert_eq!(seen, want, "action {action:?}, limit {limit}");
    }
}

/// Defect 11 of the security review: a record under `audit/ev/` whose key is not an event
/// key of this chain (beyond the head, or not exactly 20 digits) must be reported by its
/// key, and must not make `verify` count its way up to it.
#[tokio::test]
async fn verify_is_bounded_and_names_a_forged_event_key() {
    let (services, store) = testing::services().await;
    assert!(
        services
            .records
            .audit()
            .commit_batch(Txn::new(), &entries(0, 3))
            .await
            .unwrap()
    );
    let forged = [
        "audit/ev/99999999999999999999",
        "audit/ev/00000000000002000000",
        "audit/ev/7",
        "audit/ev/0000000000000000000x",
        "audit/ev/18446744073709551615",
    ];
    for key in forged {
        store.poke(key, b"forged".to_vec());
    }
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        verify(services.records.vault()),
    )
    .await
    .expect("verify must finish")
    .unwrap();
    for key in forged {
        assert!(
            report.breaks.iter().any(|b| b.to_string().contains(key)),
            "{key} not named in {:?}",
            report.breaks.iter().take(5).collect::<Vec<_>>()
        );
    }
    assert_eq!(report.events, 3, "the real chain is still walked");
    assert_eq!(
        report.breaks.len(),
        forged.len(),
        "one break per forged key, and nothing else"
    );
}

/// Defect 10 of the security review, without a checkpoint: the head must match the last
/// event. Here the last event is replaced by one with a consistent hash of its own (as a
/// rollback-and-rewrite would leave it); only the head still remembers the original.
#[tokio::test]
async fn verify_compares_the_head_with_the_last_event() {
    let (services, store) = testing::services().await;
    let vault = services.records.vault();
    assert!(
        services
            .records
            .audit()
            .commit_batch(Txn::new(), &entries(0, 5))
            .await
            .unwrap()
    );
    let key = event_key(5);
    let mut ev = vault.get::<AuditEvent>(&key).await.unwrap().unwrap().value;
    ev.actor = "user:someone-else".to_owned();
    ev.hash = ev.compute_hash();
    store.poke(&key, vault.seal(&key, &ev).unwrap());
    let report = verify(vault).await.unwrap();
    assert_eq!(report.breaks, vec![ChainBreak::HeadHashMismatch { seq: 5 }]);
    assert!(
        report.breaks[0].to_string().contains("head"),
        "{}",
        report.breaks[0]
    );
}

/// Defect 10 of the security review: a rolled-back store (an older head, the newer events
/// deleted) is a consistent chain that plain `verify` cannot tell from the real one; an
/// authentic checkpoint taken before the rollback names the gap, and then the rewrite.
#[tokio::test]
async fn a_checkpoint_detects_a_rolled_back_and_a_rewritten_store() {
    use checkpoint::Checkpoint;

    let (services, store) = testing::services().await;
    let vault = services.records.vault();
    let audit = services.records.audit();
    assert!(
        audit
            .commit_batch(Txn::new(), &entries(0, 3))
            .await
            .unwrap()
    );
    let old_head = vault.store().get(HEAD_KEY).await.unwrap().unwrap();
    assert!(
        audit
            .commit_batch(Txn::new(), &entries(3, 5))
            .await
            .unwrap()
    );
    let cp = audit.checkpoint().await.unwrap();
    assert_eq!(cp.seq, 8);
    assert!(
        verify_with(vault, Some(&cp))
            .await
            .unwrap()
            .breaks
            .is_empty()
    );
    // The checkpoint survives a trip through its JSON line and through a log line.
    let log_line = serde_json::json!({
        "timestamp": "x", "level": "INFO", "target": checkpoint::LOG_TARGET,
        "message": "audit checkpoint", "seq": cp.seq, "head": cp.head, "time": cp.time,
        "key_id": cp.key_id, "mac": cp.mac,
    });
    let text = format!("not json\n{}\n{log_line}\n", cp.to_json());
    assert_eq!(Checkpoint::parse_all(&text), vec![cp.clone(), cp.clone()]);

    // Roll back: the old head, events 4..=8 deleted.
    store.poke(HEAD_KEY, old_head);
    let mut txn = Txn::new();
    for seq in 4..=8 {
        txn = txn.delete(event_key(seq));
    }
    assert!(vault.commit(txn).await.unwrap());
    assert!(
        verify(vault).await.unwrap().breaks.is_empty(),
        "without a checkpoint the rollback is invisible"
    );
    let report = verify_with(vault, Some(&cp)).await.unwrap();
    assert_eq!(
        report.breaks,
        vec![ChainBreak::BehindCheckpoint {
            checkpoint_seq: 8,
            head_seq: 3
        }]
    );
    assert!(
        report.breaks[0]
            .to_string()
            .contains("store is behind the checkpoint: checkpoint seq 8, store head seq 3"),
        "{}",
        report.breaks[0]
    );

    // Rewrite: another history from event 4 on, longer than the checkpoint.
    let other = Audit::new(vault.clone(), Arc::new(SystemClock));
    assert!(
        other
            .commit_batch(Txn::new(), &entries(100, 7))
            .await
            .unwrap()
    );
    let report = verify_with(vault, Some(&cp)).await.unwrap();
    assert_eq!(
        report.breaks,
        vec![ChainBreak::DivergesFromCheckpoint { seq: 8 }]
    );
    assert!(report.breaks[0].to_string().contains("diverges"));

    // A forged checkpoint (here: its seq edited) is refused before anything is walked.
    let forged = Checkpoint {
        seq: 3,
        ..cp.clone()
    };
    let err = verify_with(vault, Some(&forged)).await.unwrap_err();
    assert!(err.to_string().contains("not authentic"), "{err}");
    // So is one made under a key this ring does not hold.
    let foreign = Vault::new(
        vault.store().clone(),
        Arc::new(rolegate_crypto::Keyring::new(&[rolegate_crypto::MasterKey::generate()]).unwrap()),
    );
    let theirs = Checkpoint::sign(&foreign, None, cp.time.clone());
    let err = verify_with(vault, Some(&theirs)).await.unwrap_err();
    assert!(err.to_string().contains("not in the keyring"), "{err}");
}

#[tokio::test]
async fn the_checkpoint_task_is_woken_after_enough_events() {
    let (services, _) = testing::services().await;
    let audit = services.records.audit();
    let woken = audit.checkpoint_due.notified();
    tokio::pin!(woken);
    audit.appended(usize::try_from(checkpoint::CHECKPOINT_EVENTS - 1).unwrap());
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(50), woken.as_mut())
            .await
            .is_err()
    );
    audit.appended(1);
    tokio::time::timeout(std::time::Duration::from_secs(1), woken)
        .await
        .expect("woken at the threshold");
}

/// Events with conditions and no writes (cache hits: "the org is still as authorized") are
/// group-committed; when some of a group's conditions fail, exactly those events are
/// refused and the others still land, chained.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditioned_events_are_group_committed_and_refused_one_by_one() {
    let (services, _) = testing::services().await;
    let audit = Arc::clone(services.records.audit());
    let vault = services.records.vault().clone();
    let txn = vault.put(Txn::new(), "live", &1).unwrap();
    assert!(
        audit
            .commit_with(&ctx(0), txn, AuditRecord::new("setup"))
            .await
            .unwrap()
    );
    // 40 events at once: odd ones need a key that does not exist.
    let tasks: Vec<_> = (1..=40)
        .map(|i| {
            let audit = Arc::clone(&audit);
            tokio::spawn(async move {
                let cond = if i % 2 == 0 { "live" } else { "gone" };
                let txn = Txn::new().present(cond);
                let rec = AuditRecord::new("hit").details(serde_json::json!({"i": i}));
                (i, audit.commit_with(&ctx(i), txn, rec).await.unwrap())
            })
        })
        .collect();
    for t in tasks {
        let (i, written) = t.await.unwrap();
        assert_eq!(written, i % 2 == 0, "event {i}");
    }
    let all = events(&vault).await;
    let hits: Vec<_> = all.iter().filter(|e| e.action == "hit").collect();
    assert_eq!(hits.len(), 20);
    assert!(
        hits.iter()
            .all(|e| e.details["i"].as_u64().unwrap() % 2 == 0)
    );
    let report = verify(&vault).await.unwrap();
    assert_eq!(report.events, 21);
    assert!(report.breaks.is_empty(), "{:?}", report.breaks);
}

/// On an engine that applies transactions in queue order (SQLite's writer thread), audited
/// writes are queued without waiting for each other: the chain stays intact, and when one
/// fails its own conditions, it alone is refused while those queued after it (chained on a
/// head that never landed) are chained again and land.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queued_audited_writes_keep_the_chain_and_refuse_only_their_own() {
    let (services, _) =
        testing::services_on(Arc::new(testing::MemoryStore::single_process())).await;
    let audit = Arc::clone(services.records.audit());
    let vault = services.records.vault().clone();
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let (audit, vault) = (Arc::clone(&audit), vault.clone());
            tokio::spawn(async move {
                // Every third write claims a name another write already claims.
                let name = if i % 3 == 0 {
                    "taken".to_owned()
                } else {
                    format!("own/{i}")
                };
                let txn = vault
                    .put(Txn::new().absent(name.clone()), &name, &i)
                    .unwrap();
                let rec = AuditRecord::new("write").details(serde_json::json!({"i": i}));
                audit.commit_with(&ctx(i), txn, rec).await.unwrap()
            })
        })
        .collect();
    let mut written = 0;
    for t in tasks {
        written += usize::from(t.await.unwrap());
    }
    // 40 own names and exactly one winner of "taken".
    assert_eq!(written, 41);
    let report = verify(&vault).await.unwrap();
    assert_eq!(report.events, 41);
    assert!(report.breaks.is_empty(), "{:?}", report.breaks);
    assert!(vault.get::<i32>("taken").await.unwrap().is_some());
}
