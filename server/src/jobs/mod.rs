//! The worker's job handlers that are written once against the domain and its ports, one module
//! per kind of integration. Each is idempotent: it checks whether its effect already happened
//! before doing it again. Jobs specific to one provider (applying Stripe's stored events) live in
//! that provider's folder under `integrations`.

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

use domain::Portal;
use domain::jobs;
use domain::worker::Registry;

/// Every handler the portal has.
pub fn registry(
    portal: &Portal,
    crm_fields: Arc<Vec<String>>,
    retention: crate::config::RetentionSettings,
) -> Registry {
    let db = portal.db.clone();
    let settings = portal.settings.clone();
    let gateway = portal.payments.clone();
    let crm_connector = portal.crm.clone();
    let documents = portal.storage.clone();
    let mut r = Registry::default();
    r.add::<jobs::SendEmail>(email::SendEmail {
        db: db.clone(),
        settings: settings.clone(),
        mailer: portal.mail.clone(),
    });
    r.add::<jobs::AlertsDigest>(alerts::Digest {
        db: db.clone(),
        settings: settings.clone(),
    });
    r.add::<jobs::ExpireHold>(booking::ExpireHold { db: db.clone() });
    r.add::<jobs::BookingReminder>(booking::Reminder {
        db: db.clone(),
        settings: settings.clone(),
    });
    r.add::<jobs::StripeEvent>(crate::integrations::stripe::events::StripeEvent {
        db: db.clone(),
        settings: settings.clone(),
    });
    r.add::<jobs::Refund>(payments::Refund {
        db: db.clone(),
        settings: settings.clone(),
        gateway: gateway.clone(),
    });
    r.add::<jobs::Reconcile>(payments::Reconcile {
        db: db.clone(),
        settings: settings.clone(),
        gateway,
    });
    r.add::<jobs::PaymentReview>(payments::Review);
    r.add::<jobs::CrmFlush>(crm::Flush {
        db: db.clone(),
        connector: crm_connector.clone(),
        fields: crm_fields.clone(),
    });
    r.add::<jobs::CrmSyncCustomer>(crm::SyncCustomer {
        db: db.clone(),
        connector: crm_connector.clone(),
        fields: crm_fields,
    });
    r.add::<jobs::CrmErase>(privacy::CrmErase {
        db: db.clone(),
        connector: crm_connector,
    });
    r.add::<jobs::PrivacyErase>(privacy::Erase { db: db.clone() });
    r.add::<jobs::DeleteObject>(storage::DeleteObject {
        db: db.clone(),
        storage: documents.clone(),
    });
    r.add::<jobs::StorageCleanup>(storage::Cleanup {
        db: db.clone(),
        storage: documents.clone(),
    });
    r.add::<jobs::MissingObject>(storage::MissingObject);
    r.add::<jobs::StorageCheck>(storage::Check { storage: documents });
    r.add::<jobs::RequestReminder>(storage::RequestReminder {
        db: db.clone(),
        settings: settings.clone(),
    });
    r.add::<jobs::DocumentsRetention>(storage::Retention { db: db.clone() });
    r.add::<jobs::SystemPurge>(purge::Purge { db, retention });
    r.add::<jobs::Noop>(noop::Noop);
    r
}
