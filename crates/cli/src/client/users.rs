//! `rolegate user …` (admins): `role ID ROLE` changes an operator's role through
//! `PUT /api/users/{id}/role` (the service the portal's operators page calls too);
//! `link-slack` links a Slack user to an operator, so that the operator can approve and deny
//! access requests from Slack's buttons. The answer goes to stdout as JSON.

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::args::ConnectionArgs;
use super::jobs::{connect, print_json, urlencode};
use super::settings::Env;

/// `rolegate user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Change an operator's role (admins; not your own). Audited as `user.role.set`.
    #[command(
        after_help = "Examples:\n  rolegate user role carol admin\n  rolegate user role carol operator"
    )]
    Role(RoleArgs),
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

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleName {
    Admin,
    Operator,
}

#[derive(Debug, Args)]
pub struct RoleArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The operator's user id.
    pub user_id: String,
    /// The new role.
    #[arg(value_enum)]
    pub role: RoleName,
}

/// Runs `rolegate user …`.
pub async fn user(cmd: &UserCommand, env: Env<'_>) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Role(a) => {
            let client = connect(&a.connection, env)?;
            let role = match a.role {
                RoleName::Admin => "admin",
                RoleName::Operator => "operator",
            };
            let url = client.url(&format!("api/users/{}/role", urlencode(&a.user_id)))?;
            let user: Value = client
                .send(client.http.put(url).json(&json!({ "role": role })))
                .await
                .with_context(|| format!("cannot change {}'s role", a.user_id))?;
            print_json(&user)
        }
        UserCommand::LinkSlack(a) => {
            let client = connect(&a.connection, env)?;
            let url = client.url(&format!(
                "api/users/{}/chat-links/slack",
                urlencode(&a.user_id)
            ))?;
            let link: Value = client
                .send(
                    client
                        .http
                        .put(url)
                        .json(&json!({"slack_user_id": a.slack_user_id})),
                )
                .await
                .with_context(|| format!("cannot link a Slack user to {}", a.user_id))?;
            print_json(&link)
        }
    }
}
