//! Tests of the local Stripe stand-in through the production client (async-stripe), the hosted
//! checkout page (plain HTTP, no redirects followed) and a webhook receiver on 127.0.0.1 that
//! records what arrives and can fail on demand. Each test starts its own stand-in with a short
//! retry schedule.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use standins::controls::StripeFaults;
use standins::stripe::{API_VERSION, StandinConfig, StripeStandin};
use stripe::{
    ApiErrorsCode, ApiErrorsType, IdempotencyKey, RequestStrategy, StripeError, StripeRequest,
};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, ExpireCheckoutSession, ListCheckoutSession,
    ProductData, RetrieveCheckoutSession,
};
use stripe_checkout::{
    CheckoutSession, CheckoutSessionMode, CheckoutSessionPaymentStatus, CheckoutSessionStatus,
};
use stripe_core::balance::RetrieveForMyAccountBalance;
use stripe_core::refund::{CreateRefund, CreateRefundReason, RetrieveRefund};
use stripe_types::{Currency, RangeQueryTs};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const KEY: &str = "sk_test_integration_key_4242";
const SECRET: &str = "whsec_integration_secret";
const SUCCESS_URL: &str = "https://portal.example/pay/done?session_id={CHECKOUT_SESSION_ID}";
const CANCEL_URL: &str = "https://portal.example/pay/cancelled";
/// Long enough for any delivery in these tests (retries are 50 ms apart).
const IDLE: Duration = Duration::from_secs(5);

// --- The webhook receiver ------------------------------------------------------------------------

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Hit {
    body: String,
    signature: String,
    content_type: String,
    user_agent: String,
    /// What the receiver answered.
    status: u16,
}

impl Hit {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("webhook body is JSON")
    }
}

#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Answer 500 to this many requests, then 200.
    fail_next: Arc<AtomicU32>,
    /// Answer 500 to everything.
    always_fail: Arc<AtomicBool>,
}

impl Receiver {
    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("lock").clone()
    }

    /// Bodies of the requests answered 200, as JSON.
    fn accepted(&self) -> Vec<Value> {
        self.hits()
            .iter()
            .filter(|h| h.status == 200)
            .map(Hit::json)
            .collect()
    }

    fn accepted_types(&self) -> Vec<String> {
        self.accepted()
            .iter()
            .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let fail = r.always_fail.load(Ordering::SeqCst)
        || r.fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    let status = if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    r.hits.lock().expect("lock").push(Hit {
        body,
        signature: header("stripe-signature"),
        content_type: header("content-type"),
        user_agent: header("user-agent"),
        status: status.as_u16(),
    });
    status
}

async fn start_receiver(shutdown: &CancellationToken) -> (Receiver, String) {
    let receiver = Receiver::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!(
        "http://{}/webhooks/stripe",
        listener.local_addr().expect("addr")
    );
    let app = axum::Router::new()
        .route("/webhooks/stripe", axum::routing::post(receive))
        .with_state(receiver.clone());
    let stop = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    (receiver, url)
}

/// Checks a `Stripe-Signature` header the way a webhook handler must: HMAC-SHA256 keyed with
/// the whole secret over `"<t>.<body>"`, and a fresh timestamp.
fn signature_is_valid(header: &str, body: &str) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.push(v.to_owned()),
            _ => {}
        }
    }
    let Some(t) = timestamp else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(format!("{t}.{body}").as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    (now_secs() - t).abs() < 300 && signatures.contains(&expected)
}

// --- The stand-in and the client -------------------------------------------------------------------

