//! Job handlers, one module per integration. Each is idempotent: it checks whether its effect
//! already happened before doing it again.

pub mod alerts;
pub mod booking;
pub mod crm;
pub mod email;
pub mod noop;
pub mod payments;
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
    gateway: std::sync::Arc<dyn app::ssr::payments::Gateway>,
    crm_connector: std::sync::Arc<dyn app::ssr::crm::CrmConnector>,
    crm_fields: std::sync::Arc<Vec<String>>,
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
    r.register(
        "payments.stripe_event",
        payments::StripeEvent {
            db: db.clone(),
            settings: settings.clone(),
        },
    );
    r.register(
        "payments.refund",
        payments::Refund {
            db: db.clone(),
            settings: settings.clone(),
            gateway: gateway.clone(),
        },
    );
    r.register(
        "payments.reconcile",
        payments::Reconcile {
            db: db.clone(),
            settings: settings.clone(),
            gateway,
        },
    );
    r.register("payments.review", payments::Review);
    r.register(
        "crm.flush",
        crm::Flush {
            db: db.clone(),
            connector: crm_connector.clone(),
            fields: crm_fields.clone(),
        },
    );
    r.register(
        "crm.sync_customer",
        crm::SyncCustomer {
            db: db.clone(),
            connector: crm_connector,
            fields: crm_fields,
        },
    );
    r.register("system.purge", purge::Purge { db });
    r.register("system.noop", noop::Noop);
    r
}
