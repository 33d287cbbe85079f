//! Tests of the Microsoft Graph stand-in over real HTTP on 127.0.0.1: the identity platform's
//! code flow with PKCE and rotating refresh tokens, calendarView delta rounds with outside
//! events, 410 and recovery, idempotent creates by transactionId, Teams links, and
//! subscriptions with the validation handshake performed against a small axum receiver.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use standins::calendar_common::OutsideEvent;
use standins::microsoft_graph::{
    ACCOUNT, CLIENT_ID, CLIENT_SECRET, GraphConfig, GraphStandin, TENANT_ID,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const REDIRECT: &str = "http://127.0.0.1:9/oauth/microsoft/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const SCOPES: &str = "offline_access openid Calendars.ReadWrite User.Read";
/// 2026-03-10T09:00:00Z.
const T0: i64 = 1_773_133_200_000;
const HOUR: i64 = 3_600_000;
const WINDOW: &str = "startDateTime=2026-03-01T00:00:00Z&endDateTime=2026-04-01T00:00:00Z";

/// The portal's notification endpoint, as small as it can be: it answers Graph's validation
/// handshake by echoing the token as text/plain, and keeps every notification body.
#[derive(Clone, Default)]
struct Hooks {
    got: Arc<Mutex<Vec<Value>>>,
    validations: Arc<Mutex<Vec<String>>>,
    /// Answer validations with the wrong text.
    refuse: Arc<AtomicBool>,
}

async fn hook(
    State(h): State<Hooks>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    if let Some(token) = q.get("validationToken") {
        h.validations.lock().expect("lock").push(token.clone());
        let answer = if h.refuse.load(Ordering::SeqCst) {
            "nope".to_owned()
        } else {
            token.clone()
        };
        return (StatusCode::OK, [("content-type", "text/plain")], answer);
    }
    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
        h.got.lock().expect("lock").push(v);
    }
    (
        StatusCode::ACCEPTED,
        [("content-type", "text/plain")],
        String::new(),
    )
}

struct Setup {
    standin: GraphStandin,
    hooks: Hooks,
    hooks_url: String,
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
    let hooks = Hooks::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hooks_url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = Router::new()
        .route("/hooks/{kind}", post(hook))
        .with_state(hooks.clone());
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let standin = GraphStandin::start(
        listener,
        GraphConfig {
            retry_schedule: vec![Duration::from_millis(30); 3],
            ..Default::default()
        },
        shutdown.clone(),
    )
    .await
    .expect("starts");
    Setup {
        standin,
        hooks,
        hooks_url,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        shutdown,
    }
}

impl Setup {
    async fn code(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("client_id", CLIENT_ID)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("response_mode", "query")
            .append_pair("scope", SCOPES)
            .append_pair("state", "st-1")
            .append_pair("code_challenge", CHALLENGE)
            .append_pair("code_challenge_method", "S256")
            .append_pair("prompt", "select_account");
        let query = q.finish();
        let page = self
            .http
            .get(format!("{}?{query}", self.standin.authorize_url("common")))
            .send()
            .await
            .expect("answers");
        assert_eq!(page.status(), 200);
        let mut form = vec![
            ("query", query.as_str()),
            ("account", ACCOUNT),
            ("decision", "allow"),
        ];
        form.extend(SCOPES.split(' ').map(|s| ("scope", s)));
        let r = self
            .http
            .post(self.standin.authorize_url("common"))
            .form(&form)
            .send()
            .await
            .expect("answers");
        assert!(r.status().is_redirection());
        let location =
            url::Url::parse(r.headers()["location"].to_str().expect("ascii")).expect("url");
        assert!(location.as_str().starts_with(REDIRECT));
        let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
        assert_eq!(q["state"], "st-1");
        q["code"].clone()
    }

    async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .http
            .post(self.standin.token_url(TENANT_ID))
            .form(form)
            .send()
            .await
            .expect("answers");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn exchange(&self, code: &str, verifier: &str) -> (u16, Value) {
        self.token(&[
            ("client_id", CLIENT_ID),
            ("scope", SCOPES),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("grant_type", "authorization_code"),
            ("code_verifier", verifier),
            ("client_secret", CLIENT_SECRET),
        ])
        .await
    }

    async fn refresh(&self, rt: &str) -> (u16, Value) {
        self.token(&[
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("scope", SCOPES),
        ])
        .await
    }

