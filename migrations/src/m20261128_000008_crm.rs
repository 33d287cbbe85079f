//! CRM sync: one row per customer with the version of their portal data last changed and last
//! pushed (so a burst of changes becomes one call, and nothing changed is lost), the CRM's id and
//! the CRM-owned fields shown in the portal; conflicts recorded when the CRM changed a field the
//! portal owns; and inbound CRM events kept by id so a repeat changes nothing.

use sea_orm_migration::prelude::*;

use crate::sql;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000008_crm"
    }
}

const UP: &str = "
ALTER TABLE users ADD COLUMN company TEXT;

CREATE TABLE crm_sync (
    customer_id BIGINT PRIMARY KEY REFERENCES users (id),
    changed_version BIGINT NOT NULL DEFAULT 1,
    synced_version BIGINT NOT NULL DEFAULT 0,
    changed_at BIGINT NOT NULL,
    synced_at BIGINT,
    blocked_error TEXT,
    crm_id TEXT,
    lifecycle_stage TEXT,
    crm_owner TEXT,
    crm_tags TEXT,
    crm_updated_at BIGINT
);
CREATE INDEX crm_sync_pending_idx ON crm_sync (changed_at) WHERE changed_version > synced_version;
CREATE INDEX crm_sync_crm_id_idx ON crm_sync (crm_id);

CREATE TABLE crm_conflicts (
    id {id},
    customer_id BIGINT NOT NULL REFERENCES users (id),
    field TEXT NOT NULL,
    crm_value TEXT,
    at BIGINT NOT NULL,
    resolution TEXT NOT NULL
);
CREATE INDEX crm_conflicts_customer_idx ON crm_conflicts (customer_id, at);

CREATE TABLE crm_events (
    id TEXT PRIMARY KEY,
    received_at BIGINT NOT NULL,
    outcome TEXT NOT NULL
)
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sql::run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sql::run(
            manager,
            "DROP TABLE crm_events; DROP TABLE crm_conflicts; DROP TABLE crm_sync; ALTER TABLE users DROP COLUMN company",
        )
        .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
