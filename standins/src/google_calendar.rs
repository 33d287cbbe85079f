//! A local stand-in for Google's OAuth 2.0 server and the Calendar API v3, so the portal's
//! calendar client connects a staff member's Google Calendar in demos and tests without a
//! Google account, a verified app or a network.
//!
//! It speaks what `research/calendars.md` §1 documents, on one host (the portal's client takes
//! the three Google hosts as configuration; point them all at [`GoogleCalendarStandin::base_url`]):
//!
//! - OAuth: `GET /o/oauth2/v2/auth` (client_id, redirect_uri, response_type=code, scope, state,
//!   code_challenge with S256 or plain, access_type=offline, prompt, login_hint) shows a page
//!   where a tester picks an account, may untick scopes, and answers Allow (back to
//!   `redirect_uri?code&scope&state`) or Deny (`?error=access_denied&state`). An unknown client
//!   or a redirect URI that is not registered gets Google's error page, not a redirect.
//!   `POST /token` (client secret in the form or HTTP Basic): `authorization_code` with the
//!   PKCE verifier checked, `refresh_token` (no new refresh token in the answer, as Google);
//!   `invalid_grant` for a bad, reused, expired or revoked one. A refresh token comes only with
//!   `access_type=offline`, and again only on first consent or with `prompt=consent`.
//!   `POST /revoke` (`token=`): 200, or 400 `invalid_token`.
//! - Calendar API under `/calendar/v3`: `users/me/calendarList` (list and get),
//!   `calendars/{id}/events` list (syncToken / nextSyncToken, pageToken, maxResults,
//!   showDeleted, singleEvents with recurring events expanded by `guards::ical`, timeMin,
//!   timeMax, orderBy; `410 fullSyncRequired` for an expired token), insert (client-supplied
//!   base32hex `id`, `409 duplicate` on reuse, also after a deletion; `conferenceData.
//!   createRequest` with `conferenceDataVersion=1` gives a Meet link in `hangoutLink` and
//!   `conferenceData.entryPoints`), get, patch (`If-Match` → `412 conditionNotMet`), update
//!   (PUT), delete (`204`, then `410 deleted`), `events/watch` and `channels/stop`. Calendar ids
//!   may be `primary`. Scopes are checked (`403 insufficientPermissions`).
//! - Push notifications: after a watch, a `sync` message, then an `exists` message for every
//!   change to the calendar's events, POSTed with an empty body and the `X-Goog-Channel-ID`,
//!   `-Token`, `-Expiration`, `X-Goog-Resource-ID`, `-URI`, `-State` and `X-Goog-Message-Number`
//!   headers, through the messaging [`Outbox`] (retried on 5xx, with its delivery faults).
//!
//! Faults ([`CalendarFaults`], read at each call): API down (503 `backendError`), the next N
//! calls failing (500), rate-limit storms (`403` or `429` `rateLimitExceeded`, with or without
//! `Retry-After`), revoking every grant, expiring access tokens (401 `authError`), expiring
//! every sync token (410), deleting a secondary calendar (404 afterwards), late Meet links.
//!
//! `/_standin` lists accounts, calendars, grants, channels and events, and has forms to add,
//! move and delete an "outside" event (a tester's own appointment) and to pull the fault
//! levers; tests do the same through [`GoogleCalendarStandin::add_outside_event`] and friends.
//!
//! Not emulated: ACLs and shared calendars (every calendar is owned by its account), attendees'
//! invitations (`sendUpdates` is accepted and ignored), reminders, colors, `freebusy.query`,
//! instance-level edits of recurring events (exceptions), `calendarList` sync tokens, incremental
//! sync with `singleEvents=true` (no `nextSyncToken` is given then).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::calendar_common::{
    OutsideEvent, Tripped, date_in, decode_segment, http_date, meet_code, midnight, parse_date,
    parse_form_local, parse_naive, parse_rfc3339, query_map, rfc3339_in, rfc3339_utc, tripped,
    zone,
};
use crate::common::{esc, lock, now_ms, page};
use crate::controls::CalendarFaults;
use crate::oauth::{self, AccessError, AuthRequest, Client, Epochs, OAuthStore, TokenError};
use crate::outbox::{Outbox, OutboxConfig, OutboxDelivery, Webhook};

/// The stand-in's OAuth client id (loopback only, obviously fake).
pub const CLIENT_ID: &str = "stoep-standin.apps.googleusercontent.com";
/// Its client secret.
pub const CLIENT_SECRET: &str = "GOCSPX-stoep-standin-secret";
/// `https://www.googleapis.com/auth/` + the scope names below.
pub const SCOPE_PREFIX: &str = "https://www.googleapis.com/auth/";
/// Read and write events (not the calendar list).
pub const SCOPE_EVENTS: &str = "https://www.googleapis.com/auth/calendar.events";
/// The calendar list, read only.
pub const SCOPE_CALENDARLIST_READONLY: &str =
    "https://www.googleapis.com/auth/calendar.calendarlist.readonly";
/// The first seeded account (with a primary and a "Clinic" calendar).
pub const ACCOUNT: &str = "thandi@stoep.test";
/// The second seeded account (a primary calendar only).
pub const OTHER_ACCOUNT: &str = "sipho@stoep.test";

const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most events kept per calendar; inserts past it get 403 `quotaExceeded`.
const MAX_EVENTS_PER_CALENDAR: usize = 20_000;
const MAX_CHANNELS: usize = 1_000;
/// The longest a channel lives (Google caps them; a week here).
const MAX_CHANNEL_MS: i64 = 7 * 24 * 3600 * 1000;
const DAY_MS: i64 = 86_400_000;

// ---------------------------------------------------------------------------------------------
// Configuration and public API
// ---------------------------------------------------------------------------------------------

/// A seeded account: its primary calendar (id = email) and secondary ones by summary.
#[derive(Clone, Debug)]
pub struct GoogleAccountSeed {
    pub email: String,
    pub name: String,
    pub secondary_calendars: Vec<String>,
}

/// How the stand-in behaves. [`Default`]: the fixed client, any redirect URI, two accounts
/// ([`ACCOUNT`] with a "Clinic" calendar, [`OTHER_ACCOUNT`]), calendars in
/// Africa/Johannesburg, access tokens for an hour, a short push retry schedule, no state file.
#[derive(Clone)]
pub struct GoogleCalendarConfig {
    pub client_id: String,
    pub client_secret: String,
    /// Exact redirect URIs allowed; empty allows any http(s) URI.
    pub redirect_uris: Vec<String>,
    pub accounts: Vec<GoogleAccountSeed>,
    /// The IANA zone of seeded calendars.
    pub time_zone: String,
    pub access_token_ttl: Duration,
    /// If set, `/o/oauth2/v2/auth` skips its page and approves for this account (every scope):
    /// for scripted end-to-end runs.
    pub auto_approve: Option<String>,
    pub faults: Arc<CalendarFaults>,
    /// Waits between push attempts after a 5xx or no answer.
    pub retry_schedule: Vec<Duration>,
    /// If set, accounts, calendars, events, grants and channels are saved here after changes.
    pub state_file: Option<PathBuf>,
}

impl Default for GoogleCalendarConfig {
    fn default() -> Self {
        Self {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_uris: Vec::new(),
            accounts: vec![
                GoogleAccountSeed {
                    email: ACCOUNT.into(),
                    name: "Thandi Nkosi".into(),
                    secondary_calendars: vec!["Clinic".into()],
                },
                GoogleAccountSeed {
                    email: OTHER_ACCOUNT.into(),
                    name: "Sipho Dlamini".into(),
                    secondary_calendars: Vec::new(),
                },
            ],
            time_zone: "Africa/Johannesburg".into(),
            access_token_ttl: Duration::from_secs(3600),
            auto_approve: None,
            faults: Arc::default(),
            retry_schedule: [500, 1000, 2000, 4000]
                .into_iter()
                .map(Duration::from_millis)
                .collect(),
            state_file: None,
        }
    }
}

impl fmt::Debug for GoogleCalendarConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleCalendarConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"****")
            .field("redirect_uris", &self.redirect_uris)
            .field("accounts", &self.accounts)
            .field("time_zone", &self.time_zone)
            .field("faults", &self.faults)
            .field("state_file", &self.state_file)
            .finish_non_exhaustive()
    }
}

/// A running stand-in. Cheap to clone; it stops with the `shutdown` token given to
/// [`GoogleCalendarStandin::start`].
#[derive(Clone)]
pub struct GoogleCalendarStandin {
    inner: Arc<Inner>,
}

