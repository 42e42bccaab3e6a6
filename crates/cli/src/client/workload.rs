//! `rolegate creds --certificate … --private-key … --trust-anchor ARN --profile ARN`: a
//! workload's own CreateSession, signed with its certificate's key as Roles Anywhere's
//! credential helper signs it (`AWS4-X509-ECDSA-SHA256` or `AWS4-X509-RSA-SHA256` over the
//! canonical request), so no API key is needed. And `rolegate pki dev-ca`: a throw-away CA
//! and leaf for trying the flow. The private key is read from its file, used, and dropped;
//! it never reaches stdout, stderr or a process's arguments.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use super::http::Credentials;

/// A loaded signing key.
enum Signer {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

impl Signer {
    fn algorithm(&self) -> &'static str {
        match self {
            Self::Ecdsa(_) => "AWS4-X509-ECDSA-SHA256",
            Self::Rsa(_) => "AWS4-X509-RSA-SHA256",
        }
    }

    fn sign(&self, msg: &[u8]) -> anyhow::Result<Vec<u8>> {
        let rng = SystemRandom::new();
        match self {
            Self::Ecdsa(k) => Ok(k
                .sign(&rng, msg)
                .map_err(|_| anyhow::anyhow!("could not sign with the private key"))?
                .as_ref()
                .to_vec()),
            Self::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .map_err(|_| anyhow::anyhow!("could not sign with the private key"))?;
                Ok(sig)
            }
        }
    }
}

/// Reads a PEM private key: PKCS#8 (EC P-256 or RSA) or PKCS#1 RSA.
fn load_key(path: &Path) -> anyhow::Result<Signer> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| anyhow::anyhow!("{} holds no PEM private key", path.display()))?;
    let rng = SystemRandom::new();
    let bad = || {
        anyhow::anyhow!(
            "{}: the key is not an EC P-256 or RSA (2048 bits or more) key",
            path.display()
        )
    };
    match key {
        PrivateKeyDer::Pkcs8(k) => {
            let der = k.secret_pkcs8_der();
            // P-384 keys would need ECDSA over SHA-256, which ring does not offer.
            if let Ok(k) =
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der, &rng)
            {
                return Ok(Signer::Ecdsa(k));
            }
            RsaKeyPair::from_pkcs8(der)
                .map(Signer::Rsa)
                .map_err(|_| bad())
        }
        PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der())
            .map(Signer::Rsa)
            .map_err(|_| bad()),
        PrivateKeyDer::Sec1(_) => bail!(
            "{}: an `EC PRIVATE KEY` (SEC1) key; convert it to PKCS#8 first: openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8",
            path.display()
        ),
        _ => Err(bad()),
    }
}

/// The certificate (first block) and its chain (the rest), as DER.
fn load_certs(path: &Path) -> anyhow::Result<(Vec<u8>, Vec<Vec<u8>>)> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut certs = Vec::new();
    for c in CertificateDer::pem_slice_iter(&pem) {
        certs.push(
            c.with_context(|| format!("{} is not a PEM certificate file", path.display()))?
                .as_ref()
                .to_vec(),
        );
    }
    if certs.is_empty() {
        bail!("{} holds no CERTIFICATE block", path.display());
    }
    let leaf = certs.remove(0);
    Ok((leaf, certs))
}

/// What a certificate-signed session needs.
#[derive(Debug)]
pub struct SessionArgs<'a> {
    pub server: &'a str,
    pub ca_file: Option<&'a Path>,
    pub certificate: &'a Path,
    pub private_key: &'a Path,
    pub trust_anchor: &'a str,
    pub profile: &'a str,
    pub role_arn: Option<&'a str>,
    pub duration: Option<u32>,
}

