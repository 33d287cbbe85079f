//! Writing a migration as SQL text once for both backends.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// Runs each `;`-separated statement of `script`, after replacing the few spellings that differ:
/// `{id}` becomes an auto-increment 64-bit primary key.
pub async fn run(manager: &SchemaManager<'_>, script: &str) -> Result<(), DbErr> {
    let backend = manager.get_database_backend();
    let id = match backend {
        DbBackend::Postgres => "BIGSERIAL PRIMARY KEY",
        _ => "INTEGER PRIMARY KEY AUTOINCREMENT",
    };
    let script = script.replace("{id}", id);
    let conn = manager.get_connection();
    for statement in script.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        conn.execute_unprepared(statement).await?;
    }
    Ok(())
}

/// Runs each statement as given (for statements that contain `;` themselves, like triggers),
/// after the same `{id}` replacement as [`run`].
pub async fn run_each(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    let backend = manager.get_database_backend();
    let id = match backend {
        DbBackend::Postgres => "BIGSERIAL PRIMARY KEY",
        _ => "INTEGER PRIMARY KEY AUTOINCREMENT",
    };
    for statement in statements {
        manager
            .get_connection()
            .execute_unprepared(&statement.replace("{id}", id))
            .await?;
    }
    Ok(())
}
