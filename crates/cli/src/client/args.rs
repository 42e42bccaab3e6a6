//! The command-line arguments of the client commands (`creds`, `creds serve`, `console`,
//! `exec`, `profiles generate`), and the `--format` parser (`aws-profile` takes a profile
//! name, the other formats none).

use std::convert::Infallible;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;
use secrecy::SecretString;

use super::profile_name::ProfileName;

/// Where the server is and how to authenticate. Each falls back to the environment, then to
/// the client config file.
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// The rolegate server's base URL [env: ROLEGATE_SERVER] [default: http://127.0.0.1:8080].
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// An operator token (rgt_…) [env: ROLEGATE_TOKEN]. Command lines are visible to other
    /// local users: prefer the environment or a config file.
    #[arg(long, value_name = "TOKEN", value_parser = secret)]
    pub token: Option<SecretString>,
    /// An organisation API key (rgk_…) [env: ROLEGATE_API_KEY]. Command lines are visible to
    /// other local users: prefer the environment or a config file.
    #[arg(long, value_name = "KEY", value_parser = secret)]
    pub api_key: Option<SecretString>,
    /// Client config file with `server`, `token`/`token_file` or `api_key`/`api_key_file`
    /// [env: ROLEGATE_CLIENT_CONFIG] [default: $XDG_CONFIG_HOME/rolegate/config.toml or
    /// ~/.config/rolegate/config.toml]. Not the server's --config.
    #[arg(long, value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// PEM file of extra certificate authorities to trust for an https:// server, for a
    /// server whose certificate a private CA issued [env: ROLEGATE_CA_FILE] [config file:
    /// ca_file]. The system's usual roots stay trusted.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

// clap wants a fallible parser; turning a string into a secret cannot fail.
#[allow(clippy::unnecessary_wraps)]
fn secret(s: &str) -> Result<SecretString, Infallible> {
    Ok(SecretString::from(s))
}

/// `rolegate creds`: its flags, or the `serve` subcommand.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct CredsCommand {
    #[command(subcommand)]
    pub serve: Option<CredsSubcommand>,
    #[command(flatten)]
    pub args: CredsArgs,
}

/// The subcommands of `rolegate creds`.
#[derive(Debug, clap::Subcommand)]
pub enum CredsSubcommand {
    /// Serve credentials on a local endpoint in the ECS container-credentials format,
    /// refreshed ahead of expiry, for SDKs and long-running tools.
    ///
    /// Prints two `export` lines (AWS_CONTAINER_CREDENTIALS_FULL_URI and
    /// AWS_CONTAINER_AUTHORIZATION_TOKEN) on stdout, then serves until interrupted. Every
    /// request must carry the token; the endpoint listens on loopback only.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
}

const SERVE_EXAMPLES: &str = "\
Examples:
  rolegate creds serve --org acme-corp
      # prints, then serves until Ctrl-C:
      #   export AWS_CONTAINER_CREDENTIALS_FULL_URI='http://127.0.0.1:43117/'
      #   export AWS_CONTAINER_AUTHORIZATION_TOKEN='…'
      # run those two lines in the shell of the tool that needs credentials.
  rolegate creds serve --org acme-corp --access-level operator --listen 127.0.0.1:9911
  rolegate exec --server-mode --org acme-corp -- terraform apply   # one command, server included";

/// Which credentials to get: shared by `creds serve` and `exec`.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The organisation whose AWS account the credentials are for.
    #[arg(long, value_name = "ORG")]
    pub org: String,
    /// The access level (the role) to assume [default: the server's default level].
    #[arg(long, value_name = "LEVEL")]
    pub access_level: Option<String>,
    /// Lifetime of each set of credentials in seconds [default: the server's].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..))]
    pub duration: Option<u32>,
    /// Why you need them; recorded in the audit log.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Directory of the local credential cache [env: ROLEGATE_CACHE_DIR] [default:
    /// $XDG_CACHE_HOME/rolegate or ~/.cache/rolegate].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// Arguments of `rolegate creds serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// The loopback address to listen on; port 0 picks a free port. Other addresses are
    /// refused.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: String,
}

