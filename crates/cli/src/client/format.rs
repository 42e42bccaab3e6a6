//! The printed forms of a set of credentials: the server's JSON, shell `export` lines and the
//! AWS CLI's `credential_process` Version 1 JSON.

use secrecy::ExposeSecret as _;
use serde_json::json;

use super::http::Credentials;

/// RFC 3339 in UTC with a `Z`, as AWS tools expect.
pub fn expiration(c: &Credentials) -> String {
    rolegate_core::clock::rfc3339(c.expiration.to_offset(time::UtcOffset::UTC))
}

/// The server's response, pretty-printed.
pub fn json(c: &Credentials) -> Result<String, serde_json::Error> {
    let mut s = serde_json::to_string_pretty(c)?;
    s.push('\n');
    Ok(s)
}

/// What the AWS CLI and SDKs read from a `credential_process` command.
pub fn credential_process(c: &Credentials) -> String {
    let mut s = json!({
        "Version": 1,
        "AccessKeyId": c.access_key_id,
        "SecretAccessKey": c.secret_access_key.expose_secret(),
        "SessionToken": c.session_token.expose_secret(),
        "Expiration": expiration(c),
    })
    .to_string();
    s.push('\n');
    s
}

/// `export` lines for `eval "$(rolegate creds … --format env)"`.
pub fn env(c: &Credentials) -> String {
    let mut vars = vec![
        ("AWS_ACCESS_KEY_ID", c.access_key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", c.secret_access_key.expose_secret()),
        ("AWS_SESSION_TOKEN", c.session_token.expose_secret()),
    ];
    let exp = expiration(c);
    vars.push(("AWS_CREDENTIAL_EXPIRATION", &exp));
    if let Some(region) = c.region.as_deref().filter(|r| !r.is_empty()) {
        // AWS_REGION for the SDKs and the AWS CLI v2, AWS_DEFAULT_REGION for the AWS CLI v1.
        vars.push(("AWS_REGION", region));
        vars.push(("AWS_DEFAULT_REGION", region));
    }
    vars.iter()
        .map(|(k, v)| format!("export {k}={}\n", shell_quote(v)))
        .collect()
}

/// Single-quotes `s` for a POSIX shell: nothing inside is expanded.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    pub(crate) fn sample(region: Option<&str>) -> Credentials {
        serde_json::from_value(json!({
            "access_key_id": "ASIAEXAMPLE",
            "secret_access_key": "se'cr$et`x",
            "session_token": "tok/+=",
            "expiration": "2026-12-01T18:00:00+01:00",
            "assumed_role_arn": "arn:aws:sts::111122223333:assumed-role/rolegate-acme/s",
            "session_name": "s",
            "access_level": "read",
            "region": region,
            "cached": false,
        }))
        .unwrap()
    }

    #[test]
    fn credential_process_is_version_1_in_utc() {
        let v: serde_json::Value =
            serde_json::from_str(&credential_process(&sample(None))).unwrap();
        assert_eq!(
            v,
            json!({"Version": 1, "AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "se'cr$et`x",
                   "SessionToken": "tok/+=", "Expiration": "2026-12-01T17:00:00Z"})
        );
    }

    #[test]
    fn env_lines_are_single_quoted_and_region_is_optional() {
        let out = env(&sample(Some("eu-west-1")));
        assert_eq!(
            out,
            "export AWS_ACCESS_KEY_ID='ASIAEXAMPLE'\n\
             export AWS_SECRET_ACCESS_KEY='se'\\''cr$et`x'\n\
             export AWS_SESSION_TOKEN='tok/+='\n\
             export AWS_CREDENTIAL_EXPIRATION='2026-12-01T17:00:00Z'\n\
             export AWS_REGION='eu-west-1'\n\
             export AWS_DEFAULT_REGION='eu-west-1'\n"
        );
        assert!(!env(&sample(None)).contains("REGION"));
    }

    #[test]
    fn shell_quoting_survives_a_real_shell() {
        let nasty = "a'b\"c$(id)`d`\\e\nf";
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", shell_quote(nasty)))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), nasty);
    }

    #[test]
    fn json_includes_every_field() {
        let v: serde_json::Value = serde_json::from_str(&json(&sample(None)).unwrap()).unwrap();
        assert_eq!(v["secret_access_key"], "se'cr$et`x");
        assert_eq!(v["access_level"], "read");
        assert_eq!(v["expiration"], "2026-12-01T18:00:00+01:00");
    }
}
