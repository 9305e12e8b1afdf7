"""Calling a function's handler with an API Gateway event, and what every error answer looks like.

The event builder, the Lambda context and the loader of functions/<name>/app.py are the local stack's
(the benchmarks use them too), re-exported here for the tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

from maas_local.lambda_context import FakeLambdaContext
from maas_local.lambda_runtime import load_function
from maas_local.testing.events import rest_event

__all__ = ["ROOT", "FakeLambdaContext", "assert_error", "call", "load_function", "rest_event"]

ROOT = Path(__file__).resolve().parents[1]


def call(app: ModuleType, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """Invoke a function's lambda_handler with rest_event(method, path, **kwargs): (status, JSON body)."""
    resp = app.lambda_handler(rest_event(method, path, **kwargs), FakeLambdaContext())
    assert resp["multiValueHeaders"]["Content-Type"] == ["application/json"]
    return resp["statusCode"], json.loads(resp["body"])


def assert_error(body: dict[str, Any], code: str, *words: str) -> None:
    """Every error has the documented shape, says what is wrong and carries the request id."""
    assert set(body) == {"error"} and set(body["error"]) - {"details_total"} == {"code", "message", "details",
                                                                                "request_id"}
    assert body["error"]["request_id"]
    assert body["error"]["code"] == code, body
    for word in words:
        assert word in body["error"]["message"] + json.dumps(body["error"]["details"]), (word, body)
