//! Transactional email over real SMTP to the local mail catcher (an SMTP server on 127.0.0.1):
//! headers, both bodies, attachments, once per idempotency key, outages, refusals.

use domain::db::{self, col};
use domain::email::{self as mail, Attachment};
use standins::controls::SmtpMode;

use crate::db_test;
use crate::support::*;

async fn queue(app: &TestApp, to: &str, key: &str, with_attachment: bool) -> i64 {
    let s = &app.services.state.settings;
    let mut message = mail::templates::welcome(s, "Thandi <b>Nkosi</b>");
    if with_attachment {
        message.attachment = Some(Attachment {
            filename: "booking.ics".into(),
            content_type: "text/calendar; method=REQUEST; charset=utf-8".into(),
            body: "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n".into(),
        });
    }
    mail::enqueue(&app.services.state.db, s, None, to, message, key)
        .await
        .unwrap()
        .expect("new email")
}

db_test!(
    a_message_is_delivered_over_smtp_with_headers_bodies_and_attachment,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        queue(&app, "thandi@example.com", "welcome:1", true).await;
        assert_eq!(app.run_jobs().await, 1);
        let mail = app.mail().await;
        assert_eq!(mail.len(), 1);
        let m = &mail[0];
        assert_eq!(m.to, vec!["thandi@example.com".to_string()]);
        assert_eq!(m.from, "noreply@stoep.localhost");
        assert_eq!(m.subject, "Welcome to Stoep Demo Studio");
        assert!(
            m.text.contains("Hi Thandi <b>Nkosi</b>,"),
            "plain text keeps the name as typed"
        );
        let html = m.html.clone().unwrap();
        assert!(
            html.contains("Hi Thandi &lt;b&gt;Nkosi&lt;/b&gt;,"),
            "HTML escapes it"
        );
        assert!(
            html.contains(&format!("{}/", app.services.state.settings.public_url)),
            "links are absolute"
        );
        assert_eq!(m.attachments, vec!["booking.ics".to_string()]);
        let raw = String::from_utf8(
            standins::mailbox::read_raw(&app.mail_dir(), &m.id)
                .await
                .unwrap(),
        )
        .unwrap();
        assert!(raw.contains("Message-ID: <"), "{raw}");
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("text/calendar"));
        let status: String = col(
            &db::query_one(&app.services.state.db, "SELECT status FROM emails", vec![])
                .await
                .unwrap()
                .unwrap(),
            "status",
        )
        .unwrap();
        assert_eq!(status, "sent");
        app.stop().await;
    }
);

db_test!(
    one_message_per_idempotency_key_even_when_the_job_runs_twice,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let s = app.services.state.settings.clone();
        queue(&app, "once@example.com", "confirm:booking:9", false).await;
        assert!(
            mail::enqueue(
                &app.services.state.db,
                &s,
                None,
                "once@example.com",
                mail::templates::welcome(&s, "X"),
                "confirm:booking:9"
            )
            .await
            .unwrap()
            .is_none()
        );
        app.run_jobs().await;
        // Run the same job again, as after a lost lease.
        db::execute(
            &app.services.state.db,
            "UPDATE jobs SET status = 'queued', run_after = 0",
            vec![],
        )
        .await
        .unwrap();
        app.run_jobs().await;
        assert_eq!(app.mail().await.len(), 1);
        assert_eq!(
            count(
                &app.services.state.db,
                "SELECT COUNT(*) FROM jobs WHERE status = 'succeeded'"
            )
            .await,
            1
        );
        app.stop().await;
    }
);

db_test!(
    an_smtp_outage_loses_nothing_and_duplicates_nothing,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        app.services
            .embedded
            .controls
            .set_smtp_mode(SmtpMode::Unavailable);
        for i in 0..5 {
            queue(
                &app,
                &format!("c{i}@example.com"),
                &format!("outage:{i}"),
                false,
            )
            .await;
        }
        app.run_jobs().await;
        assert!(app.mail().await.is_empty());
        let db = &app.services.state.db;
        assert_eq!(count(db, "SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND attempts = 1 AND last_error LIKE '%421%'").await, 5);
        let health = domain::ledger::health(db).await.unwrap();
        let email = health.iter().find(|h| h.integration == "email").unwrap();
        assert_ne!(email.state, "healthy");
        assert_eq!(email.queue_depth, 5, "the backlog is visible");
        // The relay comes back; the retries are due.
        app.services
            .embedded
            .controls
            .set_smtp_mode(SmtpMode::Accept);
        db::execute(
            db,
            "UPDATE jobs SET run_after = 0 WHERE status = 'queued'",
            vec![],
        )
        .await
        .unwrap();
        app.run_jobs().await;
        let mut to: Vec<String> = app.mail().await.into_iter().flat_map(|m| m.to).collect();
        to.sort();
        assert_eq!(
            to,
            (0..5)
                .map(|i| format!("c{i}@example.com"))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            count(db, "SELECT COUNT(*) FROM emails WHERE status = 'sent'").await,
            5
        );
        app.stop().await;
    }
);