impl GoogleCalendarStandin {
    /// Serves the stand-in on `listener` (bind `127.0.0.1:0` in tests) and starts the push
    /// outbox. Loads `state_file` if it exists; seeds the configured accounts otherwise.
    pub async fn start(
        listener: TcpListener,
        cfg: GoogleCalendarConfig,
        shutdown: CancellationToken,
    ) -> std::io::Result<GoogleCalendarStandin> {
        let addr = listener.local_addr()?;
        let mut store: Store = match &cfg.state_file {
            Some(path) => crate::common::load_state(path, "Google Calendar").await?,
            None => Store::default(),
        };
        if !store.seeded {
            store.seed(&cfg);
        }
        let outbox = Outbox::start(
            OutboxConfig {
                name: "Google Calendar",
                retry_schedule: cfg.retry_schedule.clone(),
                timeout: Duration::from_secs(10),
                discard_on_4xx: true,
                user_agent:
                    "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"
                        .into(),
                faults: cfg.faults.webhooks.clone(),
            },
            shutdown.clone(),
        )?;
        let inner = Arc::new(Inner {
            base_url: format!("http://{addr}"),
            cfg,
            store: Mutex::new(store),
            outbox,
        });
        let router = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(inner.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "the Google Calendar stand-in stopped serving");
            }
        });
        tracing::info!(base_url = %inner.base_url, "Google Calendar stand-in listening");
        Ok(GoogleCalendarStandin { inner })
    }

    /// `http://127.0.0.1:PORT`, no trailing slash: the stand-in for `accounts.google.com`,
    /// `oauth2.googleapis.com` and `www.googleapis.com` alike.
    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// The authorization endpoint (`…/o/oauth2/v2/auth`).
    pub fn auth_url(&self) -> String {
        format!("{}/o/oauth2/v2/auth", self.inner.base_url)
    }

    /// The token endpoint (`…/token`).
    pub fn token_url(&self) -> String {
        format!("{}/token", self.inner.base_url)
    }

    /// The revocation endpoint (`…/revoke`).
    pub fn revoke_url(&self) -> String {
        format!("{}/revoke", self.inner.base_url)
    }

    /// The Calendar API base (`…/calendar/v3`).
    pub fn api_base(&self) -> String {
        format!("{}/calendar/v3", self.inner.base_url)
    }

    /// The fault switches (shared with whoever passed them in).
    pub fn faults(&self) -> &Arc<CalendarFaults> {
        &self.inner.cfg.faults
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &GoogleCalendarConfig {
        &self.inner.cfg
    }

    /// The calendars of an account, `(id, summary)`, primary first, deleted ones left out.
    pub fn calendars(&self, email: &str) -> Vec<(String, String)> {
        lock(&self.inner.store)
            .calendars
            .iter()
            .filter(|c| c.owner == email && !c.deleted)
            .map(|c| (c.id.clone(), c.summary.clone()))
            .collect()
    }

    /// Adds an outside event to a calendar (by id or `primary` of [`ACCOUNT`]); returns its
    /// id. Channels on the calendar are notified.
    pub fn add_outside_event(
        &self,
        calendar_id: &str,
        ev: &OutsideEvent,
    ) -> Result<String, String> {
        self.inner.mutate(|s| s.add_outside(calendar_id, ev))
    }

    /// Moves an event to new times (any event, not only outside ones).
    pub fn move_event(
        &self,
        calendar_id: &str,
        event_id: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<(), String> {
        self.inner
            .mutate(|s| s.move_event(calendar_id, event_id, start_ms, end_ms))
    }

    /// Deletes an event as the user would (it becomes `cancelled`).
    pub fn delete_event(&self, calendar_id: &str, event_id: &str) -> Result<(), String> {
        self.inner.mutate(|s| s.delete_event(calendar_id, event_id))
    }

    /// Every event of a calendar (by id, or `primary` of the first account) as the API would
    /// return it (deleted ones `cancelled`).
    pub fn events(&self, calendar_id: &str) -> Vec<Value> {
        let s = lock(&self.inner.store);
        let Some(cal) = s.calendar_any(calendar_id) else {
            return Vec::new();
        };
        s.events
            .iter()
            .filter(|e| e.calendar_id == cal.id)
            .map(|e| e.body.clone())
            .collect()
    }

    /// Revokes every grant of an account (the user removed the app); returns how many.
    pub fn revoke_account(&self, email: &str) -> usize {
        self.inner.mutate(|s| {
            s.dirty = true;
            s.oauth.revoke_account(email)
        })
    }

    /// Deletes a secondary calendar (the API then answers 404 for it).
    pub fn delete_calendar(&self, calendar_id: &str) -> Result<(), String> {
        self.inner.mutate(|s| s.delete_calendar(calendar_id))
    }

    /// The watch channels, as `events.watch` answered them (plus `calendarId`, `address`,
    /// `stopped`, `messages`).
    pub fn channels(&self) -> Vec<Value> {
        lock(&self.inner.store)
            .channels
            .iter()
            .map(|c| {
                json!({
                    "id": c.id, "resourceId": c.resource_id, "calendarId": c.calendar_id,
                    "address": c.address, "expiration": c.expiration_ms.to_string(),
                    "stopped": c.stopped, "messages": c.message_number,
                })
            })
            .collect()
    }

    /// Every push delivery attempt (the last 5000), oldest first.
    pub fn deliveries(&self) -> Vec<OutboxDelivery> {
        self.inner.outbox.log()
    }

    /// Waits until no push notification is pending or in flight.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        self.inner.outbox.wait_idle(timeout).await
    }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

struct Inner {
    cfg: GoogleCalendarConfig,
    base_url: String,
    store: Mutex<Store>,
    outbox: Outbox,
}

impl Inner {
    fn epochs(&self) -> Epochs {
        let f = &self.cfg.faults;
        Epochs {
            grants: f.grant_epoch.load(Ordering::SeqCst),
            access: f.access_epoch.load(Ordering::SeqCst),
        }
    }

    fn client(&self) -> Client {
        Client {
            client_id: self.cfg.client_id.clone(),
            client_secret: self.cfg.client_secret.clone(),
            redirect_uris: self.cfg.redirect_uris.clone(),
        }
    }

    /// Runs one change; saves the state if it changed and sends the push notifications it
    /// caused.
    fn mutate<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let mut store = lock(&self.store);
        if self
            .cfg
            .faults
            .delete_calendar_next
            .swap(false, Ordering::SeqCst)
        {
            store.delete_first_secondary();
        }
        let result = f(&mut store);
        let changed = std::mem::take(&mut store.changed);
        let now = now_ms() as i64;
        let store_ref = &mut *store;
        for cal in changed {
            for ch in store_ref.channels.iter_mut() {
                if ch.calendar_id == cal && !ch.stopped && ch.expiration_ms > now {
                    ch.message_number += 1;
                    self.outbox.push(push(&self.base_url, ch, "exists"));
                    store_ref.dirty = true;
                }
            }
        }
        if store.dirty {
            store.dirty = false;
            if let Some(path) = &self.cfg.state_file {
                crate::common::save_state(path, &*store, "Google Calendar");
            }
        }
        result
    }
}

