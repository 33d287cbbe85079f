//! The `stoep` binary as a process: its CLI, its one-line errors, graceful shutdown, a worker
//! killed with SIGKILL mid-job, and two worker processes sharing one PostgreSQL queue.

use std::process::Command;
use std::time::Duration;

use domain::db;
use domain::email as mail;

use crate::db_test;
use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_stoep");

fn stoep(envs: &[(&str, &str)], args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    // Only the settings given here: nothing inherited from the shell running the tests.
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("STOEP_")) {
        c.env_remove(k);
    }
    c.args(args)
        .env("STOEP_CONFIG", "/dev/null")
        .env("STOEP_LOG_LEVEL", "warn");
    for (k, v) in envs {
        c.env(k, v);
    }
    c
}

#[test]
fn help_lists_the_subcommands() {
    let out = stoep(&[], &["--help"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for sub in ["serve", "worker", "migrate", "admin"] {
        assert!(text.contains(sub), "{text}");
    }
    let out = stoep(&[], &["admin", "create", "--help"]).output().unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().contains("--email"));
}

#[test]
fn admin_create_prints_a_one_time_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = stoep(
        &[("STOEP_DATA_DIR", dir.path().to_str().unwrap())],
        &["admin", "create", "--email", "Boss@Example.com"],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Created admin boss@example.com"), "{text}");
    let password = text
        .lines()
        .find_map(|l| {
            l.split(": ")
                .nth(1)
                .filter(|_| l.starts_with("One-time password"))
        })
        .unwrap();
    assert_eq!(password.len(), 20);
    let again = stoep(
        &[("STOEP_DATA_DIR", dir.path().to_str().unwrap())],
        &["admin", "create", "--email", "boss@example.com"],
    )
    .output()
    .unwrap();
    assert!(
        String::from_utf8(again.stdout)
            .unwrap()
            .contains("Promoted admin boss@example.com"),
        "running twice promotes, never duplicates"
    );
}

fn one_line_error(out: &std::process::Output) -> String {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    err
}

#[test]
fn bad_settings_unreachable_databases_and_busy_ports_fail_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let err = one_line_error(
        &stoep(
            &[
                ("STOEP_DATA_DIR", data),
                ("STOEP_PUBLIC_URL", "portal.example.com"),
            ],
            &["migrate"],
        )
        .output()
        .unwrap(),
    );
    assert!(err.contains("STOEP_PUBLIC_URL"), "{err}");
    let err = one_line_error(
        &stoep(
            &[
                ("STOEP_DATA_DIR", data),
                ("STOEP_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none"),
            ],
            &["migrate"],
        )
        .output()
        .unwrap(),
    );
    assert!(err.contains("cannot connect to the database"), "{err}");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let err = one_line_error(
        &stoep(
            &[
                ("STOEP_DATA_DIR", data),
                ("STOEP_LISTEN", &addr),
                ("STOEP_MAIL_CATCHER__LISTEN", "127.0.0.1:0"),
            ],
            &["serve"],
        )
        .output()
        .unwrap(),
    );
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

#[test]
fn serve_becomes_ready_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = stoep(
        &[
            ("STOEP_DATA_DIR", dir.path().to_str().unwrap()),
            ("STOEP_LISTEN", &listen),
            ("STOEP_PUBLIC_URL", &format!("http://{listen}")),
            ("STOEP_MAIL_CATCHER__LISTEN", "127.0.0.1:0"),
        ],
        &["serve"],
    )
    .stdout(process_log())
    .stderr(process_log())
    .spawn()
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ready = rt.block_on(eventually(Duration::from_secs(20), || async {
        matches!(reqwest::get(format!("http://{listen}/readyz")).await, Ok(r) if r.status() == 200)
    }));
    assert!(ready, "the server became ready");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "graceful exit, got {status}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "stopped within the grace period"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A TCP server that accepts and never answers: an SMTP relay that hangs.
async fn stalled_smtp() -> (u16, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let h = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    (port, h)
}

db_test!(
    a_worker_killed_mid_job_loses_its_lease_and_the_email_goes_once,
    |b| async move {
        let Some(app) = TestApp::spawn_with(
            b,
            &[
                ("STOEP_WORKER__LEASE_SECS", "4"),
                ("STOEP_WORKER__JOB_TIMEOUT_SECS", "3"),
            ],
        )
        .await
        else {
            return;
        };
        let s = app.services.state.settings.clone();
        mail::enqueue(
            &app.services.state.db,
            &s,
            None,
            "kill@example.com",
            mail::templates::welcome(&s, "K"),
            "kill:1",
        )
        .await
        .unwrap();
        let (stall_port, _stall) = stalled_smtp().await;
        let port = stall_port.to_string();
        let mut child = stoep(
            &[
                ("STOEP_DATABASE_URL", &app.db.url),
                ("STOEP_DATA_DIR", app.db.dir.path().to_str().unwrap()),
                ("STOEP_SMTP__HOST", "127.0.0.1"),
                ("STOEP_SMTP__PORT", &port),
                ("STOEP_SMTP__TLS", "none"),
                ("STOEP_SMTP__TIMEOUT_SECS", "30"),
                ("STOEP_WORKER__JOB_TIMEOUT_SECS", "3"),
                ("STOEP_WORKER__LEASE_SECS", "4"),
                ("STOEP_WORKER__POLL_INTERVAL_MS", "50"),
            ],
            &["worker"],
        )
        .stdout(process_log())
        .stderr(process_log())
        .spawn()
        .unwrap();
        let db = app.services.state.db.clone();
        let claimed = eventually(Duration::from_secs(20), || {
            let db = db.clone();
            async move {
                count(
                    &db,
                    "SELECT COUNT(*) FROM jobs WHERE kind = 'email.send' AND status = 'running'",
                )
                .await
                    == 1
            }
        })
        .await;
        assert!(claimed, "the worker process claimed the job");
        child.kill().unwrap(); // SIGKILL: no chance to hand the lease back
        child.wait().unwrap();
        assert_eq!(app.run_jobs().await, 0, "the lease still holds");
        tokio::time::sleep(Duration::from_millis(4_300)).await;
        app.run_jobs().await;
        let mail = app.mail().await;
        assert_eq!(mail.len(), 1, "delivered once");
        assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs WHERE kind = 'email.send' AND status = 'succeeded' AND attempts = 2").await, 1);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM job_attempts a JOIN jobs j ON j.id = a.job_id WHERE j.kind = 'email.send' AND a.outcome = 'lease_expired'").await, 1);
        app.stop().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_worker_processes_on_postgresql_drain_1000_jobs_each_exactly_once() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let catcher_port = app
        .services
        .settings
        .mail_catcher
        .listen
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let spawn_worker = || {
        stoep(
            &[
                ("STOEP_DATABASE_URL", &app.db.url),
                ("STOEP_DATA_DIR", app.db.dir.path().to_str().unwrap()),
                ("STOEP_SMTP__HOST", "127.0.0.1"),
                ("STOEP_SMTP__PORT", &catcher_port),
                ("STOEP_SMTP__TLS", "none"),
                ("STOEP_WORKER__POLL_INTERVAL_MS", "20"),
                ("STOEP_WORKER__CONCURRENCY", "16"),
            ],
            &["worker"],
        )
        .stdout(process_log())
        .stderr(process_log())
        .spawn()
        .unwrap()
    };
    let mut w1 = spawn_worker();
    let mut w2 = spawn_worker();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = app.services.state.settings.clone();
    let txn = db::begin_write(&app.services.state.db).await.unwrap();
    for i in 0..1000 {
        mail::enqueue(
            &txn,
            &s,
            None,
            &format!("bulk{i}@example.com"),
            mail::templates::welcome(&s, "B"),
            &format!("bulk:{i}"),
        )
        .await
        .unwrap();
    }
    txn.commit().await.unwrap();
    let db = app.services.state.db.clone();
    let done = eventually(Duration::from_secs(180), || {
        let db = db.clone();
        async move {
            count(
                &db,
                "SELECT COUNT(*) FROM jobs WHERE kind = 'email.send' AND status = 'succeeded'",
            )
            .await
                == 1000
        }
    })
    .await;
    w1.kill().ok();
    w2.kill().ok();
    w1.wait().ok();
    w2.wait().ok();
    assert!(done, "all 1000 jobs finished");
    // (The workers' housekeeping adds its own `system.*` jobs; only the emails are counted.)
    let email_attempts =
        "FROM job_attempts a JOIN jobs j ON j.id = a.job_id WHERE j.kind = 'email.send'";
    assert_eq!(
        count(&db, &format!("SELECT COUNT(*) {email_attempts}")).await,
        1000,
        "each job ran exactly once"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM jobs WHERE kind = 'email.send' AND attempts <> 1"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT COUNT(DISTINCT a.worker) {email_attempts}")
        )
        .await,
        2,
        "both processes took jobs"
    );
    let mail = app.mail().await;
    assert_eq!(mail.len(), 1000);
    let mut to: Vec<String> = mail.into_iter().flat_map(|m| m.to).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 1000, "no message twice");
    app.stop().await;
}
