//! Bulk registration: many organisations, their records and their `org.create` events in
//! one store transaction, built by the same code as a single registration.

use super::{Orgs, RegisterOrgCommand, RegisteredOrg, org_exists};
use crate::error::{Code, Error};
use crate::ports::Txn;
use crate::principal::{Caller, RequestContext};

impl Orgs {
    /// Registers many organisations owned by the calling operator in ONE store transaction,
    /// each with its own `org.create` event (under its own request context), all or nothing.
    /// The records are exactly those [`Orgs::register`] writes; this is for bulk imports and
    /// the benchmark seeder. A name that is taken, or repeated in the batch, fails the whole
    /// batch with `org_exists` and writes nothing. Keep batches to a few thousand.
    pub async fn register_batch(
        &self,
        caller: &Caller,
        batch: Vec<(RequestContext, RegisterOrgCommand)>,
    ) -> Result<Vec<RegisteredOrg>, Error> {
        let owner = self.registering_owner(caller).await?;
        let mut seen = std::collections::HashSet::with_capacity(batch.len());
        if let Some((_, dup)) = batch.iter().find(|(_, c)| !seen.insert(c.name.clone())) {
            return Err(org_exists(&dup.name));
        }
        let mut txn = Txn::new();
        let mut events = Vec::with_capacity(batch.len());
        let mut registered = Vec::with_capacity(batch.len());
        for (ctx, cmd) in batch {
            let name = cmd.name.clone();
            let (one, audit, mut org) = self.prepare_registration(&owner, cmd)?;
            org.org.access_levels = self.levels_for(caller, &name, &owner);
            txn.conditions.extend(one.conditions);
            txn.writes.extend(one.writes);
            events.push((ctx, audit));
            registered.push(org);
        }
        if events.is_empty() {
            return Ok(registered);
        }
        if !self.records.audit().commit_batch(txn, &events).await? {
            return Err(Error::conflict(
                Code::OrgExists,
                "an organisation in the batch already exists",
            ));
        }
        Ok(registered)
    }
}
