//! A local stand-in for BulkSMS's JSON REST API v1, so demos and tests send SMS without an
//! account, credits or a handset.
//!
//! It answers what the portal's client calls, in BulkSMS's shapes (`research/messaging.md`,
//! part B), so the client, pointed at [`BulkSmsStandin::base_url`] + `/v1` instead of
//! `https://api.bulksms.com/v1`, cannot tell:
//!
//! - `POST /v1/messages` (HTTP Basic with the token id and secret): one submission object or
//!   an array; `to` as a string, an array or `{type: INTERNATIONAL, address}`; `body`, `from`,
//!   `encoding`, `longMessageMaxParts`, `deliveryReports`, `routingGroup`, `userSuppliedId`;
//!   the `deduplication-id` query parameter (a repeat within 12 hours returns the stored answer
//!   and sends nothing) and `auto-unicode`. Answered `201` with an array of message objects:
//!   ids are large digit strings, status `ACCEPTED.null`, `numberOfParts`/`creditCost` null
//!   (filled in on later GETs). With `encoding: TEXT`, characters outside GSM 03.38 become
//!   `?`, as BulkSMS does.
//! - `GET /v1/messages/{id}`, `GET /v1/messages/{id}/relatedReceivedMessages`,
//!   `GET /v1/messages?filter=...&limit=...&sortOrder=...` (clauses on `id`, `type`,
//!   `status.type`, `status.id`, `submission.id`, `submission.date`, `userSuppliedId`).
//! - `GET /v1/profile` (the connection test), `GET|POST /v1/blocked-numbers`.
//!
//! Errors are BulkSMS's problem JSON (`type`, `title`, `status`, `detail`): 400 `bad-request`
//! (an invalid body or number), 401 `authentication-failed`, 403 `insufficient-credits`, 404
//! `not-found`. 429 and 5xx are not in BulkSMS's spec; the stand-in's (from [`SmsFaults`])
//! use the same shape, and its 429 carries `Retry-After`.
//!
//! A message moves ACCEPTED → SENT → DELIVERED (or FAILED) on a short timer, and each change
//! is POSTed (with `deliveryReports: ALL`; only failures with `ERRORS`) as a JSON array of
//! message objects to the status webhook URL, unsigned (BulkSMS signs nothing; put a secret in
//! the URL's query), batched up to 10 a call (`invokeOption: MANY`) or one a call (`ONE`),
//! retried on BulkSMS's rule: 2xx is done, 4xx discards, anything else is retried. Replies
//! typed on `/_standin/phone` become RECEIVED messages POSTed to the inbound webhook URL; a
//! STOP reply puts the number on the blocked list, as BulkSMS does, and later sends to it end
//! `FAILED.BLOCKED` (still charged).
//!
//! Magic recipients (last four digits): `0001` fails `FAILED.HANDSET_ERROR`, `0002` fails
//! `FAILED.EXPIRED`, `0003` answers `500` on submit, `0004` answers `400` (invalid number).
//!
//! Not emulated: groups, phonebook templates, scheduling, BINARY bodies, webhook management
//! through the API (the URLs are configuration), routing-group prices (a part costs 1 credit),
//! and per-message retries of a failed MANY batch (the batch is retried whole).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Form, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use guards::sms::{Encoding, is_gsm, is_opt_out, segments_as, to_gsm_lossy};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::common::{esc, lock, now_ms, now_secs, page};
use crate::controls::{SmsFaults, take_one};
use crate::outbox::{Outbox, OutboxConfig, OutboxDelivery, Webhook};
use crate::phone::{self, MAX_REPLY_CHARS, PhoneMessage, iso_utc};

/// The stand-in's fixed, obviously fake API token (loopback only).
pub const TOKEN_ID: &str = "STOEPSTANDIN0000000000000000TOKEN-01-A";
pub const TOKEN_SECRET: &str = "stoep-bulksms-standin-secret";
/// The number customers' replies go to (REPLIABLE messages come from it).
pub const REPLY_NUMBER: &str = "27600000001";

/// Largest request body accepted.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most recipients in one submission (BulkSMS allows 30 000; the stand-in is smaller).
const MAX_RECIPIENTS: usize = 1000;
/// How long a deduplication id is remembered.
const DEDUP_TTL_SECS: i64 = 12 * 60 * 60;
/// BulkSMS waits 30 s for a webhook answer.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(30);
/// How often scheduled status changes are looked at.
const TICK: Duration = Duration::from_millis(25);
/// Messages per webhook call with `invokeOption: MANY`.
const MANY_BATCH: usize = 10;
/// The first message id handed out (the size of BulkSMS's real ids, beyond 2^53).
const FIRST_ID: u64 = 1_491_381_497_934_909_440;
const ERROR_BASE: &str = "https://developer.bulksms.com/json/v1/errors#";

// ---------------------------------------------------------------------------------------------
// Configuration and public API
// ---------------------------------------------------------------------------------------------

/// How a stand-in behaves. [`Default`] gives the fixed test token, 100 credits, no webhook
/// URLs, MANY batching, status changes a moment apart, a short retry schedule and no
/// persistence.
#[derive(Clone)]
pub struct BulkSmsStandinConfig {
    /// The API token's id and secret (HTTP Basic `id:secret`); others get `401`.
    pub token_id: String,
    pub token_secret: String,
    /// The account's `username` in `/profile`.
    pub username: String,
    /// Where delivery reports (the `SENT` trigger scope) are POSTed.
    pub status_webhook_url: Option<String>,
    /// Where received messages (the `RECEIVED` trigger scope) are POSTed.
    pub inbound_webhook_url: Option<String>,
    /// `invokeOption: MANY` (up to 10 messages a call) or `ONE`.
    pub invoke_many: bool,
    /// The starting credit balance (a part costs 1).
    pub credits: f64,
    /// The number replies come to.
    pub reply_number: String,
    /// Fault switches, read at each call and delivery.
    pub faults: Arc<SmsFaults>,
    /// Waits between webhook attempts after a failure (BulkSMS: 90 s, 3, 6, 12 min, then every
    /// 15 min for two days; compressed).
    pub retry_schedule: Vec<Duration>,
    /// After a submission: when it becomes SENT, then DELIVERED (or FAILED), each from the
    /// submission.
    pub sent_after: Duration,
    pub delivered_after: Duration,
    /// If set, messages, the blocked list, deduplication ids and the balance are saved here
    /// after each change.
    pub state_file: Option<PathBuf>,
}

