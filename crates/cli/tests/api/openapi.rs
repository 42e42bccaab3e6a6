//! `GET /api/openapi.json` and `/docs`: the document is valid, lists every route the server
//! serves (and only those), says where `Idempotency-Key` is required, and the page renders
//! from the binary's own assets with the network off.
//!
//! The document does not depend on the storage engine, so these run on SQLite only.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Engine, TestApp, spawn_app};

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The document, fetched with no credentials at all.
async fn document(app: &TestApp) -> Value {
    let r = app.send(app.client.get(app.url("/api/openapi.json"))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/json"), "{ct}");
    r.body
}

/// Every `(METHOD, path)` the document describes.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(*m).is_some() {
                ops.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    &doc["paths"][path][method.to_lowercase()]
}

fn header_param<'a>(op: &'a Value, name: &str) -> Option<&'a Value> {
    op["parameters"].as_array()?.iter().find(|p| {
        p["in"] == "header"
            && p["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
    })
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_schemes_and_the_error_shape() {
    let app = spawn_app(Engine::Sqlite).await;
    let doc = document(&app).await;
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi = {version:?}");
    assert_eq!(doc["info"]["title"], "rolegate");

    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["operator_token"]["type"], "http");
    assert_eq!(schemes["operator_token"]["scheme"], "bearer");
    assert_eq!(schemes["org_api_key"]["type"], "apiKey");
    assert_eq!(schemes["org_api_key"]["in"], "header");
    assert_eq!(schemes["org_api_key"]["name"], "X-Api-Key");

    let detail = &doc["components"]["schemas"]["ErrorDetail"];
    for field in ["code", "message", "request_id", "field"] {
        assert!(
            detail["properties"].get(field).is_some(),
            "ErrorDetail.{field}"
        );
    }
    let required: BTreeSet<&str> = detail["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(required, BTreeSet::from(["code", "message", "request_id"]));

    let mut ids = BTreeSet::new();
    for (method, path) in operations(&doc) {
        let op = operation(&doc, &method, &path);
        let id = op["operationId"].as_str().unwrap_or_default().to_owned();
        assert!(ids.insert(id.clone()), "operationId {id:?} is used twice");
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{method} {path} has no summary (the first line of the handler's doc comment)"
        );
        assert_eq!(
            op["responses"]["default"]["$ref"], "#/components/responses/Error",
            "{method} {path}: errors must use the one error shape"
        );
        for requirement in op["security"].as_array().into_iter().flatten() {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(
                    schemes.get(scheme).is_some(),
                    "{method} {path}: unknown scheme {scheme}"
                );
            }
        }
    }
    assert_refs_resolve(&doc, &doc, "#");
}

#[tokio::test]
async fn every_error_code_is_in_the_document() {
    let app = spawn_app(Engine::Sqlite).await;
    let doc = document(&app).await;
    let code = &doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"];
    let listed: BTreeSet<&str> = code["enum"]
        .as_array()
        .expect("ErrorDetail.code has an enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let table: BTreeSet<&str> = rolegate_core::Code::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    assert_eq!(listed, table);
    let text = code["description"].as_str().unwrap_or_default();
    for c in rolegate_core::Code::ALL {
        assert!(
            text.contains(&format!("`{}` ({})", c.as_str(), c.status())),
            "{c}"
        );
    }
}

#[tokio::test]
async fn every_protected_operation_declares_its_policy_action() {
    let app = spawn_app(Engine::Sqlite).await;
    let doc = document(&app).await;
    let names: BTreeSet<&str> = rolegate_core::policy::Action::ALL
        .iter()
        .map(|a| a.name())
        .collect();
    let mut seen = 0;
    for (method, path) in operations(&doc) {
        let op = operation(&doc, &method, &path);
        let Some(security) = op["security"].as_array() else {
            continue;
        };
        seen += 1;
        let action = op["x-rolegate-action"].as_str().unwrap_or_default();
        assert!(
            names.contains(action),
            "{method} {path}: no policy action ({action:?})"
        );
        let a = rolegate_core::policy::Action::ALL
            .iter()
            .find(|a| a.name() == action)
            .unwrap();
        let keys = security.iter().any(|r| r.get("org_api_key").is_some());
        assert_eq!(
            keys,
            a.rules().admits_api_keys(),
            "{method} {path}: the document and the policy disagree about API keys"
        );
        assert!(
            op["description"]
                .as_str()
                .unwrap_or_default()
                .contains("Who may call it"),
            "{method} {path}"
        );
    }
    assert!(seen >= 15, "only {seen} protected operations");
}

/// Every `$ref` in the document names something the document defines.
fn assert_refs_resolve(doc: &Value, v: &Value, at: &str) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                let pointer = r.strip_prefix('#').unwrap_or(r);
                assert!(doc.pointer(pointer).is_some(), "{at}: dangling $ref {r}");
            }
            for (k, child) in map {
                assert_refs_resolve(doc, child, &format!("{at}/{k}"));
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                assert_refs_resolve(doc, child, &format!("{at}/{i}"));
            }
        }
        _ => {}
    }
}

