//! Job throughput of the integration ledger on the database `STOEP_DATABASE_URL` names (meant for
//! PostgreSQL, where several workers may share the queue), with real `stoep worker` processes
//! started with the same environment (default worker settings unless the environment says
//! otherwise).
//!
//! - Drain: `jobs` `system.noop` jobs are enqueued due two seconds ahead (so the workers are up
//!   and idle when they fall due), then one, and in a second round two, worker processes drain
//!   them. Jobs per second = jobs / (last `finished_at` - first attempt's `started_at`), read
//!   from the database, so process start-up is not counted. Each job must have run exactly once.
//! - Enqueue-to-start latency: with one worker running and idle, 40 jobs are enqueued one at a
//!   time, 20-80 ms apart; latency = the attempt's `started_at` - the job's `created_at`.
//! - Baseline: the worker's own claim statement (`Worker::claim`, one job per claim, in its write
//!   transaction), run by as many tasks as a worker runs jobs at once (`worker.concurrency`), on
//!   the same number of queued jobs: claims per second, with no handler and no outcome recorded.
//!
//! `job_throughput <path of the stoep binary> [jobs]`; prints Markdown rows.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::db::{self, col, now_ms};
use domain::ledger::{self, Integration, NewJob, Subject};
use domain::worker::{Registry, Worker, WorkerConfig};
use rand::Rng;
use sea_orm::DatabaseConnection;
use stoep_bench::{percentile, rate};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let stoep = args.next().unwrap_or_else(|| "target/release/stoep".into());
    let jobs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5000);
    let services = stoep_bench::portal_from_env().await?;
    let db = services.db.clone();
    let concurrency = services.worker_concurrency;

    let mut rows = Vec::new();
    for workers in [1usize, 2] {
        let round = format!("drain{workers}");
        enqueue(&db, &round, jobs, now_ms() + 2_000).await?;
        let children: Vec<Child> = (0..workers)
            .map(|_| spawn_worker(&stoep))
            .collect::<Result<_, _>>()?;
        let done = wait_until_done(&db, &round, Duration::from_secs(180)).await;
        stop(children);
        done?;
        let (first, last, attempts) = span(&db, &round).await?;
        anyhow::ensure!(
            attempts == jobs as i64,
            "{attempts} attempts for {jobs} jobs"
        );
        let per_sec = jobs as f64 / ((last - first).max(1) as f64 / 1000.0);
        rows.push((workers, per_sec));
    }

    // Latency from enqueue to start, one idle worker.
    let child = spawn_worker(&stoep)?;
    enqueue(&db, "warmup", 1, now_ms()).await?;
    let warm = wait_until_done(&db, "warmup", Duration::from_secs(30)).await;
    let mut latencies = Vec::new();
    if warm.is_ok() {
        for i in 0..40 {
            enqueue_one(&db, "latency", i, now_ms()).await?;
            let gap = rand::thread_rng().gen_range(20..=80);
            tokio::time::sleep(Duration::from_millis(gap)).await;
        }
        let done = wait_until_done(&db, "latency", Duration::from_secs(30)).await;
        if done.is_ok() {
            for r in db::query(
                &db,
                "SELECT a.started_at - j.created_at AS ms FROM jobs j JOIN job_attempts a ON a.job_id = j.id \
                 WHERE j.subject_type = 'bench' AND j.subject_id = 'latency' AND a.attempt = 1",
                vec![],
            )
            .await?
            {
                latencies.push(col::<i64>(&r, "ms")? as f64);
            }
        }
    }
    stop(vec![child]);
    warm?;
    latencies.sort_by(f64::total_cmp);

    // Baseline: the claim statement alone.
    enqueue(&db, "claims", jobs, now_ms()).await?;
    let claimer = Arc::new(Worker::new(
        db.clone(),
        Registry::default(),
        WorkerConfig {
            concurrency,
            poll_interval: Duration::from_millis(250),
            job_timeout: Duration::from_secs(60),
            lease: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(1),
        },
    ));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let w = claimer.clone();
        tasks.spawn(async move {
            let mut n = 0usize;
            while !w.claim(1).await?.is_empty() {
                n += 1;
            }
            Ok::<_, sea_orm::DbErr>(n)
        });
    }
    let mut claimed = 0;
    while let Some(r) = tasks.join_next().await {
        claimed += r??;
    }
    let claim_rate = claimed as f64 / started.elapsed().as_secs_f64();

    for (workers, per_sec) in rows {
        println!(
            "| jobs drained per second, {workers} worker process{} ({jobs} `system.noop` jobs, concurrency {concurrency} each) | {} | {:.2} | target ≥ 1000/s: {} |",
            if workers == 1 { "" } else { "es" },
            rate(per_sec),
            per_sec / claim_rate,
            if per_sec >= 1000.0 {
                "met"
            } else {
                "**missed**"
            },
        );
    }
    println!(
        "| baseline: the worker's claim statement alone, one job per claim, {concurrency} at once ({claimed} claims) | {} | 1 | |",
        rate(claim_rate)
    );
    if latencies.is_empty() {
        println!(
            "| enqueue-to-start latency, one idle worker | not measured (the worker did not finish the jobs) | | |"
        );
    } else {
        println!(
            "| enqueue-to-start latency, one idle worker ({} jobs) | p50 {:.0} ms, p99 {:.0} ms | | the worker polls every `worker.poll_interval_ms` ({} ms) when idle |",
            latencies.len(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            services.poll_interval_ms,
        );
    }
    Ok(())
}

