//! A customer's rights under POPIA, self-service: everything the portal holds about them as one
//! archive (s23), and deletion (s24), which an admin confirms. Erasure runs as jobs in the ledger
//! (the portal's own data, then the CRM contact, then stored documents), each visible in the
//! health area until done. Payment records the law requires are kept, de-identified.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use serde_json::{Value, json};

use crate::db::{self, col, now_ms};
use crate::ledger::{self, NewJob, Subject};

fn rows_to_json(rows: &[sea_orm::QueryResult], columns: &[&str]) -> Vec<Value> {
    rows.iter()
        .map(|r| {
            let mut o = serde_json::Map::new();
            for c in columns {
                let v = r
                    .try_get::<Option<String>>("", c)
                    .map(|v| v.map(Value::from).unwrap_or(Value::Null))
                    .or_else(|_| {
                        r.try_get::<Option<i64>>("", c)
                            .map(|v| v.map(Value::from).unwrap_or(Value::Null))
                    })
                    .or_else(|_| {
                        r.try_get::<Option<i32>>("", c)
                            .map(|v| v.map(Value::from).unwrap_or(Value::Null))
                    })
                    .or_else(|_| {
                        r.try_get::<Option<bool>>("", c)
                            .map(|v| v.map(Value::from).unwrap_or(Value::Null))
                    })
                    .unwrap_or(Value::Null);
                o.insert((*c).to_owned(), v);
            }
            Value::Object(o)
        })
        .collect()
}

async fn select<C: ConnectionTrait>(
    conn: &C,
    sql: &str,
    id: i64,
    columns: &[&str],
) -> Result<Vec<Value>, DbErr> {
    let rows = db::query(conn, sql, vec![id.into()]).await?;
    Ok(rows_to_json(&rows, columns))
}

