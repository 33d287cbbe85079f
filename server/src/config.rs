//! Configuration in layers: built-in defaults, then an optional TOML file (`STOEP_CONFIG`, or
//! `stoep.toml` in the working directory when present), then `STOEP_`-prefixed environment
//! variables (`__` separates nested keys: `STOEP_SMTP__HOST`), then secrets read from files
//! (`STOEP_SMTP__PASSWORD_FILE=/run/secrets/smtp`). Validated once at start; every error names
//! the setting and what is wrong. Every setting is documented in README.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// All settings. Secrets are `SecretString`: never printed by `Debug`, never logged.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where users reach the portal; links in emails are built from it. `https` turns on `Secure`
    /// cookies and HSTS.
    pub public_url: String,
    /// Address the web server listens on.
    pub listen: String,
    /// Folder for the SQLite database, the local object store and the mail catcher's mailbox.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; default: `sqlite://<data_dir>/stoep.db`.
    pub database_url: Option<SecretString>,
    /// Largest number of pooled database connections.
    pub database_max_connections: u32,
    /// `human` or `json`.
    pub log_format: String,
    /// A tracing filter, e.g. `info` or `stoep=debug,info`.
    pub log_level: String,
    /// Where the built site (the `pkg` folder with wasm, JS and CSS) is.
    pub site_root: PathBuf,
    /// Seed demo data and show the demo banner.
    pub demo: bool,
    /// Comma-separated addresses of reverse proxies whose `X-Forwarded-For` is believed for
    /// rate limits and logs; empty means the peer address is the client.
    pub trusted_proxies: String,
    pub business: BusinessSettings,
    pub privacy_notice_version: String,
    /// A text file with the business's own privacy notice (paragraphs separated by blank lines),
    /// shown on the privacy page and the sign-up form; unset shows the template that ships.
    pub privacy_notice_path: Option<PathBuf>,
    pub smtp: SmtpSettings,
    pub mail_catcher: MailCatcherSettings,
    pub worker: WorkerSettings,
    pub stripe: StripeSettings,
    pub crm: CrmSettings,
    pub retention: RetentionSettings,
    pub storage: StorageSettings,
    pub limits: LimitSettings,
}

/// Per-address request limits on the routes that cost the most or that attackers hammer, on
/// top of the fixed ones for sign-in, sign-up and resets. Counted per instance, in memory.
#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Document uploads per client address per hour.
    pub uploads_per_hour: u32,
    /// Booking holds (`/api/book`) per client address per hour; each customer also has a cap
    /// on unpaid holds (business settings).
    pub holds_per_hour: u32,
    /// Stripe and CRM webhook deliveries per sending address per minute.
    pub webhooks_per_minute: u32,
}

/// Document storage. By default a folder under the data folder; otherwise any store object_store
/// reaches by URL, with its credentials from the environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// `file:///abs/path`, `s3://bucket[/prefix]`, `gs://bucket`, `az://container` (and the other
    /// forms object_store parses, such as `https://<account>.blob.core.windows.net/<container>`).
    /// Default: `file://<data_dir>/documents`.
    pub url: Option<String>,
    /// Extra options for the store, by object_store's key names (`aws_endpoint`,
    /// `aws_allow_http`, `google_service_account`, ...). They override the environment's. Values
    /// are treated as secrets (never printed).
    #[serde(default, deserialize_with = "string_map")]
    pub options: std::collections::BTreeMap<String, SecretString>,
    /// The largest file accepted, in MB (MiB); larger uploads are cut off while streaming.
    pub max_upload_mb: u64,
    /// The file types accepted, comma-separated, from `pdf, jpeg, png, heic, docx, xlsx`.
    pub allowed_types: String,
    /// How long a presigned download URL is valid, in seconds, where the store can sign URLs
    /// (S3, GCS, Azure); 0 serves every download through the portal.
    pub presign_secs: u64,
}

/// Accepts strings, numbers and booleans (environment values are typed by `parse_env_value`).
fn string_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, SecretString>, D::Error> {
    let raw: std::collections::BTreeMap<String, figment::value::Value> =
        Deserialize::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| {
            let text = match v {
                figment::value::Value::String(_, s) => s,
                figment::value::Value::Bool(_, b) => b.to_string(),
                figment::value::Value::Num(_, n) => match (n.to_u128(), n.to_i128(), n.to_f64()) {
                    (Some(n), _, _) => n.to_string(),
                    (_, Some(n), _) => n.to_string(),
                    (_, _, Some(n)) => n.to_string(),
                    _ => String::new(),
                },
                _ => {
                    return Err(serde::de::Error::custom(format!(
                        "storage.options.{k} must be a single value"
                    )));
                }
            };
            Ok((k.to_ascii_lowercase(), SecretString::from(text)))
        })
        .collect()
}

