//! rolegate's integration tests: one binary, the real server on port 0, every test run
//! against every storage engine (SQLite in a temp dir, PostgreSQL and Redis started by the
//! harness).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

/// Shared harness: spawning apps, a private redis-server and PostgreSQL, request helpers.
mod support;

/// Just-in-time access: requests, approvals, grant-bounded credentials, revoke (issue 12).
mod access;
/// The hash-chained audit log.
mod audit;
/// `rolegate bench-seed`: bulk data as the service writes it.
mod bench_seed;
/// The `rolegate creds` / `console` client binary, read by the real AWS CLI and boto3.
mod client;
/// `rolegate exec`, `creds serve`, `profiles generate`, completions and the man page.
mod client_tools;
/// Credential vending: attribution, cache, single-flight, STS errors, validate, console.
mod credentials;
/// Durability on PostgreSQL: SIGKILL of rolegate, and PostgreSQL's own crash under load.
mod durability;
/// Malformed input and the error shape (foundation issue, section 7).
mod errors;
/// Faults under load with a ledger of acknowledged writes, and the soak (issue 17).
mod faults;
/// The security review's defects at the edge (issue 10): timeouts, TLS, files, Redis.
mod hardening;
/// The hot paths under load: durable audit of cache hits across SIGKILL, instant revocation.
mod hot;
/// Idempotency-Key semantics.
mod idempotency;
/// Jobs in the customer's account: key pairs, least privilege, leases, locks, SSE.
mod jobs;
/// `GET /metrics` (per-app registry) and the JSON request logs of the real binary.
mod metrics;
/// Notifications: stand-in Slack and webhook receivers, approve-from-Slack, dead letters.
mod notify;
/// Customer onboarding: the stack, the signed callback, binding.
mod onboarding;
/// The OpenAPI document (every route, Idempotency-Key) and the offline `/docs` page.
mod openapi;
/// Organisations: registration, races, scoping, rotation, offboarding.
mod orgs;
/// The one policy: access-level grants, audited refusals, declared route actions.
mod policy;
/// The operator portal in headless Chromium: sign-in, sessions, CSRF, every page.
mod portal;
/// Durability across SIGKILL, and the binary's offline commands.
mod process;
/// Three replicas on one PostgreSQL, and on one Redis.
mod replicas;
/// Sealed storage: plaintext scans, AAD binding, rekey.
mod sealing;
/// `rolegate store copy`: SQLite to PostgreSQL, then replicas.
mod store_copy;
/// Operators: creation, listing, disabling, token rotation, bootstrap.
mod users;
/// Workload identity: trust anchors, profiles, CreateSession against moto (issue 14).
mod workload;
