"""S3's checks of a browser upload (a presigned POST), which moto's server skips: a WSGI layer in front of it.

moto 5 stores whatever a form POST to a bucket carries: it checks neither the policy's signature, nor its
expiry, nor its conditions. S3 does, and the jobs API relies on it (maas_core.jobs.service: the job's exact
key, its Content-Type and metadata, a size cap). So the local stack puts this in front of moto, answering as
S3 answers (its XML error bodies):

- the signature (SigV4 over the base64 policy, with the secret of the form's access key) -> 403
  SignatureDoesNotMatch; an access key it was not told of -> 403 InvalidAccessKeyId
- the policy's `expiration` passed -> 403 AccessDenied "Policy expired"
- a condition not met (`{"field": value}`, `["eq" | "starts-with", "$field", value]`) or a form field that no
  condition covers -> 403 AccessDenied "Invalid according to Policy"
- `["content-length-range", min, max]`: a bigger file -> 400 EntityTooLarge, a smaller one -> 400 EntityTooSmall

A POST without a `policy` field (moto's own API calls, e.g. DeleteObjects) passes untouched. Dev-only code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from werkzeug.formparser import parse_form_data

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# fields S3 never asks a condition for
UNCHECKED_FIELDS = {"policy", "x-amz-signature", "file", "awsaccesskeyid", "signature"}


class PolicyRefused(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def xml(self) -> bytes:
        extra = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in self.extra.items())
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{self.code}</Code>'
                f"<Message>{escape(self.message)}</Message>{extra}</Error>").encode()


class PostPolicyCheck:
    """WSGI middleware: check a form POST's policy as S3 does (see the module docstring), then hand it to `app`."""

    def __init__(self, app: WsgiApp, secrets: Mapping[str, str]) -> None:
        self.app = app
        self.secrets = dict(secrets)  # access key id -> secret access key

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        content_type = str(environ.get("CONTENT_TYPE", ""))
        if environ.get("REQUEST_METHOD") != "POST" or not content_type.startswith("multipart/form-data"):
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        _, form, files = parse_form_data(environ)
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads the form again
        if "policy" in form:
            path = str(environ.get("PATH_INFO", "")).strip("/")
            fields = {k.lower(): v for k, v in form.items()}
            upload = files.get("file")
            size = len(upload.read()) if upload is not None else 0
            try:
                self.check(fields, bucket=path.split("/", 1)[0], size=size)
            except PolicyRefused as refused:
                # with the origin header moto adds to its own answers, so a page can read why S3 refused
                start_response(f"{refused.status} {'Bad Request' if refused.status == 400 else 'Forbidden'}",
                               [("Content-Type", "application/xml"), ("Access-Control-Allow-Origin", "*")])
                return [refused.xml()]
        return self.app(environ, start_response)

    def check(self, fields: Mapping[str, str], bucket: str, size: int, now: datetime | None = None) -> None:
        self._check_signature(fields)
        try:
            policy = json.loads(base64.b64decode(fields["policy"]))
            expiration = datetime.fromisoformat(str(policy["expiration"]).replace("Z", "+00:00"))
        except (ValueError, KeyError, TypeError) as exc:
            raise PolicyRefused(400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.") from exc
        if expiration <= (now or datetime.now(UTC)):
            raise PolicyRefused(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        values = {**fields, "bucket": bucket}
        covered = {"bucket"}
        for condition in policy.get("conditions", []):
            if isinstance(condition, dict):
                for name, expected in condition.items():
                    covered.add(name.lower())
                    self._expect(values, "eq", name.lower(), expected)
            elif condition[0] == "content-length-range":
                low, high = int(condition[1]), int(condition[2])
                if size > high:
                    raise PolicyRefused(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size",
                                        ProposedSize=size, MaxSizeAllowed=high)
                if size < low:
                    raise PolicyRefused(400, "EntityTooSmall",
                                        "Your proposed upload is smaller than the minimum allowed size",
                                        ProposedSize=size, MinSizeAllowed=low)
            else:
                name = str(condition[1]).lstrip("$").lower()
                covered.add(name)
                self._expect(values, str(condition[0]).lower(), name, condition[2])
        extra = sorted(k for k in fields if k not in covered and k not in UNCHECKED_FIELDS
                       and not k.startswith("x-ignore-"))
        if extra:
            raise PolicyRefused(403, "AccessDenied", f"Invalid according to Policy: Extra input fields: {extra[0]}")

    def _check_signature(self, fields: Mapping[str, str]) -> None:
        credential = fields.get("x-amz-credential", "")
        parts = credential.split("/")
        if fields.get("x-amz-algorithm") != "AWS4-HMAC-SHA256" or len(parts) != 5:
            raise PolicyRefused(403, "AccessDenied", "Invalid according to Policy: no Signature Version 4 credential")
        secret = self.secrets.get(parts[0])
        if secret is None:
            raise PolicyRefused(403, "InvalidAccessKeyId",
                                "The AWS Access Key Id you provided does not exist in our records.")
        key = f"AWS4{secret}".encode()
        for part in parts[1:]:  # date, region, service, "aws4_request"
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, fields.get("policy", "").encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, fields.get("x-amz-signature", "")):
            raise PolicyRefused(403, "SignatureDoesNotMatch", "The request signature we calculated does not match "
                                                              "the signature you provided.")

    @staticmethod
    def _expect(values: Mapping[str, str], op: str, name: str, expected: Any) -> None:
        actual = values.get(name)
        ok = actual is not None and (actual == str(expected) if op == "eq" else actual.startswith(str(expected)))
        if not ok:
            raise PolicyRefused(403, "AccessDenied", f'Invalid according to Policy: Policy Condition failed: '
                                                     f'["{op}", "${name}", "{expected}"]')
