//! The generic CRM connector: signed JSON to an endpoint of the business's choosing (Zapier,
//! Make, n8n), for CRMs without their own connector here.

use std::time::Duration;

use async_trait::async_trait;
use domain::ports::crm::{ContactSnapshot, CrmConnector, CrmError, Pushed};
use serde_json::{Value, json};

use super::{classify_http, retry_after, transport};

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
        let t = domain::db::now_ms() / 1000;
        let res = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header(
                "x-stoep-signature",
                guards::signature::sign(&self.secret, t, body.as_bytes()),
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
