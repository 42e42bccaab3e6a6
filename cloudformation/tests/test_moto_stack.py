"""Deploy the onboarding stack into the customer's account in moto (see /work/shared/MOTO.md).

moto runs no Lambda code, so the callback resource stays CREATE_IN_PROGRESS until the test
answers for the Lambda with a cfn-response, as CloudFormation's ResponseURL would receive it.
"""

import ast
import json
import os
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import boto3

import support

CUSTOMER = "111122223333"
PROVIDER = "123456789012"
REGION = "eu-west-1"
EXTERNAL_ID = "Xy7" * 16
BROKER = f"arn:aws:iam::{PROVIDER}:user/rolegate-broker"
SECRET = "rgc_" + "MotoStackCallbackSecret-0123456789abcdefghi"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """moto_server on a free port, started and stopped by the test."""

    def __init__(self):
        self.log = tempfile.TemporaryFile()
        for _ in range(3):  # the port could be taken between choosing and binding it
            port = free_port()
            self.process = subprocess.Popen(
                [support.venv_tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                stdout=self.log,
                stderr=subprocess.STDOUT,
                env=self._env(),
            )
            self.endpoint = f"http://127.0.0.1:{port}"
            if self._ready():
                return
            self.stop()
        raise RuntimeError("moto_server did not start")

    @staticmethod
    def _env():
        env = dict(os.environ)
        # MOTO_ACCOUNT_ID would override x-moto-account-id, and the account must come from it.
        env.pop("MOTO_ACCOUNT_ID", None)
        return env

    def _ready(self):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1):
                    return True
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        return False

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class OnboardingStackTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.moto = MotoServer()
        cls.cfn = cls.client("cloudformation", CUSTOMER)
        cls.iam = cls.client("iam", CUSTOMER)

    @classmethod
    def tearDownClass(cls):
        cls.moto.stop()
        cls.moto.log.close()

    @classmethod
    def client(cls, service, account):
        client = boto3.client(
            service,
            endpoint_url=cls.moto.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

        def in_account(request, **_):
            request.headers["x-moto-account-id"] = account

        client.meta.events.register("before-sign.*.*", in_account)
        return client

    def create(self, stack_name, cfn=None, **params):
        parameters = {
            "OrgName": "acme-corp",
            "ExternalId": EXTERNAL_ID,
            "CallbackUrl": "https://rolegate.example.com/api/onboarding/callback",
            "CallbackSecret": SECRET,
            "ProviderAccountId": PROVIDER,
            "ProviderPrincipalArn": BROKER,
        }
        parameters.update(params)
        return (cfn or self.cfn).create_stack(
            StackName=stack_name,
            TemplateBody=support.template_text(),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_NAMED_IAM"],
        )["StackId"]

    def stack(self, stack_id, cfn=None):
        return (cfn or self.cfn).describe_stacks(StackName=stack_id)["Stacks"][0]

    def answer_for_the_lambda(self, stack_id, status="SUCCESS", account=CUSTOMER):
        """PUT the cfn-response the Lambda would send to its ResponseURL."""
        body = json.dumps(
            {
                "Status": status,
                "Reason": "rolegate accepted the callback (HTTP 200)",
                "PhysicalResourceId": "rolegate-callback-acme-corp",
                "StackId": stack_id,
                "RequestId": "moto-does-not-check-this",
                "LogicalResourceId": "RolegateCallback",
                "Data": {"Status": status},
            }
        ).encode()
        request = urllib.request.Request(
            f"{self.moto.endpoint}/cloudformation_{REGION}/cfnresponse?stack={stack_id}",
            data=body,
            method="PUT",
            headers={
                "Content-Type": "",
                "x-moto-account-id": account,
                # moto picks the region of this request from the User-Agent (else us-east-1),
                # not from the /cloudformation_<region>/ path.
                "User-Agent": f"rolegate-tests region/{REGION}",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            self.assertEqual(response.status, 200)

    def wait_for(self, stack_id, status, timeout=30, cfn=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = self.stack(stack_id, cfn)["StackStatus"]
            if current == status:
                return self.stack(stack_id, cfn)
            time.sleep(0.2)
        self.fail(f"stack stayed {current}, expected {status}")

    def trust(self, role_name):
        role = self.iam.get_role(RoleName=role_name)["Role"]
        document = role["AssumeRolePolicyDocument"]
        if isinstance(document, str):
            document = json.loads(urllib.parse.unquote(document))
        return role, document["Statement"]

    def assert_managed_policy(self, stack, role_name, policy_name):
        expected = f"arn:aws:iam::aws:policy/{policy_name}"
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        self.assertEqual(outputs["AccessPolicyArn"], expected)
        # moto 5.2.5 ignores ManagedPolicyArns on AWS::IAM::Role (nothing is attached). The
        # AccessPolicyArn output is the same expression as the role's ManagedPolicyArns
        # (test_template checks that), so the output stands in; if a later moto attaches the
        # policy, it must be exactly this one.
        attached = self.iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
        if attached:
            self.assertEqual([p["PolicyArn"] for p in attached], [expected])

    def test_onboarding_stack_in_the_customer_account(self):
        stack_id = self.create("rolegate-onboarding", AccessLevel="PowerUser", MaxSessionDuration="7200")
        self.assertTrue(stack_id.startswith(f"arn:aws:cloudformation:{REGION}:{CUSTOMER}:stack/"))

        # The role is there, in the customer's account, before the callback is answered.
        role, statements = self.trust("rolegate-acme-corp")
        self.assertEqual(role["Arn"], f"arn:aws:iam::{CUSTOMER}:role/rolegate-acme-corp")
        self.assertEqual(role["MaxSessionDuration"], 7200)
        assume, session = statements
        self.assertEqual(assume["Action"], "sts:AssumeRole")
        self.assertEqual(assume["Principal"], {"AWS": BROKER})
        self.assertEqual(assume["Condition"], {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}})
        self.assertEqual(session["Action"], ["sts:SetSourceIdentity", "sts:TagSession"])
        self.assertEqual(session["Principal"], {"AWS": BROKER})
        self.assertNotIn("Condition", session)

        # Not in the provider's (moto's default) account.
        provider_iam = self.client("iam", PROVIDER)
        with self.assertRaises(provider_iam.exceptions.NoSuchEntityException):
            provider_iam.get_role(RoleName="rolegate-acme-corp")

        # Until the Lambda answers, the stack waits on the callback resource.
        time.sleep(0.5)
        self.assertEqual(self.stack(stack_id)["StackStatus"], "CREATE_IN_PROGRESS")
        # moto 5.2.5 lists a resource whose Condition is false (RoleBoundary, without
        # AllowRevocations) as an entry with no LogicalResourceId; CloudFormation omits it.
        resources = {
            r["LogicalResourceId"]: r["ResourceStatus"]
            for r in self.cfn.describe_stack_resources(StackName=stack_id)["StackResources"]
            if "LogicalResourceId" in r
        }
        self.assertEqual(resources["RolegateCallback"], "CREATE_IN_PROGRESS")

        self.answer_for_the_lambda(stack_id)
        stack = self.wait_for(stack_id, "CREATE_COMPLETE")
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        self.assertEqual(outputs["RoleArn"], f"arn:aws:iam::{CUSTOMER}:role/rolegate-acme-corp")
        self.assertEqual(outputs["RoleName"], "rolegate-acme-corp")
        self.assert_managed_policy(stack, "rolegate-acme-corp", "PowerUserAccess")
        # (moto echoes NoEcho parameters back unmasked, so NoEcho is checked in test_template.)

        self.cfn.delete_stack(StackName=stack_id)
        self.wait_for(stack_id, "DELETE_COMPLETE")
        with self.assertRaises(self.iam.exceptions.NoSuchEntityException):
            self.iam.get_role(RoleName="rolegate-acme-corp")

    def test_only_the_pinned_provider_principal_can_assume_the_role(self):
        """Issue 10, defect 4: another principal of the provider's account, holding the
        ExternalId, is denied. Checked with moto's IAM mode, which matches trust principals by
        exact ARN (and wrongly denies `:root` principals, so a trust of the whole account
        would deny the broker too and fail this test). moto 5.2.5 evaluates a trust policy
        only when the role is in the caller's own account, so this one stack is deployed in
        the provider's account; the trust policy is the same wherever the role lives."""
        cfn = self.client("cloudformation", PROVIDER)
        stack_id = self.create("rolegate-onboarding-pinned", cfn=cfn, OrgName="pinned-org")
        self.answer_for_the_lambda(stack_id, account=PROVIDER)
        self.wait_for(stack_id, "CREATE_COMPLETE", cfn=cfn)
        role_arn = f"arn:aws:iam::{PROVIDER}:role/rolegate-pinned-org"
        provider_iam = self.client("iam", PROVIDER)
        keys = {}
        for name in ("rolegate-broker", "intruder"):
            provider_iam.create_user(UserName=name)
            provider_iam.put_user_policy(
                UserName=name,
                PolicyName="assume-anything",
                PolicyDocument=json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
                                "Resource": "*",
                            }
                        ],
                    }
                ),
            )
            key = provider_iam.create_access_key(UserName=name)["AccessKey"]
            keys[name] = (key["AccessKeyId"], key["SecretAccessKey"])
        # From here on moto checks IAM for every request.
        request = urllib.request.Request(
            f"{self.moto.endpoint}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            self.assertEqual(response.status, 200)
        try:

            def assume(name, external_id=EXTERNAL_ID):
                sts = boto3.client(
                    "sts",
                    endpoint_url=self.moto.endpoint,
                    region_name=REGION,
                    aws_access_key_id=keys[name][0],
                    aws_secret_access_key=keys[name][1],
                )
                return sts.assume_role(RoleArn=role_arn, RoleSessionName="probe", ExternalId=external_id)

            creds = assume("rolegate-broker")["Credentials"]
            self.assertTrue(creds["AccessKeyId"])
            for who, external_id in (("intruder", EXTERNAL_ID), ("rolegate-broker", "Wr0ng" * 8)):
                with self.subTest(who=who, external_id=external_id):
                    with self.assertRaises(Exception) as denied:
                        assume(who, external_id)
                    self.assertIn("AccessDenied", str(denied.exception))
        finally:
            request = urllib.request.Request(
                f"{self.moto.endpoint}/moto-api/reset-auth",
                data=b"1000000",
                method="POST",
                headers={"Content-Type": "text/plain"},
            )
            urllib.request.urlopen(request, timeout=10).close()

    def test_an_explicit_role_name_wins(self):
        stack_id = self.create(
            "rolegate-onboarding-named", OrgName="named-org", RoleName="ProviderAccess", AccessLevel="Administrator"
        )
        role, _ = self.trust("ProviderAccess")
        self.assertEqual(role["Arn"], f"arn:aws:iam::{CUSTOMER}:role/ProviderAccess")
        self.answer_for_the_lambda(stack_id)
        stack = self.wait_for(stack_id, "CREATE_COMPLETE")
        self.assert_managed_policy(stack, "ProviderAccess", "AdministratorAccess")

    def test_revocations_option_puts_a_boundary_and_lets_the_role_write_its_own_policy(self):
        stack_id = self.create("rolegate-onboarding-revoke", OrgName="revoke-org", AllowRevocations="true")
        self.answer_for_the_lambda(stack_id)
        stack = self.wait_for(stack_id, "CREATE_COMPLETE")
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        boundary_arn = f"arn:aws:iam::{CUSTOMER}:policy/rolegate-revoke-org-boundary"
        self.assertEqual(outputs["BoundaryArn"], boundary_arn)
        role = self.iam.get_role(RoleName="rolegate-revoke-org")["Role"]
        self.assertEqual(role["PermissionsBoundary"]["PermissionsBoundaryArn"], boundary_arn)
        writer = self.iam.get_role_policy(RoleName="rolegate-revoke-org", PolicyName="rolegate-revocation-writer")
        document = writer["PolicyDocument"]
        if isinstance(document, str):
            # moto 5.2.5 keeps a stack's inline policy as Python's repr of the dict.
            document = ast.literal_eval(urllib.parse.unquote(document))
        self.assertEqual(
            document["Statement"][0]["Resource"], f"arn:aws:iam::{CUSTOMER}:role/rolegate-revoke-org"
        )
        version = self.iam.get_policy(PolicyArn=boundary_arn)["Policy"]["DefaultVersionId"]
        ceiling = self.iam.get_policy_version(PolicyArn=boundary_arn, VersionId=version)["PolicyVersion"]["Document"]
        if isinstance(ceiling, str):
            ceiling = json.loads(urllib.parse.unquote(ceiling))
        sids = [st["Sid"] for st in ceiling["Statement"]]
        # ReadOnly (the default level): its ceiling, no secret values, the denies.
        self.assertEqual(ceiling["Statement"][1]["Effect"], "Deny")
        self.assertEqual(
            sids, ["LevelCeiling", "LevelExtras", "WriteOwnRevocations", "KeepBoundaryAndTrust", "KeepThisPolicy"]
        )
        # What rolegate does with it: assume the role and write its own revocations policy.
        sts = self.client("sts", PROVIDER)
        creds = sts.assume_role(
            RoleArn=role["Arn"], RoleSessionName="revoke", ExternalId=EXTERNAL_ID
        )["Credentials"]
        as_role = boto3.client(
            "iam",
            endpoint_url=self.moto.endpoint,
            region_name=REGION,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )
        deny = {"Version": "2012-10-17", "Statement": [{"Sid": "RgG60E960", "Effect": "Deny", "Action": "*", "Resource": "*"}]}
        as_role.put_role_policy(
            RoleName="rolegate-revoke-org", PolicyName="rolegate-revocations", PolicyDocument=json.dumps(deny)
        )
        names = self.iam.list_role_policies(RoleName="rolegate-revoke-org")["PolicyNames"]
        self.assertEqual(sorted(names), ["rolegate-revocation-writer", "rolegate-revocations"])
        self.cfn.delete_stack(StackName=stack_id)
        self.wait_for(stack_id, "DELETE_COMPLETE")

    def test_without_the_option_there_is_no_boundary(self):
        stack_id = self.create("rolegate-onboarding-plain", OrgName="plain-org")
        self.answer_for_the_lambda(stack_id)
        stack = self.wait_for(stack_id, "CREATE_COMPLETE")
        role = self.iam.get_role(RoleName="rolegate-plain-org")["Role"]
        self.assertNotIn("PermissionsBoundary", role)
        self.assertEqual(self.iam.list_role_policies(RoleName="rolegate-plain-org")["PolicyNames"], [])
        self.assertNotIn("BoundaryArn", {o["OutputKey"] for o in stack["Outputs"]})


if __name__ == "__main__":
    unittest.main()