/// How long data is kept before the hourly purge removes it (days). See docs/privacy.md.
#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Holds that expired unpaid (with no payment attempt that took money).
    pub expired_holds_days: u32,
    /// Customer accounts whose email was never confirmed and that never booked.
    pub unverified_accounts_days: u32,
    /// Stripe event payloads (already applied) and the bodies of sent emails.
    pub integration_payloads_days: u32,
}

/// The CRM connector. `hubspot` without a token runs the local HubSpot stand-in.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrmSettings {
    /// `hubspot`, `webhook` or `none`.
    pub provider: String,
    /// HubSpot private app access token.
    pub hubspot_token: Option<SecretString>,
    /// The HubSpot app's client secret, which signs its webhooks to `/webhooks/crm`.
    pub hubspot_client_secret: Option<SecretString>,
    /// HubSpot's API address (only for a proxy or tests).
    pub hubspot_api_base: Option<String>,
    /// The generic connector's endpoint (Zapier, Make, n8n...).
    pub webhook_url: Option<String>,
    /// The secret that signs the generic connector's requests.
    pub webhook_secret: Option<SecretString>,
    /// Where the local CRM stand-in listens (loopback; only for `hubspot` without a token).
    pub standin_listen: String,
    /// The portal fields that move to the CRM, comma-separated (a subset of name, email, phone,
    /// company, marketing_consent, portal_status, last_booking, next_booking, total_deposits).
    pub fields: String,
    /// The CRM property holding the portal's customer id (unique), used to upsert.
    pub id_property: String,
    /// Seconds before a CRM call counts as failed.
    pub timeout_secs: u64,
    /// Requests per rolling 10 seconds the connector allows itself (HubSpot private apps: 100).
    pub max_requests_per_10s: u32,
}

/// The CRM stand-in's token and webhook signing secret (loopback only, no real data).
pub const CRM_STANDIN_TOKEN: &str = "pat-stoep-standin";
pub const CRM_STANDIN_CLIENT_SECRET: &str = "stoep-crm-standin-client-secret";

/// Payments. With no secret key, the portal runs its local Stripe stand-in and talks to it
/// through the same client; with a key, the stand-in never starts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeSettings {
    /// `sk_test_...` or `sk_live_...` (or a restricted `rk_` key).
    pub secret_key: Option<SecretString>,
    /// The webhook endpoint's signing secrets (`whsec_...`), comma-separated: two during a
    /// rotation, then only the new one.
    pub webhook_secrets: Option<SecretString>,
    /// Stripe's API address; only changed for a proxy or for tests against a stand-in.
    pub api_base: Option<String>,
    /// Where the local stand-in listens (only without a secret key). Loopback only.
    pub standin_listen: String,
    /// Seconds before a Stripe call counts as failed.
    pub timeout_secs: u64,
    /// How old a webhook's signature timestamp may be, in seconds (Stripe's libraries use 300).
    pub webhook_tolerance_secs: u64,
    /// How often reconciliation asks Stripe about open payments, in minutes.
    pub reconcile_every_minutes: u64,
    /// When Stripe cannot be reached as a customer books: `hold` (keep the slot held, ask them
    /// to try again) or `pay_at_visit` (confirm, with the deposit due at the visit).
    pub fallback: String,
}

