//! A local stand-in for the Microsoft identity platform and Microsoft Graph's calendar API,
//! so the portal's Microsoft 365 client connects a staff member's Outlook calendar in demos
//! and tests without a tenant, an app registration or a network.
//!
//! It speaks what `research/calendars.md` §2 documents, on one host (the portal takes the
//! login and Graph hosts as configuration; point both at [`GraphStandin::base_url`]):
//!
//! - Identity: `GET /{tenant}/oauth2/v2.0/authorize` (`common`, `organizations`,
//!   `consumers`, [`TENANT_ID`] or [`TENANT_DOMAIN`]) shows the account chooser with Allow and
//!   Deny; `POST /{tenant}/oauth2/v2.0/token` does `authorization_code` with PKCE and
//!   `refresh_token`. Every refresh **rotates** the refresh token: the answer carries a new one
//!   and the old one is refused from then on, so a client that forgets to store it finds out.
//!   Errors carry `error`, an `AADSTS…` `error_description`, `error_codes`, `timestamp`,
//!   `trace_id` and `correlation_id`. There is no revocation endpoint (as at Microsoft).
//! - Graph under `/v1.0`: `me`, `me/calendars`, `me/calendar`, `me/calendarView/delta` and
//!   `me/calendars/{id}/calendarView/delta` (startDateTime/endDateTime, then opaque
//!   `$skiptoken` in `@odata.nextLink` and `$deltatoken` in `@odata.deltaLink`; `@removed`
//!   rows for deleted events and events moved out of the window; `Prefer: odata.maxpagesize`
//!   and `outlook.timezone`, acknowledged in `Preference-Applied`; `410 syncStateNotFound`
//!   for an expired token), `me/calendars/{id}/calendarView` (windowed, `$top`/`$skip`),
//!   `POST me/calendars/{id}/events` and `me/events` (201; a repeated `transactionId` returns
//!   the event it made, 201 again), `isOnlineMeeting` with `teamsForBusiness` filling
//!   `onlineMeeting.joinUrl`, GET/PATCH/DELETE `me/events/{id}` (and under a calendar), with
//!   `@odata.etag` and `If-Match` (412), and `subscriptions` (POST performs the
//!   `validationToken` handshake against `notificationUrl` and `lifecycleNotificationUrl`,
//!   expecting the token echoed as text/plain within 10 s, before answering 201; PATCH renews,
//!   DELETE removes). Change notifications (`created`, `updated`, `deleted`, with
//!   `clientState`) are POSTed through the messaging [`Outbox`], retried on any non-2xx.
//! - Errors in Graph's shape: `401 InvalidAuthenticationToken`, `403 ErrorAccessDenied`,
//!   `404 ErrorItemNotFound`, `429 TooManyRequests` (always with `Retry-After`), `503
//!   ServiceNotAvailable`.
//!
//! Faults ([`CalendarFaults`]): the same switches as the Google stand-in (down, failing,
//! rate-limited, grants revoked, access tokens expired, delta tokens expired, a calendar
//! deleted, late meeting links) and the notification faults.
//!
//! `/_standin` lists accounts, calendars, subscriptions and events, with forms to add, move
//! and delete outside events; tests use [`GraphStandin::add_outside_event`] and friends.
//!
//! Not emulated: series masters (`seriesMaster` never appears in delta; a recurring outside
//! event is stored as its occurrences, a year of them at most), attendees' responses,
//! `$select`/`$filter` on calendarView, lifecycle notifications, rich notifications with
//! resource data, shared and group calendars.

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
    OutsideEvent, Tripped, date_in, decode_segment, graph_local, local_ms, midnight,
    parse_form_local, parse_naive, parse_rfc3339, query_map, rfc3339_utc, tripped, zone,
};
use crate::common::{esc, lock, now_ms, page};
use crate::controls::CalendarFaults;
use crate::oauth::{self, AccessError, AuthRequest, Client, Epochs, OAuthStore, TokenError};
use crate::outbox::{Outbox, OutboxConfig, OutboxDelivery, Webhook};

/// The stand-in's application (client) id.
pub const CLIENT_ID: &str = "5f3b6e1a-0d4c-4d8e-9b1a-57e0de5a0001";
/// Its client secret.
pub const CLIENT_SECRET: &str = "stoep~standin~graph~secret";
/// The stand-in tenant's id (also accepted: `common`, `organizations`, `consumers`).
pub const TENANT_ID: &str = "72f988bf-0000-4000-8000-57e0de5a7e57";
/// The stand-in tenant's domain.
pub const TENANT_DOMAIN: &str = "stoep.onmicrosoft.com";
/// The first seeded account (a default calendar and a "Clinic" one).
pub const ACCOUNT: &str = "thandi@stoep.onmicrosoft.com";
/// The second seeded account (a default calendar only).
pub const OTHER_ACCOUNT: &str = "sipho@stoep.onmicrosoft.com";

const MAX_BODY_BYTES: usize = 1024 * 1024;
const MAX_EVENTS: usize = 50_000;
const MAX_SUBSCRIPTIONS: usize = 1_000;
/// Outlook events: 10,080 minutes at most.
const MAX_SUBSCRIPTION_MINUTES: i64 = 10_080;
const MIN_SUBSCRIPTION_MINUTES: i64 = 45;
const DEFAULT_PAGE: usize = 50;
const DAY_MS: i64 = 86_400_000;

// ---------------------------------------------------------------------------------------------
// Configuration and public API
// ---------------------------------------------------------------------------------------------

/// A seeded account: its default calendar ("Calendar") and secondary ones by name.
#[derive(Clone, Debug)]
pub struct GraphAccountSeed {
    pub email: String,
    pub name: String,
    pub secondary_calendars: Vec<String>,
}

/// How the stand-in behaves. [`Default`]: the fixed client, any redirect URI, two accounts
/// ([`ACCOUNT`] with a "Clinic" calendar, [`OTHER_ACCOUNT`]), access tokens for an hour,
/// outside events entered in Africa/Johannesburg, a 10 s validation timeout, a short
/// notification retry schedule, no state file.
#[derive(Clone)]
pub struct GraphConfig {
    pub client_id: String,
    pub client_secret: String,
    /// Exact redirect URIs allowed; empty allows any http(s) URI.
    pub redirect_uris: Vec<String>,
    pub accounts: Vec<GraphAccountSeed>,
    /// The zone the admin page's forms are read in, and `originalStartTimeZone` of outside
    /// events (as its Windows name when it has one).
    pub time_zone: String,
    pub access_token_ttl: Duration,
    /// If set, `authorize` skips its page and approves for this account.
    pub auto_approve: Option<String>,
    /// How long the validation handshake may take (Graph: 10 s).
    pub validation_timeout: Duration,
    pub faults: Arc<CalendarFaults>,
    pub retry_schedule: Vec<Duration>,
    pub state_file: Option<PathBuf>,
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_uris: Vec::new(),
            accounts: vec![
                GraphAccountSeed {
                    email: ACCOUNT.into(),
                    name: "Thandi Nkosi".into(),
                    secondary_calendars: vec!["Clinic".into()],
                },
                GraphAccountSeed {
                    email: OTHER_ACCOUNT.into(),
                    name: "Sipho Dlamini".into(),
                    secondary_calendars: Vec::new(),
                },
            ],
            time_zone: "Africa/Johannesburg".into(),
            access_token_ttl: Duration::from_secs(3600),
            auto_approve: None,
            validation_timeout: Duration::from_secs(10),
            faults: Arc::default(),
            retry_schedule: [500, 1000, 2000, 4000]
                .into_iter()
                .map(Duration::from_millis)
                .collect(),
            state_file: None,
        }
    }
}

impl fmt::Debug for GraphConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"****")
            .field("redirect_uris", &self.redirect_uris)
            .field("accounts", &self.accounts)
            .field("faults", &self.faults)
            .field("state_file", &self.state_file)
            .finish_non_exhaustive()
    }
}

/// A running stand-in. Cheap to clone; it stops with the `shutdown` token.
#[derive(Clone)]
pub struct GraphStandin {
    inner: Arc<Inner>,
}

impl GraphStandin {
    /// Serves the stand-in on `listener` and starts the notification outbox. Loads
    /// `state_file` if it exists; seeds the configured accounts otherwise.
    pub async fn start(
        listener: TcpListener,
        cfg: GraphConfig,
        shutdown: CancellationToken,
    ) -> std::io::Result<GraphStandin> {
        let addr = listener.local_addr()?;
        let mut store: Store = match &cfg.state_file {
            Some(path) => crate::common::load_state(path, "Microsoft Graph").await?,
            None => Store::default(),
        };
        if !store.seeded {
            store.seed(&cfg);
        }
        let outbox = Outbox::start(
            OutboxConfig {
                name: "Microsoft Graph",
                retry_schedule: cfg.retry_schedule.clone(),
                timeout: Duration::from_secs(3),
                discard_on_4xx: false,
                user_agent: "Microsoft-Notifications/1.0".into(),
                faults: cfg.faults.webhooks.clone(),
            },
            shutdown.clone(),
        )?;
        let http = reqwest::Client::builder()
            .timeout(cfg.validation_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let inner = Arc::new(Inner {
            base_url: format!("http://{addr}"),
            cfg,
            store: Mutex::new(store),
            outbox,
            http,
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
                tracing::error!(error = %e, "the Microsoft Graph stand-in stopped serving");
            }
        });
        tracing::info!(base_url = %inner.base_url, "Microsoft Graph stand-in listening");
        Ok(GraphStandin { inner })
    }

