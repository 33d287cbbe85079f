//! Deposits end to end through the production path: the portal's async-stripe client over HTTP
//! to the local Stripe stand-in, signed webhooks back to `POST /webhooks/stripe`, the ledger's
//! jobs applying them, refunds and reconciliation. On SQLite and PostgreSQL.

use model::PaymentStatus;
use std::time::Duration;

use domain::booking;
use domain::db::{self, now_ms};
use domain::payments;
use sea_orm::DatabaseConnection;
use standins::stripe::StripeStandin;

use crate::bookings::{Shop, at, shop};
use crate::db_test;
use crate::support::*;

fn standin(app: &TestApp) -> StripeStandin {
    app.services
        .embedded
        .stripe
        .clone()
        .expect("the embedded Stripe stand-in runs in tests")
}

/// A held booking of the deposit service and its open Checkout Session id.
async fn held_and_checkout(app: &TestApp, s: &Shop, start: i64) -> (i64, String) {
    let st = &app.services.state;
    let held = booking::create(
        &st.db,
        &st.settings,
        s.customer,
        s.with_deposit,
        Some(s.staff),
        start,
    )
    .await
    .unwrap();
    assert_eq!(held.status, "awaiting_deposit");
    let url = payments::begin_checkout(
        &st.db,
        &st.settings,
        st.payments.as_ref(),
        held.id,
        s.customer,
    )
    .await
    .expect("checkout starts");
    let p = payments::for_booking(&st.db, held.id).await.unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].status, PaymentStatus::Open);
    assert_eq!(p[0].checkout_url.as_deref(), Some(url.as_str()));
    (held.id, p[0].checkout_session_id.clone().unwrap())
}

/// Lets the stand-in deliver everything pending, then runs the jobs (twice: events can enqueue
/// refunds and emails).
async fn settle(app: &TestApp) {
    assert!(
        standin(app).wait_idle(Duration::from_secs(20)).await,
        "webhooks delivered"
    );
    app.run_jobs().await;
    app.run_jobs().await;
}

/// Like `settle`, and also runs retries now (an event applied before the one it depends on is
/// retried after a backoff; here the backoff is skipped).
async fn settle_with_retries(app: &TestApp) {
    settle(app).await;
    for _ in 0..5 {
        db::execute(
            &app.services.state.db,
            "UPDATE jobs SET run_after = 0 WHERE status = 'queued' AND integration = 'payments'",
            vec![],
        )
        .await
        .unwrap();
        if app.run_jobs().await == 0 {
            break;
        }
    }
}

async fn n(db: &DatabaseConnection, sql: &str) -> i64 {
    count(db, sql).await
}

async fn emails(db: &DatabaseConnection, template: &str) -> i64 {
    n(
        db,
        &format!("SELECT COUNT(*) AS n FROM emails WHERE template = '{template}'"),
    )
    .await
}

async fn status_of(db: &DatabaseConnection, booking_id: i64) -> String {
    booking::view(db, booking_id)
        .await
        .unwrap()
        .unwrap()
        .status
        .to_string()
}

db_test!(
    paying_confirms_once_and_replays_in_any_order_change_nothing,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let s = shop(&db).await;
        let (id, session) = held_and_checkout(&app, &s, at(3, 9, 0)).await;
        standin(&app).pay(&session).await.unwrap();
        settle(&app).await;
        assert_eq!(status_of(&db, id).await, "confirmed");
        let p = &payments::for_booking(&db, id).await.unwrap()[0];
        assert_eq!(p.status, PaymentStatus::Paid);
        assert_eq!(p.amount_cents, 10_000);
        assert!(p.receipt_number.is_some() && p.payment_intent_id.is_some());
        // VAT at the default 15 % included in R 100.00.
        assert_eq!(p.vat_cents, 1_304);
        let state = |db: DatabaseConnection| async move {
            (
                emails(&db, "booking_confirmed").await,
                emails(&db, "deposit_receipt").await,
                n(
                    &db,
                    "SELECT COUNT(*) AS n FROM crm_sync WHERE changed_version > 0",
                )
                .await
                    * 1000
                    + n(&db, "SELECT MAX(changed_version) AS n FROM crm_sync").await,
                n(
                    &db,
                    "SELECT COUNT(*) AS n FROM payments WHERE status = 'paid'",
                )
                .await,
                n(
                    &db,
                    "SELECT COUNT(*) AS n FROM booking_events WHERE action = 'confirmed'",
                )
                .await,
            )
        };
        let before = state(db.clone()).await;
        // One customer marked for the CRM twice: when booked, and when the deposit was paid.
        assert_eq!(
            before,
            (1, 1, 1002, 1, 1),
            "one confirmation, one receipt, one CRM update"
        );
        // Every event again, ten times, shuffled and duplicated.
        let faults = standin(&app).faults().clone();
        faults
            .shuffle_webhooks
            .store(true, std::sync::atomic::Ordering::Relaxed);
        faults
            .duplicate_webhooks
            .store(1, std::sync::atomic::Ordering::Relaxed);
        standin(&app).redeliver_all(10);
        settle(&app).await;
        assert_eq!(state(db.clone()).await, before, "replays change nothing");
        assert_eq!(status_of(&db, id).await, "confirmed");
        // The receipt went out through SMTP to the catcher.
        app.run_jobs().await;
        let mail = app.mail().await;
        assert!(
            mail.iter().any(|m| m.subject.contains("Receipt")),
            "receipt delivered"
        );
        app.stop().await;
    }
);

