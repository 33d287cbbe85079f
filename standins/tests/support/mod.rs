#![allow(dead_code)] // Each test binary uses its own part of it.
//! A webhook receiver on 127.0.0.1 for the stand-in tests: it records every request (headers
//! and the raw body, exactly as sent), answers 200 unless told to fail, and answers WhatsApp's
//! GET verification handshake.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Hit {
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// What the receiver answered.
    pub status: u16,
}

impl Hit {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

#[derive(Clone, Default)]
pub struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Answer `fail_status` to this many POSTs, then 200.
    pub fail_next: Arc<AtomicU32>,
    /// The status those failures get (500 when 0).
    pub fail_status: Arc<AtomicU16>,
    /// The verify token the handshake expects.
    pub verify_token: Arc<Mutex<String>>,
}

impl Receiver {
    /// Every POST, in arrival order.
    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("lock").clone()
    }

    /// The POSTs answered 200.
    pub fn accepted(&self) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.status == 200)
            .collect()
    }

    /// Waits until `done` holds for the hits, or `timeout` passes.
    pub async fn wait_for(&self, timeout: Duration, done: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let hits = self.hits();
            if done(&hits) || tokio::time::Instant::now() >= deadline {
                return hits;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn receive(
    State(r): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let fail = r
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if fail {
        match r.fail_status.load(Ordering::SeqCst) {
            0 => StatusCode::INTERNAL_SERVER_ERROR,
            s => StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        }
    } else {
        StatusCode::OK
    };
    r.hits.lock().expect("lock").push(Hit {
        path_and_query: uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers,
        body: body.to_vec(),
        status: status.as_u16(),
    });
    status
}

async fn handshake(
    State(r): State<Receiver>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let token = r.verify_token.lock().expect("lock").clone();
    match guards::whatsapp::handshake_challenge(
        q.get("hub.mode").map(String::as_str),
        q.get("hub.verify_token").map(String::as_str),
        q.get("hub.challenge").map(String::as_str),
        &token,
    ) {
        Ok(challenge) => (StatusCode::OK, challenge.to_owned()),
        Err(_) => (StatusCode::FORBIDDEN, String::new()),
    }
}

/// Starts a receiver; returns it and its base URL (`http://127.0.0.1:PORT`).
pub async fn start_receiver(shutdown: &CancellationToken) -> (Receiver, String) {
    let receiver = Receiver::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = Router::new()
        .route("/{*path}", post(receive).get(handshake))
        .with_state(receiver.clone());
    let token = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(token.cancelled_owned())
            .await
            .expect("receiver serves");
    });
    (receiver, url)
}
