//! A signed-notification outbox, shared by the stand-ins that call the portal back (PayFast's
//! ITN, Paystack's webhooks; Stripe's and HubSpot's webhooks could move onto it later).
//!
//! Every provider delivers its notifications the same way underneath: POST a body to a URL,
//! with headers that prove who sent it, and try again on a schedule until the receiver answers
//! what the provider counts as success. What differs is the signature, the schedule and what
//! counts as success, so those are configuration ([`OutboxConfig`]) and the queue, the worker,
//! the faults and the log are written once, here:
//!
//! - [`Outbox::enqueue`] queues a [`Notification`]; a background task delivers one at a time,
//!   oldest first, signing each attempt afresh with the [`Signer`] (Stripe's signature carries
//!   the time of sending, so a retry must not reuse the first one's headers);
//! - a failed attempt (no answer, a timeout, or a status the provider does not accept) is
//!   retried after the next delay of the schedule; after the last one it is given up;
//! - the fault switches ([`DeliveryFaults`], read at each attempt) pause delivery, drop the
//!   next N attempts, send each delivered notification N extra times, delay every attempt and
//!   shuffle the order of those due;
//! - every attempt is logged ([`DeliveryAttempt`]) for the stand-in's `/_standin` page and for
//!   tests, which can also wait for the queue to drain ([`Outbox::wait_idle`]).
//!
//! The HTTP client follows no redirects (a provider posts to the URL it was given, and a
//! redirect answer is a failure) and gives up on an attempt after a short timeout.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::common::{lock, now_ms};

/// The most attempts kept in the log; the oldest go first.
const MAX_LOG: usize = 5_000;
/// The longest the worker sleeps before looking at the queue and the fault switches again.
const WORKER_POLL: Duration = Duration::from_millis(25);

/// The fault switches an outbox reads at each attempt. Implemented by each stand-in's faults
/// (`controls::NotificationFaults` for PayFast and Paystack, and Stripe's own switches).
pub trait DeliveryFaults: Send + Sync {
    /// While true, nothing is sent; queued notifications wait.
    fn paused(&self) -> bool;
    /// Consumes one "drop the next N" if any is left: the attempt is not sent, and counts as
    /// failed (so it is retried on schedule, as a lost request would be).
    fn take_drop(&self) -> bool;
    /// How many extra copies to send after each successful delivery.
    fn duplicates(&self) -> u32;
    /// How long each attempt waits before it is sent (milliseconds).
    fn delay_ms(&self) -> u64;
    /// While true, the next notification sent is a random one of those due, not the oldest.
    fn shuffle(&self) -> bool;
}

/// Stripe's switches fit the trait as they are, so its stand-in can adopt the outbox without
/// a change to the admin page or the console.
impl DeliveryFaults for crate::controls::StripeFaults {
    fn paused(&self) -> bool {
        self.webhooks_paused.load(Ordering::SeqCst)
    }
    fn take_drop(&self) -> bool {
        take_one(&self.drop_next_webhooks)
    }
    fn duplicates(&self) -> u32 {
        self.duplicate_webhooks.load(Ordering::SeqCst)
    }
    fn delay_ms(&self) -> u64 {
        self.webhook_delay_ms.load(Ordering::SeqCst)
    }
    fn shuffle(&self) -> bool {
        self.shuffle_webhooks.load(Ordering::SeqCst)
    }
}

