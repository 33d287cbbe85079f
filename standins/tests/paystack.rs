//! The Paystack stand-in over real HTTP on 127.0.0.1: initialize, the hosted checkout, verify,
//! refunds through their statuses, the webhooks and their signature (checked with `guards`),
//! Paystack's errors, and the faults.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Receiver, client, quick_schedule};
use guards::paystack::{SIGNATURE_HEADER, verify_webhook};
use serde_json::{Value, json};
use standins::paystack::{PaystackStandin, PaystackStandinConfig, RefundOutcome, SECRET_KEY};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

struct Harness {
    standin: PaystackStandin,
    receiver: Receiver,
    http: reqwest::Client,
    _stop: tokio_util::sync::DropGuard,
}

async fn harness() -> Harness {
    let shutdown = CancellationToken::new();
    let receiver = Receiver::start(&shutdown).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let cfg = PaystackStandinConfig {
        webhook_url: Some(receiver.url.clone()),
        retry_schedule: quick_schedule(),
        webhook_timeout: Duration::from_secs(2),
        refund_step: Duration::from_millis(40),
        ..PaystackStandinConfig::default()
    };
    let standin = PaystackStandin::start(listener, cfg, shutdown.clone())
        .await
        .expect("the stand-in starts");
    Harness {
        standin,
        receiver,
        http: client(),
        _stop: shutdown.drop_guard(),
    }
}