impl BulkSmsStandinConfig {
    /// 1.5 s, 3 s, 6 s, 12 s, then 15 s four times: BulkSMS's schedule in seconds for minutes.
    pub fn default_retry_schedule() -> Vec<Duration> {
        [1500, 3000, 6000, 12_000, 15_000, 15_000, 15_000, 15_000]
            .into_iter()
            .map(Duration::from_millis)
            .collect()
    }

    /// The `Authorization` header value the stand-in accepts.
    pub fn basic_auth(&self) -> String {
        basic_auth(&self.token_id, &self.token_secret)
    }
}

/// `Basic base64(id:secret)`, sent preemptively (the secret is not URL-encoded).
pub fn basic_auth(token_id: &str, token_secret: &str) -> String {
    format!(
        "Basic {}",
        guards::signature::base64(format!("{token_id}:{token_secret}").as_bytes())
    )
}

impl Default for BulkSmsStandinConfig {
    fn default() -> Self {
        Self {
            token_id: TOKEN_ID.into(),
            token_secret: TOKEN_SECRET.into(),
            username: "stoep-standin".into(),
            status_webhook_url: None,
            inbound_webhook_url: None,
            invoke_many: true,
            credits: 100.0,
            reply_number: REPLY_NUMBER.into(),
            faults: Arc::default(),
            retry_schedule: Self::default_retry_schedule(),
            sent_after: Duration::from_millis(300),
            delivered_after: Duration::from_secs(1),
            state_file: None,
        }
    }
}

/// Secrets stay out of logs (a webhook URL may carry one in its query, so only its path shows).
impl fmt::Debug for BulkSmsStandinConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = |u: &Option<String>| {
            u.as_deref()
                .map(|u| u.split('?').next().unwrap_or_default().to_owned())
        };
        f.debug_struct("BulkSmsStandinConfig")
            .field("token_id", &self.token_id)
            .field("token_secret", &"****")
            .field("status_webhook_url", &url(&self.status_webhook_url))
            .field("inbound_webhook_url", &url(&self.inbound_webhook_url))
            .field("invoke_many", &self.invoke_many)
            .field("credits", &self.credits)
            .field("faults", &self.faults)
            .field("retry_schedule", &self.retry_schedule)
            .field("state_file", &self.state_file)
            .finish()
    }
}

/// A running stand-in. Cheap to clone; it stops when the `shutdown` token given to
/// [`BulkSmsStandin::start`] is cancelled.
#[derive(Clone)]
pub struct BulkSmsStandin {
    inner: Arc<Inner>,
}

