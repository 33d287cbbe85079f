//! Sign-up, email verification, sign-in and sign-out through the server functions, posted as
//! plain HTML forms (JavaScript off) and as the hydrated page calls them.

use app::api::auth::{SignOut, SignUp, VerifyEmail};
use app::api::site::GetSiteInfo;

use crate::db_test;
use crate::support::*;

fn token_from(text: &str) -> String {
    let start = text.find("token=").expect("a link with a token") + 6;
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect()
}

async fn sign_up(app: &TestApp, email: &str) -> reqwest::Response {
    app.post_form(
        &path_of::<SignUp>(),
        &[
            ("name", "Thandi Nkosi"),
            ("email", email),
            ("phone", "+27 82 555 0100"),
            ("password", TEST_PASSWORD),
            ("accept_privacy", "on"),
        ],
    )
    .await
}

db_test!(
    a_customer_signs_up_verifies_by_email_signs_in_and_out,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
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
        assert_eq!(
            count(
                &app.services.state.db,
                "SELECT COUNT(*) FROM emails WHERE body_text LIKE '%token=%'"
            )
            .await,
            0
        );

        // Signed in before verifying: allowed, but marked unverified.
        let res = app
            .post_form(
                &sign_in_path(),
                &[("email", "thandi@example.com"), ("password", TEST_PASSWORD)],
            )
            .await;
        assert_eq!(res.headers()["location"], "/account");
        let info: model::SiteInfo = app
            .call(&path_of::<GetSiteInfo>(), &[])
            .await
            .json()
            .await
            .unwrap();
        assert!(!info.user.unwrap().email_verified);

        let res = app
            .post_form(&path_of::<VerifyEmail>(), &[("token", &token)])
            .await;
        assert_eq!(res.headers()["location"], "/signin?verified=1");
        let info: model::SiteInfo = app
            .call(&path_of::<GetSiteInfo>(), &[])
            .await
            .json()
            .await
            .unwrap();
        assert!(info.user.unwrap().email_verified);
        // The token works once.
        let res = app
            .call(&path_of::<VerifyEmail>(), &[("token", &token)])
            .await;
        assert_eq!(res.status(), 400);
        // A welcome email follows verification.
        app.run_jobs().await;
        assert_eq!(app.mail().await.len(), 2);

        app.post_form(&path_of::<SignOut>(), &[]).await;
        let info: model::SiteInfo = app
            .call(&path_of::<GetSiteInfo>(), &[])
            .await
            .json()
            .await
            .unwrap();
        assert!(info.user.is_none());
        assert_eq!(
            count(
                &app.services.state.db,
                "SELECT COUNT(*) FROM sessions WHERE user_id IS NOT NULL"
            )
            .await,
            0
        );
        app.stop().await;
    }
);

db_test!(
    sign_up_does_not_reveal_whether_an_account_exists,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let first = sign_up(&app, "taken@example.com").await;
        let again = sign_up(&app, "taken@example.com").await;
        assert_eq!(first.status(), again.status());
        assert_eq!(first.headers()["location"], again.headers()["location"]);
        assert_eq!(
            count(&app.services.state.db, "SELECT COUNT(*) FROM users").await,
            1
        );
        app.stop().await;
    }
);

db_test!(
    sign_in_gives_one_answer_for_unknown_emails_and_wrong_passwords_and_throttles,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        domain::auth::create_or_promote_admin(
            &app.services.state.db,
            "known@example.com",
            "Known",
            secrecy::SecretString::from(TEST_PASSWORD.to_owned()),
            None,
            false,
        )
        .await
        .unwrap();
        let unknown = app
            .call(
                &sign_in_path(),
                &[
                    ("email", "nobody@example.com"),
                    ("password", "whatever it is"),
                ],
            )
            .await;
        let wrong = app
            .call(
                &sign_in_path(),
                &[
                    ("email", "known@example.com"),
                    ("password", "whatever it is"),
                ],
            )
            .await;
        assert_eq!(unknown.status(), 400);
        assert_eq!(wrong.status(), 400);
        assert_eq!(unknown.text().await.unwrap(), wrong.text().await.unwrap());
        for _ in 0..9 {
            app.call(
                &sign_in_path(),
                &[("email", "known@example.com"), ("password", "still wrong")],
            )
            .await;
        }
        let blocked = app
            .call(
                &sign_in_path(),
                &[("email", "Known@Example.com"), ("password", TEST_PASSWORD)],
            )
            .await;
        assert_eq!(
            blocked.status(),
            429,
            "even the right password waits after 10 failures"
        );
        let audit = domain::audit::recent(&app.services.state.db, Some("auth.signin_failed"), 100)
            .await
            .unwrap();
        assert_eq!(
            audit.len(),
            11,
            "one unknown-email failure and ten for the known account; the blocked attempt adds none"
        );
        assert!(
            audit
                .iter()
                .all(|a| !a.detail.contains("known@example.com")),
            "the audit keeps no email in the throttle key"
        );
        app.stop().await;
    }
);

