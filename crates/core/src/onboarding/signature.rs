//! The callback's signature checks: headers, timestamp window, HMAC (current and previous
//! secret, constant time), nonce. Only then is the body's schema looked at.

use super::callback::{claimed_org, rejected};
use super::{NONCE_TTL, Onboarding, SignatureHeaders, TIMESTAMP_WINDOW_SECS, Verified};
use crate::error::{Code, Error};
use crate::keyspace;
use crate::model::OrgRecord;
use crate::ports::Txn;

fn parse_headers(h: &SignatureHeaders) -> Result<(String, i64, String), Error> {
    let bad = |name: &str| {
        rejected(
            Code::InvalidSignature,
            &format!("missing or malformed {name} header"),
        )
    };
    let sig = h
        .signature
        .as_deref()
        .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| bad("X-Sig-Signature"))?;
    let ts = h
        .timestamp
        .as_deref()
        .and_then(|t| t.parse::<i64>().ok())
        .ok_or_else(|| bad("X-Sig-Timestamp"))?;
    let nonce = h
        .nonce
        .as_deref()
        .filter(|n| {
            (16..=128).contains(&n.len())
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .ok_or_else(|| bad("X-Sig-Nonce"))?;
    Ok((sig.to_ascii_lowercase(), ts, nonce.to_owned()))
}

impl Onboarding {
    /// Headers, timestamp, signature, nonce — in that order.
    pub(super) async fn verify_callback(
        &self,
        headers: &SignatureHeaders,
        body: &[u8],
    ) -> Result<Verified, Error> {
        let (sig, ts, nonce) = parse_headers(headers)?;
        let clock = self.records.clock();
        let now = clock.now().unix_timestamp();
        // abs_diff: an extreme timestamp from the network must not overflow.
        if now.abs_diff(ts) > TIMESTAMP_WINDOW_SECS.unsigned_abs() {
            return Err(rejected(
                Code::StaleTimestamp,
                "X-Sig-Timestamp is more than 300 seconds from the server's clock",
            ));
        }
        let record = match claimed_org(body) {
            Some(org) => self
                .records
                .get(&keyspace::org(&org))
                .await?
                .map(|v| v.value),
            None => None,
        };
        let secret_ok = |r: &OrgRecord| {
            r.callback_secret_used
                || r.callback_secret_expires_at.as_deref().is_none_or(|exp| {
                    time::OffsetDateTime::parse(exp, &time::format_description::well_known::Rfc3339)
                        .is_ok_and(|exp| clock.now() < exp)
                })
        };
        // An unknown org, an expired secret and a wrong signature all cost the same two
        // HMACs (the current secret and a live stack's previous one) and end in the same
        // answer, so the endpoint reveals nothing about org names.
        let key = record
            .as_ref()
            .filter(|r| secret_ok(r))
            .map(|r| r.callback_secret.expose());
        let previous = record
            .as_ref()
            .and_then(|r| r.previous_callback_secret.as_ref())
            .map(|s| s.expose());
        let mut msg = format!("{ts}|{nonce}|").into_bytes();
        msg.extend_from_slice(body);
        let matches = |k: Option<&str>| {
            let expected = rolegate_crypto::hmac_sha256_hex(
                k.unwrap_or("rolegate-no-such-org").as_bytes(),
                &msg,
            );
            rolegate_crypto::ct_eq(expected.as_bytes(), sig.as_bytes()) && k.is_some()
        };
        let with_current = matches(key);
        let with_previous = matches(previous);
        if !(with_current || with_previous) {
            return Err(rejected(
                Code::InvalidSignature,
                "the callback signature is not valid",
            ));
        }
        let org = record.map(|r| r.name).ok_or_else(|| {
            rejected(
                Code::InvalidSignature,
                "the callback signature is not valid",
            )
        })?;
        let nonce_key = keyspace::nonce(&org, &nonce);
        let claim = Txn::new()
            .absent(nonce_key.clone())
            .put_ttl(nonce_key, vec![1], NONCE_TTL);
        if !self.records.vault().commit(claim).await? {
            return Err(rejected(
                Code::NonceReused,
                "this X-Sig-Nonce was already used",
            ));
        }
        Ok(Verified {
            org,
            previous_secret: !with_current,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn header() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(prop_oneof![
            any::<String>(),
            "[0-9a-fA-F]{60,68}",
            "[+-]?[0-9]{1,25}",
            "[A-Za-z0-9_-]{10,140}",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any signature headers: the parsed triple, or `invalid_signature` naming the
        /// header; never a panic. What passes has the documented shape.
        #[test]
        fn any_headers_parse_or_are_invalid_signature(
            signature in header(), timestamp in header(), nonce in header(),
        ) {
            let h = SignatureHeaders { signature, timestamp, nonce };
            match parse_headers(&h) {
                Ok((sig, _ts, nonce)) => {
                    prop_assert_eq!(sig.len(), 64);
                    prop_assert!(sig.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
                    prop_assert!((16..=128).contains(&nonce.len()));
                }
                Err(Error::SignatureRejected { code, message }) => {
                    prop_assert_eq!(code, Code::InvalidSignature);
                    prop_assert!(message.contains("X-Sig-"), "{}", message);
                }
                Err(other) => prop_assert!(false, "untyped error {:?}", other),
            }
        }

        /// The window check on a parsed timestamp cannot overflow, whatever the two clocks:
        /// it is the exact distance.
        #[test]
        fn the_timestamp_window_never_overflows(now in any::<i64>(), ts in any::<i64>()) {
            let exact = (i128::from(now) - i128::from(ts)).unsigned_abs();
            prop_assert_eq!(u128::from(now.abs_diff(ts)), exact);
        }
    }
}