db_test!(
    a_lost_or_unprocessed_webhook_still_confirms_the_booking,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let s = shop(&db).await;
        let faults = standin(&app).faults().clone();
        use std::sync::atomic::Ordering::Relaxed;

        // 1. The webhook is received and stored, then the worker dies mid-job (its lease is left
        //    behind); the next deliveries are dropped. The stored event is applied on rescue.
        let (first, s1) = held_and_checkout(&app, &s, at(3, 9, 0)).await;
        standin(&app).pay(&s1).await.unwrap();
        assert!(standin(&app).wait_idle(Duration::from_secs(20)).await);
        assert_eq!(n(&db, "SELECT COUNT(*) AS n FROM stripe_events").await, 1);
        db::execute(&db, "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = 'killed-worker', locked_until = ? WHERE kind = 'payments.stripe_event'", vec![(now_ms() - 1).into()]).await.unwrap();
        faults.drop_next_webhooks.store(100, Relaxed);
        standin(&app).redeliver_all(1);
        app.run_jobs().await;
        app.run_jobs().await;
        assert_eq!(
            status_of(&db, first).await,
            "confirmed",
            "rescued after the crash"
        );

        // 2. Every delivery lost: reconciliation asks Stripe and repairs it.
        faults.webhooks_paused.store(true, Relaxed);
        let (second, s2) = held_and_checkout(&app, &s, at(4, 9, 0)).await;
        standin(&app).pay(&s2).await.unwrap();
        app.run_jobs().await;
        assert_eq!(
            status_of(&db, second).await,
            "awaiting_deposit",
            "no webhook yet"
        );
        let st = &app.services.state;
        let report = server::jobs::payments::reconcile(&db, &st.settings, st.payments.as_ref())
            .await
            .unwrap();
        assert!(report.repaired >= 1, "{report:?}");
        app.run_jobs().await;
        assert_eq!(status_of(&db, second).await, "confirmed");
        assert_eq!(emails(&db, "deposit_receipt").await, 2);
        // A second reconciliation finds nothing to do.
        let again = server::jobs::payments::reconcile(&db, &st.settings, st.payments.as_ref())
            .await
            .unwrap();
        assert_eq!(again.repaired, 0);
        // When the webhooks finally arrive, they change nothing.
        faults.reset();
        standin(&app).redeliver_all(1);
        settle(&app).await;
        assert_eq!(emails(&db, "deposit_receipt").await, 2);
        assert_eq!(emails(&db, "booking_confirmed").await, 2);
        app.stop().await;
    }
);

db_test!(
    a_late_payment_confirms_if_free_and_is_refunded_if_taken,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let st = app.services.state.clone();
        let s = shop(&db).await;
        let expire = |id: i64| {
            let db = db.clone();
            async move {
                db::execute(
                    &db,
                    "UPDATE bookings SET hold_expires_at = ? WHERE id = ?",
                    vec![(now_ms() - 1).into(), id.into()],
                )
                .await
                .unwrap();
                db::execute(
                    &db,
                    "UPDATE jobs SET run_after = 0 WHERE kind = 'booking.expire_hold'",
                    vec![],
                )
                .await
                .unwrap();
            }
        };
        // Free: the hold expired, nobody took the time, the money arrives: confirmed.
        let (free, s1) = held_and_checkout(&app, &s, at(3, 9, 0)).await;
        expire(free).await;
        app.run_jobs().await;
        assert_eq!(status_of(&db, free).await, "expired");
        standin(&app).pay(&s1).await.unwrap();
        settle(&app).await;
        assert_eq!(status_of(&db, free).await, "confirmed");

        // Taken: another customer booked the time after the hold expired.
        let (taken, s2) = held_and_checkout(&app, &s, at(5, 9, 0)).await;
        expire(taken).await;
        app.run_jobs().await;
        let other = booking::create(
            &db,
            &st.settings,
            s.customer,
            s.short,
            Some(s.staff),
            at(5, 9, 0),
        )
        .await
        .unwrap();
        assert_eq!(other.status, "confirmed");
        standin(&app).pay(&s2).await.unwrap();
        settle(&app).await;
        assert_eq!(status_of(&db, taken).await, "expired");
        let p = &payments::for_booking(&db, taken).await.unwrap()[0];
        assert_eq!(p.status, PaymentStatus::Paid);
        assert_eq!(p.refunded_cents, 10_000, "refunded in full");
        assert_eq!(standin(&app).refunds().len(), 1);
        assert_eq!(emails(&db, "late_payment_refunded").await, 1);
        assert_eq!(emails(&db, "refund_issued").await, 1);
        assert_eq!(
        n(&db, "SELECT COUNT(*) AS n FROM jobs WHERE kind = 'payments.review' AND status = 'manual_review'").await,
        1,
        "admins see it"
    );
        app.stop().await;
    }
);

