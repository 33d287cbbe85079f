//! A webhook outbox for the messaging stand-ins ([`crate::whatsapp`], [`crate::bulksms`]) and
//! the calendar stand-ins' push notifications ([`crate::google_calendar`],
//! [`crate::microsoft_graph`]): it
//! POSTs prepared bodies (already signed, if the provider signs) to the portal, one at a time,
//! retries on the provider's rule and schedule, and misbehaves on demand through
//! [`WebhookFaults`] (paused, lost, duplicated, reordered, delayed), so the portal's webhook
//! handlers are tested against the at-least-once, unordered delivery both providers document.
//!
//! Why its own module: both providers deliver the same way but differ in the details that
//! matter (Meta retries every non-2xx; BulkSMS discards on 4xx and retries the rest), and a
//! test needs to know when everything has gone out ([`Outbox::wait_idle`]) and what happened to
//! each attempt ([`Outbox::log`]). It is self-contained: it knows nothing of either provider.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::header;
use rand::Rng;
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::common::{lock, now_ms};
use crate::controls::{WebhookFaults, take_one};

/// The longest the worker sleeps before looking at the queue and the switches again.
const WORKER_POLL: Duration = Duration::from_millis(25);
/// The delivery log keeps this many attempts, dropping the oldest.
const MAX_LOG: usize = 5_000;
/// At most this many webhooks wait; more are refused (logged) so a dead receiver cannot grow
/// the queue without bound.
const MAX_PENDING: usize = 20_000;

/// How an outbox delivers.
#[derive(Clone, Debug)]
pub struct OutboxConfig {
    /// For logs: "WhatsApp", "BulkSMS".
    pub name: &'static str,
    /// Waits between attempts after a failure; after the last one the webhook is given up.
    pub retry_schedule: Vec<Duration>,
    /// How long one attempt may take before it counts as failed.
    pub timeout: Duration,
    /// BulkSMS's rule: a 4xx answer discards the webhook (no retry). Otherwise (Meta's rule)
    /// every non-2xx answer is retried.
    pub discard_on_4xx: bool,
    /// The `User-Agent` the provider sends.
    pub user_agent: String,
    /// Fault switches, read at each attempt.
    pub faults: Arc<WebhookFaults>,
}

/// One webhook to deliver.
#[derive(Clone, Debug)]
pub struct Webhook {
    pub url: String,
    /// What it is, for the log: `status.delivered`, `message`, `delivery-report`, ...
    pub kind: String,
    /// What it is about (message ids), for the log and tests.
    pub key: String,
    /// The exact bytes POSTed (and signed).
    pub body: Vec<u8>,
    /// Extra headers (a signature); `Content-Type: application/json` is always sent.
    pub headers: Vec<(String, String)>,
    /// Not sent before this long from now.
    pub delay: Duration,
}

/// One delivery attempt, as the admin pages and tests see it.
#[derive(Clone, Debug, Serialize)]
pub struct OutboxDelivery {
    pub kind: String,
    pub key: String,
    pub url: String,
    /// When the attempt ended (Unix milliseconds).
    pub at_ms: u64,
    /// 1 for the first attempt, 2 for the first retry, and so on.
    pub attempt: u32,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why no status: a connection error or a timeout.
    pub error: Option<String>,
    /// Lost by the `drop_next` fault: never sent, not retried.
    pub dropped: bool,
    /// An extra copy sent by the `duplicate` fault.
    pub duplicate: bool,
    /// A 4xx under BulkSMS's rule: discarded, not retried.
    pub discarded: bool,
    /// The last attempt failed and the schedule is used up.
    pub gave_up: bool,
    /// The body sent (for tests and the admin page).
    #[serde(skip)]
    pub body: Arc<Vec<u8>>,
}

impl OutboxDelivery {
    /// The receiver answered 2xx.
    pub fn succeeded(&self) -> bool {
        matches!(self.status, Some(s) if (200..300).contains(&s))
    }
}

struct Pending {
    seq: u64,
    webhook: Webhook,
    body: Arc<Vec<u8>>,
    attempts: u32,
    due: Instant,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Pending>,
    in_flight: bool,
    log: VecDeque<OutboxDelivery>,
    seq: u64,
}

struct Inner {
    cfg: OutboxConfig,
    queue: Mutex<Queue>,
    wake: Notify,
    http: reqwest::Client,
}

/// A running outbox. Cheap to clone; its worker stops with the `shutdown` token.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

impl Outbox {
    /// Starts the delivery worker.
    pub fn start(cfg: OutboxConfig, shutdown: CancellationToken) -> std::io::Result<Outbox> {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let inner = Arc::new(Inner {
            cfg,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            http,
        });
        tokio::spawn(run(inner.clone(), shutdown));
        Ok(Outbox { inner })
    }

