//! The bundle that wires the area services: each is built once, here, with its own ports
//! and settings (as lldap bundles its backends). Nothing else lives on it.

use std::sync::Arc;

use crate::access::Access;
use crate::audit_log::AuditLog;
use crate::clock::Clock;
use crate::credentials::{ConsoleSettings, Credentials};
use crate::error::Error;
use crate::history::AccessHistory;
use crate::jobs::{JobSettings, Jobs};
use crate::levels::CredentialPolicy;
use crate::notify::{Notifications, NotifySettings};
use crate::onboarding::{Onboarding, OnboardingPolicy, OnboardingSettings};
use crate::orgs::Orgs;
use crate::ports::RateLimit;
use crate::ports::aws::{Federation, Sts, TemplateStore};
use crate::ports::notify::Notifier;
use crate::records::Records;
use crate::revocations::{RevocationQueue, RevokeSessionsSettings};
use crate::sessions::{SessionSettings, Sessions};
use crate::users::Users;
use crate::vault::Vault;
use crate::workload::{WorkloadSettings, Workloads};

/// The outside world the services talk to.
#[derive(Debug, Clone)]
pub struct Ports {
    pub vault: Vault,
    pub clock: Arc<dyn Clock>,
    /// STS, for onboarding checks and credential vending.
    pub sts: Arc<dyn Sts>,
    /// The console federation endpoint, for sign-in URLs.
    pub federation: Arc<dyn Federation>,
    /// Where onboarding templates are published (`None` without a bucket).
    pub templates: Option<Arc<dyn TemplateStore>>,
}

/// What the services are configured with, once, at wiring.
#[derive(Debug, Clone)]
pub struct Config {
    pub levels: CredentialPolicy,
    pub console: ConsoleSettings,
    pub onboarding: OnboardingPolicy,
    pub links: OnboardingSettings,
    /// The onboarding template customers deploy.
    pub template: Arc<[u8]>,
    /// Credential issuances per org (spent after authorization).
    pub credentials_per_org: RateLimit,
    /// Credential issuances per caller (an operator or an API key; a workload is limited
    /// per source instead): spent with the org's in one step once the policy admits the
    /// caller, alone when it refuses (ADR 0022).
    pub credentials_per_principal: RateLimit,
    /// Workload identity's ARNs and CRL grace.
    pub workload: WorkloadSettings,
    /// Portal session timeouts.
    pub sessions: SessionSettings,
    /// `revoke_sessions`: the orgs whose roles get denies when an operator is disabled or
    /// an API key rotated (grants: `Access::with_revoke_sessions`).
    pub revoke_sessions: RevokeSessionsSettings,
}

impl Config {
    /// Defaults for the offline commands and tests: the built-in levels, no onboarding.
    #[must_use]
    pub fn offline() -> Self {
        Self {
            levels: CredentialPolicy::defaults("aws", "us-east-1".to_owned()),
            console: ConsoleSettings::default(),
            onboarding: OnboardingPolicy::default(),
            links: OnboardingSettings::default(),
            template: Arc::from(&b""[..]),
            credentials_per_org: RateLimit {
                burst: 600,
                period: std::time::Duration::from_secs(60),
            },
            credentials_per_principal: RateLimit {
                burst: 120,
                period: std::time::Duration::from_secs(60),
            },
            workload: WorkloadSettings::default(),
            sessions: SessionSettings::default(),
            revoke_sessions: RevokeSessionsSettings::default(),
        }
    }
}

/// The area services, wired to one store, keyring and clock.
#[derive(Debug, Clone)]
pub struct Services {
    pub records: Records,
    pub users: Users,
    pub orgs: Orgs,
    pub onboarding: Onboarding,
    pub credentials: Credentials,
    /// Just-in-time access requests, approvals and grants.
    pub access: Access,
    pub audit: AuditLog,
    pub workloads: Workloads,
    /// Jobs in customer accounts. Built without EC2 and without workers; `serve` gives it
    /// both with [`Services::with_jobs`].
    pub jobs: Jobs,
    /// Portal (browser) sessions.
    pub sessions: Sessions,
    /// Notifications and approve-from-chat. Built without sinks; `serve` gives it its
    /// sinks with [`Services::with_notifiers`].
    pub notify: Notifications,
    /// The customer's view of its account's access history.
    pub history: AccessHistory,
}

impl Services {
    /// Wires every area and loads (or creates) the store's token pepper.
    pub async fn new(ports: Ports, config: Config) -> Result<Self, Error> {
        let records = Records::open(ports.vault, ports.clock).await?;
        let levels = Arc::new(config.levels);
        let revocations = RevocationQueue::new(config.revoke_sessions, &levels);
        let orgs = Orgs::new(records.clone(), levels.clone()).with_revocations(revocations.clone());
        let credentials = Credentials::new(
            orgs.clone(),
            ports.sts.clone(),
            ports.federation,
            levels.clone(),
            config.console,
            config.credentials_per_org,
        )
        .with_caller_budget(config.credentials_per_principal);
        Ok(Self {
            workloads: Workloads::new(
                orgs.clone(),
                credentials.clone(),
                levels.clone(),
                config.workload,
            ),
            users: Users::new(records.clone()).with_revocations(revocations),
            sessions: Sessions::new(records.clone(), config.sessions),
            onboarding: Onboarding::new(
                orgs.clone(),
                ports.sts.clone(),
                config.onboarding,
                config.links,
                ports.templates,
                config.template,
            ),
            jobs: Jobs::new(
                orgs.clone(),
                ports.sts.clone(),
                crate::ports::aws::JobClients::none(),
                levels.clone(),
                JobSettings {
                    workers: 0,
                    ..JobSettings::default()
                },
            ),
            credentials,
            notify: Notifications::new(
                records.clone(),
                Access::new(orgs.clone(), levels.clone()),
                levels.clone(),
            ),
            access: Access::new(orgs.clone(), levels.clone()),
            audit: AuditLog::new(orgs.clone()),
            history: AccessHistory::new(orgs.clone()),
            orgs,
            records,
        })
    }

    /// Gives the jobs area its AWS clients and settings (a process that runs jobs).
    #[must_use]
    pub fn with_jobs(
        mut self,
        clients: crate::ports::aws::JobClients,
        settings: JobSettings,
    ) -> Self {
        self.jobs = self.jobs.with_clients(clients, settings);
        self
    }

    /// Gives the notifications area its sinks and settings (a serving process).
    #[must_use]
    pub fn with_notifiers(
        mut self,
        sinks: Vec<std::sync::Arc<dyn Notifier>>,
        settings: NotifySettings,
    ) -> Self {
        self.notify = self.notify.with_sinks(sinks, settings);
        self
    }
}
