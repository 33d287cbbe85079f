//! Which customer an audit entry is about, so that an admin can list who accessed a customer's
//! data, and when (incident support).

use sea_orm_migration::prelude::*;

use crate::sql;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000012_access_audit"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sql::run(
            manager,
            "ALTER TABLE audit_log ADD COLUMN customer_id BIGINT;
CREATE INDEX audit_log_customer_idx ON audit_log (customer_id, at)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sql::run(
            manager,
            "DROP INDEX audit_log_customer_idx;
ALTER TABLE audit_log DROP COLUMN customer_id",
        )
        .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
