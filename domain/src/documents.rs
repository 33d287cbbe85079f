//! Documents: what the portal knows about each file exchanged with a customer, who may see it,
//! and every change to it, with its outbound effects (emails, object deletion) enqueued in the
//! same transaction. Also, re-exported from the `guards` crate (where they are fuzzed), the pure
//! checks an upload goes through: the file name, the content's real type from its first bytes,
//! and, for Word and Excel files, the entries of the ZIP's central directory.
//!
//! The content lives in the object store (the server crate's `storage` module streams it there
//! under a key the portal generates); this module never touches it, so it builds without
//! `object_store`. The rows here are the source of truth for a document's metadata; the object
//! store is the source of truth for its bytes.
//!
//! Who sees what: a customer sees the documents in their own space that are shared with them or
//! that they uploaded; staff and admins see every customer's documents, and each download by
//! staff is written to the audit log. Anything else answers "not found".

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult};

use crate::db::{self, col, now_ms};
use crate::email as mail;
use crate::ledger::{self, NewJob, Subject};
use crate::records::UserRecord;
pub use crate::settings::DocumentLimits;
use crate::settings::PortalSettings;
use model::error::AppError;
use model::{DocumentStatus, Role};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// How long before a request's due date the customer is reminded.
pub const REMINDER_BEFORE_MS: i64 = 2 * DAY_MS;

/// Prefix of every document object's key: `documents/<customer id>/<uuid>`.
pub const KEY_PREFIX: &str = "documents";

// ---------------------------------------------------------------------------------------------
// The pure checks on an upload's name and bytes live in the `guards` crate, where they are
// fuzzed; they are re-exported here, where the rest of the portal has always found them.

pub use guards::upload::{
    FileName, Kind, MAX_NAME_CHARS, SNIFF_BYTES, Sniffed, central_directory_names,
    content_disposition, find_central_directory, office_kind, sniff,
};

// ---------------------------------------------------------------------------------------------
// Configuration the pages and the upload route share.

// ---------------------------------------------------------------------------------------------
// Categories.

pub const CATEGORIES: [(&str, &str); 5] = [
    ("agreement", "Agreement"),
    ("report", "Report"),
    ("invoice", "Invoice"),
    ("id", "ID document"),
    ("other", "Other"),
];

pub fn category_label(code: &str) -> &'static str {
    CATEGORIES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, l)| *l)
        .unwrap_or("Other")
}

pub fn parse_category(code: &str) -> Option<&'static str> {
    CATEGORIES
        .iter()
        .find(|(c, _)| *c == code.trim())
        .map(|(c, _)| *c)
}

// ---------------------------------------------------------------------------------------------
// Rows.

/// A document row.
#[derive(Clone, Debug, sea_orm::FromQueryResult)]
pub struct Document {
    pub id: i64,
    pub customer_id: i64,
    pub uploaded_by: i64,
    pub uploader_role: Role,
    pub uploader_name: String,
    pub booking_id: Option<i64>,
    pub category: String,
    pub visibility: String,
    pub display_name: String,
    pub kind: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub object_key: String,
    pub status: DocumentStatus,
    pub created_at: i64,
}

impl Document {
    pub fn shared(&self) -> bool {
        self.visibility == "shared"
    }
}

const DOC_SQL: &str = "SELECT d.id AS id, d.customer_id AS customer_id, d.uploaded_by AS uploaded_by, u.role AS uploader_role, \
    u.name AS uploader_name, d.booking_id AS booking_id, d.category AS category, d.visibility AS visibility, \
    d.display_name AS display_name, d.kind AS kind, d.content_type AS content_type, d.size_bytes AS size_bytes, \
    d.sha256 AS sha256, d.object_key AS object_key, d.status AS status, d.created_at AS created_at \
    FROM documents d JOIN users u ON u.id = d.uploaded_by";