    /// Queues a webhook.
    pub fn push(&self, mut webhook: Webhook) {
        let mut q = lock(&self.inner.queue);
        if q.pending.len() >= MAX_PENDING {
            tracing::warn!(outbox = self.inner.cfg.name, kind = %webhook.kind,
                "stand-in webhook queue full; dropping a webhook");
            return;
        }
        q.seq += 1;
        let seq = q.seq;
        let due = Instant::now() + webhook.delay;
        // The body lives once, shared by every attempt and log entry.
        let body = Arc::new(std::mem::take(&mut webhook.body));
        q.pending.push(Pending {
            seq,
            webhook,
            body,
            attempts: 0,
            due,
        });
        drop(q);
        self.inner.wake.notify_one();
    }

    /// Every attempt still in the log (the last [`MAX_LOG`]), oldest first.
    pub fn log(&self) -> Vec<OutboxDelivery> {
        lock(&self.inner.queue).log.iter().cloned().collect()
    }

    /// Webhooks waiting (including retries and delayed ones).
    pub fn pending(&self) -> usize {
        lock(&self.inner.queue).pending.len()
    }

    /// Waits until nothing is pending or in flight; `false` if `timeout` passed first (for
    /// example while paused or while a retry is far off).
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let q = lock(&self.inner.queue);
                if q.pending.is_empty() && !q.in_flight {
                    return true;
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The next due webhook (oldest first, or a random due one when shuffling); `None` while
/// paused or when nothing is due.
fn take_next_due(inner: &Inner) -> Option<Pending> {
    let faults = &inner.cfg.faults;
    if faults.paused.load(Ordering::SeqCst) {
        return None;
    }
    let mut q = lock(&inner.queue);
    let now = Instant::now();
    let due: Vec<usize> = (0..q.pending.len())
        .filter(|&i| q.pending[i].due <= now)
        .collect();
    if due.is_empty() {
        return None;
    }
    let pick = if faults.shuffle.load(Ordering::SeqCst) {
        due[rand::thread_rng().gen_range(0..due.len())]
    } else {
        due.iter().copied().min_by_key(|&i| q.pending[i].seq)?
    };
    q.in_flight = true;
    Some(q.pending.swap_remove(pick))
}

async fn run(inner: Arc<Inner>, shutdown: CancellationToken) {
    loop {
        if let Some(pending) = take_next_due(&inner) {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = deliver(&inner, pending) => {}
            }
            lock(&inner.queue).in_flight = false;
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(WORKER_POLL) => {}
        }
    }
}

fn record(inner: &Inner, entry: OutboxDelivery) {
    let mut q = lock(&inner.queue);
    if q.log.len() >= MAX_LOG {
        q.log.pop_front();
    }
    q.log.push_back(entry);
}

async fn deliver(inner: &Inner, mut pending: Pending) {
    let faults = &inner.cfg.faults;
    let delay = faults.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    pending.attempts += 1;
    let mut entry = OutboxDelivery {
        kind: pending.webhook.kind.clone(),
        key: pending.webhook.key.clone(),
        url: pending.webhook.url.clone(),
        at_ms: 0,
        attempt: pending.attempts,
        status: None,
        error: None,
        dropped: false,
        duplicate: false,
        discarded: false,
        gave_up: false,
        body: pending.body.clone(),
    };
    if take_one(&faults.drop_next) {
        entry.dropped = true;
        entry.error = Some("lost (stand-in fault)".into());
        entry.at_ms = now_ms();
        record(inner, entry);
        return;
    }
    (entry.status, entry.error) = match send(inner, &pending).await {
        Ok(status) => (Some(status), None),
        Err(e) => (None, Some(e)),
    };
    entry.at_ms = now_ms();
    let succeeded = entry.succeeded();
    entry.discarded = !succeeded
        && inner.cfg.discard_on_4xx
        && entry.status.is_some_and(|s| (400..500).contains(&s));
    let next_delay = if succeeded || entry.discarded {
        None
    } else {
        inner
            .cfg
            .retry_schedule
            .get(pending.attempts as usize - 1)
            .copied()
    };
    entry.gave_up = !succeeded && !entry.discarded && next_delay.is_none();
    if entry.gave_up {
        tracing::warn!(outbox = inner.cfg.name, kind = %entry.kind, key = %entry.key,
            attempts = pending.attempts, "stand-in gave up delivering a webhook");
    }
    record(inner, entry.clone());

    if succeeded {
        for _ in 0..faults.duplicate.load(Ordering::SeqCst) {
            let mut copy = entry.clone();
            copy.duplicate = true;
            (copy.status, copy.error) = match send(inner, &pending).await {
                Ok(status) => (Some(status), None),
                Err(e) => (None, Some(e)),
            };
            copy.at_ms = now_ms();
            record(inner, copy);
        }
    } else if let Some(delay) = next_delay {
        pending.due = Instant::now() + delay;
        lock(&inner.queue).pending.push(pending);
    }
}

/// One POST. `Ok(status)` if the receiver answered at all.
async fn send(inner: &Inner, pending: &Pending) -> Result<u16, String> {
    let mut request = inner
        .http
        .post(&pending.webhook.url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, &inner.cfg.user_agent);
    for (name, value) in &pending.webhook.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request
        .body(pending.body.as_ref().clone())
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                "timed out".to_owned()
            } else {
                format!("connection failed: {e}")
            }
        })?;
    Ok(response.status().as_u16())
}
