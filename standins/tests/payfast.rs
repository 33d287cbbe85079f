//! The PayFast stand-in over real HTTP on 127.0.0.1: the hosted page takes a signed checkout and
//! refuses a tampered one, paying sends an ITN that `guards` verifies before the buyer is sent
//! back, the validate endpoint recognises only the ITNs it sent, the REST API checks its header
//! signature and refunds, and the ITN faults drop, duplicate, delay and reorder.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Receiver, client, quick_schedule};
use guards::payfast as pf;
use serde_json::{Value, json};
use standins::payfast::{
    MERCHANT_ID, MERCHANT_KEY, PASSPHRASE, PayMethod, PayfastStandin, PayfastStandinConfig,
    PaymentState,
};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

struct Harness {
    standin: PayfastStandin,
    receiver: Receiver,
    http: reqwest::Client,
    _stop: tokio_util::sync::DropGuard,
}

async fn harness(cfg: PayfastStandinConfig) -> Harness {
    let shutdown = CancellationToken::new();
    let receiver = Receiver::start(&shutdown).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let standin = PayfastStandin::start(listener, cfg, shutdown.clone())
        .await
        .expect("the stand-in starts");
    Harness {
        standin,
        receiver,
        http: client(),
        _stop: shutdown.drop_guard(),
    }
}

fn quick() -> PayfastStandinConfig {
    PayfastStandinConfig {
        retry_schedule: quick_schedule(),
        notify_timeout: Duration::from_secs(2),
        ..PayfastStandinConfig::default()
    }
}