db_test!(
    a_refused_address_goes_to_manual_review_and_resends_after_a_fix,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let id = queue(&app, "someone@nowhere.invalid", "refused:1", false).await;
        app.run_jobs().await;
        let db = &app.services.state.db;
        let r = db::query_one(
            db,
            "SELECT status, last_error FROM jobs WHERE kind = 'email.send'",
            vec![],
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(col::<String>(&r, "status").unwrap(), "manual_review");
        assert!(
            col::<String>(&r, "last_error").unwrap().contains("550"),
            "the server's reply is kept"
        );
        let reply: Option<String> = col(
            &db::query_one(
                db,
                "SELECT smtp_reply FROM emails WHERE id = ?",
                vec![id.into()],
            )
            .await
            .unwrap()
            .unwrap(),
            "smtp_reply",
        )
        .unwrap();
        assert!(reply.unwrap().contains("550"));
        assert!(app.mail().await.is_empty());
        app.stop().await;
    }
);

db_test!(
    header_injection_through_names_and_subjects_is_neutralised,
    |b| async move {
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let s = app.services.state.settings.clone();
        let mut m = mail::templates::welcome(&s, "Eve\r\nBcc: victim@example.com");
        m.subject = mail::header_safe(
            &format!("Hello\r\nBcc: victim@example.com {}", "x".repeat(400)),
            200,
        );
        mail::enqueue(
            &app.services.state.db,
            &s,
            None,
            "eve@example.com",
            m,
            "inject:1",
        )
        .await
        .unwrap();
        app.run_jobs().await;
        let got = app.mail().await;
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].to,
            vec!["eve@example.com".to_string()],
            "no extra recipient"
        );
        let raw = String::from_utf8(
            standins::mailbox::read_raw(&app.mail_dir(), &got[0].id)
                .await
                .unwrap(),
        )
        .unwrap();
        let headers = raw.split("\r\n\r\n").next().unwrap();
        assert!(!headers.lines().any(|l| l.starts_with("Bcc:")), "{headers}");
        assert!(
            headers
                .lines()
                .filter(|l| l.starts_with("Subject:"))
                .count()
                == 1
        );
        app.stop().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catcher_refuses_oversized_lines_and_speaks_smtp() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let catcher = standins::mail::Catcher {
        dir: dir.path().to_path_buf(),
        controls: Default::default(),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(catcher.serve(listener, stop.clone()));
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    r.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("220"));
    for (cmd, want) in [
        ("HELO t\r\n", "250"),
        ("DATA\r\n", "503"),
        ("MAIL FROM:<a@b.c>\r\n", "250"),
        ("RCPT TO:<x@y.z>\r\n", "250"),
        ("DATA\r\n", "354"),
    ] {
        w.write_all(cmd.as_bytes()).await.unwrap();
        line.clear();
        r.read_line(&mut line).await.unwrap();
        assert!(line.starts_with(want), "{cmd:?} -> {line:?}");
    }
    w.write_all(b"Subject: dots\r\n\r\n..leading dot\r\n.\r\n")
        .await
        .unwrap();
    line.clear();
    r.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("250"));
    let got = standins::mailbox::read_all(dir.path(), 10).await;
    assert_eq!(got[0].text.trim(), ".leading dot", "dot-stuffing undone");
    w.write_all(format!("NOOP {}\r\n", "x".repeat(5000)).as_bytes())
        .await
        .unwrap();
    line.clear();
    r.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("500"));
    stop.cancel();
}

db_test!(
    after_an_admin_corrects_a_refused_address_the_message_is_resent_to_it,
    |b| async move {
        use app::api::admin::{CorrectUserEmail, ResendEmail};
        let Some(app) = TestApp::spawn(b).await else {
            return;
        };
        let db = app.services.state.db.clone();
        // A customer whose address the relay refuses.
        domain::db::execute(&db, "INSERT INTO users (email, name, role, status, created_at, updated_at) VALUES ('typo@gmial.invalid', 'Typo', 'customer', 'active', 1, 1)", vec![]).await.unwrap();
        let user = domain::auth::find_user_by_email(&db, "typo@gmial.invalid")
            .await
            .unwrap()
            .unwrap();
        let s = app.services.state.settings.clone();
        let email_id = mail::enqueue(
            &db,
            &s,
            Some(user.id),
            &user.email,
            mail::templates::welcome(&s, "Typo"),
            "welcome:typo",
        )
        .await
        .unwrap()
        .unwrap();
        app.run_jobs().await;
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM jobs WHERE status = 'manual_review'"
            )
            .await,
            1
        );
        app.sign_in_admin().await;
        let res = app
            .call(
                &path_of::<CorrectUserEmail>(),
                &[
                    ("id", &user.id.to_string()),
                    ("email", "typo@gmail.example"),
                ],
            )
            .await;
        assert_eq!(res.status(), 200);
        let res = app
            .call(&path_of::<ResendEmail>(), &[("id", &email_id.to_string())])
            .await;
        assert_eq!(res.status(), 200);
        app.run_jobs().await;
        let got = app.mail().await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].to, vec!["typo@gmail.example".to_string()]);
        app.stop().await;
    }
);
