//! Start-up: open the store, load keys, bootstrap the first admin, bind, and serve.

use rolegate_core::workload::WorkloadSettings;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, Request};
use axum::middleware;
use axum::response::Response;
use axum::{Extension, Router};
use rolegate_core::clock::{Clock, SystemClock};
use rolegate_core::idempotency::Idempotency;
use rolegate_core::onboarding::OnboardingSettings;
use rolegate_core::services::{Config, Ports};
use rolegate_core::users::CreateUserCommand;
use rolegate_core::vault::Vault;
use rolegate_core::{Caller, Services};
use secrecy::ExposeSecret as _;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Settings;
use crate::error::{ApiError, render_errors};
use crate::instrumented_store::InstrumentedStore;
use crate::metered_sts::MeteredSts;
use crate::metrics::Metrics;
use crate::routes::docs::Document;
use crate::state::{AppState, AppStateInner, ONBOARDING_TEMPLATE};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Opens the store and keyring and wires the domain services (the offline admin commands;
/// `serve` goes through [`open_services_with`] to record store metrics). Onboarding links
/// need the served callback URL, so offline services cannot issue them.
pub async fn open_services(
    settings: &Settings,
    create_key: bool,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Services> {
    open_services_with(settings, create_key, clock, None, String::new()).await
}

/// [`open_services`], with the engine wrapped in an [`InstrumentedStore`] and STS in a
/// [`MeteredSts`] when `metrics` is given, so every store call below the vault is timed,
/// its failures counted, and every AssumeRole counted. `callback_url` is what customer
/// stacks are told to call.
pub async fn open_services_with(
    settings: &Settings,
    create_key: bool,
    clock: Arc<dyn Clock>,
    metrics: Option<&Metrics>,
    callback_url: String,
) -> anyhow::Result<Services> {
    let ring = crate::keys::load_keyring(settings, create_key)?;
    let mut store =
        rolegate_store::connect(settings.store.expose_secret(), &settings.data_dir).await?;
    if let Some(metrics) = metrics {
        store = Arc::new(InstrumentedStore::new(store, metrics.store().clone()));
    }
    let vault = Vault::new(store, Arc::new(ring));
    let sdk = rolegate_aws::load(&settings.aws.settings).await;
    let mut sts: Arc<dyn rolegate_core::ports::aws::Sts> =
        Arc::new(rolegate_aws::SdkSts::new(&sdk));
    if let Some(metrics) = metrics {
        sts = Arc::new(MeteredSts::new(sts, metrics.sts_calls.clone()));
    }
    let aws = &settings.aws.settings;
    let federation = Arc::new(
        rolegate_aws::FederationClient::new(aws.connect_timeout, aws.operation_timeout)
            .map_err(|e| anyhow::anyhow!("cannot set up the console federation client: {e}"))?,
    );
    let job_clients = rolegate_aws::job_clients(&sdk);
    let revoke = rolegate_core::access::RevokeSessions {
        sts: sts.clone(),
        iam: Arc::new(rolegate_aws::SdkIam::new(&sdk)),
        settings: settings.access.revoke_sessions.clone(),
    };
    let ports = Ports {
        vault,
        clock,
        sts,
        federation,
        templates: template_store(settings).await,
    };
    let public_url = settings
        .access
        .public_url
        .clone()
        .or_else(|| crate::config::access::origin_of(&callback_url));
    let mut services = Services::new(ports, service_config(settings, callback_url))
        .await?
        .with_jobs(job_clients, settings.jobs.clone());
    services.access = services
        .access
        .clone()
        .with_revoke_sessions(revoke)
        .with_public_url(public_url)
        .with_mail(settings.smtp.is_some());
    Ok(services)
}

/// What the area services are configured with, from the settings.
fn service_config(settings: &Settings, callback_url: String) -> Config {
    let o = &settings.onboarding;
    Config {
        levels: settings.credentials.clone(),
        console: settings.console.clone(),
        onboarding: o.policy.clone(),
        links: OnboardingSettings {
            provider_account_id: o.provider_account_id.clone(),
            provider_principal_arn: o.provider_principal_arn.clone(),
            callback_url,
            region: o.region.clone(),
            partition: o.partition.clone(),
            access_level: o.access_level.clone(),
            max_session_duration: o.max_session_duration,
            template_url_ttl: o.template_url_ttl,
        },
        template: Arc::from(ONBOARDING_TEMPLATE),
        credentials_per_org: settings.rate_limits.credentials_per_org,
        credentials_per_principal: settings.rate_limits.credentials_per_principal,
        // The ARNs name the onboarding region and the provider's account (a placeholder
        // account when none is configured: clients only read the region from them).
        workload: WorkloadSettings {
            region: o.region.clone(),
            account_id: o
                .provider_account_id
                .clone()
                .unwrap_or_else(|| "000000000000".to_owned()),
            ..WorkloadSettings::default()
        },
        sessions: settings.portal.sessions,
        revoke_sessions: settings.access.revoke_sessions.clone(),
    }
}

/// The S3 template store, when a bucket is configured.
async fn template_store(
    settings: &Settings,
) -> Option<Arc<dyn rolegate_core::ports::aws::TemplateStore>> {
    let bucket = settings.onboarding.template_bucket.as_deref()?;
    let sdk = rolegate_aws::load(&settings.aws.settings).await;
    Some(Arc::new(rolegate_aws::S3TemplateStore::new(
        &sdk,
        bucket,
        settings.onboarding.s3_path_style,
        settings.onboarding.template_public_base_url.clone(),
    )))
}

/// A built, bound application.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    tls: Option<Arc<crate::tls::Certificates>>,
    /// What customer approvers' deliveries go out through (webhooks; mail with `[smtp]`).
    senders: rolegate_core::access::Senders,
}

impl Application {
    /// Builds the app and binds its listener (port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        crate::files::secure_data_dir(&settings.data_dir)?;
        let tls = settings
            .tls
            .as_ref()
            .map(crate::tls::Certificates::load)
            .transpose()?;
        if tls.is_none() && !settings.listen.ip().is_loopback() {
            // Only reachable with allow_plain_http = true (validation refuses it otherwise).
            tracing::warn!(listen = %settings.listen, "serving plain HTTP on a non-loopback address (allow_plain_http = true): a TLS-terminating proxy is expected in front of rolegate");
        }
        let degraded = crate::redis_durability::check(&settings).await?;
        let metrics =
            Arc::new(Metrics::new().map_err(|e| anyhow::anyhow!("cannot set up metrics: {e}"))?);
        let listener = crate::serve::bind(settings.listen).map_err(|e| {
            anyhow::anyhow!(
                "invalid setting `listen`: cannot bind {}: {e}",
                settings.listen
            )
        })?;
        let callback_url = match &settings.onboarding.callback_url {
            Some(u) => u.clone(),
            None => {
                let addr = listener.local_addr()?;
                tracing::warn!(%addr, "onboarding.callback_url is not set; customer stacks will be told this local address");
                let scheme = if tls.is_some() { "https" } else { "http" };
                format!("{scheme}://{addr}/api/integrations/validate")
            }
        };
        let services =
            open_services_with(&settings, true, clock.clone(), Some(&metrics), callback_url)
                .await?;
        // One sender for every signed webhook: the notification sinks and customer approvers.
        let webhooks = crate::webhook::HttpWebhooks::new()?;
        let sinks = crate::notify::sinks(&settings.notify, clock.clone(), &webhooks);
        let senders = rolegate_core::access::Senders {
            webhooks: Arc::new(webhooks),
            mail: match &settings.smtp {
                Some(smtp) => Some(Arc::new(crate::mail::SmtpMailer::new(smtp)?)
                    as Arc<dyn rolegate_core::ports::mail::Mailer>),
                None => None,
            },
        };
        let services = services.with_notifiers(sinks, settings.notify.settings.clone());
        bootstrap_admin(&services, &settings).await?;
        // Before listening: what happens from here on is followed, not what came before.
        services.notify.init_cursor().await?;
        let idempotency =
            Idempotency::new(services.records.vault().clone(), settings.idempotency_ttl);
        let purged = idempotency.purge_secret_responses().await?;
        if purged > 0 {
            tracing::warn!(
                purged,
                "dropped credential answers an older version kept for idempotent replay"
            );
        }
        let state = AppState::new(AppStateInner {
            services,
            idempotency,
            settings: Arc::new(settings.clone()),
            clock,
            metrics,
            readiness: crate::readiness::Readiness::new(degraded),
        });
        Ok(Self {
            router: router(state.clone())?,
            listener,
            state,
            tls,
            senders,
        })
    }

    #[must_use]
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    #[must_use]
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGINT/SIGTERM (over TLS when configured; SIGHUP then reloads the
    /// certificate). Meanwhile background tasks run jobs (`jobs.workers` at once), write the
    /// transitions time makes to access requests and grants (`access.sweep_interval_ms`), follow
    /// the audit log into notifications and deliver them (`[notify]`, one replica at a time), write an
    /// audit checkpoint to the log every minute and after every 10,000 events, and the aggregated events of failed logins and
    /// rejected callbacks when their minute ends; on the way out, the failures still being
    /// counted are written, then one more checkpoint.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let tls = match &self.tls {
            Some(certs) => {
                certs.reload_on_sighup();
                Some(certs.server_config().map_err(std::io::Error::other)?)
            }
            None => None,
        };
        let audit = self.state.services.records.audit().clone();
        let checkpoints = AbortOnDrop(tokio::spawn(audit.clone().run_checkpoints()));
        let failures = AbortOnDrop(tokio::spawn(audit.clone().run_failure_flusher()));
        let jobs = AbortOnDrop(tokio::spawn(
            self.state
                .services
                .jobs
                .clone()
                .run_workers(Arc::new(self.state.metrics.jobs())),
        ));
        let sweeper = AbortOnDrop(tokio::spawn(
            self.state
                .services
                .access
                .clone()
                .run_sweeper(self.state.settings.access.sweep_interval),
        ));
        let notifier = AbortOnDrop(tokio::spawn(self.state.services.notify.clone().run()));
        let deliveries = AbortOnDrop(tokio::spawn(
            self.state.services.access.clone().run_deliveries(
                self.senders.clone(),
                self.state.settings.access.sweep_interval,
            ),
        ));
        let header_timeout = self.state.settings.timeouts.header_read;
        let served = crate::serve::run(
            self.listener,
            self.router,
            tls,
            header_timeout,
            shutdown_signal(),
        )
        .await;
        drop((checkpoints, failures, jobs, sweeper, notifier, deliveries));
        audit.flush_failures(true).await;
        audit.emit_checkpoint().await;
        served
    }
}

