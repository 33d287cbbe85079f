//! The booking engine against real databases: no double booking under concurrent requests (and a
//! raw overlapping insert refused by PostgreSQL itself), holds that expire and free the slot,
//! reminders that follow reschedules and cancellations, and the policy deciding the deposit.

use domain::booking::{self, BookingError};
use domain::db::{self, col, now_ms};
use model::BookingStatus;
use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::db_test;
use crate::support::*;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

pub struct Shop {
    pub staff: i64,
    pub other_staff: i64,
    pub customer: i64,
    /// 30 minutes, 10 minutes' buffer after, no deposit.
    pub short: i64,
    /// 45 minutes, 15 minutes' buffer before, no deposit.
    pub medium: i64,
    /// 60 minutes, R 100 deposit.
    pub with_deposit: i64,
}

/// A business where staff work every day all day (UTC), so any grid start is in hours.
pub async fn shop(db: &DatabaseConnection) -> Shop {
    db::execute(db, "UPDATE business_settings SET time_zone = 'UTC', hold_minutes = 15, free_change_hours = 24, reminder_hours = 24, max_unpaid_holds = 3", vec![]).await.unwrap();
    let mut ids = Vec::new();
    for (email, role) in [
        ("thandi@example.com", "staff"),
        ("pieter@example.com", "staff"),
        ("cust@example.com", "customer"),
    ] {
        let r = db::query_one(db, "INSERT INTO users (email, name, role, status, email_verified_at, created_at, updated_at) VALUES (?, ?, ?, 'active', 1, 1, 1) RETURNING id", vec![email.into(), email.split('@').next().unwrap().into(), role.into()]).await.unwrap().unwrap();
        ids.push(col::<i64>(&r, "id").unwrap());
    }
    for staff in &ids[0..2] {
        for d in 0..7 {
            db::execute(db, "INSERT INTO working_hours (staff_id, weekday, start_min, end_min) VALUES (?, ?, 0, 1440)", vec![(*staff).into(), d.into()]).await.unwrap();
        }
    }
    let mut services = Vec::new();
    for (name, dur, before, after, kind, value) in [
        ("Short", 30, 0, 10, "none", 0),
        ("Medium", 45, 15, 0, "none", 0),
        ("Deposit", 60, 0, 0, "fixed", 10_000),
    ] {
        let r = db::query_one(
            db,
            "INSERT INTO services (name, duration_min, buffer_before_min, buffer_after_min, price_cents, deposit_kind, deposit_value, min_notice_min, horizon_days, slot_step_min, created_at, updated_at) \
             VALUES (?, ?, ?, ?, 45000, ?, ?, 0, 400, 15, 1, 1) RETURNING id",
            vec![name.into(), dur.into(), before.into(), after.into(), kind.into(), value.into()],
        )
        .await
        .unwrap()
        .unwrap();
        let id: i64 = col(&r, "id").unwrap();
        for staff in &ids[0..2] {
            db::execute(
                db,
                "INSERT INTO service_staff (service_id, staff_id) VALUES (?, ?)",
                vec![id.into(), (*staff).into()],
            )
            .await
            .unwrap();
        }
        services.push(id);
    }
    Shop {
        staff: ids[0],
        other_staff: ids[1],
        customer: ids[2],
        short: services[0],
        medium: services[1],
        with_deposit: services[2],
    }
}

/// A grid start `days` from now at `hour`:`minute` UTC.
pub fn at(days: i64, hour: i64, minute: i64) -> i64 {
    (now_ms() / DAY + days) * DAY + hour * HOUR + minute * MIN
}

/// A start about `hours` from now (on the 15-minute grid) for a booking that blocks `block_min`
/// minutes, moved to the next midnight if it would run past one: the shop's hours are whole days
/// (UTC), and a booking cannot span two of them. Still within a day of now for `hours` up to 22,
/// whatever the time the test runs.
pub fn soon(hours: i64, block_min: i64) -> i64 {
    let start = now_ms() / (15 * MIN) * (15 * MIN) + hours * HOUR;
    let next_midnight = (start / DAY + 1) * DAY;
    if start + block_min * MIN > next_midnight {
        next_midnight
    } else {
        start
    }
}