db_test!(
    a_cancellation_in_the_free_window_refunds_once,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let st = app.services.state.clone();
        let s = shop(&db).await;
        let (id, session) = held_and_checkout(&app, &s, at(5, 9, 0)).await;
        standin(&app).pay(&session).await.unwrap();
        settle(&app).await;
        assert_eq!(status_of(&db, id).await, "confirmed");
        let outcome = domain::payments::cancel_booking(
            &db,
            &st.settings,
            id,
            s.customer,
            false,
            "plans changed",
        )
        .await
        .unwrap();
        assert_eq!(outcome, "refund");
        app.run_jobs().await;
        // The refund job runs again (a crash after Stripe refunded, before the portal recorded it).
        db::execute(
            &db,
            "UPDATE refunds SET status = 'pending', stripe_refund_id = NULL",
            vec![],
        )
        .await
        .unwrap();
        db::execute(
            &db,
            "UPDATE jobs SET status = 'queued', run_after = 0 WHERE kind = 'payments.refund'",
            vec![],
        )
        .await
        .unwrap();
        app.run_jobs().await;
        settle(&app).await;
        assert_eq!(standin(&app).refunds().len(), 1, "Stripe refunded once");
        let p = &payments::for_booking(&db, id).await.unwrap()[0];
        assert_eq!(p.refunded_cents, 10_000);
        assert_eq!(p.label(), "refunded");
        assert_eq!(
            n(
                &db,
                "SELECT COUNT(*) AS n FROM refunds WHERE status = 'succeeded'"
            )
            .await,
            1
        );
        assert_eq!(emails(&db, "refund_issued").await, 1);
        app.stop().await;
    }
);

db_test!(
    refunds_by_hand_and_stripe_refusals_reach_manual_review,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let s = shop(&db).await;
        let (id, session) = held_and_checkout(&app, &s, at(3, 9, 0)).await;
        standin(&app).pay(&session).await.unwrap();
        settle(&app).await;
        let p = payments::for_booking(&db, id).await.unwrap().remove(0);
        // Over the amount paid: refused before anything is recorded.
        let err = payments::manual_refund(&db, p.id, 20_000, "goodwill", s.staff)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("At most R 100.00"), "{err}");
        assert!(
            payments::manual_refund(&db, p.id, 1_000, "  ", s.staff)
                .await
                .is_err()
        );
        // A partial refund by hand.
        payments::manual_refund(&db, p.id, 2_500, "late start", s.staff)
            .await
            .unwrap();
        settle(&app).await;
        let p = payments::get(&db, p.id).await.unwrap().unwrap();
        assert_eq!(p.refunded_cents, 2_500);
        assert_eq!(p.label(), "partly refunded");
        // Someone refunds the rest in the Stripe dashboard while the portal's own refund waits:
        // Stripe refuses the portal's, which lands in manual review with Stripe's message.
        payments::manual_refund(&db, p.id, 7_500, "cancelled by phone", s.staff)
            .await
            .unwrap();
        let pi = p.payment_intent_id.clone().unwrap();
        let res = reqwest::Client::new()
            .post(format!("{}/v1/refunds", standin(&app).base_url()))
            .bearer_auth(server::config::STANDIN_SECRET_KEY)
            .form(&[("payment_intent", pi.as_str())])
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_success(),
            "dashboard refund: {}",
            res.status()
        );
        app.run_jobs().await;
        let review = db::query_one(&db, "SELECT status, last_error FROM jobs WHERE kind = 'payments.refund' ORDER BY id DESC LIMIT 1", vec![]).await.unwrap().unwrap();
        assert_eq!(
            db::col::<String>(&review, "status").unwrap(),
            "manual_review"
        );
        let msg: String = db::col::<Option<String>>(&review, "last_error")
            .unwrap()
            .unwrap();
        assert!(msg.contains("Stripe answered 400"), "{msg}");
        // The dashboard refund's event is recorded once the pending one is settled: the admin
        // cancels the portal's refund job and the charge.refunded event then applies.
        db::execute(
            &db,
            "UPDATE refunds SET status = 'failed' WHERE status = 'pending'",
            vec![],
        )
        .await
        .unwrap();
        db::execute(&db, "UPDATE jobs SET status = 'queued', run_after = 0 WHERE kind = 'payments.stripe_event' AND status = 'queued'", vec![]).await.unwrap();
        settle(&app).await;
        let p = payments::get(&db, p.id).await.unwrap().unwrap();
        assert_eq!(p.refunded_cents, 10_000, "the dashboard refund is recorded");
        app.stop().await;
    }
);

