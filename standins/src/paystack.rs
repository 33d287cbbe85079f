//! A local stand-in for the part of Paystack the portal uses, so demos and tests take deposits
//! without a Paystack account or network access, through the portal's production Paystack
//! client, unchanged (pointed at [`PaystackStandin::base_url`] instead of
//! `https://api.paystack.co`).
//!
//! It answers, with `Authorization: Bearer <secret key>` checked and in Paystack's envelope
//! (`{"status", "message", "data", "meta"?}`, errors with `type` and `code`):
//!
//! - `POST /transaction/initialize`: email, amount in cents (ZAR; at least 100), currency,
//!   reference (Paystack's character set; a reference used before is refused with Paystack's
//!   `duplicate_reference`), callback_url, metadata (an object or stringified JSON), channels;
//!   it answers with an `authorization_url` on the stand-in's own hosted checkout
//!   (`/checkout/{access_code}`), where the buyer pays by card, has the card declined, or
//!   abandons. Paying sends `charge.success` and redirects to
//!   `callback_url?trxref=<ref>&reference=<ref>`;
//! - `GET /transaction/verify/{reference}`, `GET /transaction/{id}`, `GET /transaction`;
//! - `POST /refund`, `GET /refund/{id}`, `GET /refund`, and
//!   `POST /refund/retry_with_customer_details/{id}` for a refund that needs attention. A
//!   refund is `pending`, then `processing`, then `processed` (or `failed`), one step every
//!   [`PaystackStandinConfig::refund_step`], with the `refund.*` webhooks; one that needs
//!   attention stops there, without a webhook, as at Paystack;
//! - `GET /balance` and `GET /integration/payment_session_timeout` (connection tests).
//!
//! Webhooks (`charge.success`, `refund.pending` / `.processing` / `.processed` / `.failed`,
//! `charge.dispute.create`) are POSTed as JSON to the configured URL, signed with
//! `x-paystack-signature` ([`guards::paystack::webhook_signature`]), and retried until the
//! answer is `200`, as Paystack retries. How a refund ends can be forced by the card paid with
//! (Paystack's own test cards, offered on the checkout page) or by [`PaystackFaults`], which
//! also take the API down and pause, drop, duplicate, delay or reorder webhooks.
//! `GET /_standin` shows everything it holds.
//!
//! It is not a Paystack emulator: only ZAR, only card payments, no customers API, plans,
//! splits, subaccounts, charge authorizations or transfers.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::common::{esc, lock, now_ms, page};
use crate::controls::PaystackFaults;
use crate::deliveries::{
    DeliveryAttempt, Notification, Outbox, OutboxConfig, accept_200, take_one,
};

/// The stand-in's secret key: the research notes' fake test key, so their webhook vectors
/// apply as they are. Obviously not a real key (Paystack keys are random hex).
pub const SECRET_KEY: &str = "sk_test_0000000000000000000000000000000000000000";
/// The matching public key (for the browser; the stand-in never checks it).
pub const PUBLIC_KEY: &str = "pk_test_0000000000000000000000000000000000000000";
/// The integration id Paystack stamps on refunds and webhooks.
pub const INTEGRATION_ID: u64 = 412_829;
/// The smallest ZAR amount Paystack accepts (cents).
pub const MIN_AMOUNT: i64 = 100;

/// Largest request body accepted.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// The longest reference accepted.
const MAX_REFERENCE: usize = 100;
/// The first transaction id handed out.
const FIRST_TRANSACTION_ID: u64 = 302_961;
/// The first refund id handed out.
const FIRST_REFUND_ID: u64 = 3_018_284;
/// Channels Paystack knows (`channels` on initialize).
const CHANNELS: [&str; 10] = [
    "card",
    "bank",
    "apple_pay",
    "ussd",
    "qr",
    "mobile_money",
    "bank_transfer",
    "eft",
    "capitec_pay",
    "payattitude",
];

// ---------------------------------------------------------------------------------------------
// Configuration and public API
// ---------------------------------------------------------------------------------------------

/// How the stand-in behaves. [`Default`] gives [`SECRET_KEY`], no webhook URL, a compressed
/// version of Paystack's live retry schedule and no persistence.
#[derive(Clone)]
pub struct PaystackStandinConfig {
    /// The only secret key accepted (as `Authorization: Bearer ...`), and the webhooks' signing
    /// key, as at Paystack.
    pub secret_key: String,
    /// Where webhooks go (Paystack has one per account, set in its dashboard). `None`: events
    /// are recorded but not sent.
    pub webhook_url: Option<String>,
    /// Fault switches, read at each call, refund and webhook attempt.
    pub faults: Arc<PaystackFaults>,
    /// Delays between webhook attempts; after the last the webhook is given up.
    pub retry_schedule: Vec<Duration>,
    /// How long one webhook attempt may take (Paystack: 30 s in test mode).
    pub webhook_timeout: Duration,
    /// How long a refund stays in each of `pending` and `processing`.
    pub refund_step: Duration,
    /// If set, transactions, refunds, disputes and events are saved here as JSON after each
    /// change and loaded at start.
    pub state_file: Option<PathBuf>,
    /// Shown on the hosted checkout page.
    pub business_name: String,
}

impl PaystackStandinConfig {
    /// Paystack's live schedule ("every 3 minutes for the first 4 tries, then hourly for the
    /// next 72 hours"), minutes read as seconds and cut to ten hourly tries: 3 s four times,
    /// then 60 s ten times. (Test mode retries hourly for 10 hours; a third-party summary says
    /// 72 hours. The documented live schedule is the one imitated.)
    pub fn default_retry_schedule() -> Vec<Duration> {
        let mut schedule = vec![Duration::from_secs(3); 4];
        schedule.extend([Duration::from_secs(60); 10]);
        schedule
    }
}

impl Default for PaystackStandinConfig {
    fn default() -> Self {
        Self {
            secret_key: SECRET_KEY.into(),
            webhook_url: None,
            faults: Arc::default(),
            retry_schedule: Self::default_retry_schedule(),
            webhook_timeout: Duration::from_secs(30),
            refund_step: Duration::from_secs(2),
            state_file: None,
            business_name: "Stoep".into(),
        }
    }
}

/// The key stays out of logs.
impl fmt::Debug for PaystackStandinConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaystackStandinConfig")
            .field("secret_key", &mask_key(&self.secret_key))
            .field("webhook_url", &self.webhook_url)
            .field("faults", &self.faults)
            .field("retry_schedule", &self.retry_schedule)
            .field("webhook_timeout", &self.webhook_timeout)
            .field("refund_step", &self.refund_step)
            .field("state_file", &self.state_file)
            .field("business_name", &self.business_name)
            .finish()
    }
}