    /// `http://127.0.0.1:PORT`: the stand-in for `login.microsoftonline.com` and
    /// `graph.microsoft.com` alike.
    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// `…/{tenant}/oauth2/v2.0/authorize`.
    pub fn authorize_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/authorize", self.inner.base_url)
    }

    /// `…/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.inner.base_url)
    }

    /// The Graph base (`…/v1.0`).
    pub fn graph_base(&self) -> String {
        format!("{}/v1.0", self.inner.base_url)
    }

    /// The fault switches.
    pub fn faults(&self) -> &Arc<CalendarFaults> {
        &self.inner.cfg.faults
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &GraphConfig {
        &self.inner.cfg
    }

    /// The calendars of an account, `(id, name)`, the default first, deleted ones left out.
    pub fn calendars(&self, email: &str) -> Vec<(String, String)> {
        lock(&self.inner.store)
            .calendars
            .iter()
            .filter(|c| c.owner == email && !c.deleted)
            .map(|c| (c.id.clone(), c.name.clone()))
            .collect()
    }

    /// The default calendar's id of an account.
    pub fn default_calendar(&self, email: &str) -> Option<String> {
        lock(&self.inner.store)
            .calendars
            .iter()
            .find(|c| c.owner == email && c.default)
            .map(|c| c.id.clone())
    }

    /// Adds an outside event (a recurring one as its occurrences); returns the first event's
    /// id. Subscriptions on the calendar are notified.
    pub fn add_outside_event(
        &self,
        calendar_id: &str,
        ev: &OutsideEvent,
    ) -> Result<String, String> {
        self.inner
            .mutate(|s| s.add_outside(&self.inner.cfg, calendar_id, ev))
    }

    /// Moves an event.
    pub fn move_event(&self, event_id: &str, start_ms: i64, end_ms: i64) -> Result<(), String> {
        self.inner
            .mutate(|s| s.move_event(event_id, start_ms, end_ms))
    }

    /// Deletes an event as the user would.
    pub fn delete_event(&self, event_id: &str) -> Result<(), String> {
        self.inner.mutate(|s| s.delete_event(event_id))
    }

    /// Every live event of a calendar, rendered in UTC as Graph would.
    pub fn events(&self, calendar_id: &str) -> Vec<Value> {
        let s = lock(&self.inner.store);
        s.events
            .iter()
            .filter(|e| e.calendar_id == calendar_id && !e.deleted)
            .map(|e| e.render(&s, Tz::UTC, "UTC", &self.inner.base_url))
            .collect()
    }

    /// Revokes every grant of an account (the user removed the app under My Apps).
    pub fn revoke_account(&self, email: &str) -> usize {
        self.inner.mutate(|s| {
            s.dirty = true;
            s.oauth.revoke_account(email)
        })
    }

    /// Deletes a secondary calendar.
    pub fn delete_calendar(&self, calendar_id: &str) -> Result<(), String> {
        self.inner.mutate(|s| s.delete_calendar(calendar_id))
    }

    /// The subscriptions, as Graph answers for them.
    pub fn subscriptions(&self) -> Vec<Value> {
        lock(&self.inner.store)
            .subscriptions
            .iter()
            .map(Sub::json)
            .collect()
    }

    /// Every notification delivery attempt (the last 5000), oldest first.
    pub fn deliveries(&self) -> Vec<OutboxDelivery> {
        self.inner.outbox.log()
    }

    /// Waits until no notification is pending or in flight.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        self.inner.outbox.wait_idle(timeout).await
    }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

struct Inner {
    cfg: GraphConfig,
    base_url: String,
    store: Mutex<Store>,
    outbox: Outbox,
    http: reqwest::Client,
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

