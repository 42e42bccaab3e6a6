//! `rolegate profiles generate`: one `[profile PREFIX<org>-<level>]` in the AWS config file
//! (`$AWS_CONFIG_FILE` or `~/.aws/config`) for every org and access level the server says
//! the caller may use, each with a `credential_process` that runs this binary.
//!
//! rolegate owns only the lines between its begin and end markers. Every other line stays
//! byte for byte; the file is replaced atomically with its mode kept, and not written at all
//! when nothing changed (so a second run leaves even the mtime alone). Names and levels come
//! from the server and are checked before they reach the file: a server cannot inject
//! sections, keys or shell words.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::args::GenerateArgs;
use super::atomic;
use super::format::shell_quote;
use super::http::{ApiClient, OrgSummary};
use super::profile_name::ProfileName;
use super::settings::{self, Env};
use super::{connect, warn};

/// The first line of rolegate's section (matched up to the parenthesis).
pub const BEGIN: &str = "# BEGIN rolegate profiles";
/// The last line of rolegate's section.
pub const END: &str = "# END rolegate profiles";
const BEGIN_LINE: &str = "# BEGIN rolegate profiles (written by `rolegate profiles generate`; edits inside are replaced)";

/// The most pages to follow: 500 orgs each. A server that keeps answering is broken.
const MAX_PAGES: usize = 10_000;

/// One generated profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: ProfileName,
    pub org: String,
    /// `None`: the server's default level (a server too old to list levels).
    pub level: Option<String>,
    pub region: Option<String>,
}

/// An org or level name from the server that is safe in a section header, on a shell
/// command line and in a profile name: 1 to 64 of `[A-Za-z0-9._-]`, not starting with `-`.
pub fn safe_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

fn safe_region(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A word for a POSIX shell and for botocore's `shlex.split`: bare when it holds only
/// characters neither treats specially, else single-quoted. Control characters cannot be
/// written on one line of an ini file, so they are refused.
pub fn shell_word(s: &str) -> Result<String, String> {
    if s.chars().any(char::is_control) {
        return Err(format!("{s:?} holds a control character"));
    }
    let bare = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:=@,%".contains(&b));
    Ok(if bare { s.to_owned() } else { shell_quote(s) })
}

/// The section, markers included, for `profiles` (sorted by name) run by `command` (the
/// quoted program and connection flags).
pub fn section(profiles: &[Profile], command: &str) -> String {
    let mut s = format!("{BEGIN_LINE}\n");
    for p in profiles {
        s.push_str(&format!("[profile {}]\n", p.name.as_str()));
        s.push_str(&format!("credential_process = {command} --org {}", p.org));
        if let Some(level) = &p.level {
            s.push_str(&format!(" --access-level {level}"));
        }
        s.push_str(" --format credential-process\n");
        if let Some(region) = &p.region {
            s.push_str(&format!("region = {region}\n"));
        }
        s.push('\n');
    }
    s.push_str(END);
    s.push('\n');
    s
}

fn is_begin(line: &str) -> bool {
    line.trim_start().starts_with(BEGIN)
}

fn is_end(line: &str) -> bool {
    line.trim() == END
}

/// The profile a `[profile NAME]` or `[NAME]` header names.
fn header_name(line: &str) -> Option<&str> {
    let t = line.trim();
    let inner = t.strip_prefix('[')?.strip_suffix(']')?.trim();
    Some(match inner.strip_prefix("profile") {
        Some(rest) if rest.starts_with([' ', '\t']) => rest.trim(),
        _ => inner,
    })
}

/// `existing` with rolegate's section replaced by `section` (or appended). Fails, changing
/// nothing, if the markers are damaged or a profile outside the section has a generated
/// name (the AWS tools would merge the two).
pub fn splice(existing: &str, section: &str, names: &[&str]) -> Result<String, String> {
    let crlf = existing.contains("\r\n");
    let section = if crlf {
        section.replace('\n', "\r\n")
    } else {
        section.to_owned()
    };
    let lines: Vec<&str> = existing.split_inclusive('\n').collect();
    let begins: Vec<usize> = (0..lines.len()).filter(|i| is_begin(lines[*i])).collect();
    let ends: Vec<usize> = (0..lines.len()).filter(|i| is_end(lines[*i])).collect();
    let ours = match (begins.as_slice(), ends.as_slice()) {
        ([], []) => None,
        ([b], [e]) if b < e => Some((*b, *e)),
        _ => {
            return Err(format!(
                "its rolegate section is damaged ({} line(s) starting {BEGIN:?}, {} line(s) \
                 {END:?}): fix or remove it by hand, then run again",
                begins.len(),
                ends.len()
            ));
        }
    };
    for (i, line) in lines.iter().enumerate() {
        if ours.is_some_and(|(b, e)| (b..=e).contains(&i)) {
            continue;
        }
        if let Some(name) = header_name(line).filter(|n| names.contains(n)) {
            return Err(format!(
                "line {} defines profile {name:?} outside rolegate's section, and rolegate \
                 generates a profile of that name: rename or remove yours, or pick another \
                 --prefix",
                i + 1
            ));
        }
    }
    let nl = if crlf { "\r\n" } else { "\n" };
    Ok(match ours {
        Some((b, e)) => {
            let mut out: String = lines[..b].concat();
            out.push_str(&section);
            lines[e + 1..].iter().for_each(|l| out.push_str(l));
            out
        }
        None => {
            let mut out = existing.to_owned();
            if !out.is_empty() {
                if !out.ends_with('\n') {
                    out.push_str(nl);
                }
                if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                    out.push_str(nl);
                }
            }
            out.push_str(&section);
            out
        }
    })
}

