//! Job handlers, one module per integration. Each is idempotent: it checks whether its effect
//! already happened before doing it again.

pub mod alerts;
pub mod booking;
pub mod email;
pub mod purge;

use std::sync::Arc;

use app::ssr::PortalSettings;
use sea_orm::DatabaseConnection;

use crate::mailer::Transport;
use crate::worker::Registry;

/// Every handler the portal has.
pub fn registry(
    db: DatabaseConnection,
    settings: Arc<PortalSettings>,
    mailer: Transport,
) -> Registry {
    let mut r = Registry::default();
    r.register(
        "email.send",
        email::SendEmail {
            db: db.clone(),
            settings: settings.clone(),
            mailer,
        },
    );
    r.register(
        "alerts.digest",
        alerts::Digest {
            db: db.clone(),
            settings: settings.clone(),
        },
    );
    r.register(
        "booking.expire_hold",
        booking::ExpireHold { db: db.clone() },
    );
    r.register(
        "booking.reminder",
        booking::Reminder {
            db: db.clone(),
            settings: settings.clone(),
        },
    );
    r.register("system.purge", purge::Purge { db });
    r
}
