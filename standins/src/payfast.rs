//! A local stand-in for PayFast, so demos and tests take deposits without a PayFast account or
//! network access, through the portal's production PayFast client, unchanged.
//!
//! PayFast is three services, and the stand-in serves all three on one listener:
//!
//! - the **hosted payment page**: the buyer's browser POSTs the signed checkout form to
//!   `/eng/process` ([`PayfastStandin::process_url`]); the stand-in checks the merchant, the
//!   merchant key and the signature as PayFast does ([`guards::payfast::verify_checkout`]),
//!   then shows a page to pay by card, pay by instant EFT, have the card declined, or cancel.
//!   Paying sends the **ITN** to `notify_url` (PayFast's field set and order, signed with the
//!   passphrase, retried as PayFast retries when the answer is not `200`) and *then* sends the
//!   browser to `return_url`, in that order, as PayFast does; cancelling sends it to
//!   `cancel_url` with no ITN;
//! - the **ITN confirmation**, `POST /eng/query/validate` ([`PayfastStandin::validate_url`]):
//!   `VALID` only when the posted parameter string is one of the ITNs it sent, `INVALID`
//!   otherwise;
//! - the **REST API** ([`PayfastStandin::api_url`], `/api` unless configured): `GET /ping`,
//!   `GET /process/query/{pf_payment_id}`, `GET /refunds/query/{id}`, `POST /refunds/{id}`
//!   and `GET /refunds/{id}`, each with the `merchant-id`, `version`, `timestamp` and
//!   `signature` headers checked ([`guards::payfast::api_signature`]), in PayFast's JSON and
//!   error shapes. `?testing=true` (the sandbox switch) is accepted and not signed.
//!
//! Amounts are rand with two decimals on the form and in the ITN, cents in the API, as at
//! PayFast. [`PayfastFaults`] make the API fail, the validate call answer `INVALID` or hang,
//! and the ITNs pause, drop, duplicate, lag or arrive out of order. `GET /_standin` shows
//! everything it holds.
//!
//! It is not a PayFast emulator: no subscriptions, tokenisation, split payments or Onsite;
//! `notify_url`'s port is not restricted (PayFast allows only 80, 443, 8080 and 8081, which a
//! loopback test cannot use); the fees are a simple made-up model; and the API timestamp's
//! freshness is not checked (PayFast documents no window).

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use guards::payfast as pf;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::common::{esc, lock, now_secs, page};
use crate::controls::PayfastFaults;
use crate::deliveries::{DeliveryAttempt, Notification, Outbox, OutboxConfig, accept_200};

/// PayFast's public sandbox merchant id. The stand-in accepts the sandbox's credentials, so the
/// portal's client can be pointed at either with the same settings, and the research notes'
/// test vectors apply as they are.
pub const MERCHANT_ID: &str = "10000100";
/// PayFast's public sandbox merchant key.
pub const MERCHANT_KEY: &str = "46f0cd694581a";
/// PayFast's public sandbox passphrase.
pub const PASSPHRASE: &str = "jt7NOE43FZPn";
/// Where the REST API is served unless configured otherwise (PayFast's is another host,
/// `api.payfast.co.za`, at its root).
pub const DEFAULT_API_PATH: &str = "/api";

/// Largest request body accepted (a checkout form is a few KiB).
const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long the hosted page waits for the first ITN attempt before it sends the buyer back.
const ITN_BEFORE_REDIRECT: Duration = Duration::from_secs(5);
/// How long the `validate_timeout` fault holds a validate call at most.
const VALIDATE_HOLD: Duration = Duration::from_secs(60);
/// The first `pf_payment_id` handed out.
const FIRST_PF_PAYMENT_ID: u64 = 1_200_001;
/// PayFast's payment method codes (`payment_method`), from its docs.
const PAYMENT_METHODS: [&str; 18] = [
    "ef", "cc", "dc", "mp", "mc", "sc", "ss", "zp", "mt", "rc", "mu", "ap", "sp", "cp", "ab", "gp",
    "nd", "pf",
];
/// Banks offered for a bank-payout refund (`bank_names` in the refund query).
const BANK_NAMES: [(&str, &str); 6] = [
    ("ABSA", "Absa"),
    ("CAPITEC", "Capitec Bank"),
    ("FNB", "First National Bank"),
    ("NEDBANK", "Nedbank"),
    ("STANDARD BANK", "Standard Bank"),
    ("TYMEBANK", "TymeBank"),
];

// ---------------------------------------------------------------------------------------------
// Configuration and public API
// ---------------------------------------------------------------------------------------------

/// How the stand-in behaves. [`Default`] gives PayFast's sandbox credentials, the API under
/// `/api`, a compressed version of PayFast's ITN retry schedule and no persistence.
#[derive(Clone)]
pub struct PayfastStandinConfig {
    /// The only merchant accepted, on the form and in the API's `merchant-id` header.
    pub merchant_id: String,
    /// The merchant key the checkout form must carry.
    pub merchant_key: String,
    /// Signs checkouts, ITNs and API calls. With `None` checkouts and ITNs are signed without
    /// one (PayFast allows that) and API calls are refused (PayFast requires one for its API).
    pub passphrase: Option<String>,
    /// Where the REST API is served: a path starting with `/`, without a trailing one.
    pub api_path: String,
    /// The account-level ITN URL, used when a checkout carries no `notify_url`.
    pub default_notify_url: Option<String>,
    /// Also send an ITN with `payment_status=CANCELLED` when the buyer cancels. PayFast
    /// documents CANCELLED for subscriptions only and generally sends nothing for a cancelled
    /// checkout, so this is off by default; it lets the portal's handling of it be tested.
    pub notify_on_cancel: bool,
    /// Refuse amounts below R5.00, as live PayFast does.
    pub live_like: bool,
    /// Fault switches, read at each call and each ITN attempt.
    pub faults: Arc<PayfastFaults>,
    /// Delays between ITN attempts; after the last the ITN is given up.
    pub retry_schedule: Vec<Duration>,
    /// How long one ITN attempt may take.
    pub notify_timeout: Duration,
    /// If set, payments and refunds are saved here as JSON after each change and loaded at
    /// start.
    pub state_file: Option<PathBuf>,
    /// Shown on the hosted payment page.
    pub business_name: String,
}

impl PayfastStandinConfig {
    /// PayFast's ITN schedule ("re-sent immediately, then after 10 minutes and then at
    /// exponentially longer intervals until eventually stopping"), minutes read as seconds:
    /// at once, 10 s, 20 s, 40 s, 80 s, 160 s.
    pub fn default_retry_schedule() -> Vec<Duration> {
        [0, 10, 20, 40, 80, 160]
            .into_iter()
            .map(Duration::from_secs)
            .collect()
    }
}

