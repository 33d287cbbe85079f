//! Booking jobs: releasing an unpaid hold when it expires, and the reminder before an appointment.

use std::sync::Arc;

use app::ssr::booking;
use app::ssr::db::{self, now_ms};
use app::ssr::{PortalSettings, email as mail};
use async_trait::async_trait;
use sea_orm::DatabaseConnection;
use serde::Deserialize;

use crate::worker::{ClaimedJob, Handler, JobError};

/// `booking.expire_hold`: an unpaid hold past its time frees the slot. Does nothing if the
/// deposit arrived (the booking is confirmed) or the hold was extended.
pub struct ExpireHold {
    pub db: DatabaseConnection,
}

#[derive(Deserialize)]
struct HoldPayload {
    booking_id: i64,
}

#[async_trait]
impl Handler for ExpireHold {
    async fn run(&self, job: &ClaimedJob) -> Result<(), JobError> {
        let p: HoldPayload = job.payload()?;
        let txn = db::begin_write(&self.db).await?;
        let n = db::execute(
            &txn,
            "UPDATE bookings SET status = 'expired', updated_at = ? WHERE id = ? AND status = 'awaiting_deposit' AND hold_expires_at <= ?",
            vec![now_ms().into(), p.booking_id.into(), now_ms().into()],
        )
        .await?;
        if n == 1 {
            db::execute(
                &txn,
                "INSERT INTO booking_events (booking_id, at, actor_user_id, action, detail) VALUES (?, ?, NULL, 'expired', 'the unpaid hold expired and the time was released')",
                vec![p.booking_id.into(), now_ms().into()],
            )
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }
}

/// `booking.reminder`: emails the customer before the appointment. Never for a booking that was
/// cancelled, completed or moved since (a moved booking has its own reminder for its new time).
pub struct Reminder {
    pub db: DatabaseConnection,
    pub settings: Arc<PortalSettings>,
}

#[derive(Deserialize)]
struct ReminderPayload {
    booking_id: i64,
    version: i32,
}

#[async_trait]
impl Handler for Reminder {
    async fn run(&self, job: &ClaimedJob) -> Result<(), JobError> {
        let p: ReminderPayload = job.payload()?;
        let txn = db::begin_write(&self.db).await?;
        let Some(b) = booking::view(&txn, p.booking_id).await? else {
            return Ok(());
        };
        if b.status != "confirmed" || b.version != p.version || b.start_ms <= now_ms() {
            return Ok(());
        }
        let biz = booking::business(&txn).await?;
        let Some(customer) = app::ssr::auth::find_user(&txn, b.customer_id).await? else {
            return Ok(());
        };
        let message = mail::templates::booking_reminder(&self.settings, &biz, &customer.name, &b);
        mail::enqueue(
            &txn,
            &self.settings,
            Some(customer.id),
            &customer.email,
            message,
            &format!("booking:reminder:{}:{}", b.id, b.version),
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }
}
