//! The blueprint catalog: the CloudFormation templates in `cloudformation/blueprints/`,
//! compiled in, their declared `Parameters` read from the template text, and a spec's
//! parameters checked against them before any AWS call (moto accepts almost anything).

use std::collections::BTreeMap;

use crate::error::Error;

/// A built-in template.
#[derive(Debug, Clone, Copy)]
pub struct Blueprint {
    pub name: &'static str,
    pub template: &'static str,
    /// The AWS actions its resources need, which CloudFormation calls with the job's session
    /// (allowed only through CloudFormation: `aws:CalledVia`).
    pub actions: &'static [&'static str],
    /// Whether it launches EC2 instances (whose IMDSv2 the job checks afterwards).
    pub has_instances: bool,
}

const VPC_ACTIONS: &[&str] = &[
    "ec2:*Vpc*",
    "ec2:*Subnet*",
    "ec2:*InternetGateway*",
    "ec2:*RouteTable*",
    "ec2:*Route",
    "ec2:*Address*",
    "ec2:*NatGateway*",
];
const EC2_ACTIONS: &[&str] = &[
    "ec2:*SecurityGroup*",
    "ec2:*LaunchTemplate*",
    "ec2:RunInstances",
    "ec2:TerminateInstances",
    "ec2:ModifyInstanceAttribute",
    "ssm:GetParameters",
];
const RDS_ACTIONS: &[&str] = &[
    "ec2:*SecurityGroup*",
    "rds:*DBInstance*",
    "rds:*DBSubnetGroup*",
    "rds:CreateDBSnapshot",
    "rds:AddTagsToResource",
    "secretsmanager:CreateSecret",
    "secretsmanager:TagResource",
    "kms:DescribeKey",
];
const WORKLOAD_ACTIONS: &[&str] = &[
    "ec2:*Vpc*",
    "ec2:*Subnet*",
    "ec2:*InternetGateway*",
    "ec2:*RouteTable*",
    "ec2:*Route",
    "ec2:*Address*",
    "ec2:*NatGateway*",
    "ec2:*SecurityGroup*",
    "ec2:*LaunchTemplate*",
    "ec2:RunInstances",
    "ec2:TerminateInstances",
    "ec2:ModifyInstanceAttribute",
    "ssm:GetParameters",
    "rds:*DBInstance*",
    "rds:*DBSubnetGroup*",
    "rds:CreateDBSnapshot",
    "rds:AddTagsToResource",
    "secretsmanager:CreateSecret",
    "secretsmanager:TagResource",
    "kms:DescribeKey",
];

/// Every blueprint, by name.
pub const BLUEPRINTS: &[Blueprint] = &[
    Blueprint {
        name: "vpc",
        template: include_str!("../../../../../cloudformation/blueprints/vpc.yaml"),
        actions: VPC_ACTIONS,
        has_instances: false,
    },
    Blueprint {
        name: "ec2",
        template: include_str!("../../../../../cloudformation/blueprints/ec2.yaml"),
        actions: EC2_ACTIONS,
        has_instances: true,
    },
    Blueprint {
        name: "rds",
        template: include_str!("../../../../../cloudformation/blueprints/rds.yaml"),
        actions: RDS_ACTIONS,
        has_instances: false,
    },
    Blueprint {
        name: "workload",
        template: include_str!("../../../../../cloudformation/blueprints/workload.yaml"),
        actions: WORKLOAD_ACTIONS,
        has_instances: true,
    },
];

/// Every blueprint's actions, for `stack.delete` (which does not know what the stack holds).
#[must_use]
pub fn all_actions() -> Vec<&'static str> {
    let mut all: Vec<&str> = BLUEPRINTS.iter().flat_map(|b| b.actions).copied().collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// The blueprint called `name`.
pub fn find(name: &str) -> Result<&'static Blueprint, Error> {
    BLUEPRINTS.iter().find(|b| b.name == name).ok_or_else(|| {
        let names: Vec<_> = BLUEPRINTS.iter().map(|b| b.name).collect();
        Error::invalid(
            "spec.blueprint",
            format!("spec.blueprint must be one of {}", names.join(", ")),
        )
    })
}

/// One declared parameter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parameter {
    pub name: String,
    pub kind: String,
    pub default: Option<String>,
    pub allowed_values: Vec<String>,
    pub allowed_pattern: Option<String>,
    pub min_value: Option<i64>,
    pub max_value: Option<i64>,
    /// The template's one-line `Description`, for forms.
    pub description: Option<String>,
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_owned();
        }
    }
    v.to_owned()
}

