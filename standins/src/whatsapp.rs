//! A local stand-in for the part of the WhatsApp Business Cloud API (Meta's Graph API) the
//! portal uses, so demos and tests run without a Meta app, a business number or a phone.
//!
//! It answers the Graph paths the portal calls, in Meta's JSON shapes and error codes
//! (`research/messaging.md`, part A), so the production client, pointed at
//! [`WhatsAppStandin::base_url`] instead of `https://graph.facebook.com`, cannot tell:
//!
//! - `POST /{version}/{phone-number-id}/messages` (Bearer token): `template` and `text`
//!   messages as the Cloud API accepts them, answered `200` with `contacts` and `messages`
//!   (`message_status: accepted` for templates); and `{"status":"read","message_id":...}`,
//!   answered `{"success":true}`. Any `v<N>.<M>` version is accepted.
//! - `GET /{version}/{phone-number-id}?fields=...`: the connection test's fields.
//! - `GET /{version}/{waba-id}/message_templates`: the templates it "approved"
//!   ([`WhatsAppStandinConfig::templates`]).
//!
//! Errors follow Meta's table: a bad token is `401` code 190; an unknown phone-number id is
//! `400` code 100 subcode 33; a template that does not exist (or is not approved) in that
//! language is 132001; a parameter count mismatch 132000; a parameter with a newline, tab or
//! more than four spaces 132018; an invalid `to` 100; throttling 130429 (or 80007, ...) as
//! `400`, as Meta documents, with a switch for `429` and `Retry-After` (Meta sends neither; the
//! switch exists to test clients that honour them). A free-form text outside the customer's
//! 24-hour window is accepted with `200` and then fails by webhook with 131047 (Meta says it
//! may also come synchronously: [`WhatsAppFaults::window_error_sync`]).
//!
//! After a send it POSTs `sent`, `delivered` and `read` status webhooks (or `failed`) to the
//! configured URL, each signed with `X-Hub-Signature-256` over the exact bytes (non-ASCII
//! escaped as `\uXXXX`, as Meta does), retried with backoff on any non-2xx, and as
//! misbehaving as [`WhatsAppFaults::webhooks`] says (lost, duplicated, reordered, delayed,
//! paused). `/_standin/phone` shows the messages per number and lets a tester answer (text or
//! a quick-reply tap), which arrives as an inbound-message webhook and opens the window.
//!
//! Magic recipients, for failures without switches (last four digits of `to`):
//! `0001` fails by webhook with 131026 (undeliverable); `0002` answers `400` 130429;
//! `0003` answers `500` 131000; `0004` fails by webhook with 131050 (marketing opt-out);
//! `0005` is `sent` but never delivered.
//!
//! It is not a Meta emulator: media, interactive, location and other message types get
//! 131051; no conversation or pricing beyond a plausible `pricing` object; no quality rating
//! changes; template management beyond listing is absent.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
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
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::common::{esc, lock, now_ms, now_secs, page};
use crate::controls::{WhatsAppFaults, take_one};
use crate::outbox::{Outbox, OutboxConfig, OutboxDelivery, Webhook};
use crate::phone::{self, MAX_REPLY_CHARS, PhoneMessage};

/// The stand-in's fixed, obviously fake credentials and ids (loopback only). The ids are the
/// ones in the spec's examples and test vectors.
pub const ACCESS_TOKEN: &str = "EAAstoepWhatsAppStandinToken";
/// Signs the webhooks (`X-Hub-Signature-256`).
pub const APP_SECRET: &str = "stoep_whatsapp_standin_app_secret";
/// Sent in the GET verification handshake ([`WhatsAppStandin::verify_webhook`]).
pub const VERIFY_TOKEN: &str = "stoep-whatsapp-standin-verify";
pub const PHONE_NUMBER_ID: &str = "106540352242922";
pub const WABA_ID: &str = "102290129340398";
/// The business number, digits only, as webhook metadata carries it.
pub const DISPLAY_PHONE_NUMBER: &str = "27600000000";
/// The Graph API version the portal is expected to use (any `v<N>.<M>` is served).
pub const API_VERSION: &str = "v23.0";

/// Largest request body accepted.
const MAX_BODY_BYTES: usize = 256 * 1024;
/// How long a webhook receiver may take before the attempt counts as failed.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// How often scheduled statuses are looked at.
const TICK: Duration = Duration::from_millis(25);
/// The customer service window.
const WINDOW_SECS: i64 = 24 * 60 * 60;
/// `text.body` limit.
const MAX_TEXT_CHARS: usize = 4096;
/// Body parameter limit.
const MAX_PARAM_CHARS: usize = 1024;
/// The API request log keeps this many entries.
const MAX_REQUEST_LOG: usize = 1000;

// ---------------------------------------------------------------------------------------------
// Configuration and public API
// ---------------------------------------------------------------------------------------------

/// A message template the stand-in treats as approved (or not, per `status`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WaTemplate {
    /// Lowercase letters, digits and `_`.
    pub name: String,
    /// The translation's code (`en`, `en_US`, `af`): sends must match it exactly.
    pub language: String,
    /// `UTILITY`, `MARKETING` or `AUTHENTICATION`.
    pub category: String,
    /// `APPROVED` to be sendable; anything else is refused with 132001.
    pub status: String,
    /// Header text with `{{1}}` (or named) placeholders, if any.
    pub header: Option<String>,
    /// Body text with `{{1}}`, `{{2}}`, ... or `{{first_name}}` placeholders.
    pub body: String,
    pub footer: Option<String>,
    /// Quick-reply button labels (the phone page lets a tester tap them).
    pub quick_replies: Vec<String>,
}

impl WaTemplate {
    /// An approved UTILITY template with just a body.
    pub fn new(name: &str, language: &str, body: &str) -> Self {
        Self {
            name: name.into(),
            language: language.into(),
            category: "UTILITY".into(),
            status: "APPROVED".into(),
            header: None,
            body: body.into(),
            footer: None,
            quick_replies: Vec::new(),
        }
    }

    /// The templates a fresh stand-in has: confirmations and reminders in English and
    /// Afrikaans, and one marketing template with a "Stop promotions" button.
    pub fn defaults() -> Vec<WaTemplate> {
        vec![
            WaTemplate::new(
                "booking_confirmed",
                "en",
                "Hi {{1}}, your booking with {{2}} on {{3}} is confirmed.",
            ),
            WaTemplate::new(
                "booking_confirmed",
                "af",
                "Hallo {{1}}, jou bespreking by {{2}} op {{3}} is bevestig.",
            ),
            WaTemplate::new(
                "appointment_reminder",
                "en",
                "Reminder: {{1}}, you have an appointment with {{2}} on {{3}}. Reply if you need to change it.",
            ),
            WaTemplate::new("invoice_ready", "en", "Hi {{1}}, invoice {{2}} is ready."),
            WaTemplate {
                category: "MARKETING".into(),
                footer: Some("Tap below to stop these messages".into()),
                quick_replies: vec!["Stop promotions".into()],
                ..WaTemplate::new(
                    "seasonal_offer",
                    "en",
                    "Hi {{first_name}}, {{business}} has a special offer this month.",
                )
            },
        ]
    }
}