impl Harness {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.standin.base_url()))
            .bearer_auth(SECRET_KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API call");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON"))
    }

    async fn initialize(&self, reference: &str, amount: Value) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            "/transaction/initialize",
            Some(json!({
                "email": "zoe@example.co.za",
                "amount": amount,
                "currency": "ZAR",
                "reference": reference,
                "callback_url": "https://portal.example.co.za/pay/paystack?inv=INV-1",
                "metadata": {"invoice_id": "INV-1", "cancel_action": "https://portal.example.co.za/pay/cancelled"},
                "channels": ["card", "eft"],
            })),
        )
        .await
    }

    /// Initializes and pays through the hosted checkout with `action`.
    async fn paid(&self, reference: &str, amount: i64, action: &str) {
        let (status, body) = self.initialize(reference, json!(amount)).await;
        assert_eq!(status, 200, "{body}");
        let url = body["data"]["authorization_url"]
            .as_str()
            .expect("a checkout URL")
            .to_owned();
        let response = self
            .http
            .post(url)
            .form(&[("action", action)])
            .send()
            .await
            .expect("the button");
        assert_eq!(response.status(), 303);
    }

    /// The webhooks received so far, each checked against the key: (event, data).
    fn webhooks(&self) -> Vec<(String, Value)> {
        self.receiver
            .got()
            .iter()
            .map(|r| {
                assert_eq!(
                    verify_webhook(r.header(SIGNATURE_HEADER), &r.body, &[SECRET_KEY]),
                    Ok(0),
                    "signed: {}",
                    r.text()
                );
                let v: Value = serde_json::from_slice(&r.body).expect("JSON");
                (
                    v["event"].as_str().unwrap_or_default().to_owned(),
                    v["data"].clone(),
                )
            })
            .collect()
    }

    async fn wait_refund_status(&self, id: &Value, status: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let (_, body) = self
                .call(reqwest::Method::GET, &format!("/refund/{id}"), None)
                .await;
            if body["data"]["status"] == status || Instant::now() > deadline {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn initialize_verify_and_the_charge_success_webhook_round_trip() {
    let h = harness().await;
    let (status, body) = h.initialize("INV-0042-a1", json!("123450")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], true);
    assert_eq!(body["message"], "Authorization URL created");
    let code = body["data"]["access_code"].as_str().expect("a code");
    assert_eq!(body["data"]["reference"], "INV-0042-a1");
    assert_eq!(
        body["data"]["authorization_url"],
        h.standin.checkout_url(code)
    );

    // Before paying, verify says abandoned.
    let (status, body) = h
        .call(
            reqwest::Method::GET,
            "/transaction/verify/INV-0042-a1",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["status"], "abandoned");

    let page = h
        .http
        .get(h.standin.checkout_url(code))
        .send()
        .await
        .expect("the page");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("HTML").contains("R 1234.50"));
    let response = h
        .http
        .post(h.standin.checkout_url(code))
        .form(&[("action", "pay")])
        .send()
        .await
        .expect("pay");
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        "https://portal.example.co.za/pay/paystack?inv=INV-1&trxref=INV-0042-a1&reference=INV-0042-a1"
    );

    assert!(h.receiver.wait_for(1, WAIT).await);
    let hooks = h.webhooks();
    assert_eq!(hooks.len(), 1);
    let (event, data) = &hooks[0];
    assert_eq!(event, "charge.success");
    assert_eq!(data["reference"], "INV-0042-a1");
    assert_eq!(data["amount"], 123_450);
    assert_eq!(data["currency"], "ZAR");
    assert_eq!(data["status"], "success");
    assert_eq!(data["metadata"]["invoice_id"], "INV-1");
    assert_eq!(
        h.receiver.got()[0].header("content-type"),
        Some("application/json")
    );
    // A changed byte no longer verifies.
    let mut body = h.receiver.got()[0].body.to_vec();
    body.push(b' ');
    assert!(
        verify_webhook(
            h.receiver.got()[0].header(SIGNATURE_HEADER),
            &body,
            &[SECRET_KEY]
        )
        .is_err()
    );

    let (_, body) = h
        .call(
            reqwest::Method::GET,
            "/transaction/verify/INV-0042-a1",
            None,
        )
        .await;
    let tx = &body["data"];
    assert_eq!(body["message"], "Verification successful");
    assert_eq!(tx["status"], "success");
    assert_eq!(tx["amount"], 123_450);
    assert_eq!(tx["gateway_response"], "Successful");
    assert_eq!(tx["customer"]["email"], "zoe@example.co.za");
    assert_eq!(tx["authorization"]["last4"], "4081");
    assert!(tx["paid_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(tx["id"].as_u64().is_some());
    let (status, body) = h
        .call(
            reqwest::Method::GET,
            &format!("/transaction/{}", tx["id"]),
            None,
        )
        .await;
    assert_eq!(
        (status, &body["data"]["reference"]),
        (200, &json!("INV-0042-a1"))
    );
    let (_, body) = h
        .call(reqwest::Method::GET, "/transaction?perPage=1&page=1", None)
        .await;
    assert_eq!(body["meta"]["total"], 1);
    assert_eq!(body["data"][0]["reference"], "INV-0042-a1");

    // Paying twice is not possible.
    assert!(
        h.standin
            .pay("INV-0042-a1", RefundOutcome::Processed)
            .is_err()
    );
}

#[tokio::test]
async fn a_reused_reference_is_refused_as_paystack_refuses_it() {
    let h = harness().await;
    assert_eq!(h.initialize("INV-7-1", json!(5000)).await.0, 200);
    let (status, body) = h.initialize("INV-7-1", json!(5000)).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({
            "status": false,
            "message": "Duplicate Transaction Reference",
            "meta": {"nextStep": "Try and create the Transaction or Charge with a new reference"},
            "type": "validation_error",
            "code": "duplicate_reference",
        })
    );
    assert_eq!(h.standin.transactions().len(), 1);
}