/// `--aws-config-file`, `$AWS_CONFIG_FILE` (with `~/` expanded), else `~/.aws/config`.
pub fn config_path(flag: Option<&Path>, env: Env<'_>) -> Option<PathBuf> {
    if let Some(p) = flag {
        return Some(p.to_path_buf());
    }
    let home = env("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    match env("AWS_CONFIG_FILE").filter(|p| !p.is_empty()) {
        Some(p) => match (p.strip_prefix("~/"), &home) {
            (Some(rest), Some(h)) => Some(h.join(rest)),
            _ => Some(PathBuf::from(p)),
        },
        None => home.map(|h| h.join(".aws").join("config")),
    }
}

/// Every org on every page.
async fn all_orgs(client: &ApiClient) -> anyhow::Result<Vec<OrgSummary>> {
    let mut orgs = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = client.orgs(cursor.as_deref()).await?;
        orgs.extend(page.orgs);
        match page.next_cursor {
            // A cursor that does not move forward would loop for ever.
            Some(next) if cursor.as_ref().is_none_or(|c| next > *c) => cursor = Some(next),
            Some(_) => anyhow::bail!("the server's org list repeats its paging cursor"),
            None => return Ok(orgs),
        }
    }
    anyhow::bail!("the server's org list has more than {MAX_PAGES} pages")
}

/// What [`plan`] found worth telling (never a secret).
#[derive(Debug, Default)]
pub struct Plan {
    pub profiles: Vec<Profile>,
    pub warnings: Vec<String>,
}

