//! `bench-hello [ADDR]`: answers `GET /` with `hello`, nothing else: no middleware, no
//! logging, no store. `bench/run` measures it as the ceiling that rolegate's workloads are
//! compared with, on the same tokio runtime (`#[tokio::main]`, one worker per core), the same
//! axum and the same release profile. Listens on ADDR (default `127.0.0.1:0`, a free port)
//! and prints `bench-hello listening on http://ADDR` on stderr, like `rolegate serve`.

use std::io::Write as _;

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    writeln!(
        std::io::stderr(),
        "bench-hello listening on http://{}",
        listener.local_addr()?
    )?;
    let app = Router::new().route("/", get(|| async { "hello" }));
    axum::serve(listener, app).await
}
