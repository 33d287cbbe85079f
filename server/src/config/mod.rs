//! Configuration in layers: built-in defaults, then an optional TOML file (`STOEP_CONFIG`, or
//! `stoep.toml` in the working directory when present), then `STOEP_`-prefixed environment
//! variables (`__` separates nested keys: `STOEP_SMTP__HOST`), then secrets read from files
//! (`STOEP_SMTP__PASSWORD_FILE=/run/secrets/smtp`). Validated once at start; every error names
//! the setting and what is wrong. Every setting is documented in README.md.
//!
//! This module holds the loader and the portal's own sections; each integration's section (its
//! struct, defaults and checks) lives in its folder: `integrations::<name>::settings`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub mod error;

pub use error::ConfigError;
use error::err;

use crate::integrations::crm::settings::CrmDefaults;
pub use crate::integrations::crm::settings::{
    CRM_STANDIN_CLIENT_SECRET, CRM_STANDIN_TOKEN, CrmSettings,
};
use crate::integrations::smtp::settings::SmtpDefaults;
pub use crate::integrations::smtp::settings::{MailCatcherSettings, SmtpSettings};
use crate::integrations::storage::settings::StorageDefaults;
pub use crate::integrations::storage::settings::StorageSettings;
use crate::integrations::stripe::settings::StripeDefaults;
pub use crate::integrations::stripe::settings::{
    STANDIN_SECRET_KEY, STANDIN_WEBHOOK_SECRET, StripeSettings,
};

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

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessSettings {
    pub name: String,
    pub primary_colour: String,
    pub logo_url: Option<String>,
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
                parse_env_value(&v),
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
        self.smtp.validate(&self.mail_catcher)?;
        self.stripe.validate(self.https())?;
        self.crm.validate()?;
        self.storage.validate()?;
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

    /// True when the local mail catcher receives the portal's mail (no relay configured).
    pub fn mail_catcher_active(&self) -> bool {
        self.smtp.catcher_active()
    }

    /// True when the local Stripe stand-in serves payments (no real key configured).
    pub fn stripe_standin_active(&self) -> bool {
        self.stripe.standin_active()
    }

    /// The Stripe webhook signing secrets in force.
    pub fn stripe_webhook_secrets(&self) -> Vec<String> {
        self.stripe.webhook_secret_list()
    }

    /// Stripe's key, its API address, and whether it is the stand-in.
    pub fn stripe_client_settings(&self) -> (String, String, bool) {
        self.stripe.client_settings()
    }

    /// True when the local HubSpot stand-in serves the CRM (HubSpot without a token).
    pub fn crm_standin_active(&self) -> bool {
        self.crm.standin_active()
    }

    /// The portal fields that move to the CRM.
    pub fn crm_fields(&self) -> Vec<String> {
        self.crm.field_list()
    }

    /// The document types accepted.
    pub fn allowed_document_kinds(&self) -> Result<Vec<domain::documents::Kind>, ConfigError> {
        self.storage.allowed_kinds()
    }

    /// Where documents are stored (the local folder under the data folder by default).
    pub fn storage_url(&self) -> String {
        self.storage.url(&self.data_dir)
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