impl BulkSmsStandin {
    /// Serves the stand-in on `listener` (bind `127.0.0.1:0` in tests) and starts the webhook
    /// outbox and the status scheduler. Loads `state_file` if it exists.
    pub async fn start(
        listener: TcpListener,
        cfg: BulkSmsStandinConfig,
        shutdown: CancellationToken,
    ) -> std::io::Result<BulkSmsStandin> {
        let addr = listener.local_addr()?;
        let mut store: Store = match &cfg.state_file {
            Some(path) => crate::common::load_state(path, "BulkSMS").await?,
            None => Store::default(),
        };
        store.balance.get_or_insert(cfg.credits);
        let outbox = Outbox::start(
            OutboxConfig {
                name: "BulkSMS",
                retry_schedule: cfg.retry_schedule.clone(),
                timeout: WEBHOOK_TIMEOUT,
                discard_on_4xx: true,
                user_agent: "BulkSMS-Webhook/1.0".into(),
                faults: cfg.faults.webhooks.clone(),
            },
            shutdown.clone(),
        )?;
        let inner = Arc::new(Inner {
            base_url: format!("http://{addr}"),
            urls: Mutex::new((
                cfg.status_webhook_url.clone(),
                cfg.inbound_webhook_url.clone(),
            )),
            cfg,
            store: Mutex::new(store),
            outbox,
        });
        let router = Router::new()
            .route("/_standin", get(show_admin))
            .route("/_standin/phone", get(show_phone))
            .route("/_standin/phone/reply", post(submit_reply))
            .fallback(handle_api)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(inner.clone());
        let server_shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(server_shutdown.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "the BulkSMS stand-in stopped serving");
            }
        });
        tokio::spawn(run_schedule(inner.clone(), shutdown));
        tracing::info!(base_url = %inner.base_url, "BulkSMS stand-in listening");
        Ok(BulkSmsStandin { inner })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash; the API is under `/v1`.
    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// The fault switches (shared with whoever passed them in).
    pub fn faults(&self) -> &Arc<SmsFaults> {
        &self.inner.cfg.faults
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &BulkSmsStandinConfig {
        &self.inner.cfg
    }

    /// Changes where delivery reports and received messages go; queued ones keep their URL.
    pub fn set_webhook_urls(&self, status: Option<String>, inbound: Option<String>) {
        *lock(&self.inner.urls) = (status, inbound);
    }

    /// Sets the credit balance (0 makes the next send answer 403 insufficient-credits).
    pub fn set_credits(&self, balance: f64) {
        self.inner.mutate(|s| {
            s.balance = Some(balance);
            s.dirty = true;
        });
    }

    /// The credit balance.
    pub fn credits(&self) -> f64 {
        lock(&self.inner.store).balance.unwrap_or_default()
    }

    /// Every message object, SENT and RECEIVED, oldest first, as `GET /messages/{id}` returns
    /// them.
    pub fn api_messages(&self) -> Vec<Value> {
        lock(&self.inner.store)
            .messages
            .iter()
            .map(|r| r.message.clone())
            .collect()
    }

    /// Every message either way, oldest first, as the phone page shows them.
    pub fn messages(&self) -> Vec<PhoneMessage> {
        lock(&self.inner.store)
            .messages
            .iter()
            .map(|r| r.phone.clone())
            .collect()
    }

    /// The messages with one customer number (digits, `+` optional), oldest first.
    pub fn phone(&self, number: &str) -> Vec<PhoneMessage> {
        let number = number.trim_start_matches('+');
        self.messages()
            .into_iter()
            .filter(|m| m.number == number)
            .collect()
    }

    /// The blocked list (numbers without `+`), oldest first.
    pub fn blocked_numbers(&self) -> Vec<String> {
        lock(&self.inner.store)
            .blocked
            .iter()
            .map(|b| b.phone_number.clone())
            .collect()
    }

    /// The customer at `number` replies `text`: a RECEIVED message, POSTed to the inbound
    /// webhook; STOP-like replies block the number. Returns the new message's id.
    pub fn reply(&self, number: &str, text: &str) -> Result<String, String> {
        let number = phone::clean_number(number).ok_or("not a phone number")?;
        let text = text.trim();
        if text.is_empty() || text.chars().count() > MAX_REPLY_CHARS {
            return Err("a reply is 1 to 1600 characters".into());
        }
        Ok(self
            .inner
            .mutate(|s| s.receive(&self.inner.cfg, &number, text)))
    }

    /// Every webhook delivery attempt (the last 5000), oldest first.
    pub fn deliveries(&self) -> Vec<OutboxDelivery> {
        self.inner.outbox.log()
    }

    /// Waits until every scheduled status change has happened and no webhook is pending or in
    /// flight; `false` if `timeout` passed first.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if lock(&self.inner.store).schedule.is_empty() {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if self.inner.outbox.wait_idle(left).await
                    && lock(&self.inner.store).schedule.is_empty()
                {
                    return true;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

struct Inner {
    cfg: BulkSmsStandinConfig,
    base_url: String,
    /// (status webhook URL, inbound webhook URL). Lock order: `store`, then `urls`.
    urls: Mutex<(Option<String>, Option<String>)>,
    store: Mutex<Store>,
    outbox: Outbox,
}

impl Inner {
    /// Runs one change, saves the state if it changed, and queues the webhooks it produced.
    fn mutate<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let mut store = lock(&self.store);
        let result = f(&mut store);
        if store.dirty {
            store.dirty = false;
            if let Some(path) = &self.cfg.state_file {
                crate::common::save_state(path, &*store, "BulkSMS");
            }
        }
        let out = std::mem::take(&mut store.out);
        if !out.is_empty() {
            let (status_url, inbound_url) = lock(&self.urls).clone();
            for batch in out {
                let url = if batch.received {
                    &inbound_url
                } else {
                    &status_url
                };
                let Some(url) = url else { continue };
                let key = batch
                    .messages
                    .iter()
                    .filter_map(|m| m["id"].as_str())
                    .collect::<Vec<_>>()
                    .join(",");
                self.outbox.push(Webhook {
                    url: url.clone(),
                    kind: batch.kind,
                    key,
                    body: Value::Array(batch.messages).to_string().into_bytes(),
                    headers: Vec::new(),
                    delay: Duration::ZERO,
                });
            }
        }
        result
    }
}

#[derive(Default, Serialize, Deserialize)]
struct Store {
    seq: u64,
    messages: Vec<SmsRecord>,
    /// Deduplication id → the stored answer.
    dedup: BTreeMap<String, Saved>,
    blocked: Vec<Blocked>,
    blocked_seq: u64,
    /// `None` until the configured starting balance is applied.
    balance: Option<f64>,
    schedule: Vec<Scheduled>,
    #[serde(skip)]
    out: Vec<Batch>,
    #[serde(skip)]
    dirty: bool,
}

#[derive(Clone, Serialize, Deserialize)]
struct SmsRecord {
    /// The API object, complete (parts and cost filled in).
    message: Value,
    /// `ALL`, `ERRORS` or `NONE` (RECEIVED: `NONE`).
    delivery_reports: String,
    phone: PhoneMessage,
}

#[derive(Clone, Serialize, Deserialize)]
struct Saved {
    body: Value,
    created: i64,
}

#[derive(Clone, Serialize, Deserialize)]
struct Blocked {
    id: u64,
    phone_number: String,
}

#[derive(Clone, Serialize, Deserialize)]
struct Scheduled {
    message_id: String,
    /// `SENT.null`, `DELIVERED.null`, `FAILED.EXPIRED`, ...
    status_id: String,
    due_ms: u64,
}

/// One webhook call's messages.
struct Batch {
    kind: String,
    messages: Vec<Value>,
    received: bool,
}

fn status_json(status_id: &str) -> Value {
    let (kind, sub) = status_id.split_once('.').unwrap_or((status_id, "null"));
    json!({
        "id": status_id,
        "type": kind,
        "subtype": if sub == "null" { Value::Null } else { json!(sub) },
    })
}

impl Store {
    fn find(&self, id: &str) -> Option<usize> {
        self.messages.iter().position(|r| r.message["id"] == id)
    }

    fn next_ids(&mut self) -> (String, String) {
        self.seq += 1;
        (
            (FIRST_ID + self.seq).to_string(),
            format!("1-{:020}", 2_073_112_368 + self.seq),
        )
    }

    fn block(&mut self, number: &str) {
        if !self.blocked.iter().any(|b| b.phone_number == number) {
            self.blocked_seq += 1;
            self.blocked.push(Blocked {
                id: self.blocked_seq,
                phone_number: number.to_owned(),
            });
            self.dirty = true;
        }
    }

    /// Applies the status changes whose time has come, and produces the delivery reports.
    fn apply_due(&mut self, cfg: &BulkSmsStandinConfig, now_ms: u64) {
        if self.schedule.iter().all(|s| s.due_ms > now_ms) {
            return;
        }
        let (due, later): (Vec<Scheduled>, Vec<Scheduled>) = std::mem::take(&mut self.schedule)
            .into_iter()
            .partition(|s| s.due_ms <= now_ms);
        self.schedule = later;
        self.dirty = true;
        let mut reports = Vec::new();
        for s in due {
            let Some(i) = self.find(&s.message_id) else {
                continue;
            };
            let rec = &mut self.messages[i];
            rec.message["status"] = status_json(&s.status_id);
            rec.phone.status = s.status_id.clone();
            let failed = s.status_id.starts_with("FAILED");
            if failed {
                rec.phone.error = Some(s.status_id.clone());
            }
            let report = match rec.delivery_reports.as_str() {
                "ALL" => true,
                "ERRORS" => failed,
                _ => false,
            };
            if report {
                reports.push(rec.message.clone());
            }
        }
        let size = if cfg.invoke_many { MANY_BATCH } else { 1 };
        for chunk in reports.chunks(size) {
            self.out.push(Batch {
                kind: "delivery-report".into(),
                messages: chunk.to_vec(),
                received: false,
            });
        }
    }

    /// A customer's reply: a RECEIVED message, linked to the last SENT one to that number.
    fn receive(&mut self, cfg: &BulkSmsStandinConfig, number: &str, text: &str) -> String {
        let (id, submission_id) = self.next_ids();
        let related = self
            .messages
            .iter()
            .rev()
            .find(|r| r.message["type"] == "SENT" && r.message["to"] == number)
            .map(|r| r.message["id"].clone())
            .unwrap_or(Value::Null);
        let encoding = if is_gsm(text) { "TEXT" } else { "UNICODE" };
        let now = now_secs();
        let message = json!({
            "id": id,
            "type": "RECEIVED",
            "from": number,
            "to": cfg.reply_number,
            "body": text,
            "encoding": encoding,
            "protocolId": 0,
            "messageClass": 0,
            "submission": { "id": submission_id, "date": iso_utc(now) },
            // BulkSMS's spec does not say what `status` holds for RECEIVED messages.
            "status": status_json("RECEIVED.null"),
            "relatedSentMessageId": related,
            "userSuppliedId": null,
            "numberOfParts": 1,
            "creditCost": 0,
        });
        self.messages.push(SmsRecord {
            message: message.clone(),
            delivery_reports: "NONE".into(),
            phone: PhoneMessage {
                id: id.clone(),
                number: number.to_owned(),
                from_business: false,
                at: now,
                text: text.to_owned(),
                label: "reply".into(),
                status: "received".into(),
                error: None,
                buttons: Vec::new(),
            },
        });
        if is_opt_out(text) {
            // BulkSMS blocks a number that replies STOP, by itself.
            self.block(number);
        }
        self.dirty = true;
        self.out.push(Batch {
            kind: "received".into(),
            messages: vec![message],
            received: true,
        });
        id
    }
}

async fn run_schedule(inner: Arc<Inner>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => inner.mutate(|s| s.apply_due(&inner.cfg, now_ms())),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The API
// ---------------------------------------------------------------------------------------------

/// BulkSMS's problem JSON.
#[derive(Debug)]
struct Problem {
    status: StatusCode,
    fragment: &'static str,
    title: &'static str,
    detail: Option<String>,
    retry_after: Option<u32>,
}

impl Problem {
    fn new(status: StatusCode, fragment: &'static str, title: &'static str) -> Self {
        Self {
            status,
            fragment,
            title,
            detail: None,
            retry_after: None,
        }
    }

    fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", "Bad Request").detail(detail)
    }

    fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not Found").detail(detail)
    }

    fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    fn into_response(self) -> Response {
        let mut body = json!({
            "type": format!("{ERROR_BASE}{}", self.fragment),
            "title": self.title,
            "status": self.status.as_u16(),
        });
        if let Some(d) = &self.detail {
            body["detail"] = json!(d);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

async fn handle_api(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match api(&inner, &method, &uri, &headers, &body) {
        Ok((status, body)) => (status, axum::Json(body)).into_response(),
        Err(p) => p.into_response(),
    }
}

fn api(
    inner: &Inner,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(StatusCode, Value), Problem> {
    let faults = &inner.cfg.faults;
    if faults.api_down.load(Ordering::SeqCst) {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service-unavailable",
            "Service Unavailable",
        )
        .detail("The BulkSMS stand-in is down (fault switch)."));
    }
    if take_one(&faults.fail_next) {
        return Err(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-server-error",
            "Internal Server Error",
        )
        .detail("stand-in fault: failing calls"));
    }
    if take_one(&faults.rate_limit_next) {
        let mut p = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-requests",
            "Too Many Requests",
        )
        .detail("stand-in fault: rate limit");
        p.retry_after = Some(faults.retry_after_secs.load(Ordering::SeqCst).max(1));
        return Err(p);
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !guards::signature::same(given.trim(), &inner.cfg.basic_auth()) {
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "authentication-failed",
            "Authentication Failed",
        )
        .detail("Full authentication is required to access this resource"));
    }
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let path = uri.path().trim_end_matches('/');
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "messages"]) => {
            let value: Value = serde_json::from_slice(body).map_err(|e| {
                Problem::bad_request(format!("The request body is not valid JSON: {e}"))
            })?;
            inner.mutate(|s| submit(&inner.cfg, s, &value, &query))
        }
        ("GET", ["v1", "messages"]) => {
            let store = lock(&inner.store);
            list_messages(&store, &query).map(|v| (StatusCode::OK, v))
        }
        ("GET", ["v1", "messages", id]) => {
            let store = lock(&inner.store);
            store
                .find(id)
                .map(|i| (StatusCode::OK, store.messages[i].message.clone()))
                .ok_or_else(|| Problem::not_found(format!("Message with id '{id}' does not exist")))
        }
        ("GET", ["v1", "messages", id, "relatedReceivedMessages"]) => {
            let store = lock(&inner.store);
            if store.find(id).is_none() {
                return Err(Problem::not_found(format!(
                    "Message with id '{id}' does not exist"
                )));
            }
            let related: Vec<Value> = store
                .messages
                .iter()
                .filter(|r| r.message["relatedSentMessageId"] == *id)
                .map(|r| r.message.clone())
                .collect();
            Ok((StatusCode::OK, Value::Array(related)))
        }
        ("GET", ["v1", "profile"]) => Ok((StatusCode::OK, profile(inner))),
        ("GET", ["v1", "blocked-numbers"]) => {
            let store = lock(&inner.store);
            let min_id: u64 = query
                .get("min-id")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let limit: usize = query
                .get("limit")
                .and_then(|v| v.parse().ok())
                .unwrap_or(10_000)
                .min(10_000);
            let list: Vec<Value> = store
                .blocked
                .iter()
                .filter(|b| b.id >= min_id)
                .take(limit)
                .map(|b| json!({ "id": b.id, "phoneNumber": b.phone_number }))
                .collect();
            Ok((StatusCode::OK, Value::Array(list)))
        }
        ("POST", ["v1", "blocked-numbers"]) => {
            let value: Value = serde_json::from_slice(body)
                .map_err(|_| Problem::bad_request("The request body is not valid JSON"))?;
            let list = value
                .as_array()
                .filter(|a| a.len() <= 1000)
                .ok_or_else(|| Problem::bad_request("Expected an array of at most 1000 numbers"))?;
            let mut numbers = Vec::new();
            for n in list {
                let n = n
                    .as_str()
                    .and_then(phone::clean_number)
                    .ok_or_else(|| Problem::bad_request(format!("Invalid phone number: {n}")))?;
                numbers.push(n);
            }
            inner.mutate(|s| {
                for n in &numbers {
                    s.block(n);
                }
            });
            // The spec does not show this answer's body; an empty 201 is the stand-in's choice.
            Ok((StatusCode::CREATED, Value::Null))
        }
        _ => Err(Problem::not_found(format!(
            "No resource at {} {path}",
            method.as_str()
        ))),
    }
}

