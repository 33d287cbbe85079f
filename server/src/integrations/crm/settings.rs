//! The `crm.*` settings: the provider, HubSpot's token and client secret, the generic webhook,
//! which fields move, and the connector's own limits.

use std::net::SocketAddr;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::config::error::{ConfigError, err};

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

/// The embedded HubSpot stand-in's token and webhook signing secret (loopback only, no real data).
pub use standins::hubspot::{
    CLIENT_SECRET as CRM_STANDIN_CLIENT_SECRET, TOKEN as CRM_STANDIN_TOKEN,
};

#[derive(Serialize)]
pub(crate) struct CrmDefaults {
    pub(crate) provider: &'static str,
    pub(crate) standin_listen: &'static str,
    pub(crate) fields: &'static str,
    pub(crate) id_property: &'static str,
    pub(crate) timeout_secs: u64,
    pub(crate) max_requests_per_10s: u32,
}

impl CrmSettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let c = self;
        for f in c.fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            if !domain::crm::PORTAL_FIELDS.contains(&f) {
                return Err(err(
                    "crm.fields (STOEP_CRM__FIELDS)",
                    format!(
                        "{f:?} is not a portal field; choose from {}",
                        domain::crm::PORTAL_FIELDS.join(", ")
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

    /// True when the local CRM stand-in serves the HubSpot connector.
    pub fn standin_active(&self) -> bool {
        self.provider == "hubspot" && self.hubspot_token.is_none()
    }

    /// The fields configured to move to the CRM.
    pub fn field_list(&self) -> Vec<String> {
        self.fields
            .split(',')
            .map(|f| f.trim().to_owned())
            .filter(|f| !f.is_empty())
            .collect()
    }
}
