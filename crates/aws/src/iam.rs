//! IAM calls on the customer's role (`revoke_sessions`), with the credentials of that role's
//! own narrowed session; SDK errors go through `ec2::map_err`.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_iam::error::ProvideErrorMetadata as _;
use rolegate_core::ports::aws::TemporaryCredentials;
use rolegate_core::ports::aws::ec2::AwsError;

use crate::ec2::map_err;

/// IAM through the official SDK.
#[derive(Debug, Clone)]
pub struct SdkIam {
    config: SdkConfig,
}

impl SdkIam {
    #[must_use]
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            config: config.clone(),
        }
    }

    fn client(&self, creds: &TemporaryCredentials) -> aws_sdk_iam::Client {
        let conf = aws_sdk_iam::config::Builder::from(&self.config)
            .credentials_provider(crate::job_credentials(creds))
            .build();
        aws_sdk_iam::Client::from_conf(conf)
    }
}

/// IAM returns policy documents URL-encoded (RFC 3986); a document that is not (an
/// emulator's) has no `%` escapes and passes unchanged.
fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[async_trait]
impl rolegate_core::ports::aws::iam::Iam for SdkIam {
    #[tracing::instrument(skip_all, fields(role_name, policy_name))]
    async fn get_role_policy(
        &self,
        creds: &TemporaryCredentials,
        role_name: &str,
        policy_name: &str,
    ) -> Result<Option<String>, AwsError> {
        match self
            .client(creds)
            .get_role_policy()
            .role_name(role_name)
            .policy_name(policy_name)
            .send()
            .await
        {
            Ok(out) => Ok(Some(url_decode(&out.policy_document))),
            Err(e) if e.code() == Some("NoSuchEntity") => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    #[tracing::instrument(skip_all, fields(role_name, policy_name))]
    async fn put_role_policy(
        &self,
        creds: &TemporaryCredentials,
        role_name: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<(), AwsError> {
        self.client(creds)
            .put_role_policy()
            .role_name(role_name)
            .policy_name(policy_name)
            .policy_document(document)
            .send()
            .await
            .map_err(map_err)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(role_name, policy_name))]
    async fn delete_role_policy(
        &self,
        creds: &TemporaryCredentials,
        role_name: &str,
        policy_name: &str,
    ) -> Result<(), AwsError> {
        match self
            .client(creds)
            .delete_role_policy()
            .role_name(role_name)
            .policy_name(policy_name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("NoSuchEntity") => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::url_decode;

    #[test]
    fn documents_are_url_decoded_once() {
        assert_eq!(
            url_decode("%7B%22Version%22%3A%222012-10-17%22%7D"),
            r#"{"Version":"2012-10-17"}"#
        );
        assert_eq!(url_decode(r#"{"a":"b"}"#), r#"{"a":"b"}"#);
        assert_eq!(url_decode("100%"), "100%");
    }
}
