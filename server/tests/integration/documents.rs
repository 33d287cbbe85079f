//! Documents end to end: uploads by customers and staff through `POST /documents/upload`,
//! listing, sharing, downloads (streamed by the portal from the local folder; redirected to a
//! presigned URL on S3), every refused input, the size limit while streaming, storage failures,
//! deletion and clean-up jobs, requests with their emails, and retention.
//!
//! Every test runs against the local folder and against a real S3-protocol server on 127.0.0.1
//! (`STOEP_TEST_S3_URL`, default `http://127.0.0.1:9100`, started by `scripts/test.sh`), on
//! SQLite and on PostgreSQL. Under `CI=true` an unreachable S3 server fails the S3 tests;
//! otherwise they are skipped with a message.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use domain::db;
use sea_orm::DatabaseConnection;
use sha2::{Digest, Sha256};

use crate::support::*;

/// Runs a test body for each store and database: `(Backend, Store)`.
#[macro_export]
macro_rules! doc_test {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite_local() {
                let f = $body;
                f($crate::support::Backend::Sqlite, Store::Local).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite_s3() {
                let f = $body;
                f($crate::support::Backend::Sqlite, Store::S3).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres_local() {
                let f = $body;
                f($crate::support::Backend::Postgres, Store::Local).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres_s3() {
                let f = $body;
                f($crate::support::Backend::Postgres, Store::S3).await;
            }
        }
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    Local,
    S3,
}

/// The S3-protocol server the tests use.
pub fn s3_url() -> String {
    std::env::var("STOEP_TEST_S3_URL").unwrap_or_else(|_| "http://127.0.0.1:9100".into())
}

fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| !v.is_empty() && v != "false" && v != "0")
        .unwrap_or(false)
}

