//! A local stand-in for the part of HubSpot's CRM v3 API the portal's connector uses, so demos
//! and tests run without a HubSpot account or network access.
//!
//! It answers contact batch upsert and batch read, read one, archive, GDPR delete and property
//! definitions in HubSpot's JSON shapes (errors included), so the connector, pointed at
//! [`CrmStandin::base_url`], works unchanged. It keeps every contact and a log of every API
//! request, enforces HubSpot's ten-secondly rolling rate limit, and fails on demand through
//! [`CrmFaults`]. [`CrmStandin::change_in_crm`] simulates a HubSpot user editing a contact: the
//! contact changes and a `contact.propertyChange` webhook batch, signed with HubSpot's v3
//! scheme, is POSTed to the portal, with retries. `GET /_standin` shows everything it holds.
//!
//! Use it embedded in the portal when no real HubSpot token is configured, and in tests, which
//! start their own instance on port 0. It is not a HubSpot emulator: only contacts exist, there
//! is no search, list, paging, association, history or merge, any property name may be written
//! (HubSpot would reject names it does not know), and only `email`, `phone` and
//! `lifecyclestage` values are validated.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{esc, lock, now_ms};
use crate::controls::CrmFaults;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The HubSpot account ("portal") id stamped on webhook events.
pub const PORTAL_ID: u64 = 12345;
/// The app id stamped on webhook events.
pub const APP_ID: u64 = 1;

/// Largest request body accepted.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// HubSpot's batch size limit.
const MAX_BATCH: usize = 100;
/// The rolling rate-limit window.
const WINDOW_MS: u64 = 10_000;
/// How long a webhook receiver may take (HubSpot: 5 s).
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// The request log keeps this many entries, dropping the oldest.
const MAX_REQUEST_LOG: usize = 10_000;
/// The webhook log keeps this many attempts, dropping the oldest.
const MAX_WEBHOOK_LOG: usize = 5_000;
/// The first HubSpot id handed out.
const FIRST_CONTACT_ID: u64 = 101;
/// Properties HubSpot computes; writing them is a validation error.
const READ_ONLY: [&str; 3] = ["hs_object_id", "createdate", "lastmodifieddate"];
/// What a read returns when no properties are asked for (HubSpot's default set).
const DEFAULT_READ_PROPERTIES: [&str; 6] = [
    "createdate",
    "email",
    "firstname",
    "hs_object_id",
    "lastmodifieddate",
    "lastname",
];
/// HubSpot's lifecycle stages (internal values).
const LIFECYCLE_STAGES: [&str; 8] = [
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
];

type HmacSha256 = Hmac<Sha256>;

// ---------------------------------------------------------------------------------------------
// Configuration and public API
// ---------------------------------------------------------------------------------------------

/// The stand-in's private app token and client secret (loopback only, no real data).
pub const TOKEN: &str = "pat-stoep-standin";
pub const CLIENT_SECRET: &str = "stoep-crm-standin-client-secret";

/// How a stand-in behaves. [`Default`] gives fixed, obviously fake secrets, no webhook endpoint,
/// HubSpot's limit of 100 requests per 10 s, retries after 1 s, 2 s and 5 s, and no persistence.
#[derive(Clone)]
pub struct CrmStandinConfig {
    /// The only private-app token accepted (`Authorization: Bearer ...`); others get `401`.
    pub token: String,
    /// The app's client secret, which signs outbound webhooks (`X-HubSpot-Signature-v3`).
    pub client_secret: String,
    /// Where CRM-side change notifications are POSTed (the portal's `/webhooks/crm`).
    pub webhook_url: Option<String>,
    /// Fault switches, read at each API call.
    pub faults: Arc<CrmFaults>,
    /// If set, contacts and id counters are saved here as JSON after each change and loaded at
    /// start. The request and webhook logs are not saved.
    pub state_file: Option<PathBuf>,
    /// HubSpot's ten-secondly rolling limit; a request over it gets `429`. 0 turns it off.
    pub rate_limit_per_10s: u32,
    /// Waits between webhook attempts after a failure (non-2xx, timeout or no connection);
    /// after the last one the batch is given up.
    pub webhook_retry_schedule: Vec<Duration>,
}

impl Default for CrmStandinConfig {
    fn default() -> Self {
        Self {
            token: "pat-na1-stoep-standin".into(),
            client_secret: "stoep-standin-client-secret".into(),
            webhook_url: None,
            faults: Arc::default(),
            state_file: None,
            rate_limit_per_10s: 100,
            webhook_retry_schedule: [1, 2, 5].into_iter().map(Duration::from_secs).collect(),
        }
    }
}

/// Secrets stay out of logs.
impl fmt::Debug for CrmStandinConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrmStandinConfig")
            .field("token", &"****")
            .field("client_secret", &"****")
            .field("webhook_url", &self.webhook_url)
            .field("faults", &self.faults)
            .field("state_file", &self.state_file)
            .field("rate_limit_per_10s", &self.rate_limit_per_10s)
            .field("webhook_retry_schedule", &self.webhook_retry_schedule)
            .finish()
    }
}

/// A contact as the stand-in stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandinContact {
    /// HubSpot's id (`hs_object_id`): a numeric string, `"101"`, `"102"`, ...
    pub id: String,
    /// Every property set on it, except the computed `hs_object_id`, `createdate` and
    /// `lastmodifieddate`. Emails are stored lower-cased, as HubSpot does; a property set to
    /// the empty string is removed.
    pub properties: BTreeMap<String, String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Archived (`DELETE`): hidden from reads, still held until a GDPR delete.
    pub archived: bool,
}

impl StandinContact {
    /// A property's value, the computed ones included.
    pub fn get(&self, property: &str) -> Option<String> {
        match property {
            "hs_object_id" => Some(self.id.clone()),
            "createdate" => Some(rfc3339_ms(self.created_at_ms)),
            "lastmodifieddate" => Some(rfc3339_ms(self.updated_at_ms)),
            _ => self.properties.get(property).cloned(),
        }
    }

    /// Whether `property` has `value` (emails compare case-insensitively).
    fn has(&self, property: &str, value: &str) -> bool {
        match self.get(property) {
            Some(v) if property == "email" => v.eq_ignore_ascii_case(value.trim()),
            Some(v) => v == value,
            None => false,
        }
    }

    fn numeric_id(&self) -> u64 {
        self.id.parse().unwrap_or(0)
    }
}

/// One API request, as the admin page and tests see it.
#[derive(Clone, Debug, Serialize)]
pub struct RequestRecord {
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    pub query: Option<String>,
    /// When it arrived (Unix milliseconds, never decreasing from one request to the next).
    pub at_ms: u64,
    /// The status answered; 0 while it is still being worked on.
    pub status: u16,
    /// The number of inputs of a batch call.
    pub inputs: Option<usize>,
    /// How long the answer was held back by the `slow_next` fault.
    pub delayed_ms: u64,
}

/// One webhook delivery attempt.
#[derive(Clone, Debug, Serialize)]
pub struct WebhookRecord {
    /// The `eventId`s in the batch (the same on every attempt of the batch).
    pub event_ids: Vec<u64>,
    /// The contact's HubSpot id.
    pub object_id: String,
    /// The changed properties, one event each.
    pub properties: Vec<String>,
    pub url: String,
    /// When the attempt ended (Unix milliseconds).
    pub at_ms: u64,
    /// 1 for the first attempt, 2 for the first retry, ... (the body's `attemptNumber` is this
    /// minus one, as HubSpot counts from 0).
    pub attempt: u32,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why no status: a connection error, a timeout, or no webhook URL.
    pub error: Option<String>,
    /// This attempt failed and no retry is left.
    pub gave_up: bool,
    /// The body sent.
    pub body: String,
}

