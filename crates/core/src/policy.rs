//! The one authorization policy: what each kind of principal may do.
//!
//! Every service method decides through [`authorize`], and every protected route declares its
//! [`Action`] so that the server refuses a kind of caller that can never succeed before the
//! handler runs and documents who may call it (the OpenAPI `security` entry) from the same
//! table. The table is an allow-list: [`Rules`] has one field per kind of principal, so
//! adding a kind fails to compile until every action has decided about it, and adding an
//! action fails to compile until it has rules.

use crate::error::{Code, Error};
use crate::ids::{OrgName, Role, UserId};
use crate::levels::{AccessLevel, Grantee};
use crate::network::Cidr;
use crate::principal::{Caller, Principal};

/// Everything a caller can ask rolegate to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    CreateUser,
    ListUsers,
    ReadUser,
    DisableUser,
    RotateUserToken,
    RegisterOrg,
    ListOrgs,
    ReadOrg,
    RotateOrgApiKey,
    OffboardOrg,
    IssueOnboardingLinks,
    ResetBinding,
    /// Apply a verified callback from the org's own onboarding stack.
    ApplyCallback,
    ReadAudit,
    /// Read the raw log (`rolegate audit export|verify`).
    ExportAudit,
    IssueCredentials,
    ConsoleSignin,
    ValidateCredentials,
    ReadMetrics,
    /// Register, list, delete an org's trust anchors (CA bundles) and upload their CRLs.
    CreateTrustAnchor,
    ListTrustAnchors,
    DeleteTrustAnchor,
    UploadCrl,
    /// Create, list, delete an org's workload profiles.
    CreateWorkloadProfile,
    ListWorkloadProfiles,
    DeleteWorkloadProfile,
    /// A workload's `POST /sessions`: credentials for a verified certificate.
    CreateWorkloadSession,
    /// Start a job in the org's AWS account (under an access level).
    CreateJob,
    ListJobs,
    ReadJob,
    CancelJob,
    /// Read a job's one-time secret (a created key pair's private key).
    ReadJobSecret,
    /// Change an operator's role.
    SetUserRole,
    /// Open a portal session (a browser's sign-in) as the operator itself.
    SignIn,
    /// End one's own portal session.
    SignOut,
    /// Ask for an access level on an org, for a while (or take it through break-glass).
    RequestAccess,
    /// List and read access requests and grants (operators: their own and those they may
    /// approve).
    ListAccessRequests,
    ReadAccessRequest,
    ListAccessGrants,
    /// Approve or deny someone else's request (the level's approvers only).
    ApproveAccess,
    DenyAccess,
    /// Withdraw one's own pending request.
    CancelAccessRequest,
    /// End an approved or active grant at once.
    RevokeAccess,
    /// Set the source blocks an org (and its API key) may be used from, and
    /// `bind_source_ip`.
    SetOrgNetwork,
    /// Set the source blocks an operator may use credentials from.
    SetUserNetwork,
    /// List notifications given up after their last retry.
    ListNotificationDeadLetters,
    /// Send a dead letter back to the outbox.
    RetryNotificationDeadLetter,
    /// Link a chat (Slack) user to an operator, for approve-from-chat.
    LinkChatUser,
    /// Mark a break-glass grant reviewed (admins, never its holder).
    ReviewAccess,
    /// Read who used the org's account, and the access requests on it (the customer's view).
    ReadAccessHistory,
    /// Name the org's customer approvers (webhooks): only the org's own key, so the provider
    /// cannot name itself.
    SetCustomerApprovers,
    /// Remove the org's customer approvers (the org's key, or an admin: audited, and levels
    /// needing the customer's approval then refuse requests).
    ClearCustomerApprovers,
    /// Decide a request as a customer approver, through a single-use link (the server turns
    /// the verified link into rolegate's own `customer-approval` caller).
    CustomerDecideAccess,
}

