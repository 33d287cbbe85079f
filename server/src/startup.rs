//! Building the application from settings: database, state, router, stand-ins and worker.
//! `main` stays thin; tests build the same `Application` on port 0.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use app::model::Branding;
use app::ssr::sessions::DbSessionStore;
use app::ssr::standins::StandinControls;
use app::ssr::{AppState, PortalSettings};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::catcher::Catcher;
use crate::config::Settings;
use crate::handlers;
use crate::http::{self, CsrfConfig};
use crate::mailer::{self, Transport};
use crate::metrics::{self, Metrics};
use crate::worker::{Worker, WorkerConfig};

/// Everything the web server and the worker share.
#[derive(Clone)]
pub struct Services {
    pub state: AppState,
    pub settings: Arc<Settings>,
    pub mailer: Transport,
    pub metrics: Arc<Metrics>,
    /// The local Stripe stand-in, when this process runs it.
    pub stripe_standin: Option<crate::stripe_standin::StripeStandin>,
    /// The local CRM stand-in, when this process runs it.
    pub crm_standin: Option<crate::crm_standin::CrmStandin>,
    /// Where documents' content is stored (the local folder, S3, GCS or Azure).
    pub storage: crate::storage::Storage,
}

/// Connects to the database, applies migrations and builds the shared state. `catcher_addr` is
/// where the local mail catcher actually listens (it may have been bound to port 0).
pub async fn prepare(
    settings: Settings,
    catcher_addr: Option<std::net::SocketAddr>,
    standin_addr: Option<std::net::SocketAddr>,
    crm_standin_addr: Option<std::net::SocketAddr>,
) -> anyhow::Result<Services> {
    let mut settings = settings;
    if let Some(addr) = catcher_addr {
        settings.mail_catcher.listen = addr.to_string();
    }
    if let Some(addr) = standin_addr {
        settings.stripe.standin_listen = addr.to_string();
    }
    if let Some(addr) = crm_standin_addr {
        settings.crm.standin_listen = addr.to_string();
    }
    let (crm, crm_standin_url) = crm_connector(&settings)?;
    let (stripe_key, stripe_base, stripe_standin) = settings.stripe_client_settings();
    let gateway = crate::stripe::StripeGateway::new(
        &stripe_key,
        &stripe_base,
        stripe_standin,
        Duration::from_secs(settings.stripe.timeout_secs),
    )
    .map_err(|e| anyhow::anyhow!("cannot set up the Stripe client: {e}"))?;
    let storage = crate::storage::Storage::from_settings(&settings)
        .context("cannot set up document storage")?;
    let db = crate::database::connect(&settings.database_url(), settings.database_max_connections)
        .await?;
    crate::database::migrate(&db).await?;
    let leptos_options = LeptosOptions::builder()
        .output_name("stoep")
        .site_root(settings.site_root.display().to_string())
        .site_pkg_dir("pkg")
        .site_addr(settings.listen_addr()?)
        .env(leptos::config::Env::PROD)
        .build();
    let portal = PortalSettings {
        public_url: settings.public_url_trimmed(),
        branding: Branding {
            business_name: settings.business.name.clone(),
            primary_colour: settings.business.primary_colour.clone(),
            logo_url: settings.business.logo_url.clone(),
        },
        mail_from: settings.smtp.from.clone(),
        privacy_notice_version: settings.privacy_notice_version.clone(),
        privacy_notice: settings.privacy_notice()?,
        mail_catcher_active: settings.mail_catcher_active(),
        mail_catcher_dir: settings
            .mail_catcher_active()
            .then(|| settings.data_dir.join("mail-catcher")),
        smtp_description: mailer::describe(&settings),
        demo: settings.demo,
        stripe_standin_url: stripe_standin.then(|| stripe_base.clone()),
        crm_standin_url,
        checkout_origin: if stripe_standin {
            url::Url::parse(&stripe_base)
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_default()
        } else {
            "https://checkout.stripe.com".into()
        },
        storage_description: Some(storage.description.clone()),
        map: app::ssr::map::MapFacts {
            stripe_reconcile_minutes: settings.stripe.reconcile_every_minutes,
            payments_fallback: settings.stripe.fallback.clone(),
            crm_fields: settings.crm_fields(),
            crm_id_property: settings.crm.id_property.clone(),
            secrets: settings
                .integration_secrets()
                .into_iter()
                .map(|(name, integration, _)| (name, integration))
                .collect(),
        },
        documents: app::ssr::documents::DocumentLimits {
            max_upload_bytes: settings.storage.max_upload_mb * 1024 * 1024,
            allowed: settings.allowed_document_kinds()?,
            storage_description: storage.description.clone(),
        },
    };
    for (name, _, value) in settings.integration_secrets() {
        app::ssr::map::record_secret(&db, &name, &value)
            .await
            .context("cannot record secret fingerprints")?;
    }
    let mailer = mailer::build(&settings).context("cannot set up the SMTP client")?;
    let state = AppState {
        leptos_options,
        db,
        settings: Arc::new(portal),
        standins: Arc::new(StandinControls::default()),
        payments: Arc::new(gateway),
        crm,
        probes: app::ssr::map::Probes {
            mail: Some(Arc::new(mailer::SmtpProbe {
                transport: mailer.clone(),
                description: mailer::describe(&settings),
            })),
            storage: Some(Arc::new(storage.clone())),
        },
    };
    Ok(Services {
        state,
        settings: Arc::new(settings),
        mailer,
        metrics: Arc::new(Metrics::default()),
        stripe_standin: None,
        storage,
        crm_standin: None,
    })
}