/// How refunds of a payment end, decided by the card it was paid with (Paystack's test cards).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundOutcome {
    /// `4084 0840 8408 4081`: refunds are processed.
    #[default]
    Processed,
    /// `4084 0800 0067 1803`: refunds fail.
    Failed,
    /// `4084 0800 0067 1902`: refunds need the customer's bank details.
    NeedsAttention,
}

impl RefundOutcome {
    /// The test card's number (last four digits shown on the authorization).
    fn card(self) -> (&'static str, &'static str) {
        match self {
            RefundOutcome::Processed => ("408408", "4081"),
            RefundOutcome::Failed => ("408408", "1803"),
            RefundOutcome::NeedsAttention => ("408408", "1902"),
        }
    }
}

/// A transaction, as the stand-in keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PaystackTransaction {
    pub id: u64,
    pub reference: String,
    pub access_code: String,
    pub email: String,
    /// Cents.
    pub amount: i64,
    pub currency: String,
    /// `abandoned` (initialized, not paid), `failed` (declined), `success`, `reversed`
    /// (refunded in full).
    pub status: String,
    pub gateway_response: String,
    pub callback_url: Option<String>,
    /// As given (an object, or a string when it was not JSON); `""` when none was.
    pub metadata: Value,
    pub channels: Vec<String>,
    /// Paystack's fee in cents, once paid.
    pub fees: Option<i64>,
    /// Unix milliseconds.
    pub created_at_ms: u64,
    pub paid_at_ms: Option<u64>,
    /// The test card paid with, which decides how refunds end.
    pub refund_outcome: RefundOutcome,
    /// `AUTH_...`, once paid.
    pub authorization_code: Option<String>,
    pub customer_id: u64,
    pub customer_code: String,
}

/// A refund, as the stand-in keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PaystackRefund {
    pub id: u64,
    pub transaction_id: u64,
    pub transaction_reference: String,
    /// Cents.
    pub amount: i64,
    pub currency: String,
    /// `pending`, `processing`, `processed`, `failed` or `needs-attention`.
    pub status: String,
    pub customer_note: String,
    pub merchant_note: String,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub refunded_at_ms: Option<u64>,
    /// The processor's reference, once processed.
    pub refund_reference: Option<String>,
    /// How it will end.
    pub outcome: RefundOutcome,
}

/// A webhook event the stand-in created (whether or not it was sent).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PaystackEvent {
    /// The stand-in's own number (Paystack's events carry no id).
    pub seq: u64,
    pub event: String,
    /// The body as sent, byte for byte.
    pub body: String,
    pub created_at_ms: u64,
}

/// A running stand-in. Cheap to clone; it stops when the `shutdown` token given to
/// [`PaystackStandin::start`] is cancelled.
#[derive(Clone)]
pub struct PaystackStandin {
    inner: Arc<Inner>,
}

impl fmt::Debug for PaystackStandin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaystackStandin")
            .field("base_url", &self.inner.base_url)
            .finish_non_exhaustive()
    }
}

impl PaystackStandin {
    /// Serves the stand-in on `listener` (bind `127.0.0.1:0` in tests) and starts the webhook
    /// outbox. Loads `state_file` if it exists, and carries on any refund it left unfinished.
    pub async fn start(
        listener: TcpListener,
        cfg: PaystackStandinConfig,
        shutdown: CancellationToken,
    ) -> std::io::Result<PaystackStandin> {
        let addr = listener.local_addr()?;
        let store: Store = match &cfg.state_file {
            Some(path) => crate::common::load_state(path, "Paystack").await?,
            None => Store::default(),
        };
        let key = cfg.secret_key.clone();
        let outbox = Outbox::start(
            OutboxConfig {
                name: "Paystack webhooks".into(),
                retry_schedule: cfg.retry_schedule.clone(),
                timeout: cfg.webhook_timeout,
                accept: accept_200,
                signer: Arc::new(move |_, body| {
                    vec![
                        (
                            guards::paystack::SIGNATURE_HEADER.to_owned(),
                            guards::paystack::webhook_signature(&key, body),
                        ),
                        (
                            "User-Agent".to_owned(),
                            "Paystack webhooks (Stoep stand-in)".to_owned(),
                        ),
                    ]
                }),
                faults: cfg.faults.webhooks.clone(),
            },
            shutdown.clone(),
        )?;
        let unfinished: Vec<u64> = store
            .refunds
            .iter()
            .filter(|r| r.status == "pending" || r.status == "processing")
            .map(|r| r.id)
            .collect();
        let inner = Arc::new(Inner {
            base_url: format!("http://{addr}"),
            webhook_url: Mutex::new(cfg.webhook_url.clone()),
            cfg,
            store: Mutex::new(store),
            outbox,
            shutdown: shutdown.clone(),
        });
        for id in unfinished {
            spawn_refund_progress(inner.clone(), id);
        }
        let router = Router::new()
            .route(
                "/checkout/{access_code}",
                get(show_checkout).post(submit_checkout),
            )
            .route("/_standin", get(show_admin))
            .fallback(handle_api)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(inner.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "the Paystack stand-in stopped serving");
            }
        });
        tracing::info!(base_url = %inner.base_url, "Paystack stand-in listening");
        Ok(PaystackStandin { inner })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash: the API base (Paystack:
    /// `https://api.paystack.co`).
    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// The secret key it accepts and signs webhooks with.
    pub fn secret_key(&self) -> &str {
        &self.inner.cfg.secret_key
    }

    /// The fault switches (shared with whoever passed them in).
    pub fn faults(&self) -> &Arc<PaystackFaults> {
        &self.inner.cfg.faults
    }

    /// Changes where webhooks go; those already queued keep their URL.
    pub fn set_webhook_url(&self, url: Option<String>) {
        *lock(&self.inner.webhook_url) = url;
    }

    /// The webhook outbox (its log, what is pending, `retry_now`).
    pub fn outbox(&self) -> &Outbox {
        &self.inner.outbox
    }

    /// Every webhook delivery attempt still in the log, oldest first.
    pub fn deliveries(&self) -> Vec<DeliveryAttempt> {
        self.inner.outbox.log()
    }

    /// Waits until no webhook is queued or in flight; `false` if `timeout` passed first.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        self.inner.outbox.wait_idle(timeout).await
    }

    /// Every transaction, oldest first.
    pub fn transactions(&self) -> Vec<PaystackTransaction> {
        lock(&self.inner.store).transactions.clone()
    }

    /// A transaction by reference.
    pub fn transaction(&self, reference: &str) -> Option<PaystackTransaction> {
        let store = lock(&self.inner.store);
        store
            .by_reference(reference)
            .map(|i| store.transactions[i].clone())
    }

    /// Every refund, oldest first.
    pub fn refunds(&self) -> Vec<PaystackRefund> {
        lock(&self.inner.store).refunds.clone()
    }

    /// Every webhook event created, in order.
    pub fn events(&self) -> Vec<PaystackEvent> {
        lock(&self.inner.store).events.clone()
    }

    /// The hosted checkout of a transaction (also its `authorization_url`).
    pub fn checkout_url(&self, access_code: &str) -> String {
        format!("{}/checkout/{access_code}", self.inner.base_url)
    }

    /// The checkout's pay button, with the test card that gives `outcome` to refunds.
    pub fn pay(&self, reference: &str, outcome: RefundOutcome) -> Result<(), String> {
        self.inner.pay(reference, outcome).map(drop)
    }

    /// The checkout's "declined card" button.
    pub fn decline(&self, reference: &str) -> Result<(), String> {
        self.inner.decline(reference)
    }

    /// The buyer's bank disputes a successful transaction: `charge.dispute.create`.
    pub fn dispute(&self, reference: &str) -> Result<(), String> {
        self.inner.dispute(reference)
    }

    /// Sends an event's webhook once more, byte for byte.
    pub fn resend(&self, seq: u64) -> Result<(), String> {
        let event = lock(&self.inner.store)
            .events
            .iter()
            .find(|e| e.seq == seq)
            .cloned()
            .ok_or("no such event")?;
        self.inner.send_event(&event);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------------------

struct Inner {
    cfg: PaystackStandinConfig,
    base_url: String,
    webhook_url: Mutex<Option<String>>,
    /// Lock order: `store`, then `webhook_url`.
    store: Mutex<Store>,
    outbox: Outbox,
    shutdown: CancellationToken,
}

#[derive(Default, Serialize, Deserialize)]
struct Store {
    transactions: Vec<PaystackTransaction>,
    refunds: Vec<PaystackRefund>,
    disputes: Vec<Value>,
    events: Vec<PaystackEvent>,
    /// Customers by email: (email, id, code).
    customers: Vec<(String, u64, String)>,
    last_transaction_id: u64,
    last_refund_id: u64,
    last_event: u64,
    /// Events created by the current change, sent by [`Inner::mutate`].
    #[serde(skip)]
    outbox: Vec<PaystackEvent>,
}

fn random_code(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(len)
        .map(|b| char::from(b).to_ascii_lowercase())
        .collect()
}

fn random_digits(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// Unix milliseconds as Paystack writes times: `2024-01-01T10:00:00.000Z`.
pub fn iso_ms(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            ms % 1000
        ),
        Err(_) => String::new(),
    }
}