/// A stored (not deleted) document by id.
#[tracing::instrument(skip_all, err)]
pub async fn get<C: ConnectionTrait>(conn: &C, id: i64) -> Result<Option<Document>, DbErr> {
    db::query_one(
        conn,
        &format!("{DOC_SQL} WHERE d.id = ? AND d.status = 'stored'"),
        vec![id.into()],
    )
    .await?
    .map(|r| Document::from_query_result(&r, ""))
    .transpose()
}

/// Whether `user` may see (and download) `doc`.
pub fn can_see(user: &UserRecord, doc: &Document) -> bool {
    match user.role {
        Role::Admin | Role::Staff => true,
        Role::Customer => {
            doc.customer_id == user.id && (doc.shared() || doc.uploaded_by == user.id)
        }
    }
}

/// Whether `user` may delete `doc`: staff and admins, and a customer for what they uploaded
/// themselves (documents staff shared are the business's records).
pub fn can_delete(user: &UserRecord, doc: &Document) -> bool {
    match user.role {
        Role::Admin | Role::Staff => true,
        Role::Customer => doc.customer_id == user.id && doc.uploaded_by == user.id,
    }
}

/// The documents a customer's space holds, newest first. `customer_view` leaves out internal
/// documents staff did not share (customers never see them, nor learn they exist).
#[tracing::instrument(skip_all, err)]
pub async fn list_for_customer<C: ConnectionTrait>(
    conn: &C,
    customer_id: i64,
    customer_view: bool,
) -> Result<Vec<Document>, DbErr> {
    let filter = if customer_view {
        " AND (d.visibility = 'shared' OR d.uploaded_by = d.customer_id)"
    } else {
        ""
    };
    db::query(
        conn,
        &format!(
            "{DOC_SQL} WHERE d.customer_id = ? AND d.status = 'stored'{filter} ORDER BY d.created_at DESC, d.id DESC LIMIT 1000"
        ),
        vec![customer_id.into()],
    )
    .await?
    .iter()
    .map(|r| Document::from_query_result(r, ""))
    .collect()
}

/// Every stored object key (the orphan check compares the store's listing with these).
#[tracing::instrument(skip_all, err)]
pub async fn all_object_keys<C: ConnectionTrait>(
    conn: &C,
) -> Result<Vec<(i64, String, i64)>, DbErr> {
    db::query(
        conn,
        "SELECT id, object_key, created_at FROM documents",
        vec![],
    )
    .await?
    .iter()
    .map(|r| Ok((col(r, "id")?, col(r, "object_key")?, col(r, "created_at")?)))
    .collect()
}

/// Where an upload goes, checked before a byte is stored.
#[derive(Clone, Debug)]
pub struct UploadTarget {
    pub customer_id: i64,
    pub booking_id: Option<i64>,
    pub request_id: Option<i64>,
    pub category: &'static str,
    pub visibility: &'static str,
}

/// What the upload form said, before checking.
#[derive(Clone, Debug, Default)]
pub struct UploadFields {
    pub customer_id: Option<String>,
    pub booking_id: Option<String>,
    pub request_id: Option<String>,
    pub category: Option<String>,
    pub visibility: Option<String>,
}

fn opt_id(v: &Option<String>) -> Result<Option<i64>, AppError> {
    match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .map(Some)
            .map_err(|_| AppError::Invalid("The form had an id that is not a number.".into())),
    }
}