/// Everything the portal holds about `user_id`, as JSON: profile and consents, bookings and their
/// history, payments and refunds, messages, audit entries about them or by them, CRM sync state
/// and conflicts, and (listed) their documents.
#[tracing::instrument(skip_all, err)]
pub async fn export<C: ConnectionTrait>(conn: &C, user_id: i64) -> Result<Value, DbErr> {
    let profile = select(conn, "SELECT id, email, name, phone, company, role, status, email_verified_at, privacy_notice_version, privacy_accepted_at, marketing_consent, marketing_consent_at, created_at, updated_at, totp_enabled_at, deletion_requested_at FROM users WHERE id = ?", user_id,
        &["id", "email", "name", "phone", "company", "role", "status", "email_verified_at", "privacy_notice_version", "privacy_accepted_at", "marketing_consent", "marketing_consent_at", "created_at", "updated_at", "totp_enabled_at", "deletion_requested_at"]).await?;
    let bookings = select(conn, "SELECT b.id AS id, v.name AS service, s.name AS staff, b.start_at AS start_at, b.end_at AS end_at, b.status AS status, b.price_cents AS price_cents, b.deposit_cents AS deposit_cents, b.currency AS currency, b.deposit_outcome AS deposit_outcome, b.cancel_reason AS cancel_reason, b.created_at AS created_at FROM bookings b JOIN services v ON v.id = b.service_id JOIN users s ON s.id = b.staff_id WHERE b.customer_id = ? ORDER BY b.start_at", user_id,
        &["id", "service", "staff", "start_at", "end_at", "status", "price_cents", "deposit_cents", "currency", "deposit_outcome", "cancel_reason", "created_at"]).await?;
    let history = select(conn, "SELECT e.booking_id AS booking_id, e.at AS at, e.action AS action, e.detail AS detail FROM booking_events e JOIN bookings b ON b.id = e.booking_id WHERE b.customer_id = ? ORDER BY e.at", user_id,
        &["booking_id", "at", "action", "detail"]).await?;
    let payments = select(conn, "SELECT id, booking_id, status, amount_cents, currency, vat_cents, refunded_cents, receipt_number, paid_at, created_at FROM payments WHERE customer_id = ? ORDER BY id", user_id,
        &["id", "booking_id", "status", "amount_cents", "currency", "vat_cents", "refunded_cents", "receipt_number", "paid_at", "created_at"]).await?;
    let refunds = select(conn, "SELECT r.id AS id, r.payment_id AS payment_id, r.amount_cents AS amount_cents, r.reason AS reason, r.status AS status, r.created_at AS created_at FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE p.customer_id = ? ORDER BY r.id", user_id,
        &["id", "payment_id", "amount_cents", "reason", "status", "created_at"]).await?;
    let messages = select(conn, "SELECT to_address, subject, CASE WHEN redact_after_send THEN '' ELSE body_text END AS body_text, status, sent_at, created_at FROM emails WHERE user_id = ? ORDER BY id", user_id,
        &["to_address", "subject", "body_text", "status", "sent_at", "created_at"]).await?;
    let audit = {
        let rows = db::query(conn, "SELECT at, actor_user_id, action, subject_type, subject_id, detail, ip FROM audit_log WHERE actor_user_id = ? OR (subject_type = 'user' AND subject_id = ?) OR customer_id = ? ORDER BY at", vec![user_id.into(), user_id.to_string().into(), user_id.into()]).await?;
        rows_to_json(
            &rows,
            &[
                "at",
                "actor_user_id",
                "action",
                "subject_type",
                "subject_id",
                "detail",
                "ip",
            ],
        )
    };
    let notes = select(
        conn,
        "SELECT body, created_at FROM customer_notes WHERE customer_id = ? ORDER BY id",
        user_id,
        &["body", "created_at"],
    )
    .await?;
    let crm = select(conn, "SELECT crm_id, lifecycle_stage, crm_owner, crm_tags, synced_at FROM crm_sync WHERE customer_id = ?", user_id,
        &["crm_id", "lifecycle_stage", "crm_owner", "crm_tags", "synced_at"]).await?;
    let conflicts = select(
        conn,
        "SELECT field, crm_value, at, resolution FROM crm_conflicts WHERE customer_id = ?",
        user_id,
        &["field", "crm_value", "at", "resolution"],
    )
    .await?;
    let documents = select(conn, "SELECT id, display_name, category, kind, size_bytes, sha256, visibility, created_at FROM documents WHERE customer_id = ? AND status = 'stored' AND (visibility = 'shared' OR uploaded_by = customer_id) ORDER BY id", user_id,
        &["id", "display_name", "category", "kind", "size_bytes", "sha256", "visibility", "created_at"]).await?;
    let requests = select(conn, "SELECT description, category, due_at, status, created_at FROM document_requests WHERE customer_id = ? ORDER BY id", user_id,
        &["description", "category", "due_at", "status", "created_at"]).await?;
    Ok(json!({
        "exported_at_ms": now_ms(),
        "documents": documents,
        "document_requests": requests,
        "staff_notes_about_you": notes,
        "about": "Everything this portal holds about you (POPIA s23). Times are milliseconds since 1970-01-01 UTC; amounts are in cents.",
        "profile_and_consents": profile,
        "bookings": bookings,
        "booking_history": history,
        "payments": payments,
        "refunds": refunds,
        "messages": messages,
        "audit_entries": audit,
        "crm": { "sync": crm, "conflicts": conflicts },
    }))
}

