"""API Gateway REST (v1 proxy) events and a Lambda context, as the real services send them."""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class FakeLambdaContext:
    function_name: str = "maas-test"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:maas-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    remaining_ms: int = 28_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def rest_event(method: str, path: str, body: Any = None, query: dict[str, str] | None = None,
               resource: str | None = None, path_params: dict[str, str] | None = None,
               raw_body: str | None = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway proxy event. `body` is JSON-encoded; `raw_body` is sent as is (for malformed JSON)."""
    text = raw_body if raw_body is not None else (None if body is None else json.dumps(body))
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method,
        "headers": hdrs,
        "multiValueHeaders": {k: [v] for k, v in hdrs.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": path_params,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource or path, "httpMethod": method, "stage": "live",
            "requestId": str(uuid.uuid4()), "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": text,
        "isBase64Encoded": False,
    }


def load_function(name: str) -> ModuleType:
    """Import functions/{name}/app.py under a unique module name (every function's file is app.py)."""
    module_name = f"maas_function_{name}"
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "functions" / name / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


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
