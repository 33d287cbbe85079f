//! Privacy (POPIA): every column is in the inventory (docs/privacy.md); the archive holds the
//! customer's data; after a confirmed deletion no personal value of the customer remains in any
//! table, log line, storage folder or CRM stand-in record, while payment amounts and dates
//! remain.

use std::collections::BTreeSet;
use std::time::Duration;

use domain::db::{self, col};
use sea_orm::DatabaseConnection;

use crate::bookings::{at, shop};
use crate::db_test;
use crate::support::*;

const INVENTORY: &str = include_str!("../../../docs/privacy.md");

/// `table.column` for every column, from the database itself.
async fn columns(db: &DatabaseConnection) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if db.get_database_backend() == sea_orm::DbBackend::Sqlite {
        let tables = db::query(db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'seaql_migrations'", vec![]).await.unwrap();
        for t in tables {
            let t: String = col(&t, "name").unwrap();
            for c in db::query(
                db,
                &format!("SELECT name FROM pragma_table_info('{t}')"),
                vec![],
            )
            .await
            .unwrap()
            {
                out.insert(format!("{t}.{}", col::<String>(&c, "name").unwrap()));
            }
        }
    } else {
        for r in db::query(db, "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'seaql_migrations'", vec![]).await.unwrap() {
            out.insert(format!("{}.{}", col::<String>(&r, "table_name").unwrap(), col::<String>(&r, "column_name").unwrap()));
        }
    }
    out
}

/// The inventory's columns: personal ones from its table, the others from its lists.
fn inventory() -> (BTreeSet<String>, BTreeSet<String>) {
    let mut personal = BTreeSet::new();
    let mut other = BTreeSet::new();
    for line in INVENTORY.lines() {
        if let Some(rest) = line.strip_prefix("| `") {
            if let Some((name, _)) = rest.split_once('`') {
                personal.insert(name.to_owned());
            }
        } else if let Some(rest) = line.strip_prefix("- `")
            && let Some((table, cols)) = rest.split_once("`: ")
        {
            for c in cols.split(',') {
                other.insert(format!("{table}.{}", c.trim()));
            }
        }
    }
    (personal, other)
}

db_test!(every_column_is_in_the_inventory, |b| async move {
    let Some(t) = TestDb::new(b).await else {
        return;
    };
    let cols = columns(&t.db).await;
    let (personal, other) = inventory();
    let both: Vec<_> = personal.intersection(&other).collect();
    assert!(both.is_empty(), "listed as personal and not: {both:?}");
    let missing: Vec<_> = cols
        .iter()
        .filter(|c| !personal.contains(*c) && !other.contains(*c))
        .collect();
    assert!(
        missing.is_empty(),
        "columns missing from docs/privacy.md (classify each as personal information or not): {missing:?}"
    );
    let stale: Vec<_> = personal
        .union(&other)
        .filter(|c| !cols.contains(*c))
        .collect();
    assert!(
        stale.is_empty(),
        "docs/privacy.md lists columns that do not exist: {stale:?}"
    );
});

/// Every text value in every table, as `table.column = value`.
async fn all_text(db: &DatabaseConnection) -> Vec<String> {
    let mut out = Vec::new();
    for c in columns(db).await {
        let (t, column) = c.split_once('.').unwrap();
        let sql = format!("SELECT CAST(\"{column}\" AS TEXT) AS v FROM \"{t}\"");
        for r in db::query(db, &sql, vec![]).await.unwrap() {
            if let Ok(Some(v)) = col::<Option<String>>(&r, "v") {
                out.push(format!("{c} = {v}"));
            }
        }
    }
    out
}

