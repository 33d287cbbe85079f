//! Deposits through Stripe: each Checkout Session attempt for a booking, the refunds made against
//! a payment, and every Stripe webhook event received (kept by its id, so a duplicate changes
//! nothing and an event that cannot be applied yet is retried from the stored copy).

use sea_orm_migration::prelude::*;

use crate::sql;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000006_payments"
    }
}

const UP: &str = "
CREATE TABLE payments (
    id {id},
    booking_id BIGINT NOT NULL REFERENCES bookings (id),
    customer_id BIGINT NOT NULL REFERENCES users (id),
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('creating', 'open', 'processing', 'paid', 'failed', 'expired', 'abandoned')),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    currency TEXT NOT NULL,
    vat_rate_bp INTEGER NOT NULL,
    vat_cents BIGINT NOT NULL,
    refunded_cents BIGINT NOT NULL DEFAULT 0,
    checkout_session_id TEXT,
    checkout_url TEXT,
    session_expires_at BIGINT,
    payment_intent_id TEXT,
    receipt_number TEXT,
    disputed BOOLEAN NOT NULL DEFAULT FALSE,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    paid_at BIGINT,
    UNIQUE (booking_id, attempt)
);
CREATE UNIQUE INDEX payments_session_idx ON payments (checkout_session_id);
CREATE UNIQUE INDEX payments_receipt_idx ON payments (receipt_number);
CREATE INDEX payments_intent_idx ON payments (payment_intent_id);
CREATE INDEX payments_status_idx ON payments (status, created_at);
CREATE INDEX payments_customer_idx ON payments (customer_id, created_at);

CREATE TABLE refunds (
    id {id},
    payment_id BIGINT NOT NULL REFERENCES payments (id),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    reason TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('policy', 'staff', 'late_payment', 'stripe')),
    requested_by BIGINT REFERENCES users (id),
    status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    stripe_refund_id TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX refunds_stripe_idx ON refunds (stripe_refund_id);
CREATE INDEX refunds_payment_idx ON refunds (payment_id);

CREATE TABLE stripe_events (
    id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    object_id TEXT,
    stripe_created BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    payload TEXT NOT NULL,
    processed_at BIGINT,
    outcome TEXT
);
CREATE INDEX stripe_events_received_idx ON stripe_events (received_at)
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sql::run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sql::run(
            manager,
            "DROP TABLE stripe_events; DROP TABLE refunds; DROP TABLE payments",
        )
        .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