    async fn connect(&self) -> (String, String) {
        let code = self.code().await;
        let (status, t) = self.exchange(&code, VERIFIER).await;
        assert_eq!(status, 200, "{t}");
        (
            t["access_token"].as_str().expect("at").to_owned(),
            t["refresh_token"].as_str().expect("rt").to_owned(),
        )
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        token: &str,
        prefer: &[&str],
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let url = if url.starts_with("http") {
            url.to_owned()
        } else {
            format!("{}{url}", self.standin.graph_base())
        };
        let mut r = self.http.request(method, url).bearer_auth(token);
        for p in prefer {
            r = r.header("Prefer", *p);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.expect("answers");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, headers, r.json().await.unwrap_or(Value::Null))
    }

    /// One delta round from `first` (a path or a stored deltaLink); returns rows and the new
    /// deltaLink.
    async fn round(&self, token: &str, first: &str) -> (Vec<Value>, String) {
        let mut rows = Vec::new();
        let mut next = first.to_owned();
        loop {
            let (status, headers, v) = self
                .call(
                    reqwest::Method::GET,
                    &next,
                    token,
                    &["odata.maxpagesize=2", "outlook.timezone=\"UTC\""],
                    None,
                )
                .await;
            assert_eq!(status, 200, "{v}");
            let applied = headers["preference-applied"].to_str().expect("ascii");
            assert!(
                applied.contains("odata.maxpagesize=2") && applied.contains("outlook.timezone"),
                "{applied}"
            );
            rows.extend(v["value"].as_array().cloned().unwrap_or_default());
            if let Some(n) = v["@odata.nextLink"].as_str() {
                next = n.to_owned();
                continue;
            }
            return (
                rows,
                v["@odata.deltaLink"]
                    .as_str()
                    .expect("a deltaLink at the end")
                    .to_owned(),
            );
        }
    }
}

#[tokio::test]
async fn the_code_flow_with_pkce_rotates_refresh_tokens_and_refuses_a_wrong_verifier() {
    let t = setup().await;
    let code = t.code().await;
    let (status, err) = t
        .exchange(
            &code,
            "the-wrong-verifier-but-long-enough-to-be-well-formed-1234",
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(err["error"], "invalid_grant");
    assert_eq!(err["error_codes"][0], 501_481);
    assert!(
        err["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("AADSTS501481"))
    );

    let code = t.code().await;
    let (status, tokens) = t.exchange(&code, VERIFIER).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "Calendars.ReadWrite User.Read");
    assert!(tokens["ext_expires_in"].as_u64().is_some() && tokens["id_token"].is_string());
    let first_rt = tokens["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned();

    let (status, fresh) = t.refresh(&first_rt).await;
    assert_eq!(status, 200, "{fresh}");
    let second_rt = fresh["refresh_token"]
        .as_str()
        .expect("a rotated refresh token")
        .to_owned();
    assert_ne!(second_rt, first_rt);
    // The old one is spent.
    let (status, err) = t.refresh(&first_rt).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _) = t.refresh(&second_rt).await;
    assert_eq!(status, 200);

    // No revocation endpoint: the user removes the app, and refreshes fail.
    let latest = {
        let (_, v) = t.refresh(&second_rt).await;
        assert_eq!(
            v["error"], "invalid_grant",
            "second_rt was rotated by the previous refresh"
        );
        let code = t.code().await;
        let (_, v) = t.exchange(&code, VERIFIER).await;
        v["refresh_token"].as_str().expect("rt").to_owned()
    };
    assert_eq!(t.standin.revoke_account(ACCOUNT), 2);
    let (status, err) = t.refresh(&latest).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(err["error_codes"][0], 50_173);

    let (status, err) = t
        .token(&[
            ("client_id", CLIENT_ID),
            ("client_secret", "wrong"),
            ("grant_type", "refresh_token"),
            ("refresh_token", &latest),
            ("scope", SCOPES),
        ])
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (401, Some("invalid_client"))
    );
}