/// The template's `Parameters`, read from the layout the catalog's templates keep: a
/// top-level `Parameters:`, two-space names, four-space properties, flow-style lists.
#[must_use]
pub fn parameters(template: &str) -> Vec<Parameter> {
    let mut out: Vec<Parameter> = Vec::new();
    let mut inside = false;
    for line in template.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            inside = line.trim_end() == "Parameters:";
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':'))
            && !name.starts_with(' ')
        {
            out.push(Parameter {
                name: name.to_owned(),
                ..Parameter::default()
            });
            continue;
        }
        let (Some(p), Some((key, value))) = (
            out.last_mut(),
            line.strip_prefix("    ").and_then(|l| l.split_once(':')),
        ) else {
            continue;
        };
        let value = value.trim();
        match key {
            "Type" => p.kind = value.to_owned(),
            "Default" => p.default = Some(unquote(value)),
            "AllowedPattern" => p.allowed_pattern = Some(unquote(value)),
            "MinValue" => p.min_value = value.parse().ok(),
            "MaxValue" => p.max_value = value.parse().ok(),
            "Description" if !value.starts_with('>') && !value.starts_with('|') => {
                p.description = Some(unquote(value));
            }
            "AllowedValues" => {
                p.allowed_values = value
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .split(',')
                    .map(unquote)
                    .collect();
            }
            _ => {}
        }
    }
    out
}

/// An AWS-specific parameter type's shape (AWS checks the resource exists; we check the form).
fn id_pattern(kind: &str) -> Option<&'static str> {
    match kind {
        "AWS::EC2::VPC::Id" => Some(r"^vpc-[0-9a-f]{8,17}$"),
        "AWS::EC2::Subnet::Id" => Some(r"^subnet-[0-9a-f]{8,17}$"),
        "List<AWS::EC2::Subnet::Id>" => Some(r"^subnet-[0-9a-f]{8,17}(,subnet-[0-9a-f]{8,17})+$"),
        k if k.starts_with("AWS::SSM::Parameter::Value<") => {
            Some(r"^(/[A-Za-z0-9_.-]+)+$|^ami-[0-9a-f]{8,17}$")
        }
        _ => None,
    }
}

/// The longest parameter value taken (AWS's limit is 4,096 bytes).
const MAX_VALUE: usize = 4096;