/// How a stand-in behaves. [`Default`] gives the fixed test credentials above, the default
/// templates, no webhook URL, statuses a moment apart, a short retry schedule and no
/// persistence.
#[derive(Clone)]
pub struct WhatsAppStandinConfig {
    /// The only access token accepted (`Authorization: Bearer ...`); others get `401` 190.
    pub access_token: String,
    /// Signs the webhooks.
    pub app_secret: String,
    /// Sent in the verification handshake.
    pub verify_token: String,
    pub phone_number_id: String,
    pub waba_id: String,
    /// Digits only (`27600000000`), as webhook metadata carries it.
    pub display_phone_number: String,
    /// The business name the connection test reports.
    pub verified_name: String,
    /// Where status and inbound webhooks are POSTed (`None`: recorded, not sent).
    pub webhook_url: Option<String>,
    pub templates: Vec<WaTemplate>,
    /// Fault switches, read at each call and delivery.
    pub faults: Arc<WhatsAppFaults>,
    /// Waits between webhook attempts after a failure (Meta retries for days; compressed).
    pub retry_schedule: Vec<Duration>,
    /// After an accepted send: when `sent`, then `delivered`, then `read` go out (each from
    /// the send). `read_after: None`: the customer never reads it.
    pub sent_after: Duration,
    pub delivered_after: Duration,
    pub read_after: Option<Duration>,
    /// If set, messages, windows and scheduled statuses are saved here after each change.
    pub state_file: Option<PathBuf>,
}

impl WhatsAppStandinConfig {
    /// 1 s, 2 s, 5 s, 15 s, 30 s, 1 min, 5 min: Meta's days of retries, compressed.
    pub fn default_retry_schedule() -> Vec<Duration> {
        [1, 2, 5, 15, 30, 60, 300]
            .into_iter()
            .map(Duration::from_secs)
            .collect()
    }
}

impl Default for WhatsAppStandinConfig {
    fn default() -> Self {
        Self {
            access_token: ACCESS_TOKEN.into(),
            app_secret: APP_SECRET.into(),
            verify_token: VERIFY_TOKEN.into(),
            phone_number_id: PHONE_NUMBER_ID.into(),
            waba_id: WABA_ID.into(),
            display_phone_number: DISPLAY_PHONE_NUMBER.into(),
            verified_name: "Stoep".into(),
            webhook_url: None,
            templates: WaTemplate::defaults(),
            faults: Arc::default(),
            retry_schedule: Self::default_retry_schedule(),
            sent_after: Duration::from_millis(300),
            delivered_after: Duration::from_secs(1),
            read_after: Some(Duration::from_secs(4)),
            state_file: None,
        }
    }
}

/// Secrets stay out of logs.
impl fmt::Debug for WhatsAppStandinConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhatsAppStandinConfig")
            .field("access_token", &"****")
            .field("app_secret", &"****")
            .field("verify_token", &"****")
            .field("phone_number_id", &self.phone_number_id)
            .field("waba_id", &self.waba_id)
            .field("webhook_url", &self.webhook_url)
            .field("templates", &self.templates.len())
            .field("faults", &self.faults)
            .field("retry_schedule", &self.retry_schedule)
            .field("state_file", &self.state_file)
            .finish()
    }
}

/// One API request, as tests see it (what the portal's client really sent).
#[derive(Clone, Debug, Serialize)]
pub struct ApiRequest {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The JSON body (`null` for GETs or a body that is not JSON).
    pub body: Value,
    /// What the stand-in answered.
    pub status: u16,
}

/// A running stand-in. Cheap to clone; it stops when the `shutdown` token given to
/// [`WhatsAppStandin::start`] is cancelled.
#[derive(Clone)]
pub struct WhatsAppStandin {
    inner: Arc<Inner>,
}