#[tokio::test]
async fn an_outside_event_shows_in_the_next_delta_round_and_its_deletion_as_removed() {
    let t = setup().await;
    let (at, _) = t.connect().await;
    let (status, _, cals) = t
        .call(reqwest::Method::GET, "/me/calendars", &at, &[], None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(cals["value"].as_array().map(Vec::len), Some(2));
    assert_eq!(cals["value"][0]["isDefaultCalendar"], true);
    assert_eq!(
        cals["value"][0]["allowedOnlineMeetingProviders"][0],
        "teamsForBusiness"
    );
    let cal = t
        .standin
        .default_calendar(ACCOUNT)
        .expect("a default calendar");

    for i in 0..3 {
        t.standin
            .add_outside_event(
                &cal,
                &OutsideEvent::busy(
                    &format!("Before {i}"),
                    T0 + i * HOUR,
                    T0 + i * HOUR + HOUR / 2,
                ),
            )
            .expect("added");
    }
    let (rows, link) = t
        .round(
            &at,
            &format!("/me/calendars/{cal}/calendarView/delta?{WINDOW}"),
        )
        .await;
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[0]["start"],
        json!({"dateTime": "2026-03-10T09:00:00.0000000", "timeZone": "UTC"})
    );
    assert_eq!(rows[0]["type"], "singleInstance");
    assert_eq!(
        rows[0]["originalStartTimeZone"],
        "South Africa Standard Time"
    );

    let id = t
        .standin
        .add_outside_event(
            &cal,
            &OutsideEvent::busy("Dentist", T0 + 24 * HOUR, T0 + 25 * HOUR),
        )
        .expect("added");
    let (rows, link) = t.round(&at, &link).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["id"], id.as_str());
    assert_eq!(rows[0]["subject"], "Dentist");
    assert_eq!(rows[0]["showAs"], "busy");

    // Moved out of the window and deleted both come back as @removed.
    let (_, _, all) = t
        .call(
            reqwest::Method::GET,
            &format!("/me/calendars/{cal}/calendarView?{WINDOW}"),
            &at,
            &[],
            None,
        )
        .await;
    let first = all["value"][0]["id"].as_str().expect("id").to_owned();
    t.standin
        .move_event(&first, T0 + 90 * 24 * HOUR, T0 + 90 * 24 * HOUR + HOUR)
        .expect("moved");
    t.standin.delete_event(&id).expect("deleted");
    let (rows, _) = t.round(&at, &link).await;
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!(row["@removed"], json!({"reason": "deleted"}));
    }

    // The same event, read in another zone (a Windows name is fine).
    let (_, headers, v) = t
        .call(
            reqwest::Method::GET,
            &format!("/me/calendars/{cal}/calendarView?{WINDOW}"),
            &at,
            &["outlook.timezone=\"W. Europe Standard Time\""],
            None,
        )
        .await;
    assert!(
        headers["preference-applied"]
            .to_str()
            .expect("ascii")
            .contains("W. Europe")
    );
    assert_eq!(
        v["value"][0]["start"]["dateTime"],
        "2026-03-10T11:00:00.0000000"
    );
}