struct Env {
    standin: StripeStandin,
    client: stripe::Client,
    receiver: Receiver,
    faults: Arc<StripeFaults>,
    shutdown: CancellationToken,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn test_config(webhook_url: String) -> StandinConfig {
    StandinConfig {
        api_key: KEY.into(),
        webhook_url: Some(webhook_url),
        webhook_secret: SECRET.into(),
        faults: Arc::default(),
        retry_schedule: vec![Duration::from_millis(50); 4],
        state_file: None,
        business_name: "Stoep Hair".into(),
    }
}

async fn env() -> Env {
    env_with(|_| {}).await
}

async fn env_with(tweak: impl FnOnce(&mut StandinConfig)) -> Env {
    let shutdown = CancellationToken::new();
    let (receiver, url) = start_receiver(&shutdown).await;
    let mut cfg = test_config(url);
    tweak(&mut cfg);
    let faults = cfg.faults.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let standin = StripeStandin::start(listener, cfg, shutdown.clone())
        .await
        .expect("start the stand-in");
    let client = client_for(&standin, KEY);
    Env {
        standin,
        client,
        receiver,
        faults,
        shutdown,
    }
}

fn client_for(standin: &StripeStandin, key: &str) -> stripe::Client {
    stripe::ClientBuilder::new(key)
        .url(standin.base_url())
        .build()
        .expect("client")
}

/// A browser that does not follow redirects.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

fn line_item(name: &str, unit_amount: i64, quantity: u64) -> CreateCheckoutSessionLineItems {
    let mut price = CreateCheckoutSessionLineItemsPriceData::new(Currency::ZAR);
    price.unit_amount = Some(unit_amount);
    price.product_data = Some(ProductData::new(name));
    let mut item = CreateCheckoutSessionLineItems::new();
    item.price_data = Some(price);
    item.quantity = Some(quantity);
    item
}

/// The request the portal makes: R 250.00 for booking 12, expiring in an hour.
fn session_request(booking: &str) -> CreateCheckoutSession {
    let mut pi_data = CreateCheckoutSessionPaymentIntentData::new();
    pi_data.metadata = Some(HashMap::from([(
        "booking_id".to_owned(),
        booking.to_owned(),
    )]));
    CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Payment)
        .line_items(vec![line_item("Haircut with Thandi", 25_000, 1)])
        .metadata(HashMap::from([(
            "booking_id".to_owned(),
            booking.to_owned(),
        )]))
        .client_reference_id(format!("booking-{booking}"))
        .customer_email("thandi@example.com")
        .payment_intent_data(pi_data)
        .expires_at(now_secs() + 3600)
        .success_url(SUCCESS_URL)
        .cancel_url(CANCEL_URL)
}

async fn create_session(env: &Env) -> CheckoutSession {
    session_request("12")
        .send(&env.client)
        .await
        .expect("create a checkout session")
}

async fn retrieve(env: &Env, id: &str) -> CheckoutSession {
    RetrieveCheckoutSession::new(id)
        .send(&env.client)
        .await
        .expect("retrieve the checkout session")
}

fn payment_intent_id(session: &CheckoutSession) -> String {
    session
        .payment_intent
        .as_ref()
        .expect("a payment intent")
        .id()
        .as_str()
        .to_owned()
}

/// The Stripe error inside a client error.
fn stripe_error(e: StripeError) -> (Box<stripe::ApiErrors>, u16) {
    match e {
        StripeError::Stripe(err, status) => (err, status),
        other => panic!("expected a Stripe error, got {other:?}"),
    }
}

async fn post_page(session_id: &str, standin: &StripeStandin, action: &str) -> reqwest::Response {
    browser()
        .post(standin.checkout_url(session_id))
        .form(&[("action", action), ("email", "thandi@example.com")])
        .send()
        .await
        .expect("post the hosted page")
}

/// Parses an event body with async-stripe's own types, as a webhook handler would.
fn parse_event(body: &str) -> stripe_core::Event {
    miniserde::json::from_str(body).expect("async-stripe parses the event")
}

fn data_object<T: miniserde::Deserialize>(event: &Value) -> T {
    miniserde::json::from_str(&event["data"]["object"].to_string())
        .expect("async-stripe parses the event's object")
}

// --- Sessions --------------------------------------------------------------------------------------

#[tokio::test]
async fn sessions_are_created_retrieved_and_listed_through_async_stripe() {
    // Arrange
    let env = env().await;

    // Act
    let session = create_session(&env).await;
    let second = create_session(&env).await;

    // Assert
    let id = session.id.as_str();
    assert!(id.starts_with("cs_test_"), "{id}");
    assert_eq!(session.amount_total, Some(25_000));
    assert_eq!(session.amount_subtotal, Some(25_000));
    assert_eq!(session.currency, Some(Currency::ZAR));
    assert_eq!(session.mode, CheckoutSessionMode::Payment);
    assert_eq!(session.status, Some(CheckoutSessionStatus::Open));
    assert_eq!(session.payment_status, CheckoutSessionPaymentStatus::Unpaid);
    assert!(session.payment_intent.is_none());
    assert!(!session.livemode);
    assert_eq!(
        session.url.as_deref(),
        Some(env.standin.checkout_url(id).as_str())
    );
    assert_eq!(session.success_url.as_deref(), Some(SUCCESS_URL));
    assert_eq!(session.cancel_url.as_deref(), Some(CANCEL_URL));
    assert_eq!(session.client_reference_id.as_deref(), Some("booking-12"));
    assert_eq!(
        session.customer_email.as_deref(),
        Some("thandi@example.com")
    );
    assert_eq!(
        session.metadata.as_ref().and_then(|m| m.get("booking_id")),
        Some(&"12".to_owned())
    );
    assert!((session.expires_at - now_secs() - 3600).abs() <= 5);
    assert_eq!(
        env.standin.last_stripe_version().as_deref(),
        Some(API_VERSION),
        "events must carry the API version async-stripe is pinned to"
    );

    let fetched = retrieve(&env, id).await;
    assert_eq!(fetched.id.as_str(), id);
    assert_eq!(fetched.created, session.created);

    let page = ListCheckoutSession::new()
        .limit(1)
        .created(RangeQueryTs::gte(now_secs() - 60))
        .send(&env.client)
        .await
        .expect("list sessions");
    assert_eq!(page.url, "/v1/checkout/sessions");
    assert_eq!(page.data.len(), 1);
    assert!(page.has_more);
    assert_eq!(page.data[0].id, second.id, "newest first");
    let rest = ListCheckoutSession::new()
        .limit(10)
        .starting_after(second.id.as_str())
        .send(&env.client)
        .await
        .expect("list the next page");
    assert_eq!(rest.data.len(), 1);
    assert!(!rest.has_more);
    assert_eq!(rest.data[0].id.as_str(), id);
    let none = ListCheckoutSession::new()
        .created(RangeQueryTs::gte(now_secs() + 3600))
        .send(&env.client)
        .await
        .expect("list future sessions");
    assert!(none.data.is_empty());

    let missing = RetrieveCheckoutSession::new("cs_test_nope")
        .send(&env.client)
        .await
        .expect_err("unknown session");
    let (err, status) = stripe_error(missing);
    assert_eq!(status, 404);
    assert_eq!(err.code, Some(ApiErrorsCode::ResourceMissing));
}