fn amz_date(t: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Calls `POST /sessions` and returns the credentials.
pub async fn session(a: &SessionArgs<'_>, now: OffsetDateTime) -> anyhow::Result<Credentials> {
    let url = reqwest::Url::parse(a.server)
        .with_context(|| format!("--server {:?} is not a URL", a.server))?
        .join("/sessions")?;
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => bail!("--server has no host"),
    };
    let region = a
        .trust_anchor
        .split(':')
        .nth(3)
        .filter(|r| !r.is_empty())
        .context("--trust-anchor must be a trust anchor ARN (arn:aws:rolesanywhere:REGION:…)")?;
    let (leaf, chain) = load_certs(a.certificate)?;
    let signer = load_key(a.private_key)?;
    let mut body = json!({
        "durationSeconds": a.duration.unwrap_or(3600),
        "profileArn": a.profile,
        "trustAnchorArn": a.trust_anchor,
    });
    if let Some(r) = a.role_arn {
        body["roleArn"] = json!(r);
    }
    let body = serde_json::to_vec(&body)?;
    let date = amz_date(now);
    let mut headers = vec![
        ("content-type", "application/json".to_owned()),
        ("host", host),
        ("x-amz-date", date.clone()),
        ("x-amz-x509", B64.encode(&leaf)),
    ];
    if !chain.is_empty() {
        let joined: Vec<String> = chain.iter().map(|c| B64.encode(c)).collect();
        headers.push(("x-amz-x509-chain", joined.join(",")));
    }
    headers.sort_by(|x, y| x.0.cmp(y.0));
    let lines: Vec<String> = headers.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    let names: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    let signed = names.join(";");
    let canonical = format!(
        "POST\n/sessions\n\n{}\n\n{signed}\n{}",
        lines.join("\n"),
        hex::encode(Sha256::digest(&body))
    );
    let scope = format!("{}/{region}/rolesanywhere/aws4_request", &date[..8]);
    let alg = signer.algorithm();
    let to_sign = format!(
        "{alg}\n{date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let sig = signer.sign(to_sign.as_bytes())?;
    drop(signer);
    let serial = rolegate_core::workload::x509::parse_cert(&leaf)
        .map(|c| c.serial)
        .unwrap_or_default();
    let mut builder = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ca) = a.ca_file {
        let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    let mut req = builder.build()?.post(url.clone()).body(body);
    for (k, v) in &headers {
        req = req.header(*k, v);
    }
    req = req.header(
        "authorization",
        format!(
            "{alg} Credential={serial}/{scope}, SignedHeaders={signed}, Signature={}",
            hex::encode(sig)
        ),
    );
    let res = req
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = res.status();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = v["message"]
            .as_str()
            .or_else(|| v["error"]["message"].as_str())
            .unwrap_or("no message");
        bail!("the server refused the session ({status}): {message}");
    }
    let set = &v["credentialSet"][0];
    let c = &set["credentials"];
    let creds = json!({
        "access_key_id": c["accessKeyId"],
        "secret_access_key": c["secretAccessKey"],
        "session_token": c["sessionToken"],
        "expiration": c["expiration"],
        "assumed_role_arn": set["assumedRoleUser"]["arn"],
        "source_identity": set["sourceIdentity"],
    });
    serde_json::from_value(creds).context("the server's answer is not CreateSession's")
}

/// `rolegate pki dev-ca`: a CA and a client certificate it issued, in `out`.
pub fn dev_ca(out: &Path, cn: &str) -> anyhow::Result<Vec<PathBuf>> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "rolegate dev CA - NOT FOR PRODUCTION");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_after = OffsetDateTime::now_utc() + time::Duration::days(30);
    let ca_cert = ca.self_signed(&ca_key)?;
    let leaf_key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(Vec::<String>::new())?;
    leaf.distinguished_name.push(DnType::CommonName, cn);
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    leaf.not_after = OffsetDateTime::now_utc() + time::Duration::days(7);
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key)?;
    let files = [
        ("ca.pem", ca_cert.pem(), false),
        ("ca.key", ca_key.serialize_pem(), true),
        ("leaf.pem", leaf_cert.pem(), false),
        ("leaf.key", leaf_key.serialize_pem(), true),
    ];
    let mut written = Vec::new();
    for (name, text, secret) in files {
        let path = out.join(name);
        write_new(&path, text.as_bytes(), secret)?;
        written.push(path);
    }
    Ok(written)
}

/// Creates `path` (never overwriting), 0600 for keys.
fn write_new(path: &Path, data: &[u8], secret: bool) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    f.write_all(data)?;
    Ok(())
}
