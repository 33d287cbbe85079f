//! Tests of the BulkSMS stand-in over real HTTP on 127.0.0.1: sends as BulkSMS's JSON API
//! takes them (reqwest, HTTP Basic), delivery reports and received messages to a small axum
//! receiver (parsed with `guards::sms`), the phone page, and the fault switches. Each test
//! starts its own stand-in with status changes milliseconds apart and a short retry schedule.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use guards::sms::{SmsDirection, SmsState, parse_bulksms_webhook};
use serde_json::{Value, json};
use standins::bulksms::{
    BulkSmsStandin, BulkSmsStandinConfig, REPLY_NUMBER, TOKEN_ID, TOKEN_SECRET,
};
use support::{Receiver, start_receiver};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const IDLE: Duration = Duration::from_secs(5);
const CUSTOMER: &str = "27821234567";
const SECRET: &str = "s3cr3t-in-the-url";

struct Setup {
    standin: BulkSmsStandin,
    receiver: Receiver,
    http: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn setup_with(invoke_many: bool) -> Setup {
    let shutdown = CancellationToken::new();
    let (receiver, url) = start_receiver(&shutdown).await;
    let config = BulkSmsStandinConfig {
        status_webhook_url: Some(format!("{url}/webhooks/sms/status?secret={SECRET}")),
        inbound_webhook_url: Some(format!("{url}/webhooks/sms/inbound?secret={SECRET}")),
        invoke_many,
        retry_schedule: vec![Duration::from_millis(30); 3],
        sent_after: Duration::from_millis(10),
        delivered_after: Duration::from_millis(40),
        ..Default::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let standin = BulkSmsStandin::start(listener, config, shutdown.clone())
        .await
        .expect("starts");
    Setup {
        standin,
        receiver,
        http: reqwest::Client::new(),
        shutdown,
    }
}

async fn setup() -> Setup {
    setup_with(true).await
}

impl Setup {
    async fn send(&self, query: &str, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = self
            .http
            .post(format!("{}/v1/messages{query}", self.standin.base_url()))
            .basic_auth(TOKEN_ID, Some(TOKEN_SECRET))
            .json(&body)
            .send()
            .await
            .expect("stand-in answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (
            status,
            headers,
            response.json().await.unwrap_or(Value::Null),
        )
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.standin.base_url()))
            .basic_auth(TOKEN_ID, Some(TOKEN_SECRET))
            .send()
            .await
            .expect("stand-in answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Every message in the accepted webhooks to `path`, parsed.
    fn reports(&self, path: &str) -> Vec<guards::sms::SmsMessage> {
        self.receiver
            .accepted()
            .iter()
            .filter(|h| h.path_and_query.starts_with(path))
            .flat_map(|h| {
                assert!(
                    h.path_and_query.ends_with(&format!("?secret={SECRET}")),
                    "the secret stays in the URL"
                );
                assert_eq!(
                    h.header("content-type").as_deref(),
                    Some("application/json")
                );
                parse_bulksms_webhook(&h.body).expect("parses").messages
            })
            .collect()
    }
}

fn sms(to: &str, body: &str) -> Value {
    json!({
        "to": to,
        "body": body,
        "from": { "type": "REPLIABLE" },
        "encoding": "TEXT",
        "longMessageMaxParts": 3,
        "deliveryReports": "ALL",
        "userSuppliedId": "ob-000042",
    })
}

#[tokio::test]
async fn a_send_answers_201_with_message_objects_and_delivery_reports_follow() {
    let s = setup().await;
    let (status, _, body) = s
        .send(
            "",
            sms("+27821234567", "Hi Thandi, invoice INV-0042 is ready"),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let m = &body[0];
    let id = m["id"].as_str().expect("id is a string").to_owned();
    assert!(
        id.len() >= 19 && id.bytes().all(|b| b.is_ascii_digit()),
        "{id}"
    );
    assert!(id.parse::<u64>().expect("digits") > 1 << 53);
    assert_eq!(m["type"], "SENT");
    assert_eq!(m["to"], CUSTOMER);
    assert_eq!(m["from"], "");
    assert_eq!(
        m["status"],
        json!({"id": "ACCEPTED.null", "type": "ACCEPTED", "subtype": null})
    );
    assert_eq!(m["numberOfParts"], Value::Null);
    assert_eq!(m["creditCost"], Value::Null);
    assert_eq!(m["userSuppliedId"], "ob-000042");
    assert!(
        m["submission"]["date"]
            .as_str()
            .expect("date")
            .ends_with('Z')
    );

    assert!(s.standin.wait_idle(IDLE).await);
    let reports = s.reports("/webhooks/sms/status");
    let states: Vec<SmsState> = reports
        .iter()
        .filter(|r| r.id == id)
        .map(|r| r.state())
        .collect();
    assert_eq!(states, [SmsState::Sent, SmsState::Delivered]);
    assert_eq!(reports[1].number_of_parts, Some(1));
    assert!(
        s.receiver
            .hits()
            .iter()
            .all(|h| h.header("x-hub-signature-256").is_none())
    );

    let (status, got) = s.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got["status"]["id"], "DELIVERED.null");
    assert_eq!(got["numberOfParts"], 1);
    assert_eq!(got["creditCost"], 1);
    assert_eq!(s.standin.credits(), 99.0);
    assert_eq!(s.standin.phone(CUSTOMER)[0].status, "DELIVERED.null");
}

#[tokio::test]
async fn sending_twice_with_one_deduplication_id_creates_one_message() {
    let s = setup().await;
    let (first_status, _, first) = s
        .send(
            "?deduplication-id=42",
            sms(CUSTOMER, "Your booking is confirmed"),
        )
        .await;
    let (second_status, _, second) = s
        .send(
            "?deduplication-id=42",
            sms(CUSTOMER, "Your booking is confirmed"),
        )
        .await;
    assert_eq!((first_status, second_status), (201, 201));
    assert_eq!(first, second);
    assert_eq!(s.standin.api_messages().len(), 1);
    let (_, _, third) = s
        .send(
            "?deduplication-id=43",
            sms(CUSTOMER, "Your booking is confirmed"),
        )
        .await;
    assert_ne!(third[0]["id"], first[0]["id"]);
    assert_eq!(s.standin.api_messages().len(), 2);
    assert_eq!(
        s.send("?deduplication-id=x", sms(CUSTOMER, "x")).await.0,
        400
    );
}

#[tokio::test]
async fn a_stop_reply_reaches_the_portal_and_blocks_the_number() {
    let s = setup().await;
    let (_, _, sent) = s
        .send("", sms(CUSTOMER, "Reminder: your visit is tomorrow"))
        .await;
    let sent_id = sent[0]["id"].as_str().expect("id").to_owned();
    let response = s
        .http
        .post(format!("{}/_standin/phone/reply", s.standin.base_url()))
        .form(&[("number", CUSTOMER), ("text", "Stop")])
        .send()
        .await
        .expect("form posts");
    assert!(response.status().is_success() || response.status().is_redirection());
    assert!(s.standin.wait_idle(IDLE).await);

    let inbound = s.reports("/webhooks/sms/inbound");
    assert_eq!(inbound.len(), 1);
    assert_eq!(inbound[0].direction, SmsDirection::Received);
    assert_eq!(inbound[0].from, CUSTOMER);
    assert_eq!(inbound[0].to, REPLY_NUMBER);
    assert_eq!(
        inbound[0].related_sent_message_id.as_deref(),
        Some(sent_id.as_str())
    );
    assert!(inbound[0].is_opt_out());

    let (_, blocked) = s.get("/v1/blocked-numbers").await;
    assert_eq!(blocked, json!([{ "id": 1, "phoneNumber": CUSTOMER }]));
    let (_, related) = s
        .get(&format!("/v1/messages/{sent_id}/relatedReceivedMessages"))
        .await;
    assert_eq!(related[0]["body"], "Stop");

    // As BulkSMS does: the next send to the number fails BLOCKED, and is charged.
    let (_, _, again) = s.send("", sms(CUSTOMER, "Are you still there?")).await;
    let again_id = again[0]["id"].as_str().expect("id").to_owned();
    assert!(s.standin.wait_idle(IDLE).await);
    let last = s
        .reports("/webhooks/sms/status")
        .into_iter()
        .rfind(|r| r.id == again_id)
        .expect("reported");
    assert_eq!(last.state(), SmsState::OptedOut);
    assert_eq!(s.standin.credits(), 98.0);
}

#[tokio::test]
async fn the_rate_limit_fault_answers_429_with_retry_after() {
    let s = setup().await;
    s.standin
        .faults()
        .rate_limit_next
        .store(2, Ordering::SeqCst);
    s.standin
        .faults()
        .retry_after_secs
        .store(3, Ordering::SeqCst);
    for _ in 0..2 {
        let (status, headers, body) = s.send("", sms(CUSTOMER, "Hi")).await;
        assert_eq!(status, 429);
        assert_eq!(
            headers.get("retry-after").and_then(|v| v.to_str().ok()),
            Some("3")
        );
        assert_eq!(body["status"], 429);
    }
    assert_eq!(s.send("", sms(CUSTOMER, "Hi")).await.0, 201);
    s.standin.faults().api_down.store(true, Ordering::SeqCst);
    assert_eq!(s.send("", sms(CUSTOMER, "Hi")).await.0, 503);
    assert_eq!(s.standin.faults().describe(), "API down (503)");
}

#[tokio::test]
async fn errors_are_bulksms_problem_json() {
    let s = setup().await;
    let response = s
        .http
        .post(format!("{}/v1/messages", s.standin.base_url()))
        .basic_auth(TOKEN_ID, Some("wrong"))
        .json(&sms(CUSTOMER, "Hi"))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(
        body["type"],
        "https://developer.bulksms.com/json/v1/errors#authentication-failed"
    );
    assert_eq!(body["title"], "Authentication Failed");

    let (status, _, body) = s.send("", sms("+27001", "Hi")).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["type"],
        "https://developer.bulksms.com/json/v1/errors#bad-request"
    );
    assert_eq!(s.send("", sms("27820000004", "Hi")).await.0, 400);
    assert_eq!(s.send("", sms("27820000003", "Hi")).await.0, 500);

    s.standin.set_credits(0.5);
    let (status, _, body) = s.send("", sms(CUSTOMER, "Hi")).await;
    assert_eq!(status, 403);
    assert_eq!(
        body["type"],
        "https://developer.bulksms.com/json/v1/errors#insufficient-credits"
    );
    assert_eq!(body["title"], "Insufficient Credits");

    let (status, body) = s.get("/v1/messages/123").await;
    assert_eq!((status, body["title"].clone()), (404, json!("Not Found")));
}

#[tokio::test]
async fn a_4xx_answer_discards_a_report_and_a_5xx_is_retried() {
    let s = setup_with(false).await;
    s.receiver.fail_status.store(410, Ordering::SeqCst);
    s.receiver.fail_next.store(1, Ordering::SeqCst);
    s.send("", sms(CUSTOMER, "One")).await;
    assert!(s.standin.wait_idle(IDLE).await);
    let log = s.standin.deliveries();
    // SENT discarded on the 410, DELIVERED accepted: two attempts, no retry.
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[0].discarded && !log[0].gave_up);

