//! The foundation: accounts and sessions, the integration ledger (jobs, attempts, audit), and the
//! outbound email log.

use sea_orm_migration::prelude::*;

use crate::sql;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000001_foundation"
    }
}

const UP: &str = r#"
CREATE TABLE users (
    id {id},
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    phone TEXT,
    password_hash TEXT,
    role TEXT NOT NULL CHECK (role IN ('customer', 'staff', 'admin')),
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deactivated')),
    email_verified_at BIGINT,
    privacy_notice_version TEXT,
    privacy_accepted_at BIGINT,
    marketing_consent BOOLEAN NOT NULL DEFAULT FALSE,
    marketing_consent_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE user_tokens (
    id {id},
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX user_tokens_hash_key ON user_tokens (token_hash);
CREATE INDEX user_tokens_user_idx ON user_tokens (user_id, purpose);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id BIGINT,
    data TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expiry_idx ON sessions (expires_at);

CREATE TABLE jobs (
    id {id},
    kind TEXT NOT NULL,
    integration TEXT NOT NULL CHECK (integration IN ('payments', 'crm', 'email', 'storage', 'calendar', 'system')),
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'manual_review', 'resolved', 'cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_after BIGINT NOT NULL,
    locked_by TEXT,
    locked_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (idempotency_key);
CREATE INDEX jobs_claim_idx ON jobs (status, run_after);
CREATE INDEX jobs_integration_idx ON jobs (integration, status);
CREATE INDEX jobs_subject_idx ON jobs (subject_type, subject_id);

CREATE TABLE job_attempts (
    id {id},
    job_id BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    worker TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('succeeded', 'transient_error', 'permanent_error', 'panicked', 'timed_out', 'lease_expired')),
    error TEXT
);
CREATE INDEX job_attempts_job_idx ON job_attempts (job_id, attempt);
CREATE INDEX job_attempts_time_idx ON job_attempts (started_at);

CREATE TABLE audit_log (
    id {id},
    at BIGINT NOT NULL,
    actor_user_id BIGINT,
    action TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    detail TEXT NOT NULL,
    ip TEXT
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_subject_idx ON audit_log (subject_type, subject_id);

CREATE TABLE alert_state (
    id {id},
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    opened_at BIGINT NOT NULL,
    notified_at BIGINT,
    closed_at BIGINT
);
CREATE UNIQUE INDEX alert_state_open_key ON alert_state (kind, subject) WHERE closed_at IS NULL;

CREATE TABLE emails (
    id {id},
    user_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    to_address TEXT NOT NULL,
    template TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT NOT NULL,
    attachment_name TEXT,
    attachment_type TEXT,
    attachment_body TEXT,
    redact_after_send BOOLEAN NOT NULL DEFAULT FALSE,
    message_id TEXT NOT NULL,
    job_key TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
    smtp_reply TEXT,
    sent_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX emails_user_idx ON emails (user_id);
CREATE INDEX emails_created_idx ON emails (created_at);
CREATE UNIQUE INDEX emails_job_key ON emails (job_key)
"#;

const DOWN: &str = r#"
DROP TABLE emails;
DROP TABLE alert_state;
DROP TABLE audit_log;
DROP TABLE job_attempts;
DROP TABLE jobs;
DROP TABLE sessions;
DROP TABLE user_tokens;
DROP TABLE users
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sql::run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sql::run(manager, DOWN).await
    }

    fn use_transaction(&self) -> Option<bool> {
        // All or nothing, on SQLite too (it has transactional DDL).
        Some(true)
    }
}
