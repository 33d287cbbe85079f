//! The CRM integration: HubSpot's CRM v3 API ([`hubspot`]) or a generic signed JSON webhook
//! ([`signed_webhook`]), both implementing the domain's CRM port, HubSpot's signed change
//! notifications ([`inbound`]), and the `crm.*` settings ([`settings`]). What moves and when is
//! the domain's (`domain::crm`); the push and erase jobs are in `crate::jobs::crm`.

pub mod hubspot;
pub mod inbound;
pub mod settings;
pub mod signed_webhook;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::ports::crm::{CrmConnector, CrmError, NoCrm};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::config::Settings;

/// The connector the settings ask for. `token` and `base` are the HubSpot API's; the binary
/// passes the local stand-in's when no HubSpot token is configured.
pub fn connector(
    settings: &Settings,
    hubspot: Option<(String, String)>,
) -> anyhow::Result<Arc<dyn CrmConnector>> {
    use secrecy::ExposeSecret;
    let c = &settings.crm;
    let timeout = Duration::from_secs(c.timeout_secs);
    Ok(match c.provider.as_str() {
        "hubspot" => {
            let (base, token) = hubspot.unwrap_or_else(|| {
                (
                    c.hubspot_api_base
                        .clone()
                        .unwrap_or_else(|| "https://api.hubapi.com".into()),
                    c.hubspot_token
                        .as_ref()
                        .map(|t| t.expose_secret().to_owned())
                        .unwrap_or_default(),
                )
            });
            let hubspot = hubspot::HubSpot::new(
                &base,
                &token,
                &c.id_property,
                timeout,
                c.max_requests_per_10s,
            )
            .map_err(|e| anyhow::anyhow!("cannot set up the HubSpot client: {e}"))?;
            Arc::new(hubspot)
        }
        "webhook" => {
            let hook = signed_webhook::SignedWebhook::new(
                c.webhook_url.as_deref().unwrap_or_default(),
                c.webhook_secret
                    .as_ref()
                    .map(|s| s.expose_secret().to_owned())
                    .unwrap_or_default()
                    .as_str(),
                timeout,
            )
            .map_err(|e| anyhow::anyhow!("cannot set up the CRM webhook client: {e}"))?;
            Arc::new(hook)
        }
        _ => Arc::new(NoCrm),
    })
}

/// A client-side limit on requests per rolling 10 seconds, so bursts stay under HubSpot's limit
/// without relying on 429s.
pub struct RollingLimit {
    max: usize,
    sent: Mutex<VecDeque<Instant>>,
}

impl RollingLimit {
    pub fn new(max: u32) -> Self {
        Self {
            max: max.max(1) as usize,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits until one more request fits in the window, and counts it.
    pub async fn acquire(&self) {
        let window = Duration::from_secs(10);
        loop {
            let wait = {
                let mut sent = self.sent.lock().await;
                let now = Instant::now();
                while sent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= window)
                {
                    sent.pop_front();
                }
                if sent.len() < self.max {
                    sent.push_back(now);
                    return;
                }
                window - now.duration_since(*sent.front().expect("non-empty"))
            };
            tokio::time::sleep(wait + Duration::from_millis(5)).await;
        }
    }
}

pub(crate) fn classify_http(
    status: u16,
    retry_after: Option<u64>,
    body: &str,
    only: Option<i64>,
) -> CrmError {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(300).collect());
    let message = format!("the CRM answered {status}: {message}");
    match status {
        429 => CrmError::RateLimited {
            message,
            retry_after_secs: retry_after,
        },
        401 | 403 => CrmError::Permanent(format!(
            "{message} (check the token and its scopes: crm.objects.contacts.read and .write)"
        )),
        s if s >= 500 || s == 408 => CrmError::Transient(message),
        _ => {
            // HubSpot names the records at fault in `context.ids` (the id property's values).
            let named = serde_json::from_str::<Value>(body).ok().and_then(|v| {
                let ids = v["context"]["ids"].as_array()?;
                (ids.len() == 1)
                    .then(|| ids[0].as_str().and_then(|s| s.parse::<i64>().ok()))
                    .flatten()
            });
            CrmError::Validation {
                customer_id: named.or(only),
                message,
            }
        }
    }
}

pub(crate) fn transport(e: reqwest::Error) -> CrmError {
    if e.is_timeout() {
        CrmError::Transient("the CRM did not answer in time".into())
    } else {
        CrmError::Transient(format!("cannot reach the CRM: {e}"))
    }
}

pub(crate) fn retry_after(h: &reqwest::header::HeaderMap) -> Option<u64> {
    h.get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::hubspot::hubspot_properties;
    use super::*;
    use domain::ports::crm::ContactSnapshot;

    #[test]
    fn names_are_split_and_crm_owned_fields_never_sent() {
        let c = ContactSnapshot {
            customer_id: 7,
            version: 1,
            fields: vec![
                ("name".into(), "Thandi van der Merwe".into()),
                ("email".into(), "t@example.com".into()),
                ("total_deposits".into(), "150.00".into()),
            ],
        };
        let p = hubspot_properties(&c, "stoep_customer_id");
        assert_eq!(p["firstname"], "Thandi");
        assert_eq!(p["lastname"], "van der Merwe");
        assert_eq!(p["stoep_total_deposits"], "150.00");
        assert_eq!(p["stoep_customer_id"], "7");
        assert!(!p.contains_key("lifecyclestage") && !p.contains_key("hubspot_owner_id"));
    }

    #[test]
    fn errors_are_sorted_for_the_ledger() {
        assert!(matches!(
            classify_http(429, Some(3), "{}", None),
            CrmError::RateLimited {
                retry_after_secs: Some(3),
                ..
            }
        ));
        assert!(matches!(
            classify_http(503, None, "", None),
            CrmError::Transient(_)
        ));
        assert!(matches!(
            classify_http(401, None, "{}", None),
            CrmError::Permanent(_)
        ));
        let body = r#"{"status":"error","message":"Property values were not valid","category":"VALIDATION_ERROR","context":{"ids":["42"]}}"#;
        match classify_http(400, None, body, None) {
            CrmError::Validation {
                customer_id,
                message,
            } => {
                assert_eq!(customer_id, Some(42));
                assert!(message.contains("Property values were not valid"));
            }
            other => panic!("{other:?}"),
        }
    }
}
