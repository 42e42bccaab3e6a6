//! Stack and inventory kinds: their specs, the stack's name in AWS, and their session
//! policies (CloudFormation only on the job's own `rolegate-<org>-<name>` stack, the
//! blueprint's resource actions only through CloudFormation, inventory read-only).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::TAG_JOB;
use super::blueprint::{self, Blueprint};
use crate::error::Error;
use crate::ids::OrgName;

/// The longest stack name a spec may give (the AWS name adds `rolegate-<org>-`, at most 42).
const MAX_STACK_NAME: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApplyRaw {
    pub(super) blueprint: Option<String>,
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) parameters: BTreeMap<String, Value>,
    #[serde(default)]
    pub(super) replace_failed: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NameRaw {
    pub(super) name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InventoryRaw {}

/// A stack's short name: 1 to 64 of `[A-Za-z0-9-]`, starting with a letter or digit. In
/// AWS it is `rolegate-<org>-<name>`, which is also the session policy's resource.
pub fn parse_stack_name(raw: Option<&str>) -> Result<String, Error> {
    let name = raw.ok_or_else(|| Error::invalid("spec.name", "spec.name is required"))?;
    if name.is_empty() || name.len() > MAX_STACK_NAME {
        return Err(Error::invalid(
            "spec.name",
            format!("spec.name must be 1 to {MAX_STACK_NAME} characters"),
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(Error::invalid(
            "spec.name",
            "spec.name may only contain letters, digits and '-', and must start with a letter or digit",
        ));
    }
    Ok(name.to_owned())
}

/// The stack's name in AWS.
#[must_use]
pub fn stack_name(org: &OrgName, name: &str) -> String {
    format!("rolegate-{org}-{name}")
}

/// Parameter values as CloudFormation takes them: strings (numbers and booleans are
/// written out), checked against the blueprint's declared parameters.
pub(super) fn parse_parameters(
    bp: &Blueprint,
    raw: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    for (k, v) in raw {
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(Error::invalid(
                    format!("spec.parameters.{k}"),
                    format!("{k} must be a string, a number or a boolean"),
                ));
            }
        };
        out.insert(k.clone(), s);
    }
    blueprint::check(bp, &out)?;
    Ok(out)
}

fn stack_arn(stack: &str) -> String {
    format!("arn:aws:cloudformation:*:*:stack/{stack}/*")
}

fn via_cloudformation() -> Value {
    json!({"ForAnyValue:StringEquals": {"aws:CalledVia": ["cloudformation.amazonaws.com"]}})
}

/// `stack.apply`: create and update only the job's stack, only with the job's tag; read it;
/// cancel its update; delete it only when `replace_failed`; what the blueprint's resources
/// need only through CloudFormation; and, for blueprints with instances, require IMDSv2 on
/// the stack's own instances.
#[must_use]
pub fn apply_policy(bp: &Blueprint, stack: &str, replace_failed: bool, job_id: &str) -> Value {
    let mut read = vec![
        "cloudformation:DescribeStacks",
        "cloudformation:DescribeStackEvents",
        "cloudformation:ListStackResources",
        "cloudformation:CancelUpdateStack",
    ];
    if replace_failed {
        read.push("cloudformation:DeleteStack");
    }
    let mut resources: Vec<&str> = bp.actions.to_vec();
    resources.extend(["ec2:CreateTags", "ec2:DeleteTags", "ec2:Describe*"]);
    let mut s = vec![
        json!({"Effect": "Allow",
               "Action": ["cloudformation:CreateStack", "cloudformation:UpdateStack", "cloudformation:TagResource"],
               "Resource": stack_arn(stack),
               "Condition": {"StringEquals": {format!("aws:RequestTag/{TAG_JOB}"): job_id}}}),
        json!({"Effect": "Allow", "Action": read, "Resource": stack_arn(stack)}),
        json!({"Effect": "Allow", "Action": resources, "Resource": "*", "Condition": via_cloudformation()}),
    ];
    if bp.has_instances {
        s.push(json!({"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"}));
        s.push(json!({"Effect": "Allow", "Action": "ec2:ModifyInstanceMetadataOptions",
                      "Resource": "arn:aws:ec2:*:*:instance/*",
                      "Condition": {"StringEquals": {"aws:ResourceTag/aws:cloudformation:stack-name": stack}}}));
    }
    json!(s)
}

/// `stack.delete`: delete and read only the job's stack; what any blueprint's resources
/// need to go, only through CloudFormation.
#[must_use]
pub fn delete_policy(stack: &str) -> Value {
    let mut resources = blueprint::all_actions();
    resources.extend(["ec2:DeleteTags", "ec2:Describe*", "rds:Describe*"]);
    json!([
        {"Effect": "Allow",
         "Action": ["cloudformation:DeleteStack", "cloudformation:DescribeStacks", "cloudformation:DescribeStackEvents"],
         "Resource": stack_arn(stack)},
        {"Effect": "Allow", "Action": resources, "Resource": "*", "Condition": via_cloudformation()},
    ])
}

/// `stack.inspect`: read only the job's stack.
#[must_use]
pub fn inspect_policy(stack: &str) -> Value {
    json!([{"Effect": "Allow",
            "Action": ["cloudformation:DescribeStacks", "cloudformation:DescribeStackEvents", "cloudformation:ListStackResources"],
            "Resource": stack_arn(stack)}])
}

/// `inventory`: read-only Describe calls, nothing else.
#[must_use]
pub fn inventory_policy() -> Value {
    json!([{"Effect": "Allow",
            "Action": ["ec2:DescribeVpcs", "ec2:DescribeInstances", "ec2:DescribeKeyPairs",
                       "rds:DescribeDBInstances", "rds:ListTagsForResource", "cloudformation:DescribeStacks"],
            "Resource": "*"}])
}
