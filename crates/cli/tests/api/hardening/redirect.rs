use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;

use crate::process::BIN;

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// A server that answers with a redirect to another origin (another port) does not get the
/// client to send its API key there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_follows_no_redirect_to_another_origin() {
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let record = seen.clone();
    let elsewhere = serve(Router::new().route(
        "/api/credentials",
        post(move |headers: HeaderMap| {
            let record = record.clone();
            async move {
                let key = headers
                    .get("x-api-key")
                    .map(|v| v.to_str().unwrap().to_owned());
                record.lock().unwrap().push(key);
                StatusCode::UNAUTHORIZED
            }
        }),
    ))
    .await;
    let target = format!("{elsewhere}/api/credentials");
    let redirecting =
        serve(Router::new().route(
            "/api/credentials",
            post(move || {
                let target = target.clone();
                async move {
                    (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, target)]).into_response()
                }
            }),
        ))
        .await;
    let home = tempfile::tempdir().unwrap();
    let secret = "rgk_redirect_test_secret_0123456789";
    let out = tokio::process::Command::new(BIN)
        .args(["creds", "--org", "acme", "--server", &redirecting])
        .env("HOME", home.path())
        .env("ROLEGATE_API_KEY", secret)
        .env_remove("ROLEGATE_SERVER")
        .env_remove("ROLEGATE_CLIENT_CONFIG")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("307"), "{stderr}");
    assert!(!stderr.contains(secret), "{stderr}");
    assert_eq!(
        *seen.lock().unwrap(),
        Vec::<Option<String>>::new(),
        "the other origin was called"
    );
}