/// The stand-in's key and signing secret: fixed, because the stand-in only listens on loopback
/// and holds no real money; a real key can never reach it (see `validate`).
pub const STANDIN_SECRET_KEY: &str = "sk_test_stoep_standin";
pub const STANDIN_WEBHOOK_SECRET: &str = "whsec_stoep_standin";

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessSettings {
    pub name: String,
    pub primary_colour: String,
    pub logo_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// The relay's host. When unset, the portal runs its local mail catcher and sends to it.
    pub host: Option<String>,
    pub port: Option<u16>,
    /// `starttls`, `tls` (implicit TLS) or `none` (plain; only for a relay on this machine).
    pub tls: String,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// The From address, e.g. `Kloof Physio <bookings@kloof.example>`.
    pub from: String,
    /// Seconds to wait for the relay before a send counts as a transient failure.
    pub timeout_secs: u64,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MailCatcherSettings {
    /// Where the local mail catcher listens (only when no SMTP host is configured).
    pub listen: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Jobs one worker process runs at once.
    pub concurrency: usize,
    /// How often an idle worker looks for due jobs, in milliseconds.
    pub poll_interval_ms: u64,
    /// How long a handler may run before it counts as hung, in seconds.
    pub job_timeout_secs: u64,
    /// How long a claimed job stays leased to its worker, in seconds; after that another worker
    /// may take it (a worker killed mid-job loses its lease). Must exceed the job timeout.
    pub lease_secs: u64,
    /// On SIGTERM, how long in-flight jobs may take to finish before the worker stops.
    pub shutdown_grace_secs: u64,
}

/// Defaults: everything embedded, nothing to run beside the portal.
#[derive(Serialize)]
struct Defaults {
    public_url: &'static str,
    listen: &'static str,
    data_dir: &'static str,
    database_max_connections: u32,
    log_format: &'static str,
    log_level: &'static str,
    site_root: &'static str,
    demo: bool,
    trusted_proxies: &'static str,
    business: BusinessSettings,
    privacy_notice_version: &'static str,
    smtp: SmtpDefaults,
    mail_catcher: MailCatcherSettings,
    worker: WorkerSettings,
    stripe: StripeDefaults,
    crm: CrmDefaults,
    retention: RetentionSettings,
    storage: StorageDefaults,
    limits: LimitSettings,
}

#[derive(Serialize)]
struct CrmDefaults {
    provider: &'static str,
    standin_listen: &'static str,
    fields: &'static str,
    id_property: &'static str,
    timeout_secs: u64,
    max_requests_per_10s: u32,
}

#[derive(Serialize)]
struct StorageDefaults {
    max_upload_mb: u64,
    allowed_types: &'static str,
    presign_secs: u64,
}

#[derive(Serialize)]
struct StripeDefaults {
    standin_listen: &'static str,
    timeout_secs: u64,
    webhook_tolerance_secs: u64,
    reconcile_every_minutes: u64,
    fallback: &'static str,
}

#[derive(Serialize)]
struct SmtpDefaults {
    tls: &'static str,
    from: &'static str,
    timeout_secs: u64,
}

fn defaults() -> Defaults {
    Defaults {
        public_url: "http://127.0.0.1:3000",
        listen: "127.0.0.1:3000",
        data_dir: "data",
        database_max_connections: 10,
        log_format: "human",
        log_level: "info",
        site_root: "target/site",
        demo: false,
        trusted_proxies: "",
        business: BusinessSettings {
            name: "Stoep Demo Studio".into(),
            primary_colour: "#1f5f8b".into(),
            logo_url: None,
        },
        privacy_notice_version: "2026-11-28",
        smtp: SmtpDefaults {
            tls: "starttls",
            from: "Stoep <noreply@stoep.localhost>",
            timeout_secs: 15,
        },
        mail_catcher: MailCatcherSettings {
            listen: "127.0.0.1:2525".into(),
        },
        worker: WorkerSettings {
            concurrency: 8,
            poll_interval_ms: 250,
            job_timeout_secs: 60,
            lease_secs: 300,
            shutdown_grace_secs: 20,
        },
        stripe: StripeDefaults {
            standin_listen: "127.0.0.1:2526",
            timeout_secs: 10,
            webhook_tolerance_secs: 300,
            reconcile_every_minutes: 10,
            fallback: "hold",
        },
        crm: CrmDefaults {
            provider: "hubspot",
            standin_listen: "127.0.0.1:2527",
            fields: "name,email,phone,company,marketing_consent,portal_status,last_booking,next_booking,total_deposits",
            id_property: "stoep_customer_id",
            timeout_secs: 10,
            max_requests_per_10s: 90,
        },
        retention: RetentionSettings {
            expired_holds_days: 30,
            unverified_accounts_days: 14,
            integration_payloads_days: 30,
        },
        storage: StorageDefaults {
            max_upload_mb: 20,
            allowed_types: "pdf,jpeg,png,heic,docx,xlsx",
            presign_secs: 300,
        },
        limits: LimitSettings {
            uploads_per_hour: 60,
            holds_per_hour: 30,
            webhooks_per_minute: 600,
        },
    }
}

/// A configuration problem, named by setting.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {setting}: {problem}")]
pub struct ConfigError {
    pub setting: String,
    pub problem: String,
}

fn err(setting: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.into(),
        problem: problem.into(),
    }
}

/// Environment variables with the prefix that are not settings: `STOEP_CONFIG` (read above) and
/// `STOEP_CACHE_DIR` (the scripts' build cache). `STOEP_TEST_*` belong to the tests.
const NOT_SETTINGS: [&str; 2] = ["config", "cache_dir"];