impl WhatsAppStandin {
    /// Serves the stand-in on `listener` (bind `127.0.0.1:0` in tests) and starts the webhook
    /// outbox and the status scheduler. Loads `state_file` if it exists.
    pub async fn start(
        listener: TcpListener,
        cfg: WhatsAppStandinConfig,
        shutdown: CancellationToken,
    ) -> std::io::Result<WhatsAppStandin> {
        let addr = listener.local_addr()?;
        let store: Store = match &cfg.state_file {
            Some(path) => crate::common::load_state(path, "WhatsApp").await?,
            None => Store::default(),
        };
        let outbox = Outbox::start(
            OutboxConfig {
                name: "WhatsApp",
                retry_schedule: cfg.retry_schedule.clone(),
                timeout: WEBHOOK_TIMEOUT,
                discard_on_4xx: false,
                user_agent: "facebookexternalua".into(),
                faults: cfg.faults.webhooks.clone(),
            },
            shutdown.clone(),
        )?;
        let inner = Arc::new(Inner {
            base_url: format!("http://{addr}"),
            webhook_url: Mutex::new(cfg.webhook_url.clone()),
            cfg,
            store: Mutex::new(store),
            outbox,
            requests: Mutex::new(VecDeque::new()),
            http: reqwest::Client::builder()
                .timeout(WEBHOOK_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(std::io::Error::other)?,
        });
        let router = Router::new()
            .route("/_standin", get(show_admin))
            .route("/_standin/verify", post(submit_verify))
            .route("/_standin/phone", get(show_phone))
            .route("/_standin/phone/reply", post(submit_reply))
            .route("/_standin/phone/tap", post(submit_tap))
            .fallback(handle_graph)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(inner.clone());
        let server_shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(server_shutdown.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "the WhatsApp stand-in stopped serving");
            }
        });
        tokio::spawn(run_schedule(inner.clone(), shutdown));
        tracing::info!(base_url = %inner.base_url, "WhatsApp stand-in listening");
        Ok(WhatsAppStandin { inner })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash: the client's Graph base URL (it adds
    /// `/{version}/...`).
    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// The fault switches (shared with whoever passed them in).
    pub fn faults(&self) -> &Arc<WhatsAppFaults> {
        &self.inner.cfg.faults
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &WhatsAppStandinConfig {
        &self.inner.cfg
    }

    /// Changes where webhooks go; queued ones keep their URL.
    pub fn set_webhook_url(&self, url: Option<String>) {
        *lock(&self.inner.webhook_url) = url;
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

    /// One message by wamid.
    pub fn message(&self, id: &str) -> Option<PhoneMessage> {
        let store = lock(&self.inner.store);
        store.find(id).map(|i| store.messages[i].phone.clone())
    }

    /// The statuses sent (or scheduled and due) for a message so far, in order.
    pub fn status_history(&self, id: &str) -> Vec<String> {
        let store = lock(&self.inner.store);
        store
            .find(id)
            .map(|i| store.messages[i].history.clone())
            .unwrap_or_default()
    }

    /// The customer at `number` sends `text` (an inbound webhook follows, and their window
    /// opens). Returns the inbound message's wamid.
    pub fn reply(&self, number: &str, text: &str) -> Result<String, String> {
        let number = phone::clean_number(number).ok_or("not a phone number")?;
        let text = text.trim();
        if text.is_empty() || text.chars().count() > MAX_REPLY_CHARS {
            return Err("a reply is 1 to 1600 characters".into());
        }
        Ok(self
            .inner
            .mutate(|s| s.inbound(&self.inner.cfg, &number, Incoming::Text(text.to_owned()))))
    }

    /// The customer taps quick-reply button `index` of template message `message_id`.
    pub fn tap(&self, message_id: &str, index: usize) -> Result<String, String> {
        self.inner.mutate(|s| {
            let i = s.find(message_id).ok_or("no such message")?;
            let rec = &s.messages[i];
            let label = rec
                .phone
                .buttons
                .get(index)
                .cloned()
                .ok_or("the message has no such button")?;
            let payload = rec.payloads.get(index).cloned().unwrap_or(label.clone());
            let number = rec.phone.number.clone();
            Ok(s.inbound(
                &self.inner.cfg,
                &number,
                Incoming::Button {
                    context_id: message_id.to_owned(),
                    payload,
                    text: label,
                },
            ))
        })
    }

    /// Sets (or clears) when the customer last wrote, without a webhook: opens or closes
    /// their 24-hour window for tests.
    pub fn set_last_inbound(&self, number: &str, unix_secs: Option<i64>) {
        let number = number.trim_start_matches('+').to_owned();
        self.inner.mutate(|s| {
            match unix_secs {
                Some(t) => s.last_inbound.insert(number, t),
                None => s.last_inbound.remove(&number),
            };
            s.dirty = true;
        });
    }

    /// Every webhook delivery attempt (the last 5000), oldest first.
    pub fn deliveries(&self) -> Vec<OutboxDelivery> {
        self.inner.outbox.log()
    }

    /// The API requests received (the last 1000), oldest first.
    pub fn requests(&self) -> Vec<ApiRequest> {
        lock(&self.inner.requests).iter().cloned().collect()
    }

    /// Waits until every scheduled status has gone out and no webhook is pending or in flight;
    /// `false` if `timeout` passed first.
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

    /// Makes Meta's GET verification handshake against the webhook URL (what saving the URL
    /// in the App Dashboard does): `Ok` when it answered 200 with exactly the challenge.
    pub async fn verify_webhook(&self) -> Result<(), String> {
        self.inner.verify_webhook().await
    }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

struct Inner {
    cfg: WhatsAppStandinConfig,
    base_url: String,
    webhook_url: Mutex<Option<String>>,
    /// Lock order: `store`, then `webhook_url`.
    store: Mutex<Store>,
    outbox: Outbox,
    requests: Mutex<VecDeque<ApiRequest>>,
    http: reqwest::Client,
}

impl Inner {
    /// Runs one change, saves the state if it changed, and queues the webhooks it produced,
    /// all under the store lock so they reach the outbox in order.
    fn mutate<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let mut store = lock(&self.store);
        let result = f(&mut store);
        if store.dirty {
            store.dirty = false;
            if let Some(path) = &self.cfg.state_file {
                crate::common::save_state(path, &*store, "WhatsApp");
            }
        }
        let out = std::mem::take(&mut store.out);
        if !out.is_empty()
            && let Some(url) = lock(&self.webhook_url).clone()
        {
            for (kind, key, value) in out {
                let body = meta_json(&value);
                let signature = guards::whatsapp::hub_signature(&self.cfg.app_secret, &body);
                self.outbox.push(Webhook {
                    url: url.clone(),
                    kind,
                    key,
                    body,
                    headers: vec![(guards::whatsapp::SIGNATURE_HEADER.to_owned(), signature)],
                    delay: Duration::ZERO,
                });
            }
        }
        result
    }

    fn log_request(&self, entry: ApiRequest) {
        let mut log = lock(&self.requests);
        if log.len() >= MAX_REQUEST_LOG {
            log.pop_front();
        }
        log.push_back(entry);
    }

    async fn verify_webhook(&self) -> Result<(), String> {
        let url = lock(&self.webhook_url)
            .clone()
            .ok_or("no webhook URL configured")?;
        let challenge = rand::thread_rng()
            .gen_range(1_000_000_000u64..9_999_999_999)
            .to_string();
        let response = self
            .http
            .get(&url)
            .query(&[
                ("hub.mode", "subscribe"),
                ("hub.challenge", challenge.as_str()),
                ("hub.verify_token", self.cfg.verify_token.as_str()),
            ])
            .header(
                header::USER_AGENT,
                "facebookplatform/1.0 (+http://developers.facebook.com)",
            )
            .send()
            .await
            .map_err(|e| format!("the webhook URL could not be reached: {e}"))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status == StatusCode::OK && body == challenge {
            Ok(())
        } else {
            Err(format!(
                "the callback URL or verify token couldn't be validated (HTTP {}, body {:?})",
                status.as_u16(),
                body.chars().take(80).collect::<String>()
            ))
        }
    }
}

/// What Meta would keep, oldest first.
#[derive(Default, Serialize, Deserialize)]
struct Store {
    seq: u64,
    messages: Vec<WaRecord>,
    /// Customer number → when they last wrote (Unix seconds).
    last_inbound: BTreeMap<String, i64>,
    /// Statuses still to go out.
    schedule: Vec<Scheduled>,
    /// Webhooks produced by the current change: (kind, key, envelope).
    #[serde(skip)]
    out: Vec<(String, String, Value)>,
    #[serde(skip)]
    dirty: bool,
}

#[derive(Clone, Serialize, Deserialize)]
struct WaRecord {
    phone: PhoneMessage,
    /// `utility`, `marketing`, `service`: the status webhooks' pricing category.
    category: String,
    biz_opaque_callback_data: Option<String>,
    /// Quick-reply payloads, by button index.
    payloads: Vec<String>,
    /// Statuses sent so far.
    history: Vec<String>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Scheduled {
    message_id: String,
    status: String,
    due_ms: u64,
    /// For `failed`: code, title, details.
    error: Option<(i64, String, String)>,
}

enum Incoming {
    Text(String),
    Button {
        context_id: String,
        payload: String,
        text: String,
    },
}

/// How far along a status is; the phone shows the furthest, `failed` wins.
fn rank(status: &str) -> u8 {
    match status {
        "accepted" => 0,
        "sent" => 1,
        "delivered" => 2,
        "read" => 3,
        "failed" => 4,
        _ => 0,
    }
}

impl Store {
    fn find(&self, id: &str) -> Option<usize> {
        self.messages.iter().position(|r| r.phone.id == id)
    }

    /// A wamid: `wamid.` and unpadded base64 of an id that names the recipient, as Meta's do.
    fn new_wamid(&mut self, number: &str) -> String {
        self.seq += 1;
        let nonce: u32 = rand::thread_rng().r#gen();
        let raw = format!("stoep:{number}:{}:{nonce:08X}", self.seq);
        let b64 = guards::signature::base64(raw.as_bytes());
        format!("wamid.{}", b64.trim_end_matches('='))
    }

    fn envelope(cfg: &WhatsAppStandinConfig, value: Map<String, Value>) -> Value {
        let mut value = value;
        value.insert("messaging_product".into(), json!("whatsapp"));
        value.insert(
            "metadata".into(),
            json!({
                "display_phone_number": cfg.display_phone_number,
                "phone_number_id": cfg.phone_number_id,
            }),
        );
        json!({
            "object": "whatsapp_business_account",
            "entry": [{
                "id": cfg.waba_id,
                "changes": [{ "value": Value::Object(value), "field": "messages" }],
            }],
        })
    }

    /// Applies the statuses whose time has come: the phone's state moves on and a status
    /// webhook is produced for each.
    fn apply_due(&mut self, cfg: &WhatsAppStandinConfig, now_ms: u64) {
        if self.schedule.iter().all(|s| s.due_ms > now_ms) {
            return;
        }
        let (due, later): (Vec<Scheduled>, Vec<Scheduled>) = std::mem::take(&mut self.schedule)
            .into_iter()
            .partition(|s| s.due_ms <= now_ms);
        self.schedule = later;
        self.dirty = true;
        for s in due {
            let Some(i) = self.find(&s.message_id) else {
                continue;
            };
            let rec = &mut self.messages[i];
            if rank(&s.status) > rank(&rec.phone.status) && rec.phone.status != "failed" {
                rec.phone.status = s.status.clone();
            }
            rec.history.push(s.status.clone());
            let mut status = Map::new();
            status.insert("id".into(), json!(rec.phone.id));
            status.insert("status".into(), json!(s.status));
            status.insert("timestamp".into(), json!(now_secs().to_string()));
            status.insert("recipient_id".into(), json!(rec.phone.number));
            if let Some(data) = &rec.biz_opaque_callback_data {
                status.insert("biz_opaque_callback_data".into(), json!(data));
            }
            if s.status == "sent" || s.status == "delivered" {
                // v24-style: pricing without the (deprecated) conversation object.
                let free = rec.category == "service";
                status.insert(
                    "pricing".into(),
                    json!({
                        "billable": !free,
                        "pricing_model": "PMP",
                        "type": if free { "free_customer_service" } else { "regular" },
                        "category": rec.category,
                    }),
                );
            }
            if let Some((code, title, details)) = &s.error {
                rec.phone.error = Some(format!("{code} {title}"));
                status.insert(
                    "errors".into(),
                    json!([{
                        "code": code,
                        "title": title,
                        "message": title,
                        "error_data": { "details": details },
                        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
                    }]),
                );
            }
            let mut value = Map::new();
            value.insert("statuses".into(), json!([Value::Object(status)]));
            let key = rec.phone.id.clone();
            self.out.push((
                format!("status.{}", s.status),
                key,
                Self::envelope(cfg, value),
            ));
        }
    }

    /// A message from the customer: recorded, their window (re)opened, webhook produced.
    fn inbound(&mut self, cfg: &WhatsAppStandinConfig, number: &str, incoming: Incoming) -> String {
        let id = self.new_wamid(number);
        let now = now_secs();
        let mut message = Map::new();
        message.insert("from".into(), json!(number));
        message.insert("id".into(), json!(id));
        message.insert("timestamp".into(), json!(now.to_string()));
        let (text, label) = match &incoming {
            Incoming::Text(text) => {
                message.insert("type".into(), json!("text"));
                message.insert("text".into(), json!({ "body": text }));
                (text.clone(), "text".to_owned())
            }
            Incoming::Button {
                context_id,
                payload,
                text,
            } => {
                message.insert("type".into(), json!("button"));
                message.insert("button".into(), json!({ "payload": payload, "text": text }));
                message.insert(
                    "context".into(),
                    json!({ "from": cfg.display_phone_number, "id": context_id }),
                );
                (text.clone(), format!("button tap ({payload})"))
            }
        };
        self.messages.push(WaRecord {
            phone: PhoneMessage {
                id: id.clone(),
                number: number.to_owned(),
                from_business: false,
                at: now,
                text,
                label,
                status: "received".into(),
                error: None,
                buttons: Vec::new(),
            },
            category: "service".into(),
            biz_opaque_callback_data: None,
            payloads: Vec::new(),
            history: Vec::new(),
        });
        self.last_inbound.insert(number.to_owned(), now);
        self.dirty = true;
        let mut value = Map::new();
        value.insert(
            "contacts".into(),
            json!([{ "profile": { "name": format!("Customer {number}") }, "wa_id": number }]),
        );
        value.insert("messages".into(), json!([Value::Object(message)]));
        self.out
            .push(("message".into(), id.clone(), Self::envelope(cfg, value)));
        id
    }
}

/// Serialises as Meta does: compact, with every non-ASCII character escaped as `\uXXXX`
/// (UTF-16 units), so a receiver that re-serialises before checking the signature fails here
/// as it would in production. Non-ASCII can only occur inside JSON strings, so escaping the
/// serialised text is exact.
fn meta_json(value: &Value) -> Vec<u8> {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out.into_bytes()
}

/// Applies due statuses every [`TICK`].
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
// The Graph API
// ---------------------------------------------------------------------------------------------

/// A Graph API error: `{"error": {"message", "type", "code", "error_subcode"?, "error_data"?,
/// "fbtrace_id"}}`.
#[derive(Debug)]
struct GraphError {
    status: StatusCode,
    code: i64,
    message: String,
    kind: &'static str,
    subcode: Option<i64>,
    details: Option<String>,
    transient: bool,
    retry_after: Option<u32>,
}

impl GraphError {
    /// `(#code) message`, type `OAuthException`, with WhatsApp's `error_data.details`.
    fn new(status: StatusCode, code: i64, title: &str, details: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: format!("(#{code}) {title}"),
            kind: "OAuthException",
            subcode: None,
            details: Some(details.into()),
            transient: false,
            retry_after: None,
        }
    }

    /// `400` code 100, invalid parameter.
    fn invalid(details: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 100, "Invalid parameter", details)
    }

    /// `400` code 131008, required parameter missing.
    fn missing(param: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            131_008,
            "Required parameter is missing",
            format!("The parameter {param} is required."),
        )
    }

    /// `400` code 100 subcode 33: the id is not an object this token can reach.
    fn no_object(method: &Method, id: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: 100,
            message: format!(
                "Unsupported {} request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
                method.as_str().to_ascii_lowercase()
            ),
            kind: "GraphMethodException",
            subcode: Some(33),
            details: None,
            transient: false,
            retry_after: None,
        }
    }

    fn into_response(self) -> Response {
        let mut error = Map::new();
        error.insert("message".into(), json!(self.message));
        error.insert("type".into(), json!(self.kind));
        error.insert("code".into(), json!(self.code));
        if let Some(sub) = self.subcode {
            error.insert("error_subcode".into(), json!(sub));
        }
        if self.transient {
            error.insert("is_transient".into(), json!(true));
        }
        if let Some(details) = &self.details {
            error.insert(
                "error_data".into(),
                json!({ "messaging_product": "whatsapp", "details": details }),
            );
        }
        error.insert("fbtrace_id".into(), json!(fbtrace_id()));
        let mut response = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

fn fbtrace_id() -> String {
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(11)
        .map(char::from)
        .collect()
}

/// `v23.0`, `v24.0`: Graph's version path segment.
fn is_version(segment: &str) -> bool {
    let Some(rest) = segment.strip_prefix('v') else {
        return false;
    };
    let (major, minor) = rest.split_once('.').unwrap_or((rest, "0"));
    !major.is_empty()
        && !minor.is_empty()
        && major.bytes().all(|b| b.is_ascii_digit())
        && minor.bytes().all(|b| b.is_ascii_digit())
}

/// Every request outside `/_standin`: faults, auth, then the Graph path.
async fn handle_graph(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let result = graph(&inner, &method, &uri, &headers, &json_body);
    let response = match result {
        Ok(v) => (StatusCode::OK, axum::Json(v)).into_response(),
        Err(e) => e.into_response(),
    };
    inner.log_request(ApiRequest {
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |p| p.to_string()),
        body: json_body,
        status: response.status().as_u16(),
    });
    response
}

