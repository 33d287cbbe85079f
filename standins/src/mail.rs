//! The local mail catcher: a small SMTP server on 127.0.0.1 that the portal delivers to when no
//! real relay is configured. It speaks enough of RFC 5321 for any SMTP client (EHLO/HELO, MAIL,
//! RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT), keeps each message in a folder, and can be
//! told to fail on purpose (421 for every connection, or 550 for every recipient). Recipients at
//! a `.invalid` domain (RFC 2606) are always refused with 550, like a real relay refusing an
//! undeliverable address.

use std::path::PathBuf;
use std::sync::Arc;

use crate::controls::{SmtpMode, StandinControls};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Largest message accepted, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 30 * 1024 * 1024;
/// Longest command line accepted.
const MAX_LINE: usize = 4096;

#[derive(Clone)]
pub struct Catcher {
    pub dir: PathBuf,
    pub controls: Arc<StandinControls>,
}

impl Catcher {
    /// Serves connections on `listener` until `shutdown`.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let c = self.clone();
                        tokio::spawn(async move {
                            if let Err(e) = c.session(stream).await {
                                tracing::debug!(error = %e, "mail catcher session ended with an error");
                            }
                        });
                    }
                    Err(e) => tracing::warn!(error = %e, "mail catcher accept failed"),
                }
            }
        }
    }

    async fn session(&self, stream: TcpStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        let mode = self.controls.smtp_mode();
        if mode == SmtpMode::Unavailable {
            write
                .write_all(b"421 4.3.2 Service not available (stand-in set to fail)\r\n")
                .await?;
            return Ok(());
        }
        write
            .write_all(b"220 stoep-mail-catcher ESMTP ready\r\n")
            .await?;
        let mut from: Option<String> = None;
        let mut to: Vec<String> = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut reader)
                .take(MAX_LINE as u64 + 2)
                .read_until(b'\n', &mut line)
                .await?;
            if n == 0 {
                return Ok(());
            }
            if !line.ends_with(b"\n") {
                write.write_all(b"500 5.5.2 Line too long\r\n").await?;
                return Ok(());
            }
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            let upper = text.to_ascii_uppercase();
            let reply: String = if upper.starts_with("EHLO") {
                format!(
                    "250-stoep-mail-catcher\r\n250-SIZE {MAX_MESSAGE_BYTES}\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
                )
            } else if upper.starts_with("HELO") {
                "250 stoep-mail-catcher\r\n".into()
            } else if upper.starts_with("MAIL FROM:") {
                from = Some(address(&text[10..]));
                to.clear();
                "250 2.1.0 Ok\r\n".into()
            } else if upper.starts_with("RCPT TO:") {
                if from.is_none() {
                    "503 5.5.1 MAIL first\r\n".into()
                } else {
                    let rcpt = address(&text[8..]);
                    if self.controls.smtp_mode() == SmtpMode::Reject
                        || rcpt.to_ascii_lowercase().ends_with(".invalid")
                    {
                        "550 5.1.1 Mailbox unavailable: recipient address rejected\r\n".into()
                    } else {
                        to.push(rcpt);
                        "250 2.1.5 Ok\r\n".into()
                    }
                }
            } else if upper == "DATA" {
                if from.is_none() || to.is_empty() {
                    "503 5.5.1 Need MAIL and RCPT first\r\n".into()
                } else {
                    write
                        .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                        .await?;
                    match read_data(&mut reader).await? {
                        Some(raw) => {
                            let id = crate::mailbox::write(
                                &self.dir,
                                from.as_deref().unwrap_or(""),
                                &to,
                                &raw,
                            )
                            .await?;
                            from = None;
                            to.clear();
                            format!("250 2.0.0 Ok: queued as {id}\r\n")
                        }
                        None => "552 5.3.4 Message too big\r\n".into(),
                    }
                }
            } else if upper == "RSET" {
                from = None;
                to.clear();
                "250 2.0.0 Ok\r\n".into()
            } else if upper == "NOOP" {
                "250 2.0.0 Ok\r\n".into()
            } else if upper == "QUIT" {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            } else {
                "502 5.5.2 Command not implemented\r\n".into()
            };
            write.write_all(reply.as_bytes()).await?;
        }
    }
}

/// Reads a DATA section up to the lone dot, undoing dot-stuffing. `None` when it is too big
/// (the rest is still read, so the session stays in step).
async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut raw = Vec::new();
    let mut too_big = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed during DATA",
            ));
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(if too_big { None } else { Some(raw) });
        }
        let content = if line.starts_with(b"..") {
            &line[1..]
        } else {
            &line[..]
        };
        if raw.len() + content.len() > MAX_MESSAGE_BYTES {
            too_big = true;
        } else if !too_big {
            raw.extend_from_slice(content);
        }
    }
}

/// `<a@b>` or `<a@b> SIZE=123` to `a@b`.
fn address(arg: &str) -> String {
    let arg = arg.trim();
    match (arg.find('<'), arg.find('>')) {
        (Some(s), Some(e)) if e > s => arg[s + 1..e].to_owned(),
        _ => arg.split_whitespace().next().unwrap_or("").to_owned(),
    }
}
