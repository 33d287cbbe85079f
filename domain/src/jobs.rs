//! Every kind of job the portal runs, in one place: a typed payload per kind, with the name the
//! worker's registry knows it by, the integration whose retry policy and health it counts
//! towards, and a sentence for admins. Enqueueing takes the payload ([`NewJob::of`]); the worker
//! registers a handler by the payload's type (`Registry::add`), so a kind is never written as a
//! string twice and a payload is never assembled by hand.
//!
//! Payloads carry ids, never personal values (the ledger's rows are kept for weeks).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The systems the portal talks to. Each has its own retry policy and health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Integration {
    Payments,
    Crm,
    Email,
    Storage,
    Calendar,
    /// The portal's own scheduled maintenance (alerts, purges).
    System,
}

impl Integration {
    pub const ALL: [Integration; 6] = [
        Integration::Payments,
        Integration::Crm,
        Integration::Email,
        Integration::Storage,
        Integration::Calendar,
        Integration::System,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Integration::Payments => "payments",
            Integration::Crm => "crm",
            Integration::Email => "email",
            Integration::Storage => "storage",
            Integration::Calendar => "calendar",
            Integration::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.as_str() == s)
    }

    /// The retry policy for this integration.
    pub fn policy(self) -> RetryPolicy {
        match self {
            // Email relays recover in minutes; give a long tail so an outage of hours loses nothing.
            Integration::Email => RetryPolicy {
                max_attempts: 12,
                base_ms: 10_000,
                cap_ms: 3_600_000,
            },
            // HubSpot's limits are per 10 s; outages are usually short.
            Integration::Crm => RetryPolicy {
                max_attempts: 15,
                base_ms: 10_000,
                cap_ms: 3_600_000,
            },
            Integration::Payments => RetryPolicy {
                max_attempts: 10,
                base_ms: 5_000,
                cap_ms: 1_800_000,
            },
            Integration::Storage => RetryPolicy {
                max_attempts: 10,
                base_ms: 5_000,
                cap_ms: 1_800_000,
            },
            Integration::Calendar => RetryPolicy {
                max_attempts: 5,
                base_ms: 30_000,
                cap_ms: 3_600_000,
            },
            Integration::System => RetryPolicy {
                max_attempts: 5,
                base_ms: 5_000,
                cap_ms: 300_000,
            },
        }
    }
}

/// Exponential backoff with ±10 % jitter and a cap: attempt `n` (1-based) waits about
/// `base * 2^(n-1)`, never more than `cap`. After `max_attempts` the job goes to manual review.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RetryPolicy {
    pub max_attempts: i32,
    pub base_ms: i64,
    pub cap_ms: i64,
}

impl RetryPolicy {
    /// The delay before the attempt after `attempt` failed. `jitter` is a number in `[-1, 1]`
    /// (random in production, fixed in tests). A server's `Retry-After` wins when it is longer,
    /// and is itself capped at one day.
    pub fn delay_ms(&self, attempt: i32, jitter: f64, retry_after_ms: Option<i64>) -> i64 {
        let exp = (attempt.max(1) - 1).min(30) as u32;
        let raw = self
            .base_ms
            .saturating_mul(1_i64 << exp.min(40))
            .min(self.cap_ms);
        let jittered = (raw as f64 * (1.0 + 0.1 * jitter.clamp(-1.0, 1.0))) as i64;
        let computed = jittered.clamp(1, self.cap_ms);
        match retry_after_ms {
            Some(ra) => computed.max(ra.min(86_400_000)),
            None => computed,
        }
    }

    /// A human summary for the integration map and job pages.
    pub fn describe(&self) -> String {
        format!(
            "up to {} attempts, backoff from {} s doubling to at most {} min (±10 % jitter), Retry-After honoured; then manual review",
            self.max_attempts,
            self.base_ms / 1000,
            self.cap_ms / 60_000
        )
    }
}

/// What a job concerns, shown to admins and used for filtering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    pub kind: &'static str,
    pub id: String,
}

impl Subject {
    pub fn new(kind: &'static str, id: impl ToString) -> Self {
        Self {
            kind,
            id: id.to_string(),
        }
    }
}

/// A job to enqueue.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// The handler that runs it, e.g. `email.send`.
    pub kind: &'static str,
    pub integration: Integration,
    pub subject: Subject,
    /// Unique per effect: the same key enqueued twice creates one job.
    pub idempotency_key: String,
    /// The handler's input, as JSON. Keep personal data out: store ids, not values.
    pub payload: serde_json::Value,
    /// Not before this instant (ms); now when `None`.
    pub run_after_ms: Option<i64>,
}

/// One kind of job.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The name stored in `jobs.kind`, e.g. `email.send`.
    const KIND: &'static str;
    /// Whose retry policy applies and whose health the job counts towards.
    const INTEGRATION: Integration;
    /// What the job does, for admins ("Send an email").
    const DESCRIPTION: &'static str;
}

