//! The `smtp.*` and `mail_catcher.*` settings: the relay, TLS, credentials, the From address.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use std::net::SocketAddr;

use crate::config::error::{ConfigError, err};

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

#[derive(Serialize)]
pub(crate) struct SmtpDefaults {
    pub(crate) tls: &'static str,
    pub(crate) from: &'static str,
    pub(crate) timeout_secs: u64,
}

impl SmtpSettings {
    /// Whether the local SMTP stand-in is in use (no relay configured).
    pub fn catcher_active(&self) -> bool {
        self.host.is_none()
    }

    pub(crate) fn validate(&self, catcher: &MailCatcherSettings) -> Result<(), ConfigError> {
        self.from.parse::<lettre::message::Mailbox>().map_err(|e| {
            err(
                "smtp.from (STOEP_SMTP__FROM)",
                format!("not an email address: {e}"),
            )
        })?;
        if !matches!(self.tls.as_str(), "starttls" | "tls" | "none") {
            return Err(err(
                "smtp.tls (STOEP_SMTP__TLS)",
                "must be starttls, tls or none",
            ));
        }
        if self.host.is_none() && (self.username.is_some() || self.password.is_some()) {
            return Err(err(
                "smtp.host (STOEP_SMTP__HOST)",
                "SMTP credentials are set but no host: set the relay's host, or remove the credentials",
            ));
        }
        if self.host.is_none() {
            catcher.listen.parse::<SocketAddr>().map_err(|e| {
                err(
                    "mail_catcher.listen (STOEP_MAIL_CATCHER__LISTEN)",
                    e.to_string(),
                )
            })?;
        }
        Ok(())
    }
}