/// One push notification of a channel.
fn push(base: &str, ch: &Channel, state: &str) -> Webhook {
    let mut headers = vec![
        ("X-Goog-Channel-ID".to_owned(), ch.id.clone()),
        (
            "X-Goog-Channel-Expiration".to_owned(),
            http_date(ch.expiration_ms),
        ),
        ("X-Goog-Resource-ID".to_owned(), ch.resource_id.clone()),
        (
            "X-Goog-Resource-URI".to_owned(),
            format!(
                "{base}/calendar/v3/calendars/{}/events?alt=json",
                url::form_urlencoded::byte_serialize(ch.calendar_id.as_bytes()).collect::<String>()
            ),
        ),
        ("X-Goog-Resource-State".to_owned(), state.to_owned()),
        (
            "X-Goog-Message-Number".to_owned(),
            ch.message_number.to_string(),
        ),
    ];
    if let Some(token) = &ch.token {
        headers.push(("X-Goog-Channel-Token".to_owned(), token.clone()));
    }
    Webhook {
        url: ch.address.clone(),
        kind: state.to_owned(),
        key: ch.id.clone(),
        body: Vec::new(),
        headers,
        delay: Duration::ZERO,
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Account {
    email: String,
    name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Cal {
    id: String,
    owner: String,
    summary: String,
    time_zone: String,
    primary: bool,
    deleted: bool,
}

impl Cal {
    fn tz(&self) -> Tz {
        zone(&self.time_zone).unwrap_or(Tz::UTC)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Ev {
    calendar_id: String,
    id: String,
    /// The change sequence number of its last change.
    seq: u64,
    deleted: bool,
    /// Added on `/_standin` or by a test, not through the API.
    outside: bool,
    /// A Meet link to fill in at the next GET (the `meeting_link_late` fault).
    meet_pending: bool,
    body: Value,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Channel {
    id: String,
    resource_id: String,
    calendar_id: String,
    address: String,
    token: Option<String>,
    expiration_ms: i64,
    message_number: u64,
    stopped: bool,
}

#[derive(Default, Serialize, Deserialize)]
struct Store {
    seeded: bool,
    seq: u64,
    accounts: Vec<Account>,
    calendars: Vec<Cal>,
    events: Vec<Ev>,
    oauth: OAuthStore,
    channels: Vec<Channel>,
    /// Calendars whose events changed in this mutation (for push notifications).
    #[serde(skip)]
    changed: Vec<String>,
    #[serde(skip)]
    dirty: bool,
}

fn base32hex_id(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuv";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

fn valid_event_id(id: &str) -> bool {
    (5..=1024).contains(&id.len()) && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'v'))
}

fn etag(seq: u64) -> String {
    format!("\"{}\"", 3_450_000_000_000_000u64 + seq)
}

impl Store {
    fn seed(&mut self, cfg: &GoogleCalendarConfig) {
        for a in &cfg.accounts {
            self.accounts.push(Account {
                email: a.email.clone(),
                name: a.name.clone(),
            });
            self.calendars.push(Cal {
                id: a.email.clone(),
                owner: a.email.clone(),
                summary: a.email.clone(),
                time_zone: cfg.time_zone.clone(),
                primary: true,
                deleted: false,
            });
            for summary in &a.secondary_calendars {
                self.calendars.push(Cal {
                    id: format!("{}@group.calendar.google.com", base32hex_id(26)),
                    owner: a.email.clone(),
                    summary: summary.clone(),
                    time_zone: cfg.time_zone.clone(),
                    primary: false,
                    deleted: false,
                });
            }
        }
        self.seeded = true;
        self.dirty = true;
    }

    /// A calendar of `account` by id or `primary` (deleted ones too).
    fn calendar_for(&self, id: &str, account: &str) -> Option<&Cal> {
        if id == "primary" {
            return self
                .calendars
                .iter()
                .find(|c| c.owner == account && c.primary);
        }
        self.calendars
            .iter()
            .find(|c| c.id == id && c.owner == account)
    }

    /// A calendar by id (any owner) or `primary` of the first account.
    fn calendar_any(&self, id: &str) -> Option<Cal> {
        if id == "primary" {
            return self.calendars.iter().find(|c| c.primary).cloned();
        }
        self.calendars.iter().find(|c| c.id == id).cloned()
    }

    fn bump(&mut self) -> u64 {
        self.seq += 1;
        self.dirty = true;
        self.seq
    }

    fn touch(&mut self, i: usize) {
        let seq = self.bump();
        let ev = &mut self.events[i];
        ev.seq = seq;
        ev.body["etag"] = json!(etag(seq));
        ev.body["updated"] = json!(rfc3339_utc(now_ms() as i64));
        let cal = ev.calendar_id.clone();
        if !self.changed.contains(&cal) {
            self.changed.push(cal);
        }
    }

    fn find(&self, cal: &str, id: &str) -> Option<usize> {
        self.events
            .iter()
            .position(|e| e.calendar_id == cal && e.id == id)
    }

    fn add_outside(&mut self, calendar_id: &str, o: &OutsideEvent) -> Result<String, String> {
        let cal = self
            .calendar_any(calendar_id)
            .filter(|c| !c.deleted)
            .ok_or("no such calendar")?;
        if o.end_ms < o.start_ms || o.summary.chars().count() > 1000 {
            return Err("the end is before the start, or the summary is too long".into());
        }
        let tz = cal.tz();
        let (start, end) = times_json(o.start_ms, o.end_ms, o.all_day, tz, &cal.time_zone);
        let mut body = json!({
            "summary": o.summary,
            "start": start,
            "end": end,
            "status": if o.tentative { "tentative" } else { "confirmed" },
            "transparency": if o.free { "transparent" } else { "opaque" },
        });
        if let Some(rule) = &o.rrule {
            let line = format!("RRULE:{}", rule.trim_start_matches("RRULE:"));
            guards::ical::parse_recurrence(&[line.as_str()]).map_err(|e| e.to_string())?;
            body["recurrence"] = json!([line]);
        }
        let owner = cal.owner.clone();
        let id = base32hex_id(26);
        self.insert_event(&cal, &owner, &id, body, true)?;
        Ok(id)
    }

    fn move_event(
        &mut self,
        calendar_id: &str,
        event_id: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<(), String> {
        let cal = self.calendar_any(calendar_id).ok_or("no such calendar")?;
        let i = self.find(&cal.id, event_id).ok_or("no such event")?;
        if end_ms < start_ms {
            return Err("the end is before the start".into());
        }
        let all_day = self.events[i].body["start"].get("date").is_some();
        let (start, end) = times_json(start_ms, end_ms, all_day, cal.tz(), &cal.time_zone);
        let ev = &mut self.events[i];
        ev.body["start"] = start;
        ev.body["end"] = end;
        let seq = ev.body["sequence"].as_i64().unwrap_or(0) + 1;
        ev.body["sequence"] = json!(seq);
        self.touch(i);
        Ok(())
    }

    fn delete_event(&mut self, calendar_id: &str, event_id: &str) -> Result<(), String> {
        let cal = self.calendar_any(calendar_id).ok_or("no such calendar")?;
        let i = self.find(&cal.id, event_id).ok_or("no such event")?;
        if self.events[i].deleted {
            return Err("already deleted".into());
        }
        self.events[i].deleted = true;
        self.events[i].body["status"] = json!("cancelled");
        self.touch(i);
        Ok(())
    }

    fn delete_calendar(&mut self, calendar_id: &str) -> Result<(), String> {
        let c = self
            .calendars
            .iter_mut()
            .find(|c| c.id == calendar_id && !c.deleted)
            .ok_or("no such calendar")?;
        if c.primary {
            return Err("a primary calendar cannot be deleted".into());
        }
        c.deleted = true;
        for ch in self
            .channels
            .iter_mut()
            .filter(|ch| ch.calendar_id == calendar_id)
        {
            ch.stopped = true;
        }
        self.dirty = true;
        Ok(())
    }

    fn delete_first_secondary(&mut self) {
        if let Some(id) = self
            .calendars
            .iter()
            .find(|c| !c.primary && !c.deleted)
            .map(|c| c.id.clone())
        {
            let _ = self.delete_calendar(&id);
        }
    }

    /// Stores a new event built from a client body (validated). `Err` is a message for 400.
    fn insert_event(
        &mut self,
        cal: &Cal,
        owner: &str,
        id: &str,
        mut body: Value,
        outside: bool,
    ) -> Result<usize, String> {
        validate_event(&body, cal)?;
        let now = rfc3339_utc(now_ms() as i64);
        let obj = body.as_object_mut().ok_or("the body is not an object")?;
        obj.insert("kind".into(), json!("calendar#event"));
        obj.insert("id".into(), json!(id));
        obj.entry("status").or_insert(json!("confirmed"));
        obj.insert(
            "htmlLink".into(),
            json!(format!(
                "https://www.google.com/calendar/event?eid={}",
                oauth::base64url(format!("{id} {}", cal.id).as_bytes())
            )),
        );
        obj.insert("created".into(), json!(now));
        obj.insert("creator".into(), json!({"email": owner, "self": true}));
        obj.insert(
            "organizer".into(),
            json!({"email": cal.id, "self": true, "displayName": cal.summary}),
        );
        obj.insert("iCalUID".into(), json!(format!("{id}@google.com")));
        obj.entry("sequence").or_insert(json!(0));
        obj.entry("reminders")
            .or_insert(json!({"useDefault": true}));
        obj.entry("eventType").or_insert(json!("default"));
        self.events.push(Ev {
            calendar_id: cal.id.clone(),
            id: id.to_owned(),
            seq: 0,
            deleted: false,
            outside,
            meet_pending: false,
            body,
        });
        let i = self.events.len() - 1;
        self.touch(i);
        Ok(i)
    }
}

/// `start`/`end` objects for an instant range in a calendar's zone.
fn times_json(start_ms: i64, end_ms: i64, all_day: bool, tz: Tz, tz_name: &str) -> (Value, Value) {
    if all_day {
        let first = date_in(start_ms, tz);
        let mut last = date_in(end_ms, tz);
        if last <= first {
            last = first.succ_opt().unwrap_or(first);
        }
        (
            json!({"date": first.format("%Y-%m-%d").to_string()}),
            json!({"date": last.format("%Y-%m-%d").to_string()}),
        )
    } else {
        (
            json!({"dateTime": rfc3339_in(start_ms, tz), "timeZone": tz_name}),
            json!({"dateTime": rfc3339_in(end_ms, tz), "timeZone": tz_name}),
        )
    }
}

/// The instant of an event's `start` or `end` (a `date` is midnight in the calendar's zone).
fn instant(v: &Value, cal_tz: Tz) -> Option<i64> {
    if let Some(d) = v.get("date").and_then(Value::as_str) {
        return midnight(parse_date(d)?, cal_tz);
    }
    let dt = v.get("dateTime").and_then(Value::as_str)?;
    parse_rfc3339(dt).or_else(|| {
        let tz = v.get("timeZone").and_then(Value::as_str).and_then(zone)?;
        crate::calendar_common::local_ms(parse_naive(dt)?, tz)
    })
}

fn validate_event(body: &Value, cal: &Cal) -> Result<(), String> {
    let obj = body
        .as_object()
        .ok_or("The request body is not an event.")?;
    let tz = cal.tz();
    let start = obj.get("start").ok_or("Missing start time.")?;
    let end = obj.get("end").ok_or("Missing end time.")?;
    let s = instant(start, tz).ok_or("Invalid start time.")?;
    let e = instant(end, tz).ok_or("Invalid end time.")?;
    if start.get("date").is_some() != end.get("date").is_some() {
        return Err("Start and end times must either both be date or both be dateTime.".into());
    }
    if e < s {
        return Err("The specified time range is empty.".into());
    }
    if let Some(status) = obj.get("status").and_then(Value::as_str)
        && !matches!(status, "confirmed" | "tentative" | "cancelled")
    {
        return Err("Invalid value for: status".into());
    }
    if let Some(rec) = obj.get("recurrence") {
        let lines: Vec<String> = rec
            .as_array()
            .ok_or("Invalid recurrence rule.")?
            .iter()
            .map(|l| {
                l.as_str()
                    .map(str::to_owned)
                    .ok_or("Invalid recurrence rule.")
            })
            .collect::<Result<_, _>>()?;
        guards::ical::parse_recurrence(&lines).map_err(|_| "Invalid recurrence rule.")?;
        if start.get("dateTime").is_some() && start.get("timeZone").is_none() && !lines.is_empty() {
            return Err("Missing time zone definition for start time.".into());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Google's error envelope.
struct GErr {
    status: StatusCode,
    domain: &'static str,
    reason: &'static str,
    message: String,
    retry_after: Option<u32>,
    /// `authError` answers carry `WWW-Authenticate`.
    www_authenticate: bool,
}

impl GErr {
    fn new(
        status: StatusCode,
        domain: &'static str,
        reason: &'static str,
        message: impl Into<String>,
    ) -> GErr {
        GErr {
            status,
            domain,
            reason,
            message: message.into(),
            retry_after: None,
            www_authenticate: false,
        }
    }

    fn bad(reason: &'static str, message: impl Into<String>) -> GErr {
        GErr::new(StatusCode::BAD_REQUEST, "global", reason, message)
    }

    fn not_found() -> GErr {
        GErr::new(StatusCode::NOT_FOUND, "global", "notFound", "Not Found")
    }

    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "errors": [{"domain": self.domain, "reason": self.reason, "message": self.message}],
                "code": self.status.as_u16(),
                "message": self.message,
            }
        });
        let mut r = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.www_authenticate {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
                ),
            );
        }
        r
    }
}

fn token_error(e: &TokenError) -> Response {
    let status = match e {
        TokenError::InvalidClient => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    };
    (
        status,
        axum::Json(json!({"error": e.code(), "error_description": e.description()})),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(decode_segment)
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let query = query_map(uri.query());
    match (method.as_str(), seg.as_slice()) {
        ("GET", ["o", "oauth2", "v2", "auth"]) => {
            authorize(&inner, &query, uri.query().unwrap_or_default())
        }
        ("POST", ["o", "oauth2", "v2", "auth"]) => decide(&inner, &oauth::parse_form(&body)),
        ("POST", ["token"]) => token(&inner, &headers, &body),
        ("POST", ["revoke"]) => revoke(&inner, &query, &body),
        ("GET", ["_standin"]) => admin(&inner),
        ("POST", ["_standin", action @ ..]) => {
            admin_action(&inner, action, &oauth::parse_form(&body))
        }
        (_, ["calendar", "v3", rest @ ..]) => {
            match api(&inner, &method, rest, &query, &headers, &body) {
                Ok((status, _)) if status == StatusCode::NO_CONTENT => status.into_response(),
                Ok((status, value)) => (status, axum::Json(value)).into_response(),
                Err(e) => e.into_response(),
            }
        }
        _ => GErr::not_found().into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// OAuth
// ---------------------------------------------------------------------------------------------

fn error_page(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = format!(
        "<h1>{}</h1><p class=\"alert\">{}</p>",
        esc(title),
        esc(detail)
    );
    (status, Html(page(title, &body, false))).into_response()
}

/// Validates an authorization request. `Err(page)` for what Google shows instead of
/// redirecting; `Ok(Err(url))` for an error redirect.
/// `Err` is the answer instead: an error page (what the provider shows rather than
/// redirecting to an unknown client or URI), or an error redirect.
fn check_auth_request(inner: &Inner, req: &AuthRequest) -> Result<(), Box<Response>> {
    if req.client_id != inner.cfg.client_id {
        return Err(Box::new(error_page(
            StatusCode::UNAUTHORIZED,
            "Error 401: invalid_client",
            "The OAuth client was not found.",
        )));
    }
    if !inner.client().allows_redirect(&req.redirect_uri) {
        return Err(Box::new(error_page(
            StatusCode::BAD_REQUEST,
            "Error 400: redirect_uri_mismatch",
            "The redirect URI in the request does not match the ones authorized for the OAuth client.",
        )));
    }
    let fail = |params: &[(&str, &str)]| -> Result<(), Box<Response>> {
        Err(Box::new(
            Redirect::to(&req.redirect_with(params)).into_response(),
        ))
    };
    if req.response_type != "code" {
        return fail(&[("error", "unsupported_response_type")]);
    }
    if req.scopes.is_empty() {
        return fail(&[
            ("error", "invalid_request"),
            ("error_description", "Missing required parameter: scope"),
        ]);
    }
    if req.code_challenge.is_some()
        && !matches!(req.code_challenge_method.as_str(), "S256" | "plain")
    {
        return fail(&[
            ("error", "invalid_request"),
            ("error_description", "Invalid code_challenge_method"),
        ]);
    }
    Ok(())
}

/// The scopes as Google names them in answers (short names get the URL prefix).
fn full_scopes(scopes: &[String]) -> Vec<String> {
    scopes
        .iter()
        .map(|s| {
            if s.starts_with("https://") || matches!(s.as_str(), "openid" | "email" | "profile") {
                s.clone()
            } else {
                format!("{SCOPE_PREFIX}{s}")
            }
        })
        .collect()
}

fn approve(inner: &Inner, req: &AuthRequest, account: &str, scopes: Vec<String>) -> Response {
    let scopes = full_scopes(&scopes);
    let code = inner.mutate(|s| {
        s.dirty = true;
        s.oauth.issue_code(req, account, scopes.clone(), now_ms())
    });
    Redirect::to(&req.redirect_with(&[
        ("code", &code),
        ("scope", &scopes.join(" ")),
        ("authuser", "0"),
        ("prompt", "consent"),
    ]))
    .into_response()
}

fn authorize(inner: &Inner, q: &HashMap<String, String>, raw_query: &str) -> Response {
    let req = AuthRequest::from_query(q);
    if let Err(answer) = check_auth_request(inner, &req) {
        return *answer;
    }
    if let Some(account) = &inner.cfg.auto_approve {
        return approve(inner, &req, account, req.scopes.clone());
    }
    let accounts: Vec<(String, String)> = lock(&inner.store)
        .accounts
        .iter()
        .map(|a| (a.email.clone(), a.name.clone()))
        .collect();
    Html(oauth::consent_page(
        "Google",
        "/o/oauth2/v2/auth",
        raw_query,
        &req,
        &accounts,
    ))
    .into_response()
}

fn decide(inner: &Inner, form: &HashMap<String, String>) -> Response {
    let q = query_map(form.get("query").map(String::as_str));
    let req = AuthRequest::from_query(&q);
    if let Err(answer) = check_auth_request(inner, &req) {
        return *answer;
    }
    if form.get("decision").map(String::as_str) != Some("allow") {
        return Redirect::to(&req.redirect_with(&[("error", "access_denied")])).into_response();
    }
    let account = form.get("account").cloned().unwrap_or_default();
    if !lock(&inner.store)
        .accounts
        .iter()
        .any(|a| a.email == account)
    {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Choose an account",
            "Pick one of the accounts listed.",
        );
    }
    let ticked: Vec<String> = form
        .get("scope")
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    // Only what was asked for can be granted.
    let granted: Vec<String> = req
        .scopes
        .iter()
        .filter(|s| ticked.contains(s))
        .cloned()
        .collect();
    approve(inner, &req, &account, granted)
}

fn fake_id_token(inner: &Inner, account: &str) -> String {
    let header = oauth::base64url(br#"{"alg":"RS256","kid":"standin","typ":"JWT"}"#);
    let now = now_ms() / 1000;
    let payload = json!({
        "iss": "https://accounts.google.com", "aud": inner.cfg.client_id, "azp": inner.cfg.client_id,
        "sub": hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(account.as_bytes())[..10]),
        "email": account, "email_verified": true, "iat": now, "exp": now + 3600,
    });
    format!(
        "{header}.{}.{}",
        oauth::base64url(payload.to_string().as_bytes()),
        oauth::base64url(b"stand-in, not signed")
    )
}

fn token(inner: &Inner, headers: &HeaderMap, body: &[u8]) -> Response {
    let form = oauth::parse_form(body);
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !inner.client().authenticated(&form, auth) {
        return token_error(&TokenError::InvalidClient);
    }
    let ttl = inner.cfg.access_token_ttl.as_secs().max(1);
    let epochs = inner.epochs();
    let prefixes = ("ya29.a0", "1//0g");
    let result = inner.mutate(|s| {
        s.dirty = true;
        match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => s.oauth.exchange_code(
                &form,
                &inner.cfg.client_id,
                ttl,
                now_ms(),
                epochs,
                false,
                prefixes,
            ),
            Some("refresh_token") => s.oauth.refresh(
                &form,
                &inner.cfg.client_id,
                ttl,
                now_ms(),
                epochs,
                false,
                prefixes,
            ),
            _ => Err(TokenError::UnsupportedGrantType),
        }
    });
    match result {
        Ok(issued) => {
            let mut answer = json!({
                "access_token": issued.access_token,
                "expires_in": issued.expires_in,
                "scope": issued.scopes.join(" "),
                "token_type": "Bearer",
            });
            if let Some(rt) = &issued.refresh_token {
                answer["refresh_token"] = json!(rt);
            }
            if issued.scopes.iter().any(|s| s == "openid") {
                answer["id_token"] = json!(fake_id_token(inner, &issued.account));
            }
            let mut r = axum::Json(answer).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => token_error(&e),
    }
}

fn revoke(inner: &Inner, query: &HashMap<String, String>, body: &[u8]) -> Response {
    let form = oauth::parse_form(body);
    let Some(token) = form.get("token").or_else(|| query.get("token")).cloned() else {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_request", "error_description": "Missing required parameter: token"}))).into_response();
    };
    let epochs = inner.epochs();
    if inner.mutate(|s| {
        s.dirty = true;
        s.oauth.revoke(&token, epochs)
    }) {
        axum::Json(json!({})).into_response()
    } else {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"error": "invalid_token", "error_description": "Token expired or revoked"}),
            ),
        )
            .into_response()
    }
}

// ---------------------------------------------------------------------------------------------
// The Calendar API
// ---------------------------------------------------------------------------------------------

type ApiResult = Result<(StatusCode, Value), GErr>;

const READ_EVENT_SCOPES: [&str; 5] = [
    "calendar",
    "calendar.readonly",
    "calendar.events",
    "calendar.events.readonly",
    "calendar.events.owned",
];
const WRITE_EVENT_SCOPES: [&str; 3] = ["calendar", "calendar.events", "calendar.events.owned"];
const LIST_SCOPES: [&str; 4] = [
    "calendar",
    "calendar.readonly",
    "calendar.calendarlist",
    "calendar.calendarlist.readonly",
];

fn has_scope(granted: &[String], wanted: &[&str]) -> bool {
    granted.iter().any(|g| {
        wanted
            .iter()
            .any(|w| g.strip_prefix(SCOPE_PREFIX) == Some(w))
    })
}

fn api(
    inner: &Inner,
    method: &Method,
    rest: &[&str],
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult {
    if inner.cfg.faults.delete_calendar_next.load(Ordering::SeqCst) {
        inner.mutate(|_| ());
    }
    match tripped(&inner.cfg.faults) {
        Some(Tripped::Down) => {
            return Err(GErr::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "global",
                "backendError",
                "The service is currently unavailable.",
            ));
        }
        Some(Tripped::Fail) => {
            return Err(GErr::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "global",
                "backendError",
                "Backend Error",
            ));
        }
        Some(Tripped::RateLimited {
            status_429,
            retry_after,
        }) => {
            let status = if status_429 {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::FORBIDDEN
            };
            let mut e = GErr::new(
                status,
                "usageLimits",
                "rateLimitExceeded",
                "Rate Limit Exceeded",
            );
            e.retry_after = (retry_after > 0).then_some(retry_after);
            return Err(e);
        }
        None => {}
    }
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let (account, scopes) = lock(&inner.store)
        .oauth
        .check(auth, now_ms(), inner.epochs())
        .map_err(|e| {
            let mut err = GErr::new(
                StatusCode::UNAUTHORIZED,
                "global",
                "authError",
                match e {
                    AccessError::Missing => "Login Required.",
                    AccessError::Invalid => "Invalid Credentials",
                },
            );
            err.www_authenticate = true;
            err
        })?;
    let need = |wanted: &[&str]| -> Result<(), GErr> {
        if has_scope(&scopes, wanted) {
            Ok(())
        } else {
            Err(GErr::new(
                StatusCode::FORBIDDEN,
                "global",
                "insufficientPermissions",
                "Request had insufficient authentication scopes.",
            ))
        }
    };
    let m = method.as_str();
    match (m, rest) {
        ("GET", ["users", "me", "calendarList"]) => {
            need(&LIST_SCOPES)?;
            Ok((StatusCode::OK, calendar_list(inner, &account, q)))
        }
        ("GET", ["users", "me", "calendarList", id]) => {
            need(&LIST_SCOPES)?;
            let s = lock(&inner.store);
            let cal = s
                .calendar_for(id, &account)
                .filter(|c| !c.deleted)
                .ok_or_else(GErr::not_found)?;
            Ok((StatusCode::OK, list_entry(cal)))
        }
        ("GET", ["calendars", cal, "events"]) => {
            need(&READ_EVENT_SCOPES)?;
            let s = lock(&inner.store);
            let cal = s
                .calendar_for(cal, &account)
                .filter(|c| !c.deleted)
                .ok_or_else(GErr::not_found)?
                .clone();
            list_events(
                &s,
                &cal,
                q,
                inner.cfg.faults.sync_epoch.load(Ordering::SeqCst),
            )
            .map(|v| (StatusCode::OK, v))
        }
        ("POST", ["calendars", cal, "events", "watch"]) => {
            need(&READ_EVENT_SCOPES)?;
            watch(inner, &account, cal, body)
        }
        ("POST", ["calendars", cal, "events"]) => {
            need(&WRITE_EVENT_SCOPES)?;
            insert(inner, &account, cal, q, body)
        }
        ("GET", ["calendars", cal, "events", id]) => {
            need(&READ_EVENT_SCOPES)?;
            inner.mutate(|s| {
                let cal = s
                    .calendar_for(cal, &account)
                    .filter(|c| !c.deleted)
                    .ok_or_else(GErr::not_found)?
                    .clone();
                let i = s.find(&cal.id, id).ok_or_else(GErr::not_found)?;
                if s.events[i].meet_pending {
                    s.events[i].meet_pending = false;
                    fill_meet(&mut s.events[i].body);
                    s.touch(i);
                    // Filling in a link is not a change the user made: no push for it.
                    s.changed.clear();
                }
                Ok((StatusCode::OK, s.events[i].body.clone()))
            })
        }
        ("PATCH" | "PUT", ["calendars", cal, "events", id]) => {
            need(&WRITE_EVENT_SCOPES)?;
            update(inner, &account, cal, id, q, headers, body, m == "PUT")
        }
        ("DELETE", ["calendars", cal, "events", id]) => {
            need(&WRITE_EVENT_SCOPES)?;
            inner.mutate(|s| {
                let cal = s
                    .calendar_for(cal, &account)
                    .filter(|c| !c.deleted)
                    .ok_or_else(GErr::not_found)?
                    .clone();
                let i = s.find(&cal.id, id).ok_or_else(GErr::not_found)?;
                if s.events[i].deleted {
                    return Err(GErr::new(
                        StatusCode::GONE,
                        "global",
                        "deleted",
                        "Resource has been deleted",
                    ));
                }
                if let Some(etag) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
                    && s.events[i].body["etag"].as_str() != Some(etag)
                {
                    return Err(GErr::new(
                        StatusCode::PRECONDITION_FAILED,
                        "global",
                        "conditionNotMet",
                        "Precondition Failed",
                    ));
                }
                s.events[i].deleted = true;
                s.events[i].body["status"] = json!("cancelled");
                s.touch(i);
                Ok((StatusCode::NO_CONTENT, Value::Null))
            })
        }
        ("POST", ["channels", "stop"]) => {
            let v: Value =
                serde_json::from_slice(body).map_err(|_| GErr::bad("parseError", "Parse Error"))?;
            let id = v["id"].as_str().unwrap_or_default().to_owned();
            let rid = v["resourceId"].as_str().unwrap_or_default().to_owned();
            inner.mutate(|s| {
                let ch = s
                    .channels
                    .iter_mut()
                    .find(|c| c.id == id && c.resource_id == rid && !c.stopped)
                    .ok_or_else(|| {
                        GErr::new(
                            StatusCode::NOT_FOUND,
                            "global",
                            "notFound",
                            format!("Channel '{id}' not found for project"),
                        )
                    })?;
                ch.stopped = true;
                s.dirty = true;
                Ok((StatusCode::NO_CONTENT, Value::Null))
            })
        }
        _ => Err(GErr::not_found()),
    }
}

