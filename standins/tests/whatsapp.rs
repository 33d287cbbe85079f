//! Tests of the WhatsApp Cloud API stand-in over real HTTP on 127.0.0.1: sends as the Graph API
//! takes them (reqwest, JSON), webhooks to a small axum receiver whose signatures are checked
//! with `guards`, the phone page's forms, and the fault switches. Each test starts its own
//! stand-in with statuses milliseconds apart and a short retry schedule.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use guards::whatsapp::{StatusKind, parse_webhook, verify_hub_signature};
use serde_json::{Value, json};
use standins::whatsapp::{
    ACCESS_TOKEN, APP_SECRET, PHONE_NUMBER_ID, VERIFY_TOKEN, WhatsAppStandin, WhatsAppStandinConfig,
};
use support::{Hit, Receiver, start_receiver};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const IDLE: Duration = Duration::from_secs(5);
const CUSTOMER: &str = "27821234567";

struct Setup {
    standin: WhatsAppStandin,
    receiver: Receiver,
    http: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn setup() -> Setup {
    let shutdown = CancellationToken::new();
    let (receiver, url) = start_receiver(&shutdown).await;
    *receiver.verify_token.lock().expect("lock") = VERIFY_TOKEN.to_owned();
    let config = WhatsAppStandinConfig {
        webhook_url: Some(format!("{url}/webhooks/whatsapp")),
        retry_schedule: vec![Duration::from_millis(30); 3],
        sent_after: Duration::from_millis(10),
        delivered_after: Duration::from_millis(30),
        read_after: Some(Duration::from_millis(50)),
        ..Default::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let standin = WhatsAppStandin::start(listener, config, shutdown.clone())
        .await
        .expect("starts");
    Setup {
        standin,
        receiver,
        http: reqwest::Client::new(),
        shutdown,
    }
}

impl Setup {
    fn messages_url(&self) -> String {
        format!(
            "{}/v23.0/{PHONE_NUMBER_ID}/messages",
            self.standin.base_url()
        )
    }

    async fn post(&self, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = self
            .http
            .post(self.messages_url())
            .bearer_auth(ACCESS_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("stand-in answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.json().await.expect("JSON"))
    }
}

fn invoice_template(to: &str) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": {
            "name": "invoice_ready",
            "language": { "code": "en" },
            "components": [{ "type": "body", "parameters": [
                { "type": "text", "text": "Thandi" },
                { "type": "text", "text": "INV-0042" },
            ]}],
        },
    })
}

fn text_message(to: &str, body: &str) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "to": to,
        "type": "text",
        "text": { "preview_url": false, "body": body },
    })
}

/// Every webhook verifies and parses; returns the parsed bodies.
fn verified(hits: &[Hit]) -> Vec<guards::whatsapp::Webhook> {
    hits.iter()
        .map(|h| {
            verify_hub_signature(
                h.header("x-hub-signature-256").as_deref(),
                &h.body,
                APP_SECRET,
            )
            .expect("signature verifies");
            assert!(h.body.is_ascii(), "Meta escapes non-ASCII");
            parse_webhook(&h.body).expect("webhook parses")
        })
        .collect()
}

fn statuses_of(hits: &[Hit], id: &str) -> Vec<guards::whatsapp::Status> {
    verified(hits)
        .iter()
        .flat_map(|w| w.statuses().cloned().collect::<Vec<_>>())
        .filter(|s| s.message_id == id)
        .collect()
}

