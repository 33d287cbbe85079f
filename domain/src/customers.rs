//! Customers as staff see them: the list with their documents and open requests, and the notes
//! staff keep about them (in the portal only, never sent anywhere).

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult};

use crate::{audit, db};
use model::error::AppError;

/// A customer in the staff's list.
#[derive(Clone, Debug, FromQueryResult)]
pub struct CustomerSummary {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub status: String,
    pub documents: i64,
    pub open_requests: i64,
}

async fn summaries<C: ConnectionTrait>(
    conn: &C,
    where_sql: &str,
    values: Vec<sea_orm::Value>,
) -> Result<Vec<CustomerSummary>, DbErr> {
    db::query(
        conn,
        &format!(
            "SELECT u.id AS id, u.name AS name, u.email AS email, u.status AS status, \
             (SELECT COUNT(*) FROM documents d WHERE d.customer_id = u.id AND d.status = 'stored') AS documents, \
             (SELECT COUNT(*) FROM document_requests r WHERE r.customer_id = u.id AND r.status = 'open') AS open_requests \
             FROM users u WHERE u.role = 'customer' AND {where_sql} ORDER BY u.name, u.id LIMIT 500"
        ),
        values,
    )
    .await?
    .iter()
    .map(|r| CustomerSummary::from_query_result(r, ""))
    .collect()
}

/// Customers whose name or email contains `q` (all when empty), by name, at most 500.
#[tracing::instrument(skip_all, err)]
pub async fn list<C: ConnectionTrait>(conn: &C, q: &str) -> Result<Vec<CustomerSummary>, DbErr> {
    let q = q.trim().to_lowercase();
    if q.is_empty() {
        return summaries(conn, "1 = 1", vec![]).await;
    }
    let like = format!("%{}%", q.replace(['%', '_'], ""));
    summaries(
        conn,
        "(LOWER(u.name) LIKE ? OR u.email LIKE ?)",
        vec![like.clone().into(), like.into()],
    )
    .await
}

/// One customer's summary.
#[tracing::instrument(skip_all, err)]
pub async fn one<C: ConnectionTrait>(conn: &C, id: i64) -> Result<Option<CustomerSummary>, DbErr> {
    Ok(summaries(conn, "u.id = ?", vec![id.into()])
        .await?
        .into_iter()
        .next())
}

/// The id of the account with this email (lower-cased), if any.
#[tracing::instrument(skip_all, err)]
pub async fn id_by_email<C: ConnectionTrait>(conn: &C, email: &str) -> Result<Option<i64>, DbErr> {
    db::query_one(
        conn,
        "SELECT id FROM users WHERE email = ?",
        vec![email.to_lowercase().into()],
    )
    .await?
    .map(|r| db::col::<i64>(&r, "id"))
    .transpose()
}

/// A note staff keep about a customer.
#[derive(Clone, Debug, FromQueryResult)]
pub struct NoteRecord {
    pub body: String,
    pub author: String,
    pub created_at: i64,
}

/// The newest hundred notes about a customer.
#[tracing::instrument(skip_all, err)]
pub async fn notes<C: ConnectionTrait>(
    conn: &C,
    customer_id: i64,
) -> Result<Vec<NoteRecord>, DbErr> {
    db::query(
        conn,
        "SELECT n.body AS body, n.created_at AS created_at, COALESCE(u.name, '') AS author FROM customer_notes n LEFT JOIN users u ON u.id = n.author_id WHERE n.customer_id = ? ORDER BY n.created_at DESC, n.id DESC LIMIT 100",
        vec![customer_id.into()],
    )
    .await?
    .iter()
    .map(|r| NoteRecord::from_query_result(r, ""))
    .collect()
}

/// Adds a note (already checked) about a customer. Audited; an unknown customer is 404.
#[tracing::instrument(skip_all)]
pub async fn add_note(
    db: &DatabaseConnection,
    actor: i64,
    customer_id: i64,
    body: &str,
) -> Result<(), AppError> {
    let txn = db::begin_write(db).await?;
    let exists = db::query_one(
        &txn,
        "SELECT id FROM users WHERE id = ? AND role = 'customer'",
        vec![customer_id.into()],
    )
    .await?;
    if exists.is_none() {
        return Err(AppError::NotFound);
    }
    db::execute(
        &txn,
        "INSERT INTO customer_notes (customer_id, author_id, body, created_at) VALUES (?, ?, ?, ?)",
        vec![
            customer_id.into(),
            actor.into(),
            body.into(),
            db::now_ms().into(),
        ],
    )
    .await?;
    audit::record(
        &txn,
        Some(actor),
        "customer.note",
        "user",
        &customer_id.to_string(),
        "note added",
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Customers who asked to be deleted and are not erased yet: `(id, name, email, asked at)`.
#[tracing::instrument(skip_all, err)]
pub async fn deletion_requests<C: ConnectionTrait>(
    conn: &C,
) -> Result<Vec<(i64, String, String, i64)>, DbErr> {
    db::query(
        conn,
        "SELECT id, name, email, deletion_requested_at FROM users WHERE deletion_requested_at IS NOT NULL AND erased_at IS NULL ORDER BY deletion_requested_at",
        vec![],
    )
    .await?
    .iter()
    .map(|r| {
        Ok((
            db::col(r, "id")?,
            db::col(r, "name")?,
            db::col(r, "email")?,
            db::col(r, "deletion_requested_at")?,
        ))
    })
    .collect()
}
