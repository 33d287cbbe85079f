//! The SMTP integration: the mail transport port on lettre, built once from the `smtp.*`
//! settings ([`settings`]). The same code path talks to a real relay (STARTTLS, implicit TLS, or
//! plain for a relay on this machine, with credentials) and to the local mail catcher; only the
//! address differs.

pub mod settings;

use std::time::Duration;

use async_trait::async_trait;
use domain::ports::mail::{MailError, MailTransport, OutgoingMail};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::Settings;

pub type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// Where mail goes and how, described for admins (no secrets).
pub fn describe(settings: &Settings) -> String {
    match &settings.smtp.host {
        Some(h) => format!(
            "{h}:{} ({})",
            settings
                .smtp
                .port
                .unwrap_or(default_port(&settings.smtp.tls)),
            settings.smtp.tls
        ),
        None => format!("local mail catcher on {}", settings.mail_catcher.listen),
    }
}

fn default_port(tls: &str) -> u16 {
    match tls {
        "tls" => 465,
        "starttls" => 587,
        _ => 25,
    }
}

/// Builds the transport for the configured relay, or for the local mail catcher when none is set.
pub fn build(settings: &Settings) -> anyhow::Result<Transport> {
    let timeout = Some(Duration::from_secs(settings.smtp.timeout_secs));
    let transport = match &settings.smtp.host {
        None => {
            let addr: std::net::SocketAddr = settings.mail_catcher.listen.parse()?;
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
                .port(addr.port())
                .timeout(timeout)
                .build()
        }
        Some(host) => {
            let port = settings
                .smtp
                .port
                .unwrap_or(default_port(&settings.smtp.tls));
            let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
                .port(port)
                .timeout(timeout);
            b = match settings.smtp.tls.as_str() {
                "none" => b.tls(Tls::None),
                mode => {
                    let params = TlsParameters::new(host.clone())?;
                    b.tls(if mode == "tls" {
                        Tls::Wrapper(params)
                    } else {
                        Tls::Required(params)
                    })
                }
            };
            if let (Some(user), Some(pass)) = (&settings.smtp.username, &settings.smtp.password) {
                b = b.credentials(Credentials::new(
                    user.clone(),
                    pass.expose_secret().to_owned(),
                ));
            }
            b.build()
        }
    };
    Ok(transport)
}

/// The mail transport port over SMTP.
pub struct Smtp {
    pub transport: Transport,
    pub description: String,
}

impl Smtp {
    pub fn new(settings: &Settings) -> anyhow::Result<Smtp> {
        Ok(Smtp {
            transport: build(settings)?,
            description: describe(settings),
        })
    }
}

#[async_trait]
impl MailTransport for Smtp {
    fn describe(&self) -> String {
        self.description.clone()
    }

    async fn send(&self, mail: &OutgoingMail) -> Result<String, MailError> {
        let message = build_message(mail)?;
        match self.transport.send(message).await {
            Ok(response) => Ok(format!(
                "{} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            )),
            Err(e) => {
                let text = smtp_error_text(&e);
                Err(if e.is_permanent() {
                    MailError::Refused(text)
                } else {
                    MailError::Unavailable(text)
                })
            }
        }
    }

    /// Connects (with TLS as configured) and authenticates when credentials are set, then
    /// quits; sends nothing.
    async fn test_connection(&self) -> Result<String, String> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(format!(
                "{} answered and accepted the session",
                self.description
            )),
            Ok(false) => Err(format!("{} did not accept the session", self.description)),
            Err(e) => Err(format!("{}: {e}", self.description)),
        }
    }
}

/// Builds the MIME message. Names and subjects were made header-safe when rendered; lettre
/// encodes non-ASCII and refuses malformed addresses.
pub fn build_message(out: &OutgoingMail) -> Result<Message, MailError> {
    let from: Mailbox = out
        .from
        .parse()
        .map_err(|e| MailError::Invalid(format!("the configured From address is invalid: {e}")))?;
    let to: Mailbox = out.to.parse().map_err(|e| {
        MailError::Invalid(format!(
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
                .map_err(|e| MailError::Invalid(format!("bad attachment type: {e}")))?;
            MultiPart::mixed()
                .multipart(alternative)
                .singlepart(Attachment::new(name.clone()).body(content.clone(), ct))
        }
        None => alternative,
    };
    Message::builder()
        .from(from)
        .to(to)
        .subject(domain::email::header_safe(&out.subject, 200))
        .message_id(Some(out.message_id.clone()))
        .multipart(body)
        .map_err(|e| MailError::Invalid(format!("the message could not be built: {e}")))
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
