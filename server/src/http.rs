//! HTTP middleware: request ids, request logging, response hardening headers, the cross-site
//! request check, and the last-resort 500 page.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

/// What the cross-site check needs.
#[derive(Clone)]
pub struct CsrfConfig {
    /// The portal's own origin (`scheme://host[:port]`), from the public URL.
    pub origin: String,
    /// Also accepted: the listen address's origin, so a portal reached directly on its port
    /// (health checks, local runs) still works.
    pub extra_origins: Vec<String>,
}

/// Refuses state-changing requests (anything but GET, HEAD, OPTIONS) that come from another
/// site. Browsers send `Origin` on such requests; when it is missing, `Sec-Fetch-Site` or
/// `Referer` decides. Requests that carry none of them (curl, server-to-server) are allowed:
/// they carry no browser cookies an attacker could ride on. Webhook routes authenticate by
/// signature and skip this check.
pub async fn csrf_guard(State(cfg): State<CsrfConfig>, req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if safe || req.uri().path().starts_with("/webhooks/") {
        return next.run(req).await;
    }
    let headers = req.headers();
    let allowed = |o: &str| o == cfg.origin || cfg.extra_origins.iter().any(|e| e == o);
    let verdict = if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        allowed(origin)
    } else if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        matches!(site, "same-origin" | "none")
    } else if let Some(referer) = headers.get(header::REFERER).and_then(|v| v.to_str().ok()) {
        url::Url::parse(referer)
            .map(|u| allowed(&u.origin().ascii_serialization()))
            .unwrap_or(false)
    } else {
        true
    };
    if verdict {
        next.run(req).await
    } else {
        tracing::warn!(path = %req.uri().path(), "refused a cross-site state-changing request");
        (
            StatusCode::FORBIDDEN,
            "This request came from another site and was refused.",
        )
            .into_response()
    }
}

/// Hardening headers on every response. Private pages are not cached.
/// The largest body a page form or server function accepts (uploads have their own route).
pub const MAX_FORM_BODY: usize = 64 * 1024;