fn profile(inner: &Inner) -> Value {
    let balance = lock(&inner.store).balance.unwrap_or_default();
    json!({
        "id": "1234567",
        "username": inner.cfg.username,
        "created": "2019-01-01T10:00:00Z",
        "credits": { "balance": balance, "limit": 0, "isTransferAllowed": false },
        "quota": { "size": 100, "remaining": 100 },
        "originAddresses": { "allowed": [], "isFullControlAllowed": false },
        "company": { "name": "Stoep stand-in", "taxReference": null },
        "commerce": {
            "bankPaymentReference": "STANDIN",
            "address": { "street": ["1 Loopback Road"], "city": "Cape Town",
                         "postalCode": "8001", "region": "Western Cape", "country": "ZA" },
        },
    })
}

/// The recipients of one submission entry.
fn recipients(to: &Value) -> Result<Vec<String>, Problem> {
    let one = |v: &Value| -> Result<String, Problem> {
        let raw = match v {
            Value::String(s) => s.as_str(),
            Value::Object(o) => match o.get("type").and_then(Value::as_str) {
                None | Some("INTERNATIONAL") => o
                    .get("address")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Problem::bad_request("'to' needs an address"))?,
                Some(other) => {
                    return Err(Problem::bad_request(format!(
                        "'to' of type {other} is not supported by the stand-in"
                    )));
                }
            },
            _ => return Err(Problem::bad_request("'to' must be a string or an object")),
        };
        let number = phone::clean_number(raw)
            .ok_or_else(|| Problem::bad_request(format!("The 'to' number '{raw}' is not valid")))?;
        if number.ends_with("0004") {
            return Err(Problem::bad_request(format!(
                "The 'to' number '{raw}' is not valid"
            )));
        }
        Ok(number)
    };
    match to {
        Value::Array(list) if !list.is_empty() => list.iter().map(one).collect(),
        Value::Null => Err(Problem::bad_request("'to' is required")),
        Value::Array(_) => Err(Problem::bad_request("'to' must not be empty")),
        other => Ok(vec![one(other)?]),
    }
}