async fn active_blocks(db: &DatabaseConnection, staff: i64) -> Vec<(i64, i64)> {
    db::query(db, "SELECT block_start, block_end FROM bookings WHERE staff_id = ? AND status IN ('confirmed', 'awaiting_deposit') ORDER BY block_start", vec![staff.into()])
        .await
        .unwrap()
        .iter()
        .map(|r| (col(r, "block_start").unwrap(), col(r, "block_end").unwrap()))
        .collect()
}

fn assert_no_overlap(blocks: &[(i64, i64)]) {
    for w in blocks.windows(2) {
        assert!(
            w[0].1 <= w[1].0,
            "overlapping bookings: {:?} and {:?}",
            w[0],
            w[1]
        );
    }
}

db_test!(
    racing_requests_for_the_same_and_overlapping_slots_yield_one_booking,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let s = shop(&db).await;
        let settings = app.services.state.settings.clone();
        let rounds: i64 = std::env::var("STOEP_TEST_BOOKING_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100);
        let mut won_total = 0;
        for round in 0..rounds {
            let base = at(1 + round / 20, (round % 20) + 2, 0);
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..100 {
                let (db, settings) = (db.clone(), settings.clone());
                // 50 for the same slot; 50 for overlapping slots of other lengths and buffers.
                let (service, start) = if i < 50 {
                    (s.short, base)
                } else if i % 2 == 0 {
                    (s.medium, base + 15 * MIN)
                } else {
                    (s.short, base - 15 * MIN)
                };
                let (staff, customer) = (s.staff, s.customer);
                tasks.spawn(async move {
                    booking::create(&db, &settings, customer, service, Some(staff), start).await
                });
            }
            let mut won = 0;
            while let Some(r) = tasks.join_next().await {
                match r.unwrap() {
                    Ok(_) => won += 1,
                    Err(BookingError::Taken) | Err(BookingError::Refused(_)) => {}
                    Err(e) => panic!("unexpected error: {e:?}"),
                }
            }
            assert!(won >= 1, "round {round}: someone gets the slot");
            won_total += won;
        }
        let blocks = active_blocks(&db, s.staff).await;
        assert_no_overlap(&blocks);
        assert_eq!(blocks.len() as i64, won_total);
        app.stop().await;
    }
);

db_test!(
    the_database_itself_refuses_overlapping_bookings,
    |b| async move {
        // PostgreSQL: the exclusion constraint; SQLite: the insert and update triggers.
        let Some(t) = TestDb::new(b).await else {
            return;
        };
        let s = shop(&t.db).await;
        let insert = |start: i64, end: i64| {
            format!(
                "INSERT INTO bookings (customer_id, staff_id, service_id, start_at, end_at, block_start, block_end, status, price_cents, deposit_cents, currency, policy, created_at, updated_at) \
                 VALUES ({}, {}, {}, {start}, {end}, {start}, {end}, 'confirmed', 0, 0, 'ZAR', '{{}}', 1, 1)",
                s.customer, s.staff, s.short
            )
        };
        let run = |sql: String| {
            let db = t.db.clone();
            async move { db.execute_unprepared(&sql).await }
        };
        run(insert(1_000_000, 2_000_000)).await.unwrap();
        let err = run(insert(1_500_000, 2_500_000)).await.unwrap_err();
        assert!(booking::is_overlap(&err), "{err}");
        // Touching is fine.
        run(insert(2_000_000, 3_000_000)).await.unwrap();
        // Moving a booking onto another is refused too.
        let err = run(
            "UPDATE bookings SET block_end = 2500000, end_at = 2500000 WHERE start_at = 1000000"
                .into(),
        )
        .await
        .unwrap_err();
        assert!(booking::is_overlap(&err), "{err}");
        // Cancelled bookings do not block.
        run("UPDATE bookings SET status = 'cancelled' WHERE start_at = 1000000".into())
            .await
            .unwrap();
        run(insert(1_000_000, 2_000_000)).await.unwrap();
        t.close().await;
    }
);