impl WebhookRecord {
    /// The receiver answered 2xx.
    pub fn succeeded(&self) -> bool {
        matches!(self.status, Some(s) if (200..300).contains(&s))
    }
}

/// A running stand-in. Cheap to clone; it stops when the `shutdown` token given to
/// [`CrmStandin::start`] is cancelled.
#[derive(Clone)]
pub struct CrmStandin {
    inner: Arc<Inner>,
}

impl CrmStandin {
    /// Serves the stand-in on `listener` (bind `127.0.0.1:0` in tests). Loads `state_file` if
    /// it exists; a file that cannot be parsed is logged and ignored (it is overwritten at the
    /// next change), one that cannot be read is an error.
    pub async fn start(
        listener: TcpListener,
        cfg: CrmStandinConfig,
        shutdown: CancellationToken,
    ) -> std::io::Result<CrmStandin> {
        let addr = listener.local_addr()?;
        let store = match &cfg.state_file {
            Some(path) => crate::common::load_state(path, "HubSpot").await?,
            None => Store::default(),
        };
        let http = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let inner = Arc::new(Inner {
            base_url: format!("http://{addr}"),
            webhook_url: Mutex::new(cfg.webhook_url.clone()),
            cfg,
            store: Mutex::new(store),
            traffic: Mutex::new(Traffic::default()),
            webhooks: Mutex::new(VecDeque::new()),
            in_flight: AtomicUsize::new(0),
            http,
            shutdown: shutdown.clone(),
        });

        let router = Router::new()
            .route("/crm/{*path}", any(handle_api))
            .route("/_standin", get(show_admin))
            .route("/_standin/contacts.json", get(show_admin_json))
            .with_state(inner.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "the CRM stand-in stopped serving");
            }
        });
        tracing::info!(base_url = %inner.base_url, "CRM stand-in listening");
        Ok(CrmStandin { inner })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash (HubSpot's is `https://api.hubapi.com`).
    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// The private-app token the stand-in accepts.
    pub fn token(&self) -> &str {
        &self.inner.cfg.token
    }

    /// The client secret that signs webhooks.
    pub fn client_secret(&self) -> &str {
        &self.inner.cfg.client_secret
    }

    /// The fault switches (shared with whoever passed them in).
    pub fn faults(&self) -> &Arc<CrmFaults> {
        &self.inner.cfg.faults
    }

    /// Changes where webhooks go; retries of batches already sent use the new URL.
    pub fn set_webhook_url(&self, url: Option<String>) {
        *lock(&self.inner.webhook_url) = url;
    }

    /// Contacts that are not archived, by id.
    pub fn contacts(&self) -> Vec<StandinContact> {
        let store = lock(&self.inner.store);
        let mut contacts: Vec<StandinContact> = store
            .contacts
            .iter()
            .filter(|c| !c.archived)
            .cloned()
            .collect();
        contacts.sort_by_key(StandinContact::numeric_id);
        contacts
    }

    /// A contact by HubSpot id, archived or not (`None` once GDPR-deleted).
    pub fn contact(&self, id: &str) -> Option<StandinContact> {
        lock(&self.inner.store)
            .contacts
            .iter()
            .find(|c| c.id == id)
            .cloned()
    }

    /// The contact (not archived) whose `property` is `value`; emails compare
    /// case-insensitively, and `hs_object_id` is the HubSpot id.
    pub fn contact_by(&self, property: &str, value: &str) -> Option<StandinContact> {
        lock(&self.inner.store)
            .contacts
            .iter()
            .find(|c| !c.archived && c.has(property, value))
            .cloned()
    }

    /// Every API request received (the last 10 000), in order of arrival.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.inner.traffic).log.iter().cloned().collect()
    }

    /// The most requests answered other than `429` within any 10 s (a window
    /// `(t - 10 s, t]`), over the request log.
    pub fn max_requests_in_any_10s(&self) -> usize {
        let times: Vec<u64> = lock(&self.inner.traffic)
            .log
            .iter()
            .filter(|r| r.status != 429)
            .map(|r| r.at_ms)
            .collect();
        max_in_window(&times, WINDOW_MS)
    }

    /// Simulates a change made in HubSpot by a user (for example `lifecyclestage` to
    /// `customer`, `hubspot_owner_id`, or an email edit): the contact changes, and a signed
    /// webhook batch with one `contact.propertyChange` event is POSTed to the webhook URL in
    /// the background, with retries (see [`CrmStandin::wait_idle`]). An empty value clears the
    /// property. Fails if the contact does not exist (or is archived), the property is
    /// computed, or the value is invalid or taken (emails are unique, as in HubSpot).
    pub async fn change_in_crm(
        &self,
        contact_id: &str,
        property: &str,
        value: &str,
    ) -> Result<(), String> {
        self.change_many_in_crm(contact_id, &[(property, value)])
            .await
    }

    /// [`CrmStandin::change_in_crm`] for several properties at once: one webhook batch with
    /// one event per property.
    pub async fn change_many_in_crm(
        &self,
        contact_id: &str,
        changes: &[(&str, &str)],
    ) -> Result<(), String> {
        let events = self
            .inner
            .mutate(|store| store.change(contact_id, changes))?;
        self.inner.send_webhook_batch(contact_id, events);
        Ok(())
    }

    /// Simulates a contact created in HubSpot by a user (no webhook is sent), for example one
    /// whose email a portal customer will later claim. Returns it.
    pub async fn create_in_crm(
        &self,
        properties: &[(&str, &str)],
    ) -> Result<StandinContact, String> {
        self.inner.mutate(|store| store.create(properties))
    }

    /// Every webhook delivery attempt (the last 5 000), in order.
    pub fn webhook_deliveries(&self) -> Vec<WebhookRecord> {
        lock(&self.inner.webhooks).iter().cloned().collect()
    }

    /// Waits until no webhook batch is being sent or waiting for a retry; `false` if
    /// `timeout` passed first.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.inner.in_flight.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// HubSpot's v3 request signature: base64 (standard alphabet, padded) of HMAC-SHA256 keyed
