//! What a request form may offer: the levels usable on an org only through a grant, with
//! the rule that will judge the request (its longest grant, what it requires, whether
//! break-glass is open). The rule itself still decides when the request is filed.

use super::Access;
use crate::ids::OrgName;
use crate::levels::ApprovalRule;

/// One level that needs a grant on an org, and its rule there.
#[derive(Debug, Clone)]
pub struct Requestable {
    pub access_level: String,
    pub rule: ApprovalRule,
}

impl Access {
    /// The levels that need an approved grant on `org`, by name.
    #[must_use]
    pub fn requestable(&self, org: &OrgName) -> Vec<Requestable> {
        self.levels
            .levels()
            .filter_map(|l| {
                l.approval_for(org)
                    .filter(|r| r.requires_approval)
                    .map(|r| Requestable {
                        access_level: l.name().to_owned(),
                        rule: r.clone(),
                    })
            })
            .collect()
    }
}