impl Settings {
    /// Loads from the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(std::env::vars().collect())
    }

    /// Loads from the given environment (tests pass their own).
    pub fn load_from(env: Vec<(String, String)>) -> Result<Self, ConfigError> {
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let mut fig = Figment::from(Serialized::defaults(defaults()));
        match get("STOEP_CONFIG") {
            Some(path) => {
                if !Path::new(&path).exists() {
                    return Err(err("STOEP_CONFIG", format!("no file at {path}")));
                }
                fig = fig.merge(Toml::file(path));
            }
            None => fig = fig.merge(Toml::file("stoep.toml")),
        }
        // Variables as figment sees them: STOEP_ stripped, lower-cased, `__` nesting.
        let mut plain: Vec<(String, String)> = Vec::new();
        let mut from_files: Vec<(String, String)> = Vec::new();
        for (name, value) in &env {
            let Some(key) = name.strip_prefix("STOEP_") else {
                continue;
            };
            let key = key.to_lowercase();
            if NOT_SETTINGS.contains(&key.as_str()) || key.starts_with("test_") {
                continue;
            }
            if let Some(secret_key) = key.strip_suffix("_file") {
                let content = std::fs::read_to_string(value)
                    .map_err(|e| err(name, format!("cannot read {value}: {e}")))?;
                from_files.push((
                    secret_key.to_owned(),
                    content.trim_end_matches(['\r', '\n']).to_owned(),
                ));
            } else {
                plain.push((key, value.clone()));
            }
        }
        for (k, v) in plain.into_iter().chain(from_files) {
            let path = k.replace("__", ".");
            fig = fig.merge(Figment::from(Serialized::global(
                &path,
                figment::value::Value::from(parse_env_value(&v)),
            )));
        }
        let settings: Settings = fig.extract().map_err(|e| {
            let key = e.path.join(".");
            let setting = if key.is_empty() {
                "settings".to_owned()
            } else {
                format!("{key} (STOEP_{})", key.to_uppercase().replace('.', "__"))
            };
            err(&setting, e.kind.to_string())
        })?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let url = url::Url::parse(&self.public_url).map_err(|e| {
            err(
                "public_url (STOEP_PUBLIC_URL)",
                format!("not an absolute URL: {e}"),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(err(
                "public_url (STOEP_PUBLIC_URL)",
                "must start with http:// or https://",
            ));
        }
        self.listen_addr()?;
        if !matches!(self.log_format.as_str(), "human" | "json") {
            return Err(err(
                "log_format (STOEP_LOG_FORMAT)",
                format!("must be human or json, not {:?}", self.log_format),
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .map_err(|e| err("log_level (STOEP_LOG_LEVEL)", e.to_string()))?;
        let db = self.database_url();
        let scheme = db
            .expose_secret()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        if !matches!(scheme.as_str(), "sqlite" | "postgres" | "postgresql") {
            return Err(err(
                "database_url (STOEP_DATABASE_URL)",
                "must start with sqlite:// or postgres://",
            ));
        }
        if self.database_max_connections == 0 {
            return Err(err(
                "database_max_connections (STOEP_DATABASE_MAX_CONNECTIONS)",
                "must be at least 1",
            ));
        }
        if !(self.business.primary_colour.len() == 7
            && self.business.primary_colour.starts_with('#')
            && self.business.primary_colour[1..]
                .chars()
                .all(|c| c.is_ascii_hexdigit()))
        {
            return Err(err(
                "business.primary_colour (STOEP_BUSINESS__PRIMARY_COLOUR)",
                "must be a colour like #1f5f8b",
            ));
        }
        if self.business.name.trim().is_empty() {
            return Err(err(
                "business.name (STOEP_BUSINESS__NAME)",
                "must not be empty",
            ));
        }
        self.smtp
            .from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| {
                err(
                    "smtp.from (STOEP_SMTP__FROM)",
                    format!("not an email address: {e}"),
                )
            })?;
        if !matches!(self.smtp.tls.as_str(), "starttls" | "tls" | "none") {
            return Err(err(
                "smtp.tls (STOEP_SMTP__TLS)",
                "must be starttls, tls or none",
            ));
        }
        if self.smtp.host.is_none()
            && (self.smtp.username.is_some() || self.smtp.password.is_some())
        {
            return Err(err(
                "smtp.host (STOEP_SMTP__HOST)",
                "SMTP credentials are set but no host: set the relay's host, or remove the credentials",
            ));
        }
        if self.smtp.host.is_none() {
            self.mail_catcher
                .listen
                .parse::<SocketAddr>()
                .map_err(|e| {
                    err(
                        "mail_catcher.listen (STOEP_MAIL_CATCHER__LISTEN)",
                        e.to_string(),
                    )
                })?;
        }
        self.validate_stripe()?;
        self.validate_crm()?;
        self.validate_storage()?;
        self.trusted_proxy_ips()?;
        self.privacy_notice()?;
        if self.worker.concurrency == 0 {
            return Err(err(
                "worker.concurrency (STOEP_WORKER__CONCURRENCY)",
                "must be at least 1",
            ));
        }
        if self.worker.lease_secs <= self.worker.job_timeout_secs {
            return Err(err(
                "worker.lease_secs (STOEP_WORKER__LEASE_SECS)",
                "must be longer than worker.job_timeout_secs",
            ));
        }
        Ok(())
    }

    fn validate_stripe(&self) -> Result<(), ConfigError> {
        let s = &self.stripe;
        match &s.secret_key {
            None => {
                if s.api_base.is_some() {
                    return Err(err(
                        "stripe.api_base (STOEP_STRIPE__API_BASE)",
                        "is set but stripe.secret_key is not: set the key too, or remove the address to use the local stand-in",
                    ));
                }
                if s.webhook_secrets.is_some() {
                    return Err(err(
                        "stripe.webhook_secrets (STOEP_STRIPE__WEBHOOK_SECRETS)",
                        "is set but stripe.secret_key is not: set the key too, or remove the secrets to use the local stand-in",
                    ));
                }
                let addr: SocketAddr = s.standin_listen.parse().map_err(|e| {
                    err(
                        "stripe.standin_listen (STOEP_STRIPE__STANDIN_LISTEN)",
                        format!("{e}"),
                    )
                })?;
                if !addr.ip().is_loopback() {
                    return Err(err(
                        "stripe.standin_listen (STOEP_STRIPE__STANDIN_LISTEN)",
                        "the stand-in only listens on a loopback address (127.0.0.1)",
                    ));
                }
            }
            Some(key) => {
                let key = key.expose_secret();
                if !(key.starts_with("sk_") || key.starts_with("rk_")) || key.trim() != key {
                    return Err(err(
                        "stripe.secret_key (STOEP_STRIPE__SECRET_KEY)",
                        "must be a Stripe secret key (sk_test_..., sk_live_... or rk_...)",
                    ));
                }
                if key == STANDIN_SECRET_KEY {
                    return Err(err(
                        "stripe.secret_key (STOEP_STRIPE__SECRET_KEY)",
                        "is the local stand-in's key; remove it to use the stand-in",
                    ));
                }
                if self.stripe_webhook_secrets().is_empty() {
                    return Err(err(
                        "stripe.webhook_secrets (STOEP_STRIPE__WEBHOOK_SECRETS)",
                        "is required with a Stripe key: the endpoint's signing secret (whsec_...) from the Stripe dashboard",
                    ));
                }
                if key.starts_with("sk_live_") && !self.https() {
                    return Err(err(
                        "stripe.secret_key (STOEP_STRIPE__SECRET_KEY)",
                        "a live key needs an https public_url",
                    ));
                }
                if let Some(base) = &s.api_base {
                    url::Url::parse(base).map_err(|e| {
                        err("stripe.api_base (STOEP_STRIPE__API_BASE)", e.to_string())
                    })?;
                }
            }
        }
        if !matches!(s.fallback.as_str(), "hold" | "pay_at_visit") {
            return Err(err(
                "stripe.fallback (STOEP_STRIPE__FALLBACK)",
                format!("must be hold or pay_at_visit, not {:?}", s.fallback),
            ));
        }
        if s.timeout_secs == 0 || s.reconcile_every_minutes == 0 {
            return Err(err(
                "stripe.timeout_secs / stripe.reconcile_every_minutes",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    fn validate_crm(&self) -> Result<(), ConfigError> {
        let c = &self.crm;
        for f in c.fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            if !app::ssr::crm::PORTAL_FIELDS.contains(&f) {
                return Err(err(
                    "crm.fields (STOEP_CRM__FIELDS)",
                    format!(
                        "{f:?} is not a portal field; choose from {}",
                        app::ssr::crm::PORTAL_FIELDS.join(", ")
                    ),
                ));
            }
        }
        if c.id_property.trim().is_empty() {
            return Err(err(
                "crm.id_property (STOEP_CRM__ID_PROPERTY)",
                "must not be empty",
            ));
        }
        if c.timeout_secs == 0 || c.max_requests_per_10s == 0 {
            return Err(err(
                "crm.timeout_secs / crm.max_requests_per_10s",
                "must be at least 1",
            ));
        }
        let url_ok = |u: &str| {
            url::Url::parse(u)
                .map(|u| matches!(u.scheme(), "http" | "https"))
                .unwrap_or(false)
        };
        match c.provider.as_str() {
            "none" => {}
            "hubspot" => match &c.hubspot_token {
                None => {
                    if c.hubspot_api_base.is_some() || c.hubspot_client_secret.is_some() {
                        return Err(err(
                            "crm.hubspot_token (STOEP_CRM__HUBSPOT_TOKEN)",
                            "HubSpot settings are set but no token: set the token too, or remove them to use the local stand-in",
                        ));
                    }
                    let addr: SocketAddr = c.standin_listen.parse().map_err(|e| {
                        err(
                            "crm.standin_listen (STOEP_CRM__STANDIN_LISTEN)",
                            format!("{e}"),
                        )
                    })?;
                    if !addr.ip().is_loopback() {
                        return Err(err(
                            "crm.standin_listen (STOEP_CRM__STANDIN_LISTEN)",
                            "the stand-in only listens on a loopback address (127.0.0.1)",
                        ));
                    }
                }
                Some(t) => {
                    if t.expose_secret() == CRM_STANDIN_TOKEN {
                        return Err(err(
                            "crm.hubspot_token (STOEP_CRM__HUBSPOT_TOKEN)",
                            "is the local stand-in's token; remove it to use the stand-in",
                        ));
                    }
                    if c.hubspot_client_secret.is_none() {
                        return Err(err(
                            "crm.hubspot_client_secret (STOEP_CRM__HUBSPOT_CLIENT_SECRET)",
                            "is required with a HubSpot token: it verifies HubSpot's webhooks (the app's client secret)",
                        ));
                    }
                    if let Some(b) = &c.hubspot_api_base
                        && !url_ok(b)
                    {
                        return Err(err(
                            "crm.hubspot_api_base (STOEP_CRM__HUBSPOT_API_BASE)",
                            "must be an http(s) URL",
                        ));
                    }
                }
            },
            "webhook" => {
                if !c.webhook_url.as_deref().is_some_and(url_ok) {
                    return Err(err(
                        "crm.webhook_url (STOEP_CRM__WEBHOOK_URL)",
                        "is required for the webhook connector: an http(s) URL",
                    ));
                }
                if c.webhook_secret.is_none() {
                    return Err(err(
                        "crm.webhook_secret (STOEP_CRM__WEBHOOK_SECRET)",
                        "is required for the webhook connector: it signs each request",
                    ));
                }
            }
            other => {
                return Err(err(
                    "crm.provider (STOEP_CRM__PROVIDER)",
                    format!("must be hubspot, webhook or none, not {other:?}"),
                ));
            }
        }
        Ok(())
    }

    fn validate_storage(&self) -> Result<(), ConfigError> {
        let s = &self.storage;
        if let Some(u) = &s.url {
            let url = url::Url::parse(u).map_err(|e| {
                err(
                    "storage.url (STOEP_STORAGE__URL)",
                    format!("not a URL: {e}"),
                )
            })?;
            object_store::ObjectStoreScheme::parse(&url).map_err(|_| {
                err(
                    "storage.url (STOEP_STORAGE__URL)",
                    "use file:///path, s3://bucket, gs://bucket or az://container",
                )
            })?;
            if url.scheme() == "file" && url.to_file_path().is_err() {
                return Err(err(
                    "storage.url (STOEP_STORAGE__URL)",
                    "a file URL needs an absolute path, like file:///srv/stoep/documents",
                ));
            }
        }
        if !(1..=2048).contains(&s.max_upload_mb) {
            return Err(err(
                "storage.max_upload_mb (STOEP_STORAGE__MAX_UPLOAD_MB)",
                "must be between 1 and 2048",
            ));
        }
        self.allowed_document_kinds()?;
        if s.presign_secs > 604_800 {
            return Err(err(
                "storage.presign_secs (STOEP_STORAGE__PRESIGN_SECS)",
                "must be at most 604800 (7 days, the longest a presigned S3 URL can live)",
            ));
        }
        Ok(())
    }

    /// True when the local CRM stand-in serves the HubSpot connector.
    pub fn crm_standin_active(&self) -> bool {
        self.crm.provider == "hubspot" && self.crm.hubspot_token.is_none()
    }

    /// Every configured secret that belongs to an integration: (setting name, integration, value).
    pub fn integration_secrets(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        let mut add = |name: &str, integration: &str, v: &Option<SecretString>| {
            if let Some(v) = v {
                out.push((
                    name.to_owned(),
                    integration.to_owned(),
                    v.expose_secret().to_owned(),
                ));
            }
        };
        add(
            "stripe.secret_key (STOEP_STRIPE__SECRET_KEY)",
            "payments",
            &self.stripe.secret_key,
        );
        add(
            "stripe.webhook_secrets (STOEP_STRIPE__WEBHOOK_SECRETS)",
            "payments",
            &self.stripe.webhook_secrets,
        );
        add(
            "crm.hubspot_token (STOEP_CRM__HUBSPOT_TOKEN)",
            "crm",
            &self.crm.hubspot_token,
        );
        add(
            "crm.hubspot_client_secret (STOEP_CRM__HUBSPOT_CLIENT_SECRET)",
            "crm",
            &self.crm.hubspot_client_secret,
        );
        add(
            "crm.webhook_secret (STOEP_CRM__WEBHOOK_SECRET)",
            "crm",
            &self.crm.webhook_secret,
        );
        add(
            "smtp.password (STOEP_SMTP__PASSWORD)",
            "email",
            &self.smtp.password,
        );
        out
    }

    /// The fields configured to move to the CRM.
    pub fn crm_fields(&self) -> Vec<String> {
        self.crm
            .fields
            .split(',')
            .map(|f| f.trim().to_owned())
            .filter(|f| !f.is_empty())
            .collect()
    }

    /// The document types uploads may have, from `storage.allowed_types`.
    pub fn allowed_document_kinds(&self) -> Result<Vec<app::ssr::documents::Kind>, ConfigError> {
        let mut kinds = Vec::new();
        for name in self
            .storage
            .allowed_types
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let kind = app::ssr::documents::Kind::parse(name).ok_or_else(|| {
                err(
                    "storage.allowed_types (STOEP_STORAGE__ALLOWED_TYPES)",
                    format!("{name:?} is not one of pdf, jpeg, png, heic, docx, xlsx"),
                )
            })?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        if kinds.is_empty() {
            return Err(err(
                "storage.allowed_types (STOEP_STORAGE__ALLOWED_TYPES)",
                "name at least one type",
            ));
        }
        Ok(kinds)
    }

    /// The storage URL, defaulting to the `documents` folder in the data folder.
    pub fn storage_url(&self) -> String {
        match &self.storage.url {
            Some(u) => u.clone(),
            None => {
                let dir = self.data_dir.join("documents");
                let abs = std::path::absolute(&dir).unwrap_or(dir);
                url::Url::from_directory_path(&abs)
                    .map(|u| u.to_string())
                    .unwrap_or_else(|_| format!("file://{}", abs.display()))
            }
        }
    }

    /// True when the local Stripe stand-in serves payments (no real key configured).
    pub fn stripe_standin_active(&self) -> bool {
        self.stripe.secret_key.is_none()
    }

    /// The webhook signing secrets in force.
    pub fn stripe_webhook_secrets(&self) -> Vec<String> {
        match &self.stripe.webhook_secrets {
            Some(s) => s
                .expose_secret()
                .split(',')
                .map(|x| x.trim().to_owned())
                .filter(|x| !x.is_empty())
                .collect(),
            None if self.stripe_standin_active() => vec![STANDIN_WEBHOOK_SECRET.to_owned()],
            None => Vec::new(),
        }
    }

    /// The key, the API address, and whether it is the stand-in.
    pub fn stripe_client_settings(&self) -> (String, String, bool) {
        match &self.stripe.secret_key {
            Some(k) => (
                k.expose_secret().to_owned(),
                self.stripe
                    .api_base
                    .clone()
                    .unwrap_or_else(|| "https://api.stripe.com/".into()),
                false,
            ),
            None => (
                STANDIN_SECRET_KEY.to_owned(),
                format!("http://{}", self.stripe.standin_listen),
                true,
            ),
        }
    }

    /// The configured privacy notice in paragraphs, or `None` for the template.
    pub fn privacy_notice(&self) -> Result<Option<Vec<String>>, ConfigError> {
        let Some(path) = &self.privacy_notice_path else {
            return Ok(None);
        };
        let problem = |p: String| ConfigError {
            setting: "privacy_notice_path (STOEP_PRIVACY_NOTICE_PATH)".into(),
            problem: p,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| problem(format!("cannot read {}: {e}", path.display())))?
            .replace("\r\n", "\n");
        let paragraphs: Vec<String> = text
            .split("\n\n")
            .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|p| !p.is_empty())
            .collect();
        if paragraphs.is_empty() {
            return Err(problem(format!("{} is empty", path.display())));
        }
        Ok(Some(paragraphs))
    }

    pub fn trusted_proxy_ips(&self) -> Result<Vec<std::net::IpAddr>, ConfigError> {
        self.trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse().map_err(|_| {
                    err(
                        "trusted_proxies (STOEP_TRUSTED_PROXIES)",
                        format!("{s:?} is not an IP address"),
                    )
                })
            })
            .collect()
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|e| {
            err(
                "listen (STOEP_LISTEN)",
                format!("not an address like 127.0.0.1:3000: {e}"),
            )
        })
    }

    /// The database URL, defaulting to a SQLite file in the data folder.
    pub fn database_url(&self) -> SecretString {
        match &self.database_url {
            Some(u) => u.clone(),
            None => SecretString::from(format!(
                "sqlite://{}/stoep.db?mode=rwc",
                self.data_dir.display()
            )),
        }
    }

    /// Whether the local SMTP stand-in is in use (no relay configured).
    pub fn mail_catcher_active(&self) -> bool {
        self.smtp.host.is_none()
    }

    pub fn https(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    pub fn public_url_trimmed(&self) -> String {
        self.public_url.trim_end_matches('/').to_owned()
    }
}

/// Environment values are strings; numbers and booleans are recognised so `STOEP_DEMO=true` and
/// `STOEP_SMTP__PORT=587` reach typed settings.
fn parse_env_value(v: &str) -> figment::value::Value {
    use figment::value::Value;
    if let Ok(b) = v.parse::<bool>() {
        return Value::from(b);
    }
    if let Ok(n) = v.parse::<u64>() {
        return Value::from(n);
    }
    Value::from(v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, val)| (k.to_string(), val.to_string()))
            .collect();
        v.push(("STOEP_CONFIG".into(), "/dev/null".into()));
        v
    }

    #[test]
    fn defaults_need_nothing() {
        let s = Settings::load_from(env(&[])).unwrap();
        assert_eq!(s.listen, "127.0.0.1:3000");
        assert!(s.mail_catcher_active());
        assert!(s.database_url().expose_secret().starts_with("sqlite://"));
    }

    #[test]
    fn environment_overrides_nested_settings_with_types() {
        let s = Settings::load_from(env(&[
            ("STOEP_SMTP__HOST", "smtp.example.com"),
            ("STOEP_SMTP__PORT", "587"),
            ("STOEP_DEMO", "true"),
        ]))
        .unwrap();
        assert_eq!(s.smtp.host.as_deref(), Some("smtp.example.com"));
        assert_eq!(s.smtp.port, Some(587));
        assert!(s.demo);
        assert!(!s.mail_catcher_active());
    }

    #[test]
    fn errors_name_the_setting() {
        let e = Settings::load_from(env(&[("STOEP_PUBLIC_URL", "portal")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("STOEP_PUBLIC_URL"), "{e}");
        let e = Settings::load_from(env(&[("STOEP_WORKER__CONCURRENCY", "lots")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("worker.concurrency"), "{e}");
        let e = Settings::load_from(env(&[("STOEP_NO_SUCH_THING", "1")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no_such_thing"), "{e}");
        let e = Settings::load_from(env(&[("STOEP_DATABASE_URL", "mysql://x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("STOEP_DATABASE_URL"), "{e}");
    }

    #[test]
    fn secrets_come_from_files_and_never_print() {
        let dir = std::env::temp_dir().join(format!("stoep-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "hunter2-very-secret\n").unwrap();
        let s = Settings::load_from(env(&[
            ("STOEP_SMTP__HOST", "smtp.example.com"),
            ("STOEP_SMTP__PASSWORD_FILE", f.to_str().unwrap()),
        ]))
        .unwrap();
        assert_eq!(
            s.smtp.password.as_ref().unwrap().expose_secret(),
            "hunter2-very-secret"
        );
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn storage_defaults_to_a_folder_and_takes_options_from_the_environment() {
        let s = Settings::load_from(env(&[("STOEP_DATA_DIR", "/srv/stoep")])).unwrap();
        assert_eq!(s.storage_url(), "file:///srv/stoep/documents/");
        assert_eq!(s.storage.max_upload_mb, 20);
        assert_eq!(s.allowed_document_kinds().unwrap().len(), 6);
        let s = Settings::load_from(env(&[
            ("STOEP_STORAGE__URL", "s3://bucket/prefix"),
            (
                "STOEP_STORAGE__OPTIONS__AWS_ENDPOINT",
                "http://127.0.0.1:9100",
            ),
            ("STOEP_STORAGE__OPTIONS__AWS_ALLOW_HTTP", "true"),
            (
                "STOEP_STORAGE__OPTIONS__AWS_SECRET_ACCESS_KEY",
                "very-secret-key",
            ),
            ("STOEP_STORAGE__ALLOWED_TYPES", "pdf, jpg"),
        ]))
        .unwrap();
        assert_eq!(s.storage.options["aws_allow_http"].expose_secret(), "true");
        assert_eq!(s.allowed_document_kinds().unwrap().len(), 2);
        assert!(!format!("{s:?}").contains("very-secret-key"));
        for (k, v) in [
            ("STOEP_STORAGE__URL", "ftp://example.com/x"),
            ("STOEP_STORAGE__ALLOWED_TYPES", "pdf,html"),
            ("STOEP_STORAGE__MAX_UPLOAD_MB", "0"),
        ] {
            let e = Settings::load_from(env(&[(k, v)])).unwrap_err().to_string();
            assert!(e.contains(k), "{e}");
        }
    }
}
