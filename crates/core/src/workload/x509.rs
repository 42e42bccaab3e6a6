//! Certificates, chains and CRLs, read and judged: `x509-cert` reads the fields profiles
//! match on; `rustls-webpki` builds the chain to a trust anchor, with client-auth usage and
//! the anchor's CRL, and checks request signatures with the leaf's key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;
use x509_cert::der::{Decode as _, asn1::ObjectIdentifier};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use crate::model::CertField;

/// Why a workload was refused: a stable reason (audited, and the start of the message the
/// client sees) and a detail for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub detail: String,
}

impl Refusal {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

const OID_CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const OID_OU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.11");
const OID_O: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");

/// What rolegate reads from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub der: Vec<u8>,
    /// Lowercase hex of the serial's bytes.
    pub serial: String,
    /// RFC 4514 strings.
    pub subject: String,
    pub issuer: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// SHA-256 of the DER, lowercase hex.
    pub fingerprint: String,
    pub cn: Vec<String>,
    pub ou: Vec<String>,
    pub o: Vec<String>,
    pub san_dns: Vec<String>,
    pub san_uri: Vec<String>,
    pub san_email: Vec<String>,
}

impl CertInfo {
    /// Every value of `field`.
    #[must_use]
    pub fn values(&self, field: CertField) -> &[String] {
        match field {
            CertField::SubjectCn => &self.cn,
            CertField::SubjectOu => &self.ou,
            CertField::SubjectO => &self.o,
            CertField::SanDns => &self.san_dns,
            CertField::SanUri => &self.san_uri,
            CertField::SanEmail => &self.san_email,
        }
    }

    /// The subject's (first) common name, or empty.
    #[must_use]
    pub fn common_name(&self) -> &str {
        self.cn.first().map_or("", String::as_str)
    }
}

fn unix(t: x509_cert::time::Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

fn attr_values(name: &x509_cert::name::Name, oid: ObjectIdentifier) -> Vec<String> {
    let mut out = Vec::new();
    for rdn in &name.0 {
        for atv in rdn.0.iter() {
            if atv.oid != oid {
                continue;
            }
            // UTF8String, PrintableString and IA5String all carry their text as is.
            if let Ok(s) = std::str::from_utf8(atv.value.value()) {
                out.push(s.to_owned());
            }
        }
    }
    out
}

/// Reads a DER certificate.
pub fn parse_cert(der: &[u8]) -> Result<CertInfo, String> {
    let cert = Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let tbs = &cert.tbs_certificate;
    let mut info = CertInfo {
        der: der.to_vec(),
        serial: hex::encode(tbs.serial_number.as_bytes()),
        subject: tbs.subject.to_string(),
        issuer: tbs.issuer.to_string(),
        not_before: unix(tbs.validity.not_before),
        not_after: unix(tbs.validity.not_after),
        fingerprint: hex::encode(Sha256::digest(der)),
        cn: attr_values(&tbs.subject, OID_CN),
        ou: attr_values(&tbs.subject, OID_OU),
        o: attr_values(&tbs.subject, OID_O),
        san_dns: Vec::new(),
        san_uri: Vec::new(),
        san_email: Vec::new(),
    };
    if let Some((_, san)) = tbs
        .get::<SubjectAltName>()
        .map_err(|e| format!("unreadable subjectAltName: {e}"))?
    {
        for name in san.0 {
            match name {
                GeneralName::DnsName(s) => info.san_dns.push(s.to_string()),
                GeneralName::UniformResourceIdentifier(s) => info.san_uri.push(s.to_string()),
                GeneralName::Rfc822Name(s) => info.san_email.push(s.to_string()),
                _ => {}
            }
        }
    }
    Ok(info)
}

/// The certificates of a PEM bundle, as DER; each must parse.
pub fn parse_bundle(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let der = item.map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
        parse_cert(der.as_ref())?;
        out.push(der.as_ref().to_vec());
    }
    if out.is_empty() {
        return Err("the bundle holds no CERTIFICATE block".to_owned());
    }
    Ok(out)
}

