//! The CRM port: what the domain asks of a CRM (push the mapped fields of customers, erase one,
//! test the connection). HubSpot and the generic signed webhook implement it in
//! `server::integrations`; which fields move and when is decided in `domain::crm`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A customer as the CRM sees them: the customer id and the mapped fields' values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactSnapshot {
    pub customer_id: i64,
    /// The `crm_sync.changed_version` this snapshot was read at.
    pub version: i64,
    /// `(portal field, value)`, only the fields configured to move. Empty text clears the value.
    pub fields: Vec<(String, String)>,
}

impl ContactSnapshot {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.as_str())
    }
}

/// What a push achieved for one customer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    pub customer_id: i64,
    /// The CRM's own id for the contact, when it has one.
    pub crm_id: Option<String>,
}

/// Why a CRM call failed, sorted for the ledger.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CrmError {
    /// 429: wait `retry_after_secs` (or the policy's backoff).
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: Option<u64>,
    },
    /// 5xx, timeouts, connection errors.
    #[error("{0}")]
    Transient(String),
    /// 4xx validation: the data needs fixing. `customer_id` when the CRM named the record.
    #[error("{message}")]
    Validation {
        customer_id: Option<i64>,
        message: String,
    },
    /// Anything else retrying will not fix (bad credentials, an answer not as documented).
    #[error("{0}")]
    Permanent(String),
}

/// A CRM connector (HubSpot, a generic signed webhook, or none), implemented in `server::integrations`.
#[async_trait]
pub trait CrmConnector: Send + Sync {
    /// `hubspot`, `webhook` or `none`.
    fn kind(&self) -> &'static str;
    /// "HubSpot at https://api.hubapi.com", "local CRM stand-in at ...", "webhook to ...".
    fn describe(&self) -> String;
    /// At most `max_batch()` contacts per call.
    fn max_batch(&self) -> usize;
    /// Creates or updates the contacts (by the portal's customer id, never by email).
    async fn push(&self, contacts: &[ContactSnapshot]) -> Result<Vec<Pushed>, CrmError>;
    /// A harmless call proving the address and credentials.
    async fn test_connection(&self) -> Result<String, CrmError>;
    /// Removes the contact of a deleted customer (POPIA s24). Nothing there is success.
    async fn erase(&self, customer_id: i64) -> Result<(), CrmError>;
}

/// No CRM configured: pushes succeed without sending anything.
pub struct NoCrm;

#[async_trait]
impl CrmConnector for NoCrm {
    fn kind(&self) -> &'static str {
        "none"
    }
    fn describe(&self) -> String {
        "no CRM connected".into()
    }
    fn max_batch(&self) -> usize {
        100
    }
    async fn push(&self, contacts: &[ContactSnapshot]) -> Result<Vec<Pushed>, CrmError> {
        Ok(contacts
            .iter()
            .map(|c| Pushed {
                customer_id: c.customer_id,
                crm_id: None,
            })
            .collect())
    }
    async fn test_connection(&self) -> Result<String, CrmError> {
        Ok("no CRM is connected; nothing to test".into())
    }
    async fn erase(&self, _customer_id: i64) -> Result<(), CrmError> {
        Ok(())
    }
}