fn list_entry(c: &Cal) -> Value {
    let mut v = json!({
        "kind": "calendar#calendarListEntry",
        "etag": etag(c.id.len() as u64),
        "id": c.id,
        "summary": c.summary,
        "timeZone": c.time_zone,
        "colorId": "14",
        "backgroundColor": "#9fe1e7",
        "foregroundColor": "#000000",
        "selected": true,
        "accessRole": "owner",
        "defaultReminders": [],
        "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
    });
    if c.primary {
        v["primary"] = json!(true);
    }
    if c.deleted {
        v["deleted"] = json!(true);
    }
    v
}

fn calendar_list(inner: &Inner, account: &str, q: &HashMap<String, String>) -> Value {
    let show_deleted = q.get("showDeleted").is_some_and(|v| v == "true");
    let s = lock(&inner.store);
    let items: Vec<Value> = s
        .calendars
        .iter()
        .filter(|c| c.owner == account && (show_deleted || !c.deleted))
        .map(list_entry)
        .collect();
    json!({"kind": "calendar#calendarList", "etag": etag(s.seq), "nextSyncToken": format!("calList{}", s.seq), "items": items})
}

/// Encodes an opaque token: the fields joined, hex-encoded, with a short prefix.
fn encode_token(prefix: &str, fields: &[String]) -> String {
    format!("{prefix}{}", hex::encode(fields.join("|")))
}

