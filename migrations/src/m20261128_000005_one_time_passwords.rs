//! Passwords printed by `stoep admin create` work once: they expire, and must be changed at the
//! first sign-in.

use sea_orm_migration::prelude::*;

use crate::sql;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000005_one_time_passwords"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sql::run(manager, "ALTER TABLE users ADD COLUMN password_change_required BOOLEAN NOT NULL DEFAULT FALSE; ALTER TABLE users ADD COLUMN password_expires_at BIGINT").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sql::run(manager, "ALTER TABLE users DROP COLUMN password_expires_at; ALTER TABLE users DROP COLUMN password_change_required").await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