impl Store {
    fn by_reference(&self, reference: &str) -> Option<usize> {
        self.transactions
            .iter()
            .position(|t| t.reference == reference)
    }

    /// By numeric id first, then by reference (Paystack's `transaction` parameter takes either).
    fn by_id_or_reference(&self, key: &str) -> Option<usize> {
        key.parse::<u64>()
            .ok()
            .and_then(|id| self.transactions.iter().position(|t| t.id == id))
            .or_else(|| self.by_reference(key))
    }

    fn customer(&mut self, email: &str) -> (u64, String) {
        if let Some((_, id, code)) = self.customers.iter().find(|(e, _, _)| e == email) {
            return (*id, code.clone());
        }
        let id = 180_000 + self.customers.len() as u64 + 1;
        let code = format!("CUS_{}", random_code(15));
        self.customers.push((email.to_owned(), id, code.clone()));
        (id, code)
    }

    /// Cents of the transaction not refunded (failed refunds give theirs back).
    fn refundable(&self, tx: &PaystackTransaction) -> i64 {
        let refunded: i64 = self
            .refunds
            .iter()
            .filter(|r| r.transaction_id == tx.id && r.status != "failed")
            .map(|r| r.amount)
            .sum();
        (tx.amount - refunded).max(0)
    }

    /// Records an event and puts it in the outbox.
    fn emit(&mut self, event: &str, data: Value) {
        self.last_event += 1;
        let body = json!({ "event": event, "data": data }).to_string();
        let e = PaystackEvent {
            seq: self.last_event,
            event: event.to_owned(),
            body,
            created_at_ms: now_ms(),
        };
        self.events.push(e.clone());
        self.outbox.push(e);
    }

    /// The transaction in Paystack's shape (verify, fetch, list, `charge.success`).
    fn transaction_json(&self, tx: &PaystackTransaction) -> Value {
        let paid = tx.paid_at_ms.map(iso_ms);
        let created = iso_ms(tx.created_at_ms);
        let authorization = match &tx.authorization_code {
            Some(code) => {
                let (bin, last4) = tx.refund_outcome.card();
                json!({
                    "authorization_code": code, "bin": bin, "last4": last4,
                    "exp_month": "12", "exp_year": "2030", "channel": "card",
                    "card_type": "visa ", "bank": "TEST BANK", "country_code": "ZA",
                    "brand": "visa", "reusable": true,
                    "signature": format!("SIG_{}", code.get(5..).unwrap_or_default().chars().rev().collect::<String>()),
                    "account_name": null, "receiver_bank_account_number": null,
                    "receiver_bank": null,
                })
            }
            None => json!({}),
        };
        let mut out = Map::new();
        for (k, v) in [
            ("id", json!(tx.id)),
            ("domain", json!("test")),
            ("status", json!(tx.status)),
            ("reference", json!(tx.reference)),
            ("receipt_number", Value::Null),
            ("amount", json!(tx.amount)),
            ("message", Value::Null),
            ("gateway_response", json!(tx.gateway_response)),
            ("paid_at", json!(paid)),
            ("created_at", json!(created)),
            ("channel", json!("card")),
            ("currency", json!(tx.currency)),
            ("ip_address", json!("127.0.0.1")),
            ("metadata", tx.metadata.clone()),
            ("log", Value::Null),
            ("fees", json!(tx.fees)),
            ("fees_split", Value::Null),
            ("authorization", authorization),
            (
                "customer",
                json!({
                    "id": tx.customer_id, "first_name": null, "last_name": null,
                    "email": tx.email, "customer_code": tx.customer_code, "phone": null,
                    "metadata": null, "risk_action": "default",
                    "international_format_phone": null,
                }),
            ),
            ("plan", Value::Null),
            ("split", json!({})),
            ("order_id", Value::Null),
            ("paidAt", json!(paid)),
            ("createdAt", json!(created)),
            ("requested_amount", json!(tx.amount)),
            ("pos_transaction_data", Value::Null),
            ("source", Value::Null),
            ("fees_breakdown", Value::Null),
            ("connect", Value::Null),
            ("transaction_date", json!(created)),
            ("plan_object", json!({})),
            ("subaccount", json!({})),
        ] {
            out.insert(k.to_owned(), v);
        }
        Value::Object(out)
    }