/// Checks `given` against `blueprint`'s declared parameters: an unknown one, a missing
/// required one (no `Default`) or a value outside its declared type, values, pattern or
/// range is `invalid_field` naming `spec.parameters.<Name>`.
pub fn check(blueprint: &Blueprint, given: &BTreeMap<String, String>) -> Result<(), Error> {
    let declared = parameters(blueprint.template);
    let field = |n: &str| format!("spec.parameters.{n}");
    for name in given.keys() {
        if !declared.iter().any(|p| &p.name == name) {
            let names: Vec<_> = declared.iter().map(|p| p.name.as_str()).collect();
            return Err(Error::invalid(
                field(name),
                format!(
                    "blueprint {} has no parameter {name}; it takes {}",
                    blueprint.name,
                    names.join(", ")
                ),
            ));
        }
    }
    for p in &declared {
        let Some(value) = given.get(&p.name) else {
            if p.default.is_none() {
                return Err(Error::invalid(
                    field(&p.name),
                    format!("blueprint {} requires parameter {}", blueprint.name, p.name),
                ));
            }
            continue;
        };
        let bad = |why: String| Err(Error::invalid(field(&p.name), why));
        if value.len() > MAX_VALUE || value.chars().any(char::is_control) {
            return bad(format!(
                "{} must be at most {MAX_VALUE} bytes without control characters",
                p.name
            ));
        }
        if !p.allowed_values.is_empty() && !p.allowed_values.contains(value) {
            return bad(format!(
                "{} must be one of {}",
                p.name,
                p.allowed_values.join(", ")
            ));
        }
        if p.kind == "Number" {
            let Ok(n) = value.parse::<i64>() else {
                return bad(format!("{} must be a whole number", p.name));
            };
            if p.min_value.is_some_and(|m| n < m) || p.max_value.is_some_and(|m| n > m) {
                return bad(format!(
                    "{} must be between {} and {}",
                    p.name,
                    p.min_value.unwrap_or(i64::MIN),
                    p.max_value.unwrap_or(i64::MAX)
                ));
            }
        }
        for pattern in p
            .allowed_pattern
            .as_deref()
            .into_iter()
            .chain(id_pattern(&p.kind))
        {
            // The catalog's patterns are compiled by a unit test; a bad one refuses the value.
            let ok = regex::Regex::new(pattern).is_ok_and(|re| re.is_match(value));
            if !ok {
                return bad(format!(
                    "{} does not have the expected form ({pattern})",
                    p.name
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_blueprint_declares_parameters_the_checker_can_read() {
        for b in BLUEPRINTS {
            let ps = parameters(b.template);
            assert!(!ps.is_empty(), "{}", b.name);
            for p in &ps {
                assert!(!p.kind.is_empty(), "{}.{} has a Type", b.name, p.name);
                assert!(
                    p.description.is_some(),
                    "{}.{} has a Description",
                    b.name,
                    p.name
                );
                if let Some(pat) = &p.allowed_pattern {
                    regex::Regex::new(pat).unwrap();
                }
            }
        }
        let ec2 = parameters(find("ec2").unwrap().template);
        let ssh = ec2.iter().find(|p| p.name == "SshCidr").unwrap();
        assert_eq!(ssh.default, None, "no default SSH CIDR, never 0.0.0.0/0");
        let nat = parameters(find("vpc").unwrap().template);
        let nat = nat.iter().find(|p| p.name == "EnableNat").unwrap();
        assert_eq!(nat.allowed_values, ["true", "false"]);
        assert_eq!(nat.default.as_deref(), Some("false"));
    }

    #[test]
    fn the_secure_defaults_are_in_the_templates() {
        let get = |n: &str| find(n).unwrap().template;
        for t in [get("ec2"), get("workload")] {
            assert!(t.contains("HttpTokens: required"));
            assert!(t.contains("Encrypted: true"));
            assert!(t.contains("AssociatePublicIpAddress: !If [PublicIp, true, false]"));
            assert!(!t.contains("0.0.0.0/0\n          FromPort"));
        }
        for t in [get("rds"), get("workload")] {
            for s in [
                "ManageMasterUserPassword: true",
                "StorageEncrypted: true",
                "PubliclyAccessible: false",
                "DeletionPolicy: Snapshot",
            ] {
                assert!(t.contains(s), "{s}");
            }
        }
        for t in [get("vpc"), get("workload")] {
            assert!(
                t.contains("!Select [0, !GetAZs \"\"]") && t.contains("!Select [1, !GetAZs \"\"]")
            );
        }
        // The workload takes every parameter of the three, less the ids it makes itself.
        let w: Vec<_> = parameters(get("workload"))
            .into_iter()
            .map(|p| p.name)
            .collect();
        for b in ["vpc", "ec2", "rds"] {
            for p in parameters(get(b)) {
                if !["VpcId", "SubnetId", "SubnetIds"].contains(&p.name.as_str()) {
                    assert!(w.contains(&p.name), "workload lacks {}", p.name);
                }
            }
        }
    }

    fn field_of(r: Result<(), Error>) -> String {
        match r {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parameters_are_checked_before_any_call() {
        let ec2 = find("ec2").unwrap();
        let ok = params(&[
            ("VpcId", "vpc-0123456789abcdef0"),
            ("SubnetId", "subnet-01234567"),
            ("SshCidr", "203.0.113.7/32"),
        ]);
        check(ec2, &ok).unwrap();
        let mut unknown = ok.clone();
        unknown.insert("Bogus".into(), "1".into());
        assert_eq!(field_of(check(ec2, &unknown)), "spec.parameters.Bogus");
        let mut missing = ok.clone();
        missing.remove("SshCidr");
        assert_eq!(field_of(check(ec2, &missing)), "spec.parameters.SshCidr");
        for (k, v) in [
            ("SshCidr", "everyone"),
            ("VpcId", "vpc-*"),
            ("AssociatePublicIp", "yes"),
            ("VolumeSize", "4"),
            ("VolumeSize", "ten"),
            ("KeyName", "a b"),
        ] {
            let mut bad = ok.clone();
            bad.insert(k.into(), v.into());
            assert_eq!(
                field_of(check(ec2, &bad)),
                format!("spec.parameters.{k}"),
                "{k}={v}"
            );
        }
        let rds = find("rds").unwrap();
        let one_subnet = params(&[("VpcId", "vpc-01234567"), ("SubnetIds", "subnet-01234567")]);
        assert_eq!(
            field_of(check(rds, &one_subnet)),
            "spec.parameters.SubnetIds"
        );
        assert!(matches!(find("nope"), Err(Error::Invalid { .. })));
    }
}
