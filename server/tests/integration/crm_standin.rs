//! Tests of the local CRM (HubSpot) stand-in through plain reqwest, as the portal's connector
//! talks to it, and a webhook receiver on 127.0.0.1 that records what arrives and can fail on
//! demand. Each test starts its own stand-in.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use standins::controls::CrmFaults;
use standins::hubspot::{CrmStandin, CrmStandinConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "pat-na1-integration-token";
const SECRET: &str = "integration-client-secret";
const IDLE: Duration = Duration::from_secs(5);

// --- The webhook receiver ------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Hit {
    body: String,
    timestamp: String,
    signature: String,
    version: String,
    content_type: String,
    status: u16,
}

#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Answer 500 to this many requests, then 200.
    fail_next: Arc<AtomicU32>,
}

impl Receiver {
    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("lock").clone()
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let fail = r
        .fail_next
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
        timestamp: header("x-hubspot-request-timestamp"),
        signature: header("x-hubspot-signature-v3"),
        version: header("x-hubspot-signature-version"),
        content_type: header("content-type"),
        status: status.as_u16(),
    });
    status
}

async fn start_receiver(shutdown: &CancellationToken) -> (Receiver, String) {
    let receiver = Receiver::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!(
        "http://{}/webhooks/crm",
        listener.local_addr().expect("addr")
    );
    let app = axum::Router::new()
        .route("/webhooks/crm", axum::routing::post(receive))
        .with_state(receiver.clone());
    let stop = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    (receiver, url)
}

/// Standard base64 with padding, written independently of the stand-in's.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    let mut bits = 0u32;
    let mut n = 0;
    for &b in bytes {
        bits = (bits << 8) | u32::from(b);
        n += 8;
        while n >= 6 {
            n -= 6;
            out.push(A[((bits >> n) & 63) as usize] as char);
        }
    }
    if n > 0 {
        out.push(A[((bits << (6 - n)) & 63) as usize] as char);
    }
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    out
}

/// Verifies a v3 signature the way the portal must: HMAC-SHA256 keyed with the client secret
/// over `POST` + the full URL + the body + the timestamp header, base64, and a fresh timestamp.
fn signature_is_valid(hit: &Hit, url: &str) -> bool {
    let Ok(timestamp) = hit.timestamp.parse::<i64>() else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(format!("POST{url}{}{}", hit.body, hit.timestamp).as_bytes());
    let expected = base64(&mac.finalize().into_bytes());
    (now_ms() - timestamp).abs() < 5 * 60 * 1000 && hit.signature == expected
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

// --- The stand-in and the client -------------------------------------------------------------------

struct Env {
    standin: CrmStandin,
    http: reqwest::Client,
    receiver: Receiver,
    webhook_url: String,
    faults: Arc<CrmFaults>,
    shutdown: CancellationToken,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn env() -> Env {
    env_with(|_| {}).await
}

async fn env_with(tweak: impl FnOnce(&mut CrmStandinConfig)) -> Env {
    let shutdown = CancellationToken::new();
    let (receiver, webhook_url) = start_receiver(&shutdown).await;
    let faults = Arc::new(CrmFaults::default());
    let mut cfg = CrmStandinConfig {
        token: TOKEN.into(),
        client_secret: SECRET.into(),
        webhook_url: Some(webhook_url.clone()),
        faults: faults.clone(),
        state_file: None,
        rate_limit_per_10s: 100,
        webhook_retry_schedule: vec![Duration::from_millis(100); 3],
    };
    tweak(&mut cfg);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let standin = CrmStandin::start(listener, cfg, shutdown.clone())
        .await
        .expect("start the stand-in");
    Env {
        standin,
        http: reqwest::Client::new(),
        receiver,
        webhook_url,
        faults,
        shutdown,
    }
}

impl Env {
    /// An authenticated JSON call; returns the status, the headers and the body (JSON or null).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        self.call_as(TOKEN, method, path, body).await
    }

    async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.standin.base_url()))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the stand-in answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("JSON body ({e}): {text}"))
        };
        (status, headers, json)
    }

    async fn upsert(&self, inputs: Value) -> (u16, Value) {
        let (status, _, body) = self
            .call(
                Method::POST,
                "/crm/v3/objects/contacts/batch/upsert",
                Some(json!({ "inputs": inputs })),
            )
            .await;
        (status, body)
    }

    /// Upserts one customer by `stoep_customer_id`; returns the HubSpot id.
    async fn upsert_customer(&self, customer_id: &str, email: &str) -> String {
        let (status, body) = self
            .upsert(json!([{
                "idProperty": "stoep_customer_id",
                "id": customer_id,
                "properties": { "email": email, "firstname": "Thandi", "lastname": "Mokoena" },
            }]))
            .await;
        assert_eq!(status, 200, "{body}");
        body["results"][0]["id"].as_str().expect("an id").to_owned()
    }
}

