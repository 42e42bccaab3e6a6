//! The request signature of Roles Anywhere's CreateSession: SigV4's canonical request,
//! signed with the certificate's private key instead of an HMAC (`AWS4-X509-RSA-SHA256`,
//! `AWS4-X509-ECDSA-SHA256`), as the official credential helper builds it:
//!
//! ```text
//! canonical request = "POST\n/sessions\n" + query + "\n" + canonical headers + "\n\n"
//!                     + signed header names (";") + "\n" + hex(SHA-256(body))
//! string to sign    = ALGORITHM + "\n" + X-Amz-Date + "\n" + scope + "\n"
//!                     + hex(SHA-256(canonical request))
//! signature         = hex(sign(SHA-256(string to sign)))   (PKCS#1 v1.5, or ECDSA in DER)
//! ```

use sha2::{Digest as _, Sha256};

use super::x509::Refusal;

pub const ALG_RSA: &str = "AWS4-X509-RSA-SHA256";
pub const ALG_ECDSA: &str = "AWS4-X509-ECDSA-SHA256";

/// A parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub algorithm: &'static str,
    /// `SERIAL/DATE/REGION/SERVICE/aws4_request`.
    pub credential: String,
    pub signed_headers: Vec<String>,
    pub signature: Vec<u8>,
}

impl Authorization {
    #[must_use]
    pub fn is_rsa(&self) -> bool {
        self.algorithm == ALG_RSA
    }

    /// `DATE/REGION/SERVICE/aws4_request`.
    #[must_use]
    pub fn scope(&self) -> &str {
        self.credential.split_once('/').map_or("", |(_, s)| s)
    }
}

fn bad(detail: impl Into<String>) -> Refusal {
    Refusal::new("malformed_authorization", detail)
}

/// Parses `ALG Credential=…, SignedHeaders=…, Signature=…`.
pub fn parse_authorization(h: &str) -> Result<Authorization, Refusal> {
    let (alg, rest) = h
        .trim()
        .split_once(' ')
        .ok_or_else(|| bad("the Authorization header has no parameters"))?;
    let algorithm = match alg {
        ALG_RSA => ALG_RSA,
        ALG_ECDSA => ALG_ECDSA,
        other => {
            return Err(bad(format!(
                "algorithm {:?} is not {ALG_RSA} or {ALG_ECDSA}",
                other.chars().take(40).collect::<String>()
            )));
        }
    };
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        match k {
            "Credential" => credential = Some(v.to_owned()),
            "SignedHeaders" => signed = Some(v.to_owned()),
            "Signature" => signature = Some(v.to_owned()),
            _ => {}
        }
    }
    let credential = credential.ok_or_else(|| bad("Credential= is missing"))?;
    let signed = signed.ok_or_else(|| bad("SignedHeaders= is missing"))?;
    let signature = signature.ok_or_else(|| bad("Signature= is missing"))?;
    let scope_parts: Vec<&str> = credential.split('/').collect();
    if scope_parts.len() != 5 || scope_parts[4] != "aws4_request" {
        return Err(bad(
            "Credential= must be SERIAL/DATE/REGION/SERVICE/aws4_request",
        ));
    }
    let signature = hex::decode(signature).map_err(|_| bad("Signature= is not hex"))?;
    if signature.is_empty() || signature.len() > 1024 {
        return Err(bad("Signature= has an impossible length"));
    }
    let signed_headers: Vec<String> = signed.split(';').map(str::to_ascii_lowercase).collect();
    if signed_headers.iter().any(String::is_empty) {
        return Err(bad("SignedHeaders= names an empty header"));
    }
    for required in ["host", "x-amz-date"] {
        if !signed_headers.iter().any(|h| h == required) {
            return Err(bad(format!("SignedHeaders= must include {required}")));
        }
    }
    Ok(Authorization {
        algorithm,
        credential,
        signed_headers,
        signature,
    })
}

