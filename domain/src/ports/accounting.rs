//! The accounting port: the business's books (Xero). Contacts keyed on the portal's customer id,
//! tax invoices for deposits, payments against them, credit notes for refunds. Money moved is the
//! payment provider's fact; the invoice and its number are the accounting system's; the portal
//! keeps the mapping. Xero implements it in `server::integrations::xero`.

use async_trait::async_trait;

use super::CallError;

/// A customer as the books need them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactRecord {
    /// The portal's customer id: the contact's key, never the email.
    pub customer_id: i64,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
}

/// One line of an invoice or credit note, amounts tax-inclusive in cents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineRecord {
    pub description: String,
    pub amount_cents: i64,
    pub account_code: String,
    pub tax_type: String,
}

/// A document to push (an invoice or a credit note).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentRecord {
    /// Stable per portal record and version, sent as the provider's idempotency key.
    pub idempotency_key: String,
    pub contact_id: String,
    /// `YYYY-MM-DD` in the business's zone.
    pub date: String,
    pub currency: String,
    pub reference: String,
    pub lines: Vec<LineRecord>,
}

/// A money movement to apply to a document (a payment to an invoice, a refund of a credit note).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoneyRecord {
    pub idempotency_key: String,
    pub document_id: String,
    pub bank_account_code: String,
    pub date: String,
    pub amount_cents: i64,
    pub reference: String,
}

/// What the accounting system holds for a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Booked {
    pub id: String,
    /// The invoice or credit note number the accounting system gave it.
    pub number: Option<String>,
    /// Its version marker (Xero's `UpdatedDateUTC`), to notice a change made there.
    pub version: Option<String>,
}

/// One connected organisation.
#[async_trait]
pub trait Books: Send + Sync {
    fn describe(&self) -> String;
    /// Creates or updates the contact; returns its id.
    async fn upsert_contact(&self, contact: &ContactRecord) -> Result<String, CallError>;
    async fn create_invoice(&self, invoice: &DocumentRecord) -> Result<Booked, CallError>;
    async fn apply_payment(&self, payment: &MoneyRecord) -> Result<String, CallError>;
    async fn create_credit_note(&self, note: &DocumentRecord) -> Result<Booked, CallError>;
    async fn refund_credit_note(&self, refund: &MoneyRecord) -> Result<String, CallError>;
    /// The document as it is now (to notice a change made in the accounting system).
    async fn get_document(&self, id: &str) -> Result<Option<Booked>, CallError>;
    async fn test_connection(&self) -> Result<String, CallError>;
}