    /// Runs one change; saves the state and sends the change notifications it caused.
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
        let changes = std::mem::take(&mut store.changes);
        let now = now_ms() as i64;
        for (event_id, calendar_id, change) in changes {
            let s = &*store;
            let Some(owner) = s
                .calendars
                .iter()
                .find(|c| c.id == calendar_id)
                .map(|c| c.owner.clone())
            else {
                continue;
            };
            let user_id = s.user_id(&owner);
            let etag = s
                .events
                .iter()
                .find(|e| e.id == event_id)
                .map(|e| e.etag())
                .unwrap_or_default();
            for sub in &s.subscriptions {
                if sub.expiration_ms <= now
                    || sub.owner != owner
                    || !sub.change_types.iter().any(|c| c == change)
                {
                    continue;
                }
                let watched = match &sub.calendar_id {
                    Some(id) => *id == calendar_id,
                    None => s.calendars.iter().any(|c| c.id == calendar_id && c.default),
                };
                if !watched {
                    continue;
                }
                let resource = format!("Users/{user_id}/Events/{event_id}");
                let body = json!({"value": [{
                    "subscriptionId": sub.id,
                    "subscriptionExpirationDateTime": rfc3339_utc(sub.expiration_ms),
                    "changeType": change,
                    "clientState": sub.client_state,
                    "tenantId": TENANT_ID,
                    "resource": resource,
                    "resourceData": {
                        "@odata.type": "#Microsoft.Graph.Event",
                        "@odata.id": resource,
                        "@odata.etag": etag,
                        "id": event_id,
                    },
                }]});
                self.outbox.push(Webhook {
                    url: sub.notification_url.clone(),
                    kind: change.to_owned(),
                    key: event_id.clone(),
                    body: body.to_string().into_bytes(),
                    headers: Vec::new(),
                    delay: Duration::ZERO,
                });
            }
        }
        if store.dirty {
            store.dirty = false;
            if let Some(path) = &self.cfg.state_file {
                crate::common::save_state(path, &*store, "Microsoft Graph");
            }
        }
        result
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Account {
    email: String,
    name: String,
    id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Cal {
    id: String,
    owner: String,
    name: String,
    default: bool,
    deleted: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Ev {
    id: String,
    calendar_id: String,
    seq: u64,
    deleted: bool,
    outside: bool,
    start_ms: i64,
    end_ms: i64,
    all_day: bool,
    /// `originalStartTimeZone` / `originalEndTimeZone` as written.
    start_zone: String,
    end_zone: String,
    transaction_id: Option<String>,
    join_url: Option<String>,
    meeting_pending: bool,
    kind: String,
    series_master_id: Option<String>,
    created_ms: i64,
    modified_ms: i64,
    /// The client's other fields (subject, body, showAs, location, attendees, ...).
    fields: Map<String, Value>,
}

impl Ev {
    fn etag(&self) -> String {
        format!("W/\"{}\"", change_key(self.seq))
    }

    /// The event as Graph returns it, times in `tz` (named `tz_name`).
    fn render(&self, s: &Store, tz: Tz, tz_name: &str, _base: &str) -> Value {
        let mut v = Value::Object(self.fields.clone());
        let owner = s
            .calendars
            .iter()
            .find(|c| c.id == self.calendar_id)
            .map(|c| c.owner.clone())
            .unwrap_or_default();
        let name = s
            .accounts
            .iter()
            .find(|a| a.email == owner)
            .map(|a| a.name.clone())
            .unwrap_or_default();
        let (start, end) = if self.all_day {
            // All-day events are midnight to midnight of the dates, in whatever zone is asked.
            let f = |ms: i64| {
                format!(
                    "{}T00:00:00.0000000",
                    date_in(ms, zone(&self.start_zone).unwrap_or(Tz::UTC)).format("%Y-%m-%d")
                )
            };
            (f(self.start_ms), f(self.end_ms))
        } else {
            (graph_local(self.start_ms, tz), graph_local(self.end_ms, tz))
        };
        let is_online = self
            .fields
            .get("isOnlineMeeting")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let online = match (&self.join_url, is_online) {
            (Some(url), true) => {
                json!({"joinUrl": url, "conferenceId": "123456789", "tollNumber": "+27 21 000 0000"})
            }
            _ => Value::Null,
        };
        let o = v.as_object_mut().map(|o| {
            o.insert("@odata.etag".into(), json!(self.etag()));
            o.insert("id".into(), json!(self.id));
            o.insert(
                "createdDateTime".into(),
                json!(rfc3339_utc(self.created_ms)),
            );
            o.insert(
                "lastModifiedDateTime".into(),
                json!(rfc3339_utc(self.modified_ms)),
            );
            o.insert("changeKey".into(), json!(change_key(self.seq)));
            o.insert(
                "iCalUId".into(),
                json!(format!(
                    "040000008200E00074C5B7101A82E008{}",
                    hex::encode(&self.id.as_bytes()[..self.id.len().min(16)]).to_uppercase()
                )),
            );
            o.insert("transactionId".into(), json!(self.transaction_id));
            o.insert("originalStartTimeZone".into(), json!(self.start_zone));
            o.insert("originalEndTimeZone".into(), json!(self.end_zone));
            o.insert("isAllDay".into(), json!(self.all_day));
            o.insert("isCancelled".into(), json!(false));
            o.insert("isOrganizer".into(), json!(true));
            o.insert("type".into(), json!(self.kind));
            o.insert("seriesMasterId".into(), json!(self.series_master_id));
            o.insert(
                "start".into(),
                json!({"dateTime": start, "timeZone": tz_name}),
            );
            o.insert("end".into(), json!({"dateTime": end, "timeZone": tz_name}));
            o.insert("onlineMeeting".into(), online);
            o.insert(
                "organizer".into(),
                json!({"emailAddress": {"name": name, "address": owner}}),
            );
            o.insert(
                "responseStatus".into(),
                json!({"response": "organizer", "time": "0001-01-01T00:00:00Z"}),
            );
            o.insert(
                "webLink".into(),
                json!(format!(
                    "https://outlook.office365.com/owa/?itemid={}&exvsurl=1&path=/calendar/item",
                    self.id
                )),
            );
            o.entry("subject").or_insert(json!(""));
            o.entry("showAs").or_insert(json!("busy"));
            o.entry("sensitivity").or_insert(json!("normal"));
            o.entry("isOnlineMeeting").or_insert(json!(false));
            o.entry("onlineMeetingProvider").or_insert(json!("unknown"));
            o.entry("body")
                .or_insert(json!({"contentType": "html", "content": ""}));
            o.entry("location").or_insert(json!({"displayName": ""}));
            o.entry("attendees").or_insert(json!([]));
            o.entry("recurrence").or_insert(Value::Null);
        });
        let _ = o;
        v
    }
}

fn change_key(seq: u64) -> String {
    oauth::base64url(format!("standin-change-{seq:08}").as_bytes())
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Sub {
    id: String,
    owner: String,
    resource: String,
    /// `None`: the default calendar (`me/events`).
    calendar_id: Option<String>,
    change_types: Vec<String>,
    notification_url: String,
    lifecycle_url: Option<String>,
    client_state: Option<String>,
    expiration_ms: i64,
    tls: String,
}

impl Sub {
    fn json(&self) -> Value {
        json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
            "id": self.id,
            "resource": self.resource,
            "applicationId": CLIENT_ID,
            "changeType": self.change_types.join(","),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": null,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": rfc3339_utc(self.expiration_ms),
            "creatorId": "standin-creator",
            "includeResourceData": false,
            "latestSupportedTlsVersion": self.tls,
            "encryptionCertificate": null,
            "encryptionCertificateId": null,
            "notificationUrlAppId": null,
        })
    }
}

#[derive(Default, Serialize, Deserialize)]
struct Store {
    seeded: bool,
    seq: u64,
    accounts: Vec<Account>,
    calendars: Vec<Cal>,
    events: Vec<Ev>,
    oauth: OAuthStore,
    subscriptions: Vec<Sub>,
    /// (event id, calendar id, change type) made in this mutation.
    #[serde(skip)]
    changes: Vec<(String, String, &'static str)>,
    #[serde(skip)]
    dirty: bool,
}

fn graph_id() -> String {
    format!("AAMkAD{}=", oauth::random_token("", 58))
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Store {
    fn seed(&mut self, cfg: &GraphConfig) {
        for a in &cfg.accounts {
            self.accounts.push(Account {
                email: a.email.clone(),
                name: a.name.clone(),
                id: new_uuid(),
            });
            self.calendars.push(Cal {
                id: graph_id(),
                owner: a.email.clone(),
                name: "Calendar".into(),
                default: true,
                deleted: false,
            });
            for name in &a.secondary_calendars {
                self.calendars.push(Cal {
                    id: graph_id(),
                    owner: a.email.clone(),
                    name: name.clone(),
                    default: false,
                    deleted: false,
                });
            }
        }
        self.seeded = true;
        self.dirty = true;
    }

    fn user_id(&self, email: &str) -> String {
        self.accounts
            .iter()
            .find(|a| a.email == email)
            .map(|a| a.id.clone())
            .unwrap_or_default()
    }

    fn calendar(&self, id: &str, owner: &str) -> Option<&Cal> {
        self.calendars
            .iter()
            .find(|c| c.id == id && c.owner == owner && !c.deleted)
    }

    fn default_calendar(&self, owner: &str) -> Option<&Cal> {
        self.calendars
            .iter()
            .find(|c| c.owner == owner && c.default && !c.deleted)
    }

    fn owner_of(&self, calendar_id: &str) -> Option<String> {
        self.calendars
            .iter()
            .find(|c| c.id == calendar_id)
            .map(|c| c.owner.clone())
    }

    fn touch(&mut self, i: usize, change: &'static str) {
        self.seq += 1;
        self.dirty = true;
        let ev = &mut self.events[i];
        ev.seq = self.seq;
        ev.modified_ms = now_ms() as i64;
        self.changes
            .push((ev.id.clone(), ev.calendar_id.clone(), change));
    }

    fn push_event(&mut self, ev: Ev) -> usize {
        self.events.push(ev);
        let i = self.events.len() - 1;
        self.touch(i, "created");
        i
    }

    fn add_outside(
        &mut self,
        cfg: &GraphConfig,
        calendar_id: &str,
        o: &OutsideEvent,
    ) -> Result<String, String> {
        let cal = self
            .calendars
            .iter()
            .find(|c| c.id == calendar_id && !c.deleted)
            .ok_or("no such calendar")?
            .clone();
        if o.end_ms < o.start_ms || o.summary.chars().count() > 1000 {
            return Err("the end is before the start, or the summary is too long".into());
        }
        let tz = zone(&cfg.time_zone).unwrap_or(Tz::UTC);
        let zone_name = windows_name(&cfg.time_zone);
        let mut fields = Map::new();
        fields.insert("subject".into(), json!(o.summary));
        fields.insert(
            "showAs".into(),
            json!(if o.free {
                "free"
            } else if o.tentative {
                "tentative"
            } else {
                "busy"
            }),
        );
        let (mut start, mut end) = (o.start_ms, o.end_ms);
        if o.all_day {
            start = midnight(date_in(o.start_ms, tz), tz).ok_or("bad date")?;
            let last =
                date_in(o.end_ms, tz).max(date_in(o.start_ms, tz).succ_opt().unwrap_or_default());
            end = midnight(last, tz).ok_or("bad date")?;
        }
        let mut starts = vec![(start, end)];
        let mut master = None;
        if let Some(rule) = &o.rrule {
            let rec = guards::ical::parse_recurrence(&[format!(
                "RRULE:{}",
                rule.trim_start_matches("RRULE:")
            )])
            .map_err(|e| e.to_string())?;
            let local = chrono::DateTime::from_timestamp_millis(start)
                .unwrap_or_default()
                .with_timezone(&tz)
                .naive_local();
            let ev = guards::ical::Event {
                uid: "outside".into(),
                dtstart: Some(guards::ical::DateOrTime::Zoned {
                    local,
                    tzid: tz.name().into(),
                }),
                duration: Some(guards::ical::IcalDuration {
                    days: 0,
                    seconds: (end - start) / 1000,
                }),
                rrule: rec.rrule,
                ..Default::default()
            };
            starts = guards::ical::expand(
                &[ev],
                start,
                start + 366 * DAY_MS,
                &guards::ical::TzResolver::new(tz, &[]),
            )
            .into_iter()
            .take(500)
            .map(|iv| (iv.start_ms, iv.end_ms))
            .collect();
            master = Some(graph_id());
        }
        if self.events.len() + starts.len() > MAX_EVENTS {
            return Err("too many events".into());
        }
        let now = now_ms() as i64;
        let mut first = None;
        for (s, e) in starts {
            let id = graph_id();
            first.get_or_insert(id.clone());
            self.push_event(Ev {
                id,
                calendar_id: cal.id.clone(),
                seq: 0,
                deleted: false,
                outside: true,
                start_ms: s,
                end_ms: e,
                all_day: o.all_day,
                start_zone: zone_name.clone(),
                end_zone: zone_name.clone(),
                transaction_id: None,
                join_url: None,
                meeting_pending: false,
                kind: if master.is_some() {
                    "occurrence".into()
                } else {
                    "singleInstance".into()
                },
                series_master_id: master.clone(),
                created_ms: now,
                modified_ms: now,
                fields: fields.clone(),
            });
        }
        first.ok_or_else(|| "the rule gives no occurrence".into())
    }

    fn find(&self, id: &str) -> Option<usize> {
        self.events.iter().position(|e| e.id == id && !e.deleted)
    }

    fn move_event(&mut self, id: &str, start_ms: i64, end_ms: i64) -> Result<(), String> {
        let i = self.find(id).ok_or("no such event")?;
        if end_ms < start_ms {
            return Err("the end is before the start".into());
        }
        self.events[i].start_ms = start_ms;
        self.events[i].end_ms = end_ms;
        if self.events[i].kind == "occurrence" {
            self.events[i].kind = "exception".into();
        }
        self.touch(i, "updated");
        Ok(())
    }

    fn delete_event(&mut self, id: &str) -> Result<(), String> {
        let i = self.find(id).ok_or("no such event")?;
        self.events[i].deleted = true;
        self.touch(i, "deleted");
        Ok(())
    }

    fn delete_calendar(&mut self, id: &str) -> Result<(), String> {
        let c = self
            .calendars
            .iter_mut()
            .find(|c| c.id == id && !c.deleted)
            .ok_or("no such calendar")?;
        if c.default {
            return Err("the default calendar cannot be deleted".into());
        }
        c.deleted = true;
        self.subscriptions
            .retain(|s| s.calendar_id.as_deref() != Some(id));
        self.dirty = true;
        Ok(())
    }

    fn delete_first_secondary(&mut self) {
        if let Some(id) = self
            .calendars
            .iter()
            .find(|c| !c.default && !c.deleted)
            .map(|c| c.id.clone())
        {
            let _ = self.delete_calendar(&id);
        }
    }
}

/// The Windows name of an IANA zone where CLDR has one (what Outlook writes), else the name.
fn windows_name(iana: &str) -> String {
    match iana {
        "Africa/Johannesburg" => "South Africa Standard Time".into(),
        "Europe/London" => "GMT Standard Time".into(),
        "Europe/Berlin" => "W. Europe Standard Time".into(),
        "America/New_York" => "Eastern Standard Time".into(),
        "UTC" | "Etc/UTC" => "UTC".into(),
        other => other.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Graph's error envelope.
struct GraphErr {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u32>,
}

impl GraphErr {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> GraphErr {
        GraphErr {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn bad(message: impl Into<String>) -> GraphErr {
        GraphErr::new(StatusCode::BAD_REQUEST, "ErrorInvalidRequest", message)
    }

    fn not_found() -> GraphErr {
        GraphErr::new(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )
    }

    fn into_response(self) -> Response {
        let body = json!({"error": {
            "code": self.code,
            "message": self.message,
            "innerError": {"date": rfc3339_utc(now_ms() as i64).replace(".000", ""), "request-id": new_uuid(), "client-request-id": new_uuid()},
        }});
        let mut r = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\""),
            );
        }
        r
    }
}

/// The AADSTS code of a token error.
fn aadsts(e: &TokenError) -> (u32, &'static str) {
    match e {
        TokenError::InvalidClient => (7_000_215, "Invalid client secret provided."),
        TokenError::UnsupportedGrantType => {
            (70_003, "The app requested an unsupported grant type.")
        }
        TokenError::InvalidRequest(d) => (900_144, d),
        TokenError::InvalidGrant(d) if d.contains("verifier") => (
            501_481,
            "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
        ),
        TokenError::InvalidGrant(d) if d.contains("already used") => (
            54_005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        ),
        TokenError::InvalidGrant(d) if d.contains("revoked") => (
            50_173,
            "The provided grant has expired due to it being revoked, a fresh auth token is needed.",
        ),
        TokenError::InvalidGrant(d) if d.contains("redirect_uri") => (
            50_148,
            "The redirect_uri doesn't match the one in the authorization request.",
        ),
        TokenError::InvalidGrant(_) => (
            70_008,
            "The provided authorization code or refresh token has expired due to inactivity.",
        ),
    }
}

fn token_error(e: &TokenError) -> Response {
    let status = match e {
        TokenError::InvalidClient => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    };
    let (code, text) = aadsts(e);
    let body = json!({
        "error": e.code(),
        "error_description": format!("AADSTS{code}: {text} Trace ID: {} Correlation ID: {} Timestamp: {}", new_uuid(), new_uuid(), rfc3339_utc(now_ms() as i64)),
        "error_codes": [code],
        "timestamp": rfc3339_utc(now_ms() as i64),
        "trace_id": new_uuid(),
        "correlation_id": new_uuid(),
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    (status, axum::Json(body)).into_response()
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

fn known_tenant(t: &str) -> bool {
    matches!(
        t,
        "common" | "organizations" | "consumers" | TENANT_ID | TENANT_DOMAIN
    )
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let segments: Vec<String> = uri
        .path()
        .trim_matches('/')
        .split('/')
        .map(decode_segment)
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let query = query_map(uri.query());
    match (method.as_str(), seg.as_slice()) {
        (m, [tenant, "oauth2", "v2.0", "authorize"]) if known_tenant(tenant) || m == "GET" => {
            if !known_tenant(tenant) {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "AADSTS90002",
                    &format!("Tenant '{tenant}' not found."),
                );
            }
            if m == "GET" {
                authorize(&inner, tenant, &query, uri.query().unwrap_or_default())
            } else {
                decide(&inner, &oauth::parse_form(&body))
            }
        }
        ("POST", [tenant, "oauth2", "v2.0", "token"]) => {
            if !known_tenant(tenant) {
                return token_error(&TokenError::InvalidRequest("Tenant not found."));
            }
            token(&inner, &headers, &body)
        }
        ("GET", ["_standin"]) => admin(&inner),
        ("POST", ["_standin", action @ ..]) => {
            admin_action(&inner, action, &oauth::parse_form(&body))
        }
        (_, ["v1.0", rest @ ..]) => {
            let result = api(&inner, &method, rest, &query, &headers, &body, uri.path()).await;
            match result {
                Ok(r) => r,
                Err(e) => e.into_response(),
            }
        }
        _ => GraphErr::new(StatusCode::NOT_FOUND, "UnknownError", "Resource not found")
            .into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------------

fn error_page(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = format!(
        "<h1>Sign in: {}</h1><p class=\"alert\">{}</p>",
        esc(title),
        esc(detail)
    );
    (status, Html(page("Microsoft sign-in", &body, false))).into_response()
}

/// `Err` is the answer instead: an error page (what the provider shows rather than
/// redirecting to an unknown client or URI), or an error redirect.
fn check_auth_request(inner: &Inner, req: &AuthRequest) -> Result<(), Box<Response>> {
    if req.client_id != inner.cfg.client_id {
        return Err(Box::new(error_page(
            StatusCode::BAD_REQUEST,
            "AADSTS700016",
            "Application with that identifier was not found in the directory.",
        )));
    }
    if !inner.client().allows_redirect(&req.redirect_uri) {
        return Err(Box::new(error_page(
            StatusCode::BAD_REQUEST,
            "AADSTS50011",
            "The redirect URI specified in the request does not match the redirect URIs configured for the application.",
        )));
    }
    let fail = |code: &str, d: &str| -> Result<(), Box<Response>> {
        Err(Box::new(
            Redirect::to(&req.redirect_with(&[("error", code), ("error_description", d)]))
                .into_response(),
        ))
    };
    if req.response_type != "code" {
        return fail(
            "unsupported_response_type",
            "AADSTS70005: response_type 'token' is not enabled for the application.",
        );
    }
    if req.scopes.is_empty() {
        return fail(
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'scope'.",
        );
    }
    if req.code_challenge.is_some()
        && !matches!(req.code_challenge_method.as_str(), "S256" | "plain")
    {
        return fail(
            "invalid_request",
            "AADSTS501491: Invalid code_challenge_method.",
        );
    }
    Ok(())
}

fn approve(inner: &Inner, req: &AuthRequest, account: &str, scopes: Vec<String>) -> Response {
    let code = inner.mutate(|s| {
        s.dirty = true;
        s.oauth.issue_code(req, account, scopes, now_ms())
    });
    Redirect::to(&req.redirect_with(&[("code", &code), ("session_state", &new_uuid())]))
        .into_response()
}

fn authorize(inner: &Inner, tenant: &str, q: &HashMap<String, String>, raw: &str) -> Response {
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
        "Microsoft",
        &format!("/{tenant}/oauth2/v2.0/authorize"),
        raw,
        &req,
        &accounts,
    ))
    .into_response()
}

fn decide(inner: &Inner, form: &HashMap<String, String>) -> Response {
    let req = AuthRequest::from_query(&query_map(form.get("query").map(String::as_str)));
    if let Err(answer) = check_auth_request(inner, &req) {
        return *answer;
    }
    if form.get("decision").map(String::as_str) != Some("allow") {
        return Redirect::to(&req.redirect_with(&[
            ("error", "access_denied"),
            (
                "error_description",
                "AADSTS65004: User declined to consent to access the app.",
            ),
        ]))
        .into_response();
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
    let granted = req
        .scopes
        .iter()
        .filter(|s| ticked.contains(s))
        .cloned()
        .collect();
    approve(inner, &req, &account, granted)
}

/// Scope names without the Graph resource prefix (`Calendars.ReadWrite`).
fn short_scope(s: &str) -> &str {
    s.strip_prefix("https://graph.microsoft.com/").unwrap_or(s)
}

fn fake_id_token(inner: &Inner, account: &str, oid: &str) -> String {
    let header = oauth::base64url(br#"{"typ":"JWT","alg":"RS256","kid":"standin"}"#);
    let now = now_ms() / 1000;
    let payload = json!({
        "aud": inner.cfg.client_id, "iss": format!("https://login.microsoftonline.com/{TENANT_ID}/v2.0"),
        "iat": now, "nbf": now, "exp": now + 3600, "oid": oid, "tid": TENANT_ID,
        "preferred_username": account, "email": account, "sub": oid, "ver": "2.0",
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
    if !form.contains_key("scope") {
        return token_error(&TokenError::InvalidRequest(
            "The request body must contain the following parameter: 'scope'.",
        ));
    }
    let ttl = inner.cfg.access_token_ttl.as_secs().max(1);
    let epochs = inner.epochs();
    let prefixes = ("EwBwA8l6BAAU", "M.C5");
    let result = inner.mutate(|s| {
        s.dirty = true;
        match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => s.oauth.exchange_code(
                &form,
                &inner.cfg.client_id,
                ttl,
                now_ms(),
                epochs,
                true,
                prefixes,
            ),
            Some("refresh_token") => s.oauth.refresh(
                &form,
                &inner.cfg.client_id,
                ttl,
                now_ms(),
                epochs,
                true,
                prefixes,
            ),
            _ => Err(TokenError::UnsupportedGrantType),
        }
        .map(|issued| {
            let oid = s.user_id(&issued.account);
            (issued, oid)
        })
    });
    match result {
        Ok((issued, oid)) => {
            let scopes: Vec<&str> = issued
                .scopes
                .iter()
                .map(|s| short_scope(s))
                .filter(|s| !matches!(*s, "offline_access" | "openid" | "profile" | "email"))
                .collect();
            let mut answer = json!({
                "token_type": "Bearer",
                "scope": scopes.join(" "),
                "expires_in": issued.expires_in,
                "ext_expires_in": issued.expires_in,
                "access_token": issued.access_token,
            });
            if let Some(rt) = &issued.refresh_token {
                answer["refresh_token"] = json!(rt);
            }
            if issued.scopes.iter().any(|s| s == "openid") {
                answer["id_token"] = json!(fake_id_token(inner, &issued.account, &oid));
            }
            axum::Json(answer).into_response()
        }
        Err(e) => token_error(&e),
    }
}

// ---------------------------------------------------------------------------------------------
// Graph
// ---------------------------------------------------------------------------------------------

type ApiResult = Result<Response, GraphErr>;

/// The `Prefer` preferences of a request (repeated headers and comma lists both).
struct Prefer {
    tz: Tz,
    tz_name: String,
    page: usize,
    applied: Vec<String>,
}

fn prefer(headers: &HeaderMap) -> Prefer {
    let mut p = Prefer {
        tz: Tz::UTC,
        tz_name: "UTC".into(),
        page: DEFAULT_PAGE,
        applied: Vec::new(),
    };
    for v in headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for pref in v.split(',') {
            let Some((k, val)) = pref.trim().split_once('=') else {
                continue;
            };
            let val = val.trim().trim_matches('"');
            match k.trim().to_ascii_lowercase().as_str() {
                "outlook.timezone" => {
                    if let Some(tz) = zone(val) {
                        p.tz = tz;
                        p.tz_name = val.to_owned();
                        p.applied.push(format!("outlook.timezone=\"{val}\""));
                    }
                }
                "odata.maxpagesize" => {
                    if let Ok(n) = val.parse::<usize>() {
                        p.page = n.clamp(1, 1000);
                        p.applied.push(format!("odata.maxpagesize={}", p.page));
                    }
                }
                _ => {}
            }
        }
    }
    p
}

fn json_response(status: StatusCode, v: Value, applied: &[String]) -> Response {
    let mut r = (status, axum::Json(v)).into_response();
    if !applied.is_empty()
        && let Ok(h) = HeaderValue::from_str(&applied.join(","))
    {
        r.headers_mut().insert("preference-applied", h);
    }
    r
}

const READ: [&str; 2] = ["Calendars.Read", "Calendars.ReadWrite"];
const WRITE: [&str; 1] = ["Calendars.ReadWrite"];

#[allow(clippy::too_many_arguments)]
async fn api(
    inner: &Arc<Inner>,
    method: &Method,
    rest: &[&str],
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
    path: &str,
) -> ApiResult {
    if inner.cfg.faults.delete_calendar_next.load(Ordering::SeqCst) {
        inner.mutate(|_| ());
    }
    match tripped(&inner.cfg.faults) {
        Some(Tripped::Down) => {
            let mut e = GraphErr::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceNotAvailable",
                "The service is temporarily unavailable.",
            );
            e.retry_after = Some(5);
            return Err(e);
        }
        Some(Tripped::Fail) => {
            return Err(GraphErr::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "generalException",
                "An unexpected error occurred.",
            ));
        }
        Some(Tripped::RateLimited { retry_after, .. }) => {
            let mut e = GraphErr::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Application is over its MailboxConcurrency limit.",
            );
            e.retry_after = Some(if retry_after == 0 { 2 } else { retry_after });
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
            GraphErr::new(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                match e {
                    AccessError::Missing => "Access token is empty.",
                    AccessError::Invalid => "Access token has expired or is not yet valid.",
                },
            )
        })?;
    let need = |wanted: &[&str]| -> Result<(), GraphErr> {
        if scopes.iter().any(|s| wanted.contains(&short_scope(s))) {
            Ok(())
        } else {
            Err(GraphErr::new(
                StatusCode::FORBIDDEN,
                "ErrorAccessDenied",
                "Access is denied. Check credentials and try again.",
            ))
        }
    };
    let pref = prefer(headers);
    let m = method.as_str();
    let ok = |v: Value| Ok(json_response(StatusCode::OK, v, &pref.applied));
    match (m, rest) {
        ("GET", ["me"]) => {
            let s = lock(&inner.store);
            let a = s
                .accounts
                .iter()
                .find(|a| a.email == account)
                .ok_or_else(GraphErr::not_found)?;
            ok(json!({
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
                "id": a.id, "displayName": a.name, "mail": a.email, "userPrincipalName": a.email,
                "givenName": a.name.split(' ').next(), "surname": a.name.split(' ').nth(1),
            }))
        }
        ("GET", ["me", "calendars"]) => {
            need(&READ)?;
            let s = lock(&inner.store);
            let value: Vec<Value> = s
                .calendars
                .iter()
                .filter(|c| c.owner == account && !c.deleted)
                .map(|c| calendar_json(&s, c))
                .collect();
            ok(
                json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('me')/calendars", "value": value}),
            )
        }
        ("GET", ["me", "calendar"]) => {
            need(&READ)?;
            let s = lock(&inner.store);
            let c = s
                .default_calendar(&account)
                .ok_or_else(GraphErr::not_found)?;
            ok(calendar_json(&s, c))
        }
        ("GET", ["me", "calendars", id]) => {
            need(&READ)?;
            let s = lock(&inner.store);
            let c = s.calendar(id, &account).ok_or_else(GraphErr::not_found)?;
            ok(calendar_json(&s, c))
        }
        ("GET", ["me", "calendarView", "delta"])
        | ("GET", ["me", "calendars", _, "calendarView", "delta"]) => {
            need(&READ)?;
            let s = lock(&inner.store);
            let cal = match rest {
                [_, _, id, _, _] => s.calendar(id, &account),
                _ => s.default_calendar(&account),
            }
            .ok_or_else(GraphErr::not_found)?
            .clone();
            let epoch = inner.cfg.faults.sync_epoch.load(Ordering::SeqCst);
            let link = format!("{}{}", inner.base_url, path);
            delta(&s, &cal, q, &pref, epoch, &link)
                .map(|v| json_response(StatusCode::OK, v, &pref.applied))
        }
        ("GET", ["me", "calendarView"]) | ("GET", ["me", "calendars", _, "calendarView"]) => {
            need(&READ)?;
            let s = lock(&inner.store);
            let cal = match rest {
                [_, _, id, _] => s.calendar(id, &account),
                _ => s.default_calendar(&account),
            }
            .ok_or_else(GraphErr::not_found)?
            .clone();
            calendar_view(&s, &cal, q, &pref, &format!("{}{}", inner.base_url, path))
                .map(|v| json_response(StatusCode::OK, v, &pref.applied))
        }
        ("POST", ["me", "events"]) | ("POST", ["me", "calendars", _, "events"]) => {
            need(&WRITE)?;
            let v: Value = serde_json::from_slice(body)
                .map_err(|_| GraphErr::bad("Unable to read JSON request payload."))?;
            let late = inner.cfg.faults.meeting_link_late.load(Ordering::SeqCst);
            inner.mutate(|s| {
                let cal = match rest {
                    [_, _, id, _] => s.calendar(id, &account),
                    _ => s.default_calendar(&account),
                }
                .ok_or_else(GraphErr::not_found)?
                .clone();
                let i = create_event(s, &cal, &account, v, late)?;
                Ok(json_response(
                    StatusCode::CREATED,
                    s.events[i].render(s, pref.tz, &pref.tz_name, &inner.base_url),
                    &pref.applied,
                ))
            })
        }
        ("GET", ["me", "events", id]) | ("GET", ["me", "calendars", _, "events", id]) => {
            need(&READ)?;
            inner.mutate(|s| {
                let i = s
                    .find(id)
                    .filter(|&i| {
                        s.owner_of(&s.events[i].calendar_id).as_deref() == Some(account.as_str())
                    })
                    .ok_or_else(GraphErr::not_found)?;
                if s.events[i].meeting_pending {
                    s.events[i].meeting_pending = false;
                    s.events[i].join_url = Some(join_url());
                }
                Ok(json_response(
                    StatusCode::OK,
                    s.events[i].render(s, pref.tz, &pref.tz_name, &inner.base_url),
                    &pref.applied,
                ))
            })
        }
        ("PATCH", ["me", "events", id]) | ("PATCH", ["me", "calendars", _, "events", id]) => {
            need(&WRITE)?;
            let v: Value = serde_json::from_slice(body)
                .map_err(|_| GraphErr::bad("Unable to read JSON request payload."))?;
            let if_match = headers
                .get(header::IF_MATCH)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            inner.mutate(|s| {
                let i = s.find(id).filter(|&i| s.owner_of(&s.events[i].calendar_id).as_deref() == Some(account.as_str())).ok_or_else(GraphErr::not_found)?;
                if let Some(tag) = &if_match
                    && *tag != s.events[i].etag()
                    && tag != "*"
                {
                    return Err(GraphErr::new(StatusCode::PRECONDITION_FAILED, "ErrorIrresolvableConflict", "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item."));
                }
                patch_event(s, i, v)?;
                Ok(json_response(StatusCode::OK, s.events[i].render(s, pref.tz, &pref.tz_name, &inner.base_url), &pref.applied))
            })
        }
        ("DELETE", ["me", "events", id]) | ("DELETE", ["me", "calendars", _, "events", id]) => {
            need(&WRITE)?;
            inner.mutate(|s| {
                let i = s
                    .find(id)
                    .filter(|&i| {
                        s.owner_of(&s.events[i].calendar_id).as_deref() == Some(account.as_str())
                    })
                    .ok_or_else(GraphErr::not_found)?;
                s.events[i].deleted = true;
                s.touch(i, "deleted");
                Ok(StatusCode::NO_CONTENT.into_response())
            })
        }
        ("POST", ["subscriptions"]) => {
            need(&READ)?;
            create_subscription(inner, &account, body).await
        }
        ("GET", ["subscriptions", id]) => {
            let s = lock(&inner.store);
            let sub = s
                .subscriptions
                .iter()
                .find(|x| x.id == *id && x.owner == account)
                .ok_or_else(sub_not_found)?;
            ok(sub.json())
        }
        ("PATCH", ["subscriptions", id]) => renew_subscription(inner, &account, id, body).await,
        ("DELETE", ["subscriptions", id]) => inner.mutate(|s| {
            let before = s.subscriptions.len();
            s.subscriptions
                .retain(|x| !(x.id == *id && x.owner == account));
            if s.subscriptions.len() == before {
                return Err(sub_not_found());
            }
            s.dirty = true;
            Ok(StatusCode::NO_CONTENT.into_response())
        }),
        _ => Err(GraphErr::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "Resource not found for the segment '{}'.",
                rest.last().unwrap_or(&"")
            ),
        )),
    }
}

fn sub_not_found() -> GraphErr {
    GraphErr::new(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        "The object was not found.",
    )
}

fn calendar_json(s: &Store, c: &Cal) -> Value {
    let name = s
        .accounts
        .iter()
        .find(|a| a.email == c.owner)
        .map(|a| a.name.clone())
        .unwrap_or_default();
    json!({
        "id": c.id, "name": c.name, "color": "auto", "hexColor": "", "isDefaultCalendar": c.default,
        "changeKey": change_key(c.id.len() as u64), "canShare": true, "canViewPrivateItems": true, "canEdit": true,
        "isRemovable": !c.default, "isTallyingResponses": true,
        "allowedOnlineMeetingProviders": ["teamsForBusiness"], "defaultOnlineMeetingProvider": "teamsForBusiness",
        "owner": {"name": name, "address": c.owner},
    })
}

fn join_url() -> String {
    format!(
        "https://teams.microsoft.com/l/meetup-join/19%3ameeting_{}%40thread.v2/0?context=%7b%22Tid%22%3a%22{TENANT_ID}%22%7d",
        oauth::random_token("", 48)
    )
}

/// Reads a `{dateTime, timeZone}` pair (any IANA or Windows zone, `UTC` by default).
fn read_time(v: &Value) -> Result<(i64, String), GraphErr> {
    let dt = v
        .get("dateTime")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphErr::bad("Missing dateTime."))?;
    let zone_name = v
        .get("timeZone")
        .and_then(Value::as_str)
        .unwrap_or("UTC")
        .to_owned();
    let tz = zone(&zone_name).ok_or_else(|| GraphErr::new(StatusCode::BAD_REQUEST, "TimeZoneNotSupportedException", format!("A valid TimeZone value must be specified. The following TimeZone value is not supported: '{zone_name}'.")))?;
    if let Some(ms) = parse_rfc3339(dt) {
        return Ok((ms, zone_name));
    }
    let local = parse_naive(dt).ok_or_else(|| {
        GraphErr::bad(format!(
            "Cannot convert the literal '{dt}' to the expected type 'Edm.DateTimeOffset'."
        ))
    })?;
    Ok((
        local_ms(local, tz).ok_or_else(|| GraphErr::bad("Invalid dateTime."))?,
        zone_name,
    ))
}

const COMPUTED: [&str; 18] = [
    "@odata.etag",
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "iCalUId",
    "transactionId",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "isAllDay",
    "type",
    "seriesMasterId",
    "start",
    "end",
    "onlineMeeting",
    "organizer",
    "responseStatus",
    "webLink",
];

fn create_event(
    s: &mut Store,
    cal: &Cal,
    account: &str,
    v: Value,
    late: bool,
) -> Result<usize, GraphErr> {
    let Value::Object(mut fields) = v else {
        return Err(GraphErr::bad("Unable to read JSON request payload."));
    };
    if let Some(tx) = fields.get("transactionId").and_then(Value::as_str)
        && let Some(i) = s.events.iter().position(|e| {
            e.transaction_id.as_deref() == Some(tx)
                && s.owner_of(&e.calendar_id).as_deref() == Some(account)
        })
    {
        // A retry of a create: the event it made (even if it was deleted since, it is gone).
        if !s.events[i].deleted {
            return Ok(i);
        }
    }
    let (start_ms, start_zone) = read_time(fields.get("start").ok_or_else(|| {
        GraphErr::bad("Your request can't be completed. The start time is missing.")
    })?)?;
    let (end_ms, end_zone) = read_time(fields.get("end").ok_or_else(|| {
        GraphErr::bad("Your request can't be completed. The end time is missing.")
    })?)?;
    if end_ms < start_ms {
        return Err(GraphErr::bad(
            "Your request can't be completed. The end time must be after the start time.",
        ));
    }
    let all_day = fields
        .get("isAllDay")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if all_day && (start_ms % DAY_MS != end_ms % DAY_MS) {
        return Err(GraphErr::new(
            StatusCode::BAD_REQUEST,
            "ErrorPropertyValidationFailure",
            "At least one property failed validation.",
        ));
    }
    if s.events.len() >= MAX_EVENTS {
        return Err(GraphErr::new(
            StatusCode::FORBIDDEN,
            "ErrorQuotaExceeded",
            "The mailbox quota is exceeded.",
        ));
    }
    let tx = fields
        .get("transactionId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let teams = fields.get("isOnlineMeeting").and_then(Value::as_bool) == Some(true)
        && fields.get("onlineMeetingProvider").and_then(Value::as_str) == Some("teamsForBusiness");
    for k in COMPUTED {
        fields.remove(k);
    }
    if teams {
        fields.insert("onlineMeetingProvider".into(), json!("teamsForBusiness"));
    }
    let now = now_ms() as i64;
    let i = s.push_event(Ev {
        id: graph_id(),
        calendar_id: cal.id.clone(),
        seq: 0,
        deleted: false,
        outside: false,
        start_ms,
        end_ms,
        all_day,
        start_zone,
        end_zone,
        transaction_id: tx,
        join_url: (teams && !late).then(join_url),
        meeting_pending: teams && late,
        kind: "singleInstance".into(),
        series_master_id: None,
        created_ms: now,
        modified_ms: now,
        fields,
    });
    Ok(i)
}

fn patch_event(s: &mut Store, i: usize, v: Value) -> Result<(), GraphErr> {
    let Value::Object(patch) = v else {
        return Err(GraphErr::bad("Unable to read JSON request payload."));
    };
    let mut start = (s.events[i].start_ms, s.events[i].start_zone.clone());
    let mut end = (s.events[i].end_ms, s.events[i].end_zone.clone());
    if let Some(st) = patch.get("start") {
        start = read_time(st)?;
    }
    if let Some(en) = patch.get("end") {
        end = read_time(en)?;
    }
    if end.0 < start.0 {
        return Err(GraphErr::bad(
            "Your request can't be completed. The end time must be after the start time.",
        ));
    }
    let ev = &mut s.events[i];
    ev.start_ms = start.0;
    ev.start_zone = start.1;
    ev.end_ms = end.0;
    ev.end_zone = end.1;
    if let Some(all_day) = patch.get("isAllDay").and_then(Value::as_bool) {
        ev.all_day = all_day;
    }
    let wants_teams = patch.get("isOnlineMeeting").and_then(Value::as_bool) == Some(true)
        && patch
            .get("onlineMeetingProvider")
            .and_then(Value::as_str)
            .unwrap_or("teamsForBusiness")
            == "teamsForBusiness";
    for (k, val) in patch {
        if !COMPUTED.contains(&k.as_str()) {
            ev.fields.insert(k, val);
        }
    }
    if wants_teams && ev.join_url.is_none() {
        ev.fields
            .insert("onlineMeetingProvider".into(), json!("teamsForBusiness"));
        ev.join_url = Some(join_url());
    }
    if ev.kind == "occurrence" {
        ev.kind = "exception".into();
    }
    s.touch(i, "updated");
    Ok(())
}

fn encode(prefix: &str, fields: &[String]) -> String {
    format!("{prefix}{}", oauth::base64url(fields.join("|").as_bytes()))
}

fn decode(prefix: &str, token: &str) -> Option<Vec<String>> {
    let raw = base64url_decode(token.strip_prefix(prefix)?)?;
    Some(
        String::from_utf8(raw)
            .ok()?
            .split('|')
            .map(str::to_owned)
            .collect(),
    )
}

/// Decodes base64url without padding (what [`oauth::base64url`] writes).
fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn sync_gone() -> GraphErr {
    GraphErr::new(
        StatusCode::GONE,
        "syncStateNotFound",
        "The sync state generation is not found. Please restart sync without a $deltatoken.",
    )
}

fn window_of(q: &HashMap<String, String>) -> Result<(i64, i64), GraphErr> {
    let parse = |k: &str| -> Result<i64, GraphErr> {
        let v = q.get(k).ok_or_else(|| GraphErr::bad(format!("This request requires a time window specified by the query string parameters StartDateTime and EndDateTime. Missing {k}.")))?;
        parse_rfc3339(v)
            .or_else(|| parse_naive(v).map(|n| n.and_utc().timestamp_millis()))
            .ok_or_else(|| GraphErr::bad(format!("The value '{v}' of parameter '{k}' is invalid.")))
    };
    let (a, b) = (parse("startDateTime")?, parse("endDateTime")?);
    if b <= a {
        return Err(GraphErr::bad(
            "The end of the time window must be after its start.",
        ));
    }
    Ok((a, b))
}

fn in_window(e: &Ev, from: i64, to: i64) -> bool {
    e.start_ms < to && (e.end_ms > from || (e.end_ms == e.start_ms && e.start_ms >= from))
}

/// `…/calendarView/delta`: an initial round (window given) or a continuation (`$skiptoken`,
/// `$deltatoken`). Tokens carry the calendar, the window, the sync epoch, the snapshot and the
/// changes-since mark, so the stand-in keeps no per-client state.
fn delta(
    s: &Store,
    cal: &Cal,
    q: &HashMap<String, String>,
    pref: &Prefer,
    epoch: u32,
    link: &str,
) -> Result<Value, GraphErr> {
    let (from, to, since, snapshot, offset) = if let Some(t) = q.get("$deltatoken") {
        let f = decode("D1.", t).ok_or_else(sync_gone)?;
        match f.as_slice() {
            [e, c, a, b, seq] if *e == epoch.to_string() && *c == cal.id => {
                let n = |x: &String| x.parse::<i64>().map_err(|_| sync_gone());
                (n(a)?, n(b)?, Some(n(seq)? as u64), s.seq, 0usize)
            }
            _ => return Err(sync_gone()),
        }
    } else if let Some(t) = q.get("$skiptoken") {
        let f = decode("S1.", t).ok_or_else(sync_gone)?;
        match f.as_slice() {
            [e, c, a, b, since, snap, off] if *e == epoch.to_string() && *c == cal.id => {
                let n = |x: &String| x.parse::<i64>().map_err(|_| sync_gone());
                let since = if since == "-" {
                    None
                } else {
                    Some(n(since)? as u64)
                };
                (n(a)?, n(b)?, since, n(snap)? as u64, n(off)? as usize)
            }
            _ => return Err(sync_gone()),
        }
    } else {
        let (a, b) = window_of(q)?;
        (a, b, None, s.seq, 0)
    };
    let mut rows: Vec<Value> = Vec::new();
    for e in s
        .events
        .iter()
        .filter(|e| e.calendar_id == cal.id && e.seq <= snapshot)
    {
        match since {
            None => {
                if !e.deleted && in_window(e, from, to) {
                    rows.push(e.render(s, pref.tz, &pref.tz_name, ""));
                }
            }
            Some(since) if e.seq > since => {
                if e.deleted || !in_window(e, from, to) {
                    rows.push(json!({"@odata.type": "#microsoft.graph.event", "id": e.id, "@removed": {"reason": "deleted"}}));
                } else {
                    rows.push(e.render(s, pref.tz, &pref.tz_name, ""));
                }
            }
            Some(_) => {}
        }
    }
    let total = rows.len();
    let page: Vec<Value> = rows.into_iter().skip(offset).take(pref.page).collect();
    let base = link.split('?').next().unwrap_or(link);
    let mut answer = json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(event)", "value": page});
    if offset + pref.page < total {
        let sn = since.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
        let token = encode(
            "S1.",
            &[
                epoch.to_string(),
                cal.id.clone(),
                from.to_string(),
                to.to_string(),
                sn,
                snapshot.to_string(),
                (offset + pref.page).to_string(),
            ],
        );
        answer["@odata.nextLink"] = json!(format!("{base}?$skiptoken={token}"));
    } else {
        let token = encode(
            "D1.",
            &[
                epoch.to_string(),
                cal.id.clone(),
                from.to_string(),
                to.to_string(),
                snapshot.to_string(),
            ],
        );
        answer["@odata.deltaLink"] = json!(format!("{base}?$deltatoken={token}"));
    }
    Ok(answer)
}

fn calendar_view(
    s: &Store,
    cal: &Cal,
    q: &HashMap<String, String>,
    pref: &Prefer,
    link: &str,
) -> Result<Value, GraphErr> {
    let (from, to) = window_of(q)?;
    let top: usize = q
        .get("$top")
        .and_then(|v| v.parse().ok())
        .unwrap_or(pref.page)
        .clamp(1, 1000);
    let skip: usize = q.get("$skip").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut events: Vec<&Ev> = s
        .events
        .iter()
        .filter(|e| e.calendar_id == cal.id && !e.deleted && in_window(e, from, to))
        .collect();
    events.sort_by_key(|e| (e.start_ms, e.seq));
    let total = events.len();
    let value: Vec<Value> = events
        .into_iter()
        .skip(skip)
        .take(top)
        .map(|e| e.render(s, pref.tz, &pref.tz_name, ""))
        .collect();
    let mut answer = json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(event)", "value": value});
    if skip + top < total {
        let mut next = url::Url::parse(link).map_err(|_| GraphErr::bad("bad link"))?;
        next.query_pairs_mut()
            .append_pair("startDateTime", &rfc3339_utc(from))
            .append_pair("endDateTime", &rfc3339_utc(to))
            .append_pair("$top", &top.to_string())
            .append_pair("$skip", &(skip + top).to_string());
        answer["@odata.nextLink"] = json!(next.to_string());
    }
    Ok(answer)
}

/// Which calendar a subscription `resource` names: `Ok(None)` for the default calendar.
fn resource_calendar(s: &Store, account: &str, resource: &str) -> Result<Option<String>, GraphErr> {
    let r = resource.trim_start_matches('/');
    let parts: Vec<&str> = r.split('/').collect();
    let invalid = || {
        GraphErr::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            format!("The resource '{resource}' is not supported for subscriptions."),
        )
    };
    match parts.as_slice() {
        ["me", "events"] => Ok(None),
        ["users", user, "events"] if *user == account || *user == s.user_id(account) => Ok(None),
        ["me", "calendars", id, "events"] => s
            .calendar(id, account)
            .map(|c| Some(c.id.clone()))
            .ok_or_else(invalid),
        ["users", user, "calendars", id, "events"]
            if *user == account || *user == s.user_id(account) =>
        {
            s.calendar(id, account)
                .map(|c| Some(c.id.clone()))
                .ok_or_else(invalid)
        }
        _ => Err(invalid()),
    }
}

/// The validation handshake: POST `{url}?validationToken=…` (text/plain), expecting 200 and
/// exactly the token back within the timeout.
async fn validate_endpoint(inner: &Inner, url: &str) -> Result<(), GraphErr> {
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        new_uuid()
    );
    let mut target = url::Url::parse(url).map_err(|_| {
        GraphErr::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Invalid notification URL.",
        )
    })?;
    target
        .query_pairs_mut()
        .append_pair("validationToken", &token);
    let failed = || {
        GraphErr::new(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.",
        )
    };
    let answer = inner
        .http
        .post(target)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .send()
        .await
        .map_err(|_| failed())?;
    if answer.status() != StatusCode::OK {
        return Err(failed());
    }
    let text = answer.text().await.map_err(|_| failed())?;
    if text != token {
        return Err(GraphErr::new(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            "Subscription validation request failed. Response must exactly match validationToken query parameter.",
        ));
    }
    Ok(())
}

fn expiration(v: &Value, now: i64) -> Result<i64, GraphErr> {
    let raw = v
        .get("expirationDateTime")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphErr::bad("expirationDateTime is required."))?;
    let ms = parse_rfc3339(raw)
        .ok_or_else(|| GraphErr::bad(format!("Invalid expirationDateTime '{raw}'.")))?;
    if ms > now + MAX_SUBSCRIPTION_MINUTES * 60_000 {
        return Err(GraphErr::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            format!(
                "Subscription expiration can only be {MAX_SUBSCRIPTION_MINUTES} minutes in the future."
            ),
        ));
    }
    Ok(ms.max(now + MIN_SUBSCRIPTION_MINUTES * 60_000))
}