/// A CRL read from PEM or DER: its DER and its dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlInfo {
    pub der: Vec<u8>,
    pub issuer: String,
    pub this_update: i64,
    pub next_update: Option<i64>,
    pub revoked: usize,
}

pub fn parse_crl(input: &[u8]) -> Result<CrlInfo, String> {
    let der = if input.starts_with(b"-----BEGIN") {
        CertificateRevocationListDer::from_pem_slice(input)
            .map_err(|e| format!("not a PEM X509 CRL: {e}"))?
            .as_ref()
            .to_vec()
    } else {
        input.to_vec()
    };
    let crl = x509_cert::crl::CertificateList::from_der(&der)
        .map_err(|e| format!("not a DER X.509 CRL: {e}"))?;
    // webpki must be able to use it too.
    webpki::BorrowedCertRevocationList::from_der(&der)
        .map_err(|e| format!("unsupported CRL: {e:?}"))?;
    let tbs = &crl.tbs_cert_list;
    Ok(CrlInfo {
        issuer: tbs.issuer.to_string(),
        this_update: unix(tbs.this_update),
        next_update: tbs.next_update.map(unix),
        revoked: tbs.revoked_certificates.as_ref().map_or(0, Vec::len),
        der,
    })
}

/// The subject of a DER certificate as RFC 4514, for matching a CRL to its anchor.
#[must_use]
pub fn subject_of(der: &[u8]) -> Option<String> {
    parse_cert(der).ok().map(|c| c.subject)
}

/// `*` matches any run of characters (also none); everything else matches itself.
#[must_use]
pub fn wildcard_match(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    let (mut pi, mut vi) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while vi < v.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == v[vi] {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Builds the chain from `leaf` (with `intermediates`) to one of `anchors`, for client
/// authentication (the EKU is required, not merely allowed), at `now`, checking every
/// certificate on it against `crl` when there is one. The CRL's own freshness is judged
/// by the caller, with a grace period; webpki only checks that it is the issuer's.
pub fn verify_chain(
    leaf: &[u8],
    intermediates: &[Vec<u8>],
    anchors: &[Vec<u8>],
    crl: Option<&[u8]>,
    now: i64,
) -> Result<(), Refusal> {
    const EKU_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
    let leaf_der = CertificateDer::from(leaf);
    let ee = webpki::EndEntityCert::try_from(&leaf_der)
        .map_err(|e| Refusal::new("certificate_unreadable", format!("{e:?}")))?;
    let anchor_ders: Vec<CertificateDer<'_>> = anchors
        .iter()
        .map(|a| CertificateDer::from(a.as_slice()))
        .collect();
    let trust: Vec<_> = anchor_ders
        .iter()
        .filter_map(|a| webpki::anchor_from_trusted_cert(a).ok())
        .collect();
    let inter: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let owned_crl = match crl {
        Some(der) => Some(
            webpki::BorrowedCertRevocationList::from_der(der)
                .and_then(|c| c.to_owned())
                .map_err(|e| Refusal::new("crl_unreadable", format!("{e:?}")))?,
        ),
        None => None,
    };
    let crl_list: Vec<webpki::CertRevocationList<'_>> =
        owned_crl.into_iter().map(Into::into).collect();
    let crl_refs: Vec<&webpki::CertRevocationList<'_>> = crl_list.iter().collect();
    let revocation = webpki::RevocationOptionsBuilder::new(&crl_refs)
        .ok()
        .map(|b| {
            b.with_depth(webpki::RevocationCheckDepth::Chain)
                // Certificates whose issuer has no CRL here (an intermediate's own CA) pass.
                .with_status_policy(webpki::UnknownStatusPolicy::Allow)
                .with_expiration_policy(webpki::ExpirationPolicy::Ignore)
                .build()
        });
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(now).unwrap_or(0),
    ));
    let algs = [
        webpki::ring::ECDSA_P256_SHA256,
        webpki::ring::ECDSA_P256_SHA384,
        webpki::ring::ECDSA_P384_SHA256,
        webpki::ring::ECDSA_P384_SHA384,
        webpki::ring::ED25519,
        webpki::ring::RSA_PKCS1_2048_8192_SHA256,
        webpki::ring::RSA_PKCS1_2048_8192_SHA384,
        webpki::ring::RSA_PKCS1_2048_8192_SHA512,
        webpki::ring::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
    ];
    ee.verify_for_usage(
        &algs,
        &trust,
        &inter,
        time,
        webpki::KeyUsage::required(EKU_CLIENT_AUTH),
        revocation,
        None,
    )
    .map(|_| ())
    .map_err(|e| {
        use webpki::Error as E;
        let reason = match &e {
            E::CertRevoked => "certificate_revoked",
            E::CertExpired { .. } => "certificate_expired",
            E::CertNotValidYet { .. } => "certificate_not_yet_valid",
            // No anchor names the issuer, or one does but did not sign it (another CA of
            // the same name).
            E::UnknownIssuer | E::InvalidSignatureForPublicKey => "untrusted_issuer",
            E::RequiredEkuNotFoundContext(_) => "client_auth_eku_missing",
            E::InvalidCrlSignatureForPublicKey
            | E::UnsupportedCrlSignatureAlgorithmContext(_)
            | E::UnsupportedCrlSignatureAlgorithmForPublicKeyContext(_) => "crl_invalid",
            _ => "certificate_chain_invalid",
        };
        Refusal::new(reason, format!("{e:?}"))
    })
}