fn decode_token(prefix: &str, token: &str) -> Option<Vec<String>> {
    let raw = hex::decode(token.strip_prefix(prefix)?).ok()?;
    Some(
        String::from_utf8(raw)
            .ok()?
            .split('|')
            .map(str::to_owned)
            .collect(),
    )
}

fn gone() -> GErr {
    GErr::new(
        StatusCode::GONE,
        "calendar",
        "fullSyncRequired",
        "Sync token is no longer valid, a full sync is required.",
    )
}

fn list_events(
    s: &Store,
    cal: &Cal,
    q: &HashMap<String, String>,
    epoch: u32,
) -> Result<Value, GErr> {
    let flag = |k: &str| q.get(k).map(String::as_str);
    let single = flag("singleEvents") == Some("true");
    let show_deleted = flag("showDeleted") == Some("true");
    let order = flag("orderBy");
    let max: usize = match flag("maxResults") {
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| GErr::bad("invalid", "Invalid value for: maxResults"))?
            .min(2500),
        None => 250,
    };
    let tz = cal.tz();
    let time = |k: &str| -> Result<Option<i64>, GErr> {
        match flag(k) {
            None => Ok(None),
            Some(v) => parse_rfc3339(v)
                .map(Some)
                .ok_or_else(|| GErr::bad("badRequest", format!("Bad Request: {k}"))),
        }
    };
    let (tmin, tmax) = (time("timeMin")?, time("timeMax")?);
    if let (Some(a), Some(b)) = (tmin, tmax)
        && b <= a
    {
        return Err(GErr::bad(
            "timeRangeEmpty",
            "The specified time range is empty.",
        ));
    }
    match order {
        None | Some("updated") => {}
        Some("startTime") if single => {}
        Some(_) => {
            return Err(GErr::bad(
                "badRequest",
                "The requested ordering is not available for the particular query.",
            ));
        }
    }

    // Where this page starts: (snapshot seq, changes since, offset).
    let mut since: Option<u64> = None;
    let mut snapshot = s.seq;
    let mut offset = 0usize;
    if let Some(token) = flag("syncToken") {
        for k in [
            "timeMin",
            "timeMax",
            "orderBy",
            "q",
            "iCalUID",
            "updatedMin",
            "privateExtendedProperty",
            "sharedExtendedProperty",
        ] {
            if q.contains_key(k) {
                return Err(GErr::bad(
                    "invalid",
                    format!("Sync token cannot be used with {k}."),
                ));
            }
        }
        if single {
            return Err(gone());
        }
        let f = decode_token("CPj", token).ok_or_else(gone)?;
        match f.as_slice() {
            [e, c, seq] if *e == epoch.to_string() && *c == cal.id => {
                since = Some(seq.parse().map_err(|_| gone())?)
            }
            _ => return Err(gone()),
        }
    }
    if let Some(token) = flag("pageToken") {
        let f = decode_token("EjY", token)
            .ok_or_else(|| GErr::bad("invalid", "Invalid page token."))?;
        match f.as_slice() {
            [e, c, snap, sn, off] if *c == cal.id => {
                if *e != epoch.to_string() && sn != "-" {
                    return Err(gone());
                }
                snapshot = snap
                    .parse()
                    .map_err(|_| GErr::bad("invalid", "Invalid page token."))?;
                since = if sn == "-" { None } else { sn.parse().ok() };
                offset = off
                    .parse()
                    .map_err(|_| GErr::bad("invalid", "Invalid page token."))?;
            }
            _ => return Err(GErr::bad("invalid", "Invalid page token.")),
        }
    }

    let mut items: Vec<(i64, u64, Value)> = Vec::new();
    for e in s
        .events
        .iter()
        .filter(|e| e.calendar_id == cal.id && e.seq <= snapshot)
    {
        if let Some(since) = since {
            if e.seq > since {
                items.push((
                    0,
                    e.seq,
                    if e.deleted {
                        deleted_item(e)
                    } else {
                        e.body.clone()
                    },
                ));
            }
            continue;
        }
        if e.deleted && !show_deleted {
            continue;
        }
        let start = instant(&e.body["start"], tz).unwrap_or(0);
        let end = instant(&e.body["end"], tz).unwrap_or(start);
        let recurring = e.body["recurrence"]
            .as_array()
            .is_some_and(|r| !r.is_empty());
        if single && recurring && !e.deleted {
            let from = tmin.unwrap_or(now_ms() as i64 - 365 * DAY_MS);
            let to = tmax.unwrap_or(from + 2 * 365 * DAY_MS);
            for (st, inst) in instances(e, cal, from, to) {
                items.push((st, e.seq, inst));
            }
            continue;
        }
        if !recurring && tmin.is_some_and(|t| end <= t && !(end == start && start >= t)) {
            continue;
        }
        if tmax.is_some_and(|t| start >= t) {
            continue;
        }
        items.push((
            start,
            e.seq,
            if e.deleted {
                deleted_item(e)
            } else {
                e.body.clone()
            },
        ));
    }
    match order {
        Some("startTime") => items.sort_by_key(|(st, seq, _)| (*st, *seq)),
        _ => items.sort_by_key(|(_, seq, _)| *seq),
    }
    let total = items.len();
    let page: Vec<Value> = items
        .into_iter()
        .skip(offset)
        .take(max)
        .map(|(_, _, v)| v)
        .collect();
    let mut answer = json!({
        "kind": "calendar#events",
        "etag": etag(snapshot),
        "summary": cal.summary,
        "description": "",
        "updated": rfc3339_utc(now_ms() as i64),
        "timeZone": cal.time_zone,
        "accessRole": "owner",
        "defaultReminders": [],
        "items": page,
    });
    if offset + max < total {
        let sn = since.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
        answer["nextPageToken"] = json!(encode_token(
            "EjY",
            &[
                epoch.to_string(),
                cal.id.clone(),
                snapshot.to_string(),
                sn,
                (offset + max).to_string()
            ]
        ));
    } else if order.is_none() && !single {
        answer["nextSyncToken"] = json!(encode_token(
            "CPj",
            &[epoch.to_string(), cal.id.clone(), snapshot.to_string()]
        ));
    }
    Ok(answer)
}