/// Checks the form's fields for `uploader`: a customer uploads into their own space (always
/// shared with them); staff and admins into an existing customer's, shared or internal. A booking
/// or request must belong to that customer (an open request). Anything else is "not found".
#[tracing::instrument(skip_all)]
pub async fn check_target<C: ConnectionTrait>(
    conn: &C,
    uploader: &UserRecord,
    f: &UploadFields,
) -> Result<UploadTarget, AppError> {
    let request_id = opt_id(&f.request_id)?;
    let category = match f
        .category
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(c) => parse_category(c)
            .ok_or_else(|| AppError::Invalid("Choose a category for the document.".into()))?,
        None if request_id.is_some() => "other",
        None => {
            return Err(AppError::Invalid(
                "Choose a category for the document.".into(),
            ));
        }
    };
    let (customer_id, visibility) = match uploader.role {
        Role::Customer => (uploader.id, "shared"),
        Role::Staff | Role::Admin => {
            let id = opt_id(&f.customer_id)?.ok_or(AppError::NotFound)?;
            let is_customer = db::query_one(
                conn,
                "SELECT id FROM users WHERE id = ? AND role = 'customer'",
                vec![id.into()],
            )
            .await?
            .is_some();
            if !is_customer {
                return Err(AppError::NotFound);
            }
            let visibility = match f.visibility.as_deref().map(str::trim) {
                Some("internal") => "internal",
                Some("shared") | None | Some("") => "shared",
                Some(_) => {
                    return Err(AppError::Invalid(
                        "Choose whether the document is shared with the customer or internal."
                            .into(),
                    ));
                }
            };
            (id, visibility)
        }
    };
    let booking_id = opt_id(&f.booking_id)?;
    if let Some(b) = booking_id {
        let ok = db::query_one(
            conn,
            "SELECT id FROM bookings WHERE id = ? AND customer_id = ?",
            vec![b.into(), customer_id.into()],
        )
        .await?
        .is_some();
        if !ok {
            return Err(AppError::NotFound);
        }
    }
    if let Some(r) = request_id {
        let ok = db::query_one(
            conn,
            "SELECT id FROM document_requests WHERE id = ? AND customer_id = ? AND status = 'open'",
            vec![r.into(), customer_id.into()],
        )
        .await?
        .is_some();
        if !ok {
            return Err(AppError::NotFound);
        }
    }
    Ok(UploadTarget {
        customer_id,
        booking_id,
        request_id,
        category,
        visibility,
    })
}

/// A stored object, ready to be recorded.
#[derive(Clone, Debug)]
pub struct StoredObject {
    pub object_key: String,
    pub display_name: String,
    pub kind: Kind,
    pub size_bytes: i64,
    pub sha256: String,
}

/// Records an upload whose object is already stored, in one transaction: the row, the request it
/// fulfils, the email to the customer when staff share it, and the audit entry. If this fails
/// the caller deletes the object (and the hourly clean-up removes it if that fails too).
#[tracing::instrument(skip_all)]
pub async fn record_upload(
    db: &DatabaseConnection,
    settings: &PortalSettings,
    uploader: &UserRecord,
    target: &UploadTarget,
    object: &StoredObject,
) -> Result<i64, AppError> {
    let txn = db::begin_write(db).await?;
    // Re-check the request inside the write transaction: two uploads for one request fulfil it once.
    let now = now_ms();
    let row = db::query_one(
        &txn,
        "INSERT INTO documents (customer_id, uploaded_by, booking_id, category, visibility, display_name, kind, content_type, \
         size_bytes, sha256, object_key, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'stored', ?, ?) RETURNING id",
        vec![
            target.customer_id.into(), uploader.id.into(), target.booking_id.into(), target.category.into(),
            target.visibility.into(), object.display_name.clone().into(), object.kind.as_str().into(),
            object.kind.content_type().into(), object.size_bytes.into(), object.sha256.clone().into(),
            object.object_key.clone().into(), now.into(), now.into(),
        ],
    )
    .await?
    .ok_or(AppError::Internal)?;
    let id: i64 = col(&row, "id")?;
    if let Some(r) = target.request_id {
        db::execute(
            &txn,
            "UPDATE document_requests SET status = 'fulfilled', document_id = ?, fulfilled_at = ?, updated_at = ? WHERE id = ? AND status = 'open'",
            vec![id.into(), now.into(), now.into(), r.into()],
        )
        .await?;
    }
    if uploader.role != Role::Customer && target.visibility == "shared" {
        notify_shared(&txn, settings, target.customer_id, id, &object.display_name).await?;
    }
    crate::audit::record(
        &txn,
        Some(uploader.id),
        "document.uploaded",
        "document",
        &id.to_string(),
        &format!(
            "{} for customer {} ({} bytes, {}, {})",
            target.category,
            target.customer_id,
            object.size_bytes,
            object.kind.as_str(),
            target.visibility
        ),
    )
    .await?;
    txn.commit().await?;
    Ok(id)
}