/// Arguments of `rolegate exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Run even though ROLEGATE_EXEC_ORG is set (inside another `rolegate exec`).
    #[arg(long)]
    pub force: bool,
    /// Give the command a local container-credentials endpoint (refreshed ahead of expiry)
    /// instead of static keys, for commands that outlive one set of credentials.
    #[arg(long)]
    pub server_mode: bool,
    /// The command and its arguments (after `--`).
    #[arg(
        value_name = "COMMAND",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<OsString>,
}

/// Arguments of `rolegate profiles generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Profile names are PREFIX + org + `-` + level.
    #[arg(long, value_name = "PREFIX", default_value = "rg-")]
    pub prefix: String,
    /// Only these access levels (repeatable) [default: every level the server grants].
    #[arg(long = "access-level", value_name = "LEVEL")]
    pub access_levels: Vec<String>,
    /// The region written into each profile [default: the server's for the org, else
    /// $AWS_REGION or $AWS_DEFAULT_REGION].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Print the section instead of writing it.
    #[arg(long)]
    pub dry_run: bool,
    /// The AWS config file to update [default: $AWS_CONFIG_FILE or ~/.aws/config]. (Not
    /// --config-file, which names rolegate's client config.)
    #[arg(long, value_name = "PATH")]
    pub aws_config_file: Option<PathBuf>,
}

/// Arguments of `rolegate creds`.
#[derive(Debug, Args)]
pub struct CredsArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The organisation whose AWS account the credentials are for (not with
    /// --certificate: the trust anchor says).
    #[arg(long, value_name = "ORG", required_unless_present = "certificate")]
    pub org: Option<String>,
    /// The access level to assume [default: the server's default level]. An org API key
    /// may use only the levels granted to API keys (by default just the default level).
    #[arg(long, value_name = "LEVEL")]
    pub access_level: Option<String>,
    /// Lifetime of the credentials in seconds [default: the server's]; the server enforces
    /// its bounds.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..))]
    pub duration: Option<u32>,
    /// Why you need them; recorded in the audit log.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Output: `json`, `env` (shell export lines), `credential-process` (the AWS CLI's
    /// Version 1 JSON, cached locally) or `aws-profile NAME` (writes that profile of
    /// ~/.aws/credentials, or $AWS_SHARED_CREDENTIALS_FILE).
    #[arg(
        long,
        num_args = 1..=2,
        value_names = ["FORMAT", "NAME"],
        default_value = "json",
        action = clap::ArgAction::Set
    )]
    pub format: Vec<String>,
    /// The profile name for `--format aws-profile` (instead of a second value); with
    /// --certificate, the workload profile's ARN.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Workload identity: a PEM certificate (then its chain) to sign a Roles Anywhere
    /// CreateSession with, instead of a token or API key. Needs --private-key,
    /// --trust-anchor and --profile.
    #[arg(long, value_name = "FILE", requires_all = ["private_key", "trust_anchor", "profile"], conflicts_with = "org")]
    pub certificate: Option<PathBuf>,
    /// The certificate's PEM private key (PKCS#8 EC P-256 or RSA, or PKCS#1 RSA). Read from the
    /// file only; never pass key material on the command line.
    #[arg(long, value_name = "FILE", requires = "certificate")]
    pub private_key: Option<PathBuf>,
    /// The trust anchor's ARN (its region is the one signed for).
    #[arg(long, value_name = "ARN", requires = "certificate")]
    pub trust_anchor: Option<String>,
    /// The role to ask for: must be the org's bound role (optional for rolegate).
    #[arg(long, value_name = "ARN", requires = "certificate")]
    pub role_arn: Option<String>,
    /// Ask the server for newly issued credentials instead of cached ones, here and on the
    /// server.
    #[arg(long)]
    pub force_refresh: bool,
    /// Directory of the credential-process cache [env: ROLEGATE_CACHE_DIR] [default:
    /// $XDG_CACHE_HOME/rolegate or ~/.cache/rolegate].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// Arguments of `rolegate console`.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The organisation whose AWS console to open.
    #[arg(long, value_name = "ORG")]
    pub org: String,
    /// The access level to assume [default: the server's default level]. An org API key
    /// may use only the levels granted to API keys (by default just the default level).
    #[arg(long, value_name = "LEVEL")]
    pub access_level: Option<String>,
    /// Lifetime of the console session in seconds [default: the server's].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..))]
    pub duration: Option<u32>,
    /// Why you need it; recorded in the audit log.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// The console page to land on, such as https://console.aws.amazon.com/s3/.
    #[arg(long, value_name = "URL")]
    pub destination: Option<String>,
}