#[tokio::test]
async fn invalid_session_parameters_are_rejected_with_the_param() {
    let env = env().await;

    let too_soon = session_request("1")
        .expires_at(now_secs() + 60)
        .send(&env.client)
        .await
        .expect_err("expires too soon");
    let (err, status) = stripe_error(too_soon);
    assert_eq!(status, 400);
    assert_eq!(err.type_, ApiErrorsType::InvalidRequestError);
    assert_eq!(err.param.as_deref(), Some("expires_at"));
    assert!(
        err.message
            .as_deref()
            .unwrap_or_default()
            .contains("30 minutes")
    );

    let too_late = session_request("1")
        .expires_at(now_secs() + 25 * 3600)
        .send(&env.client)
        .await
        .expect_err("expires too late");
    assert_eq!(
        stripe_error(too_late).0.param.as_deref(),
        Some("expires_at")
    );

    let no_items = CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Payment)
        .success_url(SUCCESS_URL)
        .send(&env.client)
        .await
        .expect_err("no line items");
    let (err, _) = stripe_error(no_items);
    assert_eq!(err.param.as_deref(), Some("line_items"));
    assert_eq!(err.code, Some(ApiErrorsCode::ParameterMissing));

    let mut nameless = line_item("x", 100, 1);
    if let Some(price) = nameless.price_data.as_mut() {
        price.product_data = None;
    }
    let no_name = session_request("1")
        .line_items(vec![nameless])
        .send(&env.client)
        .await
        .expect_err("no product name");
    assert_eq!(
        stripe_error(no_name).0.param.as_deref(),
        Some("line_items[0][price_data][product_data][name]")
    );
    assert!(env.standin.sessions().is_empty());
}

// --- The hosted page and its webhooks ---------------------------------------------------------------

