//! `rolegate user role ID ROLE`: an admin changes an operator's role through
//! `PUT /api/users/{id}/role` (the service the portal's operators page calls too). The
//! operator goes to stdout as JSON.

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
    }
}