impl Action {
    /// Every action, for documentation and tests.
    pub const ALL: &'static [Action] = &[
        Action::CreateUser,
        Action::ListUsers,
        Action::ReadUser,
        Action::DisableUser,
        Action::RotateUserToken,
        Action::RegisterOrg,
        Action::ListOrgs,
        Action::ReadOrg,
        Action::RotateOrgApiKey,
        Action::OffboardOrg,
        Action::IssueOnboardingLinks,
        Action::ResetBinding,
        Action::ApplyCallback,
        Action::ReadAudit,
        Action::ExportAudit,
        Action::IssueCredentials,
        Action::ConsoleSignin,
        Action::ValidateCredentials,
        Action::ReadMetrics,
        Action::CreateTrustAnchor,
        Action::ListTrustAnchors,
        Action::DeleteTrustAnchor,
        Action::UploadCrl,
        Action::CreateWorkloadProfile,
        Action::ListWorkloadProfiles,
        Action::DeleteWorkloadProfile,
        Action::CreateWorkloadSession,
        Action::CreateJob,
        Action::ListJobs,
        Action::ReadJob,
        Action::CancelJob,
        Action::ReadJobSecret,
        Action::SetUserRole,
        Action::SignIn,
        Action::SignOut,
        Action::RequestAccess,
        Action::ListAccessRequests,
        Action::ReadAccessRequest,
        Action::ListAccessGrants,
        Action::ApproveAccess,
        Action::DenyAccess,
        Action::CancelAccessRequest,
        Action::RevokeAccess,
        Action::SetOrgNetwork,
        Action::SetUserNetwork,
        Action::ListNotificationDeadLetters,
        Action::RetryNotificationDeadLetter,
        Action::LinkChatUser,
        Action::ReviewAccess,
        Action::ReadAccessHistory,
        Action::SetCustomerApprovers,
        Action::ClearCustomerApprovers,
        Action::CustomerDecideAccess,
    ];

    /// The name audit events use for this action (a refusal is recorded under it).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::CreateUser => "user.create",
            Self::ListUsers => "user.list",
            Self::ReadUser => "user.read",
            Self::DisableUser => "user.disable",
            Self::RotateUserToken => "user.token.rotate",
            Self::RegisterOrg => "org.create",
            Self::ListOrgs => "org.list",
            Self::ReadOrg => "org.read",
            Self::RotateOrgApiKey => "org.api_key.rotate",
            Self::OffboardOrg => "org.offboard",
            Self::IssueOnboardingLinks => "org.onboarding_issued",
            Self::ResetBinding => "org.binding_reset",
            Self::ApplyCallback => "onboarding.callback",
            Self::ReadAudit => "audit.read",
            Self::ExportAudit => "audit.export",
            Self::IssueCredentials => "credentials.issue",
            Self::ConsoleSignin => "credentials.console",
            Self::ValidateCredentials => "credentials.validate",
            Self::ReadMetrics => "metrics.read",
            Self::CreateTrustAnchor => "trust_anchor.create",
            Self::ListTrustAnchors => "trust_anchor.list",
            Self::DeleteTrustAnchor => "trust_anchor.delete",
            Self::UploadCrl => "trust_anchor.crl",
            Self::CreateWorkloadProfile => "workload_profile.create",
            Self::ListWorkloadProfiles => "workload_profile.list",
            Self::DeleteWorkloadProfile => "workload_profile.delete",
            Self::CreateWorkloadSession => "workload.session",
            Self::CreateJob => "job.create",
            Self::ListJobs => "job.list",
            Self::ReadJob => "job.read",
            Self::CancelJob => "job.cancel",
            Self::ReadJobSecret => "job.secret_read",
            Self::SetUserRole => "user.role.set",
            Self::SignIn => "session.login",
            Self::SignOut => "session.logout",
            Self::RequestAccess => "access.request",
            Self::ListAccessRequests => "access.request.list",
            Self::ReadAccessRequest => "access.request.read",
            Self::ListAccessGrants => "access.grant.list",
            Self::ApproveAccess => "access.approve",
            Self::DenyAccess => "access.deny",
            Self::CancelAccessRequest => "access.cancel",
            Self::RevokeAccess => "access.revoke",
            Self::SetOrgNetwork => "org.network",
            Self::SetUserNetwork => "user.network",
            Self::ListNotificationDeadLetters => "notify.dead_letter.list",
            Self::RetryNotificationDeadLetter => "notify.dead_letter.retry",
            Self::LinkChatUser => "user.chat_link",
            Self::ReviewAccess => "access.review",
            Self::ReadAccessHistory => "access.history.read",
            Self::SetCustomerApprovers => "org.customer_approvers.set",
            Self::ClearCustomerApprovers => "org.customer_approvers.clear",
            Self::CustomerDecideAccess => "access.customer_decision",
        }
    }

    /// Whether the action hands out credentials under an access level (then the level's
    /// grants decide too).
    #[must_use]
    pub const fn uses_access_level(self) -> bool {
        matches!(
            self,
            Self::IssueCredentials
                | Self::ConsoleSignin
                | Self::CreateWorkloadSession
                | Self::CreateJob
        )
    }

    /// Who may do it, by kind of principal.
    #[must_use]
    pub const fn rules(self) -> Rules {
        use Rule::{Allow, Deny, OwnOrg, OwnerOfOrg, Scoped, Themselves};
        /// One argument per kind of principal, in the order of [`Rules`]' fields.
        const fn r(
            admin: Rule,
            operator: Rule,
            org_key: Rule,
            stack: Rule,
            system: Rule,
            workload: Rule,
        ) -> Rules {
            Rules {
                admin,
                operator,
                org_key,
                stack,
                system,
                workload,
            }
        }
        match self {
            Self::CreateUser => r(Allow, Deny, Deny, Deny, Allow, Deny),
            Self::ListUsers => r(Allow, Scoped, Deny, Deny, Allow, Deny),
            Self::ReadUser => r(Allow, Themselves, Deny, Deny, Allow, Deny),
            Self::DisableUser | Self::SetUserRole => r(Allow, Deny, Deny, Deny, Allow, Deny),
            Self::RotateUserToken => r(Allow, Themselves, Deny, Deny, Allow, Deny),
            Self::RegisterOrg => r(Allow, Allow, Deny, Deny, Deny, Deny),
            Self::ListOrgs => r(Allow, Scoped, Scoped, Deny, Allow, Deny),
            Self::ReadOrg => r(Allow, OwnerOfOrg, OwnOrg, Deny, Allow, Deny),
            Self::RotateOrgApiKey | Self::OffboardOrg | Self::ResetBinding => {
                r(Allow, OwnerOfOrg, Deny, Deny, Allow, Deny)
            }
            Self::IssueOnboardingLinks => r(Allow, OwnerOfOrg, Deny, Deny, Deny, Deny),
            Self::ApplyCallback => r(Deny, Deny, Deny, OwnOrg, Deny, Deny),
            Self::ReadAudit => r(Allow, Scoped, Deny, Deny, Allow, Deny),
            Self::ExportAudit => r(Allow, Deny, Deny, Deny, Allow, Deny),
            // Credentials always name a person or a service: rolegate itself gets none.
            Self::IssueCredentials | Self::ConsoleSignin | Self::ValidateCredentials => {
                r(Allow, OwnerOfOrg, OwnOrg, Deny, Deny, Deny)
            }
            Self::ReadMetrics => r(Allow, Deny, Deny, Deny, Allow, Deny),
            // Trust anchors and profiles decide who can become a workload: the org's owner
            // and admins, never an API key (it could mint itself a certificate identity).
            Self::CreateTrustAnchor
            | Self::ListTrustAnchors
            | Self::DeleteTrustAnchor
            | Self::UploadCrl
            | Self::CreateWorkloadProfile
            | Self::ListWorkloadProfiles
            | Self::DeleteWorkloadProfile => r(Allow, OwnerOfOrg, Deny, Deny, Deny, Deny),
            // Only a verified certificate, and only for its own org.
            Self::CreateWorkloadSession => r(Deny, Deny, Deny, Deny, Deny, OwnOrg),
            // Jobs act in the customer's account for a person or a service, like credentials.
            Self::CreateJob
            | Self::ListJobs
            | Self::ReadJob
            | Self::CancelJob
            | Self::ReadJobSecret => r(Allow, OwnerOfOrg, OwnOrg, Deny, Deny, Deny),
            // A browser session is a person's: operators and admins, for themselves only
            // (the session is always the caller's own), never a key, stack or workload.
            Self::SignIn | Self::SignOut => r(Allow, Allow, Deny, Deny, Deny, Deny),
            // Grants are for people: any operator may ask for any org (the level's
            // approvers decide), and the service shows each operator its own requests and
            // those it may approve. Self-approval and approvers outside the level's rule are
            // refused by the access area, which knows the rule.
            Self::RequestAccess
            | Self::ListAccessRequests
            | Self::ReadAccessRequest
            | Self::ListAccessGrants
            | Self::ApproveAccess
            | Self::DenyAccess
            | Self::CancelAccessRequest
            | Self::RevokeAccess => r(Allow, Scoped, Deny, Deny, Deny, Deny),
            // An org's key never loosens its own allowlist.
            Self::SetOrgNetwork => r(Allow, OwnerOfOrg, Deny, Deny, Allow, Deny),
            Self::SetUserNetwork => r(Allow, Deny, Deny, Deny, Allow, Deny),
            // Delivery state and who may approve from chat: admins only.
            Self::ListNotificationDeadLetters
            | Self::RetryNotificationDeadLetter
            | Self::LinkChatUser => r(Allow, Deny, Deny, Deny, Allow, Deny),
            // Break-glass use is reviewed by an admin; the access area refuses the holder.
            Self::ReviewAccess => r(Allow, Deny, Deny, Deny, Deny, Deny),
            // The customer's own view of its account; and the provider's, as for the org.
            Self::ReadAccessHistory => r(Allow, OwnerOfOrg, OwnOrg, Deny, Allow, Deny),
            // Only the customer names its approvers (ADR 0013); an admin may only clear them.
            Self::SetCustomerApprovers => r(Deny, Deny, OwnOrg, Deny, Deny, Deny),
            Self::ClearCustomerApprovers => r(Allow, Deny, OwnOrg, Deny, Deny, Deny),
            // No person or key: the verified single-use link stands for the approver.
            Self::CustomerDecideAccess => r(Deny, Deny, Deny, Deny, Allow, Deny),
        }
    }
}