fn is_rfc3339_ms(s: &Value) -> bool {
    let s = s.as_str().unwrap_or_default();
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T' && s.as_bytes()[19] == b'.'
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

// --- Contacts ------------------------------------------------------------------------------------------

#[tokio::test]
async fn upsert_creates_a_contact_then_updates_it_by_the_same_id_property() {
    // Arrange
    let env = env().await;

    // Act
    let (created_status, created) = env
        .upsert(json!([{
            "idProperty": "stoep_customer_id",
            "id": "42",
            "properties": { "email": "Thandi@Example.com", "firstname": "Thandi", "phone": "+27 21 555 0100" },
        }]))
        .await;
    let (updated_status, updated) = env
        .upsert(json!([{
            "idProperty": "stoep_customer_id",
            "id": "42",
            "properties": { "email": "thandi.m@example.com", "company": "Stoep Hair", "phone": "" },
        }]))
        .await;

    // Assert
    assert_eq!(created_status, 200, "{created}");
    assert_eq!(created["status"], "COMPLETE");
    assert!(is_rfc3339_ms(&created["startedAt"]) && is_rfc3339_ms(&created["completedAt"]));
    let first = &created["results"][0];
    assert_eq!(first["id"], "101");
    assert_eq!(first["new"], true);
    assert_eq!(first["archived"], false);
    assert!(is_rfc3339_ms(&first["createdAt"]) && is_rfc3339_ms(&first["updatedAt"]));
    assert_eq!(first["properties"]["email"], "thandi@example.com");
    assert_eq!(first["properties"]["stoep_customer_id"], "42");
    assert_eq!(first["properties"]["hs_object_id"], "101");

    assert_eq!(updated_status, 200, "{updated}");
    let second = &updated["results"][0];
    assert_eq!(second["id"], "101");
    assert_eq!(second["new"], false);
    assert_eq!(second["properties"]["email"], "thandi.m@example.com");
    assert_eq!(second["properties"]["firstname"], "Thandi");
    assert_eq!(second["properties"]["company"], "Stoep Hair");
    assert!(second["properties"].get("phone").is_none(), "{second}");

    let contacts = env.standin.contacts();
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].properties["email"], "thandi.m@example.com");
    let by_customer = env
        .standin
        .contact_by("stoep_customer_id", "42")
        .expect("found");
    assert_eq!(by_customer.id, "101");
    assert!(
        env.standin
            .contact_by("email", "THANDI.M@example.com")
            .is_some()
    );
    assert!(
        env.standin
            .contact_by("email", "thandi@example.com")
            .is_none()
    );
}

#[tokio::test]
async fn upsert_answers_every_input_and_logs_the_batch_size() {
    // Arrange
    let env = env().await;
    let inputs: Vec<Value> = (1..=100)
        .map(|i| {
            json!({ "idProperty": "stoep_customer_id", "id": i.to_string(),
                          "properties": { "email": format!("c{i}@example.com") } })
        })
        .collect();

    // Act
    let (status, body) = env.upsert(Value::Array(inputs)).await;

    // Assert
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(100));
    assert_eq!(env.standin.contacts().len(), 100);
    let ids: Vec<String> = env.standin.contacts().into_iter().map(|c| c.id).collect();
    assert_eq!(ids.first().map(String::as_str), Some("101"));
    assert_eq!(ids.last().map(String::as_str), Some("200"));
    assert_eq!(
        body["results"][99]["properties"]["stoep_customer_id"],
        "100"
    );
    let log = env.standin.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].method, "POST");
    assert_eq!(log[0].path, "/crm/v3/objects/contacts/batch/upsert");
    assert_eq!(log[0].status, 200);
    assert_eq!(log[0].inputs, Some(100));
}

