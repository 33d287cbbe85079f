//! Staff notes about a customer, shown on the customer's page (staff and admins only).

use sea_orm_migration::prelude::*;

use crate::sql;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000011_customer_notes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sql::run(
            manager,
            "CREATE TABLE customer_notes (
    id {id},
    customer_id BIGINT NOT NULL REFERENCES users (id),
    author_id BIGINT REFERENCES users (id),
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX customer_notes_customer_idx ON customer_notes (customer_id, created_at)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sql::run(manager, "DROP TABLE customer_notes").await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