/// How one kind of principal is judged for one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Deny,
    Allow,
    /// Allowed; the service shows only what this caller owns or is.
    Scoped,
    /// Only for the org the principal belongs to (an API key's, a stack's).
    OwnOrg,
    /// Only for an org this operator owns.
    OwnerOfOrg,
    /// Only about the operator itself.
    Themselves,
}

/// The rules of one action: one field per kind of principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub admin: Rule,
    pub operator: Rule,
    pub org_key: Rule,
    pub stack: Rule,
    pub system: Rule,
    pub workload: Rule,
}

impl Rules {
    /// The rule for `p`.
    #[must_use]
    pub fn for_principal(&self, p: &Principal) -> Rule {
        match p {
            Principal::Operator {
                role: Role::Admin, ..
            } => self.admin,
            Principal::Operator {
                role: Role::Operator,
                ..
            } => self.operator,
            Principal::OrgKey { .. } => self.org_key,
            Principal::Stack { .. } => self.stack,
            Principal::System { .. } => self.system,
            Principal::Workload { .. } => self.workload,
        }
    }

    /// Whether an API key may ever do it (what the OpenAPI `security` entry says).
    #[must_use]
    pub fn admits_api_keys(&self) -> bool {
        self.org_key != Rule::Deny
    }

