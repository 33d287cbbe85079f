//! A local stand-in for Xero, so the portal pushes deposits to "the books" in demos and tests
//! without a Xero organisation or network access, through its production Xero client,
//! unchanged. It speaks Xero's wire protocol as described in `research/accounting.md` (read
//! from Xero's OpenAPI spec and docs), on one listener:
//!
//! - **identity** (`login.xero.com` and `identity.xero.com` at Xero): the consent page
//!   `GET /identity/connect/authorize`, where a tester picks the organisation and clicks Allow
//!   or Deny (PKCE with S256 supported, `state` echoed); `POST /connect/token` (also `/identity/connect/token`) for the
//!   authorisation code and refresh grants, with refresh tokens that **rotate** (each refresh
//!   returns a new one; the old one is refused after Xero's grace period, see
//!   [`XeroStandinConfig::refresh_grace`]); `POST /identity/connect/revocation`;
//! - **connections** (`api.xero.com/connections`): `GET` lists the tenants, `DELETE` drops one;
//! - the **Accounting API** under `/api.xro/2.0/`: Organisation, Accounts, TaxRates, Contacts,
//!   Invoices, CreditNotes (with Allocations) and Payments, with Xero's envelope, MS-JSON dates
//!   (`/Date(ms+0000)/`), money as numbers with two decimals, `where` filters,
//!   `If-Modified-Since`, paging, `summarizeErrors`, `Idempotency-Key`, Xero's rate limits and
//!   their headers, and its error shapes (problem details for 401/403, `ValidationException`
//!   for 400, a plain-text 404).
//!
//! The books are those of one South African organisation ("Demo Company (ZA)", ZAR, 15 % VAT
//! as `OUTPUT3`), with a realistic chart of accounts including an archived account, and lock
//! dates that can be set. VAT is calculated per line and rounded to the cent before it is
//! summed, as Xero does, so the portal's own calculation can be compared to the cent.
//!
//! [`XeroFaults`] take the API down, fail or rate-limit the next calls, force a validation
//! error, slow calls down, and do what a person would do in Xero: edit a pushed invoice (so the
//! portal's conflict detection can be tested) or disconnect the app. `GET /_standin` shows the
//! books, the webhook deliveries and the recent requests, replays and 429s included.
//!
//! With a webhook URL set, every change (the portal's, or one made "in Xero") is POSTed there
//! as Xero's webhooks are: INVOICE, CONTACT and CREDITNOTE events with sequence numbers, signed
//! `x-xero-signature: base64(HMAC-SHA256(key, body))`, retried until answered `200`; and
//! [`XeroStandin::intent_to_receive`] runs Xero's "Intent to Receive" check of the URL.
//!
//! It answers JSON only: a call without `Accept: application/json` gets `406 Not Acceptable`
//! (real Xero answers XML then; a portal client that forgot the header would fail against Xero
//! too). It is not a Xero emulator: one organisation, no bank transactions, items, quotes,
//! multi-currency or attachments, and messages Xero's docs do not quote are worded
//! plausibly, not verbatim (`tests/fixtures/xero_messages.json` says which is which).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::common::{esc, lock, page};
use crate::controls::XeroFaults;
use crate::deliveries::{Notification, Outbox, OutboxConfig, accept_200};

type HmacSha256 = Hmac<Sha256>;

/// The stand-in's OAuth client id: 32 upper-case hex characters, as Xero's are. Fixed, because
/// the stand-in only listens on loopback and holds no real books.
pub const CLIENT_ID: &str = "5704E9A0C0FFEE000000000000000001";
/// The client secret that goes with [`CLIENT_ID`] (Xero's are 48 characters).
pub const CLIENT_SECRET: &str = "stoep-standin-xero-secret-not-a-real-one-0000000";
/// The one organisation's tenant id (at Xero, an organisation's tenant id is its
/// `OrganisationID`).
pub const TENANT_ID: &str = "8f2c6a1e-3b4d-4e5f-9a7b-0c1d2e3f4a5b";
/// The one organisation's name, as `/connections` and `/Organisation` give it.
pub const TENANT_NAME: &str = "Demo Company (ZA)";
/// The scopes a new app (registered after 2 March 2026) asks for: identity, offline access
/// (for a refresh token) and the granular accounting scopes the portal needs.
pub const RECOMMENDED_SCOPES: &str = "openid profile email offline_access accounting.contacts accounting.settings accounting.invoices accounting.payments";
/// The webhook signing key the stand-in signs with (`x-xero-signature`), as Xero shows one per
/// app in its developer portal.
pub const WEBHOOK_KEY: &str =
    "stoepStandinXeroWebhookKeyNotARealOne0000000000000000000000000000000000000000000000==";
/// Where the Accounting API is served (Xero: `https://api.xero.com/api.xro/2.0`).
pub const API_PATH: &str = "/api.xro/2.0";
/// Xero's plain-text answer for a resource that does not exist.
pub const NOT_FOUND_TEXT: &str = "The resource you're looking for cannot be found";
/// The message the `fail_next_invoice_validation` fault puts on an invoice (a real Xero
/// message: the plan's cap on approved invoices).
pub const FORCED_VALIDATION_MESSAGE: &str =
    "You have reached the limit of invoices you can approve";

/// Largest request body accepted (Xero's limit is 10 MB).
const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Longest `Idempotency-Key` (Xero's spec).
const MAX_IDEMPOTENCY_KEY: usize = 128;
/// Requests kept for the admin page.
const MAX_LOG: usize = 300;
/// Xero's default page size, and its largest.
const PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 1000;
/// The largest quantity (ten-thousandths: a billion units), unit amount (ten-thousandths of a
/// rand: R 10 billion) and line amount (cents: R 10 billion) accepted, so a document's sums
/// stay far inside `i64` even with the most lines a 10 MB body can hold.
const MAX_QUANTITY: i64 = 10_000_000_000_000;
const MAX_UNIT_AMOUNT: i64 = 100_000_000_000_000;
const MAX_LINE_CENTS: i64 = 1_000_000_000_000;
/// Longest `where` expression read.
const MAX_WHERE: usize = 4096;
/// How often pending "done in Xero" actions are looked at between calls.
const ACTION_TICK: Duration = Duration::from_millis(250);
/// Money and rates are rendered as numbers with a fixed number of decimals, which
/// `serde_json` cannot write from a `Value`: they travel as strings behind this
/// noncharacter and [`to_xero_json`] writes them out bare. Incoming text has it removed.
const NUMBER_MARK: char = '\u{FDD0}';
const MS_PER_DAY: i64 = 86_400_000;

// ---------------------------------------------------------------------------------------------
// Configuration and public API
// ---------------------------------------------------------------------------------------------

/// How the stand-in behaves. [`Default`] gives the fixed test credentials above, Xero's token
/// lifetimes, its rate limits, a six-minute idempotency window, no lock dates and no
/// persistence.
#[derive(Clone)]
pub struct XeroStandinConfig {
    /// The only OAuth client accepted.
    pub client_id: String,
    /// Its secret (HTTP Basic on the token and revocation endpoints, or `client_secret` in the
    /// form). A PKCE exchange may leave it out, as Xero's PKCE apps have none.
    pub client_secret: String,
    /// The registered redirect URIs, compared exactly. Empty: any `http`/`https` URI is
    /// accepted (real Xero rejects `http://127.0.0.1`; the stand-in does not).
    pub redirect_uris: Vec<String>,
    /// An app registered before 2 March 2026, which may still ask for the broad
    /// `accounting.transactions` and `accounting.reports.read` scopes. `false` (the default, a
    /// new app) refuses them with `invalid_scope`, as Xero does.
    pub legacy_app: bool,
    /// The organisation's tenant id ([`TENANT_ID`]).
    pub tenant_id: String,
    /// The organisation's name ([`TENANT_NAME`]).
    pub tenant_name: String,
    /// The app's name (`ProviderName` in every response).
    pub app_name: String,
    /// Access tokens live this long (Xero: 30 minutes).
    pub access_token_ttl: Duration,
    /// A refresh token not used for this long expires (Xero: 60 days).
    pub refresh_token_ttl: Duration,
    /// After a refresh, the refresh token it used may be used once more for this long, in
    /// case the answer was lost, as long as its successor has not been used (Xero: 30
    /// minutes). Each such retry rotates again and the lost successor stops working. Zero:
    /// the old token is refused at once.
    pub refresh_grace: Duration,
    /// Authorisation codes live this long (Xero: about 5 minutes) and work once.
    pub code_ttl: Duration,
    /// How long an `Idempotency-Key` is remembered from its first use (Xero: 6 minutes).
    pub idempotency_window: Duration,
    /// Calls per tenant per rolling minute (Xero: 60).
    pub minute_limit: u32,
    /// Calls per tenant per rolling day (Xero: 5,000; 1,000 on the Starter tier).
    pub day_limit: u32,
    /// Calls per tenant in flight at once (Xero: 5).
    pub concurrent_limit: u32,
    /// Calls per app per rolling minute, all tenants (Xero: 10,000).
    pub app_minute_limit: u32,
    /// The end-of-year lock date: documents dated on or before it are refused.
    pub end_of_year_lock_date: Option<time::Date>,
    /// The period lock date (at or after the end-of-year one when both are set).
    pub period_lock_date: Option<time::Date>,
    /// Fault switches and pending "done in Xero" actions, read at each call.
    pub faults: Arc<XeroFaults>,
    /// If set, grants, tokens, the books and idempotency keys are saved here as JSON after
    /// each change and loaded at start.
    pub state_file: Option<PathBuf>,
    /// The app's webhook URL: INVOICE, CONTACT and CREDITNOTE events are POSTed here,
    /// signed, after every change (the portal's own and those made "in Xero"). `None`: no
    /// webhooks (they are optional at Xero too).
    pub webhook_url: Option<String>,
    /// Signs the webhooks ([`WEBHOOK_KEY`]).
    pub webhook_key: String,
    /// Delays between webhook attempts; after the last one the payload is given up (Xero
    /// retries for up to 24 hours; this is that schedule compressed).
    pub webhook_retry_schedule: Vec<Duration>,
}

impl XeroStandinConfig {
    /// Xero's "decreasing frequency" retries, compressed: 1 s, 5 s, 15 s, 30 s, 1 min, 2 min,
    /// 5 min.
    pub fn default_webhook_retry_schedule() -> Vec<Duration> {
        [1, 5, 15, 30, 60, 120, 300]
            .into_iter()
            .map(Duration::from_secs)
            .collect()
    }
}

impl Default for XeroStandinConfig {
    fn default() -> Self {
        Self {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_uris: Vec::new(),
            legacy_app: false,
            tenant_id: TENANT_ID.into(),
            tenant_name: TENANT_NAME.into(),
            app_name: "Stoep".into(),
            access_token_ttl: Duration::from_secs(30 * 60),
            refresh_token_ttl: Duration::from_secs(60 * 24 * 60 * 60),
            refresh_grace: Duration::from_secs(30 * 60),
            code_ttl: Duration::from_secs(5 * 60),
            idempotency_window: Duration::from_secs(6 * 60),
            minute_limit: 60,
            day_limit: 5_000,
            concurrent_limit: 5,
            app_minute_limit: 10_000,
            end_of_year_lock_date: None,
            period_lock_date: None,
            faults: Arc::default(),
            state_file: None,
            webhook_url: None,
            webhook_key: WEBHOOK_KEY.into(),
            webhook_retry_schedule: Self::default_webhook_retry_schedule(),
        }
    }
}

/// The secret stays out of logs.
impl fmt::Debug for XeroStandinConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XeroStandinConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"****")
            .field("redirect_uris", &self.redirect_uris)
            .field("legacy_app", &self.legacy_app)
            .field("tenant_id", &self.tenant_id)
            .field("tenant_name", &self.tenant_name)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_grace", &self.refresh_grace)
            .field("idempotency_window", &self.idempotency_window)
            .field("minute_limit", &self.minute_limit)
            .field("day_limit", &self.day_limit)
            .field("concurrent_limit", &self.concurrent_limit)
            .field("end_of_year_lock_date", &self.end_of_year_lock_date)
            .field("period_lock_date", &self.period_lock_date)
            .field("faults", &self.faults)
            .field("state_file", &self.state_file)
            .field("webhook_url", &self.webhook_url)
            .field("webhook_key", &"****")
            .finish_non_exhaustive()
    }
}

/// What an "edit in Xero" changes on an invoice ([`XeroStandin::edit_invoice_in_xero`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XeroEdit {
    /// The due date moves a week later and the first line's description gets
    /// " (edited in Xero)": the totals stay the same.
    Details,
    /// The first line's amount becomes this many cents (quantity 1), and the totals follow.
    /// Refused on an invoice with payments or credit allocated, as Xero refuses it.
    Amount(i64),
    /// The invoice is voided. Refused on an invoice with payments, as Xero refuses it.
    Void,
}

/// The outcome of [`XeroStandin::intent_to_receive`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntentToReceive {
    /// Each payload sent: whether it was signed correctly, and the status answered (0: no
    /// answer in time).
    pub attempts: Vec<(bool, u16)>,
    /// `200` to every signed payload and `401` to every other.
    pub passed: bool,
}

/// One Accounting API or identity request, as the admin page lists it.
#[derive(Clone, Debug, Serialize)]
pub struct XeroRequest {
    /// Milliseconds since the Unix epoch (stand-in clock).
    pub at_ms: u64,
    pub method: String,
    /// Path and query.
    pub path: String,
    pub status: u16,
    /// What else happened: "idempotent replay", "429 minute", "fault: 500", ...
    pub note: String,
}

/// A running stand-in. Cheap to clone; it stops when the `shutdown` token given to
/// [`XeroStandin::start`] is cancelled.
#[derive(Clone)]
pub struct XeroStandin {
    inner: Arc<Inner>,
}

impl fmt::Debug for XeroStandin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XeroStandin")
            .field("base_url", &self.inner.base_url)
            .finish_non_exhaustive()
    }
}

impl XeroStandin {
    /// Serves the stand-in on `listener` (bind `127.0.0.1:0` in tests). Loads `state_file`
    /// if it exists.
    pub async fn start(
        listener: TcpListener,
        cfg: XeroStandinConfig,
        shutdown: CancellationToken,
    ) -> std::io::Result<XeroStandin> {
        let addr = listener.local_addr()?;
        let mut store: Store = match &cfg.state_file {
            Some(path) => crate::common::load_state(path, "Xero").await?,
            None => Store::default(),
        };
        if store.lock_dates.is_none() {
            store.lock_dates = Some(LockDates {
                end_of_year: cfg.end_of_year_lock_date.map(date_to_days),
                period: cfg.period_lock_date.map(date_to_days),
            });
        }
        let mut key = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut key[..]);
        let webhook_key = cfg.webhook_key.clone().into_bytes();
        let outbox = Outbox::start(
            OutboxConfig {
                name: "Xero webhooks".into(),
                retry_schedule: cfg.webhook_retry_schedule.clone(),
                timeout: Duration::from_secs(5),
                accept: accept_200,
                signer: Arc::new(move |_, body| {
                    vec![
                        (
                            "x-xero-signature".to_owned(),
                            webhook_signature(&webhook_key, body),
                        ),
                        (
                            "User-Agent".to_owned(),
                            "Xero-Webhooks (Stoep stand-in)".to_owned(),
                        ),
                    ]
                }),
                faults: cfg.faults.webhooks.clone(),
            },
            shutdown.clone(),
        )?;
        let inner = Arc::new(Inner {
            webhook_url: Mutex::new(cfg.webhook_url.clone()),
            outbox,
            base_url: format!("http://{addr}"),
            cfg,
            store: Mutex::new(store),
            limits: Mutex::new(Limits::default()),
            in_flight: AtomicU32::new(0),
            clock_offset_ms: AtomicU64::new(0),
            log: Mutex::new(VecDeque::new()),
            token_key: key,
        });
        let router = Router::new()
            .route(
                "/identity/connect/authorize",
                get(show_consent).post(submit_consent),
            )
            // Xero's paths on identity.xero.com, and the same under /identity (as on
            // login.xero.com), so either base URL works.
            .route("/connect/token", post(token))
            .route("/connect/revocation", post(revoke))
            .route("/identity/connect/token", post(token))
            .route("/identity/connect/revocation", post(revoke))
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/connections", get(list_connections))
            .route("/connections/{id}", any(delete_connection))
            .route(&format!("{API_PATH}/{{*rest}}"), any(handle_api))
            .route("/_standin", get(show_admin))
            .route("/_standin/edit", post(admin_edit))
            .route("/_standin/revoke", post(admin_revoke))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(inner.clone());
        let server_shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(server_shutdown.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "the Xero stand-in stopped serving");
            }
        });
        let ticker = inner.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(ACTION_TICK) => ticker.apply_pending_actions(),
                }
            }
        });
        tracing::info!(base_url = %inner.base_url, "Xero stand-in listening");
        Ok(XeroStandin { inner })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash. Xero's three hosts (login, identity,
    /// api) are all this one.
    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// The consent page (Xero: `https://login.xero.com/identity/connect/authorize`).
    pub fn authorize_url(&self) -> String {
        format!("{}/identity/connect/authorize", self.inner.base_url)
    }

    /// The token endpoint (Xero: `https://identity.xero.com/connect/token`). Also served at
    /// `/identity/connect/token`.
    pub fn token_url(&self) -> String {
        format!("{}/connect/token", self.inner.base_url)
    }

    /// The revocation endpoint (Xero: `https://identity.xero.com/connect/revocation`). Also
    /// served at `/identity/connect/revocation`.
    pub fn revocation_url(&self) -> String {
        format!("{}/connect/revocation", self.inner.base_url)
    }

    /// The connections endpoint (Xero: `https://api.xero.com/connections`).
    pub fn connections_url(&self) -> String {
        format!("{}/connections", self.inner.base_url)
    }

    /// The Accounting API's base, without a trailing slash (Xero:
    /// `https://api.xero.com/api.xro/2.0`).
    pub fn api_url(&self) -> String {
        format!("{}{API_PATH}", self.inner.base_url)
    }

    /// The client id it accepts.
    pub fn client_id(&self) -> &str {
        &self.inner.cfg.client_id
    }

    /// The client secret it accepts.
    pub fn client_secret(&self) -> &str {
        &self.inner.cfg.client_secret
    }

    /// The organisation's tenant id.
    pub fn tenant_id(&self) -> &str {
        &self.inner.cfg.tenant_id
    }

    /// The fault switches (shared with whoever passed them in).
    pub fn faults(&self) -> &Arc<XeroFaults> {
        &self.inner.cfg.faults
    }

    /// Moves the stand-in's clock forward (token and code expiry, the idempotency window,
    /// the rate-limit windows and every timestamp it writes).
    pub fn advance_clock(&self, by: Duration) {
        self.inner
            .clock_offset_ms
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    /// The stand-in's clock, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.inner.now_ms()
    }

    /// Makes every access token issued so far expired, so the next call gets `401
    /// TokenExpired` and the portal has to refresh.
    pub fn expire_access_tokens(&self) {
        let now = self.inner.now_ms();
        self.inner.mutate(|store| {
            for t in store.access_tokens.values_mut() {
                t.expires_ms = t.expires_ms.min(now.saturating_sub(1));
            }
        });
    }

    /// The user disconnects the app in Xero: every grant, token and connection goes.
    pub fn revoke_all_grants(&self) {
        self.inner
            .mutate(|store| store.revoke_client(&self.inner.cfg.client_id));
    }

    /// Sets (or clears) the lock dates.
    pub fn set_lock_dates(&self, end_of_year: Option<time::Date>, period: Option<time::Date>) {
        self.inner.mutate(|store| {
            store.lock_dates = Some(LockDates {
                end_of_year: end_of_year.map(date_to_days),
                period: period.map(date_to_days),
            });
        });
    }

    /// Changes an invoice (by `InvoiceID` or `InvoiceNumber`) as a bookkeeper would in Xero,
    /// bumping its `UpdatedDateUTC`. Returns the invoice as the API now gives it.
    pub fn edit_invoice_in_xero(
        &self,
        id_or_number: &str,
        edit: XeroEdit,
    ) -> Result<Value, String> {
        let now = self.inner.now_ms();
        self.inner.mutate(|store| {
            let idx = store
                .books
                .doc_index(DocKind::Invoice, id_or_number)
                .ok_or("no such invoice")?;
            store.books.edit_in_xero(idx, edit, now)?;
            Ok(unmark(render_doc(
                &store.books,
                &store.books.docs[idx],
                true,
                false,
            )))
        })
    }

    /// Edits the most recently written invoice that is still open (DRAFT, SUBMITTED or
    /// AUTHORISED), as the `edit_latest_invoice` fault does. Returns it, or `None` if there is
    /// none.
    pub fn edit_latest_invoice_in_xero(&self) -> Option<Value> {
        let now = self.inner.now_ms();
        self.inner.mutate(|store| {
            let idx = store.books.latest_open_invoice()?;
            store.books.edit_in_xero(idx, XeroEdit::Details, now).ok()?;
            Some(unmark(render_doc(
                &store.books,
                &store.books.docs[idx],
                true,
                false,
            )))
        })
    }

    /// Every contact, as `GET /Contacts` gives them (archived ones included).
    pub fn contacts(&self) -> Vec<Value> {
        let store = lock(&self.inner.store);
        store
            .books
            .contacts
            .iter()
            .map(|c| unmark(render_contact(c)))
            .collect()
    }

    /// Every invoice, with its lines, as `GET /Invoices/{id}` gives it.
    pub fn invoices(&self) -> Vec<Value> {
        self.docs(DocKind::Invoice)
    }

    /// Every credit note, with its lines and allocations.
    pub fn credit_notes(&self) -> Vec<Value> {
        self.docs(DocKind::CreditNote)
    }

    /// Every payment (refunds of credit notes included), as `GET /Payments` gives them.
    pub fn payments(&self) -> Vec<Value> {
        let store = lock(&self.inner.store);
        store
            .books
            .payments
            .iter()
            .map(|p| unmark(render_payment(&store.books, p)))
            .collect()
    }

    /// Where webhooks go from now on (`None`: none are sent).
    pub fn set_webhook_url(&self, url: Option<String>) {
        *lock(&self.inner.webhook_url) = url;
    }

    /// The webhook outbox (its log, what is pending, `wait_idle`).
    pub fn webhooks(&self) -> &Outbox {
        &self.inner.outbox
    }

    /// Xero's "Intent to Receive" check of the webhook URL: a series of empty payloads, some
    /// signed with the key and some not. The URL passes when it answers `200` to each signed
    /// one and `401` to each other, within 5 seconds, as Xero requires before it sends events.
    pub async fn intent_to_receive(&self) -> Result<IntentToReceive, String> {
        let url = lock(&self.inner.webhook_url)
            .clone()
            .ok_or("no webhook URL is set")?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        let mut attempts = Vec::new();
        for signed in [true, false, true, false] {
            let body = json!({
                "events": [],
                "firstEventSequence": 0,
                "lastEventSequence": 0,
                "entropy": random_hex(10).to_uppercase(),
            })
            .to_string();
            let key = if signed {
                self.inner.cfg.webhook_key.clone()
            } else {
                format!("not-{}", self.inner.cfg.webhook_key)
            };
            let status = http
                .post(&url)
                .header("content-type", "application/json")
                .header(
                    "x-xero-signature",
                    webhook_signature(key.as_bytes(), body.as_bytes()),
                )
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            attempts.push((signed, status));
        }
        let passed = attempts
            .iter()
            .all(|&(signed, status)| status == if signed { 200 } else { 401 });
        self.inner.record(
            "POST",
            &url,
            0,
            format!(
                "intent to receive: {}",
                if passed { "passed" } else { "failed" }
            ),
        );
        Ok(IntentToReceive { attempts, passed })
    }

    /// The requests seen, oldest first (the last few hundred).
    pub fn requests(&self) -> Vec<XeroRequest> {
        lock(&self.inner.log).iter().cloned().collect()
    }

    fn docs(&self, kind: DocKind) -> Vec<Value> {
        let store = lock(&self.inner.store);
        store
            .books
            .docs
            .iter()
            .filter(|d| d.kind == kind)
            .map(|d| unmark(render_doc(&store.books, d, true, false)))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------------------

struct Inner {
    cfg: XeroStandinConfig,
    base_url: String,
    store: Mutex<Store>,
    limits: Mutex<Limits>,
    in_flight: AtomicU32,
    clock_offset_ms: AtomicU64,
    log: Mutex<VecDeque<XeroRequest>>,
    /// Signs the JWT-shaped access tokens (their signature is never checked: tokens are looked
    /// up, as at Xero, where they are opaque to a client).
    token_key: [u8; 32],
    webhook_url: Mutex<Option<String>>,
    outbox: Outbox,
}

impl Inner {
    fn now_ms(&self) -> u64 {
        crate::common::now_ms() + self.clock_offset_ms.load(Ordering::SeqCst)
    }

    /// Runs one change against the store and saves the state if a file is configured.
    fn mutate<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let mut store = lock(&self.store);
        let before = snapshot(&store.books);
        let result = f(&mut store);
        self.emit_changes(&mut store, &before);
        if let Some(path) = &self.cfg.state_file {
            crate::common::save_state(path, &*store, "Xero");
        }
        result
    }

    fn record(&self, method: &str, path: &str, status: u16, note: impl Into<String>) {
        let mut log = lock(&self.log);
        if log.len() >= MAX_LOG {
            log.pop_front();
        }
        log.push_back(XeroRequest {
            at_ms: self.now_ms(),
            method: method.to_owned(),
            path: path.to_owned(),
            status,
            note: note.into(),
        });
    }

    /// Carries out the "done in Xero" actions the faults ask for.
    fn apply_pending_actions(&self) {
        let faults = &self.cfg.faults;
        if faults.revoke_grants.swap(false, Ordering::SeqCst) {
            self.mutate(|store| store.revoke_client(&self.cfg.client_id));
            self.record("-", "(disconnected in Xero)", 0, "grants revoked");
        }
        while crate::controls::take_one(&faults.edit_latest_invoice) {
            let now = self.now_ms();
            let edited = self.mutate(|store| {
                let idx = store.books.latest_open_invoice()?;
                store.books.edit_in_xero(idx, XeroEdit::Details, now).ok()?;
                store.books.docs[idx].number.clone()
            });
            self.record(
                "-",
                "(edited in Xero)",
                0,
                edited.map_or("no open invoice to edit".into(), |n| format!("{n} edited")),
            );
        }
    }
}