/// Trims and collapses runs of spaces, as the helper's `stripExcessSpaces`.
fn squeeze(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.trim_matches(' ').chars() {
        if c == ' ' {
            if !space {
                out.push(c);
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
    out
}

/// The canonical query string: pairs sorted, as sent (CreateSession sends none).
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    pairs.sort_unstable();
    pairs.join("&")
}

/// The string the client signed. `headers` are the request's headers (names in any case,
/// a name may repeat); only those in `SignedHeaders` take part.
pub fn string_to_sign(
    auth: &Authorization,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
    amz_date: &str,
) -> Result<String, Refusal> {
    let mut lines = Vec::with_capacity(auth.signed_headers.len());
    let mut names = auth.signed_headers.clone();
    names.sort();
    names.dedup();
    for name in &names {
        let values: Vec<&str> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        if values.is_empty() {
            return Err(bad(format!("signed header {name} is not in the request")));
        }
        lines.push(squeeze(&format!("{name}:{}", values.join(","))));
    }
    let body_hash = hex::encode(Sha256::digest(body));
    let canonical = format!(
        "POST\n/sessions\n{}\n{}\n\n{}\n{body_hash}",
        canonical_query(query),
        lines.join("\n"),
        names.join(";"),
    );
    Ok(format!(
        "{}\n{amz_date}\n{}\n{}",
        auth.algorithm,
        auth.scope(),
        hex::encode(Sha256::digest(canonical.as_bytes()))
    ))
}

/// `YYYYMMDDTHHMMSSZ` → Unix seconds.
pub fn parse_amz_date(s: &str) -> Result<i64, Refusal> {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(s, fmt)
        .map(|t| t.assume_utc().unix_timestamp())
        .map_err(|_| Refusal::new("malformed_date", "X-Amz-Date must be YYYYMMDDTHHMMSSZ"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn authorization_headers_are_parsed_strictly() {
        let a = parse_authorization(
            "AWS4-X509-ECDSA-SHA256 Credential=12/20240101/us-east-1/rolesanywhere/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-x509, Signature=abcd",
        )
        .unwrap();
        assert!(!a.is_rsa());
        assert_eq!(a.scope(), "20240101/us-east-1/rolesanywhere/aws4_request");
        assert_eq!(a.signature, vec![0xab, 0xcd]);
        for bad in [
            "",
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, SignedHeaders=host;x-amz-date, Signature=ab",
            "AWS4-X509-RSA-SHA256 Credential=a/b/c/d/e, SignedHeaders=host;x-amz-date, Signature=ab",
            "AWS4-X509-RSA-SHA256 Credential=a/b/c/d/aws4_request, SignedHeaders=host, Signature=ab",
            "AWS4-X509-RSA-SHA256 Credential=a/b/c/d/aws4_request, SignedHeaders=host;x-amz-date, Signature=zz",
        ] {
            assert!(parse_authorization(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_string_to_sign_covers_the_body_and_the_signed_headers() {
        let a = parse_authorization(
            "AWS4-X509-RSA-SHA256 Credential=1/20240101/us-east-1/rolesanywhere/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
        )
        .unwrap();
        let h = |host: &str| {
            vec![
                ("Host".to_owned(), host.to_owned()),
                ("X-Amz-Date".to_owned(), "20240101T000000Z".to_owned()),
                ("User-Agent".to_owned(), "x".to_owned()),
            ]
        };
        let s = string_to_sign(&a, "", &h("a  b"), b"{}", "20240101T000000Z").unwrap();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "AWS4-X509-RSA-SHA256");
        assert_eq!(lines[2], "20240101/us-east-1/rolesanywhere/aws4_request");
        // Spaces collapse; an unsigned header plays no part; the body does.
        assert_eq!(
            s,
            string_to_sign(&a, "", &h("a b"), b"{}", "20240101T000000Z").unwrap()
        );
        assert_ne!(
            s,
            string_to_sign(&a, "", &h("a b"), b"{ }", "20240101T000000Z").unwrap()
        );
        assert_ne!(
            s,
            string_to_sign(&a, "", &h("c"), b"{}", "20240101T000000Z").unwrap()
        );
        assert!(string_to_sign(&a, "", &[], b"{}", "x").is_err());
        assert_eq!(parse_amz_date("19700101T000100Z").unwrap(), 60);
        assert!(parse_amz_date("1970-01-01").is_err());
    }
}
