//! `POST /webhooks/stripe`: Stripe's event notifications.
//!
//! The signature is verified over the raw body before anything is read. A valid event is stored
//! by its id (unique) together with a `payments.stripe_event` job in one transaction, and only
//! then answered 2xx, so an acknowledged event can never be lost; the job applies it. The same
//! event delivered again finds its id taken and changes nothing. An event type the portal does
//! not handle is answered 200 and ignored, as Stripe recommends.

use std::sync::Arc;

use app::ssr::db::{self, now_ms};
use app::ssr::ledger::{self, Integration, NewJob, Subject};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sea_orm::DatabaseConnection;

use crate::stripe::verify_signature;

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
        NewJob {
            kind: "payments.stripe_event",
            integration: Integration::Payments,
            subject: Subject::new("stripe_event", id),
            idempotency_key: format!("payments.stripe_event:{id}"),
            payload: serde_json::json!({ "event_id": id }),
            run_after_ms: None,
        },
    )
    .await?;
    txn.commit().await?;
    Ok(true)
}

/// `POST /webhooks/crm`: HubSpot's change notifications, verified with its v3 signature
/// (`X-HubSpot-Signature-v3` over method, the public URI, the body and the timestamp, keyed with
/// the app's client secret; timestamps older than five minutes refused). CRM-owned fields are
/// stored for display; a portal-owned field changed in the CRM is recorded as a conflict and
/// pushed back. Events for unknown contacts or other subscriptions are acknowledged and ignored.
#[derive(Clone)]
pub struct CrmWebhook {
    pub db: DatabaseConnection,
    /// The client secret; `None` when no HubSpot connector is configured (then 404).
    pub secret: Option<Arc<String>>,
    pub public_url: String,
}

/// How far a HubSpot signature timestamp may be from now.
pub const CRM_TOLERANCE_MS: i64 = 5 * 60_000;

pub async fn crm(
    State(w): State<CrmWebhook>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(secret) = &w.secret else {
        return (StatusCode::NOT_FOUND, "no CRM webhooks configured").into_response();
    };
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (signature, timestamp) = (
        header("x-hubspot-signature-v3"),
        header("x-hubspot-request-timestamp"),
    );
    let Ok(ts) = timestamp.parse::<i64>() else {
        tracing::warn!("CRM webhook refused: missing or malformed timestamp");
        return (StatusCode::UNAUTHORIZED, "signature refused: no timestamp").into_response();
    };
    // Not `(now - ts).abs()`: the header is untrusted, and that overflows for extreme values.
    if !guards::signature::within_tolerance(now_ms(), ts, CRM_TOLERANCE_MS) {
        tracing::warn!("CRM webhook refused: stale timestamp");
        return (
            StatusCode::UNAUTHORIZED,
            "signature refused: stale timestamp",
        )
            .into_response();
    }
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/webhooks/crm");
    let full = format!("{}{path}", w.public_url);
    let expected = crate::crm::hubspot_signature(secret, "POST", &full, &body, timestamp);
    if signature.is_empty() || !crate::crm::same(&expected, signature) {
        tracing::warn!(bytes = body.len(), "CRM webhook refused: bad signature");
        return (StatusCode::UNAUTHORIZED, "signature refused").into_response();
    }
    let Ok(events) = serde_json::from_slice::<Vec<serde_json::Value>>(&body) else {
        tracing::warn!("CRM webhook refused: the body is not a JSON list of events");
        return (
            StatusCode::BAD_REQUEST,
            "the body is not a JSON list of events",
        )
            .into_response();
    };
    let result: Result<Vec<&'static str>, sea_orm::DbErr> = async {
        let txn = db::begin_write(&w.db).await?;
        let mut outcomes = Vec::new();
        for e in &events {
            let kind = e["subscriptionType"].as_str().unwrap_or_default();
            let (Some(event_id), Some(object), Some(property)) = (
                e["eventId"]
                    .as_u64()
                    .map(|n| n.to_string())
                    .or_else(|| e["eventId"].as_str().map(str::to_owned)),
                e["objectId"]
                    .as_u64()
                    .map(|n| n.to_string())
                    .or_else(|| e["objectId"].as_str().map(str::to_owned)),
                e["propertyName"].as_str(),
            ) else {
                outcomes.push("ignored");
                continue;
            };
            if kind != "contact.propertyChange" {
                outcomes.push("ignored");
                continue;
            }
            let Some(field) = crate::crm::portal_field(property) else {
                outcomes.push("ignored");
                continue;
            };
            let change = app::ssr::crm::InboundChange {
                event_id: format!("hubspot:{event_id}"),
                crm_id: object,
                field: field.to_owned(),
                value: e["propertyValue"].as_str().map(str::to_owned),
            };
            outcomes.push(app::ssr::crm::apply_inbound(&txn, &change).await?);
        }
        txn.commit().await?;
        Ok(outcomes)
    }
    .await;
    match result {
        Ok(outcomes) => {
            tracing::info!(events = outcomes.len(), ?outcomes, "CRM webhook applied");
            (StatusCode::OK, outcomes.join(",")).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "CRM webhook could not be applied");
            (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response()
        }
    }
}