/// What `rolegate creds` prints (or writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Json,
    Env,
    CredentialProcess,
    AwsProfile(ProfileName),
}

impl Format {
    /// Parses `--format FORMAT [NAME]` and `--profile NAME`.
    pub fn parse(values: &[String], profile: Option<&str>) -> Result<Self, String> {
        let (kind, name) = match values {
            [kind] => (kind.as_str(), None),
            [kind, name] => (kind.as_str(), Some(name.as_str())),
            _ => return Err("--format needs a format".to_owned()),
        };
        let simple = match kind {
            "json" => Self::Json,
            "env" => Self::Env,
            "credential-process" => Self::CredentialProcess,
            "aws-profile" => {
                let name = match (name, profile) {
                    (Some(a), Some(b)) if a != b => {
                        return Err(format!(
                            "two profile names: `--format aws-profile {a}` and `--profile {b}`"
                        ));
                    }
                    (Some(n), _) | (None, Some(n)) => n,
                    (None, None) => {
                        return Err("`--format aws-profile` needs a profile name: \
                                    `--format aws-profile NAME` or `--profile NAME`"
                            .to_owned());
                    }
                };
                return ProfileName::parse(name).map(Self::AwsProfile);
            }
            other => {
                return Err(format!(
                    "unknown format {other:?}: use json, env, credential-process or aws-profile NAME"
                ));
            }
        };
        if let Some(extra) = name {
            return Err(format!("`--format {kind}` takes no name, got {extra:?}"));
        }
        if profile.is_some() {
            return Err(format!(
                "--profile goes with `--format aws-profile`, not `--format {kind}`"
            ));
        }
        Ok(simple)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(values: &[&str], profile: Option<&str>) -> Result<Format, String> {
        let values: Vec<String> = values.iter().map(|s| (*s).to_owned()).collect();
        Format::parse(&values, profile)
    }

    #[test]
    fn simple_formats_take_no_name() {
        assert_eq!(parse(&["json"], None), Ok(Format::Json));
        assert_eq!(parse(&["env"], None), Ok(Format::Env));
        assert_eq!(
            parse(&["credential-process"], None),
            Ok(Format::CredentialProcess)
        );
        assert!(
            parse(&["env", "x"], None)
                .unwrap_err()
                .contains("takes no name")
        );
        assert!(
            parse(&["json"], Some("x"))
                .unwrap_err()
                .contains("--profile")
        );
        assert!(
            parse(&["yaml"], None)
                .unwrap_err()
                .contains("unknown format")
        );
    }

    #[test]
    fn aws_profile_takes_a_name_either_way() {
        let want = Format::AwsProfile(ProfileName::parse("dev").unwrap());
        assert_eq!(parse(&["aws-profile", "dev"], None), Ok(want.clone()));
        assert_eq!(parse(&["aws-profile"], Some("dev")), Ok(want.clone()));
        assert_eq!(parse(&["aws-profile", "dev"], Some("dev")), Ok(want));
        assert!(
            parse(&["aws-profile"], None)
                .unwrap_err()
                .contains("needs a profile name")
        );
        assert!(parse(&["aws-profile", "a"], Some("b")).is_err());
        assert!(parse(&["aws-profile", "bad name]"], None).is_err());
    }
}
