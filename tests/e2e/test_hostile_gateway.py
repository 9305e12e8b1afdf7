"""Hostile requests over HTTP through the local gateway: Lambda's 6 MB limits as deployed, request ids.

The gateway used to pass up to 10 MB (API Gateway's limit) to a function, which deployed Lambda
refuses above 6 MB; and a function's answer over 6 MB, which deployed becomes a bare 502, went out.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from maas_local.gateway import LAMBDA_REQUEST_BYTES

pytestmark = pytest.mark.e2e

PREDICT = "/v1/models/tiny/predict"
GOOD = {"x1": 1.5, "x2": -2, "colour": "blue"}


def test_a_request_over_lambdas_6_mb_is_a_413_before_the_function_runs(http: Any, gateway: str) -> None:
    """Given a 7 MB body (under API Gateway's 10 MB, over Lambda's 6 MB),
    then the gateway answers 413 in the error shape, with its request id, and serves on."""
    body = json.dumps({"records": [{**GOOD, "note": "n" * 1000}] * 7000})
    assert LAMBDA_REQUEST_BYTES < len(body) < 10 * 1024 * 1024
    r = http("POST", gateway + PREDICT, body, {"Content-Type": "application/json"})
    assert r.status == 413, r.body[:300]
    error = r.json()["error"]
    assert error["code"] == "payload_too_large" and "Lambda" in error["message"]
    assert error["request_id"] == r.headers["x-amzn-requestid"]
    assert http("GET", gateway + "/v1/health").status == 200


def test_every_answer_names_its_request_id(http: Any, gateway: str) -> None:
    """Given any answer, function's or gateway's, then x-amzn-RequestId names it (as API Gateway does), the
    function's answers carry the same id as X-Request-Id and inside an error body."""
    ok = http("POST", gateway + PREDICT, {"records": [GOOD]})
    bad = http("POST", gateway + PREDICT, {"records": [{"colour": "red"}]})
    missing = http("GET", gateway + "/nowhere")
    for r in (ok, bad):
        assert r.headers["x-request-id"] == r.headers["x-amzn-requestid"], r.headers
    assert ok.status == 200 and bad.status == 422 and missing.status == 404
    assert bad.json()["error"]["request_id"] == bad.headers["x-request-id"]
    assert missing.json()["error"]["request_id"] == missing.headers["x-amzn-requestid"]
    assert len({ok.headers["x-amzn-requestid"], bad.headers["x-amzn-requestid"]}) == 2