#[derive(Default, Serialize, Deserialize)]
struct Store {
    codes: Vec<AuthCode>,
    grants: Vec<Grant>,
    connections: Vec<Connection>,
    access_tokens: HashMap<String, AccessToken>,
    books: Books,
    idempotency: Vec<SavedResponse>,
    lock_dates: Option<LockDates>,
    /// The last webhook event sequence number used.
    #[serde(default)]
    webhook_seq: u64,
}

#[derive(Clone, Copy, Default, Serialize, Deserialize)]
struct LockDates {
    end_of_year: Option<i64>,
    period: Option<i64>,
}

#[derive(Clone, Serialize, Deserialize)]
struct AuthCode {
    code: String,
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    tenant_id: String,
    challenge: Option<String>,
    created_ms: u64,
    used: bool,
}

/// One authorisation (Xero's "authentication event") and its chain of refresh tokens.
#[derive(Clone, Serialize, Deserialize)]
struct Grant {
    auth_event_id: String,
    client_id: String,
    user_id: String,
    scopes: Vec<String>,
    /// Authorised with PKCE and no secret: refreshes need only the client id.
    public: bool,
    created_ms: u64,
    revoked: bool,
    refresh_tokens: Vec<RefreshToken>,
}

#[derive(Clone, Serialize, Deserialize)]
struct RefreshToken {
    token: String,
    issued_ms: u64,
    /// When it was used to refresh (it then has a successor).
    used_ms: Option<u64>,
    /// Refused from now on (replaced during a grace retry, or revoked).
    dead: bool,
}

#[derive(Clone, Serialize, Deserialize)]
struct Connection {
    id: String,
    client_id: String,
    auth_event_id: String,
    tenant_id: String,
    created_ms: u64,
    updated_ms: u64,
}

#[derive(Clone, Serialize, Deserialize)]
struct AccessToken {
    auth_event_id: String,
    client_id: String,
    scopes: Vec<String>,
    expires_ms: u64,
}

/// A response kept for an `Idempotency-Key`.
#[derive(Clone, Serialize, Deserialize)]
struct SavedResponse {
    client_id: String,
    key: String,
    /// SHA-256 of method, path and query, and body.
    fingerprint: String,
    status: u16,
    body: String,
    content_type: String,
    created_ms: u64,
}

impl Store {
    /// Revokes every grant of `client_id`, its tokens and its connections.
    fn revoke_client(&mut self, client_id: &str) {
        for g in self.grants.iter_mut().filter(|g| g.client_id == client_id) {
            g.revoked = true;
            for t in &mut g.refresh_tokens {
                t.dead = true;
            }
        }
        self.access_tokens.retain(|_, t| t.client_id != client_id);
        self.connections.retain(|c| c.client_id != client_id);
    }
}

/// The rolling windows of the rate limits (milliseconds of each counted call).
#[derive(Default)]
struct Limits {
    minute: VecDeque<u64>,
    day: VecDeque<u64>,
    app_minute: VecDeque<u64>,
}

/// The remaining counts, for the `X-*Limit-Remaining` headers.
#[derive(Clone, Copy)]
struct Remaining {
    minute: u32,
    day: u32,
    app_minute: u32,
}

impl Limits {
    fn prune(&mut self, now: u64) {
        let minute_ago = now.saturating_sub(60_000);
        let day_ago = now.saturating_sub(MS_PER_DAY as u64);
        while self.minute.front().is_some_and(|&t| t <= minute_ago) {
            self.minute.pop_front();
        }
        while self.app_minute.front().is_some_and(|&t| t <= minute_ago) {
            self.app_minute.pop_front();
        }
        while self.day.front().is_some_and(|&t| t <= day_ago) {
            self.day.pop_front();
        }
    }

    fn remaining(&self, cfg: &XeroStandinConfig) -> Remaining {
        let left = |limit: u32, used: usize| limit.saturating_sub(used as u32);
        Remaining {
            minute: left(cfg.minute_limit, self.minute.len()),
            day: left(cfg.day_limit, self.day.len()),
            app_minute: left(cfg.app_minute_limit, self.app_minute.len()),
        }
    }

    /// Counts a tenanted call, or says which limit it breaks and when to come back (seconds).
    fn take(
        &mut self,
        cfg: &XeroStandinConfig,
        now: u64,
    ) -> Result<Remaining, (&'static str, u64)> {
        self.prune(now);
        let wait = |oldest: Option<&u64>, window: u64| {
            oldest.map_or(1, |&t| {
                (t + window).saturating_sub(now).div_ceil(1000).max(1)
            })
        };
        if self.day.len() >= cfg.day_limit as usize {
            return Err(("day", wait(self.day.front(), MS_PER_DAY as u64)));
        }
        if self.minute.len() >= cfg.minute_limit as usize {
            return Err(("minute", wait(self.minute.front(), 60_000)));
        }
        if self.app_minute.len() >= cfg.app_minute_limit as usize {
            return Err(("appminute", wait(self.app_minute.front(), 60_000)));
        }
        self.minute.push_back(now);
        self.day.push_back(now);
        self.app_minute.push_back(now);
        Ok(self.remaining(cfg))
    }

    /// Counts a tenantless call against the app limit only.
    fn take_app(&mut self, cfg: &XeroStandinConfig, now: u64) -> u32 {
        self.prune(now);
        if self.app_minute.len() < cfg.app_minute_limit as usize {
            self.app_minute.push_back(now);
        }
        cfg.app_minute_limit
            .saturating_sub(self.app_minute.len() as u32)
    }
}

/// Decrements the in-flight count when a call ends, however it ends.
struct InFlight<'a>(&'a AtomicU32);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------
// The books: chart of accounts, tax rates, contacts, invoices, credit notes, payments
// ---------------------------------------------------------------------------------------------

/// One account of the chart (fixed: the stand-in's chart cannot be edited).
struct AccountDef {
    code: &'static str,
    name: &'static str,
    /// Xero's account `Type`.
    kind: &'static str,
    tax_type: &'static str,
    status: &'static str,
    enable_payments: bool,
    /// Xero's `SystemAccount` (DEBTORS, CREDITORS, GST, ...), which documents cannot use.
    system: Option<&'static str>,
    bank_account_number: Option<&'static str>,
    description: &'static str,
}

/// A South African chart much like Xero's SA demo company: a bank account (BANK accounts take
/// payments whatever `EnablePaymentsToAccount` says, and Xero reports `false` for them), a
/// clearing account that takes payments because it is enabled to, sales on 200, and an
/// archived legacy sales account (4000).
const ACCOUNTS: &[AccountDef] = &[
    AccountDef {
        code: "090",
        name: "Business Bank Account",
        kind: "BANK",
        tax_type: "NONE",
        status: "ACTIVE",
        enable_payments: false,
        system: None,
        bank_account_number: Some("62001234567"),
        description: "",
    },
    AccountDef {
        code: "091",
        name: "Business Savings Account",
        kind: "BANK",
        tax_type: "NONE",
        status: "ACTIVE",
        enable_payments: false,
        system: None,
        bank_account_number: Some("62007654321"),
        description: "",
    },
    AccountDef {
        code: "200",
        name: "Sales",
        kind: "REVENUE",
        tax_type: "OUTPUT3",
        status: "ACTIVE",
        enable_payments: false,
        system: None,
        bank_account_number: None,
        description: "Income from any normal business activity",
    },
    AccountDef {
        code: "260",
        name: "Other Revenue",
        kind: "REVENUE",
        tax_type: "OUTPUT3",
        status: "ACTIVE",
        enable_payments: false,
        system: None,
        bank_account_number: None,
        description: "Any other income that does not relate to normal business activities and is not recurring",
    },
    AccountDef {
        code: "270",
        name: "Interest Income",
        kind: "REVENUE",
        tax_type: "EXEMPTOUTPUT",
        status: "ACTIVE",
        enable_payments: false,
        system: None,
        bank_account_number: None,
        description: "Interest income",
    },
    AccountDef {
        code: "310",
        name: "Cost of Goods Sold",
        kind: "DIRECTCOSTS",
        tax_type: "INPUT3",
        status: "ACTIVE",
        enable_payments: false,
        system: None,
        bank_account_number: None,
        description: "Cost of goods sold by the business",
    },
    AccountDef {
        code: "400",
        name: "Advertising",
        kind: "OVERHEADS",
        tax_type: "INPUT3",
        status: "ACTIVE",
        enable_payments: false,
        system: None,
        bank_account_number: None,
        description: "Expenses incurred for advertising while trying to increase sales",
    },
    AccountDef {
        code: "404",
        name: "Bank Fees",
        kind: "OVERHEADS",
        tax_type: "INPUT3",
        status: "ACTIVE",
        enable_payments: false,
        system: None,
        bank_account_number: None,
        description: "Fees charged by your bank and payment providers",
    },
    AccountDef {
        code: "477",
        name: "Salaries",
        kind: "OVERHEADS",
        tax_type: "NONE",
        status: "ACTIVE",
        enable_payments: false,
        system: None,
        bank_account_number: None,
        description: "Payment to employees in exchange for their services",
    },
    AccountDef {
        code: "610",
        name: "Accounts Receivable",
        kind: "CURRENT",
        tax_type: "NONE",
        status: "ACTIVE",
        enable_payments: false,
        system: Some("DEBTORS"),
        bank_account_number: None,
        description: "Outstanding invoices the company has issued out to the client but has not yet received in cash at balance date.",
    },
    AccountDef {
        code: "612",
        name: "Card and Instant EFT Clearing",
        kind: "CURRENT",
        tax_type: "NONE",
        status: "ACTIVE",
        enable_payments: true,
        system: None,
        bank_account_number: None,
        description: "Deposits taken by card or instant EFT, waiting for the payout",
    },
    AccountDef {
        code: "800",
        name: "Accounts Payable",
        kind: "CURRLIAB",
        tax_type: "NONE",
        status: "ACTIVE",
        enable_payments: false,
        system: Some("CREDITORS"),
        bank_account_number: None,
        description: "Outstanding invoices the company has received from suppliers but has not yet paid at balance date",
    },
    AccountDef {
        code: "820",
        name: "VAT",
        kind: "CURRLIAB",
        tax_type: "NONE",
        status: "ACTIVE",
        enable_payments: false,
        system: Some("GST"),
        bank_account_number: None,
        description: "The balance in this account represents VAT owing to or from SARS",
    },
    AccountDef {
        code: "960",
        name: "Retained Earnings",
        kind: "EQUITY",
        tax_type: "NONE",
        status: "ACTIVE",
        enable_payments: false,
        system: Some("RETAINEDEARNINGS"),
        bank_account_number: None,
        description: "Do not Use",
    },
    AccountDef {
        code: "4000",
        name: "Sales - Legacy",
        kind: "REVENUE",
        tax_type: "OUTPUT",
        status: "ARCHIVED",
        enable_payments: false,
        system: None,
        bank_account_number: None,
        description: "Sales before the move to account 200",
    },
];

fn account_class(kind: &str) -> &'static str {
    match kind {
        "BANK" | "CURRENT" | "FIXED" | "INVENTORY" | "NONCURRENT" | "PREPAYMENT" => "ASSET",
        "CURRLIAB" | "LIABILITY" | "TERMLIAB" => "LIABILITY",
        "EQUITY" => "EQUITY",
        "REVENUE" | "SALES" | "OTHERINCOME" => "REVENUE",
        _ => "EXPENSE",
    }
}

/// A stable AccountID from the code, so ids survive restarts.
fn account_id(code: &str) -> String {
    format!("ac0a0000-0000-4000-8000-{code:0>12}")
}

fn find_account(code_or_id: &str) -> Option<&'static AccountDef> {
    ACCOUNTS
        .iter()
        .find(|a| a.code == code_or_id || account_id(a.code).eq_ignore_ascii_case(code_or_id))
}

/// One tax rate (South Africa's defaults, from Xero's "Types and codes").
struct TaxRateDef {
    tax_type: &'static str,
    name: &'static str,
    /// Hundredths of a percent: 1500 is 15 %.
    rate: i64,
    report_tax_type: &'static str,
    revenue: bool,
    expenses: bool,
}

const TAX_RATES: &[TaxRateDef] = &[
    TaxRateDef {
        tax_type: "OUTPUT3",
        name: "Standard Rate Sales",
        rate: 1500,
        report_tax_type: "OUTPUT",
        revenue: true,
        expenses: false,
    },
    TaxRateDef {
        tax_type: "OUTPUT",
        name: "Old Standard Rate Sales",
        rate: 1400,
        report_tax_type: "OUTPUT",
        revenue: true,
        expenses: false,
    },
    TaxRateDef {
        tax_type: "SROUTPUT2",
        name: "Standard Rate Sales - Capital Goods",
        rate: 1500,
        report_tax_type: "OUTPUT",
        revenue: true,
        expenses: false,
    },
    TaxRateDef {
        tax_type: "OUTPUT4",
        name: "Change in use and Export of Second-hand Goods",
        rate: 1500,
        report_tax_type: "OUTPUT",
        revenue: true,
        expenses: false,
    },
    TaxRateDef {
        tax_type: "ZERORATED",
        name: "Zero Rate (excluding goods exported)",
        rate: 0,
        report_tax_type: "ZERORATEDOUTPUT",
        revenue: true,
        expenses: true,
    },
    TaxRateDef {
        tax_type: "ZERORATEDOUTPUT",
        name: "Zero Rate (only exported goods)",
        rate: 0,
        report_tax_type: "ZERORATEDOUTPUT",
        revenue: true,
        expenses: false,
    },
    TaxRateDef {
        tax_type: "EXEMPTOUTPUT",
        name: "Exempt and Non-Supplies",
        rate: 0,
        report_tax_type: "EXEMPTOUTPUT",
        revenue: true,
        expenses: true,
    },
    TaxRateDef {
        tax_type: "NONE",
        name: "No VAT",
        rate: 0,
        report_tax_type: "NONE",
        revenue: true,
        expenses: true,
    },
    TaxRateDef {
        tax_type: "INPUT3",
        name: "Standard Rate Purchases",
        rate: 1500,
        report_tax_type: "INPUT",
        revenue: false,
        expenses: true,
    },
    TaxRateDef {
        tax_type: "INPUT",
        name: "Old Standard Rate Purchases",
        rate: 1400,
        report_tax_type: "INPUT",
        revenue: false,
        expenses: true,
    },
];

fn find_tax_rate(tax_type: &str) -> Option<&'static TaxRateDef> {
    TAX_RATES
        .iter()
        .find(|t| t.tax_type.eq_ignore_ascii_case(tax_type))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum DocKind {
    Invoice,
    CreditNote,
}

impl DocKind {
    fn collection(self) -> &'static str {
        match self {
            DocKind::Invoice => "Invoices",
            DocKind::CreditNote => "CreditNotes",
        }
    }
    fn id_field(self) -> &'static str {
        match self {
            DocKind::Invoice => "InvoiceID",
            DocKind::CreditNote => "CreditNoteID",
        }
    }
    fn number_field(self) -> &'static str {
        match self {
            DocKind::Invoice => "InvoiceNumber",
            DocKind::CreditNote => "CreditNoteNumber",
        }
    }
    fn noun(self) -> &'static str {
        match self {
            DocKind::Invoice => "Invoice",
            DocKind::CreditNote => "Credit Note",
        }
    }
    fn types(self) -> [&'static str; 2] {
        match self {
            DocKind::Invoice => ["ACCREC", "ACCPAY"],
            DocKind::CreditNote => ["ACCRECCREDIT", "ACCPAYCREDIT"],
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct Contact {
    id: String,
    name: String,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    contact_number: Option<String>,
    account_number: Option<String>,
    tax_number: Option<String>,
    status: String,
    phones: Vec<Value>,
    addresses: Vec<Value>,
    is_customer: bool,
    is_supplier: bool,
    updated_ms: u64,
}

#[derive(Clone, Serialize, Deserialize)]
struct Line {
    id: String,
    description: String,
    /// Ten-thousandths.
    quantity: i64,
    /// Ten-thousandths of a rand.
    unit_amount: i64,
    /// Hundredths of a percent.
    discount_rate: Option<i64>,
    account_code: Option<String>,
    tax_type: String,
    /// Cents.
    tax_amount: i64,
    /// Cents (gross for an inclusive document, as Xero gives it).
    line_amount: i64,
    item_code: Option<String>,
    tracking: Vec<Value>,
}

/// An invoice or a credit note: they share their fields and their arithmetic.
#[derive(Clone, Serialize, Deserialize)]
struct Doc {
    id: String,
    kind: DocKind,
    doc_type: String,
    number: Option<String>,
    reference: Option<String>,
    contact_id: String,
    /// Days since the Unix epoch.
    date: i64,
    due_date: Option<i64>,
    line_amount_types: String,
    status: String,
    currency: String,
    lines: Vec<Line>,
    sub_total: i64,
    total_tax: i64,
    total: i64,
    url: Option<String>,
    updated_ms: u64,
    /// The client id of the app that created it (`createdByMyApp`).
    created_by: Option<String>,
    fully_paid_on: Option<i64>,
    /// Times it was edited "in Xero" (shown on the admin page).
    edits_in_xero: u32,
}

#[derive(Clone, Serialize, Deserialize)]
struct Payment {
    id: String,
    /// The invoice's or credit note's id.
    doc_id: String,
    account_code: String,
    date: i64,
    amount: i64,
    reference: Option<String>,
    status: String,
    is_reconciled: bool,
    updated_ms: u64,
}

#[derive(Clone, Serialize, Deserialize)]
struct Allocation {
    id: String,
    credit_note_id: String,
    invoice_id: String,
    amount: i64,
    date: i64,
    deleted: bool,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Books {
    contacts: Vec<Contact>,
    docs: Vec<Doc>,
    payments: Vec<Payment>,
    allocations: Vec<Allocation>,
    invoice_seq: u32,
    credit_note_seq: u32,
}

impl Books {
    fn contact(&self, id: &str) -> Option<&Contact> {
        self.contacts.iter().find(|c| c.id.eq_ignore_ascii_case(id))
    }

    fn contact_index_by(&self, id_or_number: &str) -> Option<usize> {
        self.contacts
            .iter()
            .position(|c| c.id.eq_ignore_ascii_case(id_or_number))
            .or_else(|| {
                self.contacts
                    .iter()
                    .position(|c| c.contact_number.as_deref() == Some(id_or_number))
            })
    }

    fn doc_index(&self, kind: DocKind, id_or_number: &str) -> Option<usize> {
        self.docs
            .iter()
            .position(|d| d.kind == kind && d.id.eq_ignore_ascii_case(id_or_number))
            .or_else(|| {
                self.docs
                    .iter()
                    .position(|d| d.kind == kind && d.number.as_deref() == Some(id_or_number))
            })
    }

    fn doc_by_id(&self, id: &str) -> Option<&Doc> {
        self.docs.iter().find(|d| d.id.eq_ignore_ascii_case(id))
    }

    /// Cents paid against a document (refunded, for a credit note).
    fn paid(&self, doc_id: &str) -> i64 {
        self.payments
            .iter()
            .filter(|p| p.doc_id == doc_id && p.status == "AUTHORISED")
            .map(|p| p.amount)
            .sum()
    }

    /// Cents of credit allocated to an invoice.
    fn credited(&self, invoice_id: &str) -> i64 {
        self.allocations
            .iter()
            .filter(|a| a.invoice_id == invoice_id && !a.deleted)
            .map(|a| a.amount)
            .sum()
    }

    /// Cents of a credit note allocated to invoices.
    fn allocated(&self, credit_note_id: &str) -> i64 {
        self.allocations
            .iter()
            .filter(|a| a.credit_note_id == credit_note_id && !a.deleted)
            .map(|a| a.amount)
            .sum()
    }

    /// What is still due on an invoice, or still to use of a credit note.
    fn outstanding(&self, d: &Doc) -> i64 {
        if matches!(d.status.as_str(), "VOIDED" | "DELETED") {
            return 0;
        }
        match d.kind {
            DocKind::Invoice => d.total - self.paid(&d.id) - self.credited(&d.id),
            DocKind::CreditNote => d.total - self.paid(&d.id) - self.allocated(&d.id),
        }
    }

    /// An AUTHORISED document with nothing outstanding becomes PAID, and a PAID one with
    /// something outstanding again (a payment deleted) goes back to AUTHORISED.
    fn settle(&mut self, doc_id: &str, on_day: i64, now: u64) {
        let Some(idx) = self.docs.iter().position(|d| d.id == doc_id) else {
            return;
        };
        let left = self.outstanding(&self.docs[idx]);
        let d = &mut self.docs[idx];
        if d.status == "AUTHORISED" && left == 0 && d.total > 0 {
            d.status = "PAID".into();
            d.fully_paid_on = Some(on_day);
        } else if d.status == "PAID" && left > 0 {
            d.status = "AUTHORISED".into();
            d.fully_paid_on = None;
        }
        d.updated_ms = d.updated_ms.max(now.saturating_sub(1)) + 1;
    }

    fn latest_open_invoice(&self) -> Option<usize> {
        self.docs
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                d.kind == DocKind::Invoice
                    && matches!(d.status.as_str(), "DRAFT" | "SUBMITTED" | "AUTHORISED")
            })
            .max_by_key(|(_, d)| d.updated_ms)
            .map(|(i, _)| i)
    }

    /// A change made in Xero by a person: see [`XeroEdit`].
    fn edit_in_xero(&mut self, idx: usize, edit: XeroEdit, now: u64) -> Result<(), String> {
        let encumbered = {
            let d = &self.docs[idx];
            self.paid(&d.id) + self.credited(&d.id) > 0
        };
        let d = &mut self.docs[idx];
        if matches!(d.status.as_str(), "VOIDED" | "DELETED") {
            return Err(format!(
                "{} not of valid status for modification",
                d.kind.noun()
            ));
        }
        match edit {
            XeroEdit::Details => {
                d.due_date = Some(d.due_date.unwrap_or(d.date) + 7);
                if let Some(line) = d.lines.first_mut() {
                    line.description.push_str(" (edited in Xero)");
                } else {
                    d.reference = Some(format!(
                        "{} (edited in Xero)",
                        d.reference.as_deref().unwrap_or_default()
                    ));
                }
            }
            XeroEdit::Amount(cents) => {
                if encumbered || d.status == "PAID" {
                    return Err("This document cannot be edited as it has a payment or credit note allocated to it.".into());
                }
                let Some(line) = d.lines.first_mut() else {
                    return Err("the invoice has no line to change".into());
                };
                line.quantity = 10_000;
                line.unit_amount = cents * 100;
                line.discount_rate = None;
                line.line_amount = cents;
                let rate = find_tax_rate(&line.tax_type).map_or(0, |t| t.rate);
                line.tax_amount = line_tax(cents, rate, &d.line_amount_types);
                recompute_totals(d);
            }
            XeroEdit::Void => {
                if encumbered || d.status == "PAID" {
                    return Err("This document cannot be voided as it has a payment or credit note allocated to it.".into());
                }
                d.status = if d.status == "AUTHORISED" {
                    "VOIDED"
                } else {
                    "DELETED"
                }
                .into();
            }
        }
        d.edits_in_xero += 1;
        d.updated_ms = d.updated_ms.max(now.saturating_sub(1)) + 1;
        Ok(())
    }

    /// The next free number of a kind: INV-0001, CN-0001, ...
    fn next_number(&mut self, kind: DocKind, doc_type: &str) -> String {
        loop {
            let (prefix, seq) = match kind {
                DocKind::Invoice => ("INV", &mut self.invoice_seq),
                DocKind::CreditNote => ("CN", &mut self.credit_note_seq),
            };
            *seq += 1;
            let number = format!("{prefix}-{:04}", *seq);
            if !self
                .docs
                .iter()
                .any(|d| d.doc_type == doc_type && d.number.as_deref() == Some(number.as_str()))
            {
                return number;
            }
        }
    }
}

/// VAT on one line, rounded to the cent (half away from zero) as Xero rounds it.
fn line_tax(line_amount: i64, rate: i64, line_amount_types: &str) -> i64 {
    let (a, r) = (i128::from(line_amount), i128::from(rate));
    let tax = match line_amount_types {
        "Inclusive" => round_div(a * r, 10_000 + r),
        "NoTax" => 0,
        _ => round_div(a * r, 10_000),
    };
    tax as i64
}

/// SubTotal, TotalTax and Total from the lines: per-line tax summed, never tax on the total.
fn recompute_totals(d: &mut Doc) {
    let lines: i64 = d.lines.iter().map(|l| l.line_amount).sum();
    let tax: i64 = d.lines.iter().map(|l| l.tax_amount).sum();
    d.total_tax = tax;
    d.sub_total = if d.line_amount_types == "Inclusive" {
        lines - tax
    } else {
        lines
    };
    d.total = d.sub_total + d.total_tax;
}

/// `a / b` rounded half away from zero (`b > 0`).
fn round_div(a: i128, b: i128) -> i128 {
    if b == 0 {
        return 0;
    }
    let q = a / b;
    let r = a % b;
    if r.abs() * 2 >= b.abs() {
        q + a.signum() * b.signum()
    } else {
        q
    }
}

// ---------------------------------------------------------------------------------------------
// Numbers, dates and the JSON writer
// ---------------------------------------------------------------------------------------------

/// `units` (in `10^-scale`) written with `dp` decimals, rounded half away from zero.
fn fmt_fixed(units: i64, scale: u32, dp: u32) -> String {
    let dp = dp.min(scale);
    let v = round_div(i128::from(units), 10i128.pow(scale - dp));
    let p = 10i128.pow(dp);
    let sign = if v < 0 { "-" } else { "" };
    let (int, frac) = (v.abs() / p, v.abs() % p);
    if dp == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac:0>width$}", width = dp as usize)
    }
}