#[tokio::test]
async fn upsert_refuses_more_than_100_inputs() {
    // Arrange
    let env = env().await;
    let inputs: Vec<Value> = (1..=101)
        .map(
            |i| json!({ "idProperty": "stoep_customer_id", "id": i.to_string(), "properties": {} }),
        )
        .collect();

    // Act
    let (status, body) = env.upsert(Value::Array(inputs)).await;

    // Assert
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["status"], "error");
    assert_eq!(body["category"], "VALIDATION_ERROR");
    assert!(env.standin.contacts().is_empty());
    assert_eq!(env.standin.requests()[0].inputs, Some(101));
}

#[tokio::test]
async fn an_invalid_value_fails_the_whole_batch_and_names_the_input() {
    // Arrange
    let env = env().await;

    // Act
    let (status, body) = env
        .upsert(json!([
            { "idProperty": "stoep_customer_id", "id": "1", "properties": { "email": "ok@example.com" } },
            { "idProperty": "stoep_customer_id", "id": "42", "properties": { "email": "x@y.invalid" } },
            { "idProperty": "stoep_customer_id", "id": "43", "properties": { "phone": "call me" } },
        ]))
        .await;

    // Assert
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["status"], "error");
    assert_eq!(body["category"], "VALIDATION_ERROR");
    assert!(
        body["correlationId"]
            .as_str()
            .is_some_and(|c| c.len() == 36)
    );
    assert_eq!(body["context"]["ids"], json!(["42", "43"]));
    let message = body["message"].as_str().expect("message");
    let list = message
        .strip_prefix("Property values were not valid: ")
        .expect("HubSpot's prefix");
    let items: Value = serde_json::from_str(list).expect("a JSON list in the message");
    assert_eq!(items[0]["isValid"], false);
    assert_eq!(items[0]["error"], "INVALID_EMAIL");
    assert_eq!(items[0]["name"], "email");
    assert_eq!(items[0]["message"], "Email address x@y.invalid is invalid");
    assert_eq!(items[1]["name"], "phone");
    assert_eq!(body["errors"][0]["in"], "email");
    assert_eq!(body["errors"][0]["context"]["id"], json!(["42"]));
    assert_eq!(body["errors"][1]["context"]["id"], json!(["43"]));
    assert!(
        env.standin.contacts().is_empty(),
        "nothing of the batch is stored"
    );
}

#[tokio::test]
async fn upsert_refuses_duplicate_ids_in_one_batch() {
    // Arrange
    let env = env().await;

    // Act
    let (status, body) = env
        .upsert(json!([
            { "idProperty": "stoep_customer_id", "id": "42", "properties": { "firstname": "A" } },
            { "idProperty": "stoep_customer_id", "id": "42", "properties": { "firstname": "B" } },
        ]))
        .await;

    // Assert
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["category"], "VALIDATION_ERROR");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Duplicate IDs found in batch input")),
        "{body}"
    );
    assert!(env.standin.contacts().is_empty());
}

#[tokio::test]
async fn an_email_taken_by_another_contact_is_a_conflict_and_rolls_the_batch_back() {
    // Arrange
    let env = env().await;
    let existing = env
        .standin
        .create_in_crm(&[("email", "shared@example.com"), ("firstname", "Sipho")])
        .await
        .expect("created in the CRM");

    // Act
    let (status, body) = env
        .upsert(json!([
            { "idProperty": "stoep_customer_id", "id": "7", "properties": { "email": "new@example.com" } },
            { "idProperty": "stoep_customer_id", "id": "8", "properties": { "email": "Shared@example.com" } },
        ]))
        .await;

    // Assert
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["category"], "CONFLICT");
    assert_eq!(
        body["message"],
        format!("Contact already exists. Existing ID: {}", existing.id)
    );
    assert_eq!(body["context"]["ids"], json!(["8"]));
    assert_eq!(env.standin.contacts(), vec![existing]);
}

