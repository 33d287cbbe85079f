//! A local stand-in for the part of Stripe the portal uses, so demos and tests run without a
//! Stripe account or network access.
//!
//! It answers Stripe's HTTP API for Checkout Sessions, refunds, the balance and event retrieval
//! in Stripe's JSON shapes, so the production client (async-stripe, pointed here with
//! `ClientBuilder::new(key).url(standin.base_url())`) works unchanged. It serves a hosted
//! checkout page (`/pay/{session_id}`) whose buttons pay, decline, pay later or cancel, and it
//! delivers signed webhooks the way Stripe does: one event at a time, with retries on a
//! schedule, and with fault switches ([`StripeFaults`]) for outages, drops, duplicates, delays
//! and reordering. `GET /_standin` shows everything it holds, for admins in demos.
//!
//! Use it embedded in the portal when no real Stripe key is configured, and in tests, which
//! start their own instance on port 0. It is not a Stripe emulator: only `mode=payment`
//! sessions with `price_data` line items exist, every payment is by "card" (or a delayed
//! "bank transfer"), and only the events the portal handles are emitted:
//! `checkout.session.completed`, `checkout.session.async_payment_succeeded` / `_failed`,
//! `checkout.session.expired`, `payment_intent.payment_failed`, `charge.refunded` and
//! `charge.dispute.created`.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{esc, lock, now_secs, page};
use crate::controls::StripeFaults;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The API version stamped on events: the one async-stripe 1.0.0-rc.10 pins
/// (`stripe_shared::version::VERSION`) and sends as `Stripe-Version`. A test compares it with
/// the header the client really sends, so an upgrade of async-stripe cannot silently drift.
pub const API_VERSION: &str = "2026-09-30.endive";

/// Largest request body accepted, API or hosted page.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long one webhook delivery attempt may take before it counts as failed (Stripe: 10 s).
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// How often open sessions are checked for expiry.
const EXPIRY_TICK: Duration = Duration::from_millis(500);
/// The longest the delivery worker sleeps before looking at the fault switches again.
const WORKER_POLL: Duration = Duration::from_millis(50);
/// Stripe keeps idempotency keys for 24 hours.
const IDEMPOTENCY_TTL_SECS: i64 = 24 * 60 * 60;
/// Stripe's largest charge (in minor units).
const MAX_AMOUNT: i64 = 99_999_999;
/// Currencies without minor units: amounts are whole units.
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

type HmacSha256 = Hmac<Sha256>;

// ---------------------------------------------------------------------------------------------
// Configuration and public API
// ---------------------------------------------------------------------------------------------

/// The stand-in's API key and webhook signing secret: fixed, because it only listens on loopback
/// and holds no real money. The portal refuses them as real keys.
pub const API_KEY: &str = "sk_test_stoep_standin";
pub const WEBHOOK_SECRET: &str = "whsec_stoep_standin";

/// How a stand-in behaves. [`Default`] gives fixed, obviously fake test secrets, no webhook
/// endpoint, Stripe's retry schedule and no persistence.
#[derive(Clone)]
pub struct StandinConfig {
    /// The only secret key accepted (as `Authorization: Bearer ...`); others get `401`.
    pub api_key: String,
    /// Where events are POSTed. `None`: events are recorded but not queued for delivery.
    pub webhook_url: Option<String>,
    /// The signing secret (`whsec_...`), used whole as the HMAC key, as Stripe does.
    pub webhook_secret: String,
    /// Fault switches, read at each API call and delivery attempt.
    pub faults: Arc<StripeFaults>,
    /// Delays between delivery attempts; after the last one the event is given up.
    pub retry_schedule: Vec<Duration>,
    /// If set, sessions, payment intents, charges, refunds, disputes, events and idempotency
    /// keys are saved here as JSON after each change and loaded at start.
    pub state_file: Option<PathBuf>,
    /// Shown on the hosted checkout page.
    pub business_name: String,
}

impl StandinConfig {
    /// Stripe's schedule, compressed from days to minutes: 1 s, 2 s, 5 s, 15 s, 30 s, 1 min,
    /// 2 min, 5 min.
    pub fn default_retry_schedule() -> Vec<Duration> {
        [1, 2, 5, 15, 30, 60, 120, 300]
            .into_iter()
            .map(Duration::from_secs)
            .collect()
    }
}

impl Default for StandinConfig {
    fn default() -> Self {
        Self {
            api_key: API_KEY.into(),
            webhook_url: None,
            webhook_secret: WEBHOOK_SECRET.into(),
            faults: Arc::default(),
            retry_schedule: Self::default_retry_schedule(),
            state_file: None,
            business_name: "Stoep".into(),
        }
    }
}

/// Secrets stay out of logs.
impl fmt::Debug for StandinConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandinConfig")
            .field("api_key", &mask_key(&self.api_key))
            .field("webhook_url", &self.webhook_url)
            .field("webhook_secret", &"whsec_****")
            .field("faults", &self.faults)
            .field("retry_schedule", &self.retry_schedule)
            .field("state_file", &self.state_file)
            .field("business_name", &self.business_name)
            .finish()
    }
}

/// One webhook delivery attempt, as the admin page and tests see it.
#[derive(Clone, Debug, Serialize)]
pub struct Delivery {
    pub event_id: String,
    pub event_type: String,
    /// When the attempt ended (Unix milliseconds).
    pub at_ms: u64,
    /// 1 for the first attempt of this delivery, 2 for its first retry, and so on.
    pub attempt: u32,
    /// The endpoint's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why no status: a connection error, a timeout, or no webhook URL.
    pub error: Option<String>,
    /// Dropped by the `drop_next_webhooks` fault: never sent, retried like a failure.
    pub dropped: bool,
    /// An extra copy sent by the `duplicate_webhooks` fault.
    pub duplicate: bool,
    /// The last attempt failed and the schedule is used up: the delivery was given up.
    pub gave_up: bool,
}

impl Delivery {
    /// The endpoint answered 2xx.
    pub fn succeeded(&self) -> bool {
        matches!(self.status, Some(s) if (200..300).contains(&s))
    }
}

/// A running stand-in. Cheap to clone; it stops when the `shutdown` token given to
/// [`StripeStandin::start`] is cancelled.
#[derive(Clone)]
pub struct StripeStandin {
    inner: Arc<Inner>,
}