/// A message about to be created.
struct Draft {
    to: String,
    from: String,
    body: String,
    encoding: Encoding,
    parts: usize,
    delivery_reports: String,
    user_supplied_id: Value,
}

fn drafts(entry: &Value, auto_unicode: bool) -> Result<Vec<Draft>, Problem> {
    let e = entry
        .as_object()
        .ok_or_else(|| Problem::bad_request("Each message must be an object"))?;
    let numbers = recipients(e.get("to").unwrap_or(&Value::Null))?;
    let body = e
        .get("body")
        .and_then(Value::as_str)
        .ok_or_else(|| Problem::bad_request("'body' is required"))?;
    let mut encoding = match e.get("encoding").and_then(Value::as_str) {
        None | Some("TEXT") => Encoding::Text,
        Some("UNICODE") => Encoding::Unicode,
        Some("BINARY") => {
            return Err(Problem::bad_request(
                "encoding BINARY is not supported by the stand-in",
            ));
        }
        Some(other) => return Err(Problem::bad_request(format!("Invalid encoding: {other}"))),
    };
    if encoding == Encoding::Text && auto_unicode && !is_gsm(body) {
        encoding = Encoding::Unicode;
    }
    let body = match encoding {
        Encoding::Text => to_gsm_lossy(body),
        Encoding::Unicode => body.to_owned(),
    };
    let parts = segments_as(&body, encoding).parts;
    let max_parts = match e.get("longMessageMaxParts") {
        None | Some(Value::Null) => 3,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=255).contains(n))
            .ok_or_else(|| Problem::bad_request("Invalid longMessageMaxParts"))?
            as usize,
    };
    if parts > max_parts {
        // BulkSMS does not document what happens above the limit; refusing shows the client's
        // mistake instead of sending a cut message.
        return Err(Problem::bad_request(format!(
            "The message needs {parts} parts, more than longMessageMaxParts ({max_parts})"
        )));
    }
    let delivery_reports = match e.get("deliveryReports").and_then(Value::as_str) {
        None => "ALL".to_owned(),
        Some(v @ ("ALL" | "ERRORS" | "NONE")) => v.to_owned(),
        Some(other) => {
            return Err(Problem::bad_request(format!(
                "Invalid deliveryReports: {other}"
            )));
        }
    };
    match e.get("routingGroup").and_then(Value::as_str) {
        None | Some("ECONOMY" | "STANDARD" | "PREMIUM") => {}
        Some(other) => {
            return Err(Problem::bad_request(format!(
                "Invalid routingGroup: {other}"
            )));
        }
    }
    let from = match e.get("from") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => match o.get("type").and_then(Value::as_str) {
            Some("REPLIABLE") => String::new(),
            _ => o
                .get("address")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        },
        Some(_) => return Err(Problem::bad_request("Invalid 'from'")),
    };
    let user_supplied_id = match e.get("userSuppliedId") {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) if s.chars().count() <= 20 => json!(s),
        Some(_) => {
            return Err(Problem::bad_request(
                "userSuppliedId must be a string of at most 20 characters",
            ));
        }
    };
    Ok(numbers
        .into_iter()
        .map(|to| Draft {
            to,
            from: from.clone(),
            body: body.clone(),
            encoding,
            parts,
            delivery_reports: delivery_reports.clone(),
            user_supplied_id: user_supplied_id.clone(),
        })
        .collect())
}

