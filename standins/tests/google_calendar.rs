//! Tests of the Google Calendar stand-in over real HTTP on 127.0.0.1, with reqwest as the
//! portal's client would use it: the OAuth code flow with PKCE through the consent page,
//! refresh and revocation; incremental sync with outside events; 410 and recovery; idempotent
//! inserts; Meet links; push notifications to a small axum receiver; the fault switches.

mod support;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use standins::calendar_common::OutsideEvent;
use standins::google_calendar::{
    ACCOUNT, CLIENT_ID, CLIENT_SECRET, GoogleCalendarConfig, GoogleCalendarStandin,
    SCOPE_CALENDARLIST_READONLY, SCOPE_EVENTS,
};
use support::{Receiver, start_receiver};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const REDIRECT: &str = "http://127.0.0.1:9/oauth/google/callback";
/// RFC 7636's example verifier and its S256 challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// 2026-03-10T09:00:00Z.
const T0: i64 = 1_773_133_200_000;
const HOUR: i64 = 3_600_000;

struct Setup {
    standin: GoogleCalendarStandin,
    receiver: Receiver,
    receiver_url: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn setup_with(config: GoogleCalendarConfig) -> Setup {
    let shutdown = CancellationToken::new();
    let (receiver, receiver_url) = start_receiver(&shutdown).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let standin = GoogleCalendarStandin::start(
        listener,
        GoogleCalendarConfig {
            retry_schedule: vec![Duration::from_millis(30); 3],
            ..config
        },
        shutdown.clone(),
    )
    .await
    .expect("starts");
    Setup {
        standin,
        receiver,
        receiver_url,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        shutdown,
    }
}

async fn setup() -> Setup {
    setup_with(GoogleCalendarConfig::default()).await
}

fn query_of(location: &str) -> HashMap<String, String> {
    let url = url::Url::parse(location).expect("a URL");
    url.query_pairs().into_owned().collect()
}

impl Setup {
    fn auth_query(&self, state: &str, extra: &[(&str, &str)]) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("client_id", CLIENT_ID)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("response_type", "code")
            .append_pair(
                "scope",
                &format!("openid email {SCOPE_EVENTS} {SCOPE_CALENDARLIST_READONLY}"),
            )
            .append_pair("state", state)
            .append_pair("code_challenge", CHALLENGE)
            .append_pair("code_challenge_method", "S256")
            .append_pair("access_type", "offline")
            .append_pair("prompt", "consent");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
        q.finish()
    }