db_test!(
    disputes_and_declines_are_shown_and_stripe_outages_keep_the_hold,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let st = app.services.state.clone();
        let s = shop(&db).await;
        use std::sync::atomic::Ordering::Relaxed;
        // Stripe down: a clear message, the hold kept; after recovery the customer pays.
        let held = booking::create(
            &db,
            &st.settings,
            s.customer,
            s.with_deposit,
            Some(s.staff),
            at(3, 9, 0),
        )
        .await
        .unwrap();
        standin(&app).faults().api_down.store(true, Relaxed);
        let err =
            payments::begin_checkout(&db, &st.settings, st.payments.as_ref(), held.id, s.customer)
                .await
                .unwrap_err();
        assert!(
            err.to_string()
                .contains("couldn't reach the payment provider"),
            "{err}"
        );
        assert_eq!(status_of(&db, held.id).await, "awaiting_deposit");
        standin(&app).faults().reset();
        payments::begin_checkout(&db, &st.settings, st.payments.as_ref(), held.id, s.customer)
            .await
            .unwrap();
        let attempts = payments::for_booking(&db, held.id).await.unwrap();
        assert_eq!(
            attempts
                .iter()
                .map(|p| p.status.as_str())
                .collect::<Vec<_>>(),
            ["failed", "open"]
        );
        let session = attempts[1].checkout_session_id.clone().unwrap();
        // Another customer cannot pay (or see) this booking.
        assert!(matches!(
            payments::begin_checkout(&db, &st.settings, st.payments.as_ref(), held.id, s.staff)
                .await,
            Err(payments::PaymentError::NotFound)
        ));
        // A declined card is shown on the booking; the session stays open.
        standin(&app).decline(&session).await.unwrap();
        settle(&app).await;
        let p = payments::for_booking(&db, held.id).await.unwrap().remove(1);
        assert_eq!(p.status, PaymentStatus::Open);
        assert!(p.last_error.unwrap_or_default().contains("declined"));
        // Paid, then disputed: flagged and in manual review.
        standin(&app).pay(&session).await.unwrap();
        standin(&app).dispute(&session).await.unwrap();
        settle_with_retries(&app).await;
        let p = payments::for_booking(&db, held.id).await.unwrap().remove(1);
        assert!(p.disputed);
        assert_eq!(
        n(&db, "SELECT COUNT(*) AS n FROM jobs WHERE kind = 'payments.review' AND status = 'manual_review'").await,
        1
    );
        // A delayed method: processing, then failed.
        let (other, s2) = held_and_checkout(&app, &s, at(4, 9, 0)).await;
        standin(&app).pay_later(&s2).await.unwrap();
        settle(&app).await;
        assert_eq!(
            payments::for_booking(&db, other).await.unwrap()[0].status,
            PaymentStatus::Processing
        );
        standin(&app).settle_async(&s2, false).await.unwrap();
        settle(&app).await;
        assert_eq!(
            payments::for_booking(&db, other).await.unwrap()[0].status,
            PaymentStatus::Failed
        );
        assert_eq!(status_of(&db, other).await, "awaiting_deposit");
        app.stop().await;
    }
);

