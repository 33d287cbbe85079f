//! The SMTP client (lettre), built once from configuration. The same code path talks to a real
//! relay (STARTTLS, implicit TLS, or plain for a relay on this machine, with credentials) and to
//! the local mail catcher; only the address differs.

use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, Tokio1Executor};
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

/// The SMTP connection test for the integration map: connects (with TLS as configured) and
/// authenticates when credentials are set, then quits; sends nothing.
pub struct SmtpProbe {
    pub transport: Transport,
    pub description: String,
}

#[async_trait::async_trait]
impl app::ssr::map::Probe for SmtpProbe {
    async fn test(&self) -> Result<String, String> {
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
