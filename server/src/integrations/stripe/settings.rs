//! The `stripe.*` settings: keys, webhook secrets, timeouts, reconciliation and the fallback.

use std::net::SocketAddr;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::config::error::{ConfigError, err};

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

/// The embedded stand-in's key and signing secret (loopback only, no real money; a real key can
/// never reach it, see `validate_stripe`).
pub use standins::stripe::{
    API_KEY as STANDIN_SECRET_KEY, WEBHOOK_SECRET as STANDIN_WEBHOOK_SECRET,
};

#[derive(Serialize)]
pub(crate) struct StripeDefaults {
    pub(crate) standin_listen: &'static str,
    pub(crate) timeout_secs: u64,
    pub(crate) webhook_tolerance_secs: u64,
    pub(crate) reconcile_every_minutes: u64,
    pub(crate) fallback: &'static str,
}

impl StripeSettings {
    pub(crate) fn validate(&self, https: bool) -> Result<(), ConfigError> {
        let s = self;
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
                if self.webhook_secret_list().is_empty() {
                    return Err(err(
                        "stripe.webhook_secrets (STOEP_STRIPE__WEBHOOK_SECRETS)",
                        "is required with a Stripe key: the endpoint's signing secret (whsec_...) from the Stripe dashboard",
                    ));
                }
                if key.starts_with("sk_live_") && !https {
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

    /// True when the local Stripe stand-in serves payments (no real key configured).
    pub fn standin_active(&self) -> bool {
        self.secret_key.is_none()
    }

    /// The webhook signing secrets in force.
    pub fn webhook_secret_list(&self) -> Vec<String> {
        match &self.webhook_secrets {
            Some(s) => s
                .expose_secret()
                .split(',')
                .map(|x| x.trim().to_owned())
                .filter(|x| !x.is_empty())
                .collect(),
            None if self.standin_active() => vec![STANDIN_WEBHOOK_SECRET.to_owned()],
            None => Vec::new(),
        }
    }

    /// The key, the API address, and whether it is the stand-in.
    pub fn client_settings(&self) -> (String, String, bool) {
        match &self.secret_key {
            Some(k) => (
                k.expose_secret().to_owned(),
                self.api_base
                    .clone()
                    .unwrap_or_else(|| "https://api.stripe.com/".into()),
                false,
            ),
            None => (
                STANDIN_SECRET_KEY.to_owned(),
                format!("http://{}", self.standin_listen),
                true,
            ),
        }
    }
}