pub async fn security_headers(State(https): State<bool>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "referrer-policy",
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    if !h.contains_key("content-security-policy") {
        h.insert(
            "content-security-policy",
            HeaderValue::from_static("frame-ancestors 'none'; object-src 'none'; base-uri 'none'"),
        );
    }
    if https {
        h.insert(
            "strict-transport-security",
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    if !path.starts_with("/pkg/") && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// The 500 page: says sorry and gives the request id to quote, nothing else.
pub fn internal_error_page(request_id: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Something went wrong</title>\
         <link rel=\"stylesheet\" href=\"/pkg/stoep.css\"></head><body><main class=\"container\"><section class=\"empty\">\
         <h1>Something went wrong on our side</h1><p>Please try again in a moment. If it keeps happening, contact us and quote \
         reference <code>{}</code>.</p><p><a class=\"btn\" href=\"/\">Go to the home page</a></p></section></main></body></html>",
        domain::email::escape_html(request_id)
    );
    (StatusCode::INTERNAL_SERVER_ERROR, Html(body)).into_response()
}

/// Turns a panic in a handler into the 500 page with the request id to quote; the cause goes to
/// the log with the same id.
pub async fn catch_panics(req: Request, next: Next) -> Response {
    use futures_util::FutureExt;
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_owned();
    match std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .await
    {
        Ok(res) => res,
        Err(err) => {
            let detail = err
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(request_id = %request_id, panic = %detail, "request handler panicked");
            internal_error_page(&request_id)
        }
    }
}

/// The one place where a server function's error gets its HTTP status. server_fn answers every
/// error with 500 and the `serverfnerror` header; the body is the portal's `AppError` as JSON, and
/// `AppError::status` says what it means (400 for bad input, including arguments that could not
/// be decoded, 401, 403, 404, 409, 429, 503, or 500 for our own fault). A plain HTML form post is
/// answered with a redirect back to the form instead, and left alone.
pub async fn server_fn_error_status(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    if res.status() != StatusCode::INTERNAL_SERVER_ERROR
        || !res
            .headers()
            .contains_key(server_fn::error::SERVER_FN_ERROR_HEADER)
    {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    if let Ok(err) = serde_json::from_slice::<model::error::AppError>(&bytes) {
        let status = match err {
            model::error::AppError::Transport(_) => 400,
            other => other.status(),
        };
        parts.status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Per-address limits on the endpoints attackers hammer (sign-in, codes, sign-up, resets). Kept
/// in memory per instance; the per-account limits kept in the database hold across instances.
pub struct RateLimiter {
    /// `(path, limit, window)`.
    rules: Vec<(&'static str, u32, std::time::Duration)>,
    hits: std::sync::Mutex<
        std::collections::HashMap<(usize, std::net::IpAddr), (std::time::Instant, u32)>,
    >,
    /// Peers whose `X-Forwarded-For` is believed (the load balancer).
    trusted_proxies: Vec<std::net::IpAddr>,
}

impl RateLimiter {
    pub fn new(
        trusted_proxies: Vec<std::net::IpAddr>,
        limits: crate::config::LimitSettings,
    ) -> Self {
        use std::time::Duration;
        let hour = Duration::from_secs(3600);
        Self {
            rules: vec![
                ("/api/sign_in", 30, Duration::from_secs(600)),
                ("/api/verify_sign_in_code", 30, Duration::from_secs(600)),
                ("/api/sign_up", 10, hour),
                ("/api/request_password_reset", 10, hour),
                ("/api/reset_password", 20, hour),
                ("/api/accept_invitation", 20, hour),
                ("/api/book", limits.holds_per_hour, hour),
                ("/documents/upload", limits.uploads_per_hour, hour),
                (
                    "/webhooks/stripe",
                    limits.webhooks_per_minute,
                    Duration::from_secs(60),
                ),
                (
                    "/webhooks/crm",
                    limits.webhooks_per_minute,
                    Duration::from_secs(60),
                ),
            ],
            hits: Default::default(),
            trusted_proxies,
        }
    }

    /// The client's address: the peer, or the last hop a trusted proxy forwarded for.
    pub fn client_ip(
        &self,
        peer: Option<std::net::IpAddr>,
        forwarded_for: Option<&str>,
    ) -> Option<std::net::IpAddr> {
        let peer = peer?;
        if self.trusted_proxies.contains(&peer)
            && let Some(ip) = forwarded_for
                .and_then(|f| f.rsplit(',').next())
                .and_then(|s| s.trim().parse().ok())
        {
            return Some(ip);
        }
        Some(peer)
    }

    /// Counts a hit; `Err(seconds)` when over the limit.
    pub fn check(&self, path: &str, ip: std::net::IpAddr) -> Result<(), u64> {
        let Some(idx) = self.rules.iter().position(|(p, _, _)| *p == path) else {
            return Ok(());
        };
        let (_, limit, window) = self.rules[idx];
        let now = std::time::Instant::now();
        let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        if hits.len() > 50_000 {
            hits.retain(|(i, _), (start, _)| now.duration_since(*start) < self.rules[*i].2);
        }
        let entry = hits.entry((idx, ip)).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > limit {
            return Err(window
                .saturating_sub(now.duration_since(entry.0))
                .as_secs()
                .max(1));
        }
        Ok(())
    }
}

/// Applies [`RateLimiter`] with a clear 429.
pub async fn rate_limit(
    State(limiter): State<std::sync::Arc<RateLimiter>>,
    req: Request,
    next: Next,
) -> Response {
    if req.method() == Method::POST {
        let peer = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        if let Some(ip) = limiter.client_ip(peer, forwarded)
            && let Err(wait) = limiter.check(req.uri().path(), ip)
        {
            let minutes = wait.div_ceil(60);
            tracing::warn!(path = %req.uri().path(), "rate limit reached");
            let mut res = (StatusCode::TOO_MANY_REQUESTS, format!("{{\"RateLimited\":\"Too many attempts from your network. Please wait {minutes} minute(s) and try again.\"}}")).into_response();
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return res;
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_per_address_and_path_and_trust_only_known_proxies() {
        let proxy: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let l = RateLimiter::new(
            vec![proxy],
            crate::config::LimitSettings {
                uploads_per_hour: 2,
                holds_per_hour: 3,
                webhooks_per_minute: 5,
            },
        );
        let a: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        let b: std::net::IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..10 {
            assert!(l.check("/api/sign_up", a).is_ok());
        }
        assert!(l.check("/api/sign_up", a).is_err());
        assert!(
            l.check("/api/sign_up", b).is_ok(),
            "another address has its own count"
        );
        assert!(
            l.check("/api/sign_in", a).is_ok(),
            "another endpoint has its own count"
        );
        assert!(
            l.check("/api/get_profile", a).is_ok(),
            "unlisted paths are not limited"
        );
        for (path, limit) in [
            ("/documents/upload", 2),
            ("/api/book", 3),
            ("/webhooks/stripe", 5),
        ] {
            for _ in 0..limit {
                assert!(l.check(path, a).is_ok(), "{path}");
            }
            assert!(l.check(path, a).is_err(), "{path} is limited at {limit}");
        }
        assert_eq!(
            l.client_ip(Some(proxy), Some("203.0.113.9, 192.0.2.7")),
            Some("192.0.2.7".parse().unwrap())
        );
        assert_eq!(
            l.client_ip(Some(a), Some("203.0.113.9")),
            Some(a),
            "a header from anyone else is ignored"
        );
    }
}
