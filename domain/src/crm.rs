//! CRM sync, the portal side: what a customer looks like to the CRM (only mapped fields), marking
//! a customer changed (coalesced: a burst of changes is one push), the CRM-owned fields shown in
//! the portal, and inbound changes.
//!
//! Source of truth, per field: the portal owns identity (name, email, phone, company), consents,
//! and booking and payment facts; the CRM owns lifecycle stage, owner and tags. A CRM-owned field
//! is never pushed. A portal-owned field changed in the CRM is overwritten on the next push and
//! the conflict is recorded.

use sea_orm::{ConnectionTrait, DbErr};
use serde::{Deserialize, Serialize};

use crate::db::{self, col, now_ms};
use crate::ledger::{self, NewJob, Subject};
pub use crate::ports::crm::{ContactSnapshot, CrmConnector, CrmError, NoCrm, Pushed};

/// Changes within this window are pushed together.
pub const COALESCE_MS: i64 = 2_000;

/// Fields the portal can send, by their name in configuration.
pub const PORTAL_FIELDS: [&str; 9] = [
    "name",
    "email",
    "phone",
    "company",
    "marketing_consent",
    "portal_status",
    "last_booking",
    "next_booking",
    "total_deposits",
];

/// Fields the CRM owns (never pushed), by their name in configuration.
pub const CRM_FIELDS: [&str; 3] = ["lifecycle_stage", "owner", "tags"];

/// Marks a customer changed, in the caller's transaction, and queues the coalesced push. Staff
/// and admins are not CRM contacts; the flush skips them.
#[tracing::instrument(skip_all, err)]
pub async fn changed<C: ConnectionTrait>(
    conn: &C,
    customer_id: i64,
    cause: &str,
) -> Result<(), DbErr> {
    let now = now_ms();
    db::execute(
        conn,
        "INSERT INTO crm_sync (customer_id, changed_version, synced_version, changed_at) VALUES (?, 1, 0, ?) \
         ON CONFLICT (customer_id) DO UPDATE SET changed_version = crm_sync.changed_version + 1, changed_at = excluded.changed_at",
        vec![customer_id.into(), now.into()],
    )
    .await?;
    schedule_flush(conn, now).await?;
    tracing::debug!(customer = customer_id, cause, "CRM sync queued");
    Ok(())
}

/// Queues a flush unless one is already waiting (changes join it: one job however many
/// changes). A flush already running does not count: it may have read its snapshots already.
#[tracing::instrument(skip_all, err)]
pub async fn schedule_flush<C: ConnectionTrait>(conn: &C, now: i64) -> Result<(), DbErr> {
    let waiting = db::query_one(
        conn,
        "SELECT id FROM jobs WHERE kind = 'crm.flush' AND status = 'queued' LIMIT 1",
        vec![],
    )
    .await?;
    if waiting.is_some() {
        return Ok(());
    }
    let nonce: u32 = rand::random();
    ledger::enqueue(
        conn,
        NewJob::of(
            &crate::jobs::CrmFlush {},
            Subject::new("crm_batch", now),
            format!("crm.flush:{now}:{nonce:08x}"),
        )
        .at(now + COALESCE_MS),
    )
    .await?;
    Ok(())
}

/// Customers waiting to be pushed (not blocked by a validation error), oldest change first.
#[tracing::instrument(skip_all, err)]
pub async fn pending<C: ConnectionTrait>(conn: &C, limit: usize) -> Result<Vec<i64>, DbErr> {
    db::query(
        conn,
        "SELECT s.customer_id AS id FROM crm_sync s JOIN users u ON u.id = s.customer_id \
         WHERE s.changed_version > s.synced_version AND s.blocked_error IS NULL AND u.role = 'customer' \
         ORDER BY s.changed_at, s.customer_id LIMIT ?",
        vec![(limit as i64).into()],
    )
    .await?
    .iter()
    .map(|r| col(r, "id"))
    .collect()
}