    /// The refund in the shape of `GET /refund/:id` (`transaction` is the numeric id).
    fn refund_json(&self, r: &PaystackRefund) -> Value {
        json!({
            "integration": INTEGRATION_ID,
            "transaction": r.transaction_id,
            "dispute": null,
            "settlement": null,
            "domain": "test",
            "amount": r.amount,
            "deducted_amount": if r.status == "processed" { r.amount } else { 0 },
            "fully_deducted": r.status == "processed",
            "currency": r.currency,
            "channel": "card",
            "status": r.status,
            "refunded_by": "standin@stoep.test",
            "refunded_at": r.refunded_at_ms.map(iso_ms),
            "expected_at": iso_ms(r.created_at_ms + 7 * 24 * 3600 * 1000),
            "customer_note": r.customer_note,
            "merchant_note": r.merchant_note,
            "id": r.id,
            "createdAt": iso_ms(r.created_at_ms),
            "updatedAt": iso_ms(r.updated_at_ms),
        })
    }

    /// A `refund.*` webhook's data: Paystack's small shape, with no refund id.
    fn refund_event_data(&self, r: &PaystackRefund) -> Value {
        json!({
            "status": r.status,
            "transaction_reference": r.transaction_reference,
            "refund_reference": r.refund_reference,
            "amount": r.amount.to_string(),
            "currency": r.currency,
            "processor": "mpgs_zen",
            "customer": {
                "first_name": null,
                "last_name": null,
                "email": self
                    .transactions
                    .iter()
                    .find(|t| t.id == r.transaction_id)
                    .map(|t| t.email.clone()),
            },
            "integration": INTEGRATION_ID,
            "domain": "test",
        })
    }
}

impl Inner {
    /// Runs one change against the store, saves the state (if a file is configured) and queues
    /// the webhooks it created, in order.
    fn mutate<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let mut store = lock(&self.store);
        let result = f(&mut store);
        if let Some(path) = &self.cfg.state_file {
            crate::common::save_state(path, &*store, "Paystack");
        }
        for event in std::mem::take(&mut store.outbox) {
            self.send_event(&event);
        }
        result
    }

    /// Queues an event's webhook, if a URL is set.
    fn send_event(&self, event: &PaystackEvent) {
        let Some(url) = lock(&self.webhook_url).clone() else {
            return;
        };
        self.outbox.enqueue(Notification {
            id: event.seq.to_string(),
            kind: event.event.clone(),
            url,
            body: Bytes::from(event.body.clone()),
            content_type: "application/json".into(),
        });
    }

    /// Pays a transaction that is not paid yet; returns it.
    fn pay(&self, reference: &str, outcome: RefundOutcome) -> Result<PaystackTransaction, String> {
        self.mutate(|store| {
            let i = store.by_reference(reference).ok_or("no such transaction")?;
            let tx = &mut store.transactions[i];
            if tx.status == "success" || tx.status == "reversed" {
                return Err("the transaction is already paid".into());
            }
            tx.status = "success".into();
            tx.gateway_response = "Successful".into();
            tx.paid_at_ms = Some(now_ms());
            // A made-up fee: 2.9% + R1.00.
            tx.fees = Some((tx.amount * 29 + 500) / 1000 + 100);
            tx.refund_outcome = outcome;
            tx.authorization_code = Some(format!("AUTH_{}", random_code(10)));
            let tx = tx.clone();
            let data = store.transaction_json(&tx);
            store.emit("charge.success", data);
            Ok(tx)
        })
    }

    fn decline(&self, reference: &str) -> Result<(), String> {
        self.mutate(|store| {
            let i = store.by_reference(reference).ok_or("no such transaction")?;
            let tx = &mut store.transactions[i];
            if tx.status == "success" || tx.status == "reversed" {
                return Err("the transaction is already paid".into());
            }
            tx.status = "failed".into();
            tx.gateway_response = "Declined".into();
            Ok(())
        })
    }

    fn dispute(&self, reference: &str) -> Result<(), String> {
        self.mutate(|store| {
            let i = store.by_reference(reference).ok_or("no such transaction")?;
            let tx = store.transactions[i].clone();
            if tx.status != "success" {
                return Err("only a successful transaction can be disputed".into());
            }
            let now = now_ms();
            let (bin, last4) = tx.refund_outcome.card();
            let dispute = json!({
                "id": 2_867_000 + store.disputes.len() as u64 + 1,
                "refund_amount": tx.amount,
                "currency": tx.currency,
                "status": "awaiting-merchant-feedback",
                "resolution": null,
                "domain": "test",
                "transaction": store.transaction_json(&tx),
                "transaction_reference": tx.reference,
                "category": "chargeback",
                "customer": {
                    "id": tx.customer_id, "first_name": null, "last_name": null,
                    "email": tx.email, "customer_code": tx.customer_code, "phone": null,
                    "metadata": null, "risk_action": "default",
                    "international_format_phone": null,
                },
                "bin": bin,
                "last4": last4,
                "dueAt": iso_ms(now + 7 * 24 * 3600 * 1000),
                "resolvedAt": null,
                "evidence": null,
                "attachments": null,
                "note": null,
                "history": [{ "status": "pending", "by": tx.email, "createdAt": iso_ms(now) }],
                "messages": [{
                    "sender": tx.email,
                    "body": "I do not recognise this payment (stand-in dispute).",
                    "createdAt": iso_ms(now),
                }],
                "created_at": iso_ms(now),
                "updated_at": iso_ms(now),
            });
            store.disputes.push(dispute.clone());
            store.emit("charge.dispute.create", dispute);
            Ok(())
        })
    }

    /// Moves a refund one step on: `pending` → `processing` (or `needs-attention`), then
    /// `processing` → `processed` or `failed`, with the webhooks. `false` when it is done.
    fn advance_refund(&self, id: u64) -> bool {
        self.mutate(|store| {
            let Some(i) = store.refunds.iter().position(|r| r.id == id) else {
                return false;
            };
            let now = now_ms();
            let r = &mut store.refunds[i];
            let (event, more) = match (r.status.as_str(), r.outcome) {
                ("pending", RefundOutcome::NeedsAttention) => {
                    // Paystack sends no webhook for this status; the merchant finds out by
                    // polling.
                    r.status = "needs-attention".into();
                    (None, false)
                }
                ("pending", _) => {
                    r.status = "processing".into();
                    (Some("refund.processing"), true)
                }
                ("processing", RefundOutcome::Failed) => {
                    r.status = "failed".into();
                    (Some("refund.failed"), false)
                }
                ("processing", _) => {
                    r.status = "processed".into();
                    r.refunded_at_ms = Some(now);
                    r.refund_reference = Some(random_digits(12));
                    (Some("refund.processed"), false)
                }
                _ => return false,
            };
            r.updated_at_ms = now;
            let r = r.clone();
            if r.status == "processed"
                && let Some(t) = store
                    .transactions
                    .iter()
                    .position(|t| t.id == r.transaction_id)
                && store.refundable(&store.transactions[t]) == 0
            {
                store.transactions[t].status = "reversed".into();
            }
            if let Some(event) = event {
                let data = store.refund_event_data(&r);
                store.emit(event, data);
            }
            more
        })
    }
}