/// What a deleted event looks like in a list: only what Google guarantees.
fn deleted_item(e: &Ev) -> Value {
    json!({"kind": "calendar#event", "etag": etag(e.seq), "id": e.id, "status": "cancelled"})
}

/// The instances of a recurring event inside `[from, to)`, with Google's instance ids.
fn instances(e: &Ev, cal: &Cal, from: i64, to: i64) -> Vec<(i64, Value)> {
    use guards::ical::{DateOrTime, Event, IcalDuration, TzResolver, expand, parse_recurrence};
    let tz = cal.tz();
    let body = &e.body;
    let lines: Vec<String> = body["recurrence"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let Ok(rec) = parse_recurrence(&lines) else {
        return Vec::new();
    };
    let all_day = body["start"].get("date").is_some();
    let start_ms = instant(&body["start"], tz).unwrap_or(0);
    let end_ms = instant(&body["end"], tz).unwrap_or(start_ms);
    let zone_name = body["start"]["timeZone"]
        .as_str()
        .unwrap_or(&cal.time_zone)
        .to_owned();
    let ev_tz = zone(&zone_name).unwrap_or(tz);
    let dtstart = if all_day {
        DateOrTime::Date(date_in(start_ms, tz))
    } else {
        let local = chrono::DateTime::from_timestamp_millis(start_ms)
            .unwrap_or_default()
            .with_timezone(&ev_tz)
            .naive_local();
        DateOrTime::Zoned {
            local,
            tzid: ev_tz.name().to_owned(),
        }
    };
    let duration = if all_day {
        IcalDuration {
            days: ((end_ms - start_ms) / DAY_MS).max(1),
            seconds: 0,
        }
    } else {
        IcalDuration {
            days: 0,
            seconds: (end_ms - start_ms) / 1000,
        }
    };
    let ev = Event {
        uid: e.id.clone(),
        dtstart: Some(dtstart),
        duration: Some(duration),
        rrule: rec.rrule,
        exdates: rec.exdates,
        rdates: rec.rdates,
        ..Event::default()
    };
    expand(&[ev], from, to, &TzResolver::new(tz, &[]))
        .into_iter()
        .map(|iv| {
            let original = iv.recurrence_id_ms.unwrap_or(iv.start_ms);
            let mut inst = body.clone();
            let suffix = if all_day {
                date_in(original, tz).format("%Y%m%d").to_string()
            } else {
                chrono::DateTime::from_timestamp_millis(original)
                    .unwrap_or_default()
                    .format("%Y%m%dT%H%M%SZ")
                    .to_string()
            };
            let (start, end) = times_json(iv.start_ms, iv.end_ms, all_day, ev_tz, &zone_name);
            let (orig, _) = times_json(original, original, all_day, ev_tz, &zone_name);
            if let Some(o) = inst.as_object_mut() {
                o.remove("recurrence");
                o.insert("id".into(), json!(format!("{}_{suffix}", e.id)));
                o.insert("recurringEventId".into(), json!(e.id));
                o.insert("originalStartTime".into(), orig);
                o.insert("start".into(), start);
                o.insert("end".into(), end);
            }
            (iv.start_ms, inst)
        })
        .collect()
}

/// Adds a Meet link to an event with a `createRequest`.
fn fill_meet(body: &mut Value) {
    let code = meet_code();
    let uri = format!("https://meet.google.com/{code}");
    let request = body["conferenceData"]["createRequest"].clone();
    let mut create = request;
    create["status"] = json!({"statusCode": "success"});
    body["conferenceData"] = json!({
        "createRequest": create,
        "entryPoints": [
            {"entryPointType": "video", "uri": uri, "label": format!("meet.google.com/{code}")},
            {"entryPointType": "more", "uri": format!("https://tel.meet/{code}?pin=1234567890"), "pin": "1234567890"},
        ],
        "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet", "iconUri": "https://fonts.gstatic.com/s/i/productlogos/meet_2020q4/v6/web-512dp/logo_meet_2020q4_color_2x_web_512dp.png"},
        "conferenceId": code,
    });
    body["hangoutLink"] = json!(uri);
}