db_test!(
    crafted_starts_are_refused_with_a_reason_and_nothing_is_booked,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let s = shop(&db).await;
        let st = app.services.state.settings.clone();
        booking::create(&db, &st, s.customer, s.short, Some(s.staff), at(2, 10, 0))
            .await
            .unwrap();
        let cases = [
            (at(2, 10, 35), "buffer"), // inside the 10-minute buffer after the 10:00-10:30 booking
            (at(2, 11, 7), "grid"),    // not on the 15-minute grid
            (now_ms() - HOUR, "past"),
            (at(500, 10, 0), "horizon"),
        ];
        for (start, what) in cases {
            let r = booking::create(&db, &st, s.customer, s.short, Some(s.staff), start).await;
            assert!(matches!(r, Err(BookingError::Refused(_))), "{what}: {r:?}");
        }
        db::execute(
            &db,
            "UPDATE services SET active = FALSE WHERE id = ?",
            vec![s.medium.into()],
        )
        .await
        .unwrap();
        assert!(matches!(
            booking::create(&db, &st, s.customer, s.medium, Some(s.staff), at(3, 10, 0)).await,
            Err(BookingError::Refused(_))
        ));
        db::execute(
            &db,
            "UPDATE users SET status = 'deactivated' WHERE id = ?",
            vec![s.other_staff.into()],
        )
        .await
        .unwrap();
        assert!(matches!(
            booking::create(
                &db,
                &st,
                s.customer,
                s.short,
                Some(s.other_staff),
                at(3, 10, 0)
            )
            .await,
            Err(BookingError::Refused(_))
        ));
        assert_eq!(count(&db, "SELECT COUNT(*) FROM bookings").await, 1);
        app.stop().await;
    }
);

db_test!(an_unpaid_hold_expires_and_frees_the_slot, |b| async move {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let db = app.services.state.db.clone();
    let s = shop(&db).await;
    let st = app.services.state.settings.clone();
    let start = at(2, 9, 0);
    let held = booking::create(&db, &st, s.customer, s.with_deposit, Some(s.staff), start)
        .await
        .unwrap();
    assert_eq!(held.status, "awaiting_deposit");
    assert!(
        matches!(
            booking::create(&db, &st, s.customer, s.short, Some(s.staff), start).await,
            Err(BookingError::Refused(_))
        ),
        "the hold keeps the slot"
    );
    // The hold's time passes; the expiry job releases it.
    db::execute(
        &db,
        "UPDATE bookings SET hold_expires_at = ? WHERE id = ?",
        vec![(now_ms() - 1).into(), held.id.into()],
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
    app.run_jobs().await;
    assert_eq!(
        booking::view(&db, held.id).await.unwrap().unwrap().status,
        BookingStatus::Expired
    );
    let again = booking::create(&db, &st, s.customer, s.short, Some(s.staff), start)
        .await
        .unwrap();
    assert_eq!(again.status, "confirmed");
    // A customer may not hold more than three unpaid slots at once.
    for h in 0..3 {
        booking::create(
            &db,
            &st,
            s.customer,
            s.with_deposit,
            Some(s.other_staff),
            at(3, 9 + 2 * h, 0),
        )
        .await
        .unwrap();
    }
    assert!(matches!(
        booking::create(
            &db,
            &st,
            s.customer,
            s.with_deposit,
            Some(s.other_staff),
            at(4, 9, 0)
        )
        .await,
        Err(BookingError::NotAllowed(_))
    ));
    app.stop().await;
});

db_test!(
    reminders_follow_reschedules_and_cancellations,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let s = shop(&db).await;
        let st = app.services.state.settings.clone();
        let made = booking::create(&db, &st, s.customer, s.short, Some(s.staff), at(3, 9, 0))
            .await
            .unwrap();
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM jobs WHERE kind = 'booking.reminder'"
            )
            .await,
            1
        );
        booking::reschedule(&db, &st, made.id, s.customer, false, at(4, 14, 0))
            .await
            .unwrap();
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM jobs WHERE kind = 'booking.reminder'"
            )
            .await,
            2,
            "a reminder for the new time"
        );
        // Both reminders come due: only the one for the current version sends.
        db::execute(
            &db,
            "UPDATE jobs SET run_after = 0 WHERE kind = 'booking.reminder'",
            vec![],
        )
        .await
        .unwrap();
        app.run_jobs().await;
        let reminders = count(
            &db,
            "SELECT COUNT(*) FROM emails WHERE template = 'booking_reminder'",
        )
        .await;
        assert_eq!(reminders, 1, "the old time's reminder sends nothing");
        let b = booking::view(&db, made.id).await.unwrap().unwrap();
        assert_eq!((b.start_ms, b.version), (at(4, 14, 0), 2));

        let other = booking::create(&db, &st, s.customer, s.short, Some(s.staff), at(5, 9, 0))
            .await
            .unwrap();
        domain::payments::cancel_booking(&db, &st, other.id, s.customer, false, "")
            .await
            .unwrap();
        db::execute(
            &db,
            "UPDATE jobs SET run_after = 0 WHERE kind = 'booking.reminder' AND status = 'queued'",
            vec![],
        )
        .await
        .unwrap();
        app.run_jobs().await;
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM emails WHERE template = 'booking_reminder'"
            )
            .await,
            1,
            "no reminder for a cancelled booking"
        );
        // A booking made inside the reminder window gets no reminder.
        booking::create(
            &db,
            &st,
            s.customer,
            s.short,
            Some(s.staff),
            soon(3, 30 + 10),
        )
        .await
        .unwrap();
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM jobs WHERE kind = 'booking.reminder'"
            )
            .await,
            3
        );
        // Confirmation, reschedule and cancellation emails carry calendar files with one UID.
        let mail = app.mail().await;
        let ics: Vec<_> = mail
            .iter()
            .filter(|m| m.attachments.contains(&"booking.ics".to_string()))
            .collect();
        assert!(ics.len() >= 4, "{} calendar emails", ics.len());
        app.stop().await;
    }
);