#[tokio::test]
async fn paying_on_the_hosted_page_redirects_and_sends_a_signed_completed_webhook() {
    // Arrange
    let env = env().await;
    let session = create_session(&env).await;
    let id = session.id.as_str();
    let page = browser()
        .get(env.standin.checkout_url(id))
        .send()
        .await
        .expect("get the hosted page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("page");
    assert!(html.contains("<html lang=\"en\">"));
    assert!(html.contains("Stoep Hair"));
    assert!(html.contains("Haircut with Thandi"));
    assert!(html.contains(">Pay R 250.00</button>"));
    assert!(html.contains("Pay with a card that will be declined"));
    assert!(html.contains("<label for=\"email\">"));

    // Act
    let response = post_page(id, &env.standin, "pay").await;

    // Assert
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        format!("https://portal.example/pay/done?session_id={id}").as_str()
    );
    assert!(env.standin.wait_idle(IDLE).await);
    let hits = env.receiver.hits();
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert!(
        signature_is_valid(&hit.signature, &hit.body),
        "{}",
        hit.signature
    );
    assert_eq!(hit.content_type, "application/json; charset=utf-8");
    assert_eq!(
        hit.user_agent,
        "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
    );
    let event = hit.json();
    assert_eq!(event["type"], "checkout.session.completed");
    assert_eq!(event["object"], "event");
    assert_eq!(event["api_version"], API_VERSION);
    assert_eq!(event["livemode"], false);
    assert!(event["id"].as_str().unwrap_or_default().starts_with("evt_"));
    let parsed = parse_event(&hit.body);
    assert_eq!(parsed.id.as_str(), event["id"].as_str().unwrap_or_default());
    let completed: CheckoutSession = data_object(&event);
    assert_eq!(completed.id.as_str(), id);
    assert_eq!(completed.payment_status, CheckoutSessionPaymentStatus::Paid);
    assert_eq!(completed.status, Some(CheckoutSessionStatus::Complete));

    let session = retrieve(&env, id).await;
    assert_eq!(session.status, Some(CheckoutSessionStatus::Complete));
    assert_eq!(session.payment_status, CheckoutSessionPaymentStatus::Paid);
    let pi = payment_intent_id(&session);
    assert!(pi.starts_with("pi_"));
    let charge: stripe_core::Charge =
        miniserde::json::from_str(&env.standin.charges()[0].to_string()).expect("charge parses");
    assert_eq!(charge.amount, 25_000);
    assert_eq!(
        charge.metadata.get("booking_id").map(String::as_str),
        Some("12")
    );

    // Paying again shows the receipt instead of the buttons.
    let again = post_page(id, &env.standin, "pay").await;
    assert_eq!(again.status(), 200);
    let html = again.text().await.expect("page");
    assert!(html.contains("Payment complete"));
    assert!(!html.contains("value=\"pay\""));
    assert_eq!(env.standin.events().len(), 1);
}

#[tokio::test]
async fn a_declined_card_emits_payment_failed_and_keeps_the_session_open() {
    let env = env().await;
    let session = create_session(&env).await;
    let id = session.id.as_str();

    let response = post_page(id, &env.standin, "decline").await;

    assert_eq!(response.status(), 402);
    let html = response.text().await.expect("page");
    assert!(html.contains("role=\"alert\""));
    assert!(html.contains("Your card was declined. Try another card."));
    assert!(html.contains(">Pay R 250.00</button>"));
    assert!(env.standin.wait_idle(IDLE).await);
    let events = env.receiver.accepted();
    assert_eq!(
        env.receiver.accepted_types(),
        ["payment_intent.payment_failed"]
    );
    let pi = &events[0]["data"]["object"];
    assert_eq!(pi["object"], "payment_intent");
    assert_eq!(pi["status"], "requires_payment_method");
    assert_eq!(pi["amount"], 25_000);
    assert_eq!(pi["currency"], "zar");
    assert_eq!(pi["metadata"]["booking_id"], "12");
    assert_eq!(pi["last_payment_error"]["code"], "card_declined");
    assert_eq!(
        pi["last_payment_error"]["message"],
        "Your card was declined."
    );
    let parsed: stripe_core::PaymentIntent = data_object(&events[0]);
    assert_eq!(parsed.amount, 25_000);
    let still = retrieve(&env, id).await;
    assert_eq!(still.status, Some(CheckoutSessionStatus::Open));

    // A second card works, with the same payment intent.
    env.standin.pay(id).await.expect("pay");
    assert!(env.standin.wait_idle(IDLE).await);
    let paid = retrieve(&env, id).await;
    assert_eq!(
        payment_intent_id(&paid),
        pi["id"].as_str().unwrap_or_default()
    );
    assert_eq!(
        env.receiver.accepted_types(),
        [
            "payment_intent.payment_failed",
            "checkout.session.completed"
        ]
    );
}

#[tokio::test]
async fn paying_later_completes_unpaid_and_settles_asynchronously() {
    let env = env().await;
    let good = create_session(&env).await;
    let bad = create_session(&env).await;

    let response = post_page(good.id.as_str(), &env.standin, "pay_later").await;
    assert_eq!(response.status(), 303);
    env.standin
        .pay_later(bad.id.as_str())
        .await
        .expect("pay later");
    assert!(env.standin.wait_idle(IDLE).await);

    let pending = retrieve(&env, good.id.as_str()).await;
    assert_eq!(pending.status, Some(CheckoutSessionStatus::Complete));
    assert_eq!(pending.payment_status, CheckoutSessionPaymentStatus::Unpaid);
    assert!(payment_intent_id(&pending).starts_with("pi_"));
    let completed = env.receiver.accepted();
    assert_eq!(completed.len(), 2);
    assert_eq!(completed[0]["data"]["object"]["payment_status"], "unpaid");

    // Nothing to refund before the money arrives.
    let early = CreateRefund::new()
        .payment_intent(payment_intent_id(&pending))
        .send(&env.client)
        .await
        .expect_err("nothing to refund yet");
    assert_eq!(
        stripe_error(early).0.code,
        Some(ApiErrorsCode::ChargeNotRefundable)
    );

    env.standin
        .settle_async(good.id.as_str(), true)
        .await
        .expect("settle");
    env.standin
        .settle_async(bad.id.as_str(), false)
        .await
        .expect("fail");
    assert!(env.standin.wait_idle(IDLE).await);
    assert!(
        env.standin
            .settle_async(good.id.as_str(), true)
            .await
            .is_err()
    );

    assert_eq!(
        env.receiver.accepted_types(),
        [
            "checkout.session.completed",
            "checkout.session.completed",
            "checkout.session.async_payment_succeeded",
            "checkout.session.async_payment_failed",
        ]
    );
    let settled = retrieve(&env, good.id.as_str()).await;
    assert_eq!(settled.payment_status, CheckoutSessionPaymentStatus::Paid);
    let failed = retrieve(&env, bad.id.as_str()).await;
    assert_eq!(failed.payment_status, CheckoutSessionPaymentStatus::Unpaid);
}

