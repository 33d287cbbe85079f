//! Privacy: a customer's request to be deleted (confirmed by an admin) and when the erasure ran.

use sea_orm_migration::prelude::*;

use crate::sql;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000010_privacy"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sql::run(
            manager,
            "ALTER TABLE users ADD COLUMN deletion_requested_at BIGINT; ALTER TABLE users ADD COLUMN erased_at BIGINT",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sql::run(
            manager,
            "ALTER TABLE users DROP COLUMN erased_at; ALTER TABLE users DROP COLUMN deletion_requested_at",
        )
        .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