/// A number Xero writes with a fixed number of decimals (see [`NUMBER_MARK`]).
fn num(units: i64, scale: u32, dp: u32) -> Value {
    Value::String(format!("{NUMBER_MARK}{}", fmt_fixed(units, scale, dp)))
}

/// Cents as Xero writes money: `115.00`.
fn money(cents: i64) -> Value {
    num(cents, 2, 2)
}

/// A decimal from JSON (a number or a numeric string) in units of `10^-scale`, rounded half
/// away from zero. `None` for anything else, exponents included.
fn parse_scaled(v: &Value, scale: u32) -> Option<i64> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        _ => return None,
    };
    if text.is_empty() || text.len() > 40 {
        return None;
    }
    let (neg, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(&text)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || int.len() > 15
    {
        return None;
    }
    let mut units: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let digits: Vec<u8> = frac.bytes().map(|b| b - b'0').collect();
    for i in 0..scale as usize {
        units = units * 10 + i128::from(*digits.get(i).unwrap_or(&0));
    }
    if digits.get(scale as usize).is_some_and(|&d| d >= 5) {
        units += 1;
    }
    let units = if neg { -units } else { units };
    i64::try_from(units).ok()
}

/// Writes a response body: `serde_json`'s output with the marked numbers written bare.
fn to_xero_json(v: &Value) -> String {
    let text = v.to_string();
    if !text.contains(NUMBER_MARK) {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    let marker = format!("\"{NUMBER_MARK}");
    while let Some(at) = rest.find(&marker) {
        out.push_str(&rest[..at]);
        let after = &rest[at + marker.len()..];
        match after.find('"') {
            Some(end) => {
                out.push_str(&after[..end]);
                rest = &after[end + 1..];
            }
            None => {
                rest = after;
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Replaces the marked numbers by real JSON numbers (for the Rust-side accessors).
fn unmark(v: Value) -> Value {
    serde_json::from_str(&to_xero_json(&v)).unwrap_or(Value::Null)
}

/// A marked number (or a plain one) as `f64`, for `where` comparisons.
fn marked_number(s: &str) -> Option<f64> {
    s.strip_prefix(NUMBER_MARK).and_then(|n| n.parse().ok())
}

/// Text from a request, without the number mark (so no client text can pose as a number).
fn clean(s: &str) -> String {
    s.replace(NUMBER_MARK, "")
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    // Clamped so that no input, however absurd, overflows (callers check real dates).
    let (y, m, d) = (
        y.clamp(-1_000_000, 1_000_000),
        m.clamp(1, 12),
        d.clamp(1, 31),
    );
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number: (year, month, day).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

fn date_to_days(d: time::Date) -> i64 {
    i64::from(d.to_julian_day()) - 2_440_588
}

fn today(now_ms: u64) -> i64 {
    (now_ms as i64).div_euclid(MS_PER_DAY)
}

/// `/Date(1552262400000+0000)/`, as Xero writes dates and times.
fn ms_date(ms: i64) -> Value {
    Value::String(format!("/Date({ms}+0000)/"))
}

fn day_date(days: i64) -> Value {
    ms_date(days * MS_PER_DAY)
}

/// `2019-03-11T00:00:00`, Xero's `DateString`.
fn day_string(days: i64) -> Value {
    let (y, m, d) = civil_from_days(days);
    Value::String(format!("{y:04}-{m:02}-{d:02}T00:00:00"))
}

/// `2026-08-01T10:00:00.123Z`, Xero's `UpdatedDateUTCString`.
fn iso_utc(ms: u64) -> String {
    let ms = ms as i64;
    let days = ms.div_euclid(MS_PER_DAY);
    let rem = ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// `31-Jul-2013`, as the lock-date messages write dates.
fn lock_date_text(days: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d) = civil_from_days(days);
    format!("{d:02}-{}-{y}", MONTHS[(m as usize).saturating_sub(1) % 12])
}

/// A date a client sends: `YYYY-MM-DD` (a time after it is ignored) or `/Date(ms)/`.
fn parse_day(v: &Value) -> Option<i64> {
    let s = v.as_str()?.trim();
    if let Some(ms) = parse_ms_date(s) {
        return Some(ms.div_euclid(MS_PER_DAY));
    }
    let date = s.get(..10)?;
    if s.len() > 10 && !s[10..].starts_with('T') && !s[10..].starts_with(' ') {
        return None;
    }
    let mut parts = date.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, i64, i64) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    (civil_from_days(days) == (y, m, d)).then_some(days)
}

/// The milliseconds of `/Date(1552262400000+0000)/` (offset allowed, and ignored: Xero's
/// values are UTC).
fn parse_ms_date(s: &str) -> Option<i64> {
    let inner = s.strip_prefix("/Date(")?.strip_suffix(")/")?;
    let end = inner
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == '+' || *c == '-')
        .map_or(inner.len(), |(i, _)| i);
    inner[..end].parse().ok()
}

/// `If-Modified-Since`: `2026-08-01T10:00:00` (Xero's form, UTC, `Z` and fractions allowed)
/// or an HTTP date (`Sat, 01 Aug 2026 10:00:00 GMT`).
fn parse_if_modified_since(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.len() > 64 {
        return None;
    }
    let ms = if s.len() >= 19 && s.as_bytes().get(10) == Some(&b'T') {
        let days = parse_day(&Value::String(s.get(..10)?.to_owned()))?;
        let hms: Vec<i64> = s
            .get(11..19)?
            .split(':')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        let [h @ 0..=23, mi @ 0..=59, se @ 0..=60] = hms.as_slice() else {
            return None;
        };
        days * MS_PER_DAY + h * 3_600_000 + mi * 60_000 + se * 1000
    } else {
        let parts: Vec<&str> = s.split_whitespace().collect();
        let [_, d, mon, y, t, _] = parts.as_slice() else {
            return None;
        };
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let m = MONTHS.iter().position(|x| x.eq_ignore_ascii_case(mon))? as i64 + 1;
        let days = days_from_civil(y.parse().ok()?, m, d.parse().ok()?);
        let hms: Vec<i64> = t
            .split(':')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        let [h @ 0..=23, mi @ 0..=59, se @ 0..=60] = hms.as_slice() else {
            return None;
        };
        days * MS_PER_DAY + h * 3_600_000 + mi * 60_000 + se * 1000
    };
    u64::try_from(ms).ok()
}

// ---------------------------------------------------------------------------------------------
// Rendering, in Xero's field names and order
// ---------------------------------------------------------------------------------------------

fn put_opt(o: &mut Map<String, Value>, key: &str, v: &Option<String>) {
    if let Some(v) = v {
        o.insert(key.into(), Value::String(v.clone()));
    }
}

fn render_contact(c: &Contact) -> Value {
    let mut o = Map::new();
    o.insert("ContactID".into(), json!(c.id));
    put_opt(&mut o, "ContactNumber", &c.contact_number);
    put_opt(&mut o, "AccountNumber", &c.account_number);
    o.insert("ContactStatus".into(), json!(c.status));
    o.insert("Name".into(), json!(c.name));
    put_opt(&mut o, "FirstName", &c.first_name);
    put_opt(&mut o, "LastName", &c.last_name);
    put_opt(&mut o, "EmailAddress", &c.email);
    put_opt(&mut o, "TaxNumber", &c.tax_number);
    o.insert("Addresses".into(), Value::Array(c.addresses.clone()));
    o.insert("Phones".into(), Value::Array(c.phones.clone()));
    o.insert("UpdatedDateUTC".into(), ms_date(c.updated_ms as i64));
    o.insert("ContactGroups".into(), json!([]));
    o.insert("IsSupplier".into(), json!(c.is_supplier));
    o.insert("IsCustomer".into(), json!(c.is_customer));
    o.insert("DefaultCurrency".into(), json!("ZAR"));
    o.insert("ContactPersons".into(), json!([]));
    o.insert("HasAttachments".into(), json!(false));
    o.insert("HasValidationErrors".into(), json!(false));
    Value::Object(o)
}

/// The contact as documents embed it.
fn contact_summary(books: &Books, contact_id: &str) -> Value {
    match books.contact(contact_id) {
        Some(c) => {
            let mut o = Map::new();
            o.insert("ContactID".into(), json!(c.id));
            put_opt(&mut o, "ContactNumber", &c.contact_number);
            o.insert("ContactStatus".into(), json!(c.status));
            o.insert("Name".into(), json!(c.name));
            put_opt(&mut o, "EmailAddress", &c.email);
            o.insert("HasValidationErrors".into(), json!(false));
            Value::Object(o)
        }
        None => json!({ "ContactID": contact_id, "HasValidationErrors": false }),
    }
}

fn render_line(l: &Line, unitdp4: bool) -> Value {
    let mut o = Map::new();
    o.insert("LineItemID".into(), json!(l.id));
    o.insert("Description".into(), json!(l.description));
    o.insert("Quantity".into(), num(l.quantity, 4, 4));
    o.insert(
        "UnitAmount".into(),
        num(l.unit_amount, 4, if unitdp4 { 4 } else { 2 }),
    );
    put_opt(&mut o, "ItemCode", &l.item_code);
    put_opt(&mut o, "AccountCode", &l.account_code);
    if let Some(code) = &l.account_code
        && let Some(a) = find_account(code)
    {
        o.insert("AccountID".into(), json!(account_id(a.code)));
    }
    o.insert("TaxType".into(), json!(l.tax_type));
    o.insert("TaxAmount".into(), money(l.tax_amount));
    o.insert("LineAmount".into(), money(l.line_amount));
    if let Some(rate) = l.discount_rate {
        o.insert("DiscountRate".into(), num(rate, 2, 2));
    }
    o.insert("Tracking".into(), Value::Array(l.tracking.clone()));
    Value::Object(o)
}

/// An invoice or credit note as the API gives it (`with_lines`: the line items too).
fn render_doc(books: &Books, d: &Doc, with_lines: bool, unitdp4: bool) -> Value {
    let mut o = Map::new();
    o.insert("Type".into(), json!(d.doc_type));
    o.insert(d.kind.id_field().into(), json!(d.id));
    if let Some(n) = &d.number {
        o.insert(d.kind.number_field().into(), json!(n));
    }
    put_opt(&mut o, "Reference", &d.reference);
    let payments: Vec<Value> = books
        .payments
        .iter()
        .filter(|p| p.doc_id == d.id && p.status == "AUTHORISED")
        .map(|p| {
            json!({
                "PaymentID": p.id,
                "Date": day_date(p.date),
                "Amount": money(p.amount),
                "Reference": p.reference.clone().unwrap_or_default(),
                "CurrencyRate": num(1, 0, 0),
                "HasAccount": false,
                "HasValidationErrors": false,
            })
        })
        .collect();
    o.insert("Payments".into(), Value::Array(payments));
    o.insert("Prepayments".into(), json!([]));
    o.insert("Overpayments".into(), json!([]));
    let outstanding = books.outstanding(d);
    let paid = books.paid(&d.id);
    match d.kind {
        DocKind::Invoice => {
            let credit_notes: Vec<Value> = books
                .allocations
                .iter()
                .filter(|a| a.invoice_id == d.id && !a.deleted)
                .filter_map(|a| {
                    let cn = books.doc_by_id(&a.credit_note_id)?;
                    Some(json!({
                        "CreditNoteID": cn.id,
                        "CreditNoteNumber": cn.number.clone().unwrap_or_default(),
                        "ID": a.id,
                        "AppliedAmount": money(a.amount),
                        "Date": day_date(a.date),
                        "DateString": day_string(a.date),
                        "Total": money(cn.total),
                        "HasErrors": false,
                    }))
                })
                .collect();
            o.insert("CreditNotes".into(), Value::Array(credit_notes));
            o.insert("AmountDue".into(), money(outstanding));
            o.insert("AmountPaid".into(), money(paid));
            o.insert("AmountCredited".into(), money(books.credited(&d.id)));
            o.insert("IsDiscounted".into(), json!(false));
        }
        DocKind::CreditNote => {
            let allocations: Vec<Value> = books
                .allocations
                .iter()
                .filter(|a| a.credit_note_id == d.id && !a.deleted)
                .map(|a| render_allocation(books, a))
                .collect();
            o.insert("Allocations".into(), Value::Array(allocations));
            o.insert("RemainingCredit".into(), money(outstanding));
            o.insert("AppliedAmount".into(), money(paid + books.allocated(&d.id)));
        }
    }
    o.insert("CurrencyRate".into(), num(1, 0, 0));
    o.insert("HasAttachments".into(), json!(false));
    o.insert("HasErrors".into(), json!(false));
    o.insert("Contact".into(), contact_summary(books, &d.contact_id));
    o.insert("DateString".into(), day_string(d.date));
    o.insert("Date".into(), day_date(d.date));
    if let Some(due) = d.due_date {
        o.insert("DueDateString".into(), day_string(due));
        o.insert("DueDate".into(), day_date(due));
    }
    o.insert("Status".into(), json!(d.status));
    o.insert("LineAmountTypes".into(), json!(d.line_amount_types));
    if with_lines {
        o.insert(
            "LineItems".into(),
            Value::Array(d.lines.iter().map(|l| render_line(l, unitdp4)).collect()),
        );
    }
    o.insert("SubTotal".into(), money(d.sub_total));
    o.insert("TotalTax".into(), money(d.total_tax));
    o.insert("Total".into(), money(d.total));
    o.insert("UpdatedDateUTC".into(), ms_date(d.updated_ms as i64));
    o.insert("UpdatedDateUTCString".into(), json!(iso_utc(d.updated_ms)));
    o.insert("CurrencyCode".into(), json!(d.currency));
    if let Some(day) = d.fully_paid_on {
        o.insert("FullyPaidOnDate".into(), day_date(day));
    }
    put_opt(&mut o, "Url", &d.url);
    if d.kind == DocKind::Invoice {
        o.insert("SentToContact".into(), json!(false));
    }
    Value::Object(o)
}

fn render_allocation(books: &Books, a: &Allocation) -> Value {
    let invoice = books.doc_by_id(&a.invoice_id);
    let credit_note = books.doc_by_id(&a.credit_note_id);
    json!({
        "AllocationID": a.id,
        "Amount": money(a.amount),
        "Date": day_date(a.date),
        "IsDeleted": a.deleted,
        "Invoice": {
            "InvoiceID": a.invoice_id,
            "InvoiceNumber": invoice.and_then(|d| d.number.clone()).unwrap_or_default(),
            "Payments": [], "CreditNotes": [], "Prepayments": [], "Overpayments": [],
            "HasErrors": false, "IsDiscounted": false, "HasAttachments": false,
        },
        "CreditNote": {
            "CreditNoteID": a.credit_note_id,
            "CreditNoteNumber": credit_note.and_then(|d| d.number.clone()).unwrap_or_default(),
            "HasErrors": false,
        },
    })
}

fn render_payment(books: &Books, p: &Payment) -> Value {
    let doc = books.doc_by_id(&p.doc_id);
    let on_credit_note = doc.is_some_and(|d| d.kind == DocKind::CreditNote);
    let account = find_account(&p.account_code);
    let mut o = Map::new();
    o.insert("PaymentID".into(), json!(p.id));
    o.insert("Date".into(), day_date(p.date));
    o.insert("BankAmount".into(), money(p.amount));
    o.insert("Amount".into(), money(p.amount));
    o.insert(
        "Reference".into(),
        json!(p.reference.clone().unwrap_or_default()),
    );
    o.insert("CurrencyRate".into(), num(1, 0, 0));
    let payment_type = match doc.map(|d| d.doc_type.as_str()) {
        Some("ACCRECCREDIT") => "ARCREDITPAYMENT",
        Some("ACCPAYCREDIT") => "APCREDITPAYMENT",
        Some("ACCPAY") => "ACCPAYPAYMENT",
        _ => "ACCRECPAYMENT",
    };
    o.insert("PaymentType".into(), json!(payment_type));
    o.insert("Status".into(), json!(p.status));
    o.insert("UpdatedDateUTC".into(), ms_date(p.updated_ms as i64));
    o.insert("UpdatedDateUTCString".into(), json!(iso_utc(p.updated_ms)));
    o.insert("HasAccount".into(), json!(true));
    o.insert("IsReconciled".into(), json!(p.is_reconciled));
    o.insert(
        "Account".into(),
        json!({ "AccountID": account_id(&p.account_code), "Code": account.map_or(p.account_code.as_str(), |a| a.code) }),
    );
    if let Some(d) = doc {
        // Xero embeds the document under `Invoice` for both kinds (a credit note with its
        // credit type); a refund's answer also names it under `CreditNote`.
        let mut inv = Map::new();
        inv.insert("Type".into(), json!(d.doc_type));
        inv.insert("InvoiceID".into(), json!(d.id));
        inv.insert(
            "InvoiceNumber".into(),
            json!(d.number.clone().unwrap_or_default()),
        );
        put_opt(&mut inv, "Reference", &d.reference);
        inv.insert("Contact".into(), contact_summary(books, &d.contact_id));
        inv.insert("Status".into(), json!(d.status));
        inv.insert("Total".into(), money(d.total));
        inv.insert("AmountDue".into(), money(books.outstanding(d)));
        inv.insert("AmountPaid".into(), money(books.paid(&d.id)));
        if d.kind == DocKind::Invoice {
            inv.insert("AmountCredited".into(), money(books.credited(&d.id)));
        }
        inv.insert("CurrencyCode".into(), json!(d.currency));
        inv.insert("Payments".into(), json!([]));
        inv.insert("CreditNotes".into(), json!([]));
        inv.insert("Prepayments".into(), json!([]));
        inv.insert("Overpayments".into(), json!([]));
        inv.insert("HasErrors".into(), json!(false));
        inv.insert("IsDiscounted".into(), json!(false));
        o.insert("Invoice".into(), Value::Object(inv));
        if on_credit_note {
            o.insert(
                "CreditNote".into(),
                json!({
                    "CreditNoteID": d.id,
                    "CreditNoteNumber": d.number.clone().unwrap_or_default(),
                    "RemainingCredit": money(books.outstanding(d)),
                    "Status": d.status,
                    "Total": money(d.total),
                    "HasErrors": false,
                }),
            );
        }
    }
    o.insert("HasValidationErrors".into(), json!(false));
    Value::Object(o)
}

fn render_account(a: &AccountDef) -> Value {
    let mut o = Map::new();
    o.insert("AccountID".into(), json!(account_id(a.code)));
    o.insert("Code".into(), json!(a.code));
    o.insert("Name".into(), json!(a.name));
    o.insert("Status".into(), json!(a.status));
    o.insert("Type".into(), json!(a.kind));
    o.insert("TaxType".into(), json!(a.tax_type));
    if !a.description.is_empty() {
        o.insert("Description".into(), json!(a.description));
    }
    o.insert("Class".into(), json!(account_class(a.kind)));
    if let Some(s) = a.system {
        o.insert("SystemAccount".into(), json!(s));
    }
    o.insert("EnablePaymentsToAccount".into(), json!(a.enable_payments));
    o.insert("ShowInExpenseClaims".into(), json!(false));
    if let Some(n) = a.bank_account_number {
        o.insert("BankAccountNumber".into(), json!(n));
        o.insert("BankAccountType".into(), json!("BANK"));
        o.insert("CurrencyCode".into(), json!("ZAR"));
    }
    o.insert("ReportingCode".into(), json!(reporting_code(a)));
    o.insert("HasAttachments".into(), json!(false));
    o.insert("UpdatedDateUTC".into(), ms_date(1_704_067_200_000));
    o.insert("AddToWatchlist".into(), json!(false));
    Value::Object(o)
}

fn reporting_code(a: &AccountDef) -> &'static str {
    match account_class(a.kind) {
        "ASSET" => "ASS",
        "LIABILITY" => "LIA",
        "EQUITY" => "EQU",
        "REVENUE" => "REV",
        _ => "EXP",
    }
}

fn render_tax_rate(t: &TaxRateDef) -> Value {
    json!({
        "Name": t.name,
        "TaxType": t.tax_type,
        "ReportTaxType": t.report_tax_type,
        "CanApplyToAssets": t.expenses,
        "CanApplyToEquity": t.expenses,
        "CanApplyToExpenses": t.expenses,
        "CanApplyToLiabilities": t.expenses,
        "CanApplyToRevenue": t.revenue,
        "DisplayTaxRate": num(t.rate, 2, 4),
        "EffectiveRate": num(t.rate, 2, 4),
        "Status": "ACTIVE",
        "TaxComponents": [{
            "Name": "VAT",
            "Rate": num(t.rate, 2, 4),
            "IsCompound": false,
            "IsNonRecoverable": false,
        }],
    })
}

fn render_organisation(cfg: &XeroStandinConfig, lock: LockDates) -> Value {
    let mut o = Map::new();
    o.insert("APIKey".into(), json!(""));
    o.insert("Name".into(), json!(cfg.tenant_name));
    o.insert(
        "LegalName".into(),
        json!(format!("{} (Pty) Ltd", cfg.tenant_name)),
    );
    o.insert("PaysTax".into(), json!(true));
    o.insert("Version".into(), json!("GLOBAL"));
    o.insert("OrganisationType".into(), json!("COMPANY"));
    o.insert("BaseCurrency".into(), json!("ZAR"));
    o.insert("CountryCode".into(), json!("ZA"));
    o.insert("IsDemoCompany".into(), json!(true));
    o.insert("OrganisationStatus".into(), json!("ACTIVE"));
    o.insert("TaxNumber".into(), json!("4123456789"));
    o.insert("FinancialYearEndDay".into(), json!(28));
    o.insert("FinancialYearEndMonth".into(), json!(2));
    o.insert("SalesTaxBasis".into(), json!("INVOICE"));
    o.insert("SalesTaxPeriod".into(), json!("TWOMONTHS"));
    o.insert("DefaultSalesTax".into(), json!("Tax Inclusive"));
    o.insert("DefaultPurchasesTax".into(), json!("Tax Inclusive"));
    if let Some(d) = lock.period {
        o.insert("PeriodLockDate".into(), day_date(d));
    }
    if let Some(d) = lock.end_of_year {
        o.insert("EndOfYearLockDate".into(), day_date(d));
    }
    o.insert("CreatedDateUTC".into(), ms_date(1_704_067_200_000));
    o.insert("OrganisationEntityType".into(), json!("COMPANY"));
    o.insert("Timezone".into(), json!("SOUTHAFRICASTANDARDTIME"));
    o.insert("ShortCode".into(), json!("!Zx9kP"));
    o.insert("OrganisationID".into(), json!(cfg.tenant_id));
    o.insert("Edition".into(), json!("BUSINESS"));
    o.insert("Class".into(), json!("STANDARD"));
    o.insert(
        "Addresses".into(),
        json!([{
            "AddressType": "POBOX",
            "AddressLine1": "PO Box 1234",
            "City": "Cape Town",
            "Region": "Western Cape",
            "PostalCode": "8000",
            "Country": "South Africa",
        }]),
    );
    o.insert(
        "Phones".into(),
        json!([{ "PhoneType": "OFFICE", "PhoneNumber": "021 555 0100", "PhoneCountryCode": "27" }]),
    );
    o.insert("ExternalLinks".into(), json!([]));
    o.insert("PaymentTerms".into(), json!({}));
    Value::Object(o)
}

// ---------------------------------------------------------------------------------------------
// Writes: one element at a time, validated as Xero validates it
// ---------------------------------------------------------------------------------------------

/// An element's answer: the saved record as rendered, or the echo and its messages.
type ElementResult = Result<Value, (Value, Vec<String>)>;

const ZERO_GUID: &str = "00000000-0000-0000-0000-000000000000";
const CONTACT_MISSING: &str = "A Contact must be specified for this type of transaction";
const CONTACT_ARCHIVED: &str = "The contact with the specified contact details has been archived. The archived contact must first be restored before it can be used on a transaction.";
const ENCUMBERED: &str =
    "This document cannot be edited as it has a payment or credit note allocated to it.";
const OVERPAID: &str = "Payment amount exceeds the amount outstanding on this document";

/// What every write of one call shares.
struct Ctx<'a> {
    now: u64,
    client_id: &'a str,
    lock: LockDates,
    faults: &'a XeroFaults,
    /// `PUT` (create) rather than `POST` (update or create).
    put: bool,
    unitdp4: bool,
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A field of a request object; Xero reads field names without regard to case.
fn field<'a>(o: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    o.get(name)
        .or_else(|| {
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

/// A text field, trimmed (numbers are read as their text).
fn text(o: &Map<String, Value>, name: &str) -> Option<String> {
    match field(o, name)? {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn opt_text(o: &Map<String, Value>, name: &str) -> Option<Option<String>> {
    field(o, name).map(|_| text(o, name).filter(|s| !s.is_empty()))
}

/// Removes the number mark from every string of a request (see [`NUMBER_MARK`]).
fn scrub(v: &mut Value) {
    match v {
        Value::String(s) if s.contains(NUMBER_MARK) => *s = clean(s),
        Value::Array(items) => items.iter_mut().for_each(scrub),
        Value::Object(map) => map.values_mut().for_each(scrub),
        _ => {}
    }
}

fn lock_error(lock: LockDates, day: i64) -> Option<String> {
    if let Some(eoy) = lock.end_of_year
        && day <= eoy
    {
        return Some(format!(
            "The document date cannot be before the end of year lock date, currently set at {}",
            lock_date_text(eoy)
        ));
    }
    if let Some(period) = lock.period
        && day <= period
    {
        return Some(format!(
            "The document date cannot be before the period lock date, currently set at {}",
            lock_date_text(period)
        ));
    }
    None
}

fn bump(prev: u64, now: u64) -> u64 {
    now.max(prev + 1)
}

/// Keeps the known string fields of each object in a list (phones, addresses).
fn keep_fields(v: &Value, keys: &[&str]) -> Vec<Value> {
    v.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_object)
                .map(|o| {
                    let mut out = Map::new();
                    for k in keys {
                        if let Some(t) = text(o, k) {
                            out.insert((*k).to_owned(), Value::String(t));
                        }
                    }
                    Value::Object(out)
                })
                .collect()
        })
        .unwrap_or_default()
}

const PHONE_FIELDS: [&str; 4] = [
    "PhoneType",
    "PhoneNumber",
    "PhoneAreaCode",
    "PhoneCountryCode",
];
const ADDRESS_FIELDS: [&str; 10] = [
    "AddressType",
    "AddressLine1",
    "AddressLine2",
    "AddressLine3",
    "AddressLine4",
    "City",
    "Region",
    "PostalCode",
    "Country",
    "AttentionTo",
];

fn too_long(errors: &mut Vec<String>, what: &str, v: &Option<String>, max: usize) {
    if v.as_ref().is_some_and(|s| s.chars().count() > max) {
        errors.push(format!(
            "{what} must not be more than {max} characters long."
        ));
    }
}

/// `PUT`/`POST /Contacts` for one element. A contact is found by `ContactID`, then by
/// `ContactNumber` (the portal's customer id), and on `POST` by its name among active
/// contacts; otherwise it is created.
fn upsert_contact(
    books: &mut Books,
    el: &Map<String, Value>,
    path_id: Option<&str>,
    ctx: &Ctx<'_>,
) -> ElementResult {
    let id_given = path_id
        .map(str::to_owned)
        .or_else(|| text(el, "ContactID").filter(|s| !s.is_empty()));
    let number = text(el, "ContactNumber").filter(|s| !s.is_empty());
    let name = text(el, "Name");
    let existing = match &id_given {
        Some(id) => match books
            .contacts
            .iter()
            .position(|c| c.id.eq_ignore_ascii_case(id))
        {
            Some(i) => Some(i),
            None => {
                return Err((
                    Value::Object(el.clone()),
                    vec![format!(
                        "The contact with ContactID {id} could not be found."
                    )],
                ));
            }
        },
        None => number
            .as_ref()
            .and_then(|n| {
                books
                    .contacts
                    .iter()
                    .position(|c| c.contact_number.as_deref() == Some(n.as_str()))
            })
            .or_else(|| {
                let name = name.as_ref().filter(|_| !ctx.put)?;
                books.contacts.iter().position(|c| {
                    c.status == "ACTIVE" && c.name.to_lowercase() == name.to_lowercase()
                })
            }),
    };
    let mut c = existing
        .map(|i| books.contacts[i].clone())
        .unwrap_or_else(|| Contact {
            id: new_id(),
            name: String::new(),
            first_name: None,
            last_name: None,
            email: None,
            contact_number: None,
            account_number: None,
            tax_number: None,
            status: "ACTIVE".into(),
            phones: Vec::new(),
            addresses: Vec::new(),
            is_customer: false,
            is_supplier: false,
            updated_ms: 0,
        });
    let mut errors = Vec::new();
    if let Some(n) = name {
        c.name = n.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    if c.name.is_empty() {
        errors.push("Contact Name cannot be empty.".to_owned());
    }
    if let Some(v) = opt_text(el, "FirstName") {
        c.first_name = v;
    }
    if let Some(v) = opt_text(el, "LastName") {
        c.last_name = v;
    }
    if let Some(v) = opt_text(el, "EmailAddress") {
        c.email = v;
    }
    if let Some(v) = opt_text(el, "ContactNumber") {
        c.contact_number = v;
    }
    if let Some(v) = opt_text(el, "AccountNumber") {
        c.account_number = v;
    }
    if let Some(v) = opt_text(el, "TaxNumber") {
        c.tax_number = v;
    }
    if let Some(s) = text(el, "ContactStatus") {
        match s.to_ascii_uppercase().as_str() {
            s @ ("ACTIVE" | "ARCHIVED" | "GDPRREQUEST") => c.status = s.to_owned(),
            _ => errors.push(format!("'{s}' is not a valid ContactStatus.")),
        }
    }
    if let Some(v) = field(el, "Phones") {
        c.phones = keep_fields(v, &PHONE_FIELDS);
        for p in &c.phones {
            let kind = p
                .get("PhoneType")
                .and_then(Value::as_str)
                .unwrap_or("DEFAULT");
            if !matches!(kind, "DEFAULT" | "DDI" | "MOBILE" | "FAX" | "OFFICE") {
                errors.push(format!("'{kind}' is not a valid PhoneType."));
            }
        }
    }
    if let Some(v) = field(el, "Addresses") {
        c.addresses = keep_fields(v, &ADDRESS_FIELDS);
    }
    too_long(&mut errors, "Contact Name", &Some(c.name.clone()), 255);
    too_long(&mut errors, "Contact Number", &c.contact_number, 50);
    too_long(&mut errors, "Account Number", &c.account_number, 50);
    too_long(&mut errors, "Email Address", &c.email, 255);
    too_long(&mut errors, "Tax Number", &c.tax_number, 50);
    if c.email
        .as_ref()
        .is_some_and(|e| !e.contains('@') || e.contains(' '))
    {
        errors.push("Email address must be valid.".to_owned());
    }
    if c.status == "ACTIVE"
        && !c.name.is_empty()
        && books.contacts.iter().any(|o| {
            o.id != c.id && o.status == "ACTIVE" && o.name.to_lowercase() == c.name.to_lowercase()
        })
    {
        errors.push(format!(
            "The contact name {} is already assigned to another contact. The contact name must be unique across all active contacts.",
            c.name
        ));
    }
    if let Some(acc) = &c.account_number
        && books
            .contacts
            .iter()
            .any(|o| o.id != c.id && o.account_number.as_deref() == Some(acc.as_str()))
    {
        errors.push(
            "The Account Number already exists. Please enter a different Account Number."
                .to_owned(),
        );
    }
    if !errors.is_empty() {
        let mut echo = render_contact(&c);
        if existing.is_none() {
            echo["ContactID"] = json!(ZERO_GUID);
        }
        return Err((echo, errors));
    }
    c.updated_ms = bump(c.updated_ms, ctx.now);
    let rendered = render_contact(&c);
    match existing {
        Some(i) => books.contacts[i] = c,
        None => books.contacts.push(c),
    }
    Ok(rendered)
}

/// The contact a document names: by `ContactID`, `ContactNumber`, or `Name` (a new contact
/// is created for a name Xero does not know, as Xero does).
fn resolve_contact(books: &mut Books, co: &Map<String, Value>, now: u64) -> Result<String, String> {
    let found = if let Some(id) = text(co, "ContactID").filter(|s| !s.is_empty()) {
        Some(
            books
                .contacts
                .iter()
                .position(|c| c.id.eq_ignore_ascii_case(&id))
                .ok_or_else(|| format!("The contact with ContactID {id} could not be found."))?,
        )
    } else if let Some(n) = text(co, "ContactNumber").filter(|s| !s.is_empty()) {
        books
            .contacts
            .iter()
            .position(|c| c.contact_number.as_deref() == Some(n.as_str()))
    } else {
        None
    };
    let idx =
        match found {
            Some(i) => i,
            None => {
                let name = text(co, "Name")
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| CONTACT_MISSING.to_owned())?;
                match books.contacts.iter().position(|c| {
                    c.status == "ACTIVE" && c.name.to_lowercase() == name.to_lowercase()
                }) {
                    Some(i) => i,
                    None => {
                        books.contacts.push(Contact {
                            id: new_id(),
                            name,
                            first_name: None,
                            last_name: None,
                            email: text(co, "EmailAddress").filter(|s| !s.is_empty()),
                            contact_number: text(co, "ContactNumber").filter(|s| !s.is_empty()),
                            account_number: None,
                            tax_number: None,
                            status: "ACTIVE".into(),
                            phones: Vec::new(),
                            addresses: Vec::new(),
                            is_customer: false,
                            is_supplier: false,
                            updated_ms: now,
                        });
                        books.contacts.len() - 1
                    }
                }
            }
        };
    let c = &books.contacts[idx];
    if c.status != "ACTIVE" {
        return Err(CONTACT_ARCHIVED.to_owned());
    }
    Ok(c.id.clone())
}

/// One line item as sent, before its account and tax are checked.
struct LineInput {
    line: Line,
    tax_override: Option<i64>,
    tax_type_given: bool,
}

fn parse_line(
    li: &Map<String, Value>,
    prev: &[Line],
    kind: DocKind,
    ctx: &Ctx<'_>,
    errors: &mut Vec<String>,
) -> LineInput {
    let id = text(li, "LineItemID")
        .filter(|id| prev.iter().any(|l| l.id.eq_ignore_ascii_case(id)))
        .unwrap_or_else(new_id);
    let mut number = |name: &str, scale: u32| -> Option<i64> {
        let v = field(li, name)?;
        let parsed = parse_scaled(v, scale);
        if parsed.is_none() {
            errors.push(format!("{name} must be a valid number."));
        }
        parsed
    };
    let quantity = number("Quantity", 4);
    let unit = number("UnitAmount", 4).map(|u| {
        if ctx.unitdp4 {
            u
        } else {
            (round_div(i128::from(u), 100) * 100) as i64
        }
    });
    let given_line = number("LineAmount", 2);
    let discount = number("DiscountRate", 2);
    let tax_override = number("TaxAmount", 2);
    if discount.is_some() && kind == DocKind::CreditNote {
        errors.push("Discounts are not supported on credit notes.".to_owned());
    }
    // Bounds keep the arithmetic exact (and far from overflow) whatever a client sends.
    let within = |v: Option<i64>, max: i64| v.is_none_or(|v| v.abs() <= max);
    if !within(quantity, MAX_QUANTITY)
        || !within(unit, MAX_UNIT_AMOUNT)
        || !within(given_line, MAX_LINE_CENTS)
        || !within(tax_override, MAX_LINE_CENTS)
    {
        errors.push("The line item amounts are too large.".to_owned());
    }
    let q = quantity
        .filter(|q| q.abs() <= MAX_QUANTITY)
        .unwrap_or(10_000);
    let d = discount.unwrap_or(0).clamp(0, 10_000);
    let (unit_amount, line_amount) = match (
        unit.filter(|u| u.abs() <= MAX_UNIT_AMOUNT),
        given_line.filter(|l| l.abs() <= MAX_LINE_CENTS),
    ) {
        (Some(u), _) => {
            let line = round_div(
                i128::from(q) * i128::from(u) * i128::from(10_000 - d),
                10_000_000_000,
            );
            if line.abs() > i128::from(MAX_LINE_CENTS) {
                errors.push("The line item amounts are too large.".to_owned());
                (u, 0)
            } else {
                (u, line as i64)
            }
        }
        (None, Some(line)) => {
            let denom = i128::from(q) * i128::from(10_000 - d);
            let u = if denom == 0 {
                0
            } else {
                round_div(i128::from(line) * 10_000_000_000, denom)
                    .clamp(-i128::from(MAX_UNIT_AMOUNT), i128::from(MAX_UNIT_AMOUNT))
                    as i64
            };
            (u, line)
        }
        (None, None) => (0, 0),
    };
    let tax_override = tax_override.filter(|t| t.abs() <= MAX_LINE_CENTS);
    let account_code = text(li, "AccountCode")
        .filter(|s| !s.is_empty())
        .or_else(|| {
            text(li, "AccountID")
                .filter(|s| !s.is_empty())
                .map(|id| find_account(&id).map_or(id, |a| a.code.to_owned()))
        });
    let tax_type = text(li, "TaxType").filter(|s| !s.is_empty());
    LineInput {
        line: Line {
            id,
            description: text(li, "Description").unwrap_or_default(),
            quantity: q,
            unit_amount,
            discount_rate: discount,
            account_code,
            tax_type: tax_type.clone().unwrap_or_default(),
            tax_amount: 0,
            line_amount,
            item_code: text(li, "ItemCode").filter(|s| !s.is_empty()),
            tracking: field(li, "Tracking")
                .and_then(Value::as_array)
                .map(|t| t.iter().take(2).cloned().collect())
                .unwrap_or_default(),
        },
        tax_override,
        tax_type_given: tax_type.is_some(),
    }
}

/// `PUT`/`POST /Invoices` or `/CreditNotes` for one element.
fn upsert_doc(
    books: &mut Books,
    kind: DocKind,
    el: &Map<String, Value>,
    path_id: Option<&str>,
    ctx: &Ctx<'_>,
) -> ElementResult {
    let noun = kind.noun();
    let mut errors: Vec<String> = Vec::new();
    let id_given = path_id
        .map(str::to_owned)
        .or_else(|| text(el, kind.id_field()).filter(|s| !s.is_empty()));
    let number_given = text(el, kind.number_field()).filter(|s| !s.is_empty());
    let existing = match &id_given {
        Some(id) => match books
            .docs
            .iter()
            .position(|d| d.kind == kind && d.id.eq_ignore_ascii_case(id))
        {
            Some(i) => Some(i),
            None => {
                return Err((
                    Value::Object(el.clone()),
                    vec![format!(
                        "The {noun} with {} {id} could not be found.",
                        kind.id_field()
                    )],
                ));
            }
        },
        None if !ctx.put => number_given.as_ref().and_then(|n| {
            books
                .docs
                .iter()
                .position(|d| d.kind == kind && d.number.as_deref() == Some(n.as_str()))
        }),
        None => None,
    };
    let before = existing.map(|i| books.docs[i].clone());
    let mut d = before.clone().unwrap_or_else(|| Doc {
        id: new_id(),
        kind,
        doc_type: String::new(),
        number: None,
        reference: None,
        contact_id: String::new(),
        date: today(ctx.now),
        due_date: None,
        line_amount_types: "Exclusive".into(),
        status: "DRAFT".into(),
        currency: "ZAR".into(),
        lines: Vec::new(),
        sub_total: 0,
        total_tax: 0,
        total: 0,
        url: None,
        updated_ms: 0,
        created_by: Some(ctx.client_id.to_owned()),
        fully_paid_on: None,
        edits_in_xero: 0,
    });
    let echo = |books: &Books, d: &Doc, errors: Vec<String>| {
        let mut v = render_doc(books, d, true, ctx.unitdp4);
        if before.is_none() {
            v[kind.id_field()] = json!(ZERO_GUID);
        }
        Err((v, errors))
    };
    if let Some(b) = &before
        && matches!(b.status.as_str(), "PAID" | "VOIDED" | "DELETED")
    {
        return echo(
            books,
            &d,
            vec![format!("{noun} not of valid status for modification")],
        );
    }
    match text(el, "Type").map(|t| t.to_ascii_uppercase()) {
        Some(t) if kind.types().contains(&t.as_str()) && before.is_none() => d.doc_type = t,
        Some(t) if kind.types().contains(&t.as_str()) => {}
        Some(t) => errors.push(format!(
            "'{t}' is not a valid {noun} Type: use {} or {}.",
            kind.types()[0],
            kind.types()[1]
        )),
        None if before.is_none() => errors.push(format!("{noun} Type must be specified.")),
        None => {}
    }
    let sales = d.doc_type.is_empty() || d.doc_type.starts_with("ACCREC");
    match field(el, "Contact") {
        Some(Value::Object(co)) => match resolve_contact(books, co, ctx.now) {
            Ok(id) => d.contact_id = id,
            Err(e) => errors.push(e),
        },
        Some(_) => errors.push(CONTACT_MISSING.to_owned()),
        None if before.is_none() => errors.push(CONTACT_MISSING.to_owned()),
        None => {}
    }
    if let Some(v) = field(el, "Date") {
        match parse_day(v) {
            Some(day) => d.date = day,
            None => errors.push("Date must be a valid date (YYYY-MM-DD).".to_owned()),
        }
    }
    if let Some(v) = field(el, "DueDate") {
        match parse_day(v) {
            Some(day) => d.due_date = Some(day),
            None => errors.push("Due Date must be a valid date (YYYY-MM-DD).".to_owned()),
        }
    }
    if let Some(s) = text(el, "Status").map(|s| s.to_ascii_uppercase()) {
        let from = before.as_ref().map(|b| b.status.as_str());
        let allowed = matches!(
            (from, s.as_str()),
            (None, "DRAFT" | "SUBMITTED" | "AUTHORISED")
                | (
                    Some("DRAFT" | "SUBMITTED"),
                    "DRAFT" | "SUBMITTED" | "AUTHORISED" | "DELETED"
                )
                | (Some("AUTHORISED"), "AUTHORISED" | "VOIDED")
        );
        if allowed {
            d.status = s;
        } else if from.is_none() {
            errors.push(format!(
                "A new {} cannot be created with the status {s}.",
                noun.to_lowercase()
            ));
        } else {
            errors.push(format!("{noun} not of valid status for modification"));
        }
    }
    if let Some(t) = text(el, "LineAmountTypes") {
        match t.to_ascii_lowercase().as_str() {
            "exclusive" => d.line_amount_types = "Exclusive".into(),
            "inclusive" => d.line_amount_types = "Inclusive".into(),
            "notax" => d.line_amount_types = "NoTax".into(),
            _ => errors.push(format!(
                "'{t}' is not a valid LineAmountTypes: use Exclusive, Inclusive or NoTax."
            )),
        }
    }
    if let Some(r) = opt_text(el, "Reference") {
        d.reference = r;
    }
    if let Some(u) = opt_text(el, "Url") {
        d.url = u;
    }
    if let Some(c) = text(el, "CurrencyCode").map(|c| c.to_ascii_uppercase())
        && c != "ZAR"
    {
        errors.push(format!("Organisation is not subscribed to currency {c}"));
    }
    if let Some(n) = &number_given
        && d.number.as_deref() != Some(n.as_str())
    {
        let taken = books.docs.iter().any(|o| {
            o.id != d.id
                && o.kind == kind
                && o.number.as_deref() == Some(n.as_str())
                && o.doc_type.starts_with("ACCREC")
        });
        if taken && sales {
            errors.push(format!(
                "This {} number must be unique.",
                noun.to_lowercase()
            ));
        }
        too_long(&mut errors, kind.number_field(), &Some(n.clone()), 255);
        d.number = Some(n.clone());
    }
    too_long(&mut errors, "Reference", &d.reference, 255);
    let mut inputs: Vec<LineInput> = match field(el, "LineItems") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|li| match li.as_object() {
                Some(li) => parse_line(li, &d.lines, kind, ctx, &mut errors),
                None => parse_line(&Map::new(), &d.lines, kind, ctx, &mut errors),
            })
            .collect(),
        Some(_) => {
            errors.push("LineItems must be a list of line items.".to_owned());
            Vec::new()
        }
        None => d
            .lines
            .iter()
            .map(|l| LineInput {
                line: l.clone(),
                tax_override: None,
                tax_type_given: true,
            })
            .collect(),
    };
    let approving = !matches!(d.status.as_str(), "DRAFT" | "DELETED");
    for input in &mut inputs {
        let line = &mut input.line;
        let mut account_tax = None;
        match line.account_code.clone() {
            Some(code) => match find_account(&code) {
                Some(a) if a.status == "ARCHIVED" => errors.push(format!(
                    "Account code '{code}' has been archived, or has been deleted. Each line item must reference a valid account."
                )),
                Some(a) if a.kind != "BANK" && a.system.is_none() => {
                    line.account_code = Some(a.code.to_owned());
                    account_tax = Some(a.tax_type);
                }
                _ => errors.push(format!(
                    "Account code '{code}' is not a valid code for this document."
                )),
            },
            None if approving && line.line_amount != 0 => {
                errors.push("Account code or ID must be specified".to_owned())
            }
            None => {}
        }
        if d.line_amount_types == "NoTax" {
            line.tax_type = "NONE".into();
        } else if input.tax_type_given {
            match find_tax_rate(&line.tax_type) {
                Some(t) if (sales && t.revenue) || (!sales && t.expenses) => {
                    line.tax_type = t.tax_type.to_owned()
                }
                _ => errors.push(format!(
                    "The TaxType code {} does not exist or cannot be used for this type of transaction.",
                    line.tax_type
                )),
            }
        } else {
            line.tax_type = account_tax.unwrap_or("NONE").to_owned();
        }
        let rate = find_tax_rate(&line.tax_type).map_or(0, |t| t.rate);
        line.tax_amount = input
            .tax_override
            .unwrap_or_else(|| line_tax(line.line_amount, rate, &d.line_amount_types));
        if line.description.is_empty() && line.item_code.is_none() && line.line_amount != 0 {
            errors.push("Description cannot be empty.".to_owned());
        }
        too_long(
            &mut errors,
            "Description",
            &Some(line.description.clone()),
            4000,
        );
    }
    d.lines = inputs.into_iter().map(|i| i.line).collect();
    recompute_totals(&mut d);
    if d.total < 0 {
        errors.push(format!("{noun} total cannot be negative."));
    }
    if kind == DocKind::Invoice && approving && d.due_date.is_none() && sales {
        errors.push("Due Date cannot be empty.".to_owned());
    }
    if approving {
        if let Some(e) = lock_error(ctx.lock, d.date) {
            errors.push(e);
        } else if let Some(b) = &before
            && b.date != d.date
            && let Some(e) = lock_error(ctx.lock, b.date)
        {
            errors.push(e);
        }
    }
    if let Some(b) = &before {
        let encumbered = books.paid(&b.id)
            + match kind {
                DocKind::Invoice => books.credited(&b.id),
                DocKind::CreditNote => books.allocated(&b.id),
            }
            > 0;
        let changed = field(el, "LineItems").is_some()
            || b.total != d.total
            || b.contact_id != d.contact_id
            || b.line_amount_types != d.line_amount_types
            || d.status == "VOIDED";
        if encumbered && changed {
            errors.push(ENCUMBERED.to_owned());
        }
    }
    if kind == DocKind::Invoice
        && crate::controls::take_one(&ctx.faults.fail_next_invoice_validation)
    {
        errors.push(FORCED_VALIDATION_MESSAGE.to_owned());
    }
    if !errors.is_empty() {
        return echo(books, &d, errors);
    }
    if d.number.is_none() {
        d.number = Some(books.next_number(kind, &d.doc_type));
    }
    d.updated_ms = bump(d.updated_ms, ctx.now);
    if approving && let Some(c) = books.contacts.iter_mut().find(|c| c.id == d.contact_id) {
        if sales {
            c.is_customer = true;
        } else {
            c.is_supplier = true;
        }
    }
    let id = d.id.clone();
    let date = d.date;
    match existing {
        Some(i) => books.docs[i] = d,
        None => books.docs.push(d),
    }
    books.settle(&id, date, ctx.now);
    let d = books
        .doc_by_id(&id)
        .ok_or((Value::Null, vec!["lost".to_owned()]))?;
    Ok(render_doc(books, d, true, ctx.unitdp4))
}

/// The document a payment or allocation names: `{"InvoiceID"}` / `{"InvoiceNumber"}` (or
/// the credit-note equivalents).
fn named_doc(books: &Books, kind: DocKind, o: &Map<String, Value>) -> Option<usize> {
    let key = text(o, kind.id_field())
        .filter(|s| !s.is_empty())
        .or_else(|| text(o, kind.number_field()).filter(|s| !s.is_empty()))?;
    books.doc_index(kind, &key)
}

fn with_errors(el: &Map<String, Value>, errors: Vec<String>) -> ElementResult {
    Err((Value::Object(el.clone()), errors))
}

/// `PUT`/`POST /Payments` for one element: against an invoice, or a refund of a credit note.
fn create_payment(books: &mut Books, el: &Map<String, Value>, ctx: &Ctx<'_>) -> ElementResult {
    let mut errors = Vec::new();
    let doc_idx = match (field(el, "Invoice"), field(el, "CreditNote")) {
        (Some(Value::Object(o)), _) => named_doc(books, DocKind::Invoice, o),
        (_, Some(Value::Object(o))) => named_doc(books, DocKind::CreditNote, o),
        _ => text(el, "InvoiceNumber").and_then(|n| books.doc_index(DocKind::Invoice, &n)),
    };
    let Some(doc_idx) = doc_idx else {
        return with_errors(
            el,
            vec!["A payment must be made against an Invoice, CreditNote, Prepayment or Overpayment that exists.".into()],
        );
    };
    let account_key = match field(el, "Account") {
        Some(Value::Object(a)) => text(a, "AccountID")
            .filter(|s| !s.is_empty())
            .or_else(|| text(a, "Code").filter(|s| !s.is_empty())),
        _ => None,
    };
    let account = match &account_key {
        None => {
            errors.push("Account code or ID must be specified".to_owned());
            None
        }
        Some(key) => match find_account(key) {
            None => {
                errors.push(format!(
                    "Account code '{key}' is not a valid code for this document."
                ));
                None
            }
            Some(a) if a.status == "ARCHIVED" => {
                errors.push(format!("Account code '{}' has been archived, or has been deleted. Each line item must reference a valid account.", a.code));
                None
            }
            Some(a) if a.kind != "BANK" && !a.enable_payments => {
                errors.push(format!("Account code '{}' cannot be used for payments: the account must be a bank account or have payments enabled.", a.code));
                None
            }
            Some(a) => Some(a),
        },
    };
    let date = match field(el, "Date") {
        Some(v) => parse_day(v).unwrap_or_else(|| {
            errors.push("Date must be a valid date (YYYY-MM-DD).".to_owned());
            today(ctx.now)
        }),
        None => today(ctx.now),
    };
    let amount = match field(el, "Amount").map(|v| parse_scaled(v, 2)) {
        Some(Some(a)) if a > 0 => a,
        Some(Some(_)) => {
            errors.push("Payment amount must be greater than zero.".to_owned());
            0
        }
        _ => {
            errors.push("Payment amount must be specified.".to_owned());
            0
        }
    };
    let doc = &books.docs[doc_idx];
    if doc.status != "AUTHORISED" {
        errors.push("Payments can only be made against Authorised documents".to_owned());
    } else if amount > books.outstanding(doc) {
        errors.push(OVERPAID.to_owned());
    }
    if let Some(e) = lock_error(ctx.lock, date) {
        errors.push(e);
    }
    if !errors.is_empty() {
        return with_errors(el, errors);
    }
    let payment = Payment {
        id: new_id(),
        doc_id: doc.id.clone(),
        account_code: account.map_or_else(String::new, |a| a.code.to_owned()),
        date,
        amount,
        reference: text(el, "Reference").filter(|s| !s.is_empty()),
        status: "AUTHORISED".into(),
        is_reconciled: field(el, "IsReconciled")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        updated_ms: ctx.now,
    };
    let doc_id = payment.doc_id.clone();
    books.payments.push(payment);
    books.settle(&doc_id, date, ctx.now);
    let p = books
        .payments
        .last()
        .ok_or((Value::Null, vec!["lost".to_owned()]))?;
    Ok(render_payment(books, p))
}

/// `POST /Payments/{id}` with `Status: DELETED`: the payment is reversed.
fn delete_payment(
    books: &mut Books,
    idx: usize,
    el: &Map<String, Value>,
    ctx: &Ctx<'_>,
) -> ElementResult {
    match text(el, "Status").map(|s| s.to_ascii_uppercase()) {
        Some(s) if s == "DELETED" => {}
        _ => {
            return with_errors(
                el,
                vec!["Payments cannot be edited: only Status DELETED can be sent.".into()],
            );
        }
    }
    if books.payments[idx].status == "DELETED" {
        return with_errors(el, vec!["This payment has already been deleted.".into()]);
    }
    if let Some(e) = lock_error(ctx.lock, books.payments[idx].date) {
        return with_errors(el, vec![e]);
    }
    let p = &mut books.payments[idx];
    p.status = "DELETED".into();
    p.updated_ms = bump(p.updated_ms, ctx.now);
    let (doc_id, date) = (p.doc_id.clone(), p.date);
    books.settle(&doc_id, date, ctx.now);
    Ok(render_payment(books, &books.payments[idx]))
}

/// `PUT /CreditNotes/{id}/Allocations` for one element.
fn create_allocation(
    books: &mut Books,
    cn_idx: usize,
    el: &Map<String, Value>,
    ctx: &Ctx<'_>,
) -> ElementResult {
    let mut errors = Vec::new();
    let inv_idx = match field(el, "Invoice") {
        Some(Value::Object(o)) => named_doc(books, DocKind::Invoice, o),
        _ => None,
    };
    let Some(inv_idx) = inv_idx else {
        return with_errors(
            el,
            vec!["An Invoice that exists must be specified for the allocation.".into()],
        );
    };
    let date = field(el, "Date")
        .and_then(parse_day)
        .unwrap_or(today(ctx.now));
    let amount = field(el, "Amount")
        .and_then(|v| parse_scaled(v, 2))
        .unwrap_or(0);
    let (cn, inv) = (&books.docs[cn_idx], &books.docs[inv_idx]);
    if amount <= 0 {
        errors.push("The allocation amount must be greater than zero.".to_owned());
    }
    if cn.status != "AUTHORISED" {
        errors.push(
            "Credit Note not of valid status for allocation: it must be AUTHORISED.".to_owned(),
        );
    }
    if inv.status != "AUTHORISED" {
        errors
            .push("Invoice not of valid status for allocation: it must be AUTHORISED.".to_owned());
    }
    if cn.contact_id != inv.contact_id {
        errors.push("The credit note and the invoice must be for the same contact.".to_owned());
    }
    if (cn.doc_type == "ACCRECCREDIT") != (inv.doc_type == "ACCREC") {
        errors.push("A sales credit note can only be allocated to a sales invoice.".to_owned());
    }
    if amount > books.outstanding(cn) {
        errors.push(
            "The amount allocated exceeds the remaining credit on the credit note.".to_owned(),
        );
    }
    if amount > books.outstanding(inv) {
        errors.push(OVERPAID.to_owned());
    }
    if let Some(e) = lock_error(ctx.lock, date) {
        errors.push(e);
    }
    if !errors.is_empty() {
        return with_errors(el, errors);
    }
    let a = Allocation {
        id: new_id(),
        credit_note_id: cn.id.clone(),
        invoice_id: inv.id.clone(),
        amount,
        date,
        deleted: false,
    };
    let (cn_id, inv_id) = (a.credit_note_id.clone(), a.invoice_id.clone());
    books.allocations.push(a);
    books.settle(&cn_id, date, ctx.now);
    books.settle(&inv_id, date, ctx.now);
    let a = books
        .allocations
        .last()
        .ok_or((Value::Null, vec!["lost".to_owned()]))?;
    Ok(render_allocation(books, a))
}

// ---------------------------------------------------------------------------------------------
// The `where` filter
// ---------------------------------------------------------------------------------------------

/// A value in a `where` expression.
#[derive(Clone, Debug, PartialEq)]
enum Val {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    /// Milliseconds since the epoch (`DateTime(...)` literals and `/Date(...)/` fields).
    Date(i64),
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    Dot,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '.' => {
                out.push(Tok::Dot);
                i += 1;
            }
            '"' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("Unterminated string literal".into()),
                        Some('\\') => {
                            if let Some(&n) = chars.get(i + 1) {
                                text.push(n);
                            }
                            i += 2;
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            text.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(text));
            }
            '=' | '!' | '<' | '>' | '&' | '|' => {
                let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
                let op = match two.as_str() {
                    "==" => Some("=="),
                    "!=" => Some("!="),
                    "<=" => Some("<="),
                    ">=" => Some(">="),
                    "&&" => Some("AND"),
                    "||" => Some("OR"),
                    _ => None,
                };
                if let Some(op) = op {
                    out.push(Tok::Op(op));
                    i += 2;
                } else {
                    let op = match c {
                        '<' => "<",
                        '>' => ">",
                        '!' => "NOT",
                        '=' => "==",
                        _ => return Err(format!("Syntax error '{c}'")),
                    };
                    out.push(Tok::Op(op));
                    i += 1;
                }
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_ascii_digit() || *c == '.')
                {
                    i += 1;
                }
                let lit: String = chars[start..i].iter().collect();
                let n = lit
                    .trim_end_matches(['m', 'M'])
                    .parse()
                    .map_err(|_| format!("Invalid number '{lit}'"))?;
                if chars.get(i).is_some_and(|c| *c == 'm' || *c == 'M') {
                    i += 1;
                }
                out.push(Tok::Num(n));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                match word.to_ascii_uppercase().as_str() {
                    "AND" => out.push(Tok::Op("AND")),
                    "OR" => out.push(Tok::Op("OR")),
                    "NOT" => out.push(Tok::Op("NOT")),
                    _ => out.push(Tok::Ident(word)),
                }
            }
            _ => return Err(format!("Syntax error '{c}'")),
        }
    }
    Ok(out)
}