/// `POST /v1/messages`.
fn submit(
    cfg: &BulkSmsStandinConfig,
    s: &mut Store,
    body: &Value,
    query: &HashMap<String, String>,
) -> Result<(StatusCode, Value), Problem> {
    let now = now_secs();
    let dedup = match query.get("deduplication-id") {
        Some(v) => Some(
            v.parse::<i32>()
                .map_err(|_| Problem::bad_request("deduplication-id must be a 32-bit integer"))?
                .to_string(),
        ),
        None => None,
    };
    let before = s.dedup.len();
    s.dedup
        .retain(|_, saved| now - saved.created < DEDUP_TTL_SECS);
    s.dirty |= s.dedup.len() != before;
    if let Some(key) = &dedup
        && let Some(saved) = s.dedup.get(key)
    {
        return Ok((StatusCode::CREATED, saved.body.clone()));
    }
    let auto_unicode = query.get("auto-unicode").is_some_and(|v| v == "true");
    let entries: Vec<&Value> = match body {
        Value::Array(list) if !list.is_empty() => list.iter().collect(),
        Value::Array(_) => return Err(Problem::bad_request("No messages to send")),
        other => vec![other],
    };
    let mut all = Vec::new();
    for entry in entries {
        all.extend(drafts(entry, auto_unicode)?);
        if all.len() > MAX_RECIPIENTS {
            return Err(Problem::bad_request(format!(
                "At most {MAX_RECIPIENTS} recipients per request (stand-in limit)"
            )));
        }
    }
    if all.iter().any(|d| d.to.ends_with("0003")) {
        return Err(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-server-error",
            "Internal Server Error",
        )
        .detail("stand-in magic number ...0003"));
    }
    let cost: f64 = all.iter().map(|d| d.parts as f64).sum();
    let balance = s.balance.unwrap_or_default();
    if cost > balance {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "insufficient-credits",
            "Insufficient Credits",
        )
        .detail(format!(
            "The submission costs {cost} credits; the balance is {balance}"
        )));
    }
    s.balance = Some(balance - cost);
    let start = now_ms();
    let at = |d: Duration| start + d.as_millis() as u64;
    let mut answer = Vec::new();
    for d in all {
        let (id, submission_id) = s.next_ids();
        let mut message = json!({
            "id": id,
            "type": "SENT",
            "from": d.from,
            "to": d.to,
            "body": d.body,
            "encoding": d.encoding.as_str(),
            "protocolId": 0,
            "messageClass": 0,
            "submission": { "id": submission_id, "date": iso_utc(now) },
            "status": status_json("ACCEPTED.null"),
            "relatedSentMessageId": null,
            "userSuppliedId": d.user_supplied_id,
            "numberOfParts": null,
            "creditCost": null,
        });
        answer.push(message.clone());
        message["numberOfParts"] = json!(d.parts);
        message["creditCost"] = json!(d.parts);
        let blocked = s.blocked.iter().any(|b| b.phone_number == d.to);
        let plan: Vec<(&str, Duration)> = if blocked {
            vec![("FAILED.BLOCKED", cfg.sent_after)]
        } else {
            let last = if d.to.ends_with("0001") {
                "FAILED.HANDSET_ERROR"
            } else if d.to.ends_with("0002") {
                "FAILED.EXPIRED"
            } else {
                "DELIVERED.null"
            };
            vec![("SENT.null", cfg.sent_after), (last, cfg.delivered_after)]
        };
        for (status_id, after) in plan {
            s.schedule.push(Scheduled {
                message_id: id.clone(),
                status_id: status_id.into(),
                due_ms: at(after),
            });
        }
        s.messages.push(SmsRecord {
            message,
            delivery_reports: d.delivery_reports,
            phone: PhoneMessage {
                id: id.clone(),
                number: d.to,
                from_business: true,
                at: now,
                text: d.body,
                label: format!(
                    "SMS ({}, {} part{})",
                    d.encoding.as_str(),
                    d.parts,
                    if d.parts == 1 { "" } else { "s" }
                ),
                status: "ACCEPTED.null".into(),
                error: None,
                buttons: Vec::new(),
            },
        });
    }
    let answer = Value::Array(answer);
    if let Some(key) = dedup {
        s.dedup.insert(
            key,
            Saved {
                body: answer.clone(),
                created: now,
            },
        );
    }
    s.dirty = true;
    Ok((StatusCode::CREATED, answer))
}