db_test!(
    weak_passwords_and_missing_consent_are_refused_with_a_reason,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let res = app
            .call(
                &path_of::<SignUp>(),
                &[
                    ("name", "A"),
                    ("email", "a@example.com"),
                    ("password", "password1"),
                    ("accept_privacy", "on"),
                ],
            )
            .await;
        assert_eq!(res.status(), 400);
        assert!(res.text().await.unwrap().contains("too easy to guess"));
        let res = app
            .call(
                &path_of::<SignUp>(),
                &[
                    ("name", "A"),
                    ("email", "a@example.com"),
                    ("password", TEST_PASSWORD),
                ],
            )
            .await;
        assert_eq!(res.status(), 400);
        assert!(res.text().await.unwrap().contains("privacy notice"));
        let res = app
            .call(
                &path_of::<SignUp>(),
                &[
                    ("name", "A"),
                    ("email", "not-an-email"),
                    ("password", TEST_PASSWORD),
                    ("accept_privacy", "on"),
                ],
            )
            .await;
        assert!(res.text().await.unwrap().contains("name@example.com"));
        assert_eq!(
            count(&app.services.state.db, "SELECT COUNT(*) FROM users").await,
            0,
            "nothing half-saved"
        );
        app.stop().await;
    }
);

db_test!(
    the_session_id_changes_at_sign_in_and_admin_pages_refuse_others,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        // A session exists before sign-in (a failed attempt leaves none; visit a page that writes one).
        sign_up(&app, "cust@example.com").await;
        let before: Vec<String> =
            domain::db::query(&app.services.state.db, "SELECT id FROM sessions", vec![])
                .await
                .unwrap()
                .iter()
                .map(|r| domain::db::col(r, "id").unwrap())
                .collect();
        let res = app
            .post_form(
                &sign_in_path(),
                &[("email", "cust@example.com"), ("password", TEST_PASSWORD)],
            )
            .await;
        assert!(res.status().is_redirection());
        let after: Vec<String> = domain::db::query(
            &app.services.state.db,
            "SELECT id FROM sessions WHERE user_id IS NOT NULL",
            vec![],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| domain::db::col(r, "id").unwrap())
        .collect();
        assert_eq!(after.len(), 1);
        assert!(
            !before.contains(&after[0]),
            "a new session id after sign-in"
        );
        // A customer asking for an admin function gets 404, as if it did not exist.
        let res = app
            .call(&path_of::<app::api::admin::GetIntegrationHealth>(), &[])
            .await;
        assert_eq!(res.status(), 404);
        let anon = reqwest::Client::new();
        let res = anon
            .post(app.url(&path_of::<app::api::admin::GetIntegrationHealth>()))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        app.stop().await;
    }
);