/// A parsed `where` expression.
#[derive(Debug)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(Box<Expr>, &'static str, Box<Expr>),
    Lit(Val),
    Path(Vec<String>),
    Call(Box<Expr>, String, Vec<Expr>),
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn expect(&mut self, t: &Tok) -> Result<(), String> {
        if self.next().as_ref() == Some(t) {
            Ok(())
        } else {
            Err(format!("Expected {t:?}"))
        }
    }
    fn or(&mut self) -> Result<Expr, String> {
        self.depth += 1;
        if self.depth > 64 {
            return Err("Expression too deeply nested".into());
        }
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::Op("OR")) {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        self.depth -= 1;
        Ok(left)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Tok::Op("AND")) {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek() == Some(&Tok::Op("NOT")) {
            self.pos += 1;
            self.depth += 1;
            if self.depth > 64 {
                return Err("Expression too deeply nested".into());
            }
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        let left = self.operand()?;
        if let Some(Tok::Op(op @ ("==" | "!=" | "<" | "<=" | ">" | ">="))) = self.peek().cloned() {
            self.pos += 1;
            let right = self.operand()?;
            return Ok(Expr::Cmp(Box::new(left), op, Box::new(right)));
        }
        Ok(left)
    }
    fn operand(&mut self) -> Result<Expr, String> {
        let mut e = match self.next() {
            Some(Tok::LParen) => {
                let e = self.or()?;
                self.expect(&Tok::RParen)?;
                e
            }
            Some(Tok::Str(s)) => Expr::Lit(Val::Str(s)),
            Some(Tok::Num(n)) => Expr::Lit(Val::Num(n)),
            Some(Tok::Ident(w)) => match w.to_ascii_lowercase().as_str() {
                "true" => Expr::Lit(Val::Bool(true)),
                "false" => Expr::Lit(Val::Bool(false)),
                "null" => Expr::Lit(Val::Null),
                "guid" if self.peek() == Some(&Tok::LParen) => {
                    self.pos += 1;
                    let Some(Tok::Str(s)) = self.next() else {
                        return Err("Guid() takes a string".into());
                    };
                    self.expect(&Tok::RParen)?;
                    Expr::Lit(Val::Str(s.to_lowercase()))
                }
                "datetime" if self.peek() == Some(&Tok::LParen) => {
                    self.pos += 1;
                    let mut parts = Vec::new();
                    loop {
                        match self.next() {
                            Some(Tok::Num(n)) => parts.push(n as i64),
                            Some(Tok::Str(s)) => {
                                let ms = parse_if_modified_since(&s)
                                    .map(|ms| ms as i64)
                                    .or_else(|| {
                                        parse_day(&Value::String(s)).map(|d| d * MS_PER_DAY)
                                    })
                                    .ok_or("DateTime() takes a date")?;
                                parts = vec![ms];
                                self.expect(&Tok::RParen)?;
                                break;
                            }
                            _ => return Err("DateTime() takes numbers".into()),
                        }
                        match self.next() {
                            Some(Tok::Comma) => {}
                            Some(Tok::RParen) => break,
                            _ => return Err("Expected , or )".into()),
                        }
                    }
                    let ms = match parts.as_slice() {
                        [ms] => *ms,
                        [y @ 1..=9999, m @ 1..=12, d @ 1..=31, rest @ ..]
                            if rest.len() <= 3 && rest.iter().all(|v| (0..=60).contains(v)) =>
                        {
                            let hms = [rest.first(), rest.get(1), rest.get(2)]
                                .map(|v| v.copied().unwrap_or(0));
                            days_from_civil(*y, *m, *d) * MS_PER_DAY
                                + hms[0] * 3_600_000
                                + hms[1] * 60_000
                                + hms[2] * 1000
                        }
                        _ => return Err("DateTime() takes a year, month and day".into()),
                    };
                    Expr::Lit(Val::Date(ms))
                }
                _ => {
                    let mut path = vec![w];
                    while self.peek() == Some(&Tok::Dot) {
                        match self.toks.get(self.pos + 1) {
                            Some(Tok::Ident(next))
                                if self.toks.get(self.pos + 2) != Some(&Tok::LParen) =>
                            {
                                path.push(next.clone());
                                self.pos += 2;
                            }
                            _ => break,
                        }
                    }
                    Expr::Path(path)
                }
            },
            other => return Err(format!("Unexpected {other:?}")),
        };
        while self.peek() == Some(&Tok::Dot) {
            self.pos += 1;
            let Some(Tok::Ident(method)) = self.next() else {
                return Err("Expected a method name".into());
            };
            self.expect(&Tok::LParen)?;
            let mut args = Vec::new();
            if self.peek() != Some(&Tok::RParen) {
                loop {
                    args.push(self.or()?);
                    if self.peek() == Some(&Tok::Comma) {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
            }
            self.expect(&Tok::RParen)?;
            e = Expr::Call(Box::new(e), method, args);
        }
        Ok(e)
    }
}

fn parse_where(s: &str) -> Result<Expr, String> {
    if s.len() > MAX_WHERE {
        return Err("The where clause is too long".into());
    }
    let mut p = Parser {
        toks: tokenize(s)?,
        pos: 0,
        depth: 0,
    };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err(format!("Syntax error near {:?}", p.toks.get(p.pos)));
    }
    Ok(e)
}

fn to_val(v: Option<&Value>) -> Val {
    match v {
        None | Some(Value::Null) => Val::Null,
        Some(Value::Bool(b)) => Val::Bool(*b),
        Some(Value::Number(n)) => Val::Num(n.as_f64().unwrap_or(0.0)),
        Some(Value::String(s)) => {
            if let Some(n) = marked_number(s) {
                Val::Num(n)
            } else if let Some(ms) = parse_ms_date(s) {
                Val::Date(ms)
            } else {
                Val::Str(s.clone())
            }
        }
        Some(_) => Val::Null,
    }
}

fn lookup<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for key in path {
        let map = cur.as_object()?;
        cur = map.get(key).or_else(|| {
            map.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })?;
    }
    Some(cur)
}

