//! Prometheus metrics in text format: requests by method and status class, a latency histogram,
//! and the integration ledger's queue depth and failures per integration (read at scrape time).

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];
const METHODS: [&str; 5] = ["GET", "POST", "HEAD", "OTHER", "PUT"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Default)]
pub struct Metrics {
    requests: [[AtomicU64; 5]; 5],
    buckets: [AtomicU64; 10],
    latency_sum_micros: AtomicU64,
    latency_count: AtomicU64,
}

impl Metrics {
    pub fn observe(&self, method: &str, status: u16, seconds: f64) {
        let m = METHODS.iter().position(|x| *x == method).unwrap_or(3);
        let c = ((status / 100).clamp(1, 5) - 1) as usize;
        self.requests[m][c].fetch_add(1, Ordering::Relaxed);
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    /// Renders the HTTP metrics; the caller appends the ledger's.
    pub fn render_http(&self, out: &mut String) {
        out.push_str("# HELP stoep_http_requests_total HTTP requests by method and status class.\n# TYPE stoep_http_requests_total counter\n");
        for (mi, m) in METHODS.iter().enumerate() {
            for (ci, c) in CLASSES.iter().enumerate() {
                let v = self.requests[mi][ci].load(Ordering::Relaxed);
                if v > 0 {
                    let _ = writeln!(
                        out,
                        "stoep_http_requests_total{{method=\"{m}\",status=\"{c}\"}} {v}"
                    );
                }
            }
        }
        out.push_str("# HELP stoep_http_request_duration_seconds HTTP request latency.\n# TYPE stoep_http_request_duration_seconds histogram\n");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "stoep_http_request_duration_seconds_bucket{{le=\"{b}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "stoep_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "stoep_http_request_duration_seconds_sum {}",
            self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "stoep_http_request_duration_seconds_count {count}");
    }
}

/// Middleware that records every request.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let res = next.run(req).await;
    metrics.observe(
        &method,
        res.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    res
}

/// Renders the ledger's gauges.
pub async fn render_ledger(
    db: &sea_orm::DatabaseConnection,
    out: &mut String,
) -> Result<(), sea_orm::DbErr> {
    out.push_str("# HELP stoep_jobs Jobs in the integration ledger by integration and status (waiting, running, in manual review).\n# TYPE stoep_jobs gauge\n");
    for (integration, status, n) in domain::ledger::depth_by_integration(db).await? {
        let _ = writeln!(
            out,
            "stoep_jobs{{integration=\"{integration}\",status=\"{status}\"}} {n}"
        );
    }
    out.push_str("# HELP stoep_job_failures_24h Failed job attempts in the last 24 hours by integration.\n# TYPE stoep_job_failures_24h gauge\n");
    for (integration, n) in domain::ledger::failures_by_integration(db).await? {
        let _ = writeln!(
            out,
            "stoep_job_failures_24h{{integration=\"{integration}\"}} {n}"
        );
    }
    Ok(())
}

pub fn text_response(body: String) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
