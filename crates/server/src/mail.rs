//! The SMTP adapter of `core::ports::mail::Mailer` over `lettre` (rustls, no OpenSSL):
//! `STARTTLS` required, TLS from the first byte, or plain to a loopback relay only (checked
//! by `[smtp]`'s validation). One connection per message: approval mail is rare, and a
//! fresh connection has no state to go stale. Errors name the kind of failure, never the
//! address, the text (which holds single-use links) or the password.

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rolegate_core::ports::mail::{Email, MailError, Mailer};
use secrecy::ExposeSecret as _;

use crate::config::smtp::{SmtpConfig, SmtpTls};

/// Sends mail through the `[smtp]` server.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmtpMailer { .. }")
    }
}

impl SmtpMailer {
    /// A mailer for `config` (connects only when sending).
    pub fn new(config: &SmtpConfig) -> anyhow::Result<Self> {
        let builder = match config.tls {
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                .map_err(|_| anyhow::anyhow!("smtp.host: cannot set up TLS for this host"))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
                .map_err(|_| anyhow::anyhow!("smtp.host: cannot set up TLS for this host"))?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
        };
        let mut builder = builder.port(config.port).timeout(Some(config.timeout));
        if let Some((user, password)) = &config.credentials {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        let from = config
            .from
            .parse::<Mailbox>()
            .map_err(|_| anyhow::anyhow!("smtp.from: not an address"))?;
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

/// A failure by kind only.
fn describe(e: &lettre::transport::smtp::Error) -> String {
    if e.is_timeout() {
        "timed out"
    } else if e.is_tls() {
        "TLS failed"
    } else if e.is_permanent() {
        "the mail server refused the message (permanent)"
    } else if e.is_transient() {
        "the mail server refused the message (temporary)"
    } else {
        "could not connect or talk to the mail server"
    }
    .to_owned()
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Email) -> Result<(), MailError> {
        let to = mail
            .to
            .parse::<Mailbox>()
            .map_err(|_| MailError("the recipient's address is invalid".into()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.text.clone())
            .map_err(|_| MailError("the message could not be built".into()))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| MailError(describe(&e)))
    }
}
