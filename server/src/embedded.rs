//! The embedded defaults: the local stand-ins (from the `standins` crate) this process runs when
//! no credentials for the real service are configured, so `stoep serve` needs nothing beside it.
//! The mail catcher runs without `smtp.host`, the Stripe stand-in without `stripe.secret_key`,
//! the HubSpot stand-in for `crm.provider = hubspot` without a token. The portal's clients are
//! the production ones, pointed at the stand-in's address; nothing else knows.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use domain::ports::StandinConsole;
use standins::controls::StandinControls;
use standins::hubspot::{CrmStandin, CrmStandinConfig};
use standins::mail::Catcher;
use standins::stripe::{StandinConfig, StripeStandin};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;

/// The listeners of the stand-ins that will run, bound before anything else starts (port 0
/// picks a free port).
#[derive(Default)]
pub struct Listeners {
    pub mail: Option<TcpListener>,
    pub stripe: Option<TcpListener>,
    pub crm: Option<TcpListener>,
}

async fn bind(addr: &str, what: &str) -> anyhow::Result<TcpListener> {
    let addr: SocketAddr = addr.parse()?;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot start the local {what} on {addr}"))
}

impl Listeners {
    /// Binds a listener for each stand-in the settings call for, and writes the addresses
    /// actually bound back into the settings (so the clients are pointed at them).
    pub async fn bind(settings: &mut Settings) -> anyhow::Result<Listeners> {
        let mut l = Listeners::default();
        if settings.mail_catcher_active() {
            let listener = bind(&settings.mail_catcher.listen, "mail catcher").await?;
            settings.mail_catcher.listen = listener.local_addr()?.to_string();
            l.mail = Some(listener);
        }
        if settings.stripe_standin_active() {
            let listener = bind(&settings.stripe.standin_listen, "Stripe stand-in").await?;
            settings.stripe.standin_listen = listener.local_addr()?.to_string();
            l.stripe = Some(listener);
        }
        if settings.crm_standin_active() {
            let listener = bind(&settings.crm.standin_listen, "CRM stand-in").await?;
            settings.crm.standin_listen = listener.local_addr()?.to_string();
            l.crm = Some(listener);
        }
        Ok(l)
    }
}

/// The stand-ins of this process: their shared fault switches, where they are, and (once
/// started) their handles, which tests use to look inside them.
#[derive(Clone, Default)]
pub struct Embedded {
    pub controls: Arc<StandinControls>,
    /// The mail catcher's folder, when it runs.
    pub mail_dir: Option<PathBuf>,
    /// The Stripe stand-in's base URL, when it runs.
    pub stripe_url: Option<String>,
    /// The HubSpot stand-in's base URL, when it runs.
    pub crm_url: Option<String>,
    pub stripe: Option<StripeStandin>,
    pub crm: Option<CrmStandin>,
}

impl Embedded {
    /// What will run, from the (bound) settings.
    pub fn plan(settings: &Settings) -> Embedded {
        Embedded {
            controls: Arc::new(StandinControls::default()),
            mail_dir: settings
                .mail_catcher_active()
                .then(|| settings.data_dir.join("mail-catcher")),
            stripe_url: settings
                .stripe_standin_active()
                .then(|| format!("http://{}", settings.stripe.standin_listen)),
            crm_url: settings
                .crm_standin_active()
                .then(|| format!("http://{}", settings.crm.standin_listen)),
            stripe: None,
            crm: None,
        }
    }

    /// The admin page's view of them, when any runs.
    pub fn console(&self) -> Option<Arc<dyn StandinConsole>> {
        (self.mail_dir.is_some() || self.stripe_url.is_some() || self.crm_url.is_some()).then(
            || {
                Arc::new(standins::console::Console {
                    controls: self.controls.clone(),
                    mail_dir: self.mail_dir.clone(),
                    stripe_url: self.stripe_url.clone(),
                    crm_url: self.crm_url.clone(),
                    ..Default::default()
                }) as Arc<dyn StandinConsole>
            },
        )
    }

    /// Starts the Stripe and HubSpot stand-ins on their listeners, delivering their webhooks to
    /// this portal.
    pub async fn start_http(
        &mut self,
        listeners: &mut Listeners,
        settings: &Settings,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        if let Some(listener) = listeners.crm.take() {
            let addr = listener.local_addr()?;
            let config = CrmStandinConfig {
                token: standins::hubspot::TOKEN.to_owned(),
                client_secret: standins::hubspot::CLIENT_SECRET.to_owned(),
                webhook_url: Some(format!("{}/webhooks/crm", settings.public_url_trimmed())),
                faults: self.controls.crm.clone(),
                state_file: Some(settings.data_dir.join("crm-standin.json")),
                rate_limit_per_10s: 100,
                ..Default::default()
            };
            let standin = CrmStandin::start(listener, config, shutdown.clone())
                .await
                .context("cannot start the local CRM stand-in")?;
            tracing::info!(%addr, "local CRM (HubSpot) stand-in listening (no HubSpot token configured)");
            self.crm = Some(standin);
        }
        if let Some(listener) = listeners.stripe.take() {
            let addr = listener.local_addr()?;
            let config = StandinConfig {
                api_key: standins::stripe::API_KEY.to_owned(),
                webhook_url: Some(format!("http://{}/webhooks/stripe", settings.listen)),
                webhook_secret: standins::stripe::WEBHOOK_SECRET.to_owned(),
                faults: self.controls.stripe.clone(),
                retry_schedule: StandinConfig::default_retry_schedule(),
                state_file: Some(settings.data_dir.join("stripe-standin.json")),
                business_name: settings.business.name.clone(),
            };
            let standin = StripeStandin::start(listener, config, shutdown.clone())
                .await
                .context("cannot start the local Stripe stand-in")?;
            tracing::info!(%addr, "local Stripe stand-in listening (no Stripe key configured)");
            self.stripe = Some(standin);
        }
        Ok(())
    }

    /// Starts the mail catcher on its listener.
    pub fn start_mail(&self, listeners: &mut Listeners, shutdown: &CancellationToken) {
        if let (Some(listener), Some(dir)) = (listeners.mail.take(), &self.mail_dir) {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "local mail catcher listening (no SMTP relay configured)");
            }
            let catcher = Catcher {
                dir: dir.clone(),
                controls: self.controls.clone(),
            };
            tokio::spawn(catcher.serve(listener, shutdown.clone()));
        }
    }
}