fn graph(
    inner: &Inner,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Value,
) -> Result<Value, GraphError> {
    let faults = &inner.cfg.faults;
    if faults.api_down.load(Ordering::SeqCst) {
        let mut e = GraphError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            2,
            "Service temporarily unavailable",
            "The WhatsApp stand-in is down (fault switch).",
        );
        e.transient = true;
        return Err(e);
    }
    if take_one(&faults.fail_next) {
        return Err(GraphError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            131_000,
            "Something went wrong",
            "Something went wrong (stand-in fault: failing calls).",
        ));
    }
    let segments: Vec<&str> = uri
        .path()
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let Some((version, rest)) = segments.split_first().filter(|(v, _)| is_version(v)) else {
        return Err(GraphError {
            kind: "OAuthException",
            ..GraphError::new(
                StatusCode::BAD_REQUEST,
                2500,
                "Unknown path components",
                format!("Unknown path components: {}", uri.path()),
            )
        });
    };
    let _ = version;
    check_auth(headers, &inner.cfg.access_token)?;
    let cfg = &inner.cfg;
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    match (method.as_str(), rest) {
        ("POST", [id, "messages"]) if *id == cfg.phone_number_id => send(inner, body),
        ("GET", [id]) if *id == cfg.phone_number_id => phone_number_fields(cfg, &query),
        ("GET", [id]) if *id == cfg.waba_id => Ok(json!({
            "id": cfg.waba_id, "name": cfg.verified_name, "currency": "ZAR",
            "timezone_id": "44", "message_template_namespace": "stoep_standin",
        })),
        ("GET", [id, "message_templates"]) if *id == cfg.waba_id => Ok(list_templates(inner)),
        (_, [id, ..]) => Err(GraphError::no_object(method, id)),
        _ => Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            2500,
            "Unknown path components",
            format!("Unknown path components: {}", uri.path()),
        )),
    }
}