/// The CRM connector the settings ask for, and the stand-in's address when it is the stand-in.
fn crm_connector(
    settings: &Settings,
) -> anyhow::Result<(Arc<dyn app::ssr::crm::CrmConnector>, Option<String>)> {
    use secrecy::ExposeSecret;
    let c = &settings.crm;
    let timeout = Duration::from_secs(c.timeout_secs);
    Ok(match c.provider.as_str() {
        "hubspot" => {
            let (base, token, standin) = match &c.hubspot_token {
                Some(t) => (
                    c.hubspot_api_base
                        .clone()
                        .unwrap_or_else(|| "https://api.hubapi.com".into()),
                    t.expose_secret().to_owned(),
                    false,
                ),
                None => (
                    format!("http://{}", c.standin_listen),
                    crate::config::CRM_STANDIN_TOKEN.to_owned(),
                    true,
                ),
            };
            let hubspot = crate::crm::HubSpot::new(
                &base,
                &token,
                &c.id_property,
                timeout,
                c.max_requests_per_10s,
                standin,
            )
            .map_err(|e| anyhow::anyhow!("cannot set up the HubSpot client: {e}"))?;
            (Arc::new(hubspot), standin.then_some(base))
        }
        "webhook" => {
            let hook = crate::crm::SignedWebhook::new(
                c.webhook_url.as_deref().unwrap_or_default(),
                c.webhook_secret
                    .as_ref()
                    .map(|s| s.expose_secret().to_owned())
                    .unwrap_or_default()
                    .as_str(),
                timeout,
            )
            .map_err(|e| anyhow::anyhow!("cannot set up the CRM webhook client: {e}"))?;
            (Arc::new(hook), None)
        }
        _ => (Arc::new(app::ssr::crm::NoCrm), None),
    })
}

