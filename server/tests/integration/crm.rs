//! CRM sync through the production path: the HubSpot connector (reqwest) against the local
//! HubSpot stand-in over HTTP, coalesced pushes from the ledger, HubSpot-signed webhooks back.
//! On SQLite and PostgreSQL.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use domain::crm;
use domain::db::{self, col, now_ms};
use sea_orm::DatabaseConnection;
use standins::hubspot::CrmStandin;

use crate::db_test;
use crate::support::*;

fn standin(app: &TestApp) -> CrmStandin {
    app.services
        .embedded
        .crm
        .clone()
        .expect("the embedded CRM stand-in runs in tests")
}

async fn customer(db: &DatabaseConnection, email: &str, name: &str) -> i64 {
    let txn = db::begin_write(db).await.unwrap();
    let r = db::query_one(&txn, "INSERT INTO users (email, name, role, status, email_verified_at, created_at, updated_at) VALUES (?, ?, 'customer', 'active', 1, 1, 1) RETURNING id", vec![email.into(), name.into()]).await.unwrap().unwrap();
    let id: i64 = col(&r, "id").unwrap();
    crm::changed(&txn, id, "sign-up").await.unwrap();
    txn.commit().await.unwrap();
    id
}

async fn update(db: &DatabaseConnection, id: i64, set: &str, value: &str) {
    let txn = db::begin_write(db).await.unwrap();
    db::execute(
        &txn,
        &format!("UPDATE users SET {set} = ? WHERE id = ?"),
        vec![value.into(), id.into()],
    )
    .await
    .unwrap();
    crm::changed(&txn, id, "test").await.unwrap();
    txn.commit().await.unwrap();
}

/// Runs due CRM jobs now (the coalescing window and any backoff skipped), `rounds` times.
async fn flush(app: &TestApp, rounds: usize) {
    for _ in 0..rounds {
        db::execute(
            &app.services.state.db,
            "UPDATE jobs SET run_after = 0 WHERE integration = 'crm' AND status = 'queued'",
            vec![],
        )
        .await
        .unwrap();
        if app.run_jobs().await == 0 {
            break;
        }
    }
}

async fn pending(db: &DatabaseConnection) -> i64 {
    count(
        db,
        "SELECT COUNT(*) FROM crm_sync WHERE changed_version > synced_version",
    )
    .await
}

/// Every customer's contact equals the portal's current values, and there is one per customer.
async fn assert_crm_matches_portal(app: &TestApp) {
    let db = &app.services.state.db;
    let customers = db::query(
        db,
        "SELECT id, email, name, phone FROM users WHERE role = 'customer' ORDER BY id",
        vec![],
    )
    .await
    .unwrap();
    let contacts = standin(app).contacts();
    assert_eq!(
        contacts.len(),
        customers.len(),
        "one contact per customer, no duplicates"
    );
    for r in customers {
        let id: i64 = col(&r, "id").unwrap();
        let c = standin(app)
            .contact_by("stoep_customer_id", &id.to_string())
            .unwrap_or_else(|| panic!("no contact for customer {id}"));
        assert_eq!(
            c.properties.get("email").map(String::as_str),
            Some(col::<String>(&r, "email").unwrap().as_str())
        );
        let name: String = col(&r, "name").unwrap();
        assert_eq!(
            c.properties.get("firstname").map(String::as_str),
            Some(name.split(' ').next().unwrap())
        );
        let phone: Option<String> = col(&r, "phone").unwrap();
        assert_eq!(
            c.properties.get("phone").cloned().unwrap_or_default(),
            phone.unwrap_or_default()
        );
    }
}

db_test!(an_email_change_updates_the_same_contact, |b| async move {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let db = app.services.state.db.clone();
    let id = customer(&db, "lindiwe@example.com", "Lindiwe Dube").await;
    flush(&app, 3).await;
    let c = standin(&app)
        .contact_by("stoep_customer_id", &id.to_string())
        .unwrap();
    assert_eq!(c.properties["email"], "lindiwe@example.com");
    assert_eq!(c.properties["stoep_portal_status"], "active");
    assert!(
        !c.properties.contains_key("lifecyclestage"),
        "CRM-owned fields are never pushed"
    );
    update(&db, id, "email", "lindiwe.dube@example.com").await;
    flush(&app, 3).await;
    let all = standin(&app).contacts();
    assert_eq!(all.len(), 1, "no second contact");
    assert_eq!(all[0].properties["email"], "lindiwe.dube@example.com");
    assert_eq!(
        crm::view(&db, id).await.unwrap().crm_id.as_deref(),
        Some(all[0].id.as_str())
    );
    assert_eq!(pending(&db).await, 0);
    app.stop().await;
});