#[tokio::test]
async fn expired_and_abandoned_sessions_behave_like_stripe() {
    let env = env().await;
    let session = create_session(&env).await;
    let id = session.id.as_str();
    let other = create_session(&env).await;

    env.standin.expire_now(id).await.expect("expire");
    assert!(env.standin.expire_now(id).await.is_err());

    assert!(env.standin.wait_idle(IDLE).await);
    assert_eq!(env.receiver.accepted_types(), ["checkout.session.expired"]);
    let expired = retrieve(&env, id).await;
    assert_eq!(expired.status, Some(CheckoutSessionStatus::Expired));
    let page = browser()
        .get(env.standin.checkout_url(id))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 410);
    assert!(page.text().await.expect("page").contains("expired"));
    assert_eq!(post_page(id, &env.standin, "pay").await.status(), 410);
    let again = ExpireCheckoutSession::new(id)
        .send(&env.client)
        .await
        .expect_err("already expired");
    assert_eq!(stripe_error(again).1, 400);

    // Cancelling returns to cancel_url; expiring through the API works on an open session.
    let cancel = post_page(other.id.as_str(), &env.standin, "abandon").await;
    assert_eq!(cancel.status(), 303);
    assert_eq!(cancel.headers()["location"], CANCEL_URL);
    let expired = ExpireCheckoutSession::new(other.id.as_str())
        .send(&env.client)
        .await
        .expect("expire through the API");
    assert_eq!(expired.status, Some(CheckoutSessionStatus::Expired));
    assert!(env.standin.wait_idle(IDLE).await);
    let events = env.receiver.accepted();
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0]["request"]["id"],
        Value::Null,
        "expired by Stripe itself"
    );
    assert!(
        events[1]["request"]["id"]
            .as_str()
            .is_some_and(|r| r.starts_with("req_")),
        "expired through the API"
    );
}

// --- Refunds, disputes and the balance ------------------------------------------------------------