db_test!(
    the_webhook_refuses_bad_signatures_and_bodies_and_ignores_unknown_types,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let secret = server::config::STANDIN_WEBHOOK_SECRET;
        let now = now_ms() / 1000;
        let post = |body: String, sig: Option<String>| {
            let c = reqwest::Client::new();
            let url = app.url("/webhooks/stripe");
            async move {
                let mut r = c
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body);
                if let Some(s) = sig {
                    r = r.header("stripe-signature", s);
                }
                let res = r.send().await.unwrap();
                (res.status().as_u16(), res.text().await.unwrap())
            }
        };
        let event = |id: &str, kind: &str| {
            serde_json::json!({"id": id, "object": "event", "type": kind, "created": now,
            "data": {"object": {"id": "cs_test_x", "object": "checkout.session"}}})
            .to_string()
        };
        let sign =
            |body: &str, t: i64| server::integrations::stripe::sign(secret, t, body.as_bytes());
        let body = event("evt_1", "checkout.session.completed");
        assert_eq!(post(body.clone(), None).await.0, 400, "no signature");
        assert_eq!(
            post(body.clone(), Some(sign(&body, now).replace("v1=", "v1=00")))
                .await
                .0,
            400,
            "bad signature"
        );
        assert_eq!(
            post(body.clone(), Some(sign(&body, now - 600))).await.0,
            400,
            "stale"
        );
        assert_eq!(
            post(
                body.clone(),
                Some(server::integrations::stripe::sign(
                    "whsec_other",
                    now,
                    body.as_bytes()
                ))
            )
            .await
            .0,
            400,
            "other secret"
        );
        let not_json = "not json".to_string();
        assert_eq!(
            post(not_json.clone(), Some(sign(&not_json, now))).await.0,
            400
        );
        let no_id = r#"{"type":"checkout.session.completed"}"#.to_string();
        assert_eq!(post(no_id.clone(), Some(sign(&no_id, now))).await.0, 400);
        assert_eq!(
            n(&db, "SELECT COUNT(*) AS n FROM stripe_events").await,
            0,
            "nothing stored"
        );
        let unknown = event("evt_2", "customer.created");
        let (code, text) = post(unknown.clone(), Some(sign(&unknown, now))).await;
        assert_eq!((code, text.contains("ignored")), (200, true));
        assert_eq!(n(&db, "SELECT COUNT(*) AS n FROM stripe_events").await, 0);
        // A valid event is stored once; the same event again is a duplicate.
        assert_eq!(
            post(body.clone(), Some(sign(&body, now))).await,
            (200, "stored".into())
        );
        assert_eq!(
            post(body.clone(), Some(sign(&body, now))).await,
            (200, "duplicate".into())
        );
        assert_eq!(n(&db, "SELECT COUNT(*) AS n FROM stripe_events").await, 1);
        assert_eq!(
            n(
                &db,
                "SELECT COUNT(*) AS n FROM jobs WHERE kind = 'payments.stripe_event'"
            )
            .await,
            1
        );
        // It names a session the portal does not know: kept and retried, never dropped.
        app.run_jobs().await;
        let j = db::query_one(
            &db,
            "SELECT status, last_error FROM jobs WHERE kind = 'payments.stripe_event'",
            vec![],
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(db::col::<String>(&j, "status").unwrap(), "queued");
        assert!(
            db::col::<Option<String>>(&j, "last_error")
                .unwrap()
                .unwrap()
                .contains("kept for later")
        );
        app.stop().await;
    }
);

db_test!(
    customers_see_their_payments_and_admins_export_them,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let s = shop(&db).await;
        let (id, session) = held_and_checkout(&app, &s, at(3, 9, 0)).await;
        standin(&app).pay(&session).await.unwrap();
        settle(&app).await;
        let p = payments::for_booking(&db, id).await.unwrap().remove(0);
        // Filters.
        let biz = booking::business(&db).await.unwrap();
        let filtered = |status: Option<&'static str>, from: Option<&'static str>| {
            let db = db.clone();
            async move {
                payments::filtered(&db, status, from, None, biz.tz, 10)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(filtered(Some("paid"), None).await.unwrap().len(), 1);
        assert_eq!(filtered(Some("refunded"), None).await.unwrap().len(), 0);
        assert!(filtered(Some("nonsense"), None).await.is_err());
        assert!(filtered(None, Some("30/11/2026")).await.is_err());
        // The CSV: admins only, with the VAT split.
        app.sign_in_admin().await;
        let res = app
            .client
            .get(app.url("/admin/payments.csv?status=paid"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let csv = res.text().await.unwrap();
        assert!(
            csv.contains(&format!("\"{}\"", p.receipt_number.clone().unwrap())),
            "{csv}"
        );
        assert!(csv.contains("\"100.00\",\"13.04\",\"86.96\""), "{csv}");
        let res = app
            .client
            .get(app.url("/admin/payments.csv?from=junk"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        let anon = reqwest::Client::new()
            .get(app.url("/admin/payments.csv"))
            .send()
            .await
            .unwrap();
        assert_eq!(anon.status(), 404);
        app.stop().await;
    }
);