/// with the client secret over `method + uri + body + timestamp` (the timestamp in Unix
/// milliseconds, as sent in `X-HubSpot-Request-Timestamp`).
pub fn hubspot_signature_v3(
    client_secret: &str,
    method: &str,
    uri: &str,
    body: &str,
    timestamp_ms: i64,
) -> String {
    let mut mac = HmacSha256::new_from_slice(client_secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(method.as_bytes());
    mac.update(uri.as_bytes());
    mac.update(body.as_bytes());
    mac.update(timestamp_ms.to_string().as_bytes());
    base64_encode(&mac.finalize().into_bytes())
}

/// Standard base64 with padding (RFC 4648 section 4); the crate has no base64 dependency.
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------------------

struct Inner {
    cfg: CrmStandinConfig,
    base_url: String,
    webhook_url: Mutex<Option<String>>,
    /// What HubSpot would store. Never held together with another lock.
    store: Mutex<Store>,
    traffic: Mutex<Traffic>,
    webhooks: Mutex<VecDeque<WebhookRecord>>,
    /// Webhook batches being sent or waiting for a retry.
    in_flight: AtomicUsize,
    http: reqwest::Client,
    shutdown: CancellationToken,
}

/// The request log and the rate limiter's window.
#[derive(Default)]
struct Traffic {
    log: VecDeque<RequestRecord>,
    /// Sequence number of `log[0]`.
    first_seq: u64,
    /// Arrival times of the requests let through the rolling limit, within the last window.
    window: VecDeque<u64>,
    last_ms: u64,
}

/// What [`Inner::arrive`] decided.
struct Arrival {
    seq: u64,
    /// Within the rolling limit.
    admitted: bool,
    /// For the `X-HubSpot-RateLimit-Remaining` header.
    remaining: u32,
}

impl Inner {
    /// Runs one change against the store, then saves the state if it changed and a file is
    /// configured (the file is small, so writing it under the lock is fine).
    fn mutate<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let mut store = lock(&self.store);
        let result = f(&mut store);
        if store.dirty {
            store.dirty = false;
            if let Some(path) = &self.cfg.state_file {
                crate::common::save_state(path, &*store, "HubSpot");
            }
        }
        result
    }

    /// Logs an arriving request and applies the rolling limit. The log's arrival times and the
    /// limiter's share one clock, so [`CrmStandin::max_requests_in_any_10s`] can never exceed
    /// the limit.
    fn arrive(&self, method: &Method, path: &str, query: Option<&str>) -> Arrival {
        let limit = self.cfg.rate_limit_per_10s;
        let mut t = lock(&self.traffic);
        let now = now_ms().max(t.last_ms);
        t.last_ms = now;
        while t.window.front().is_some_and(|&at| at + WINDOW_MS <= now) {
            t.window.pop_front();
        }
        let used = t.window.len() as u32;
        let admitted = limit == 0 || used < limit;
        if admitted {
            t.window.push_back(now);
        }
        t.log.push_back(RequestRecord {
            method: method.as_str().to_owned(),
            path: path.to_owned(),
            query: query.map(str::to_owned),
            at_ms: now,
            status: 0,
            inputs: None,
            delayed_ms: 0,
        });
        if t.log.len() > MAX_REQUEST_LOG {
            t.log.pop_front();
            t.first_seq += 1;
        }
        let seq = t.first_seq + t.log.len() as u64 - 1;
        let remaining = limit.saturating_sub(t.window.len() as u32);
        Arrival {
            seq,
            admitted,
            remaining,
        }
    }

    /// Fills in how a logged request was answered.
    fn finish(&self, seq: u64, status: StatusCode, inputs: Option<usize>, delayed_ms: u64) {
        let mut t = lock(&self.traffic);
        if let Some(index) = seq.checked_sub(t.first_seq)
            && let Some(record) = t.log.get_mut(index as usize)
        {
            record.status = status.as_u16();
            record.inputs = inputs;
            record.delayed_ms = delayed_ms;
        }
    }

    /// Sends a batch of events in the background, if a webhook URL is set.
    fn send_webhook_batch(self: &Arc<Self>, contact_id: &str, events: Vec<Value>) {
        if events.is_empty() || lock(&self.webhook_url).is_none() {
            return;
        }
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let inner = self.clone();
        let contact_id = contact_id.to_owned();
        tokio::spawn(async move {
            let shutdown = inner.shutdown.clone();
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = deliver(&inner, &contact_id, events) => {}
            }
            inner.in_flight.fetch_sub(1, Ordering::SeqCst);
        });
    }

    fn record_webhook(&self, record: WebhookRecord) {
        let mut log = lock(&self.webhooks);
        log.push_back(record);
        if log.len() > MAX_WEBHOOK_LOG {
            log.pop_front();
        }
    }
}

/// The largest number of `times` (sorted) within any window `(t - window, t]`.
fn max_in_window(times: &[u64], window: u64) -> usize {
    let mut start = 0;
    let mut best = 0;
    for (end, &t) in times.iter().enumerate() {
        while times[start] + window <= t {
            start += 1;
        }
        best = best.max(end + 1 - start);
    }
    best
}

/// What HubSpot would store.
#[derive(Serialize, Deserialize)]
struct Store {
    /// In creation order (so by id).
    contacts: Vec<StandinContact>,
    next_id: u64,
    /// Starts at a random number, so a restarted stand-in without a state file does not reuse
    /// event ids a receiver may have recorded as processed.
    next_event_id: u64,
    #[serde(skip)]
    dirty: bool,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            contacts: Vec::new(),
            next_id: FIRST_CONTACT_ID,
            next_event_id: rand::thread_rng().gen_range(1_000_000..1_000_000_000),
            dirty: false,
        }
    }
}

/// A property value HubSpot would refuse.
struct Invalid {
    /// The input's `id`.
    id: String,
    name: String,
    error: &'static str,
    message: String,
}

/// Why an upsert input cannot be stored without breaking a unique property.
struct Conflict {
    id: String,
    message: String,
}

impl Store {
    fn live(&self, property: &str, value: &str) -> Vec<usize> {
        (0..self.contacts.len())
            .filter(|&i| !self.contacts[i].archived && self.contacts[i].has(property, value))
            .collect()
    }

    fn new_contact(&mut self, now: i64) -> StandinContact {
        let id = self.next_id;
        self.next_id += 1;
        StandinContact {
            id: id.to_string(),
            properties: BTreeMap::new(),
            created_at_ms: now,
            updated_at_ms: now,
            archived: false,
        }
    }

    /// Another live contact holding one of `idx`'s unique values (`email`, `stoep_customer_id`
    /// and the property the caller looked it up by).
    fn conflict(&self, idx: usize, id_property: Option<&str>) -> Option<String> {
        let contact = &self.contacts[idx];
        let mut unique = vec!["email", "stoep_customer_id"];
        if let Some(p) = id_property
            && !unique.contains(&p)
            && p != "hs_object_id"
        {
            unique.push(p);
        }
        for property in unique {
            let Some(value) = contact.get(property) else {
                continue;
            };
            if let Some(other) = self
                .contacts
                .iter()
                .enumerate()
                .find(|(j, c)| *j != idx && !c.archived && c.has(property, &value))
            {
                let existing = &other.1.id;
                return Some(if property == "email" {
                    format!("Contact already exists. Existing ID: {existing}")
                } else {
                    format!(
                        "A contact with {property} {value} already exists. Existing ID: {existing}"
                    )
                });
            }
        }
        None
    }