fn check_auth(headers: &HeaderMap, token: &str) -> Result<(), GraphError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(g) if guards::signature::same(g, token) => Ok(()),
        Some(_) => Err(GraphError {
            details: None,
            message: "Invalid OAuth access token - Cannot parse access token".into(),
            ..GraphError::new(StatusCode::UNAUTHORIZED, 190, "", "")
        }),
        None => Err(GraphError {
            details: None,
            message:
                "An active access token must be used to query information about the current user."
                    .into(),
            ..GraphError::new(StatusCode::UNAUTHORIZED, 190, "", "")
        }),
    }
}

/// `GET /{phone-number-id}?fields=...`.
fn phone_number_fields(
    cfg: &WhatsAppStandinConfig,
    query: &HashMap<String, String>,
) -> Result<Value, GraphError> {
    let digits = &cfg.display_phone_number;
    // "+27 60 000 0000": formatted for people, as Meta's field is.
    let display = if digits.len() == 11 {
        format!(
            "+{} {} {} {}",
            &digits[..2],
            &digits[2..4],
            &digits[4..7],
            &digits[7..]
        )
    } else {
        format!("+{digits}")
    };
    let all: BTreeMap<&str, Value> = [
        ("display_phone_number", json!(display)),
        ("verified_name", json!(cfg.verified_name)),
        ("quality_rating", json!("GREEN")),
        ("code_verification_status", json!("VERIFIED")),
        ("name_status", json!("APPROVED")),
        ("platform_type", json!("CLOUD_API")),
        ("throughput", json!({ "level": "STANDARD" })),
        ("messaging_limit_tier", json!("TIER_1K")),
        ("status", json!("CONNECTED")),
    ]
    .into_iter()
    .collect();
    let wanted: Vec<String> = match query.get("fields") {
        Some(f) => f
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        None => [
            "verified_name",
            "code_verification_status",
            "display_phone_number",
            "quality_rating",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect(),
    };
    let mut out = Map::new();
    for f in wanted {
        if f == "id" {
            continue;
        }
        let v = all.get(f.as_str()).ok_or_else(|| GraphError {
            details: None,
            message: format!(
                "(#100) Tried accessing nonexisting field ({f}) on node type (WhatsAppBusinessPhoneNumber)"
            ),
            ..GraphError::new(StatusCode::BAD_REQUEST, 100, "", "")
        })?;
        out.insert(f, v.clone());
    }
    out.insert("id".into(), json!(cfg.phone_number_id));
    Ok(Value::Object(out))
}

fn effective_status<'a>(inner: &Inner, t: &'a WaTemplate) -> &'a str {
    if inner.cfg.faults.reject_templates.load(Ordering::SeqCst) {
        "REJECTED"
    } else {
        &t.status
    }
}

/// `GET /{waba-id}/message_templates`.
fn list_templates(inner: &Inner) -> Value {
    let data: Vec<Value> = inner
        .cfg
        .templates
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut components = Vec::new();
            if let Some(h) = &t.header {
                components.push(json!({ "type": "HEADER", "format": "TEXT", "text": h }));
            }
            components.push(json!({ "type": "BODY", "text": t.body }));
            if let Some(f) = &t.footer {
                components.push(json!({ "type": "FOOTER", "text": f }));
            }
            if !t.quick_replies.is_empty() {
                let buttons: Vec<Value> = t
                    .quick_replies
                    .iter()
                    .map(|b| json!({ "type": "QUICK_REPLY", "text": b }))
                    .collect();
                components.push(json!({ "type": "BUTTONS", "buttons": buttons }));
            }
            let named = placeholders(&t.body)
                .iter()
                .any(|p| !p.bytes().all(|b| b.is_ascii_digit()));
            json!({
                "id": format!("{}", 9_000_000_000_000u64 + i as u64),
                "name": t.name,
                "status": effective_status(inner, t),
                "category": t.category,
                "language": t.language,
                "parameter_format": if named { "NAMED" } else { "POSITIONAL" },
                "components": components,
            })
        })
        .collect();
    json!({ "data": data, "paging": { "cursors": { "before": "MAZDZD", "after": "MjQZD" } } })
}