db_test!(
    a_confirmed_deletion_leaves_no_personal_value_but_keeps_payment_records,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let st = app.services.state.clone();
        let s = shop(&db).await;
        // The customer has a distinctive name, phone and company, a paid and cancelled booking
        // (with a reason), messages, a CRM contact and audit entries.
        let (name, email, phone, company) = (
            "Nomvula Zwelithini-Marais",
            "nomvula.zm@example.com",
            "+27 82 555 0199",
            "Zwelithini Imports",
        );
        db::execute(
            &db,
            "UPDATE users SET name = ?, email = ?, phone = ?, company = ? WHERE id = ?",
            vec![
                name.into(),
                email.into(),
                phone.into(),
                company.into(),
                s.customer.into(),
            ],
        )
        .await
        .unwrap();
        let held = domain::booking::create(
            &db,
            &st.settings,
            s.customer,
            s.with_deposit,
            Some(s.staff),
            at(5, 9, 0),
        )
        .await
        .unwrap();
        domain::payments::begin_checkout(
            &db,
            &st.settings,
            st.payments.as_ref(),
            held.id,
            s.customer,
        )
        .await
        .unwrap();
        let session = domain::payments::for_booking(&db, held.id).await.unwrap()[0]
            .checkout_session_id
            .clone()
            .unwrap();
        let stripe = app.services.embedded.stripe.clone().unwrap();
        stripe.pay(&session).await.unwrap();
        assert!(stripe.wait_idle(Duration::from_secs(20)).await);
        app.run_jobs().await;
        domain::payments::cancel_booking(
            &db,
            &st.settings,
            held.id,
            s.customer,
            false,
            &format!("{name} cannot come"),
        )
        .await
        .unwrap();
        for _ in 0..4 {
            db::execute(
                &db,
                "UPDATE jobs SET run_after = 0 WHERE status = 'queued'",
                vec![],
            )
            .await
            .unwrap();
            app.run_jobs().await;
        }
        db::execute(&db, "INSERT INTO customer_notes (customer_id, author_id, body, created_at) VALUES (?, ?, ?, 1)", vec![s.customer.into(), s.staff.into(), format!("{name} prefers mornings").into()]).await.unwrap();
        // The customer uploads a document (a file named after them) through the upload route.
        let hash =
            domain::auth::hash_password(secrecy::SecretString::from(TEST_PASSWORD.to_owned()))
                .await
                .unwrap();
        db::execute(
            &db,
            "UPDATE users SET password_hash = ? WHERE id = ?",
            vec![hash.into(), s.customer.into()],
        )
        .await
        .unwrap();
        let res = app
            .call(
                &sign_in_path(),
                &[("email", email), ("password", TEST_PASSWORD)],
            )
            .await;
        assert!(res.status().is_success());
        let file = crate::documents::pdf("Nomvula's ID");
        crate::documents::upload_ok(
            &app,
            &app.client,
            &[("category", "id")],
            "Nomvula Zwelithini ID.pdf",
            file,
        )
        .await;
        assert_eq!(crate::documents::objects(&app).await.len(), 1);
        let crm = app.services.embedded.crm.clone().unwrap();
        assert!(
            crm.contact_by("stoep_customer_id", &s.customer.to_string())
                .is_some(),
            "synced to the CRM first"
        );
        let before = all_text(&db).await;
        assert!(
            before.iter().any(|v| v.contains(email)),
            "the email is stored before deletion"
        );

        // The archive holds what the inventory names.
        let data = domain::privacy::export(&db, s.customer).await.unwrap();
        let text = data.to_string();
        for v in [
            name,
            email,
            phone,
            company,
            "cannot come",
            "prefers mornings",
            "Nomvula Zwelithini ID.pdf",
            "Your booking",
        ] {
            assert!(text.contains(v), "the archive holds {v}");
        }
        assert_eq!(data["payments"][0]["amount_cents"], 10_000);
        assert!(data["messages"].as_array().unwrap().len() >= 2);

        // Request and confirmation, then the jobs.
        domain::privacy::request_deletion(&db, s.customer)
            .await
            .unwrap();
        let admin = s.staff;
        domain::privacy::confirm_deletion(&db, s.customer, admin)
            .await
            .unwrap();
        for _ in 0..4 {
            db::execute(
                &db,
                "UPDATE jobs SET run_after = 0 WHERE status = 'queued'",
                vec![],
            )
            .await
            .unwrap();
            app.run_jobs().await;
        }
        assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs WHERE kind IN ('privacy.erase', 'crm.erase') AND status = 'succeeded'").await, 2);
        assert!(
            crate::documents::objects(&app).await.is_empty(),
            "the document is gone from storage"
        );
        // Nothing personal in the log lines written during the test (captured by the test command).
        let log = captured_log();
        assert!(
            log_dir().is_none() || log.lines().count() > 10,
            "the test's log was captured"
        );
        for v in [
            name,
            email,
            phone,
            company,
            "Nomvula",
            "Zwelithini",
            "nomvula.zm",
        ] {
            let hits: Vec<_> = log.lines().filter(|l| l.contains(v)).collect();
            assert!(hits.is_empty(), "{v} is in the log: {hits:?}");
        }
        let after = all_text(&db).await;
        for v in [
            name,
            email,
            phone,
            company,
            "cannot come",
            "Nomvula",
            "Zwelithini",
        ] {
            let hits: Vec<_> = after.iter().filter(|x| x.contains(v)).collect();
            assert!(hits.is_empty(), "{v} remains: {hits:?}");
        }
        assert!(
            crm.contact_by("stoep_customer_id", &s.customer.to_string())
                .is_none(),
            "the CRM contact is gone"
        );
        assert!(crm.contacts().iter().all(|c| {
            !c.properties
                .values()
                .any(|v| v.contains("Nomvula") || v.contains(email))
        }));
        // The payment record remains, with its amount and dates.
        let p = db::query_one(&db, "SELECT amount_cents, refunded_cents, paid_at, receipt_number FROM payments WHERE customer_id = ?", vec![s.customer.into()]).await.unwrap().unwrap();
        assert_eq!(col::<i64>(&p, "amount_cents").unwrap(), 10_000);
        assert_eq!(col::<i64>(&p, "refunded_cents").unwrap(), 10_000);
        assert!(col::<Option<i64>>(&p, "paid_at").unwrap().is_some());
        assert!(
            col::<Option<String>>(&p, "receipt_number")
                .unwrap()
                .is_some()
        );
        // Signed out for good.
        assert_eq!(
            count(
                &db,
                &format!(
                    "SELECT COUNT(*) FROM sessions WHERE user_id = {}",
                    s.customer
                )
            )
            .await,
            0
        );
        app.stop().await;
    }
);

