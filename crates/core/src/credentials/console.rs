//! Console sign-in: credentials issued as usual, exchanged at the partition's federation
//! endpoint for a sign-in token, and returned as a login URL.

use super::Credentials;
use super::issue::IssueCommand;
use crate::audit::AuditRecord;
use crate::error::Error;
use crate::policy::Action;
use crate::principal::Caller;

/// Where sign-in URLs point, by partition unless configured.
#[derive(Debug, Clone, Default)]
pub struct ConsoleSettings {
    /// Overrides the partition's federation endpoint (e.g. a stand-in in tests).
    pub federation_url: Option<String>,
    /// `Issuer` on the login URL: where the console sends the user when the session ends.
    pub issuer: String,
}

/// The partition's federation endpoint and console home.
#[must_use]
pub fn partition_endpoints(partition: &str) -> (&'static str, &'static str) {
    match partition {
        "aws-cn" => (
            "https://signin.amazonaws.cn/federation",
            "https://console.amazonaws.cn/",
        ),
        "aws-us-gov" => (
            "https://signin.amazonaws-us-gov.com/federation",
            "https://console.amazonaws-us-gov.com/",
        ),
        _ => (
            "https://signin.aws.amazon.com/federation",
            "https://console.aws.amazon.com/",
        ),
    }
}

/// The partition's console domain: a destination is on it or a subdomain of it.
#[must_use]
pub fn console_domain(partition: &str) -> &'static str {
    match partition {
        "aws-cn" => "console.amazonaws.cn",
        "aws-us-gov" => "console.amazonaws-us-gov.com",
        _ => "console.aws.amazon.com",
    }
}

/// A JSON Schema pattern for destinations on `partition`'s console: every string it matches
/// (at most 2048 characters) is accepted by [`parse_destination`].
#[must_use]
pub fn destination_pattern(partition: &str) -> String {
    let domain = console_domain(partition).replace('.', "\\.");
    format!("^https://([a-zA-Z0-9-]+\\.)*{domain}([/?#][!-~]*)?$")
}

/// A destination must be an https URL on the partition's console, so the sign-in link
/// can never be turned into a redirect elsewhere.
pub fn parse_destination(raw: &str, partition: &str) -> Result<String, Error> {
    let domain = console_domain(partition);
    let bad = || {
        Error::invalid(
            "destination",
            format!("destination must be an https:// URL on {domain} or a subdomain of it"),
        )
    };
    let rest = raw.strip_prefix("https://").ok_or_else(bad)?;
    let host = rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let host_ok = host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1);
    if raw.len() > 2048 || raw.chars().any(|c| c.is_whitespace() || c.is_control()) || !host_ok {
        return Err(bad());
    }
    Ok(raw.to_owned())
}

/// A sign-in URL and the session behind it.
#[derive(Debug, Clone)]
pub struct ConsoleLogin {
    pub url: String,
    pub expires_at: time::OffsetDateTime,
    pub access_level: String,
    pub session_name: String,
}

impl Credentials {
    /// Issues credentials for `cmd` and turns them into a console sign-in URL.
    #[tracing::instrument(skip_all, fields(org = %cmd.org))]
    pub async fn console_signin(
        &self,
        caller: &Caller,
        cmd: &IssueCommand,
        destination: Option<&str>,
    ) -> Result<ConsoleLogin, Error> {
        // A destination is checked against the bound role's partition before anything is
        // issued.
        // A request refused here steps the caller's budget like one the issuance refuses.
        if let Some(d) = destination
            && let Err(e) = self.check_destination(caller, cmd, d).await
        {
            return Err(self.refused(caller, Action::ConsoleSignin, e).await);
        }
        let issued = self.issue_as(caller, cmd, Action::ConsoleSignin).await?;
        let (default_federation, home) = partition_endpoints(&issued.partition);
        let destination = destination.unwrap_or(home).to_owned();
        let federation = self
            .console
            .federation_url
            .as_deref()
            .unwrap_or(default_federation);
        let result = self
            .federation
            .signin_url(
                federation,
                &self.console.issuer,
                &destination,
                &issued.credentials,
            )
            .await;
        let audit = AuditRecord::new(Action::ConsoleSignin.name())
            .org(cmd.org.to_string())
            .target(issued.credentials.assumed_role_arn.clone())
            .details(serde_json::json!({
                "access_level": issued.access_level,
                "session_name": issued.session_name,
                "source_identity": issued.source_identity,
                "destination": destination,
                "grant_id": issued.grant.as_ref().map(|g| g.0.clone()),
                "reason": cmd.reason,
            }));
        match result {
            Ok(url) => {
                self.records.record(caller, audit).await?;
                Ok(ConsoleLogin {
                    url,
                    expires_at: issued.credentials.expiration,
                    access_level: issued.access_level,
                    session_name: issued.session_name,
                })
            }
            Err(e) => {
                let err = Error::from_sts(e);
                let audit = audit.failure(err.code().as_str());
                if let Err(log) = self.records.record(caller, audit).await {
                    tracing::error!(error = %log, "could not audit a failed console sign-in");
                }
                Err(err)
            }
        }
    }
}

impl Credentials {
    /// Checks `destination` against the bound role's partition, as the caller may see it.
    async fn check_destination(
        &self,
        caller: &Caller,
        cmd: &IssueCommand,
        destination: &str,
    ) -> Result<(), Error> {
        let level = self.levels.level(cmd.access_level.as_deref())?;
        let rec = self
            .orgs
            .load_with(caller, Action::ConsoleSignin, &cmd.org, Some(level))
            .await?
            .value;
        let partition = rec.role_arn.as_deref().and_then(|a| a.split(':').nth(1));
        parse_destination(destination, partition.unwrap_or("aws")).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_stay_on_the_partition_console() {
        for ok in [
            "https://console.aws.amazon.com/",
            "https://us-east-1.console.aws.amazon.com/ec2/home?region=us-east-1#Instances:",
        ] {
            assert!(parse_destination(ok, "aws").is_ok(), "{ok}");
        }
        assert!(parse_destination("https://console.amazonaws.cn/", "aws-cn").is_ok());
        for bad in [
            "http://console.aws.amazon.com/",
            "https://evil.example/console.aws.amazon.com/",
            "https://console.aws.amazon.com.evil.example/",
            "https://evilconsole.aws.amazon.com/",
            "https://console.aws.amazon.com/ x",
            "https://console.amazonaws.cn/",
        ] {
            assert!(parse_destination(bad, "aws").is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints_follow_the_partition() {
        assert!(
            partition_endpoints("aws-us-gov")
                .0
                .contains("amazonaws-us-gov.com")
        );
        assert!(partition_endpoints("aws-cn").1.contains("amazonaws.cn"));
        assert!(
            partition_endpoints("aws")
                .0
                .starts_with("https://signin.aws.amazon.com")
        );
    }
}
