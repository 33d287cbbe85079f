//! `email.send`: delivers one message from the outbox over SMTP.
//!
//! At most once per outbox row: a row already marked sent is skipped, and the row is marked sent
//! in the moment the relay accepts the message. (The gap between the relay's "250 OK" and that
//! write is the only way a message can go twice: a crash in those milliseconds. The Message-ID is
//! fixed per row, so a receiving system can tell the copies apart.)

use std::sync::Arc;

use app::ssr::PortalSettings;
use app::ssr::db::{self, col, now_ms};
use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncTransport, Message};
use sea_orm::DatabaseConnection;
use serde::Deserialize;

use crate::mailer::Transport;
use crate::worker::{ClaimedJob, Handler, JobError};

pub struct SendEmail {
    pub db: DatabaseConnection,
    pub settings: Arc<PortalSettings>,
    pub mailer: Transport,
}

#[derive(Deserialize)]
struct Payload {
    email_id: i64,
}

/// What the outbox row holds.
pub struct Outgoing {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub message_id: String,
    pub attachment: Option<(String, String, String)>,
}

/// Builds the MIME message. Names and subjects were made header-safe when rendered; lettre
/// encodes non-ASCII and refuses malformed addresses.
pub fn build_message(from: &str, out: &Outgoing) -> Result<Message, JobError> {
    let from: Mailbox = from
        .parse()
        .map_err(|e| JobError::permanent(format!("the configured From address is invalid: {e}")))?;
    let to: Mailbox = out.to.parse().map_err(|e| {
        JobError::permanent(format!(
            "the recipient address is invalid ({e}); correct the customer's email and resend"
        ))
    })?;
    let alternative = MultiPart::alternative()
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(out.text.clone()),
        )
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(out.html.clone()),
        );
    let body = match &out.attachment {
        Some((name, ctype, content)) => {
            let ct = ContentType::parse(ctype)
                .map_err(|e| JobError::permanent(format!("bad attachment type: {e}")))?;
            MultiPart::mixed()
                .multipart(alternative)
                .singlepart(Attachment::new(name.clone()).body(content.clone(), ct))
        }
        None => alternative,
    };
    Message::builder()
        .from(from)
        .to(to)
        .subject(app::ssr::email::header_safe(&out.subject, 200))
        .message_id(Some(out.message_id.clone()))
        .multipart(body)
        .map_err(|e| JobError::permanent(format!("the message could not be built: {e}")))
}

#[async_trait]
impl Handler for SendEmail {
    async fn run(&self, job: &ClaimedJob) -> Result<(), JobError> {
        let p: Payload = job.payload()?;
        let row = db::query_one(
            &self.db,
            "SELECT to_address, subject, body_text, body_html, attachment_name, attachment_type, attachment_body, redact_after_send, message_id, status \
             FROM emails WHERE id = ?",
            vec![p.email_id.into()],
        )
        .await?
        .ok_or_else(|| JobError::permanent(format!("email {} no longer exists (deleted?)", p.email_id)))?;
        let status: String = col(&row, "status")?;
        if status == "sent" {
            return Ok(());
        }
        let attachment = match (
            col::<Option<String>>(&row, "attachment_name")?,
            col::<Option<String>>(&row, "attachment_type")?,
            col::<Option<String>>(&row, "attachment_body")?,
        ) {
            (Some(n), Some(t), Some(b)) => Some((n, t, b)),
            _ => None,
        };
        let out = Outgoing {
            to: col(&row, "to_address")?,
            subject: col(&row, "subject")?,
            text: col(&row, "body_text")?,
            html: col(&row, "body_html")?,
            message_id: col(&row, "message_id")?,
            attachment,
        };
        let message = build_message(&self.settings.mail_from, &out)?;
        match self.mailer.send(message).await {
            Ok(response) => {
                let reply = format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                );
                let redact: bool = col(&row, "redact_after_send")?;
                let sql = if redact {
                    "UPDATE emails SET status = 'sent', smtp_reply = ?, sent_at = ?, body_text = '[removed after sending: it held a one-time link]', body_html = '' WHERE id = ?"
                } else {
                    "UPDATE emails SET status = 'sent', smtp_reply = ?, sent_at = ? WHERE id = ?"
                };
                db::execute(
                    &self.db,
                    sql,
                    vec![
                        reply.chars().take(300).collect::<String>().into(),
                        now_ms().into(),
                        p.email_id.into(),
                    ],
                )
                .await?;
                Ok(())
            }
            Err(e) => {
                let text = smtp_error_text(&e);
                db::execute(
                    &self.db,
                    "UPDATE emails SET smtp_reply = ? WHERE id = ?",
                    vec![text.clone().into(), p.email_id.into()],
                )
                .await?;
                if e.is_permanent() {
                    Err(JobError::permanent(format!(
                        "the mail server refused the message: {text}"
                    )))
                } else {
                    Err(JobError::transient(format!(
                        "the mail server could not take the message now: {text}"
                    )))
                }
            }
        }
    }
}

/// The relay's reply or the connection problem, in one line, without addresses.
fn smtp_error_text(e: &lettre::transport::smtp::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect()
}