#[tokio::test]
async fn refunds_are_partial_full_or_refused_like_stripe() {
    // Arrange
    let env = env().await;
    let session = create_session(&env).await;
    env.standin.pay(session.id.as_str()).await.expect("pay");
    let pi = payment_intent_id(&retrieve(&env, session.id.as_str()).await);

    // Act: a partial refund, one too large, the rest, then one more.
    let partial = CreateRefund::new()
        .payment_intent(pi.clone())
        .amount(10_000)
        .reason(CreateRefundReason::RequestedByCustomer)
        .metadata(HashMap::from([("booking_id".to_owned(), "12".to_owned())]))
        .send(&env.client)
        .await
        .expect("partial refund");
    let too_large = CreateRefund::new()
        .payment_intent(pi.clone())
        .amount(20_000)
        .send(&env.client)
        .await
        .expect_err("more than remains");
    let rest = CreateRefund::new()
        .payment_intent(pi.clone())
        .send(&env.client)
        .await
        .expect("refund the rest");
    let nothing_left = CreateRefund::new()
        .payment_intent(pi.clone())
        .send(&env.client)
        .await
        .expect_err("nothing left");
    let unknown = CreateRefund::new()
        .payment_intent("pi_unknown")
        .send(&env.client)
        .await
        .expect_err("unknown payment intent");

    // Assert
    assert!(partial.id.as_str().starts_with("re_"));
    assert_eq!(partial.amount, 10_000);
    assert_eq!(partial.currency, Currency::ZAR);
    assert_eq!(partial.status.as_deref(), Some("succeeded"));
    assert_eq!(
        partial
            .payment_intent
            .as_ref()
            .map(|p| p.id().as_str().to_owned()),
        Some(pi.clone())
    );
    assert!(
        partial
            .charge
            .as_ref()
            .is_some_and(|c| c.id().as_str().starts_with("ch_"))
    );
    assert_eq!(
        partial
            .metadata
            .as_ref()
            .and_then(|m| m.get("booking_id"))
            .map(String::as_str),
        Some("12")
    );
    let (err, status) = stripe_error(too_large);
    assert_eq!(status, 400);
    assert_eq!(err.type_, ApiErrorsType::InvalidRequestError);
    assert_eq!(err.code, Some(ApiErrorsCode::AmountTooLarge));
    assert_eq!(
        err.message.as_deref(),
        Some("Refund amount (R 200.00) is greater than unrefunded amount on charge (R 150.00)")
    );
    assert_eq!(rest.amount, 15_000);
    let (err, _) = stripe_error(nothing_left);
    assert_eq!(err.code, Some(ApiErrorsCode::ChargeAlreadyRefunded));
    let (err, status) = stripe_error(unknown);
    assert_eq!(status, 404);
    assert_eq!(err.code, Some(ApiErrorsCode::ResourceMissing));
    assert_eq!(err.param.as_deref(), Some("payment_intent"));

    let fetched = RetrieveRefund::new(partial.id.as_str())
        .send(&env.client)
        .await
        .expect("retrieve the refund");
    assert_eq!(fetched.amount, 10_000);
    assert_eq!(env.standin.refunds().len(), 2);

    assert!(env.standin.wait_idle(IDLE).await);
    let events = env.receiver.accepted();
    let refunded: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "charge.refunded")
        .collect();
    assert_eq!(refunded.len(), 2);
    let first: stripe_core::Charge = data_object(refunded[0]);
    assert_eq!(first.amount_refunded, 10_000);
    assert!(!first.refunded);
    let second: stripe_core::Charge = data_object(refunded[1]);
    assert_eq!(second.amount_refunded, 25_000);
    assert!(second.refunded);
    assert!(
        refunded[0]["request"]["id"]
            .as_str()
            .is_some_and(|r| r.starts_with("req_"))
    );
}

#[tokio::test]
async fn the_balance_and_disputes_follow_the_payments() {
    let env = env().await;
    let empty = RetrieveForMyAccountBalance::new()
        .send(&env.client)
        .await
        .expect("balance");
    assert!(!empty.livemode);
    assert_eq!(empty.available[0].amount, 0);

    let session = create_session(&env).await;
    env.standin.pay(session.id.as_str()).await.expect("pay");
    let balance = RetrieveForMyAccountBalance::new()
        .send(&env.client)
        .await
        .expect("balance");
    assert_eq!(balance.available.len(), 1);
    assert_eq!(balance.available[0].amount, 25_000);
    assert_eq!(balance.available[0].currency, Currency::ZAR);
    assert_eq!(balance.pending[0].amount, 0);

    env.standin
        .dispute(session.id.as_str())
        .await
        .expect("dispute");
    assert!(env.standin.wait_idle(IDLE).await);
    let events = env.receiver.accepted();
    assert_eq!(events[1]["type"], "charge.dispute.created");
    let dispute: stripe_core::Dispute = data_object(&events[1]);
    assert_eq!(dispute.amount, 25_000);
    let refund = CreateRefund::new()
        .payment_intent(payment_intent_id(
            &retrieve(&env, session.id.as_str()).await,
        ))
        .send(&env.client)
        .await
        .expect_err("a disputed charge cannot be refunded");
    assert_eq!(
        stripe_error(refund).0.code,
        Some(ApiErrorsCode::ChargeDisputed)
    );
}

// --- Authentication, idempotency and API faults ---------------------------------------------------

