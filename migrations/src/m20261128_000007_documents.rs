//! Documents: the metadata of every file exchanged between the business and its customers (the
//! content itself lives in the object store under a key the portal generated), the documents
//! staff ask customers for, and the retention period for documents of closed accounts.

use sea_orm_migration::prelude::*;

use crate::sql;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000007_documents"
    }
}

const UP: &str = "
CREATE TABLE documents (
    id {id},
    customer_id BIGINT NOT NULL REFERENCES users (id),
    uploaded_by BIGINT NOT NULL REFERENCES users (id),
    booking_id BIGINT REFERENCES bookings (id),
    category TEXT NOT NULL CHECK (category IN ('agreement', 'report', 'invoice', 'id', 'other')),
    visibility TEXT NOT NULL CHECK (visibility IN ('shared', 'internal')),
    display_name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('pdf', 'jpeg', 'png', 'heic', 'docx', 'xlsx')),
    content_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL CHECK (size_bytes > 0),
    sha256 TEXT NOT NULL,
    object_key TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('stored', 'deleting')),
    deleted_at BIGINT,
    deleted_by BIGINT REFERENCES users (id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX documents_object_key ON documents (object_key);
CREATE INDEX documents_customer_idx ON documents (customer_id, status, created_at);

CREATE TABLE document_requests (
    id {id},
    customer_id BIGINT NOT NULL REFERENCES users (id),
    requested_by BIGINT NOT NULL REFERENCES users (id),
    description TEXT NOT NULL,
    category TEXT NOT NULL CHECK (category IN ('agreement', 'report', 'invoice', 'id', 'other')),
    due_at BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'fulfilled', 'cancelled')),
    document_id BIGINT REFERENCES documents (id) ON DELETE SET NULL,
    fulfilled_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX document_requests_customer_idx ON document_requests (customer_id, status, due_at);

ALTER TABLE business_settings ADD COLUMN documents_retention_days INTEGER
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sql::run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sql::run(
            manager,
            "ALTER TABLE business_settings DROP COLUMN documents_retention_days; DROP TABLE document_requests; DROP TABLE documents",
        )
        .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
