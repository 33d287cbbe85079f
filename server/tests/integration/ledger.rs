//! The integration ledger: transactional enqueue, idempotency, retries and backoff, manual
//! review, leases, and the admin actions.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use domain::db::{self, col, now_ms};
use domain::ledger::{self, Integration, NewJob, Subject};
use domain::worker::{ClaimedJob, Handler, JobError, Registry, Worker, WorkerConfig};
use sea_orm::TransactionTrait;

use crate::db_test;
use crate::support::*;

fn job(kind: &'static str, key: &str) -> NewJob {
    NewJob {
        kind,
        integration: Integration::Crm,
        subject: Subject::new("customer", 7),
        idempotency_key: key.to_owned(),
        payload: serde_json::json!({"n": 1}),
        run_after_ms: None,
    }
}

fn config() -> WorkerConfig {
    WorkerConfig {
        concurrency: 4,
        poll_interval: Duration::from_millis(20),
        job_timeout: Duration::from_millis(500),
        lease: Duration::from_secs(2),
        shutdown_grace: Duration::from_secs(2),
    }
}

/// Counts runs; fails the way it is told to.
#[derive(Clone)]
struct Scripted {
    runs: Arc<AtomicUsize>,
    behaviour: &'static str,
}

#[async_trait]
impl Handler for Scripted {
    async fn run(&self, _job: &ClaimedJob) -> Result<(), JobError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        match self.behaviour {
            "ok" => Ok(()),
            "transient" => Err(JobError::transient("upstream said 503")),
            "retry_after" => Err(JobError::Transient {
                message: "429 slow down".into(),
                retry_after_ms: Some(120_000),
            }),
            "permanent" => Err(JobError::permanent("400 validation: email is invalid")),
            "panic" => panic!("handler bug"),
            "hang" => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn worker_with(
    db: &sea_orm::DatabaseConnection,
    behaviour: &'static str,
) -> (Worker, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let mut r = Registry::default();
    r.register(
        "test.scripted",
        Scripted {
            runs: runs.clone(),
            behaviour,
        },
    );
    r.register(
        "test.ok",
        Scripted {
            runs: Arc::new(AtomicUsize::new(0)),
            behaviour: "ok",
        },
    );
    (Worker::new(db.clone(), r, config()), runs)
}

async fn job_status(
    db: &sea_orm::DatabaseConnection,
    id: i64,
) -> (String, i32, i64, Option<String>) {
    let r = db::query_one(
        db,
        "SELECT status, attempts, run_after, last_error FROM jobs WHERE id = ?",
        vec![id.into()],
    )
    .await
    .unwrap()
    .unwrap();
    (
        col(&r, "status").unwrap(),
        col(&r, "attempts").unwrap(),
        col(&r, "run_after").unwrap(),
        col(&r, "last_error").unwrap(),
    )
}

db_test!(
    enqueue_in_a_rolled_back_transaction_creates_nothing,
    |b| async move {
        let Some(t) = TestDb::new(b).await else {
            return;
        };
        let txn = t.db.begin().await.unwrap();
        let id = ledger::enqueue(&txn, job("test.ok", "rollback-1"))
            .await
            .unwrap();
        assert!(id.is_some());
        txn.rollback().await.unwrap();
        assert_eq!(count(&t.db, "SELECT COUNT(*) FROM jobs").await, 0);
        let txn = t.db.begin().await.unwrap();
        ledger::enqueue(&txn, job("test.ok", "commit-1"))
            .await
            .unwrap();
        txn.commit().await.unwrap();
        assert_eq!(count(&t.db, "SELECT COUNT(*) FROM jobs").await, 1);
        t.close().await;
    }
);

db_test!(
    a_duplicate_idempotency_key_creates_one_job,
    |b| async move {
        let Some(t) = TestDb::new(b).await else {
            return;
        };
        let first = ledger::enqueue(&t.db, job("test.ok", "same-key"))
            .await
            .unwrap();
        let second = ledger::enqueue(&t.db, job("test.ok", "same-key"))
            .await
            .unwrap();
        assert!(first.is_some());
        assert_eq!(second, None);
        assert_eq!(count(&t.db, "SELECT COUNT(*) FROM jobs").await, 1);
        t.close().await;
    }
);

db_test!(
    a_successful_job_runs_once_and_records_its_attempt,
    |b| async move {
        let Some(t) = TestDb::new(b).await else {
            return;
        };
        let (w, runs) = worker_with(&t.db, "ok");
        let id = ledger::enqueue(&t.db, job("test.scripted", "ok-1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(w.drain().await.unwrap(), 1);
        assert_eq!(w.drain().await.unwrap(), 0);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let (status, attempts, _, err) = job_status(&t.db, id).await;
        assert_eq!((status.as_str(), attempts, err), ("succeeded", 1, None));
        assert_eq!(
            count(
                &t.db,
                "SELECT COUNT(*) FROM job_attempts WHERE outcome = 'succeeded'"
            )
            .await,
            1
        );
        t.close().await;
    }
);

db_test!(
    transient_failures_back_off_by_the_policy_then_go_to_manual_review,
    |b| async move {
        let Some(t) = TestDb::new(b).await else {
            return;
        };
        let (w, runs) = worker_with(&t.db, "transient");
        let id = ledger::enqueue(&t.db, job("test.scripted", "transient-1"))
            .await
            .unwrap()
            .unwrap();
        let policy = Integration::Crm.policy();
        for attempt in 1..=policy.max_attempts {
            let before = now_ms();
            assert_eq!(w.drain().await.unwrap(), 1, "attempt {attempt} should run");
            let (status, attempts, run_after, err) = job_status(&t.db, id).await;
            assert_eq!(attempts, attempt);
            assert_eq!(err.as_deref(), Some("upstream said 503"));
            if attempt < policy.max_attempts {
                assert_eq!(status, "queued");
                let expected = policy.delay_ms(attempt, 0.0, None);
                let delay = run_after - before;
                assert!(
                    delay >= expected * 9 / 10 - 50 && delay <= expected * 11 / 10 + 1000,
                    "attempt {attempt}: delay {delay} ms, expected about {expected} ms"
                );
                // Make it due now, as if the time had passed.
                db::execute(
                    &t.db,
                    "UPDATE jobs SET run_after = ? WHERE id = ?",
                    vec![now_ms().into(), id.into()],
                )
                .await
                .unwrap();
            } else {
                assert_eq!(
                    status, "manual_review",
                    "after the last attempt the job waits for an admin"
                );
            }
        }
        assert_eq!(
            w.drain().await.unwrap(),
            0,
            "a job in manual review is never run by itself"
        );
        assert_eq!(runs.load(Ordering::SeqCst), policy.max_attempts as usize);
        t.close().await;
    }
);

db_test!(retry_after_from_the_server_is_honoured, |b| async move {
    let Some(t) = TestDb::new(b).await else {
        return;
    };
    let (w, _) = worker_with(&t.db, "retry_after");
    let id = ledger::enqueue(&t.db, job("test.scripted", "ra-1"))
        .await
        .unwrap()
        .unwrap();
    let before = now_ms();
    w.drain().await.unwrap();
    let (status, _, run_after, _) = job_status(&t.db, id).await;
    assert_eq!(status, "queued");
    assert!(
        run_after - before >= 120_000,
        "waited only {} ms",
        run_after - before
    );
    t.close().await;
});

db_test!(
    a_permanent_error_goes_straight_to_manual_review_with_the_message,
    |b| async move {
        let Some(t) = TestDb::new(b).await else {
            return;
        };
        let (w, runs) = worker_with(&t.db, "permanent");
        let id = ledger::enqueue(&t.db, job("test.scripted", "perm-1"))
            .await
            .unwrap()
            .unwrap();
        w.drain().await.unwrap();
        let (status, attempts, _, err) = job_status(&t.db, id).await;
        assert_eq!((status.as_str(), attempts), ("manual_review", 1));
        assert_eq!(err.as_deref(), Some("400 validation: email is invalid"));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        t.close().await;
    }
);

db_test!(
    a_panicking_or_hanging_handler_is_retried_and_the_worker_goes_on,
    |b| async move {
        let Some(t) = TestDb::new(b).await else {
            return;
        };
        let (w, _) = worker_with(&t.db, "panic");
        let id = ledger::enqueue(&t.db, job("test.scripted", "panic-1"))
            .await
            .unwrap()
            .unwrap();
        let ok = ledger::enqueue(&t.db, job("test.ok", "ok-beside-panic"))
            .await
            .unwrap()
            .unwrap();
        w.drain().await.unwrap();
        let (status, _, _, err) = job_status(&t.db, id).await;
        assert_eq!(status, "queued");
        assert!(err.unwrap().contains("crashed"));
        assert_eq!(job_status(&t.db, ok).await.0, "succeeded");

        let (w, _) = worker_with(&t.db, "hang");
        let id = ledger::enqueue(&t.db, job("test.scripted", "hang-1"))
            .await
            .unwrap()
            .unwrap();
        let started = std::time::Instant::now();
        w.drain().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the timeout stopped the hung handler"
        );
        let (status, _, _, err) = job_status(&t.db, id).await;
        assert_eq!(status, "queued");
        assert!(err.unwrap().contains("timed out"));
        assert_eq!(
            count(
                &t.db,
                "SELECT COUNT(*) FROM job_attempts WHERE outcome = 'timed_out'"
            )
            .await,
            1
        );
        t.close().await;
    }
);

db_test!(
    a_payload_that_no_longer_parses_goes_to_manual_review,
    |b| async move {
        let Some(t) = TestDb::new(b).await else {
            return;
        };
        let app_settings = std::sync::Arc::new(domain::PortalSettings {
            public_url: "http://127.0.0.1".into(),
            branding: Default::default(),
            mail_from: "Test <t@example.com>".into(),
            privacy_notice_version: "1".into(),
            privacy_notice: None,
            demo: false,
            checkout_origin: String::new(),
            storage_description: None,
            map: Default::default(),
            documents: Default::default(),
        });
        let mailer =
            lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
                .port(9)
                .build();
        let portal = domain::Portal {
            db: t.db.clone(),
            settings: app_settings,
            payments: std::sync::Arc::new(domain::payments::NoGateway),
            crm: std::sync::Arc::new(domain::crm::NoCrm),
            mail: std::sync::Arc::new(server::integrations::smtp::Smtp {
                transport: mailer,
                description: "nowhere".into(),
            }),
            storage: std::sync::Arc::new(server::integrations::storage::Storage::in_memory()),
        };
        let registry = server::jobs::registry(
            &portal,
            std::sync::Arc::new(vec![]),
            server::config::RetentionSettings {
                expired_holds_days: 30,
                unverified_accounts_days: 14,
                integration_payloads_days: 30,
            },
        );
        let w = Worker::new(t.db.clone(), registry, config());
        let mut j = job("email.send", "bad-payload");
        j.integration = Integration::Email;
        j.payload = serde_json::json!({"email": "not the shape of today"});
        let id = ledger::enqueue(&t.db, j).await.unwrap().unwrap();
        w.drain().await.unwrap();
        let (status, _, _, err) = job_status(&t.db, id).await;
        assert_eq!(status, "manual_review");
        assert!(err.unwrap().contains("payload cannot be read"));
        t.close().await;
    }
);

db_test!(
    a_job_whose_worker_died_runs_again_after_the_lease_and_once,
    |b| async move {
        let Some(t) = TestDb::new(b).await else {
            return;
        };
        let (dead, dead_runs) = worker_with(&t.db, "ok");
        let id = ledger::enqueue(&t.db, job("test.scripted", "lease-1"))
            .await
            .unwrap()
            .unwrap();
        // The first worker claims the job and dies before running it.
        let claimed = dead.claim(1).await.unwrap();
        assert_eq!(claimed.len(), 1);
        drop(dead);
        let (live, live_runs) = worker_with(&t.db, "ok");
        assert_eq!(live.drain().await.unwrap(), 0, "the lease still holds");
        tokio::time::sleep(Duration::from_millis(2_200)).await;
        assert_eq!(
            live.drain().await.unwrap(),
            1,
            "the lease expired, the job runs again"
        );
        assert_eq!(live.drain().await.unwrap(), 0);
        assert_eq!(
            dead_runs.load(Ordering::SeqCst) + live_runs.load(Ordering::SeqCst),
            1
        );
        let (status, attempts, _, _) = job_status(&t.db, id).await;
        assert_eq!((status.as_str(), attempts), ("succeeded", 2));
        assert_eq!(
            count(
                &t.db,
                "SELECT COUNT(*) FROM job_attempts WHERE outcome = 'lease_expired'"
            )
            .await,
            1
        );
        t.close().await;
    }
);

db_test!(two_workers_never_run_the_same_job, |b| async move {
    let Some(t) = TestDb::new(b).await else {
        return;
    };
    let (a, runs_a) = worker_with(&t.db, "ok");
    let (c, runs_c) = worker_with(&t.db, "ok");
    for i in 0..200 {
        ledger::enqueue(&t.db, job("test.scripted", &format!("pair-{i}")))
            .await
            .unwrap();
    }
    let (ra, rc) = tokio::join!(a.drain(), c.drain());
    assert_eq!(ra.unwrap() + rc.unwrap(), 200);
    assert_eq!(
        runs_a.load(Ordering::SeqCst) + runs_c.load(Ordering::SeqCst),
        200
    );
    assert_eq!(count(&t.db, "SELECT COUNT(*) FROM job_attempts").await, 200);
    assert_eq!(
        count(
            &t.db,
            "SELECT COUNT(*) FROM jobs WHERE status = 'succeeded' AND attempts = 1"
        )
        .await,
        200
    );
    t.close().await;
});

db_test!(
    admin_actions_are_audited_and_safe_to_repeat,
    |b| async move {
        let Some(t) = TestDb::new(b).await else {
            return;
        };
        let admin = domain::auth::create_or_promote_admin(
            &t.db,
            "boss@example.com",
            "Boss",
            secrecy::SecretString::from(TEST_PASSWORD.to_owned()),
            None,
            false,
        )
        .await
        .unwrap()
        .0;
        let (w, _) = worker_with(&t.db, "permanent");
        let id = ledger::enqueue(&t.db, job("test.scripted", "act-1"))
            .await
            .unwrap()
            .unwrap();
        w.drain().await.unwrap();
        assert_eq!(job_status(&t.db, id).await.0, "manual_review");

        ledger::retry_now(&t.db, id, admin).await.unwrap();
        ledger::retry_now(&t.db, id, admin).await.unwrap();
        let (status, attempts, run_after, _) = job_status(&t.db, id).await;
        assert_eq!(status, "queued");
        assert!(run_after <= now_ms());
        assert_eq!(attempts, 1);

        let (ok, _) = worker_with(&t.db, "ok");
        ok.drain().await.unwrap();
        assert_eq!(job_status(&t.db, id).await.0, "succeeded");
        assert!(matches!(
            ledger::retry_now(&t.db, id, admin).await,
            Err(ledger::ActionError::NotAllowed(_))
        ));

        let other = ledger::enqueue(&t.db, job("test.scripted", "act-2"))
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(
            ledger::close(&t.db, other, admin, false, "  ").await,
            Err(ledger::ActionError::NotAllowed(_))
        ));
        ledger::close(&t.db, other, admin, true, "customer asked us not to sync")
            .await
            .unwrap();
        assert!(matches!(
            ledger::close(&t.db, other, admin, true, "again").await,
            Err(ledger::ActionError::NotAllowed(_))
        ));
        assert_eq!(job_status(&t.db, other).await.0, "cancelled");

        let audit = domain::audit::for_subject(&t.db, "job", &id.to_string())
            .await
            .unwrap();
        assert_eq!(audit.iter().filter(|a| a.action == "job.retry").count(), 2);
        assert_eq!(audit[0].actor.as_deref(), Some("boss@example.com"));
        let audit = domain::audit::for_subject(&t.db, "job", &other.to_string())
            .await
            .unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].detail, "customer asked us not to sync");
        t.close().await;
    }
);

