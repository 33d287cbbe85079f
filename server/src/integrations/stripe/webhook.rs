//! `POST /webhooks/stripe`: Stripe's event notifications.
//!
//! The signature is verified over the raw body before anything is read. A valid event is stored
//! by its id (unique) together with a `payments.stripe_event` job in one transaction, and only
//! then answered 2xx, so an acknowledged event can never be lost; the job applies it. The same
//! event delivered again finds its id taken and changes nothing. An event type the portal does
//! not handle is answered 200 and ignored, as Stripe recommends.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::db::{self, now_ms};
use domain::ledger::{self, NewJob, Subject};
use sea_orm::DatabaseConnection;

use crate::integrations::stripe::verify_signature;

/// The event types the portal acts on.
pub const HANDLED_EVENTS: [&str; 7] = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "payment_intent.payment_failed",
    "charge.refunded",
    "charge.dispute.created",
];

/// Largest webhook body accepted. Stripe's events are a few kilobytes.
pub const MAX_BODY: usize = 256 * 1024;

#[derive(Clone)]
pub struct StripeWebhook {
    pub db: DatabaseConnection,
    pub secrets: Arc<Vec<String>>,
    pub tolerance_secs: i64,
}

pub async fn stripe(State(w): State<StripeWebhook>, headers: HeaderMap, body: Bytes) -> Response {
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    if let Err(e) = verify_signature(header, &body, &w.secrets, now_ms() / 1000, w.tolerance_secs) {
        tracing::warn!(reason = %e, bytes = body.len(), "Stripe webhook refused: bad signature");
        return (StatusCode::BAD_REQUEST, format!("signature refused: {e}")).into_response();
    }
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(&body) else {
        tracing::warn!(
            bytes = body.len(),
            "Stripe webhook refused: the body is not JSON"
        );
        return (StatusCode::BAD_REQUEST, "the body is not JSON").into_response();
    };
    let id = event["id"].as_str().unwrap_or_default();
    let kind = event["type"].as_str().unwrap_or_default();
    let created = event["created"].as_i64();
    let object = &event["data"]["object"];
    if !id.starts_with("evt_") || kind.is_empty() || created.is_none() || !object.is_object() {
        tracing::warn!(
            event = id,
            kind,
            "Stripe webhook refused: not an event (id, type, created, data.object)"
        );
        return (
            StatusCode::BAD_REQUEST,
            "not a Stripe event: id, type, created and data.object are required",
        )
            .into_response();
    }
    if !HANDLED_EVENTS.contains(&kind) {
        tracing::info!(
            event = id,
            kind,
            "Stripe webhook ignored: event type not used"
        );
        return (StatusCode::OK, "ignored: event type not used").into_response();
    }
    match store(
        &w.db,
        id,
        kind,
        created.unwrap_or(0),
        object["id"].as_str(),
        &body,
    )
    .await
    {
        Ok(true) => {
            tracing::info!(event = id, kind, "Stripe webhook stored");
            (StatusCode::OK, "stored").into_response()
        }
        Ok(false) => {
            tracing::info!(event = id, kind, "Stripe webhook duplicate: already stored");
            (StatusCode::OK, "duplicate").into_response()
        }
        Err(e) => {
            // Not acknowledged: Stripe delivers it again.
            tracing::error!(event = id, error = %e, "Stripe webhook could not be stored");
            (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response()
        }
    }
}

/// Stores the event and its job in one transaction. `false` when the id was already stored.
async fn store(
    db: &DatabaseConnection,
    id: &str,
    kind: &str,
    created: i64,
    object_id: Option<&str>,
    body: &[u8],
) -> Result<bool, sea_orm::DbErr> {
    let txn = db::begin_write(db).await?;
    let inserted = db::query_one(
        &txn,
        "INSERT INTO stripe_events (id, event_type, object_id, stripe_created, received_at, payload) VALUES (?, ?, ?, ?, ?, ?) \
         ON CONFLICT (id) DO NOTHING RETURNING id",
        vec![
            id.into(),
            kind.into(),
            object_id.map(str::to_owned).into(),
            created.into(),
            now_ms().into(),
            String::from_utf8_lossy(body).into_owned().into(),
        ],
    )
    .await?;
    if inserted.is_none() {
        return Ok(false);
    }
    ledger::enqueue(
        &txn,
        NewJob::of(
            &domain::jobs::StripeEvent {
                event_id: id.to_owned(),
            },
            Subject::new("stripe_event", id),
            format!("payments.stripe_event:{id}"),
        ),
    )
    .await?;
    txn.commit().await?;
    Ok(true)
}

/// The route, with its body limit and state.
pub fn router(db: DatabaseConnection, settings: &crate::config::Settings) -> axum::Router {
    axum::Router::new()
        .route("/webhooks/stripe", axum::routing::post(stripe))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(StripeWebhook {
            db,
            secrets: Arc::new(settings.stripe_webhook_secrets()),
            tolerance_secs: settings.stripe.webhook_tolerance_secs as i64,
        })
}
