//! `validate_credentials`: who a set of credentials belongs to (GetCallerIdentity), and
//! whether it is a session of the org's bound role. The submitted secrets are only passed
//! to STS: never logged, audited or stored.

use secrecy::SecretString;
use serde::Serialize;

use super::Credentials;
use crate::error::Error;
use crate::ids::OrgName;
use crate::policy::Action;
use crate::ports::aws::StsError;
use crate::principal::Caller;

/// Credentials submitted for checking.
#[derive(Debug)]
pub struct ValidateCommand {
    pub org: OrgName,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
}

impl ValidateCommand {
    pub fn parse(
        org_name: Option<&str>,
        access_key_id: Option<&str>,
        secret_access_key: Option<String>,
        session_token: Option<String>,
    ) -> Result<Self, Error> {
        let org = org_name.ok_or_else(|| Error::invalid("org_name", "org_name is required"))?;
        let id = access_key_id
            .ok_or_else(|| Error::invalid("access_key_id", "access_key_id is required"))?;
        if !(16..=128).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::invalid(
                "access_key_id",
                "access_key_id must be 16 to 128 letters and digits",
            ));
        }
        let secret = secret_access_key
            .ok_or_else(|| Error::invalid("secret_access_key", "secret_access_key is required"))?;
        if secret.is_empty() || secret.len() > 256 || secret.chars().any(char::is_control) {
            return Err(Error::invalid(
                "secret_access_key",
                "secret_access_key must be 1 to 256 printable characters",
            ));
        }
        if let Some(t) = &session_token
            && (t.is_empty() || t.len() > 8192 || t.chars().any(char::is_control))
        {
            return Err(Error::invalid(
                "session_token",
                "session_token must be 1 to 8192 printable characters",
            ));
        }
        Ok(Self {
            org: OrgName::parse(org)?,
            access_key_id: id.to_owned(),
            secret_access_key: SecretString::from(secret),
            session_token: session_token.map(SecretString::from),
        })
    }
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Validation {
    pub valid: bool,
    pub arn: Option<String>,
    pub account: Option<String>,
    pub matches_org: bool,
    /// Why STS refused the credentials, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Whether `arn` (`arn:P:sts::A:assumed-role/NAME/SESSION`) is a session of `role_arn`
/// (`arn:P:iam::A:role/PATH/NAME`: the assumed-role ARN drops the path).
#[must_use]
pub fn is_session_of(arn: &str, role_arn: &str) -> bool {
    let a: Vec<&str> = arn.splitn(6, ':').collect();
    let r: Vec<&str> = role_arn.splitn(6, ':').collect();
    let ([_, ap, "sts", "", aa, ares], [_, rp, "iam", "", ra, rres]) = (a.as_slice(), r.as_slice())
    else {
        return false;
    };
    let Some(("assumed-role", rest)) = ares.split_once('/') else {
        return false;
    };
    let Some((session_role, session)) = rest.split_once('/') else {
        return false;
    };
    let Some(role_path) = rres.strip_prefix("role/") else {
        return false;
    };
    let role_name = role_path.rsplit('/').next().unwrap_or_default();
    ap == rp && aa == ra && !session.is_empty() && session_role == role_name
}

impl Credentials {
    /// Checks credentials with GetCallerIdentity. Invalid credentials are an answer
    /// (`valid: false`), not an error; an unreachable STS is.
    #[tracing::instrument(skip_all, fields(org = %cmd.org))]
    pub async fn validate(
        &self,
        caller: &Caller,
        cmd: &ValidateCommand,
    ) -> Result<Validation, Error> {
        let rec = self
            .orgs
            .load(caller, Action::ValidateCredentials, &cmd.org)
            .await?
            .value;
        match self
            .sts
            .caller_identity(
                &cmd.access_key_id,
                &cmd.secret_access_key,
                cmd.session_token.as_ref(),
            )
            .await
        {
            Ok(id) => Ok(Validation {
                matches_org: rec
                    .role_arn
                    .as_deref()
                    .is_some_and(|role| is_session_of(&id.arn, role)),
                valid: true,
                arn: Some(id.arn),
                account: Some(id.account),
                reason: None,
            }),
            Err(StsError::InvalidCredentials(reason)) => Ok(Validation {
                valid: false,
                arn: None,
                account: None,
                matches_org: false,
                reason: Some(reason),
            }),
            Err(e) => Err(Error::from_sts(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sessions_match_their_role_only() {
        let role = "arn:aws:iam::111122223333:role/rolegate-acme";
        assert!(is_session_of(
            "arn:aws:sts::111122223333:assumed-role/rolegate-acme/acme.alice.1f",
            role
        ));
        assert!(is_session_of(
            "arn:aws:sts::111122223333:assumed-role/rolegate-acme/s",
            "arn:aws:iam::111122223333:role/team/rolegate-acme"
        ));
        for other in [
            "arn:aws:sts::444455556666:assumed-role/rolegate-acme/s",
            "arn:aws:sts::111122223333:assumed-role/rolegate-acme2/s",
            "arn:aws-cn:sts::111122223333:assumed-role/rolegate-acme/s",
            "arn:aws:iam::111122223333:user/rolegate-acme",
            "arn:aws:sts::111122223333:federated-user/rolegate-acme",
            "arn:aws:sts::111122223333:assumed-role/rolegate-acme/",
            "garbage",
        ] {
            assert!(!is_session_of(other, role), "{other}");
        }
    }

    #[test]
    fn inputs_are_checked() {
        let ok = |id: &str| {
            ValidateCommand::parse(Some("acme"), Some(id), Some("s".into()), None).map(|_| ())
        };
        assert!(ok("ASIAXXXXXXXXXXXXXXXX").is_ok());
        for (bad, field) in [
            ("short", "access_key_id"),
            ("ASIA XXXXXXXXXXXXXXX", "access_key_id"),
        ] {
            match ok(bad) {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{other:?}"),
            }
        }
        let e = ValidateCommand::parse(Some("acme"), Some("ASIAXXXXXXXXXXXXXXXX"), None, None)
            .unwrap_err();
        assert!(matches!(e, Error::Invalid { field, .. } if field == "secret_access_key"));
    }
}