impl Default for PayfastStandinConfig {
    fn default() -> Self {
        Self {
            merchant_id: MERCHANT_ID.into(),
            merchant_key: MERCHANT_KEY.into(),
            passphrase: Some(PASSPHRASE.into()),
            api_path: DEFAULT_API_PATH.into(),
            default_notify_url: None,
            notify_on_cancel: false,
            live_like: false,
            faults: Arc::default(),
            retry_schedule: Self::default_retry_schedule(),
            notify_timeout: Duration::from_secs(10),
            state_file: None,
            business_name: "Stoep".into(),
        }
    }
}

/// The key and passphrase stay out of logs.
impl fmt::Debug for PayfastStandinConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayfastStandinConfig")
            .field("merchant_id", &self.merchant_id)
            .field("merchant_key", &"****")
            .field("passphrase", &self.passphrase.as_ref().map(|_| "****"))
            .field("api_path", &self.api_path)
            .field("default_notify_url", &self.default_notify_url)
            .field("notify_on_cancel", &self.notify_on_cancel)
            .field("live_like", &self.live_like)
            .field("faults", &self.faults)
            .field("retry_schedule", &self.retry_schedule)
            .field("notify_timeout", &self.notify_timeout)
            .field("state_file", &self.state_file)
            .field("business_name", &self.business_name)
            .finish()
    }
}

/// How the buyer paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayMethod {
    /// A credit or debit card: refunds go back to it (`PAYMENT_SOURCE`).
    Card,
    /// Instant EFT: refunds are bank payouts (`BANK_PAYOUT`, bank details needed).
    Eft,
}

impl PayMethod {
    fn funding_type(self) -> &'static str {
        match self {
            PayMethod::Card => "Credit Card",
            PayMethod::Eft => "Instant EFT",
        }
    }

    fn refund_method(self) -> &'static str {
        match self {
            PayMethod::Card => "PAYMENT_SOURCE",
            PayMethod::Eft => "BANK_PAYOUT",
        }
    }
}

/// Where a payment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentState {
    /// On the hosted page, not paid yet (a declined card leaves it here).
    Open,
    /// Paid: it has a `pf_payment_id` and an ITN.
    Complete,
    /// The buyer cancelled.
    Cancelled,
}

/// A refund made through the API.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PayfastRefund {
    /// Cents.
    pub amount_cents: i64,
    pub reason: String,
    pub notify_buyer: bool,
    /// Unix seconds.
    pub created: i64,
}

/// A checkout the hosted page received, and what became of it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PayfastPayment {
    /// The hosted page's id (`/eng/process/payment/{id}`).
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    /// The form as posted (values trimmed), in the order posted, `signature` included.
    pub form: Vec<(String, String)>,
    pub amount_cents: i64,
    pub state: PaymentState,
    pub method: Option<PayMethod>,
    /// PayFast's id, once paid.
    pub pf_payment_id: Option<u64>,
    /// PayFast's fee in cents (positive here; the ITN sends it negative).
    pub fee_cents: i64,
    /// Unix seconds, once paid.
    pub paid_at: Option<i64>,
    /// Times the card was declined on the hosted page.
    pub declines: u32,
    /// The ITN sent (or queued), in PayFast's order, `signature` last. `None` before payment.
    pub itn: Option<Vec<(String, String)>>,
    pub refunds: Vec<PayfastRefund>,
}

impl PayfastPayment {
    /// A posted form field (trimmed), if present.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Cents refunded so far.
    pub fn refunded_cents(&self) -> i64 {
        self.refunds.iter().map(|r| r.amount_cents).sum()
    }

    /// Cents still refundable.
    pub fn refundable_cents(&self) -> i64 {
        if self.state == PaymentState::Complete {
            (self.amount_cents - self.refunded_cents()).max(0)
        } else {
            0
        }
    }

    /// The ITN body as sent (form-urlencoded, PHP encoding), if there is one.
    pub fn itn_body(&self) -> Option<String> {
        self.itn.as_ref().map(|pairs| encode_form(pairs))
    }
}

/// A running stand-in. Cheap to clone; it stops when the `shutdown` token given to
/// [`PayfastStandin::start`] is cancelled.
#[derive(Clone)]
pub struct PayfastStandin {
    inner: Arc<Inner>,
}

impl fmt::Debug for PayfastStandin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayfastStandin")
            .field("base_url", &self.inner.base_url)
            .finish_non_exhaustive()
    }
}

