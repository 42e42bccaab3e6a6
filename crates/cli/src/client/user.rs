//! `rolegate user link-slack`: an admin links a Slack user to an operator, so that the
//! operator can approve and deny access requests from Slack's buttons.

use std::io::Write as _;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::args::ConnectionArgs;
use super::settings::Env;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Link a Slack user to an operator (admins): Approve/Deny presses from that Slack user
    /// then act as the operator, under the same rules as the API.
    #[command(after_help = "\
Examples:
  rolegate user link-slack bob --slack-user-id U024BE7LH")]
    LinkSlack(LinkSlackArgs),
}

#[derive(Debug, Args)]
pub struct LinkSlackArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The operator's id.
    pub user_id: String,
    /// The Slack user id (`U…`), from the user's Slack profile ("Copy member ID").
    #[arg(long, value_name = "ID")]
    pub slack_user_id: String,
}

/// Runs `rolegate user …`.
pub async fn user(cmd: &UserCommand, env: Env<'_>) -> anyhow::Result<()> {
    match cmd {
        UserCommand::LinkSlack(a) => {
            if !a
                .user_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
            {
                anyhow::bail!("not an operator id: {:?}", a.user_id);
            }
            let settings = super::settings::resolve(&a.connection, env)?;
            let client = super::http::ApiClient::new(settings)?;
            let url = client.url(&format!("api/users/{}/chat-links/slack", a.user_id))?;
            let link: Value = client
                .send(
                    client
                        .http
                        .put(url)
                        .json(&json!({"slack_user_id": a.slack_user_id})),
                )
                .await
                .with_context(|| format!("cannot link a Slack user to {}", a.user_id))?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", serde_json::to_string_pretty(&link)?)?;
            Ok(())
        }
    }
}
