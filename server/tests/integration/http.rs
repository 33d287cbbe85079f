//! Operations endpoints, error pages, hardening headers and the cross-site check.

use crate::db_test;
use crate::support::*;

db_test!(health_readiness_and_metrics_answer, |b| async move {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let c = reqwest::Client::new();
    let res = c.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-request-id"));
    assert_eq!(
        c.get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ready"
    );
    domain::ledger::enqueue(
        &app.services.state.db,
        domain::ledger::NewJob {
            kind: "email.send",
            integration: domain::ledger::Integration::Email,
            subject: domain::ledger::Subject::new("email", 1),
            idempotency_key: "metrics-1".into(),
            payload: serde_json::json!({"email_id": 1}),
            run_after_ms: Some(i64::MAX / 2),
        },
    )
    .await
    .unwrap();
    let body = c
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains("stoep_http_requests_total{method=\"GET\",status=\"2xx\"}"),
        "{body}"
    );
    assert!(body.contains("stoep_http_request_duration_seconds_bucket"));
    assert!(
        body.contains("stoep_jobs{integration=\"email\",status=\"queued\"} 1"),
        "{body}"
    );
    app.stop().await;
});

db_test!(
    unknown_pages_get_the_portals_404_and_headers_are_hardened,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let res = reqwest::get(app.url("/no/such/page")).await.unwrap();
        assert_eq!(res.status(), 404);
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        assert_eq!(res.headers()["x-frame-options"], "DENY");
        assert!(
            res.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        assert_eq!(res.headers()["cache-control"], "no-store");
        let body = res.text().await.unwrap();
        assert!(
            body.contains("couldn&#x27;t find that page")
                || body.contains("couldn't find that page"),
            "{body}"
        );
        let res = reqwest::get(app.url("/")).await.unwrap();
        assert_eq!(res.status(), 200);
        let body = res.text().await.unwrap();
        assert!(body.contains("Welcome to"));
        assert!(
            body.contains("/pkg/stoep.js"),
            "the hydration script is referenced"
        );
        app.stop().await;
    }
);

db_test!(
    state_changing_requests_from_another_site_are_refused,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let c = reqwest::Client::new();
        let res = c
            .post(app.url(&sign_in_path()))
            .header("origin", "https://evil.example")
            .form(&[("email", "a@b.co"), ("password", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
        let res = c
            .post(app.url(&sign_in_path()))
            .header("sec-fetch-site", "cross-site")
            .form(&[("email", "a@b.co"), ("password", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
        let res = c
            .post(app.url(&sign_in_path()))
            .header("origin", &app.address)
            .form(&[("email", "a@b.co"), ("password", "wrong password here")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "same origin reaches the function");
        assert_eq!(
            count(
                &app.services.state.db,
                "SELECT COUNT(*) FROM audit_log WHERE action = 'auth.signin_failed'"
            )
            .await,
            1,
            "only the same-origin attempt ran"
        );
        app.stop().await;
    }
);

db_test!(admin_pages_render_for_admins, |b| async move {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    app.sign_in_admin().await;
    for path in [
        "/admin",
        "/admin/integrations",
        "/admin/mail",
        "/admin/audit",
        "/admin/standins",
    ] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    let res = app
        .client
        .get(app.url("/admin/integrations?status=failed&integration=email&page=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.stop().await;
});

/// `cargo leptos build --release --precompress` writes brotli and gzip copies next to the wasm,
/// JS and CSS; the portal sends the smallest copy the browser accepts, with the right encoding,
/// and the file itself to a client that accepts neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precompressed_assets_are_sent_to_browsers_that_accept_them() {
    let site = tempfile::tempdir().unwrap();
    let pkg = site.path().join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let raw = b"\0asm\x01\0\0\0 the module itself".to_vec();
    std::fs::write(pkg.join("stoep.wasm"), &raw).unwrap();
    std::fs::write(pkg.join("stoep.wasm.br"), b"brotli bytes").unwrap();
    std::fs::write(pkg.join("stoep.wasm.gz"), b"gzip bytes").unwrap();
    let root = site.path().display().to_string();
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, &[("STOEP_SITE_ROOT", &root)]).await
    else {
        return;
    };
    let c = reqwest::Client::new();
    let get = |enc: Option<&'static str>| {
        let mut req = c.get(app.url("/pkg/stoep.wasm"));
        if let Some(enc) = enc {
            req = req.header("accept-encoding", enc);
        }
        req.send()
    };
    let res = get(Some("gzip, deflate, br")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-encoding"], "br");
    assert_eq!(res.headers()["content-type"], "application/wasm");
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"brotli bytes");
    let res = get(Some("gzip")).await.unwrap();
    assert_eq!(res.headers()["content-encoding"], "gzip");
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"gzip bytes");
    let res = get(None).await.unwrap();
    assert!(res.headers().get("content-encoding").is_none());
    assert_eq!(res.bytes().await.unwrap().as_ref(), raw.as_slice());
    app.stop().await;
}