impl PayfastStandin {
    /// Serves the stand-in on `listener` (bind `127.0.0.1:0` in tests) and starts the ITN
    /// outbox. Loads `state_file` if it exists (ITNs that were still queued are not resent).
    pub async fn start(
        listener: TcpListener,
        cfg: PayfastStandinConfig,
        shutdown: CancellationToken,
    ) -> std::io::Result<PayfastStandin> {
        let api_path = cfg.api_path.trim_end_matches('/').to_owned();
        if !api_path.starts_with('/') || api_path.len() < 2 || api_path.contains(['{', '}']) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the PayFast stand-in's api_path must be a path such as /api",
            ));
        }
        let addr = listener.local_addr()?;
        let store = match &cfg.state_file {
            Some(path) => crate::common::load_state(path, "PayFast").await?,
            None => Store::default(),
        };
        let outbox = Outbox::start(
            OutboxConfig {
                name: "PayFast ITN".into(),
                retry_schedule: cfg.retry_schedule.clone(),
                timeout: cfg.notify_timeout,
                accept: accept_200,
                signer: Arc::new(|_, _| {
                    // The signature is inside the body; the headers only say who calls.
                    vec![(
                        "User-Agent".to_owned(),
                        "PayFast ITN (Stoep stand-in)".to_owned(),
                    )]
                }),
                faults: cfg.faults.notifications.clone(),
            },
            shutdown.clone(),
        )?;
        let inner = Arc::new(Inner {
            base_url: format!("http://{addr}"),
            api_path: api_path.clone(),
            cfg,
            store: Mutex::new(store),
            outbox,
        });
        let router = Router::new()
            .route("/eng/process", post(process))
            .route(
                "/eng/process/payment/{id}",
                get(show_payment).post(submit_payment),
            )
            .route("/eng/query/validate", post(validate))
            .route(&format!("{api_path}/{{*rest}}"), any(handle_api))
            .route("/_standin", get(show_admin))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(inner.clone());
        let server_shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(server_shutdown.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "the PayFast stand-in stopped serving");
            }
        });
        tracing::info!(base_url = %inner.base_url, "PayFast stand-in listening");
        Ok(PayfastStandin { inner })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// Where the checkout form is POSTed (PayFast: `https://www.payfast.co.za/eng/process`).
    pub fn process_url(&self) -> String {
        format!("{}/eng/process", self.inner.base_url)
    }

    /// Where the ITN is confirmed (PayFast: `https://www.payfast.co.za/eng/query/validate`).
    pub fn validate_url(&self) -> String {
        format!("{}/eng/query/validate", self.inner.base_url)
    }

    /// The REST API's base, without a trailing slash (PayFast: `https://api.payfast.co.za`).
    pub fn api_url(&self) -> String {
        format!("{}{}", self.inner.base_url, self.inner.api_path)
    }

    /// The hosted page of a payment.
    pub fn payment_url(&self, id: &str) -> String {
        format!("{}/eng/process/payment/{id}", self.inner.base_url)
    }

    /// The merchant id it accepts.
    pub fn merchant_id(&self) -> &str {
        &self.inner.cfg.merchant_id
    }

    /// The passphrase it signs with.
    pub fn passphrase(&self) -> Option<&str> {
        self.inner.cfg.passphrase.as_deref()
    }

    /// The fault switches (shared with whoever passed them in).
    pub fn faults(&self) -> &Arc<PayfastFaults> {
        &self.inner.cfg.faults
    }

    /// The ITN outbox (its log, what is pending, `retry_now`).
    pub fn outbox(&self) -> &Outbox {
        &self.inner.outbox
    }

    /// Every ITN delivery attempt still in the log, oldest first.
    pub fn deliveries(&self) -> Vec<DeliveryAttempt> {
        self.inner.outbox.log()
    }

    /// Waits until no ITN is queued or in flight; `false` if `timeout` passed first.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        self.inner.outbox.wait_idle(timeout).await
    }

    /// Every payment, oldest first.
    pub fn payments(&self) -> Vec<PayfastPayment> {
        lock(&self.inner.store).payments.clone()
    }

    /// A payment by the hosted page's id, or by `m_payment_id`.
    pub fn payment(&self, id_or_m_payment_id: &str) -> Option<PayfastPayment> {
        let store = lock(&self.inner.store);
        store
            .index(id_or_m_payment_id)
            .or_else(|| {
                store
                    .payments
                    .iter()
                    .rposition(|p| p.field("m_payment_id") == Some(id_or_m_payment_id))
            })
            .map(|i| store.payments[i].clone())
    }

    /// The hosted page's pay buttons: completes the payment and queues its ITN.
    pub fn pay(&self, id: &str, method: PayMethod) -> Result<PayfastPayment, String> {
        self.inner.pay(id, method).map(|(p, _)| p)
    }

    /// The hosted page's cancel button.
    pub fn cancel(&self, id: &str) -> Result<PayfastPayment, String> {
        self.inner.cancel(id).map(|(p, _)| p)
    }

    /// Queues the payment's ITN once more, byte for byte (PayFast resends the same ITN).
    pub fn resend_itn(&self, id: &str) -> Result<(), String> {
        let payment = self.payment(id).ok_or("no such payment")?;
        self.inner.queue_itn(&payment).map(drop)
    }
}

// ---------------------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------------------

struct Inner {
    cfg: PayfastStandinConfig,
    base_url: String,
    api_path: String,
    store: Mutex<Store>,
    outbox: Outbox,
}

#[derive(Default, Serialize, Deserialize)]
struct Store {
    payments: Vec<PayfastPayment>,
    /// The last `pf_payment_id` handed out (0: none yet).
    last_pf_payment_id: u64,
}

impl Store {
    fn index(&self, id: &str) -> Option<usize> {
        self.payments.iter().position(|p| p.id == id)
    }

    fn by_pf_payment_id(&self, id: &str) -> Option<usize> {
        let id: u64 = id.parse().ok()?;
        self.payments
            .iter()
            .position(|p| p.pf_payment_id == Some(id))
    }
}

impl Inner {
    fn passphrase(&self) -> Option<&str> {
        self.cfg.passphrase.as_deref().filter(|p| !p.is_empty())
    }

    /// Runs one change against the store and saves the state if a file is configured.
    fn mutate<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let mut store = lock(&self.store);
        let result = f(&mut store);
        if let Some(path) = &self.cfg.state_file {
            crate::common::save_state(path, &*store, "PayFast");
        }
        result
    }

    /// Completes an open payment and queues its ITN. Returns the payment and the ITN's outbox
    /// number (`None` without a notify URL).
    fn pay(&self, id: &str, method: PayMethod) -> Result<(PayfastPayment, Option<u64>), String> {
        let merchant_id = self.cfg.merchant_id.clone();
        let passphrase = self.passphrase().map(str::to_owned);
        let payment = self.mutate(|store| {
            let idx = store.index(id).ok_or("no such payment")?;
            if store.payments[idx].state != PaymentState::Open {
                return Err("the payment is not open".to_owned());
            }
            store.last_pf_payment_id = store.last_pf_payment_id.max(FIRST_PF_PAYMENT_ID - 1) + 1;
            let pf_payment_id = store.last_pf_payment_id;
            let p = &mut store.payments[idx];
            p.state = PaymentState::Complete;
            p.method = Some(method);
            p.pf_payment_id = Some(pf_payment_id);
            p.fee_cents = fee(p.amount_cents, method);
            p.paid_at = Some(now_secs());
            p.itn = Some(itn_pairs(
                p,
                "COMPLETE",
                &merchant_id,
                passphrase.as_deref(),
            ));
            Ok(p.clone())
        })?;
        let seq = self.queue_itn(&payment)?;
        Ok((payment, seq))
    }

    /// Cancels an open payment (and queues a CANCELLED ITN when configured to).
    fn cancel(&self, id: &str) -> Result<(PayfastPayment, Option<u64>), String> {
        let merchant_id = self.cfg.merchant_id.clone();
        let passphrase = self.passphrase().map(str::to_owned);
        let notify = self.cfg.notify_on_cancel;
        let payment = self.mutate(|store| {
            let idx = store.index(id).ok_or("no such payment")?;
            if store.payments[idx].state != PaymentState::Open {
                return Err("the payment is not open".to_owned());
            }
            if notify {
                // The ITN needs a PayFast id (validate looks ITNs up by it).
                store.last_pf_payment_id =
                    store.last_pf_payment_id.max(FIRST_PF_PAYMENT_ID - 1) + 1;
                store.payments[idx].pf_payment_id = Some(store.last_pf_payment_id);
            }
            let p = &mut store.payments[idx];
            p.state = PaymentState::Cancelled;
            if notify {
                p.itn = Some(itn_pairs(
                    p,
                    "CANCELLED",
                    &merchant_id,
                    passphrase.as_deref(),
                ));
            }
            Ok(p.clone())
        })?;
        let seq = if notify {
            self.queue_itn(&payment)?
        } else {
            None
        };
        Ok((payment, seq))
    }

    /// Queues the payment's ITN to its notify URL (or the account's). `None` without one.
    fn queue_itn(&self, p: &PayfastPayment) -> Result<Option<u64>, String> {
        let pairs = p.itn.as_ref().ok_or("the payment has no ITN")?;
        let url = p
            .field("notify_url")
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .or_else(|| self.cfg.default_notify_url.clone());
        let Some(url) = url else {
            return Ok(None);
        };
        let status = pairs
            .iter()
            .find(|(k, _)| k == "payment_status")
            .map_or("", |(_, v)| v.as_str());
        Ok(Some(self.outbox.enqueue(Notification {
            id: p.field("m_payment_id").unwrap_or(&p.id).to_owned(),
            kind: format!("ITN {status}"),
            url,
            body: Bytes::from(encode_form(pairs)),
            content_type: "application/x-www-form-urlencoded".into(),
        })))
    }
}