/// A customer asks to be deleted. Refused while they have upcoming active bookings.
#[tracing::instrument(skip_all)]
pub async fn request_deletion(db: &DatabaseConnection, user_id: i64) -> Result<(), String> {
    let txn = db::begin_write(db).await.map_err(|e| e.to_string())?;
    let upcoming: i64 = db::query_one(&txn, "SELECT COUNT(*) AS n FROM bookings WHERE customer_id = ? AND status IN ('confirmed', 'awaiting_deposit') AND start_at > ?", vec![user_id.into(), now_ms().into()])
        .await
        .map_err(|e| e.to_string())?
        .and_then(|r| col::<i64>(&r, "n").ok())
        .unwrap_or(0);
    if upcoming > 0 {
        return Err(format!(
            "You have {upcoming} upcoming booking(s). Cancel them first (or ask us to), then request deletion."
        ));
    }
    db::execute(&txn, "UPDATE users SET deletion_requested_at = COALESCE(deletion_requested_at, ?) WHERE id = ? AND role = 'customer'", vec![now_ms().into(), user_id.into()])
        .await
        .map_err(|e| e.to_string())?;
    crate::audit::record(
        &txn,
        Some(user_id),
        "privacy.deletion_requested",
        "user",
        &user_id.to_string(),
        "the customer asked to be deleted",
    )
    .await
    .map_err(|e| e.to_string())?;
    txn.commit().await.map_err(|e| e.to_string())?;
    Ok(())
}