/// The worker for these services, with its housekeeping (alert scan, hourly purge).
pub fn worker(services: &Services) -> Worker {
    let w = &services.settings.worker;
    let config = WorkerConfig {
        concurrency: w.concurrency,
        poll_interval: Duration::from_millis(w.poll_interval_ms),
        job_timeout: Duration::from_secs(w.job_timeout_secs),
        lease: Duration::from_secs(w.lease_secs),
        shutdown_grace: Duration::from_secs(w.shutdown_grace_secs),
    };
    let db = services.state.db.clone();
    let registry = handlers::registry(
        db.clone(),
        services.state.settings.clone(),
        services.mailer.clone(),
        services.state.payments.clone(),
        services.state.crm.clone(),
        Arc::new(services.settings.crm_fields()),
        services.settings.retention,
        services.storage.clone(),
    );
    let reconcile_every = services.settings.stripe.reconcile_every_minutes;
    Worker::new(db.clone(), registry, config).with_tick(move || {
        let db = db.clone();
        Box::pin(async move {
            if let Err(e) = handlers::payments::schedule(&db, reconcile_every).await {
                tracing::warn!(error = %e, "could not schedule payment reconciliation");
            }
            if let Err(e) = handlers::alerts::scan(&db).await {
                tracing::warn!(error = %e, "alert scan failed");
            }
            if let Err(e) = handlers::purge::schedule(&db).await {
                tracing::warn!(error = %e, "could not schedule the purge");
            }
            if let Err(e) = handlers::storage::schedule(&db).await {
                tracing::warn!(error = %e, "could not schedule the document clean-up");
            }
        })
    })
}

/// The router: health endpoints, metrics, server functions, pages and static files.
pub fn router(services: &Services) -> Router {
    let state = services.state.clone();
    let leptos_options = state.leptos_options.clone();
    let routes = generate_route_list(app::App);
    let settings = &services.settings;
    let https = settings.https();
    let sessions = SessionManagerLayer::new(DbSessionStore::new(state.db.clone()))
        .with_name(if https {
            "__Host-stoep"
        } else {
            "stoep_session"
        })
        .with_secure(https)
        .with_http_only(true)
        .with_same_site(tower_sessions::cookie::SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(
            app::ssr::auth::IDLE_TIMEOUT_MINUTES,
        )));
    let public_origin = url::Url::parse(&settings.public_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let listen_origin = format!("http://{}", settings.listen);
    let csrf = CsrfConfig {
        origin: public_origin,
        extra_origins: vec![listen_origin],
    };
    let app_state = state.clone();
    let webhooks = Router::new()
        .route(
            "/webhooks/stripe",
            axum::routing::post(crate::webhooks::stripe),
        )
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::webhooks::MAX_BODY,
        ))
        .with_state(crate::webhooks::StripeWebhook {
            db: state.db.clone(),
            secrets: Arc::new(settings.stripe_webhook_secrets()),
            tolerance_secs: settings.stripe.webhook_tolerance_secs as i64,
        });
    let crm_secret = match (
        &settings.crm.provider[..],
        &settings.crm.hubspot_client_secret,
    ) {
        ("hubspot", Some(s)) => Some(secrecy::ExposeSecret::expose_secret(s).to_owned()),
        ("hubspot", None) => Some(crate::config::CRM_STANDIN_CLIENT_SECRET.to_owned()),
        _ => None,
    };
    let crm_webhook = Router::new()
        .route("/webhooks/crm", axum::routing::post(crate::webhooks::crm))
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::webhooks::MAX_BODY,
        ))
        .with_state(crate::webhooks::CrmWebhook {
            db: state.db.clone(),
            secret: crm_secret.map(Arc::new),
            public_url: settings.public_url_trimmed(),
        });
    let max_upload = usize::try_from(
        settings.storage.max_upload_mb * 1024 * 1024 + crate::documents::FORM_SLACK,
    )
    .unwrap_or(usize::MAX);
    let documents = Router::new()
        .route(
            "/documents/upload",
            axum::routing::post(crate::documents::upload)
                .layer(axum::extract::DefaultBodyLimit::max(max_upload)),
        )
        .route("/documents/{id}/download", get(crate::documents::download))
        .with_state(crate::documents::DocumentRoutes {
            state: state.clone(),
            storage: services.storage.clone(),
        });
    let pages = Router::new()
        .route("/admin/bookings.csv", get(crate::feeds::bookings_csv))
        .route("/admin/payments.csv", get(crate::feeds::payments_csv))
        .route(
            "/admin/integrations/map.md",
            get(crate::feeds::map_markdown),
        )
        .route("/account/export", get(crate::feeds::account_export))
        .route("/calendar/{file}", get(crate::feeds::calendar_feed))
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(app_state.clone()),
            {
                let opts = leptos_options.clone();
                move || app::shell(opts.clone())
            },
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(
            app::shell,
        ))
        .layer(axum::Extension(services.storage.clone()))
        // Forms and server functions are small: refuse large bodies before reading them.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            crate::http::MAX_FORM_BODY,
        ))
        .with_state(state.clone());
    let ops = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .route("/brand.css", get(brand_css))
        .with_state(services.clone());
    Router::new()
        .merge(ops)
        .merge(webhooks)
        .merge(crm_webhook)
        .merge(documents)
        .merge(pages)
        .layer(axum::middleware::from_fn(http::bad_arguments_are_400))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(http::RateLimiter::new(
                settings.trusted_proxy_ips().unwrap_or_default(),
                settings.limits,
            )),
            http::rate_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(csrf, http::csrf_guard))
        .layer(sessions)
        .layer(axum::middleware::from_fn_with_state(https, http::security_headers))
        .layer(axum::middleware::from_fn_with_state(services.metrics.clone(), metrics::track))
        .layer(axum::middleware::from_fn(http::catch_panics))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