/// Emails the customer that a document was shared with them (once per document).
async fn notify_shared<C: ConnectionTrait>(
    conn: &C,
    settings: &PortalSettings,
    customer_id: i64,
    document_id: i64,
    name: &str,
) -> Result<(), DbErr> {
    let Some(customer) = crate::records::find_user(conn, customer_id).await? else {
        return Ok(());
    };
    if !customer.active {
        return Ok(());
    }
    let message = mail::templates::document_shared(settings, &customer.name, name);
    mail::enqueue(
        conn,
        settings,
        Some(customer.id),
        &customer.email,
        message,
        &format!("document:shared:{document_id}"),
    )
    .await?;
    Ok(())
}

/// Shares an internal document with its customer (emailing them), or makes a shared one
/// internal again. Staff and admins only (checked by the caller).
#[tracing::instrument(skip_all)]
pub async fn set_shared(
    db: &DatabaseConnection,
    settings: &PortalSettings,
    actor: &UserRecord,
    id: i64,
    shared: bool,
) -> Result<(), AppError> {
    let txn = db::begin_write(db).await?;
    let doc = get(&txn, id).await?.ok_or(AppError::NotFound)?;
    let visibility = if shared { "shared" } else { "internal" };
    if doc.uploaded_by == doc.customer_id && !shared {
        return Err(AppError::Conflict(
            "The customer uploaded this document, so it stays visible to them.".into(),
        ));
    }
    db::execute(
        &txn,
        "UPDATE documents SET visibility = ?, updated_at = ? WHERE id = ?",
        vec![visibility.into(), now_ms().into(), id.into()],
    )
    .await?;
    if shared && !doc.shared() {
        notify_shared(&txn, settings, doc.customer_id, id, &doc.display_name).await?;
    }
    crate::audit::record(
        &txn,
        Some(actor.id),
        if shared {
            "document.shared"
        } else {
            "document.unshared"
        },
        "document",
        &id.to_string(),
        &format!("customer {}", doc.customer_id),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// The job that removes a document's object and then its row.
pub fn delete_job(document_id: i64, object_key: &str) -> NewJob {
    NewJob::of(
        &crate::jobs::DeleteObject {
            document_id,
            object_key: object_key.to_owned(),
        },
        Subject::new("document", document_id),
        format!("storage.delete:document:{document_id}"),
    )
}

/// Deletes a document: it disappears from every list at once, and a `storage.delete_object` job
/// (retried on failure) removes the object, then the row.
#[tracing::instrument(skip_all)]
pub async fn delete(db: &DatabaseConnection, actor: &UserRecord, id: i64) -> Result<(), AppError> {
    let txn = db::begin_write(db).await?;
    let doc = get(&txn, id).await?.ok_or(AppError::NotFound)?;
    if !can_see(actor, &doc) || !can_delete(actor, &doc) {
        return Err(AppError::NotFound);
    }
    mark_deleting(&txn, &doc, Some(actor.id)).await?;
    crate::audit::record(
        &txn,
        Some(actor.id),
        "document.deleted",
        "document",
        &id.to_string(),
        &format!("customer {}", doc.customer_id),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

async fn mark_deleting<C: ConnectionTrait>(
    conn: &C,
    doc: &Document,
    actor: Option<i64>,
) -> Result<(), DbErr> {
    let now = now_ms();
    db::execute(
        conn,
        "UPDATE documents SET status = 'deleting', deleted_at = ?, deleted_by = ?, updated_at = ? WHERE id = ? AND status = 'stored'",
        vec![now.into(), actor.into(), now.into(), doc.id.into()],
    )
    .await?;
    ledger::enqueue(conn, delete_job(doc.id, &doc.object_key)).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Requests.

/// A request for a document.
#[derive(Clone, Debug, sea_orm::FromQueryResult)]
pub struct Request {
    pub id: i64,
    pub customer_id: i64,
    pub requested_by_name: String,
    pub description: String,
    pub category: String,
    pub due_at: i64,
    pub status: String,
    pub document_id: Option<i64>,
    pub fulfilled_at: Option<i64>,
    pub created_at: i64,
}

const REQ_SQL: &str = "SELECT r.id AS id, r.customer_id AS customer_id, u.name AS requested_by_name, r.description AS description, \
    r.category AS category, r.due_at AS due_at, r.status AS status, r.document_id AS document_id, r.fulfilled_at AS fulfilled_at, \
    r.created_at AS created_at FROM document_requests r JOIN users u ON u.id = r.requested_by";

#[tracing::instrument(skip_all, err)]
pub async fn get_request<C: ConnectionTrait>(conn: &C, id: i64) -> Result<Option<Request>, DbErr> {
    db::query_one(conn, &format!("{REQ_SQL} WHERE r.id = ?"), vec![id.into()])
        .await?
        .map(|r| Request::from_query_result(&r, ""))
        .transpose()
}

/// A customer's requests: open ones first by due date, then the rest, newest first.
#[tracing::instrument(skip_all, err)]
pub async fn requests_for_customer<C: ConnectionTrait>(
    conn: &C,
    customer_id: i64,
    open_only: bool,
) -> Result<Vec<Request>, DbErr> {
    let filter = if open_only {
        " AND r.status = 'open'"
    } else {
        ""
    };
    db::query(
        conn,
        &format!(
            "{REQ_SQL} WHERE r.customer_id = ?{filter} ORDER BY CASE WHEN r.status = 'open' THEN 0 ELSE 1 END, r.due_at, r.id DESC LIMIT 500"
        ),
        vec![customer_id.into()],
    )
    .await?
    .iter()
    .map(|r| Request::from_query_result(r, ""))
    .collect()
}

/// Parses a due date typed as `YYYY-MM-DD`: due at the end of that day in the business's zone.
/// It must be today or later (and within two years).
pub fn parse_due_date(input: &str, tz: slots::Tz, now: i64) -> Result<i64, String> {
    use slots::chrono::{NaiveDate, TimeZone};
    let d = NaiveDate::parse_from_str(input.trim(), "%Y-%m-%d")
        .map_err(|_| "The due date must look like 2026-12-31.".to_string())?;
    let end = d
        .succ_opt()
        .and_then(|n| n.and_hms_opt(0, 0, 0))
        .and_then(|t| tz.from_local_datetime(&t).earliest())
        .ok_or_else(|| "The due date is not valid in the business's time zone.".to_string())?
        .timestamp_millis()
        - 1;
    if end < now {
        return Err("The due date is in the past: choose today or a later day.".into());
    }
    if end > now + 730 * DAY_MS {
        return Err("The due date is more than two years away.".into());
    }
    Ok(end)
}

/// Asks a customer for a document: the request, the email to the customer and a reminder
/// [`REMINDER_BEFORE_MS`] before it is due (none when that moment has already passed), in one
/// transaction.
#[tracing::instrument(skip_all)]
pub async fn create_request(
    db: &DatabaseConnection,
    settings: &PortalSettings,
    actor: &UserRecord,
    customer_id: i64,
    description: &str,
    category: &str,
    due: &str,
) -> Result<i64, AppError> {
    let description = description.split_whitespace().collect::<Vec<_>>().join(" ");
    if description.is_empty() || description.chars().count() > 300 {
        return Err(AppError::Invalid(
            "Say which document you need, in at most 300 characters.".into(),
        ));
    }
    let category = parse_category(if category.trim().is_empty() {
        "other"
    } else {
        category
    })
    .ok_or_else(|| AppError::Invalid("Choose a category for the document.".into()))?;
    let biz = crate::records::business(db).await?;
    let now = now_ms();
    let due_at = parse_due_date(due, biz.tz, now).map_err(AppError::Invalid)?;
    let txn = db::begin_write(db).await?;
    let customer = crate::records::find_user(&txn, customer_id)
        .await?
        .filter(|u| u.role == Role::Customer)
        .ok_or(AppError::NotFound)?;
    let row = db::query_one(
        &txn,
        "INSERT INTO document_requests (customer_id, requested_by, description, category, due_at, status, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, 'open', ?, ?) RETURNING id",
        vec![customer_id.into(), actor.id.into(), description.clone().into(), category.into(), due_at.into(), now.into(), now.into()],
    )
    .await?
    .ok_or(AppError::Internal)?;
    let id: i64 = col(&row, "id")?;
    let due_text = crate::records::local_time(due_at, biz.tz);
    if customer.active {
        let message =
            mail::templates::document_requested(settings, &customer.name, &description, &due_text);
        mail::enqueue(
            &txn,
            settings,
            Some(customer.id),
            &customer.email,
            message,
            &format!("document:request:{id}"),
        )
        .await?;
    }
    let remind_at = due_at - REMINDER_BEFORE_MS;
    if remind_at > now + HOUR_MS {
        ledger::enqueue(
            &txn,
            NewJob::of(
                &crate::jobs::RequestReminder { request_id: id },
                Subject::new("customer", customer_id),
                format!("documents.request_reminder:{id}"),
            )
            .at(remind_at),
        )
        .await?;
    }
    crate::audit::record(
        &txn,
        Some(actor.id),
        "document.requested",
        "document_request",
        &id.to_string(),
        &format!("customer {customer_id}, {category}"),
    )
    .await?;
    txn.commit().await?;
    Ok(id)
}

/// Withdraws an open request (its reminder then sends nothing).
#[tracing::instrument(skip_all)]
pub async fn cancel_request(
    db: &DatabaseConnection,
    actor: &UserRecord,
    id: i64,
) -> Result<(), AppError> {
    let txn = db::begin_write(db).await?;
    let n = db::execute(
        &txn,
        "UPDATE document_requests SET status = 'cancelled', updated_at = ? WHERE id = ? AND status = 'open'",
        vec![now_ms().into(), id.into()],
    )
    .await?;
    if n == 0 {
        return Err(match get_request(&txn, id).await? {
            Some(_) => AppError::Conflict("That request is no longer open.".into()),
            None => AppError::NotFound,
        });
    }
    crate::audit::record(
        &txn,
        Some(actor.id),
        "document.request_cancelled",
        "document_request",
        &id.to_string(),
        "",
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// The reminder for an open request: emails the customer, once. Nothing for a request that was
/// fulfilled or withdrawn meanwhile, or for a closed account.
#[tracing::instrument(skip_all, err)]
pub async fn send_reminder(
    db: &DatabaseConnection,
    settings: &PortalSettings,
    request_id: i64,
) -> Result<bool, DbErr> {
    let txn = db::begin_write(db).await?;
    let Some(r) = get_request(&txn, request_id).await? else {
        return Ok(false);
    };
    if r.status != "open" {
        return Ok(false);
    }
    let Some(customer) = crate::records::find_user(&txn, r.customer_id).await? else {
        return Ok(false);
    };
    if !customer.active {
        return Ok(false);
    }
    let biz = crate::records::business(&txn).await?;
    let message = mail::templates::document_request_reminder(
        settings,
        &customer.name,
        &r.description,
        &crate::records::local_time(r.due_at, biz.tz),
    );
    mail::enqueue(
        &txn,
        settings,
        Some(customer.id),
        &customer.email,
        message,
        &format!("document:request_reminder:{request_id}"),
    )
    .await?;
    txn.commit().await?;
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// Retention.

/// The retention period for documents of closed (deactivated) accounts, in days; `None` keeps
/// them until someone deletes them.
#[tracing::instrument(skip_all, err)]
pub async fn retention_days<C: ConnectionTrait>(conn: &C) -> Result<Option<i64>, DbErr> {
    let r = db::query_one(
        conn,
        "SELECT documents_retention_days FROM business_settings WHERE id = 1",
        vec![],
    )
    .await?;
    Ok(r.and_then(|r| {
        col::<Option<i32>>(&r, "documents_retention_days")
            .ok()
            .flatten()
    })
    .map(i64::from))
}

/// Sets (or clears) the retention period. Admins only (checked by the caller); audited.
#[tracing::instrument(skip_all)]
pub async fn set_retention_days(
    db: &DatabaseConnection,
    actor: &UserRecord,
    days: Option<i64>,
) -> Result<(), AppError> {
    if days.is_some_and(|d| !(1..=36_500).contains(&d)) {
        return Err(AppError::Invalid(
            "The retention period must be between 1 and 36,500 days, or empty to keep documents."
                .into(),
        ));
    }
    let txn = db::begin_write(db).await?;
    db::execute(
        &txn,
        "UPDATE business_settings SET documents_retention_days = ?, updated_at = ? WHERE id = 1",
        vec![days.map(|d| d as i32).into(), now_ms().into()],
    )
    .await?;
    crate::audit::record(
        &txn,
        Some(actor.id),
        "document.retention_set",
        "business_settings",
        "1",
        &match days {
            Some(d) => format!("documents of closed accounts removed {d} days after closing"),
            None => "documents of closed accounts kept".into(),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Marks for deletion the documents of accounts closed more than the retention period ago (the
/// account's last change is its closing time: deactivation is the last change a closed account
/// gets, and anything later only delays the removal). Each gets its own deletion job. Returns
/// how many were marked.
#[tracing::instrument(skip_all, err)]
pub async fn apply_retention(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let Some(days) = retention_days(db).await? else {
        return Ok(0);
    };
    let cutoff = now_ms() - days * DAY_MS;
    let txn = db::begin_write(db).await?;
    let docs: Vec<Document> = db::query(
        &txn,
        &format!(
            "{DOC_SQL} JOIN users c ON c.id = d.customer_id WHERE d.status = 'stored' AND c.status = 'deactivated' AND c.updated_at <= ? LIMIT 500"
        ),
        vec![cutoff.into()],
    )
    .await?
    .iter()
    .map(|r| Document::from_query_result(r, ""))
    .collect::<Result<_, _>>()?;
    for doc in &docs {
        mark_deleting(&txn, doc, None).await?;
        crate::audit::record(
            &txn,
            None,
            "document.retention_deleted",
            "document",
            &doc.id.to_string(),
            &format!("customer {} closed over {days} days ago", doc.customer_id),
        )
        .await?;
    }
    txn.commit().await?;
    Ok(docs.len() as u64)
}

/// Sizes for people: `812 bytes`, `14.2 KB`, `3.4 MB`.
pub fn human_size(bytes: i64) -> String {
    if bytes < 1024 {
        format!("{bytes} bytes")
    } else if bytes < 1024 * 1024 {
        format!("{:.1} KB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
    }
}

/// Document requests still open and not yet due at `now`.
#[tracing::instrument(skip_all, err)]
pub async fn open_requests<C: ConnectionTrait>(conn: &C, now: i64) -> Result<i64, DbErr> {
    let r = db::query_one(
        conn,
        "SELECT COUNT(*) AS n FROM document_requests WHERE status = 'open' AND due_at > ?",
        vec![now.into()],
    )
    .await?;
    Ok(r.map(|r| col::<i64>(&r, "n")).transpose()?.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_well() {
        let l = DocumentLimits::default();
        assert_eq!(
            l.allowed_labels(),
            "PDF, JPEG, PNG, HEIC, Word (.docx) and Excel (.xlsx)"
        );
        assert_eq!(l.max_mb(), 20);
        assert!(l.accept().starts_with(".pdf,.jpg,.jpeg"));
        assert_eq!(human_size(2048), "2.0 KB");
    }
}