#[tokio::test]
async fn read_one_returns_the_asked_properties_or_404() {
    // Arrange
    let env = env().await;
    let id = env.upsert_customer("42", "thandi@example.com").await;

    // Act
    let (by_custom, _, custom) = env
        .call(
            Method::GET,
            "/crm/v3/objects/contacts/42?idProperty=stoep_customer_id&properties=email,lifecyclestage",
            None,
        )
        .await;
    let (by_id, _, plain) = env
        .call(Method::GET, &format!("/crm/v3/objects/contacts/{id}"), None)
        .await;
    let (by_email, _, _) = env
        .call(
            Method::GET,
            "/crm/v3/objects/contacts/THANDI%40example.com?idProperty=email",
            None,
        )
        .await;
    let (missing, _, not_found) = env
        .call(
            Method::GET,
            "/crm/v3/objects/contacts/999?idProperty=stoep_customer_id",
            None,
        )
        .await;

    // Assert
    assert_eq!(by_custom, 200, "{custom}");
    assert_eq!(custom["id"], id);
    assert_eq!(
        custom["properties"],
        json!({ "email": "thandi@example.com", "lifecyclestage": null, "hs_object_id": id })
    );
    assert_eq!(custom["archived"], false);
    assert!(is_rfc3339_ms(&custom["createdAt"]));
    assert_eq!(by_id, 200);
    assert_eq!(plain["properties"]["firstname"], "Thandi");
    assert!(plain["properties"].get("stoep_customer_id").is_none());
    assert_eq!(by_email, 200);
    assert_eq!(missing, 404);
    assert_eq!(not_found["status"], "error");
    assert_eq!(not_found["message"], "resource not found");
    assert_eq!(not_found["category"], "OBJECT_NOT_FOUND");
    assert!(not_found["correlationId"].is_string());
}