db_test!(
    a_thousand_changes_across_200_customers_lose_nothing_within_the_rate_limit,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let mut ids = Vec::new();
        for i in 0..200 {
            ids.push(
                customer(
                    &db,
                    &format!("c{i}@example.com"),
                    &format!("Customer{i} Number"),
                )
                .await,
            );
        }
        // 1,000 changes, interleaved, some while pushes are running.
        for round in 0..5 {
            for (i, id) in ids.iter().enumerate() {
                update(&db, *id, "phone", &format!("+27 82 {round}{i:03} 000")).await;
            }
            if round == 2 {
                flush(&app, 2).await;
            }
        }
        flush(&app, 20).await;
        assert_eq!(pending(&db).await, 0);
        assert_crm_matches_portal(&app).await;
        let s = standin(&app);
        let upserts = s
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/batch/upsert"))
            .count();
        assert!(upserts <= 12, "coalesced into few batches, got {upserts}");
        assert!(s.max_requests_in_any_10s() <= 90, "stays within the limit");
        app.stop().await;
    }
);

db_test!(
    a_429_storm_and_an_outage_end_synced_without_duplicates,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let faults = standin(&app).faults().clone();
        let mut ids = Vec::new();
        for i in 0..30 {
            ids.push(
                customer(
                    &db,
                    &format!("s{i}@example.com"),
                    &format!("Storm{i} Person"),
                )
                .await,
            );
        }
        faults.rate_limit_next.store(6, Relaxed);
        faults.retry_after_secs.store(2, Relaxed);
        flush(&app, 3).await;
        let waiting = db::query_one(&db, "SELECT last_error, run_after FROM jobs WHERE integration = 'crm' AND status = 'queued' ORDER BY id LIMIT 1", vec![]).await.unwrap();
        if let Some(w) = waiting {
            let err: Option<String> = col(&w, "last_error").unwrap();
            assert!(err.unwrap_or_default().contains("429"));
        }
        // The CRM goes down; the portal keeps changing; the queue waits.
        faults.down.store(true, Relaxed);
        for id in &ids {
            update(&db, *id, "name", &format!("Renamed{id} Person")).await;
        }
        flush(&app, 5).await;
        assert!(pending(&db).await > 0, "waiting while the CRM is down");
        let health = domain::ledger::health(&db).await.unwrap();
        let crm_health = health.iter().find(|h| h.integration == "crm").unwrap();
        assert_ne!(crm_health.state, "healthy", "the health area shows it");
        faults.reset();
        flush(&app, 20).await;
        assert_eq!(pending(&db).await, 0);
        assert_crm_matches_portal(&app).await;
        app.stop().await;
    }
);

db_test!(
    a_validation_error_waits_in_review_and_syncs_after_the_fix,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let good = customer(&db, "good@example.com", "Good Customer").await;
        let bad = customer(&db, "typo@example.invalid", "Typo Customer").await;
        flush(&app, 5).await;
        assert!(
            standin(&app)
                .contact_by("stoep_customer_id", &good.to_string())
                .is_some(),
            "the rest of the batch goes through"
        );
        assert!(
            standin(&app)
                .contact_by("stoep_customer_id", &bad.to_string())
                .is_none()
        );
        let job = db::query_one(
            &db,
            "SELECT id, status, last_error FROM jobs WHERE kind = 'crm.sync_customer'",
            vec![],
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(col::<String>(&job, "status").unwrap(), "manual_review");
        assert!(
            col::<Option<String>>(&job, "last_error")
                .unwrap()
                .unwrap()
                .contains("invalid"),
            "the CRM's message"
        );
        assert!(crm::view(&db, bad).await.unwrap().blocked_error.is_some());
        // The admin fixes the address and retries.
        update(&db, bad, "email", "typo@example.com").await;
        let job_id: i64 = col(&job, "id").unwrap();
        let admin = customer(&db, "admin-actor@example.com", "Actor").await;
        domain::ledger::retry_now(&db, job_id, admin).await.unwrap();
        flush(&app, 5).await;
        let c = standin(&app)
            .contact_by("stoep_customer_id", &bad.to_string())
            .expect("synced after the fix");
        assert_eq!(c.properties["email"], "typo@example.com");
        assert!(crm::view(&db, bad).await.unwrap().blocked_error.is_none());
        app.stop().await;
    }
);