/// Document → router: each documented operation reaches a handler on the running server
/// (asked with no credentials, so nothing changes): never the fallback's 404 "no such route"
/// and never 405.
#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = spawn_app(Engine::Sqlite).await;
    let doc = document(&app).await;
    let ops = operations(&doc);
    assert!(ops.len() >= 20, "{ops:?}");
    for (method, path) in &ops {
        let concrete = path.replace(['{', '}'], "");
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = app.send(app.client.request(m, app.url(&concrete))).await;
        let unrouted =
            r.status == 405 || (r.status == 404 && r.body["error"]["message"] == "no such route");
        assert!(
            !unrouted,
            "{method} {path} is in the document but the server does not serve it: {} {:?}",
            r.status, r.body
        );
    }
}

/// Router → document. Routes can only be registered through `OpenApiRouter::routes(routes!(…))`,
/// which takes the path and methods from the handler's `#[utoipa::path]`; so a route the
/// document lacks can only come from a raw axum registration. None may exist.
#[test]
fn no_route_is_registered_outside_the_document() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/src");
    let mut found = Vec::new();
    for file in rust_files(&src) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, call) in raw_registrations(&text) {
            found.push(format!("{}:{line}: {call}", file.display()));
        }
    }
    assert!(
        found.is_empty(),
        "routes registered with axum directly are served but missing from /api/openapi.json; \
         annotate the handler with #[utoipa::path] and register it with \
         `.routes(routes!(handler))` (see crates/server/src/openapi.rs):\n{}",
        found.join("\n")
    );
    // The scan itself finds what it looks for.
    let sample =
        "Router::new()\n    .route(\"/api/x\", get(x))\n    // .route(\"/in/a/comment\")\n";
    assert_eq!(raw_registrations(sample).len(), 1);
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// Lines (outside `//` comments) that register a route or service with axum directly.
fn raw_registrations(text: &str) -> Vec<(usize, String)> {
    const CALLS: &[&str] = &[
        ".route(",
        ".route_service(",
        ".nest(",
        ".nest_service(",
        ".fallback_service(",
    ];
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let code = line.split("//").next().unwrap_or_default();
            CALLS
                .iter()
                .find(|c| code.contains(*c))
                .map(|_| (i + 1, line.trim().to_owned()))
        })
        .collect()
}

/// The document says which POSTs need `Idempotency-Key`, and the server does what it says.
#[tokio::test]
async fn idempotency_key_is_documented_on_every_post_and_enforced_as_documented() {
    let app = spawn_app(Engine::Sqlite).await;
    let doc = document(&app).await;
    // Registration, and starting a job: a retry must never act twice.
    let registration = ["/api/orgs", "/api/register", "/api/orgs/{org}/jobs"];
    let mut posts = 0;
    for (method, path) in operations(&doc).into_iter().filter(|(m, _)| m == "POST") {
        posts += 1;
        let op = operation(&doc, &method, &path);
        if header_param(op, "X-Sig-Signature").is_some()
            || header_param(op, "X-Slack-Signature").is_some()
            || header_param(op, "X-Amz-X509").is_some()
            || header_param(op, "X-Rolegate-Signature").is_some()
            || path == "/api/validate"
        {
            // The signed callback, Slack interactions and workload sessions: replays are
            // refused by the callback's nonce, Slack's action_ts and the session signature's
            // replay cache, not by a key.
            // Validation changes nothing and its body holds secrets: no record is kept.
            // A customer approval link decides once by itself (reuse is 409).
            assert!(header_param(op, "Idempotency-Key").is_none(), "{path}");
            continue;
        }
        let param = header_param(op, "Idempotency-Key")
            .unwrap_or_else(|| panic!("POST {path} does not document Idempotency-Key"));
        let required = param["required"] == true;
        assert_eq!(
            required,
            registration.contains(&path.as_str()),
            "POST {path}: required"
        );
        // Without a key (and with a body no handler accepts), only a required route refuses
        // for want of the key.
        let concrete = path.replace(['{', '}'], "");
        let r = app.post(&concrete, &app.admin_token, json!({})).await;
        assert_eq!(
            r.code() == "idempotency_key_required",
            required,
            "POST {path} without Idempotency-Key: {} {:?}",
            r.status,
            r.body
        );
    }
    assert!(posts >= 8, "{posts}");
}