    /// Opens the consent page and answers it; returns the redirect's query.
    async fn consent(&self, state: &str, decision: &str) -> HashMap<String, String> {
        let query = self.auth_query(state, &[]);
        let page = self
            .http
            .get(format!("{}?{query}", self.standin.auth_url()))
            .send()
            .await
            .expect("answers");
        assert_eq!(page.status(), 200);
        let html = page.text().await.expect("text");
        assert!(html.contains("Allow") && html.contains("Deny") && html.contains(ACCOUNT));
        let scopes = format!("openid email {SCOPE_EVENTS} {SCOPE_CALENDARLIST_READONLY}");
        let mut form: Vec<(&str, &str)> = vec![
            ("query", &query),
            ("account", ACCOUNT),
            ("decision", decision),
        ];
        for s in scopes.split(' ') {
            form.push(("scope", s));
        }
        let answer = self
            .http
            .post(self.standin.auth_url())
            .form(&form)
            .send()
            .await
            .expect("answers");
        assert!(answer.status().is_redirection(), "{}", answer.status());
        let location = answer.headers()["location"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(location.starts_with(REDIRECT), "{location}");
        query_of(&location)
    }

    async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .http
            .post(self.standin.token_url())
            .form(form)
            .send()
            .await
            .expect("answers");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn exchange(&self, code: &str, verifier: &str) -> (u16, Value) {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("code_verifier", verifier),
        ])
        .await
    }

    /// The whole flow; returns (access token, refresh token).
    async fn connect(&self) -> (String, String) {
        let back = self.consent("state-1", "allow").await;
        let (status, tokens) = self.exchange(&back["code"], VERIFIER).await;
        assert_eq!(status, 200, "{tokens}");
        (
            tokens["access_token"].as_str().expect("access").to_owned(),
            tokens["refresh_token"]
                .as_str()
                .expect("refresh")
                .to_owned(),
        )
    }

    async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.standin.api_base()))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.expect("answers");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, headers, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let (s, _, v) = self.api(reqwest::Method::GET, path, token, None).await;
        (s, v)
    }

    /// A full sync (following pages); returns (items, nextSyncToken).
    async fn full_sync(&self, token: &str, cal: &str) -> (Vec<Value>, String) {
        self.sync_from(
            token,
            cal,
            "singleEvents=false&showDeleted=true&maxResults=2500&timeMin=2026-01-01T00:00:00Z",
        )
        .await
    }

    async fn sync_from(&self, token: &str, cal: &str, first: &str) -> (Vec<Value>, String) {
        let mut items = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let path = match &page {
                Some(p) => format!("/calendars/{cal}/events?{first}&pageToken={p}"),
                None => format!("/calendars/{cal}/events?{first}"),
            };
            let (status, v) = self.get(&path, token).await;
            assert_eq!(status, 200, "{v}");
            items.extend(v["items"].as_array().cloned().unwrap_or_default());
            match v["nextPageToken"].as_str() {
                Some(p) => page = Some(p.to_owned()),
                None => {
                    return (
                        items,
                        v["nextSyncToken"]
                            .as_str()
                            .expect("a sync token on the last page")
                            .to_owned(),
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn the_oauth_code_flow_with_pkce_issues_tokens_and_refuses_a_wrong_verifier() {
    let t = setup().await;
    let back = t.consent("csrf-123", "allow").await;
    assert_eq!(back["state"], "csrf-123");
    assert!(back["scope"].contains(SCOPE_EVENTS));
    let (status, err) = t
        .exchange(
            &back["code"],
            "a-wrong-verifier-that-is-long-enough-to-be-valid-0123",
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(err["error"], "invalid_grant");

    let back = t.consent("csrf-456", "allow").await;
    let (status, tokens) = t.exchange(&back["code"], VERIFIER).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["expires_in"].as_u64().expect("expires_in") > 3000);
    assert!(
        tokens["id_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned();
    // The code is single use.
    let (status, err) = t.exchange(&back["code"], VERIFIER).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let access = tokens["access_token"].as_str().expect("access");
    let (status, list) = t.get("/users/me/calendarList", access).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ACCOUNT);

    // Refresh: a new access token, and (as Google) no new refresh token.
    let (status, fresh) = t
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await;
    assert_eq!(status, 200, "{fresh}");
    assert!(fresh.get("refresh_token").is_none());
    let new_access = fresh["access_token"].as_str().expect("access").to_owned();
    assert_ne!(new_access, access);

    // A wrong client secret is invalid_client.
    let (status, err) = t
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", CLIENT_ID),
            ("client_secret", "nope"),
        ])
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (401, Some("invalid_client"))
    );

    // Revoke: the refresh token then gets invalid_grant and the access token 401.
    let r = t
        .http
        .post(t.standin.revoke_url())
        .form(&[("token", refresh.as_str())])
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 200);
    let (status, err) = t
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, err) = t.get("/users/me/calendarList", &new_access).await;
    assert_eq!(status, 401);
    assert_eq!(err["error"]["errors"][0]["reason"], "authError");
    let r = t
        .http
        .post(t.standin.revoke_url())
        .form(&[("token", refresh.as_str())])
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn deny_and_bad_requests_come_back_as_google_does() {
    let t = setup_with(GoogleCalendarConfig {
        redirect_uris: vec![REDIRECT.into()],
        ..Default::default()
    })
    .await;
    let back = t.consent("s-deny", "deny").await;
    assert_eq!(back["error"], "access_denied");
    assert_eq!(back["state"], "s-deny");
    assert!(!back.contains_key("code"));

    // An unregistered redirect URI is an error page, never a redirect.
    let query = t
        .auth_query("x", &[])
        .replace("127.0.0.1%3A9", "evil.example");
    let r = t
        .http
        .get(format!("{}?{query}", t.standin.auth_url()))
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .expect("text")
            .contains("redirect_uri_mismatch")
    );

    // Without access_type=offline and prompt=consent a second consent gives no refresh token.
    t.connect().await;
    let query = t.auth_query("again", &[]).replace("&prompt=consent", "");
    let form = [
        ("query", query.as_str()),
        ("account", ACCOUNT),
        ("decision", "allow"),
        ("scope", SCOPE_EVENTS),
    ];
    let r = t
        .http
        .post(t.standin.auth_url())
        .form(&form)
        .send()
        .await
        .expect("answers");
    let back = query_of(r.headers()["location"].to_str().expect("ascii"));
    let (status, tokens) = t.exchange(&back["code"], VERIFIER).await;
    assert_eq!(status, 200);
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    assert_eq!(tokens["scope"], SCOPE_EVENTS);
    // ... and only the scope left ticked: the calendar list is out of reach.
    let (status, err) = t
        .get(
            "/users/me/calendarList",
            tokens["access_token"].as_str().expect("token"),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        err["error"]["errors"][0]["reason"],
        "insufficientPermissions"
    );
}

