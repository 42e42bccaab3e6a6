//! The AWS sign-in federation endpoint: `getSigninToken` with the session credentials, then
//! a `login` URL carrying `Issuer`, `Destination` and the token.
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_providers_enable-console-custom-url.html>

use std::time::Duration;

use async_trait::async_trait;
use rolegate_core::ports::aws::{Federation, StsError, TemporaryCredentials};
use secrecy::ExposeSecret as _;

/// The federation endpoint over HTTPS (rustls).
#[derive(Debug, Clone)]
pub struct FederationClient {
    http: reqwest::Client,
}

impl FederationClient {
    /// A client with bounded connect and request timeouts.
    pub fn new(connect_timeout: Duration, timeout: Duration) -> Result<Self, StsError> {
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| StsError::Federation(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { http })
    }
}

#[derive(serde::Deserialize)]
struct SigninToken {
    #[serde(rename = "SigninToken")]
    signin_token: String,
}

#[async_trait]
impl Federation for FederationClient {
    #[tracing::instrument(skip_all, fields(federation_url))]
    async fn signin_url(
        &self,
        federation_url: &str,
        issuer: &str,
        destination: &str,
        creds: &TemporaryCredentials,
    ) -> Result<String, StsError> {
        let session = serde_json::json!({
            "sessionId": creds.access_key_id,
            "sessionKey": creds.secret_access_key.expose_secret(),
            "sessionToken": creds.session_token.expose_secret(),
        })
        .to_string();
        let mut token_url = reqwest::Url::parse(federation_url)
            .map_err(|e| StsError::Federation(format!("bad federation URL: {e}")))?;
        token_url
            .query_pairs_mut()
            .append_pair("Action", "getSigninToken")
            .append_pair("Session", &session);
        let res = self
            .http
            .get(token_url)
            .send()
            .await
            // The error's text may carry the URL, whose query holds the session: drop it.
            .map_err(|e| StsError::Federation(format!("request failed: {}", e.without_url())))?;
        let status = res.status();
        if !status.is_success() {
            return Err(StsError::Federation(format!(
                "getSigninToken answered HTTP {status}"
            )));
        }
        let token: SigninToken = res
            .json()
            .await
            .map_err(|e| StsError::Federation(format!("unexpected answer: {}", e.without_url())))?;
        let mut login = reqwest::Url::parse(federation_url)
            .map_err(|e| StsError::Federation(format!("bad federation URL: {e}")))?;
        login
            .query_pairs_mut()
            .append_pair("Action", "login")
            .append_pair("Issuer", issuer)
            .append_pair("Destination", destination)
            .append_pair("SigninToken", &token.signin_token);
        Ok(login.into())
    }
}