/// `(tag attribute value)` pairs for `<script src>` and `<link href>` in `html`.
fn asset_urls(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for (tag, attr) in [("<script", "src=\""), ("<link", "href=\"")] {
        for chunk in html.split(tag).skip(1) {
            let element = chunk.split('>').next().unwrap_or_default();
            if let Some(rest) = element.split(attr).nth(1)
                && let Some(url) = rest.split('"').next()
            {
                urls.push(url.to_owned());
            }
        }
    }
    urls
}

#[tokio::test]
async fn the_docs_page_loads_only_its_own_assets() {
    let app = spawn_app(Engine::Sqlite).await;
    let res = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let page_url = res.url().clone();
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/html"), "{ct}");
    let html = res.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );

    let urls = asset_urls(&html);
    assert!(
        urls.iter().filter(|u| u.ends_with(".js")).count() >= 2,
        "{urls:?}"
    );
    assert!(urls.iter().any(|u| u.ends_with(".css")), "{urls:?}");
    for u in &urls {
        let absolute = page_url.join(u).unwrap();
        assert_eq!(
            absolute.origin(),
            page_url.origin(),
            "{u} is not same-origin"
        );
        let r = app.client.get(absolute.clone()).send().await.unwrap();
        assert_eq!(r.status(), 200, "{absolute}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        let want = match u.rsplit('.').next() {
            Some("js") => "javascript",
            Some("css") => "text/css",
            Some("png") => "image/png",
            other => panic!("unexpected asset type {other:?}: {u}"),
        };
        assert!(ct.contains(want), "{absolute}: {ct}");
        if u.ends_with("swagger-initializer.js") {
            let js = r.text().await.unwrap();
            assert!(js.contains("\"/api/openapi.json\""), "{js}");
            assert!(js.contains("\"validatorUrl\": \"none\""), "{js}");
        }
    }
}

/// Chromium, as `scripts/test` installs it (Debian's package).
fn chromium() -> PathBuf {
    let path =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    assert!(
        path.exists(),
        "{} is missing: run ./scripts/test, which installs Debian's chromium for this test",
        path.display()
    );
    path
}

/// The page really renders: headless Chromium, every host but 127.0.0.1 unresolvable, dumps
/// the DOM after the scripts ran; it must show operations only the rendered spec contains.
#[tokio::test]
async fn the_docs_page_renders_in_chromium_with_the_network_off() {
    let chromium = chromium();
    let app = spawn_app(Engine::Sqlite).await;
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
    .arg("--virtual-time-budget=5000")
    .arg("--dump-dom")
    .arg(app.url("/docs"))
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("chromium did not finish in 120 s")
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let raw = app.send(app.client.get(app.url("/docs/"))).await;
    let raw = String::from_utf8_lossy(&raw.raw);
    for rendered in [
        "Register an organisation",
        "Query the audit log",
        "ErrorBody",
    ] {
        assert!(
            !raw.contains(rendered),
            "{rendered:?} is in the static HTML"
        );
        assert!(
            dom.contains(rendered),
            "{rendered:?} missing from the rendered page (status {}):\n{}\nstderr: {}",
            out.status,
            &dom[..dom.len().min(3000)],
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The schema of `name` among an operation's parameters.
fn param_schema<'a>(doc: &'a Value, method: &str, path: &str, name: &str) -> &'a Value {
    operation(doc, method, path)["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .map(|p| &p["schema"])
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
}

/// A property of the JSON request body of an operation (following its `$ref`).
fn body_property<'a>(doc: &'a Value, method: &str, path: &str, name: &str) -> &'a Value {
    let schema =
        &operation(doc, method, path)["requestBody"]["content"]["application/json"]["schema"];
    let schema = match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
        None => schema,
    };
    &schema["properties"][name]
}