#[tokio::test]
async fn bad_keys_and_bad_input_are_refused_in_paystacks_shapes() {
    let h = harness().await;
    let response = h
        .http
        .get(format!("{}/balance", h.standin.base_url()))
        .bearer_auth("sk_test_wrong")
        .send()
        .await
        .expect("the call");
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.expect("JSON"),
        json!({"status": false, "message": "Invalid key"})
    );
    let response = h
        .http
        .get(format!("{}/balance", h.standin.base_url()))
        .send()
        .await
        .expect("the call");
    assert_eq!(response.status(), 401);

    assert_eq!(h.initialize("INV-1", json!(99)).await.0, 400, "below R1.00");
    assert_eq!(
        h.initialize("INV-1", json!("12.50")).await.0,
        400,
        "not cents"
    );
    assert_eq!(h.initialize("INV 1", json!(100)).await.0, 400, "a space");
    assert_eq!(
        h.initialize("INV_1", json!(100)).await.0,
        400,
        "an underscore"
    );
    let (status, body) = h
        .call(
            reqwest::Method::POST,
            "/transaction/initialize",
            Some(json!({"amount": 500})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["status"], false);
    assert_eq!(body["type"], "validation_error");
    let (status, body) = h
        .call(
            reqwest::Method::POST,
            "/transaction/initialize",
            Some(json!({"email": "a@b.co", "amount": 500, "currency": "NGN"})),
        )
        .await;
    assert_eq!(
        (status, &body["code"]),
        (400, &json!("unsupported_currency"))
    );
    // A reference may be left to Paystack; metadata may be stringified JSON.
    let (status, body) = h
        .call(
            reqwest::Method::POST,
            "/transaction/initialize",
            Some(json!({"email": "a@b.co", "amount": 500, "metadata": "{\"a\":1}"})),
        )
        .await;
    assert_eq!(status, 200);
    let reference = body["data"]["reference"].as_str().expect("generated");
    let tx = h.standin.transaction(reference).expect("kept");
    assert_eq!(tx.metadata, json!({"a": 1}));

    let (status, body) = h
        .call(reqwest::Method::GET, "/transaction/verify/nope", None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["message"], "Transaction reference not found");
}