/// An admin confirms a deletion request: the customer is signed out everywhere at once, and the
/// erasure jobs are queued (portal data, CRM contact). Idempotent.
#[tracing::instrument(skip_all)]
pub async fn confirm_deletion(
    db: &DatabaseConnection,
    user_id: i64,
    admin: i64,
) -> Result<(), String> {
    let txn = db::begin_write(db).await.map_err(|e| e.to_string())?;
    let r = db::query_one(
        &txn,
        "SELECT deletion_requested_at, role FROM users WHERE id = ?",
        vec![user_id.into()],
    )
    .await
    .map_err(|e| e.to_string())?
    .ok_or("No such customer.")?;
    if col::<Option<i64>>(&r, "deletion_requested_at")
        .ok()
        .flatten()
        .is_none()
        || col::<String>(&r, "role").unwrap_or_default() != "customer"
    {
        return Err("This customer has not asked to be deleted.".into());
    }
    db::execute(
        &txn,
        "UPDATE users SET status = 'deactivated' WHERE id = ?",
        vec![user_id.into()],
    )
    .await
    .map_err(|e| e.to_string())?;
    db::execute(
        &txn,
        "DELETE FROM sessions WHERE user_id = ?",
        vec![user_id.into()],
    )
    .await
    .map_err(|e| e.to_string())?;
    let subject = || Subject::new("customer", user_id);
    ledger::enqueue(
        &txn,
        NewJob::of(
            &crate::jobs::PrivacyErase {
                customer_id: user_id,
            },
            subject(),
            format!("privacy.erase:{user_id}"),
        ),
    )
    .await
    .map_err(|e| e.to_string())?;
    ledger::enqueue(
        &txn,
        NewJob::of(
            &crate::jobs::CrmErase {
                customer_id: user_id,
            },
            subject(),
            format!("crm.erase:{user_id}"),
        ),
    )
    .await
    .map_err(|e| e.to_string())?;
    crate::audit::record(
        &txn,
        Some(admin),
        "privacy.deletion_confirmed",
        "user",
        &user_id.to_string(),
        "erasure queued",
    )
    .await
    .map_err(|e| e.to_string())?;
    txn.commit().await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Erases or de-identifies every piece of personal information about a customer in the portal's
/// database, keeping the payment records the law requires (amounts, dates, receipt numbers)
/// pointing at a de-identified row. Idempotent.
#[tracing::instrument(skip_all, err)]
pub async fn erase<C: ConnectionTrait>(conn: &C, user_id: i64) -> Result<(), DbErr> {
    let id = user_id;
    let now = now_ms();
    let by = |sql: &'static str| (sql, vec![sea_orm::Value::from(id)]);
    let statements = [
        (
            "UPDATE users SET email = ?, name = 'Deleted customer', phone = NULL, company = NULL, password_hash = NULL, totp_secret = NULL, totp_pending_secret = NULL, \
          privacy_notice_version = NULL, privacy_accepted_at = NULL, marketing_consent = FALSE, marketing_consent_at = NULL, status = 'deactivated', erased_at = ? WHERE id = ?",
            vec![
                format!("deleted-{id}@erased.invalid").into(),
                now.into(),
                id.into(),
            ],
        ),
        by("DELETE FROM sessions WHERE user_id = ?"),
        by("DELETE FROM user_tokens WHERE user_id = ?"),
        by("DELETE FROM recovery_codes WHERE user_id = ?"),
        by("DELETE FROM calendar_tokens WHERE user_id = ?"),
        by("DELETE FROM emails WHERE user_id = ?"),
        by("UPDATE bookings SET cancel_reason = NULL WHERE customer_id = ?"),
        by(
            "UPDATE booking_events SET detail = action WHERE booking_id IN (SELECT id FROM bookings WHERE customer_id = ?)",
        ),
        by("UPDATE payments SET checkout_url = NULL, last_error = NULL WHERE customer_id = ?"),
        by(
            "UPDATE crm_sync SET lifecycle_stage = NULL, crm_owner = NULL, crm_tags = NULL, blocked_error = NULL WHERE customer_id = ?",
        ),
        by("DELETE FROM crm_conflicts WHERE customer_id = ?"),
        by("DELETE FROM customer_notes WHERE customer_id = ?"),
        (
            "UPDATE jobs SET last_error = NULL WHERE subject_type = 'customer' AND subject_id = ?",
            vec![id.to_string().into()],
        ),
        (
            "UPDATE job_attempts SET error = NULL WHERE job_id IN (SELECT id FROM jobs WHERE subject_type = 'customer' AND subject_id = ?)",
            vec![id.to_string().into()],
        ),
        (
            "UPDATE audit_log SET detail = '(erased)', ip = NULL WHERE actor_user_id = ? OR (subject_type = 'user' AND subject_id = ?)",
            vec![id.into(), id.to_string().into()],
        ),
    ];
    for (sql, values) in statements {
        db::execute(conn, sql, values).await?;
    }
    // Documents: every one in the customer's space goes, content by a storage job each.
    let docs = db::query(
        conn,
        "SELECT id, object_key FROM documents WHERE customer_id = ? AND status = 'stored'",
        vec![id.into()],
    )
    .await?;
    for d in &docs {
        let doc_id: i64 = col(d, "id")?;
        let key: String = col(d, "object_key")?;
        db::execute(conn, "UPDATE documents SET status = 'deleting', display_name = '(erased)', deleted_at = ?, updated_at = ? WHERE id = ?", vec![now.into(), now.into(), doc_id.into()]).await?;
        ledger::enqueue(conn, crate::documents::delete_job(doc_id, &key)).await?;
    }
    db::execute(
        conn,
        "UPDATE documents SET display_name = '(erased)' WHERE customer_id = ?",
        vec![id.into()],
    )
    .await?;
    db::execute(
        conn,
        "UPDATE document_requests SET description = '(erased)' WHERE customer_id = ?",
        vec![id.into()],
    )
    .await?;
    // Stripe's events carry the customer's email: blank the ones about their payments.
    let sessions: Vec<String> = db::query(conn, "SELECT checkout_session_id AS s, payment_intent_id AS p FROM payments WHERE customer_id = ?", vec![id.into()])
        .await?
        .iter()
        .flat_map(|r| [col::<Option<String>>(r, "s").ok().flatten(), col::<Option<String>>(r, "p").ok().flatten()])
        .flatten()
        .collect();
    for s in sessions {
        db::execute(
            conn,
            "UPDATE stripe_events SET payload = '{}' WHERE object_id = ? OR payload LIKE ?",
            vec![s.clone().into(), format!("%{s}%").into()],
        )
        .await?;
    }
    // Errors of jobs about this customer's payments may quote Stripe's answer with the email.
    db::execute(conn, "UPDATE jobs SET last_error = NULL WHERE subject_type = 'payment' AND subject_id IN (SELECT CAST(id AS TEXT) FROM payments WHERE customer_id = ?)", vec![id.into()]).await?;
    Ok(())
}
