//! The two document routes that stream: `POST /documents/upload` and
//! `GET /documents/{id}/download`. Everything else about documents (lists, requests, deleting,
//! sharing) is a server function in `app::api::documents`.
//!
//! **Upload.** A multipart form post (plain HTML, no JavaScript needed): the other fields first,
//! the file last. The route checks the signed-in user and the target (customer, booking, request)
//! before reading the file; checks the file name; reads the first bytes and decides the real type
//! from them (the name's extension must agree; the browser's declared type is ignored); then
//! streams the rest into a multipart upload under a key the portal generates, hashing (SHA-256)
//! and counting as it goes. Past the size limit it stops reading, aborts the upload and refuses.
//! Word and Excel files are ZIPs: once stored, the ZIP's central directory is read back with
//! ranged reads and must name the right entries, or the object is deleted. Only then is the row
//! written; if that fails the object is deleted (and the hourly clean-up catches what a crash
//! leaves). A browser gets a redirect back to its page with `?uploaded=1` or `?upload=<reason>`;
//! other clients get JSON.
//!
//! **Download.** Only after the same access check as the lists (another customer's document, or
//! an id that does not exist: the same 404). Staff downloads are audited. Where the store signs
//! URLs, a redirect to a URL valid for `storage.presign_secs`; otherwise the portal streams the
//! object as an attachment with the stored type and `nosniff`.

use std::time::Duration;

use app::ssr::AppState;
use axum::body::Body;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::auth::UserRecord;
use domain::db::now_ms;
use domain::documents::{
    self as docs, FileName, Kind, SNIFF_BYTES, Sniffed, StoredObject, UploadFields, UploadTarget,
};
use domain::ledger::{self, NewJob, Subject};
use model::Role;
use sha2::{Digest, Sha256};
use tower_sessions::Session;

use domain::ports::storage::{DocumentStore, StorageError};

/// The document store, as the routes hold it.
type Storage = std::sync::Arc<dyn DocumentStore>;

/// The state of the document routes.
#[derive(Clone)]
pub struct DocumentRoutes {
    pub state: AppState,
    pub storage: Storage,
}

/// Room for the form's other fields and the multipart framing on top of the file size limit.
pub const FORM_SLACK: u64 = 256 * 1024;

/// A refused upload: the status, the short code pages map to a message, and the detail for JSON
/// callers and the log.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    detail: String,
}

fn refuse(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        detail: detail.into(),
    }
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// Where a browser is sent back to: the customer's documents page or a customer's page, nothing
/// else (no open redirect).
fn safe_return(raw: Option<&str>, user: &UserRecord) -> String {
    let default = if user.role == Role::Customer {
        "/documents".to_string()
    } else {
        "/customers".to_string()
    };
    match raw.map(str::trim) {
        Some("/documents") => "/documents".into(),
        Some(p)
            if p.strip_prefix("/customers/")
                .is_some_and(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))
                && user.role != Role::Customer =>
        {
            p.into()
        }
        _ => default,
    }
}

fn answer(html: bool, return_to: &str, outcome: Result<(i64, StoredObject), Refusal>) -> Response {
    match (outcome, html) {
        (Ok(_), true) => redirect(&format!("{return_to}?uploaded=1")),
        (Ok((id, o)), false) => (
            StatusCode::CREATED,
            axum::Json(serde_json::json!({
                "id": id, "name": o.display_name, "kind": o.kind.as_str(), "size": o.size_bytes, "sha256": o.sha256,
            })),
        )
            .into_response(),
        (Err(r), true) => redirect(&format!("{return_to}?upload={}", r.code)),
        (Err(r), false) => (
            r.status,
            axum::Json(serde_json::json!({ "error": r.code, "message": r.detail })),
        )
            .into_response(),
    }
}