async fn readyz(State(s): State<Services>) -> impl IntoResponse {
    match crate::database::ready(&s.state.db).await {
        Ok(()) => (StatusCode::OK, "ready".to_string()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}"),
        ),
    }
}

/// The business's colours as CSS custom properties (validated hex colours from configuration).
async fn brand_css(State(s): State<Services>) -> impl IntoResponse {
    let colour = &s.state.settings.branding.primary_colour;
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=300"),
        ],
        format!(":root {{ --brand: {colour}; }}\n"),
    )
}

async fn metrics_handler(State(s): State<Services>) -> impl IntoResponse {
    let mut out = String::new();
    s.metrics.render_http(&mut out);
    if let Err(e) = metrics::render_ledger(&s.state.db, &mut out).await {
        tracing::warn!(error = %e, "metrics: cannot read the ledger");
    }
    metrics::text_response(out)
}

/// A running web server, optionally with the worker and the mail catcher in the same process.
pub struct Application {
    listener: TcpListener,
    catcher: Option<(TcpListener, Catcher)>,
    standin: Option<TcpListener>,
    crm_standin: Option<TcpListener>,
    services: Services,
    with_worker: bool,
}

impl Application {
    /// Binds the listeners, connects and migrates. Port 0 picks a free port (tests).
    pub async fn build(settings: Settings, with_worker: bool) -> anyhow::Result<Self> {
        let addr = settings.listen_addr()?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let catcher_listener = if settings.mail_catcher_active() {
            let caddr: std::net::SocketAddr = settings.mail_catcher.listen.parse()?;
            Some(
                TcpListener::bind(caddr)
                    .await
                    .with_context(|| format!("cannot start the local mail catcher on {caddr}"))?,
            )
        } else {
            None
        };
        let catcher_addr = catcher_listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?;
        // The Stripe stand-in runs only when no Stripe key is configured.
        let standin_listener =
            if settings.stripe_standin_active() {
                let saddr: std::net::SocketAddr = settings.stripe.standin_listen.parse()?;
                Some(TcpListener::bind(saddr).await.with_context(|| {
                    format!("cannot start the local Stripe stand-in on {saddr}")
                })?)
            } else {
                None
            };
        let standin_addr = standin_listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?;
        // The CRM stand-in runs only for HubSpot without a token.
        let crm_listener = if settings.crm_standin_active() {
            let caddr: std::net::SocketAddr = settings.crm.standin_listen.parse()?;
            Some(
                TcpListener::bind(caddr)
                    .await
                    .with_context(|| format!("cannot start the local CRM stand-in on {caddr}"))?,
            )
        } else {
            None
        };
        let crm_addr = crm_listener.as_ref().map(|l| l.local_addr()).transpose()?;
        let mut settings = settings;
        // Links and the cross-site check must match the port actually bound.
        let bound = listener.local_addr()?;
        if addr.port() == 0 {
            settings.listen = bound.to_string();
            if settings.public_url.ends_with(":0") || settings.public_url.ends_with(":0/") {
                settings.public_url = format!("http://{bound}");
            }
        }
        let services = prepare(settings, catcher_addr, standin_addr, crm_addr).await?;
        if services.settings.demo {
            crate::demo::seed(&services.state.db)
                .await
                .context("cannot add the demo data")?;
        }
        let catcher = catcher_listener.map(|l| {
            let dir = services
                .state
                .settings
                .mail_catcher_dir
                .clone()
                .unwrap_or_else(|| services.settings.data_dir.join("mail-catcher"));
            (
                l,
                Catcher {
                    dir,
                    controls: services.state.standins.clone(),
                },
            )
        });
        Ok(Self {
            listener,
            catcher,
            standin: standin_listener,
            crm_standin: crm_listener,
            services,
            with_worker,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Starts the local Stripe stand-in (when configured to run), delivering webhooks to this
    /// process. Called by `run_until_stopped`; tests call it early to reach the stand-in.
    pub async fn start_standin(&mut self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        if let Some(listener) = self.crm_standin.take() {
            let addr = listener.local_addr()?;
            let config = crate::crm_standin::CrmStandinConfig {
                token: crate::config::CRM_STANDIN_TOKEN.to_owned(),
                client_secret: crate::config::CRM_STANDIN_CLIENT_SECRET.to_owned(),
                webhook_url: Some(format!(
                    "{}/webhooks/crm",
                    self.services.settings.public_url_trimmed()
                )),
                faults: self.services.state.standins.crm.clone(),
                state_file: Some(self.services.settings.data_dir.join("crm-standin.json")),
                rate_limit_per_10s: 100,
                ..Default::default()
            };
            let standin = crate::crm_standin::CrmStandin::start(listener, config, shutdown.clone())
                .await
                .context("cannot start the local CRM stand-in")?;
            tracing::info!(%addr, "local CRM (HubSpot) stand-in listening (no HubSpot token configured)");
            self.services.crm_standin = Some(standin);
        }
        let Some(listener) = self.standin.take() else {
            return Ok(());
        };
        let addr = listener.local_addr()?;
        let config = crate::stripe_standin::StandinConfig {
            api_key: crate::config::STANDIN_SECRET_KEY.to_owned(),
            webhook_url: Some(format!(
                "http://{}/webhooks/stripe",
                self.services.settings.listen
            )),
            webhook_secret: crate::config::STANDIN_WEBHOOK_SECRET.to_owned(),
            faults: self.services.state.standins.stripe.clone(),
            retry_schedule: crate::stripe_standin::StandinConfig::default_retry_schedule(),
            state_file: Some(self.services.settings.data_dir.join("stripe-standin.json")),
            business_name: self.services.settings.business.name.clone(),
        };
        let standin =
            crate::stripe_standin::StripeStandin::start(listener, config, shutdown.clone())
                .await
                .context("cannot start the local Stripe stand-in")?;
        tracing::info!(%addr, "local Stripe stand-in listening (no Stripe key configured)");
        self.services.stripe_standin = Some(standin);
        Ok(())
    }

    /// Serves until `shutdown` is cancelled; then in-flight requests and jobs finish.
    pub async fn run_until_stopped(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.start_standin(&shutdown).await?;
        let router = router(&self.services);
        if let Some((listener, catcher)) = self.catcher {
            tracing::info!(addr = %listener.local_addr()?, "local mail catcher listening (no SMTP relay configured)");
            tokio::spawn(catcher.serve(listener, shutdown.clone()));
        }
        let worker = self
            .with_worker
            .then(|| tokio::spawn(worker(&self.services).run(shutdown.clone())));
        tracing::info!(addr = %self.listener.local_addr()?, public_url = %self.services.settings.public_url, database = crate::database::backend_name(&self.services.state.db), "portal listening");
        let stop = shutdown.clone();
        axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
        .context("the web server failed")?;
        if let Some(w) = worker {
            let _ = w.await;
        }
        Ok(())
    }
}