    /// Who may do it, for people: `admin, owner, the org's API key`.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut who = Vec::new();
        if self.admin != Rule::Deny {
            who.push("admin");
        }
        match self.operator {
            Rule::Deny => {}
            Rule::OwnerOfOrg => who.push("the org's owner"),
            Rule::Themselves => who.push("the operator itself"),
            Rule::Scoped => who.push("operators (their own)"),
            Rule::Allow | Rule::OwnOrg => who.push("operators"),
        }
        if self.org_key != Rule::Deny {
            who.push("the org's API key");
        }
        if self.stack != Rule::Deny {
            who.push("the org's onboarding stack (signed)");
        }
        if self.workload != Rule::Deny {
            who.push("the org's workloads (X.509, signed)");
        }
        if who.is_empty() && self.system != Rule::Deny {
            // A customer approval link: the server acts for the verified link.
            who.push("rolegate itself, for a verified single-use link");
        }
        who.join(", ")
    }
}

/// Whether an org the action is about exists, and who owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'a> {
    Is(&'a UserId),
    /// The org does not exist: a caller the rules would otherwise admit is told 404.
    NoSuchOrg,
}

/// What the rules may look at.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts<'a> {
    /// The org the action is about, and its owner.
    pub org: Option<(&'a OrgName, Owner<'a>)>,
    /// The operator the action is about.
    pub user: Option<&'a UserId>,
    /// The access level asked for.
    pub level: Option<&'a AccessLevel>,
    /// The caller's grant for that org and level, if it holds one that is not over.
    pub grant: Option<GrantFact<'a>>,
    /// Where the request came from and the allowlists that apply (the org's, the
    /// principal's); for actions that use a level.
    pub network: Option<NetworkFact<'a>>,
}

