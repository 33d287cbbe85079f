//! The ceiling for the page benchmark: a bare axum server (same runtime, same HTTP stack as the
//! portal, nothing else) answering every GET with one fixed HTML body of a given size, built in
//! release like the portal. A page's throughput is reported as a fraction of this server's, for a
//! body of the same size, measured in the same run with the same load.
//!
//! `baseline <listen address> <body bytes>`; `/readyz` answers `ready` (for the start-to-ready
//! baseline), every other path the body.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:3310".into());
    let size: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(16_384);
    let body: &'static str = Box::leak(html_of_size(size).into_boxed_str());
    let page = move || async move {
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response()
    };
    let app = Router::new()
        .route("/readyz", get(|| async { "ready" }))
        .fallback(get(page));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// An HTML document of exactly `size` bytes (at least the bare skeleton).
fn html_of_size(size: usize) -> String {
    let head = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Baseline</title></head><body><p>";
    let tail = "</p></body></html>";
    let filler = size.saturating_sub(head.len() + tail.len());
    let text: String = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. "
        .chars()
        .cycle()
        .take(filler)
        .collect();
    format!("{head}{text}{tail}")
}