#[tokio::test]
async fn an_outside_event_shows_in_the_next_incremental_sync_and_its_deletion_as_cancelled() {
    let t = setup().await;
    let (access, _) = t.connect().await;
    let (items, sync) = t.full_sync(&access, "primary").await;
    assert!(items.is_empty());

    let id = t
        .standin
        .add_outside_event(ACCOUNT, &OutsideEvent::busy("Dentist", T0, T0 + HOUR))
        .expect("added");
    let (items, sync2) = t
        .sync_from(
            &access,
            "primary",
            &format!("singleEvents=false&showDeleted=true&maxResults=2500&syncToken={sync}"),
        )
        .await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["summary"], "Dentist");
    assert_eq!(items[0]["start"]["dateTime"], "2026-03-10T11:00:00+02:00");
    assert_eq!(items[0]["transparency"], "opaque");

    // Nothing new: an empty page and a token.
    let (items, sync3) = t
        .sync_from(&access, "primary", &format!("syncToken={sync2}"))
        .await;
    assert!(items.is_empty());

    t.standin
        .move_event(ACCOUNT, &id, T0 + 2 * HOUR, T0 + 3 * HOUR)
        .expect("moved");
    t.standin.delete_event(ACCOUNT, &id).expect("deleted");
    let (items, _) = t
        .sync_from(&access, "primary", &format!("syncToken={sync3}"))
        .await;
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0],
        json!({"kind": "calendar#event", "etag": items[0]["etag"], "id": id, "status": "cancelled"})
    );

    // Outside events added through the page's form work the same way.
    let r = t
        .http
        .post(format!("{}/_standin/events", t.standin.base_url()))
        .form(&[
            ("calendar", ACCOUNT),
            ("summary", "School run"),
            ("start", "2026-03-11T07:30"),
            ("minutes", "45"),
        ])
        .send()
        .await
        .expect("answers");
    assert!(r.status().is_redirection());
    let events = t.standin.events(ACCOUNT);
    let run = events
        .iter()
        .find(|e| e["summary"] == "School run")
        .expect("added by the form");
    assert_eq!(run["start"]["dateTime"], "2026-03-11T07:30:00+02:00");
    assert_eq!(run["end"]["dateTime"], "2026-03-11T08:15:00+02:00");
    let page = t
        .http
        .get(format!("{}/_standin", t.standin.base_url()))
        .send()
        .await
        .expect("answers");
    assert!(page.text().await.expect("text").contains("School run"));
}

