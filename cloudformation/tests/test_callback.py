"""The onboarding Lambda, imported from the template and run against local stand-ins.

One stand-in HTTP server plays rolegate (it answers from a script), another plays the
CloudFormation ResponseURL (it records the PUT). Every invocation goes through `invoke`, which
captures what the handler printed and checks that the callback secret appears nowhere: not in
the output, not in the response sent to CloudFormation, not in what was sent to rolegate.
"""

import contextlib
import hashlib
import hmac
import io
import json
import os
import re
import socket
import threading
import time
import unittest
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import support

SECRET = "rgc_" + "S3cr3tCallbackKeyNeverToBeSeen-0123456789ab"
OLD_SECRET = "rgc_" + "Old0SecretFromBeforeTheUpdate-0123456789abcd"
# The stack is in the customer's account 111122223333, eu-west-1. Nothing else in the event
# agrees with that, so a handler that reads account or region from anywhere else is caught.
STACK_ID = (
    "arn:aws:cloudformation:eu-west-1:111122223333:stack/rolegate-onboarding/"
    "0f6a1c20-6e1b-11ef-8d3e-0a1b2c3d4e5f"
)
FUNCTION_ARN = "arn:aws:lambda:eu-west-1:111122223333:function:rolegate-onboarding-CallbackFunction-X1"
ROLE_ARN = "arn:aws:iam::111122223333:role/rolegate-acme-corp"
SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")
NONCE_RE = re.compile(r"[0-9a-f]{32}")


class Recorded:
    def __init__(self, method, path, headers, body):
        self.method, self.path, self.headers, self.body = method, path, headers, body
        self.at = time.monotonic()

    def json(self):
        return json.loads(self.body)


class StandIn:
    """An HTTP server on 127.0.0.1:<free port> that records requests and plays scripted answers.

    Each answer is (status, body_bytes) or (status, body_bytes, delay_seconds); when the script
    is used up it answers `default`.
    """

    def __init__(self, answers=(), default=(200, b'{"ok":true}')):
        self.requests = []
        self.answers = list(answers)
        self.default = default
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                outer._serve(self)

            do_PUT = do_POST

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that timed out and hung up is part of some tests

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _serve(self, h):
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        with self.lock:
            self.requests.append(Recorded(h.command, h.path, h.headers, body))
            answer = self.answers.pop(0) if self.answers else self.default
        status, payload = answer[0], answer[1]
        if len(answer) > 2:
            time.sleep(answer[2])
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(payload)))
        h.send_header("x-request-id", "hdr-request-id")
        h.end_headers()
        h.wfile.write(payload)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class FakeContext:
    """The part of the Lambda context object the handler may use."""

    def __init__(self, seconds=60):
        self.deadline = time.monotonic() + seconds
        self.invoked_function_arn = FUNCTION_ARN
        self.function_name = FUNCTION_ARN.rsplit(":", 1)[1]
        self.aws_request_id = str(uuid.uuid4())
        self.log_stream_name = "2025/01/01/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self):
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def rolegate_error(code, request_id="req-7f3a9c"):
    return json.dumps(
        {"error": {"code": code, "message": "nope", "request_id": request_id}}
    ).encode()


