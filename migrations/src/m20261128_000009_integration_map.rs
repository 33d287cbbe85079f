//! The integration map: when each configured secret last changed (a short fingerprint of it,
//! never the value), and bookings confirmed with the deposit due at the visit (the payments
//! fallback).

use sea_orm_migration::prelude::*;

use crate::sql;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000009_integration_map"
    }
}

const UP: &str = "
CREATE TABLE secret_fingerprints (
    name TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    changed_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);
ALTER TABLE bookings ADD COLUMN deposit_due_at_visit BOOLEAN NOT NULL DEFAULT FALSE
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sql::run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sql::run(
            manager,
            "ALTER TABLE bookings DROP COLUMN deposit_due_at_visit; DROP TABLE secret_fingerprints",
        )
        .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