db_test!(
    the_policy_decides_the_deposit_and_cancelling_twice_changes_nothing,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let s = shop(&db).await;
        let st = app.services.state.settings.clone();
        let confirm = |id: i64| {
            let db = db.clone();
            async move {
                db::execute(
                    &db,
                    "UPDATE bookings SET status = 'confirmed', hold_expires_at = NULL WHERE id = ?",
                    vec![id.into()],
                )
                .await
                .unwrap()
            }
        };
        let early = booking::create(
            &db,
            &st,
            s.customer,
            s.with_deposit,
            Some(s.staff),
            at(3, 9, 0),
        )
        .await
        .unwrap();
        confirm(early.id).await;
        assert_eq!(
            domain::payments::cancel_booking(
                &db,
                &st,
                early.id,
                s.customer,
                false,
                "plans changed"
            )
            .await
            .unwrap(),
            "refund"
        );
        let again =
            domain::payments::cancel_booking(&db, &st, early.id, s.customer, false, "").await;
        assert!(matches!(again, Err(BookingError::NotAllowed(_))));
        assert!(
            matches!(
                booking::reschedule(&db, &st, early.id, s.customer, false, at(3, 12, 0)).await,
                Err(BookingError::NotAllowed(_))
            ),
            "a cancelled booking cannot move"
        );

        let late = booking::create(
            &db,
            &st,
            s.customer,
            s.with_deposit,
            Some(s.staff),
            soon(5, 60),
        )
        .await
        .unwrap();
        confirm(late.id).await;
        assert!(
            matches!(
                booking::reschedule(&db, &st, late.id, s.customer, false, at(6, 9, 0)).await,
                Err(BookingError::NotAllowed(_))
            ),
            "too late to move online"
        );
        assert_eq!(
            domain::payments::cancel_booking(&db, &st, late.id, s.customer, false, "")
                .await
                .unwrap(),
            "keep"
        );
        let b = booking::view(&db, late.id).await.unwrap().unwrap();
        assert_eq!(b.deposit_outcome.as_deref(), Some("keep"));

        // Another customer cannot touch it.
        let other = booking::create(&db, &st, s.customer, s.short, Some(s.staff), at(4, 9, 0))
            .await
            .unwrap();
        assert!(matches!(
            domain::payments::cancel_booking(&db, &st, other.id, s.staff + 999, false, "").await,
            Err(BookingError::NotFound)
        ));
        assert_eq!(
            booking::view(&db, other.id).await.unwrap().unwrap().status,
            BookingStatus::Confirmed
        );
        // Staff cancel at any time, refunding.
        assert!(
            domain::payments::cancel_booking(&db, &st, late.id, s.staff, true, "")
                .await
                .is_err(),
            "already cancelled"
        );
        let history = count(
            &db,
            &format!(
                "SELECT COUNT(*) FROM booking_events WHERE booking_id = {}",
                early.id
            ),
        )
        .await;
        assert_eq!(
            history, 2,
            "created and cancelled, nothing for the refused second cancel"
        );
        app.stop().await;
    }
);