impl StripeStandin {
    /// Serves the stand-in on `listener` (bind `127.0.0.1:0` in tests) and starts the webhook
    /// worker and the expiry ticker. Loads `state_file` if it exists; a file that cannot be
    /// parsed is logged and ignored (it is overwritten at the next change).
    pub async fn start(
        listener: TcpListener,
        cfg: StandinConfig,
        shutdown: CancellationToken,
    ) -> std::io::Result<StripeStandin> {
        let addr = listener.local_addr()?;
        let mut store = match &cfg.state_file {
            Some(path) => crate::common::load_state(path, "Stripe").await?,
            None => Store::default(),
        };
        let base_url = format!("http://{addr}");
        store.base_url.clone_from(&base_url);
        let http = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let inner = Arc::new(Inner {
            base_url,
            webhook_url: Mutex::new(cfg.webhook_url.clone()),
            cfg,
            store: Mutex::new(store),
            deliveries: Mutex::new(Deliveries::default()),
            wake: Notify::new(),
            http,
            last_stripe_version: Mutex::new(None),
        });

        let router = Router::new()
            .route("/v1/{*path}", any(handle_api))
            .route(
                "/pay/{session_id}",
                get(show_checkout).post(submit_checkout),
            )
            .route("/_standin", get(show_admin))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(inner.clone());
        let server_shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(server_shutdown.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "the Stripe stand-in stopped serving");
            }
        });
        tokio::spawn(run_deliveries(inner.clone(), shutdown.clone()));
        tokio::spawn(run_expiry(inner.clone(), shutdown));
        tracing::info!(base_url = %inner.base_url, "Stripe stand-in listening");
        Ok(StripeStandin { inner })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash; give it to `ClientBuilder::url`.
    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// The hosted checkout page of a session (also its `url` field).
    pub fn checkout_url(&self, session_id: &str) -> String {
        self.inner.checkout_url(session_id)
    }

    /// The secret key the stand-in accepts.
    pub fn api_key(&self) -> &str {
        &self.inner.cfg.api_key
    }

    /// The webhook signing secret.
    pub fn webhook_secret(&self) -> &str {
        &self.inner.cfg.webhook_secret
    }

    /// The fault switches (shared with whoever passed them in).
    pub fn faults(&self) -> &Arc<StripeFaults> {
        &self.inner.cfg.faults
    }

    /// Changes where events go. Events created while it was `None` are not delivered later
    /// (use [`StripeStandin::redeliver`]); queued deliveries use the new URL.
    pub fn set_webhook_url(&self, url: Option<String>) {
        *lock(&self.inner.webhook_url) = url;
    }

    /// The hosted page's "Pay" button: the card succeeds.
    pub async fn pay(&self, session_id: &str) -> Result<(), String> {
        self.inner
            .mutate(|s| s.complete(session_id, Completion::Paid, None))
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// The hosted page's "declined card" button: emits `payment_intent.payment_failed` and
    /// leaves the session open.
    pub async fn decline(&self, session_id: &str) -> Result<(), String> {
        self.inner
            .mutate(|s| s.decline(session_id))
            .map_err(|e| e.to_string())
    }

    /// The hosted page's "bank transfer" button: the session completes with
    /// `payment_status: "unpaid"` until [`StripeStandin::settle_async`].
    pub async fn pay_later(&self, session_id: &str) -> Result<(), String> {
        self.inner
            .mutate(|s| s.complete(session_id, Completion::Later, None))
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Settles a delayed payment: `checkout.session.async_payment_succeeded` (and the session
    /// becomes paid) or `checkout.session.async_payment_failed`.
    pub async fn settle_async(&self, session_id: &str, succeeded: bool) -> Result<(), String> {
        self.inner
            .mutate(|s| s.settle(session_id, succeeded))
            .map_err(|e| e.to_string())
    }

    /// Expires an open session now, as Stripe does at `expires_at`.
    pub async fn expire_now(&self, session_id: &str) -> Result<(), String> {
        self.inner
            .mutate(|s| s.expire(session_id, &RequestInfo::default()))
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// The customer's bank disputes a paid session's charge: `charge.dispute.created`.
    pub async fn dispute(&self, session_id: &str) -> Result<(), String> {
        self.inner
            .mutate(|s| s.dispute(session_id))
            .map_err(|e| e.to_string())
    }

    /// A session as the API returns it.
    pub fn session(&self, id: &str) -> Option<Value> {
        let store = lock(&self.inner.store);
        store
            .session_index(id)
            .map(|i| store.sessions[i].session.clone())
    }

    /// Every session, oldest first.
    pub fn sessions(&self) -> Vec<Value> {
        let store = lock(&self.inner.store);
        store.sessions.iter().map(|r| r.session.clone()).collect()
    }

    /// Every payment intent, oldest first.
    pub fn payment_intents(&self) -> Vec<Value> {
        lock(&self.inner.store).payment_intents.clone()
    }

    /// Every charge, oldest first.
    pub fn charges(&self) -> Vec<Value> {
        lock(&self.inner.store).charges.clone()
    }

    /// Every refund, oldest first.
    pub fn refunds(&self) -> Vec<Value> {
        lock(&self.inner.store).refunds.clone()
    }

    /// Every event created, in order.
    pub fn events(&self) -> Vec<Value> {
        lock(&self.inner.store).events.clone()
    }

    /// Every delivery attempt since start, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.inner.deliveries).log.clone()
    }

    /// The `Stripe-Version` header of the last API request (async-stripe sends its pinned
    /// version), for checking it against [`API_VERSION`].
    pub fn last_stripe_version(&self) -> Option<String> {
        lock(&self.inner.last_stripe_version).clone()
    }

    /// Queues one more delivery of an existing event (same id and body).
    pub fn redeliver(&self, event_id: &str) {
        let event = {
            let store = lock(&self.inner.store);
            store.events.iter().find(|e| e["id"] == event_id).cloned()
        };
        if let Some(event) = event {
            self.inner.enqueue(&[event]);
        }
    }

    /// Queues every event again, `times` times over, in creation order (a replay).
    pub fn redeliver_all(&self, times: usize) {
        let events = lock(&self.inner.store).events.clone();
        for _ in 0..times {
            self.inner.enqueue(&events);
        }
    }

    /// Waits until no delivery is pending or in flight; `false` if `timeout` passed first
    /// (for example while webhooks are paused or a retry is far off).
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let d = lock(&self.inner.deliveries);
                if d.pending.is_empty() && !d.in_flight {
                    return true;
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The value of a `Stripe-Signature` header for `payload` sent at `timestamp` (Unix seconds):
/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<payload>" keyed with the whole secret>`.
pub fn signature_header(secret: &str, timestamp: i64, payload: &str) -> String {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

// ---------------------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------------------

struct Inner {
    cfg: StandinConfig,
    base_url: String,
    webhook_url: Mutex<Option<String>>,
    /// Everything Stripe would store. Lock order: `store`, then `webhook_url` or `deliveries`.
    store: Mutex<Store>,
    deliveries: Mutex<Deliveries>,
    /// Wakes the delivery worker when something is queued.
    wake: Notify,
    http: reqwest::Client,
    last_stripe_version: Mutex<Option<String>>,
}

impl Inner {
    fn checkout_url(&self, session_id: &str) -> String {
        format!("{}/pay/{session_id}", self.base_url)
    }

    /// Runs one change against the store, then saves the state (if it changed and a file is
    /// configured) and queues the events it created, all under the store lock so events reach
    /// the queue in creation order. The file is small, so writing it here is fine.
    fn mutate<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let mut store = lock(&self.store);
        let result = f(&mut store);
        if store.dirty {
            store.dirty = false;
            if let Some(path) = &self.cfg.state_file {
                crate::common::save_state(path, &*store, "Stripe");
            }
        }
        let outbox = std::mem::take(&mut store.outbox);
        self.enqueue(&outbox);
        result
    }

    /// Queues a delivery of each event, if a webhook URL is set.
    fn enqueue(&self, events: &[Value]) {
        if events.is_empty() || lock(&self.webhook_url).is_none() {
            return;
        }
        let mut d = lock(&self.deliveries);
        for event in events {
            d.seq += 1;
            let seq = d.seq;
            d.pending.push(Pending {
                seq,
                event_id: event["id"].as_str().unwrap_or_default().to_owned(),
                event_type: event["type"].as_str().unwrap_or_default().to_owned(),
                body: Arc::new(event.to_string()),
                attempts: 0,
                due: Instant::now(),
            });
        }
        drop(d);
        self.wake.notify_one();
    }
}

/// What Stripe would store, in Stripe's JSON shapes, oldest first.
#[derive(Default, Serialize, Deserialize)]
struct Store {
    sessions: Vec<SessionRecord>,
    payment_intents: Vec<Value>,
    charges: Vec<Value>,
    refunds: Vec<Value>,
    disputes: Vec<Value>,
    events: Vec<Value>,
    /// Saved responses by `"<path> <Idempotency-Key>"`.
    idempotency: HashMap<String, SavedResponse>,
    /// Events created by the current change, queued by [`Inner::mutate`].
    #[serde(skip)]
    outbox: Vec<Value>,
    /// Whether the current change needs saving.
    #[serde(skip)]
    dirty: bool,
    /// For building session URLs.
    #[serde(skip)]
    base_url: String,
}

/// A Checkout Session and what Stripe keeps beside it.
#[derive(Clone, Serialize, Deserialize)]
struct SessionRecord {
    /// The API object.
    session: Value,
    line_items: Vec<LineItem>,
    /// `payment_intent_data[metadata]`, copied to the payment intent and charge.
    payment_intent_metadata: Map<String, Value>,
    /// The payment intent once one exists (after a decline it exists while
    /// `session.payment_intent` is still null).
    payment_intent_id: Option<String>,
}

#[derive(Clone, Serialize, Deserialize)]
struct LineItem {
    name: String,
    currency: String,
    unit_amount: i64,
    quantity: i64,
}

#[derive(Clone, Serialize, Deserialize)]
struct SavedResponse {
    params: Value,
    status: u16,
    body: Value,
    created: i64,
}

/// Who caused an event, as in the event's `request` field.
#[derive(Clone, Default)]
struct RequestInfo {
    id: Option<String>,
    idempotency_key: Option<String>,
}

/// Why a hosted-page or programmatic action could not happen.
#[derive(Debug)]
enum ActionError {
    NotFound,
    /// The session is no longer open (its status).
    NotOpen(String),
    Invalid(String),
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionError::NotFound => f.write_str("no such checkout session"),
            ActionError::NotOpen(status) => write!(f, "the checkout session is {status}"),
            ActionError::Invalid(msg) => f.write_str(msg),
        }
    }
}

enum Completion {
    /// Card payment that succeeds.
    Paid,
    /// Delayed method: completes unpaid, settles later.
    Later,
}

/// A Stripe-looking id: `prefix` and random letters and digits.
fn new_id(prefix: &str, len: usize) -> String {
    let tail: String = rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect();
    format!("{prefix}{tail}")
}

/// Builds a JSON object from pairs (avoids `json!`'s recursion limit on big objects).
fn obj<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn find(items: &[Value], id: &str) -> Option<usize> {
    items.iter().position(|v| v["id"] == id)
}

impl Store {
    fn session_index(&self, id: &str) -> Option<usize> {
        self.sessions.iter().position(|r| r.session["id"] == id)
    }

    /// Records an event and puts it in the outbox.
    fn emit(&mut self, event_type: &str, object: Value, request: &RequestInfo) {
        let event = obj([
            ("id", json!(new_id("evt_", 24))),
            ("object", json!("event")),
            ("api_version", json!(API_VERSION)),
            ("created", json!(now_secs())),
            ("data", json!({ "object": object })),
            ("livemode", json!(false)),
            ("pending_webhooks", json!(1)),
            (
                "request",
                json!({ "id": request.id, "idempotency_key": request.idempotency_key }),
            ),
            ("type", json!(event_type)),
        ]);
        self.events.push(event.clone());
        self.outbox.push(event);
        self.dirty = true;
    }

    /// The open session at `idx`, or why it is not.
    fn open_session(&self, id: &str) -> Result<usize, ActionError> {
        let idx = self.session_index(id).ok_or(ActionError::NotFound)?;
        match self.sessions[idx].session["status"].as_str() {
            Some("open") => Ok(idx),
            other => Err(ActionError::NotOpen(other.unwrap_or("unknown").to_owned())),
        }
    }

    /// The session's payment intent, created (as `requires_payment_method`) if it has none.
    fn ensure_payment_intent(&mut self, idx: usize) -> usize {
        if let Some(pi) = &self.sessions[idx].payment_intent_id
            && let Some(i) = find(&self.payment_intents, pi)
        {
            return i;
        }
        let rec = &self.sessions[idx];
        let pi_id = new_id("pi_", 24);
        let pi = obj([
            ("id", json!(pi_id)),
            ("object", json!("payment_intent")),
            ("amount", rec.session["amount_total"].clone()),
            ("amount_capturable", json!(0)),
            ("amount_received", json!(0)),
            ("canceled_at", Value::Null),
            ("cancellation_reason", Value::Null),
            ("capture_method", json!("automatic_async")),
            ("client_secret", Value::Null),
            ("confirmation_method", json!("automatic")),
            ("created", json!(now_secs())),
            ("currency", rec.session["currency"].clone()),
            ("customer", Value::Null),
            ("description", Value::Null),
            ("last_payment_error", Value::Null),
            ("latest_charge", Value::Null),
            ("livemode", json!(false)),
            (
                "metadata",
                Value::Object(rec.payment_intent_metadata.clone()),
            ),
            ("payment_method", Value::Null),
            ("payment_method_types", json!(["card"])),
            ("receipt_email", rec.session["customer_email"].clone()),
            ("status", json!("requires_payment_method")),
        ]);
        self.sessions[idx].payment_intent_id = Some(pi_id);
        self.payment_intents.push(pi);
        self.dirty = true;
        self.payment_intents.len() - 1
    }

    /// A succeeded charge for the payment intent at `pi_idx`; returns its id.
    fn create_charge(&mut self, pi_idx: usize, email: &Value) -> String {
        let pi = &self.payment_intents[pi_idx];
        let charge_id = new_id("ch_", 24);
        let amount = pi["amount"].clone();
        let charge = obj([
            ("id", json!(charge_id)),
            ("object", json!("charge")),
            ("amount", amount.clone()),
            ("amount_captured", amount.clone()),
            ("amount_refunded", json!(0)),
            ("balance_transaction", Value::Null),
            (
                "billing_details",
                json!({"address": null, "email": email, "name": null, "phone": null, "tax_id": null}),
            ),
            ("captured", json!(true)),
            ("created", json!(now_secs())),
            ("currency", pi["currency"].clone()),
            ("customer", Value::Null),
            ("description", Value::Null),
            ("disputed", json!(false)),
            ("failure_code", Value::Null),
            ("failure_message", Value::Null),
            ("livemode", json!(false)),
            ("metadata", pi["metadata"].clone()),
            ("paid", json!(true)),
            ("payment_intent", pi["id"].clone()),
            ("payment_method", Value::Null),
            ("receipt_email", email.clone()),
            ("refunded", json!(false)),
            ("status", json!("succeeded")),
        ]);
        let pi = &mut self.payment_intents[pi_idx];
        pi["status"] = json!("succeeded");
        pi["amount_received"] = amount;
        pi["latest_charge"] = json!(charge_id);
        pi["last_payment_error"] = Value::Null;
        self.charges.push(charge);
        self.dirty = true;
        charge_id
    }

    /// Pay or pay later: the session completes. Returns the session.
    fn complete(
        &mut self,
        id: &str,
        how: Completion,
        email: Option<&str>,
    ) -> Result<Value, ActionError> {
        let idx = self.open_session(id)?;
        let pi_idx = self.ensure_payment_intent(idx);
        let email = match email {
            Some(e) => json!(e),
            None => self.sessions[idx].session["customer_email"].clone(),
        };
        let payment_status = match how {
            Completion::Paid => {
                self.create_charge(pi_idx, &email);
                "paid"
            }
            Completion::Later => {
                self.payment_intents[pi_idx]["status"] = json!("processing");
                "unpaid"
            }
        };
        let pi_id = self.payment_intents[pi_idx]["id"].clone();
        let session = &mut self.sessions[idx].session;
        session["status"] = json!("complete");
        session["payment_status"] = json!(payment_status);
        session["payment_intent"] = pi_id;
        session["customer_details"] = json!({
            "address": null, "email": email, "name": null, "phone": null,
            "tax_exempt": "none", "tax_ids": [],
        });
        let snapshot = session.clone();
        self.emit(
            "checkout.session.completed",
            snapshot.clone(),
            &RequestInfo::default(),
        );
        Ok(snapshot)
    }

    /// A declined card: the session stays open.
    fn decline(&mut self, id: &str) -> Result<(), ActionError> {
        let idx = self.open_session(id)?;
        let pi_idx = self.ensure_payment_intent(idx);
        let pi = &mut self.payment_intents[pi_idx];
        pi["status"] = json!("requires_payment_method");
        pi["last_payment_error"] = json!({
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": "Your card was declined.",
            "doc_url": "https://stripe.com/docs/error-codes/card-declined",
        });
        let snapshot = pi.clone();
        self.emit(
            "payment_intent.payment_failed",
            snapshot,
            &RequestInfo::default(),
        );
        Ok(())
    }

    /// Settles a session completed by "pay later".
    fn settle(&mut self, id: &str, succeeded: bool) -> Result<(), ActionError> {
        let idx = self.session_index(id).ok_or(ActionError::NotFound)?;
        let rec = &self.sessions[idx];
        if rec.session["status"] != "complete" || rec.session["payment_status"] != "unpaid" {
            return Err(ActionError::Invalid(
                "only a session completed with a delayed payment (status complete, payment_status unpaid) can settle".into(),
            ));
        }
        let pi_idx = rec
            .payment_intent_id
            .as_deref()
            .and_then(|pi| find(&self.payment_intents, pi))
            .ok_or_else(|| ActionError::Invalid("the session has no payment intent".into()))?;
        if self.payment_intents[pi_idx]["status"] != "processing" {
            return Err(ActionError::Invalid(
                "the delayed payment has already settled".into(),
            ));
        }
        let event_type = if succeeded {
            let email = rec.session["customer_details"]["email"].clone();
            self.create_charge(pi_idx, &email);
            self.sessions[idx].session["payment_status"] = json!("paid");
            "checkout.session.async_payment_succeeded"
        } else {
            let pi = &mut self.payment_intents[pi_idx];
            pi["status"] = json!("requires_payment_method");
            pi["last_payment_error"] = json!({
                "type": "invalid_request_error",
                "code": "payment_method_provider_decline",
                "message": "The bank transfer did not arrive.",
            });
            "checkout.session.async_payment_failed"
        };
        let snapshot = self.sessions[idx].session.clone();
        self.emit(event_type, snapshot, &RequestInfo::default());
        Ok(())
    }

    /// Expires an open session: `checkout.session.expired`.
    fn expire(&mut self, id: &str, request: &RequestInfo) -> Result<Value, ActionError> {
        let idx = self.open_session(id)?;
        if let Some(pi_idx) = self.sessions[idx]
            .payment_intent_id
            .as_deref()
            .and_then(|pi| find(&self.payment_intents, pi))
        {
            let pi = &mut self.payment_intents[pi_idx];
            pi["status"] = json!("canceled");
            pi["canceled_at"] = json!(now_secs());
            pi["cancellation_reason"] = json!("abandoned");
        }
        let session = &mut self.sessions[idx].session;
        session["status"] = json!("expired");
        let snapshot = session.clone();
        self.emit("checkout.session.expired", snapshot.clone(), request);
        Ok(snapshot)
    }

    /// Expires every open session whose `expires_at` has passed.
    fn expire_due(&mut self, now: i64) {
        let due: Vec<String> = self
            .sessions
            .iter()
            .filter(|r| {
                r.session["status"] == "open"
                    && r.session["expires_at"].as_i64().is_some_and(|t| t <= now)
            })
            .filter_map(|r| r.session["id"].as_str().map(str::to_owned))
            .collect();
        for id in due {
            // Cannot fail: the session was open a moment ago, under the same lock.
            let _ = self.expire(&id, &RequestInfo::default());
        }
    }

    /// A dispute on the session's charge: `charge.dispute.created`.
    fn dispute(&mut self, id: &str) -> Result<(), ActionError> {
        let idx = self.session_index(id).ok_or(ActionError::NotFound)?;
        let charge_idx = self.sessions[idx]
            .payment_intent_id
            .as_deref()
            .and_then(|pi| find(&self.payment_intents, pi))
            .and_then(|i| self.payment_intents[i]["latest_charge"].as_str())
            .and_then(|ch| find(&self.charges, ch))
            .ok_or_else(|| ActionError::Invalid("the session has no successful charge".into()))?;
        let charge = &mut self.charges[charge_idx];
        if charge["disputed"] == true {
            return Err(ActionError::Invalid(
                "the charge is already disputed".into(),
            ));
        }
        charge["disputed"] = json!(true);
        let now = now_secs();
        let dispute = obj([
            ("id", json!(new_id("dp_", 24))),
            ("object", json!("dispute")),
            ("amount", charge["amount"].clone()),
            ("balance_transactions", json!([])),
            ("charge", charge["id"].clone()),
            ("created", json!(now)),
            ("currency", charge["currency"].clone()),
            ("enhanced_eligibility_types", json!([])),
            ("evidence", json!({ "enhanced_evidence": {} })),
            (
                "evidence_details",
                json!({
                    "due_by": now + 7 * 24 * 60 * 60,
                    "enhanced_eligibility": {},
                    "has_evidence": false,
                    "past_due": false,
                    "submission_count": 0,
                }),
            ),
            ("is_charge_refundable", json!(false)),
            ("livemode", json!(false)),
            ("metadata", json!({})),
            ("payment_intent", charge["payment_intent"].clone()),
            ("reason", json!("fraudulent")),
            ("status", json!("needs_response")),
        ]);
        self.disputes.push(dispute.clone());
        self.emit("charge.dispute.created", dispute, &RequestInfo::default());
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The HTTP API
// ---------------------------------------------------------------------------------------------

/// An error in Stripe's shape: `{"error": {"type", "message", "code"?, "param"?}}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    code: Option<&'static str>,
    param: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            code: None,
            param: None,
        }
    }

    /// `400 invalid_request_error`.
    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// `400`, `parameter_missing`.
    fn missing(param: &str) -> Self {
        Self::invalid(format!("Missing required param: {param}."))
            .code("parameter_missing")
            .param(param)
    }

    /// `404 resource_missing`: "No such checkout.session: 'cs_...'".
    fn no_such(what: &str, id: &str, param: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("No such {what}: '{id}'"),
        )
        .code("resource_missing")
        .param(param)
    }

    fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    fn param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    fn body(&self) -> Value {
        let mut error = Map::new();
        error.insert("type".into(), json!(self.kind));
        error.insert("message".into(), json!(self.message));
        if let Some(code) = self.code {
            error.insert("code".into(), json!(code));
            error.insert(
                "doc_url".into(),
                json!(format!(
                    "https://stripe.com/docs/error-codes/{}",
                    code.replace('_', "-")
                )),
            );
        }
        if let Some(param) = &self.param {
            error.insert("param".into(), json!(param));
        }
        json!({ "error": error })
    }
}