/// The placeholders of a template text, in order of first appearance: `1`, `2` or names.
fn placeholders(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim();
        if !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !out.iter().any(|n| n == name)
        {
            out.push(name.to_owned());
        }
        rest = &after[end + 2..];
    }
    out
}

/// A template parameter as sent: its name (named templates) and text.
struct Param {
    name: Option<String>,
    text: String,
}

fn params_of(component: &Value) -> Result<Vec<Param>, GraphError> {
    let mut out = Vec::new();
    for p in component["parameters"].as_array().map_or(&[][..], |a| a) {
        let text = match p["type"].as_str() {
            Some("text") => p["text"]
                .as_str()
                .ok_or_else(|| {
                    GraphError::missing("template['components'][]['parameters'][]['text']")
                })?
                .to_owned(),
            Some("currency") => p["currency"]["fallback_value"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            Some("date_time") => p["date_time"]["fallback_value"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            Some(media @ ("image" | "video" | "document" | "location")) => format!("[{media}]"),
            Some(other) => {
                return Err(GraphError::invalid(format!(
                    "Parameter type '{other}' is not valid here"
                )));
            }
            None => {
                return Err(GraphError::missing(
                    "template['components'][]['parameters'][]['type']",
                ));
            }
        };
        out.push(Param {
            name: p["parameter_name"].as_str().map(str::to_owned),
            text,
        });
    }
    Ok(out)
}

/// Checks parameters against a template text and renders it (`what`: `header`, `body`).
fn fill(what: &str, text: Option<&str>, params: &[Param]) -> Result<String, GraphError> {
    let wanted = text.map(placeholders).unwrap_or_default();
    let mismatch = |got: usize| {
        GraphError::new(
            StatusCode::BAD_REQUEST,
            132_000,
            "Number of parameters does not match the expected number of params",
            format!(
                "{what}: number of localizable_params ({got}) does not match the expected number of params ({})",
                wanted.len()
            ),
        )
    };
    if params.len() != wanted.len() {
        return Err(mismatch(params.len()));
    }
    for p in params {
        if p.text.contains(['\n', '\t']) || p.text.contains("     ") {
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                132_018,
                "There's an issue with the parameters in your template.",
                "Param text cannot have new-line/tab characters or more than 4 consecutive spaces",
            ));
        }
        if p.text.chars().count() > MAX_PARAM_CHARS {
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                132_005,
                "Translated text too long",
                format!("{what}: a parameter is longer than {MAX_PARAM_CHARS} characters"),
            ));
        }
    }
    let named = wanted
        .iter()
        .any(|n| !n.bytes().all(|b| b.is_ascii_digit()));
    let mut rendered = text.unwrap_or_default().to_owned();
    for (i, name) in wanted.iter().enumerate() {
        let value = if named {
            let p = params
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .ok_or_else(|| {
                    GraphError::new(
                        StatusCode::BAD_REQUEST,
                        132_000,
                        "Number of parameters does not match the expected number of params",
                        format!("{what}: no parameter named '{name}'"),
                    )
                })?;
            &p.text
        } else {
            let n: usize = name.parse().unwrap_or(0);
            match n
                .checked_sub(1)
                .and_then(|k| params.get(k))
                .or(params.get(i))
            {
                Some(p) => &p.text,
                None => return Err(mismatch(params.len())),
            }
        };
        rendered = rendered
            .replace(&format!("{{{{{name}}}}}"), value)
            .replace(&format!("{{{{ {name} }}}}"), value);
    }
    Ok(rendered)
}

/// The throttling error the fault and magic number `0002` produce.
fn rate_limited(inner: &Inner) -> GraphError {
    let faults = &inner.cfg.faults;
    let code = match faults.rate_limit_code.load(Ordering::SeqCst) {
        0 => 130_429,
        c => i64::from(c),
    };
    let (title, details) = match code {
        80_007 => (
            "Rate limit issues",
            "The WhatsApp Business Account has reached its rate limit.",
        ),
        4 => (
            "Application request limit reached",
            "The app has reached its API call rate limit.",
        ),
        131_056 => (
            "(Business Account, Consumer Account) pair rate limit hit",
            "Too many messages sent from the sender phone number to the same recipient phone number in a short period of time.",
        ),
        _ => (
            "Rate limit hit",
            "Cloud API message throughput has been reached.",
        ),
    };
    let status = if faults.rate_limit_http_429.load(Ordering::SeqCst) {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        StatusCode::BAD_REQUEST
    };
    let mut e = GraphError::new(status, code, title, details);
    e.transient = true;
    e.retry_after = match faults.retry_after_secs.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    };
    e
}