/// `key=urlencode(value)&...` with PHP's encoding (keys are plain ASCII).
fn encode_form(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", pf::php_urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The made-up fee: card 3.2% + R2.00, instant EFT 2% (at least R2.00); never more than the
/// amount.
fn fee(amount_cents: i64, method: PayMethod) -> i64 {
    let fee = match method {
        PayMethod::Card => (amount_cents * 32 + 500) / 1000 + 200,
        PayMethod::Eft => ((amount_cents * 2 + 50) / 100).max(200),
    };
    fee.min(amount_cents)
}

/// The ITN's fields in PayFast's order (empties included), `signature` last.
fn itn_pairs(
    p: &PayfastPayment,
    status: &str,
    merchant_id: &str,
    passphrase: Option<&str>,
) -> Vec<(String, String)> {
    let field = |name: &str| p.field(name).unwrap_or_default().to_owned();
    let pf_payment_id = p.pf_payment_id.map(|n| n.to_string()).unwrap_or_default();
    let (gross, fee) = (p.amount_cents, p.fee_cents);
    let mut pairs: Vec<(String, String)> = vec![
        ("m_payment_id".into(), field("m_payment_id")),
        ("pf_payment_id".into(), pf_payment_id),
        ("payment_status".into(), status.to_owned()),
        ("item_name".into(), field("item_name")),
        ("item_description".into(), field("item_description")),
        ("amount_gross".into(), pf::format_rand(gross)),
        ("amount_fee".into(), pf::format_rand(-fee)),
        ("amount_net".into(), pf::format_rand(gross - fee)),
    ];
    for name in [
        "custom_str1",
        "custom_str2",
        "custom_str3",
        "custom_str4",
        "custom_str5",
        "custom_int1",
        "custom_int2",
        "custom_int3",
        "custom_int4",
        "custom_int5",
        "name_first",
        "name_last",
        "email_address",
    ] {
        pairs.push((name.into(), field(name)));
    }
    pairs.push(("merchant_id".into(), merchant_id.to_owned()));
    let signature = pf::itn_signature(&pairs, passphrase);
    pairs.push(("signature".into(), signature));
    pairs
}

// ---------------------------------------------------------------------------------------------
// The hosted payment page
// ---------------------------------------------------------------------------------------------

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    (status, Html(page(title, body, false))).into_response()
}

/// PayFast's error page for a checkout it refuses (it shows the reasons to the buyer).
fn process_error(errors: &[String]) -> Response {
    let items: String = errors
        .iter()
        .map(|e| format!("<li>{}</li>", esc(e)))
        .collect();
    html(
        StatusCode::BAD_REQUEST,
        "Unable to process payment",
        &format!(
            "<h1>Unable to process payment</h1><div class=\"alert\" role=\"alert\"><ul>{items}</ul></div>\
             <p class=\"note\">PayFast stand-in: the checkout form was refused.</p>"
        ),
    )
}

fn is_http_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// Checks a posted checkout form as PayFast does; the reasons it is refused, in words.
fn check_checkout(cfg: &PayfastStandinConfig, form: &[(String, String)]) -> Vec<String> {
    let get = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let mut errors = Vec::new();
    match get("merchant_id") {
        None => errors.push("merchant_id: required".to_owned()),
        Some(id) if id != cfg.merchant_id => {
            errors.push("merchant_id: the supplied merchant id is invalid".to_owned())
        }
        _ => {}
    }
    match get("merchant_key") {
        None => errors.push("merchant_key: required".to_owned()),
        Some(key) if key != cfg.merchant_key => {
            errors.push("merchant_key: the supplied merchant key is invalid".to_owned())
        }
        _ => {}
    }
    match get("amount").map(|a| (a, pf::parse_rand(a))) {
        None => errors.push("amount: required".to_owned()),
        Some((_, None)) => errors.push("amount: must be a decimal amount in rand".to_owned()),
        Some((_, Some(cents))) if cents <= 0 => {
            errors.push("amount: must be more than R0.00".to_owned())
        }
        Some((_, Some(cents))) if cfg.live_like && cents < 500 => {
            errors.push("amount: the minimum amount is R5.00".to_owned())
        }
        _ => {}
    }
    if get("item_name").is_none() {
        errors.push("item_name: required".to_owned());
    }
    for (name, max) in [
        ("name_first", 100),
        ("name_last", 100),
        ("email_address", 100),
        ("cell_number", 100),
        ("m_payment_id", 100),
        ("item_name", 100),
        ("item_description", 255),
        ("custom_str1", 255),
        ("custom_str2", 255),
        ("custom_str3", 255),
        ("custom_str4", 255),
        ("custom_str5", 255),
        ("confirmation_address", 100),
    ] {
        if get(name).is_some_and(|v| v.chars().count() > max) {
            errors.push(format!("{name}: at most {max} characters"));
        }
    }
    for n in 1..=5 {
        let name = format!("custom_int{n}");
        if get(&name).is_some_and(|v| v.parse::<i64>().is_err()) {
            errors.push(format!("{name}: must be an integer"));
        }
    }
    for name in ["email_address", "confirmation_address"] {
        if get(name).is_some_and(|v| !v.contains('@')) {
            errors.push(format!("{name}: must be an email address"));
        }
    }
    for name in ["return_url", "cancel_url", "notify_url"] {
        if get(name).is_some_and(|v| !is_http_url(v)) {
            errors.push(format!("{name}: must be an http(s) URL"));
        }
    }
    if let Some(m) = get("payment_method")
        && !PAYMENT_METHODS.contains(&m)
    {
        errors.push("payment_method: not a PayFast payment method".to_owned());
    }
    if let Some(c) = get("email_confirmation")
        && c != "0"
        && c != "1"
    {
        errors.push("email_confirmation: must be 1 or 0".to_owned());
    }
    // PayFast checks the signature when there is one, and requires one when the account has a
    // passphrase.
    let passphrase = cfg.passphrase.as_deref().filter(|p| !p.is_empty());
    let has_signature = get("signature").is_some();
    if passphrase.is_some() || has_signature {
        match pf::verify_checkout(form, passphrase) {
            Ok(()) => {}
            Err(pf::PayfastError::MissingSignature) => {
                errors.push("signature: required (the account has a passphrase)".to_owned())
            }
            Err(_) => {
                errors.push("Generated signature does not match submitted signature.".to_owned())
            }
        }
    }
    errors
}