/// Fuzz findings (issue 17): the document lacked the server's own checks, so schema-valid
/// requests were refused. Each rule now comes from the parser that enforces it.
#[tokio::test]
async fn the_document_carries_the_servers_own_checks() {
    use rolegate_core::ids::{OrgName, UserId};
    let app = spawn_app(Engine::Sqlite).await;
    let doc = document(&app).await;
    for (method, path) in operations(&doc) {
        if path.contains("{org}") {
            let org = param_schema(&doc, &method, &path, "org");
            assert_eq!(org["pattern"], OrgName::PATTERN, "{method} {path}");
            assert_eq!(org["minLength"], 3);
            assert_eq!(org["maxLength"], 32);
        }
        if path.contains("{user_id}") {
            let id = param_schema(&doc, &method, &path, "user_id");
            assert_eq!(id["pattern"], UserId::PATTERN, "{method} {path}");
        }
    }
    for path in [
        "/api/orgs",
        "/api/register",
        "/api/credentials",
        "/api/integrate",
    ] {
        let name = body_property(&doc, "POST", path, "org_name");
        assert_eq!(name["pattern"], OrgName::PATTERN, "POST {path}");
    }
    assert_eq!(
        body_property(&doc, "POST", "/api/users", "user_id")["pattern"],
        UserId::PATTERN
    );
    // Cursors are opaque tokens of a documented shape; the orgs' is an org name.
    assert_eq!(
        param_schema(&doc, "GET", "/api/orgs", "cursor")["pattern"],
        OrgName::PATTERN
    );
    assert_eq!(
        param_schema(&doc, "GET", "/api/audit", "cursor")["pattern"],
        "^[0-9]{1,19}$"
    );
    let key_id = body_property(&doc, "POST", "/api/validate", "access_key_id");
    assert_eq!(
        (&key_id["minLength"], &key_id["maxLength"]),
        (&json!(16), &json!(128))
    );
    // Configuration: the levels this server has, and what every one of them allows.
    for path in ["/api/credentials", "/api/credentials/console"] {
        let level = body_property(&doc, "POST", path, "access_level");
        let levels: BTreeSet<&str> = level["enum"]
            .as_array()
            .expect("access_level has an enum")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(levels.contains("readonly"), "{levels:?}");
        let duration = body_property(&doc, "POST", path, "duration_seconds");
        assert_eq!(duration["minimum"], 900);
        assert_eq!(duration["maximum"], 3600, "readonly's maximum");
    }
    let destination = body_property(&doc, "POST", "/api/credentials/console", "destination");
    assert!(
        destination["pattern"]
            .as_str()
            .is_some_and(|p| p.contains("console\\.aws\\.amazon\\.com")),
        "{destination}"
    );

    // And the server accepts what the document describes: the longest valid name, in any case.
    let r = app
        .register(&app.admin_token, "A23456789012345678901234567890bC")
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
}

/// Fuzz finding: 408 and 503 from the request timeouts were answered by every route but
/// documented by none.
#[tokio::test]
async fn every_operation_documents_the_timeouts() {
    let app = spawn_app(Engine::Sqlite).await;
    let doc = document(&app).await;
    for (method, path) in operations(&doc) {
        let responses = &operation(&doc, &method, &path)["responses"];
        assert_eq!(
            responses["408"]["$ref"], "#/components/responses/RequestTimeout",
            "{method} {path}"
        );
        let unavailable = &responses["503"];
        let described = unavailable["$ref"] == "#/components/responses/Unavailable"
            || unavailable["description"]
                .as_str()
                .is_some_and(|d| d.contains("handler_timeout"));
        assert!(described, "{method} {path}: {unavailable}");
        if operation(&doc, &method, &path)["security"].is_array() {
            assert!(responses.get("429").is_some(), "{method} {path}: 429");
        }
    }
}

/// Stateful fuzzing follows links: register → show, create user → show. utoipa writes a
/// link's target as `operation_id`, which no tool reads; the document says `operationId`.
#[tokio::test]
async fn links_name_operations_that_exist() {
    let app = spawn_app(Engine::Sqlite).await;
    let doc = document(&app).await;
    let ids: BTreeSet<String> = operations(&doc)
        .iter()
        .filter_map(|(m, p)| operation(&doc, m, p)["operationId"].as_str())
        .map(str::to_owned)
        .collect();
    let mut links = BTreeSet::new();
    for (method, path) in operations(&doc) {
        let responses = operation(&doc, &method, &path)["responses"]
            .as_object()
            .unwrap();
        for (status, response) in responses {
            for (name, link) in response["links"].as_object().into_iter().flatten() {
                assert!(link.get("operation_id").is_none(), "{name}: {link}");
                let target = link["operationId"].as_str().unwrap_or_default();
                assert!(ids.contains(target), "{method} {path} {status} → {target}");
                links.insert((path.clone(), status.clone(), target.to_owned()));
            }
        }
    }
    for expected in [
        ("/api/orgs", "201", "show_org"),
        ("/api/register", "201", "show_org"),
        ("/api/users", "201", "show_user"),
    ] {
        let (p, s, t) = expected;
        assert!(
            links.contains(&(p.to_owned(), s.to_owned(), t.to_owned())),
            "{expected:?} in {links:?}"
        );
    }
}

/// Fuzz finding: `Idempotency-Key` on the credential routes was documented as any string,
/// so a schema-valid request got 400 `idempotency_key_not_accepted`. Its schema now admits
/// no value at all.
#[tokio::test]
async fn a_refused_idempotency_key_admits_no_value() {
    let app = spawn_app(Engine::Sqlite).await;
    let doc = document(&app).await;
    for path in ["/api/credentials", "/api/credentials/console"] {
        let param = header_param(operation(&doc, "POST", path), "Idempotency-Key").unwrap();
        let schema = &param["schema"];
        let (min, max) = (schema["minLength"].as_u64(), schema["maxLength"].as_u64());
        assert!(
            matches!((min, max), (Some(a), Some(b)) if a > b),
            "POST {path}: {schema}"
        );
    }
}