#[tokio::test]
async fn an_expired_sync_token_gives_410_and_a_full_sync_recovers() {
    let t = setup().await;
    let (access, _) = t.connect().await;
    for i in 0..5 {
        t.standin
            .add_outside_event(
                ACCOUNT,
                &OutsideEvent::busy(
                    &format!("Busy {i}"),
                    T0 + i * HOUR,
                    T0 + i * HOUR + HOUR / 2,
                ),
            )
            .expect("added");
    }
    // Paging: two at a time, the sync token on the last page only.
    let (items, sync) = t
        .sync_from(&access, "primary", "maxResults=2&showDeleted=true")
        .await;
    assert_eq!(items.len(), 5);

    t.standin.faults().expire_sync_tokens();
    let (status, err) = t
        .get(
            &format!("/calendars/primary/events?syncToken={sync}"),
            &access,
        )
        .await;
    assert_eq!(status, 410);
    assert_eq!(err["error"]["errors"][0]["reason"], "fullSyncRequired");
    let (items, fresh) = t.full_sync(&access, "primary").await;
    assert_eq!(items.len(), 5);
    let (status, _) = t
        .get(
            &format!("/calendars/primary/events?syncToken={fresh}"),
            &access,
        )
        .await;
    assert_eq!(status, 200);
    // A sync token with a time bound is a client bug.
    let (status, _) = t
        .get(
            &format!("/calendars/primary/events?syncToken={fresh}&timeMin=2026-01-01T00:00:00Z"),
            &access,
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn inserting_with_the_same_id_twice_makes_one_event_and_a_meet_link() {
    let t = setup().await;
    let (access, _) = t.connect().await;
    let id = "7e163156776242beba1c6729ea81755a";
    let event = json!({
        "id": id,
        "summary": "Consultation - Jane",
        "start": {"dateTime": "2026-03-10T09:00:00Z", "timeZone": "UTC"},
        "end": {"dateTime": "2026-03-10T10:00:00Z", "timeZone": "UTC"},
        "extendedProperties": {"private": {"portalBookingId": "bk_1"}},
        "conferenceData": {"createRequest": {"requestId": "req-1", "conferenceSolutionKey": {"type": "hangoutsMeet"}}},
    });
    let path = "/calendars/primary/events?conferenceDataVersion=1&sendUpdates=none";
    let (status, _, first) = t
        .api(reqwest::Method::POST, path, &access, Some(event.clone()))
        .await;
    assert_eq!(status, 200, "{first}");
    let link = first["hangoutLink"]
        .as_str()
        .expect("a Meet link")
        .to_owned();
    assert!(link.starts_with("https://meet.google.com/"));
    let video = &first["conferenceData"]["entryPoints"][0];
    assert_eq!(
        (video["entryPointType"].as_str(), video["uri"].as_str()),
        (Some("video"), Some(link.as_str()))
    );
    assert_eq!(
        first["conferenceData"]["createRequest"]["status"]["statusCode"],
        "success"
    );

    let (status, _, again) = t
        .api(reqwest::Method::POST, path, &access, Some(event))
        .await;
    assert_eq!(status, 409);
    assert_eq!(again["error"]["errors"][0]["reason"], "duplicate");
    let (status, got) = t
        .get(&format!("/calendars/primary/events/{id}"), &access)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        got["extendedProperties"]["private"]["portalBookingId"],
        "bk_1"
    );
    assert_eq!(t.standin.events(ACCOUNT).len(), 1);

    // Without conferenceDataVersion=1 the request is silently ignored.
    let (status, _, plain) = t
        .api(
            reqwest::Method::POST,
            "/calendars/primary/events",
            &access,
            Some(json!({
                "start": {"dateTime": "2026-03-11T09:00:00Z"}, "end": {"dateTime": "2026-03-11T10:00:00Z"},
                "conferenceData": {"createRequest": {"requestId": "req-2", "conferenceSolutionKey": {"type": "hangoutsMeet"}}},
            })),
        )
        .await;
    assert_eq!(status, 200);
    assert!(plain.get("hangoutLink").is_none() && plain.get("conferenceData").is_none());

    // Patch with a stale etag: 412; delete twice: 204 then 410.
    let etag = got["etag"].as_str().expect("etag").to_owned();
    let r = t
        .http
        .patch(format!(
            "{}/calendars/primary/events/{id}",
            t.standin.api_base()
        ))
        .bearer_auth(&access)
        .header("If-Match", "\"1\"")
        .json(&json!({"summary": "x"}))
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 412);
    let r = t
        .http
        .patch(format!("{}/calendars/primary/events/{id}", t.standin.api_base()))
        .bearer_auth(&access)
        .header("If-Match", etag)
        .json(&json!({"summary": "Consultation - Jane (moved)", "start": {"dateTime": "2026-03-10T12:00:00Z"}, "end": {"dateTime": "2026-03-10T13:00:00Z"}}))
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 200);
    let patched: Value = r.json().await.expect("json");
    assert_eq!(patched["sequence"], 1);
    assert_eq!(patched["hangoutLink"], link.as_str());
    let (status, _, _) = t
        .api(
            reqwest::Method::DELETE,
            &format!("/calendars/primary/events/{id}"),
            &access,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _, gone) = t
        .api(
            reqwest::Method::DELETE,
            &format!("/calendars/primary/events/{id}"),
            &access,
            None,
        )
        .await;
    assert_eq!(status, 410);
    assert_eq!(gone["error"]["errors"][0]["reason"], "deleted");
}

