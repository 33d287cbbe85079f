//! Test helpers: fresh databases per test (a SQLite file, or a new PostgreSQL database on
//! 127.0.0.1:5432), the application on port 0, and an HTTP client that keeps cookies.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use secrecy::SecretString;
use server::config::Settings;
use server::startup::{self, Application, Services};
use tokio_util::sync::CancellationToken;

/// Runs a test body once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! db_test {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let f = $body;
                f($crate::support::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let f = $body;
                f($crate::support::Backend::Postgres).await;
            }
        }
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the tests use; `STOEP_TEST_PG_URL` overrides it.
pub fn pg_admin_url() -> String {
    std::env::var("STOEP_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| !v.is_empty() && v != "false" && v != "0")
        .unwrap_or(false)
}

/// A fresh, migrated database for one test.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    pub db: DatabaseConnection,
    pub dir: tempfile::TempDir,
    pg_name: Option<String>,
}

impl TestDb {
    /// A new database. On PostgreSQL an unreachable server fails the test under `CI=true` and
    /// skips it (returns `None`, with a message) otherwise.
    pub async fn new(backend: Backend) -> Option<TestDb> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (url, pg_name) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}/test.db?mode=rwc", dir.path().display()),
                None,
            ),
            Backend::Postgres => {
                let admin = match domain::database::connect(&SecretString::from(pg_admin_url()), 2)
                    .await
                {
                    Ok(db) => db,
                    Err(e) if !in_ci() => {
                        eprintln!(
                            "SKIPPED: PostgreSQL is unreachable ({e}); set CI=true to make this a failure"
                        );
                        return None;
                    }
                    Err(e) => panic!("PostgreSQL must be reachable in CI: {e}"),
                };
                let name = format!("stoep_t_{}", uuid::Uuid::new_v4().simple());
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create database");
                admin.close().await.ok();
                let base = pg_admin_url();
                let root = base
                    .rsplit_once('/')
                    .map(|(r, _)| r.to_owned())
                    .unwrap_or(base);
                (format!("{root}/{name}"), Some(name))
            }
        };
        let db = domain::database::connect(&SecretString::from(url.clone()), 10)
            .await
            .expect("connect");
        domain::database::migrate(&db).await.expect("migrate");
        Some(TestDb {
            backend,
            url,
            db,
            dir,
            pg_name,
        })
    }

    /// Drops the PostgreSQL database (SQLite files go with the temp dir).
    pub async fn close(self) {
        self.db.close().await.ok();
        if let Some(name) = self.pg_name
            && let Ok(admin) =
                domain::database::connect(&SecretString::from(pg_admin_url()), 1).await
        {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
            admin.close().await.ok();
        }
    }
}

/// Settings for a test: port 0, the test database, a temp data folder, fast worker settings.
pub fn settings(db_url: &str, data_dir: &std::path::Path, extra: &[(&str, &str)]) -> Settings {
    let mut env: Vec<(String, String)> = vec![
        ("STOEP_CONFIG".into(), "/dev/null".into()),
        ("STOEP_LISTEN".into(), "127.0.0.1:0".into()),
        ("STOEP_PUBLIC_URL".into(), "http://127.0.0.1:0".into()),
        ("STOEP_DATA_DIR".into(), data_dir.display().to_string()),
        ("STOEP_DATABASE_URL".into(), db_url.into()),
        ("STOEP_MAIL_CATCHER__LISTEN".into(), "127.0.0.1:0".into()),
        ("STOEP_STRIPE__STANDIN_LISTEN".into(), "127.0.0.1:0".into()),
        ("STOEP_CRM__STANDIN_LISTEN".into(), "127.0.0.1:0".into()),
        ("STOEP_WORKER__POLL_INTERVAL_MS".into(), "50".into()),
        ("STOEP_WORKER__JOB_TIMEOUT_SECS".into(), "10".into()),
        ("STOEP_WORKER__LEASE_SECS".into(), "30".into()),
        ("STOEP_LOG_LEVEL".into(), "warn".into()),
    ];
    for (k, v) in extra {
        env.retain(|(n, _)| n != k);
        env.push((k.to_string(), v.to_string()));
    }
    Settings::load_from(env).expect("test settings")
}