/// `POST /{phone-number-id}/messages`.
fn send(inner: &Inner, body: &Value) -> Result<Value, GraphError> {
    let cfg = &inner.cfg;
    let Some(req) = body.as_object() else {
        return Err(GraphError::invalid(
            "The request body must be a JSON object.",
        ));
    };
    if req.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        return Err(GraphError::missing("messaging_product"));
    }
    // Mark an inbound message as read.
    if req.get("status").and_then(Value::as_str) == Some("read") {
        let id = req
            .get("message_id")
            .and_then(Value::as_str)
            .ok_or_else(|| GraphError::missing("message_id"))?;
        return inner.mutate(|s| match s.find(id) {
            Some(i) if !s.messages[i].phone.from_business => {
                s.messages[i].phone.status = "read by business".into();
                s.dirty = true;
                Ok(json!({ "success": true }))
            }
            _ => Err(GraphError::invalid(format!("Invalid message_id: {id}"))),
        });
    }
    if let Some(rt) = req.get("recipient_type")
        && rt.as_str() != Some("individual")
    {
        return Err(GraphError::invalid("recipient_type must be 'individual'"));
    }
    let to_raw = req
        .get("to")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::missing("to"))?;
    let number = phone::clean_number(to_raw)
        .ok_or_else(|| GraphError::invalid(format!("Invalid 'to' phone number: {to_raw}")))?;
    let kind = req.get("type").and_then(Value::as_str).unwrap_or("text");

    if take_one(&cfg.faults.rate_limit_next) || number.ends_with("0002") {
        return Err(rate_limited(inner));
    }
    if number.ends_with("0003") {
        return Err(GraphError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            131_000,
            "Something went wrong",
            "Something went wrong (stand-in magic number ...0003).",
        ));
    }

    // What the phone will show, and its template's buttons.
    let (text, label, category, buttons, payloads) = match kind {
        "text" => {
            let body = req
                .get("text")
                .and_then(|t| t.get("body"))
                .and_then(Value::as_str)
                .ok_or_else(|| GraphError::missing("text['body']"))?;
            if body.is_empty() {
                return Err(GraphError::missing("text['body']"));
            }
            if body.chars().count() > MAX_TEXT_CHARS {
                return Err(GraphError::invalid(format!(
                    "Param text['body'] must be at most {MAX_TEXT_CHARS} characters long."
                )));
            }
            (
                body.to_owned(),
                "text".to_owned(),
                "service".to_owned(),
                Vec::new(),
                Vec::new(),
            )
        }
        "template" => {
            let t = req
                .get("template")
                .and_then(Value::as_object)
                .ok_or_else(|| GraphError::missing("template"))?;
            let name = t
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| GraphError::missing("template['name']"))?;
            let language = t
                .get("language")
                .and_then(|l| l.get("code"))
                .and_then(Value::as_str)
                .ok_or_else(|| GraphError::missing("template['language']['code']"))?;
            // Only an approved translation exists for sending; any other state reads as
            // "does not exist" (Meta's answer for rejected or pending ones).
            let template = cfg
                .templates
                .iter()
                .find(|x| {
                    x.name == name
                        && x.language == language
                        && effective_status(inner, x) == "APPROVED"
                })
                .ok_or_else(|| {
                    // HTTP 400 as the spec's reading of Meta's table has it ("most others");
                    // clients must classify by the code, not the status.
                    GraphError::new(
                        StatusCode::BAD_REQUEST,
                        132_001,
                        "Template name does not exist in the translation",
                        format!("template name ({name}) does not exist in {language}"),
                    )
                })?;
            let mut header_params = Vec::new();
            let mut body_params = Vec::new();
            let mut button_payloads: BTreeMap<usize, String> = BTreeMap::new();
            let mut seen = BTreeSet::new();
            for c in t
                .get("components")
                .and_then(Value::as_array)
                .map_or(&[][..], |a| a)
            {
                let ctype = c["type"].as_str().unwrap_or_default().to_ascii_lowercase();
                match ctype.as_str() {
                    "header" => header_params.extend(params_of(c)?),
                    "body" => body_params.extend(params_of(c)?),
                    "button" => {
                        let index: usize = c["index"]
                            .as_str()
                            .map(str::to_owned)
                            .or_else(|| c["index"].as_u64().map(|n| n.to_string()))
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| {
                                GraphError::missing("template['components'][]['index']")
                            })?;
                        if !seen.insert(index) || index >= template.quick_replies.len().max(1) {
                            return Err(GraphError::invalid(format!(
                                "button index {index} does not match the template's buttons"
                            )));
                        }
                        if let Some(p) = c["parameters"].get(0) {
                            let payload = p["payload"].as_str().or(p["text"].as_str());
                            if let Some(payload) = payload {
                                button_payloads.insert(index, payload.to_owned());
                            }
                        }
                    }
                    _ => {
                        return Err(GraphError::invalid(format!(
                            "Unknown template component type '{ctype}'"
                        )));
                    }
                }
            }
            let header = match &template.header {
                Some(h) => Some(fill("header", Some(h), &header_params)?),
                None if header_params.is_empty() => None,
                // Header parameters for a template without a header: a count mismatch.
                None => {
                    fill("header", None, &header_params)?;
                    None
                }
            };
            let body = fill("body", Some(&template.body), &body_params)?;
            let mut shown = String::new();
            if let Some(h) = header {
                shown.push_str(&h);
                shown.push('\n');
            }
            shown.push_str(&body);
            if let Some(f) = &template.footer {
                shown.push('\n');
                shown.push_str(f);
            }
            let payloads = template
                .quick_replies
                .iter()
                .enumerate()
                .map(|(i, label)| button_payloads.get(&i).cloned().unwrap_or(label.clone()))
                .collect();
            (
                shown,
                format!("template {} ({})", template.name, template.language),
                template.category.to_ascii_lowercase(),
                template.quick_replies.clone(),
                payloads,
            )
        }
        other => {
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                131_051,
                "Unsupported message type",
                format!(
                    "Message type '{other}' is not supported by the stand-in (text and template are)."
                ),
            ));
        }
    };
    let biz_opaque = req
        .get("biz_opaque_callback_data")
        .and_then(Value::as_str)
        .map(str::to_owned);

    inner.mutate(|s| {
        let now = now_secs();
        let window_open = s
            .last_inbound
            .get(&number)
            .is_some_and(|t| now - t < WINDOW_SECS);
        if kind == "text" && !window_open && cfg.faults.window_error_sync.load(Ordering::SeqCst) {
            return Err(window_error_sync());
        }
        let id = s.new_wamid(&number);
        s.messages.push(WaRecord {
            phone: PhoneMessage {
                id: id.clone(),
                number: number.clone(),
                from_business: true,
                at: now,
                text,
                label,
                status: "accepted".into(),
                error: None,
                buttons,
            },
            category,
            biz_opaque_callback_data: biz_opaque,
            payloads,
            history: Vec::new(),
        });
        let start = now_ms();
        let at = |d: Duration| start + d.as_millis() as u64;
        let mut plan = |status: &str, after: Duration, error: Option<(i64, &str, &str)>| {
            s.schedule.push(Scheduled {
                message_id: id.clone(),
                status: status.into(),
                due_ms: at(after),
                error: error.map(|(c, t, d)| (c, t.to_owned(), d.to_owned())),
            });
        };
        if kind == "text" && !window_open {
            plan(
                "failed",
                cfg.sent_after,
                Some((
                    131_047,
                    "Re-engagement message",
                    "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
                )),
            );
        } else if number.ends_with("0001") {
            plan(
                "failed",
                cfg.sent_after,
                Some((
                    131_026,
                    "Message Undeliverable",
                    "Unable to deliver message. Reasons can include: the recipient phone number is not a WhatsApp phone number; the recipient has not accepted our new Terms of Service and Privacy Policy; the recipient is using an old WhatsApp version.",
                )),
            );
        } else if number.ends_with("0004") {
            plan(
                "failed",
                cfg.sent_after,
                Some((
                    131_050,
                    "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business",
                    "The recipient opted out of marketing messages from this business.",
                )),
            );
        } else {
            plan("sent", cfg.sent_after, None);
            if !number.ends_with("0005") {
                plan("delivered", cfg.delivered_after, None);
                if let Some(read) = cfg.read_after {
                    plan("read", read, None);
                }
            }
        }
        s.dirty = true;
        let mut message = Map::new();
        message.insert("id".into(), json!(id));
        if kind == "template" {
            message.insert("message_status".into(), json!("accepted"));
        }
        Ok(json!({
            "messaging_product": "whatsapp",
            "contacts": [{ "input": to_raw, "wa_id": number }],
            "messages": [Value::Object(message)],
        }))
    })
}

fn window_error_sync() -> GraphError {
    GraphError::new(
        StatusCode::BAD_REQUEST,
        131_047,
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
    )
}

// ---------------------------------------------------------------------------------------------
// The phone and admin pages
// ---------------------------------------------------------------------------------------------

async fn show_phone(State(inner): State<Arc<Inner>>) -> Response {
    let messages: Vec<PhoneMessage> = lock(&inner.store)
        .messages
        .iter()
        .map(|r| r.phone.clone())
        .collect();
    Html(phone::render("WhatsApp", &messages, None)).into_response()
}