db_test!(
    a_customer_books_through_the_api_and_sees_it_in_the_feed_and_the_admin_csv,
    |b| async move {
        use app::api::account::NewCalendarFeed;
        use app::api::booking::{Book, GetBooking, ServiceSlots, SlotPage};
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let s = shop(&db).await;
        let hash =
            domain::auth::hash_password(secrecy::SecretString::from(TEST_PASSWORD.to_owned()))
                .await
                .unwrap();
        db::execute(
            &db,
            "UPDATE users SET password_hash = ? WHERE id = ?",
            vec![hash.clone().into(), s.customer.into()],
        )
        .await
        .unwrap();
        db::execute(&db, "INSERT INTO users (email, name, role, status, password_hash, email_verified_at, created_at, updated_at) VALUES ('other@example.com', 'Other', 'customer', 'active', ?, 1, 1, 1)", vec![hash.into()]).await.unwrap();
        let c = reqwest::Client::builder()
            .cookie_provider(recording_jar())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        c.post(app.url(&sign_in_path()))
            .header("origin", &app.address)
            .form(&[("email", "cust@example.com"), ("password", TEST_PASSWORD)])
            .send()
            .await
            .unwrap();
        let page: SlotPage = c
            .post(app.url(&path_of::<ServiceSlots>()))
            .header("origin", &app.address)
            .form(&[("service_id", s.short.to_string())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let slot = page
            .days
            .iter()
            .flat_map(|d| d.slots.iter())
            .nth(10)
            .expect("free times")
            .clone();
        let res = c
            .post(app.url(&path_of::<Book>()))
            .header("origin", &app.address)
            .header("accept", "text/html")
            .header("referer", app.url("/book"))
            .form(&[
                ("service_id", s.short.to_string()),
                ("staff_id", slot.staff_id.to_string()),
                ("start_ms", slot.start_ms.to_string()),
            ])
            .send()
            .await
            .unwrap();
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with("/bookings/"), "{location}");
        let id = location.trim_start_matches("/bookings/").to_owned();
        // The same time again is refused with a clear message.
        let again = c
            .post(app.url(&path_of::<Book>()))
            .header("origin", &app.address)
            .form(&[
                ("service_id", s.short.to_string()),
                ("staff_id", slot.staff_id.to_string()),
                ("start_ms", slot.start_ms.to_string()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 400);
        // Another customer cannot see it.
        let other = reqwest::Client::builder()
            .cookie_provider(recording_jar())
            .build()
            .unwrap();
        other
            .post(app.url(&sign_in_path()))
            .header("origin", &app.address)
            .form(&[("email", "other@example.com"), ("password", TEST_PASSWORD)])
            .send()
            .await
            .unwrap();
        let res = other
            .post(app.url(&path_of::<GetBooking>()))
            .header("origin", &app.address)
            .form(&[("id", id.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
        assert_eq!(
            other
                .get(app.url("/admin/bookings.csv"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        // The private calendar feed lists it.
        let feed_url: String = c
            .post(app.url(&path_of::<NewCalendarFeed>()))
            .header("origin", &app.address)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let path = feed_url
            .split_once("/calendar/")
            .map(|(_, t)| format!("/calendar/{t}"))
            .unwrap();
        let feed = reqwest::get(app.url(&path))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(feed.contains(&format!("UID:booking-{id}@")), "{feed}");
        assert!(feed.contains(&format!("DTSTART:{}", slots::ics_utc(slot.start_ms))));
        // A new link revokes the old one.
        let _: String = c
            .post(app.url(&path_of::<NewCalendarFeed>()))
            .header("origin", &app.address)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(reqwest::get(app.url(&path)).await.unwrap().status(), 404);
        // Admins export every booking as CSV.
        app.sign_in_admin().await;
        let csv = app
            .client
            .get(app.url("/admin/bookings.csv"))
            .send()
            .await
            .unwrap();
        assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
        let csv = csv.text().await.unwrap();
        assert!(csv.lines().next().unwrap().starts_with("id,start_local"));
        assert!(csv.contains(&format!("\"{id}\"")));
        app.stop().await;
    }
);

db_test!(
    exceptions_remove_free_times_and_staff_see_only_their_own_week,
    |b| async move {
        use app::api::booking::{ServiceSlots, SlotDayBookings, SlotPage, StaffSchedule};
        use app::api::setup::{AddException, RemoveException};
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let s = shop(&db).await;
        let st = app.services.state.settings.clone();
        app.sign_in_admin().await;
        let day = slots::chrono::DateTime::from_timestamp_millis(at(3, 0, 0))
            .unwrap()
            .date_naive()
            .format("%Y-%m-%d")
            .to_string();
        let slots_on = |staff: i64| {
            let (app, day) = (&app, day.clone());
            async move {
                let page: SlotPage = app
                    .call(
                        &path_of::<ServiceSlots>(),
                        &[
                            ("service_id", &s.short.to_string()),
                            ("staff_id", &staff.to_string()),
                            ("day", &day),
                        ],
                    )
                    .await
                    .json()
                    .await
                    .unwrap();
                page.days[0].slots.len()
            }
        };
        assert_eq!(
            slots_on(s.staff).await,
            95,
            "all day every 15 minutes, the last at 23:30 (a 30-minute service ends by 24:00)"
        );
        let res = app
            .call(
                &path_of::<AddException>(),
                &[
                    ("staff_id", &s.staff.to_string()),
                    ("kind", "changed_day"),
                    ("date", &day),
                    ("from", "09:00"),
                    ("to", "12:00"),
                ],
            )
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            slots_on(s.staff).await,
            11,
            "09:00 to 11:30 (a 30-minute service inside 09:00-12:00)"
        );
        let res = app
            .call(
                &path_of::<AddException>(),
                &[
                    ("staff_id", &s.staff.to_string()),
                    ("kind", "day_off"),
                    ("date", &day),
                ],
            )
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(slots_on(s.staff).await, 0, "a day off wins");
        assert_eq!(
            slots_on(s.other_staff).await,
            95,
            "the other staff member is unaffected"
        );
        let bad = app
            .call(
                &path_of::<AddException>(),
                &[
                    ("staff_id", &s.staff.to_string()),
                    ("kind", "time_off"),
                    ("date", &day),
                    ("from", "12:00"),
                    ("to", "09:00"),
                ],
            )
            .await;
        assert_eq!(bad.status(), 400);
        let ids: Vec<i64> = db::query(&db, "SELECT id FROM availability_exceptions", vec![])
            .await
            .unwrap()
            .iter()
            .map(|r| col(r, "id").unwrap())
            .collect();
        for id in ids {
            assert_eq!(
                app.call(&path_of::<RemoveException>(), &[("id", &id.to_string())])
                    .await
                    .status(),
                200
            );
        }
        assert_eq!(slots_on(s.staff).await, 95);

        // Staff see their own appointments only.
        booking::create(&db, &st, s.customer, s.short, Some(s.staff), at(1, 9, 0))
            .await
            .unwrap();
        booking::create(
            &db,
            &st,
            s.customer,
            s.short,
            Some(s.other_staff),
            at(1, 9, 0),
        )
        .await
        .unwrap();
        db::execute(
            &db,
            "UPDATE users SET totp_secret = ?, password_hash = ? WHERE id = ?",
            vec![
                TEST_TOTP_SECRET.into(),
                domain::auth::hash_password(secrecy::SecretString::from(TEST_PASSWORD.to_owned()))
                    .await
                    .unwrap()
                    .into(),
                s.staff.into(),
            ],
        )
        .await
        .unwrap();
        let staff = reqwest::Client::builder()
            .cookie_provider(recording_jar())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        sign_in_with_code(
            &app,
            &staff,
            "thandi@example.com",
            TEST_PASSWORD,
            TEST_TOTP_SECRET,
        )
        .await;
        let week: Vec<SlotDayBookings> = staff
            .post(app.url(&path_of::<StaffSchedule>()))
            .header("origin", &app.address)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mine: Vec<_> = week.iter().flat_map(|d| d.bookings.iter()).collect();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].staff_name, "thandi");
        app.stop().await;
    }
);

db_test!(
    a_staff_members_own_time_zone_sets_their_hours_and_admins_filter_bookings,
    |b| async move {
        use app::api::booking::{ServiceSlots, SlotPage};
        use app::api::setup::{AdminBookings, SaveHours};
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let s = shop(&db).await;
        let st = app.services.state.settings.clone();
        app.sign_in_admin().await;
        // Thandi works 09:00-10:00 London time on every day; the business is on UTC.
        let nine = "09:00-10:00";
        let staff = s.staff.to_string();
        let form = [
            ("staff_id", staff.as_str()),
            ("mon", nine),
            ("tue", nine),
            ("wed", nine),
            ("thu", nine),
            ("fri", nine),
            ("sat", nine),
            ("sun", nine),
            ("time_zone", "Europe/London"),
        ];
        assert_eq!(app.call(&path_of::<SaveHours>(), &form).await.status(), 200);
        let bad = [("staff_id", staff.as_str()), ("time_zone", "Mars/Olympus")];
        assert_eq!(app.call(&path_of::<SaveHours>(), &bad).await.status(), 400);
        // A day in summer time: 09:00 BST is 08:00 UTC.
        let day = "2027-07-01";
        let page: SlotPage = app
            .call(
                &path_of::<ServiceSlots>(),
                &[
                    ("service_id", &s.short.to_string()),
                    ("staff_id", &staff),
                    ("day", day),
                ],
            )
            .await
            .json()
            .await
            .unwrap();
        let labels: Vec<&str> = page.days[0]
            .slots
            .iter()
            .map(|x| x.label.as_str())
            .collect();
        assert_eq!(
            labels,
            vec!["08:00", "08:15", "08:30"],
            "shown in the business's zone (UTC)"
        );

        // Admins filter all bookings by staff member and dates.
        booking::create(
            &db,
            &st,
            s.customer,
            s.short,
            Some(s.other_staff),
            at(2, 9, 0),
        )
        .await
        .unwrap();
        booking::create(
            &db,
            &st,
            s.customer,
            s.short,
            Some(s.other_staff),
            at(9, 9, 0),
        )
        .await
        .unwrap();
        let date = |ms: i64| {
            slots::chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .date_naive()
                .format("%Y-%m-%d")
                .to_string()
        };
        let rows: Vec<app::api::booking::BookingRow> = app
            .call(
                &path_of::<AdminBookings>(),
                &[
                    ("staff", &s.other_staff.to_string()),
                    ("from", &date(at(1, 0, 0))),
                    ("to", &date(at(3, 0, 0))),
                ],
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        let rows: Vec<app::api::booking::BookingRow> = app
            .call(
                &path_of::<AdminBookings>(),
                &[("staff", &s.staff.to_string())],
            )
            .await
            .json()
            .await
            .unwrap();
        assert!(rows.is_empty());
        app.stop().await;
    }
);
