//! The local mail catcher's mailbox: a folder of received messages (`<id>.eml` with the raw
//! message as delivered over SMTP, `<id>.json` with the envelope). The catcher (the SMTP server in
//! `mail`) writes it; `/admin/mail` reads it. It is the stand-in's state, not the
//! portal's: a real relay has its own.

use std::path::{Path, PathBuf};

use mail_parser::MimeHeaders;
use serde::{Deserialize, Serialize};

use model::CaughtMail;

#[derive(Serialize, Deserialize)]
struct Envelope {
    from: String,
    to: Vec<String>,
    received_at_ms: i64,
}

/// Stores one received message and returns its id.
pub async fn write(dir: &Path, from: &str, to: &[String], raw: &[u8]) -> std::io::Result<String> {
    tokio::fs::create_dir_all(dir).await?;
    let now = crate::common::now_ms() as i64;
    let id = format!("{now:015}-{:08x}", rand::random::<u32>());
    let envelope = Envelope {
        from: from.to_owned(),
        to: to.to_vec(),
        received_at_ms: now,
    };
    tokio::fs::write(dir.join(format!("{id}.eml")), raw).await?;
    // The envelope is written last: a message is listed only once both files exist.
    tokio::fs::write(
        dir.join(format!("{id}.json")),
        serde_json::to_vec(&envelope).unwrap_or_default(),
    )
    .await?;
    Ok(id)
}

/// Parses a stored message.
pub fn parse(id: &str, envelope_json: &[u8], raw: &[u8]) -> Option<CaughtMail> {
    let env: Envelope = serde_json::from_slice(envelope_json).ok()?;
    let msg = mail_parser::MessageParser::default().parse(raw)?;
    Some(CaughtMail {
        id: id.to_owned(),
        received_at_ms: env.received_at_ms,
        from: env.from,
        to: env.to,
        subject: msg.subject().unwrap_or("").to_owned(),
        text: msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
        html: msg.body_html(0).map(|t| t.into_owned()),
        attachments: msg
            .attachments()
            .map(|a| a.attachment_name().unwrap_or("attachment").to_owned())
            .collect(),
    })
}

/// The newest `limit` messages, newest first. Unreadable files are skipped.
pub async fn read_all(dir: &Path, limit: usize) -> Vec<CaughtMail> {
    let mut ids: Vec<String> = Vec::new();
    if let Ok(mut entries) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".json") {
                ids.push(id.to_owned());
            }
        }
    }
    ids.sort_unstable_by(|a, b| b.cmp(a));
    let mut out = Vec::new();
    for id in ids.into_iter().take(limit) {
        let (Ok(env), Ok(raw)) = (
            tokio::fs::read(path(dir, &id, "json")).await,
            tokio::fs::read(path(dir, &id, "eml")).await,
        ) else {
            continue;
        };
        if let Some(m) = parse(&id, &env, &raw) {
            out.push(m);
        }
    }
    out
}

/// The raw message with `id`, for tests and downloads.
pub async fn read_raw(dir: &Path, id: &str) -> Option<Vec<u8>> {
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return None;
    }
    tokio::fs::read(path(dir, id, "eml")).await.ok()
}

fn path(dir: &Path, id: &str, ext: &str) -> PathBuf {
    dir.join(format!("{id}.{ext}"))
}
