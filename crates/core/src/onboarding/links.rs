//! What a customer needs to deploy the onboarding stack: a CloudFormation quick-create link
//! with every parameter filled in, the template URL, and an equivalent AWS CLI command.

use std::fmt::Write as _;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;

use super::Onboarding;
use crate::audit::AuditRecord;
use crate::error::{Code, Error};
use crate::ids::OrgName;
use crate::keyspace;
use crate::model::{OrgRecord, OrgStatus, Secret};
use crate::orgs::CALLBACK_SECRET_PREFIX;
use crate::policy::Action;
use crate::principal::Caller;
use crate::records::Change;

/// Provider-side onboarding settings.
#[derive(Debug, Clone, Default)]
pub struct OnboardingSettings {
    /// `None` until configured: links are then refused with `not_configured`.
    pub provider_account_id: Option<String>,
    pub provider_principal_arn: Option<String>,
    pub callback_url: String,
    pub region: String,
    pub partition: String,
    pub access_level: String,
    pub max_session_duration: u32,
    pub template_url_ttl: Duration,
}

/// The links handed to a customer. Carries the callback secret (inside the URLs), never the
/// org's API key.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct OnboardingLinks {
    pub console_url: String,
    pub template_url: String,
    pub aws_cli_command: String,
    pub stack_name: String,
    pub region: String,
    pub expires_at: String,
}

/// Whether `arn` is what the template accepts as `ProviderPrincipalArn`: an IAM role or user
/// ARN (`arn:PARTITION:iam::ACCOUNT:role/PATH/NAME`). The customer's role trusts exactly it.
#[must_use]
pub fn is_principal_arn(arn: &str) -> bool {
    let Some(rest) = arn.strip_prefix("arn:") else {
        return false;
    };
    let mut parts = rest.splitn(5, ':');
    let (Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let name = resource
        .strip_prefix("role/")
        .or_else(|| resource.strip_prefix("user/"));
    partition.starts_with("aws")
        && partition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-')
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && name.is_some_and(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_/-".contains(&b))
        })
        && arn.len() <= 2048
}