#[tokio::test]
async fn a_late_meet_link_is_pending_first_and_filled_in_by_the_next_get() {
    let t = setup().await;
    let (access, _) = t.connect().await;
    t.standin
        .faults()
        .meeting_link_late
        .store(true, Ordering::SeqCst);
    let (status, _, ev) = t
        .api(
            reqwest::Method::POST,
            "/calendars/primary/events?conferenceDataVersion=1",
            &access,
            Some(json!({
                "start": {"dateTime": "2026-03-10T09:00:00Z"}, "end": {"dateTime": "2026-03-10T10:00:00Z"},
                "conferenceData": {"createRequest": {"requestId": "late-1", "conferenceSolutionKey": {"type": "hangoutsMeet"}}},
            })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        ev["conferenceData"]["createRequest"]["status"]["statusCode"],
        "pending"
    );
    assert!(ev.get("hangoutLink").is_none());
    let (_, later) = t
        .get(
            &format!(
                "/calendars/primary/events/{}",
                ev["id"].as_str().expect("id")
            ),
            &access,
        )
        .await;
    assert!(
        later["hangoutLink"]
            .as_str()
            .is_some_and(|l| l.starts_with("https://meet.google.com/"))
    );
}

#[tokio::test]
async fn a_watch_channel_gets_a_sync_message_then_one_per_change_until_stopped() {
    let t = setup().await;
    let (access, _) = t.connect().await;
    let address = format!("{}/hooks/google?tenant=1", t.receiver_url);
    let (status, _, channel) = t
        .api(
            reqwest::Method::POST,
            "/calendars/primary/events/watch",
            &access,
            Some(json!({"id": "chan-1", "type": "web_hook", "address": address, "token": "secret-token"})),
        )
        .await;
    assert_eq!(status, 200, "{channel}");
    assert_eq!(channel["kind"], "api#channel");
    let resource_id = channel["resourceId"]
        .as_str()
        .expect("resourceId")
        .to_owned();
    assert!(
        channel["expiration"]
            .as_str()
            .is_some_and(|e| e.parse::<i64>().is_ok())
    );

    t.standin
        .add_outside_event(ACCOUNT, &OutsideEvent::busy("Gym", T0, T0 + HOUR))
        .expect("added");
    let hits = t
        .receiver
        .wait_for(Duration::from_secs(5), |h| h.len() >= 2)
        .await;
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].path_and_query, "/hooks/google?tenant=1");
    for (hit, (state, number)) in hits.iter().zip([("sync", "1"), ("exists", "2")]) {
        assert_eq!(hit.header("x-goog-channel-id").as_deref(), Some("chan-1"));
        assert_eq!(
            hit.header("x-goog-channel-token").as_deref(),
            Some("secret-token")
        );
        assert_eq!(
            hit.header("x-goog-resource-id").as_deref(),
            Some(resource_id.as_str())
        );
        assert_eq!(hit.header("x-goog-resource-state").as_deref(), Some(state));
        assert_eq!(hit.header("x-goog-message-number").as_deref(), Some(number));
        assert!(
            hit.header("x-goog-channel-expiration")
                .is_some_and(|e| e.ends_with("GMT"))
        );
        assert!(hit.body.is_empty());
    }

    let (status, _, _) = t
        .api(
            reqwest::Method::POST,
            "/channels/stop",
            &access,
            Some(json!({"id": "chan-1", "resourceId": resource_id})),
        )
        .await;
    assert_eq!(status, 204);
    t.standin
        .add_outside_event(ACCOUNT, &OutsideEvent::busy("After stop", T0, T0 + HOUR))
        .expect("added");
    assert!(t.standin.wait_idle(Duration::from_secs(2)).await);
    assert_eq!(t.receiver.hits().len(), 2);
}