db_test!(
    deletion_is_refused_with_upcoming_bookings_and_the_archive_downloads,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let st = app.services.state.clone();
        let s = shop(&db).await;
        domain::booking::create(
            &db,
            &st.settings,
            s.customer,
            s.short,
            Some(s.staff),
            at(5, 9, 0),
        )
        .await
        .unwrap();
        let err = domain::privacy::request_deletion(&db, s.customer)
            .await
            .unwrap_err();
        assert!(err.contains("upcoming booking"), "{err}");
        assert!(
            domain::privacy::confirm_deletion(&db, s.customer, s.staff)
                .await
                .is_err(),
            "nothing to confirm"
        );
        // The archive over HTTP, as a tar with data.json.
        let hash =
            domain::auth::hash_password(secrecy::SecretString::from(TEST_PASSWORD.to_owned()))
                .await
                .unwrap();
        db::execute(
            &db,
            "UPDATE users SET password_hash = ? WHERE id = ?",
            vec![hash.into(), s.customer.into()],
        )
        .await
        .unwrap();
        let res = app
            .call(
                &sign_in_path(),
                &[("email", "cust@example.com"), ("password", TEST_PASSWORD)],
            )
            .await;
        assert!(res.status().is_success());
        let res = app
            .client
            .get(app.url("/account/export"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "application/x-tar");
        let bytes = res.bytes().await.unwrap();
        assert_eq!(&bytes[..9], b"data.json");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("\"bookings\"") && text.contains("cust@example.com"));
        let anon = reqwest::Client::new()
            .get(app.url("/account/export"))
            .send()
            .await
            .unwrap();
        assert_eq!(anon.status(), 401);
        app.stop().await;
    }
);