/// A JSON answer with Stripe's `Request-Id` header.
fn json_response(status: StatusCode, body: &Value, request_id: &str, replayed: bool) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("request-id", v);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// `sk_test_****************abcd`, as in Stripe's messages.
fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let prefix = [
        "sk_test_", "sk_live_", "rk_test_", "rk_live_", "pk_test_", "pk_live_",
    ]
    .into_iter()
    .find(|p| key.starts_with(p))
    .map_or(0, str::len);
    if chars.len() <= prefix + 4 {
        return format!("{}****", &key[..prefix.min(key.len())]);
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!(
        "{}{}{tail}",
        &key[..prefix],
        "*".repeat(chars.len() - prefix - 4)
    )
}

/// The `Authorization: Bearer` check.
fn check_auth(headers: &HeaderMap, api_key: &str) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
        ));
    };
    let given = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    if given == api_key {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            format!("Invalid API Key provided: {}", mask_key(given)),
        ))
    }
}

/// Every `/v1/...` request: faults, authentication, idempotency, then the endpoint.
async fn handle_api(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = new_id("req_", 14);
    if let Some(version) = headers.get("stripe-version").and_then(|v| v.to_str().ok()) {
        *lock(&inner.last_stripe_version) = Some(version.to_owned());
    }

    // Faults come first: when Stripe is down, nothing else is looked at.
    let faults = &inner.cfg.faults;
    if faults.api_down.load(Ordering::SeqCst) {
        let e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "Stripe is temporarily unavailable (stand-in fault: API down).",
        );
        return json_response(e.status, &e.body(), &request_id, false);
    }
    if faults
        .fail_next_api_calls
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        let e = ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "An unknown error occurred (stand-in fault: failing API calls).",
        );
        return json_response(e.status, &e.body(), &request_id, false);
    }
    if let Err(e) = check_auth(&headers, &inner.cfg.api_key) {
        return json_response(e.status, &e.body(), &request_id, false);
    }

    let raw = if method == Method::GET || method == Method::DELETE {
        uri.query().unwrap_or_default().to_owned()
    } else {
        match String::from_utf8(body.to_vec()) {
            Ok(s) => s,
            Err(_) => {
                let e = ApiError::invalid("The request body is not valid UTF-8.");
                return json_response(e.status, &e.body(), &request_id, false);
            }
        }
    };
    let params = match decode_params(&raw) {
        Ok(p) => p,
        Err(e) => return json_response(e.status, &e.body(), &request_id, false),
    };
    let path = uri.path().to_owned();
    // Stripe honours idempotency keys on POST only.
    let idempotency_key = (method == Method::POST)
        .then(|| headers.get("idempotency-key"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let request = RequestInfo {
        id: Some(request_id.clone()),
        idempotency_key: idempotency_key.clone(),
    };

    let (status, body, replayed) = inner.mutate(|store| {
        let saved_key = idempotency_key.as_ref().map(|k| format!("{path} {k}"));
        if let Some(saved_key) = &saved_key
            && let Some(saved) = store.idempotency.get(saved_key)
        {
            if saved.params != params {
                let e = ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "idempotency_error",
                    format!(
                        "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{}' if you meant to execute a different request.",
                        idempotency_key.as_deref().unwrap_or_default()
                    ),
                );
                return (e.status, e.body(), false);
            }
            let status = StatusCode::from_u16(saved.status).unwrap_or(StatusCode::OK);
            return (status, saved.body.clone(), true);
        }

        let (status, body) = match route(store, &method, &path, &params, &request) {
            Ok(body) => (StatusCode::OK, body),
            Err(e) => (e.status, e.body()),
        };
        if let Some(saved_key) = saved_key {
            let now = now_secs();
            store
                .idempotency
                .retain(|_, s| now - s.created < IDEMPOTENCY_TTL_SECS);
            store.idempotency.insert(
                saved_key,
                SavedResponse {
                    params: params.clone(),
                    status: status.as_u16(),
                    body: body.clone(),
                    created: now,
                },
            );
            store.dirty = true;
        }
        (status, body, false)
    });
    json_response(status, &body, &request_id, replayed)
}