#[tokio::test]
async fn a_template_send_returns_an_id_and_signed_sent_delivered_read_statuses_follow() {
    let s = setup().await;
    let (status, _, body) = s.post(invoice_template("+27821234567")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(body["contacts"][0]["input"], "+27821234567");
    assert_eq!(body["contacts"][0]["wa_id"], CUSTOMER);
    assert_eq!(body["messages"][0]["message_status"], "accepted");
    let id = body["messages"][0]["id"]
        .as_str()
        .expect("wamid")
        .to_owned();
    assert!(id.starts_with("wamid.") && id.len() <= 128, "{id}");

    assert!(s.standin.wait_idle(IDLE).await);
    let statuses = statuses_of(&s.receiver.hits(), &id);
    let kinds: Vec<&StatusKind> = statuses.iter().map(|st| &st.status).collect();
    assert_eq!(
        kinds,
        [&StatusKind::Sent, &StatusKind::Delivered, &StatusKind::Read]
    );
    assert!(statuses.iter().all(|st| st.recipient_id == CUSTOMER));
    assert!(statuses.iter().all(|st| st.timestamp.is_some()));
    assert_eq!(statuses[0].pricing_category.as_deref(), Some("utility"));
    let hook = parse_webhook(&s.receiver.hits()[0].body).expect("parses");
    assert_eq!(
        hook.changes[0].phone_number_id.as_deref(),
        Some(PHONE_NUMBER_ID)
    );

    // The phone shows the rendered template, read.
    let phone = s.standin.phone(CUSTOMER);
    assert_eq!(phone.len(), 1);
    assert_eq!(phone[0].text, "Hi Thandi, invoice INV-0042 is ready.");
    assert_eq!(phone[0].status, "read");
    let page = s
        .http
        .get(format!("{}/_standin/phone", s.standin.base_url()))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("text");
    assert!(page.contains("Hi Thandi, invoice INV-0042 is ready."));
    // What the client sent is on record for its own tests.
    assert_eq!(
        s.standin.requests()[0].body["template"]["name"],
        "invoice_ready"
    );
}

#[tokio::test]
async fn an_unknown_template_or_language_is_refused_with_132001_and_a_wrong_count_with_132000() {
    let s = setup().await;
    let mut unknown = invoice_template(CUSTOMER);
    unknown["template"]["name"] = json!("no_such_template");
    let (status, _, body) = s.post(unknown).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 132_001);
    assert_eq!(body["error"]["type"], "OAuthException");
    assert!(body["error"]["fbtrace_id"].is_string());
    assert_eq!(
        body["error"]["error_data"]["details"],
        "template name (no_such_template) does not exist in en"
    );

    let mut wrong_language = invoice_template(CUSTOMER);
    wrong_language["template"]["language"]["code"] = json!("en_US");
    assert_eq!(s.post(wrong_language).await.2["error"]["code"], 132_001);

    let mut one_param = invoice_template(CUSTOMER);
    one_param["template"]["components"][0]["parameters"] =
        json!([{ "type": "text", "text": "Thandi" }]);
    let (status, _, body) = s.post(one_param).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 132_000);

    let mut newline = invoice_template(CUSTOMER);
    newline["template"]["components"][0]["parameters"][0]["text"] = json!("Tha\nndi");
    assert_eq!(s.post(newline).await.2["error"]["code"], 132_018);

    // The "template rejected" fault refuses even a known one.
    s.standin
        .faults()
        .reject_templates
        .store(true, Ordering::SeqCst);
    assert_eq!(
        s.post(invoice_template(CUSTOMER)).await.2["error"]["code"],
        132_001
    );
    assert!(s.standin.messages().is_empty());
}

#[tokio::test]
async fn a_stop_reply_on_the_phone_page_reaches_the_portal_as_an_inbound_message() {
    let s = setup().await;
    let response = s
        .http
        .post(format!("{}/_standin/phone/reply", s.standin.base_url()))
        .form(&[("number", "+27 82 123 4567"), ("text", "STOP")])
        .send()
        .await
        .expect("form posts");
    assert!(response.status().is_success() || response.status().is_redirection());
    assert!(s.standin.wait_idle(IDLE).await);
    let hooks = verified(&s.receiver.accepted());
    let inbound: Vec<_> = hooks
        .iter()
        .flat_map(|w| w.messages().cloned().collect::<Vec<_>>())
        .collect();
    assert_eq!(inbound.len(), 1);
    assert_eq!(inbound[0].from, CUSTOMER);
    assert_eq!(inbound[0].kind, "text");
    assert_eq!(inbound[0].text.as_deref(), Some("STOP"));
    assert!(inbound[0].is_opt_out_text());
    assert!(inbound[0].timestamp.is_some());
}

