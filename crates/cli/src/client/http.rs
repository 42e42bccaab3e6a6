//! The calls the client makes, `POST /api/credentials`, `POST /api/credentials/console` and
//! `GET /api/orgs`, and the server's error shape turned into [`ClientError`].

use std::time::Duration;

use reqwest::Url;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use time::OffsetDateTime;

use super::settings::{ClientSettings, Credential};

/// How long to wait for a TCP (and TLS) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole call may take (the server may call STS, which it retries).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The body of `POST /api/credentials`.
#[derive(Debug, Serialize)]
pub struct CredentialsRequest<'a> {
    pub org_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_level: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub force_refresh: bool,
}

/// The body of `POST /api/credentials/console`.
#[derive(Debug, Serialize)]
pub struct ConsoleRequest<'a> {
    pub org_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_level: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<&'a str>,
}

/// Temporary AWS credentials as the server returns them. They serialize (secrets included)
/// only for `--format json` and the 0600 credential-process cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub access_key_id: String,
    #[serde(serialize_with = "expose")]
    pub secret_access_key: SecretString,
    #[serde(serialize_with = "expose")]
    pub session_token: SecretString,
    #[serde(with = "time::serde::rfc3339")]
    pub expiration: OffsetDateTime,
    #[serde(default)]
    pub assumed_role_arn: String,
    #[serde(default)]
    pub session_name: String,
    #[serde(default)]
    pub source_identity: Option<String>,
    #[serde(default)]
    pub access_level: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub cached: bool,
    /// The grant they were issued under (a level that needs approval), and its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub grant_expires_at: Option<OffsetDateTime>,
}

fn expose<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

/// A console sign-in link. The URL carries a sign-in token, so it is a secret too.
#[derive(Debug, Deserialize)]
pub struct ConsoleLink {
    pub url: SecretString,
}

/// One organisation as `GET /api/orgs` lists it: only what the client reads. Everything
/// here comes from the server and is validated before it reaches a file.
#[derive(Debug, Deserialize)]
pub struct OrgSummary {
    pub org_name: String,
    #[serde(default)]
    pub status: String,
    /// The levels this caller may use on the org; `None` from a server older than the field.
    #[serde(default)]
    pub access_levels: Option<Vec<String>>,
    /// The region for the org's credentials, if the server names one here.
    #[serde(default)]
    pub region: Option<String>,
}

/// One page of `GET /api/orgs`.
#[derive(Debug, Deserialize)]
pub struct OrgPage {
    pub orgs: Vec<OrgSummary>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// Why a call failed. No variant holds a credential.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with its error shape.
    #[error("{code}: {message} (request {request_id})")]
    Api {
        status: u16,
        code: String,
        message: String,
        request_id: String,
    },
    /// Something that is not rolegate answered (a proxy, a wrong address).
    #[error(
        "unexpected_response: {server} answered HTTP {status} with a body that is not rolegate's (request {request_id})"
    )]
    Unexpected {
        server: String,
        status: u16,
        request_id: String,
    },
    /// The server could not be reached, or the answer could not be read.
    #[error("unreachable: cannot reach the rolegate server at {server}")]
    Transport {
        server: String,
        #[source]
        source: reqwest::Error,
    },
}

impl ClientError {
    /// Worth falling back to still-valid cached credentials: the server or its path to AWS
    /// is down or busy, not a refusal.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Api { status, .. } | Self::Unexpected { status, .. } => {
                *status == 429 || *status >= 500
            }
            Self::Transport { .. } => true,
        }
    }
}

/// A client for one server and one credential.
#[derive(Debug)]
pub struct ApiClient {
    pub(super) http: reqwest::Client,
    server: Url,
    credential: Credential,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    request_id: String,
}