/// Dispatches an authenticated API call.
fn route(
    store: &mut Store,
    method: &Method,
    path: &str,
    params: &Value,
    request: &RequestInfo,
) -> Result<Value, ApiError> {
    let segments: Vec<&str> = path
        .trim_start_matches("/v1/")
        .trim_end_matches('/')
        .split('/')
        .collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["checkout", "sessions"]) => create_session(store, params),
        ("GET", ["checkout", "sessions"]) => list_sessions(store, params),
        ("GET", ["checkout", "sessions", id]) => store
            .session_index(id)
            .map(|i| store.sessions[i].session.clone())
            .ok_or_else(|| ApiError::no_such("checkout.session", id, "session")),
        ("POST", ["checkout", "sessions", id, "expire"]) => {
            store.expire(id, request).map_err(|e| match e {
                ActionError::NotFound => ApiError::no_such("checkout.session", id, "session"),
                _ => ApiError::invalid(
                    "Only Checkout Sessions with a status in [\"open\"] can be expired.",
                ),
            })
        }
        ("POST", ["refunds"]) => create_refund(store, params, request),
        ("GET", ["refunds"]) => list_refunds(store, params),
        ("GET", ["refunds", id]) => find(&store.refunds, id)
            .map(|i| store.refunds[i].clone())
            .ok_or_else(|| ApiError::no_such("refund", id, "id")),
        ("GET", ["balance"]) => Ok(balance(store)),
        ("GET", ["events", id]) => find(&store.events, id)
            .map(|i| store.events[i].clone())
            .ok_or_else(|| ApiError::no_such("event", id, "id")),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!(
                "Unrecognized request URL ({method}: {path}). The Stripe stand-in only serves checkout sessions, refunds, the balance and events."
            ),
        )),
    }
}

// --- Request parameters -----------------------------------------------------------------------

/// Decodes a form body or query string in Stripe's bracket notation (`a[b][0][c]=v`, what
/// async-stripe's serde_qs encoding produces, brackets percent-encoded or not) into JSON:
/// objects, arrays where every key is an index (`a[0]`, or `a[]` to append), and strings.
fn decode_params(raw: &str) -> Result<Value, ApiError> {
    const MAX_DEPTH: usize = 6;
    let mut root = Value::Object(Map::new());
    for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        let path = split_key(&key)
            .filter(|p| p.len() <= MAX_DEPTH)
            .ok_or_else(|| ApiError::invalid(format!("Invalid parameter name: {key}")))?;
        let mut node = &mut root;
        for (i, segment) in path.iter().enumerate() {
            let Value::Object(map) = node else {
                return Err(ApiError::invalid(format!(
                    "Invalid hash: {key} mixes a value and nested parameters"
                ))
                .param(path[0].clone()));
            };
            // `a[]` appends: the next free index.
            let segment = if segment.is_empty() {
                map.len().to_string()
            } else {
                segment.clone()
            };
            if i + 1 == path.len() {
                map.insert(segment, Value::String(value.clone().into_owned()));
                break;
            }
            node = map
                .entry(segment)
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    Ok(index_maps_to_arrays(root, None))
}

/// `a[b][0]` → `["a", "b", "0"]`; `None` if malformed.
fn split_key(key: &str) -> Option<Vec<String>> {
    let Some(open) = key.find('[') else {
        return (!key.is_empty()).then(|| vec![key.to_owned()]);
    };
    if open == 0 {
        return None;
    }
    let mut parts = vec![key[..open].to_owned()];
    let mut rest = &key[open..];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let close = inner.find(']')?;
        parts.push(inner[..close].to_owned());
        rest = &inner[close + 1..];
    }
    Some(parts)
}