/// One `filter` clause: `field op value`.
struct Clause {
    field: String,
    op: &'static str,
    value: String,
}

fn parse_filter(filter: &str) -> Result<Vec<Clause>, Problem> {
    const FIELDS: [&str; 7] = [
        "id",
        "type",
        "submission.id",
        "status.type",
        "status.id",
        "submission.date",
        "userSuppliedId",
    ];
    let mut out = Vec::new();
    for clause in filter.split('&').filter(|c| !c.is_empty()) {
        let pos = clause
            .find(['<', '>', '='])
            .ok_or_else(|| Problem::bad_request(format!("Invalid filter clause: {clause}")))?;
        let (field, rest) = clause.split_at(pos);
        let op = ["<=", ">=", "=", "<", ">"]
            .into_iter()
            .find(|op| rest.starts_with(op))
            .ok_or_else(|| Problem::bad_request(format!("Invalid filter clause: {clause}")))?;
        if !FIELDS.contains(&field) {
            return Err(Problem::bad_request(format!(
                "Invalid filter field: {field}"
            )));
        }
        let ordered = matches!(field, "id" | "submission.date");
        if op != "=" && !ordered {
            return Err(Problem::bad_request(format!(
                "Filter field {field} only supports ="
            )));
        }
        out.push(Clause {
            field: field.to_owned(),
            op,
            value: rest[op.len()..].to_owned(),
        });
    }
    Ok(out)
}

fn matches(message: &Value, clause: &Clause) -> bool {
    let v = match clause.field.as_str() {
        "submission.id" => &message["submission"]["id"],
        "submission.date" => &message["submission"]["date"],
        "status.type" => &message["status"]["type"],
        "status.id" => &message["status"]["id"],
        other => &message[other],
    };
    let got = v.as_str().unwrap_or_default();
    let ord = if clause.field == "id" {
        match (got.parse::<u128>(), clause.value.parse::<u128>()) {
            (Ok(a), Ok(b)) => a.cmp(&b),
            _ => return false,
        }
    } else {
        got.cmp(clause.value.as_str())
    };
    match clause.op {
        "=" => ord.is_eq(),
        "<" => ord.is_lt(),
        ">" => ord.is_gt(),
        "<=" => ord.is_le(),
        ">=" => ord.is_ge(),
        _ => false,
    }
}

/// `GET /v1/messages?filter=&limit=&sortOrder=`.
fn list_messages(store: &Store, query: &HashMap<String, String>) -> Result<Value, Problem> {
    let clauses = parse_filter(query.get("filter").map(String::as_str).unwrap_or_default())?;
    let limit = match query.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| Problem::bad_request("Invalid limit"))?
            .min(10_000),
        None => 1000,
    };
    let ascending = match query.get("sortOrder").map(String::as_str) {
        None | Some("DESCENDING") => false,
        Some("ASCENDING") => true,
        Some(other) => return Err(Problem::bad_request(format!("Invalid sortOrder: {other}"))),
    };
    let selected = store
        .messages
        .iter()
        .map(|r| &r.message)
        .filter(|m| clauses.iter().all(|c| matches(m, c)));
    let list: Vec<Value> = if ascending {
        selected.take(limit).cloned().collect()
    } else {
        let all: Vec<&Value> = selected.collect();
        all.into_iter().rev().take(limit).cloned().collect()
    };
    Ok(Value::Array(list))
}

// ---------------------------------------------------------------------------------------------
// The phone and admin pages
// ---------------------------------------------------------------------------------------------

fn phone_page(inner: &Inner, status: StatusCode, alert: Option<&str>) -> Response {
    let messages: Vec<PhoneMessage> = lock(&inner.store)
        .messages
        .iter()
        .map(|r| r.phone.clone())
        .collect();
    (status, Html(phone::render("SMS", &messages, alert))).into_response()
}

async fn show_phone(State(inner): State<Arc<Inner>>) -> Response {
    phone_page(&inner, StatusCode::OK, None)
}

