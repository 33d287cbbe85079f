//! The access matrix: every page route and every server function, called as anonymous,
//! customer A, customer B, staff and admin, must allow or deny exactly as the policy below says.
//! A route or function missing from the policy fails the test, so nothing new ships without a
//! rule. Denials are 401 (not signed in) or 404 (signed in, not allowed: no hint it exists).

use std::collections::BTreeMap;

use crate::db_test;
use crate::support::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    /// Anyone, signed in or not.
    Public,
    /// Any signed-in user (their own data only).
    User,
    /// Staff and admins.
    Staff,
    /// Admins only.
    Admin,
}

/// Server functions by endpoint, with arguments good enough to get past decoding.
type Functions = BTreeMap<&'static str, (Rule, Vec<(&'static str, &'static str)>)>;

fn functions() -> Functions {
    use Rule::*;
    let mut m = BTreeMap::new();
    m.insert("site_info", (Public, vec![]));
    m.insert("privacy_notice", (Public, vec![]));
    m.insert(
        "sign_in",
        (
            Public,
            vec![("email", "x@example.com"), ("password", "not it at all")],
        ),
    );
    m.insert("sign_out", (Public, vec![]));
    m.insert(
        "sign_up",
        (
            Public,
            vec![
                ("name", "X"),
                ("email", "bad"),
                ("password", "x"),
                ("accept_privacy", "on"),
            ],
        ),
    );
    m.insert("verify_email", (Public, vec![("token", "00")]));
    m.insert(
        "request_password_reset",
        (Public, vec![("email", "nobody@example.com")]),
    );
    m.insert(
        "reset_password",
        (Public, vec![("token", "00"), ("new_password", "x")]),
    );
    m.insert("confirm_email_change", (Public, vec![("token", "00")]));
    m.insert("verify_sign_in_code", (Public, vec![("code", "000000")]));
    m.insert(
        "accept_invitation",
        (Public, vec![("token", "00"), ("new_password", "x")]),
    );
    m.insert("get_security", (User, vec![]));
    m.insert("begin_totp_setup", (User, vec![]));
    m.insert("confirm_totp_setup", (User, vec![("code", "000000")]));
    m.insert(
        "regenerate_recovery_codes",
        (User, vec![("password", "wrong")]),
    );
    m.insert("disable_totp", (User, vec![("password", "wrong")]));
    m.insert(
        "invite_staff",
        (Admin, vec![("name", "New Staff"), ("email", "bad")]),
    );
    m.insert("list_services", (Public, vec![]));
    m.insert("service_slots", (Public, vec![("service_id", "999999")]));
    m.insert(
        "quote_booking",
        (
            Public,
            vec![
                ("service_id", "999999"),
                ("staff_id", "1"),
                ("start_ms", "0"),
            ],
        ),
    );
    m.insert(
        "book",
        (
            User,
            vec![
                ("service_id", "999999"),
                ("staff_id", "1"),
                ("start_ms", "0"),
            ],
        ),
    );
    m.insert("my_bookings", (User, vec![]));
    m.insert("get_booking", (User, vec![("id", "999999")]));
    m.insert("cancel_booking", (User, vec![("id", "999999")]));
    m.insert(
        "reschedule_booking",
        (User, vec![("id", "999999"), ("start_ms", "0")]),
    );
    m.insert(
        "mark_booking",
        (Staff, vec![("id", "999999"), ("status", "completed")]),
    );
    m.insert("staff_schedule", (Staff, vec![]));
    m.insert("pay_deposit", (User, vec![("booking_id", "999999")]));
    m.insert("payment_return", (User, vec![("booking_id", "999999")]));
    m.insert("booking_payments", (User, vec![("booking_id", "999999")]));
    m.insert("my_payments", (User, vec![]));
    m.insert("get_payment", (User, vec![("id", "999999")]));
    m.insert(
        "refund_payment",
        (
            Staff,
            vec![("payment_id", "999999"), ("amount", "1"), ("reason", "x")],
        ),
    );
    m.insert("admin_payments", (Admin, vec![]));
    m.insert("send_payment_link", (Staff, vec![("booking_id", "999999")]));
    m.insert("my_messages", (User, vec![]));
    m.insert("customer_dashboard", (User, vec![]));
    m.insert("customer_extras", (Staff, vec![("customer_id", "999999")]));
    m.insert(
        "add_customer_note",
        (Staff, vec![("customer_id", "999999"), ("body", "x")]),
    );
    m.insert("admin_today", (Admin, vec![]));
    m.insert("request_account_deletion", (User, vec![]));
    m.insert("deletion_requests", (Admin, vec![]));
    m.insert(
        "confirm_account_deletion",
        (Admin, vec![("user_id", "999999")]),
    );
    m.insert("integration_map", (Admin, vec![]));
    m.insert("test_integration", (Admin, vec![("key", "calendar")]));
    m.insert("runbook", (Admin, vec![("name", "payments")]));
    m.insert(
        "set_standin_fault",
        (Admin, vec![("target", "crm"), ("fault", "normal")]),
    );
    m.insert("new_calendar_feed", (User, vec![]));
    m.insert("my_documents", (User, vec![]));
    m.insert("list_customers", (Staff, vec![]));
    m.insert("customer_documents", (Staff, vec![("id", "999999")]));
    m.insert("delete_document", (User, vec![("id", "999999")]));
    m.insert(
        "set_document_shared",
        (Staff, vec![("id", "999999"), ("shared", "true")]),
    );
    m.insert(
        "request_document",
        (
            Staff,
            vec![
                ("customer_id", "999999"),
                ("description", "A copy of your ID"),
                ("category", "id"),
                ("due", "2099-01-01"),
            ],
        ),
    );
    m.insert("cancel_document_request", (Staff, vec![("id", "999999")]));
    m.insert("set_document_retention", (Admin, vec![("days", "")]));
    m.insert("get_setup", (Admin, vec![]));
    m.insert(
        "save_service",
        (
            Admin,
            vec![
                ("name", ""),
                ("duration_min", "0"),
                ("price", "x"),
                ("deposit_kind", "none"),
            ],
        ),
    );
    m.insert(
        "set_service_staff",
        (
            Admin,
            vec![
                ("service_id", "999999"),
                ("staff_id", "999999"),
                ("offered", "true"),
            ],
        ),
    );
    m.insert("save_hours", (Admin, vec![("staff_id", "999999")]));
    m.insert(
        "save_business",
        (
            Admin,
            vec![
                ("time_zone", "Nowhere/Nope"),
                ("currency", "ZAR"),
                ("vat_percent", "15"),
                ("free_change_hours", "24"),
                ("hold_minutes", "15"),
                ("reminder_hours", "24"),
            ],
        ),
    );
    m.insert("admin_bookings", (Admin, vec![]));
    m.insert(
        "add_exception",
        (
            Admin,
            vec![
                ("staff_id", "999999"),
                ("kind", "day_off"),
                ("date", "2027-01-04"),
            ],
        ),
    );
    m.insert("remove_exception", (Admin, vec![("id", "999999")]));
    m.insert("get_profile", (User, vec![]));
    m.insert("update_profile", (User, vec![("name", "Same Name")]));
    m.insert(
        "change_password",
        (User, vec![("current", "wrong"), ("new_password", "x")]),
    );
    m.insert(
        "request_email_change",
        (
            User,
            vec![("password", "wrong"), ("new_email", "n@example.com")],
        ),
    );
    m.insert("integration_health", (Admin, vec![]));
    m.insert(
        "list_jobs",
        (Admin, vec![("page", "1"), ("status", "failed")]),
    );
    m.insert("get_job", (Admin, vec![("id", "999999")]));
    m.insert("retry_job", (Admin, vec![("id", "999999")]));
    m.insert("retry_jobs", (Admin, vec![("integration", "crm")]));
    m.insert(
        "close_job",
        (
            Admin,
            vec![("id", "999999"), ("cancel", "false"), ("note", "n")],
        ),
    );
    m.insert("list_emails", (Admin, vec![]));
    m.insert("resend_email", (Admin, vec![("id", "999999")]));
    m.insert("caught_mail", (Admin, vec![]));
    m.insert("send_test_email", (Admin, vec![]));
    m.insert("standin_state", (Admin, vec![]));
    m.insert("set_smtp_mode", (Admin, vec![("mode", "accept")]));
    m.insert("audit_log", (Admin, vec![]));
    m.insert("access_report", (Admin, vec![]));
    m.insert("list_people", (Admin, vec![]));
    m.insert(
        "set_user_active",
        (Admin, vec![("id", "999999"), ("active", "true")]),
    );
    m.insert(
        "correct_user_email",
        (Admin, vec![("id", "999999"), ("email", "c@example.com")]),
    );
    m
}