fn redirect(to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, to.to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

/// The signed-in user who may act (no pending password change or second-factor set-up).
async fn signed_in(state: &AppState, session: &Session) -> Result<UserRecord, StatusCode> {
    match domain::auth::user_for_session(&state.db, session).await {
        Ok(Some(u)) if u.password_change_required || u.needs_second_factor_setup() => {
            Err(StatusCode::FORBIDDEN)
        }
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(StatusCode::UNAUTHORIZED),
        Err(_) => Err(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// After storage failed: a `storage.check` job probes it until it answers, so the failure shows
/// (and then clears) in the integration health area. One per minute at most.
pub async fn report_storage_failure(db: &sea_orm::DatabaseConnection, error: &str) {
    let minute = now_ms() / 60_000;
    let job = NewJob::of(
        &domain::jobs::StorageCheck {
            error: error.chars().take(500).collect::<String>(),
        },
        Subject::new("storage", "documents"),
        format!("storage.check:{minute}"),
    );
    if let Err(e) = ledger::enqueue(db, job).await {
        tracing::warn!(error = %e, "could not record the storage failure");
    }
}

/// `POST /documents/upload`.
pub async fn upload(
    State(r): State<DocumentRoutes>,
    session: Session,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let html = wants_html(&headers);
    let user = match signed_in(&r.state, &session).await {
        Ok(u) => u,
        Err(StatusCode::UNAUTHORIZED) if html => return redirect("/signin"),
        Err(status) => {
            let message = match status {
                StatusCode::UNAUTHORIZED => "Please sign in to upload.",
                StatusCode::FORBIDDEN => "Finish setting up your account first.",
                _ => "Something went wrong on our side.",
            };
            return (
                status,
                axum::Json(serde_json::json!({ "error": "auth", "message": message })),
            )
                .into_response();
        }
    };
    let limits = &r.state.settings.documents;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("The file is larger than {} MB.", limits.max_mb()),
        )
    };
    let mut multipart = match multipart {
        Ok(m) => m,
        Err(e) => {
            let return_to = safe_return(None, &user);
            return answer(
                html,
                &return_to,
                Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "form",
                    format!("Send the file as a multipart form: {e}"),
                )),
            );
        }
    };
    // A body announced as far over the limit is refused before a byte of it is read.
    if declared.is_some_and(|n| n > limits.max_upload_bytes + FORM_SLACK) {
        return answer(html, &safe_return(None, &user), Err(too_large()));
    }
    let mut fields = UploadFields::default();
    let mut return_to_raw: Option<String> = None;
    let mut outcome: Option<Result<(i64, StoredObject), Refusal>> = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                outcome = Some(Err(too_large()));
                break;
            }
            Err(e) => {
                outcome = Some(Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "form",
                    format!(
                        "The upload could not be read (cut off, or a part's header such as the file name holds control characters): {}",
                        e.body_text()
                    ),
                )));
                break;
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            // The file is last: the fields it needs have been read.
            let result = receive_file(&r, &user, &fields, field).await;
            if let Err(refusal) = &result {
                tracing::info!(code = refusal.code, detail = %refusal.detail, user_id = user.id, "upload refused");
            }
            outcome = Some(result);
            break;
        }
        let value = match small_text(field).await {
            Ok(v) => v,
            Err(refusal) => {
                outcome = Some(Err(refusal));
                break;
            }
        };
        match name.as_str() {
            "customer_id" => fields.customer_id = Some(value),
            "booking_id" => fields.booking_id = Some(value),
            "request_id" => fields.request_id = Some(value),
            "category" => fields.category = Some(value),
            "visibility" => fields.visibility = Some(value),
            "return_to" => return_to_raw = Some(value),
            _ => {}
        }
    }
    let outcome = outcome.unwrap_or_else(|| {
        Err(refuse(
            StatusCode::BAD_REQUEST,
            "no_file",
            "Choose a file to upload.",
        ))
    });
    if let Err(refusal) = &outcome {
        // A browser shows the answer more reliably once it has sent its request, so a small
        // remainder is read and dropped; an oversized body is not (that is the point).
        if refusal.code != "too_large" {
            let drain = async {
                while let Ok(Some(mut f)) = multipart.next_field().await {
                    while let Ok(Some(_)) = f.chunk().await {}
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
        }
    }
    answer(html, &safe_return(return_to_raw.as_deref(), &user), outcome)
}

/// A form field other than the file: at most 4 KB of text.
async fn small_text(mut field: Field<'_>) -> Result<String, Refusal> {
    let mut buf = Vec::new();
    loop {
        match field.chunk().await {
            Ok(Some(c)) => {
                buf.extend_from_slice(&c);
                if buf.len() > 4096 {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        "form",
                        "A form field is too long.",
                    ));
                }
            }
            Ok(None) => break,
            Err(e) => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "form",
                    format!("The upload was cut off: {}", e.body_text()),
                ));
            }
        }
    }
    String::from_utf8(buf)
        .map_err(|_| refuse(StatusCode::BAD_REQUEST, "form", "A form field is not text."))
}

