//! `POST /webhooks/crm`: HubSpot's signed change notifications (its v3 signature).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::db::{self, now_ms};
use sea_orm::DatabaseConnection;

/// Largest webhook body accepted. HubSpot batches are small.
pub const MAX_BODY: usize = 256 * 1024;

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
    let expected = crate::integrations::crm::hubspot::hubspot_signature(
        secret, "POST", &full, &body, timestamp,
    );
    if signature.is_empty() || !crate::integrations::crm::hubspot::same(&expected, signature) {
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
            let Some(field) = crate::integrations::crm::hubspot::portal_field(property) else {
                outcomes.push("ignored");
                continue;
            };
            let change = domain::crm::InboundChange {
                event_id: format!("hubspot:{event_id}"),
                crm_id: object,
                field: field.to_owned(),
                value: e["propertyValue"].as_str().map(str::to_owned),
            };
            outcomes.push(domain::crm::apply_inbound(&txn, &change).await?);
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

/// The route, with its body limit and state. HubSpot's client secret verifies the signatures;
/// the embedded stand-in's when it serves the CRM.
pub fn router(db: DatabaseConnection, settings: &crate::config::Settings) -> axum::Router {
    let secret = match (
        &settings.crm.provider[..],
        &settings.crm.hubspot_client_secret,
    ) {
        ("hubspot", Some(s)) => Some(secrecy::ExposeSecret::expose_secret(s).to_owned()),
        ("hubspot", None) => Some(crate::config::CRM_STANDIN_CLIENT_SECRET.to_owned()),
        _ => None,
    };
    axum::Router::new()
        .route("/webhooks/crm", axum::routing::post(crm))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(CrmWebhook {
            db,
            secret: secret.map(Arc::new),
            public_url: settings.public_url_trimmed(),
        })
}