    /// `POST .../batch/upsert`: all inputs or none.
    fn upsert(&mut self, inputs: &[UpsertInput]) -> Result<Vec<Value>, ApiError> {
        // HubSpot refuses the same record twice in one batch.
        let mut seen = HashSet::new();
        let mut duplicates = Vec::new();
        for input in inputs {
            let key = (
                input.id_property(),
                normalize(input.id_property(), &input.id),
            );
            if !seen.insert(key) {
                duplicates.push(input.id.clone());
            }
        }
        if !duplicates.is_empty() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                format!(
                    "Duplicate IDs found in batch input: [{}]. IDs must be unique",
                    duplicates.join(", ")
                ),
            )
            .context(json!({ "ids": duplicates })));
        }

        // Validate everything before changing anything.
        let mut invalid = Vec::new();
        let mut prepared = Vec::with_capacity(inputs.len());
        for input in inputs {
            if input.id.trim().is_empty() {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    "Invalid input: every input needs a non-empty id",
                ));
            }
            let mut props = Vec::with_capacity(input.properties.len());
            for (name, value) in &input.properties {
                match property_value(name, value) {
                    Ok(v) => {
                        if let Some((error, message)) = check_value(name, &v) {
                            invalid.push(Invalid {
                                id: input.id.clone(),
                                name: name.clone(),
                                error,
                                message,
                            });
                        }
                        props.push((name.clone(), v));
                    }
                    Err((error, message)) => invalid.push(Invalid {
                        id: input.id.clone(),
                        name: name.clone(),
                        error,
                        message,
                    }),
                }
            }
            // A contact created by its email gets that email: it must be one.
            if input.id_property() == "email"
                && let Some((error, message)) = check_value("email", &input.id)
            {
                invalid.push(Invalid {
                    id: input.id.clone(),
                    name: "email".into(),
                    error,
                    message,
                });
            }
            prepared.push(props);
        }
        if !invalid.is_empty() {
            return Err(ApiError::invalid_properties(&invalid));
        }

        let now = now_ms() as i64;
        let created_before = self.contacts.len();
        let next_id_before = self.next_id;
        let mut undo: Vec<(usize, StandinContact)> = Vec::new();
        let mut results = Vec::with_capacity(inputs.len());
        let mut failure = None;
        for (input, props) in inputs.iter().zip(prepared) {
            let id_property = input.id_property();
            let matches = self.live(id_property, &input.id);
            let (idx, is_new) = match matches.as_slice() {
                [] if id_property == "hs_object_id" => {
                    failure = Some(
                        ApiError::new(
                            StatusCode::NOT_FOUND,
                            "OBJECT_NOT_FOUND",
                            format!("Could not find a contact with hs_object_id {}", input.id),
                        )
                        .context(json!({ "ids": [input.id] })),
                    );
                    break;
                }
                [] => {
                    let mut contact = self.new_contact(now);
                    contact
                        .properties
                        .insert(id_property.to_owned(), normalize(id_property, &input.id));
                    self.contacts.push(contact);
                    (self.contacts.len() - 1, true)
                }
                [idx] => {
                    undo.push((*idx, self.contacts[*idx].clone()));
                    (*idx, false)
                }
                _ => {
                    failure = Some(ApiError::conflict(&Conflict {
                        id: input.id.clone(),
                        message: format!(
                            "Several contacts have {id_property} {}; an idProperty must have unique values",
                            input.id
                        ),
                    }));
                    break;
                }
            };
            let contact = &mut self.contacts[idx];
            let changed = apply_properties(contact, props);
            if changed && !is_new {
                contact.updated_at_ms = now;
            }
            if let Some(message) = self.conflict(idx, Some(id_property)) {
                failure = Some(ApiError::conflict(&Conflict {
                    id: input.id.clone(),
                    message,
                }));
                break;
            }
            let mut result = contact_json(&self.contacts[idx], None);
            result["new"] = json!(is_new);
            results.push(result);
        }
        if let Some(e) = failure {
            self.contacts.truncate(created_before);
            for (idx, contact) in undo.into_iter().rev() {
                self.contacts[idx] = contact;
            }
            self.next_id = next_id_before;
            return Err(e);
        }
        self.dirty = true;
        Ok(results)
    }

    /// A simulated edit in HubSpot's UI; returns the webhook events.
    fn change(&mut self, contact_id: &str, changes: &[(&str, &str)]) -> Result<Vec<Value>, String> {
        let idx = self
            .contacts
            .iter()
            .position(|c| c.id == contact_id && !c.archived)
            .ok_or_else(|| format!("no contact {contact_id}"))?;
        let mut props = Vec::with_capacity(changes.len());
        for (name, value) in changes {
            if READ_ONLY.contains(name) {
                return Err(format!("{name} is read-only"));
            }
            if let Some((_, message)) = check_value(name, value) {
                return Err(message);
            }
            props.push(((*name).to_owned(), normalize(name, value)));
        }
        let before = self.contacts[idx].clone();
        apply_properties(&mut self.contacts[idx], props.clone());
        if let Some(message) = self.conflict(idx, None) {
            self.contacts[idx] = before;
            return Err(message);
        }
        let now = now_ms() as i64;
        self.contacts[idx].updated_at_ms = now;
        self.dirty = true;
        let object_id: u64 = contact_id.parse().unwrap_or(0);
        let events = props
            .into_iter()
            .map(|(name, value)| {
                let event_id = self.next_event_id;
                self.next_event_id += 1;
                json!({
                    "eventId": event_id,
                    "subscriptionId": 1,
                    "portalId": PORTAL_ID,
                    "appId": APP_ID,
                    "occurredAt": now,
                    "subscriptionType": "contact.propertyChange",
                    "attemptNumber": 0,
                    "objectId": object_id,
                    "propertyName": name,
                    "propertyValue": value,
                    "changeSource": "CRM_UI",
                    "sourceId": "userId:1",
                })
            })
            .collect();
        Ok(events)
    }

    /// A contact created in HubSpot's UI.
    fn create(&mut self, properties: &[(&str, &str)]) -> Result<StandinContact, String> {
        let mut props = Vec::with_capacity(properties.len());
        for (name, value) in properties {
            if READ_ONLY.contains(name) {
                return Err(format!("{name} is read-only"));
            }
            if let Some((_, message)) = check_value(name, value) {
                return Err(message);
            }
            props.push(((*name).to_owned(), normalize(name, value)));
        }
        let next_id = self.next_id;
        let mut contact = self.new_contact(now_ms() as i64);
        apply_properties(&mut contact, props);
        self.contacts.push(contact);
        let idx = self.contacts.len() - 1;
        if let Some(message) = self.conflict(idx, None) {
            self.contacts.pop();
            self.next_id = next_id;
            return Err(message);
        }
        self.dirty = true;
        Ok(self.contacts[idx].clone())
    }
}

/// Sets (or, for an empty value, removes) each property; whether anything changed.
fn apply_properties(contact: &mut StandinContact, props: Vec<(String, String)>) -> bool {
    let mut changed = false;
    for (name, value) in props {
        if value.is_empty() {
            changed |= contact.properties.remove(&name).is_some();
        } else if contact.properties.get(&name) != Some(&value) {
            contact.properties.insert(name, value);
            changed = true;
        }
    }
    changed
}

/// Emails are stored trimmed and lower-cased, as HubSpot does.
fn normalize(property: &str, value: &str) -> String {
    if property == "email" {
        value.trim().to_ascii_lowercase()
    } else {
        value.to_owned()
    }
}

/// A JSON property value as HubSpot stores it: strings as they are, numbers and booleans as
/// text, `null` as empty (clears). Objects and arrays are refused.
fn property_value(name: &str, value: &Value) -> Result<String, (&'static str, String)> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        Value::Array(_) | Value::Object(_) => {
            return Err((
                "INVALID_PROPERTY_VALUE",
                format!("Property \"{name}\" must be a string, a number or a boolean"),
            ));
        }
    };
    if READ_ONLY.contains(&name) {
        return Err((
            "READ_ONLY_VALUE",
            format!("{name} is a read only property; its value cannot be set."),
        ));
    }
    Ok(normalize(name, &text))
}