/// A background task that stops with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutting down");
}

/// On an empty store, creates the first admin and writes its token to
/// `<data_dir>/admin.token` (mode 0600).
async fn bootstrap_admin(services: &Services, settings: &Settings) -> anyhow::Result<()> {
    if services.users.any().await? {
        return Ok(());
    }
    let cmd = CreateUserCommand::parse(
        "admin",
        "admin",
        Some(serde_json::json!({"bootstrap": true})),
    )?;
    match services
        .users
        .create(&Caller::system("bootstrap"), cmd)
        .await
    {
        Ok((_, token)) => {
            let path = settings.data_dir.join("admin.token");
            crate::keys::write_private(&path, &format!("{}\n", token.expose_secret()))?;
            tracing::info!(path = %path.display(), "created the first admin; its token is in this file");
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "rolegate: first admin created; token written to {}",
                    path.display()
                );
            }
            Ok(())
        }
        // Another replica bootstrapped at the same moment.
        Err(rolegate_core::Error::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The full router with every layer, and the OpenAPI document of its routes.
///
/// Every route comes from a `#[utoipa::path]` annotation (see [`crate::openapi`]), so the
/// document served at `/api/openapi.json` lists exactly what this router serves.
/// `/metrics` sits beside the health routes, outside authentication: it must only be
/// reachable from the network that scrapes it. `/docs` is the page's assets, not API.
pub fn router(state: AppState) -> anyhow::Result<Router> {
    let (protected, mut doc) = OpenApiRouter::new()
        .merge(crate::routes::users::router(&state))
        .merge(crate::routes::orgs::router(&state))
        .merge(crate::routes::audit::router(&state))
        .merge(crate::routes::onboarding::router(&state))
        .merge(crate::routes::credentials::router(&state))
        .merge(crate::routes::workload::router(&state))
        .merge(crate::routes::jobs::router(&state))
        .merge(crate::routes::access::router(&state))
        .merge(crate::routes::network::router(&state))
        .merge(crate::routes::notify::router(&state))
        .merge(crate::routes::chat::router(&state))
        .merge(crate::routes::history::router(&state))
        .merge(crate::routes::customer::router(&state))
        .split_for_parts();
    crate::openapi::protect(&mut doc);
    let protected = protected
        .route_layer(middleware::from_fn(render_errors))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authenticate,
        ));
    let mut open = OpenApiRouter::new()
        .merge(crate::routes::health::router())
        .merge(crate::routes::docs::router())
        .merge(crate::routes::onboarding::public_router())
        .merge(crate::routes::workload::public_router())
        .merge(crate::routes::chat::public_router())
        .merge(crate::routes::customer::public_router());
    if state.settings.metrics_enabled {
        open = open.routes(crate::authorize::documented(
            routes!(crate::routes::metrics::render),
            rolegate_core::policy::Action::ReadMetrics,
        ));
    }
    let (open, open_doc) = open.split_for_parts();
    doc.merge(open_doc);
    let mut doc = crate::openapi::document(doc);
    let levels: Vec<&rolegate_core::levels::AccessLevel> =
        state.settings.credentials.levels().collect();
    crate::openapi::describe_settings(&mut doc, &levels, &state.settings.onboarding.partition);
    let doc = Document(Arc::new(doc));
    let tls_on = state.settings.tls.is_some();
    let mut app = Router::new()
        .merge(open)
        .merge(crate::routes::docs::ui())
        .merge(protected);
    if state.settings.portal.enabled {
        app = app.merge(crate::portal::router(&state)?);
    }
    Ok(app
        .layer(Extension(doc))
        .fallback(|| async { ApiError::new(rolegate_core::Code::NotFound, "no such route") })
        .layer(middleware::from_fn_with_state(state.clone(), crate::timeouts::limit))
        .layer(middleware::from_fn(render_errors))
        .layer(middleware::from_fn_with_state(state.clone(), crate::routes::metrics::track_http))
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .layer(
            // Spans and events name the method, the path (never the query) and the request id;
            // never a header or a body, where the secrets are.
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
                    tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
                })
                .on_response(|res: &Response, latency: Duration, _: &tracing::Span| {
                    tracing::info!(
                        status = res.status().as_u16(),
                        latency_ms = latency.as_secs_f64() * 1000.0,
                        "request finished"
                    );
                }),
        )
        .layer(middleware::from_fn(move |req: axum::extract::Request, next: middleware::Next| {
            crate::tls::hsts(tls_on, req, next)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_unsafe_request_id)))
}

/// A client may send its own `x-request-id` to correlate logs, but it lands in logs and
/// audit events: anything but 1 to 64 of `[A-Za-z0-9._-]` is replaced by a fresh UUID.
async fn drop_unsafe_request_id<B>(mut req: Request<B>) -> Request<B> {
    let ok = req.headers().get(&REQUEST_ID).is_some_and(|v| {
        let b = v.as_bytes();
        (1..=64).contains(&b.len())
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    });
    if !ok {
        req.headers_mut().remove(&REQUEST_ID);
    }
    req
}
