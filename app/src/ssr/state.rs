//! The one state object shared by axum handlers, server functions and the worker.

use std::path::PathBuf;
use std::sync::Arc;

use leptos::config::LeptosOptions;
use sea_orm::DatabaseConnection;

use crate::model::Branding;

/// What the portal's pages and server functions need to know about the running configuration.
/// Built by the server from its validated settings; holds no secrets.
#[derive(Clone, Debug)]
pub struct PortalSettings {
    /// Absolute base URL the portal is reached at, without a trailing slash (links in emails).
    pub public_url: String,
    /// The business's name, colours and logo.
    pub branding: Branding,
    /// Address emails are sent from.
    pub mail_from: String,
    /// The privacy notice version customers accept at sign-up.
    pub privacy_notice_version: String,
    /// The business's own privacy notice, in paragraphs (`privacy_notice_path`); `None` shows
    /// the template that ships with the portal.
    pub privacy_notice: Option<Vec<String>>,
    /// Whether the embedded SMTP stand-in (mail catcher) receives the portal's mail.
    pub mail_catcher_active: bool,
    /// Folder where the mail catcher keeps what it receives, when active.
    pub mail_catcher_dir: Option<PathBuf>,
    /// A human description of where email goes ("local mail catcher on 127.0.0.1:2525", "smtp.example.com:587").
    pub smtp_description: String,
    /// Whether the demo data and demo sign-in are enabled.
    pub demo: bool,
    /// The local Stripe stand-in's address, when it serves payments (for the admin page).
    pub stripe_standin_url: Option<String>,
    /// The local CRM stand-in's address, when it serves the CRM connector.
    pub crm_standin_url: Option<String>,
    /// The origin of the payment page (Stripe Checkout, or the local stand-in), allowed as a
    /// form-action target in the Content-Security-Policy.
    pub checkout_origin: String,
    /// Where documents are stored, in words, once storage is configured.
    pub storage_description: Option<String>,
    /// Configuration facts for the integration map.
    pub map: crate::ssr::map::MapFacts,
    /// What uploads may be (size, types) and where documents are stored.
    pub documents: crate::ssr::documents::DocumentLimits,
}

/// Shared state. Cheap to clone.
#[derive(Clone, axum::extract::FromRef)]
pub struct AppState {
    /// Leptos' own options (site root, output name, address).
    pub leptos_options: LeptosOptions,
    /// The portal's database (SQLite or PostgreSQL).
    pub db: DatabaseConnection,
    /// Non-secret settings for pages and server functions.
    pub settings: Arc<PortalSettings>,
    /// Stand-in controls shared with the embedded stand-ins (fail on demand, for demos and tests).
    pub standins: Arc<crate::ssr::standins::StandinControls>,
    /// The payment gateway (Stripe through async-stripe; the local stand-in by default).
    pub payments: Arc<dyn crate::ssr::payments::Gateway>,
    /// The CRM connector (HubSpot, a signed webhook, or none; the local HubSpot stand-in by default).
    pub crm: Arc<dyn crate::ssr::crm::CrmConnector>,
    /// Connection tests the server provides: SMTP (connect and authenticate), storage.
    pub probes: crate::ssr::map::Probes,
}

/// The state, from inside a server function or component rendered on the server.
pub fn state() -> AppState {
    leptos::prelude::expect_context::<AppState>()
}
