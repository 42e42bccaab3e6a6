//! rolegate's integration tests: one binary, the real server on port 0, every test run
//! against both storage engines (SQLite in a temp dir, Redis started by the harness).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

/// Shared harness: spawning apps, a private redis-server, request helpers.
mod support;

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
/// Malformed input and the error shape (foundation issue, section 7).
mod errors;
/// The security review's defects at the edge (issue 10): timeouts, TLS, files, Redis.
mod hardening;
/// Idempotency-Key semantics.
mod idempotency;
/// Jobs in the customer's account: key pairs, least privilege, leases, locks, SSE.
mod jobs;
/// `GET /metrics` (per-app registry) and the JSON request logs of the real binary.
mod metrics;
/// Customer onboarding: the stack, the signed callback, binding.
mod onboarding;
/// The OpenAPI document (every route, Idempotency-Key) and the offline `/docs` page.
mod openapi;
/// Organisations: registration, races, scoping, rotation, offboarding.
mod orgs;
/// The one policy: access-level grants, audited refusals, declared route actions.
mod policy;
/// Durability across SIGKILL, and the binary's offline commands.
mod process;
/// Sealed storage: plaintext scans, AAD binding, rekey.
mod sealing;
/// Operators: creation, listing, disabling, token rotation, bootstrap.
mod users;
