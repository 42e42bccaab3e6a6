//! `POST /sessions`: verify the signed request and the certificate, then issue through the
//! credential path as a `Workload` principal. Checked in this order, each refusal audited
//! with its reason and answered 403: headers → date (±5 min) → anchor and profile (same
//! org) → the CRL's freshness → the chain (client auth, CRL) → the signature → replay → the
//! profile's conditions → the certificate's remaining life.

use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::sigv4;
use super::x509::{self, CertInfo, Refusal};
use super::{
    MAX_CHAIN, MAX_CLOCK_SKEW_SECS, Session, SessionBody, SessionRequest, Workloads, arn_id,
};
use crate::audit::AuditRecord;
use crate::credentials::session::{MAX_SESSION_NAME, sanitize_tag_value};
use crate::credentials::{IssueCommand, WorkloadIssue};
use crate::error::{Code, Error};
use crate::ids::OrgName;
use crate::keyspace;
use crate::levels::MIN_DURATION_SECS;
use crate::model::{TrustAnchorRecord, WorkloadProfileRecord};
use crate::policy::Action;
use crate::ports::Txn;
use crate::principal::{Caller, Principal, RequestContext};

/// How long a used signature is remembered: the whole window a date is accepted in.
const REPLAY_TTL: std::time::Duration = std::time::Duration::from_secs(2 * 300 + 60);

fn header<'a>(req: &'a SessionRequest, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// What is known about the refused request, for its audit event.
#[derive(Default)]
struct Known {
    org: Option<OrgName>,
    cert: Option<CertInfo>,
    anchor: Option<String>,
    profile: Option<String>,
}

fn cert_details(c: &CertInfo) -> serde_json::Value {
    json!({
        "serial": c.serial,
        "subject": c.subject,
        "issuer": c.issuer,
        "fingerprint_sha256": c.fingerprint,
        "not_after": super::rfc3339(c.not_after),
    })
}

impl Workloads {
    /// Verifies `req` and issues credentials for the certificate. Every refusal is 403
    /// `workload_auth_failed`, audited with its reason.
    pub async fn create_session(
        &self,
        ctx: &RequestContext,
        req: &SessionRequest,
    ) -> Result<Session, Error> {
        let mut known = Known::default();
        match self.verify(ctx, req, &mut known).await {
            Ok(v) => v,
            Err(Verdict::Refused(r)) => Err(self.refuse(ctx, &known, r).await),
            Err(Verdict::Failed(e)) => Err(e),
        }
    }

    async fn refuse(&self, ctx: &RequestContext, known: &Known, r: Refusal) -> Error {
        let mut details = json!({"reason": r.reason, "detail": r.detail});
        if let (Some(c), Some(d)) = (&known.cert, details.as_object_mut())
            && let Some(extra) = cert_details(c).as_object()
        {
            d.extend(extra.clone());
        }
        if let Some(d) = details.as_object_mut() {
            d.insert("trust_anchor".into(), known.anchor.clone().into());
            d.insert("profile".into(), known.profile.clone().into());
        }
        let mut audit = AuditRecord::new(Action::CreateWorkloadSession.name())
            .failure(Code::WorkloadAuthFailed.as_str())
            .details(details);
        let mut ctx = ctx.clone();
        ctx.actor = "workload".to_owned();
        let written = match &known.org {
            // A request that named a real anchor is recorded in full, under its org.
            Some(org) => {
                audit = audit.org(org.to_string());
                self.records.audit().append(&ctx, audit).await
            }
            // Anything else counts against its source like a failed login.
            None => self.records.record_unauthenticated(&ctx, audit).await,
        };
        if let Err(e) = written {
            tracing::error!(error = %e, "could not audit a refused workload session");
        }
        Error::Forbidden {
            code: Code::WorkloadAuthFailed,
            message: r.to_string(),
        }
    }