db_test!(
    retention_purges_what_its_periods_say_and_nothing_else,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let s = shop(&db).await;
        let day = 86_400_000i64;
        let now = domain::db::now_ms();
        let old = now - 40 * day;
        let recent = now - 2 * day;
        // Bookings: expired long ago (purged), expired recently (kept), expired long ago but with a
        // payment attempt (kept), and a confirmed one (kept).
        let mut ids = Vec::new();
        for (i, (status, updated)) in [
            ("expired", old),
            ("expired", recent),
            ("expired", old),
            ("confirmed", old),
        ]
        .into_iter()
        .enumerate()
        {
            let start = at(10 + i as i64, 9, 0);
            let r = db::query_one(&db, "INSERT INTO bookings (customer_id, staff_id, service_id, start_at, end_at, block_start, block_end, status, price_cents, deposit_cents, currency, policy, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 100, 'ZAR', '{}', ?, ?) RETURNING id",
            vec![s.customer.into(), s.staff.into(), s.short.into(), start.into(), (start + 1_800_000).into(), start.into(), (start + 1_800_000).into(), status.into(), updated.into(), updated.into()]).await.unwrap().unwrap();
            ids.push(col::<i64>(&r, "id").unwrap());
        }
        db::execute(&db, "INSERT INTO payments (booking_id, customer_id, attempt, status, amount_cents, currency, vat_rate_bp, vat_cents, created_at, updated_at) VALUES (?, ?, 1, 'expired', 100, 'ZAR', 0, 0, ?, ?)", vec![ids[2].into(), s.customer.into(), old.into(), old.into()]).await.unwrap();
        // Accounts: never confirmed and old (purged), never confirmed but recent, never confirmed
        // but booked, confirmed and old (all kept).
        let mut users = Vec::new();
        for (email, verified, created) in [
            ("stale@example.com", None, old),
            ("new@example.com", None, recent),
            ("booked@example.com", None, old),
            ("real@example.com", Some(old), old),
        ] {
            let r = db::query_one(&db, "INSERT INTO users (email, name, role, status, email_verified_at, created_at, updated_at) VALUES (?, 'X', 'customer', 'active', ?, ?, ?) RETURNING id", vec![email.into(), verified.into(), created.into(), created.into()]).await.unwrap().unwrap();
            users.push(col::<i64>(&r, "id").unwrap());
        }
        db::execute(
            &db,
            "UPDATE bookings SET customer_id = ? WHERE id = ?",
            vec![users[2].into(), ids[3].into()],
        )
        .await
        .unwrap();
        db::execute(&db, "INSERT INTO user_tokens (user_id, purpose, token_hash, expires_at, created_at) VALUES (?, 'verify_email', 'h', ?, ?)", vec![users[0].into(), old.into(), old.into()]).await.unwrap();
        // Payloads: an applied old Stripe event (blanked), a recent one (kept); a sent old email
        // (body blanked), a queued old one (kept).
        for (id, received) in [("evt_old", old), ("evt_new", recent)] {
            db::execute(&db, "INSERT INTO stripe_events (id, event_type, stripe_created, received_at, payload, processed_at) VALUES (?, 'x', 0, ?, '{\"email\":\"a@b.c\"}', ?)", vec![id.into(), received.into(), received.into()]).await.unwrap();
        }
        for (key, status) in [("k1", "sent"), ("k2", "queued")] {
            db::execute(&db, "INSERT INTO emails (user_id, to_address, template, subject, body_text, body_html, message_id, job_key, status, created_at) VALUES (NULL, 'a@b.c', 't', 's', 'the body', '<p>the body</p>', ?, ?, ?, ?)", vec![key.into(), key.into(), status.into(), old.into()]).await.unwrap();
        }
        let r = server::config::RetentionSettings {
            expired_holds_days: 30,
            unverified_accounts_days: 14,
            integration_payloads_days: 30,
        };
        server::jobs::purge::retention(&db, &r, now).await.unwrap();
        let exists = |sql: String| {
            let db = db.clone();
            async move { count(&db, &sql).await == 1 }
        };
        assert!(
            !exists(format!(
                "SELECT COUNT(*) FROM bookings WHERE id = {}",
                ids[0]
            ))
            .await,
            "old unpaid hold purged"
        );
        for id in &ids[1..] {
            assert!(
                exists(format!("SELECT COUNT(*) FROM bookings WHERE id = {id}")).await,
                "booking {id} kept"
            );
        }
        assert!(
            !exists(format!(
                "SELECT COUNT(*) FROM users WHERE id = {}",
                users[0]
            ))
            .await,
            "stale unverified account purged"
        );
        assert_eq!(
            count(
                &db,
                &format!(
                    "SELECT COUNT(*) FROM user_tokens WHERE user_id = {}",
                    users[0]
                )
            )
            .await,
            0
        );
        for id in &users[1..] {
            assert!(
                exists(format!("SELECT COUNT(*) FROM users WHERE id = {id}")).await,
                "user {id} kept"
            );
        }
        assert!(
            exists(
                "SELECT COUNT(*) FROM stripe_events WHERE id = 'evt_old' AND payload = '{}'".into()
            )
            .await
        );
        assert!(
            exists(
                "SELECT COUNT(*) FROM stripe_events WHERE id = 'evt_new' AND payload <> '{}'"
                    .into()
            )
            .await
        );
        assert!(
            exists("SELECT COUNT(*) FROM emails WHERE job_key = 'k1' AND body_text = ''".into())
                .await
        );
        assert!(
            exists(
                "SELECT COUNT(*) FROM emails WHERE job_key = 'k2' AND body_text = 'the body'"
                    .into()
            )
            .await
        );
        app.stop().await;
    }
);