#[tokio::test]
async fn batch_read_lists_missing_ids_under_errors_with_207() {
    // Arrange
    let env = env().await;
    env.upsert_customer("42", "a@example.com").await;
    env.standin
        .change_in_crm("101", "lifecyclestage", "customer")
        .await
        .expect("changed");

    // Act
    let read = |ids: Value| {
        env.call(
            Method::POST,
            "/crm/v3/objects/contacts/batch/read",
            Some(json!({
                "idProperty": "stoep_customer_id",
                "inputs": ids,
                "properties": ["lifecyclestage", "hubspot_owner_id"],
            })),
        )
    };
    let (all_found, _, found) = read(json!([{ "id": "42" }])).await;
    let (some_missing, _, partial) = read(json!([{ "id": "42" }, { "id": "77" }])).await;

    // Assert
    assert_eq!(all_found, 200, "{found}");
    assert_eq!(found["status"], "COMPLETE");
    assert_eq!(
        found["results"][0]["properties"],
        json!({ "lifecyclestage": "customer", "hubspot_owner_id": null, "hs_object_id": "101" })
    );
    assert!(found.get("errors").is_none());
    assert_eq!(some_missing, 207, "{partial}");
    assert_eq!(partial["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(partial["numErrors"], 1);
    assert_eq!(partial["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(partial["errors"][0]["context"]["ids"], json!(["77"]));
    assert_eq!(env.standin.requests()[1].inputs, Some(1));
}

#[tokio::test]
async fn delete_archives_a_contact_and_gdpr_delete_removes_it() {
    // Arrange
    let env = env().await;
    let archived = env.upsert_customer("1", "one@example.com").await;
    let erased = env.upsert_customer("2", "two@example.com").await;

    // Act
    let (deleted, _, _) = env
        .call(
            Method::DELETE,
            &format!("/crm/v3/objects/contacts/{archived}"),
            None,
        )
        .await;
    let (read_archived, _, _) = env
        .call(
            Method::GET,
            &format!("/crm/v3/objects/contacts/{archived}"),
            None,
        )
        .await;
    let (gdpr, _, _) = env
        .call(
            Method::POST,
            "/crm/v3/objects/contacts/gdpr-delete",
            Some(json!({ "objectId": "2", "idProperty": "stoep_customer_id" })),
        )
        .await;
    let (gdpr_again, _, _) = env
        .call(
            Method::POST,
            "/crm/v3/objects/contacts/gdpr-delete",
            Some(json!({ "objectId": "2", "idProperty": "stoep_customer_id" })),
        )
        .await;
    // Upserting the archived customer again creates a new contact, as in HubSpot.
    let recreated = env.upsert_customer("1", "one@example.com").await;

    // Assert
    assert_eq!(deleted, 204);
    assert_eq!(read_archived, 404);
    assert!(env.standin.contact(&archived).is_some_and(|c| c.archived));
    assert_eq!(gdpr, 204);
    assert_eq!(gdpr_again, 404);
    assert!(env.standin.contact(&erased).is_none());
    assert_ne!(recreated, archived);
    let live: Vec<String> = env.standin.contacts().into_iter().map(|c| c.id).collect();
    assert_eq!(live, vec![recreated]);
}

#[tokio::test]
async fn property_definitions_answer_the_connection_test() {
    // Arrange
    let env = env().await;

    // Act
    let (found, _, custom) = env
        .call(
            Method::GET,
            "/crm/v3/properties/contacts/stoep_customer_id",
            None,
        )
        .await;
    let (_, _, email) = env
        .call(Method::GET, "/crm/v3/properties/contacts/email", None)
        .await;
    let (missing, _, error) = env
        .call(
            Method::GET,
            "/crm/v3/properties/contacts/no_such_thing",
            None,
        )
        .await;

    // Assert
    assert_eq!(found, 200, "{custom}");
    assert_eq!(custom["name"], "stoep_customer_id");
    assert_eq!(custom["type"], "string");
    assert_eq!(custom["fieldType"], "text");
    assert_eq!(custom["groupName"], "contactinformation");
    assert_eq!(custom["hasUniqueValue"], true);
    assert_eq!(email["label"], "Email");
    assert_eq!(missing, 404);
    assert_eq!(error["category"], "OBJECT_NOT_FOUND");
}

// --- Authentication and bad input -----------------------------------------------------------------------

#[tokio::test]
async fn a_wrong_or_missing_token_gets_401_in_hubspots_shape() {
    // Arrange
    let env = env().await;
    let url = format!(
        "{}/crm/v3/properties/contacts/email",
        env.standin.base_url()
    );

    // Act
    let (wrong, _, body) = env
        .call_as(
            "pat-na1-wrong",
            Method::GET,
            "/crm/v3/properties/contacts/email",
            None,
        )
        .await;
    let missing = env.http.get(&url).send().await.expect("answers");

    // Assert
    assert_eq!(wrong, 401);
    assert_eq!(body["status"], "error");
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Authentication credentials not found"))
    );
    assert_eq!(missing.status().as_u16(), 401);
}

#[tokio::test]
async fn a_body_that_is_not_json_gets_400() {
    // Arrange
    let env = env().await;

    // Act
    let response = env
        .http
        .post(format!(
            "{}/crm/v3/objects/contacts/batch/upsert",
            env.standin.base_url()
        ))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("answers");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("JSON");

    // Assert
    assert_eq!(status, 400);
    assert_eq!(body["category"], "VALIDATION_ERROR");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Invalid input JSON"))
    );
}

// --- Faults and rate limits -------------------------------------------------------------------------------

#[tokio::test]
async fn down_answers_503_until_it_is_switched_off() {
    // Arrange
    let env = env().await;
    env.faults.down.store(true, Ordering::SeqCst);

    // Act
    let (down, _, body) = env
        .call(Method::GET, "/crm/v3/properties/contacts/email", None)
        .await;
    let (down_without_token, _, _) = env
        .call_as(
            "wrong",
            Method::GET,
            "/crm/v3/properties/contacts/email",
            None,
        )
        .await;
    env.faults.down.store(false, Ordering::SeqCst);
    let (up, _, _) = env
        .call(Method::GET, "/crm/v3/properties/contacts/email", None)
        .await;

    // Assert
    assert_eq!(down, 503);
    assert_eq!(body["status"], "error");
    assert_eq!(body["message"], "Service unavailable");
    assert_eq!(down_without_token, 503, "faults come before authentication");
    assert_eq!(up, 200);
}

#[tokio::test]
async fn rate_limit_next_answers_429_with_retry_after_then_recovers() {
    // Arrange
    let env = env().await;
    env.faults.rate_limit_next.store(2, Ordering::SeqCst);
    env.faults.retry_after_secs.store(7, Ordering::SeqCst);

    // Act
    let mut statuses = Vec::new();
    let mut first = None;
    for _ in 0..3 {
        let (status, headers, body) = env
            .call(Method::GET, "/crm/v3/properties/contacts/email", None)
            .await;
        statuses.push(status);
        first.get_or_insert((header(&headers, "retry-after").to_owned(), body));
    }

    // Assert
    assert_eq!(statuses, [429, 429, 200]);
    let (retry_after, body) = first.expect("a first answer");
    assert_eq!(retry_after, "7");
    assert_eq!(body["errorType"], "RATE_LIMIT");
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(
        body["message"],
        "You have reached your ten_secondly_rolling limit."
    );
    assert!(body["correlationId"].is_string());
}

#[tokio::test]
async fn fail_next_answers_500_then_recovers() {
    // Arrange
    let env = env().await;
    env.faults.fail_next.store(1, Ordering::SeqCst);

    // Act
    let inputs = json!([{ "idProperty": "stoep_customer_id", "id": "1", "properties": {} }]);
    let (failed, body) = env.upsert(inputs.clone()).await;
    let (ok, _) = env.upsert(inputs).await;

    // Assert
    assert_eq!(failed, 500);
    assert_eq!(body["category"], "INTERNAL_ERROR");
    assert_eq!(body["message"], "internal error");
    assert_eq!(ok, 200);
    assert_eq!(
        env.standin.contacts().len(),
        1,
        "the failed call stored nothing"
    );
}

#[tokio::test]
async fn slow_next_holds_the_answer_but_makes_the_change() {
    // Arrange
    let env = env().await;
    env.faults.slow_ms.store(600, Ordering::SeqCst);
    env.faults.slow_next.store(1, Ordering::SeqCst);
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(150))
        .build()
        .expect("client");
    let url = format!(
        "{}/crm/v3/objects/contacts/batch/upsert",
        env.standin.base_url()
    );
    let body = json!({ "inputs": [{ "idProperty": "stoep_customer_id", "id": "5", "properties": { "firstname": "Lerato" } }] });

    // Act
    let timed_out = impatient
        .post(&url)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await;
    let started = Instant::now();
    let (retried, _) = env.upsert(body["inputs"].clone()).await;
    let retry_took = started.elapsed();

    // Assert
    assert!(timed_out.is_err_and(|e| e.is_timeout()));
    assert_eq!(retried, 200);
    assert!(retry_took < Duration::from_millis(400), "{retry_took:?}");
    let contacts = env.standin.contacts();
    assert_eq!(contacts.len(), 1, "the slow call's change was made once");
    let log = env.standin.requests();
    assert_eq!(log[0].delayed_ms, 600);
    assert_eq!(log[0].status, 200);
    assert_eq!(log[1].delayed_ms, 0);
}

#[tokio::test]
async fn the_rolling_limit_answers_429_past_100_requests_in_10_seconds() {
    // Arrange
    let env = env().await;

    // Act
    let calls = (0..120).map(|_| env.call(Method::GET, "/crm/v3/properties/contacts/email", None));
    let answers = futures_util::future::join_all(calls).await;

    // Assert
    let limited: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 429).collect();
    assert_eq!(limited.len(), 20);
    assert_eq!(answers.iter().filter(|(s, _, _)| *s == 200).count(), 100);
    let (_, headers, body) = limited[0];
    assert_eq!(header(headers, "retry-after"), "1");
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(env.standin.max_requests_in_any_10s(), 100);
    assert_eq!(env.standin.requests().len(), 120);
}

