//! What a job may be asked to do: each kind's spec, validated here (moto accepts almost
//! anything, AWS does not, and a name lands in an IAM resource ARN), its target, its steps,
//! and the session policy its AssumeRole carries.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::Error;
use crate::ids::OrgName;
use crate::ports::aws::ec2::KeyType;

/// The blueprint catalog and its parameter checks.
pub mod blueprint;
/// Stack and inventory specs and session policies.
pub mod stack;

pub use stack::stack_name;

/// The longest inline session policy AWS accepts, in characters (its packed size, with
/// the session tags, is checked by AWS too: `PackedPolicyTooLarge`).
pub const MAX_SESSION_POLICY_CHARS: usize = 2048;
/// The session tag every job's AssumeRole carries, and the tag on what it creates.
pub const TAG_JOB: &str = "rolegate:job";
/// The longest public key `keypair.import` takes.
const MAX_PUBLIC_KEY: usize = 16 * 1024;

/// A validated job spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobSpec {
    KeypairCreate {
        name: String,
        key_type: KeyType,
    },
    KeypairImport {
        name: String,
        public_key: String,
    },
    KeypairDelete {
        name: String,
    },
    /// Create or update the stack `rolegate-<org>-<name>` from a blueprint.
    StackApply {
        blueprint: String,
        name: String,
        parameters: BTreeMap<String, String>,
        replace_failed: bool,
    },
    StackDelete {
        name: String,
    },
    StackInspect {
        name: String,
    },
    Inventory,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRaw {
    name: Option<String>,
    #[serde(rename = "type")]
    key_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportRaw {
    name: Option<String>,
    public_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteRaw {
    name: Option<String>,
}

/// Every kind rolegate runs.
pub const KINDS: &[&str] = &[
    "keypair.create",
    "keypair.import",
    "keypair.delete",
    "stack.apply",
    "stack.delete",
    "stack.inspect",
    "inventory",
];

fn fields<T: serde::de::DeserializeOwned>(kind: &str, spec: &Value) -> Result<T, Error> {
    let spec = if spec.is_null() {
        json!({})
    } else {
        spec.clone()
    };
    serde_json::from_value(spec).map_err(|e| {
        Error::invalid(
            "spec",
            format!("spec of {kind}: {}", e.to_string().replace('`', "")),
        )
    })
}

/// A key pair name: 1 to 255 of `[A-Za-z0-9._-]`. AWS allows more, but the name is part of
/// the session policy's resource ARN, where `*` or `?` would widen what the job may touch.
pub fn parse_key_name(raw: Option<&str>) -> Result<String, Error> {
    let name = raw.ok_or_else(|| Error::invalid("spec.name", "spec.name is required"))?;
    if name.is_empty() || name.len() > 255 {
        return Err(Error::invalid(
            "spec.name",
            "spec.name must be 1 to 255 characters",
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(Error::invalid(
            "spec.name",
            "spec.name may only contain letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(name.to_owned())
}

/// An OpenSSH public key line (`ssh-ed25519 AAAA… [comment]`, `ssh-rsa`, `ecdsa-sha2-*`)
/// whose base64 blob decodes and names the same algorithm. Returned without the comment.
pub fn parse_public_key(raw: Option<&str>) -> Result<String, Error> {
    let bad = |m: &str| Error::invalid("spec.public_key", m.to_owned());
    let key = raw
        .ok_or_else(|| bad("spec.public_key is required"))?
        .trim();
    if key.len() > MAX_PUBLIC_KEY {
        return Err(bad("spec.public_key is too long"));
    }
    if key.starts_with("-----BEGIN") || key.contains("PRIVATE KEY") {
        return Err(bad(
            "spec.public_key looks like a private key: send only the public key (the .pub file)",
        ));
    }
    let mut parts = key.split_ascii_whitespace();
    let (Some(algo), Some(blob)) = (parts.next(), parts.next()) else {
        return Err(bad(
            "spec.public_key must be an OpenSSH public key: '<type> <base64> [comment]'",
        ));
    };
    if !matches!(
        algo,
        "ssh-ed25519"
            | "ssh-rsa"
            | "ecdsa-sha2-nistp256"
            | "ecdsa-sha2-nistp384"
            | "ecdsa-sha2-nistp521"
    ) {
        return Err(bad(
            "spec.public_key type must be ssh-ed25519, ssh-rsa or ecdsa-sha2-nistp256/384/521",
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|_| bad("spec.public_key's key data is not valid base64"))?;
    // The blob starts with the algorithm's name, length-prefixed (RFC 4253 §6.6).
    let named = decoded
        .get(..4)
        .and_then(|l| usize::try_from(u32::from_be_bytes([l[0], l[1], l[2], l[3]])).ok())
        .and_then(|n| decoded.get(4..4 + n));
    if named != Some(algo.as_bytes()) {
        return Err(bad("spec.public_key's key data does not match its type"));
    }
    Ok(format!("{algo} {blob}"))
}

impl JobSpec {
    /// Parses `spec` for `kind`; an unknown kind or field, or a bad value, names itself.
    pub fn parse(kind: &str, spec: &Value) -> Result<Self, Error> {
        match kind {
            "keypair.create" => {
                let raw: CreateRaw = fields(kind, spec)?;
                let key_type = match raw.key_type.as_deref() {
                    None | Some("ed25519") => KeyType::Ed25519,
                    Some("rsa") => KeyType::Rsa,
                    Some(_) => {
                        return Err(Error::invalid(
                            "spec.type",
                            "spec.type must be ed25519 or rsa",
                        ));
                    }
                };
                Ok(Self::KeypairCreate {
                    name: parse_key_name(raw.name.as_deref())?,
                    key_type,
                })
            }
            "keypair.import" => {
                let raw: ImportRaw = fields(kind, spec)?;
                Ok(Self::KeypairImport {
                    name: parse_key_name(raw.name.as_deref())?,
                    public_key: parse_public_key(raw.public_key.as_deref())?,
                })
            }
            "keypair.delete" => {
                let raw: DeleteRaw = fields(kind, spec)?;
                Ok(Self::KeypairDelete {
                    name: parse_key_name(raw.name.as_deref())?,
                })
            }
            "stack.apply" => {
                let raw: stack::ApplyRaw = fields(kind, spec)?;
                let bp = blueprint::find(raw.blueprint.as_deref().ok_or_else(|| {
                    Error::invalid("spec.blueprint", "spec.blueprint is required")
                })?)?;
                let name = stack::parse_stack_name(raw.name.as_deref())?;
                Ok(Self::StackApply {
                    blueprint: bp.name.to_owned(),
                    name,
                    parameters: stack::parse_parameters(bp, &raw.parameters)?,
                    replace_failed: raw.replace_failed,
                })
            }
            "stack.delete" | "stack.inspect" => {
                let raw: stack::NameRaw = fields(kind, spec)?;
                let name = stack::parse_stack_name(raw.name.as_deref())?;
                Ok(if kind == "stack.delete" {
                    Self::StackDelete { name }
                } else {
                    Self::StackInspect { name }
                })
            }
            "inventory" => {
                let _: stack::InventoryRaw = fields(kind, spec)?;
                Ok(Self::Inventory)
            }
            _ => Err(Error::invalid(
                "kind",
                format!("kind must be one of {}", KINDS.join(", ")),
            )),
        }
    }

    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::KeypairCreate { .. } => "keypair.create",
            Self::KeypairImport { .. } => "keypair.import",
            Self::KeypairDelete { .. } => "keypair.delete",
            Self::StackApply { .. } => "stack.apply",
            Self::StackDelete { .. } => "stack.delete",
            Self::StackInspect { .. } => "stack.inspect",
            Self::Inventory => "inventory",
        }
    }

    /// The spec as stored and shown (normalised).
    #[must_use]
    pub fn to_value(&self) -> Value {
        match self {
            Self::KeypairCreate { name, key_type } => json!({
                "name": name,
                "type": match key_type { KeyType::Ed25519 => "ed25519", KeyType::Rsa => "rsa" },
            }),
            Self::KeypairImport { name, public_key } => {
                json!({"name": name, "public_key": public_key})
            }
            Self::KeypairDelete { name } => json!({"name": name}),
            Self::StackApply {
                blueprint,
                name,
                parameters,
                replace_failed,
            } => json!({
                "blueprint": blueprint, "name": name, "parameters": parameters,
                "replace_failed": replace_failed,
            }),
            Self::StackDelete { name } | Self::StackInspect { name } => json!({"name": name}),
            Self::Inventory => json!({}),
        }
    }

    /// What the job changes: one job at a time per target of an org. Read-only kinds take
    /// targets of their own, so they never wait behind a change (nor hold one up).
    #[must_use]
    pub fn target(&self) -> String {
        match self {
            Self::KeypairCreate { name, .. }
            | Self::KeypairImport { name, .. }
            | Self::KeypairDelete { name } => format!("keypair:{name}"),
            Self::StackApply { name, .. } | Self::StackDelete { name } => format!("stack:{name}"),
            Self::StackInspect { name } => format!("read:stack:{name}"),
            Self::Inventory => "read:inventory".to_owned(),
        }
    }

    /// Whether the kind only reads (its step may be cancelled at any time: it changes nothing).
    #[must_use]
    pub fn read_only(&self) -> bool {
        matches!(self, Self::StackInspect { .. } | Self::Inventory)
    }

    /// The steps, in order.
    #[must_use]
    pub fn steps(&self) -> &'static [&'static str] {
        match self {
            Self::KeypairCreate { .. } => &["assume_role", "create_key_pair"],
            Self::KeypairImport { .. } => &["assume_role", "import_key_pair"],
            Self::KeypairDelete { .. } => &["assume_role", "delete_key_pair"],
            Self::StackApply { .. } => &["assume_role", "submit", "wait", "require_imdsv2"],
            Self::StackDelete { .. } => &["assume_role", "delete_stack", "wait"],
            Self::StackInspect { .. } => &["assume_role", "describe_stack"],
            Self::Inventory => &[
                "assume_role",
                "describe_vpcs",
                "describe_instances",
                "describe_db_instances",
                "describe_key_pairs",
                "describe_stacks",
            ],
        }
    }

    /// The session policy for job `job_id`: only the calls this kind makes, only on its own
    /// key pair, and creation only with the job's tag. `DescribeKeyPairs` (which has no
    /// resource-level permissions) lets a resumed job recognise what it already did, and a
    /// create may delete only a key pair tagged with its own job id (one it made before a
    /// crash, whose private key was lost).
    #[must_use]
    pub fn session_policy(&self, org: &OrgName, job_id: &str) -> String {
        let key_arn = |name: &str| format!("arn:aws:ec2:*:*:key-pair/{name}");
        let tagged = json!({"StringEquals": {format!("aws:RequestTag/{TAG_JOB}"): job_id}});
        let describe =
            json!({"Effect": "Allow", "Action": "ec2:DescribeKeyPairs", "Resource": "*"});
        let statements = match self {
            Self::KeypairCreate { name, .. } | Self::KeypairImport { name, .. } => {
                let action = if matches!(self, Self::KeypairCreate { .. }) {
                    "ec2:CreateKeyPair"
                } else {
                    "ec2:ImportKeyPair"
                };
                let mut s = vec![
                    json!({"Effect": "Allow", "Action": action, "Resource": key_arn(name), "Condition": tagged}),
                    json!({"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": key_arn(name),
                    "Condition": {"StringEquals": {
                        format!("aws:RequestTag/{TAG_JOB}"): job_id,
                        "ec2:CreateAction": action.trim_start_matches("ec2:"),
                    }}}),
                    describe,
                ];
                if matches!(self, Self::KeypairCreate { .. }) {
                    s.push(json!({"Effect": "Allow", "Action": "ec2:DeleteKeyPair", "Resource": key_arn(name),
                                  "Condition": {"StringEquals": {format!("aws:ResourceTag/{TAG_JOB}"): job_id}}}));
                }
                s
            }
            Self::KeypairDelete { name } => vec![
                json!({"Effect": "Allow", "Action": "ec2:DeleteKeyPair", "Resource": key_arn(name)}),
                describe,
            ],
            Self::StackApply {
                blueprint,
                name,
                replace_failed,
                ..
            } => match blueprint::find(blueprint) {
                Ok(bp) => as_statements(stack::apply_policy(
                    bp,
                    &stack_name(org, name),
                    *replace_failed,
                    job_id,
                )),
                // A stored spec names a blueprint this build has; an unknown one allows nothing.
                Err(_) => Vec::new(),
            },
            Self::StackDelete { name } => {
                as_statements(stack::delete_policy(&stack_name(org, name)))
            }
            Self::StackInspect { name } => {
                as_statements(stack::inspect_policy(&stack_name(org, name)))
            }
            Self::Inventory => as_statements(stack::inventory_policy()),
        };
        json!({"Version": "2012-10-17", "Statement": statements}).to_string()
    }
}

fn as_statements(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        other => vec![other],
    }
}

/// Refuses a session policy AWS would refuse for its size, before any call.
pub fn check_policy_size(policy: &str) -> Result<(), Error> {
    let chars = policy.chars().filter(|c| !c.is_whitespace()).count();
    if chars > MAX_SESSION_POLICY_CHARS {
        return Err(Error::Upstream {
            code: crate::Code::SessionPolicyTooLarge,
            message: format!(
                "the job's session policy has {chars} characters; AWS accepts at most {MAX_SESSION_POLICY_CHARS}"
            ),
            retry_after_secs: None,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
