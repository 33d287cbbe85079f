//! Building the application from settings: database, state, router, stand-ins and worker.
//! `main` stays thin; tests build the same `Application` on port 0.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use app::ssr::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use domain::sessions::DbSessionStore;
use domain::worker::{Worker, WorkerConfig};
use domain::{Portal, PortalSettings};
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list};
use model::Branding;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::config::Settings;
use crate::embedded::{Embedded, Listeners};
use crate::http::{self, CsrfConfig};
use crate::integrations::smtp::Smtp;
use crate::integrations::storage::Storage;
use crate::jobs;
use crate::metrics::{self, Metrics};

/// Everything the web server and the worker share.
#[derive(Clone)]
pub struct Services {
    /// The pages' and server functions' state: the running portal (database, settings, ports).
    pub state: AppState,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    /// The stand-ins this process runs (none when every real service is configured).
    pub embedded: Embedded,
}

/// What the tests may change in how the portal is built; production passes the default.
#[derive(Default)]
pub struct Overrides {
    /// Wraps the document store (tests put a fault switch around it).
    pub wrap_store: Option<crate::integrations::storage::StoreWrapper>,
}

/// Connects to the database, applies migrations and builds the shared state. The settings carry
/// the addresses the stand-ins are bound to (see [`Listeners::bind`]).
pub async fn prepare(settings: Settings, overrides: Overrides) -> anyhow::Result<Services> {
    let embedded = Embedded::plan(&settings);
    let crm = crate::integrations::crm::connector(
        &settings,
        embedded
            .crm_url
            .as_ref()
            .map(|url| (url.clone(), standins::hubspot::TOKEN.to_owned())),
    )?;
    let (stripe_key, stripe_base, _) = settings.stripe_client_settings();
    let gateway = crate::integrations::stripe::StripeGateway::new(
        &stripe_key,
        &stripe_base,
        Duration::from_secs(settings.stripe.timeout_secs),
    )
    .map_err(|e| anyhow::anyhow!("cannot set up the Stripe client: {e}"))?;
    let storage = Storage::from_settings_wrapped(&settings, overrides.wrap_store)
        .context("cannot set up document storage")?;
    let db = domain::database::connect(&settings.database_url(), settings.database_max_connections)
        .await?;
    domain::database::migrate(&db).await?;
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
        demo: settings.demo,
        checkout_origin: match &embedded.stripe_url {
            Some(url) => url::Url::parse(url)
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_default(),
            None => "https://checkout.stripe.com".into(),
        },
        storage_description: Some(storage.description.clone()),
        map: domain::map::MapFacts {
            stripe_reconcile_minutes: settings.stripe.reconcile_every_minutes,
            payments_fallback: settings.stripe.fallback.clone(),
            crm_fields: settings.crm_fields(),
            crm_id_property: settings.crm.id_property.clone(),
            secrets: settings
                .integration_secrets()
                .into_iter()
                .map(|(name, integration, _)| (name, integration))
                .collect(),
            payments_standin: embedded.stripe_url.clone(),
            crm_standin: embedded.crm_url.clone(),
            mail_standin: settings
                .mail_catcher_active()
                .then(|| settings.mail_catcher.listen.clone()),
        },
        documents: domain::documents::DocumentLimits {
            max_upload_bytes: settings.storage.max_upload_mb * 1024 * 1024,
            allowed: settings.allowed_document_kinds()?,
            storage_description: storage.description.clone(),
        },
    };
    for (name, _, value) in settings.integration_secrets() {
        domain::map::record_secret(&db, &name, &value)
            .await
            .context("cannot record secret fingerprints")?;
    }
    let mail = Smtp::new(&settings).context("cannot set up the SMTP client")?;
    let state = AppState {
        leptos_options,
        portal: Portal {
            db,
            settings: Arc::new(portal),
            payments: Arc::new(gateway),
            crm,
            mail: Arc::new(mail),
            storage: Arc::new(storage),
        },
        standins: embedded.console(),
    };
    Ok(Services {
        state,
        settings: Arc::new(settings),
        metrics: Arc::new(Metrics::default()),
        embedded,
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
    let registry = jobs::registry(
        &services.state.portal,
        Arc::new(services.settings.crm_fields()),
        services.settings.retention,
    );
    let reconcile_every = services.settings.stripe.reconcile_every_minutes;
    Worker::new(db.clone(), registry, config).with_tick(move || {
        let db = db.clone();
        Box::pin(async move {
            if let Err(e) = jobs::payments::schedule(&db, reconcile_every).await {
                tracing::warn!(error = %e, "could not schedule payment reconciliation");
            }
            if let Err(e) = jobs::alerts::scan(&db).await {
                tracing::warn!(error = %e, "alert scan failed");
            }
            if let Err(e) = jobs::purge::schedule(&db).await {
                tracing::warn!(error = %e, "could not schedule the purge");
            }
            if let Err(e) = jobs::storage::schedule(&db).await {
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
            domain::auth::IDLE_TIMEOUT_MINUTES,
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
    let webhooks = crate::integrations::stripe::webhook::router(state.db.clone(), settings);
    let crm_webhook = crate::integrations::crm::inbound::router(state.db.clone(), settings);
    let max_upload = usize::try_from(
        settings.storage.max_upload_mb * 1024 * 1024 + crate::routes::documents::FORM_SLACK,
    )
    .unwrap_or(usize::MAX);
    let documents = Router::new()
        .route(
            "/documents/upload",
            axum::routing::post(crate::routes::documents::upload)
                .layer(axum::extract::DefaultBodyLimit::max(max_upload)),
        )
        .route(
            "/documents/{id}/download",
            get(crate::routes::documents::download),
        )
        .with_state(crate::routes::documents::DocumentRoutes {
            state: state.clone(),
            storage: state.storage.clone(),
        });
    let pages = Router::new()
        .route(
            "/admin/bookings.csv",
            get(crate::routes::exports::bookings_csv),
        )
        .route(
            "/admin/payments.csv",
            get(crate::routes::exports::payments_csv),
        )
        .route(
            "/admin/integrations/map.md",
            get(crate::routes::exports::map_markdown),
        )
        .route(
            "/account/export",
            get(crate::routes::exports::account_export),
        )
        .route(
            "/calendar/{file}",
            get(crate::integrations::calendar_feeds::calendar_feed),
        )
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
        .layer(axum::middleware::from_fn(http::server_fn_error_status))
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
    match domain::database::ready(&s.state.db).await {
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

/// A running web server, optionally with the worker and the embedded stand-ins in the same
/// process.
pub struct Application {
    listener: TcpListener,
    standins: Listeners,
    services: Services,
    with_worker: bool,
}

impl Application {
    /// Binds the listeners, connects and migrates. Port 0 picks a free port (tests).
    pub async fn build(settings: Settings, with_worker: bool) -> anyhow::Result<Self> {
        Self::build_with(settings, with_worker, Overrides::default()).await
    }

    /// As [`Application::build`], with test overrides.
    pub async fn build_with(
        settings: Settings,
        with_worker: bool,
        overrides: Overrides,
    ) -> anyhow::Result<Self> {
        let addr = settings.listen_addr()?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let mut settings = settings;
        // The stand-ins run only where no real service is configured.
        let standins = Listeners::bind(&mut settings).await?;
        // Links and the cross-site check must match the port actually bound.
        let bound = listener.local_addr()?;
        if addr.port() == 0 {
            settings.listen = bound.to_string();
            if settings.public_url.ends_with(":0") || settings.public_url.ends_with(":0/") {
                settings.public_url = format!("http://{bound}");
            }
        }
        let services = prepare(settings, overrides).await?;
        if services.settings.demo {
            domain::demo::seed(&services.state.db)
                .await
                .context("cannot add the demo data")?;
        }
        Ok(Self {
            listener,
            standins,
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

    /// Starts the embedded Stripe and HubSpot stand-ins (those configured to run), delivering
    /// webhooks to this process. Called by `run_until_stopped`; tests call it early to reach the
    /// stand-ins.
    pub async fn start_standin(&mut self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let settings = self.services.settings.clone();
        self.services
            .embedded
            .start_http(&mut self.standins, &settings, shutdown)
            .await
    }

    /// Serves until `shutdown` is cancelled; then in-flight requests and jobs finish.
    pub async fn run_until_stopped(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.start_standin(&shutdown).await?;
        self.services
            .embedded
            .start_mail(&mut self.standins, &shutdown);
        let router = router(&self.services);
        let worker = self
            .with_worker
            .then(|| tokio::spawn(worker(&self.services).run(shutdown.clone())));
        tracing::info!(addr = %self.listener.local_addr()?, public_url = %self.services.settings.public_url, database = domain::database::backend_name(&self.services.state.db), "portal listening");
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