/// A request's source address and the allowlists it must pass, each non-empty one.
#[derive(Debug, Clone, Copy)]
pub struct NetworkFact<'a> {
    /// As the server determined it (the trusted-proxy logic); `None` when unknown.
    pub source: Option<&'a str>,
    pub org: &'a [Cidr],
    pub principal: &'a [Cidr],
}

/// An approved grant the caller presents: the policy checks that it is the caller's, for
/// this org and level, and running now.
#[derive(Debug, Clone, Copy)]
pub struct GrantFact<'a> {
    pub id: &'a str,
    /// The holder's operator id.
    pub holder: &'a str,
    pub org: &'a OrgName,
    pub level: &'a str,
    /// Unix seconds.
    pub start: i64,
    pub end: i64,
    pub now: i64,
}

/// Credentials are never issued under a grant with less than this left (STS's minimum).
pub const GRANT_MIN_REMAINING_SECS: i64 = 900;

impl<'a> Facts<'a> {
    #[must_use]
    pub fn org(name: &'a OrgName, owner: Owner<'a>) -> Self {
        Self {
            org: Some((name, owner)),
            ..Self::default()
        }
    }
    #[must_use]
    pub fn user(id: &'a UserId) -> Self {
        Self {
            user: Some(id),
            ..Self::default()
        }
    }
    #[must_use]
    pub fn with_level(mut self, level: &'a AccessLevel) -> Self {
        self.level = Some(level);
        self
    }
    #[must_use]
    pub fn with_grant(mut self, grant: Option<GrantFact<'a>>) -> Self {
        self.grant = grant;
        self
    }
    #[must_use]
    pub fn with_network(mut self, network: NetworkFact<'a>) -> Self {
        self.network = Some(network);
        self
    }
}

/// Why the policy said no.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub code: Code,
    pub message: String,
}

impl From<Denial> for Error {
    fn from(d: Denial) -> Self {
        Error::Forbidden {
            code: d.code,
            message: d.message,
        }
    }
}

fn deny(message: impl Into<String>) -> Result<(), Denial> {
    Err(Denial {
        code: Code::Forbidden,
        message: message.into(),
    })
}