def closed_port_url():
    """A URL on which nothing listens: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/onboarding/callback"


class CallbackTest(unittest.TestCase):
    def setUp(self):
        self.mod = support.load_callback_module()
        self.cfn = StandIn()
        self.addCleanup(self.cfn.close)
        # Lambda's environment names a region; it must not be the one reported.
        env = mock.patch.dict(os.environ, {"AWS_REGION": "ap-southeast-2", "AWS_DEFAULT_REGION": "ap-southeast-2"})
        env.start()
        self.addCleanup(env.stop)
        for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
            os.environ.pop(var, None)  # restored by the patch.dict above

    def rolegate(self, *answers, default=(200, b'{"status":"connected"}')):
        server = StandIn(answers, default)
        self.addCleanup(server.close)
        return server

    def event(self, kind, callback_url, **changes):
        event = {
            "RequestType": kind,
            "ServiceToken": FUNCTION_ARN,
            "ResponseURL": self.cfn.url + "/cfn-response?X-Amz-Signature=abc123",
            "StackId": STACK_ID,
            "RequestId": str(uuid.uuid4()),
            "LogicalResourceId": "RolegateCallback",
            "ResourceType": "Custom::RolegateCallback",
            "ResourceProperties": {
                "ServiceToken": FUNCTION_ARN,
                "ServiceTimeout": "300",
                "OrgName": "acme-corp",
                "CallbackUrl": callback_url,
                "CallbackSecret": SECRET,
                "RoleArn": ROLE_ARN,
                # CloudFormation passes every property as a string.
                "MaxSessionDuration": "7200",
                # Decoys: a handler must not take the account, region or partition from here.
                "ProviderAccountId": "999988887777",
                "AccountId": "999988887777",
                "Region": "us-east-1",
                "Partition": "aws-cn",
            },
        }
        if kind != "Create":
            event["PhysicalResourceId"] = "rolegate-callback-acme-corp"
        if kind == "Update":
            event["OldResourceProperties"] = dict(
                event["ResourceProperties"], CallbackSecret=OLD_SECRET
            )
        event.update(changes)
        return event

    def invoke(self, event, context=None):
        """Run the handler; return (printed output, the one response CloudFormation received)."""
        context = context or FakeContext()
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            result = self.mod.handler(event, context)
        printed = out.getvalue() + err.getvalue()
        self.assertIsNone(result)
        self.assertEqual(len(self.cfn.requests), 1, "CloudFormation must get exactly one answer")
        put = self.cfn.requests[0]
        self.assertEqual(put.method, "PUT")
        self.assertEqual(put.path, "/cfn-response?X-Amz-Signature=abc123")
        self.assertEqual(put.headers.get("Content-Type"), "")
        response = put.json()
        for secret in (SECRET, OLD_SECRET):
            self.assertNotIn(secret, printed)
            self.assertNotIn(secret, put.body.decode())
        self.assertEqual(response["StackId"], event.get("StackId"))
        self.assertEqual(response["RequestId"], event.get("RequestId"))
        self.assertEqual(response["LogicalResourceId"], event.get("LogicalResourceId"))
        self.assertTrue(response["PhysicalResourceId"])
        self.assertTrue(response["Reason"])
        self.assertEqual(response["Data"], {"Status": response["Status"]})
        self.printed = printed
        return response

    def assert_signed(self, request, secret=SECRET):
        """The request carries a valid signature over exactly `ts|nonce|body`."""
        ts = request.headers["X-Sig-Timestamp"]
        nonce = request.headers["X-Sig-Nonce"]
        signature = request.headers["X-Sig-Signature"]
        self.assertRegex(ts, r"^[0-9]+$")
        self.assertLess(abs(int(ts) - time.time()), 60)
        self.assertRegex(nonce, NONCE_RE)
        self.assertRegex(signature, SIGNATURE_RE)
        expected = hmac.new(
            secret.encode(), f"{ts}|{nonce}|".encode() + request.body, hashlib.sha256
        ).hexdigest()
        self.assertTrue(hmac.compare_digest(signature, expected), "signature does not verify")
        self.assertEqual(request.headers["Content-Type"], "application/json")
        self.assertEqual(request.method, "POST")
        for leaked in (SECRET, OLD_SECRET):
            self.assertNotIn(leaked, request.body.decode())
            self.assertNotIn(leaked, str(request.headers))

    def assert_notice(self, request, event_name):
        self.assertEqual(
            request.json(),
            {
                "event": event_name,
                "org_name": "acme-corp",
                "account_id": "111122223333",
                "region": "eu-west-1",
                "partition": "aws",
                "role_arn": ROLE_ARN,
                "stack_id": STACK_ID,
                "max_session_duration": 7200,
            },
        )

    # --- Create, Update, Delete when all goes well

    def test_create_posts_a_signed_notice_and_answers_success(self):
        rolegate = self.rolegate()
        response = self.invoke(self.event("Create", rolegate.url + "/api/onboarding/callback"))
        self.assertEqual(len(rolegate.requests), 1)
        request = rolegate.requests[0]
        self.assertEqual(request.path, "/api/onboarding/callback")
        self.assert_signed(request)
        self.assert_notice(request, "created")
        self.assertEqual(response["Status"], "SUCCESS")
        self.assertEqual(response["PhysicalResourceId"], "rolegate-callback-acme-corp")

    def test_signature_does_not_verify_with_another_secret_or_body(self):
        rolegate = self.rolegate()
        self.invoke(self.event("Create", rolegate.url))
        request = rolegate.requests[0]
        ts, nonce = request.headers["X-Sig-Timestamp"], request.headers["X-Sig-Nonce"]
        for key, body in ((b"another-secret", request.body), (SECRET.encode(), request.body + b" ")):
            forged = hmac.new(key, f"{ts}|{nonce}|".encode() + body, hashlib.sha256).hexdigest()
            self.assertNotEqual(forged, request.headers["X-Sig-Signature"])

    def test_account_region_and_partition_come_from_the_stack_id(self):
        rolegate = self.rolegate()
        stack_id = "arn:aws-us-gov:cloudformation:us-gov-west-1:444455556666:stack/onboard/1d2e3f"
        self.invoke(self.event("Create", rolegate.url, StackId=stack_id))
        notice = rolegate.requests[0].json()
        self.assertEqual(
            (notice["account_id"], notice["region"], notice["partition"], notice["stack_id"]),
            ("444455556666", "us-gov-west-1", "aws-us-gov", stack_id),
        )

    def test_update_posts_updated_and_keeps_the_physical_id(self):
        rolegate = self.rolegate()
        response = self.invoke(self.event("Update", rolegate.url))
        self.assert_signed(rolegate.requests[0])  # signed with the new secret, not the old one
        self.assert_notice(rolegate.requests[0], "updated")
        self.assertEqual(response["Status"], "SUCCESS")
        self.assertEqual(response["PhysicalResourceId"], "rolegate-callback-acme-corp")

    def test_delete_posts_deleted(self):
        rolegate = self.rolegate()
        response = self.invoke(self.event("Delete", rolegate.url))
        self.assert_signed(rolegate.requests[0])
        self.assert_notice(rolegate.requests[0], "deleted")
        self.assertEqual(response["Status"], "SUCCESS")
        self.assertEqual(response["PhysicalResourceId"], "rolegate-callback-acme-corp")

    # --- Retries

    def test_a_503_is_retried_with_a_fresh_nonce_and_signature(self):
        rolegate = self.rolegate((503, rolegate_error("store_unavailable")))
        response = self.invoke(self.event("Create", rolegate.url))
        self.assertEqual(response["Status"], "SUCCESS")
        self.assertEqual(len(rolegate.requests), 2)
        first, second = rolegate.requests
        for request in (first, second):
            self.assert_signed(request)
            self.assert_notice(request, "created")
        self.assertEqual(first.body, second.body)
        self.assertNotEqual(first.headers["X-Sig-Nonce"], second.headers["X-Sig-Nonce"])
        self.assertNotEqual(first.headers["X-Sig-Signature"], second.headers["X-Sig-Signature"])
        self.assertGreaterEqual(second.at - first.at, self.mod.FIRST_BACKOFF_S * 0.9)

    def test_a_timeout_is_retried(self):
        self.mod.ATTEMPT_TIMEOUT_S = 0.5
        self.mod.FIRST_BACKOFF_S = 0.1
        rolegate = self.rolegate((200, b"{}", 3))  # the first answer comes too late
        response = self.invoke(self.event("Create", rolegate.url))
        self.assertEqual(response["Status"], "SUCCESS")
        self.assertEqual(len(rolegate.requests), 2)
        self.assertNotEqual(
            rolegate.requests[0].headers["X-Sig-Nonce"], rolegate.requests[1].headers["X-Sig-Nonce"]
        )

    def test_backoff_doubles_between_attempts(self):
        self.mod.FIRST_BACKOFF_S = 0.2
        rolegate = self.rolegate(*[(502, b"bad gateway")] * 3)
        response = self.invoke(self.event("Create", rolegate.url))
        self.assertEqual(response["Status"], "SUCCESS")
        at = [r.at for r in rolegate.requests]
        self.assertEqual(len(at), 4)
        gaps = [b - a for a, b in zip(at, at[1:])]
        for gap, expected in zip(gaps, (0.2, 0.4, 0.8)):
            self.assertGreaterEqual(gap, expected * 0.9)

    def test_gives_up_in_time_to_answer_cloudformation(self):
        rolegate = self.rolegate(default=(503, rolegate_error("store_unavailable")))
        context = FakeContext(seconds=self.mod.RESERVE_S + 3)
        response = self.invoke(self.event("Create", rolegate.url), context)
        self.assertEqual(response["Status"], "FAILED")
        self.assertIn("HTTP 503", response["Reason"])
        self.assertGreaterEqual(len(rolegate.requests), 2)
        left_when_answered = context.deadline - self.cfn.requests[0].at
        self.assertGreater(left_when_answered, self.mod.RESERVE_S - 1)

    def test_a_429_is_retried_then_the_stack_succeeds(self):
        self.mod.FIRST_BACKOFF_S = 0.1
        rolegate = self.rolegate((429, rolegate_error("rate_limited")))
        response = self.invoke(self.event("Create", rolegate.url))
        self.assertEqual(response["Status"], "SUCCESS")
        self.assertEqual(len(rolegate.requests), 2)
        self.assertNotEqual(
            rolegate.requests[0].headers["X-Sig-Nonce"], rolegate.requests[1].headers["X-Sig-Nonce"]
        )

    def test_a_409_binding_changed_is_retried(self):
        self.mod.FIRST_BACKOFF_S = 0.1
        rolegate = self.rolegate((409, rolegate_error("binding_changed")))
        response = self.invoke(self.event("Create", rolegate.url))
        self.assertEqual(response["Status"], "SUCCESS")
        self.assertEqual(len(rolegate.requests), 2)

    def test_another_409_is_final(self):
        rolegate = self.rolegate((409, rolegate_error("account_mismatch")))
        response = self.invoke(self.event("Create", rolegate.url))
        self.assertEqual(len(rolegate.requests), 1)
        self.assertEqual(response["Status"], "FAILED")
        self.assertIn("account_mismatch", response["Reason"])

    def test_401_and_424_fail_at_once(self):
        for status, code in ((401, "invalid_signature"), (424, "trust_not_verified")):
            with self.subTest(status=status):
                self.cfn.requests.clear()
                rolegate = self.rolegate((status, rolegate_error(code)))
                response = self.invoke(self.event("Create", rolegate.url))
                self.assertEqual(len(rolegate.requests), 1, f"a {status} is not retried")
                self.assertEqual(response["Status"], "FAILED")
                self.assertIn(code, response["Reason"])

    def test_transient_answers_are_retried_until_the_budget_runs_out(self):
        self.mod.FIRST_BACKOFF_S = 0.2
        rolegate = self.rolegate(default=(429, rolegate_error("rate_limited")))
        context = FakeContext(seconds=self.mod.RESERVE_S + 2)
        response = self.invoke(self.event("Create", rolegate.url), context)
        self.assertEqual(response["Status"], "FAILED")
        self.assertIn("rate_limited", response["Reason"])
        self.assertGreaterEqual(len(rolegate.requests), 2)
        self.assertGreater(context.deadline - self.cfn.requests[0].at, self.mod.RESERVE_S - 1)

    # --- Rejections

    def test_a_400_fails_the_resource_with_rolegates_error_code(self):
        rolegate = self.rolegate((400, rolegate_error("invalid_signature", "req-0042")))
        response = self.invoke(self.event("Create", rolegate.url))
        self.assertEqual(len(rolegate.requests), 1, "a 4xx is not retried")
        self.assertEqual(response["Status"], "FAILED")
        self.assertIn("invalid_signature", response["Reason"])
        self.assertEqual(
            response["Reason"], "rolegate rejected the callback: invalid_signature (request req-0042)"
        )
        self.assertEqual(response["PhysicalResourceId"], "rolegate-callback-acme-corp")

    def test_a_4xx_without_rolegates_error_body_still_fails_clearly(self):
        rolegate = self.rolegate((404, b"<html>not here</html>"))
        response = self.invoke(self.event("Update", rolegate.url))
        self.assertEqual(response["Status"], "FAILED")
        self.assertEqual(
            response["Reason"], "rolegate rejected the callback: HTTP 404 (request hdr-request-id)"
        )

    def test_a_redirect_is_not_followed(self):
        rolegate = self.rolegate((307, b""))
        response = self.invoke(self.event("Create", rolegate.url))
        self.assertEqual(len(rolegate.requests), 1)
        self.assertEqual(response["Status"], "FAILED")
        self.assertIn("HTTP 307", response["Reason"])

    # --- Failures that must still answer CloudFormation

    def test_a_crash_still_answers_failed(self):
        rolegate = self.rolegate()
        event = self.event("Create", rolegate.url)
        del event["ResourceProperties"]
        response = self.invoke(event)
        self.assertEqual(response["Status"], "FAILED")
        self.assertIn("ResourceProperties", response["Reason"])
        self.assertEqual(rolegate.requests, [])

    def test_a_malformed_stack_id_fails_without_calling_rolegate(self):
        rolegate = self.rolegate()
        response = self.invoke(self.event("Create", rolegate.url, StackId="not-an-arn"))
        self.assertEqual(response["Status"], "FAILED")
        self.assertEqual(rolegate.requests, [])

    def test_delete_with_rolegate_unreachable_answers_success(self):
        context = FakeContext(seconds=self.mod.RESERVE_S + 2.5)
        response = self.invoke(self.event("Delete", closed_port_url()), context)
        self.assertEqual(response["Status"], "SUCCESS")
        self.assertIn("rolegate was not told", response["Reason"])
        self.assertEqual(response["PhysicalResourceId"], "rolegate-callback-acme-corp")

    def test_delete_rejected_by_rolegate_answers_success(self):
        rolegate = self.rolegate((403, rolegate_error("forbidden")))
        response = self.invoke(self.event("Delete", rolegate.url))
        self.assertEqual(response["Status"], "SUCCESS")
        self.assertIn("forbidden", response["Reason"])

    def test_create_with_rolegate_unreachable_fails(self):
        context = FakeContext(seconds=self.mod.RESERVE_S + 2.5)
        response = self.invoke(self.event("Create", closed_port_url()), context)
        self.assertEqual(response["Status"], "FAILED")
        self.assertIn("did not accept the callback", response["Reason"])

    def test_the_secret_is_redacted_even_from_error_text(self):
        # A hostile or broken endpoint echoing the secret must not get it into the Reason.
        rolegate = self.rolegate((400, rolegate_error(f"bad secret {SECRET}")))
        response = self.invoke(self.event("Create", rolegate.url))
        self.assertEqual(response["Status"], "FAILED")
        self.assertIn("[redacted]", response["Reason"])

    def test_the_handler_never_raises_even_if_cloudformation_is_unreachable(self):
        rolegate = self.rolegate()
        event = self.event("Create", rolegate.url, ResponseURL=closed_port_url())
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            self.assertIsNone(self.mod.handler(event, FakeContext()))
        self.assertIn("could not answer CloudFormation", out.getvalue())
        self.assertNotIn(SECRET, out.getvalue())


if __name__ == "__main__":
    unittest.main()