db_test!(
    the_access_report_lists_who_read_a_customers_data_and_when,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let s = shop(&db).await;
        let (_, admin_email) = app.sign_in_admin().await;
        // The admin opens the customer's page; a member of staff downloads their document (as the
        // download route records it); the admin exports every customer's bookings.
        let res = app
            .call(
                "/api/customer_documents",
                &[("id", &s.customer.to_string())],
            )
            .await;
        assert_eq!(res.status(), 200);
        domain::audit::record_access(
            &db,
            s.staff,
            "document.downloaded",
            s.customer,
            ("document", "1"),
            "document 1 (pdf)",
        )
        .await
        .unwrap();
        let res = app
            .client
            .get(app.url("/admin/bookings.csv"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        // Unrelated entries stay out: a sign-in failure, and another customer's page.
        domain::audit::record(
            &db,
            None,
            "auth.signin_failed",
            "user",
            &s.customer.to_string(),
            "wrong password",
        )
        .await
        .unwrap();
        domain::audit::record_access(
            &db,
            s.staff,
            "customer.viewed",
            s.other_staff,
            ("user", &s.other_staff.to_string()),
            "opened the customer's page",
        )
        .await
        .unwrap();

        let r: serde_json::Value = app
            .call("/api/access_report", &[("customer", "cust@example.com")])
            .await
            .json()
            .await
            .unwrap();
        let actions: Vec<&str> = r["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            [
                "export.bookings_csv",
                "document.downloaded",
                "customer.viewed"
            ],
            "{r}"
        );
        assert_eq!(r["customers_affected"], 1);
        assert_eq!(r["bulk_export"], true);
        let actors: Vec<&str> = r["actors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(
            actors.contains(&admin_email.as_str()) && actors.contains(&"thandi@example.com"),
            "{actors:?}"
        );
        assert_eq!(r["lines"][1]["who"], "thandi@example.com");
        assert_eq!(
            r["lines"][1]["customer"],
            format!("#{} cu***@example.com", s.customer)
        );
        assert!(
            r["categories"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c.as_str().unwrap().contains("document"))
        );
        assert!(r["first"].is_string() && r["last"].is_string());
        // Everyone: two customers named.
        let all: serde_json::Value = app
            .call("/api/access_report", &[])
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(all["customers_affected"], 2);
        // A period before any of it: nothing.
        let none: serde_json::Value = app
            .call(
                "/api/access_report",
                &[("from", "2020-01-01"), ("to", "2020-01-31")],
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(none["lines"].as_array().unwrap().len(), 0);
        // Bad input gets a clear message.
        let res = app
            .call("/api/access_report", &[("from", "28/11/2026")])
            .await;
        assert_eq!(res.status(), 400);
        assert!(res.text().await.unwrap().contains("2026-11-28"));
        let res = app
            .call("/api/access_report", &[("customer", "nobody@example.com")])
            .await;
        assert_eq!(res.status(), 400);
        assert!(res.text().await.unwrap().contains("No customer matches"));
        // The page renders the summary for the breach form.
        let page = app
            .client
            .get(app.url("/admin/access?customer=cust%40example.com"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains("Data subjects affected") && page.contains("thandi@example.com"),
            "{page}"
        );
        app.stop().await;
    }
);

db_test!(
    the_business_s_own_notice_is_shown_before_collection_and_a_missing_file_is_refused,
    |b| async move {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("notice.txt");
        std::fs::write(&file, "Kaapse Kappers collects what it needs.\r\n\r\nWe store data in Ireland with our CRM provider.\n").unwrap();
        let Some(app) =
            TestApp::spawn_with(b, &[("STOEP_PRIVACY_NOTICE_PATH", file.to_str().unwrap())]).await
        else {
            return;
        };
        for page in ["/privacy", "/signup"] {
            let html = app
                .client
                .get(app.url(page))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert!(
                html.contains("Kaapse Kappers collects what it needs.")
                    && html.contains("in Ireland"),
                "{page} shows the business's notice"
            );
            assert!(
                !html.contains("the responsible party"),
                "{page} does not show the template"
            );
        }
        app.stop().await;
        // The template, with the cross-border statement, when none is configured; the booking form
        // carries a short notice too.
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let html = app
            .client
            .get(app.url("/signup"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("the responsible party") && html.contains("outside South Africa"));
        app.stop().await;
        // A notice file that cannot be read stops the start with the setting named.
        let err = server::config::Settings::load_from(vec![
            ("STOEP_CONFIG".to_owned(), "/dev/null".to_owned()),
            (
                "STOEP_PRIVACY_NOTICE_PATH".to_owned(),
                "/nonexistent/notice.txt".to_owned(),
            ),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("privacy_notice_path") && err.contains("cannot read"),
            "{err}"
        );
    }
);