/// Steps a refund through its statuses in the background, one [`PaystackStandinConfig::refund_step`]
/// apart, until it is done or the stand-in stops.
fn spawn_refund_progress(inner: Arc<Inner>, id: u64) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = inner.shutdown.cancelled() => break,
                _ = tokio::time::sleep(inner.cfg.refund_step) => {}
            }
            if !inner.advance_refund(id) {
                break;
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The HTTP API
// ---------------------------------------------------------------------------------------------

/// An error in Paystack's shape.
struct ApiError {
    status: StatusCode,
    message: String,
    kind: Option<&'static str>,
    code: Option<&'static str>,
    next_step: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind: None,
            code: None,
            next_step: None,
        }
    }

    /// `400`, `validation_error`.
    fn validation(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind: Some("validation_error"),
            code: Some(code),
            ..Self::new(StatusCode::BAD_REQUEST, message)
        }
    }

    fn next_step(mut self, step: &'static str) -> Self {
        self.next_step = Some(step);
        self
    }

    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("status".into(), json!(false));
        body.insert("message".into(), json!(self.message));
        if let Some(step) = self.next_step {
            body.insert("meta".into(), json!({ "nextStep": step }));
        }
        if let Some(kind) = self.kind {
            body.insert("type".into(), json!(kind));
        }
        if let Some(code) = self.code {
            body.insert("code".into(), json!(code));
        }
        (self.status, axum::Json(Value::Object(body))).into_response()
    }
}

fn ok(message: &str, data: Value) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({ "status": true, "message": message, "data": data })),
    )
        .into_response()
}

fn ok_list(
    message: &str,
    data: Vec<Value>,
    total: usize,
    per_page: usize,
    page: usize,
) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({
            "status": true,
            "message": message,
            "data": data,
            "meta": {
                "total": total,
                "skipped": (page - 1) * per_page,
                "perPage": per_page,
                "page": page,
                "pageCount": total.div_ceil(per_page).max(1),
            },
        })),
    )
        .into_response()
}

/// `sk_test_****************0000`.
fn mask_key(key: &str) -> String {
    let prefix = ["sk_test_", "sk_live_"]
        .into_iter()
        .find(|p| key.starts_with(p))
        .unwrap_or_default();
    let rest = &key[prefix.len()..];
    let tail: String = rest
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{prefix}****{tail}")
}

fn check_auth(headers: &HeaderMap, key: &str) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "No Authorization Header was found",
        ));
    };
    let given = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    if guards::signature::same(given, key) {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::UNAUTHORIZED, "Invalid key"))
    }
}

/// The request's JSON object (a form body is read as an object of strings; no body is `{}`).
fn body_object(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        return Ok(url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::validation(
            "invalid_params",
            "Invalid JSON body: an object was expected",
        )),
    }
}

/// An amount in cents given as a JSON integer or a string of digits (Paystack takes both).
fn amount_param(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    }
}

/// A string parameter (numbers read as their text), trimmed; `None` when missing or empty.
fn str_param(p: &Map<String, Value>, name: &str) -> Option<String> {
    match p.get(name)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `?perPage=&page=` (Paystack's defaults: 50 and 1).
fn paging(query: &[(String, String)]) -> (usize, usize) {
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let per_page = get("perPage").unwrap_or(50).clamp(1, 1000);
    let page = get("page").unwrap_or(1).max(1);
    (per_page, page)
}

/// Every API request: faults, authentication, then the endpoint.
async fn handle_api(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let faults = &inner.cfg.faults;
    if faults.api_down.load(Ordering::SeqCst) {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service temporarily unavailable (stand-in fault: API down)",
        );
        e.kind = Some("api_error");
        return e.into_response();
    }
    if take_one(&faults.fail_next_api_calls) {
        let mut e = ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An error occurred (stand-in fault: failing API calls)",
        );
        e.kind = Some("api_error");
        return e.into_response();
    }
    if let Err(e) = check_auth(&headers, &inner.cfg.secret_key) {
        return e.into_response();
    }
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let params = if method == Method::POST || method == Method::PUT {
        match body_object(&headers, &body) {
            Ok(p) => p,
            Err(e) => return e.into_response(),
        }
    } else {
        Map::new()
    };
    let path = uri.path().trim_matches('/');
    let segments: Vec<&str> = path.split('/').collect();
    let result = match (method.as_str(), segments.as_slice()) {
        ("POST", ["transaction", "initialize"]) => initialize(&inner, &params),
        ("GET", ["transaction", "verify", reference]) => {
            let store = lock(&inner.store);
            match store.by_reference(reference) {
                Some(i) => Ok(ok(
                    "Verification successful",
                    store.transaction_json(&store.transactions[i]),
                )),
                // The API spec says 404; clients have seen 400. The spec is followed.
                None => Err(ApiError {
                    kind: Some("validation_error"),
                    code: Some("transaction_not_found"),
                    ..ApiError::new(StatusCode::NOT_FOUND, "Transaction reference not found")
                }),
            }
        }
        ("GET", ["transaction"]) => {
            let store = lock(&inner.store);
            let (per_page, page) = paging(&query);
            let status = query
                .iter()
                .find(|(k, _)| k == "status")
                .map(|(_, v)| v.as_str());
            let all: Vec<&PaystackTransaction> = store
                .transactions
                .iter()
                .rev()
                .filter(|t| status.is_none_or(|s| t.status == s))
                .collect();
            let data = all
                .iter()
                .skip((page - 1) * per_page)
                .take(per_page)
                .map(|t| store.transaction_json(t))
                .collect();
            Ok(ok_list(
                "Transactions retrieved",
                data,
                all.len(),
                per_page,
                page,
            ))
        }
        ("GET", ["transaction", id]) => {
            let store = lock(&inner.store);
            match id
                .parse::<u64>()
                .ok()
                .and_then(|id| store.transactions.iter().find(|t| t.id == id))
            {
                Some(t) => Ok(ok("Transaction retrieved", store.transaction_json(t))),
                None => Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "Transaction not found",
                )),
            }
        }
        ("POST", ["refund"]) => create_refund(&inner, &params),
        ("GET", ["refund"]) => {
            let store = lock(&inner.store);
            let (per_page, page) = paging(&query);
            let tx = query
                .iter()
                .find(|(k, _)| k == "transaction")
                .map(|(_, v)| v.as_str());
            let tx_id = tx.and_then(|key| {
                store
                    .by_id_or_reference(key)
                    .map(|i| store.transactions[i].id)
            });
            let all: Vec<&PaystackRefund> = store
                .refunds
                .iter()
                .rev()
                .filter(|r| tx.is_none() || Some(r.transaction_id) == tx_id)
                .collect();
            let data = all
                .iter()
                .skip((page - 1) * per_page)
                .take(per_page)
                .map(|r| store.refund_json(r))
                .collect();
            Ok(ok_list(
                "Refunds retrieved",
                data,
                all.len(),
                per_page,
                page,
            ))
        }
        ("GET", ["refund", id]) => {
            let store = lock(&inner.store);
            match id
                .parse::<u64>()
                .ok()
                .and_then(|id| store.refunds.iter().find(|r| r.id == id))
            {
                Some(r) => Ok(ok("Refund retrieved", store.refund_json(r))),
                None => Err(ApiError::new(StatusCode::NOT_FOUND, "Refund not found")),
            }
        }
        ("POST", ["refund", "retry_with_customer_details", id]) => {
            retry_refund(&inner, id, &params)
        }
        ("GET", ["balance"]) => {
            let store = lock(&inner.store);
            let received: i64 = store
                .transactions
                .iter()
                .filter(|t| t.status == "success" || t.status == "reversed")
                .map(|t| t.amount - t.fees.unwrap_or(0))
                .sum();
            let refunded: i64 = store
                .refunds
                .iter()
                .filter(|r| r.status == "processed")
                .map(|r| r.amount)
                .sum();
            Ok(ok(
                "Balances retrieved",
                json!([{ "currency": "ZAR", "balance": received - refunded }]),
            ))
        }
        ("GET", ["integration", "payment_session_timeout"]) => Ok(ok(
            "Payment session timeout retrieved",
            json!({ "payment_session_timeout": 30 }),
        )),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "The Paystack stand-in does not serve {method} /{path} (transactions, refunds, the balance and the session timeout only)"
            ),
        )),
    };
    result.unwrap_or_else(ApiError::into_response)
}