impl ApiClient {
    pub fn new(settings: ClientSettings) -> Result<Self, ClientError> {
        let server = settings.server;
        let transport = |source: reqwest::Error| ClientError::Transport {
            server: server.to_string(),
            source,
        };
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(same_origin_redirects(&server))
            .user_agent(concat!("rolegate-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &settings.ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(transport)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(transport)?;
        Ok(Self {
            http,
            server,
            credential: settings.credential,
        })
    }

    /// The server's base URL (as used in cache keys).
    pub fn server(&self) -> &Url {
        &self.server
    }

    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// `POST /api/credentials`.
    pub async fn credentials(
        &self,
        body: &CredentialsRequest<'_>,
    ) -> Result<Credentials, ClientError> {
        self.post("api/credentials", body).await
    }

    /// `POST /api/credentials/console`.
    pub async fn console(&self, body: &ConsoleRequest<'_>) -> Result<ConsoleLink, ClientError> {
        self.post("api/credentials/console", body).await
    }

    /// `GET /api/orgs`, one page of at most 500, after `cursor`.
    pub async fn orgs(&self, cursor: Option<&str>) -> Result<OrgPage, ClientError> {
        let mut url = self.url("api/orgs")?;
        url.query_pairs_mut().append_pair("limit", "500");
        if let Some(c) = cursor {
            url.query_pairs_mut().append_pair("cursor", c);
        }
        self.send(self.http.get(url)).await
    }

    pub(super) fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.server.join(path).map_err(|_| ClientError::Unexpected {
            server: self.server.to_string(),
            status: 0,
            request_id: "none".to_owned(),
        })
    }

    async fn post<B: Serialize, T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let url = self.url(path)?;
        self.send(self.http.post(url).json(body)).await
    }

    /// GETs `path` and answers the raw body and headers of a 2xx (JSON lines); anything
    /// else is decoded as rolegate's error shape, like [`Self::send`].
    pub(super) async fn get_raw(
        &self,
        path: &str,
    ) -> Result<(Vec<u8>, reqwest::header::HeaderMap), ClientError> {
        let url = self.url(path)?;
        let transport = |source: reqwest::Error| ClientError::Transport {
            server: self.server.to_string(),
            source: source.without_url(),
        };
        let request = match &self.credential {
            Credential::Token(t) => self.http.get(url).bearer_auth(t.expose_secret()),
            Credential::ApiKey(k) => self.http.get(url).header("x-api-key", k.expose_secret()),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let request_id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        let bytes = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            return Ok((bytes.to_vec(), headers));
        }
        decode::<serde_json::Value>(
            status.as_u16(),
            request_id,
            &bytes,
            self.server.as_str(),
            self.credential.secret(),
        )
        .map(|_| (Vec::new(), headers))
    }

    pub(super) async fn send<T: for<'de> Deserialize<'de>>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let transport = |source: reqwest::Error| ClientError::Transport {
            server: self.server.to_string(),
            source: source.without_url(),
        };
        let request = match &self.credential {
            Credential::Token(t) => request.bearer_auth(t.expose_secret()),
            Credential::ApiKey(k) => request.header("x-api-key", k.expose_secret()),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        let bytes = response.bytes().await.map_err(transport)?;
        decode(
            status.as_u16(),
            request_id,
            &bytes,
            self.server.as_str(),
            self.credential.secret(),
        )
    }
}

/// Reads a server's answer: the expected JSON on success, else rolegate's error shape
/// (its text cleaned for a terminal, our credential never echoed), else `Unexpected`
/// (something that is not rolegate answered). Any bytes yield one of these, never a panic.
fn decode<T: for<'de> Deserialize<'de>>(
    status: u16,
    request_id: String,
    bytes: &[u8],
    server: &str,
    secret: &str,
) -> Result<T, ClientError> {
    let unexpected = |request_id: String| ClientError::Unexpected {
        server: server.to_owned(),
        status,
        request_id: clean(&request_id, secret),
    };
    if (200..300).contains(&status) {
        return serde_json::from_slice(bytes).map_err(|_| unexpected(request_id));
    }
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(ErrorBody { error }) => Err(ClientError::Api {
            status,
            code: clean(&error.code, secret),
            message: clean(&error.message, secret),
            request_id: clean(
                if error.request_id.is_empty() {
                    &request_id
                } else {
                    &error.request_id
                },
                secret,
            ),
        }),
        Err(_) => Err(unexpected(request_id)),
    }
}