/// Settings that point document storage at a fresh bucket on the S3 server, or `None` (skip)
/// when it is unreachable outside CI.
pub async fn s3_settings() -> Option<Vec<(String, String)>> {
    let base = s3_url();
    let bucket = format!(
        "stoep-t-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let created = reqwest::Client::new()
        .put(format!("{base}/{bucket}"))
        .send()
        .await;
    match created {
        Ok(r) if r.status().is_success() => {}
        other if !in_ci() => {
            eprintln!(
                "SKIPPED: the S3 server at {base} is unreachable or refused a bucket ({other:?}); start one (scripts/test.sh does) or set CI=true to make this a failure"
            );
            return None;
        }
        other => panic!("the S3 server at {base} must be reachable in CI: {other:?}"),
    }
    Some(vec![
        ("STOEP_STORAGE__URL".into(), format!("s3://{bucket}")),
        ("STOEP_STORAGE__OPTIONS__AWS_ENDPOINT".into(), base),
        (
            "STOEP_STORAGE__OPTIONS__AWS_ALLOW_HTTP".into(),
            "true".into(),
        ),
        (
            "STOEP_STORAGE__OPTIONS__AWS_ACCESS_KEY_ID".into(),
            "stoep-test".into(),
        ),
        (
            "STOEP_STORAGE__OPTIONS__AWS_SECRET_ACCESS_KEY".into(),
            "stoep-test-secret".into(),
        ),
        (
            "STOEP_STORAGE__OPTIONS__AWS_REGION".into(),
            "us-east-1".into(),
        ),
    ])
}

/// The portal with document storage on `store`; `extra` adds settings.
pub async fn spawn(b: Backend, store: Store, extra: &[(&str, &str)]) -> Option<TestApp> {
    let mut settings: Vec<(String, String)> = match store {
        Store::Local => vec![],
        Store::S3 => s3_settings().await?,
    };
    settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let pairs: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    TestApp::spawn_with(b, &pairs).await
}

/// A signed-in customer: their id and a client with their session.
pub async fn customer(app: &TestApp, name: &str) -> (i64, reqwest::Client) {
    let email = format!(
        "{}-{}@example.com",
        name.to_lowercase().replace(' ', "."),
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    // One Argon2 hash for every test customer: hashing is slow in a debug build.
    static HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let hash = HASH
        .get_or_init(|| async {
            domain::auth::hash_password(secrecy::SecretString::from(TEST_PASSWORD.to_owned()))
                .await
                .unwrap()
        })
        .await
        .clone();
    let row = db::query_one(
        &app.services.state.db,
        "INSERT INTO users (email, name, role, status, password_hash, email_verified_at, created_at, updated_at) VALUES (?, ?, 'customer', 'active', ?, 1, 1, 1) RETURNING id",
        vec![email.clone().into(), name.into(), hash.into()],
    )
    .await
    .unwrap()
    .unwrap();
    let id: i64 = db::col(&row, "id").unwrap();
    let c = reqwest::Client::builder()
        .cookie_provider(recording_jar())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = c
        .post(app.url(&sign_in_path()))
        .header("origin", &app.address)
        .form(&[("email", email.as_str()), ("password", TEST_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_success() || res.status().is_redirection(),
        "customer signs in"
    );
    (id, c)
}

/// A small but real-looking PDF.
pub fn pdf(tag: &str) -> Vec<u8> {
    let mut v = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n".to_vec();
    v.extend_from_slice(format!("% {tag}\n").as_bytes());
    v.extend((0..3000u32).map(|i| (i % 251) as u8));
    v.extend_from_slice(b"\n%%EOF\n");
    v
}

/// A ZIP with these entry names (enough for the central-directory check).
pub fn zip_with(names: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for n in names {
        let offset = out.len() as u32;
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&[
            20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ]);
        out.extend_from_slice(&(n.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(n.as_bytes());
        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&[20, 0, 20, 0]);
        central.extend_from_slice(&[0; 20]);
        central.extend_from_slice(&(n.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(n.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&(names.len() as u16).to_le_bytes());
    out.extend_from_slice(&(names.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

pub fn docx() -> Vec<u8> {
    zip_with(&["[Content_Types].xml", "_rels/.rels", "word/document.xml"])
}

pub fn xlsx() -> Vec<u8> {
    zip_with(&["[Content_Types].xml", "_rels/.rels", "xl/workbook.xml"])
}

/// Posts an upload as a script would (JSON answer).
pub async fn upload(
    app: &TestApp,
    client: &reqwest::Client,
    fields: &[(&str, &str)],
    file_name: &str,
    content: Vec<u8>,
) -> reqwest::Response {
    // File names go as they are (not percent-encoded), so the server sees what a hostile
    // client would send.
    let mut form = reqwest::multipart::Form::new().percent_encode_noop();
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    let part = reqwest::multipart::Part::bytes(content)
        .file_name(file_name.to_owned())
        .mime_str("application/octet-stream")
        .unwrap();
    form = form.part("file", part);
    client
        .post(app.url("/documents/upload"))
        .header("origin", &app.address)
        .multipart(form)
        .send()
        .await
        .expect("upload request")
}

/// Uploads and returns the new document's id (the upload must succeed).
pub async fn upload_ok(
    app: &TestApp,
    client: &reqwest::Client,
    fields: &[(&str, &str)],
    file_name: &str,
    content: Vec<u8>,
) -> i64 {
    let res = upload(app, client, fields, file_name, content).await;
    let status = res.status();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(status, 201, "upload of {file_name} succeeds: {body}");
    body["id"].as_i64().unwrap()
}

pub async fn objects(app: &TestApp) -> Vec<String> {
    app.services
        .state
        .storage
        .list("documents")
        .await
        .expect("list the store")
        .into_iter()
        .map(|o| o.key)
        .collect()
}

async fn n(db: &DatabaseConnection, sql: &str) -> i64 {
    count(db, sql).await
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Makes every queued job due now (reminders and retries wait otherwise).
async fn make_due(db: &DatabaseConnection) {
    db::execute(
        db,
        "UPDATE jobs SET run_after = 0 WHERE status = 'queued'",
        vec![],
    )
    .await
    .unwrap();
}

/// Downloads a document as `client`: the bytes and the headers that matter, following a
/// presigned redirect with a client that has no portal cookies.
async fn download(
    app: &TestApp,
    client: &reqwest::Client,
    id: i64,
    store: Store,
) -> (u16, Vec<u8>, reqwest::header::HeaderMap) {
    let res = client
        .get(app.url(&format!("/documents/{id}/download")))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    if status != 200 && status != 303 {
        return (status, vec![], res.headers().clone());
    }
    if store == Store::S3 {
        assert_eq!(status, 303, "S3 downloads go through a presigned URL");
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            location.contains("X-Amz-Signature") && location.contains("X-Amz-Expires=300"),
            "{location}"
        );
        let direct = reqwest::get(&location).await.unwrap();
        let s = direct.status().as_u16();
        let headers = direct.headers().clone();
        return (s, direct.bytes().await.unwrap().to_vec(), headers);
    }
    let headers = res.headers().clone();
    (status, res.bytes().await.unwrap().to_vec(), headers)
}

doc_test!(
    customers_upload_staff_see_share_back_and_only_the_right_people_download,
    |b, store| async move {
        let Some(app) = spawn(b, store, &[]).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let (alice, alice_c) = customer(&app, "Alice Dube").await;
        let (_bob, bob_c) = customer(&app, "Bob Smit").await;
        app.sign_in_admin().await;

        // Arrange / Act: Alice uploads a signed agreement.
        let signed = pdf("signed agreement");
        let res = upload(
            &app,
            &alice_c,
            &[("category", "agreement")],
            "Signed agreement.pdf",
            signed.clone(),
        )
        .await;
        assert_eq!(res.status(), 201);
        let body: serde_json::Value = res.json().await.unwrap();
        let doc = body["id"].as_i64().unwrap();
        assert_eq!(body["sha256"], sha(&signed));
        assert_eq!(body["size"], signed.len() as i64);

        // Recorded with its metadata; the object's key is the portal's, not the file name.
        let row = db::query_one(
            &db,
            "SELECT * FROM documents WHERE id = ?",
            vec![doc.into()],
        )
        .await
        .unwrap()
        .unwrap();
        let key: String = db::col(&row, "object_key").unwrap();
        assert!(
            key.starts_with(&format!("documents/{alice}/")) && !key.contains("agreement"),
            "{key}"
        );
        assert_eq!(
            db::col::<String>(&row, "display_name").unwrap(),
            "Signed agreement.pdf"
        );
        assert_eq!(
            db::col::<String>(&row, "content_type").unwrap(),
            "application/pdf"
        );
        assert_eq!(db::col::<String>(&row, "sha256").unwrap(), sha(&signed));
        assert_eq!(db::col::<i64>(&row, "uploaded_by").unwrap(), alice);
        assert_eq!(objects(&app).await, vec![key.clone()]);

        // Listed for Alice, and on her page for staff.
        let mine: serde_json::Value = alice_c
            .post(app.url("/api/my_documents"))
            .header("origin", &app.address)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(mine["documents"][0]["name"], "Signed agreement.pdf");
        let page: serde_json::Value = app
            .call("/api/customer_documents", &[("id", &alice.to_string())])
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(page["documents"][0]["id"], doc);

        // Staff share a report back, and keep a note internal.
        let report = pdf("report for alice");
        let alice_id = alice.to_string();
        let shared = upload_ok(
            &app,
            &app.client,
            &[
                ("customer_id", &alice_id),
                ("category", "report"),
                ("visibility", "shared"),
            ],
            "Report.pdf",
            report.clone(),
        )
        .await;
        let internal = upload_ok(
            &app,
            &app.client,
            &[
                ("customer_id", &alice_id),
                ("category", "other"),
                ("visibility", "internal"),
            ],
            "Notes.pdf",
            pdf("internal"),
        )
        .await;
        assert_eq!(
            n(
                &db,
                "SELECT COUNT(*) FROM emails WHERE template = 'document_shared'"
            )
            .await,
            1,
            "one email, for the shared report"
        );
        let mine: serde_json::Value = alice_c
            .post(app.url("/api/my_documents"))
            .header("origin", &app.address)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let names: Vec<&str> = mine["documents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.contains(&"Report.pdf") && !names.contains(&"Notes.pdf"));

        // Alice downloads the report: the same bytes, as an attachment, never sniffed.
        let (status, bytes, headers) = download(&app, &alice_c, shared, store).await;
        assert_eq!(status, 200);
        assert_eq!(sha(&bytes), sha(&report));
        // From the portal or from the store (which keeps the type and disposition set at upload).
        assert_eq!(headers["content-type"], "application/pdf");
        assert!(
            headers["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment; filename=\"Report.pdf\""),
            "{headers:?}"
        );
        if store == Store::Local {
            assert_eq!(headers["x-content-type-options"], "nosniff");
        }
        // Staff download Alice's upload; the access is audited.
        let (status, bytes, _) = download(&app, &app.client, doc, store).await;
        assert_eq!(status, 200);
        assert_eq!(bytes, signed);
        assert_eq!(n(&db, &format!("SELECT COUNT(*) FROM audit_log WHERE action = 'document.downloaded' AND subject_id = '{doc}'")).await, 1);

        // Bob reaches neither; Alice does not reach the internal note; anonymous must sign in.
        for id in [doc, shared, internal] {
            assert_eq!(download(&app, &bob_c, id, store).await.0, 404);
        }
        assert_eq!(download(&app, &alice_c, internal, store).await.0, 404);
        assert_eq!(download(&app, &alice_c, 999_999, store).await.0, 404);
        assert_eq!(
            download(&app, &reqwest::Client::new(), doc, store).await.0,
            401
        );
        let res = bob_c
            .post(app.url("/api/delete_document"))
            .header("origin", &app.address)
            .form(&[("id", doc.to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "Bob cannot delete Alice's document");
        assert_eq!(
            n(
                &db,
                "SELECT COUNT(*) FROM documents WHERE status = 'stored'"
            )
            .await,
            3
        );
        app.stop().await;
    }
);

doc_test!(
    word_and_excel_files_are_accepted_by_their_entries_and_a_browser_form_post_is_redirected_back,
    |b, store| async move {
        let Some(app) = spawn(b, store, &[]).await else {
            return;
        };
        let (_, c) = customer(&app, "Carla Naidoo").await;
        upload_ok(&app, &c, &[("category", "other")], "Form.docx", docx()).await;
        upload_ok(&app, &c, &[("category", "invoice")], "Budget.xlsx", xlsx()).await;
        // A photo from a phone, HEIC by its ftyp brand.
        let mut heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
        heic.extend(vec![7u8; 2000]);
        upload_ok(&app, &c, &[("category", "id")], "IMG_0001.HEIC", heic).await;
        // As a browser without JavaScript: a redirect back to the page with the outcome.
        let form = reqwest::multipart::Form::new()
            .text("return_to", "/documents")
            .text("category", "other")
            .part(
                "file",
                reqwest::multipart::Part::bytes(pdf("browser")).file_name("Scan.pdf"),
            );
        let res = c
            .post(app.url("/documents/upload"))
            .header("origin", &app.address)
            .header("accept", "text/html")
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
        assert_eq!(res.headers()["location"], "/documents?uploaded=1");
        let form = reqwest::multipart::Form::new()
            .text("return_to", "https://evil.example/phish")
            .text("category", "other")
            .part(
                "file",
                reqwest::multipart::Part::bytes(b"<html><script>x</script>".to_vec())
                    .file_name("page.html"),
            );
        let res = c
            .post(app.url("/documents/upload"))
            .header("origin", &app.address)
            .header("accept", "text/html")
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
        assert_eq!(
            res.headers()["location"],
            "/documents?upload=type",
            "refused, and never sent elsewhere"
        );
        // A form from another site is refused before anything is read.
        let form = reqwest::multipart::Form::new()
            .text("category", "other")
            .part(
                "file",
                reqwest::multipart::Part::bytes(pdf("csrf")).file_name("x.pdf"),
            );
        let res = c
            .post(app.url("/documents/upload"))
            .header("origin", "https://evil.example")
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
        assert_eq!(objects(&app).await.len(), 4);
        app.stop().await;
    }
);

doc_test!(
    bad_files_are_refused_with_a_clear_message_and_nothing_is_stored,
    |b, store| async move {
        let Some(app) = spawn(b, store, &[]).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let (_, c) = customer(&app, "Dan Mokoena").await;
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR0000".to_vec();
        let long = format!("{}.pdf", "a".repeat(250));
        let cases: Vec<(&str, Vec<u8>, u16, &str, &str)> = vec![
            ("../../etc/passwd.pdf", pdf("x"), 400, "name", "folder path"),
            ("..\\..\\boot.pdf", pdf("x"), 400, "name", "folder path"),
            ("bad\tname.pdf", pdf("x"), 400, "name", "control characters"),
            // A raw control character other than tab breaks the part's header: refused as malformed.
            (
                "bad\u{7}name.pdf",
                pdf("x"),
                400,
                "form",
                "could not be read",
            ),
            (long.as_str(), pdf("x"), 400, "name", "longer than 200"),
            ("noextension", pdf("x"), 400, "name", "no extension"),
            (
                "picture.pdf",
                png.clone(),
                415,
                "mismatch",
                "content is a PNG image",
            ),
            (
                "report.pdf",
                b"just some text, not a PDF".to_vec(),
                415,
                "type",
                "unknown type",
            ),
            ("empty.pdf", vec![], 400, "empty", "empty"),
            (
                "page.html",
                b"<!DOCTYPE html><html><body>hi</body></html>".to_vec(),
                415,
                "type",
                ".html",
            ),
            (
                "page.pdf",
                b"<!DOCTYPE html><html><body>hi</body></html>".to_vec(),
                415,
                "type",
                "HTML page",
            ),
            (
                "logo.svg",
                b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>".to_vec(),
                415,
                "type",
                ".svg",
            ),
            (
                "logo.png",
                b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"/>".to_vec(),
                415,
                "type",
                "SVG image",
            ),
            ("sheet.docx", xlsx(), 415, "mismatch", "Excel"),
            (
                "archive.docx",
                zip_with(&["notes.txt"]),
                415,
                "mismatch",
                "ZIP archive",
            ),
            (
                "macros.docx",
                zip_with(&[
                    "[Content_Types].xml",
                    "word/document.xml",
                    "word/vbaProject.bin",
                ]),
                415,
                "mismatch",
                "macros",
            ),
        ];
        for (name, content, status, code, says) in cases {
            let res = upload(&app, &c, &[("category", "other")], name, content).await;
            assert_eq!(res.status().as_u16(), status, "{name:?}");
            let body: serde_json::Value = res.json().await.unwrap();
            assert_eq!(body["error"], code, "{name:?}: {body}");
            assert!(
                body["message"].as_str().unwrap().contains(says),
                "{name:?}: {body}"
            );
        }
        // A missing category or a booking of someone else: refused before the file is read.
        let res = upload(&app, &c, &[], "x.pdf", pdf("x")).await;
        assert_eq!(res.status(), 400);
        let res = upload(
            &app,
            &c,
            &[("category", "other"), ("booking_id", "999999")],
            "x.pdf",
            pdf("x"),
        )
        .await;
        assert_eq!(res.status(), 404);
        assert_eq!(n(&db, "SELECT COUNT(*) FROM documents").await, 0, "no row");
        assert!(objects(&app).await.is_empty(), "no object");
        app.stop().await;
    }
);

doc_test!(
    a_file_over_the_limit_is_refused_while_streaming_and_nothing_remains,
    |b, store| async move {
        // 6 MB: on S3 the first 5 MB part is already stored when the limit is passed, so the abort
        // has something to clean.
        let Some(app) = spawn(b, store, &[("STOEP_STORAGE__MAX_UPLOAD_MB", "6")]).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let (_, c) = customer(&app, "Eve Botha").await;
        const TOTAL: u64 = 200 * 1024 * 1024;
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        let chunk = bytes::Bytes::from({
            let mut v = pdf("big");
            v.resize(64 * 1024, b'x');
            v
        });
        let body = futures_util::stream::unfold(0u64, move |done| {
            let chunk = chunk.clone();
            let counter = counter.clone();
            async move {
                if done >= TOTAL {
                    return None;
                }
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                Some((
                    Ok::<_, std::io::Error>(chunk.clone()),
                    done + chunk.len() as u64,
                ))
            }
        });
        let form = reqwest::multipart::Form::new()
            .text("category", "other")
            .part(
                "file",
                reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(body))
                    .file_name("huge.pdf"),
            );
        let res = c
            .post(app.url("/documents/upload"))
            .header("origin", &app.address)
            .multipart(form)
            .send()
            .await;
        let read = sent.load(Ordering::Relaxed);
        assert!(
            read < TOTAL / 4,
            "the body was cut off early, not read to the end ({read} of {TOTAL} bytes produced)"
        );
        match res {
            Ok(res) => {
                assert_eq!(res.status(), 413);
                let body: serde_json::Value = res.json().await.unwrap();
                assert_eq!(body["error"], "too_large");
                assert!(
                    body["message"]
                        .as_str()
                        .unwrap()
                        .contains("larger than 6 MB")
                );
            }
            // The server answers and closes while the client is still sending; some clients then see
            // the closed connection rather than the answer. What matters is below.
            Err(e) => eprintln!("the client saw the connection close instead of the 413: {e}"),
        }
        // A body that says up front it is too large is refused before it is read.
        let res = c
            .post(app.url("/documents/upload"))
            .header("origin", &app.address)
            .header("content-type", "multipart/form-data; boundary=x")
            .header("content-length", (50u64 * 1024 * 1024).to_string())
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                vec![Ok::<_, std::io::Error>(bytes::Bytes::from(vec![0u8; 1024]))],
            )))
            .send()
            .await;
        if let Ok(res) = res {
            assert_eq!(res.status(), 413);
        }
        assert_eq!(n(&db, "SELECT COUNT(*) FROM documents").await, 0);
        assert!(
            objects(&app).await.is_empty(),
            "the aborted upload left nothing"
        );
        // Exactly at the limit is fine.
        let mut at_limit = pdf("limit");
        at_limit.resize(6 * 1024 * 1024, b'y');
        upload_ok(&app, &c, &[("category", "other")], "limit.pdf", at_limit).await;
        app.stop().await;
    }
);

doc_test!(
    unreachable_storage_fails_the_upload_clearly_and_shows_in_integration_health,
    |b, store| async move {
        let Some(app) = spawn(b, store, &[]).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let (_, c) = customer(&app, "Fatima Khan").await;
        app.storage_faults
            .unavailable
            .store(true, Ordering::Relaxed);
        let res = upload(&app, &c, &[("category", "id")], "id.pdf", pdf("id")).await;
        assert_eq!(res.status(), 503);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "unavailable");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("nothing was saved"),
            "{body}"
        );
        assert_eq!(n(&db, "SELECT COUNT(*) FROM documents").await, 0);
        // The probe fails while storage is down: the health area says so.
        app.run_jobs().await;
        let health = domain::ledger::health(&db).await.unwrap();
        let storage = health.iter().find(|h| h.integration == "storage").unwrap();
        assert_ne!(storage.state, "healthy", "{storage:?}");
        assert!(storage.failures_24h >= 1);
        // Back up: the probe succeeds and uploads work again.
        app.storage_faults
            .unavailable
            .store(false, Ordering::Relaxed);
        make_due(&db).await;
        app.run_jobs().await;
        let health = domain::ledger::health(&db).await.unwrap();
        assert_eq!(
            health
                .iter()
                .find(|h| h.integration == "storage")
                .unwrap()
                .state,
            "healthy"
        );
        upload_ok(&app, &c, &[("category", "id")], "id.pdf", pdf("id")).await;
        assert_eq!(objects(&app).await.len(), 1);
        app.stop().await;
    }
);

crate::db_test!(
    an_s3_store_on_a_closed_port_fails_uploads_with_a_clear_message,
    |b| async move {
        // Nothing listens on this port: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let Some(app) = TestApp::spawn_with(
            b,
            &[
                ("STOEP_STORAGE__URL", "s3://nowhere"),
                ("STOEP_STORAGE__OPTIONS__AWS_ENDPOINT", &endpoint),
                ("STOEP_STORAGE__OPTIONS__AWS_ALLOW_HTTP", "true"),
                ("STOEP_STORAGE__OPTIONS__AWS_ACCESS_KEY_ID", "x"),
                ("STOEP_STORAGE__OPTIONS__AWS_SECRET_ACCESS_KEY", "y"),
                ("STOEP_STORAGE__OPTIONS__AWS_REGION", "us-east-1"),
            ],
        )
        .await
        else {
            return;
        };
        let db = app.services.state.db.clone();
        let (_, c) = customer(&app, "Gugu Zulu").await;
        let started = std::time::Instant::now();
        let res = upload(&app, &c, &[("category", "id")], "id.pdf", pdf("id")).await;
        assert_eq!(res.status(), 503);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "fails fast: {:?}",
            started.elapsed()
        );
        let body: serde_json::Value = res.json().await.unwrap();
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("storage is unreachable"),
            "{body}"
        );
        assert_eq!(n(&db, "SELECT COUNT(*) FROM documents").await, 0);
        assert_eq!(
            n(
                &db,
                "SELECT COUNT(*) FROM jobs WHERE kind = 'storage.check'"
            )
            .await,
            1
        );
        app.stop().await;
    }
);

doc_test!(
    deleting_removes_the_object_by_a_job_retried_when_storage_fails,
    |b, store| async move {
        let Some(app) = spawn(b, store, &[]).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let (_, c) = customer(&app, "Hannes Venter").await;
        let doc = upload_ok(&app, &c, &[("category", "other")], "old.pdf", pdf("old")).await;
        let res = c
            .post(app.url("/api/delete_document"))
            .header("origin", &app.address)
            .form(&[("id", doc.to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        // Gone from the lists at once; the object waits for the job.
        let mine: serde_json::Value = c
            .post(app.url("/api/my_documents"))
            .header("origin", &app.address)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(mine["documents"].as_array().unwrap().is_empty());
        assert_eq!(download(&app, &c, doc, store).await.0, 404);
        assert_eq!(objects(&app).await.len(), 1);
        // Storage down: the job fails and is retried later.
        app.storage_faults
            .unavailable
            .store(true, Ordering::Relaxed);
        app.run_jobs().await;
        let row = db::query_one(
            &db,
            "SELECT status, attempts, last_error FROM jobs WHERE kind = 'storage.delete_object'",
            vec![],
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(db::col::<String>(&row, "status").unwrap(), "queued");
        assert_eq!(db::col::<i32>(&row, "attempts").unwrap(), 1);
        assert!(
            db::col::<Option<String>>(&row, "last_error")
                .unwrap()
                .unwrap()
                .contains("storage")
        );
        // Back up: the retry removes the object, then the row.
        app.storage_faults
            .unavailable
            .store(false, Ordering::Relaxed);
        make_due(&db).await;
        app.run_jobs().await;
        assert_eq!(n(&db, "SELECT COUNT(*) FROM jobs WHERE kind = 'storage.delete_object' AND status = 'succeeded'").await, 1);
        assert!(objects(&app).await.is_empty());
        assert_eq!(n(&db, "SELECT COUNT(*) FROM documents").await, 0);
        app.stop().await;
    }
);

doc_test!(
    the_clean_up_removes_orphaned_objects_and_reports_missing_ones,
    |b, store| async move {
        let Some(app) = spawn(b, store, &[]).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let (alice, c) = customer(&app, "Ida Pillay").await;
        let kept = upload_ok(&app, &c, &[("category", "other")], "kept.pdf", pdf("kept")).await;
        let lost = upload_ok(&app, &c, &[("category", "other")], "lost.pdf", pdf("lost")).await;
        let storage = &app.services.state.storage;
        // An object without a row (a crash between storing and recording) ...
        storage
            .put(
                &format!("documents/{alice}/orphan"),
                bytes::Bytes::from_static(b"%PDF-orphan"),
            )
            .await
            .unwrap();
        // ... and a row whose object disappeared.
        let lost_key: String = db::col(
            &db::query_one(
                &db,
                "SELECT object_key FROM documents WHERE id = ?",
                vec![lost.into()],
            )
            .await
            .unwrap()
            .unwrap(),
            "object_key",
        )
        .unwrap();
        storage.delete(&lost_key).await.unwrap();
        // Young objects are left alone (an upload may be recording its row right now).
        let report =
            server::jobs::storage::cleanup(&db, storage, server::jobs::storage::ORPHAN_AGE_MS)
                .await
                .unwrap();
        assert_eq!(report.orphans_removed, 0);
        assert_eq!(objects(&app).await.len(), 2);
        let report = server::jobs::storage::cleanup(&db, storage, 0)
            .await
            .unwrap();
        assert_eq!(report.orphans_removed, 1);
        assert_eq!(report.missing_reported, 1);
        let keys = objects(&app).await;
        assert_eq!(keys.len(), 1);
        assert!(!keys[0].ends_with("orphan"));
        // The missing object waits in manual review for an admin.
        app.run_jobs().await;
        assert_eq!(n(&db, &format!("SELECT COUNT(*) FROM jobs WHERE kind = 'storage.missing_object' AND status = 'manual_review' AND subject_id = '{lost}'")).await, 1);
        // Reported once, however often the clean-up runs.
        let report = server::jobs::storage::cleanup(&db, storage, 0)
            .await
            .unwrap();
        assert_eq!(report, Default::default());
        assert_eq!(download(&app, &c, kept, store).await.0, 200);
        // The hourly schedule enqueues the clean-up once per hour.
        server::jobs::storage::schedule(&db).await.unwrap();
        server::jobs::storage::schedule(&db).await.unwrap();
        assert_eq!(
            n(
                &db,
                "SELECT COUNT(*) FROM jobs WHERE kind = 'storage.cleanup'"
            )
            .await,
            1
        );
        app.run_jobs().await;
        assert_eq!(
            n(
                &db,
                "SELECT COUNT(*) FROM jobs WHERE kind = 'storage.cleanup' AND status = 'succeeded'"
            )
            .await,
            1
        );
        app.stop().await;
    }
);

doc_test!(
    a_request_emails_the_customer_reminds_them_and_is_fulfilled_by_their_upload,
    |b, store| async move {
        let Some(app) = spawn(b, store, &[]).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let (jo, c) = customer(&app, "Jo Adams").await;
        app.sign_in_admin().await;
        // Dates in the business's zone (Africa/Johannesburg by default).
        let day = |offset_days: i64| {
            use slots::chrono::TimeZone;
            slots::Tz::Africa__Johannesburg
                .timestamp_millis_opt(db::now_ms() + offset_days * 86_400_000)
                .unwrap()
                .format("%Y-%m-%d")
                .to_string()
        };
        let (due, soon) = (day(7), day(0));
        let res = app
            .call(
                "/api/request_document",
                &[
                    ("customer_id", &jo.to_string()),
                    ("description", "A copy of your ID"),
                    ("category", "id"),
                    ("due", &due),
                ],
            )
            .await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        // Bad input is refused with a reason.
        let res = app
            .call(
                "/api/request_document",
                &[
                    ("customer_id", &jo.to_string()),
                    ("description", "x"),
                    ("category", "id"),
                    ("due", "2001-01-01"),
                ],
            )
            .await;
        assert_eq!(res.status(), 400);
        let res = app
            .call(
                "/api/request_document",
                &[
                    ("customer_id", "999999"),
                    ("description", "x"),
                    ("category", "id"),
                    ("due", &due),
                ],
            )
            .await;
        assert_eq!(res.status(), 404);
        assert_eq!(
            n(
                &db,
                "SELECT COUNT(*) FROM emails WHERE template = 'document_requested'"
            )
            .await,
            1
        );
        let reminder = db::query_one(
            &db,
            "SELECT run_after FROM jobs WHERE kind = 'documents.request_reminder'",
            vec![],
        )
        .await
        .unwrap()
        .unwrap();
        let run_after: i64 = db::col(&reminder, "run_after").unwrap();
        assert!(
            run_after > db::now_ms() + 4 * 86_400_000,
            "the reminder waits until two days before"
        );
        // Due today: no reminder (its time has passed); a second request for the withdraw test.
        app.call(
            "/api/request_document",
            &[
                ("customer_id", &jo.to_string()),
                ("description", "Signed form"),
                ("category", "agreement"),
                ("due", &soon),
            ],
        )
        .await;
        assert_eq!(
            n(
                &db,
                "SELECT COUNT(*) FROM jobs WHERE kind = 'documents.request_reminder'"
            )
            .await,
            1
        );

        // The customer sees both on their page.
        let mine: serde_json::Value = c
            .post(app.url("/api/my_documents"))
            .header("origin", &app.address)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(mine["requests"].as_array().unwrap().len(), 2);
        let id_request = mine["requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["description"] == "A copy of your ID")
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        let form_request = mine["requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["description"] == "Signed form")
            .unwrap()["id"]
            .as_i64()
            .unwrap();

        // The reminder, when due, emails the customer.
        make_due(&db).await;
        app.run_jobs().await;
        app.run_jobs().await;
        assert_eq!(
            n(
                &db,
                "SELECT COUNT(*) FROM emails WHERE template = 'document_request_reminder'"
            )
            .await,
            1
        );
        let mail = app.mail().await;
        assert!(
            mail.iter()
                .any(|m| m.subject.contains("asks you for a document")),
            "request email delivered"
        );
        assert!(
            mail.iter()
                .any(|m| m.subject.starts_with("Reminder: we still need a document")),
            "reminder delivered"
        );

        // Uploading for the request fulfils it.
        let doc = upload_ok(
            &app,
            &c,
            &[("request_id", &id_request.to_string())],
            "id.jpg",
            b"\xFF\xD8\xFF\xE0 jpeg bytes".to_vec(),
        )
        .await;
        let r = db::query_one(
            &db,
            "SELECT status, document_id FROM document_requests WHERE id = ?",
            vec![id_request.into()],
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(db::col::<String>(&r, "status").unwrap(), "fulfilled");
        assert_eq!(
            db::col::<Option<i64>>(&r, "document_id").unwrap(),
            Some(doc)
        );
        assert_eq!(
            db::col::<String>(
                &db::query_one(
                    &db,
                    "SELECT category FROM documents WHERE id = ?",
                    vec![doc.into()]
                )
                .await
                .unwrap()
                .unwrap(),
                "category"
            )
            .unwrap(),
            "other"
        );
        // A fulfilled request takes no second upload.
        let res = upload(
            &app,
            &c,
            &[("request_id", &id_request.to_string())],
            "again.pdf",
            pdf("again"),
        )
        .await;
        assert_eq!(res.status(), 404);
        // Staff withdraw the other; the customer's page no longer lists it.
        let res = app
            .call(
                "/api/cancel_document_request",
                &[("id", &form_request.to_string())],
            )
            .await;
        assert_eq!(res.status(), 200);
        let mine: serde_json::Value = c
            .post(app.url("/api/my_documents"))
            .header("origin", &app.address)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(mine["requests"].as_array().unwrap().is_empty());
        let page: serde_json::Value = app
            .call("/api/customer_documents", &[("id", &jo.to_string())])
            .await
            .json()
            .await
            .unwrap();
        let statuses: Vec<&str> = page["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["status"].as_str().unwrap())
            .collect();
        assert!(
            statuses.contains(&"fulfilled") && statuses.contains(&"cancelled"),
            "{statuses:?}"
        );
        app.stop().await;
    }
);

doc_test!(
    documents_of_accounts_closed_longer_than_the_retention_period_are_removed,
    |b, store| async move {
        let Some(app) = spawn(b, store, &[]).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let (closed, closed_c) = customer(&app, "Karel Closed").await;
        let (_, open_c) = customer(&app, "Lerato Open").await;
        let (recent, recent_c) = customer(&app, "Mia Recent").await;
        upload_ok(
            &app,
            &closed_c,
            &[("category", "id")],
            "id.pdf",
            pdf("closed"),
        )
        .await;
        upload_ok(
            &app,
            &closed_c,
            &[("category", "other")],
            "form.pdf",
            pdf("closed2"),
        )
        .await;
        let kept = upload_ok(&app, &open_c, &[("category", "id")], "id.pdf", pdf("open")).await;
        upload_ok(
            &app,
            &recent_c,
            &[("category", "id")],
            "id.pdf",
            pdf("recent"),
        )
        .await;
        app.sign_in_admin().await;
        // Without a retention period nothing is removed.
        for (id, days_ago) in [(closed, 40), (recent, 5)] {
            let res = app
                .call(
                    "/api/set_user_active",
                    &[("id", &id.to_string()), ("active", "false")],
                )
                .await;
            assert_eq!(res.status(), 200);
            db::execute(
                &db,
                "UPDATE users SET updated_at = ? WHERE id = ?",
                vec![(db::now_ms() - days_ago * 86_400_000).into(), id.into()],
            )
            .await
            .unwrap();
        }
        assert_eq!(domain::documents::apply_retention(&db).await.unwrap(), 0);
        let res = app
            .call("/api/set_document_retention", &[("days", "nope")])
            .await;
        assert_eq!(res.status(), 400);
        let res = app
            .call("/api/set_document_retention", &[("days", "30")])
            .await;
        assert_eq!(res.status(), 200);
        // The hourly job marks the closed account's documents; their deletion jobs remove them.
        server::jobs::storage::schedule(&db).await.unwrap();
        app.run_jobs().await;
        app.run_jobs().await;
        assert_eq!(
            n(
                &db,
                &format!("SELECT COUNT(*) FROM documents WHERE customer_id = {closed}")
            )
            .await,
            0
        );
        assert_eq!(
            n(
                &db,
                &format!("SELECT COUNT(*) FROM documents WHERE customer_id = {recent}")
            )
            .await,
            1,
            "closed 5 days ago: kept for now"
        );
        assert_eq!(objects(&app).await.len(), 2);
        assert_eq!(
            n(
                &db,
                "SELECT COUNT(*) FROM audit_log WHERE action = 'document.retention_deleted'"
            )
            .await,
            2
        );
        assert_eq!(download(&app, &open_c, kept, store).await.0, 200);
        app.stop().await;
    }
);

doc_test!(
    an_upload_can_be_tied_to_the_customers_own_booking_only,
    |b, store| async move {
        let Some(app) = spawn(b, store, &[]).await else {
            return;
        };
        let db = app.services.state.db.clone();
        let s = crate::bookings::shop(&db).await;
        let (alice, alice_c) = customer(&app, "Nandi Booked").await;
        let (_, bob_c) = customer(&app, "Olu Other").await;
        let st = &app.services.state;
        let booked = domain::booking::create(
            &st.db,
            &st.settings,
            alice,
            s.short,
            Some(s.staff),
            crate::bookings::at(2, 9, 0),
        )
        .await
        .unwrap();
        let booking = booked.id.to_string();
        let doc = upload_ok(
            &app,
            &alice_c,
            &[("category", "other"), ("booking_id", &booking)],
            "intake form.pdf",
            pdf("intake"),
        )
        .await;
        let row = db::query_one(
            &db,
            "SELECT booking_id FROM documents WHERE id = ?",
            vec![doc.into()],
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(
            db::col::<Option<i64>>(&row, "booking_id").unwrap(),
            Some(booked.id)
        );
        let mine: serde_json::Value = alice_c
            .post(app.url("/api/my_documents"))
            .header("origin", &app.address)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(mine["bookings"][0]["id"], booked.id);
        assert!(
            mine["documents"][0]["booking"]
                .as_str()
                .unwrap()
                .contains(" ("),
            "{mine}"
        );
        // Someone else's booking is "not found", and nothing is stored.
        let res = upload(
            &app,
            &bob_c,
            &[("category", "other"), ("booking_id", &booking)],
            "x.pdf",
            pdf("x"),
        )
        .await;
        assert_eq!(res.status(), 404);
        assert_eq!(objects(&app).await.len(), 1);
        app.stop().await;
    }
);