/// Checks, streams, verifies and records one file.
async fn receive_file(
    r: &DocumentRoutes,
    user: &UserRecord,
    fields: &UploadFields,
    mut field: Field<'_>,
) -> Result<(i64, StoredObject), Refusal> {
    let db = &r.state.db;
    let limits = &r.state.settings.documents;
    let target: UploadTarget = docs::check_target(db, user, fields)
        .await
        .map_err(|e| match e {
            model::error::AppError::NotFound => refuse(
                StatusCode::NOT_FOUND,
                "not_found",
                "We couldn't find that customer, booking or request.",
            ),
            model::error::AppError::Invalid(m) => refuse(StatusCode::BAD_REQUEST, "form", m),
            _ => refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "error",
                "Could not check the upload's details.",
            ),
        })?;
    let raw_name = field.file_name().unwrap_or_default().to_owned();
    if raw_name.is_empty() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "no_file",
            "Choose a file to upload.",
        ));
    }
    let name = FileName::parse(&raw_name).map_err(|why| {
        refuse(
            StatusCode::BAD_REQUEST,
            "name",
            format!("The file can't be uploaded: {why}."),
        )
    })?;
    let not_allowed = |what: &str| {
        refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "type",
            format!(
                "{what} can't be uploaded. You can upload {}.",
                limits.allowed_labels()
            ),
        )
    };
    let claimed = match Kind::from_extension(name.extension()) {
        Some(k) if limits.allows(k) => k,
        _ => return Err(not_allowed(&format!("Files named .{}", name.extension()))),
    };
    let io_error = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("The file is larger than {} MB.", limits.max_mb()),
            )
        } else {
            refuse(
                StatusCode::BAD_REQUEST,
                "form",
                format!("The upload was cut off: {}", e.body_text()),
            )
        }
    };

    // The first bytes decide the type, before anything is stored.
    let mut head: Vec<u8> = Vec::with_capacity(SNIFF_BYTES);
    let mut pending: Vec<bytes::Bytes> = Vec::new();
    let mut ended = false;
    while head.len() < SNIFF_BYTES {
        match field.chunk().await.map_err(io_error)? {
            Some(c) => {
                let take = (SNIFF_BYTES - head.len()).min(c.len());
                head.extend_from_slice(&c[..take]);
                pending.push(c);
            }
            None => {
                ended = true;
                break;
            }
        }
    }
    if head.is_empty() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "empty",
            "The file is empty.",
        ));
    }
    let sniffed = docs::sniff(&head);
    if let Sniffed::Other(what) = sniffed {
        return Err(not_allowed(&format!("This file is {what}; it")));
    }
    if !sniffed.matches(claimed) {
        return Err(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "mismatch",
            format!(
                "The file is named .{} but its content is {}.",
                name.extension(),
                sniffed.describe()
            ),
        ));
    }

    // Stream into storage, hashing and counting; stop at the limit.
    let key = format!(
        "{}/{}/{}",
        docs::KEY_PREFIX,
        target.customer_id,
        uuid::Uuid::new_v4().simple()
    );
    let storage = &r.storage;
    let unavailable = |e: &StorageError| {
        refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!(
                "Document storage is unreachable ({e}); nothing was saved. Please try again in a few minutes."
            ),
        )
    };
    let mut writer = match storage
        .begin_upload(
            &key,
            claimed.content_type(),
            &docs::content_disposition(name.as_ref()),
        )
        .await
    {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "storage refused an upload");
            report_storage_failure(db, &e.to_string()).await;
            return Err(unavailable(&e));
        }
    };
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let max = limits.max_upload_bytes;
    let mut chunks = pending.into_iter();
    let streamed: Result<(), Refusal> = async {
        loop {
            let chunk = match chunks.next() {
                Some(c) => c,
                None if ended => break,
                None => match field.chunk().await.map_err(io_error)? {
                    Some(c) => c,
                    None => break,
                },
            };
            size += chunk.len() as u64;
            if size > max {
                return Err(refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("The file is larger than {} MB; it was refused after {} MB and nothing was kept.", limits.max_mb(), max / (1024 * 1024)),
                ));
            }
            hasher.update(&chunk);
            writer.write(chunk).await.map_err(|e| unavailable(&e))?;
        }
        Ok(())
    }
    .await;
    if let Err(refusal) = streamed {
        if let Err(e) = writer.abort().await {
            tracing::warn!(error = %e, %key, "could not abort a refused upload; the clean-up job will remove any part left");
        }
        if refusal.code == "unavailable" {
            report_storage_failure(db, &refusal.detail).await;
        }
        return Err(refusal);
    }
    if let Err(e) = writer.finish().await {
        tracing::warn!(error = %e, "storage failed to complete an upload");
        report_storage_failure(db, &e.to_string()).await;
        return Err(unavailable(&e));
    }

    // Word and Excel: the entries decide, read back from the stored object.
    if claimed.is_zip() {
        let verdict = office_kind_of(storage, &key, size).await;
        let refusal = match verdict {
            Ok(Some(k)) if k == claimed => None,
            Ok(Some(k)) => Some(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "mismatch",
                format!(
                    "The file is named .{} but it is a {} file.",
                    name.extension(),
                    k.label()
                ),
            )),
            Ok(None) => Some(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "mismatch",
                format!(
                    "The file is named .{} but it is a ZIP archive that is not a {} file (or it contains macros).",
                    name.extension(),
                    claimed.label()
                ),
            )),
            Err(e) => {
                report_storage_failure(db, &e.to_string()).await;
                Some(unavailable(&e))
            }
        };
        if let Some(refusal) = refusal {
            remove_quietly(storage, &key).await;
            return Err(refusal);
        }
    }

    let object = StoredObject {
        object_key: key.clone(),
        display_name: name.as_ref().to_owned(),
        kind: claimed,
        size_bytes: size as i64,
        sha256: hex::encode(hasher.finalize()),
    };
    match docs::record_upload(db, &r.state.settings, user, &target, &object).await {
        Ok(id) => {
            tracing::info!(
                document_id = id,
                size,
                kind = claimed.as_str(),
                "document uploaded"
            );
            Ok((id, object))
        }
        Err(e) => {
            tracing::error!(error = %e, "could not record an upload; removing its object");
            remove_quietly(storage, &key).await;
            Err(refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "error",
                "The file could not be saved.",
            ))
        }
    }
}