fn new_job(round: &str, i: usize, run_after: i64) -> NewJob {
    NewJob {
        kind: "system.noop",
        integration: Integration::System,
        subject: Subject::new("bench", round),
        idempotency_key: format!("bench.noop:{round}:{i}"),
        payload: serde_json::json!({}),
        run_after_ms: Some(run_after),
    }
}

/// Enqueues `n` jobs for `round` in one transaction.
async fn enqueue(
    db: &DatabaseConnection,
    round: &str,
    n: usize,
    run_after: i64,
) -> anyhow::Result<()> {
    let txn = db::begin_write(db).await?;
    for i in 0..n {
        ledger::enqueue(&txn, new_job(round, i, run_after)).await?;
    }
    txn.commit().await?;
    Ok(())
}

async fn enqueue_one(
    db: &DatabaseConnection,
    round: &str,
    i: usize,
    run_after: i64,
) -> anyhow::Result<()> {
    ledger::enqueue(db, new_job(round, i, run_after)).await?;
    Ok(())
}

fn spawn_worker(stoep: &str) -> anyhow::Result<Child> {
    Ok(Command::new(stoep)
        .arg("worker")
        .stdout(Stdio::null())
        .spawn()?)
}

/// SIGTERM, then wait: the workers hand back nothing (their jobs are done) and exit.
fn stop(children: Vec<Child>) {
    for c in &children {
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
    }
    for mut c in children {
        let _ = c.wait();
    }
}

async fn wait_until_done(
    db: &DatabaseConnection,
    round: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let left: i64 = col(
            &db::query_one(
                db,
                "SELECT COUNT(*) AS n FROM jobs WHERE subject_type = 'bench' AND subject_id = ? AND status <> 'succeeded'",
                vec![round.into()],
            )
            .await?
            .expect("count"),
            "n",
        )?;
        if left == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            start.elapsed() < timeout,
            "{left} `{round}` jobs still not done after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// First attempt start, last finish, and the number of attempts of a round.
async fn span(db: &DatabaseConnection, round: &str) -> anyhow::Result<(i64, i64, i64)> {
    let r = db::query_one(
        db,
        "SELECT MIN(a.started_at) AS first, MAX(j.finished_at) AS last, COUNT(*) AS attempts \
         FROM jobs j JOIN job_attempts a ON a.job_id = j.id WHERE j.subject_type = 'bench' AND j.subject_id = ?",
        vec![round.into()],
    )
    .await?
    .expect("one row");
    Ok((col(&r, "first")?, col(&r, "last")?, col(&r, "attempts")?))
}