/// A checkout form as the portal would post it: the fields, then the signature.
fn checkout(h: &Harness, m_payment_id: &str, amount: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = [
        ("merchant_id", MERCHANT_ID),
        ("merchant_key", MERCHANT_KEY),
        (
            "return_url",
            "https://portal.example.co.za/pay/return?inv=INV-1",
        ),
        ("cancel_url", "https://portal.example.co.za/pay/cancel"),
        ("notify_url", h.receiver.url.as_str()),
        ("name_first", "Zoë"),
        ("name_last", "O'Brien"),
        ("email_address", "zoe+billing@example.co.za"),
        ("m_payment_id", m_payment_id),
        ("amount", amount),
        ("item_name", "Deposit (Widgets & Co)"),
        ("custom_str1", "tenant:7/abc"),
        ("custom_int1", "42"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let signature = pf::checkout_signature(&fields, Some(PASSPHRASE));
    fields.push(("signature".into(), signature));
    fields
}

/// POSTs a checkout form; returns the hosted page's id.
async fn open_checkout(h: &Harness, fields: &[(String, String)]) -> String {
    let response = h
        .http
        .post(h.standin.process_url())
        .form(fields)
        .send()
        .await
        .expect("the process call");
    assert_eq!(response.status(), 303, "{:?}", response.text().await);
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a redirect")
        .to_owned();
    location
        .strip_prefix("/eng/process/payment/")
        .expect("to the payment page")
        .to_owned()
}

/// The buyer presses a button on the hosted page.
async fn press(h: &Harness, id: &str, action: &str) -> reqwest::Response {
    h.http
        .post(h.standin.payment_url(id))
        .form(&[("action", action)])
        .send()
        .await
        .expect("the button")
}

/// Signed API headers for a call with these extra (query and body) fields.
fn api_headers(extra: &[(&str, &str)], passphrase: &str) -> Vec<(String, String)> {
    let timestamp = pf::format_api_timestamp(standins::common::now_secs());
    let mut params: Vec<(String, String)> = vec![
        ("merchant-id".into(), MERCHANT_ID.into()),
        ("version".into(), "v1".into()),
        ("timestamp".into(), timestamp),
    ];
    let mut signed = params.clone();
    signed.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    params.push((
        "signature".into(),
        pf::api_signature(&signed, Some(passphrase)),
    ));
    params
}

async fn api_get(h: &Harness, path: &str) -> (u16, Value) {
    let mut request = h.http.get(format!("{}{path}", h.standin.api_url()));
    for (k, v) in api_headers(&[], PASSPHRASE) {
        request = request.header(k, v);
    }
    let response = request.send().await.expect("the API call");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

async fn api_post(
    h: &Harness,
    path: &str,
    body: &[(&str, &str)],
    json_body: Value,
) -> (u16, Value) {
    let mut request = h.http.post(format!("{}{path}", h.standin.api_url()));
    for (k, v) in api_headers(body, PASSPHRASE) {
        request = request.header(k, v);
    }
    let response = request.json(&json_body).send().await.expect("the API call");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

#[tokio::test]
async fn a_correctly_signed_checkout_is_accepted_and_a_tampered_one_refused() {
    let h = harness(quick()).await;
    let good = checkout(&h, "INV-1", "10.00");
    let id = open_checkout(&h, &good).await;
    let page = h
        .http
        .get(h.standin.payment_url(&id))
        .send()
        .await
        .expect("the page");
    assert_eq!(page.status(), 200);
    let text = page.text().await.expect("HTML");
    assert!(
        text.contains("R 10.00") && text.contains("by instant EFT"),
        "{text}"
    );
    let payment = h.standin.payment("INV-1").expect("kept");
    assert_eq!(payment.state, PaymentState::Open);
    assert_eq!(payment.amount_cents, 1000);

    let mut tampered = good.clone();
    tampered
        .iter_mut()
        .find(|(k, _)| k == "amount")
        .expect("amount")
        .1 = "1.00".into();
    let mut wrong_key = good.clone();
    wrong_key
        .iter_mut()
        .find(|(k, _)| k == "merchant_key")
        .expect("key")
        .1 = "nope".into();
    let unsigned: Vec<(String, String)> = good
        .iter()
        .filter(|(k, _)| k != "signature")
        .cloned()
        .collect();
    for (form, why) in [
        (tampered, "Generated signature does not match"),
        (wrong_key, "merchant key is invalid"),
        (unsigned, "signature: required"),
    ] {
        let response = h
            .http
            .post(h.standin.process_url())
            .form(&form)
            .send()
            .await
            .expect("the process call");
        assert_eq!(response.status(), 400);
        let text = response.text().await.expect("HTML");
        assert!(text.contains(why), "{why}: {text}");
    }
    assert_eq!(h.standin.payments().len(), 1);
}

#[tokio::test]
async fn paying_sends_a_signed_itn_before_the_buyer_returns_and_validate_knows_it() {
    let h = harness(quick()).await;
    let id = open_checkout(&h, &checkout(&h, "INV-2", "1234.50")).await;
    let response = press(&h, &id, "card").await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        "https://portal.example.co.za/pay/return?inv=INV-1"
    );
    // PayFast posts the ITN before it redirects: it is there when the buyer is back.
    let got = h.receiver.got();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );

    let itn = pf::Itn::parse(&got[0].body).expect("a well-formed ITN");
    assert_eq!(itn.verify(Some(PASSPHRASE)), Ok(()));
    assert_eq!(itn.verify(None), Err(pf::PayfastError::BadSignature));
    let names: Vec<&str> = itn.pairs().iter().map(|(k, _)| k.as_str()).collect();
    let expected: Vec<&str> = pf::ITN_FIELDS
        .iter()
        .copied()
        .filter(|f| *f != "token" && *f != "billing_date")
        .collect();
    assert_eq!(names, expected, "PayFast's fields in PayFast's order");
    let payment = h.standin.payment(&id).expect("kept");
    assert_eq!(payment.state, PaymentState::Complete);
    assert_eq!(itn.get("m_payment_id"), Some("INV-2"));
    assert_eq!(
        itn.get("pf_payment_id"),
        payment.pf_payment_id.map(|n| n.to_string()).as_deref()
    );
    assert!(itn.is_complete());
    assert_eq!(itn.get("amount_gross"), Some("1234.50"));
    let fee = pf::parse_rand(itn.get("amount_fee").unwrap_or_default()).expect("a fee");
    let net = pf::parse_rand(itn.get("amount_net").unwrap_or_default()).expect("a net");
    assert!(fee < 0 && net - fee == 123_450, "fee {fee}, net {net}");
    assert!(pf::amount_matches(
        123_450,
        itn.get("amount_gross").unwrap_or_default()
    ));
    assert_eq!(itn.get("item_name"), Some("Deposit (Widgets & Co)"));
    assert_eq!(itn.get("item_description"), Some(""));
    assert_eq!(itn.get("custom_str1"), Some("tenant:7/abc"));
    assert_eq!(itn.get("custom_int1"), Some("42"));
    assert_eq!(itn.get("custom_str2"), Some(""));
    assert_eq!(itn.get("name_first"), Some("Zoë"));
    assert_eq!(itn.get("email_address"), Some("zoe+billing@example.co.za"));
    assert_eq!(itn.get("merchant_id"), Some(MERCHANT_ID));
    assert!(
        itn.get("merchant_key").is_none(),
        "the key is never sent back"
    );

    let validate = |body: String| {
        let http = h.http.clone();
        let url = h.standin.validate_url();
        async move {
            http.post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .expect("validate")
                .text()
                .await
                .expect("text")
        }
    };
    assert_eq!(validate(itn.param_string()).await, "VALID");
    assert_eq!(
        validate(got[0].text()).await,
        "VALID",
        "with the signature too"
    );
    let changed = itn
        .param_string()
        .replace("amount_gross=1234.50", "amount_gross=1.00");
    assert_eq!(validate(changed).await, "INVALID");
    let reordered = pf::itn_param_string(&{
        let mut pairs = itn.signed_pairs().to_vec();
        pairs.swap(3, 4);
        pairs
    });
    assert_eq!(validate(reordered).await, "INVALID");
    assert_eq!(validate("garbage".into()).await, "INVALID");
    assert_eq!(validate(String::new()).await, "INVALID");

    h.standin
        .faults()
        .validate_invalid
        .store(true, Ordering::SeqCst);
    assert_eq!(validate(itn.param_string()).await, "INVALID");
    h.standin.faults().reset();

    h.standin
        .faults()
        .validate_timeout
        .store(true, Ordering::SeqCst);
    let slow = h
        .http
        .post(h.standin.validate_url())
        .body(itn.param_string())
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(slow.is_err_and(|e| e.is_timeout()));
    h.standin.faults().reset();
    assert_eq!(validate(itn.param_string()).await, "VALID");
}

#[tokio::test]
async fn cancelling_sends_the_buyer_to_cancel_url_and_no_itn() {
    let h = harness(quick()).await;
    let id = open_checkout(&h, &checkout(&h, "INV-3", "50.00")).await;
    let declined = press(&h, &id, "decline").await;
    assert_eq!(declined.status(), 402);
    assert!(declined.text().await.expect("HTML").contains("declined"));
    let response = press(&h, &id, "cancel").await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        "https://portal.example.co.za/pay/cancel"
    );
    assert!(h.standin.wait_idle(WAIT).await);
    assert!(h.receiver.got().is_empty());
    let payment = h.standin.payment(&id).expect("kept");
    assert_eq!(payment.state, PaymentState::Cancelled);
    assert_eq!(payment.declines, 1);
    // A second press changes nothing.
    assert_eq!(press(&h, &id, "card").await.status(), 200);
    assert_eq!(
        h.standin.payment(&id).expect("kept").state,
        PaymentState::Cancelled
    );
}

#[tokio::test]
async fn the_api_checks_its_header_signature_and_answers_in_payfasts_shapes() {
    let h = harness(quick()).await;
    let (status, body) = api_get(&h, "/ping").await;
    assert_eq!((status, body), (200, json!("Payfast API")));
    let (status, body) = api_get(&h, "/ping?testing=true").await;
    assert_eq!((status, body), (200, json!("API V1")));

    // A signature made with another passphrase, and one that leaves out a query parameter.
    let mut request = h.http.get(format!("{}/ping", h.standin.api_url()));
    for (k, v) in api_headers(&[], "wrong") {
        request = request.header(k, v);
    }
    let response = request.send().await.expect("the call");
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.expect("JSON"),
        json!({"code": 401, "status": "failed", "data": {"response": "Merchant authorization failed", "message": "Failure"}})
    );
    let mut request = h.http.get(format!(
        "{}/transactions/history?from=2024-01-01",
        h.standin.api_url()
    ));
    for (k, v) in api_headers(&[], PASSPHRASE) {
        request = request.header(k, v);
    }
    assert_eq!(request.send().await.expect("the call").status(), 401);
    // Headers missing, a bad version, another merchant.
    let response = h
        .http
        .get(format!("{}/ping", h.standin.api_url()))
        .send()
        .await
        .expect("the call");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(
        body["data"]["response"],
        "Required variables not present in request"
    );
    let mut request = h.http.get(format!("{}/ping", h.standin.api_url()));
    for (k, v) in api_headers(&[], PASSPHRASE) {
        let v = if k == "version" { "v2".to_owned() } else { v };
        request = request.header(k, v);
    }
    let body: Value = request
        .send()
        .await
        .expect("the call")
        .json()
        .await
        .expect("JSON");
    assert_eq!(body["data"]["response"], "API version is not valid");
    // The PHP SDK's `+0200` timestamps are accepted too.
    let timestamp = "2024-01-01T12:00:00+0200";
    let params = [
        ("merchant-id", MERCHANT_ID),
        ("version", "v1"),
        ("timestamp", timestamp),
    ];
    let response = h
        .http
        .get(format!("{}/ping", h.standin.api_url()))
        .header("merchant-id", MERCHANT_ID)
        .header("version", "v1")
        .header("timestamp", timestamp)
        .header("signature", pf::api_signature(&params, Some(PASSPHRASE)))
        .send()
        .await
        .expect("the call");
    assert_eq!(response.status(), 200);

    // Faults: down, then failing once.
    h.standin.faults().api_down.store(true, Ordering::SeqCst);
    assert_eq!(api_get(&h, "/ping").await.0, 503);
    h.standin.faults().reset();
    h.standin
        .faults()
        .fail_next_api_calls
        .store(1, Ordering::SeqCst);
    assert_eq!(api_get(&h, "/ping").await.0, 500);
    assert_eq!(api_get(&h, "/ping").await.0, 200);
    assert_eq!(api_get(&h, "/nowhere").await.0, 404);
}

