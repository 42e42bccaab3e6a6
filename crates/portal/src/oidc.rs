//! Sign-in through the company's identity provider: OpenID Connect's authorization code
//! flow with PKCE, `state` and `nonce` (the `openidconnect` crate). Operators are provisioned
//! on first login with the role their groups map to, their role follows the IdP, and they
//! are disabled when their groups no longer map to one.
//!
//! The HTTP client only speaks HTTPS, follows no redirect, and reaches plain HTTP only when
//! the configured issuer itself is a plain-HTTP loopback address (a local IdP, as in tests);
//! then every endpoint the discovery document names must be on that same origin. The
//! provider's keys are fetched again on an unknown `kid` (an IdP key rotation), at most once
//! per cool-down.

use std::time::{Duration, Instant};

use base64::Engine as _;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError,
    TokenResponse as _,
};
use rolegate_core::ids::Role;
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::Mutex;

/// The `[oidc]` settings, validated by the server's config.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// `https://rolegate.example/auth/oidc/callback`, as registered at the IdP.
    pub redirect_url: String,
    pub scopes: Vec<String>,
    /// The ID token claim holding the user's groups (a list of strings).
    pub groups_claim: String,
    /// Group → role; a user in an admin group is an admin.
    pub role_map: Vec<(String, Role)>,
    /// Email domains allowed to sign in (empty: any).
    pub allowed_domains: Vec<String>,
    /// The shortest time between two fetches of the IdP's keys.
    pub jwks_cooldown: Duration,
    /// The button's label on the login page.
    pub display_name: String,
}

/// Why a sign-in through the IdP was refused (shown to the user, audited).
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the sign-in is unknown, expired or was already used (state)")]
    BadState,
    #[error("the identity provider could not be reached or answered wrongly: {0}")]
    Provider(String),
    #[error("the identity provider's ID token was refused: {0}")]
    Token(String),
    #[error("{0}")]
    NotAllowed(String),
}

impl OidcError {
    /// The reason, short, for the audit event.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadState => "state",
            Self::Provider(_) => "provider",
            Self::Token(_) => "id_token",
            Self::NotAllowed(_) => "not_allowed",
        }
    }
}

/// The client as discovery builds it (authorization endpoint set, token and user-info
/// endpoints as the provider says).
type OidcClient = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

struct Discovered {
    metadata: CoreProviderMetadata,
    fetched: Instant,
}

/// The verified identity from an ID token.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The email, else the subject: the operator's id.
    pub user: String,
    pub email: Option<String>,
    pub subject: String,
    /// The role the groups map to, if any.
    pub role: Option<Role>,
    pub groups: Vec<String>,
}

/// A started sign-in: where to send the browser, and the state to bind to it.
#[derive(Debug)]
pub struct Started {
    pub url: String,
    pub state: SecretString,
    pub nonce: SecretString,
    pub pkce_verifier: SecretString,
}

pub struct Oidc {
    config: OidcConfig,
    http: reqwest::Client,
    /// The plain-HTTP origin allowed (the configured loopback issuer's), if any.
    http_origin: Option<String>,
    provider: Mutex<Option<Discovered>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

/// `scheme://host:port` of a URL, lower-cased.
fn origin(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    let host = u.host_str()?;
    Some(format!(
        "{}://{}:{}",
        u.scheme(),
        host.to_ascii_lowercase(),
        u.port_or_known_default()?
    ))
}

/// Whether `url` is a plain-HTTP loopback address.
pub fn is_loopback_http(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| {
        u.scheme() == "http"
            && match u.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            }
    })
}

impl Oidc {
    pub fn new(config: OidcConfig) -> Result<Self, String> {
        let http_origin = if is_loopback_http(&config.issuer) {
            origin(&config.issuer)
        } else {
            None
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .https_only(http_origin.is_none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| format!("cannot build the OIDC HTTP client: {e}"))?;
        Ok(Self {
            config,
            http,
            http_origin,
            provider: Mutex::new(None),
        })
    }

    pub fn display_name(&self) -> &str {
        &self.config.display_name
    }

    /// Checks that an endpoint is HTTPS, or on the configured loopback issuer's origin.
    fn endpoint_allowed(&self, url: &str) -> bool {
        match &self.http_origin {
            None => url.starts_with("https://"),
            Some(o) => origin(url).as_deref() == Some(o.as_str()),
        }
    }

    /// The provider's metadata and keys: cached, fetched again when `refresh` and the
    /// cool-down has passed.
    async fn metadata(&self, refresh: bool) -> Result<CoreProviderMetadata, OidcError> {
        let mut guard = self.provider.lock().await;
        if let Some(d) = guard.as_ref()
            && (!refresh || d.fetched.elapsed() < self.config.jwks_cooldown)
        {
            return Ok(d.metadata.clone());
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone())
            .map_err(|e| OidcError::Provider(format!("issuer: {e}")))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Provider(format!("discovery: {e}")))?;
        let mut endpoints = vec![
            metadata.authorization_endpoint().url().as_str().to_owned(),
            metadata.jwks_uri().url().as_str().to_owned(),
        ];
        if let Some(t) = metadata.token_endpoint() {
            endpoints.push(t.url().as_str().to_owned());
        }
        if let Some(bad) = endpoints.iter().find(|u| !self.endpoint_allowed(u)) {
            return Err(OidcError::Provider(format!(
                "the discovery document names an endpoint outside the issuer's origin or not over HTTPS: {bad}"
            )));
        }
        *guard = Some(Discovered {
            metadata: metadata.clone(),
            fetched: Instant::now(),
        });
        Ok(metadata)
    }