/// The application running on a random port, with its worker available to drive by hand.
pub struct TestApp {
    pub db: TestDb,
    pub address: String,
    pub services: Services,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// Makes the document store unreachable while on (a switch around the real store).
    pub storage_faults: std::sync::Arc<standins::storage::StorageFaults>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, &[]).await
    }

    /// Starts the web server (and the local mail catcher) without a background worker: tests
    /// run jobs with [`TestApp::run_jobs`] so that they decide when effects happen.
    pub async fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> Option<TestApp> {
        if std::env::var("TEST_LOG").is_ok() {
            server::telemetry::init("human", "info");
        } else {
            capture_logs();
        }
        for (k, v) in extra {
            let k = k.to_ascii_uppercase();
            if ["SECRET", "TOKEN", "PASSWORD", "_KEY"]
                .iter()
                .any(|w| k.contains(w))
            {
                record_secret(v);
            }
        }
        let db = TestDb::new(backend).await?;
        let s = settings(&db.url, db.dir.path(), extra);
        let storage_faults = std::sync::Arc::new(standins::storage::StorageFaults::default());
        let faults = storage_faults.clone();
        let overrides = startup::Overrides {
            wrap_store: Some(Box::new(move |inner| {
                std::sync::Arc::new(standins::storage::Switchable { inner, faults })
            })),
        };
        let mut app = Application::build_with(s, false, overrides)
            .await
            .expect("build app");
        let address = format!("http://127.0.0.1:{}", app.port());
        let shutdown = CancellationToken::new();
        app.start_standin(&shutdown)
            .await
            .expect("start the Stripe stand-in");
        let services = app.services().clone();
        let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let client = reqwest::Client::builder()
            .cookie_provider(recording_jar())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Some(TestApp {
            db,
            address,
            services,
            client,
            shutdown,
            server,
            storage_faults,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Runs every due job now, as the worker would.
    pub async fn run_jobs(&self) -> usize {
        startup::worker(&self.services)
            .drain()
            .await
            .expect("drain jobs")
    }

    pub fn mail_dir(&self) -> PathBuf {
        self.services
            .embedded
            .mail_dir
            .clone()
            .expect("mail catcher active")
    }

    /// What the mail catcher received so far.
    pub async fn mail(&self) -> Vec<model::CaughtMail> {
        standins::mailbox::read_all(&self.mail_dir(), 10_000).await
    }

    /// Posts a form to a server function as a browser without JavaScript would.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("origin", &self.address)
            .header("accept", "text/html")
            .header("referer", self.url("/"))
            .form(form)
            .send()
            .await
            .expect("request")
    }

    /// Calls a server function as the hydrated page does (JSON answer).
    pub async fn call(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("origin", &self.address)
            .form(form)
            .send()
            .await
            .expect("request")
    }

    /// Creates an admin (with two-step verification) and signs this client in as them.
    pub async fn sign_in_admin(&self) -> (i64, String) {
        let email = format!(
            "admin-{}@example.com",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let (id, _) = domain::auth::create_or_promote_admin(
            &self.services.state.db,
            &email,
            "Ada Admin",
            SecretString::from(TEST_PASSWORD.to_owned()),
            Some(TEST_TOTP_SECRET),
            false,
        )
        .await
        .unwrap();
        sign_in_with_code(self, &self.client, &email, TEST_PASSWORD, TEST_TOTP_SECRET).await;
        (id, email)
    }

    pub async fn stop(self) {
        // One-time links sent during the test: the log scan looks for them too.
        if let Some(dir) = self.services.embedded.mail_dir.clone() {
            for m in standins::mailbox::read_all(&dir, 10_000).await {
                for token in tokens_in(&m.text) {
                    record_secret(&token);
                }
            }
        }
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.server).await;
        self.db.close().await;
    }
}

/// The TOTP secret of test admins and staff (base32).
pub const TEST_TOTP_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

/// The current TOTP code for `secret`, `offset` steps from now.
pub fn totp_now(secret: &str, offset: i64) -> String {
    let raw = domain::totp::base32_decode(secret).unwrap();
    domain::totp::code_at(&raw, domain::db::now_ms() / 1000 / 30 + offset)
}

/// Signs `client` in with password and code; panics if either step fails.
pub async fn sign_in_with_code(
    app: &TestApp,
    client: &reqwest::Client,
    email: &str,
    password: &str,
    secret: &str,
) {
    use leptos::server_fn::ServerFn;
    let res = client
        .post(app.url(&sign_in_path()))
        .header("origin", &app.address)
        .header("accept", "text/html")
        .header("referer", app.url("/signin"))
        .form(&[("email", email), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["location"],
        "/signin/verify",
        "the password step asks for a code"
    );
    let res = client
        .post(app.url(app::api::auth::VerifySignInCode::PATH))
        .header("origin", &app.address)
        .header("accept", "text/html")
        .header("referer", app.url("/signin/verify"))
        .form(&[("code", totp_now(secret, 0).as_str())])
        .send()
        .await
        .unwrap();
    let location = res
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        !location.contains("__err"),
        "the code step failed: {location}"
    );
}

/// A password that passes the strength rules; also searched for in logs by the test command.
pub const TEST_PASSWORD: &str = "copper kettle under the stoep 71";

pub fn sign_in_path() -> String {
    use leptos::server_fn::ServerFn;
    app::api::auth::SignIn::PATH.to_owned()
}

pub fn path_of<T: leptos::server_fn::ServerFn>() -> String {
    T::PATH.to_owned()
}

/// Waits until `f` returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Counts rows.
pub async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = domain::db::query_one(db, sql, vec![])
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// Where the test command collects logs (`STOEP_TEST_LOG_DIR`); `None` when run by hand.
pub fn log_dir() -> Option<PathBuf> {
    std::env::var_os("STOEP_TEST_LOG_DIR").map(PathBuf::from)
}

/// This test's name (the test thread is named after it), safe as a file name. Fixed by the
/// first call, which [`TestApp::spawn_with`] makes on the test's own thread.
fn test_file_stem() -> String {
    static STEM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    STEM.get_or_init(current_test_name).clone()
}

fn current_test_name() -> String {
    let name = std::thread::current()
        .name()
        .filter(|n| *n != "main" && !n.starts_with("tokio"))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("pid-{}", std::process::id()));
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Sends this test process's logs (info, and debug for the portal's own crates) through the
/// portal's own subscriber, masking included, to `<STOEP_TEST_LOG_DIR>/<test>.log`. The test
/// command scans every such file for the secrets the tests recorded.
pub fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let Some(dir) = log_dir() else { return };
    ONCE.call_once(|| {
        std::fs::create_dir_all(&dir).expect("log dir");
        let path = dir.join(format!("{}.log", test_file_stem()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("log file");
        server::telemetry::init_with(
            "human",
            "info,server=debug,app=debug",
            std::sync::Mutex::new(file),
            false,
        );
        for s in [
            TEST_PASSWORD,
            TEST_TOTP_SECRET,
            server::config::CRM_STANDIN_TOKEN,
            server::config::CRM_STANDIN_CLIENT_SECRET,
            server::config::STANDIN_SECRET_KEY,
            server::config::STANDIN_WEBHOOK_SECRET,
        ] {
            record_secret(s);
        }
    });
}

/// This test's log so far (empty when logs are not captured).
pub fn captured_log() -> String {
    log_dir()
        .and_then(|d| std::fs::read_to_string(d.join(format!("{}.log", test_file_stem()))).ok())
        .unwrap_or_default()
}

/// Notes a secret (a password, token, session id or key) the logs must never contain; the test
/// command's scan looks for every one in every log of the run. Short values are ignored: they
/// would match by chance.
pub fn record_secret(value: &str) {
    use std::io::Write;
    let value = value.trim();
    if value.len() < 12 || value.contains('\n') {
        return;
    }
    let Some(dir) = log_dir() else { return };
    let _ = std::fs::create_dir_all(dir.join("secrets"));
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(
        dir.join("secrets")
            .join(format!("{}.txt", std::process::id())),
    ) {
        let _ = writeln!(f, "{value}");
    }
}

/// The `token=` values of the links in an email.
pub fn tokens_in(text: &str) -> Vec<String> {
    text.match_indices("token=")
        .map(|(i, _)| {
            text[i + 6..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect()
        })
        .collect()
}

/// A cookie jar that records every cookie value the server sets (session ids) as a secret.
pub struct RecordingJar(reqwest::cookie::Jar);

impl reqwest::cookie::CookieStore for RecordingJar {
    fn set_cookies(
        &self,
        headers: &mut dyn Iterator<Item = &reqwest::header::HeaderValue>,
        url: &url::Url,
    ) {
        let headers: Vec<reqwest::header::HeaderValue> = headers.cloned().collect();
        for h in &headers {
            if let Some((_, rest)) = h.to_str().ok().and_then(|s| s.split_once('=')) {
                record_secret(rest.split(';').next().unwrap_or(""));
            }
        }
        self.0.set_cookies(&mut headers.iter(), url);
    }

    fn cookies(&self, url: &url::Url) -> Option<reqwest::header::HeaderValue> {
        self.0.cookies(url)
    }
}

/// A fresh [`RecordingJar`] for a client builder's `cookie_provider`.
pub fn recording_jar() -> std::sync::Arc<RecordingJar> {
    std::sync::Arc::new(RecordingJar(reqwest::cookie::Jar::default()))
}

/// Where a child `stoep` process writes its output: a file in the log folder the scan reads,
/// or nowhere when logs are not captured.
pub fn process_log() -> std::process::Stdio {
    let Some(dir) = log_dir() else {
        return std::process::Stdio::null();
    };
    let _ = std::fs::create_dir_all(&dir);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{}.process.log", test_file_stem())))
        .map(std::process::Stdio::from)
        .unwrap_or_else(|_| std::process::Stdio::null())
}