/// The IAM principal behind a GetCallerIdentity ARN, as a trust policy names it: an
/// assumed-role session `arn:P:sts::A:assumed-role/NAME/SESSION` is the role
/// `arn:P:iam::A:role/NAME` (without its path, which the session ARN does not carry); an IAM
/// user or role ARN is itself. The root user and federated users cannot be pinned.
#[must_use]
pub fn principal_of(caller_arn: &str) -> Option<String> {
    if is_principal_arn(caller_arn) {
        return Some(caller_arn.to_owned());
    }
    let rest = caller_arn.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let (Some(partition), Some("sts"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let (role, _session) = resource.strip_prefix("assumed-role/")?.split_once('/')?;
    let arn = format!("arn:{partition}:iam::{account}:role/{role}");
    is_principal_arn(&arn).then_some(arn)
}

/// The console host of each partition.
#[must_use]
pub fn console_host(partition: &str) -> &'static str {
    match partition {
        "aws-cn" => "console.amazonaws.cn",
        "aws-us-gov" => "console.amazonaws-us-gov.com",
        _ => "console.aws.amazon.com",
    }
}

/// Percent-encodes everything outside RFC 3986's unreserved set.
#[must_use]
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Quotes a word for a POSIX shell: single quotes, with `'` written as `'\''`.
#[must_use]
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The stack name for an org (valid: starts with a letter, `[A-Za-z0-9-]`, ≤ 128).
#[must_use]
pub fn stack_name(org: &OrgName) -> String {
    format!("rolegate-{org}")
}

/// Template parameters in a stable order.
#[must_use]
pub fn parameters(
    rec: &OrgRecord,
    s: &OnboardingSettings,
    provider_account_id: &str,
    secret: &str,
) -> Vec<(&'static str, String)> {
    let p = vec![
        ("OrgName", rec.name.to_string()),
        ("ExternalId", rec.external_id.clone()),
        ("CallbackUrl", s.callback_url.clone()),
        ("CallbackSecret", secret.to_owned()),
        ("ProviderAccountId", provider_account_id.to_owned()),
        ("AccessLevel", s.access_level.clone()),
        ("MaxSessionDuration", s.max_session_duration.to_string()),
    ];
    p
}

/// The quick-create console URL.
#[must_use]
pub fn console_url(
    s: &OnboardingSettings,
    template_url: &str,
    stack: &str,
    params: &[(&str, String)],
) -> String {
    let mut url = format!(
        "https://{region}.{host}/cloudformation/home?region={region}#/stacks/quickcreate?templateURL={t}&stackName={n}",
        region = s.region,
        host = console_host(&s.partition),
        t = url_encode(template_url),
        n = url_encode(stack)
    );
    for (k, v) in params {
        let _ = write!(url, "&param_{k}={}", url_encode(v));
    }
    url
}

/// `aws cloudformation create-stack …`, safely quoted for any parameter value.
#[must_use]
pub fn cli_command(
    s: &OnboardingSettings,
    template_url: &str,
    stack: &str,
    params: &[(&str, String)],
) -> String {
    let json: Vec<serde_json::Value> = params
        .iter()
        .map(|(k, v)| serde_json::json!({"ParameterKey": k, "ParameterValue": v}))
        .collect();
    let params_json = serde_json::Value::Array(json).to_string();
    format!(
        "aws cloudformation create-stack --region {} --stack-name {} --template-url {} --capabilities CAPABILITY_NAMED_IAM --parameters {}",
        shell_quote(&s.region),
        shell_quote(stack),
        shell_quote(template_url),
        shell_quote(&params_json)
    )
}

impl Onboarding {
    /// The one principal of the provider's account that customer roles trust: the
    /// configured `onboarding.provider_principal_arn`, or who rolegate itself is according to
    /// STS GetCallerIdentity (learned once). Without it no links are issued: a role trusting
    /// the whole provider account would let any principal there that reads the ExternalId
    /// assume it, unaudited.
    async fn provider_principal(&self, provider_account: &str) -> Result<String, Error> {
        if let Some(arn) = &self.links.provider_principal_arn {
            return Ok(arn.clone());
        }
        let learned = self
            .learned_principal
            .get_or_try_init(|| async {
                let me = self.sts.own_identity().await.map_err(|e| {
                    tracing::warn!(error = %e, "cannot learn rolegate's own principal");
                    Error::NotConfigured(format!(
                        "onboarding.provider_principal_arn is not set and rolegate could not learn its own principal from STS GetCallerIdentity ({}); set it to the ARN of the role rolegate runs as",
                        crate::error::sts_code(&e)
                    ))
                })?;
                principal_of(&me.arn).ok_or_else(|| {
                    Error::NotConfigured(format!(
                        "rolegate runs as {}, which a trust policy cannot name; run it as an IAM role or user, or set onboarding.provider_principal_arn",
                        me.arn
                    ))
                })
            })
            .await?;
        if !learned.contains(&format!(":{provider_account}:")) {
            return Err(Error::NotConfigured(format!(
                "rolegate runs as {learned}, outside onboarding.provider_account_id {provider_account}; fix either setting"
            )));
        }
        Ok(learned.clone())
    }

    /// Publishes the template and returns the links for the customer. With `rotate` (POST
    /// /api/integrate) a fresh callback secret replaces the current one; without it (GET)
    /// the current secret is reused while it still works, so looking at the links never
    /// breaks a stack. A replaced secret that a live stack used stays valid for that stack
    /// until a callback uses the new one.
    pub async fn issue_links(
        &self,
        caller: &Caller,
        org: &OrgName,
        rotate: bool,
    ) -> Result<OnboardingLinks, Error> {
        // 404/403 for the org come before any configuration problem.
        self.orgs
            .load(caller, Action::IssueOnboardingLinks, org)
            .await?;
        let settings = &self.links;
        let provider_account = settings.provider_account_id.as_deref().ok_or_else(|| {
            Error::NotConfigured("onboarding.provider_account_id is not set".to_owned())
        })?;
        let templates = self.templates.as_ref().ok_or_else(|| {
            Error::NotConfigured("onboarding.template_bucket is not set".to_owned())
        })?;
        let principal = self.provider_principal(provider_account).await?;
        let digest = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(&self.template)[..8]);
        let template_url = templates
            .publish(
                &format!("rolegate/onboarding-{digest}.yaml"),
                &self.template,
                settings.template_url_ttl,
            )
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "could not publish the onboarding template");
                Error::Upstream {
                    code: Code::TemplateStoreUnavailable,
                    message: "the onboarding template could not be published to S3; details are in the log".to_owned(),
                    retry_after_secs: Some(5),
                }
            })?;
        let clock = self.records.clock();
        let now = clock.now();
        let mut issued: Option<(SecretString, time::OffsetDateTime)> = None;
        let audit_details = |expires: time::OffsetDateTime, rotated: bool| {
            AuditRecord::new(Action::IssueOnboardingLinks.name())
                .org(org.to_string())
                .details(serde_json::json!({
                    "callback_secret_expires_at": crate::clock::rfc3339(expires),
                    "region": settings.region,
                    "rotated": rotated,
                }))
        };
        let updated = self
            .records
            .update(caller, &keyspace::org(org), |cur| {
                if cur.status == OrgStatus::Offboarded {
                    return Err(Error::offboarded(org));
                }
                let current_expires = cur.callback_secret_expires_at.as_deref().and_then(|e| {
                    time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339)
                        .ok()
                });
                let reusable = cur.callback_secret_used || current_expires.is_some_and(|e| now < e);
                if !rotate && reusable {
                    let expires = current_expires.unwrap_or(now + super::CALLBACK_SECRET_TTL);
                    issued = Some((
                        SecretString::from(cur.callback_secret.expose().to_owned()),
                        expires,
                    ));
                    return Ok(Change::Note {
                        audit: audit_details(expires, false),
                    });
                }
                let secret: SecretString = rolegate_crypto::secret_token(CALLBACK_SECRET_PREFIX);
                let expires = now + super::CALLBACK_SECRET_TTL;
                let mut rec = cur.clone();
                if rec.callback_secret_used {
                    rec.previous_callback_secret = Some(rec.callback_secret.clone());
                }
                rec.callback_secret = Secret::new(secret.expose_secret());
                rec.callback_secret_expires_at = Some(crate::clock::rfc3339(expires));
                rec.callback_secret_used = false;
                rec.updated_at = self.records.now();
                issued = Some((secret, expires));
                Ok(Change::write(rec, audit_details(expires, true)))
            })
            .await?;
        let (secret, expires) = issued.ok_or(Error::Contention)?;
        let stack = stack_name(org);
        let mut params = parameters(
            &updated.value,
            settings,
            provider_account,
            secret.expose_secret(),
        );
        params.push(("ProviderPrincipalArn", principal));
        let url_expiry = clock.now() + settings.template_url_ttl;
        Ok(OnboardingLinks {
            console_url: console_url(settings, &template_url, &stack, &params),
            aws_cli_command: cli_command(settings, &template_url, &stack, &params),
            template_url,
            stack_name: stack,
            region: settings.region.clone(),
            expires_at: crate::clock::rfc3339(url_expiry.min(expires)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_that_a_trust_policy_can_name() {
        for (caller, pinned) in [
            (
                "arn:aws:sts::123456789012:assumed-role/rolegate/i-0abc",
                Some("arn:aws:iam::123456789012:role/rolegate"),
            ),
            (
                "arn:aws-us-gov:sts::123456789012:assumed-role/rg/s",
                Some("arn:aws-us-gov:iam::123456789012:role/rg"),
            ),
            (
                "arn:aws:iam::123456789012:user/ci/rolegate",
                Some("arn:aws:iam::123456789012:user/ci/rolegate"),
            ),
            ("arn:aws:iam::123456789012:root", None),
            ("arn:aws:sts::123456789012:federated-user/bob", None),
            ("arn:aws:sts::123456789012:assumed-role/noslash", None),
            ("arn:aws:iam::12345:role/x", None),
            ("arn:aws:iam::123456789012:role/", None),
            ("arn:aws:iam::123456789012:role/a b", None),
        ] {
            assert_eq!(principal_of(caller).as_deref(), pinned, "{caller}");
        }
    }

    #[test]
    fn quoting_and_encoding() {
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(url_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(console_host("aws-cn"), "console.amazonaws.cn");
        assert_eq!(console_host("aws-us-gov"), "console.amazonaws-us-gov.com");
    }

    fn settings(region: &str, partition: &str, callback_url: &str) -> OnboardingSettings {
        OnboardingSettings {
            provider_account_id: Some("123456789012".into()),
            provider_principal_arn: None,
            callback_url: callback_url.into(),
            region: region.into(),
            partition: partition.into(),
            access_level: "ReadOnly".into(),
            max_session_duration: 3600,
            template_url_ttl: Duration::from_secs(3600),
        }
    }

    /// The command survives a real shell whatever the values hold: `aws` is replaced by a
    /// function that prints its arguments, and they must come back exactly.
    #[test]
    fn the_cli_command_is_safe_in_a_real_shell_for_any_value() {
        #![allow(clippy::unwrap_used)]
        let nasty = "https://cb.example/x?a=1&b='2' $(touch /tmp/rolegate-pwned) `id` \\ \" ; ls";
        let s = settings("eu-west-1", "aws", nasty);
        let params = vec![
            ("CallbackUrl", nasty.to_owned()),
            ("OrgName", "it's".to_owned()),
        ];
        let template = "https://bucket.s3.amazonaws.com/t.yaml?X-Amz-Signature=a'b";
        let cmd = cli_command(&s, template, "rolegate-acme", &params);
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("aws() {{ printf '%s\\0' \"$@\"; }}; {cmd}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let argv: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .split('\0')
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        assert_eq!(
            argv[..4],
            ["cloudformation", "create-stack", "--region", "eu-west-1"]
        );
        assert_eq!(
            argv[argv.iter().position(|a| a == "--template-url").unwrap() + 1],
            template
        );
        let json: serde_json::Value = serde_json::from_str(argv.last().unwrap()).unwrap();
        assert_eq!(json[0]["ParameterValue"], nasty);
        assert_eq!(json[1]["ParameterValue"], "it's");
        assert!(!std::path::Path::new("/tmp/rolegate-pwned").exists());
    }

    #[test]
    fn console_urls_follow_the_partition() {
        for (partition, region, host) in [
            ("aws", "us-east-1", "us-east-1.console.aws.amazon.com"),
            ("aws-cn", "cn-north-1", "cn-north-1.console.amazonaws.cn"),
            (
                "aws-us-gov",
                "us-gov-west-1",
                "us-gov-west-1.console.amazonaws-us-gov.com",
            ),
        ] {
            let s = settings(region, partition, "https://cb.example/");
            let url = console_url(
                &s,
                "https://t.example/t.yaml",
                "rolegate-acme",
                &[("OrgName", "acme".into())],
            );
            assert!(
                url.starts_with(&format!("https://{host}/cloudformation/home?region={region}#/stacks/quickcreate?templateURL=https%3A%2F%2Ft.example%2Ft.yaml&stackName=rolegate-acme")),
                "{url}"
            );
            assert!(url.ends_with("&param_OrgName=acme"), "{url}");
        }
    }
}