/// Takes one from a countdown, if it is above zero.
pub fn take_one(counter: &std::sync::atomic::AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// What signs an attempt: given the URL and the exact body bytes about to be sent, the headers
/// to send with them (the signature, and anything else the provider always sends, such as its
/// `User-Agent`). Called once per attempt, duplicates included.
pub type Signer = Arc<dyn Fn(&str, &[u8]) -> Vec<(String, String)> + Send + Sync>;

/// How an outbox delivers.
#[derive(Clone)]
pub struct OutboxConfig {
    /// Who is sending, for logs ("PayFast ITN").
    pub name: String,
    /// The delays before each retry; its length is the number of retries. Empty: one attempt.
    pub retry_schedule: Vec<Duration>,
    /// How long one attempt may take before it counts as failed.
    pub timeout: Duration,
    /// Which answers count as delivered (PayFast and Paystack: exactly 200; Stripe: any 2xx).
    pub accept: fn(u16) -> bool,
    /// Signs each attempt.
    pub signer: Signer,
    /// Read at each attempt.
    pub faults: Arc<dyn DeliveryFaults>,
}

impl fmt::Debug for OutboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxConfig")
            .field("name", &self.name)
            .field("retry_schedule", &self.retry_schedule)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Only `200 OK` counts (PayFast's and Paystack's rule).
pub fn accept_200(status: u16) -> bool {
    status == 200
}

/// Any 2xx counts (Stripe's and HubSpot's rule).
pub fn accept_2xx(status: u16) -> bool {
    (200..300).contains(&status)
}

/// One notification to deliver.
#[derive(Clone, Debug)]
pub struct Notification {
    /// What it is about, for the log (an event id, a payment id).
    pub id: String,
    /// Its kind, for the log (`charge.success`, `ITN COMPLETE`).
    pub kind: String,
    /// Where it is POSTed.
    pub url: String,
    /// Sent as is, byte for byte, at every attempt.
    pub body: Bytes,
    /// The `Content-Type` header.
    pub content_type: String,
}

/// One delivery attempt, as the admin page and tests see it.
#[derive(Clone, Debug, Serialize)]
pub struct DeliveryAttempt {
    /// The number [`Outbox::enqueue`] gave the notification.
    pub seq: u64,
    pub id: String,
    pub kind: String,
    pub url: String,
    /// When the attempt ended (Unix milliseconds).
    pub at_ms: u64,
    /// 1 for the first attempt, 2 for the first retry, and so on (a duplicate carries the
    /// number of the attempt it copies).
    pub attempt: u32,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why there is no status: a connection error, a timeout, a drop.
    pub error: Option<String>,
    /// Whether the answer counts as delivered.
    pub delivered: bool,
    /// Not sent, by the drop fault.
    pub dropped: bool,
    /// An extra copy, by the duplicate fault.
    pub duplicate: bool,
    /// The last attempt failed and the schedule is used up.
    pub gave_up: bool,
}

/// A notification waiting for its next attempt.
#[derive(Clone, Debug, Serialize)]
pub struct PendingDelivery {
    pub seq: u64,
    pub id: String,
    pub kind: String,
    pub url: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Milliseconds until it is due (0: due now, waiting only for the worker or a pause).
    pub due_in_ms: u64,
}

struct Queued {
    seq: u64,
    note: Notification,
    attempts: u32,
    due: Instant,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Queued>,
    in_flight: Option<u64>,
    log: Vec<DeliveryAttempt>,
    seq: u64,
}

struct Inner {
    cfg: OutboxConfig,
    http: reqwest::Client,
    queue: Mutex<Queue>,
    wake: Notify,
}

/// A running outbox. Cheap to clone; its worker stops when the `shutdown` token given to
/// [`Outbox::start`] is cancelled (what is still queued then is lost, as the stand-ins keep no
/// outbox on disk).
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("cfg", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// Starts the delivery worker (on the current Tokio runtime).
    pub fn start(cfg: OutboxConfig, shutdown: CancellationToken) -> std::io::Result<Outbox> {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let inner = Arc::new(Inner {
            cfg,
            http,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
        });
        tokio::spawn(run(inner.clone(), shutdown));
        Ok(Outbox { inner })
    }

    /// Queues a notification for delivery now; returns its sequence number.
    pub fn enqueue(&self, note: Notification) -> u64 {
        let mut q = lock(&self.inner.queue);
        q.seq += 1;
        let seq = q.seq;
        q.pending.push(Queued {
            seq,
            note,
            attempts: 0,
            due: Instant::now(),
        });
        drop(q);
        self.inner.wake.notify_one();
        seq
    }

    /// Every attempt still in the log, oldest first.
    pub fn log(&self) -> Vec<DeliveryAttempt> {
        lock(&self.inner.queue).log.clone()
    }

    /// What waits for an attempt, in sequence order.
    pub fn pending(&self) -> Vec<PendingDelivery> {
        let q = lock(&self.inner.queue);
        let now = Instant::now();
        let mut out: Vec<PendingDelivery> = q
            .pending
            .iter()
            .map(|p| PendingDelivery {
                seq: p.seq,
                id: p.note.id.clone(),
                kind: p.note.kind.clone(),
                url: p.note.url.clone(),
                attempts: p.attempts,
                due_in_ms: p.due.saturating_duration_since(now).as_millis() as u64,
            })
            .collect();
        out.sort_by_key(|p| p.seq);
        out
    }

    /// Makes every queued notification due now (the admin's "retry now", and tests that do not
    /// want to wait out a schedule).
    pub fn retry_now(&self) {
        let now = Instant::now();
        for p in &mut lock(&self.inner.queue).pending {
            p.due = now;
        }
        self.inner.wake.notify_one();
    }

    /// Whether nothing is queued or in flight.
    pub fn is_idle(&self) -> bool {
        let q = lock(&self.inner.queue);
        q.pending.is_empty() && q.in_flight.is_none()
    }

    /// Waits until nothing is queued or in flight; `false` if `timeout` passed first (for
    /// example while paused, or while a retry is far off).
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.is_idle() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Waits until notification `seq` has had at least one attempt (whatever its result);
    /// returns at once, `false`, while deliveries are paused, and `false` if `timeout` passed.
    /// PayFast posts the ITN before it sends the buyer back, so its hosted page waits on this.
    pub async fn wait_attempted(&self, seq: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let q = lock(&self.inner.queue);
                let waiting = q.in_flight == Some(seq)
                    || q.pending.iter().any(|p| p.seq == seq && p.attempts == 0);
                if !waiting {
                    return true;
                }
            }
            if self.inner.cfg.faults.paused() || Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Takes the next due notification (the oldest, or a random one when shuffling) and marks it in
/// flight. `None` while paused or when nothing is due.
fn take_next_due(inner: &Inner) -> Option<Queued> {
    let faults = &inner.cfg.faults;
    if faults.paused() {
        return None;
    }
    let mut q = lock(&inner.queue);
    let now = Instant::now();
    let due: Vec<usize> = (0..q.pending.len())
        .filter(|&i| q.pending[i].due <= now)
        .collect();
    let pick = if due.is_empty() {
        return None;
    } else if faults.shuffle() {
        due[rand::thread_rng().gen_range(0..due.len())]
    } else {
        due.iter().copied().min_by_key(|&i| q.pending[i].seq)?
    };
    let item = q.pending.swap_remove(pick);
    q.in_flight = Some(item.seq);
    Some(item)
}

/// The worker: one delivery at a time, until shutdown.
async fn run(inner: Arc<Inner>, shutdown: CancellationToken) {
    loop {
        if let Some(item) = take_next_due(&inner) {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = deliver(&inner, item) => {}
            }
            lock(&inner.queue).in_flight = None;
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(WORKER_POLL) => {}
        }
    }
}

fn push_log(inner: &Inner, record: DeliveryAttempt) {
    let mut q = lock(&inner.queue);
    if q.log.len() >= MAX_LOG {
        let excess = q.log.len() + 1 - MAX_LOG;
        q.log.drain(..excess);
    }
    q.log.push(record);
}

/// One attempt (and, after a success, the duplicates), then a reschedule on failure.
async fn deliver(inner: &Inner, mut item: Queued) {
    let faults = &inner.cfg.faults;
    let delay = faults.delay_ms();
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    item.attempts += 1;
    let mut record = DeliveryAttempt {
        seq: item.seq,
        id: item.note.id.clone(),
        kind: item.note.kind.clone(),
        url: item.note.url.clone(),
        at_ms: 0,
        attempt: item.attempts,
        status: None,
        error: None,
        delivered: false,
        dropped: false,
        duplicate: false,
        gave_up: false,
    };
    if faults.take_drop() {
        record.dropped = true;
        record.error = Some("dropped (stand-in fault)".into());
    } else {
        (record.status, record.error) = match send(inner, &item.note).await {
            Ok(status) => (Some(status), None),
            Err(e) => (None, Some(e)),
        };
    }
    record.at_ms = now_ms();
    record.delivered = record.status.is_some_and(inner.cfg.accept);
    let next_delay = if record.delivered {
        None
    } else {
        inner
            .cfg
            .retry_schedule
            .get(item.attempts as usize - 1)
            .copied()
    };
    record.gave_up = !record.delivered && next_delay.is_none();
    if record.gave_up {
        tracing::warn!(outbox = %inner.cfg.name, id = %record.id, kind = %record.kind,
            attempts = item.attempts, "stand-in gave up delivering a notification");
    }
    let delivered = record.delivered;
    push_log(inner, record.clone());

    if delivered {
        for _ in 0..faults.duplicates() {
            let result = send(inner, &item.note).await;
            let mut copy = record.clone();
            copy.duplicate = true;
            (copy.status, copy.error) = match result {
                Ok(status) => (Some(status), None),
                Err(e) => (None, Some(e)),
            };
            copy.delivered = copy.status.is_some_and(inner.cfg.accept);
            copy.at_ms = now_ms();
            push_log(inner, copy);
        }
    } else if let Some(delay) = next_delay {
        item.due = Instant::now() + delay;
        lock(&inner.queue).pending.push(item);
    }
}

/// POSTs the notification, freshly signed. `Ok(status)` if the receiver answered at all.
async fn send(inner: &Inner, note: &Notification) -> Result<u16, String> {
    let mut request = inner
        .http
        .post(&note.url)
        .header(reqwest::header::CONTENT_TYPE, &note.content_type);
    for (name, value) in (inner.cfg.signer)(&note.url, &note.body) {
        request = request.header(name, value);
    }
    let response = request.body(note.body.clone()).send().await.map_err(|e| {
        if e.is_timeout() {
            "timed out".to_owned()
        } else if e.is_builder() {
            format!("not a URL that can be called: {e}")
        } else {
            format!("connection failed: {e}")
        }
    })?;
    Ok(response.status().as_u16())
}
