//! Outgoing mail: one plain-text message to one address (customer approvers reached by
//! email). The adapter (in the server, over SMTP) sends within a bounded time and reports
//! a failure by kind only, never the message, whose text holds single-use links.

use async_trait::async_trait;

/// A message to send. Its text holds bearer links, so `Debug` shows neither text nor
/// recipient.
#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    /// One validated address (`parse_email_address`).
    pub to: String,
    pub subject: String,
    /// The body, plain text (UTF-8, lines of at most 78 characters where it can).
    pub text: String,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("to", &"[redacted]")
            .field("subject", &self.subject)
            .field("text", &"[redacted]")
            .finish()
    }
}

/// Why a message was not accepted; never holds the text, the address or a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MailError(pub String);

/// Sends mail.
#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug {
    /// Hands `mail` to the mail server; `Ok` once it accepted the message.
    async fn send(&self, mail: &Email) -> Result<(), MailError>;
}