/// The profiles for `orgs`: validated orgs only, each level the server grants (only
/// `wanted` ones, if any), named `prefix<org>-<level>`.
pub fn plan(
    orgs: &[OrgSummary],
    prefix: &str,
    wanted: &[String],
    region: Option<&str>,
    env_region: Option<&str>,
) -> Plan {
    let mut plan = Plan::default();
    let mut not_ready = 0usize;
    let mut old_server = false;
    for org in orgs {
        if !safe_name(&org.org_name) {
            plan.warnings.push(format!(
                "skipped an org whose name {:?} is not safe in a profile",
                org.org_name
            ));
            continue;
        }
        if !org.status.is_empty() && org.status != "validated" {
            not_ready += 1;
            continue;
        }
        let levels: Vec<Option<String>> = match &org.access_levels {
            Some(granted) => {
                let mut levels = Vec::new();
                for l in granted {
                    if !safe_name(l) {
                        plan.warnings.push(format!(
                            "skipped access level {l:?} of org {}: not safe in a profile",
                            org.org_name
                        ));
                    } else if wanted.is_empty() || wanted.contains(l) {
                        levels.push(Some(l.clone()));
                    }
                }
                levels
            }
            None => {
                old_server = true;
                if wanted.is_empty() {
                    vec![None]
                } else {
                    wanted.iter().cloned().map(Some).collect()
                }
            }
        };
        let org_region = org.region.as_deref().filter(|r| safe_region(r));
        for level in levels {
            let raw = format!(
                "{prefix}{}-{}",
                org.org_name,
                level.as_deref().unwrap_or("default")
            );
            let name = match ProfileName::parse(&raw) {
                Ok(n) => n,
                Err(e) => {
                    plan.warnings.push(format!("skipped: {e}"));
                    continue;
                }
            };
            if plan.profiles.iter().any(|p| p.name == name) {
                plan.warnings.push(format!(
                    "skipped a second profile named {raw:?} (org {}): names must be unique",
                    org.org_name
                ));
                continue;
            }
            plan.profiles.push(Profile {
                name,
                org: org.org_name.clone(),
                level,
                region: region.or(org_region).or(env_region).map(str::to_owned),
            });
        }
    }
    plan.profiles
        .sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    if old_server {
        plan.warnings.push(if wanted.is_empty() {
            "the server does not say which access levels you may use (an older server): \
             wrote the default level only, as PREFIX<org>-default; name levels with \
             --access-level"
                .to_owned()
        } else {
            "the server does not say which access levels you may use (an older server): \
             wrote the --access-level ones as asked; the server still decides at use"
                .to_owned()
        });
    }
    for w in wanted {
        let granted = orgs
            .iter()
            .any(|o| o.access_levels.as_ref().is_none_or(|l| l.contains(w)));
        if !granted {
            plan.warnings
                .push(format!("no org grants you access level {w:?}"));
        }
    }
    if not_ready > 0 {
        plan.warnings.push(format!(
            "skipped {not_ready} org(s) not yet validated (their AWS account is not onboarded)"
        ));
    }
    if plan.profiles.iter().all(|p| p.region.is_none()) && !plan.profiles.is_empty() {
        plan.warnings.push(
            "no region written: pass --region or set AWS_REGION for the profiles to have one"
                .to_owned(),
        );
    }
    plan
}

/// The start of each `credential_process` line: this binary's absolute path and the flags
/// that find the same server and client config file. Never a credential.
fn command_line(args: &GenerateArgs, client: &ApiClient, env: Env<'_>) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("cannot find the path of this rolegate binary")?;
    let exe = exe
        .to_str()
        .context("the path of this rolegate binary is not UTF-8")?;
    let mut line = shell_word(exe).map_err(|e| anyhow::anyhow!("the binary's path {e}"))?;
    line.push_str(" creds --server ");
    line.push_str(&shell_word(client.server().as_str()).map_err(anyhow::Error::msg)?);
    if let (Some(path), true) = settings::config_path(&args.connection, env) {
        let path = std::path::absolute(&path)?;
        let path = path
            .to_str()
            .context("the client config file's path is not UTF-8")?;
        line.push_str(" --config-file ");
        line.push_str(
            &shell_word(path).map_err(|e| anyhow::anyhow!("the config file's path {e}"))?,
        );
    }
    Ok(line)
}