/// Handles `conferenceData.createRequest` on insert or patch: ignored without
/// `conferenceDataVersion=1`, as Google silently does; otherwise a link now or (fault) later.
/// Returns whether the link is pending.
fn apply_conference(
    body: &mut Value,
    q: &HashMap<String, String>,
    previous: Option<&Value>,
    late: bool,
) -> Result<bool, GErr> {
    let Some(create) = body
        .get("conferenceData")
        .and_then(|c| c.get("createRequest"))
        .cloned()
    else {
        return Ok(false);
    };
    if q.get("conferenceDataVersion").map(String::as_str) != Some("1") {
        if let Some(o) = body.as_object_mut() {
            match previous {
                Some(prev) => {
                    o.insert("conferenceData".into(), prev.clone());
                }
                None => {
                    o.remove("conferenceData");
                }
            }
        }
        return Ok(false);
    }
    let kind = create["conferenceSolutionKey"]["type"]
        .as_str()
        .unwrap_or_default();
    if kind != "hangoutsMeet" {
        return Err(GErr::bad("invalid", "Invalid conference type value."));
    }
    if create["requestId"].as_str().is_none_or(str::is_empty) {
        return Err(GErr::bad(
            "invalid",
            "Invalid conference create request: missing requestId.",
        ));
    }
    // The same requestId again: Google ignores the request and keeps what is there.
    if let Some(prev) = previous
        && prev["createRequest"]["requestId"] == create["requestId"]
    {
        body["conferenceData"] = prev.clone();
        return Ok(false);
    }
    if late {
        let mut pending = create.clone();
        pending["status"] = json!({"statusCode": "pending"});
        body["conferenceData"] = json!({"createRequest": pending, "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"}});
        return Ok(true);
    }
    fill_meet(body);
    Ok(false)
}

fn insert(
    inner: &Inner,
    account: &str,
    cal: &str,
    q: &HashMap<String, String>,
    body: &[u8],
) -> ApiResult {
    let mut value: Value =
        serde_json::from_slice(body).map_err(|_| GErr::bad("parseError", "Parse Error"))?;
    if !value.is_object() {
        return Err(GErr::bad("parseError", "Parse Error"));
    }
    let late = inner.cfg.faults.meeting_link_late.load(Ordering::SeqCst);
    inner.mutate(|s| {
        let cal = s
            .calendar_for(cal, account)
            .filter(|c| !c.deleted)
            .ok_or_else(GErr::not_found)?
            .clone();
        let id = match value.get("id") {
            Some(Value::String(id)) => {
                if !valid_event_id(id) {
                    return Err(GErr::bad("invalid", "Invalid resource id value."));
                }
                id.clone()
            }
            Some(_) => return Err(GErr::bad("invalid", "Invalid resource id value.")),
            None => base32hex_id(26),
        };
        if s.find(&cal.id, &id).is_some() {
            return Err(GErr::new(
                StatusCode::CONFLICT,
                "global",
                "duplicate",
                "The requested identifier already exists.",
            ));
        }
        if s.events.iter().filter(|e| e.calendar_id == cal.id).count() >= MAX_EVENTS_PER_CALENDAR {
            return Err(GErr::new(
                StatusCode::FORBIDDEN,
                "usageLimits",
                "quotaExceeded",
                "Calendar usage limits exceeded.",
            ));
        }
        let pending = apply_conference(&mut value, q, None, late)?;
        let i = s
            .insert_event(&cal, account, &id, value, false)
            .map_err(|m| GErr::bad("invalid", m))?;
        s.events[i].meet_pending = pending;
        Ok((StatusCode::OK, s.events[i].body.clone()))
    })
}

/// Merges a patch: objects merge key by key, everything else (arrays included) is replaced.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

const READ_ONLY_FIELDS: [&str; 9] = [
    "kind",
    "id",
    "etag",
    "htmlLink",
    "created",
    "updated",
    "creator",
    "iCalUID",
    "organizer",
];

#[allow(clippy::too_many_arguments)]
fn update(
    inner: &Inner,
    account: &str,
    cal: &str,
    id: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
    replace: bool,
) -> ApiResult {
    let patch: Value =
        serde_json::from_slice(body).map_err(|_| GErr::bad("parseError", "Parse Error"))?;
    let Value::Object(mut patch) = patch else {
        return Err(GErr::bad("parseError", "Parse Error"));
    };
    for k in READ_ONLY_FIELDS {
        patch.remove(k);
    }
    let late = inner.cfg.faults.meeting_link_late.load(Ordering::SeqCst);
    inner.mutate(|s| {
        let cal = s
            .calendar_for(cal, account)
            .filter(|c| !c.deleted)
            .ok_or_else(GErr::not_found)?
            .clone();
        let i = s.find(&cal.id, id).ok_or_else(GErr::not_found)?;
        if let Some(etag) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
            && s.events[i].body["etag"].as_str() != Some(etag)
        {
            return Err(GErr::new(
                StatusCode::PRECONDITION_FAILED,
                "global",
                "conditionNotMet",
                "Precondition Failed",
            ));
        }
        let old = s.events[i].body.clone();
        let mut next = if replace {
            let mut fresh = Map::new();
            for k in READ_ONLY_FIELDS
                .iter()
                .chain(["sequence", "reminders", "eventType"].iter())
            {
                if let Some(v) = old.get(*k) {
                    fresh.insert((*k).to_owned(), v.clone());
                }
            }
            let mut v = Value::Object(fresh);
            merge(&mut v, &Value::Object(patch.clone()));
            v
        } else {
            let mut v = old.clone();
            merge(&mut v, &Value::Object(patch.clone()));
            v
        };
        validate_event(&next, &cal).map_err(|m| GErr::bad("invalid", m))?;
        let pending = apply_conference(&mut next, q, old.get("conferenceData"), late)?;
        if next["start"] != old["start"] || next["end"] != old["end"] {
            next["sequence"] = json!(old["sequence"].as_i64().unwrap_or(0) + 1);
        }
        let status = next["status"].as_str().unwrap_or("confirmed").to_owned();
        let ev = &mut s.events[i];
        ev.deleted = status == "cancelled";
        ev.meet_pending |= pending;
        ev.body = next;
        s.touch(i);
        Ok((StatusCode::OK, s.events[i].body.clone()))
    })
}

fn watch(inner: &Inner, account: &str, cal: &str, body: &[u8]) -> ApiResult {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| GErr::bad("parseError", "Parse Error"))?;
    let id = v["id"]
        .as_str()
        .filter(|s| !s.is_empty() && s.len() <= 64)
        .ok_or_else(|| GErr::bad("required", "Required: id"))?
        .to_owned();
    if !matches!(v["type"].as_str(), Some("web_hook" | "webhook")) {
        return Err(GErr::bad("invalid", "Invalid value for: type"));
    }
    let address = v["address"].as_str().unwrap_or_default().to_owned();
    if !url::Url::parse(&address).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
        return Err(GErr::bad(
            "push.webhookUrlNotHttps",
            "WebHook callback must be HTTPS: ",
        ));
    }
    let token = v["token"]
        .as_str()
        .filter(|t| t.len() <= 256)
        .map(str::to_owned);
    let now = now_ms() as i64;
    let requested = match &v["expiration"] {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    let expiration = requested
        .unwrap_or(now + MAX_CHANNEL_MS)
        .min(now + MAX_CHANNEL_MS);
    let base = inner.base_url.clone();
    let (channel, hook) = inner.mutate(|s| {
        let cal = s
            .calendar_for(cal, account)
            .filter(|c| !c.deleted)
            .ok_or_else(GErr::not_found)?
            .clone();
        if s.channels.iter().any(|c| c.id == id) {
            return Err(GErr::bad(
                "channelIdNotUnique",
                format!("Channel id {id} not unique"),
            ));
        }
        if s.channels.len() >= MAX_CHANNELS {
            s.channels.retain(|c| !c.stopped && c.expiration_ms > now);
        }
        let ch = Channel {
            id: id.clone(),
            resource_id: oauth::random_token("", 27),
            calendar_id: cal.id.clone(),
            address,
            token: token.clone(),
            expiration_ms: expiration,
            message_number: 1,
            stopped: false,
        };
        let hook = push(&base, &ch, "sync");
        s.channels.push(ch.clone());
        s.dirty = true;
        Ok((ch, hook))
    })?;
    inner.outbox.push(hook);
    let mut answer = json!({
        "kind": "api#channel",
        "id": channel.id,
        "resourceId": channel.resource_id,
        "resourceUri": format!("{}/calendar/v3/calendars/{}/events?alt=json", inner.base_url, url::form_urlencoded::byte_serialize(channel.calendar_id.as_bytes()).collect::<String>()),
        "expiration": channel.expiration_ms.to_string(),
    });
    if let Some(t) = &channel.token {
        answer["token"] = json!(t);
    }
    Ok((StatusCode::OK, answer))
}

// ---------------------------------------------------------------------------------------------
// The admin page
// ---------------------------------------------------------------------------------------------