fn phone_error(inner: &Inner, message: &str) -> Response {
    let messages: Vec<PhoneMessage> = lock(&inner.store)
        .messages
        .iter()
        .map(|r| r.phone.clone())
        .collect();
    (
        StatusCode::BAD_REQUEST,
        Html(phone::render("WhatsApp", &messages, Some(message))),
    )
        .into_response()
}

/// `POST /_standin/phone/reply` with `number` and `text`.
async fn submit_reply(
    State(inner): State<Arc<Inner>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let standin = WhatsAppStandin {
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
        Err(e) => phone_error(&inner, &e),
    }
}

/// `POST /_standin/phone/tap` with `message_id` and `index`.
async fn submit_tap(
    State(inner): State<Arc<Inner>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let standin = WhatsAppStandin {
        inner: inner.clone(),
    };
    let id = form
        .get("message_id")
        .map(String::as_str)
        .unwrap_or_default();
    let index = form
        .get("index")
        .and_then(|i| i.parse().ok())
        .unwrap_or(usize::MAX);
    match standin.tap(id, index) {
        Ok(_) => Redirect::to("/_standin/phone").into_response(),
        Err(e) => phone_error(&inner, &e),
    }
}

/// `POST /_standin/verify`: runs the GET handshake against the webhook URL.
async fn submit_verify(State(inner): State<Arc<Inner>>) -> Response {
    let (title, text) = match inner.verify_webhook().await {
        Ok(()) => (
            "Webhook verified",
            "The portal answered the handshake with the challenge.".to_owned(),
        ),
        Err(e) => ("Webhook not verified", e),
    };
    Html(page(
        title,
        &format!(
            "<h1>{}</h1><p>{}</p><p><a href=\"/_standin\">Back</a></p>",
            esc(title),
            esc(&text)
        ),
        false,
    ))
    .into_response()
}

/// `GET /_standin`: configuration, templates, faults and webhook deliveries.
async fn show_admin(State(inner): State<Arc<Inner>>) -> Response {
    let cfg = &inner.cfg;
    let mut body = format!(
        "<h1>WhatsApp Cloud API stand-in</h1>\
         <p>Graph API: <code>{base}/{API_VERSION}/{pnid}/messages</code> (any version). \
         Phone-number id <code>{pnid}</code>, WABA <code>{waba}</code>, business number \
         +{display}. Webhooks to: <code>{hook}</code>. Faults: {faults}.</p>\
         <p><a href=\"/_standin/phone\">Open the phone</a></p>\
         <form method=\"post\" action=\"/_standin/verify\"><button class=\"secondary\" type=\"submit\">\
         Verify the webhook URL (GET handshake)</button></form>\
         <p class=\"note\">Magic recipients (last digits of <code>to</code>): 0001 fails with 131026, \
         0002 answers 130429, 0003 answers 500, 0004 fails with 131050, 0005 is never delivered. \
         Free-form text outside a customer's 24-hour window fails with 131047.</p>",
        base = esc(&inner.base_url),
        pnid = esc(&cfg.phone_number_id),
        waba = esc(&cfg.waba_id),
        display = esc(&cfg.display_phone_number),
        hook = esc(lock(&inner.webhook_url).as_deref().unwrap_or("(none)")),
        faults = esc(&cfg.faults.describe()),
    );
    body.push_str("<h2>Templates</h2><table><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Language</th><th scope=\"col\">Category</th><th scope=\"col\">Status</th><th scope=\"col\">Body</th></tr></thead><tbody>");
    for t in &cfg.templates {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&t.name),
            esc(&t.language),
            esc(&t.category),
            esc(effective_status(&inner, t)),
            esc(&t.body)
        ));
    }
    body.push_str("</tbody></table><h2>Webhook deliveries</h2><table><thead><tr><th scope=\"col\">At (UTC)</th><th scope=\"col\">Kind</th><th scope=\"col\">Message</th><th scope=\"col\">Attempt</th><th scope=\"col\">Result</th></tr></thead><tbody>");
    for d in inner.outbox.log().iter().rev().take(200) {
        body.push_str(&delivery_row(d));
    }
    body.push_str("</tbody></table>");
    Html(page("WhatsApp stand-in", &body, true)).into_response()
}

/// One row of a deliveries table (shared with the BulkSMS page).
pub(crate) fn delivery_row(d: &OutboxDelivery) -> String {
    let mut result = match (d.status, &d.error) {
        (Some(status), _) => format!("HTTP {status}"),
        (None, Some(e)) => e.clone(),
        (None, None) => "—".into(),
    };
    if d.duplicate {
        result.push_str(" (duplicate)");
    }
    if d.discarded {
        result.push_str(" — discarded");
    }
    if d.gave_up {
        result.push_str(" — gave up");
    }
    format!(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(&phone::format_utc((d.at_ms / 1000) as i64)),
        esc(&d.kind),
        esc(&d.key),
        d.attempt,
        esc(&result),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found_in_order_once() {
        assert_eq!(placeholders("Hi {{1}}, {{2}} and {{1}}"), ["1", "2"]);
        assert_eq!(placeholders("Hi {{first_name}}!"), ["first_name"]);
        assert!(placeholders("no {{ }} {{bad-name}} {{unclosed").is_empty());
    }

    #[test]
    fn templates_render_with_positional_and_named_parameters() {
        let p = |name: Option<&str>, text: &str| Param {
            name: name.map(str::to_owned),
            text: text.into(),
        };
        assert_eq!(
            fill(
                "body",
                Some("Hi {{1}}, invoice {{2}}."),
                &[p(None, "Thandi"), p(None, "INV-1")]
            )
            .expect("fills"),
            "Hi Thandi, invoice INV-1."
        );
        assert_eq!(
            fill(
                "body",
                Some("Hi {{first_name}} from {{business}}"),
                &[p(Some("business"), "Acme"), p(Some("first_name"), "Zoë")]
            )
            .expect("fills"),
            "Hi Zoë from Acme"
        );
        let e = fill("body", Some("Hi {{1}} {{2}}"), &[p(None, "x")]).expect_err("mismatch");
        assert_eq!(e.code, 132_000);
        let e = fill("body", Some("Hi {{1}}"), &[p(None, "a\nb")]).expect_err("newline");
        assert_eq!(e.code, 132_018);
    }

    #[test]
    fn webhook_bodies_escape_non_ascii_like_meta() {
        let body = meta_json(&json!({ "text": "café 😀" }));
        assert_eq!(body, br#"{"text":"caf\u00e9 \ud83d\ude00"}"#);
        // The spec's vector 5.
        assert_eq!(
            guards::whatsapp::hub_signature("test_app_secret", &body),
            "sha256=885d452e9e5a3de2f60e6efbab79b3cde429867db038c95c655c4d2ae67b9c7e"
        );
    }

    #[test]
    fn graph_versions_are_recognised() {
        assert!(is_version("v23.0") && is_version("v25.0") && is_version("v9"));
        assert!(
            !is_version("23.0")
                && !is_version("v")
                && !is_version("vx.0")
                && !is_version("_standin")
        );
    }
}