impl NewJob {
    /// The job `payload` about `subject`, due now, unique by `idempotency_key` (name the
    /// effect, not the attempt: `email:confirm:booking:42`).
    pub fn of<J: Job>(payload: &J, subject: Subject, idempotency_key: impl Into<String>) -> NewJob {
        NewJob {
            kind: J::KIND,
            integration: J::INTEGRATION,
            subject,
            idempotency_key: idempotency_key.into(),
            payload: serde_json::to_value(payload).unwrap_or_default(),
            run_after_ms: None,
        }
    }

    /// Not before `ms` (milliseconds since the epoch).
    pub fn at(mut self, ms: i64) -> NewJob {
        self.run_after_ms = Some(ms);
        self
    }
}

/// Declares payload types and the catalogue of descriptions in one go.
macro_rules! jobs {
    ($(
        $(#[$meta:meta])*
        $name:ident { $($field:ident : $ty:ty),* $(,)? }
            => $kind:literal, $integration:ident, $description:literal;
    )*) => {
        $(
            $(#[$meta])*
            #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
            pub struct $name { $(pub $field: $ty),* }

            impl Job for $name {
                const KIND: &'static str = $kind;
                const INTEGRATION: Integration = Integration::$integration;
                const DESCRIPTION: &'static str = $description;
            }
        )*

        /// Every kind: `(kind, integration, description)`.
        pub const CATALOGUE: &[(&str, Integration, &str)] = &[
            $(($kind, Integration::$integration, $description)),*
        ];
    };
}

jobs! {
    /// Sends one message from the outbox.
    SendEmail { email_id: i64 }
        => "email.send", Email, "Send an email";
    /// Emails admins one digest of new integration problems.
    AlertsDigest {}
        => "alerts.digest", System, "Email admins a digest of integration problems";
    /// Hourly: expired sessions, tokens, holds and old payloads.
    SystemPurge {}
        => "system.purge", System, "Purge expired sessions, tokens and old job payloads";
    /// Does nothing (the benchmarks and the scale-out test count them).
    Noop {}
        => "system.noop", System, "Do nothing (checks that a worker is taking jobs; used by the benchmarks)";
    /// Releases an unpaid hold when it expires.
    ExpireHold { booking_id: i64 }
        => "booking.expire_hold", System, "Release an unpaid booking hold when it expires";
    /// Reminds the customer before the appointment (only for the booking's version it names).
    BookingReminder { booking_id: i64, version: i32 }
        => "booking.reminder", Email, "Email the customer a reminder before the appointment";
    /// Applies one stored Stripe event.
    StripeEvent { event_id: String }
        => "payments.stripe_event", Payments, "Apply a Stripe event (payment, expiry, refund, dispute)";
    /// Makes one recorded refund at the payment provider.
    Refund { refund_id: i64 }
        => "payments.refund", Payments, "Refund a payment through Stripe";
    /// Reconciles open and recent payments with the provider.
    Reconcile {}
        => "payments.reconcile", Payments, "Reconcile open and recent payments with Stripe";
    /// A payment matter for an admin (always manual review).
    PaymentReview { payment_id: i64, message: String }
        => "payments.review", Payments, "A payment matter for an admin to check";
    /// Pushes one customer the CRM refused.
    CrmSyncCustomer { customer_id: i64 }
        => "crm.sync_customer", Crm, "Push one customer the CRM refused (fix their details, then retry)";
    /// Pushes changed customers (coalesced, batched).
    CrmFlush {}
        => "crm.flush", Crm, "Push changed customers to the CRM (coalesced, batched)";
    /// Deletes a deleted customer's contact in the CRM.
    CrmErase { customer_id: i64 }
        => "crm.erase", Crm, "Delete a deleted customer's contact in the CRM";
    /// Erases a deleted customer's personal information in the portal.
    PrivacyErase { customer_id: i64 }
        => "privacy.erase", System, "Erase a deleted customer's personal information in the portal";
    /// Removes a deleted document's object, then its row.
    DeleteObject { document_id: i64, object_key: String }
        => "storage.delete_object", Storage, "Remove a deleted document's file from storage, then its record";
    /// Hourly: orphaned objects and missing ones.
    StorageCleanup {}
        => "storage.cleanup", Storage, "Remove stored files no document refers to; report documents whose file is missing";
    /// A document's object is missing (always manual review).
    MissingObject { message: String }
        => "storage.missing_object", Storage, "A document's file is missing from storage, for an admin to check";
    /// Probes storage after an upload or download failed.
    StorageCheck { error: String }
        => "storage.check", Storage, "Check that document storage can be reached again after an upload failed";
    /// Reminds the customer of a requested document.
    RequestReminder { request_id: i64 }
        => "documents.request_reminder", Email, "Remind the customer of a requested document before it is due";
    /// Hourly: documents of accounts closed longer than the retention period.
    DocumentsRetention {}
        => "documents.retention", System, "Delete documents of accounts closed longer than the retention period";
}

/// The sentence for a job kind (the kind itself for one this version does not know).
pub fn describe_kind(kind: &str) -> &str {
    CATALOGUE
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map(|(_, _, d)| *d)
        .unwrap_or(kind)
}