    s.receiver.fail_status.store(503, Ordering::SeqCst);
    s.receiver.fail_next.store(1, Ordering::SeqCst);
    s.send("", sms(CUSTOMER, "Two")).await;
    assert!(s.standin.wait_idle(IDLE).await);
    let log = s.standin.deliveries();
    assert_eq!(log.len(), 5, "{log:?}");
    assert_eq!(log[2].status, Some(503));
    // The retry may come before or after the next report: BulkSMS promises no order.
    assert!(
        log[3..]
            .iter()
            .any(|d| d.key == log[2].key && d.attempt == 2 && d.succeeded()),
        "{log:?}"
    );
}

#[tokio::test]
async fn lost_and_duplicated_reports_are_switchable() {
    let s = setup().await;
    let webhooks = &s.standin.faults().webhooks;
    webhooks.duplicate.store(1, Ordering::SeqCst);
    s.send("", sms(CUSTOMER, "Hi")).await;
    assert!(s.standin.wait_idle(IDLE).await);
    assert_eq!(s.reports("/webhooks/sms/status").len(), 4);
    webhooks.reset();
    webhooks.drop_next.store(2, Ordering::SeqCst);
    s.send("", sms(CUSTOMER, "Hi again")).await;
    assert!(s.standin.wait_idle(IDLE).await);
    assert_eq!(
        s.reports("/webhooks/sms/status").len(),
        4,
        "both reports lost"
    );
    // The portal's poll still sees the truth.
    let (_, list) = s
        .get("/v1/messages?filter=type%3DSENT%26status.type%3DDELIVERED&sortOrder=ASCENDING")
        .await;
    assert_eq!(list.as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn arrays_of_submissions_and_recipients_answer_one_object_each() {
    let s = setup().await;
    let (status, _, body) = s
        .send(
            "?auto-unicode=true",
            json!([
                { "to": [CUSTOMER, "27831234567"], "body": "Dankie, Zoë! Sien jou môre." },
                { "to": { "type": "INTERNATIONAL", "address": "+27841234567" }, "body": "a".repeat(200) },
            ]),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let list = body.as_array().expect("array");
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["encoding"], "UNICODE");
    assert_eq!(list[2]["to"], "27841234567");
    assert!(s.standin.wait_idle(IDLE).await);
    let (_, third) = s
        .get(&format!(
            "/v1/messages/{}",
            list[2]["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(third["numberOfParts"], 2);
    assert_eq!(s.standin.credits(), 96.0);
    // MANY: the three DELIVERED reports came in one call.
    assert!(s.receiver.hits().iter().any(|h| {
        parse_bulksms_webhook(&h.body)
            .expect("parses")
            .messages
            .len()
            == 3
    }));
}

#[tokio::test]
async fn the_profile_reports_the_balance() {
    let s = setup().await;
    let (status, body) = s.get("/v1/profile").await;
    assert_eq!(status, 200);
    assert_eq!(body["credits"]["balance"], 100.0);
    assert!(body["quota"]["remaining"].is_number());
    assert!(body["id"].is_string() && body["username"].is_string());
}

#[tokio::test]
async fn messages_blocked_numbers_and_deduplication_ids_survive_a_restart() {
    let path = std::env::temp_dir().join(format!(
        "stoep-bulksms-standin-{}-{}.json",
        std::process::id(),
        rand_suffix()
    ));
    let config = || BulkSmsStandinConfig {
        state_file: Some(path.clone()),
        sent_after: Duration::from_millis(5),
        delivered_after: Duration::from_millis(10),
        ..Default::default()
    };
    let first = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let standin = BulkSmsStandin::start(listener, config(), first.clone())
        .await
        .expect("starts");
    let http = reqwest::Client::new();
    let send = |base: String| {
        let http = http.clone();
        async move {
            http.post(format!("{base}/v1/messages?deduplication-id=7"))
                .basic_auth(TOKEN_ID, Some(TOKEN_SECRET))
                .json(&sms(CUSTOMER, "Hi"))
                .send()
                .await
                .expect("answers")
                .json::<Value>()
                .await
                .expect("JSON")
        }
    };
    let before = send(standin.base_url()).await;
    standin.reply(CUSTOMER, "STOP").expect("reply");
    assert!(standin.wait_idle(IDLE).await);
    first.cancel();

    let second = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let again = BulkSmsStandin::start(listener, config(), second.clone())
        .await
        .expect("restarts");
    assert_eq!(again.api_messages().len(), 2);
    assert_eq!(again.blocked_numbers(), [CUSTOMER]);
    assert_eq!(again.credits(), 99.0);
    assert_eq!(
        send(again.base_url()).await,
        before,
        "the dedup id is remembered"
    );
    second.cancel();
    let _ = std::fs::remove_file(&path);
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}