fn eval(e: &Expr, obj: &Value) -> Result<Val, String> {
    Ok(match e {
        Expr::Or(a, b) => Val::Bool(truthy(&eval(a, obj)?) || truthy(&eval(b, obj)?)),
        Expr::And(a, b) => Val::Bool(truthy(&eval(a, obj)?) && truthy(&eval(b, obj)?)),
        Expr::Not(a) => Val::Bool(!truthy(&eval(a, obj)?)),
        Expr::Lit(v) => v.clone(),
        Expr::Path(p) => to_val(lookup(obj, p)),
        Expr::Cmp(a, op, b) => {
            let (a, b) = (eval(a, obj)?, eval(b, obj)?);
            Val::Bool(compare(&a, op, &b))
        }
        Expr::Call(target, method, args) => {
            let t = eval(target, obj)?;
            let arg = match args.first() {
                Some(a) => Some(eval(a, obj)?),
                None => None,
            };
            let s = match &t {
                Val::Str(s) => s.clone(),
                Val::Null => {
                    return Ok(
                        if method.eq_ignore_ascii_case("ToLower")
                            || method.eq_ignore_ascii_case("ToUpper")
                        {
                            Val::Null
                        } else {
                            Val::Bool(false)
                        },
                    );
                }
                other => format!("{other:?}"),
            };
            let arg_s = match &arg {
                Some(Val::Str(a)) => a.clone(),
                _ => String::new(),
            };
            match method.to_ascii_lowercase().as_str() {
                "tolower" => Val::Str(s.to_lowercase()),
                "toupper" => Val::Str(s.to_uppercase()),
                "contains" => Val::Bool(s.contains(&arg_s)),
                "startswith" => Val::Bool(s.starts_with(&arg_s)),
                "endswith" => Val::Bool(s.ends_with(&arg_s)),
                other => return Err(format!("No applicable method '{other}' exists")),
            }
        }
    })
}

fn truthy(v: &Val) -> bool {
    matches!(v, Val::Bool(true))
}

