//! Sign-up, email verification, sign-in and sign-out through the server functions, posted as
//! plain HTML forms (JavaScript off) and as the hydrated page calls them.

use app::api::auth::{SignOut, SignUp, VerifyEmail};
use app::api::site::GetSiteInfo;

use crate::db_test;
use crate::support::*;

fn token_from(text: &str) -> String {
    let start = text.find("token=").expect("a link with a token") + 6;
    text[start..].chars().take_while(|c| c.is_ascii_hexdigit()).collect()
}

async fn sign_up(app: &TestApp, email: &str) -> reqwest::Response {
    app.post_form(&path_of::<SignUp>(), &[
        ("name", "Thandi Nkosi"),
        ("email", email),
        ("phone", "+27 82 555 0100"),
        ("password", TEST_PASSWORD),
        ("accept_privacy", "on"),
    ])
    .await
}

db_test!(a_customer_signs_up_verifies_by_email_signs_in_and_out, |b| async move {
    let Some(app) = TestApp::spawn(b).await else { return };
    let res = sign_up(&app, "Thandi@Example.com").await;
    assert!(res.status().is_redirection());
    assert_eq!(res.headers()["location"], "/signup/done");
    app.run_jobs().await;
    let mail = app.mail().await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].to, vec!["thandi@example.com".to_string()]);
    let token = token_from(&mail[0].text);
    assert_eq!(token.len(), 64);
    // The stored email no longer holds the one-time link.
    assert_eq!(count(&app.services.state.db, "SELECT COUNT(*) FROM emails WHERE body_text LIKE '%token=%'").await, 0);

    // Signed in before verifying: allowed, but marked unverified.
    let res = app.post_form(&sign_in_path(), &[("email", "thandi@example.com"), ("password", TEST_PASSWORD)]).await;
    assert_eq!(res.headers()["location"], "/account");
    let info: app::model::SiteInfo = app.call(&path_of::<GetSiteInfo>(), &[]).await.json().await.unwrap();
    assert!(!info.user.unwrap().email_verified);

    let res = app.post_form(&path_of::<VerifyEmail>(), &[("token", &token)]).await;
    assert_eq!(res.headers()["location"], "/signin?verified=1");
    let info: app::model::SiteInfo = app.call(&path_of::<GetSiteInfo>(), &[]).await.json().await.unwrap();
    assert!(info.user.unwrap().email_verified);
    // The token works once.
    let res = app.call(&path_of::<VerifyEmail>(), &[("token", &token)]).await;
    assert_eq!(res.status(), 400);
    // A welcome email follows verification.
    app.run_jobs().await;
    assert_eq!(app.mail().await.len(), 2);

    app.post_form(&path_of::<SignOut>(), &[]).await;
    let info: app::model::SiteInfo = app.call(&path_of::<GetSiteInfo>(), &[]).await.json().await.unwrap();
    assert!(info.user.is_none());
    assert_eq!(count(&app.services.state.db, "SELECT COUNT(*) FROM sessions WHERE user_id IS NOT NULL").await, 0);
    app.stop().await;
});

db_test!(sign_up_does_not_reveal_whether_an_account_exists, |b| async move {
    let Some(app) = TestApp::spawn(b).await else { return };
    let first = sign_up(&app, "taken@example.com").await;
    let again = sign_up(&app, "taken@example.com").await;
    assert_eq!(first.status(), again.status());
    assert_eq!(first.headers()["location"], again.headers()["location"]);
    assert_eq!(count(&app.services.state.db, "SELECT COUNT(*) FROM users").await, 1);
    app.stop().await;
});

db_test!(sign_in_gives_one_answer_for_unknown_emails_and_wrong_passwords_and_throttles, |b| async move {
    let Some(app) = TestApp::spawn(b).await else { return };
    app::ssr::auth::create_or_promote_admin(&app.services.state.db, "known@example.com", "Known", secrecy::SecretString::from(TEST_PASSWORD.to_owned())).await.unwrap();
    let unknown = app.call(&sign_in_path(), &[("email", "nobody@example.com"), ("password", "whatever it is")]).await;
    let wrong = app.call(&sign_in_path(), &[("email", "known@example.com"), ("password", "whatever it is")]).await;
    assert_eq!(unknown.status(), 400);
    assert_eq!(wrong.status(), 400);
    assert_eq!(unknown.text().await.unwrap(), wrong.text().await.unwrap());
    for _ in 0..9 {
        app.call(&sign_in_path(), &[("email", "known@example.com"), ("password", "still wrong")]).await;
    }
    let blocked = app.call(&sign_in_path(), &[("email", "Known@Example.com"), ("password", TEST_PASSWORD)]).await;
    assert_eq!(blocked.status(), 429, "even the right password waits after 10 failures");
    let audit = app::ssr::audit::recent(&app.services.state.db, Some("auth.signin_failed"), 100).await.unwrap();
    assert_eq!(audit.len(), 11, "one unknown-email failure and ten for the known account; the blocked attempt adds none");
    assert!(audit.iter().all(|a| !a.detail.contains("known@example.com")), "the audit keeps no email in the throttle key");
    app.stop().await;
});

db_test!(weak_passwords_and_missing_consent_are_refused_with_a_reason, |b| async move {
    let Some(app) = TestApp::spawn(b).await else { return };
    let res = app.call(&path_of::<SignUp>(), &[("name", "A"), ("email", "a@example.com"), ("password", "password1"), ("accept_privacy", "on")]).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("too easy to guess"));
    let res = app.call(&path_of::<SignUp>(), &[("name", "A"), ("email", "a@example.com"), ("password", TEST_PASSWORD)]).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("privacy notice"));
    let res = app.call(&path_of::<SignUp>(), &[("name", "A"), ("email", "not-an-email"), ("password", TEST_PASSWORD), ("accept_privacy", "on")]).await;
    assert!(res.text().await.unwrap().contains("name@example.com"));
    assert_eq!(count(&app.services.state.db, "SELECT COUNT(*) FROM users").await, 0, "nothing half-saved");
    app.stop().await;
});

db_test!(the_session_id_changes_at_sign_in_and_admin_pages_refuse_others, |b| async move {
    let Some(app) = TestApp::spawn(b).await else { return };
    // A session exists before sign-in (a failed attempt leaves none; visit a page that writes one).
    sign_up(&app, "cust@example.com").await;
    let before: Vec<String> = app::ssr::db::query(&app.services.state.db, "SELECT id FROM sessions", vec![]).await.unwrap().iter().map(|r| app::ssr::db::col(r, "id").unwrap()).collect();
    let res = app.post_form(&sign_in_path(), &[("email", "cust@example.com"), ("password", TEST_PASSWORD)]).await;
    assert!(res.status().is_redirection());
    let after: Vec<String> = app::ssr::db::query(&app.services.state.db, "SELECT id FROM sessions WHERE user_id IS NOT NULL", vec![]).await.unwrap().iter().map(|r| app::ssr::db::col(r, "id").unwrap()).collect();
    assert_eq!(after.len(), 1);
    assert!(!before.contains(&after[0]), "a new session id after sign-in");
    // A customer asking for an admin function gets 404, as if it did not exist.
    let res = app.call(&path_of::<app::api::admin::GetIntegrationHealth>(), &[]).await;
    assert_eq!(res.status(), 404);
    let anon = reqwest::Client::new();
    let res = anon.post(app.url(&path_of::<app::api::admin::GetIntegrationHealth>())).send().await.unwrap();
    assert_eq!(res.status(), 401);
    app.stop().await;
});