async fn create_subscription(inner: &Arc<Inner>, account: &str, body: &[u8]) -> ApiResult {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| GraphErr::bad("Unable to read JSON request payload."))?;
    let now = now_ms() as i64;
    let change_types: Vec<String> = v["changeType"]
        .as_str()
        .unwrap_or_default()
        .split(',')
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .collect();
    if change_types.is_empty()
        || change_types
            .iter()
            .any(|c| !matches!(c.as_str(), "created" | "updated" | "deleted"))
    {
        return Err(GraphErr::bad("Invalid changeType."));
    }
    let resource = v["resource"].as_str().unwrap_or_default().to_owned();
    let notification_url = v["notificationUrl"].as_str().unwrap_or_default().to_owned();
    let lifecycle_url = v["lifecycleNotificationUrl"].as_str().map(str::to_owned);
    let client_state = v["clientState"].as_str().map(str::to_owned);
    if client_state
        .as_ref()
        .is_some_and(|c| c.chars().count() > 128)
    {
        return Err(GraphErr::bad("clientState must be at most 128 characters."));
    }
    let expiration_ms = expiration(&v, now)?;
    let calendar_id = {
        let s = lock(&inner.store);
        if s.subscriptions.len() >= MAX_SUBSCRIPTIONS {
            return Err(GraphErr::new(
                StatusCode::FORBIDDEN,
                "ExtensionError",
                "Too many subscriptions.",
            ));
        }
        resource_calendar(&s, account, &resource)?
    };
    validate_endpoint(inner, &notification_url).await?;
    if let Some(url) = &lifecycle_url {
        validate_endpoint(inner, url).await?;
    }
    let sub = Sub {
        id: new_uuid(),
        owner: account.to_owned(),
        resource,
        calendar_id,
        change_types,
        notification_url,
        lifecycle_url,
        client_state,
        expiration_ms,
        tls: v["latestSupportedTlsVersion"]
            .as_str()
            .unwrap_or("v1_2")
            .to_owned(),
    };
    let answer = sub.json();
    inner.mutate(|s| {
        s.subscriptions.push(sub);
        s.dirty = true;
    });
    Ok((StatusCode::CREATED, axum::Json(answer)).into_response())
}