/// `POST /_standin/phone/reply` with `number` and `text`.
async fn submit_reply(
    State(inner): State<Arc<Inner>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let standin = BulkSmsStandin {
        inner: inner.clone(),
    };
    let number = form.get("number").map(String::as_str).unwrap_or_default();
    match standin.reply(
        number,
        form.get("text").map(String::as_str).unwrap_or_default(),
    ) {
        Ok(_) => Redirect::to(&format!(
            "/_standin/phone#n{}",
            phone::clean_number(number).unwrap_or_default()
        ))
        .into_response(),
        Err(e) => phone_page(&inner, StatusCode::BAD_REQUEST, Some(&e)),
    }
}

/// `GET /_standin`: balance, blocked list, messages and webhook deliveries.
async fn show_admin(State(inner): State<Arc<Inner>>) -> Response {
    let (messages, blocked, balance) = {
        let s = lock(&inner.store);
        (
            s.messages.clone(),
            s.blocked.clone(),
            s.balance.unwrap_or_default(),
        )
    };
    let (status_url, inbound_url) = lock(&inner.urls).clone();
    let path_only = |u: &Option<String>| {
        u.as_deref()
            .map(|u| u.split('?').next().unwrap_or_default().to_owned())
            .unwrap_or_else(|| "(none)".into())
    };
    let mut body = format!(
        "<h1>BulkSMS stand-in</h1><p>API: <code>{base}/v1</code> (HTTP Basic, token id \
         <code>{token}</code>). Credits: {balance}. Delivery reports to <code>{status}</code>, \
         replies to <code>{inbound}</code> ({invoke}). Faults: {faults}.</p>\
         <p><a href=\"/_standin/phone\">Open the phone</a></p>\
         <p class=\"note\">Magic recipients (last digits): 0001 fails HANDSET_ERROR, 0002 fails \
         EXPIRED, 0003 answers 500, 0004 answers 400. A STOP reply blocks the number.</p>",
        base = esc(&inner.base_url),
        token = esc(&inner.cfg.token_id),
        status = esc(&path_only(&status_url)),
        inbound = esc(&path_only(&inbound_url)),
        invoke = if inner.cfg.invoke_many { "MANY" } else { "ONE" },
        faults = esc(&inner.cfg.faults.describe()),
    );
    body.push_str("<h2>Messages</h2><table><thead><tr><th scope=\"col\">Id</th><th scope=\"col\">Type</th><th scope=\"col\">From</th><th scope=\"col\">To</th><th scope=\"col\">Status</th><th scope=\"col\">Parts</th></tr></thead><tbody>");
    for r in messages.iter().rev().take(500) {
        let m = &r.message;
        let s = |v: &Value| esc(v.as_str().unwrap_or("—"));
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s(&m["id"]),
            s(&m["type"]),
            s(&m["from"]),
            s(&m["to"]),
            s(&m["status"]["id"]),
            m["numberOfParts"]
        ));
    }
    body.push_str("</tbody></table><h2>Blocked numbers</h2><ul>");
    for b in &blocked {
        body.push_str(&format!("<li>{} (id {})</li>", esc(&b.phone_number), b.id));
    }
    body.push_str("</ul><h2>Webhook deliveries</h2><table><thead><tr><th scope=\"col\">At (UTC)</th><th scope=\"col\">Kind</th><th scope=\"col\">Messages</th><th scope=\"col\">Attempt</th><th scope=\"col\">Result</th></tr></thead><tbody>");
    for d in inner.outbox.log().iter().rev().take(200) {
        body.push_str(&crate::whatsapp::delivery_row(d));
    }
    body.push_str("</tbody></table>");
    Html(page("BulkSMS stand-in", &body, true)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_matches_the_spec_vectors() {
        assert_eq!(
            basic_auth("Aladdin", "OpenSesame"),
            "Basic QWxhZGRpbjpPcGVuU2VzYW1l"
        );
        assert_eq!(
            basic_auth(
                "BBDE1B476E03498AA768F66A286AABDC-01-B",
                "9jSbVDK20!MXdfRGiIIFu#ffUE8*S"
            ),
            "Basic QkJERTFCNDc2RTAzNDk4QUE3NjhGNjZBMjg2QUFCREMtMDEtQjo5alNiVkRLMjAhTVhkZlJHaUlJRnUjZmZVRTgqUw=="
        );
    }

    #[test]
    fn filters_parse_and_match_like_bulksms() {
        let clauses = parse_filter("type=RECEIVED&id>1491381497934909440").expect("parses");
        let m = json!({"id": "1491381497934909441", "type": "RECEIVED"});
        assert!(clauses.iter().all(|c| matches(&m, c)));
        let old = json!({"id": "1491381497934909440", "type": "RECEIVED"});
        assert!(!clauses.iter().all(|c| matches(&old, c)));
        assert!(parse_filter("colour=red").is_err());
        assert!(parse_filter("type>SENT").is_err());
        assert!(parse_filter("nonsense").is_err());
    }

    #[test]
    fn text_bodies_lose_non_gsm_characters_and_count_parts() {
        let d = drafts(
            &json!({"to": "+27821234567", "body": "It’s ready", "encoding": "TEXT"}),
            false,
        )
        .expect("valid");
        assert_eq!(d[0].body, "It?s ready");
        assert_eq!(d[0].to, "27821234567");
        let d = drafts(&json!({"to": ["27821234567"], "body": "It’s ready"}), true).expect("valid");
        assert_eq!(d[0].encoding, Encoding::Unicode);
        let long = "a".repeat(500);
        assert!(drafts(&json!({"to": "27821234567", "body": long}), false).is_err());
        assert!(
            drafts(
                &json!({"to": "27821234567", "body": long, "longMessageMaxParts": 4}),
                false
            )
            .is_ok()
        );
        assert!(drafts(&json!({"to": "27820000004", "body": "x"}), false).is_err());
        assert!(drafts(&json!({"to": "12", "body": "x"}), false).is_err());
    }
}