/// `POST /transaction/initialize`.
fn initialize(inner: &Inner, p: &Map<String, Value>) -> Result<Response, ApiError> {
    let email = str_param(p, "email")
        .filter(|e| e.contains('@') && e.len() <= 254)
        .ok_or_else(|| ApiError::validation("invalid_params", "Invalid Email Address Passed"))?;
    let amount = p
        .get("amount")
        .and_then(amount_param)
        .ok_or_else(|| ApiError::validation("invalid_params", "Invalid Amount Sent"))?;
    if amount < MIN_AMOUNT {
        return Err(ApiError::validation(
            "invalid_amount",
            "Invalid Amount Sent: the minimum amount is 100 (R1.00)",
        ));
    }
    let currency = str_param(p, "currency").unwrap_or_else(|| "ZAR".into());
    if currency != "ZAR" {
        return Err(ApiError::validation(
            "unsupported_currency",
            "Currency not supported by merchant",
        ));
    }
    let reference = match str_param(p, "reference") {
        Some(r) => {
            if r.len() > MAX_REFERENCE
                || !r
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'='))
            {
                return Err(ApiError::validation(
                    "invalid_reference",
                    "Invalid transaction reference: only -, ., = and alphanumeric characters are allowed",
                ));
            }
            r
        }
        None => random_code(10),
    };
    let callback_url = match str_param(p, "callback_url") {
        Some(u) if url::Url::parse(&u).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) => {
            Some(u)
        }
        Some(_) => {
            return Err(ApiError::validation(
                "invalid_params",
                "Invalid callback_url: a http(s) URL was expected",
            ));
        }
        None => None,
    };
    let metadata = match p.get("metadata") {
        None | Some(Value::Null) => json!(""),
        Some(Value::Object(m)) => Value::Object(m.clone()),
        // Paystack accepts stringified JSON and stores what it holds.
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => Value::String(s.clone()),
        },
        Some(_) => {
            return Err(ApiError::validation(
                "invalid_params",
                "Invalid metadata: an object was expected",
            ));
        }
    };
    let channels = match p.get("channels") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => {
            let mut out = Vec::new();
            for c in list {
                match c.as_str() {
                    Some(c) if CHANNELS.contains(&c) => out.push(c.to_owned()),
                    _ => {
                        return Err(ApiError::validation(
                            "invalid_params",
                            format!(
                                "Invalid channels: each must be one of {}",
                                CHANNELS.join(", ")
                            ),
                        ));
                    }
                }
            }
            out
        }
        Some(_) => {
            return Err(ApiError::validation(
                "invalid_params",
                "Invalid channels: an array was expected",
            ));
        }
    };
    let access_code = random_code(15);
    let authorization_url = format!("{}/checkout/{access_code}", inner.base_url);
    inner.mutate(|store| {
        if store.by_reference(&reference).is_some() {
            return Err(ApiError::validation(
                "duplicate_reference",
                "Duplicate Transaction Reference",
            )
            .next_step("Try and create the Transaction or Charge with a new reference"));
        }
        store.last_transaction_id = store.last_transaction_id.max(FIRST_TRANSACTION_ID - 1) + 1;
        let (customer_id, customer_code) = store.customer(&email);
        store.transactions.push(PaystackTransaction {
            id: store.last_transaction_id,
            reference: reference.clone(),
            access_code: access_code.clone(),
            email,
            amount,
            currency,
            status: "abandoned".into(),
            gateway_response: "The transaction was not completed".into(),
            callback_url,
            metadata,
            channels,
            fees: None,
            created_at_ms: now_ms(),
            paid_at_ms: None,
            refund_outcome: RefundOutcome::default(),
            authorization_code: None,
            customer_id,
            customer_code,
        });
        Ok(ok(
            "Authorization URL created",
            json!({
                "authorization_url": authorization_url,
                "access_code": access_code,
                "reference": reference,
            }),
        ))
    })
}