/// `rolegate profiles generate`.
pub async fn generate(args: &GenerateArgs, env: Env<'_>) -> anyhow::Result<()> {
    if let Some(bad) = args.access_levels.iter().find(|l| !safe_name(l)) {
        anyhow::bail!("--access-level {bad:?}: levels are letters, digits and -_.");
    }
    let valid_prefix = args.prefix.is_empty() || ProfileName::parse(&args.prefix).is_ok();
    if !valid_prefix {
        anyhow::bail!("--prefix {:?}: use letters, digits and -_.@+", args.prefix);
    }
    if let Some(r) = args.region.as_deref().filter(|r| !safe_region(r)) {
        anyhow::bail!("--region {r:?} is not a region such as eu-west-1");
    }
    if args.connection.token.is_some() || args.connection.api_key.is_some() {
        warn(
            "the profiles do not carry --token or --api-key: their credential_process finds \
             its credential in ROLEGATE_TOKEN/ROLEGATE_API_KEY or the client config file",
        );
    }
    let client = connect(&args.connection, env)?;
    let orgs = all_orgs(&client).await?;
    let env_region = env("AWS_REGION")
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .filter(|r| safe_region(r));
    let plan = plan(
        &orgs,
        &args.prefix,
        &args.access_levels,
        args.region.as_deref(),
        env_region.as_deref(),
    );
    plan.warnings.iter().for_each(|w| warn(w));
    let text = section(&plan.profiles, &command_line(args, &client, env)?);
    let mut out = std::io::stdout().lock();
    if args.dry_run {
        out.write_all(text.as_bytes())?;
        out.flush()?;
        return Ok(());
    }
    let path = config_path(args.aws_config_file.as_deref(), env)
        .context("no AWS config file: set HOME or AWS_CONFIG_FILE, or pass --aws-config-file")?;
    // Write through a symlink (dotfile managers) rather than replacing it.
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    let (existing, mode) = match std::fs::read(&path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes)
                .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))?;
            let mode = std::fs::metadata(&path)?.permissions().mode();
            (text, mode)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), 0o600),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let names: Vec<&str> = plan.profiles.iter().map(|p| p.name.as_str()).collect();
    let updated =
        splice(&existing, &text, &names).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let n = plan.profiles.len();
    if updated == existing {
        writeln!(
            out,
            "{} is up to date ({n} rolegate profiles)",
            path.display()
        )?;
    } else {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            atomic::ensure_dir(dir, false)?;
        }
        atomic::write_with_mode(&path, updated.as_bytes(), mode)
            .with_context(|| format!("cannot write {}", path.display()))?;
        writeln!(out, "wrote {n} rolegate profiles to {}", path.display())?;
    }
    for p in &plan.profiles {
        writeln!(out, "  {}", p.name.as_str())?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn org(name: &str, status: &str, levels: Option<&[&str]>) -> OrgSummary {
        OrgSummary {
            org_name: name.to_owned(),
            status: status.to_owned(),
            access_levels: levels.map(|l| l.iter().map(|s| (*s).to_owned()).collect()),
            region: None,
        }
    }

    fn names(plan: &Plan) -> Vec<&str> {
        plan.profiles.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn one_profile_per_validated_org_and_granted_level() {
        let orgs = [
            org("zeta", "validated", Some(&["readonly"])),
            org("acme", "validated", Some(&["readonly", "operator"])),
            org("newco", "pending", Some(&["readonly"])),
        ];
        let p = plan(&orgs, "rg-", &[], Some("eu-west-1"), None);
        assert_eq!(
            names(&p),
            ["rg-acme-operator", "rg-acme-readonly", "rg-zeta-readonly"]
        );
        assert!(
            p.profiles
                .iter()
                .all(|p| p.region.as_deref() == Some("eu-west-1"))
        );
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("1 org(s) not yet validated"))
        );
        let only = plan(
            &orgs,
            "x.",
            &["operator".to_owned()],
            None,
            Some("us-east-1"),
        );
        assert_eq!(names(&only), ["x.acme-operator"]);
        assert_eq!(only.profiles[0].region.as_deref(), Some("us-east-1"));
        let none = plan(&orgs, "rg-", &["admin".to_owned()], None, None);
        assert!(none.profiles.is_empty());
        assert!(none.warnings.iter().any(|w| w.contains("\"admin\"")));
    }

    #[test]
    fn an_older_server_gets_the_default_level_and_a_warning() {
        let orgs = [org("acme", "validated", None)];
        let p = plan(&orgs, "rg-", &[], None, None);
        assert_eq!(names(&p), ["rg-acme-default"]);
        assert_eq!(p.profiles[0].level, None);
        assert!(p.warnings.iter().any(|w| w.contains("older server")));
        let p = plan(&orgs, "rg-", &["operator".to_owned()], None, None);
        assert_eq!(p.profiles[0].level.as_deref(), Some("operator"));
    }

    #[test]
    fn unsafe_names_from_the_server_never_reach_the_file() {
        let orgs = [
            org("evil]\n[profile x", "validated", Some(&["readonly"])),
            org(
                "acme",
                "validated",
                Some(&["read only", "a;b", "-x", "ok\n", "readonly"]),
            ),
            org("bad$(id)", "validated", Some(&["readonly"])),
        ];
        let p = plan(&orgs, "rg-", &[], None, None);
        assert_eq!(names(&p), ["rg-acme-readonly"]);
        assert_eq!(
            p.warnings.iter().filter(|w| w.contains("skipped")).count(),
            6
        );
        let text = section(&p.profiles, "rolegate creds");
        assert!(!text.contains("evil") && !text.contains("$(id)"), "{text}");
    }

    #[test]
    fn colliding_names_keep_the_first() {
        let orgs = [
            org("acme", "validated", Some(&["x-y"])),
            org("acme-x", "validated", Some(&["y"])),
        ];
        let p = plan(&orgs, "rg-", &[], None, None);
        assert_eq!(names(&p), ["rg-acme-x-y"]);
        assert!(p.warnings.iter().any(|w| w.contains("second profile")));
    }

    fn sample_section() -> String {
        let p = plan(
            &[org("acme", "validated", Some(&["readonly"]))],
            "rg-",
            &[],
            Some("us-east-1"),
            None,
        );
        section(
            &p.profiles,
            "/usr/bin/rolegate creds --server http://127.0.0.1:8080/",
        )
    }

    #[test]
    fn the_section_has_markers_profiles_and_the_command() {
        assert_eq!(
            sample_section(),
            format!(
                "{BEGIN_LINE}\n[profile rg-acme-readonly]\ncredential_process = /usr/bin/rolegate \
                 creds --server http://127.0.0.1:8080/ --org acme --access-level readonly \
                 --format credential-process\nregion = us-east-1\n\n{END}\n"
            )
        );
    }

    #[test]
    fn splicing_keeps_every_other_line_and_is_idempotent() {
        let section = sample_section();
        let mine = "# mine\n[default]\nregion = eu-west-1\n\n[profile dev]\nregion = x";
        let first = splice(mine, &section, &["rg-acme-readonly"]).unwrap();
        assert_eq!(first, format!("{mine}\n\n{section}"));
        assert_eq!(
            splice(&first, &section, &["rg-acme-readonly"]).unwrap(),
            first
        );
        // Lines after the section survive a rewrite with different content.
        let after = format!("{first}[profile later]\nregion = y\n");
        let empty = super::section(&[], "rolegate creds");
        let rewritten = splice(&after, &empty, &[]).unwrap();
        assert_eq!(
            rewritten,
            format!("{mine}\n\n{empty}[profile later]\nregion = y\n")
        );
        assert_eq!(splice("", &section, &[]).unwrap(), section);
        // CRLF files stay CRLF.
        let crlf = splice("[default]\r\nregion = x\r\n", &section, &[]).unwrap();
        assert!(!crlf.replace("\r\n", "").contains('\n'), "{crlf:?}");
    }

    #[test]
    fn damaged_markers_and_clashing_profiles_are_refused() {
        let section = sample_section();
        let only_begin = format!("{BEGIN_LINE}\n[profile a]\n");
        assert!(
            splice(&only_begin, &section, &[])
                .unwrap_err()
                .contains("damaged")
        );
        let twice = format!("{section}{section}");
        assert!(
            splice(&twice, &section, &[])
                .unwrap_err()
                .contains("damaged")
        );
        let reversed = format!("{END}\n{BEGIN_LINE}\n");
        assert!(splice(&reversed, &section, &[]).is_err());
        let clash = "[profile  rg-acme-readonly ]\nregion = x\n";
        let e = splice(clash, &section, &["rg-acme-readonly"]).unwrap_err();
        assert!(e.contains("line 1") && e.contains("--prefix"), "{e}");
        // The same name inside the section is ours, not a clash.
        let ours = splice("", &section, &["rg-acme-readonly"]).unwrap();
        assert!(splice(&ours, &section, &["rg-acme-readonly"]).is_ok());
    }

    #[test]
    fn shell_words_are_bare_only_when_safe() {
        assert_eq!(
            shell_word("/usr/local/bin/rolegate").unwrap(),
            "/usr/local/bin/rolegate"
        );
        assert_eq!(
            shell_word("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(
            shell_word("/home/a b/it's/rolegate").unwrap(),
            r"'/home/a b/it'\''s/rolegate'"
        );
        assert!(shell_word("/tmp/a\nb").is_err());
        assert_eq!(shell_word("").unwrap(), "''");
    }

    /// A stand-in server whose `GET /api/orgs` answers `pages[cursor]`.
    async fn stand_in(pages: serde_json::Value) -> ApiClient {
        use axum::extract::Query;
        let app = axum::Router::new().route(
            "/api/orgs",
            axum::routing::get(
                move |Query(q): Query<std::collections::HashMap<String, String>>| {
                    let key = q.get("cursor").cloned().unwrap_or_default();
                    let page = pages[key.as_str()].clone();
                    async move { axum::Json(page) }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        ApiClient::new(settings::ClientSettings {
            server: format!("http://{addr}/").parse().unwrap(),
            credential: settings::Credential::ApiKey("rgk_x".to_owned().into()),
            warnings: Vec::new(),
            ca_pem: None,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn every_page_is_read_and_a_stuck_cursor_is_an_error() {
        let client = stand_in(serde_json::json!({
            "": {"orgs": [{"org_name": "acme", "status": "validated"}], "next_cursor": "acme"},
            "acme": {"orgs": [{"org_name": "beta"}], "next_cursor": "beta"},
            "beta": {"orgs": [{"org_name": "zeta", "access_levels": ["readonly"]}], "next_cursor": null},
        }))
        .await;
        let orgs = all_orgs(&client).await.unwrap();
        let names: Vec<&str> = orgs.iter().map(|o| o.org_name.as_str()).collect();
        assert_eq!(names, ["acme", "beta", "zeta"]);
        assert_eq!(
            orgs[2].access_levels.as_deref(),
            Some(&["readonly".to_owned()][..])
        );
        let stuck = stand_in(serde_json::json!({
            "": {"orgs": [], "next_cursor": "acme"},
            "acme": {"orgs": [], "next_cursor": "acme"},
        }))
        .await;
        let e = all_orgs(&stuck).await.unwrap_err();
        assert!(e.to_string().contains("repeats its paging cursor"), "{e}");
    }

    #[test]
    fn the_config_path_honours_aws_config_file() {
        let env = |k: &str| match k {
            "HOME" => Some("/home/u".to_owned()),
            "AWS_CONFIG_FILE" => Some("~/cfg".to_owned()),
            _ => None,
        };
        assert_eq!(config_path(None, &env), Some(PathBuf::from("/home/u/cfg")));
        let env = |k: &str| (k == "HOME").then(|| "/home/u".to_owned());
        assert_eq!(
            config_path(None, &env),
            Some(PathBuf::from("/home/u/.aws/config"))
        );
        assert_eq!(
            config_path(Some(Path::new("/x")), &env),
            Some(PathBuf::from("/x"))
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn server_text() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                "[a-z][a-z0-9-]{0,10}",
                "[a-z0-9 \\n\\]\\[=#;'\"$`-]{0,16}",
            ]
        }

        fn summary() -> impl Strategy<Value = OrgSummary> {
            (
                server_text(),
                prop_oneof![Just("validated".to_owned()), server_text()],
                proptest::option::of(proptest::collection::vec(server_text(), 0..3)),
                proptest::option::of(server_text()),
            )
                .prop_map(|(org_name, status, access_levels, region)| OrgSummary {
                    org_name,
                    status,
                    access_levels,
                    region,
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Whatever a server lists, the section written into ~/.aws/config has only
            /// rolegate's own lines: one header per profile, of safe names, and no line a
            /// server value could have started (no injected sections, keys or shell words).
            #[test]
            fn server_values_cannot_inject_into_the_config(orgs in proptest::collection::vec(summary(), 0..4)) {
                let plan = plan(&orgs, "rg-", &[], None, None);
                let text = section(&plan.profiles, "rolegate");
                let mut headers = 0;
                for line in text.lines() {
                    prop_assert!(!line.chars().any(char::is_control), "{:?}", line);
                    if line.starts_with('[') {
                        headers += 1;
                        let name = line.strip_prefix("[profile ").and_then(|l| l.strip_suffix(']'));
                        prop_assert!(name.is_some_and(|n| n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))), "{:?}", line);
                    } else {
                        prop_assert!(
                            line.is_empty()
                                || line.starts_with("# ")
                                || line.starts_with("credential_process = rolegate --org ")
                                || line.starts_with("region = "),
                            "{:?}", line
                        );
                    }
                }
                prop_assert_eq!(headers, plan.profiles.len());
                for p in &plan.profiles {
                    prop_assert!(safe_name(&p.org));
                    prop_assert!(p.level.as_deref().is_none_or(safe_name));
                    prop_assert!(p.region.as_deref().is_none_or(safe_region));
                }
            }
        }
    }
}