/// Deletes an object whose upload was refused after it was stored. If even that fails, the
/// hourly clean-up removes it (it has no row).
async fn remove_quietly(storage: &Storage, key: &str) {
    if let Err(e) = storage.delete(key).await {
        tracing::warn!(error = %e, %key, "could not delete a refused object; the clean-up job will");
    }
}

/// Which Office kind a stored ZIP is, from its central directory (two ranged reads).
async fn office_kind_of(
    storage: &Storage,
    key: &str,
    size: u64,
) -> Result<Option<Kind>, StorageError> {
    let tail_len = size.min(22 + 65_535);
    let tail = storage.get_range(key, size - tail_len..size).await?;
    let Some((offset, cd_size)) = docs::find_central_directory(&tail, size) else {
        return Ok(None);
    };
    if cd_size > 4 * 1024 * 1024 {
        return Ok(None);
    }
    let cd = storage.get_range(key, offset..offset + cd_size).await?;
    Ok(docs::office_kind(&docs::central_directory_names(&cd)))
}

/// `GET /documents/{id}/download`.
pub async fn download(
    State(r): State<DocumentRoutes>,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "Not found").into_response();
    let user = match signed_in(&r.state, &session).await {
        Ok(u) => u,
        Err(StatusCode::UNAUTHORIZED) => {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in</title></head><body><p>Please <a href=\"/signin\">sign in</a> to download this document.</p></body></html>",
            )
                .into_response();
        }
        Err(StatusCode::FORBIDDEN) => {
            return (
                StatusCode::FORBIDDEN,
                "Finish setting up your account first.",
            )
                .into_response();
        }
        Err(status) => return status.into_response(),
    };
    let Ok(id) = id.parse::<i64>() else {
        return not_found();
    };
    let doc = match docs::get(&r.state.db, id).await {
        Ok(Some(d)) if docs::can_see(&user, &d) => d,
        Ok(_) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "could not read a document");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if user.role != Role::Customer
        && let Err(e) = domain::audit::record_access(
            &r.state.db,
            user.id,
            "document.downloaded",
            doc.customer_id,
            ("document", &doc.id.to_string()),
            &format!("document {} ({})", doc.id, doc.kind),
        )
        .await
    {
        tracing::error!(error = %e, "could not audit a staff download; refusing it");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    if let Some(url) = r.storage.presigned_get(&doc.object_key).await {
        return (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, url.to_string()),
                (header::CACHE_CONTROL, "no-store".to_owned()),
            ],
        )
            .into_response();
    }
    let object = match r.storage.get(&doc.object_key).await {
        Ok(o) => o,
        Err(StorageError::NotFound) => {
            tracing::error!(
                document_id = doc.id,
                "a document's object is missing from storage"
            );
            let _ = ledger::enqueue(
                &r.state.db,
                crate::jobs::storage::missing_job(doc.id, &doc.object_key),
            )
            .await;
            return not_found();
        }
        Err(e) => {
            tracing::warn!(error = %e, "storage unreachable for a download");
            report_storage_failure(&r.state.db, &e.to_string()).await;
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "Document storage is unreachable just now; please try again in a few minutes.",
            )
                .into_response();
        }
    };
    let size = object.size;
    let mut res = Body::from_stream(object.chunks).into_response();
    let h = res.headers_mut();
    let value = |s: &str| {
        HeaderValue::from_str(s)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
    };
    h.insert(header::CONTENT_TYPE, value(&doc.content_type));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&docs::content_disposition(&doc.display_name))
            .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    res
}
