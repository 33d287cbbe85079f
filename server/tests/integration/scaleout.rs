//! Scale-out: two `stoep serve` processes and a `stoep worker` against one PostgreSQL database
//! and one S3-protocol store behave as one portal. A session made on one instance is valid on the
//! other; a booking race across instances yields one booking; every job runs once; scheduled jobs
//! fire once; Stripe and CRM webhooks land on either instance; a document uploaded through one
//! instance downloads through the other. Real services everywhere: the Stripe and CRM stand-ins
//! and an SMTP catcher run in the test, configured as if they were the real ones.

use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use domain::db::{self, col};
use tokio_util::sync::CancellationToken;

use crate::bookings::{at, shop};
use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_stoep");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start(env: &[(String, String)], args: &[&str]) -> Child {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("STOEP_")) {
        c.env_remove(k);
    }
    c.args(args)
        .env("STOEP_CONFIG", "/dev/null")
        .env("STOEP_LOG_LEVEL", "info")
        .stdout(process_log())
        .stderr(process_log());
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().expect("start stoep")
}

async fn ready(base: &str) {
    let ok = eventually(Duration::from_secs(60), || async {
        reqwest::get(format!("{base}/readyz"))
            .await
            .map(|r| r.status() == 200)
            .unwrap_or(false)
    })
    .await;
    assert!(ok, "{base} became ready");
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_provider(recording_jar())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_and_a_worker_on_postgresql_and_s3_behave_as_one_portal() {
    let Some(pg) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let Some(s3) = crate::documents::s3_settings().await else {
        return;
    };
    let shutdown = CancellationToken::new();
    // The outside world, in the test: SMTP, Stripe, HubSpot.
    let mail_dir = tempfile::tempdir().unwrap();
    let smtp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let smtp_port = smtp.local_addr().unwrap().port();
    tokio::spawn(
        standins::mail::Catcher {
            dir: mail_dir.path().to_owned(),
            controls: Arc::new(standins::controls::StandinControls::default()),
        }
        .serve(smtp, shutdown.clone()),
    );
    let (a_port, b_port) = (free_port(), free_port());
    let (a, b) = (
        format!("http://127.0.0.1:{a_port}"),
        format!("http://127.0.0.1:{b_port}"),
    );
    let stripe = standins::stripe::StripeStandin::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        standins::stripe::StandinConfig {
            api_key: "sk_test_scaleout".into(),
            webhook_secret: "whsec_scaleout".into(),
            webhook_url: Some(format!("{b}/webhooks/stripe")),
            ..Default::default()
        },
        shutdown.clone(),
    )
    .await
    .unwrap();
    let crm = standins::hubspot::CrmStandin::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        standins::hubspot::CrmStandinConfig {
            token: "pat-scaleout".into(),
            client_secret: "scaleout-client-secret".into(),
            webhook_url: Some(format!("{a}/webhooks/crm")),
            ..Default::default()
        },
        shutdown.clone(),
    )
    .await
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut env: Vec<(String, String)> = vec![
        ("STOEP_DATABASE_URL".into(), pg.url.clone()),
        ("STOEP_DATA_DIR".into(), data.path().display().to_string()),
        ("STOEP_SITE_ROOT".into(), data.path().display().to_string()),
        ("STOEP_SMTP__HOST".into(), "127.0.0.1".into()),
        ("STOEP_SMTP__PORT".into(), smtp_port.to_string()),
        ("STOEP_SMTP__TLS".into(), "none".into()),
        ("STOEP_STRIPE__SECRET_KEY".into(), "sk_test_scaleout".into()),
        (
            "STOEP_STRIPE__WEBHOOK_SECRETS".into(),
            "whsec_scaleout".into(),
        ),
        ("STOEP_STRIPE__API_BASE".into(), stripe.base_url()),
        ("STOEP_CRM__HUBSPOT_TOKEN".into(), "pat-scaleout".into()),
        (
            "STOEP_CRM__HUBSPOT_CLIENT_SECRET".into(),
            "scaleout-client-secret".into(),
        ),
        ("STOEP_CRM__HUBSPOT_API_BASE".into(), crm.base_url()),
        ("STOEP_WORKER__POLL_INTERVAL_MS".into(), "50".into()),
    ];
    env.extend(s3);
    // The business and its customers, after migrating.
    let out = Command::new(BIN)
        .arg("migrate")
        .envs(env.iter().cloned())
        .env("STOEP_CONFIG", "/dev/null")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = shop(&pg.db).await;
    let hash = domain::auth::hash_password(secrecy::SecretString::from(TEST_PASSWORD.to_owned()))
        .await
        .unwrap();
    let mut customers = vec![s.customer];
    let r = db::query_one(&pg.db, "INSERT INTO users (email, name, role, status, email_verified_at, created_at, updated_at) VALUES ('second@example.com', 'Second Customer', 'customer', 'active', 1, 1, 1) RETURNING id", vec![]).await.unwrap().unwrap();
    customers.push(col(&r, "id").unwrap());
    for id in &customers {
        db::execute(
            &pg.db,
            "UPDATE users SET password_hash = ? WHERE id = ?",
            vec![hash.clone().into(), (*id).into()],
        )
        .await
        .unwrap();
    }
    // Instance A serves and works; instance B only serves; C only works.
    let with = |port: u16, url: &str| {
        let mut e = env.clone();
        e.push(("STOEP_LISTEN".into(), format!("127.0.0.1:{port}")));
        e.push(("STOEP_PUBLIC_URL".into(), url.to_owned()));
        e
    };
    let _procs = Procs(vec![
        start(&with(a_port, &a), &["serve"]),
        start(&with(b_port, &b), &["serve", "--no-worker"]),
        start(&with(free_port(), &a), &["worker"]),
    ]);
    ready(&a).await;
    ready(&b).await;

    // A session made on A is valid on B (sessions live in the shared database).
    let c1 = client();
    let res = c1
        .post(format!("{a}{}", sign_in_path()))
        .header("origin", &a)
        .form(&[("email", "cust@example.com"), ("password", TEST_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_success() || res.status().is_redirection(),
        "{}",
        res.status()
    );
    let res = c1
        .post(format!("{b}/api/my_bookings"))
        .header("origin", &b)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the session from A works on B");
    let c2 = client();
    let res = c2
        .post(format!("{b}{}", sign_in_path()))
        .header("origin", &b)
        .form(&[("email", "second@example.com"), ("password", TEST_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success() || res.status().is_redirection());

    // A booking race across instances: the same slot, at once, through A and B.
    let start_ms = at(3, 10, 0).to_string();
    let form = |svc: i64| {
        vec![
            ("service_id".to_string(), svc.to_string()),
            ("staff_id".to_string(), s.staff.to_string()),
            ("start_ms".to_string(), start_ms.clone()),
        ]
    };
    let (r1, r2) = tokio::join!(
        c1.post(format!("{a}/api/book"))
            .header("origin", &a)
            .form(&form(s.with_deposit))
            .send(),
        c2.post(format!("{b}/api/book"))
            .header("origin", &b)
            .form(&form(s.with_deposit))
            .send(),
    );
    let (r1, r2) = (r1.unwrap().status(), r2.unwrap().status());
    assert!(
        r1.is_success() ^ r2.is_success() || (r1.as_u16() == 409) ^ (r2.as_u16() == 409),
        "one wins, one is told it was taken: {r1} {r2}"
    );
    assert_eq!(
        count(
            &pg.db,
            "SELECT COUNT(*) FROM bookings WHERE status IN ('confirmed', 'awaiting_deposit')"
        )
        .await,
        1
    );

    // The winner pays; Stripe's webhook lands on B; the worker (on A or C) confirms the booking.
    let b_row = db::query_one(
        &pg.db,
        "SELECT id FROM bookings WHERE status = 'awaiting_deposit'",
        vec![],
    )
    .await
    .unwrap()
    .unwrap();
    let booking_id: i64 = col(&b_row, "id").unwrap();
    let session = eventually(Duration::from_secs(20), || async {
        count(
            &pg.db,
            &format!(
                "SELECT COUNT(*) FROM payments WHERE booking_id = {booking_id} AND status = 'open'"
            ),
        )
        .await
            == 1
    })
    .await;
    assert!(session, "the checkout session was created");
    let sid: String = col(
        &db::query_one(
            &pg.db,
            "SELECT checkout_session_id FROM payments WHERE booking_id = ?",
            vec![booking_id.into()],
        )
        .await
        .unwrap()
        .unwrap(),
        "checkout_session_id",
    )
    .unwrap();
    stripe.pay(&sid).await.unwrap();
    let confirmed = eventually(Duration::from_secs(30), || async {
        count(
            &pg.db,
            &format!(
                "SELECT COUNT(*) FROM bookings WHERE id = {booking_id} AND status = 'confirmed'"
            ),
        )
        .await
            == 1
    })
    .await;
    assert!(confirmed, "confirmed through the webhook on B and a worker");
    assert!(
        stripe
            .deliveries()
            .iter()
            .all(|d| d.status == Some(200) || d.status.is_none())
    );

    // Every job ran once: 150 emails, each sent once, each with one attempt.
    let txn = db::begin_write(&pg.db).await.unwrap();
    let settings = domain::PortalSettings {
        public_url: a.clone(),
        branding: Default::default(),
        mail_from: "Stoep <noreply@example.com>".into(),
        privacy_notice_version: "1".into(),
        privacy_notice: None,
        demo: false,
        checkout_origin: String::new(),
        storage_description: None,
        map: Default::default(),
        documents: Default::default(),
    };
    for i in 0..150 {
        let msg = domain::email::templates::test_message(&settings);
        domain::email::enqueue(
            &txn,
            &settings,
            None,
            &format!("bulk{i}@example.com"),
            msg,
            &format!("bulk:{i}"),
        )
        .await
        .unwrap();
    }
    txn.commit().await.unwrap();
    let sent = eventually(Duration::from_secs(60), || async {
        count(
            &pg.db,
            "SELECT COUNT(*) FROM emails WHERE job_key LIKE 'email:bulk:%' AND status = 'sent'",
        )
        .await
            == 150
    })
    .await;
    assert!(sent, "all sent");
    // The email row is marked sent before its job records the attempt's end: wait for the jobs.
    let done = eventually(Duration::from_secs(30), || async {
        count(&pg.db, "SELECT COUNT(*) FROM jobs WHERE kind = 'email.send' AND idempotency_key LIKE '%bulk:%' AND status = 'succeeded'").await == 150
    })
    .await;
    assert!(done, "every email job finished");
    assert_eq!(count(&pg.db, "SELECT COUNT(*) FROM job_attempts a JOIN jobs j ON j.id = a.job_id WHERE j.kind = 'email.send' AND j.idempotency_key LIKE '%bulk:%'").await, 150, "one attempt each");
    let caught = std::fs::read_dir(mail_dir.path()).unwrap().count();
    assert!(caught >= 150, "the SMTP server received them ({caught})");
    // Scheduled jobs fired once although two workers tick.
    assert_eq!(count(&pg.db, "SELECT COUNT(*) FROM (SELECT idempotency_key FROM jobs WHERE kind IN ('system.purge', 'payments.reconcile') GROUP BY idempotency_key HAVING COUNT(*) > 1) x").await, 0);
    assert!(
        count(
            &pg.db,
            "SELECT COUNT(*) FROM jobs WHERE kind = 'system.purge'"
        )
        .await
            >= 1
    );

    // The CRM: the customer who booked was pushed by a worker; a CRM change lands on A.
    let booker: i64 = col(
        &db::query_one(
            &pg.db,
            "SELECT customer_id FROM bookings WHERE id = ?",
            vec![booking_id.into()],
        )
        .await
        .unwrap()
        .unwrap(),
        "customer_id",
    )
    .unwrap();
    let pushed = eventually(Duration::from_secs(30), || async {
        crm.contact_by("stoep_customer_id", &booker.to_string())
            .is_some()
    })
    .await;
    assert!(pushed, "the customer reached the CRM");
    let contact = crm
        .contact_by("stoep_customer_id", &booker.to_string())
        .unwrap();
    crm.change_in_crm(&contact.id, "lifecyclestage", "customer")
        .await
        .unwrap();
    assert!(crm.wait_idle(Duration::from_secs(15)).await);
    assert_eq!(
        domain::crm::view(&pg.db, booker)
            .await
            .unwrap()
            .lifecycle_stage
            .as_deref(),
        Some("customer")
    );

    // A document uploaded through A downloads through B (one S3 store).
    let content = crate::documents::pdf("scale-out");
    let form = reqwest::multipart::Form::new()
        .text("category", "other")
        .part(
            "file",
            reqwest::multipart::Part::bytes(content.clone())
                .file_name("shared.pdf")
                .mime_str("application/pdf")
                .unwrap(),
        );
    let uploader = if booker == s.customer { &c1 } else { &c2 };
    let res = uploader
        .post(format!("{a}/documents/upload"))
        .header("origin", &a)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_success() || res.status().is_redirection(),
        "{}",
        res.status()
    );
    let doc: i64 = col(
        &db::query_one(
            &pg.db,
            "SELECT id FROM documents WHERE display_name = 'shared.pdf'",
            vec![],
        )
        .await
        .unwrap()
        .unwrap(),
        "id",
    )
    .unwrap();
    let res = uploader
        .get(format!("{b}/documents/{doc}/download"))
        .send()
        .await
        .unwrap();
    let bytes = if res.status().is_redirection() {
        let to = res.headers()["location"].to_str().unwrap().to_owned();
        reqwest::get(to).await.unwrap().bytes().await.unwrap()
    } else {
        assert_eq!(res.status(), 200);
        res.bytes().await.unwrap()
    };
    assert_eq!(
        bytes.as_ref(),
        content.as_slice(),
        "the same bytes through the other instance"
    );
    shutdown.cancel();
}