#[tokio::test]
async fn an_expired_delta_link_gives_410_and_a_fresh_round_recovers() {
    let t = setup().await;
    let (at, _) = t.connect().await;
    let cal = t.standin.default_calendar(ACCOUNT).expect("cal");
    t.standin
        .add_outside_event(&cal, &OutsideEvent::busy("Kept", T0, T0 + HOUR))
        .expect("added");
    let (_, link) = t
        .round(&at, &format!("/me/calendarView/delta?{WINDOW}"))
        .await;
    t.standin.faults().expire_sync_tokens();
    let (status, _, err) = t.call(reqwest::Method::GET, &link, &at, &[], None).await;
    assert_eq!(status, 410);
    assert_eq!(err["error"]["code"], "syncStateNotFound");
    let (rows, link) = t
        .round(&at, &format!("/me/calendarView/delta?{WINDOW}"))
        .await;
    assert_eq!(rows.len(), 1);
    let (status, _, _) = t.call(reqwest::Method::GET, &link, &at, &[], None).await;
    assert_eq!(status, 200);
    // A delta without a window is refused.
    let (status, _, _) = t
        .call(
            reqwest::Method::GET,
            "/me/calendarView/delta",
            &at,
            &[],
            None,
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn posting_twice_with_one_transaction_id_makes_one_event_with_a_teams_link() {
    let t = setup().await;
    let (at, _) = t.connect().await;
    let cal = t.standin.default_calendar(ACCOUNT).expect("cal");
    let event = json!({
        "subject": "Consultation - Jane",
        "body": {"contentType": "HTML", "content": "<p>Booked on Stoep</p>"},
        "start": {"dateTime": "2026-03-10T08:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-03-10T09:00:00", "timeZone": "UTC"},
        "showAs": "busy",
        "isOnlineMeeting": true,
        "onlineMeetingProvider": "teamsForBusiness",
        "transactionId": "7e163156-7762-4beb-a1c6-729ea81755a7",
    });
    let path = format!("/me/calendars/{cal}/events");
    let (status, _, first) = t
        .call(
            reqwest::Method::POST,
            &path,
            &at,
            &["outlook.timezone=\"UTC\""],
            Some(event.clone()),
        )
        .await;
    assert_eq!(status, 201, "{first}");
    let join = first["onlineMeeting"]["joinUrl"]
        .as_str()
        .expect("a Teams link")
        .to_owned();
    assert!(join.starts_with("https://teams.microsoft.com/l/meetup-join/"));
    assert_eq!(
        first["transactionId"],
        "7e163156-7762-4beb-a1c6-729ea81755a7"
    );
    let (status, _, again) = t
        .call(reqwest::Method::POST, &path, &at, &[], Some(event))
        .await;
    assert_eq!(status, 201);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(t.standin.events(&cal).len(), 1);

    // PATCH with a stale etag: 412; with the right one: 200. DELETE twice: 204, then 404.
    let id = first["id"].as_str().expect("id");
    let etag = first["@odata.etag"].as_str().expect("etag").to_owned();
    let r = t
        .http
        .patch(format!("{}/me/events/{id}", t.standin.graph_base()))
        .bearer_auth(&at)
        .header("If-Match", "W/\"stale\"")
        .json(&json!({"subject": "x"}))
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 412);
    let r = t.http.patch(format!("{}/me/events/{id}", t.standin.graph_base())).bearer_auth(&at).header("If-Match", etag).json(&json!({"subject": "Consultation - Jane (moved)", "start": {"dateTime": "2026-03-10T10:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-03-10T11:00:00", "timeZone": "UTC"}})).send().await.expect("answers");
    assert_eq!(r.status(), 200);
    let patched: Value = r.json().await.expect("json");
    assert_eq!(patched["start"]["dateTime"], "2026-03-10T10:00:00.0000000");
    assert_eq!(patched["onlineMeeting"]["joinUrl"], join.as_str());
    let (status, _, _) = t
        .call(
            reqwest::Method::DELETE,
            &format!("/me/events/{id}"),
            &at,
            &[],
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _, err) = t
        .call(
            reqwest::Method::DELETE,
            &format!("/me/events/{id}"),
            &at,
            &[],
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(err["error"]["code"], "ErrorItemNotFound");
}

#[tokio::test]
async fn a_subscription_is_validated_first_then_notified_with_its_client_state() {
    let t = setup().await;
    let (at, _) = t.connect().await;
    let cal = t.standin.default_calendar(ACCOUNT).expect("cal");
    let expiry = chrono::Utc::now() + chrono::TimeDelta::days(6);
    let body = json!({
        "changeType": "created,updated,deleted",
        "notificationUrl": format!("{}/hooks/graph", t.hooks_url),
        "lifecycleNotificationUrl": format!("{}/hooks/graph-lifecycle", t.hooks_url),
        "resource": format!("me/calendars/{cal}/events"),
        "expirationDateTime": expiry.to_rfc3339(),
        "clientState": "s3cret-state",
        "latestSupportedTlsVersion": "v1_2",
    });

    // An endpoint that does not echo the token: no subscription.
    t.hooks.refuse.store(true, Ordering::SeqCst);
    let (status, _, err) = t
        .call(
            reqwest::Method::POST,
            "/subscriptions",
            &at,
            &[],
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(t.standin.subscriptions().is_empty());
    t.hooks.refuse.store(false, Ordering::SeqCst);

    let (status, _, sub) = t
        .call(
            reqwest::Method::POST,
            "/subscriptions",
            &at,
            &[],
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{sub}");
    assert_eq!(sub["clientState"], "s3cret-state");
    assert_eq!(
        t.hooks.validations.lock().expect("lock").len(),
        3,
        "two for the refused try, notification and lifecycle URLs now"
    );

    let id = t
        .standin
        .add_outside_event(&cal, &OutsideEvent::busy("Gym", T0, T0 + HOUR))
        .expect("added");
    assert!(t.standin.wait_idle(Duration::from_secs(5)).await);
    let got = t.hooks.got.lock().expect("lock").clone();
    assert_eq!(got.len(), 1);
    let n = &got[0]["value"][0];
    assert_eq!(n["subscriptionId"], sub["id"]);
    assert_eq!(n["clientState"], "s3cret-state");
    assert_eq!(n["changeType"], "created");
    assert_eq!(n["resourceData"]["id"], id.as_str());
    assert!(
        n["resource"]
            .as_str()
            .is_some_and(|r| r.ends_with(&format!("/Events/{id}")))
    );

    // Renewal, then deletion: no more notifications.
    let sid = sub["id"].as_str().expect("id");
    let later = (chrono::Utc::now() + chrono::TimeDelta::days(7) - chrono::TimeDelta::hours(1))
        .to_rfc3339();
    let (status, _, renewed) = t
        .call(
            reqwest::Method::PATCH,
            &format!("/subscriptions/{sid}"),
            &at,
            &[],
            Some(json!({"expirationDateTime": later})),
        )
        .await;
    assert_eq!(status, 200, "{renewed}");
    let too_late = (chrono::Utc::now() + chrono::TimeDelta::days(8)).to_rfc3339();
    let (status, _, _) = t
        .call(
            reqwest::Method::PATCH,
            &format!("/subscriptions/{sid}"),
            &at,
            &[],
            Some(json!({"expirationDateTime": too_late})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _, _) = t
        .call(
            reqwest::Method::DELETE,
            &format!("/subscriptions/{sid}"),
            &at,
            &[],
            None,
        )
        .await;
    assert_eq!(status, 204);
    t.standin.delete_event(&id).expect("deleted");
    assert!(t.standin.wait_idle(Duration::from_secs(2)).await);
    assert_eq!(t.hooks.got.lock().expect("lock").len(), 1);
    let (status, _, _) = t
        .call(
            reqwest::Method::PATCH,
            &format!("/subscriptions/{sid}"),
            &at,
            &[],
            Some(json!({"expirationDateTime": later})),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn throttling_expired_tokens_and_missing_items_answer_in_graphs_shape() {
    let t = setup().await;
    let (at, rt) = t.connect().await;
    let f = t.standin.faults();
    f.rate_limit_next.store(1, Ordering::SeqCst);
    let (status, headers, err) = t
        .call(reqwest::Method::GET, "/me/calendars", &at, &[], None)
        .await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "2");
    assert_eq!(err["error"]["code"], "TooManyRequests");
    assert!(err["error"]["innerError"]["request-id"].is_string());

    f.expire_access_tokens();
    let (status, headers, err) = t
        .call(reqwest::Method::GET, "/me/calendars", &at, &[], None)
        .await;
    assert_eq!(status, 401);
    assert_eq!(err["error"]["code"], "InvalidAuthenticationToken");
    assert!(headers.contains_key("www-authenticate"));
    let (status, fresh) = t.refresh(&rt).await;
    assert_eq!(status, 200);
    let at = fresh["access_token"].as_str().expect("at").to_owned();
    let (status, _, me) = t.call(reqwest::Method::GET, "/me", &at, &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(me["mail"], ACCOUNT);

    let (status, _, err) = t
        .call(
            reqwest::Method::GET,
            "/me/events/AAMkADnothing=",
            &at,
            &[],
            None,
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (404, Some("ErrorItemNotFound"))
    );

    f.api_down.store(true, Ordering::SeqCst);
    let (status, _, err) = t.call(reqwest::Method::GET, "/me", &at, &[], None).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (503, Some("ServiceNotAvailable"))
    );
    f.reset();

    // A deleted calendar is 404 from then on.
    let clinic = t.standin.calendars(ACCOUNT)[1].0.clone();
    f.delete_calendar_next.store(true, Ordering::SeqCst);
    let (status, _, _) = t
        .call(
            reqwest::Method::GET,
            &format!("/me/calendars/{clinic}/calendarView/delta?{WINDOW}"),
            &at,
            &[],
            None,
        )
        .await;
    assert_eq!(status, 404);
}