#[tokio::test]
async fn a_wrong_api_key_gets_stripes_401() {
    let env = env().await;
    let wrong = client_for(&env.standin, "sk_test_wrongwrongabcd");

    let err = session_request("1")
        .send(&wrong)
        .await
        .expect_err("wrong key");

    let (err, status) = stripe_error(err);
    assert_eq!(status, 401);
    assert_eq!(err.type_, ApiErrorsType::InvalidRequestError);
    assert_eq!(
        err.message.as_deref(),
        Some("Invalid API Key provided: sk_test_**********abcd")
    );
    assert!(env.standin.sessions().is_empty());
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_session_once() {
    let env = env().await;
    let key =
        || RequestStrategy::Idempotent(IdempotencyKey::new("booking-12-attempt-1").expect("key"));
    let request = session_request("12");

    let first = request
        .customize()
        .request_strategy(key())
        .send(&env.client)
        .await
        .expect("first");
    let second = request
        .customize()
        .request_strategy(key())
        .send(&env.client)
        .await
        .expect("replay");
    let different = session_request("13")
        .customize()
        .request_strategy(key())
        .send(&env.client)
        .await
        .expect_err("same key, other parameters");

    assert_eq!(first.id, second.id);
    assert_eq!(env.standin.sessions().len(), 1);
    let (err, status) = stripe_error(different);
    assert_eq!(status, 400);
    assert_eq!(err.type_, ApiErrorsType::IdempotencyError);
}

#[tokio::test]
async fn api_faults_fail_calls_and_then_recover() {
    let env = env().await;

    env.faults.api_down.store(true, Ordering::SeqCst);
    let down = create_session_result(&env)
        .await
        .expect_err("Stripe is down");
    let (err, status) = stripe_error(down);
    assert_eq!(status, 503);
    assert_eq!(err.type_, ApiErrorsType::ApiError);
    env.faults.api_down.store(false, Ordering::SeqCst);
    create_session_result(&env).await.expect("back up");

    env.faults.fail_next_api_calls.store(2, Ordering::SeqCst);
    for _ in 0..2 {
        let (err, status) = stripe_error(create_session_result(&env).await.expect_err("fails"));
        assert_eq!(status, 500);
        assert_eq!(err.type_, ApiErrorsType::ApiError);
    }
    create_session_result(&env).await.expect("recovered");
    assert_eq!(env.faults.fail_next_api_calls.load(Ordering::SeqCst), 0);
    assert_eq!(env.standin.sessions().len(), 2);
}

async fn create_session_result(env: &Env) -> Result<CheckoutSession, StripeError> {
    session_request("12").send(&env.client).await
}

// --- Webhook delivery faults --------------------------------------------------------------------

#[tokio::test]
async fn a_dropped_webhook_still_arrives_by_retry() {
    let env = env().await;
    env.faults.drop_next_webhooks.store(1, Ordering::SeqCst);
    let session = create_session(&env).await;

    env.standin.pay(session.id.as_str()).await.expect("pay");

    assert!(env.standin.wait_idle(IDLE).await);
    assert_eq!(
        env.receiver.accepted_types(),
        ["checkout.session.completed"]
    );
    let deliveries = env.standin.deliveries();
    assert_eq!(deliveries.len(), 2);
    assert!(deliveries[0].dropped);
    assert_eq!(deliveries[0].attempt, 1);
    assert!(deliveries[1].succeeded());
    assert_eq!(deliveries[1].attempt, 2);
    assert_eq!(deliveries[0].event_id, deliveries[1].event_id);
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_until_it_answers_2xx() {
    let env = env().await;
    env.receiver.fail_next.store(2, Ordering::SeqCst);
    let session = create_session(&env).await;

    env.standin.pay(session.id.as_str()).await.expect("pay");

    assert!(env.standin.wait_idle(IDLE).await);
    let hits = env.receiver.hits();
    let statuses: Vec<u16> = hits.iter().map(|h| h.status).collect();
    assert_eq!(statuses, [500, 500, 200]);
    let ids: Vec<Value> = hits.iter().map(|h| h.json()["id"].clone()).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "the same event each time"
    );
    assert!(
        hits.iter()
            .all(|h| signature_is_valid(&h.signature, &h.body))
    );
    let bodies: Vec<&str> = hits.iter().map(|h| h.body.as_str()).collect();
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "the same body each time"
    );
}

#[tokio::test]
async fn an_endpoint_that_never_recovers_is_given_up_after_the_schedule() {
    let env = env().await;
    env.receiver.always_fail.store(true, Ordering::SeqCst);
    let session = create_session(&env).await;

    env.standin.pay(session.id.as_str()).await.expect("pay");

    assert!(env.standin.wait_idle(IDLE).await);
    let deliveries = env.standin.deliveries();
    assert_eq!(deliveries.len(), 5, "one attempt and four retries");
    assert!(deliveries.iter().all(|d| d.status == Some(500)));
    assert!(deliveries[4].gave_up);
    assert!(deliveries[..4].iter().all(|d| !d.gave_up));
}

#[tokio::test]
async fn duplicate_webhooks_send_n_plus_one_copies() {
    let env = env().await;
    env.faults.duplicate_webhooks.store(2, Ordering::SeqCst);
    let session = create_session(&env).await;

    env.standin.pay(session.id.as_str()).await.expect("pay");

    assert!(env.standin.wait_idle(IDLE).await);
    let hits = env.receiver.hits();
    assert_eq!(hits.len(), 3);
    assert!(hits.iter().all(|h| h.body == hits[0].body));
    assert!(
        hits.iter()
            .all(|h| signature_is_valid(&h.signature, &h.body))
    );
    let duplicates = env
        .standin
        .deliveries()
        .iter()
        .filter(|d| d.duplicate)
        .count();
    assert_eq!(duplicates, 2);
}