/// Decides whether `caller` may do `action` given `facts`. A fact a rule needs but was not
/// given is a refusal: the policy fails closed.
pub fn authorize(caller: &Caller, action: Action, facts: &Facts<'_>) -> Result<(), Denial> {
    let p = &caller.principal;
    let what = action.name();
    // A running grant for this caller, org and level admits its holder even where the
    // level's `allow` or the org's ownership would not: that is what a grant is for.
    let granted = action.uses_access_level() && grant_covers(p, facts);
    match action.rules().for_principal(p) {
        Rule::Deny => return deny(refusal(p, action)),
        Rule::Allow | Rule::Scoped => {}
        Rule::OwnOrg => {
            let own = match p {
                Principal::OrgKey { org, .. }
                | Principal::Stack { org }
                | Principal::Workload { org, .. } => Some(org),
                Principal::Operator { .. } | Principal::System { .. } => None,
            };
            match (own, facts.org) {
                (Some(own), Some((org, _))) if own == org => {}
                (Some(_), Some(_)) => {
                    return deny("this API key belongs to another organisation");
                }
                _ => return deny(format!("{what}: no organisation to decide on")),
            }
        }
        Rule::OwnerOfOrg => {
            let Principal::Operator { user_id, .. } = p else {
                return deny(refusal(p, action));
            };
            match facts.org {
                Some((_, Owner::Is(owner))) if owner == user_id || granted => {}
                // 404 is for the service to answer.
                Some((_, Owner::NoSuchOrg)) => {}
                Some((_, Owner::Is(_))) => {
                    return deny("this organisation belongs to another operator");
                }
                None => return deny(format!("{what}: no organisation to decide on")),
            }
        }
        Rule::Themselves => {
            let Principal::Operator { user_id, .. } = p else {
                return deny(refusal(p, action));
            };
            if facts.user != Some(user_id) {
                return deny("operators can only see and change themselves");
            }
        }
    }
    if action.uses_access_level() {
        if let Some(n) = facts.network
            && !crate::network::admitted(n.source, &[n.org, n.principal])
        {
            let which = if crate::network::admitted(n.source, &[n.org]) {
                "your allowlist"
            } else {
                "the organisation's allowlist"
            };
            return Err(Denial {
                code: Code::SourceIpNotAllowed,
                message: format!(
                    "source address {} is not in {which}",
                    n.source.unwrap_or("(unknown)")
                ),
            });
        }
        let Some(level) = facts.level else {
            return deny(format!("{what}: no access level to decide on"));
        };
        let grantee = match p {
            Principal::OrgKey { .. } => Grantee::ApiKeys,
            Principal::Operator {
                role: Role::Admin, ..
            } => Grantee::Admins,
            Principal::Operator { .. } => Grantee::Owners,
            Principal::Workload { .. } => Grantee::Workloads,
            Principal::Stack { .. } | Principal::System { .. } => {
                return deny(refusal(p, action));
            }
        };
        // An admin who owns the org may use what owners may.
        let owner_admin = matches!(
            (p, facts.org),
            (Principal::Operator { user_id, .. }, Some((_, Owner::Is(o)))) if o == user_id
        );
        if !(granted || level.allows(grantee) || (owner_admin && level.allows(Grantee::Owners))) {
            let who = match grantee {
                Grantee::ApiKeys => "this organisation's API keys",
                Grantee::Owners => "the organisation's owner",
                Grantee::Admins => "admins",
                Grantee::Workloads => "workloads",
            };
            return Err(Denial {
                code: Code::AccessLevelNotAllowed,
                message: format!(
                    "access level {} is not granted to {who} (it allows: {})",
                    level.name(),
                    level.grantees().join(", ")
                ),
            });
        }
        let Some((org, _)) = facts.org else {
            return deny(format!("{what}: no organisation to decide on"));
        };
        if level.requires_grant(org) && !granted {
            return Err(Denial {
                code: Code::GrantRequired,
                message: format!(
                    "access level {} on {org} is usable only through an approved grant: request it (POST /api/access-requests)",
                    level.name()
                ),
            });
        }
        if let Some(g) = facts.grant.filter(|_| granted) {
            let left = g.end - g.now;
            if left < GRANT_MIN_REMAINING_SECS {
                return Err(Denial {
                    code: Code::GrantEnding,
                    message: format!(
                        "grant {} ends in {left} s, under the {GRANT_MIN_REMAINING_SECS} s minimum of a session: request a new grant",
                        g.id
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Whether `facts.grant` is `p`'s, for the org and level of `facts`, and running now.
fn grant_covers(p: &Principal, facts: &Facts<'_>) -> bool {
    let (Some(g), Some((org, _)), Some(level)) = (facts.grant, facts.org, facts.level) else {
        return false;
    };
    matches!(p, Principal::Operator { user_id, .. } if user_id.as_str() == g.holder)
        && g.org == org
        && g.level == level.name()
        && g.start <= g.now
        && g.now < g.end
}

fn refusal(p: &Principal, action: Action) -> String {
    let who = match p {
        Principal::Operator {
            role: Role::Admin, ..
        } => "admins",
        Principal::Operator { .. } => "operators",
        Principal::OrgKey { .. } => "API keys",
        Principal::Stack { .. } => "onboarding stacks",
        Principal::System { .. } => "rolegate itself",
        Principal::Workload { .. } => "workloads",
    };
    format!(
        "{who} may not do {} (allowed: {})",
        action.name(),
        action.rules().describe()
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::levels::CredentialPolicy;
    use crate::principal::RequestContext;

    fn caller(p: Principal) -> Caller {
        Caller::new(p, RequestContext::default())
    }
    fn op(id: &str, role: Role) -> Caller {
        caller(Principal::Operator {
            user_id: UserId::parse(id).unwrap(),
            role,
        })
    }
    fn key(org: &str) -> Caller {
        caller(Principal::OrgKey {
            org: OrgName::parse(org).unwrap(),
            key_id: "k".into(),
        })
    }

    #[test]
    fn api_keys_get_only_the_default_level_and_only_their_org() {
        let levels = CredentialPolicy::defaults("aws", "us-east-1".into());
        let ro = levels.level(Some("readonly")).unwrap();
        let opl = levels.level(Some("operator")).unwrap();
        let acme = OrgName::parse("acme").unwrap();
        let alice = UserId::parse("alice").unwrap();
        let facts = Facts::org(&acme, Owner::Is(&alice));
        let k = key("acme");
        assert!(authorize(&k, Action::IssueCredentials, &facts.with_level(ro)).is_ok());
        let d = authorize(&k, Action::IssueCredentials, &facts.with_level(opl)).unwrap_err();
        assert_eq!(d.code, Code::AccessLevelNotAllowed);
        let other = key("other");
        let d = authorize(&other, Action::IssueCredentials, &facts.with_level(ro)).unwrap_err();
        assert_eq!(d.code, Code::Forbidden);
        // The owner and admins get every level; another operator gets none.
        for c in [op("alice", Role::Operator), op("root", Role::Admin)] {
            assert!(authorize(&c, Action::IssueCredentials, &facts.with_level(opl)).is_ok());
        }
        let bob = op("bob", Role::Operator);
        assert!(authorize(&bob, Action::IssueCredentials, &facts.with_level(ro)).is_err());
        // Without a level the decision fails closed.
        assert!(authorize(&k, Action::IssueCredentials, &facts).is_err());
    }

    #[test]
    fn system_and_stacks_are_narrow() {
        let acme = OrgName::parse("acme").unwrap();
        let alice = UserId::parse("alice").unwrap();
        let facts = Facts::org(&acme, Owner::Is(&alice));
        let sys = Caller::system("test");
        assert!(authorize(&sys, Action::CreateUser, &Facts::default()).is_ok());
        assert!(authorize(&sys, Action::IssueCredentials, &facts).is_err());
        let stack = caller(Principal::Stack { org: acme.clone() });
        assert!(authorize(&stack, Action::ApplyCallback, &facts).is_ok());
        let other = OrgName::parse("other").unwrap();
        let other_facts = Facts::org(&other, Owner::NoSuchOrg);
        assert!(authorize(&stack, Action::ApplyCallback, &other_facts).is_err());
        for a in Action::ALL {
            if *a != Action::ApplyCallback {
                assert!(authorize(&stack, *a, &facts).is_err(), "{a:?}");
            }
        }
    }

    #[test]
    fn workloads_only_create_sessions_for_their_org_at_levels_granted_to_workloads() {
        let levels = CredentialPolicy::defaults("aws", "us-east-1".into());
        let ro = levels.level(Some("readonly")).unwrap();
        let opl = levels.level(Some("operator")).unwrap();
        let acme = OrgName::parse("acme").unwrap();
        let alice = UserId::parse("alice").unwrap();
        let facts = Facts::org(&acme, Owner::Is(&alice));
        let w = caller(Principal::Workload {
            org: acme.clone(),
            profile: "p".into(),
            cert_fingerprint: "ab".repeat(32),
            common_name: "build-agent".into(),
        });
        assert!(authorize(&w, Action::CreateWorkloadSession, &facts.with_level(ro)).is_ok());
        // The default grants give workloads the default level only.
        let d = authorize(&w, Action::CreateWorkloadSession, &facts.with_level(opl)).unwrap_err();
        assert_eq!(d.code, Code::AccessLevelNotAllowed);
        let other = OrgName::parse("other").unwrap();
        let other_facts = Facts::org(&other, Owner::Is(&alice)).with_level(ro);
        assert!(authorize(&w, Action::CreateWorkloadSession, &other_facts).is_err());
        for a in Action::ALL {
            if *a != Action::CreateWorkloadSession {
                assert!(authorize(&w, *a, &facts.with_level(ro)).is_err(), "{a:?}");
            }
        }
        // Nobody else creates workload sessions, and API keys never manage anchors.
        for c in [
            op("alice", Role::Operator),
            op("root", Role::Admin),
            key("acme"),
        ] {
            assert!(authorize(&c, Action::CreateWorkloadSession, &facts.with_level(ro)).is_err());
        }
        assert!(authorize(&key("acme"), Action::CreateTrustAnchor, &facts).is_err());
        assert!(
            authorize(
                &op("alice", Role::Operator),
                Action::CreateTrustAnchor,
                &facts
            )
            .is_ok()
        );
        assert!(
            authorize(
                &op("bob", Role::Operator),
                Action::CreateTrustAnchor,
                &facts
            )
            .is_err()
        );
    }

    #[test]
    fn operators_act_on_their_own_orgs_and_themselves() {
        let acme = OrgName::parse("acme").unwrap();
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let a = op("alice", Role::Operator);
        let mine = Facts::org(&acme, Owner::Is(&alice));
        let theirs = Facts::org(&acme, Owner::Is(&bob));
        assert!(authorize(&a, Action::OffboardOrg, &mine).is_ok());
        assert!(authorize(&a, Action::OffboardOrg, &theirs).is_err());
        assert!(authorize(&a, Action::OffboardOrg, &Facts::default()).is_err());
        assert!(authorize(&a, Action::RotateUserToken, &Facts::user(&alice)).is_ok());
        assert!(authorize(&a, Action::RotateUserToken, &Facts::user(&bob)).is_err());
        assert!(authorize(&a, Action::CreateUser, &Facts::default()).is_err());
        assert!(authorize(&key("acme"), Action::OffboardOrg, &mine).is_err());
    }

    #[test]
    fn every_action_has_a_name_and_a_description() {
        let mut names = std::collections::HashSet::new();
        for a in Action::ALL {
            assert!(names.insert(a.name()), "{a:?}");
            assert!(!a.rules().describe().is_empty(), "{a:?}");
        }
    }
}