// --- Webhooks ----------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_change_in_the_crm_sends_a_signed_webhook() {
    // Arrange
    let env = env().await;
    let id = env.upsert_customer("42", "a@example.com").await;

    // Act
    env.standin
        .change_in_crm(&id, "lifecyclestage", "customer")
        .await
        .expect("changed");
    assert!(env.standin.wait_idle(IDLE).await);

    // Assert
    let hits = env.receiver.hits();
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert!(signature_is_valid(hit, &env.webhook_url), "{hit:?}");
    assert_eq!(hit.version, "v3");
    assert!(hit.content_type.starts_with("application/json"));
    let events: Value = serde_json::from_str(&hit.body).expect("JSON");
    let event = &events[0];
    assert_eq!(events.as_array().map(Vec::len), Some(1));
    assert!(event["eventId"].is_u64());
    assert_eq!(event["subscriptionType"], "contact.propertyChange");
    assert_eq!(
        event["objectId"],
        json!(id.parse::<u64>().expect("numeric"))
    );
    assert_eq!(event["propertyName"], "lifecyclestage");
    assert_eq!(event["propertyValue"], "customer");
    assert_eq!(event["changeSource"], "CRM_UI");
    assert_eq!(event["portalId"], 12345);
    assert_eq!(event["attemptNumber"], 0);
    assert!((now_ms() - event["occurredAt"].as_i64().expect("ms")).abs() < 60_000);
    assert_eq!(
        env.standin.contact(&id).expect("contact").properties["lifecyclestage"],
        "customer"
    );
    let deliveries = env.standin.webhook_deliveries();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status, Some(200));

    // A tampered body does not verify.
    let mut forged = hit.clone();
    forged.body = forged.body.replace("customer", "evangelist");
    assert!(!signature_is_valid(&forged, &env.webhook_url));
}