/// Page routes.
fn pages() -> BTreeMap<&'static str, Rule> {
    use Rule::*;
    BTreeMap::from([
        ("/", Public),
        ("/signin", Public),
        ("/signup", Public),
        ("/signup/done", Public),
        ("/verify-email", Public),
        ("/privacy", Public),
        ("/forgot-password", Public),
        ("/forgot-password/sent", Public),
        ("/reset-password", Public),
        ("/confirm-email-change", Public),
        ("/account", User),
        ("/account/security", User),
        ("/signin/verify", Public),
        ("/accept-invitation", Public),
        ("/admin", Admin),
        ("/admin/integrations", Admin),
        ("/admin/integrations/jobs/:id", Admin),
        ("/admin/integrations/map", Admin),
        ("/admin/integrations/runbooks/:name", Admin),
        ("/admin/mail", Admin),
        ("/admin/audit", Admin),
        ("/admin/access", Admin),
        ("/admin/standins", Admin),
        ("/admin/people", Admin),
        ("/admin/setup", Admin),
        ("/admin/bookings", Admin),
        ("/admin/payments", Admin),
        ("/payments", User),
        ("/payments/:id", User),
        ("/bookings/:id/paid", User),
        ("/book", Public),
        ("/book/:service", Public),
        ("/book/:service/confirm", Public),
        ("/bookings", User),
        ("/dashboard", User),
        ("/bookings/:id", User),
        ("/bookings/:id/move", User),
        ("/staff", Staff),
        ("/documents", User),
        ("/customers", Staff),
        ("/customers/:id", Staff),
    ])
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Anonymous,
    CustomerA,
    CustomerB,
    Staff,
    Admin,
}