    fn client(&self, metadata: CoreProviderMetadata) -> Result<OidcClient, OidcError> {
        let redirect = RedirectUrl::new(self.config.redirect_url.clone())
            .map_err(|e| OidcError::Provider(format!("redirect_url: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(
                self.config.client_secret.expose_secret().to_owned(),
            )),
        )
        .set_redirect_uri(redirect))
    }

    /// Starts a sign-in: the IdP's authorization URL with a fresh state, nonce and PKCE
    /// challenge.
    pub async fn start(&self) -> Result<Started, OidcError> {
        let client = self.client(self.metadata(false).await?)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for s in &self.config.scopes {
            if s != "openid" {
                req = req.add_scope(Scope::new(s.clone()));
            }
        }
        let (url, state, nonce) = req.set_pkce_challenge(challenge).url();
        Ok(Started {
            url: url.to_string(),
            state: SecretString::from(state.secret().clone()),
            nonce: SecretString::from(nonce.secret().clone()),
            pkce_verifier: SecretString::from(verifier.secret().clone()),
        })
    }

    /// Exchanges the code (with the PKCE verifier) and verifies the ID token: signature
    /// (fetching the keys again once on an unknown key), issuer, audience, expiry and nonce.
    pub async fn finish(
        &self,
        code: &str,
        nonce: &str,
        pkce_verifier: &str,
    ) -> Result<Identity, OidcError> {
        let client = self.client(self.metadata(false).await?)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Provider(format!("token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Provider(format!("code exchange: {e}")))?;
        let token = response
            .id_token()
            .ok_or_else(|| OidcError::Token("no ID token in the answer".into()))?
            .clone();
        let nonce = Nonce::new(nonce.to_owned());
        match self.verify(&client, &token, &nonce) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // The IdP may have rotated its keys: fetch them again (once per cool-down).
                let fresh = self.client(self.metadata(true).await?)?;
                self.verify(&fresh, &token, &nonce)
                    .map_err(|e| OidcError::Token(e.to_string()))?;
            }
            Err(e) => return Err(OidcError::Token(e.to_string())),
            Ok(()) => {}
        }
        self.identity(&token)
    }

    fn verify(
        &self,
        client: &OidcClient,
        token: &CoreIdToken,
        nonce: &Nonce,
    ) -> Result<(), ClaimsVerificationError> {
        token.claims(&client.id_token_verifier(), nonce).map(|_| ())
    }

    /// The identity in a verified token. Extra claims (the groups) are read from the same
    /// verified payload.
    fn identity(&self, token: &CoreIdToken) -> Result<Identity, OidcError> {
        let raw = token.to_string();
        let payload = raw
            .split('.')
            .nth(1)
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .ok()
            })
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .ok_or_else(|| OidcError::Token("unreadable payload".into()))?;
        let subject = payload["sub"].as_str().unwrap_or_default().to_owned();
        let email = payload["email"].as_str().map(str::to_ascii_lowercase);
        if !self.config.allowed_domains.is_empty() {
            let domain = email
                .as_deref()
                .and_then(|e| e.rsplit_once('@'))
                .map(|(_, d)| d.to_owned())
                .unwrap_or_default();
            if !self
                .config
                .allowed_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(&domain))
            {
                return Err(OidcError::NotAllowed(format!(
                    "the email domain {domain:?} may not sign in"
                )));
            }
        }
        let groups: Vec<String> = match &payload[self.config.groups_claim.as_str()] {
            serde_json::Value::Array(items) => items
                .iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect(),
            serde_json::Value::String(s) => vec![s.clone()],
            _ => Vec::new(),
        };
        let role = role_for(&self.config.role_map, &groups);
        let user = email.clone().unwrap_or_else(|| subject.clone());
        if user.is_empty() {
            return Err(OidcError::Token("no email and no subject".into()));
        }
        Ok(Identity {
            user,
            email,
            subject,
            role,
            groups,
        })
    }
}

/// The strongest role `groups` map to (admin over operator).
pub fn role_for(map: &[(String, Role)], groups: &[String]) -> Option<Role> {
    let mapped = map
        .iter()
        .filter(|(g, _)| groups.iter().any(|have| have == g))
        .map(|(_, r)| *r);
    let mut best = None;
    for r in mapped {
        if r == Role::Admin {
            return Some(r);
        }
        best = Some(r);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_groups_win_and_unmapped_groups_give_no_role() {
        let map = vec![
            ("eng".to_owned(), Role::Operator),
            ("sre-admins".to_owned(), Role::Admin),
        ];
        let g = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(role_for(&map, &g(&["eng"])), Some(Role::Operator));
        assert_eq!(
            role_for(&map, &g(&["eng", "sre-admins"])),
            Some(Role::Admin)
        );
        assert_eq!(role_for(&map, &g(&["sales"])), None);
        assert_eq!(role_for(&map, &[]), None);
    }

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(is_loopback_http("http://127.0.0.1:8080"));
        assert!(is_loopback_http("http://localhost:1/x"));
        assert!(is_loopback_http("http://[::1]:9/"));
        assert!(!is_loopback_http("http://idp.example.com"));
        assert!(!is_loopback_http("https://127.0.0.1"));
        assert!(!is_loopback_http("http://10.0.0.1"));
    }
}
