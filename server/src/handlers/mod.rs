//! Job handlers, one module per integration. Each is idempotent: it checks whether its effect
//! already happened before doing it again.

pub mod alerts;
pub mod booking;
pub mod crm;
pub mod email;
pub mod noop;
pub mod payments;
pub mod privacy;
pub mod purge;
pub mod storage;

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
    retention: crate::config::RetentionSettings,
    documents: crate::storage::Storage,
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
            connector: crm_connector.clone(),
            fields: crm_fields,
        },
    );
    r.register(
        "crm.erase",
        privacy::CrmErase {
            db: db.clone(),
            connector: crm_connector,
        },
    );
    r.register("privacy.erase", privacy::Erase { db: db.clone() });
    r.register(
        "storage.delete_object",
        storage::DeleteObject {
            db: db.clone(),
            storage: documents.clone(),
        },
    );
    r.register(
        "storage.cleanup",
        storage::Cleanup {
            db: db.clone(),
            storage: documents.clone(),
        },
    );
    r.register("storage.missing_object", storage::MissingObject);
    r.register("storage.check", storage::Check { storage: documents });
    r.register(
        "documents.request_reminder",
        storage::RequestReminder {
            db: db.clone(),
            settings: settings.clone(),
        },
    );
    r.register("documents.retention", storage::Retention { db: db.clone() });
    r.register("system.purge", purge::Purge { db, retention });
    r.register("system.noop", noop::Noop);
    r
}