    async fn verify(
        &self,
        ctx: &RequestContext,
        req: &SessionRequest,
        known: &mut Known,
    ) -> Result<Result<Session, Error>, Verdict> {
        let refuse =
            |reason: &'static str, detail: String| Verdict::Refused(Refusal::new(reason, detail));
        let auth =
            sigv4::parse_authorization(header(req, "authorization").ok_or_else(|| {
                refuse("malformed_authorization", "no Authorization header".into())
            })?)
            .map_err(Verdict::Refused)?;
        let amz_date = header(req, "x-amz-date")
            .ok_or_else(|| refuse("malformed_date", "no X-Amz-Date header".into()))?;
        let signed_at = sigv4::parse_amz_date(amz_date).map_err(Verdict::Refused)?;
        if !auth
            .scope()
            .starts_with(amz_date.get(..8).unwrap_or(amz_date))
        {
            return Err(refuse(
                "malformed_authorization",
                "the credential scope's date is not X-Amz-Date's".into(),
            ));
        }
        let leaf_der = header(req, "x-amz-x509")
            .ok_or_else(|| refuse("certificate_missing", "no X-Amz-X509 header".into()))
            .and_then(|h| {
                x509::unb64(h)
                    .map_err(|e| refuse("certificate_unreadable", format!("X-Amz-X509: {e}")))
            })?;
        let leaf = x509::parse_cert(&leaf_der).map_err(|e| refuse("certificate_unreadable", e))?;
        known.cert = Some(leaf.clone());
        let mut chain = Vec::new();
        if let Some(h) = header(req, "x-amz-x509-chain") {
            for part in h.split(',').filter(|p| !p.trim().is_empty()) {
                chain.push(x509::unb64(part).map_err(|e| {
                    refuse("certificate_unreadable", format!("X-Amz-X509-Chain: {e}"))
                })?);
            }
        }
        if chain.len() > MAX_CHAIN {
            return Err(refuse(
                "certificate_chain_invalid",
                format!("X-Amz-X509-Chain holds more than {MAX_CHAIN} certificates"),
            ));
        }
        let now = self.records.clock().now().unix_timestamp();
        if (now - signed_at).abs() > MAX_CLOCK_SKEW_SECS {
            return Err(refuse(
                "date_out_of_range",
                format!(
                    "X-Amz-Date is {} s from the server's clock (at most {MAX_CLOCK_SKEW_SECS})",
                    (now - signed_at).abs()
                ),
            ));
        }
        let body: SessionBody = serde_json::from_slice(&req.body).map_err(|e| {
            refuse(
                "malformed_body",
                format!("the body is not CreateSession's: {e}"),
            )
        })?;
        let anchor_id = arn_id(&body.trust_anchor_arn, "trust-anchor").ok_or_else(|| {
            refuse(
                "unknown_trust_anchor",
                "trustAnchorArn is not a trust anchor ARN".into(),
            )
        })?;
        let profile_id = arn_id(&body.profile_arn, "profile")
            .ok_or_else(|| refuse("unknown_profile", "profileArn is not a profile ARN".into()))?;
        known.anchor = Some(body.trust_anchor_arn.clone());
        known.profile = Some(body.profile_arn.clone());
        let store_err = |e: Error| Verdict::Failed(e);
        let org = self
            .records
            .get(&keyspace::trust_anchor_id(anchor_id))
            .await
            .map_err(store_err)?
            .ok_or_else(|| refuse("unknown_trust_anchor", "no such trust anchor".into()))?
            .value;
        let anchor_key = keyspace::trust_anchor(&org, anchor_id);
        let anchor: TrustAnchorRecord = self
            .records
            .get(&anchor_key)
            .await
            .map_err(store_err)?
            .ok_or_else(|| refuse("unknown_trust_anchor", "no such trust anchor".into()))?
            .value;
        known.org = Some(org.clone());
        let profile_key = keyspace::workload_profile(&org, profile_id);
        let profile: WorkloadProfileRecord = self
            .records
            .get(&profile_key)
            .await
            .map_err(store_err)?
            .ok_or_else(|| {
                refuse(
                    "unknown_profile",
                    "no such profile in the trust anchor's organisation".into(),
                )
            })?
            .value;
        let crl_der = match &anchor.crl {
            Some(crl) if self.crl_stale(crl, now) => {
                return Err(refuse(
                    "crl_stale",
                    format!(
                        "the trust anchor's CRL was due at {} (grace {} s): the anchor fails closed until a fresh CRL is uploaded",
                        crl.next_update.map(super::rfc3339).unwrap_or_default(),
                        self.settings.crl_grace.as_secs()
                    ),
                ));
            }
            Some(crl) => Some(x509::unb64(&crl.der).map_err(|e| refuse("crl_unreadable", e))?),
            None => None,
        };
        let anchors: Vec<Vec<u8>> = anchor
            .certificates
            .iter()
            .filter_map(|c| x509::unb64(c).ok())
            .collect();
        x509::verify_chain(&leaf_der, &chain, &anchors, crl_der.as_deref(), now)
            .map_err(Verdict::Refused)?;
        let query = req.query.as_str();
        let to_sign = sigv4::string_to_sign(&auth, query, &req.headers, &req.body, amz_date)
            .map_err(Verdict::Refused)?;
        x509::verify_signature(
            &leaf_der,
            auth.is_rsa(),
            to_sign.as_bytes(),
            &auth.signature,
        )
        .map_err(Verdict::Refused)?;
        // A verified signature is used once: remembered for the whole window its date is
        // accepted in (unsealed: the marker is a digest and holds nothing).
        let replay = keyspace::session_replay(&hex::encode(Sha256::digest(&auth.signature)));
        let claimed = self
            .records
            .vault()
            .store()
            .commit(
                Txn::new()
                    .absent(replay.clone())
                    .put_ttl(replay, Vec::new(), REPLAY_TTL),
            )
            .await
            .map_err(|e| Verdict::Failed(e.into()))?;
        if !claimed {
            return Err(refuse(
                "signature_replayed",
                "this signed request was already used".into(),
            ));
        }
        for c in &profile.require {
            let values = leaf.values(c.field);
            if !values.iter().any(|v| x509::wildcard_match(&c.pattern, v)) {
                let field = serde_json::to_value(c.field).unwrap_or_default();
                return Err(refuse(
                    "condition_not_met",
                    format!(
                        "the certificate's {} ({}) does not match {:?}",
                        field.as_str().unwrap_or("field"),
                        if values.is_empty() {
                            "none".to_owned()
                        } else {
                            values.join(", ")
                        },
                        c.pattern
                    ),
                ));
            }
        }
        let left = leaf.not_after - now;
        let cap = u32::try_from(left.clamp(0, i64::from(u32::MAX))).unwrap_or(0);
        if cap < MIN_DURATION_SECS {
            return Err(refuse(
                "certificate_expires_soon",
                format!(
                    "the certificate expires in {left} s, sooner than STS's minimum session of {MIN_DURATION_SECS} s"
                ),
            ));
        }
        let session_name = match (&body.role_session_name, profile.accept_role_session_name) {
            (None, _) => None,
            (Some(_), false) => {
                return Err(refuse(
                    "role_session_name_not_accepted",
                    "the profile does not accept roleSessionName".into(),
                ));
            }
            (Some(n), true) => {
                let ok = (2..=MAX_SESSION_NAME).contains(&n.len())
                    && n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
                if !ok {
                    return Err(refuse(
                        "role_session_name_invalid",
                        "roleSessionName must be 2 to 64 characters of [A-Za-z0-9_+=,.@-]".into(),
                    ));
                }
                Some(n.clone())
            }
        };
        let tags = profile
            .attribute_mappings
            .iter()
            .filter_map(|m| {
                leaf.values(m.field)
                    .first()
                    .map(|v| (m.tag.clone(), sanitize_tag_value(v)))
            })
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let mut audit = cert_details(&leaf);
        if let Some(d) = audit.as_object_mut() {
            d.insert("trust_anchor".into(), body.trust_anchor_arn.clone().into());
            d.insert("profile".into(), body.profile_arn.clone().into());
        }
        let caller = Caller::new(
            Principal::Workload {
                org: org.clone(),
                profile: profile.id.clone(),
                cert_fingerprint: leaf.fingerprint.clone(),
                common_name: leaf.common_name().to_owned(),
            },
            ctx.clone(),
        );
        let cmd = IssueCommand {
            org: org.clone(),
            access_level: Some(profile.access_level.clone()),
            duration_secs: Some(
                body.duration_seconds
                    .unwrap_or(3600)
                    .min(i64::from(profile.max_duration_secs.min(cap))),
            ),
            reason: None,
            force_refresh: false,
            workload: Some(WorkloadIssue {
                tags,
                session_name,
                max_duration_secs: profile.max_duration_secs.min(cap),
                role_arn: body.role_arn.clone(),
                present: vec![anchor_key.to_string(), profile_key.to_string()],
                audit,
            }),
        };
        let issued = self.credentials.issue_workload(&caller, &cmd).await;
        Ok(issued.map(|issued| Session {
            role_arn: issued.role_arn.clone(),
            subject_arn: format!(
                "arn:aws:rolesanywhere:{}:{}:subject/{}",
                self.settings.region,
                self.settings.account_id,
                leaf.fingerprint.chars().take(32).collect::<String>()
            ),
            issued,
        }))
    }
}

enum Verdict {
    Refused(Refusal),
    Failed(Error),
}