/// `POST /eng/process`: the checkout form.
async fn process(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), pf::php_trim(&v).to_owned()))
        .collect();
    let errors = check_checkout(&inner.cfg, &form);
    if !errors.is_empty() {
        return process_error(&errors);
    }
    let amount_cents = form
        .iter()
        .find(|(k, _)| k == "amount")
        .and_then(|(_, v)| pf::parse_rand(v))
        .unwrap_or_default();
    let id = uuid::Uuid::new_v4().to_string();
    inner.mutate(|store| {
        store.payments.push(PayfastPayment {
            id: id.clone(),
            created: now_secs(),
            form,
            amount_cents,
            state: PaymentState::Open,
            method: None,
            pf_payment_id: None,
            fee_cents: 0,
            paid_at: None,
            declines: 0,
            itn: None,
            refunds: Vec::new(),
        })
    });
    Redirect::to(&format!("/eng/process/payment/{id}")).into_response()
}

fn payment_record(inner: &Inner, id: &str) -> Option<PayfastPayment> {
    let store = lock(&inner.store);
    store.index(id).map(|i| store.payments[i].clone())
}

fn payment_not_found() -> Response {
    html(
        StatusCode::NOT_FOUND,
        "Payment not found",
        "<h1>Payment not found</h1><p>This payment link is not valid. Please return to the shop and try again.</p>",
    )
}

/// The page for a payment in its current state.
fn render_payment(inner: &Inner, p: &PayfastPayment, alert: Option<&str>) -> Response {
    let business = esc(&inner.cfg.business_name);
    let amount = format!("R {}", pf::format_rand(p.amount_cents));
    let item = esc(p.field("item_name").unwrap_or_default());
    let description = p
        .field("item_description")
        .filter(|d| !d.is_empty())
        .map(|d| format!("<p class=\"note\">{}</p>", esc(d)))
        .unwrap_or_default();
    let link = |field: &str, text: &str| {
        p.field(field)
            .filter(|u| !u.is_empty())
            .map(|u| format!("<p><a href=\"{}\">{}</a></p>", esc(u), esc(text)))
            .unwrap_or_default()
    };
    match p.state {
        PaymentState::Complete => html(
            StatusCode::OK,
            "Payment successful",
            &format!(
                "<p class=\"note\">{business}</p><h1>Payment successful</h1><p>{} was paid for {item}. Payment id {}.</p>{}",
                esc(&amount),
                p.pf_payment_id.unwrap_or_default(),
                link("return_url", "Return to the merchant"),
            ),
        ),
        PaymentState::Cancelled => html(
            StatusCode::OK,
            "Payment cancelled",
            &format!(
                "<p class=\"note\">{business}</p><h1>Payment cancelled</h1><p>No payment was taken.</p>{}",
                link("cancel_url", "Return to the merchant"),
            ),
        ),
        PaymentState::Open => {
            let alert = alert
                .map(|a| format!("<div class=\"alert\" role=\"alert\">{}</div>", esc(a)))
                .unwrap_or_default();
            // `payment_method` restricts the page to one method, as at PayFast.
            let restrict = p.field("payment_method").unwrap_or_default();
            let card = restrict.is_empty() || restrict == "cc" || restrict == "dc";
            let eft = restrict.is_empty() || restrict == "ef";
            let mut buttons = String::new();
            if card || !eft {
                buttons.push_str(&format!(
                    "<button class=\"primary\" type=\"submit\" name=\"action\" value=\"card\">Pay {} by card</button>\
                     <button class=\"secondary\" type=\"submit\" name=\"action\" value=\"decline\">Pay with a card that will be declined</button>",
                    esc(&amount)
                ));
            }
            if eft {
                buttons.push_str(&format!(
                    "<button class=\"{}\" type=\"submit\" name=\"action\" value=\"eft\">Pay {} by instant EFT</button>",
                    if card { "secondary" } else { "primary" },
                    esc(&amount)
                ));
            }
            buttons.push_str("<button class=\"secondary\" type=\"submit\" name=\"action\" value=\"cancel\">Cancel and return to the merchant</button>");
            let body = format!(
                "<p class=\"note\">{business} &middot; test mode (PayFast stand-in)</p>\
                 <h1>Pay {business}</h1><p>{item}: <strong>{amount}</strong></p>{description}{alert}\
                 <form method=\"post\" action=\"/eng/process/payment/{id}\">{buttons}</form>",
                amount = esc(&amount),
                id = esc(&p.id),
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

/// `GET /eng/process/payment/{id}`.
async fn show_payment(State(inner): State<Arc<Inner>>, Path(id): Path<String>) -> Response {
    match payment_record(&inner, &id) {
        Some(p) => render_payment(&inner, &p, None),
        None => payment_not_found(),
    }
}

/// `POST /eng/process/payment/{id}` with `action` = `card`, `eft`, `decline` or `cancel`.
async fn submit_payment(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let action = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "action")
        .map(|(_, v)| v.into_owned());
    let Some(current) = payment_record(&inner, &id) else {
        return payment_not_found();
    };
    if current.state != PaymentState::Open {
        return render_payment(&inner, &current, None);
    }
    let redirect_or_page =
        |p: &PayfastPayment, field: &str| match p.field(field).filter(|u| !u.is_empty()) {
            Some(url) => Redirect::to(url).into_response(),
            None => render_payment(&inner, p, None),
        };
    match action.as_deref() {
        Some(how @ ("card" | "eft")) => {
            let method = if how == "card" {
                PayMethod::Card
            } else {
                PayMethod::Eft
            };
            match inner.pay(&id, method) {
                Ok((p, seq)) => {
                    // PayFast posts the ITN before it sends the buyer back.
                    if let Some(seq) = seq {
                        inner.outbox.wait_attempted(seq, ITN_BEFORE_REDIRECT).await;
                    }
                    redirect_or_page(&p, "return_url")
                }
                Err(_) => match payment_record(&inner, &id) {
                    Some(p) => render_payment(&inner, &p, None),
                    None => payment_not_found(),
                },
            }
        }
        Some("decline") => {
            let p = inner.mutate(|store| {
                store.index(&id).map(|i| {
                    store.payments[i].declines += 1;
                    store.payments[i].clone()
                })
            });
            match p {
                Some(p) => render_payment(
                    &inner,
                    &p,
                    Some("Your card was declined by the bank. Try another card or pay by EFT."),
                ),
                None => payment_not_found(),
            }
        }
        Some("cancel") => match inner.cancel(&id) {
            Ok((p, seq)) => {
                if let Some(seq) = seq {
                    inner.outbox.wait_attempted(seq, ITN_BEFORE_REDIRECT).await;
                }
                redirect_or_page(&p, "cancel_url")
            }
            Err(_) => match payment_record(&inner, &id) {
                Some(p) => render_payment(&inner, &p, None),
                None => payment_not_found(),
            },
        },
        _ => html(
            StatusCode::BAD_REQUEST,
            "Unknown action",
            "<h1>Unknown action</h1><p>Please use the buttons on the payment page.</p>",
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// ITN confirmation
// ---------------------------------------------------------------------------------------------

/// `POST /eng/query/validate`: `VALID` when the posted parameter string (with or without
/// `signature`, which is ignored) is, field for field and in order, an ITN this stand-in sent;
/// `INVALID` for anything else. The body is plain text, as PayFast's.
async fn validate(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let faults = &inner.cfg.faults;
    if faults.validate_timeout.load(Ordering::SeqCst) {
        let until = Instant::now() + VALIDATE_HOLD;
        while faults.validate_timeout.load(Ordering::SeqCst) && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let valid = !faults.validate_invalid.load(Ordering::SeqCst)
        && pf::Itn::parse(&body).is_ok_and(|posted| {
            let store = lock(&inner.store);
            let Some(i) = posted
                .get("pf_payment_id")
                .and_then(|id| store.by_pf_payment_id(id))
            else {
                return false;
            };
            store.payments[i].itn.as_ref().is_some_and(|sent| {
                let signed = sent
                    .iter()
                    .position(|(k, _)| k == "signature")
                    .map_or(&sent[..], |end| &sent[..end]);
                signed == posted.signed_pairs()
            })
        });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        if valid { "VALID" } else { "INVALID" },
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// The REST API
// ---------------------------------------------------------------------------------------------

/// An API error in PayFast's shape: `{"code":401,"status":"failed","data":{"response":
/// "Merchant authorization failed","message":"Failure"}}`. The docs show `response: false`;
/// WooCommerce reads `response` as the error text, so the stand-in puts the text there.
fn api_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "code": status.as_u16(),
            "status": "failed",
            "data": { "response": message, "message": "Failure" },
        })),
    )
        .into_response()
}

/// A success in PayFast's envelope.
fn api_ok(response: Value, message: &str) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({
            "code": 200,
            "status": "success",
            "data": { "response": response, "message": message },
        })),
    )
        .into_response()
}