async fn customer(app: &TestApp, email: &str) -> i64 {
    let res = sign_up(app, email).await;
    assert!(res.status().is_redirection());
    domain::auth::find_user_by_email(&app.services.state.db, email)
        .await
        .unwrap()
        .unwrap()
        .id
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_provider(recording_jar())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn signed_in(app: &TestApp, c: &reqwest::Client, email: &str, password: &str) -> bool {
    let res = c
        .post(app.url(&sign_in_path()))
        .header("origin", &app.address)
        .form(&[("email", email), ("password", password)])
        .send()
        .await
        .unwrap();
    res.status().is_success() || res.status().is_redirection()
}

async fn who(app: &TestApp, c: &reqwest::Client) -> Option<String> {
    let info: model::SiteInfo = c
        .post(app.url(&path_of::<GetSiteInfo>()))
        .header("origin", &app.address)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    info.user.map(|u| u.email)
}

async fn reset_tokens(app: &TestApp, to: &str) -> Vec<String> {
    app.run_jobs().await;
    app.mail()
        .await
        .into_iter()
        .filter(|m| m.to == vec![to.to_string()] && m.subject.contains("Reset"))
        .map(|m| token_from(&m.text))
        .collect()
}

db_test!(
    reset_links_work_once_expire_and_are_replaced_by_newer_ones,
    |b| async move {
        use app::api::account::{RequestPasswordReset, ResetPassword};
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        customer(&app, "reset@example.com").await;
        let phone = client();
        assert!(signed_in(&app, &phone, "reset@example.com", TEST_PASSWORD).await);

        let known = app
            .post_form(
                &path_of::<RequestPasswordReset>(),
                &[("email", "reset@example.com")],
            )
            .await;
        let unknown = app
            .post_form(
                &path_of::<RequestPasswordReset>(),
                &[("email", "nobody@example.com")],
            )
            .await;
        assert_eq!(
            known.headers()["location"],
            unknown.headers()["location"],
            "the same answer either way"
        );
        let first = reset_tokens(&app, "reset@example.com").await;
        assert_eq!(first.len(), 1);
        app.post_form(
            &path_of::<RequestPasswordReset>(),
            &[("email", "reset@example.com")],
        )
        .await;
        let tokens = reset_tokens(&app, "reset@example.com").await;
        assert_eq!(tokens.len(), 2);
        let (old, newer) = (&tokens[1], &tokens[0]);
        assert_ne!(old, newer);

        let new_pw = "a different copper kettle 2027";
        let res = app
            .call(
                &path_of::<ResetPassword>(),
                &[("token", old), ("new_password", new_pw)],
            )
            .await;
        assert_eq!(res.status(), 400, "a newer link voids the older one");
        let res = app
            .call(
                &path_of::<ResetPassword>(),
                &[("token", newer), ("new_password", "password")],
            )
            .await;
        assert_eq!(res.status(), 400, "weak passwords are refused");
        let res = app
            .post_form(
                &path_of::<ResetPassword>(),
                &[("token", newer), ("new_password", new_pw)],
            )
            .await;
        assert_eq!(
            res.headers()["location"],
            "/signin?reset=1",
            "the weak attempt did not use up the link"
        );
        let res = app
            .call(
                &path_of::<ResetPassword>(),
                &[
                    ("token", newer),
                    ("new_password", "yet another kettle phrase 99"),
                ],
            )
            .await;
        assert_eq!(res.status(), 400, "single use");

        assert_eq!(
            who(&app, &phone).await,
            None,
            "the old session died with the password change"
        );
        assert!(!signed_in(&app, &client(), "reset@example.com", TEST_PASSWORD).await);
        assert!(signed_in(&app, &client(), "reset@example.com", new_pw).await);

        // Expiry: a link past its hour does not work.
        app.post_form(
            &path_of::<RequestPasswordReset>(),
            &[("email", "reset@example.com")],
        )
        .await;
        let latest = reset_tokens(&app, "reset@example.com").await.remove(0);
        domain::db::execute(&app.services.state.db, "UPDATE user_tokens SET expires_at = ? WHERE purpose = 'reset_password' AND used_at IS NULL", vec![(domain::db::now_ms() - 1).into()]).await.unwrap();
        let res = app
            .call(
                &path_of::<ResetPassword>(),
                &[
                    ("token", &latest),
                    ("new_password", "yet another kettle phrase 99"),
                ],
            )
            .await;
        assert_eq!(res.status(), 400, "expired");
        app.stop().await;
    }
);

db_test!(
    changing_the_password_ends_the_other_sessions,
    |b| async move {
        use app::api::account::ChangePassword;
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        customer(&app, "two@example.com").await;
        let (laptop, phone) = (client(), client());
        assert!(signed_in(&app, &laptop, "two@example.com", TEST_PASSWORD).await);
        assert!(signed_in(&app, &phone, "two@example.com", TEST_PASSWORD).await);
        let res = laptop
            .post(app.url(&path_of::<ChangePassword>()))
            .header("origin", &app.address)
            .form(&[
                ("current", "wrong"),
                ("new_password", "a different copper kettle 2027"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        let res = laptop
            .post(app.url(&path_of::<ChangePassword>()))
            .header("origin", &app.address)
            .form(&[
                ("current", TEST_PASSWORD),
                ("new_password", "a different copper kettle 2027"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(
            who(&app, &laptop).await.as_deref(),
            Some("two@example.com"),
            "this session goes on"
        );
        assert_eq!(who(&app, &phone).await, None, "the other one ended");
        app.run_jobs().await;
        assert!(
            app.mail()
                .await
                .iter()
                .any(|m| m.subject.contains("password was changed"))
        );
        app.stop().await;
    }
);

db_test!(
    a_deactivated_user_is_signed_out_on_their_next_request,
    |b| async move {
        use app::api::admin::SetUserActive;
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let id = customer(&app, "gone@example.com").await;
        let theirs = client();
        assert!(signed_in(&app, &theirs, "gone@example.com", TEST_PASSWORD).await);
        app.sign_in_admin().await;
        let res = app
            .call(
                &path_of::<SetUserActive>(),
                &[("id", &id.to_string()), ("active", "false")],
            )
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(who(&app, &theirs).await, None);
        assert!(
            !signed_in(&app, &client(), "gone@example.com", TEST_PASSWORD).await,
            "cannot sign in again"
        );
        let audit = domain::audit::recent(&app.services.state.db, Some("auth.deactivated"), 10)
            .await
            .unwrap();
        assert_eq!(audit.len(), 1);
        app.stop().await;
    }
);

db_test!(
    an_email_change_is_confirmed_at_the_new_address_and_noticed_at_the_old,
    |b| async move {
        use app::api::account::{ConfirmEmailChange, RequestEmailChange};
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let id = customer(&app, "old@example.com").await;
        let c = client();
        assert!(signed_in(&app, &c, "old@example.com", TEST_PASSWORD).await);
        let res = c
            .post(app.url(&path_of::<RequestEmailChange>()))
            .header("origin", &app.address)
            .form(&[
                ("password", TEST_PASSWORD),
                ("new_email", "New@Example.com"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        app.run_jobs().await;
        let mail = app.mail().await;
        let confirm = mail
            .iter()
            .find(|m| m.to == vec!["new@example.com".to_string()])
            .expect("a link to the new address");
        assert!(
            mail.iter()
                .any(|m| m.to == vec!["old@example.com".to_string()]
                    && m.subject.contains("changing")),
            "a notice to the old address"
        );
        let token = token_from(&confirm.text);
        let res = app
            .post_form(&path_of::<ConfirmEmailChange>(), &[("token", &token)])
            .await;
        assert_eq!(res.headers()["location"], "/account?email_changed=1");
        let user = domain::auth::find_user(&app.services.state.db, id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user.email, "new@example.com");
        assert_eq!(
            count(&app.services.state.db, "SELECT COUNT(*) FROM users").await,
            1,
            "the same account, not a second one"
        );
        app.stop().await;
    }
);

db_test!(
    staff_are_invited_set_up_two_step_verification_and_sign_in_with_codes,
    |b| async move {
        use app::api::account::AcceptInvitation;
        use app::api::admin::InviteStaff;
        use app::api::auth::VerifySignInCode;
        use app::api::security::{BeginTotpSetup, ConfirmTotpSetup, TotpSetup};
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        app.sign_in_admin().await;
        let res = app
            .call(
                &path_of::<InviteStaff>(),
                &[("name", "Sipho Dlamini"), ("email", "sipho@example.com")],
            )
            .await;
        assert_eq!(res.status(), 200);
        app.run_jobs().await;
        let invite = app
            .mail()
            .await
            .into_iter()
            .find(|m| m.to == vec!["sipho@example.com".to_string()])
            .expect("an invitation");
        let token = token_from(&invite.text);
        let res = app
            .post_form(
                &path_of::<AcceptInvitation>(),
                &[
                    ("token", &token),
                    ("new_password", "sipho's long walk to the stoep"),
                ],
            )
            .await;
        assert_eq!(res.headers()["location"], "/signin?invited=1");

        // Staff without a second factor may sign in but reach nothing until they set it up.
        let staff = client();
        assert!(
            signed_in(
                &app,
                &staff,
                "sipho@example.com",
                "sipho's long walk to the stoep"
            )
            .await
        );
        let res = staff
            .post(app.url(&path_of::<app::api::booking::MyBookings>()))
            .header("origin", &app.address)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
        let setup: TotpSetup = staff
            .post(app.url(&path_of::<BeginTotpSetup>()))
            .header("origin", &app.address)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(setup.otpauth_uri.starts_with("otpauth://totp/"));
        let res = staff
            .post(app.url(&path_of::<ConfirmTotpSetup>()))
            .header("origin", &app.address)
            .form(&[("code", "000000")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "a wrong code does not turn it on");
        let codes: Vec<String> = staff
            .post(app.url(&path_of::<ConfirmTotpSetup>()))
            .header("origin", &app.address)
            .form(&[("code", totp_now(&setup.secret, 0).as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(codes.len(), 10);
        let res = staff
            .post(app.url(&path_of::<app::api::booking::MyBookings>()))
            .header("origin", &app.address)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);

        // Signing in now takes a code; the code just used cannot be replayed; a later one works.
        let phone = client();
        let res = phone
            .post(app.url(&sign_in_path()))
            .header("origin", &app.address)
            .header("accept", "text/html")
            .header("referer", app.url("/signin"))
            .form(&[
                ("email", "sipho@example.com"),
                ("password", "sipho's long walk to the stoep"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["location"], "/signin/verify");
        assert_eq!(
            who(&app, &phone).await,
            None,
            "not signed in before the code"
        );
        let replay = phone
            .post(app.url(&path_of::<VerifySignInCode>()))
            .header("origin", &app.address)
            .form(&[("code", totp_now(&setup.secret, 0).as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(replay.status(), 400, "a code works once");
        let ok = phone
            .post(app.url(&path_of::<VerifySignInCode>()))
            .header("origin", &app.address)
            .form(&[("code", totp_now(&setup.secret, 1).as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(
            who(&app, &phone).await.as_deref(),
            Some("sipho@example.com")
        );

        // A recovery code works once.
        let laptop = client();
        laptop
            .post(app.url(&sign_in_path()))
            .header("origin", &app.address)
            .form(&[
                ("email", "sipho@example.com"),
                ("password", "sipho's long walk to the stoep"),
            ])
            .send()
            .await
            .unwrap();
        let res = laptop
            .post(app.url(&path_of::<VerifySignInCode>()))
            .header("origin", &app.address)
            .form(&[("code", codes[0].to_uppercase().as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "recovery codes ignore case");
        let again = client();
        again
            .post(app.url(&sign_in_path()))
            .header("origin", &app.address)
            .form(&[
                ("email", "sipho@example.com"),
                ("password", "sipho's long walk to the stoep"),
            ])
            .send()
            .await
            .unwrap();
        let res = again
            .post(app.url(&path_of::<VerifySignInCode>()))
            .header("origin", &app.address)
            .form(&[("code", codes[0].as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        // Five wrong codes end the attempt.
        for _ in 0..5 {
            again
                .post(app.url(&path_of::<VerifySignInCode>()))
                .header("origin", &app.address)
                .form(&[("code", "123456")])
                .send()
                .await
                .unwrap();
        }
        let res = again
            .post(app.url(&path_of::<VerifySignInCode>()))
            .header("origin", &app.address)
            .form(&[("code", codes[1].as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            400,
            "even a good code fails after five wrong ones"
        );
        assert!(res.text().await.unwrap().contains("sign in again"));
        app.stop().await;
    }
);

db_test!(
    a_hash_below_todays_parameters_is_upgraded_at_the_next_sign_in,
    |b| async move {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let weak = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(4096, 1, 1, None).unwrap(),
        )
        .hash_password(
            TEST_PASSWORD.as_bytes(),
            &SaltString::encode_b64(b"0123456789abcdef").unwrap(),
        )
        .unwrap()
        .to_string();
        let db = &app.services.state.db;
        domain::db::execute(db, "INSERT INTO users (email, name, role, status, password_hash, created_at, updated_at) VALUES ('old@example.com', 'Old', 'customer', 'active', ?, 1, 1)", vec![weak.clone().into()]).await.unwrap();
        assert!(signed_in(&app, &client(), "old@example.com", TEST_PASSWORD).await);
        let now: String = domain::db::col(
            &domain::db::query_one(
                db,
                "SELECT password_hash FROM users WHERE email = 'old@example.com'",
                vec![],
            )
            .await
            .unwrap()
            .unwrap(),
            "password_hash",
        )
        .unwrap();
        assert_ne!(now, weak);
        assert!(now.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{now}");
        assert!(
            signed_in(&app, &client(), "old@example.com", TEST_PASSWORD).await,
            "the new hash verifies"
        );
        app.stop().await;
    }
);

db_test!(
    a_bootstrap_password_works_once_and_expires,
    |b| async move {
        use app::api::account::ChangePassword;
        use app::api::admin::GetIntegrationHealth;
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = &app.services.state.db;
        let first = "generated one time pass 4e7Q";
        domain::auth::create_or_promote_admin(
            db,
            "boot@example.com",
            "Boot",
            secrecy::SecretString::from(first.to_owned()),
            None,
            true,
        )
        .await
        .unwrap();
        let c = client();
        let res = c
            .post(app.url(&sign_in_path()))
            .header("origin", &app.address)
            .header("accept", "text/html")
            .header("referer", app.url("/signin"))
            .form(&[("email", "boot@example.com"), ("password", first)])
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.headers()["location"],
            "/account",
            "sent to choose a password"
        );
        let res = c
            .post(app.url(&path_of::<GetIntegrationHealth>()))
            .header("origin", &app.address)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            403,
            "nothing else until the password is changed"
        );
        assert!(res.text().await.unwrap().contains("PasswordChangeRequired"));
        let res = c
            .post(app.url(&path_of::<ChangePassword>()))
            .header("origin", &app.address)
            .form(&[
                ("current", first),
                ("new_password", "the admin's own long passphrase"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let res = c
            .post(app.url(&path_of::<GetIntegrationHealth>()))
            .header("origin", &app.address)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "next: two-step verification");
        assert!(res.text().await.unwrap().contains("SecondFactorRequired"));
        assert!(
            !signed_in(&app, &client(), "boot@example.com", first).await,
            "the one-time password is gone"
        );

        // An unused one-time password stops working after a day.
        domain::auth::create_or_promote_admin(
            db,
            "late@example.com",
            "Late",
            secrecy::SecretString::from(first.to_owned()),
            None,
            true,
        )
        .await
        .unwrap();
        domain::db::execute(
            db,
            "UPDATE users SET password_expires_at = ? WHERE email = 'late@example.com'",
            vec![(domain::db::now_ms() - 1).into()],
        )
        .await
        .unwrap();
        assert!(!signed_in(&app, &client(), "late@example.com", first).await);
        app.stop().await;
    }
);

db_test!(
    activity_moves_the_idle_timeout_and_an_idle_session_ends,
    |b| async move {
        use domain::db;
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let dbc = app.services.state.db.clone();
        app.sign_in_admin().await;
        let me = || async {
            let v: serde_json::Value = app
                .call(&path_of::<GetSiteInfo>(), &[])
                .await
                .json()
                .await
                .unwrap();
            v["user"].is_object()
        };
        assert!(me().await, "signed in");
        let expiry = || async {
            let r = db::query_one(
                &dbc,
                "SELECT expires_at, data FROM sessions WHERE user_id IS NOT NULL",
                vec![],
            )
            .await
            .unwrap()
            .unwrap();
            (
                db::col::<i64>(&r, "expires_at").unwrap(),
                db::col::<String>(&r, "data").unwrap(),
            )
        };
        // 29 idle minutes later (the stored expiry is a minute away, last seen long ago), a
        // request moves the expiry a full idle period ahead.
        let (_, data) = expiry().await;
        let mut data: serde_json::Value = serde_json::from_str(&data).unwrap();
        data["seen"] = serde_json::json!(1);
        let soon = db::now_ms() + 60_000;
        db::execute(
            &dbc,
            "UPDATE sessions SET expires_at = ?, data = ?",
            vec![soon.into(), data.to_string().into()],
        )
        .await
        .unwrap();
        assert!(me().await);
        let (moved, _) = expiry().await;
        let idle = domain::auth::IDLE_TIMEOUT_MINUTES * 60_000;
        assert!(
            moved > db::now_ms() + idle - 10_000,
            "the expiry moved with the activity"
        );
        // Requests within the minute write nothing.
        let writes_before = expiry().await;
        assert!(me().await);
        assert_eq!(expiry().await, writes_before, "at most one write a minute");
        // An idle session (expiry passed) is over.
        db::execute(
            &dbc,
            "UPDATE sessions SET expires_at = ?",
            vec![(db::now_ms() - 1).into()],
        )
        .await
        .unwrap();
        assert!(!me().await, "signed out after the idle timeout");
        app.stop().await;
    }
);