async fn renew_subscription(inner: &Arc<Inner>, account: &str, id: &str, body: &[u8]) -> ApiResult {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| GraphErr::bad("Unable to read JSON request payload."))?;
    let now = now_ms() as i64;
    let current = {
        let s = lock(&inner.store);
        s.subscriptions
            .iter()
            .find(|x| x.id == id && x.owner == account && x.expiration_ms > now)
            .cloned()
            .ok_or_else(sub_not_found)?
    };
    let expiration_ms = if v.get("expirationDateTime").is_some() {
        expiration(&v, now)?
    } else {
        current.expiration_ms
    };
    let new_url = v["notificationUrl"].as_str().map(str::to_owned);
    if let Some(url) = &new_url
        && *url != current.notification_url
    {
        validate_endpoint(inner, url).await?;
    }
    inner.mutate(|s| {
        let sub = s
            .subscriptions
            .iter_mut()
            .find(|x| x.id == id)
            .ok_or_else(sub_not_found)?;
        sub.expiration_ms = expiration_ms;
        if let Some(url) = new_url {
            sub.notification_url = url;
        }
        let answer = sub.json();
        s.dirty = true;
        Ok(axum::Json(answer).into_response())
    })
}

// ---------------------------------------------------------------------------------------------
// The admin page
// ---------------------------------------------------------------------------------------------