/// `POST /refund`.
fn create_refund(inner: &Arc<Inner>, p: &Map<String, Value>) -> Result<Response, ApiError> {
    let key = str_param(p, "transaction")
        .ok_or_else(|| ApiError::validation("invalid_params", "Transaction is required"))?;
    let amount = match p.get("amount") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            amount_param(v)
                .filter(|a| *a > 0)
                .ok_or_else(|| ApiError::validation("invalid_params", "Invalid amount"))?,
        ),
    };
    let faults = &inner.cfg.faults;
    let response = inner.mutate(|store| {
        let i = store
            .by_id_or_reference(&key)
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "Transaction not found"))?;
        let tx = store.transactions[i].clone();
        if tx.status == "reversed" {
            return Err(ApiError::validation(
                "transaction_reversed",
                "Transaction has been fully reversed",
            ));
        }
        if tx.status != "success" {
            return Err(ApiError::validation(
                "transaction_not_successful",
                "Cannot refund a transaction that was not successful",
            ));
        }
        if let Some(currency) = str_param(p, "currency")
            && currency != tx.currency
        {
            return Err(ApiError::validation(
                "invalid_params",
                "Currency does not match the transaction's",
            ));
        }
        let available = store.refundable(&tx);
        let amount = amount.unwrap_or(available);
        if amount > available || amount == 0 {
            return Err(ApiError::validation(
                "invalid_amount",
                "Refund amount cannot be greater than the transaction amount still refundable",
            ));
        }
        let outcome = if take_one(&faults.fail_next_refunds) {
            RefundOutcome::Failed
        } else if take_one(&faults.needs_attention_next_refunds) {
            RefundOutcome::NeedsAttention
        } else {
            tx.refund_outcome
        };
        store.last_refund_id = store.last_refund_id.max(FIRST_REFUND_ID - 1) + 1;
        let now = now_ms();
        let refund = PaystackRefund {
            id: store.last_refund_id,
            transaction_id: tx.id,
            transaction_reference: tx.reference.clone(),
            amount,
            currency: tx.currency.clone(),
            status: "pending".into(),
            customer_note: str_param(p, "customer_note")
                .unwrap_or_else(|| format!("Refund for transaction {}", tx.reference)),
            merchant_note: str_param(p, "merchant_note")
                .unwrap_or_else(|| format!("Refund for transaction {}", tx.reference)),
            created_at_ms: now,
            updated_at_ms: now,
            refunded_at_ms: None,
            refund_reference: None,
            outcome,
        };
        store.refunds.push(refund.clone());
        let data = store.refund_event_data(&refund);
        store.emit("refund.pending", data);
        // Here `transaction` is the transaction object, not its id (as at Paystack).
        let mut body = store.refund_json(&refund);
        body["transaction"] = store.transaction_json(&tx);
        for k in ["dispute", "settlement", "refunded_at"] {
            if let Some(map) = body.as_object_mut() {
                map.remove(k);
            }
        }
        Ok((refund.id, ok("Refund has been queued for processing", body)))
    })?;
    spawn_refund_progress(inner.clone(), response.0);
    Ok(response.1)
}

/// `POST /refund/retry_with_customer_details/{id}`: a refund that needs attention goes on to
/// processing with the customer's bank details.
fn retry_refund(
    inner: &Arc<Inner>,
    id: &str,
    p: &Map<String, Value>,
) -> Result<Response, ApiError> {
    let details = match p.get("refund_account_details") {
        Some(Value::Object(d)) => d.clone(),
        _ => {
            return Err(ApiError::validation(
                "invalid_params",
                "refund_account_details is required",
            ));
        }
    };
    for field in ["currency", "account_number", "bank_id"] {
        if str_param(&details, field).is_none() {
            return Err(ApiError::validation(
                "invalid_params",
                format!("refund_account_details.{field} is required"),
            ));
        }
    }
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "Refund not found"))?;
    let body = inner.mutate(|store| {
        let i = store
            .refunds
            .iter()
            .position(|r| r.id == id)
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "Refund not found"))?;
        if store.refunds[i].status != "needs-attention" {
            return Err(ApiError::validation(
                "invalid_params",
                "Only a refund that needs attention can be retried with customer details",
            ));
        }
        let r = &mut store.refunds[i];
        r.status = "processing".into();
        r.outcome = RefundOutcome::Processed;
        r.updated_at_ms = now_ms();
        let r = r.clone();
        let data = store.refund_event_data(&r);
        store.emit("refund.processing", data);
        Ok(store.refund_json(&r))
    })?;
    spawn_refund_progress(inner.clone(), id);
    Ok(ok("Refund retried", body))
}

// ---------------------------------------------------------------------------------------------
// The hosted checkout and the admin page
// ---------------------------------------------------------------------------------------------

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    (status, Html(page(title, body, false))).into_response()
}

fn checkout_not_found() -> Response {
    html(
        StatusCode::NOT_FOUND,
        "Checkout not found",
        "<h1>Checkout not found</h1><p>This payment link is not valid. Please return to the shop and try again.</p>",
    )
}

fn by_access_code(inner: &Inner, code: &str) -> Option<PaystackTransaction> {
    lock(&inner.store)
        .transactions
        .iter()
        .find(|t| t.access_code == code)
        .cloned()
}

/// `callback_url` with `trxref` and `reference` appended, as Paystack redirects.
fn callback_with_reference(callback: &str, reference: &str) -> Option<String> {
    let mut url = url::Url::parse(callback).ok()?;
    url.query_pairs_mut()
        .append_pair("trxref", reference)
        .append_pair("reference", reference);
    Some(url.to_string())
}

fn render_checkout(inner: &Inner, tx: &PaystackTransaction, alert: Option<&str>) -> Response {
    let business = esc(&inner.cfg.business_name);
    let amount = format!("R {}.{:02}", tx.amount / 100, tx.amount % 100);
    if tx.status == "success" || tx.status == "reversed" {
        let link = tx
            .callback_url
            .as_deref()
            .and_then(|c| callback_with_reference(c, &tx.reference))
            .map(|u| format!("<p><a href=\"{}\">Return to the merchant</a></p>", esc(&u)))
            .unwrap_or_default();
        return html(
            StatusCode::OK,
            "Payment successful",
            &format!(
                "<p class=\"note\">{business}</p><h1>Payment successful</h1><p>{} was paid. Reference {}.</p>{link}",
                esc(&amount),
                esc(&tx.reference)
            ),
        );
    }
    let alert = alert
        .map(|a| format!("<div class=\"alert\" role=\"alert\">{}</div>", esc(a)))
        .unwrap_or_default();
    let body = format!(
        "<p class=\"note\">{business} &middot; test mode (Paystack stand-in)</p>\
         <h1>Pay {business}</h1><p>{email}: <strong>{amount}</strong></p>{alert}\
         <form method=\"post\" action=\"/checkout/{code}\">\
         <button class=\"primary\" type=\"submit\" name=\"action\" value=\"pay\">Pay {amount} with card 4084 0840 8408 4081</button>\
         <button class=\"secondary\" type=\"submit\" name=\"action\" value=\"pay_refund_fails\">Pay with card 4084 0800 0067 1803 (its refunds fail)</button>\
         <button class=\"secondary\" type=\"submit\" name=\"action\" value=\"pay_refund_needs_attention\">Pay with card 4084 0800 0067 1902 (its refunds need attention)</button>\
         <button class=\"secondary\" type=\"submit\" name=\"action\" value=\"decline\">Pay with a card that will be declined</button>\
         <button class=\"secondary\" type=\"submit\" name=\"action\" value=\"abandon\">Cancel payment</button>\
         </form>",
        email = esc(&tx.email),
        amount = esc(&amount),
        code = esc(&tx.access_code),
    );
    let status = if alert.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::PAYMENT_REQUIRED
    };
    html(status, &format!("Pay {}", inner.cfg.business_name), &body)
}

