"""Validates the benchmark's orgs as their customers' stacks would: one signed `created`
callback each, from account 111122223333, with the org's callback secret (the wire format
of docs/onboarding.md). Usage: validate_orgs.py ROLEGATE_URL SECRETS_FILE"""

import hashlib
import hmac
import json
import secrets
import sys
import time
import urllib.request

ACCOUNT = "111122223333"


def main(url, secrets_file):
    with open(secrets_file) as f:
        pairs = [line.split() for line in f if line.strip()]
    for org, secret in pairs:
        body = json.dumps({
            "event": "created", "org_name": org, "account_id": ACCOUNT, "region": "us-east-1",
            "partition": "aws", "role_arn": f"arn:aws:iam::{ACCOUNT}:role/rolegate-{org}",
            "stack_id": f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/rolegate-{org}/bench",
        }, separators=(",", ":")).encode()
        ts, nonce = str(int(time.time())), secrets.token_hex(16)
        signed = f"{ts}|{nonce}|".encode() + body
        sig = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        req = urllib.request.Request(url + "/api/integrations/validate", data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "X-Sig-Timestamp": ts, "X-Sig-Nonce": nonce,
                                              "X-Sig-Signature": sig})
        with urllib.request.urlopen(req, timeout=30) as r:
            status = json.load(r)["status"]
        if status != "validated":
            sys.exit(f"{org} is {status}, not validated")
    print(f"validated {len(pairs)} orgs", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
