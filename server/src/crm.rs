//! CRM connectors: HubSpot (its v3 CRM API) and a generic signed JSON webhook (Zapier, Make,
//! n8n), both over reqwest. Contacts are upserted by a unique property holding the portal's
//! customer id, so an email change updates the same contact instead of creating a second one.
//! Also HubSpot's v3 webhook signature, for `/webhooks/crm` (in the `guards` crate, where it is
//! fuzzed, and re-exported here).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use app::ssr::crm::{ContactSnapshot, CrmConnector, CrmError, Pushed};
use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::Mutex;

pub use guards::signature::{base64, hubspot_signature, same};

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

/// Maps a portal field to HubSpot contact properties. `name` is split into first and last name.
pub fn hubspot_properties(
    c: &ContactSnapshot,
    id_property: &str,
) -> serde_json::Map<String, Value> {
    let mut p = serde_json::Map::new();
    for (field, value) in &c.fields {
        match field.as_str() {
            "name" => {
                let mut parts = value.trim().splitn(2, ' ');
                p.insert("firstname".into(), parts.next().unwrap_or_default().into());
                p.insert(
                    "lastname".into(),
                    parts.next().unwrap_or_default().trim().into(),
                );
            }
            "email" => {
                p.insert("email".into(), value.clone().into());
            }
            "phone" => {
                p.insert("phone".into(), value.clone().into());
            }
            "company" => {
                p.insert("company".into(), value.clone().into());
            }
            other => {
                p.insert(format!("stoep_{other}"), value.clone().into());
            }
        }
    }
    p.insert(id_property.into(), c.customer_id.to_string().into());
    p
}

/// The portal field a HubSpot property belongs to (inbound changes).
pub fn portal_field(property: &str) -> Option<&'static str> {
    Some(match property {
        "lifecyclestage" => "lifecycle_stage",
        "hubspot_owner_id" => "owner",
        "stoep_tags" => "tags",
        "firstname" | "lastname" => "name",
        "email" => "email",
        "phone" => "phone",
        "company" => "company",
        "stoep_marketing_consent" => "marketing_consent",
        "stoep_portal_status" => "portal_status",
        "stoep_last_booking" => "last_booking",
        "stoep_next_booking" => "next_booking",
        "stoep_total_deposits" => "total_deposits",
        _ => return None,
    })
}

fn classify_http(status: u16, retry_after: Option<u64>, body: &str, only: Option<i64>) -> CrmError {
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

fn transport(e: reqwest::Error) -> CrmError {
    if e.is_timeout() {
        CrmError::Transient("the CRM did not answer in time".into())
    } else {
        CrmError::Transient(format!("cannot reach the CRM: {e}"))
    }
}

fn retry_after(h: &reqwest::header::HeaderMap) -> Option<u64> {
    h.get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// HubSpot's CRM v3 API.
pub struct HubSpot {
    http: reqwest::Client,
    base: String,
    token: String,
    id_property: String,
    limit: RollingLimit,
    standin: bool,
}

impl HubSpot {
    pub fn new(
        base: &str,
        token: &str,
        id_property: &str,
        timeout: Duration,
        max_per_10s: u32,
        standin: bool,
    ) -> Result<Self, String> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(timeout)
                .user_agent(concat!("Stoep/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| e.to_string())?,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            id_property: id_property.to_owned(),
            limit: RollingLimit::new(max_per_10s),
            standin,
        })
    }
}

#[async_trait]
impl CrmConnector for HubSpot {
    fn kind(&self) -> &'static str {
        "hubspot"
    }

    fn describe(&self) -> String {
        if self.standin {
            format!("local HubSpot stand-in at {}", self.base)
        } else {
            format!("HubSpot at {}", self.base)
        }
    }

    fn is_standin(&self) -> bool {
        self.standin
    }

    fn max_batch(&self) -> usize {
        100
    }

    async fn push(&self, contacts: &[ContactSnapshot]) -> Result<Vec<Pushed>, CrmError> {
        let inputs: Vec<Value> = contacts
            .iter()
            .map(|c| {
                json!({
                    "idProperty": self.id_property,
                    "id": c.customer_id.to_string(),
                    "properties": hubspot_properties(c, &self.id_property),
                })
            })
            .collect();
        self.limit.acquire().await;
        let res = self
            .http
            .post(format!(
                "{}/crm/v3/objects/contacts/batch/upsert",
                self.base
            ))
            .bearer_auth(&self.token)
            .json(&json!({ "inputs": inputs }))
            .send()
            .await
            .map_err(transport)?;
        let status = res.status().as_u16();
        let after = retry_after(res.headers());
        let body = res.text().await.map_err(transport)?;
        if !(200..300).contains(&status) {
            let only = (contacts.len() == 1).then(|| contacts[0].customer_id);
            return Err(classify_http(status, after, &body, only));
        }
        let v: Value = serde_json::from_str(&body).map_err(|e| {
            CrmError::Permanent(format!("the CRM's answer is not JSON as documented: {e}"))
        })?;
        let results = v["results"].as_array().ok_or_else(|| {
            CrmError::Permanent(
                "the CRM's answer has no `results` list, unlike its documentation".into(),
            )
        })?;
        let mut out = Vec::new();
        for r in results {
            let crm_id = r["id"].as_str().map(str::to_owned);
            let customer = r["properties"][&self.id_property]
                .as_str()
                .and_then(|s| s.parse::<i64>().ok());
            match (crm_id, customer) {
                (Some(id), Some(c)) => out.push(Pushed {
                    customer_id: c,
                    crm_id: Some(id),
                }),
                _ => {
                    return Err(CrmError::Permanent(format!(
                        "a result without an id or without {}: not what the CRM's API documents",
                        self.id_property
                    )));
                }
            }
        }
        Ok(out)
    }

    async fn test_connection(&self) -> Result<String, CrmError> {
        self.limit.acquire().await;
        let res = self
            .http
            .get(format!(
                "{}/crm/v3/properties/contacts/{}",
                self.base, self.id_property
            ))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(transport)?;
        let status = res.status().as_u16();
        let after = retry_after(res.headers());
        let body = res.text().await.map_err(transport)?;
        if status == 404 {
            return Err(CrmError::Permanent(format!(
                "connected, but the contact property {} does not exist: create it in HubSpot (single-line text, unique values)",
                self.id_property
            )));
        }
        if !(200..300).contains(&status) {
            return Err(classify_http(status, after, &body, None));
        }
        Ok(format!(
            "{} answered: property {} readable",
            self.describe(),
            self.id_property
        ))
    }

    async fn erase(&self, customer_id: i64) -> Result<(), CrmError> {
        self.limit.acquire().await;
        let res = self
            .http
            .post(format!("{}/crm/v3/objects/contacts/gdpr-delete", self.base))
            .bearer_auth(&self.token)
            .json(&json!({ "objectId": customer_id.to_string(), "idProperty": self.id_property }))
            .send()
            .await
            .map_err(transport)?;
        let status = res.status().as_u16();
        let after = retry_after(res.headers());
        if (200..300).contains(&status) || status == 404 {
            return Ok(());
        }
        let body = res.text().await.unwrap_or_default();
        Err(classify_http(status, after, &body, Some(customer_id)))
    }
}

