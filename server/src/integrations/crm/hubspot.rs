//! CRM connectors: HubSpot (its v3 CRM API) and a generic signed JSON webhook (Zapier, Make,
//! n8n), both over reqwest. Contacts are upserted by a unique property holding the portal's
//! customer id, so an email change updates the same contact instead of creating a second one.
//! Also HubSpot's v3 webhook signature, for `/webhooks/crm` (in the `guards` crate, where it is
//! fuzzed, and re-exported here).

use std::time::Duration;

use domain::ports::crm::{ContactSnapshot, CrmConnector, CrmError, Pushed};

use super::{RollingLimit, classify_http, retry_after, transport};
use async_trait::async_trait;
use serde_json::{Value, json};

pub use guards::signature::{base64, hubspot_signature, same};

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

/// HubSpot's CRM v3 API.
pub struct HubSpot {
    http: reqwest::Client,
    base: String,
    token: String,
    id_property: String,
    limit: RollingLimit,
}

impl HubSpot {
    pub fn new(
        base: &str,
        token: &str,
        id_property: &str,
        timeout: Duration,
        max_per_10s: u32,
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
        })
    }
}

#[async_trait]
impl CrmConnector for HubSpot {
    fn kind(&self) -> &'static str {
        "hubspot"
    }

    fn describe(&self) -> String {
        format!("HubSpot at {}", self.base)
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