db_test!(changes_made_in_the_crm_come_back_signed, |b| async move {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let db = app.services.state.db.clone();
    let id = customer(&db, "sipho@example.com", "Sipho Nkosi").await;
    flush(&app, 3).await;
    let contact = standin(&app)
        .contact_by("stoep_customer_id", &id.to_string())
        .unwrap();
    // A CRM-owned field: shown in the portal.
    standin(&app)
        .change_in_crm(&contact.id, "lifecyclestage", "customer")
        .await
        .unwrap();
    assert!(standin(&app).wait_idle(Duration::from_secs(10)).await);
    assert_eq!(
        crm::view(&db, id).await.unwrap().lifecycle_stage.as_deref(),
        Some("customer")
    );
    // A portal-owned field edited in the CRM: recorded, and overwritten by the next push.
    standin(&app)
        .change_in_crm(&contact.id, "email", "someone.else@example.com")
        .await
        .unwrap();
    assert!(standin(&app).wait_idle(Duration::from_secs(10)).await);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM crm_conflicts WHERE field = 'email'"
        )
        .await,
        1
    );
    flush(&app, 3).await;
    let c = standin(&app)
        .contact_by("stoep_customer_id", &id.to_string())
        .unwrap();
    assert_eq!(
        c.properties["email"], "sipho@example.com",
        "the portal's value wins"
    );
    // Refusals: no signature, a wrong one, a stale timestamp; nothing changes.
    let url = app.url("/webhooks/crm");
    let body = format!(
        r#"[{{"eventId":999,"subscriptionType":"contact.propertyChange","objectId":{},"propertyName":"lifecyclestage","propertyValue":"lead"}}]"#,
        contact.id
    );
    let c = reqwest::Client::new();
    let ts = now_ms().to_string();
    let full = format!("{}/webhooks/crm", app.address);
    let good = server::integrations::crm::hubspot::hubspot_signature(
        server::config::CRM_STANDIN_CLIENT_SECRET,
        "POST",
        &full,
        body.as_bytes(),
        &ts,
    );
    let send = |sig: String, ts: String| {
        c.post(&url)
            .header("x-hubspot-signature-v3", sig)
            .header("x-hubspot-request-timestamp", ts)
            .body(body.clone())
            .send()
    };
    assert_eq!(send(String::new(), ts.clone()).await.unwrap().status(), 401);
    // Change the first character to another one (a fixed "x" matched 1 in 64 signatures).
    let wrong = format!(
        "{}{}",
        if good.starts_with('A') { 'B' } else { 'A' },
        &good[1..]
    );
    assert_eq!(send(wrong, ts.clone()).await.unwrap().status(), 401);
    let old = (now_ms() - 10 * 60_000).to_string();
    let stale = server::integrations::crm::hubspot::hubspot_signature(
        server::config::CRM_STANDIN_CLIENT_SECRET,
        "POST",
        &full,
        body.as_bytes(),
        &old,
    );
    assert_eq!(send(stale, old).await.unwrap().status(), 401);
    assert_eq!(
        crm::view(&db, id).await.unwrap().lifecycle_stage.as_deref(),
        Some("customer")
    );
    // Signed but about an unknown contact: acknowledged and ignored.
    let unknown = body.replace(&contact.id, "424242");
    let sig = server::integrations::crm::hubspot::hubspot_signature(
        server::config::CRM_STANDIN_CLIENT_SECRET,
        "POST",
        &full,
        unknown.as_bytes(),
        &ts,
    );
    let res = c
        .post(&url)
        .header("x-hubspot-signature-v3", sig)
        .header("x-hubspot-request-timestamp", ts.clone())
        .body(unknown)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "unknown contact");
    // The same event again changes nothing.
    let res = send(good.clone(), ts.clone()).await.unwrap();
    assert_eq!(res.status(), 200);
    let res = send(good, ts).await.unwrap();
    assert_eq!(res.text().await.unwrap(), "duplicate");
    app.stop().await;
});

db_test!(
    the_generic_webhook_connector_sends_signed_json,
    |b| async move {
        use axum::routing::post;
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
        let r = received.clone();
        let router = axum::Router::new().route(
            "/hook",
            post(move |headers: axum::http::HeaderMap, body: String| {
                let r = r.clone();
                async move {
                    let sig = headers
                        .get("x-stoep-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    r.lock().unwrap().push((sig, body));
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let url = format!("http://{addr}/hook");
        let Some(app) = TestApp::spawn_with(
            b,
            &[
                ("STOEP_CRM__PROVIDER", "webhook"),
                ("STOEP_CRM__WEBHOOK_URL", &url),
                ("STOEP_CRM__WEBHOOK_SECRET", "hook-secret"),
                ("STOEP_CRM__FIELDS", "name,email"),
            ],
        )
        .await
        else {
            return;
        };
        assert!(
            app.services.embedded.crm.is_none(),
            "no stand-in with another connector"
        );
        let db = app.services.state.db.clone();
        let id = customer(&db, "zanele@example.com", "Zanele Mokoena").await;
        flush(&app, 3).await;
        let got = received.lock().unwrap().clone();
        assert_eq!(got.len(), 1);
        let (sig, body) = &got[0];
        let t: i64 = sig
            .split(',')
            .next()
            .unwrap()
            .trim_start_matches("t=")
            .parse()
            .unwrap();
        assert!(
            server::integrations::stripe::verify_signature(
                Some(sig),
                body.as_bytes(),
                &["hook-secret".into()],
                t,
                10
            )
            .is_ok()
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["contacts"][0]["customer_id"], id);
        assert_eq!(v["contacts"][0]["fields"]["email"], "zanele@example.com");
        assert!(
            v["contacts"][0]["fields"].get("phone").is_none(),
            "only mapped fields move"
        );
        app.stop().await;
    }
);