/// The body's fields as signed strings: a flat JSON object (numbers as their decimal text,
/// `true` as `1`, `false` and `null` as empty, as PHP would cast them) or a form.
fn body_params(headers: &HeaderMap, body: &[u8]) -> Result<Vec<(String, String)>, &'static str> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        return Ok(url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect());
    }
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return Err("Request body is not a JSON object");
    };
    map.into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(true) => "1".to_owned(),
                Value::Bool(false) | Value::Null => String::new(),
                Value::Array(_) | Value::Object(_) => return Err("Nested values are not accepted"),
            };
            Ok((k, v))
        })
        .collect()
}

/// The `merchant-id`, `version`, `timestamp` and `signature` checks, in PayFast's words.
fn check_api_auth(
    cfg: &PayfastStandinConfig,
    headers: &HeaderMap,
    query: &[(String, String)],
    body: &[(String, String)],
) -> Result<(), (StatusCode, &'static str)> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let (Some(merchant_id), Some(version), Some(timestamp)) =
        (get("merchant-id"), get("version"), get("timestamp"))
    else {
        return Err((
            StatusCode::BAD_REQUEST,
            "Required variables not present in request",
        ));
    };
    let Some(signature) = get("signature") else {
        return Err((StatusCode::BAD_REQUEST, "Signature not present in headers"));
    };
    if version != "v1" {
        return Err((StatusCode::BAD_REQUEST, "API version is not valid"));
    }
    if signature.len() != 32 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err((
            StatusCode::BAD_REQUEST,
            "Value for signature is not in the expected format",
        ));
    }
    // Not among PayFast's documented errors; worded like its signature-format one.
    if pf::parse_api_timestamp(timestamp).is_none() {
        return Err((
            StatusCode::BAD_REQUEST,
            "Value for timestamp is not in the expected format",
        ));
    }
    if merchant_id != cfg.merchant_id {
        return Err((StatusCode::UNAUTHORIZED, "Merchant not found"));
    }
    let passphrase = cfg.passphrase.as_deref().filter(|p| !p.is_empty());
    let mut params: Vec<(String, String)> = vec![
        ("merchant-id".into(), merchant_id.to_owned()),
        ("version".into(), version.to_owned()),
        ("timestamp".into(), timestamp.to_owned()),
    ];
    params.extend(query.iter().cloned());
    params.extend(body.iter().cloned());
    if passphrase.is_none() || !pf::verify_api_signature(&params, passphrase, signature) {
        return Err((StatusCode::UNAUTHORIZED, "Merchant authorization failed"));
    }
    Ok(())
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
        return api_error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
    }
    if crate::deliveries::take_one(&faults.fail_next_api_calls) {
        return api_error(StatusCode::INTERNAL_SERVER_ERROR, "Application Error");
    }
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let testing = query.iter().any(|(k, v)| k == "testing" && v == "true");
    let body = match body_params(&headers, &body) {
        Ok(b) => b,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, e),
    };
    if let Err((status, message)) = check_api_auth(&inner.cfg, &headers, &query, &body) {
        return api_error(status, message);
    }
    let rest = uri
        .path()
        .strip_prefix(inner.api_path.as_str())
        .unwrap_or_default()
        .trim_matches('/');
    let segments: Vec<&str> = rest.split('/').collect();
    let field = |name: &str| {
        body.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["ping"]) => (
            StatusCode::OK,
            axum::Json(json!(if testing { "API V1" } else { "Payfast API" })),
        )
            .into_response(),
        ("GET", ["process", "query", id]) => {
            let store = lock(&inner.store);
            match store.by_pf_payment_id(id) {
                Some(i) => api_ok(transaction_query(&store.payments[i]), "Success"),
                None => api_error(StatusCode::NOT_FOUND, "Transaction not found"),
            }
        }
        ("GET", ["refunds", "query", id]) => {
            let store = lock(&inner.store);
            match store.by_pf_payment_id(id) {
                Some(i) => api_ok(refund_query(&store.payments[i]), "Success"),
                None => api_error(StatusCode::NOT_FOUND, "Transaction not found"),
            }
        }
        ("GET", ["refunds", id]) => {
            let store = lock(&inner.store);
            match store.by_pf_payment_id(id) {
                Some(i) => api_ok(refund_details(&store.payments[i]), "success"),
                None => api_error(StatusCode::NOT_FOUND, "Transaction not found"),
            }
        }
        ("POST", ["refunds", id]) => {
            let id = id.to_string();
            inner.mutate(|store| match store.by_pf_payment_id(&id) {
                Some(i) => match create_refund(&mut store.payments[i], &field) {
                    Ok(()) => api_ok(json!(true), "Success"),
                    Err(e) => api_error(StatusCode::BAD_REQUEST, &e),
                },
                None => api_error(StatusCode::NOT_FOUND, "Transaction not found"),
            })
        }
        (_, ["ping"] | ["process", "query", _] | ["refunds", "query", _] | ["refunds", _]) => {
            // PayFast answers a wrong verb with 400.
            api_error(
                StatusCode::BAD_REQUEST,
                "Method not allowed for this endpoint",
            )
        }
        _ => api_error(StatusCode::NOT_FOUND, "Service / endpoint not found"),
    }
}