fn allowed(rule: Rule, who: Who) -> bool {
    match rule {
        Rule::Public => true,
        Rule::User => who != Who::Anonymous,
        Rule::Staff => matches!(who, Who::Staff | Who::Admin),
        Rule::Admin => who == Who::Admin,
    }
}

fn denial(who: Who) -> u16 {
    if who == Who::Anonymous { 401 } else { 404 }
}

async fn client_for(app: &TestApp, who: Who) -> reqwest::Client {
    let c = reqwest::Client::builder()
        .cookie_provider(recording_jar())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let email = match who {
        Who::Anonymous => return c,
        Who::CustomerA => "a@example.com",
        Who::CustomerB => "b@example.com",
        Who::Staff => "staff@example.com",
        Who::Admin => "admin@example.com",
    };
    if matches!(who, Who::Staff | Who::Admin) {
        sign_in_with_code(app, &c, email, TEST_PASSWORD, TEST_TOTP_SECRET).await;
        return c;
    }
    let res = c
        .post(app.url(&sign_in_path()))
        .header("origin", &app.address)
        .form(&[("email", email), ("password", TEST_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_success() || res.status().is_redirection(),
        "{who:?} signs in: {}",
        res.status()
    );
    c
}

db_test!(
    every_route_and_server_function_allows_or_denies_as_the_policy_says,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = &app.services.state.db;
        let pw = || secrecy::SecretString::from(TEST_PASSWORD.to_owned());
        let (admin_id, _) = domain::auth::create_or_promote_admin(
            db,
            "admin@example.com",
            "Admin",
            pw(),
            Some(TEST_TOTP_SECRET),
            false,
        )
        .await
        .unwrap();
        let hash = domain::auth::hash_password(pw()).await.unwrap();
        for (email, name, role) in [
            ("a@example.com", "Customer A", "customer"),
            ("b@example.com", "Customer B", "customer"),
            ("staff@example.com", "Staff S", "staff"),
        ] {
            let totp: Option<&str> = (role == "staff").then_some(TEST_TOTP_SECRET);
            domain::db::execute(db, "INSERT INTO users (email, name, role, status, password_hash, email_verified_at, totp_secret, created_at, updated_at) VALUES (?, ?, ?, 'active', ?, 1, ?, 1, 1)", vec![email.into(), name.into(), role.into(), hash.clone().into(), totp.into()]).await.unwrap();
        }

        // Every registered server function has a rule, and every rule a function.
        let policy = functions();
        let registered: Vec<String> = leptos::server_fn::axum::server_fn_paths()
            .map(|(p, _)| p.to_owned())
            .collect();
        for path in &registered {
            let endpoint = path.trim_start_matches("/api/");
            assert!(
                policy.contains_key(endpoint),
                "server function {path} has no access rule in tests/integration/access.rs"
            );
        }
        for endpoint in policy.keys() {
            assert!(
                registered.iter().any(|p| p == &format!("/api/{endpoint}")),
                "rule for a function that does not exist: {endpoint}"
            );
        }
        // Every page route has a rule.
        let page_rules = pages();
        let routes: Vec<String> = leptos_axum::generate_route_list(app::App)
            .into_iter()
            .map(|r| r.path().to_owned())
            .collect();
        for route in &routes {
            let key = route
                .replace("{id}", ":id")
                .replace("{service}", ":service")
                .replace("{name}", ":name");
            assert!(
                page_rules.contains_key(key.as_str()),
                "page {route} has no access rule in tests/integration/access.rs"
            );
        }

        let mut signed_in = Vec::new();
        for who in [
            Who::Anonymous,
            Who::CustomerA,
            Who::CustomerB,
            Who::Staff,
            Who::Admin,
        ] {
            let c = client_for(&app, who).await;
            signed_in.push((who, c.clone()));
            for (endpoint, (rule, args)) in &policy {
                if *endpoint == "sign_out" || *endpoint == "sign_in" {
                    continue; // they change the client's own session; covered in accounts.rs
                }
                let res = c
                    .post(app.url(&format!("/api/{endpoint}")))
                    .header("origin", &app.address)
                    .form(args)
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                if allowed(*rule, who) {
                    // Allowed: the function runs (it may still say 400/404/409 about the made-up ids).
                    assert!(
                        status != 401
                            && status != 403
                            && (status != 404 || args.iter().any(|(_, v)| *v == "999999")),
                        "{who:?} should reach {endpoint}, got {status}"
                    );
                } else {
                    assert_eq!(status, denial(who), "{who:?} must not reach {endpoint}");
                }
            }
            for (route, rule) in &page_rules {
                let path = route
                    .replace(":id", "1")
                    .replace(":service", "999999")
                    .replace(":name", "payments");
                let res = c
                    .get(app.url(&path))
                    .header("accept", "text/html")
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                if allowed(*rule, who) {
                    assert!(
                        status == 200 || (status == 404 && route.contains(':')),
                        "{who:?} should see {path}, got {status}"
                    );
                } else {
                    assert_eq!(status, denial(who), "{who:?} must not see {path}");
                    let body = res.text().await.unwrap();
                    let own = match who {
                        Who::CustomerA => "a@example.com",
                        Who::CustomerB => "b@example.com",
                        Who::Staff => "staff@example.com",
                        _ => "",
                    };
                    let others = [
                        "admin@example.com",
                        "a@example.com",
                        "b@example.com",
                        "staff@example.com",
                    ];
                    assert!(
                        !others
                            .iter()
                            .filter(|o| **o != own)
                            .any(|o| body.contains(o)),
                        "{who:?} got someone's data on {path}"
                    );
                }
            }
        }
        document_routes_allow_or_deny_as_the_policy_says(&app, &signed_in).await;

        // Nothing an outsider sent changed anything: no job was retried or closed, nobody deactivated.
        assert_eq!(
            count(db, "SELECT COUNT(*) FROM users WHERE status <> 'active'").await,
            0
        );
        let by_others = format!(
            "SELECT COUNT(*) FROM audit_log WHERE (action LIKE 'job.%' OR action LIKE 'standin.%' OR action LIKE 'auth.email_corrected' OR action LIKE 'email.%') AND (actor_user_id IS NULL OR actor_user_id <> {admin_id})"
        );
        assert_eq!(count(db, &by_others).await, 0);
        app.stop().await;
    }
);

/// The streaming document routes (not server functions): uploads and downloads for every role.
/// Customer A's own upload, a report staff shared with A, and an internal note about A.
async fn document_routes_allow_or_deny_as_the_policy_says(
    app: &TestApp,
    clients: &[(Who, reqwest::Client)],
) {
    use crate::documents::{pdf, upload};
    let db = &app.services.state.db;
    let a_id: i64 = domain::db::col(
        &domain::db::query_one(
            db,
            "SELECT id FROM users WHERE email = 'a@example.com'",
            vec![],
        )
        .await
        .unwrap()
        .unwrap(),
        "id",
    )
    .unwrap();
    let a = a_id.to_string();
    let client = |w: Who| clients.iter().find(|(x, _)| *x == w).unwrap().1.clone();

    // Uploads: anonymous 401; a customer always uploads into their own space (a customer id
    // they send is ignored); staff and admins into an existing customer's space only.
    let res = upload(
        app,
        &client(Who::Anonymous),
        &[("category", "other")],
        "x.pdf",
        pdf("anon"),
    )
    .await;
    assert_eq!(res.status(), 401, "anonymous upload");
    let id_of = |v: serde_json::Value| v["id"].as_i64().unwrap();
    let res = upload(
        app,
        &client(Who::CustomerA),
        &[("category", "agreement")],
        "mine.pdf",
        pdf("a"),
    )
    .await;
    assert_eq!(res.status(), 201);
    let own = id_of(res.json().await.unwrap());
    let res = upload(
        app,
        &client(Who::CustomerB),
        &[("category", "other"), ("customer_id", &a)],
        "b.pdf",
        pdf("b"),
    )
    .await;
    assert_eq!(res.status(), 201);
    let b_doc = id_of(res.json().await.unwrap());
    let owner: i64 = domain::db::col(
        &domain::db::query_one(
            db,
            "SELECT customer_id FROM documents WHERE id = ?",
            vec![b_doc.into()],
        )
        .await
        .unwrap()
        .unwrap(),
        "customer_id",
    )
    .unwrap();
    assert_ne!(owner, a_id, "B's upload went into B's own space, not A's");
    for who in [Who::Staff, Who::Admin] {
        let res = upload(
            app,
            &client(who),
            &[("category", "report"), ("customer_id", "999999")],
            "r.pdf",
            pdf("r"),
        )
        .await;
        assert_eq!(
            res.status(),
            404,
            "{who:?} uploads for a customer who does not exist"
        );
    }
    let res = upload(
        app,
        &client(Who::Staff),
        &[
            ("category", "report"),
            ("customer_id", &a),
            ("visibility", "shared"),
        ],
        "report.pdf",
        pdf("s"),
    )
    .await;
    assert_eq!(res.status(), 201);
    let shared = id_of(res.json().await.unwrap());
    let res = upload(
        app,
        &client(Who::Admin),
        &[
            ("category", "other"),
            ("customer_id", &a),
            ("visibility", "internal"),
        ],
        "note.pdf",
        pdf("n"),
    )
    .await;
    assert_eq!(res.status(), 201);
    let internal = id_of(res.json().await.unwrap());

    // Downloads.
    let expect = |doc: i64, who: Who| -> u16 {
        match who {
            Who::Anonymous => 401,
            Who::Staff | Who::Admin => 200,
            Who::CustomerA if doc == own || doc == shared => 200,
            Who::CustomerB if doc == b_doc => 200,
            _ => 404,
        }
    };
    for doc in [own, shared, internal, b_doc, 999_999] {
        for (who, c) in clients {
            let res = c
                .get(app.url(&format!("/documents/{doc}/download")))
                .send()
                .await
                .unwrap();
            let want = if doc == 999_999 && *who != Who::Anonymous {
                404
            } else {
                expect(doc, *who)
            };
            assert_eq!(
                res.status().as_u16(),
                want,
                "{who:?} downloading document {doc}"
            );
            if want == 404 {
                let body = res.text().await.unwrap();
                assert!(!body.contains("%PDF"), "{who:?} got content of {doc}");
            }
        }
    }
    // Deleting and sharing with real ids: only the right people.
    for (who, doc, endpoint, extra) in [
        (Who::CustomerB, own, "delete_document", None),
        (Who::CustomerA, shared, "delete_document", None),
        (Who::CustomerA, internal, "delete_document", None),
        (
            Who::CustomerA,
            internal,
            "set_document_shared",
            Some(("shared", "true")),
        ),
        (Who::CustomerB, own, "customer_documents", None),
    ] {
        let mut form = vec![("id", doc.to_string())];
        if let Some((k, v)) = extra {
            form.push((k, v.to_string()));
        }
        if endpoint == "customer_documents" {
            form = vec![("id", a.clone())];
        }
        let res = client(who)
            .post(app.url(&format!("/api/{endpoint}")))
            .header("origin", &app.address)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{who:?} {endpoint} {doc}");
    }
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM documents WHERE status = 'stored'").await,
        4,
        "nothing was deleted by someone not allowed to"
    );
    assert_eq!(
        count(
            db,
            &format!(
                "SELECT COUNT(*) FROM documents WHERE id = {internal} AND visibility = 'internal'"
            )
        )
        .await,
        1
    );
}
