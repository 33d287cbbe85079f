//! What the domain knows of the running configuration (built by the server from its validated
//! settings), and the running system as the domain sees it: the database and one implementation
//! of each port.

use std::sync::Arc;

use guards::upload::Kind;
use model::Branding;
use sea_orm::DatabaseConnection;

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
    /// Whether the demo data and demo sign-in are enabled.
    pub demo: bool,
    /// The origin of the payment page (Stripe Checkout, or the local stand-in), allowed as a
    /// form-action target in the Content-Security-Policy.
    pub checkout_origin: String,
    /// Where documents are stored, in words, once storage is configured.
    pub storage_description: Option<String>,
    /// Configuration facts for the integration map.
    pub map: MapFacts,
    /// What uploads may be (size, types) and where documents are stored.
    pub documents: DocumentLimits,
}

/// The running portal as the domain sees it: the database, the settings, and one implementation
/// of each integration port. Cheap to clone. The server builds it at start; pages reach it through
/// `app::ssr::state()`, job handlers get it from the worker.
#[derive(Clone)]
pub struct Portal {
    /// The portal's database (SQLite or PostgreSQL).
    pub db: DatabaseConnection,
    /// Non-secret settings for pages, server functions and jobs.
    pub settings: Arc<PortalSettings>,
    /// The payment provider (Stripe through async-stripe, or a local stand-in of it).
    pub payments: Arc<dyn crate::ports::payments::Gateway>,
    /// The CRM connector (HubSpot, a signed webhook, or none).
    pub crm: Arc<dyn crate::ports::crm::CrmConnector>,
    /// The mail relay (SMTP; the local mail catcher by default).
    pub mail: Arc<dyn crate::ports::mail::MailTransport>,
    /// Where documents' content is stored (a local folder by default, S3, GCS or Azure).
    pub storage: Arc<dyn crate::ports::storage::DocumentStore>,
}

/// Facts about the configuration the map needs (no secret values).
#[derive(Clone, Debug, Default)]
pub struct MapFacts {
    pub stripe_reconcile_minutes: u64,
    /// `hold` or `pay_at_visit`.
    pub payments_fallback: String,
    pub crm_fields: Vec<String>,
    pub crm_id_property: String,
    /// `(setting name, integration key)` of every secret that is configured.
    pub secrets: Vec<(String, String)>,
    /// The embedded stand-in's address when it serves the payments port (no keys configured): a
    /// fact of the configuration the server decided at start, shown on the map.
    pub payments_standin: Option<String>,
    /// The embedded stand-in's address when it serves the CRM port (HubSpot without a token).
    pub crm_standin: Option<String>,
    /// The local mail catcher's address when it receives the portal's mail (no relay set).
    pub mail_standin: Option<String>,
}

/// What uploads may be: set from configuration (`storage.max_upload_mb`, `storage.allowed_types`).
#[derive(Clone, Debug)]
pub struct DocumentLimits {
    pub max_upload_bytes: u64,
    pub allowed: Vec<Kind>,
    /// Where documents are stored, for admins ("local folder data/documents", "s3://bucket").
    pub storage_description: String,
}

impl DocumentLimits {
    pub fn allows(&self, kind: Kind) -> bool {
        self.allowed.contains(&kind)
    }

    /// "PDF, JPEG, PNG, HEIC, Word (.docx) and Excel (.xlsx)".
    pub fn allowed_labels(&self) -> String {
        let labels: Vec<&str> = self.allowed.iter().map(|k| k.label()).collect();
        match labels.split_last() {
            None => "nothing".into(),
            Some((last, [])) => (*last).into(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        }
    }

    /// The file picker's `accept` attribute.
    pub fn accept(&self) -> String {
        self.allowed
            .iter()
            .flat_map(|k| k.extensions().iter().copied())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn max_mb(&self) -> u64 {
        self.max_upload_bytes.div_ceil(1024 * 1024)
    }
}

impl Default for DocumentLimits {
    fn default() -> Self {
        Self {
            max_upload_bytes: 20 * 1024 * 1024,
            allowed: Kind::ALL.to_vec(),
            storage_description: String::new(),
        }
    }
}