#[tokio::test]
async fn free_form_text_outside_the_window_fails_by_webhook_with_131047_and_inside_it_is_delivered()
{
    let s = setup().await;
    let (status, _, body) = s
        .post(text_message(CUSTOMER, "Your plumber is 10 min away."))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["messages"][0].get("message_status").is_none());
    let closed_id = body["messages"][0]["id"].as_str().expect("id").to_owned();
    assert!(s.standin.wait_idle(IDLE).await);
    let statuses = statuses_of(&s.receiver.hits(), &closed_id);
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].status, StatusKind::Failed);
    assert_eq!(statuses[0].errors[0].code, 131_047);

    // The customer writes: the window opens, and the same text is delivered.
    s.standin
        .reply(CUSTOMER, "When are you coming?")
        .expect("reply");
    let (_, _, body) = s
        .post(text_message(CUSTOMER, "Your plumber is 10 min away."))
        .await;
    let open_id = body["messages"][0]["id"].as_str().expect("id").to_owned();
    assert!(s.standin.wait_idle(IDLE).await);
    let kinds: Vec<StatusKind> = statuses_of(&s.receiver.hits(), &open_id)
        .into_iter()
        .map(|st| st.status)
        .collect();
    assert_eq!(
        kinds,
        [StatusKind::Sent, StatusKind::Delivered, StatusKind::Read]
    );

    // The synchronous variant.
    s.standin.set_last_inbound(CUSTOMER, None);
    s.standin
        .faults()
        .window_error_sync
        .store(true, Ordering::SeqCst);
    let (status, _, body) = s.post(text_message(CUSTOMER, "Hello?")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 131_047);
}

#[tokio::test]
async fn rate_limits_answer_400_130429_as_documented_or_429_with_retry_after_when_switched() {
    let s = setup().await;
    let faults = s.standin.faults();
    faults.rate_limit_next.store(1, Ordering::SeqCst);
    let (status, headers, body) = s.post(invoice_template(CUSTOMER)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 130_429);
    assert!(headers.get("retry-after").is_none());

    faults.rate_limit_next.store(2, Ordering::SeqCst);
    faults.rate_limit_http_429.store(true, Ordering::SeqCst);
    faults.retry_after_secs.store(7, Ordering::SeqCst);
    faults.rate_limit_code.store(80_007, Ordering::SeqCst);
    for _ in 0..2 {
        let (status, headers, body) = s.post(invoice_template(CUSTOMER)).await;
        assert_eq!(status, 429);
        assert_eq!(body["error"]["code"], 80_007);
        assert_eq!(
            headers.get("retry-after").and_then(|v| v.to_str().ok()),
            Some("7")
        );
    }
    // The storm is over.
    assert_eq!(s.post(invoice_template(CUSTOMER)).await.0, 200);
    assert_eq!(faults.describe(), "normal");
}

#[tokio::test]
async fn bad_tokens_unknown_ids_and_outages_get_graph_errors() {
    let s = setup().await;
    let response = s
        .http
        .post(s.messages_url())
        .bearer_auth("EAAwrong")
        .json(&invoice_template(CUSTOMER))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], 190);

    let response = s
        .http
        .post(format!("{}/v23.0/999/messages", s.standin.base_url()))
        .bearer_auth(ACCESS_TOKEN)
        .json(&invoice_template(CUSTOMER))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], 100);
    assert_eq!(body["error"]["error_subcode"], 33);

    let (status, _, body) = s.post(invoice_template("not-a-number")).await;
    assert_eq!((status, body["error"]["code"].clone()), (400, json!(100)));

    s.standin.faults().api_down.store(true, Ordering::SeqCst);
    let (status, _, body) = s.post(invoice_template(CUSTOMER)).await;
    assert_eq!((status, body["error"]["code"].clone()), (503, json!(2)));
    s.standin.faults().reset();
    assert_eq!(s.post(invoice_template(CUSTOMER)).await.0, 200);
}

#[tokio::test]
async fn the_connection_test_returns_the_fields_asked_for() {
    let s = setup().await;
    let body: Value = s
        .http
        .get(format!(
            "{}/v24.0/{PHONE_NUMBER_ID}?fields=display_phone_number,verified_name,quality_rating",
            s.standin.base_url()
        ))
        .bearer_auth(ACCESS_TOKEN)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        body,
        json!({
            "display_phone_number": "+27 60 000 0000",
            "verified_name": "Stoep",
            "quality_rating": "GREEN",
            "id": PHONE_NUMBER_ID,
        })
    );
}