/// Checks `signature` over `msg` with the leaf's key: RSA PKCS#1 v1.5 or ECDSA (DER), SHA-256.
pub fn verify_signature(
    leaf: &[u8],
    rsa: bool,
    msg: &[u8],
    signature: &[u8],
) -> Result<(), Refusal> {
    let leaf_der = CertificateDer::from(leaf);
    let ee = webpki::EndEntityCert::try_from(&leaf_der)
        .map_err(|e| Refusal::new("certificate_unreadable", format!("{e:?}")))?;
    let candidates: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] = if rsa {
        &[webpki::ring::RSA_PKCS1_2048_8192_SHA256]
    } else {
        &[
            webpki::ring::ECDSA_P256_SHA256,
            webpki::ring::ECDSA_P384_SHA256,
        ]
    };
    let mut last = None;
    for alg in candidates {
        match ee.verify_signature(*alg, msg, signature) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(Refusal::new(
        "signature_mismatch",
        format!(
            "the signature does not verify with the certificate's key over the canonical request ({})",
            last.map(|e| format!("{e:?}")).unwrap_or_default()
        ),
    ))
}

/// Base64 (standard alphabet) of DER.
#[must_use]
pub fn b64(der: &[u8]) -> String {
    B64.encode(der)
}

/// DER from base64, as stored or as sent in `X-Amz-X509`.
pub fn unb64(s: &str) -> Result<Vec<u8>, String> {
    B64.decode(s.trim()).map_err(|e| format!("not base64: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn wildcards_match_runs_and_nothing_else() {
        assert!(wildcard_match("build-*", "build-agent-7"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*c*e", "abcde"));
        assert!(wildcard_match("exact", "exact"));
        assert!(!wildcard_match("exact", "exact2"));
        assert!(!wildcard_match("build-*", "deploy-1"));
        assert!(!wildcard_match("*.example.com", "example.com"));
        assert!(wildcard_match("*.example.com", "a.example.com"));
    }

    #[test]
    fn garbage_is_refused_with_a_reason_not_a_panic() {
        assert!(parse_cert(b"nope").is_err());
        assert!(parse_bundle("").is_err());
        assert!(parse_crl(b"\x30\x03\x02\x01\x00").is_err());
        let r = verify_chain(b"x", &[], &[], None, 0).unwrap_err();
        assert_eq!(r.reason, "certificate_unreadable");
    }
}