/// HubSpot's checks on the values the portal sends: `(error code, message)` if refused. Empty
/// values clear a property and are always accepted.
fn check_value(name: &str, value: &str) -> Option<(&'static str, String)> {
    if value.is_empty() {
        return None;
    }
    match name {
        "email" if !is_plausible_email(value) => {
            Some(("INVALID_EMAIL", format!("Email address {value} is invalid")))
        }
        "phone" | "mobilephone" if value.chars().any(char::is_alphabetic) => Some((
            "INVALID_PHONE_NUMBER",
            format!("Phone number {value} is invalid"),
        )),
        "lifecyclestage" if !LIFECYCLE_STAGES.contains(&value) => Some((
            "INVALID_OPTION",
            format!(
                "{value} was not one of the allowed options: [{}]",
                LIFECYCLE_STAGES.join(", ")
            ),
        )),
        _ => None,
    }
}

/// One `@`, a non-empty local part, a dotted domain of letters, digits and hyphens with an
/// alphabetic top-level label, no spaces, and not the reserved `.invalid` domain.
fn is_plausible_email(value: &str) -> bool {
    let value = value.trim();
    if value.len() > 254 || value.chars().any(char::is_whitespace) {
        return false;
    }
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels.iter().any(|l| {
            l.is_empty()
                || l.starts_with('-')
                || l.ends_with('-')
                || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    {
        return false;
    }
    let tld = labels[labels.len() - 1];
    tld.len() >= 2
        && tld.chars().all(|c| c.is_ascii_alphabetic())
        && !tld.eq_ignore_ascii_case("invalid")
}

/// A contact in HubSpot's object shape: every property (`None`), or the asked ones (set or
/// `null`) plus `hs_object_id`.
fn contact_json(contact: &StandinContact, only: Option<&[String]>) -> Value {
    let mut properties = Map::new();
    match only {
        None => {
            for (k, v) in &contact.properties {
                properties.insert(k.clone(), json!(v));
            }
            for computed in READ_ONLY {
                properties.insert(computed.to_owned(), json!(contact.get(computed)));
            }
        }
        Some(names) => {
            for name in names {
                properties.insert(name.clone(), json!(contact.get(name)));
            }
            properties.insert("hs_object_id".into(), json!(contact.id));
        }
    }
    let mut out = json!({
        "id": contact.id,
        "properties": properties,
        "createdAt": rfc3339_ms(contact.created_at_ms),
        "updatedAt": rfc3339_ms(contact.updated_at_ms),
        "archived": contact.archived,
    });
    if contact.archived {
        out["archivedAt"] = json!(rfc3339_ms(contact.updated_at_ms));
    }
    out
}

/// `2025-03-01T14:30:05.123Z`.
fn rfc3339_ms(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => ms.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// The HTTP API
// ---------------------------------------------------------------------------------------------

/// An error in HubSpot's shape: `{"status":"error","message","correlationId","category", ...}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    body: Value,
    retry_after: Option<u32>,
}

impl ApiError {
    fn new(status: StatusCode, category: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({
                "status": "error",
                "message": message.into(),
                "correlationId": uuid::Uuid::new_v4().to_string(),
                "category": category,
            }),
            retry_after: None,
        }
    }

    fn context(mut self, context: Value) -> Self {
        self.body["context"] = context;
        self
    }

    /// `429`, HubSpot's ten-secondly rolling limit.
    fn rate_limited(retry_after_secs: u32) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            body: json!({
                "status": "error",
                "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": uuid::Uuid::new_v4().to_string(),
                "policyName": "TEN_SECONDLY_ROLLING",
            }),
            retry_after: Some(retry_after_secs.max(1)),
        }
    }

    /// `400` for a non-JSON body, or JSON of the wrong shape.
    fn bad_json(e: &serde_json::Error) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!(
                "Invalid input JSON on line {}, column {}: {e}",
                e.line(),
                e.column()
            ),
        )
    }

    /// `400`: "Property values were not valid: [...]", with the offending inputs' ids in
    /// `context.ids` and one detail per value in `errors` (`in`: the property,
    /// `context.id`: the input's id).
    fn invalid_properties(invalid: &[Invalid]) -> Self {
        let items: Vec<Value> = invalid
            .iter()
            .map(|i| {
                json!({
                    "isValid": false,
                    "message": i.message,
                    "error": i.error,
                    "name": i.name,
                    "localizedErrorMessage": i.message,
                })
            })
            .collect();
        let mut ids: Vec<&str> = Vec::new();
        for i in invalid {
            if !ids.contains(&i.id.as_str()) {
                ids.push(&i.id);
            }
        }
        let details: Vec<Value> = invalid
            .iter()
            .map(|i| {
                json!({
                    "message": i.message,
                    "in": i.name,
                    "code": i.error,
                    "context": { "id": [i.id], "propertyName": [i.name] },
                })
            })
            .collect();
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("Property values were not valid: {}", Value::Array(items)),
        )
        .context(json!({ "ids": ids }));
        e.body["errors"] = Value::Array(details);
        e
    }

    /// `409 CONFLICT`: a unique value is already another contact's.
    fn conflict(c: &Conflict) -> Self {
        Self::new(StatusCode::CONFLICT, "CONFLICT", c.message.clone())
            .context(json!({ "ids": [c.id] }))
    }

    fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "resource not found",
        )
    }
}

/// How a request is answered.
struct Answer {
    status: StatusCode,
    body: Option<Value>,
    retry_after: Option<u32>,
    /// For the request log: the inputs of a batch call.
    inputs: Option<usize>,
}

impl Answer {
    fn json(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body: Some(body),
            retry_after: None,
            inputs: None,
        }
    }

    fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            body: None,
            retry_after: None,
            inputs: None,
        }
    }

    fn into_response(self, limit: u32, remaining: u32) -> Response {
        let correlation_id = self
            .body
            .as_ref()
            .and_then(|b| b["correlationId"].as_str().map(str::to_owned))
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut response = match &self.body {
            Some(body) => (self.status, axum::Json(body)).into_response(),
            None => self.status.into_response(),
        };
        let headers = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&correlation_id) {
            headers.insert("x-hubspot-correlation-id", v);
        }
        if limit > 0 {
            headers.insert("x-hubspot-ratelimit-max", HeaderValue::from(limit));
            headers.insert(
                "x-hubspot-ratelimit-remaining",
                HeaderValue::from(remaining),
            );
            headers.insert(
                "x-hubspot-ratelimit-interval-milliseconds",
                HeaderValue::from(WINDOW_MS),
            );
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<ApiError> for Answer {
    fn from(e: ApiError) -> Self {
        Self {
            status: e.status,
            body: Some(e.body),
            retry_after: e.retry_after,
            inputs: None,
        }
    }
}

/// Takes one from a "next N calls" counter; whether there was one.
fn take_one(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// Every `/crm/...` request: logged, rate-limited, faults, authentication, then the endpoint.
/// A `slow_next` call is worked on at once and its answer held back, so a client that times
/// out has still made its change, as with a slow HubSpot.
async fn handle_api(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let arrival = inner.arrive(&parts.method, &path, query.as_deref());
    let faults = &inner.cfg.faults;
    let delay_ms = if take_one(&faults.slow_next) {
        faults.slow_ms.load(Ordering::SeqCst)
    } else {
        0
    };

    let answer = if arrival.admitted {
        respond(
            &inner,
            &parts.method,
            &path,
            query.as_deref(),
            &parts.headers,
            body,
        )
        .await
    } else {
        ApiError::rate_limited(1).into()
    };
    inner.finish(arrival.seq, answer.status, answer.inputs, delay_ms);
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    answer.into_response(inner.cfg.rate_limit_per_10s, arrival.remaining)
}

async fn respond(
    inner: &Inner,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Answer {
    // Faults come first: when HubSpot is down, nothing else is looked at.
    let faults = &inner.cfg.faults;
    if faults.down.load(Ordering::SeqCst) {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "Service unavailable",
        )
        .into();
    }
    if take_one(&faults.rate_limit_next) {
        return ApiError::rate_limited(faults.retry_after_secs.load(Ordering::SeqCst)).into();
    }
    if take_one(&faults.fail_next) {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "internal error",
        )
        .into();
    }
    if !is_authorized(headers, &inner.cfg.token) {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        )
        .into();
    }
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "VALIDATION_ERROR",
                format!("The request body is larger than {MAX_BODY_BYTES} bytes"),
            )
            .into();
        }
    };
    let segments: Vec<String> = path
        .strip_prefix("/crm/v3/")
        .unwrap_or_default()
        .trim_end_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let params = query_params(query);
    let mut inputs = None;
    let mut answer: Answer =
        route(inner, method, &segments, &params, &bytes, &mut inputs).unwrap_or_else(Answer::from);
    answer.inputs = inputs;
    answer
}