#[tokio::test]
async fn refunds_go_pending_processing_processed_with_their_webhooks() {
    let h = harness().await;
    h.paid("INV-R1", 10_000, "pay").await;
    let (status, body) = h
        .call(
            reqwest::Method::POST,
            "/refund",
            Some(json!({"transaction": "INV-R1", "amount": 4000, "merchant_note": "Deposit returned"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "Refund has been queued for processing");
    assert_eq!(body["data"]["status"], "pending");
    assert_eq!(body["data"]["amount"], 4000);
    assert_eq!(body["data"]["transaction"]["reference"], "INV-R1");
    let id = body["data"]["id"].clone();

    let body = h.wait_refund_status(&id, "processed").await;
    assert_eq!(body["data"]["status"], "processed", "{body}");
    assert_eq!(body["data"]["amount"], 4000);
    assert!(body["data"]["transaction"].is_u64());
    assert!(h.standin.wait_idle(WAIT).await);
    let hooks = h.webhooks();
    let events: Vec<&str> = hooks.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        events,
        [
            "charge.success",
            "refund.pending",
            "refund.processing",
            "refund.processed"
        ]
    );
    let processed = &hooks[3].1;
    assert_eq!(processed["transaction_reference"], "INV-R1");
    assert_eq!(processed["amount"], "4000");
    assert!(processed["refund_reference"].is_string());
    assert!(
        processed.get("id").is_none(),
        "Paystack's refund webhooks carry no refund id"
    );

    // The rest (no amount: what is left), and the transaction is reversed.
    let (status, body) = h
        .call(
            reqwest::Method::POST,
            "/refund",
            Some(json!({"transaction": "INV-R1"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["amount"], 6000);
    h.wait_refund_status(&body["data"]["id"], "processed").await;
    let (_, body) = h
        .call(reqwest::Method::GET, "/transaction/verify/INV-R1", None)
        .await;
    assert_eq!(body["data"]["status"], "reversed");
    let (status, body) = h
        .call(
            reqwest::Method::POST,
            "/refund",
            Some(json!({"transaction": "INV-R1", "amount": 100})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (_, body) = h
        .call(reqwest::Method::GET, "/refund?transaction=INV-R1", None)
        .await;
    assert_eq!(body["meta"]["total"], 2);
    let (_, body) = h.call(reqwest::Method::GET, "/balance", None).await;
    assert_eq!(body["data"][0]["currency"], "ZAR");
}

#[tokio::test]
async fn refunds_fail_or_need_attention_by_test_card_or_fault() {
    let h = harness().await;
    // Paystack's test card whose refunds fail.
    h.paid("INV-F1", 5_000, "pay_refund_fails").await;
    let (_, body) = h
        .call(
            reqwest::Method::POST,
            "/refund",
            Some(json!({"transaction": "INV-F1"})),
        )
        .await;
    let body = h.wait_refund_status(&body["data"]["id"], "failed").await;
    assert_eq!(body["data"]["status"], "failed");
    assert!(h.standin.wait_idle(WAIT).await);
    assert!(
        h.webhooks()
            .iter()
            .any(|(e, d)| e == "refund.failed" && d["transaction_reference"] == "INV-F1")
    );
    // A failed refund gives the amount back: it can be refunded again.
    let (status, _) = h
        .call(
            reqwest::Method::POST,
            "/refund",
            Some(json!({"transaction": "INV-F1", "amount": 5000})),
        )
        .await;
    assert_eq!(status, 200);

    // The fault: the next refund needs attention, then is retried with bank details.
    h.paid("INV-N1", 5_000, "pay").await;
    h.standin
        .faults()
        .needs_attention_next_refunds
        .store(1, Ordering::SeqCst);
    let (_, body) = h
        .call(
            reqwest::Method::POST,
            "/refund",
            Some(json!({"transaction": "INV-N1"})),
        )
        .await;
    let id = body["data"]["id"].clone();
    let body = h.wait_refund_status(&id, "needs-attention").await;
    assert_eq!(body["data"]["status"], "needs-attention");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(h.standin.wait_idle(WAIT).await);
    let for_n1: Vec<String> = h
        .webhooks()
        .into_iter()
        .filter(|(_, d)| d["transaction_reference"] == "INV-N1")
        .map(|(e, _)| e)
        .collect();
    assert_eq!(for_n1, ["refund.pending"], "no webhook for needs-attention");
    let (status, _) = h
        .call(
            reqwest::Method::POST,
            &format!("/refund/retry_with_customer_details/{id}"),
            Some(json!({"refund_account_details": {"currency": "ZAR", "account_number": "62000000000", "bank_id": "9"}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        h.wait_refund_status(&id, "processed").await["data"]["status"],
        "processed"
    );

    // The fault that fails the next refund, on a card whose refunds would succeed.
    h.paid("INV-F2", 5_000, "pay").await;
    h.standin
        .faults()
        .fail_next_refunds
        .store(1, Ordering::SeqCst);
    let (_, body) = h
        .call(
            reqwest::Method::POST,
            "/refund",
            Some(json!({"transaction": "INV-F2", "amount": 1000})),
        )
        .await;
    assert_eq!(
        h.wait_refund_status(&body["data"]["id"], "failed").await["data"]["status"],
        "failed"
    );
}

#[tokio::test]
async fn webhook_faults_drop_duplicate_shuffle_and_retry_until_200() {
    let h = harness().await;
    let faults = h.standin.faults().webhooks.clone();

    faults.drop_next.store(1, Ordering::SeqCst);
    h.paid("INV-W1", 1_000, "pay").await;
    assert!(h.standin.wait_idle(WAIT).await);
    assert_eq!(h.receiver.got().len(), 1);
    let log = h.standin.deliveries();
    assert!(log[0].dropped && log[1].delivered);

    faults.duplicate.store(1, Ordering::SeqCst);
    h.paid("INV-W2", 1_000, "pay").await;
    assert!(h.standin.wait_idle(WAIT).await);
    let got = h.receiver.got();
    assert_eq!(got.len(), 3);
    assert_eq!(got[1].body, got[2].body);
    faults.reset();

    // The portal down: retried on schedule, the same bytes each time, until a 200.
    h.receiver.answer(500);
    h.paid("INV-W3", 1_000, "pay").await;
    assert!(h.receiver.wait_for(5, WAIT).await);
    h.receiver.answer(200);
    assert!(h.standin.wait_idle(WAIT).await);
    let got = h.receiver.got();
    assert!(got[3..].iter().all(|r| r.body == got[3].body));
    let last = h.standin.deliveries().last().cloned().expect("attempts");
    assert!(last.delivered && last.attempt >= 2, "{last:?}");

    // Shuffled while paused, then released.
    faults.paused.store(true, Ordering::SeqCst);
    let mut order = Vec::new();
    for n in 0..8 {
        let reference = format!("INV-S{n}");
        h.paid(&reference, 1_000, "pay").await;
        order.push(reference);
    }
    faults.shuffle.store(true, Ordering::SeqCst);
    let before = h.receiver.got().len();
    faults.paused.store(false, Ordering::SeqCst);
    assert!(h.standin.wait_idle(WAIT).await);
    let arrived: Vec<String> = h.webhooks()[before..]
        .iter()
        .map(|(_, d)| d["reference"].as_str().unwrap_or_default().to_owned())
        .collect();
    let mut sorted = arrived.clone();
    sorted.sort();
    assert_eq!(sorted, order);
    assert_ne!(
        arrived, order,
        "shuffled (1 chance in 40320 of the same order)"
    );
}

#[tokio::test]
async fn disputes_faults_and_the_connection_test_endpoints() {
    let h = harness().await;
    h.paid("INV-D1", 2_000, "pay").await;
    h.standin.dispute("INV-D1").expect("disputed");
    assert!(h.standin.wait_idle(WAIT).await);
    let hooks = h.webhooks();
    let (event, data) = hooks.last().expect("a webhook");
    assert_eq!(event, "charge.dispute.create");
    assert_eq!(data["transaction"]["reference"], "INV-D1");
    assert_eq!(data["status"], "awaiting-merchant-feedback");

    let (status, body) = h
        .call(
            reqwest::Method::GET,
            "/integration/payment_session_timeout",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["payment_session_timeout"], 30);
    let (status, body) = h.call(reqwest::Method::GET, "/balance", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["message"], "Balances retrieved");
    assert!(body["data"][0]["balance"].as_i64().is_some_and(|b| b > 0));

    h.standin.faults().api_down.store(true, Ordering::SeqCst);
    let (status, body) = h.call(reqwest::Method::GET, "/balance", None).await;
    assert_eq!((status, &body["status"]), (503, &json!(false)));
    h.standin.faults().reset();
    h.standin
        .faults()
        .fail_next_api_calls
        .store(1, Ordering::SeqCst);
    assert_eq!(h.call(reqwest::Method::GET, "/balance", None).await.0, 500);
    assert_eq!(h.call(reqwest::Method::GET, "/balance", None).await.0, 200);

    // Abandoning goes to metadata.cancel_action; declining leaves the checkout open.
    let (_, body) = h.initialize("INV-A1", json!(1000)).await;
    let url = body["data"]["authorization_url"]
        .as_str()
        .expect("a URL")
        .to_owned();
    let declined = h
        .http
        .post(&url)
        .form(&[("action", "decline")])
        .send()
        .await
        .expect("decline");
    assert_eq!(declined.status(), 402);
    let (_, body) = h
        .call(reqwest::Method::GET, "/transaction/verify/INV-A1", None)
        .await;
    assert_eq!(body["data"]["status"], "failed");
    let abandoned = h
        .http
        .post(&url)
        .form(&[("action", "abandon")])
        .send()
        .await
        .expect("abandon");
    assert_eq!(abandoned.status(), 303);
    assert_eq!(
        abandoned.headers()["location"],
        "https://portal.example.co.za/pay/cancelled"
    );
    let page = h
        .http
        .get(format!("{}/_standin", h.standin.base_url()))
        .send()
        .await
        .expect("the page")
        .text()
        .await
        .expect("HTML");
    assert!(page.contains("INV-D1") && page.contains("charge.dispute.create"));
}
