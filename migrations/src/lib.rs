//! Stoep's schema, as sea-orm-migration steps shared by SQLite and PostgreSQL.
//!
//! Conventions (see ARCHITECTURE.md):
//! - every instant is a `BIGINT` of milliseconds since the Unix epoch, UTC. One representation on
//!   both databases, no time-zone conversion in the database, and ranges compare as integers (the
//!   PostgreSQL booking exclusion constraint uses `int8range`);
//! - emails are stored lower-cased, so a plain unique index is case-insensitive;
//! - a migration, once released, is never edited: add a new one.

#![allow(elided_lifetimes_in_paths)]

pub use sea_orm_migration::prelude::*;

mod m20261128_000001_foundation;
mod m20261128_000002_account_changes;
mod m20261128_000003_second_factor;
mod m20261128_000004_bookings;
mod m20261128_000005_one_time_passwords;
mod m20261128_000006_payments;
mod m20261128_000007_documents;
mod m20261128_000008_crm;
mod m20261128_000009_integration_map;
mod m20261128_000010_privacy;
mod m20261128_000011_customer_notes;
mod m20261128_000012_access_audit;
mod sql;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_foundation::Migration),
            Box::new(m20261128_000002_account_changes::Migration),
            Box::new(m20261128_000003_second_factor::Migration),
            Box::new(m20261128_000004_bookings::Migration),
            Box::new(m20261128_000005_one_time_passwords::Migration),
            Box::new(m20261128_000006_payments::Migration),
            Box::new(m20261128_000007_documents::Migration),
            Box::new(m20261128_000008_crm::Migration),
            Box::new(m20261128_000009_integration_map::Migration),
            Box::new(m20261128_000010_privacy::Migration),
            Box::new(m20261128_000011_customer_notes::Migration),
            Box::new(m20261128_000012_access_audit::Migration),
        ]
    }
}