/// The mapped fields of a customer now, with the version they were read at.
#[tracing::instrument(skip_all, err)]
pub async fn snapshot<C: ConnectionTrait>(
    conn: &C,
    customer_id: i64,
    fields: &[String],
) -> Result<Option<ContactSnapshot>, DbErr> {
    let Some(u) = db::query_one(
        conn,
        "SELECT u.name AS name, u.email AS email, u.phone AS phone, u.company AS company, u.marketing_consent AS marketing_consent, \
         u.status AS status, u.email_verified_at AS verified, COALESCE(s.changed_version, 0) AS version \
         FROM users u LEFT JOIN crm_sync s ON s.customer_id = u.id WHERE u.id = ? AND u.role = 'customer' AND u.erased_at IS NULL",
        vec![customer_id.into()],
    )
    .await?
    else {
        return Ok(None);
    };
    let now = now_ms();
    let iso = |ms: i64| {
        time::OffsetDateTime::from_unix_timestamp(ms / 1000)
            .map(|t| format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()))
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for f in fields {
        let value = match f.as_str() {
            "name" => col::<String>(&u, "name")?,
            "email" => col::<String>(&u, "email")?,
            "phone" => col::<Option<String>>(&u, "phone")?.unwrap_or_default(),
            "company" => col::<Option<String>>(&u, "company")?.unwrap_or_default(),
            "marketing_consent" => col::<bool>(&u, "marketing_consent")?.to_string(),
            "portal_status" => {
                let status: String = col(&u, "status")?;
                if status != "active" {
                    status
                } else if col::<Option<i64>>(&u, "verified")?.is_none() {
                    "unverified".into()
                } else {
                    "active".into()
                }
            }
            "last_booking" => db::query_one(
                conn,
                "SELECT MAX(start_at) AS t FROM bookings WHERE customer_id = ? AND status IN ('confirmed', 'completed') AND start_at <= ?",
                vec![customer_id.into(), now.into()],
            )
            .await?
            .and_then(|r| col::<Option<i64>>(&r, "t").ok().flatten())
            .map(iso)
            .unwrap_or_default(),
            "next_booking" => db::query_one(
                conn,
                "SELECT MIN(start_at) AS t FROM bookings WHERE customer_id = ? AND status = 'confirmed' AND start_at > ?",
                vec![customer_id.into(), now.into()],
            )
            .await?
            .and_then(|r| col::<Option<i64>>(&r, "t").ok().flatten())
            .map(iso)
            .unwrap_or_default(),
            "total_deposits" => {
                let cents: i64 = db::query_one(
                    conn,
                    "SELECT CAST(COALESCE(SUM(amount_cents - refunded_cents), 0) AS BIGINT) AS c FROM payments WHERE customer_id = ? AND status = 'paid'",
                    vec![customer_id.into()],
                )
                .await?
                .map(|r| col::<i64>(&r, "c"))
                .transpose()?
                .unwrap_or(0);
                format!("{}.{:02}", cents / 100, cents % 100)
            }
            _ => continue,
        };
        out.push((f.clone(), value));
    }
    Ok(Some(ContactSnapshot {
        customer_id,
        version: col(&u, "version")?,
        fields: out,
    }))
}