/// `GET /process/query/{id}`'s `response`: amounts in cents.
fn transaction_query(p: &PayfastPayment) -> Value {
    let (cc_status, cc_message) = match p.method {
        Some(PayMethod::Card) => ("00", "Approved or completed successfully (00)"),
        _ => ("", ""),
    };
    let status = match p.state {
        PaymentState::Complete => "COMPLETE",
        PaymentState::Cancelled => "CANCELLED",
        PaymentState::Open => "PENDING",
    };
    json!({
        "pf_payment_id": p.pf_payment_id,
        "m_payment_id": p.field("m_payment_id").unwrap_or_default(),
        "status": status,
        "amount": p.amount_cents,
        "cc_status": cc_status,
        "cc_message": cc_message,
        "transaction_token": p.id,
    })
}

/// `GET /refunds/query/{id}`'s `response`: whether and how the payment can be refunded.
fn refund_query(p: &PayfastPayment) -> Value {
    let available = p.refundable_cents();
    let method = p.method.map_or("NOT_AVAILABLE", PayMethod::refund_method);
    let (status, errors, method) = if available > 0 {
        ("REFUNDABLE", json!([]), method)
    } else {
        (
            "NOT_AVAILABLE",
            json!(["There is no amount available for refund on this transaction"]),
            "NOT_AVAILABLE",
        )
    };
    let partial = if method == "BANK_PAYOUT" {
        // The docs scrape says the partial method lists the bank fields for a bank payout; their
        // exact shape is unverified.
        json!({
            "method": method,
            "bank_account_holder": "", "bank_name": "", "bank_branch_code": "",
            "bank_account_number": "", "bank_account_type": "",
        })
    } else {
        json!({ "method": method })
    };
    json!({
        "token": p.id,
        "funding_type": p.method.map_or("", PayMethod::funding_type),
        "amount_original": p.amount_cents,
        "amount_available_for_refund": available,
        "status": status,
        "errors": errors,
        "refund_full": { "method": method },
        "refund_partial": partial,
        "bank_names": BANK_NAMES
            .iter()
            .map(|(name, label)| json!({ "bank_name": name, "label": label }))
            .collect::<Vec<_>>(),
    })
}

/// `GET /refunds/{id}`'s `response`: the balance left and the money movements. PayFast sends
/// received amounts as numbers and refunds as strings; so does the stand-in.
fn refund_details(p: &PayfastPayment) -> Value {
    let mut transactions = vec![json!({
        "amount": p.amount_cents,
        "date": format_sast(p.paid_at.unwrap_or(p.created)),
        "type": "Funds Received",
    })];
    for r in &p.refunds {
        transactions.push(json!({
            "amount": format!("-{}", r.amount_cents),
            "date": format_sast(r.created),
            "type": "Funds Received (Refund)",
        }));
    }
    json!({ "available_balance": p.refundable_cents(), "transactions": transactions })
}

/// `POST /refunds/{id}`: checks the body as PayFast does and records the refund.
fn create_refund<'a>(
    p: &mut PayfastPayment,
    field: &impl Fn(&str) -> Option<&'a str>,
) -> Result<(), String> {
    if p.state != PaymentState::Complete {
        return Err("Transaction is not refundable".into());
    }
    let (Some(amount), Some(reason), Some(notify_buyer)) =
        (field("amount"), field("reason"), field("notify_buyer"))
    else {
        return Err("Required variables not present in request".into());
    };
    let amount: i64 = amount
        .parse()
        .ok()
        .filter(|a| *a > 0)
        .ok_or("Value for amount is not in the expected format")?;
    let reason_len = reason.chars().count();
    if !(3..=255).contains(&reason_len) {
        return Err("Value for reason is not in the expected format".into());
    }
    if notify_buyer != "1" && notify_buyer != "0" {
        return Err("Value for notify_buyer is not in the expected format".into());
    }
    if let Some(n) = field("notify_merchant")
        && n != "1"
        && n != "0"
    {
        return Err("Value for notify_merchant is not in the expected format".into());
    }
    if amount > p.refundable_cents() {
        return Err("Refund amount exceeds the amount available for refund".into());
    }
    if p.method == Some(PayMethod::Eft) {
        let holder = field("bank_account_holder").or(field("acc_holder"));
        let bank = field("bank_name");
        let branch = field("bank_branch_code");
        let number = field("bank_account_number");
        let kind = field("bank_account_type").or(field("acc_type"));
        let (Some(_), Some(bank), Some(branch), Some(number), Some(kind)) =
            (holder, bank, branch, number, kind)
        else {
            return Err("Bank details are required for a bank payout refund".into());
        };
        if !BANK_NAMES.iter().any(|(name, _)| *name == bank) {
            return Err("Value for bank_name is not in the expected format".into());
        }
        if branch.is_empty() || branch.len() > 6 || !branch.bytes().all(|b| b.is_ascii_digit()) {
            return Err("Value for bank_branch_code is not in the expected format".into());
        }
        if number.is_empty() || number.len() > 12 || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err("Value for bank_account_number is not in the expected format".into());
        }
        if kind != "current" && kind != "savings" {
            return Err("Value for bank_account_type is not in the expected format".into());
        }
    }
    p.refunds.push(PayfastRefund {
        amount_cents: amount,
        reason: reason.to_owned(),
        notify_buyer: notify_buyer == "1",
        created: now_secs(),
    });
    Ok(())
}