db_test!(
    bulk_retry_reschedules_only_failed_jobs_in_the_filter,
    |b| async move {
        let Some(t) = TestDb::new(b).await else {
            return;
        };
        let admin = domain::auth::create_or_promote_admin(
            &t.db,
            "boss@example.com",
            "Boss",
            secrecy::SecretString::from(TEST_PASSWORD.to_owned()),
            None,
            false,
        )
        .await
        .unwrap()
        .0;
        let (w, _) = worker_with(&t.db, "permanent");
        for i in 0..3 {
            ledger::enqueue(&t.db, job("test.scripted", &format!("bulk-{i}")))
                .await
                .unwrap();
        }
        let mut email_job = job("test.scripted", "bulk-email");
        email_job.integration = Integration::Email;
        ledger::enqueue(&t.db, email_job).await.unwrap();
        w.drain().await.unwrap();
        let filter = model::JobFilter {
            integration: Some("crm".into()),
            ..Default::default()
        };
        assert_eq!(ledger::retry_all(&t.db, &filter, admin).await.unwrap(), 3);
        assert_eq!(
            count(&t.db, "SELECT COUNT(*) FROM jobs WHERE status = 'queued'").await,
            3
        );
        assert_eq!(
            count(
                &t.db,
                "SELECT COUNT(*) FROM jobs WHERE status = 'manual_review' AND integration = 'email'"
            )
            .await,
            1
        );
        t.close().await;
    }
);

