//! Booking jobs: releasing an unpaid hold when it expires, and the reminder before an appointment.

use model::BookingStatus;
use std::sync::Arc;

use async_trait::async_trait;
use domain::booking;
use domain::db::{self, now_ms};
use domain::{PortalSettings, email as mail};
use sea_orm::DatabaseConnection;

use domain::jobs;
use domain::worker::{ClaimedJob, JobError, JobHandler};

/// `booking.expire_hold`: an unpaid hold past its time frees the slot. Does nothing if the
/// deposit arrived (the booking is confirmed) or the hold was extended.
pub struct ExpireHold {
    pub db: DatabaseConnection,
}

#[async_trait]
impl JobHandler<jobs::ExpireHold> for ExpireHold {
    async fn run(&self, p: jobs::ExpireHold, _job: &ClaimedJob) -> Result<(), JobError> {
        let txn = db::begin_write(&self.db).await?;
        let this = booking::Holds {
            booking_id: Some(p.booking_id),
            ..Default::default()
        };
        let n = booking::expire_holds(&txn, this, now_ms()).await?;
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

#[async_trait]
impl JobHandler<jobs::BookingReminder> for Reminder {
    async fn run(&self, p: jobs::BookingReminder, _job: &ClaimedJob) -> Result<(), JobError> {
        let txn = db::begin_write(&self.db).await?;
        let Some(b) = booking::view(&txn, p.booking_id).await? else {
            return Ok(());
        };
        if b.status != BookingStatus::Confirmed || b.version != p.version || b.start_ms <= now_ms()
        {
            return Ok(());
        }
        let biz = booking::business(&txn).await?;
        let Some(customer) = domain::auth::find_user(&txn, b.customer_id).await? else {
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