/// `Authorization: Bearer <token>`.
fn is_authorized(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, given)| {
            scheme.eq_ignore_ascii_case("bearer") && given.trim() == token
        })
}

/// Decodes `%XX` escapes in a path segment (`+` stays a plus).
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(hex) = std::str::from_utf8(&bytes[i + 1..i + 3])
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_params(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `properties=a,b&properties=c` → `[a, b, c]`; none → HubSpot's default set.
fn requested_properties(params: &[(String, String)]) -> Vec<String> {
    let names: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "properties")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        DEFAULT_READ_PROPERTIES.map(str::to_owned).to_vec()
    } else {
        names
    }
}

fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_json(&e))
}

fn check_batch_size(n: usize) -> Result<(), ApiError> {
    if n > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("Batch input size {n} exceeds the limit of {MAX_BATCH} inputs"),
        ));
    }
    Ok(())
}

/// An id given as a JSON string or number.
fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected an id (string or number), found {other}"
        ))),
    }
}

#[derive(Deserialize)]
struct UpsertRequest {
    inputs: Vec<UpsertInput>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpsertInput {
    #[serde(deserialize_with = "id_string")]
    id: String,
    /// `hs_object_id` when absent (then only existing contacts can be updated).
    #[serde(default)]
    id_property: Option<String>,
    #[serde(default)]
    properties: Map<String, Value>,
}

impl UpsertInput {
    fn id_property(&self) -> &str {
        self.id_property
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or("hs_object_id")
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchReadRequest {
    #[serde(default)]
    id_property: Option<String>,
    inputs: Vec<BatchReadInput>,
    #[serde(default)]
    properties: Vec<String>,
}

#[derive(Deserialize)]
struct BatchReadInput {
    #[serde(deserialize_with = "id_string")]
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GdprDeleteRequest {
    #[serde(deserialize_with = "id_string")]
    object_id: String,
    #[serde(default)]
    id_property: Option<String>,
}

/// Dispatches an authenticated API call (`segments`: the path after `/crm/v3/`, decoded).
/// `inputs` gets the number of inputs of a batch call once its body is parsed, so the request
/// log has it even when the batch is refused.
fn route(
    inner: &Inner,
    method: &Method,
    segments: &[&str],
    params: &[(String, String)],
    body: &Bytes,
    inputs: &mut Option<usize>,
) -> Result<Answer, ApiError> {
    match (method.as_str(), segments) {
        ("POST", ["objects", "contacts", "batch", "upsert"]) => {
            let request: UpsertRequest = parse_json(body)?;
            let n = request.inputs.len();
            *inputs = Some(n);
            check_batch_size(n)?;
            let started = rfc3339_ms(now_ms() as i64);
            let results = inner.mutate(|store| store.upsert(&request.inputs))?;
            Ok(Answer::json(
                StatusCode::OK,
                json!({
                    "status": "COMPLETE",
                    "results": results,
                    "startedAt": started,
                    "completedAt": rfc3339_ms(now_ms() as i64),
                }),
            ))
        }
        ("POST", ["objects", "contacts", "batch", "read"]) => {
            let request: BatchReadRequest = parse_json(body)?;
            *inputs = Some(request.inputs.len());
            check_batch_size(request.inputs.len())?;
            Ok(batch_read(inner, &request))
        }
        ("POST", ["objects", "contacts", "gdpr-delete"]) => {
            let request: GdprDeleteRequest = parse_json(body)?;
            let property = request
                .id_property
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or("hs_object_id");
            inner.mutate(|store| {
                let before = store.contacts.len();
                store
                    .contacts
                    .retain(|c| !c.has(property, &request.object_id));
                if store.contacts.len() == before {
                    return Err(ApiError::not_found());
                }
                store.dirty = true;
                Ok(Answer::no_content())
            })
        }
        ("GET", ["objects", "contacts", id]) => {
            let property = param(params, "idProperty").unwrap_or("hs_object_id");
            let archived = param(params, "archived") == Some("true");
            let only = requested_properties(params);
            let store = lock(&inner.store);
            store
                .contacts
                .iter()
                .find(|c| c.archived == archived && c.has(property, id))
                .map(|c| Answer::json(StatusCode::OK, contact_json(c, Some(&only))))
                .ok_or_else(ApiError::not_found)
        }
        // HubSpot answers 204 whether or not the contact exists.
        ("DELETE", ["objects", "contacts", id]) => Ok(inner.mutate(|store| {
            let now = now_ms() as i64;
            if let Some(c) = store
                .contacts
                .iter_mut()
                .find(|c| c.id == *id && !c.archived)
            {
                c.archived = true;
                c.updated_at_ms = now;
                store.dirty = true;
            }
            Answer::no_content()
        })),
        ("GET", ["properties", "contacts"]) => Ok(Answer::json(
            StatusCode::OK,
            json!({ "results": PROPERTIES.iter().map(PropertyDef::json).collect::<Vec<_>>() }),
        )),
        ("GET", ["properties", "contacts", name]) => PROPERTIES
            .iter()
            .find(|p| p.name == *name)
            .map(|p| Answer::json(StatusCode::OK, p.json()))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "OBJECT_NOT_FOUND",
                    format!("Unable to find property {name} for object type contacts"),
                )
            }),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!(
                "The CRM stand-in does not serve {method} /crm/v3/{}",
                segments.join("/")
            ),
        )),
    }
}

