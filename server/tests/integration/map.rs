//! The integration map: it reflects the running configuration (stand-in or real, schedules,
//! fields, secrets by name only), each connection test succeeds against its stand-in and fails in
//! plain words against a wrong address or key within seconds, the Markdown export, and the
//! fallbacks (deposit due at the visit when Stripe is down; messages readable in the portal).

use model::PaymentStatus;
use std::time::{Duration, Instant};

use domain::db::{self, col, now_ms};
use domain::map;
use tokio_util::sync::CancellationToken;

use crate::bookings::{at, shop};
use crate::db_test;
use crate::support::*;

async fn test(app: &TestApp, key: &str) -> (Result<String, String>, Duration) {
    let start = Instant::now();
    let r = map::test_connection(&app.services.state, key, 1)
        .await
        .unwrap();
    (r, start.elapsed())
}

db_test!(
    the_map_reflects_the_embedded_configuration_and_tests_pass_against_the_standins,
    |b| async move {
        let Some(app) =
            TestApp::spawn_with(b, &[("STOEP_CRM__FIELDS", "name,email,next_booking")]).await
        else {
            return;
        };
        let db = &app.services.state.db;
        db::execute(db, "INSERT INTO users (email, name, role, status, created_at, updated_at) VALUES ('actor@example.com', 'Actor', 'admin', 'active', 1, 1)", vec![]).await.unwrap();
        let rows = map::build(&app.services.state).await.unwrap();
        let row = |k: &str| {
            rows.iter()
                .find(|r| r.key == k)
                .unwrap_or_else(|| panic!("row {k}"))
        };
        assert!(
            row("payments").standin
                && row("payments")
                    .connected_to
                    .contains("local Stripe stand-in")
        );
        assert!(
            row("payments")
                .flows
                .iter()
                .any(|f| f.timing == "scheduled: every 10 minutes")
        );
        assert!(row("crm").standin && row("crm").connected_to.contains("HubSpot stand-in"));
        assert_eq!(
            row("crm").flows[0].fields,
            ["name", "email", "next_booking"],
            "only the configured fields"
        );
        assert!(row("email").standin);
        assert!(row("payments").fallback.contains("held"));
        assert!(
            row("payments").secrets.is_empty(),
            "the stand-ins need no secret"
        );
        for key in ["payments", "crm", "email", "calendar"] {
            let (r, took) = test(&app, key).await;
            assert!(r.is_ok(), "{key}: {r:?}");
            assert!(took < Duration::from_secs(5));
        }
        assert_eq!(
            count(
                db,
                "SELECT COUNT(*) FROM audit_log WHERE action = 'integration.test'"
            )
            .await,
            4,
            "each test is audited"
        );
        // The Markdown export, for admins.
        app.sign_in_admin().await;
        let res = app
            .client
            .get(app.url("/admin/integrations/map.md"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let md = res.text().await.unwrap();
        assert!(md.starts_with("# Integration map: "));
        assert!(md.contains("## Payments (Stripe)") && md.contains("(local stand-in)"));
        assert!(md.contains("| Contact upsert |"));
        let anon = reqwest::Client::new()
            .get(app.url("/admin/integrations/map.md"))
            .send()
            .await
            .unwrap();
        assert_eq!(anon.status(), 404);
        app.stop().await;
    }
);

db_test!(
    real_settings_show_real_services_and_wrong_ones_fail_in_plain_words,
    |b| async move {
        // A real Stripe-shaped configuration against a separate stand-in, with a wrong key.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stripe = standins::stripe::StripeStandin::start(
            listener,
            standins::stripe::StandinConfig::default(),
            CancellationToken::new(),
        )
        .await
        .unwrap();
        // A port that accepts and never answers (a hung service).
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let silent_addr = silent.local_addr().unwrap();
        let base = stripe.base_url();
        let closed = "http://127.0.0.1:9";
        let Some(app) = TestApp::spawn_with(
            b,
            &[
                ("STOEP_STRIPE__SECRET_KEY", "sk_test_wrong_key_for_the_test"),
                ("STOEP_STRIPE__WEBHOOK_SECRETS", "whsec_a_test_secret"),
                ("STOEP_STRIPE__API_BASE", &base),
                ("STOEP_CRM__HUBSPOT_TOKEN", "pat-wrong"),
                (
                    "STOEP_CRM__HUBSPOT_CLIENT_SECRET",
                    "client-secret-for-the-test",
                ),
                ("STOEP_CRM__HUBSPOT_API_BASE", closed),
                ("STOEP_SMTP__HOST", "127.0.0.1"),
                ("STOEP_SMTP__PORT", &silent_addr.port().to_string()),
                ("STOEP_SMTP__TLS", "none"),
                ("STOEP_SMTP__TIMEOUT_SECS", "2"),
            ],
        )
        .await
        else {
            return;
        };
        assert!(
            app.services.embedded.stripe.is_none() && app.services.embedded.crm.is_none(),
            "no stand-in with real settings"
        );
        let db = &app.services.state.db;
        db::execute(db, "INSERT INTO users (email, name, role, status, created_at, updated_at) VALUES ('actor@example.com', 'Actor', 'admin', 'active', 1, 1)", vec![]).await.unwrap();
        let jobs_before = count(db, "SELECT COUNT(*) FROM jobs").await;
        let rows = map::build(&app.services.state).await.unwrap();
        let row = |k: &str| rows.iter().find(|r| r.key == k).unwrap();
        assert!(!row("payments").standin);
        assert!(
            row("payments")
                .connected_to
                .starts_with("Stripe (test mode)")
        );
        assert!(!row("crm").standin && row("crm").connected_to.starts_with("HubSpot at"));
        assert!(!row("email").standin);
        let names: Vec<&str> = row("payments")
            .secrets
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "stripe.secret_key (STOEP_STRIPE__SECRET_KEY)",
                "stripe.webhook_secrets (STOEP_STRIPE__WEBHOOK_SECRETS)"
            ]
        );
        assert!(
            row("payments")
                .secrets
                .iter()
                .all(|s| s.changed_at.is_some()),
            "when each secret last changed"
        );
        let json = serde_json::to_string(&rows).unwrap();
        for secret in [
            "sk_test_wrong_key_for_the_test",
            "whsec_a_test_secret",
            "pat-wrong",
            "client-secret-for-the-test",
        ] {
            assert!(
                !json.contains(secret),
                "the map never shows a secret's value"
            );
        }
        // Wrong key: Stripe's own words. Wrong host: can't reach. Hung SMTP: a timeout.
        let (r, took) = test(&app, "payments").await;
        let msg = r.unwrap_err();
        assert!(
            msg.contains("401") && msg.contains("Invalid API Key"),
            "{msg}"
        );
        assert!(took < Duration::from_secs(5));
        let (r, took) = test(&app, "crm").await;
        let msg = r.unwrap_err();
        assert!(msg.contains("cannot reach the CRM"), "{msg}");
        assert!(took < Duration::from_secs(5));
        let (r, took) = test(&app, "email").await;
        let msg = r.unwrap_err();
        assert!(msg.contains("no answer within 8 seconds"), "{msg}");
        assert!(took < Duration::from_secs(9), "{took:?}");
        // Nothing changed: no new job, no payment.
        assert_eq!(count(db, "SELECT COUNT(*) FROM jobs").await, jobs_before);
        assert_eq!(count(db, "SELECT COUNT(*) FROM payments").await, 0);
        drop(silent);
        app.stop().await;
    }
);