/// Redirects are followed only within the server's own origin (scheme, host and port), at
/// most 5: reqwest's default policy follows them anywhere, and strips `Authorization` on
/// the way but not `X-Api-Key`, which would then reach whatever host the redirect names.
fn same_origin_redirects(server: &Url) -> reqwest::redirect::Policy {
    let origin = server.origin();
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 5 {
            attempt.error("too many redirects")
        } else if attempt.url().origin() == origin {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// Makes server-supplied text safe for a terminal, and removes our own credential should a
/// server ever echo it back.
fn clean(text: &str, secret: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if secret.is_empty() {
        text
    } else {
        text.replace(secret, "[redacted]")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn server_text_is_cleaned_and_never_echoes_the_credential() {
        assert_eq!(
            clean("bad key rgk_abc\u{1b}[31m\n", "rgk_abc"),
            "bad key [redacted] [31m "
        );
        assert_eq!(clean("plain", ""), "plain");
    }

    #[test]
    fn an_api_error_reads_code_message_request() {
        let e = ClientError::Api {
            status: 401,
            code: "unauthorized".into(),
            message: "unknown API key".into(),
            request_id: "req-1".into(),
        };
        assert_eq!(
            e.to_string(),
            "unauthorized: unknown API key (request req-1)"
        );
        assert!(!e.is_transient());
        let busy = ClientError::Api {
            status: 503,
            code: "sts_throttled".into(),
            message: String::new(),
            request_id: String::new(),
        };
        assert!(busy.is_transient());
    }

    #[test]
    fn requests_omit_unset_fields() {
        let body = CredentialsRequest {
            org_name: "acme",
            access_level: None,
            duration_seconds: Some(900),
            reason: None,
            force_refresh: false,
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"org_name":"acme","duration_seconds":900}"#
        );
    }

    #[test]
    fn credentials_parse_the_server_response() {
        let c: Credentials = serde_json::from_str(
            r#"{"access_key_id":"ASIA1","secret_access_key":"s3cr3t","session_token":"tok",
                "expiration":"2026-12-01T18:00:00Z","assumed_role_arn":"arn:aws:sts::1:assumed-role/r/s",
                "session_name":"s","source_identity":"alice","access_level":"read","region":"eu-west-1",
                "cached":true,"new_field":1}"#,
        )
        .unwrap();
        assert_eq!(c.access_key_id, "ASIA1");
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert!(c.cached);
        assert!(!format!("{c:?}").contains("s3cr3t"), "Debug redacts");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn body() -> impl Strategy<Value = Vec<u8>> {
            let text = prop_oneof![any::<String>(), "[ -~\\n\\t\u{7f}\u{1b}]{0,40}"];
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..256),
                (text.clone(), text.clone(), text.clone()).prop_map(|(code, message, id)| {
                    serde_json::to_vec(&serde_json::json!({
                        "error": {"code": code, "message": message, "request_id": id}
                    }))
                    .unwrap()
                }),
                (text.clone(), text.clone(), any::<bool>()).prop_map(|(key, when, cached)| {
                    serde_json::to_vec(&serde_json::json!({
                        "access_key_id": key, "secret_access_key": "s", "session_token": "t",
                        "expiration": when, "cached": cached
                    }))
                    .unwrap()
                }),
                (text.clone(), proptest::option::of(text)).prop_map(|(name, cursor)| {
                    serde_json::to_vec(&serde_json::json!({
                        "orgs": [{"org_name": name, "access_levels": [cursor.clone()]}],
                        "next_cursor": cursor
                    }))
                    .unwrap()
                }),
            ]
        }

        fn typed<T: std::fmt::Debug>(
            r: Result<T, ClientError>,
            secret: &str,
        ) -> Result<(), TestCaseError> {
            match r {
                Ok(_) => {}
                Err(ClientError::Api {
                    code,
                    message,
                    request_id,
                    ..
                }) => {
                    for text in [&code, &message, &request_id] {
                        prop_assert!(!text.chars().any(char::is_control), "{:?}", text);
                        prop_assert!(!text.contains(secret), "{:?}", text);
                    }
                }
                Err(ClientError::Unexpected { .. }) => {}
                Err(other) => prop_assert!(false, "{:?}", other),
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Any status and body from a server (or whatever answers in its place): the
            /// expected value, rolegate's error with clean text that never echoes our
            /// credential, or `unexpected_response`; never a panic.
            #[test]
            fn any_answer_is_decoded_or_typed(
                status in 100u16..600,
                bytes in body(),
                secret in "rg[kt]_[A-Za-z0-9_-]{20,43}",
                echo in any::<bool>(),
            ) {
                // A server that echoes the credential back in its error text.
                let bytes = if echo {
                    String::from_utf8_lossy(&bytes).replace('a', &secret).into_bytes()
                } else {
                    bytes
                };
                let id = "req".to_owned();
                typed(decode::<Credentials>(status, id.clone(), &bytes, "https://rg/", &secret), &secret)?;
                typed(decode::<OrgPage>(status, id.clone(), &bytes, "https://rg/", &secret), &secret)?;
                typed(decode::<ConsoleLink>(status, id, &bytes, "https://rg/", &secret), &secret)?;
            }
        }
    }
}
