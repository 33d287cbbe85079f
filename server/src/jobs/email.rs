//! `email.send`: delivers one message from the outbox through the mail transport port (SMTP).
//!
//! At most once per outbox row: a row already marked sent is skipped, and the row is marked sent
//! in the moment the relay accepts the message. (The gap between the relay's "250 OK" and that
//! write is the only way a message can go twice: a crash in those milliseconds. The Message-ID is
//! fixed per row, so a receiving system can tell the copies apart.)

use std::sync::Arc;

use async_trait::async_trait;
use domain::PortalSettings;
use domain::db::{self, col, now_ms};
use sea_orm::DatabaseConnection;

use domain::jobs;
use domain::ports::mail::{MailError, MailTransport, OutgoingMail};
use domain::worker::{ClaimedJob, JobError, JobHandler};

pub struct SendEmail {
    pub db: DatabaseConnection,
    pub settings: Arc<PortalSettings>,
    pub mailer: Arc<dyn MailTransport>,
}

#[async_trait]
impl JobHandler<jobs::SendEmail> for SendEmail {
    async fn run(&self, p: jobs::SendEmail, _job: &ClaimedJob) -> Result<(), JobError> {
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
        let out = OutgoingMail {
            from: self.settings.mail_from.clone(),
            to: col(&row, "to_address")?,
            subject: col(&row, "subject")?,
            text: col(&row, "body_text")?,
            html: col(&row, "body_html")?,
            message_id: col(&row, "message_id")?,
            attachment,
        };
        match self.mailer.send(&out).await {
            Ok(reply) => {
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
            Err(MailError::Invalid(message)) => Err(JobError::permanent(message)),
            Err(e) => {
                let text = e.to_string();
                db::execute(
                    &self.db,
                    "UPDATE emails SET smtp_reply = ? WHERE id = ?",
                    vec![text.clone().into(), p.email_id.into()],
                )
                .await?;
                if matches!(e, MailError::Refused(_)) {
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