db_test!(
    health_shows_failing_integrations_and_alerts_open_once,
    |b| async move {
        let Some(t) = TestDb::new(b).await else {
            return;
        };
        let (w, _) = worker_with(&t.db, "permanent");
        let id = ledger::enqueue(&t.db, job("test.scripted", "health-1"))
            .await
            .unwrap()
            .unwrap();
        w.drain().await.unwrap();
        let health = ledger::health(&t.db).await.unwrap();
        let crm = health.iter().find(|h| h.integration == "crm").unwrap();
        assert_eq!(crm.state, "failing");
        assert_eq!(crm.in_review, 1);
        assert_eq!(health[0].integration, "crm", "worst first");
        assert!(
            ledger::admin_alert(&t.db)
                .await
                .unwrap()
                .unwrap()
                .contains("manual review")
        );
        server::jobs::alerts::scan(&t.db).await.unwrap();
        server::jobs::alerts::scan(&t.db).await.unwrap();
        assert_eq!(
            count(
                &t.db,
                "SELECT COUNT(*) FROM alert_state WHERE closed_at IS NULL AND kind = 'job'"
            )
            .await,
            1
        );
        assert_eq!(
            count(
                &t.db,
                "SELECT COUNT(*) FROM jobs WHERE kind = 'alerts.digest'"
            )
            .await,
            1,
            "one digest per minute, however many scans"
        );
        let admin = domain::auth::create_or_promote_admin(
            &t.db,
            "boss@example.com",
            "Boss",
            secrecy::SecretString::from(TEST_PASSWORD.to_owned()),
            None,
            false,
        )
        .await
        .unwrap()
        .0;
        ledger::close(&t.db, id, admin, false, "fixed in the CRM by hand")
            .await
            .unwrap();
        server::jobs::alerts::scan(&t.db).await.unwrap();
        assert_eq!(
            count(
                &t.db,
                "SELECT COUNT(*) FROM alert_state WHERE closed_at IS NULL AND kind = 'job'"
            )
            .await,
            0
        );
        t.close().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_worker_survives_the_database_dropping_its_connections() {
    use sea_orm::ConnectionTrait;
    let Some(t) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let (w, runs) = worker_with(&t.db, "ok");
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(w.clone().run(stop.clone()));
    for i in 0..20 {
        ledger::enqueue(&t.db, job("test.scripted", &format!("before-{i}")))
            .await
            .unwrap();
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            runs.load(Ordering::SeqCst) == 20
        })
        .await
    );
    // What a database restart looks like to the pool: every connection is cut.
    let name = t.url.rsplit('/').next().unwrap().to_owned();
    let admin = domain::database::connect(&secrecy::SecretString::from(pg_admin_url()), 1)
        .await
        .unwrap();
    admin.execute_unprepared(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()")).await.unwrap();
    admin.close().await.ok();
    // Enqueue through a fresh connection; the worker must reconnect and drain it.
    let writer = domain::database::connect(&secrecy::SecretString::from(t.url.clone()), 2)
        .await
        .unwrap();
    for i in 0..20 {
        ledger::enqueue(&writer, job("test.scripted", &format!("after-{i}")))
            .await
            .unwrap();
    }
    assert!(
        eventually(Duration::from_secs(30), || async {
            runs.load(Ordering::SeqCst) == 40
        })
        .await,
        "ran {}",
        runs.load(Ordering::SeqCst)
    );
    stop.cancel();
    running.await.unwrap();
    assert_eq!(
        count(
            &writer,
            "SELECT COUNT(*) FROM jobs WHERE status = 'succeeded'"
        )
        .await,
        40,
        "nothing lost"
    );
    writer.close().await.ok();
    t.close().await;
}