/// A generic outbound webhook: JSON, signed with HMAC-SHA256 (`X-Stoep-Signature:
/// t=<unix>,v1=<hex of HMAC(secret, "<t>.<body>")>`).
pub struct SignedWebhook {
    http: reqwest::Client,
    url: String,
    secret: String,
}

impl SignedWebhook {
    pub fn new(url: &str, secret: &str, timeout: Duration) -> Result<Self, String> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .map_err(|e| e.to_string())?,
            url: url.to_owned(),
            secret: secret.to_owned(),
        })
    }

    async fn post(&self, body: Value) -> Result<(), CrmError> {
        let body = body.to_string();
        let t = app::ssr::db::now_ms() / 1000;
        let res = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header(
                "x-stoep-signature",
                crate::stripe::sign(&self.secret, t, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let status = res.status().as_u16();
        let after = retry_after(res.headers());
        if (200..300).contains(&status) {
            return Ok(());
        }
        let text = res.text().await.unwrap_or_default();
        Err(classify_http(status, after, &text, None))
    }
}

#[async_trait]
impl CrmConnector for SignedWebhook {
    fn kind(&self) -> &'static str {
        "webhook"
    }
    fn describe(&self) -> String {
        format!("signed webhook to {}", self.url)
    }
    fn is_standin(&self) -> bool {
        false
    }
    fn max_batch(&self) -> usize {
        50
    }
    async fn push(&self, contacts: &[ContactSnapshot]) -> Result<Vec<Pushed>, CrmError> {
        let list: Vec<Value> = contacts
            .iter()
            .map(|c| {
                let fields: serde_json::Map<String, Value> = c
                    .fields
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                    .collect();
                json!({ "customer_id": c.customer_id, "fields": fields })
            })
            .collect();
        self.post(json!({ "event": "contacts.upsert", "contacts": list }))
            .await?;
        Ok(contacts
            .iter()
            .map(|c| Pushed {
                customer_id: c.customer_id,
                crm_id: None,
            })
            .collect())
    }
    async fn test_connection(&self) -> Result<String, CrmError> {
        self.post(json!({ "event": "ping" })).await?;
        Ok(format!("{} answered 2xx", self.url))
    }
    async fn erase(&self, customer_id: i64) -> Result<(), CrmError> {
        self.post(json!({ "event": "contacts.erase", "customer_id": customer_id }))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