fn compare(a: &Val, op: &str, b: &Val) -> bool {
    use std::cmp::Ordering as O;
    let ord = match (a, b) {
        (Val::Str(x), Val::Str(y)) => {
            // Guids compare without regard to case.
            let guid = |s: &str| s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4;
            if guid(x) && guid(y) {
                Some(x.to_lowercase().cmp(&y.to_lowercase()))
            } else {
                Some(x.cmp(y))
            }
        }
        (Val::Num(x), Val::Num(y)) => x.partial_cmp(y),
        (Val::Date(x), Val::Date(y)) => Some(x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        (Val::Null, Val::Null) => Some(O::Equal),
        _ => None,
    };
    match (op, ord) {
        ("==", Some(o)) => o == O::Equal,
        ("!=", Some(o)) => o != O::Equal,
        ("!=", None) => true,
        ("<", Some(o)) => o == O::Less,
        ("<=", Some(o)) => o != O::Greater,
        (">", Some(o)) => o == O::Greater,
        (">=", Some(o)) => o != O::Less,
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// The Accounting API
// ---------------------------------------------------------------------------------------------

/// A response before it is sent: kept whole so it can be logged and stored for an
/// `Idempotency-Key`.
struct Answer {
    status: StatusCode,
    content_type: String,
    body: String,
    headers: Vec<(&'static str, String)>,
    note: String,
}

impl Answer {
    fn json(status: StatusCode, v: &Value) -> Self {
        Answer {
            status,
            content_type: "application/json; charset=utf-8".into(),
            body: to_xero_json(v),
            headers: Vec::new(),
            note: String::new(),
        }
    }

    fn text(status: StatusCode, s: &str) -> Self {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            body: s.to_owned(),
            headers: Vec::new(),
            note: String::new(),
        }
    }

    /// Xero's problem-details shape (401, 403 and the like).
    fn problem(status: StatusCode, title: &str, detail: &str) -> Self {
        Self::json(
            status,
            &json!({
                "Type": null,
                "Title": title,
                "Status": status.as_u16(),
                "Detail": detail,
                "Instance": new_id(),
                "Extensions": {},
            }),
        )
    }

    fn not_found() -> Self {
        Self::text(StatusCode::NOT_FOUND, NOT_FOUND_TEXT)
    }

    fn post_data_invalid(message: &str) -> Self {
        Self::json(
            StatusCode::BAD_REQUEST,
            &json!({ "ErrorNumber": 14, "Type": "PostDataInvalidException", "Message": message }),
        )
    }

    fn query_parse(message: &str) -> Self {
        Self::json(
            StatusCode::BAD_REQUEST,
            &json!({ "ErrorNumber": 16, "Type": "QueryParseException", "Message": message }),
        )
    }

    fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    fn into_response(self) -> Response {
        let mut resp = (self.status, self.body).into_response();
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.content_type) {
            h.insert(header::CONTENT_TYPE, v);
        }
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        resp
    }
}

fn rate_headers(a: &mut Answer, r: Remaining) {
    a.headers.push(("X-DayLimit-Remaining", r.day.to_string()));
    a.headers
        .push(("X-MinLimit-Remaining", r.minute.to_string()));
    a.headers
        .push(("X-AppMinLimit-Remaining", r.app_minute.to_string()));
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = header_str(headers, "authorization")?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether the client asked for JSON (`Accept: application/json`, possibly among others).
fn accepts_json(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',').any(|part| {
                let media = part.split(';').next().unwrap_or_default().trim();
                media.eq_ignore_ascii_case("application/json")
                    || media.eq_ignore_ascii_case("text/json")
            })
        })
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
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

/// Query parameters; Xero reads their names without regard to case.
struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    fn parse(uri: &Uri) -> Self {
        QueryParams(
            url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn flag(&self, name: &str) -> Option<bool> {
        self.get(name).map(|v| v.eq_ignore_ascii_case("true"))
    }
    fn list(&self, name: &str) -> Option<Vec<String>> {
        self.get(name).map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
    }
}

/// The scopes that allow a call: writes need the full scope, reads also take `.read`.
fn allowed_by(scopes: &[String], collection: &str, write: bool) -> bool {
    let needs: &[&str] = match (collection, write) {
        ("organisation" | "accounts" | "taxrates", false) => {
            &["accounting.settings", "accounting.settings.read"]
        }
        ("organisation" | "accounts" | "taxrates", true) => &["accounting.settings"],
        ("contacts", false) => &["accounting.contacts", "accounting.contacts.read"],
        ("contacts", true) => &["accounting.contacts"],
        ("invoices" | "creditnotes", false) => &[
            "accounting.invoices",
            "accounting.invoices.read",
            "accounting.transactions",
            "accounting.transactions.read",
        ],
        ("invoices" | "creditnotes", true) => &["accounting.invoices", "accounting.transactions"],
        ("payments", false) => &[
            "accounting.payments",
            "accounting.payments.read",
            "accounting.transactions",
            "accounting.transactions.read",
        ],
        ("payments", true) => &["accounting.payments", "accounting.transactions"],
        _ => return true,
    };
    needs.iter().any(|n| scopes.iter().any(|s| s == n))
}

/// `MM/DD/YYYY HH:MM:SS`, as Xero's `TokenExpired` detail writes the time.
fn us_time(ms: u64) -> String {
    let iso = iso_utc(ms);
    format!(
        "{}/{}/{} {}",
        &iso[5..7],
        &iso[8..10],
        &iso[..4],
        &iso[11..19]
    )
}

/// Every `/api.xro/2.0/...` request: pending actions, then the call, then the log.
async fn handle_api(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.apply_pending_actions();
    let path = uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let answer = api(&inner, &method, &uri, &headers, &body).await;
    inner.record(
        method.as_str(),
        &path,
        answer.status.as_u16(),
        answer.note.clone(),
    );
    answer.into_response()
}

async fn api(
    inner: &Inner,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Answer {
    let cfg = &inner.cfg;
    let faults = &cfg.faults;
    let now = inner.now_ms();
    let current = |inner: &Inner| {
        let mut l = lock(&inner.limits);
        l.prune(inner.now_ms());
        l.remaining(&inner.cfg)
    };
    if faults.api_down.load(Ordering::SeqCst) {
        let mut a = Answer::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "The Xero API is currently offline for maintenance. Please try again later.",
        )
        .note("fault: API down");
        rate_headers(&mut a, current(inner));
        return a;
    }
    if crate::controls::take_one(&faults.fail_next) {
        let mut a = Answer::problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An error occurred",
            "An error occurred in Xero. Check the API Status page http://status.developer.xero.com for current service status.",
        )
        .note("fault: 500");
        rate_headers(&mut a, current(inner));
        return a;
    }
    let Some(token) = bearer(headers) else {
        return Answer::problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "AuthenticationUnsuccessful",
        )
        .note("no bearer token");
    };
    let Some(access) = lock(&inner.store).access_tokens.get(token).cloned() else {
        return Answer::problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "AuthenticationUnsuccessful",
        )
        .note("unknown or revoked token");
    };
    if access.expires_ms <= now {
        return Answer::problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            &format!(
                "TokenExpired: token expired at {}",
                us_time(access.expires_ms)
            ),
        )
        .note("token expired");
    }
    let tenant = header_str(headers, "xero-tenant-id")
        .unwrap_or_default()
        .to_owned();
    let connected = lock(&inner.store)
        .connections
        .iter()
        .any(|c| c.client_id == access.client_id && c.tenant_id.eq_ignore_ascii_case(&tenant));
    if !connected || !tenant.eq_ignore_ascii_case(&cfg.tenant_id) {
        return Answer::problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "AuthorizationUnsuccessful",
        )
        .note("tenant missing or not connected");
    }
    if crate::controls::take_one(&faults.rate_limit_next) {
        let secs = match faults.retry_after_secs.load(Ordering::SeqCst) {
            0 => 2,
            n => n,
        };
        let mut a =
            Answer::text(StatusCode::TOO_MANY_REQUESTS, "").note("429 minute (fault: storm)");
        a.headers.push(("Retry-After", secs.to_string()));
        a.headers.push(("X-Rate-Limit-Problem", "minute".into()));
        let mut r = current(inner);
        r.minute = 0;
        rate_headers(&mut a, r);
        return a;
    }
    let in_flight = inner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _guard = InFlight(&inner.in_flight);
    if in_flight > cfg.concurrent_limit {
        let mut a = Answer::text(StatusCode::TOO_MANY_REQUESTS, "").note("429 concurrent");
        a.headers.push(("Retry-After", "1".into()));
        a.headers
            .push(("X-Rate-Limit-Problem", "concurrent".into()));
        rate_headers(&mut a, current(inner));
        return a;
    }
    let taken = lock(&inner.limits).take(cfg, now);
    let remaining = match taken {
        Ok(r) => r,
        Err((problem, secs)) => {
            let mut a =
                Answer::text(StatusCode::TOO_MANY_REQUESTS, "").note(format!("429 {problem}"));
            a.headers.push(("Retry-After", secs.to_string()));
            a.headers.push(("X-Rate-Limit-Problem", problem.into()));
            rate_headers(&mut a, current(inner));
            return a;
        }
    };
    let delay = faults.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay.min(60_000))).await;
    }
    let mut answer = api_call(inner, &access, method, uri, headers, body);
    rate_headers(&mut answer, remaining);
    answer
}

/// An authenticated, counted call: content negotiation, scopes, idempotency, the endpoint.
fn api_call(
    inner: &Inner,
    access: &AccessToken,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Answer {
    if !accepts_json(headers) {
        return Answer::text(
            StatusCode::NOT_ACCEPTABLE,
            "This Xero stand-in answers JSON only: send Accept: application/json (real Xero would answer XML).",
        )
        .note("406: no Accept: application/json");
    }
    let rest = uri.path().strip_prefix(API_PATH).unwrap_or_default();
    let segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let collection = segments
        .first()
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    let collection = if collection == "organisations" {
        "organisation".to_owned()
    } else {
        collection
    };
    let write = matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if !allowed_by(&access.scopes, &collection, write) {
        return Answer::problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "AuthorizationUnsuccessful",
        )
        .note(format!("scope missing for {collection}"));
    }
    let idempotency_key = matches!(*method, Method::POST | Method::PUT | Method::PATCH)
        .then(|| header_str(headers, "idempotency-key"))
        .flatten()
        .map(str::to_owned);
    if idempotency_key
        .as_ref()
        .is_some_and(|k| k.len() > MAX_IDEMPOTENCY_KEY)
    {
        return Answer::problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "The Idempotency-Key header must not be longer than 128 characters.",
        );
    }
    let fingerprint = {
        let mut h = Sha256::new();
        h.update(method.as_str().as_bytes());
        h.update(b" ");
        h.update(
            uri.path_and_query()
                .map(|p| p.as_str())
                .unwrap_or_default()
                .as_bytes(),
        );
        h.update(b"\n");
        h.update(body);
        hex::encode(h.finalize())
    };
    let now = inner.now_ms();
    let window = inner.cfg.idempotency_window.as_millis() as u64;
    let mut store = lock(&inner.store);
    if let Some(key) = &idempotency_key {
        store.idempotency.retain(|s| s.created_ms + window > now);
        if let Some(saved) = store
            .idempotency
            .iter()
            .find(|s| s.client_id == access.client_id && &s.key == key)
        {
            if saved.fingerprint != fingerprint {
                return Answer::problem(
                    StatusCode::BAD_REQUEST,
                    "Bad Request",
                    &format!("Idempotency key {key} is used with a different request. Use a new key for a different request."),
                )
                .note("idempotency key reused with a different request");
            }
            return Answer {
                status: StatusCode::from_u16(saved.status).unwrap_or(StatusCode::OK),
                content_type: saved.content_type.clone(),
                body: saved.body.clone(),
                headers: Vec::new(),
                note: "idempotent replay".into(),
            };
        }
    }
    let query = QueryParams::parse(uri);
    let before = snapshot(&store.books);
    let (answer, changed) = route(
        inner, &mut store, access, method, &segments, &query, headers, body, now,
    );
    if changed {
        inner.emit_changes(&mut store, &before);
    }
    let saved_key = idempotency_key.is_some();
    if let Some(key) = idempotency_key {
        store.idempotency.push(SavedResponse {
            client_id: access.client_id.clone(),
            key,
            fingerprint,
            status: answer.status.as_u16(),
            body: answer.body.clone(),
            content_type: answer.content_type.clone(),
            created_ms: now,
        });
    }
    if (changed || saved_key)
        && let Some(path) = &inner.cfg.state_file
    {
        crate::common::save_state(path, &*store, "Xero");
    }
    answer
}

/// Xero's response envelope.
fn envelope(
    cfg: &XeroStandinConfig,
    now: u64,
    key: &str,
    items: Vec<Value>,
    pagination: Option<Value>,
) -> Value {
    let mut o = Map::new();
    o.insert("Id".into(), json!(new_id()));
    o.insert("Status".into(), json!("OK"));
    o.insert("ProviderName".into(), json!(cfg.app_name));
    o.insert("DateTimeUTC".into(), json!(format!("/Date({now})/")));
    if let Some(p) = pagination {
        o.insert("pagination".into(), p);
    }
    o.insert(key.into(), Value::Array(items));
    Value::Object(o)
}

/// Filters (`If-Modified-Since`, `where`), pages and wraps a list.
fn list_answer(
    cfg: &XeroStandinConfig,
    now: u64,
    key: &str,
    mut items: Vec<Value>,
    query: &QueryParams,
    headers: &HeaderMap,
) -> Answer {
    if let Some(since) = header_str(headers, "if-modified-since") {
        let Some(since) = parse_if_modified_since(since) else {
            return Answer::query_parse(
                "The If-Modified-Since header is not a valid date and time.",
            );
        };
        items.retain(|v| {
            v.get("UpdatedDateUTC")
                .and_then(Value::as_str)
                .and_then(parse_ms_date)
                .is_some_and(|ms| ms > since as i64)
        });
    }
    if let Some(w) = query.get("where").filter(|w| !w.trim().is_empty()) {
        let expr = match parse_where(w) {
            Ok(e) => e,
            Err(e) => return Answer::query_parse(&e),
        };
        let mut kept = Vec::with_capacity(items.len());
        for v in items {
            match eval(&expr, &v) {
                Ok(r) if truthy(&r) => kept.push(v),
                Ok(_) => {}
                Err(e) => return Answer::query_parse(&e),
            }
        }
        items = kept;
    }
    let pagination = match query.get("page") {
        Some(p) => {
            let page: usize = p.parse().unwrap_or(1).max(1);
            let size: usize = query
                .get("pageSize")
                .and_then(|s| s.parse().ok())
                .unwrap_or(PAGE_SIZE)
                .clamp(1, MAX_PAGE_SIZE);
            let count = items.len();
            items = items
                .into_iter()
                .skip((page - 1) * size)
                .take(size)
                .collect();
            Some(json!({
                "page": page,
                "pageSize": size,
                "pageCount": count.div_ceil(size),
                "itemCount": count,
            }))
        }
        None => None,
    };
    Answer::json(StatusCode::OK, &envelope(cfg, now, key, items, pagination))
}

/// The elements of a write body: `{"Invoices":[...]}`, or one bare element.
fn elements(body: &[u8], key: &str) -> Result<Vec<Map<String, Value>>, Answer> {
    let mut v: Value = serde_json::from_slice(body)
        .map_err(|e| Answer::post_data_invalid(&format!("Invalid Json data: {e}")))?;
    scrub(&mut v);
    let Value::Object(obj) = v else {
        return Err(Answer::post_data_invalid(
            "The request body must be a JSON object.",
        ));
    };
    match field(&obj, key) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_object().cloned().ok_or_else(|| {
                    Answer::post_data_invalid(&format!("Each of {key} must be an object."))
                })
            })
            .collect(),
        Some(_) => Err(Answer::post_data_invalid(&format!("{key} must be a list."))),
        None => Ok(vec![obj]),
    }
}

/// Runs a write element by element. With `summarize` (Xero's default) one bad element fails
/// the call with `400 ValidationException` and nothing is saved; without it every good
/// element is saved and each comes back with its `StatusAttributeString`.
fn run_batch(
    books: &mut Books,
    cfg: &XeroStandinConfig,
    now: u64,
    key: &str,
    els: Vec<Map<String, Value>>,
    summarize: bool,
    mut op: impl FnMut(&mut Books, &Map<String, Value>) -> ElementResult,
) -> (Answer, bool) {
    let mut scratch = books.clone();
    let mut out = Vec::with_capacity(els.len());
    let mut failed = Vec::new();
    for el in &els {
        let mut attempt = scratch.clone();
        match op(&mut attempt, el) {
            Ok(mut v) => {
                scratch = attempt;
                if let Some(o) = v.as_object_mut() {
                    o.insert("StatusAttributeString".into(), json!("OK"));
                }
                out.push(v);
            }
            Err((mut v, errors)) => {
                if let Some(o) = v.as_object_mut() {
                    o.insert("HasErrors".into(), json!(true));
                    o.insert("HasValidationErrors".into(), json!(true));
                    if !summarize {
                        o.insert("StatusAttributeString".into(), json!("ERROR"));
                    }
                    o.insert(
                        "ValidationErrors".into(),
                        Value::Array(errors.iter().map(|m| json!({ "Message": m })).collect()),
                    );
                }
                failed.push(v.clone());
                out.push(v);
            }
        }
    }
    if summarize && !failed.is_empty() {
        let body = json!({
            "ErrorNumber": 10,
            "Type": "ValidationException",
            "Message": "A validation exception occurred",
            "Elements": failed,
        });
        return (
            Answer::json(StatusCode::BAD_REQUEST, &body).note("validation error"),
            false,
        );
    }
    let note = if failed.is_empty() {
        String::new()
    } else {
        format!(
            "{} of {} elements failed validation",
            failed.len(),
            els.len()
        )
    };
    *books = scratch;
    (
        Answer::json(StatusCode::OK, &envelope(cfg, now, key, out, None)).note(note),
        true,
    )
}

#[allow(clippy::too_many_arguments)]
fn route(
    inner: &Inner,
    store: &mut Store,
    access: &AccessToken,
    method: &Method,
    segments: &[String],
    query: &QueryParams,
    headers: &HeaderMap,
    body: &[u8],
    now: u64,
) -> (Answer, bool) {
    let cfg = &inner.cfg;
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let head = seg
        .first()
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    let summarize = query.flag("summarizeErrors").unwrap_or(true);
    let unitdp4 = query.get("unitdp") == Some("4");
    let ctx = Ctx {
        now,
        client_id: &access.client_id,
        lock: store.lock_dates.unwrap_or_default(),
        faults: &cfg.faults,
        put: *method == Method::PUT,
        unitdp4,
    };
    let unchanged = |a: Answer| (a, false);
    let books = &mut store.books;
    match (method.as_str(), head.as_str(), &seg[1.min(seg.len())..]) {
        ("GET", "organisation" | "organisations", []) => unchanged(Answer::json(
            StatusCode::OK,
            &envelope(
                cfg,
                now,
                "Organisations",
                vec![render_organisation(cfg, ctx.lock)],
                None,
            ),
        )),
        ("GET", "accounts", []) => unchanged(list_answer(
            cfg,
            now,
            "Accounts",
            ACCOUNTS.iter().map(render_account).collect(),
            query,
            headers,
        )),
        ("GET", "accounts", [id]) => unchanged(
            match find_account(id).filter(|a| account_id(a.code).eq_ignore_ascii_case(id)) {
                Some(a) => Answer::json(
                    StatusCode::OK,
                    &envelope(cfg, now, "Accounts", vec![render_account(a)], None),
                ),
                None => Answer::not_found(),
            },
        ),
        ("GET", "taxrates", []) => {
            let mut rates: Vec<Value> = TAX_RATES.iter().map(render_tax_rate).collect();
            if let Some(t) = query.get("TaxType") {
                rates.retain(|r| {
                    r["TaxType"]
                        .as_str()
                        .is_some_and(|x| x.eq_ignore_ascii_case(t))
                });
            }
            unchanged(list_answer(cfg, now, "TaxRates", rates, query, headers))
        }
        ("GET", "taxrates", [t]) => unchanged(match find_tax_rate(t) {
            Some(r) => Answer::json(
                StatusCode::OK,
                &envelope(cfg, now, "TaxRates", vec![render_tax_rate(r)], None),
            ),
            None => Answer::not_found(),
        }),
        ("GET", "contacts", []) => {
            let ids = query
                .list("IDs")
                .map(|v| v.iter().map(|s| s.to_lowercase()).collect::<Vec<_>>());
            let archived = query.flag("includeArchived").unwrap_or(false);
            let term = query.get("searchTerm").map(str::to_lowercase);
            let items = books
                .contacts
                .iter()
                .filter(|c| archived || c.status != "ARCHIVED" || ids.is_some())
                .filter(|c| {
                    ids.as_ref()
                        .is_none_or(|ids| ids.contains(&c.id.to_lowercase()))
                })
                .filter(|c| {
                    term.as_ref().is_none_or(|t| {
                        [
                            Some(&c.name),
                            c.first_name.as_ref(),
                            c.last_name.as_ref(),
                            c.contact_number.as_ref(),
                            c.email.as_ref(),
                        ]
                        .into_iter()
                        .flatten()
                        .any(|f| f.to_lowercase().contains(t))
                    })
                })
                .map(render_contact)
                .collect();
            unchanged(list_answer(cfg, now, "Contacts", items, query, headers))
        }
        ("GET", "contacts", [id]) => unchanged(match books.contact_index_by(id) {
            Some(i) => Answer::json(
                StatusCode::OK,
                &envelope(
                    cfg,
                    now,
                    "Contacts",
                    vec![render_contact(&books.contacts[i])],
                    None,
                ),
            ),
            None => Answer::not_found(),
        }),
        ("PUT" | "POST", "contacts", []) => match elements(body, "Contacts") {
            Ok(els) => run_batch(books, cfg, now, "Contacts", els, summarize, |b, el| {
                upsert_contact(b, el, None, &ctx)
            }),
            Err(a) => unchanged(a),
        },
        ("POST", "contacts", [id]) => {
            let Some(i) = books.contact_index_by(id) else {
                return unchanged(Answer::not_found());
            };
            let cid = books.contacts[i].id.clone();
            match elements(body, "Contacts") {
                Ok(els) => run_batch(books, cfg, now, "Contacts", els, summarize, |b, el| {
                    upsert_contact(b, el, Some(&cid), &ctx)
                }),
                Err(a) => unchanged(a),
            }
        }
        ("GET", kind @ ("invoices" | "creditnotes"), []) => {
            let kind = if kind == "invoices" {
                DocKind::Invoice
            } else {
                DocKind::CreditNote
            };
            let lower = |v: Option<Vec<String>>| {
                v.map(|v| v.iter().map(|s| s.to_lowercase()).collect::<Vec<_>>())
            };
            let ids = lower(query.list("IDs"));
            let numbers = query.list(if kind == DocKind::Invoice {
                "InvoiceNumbers"
            } else {
                "CreditNoteNumbers"
            });
            let contacts = lower(query.list("ContactIDs"));
            let statuses = query
                .list("Statuses")
                .map(|v| v.iter().map(|s| s.to_ascii_uppercase()).collect::<Vec<_>>());
            let mine = query.flag("createdByMyApp").unwrap_or(false);
            let term = query.get("searchTerm").map(str::to_lowercase);
            let with_lines =
                query.get("page").is_some() && !query.flag("summaryOnly").unwrap_or(false);
            let items = books
                .docs
                .iter()
                .filter(|d| d.kind == kind)
                .filter(|d| {
                    ids.as_ref()
                        .is_none_or(|v| v.contains(&d.id.to_lowercase()))
                })
                .filter(|d| {
                    numbers
                        .as_ref()
                        .is_none_or(|v| d.number.as_ref().is_some_and(|n| v.contains(n)))
                })
                .filter(|d| {
                    contacts
                        .as_ref()
                        .is_none_or(|v| v.contains(&d.contact_id.to_lowercase()))
                })
                .filter(|d| statuses.as_ref().is_none_or(|v| v.contains(&d.status)))
                .filter(|d| !mine || d.created_by.as_deref() == Some(access.client_id.as_str()))
                .filter(|d| {
                    term.as_ref().is_none_or(|t| {
                        [d.number.as_ref(), d.reference.as_ref()]
                            .into_iter()
                            .flatten()
                            .any(|f| f.to_lowercase().contains(t))
                    })
                })
                .map(|d| render_doc(books, d, with_lines, unitdp4))
                .collect();
            unchanged(list_answer(
                cfg,
                now,
                kind.collection(),
                items,
                query,
                headers,
            ))
        }
        ("GET", "invoices", [id, online]) if online.eq_ignore_ascii_case("OnlineInvoice") => {
            unchanged(match books.doc_index(DocKind::Invoice, id) {
                Some(i) => Answer::json(
                    StatusCode::OK,
                    &json!({ "OnlineInvoices": [{ "OnlineInvoiceUrl": format!("{}/_standin#{}", inner.base_url, books.docs[i].id) }] }),
                ),
                None => Answer::not_found(),
            })
        }
        ("GET", kind @ ("invoices" | "creditnotes"), [id]) => {
            let kind = if kind == "invoices" {
                DocKind::Invoice
            } else {
                DocKind::CreditNote
            };
            unchanged(match books.doc_index(kind, id) {
                Some(i) => Answer::json(
                    StatusCode::OK,
                    &envelope(
                        cfg,
                        now,
                        kind.collection(),
                        vec![render_doc(books, &books.docs[i], true, unitdp4)],
                        None,
                    ),
                ),
                None => Answer::not_found(),
            })
        }
        ("PUT" | "POST", kind @ ("invoices" | "creditnotes"), []) => {
            let kind = if kind == "invoices" {
                DocKind::Invoice
            } else {
                DocKind::CreditNote
            };
            match elements(body, kind.collection()) {
                Ok(els) => run_batch(
                    books,
                    cfg,
                    now,
                    kind.collection(),
                    els,
                    summarize,
                    |b, el| upsert_doc(b, kind, el, None, &ctx),
                ),
                Err(a) => unchanged(a),
            }
        }
        ("POST", kind @ ("invoices" | "creditnotes"), [id]) => {
            let kind = if kind == "invoices" {
                DocKind::Invoice
            } else {
                DocKind::CreditNote
            };
            let Some(i) = books.doc_index(kind, id) else {
                return unchanged(Answer::not_found());
            };
            let did = books.docs[i].id.clone();
            match elements(body, kind.collection()) {
                Ok(els) => run_batch(
                    books,
                    cfg,
                    now,
                    kind.collection(),
                    els,
                    summarize,
                    |b, el| upsert_doc(b, kind, el, Some(&did), &ctx),
                ),
                Err(a) => unchanged(a),
            }
        }
        ("PUT" | "POST", "creditnotes", [id, alloc])
            if alloc.eq_ignore_ascii_case("Allocations") =>
        {
            let Some(i) = books.doc_index(DocKind::CreditNote, id) else {
                return unchanged(Answer::not_found());
            };
            match elements(body, "Allocations") {
                Ok(els) => run_batch(books, cfg, now, "Allocations", els, summarize, |b, el| {
                    create_allocation(b, i, el, &ctx)
                }),
                Err(a) => unchanged(a),
            }
        }
        ("DELETE", "creditnotes", [id, alloc, aid])
            if alloc.eq_ignore_ascii_case("Allocations") =>
        {
            let Some(cn) = books.doc_index(DocKind::CreditNote, id) else {
                return unchanged(Answer::not_found());
            };
            let cn_id = books.docs[cn].id.clone();
            let Some(ai) = books.allocations.iter().position(|a| {
                a.id.eq_ignore_ascii_case(aid) && a.credit_note_id == cn_id && !a.deleted
            }) else {
                return unchanged(Answer::not_found());
            };
            if let Some(e) = lock_error(ctx.lock, books.allocations[ai].date) {
                let body = json!({
                    "ErrorNumber": 10, "Type": "ValidationException",
                    "Message": "A validation exception occurred",
                    "Elements": [{ "AllocationID": aid, "ValidationErrors": [{ "Message": e }] }],
                });
                return unchanged(Answer::json(StatusCode::BAD_REQUEST, &body));
            }
            books.allocations[ai].deleted = true;
            let (inv_id, date) = (
                books.allocations[ai].invoice_id.clone(),
                books.allocations[ai].date,
            );
            books.settle(&cn_id, date, now);
            books.settle(&inv_id, date, now);
            let v = render_allocation(books, &books.allocations[ai]);
            (
                Answer::json(
                    StatusCode::OK,
                    &envelope(cfg, now, "Allocations", vec![v], None),
                ),
                true,
            )
        }
        ("GET", "payments", []) => {
            let items = books
                .payments
                .iter()
                .map(|p| render_payment(books, p))
                .collect();
            unchanged(list_answer(cfg, now, "Payments", items, query, headers))
        }
        ("GET", "payments", [id]) => unchanged(
            match books
                .payments
                .iter()
                .find(|p| p.id.eq_ignore_ascii_case(id))
            {
                Some(p) => Answer::json(
                    StatusCode::OK,
                    &envelope(cfg, now, "Payments", vec![render_payment(books, p)], None),
                ),
                None => Answer::not_found(),
            },
        ),
        ("PUT" | "POST", "payments", []) => match elements(body, "Payments") {
            Ok(els) => run_batch(books, cfg, now, "Payments", els, summarize, |b, el| {
                create_payment(b, el, &ctx)
            }),
            Err(a) => unchanged(a),
        },
        ("POST", "payments", [id]) => {
            let Some(i) = books
                .payments
                .iter()
                .position(|p| p.id.eq_ignore_ascii_case(id))
            else {
                return unchanged(Answer::not_found());
            };
            match elements(body, "Payments") {
                Ok(els) => run_batch(books, cfg, now, "Payments", els, summarize, |b, el| {
                    delete_payment(b, i, el, &ctx)
                }),
                Err(a) => unchanged(a),
            }
        }
        (
            _,
            "organisation" | "organisations" | "accounts" | "taxrates" | "contacts" | "invoices"
            | "creditnotes" | "payments",
            _,
        ) => unchanged(Answer::text(
            StatusCode::METHOD_NOT_ALLOWED,
            "The requested method is not supported by this endpoint.",
        )),
        _ => unchanged(Answer::not_found()),
    }
}