fn admin(inner: &Inner) -> Response {
    inner.mutate(|_| ());
    let s = lock(&inner.store);
    let epochs = inner.epochs();
    let mut body = format!(
        "<h1>Google Calendar stand-in</h1><p>OAuth: <code>{base}/o/oauth2/v2/auth</code>, \
         <code>{base}/token</code>, <code>{base}/revoke</code>; API: <code>{base}/calendar/v3</code>. \
         Client id <code>{client}</code>. Faults: {faults}.</p>",
        base = esc(&inner.base_url),
        client = esc(&inner.cfg.client_id),
        faults = esc(&inner.cfg.faults.describe()),
    );
    body.push_str("<form method=\"post\" action=\"/_standin/sync/expire\"><button class=\"secondary\">Expire every sync token (410 next time)</button></form>");
    for a in &s.accounts {
        let grants = s
            .oauth
            .live_grants(epochs)
            .into_iter()
            .filter(|g| g.account == a.email)
            .count();
        body.push_str(&format!(
            "<h2>{} &lt;{}&gt;</h2><p>{grants} live grant(s).</p>\
             <form method=\"post\" action=\"/_standin/grants/revoke\"><input type=\"hidden\" name=\"account\" value=\"{e}\">\
             <button class=\"secondary\">Revoke this account's access (invalid_grant)</button></form>",
            esc(&a.name),
            esc(&a.email),
            e = esc(&a.email),
        ));
        for c in s.calendars.iter().filter(|c| c.owner == a.email) {
            let tz = c.tz();
            body.push_str(&format!(
                "<h3>{}{}{}</h3><p class=\"note\">Id <code>{}</code>, zone {}.</p>",
                esc(&c.summary),
                if c.primary { " (primary)" } else { "" },
                if c.deleted { " — deleted" } else { "" },
                esc(&c.id),
                esc(&c.time_zone),
            ));
            if c.deleted {
                continue;
            }
            body.push_str("<table><thead><tr><th scope=\"col\">Summary</th><th scope=\"col\">Start</th><th scope=\"col\">End</th><th scope=\"col\">Status</th><th scope=\"col\">From</th><th scope=\"col\">Move or delete</th></tr></thead><tbody>");
            for e in s
                .events
                .iter()
                .filter(|e| e.calendar_id == c.id)
                .rev()
                .take(200)
            {
                let start = instant(&e.body["start"], tz).unwrap_or(0);
                let end = instant(&e.body["end"], tz).unwrap_or(start);
                let local = |ms: i64| {
                    chrono::DateTime::from_timestamp_millis(ms)
                        .unwrap_or_default()
                        .with_timezone(&tz)
                        .format("%Y-%m-%dT%H:%M")
                        .to_string()
                };
                let mut status = e.body["status"].as_str().unwrap_or("confirmed").to_owned();
                if e.body["recurrence"].is_array() {
                    status.push_str(", recurring");
                }
                if let Some(link) = e.body["hangoutLink"].as_str() {
                    status.push_str(&format!(", {link}"));
                }
                let actions = if e.deleted {
                    String::new()
                } else {
                    format!(
                        "<form method=\"post\" action=\"/_standin/events/move\"><input type=\"hidden\" name=\"calendar\" value=\"{cal}\"><input type=\"hidden\" name=\"id\" value=\"{id}\">\
                         <label for=\"mv{id}\">New start</label><input id=\"mv{id}\" type=\"datetime-local\" name=\"start\" value=\"{start}\" required>\
                         <label for=\"mm{id}\">Minutes</label><input id=\"mm{id}\" type=\"number\" name=\"minutes\" value=\"{mins}\" min=\"0\">\
                         <button class=\"secondary\">Move</button></form>\
                         <form method=\"post\" action=\"/_standin/events/delete\"><input type=\"hidden\" name=\"calendar\" value=\"{cal}\"><input type=\"hidden\" name=\"id\" value=\"{id}\">\
                         <button class=\"secondary\">Delete</button></form>",
                        cal = esc(&c.id),
                        id = esc(&e.id),
                        start = local(start),
                        mins = (end - start) / 60_000,
                    )
                };
                body.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{actions}</td></tr>",
                    esc(e.body["summary"].as_str().unwrap_or("(no title)")),
                    esc(&local(start)),
                    esc(&local(end)),
                    esc(&status),
                    if e.outside { "outside" } else { "API" },
                ));
            }
            body.push_str("</tbody></table>");
            let id = esc(&c.id);
            body.push_str(&format!(
                "<form method=\"post\" action=\"/_standin/events\"><input type=\"hidden\" name=\"calendar\" value=\"{id}\">\
                 <label for=\"s{id}\">Add an outside event: summary</label><input id=\"s{id}\" name=\"summary\" value=\"Dentist\" required>\
                 <label for=\"t{id}\">Start ({tz})</label><input id=\"t{id}\" type=\"datetime-local\" name=\"start\" required>\
                 <label for=\"m{id}\">Minutes</label><input id=\"m{id}\" type=\"number\" name=\"minutes\" value=\"60\" min=\"0\">\
                 <label for=\"r{id}\">Repeat (an RRULE, e.g. FREQ=WEEKLY;COUNT=4; empty for none)</label><input id=\"r{id}\" name=\"rrule\">\
                 <label><input type=\"checkbox\" name=\"all_day\" value=\"1\" style=\"width:auto\"> All day</label>\
                 <label><input type=\"checkbox\" name=\"free\" value=\"1\" style=\"width:auto\"> Show as free</label>\
                 <button class=\"primary\">Add the event</button></form>",
                tz = esc(&c.time_zone),
            ));
            if !c.primary {
                body.push_str(&format!(
                    "<form method=\"post\" action=\"/_standin/calendars/delete\"><input type=\"hidden\" name=\"calendar\" value=\"{id}\"><button class=\"secondary\">Delete this calendar</button></form>"
                ));
            }
        }
    }
    body.push_str("<h2>Watch channels</h2><table><thead><tr><th scope=\"col\">Id</th><th scope=\"col\">Calendar</th><th scope=\"col\">Address</th><th scope=\"col\">Messages</th><th scope=\"col\">State</th></tr></thead><tbody>");
    for c in &s.channels {
        let state = if c.stopped {
            "stopped"
        } else if c.expiration_ms <= now_ms() as i64 {
            "expired"
        } else {
            "live"
        };
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{state}</td></tr>",
            esc(&c.id),
            esc(&c.calendar_id),
            esc(c.address.split('?').next().unwrap_or_default()),
            c.message_number,
        ));
    }
    body.push_str("</tbody></table><h2>Push deliveries</h2><table><thead><tr><th scope=\"col\">At (UTC)</th><th scope=\"col\">State</th><th scope=\"col\">Channel</th><th scope=\"col\">Attempt</th><th scope=\"col\">Result</th></tr></thead><tbody>");
    drop(s);
    for d in inner.outbox.log().iter().rev().take(200) {
        body.push_str(&crate::whatsapp::delivery_row(d));
    }
    body.push_str("</tbody></table>");
    Html(page("Google Calendar stand-in", &body, true)).into_response()
}

fn admin_action(inner: &Inner, action: &[&str], form: &HashMap<String, String>) -> Response {
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let calendar = get("calendar");
    let tz = lock(&inner.store)
        .calendar_any(calendar)
        .map(|c| c.tz())
        .unwrap_or(Tz::UTC);
    let minutes: i64 = get("minutes").parse().unwrap_or(60).clamp(0, 60 * 24 * 366);
    let result: Result<(), String> = match action {
        ["events"] => match parse_form_local(get("start"), tz) {
            Some(start) => {
                let all_day = !get("all_day").is_empty();
                let end = if all_day {
                    start + DAY_MS.max(minutes * 60_000)
                } else {
                    start + minutes * 60_000
                };
                let ev = OutsideEvent {
                    summary: get("summary").trim().to_owned(),
                    start_ms: start,
                    end_ms: end,
                    all_day,
                    free: !get("free").is_empty(),
                    tentative: false,
                    rrule: Some(get("rrule").trim().to_owned()).filter(|r| !r.is_empty()),
                };
                inner.mutate(|s| s.add_outside(calendar, &ev)).map(|_| ())
            }
            None => Err("Give a start time.".into()),
        },
        ["events", "move"] => match parse_form_local(get("start"), tz) {
            Some(start) => {
                inner.mutate(|s| s.move_event(calendar, get("id"), start, start + minutes * 60_000))
            }
            None => Err("Give a start time.".into()),
        },
        ["events", "delete"] => inner.mutate(|s| s.delete_event(calendar, get("id"))),
        ["grants", "revoke"] => {
            inner.mutate(|s| {
                s.dirty = true;
                s.oauth.revoke_account(get("account"))
            });
            Ok(())
        }
        ["sync", "expire"] => {
            inner.cfg.faults.expire_sync_tokens();
            Ok(())
        }
        ["calendars", "delete"] => inner.mutate(|s| s.delete_calendar(calendar)),
        _ => return GErr::not_found().into_response(),
    };
    match result {
        Ok(()) => Redirect::to("/_standin").into_response(),
        Err(e) => error_page(StatusCode::BAD_REQUEST, "That did not work", &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_follow_googles_base32hex_rule() {
        assert!(valid_event_id("7e163156776242beba1c6729ea81755a"));
        assert!(valid_event_id(&base32hex_id(26)));
        assert!(!valid_event_id("abcd"));
        assert!(!valid_event_id("has-hyphens-0000"));
        assert!(!valid_event_id("UPPERCASE00"));
        assert!(!valid_event_id("wxyz00000"));
    }

    #[test]
    fn tokens_round_trip_and_refuse_other_prefixes() {
        let t = encode_token("CPj", &["3".into(), "a@b".into(), "17".into()]);
        assert_eq!(
            decode_token("CPj", &t),
            Some(vec!["3".into(), "a@b".into(), "17".into()])
        );
        assert_eq!(decode_token("EjY", &t), None);
        assert_eq!(decode_token("CPj", "CPjzz"), None);
    }

    #[test]
    fn patches_merge_objects_and_replace_arrays() {
        let mut v = json!({"a": {"x": 1, "y": 2}, "list": [1, 2], "s": "old"});
        merge(&mut v, &json!({"a": {"y": 3}, "list": [9], "s": "new"}));
        assert_eq!(v, json!({"a": {"x": 1, "y": 3}, "list": [9], "s": "new"}));
    }
}