/// Turns objects whose keys are all indices into arrays (ordered by index), except
/// `metadata`, whose keys are the caller's own.
fn index_maps_to_arrays(value: Value, key: Option<&str>) -> Value {
    let Value::Object(map) = value else {
        return value;
    };
    let is_list = key != Some("metadata")
        && !map.is_empty()
        && map.keys().all(|k| k.parse::<usize>().is_ok());
    let converted = map.into_iter().map(|(k, v)| {
        let v = index_maps_to_arrays(v, Some(&k));
        (k, v)
    });
    if is_list {
        let mut items: Vec<(usize, Value)> = converted
            .map(|(k, v)| (k.parse().unwrap_or(usize::MAX), v))
            .collect();
        items.sort_by_key(|(i, _)| *i);
        Value::Array(items.into_iter().map(|(_, v)| v).collect())
    } else {
        Value::Object(converted.collect())
    }
}

/// A string parameter; empty strings count as absent (Stripe's way of unsetting).
fn str_param<'a>(params: &'a Value, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// An integer parameter, `full_name` for the error.
fn int_param(params: &Value, name: &str, full_name: &str) -> Result<Option<i64>, ApiError> {
    match params.get(name) {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| {
            ApiError::invalid(format!("Invalid integer: {s}"))
                .code("parameter_invalid_integer")
                .param(full_name)
        }),
        Some(_) => Err(ApiError::invalid(format!("Invalid integer: {full_name}"))
            .code("parameter_invalid_integer")
            .param(full_name)),
    }
}

/// A `metadata` hash, with Stripe's limits (50 keys, 40-character keys, 500-character values).
fn metadata_param(params: &Value, full_name: &str) -> Result<Map<String, Value>, ApiError> {
    let metadata = match params.get("metadata") {
        None => return Ok(Map::new()),
        Some(Value::String(s)) if s.is_empty() => return Ok(Map::new()),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(ApiError::invalid("Invalid hash").param(full_name));
        }
    };
    if metadata.len() > 50 {
        return Err(ApiError::invalid("Metadata can have at most 50 keys.").param(full_name));
    }
    for (k, v) in metadata {
        if k.chars().count() > 40 {
            return Err(ApiError::invalid(format!(
                "Metadata keys can have at most 40 characters: '{k}'"
            ))
            .param(format!("{full_name}[{k}]")));
        }
        match v {
            Value::String(s) if s.chars().count() <= 500 => {}
            Value::String(_) => {
                return Err(
                    ApiError::invalid("Metadata values can have at most 500 characters.")
                        .param(format!("{full_name}[{k}]")),
                );
            }
            _ => {
                return Err(ApiError::invalid("Metadata values must be strings.")
                    .param(format!("{full_name}[{k}]")));
            }
        }
    }
    Ok(metadata.clone())
}

/// An absolute http(s) URL parameter (kept as given: `{CHECKOUT_SESSION_ID}` stays literal).
fn url_param(params: &Value, name: &str) -> Result<Option<String>, ApiError> {
    let Some(raw) = str_param(params, name) else {
        return Ok(None);
    };
    match url::Url::parse(raw) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Ok(Some(raw.to_owned())),
        _ => Err(ApiError::invalid("Not a valid URL")
            .code("url_invalid")
            .param(name)),
    }
}

// --- Endpoints --------------------------------------------------------------------------------

/// `POST /v1/checkout/sessions`.
fn create_session(store: &mut Store, p: &Value) -> Result<Value, ApiError> {
    let now = now_secs();
    match str_param(p, "mode") {
        None => return Err(ApiError::missing("mode")),
        Some("payment") => {}
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "The Stripe stand-in only supports mode=payment, not {other}."
            ))
            .param("mode"));
        }
    }

    let items = match p.get("line_items") {
        None => return Err(ApiError::missing("line_items")),
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(_) => return Err(ApiError::invalid("Invalid array").param("line_items")),
    };
    let mut line_items = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = |rest: &str| format!("line_items[{i}]{rest}");
        if item.get("price").is_some() {
            return Err(ApiError::invalid(
                "The Stripe stand-in has no Price objects; pass price_data instead.",
            )
            .param(at("[price]")));
        }
        let Some(pd) = item.get("price_data").filter(|v| v.is_object()) else {
            return Err(ApiError::missing(&at("[price_data]")));
        };
        let currency = str_param(pd, "currency")
            .ok_or_else(|| ApiError::missing(&at("[price_data][currency]")))?
            .to_ascii_lowercase();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(ApiError::invalid(format!("Invalid currency: {currency}"))
                .param(at("[price_data][currency]")));
        }
        if pd.get("unit_amount_decimal").is_some() {
            return Err(ApiError::invalid(
                "The Stripe stand-in does not support unit_amount_decimal; pass unit_amount.",
            )
            .param(at("[price_data][unit_amount_decimal]")));
        }
        let unit_amount = int_param(pd, "unit_amount", &at("[price_data][unit_amount]"))?
            .ok_or_else(|| ApiError::missing(&at("[price_data][unit_amount]")))?;
        if !(0..=MAX_AMOUNT).contains(&unit_amount) {
            return Err(ApiError::invalid(
                "This value must be greater than or equal to 0 and at most 99999999.",
            )
            .param(at("[price_data][unit_amount]")));
        }
        let name = pd
            .get("product_data")
            .and_then(|d| str_param(d, "name"))
            .ok_or_else(|| ApiError::missing(&at("[price_data][product_data][name]")))?;
        let quantity = int_param(item, "quantity", &at("[quantity]"))?
            .ok_or_else(|| ApiError::missing(&at("[quantity]")))?;
        if !(1..=999_999).contains(&quantity) {
            return Err(
                ApiError::invalid("This value must be greater than or equal to 1.")
                    .param(at("[quantity]")),
            );
        }
        line_items.push(LineItem {
            name: name.to_owned(),
            currency,
            unit_amount,
            quantity,
        });
    }
    let currency = line_items[0].currency.clone();
    if line_items.iter().any(|li| li.currency != currency) {
        return Err(
            ApiError::invalid("All line items must use the same currency.").param("line_items"),
        );
    }
    let total = line_items
        .iter()
        .try_fold(0i64, |acc, li| {
            li.unit_amount
                .checked_mul(li.quantity)
                .and_then(|a| acc.checked_add(a))
        })
        .filter(|t| *t <= MAX_AMOUNT)
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "The total amount must be no more than {}.",
                format_amount(MAX_AMOUNT, &currency)
            ))
            .code("amount_too_large")
            .param("line_items")
        })?;

    let success_url =
        url_param(p, "success_url")?.ok_or_else(|| ApiError::missing("success_url"))?;
    let cancel_url = url_param(p, "cancel_url")?;
    let expires_at = int_param(p, "expires_at", "expires_at")?.unwrap_or(now + 24 * 60 * 60);
    if expires_at < now + 30 * 60 {
        return Err(ApiError::invalid(
            "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.",
        )
        .param("expires_at"));
    }
    if expires_at > now + 24 * 60 * 60 {
        return Err(ApiError::invalid(
            "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.",
        )
        .param("expires_at"));
    }
    let metadata = metadata_param(p, "metadata")?;
    let pi_metadata = match p.get("payment_intent_data") {
        Some(d) => metadata_param(d, "payment_intent_data[metadata]")?,
        None => Map::new(),
    };
    let client_reference_id = str_param(p, "client_reference_id");
    if client_reference_id.is_some_and(|c| c.chars().count() > 200) {
        return Err(
            ApiError::invalid("client_reference_id can have at most 200 characters.")
                .param("client_reference_id"),
        );
    }
    let customer_email = str_param(p, "customer_email");
    if let Some(email) = customer_email
        && (!email.contains('@') || email.chars().count() > 512)
    {
        return Err(
            ApiError::invalid(format!("Invalid email address: {email}")).param("customer_email")
        );
    }

    let id = new_id("cs_test_", 48);
    let url = format!("{}/pay/{id}", store.base_url);
    let session = obj([
        ("id", json!(id)),
        ("object", json!("checkout.session")),
        ("adaptive_pricing", Value::Null),
        ("after_expiration", Value::Null),
        ("allow_promotion_codes", Value::Null),
        ("amount_subtotal", json!(total)),
        ("amount_total", json!(total)),
        (
            "automatic_tax",
            json!({"enabled": false, "liability": null, "provider": null, "status": null}),
        ),
        ("billing_address_collection", Value::Null),
        ("cancel_url", json!(cancel_url)),
        ("client_reference_id", json!(client_reference_id)),
        ("client_secret", Value::Null),
        ("consent", Value::Null),
        ("consent_collection", Value::Null),
        ("created", json!(now)),
        ("currency", json!(currency)),
        ("currency_conversion", Value::Null),
        ("custom_fields", json!([])),
        (
            "custom_text",
            json!({"after_submit": null, "shipping_address": null, "submit": null,
                   "terms_of_service_acceptance": null}),
        ),
        ("customer", Value::Null),
        ("customer_creation", json!("if_required")),
        ("customer_details", Value::Null),
        ("customer_email", json!(customer_email)),
        ("discounts", json!([])),
        ("expires_at", json!(expires_at)),
        ("invoice", Value::Null),
        ("invoice_creation", Value::Null),
        ("livemode", json!(false)),
        ("locale", p.get("locale").cloned().unwrap_or(Value::Null)),
        ("metadata", Value::Object(metadata)),
        ("mode", json!("payment")),
        ("payment_intent", Value::Null),
        ("payment_link", Value::Null),
        ("payment_method_collection", json!("if_required")),
        ("payment_method_configuration_details", Value::Null),
        ("payment_method_options", json!({})),
        ("payment_method_types", json!(["card"])),
        ("payment_status", json!("unpaid")),
        ("phone_number_collection", json!({"enabled": false})),
        ("recovered_from", Value::Null),
        ("saved_payment_method_options", Value::Null),
        ("setup_intent", Value::Null),
        ("shipping_address_collection", Value::Null),
        ("shipping_cost", Value::Null),
        ("shipping_options", json!([])),
        ("status", json!("open")),
        ("submit_type", Value::Null),
        ("subscription", Value::Null),
        ("success_url", json!(success_url)),
        (
            "total_details",
            json!({"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0}),
        ),
        ("ui_mode", json!("hosted_page")),
        ("url", json!(url)),
    ]);
    store.sessions.push(SessionRecord {
        session: session.clone(),
        line_items,
        payment_intent_metadata: pi_metadata,
        payment_intent_id: None,
    });
    store.dirty = true;
    Ok(session)
}

/// Does `created` match the `created` filter (`created=T` or `created[gte]=T` etc.)?
fn created_filter(p: &Value) -> Result<impl Fn(&Value) -> bool, ApiError> {
    let mut bounds: Vec<(&'static str, i64)> = Vec::new();
    match p.get("created") {
        None => {}
        Some(Value::Object(_)) => {
            let c = &p["created"];
            for op in ["gt", "gte", "lt", "lte"] {
                if let Some(t) = int_param(c, op, &format!("created[{op}]"))? {
                    bounds.push((op, t));
                }
            }
        }
        Some(_) => {
            if let Some(t) = int_param(p, "created", "created")? {
                bounds.push(("eq", t));
            }
        }
    }
    Ok(move |v: &Value| {
        let created = v["created"].as_i64().unwrap_or(0);
        bounds.iter().all(|(op, t)| match *op {
            "gt" => created > *t,
            "gte" => created >= *t,
            "lt" => created < *t,
            "lte" => created <= *t,
            _ => created == *t,
        })
    })
}

/// A Stripe list page over `items` (newest first): `limit`, `starting_after`, `ending_before`.
fn list_page(
    items: Vec<&Value>,
    p: &Value,
    url: &str,
    object_name: &str,
) -> Result<Value, ApiError> {
    let limit = int_param(p, "limit", "limit")?.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid(
            "This value must be greater than or equal to 1 and less than or equal to 100.",
        )
        .param("limit"));
    }
    let limit = limit as usize;
    let position = |param: &str, id: &str| {
        items
            .iter()
            .position(|v| v["id"] == id)
            .ok_or_else(|| ApiError::no_such(object_name, id, param))
    };
    let (page, has_more): (Vec<Value>, bool) = if let Some(after) = str_param(p, "starting_after") {
        let start = position("starting_after", after)? + 1;
        let rest = &items[start..];
        (
            rest.iter().take(limit).map(|v| (*v).clone()).collect(),
            rest.len() > limit,
        )
    } else if let Some(before) = str_param(p, "ending_before") {
        let end = position("ending_before", before)?;
        let start = end.saturating_sub(limit);
        (
            items[start..end].iter().map(|v| (*v).clone()).collect(),
            start > 0,
        )
    } else {
        (
            items.iter().take(limit).map(|v| (*v).clone()).collect(),
            items.len() > limit,
        )
    };
    Ok(json!({ "object": "list", "data": page, "has_more": has_more, "url": url }))
}

