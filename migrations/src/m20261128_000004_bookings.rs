//! Bookings: the business's settings, services, staff availability, bookings with their history,
//! and calendar feed tokens. Overlapping active bookings of one staff member (buffers included)
//! are refused by the database itself: an exclusion constraint on PostgreSQL, triggers on SQLite.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::sql;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000004_bookings"
    }
}

const UP: &str = r#"
CREATE TABLE business_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    time_zone TEXT NOT NULL,
    currency TEXT NOT NULL,
    vat_rate_bp INTEGER NOT NULL,
    prices_include_vat BOOLEAN NOT NULL,
    free_change_hours INTEGER NOT NULL,
    hold_minutes INTEGER NOT NULL,
    reminder_hours INTEGER NOT NULL,
    max_unpaid_holds INTEGER NOT NULL,
    updated_at BIGINT NOT NULL
);
INSERT INTO business_settings VALUES (1, 'Africa/Johannesburg', 'ZAR', 1500, TRUE, 24, 15, 24, 3, 0);

CREATE TABLE services (
    id {id},
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    duration_min INTEGER NOT NULL CHECK (duration_min > 0),
    buffer_before_min INTEGER NOT NULL DEFAULT 0,
    buffer_after_min INTEGER NOT NULL DEFAULT 0,
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    deposit_kind TEXT NOT NULL CHECK (deposit_kind IN ('none', 'fixed', 'percent')),
    deposit_value BIGINT NOT NULL DEFAULT 0,
    min_notice_min INTEGER NOT NULL DEFAULT 60,
    horizon_days INTEGER NOT NULL DEFAULT 60,
    slot_step_min INTEGER NOT NULL DEFAULT 15,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE staff_profiles (
    user_id BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    time_zone TEXT,
    bookable BOOLEAN NOT NULL DEFAULT TRUE,
    updated_at BIGINT NOT NULL
);

CREATE TABLE service_staff (
    service_id BIGINT NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    staff_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (service_id, staff_id)
);

CREATE TABLE working_hours (
    id {id},
    staff_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    weekday INTEGER NOT NULL CHECK (weekday BETWEEN 0 AND 6),
    start_min INTEGER NOT NULL,
    end_min INTEGER NOT NULL,
    CHECK (start_min >= 0 AND end_min <= 1440 AND start_min < end_min)
);
CREATE INDEX working_hours_staff_idx ON working_hours (staff_id);

CREATE TABLE availability_exceptions (
    id {id},
    staff_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('day_off', 'changed_day', 'time_off')),
    local_date TEXT,
    start_min INTEGER,
    end_min INTEGER,
    start_at BIGINT,
    end_at BIGINT,
    note TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE INDEX availability_exceptions_staff_idx ON availability_exceptions (staff_id);

CREATE TABLE bookings (
    id {id},
    customer_id BIGINT NOT NULL REFERENCES users (id),
    staff_id BIGINT NOT NULL REFERENCES users (id),
    service_id BIGINT NOT NULL REFERENCES services (id),
    start_at BIGINT NOT NULL,
    end_at BIGINT NOT NULL,
    block_start BIGINT NOT NULL,
    block_end BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('awaiting_deposit', 'confirmed', 'cancelled', 'completed', 'no_show', 'expired')),
    hold_expires_at BIGINT,
    price_cents BIGINT NOT NULL,
    deposit_cents BIGINT NOT NULL,
    currency TEXT NOT NULL,
    policy TEXT NOT NULL,
    deposit_outcome TEXT CHECK (deposit_outcome IN ('refund', 'keep', 'none')),
    cancel_reason TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK (start_at < end_at AND block_start <= start_at AND block_end >= end_at)
);
CREATE INDEX bookings_staff_time_idx ON bookings (staff_id, block_start);
CREATE INDEX bookings_customer_idx ON bookings (customer_id, start_at);
CREATE INDEX bookings_status_idx ON bookings (status, start_at);

CREATE TABLE booking_events (
    id {id},
    booking_id BIGINT NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    actor_user_id BIGINT,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX booking_events_booking_idx ON booking_events (booking_id, at);

CREATE TABLE calendar_tokens (
    id {id},
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX calendar_tokens_hash_key ON calendar_tokens (token_hash)
"#;

const SQLITE_TRIGGERS: [&str; 2] = [
    "CREATE TRIGGER bookings_no_overlap_insert BEFORE INSERT ON bookings \
     WHEN NEW.status IN ('awaiting_deposit', 'confirmed') \
     BEGIN SELECT RAISE(ABORT, 'bookings_no_overlap') WHERE EXISTS (SELECT 1 FROM bookings b \
       WHERE b.staff_id = NEW.staff_id AND b.status IN ('awaiting_deposit', 'confirmed') \
       AND b.block_start < NEW.block_end AND NEW.block_start < b.block_end); END",
    "CREATE TRIGGER bookings_no_overlap_update BEFORE UPDATE OF staff_id, block_start, block_end, status ON bookings \
     WHEN NEW.status IN ('awaiting_deposit', 'confirmed') \
     BEGIN SELECT RAISE(ABORT, 'bookings_no_overlap') WHERE EXISTS (SELECT 1 FROM bookings b \
       WHERE b.id <> NEW.id AND b.staff_id = NEW.staff_id AND b.status IN ('awaiting_deposit', 'confirmed') \
       AND b.block_start < NEW.block_end AND NEW.block_start < b.block_end); END",
];

const POSTGRES_CONSTRAINT: [&str; 2] = [
    "CREATE EXTENSION IF NOT EXISTS btree_gist",
    "ALTER TABLE bookings ADD CONSTRAINT bookings_no_overlap EXCLUDE USING gist \
     (staff_id WITH =, int8range(block_start, block_end) WITH &&) WHERE (status IN ('awaiting_deposit', 'confirmed'))",
];

const DOWN: &str = r#"
DROP TABLE calendar_tokens;
DROP TABLE booking_events;
DROP TABLE bookings;
DROP TABLE availability_exceptions;
DROP TABLE working_hours;
DROP TABLE service_staff;
DROP TABLE staff_profiles;
DROP TABLE services;
DROP TABLE business_settings
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sql::run(manager, UP).await?;
        match manager.get_database_backend() {
            DbBackend::Postgres => sql::run_each(manager, &POSTGRES_CONSTRAINT).await,
            _ => sql::run_each(manager, &SQLITE_TRIGGERS).await,
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sql::run(manager, DOWN).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
