//! Signatures of outgoing webhooks (rolegate's own format) and checks of incoming Slack ones.
//!
//! Outgoing: `X-Rolegate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 over "<t>.<body>">`,
//! the shape Stripe uses, so a receiver can refuse stale timestamps and compare in constant time.
//! Incoming from Slack: `X-Slack-Signature: v0=<hex HMAC-SHA256 over "v0:<ts>:<body>">` with the
//! timestamp in `X-Slack-Request-Timestamp`.

use crate::digest::{ct_eq, hmac_sha256_hex};

/// The header rolegate signs its outgoing webhooks with.
pub const SIGNATURE_HEADER: &str = "X-Rolegate-Signature";

/// How far a signed timestamp may be from now, either way, in seconds.
pub const MAX_SKEW_SECS: i64 = 300;

/// The `X-Rolegate-Signature` value for `body` sent at `unix_secs`.
#[must_use]
pub fn sign(secret: &[u8], unix_secs: i64, body: &[u8]) -> String {
    format!(
        "t={unix_secs},v1={}",
        hmac_sha256_hex(secret, &signed_payload(unix_secs, body))
    )
}

/// Why a signature was refused. Carries no secret and no expected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is missing or malformed")]
    Malformed,
    #[error("the signed timestamp is more than {MAX_SKEW_SECS} s from now")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
}

/// Checks an `X-Rolegate-Signature` value against `body`, at `now_unix_secs`.
///
/// # Errors
/// [`SignatureError`] when the header is malformed, stale or does not match.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_unix_secs: i64,
) -> Result<(), SignatureError> {
    let mut ts = None;
    let mut sig = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => ts = v.parse::<i64>().ok(),
            Some(("v1", v)) => sig = Some(v),
            _ => {}
        }
    }
    let (Some(ts), Some(sig)) = (ts, sig) else {
        return Err(SignatureError::Malformed);
    };
    check_skew(ts, now_unix_secs)?;
    let expected = hmac_sha256_hex(secret, &signed_payload(ts, body));
    if ct_eq(expected.as_bytes(), sig.as_bytes()) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Checks Slack's `X-Slack-Signature` (`v0=<hex>`) over `v0:<ts>:<body>` with Slack's signing
/// secret, refusing a timestamp more than 300 s from `now_unix_secs`.
///
/// # Errors
/// [`SignatureError`] when the values are malformed, stale or do not match.
pub fn verify_slack(
    signing_secret: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now_unix_secs: i64,
) -> Result<(), SignatureError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::Malformed)?;
    let sig = signature
        .trim()
        .strip_prefix("v0=")
        .ok_or(SignatureError::Malformed)?;
    check_skew(ts, now_unix_secs)?;
    let mut msg = format!("v0:{ts}:").into_bytes();
    msg.extend_from_slice(body);
    let expected = hmac_sha256_hex(signing_secret, &msg);
    if ct_eq(expected.as_bytes(), sig.as_bytes()) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn check_skew(ts: i64, now: i64) -> Result<(), SignatureError> {
    if now.abs_diff(ts) > MAX_SKEW_SECS.unsigned_abs() {
        Err(SignatureError::Stale)
    } else {
        Ok(())
    }
}

fn signed_payload(unix_secs: i64, body: &[u8]) -> Vec<u8> {
    let mut msg = format!("{unix_secs}.").into_bytes();
    msg.extend_from_slice(body);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_changed_body_does_not() {
        let h = sign(b"k", 1_000, b"{}");
        assert!(h.starts_with("t=1000,v1="));
        assert_eq!(verify(b"k", &h, b"{}", 1_100), Ok(()));
        assert_eq!(
            verify(b"k", &h, b"{ }", 1_100),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"x", &h, b"{}", 1_100),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify(b"k", &h, b"{}", 1_301), Err(SignatureError::Stale));
        assert_eq!(
            verify(b"k", "v1=ab", b"{}", 1_000),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn slack_v0_matches_slacks_documented_example() {
        // The example from Slack's "Verifying requests from Slack" page.
        let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert_eq!(
            verify_slack(secret, "1531420618", sig, body, 1_531_420_618),
            Ok(())
        );
        assert_eq!(
            verify_slack(secret, "1531420618", sig, body, 1_531_420_618 + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_slack(secret, "1531420618", "v0=00", body, 1_531_420_618),
            Err(SignatureError::Mismatch)
        );
    }
}