/// `GET /v1/checkout/sessions`: filters `created`, `status`, `payment_intent`.
fn list_sessions(store: &Store, p: &Value) -> Result<Value, ApiError> {
    let created = created_filter(p)?;
    let status = str_param(p, "status");
    let payment_intent = str_param(p, "payment_intent");
    let items: Vec<&Value> = store
        .sessions
        .iter()
        .rev()
        .map(|r| &r.session)
        .filter(|s| created(s))
        .filter(|s| status.is_none_or(|st| s["status"] == st))
        .filter(|s| payment_intent.is_none_or(|pi| s["payment_intent"] == pi))
        .collect();
    list_page(items, p, "/v1/checkout/sessions", "checkout.session")
}

/// `GET /v1/refunds`: filters `created`, `charge`, `payment_intent`.
fn list_refunds(store: &Store, p: &Value) -> Result<Value, ApiError> {
    let created = created_filter(p)?;
    let charge = str_param(p, "charge");
    let payment_intent = str_param(p, "payment_intent");
    let items: Vec<&Value> = store
        .refunds
        .iter()
        .rev()
        .filter(|r| created(r))
        .filter(|r| charge.is_none_or(|c| r["charge"] == c))
        .filter(|r| payment_intent.is_none_or(|pi| r["payment_intent"] == pi))
        .collect();
    list_page(items, p, "/v1/refunds", "refund")
}

/// `POST /v1/refunds`: by `payment_intent` or `charge`; `amount` defaults to what remains.
fn create_refund(store: &mut Store, p: &Value, request: &RequestInfo) -> Result<Value, ApiError> {
    let charge_idx = match (str_param(p, "payment_intent"), str_param(p, "charge")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "You can only pass one of charge or payment_intent.",
            ));
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "One of the following params should be provided for this request: payment_intent or charge.",
            )
            .code("parameter_missing"));
        }
        (Some(pi), None) => {
            let pi_idx = find(&store.payment_intents, pi)
                .ok_or_else(|| ApiError::no_such("payment_intent", pi, "payment_intent"))?;
            let pi_obj = &store.payment_intents[pi_idx];
            pi_obj["latest_charge"]
                .as_str()
                .filter(|_| pi_obj["status"] == "succeeded")
                .and_then(|ch| find(&store.charges, ch))
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "This PaymentIntent ({pi}) does not have a successful charge to refund."
                    ))
                    .code("charge_not_refundable")
                    .param("payment_intent")
                })?
        }
        (None, Some(ch)) => {
            find(&store.charges, ch).ok_or_else(|| ApiError::no_such("charge", ch, "charge"))?
        }
    };

    let charge = &store.charges[charge_idx];
    let charge_id = charge["id"].as_str().unwrap_or_default().to_owned();
    let currency = charge["currency"].as_str().unwrap_or_default().to_owned();
    if charge["disputed"] == true {
        return Err(ApiError::invalid(format!(
            "Charge {charge_id} has been charged back; cannot issue a refund."
        ))
        .code("charge_disputed"));
    }
    let captured = charge["amount"].as_i64().unwrap_or(0);
    let refunded = charge["amount_refunded"].as_i64().unwrap_or(0);
    let remaining = captured - refunded;
    if remaining <= 0 {
        return Err(
            ApiError::invalid(format!("Charge {charge_id} has already been refunded."))
                .code("charge_already_refunded"),
        );
    }
    let amount = int_param(p, "amount", "amount")?.unwrap_or(remaining);
    if amount <= 0 {
        return Err(ApiError::invalid("Invalid positive integer")
            .code("parameter_invalid_integer")
            .param("amount"));
    }
    if amount > remaining {
        return Err(ApiError::invalid(format!(
            "Refund amount ({}) is greater than unrefunded amount on charge ({})",
            format_amount(amount, &currency),
            format_amount(remaining, &currency)
        ))
        .code("amount_too_large")
        .param("amount"));
    }
    let reason = str_param(p, "reason");
    if let Some(r) = reason
        && !["duplicate", "fraudulent", "requested_by_customer"].contains(&r)
    {
        return Err(ApiError::invalid(
            "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer",
        )
        .param("reason"));
    }
    let metadata = metadata_param(p, "metadata")?;

    let refund = obj([
        ("id", json!(new_id("re_", 24))),
        ("object", json!("refund")),
        ("amount", json!(amount)),
        ("balance_transaction", Value::Null),
        ("charge", json!(charge_id)),
        ("created", json!(now_secs())),
        ("currency", json!(currency)),
        ("description", Value::Null),
        ("destination_details", Value::Null),
        ("failure_reason", Value::Null),
        ("metadata", Value::Object(metadata)),
        ("payment_intent", charge["payment_intent"].clone()),
        ("reason", json!(reason)),
        ("receipt_number", Value::Null),
        ("source_transfer_reversal", Value::Null),
        ("status", json!("succeeded")),
        ("transfer_reversal", Value::Null),
    ]);
    store.refunds.push(refund.clone());
    let charge = &mut store.charges[charge_idx];
    charge["amount_refunded"] = json!(refunded + amount);
    charge["refunded"] = json!(refunded + amount == captured);
    let snapshot = charge.clone();
    store.emit("charge.refunded", snapshot, request);
    Ok(refund)
}

/// `GET /v1/balance`: net card volume per currency, all of it available.
fn balance(store: &Store) -> Value {
    let mut totals: Vec<(String, i64)> = Vec::new();
    for charge in &store.charges {
        let currency = charge["currency"].as_str().unwrap_or("zar").to_owned();
        let mut net = charge["amount"].as_i64().unwrap_or(0)
            - charge["amount_refunded"].as_i64().unwrap_or(0);
        if charge["disputed"] == true {
            net = 0;
        }
        match totals.iter_mut().find(|(c, _)| *c == currency) {
            Some((_, t)) => *t += net,
            None => totals.push((currency, net)),
        }
    }
    if totals.is_empty() {
        // A fresh account shows its default currency; the portal's is the rand.
        totals.push(("zar".into(), 0));
    }
    totals.sort();
    let entry = |currency: &str, amount: i64| json!({ "amount": amount, "currency": currency, "source_types": { "card": amount } });
    json!({
        "object": "balance",
        "available": totals.iter().map(|(c, a)| entry(c, *a)).collect::<Vec<_>>(),
        "pending": totals.iter().map(|(c, _)| entry(c, 0)).collect::<Vec<_>>(),
        "livemode": false,
    })
}