/// `POST .../batch/read`: `200`, or `207` with the missing ids under `errors`.
fn batch_read(inner: &Inner, request: &BatchReadRequest) -> Answer {
    let started = rfc3339_ms(now_ms() as i64);
    let property = request
        .id_property
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or("hs_object_id");
    let only = if request.properties.is_empty() {
        DEFAULT_READ_PROPERTIES.map(str::to_owned).to_vec()
    } else {
        request.properties.clone()
    };
    let store = lock(&inner.store);
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for input in &request.inputs {
        match store
            .contacts
            .iter()
            .find(|c| !c.archived && c.has(property, &input.id))
        {
            Some(c) => results.push(contact_json(c, Some(&only))),
            None => missing.push(input.id.clone()),
        }
    }
    drop(store);
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": started,
        "completedAt": rfc3339_ms(now_ms() as i64),
    });
    if missing.is_empty() {
        return Answer::json(StatusCode::OK, body);
    }
    body["numErrors"] = json!(1);
    body["errors"] = json!([{
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.",
        "context": { "ids": missing },
    }]);
    Answer::json(StatusCode::MULTI_STATUS, body)
}

// --- Property definitions ---------------------------------------------------------------------

/// A contact property definition (`GET /crm/v3/properties/contacts/{name}`).
struct PropertyDef {
    name: &'static str,
    label: &'static str,
    kind: &'static str,
    field_type: &'static str,
    group: &'static str,
    description: &'static str,
    unique: bool,
    read_only: bool,
    hubspot_defined: bool,
    options: &'static [&'static str],
}

impl PropertyDef {
    const fn text(name: &'static str, label: &'static str, description: &'static str) -> Self {
        Self {
            name,
            label,
            kind: "string",
            field_type: "text",
            group: "contactinformation",
            description,
            unique: false,
            read_only: false,
            hubspot_defined: true,
            options: &[],
        }
    }

    /// One of the portal's custom properties.
    const fn custom(name: &'static str, label: &'static str, description: &'static str) -> Self {
        let mut p = Self::text(name, label, description);
        p.hubspot_defined = false;
        p
    }

    fn json(&self) -> Value {
        let options: Vec<Value> = self
            .options
            .iter()
            .enumerate()
            .map(|(i, v)| {
                json!({ "label": option_label(v), "value": v, "displayOrder": i, "hidden": false })
            })
            .collect();
        let mut out = json!({
            "name": self.name,
            "label": self.label,
            "type": self.kind,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group,
            "options": options,
            "displayOrder": -1,
            "calculated": false,
            "externalOptions": false,
            "hasUniqueValue": self.unique,
            "hidden": false,
            "modificationMetadata": {
                "archivable": !self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only,
            },
            "formField": !self.read_only,
            "createdAt": "2024-01-01T00:00:00.000Z",
            "updatedAt": "2024-01-01T00:00:00.000Z",
            "archived": false,
        });
        if self.hubspot_defined {
            out["hubspotDefined"] = json!(true);
        }
        out
    }
}

fn option_label(value: &str) -> &str {
    match value {
        "marketingqualifiedlead" => "Marketing Qualified Lead",
        "salesqualifiedlead" => "Sales Qualified Lead",
        "subscriber" => "Subscriber",
        "lead" => "Lead",
        "opportunity" => "Opportunity",
        "customer" => "Customer",
        "evangelist" => "Evangelist",
        "other" => "Other",
        other => other,
    }
}

const PROPERTIES: &[PropertyDef] = &[
    PropertyDef {
        kind: "number",
        field_type: "number",
        unique: true,
        read_only: true,
        ..PropertyDef::text(
            "hs_object_id",
            "Record ID",
            "The unique ID for this record. This value is set automatically by HubSpot.",
        )
    },
    PropertyDef {
        kind: "datetime",
        field_type: "date",
        read_only: true,
        ..PropertyDef::text(
            "createdate",
            "Create Date",
            "The date the contact was created",
        )
    },
    PropertyDef {
        kind: "datetime",
        field_type: "date",
        read_only: true,
        ..PropertyDef::text(
            "lastmodifieddate",
            "Last Modified Date",
            "The date any property on this contact was modified",
        )
    },
    PropertyDef::text("email", "Email", "A contact's email address"),
    PropertyDef::text("firstname", "First Name", "A contact's first name"),
    PropertyDef::text("lastname", "Last Name", "A contact's last name"),
    PropertyDef {
        field_type: "phonenumber",
        ..PropertyDef::text("phone", "Phone Number", "A contact's primary phone number")
    },
    PropertyDef::text("company", "Company Name", "Name of the contact's company"),
    PropertyDef {
        kind: "enumeration",
        field_type: "radio",
        options: &LIFECYCLE_STAGES,
        ..PropertyDef::text(
            "lifecyclestage",
            "Lifecycle Stage",
            "The qualification of contacts to sales readiness.",
        )
    },
    PropertyDef {
        kind: "enumeration",
        field_type: "select",
        group: "sales_properties",
        ..PropertyDef::text(
            "hubspot_owner_id",
            "Contact owner",
            "The owner of a contact. This can be any HubSpot user or Salesforce integration user.",
        )
    },
    PropertyDef {
        unique: true,
        ..PropertyDef::custom(
            "stoep_customer_id",
            "Stoep customer id",
            "The customer's id in the Stoep portal.",
        )
    },
    PropertyDef::custom(
        "stoep_portal_status",
        "Stoep portal status",
        "The customer's account status in the Stoep portal.",
    ),
    PropertyDef::custom(
        "stoep_marketing_consent",
        "Stoep marketing consent",
        "Whether the customer agreed to marketing messages in the Stoep portal.",
    ),
    PropertyDef::custom(
        "stoep_last_booking",
        "Stoep last booking",
        "The customer's most recent past booking.",
    ),
    PropertyDef::custom(
        "stoep_next_booking",
        "Stoep next booking",
        "The customer's next upcoming booking.",
    ),
    PropertyDef::custom(
        "stoep_total_deposits",
        "Stoep total deposits",
        "The deposits the customer has paid through the Stoep portal.",
    ),
];

// ---------------------------------------------------------------------------------------------
// Webhook delivery
// ---------------------------------------------------------------------------------------------

/// Sends one batch until a 2xx or the retry schedule is used up, re-signing each attempt.
async fn deliver(inner: &Inner, contact_id: &str, mut events: Vec<Value>) {
    let event_ids: Vec<u64> = events
        .iter()
        .filter_map(|e| e["eventId"].as_u64())
        .collect();
    let properties: Vec<String> = events
        .iter()
        .filter_map(|e| e["propertyName"].as_str().map(str::to_owned))
        .collect();
    let schedule = inner.cfg.webhook_retry_schedule.clone();
    for attempt in 1..=schedule.len() as u32 + 1 {
        for event in &mut events {
            event["attemptNumber"] = json!(attempt - 1);
        }
        let body = Value::Array(events.clone()).to_string();
        let url = lock(&inner.webhook_url).clone();
        let (status, error) = match &url {
            Some(url) => match send_webhook(inner, url, &body).await {
                Ok(status) => (Some(status), None),
                Err(e) => (None, Some(e)),
            },
            None => (None, Some("no webhook URL configured".to_owned())),
        };
        let next = schedule
            .get(attempt as usize - 1)
            .copied()
            .filter(|_| url.is_some());
        let mut record = WebhookRecord {
            event_ids: event_ids.clone(),
            object_id: contact_id.to_owned(),
            properties: properties.clone(),
            url: url.unwrap_or_default(),
            at_ms: now_ms(),
            attempt,
            status,
            error,
            gave_up: false,
            body,
        };
        let succeeded = record.succeeded();
        record.gave_up = !succeeded && next.is_none();
        if record.gave_up {
            tracing::warn!(contact = %contact_id, attempts = attempt,
                "CRM stand-in gave up delivering a webhook");
        }
        inner.record_webhook(record);
        match next {
            Some(delay) if !succeeded => tokio::time::sleep(delay).await,
            _ => return,
        }
    }
}