/// `GET /checkout/{access_code}`.
async fn show_checkout(State(inner): State<Arc<Inner>>, Path(code): Path<String>) -> Response {
    match by_access_code(&inner, &code) {
        Some(tx) => render_checkout(&inner, &tx, None),
        None => checkout_not_found(),
    }
}

/// `POST /checkout/{access_code}` with `action` = `pay`, `pay_refund_fails`,
/// `pay_refund_needs_attention`, `decline` or `abandon`.
async fn submit_checkout(
    State(inner): State<Arc<Inner>>,
    Path(code): Path<String>,
    body: Bytes,
) -> Response {
    let action = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "action")
        .map(|(_, v)| v.into_owned());
    let Some(tx) = by_access_code(&inner, &code) else {
        return checkout_not_found();
    };
    let outcome = match action.as_deref() {
        Some("pay") => Some(RefundOutcome::Processed),
        Some("pay_refund_fails") => Some(RefundOutcome::Failed),
        Some("pay_refund_needs_attention") => Some(RefundOutcome::NeedsAttention),
        _ => None,
    };
    match (action.as_deref(), outcome) {
        (_, Some(outcome)) => match inner.pay(&tx.reference, outcome) {
            Ok(tx) => match tx
                .callback_url
                .as_deref()
                .and_then(|c| callback_with_reference(c, &tx.reference))
            {
                Some(url) => Redirect::to(&url).into_response(),
                None => render_checkout(&inner, &tx, None),
            },
            Err(_) => match by_access_code(&inner, &code) {
                Some(tx) => render_checkout(&inner, &tx, None),
                None => checkout_not_found(),
            },
        },
        (Some("decline"), _) => {
            let _ = inner.decline(&tx.reference);
            match by_access_code(&inner, &code) {
                Some(tx) => render_checkout(
                    &inner,
                    &tx,
                    Some("Declined: the card was declined by the bank. Try another card."),
                ),
                None => checkout_not_found(),
            }
        }
        (Some("abandon"), _) => {
            // `metadata.cancel_action` is where Paystack sends a buyer who cancels; without
            // one, back to the callback (where the portal's verify finds it abandoned).
            let cancel = tx
                .metadata
                .get("cancel_action")
                .and_then(Value::as_str)
                .filter(|u| url::Url::parse(u).is_ok())
                .map(str::to_owned)
                .or_else(|| {
                    tx.callback_url
                        .as_deref()
                        .and_then(|c| callback_with_reference(c, &tx.reference))
                });
            match cancel {
                Some(url) if tx.status != "success" && tx.status != "reversed" => {
                    Redirect::to(&url).into_response()
                }
                _ => html(
                    StatusCode::OK,
                    "Payment cancelled",
                    "<h1>Payment cancelled</h1><p>No payment was taken. You can close this page.</p>",
                ),
            }
        }
        _ => html(
            StatusCode::BAD_REQUEST,
            "Unknown action",
            "<h1>Unknown action</h1><p>Please use the buttons on the checkout page.</p>",
        ),
    }
}

/// `GET /_standin`: transactions, refunds and webhook deliveries, newest first.
async fn show_admin(State(inner): State<Arc<Inner>>) -> Response {
    let (transactions, refunds) = {
        let store = lock(&inner.store);
        (store.transactions.clone(), store.refunds.clone())
    };
    let money = |cents: i64| format!("R {}.{:02}", cents / 100, cents % 100);
    let mut body = format!(
        "<h1>Paystack stand-in</h1><p>API: <code>{base}</code>. Webhooks to: <code>{hook}</code>. Faults: {faults}.</p>",
        base = esc(&inner.base_url),
        hook = esc(lock(&inner.webhook_url).as_deref().unwrap_or("(none)")),
        faults = esc(&inner.cfg.faults.describe()),
    );
    body.push_str(
        "<h2>Transactions</h2><table><thead><tr><th scope=\"col\">Reference</th><th scope=\"col\">Id</th>\
         <th scope=\"col\">Email</th><th scope=\"col\">Amount</th><th scope=\"col\">Status</th>\
         <th scope=\"col\">Created</th></tr></thead><tbody>",
    );
    for t in transactions.iter().rev() {
        body.push_str(&format!(
            "<tr><td><a href=\"/checkout/{code}\">{reference}</a></td><td>{id}</td><td>{email}</td><td>{amount}</td><td>{status}</td><td>{created}</td></tr>",
            code = esc(&t.access_code),
            reference = esc(&t.reference),
            id = t.id,
            email = esc(&t.email),
            amount = esc(&money(t.amount)),
            status = esc(&t.status),
            created = esc(&iso_ms(t.created_at_ms)),
        ));
    }
    body.push_str(
        "</tbody></table><h2>Refunds</h2><table><thead><tr><th scope=\"col\">Id</th><th scope=\"col\">Transaction</th>\
         <th scope=\"col\">Amount</th><th scope=\"col\">Status</th><th scope=\"col\">Updated</th></tr></thead><tbody>",
    );
    for r in refunds.iter().rev() {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.id,
            esc(&r.transaction_reference),
            esc(&money(r.amount)),
            esc(&r.status),
            esc(&iso_ms(r.updated_at_ms)),
        ));
    }
    body.push_str("</tbody></table>");
    body.push_str(&crate::payfast::delivery_table(&inner.outbox.log()));
    (StatusCode::OK, Html(page("Paystack stand-in", &body, true))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_paystack_writes_them() {
        assert_eq!(iso_ms(1_704_103_200_123), "2024-01-01T10:00:00.123Z");
    }

    #[test]
    fn keys_are_masked_in_logs() {
        assert_eq!(mask_key(SECRET_KEY), "sk_test_****0000");
        assert_eq!(mask_key("abc"), "****abc");
    }

    #[test]
    fn amounts_are_read_as_integers_or_digit_strings() {
        assert_eq!(amount_param(&json!(20000)), Some(20000));
        assert_eq!(amount_param(&json!("20000")), Some(20000));
        assert_eq!(amount_param(&json!("200.00")), None);
        assert_eq!(amount_param(&json!(200.5)), None);
        assert_eq!(amount_param(&json!("")), None);
    }

    #[test]
    fn the_callback_gets_both_reference_parameters() {
        assert_eq!(
            callback_with_reference("https://portal.example/pay/return?x=1", "INV-1").as_deref(),
            Some("https://portal.example/pay/return?x=1&trxref=INV-1&reference=INV-1")
        );
    }
}