#[tokio::test]
async fn rate_limits_outages_revoked_grants_and_deleted_calendars_answer_as_google_does() {
    let t = setup().await;
    let (access, refresh) = t.connect().await;
    let f = t.standin.faults();

    f.rate_limit_next.store(1, Ordering::SeqCst);
    let (status, headers, err) = t
        .api(
            reqwest::Method::GET,
            "/users/me/calendarList",
            &access,
            None,
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(err["error"]["errors"][0]["reason"], "rateLimitExceeded");
    assert_eq!(err["error"]["errors"][0]["domain"], "usageLimits");
    assert!(headers.get("retry-after").is_none());

    f.rate_limit_429.store(true, Ordering::SeqCst);
    f.retry_after_secs.store(7, Ordering::SeqCst);
    f.rate_limit_next.store(2, Ordering::SeqCst);
    for _ in 0..2 {
        let (status, headers, _) = t
            .api(
                reqwest::Method::GET,
                "/users/me/calendarList",
                &access,
                None,
            )
            .await;
        assert_eq!(status, 429);
        assert_eq!(headers["retry-after"], "7");
    }
    let (status, _) = t.get("/users/me/calendarList", &access).await;
    assert_eq!(status, 200);

    f.api_down.store(true, Ordering::SeqCst);
    let (status, err) = t.get("/users/me/calendarList", &access).await;
    assert_eq!(
        (status, err["error"]["errors"][0]["reason"].as_str()),
        (503, Some("backendError"))
    );
    f.reset();

    // A deleted calendar: 404 from then on, and gone from the list.
    let (_, list) = t.get("/users/me/calendarList", &access).await;
    let clinic = list["items"][1]["id"]
        .as_str()
        .expect("the Clinic calendar")
        .to_owned();
    f.delete_calendar_next.store(true, Ordering::SeqCst);
    let (status, _) = t
        .get(
            &format!("/calendars/{}/events", urlencode(&clinic)),
            &access,
        )
        .await;
    assert_eq!(status, 404);
    let (_, list) = t.get("/users/me/calendarList", &access).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));

    // Every grant revoked at once: invalid_grant on refresh, 401 on the API.
    f.revoke_all_grants();
    let (status, err) = t
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _) = t.get("/users/me/calendarList", &access).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn single_events_expand_a_recurring_outside_event_across_the_window() {
    let t = setup().await;
    let (access, _) = t.connect().await;
    let mut weekly = OutsideEvent::busy("Team sync", T0, T0 + HOUR);
    weekly.rrule = Some("FREQ=WEEKLY;COUNT=4".into());
    let id = t
        .standin
        .add_outside_event(ACCOUNT, &weekly)
        .expect("added");
    let (status, v) = t
        .get("/calendars/primary/events?singleEvents=true&orderBy=startTime&timeMin=2026-03-01T00:00:00Z&timeMax=2026-03-25T00:00:00Z", &access)
        .await;
    assert_eq!(status, 200, "{v}");
    let items = v["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["id"], format!("{id}_20260310T090000Z"));
    assert_eq!(items[0]["recurringEventId"], id.as_str());
    assert_eq!(items[2]["start"]["dateTime"], "2026-03-24T11:00:00+02:00");
    assert!(v.get("nextSyncToken").is_none());
    // The master, with its rule, in a normal list.
    let (_, v) = t.get("/calendars/primary/events", &access).await;
    assert_eq!(v["items"][0]["recurrence"][0], "RRULE:FREQ=WEEKLY;COUNT=4");
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