// ---------------------------------------------------------------------------------------------
// Webhook delivery
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Deliveries {
    pending: Vec<Pending>,
    in_flight: bool,
    log: Vec<Delivery>,
    /// Enqueue counter: the delivery order when several are due.
    seq: u64,
}

struct Pending {
    seq: u64,
    event_id: String,
    event_type: String,
    body: Arc<String>,
    /// Attempts made so far.
    attempts: u32,
    due: Instant,
}

/// Takes the next due delivery (oldest first, or a random one when shuffling) and marks a
/// delivery in flight. `None` while paused or when nothing is due.
fn take_next_due(inner: &Inner) -> Option<Pending> {
    let faults = &inner.cfg.faults;
    if faults.webhooks_paused.load(Ordering::SeqCst) {
        return None;
    }
    let mut d = lock(&inner.deliveries);
    let now = Instant::now();
    let due: Vec<usize> = (0..d.pending.len())
        .filter(|&i| d.pending[i].due <= now)
        .collect();
    if due.is_empty() {
        return None;
    }
    let pick = if faults.shuffle_webhooks.load(Ordering::SeqCst) {
        due[rand::thread_rng().gen_range(0..due.len())]
    } else {
        due.iter().copied().min_by_key(|&i| d.pending[i].seq)?
    };
    d.in_flight = true;
    Some(d.pending.swap_remove(pick))
}

/// The delivery worker: one delivery at a time, until shutdown.
async fn run_deliveries(inner: Arc<Inner>, shutdown: CancellationToken) {
    loop {
        if let Some(pending) = take_next_due(&inner) {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = deliver(&inner, pending) => {}
            }
            lock(&inner.deliveries).in_flight = false;
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(WORKER_POLL) => {}
        }
    }
}

/// One delivery attempt (plus duplicates after a success), rescheduled on failure.
async fn deliver(inner: &Inner, mut pending: Pending) {
    let faults = &inner.cfg.faults;
    let delay = faults.webhook_delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    pending.attempts += 1;
    let mut record = Delivery {
        event_id: pending.event_id.clone(),
        event_type: pending.event_type.clone(),
        at_ms: 0,
        attempt: pending.attempts,
        status: None,
        error: None,
        dropped: false,
        duplicate: false,
        gave_up: false,
    };

    let url = lock(&inner.webhook_url).clone();
    let dropped = faults
        .drop_next_webhooks
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if dropped {
        record.dropped = true;
        record.error = Some("dropped (stand-in fault)".into());
    } else if let Some(url) = &url {
        match send_webhook(inner, url, &pending.body).await {
            Ok(status) => record.status = Some(status),
            Err(e) => record.error = Some(e),
        }
    } else {
        record.error = Some("no webhook URL configured".into());
    }
    record.at_ms = crate::common::now_ms();
    let succeeded = record.succeeded();

    // Without a URL there is nothing to retry against.
    let next_delay = if succeeded || url.is_none() {
        None
    } else {
        inner
            .cfg
            .retry_schedule
            .get(pending.attempts as usize - 1)
            .copied()
    };
    record.gave_up = !succeeded && next_delay.is_none();
    if record.gave_up {
        tracing::warn!(event = %record.event_id, kind = %record.event_type,
            attempts = pending.attempts, "Stripe stand-in gave up delivering a webhook");
    }
    lock(&inner.deliveries).log.push(record.clone());

    if succeeded {
        let copies = faults.duplicate_webhooks.load(Ordering::SeqCst);
        for _ in 0..copies {
            let Some(url) = lock(&inner.webhook_url).clone() else {
                break;
            };
            let result = send_webhook(inner, &url, &pending.body).await;
            let mut copy = record.clone();
            copy.duplicate = true;
            copy.at_ms = crate::common::now_ms();
            (copy.status, copy.error) = match result {
                Ok(status) => (Some(status), None),
                Err(e) => (None, Some(e)),
            };
            lock(&inner.deliveries).log.push(copy);
        }
    } else if let Some(delay) = next_delay {
        pending.due = Instant::now() + delay;
        lock(&inner.deliveries).pending.push(pending);
    }
}

/// POSTs an event body, freshly signed. `Ok(status)` if the endpoint answered at all.
async fn send_webhook(inner: &Inner, url: &str, body: &Arc<String>) -> Result<u16, String> {
    let signature = signature_header(&inner.cfg.webhook_secret, now_secs(), body);
    let response = inner
        .http
        .post(url)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header(
            header::USER_AGENT,
            "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        )
        .header(header::ACCEPT, "*/*; q=0.5, application/xml")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("Stripe-Signature", signature)
        .body(body.as_ref().clone())
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                "timed out".to_owned()
            } else {
                format!("connection failed: {e}")
            }
        })?;
    Ok(response.status().as_u16())
}

/// Expires open sessions whose time has come, every [`EXPIRY_TICK`].
async fn run_expiry(inner: Arc<Inner>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(EXPIRY_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => inner.mutate(|s| s.expire_due(now_secs())),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The hosted checkout page and the admin page
// ---------------------------------------------------------------------------------------------

/// `R 250.00` for rand, `USD 12.00` otherwise, `JPY 500` for zero-decimal currencies.
fn format_amount(amount: i64, currency: &str) -> String {
    let currency = currency.to_ascii_lowercase();
    let label = if currency == "zar" {
        "R".to_owned()
    } else {
        currency.to_ascii_uppercase()
    };
    let sign = if amount < 0 { "-" } else { "" };
    let abs = amount.unsigned_abs();
    if ZERO_DECIMAL.contains(&currency.as_str()) {
        format!("{label} {sign}{abs}")
    } else {
        format!("{label} {sign}{}.{:02}", abs / 100, abs % 100)
    }
}

/// `2025-03-01 14:30 UTC`.
fn format_utc(secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => secs.to_string(),
    }
}

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    (status, Html(page(title, body, false))).into_response()
}

fn session_not_found() -> Response {
    html(
        StatusCode::NOT_FOUND,
        "Checkout not found",
        "<h1>Checkout not found</h1><p>This payment link is not valid. Please return to the site and try again.</p>",
    )
}

/// The page for a session in its current state (`alert`: shown above the buttons).
fn render_checkout(inner: &Inner, rec: &SessionRecord, alert: Option<&str>) -> Response {
    let s = &rec.session;
    let business = esc(&inner.cfg.business_name);
    let currency = s["currency"].as_str().unwrap_or_default();
    let total = format_amount(s["amount_total"].as_i64().unwrap_or(0), currency);
    let items: String = rec
        .line_items
        .iter()
        .map(|li| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&li.name),
                li.quantity,
                esc(&format_amount(li.unit_amount * li.quantity, &li.currency))
            )
        })
        .collect();
    let summary = format!(
        "<table><caption class=\"note\">Order summary</caption>\
         <thead><tr><th scope=\"col\">Item</th><th scope=\"col\">Qty</th><th scope=\"col\">Amount</th></tr></thead>\
         <tbody>{items}</tbody>\
         <tfoot><tr><th scope=\"row\" colspan=\"2\">Total</th><td>{total}</td></tr></tfoot></table>",
        total = esc(&total)
    );
    let return_link = |url: &Value, text: &str| match url.as_str() {
        Some(u) => format!(
            "<p><a href=\"{}\">{}</a></p>",
            esc(&u.replace(
                "{CHECKOUT_SESSION_ID}",
                s["id"].as_str().unwrap_or_default()
            )),
            esc(text)
        ),
        None => String::new(),
    };

    match s["status"].as_str() {
        Some("complete") => {
            let name = &inner.cfg.business_name;
            let (heading, text) = if s["payment_status"] == "paid" {
                (
                    "Payment complete",
                    format!("Thank you. {total} was paid to {name}."),
                )
            } else {
                (
                    "Payment submitted",
                    format!(
                        "Thank you. Your bank transfer of {total} to {name} will be confirmed once it arrives."
                    ),
                )
            };
            let body = format!(
                "<p class=\"note\">{business}</p><h1>{heading}</h1><p>{text}</p>{summary}{link}",
                text = esc(&text),
                link = return_link(&s["success_url"], &format!("Return to {name}")),
            );
            html(StatusCode::OK, heading, &body)
        }
        Some("expired") => {
            let body = format!(
                "<p class=\"note\">{business}</p><h1>This checkout has expired</h1>\
                 <p>No payment was taken. Please return to the site to start again.</p>{link}",
                link = return_link(
                    &s["cancel_url"],
                    &format!("Return to {}", inner.cfg.business_name)
                ),
            );
            html(StatusCode::GONE, "Checkout expired", &body)
        }
        _ => {
            let alert = alert
                .map(|a| format!("<div class=\"alert\" role=\"alert\">{}</div>", esc(a)))
                .unwrap_or_default();
            let email = s["customer_details"]["email"]
                .as_str()
                .or(s["customer_email"].as_str())
                .unwrap_or_default();
            let body = format!(
                "<p class=\"note\">{business} &middot; test mode (Stripe stand-in)</p>\
                 <h1>Pay {business}</h1>{summary}\
                 <p class=\"note\">This checkout expires at {expires}.</p>{alert}\
                 <form method=\"post\" action=\"/pay/{id}\">\
                 <label for=\"email\">Email for the receipt</label>\
                 <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" value=\"{email}\">\
                 <button class=\"primary\" type=\"submit\" name=\"action\" value=\"pay\">Pay {total}</button>\
                 <button class=\"secondary\" type=\"submit\" name=\"action\" value=\"decline\">Pay with a card that will be declined</button>\
                 <button class=\"secondary\" type=\"submit\" name=\"action\" value=\"pay_later\">Pay by bank transfer (settles later)</button>\
                 <button class=\"secondary\" type=\"submit\" name=\"action\" value=\"abandon\">Cancel and return</button>\
                 </form>",
                expires = esc(&format_utc(s["expires_at"].as_i64().unwrap_or(0))),
                id = esc(s["id"].as_str().unwrap_or_default()),
                email = esc(email),
                total = esc(&total),
            );
            let status = if alert.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::PAYMENT_REQUIRED
            };
            html(status, &format!("Pay {}", inner.cfg.business_name), &body)
        }
    }
}