fn admin(inner: &Inner) -> Response {
    inner.mutate(|_| ());
    let s = lock(&inner.store);
    let epochs = inner.epochs();
    let tz = zone(&inner.cfg.time_zone).unwrap_or(Tz::UTC);
    let local = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .with_timezone(&tz)
            .format("%Y-%m-%dT%H:%M")
            .to_string()
    };
    let mut body = format!(
        "<h1>Microsoft Graph stand-in</h1><p>Identity: <code>{base}/{{tenant}}/oauth2/v2.0/authorize</code> and \
         <code>…/token</code> (tenant <code>common</code> or <code>{TENANT_ID}</code>); Graph: <code>{base}/v1.0</code>. \
         Client id <code>{client}</code>. Times below in {zone}. Faults: {faults}.</p>\
         <form method=\"post\" action=\"/_standin/sync/expire\"><button class=\"secondary\">Expire every delta link (410 next time)</button></form>",
        base = esc(&inner.base_url),
        client = esc(&inner.cfg.client_id),
        zone = esc(&inner.cfg.time_zone),
        faults = esc(&inner.cfg.faults.describe()),
    );
    for a in &s.accounts {
        let grants = s
            .oauth
            .live_grants(epochs)
            .into_iter()
            .filter(|g| g.account == a.email)
            .count();
        body.push_str(&format!(
            "<h2>{} &lt;{}&gt;</h2><p>{grants} live grant(s).</p><form method=\"post\" action=\"/_standin/grants/revoke\">\
             <input type=\"hidden\" name=\"account\" value=\"{e}\"><button class=\"secondary\">Remove the app's access (invalid_grant)</button></form>",
            esc(&a.name),
            esc(&a.email),
            e = esc(&a.email),
        ));
        for c in s.calendars.iter().filter(|c| c.owner == a.email) {
            body.push_str(&format!(
                "<h3>{}{}{}</h3><p class=\"note\">Id <code>{}</code>.</p>",
                esc(&c.name),
                if c.default { " (default)" } else { "" },
                if c.deleted { " — deleted" } else { "" },
                esc(&c.id)
            ));
            if c.deleted {
                continue;
            }
            body.push_str("<table><thead><tr><th scope=\"col\">Subject</th><th scope=\"col\">Start</th><th scope=\"col\">End</th><th scope=\"col\">Show as</th><th scope=\"col\">From</th><th scope=\"col\">Move or delete</th></tr></thead><tbody>");
            for e in s
                .events
                .iter()
                .filter(|e| e.calendar_id == c.id && !e.deleted)
                .rev()
                .take(200)
            {
                let mut show = e
                    .fields
                    .get("showAs")
                    .and_then(Value::as_str)
                    .unwrap_or("busy")
                    .to_owned();
                if let Some(url) = &e.join_url {
                    show.push_str(&format!(", Teams {}", &url[..url.len().min(60)]));
                }
                body.push_str(&format!(
                    "<tr><td>{subject}</td><td>{start}</td><td>{end}</td><td>{show}</td><td>{from}</td><td>\
                     <form method=\"post\" action=\"/_standin/events/move\"><input type=\"hidden\" name=\"id\" value=\"{id}\">\
                     <label for=\"mv{id}\">New start</label><input id=\"mv{id}\" type=\"datetime-local\" name=\"start\" value=\"{start}\" required>\
                     <label for=\"mm{id}\">Minutes</label><input id=\"mm{id}\" type=\"number\" name=\"minutes\" value=\"{mins}\" min=\"0\">\
                     <button class=\"secondary\">Move</button></form>\
                     <form method=\"post\" action=\"/_standin/events/delete\"><input type=\"hidden\" name=\"id\" value=\"{id}\"><button class=\"secondary\">Delete</button></form></td></tr>",
                    subject = esc(e.fields.get("subject").and_then(Value::as_str).unwrap_or("(no subject)")),
                    start = local(e.start_ms),
                    end = local(e.end_ms),
                    show = esc(&show),
                    from = if e.outside { "outside" } else { "API" },
                    id = esc(&e.id),
                    mins = (e.end_ms - e.start_ms) / 60_000,
                ));
            }
            body.push_str("</tbody></table>");
            let id = esc(&c.id);
            body.push_str(&format!(
                "<form method=\"post\" action=\"/_standin/events\"><input type=\"hidden\" name=\"calendar\" value=\"{id}\">\
                 <label for=\"s{id}\">Add an outside event: subject</label><input id=\"s{id}\" name=\"summary\" value=\"Dentist\" required>\
                 <label for=\"t{id}\">Start</label><input id=\"t{id}\" type=\"datetime-local\" name=\"start\" required>\
                 <label for=\"m{id}\">Minutes</label><input id=\"m{id}\" type=\"number\" name=\"minutes\" value=\"60\" min=\"0\">\
                 <label for=\"r{id}\">Repeat (an RRULE such as FREQ=WEEKLY;COUNT=4; empty for none)</label><input id=\"r{id}\" name=\"rrule\">\
                 <label><input type=\"checkbox\" name=\"all_day\" value=\"1\" style=\"width:auto\"> All day</label>\
                 <label><input type=\"checkbox\" name=\"free\" value=\"1\" style=\"width:auto\"> Show as free</label>\
                 <button class=\"primary\">Add the event</button></form>"
            ));
            if !c.default {
                body.push_str(&format!("<form method=\"post\" action=\"/_standin/calendars/delete\"><input type=\"hidden\" name=\"calendar\" value=\"{id}\"><button class=\"secondary\">Delete this calendar</button></form>"));
            }
        }
    }
    body.push_str("<h2>Subscriptions</h2><table><thead><tr><th scope=\"col\">Id</th><th scope=\"col\">Resource</th><th scope=\"col\">Notification URL</th><th scope=\"col\">Expires (UTC)</th></tr></thead><tbody>");
    for sub in &s.subscriptions {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&sub.id),
            esc(&sub.resource),
            esc(sub.notification_url.split('?').next().unwrap_or_default()),
            esc(&rfc3339_utc(sub.expiration_ms)),
        ));
    }
    body.push_str("</tbody></table><h2>Notification deliveries</h2><table><thead><tr><th scope=\"col\">At (UTC)</th><th scope=\"col\">Change</th><th scope=\"col\">Event</th><th scope=\"col\">Attempt</th><th scope=\"col\">Result</th></tr></thead><tbody>");
    drop(s);
    for d in inner.outbox.log().iter().rev().take(200) {
        body.push_str(&crate::whatsapp::delivery_row(d));
    }
    body.push_str("</tbody></table>");
    Html(page("Microsoft Graph stand-in", &body, true)).into_response()
}

