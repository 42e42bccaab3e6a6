//! The conformance suite: every test is written once against `Arc<dyn KvStore>` and run on
//! every engine by `conformance!` (modules `sqlite::*`, `postgres::*`, `redis::*`, and
//! `memory::*` for core's test double). Engine-specific checks live in `sqlite_only`,
//! `postgres_only` and `redis_only`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Checks that only make sense for one engine (files, namespaces, URLs).
mod engine_specific;
/// The tests both engines run.
mod suite;
/// Fixtures: temporary SQLite files, a private PostgreSQL cluster and a private redis-server.
mod support;

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let fx = crate::support::sqlite_fixture();
                    crate::suite::$test(fx.store.clone()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let fx = crate::support::postgres_fixture(stringify!($test)).await;
                    crate::suite::$test(fx.store.clone()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let fx = crate::support::redis_fixture(stringify!($test)).await;
                    crate::suite::$test(fx.store.clone()).await;
                }
            )*
        }
        /// Core's in-memory test double, so core's own tests stand on a store that behaves
        /// like the real ones.
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let store: std::sync::Arc<dyn rolegate_core::ports::KvStore> =
                        std::sync::Arc::new(rolegate_core::testing::MemoryStore::default());
                    crate::suite::$test(store).await;
                }
            )*
        }
    };
}

conformance!(
    get_absent,
    put_get_binary,
    create_if_absent,
    present_condition,
    compare_and_swap,
    multi_key_all_or_nothing,
    writes_apply_in_order,
    delete_removes,
    ttl_expires_everywhere,
    put_without_ttl_clears_ttl,
    list_order_and_prefix_isolation,
    list_paging,
    list_limit_zero_and_cap,
    rate_burst_then_deny,
    rate_refills_with_injected_time,
    rate_keys_independent,
    rate_matches_gcra,
    rate_and_kv_namespaces_are_separate,
    rate_steps_all_allowed_charges_all,
    rate_steps_one_refuses_charges_none,
    rate_steps_match_gcra,
    concurrent_rate_steps_never_over_admit,
    rate_steps_invalid_inputs,
    concurrent_create_exactly_one,
    concurrent_cas_counter,
    concurrent_rate_burst,
    invalid_inputs,
    ping_works,
);