/// `2020-05-14 12:11:05` in South African time, as PayFast writes dates in the API.
fn format_sast(secs: i64) -> String {
    let stamp = pf::format_api_timestamp(secs);
    stamp
        .get(..19)
        .map_or(stamp.clone(), |s| s.replacen('T', " ", 1))
}

// ---------------------------------------------------------------------------------------------
// The admin page
// ---------------------------------------------------------------------------------------------

/// `GET /_standin`: payments, refunds and ITN deliveries, newest first.
async fn show_admin(State(inner): State<Arc<Inner>>) -> Response {
    let payments = lock(&inner.store).payments.clone();
    let log = inner.outbox.log();
    let pending = inner.outbox.pending();
    let mut body = format!(
        "<h1>PayFast stand-in</h1><p>Process: <code>{base}/eng/process</code>. Validate: \
         <code>{base}/eng/query/validate</code>. API: <code>{base}{api}</code>. Merchant \
         <code>{merchant}</code>. Default ITN URL: <code>{notify}</code>. Faults: {faults}.</p>",
        base = esc(&inner.base_url),
        api = esc(&inner.api_path),
        merchant = esc(&inner.cfg.merchant_id),
        notify = esc(inner.cfg.default_notify_url.as_deref().unwrap_or("(none)")),
        faults = esc(&inner.cfg.faults.describe()),
    );
    body.push_str(
        "<h2>Payments</h2><table><thead><tr><th scope=\"col\">m_payment_id</th><th scope=\"col\">pf_payment_id</th>\
         <th scope=\"col\">Item</th><th scope=\"col\">Amount</th><th scope=\"col\">State</th><th scope=\"col\">Method</th>\
         <th scope=\"col\">Refunded</th></tr></thead><tbody>",
    );
    for p in payments.iter().rev() {
        body.push_str(&format!(
            "<tr><td><a href=\"/eng/process/payment/{id}\">{m}</a></td><td>{pf}</td><td>{item}</td><td>R {amount}</td>\
             <td>{state:?}</td><td>{method}</td><td>R {refunded}</td></tr>",
            id = esc(&p.id),
            m = esc(p.field("m_payment_id").unwrap_or("—")),
            pf = p.pf_payment_id.map_or("—".to_owned(), |n| n.to_string()),
            item = esc(p.field("item_name").unwrap_or_default()),
            amount = pf::format_rand(p.amount_cents),
            state = p.state,
            method = p.method.map_or("—", PayMethod::funding_type),
            refunded = pf::format_rand(p.refunded_cents()),
        ));
    }
    body.push_str("</tbody></table>");
    if !pending.is_empty() {
        body.push_str("<h2>ITNs waiting</h2><table><thead><tr><th scope=\"col\">Payment</th><th scope=\"col\">Kind</th><th scope=\"col\">Attempts</th><th scope=\"col\">Due in</th></tr></thead><tbody>");
        for d in &pending {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} ms</td></tr>",
                esc(&d.id),
                esc(&d.kind),
                d.attempts,
                d.due_in_ms
            ));
        }
        body.push_str("</tbody></table>");
    }
    body.push_str(&delivery_table(&log));
    (StatusCode::OK, Html(page("PayFast stand-in", &body, true))).into_response()
}

/// The delivery log as an HTML table, newest first (shared with the Paystack stand-in).
pub(crate) fn delivery_table(log: &[DeliveryAttempt]) -> String {
    let mut out = String::from(
        "<h2>Deliveries</h2><table><thead><tr><th scope=\"col\">At (UTC)</th><th scope=\"col\">About</th>\
         <th scope=\"col\">Kind</th><th scope=\"col\">URL</th><th scope=\"col\">Attempt</th><th scope=\"col\">Result</th></tr></thead><tbody>",
    );
    for d in log.iter().rev() {
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
        let at = pf::format_api_timestamp((d.at_ms / 1000) as i64);
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&at),
            esc(&d.id),
            esc(&d.kind),
            esc(&d.url),
            d.attempt,
            esc(&result),
        ));
    }
    out.push_str("</tbody></table>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_follow_the_made_up_model_and_never_exceed_the_amount() {
        assert_eq!(fee(10_000, PayMethod::Card), 520);
        assert_eq!(fee(10_000, PayMethod::Eft), 200);
        assert_eq!(fee(100_000, PayMethod::Eft), 2_000);
        assert_eq!(fee(100, PayMethod::Card), 100);
    }

    #[test]
    fn sast_dates_are_written_as_payfast_writes_them() {
        assert_eq!(format_sast(1_704_103_200), "2024-01-01 12:00:00");
    }

    #[test]
    fn json_bodies_are_signed_as_php_would_cast_them() {
        let headers = HeaderMap::new();
        let params = body_params(
            &headers,
            br#"{"amount":1000,"reason":"Product returned","notify_buyer":true,"x":null}"#,
        )
        .expect("flat JSON");
        assert!(params.contains(&("amount".into(), "1000".into())));
        assert!(params.contains(&("notify_buyer".into(), "1".into())));
        assert!(params.contains(&("x".into(), String::new())));
        assert!(body_params(&headers, br#"{"a":{"b":1}}"#).is_err());
        assert!(body_params(&headers, b"[]").is_err());
        assert_eq!(body_params(&headers, b"  "), Ok(Vec::new()));
    }
}