/// Records a successful push of `snapshot`: synced up to its version (later changes stay
/// pending), the CRM id, and any earlier validation block lifted.
#[tracing::instrument(skip_all, err)]
pub async fn mark_pushed<C: ConnectionTrait>(
    conn: &C,
    snapshot: &ContactSnapshot,
    crm_id: Option<&str>,
) -> Result<(), DbErr> {
    db::execute(
        conn,
        "UPDATE crm_sync SET synced_version = CASE WHEN synced_version < ? THEN ? ELSE synced_version END, synced_at = ?, \
         crm_id = COALESCE(?, crm_id), blocked_error = NULL WHERE customer_id = ?",
        vec![
            snapshot.version.into(),
            snapshot.version.into(),
            now_ms().into(),
            crm_id.map(str::to_owned).into(),
            snapshot.customer_id.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Keeps a customer out of batches until the validation error is dealt with, and queues the
/// single-customer job that shows it in manual review.
#[tracing::instrument(skip_all, err)]
pub async fn block<C: ConnectionTrait>(
    conn: &C,
    customer_id: i64,
    message: &str,
) -> Result<(), DbErr> {
    let version: i64 = db::query_one(
        conn,
        "SELECT changed_version FROM crm_sync WHERE customer_id = ?",
        vec![customer_id.into()],
    )
    .await?
    .map(|r| col(&r, "changed_version"))
    .transpose()?
    .unwrap_or(0);
    db::execute(
        conn,
        "UPDATE crm_sync SET blocked_error = ? WHERE customer_id = ?",
        vec![
            message.chars().take(500).collect::<String>().into(),
            customer_id.into(),
        ],
    )
    .await?;
    ledger::enqueue(
        conn,
        NewJob::of(
            &crate::jobs::CrmSyncCustomer { customer_id },
            Subject::new("customer", customer_id),
            format!("crm.sync_customer:{customer_id}:{version}"),
        ),
    )
    .await?;
    Ok(())
}

/// The CRM-owned fields of a customer, as the portal last heard them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmView {
    pub crm_id: Option<String>,
    pub lifecycle_stage: Option<String>,
    pub owner: Option<String>,
    pub tags: Option<String>,
    pub synced_at: Option<i64>,
    pub pending: bool,
    pub blocked_error: Option<String>,
}

#[tracing::instrument(skip_all, err)]
pub async fn view<C: ConnectionTrait>(conn: &C, customer_id: i64) -> Result<CrmView, DbErr> {
    let Some(r) = db::query_one(
        conn,
        "SELECT * FROM crm_sync WHERE customer_id = ?",
        vec![customer_id.into()],
    )
    .await?
    else {
        return Ok(CrmView::default());
    };
    Ok(CrmView {
        crm_id: col(&r, "crm_id")?,
        lifecycle_stage: col(&r, "lifecycle_stage")?,
        owner: col(&r, "crm_owner")?,
        tags: col(&r, "crm_tags")?,
        synced_at: col(&r, "synced_at")?,
        pending: col::<i64>(&r, "changed_version")? > col::<i64>(&r, "synced_version")?,
        blocked_error: col(&r, "blocked_error")?,
    })
}

/// An inbound change from the CRM, already verified.
#[derive(Clone, Debug)]
pub struct InboundChange {
    pub event_id: String,
    pub crm_id: String,
    /// The portal's field name (`lifecycle_stage`, `owner`, `tags`, or a portal-owned one).
    pub field: String,
    pub value: Option<String>,
}

/// Applies an inbound change: a CRM-owned field is stored for display; a portal-owned field is
/// recorded as a conflict and the customer is marked changed, so the next push restores the
/// portal's value. An unknown contact or event seen before changes nothing.
#[tracing::instrument(skip_all, err)]
pub async fn apply_inbound<C: ConnectionTrait>(
    conn: &C,
    change: &InboundChange,
) -> Result<&'static str, DbErr> {
    let now = now_ms();
    let fresh = db::query_one(
        conn,
        "INSERT INTO crm_events (id, received_at, outcome) VALUES (?, ?, 'received') ON CONFLICT (id) DO NOTHING RETURNING id",
        vec![change.event_id.clone().into(), now.into()],
    )
    .await?;
    if fresh.is_none() {
        return Ok("duplicate");
    }
    let Some(r) = db::query_one(
        conn,
        "SELECT customer_id FROM crm_sync WHERE crm_id = ?",
        vec![change.crm_id.clone().into()],
    )
    .await?
    else {
        db::execute(
            conn,
            "UPDATE crm_events SET outcome = 'unknown contact' WHERE id = ?",
            vec![change.event_id.clone().into()],
        )
        .await?;
        return Ok("unknown contact");
    };
    let customer: i64 = col(&r, "customer_id")?;
    let outcome = match change.field.as_str() {
        "lifecycle_stage" | "owner" | "tags" => {
            let column = match change.field.as_str() {
                "lifecycle_stage" => "lifecycle_stage",
                "owner" => "crm_owner",
                _ => "crm_tags",
            };
            db::execute(
                conn,
                &format!(
                    "UPDATE crm_sync SET {column} = ?, crm_updated_at = ? WHERE customer_id = ?"
                ),
                vec![change.value.clone().into(), now.into(), customer.into()],
            )
            .await?;
            "updated"
        }
        f if PORTAL_FIELDS.contains(&f) => {
            db::execute(
                conn,
                "INSERT INTO crm_conflicts (customer_id, field, crm_value, at, resolution) VALUES (?, ?, ?, ?, 'the portal owns this field: its value is pushed again')",
                vec![customer.into(), f.into(), change.value.clone().into(), now.into()],
            )
            .await?;
            changed(conn, customer, "conflict").await?;
            "conflict recorded"
        }
        _ => "ignored",
    };
    db::execute(
        conn,
        "UPDATE crm_events SET outcome = ? WHERE id = ?",
        vec![outcome.into(), change.event_id.clone().into()],
    )
    .await?;
    Ok(outcome)
}

/// Marks every customer changed, `chunk` at a time from `after_id`; returns the last id done
/// (resume from it) or `None` when finished. `stoep crm resync` loops over it.
#[tracing::instrument(skip_all, err)]
pub async fn mark_all_changed(
    db: &sea_orm::DatabaseConnection,
    after_id: i64,
    chunk: i64,
) -> Result<Option<i64>, DbErr> {
    let txn = db::begin_write(db).await?;
    let ids: Vec<i64> = db::query(
        &txn,
        "SELECT id FROM users WHERE role = 'customer' AND id > ? ORDER BY id LIMIT ?",
        vec![after_id.into(), chunk.into()],
    )
    .await?
    .iter()
    .map(|r| col(r, "id"))
    .collect::<Result<_, _>>()?;
    for id in &ids {
        changed(&txn, *id, "resync").await?;
    }
    txn.commit().await?;
    Ok(ids.last().copied())
}