db_test!(
    the_pay_at_visit_fallback_confirms_and_a_payment_link_collects_later,
    |b| async move {
        let Some(app) = TestApp::spawn_with(b, &[("STOEP_STRIPE__FALLBACK", "pay_at_visit")]).await
        else {
            return;
        };
        let db = app.services.state.db.clone();
        let s = shop(&db).await;
        // The shop's customer signs in with a password.
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
        assert!(res.status().is_success(), "{}", res.status());
        let stripe = app.services.embedded.stripe.clone().unwrap();
        stripe
            .faults()
            .api_down
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let start = at(3, 9, 0).to_string();
        let res = app
            .post_form(
                "/api/book",
                &[
                    ("service_id", &s.with_deposit.to_string()),
                    ("staff_id", &s.staff.to_string()),
                    ("start_ms", &start),
                ],
            )
            .await;
        let location = res
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            location.ends_with("?payment=at_visit"),
            "{} {location}",
            res.status()
        );
        let b = db::query_one(
            &db,
            "SELECT id, status, deposit_due_at_visit FROM bookings",
            vec![],
        )
        .await
        .unwrap()
        .unwrap();
        let id: i64 = col(&b, "id").unwrap();
        assert_eq!(col::<String>(&b, "status").unwrap(), "confirmed");
        assert!(col::<bool>(&b, "deposit_due_at_visit").unwrap());
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM emails WHERE template = 'booking_confirmed'"
            )
            .await,
            1
        );
        // Stripe is back; staff email a payment link; the customer pays it.
        stripe.faults().reset();
        let st = &app.services.state;
        domain::payments::send_payment_link(&db, &st.settings, st.payments.as_ref(), id, s.staff)
            .await
            .unwrap();
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM emails WHERE template = 'payment_link'"
            )
            .await,
            1
        );
        let p = domain::payments::for_booking(&db, id).await.unwrap();
        let session = p
            .iter()
            .find(|p| p.status == PaymentStatus::Open)
            .unwrap()
            .checkout_session_id
            .clone()
            .unwrap();
        // Email goes down as the customer pays.
        app.services
            .embedded
            .controls
            .set_smtp_mode(standins::controls::SmtpMode::Unavailable);
        stripe.pay(&session).await.unwrap();
        assert!(stripe.wait_idle(Duration::from_secs(20)).await);
        app.run_jobs().await;
        let b = db::query_one(
            &db,
            "SELECT status, deposit_due_at_visit FROM bookings WHERE id = ?",
            vec![id.into()],
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(col::<String>(&b, "status").unwrap(), "confirmed");
        assert!(!col::<bool>(&b, "deposit_due_at_visit").unwrap());
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM emails WHERE template = 'deposit_receipt'"
            )
            .await,
            1
        );
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM emails WHERE template = 'booking_confirmed'"
            )
            .await,
            1,
            "not confirmed twice"
        );
        // While email is down, the customer's page shows what the messages say.
        let res = app.call("/api/my_messages", &[]).await;
        assert_eq!(res.status(), 200);
        let messages: Vec<serde_json::Value> = res.json().await.unwrap();
        let receipt = messages
            .iter()
            .find(|m| {
                m["subject"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("Receipt")
            })
            .expect("the receipt is listed");
        assert!(receipt["text"].as_str().unwrap().contains("R 100.00"));
        assert_ne!(receipt["status"], "sent");
        let _ = now_ms();
        app.stop().await;
    }
);