/// POSTs a batch, signed at send time. `Ok(status)` if the receiver answered at all.
async fn send_webhook(inner: &Inner, url: &str, body: &str) -> Result<u16, String> {
    let timestamp = now_ms() as i64;
    let signature = hubspot_signature_v3(&inner.cfg.client_secret, "POST", url, body, timestamp);
    let response = inner
        .http
        .post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::USER_AGENT,
            "HubSpot Connect 2.0 (http://dev.hubspot.com/)",
        )
        .header("X-HubSpot-Request-Timestamp", timestamp.to_string())
        .header("X-HubSpot-Signature-v3", signature)
        .header("X-HubSpot-Signature-Version", "v3")
        .body(body.to_owned())
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

// ---------------------------------------------------------------------------------------------
// The admin page
// ---------------------------------------------------------------------------------------------

/// How many of the newest requests the admin page shows.
const ADMIN_REQUESTS: usize = 200;

/// `GET /_standin`: contacts with their properties, recent requests and webhook deliveries,
/// newest first.
async fn show_admin(State(inner): State<Arc<Inner>>) -> Response {
    let standin = CrmStandin {
        inner: inner.clone(),
    };
    let contacts = standin.contacts();
    let requests = standin.requests();
    let webhooks = standin.webhook_deliveries();

    let mut body = format!(
        "<h1>CRM stand-in (HubSpot)</h1><p>API: <code>{base}/crm/v3</code>. Webhooks to: \
         <code>{hook}</code>. Rate limit: {limit} requests per 10 s. Faults: {faults}. \
         As JSON: <a href=\"/_standin/contacts.json\">contacts.json</a>.</p>",
        base = esc(&inner.base_url),
        hook = esc(lock(&inner.webhook_url).as_deref().unwrap_or("(none)")),
        limit = inner.cfg.rate_limit_per_10s,
        faults = esc(&inner.cfg.faults.describe()),
    );
    body.push_str(&format!(
        "<h2>Contacts ({})</h2><table><thead><tr><th scope=\"col\">Id</th>\
         <th scope=\"col\">Updated (UTC)</th><th scope=\"col\">Properties</th></tr></thead><tbody>",
        contacts.len()
    ));
    for c in &contacts {
        let props: String = c
            .properties
            .iter()
            .map(|(k, v)| format!("<code>{}</code> = {}<br>", esc(k), esc(v)))
            .collect();
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{props}</td></tr>",
            esc(&c.id),
            esc(&rfc3339_ms(c.updated_at_ms)),
        ));
    }
    body.push_str(&format!(
        "</tbody></table><h2>Requests (newest {ADMIN_REQUESTS} of {})</h2><table><thead><tr>\
         <th scope=\"col\">At (UTC)</th><th scope=\"col\">Method</th><th scope=\"col\">Path</th>\
         <th scope=\"col\">Inputs</th><th scope=\"col\">Status</th></tr></thead><tbody>",
        requests.len()
    ));
    for r in requests.iter().rev().take(ADMIN_REQUESTS) {
        let path = match &r.query {
            Some(q) => format!("{}?{q}", r.path),
            None => r.path.clone(),
        };
        let mut status = if r.status == 0 {
            "…".to_owned()
        } else {
            r.status.to_string()
        };
        if r.delayed_ms > 0 {
            status.push_str(&format!(" (held {} ms)", r.delayed_ms));
        }
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            esc(&rfc3339_ms(r.at_ms as i64)),
            esc(&r.method),
            esc(&path),
            r.inputs.map(|n| n.to_string()).unwrap_or_default(),
            esc(&status),
        ));
    }
    body.push_str(
        "</tbody></table><h2>Webhook deliveries</h2><table><thead><tr>\
         <th scope=\"col\">At (UTC)</th><th scope=\"col\">Contact</th><th scope=\"col\">Properties</th>\
         <th scope=\"col\">Attempt</th><th scope=\"col\">Result</th></tr></thead><tbody>",
    );
    for w in webhooks.iter().rev() {
        let mut result = match (w.status, &w.error) {
            (Some(status), _) => format!("HTTP {status}"),
            (None, Some(e)) => e.clone(),
            (None, None) => "—".into(),
        };
        if w.gave_up {
            result.push_str(" — gave up");
        }
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&rfc3339_ms(w.at_ms as i64)),
            esc(&w.object_id),
            esc(&w.properties.join(", ")),
            w.attempt,
            esc(&result),
        ));
    }
    body.push_str("</tbody></table>");
    (
        StatusCode::OK,
        Html(crate::common::page("CRM stand-in", &body, true)),
    )
        .into_response()
}

/// `GET /_standin/contacts.json`: what the admin page shows, every request included.
async fn show_admin_json(State(inner): State<Arc<Inner>>) -> Response {
    let standin = CrmStandin {
        inner: inner.clone(),
    };
    let body = json!({
        "base_url": inner.base_url,
        "webhook_url": *lock(&inner.webhook_url),
        "rate_limit_per_10s": inner.cfg.rate_limit_per_10s,
        "faults": inner.cfg.faults.describe(),
        "contacts": standin.contacts(),
        "requests": standin.requests(),
        "webhook_deliveries": standin.webhook_deliveries(),
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), expected, "{input:?}");
        }
        assert_eq!(base64_encode(&[0xfb, 0xff, 0xfe]), "+//+");
    }

    #[test]
    fn signature_matches_a_known_vector() {
        // printf 'POSThttps://example.com/webhooks/crm[]1700000000000' \
        //   | openssl dgst -sha256 -hmac secret -binary | base64
        assert_eq!(
            hubspot_signature_v3(
                "secret",
                "POST",
                "https://example.com/webhooks/crm",
                "[]",
                1_700_000_000_000
            ),
            "5JVXojQfcJllHe3gfICnRUr2oDVowrgFVsPBaXpf/JY="
        );
    }

    #[test]
    fn formats_timestamps_as_rfc3339_with_milliseconds() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn tells_plausible_emails_from_others() {
        for ok in [
            "a@b.co",
            "First.Last+tag@mail.example.com",
            "x@sub-domain.org",
        ] {
            assert!(is_plausible_email(ok), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "@b.co",
            "a@",
            "a@b",
            "a@b.c",
            "a@@b.co",
            "a b@c.co",
            "a@b..co",
            "a@-b.co",
            "x@y.invalid",
            "x@Y.INVALID",
        ] {
            assert!(!is_plausible_email(bad), "{bad}");
        }
    }

    #[test]
    fn decodes_percent_escapes_in_path_segments() {
        assert_eq!(percent_decode("a%40b.co"), "a@b.co");
        assert_eq!(percent_decode("a+b%2"), "a+b%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn counts_the_busiest_ten_seconds() {
        assert_eq!(max_in_window(&[], 10_000), 0);
        assert_eq!(max_in_window(&[0, 1, 2, 10_000, 10_001], 10_000), 3);
        assert_eq!(max_in_window(&[5, 5, 5, 9_999], 10_000), 4);
        assert_eq!(max_in_window(&[0, 10_000, 20_000], 10_000), 1);
    }
}