#[tokio::test]
async fn paused_webhooks_wait_and_replays_resend_every_event() {
    let env = env().await;
    env.faults.webhooks_paused.store(true, Ordering::SeqCst);
    let session = create_session(&env).await;
    env.standin.pay(session.id.as_str()).await.expect("pay");
    CreateRefund::new()
        .payment_intent(payment_intent_id(
            &retrieve(&env, session.id.as_str()).await,
        ))
        .amount(5_000)
        .send(&env.client)
        .await
        .expect("refund");

    assert!(!env.standin.wait_idle(Duration::from_millis(200)).await);
    assert!(env.receiver.hits().is_empty());
    env.faults.webhooks_paused.store(false, Ordering::SeqCst);
    assert!(env.standin.wait_idle(IDLE).await);
    assert_eq!(
        env.receiver.accepted_types(),
        ["checkout.session.completed", "charge.refunded"]
    );

    env.standin.redeliver_all(3);
    assert!(env.standin.wait_idle(IDLE).await);
    let accepted = env.receiver.accepted();
    assert_eq!(accepted.len(), 8);
    let ids: Vec<&Value> = accepted.iter().map(|e| &e["id"]).collect();
    assert_eq!(ids[2..], [ids[0], ids[1], ids[0], ids[1], ids[0], ids[1]]);

    env.standin.redeliver(ids[1].as_str().unwrap_or_default());
    assert!(env.standin.wait_idle(IDLE).await);
    assert_eq!(env.receiver.accepted().len(), 9);
}

#[tokio::test]
async fn shuffled_webhooks_all_arrive() {
    let env = env().await;
    env.faults.webhooks_paused.store(true, Ordering::SeqCst);
    env.faults.shuffle_webhooks.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        let session = create_session(&env).await;
        env.standin
            .expire_now(session.id.as_str())
            .await
            .expect("expire");
    }

    env.faults.webhooks_paused.store(false, Ordering::SeqCst);

    assert!(env.standin.wait_idle(IDLE).await);
    let mut got: Vec<String> = env
        .receiver
        .accepted()
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let mut want: Vec<String> = env
        .standin
        .events()
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

// --- Persistence and the admin page ---------------------------------------------------------------

#[tokio::test]
async fn a_state_file_keeps_payments_across_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("stripe-standin.json");
    let env = env_with(|cfg| cfg.state_file = Some(file.clone())).await;
    let session = create_session(&env).await;
    env.standin.pay(session.id.as_str()).await.expect("pay");
    env.shutdown.cancel();

    let restarted = env_with(|cfg| cfg.state_file = Some(file.clone())).await;
    let kept = retrieve(&restarted, session.id.as_str()).await;
    assert_eq!(kept.payment_status, CheckoutSessionPaymentStatus::Paid);
    assert_eq!(restarted.standin.events().len(), 1);
    CreateRefund::new()
        .payment_intent(payment_intent_id(&kept))
        .send(&restarted.client)
        .await
        .expect("refund after the restart");
}

#[tokio::test]
async fn open_sessions_expire_by_themselves_when_their_time_passes() {
    // Arrange: a saved open session whose expiry has passed while the stand-in was stopped.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("stripe-standin.json");
    let env = env_with(|cfg| cfg.state_file = Some(file.clone())).await;
    let session = create_session(&env).await;
    env.shutdown.cancel();
    let mut state: Value =
        serde_json::from_slice(&std::fs::read(&file).expect("state file")).expect("JSON");
    state["sessions"][0]["session"]["expires_at"] = (now_secs() - 1).into();
    std::fs::write(&file, state.to_string()).expect("write the state file");

    // Act
    let restarted = env_with(|cfg| cfg.state_file = Some(file.clone())).await;
    tokio::time::sleep(Duration::from_millis(700)).await;

    // Assert
    assert!(restarted.standin.wait_idle(IDLE).await);
    assert_eq!(
        restarted.receiver.accepted_types(),
        ["checkout.session.expired"]
    );
    let expired = retrieve(&restarted, session.id.as_str()).await;
    assert_eq!(expired.status, Some(CheckoutSessionStatus::Expired));
}

#[tokio::test]
async fn the_admin_page_lists_sessions_events_and_deliveries() {
    let env = env().await;
    let session = create_session(&env).await;
    env.standin.pay(session.id.as_str()).await.expect("pay");
    assert!(env.standin.wait_idle(IDLE).await);

    let page = browser()
        .get(format!("{}/_standin", env.standin.base_url()))
        .send()
        .await
        .expect("admin page");

    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("page");
    assert!(html.contains(session.id.as_str()));
    assert!(html.contains("checkout.session.completed"));
    assert!(html.contains("HTTP 200"));
}
