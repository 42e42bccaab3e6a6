//! The `[oidc]` table: sign-in to the portal through the company's identity provider.
//!
//! ```toml
//! [oidc]
//! issuer = "https://login.example.com/"          # plain http only for a loopback IdP
//! client_id = "rolegate"
//! client_secret_file = "/run/secrets/oidc-client-secret"
//! redirect_url = "https://rolegate.example.com/auth/oidc/callback"
//! scopes = ["openid", "email", "profile", "groups"]
//! groups_claim = "groups"
//! allowed_domains = ["example.com"]               # empty: any
//! display_name = "Example SSO"
//! jwks_refetch_cooldown_secs = 60
//! [oidc.role_map]
//! "rolegate-admins" = "admin"
//! "engineering" = "operator"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rolegate_core::ids::Role;
use rolegate_portal::oidc::{OidcConfig, is_loopback_http};
use secrecy::SecretString;
use serde::Deserialize;

use super::{ConfigError, bad, read_secret_file};

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOidc {
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    pub redirect_url: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub groups_claim: Option<String>,
    #[serde(default)]
    pub role_map: BTreeMap<String, String>,
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    pub display_name: Option<String>,
    pub jwks_refetch_cooldown_secs: Option<u64>,
}

fn web_url(setting: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("https://") || is_loopback_http(url) {
        Ok(())
    } else {
        Err(bad(
            setting,
            "must be an https:// URL (plain http only on a loopback address)",
        ))
    }
}

impl RawOidc {
    /// `None` when the table is absent (no `issuer`).
    pub fn validate(self) -> Result<Option<OidcConfig>, ConfigError> {
        let Some(issuer) = self.issuer else {
            return Ok(None);
        };
        web_url("oidc.issuer", &issuer)?;
        let client_id = self
            .client_id
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| bad("oidc.client_id", "is required with oidc.issuer"))?;
        let secret_file = self
            .client_secret_file
            .ok_or_else(|| bad("oidc.client_secret_file", "is required with oidc.issuer"))?;
        let client_secret = read_secret_file("oidc.client_secret_file", &secret_file)?;
        let redirect_url = self
            .redirect_url
            .ok_or_else(|| bad("oidc.redirect_url", "is required with oidc.issuer"))?;
        web_url("oidc.redirect_url", &redirect_url)?;
        if !redirect_url.ends_with("/auth/oidc/callback") {
            return Err(bad(
                "oidc.redirect_url",
                "must end with /auth/oidc/callback (the portal's callback)",
            ));
        }
        let mut role_map = Vec::new();
        for (group, role) in self.role_map {
            let role = Role::parse(&role).map_err(|_| {
                bad(
                    "oidc.role_map",
                    format!("{group:?}: role must be admin or operator"),
                )
            })?;
            role_map.push((group, role));
        }
        if role_map.is_empty() {
            return Err(bad(
                "oidc.role_map",
                "map at least one group to admin or operator (nobody could sign in)",
            ));
        }
        let cooldown = self.jwks_refetch_cooldown_secs.unwrap_or(60);
        if cooldown > 3600 {
            return Err(bad(
                "oidc.jwks_refetch_cooldown_secs",
                "must be at most 3600",
            ));
        }
        let scopes = self.scopes.unwrap_or_else(|| {
            ["openid", "email", "profile", "groups"]
                .map(str::to_owned)
                .to_vec()
        });
        Ok(Some(OidcConfig {
            issuer,
            client_id,
            client_secret: SecretString::from(client_secret),
            redirect_url,
            scopes,
            groups_claim: self.groups_claim.unwrap_or_else(|| "groups".to_owned()),
            role_map,
            allowed_domains: self.allowed_domains,
            jwks_cooldown: Duration::from_secs(cooldown),
            display_name: self
                .display_name
                .unwrap_or_else(|| "your identity provider".to_owned()),
        }))
    }
}
