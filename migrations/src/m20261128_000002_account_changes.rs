//! One-time tokens can carry a value (the new address of an email change).

use sea_orm_migration::prelude::*;

use crate::sql;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000002_account_changes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sql::run(manager, "ALTER TABLE user_tokens ADD COLUMN payload TEXT").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sql::run(manager, "ALTER TABLE user_tokens DROP COLUMN payload").await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
