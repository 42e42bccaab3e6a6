//! `PUT /api/orgs/{org}/network`: the source blocks an org (and, separately, its API key)
//! may be used from, and whether credentials are bound to them (`bind_source_ip`).

use super::Orgs;
use crate::audit::AuditRecord;
use crate::error::Error;
use crate::ids::OrgName;
use crate::keyspace;
use crate::model::{Org, OrgStatus};
use crate::network::Cidr;
use crate::policy::Action;
use crate::principal::Caller;
use crate::records::Change;

/// What to change; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct NetworkCommand {
    pub allowed_cidrs: Option<Vec<Cidr>>,
    pub api_key_allowed_cidrs: Option<Vec<Cidr>>,
    pub bind_source_ip: Option<bool>,
}

fn shown(c: &[Cidr]) -> Vec<String> {
    c.iter().map(ToString::to_string).collect()
}

impl Orgs {
    /// Applies `cmd` to `name`'s network settings (owner, admin), audited as `org.network`.
    pub async fn set_network(
        &self,
        caller: &Caller,
        name: &OrgName,
        cmd: &NetworkCommand,
    ) -> Result<Org, Error> {
        self.load(caller, Action::SetOrgNetwork, name).await?;
        let updated = self
            .records
            .update(caller, &keyspace::org(name), |cur| {
                if cur.status == OrgStatus::Offboarded {
                    return Err(Error::offboarded(name));
                }
                let mut rec = cur.clone();
                if let Some(c) = &cmd.allowed_cidrs {
                    rec.allowed_cidrs.clone_from(c);
                }
                if let Some(c) = &cmd.api_key_allowed_cidrs {
                    rec.api_key_allowed_cidrs.clone_from(c);
                }
                if let Some(b) = cmd.bind_source_ip {
                    rec.bind_source_ip = b;
                }
                if rec.allowed_cidrs == cur.allowed_cidrs
                    && rec.api_key_allowed_cidrs == cur.api_key_allowed_cidrs
                    && rec.bind_source_ip == cur.bind_source_ip
                {
                    return Ok(Change::Keep);
                }
                rec.updated_at = self.records.now();
                let audit = AuditRecord::new(Action::SetOrgNetwork.name())
                    .org(name.to_string())
                    .target(name.to_string())
                    .details(serde_json::json!({
                        "allowed_cidrs": shown(&rec.allowed_cidrs),
                        "api_key_allowed_cidrs": shown(&rec.api_key_allowed_cidrs),
                        "bind_source_ip": rec.bind_source_ip,
                    }));
                Ok(Change::write(rec, audit))
            })
            .await?;
        Ok(self.view(caller, &updated.value))
    }
}