fn session_record(inner: &Inner, id: &str) -> Option<SessionRecord> {
    let store = lock(&inner.store);
    store.session_index(id).map(|i| store.sessions[i].clone())
}

/// `GET /pay/{session_id}`.
async fn show_checkout(State(inner): State<Arc<Inner>>, Path(id): Path<String>) -> Response {
    match session_record(&inner, &id) {
        Some(rec) => render_checkout(&inner, &rec, None),
        None => session_not_found(),
    }
}

/// `POST /pay/{session_id}` with `action` = `pay`, `decline`, `pay_later` or `abandon`.
async fn submit_checkout(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let email = form
        .get("email")
        .map(|e| e.trim())
        .filter(|e| !e.is_empty() && e.contains('@') && e.len() <= 512);
    let redirect_to = |session: &Value, field: &str| {
        session[field]
            .as_str()
            .map(|u| Redirect::to(&u.replace("{CHECKOUT_SESSION_ID}", &id)).into_response())
    };
    let outcome = match form.get("action").map(String::as_str) {
        Some("pay") => inner.mutate(|s| s.complete(&id, Completion::Paid, email)),
        Some("pay_later") => inner.mutate(|s| s.complete(&id, Completion::Later, email)),
        Some("decline") => match inner.mutate(|s| s.decline(&id)) {
            Ok(()) => {
                return match session_record(&inner, &id) {
                    Some(rec) => render_checkout(
                        &inner,
                        &rec,
                        Some("Your card was declined. Try another card."),
                    ),
                    None => session_not_found(),
                };
            }
            Err(e) => Err(e),
        },
        Some("abandon") => match session_record(&inner, &id) {
            Some(rec) if rec.session["status"] == "open" => {
                return redirect_to(&rec.session, "cancel_url").unwrap_or_else(|| {
                    html(
                        StatusCode::OK,
                        "Payment cancelled",
                        "<h1>Payment cancelled</h1><p>No payment was taken. You can close this page.</p>",
                    )
                });
            }
            Some(_) => Err(ActionError::NotOpen(String::new())),
            None => Err(ActionError::NotFound),
        },
        _ => {
            return html(
                StatusCode::BAD_REQUEST,
                "Unknown action",
                "<h1>Unknown action</h1><p>Please use the buttons on the checkout page.</p>",
            );
        }
    };
    match outcome {
        Ok(session) => redirect_to(&session, "success_url").unwrap_or_else(|| {
            html(
                StatusCode::OK,
                "Payment complete",
                "<h1>Payment complete</h1>",
            )
        }),
        // Not open any more: show what it is now (expired: 410, complete: 200).
        Err(ActionError::NotOpen(_)) | Err(ActionError::Invalid(_)) => {
            match session_record(&inner, &id) {
                Some(rec) => render_checkout(&inner, &rec, None),
                None => session_not_found(),
            }
        }
        Err(ActionError::NotFound) => session_not_found(),
    }
}

/// `GET /_standin`: sessions, refunds, events and delivery attempts, newest first.
async fn show_admin(State(inner): State<Arc<Inner>>) -> Response {
    let (sessions, refunds, events) = {
        let store = lock(&inner.store);
        (
            store.sessions.clone(),
            store.refunds.clone(),
            store.events.clone(),
        )
    };
    let deliveries = lock(&inner.deliveries).log.clone();
    let s = |v: &Value| esc(v.as_str().unwrap_or("—"));
    let money = |v: &Value| {
        esc(&format_amount(
            v["amount"]
                .as_i64()
                .or(v["amount_total"].as_i64())
                .unwrap_or(0),
            v["currency"].as_str().unwrap_or_default(),
        ))
    };

    let mut body = format!(
        "<h1>Stripe stand-in</h1><p>API: <code>{base}/v1</code>. Webhooks to: <code>{hook}</code>. Faults: {faults}.</p>",
        base = esc(&inner.base_url),
        hook = esc(lock(&inner.webhook_url).as_deref().unwrap_or("(none)")),
        faults = esc(&inner.cfg.faults.describe()),
    );
    body.push_str(
        "<h2>Checkout sessions</h2><table><thead><tr><th scope=\"col\">Id</th><th scope=\"col\">Created</th>\
         <th scope=\"col\">Amount</th><th scope=\"col\">Status</th><th scope=\"col\">Payment</th>\
         <th scope=\"col\">Reference</th></tr></thead><tbody>",
    );
    for rec in sessions.iter().rev() {
        let v = &rec.session;
        body.push_str(&format!(
            "<tr><td><a href=\"/pay/{id}\">{id}</a></td><td>{created}</td><td>{amount}</td><td>{status}</td><td>{paid}</td><td>{reference}</td></tr>",
            id = s(&v["id"]),
            created = esc(&format_utc(v["created"].as_i64().unwrap_or(0))),
            amount = money(v),
            status = s(&v["status"]),
            paid = s(&v["payment_status"]),
            reference = s(&v["client_reference_id"]),
        ));
    }
    body.push_str("</tbody></table><h2>Refunds</h2><table><thead><tr><th scope=\"col\">Id</th><th scope=\"col\">Created</th><th scope=\"col\">Amount</th><th scope=\"col\">Payment intent</th><th scope=\"col\">Reason</th></tr></thead><tbody>");
    for v in refunds.iter().rev() {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s(&v["id"]),
            esc(&format_utc(v["created"].as_i64().unwrap_or(0))),
            money(v),
            s(&v["payment_intent"]),
            s(&v["reason"]),
        ));
    }
    body.push_str("</tbody></table><h2>Events</h2><table><thead><tr><th scope=\"col\">Id</th><th scope=\"col\">Created</th><th scope=\"col\">Type</th><th scope=\"col\">Object</th></tr></thead><tbody>");
    for v in events.iter().rev() {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s(&v["id"]),
            esc(&format_utc(v["created"].as_i64().unwrap_or(0))),
            s(&v["type"]),
            s(&v["data"]["object"]["id"]),
        ));
    }
    body.push_str("</tbody></table><h2>Webhook deliveries</h2><table><thead><tr><th scope=\"col\">At (UTC)</th><th scope=\"col\">Event</th><th scope=\"col\">Type</th><th scope=\"col\">Attempt</th><th scope=\"col\">Result</th></tr></thead><tbody>");
    for d in deliveries.iter().rev() {
        let mut result = match (d.status, &d.error) {
            (Some(status), _) => format!("HTTP {status}"),
            (None, Some(e)) => e.clone(),
            (None, None) => "—".into(),
        };
        if d.duplicate {
            result.push_str(" (duplicate)");
        }
        if d.gave_up {
            result.push_str(" — gave up");
        }
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&format_utc((d.at_ms / 1000) as i64)),
            esc(&d.event_id),
            esc(&d.event_type),
            d.attempt,
            esc(&result),
        ));
    }
    body.push_str("</tbody></table>");
    (StatusCode::OK, Html(page("Stripe stand-in", &body, true))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_bracket_notation_into_nested_json() {
        let p = decode_params(
            "mode=payment&line_items%5B0%5D%5Bprice_data%5D%5Bcurrency%5D=zar\
             &line_items[0][quantity]=2&line_items[1][quantity]=1&metadata[0]=x&metadata[b]=y&tags[]=a&tags[]=b",
        )
        .expect("decodes");
        assert_eq!(p["mode"], "payment");
        assert_eq!(p["line_items"][0]["price_data"]["currency"], "zar");
        assert_eq!(p["line_items"][0]["quantity"], "2");
        assert_eq!(p["line_items"][1]["quantity"], "1");
        assert_eq!(p["metadata"], json!({"0": "x", "b": "y"}));
        assert_eq!(p["tags"], json!(["a", "b"]));
    }

    #[test]
    fn rejects_malformed_parameter_names() {
        assert!(decode_params("a[b=1").is_err());
        assert!(decode_params("[a]=1").is_err());
        assert!(decode_params("a=1&a[b]=2").is_err());
    }

    #[test]
    fn masks_api_keys_like_stripe() {
        assert_eq!(mask_key("sk_test_abcdefgh1234"), "sk_test_********1234");
        assert_eq!(mask_key("nope"), "****");
    }

    #[test]
    fn formats_amounts_per_currency() {
        assert_eq!(format_amount(25000, "zar"), "R 250.00");
        assert_eq!(format_amount(1200, "usd"), "USD 12.00");
        assert_eq!(format_amount(500, "jpy"), "JPY 500");
    }

    #[test]
    fn signature_matches_a_known_vector() {
        // `printf '1.{}' | openssl dgst -sha256 -hmac whsec_test`
        assert_eq!(
            signature_header("whsec_test", 1, "{}"),
            "t=1,v1=7500d5d4be4b3ef07af1fe56f7d522d135cdaa7530de557e67cc1049c52de094"
        );
    }
}