// ---------------------------------------------------------------------------------------------
// Identity: consent, tokens, revocation, connections
// ---------------------------------------------------------------------------------------------

/// The scopes Xero knows (broad, granular and identity ones).
const KNOWN_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "offline_access",
    "accounting.transactions",
    "accounting.transactions.read",
    "accounting.contacts",
    "accounting.contacts.read",
    "accounting.settings",
    "accounting.settings.read",
    "accounting.attachments",
    "accounting.attachments.read",
    "accounting.invoices",
    "accounting.invoices.read",
    "accounting.payments",
    "accounting.payments.read",
    "accounting.banktransactions",
    "accounting.banktransactions.read",
    "accounting.manualjournals",
    "accounting.manualjournals.read",
    "accounting.reports.read",
    "accounting.journals.read",
    "accounting.budgets.read",
    "accounting.reports.aged.read",
    "accounting.reports.balancesheet.read",
    "accounting.reports.banksummary.read",
    "accounting.reports.budgetsummary.read",
    "accounting.reports.executivesummary.read",
    "accounting.reports.profitandloss.read",
    "accounting.reports.trialbalance.read",
    "accounting.reports.taxreports.read",
];
/// The broad scopes an app registered after 2 March 2026 may not ask for.
const BROAD_SCOPES: &[&str] = &[
    "accounting.transactions",
    "accounting.transactions.read",
    "accounting.reports.read",
];

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::Rng::fill(&mut rand::thread_rng(), &mut buf[..]);
    hex::encode(buf)
}

fn jwt(key: &[u8], claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    // HMAC takes keys of any length, so this never fails.
    let Ok(mut mac) = <HmacSha256 as Mac>::new_from_slice(key) else {
        return signing_input;
    };
    mac.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// An authorisation request that has been checked.
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    state: Option<String>,
    challenge: Option<String>,
}

enum AuthProblem {
    /// Shown as a page: the client or redirect URI cannot be trusted with a redirect.
    Page(String),
    /// Sent back to the redirect URI as `?error=...`.
    Redirect(String, &'static str, String),
}

fn param<'a>(p: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    p.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
}

fn check_authorize(
    cfg: &XeroStandinConfig,
    p: &HashMap<String, String>,
) -> Result<AuthRequest, AuthProblem> {
    let client_id = param(p, "client_id").unwrap_or_default();
    if client_id != cfg.client_id {
        return Err(AuthProblem::Page(
            "unauthorized_client: Invalid client_id".into(),
        ));
    }
    let redirect_uri = param(p, "redirect_uri").unwrap_or_default();
    let parsed = url::Url::parse(redirect_uri)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"));
    if parsed.is_none()
        || (!cfg.redirect_uris.is_empty() && !cfg.redirect_uris.iter().any(|r| r == redirect_uri))
    {
        return Err(AuthProblem::Page(
            "invalid_request: Invalid redirect_uri".into(),
        ));
    }
    let redirect = |error: &'static str, description: &str| {
        Err(AuthProblem::Redirect(
            redirect_uri.to_owned(),
            error,
            description.to_owned(),
        ))
    };
    if param(p, "response_type") != Some("code") {
        return redirect(
            "unsupported_response_type",
            "Only response_type=code is supported",
        );
    }
    let scopes: Vec<String> = param(p, "scope")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() {
        return redirect("invalid_scope", "No scope was requested");
    }
    if let Some(bad) = scopes.iter().find(|s| !KNOWN_SCOPES.contains(&s.as_str())) {
        return redirect("invalid_scope", &format!("Unknown scope {bad}"));
    }
    if !cfg.legacy_app
        && let Some(broad) = scopes.iter().find(|s| BROAD_SCOPES.contains(&s.as_str()))
    {
        return redirect(
            "invalid_scope",
            &format!(
                "Apps created on or after 2 March 2026 cannot request {broad}; use the granular scopes"
            ),
        );
    }
    let challenge = param(p, "code_challenge").map(str::to_owned);
    if challenge.is_some() && param(p, "code_challenge_method") != Some("S256") {
        return redirect("invalid_request", "code_challenge_method must be S256");
    }
    Ok(AuthRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        scopes,
        state: param(p, "state").map(str::to_owned),
        challenge,
    })
}

fn redirect_with(uri: &str, pairs: &[(&str, &str)], state: Option<&str>) -> Response {
    let Ok(mut url) = url::Url::parse(uri) else {
        return (StatusCode::BAD_REQUEST, "invalid redirect_uri").into_response();
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
        if let Some(s) = state {
            q.append_pair("state", s);
        }
    }
    // Xero answers 302 Found.
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(url.as_str()) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn auth_error_page(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(page(
            "Xero: error",
            &format!(
                "<h1>Sorry, something went wrong</h1><div class=\"alert\" role=\"alert\">{}</div>\
                 <p class=\"note\">Xero stand-in: the authorisation request was refused and the \
                 app's redirect URI was not trusted with the answer.</p>",
                esc(message)
            ),
            false,
        )),
    )
        .into_response()
}

/// `GET /identity/connect/authorize`: the consent page.
async fn show_consent(
    State(inner): State<Arc<Inner>>,
    Query(p): Query<HashMap<String, String>>,
) -> Response {
    let req = match check_authorize(&inner.cfg, &p) {
        Ok(r) => r,
        Err(AuthProblem::Page(m)) => return auth_error_page(&m),
        Err(AuthProblem::Redirect(uri, error, description)) => {
            return redirect_with(
                &uri,
                &[("error", error), ("error_description", &description)],
                param(&p, "state"),
            );
        }
    };
    let hidden: String = [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    ]
    .iter()
    .filter_map(|k| p.get(*k).map(|v| (k, v)))
    .map(|(k, v)| format!("<input type=\"hidden\" name=\"{k}\" value=\"{}\">", esc(v)))
    .collect();
    let scopes: String = req
        .scopes
        .iter()
        .map(|s| format!("<li><code>{}</code></li>", esc(s)))
        .collect();
    let body = format!(
        "<h1>{app} wants to connect to Xero</h1>\
         <p>{app} will be able to use the data of the organisation you choose:</p><ul>{scopes}</ul>\
         <form method=\"post\" action=\"/identity/connect/authorize\">{hidden}\
         <fieldset><legend>Organisation</legend>\
         <label><input type=\"radio\" name=\"tenant\" value=\"{tid}\" checked style=\"width:auto\"> {tname}</label>\
         </fieldset>\
         <button class=\"primary\" type=\"submit\" name=\"decision\" value=\"allow\">Allow access</button>\
         <button class=\"secondary\" type=\"submit\" name=\"decision\" value=\"deny\">Cancel</button>\
         </form><p class=\"note\">Xero stand-in: no Xero account is involved. {pkce}</p>",
        app = esc(&inner.cfg.app_name),
        tid = esc(&inner.cfg.tenant_id),
        tname = esc(&inner.cfg.tenant_name),
        pkce = if req.challenge.is_some() {
            "PKCE (S256) in use."
        } else {
            ""
        },
    );
    (
        StatusCode::OK,
        Html(page("Xero: allow access", &body, false)),
    )
        .into_response()
}

/// `POST /identity/connect/authorize`: the Allow or Cancel button.
async fn submit_consent(
    State(inner): State<Arc<Inner>>,
    Form(p): Form<HashMap<String, String>>,
) -> Response {
    let req = match check_authorize(&inner.cfg, &p) {
        Ok(r) => r,
        Err(AuthProblem::Page(m)) => return auth_error_page(&m),
        Err(AuthProblem::Redirect(uri, error, description)) => {
            return redirect_with(
                &uri,
                &[("error", error), ("error_description", &description)],
                param(&p, "state"),
            );
        }
    };
    if param(&p, "decision") != Some("allow") {
        inner.record("POST", "/identity/connect/authorize", 302, "consent denied");
        return redirect_with(
            &req.redirect_uri,
            &[("error", "access_denied")],
            req.state.as_deref(),
        );
    }
    let tenant = param(&p, "tenant")
        .unwrap_or(&inner.cfg.tenant_id)
        .to_owned();
    if !tenant.eq_ignore_ascii_case(&inner.cfg.tenant_id) {
        return auth_error_page("The organisation chosen is not one you can connect.");
    }
    let code = random_hex(32);
    let now = inner.now_ms();
    inner.mutate(|store| {
        let ttl = inner.cfg.code_ttl.as_millis() as u64;
        store.codes.retain(|c| c.created_ms + ttl > now && !c.used);
        store.codes.push(AuthCode {
            code: code.clone(),
            client_id: req.client_id.clone(),
            redirect_uri: req.redirect_uri.clone(),
            scopes: req.scopes.clone(),
            tenant_id: inner.cfg.tenant_id.clone(),
            challenge: req.challenge.clone(),
            created_ms: now,
            used: false,
        });
    });
    inner.record("POST", "/identity/connect/authorize", 302, "consent given");
    redirect_with(
        &req.redirect_uri,
        &[("code", &code), ("scope", &req.scopes.join(" "))],
        req.state.as_deref(),
    )
}

fn oauth_error(error: &str, description: &str) -> Response {
    let mut resp = (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": error, "error_description": description })),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The client id and secret of a token or revocation call: HTTP Basic, or the form.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Option<(String, Option<String>)> {
    if let Some(v) = header_str(headers, "authorization") {
        let (scheme, b64) = v.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = STANDARD.decode(b64.trim()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (id, secret) = text.split_once(':')?;
        return Some((id.to_owned(), Some(secret.to_owned())));
    }
    let id = param(form, "client_id")?;
    Some((
        id.to_owned(),
        param(form, "client_secret").map(str::to_owned),
    ))
}

fn parse_form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

impl Inner {
    /// A new access token (and refresh token, with `offline_access`) for a grant.
    fn issue_tokens(&self, store: &mut Store, grant_idx: usize, now: u64) -> Value {
        let cfg = &self.cfg;
        let grant = &store.grants[grant_idx];
        let exp = now + cfg.access_token_ttl.as_millis() as u64;
        let claims = json!({
            "nbf": now / 1000,
            "exp": exp / 1000,
            "iss": "https://identity.xero.com",
            "aud": "https://identity.xero.com/resources",
            "client_id": grant.client_id,
            "sub": grant.user_id.replace('-', ""),
            "auth_time": grant.created_ms / 1000,
            "xero_userid": grant.user_id,
            "global_session_id": grant.auth_event_id.replace('-', ""),
            "sid": grant.auth_event_id.replace('-', ""),
            "jti": random_hex(16),
            "authentication_event_id": grant.auth_event_id,
            "scope": grant.scopes,
            "amr": ["pwd"],
        });
        let access_token = jwt(&self.token_key, &claims);
        store
            .access_tokens
            .retain(|_, t| t.expires_ms + 3_600_000 > now);
        store.access_tokens.insert(
            access_token.clone(),
            AccessToken {
                auth_event_id: grant.auth_event_id.clone(),
                client_id: grant.client_id.clone(),
                scopes: grant.scopes.clone(),
                expires_ms: exp,
            },
        );
        let mut out = Map::new();
        if grant.scopes.iter().any(|s| s == "openid") {
            let id_claims = json!({
                "nbf": now / 1000,
                "exp": now / 1000 + 300,
                "iss": "https://identity.xero.com",
                "aud": grant.client_id,
                "iat": now / 1000,
                "sid": grant.auth_event_id.replace('-', ""),
                "sub": grant.user_id.replace('-', ""),
                "auth_time": grant.created_ms / 1000,
                "xero_userid": grant.user_id,
                "global_session_id": grant.auth_event_id.replace('-', ""),
                "preferred_username": "tester@example.co.za",
                "email": "tester@example.co.za",
                "given_name": "Thandi",
                "family_name": "Tester",
                "name": "Thandi Tester",
            });
            out.insert(
                "id_token".into(),
                json!(jwt(cfg.client_secret.as_bytes(), &id_claims)),
            );
        }
        out.insert("access_token".into(), json!(access_token));
        out.insert("expires_in".into(), json!(cfg.access_token_ttl.as_secs()));
        out.insert("token_type".into(), json!("Bearer"));
        if grant.scopes.iter().any(|s| s == "offline_access") {
            let refresh = random_hex(32);
            out.insert("refresh_token".into(), json!(refresh));
            store.grants[grant_idx].refresh_tokens.push(RefreshToken {
                token: refresh,
                issued_ms: now,
                used_ms: None,
                dead: false,
            });
        }
        out.insert(
            "scope".into(),
            json!(store.grants[grant_idx].scopes.join(" ")),
        );
        Value::Object(out)
    }
}

/// `GET /.well-known/openid-configuration`: where the endpoints are, for a client that
/// discovers them. The tokens are HS256-signed (the id token with the client secret), not
/// RS256 as at Xero, so there is no JWKS to fetch.
async fn discovery(State(inner): State<Arc<Inner>>) -> Response {
    let base = &inner.base_url;
    axum::Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/identity/connect/authorize"),
        "token_endpoint": format!("{base}/connect/token"),
        "revocation_endpoint": format!("{base}/connect/revocation"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": KNOWN_SCOPES,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "id_token_signing_alg_values_supported": ["HS256"],
    }))
    .into_response()
}

/// `POST /connect/token`: the authorisation code and refresh token grants.
async fn token(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&body);
    let cfg = &inner.cfg;
    let grant_type = param(&form, "grant_type").unwrap_or_default().to_owned();
    let Some((client_id, secret)) = client_credentials(&headers, &form) else {
        inner.record("POST", "/connect/token", 400, "invalid_client");
        return oauth_error("invalid_client", "Client authentication failed");
    };
    if client_id != cfg.client_id || secret.as_ref().is_some_and(|s| s != &cfg.client_secret) {
        inner.record("POST", "/connect/token", 400, "invalid_client");
        return oauth_error("invalid_client", "Client authentication failed");
    }
    let now = inner.now_ms();
    let result: Result<Value, (&str, String)> = inner.mutate(|store| match grant_type.as_str() {
        "authorization_code" => {
            let code = param(&form, "code").unwrap_or_default();
            let ttl = cfg.code_ttl.as_millis() as u64;
            let Some(c) = store.codes.iter_mut().find(|c| c.code == code) else {
                return Err((
                    "invalid_grant",
                    "The authorisation code is not known".into(),
                ));
            };
            if c.used || c.created_ms + ttl <= now || c.client_id != client_id {
                c.used = true;
                return Err((
                    "invalid_grant",
                    "The authorisation code is used, expired or not this client's".into(),
                ));
            }
            // Burnt by any exchange that reaches it, failed or not: a code works once.
            c.used = true;
            if param(&form, "redirect_uri").is_some_and(|r| r != c.redirect_uri) {
                return Err((
                    "invalid_grant",
                    "redirect_uri does not match the authorisation request".into(),
                ));
            }
            match (&c.challenge, param(&form, "code_verifier")) {
                (Some(challenge), Some(verifier)) => {
                    let well_formed = (43..=128).contains(&verifier.len())
                        && verifier
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
                    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
                    if !well_formed || !guards::signature::same(&computed, challenge) {
                        return Err((
                            "invalid_grant",
                            "The code_verifier does not match the code_challenge".into(),
                        ));
                    }
                }
                (Some(_), None) => {
                    return Err(("invalid_grant", "code_verifier is required".into()));
                }
                (None, _) if secret.is_none() => {
                    return Err((
                        "invalid_client",
                        "A client secret is required without PKCE".into(),
                    ));
                }
                (None, _) => {}
            }
            let (scopes, tenant) = (c.scopes.clone(), c.tenant_id.clone());
            let auth_event_id = new_id();
            store.grants.push(Grant {
                auth_event_id: auth_event_id.clone(),
                client_id: client_id.clone(),
                user_id: "5d3c2b1a-0f9e-4d8c-8b7a-6f5e4d3c2b1a".into(),
                scopes,
                public: secret.is_none(),
                created_ms: now,
                revoked: false,
                refresh_tokens: Vec::new(),
            });
            match store
                .connections
                .iter_mut()
                .find(|c| c.client_id == client_id && c.tenant_id == tenant)
            {
                Some(conn) => {
                    conn.updated_ms = now;
                    conn.auth_event_id = auth_event_id;
                }
                None => store.connections.push(Connection {
                    id: new_id(),
                    client_id: client_id.clone(),
                    auth_event_id,
                    tenant_id: tenant,
                    created_ms: now,
                    updated_ms: now,
                }),
            }
            let idx = store.grants.len() - 1;
            Ok(inner.issue_tokens(store, idx, now))
        }
        "refresh_token" => {
            let token = param(&form, "refresh_token").unwrap_or_default();
            let found = store.grants.iter().enumerate().find_map(|(g, grant)| {
                grant
                    .refresh_tokens
                    .iter()
                    .position(|t| t.token == token)
                    .map(|t| (g, t))
            });
            let Some((g, t)) = found else {
                return Err(("invalid_grant", "The refresh token is not known".into()));
            };
            let grant = &store.grants[g];
            if grant.client_id != client_id {
                return Err((
                    "invalid_grant",
                    "The refresh token was issued to another client".into(),
                ));
            }
            if secret.is_none() && !grant.public {
                return Err(("invalid_client", "Client authentication failed".into()));
            }
            let rt = &grant.refresh_tokens[t];
            if grant.revoked
                || rt.dead
                || rt.issued_ms + cfg.refresh_token_ttl.as_millis() as u64 <= now
            {
                return Err((
                    "invalid_grant",
                    "The refresh token has been revoked or has expired".into(),
                ));
            }
            if let Some(used) = rt.used_ms {
                let later_unused = grant.refresh_tokens[t + 1..]
                    .iter()
                    .all(|l| l.used_ms.is_none());
                if now.saturating_sub(used) >= cfg.refresh_grace.as_millis() as u64 || !later_unused
                {
                    return Err((
                        "invalid_grant",
                        "The refresh token has already been used".into(),
                    ));
                }
                // A retry within the grace period: the answer the client never saw is void.
                for later in &mut store.grants[g].refresh_tokens[t + 1..] {
                    later.dead = true;
                }
            } else {
                store.grants[g].refresh_tokens[t].used_ms = Some(now);
            }
            Ok(inner.issue_tokens(store, g, now))
        }
        _ => Err((
            "unsupported_grant_type",
            format!("grant_type {grant_type} is not supported"),
        )),
    });
    match result {
        Ok(v) => {
            inner.record("POST", "/connect/token", 200, grant_type);
            let mut resp = (StatusCode::OK, axum::Json(v)).into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err((error, description)) => {
            inner.record(
                "POST",
                "/connect/token",
                400,
                format!("{grant_type}: {error}"),
            );
            oauth_error(error, &description)
        }
    }
}