#[tokio::test]
async fn card_payments_refund_to_the_card_and_the_queries_reflect_it() {
    let h = harness(quick()).await;
    let id = open_checkout(&h, &checkout(&h, "INV-4", "100.00")).await;
    press(&h, &id, "card").await;
    let pf_id = h
        .standin
        .payment(&id)
        .and_then(|p| p.pf_payment_id)
        .expect("paid");

    let (status, body) = api_get(&h, &format!("/process/query/{pf_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["response"]["pf_payment_id"], pf_id);
    assert_eq!(body["data"]["response"]["m_payment_id"], "INV-4");
    assert_eq!(body["data"]["response"]["status"], "COMPLETE");
    assert_eq!(body["data"]["response"]["amount"], 10_000);

    let (_, body) = api_get(&h, &format!("/refunds/query/{pf_id}")).await;
    let q = &body["data"]["response"];
    assert_eq!(q["status"], "REFUNDABLE");
    assert_eq!(q["amount_available_for_refund"], 10_000);
    assert_eq!(q["refund_full"]["method"], "PAYMENT_SOURCE");

    let fields = [
        ("amount", "3000"),
        ("reason", "Product returned"),
        ("notify_buyer", "1"),
    ];
    let (status, body) = api_post(
        &h,
        &format!("/refunds/{pf_id}"),
        &fields,
        json!({"amount": 3000, "reason": "Product returned", "notify_buyer": 1}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"code": 200, "status": "success", "data": {"response": true, "message": "Success"}})
    );
    let (_, body) = api_get(&h, &format!("/refunds/query/{pf_id}")).await;
    assert_eq!(
        body["data"]["response"]["amount_available_for_refund"],
        7_000
    );
    let (_, body) = api_get(&h, &format!("/refunds/{pf_id}")).await;
    let details = &body["data"]["response"];
    assert_eq!(details["available_balance"], 7_000);
    assert_eq!(details["transactions"][0]["amount"], 10_000);
    assert_eq!(details["transactions"][1]["amount"], "-3000");
    assert_eq!(
        details["transactions"][1]["type"],
        "Funds Received (Refund)"
    );

    // More than is left, a body the signature does not cover, a short reason.
    let (status, body) = api_post(
        &h,
        &format!("/refunds/{pf_id}"),
        &[
            ("amount", "7001"),
            ("reason", "Too much"),
            ("notify_buyer", "1"),
        ],
        json!({"amount": 7001, "reason": "Too much", "notify_buyer": 1}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = api_post(
        &h,
        &format!("/refunds/{pf_id}"),
        &[],
        json!({"amount": 100, "reason": "Unsigned", "notify_buyer": 1}),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = api_post(
        &h,
        &format!("/refunds/{pf_id}"),
        &[("amount", "100"), ("reason", "no"), ("notify_buyer", "1")],
        json!({"amount": 100, "reason": "no", "notify_buyer": 1}),
    )
    .await;
    assert_eq!(status, 400);
    // The rest, then nothing is left.
    let (status, _) = api_post(
        &h,
        &format!("/refunds/{pf_id}"),
        &[
            ("amount", "7000"),
            ("reason", "The rest"),
            ("notify_buyer", "1"),
        ],
        json!({"amount": 7000, "reason": "The rest", "notify_buyer": 1}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, body) = api_get(&h, &format!("/refunds/query/{pf_id}")).await;
    assert_eq!(body["data"]["response"]["status"], "NOT_AVAILABLE");
    assert_eq!(
        h.standin.payment(&id).expect("kept").refunded_cents(),
        10_000
    );
    assert_eq!(api_get(&h, "/process/query/999").await.0, 404);
}

#[tokio::test]
async fn eft_payments_refund_by_bank_payout_with_bank_details() {
    let h = harness(quick()).await;
    let id = open_checkout(&h, &checkout(&h, "INV-5", "20.00")).await;
    assert_eq!(press(&h, &id, "eft").await.status(), 303);
    let pf_id = h
        .standin
        .payment(&id)
        .and_then(|p| p.pf_payment_id)
        .expect("paid");
    let (_, body) = api_get(&h, &format!("/refunds/query/{pf_id}")).await;
    assert_eq!(
        body["data"]["response"]["refund_full"]["method"],
        "BANK_PAYOUT"
    );
    assert_eq!(body["data"]["response"]["funding_type"], "Instant EFT");
    let bare = [
        ("amount", "500"),
        ("reason", "Returned"),
        ("notify_buyer", "1"),
    ];
    let (status, _) = api_post(
        &h,
        &format!("/refunds/{pf_id}"),
        &bare,
        json!({"amount": 500, "reason": "Returned", "notify_buyer": 1}),
    )
    .await;
    assert_eq!(status, 400, "bank details are required");
    let full = [
        ("amount", "500"),
        ("reason", "Returned"),
        ("notify_buyer", "1"),
        ("bank_account_holder", "Z OBrien"),
        ("bank_name", "FNB"),
        ("bank_branch_code", "250655"),
        ("bank_account_number", "62000000000"),
        ("bank_account_type", "current"),
    ];
    let body: serde_json::Map<String, Value> = full
        .iter()
        .map(|(k, v)| {
            let v = if *k == "amount" || *k == "notify_buyer" {
                json!(v.parse::<i64>().expect("a number"))
            } else {
                json!(v)
            };
            (k.to_string(), v)
        })
        .collect();
    let (status, body) =
        api_post(&h, &format!("/refunds/{pf_id}"), &full, Value::Object(body)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn dropped_itns_are_retried_duplicates_repeat_and_a_dead_endpoint_is_given_up() {
    let h = harness(quick()).await;
    let faults = h.standin.faults().notifications.clone();

    faults.drop_next.store(1, Ordering::SeqCst);
    let id = open_checkout(&h, &checkout(&h, "INV-6", "10.00")).await;
    press(&h, &id, "card").await;
    assert!(h.standin.wait_idle(WAIT).await);
    assert_eq!(h.receiver.got().len(), 1, "the drop was retried once");
    let log = h.standin.deliveries();
    assert_eq!(log.len(), 2);
    assert!(log[0].dropped && !log[0].delivered && log[0].attempt == 1);
    assert!(log[1].delivered && log[1].attempt == 2 && log[1].status == Some(200));

    faults.duplicate.store(2, Ordering::SeqCst);
    let id = open_checkout(&h, &checkout(&h, "INV-7", "10.00")).await;
    press(&h, &id, "card").await;
    assert!(h.standin.wait_idle(WAIT).await);
    let got = h.receiver.got();
    assert_eq!(got.len(), 4);
    assert!(got[1].body == got[2].body && got[2].body == got[3].body);
    faults.reset();

    // Anything but 200 is a failure: PayFast retries, then gives up.
    h.receiver.answer(202);
    let id = open_checkout(&h, &checkout(&h, "INV-8", "10.00")).await;
    press(&h, &id, "card").await;
    assert!(h.standin.wait_idle(WAIT).await);
    let tries: Vec<_> = h
        .standin
        .deliveries()
        .into_iter()
        .filter(|d| d.id == "INV-8")
        .collect();
    assert_eq!(tries.len(), quick_schedule().len() + 1);
    assert!(tries.iter().all(|d| d.status == Some(202) && !d.delivered));
    assert!(tries.last().is_some_and(|d| d.gave_up));

    // A resend after the portal recovers is the same ITN.
    h.receiver.answer(200);
    h.standin.resend_itn("INV-8").expect("resent");
    assert!(h.standin.wait_idle(WAIT).await);
    let got = h.receiver.got();
    assert_eq!(got[got.len() - 1].body, got[got.len() - 2].body);

    // A delay holds the ITN back (and so the buyer's redirect).
    faults.delay_ms.store(300, Ordering::SeqCst);
    let before = h.receiver.got().len();
    let id = open_checkout(&h, &checkout(&h, "INV-9", "10.00")).await;
    h.standin.pay(&id, PayMethod::Card).expect("paid");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.receiver.got().len(), before);
    assert!(h.receiver.wait_for(before + 1, WAIT).await);
}

#[tokio::test]
async fn paused_itns_wait_and_shuffled_ones_arrive_out_of_order() {
    let h = harness(quick()).await;
    let faults = h.standin.faults().notifications.clone();
    faults.paused.store(true, Ordering::SeqCst);
    let mut order = Vec::new();
    for n in 0..8 {
        let m = format!("INV-S{n}");
        let id = open_checkout(&h, &checkout(&h, &m, "10.00")).await;
        // While paused the hosted page does not wait for the ITN.
        assert_eq!(press(&h, &id, "card").await.status(), 303);
        order.push(m);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(h.receiver.got().is_empty());
    assert_eq!(h.standin.outbox().pending().len(), 8);
    assert!(!h.standin.wait_idle(Duration::from_millis(50)).await);

    faults.shuffle.store(true, Ordering::SeqCst);
    faults.paused.store(false, Ordering::SeqCst);
    assert!(h.standin.wait_idle(WAIT).await);
    let arrived: Vec<String> = h
        .receiver
        .got()
        .iter()
        .map(|r| {
            pf::Itn::parse(&r.body)
                .ok()
                .and_then(|itn| itn.get("m_payment_id").map(str::to_owned))
                .unwrap_or_default()
        })
        .collect();
    let mut sorted = arrived.clone();
    sorted.sort();
    assert_eq!(sorted, order, "every ITN arrived once");
    // 8! orders: the chance of the original one is 1 in 40320.
    assert_ne!(arrived, order, "shuffled");
}

#[tokio::test]
async fn the_admin_page_and_the_notify_on_cancel_option_work() {
    let h = harness(PayfastStandinConfig {
        notify_on_cancel: true,
        ..quick()
    })
    .await;
    let id = open_checkout(&h, &checkout(&h, "INV-10", "10.00")).await;
    press(&h, &id, "cancel").await;
    assert!(h.receiver.wait_for(1, WAIT).await);
    let itn = pf::Itn::parse(&h.receiver.got()[0].body).expect("an ITN");
    assert_eq!(itn.get("payment_status"), Some("CANCELLED"));
    assert_eq!(itn.verify(Some(PASSPHRASE)), Ok(()));
    let page = h
        .http
        .get(format!("{}/_standin", h.standin.base_url()))
        .send()
        .await
        .expect("the page")
        .text()
        .await
        .expect("HTML");
    assert!(
        page.contains("INV-10") && page.contains("ITN CANCELLED"),
        "{page}"
    );
}
