"""schemathesis hooks for scripts/fuzz-api: keep the fuzzer from locking itself out.

The fuzzer learns ids from responses (GET /api/users lists the admin it runs as, GET /api/orgs
the org whose API key it holds) and would then rotate the admin's token, or rotate or
offboard that org's key: every later request would get 401 and reach no handler. Those few
calls are sent to another (unknown) id instead, which the document allows (404). Everything
else is sent as generated.
"""

import hashlib
import os
from urllib.parse import unquote

import schemathesis

# (method, path template, path parameter, protected value)
PROTECTED = [
    ("POST", "/api/users/{user_id}/token", "user_id", os.environ.get("RG_FUZZ_ADMIN", "admin")),
    ("DELETE", "/api/users/{user_id}", "user_id", os.environ.get("RG_FUZZ_ADMIN", "admin")),
    ("POST", "/api/orgs/{org}/api-key", "org", os.environ.get("RG_FUZZ_ORG", "fuzz-org")),
    ("DELETE", "/api/orgs/{org}", "org", os.environ.get("RG_FUZZ_ORG", "fuzz-org")),
]


def _canonical(value):
    # The server trims and lower-cases ids, and the path is percent-decoded.
    return unquote(str(value)).strip().lower()


@schemathesis.hook
def before_call(context, case, kwargs):
    params = case.path_parameters
    if not params:
        return
    for method, path, name, value in PROTECTED:
        if (
            case.operation.method.upper() == method
            and case.operation.path == path
            and name in params
            and _canonical(params[name]) == value
        ):
            params[name] = "spared-" + value


VISIBLE_ASCII = set(range(0x21, 0x7F))


@schemathesis.hook("before_call")
def distinct_idempotency_keys(context, case, kwargs):
    """A valid Idempotency-Key is made a function of the key and the body.

    Generated requests reuse a few key values with different bodies, which the server rightly
    answers 422 `idempotency_key_reused`: a state the fuzzer created, not a rejected value.
    Suffixing a digest of the body keeps every replay (same key, same body) and removes only
    those accidental collisions; invalid keys are sent unchanged, to be refused.
    """
    headers = case.headers
    if not headers:
        return
    for name in list(headers):
        if name.lower() != "idempotency-key":
            continue
        key = headers[name]
        if isinstance(key, str) and key and len(key) <= 255 and all(ord(c) in VISIBLE_ASCII for c in key):
            body = repr(getattr(case, "body", None)).encode()
            headers[name] = key[:230] + "-" + hashlib.sha256(body).hexdigest()[:16]


@schemathesis.serializer("application/pkix-crl")
def crl_bytes(ctx, value):
    """A CRL upload is a raw body (PEM text or DER bytes): send what was generated as bytes."""
    if isinstance(value, bytes):
        return value
    return str(value).encode()