fn admin_action(inner: &Inner, action: &[&str], form: &HashMap<String, String>) -> Response {
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let tz = zone(&inner.cfg.time_zone).unwrap_or(Tz::UTC);
    let minutes: i64 = get("minutes").parse().unwrap_or(60).clamp(0, 60 * 24 * 366);
    let result: Result<(), String> = match action {
        ["events"] => match parse_form_local(get("start"), tz) {
            Some(start) => {
                let all_day = !get("all_day").is_empty();
                let ev = OutsideEvent {
                    summary: get("summary").trim().to_owned(),
                    start_ms: start,
                    end_ms: if all_day {
                        start + DAY_MS.max(minutes * 60_000)
                    } else {
                        start + minutes * 60_000
                    },
                    all_day,
                    free: !get("free").is_empty(),
                    tentative: false,
                    rrule: Some(get("rrule").trim().to_owned()).filter(|r| !r.is_empty()),
                };
                inner
                    .mutate(|s| s.add_outside(&inner.cfg, get("calendar"), &ev))
                    .map(|_| ())
            }
            None => Err("Give a start time.".into()),
        },
        ["events", "move"] => match parse_form_local(get("start"), tz) {
            Some(start) => {
                inner.mutate(|s| s.move_event(get("id"), start, start + minutes * 60_000))
            }
            None => Err("Give a start time.".into()),
        },
        ["events", "delete"] => inner.mutate(|s| s.delete_event(get("id"))),
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
        ["calendars", "delete"] => inner.mutate(|s| s.delete_calendar(get("calendar"))),
        _ => return GraphErr::not_found().into_response(),
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
    fn delta_tokens_round_trip_through_base64url() {
        let t = encode(
            "D1.",
            &[
                "0".into(),
                "AAMkAD=".into(),
                "1".into(),
                "2".into(),
                "3".into(),
            ],
        );
        assert_eq!(
            decode("D1.", &t),
            Some(vec![
                "0".into(),
                "AAMkAD=".into(),
                "1".into(),
                "2".into(),
                "3".into()
            ])
        );
        assert_eq!(decode("S1.", &t), None);
        assert_eq!(decode("D1.", "D1.!!"), None);
    }

    #[test]
    fn prefer_headers_are_read_from_lists_and_repeats() {
        let mut h = HeaderMap::new();
        h.append(
            "prefer",
            HeaderValue::from_static(
                "odata.maxpagesize=2, outlook.timezone=\"W. Europe Standard Time\"",
            ),
        );
        let p = prefer(&h);
        assert_eq!(p.page, 2);
        assert_eq!(p.tz, Tz::Europe__Berlin);
        assert_eq!(p.applied.len(), 2);
    }
}