#[tokio::test]
async fn a_receiver_that_fails_first_gets_a_retry() {
    // Arrange
    let env = env().await;
    let id = env.upsert_customer("42", "a@example.com").await;
    env.receiver.fail_next.store(1, Ordering::SeqCst);

    // Act
    env.standin
        .change_many_in_crm(
            &id,
            &[("hubspot_owner_id", "7"), ("email", "B@example.com")],
        )
        .await
        .expect("changed");
    assert!(env.standin.wait_idle(IDLE).await);

    // Assert
    let hits = env.receiver.hits();
    assert_eq!(
        hits.iter().map(|h| h.status).collect::<Vec<_>>(),
        [500, 200]
    );
    let first: Value = serde_json::from_str(&hits[0].body).expect("JSON");
    let retry: Value = serde_json::from_str(&hits[1].body).expect("JSON");
    assert_eq!(retry.as_array().map(Vec::len), Some(2));
    assert_eq!(
        first[0]["eventId"], retry[0]["eventId"],
        "same event, retried"
    );
    assert_eq!(retry[0]["attemptNumber"], 1);
    assert_eq!(retry[1]["propertyValue"], "b@example.com");
    assert!(signature_is_valid(&hits[1], &env.webhook_url));
    let attempts: Vec<(u32, Option<u16>)> = env
        .standin
        .webhook_deliveries()
        .iter()
        .map(|d| (d.attempt, d.status))
        .collect();
    assert_eq!(attempts, [(1, Some(500)), (2, Some(200))]);
    assert!(env.standin.contact_by("email", "b@example.com").is_some());
}

#[tokio::test]
async fn a_change_to_an_unknown_contact_or_a_taken_email_fails() {
    // Arrange
    let env = env().await;
    env.upsert_customer("1", "one@example.com").await;
    env.upsert_customer("2", "two@example.com").await;

    // Act
    let unknown = env
        .standin
        .change_in_crm("999", "lifecyclestage", "lead")
        .await;
    let taken = env
        .standin
        .change_in_crm("102", "email", "one@example.com")
        .await;

    // Assert
    assert!(unknown.is_err());
    assert!(taken.is_err());
    assert!(env.standin.wait_idle(IDLE).await);
    assert!(env.receiver.hits().is_empty());
    assert_eq!(
        env.standin.contact("102").expect("kept").properties["email"],
        "two@example.com"
    );
}

// --- Admin page and persistence -----------------------------------------------------------------------

#[tokio::test]
async fn the_admin_page_and_json_show_contacts_requests_and_deliveries() {
    // Arrange
    let env = env().await;
    let id = env.upsert_customer("42", "admin-view@example.com").await;
    env.standin
        .change_in_crm(&id, "lifecyclestage", "customer")
        .await
        .expect("changed");
    assert!(env.standin.wait_idle(IDLE).await);

    // Act
    let html = env
        .http
        .get(format!("{}/_standin", env.standin.base_url()))
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("text");
    let data: Value = env
        .http
        .get(format!("{}/_standin/contacts.json", env.standin.base_url()))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");

    // Assert
    assert!(html.contains("admin-view@example.com"));
    assert!(html.contains("/crm/v3/objects/contacts/batch/upsert"));
    assert!(html.contains("HTTP 200"));
    assert_eq!(
        data["contacts"][0]["properties"]["lifecyclestage"],
        "customer"
    );
    assert_eq!(data["requests"][0]["status"], 200);
    assert_eq!(data["webhook_deliveries"][0]["status"], 200);
}

#[tokio::test]
async fn contacts_survive_a_restart_with_a_state_file() {
    // Arrange
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("crm.json");
    let first = env_with(|c| c.state_file = Some(path.clone())).await;
    first.upsert_customer("42", "kept@example.com").await;
    drop(first);

    // Act
    let second = env_with(|c| c.state_file = Some(path.clone())).await;
    let next = second.upsert_customer("43", "next@example.com").await;

    // Assert
    let kept = second
        .standin
        .contact_by("stoep_customer_id", "42")
        .expect("loaded");
    assert_eq!(kept.properties["email"], "kept@example.com");
    assert_eq!(next, "102", "ids continue");
}