/// `POST /identity/connect/revocation`: revoking a refresh token disconnects the app from
/// every organisation the user connected it to.
async fn revoke(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&body);
    let cfg = &inner.cfg;
    match client_credentials(&headers, &form) {
        Some((id, secret))
            if id == cfg.client_id && secret.as_ref().is_none_or(|s| s == &cfg.client_secret) => {}
        _ => {
            inner.record("POST", "/connect/revocation", 400, "invalid_client");
            return oauth_error("invalid_client", "Client authentication failed");
        }
    }
    let token = param(&form, "token").unwrap_or_default().to_owned();
    let revoked = inner.mutate(|store| {
        let known = store.grants.iter().any(|g| {
            g.client_id == cfg.client_id && g.refresh_tokens.iter().any(|t| t.token == token)
        });
        if known {
            store.revoke_client(&cfg.client_id);
        }
        known
    });
    inner.record(
        "POST",
        "/connect/revocation",
        200,
        if revoked {
            "grant revoked"
        } else {
            "unknown token (ignored)"
        },
    );
    StatusCode::OK.into_response()
}

/// The access token of a tenantless call, or the 401 to answer.
fn tenantless_auth(inner: &Inner, headers: &HeaderMap) -> Result<AccessToken, Answer> {
    let now = inner.now_ms();
    let token = bearer(headers).ok_or_else(|| {
        Answer::problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "AuthenticationUnsuccessful",
        )
    })?;
    let access = lock(&inner.store)
        .access_tokens
        .get(token)
        .cloned()
        .ok_or_else(|| {
            Answer::problem(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "AuthenticationUnsuccessful",
            )
        })?;
    if access.expires_ms <= now {
        return Err(Answer::problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            &format!(
                "TokenExpired: token expired at {}",
                us_time(access.expires_ms)
            ),
        ));
    }
    Ok(access)
}

fn iso_seconds(ms: u64) -> String {
    // Xero writes these as `2026-08-01T10:00:00.1234567`; milliseconds are close enough.
    iso_utc(ms).trim_end_matches('Z').to_owned()
}

/// `GET /connections`: the tenants the token's user connected this app to.
async fn list_connections(
    State(inner): State<Arc<Inner>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let app_left = lock(&inner.limits).take_app(&inner.cfg, inner.now_ms());
    let mut answer = match tenantless_auth(&inner, &headers) {
        Err(a) => a,
        Ok(access) => {
            let store = lock(&inner.store);
            let filter = q.get("authEventId").map(|s| s.to_lowercase());
            let list: Vec<Value> = store
                .connections
                .iter()
                .filter(|c| c.client_id == access.client_id)
                .filter(|c| {
                    filter
                        .as_ref()
                        .is_none_or(|f| &c.auth_event_id.to_lowercase() == f)
                })
                .map(|c| {
                    json!({
                        "id": c.id,
                        "authEventId": c.auth_event_id,
                        "tenantId": c.tenant_id,
                        "tenantType": "ORGANISATION",
                        "tenantName": inner.cfg.tenant_name,
                        "createdDateUtc": iso_seconds(c.created_ms),
                        "updatedDateUtc": iso_seconds(c.updated_ms),
                    })
                })
                .collect();
            Answer::json(StatusCode::OK, &Value::Array(list))
        }
    };
    answer
        .headers
        .push(("X-AppMinLimit-Remaining", app_left.to_string()));
    inner.record(
        "GET",
        "/connections",
        answer.status.as_u16(),
        answer.note.clone(),
    );
    answer.into_response()
}

/// `DELETE /connections/{id}`: disconnects one organisation.
async fn delete_connection(
    State(inner): State<Arc<Inner>>,
    method: Method,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let app_left = lock(&inner.limits).take_app(&inner.cfg, inner.now_ms());
    let mut answer = if method != Method::DELETE {
        Answer::text(
            StatusCode::METHOD_NOT_ALLOWED,
            "Only DELETE is supported here.",
        )
    } else {
        match tenantless_auth(&inner, &headers) {
            Err(a) => a,
            Ok(access) => {
                let removed = inner.mutate(|store| {
                    let before = store.connections.len();
                    store.connections.retain(|c| {
                        !(c.client_id == access.client_id && c.id.eq_ignore_ascii_case(&id))
                    });
                    before != store.connections.len()
                });
                if removed {
                    Answer::text(StatusCode::NO_CONTENT, "").note("connection deleted")
                } else {
                    Answer::not_found()
                }
            }
        }
    };
    answer
        .headers
        .push(("X-AppMinLimit-Remaining", app_left.to_string()));
    inner.record(
        method.as_str(),
        &format!("/connections/{id}"),
        answer.status.as_u16(),
        answer.note.clone(),
    );
    answer.into_response()
}

// ---------------------------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------------------------

/// `base64(HMAC-SHA256(key, body))`, Xero's `x-xero-signature`.
fn webhook_signature(key: &[u8], body: &[u8]) -> String {
    let Ok(mut mac) = <HmacSha256 as Mac>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The `UpdatedDateUTC` of every contact and document, to see what a change touched.
fn snapshot(books: &Books) -> HashMap<String, u64> {
    books
        .contacts
        .iter()
        .map(|c| (c.id.clone(), c.updated_ms))
        .chain(books.docs.iter().map(|d| (d.id.clone(), d.updated_ms)))
        .collect()
}

impl Inner {
    /// Queues one webhook payload with an event for each contact, invoice and credit note
    /// created or updated since `before` (Xero sends no events for payments: their invoice's
    /// UPDATE is the sign).
    fn emit_changes(&self, store: &mut Store, before: &HashMap<String, u64>) {
        let Some(url) = lock(&self.webhook_url).clone() else {
            return;
        };
        let now = self.now_ms();
        let api = format!("{}{API_PATH}", self.base_url);
        let mut events = Vec::new();
        let mut push =
            |category: &str, collection: &str, id: &str, updated: u64, data: Option<Value>| {
                let event_type = match before.get(id) {
                    None => "CREATE",
                    Some(&prev) if prev != updated => "UPDATE",
                    Some(_) => return,
                };
                let mut e = json!({
                    "resourceUrl": format!("{api}/{collection}/{id}"),
                    "resourceId": id,
                    "eventDateUtc": iso_utc(now).trim_end_matches('Z'),
                    "eventType": event_type,
                    "eventCategory": category,
                    "tenantId": self.cfg.tenant_id,
                    "tenantType": "ORGANISATION",
                });
                if let Some(data) = data {
                    e["data"] = data;
                }
                events.push(e);
            };
        for c in &store.books.contacts {
            push("CONTACT", "Contacts", &c.id, c.updated_ms, None);
        }
        for d in &store.books.docs {
            match d.kind {
                DocKind::Invoice => push("INVOICE", "Invoices", &d.id, d.updated_ms, None),
                DocKind::CreditNote => push(
                    "CREDITNOTE",
                    "CreditNotes",
                    &d.id,
                    d.updated_ms,
                    Some(json!({ "Type": d.doc_type, "Status": d.status })),
                ),
            }
        }
        if events.is_empty() {
            return;
        }
        let first = store.webhook_seq + 1;
        store.webhook_seq += events.len() as u64;
        let kind = events
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["eventCategory"].as_str().unwrap_or_default(),
                    e["eventType"].as_str().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let id = events[0]["resourceId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let body = json!({
            "events": events,
            "firstEventSequence": first,
            "lastEventSequence": store.webhook_seq,
            "entropy": random_hex(10).to_uppercase(),
        });
        self.outbox.enqueue(Notification {
            id,
            kind,
            url,
            body: Bytes::from(body.to_string()),
            content_type: "application/json".into(),
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The admin page
// ---------------------------------------------------------------------------------------------

fn rand_text(cents: i64) -> String {
    format!("R {}", fmt_fixed(cents, 2, 2))
}

fn day_text(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn table(headings: &[&str], rows: Vec<String>) -> String {
    let head: String = headings
        .iter()
        .map(|h| format!("<th scope=\"col\">{h}</th>"))
        .collect();
    let body = if rows.is_empty() {
        format!("<tr><td colspan=\"{}\">None yet.</td></tr>", headings.len())
    } else {
        rows.concat()
    };
    format!("<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
}

fn cells(values: &[String]) -> String {
    let tds: String = values.iter().map(|v| format!("<td>{v}</td>")).collect();
    format!("<tr>{tds}</tr>")
}

/// `GET /_standin`: the books, the connections and the recent requests.
async fn show_admin(State(inner): State<Arc<Inner>>) -> Response {
    inner.apply_pending_actions();
    let cfg = &inner.cfg;
    let (books, connections, lock_dates) = {
        let store = lock(&inner.store);
        (
            store.books.clone(),
            store.connections.clone(),
            store.lock_dates.unwrap_or_default(),
        )
    };
    let requests = lock(&inner.log).clone();
    let lock_text = |d: Option<i64>| d.map_or("none".to_owned(), day_text);
    let mut body = format!(
        "<h1>Xero stand-in: {org}</h1><p>Authorise: <code>{base}/identity/connect/authorize</code>. \
         Token: <code>{base}/identity/connect/token</code>. Connections: <code>{base}/connections</code>. \
         API: <code>{base}{API_PATH}</code>. Client id <code>{client}</code>, tenant <code>{tenant}</code>.</p>\
         <p>Faults: {faults}. Lock dates: end of year {eoy}, period {period}. Limits: {min}/minute, \
         {day}/day, {conc} in flight. Idempotency keys kept {window} s.</p>\
         <form method=\"post\" action=\"/_standin/revoke\"><button class=\"secondary\" type=\"submit\">\
         Disconnect the app in Xero (revoke every grant)</button></form>",
        org = esc(&cfg.tenant_name),
        base = esc(&inner.base_url),
        client = esc(&cfg.client_id),
        tenant = esc(&cfg.tenant_id),
        faults = esc(&cfg.faults.describe()),
        eoy = lock_text(lock_dates.end_of_year),
        period = lock_text(lock_dates.period),
        min = cfg.minute_limit,
        day = cfg.day_limit,
        conc = cfg.concurrent_limit,
        window = cfg.idempotency_window.as_secs(),
    );
    body.push_str("<h2>Connections</h2>");
    body.push_str(&table(
        &[
            "Connection",
            "Tenant",
            "Auth event",
            "Created (UTC)",
            "Updated (UTC)",
        ],
        connections
            .iter()
            .map(|c| {
                cells(&[
                    esc(&c.id),
                    esc(&cfg.tenant_name),
                    esc(&c.auth_event_id),
                    esc(&iso_utc(c.created_ms)),
                    esc(&iso_utc(c.updated_ms)),
                ])
            })
            .collect(),
    ));
    body.push_str("<h2>Contacts</h2>");
    body.push_str(&table(
        &["Name", "Contact number", "Email", "Status", "Updated (UTC)"],
        books
            .contacts
            .iter()
            .map(|c| {
                cells(&[
                    esc(&c.name),
                    esc(c.contact_number.as_deref().unwrap_or("—")),
                    esc(c.email.as_deref().unwrap_or("—")),
                    esc(&c.status),
                    esc(&iso_utc(c.updated_ms)),
                ])
            })
            .collect(),
    ));
    let contact_name = |id: &str| books.contact(id).map_or("?".to_owned(), |c| c.name.clone());
    let doc_rows = |kind: DocKind| -> Vec<String> {
        books
            .docs
            .iter()
            .filter(|d| d.kind == kind)
            .rev()
            .map(|d| {
                let action = if kind == DocKind::Invoice
                    && matches!(d.status.as_str(), "DRAFT" | "SUBMITTED" | "AUTHORISED")
                {
                    format!(
                        "<form method=\"post\" action=\"/_standin/edit\"><input type=\"hidden\" name=\"invoice\" value=\"{}\">\
                         <button class=\"secondary\" type=\"submit\" name=\"edit\" value=\"details\">Edit in Xero</button></form>",
                        esc(&d.id)
                    )
                } else {
                    String::new()
                };
                cells(&[
                    format!("<span id=\"{}\">{}</span>", esc(&d.id), esc(d.number.as_deref().unwrap_or("—"))),
                    esc(d.reference.as_deref().unwrap_or("—")),
                    esc(&contact_name(&d.contact_id)),
                    day_text(d.date),
                    d.due_date.map_or("—".into(), day_text),
                    esc(&d.status),
                    esc(&d.line_amount_types),
                    rand_text(d.sub_total),
                    rand_text(d.total_tax),
                    rand_text(d.total),
                    rand_text(books.outstanding(d)),
                    format!("{}{}", esc(&iso_utc(d.updated_ms)), if d.edits_in_xero > 0 { format!(" (edited in Xero ×{})", d.edits_in_xero) } else { String::new() }),
                    action,
                ])
            })
            .collect()
    };
    body.push_str("<h2>Invoices</h2>");
    body.push_str(&table(
        &[
            "Number",
            "Reference",
            "Contact",
            "Date",
            "Due",
            "Status",
            "Amounts",
            "Subtotal",
            "VAT",
            "Total",
            "Due now",
            "Updated (UTC)",
            "",
        ],
        doc_rows(DocKind::Invoice),
    ));
    body.push_str("<h2>Credit notes</h2>");
    body.push_str(&table(
        &[
            "Number",
            "Reference",
            "Contact",
            "Date",
            "Due",
            "Status",
            "Amounts",
            "Subtotal",
            "VAT",
            "Total",
            "Remaining credit",
            "Updated (UTC)",
            "",
        ],
        doc_rows(DocKind::CreditNote),
    ));
    let number_of = |id: &str| {
        books
            .doc_by_id(id)
            .and_then(|d| d.number.clone())
            .unwrap_or_else(|| "?".into())
    };
    body.push_str("<h2>Payments and refunds</h2>");
    body.push_str(&table(
        &[
            "Date",
            "Against",
            "Kind",
            "Account",
            "Amount",
            "Status",
            "Reference",
        ],
        books
            .payments
            .iter()
            .rev()
            .map(|p| {
                let refund = books
                    .doc_by_id(&p.doc_id)
                    .is_some_and(|d| d.kind == DocKind::CreditNote);
                cells(&[
                    day_text(p.date),
                    esc(&number_of(&p.doc_id)),
                    if refund {
                        "refund of a credit note".into()
                    } else {
                        "payment".into()
                    },
                    esc(&p.account_code),
                    rand_text(p.amount),
                    esc(&p.status),
                    esc(p.reference.as_deref().unwrap_or("—")),
                ])
            })
            .collect(),
    ));
    body.push_str("<h2>Credit allocations</h2>");
    body.push_str(&table(
        &["Date", "Credit note", "Invoice", "Amount", "State"],
        books
            .allocations
            .iter()
            .rev()
            .map(|a| {
                cells(&[
                    day_text(a.date),
                    esc(&number_of(&a.credit_note_id)),
                    esc(&number_of(&a.invoice_id)),
                    rand_text(a.amount),
                    if a.deleted {
                        "deleted".into()
                    } else {
                        "applied".into()
                    },
                ])
            })
            .collect(),
    ));
    body.push_str(&format!(
        "<p>Webhooks to: <code>{}</code>.</p>",
        esc(lock(&inner.webhook_url).as_deref().unwrap_or("(none)"))
    ));
    body.push_str(&crate::payfast::delivery_table(&inner.outbox.log()));
    body.push_str("<h2>Recent requests</h2>");
    body.push_str(&table(
        &["At (UTC)", "Method", "Path", "Status", "Note"],
        requests
            .iter()
            .rev()
            .map(|r| {
                cells(&[
                    esc(&iso_utc(r.at_ms)),
                    esc(&r.method),
                    format!("<code>{}</code>", esc(&r.path)),
                    if r.status == 0 {
                        "—".into()
                    } else {
                        r.status.to_string()
                    },
                    esc(&r.note),
                ])
            })
            .collect(),
    ));
    (StatusCode::OK, Html(page("Xero stand-in", &body, true))).into_response()
}

/// `POST /_standin/edit`: the "Edit in Xero" button.
async fn admin_edit(
    State(inner): State<Arc<Inner>>,
    Form(p): Form<HashMap<String, String>>,
) -> Response {
    let standin = XeroStandin {
        inner: inner.clone(),
    };
    let edit = match param(&p, "edit") {
        Some("void") => XeroEdit::Void,
        _ => XeroEdit::Details,
    };
    let id = param(&p, "invoice").unwrap_or_default().to_owned();
    let note = match standin.edit_invoice_in_xero(&id, edit) {
        Ok(_) => "invoice edited in Xero".to_owned(),
        Err(e) => format!("edit refused: {e}"),
    };
    inner.record("POST", "/_standin/edit", 303, note);
    Redirect::to("/_standin").into_response()
}

/// `POST /_standin/revoke`: the "disconnect the app" button.
async fn admin_revoke(State(inner): State<Arc<Inner>>) -> Response {
    inner.mutate(|store| store.revoke_client(&inner.cfg.client_id));
    inner.record("POST", "/_standin/revoke", 303, "grants revoked");
    Redirect::to("/_standin").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inclusive_vat_is_backed_out_per_line_and_rounded_to_the_cent() {
        assert_eq!(line_tax(50_000, 1500, "Inclusive"), 6_522);
        assert_eq!(line_tax(11_500, 1500, "Inclusive"), 1_500);
        assert_eq!(line_tax(10_000, 1500, "Exclusive"), 1_500);
        assert_eq!(line_tax(333, 1500, "Exclusive"), 50);
        assert_eq!(line_tax(10_000, 1500, "NoTax"), 0);
    }

    #[test]
    fn decimals_are_read_exactly_and_written_with_fixed_places() {
        assert_eq!(parse_scaled(&json!(115.0), 2), Some(11_500));
        assert_eq!(parse_scaled(&json!("0.005"), 2), Some(1));
        assert_eq!(parse_scaled(&json!(-1.234), 2), Some(-123));
        assert_eq!(parse_scaled(&json!(1.5), 4), Some(15_000));
        assert_eq!(parse_scaled(&json!("1e5"), 2), None);
        assert_eq!(parse_scaled(&json!(true), 2), None);
        assert_eq!(fmt_fixed(6_522, 2, 2), "65.22");
        assert_eq!(fmt_fixed(-5, 2, 2), "-0.05");
        assert_eq!(fmt_fixed(1_150_000, 4, 2), "115.00");
        let body = to_xero_json(&json!({ "Total": money(50_000), "Name": "R 500" }));
        assert_eq!(body, r#"{"Name":"R 500","Total":500.00}"#);
    }

    #[test]
    fn dates_round_trip_through_days_and_ms_json() {
        let d = days_from_civil(2026, 8, 1);
        assert_eq!(civil_from_days(d), (2026, 8, 1));
        assert_eq!(parse_day(&json!("2026-08-01")), Some(d));
        assert_eq!(parse_day(&json!("2026-02-30")), None);
        assert_eq!(parse_day(&json!("/Date(1785542400000+0000)/")), Some(d));
        assert_eq!(day_date(d), json!("/Date(1785542400000+0000)/"));
        assert_eq!(lock_date_text(days_from_civil(2013, 7, 31)), "31-Jul-2013");
        assert_eq!(
            parse_if_modified_since("2026-08-01T10:00:00"),
            Some(1_785_578_400_000)
        );
        assert_eq!(
            parse_if_modified_since("Sat, 01 Aug 2026 10:00:00 GMT"),
            Some(1_785_578_400_000)
        );
        let date = time::Date::from_calendar_date(2026, time::Month::August, 1).expect("a date");
        assert_eq!(date_to_days(date), d);
    }

    #[test]
    fn where_filters_read_like_xeros() {
        let v = json!({
            "ContactNumber": "C-000123",
            "Name": "Acme Trading",
            "Total": money(50_000),
            "Date": day_date(days_from_civil(2026, 8, 1)),
            "Contact": { "ContactID": "8F2C6A1E-3B4D-4E5F-9A7B-0C1D2E3F4A5B" },
            "EnablePaymentsToAccount": false,
            "Type": "BANK",
        });
        let t = |w: &str| truthy(&eval(&parse_where(w).expect("parses"), &v).expect("evaluates"));
        assert!(t(r#"ContactNumber=="C-000123""#));
        assert!(!t(r#"ContactNumber=="c-000123""#));
        assert!(t(r#"Name.ToLower()=="acme trading""#));
        assert!(t(r#"Name.Contains("Trad") AND Total>=500"#));
        assert!(t(r#"Type=="BANK" OR EnablePaymentsToAccount==true"#));
        assert!(t(
            r#"Contact.ContactID==Guid("8f2c6a1e-3b4d-4e5f-9a7b-0c1d2e3f4a5b")"#
        ));
        assert!(t(
            "Date>=DateTime(2026, 08, 01) && Date<DateTime(2026,08,02)"
        ));
        assert!(t(r#"!(Name=="Other")"#));
        assert!(parse_where(r#"Name=="unterminated"#).is_err());
        assert!(parse_where("Name ==").is_err());
        assert!(parse_where(&"(".repeat(200)).is_err());
    }

    #[test]
    fn absurd_numbers_and_dates_are_refused_without_overflowing() {
        let ctx_faults = XeroFaults::default();
        let ctx = Ctx {
            now: 0,
            client_id: CLIENT_ID,
            lock: LockDates::default(),
            faults: &ctx_faults,
            put: true,
            unitdp4: false,
        };
        let mut errors = Vec::new();
        let li = json!({ "Quantity": "9999999999", "UnitAmount": "99999999999999.9999", "Description": "x" });
        let input = parse_line(
            li.as_object().expect("object"),
            &[],
            DocKind::Invoice,
            &ctx,
            &mut errors,
        );
        assert!(errors.iter().any(|e| e.contains("too large")), "{errors:?}");
        assert_eq!(input.line.line_amount, 0);
        let mut errors = Vec::new();
        let li = json!({ "Quantity": "999999999999999", "UnitAmount": 1 });
        parse_line(
            li.as_object().expect("object"),
            &[],
            DocKind::Invoice,
            &ctx,
            &mut errors,
        );
        assert_eq!(errors, ["Quantity must be a valid number."]);
        let mut errors = Vec::new();
        let li = json!({ "Quantity": 100000000, "UnitAmount": 99999999999.0, "Description": "x" });
        parse_line(
            li.as_object().expect("object"),
            &[],
            DocKind::Invoice,
            &ctx,
            &mut errors,
        );
        assert!(errors.iter().any(|e| e.contains("too large")), "{errors:?}");
        assert_eq!(
            parse_if_modified_since("Sat, 01 Aug 99999999999999999 10:00:00 GMT").map(|_| ()),
            Some(())
        );
        assert_eq!(parse_if_modified_since("2026-08-01T99:00:00"), None);
        assert_eq!(parse_if_modified_since("2026-08-01Té:00:00x"), None);
        assert!(parse_where("Date>DateTime(99999999999999999999, 1, 1)").is_err());
        // Read as the date alone, and no panic on the multi-byte character.
        assert!(parse_where(r#"Date>DateTime("2026-08-01Té:00:00")"#).is_ok());
        let _ = days_from_civil(i64::MAX, i64::MIN, i64::MAX);
    }

    #[test]
    fn the_number_mark_cannot_be_smuggled_in_by_a_client() {
        let mut v =
            json!({ "Name": format!("{NUMBER_MARK}1.00"), "L": [format!("a{NUMBER_MARK}")] });
        scrub(&mut v);
        assert_eq!(to_xero_json(&v), r#"{"L":["a"],"Name":"1.00"}"#);
    }
}
