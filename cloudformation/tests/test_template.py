"""The onboarding template itself: cfn-lint, and the properties the issue requires of it."""

import ast
import json
import re
import subprocess
import sys
import unittest

import support


def walk(node, path=()):
    """Yield (path, value) for every value in a parsed template."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, path + (index,))


def matches(parameter, value):
    """Does `value` satisfy the parameter's AllowedPattern (a full match, as CloudFormation does)?"""
    return re.fullmatch(parameter["AllowedPattern"], value) is not None


class TemplateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = support.load_template()
        cls.params = cls.t["Parameters"]
        cls.res = cls.t["Resources"]

    def test_cfn_lint_reports_nothing(self):
        # Exit code 0: no errors (2) and no warnings (4).
        run = subprocess.run(
            [support.venv_tool("cfn-lint"), support.TEMPLATE],
            capture_output=True,
            text=True,
            check=False,
        )
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)

    def test_description_and_interface(self):
        description = self.t["Description"]
        self.assertLessEqual(len(description), 1024)
        for needle in ("ReadOnlyAccess", "PowerUserAccess", "AdministratorAccess", "ExternalId"):
            self.assertIn(needle, description)
        grouped = [
            p
            for group in self.t["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
            for p in group["Parameters"]
        ]
        self.assertCountEqual(grouped, list(self.params))

    def test_parameter_patterns(self):
        p = self.params
        good = {
            "OrgName": ["acme-corp", "abc", "a" * 32, "a1-b2"],
            "ExternalId": ["aB3" * 16],
            "CallbackUrl": [
                "https://rolegate.example.com/api/onboarding/callback",
                "https://rolegate.example.com:8443/cb?x=1",
                "http://127.0.0.1:8080/api/onboarding/callback",
                "http://localhost:8080/cb",
                "http://localhost",
            ],
            "RoleName": ["", "rolegate-acme", "Custom+Name=,.@_-1"],
            "ProviderPrincipalArn": [
                "arn:aws:iam::123456789012:role/rolegate",
                "arn:aws-us-gov:iam::123456789012:role/path/rolegate",
                "arn:aws:iam::123456789012:user/rolegate",
            ],
            "ProviderAccountId": ["123456789012"],
        }
        bad = {
            "OrgName": ["ab", "Acme", "1acme", "acme-", "a" * 33, "acme_corp", ""],
            "ExternalId": ["aB3" * 16 + "x", "a" * 47, "a" * 47 + "-", ""],
            "CallbackUrl": [
                "http://rolegate.example.com/cb",
                "http://localhost.evil.example/cb",
                "http://127.0.0.1.evil.example/cb",
                "ftp://rolegate.example.com",
                "https://",
                "https://rolegate.example.com/with space",
                "",
            ],
            "RoleName": ["a" * 65, "has space", "slash/no"],
            "ProviderPrincipalArn": [
                "",
                "arn:aws:iam::123456789012:root",
                "arn:aws:sts::123456789012:assumed-role/rolegate/session",
                "arn:aws:iam::123456789012:group/ops",
                "123456789012",
                "*",
            ],
            "ProviderAccountId": ["12345678901", "1234567890123", "abcdefghijkl", ""],
        }
        for name, values in good.items():
            for value in values:
                with self.subTest(parameter=name, value=value):
                    self.assertTrue(matches(p[name], value))
        for name, values in bad.items():
            for value in values:
                with self.subTest(parameter=name, value=value):
                    self.assertFalse(matches(p[name], value))

    def test_parameters_types_and_defaults(self):
        p = self.params
        self.assertTrue(p["CallbackSecret"]["NoEcho"])
        self.assertNotIn("NoEcho", p["ExternalId"])
        self.assertEqual(p["AccessLevel"]["Default"], "ReadOnly")
        self.assertEqual(p["AccessLevel"]["AllowedValues"], ["ReadOnly", "PowerUser", "Administrator"])
        self.assertEqual(p["MaxSessionDuration"]["Type"], "Number")
        self.assertEqual(
            (p["MaxSessionDuration"]["MinValue"], p["MaxSessionDuration"]["MaxValue"]), (3600, 43200)
        )
        self.assertEqual(p["MaxSessionDuration"]["Default"], 3600)
        self.assertEqual(p["RoleName"]["Default"], "")
        self.assertNotIn("Default", p["ProviderPrincipalArn"], "the trust is always pinned")
        self.assertEqual(
            self.res["AccessRole"]["Properties"]["RoleName"],
            {"Fn::If": ["DefaultRoleName", {"Fn::Sub": "rolegate-${OrgName}"}, {"Ref": "RoleName"}]},
        )

    def test_access_levels_map_to_partition_aware_managed_policies(self):
        self.assertEqual(
            self.t["Mappings"]["AccessLevels"],
            {
                "ReadOnly": {"PolicyName": "ReadOnlyAccess"},
                "PowerUser": {"PolicyName": "PowerUserAccess"},
                "Administrator": {"PolicyName": "AdministratorAccess"},
            },
        )
        arns = self.res["AccessRole"]["Properties"]["ManagedPolicyArns"]
        self.assertEqual(len(arns), 1)
        self.assertEqual(arns[0]["Fn::Sub"][0], "arn:${AWS::Partition}:iam::aws:policy/${PolicyName}")
        # The AccessPolicyArn output is the very same expression, so the moto test, which sees
        # outputs but not attachments, checks what the role gets.
        self.assertEqual(self.t["Outputs"]["AccessPolicyArn"]["Value"], arns[0])

    def test_trust_policy(self):
        statements = self.res["AccessRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        self.assertEqual(len(statements), 2)
        # Exactly one principal of the provider's account, never the whole account.
        principal = {"AWS": {"Ref": "ProviderPrincipalArn"}}
        assume, session = statements
        self.assertEqual((assume["Effect"], assume["Action"], assume["Principal"]), ("Allow", "sts:AssumeRole", principal))
        self.assertEqual(assume["Condition"], {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}})
        self.assertEqual((session["Effect"], session["Principal"]), ("Allow", principal))
        self.assertEqual(session["Action"], ["sts:SetSourceIdentity", "sts:TagSession"])
        self.assertNotIn("PinProviderPrincipal", self.t.get("Conditions", {}))
        self.assertNotIn(":root", json.dumps(statements))

    def test_secret_reaches_the_lambda_only_through_the_custom_resource(self):
        uses = [
            path
            for path, value in walk(self.t)
            if value == {"Ref": "CallbackSecret"}
            or (isinstance(value, str) and "${CallbackSecret}" in value)
        ]
        self.assertEqual(uses, [("Resources", "RolegateCallback", "Properties", "CallbackSecret")])
        for name, resource in self.res.items():
            self.assertNotIn("Environment", resource.get("Properties", {}), name)

    def test_custom_resource(self):
        cr = self.res["RolegateCallback"]
        self.assertEqual(cr["Type"], "Custom::RolegateCallback")
        props = cr["Properties"]
        self.assertEqual(props["ServiceToken"], {"Fn::GetAtt": ["CallbackFunction", "Arn"]})
        self.assertEqual(props["OrgName"], {"Ref": "OrgName"})
        self.assertEqual(props["CallbackUrl"], {"Ref": "CallbackUrl"})
        self.assertEqual(props["CallbackSecret"], {"Ref": "CallbackSecret"})
        # GetAtt makes the callback depend on the role; an explicit DependsOn on top of it is
        # what cfn-lint's W3005 flags.
        self.assertEqual(props["RoleArn"], {"Fn::GetAtt": ["AccessRole", "Arn"]})
        self.assertEqual(props["MaxSessionDuration"], {"Ref": "MaxSessionDuration"})

    def test_lambda_function_and_its_role(self):
        fn = self.res["CallbackFunction"]["Properties"]
        self.assertIn(fn["Runtime"], ("python3.12", "python3.13"))
        self.assertEqual(fn["Handler"], "index.handler")
        self.assertEqual(fn["Role"], {"Fn::GetAtt": ["CallbackFunctionRole", "Arn"]})
        self.assertLessEqual(fn["Timeout"], 900)
        role = self.res["CallbackFunctionRole"]["Properties"]
        self.assertEqual(
            role["ManagedPolicyArns"],
            [{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}],
        )
        self.assertNotIn("Policies", role)

    def test_lambda_code_uses_the_standard_library_only(self):
        tree = ast.parse(support.callback_source(self.t))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module.split(".")[0])
        self.assertTrue(imported)
        self.assertLessEqual(imported, set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names))
        self.assertNotIn("cfnresponse", imported)

    def test_revocations_are_off_by_default_and_bounded(self):
        p = self.params["AllowRevocations"]
        self.assertEqual((p["Default"], p["AllowedValues"]), ("false", ["false", "true"]))
        role = self.res["AccessRole"]["Properties"]
        self.assertEqual(
            role["PermissionsBoundary"],
            {"Fn::If": ["RevocationsOn", {"Ref": "RoleBoundary"}, {"Ref": "AWS::NoValue"}]},
        )
        writer = role["Policies"]["Fn::If"][1][0]
        self.assertEqual(role["Policies"]["Fn::If"][0], "RevocationsOn")
        (statement,) = writer["PolicyDocument"]["Statement"]
        self.assertEqual(statement["Action"], ["iam:GetRolePolicy", "iam:PutRolePolicy", "iam:DeleteRolePolicy"])
        own_role = statement["Resource"]
        self.assertEqual(own_role["Fn::Sub"][0], "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${Name}")
        boundary = self.res["RoleBoundary"]
        self.assertEqual(boundary["Condition"], "RevocationsOn")
        statements = boundary["Properties"]["PolicyDocument"]["Statement"]
        by_sid = {}
        for st in statements:
            for _, v in walk(st):
                if isinstance(v, dict) and "Sid" in v:
                    by_sid.setdefault(v["Sid"], []).append(v)
        # The writer's three calls on the role itself are the only IAM writes the ceiling adds.
        (write,) = by_sid["WriteOwnRevocations"]
        self.assertEqual(write["Resource"], own_role)
        (keep,) = by_sid["KeepBoundaryAndTrust"]
        self.assertEqual(keep["Effect"], "Deny")
        for action in ("iam:DeleteRolePermissionsBoundary", "iam:PutRolePermissionsBoundary", "iam:UpdateAssumeRolePolicy", "iam:AttachRolePolicy"):
            self.assertIn(action, keep["Action"])
        self.assertEqual(keep["Resource"], own_role)
        (policy,) = by_sid["KeepThisPolicy"]
        self.assertIn("iam:CreatePolicyVersion", policy["Action"])
        # One ceiling per level: ReadOnly reads, PowerUser without IAM, Administrator all.
        ceilings = by_sid["LevelCeiling"]
        self.assertEqual(len(ceilings), 3)
        self.assertEqual(ceilings[1]["NotAction"], ["iam:*", "organizations:*", "account:*"])
        self.assertEqual(ceilings[2]["Action"], "*")
        self.assertTrue(all(a.startswith("*:") for a in ceilings[0]["Action"]))
        self.assertEqual(self.t["Outputs"]["BoundaryArn"]["Condition"], "RevocationsOn")

    def test_outputs(self):
        self.assertEqual(self.t["Outputs"]["RoleArn"]["Value"], {"Fn::GetAtt": ["AccessRole", "Arn"]})
        for output in self.t["Outputs"].values():
            self.assertNotIn("ExternalId", str(output["Value"]))
            self.assertNotIn("CallbackSecret", str(output["Value"]))


if __name__ == "__main__":
    unittest.main()
