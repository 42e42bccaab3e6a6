"""Runs the onboarding template's own inline Lambda handler, as AWS Lambda would.

The event arrives on stdin as JSON; the code is extracted from cloudformation/onboarding.yaml
by the template tests' loader, so this runs exactly what customers deploy.
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "..", "cloudformation", "tests"))
import support  # noqa: E402


class Context:
    invoked_function_arn = "arn:aws:lambda:us-east-1:111122223333:function:rolegate-callback"
    log_stream_name = "test"

    def __init__(self, budget_ms):
        self.deadline = time.monotonic() + budget_ms / 1000

    def get_remaining_time_in_millis(self):
        return max(0, int((self.deadline - time.monotonic()) * 1000))


event = json.load(sys.stdin)
support.load_callback_module().handler(event, Context(int(os.environ.get("LAMBDA_BUDGET_MS", "40000"))))