#[tokio::test]
async fn failed_deliveries_are_retried_and_duplicates_and_losses_are_switchable() {
    let s = setup().await;
    s.standin
        .config()
        .faults
        .webhooks
        .duplicate
        .store(1, Ordering::SeqCst);
    s.receiver.fail_next.store(2, Ordering::SeqCst);
    s.standin.reply(CUSTOMER, "Hi").expect("reply");
    assert!(s.standin.wait_idle(IDLE).await);
    let log = s.standin.deliveries();
    // Two failures, the success, and one duplicate of it.
    assert_eq!(log.len(), 4, "{log:?}");
    assert_eq!(log.iter().filter(|d| d.succeeded()).count(), 2);
    assert_eq!(log[2].attempt, 3);
    assert!(log[3].duplicate);
    let accepted = s.receiver.accepted();
    assert_eq!(accepted.len(), 2);
    assert_eq!(accepted[0].body, accepted[1].body);

    let webhooks = &s.standin.faults().webhooks;
    webhooks.reset();
    webhooks.drop_next.store(1, Ordering::SeqCst);
    s.standin.reply(CUSTOMER, "Hello again").expect("reply");
    assert!(s.standin.wait_idle(IDLE).await);
    assert_eq!(s.receiver.hits().len(), 4, "the lost webhook never arrives");
    assert!(s.standin.deliveries().last().expect("logged").dropped);
}

#[tokio::test]
async fn paused_and_shuffled_statuses_can_arrive_out_of_order() {
    let s = setup().await;
    let webhooks = &s.standin.faults().webhooks;
    webhooks.paused.store(true, Ordering::SeqCst);
    webhooks.shuffle.store(true, Ordering::SeqCst);
    let mut ids = Vec::new();
    for _ in 0..4 {
        let (_, _, body) = s.post(invoice_template(CUSTOMER)).await;
        ids.push(body["messages"][0]["id"].as_str().expect("id").to_owned());
    }
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(s.receiver.hits().is_empty(), "paused");
    webhooks.paused.store(false, Ordering::SeqCst);
    assert!(s.standin.wait_idle(IDLE).await);
    // Every status arrives exactly once, whatever the order.
    for id in &ids {
        assert_eq!(statuses_of(&s.receiver.hits(), id).len(), 3);
    }
}

#[tokio::test]
async fn magic_recipients_fail_as_documented() {
    let s = setup().await;
    let (status, _, body) = s.post(invoice_template("27820000001")).await;
    assert_eq!(status, 200);
    let id = body["messages"][0]["id"].as_str().expect("id").to_owned();
    let (status, _, body) = s.post(invoice_template("27820000002")).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!(130_429))
    );
    let (status, _, body) = s.post(invoice_template("27820000003")).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (500, json!(131_000))
    );
    assert!(s.standin.wait_idle(IDLE).await);
    let statuses = statuses_of(&s.receiver.hits(), &id);
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].errors[0].code, 131_026);
    assert_eq!(
        s.standin.message(&id).expect("kept").error.as_deref(),
        Some("131026 Message Undeliverable")
    );
}

#[tokio::test]
async fn a_quick_reply_tap_arrives_as_a_button_message_with_its_context() {
    let s = setup().await;
    let (_, _, body) = s
        .post(json!({
            "messaging_product": "whatsapp",
            "to": CUSTOMER,
            "type": "template",
            "template": {
                "name": "seasonal_offer",
                "language": { "code": "en", "policy": "deterministic" },
                "components": [
                    { "type": "body", "parameters": [
                        { "type": "text", "parameter_name": "first_name", "text": "Thandi" },
                        { "type": "text", "parameter_name": "business", "text": "Acme" },
                    ]},
                    { "type": "button", "sub_type": "quick_reply", "index": "0",
                      "parameters": [{ "type": "payload", "payload": "STOP_PROMOTIONS" }] },
                ],
            },
        }))
        .await;
    let id = body["messages"][0]["id"].as_str().expect("id").to_owned();
    assert!(
        s.standin
            .message(&id)
            .expect("kept")
            .text
            .starts_with("Hi Thandi, Acme has"),
    );
    s.standin.tap(&id, 0).expect("tap");
    assert!(s.standin.wait_idle(IDLE).await);
    let taps: Vec<_> = verified(&s.receiver.hits())
        .iter()
        .flat_map(|w| w.messages().cloned().collect::<Vec<_>>())
        .collect();
    assert_eq!(taps.len(), 1);
    assert_eq!(taps[0].kind, "button");
    assert_eq!(taps[0].button_payload.as_deref(), Some("STOP_PROMOTIONS"));
    assert_eq!(taps[0].context_id.as_deref(), Some(id.as_str()));
}

#[tokio::test]
async fn the_verification_handshake_succeeds_only_with_the_right_token() {
    let s = setup().await;
    assert_eq!(s.standin.verify_webhook().await, Ok(()));
    *s.receiver.verify_token.lock().expect("lock") = "something-else".into();
    assert!(s.standin.verify_webhook().await.is_err());
}
