//! The security suite: a foreign origin is refused on every state-changing endpoint, pages carry
//! a nonce-based Content-Security-Policy that the scripts match, headers on each kind of
//! response, oversized and malformed bodies, and mass assignment.

use crate::db_test;
use crate::support::*;

db_test!(
    every_state_changing_endpoint_refuses_a_foreign_origin,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        app.sign_in_admin().await;
        let paths: Vec<String> = leptos::server_fn::axum::server_fn_paths()
            .map(|(p, _)| p.to_owned())
            .collect();
        assert!(
            paths.len() > 50,
            "every server function is covered ({})",
            paths.len()
        );
        for path in paths
            .iter()
            .map(String::as_str)
            .chain(["/account/export", "/admin/payments.csv"])
        {
            for (origin, site) in [
                ("https://evil.example", "cross-site"),
                ("null", "cross-site"),
            ] {
                let res = app
                    .client
                    .post(app.url(path))
                    .header("origin", origin)
                    .header("sec-fetch-site", site)
                    .form(&[("x", "1")])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 403, "{path} from {origin}");
            }
        }
        // Nothing happened: no job, no audit entry of an action.
        let jobs = count(&app.services.state.db, "SELECT COUNT(*) FROM jobs").await;
        assert_eq!(jobs, 0);
        app.stop().await;
    }
);

db_test!(
    pages_carry_a_nonce_policy_and_every_script_has_the_nonce,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        for path in ["/", "/signin", "/book", "/no-such-page"] {
            let res = app.client.get(app.url(path)).send().await.unwrap();
            let csp = res.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .to_owned();
            assert_eq!(res.headers()["x-content-type-options"], "nosniff");
            assert_eq!(res.headers()["cache-control"], "no-store");
            assert!(
                res.headers()["referrer-policy"]
                    .to_str()
                    .unwrap()
                    .contains("strict-origin")
            );
            let nonce = csp
                .split("'nonce-")
                .nth(1)
                .and_then(|s| s.split('\'').next())
                .unwrap_or_else(|| panic!("{path}: no nonce in {csp}"))
                .to_owned();
            assert!(
                csp.contains("frame-ancestors 'none'")
                    && csp.contains("object-src 'none'")
                    && csp.contains("'strict-dynamic'")
            );
            assert!(!csp.contains("unsafe-inline"));
            let html = res.text().await.unwrap();
            let scripts = html.matches("<script").count();
            assert!(scripts > 0, "{path}");
            assert!(
                html.matches(&format!("nonce=\"{nonce}\"")).count() >= scripts,
                "{path}: every script carries the nonce"
            );
            // A fresh nonce per response.
            let again = app.client.get(app.url(path)).send().await.unwrap();
            assert_ne!(
                again.headers()["content-security-policy"].to_str().unwrap(),
                csp
            );
        }
        // Other kinds of responses: JSON from a server function, static files, health.
        let res = app.call("/api/site_info", &[]).await;
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        assert!(
            res.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        let res = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(res.headers()["x-frame-options"], "DENY");
        app.stop().await;
    }
);

db_test!(
    oversized_and_malformed_bodies_are_refused_and_extra_fields_are_ignored,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let big = "x".repeat(200 * 1024);
        let res = app
            .call(
                "/api/sign_in",
                &[("email", big.as_str()), ("password", "p")],
            )
            .await;
        assert_eq!(res.status(), 413, "refused before it is read");
        // (A fresh client: the server closed the connection it refused to read.)
        let res = reqwest::Client::new()
            .post(app.url("/api/sign_in"))
            .header("origin", &app.address)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("%%%&&&=")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        let res = reqwest::Client::new()
            .post(app.url("/webhooks/stripe"))
            .body(vec![b'{'; 300 * 1024])
            .send()
            .await
            .unwrap();
        assert!(
            res.status() == 413 || res.status() == 400,
            "{}",
            res.status()
        );
        // Mass assignment: a sign-up that also says role=admin makes a customer.
        let res = reqwest::Client::new()
            .post(app.url("/api/sign_up"))
            .header("origin", &app.address)
            .form(&[
                ("name", "Mallory"),
                ("email", "mallory@example.com"),
                ("password", "a long and unusual passphrase 93"),
                ("accept_privacy", "on"),
                ("role", "admin"),
                ("status", "active"),
            ])
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_success() || res.status().is_redirection(),
            "{}",
            res.status()
        );
        let role = count(
            &app.services.state.db,
            "SELECT COUNT(*) FROM users WHERE email = 'mallory@example.com' AND role = 'customer'",
        )
        .await;
        assert_eq!(role, 1, "the extra fields were ignored");
        app.stop().await;
    }
);

db_test!(
    uploads_holds_and_webhooks_are_rate_limited_per_address,
    |b| async move {
        let Some(app) = TestApp::spawn_with(
            b,
            &[
                ("STOEP_LIMITS__UPLOADS_PER_HOUR", "2"),
                ("STOEP_LIMITS__HOLDS_PER_HOUR", "3"),
                ("STOEP_LIMITS__WEBHOOKS_PER_MINUTE", "4"),
            ],
        )
        .await
        else {
            return;
        };
        let c = reqwest::Client::new();
        let post = |path: &'static str, limit: usize| {
            let (c, url, origin) = (c.clone(), app.url(path), app.address.clone());
            async move {
                let mut statuses = Vec::new();
                for _ in 0..=limit {
                    let res = c
                        .post(&url)
                        .header("origin", &origin)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body("x=1")
                        .send()
                        .await
                        .unwrap();
                    statuses.push((
                        res.status().as_u16(),
                        res.headers().get("retry-after").is_some(),
                    ));
                }
                statuses
            }
        };
        for (path, limit) in [
            ("/documents/upload", 2),
            ("/api/book", 3),
            ("/webhooks/stripe", 4),
            ("/webhooks/crm", 4),
        ] {
            let statuses = post(path, limit).await;
            let (last, earlier) = statuses.split_last().unwrap();
            assert!(
                earlier.iter().all(|(s, _)| *s != 429),
                "{path}: under the limit the route answers itself: {statuses:?}"
            );
            assert_eq!(
                *last,
                (429, true),
                "{path}: one over the limit is refused with Retry-After"
            );
        }
        // Each route counts on its own, and sign-in is not affected by them.
        let res = app
            .call(
                &sign_in_path(),
                &[
                    ("email", "nobody@example.com"),
                    ("password", "wrong password here"),
                ],
            )
            .await;
        assert_ne!(res.status(), 429);
        app.stop().await;
    }
);
