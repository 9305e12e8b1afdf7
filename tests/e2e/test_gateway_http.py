"""The local gateway over real HTTP on 127.0.0.1: template.yaml's routes, the predict and preprocess
handlers, a moto server, and the tiny ONNX models (maas_local/testing/tiny_model.py and text_model.py)."""

from __future__ import annotations

import base64
import errno
import json
import socket
import textwrap
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest

from maas_core.manifest import Manifest
from maas_core.registry import Registry
from maas_core.store import BundleStore
from maas_local import gateway as gateway_module
from maas_local.gateway import MAX_BODY_BYTES, Gateway
from maas_local.stack import LocalStack
from maas_local.testing import text_model
from maas_local.testing.tiny_model import SPEC, expected_probabilities

pytestmark = pytest.mark.e2e

PREDICT = "/v1/models/tiny/predict"
PREPROCESS = "/v1/models/tiny/preprocess"


def assert_error_shape(body: dict, code: str | None = None) -> None:
    assert set(body) == {"error"}, body
    assert set(body["error"]) - {"details_total"} == {"code", "message", "details", "request_id"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], list)
    if code is not None:
        assert body["error"]["code"] == code, body


# --- template.yaml + predict handler ---------------------------------------------------------


def test_health(http: Any, gateway: str) -> None:
    r = http("GET", gateway + "/v1/health")
    assert r.status == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["status"] == "ok"


def test_models_lists_the_published_model(http: Any, gateway: str) -> None:
    r = http("GET", gateway + "/v1/models")
    assert r.status == 200
    models = {m["name"]: m for m in r.json()["models"]}
    assert models["tiny"]["aliases"] == {"prod": "1"}
    assert models["tiny"]["versions"] == 1


def test_describe_model_includes_the_manifest(http: Any, gateway: str) -> None:
    r = http("GET", gateway + "/v1/models/tiny")
    assert r.status == 200
    body = r.json()
    assert body["aliases"]["prod"]["version"] == "1"
    assert body["manifest"]["labels"] == ["no", "yes"]
    assert set(body["manifest"]["files"]) == {"model.onnx", "preprocess.json"}


def test_predict_returns_labels_probabilities_ids_and_version(http: Any, gateway: str) -> None:
    records = [{"x1": 2.0, "x2": 1, "colour": "blue"}, {"x1": "-1.5", "colour": "red"}]
    r = http("POST", gateway + PREDICT, {"records": records})
    assert r.status == 200, r.body
    body = r.json()
    assert (body["model"], body["version"], body["alias"]) == ("tiny", "1", "prod")
    preds = body["predictions"]
    assert [p["label"] for p in preds] == ["yes", "no"]
    expected = expected_probabilities(SPEC.transform(records))
    for p, row in zip(preds, expected, strict=True):
        assert [p["probabilities"]["no"], p["probabilities"]["yes"]] == pytest.approx(row.tolist(), abs=1e-5)
    ids = [p["id"] for p in preds]
    assert all(ids) and len(set(ids)) == 2


def test_predict_with_explicit_version(http: Any, gateway: str) -> None:
    r = http("POST", gateway + PREDICT + "?version=1", {"records": [{"x1": 0.1, "colour": "red"}]})
    assert r.status == 200, r.body
    assert r.json()["version"] == "1" and "alias" not in r.json()


def test_preprocess_returns_the_feature_matrix(http: Any, gateway: str) -> None:
    records = [{"x1": 2.0, "x2": 1, "colour": "blue"}, {"x1": "-1.5", "colour": "red"}]
    r = http("POST", gateway + PREPROCESS, {"records": records})
    assert r.status == 200, r.body
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert (body["model"], body["version"], body["alias"]) == ("tiny", "1", "prod")
    assert body["feature_names"] == SPEC.feature_names() and body["dtype"] == "float32"
    assert (np.array(body["features"], np.float32) == SPEC.transform(records)).all()


def test_preprocess_errors_over_http(http: Any, gateway: str) -> None:
    r = http("POST", gateway + PREPROCESS, {"records": [{"x1": 1, "colour": "red"}, "raw text"]})
    assert r.status == 422, r.body
    assert_error_shape(r.json(), "unprocessable")
    assert r.json()["error"]["details"][0]["index"] == 1
    r = http("POST", gateway + "/v1/models/nope/preprocess", {"records": [{"x1": 1, "colour": "red"}]})
    assert r.status == 404 and r.json()["error"]["code"] == "not_found"
    r = http("POST", gateway + PREPROCESS, "x1=1", {"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 415
    assert_error_shape(r.json(), "unsupported_media_type")
    r = http("GET", gateway + PREPROCESS)
    assert r.status == 405 and r.headers["allow"] == "POST"


@pytest.fixture(scope="module")
def sentiment_model(local_stack: LocalStack) -> Manifest:
    registry = Registry(local_stack.names["RegistryTable"])
    store = BundleStore(local_stack.names["ModelBucket"])
    return text_model.publish_text_model(store, registry, name="sentiment")


def test_text_model_over_http_takes_raw_strings(http: Any, gateway: str, sentiment_model: Manifest) -> None:
    records = ["I love it", {"text": "awful, just awful"}, ""]
    r = http("POST", gateway + "/v1/models/sentiment/predict", {"records": records})
    assert r.status == 200, r.body
    assert [p["label"] for p in r.json()["predictions"]] == ["positive", "negative", "negative"]
    r = http("POST", gateway + "/v1/models/sentiment/preprocess", {"records": records})
    assert r.status == 200, r.body
    assert r.json()["dtype"] == "int32"
    assert r.json()["features"] == text_model.SPEC.transform(records).tolist()


def test_malformed_json_is_a_400_error_body(http: Any, gateway: str) -> None:
    r = http("POST", gateway + PREDICT, '{"records": [', {"Content-Type": "application/json"})
    assert r.status == 400, r.body
    assert_error_shape(r.json(), "bad_request")


def test_invalid_record_is_a_4xx_naming_the_field(http: Any, gateway: str) -> None:
    r = http("POST", gateway + PREDICT, {"records": [{"x1": "abc", "colour": "red"}]})
    assert r.status == 422, r.body
    body = r.json()
    assert_error_shape(body)
    assert body["error"]["details"][0]["field"] == "x1"


def test_unknown_model_is_404(http: Any, gateway: str) -> None:
    r = http("POST", gateway + "/v1/models/nope/predict", {"records": [{"x1": 1, "colour": "red"}]})
    assert r.status == 404, r.body
    assert_error_shape(r.json(), "not_found")


def test_unknown_version_is_404(http: Any, gateway: str) -> None:
    r = http("POST", gateway + PREDICT + "?version=99", {"records": [{"x1": 1, "colour": "red"}]})
    assert r.status == 404, r.body
    assert_error_shape(r.json(), "not_found")


def test_unknown_route_is_404_in_the_error_shape(http: Any, gateway: str) -> None:
    for path in ("/v3/health", "/v2/models", "/v1/models/tiny/predict/extra", "/"):
        r = http("GET", gateway + path)
        assert r.status == 404, (path, r.body)
        assert_error_shape(r.json(), "route_not_found")


def test_wrong_method_is_405_with_allow(http: Any, gateway: str) -> None:
    r = http("GET", gateway + PREDICT)
    assert r.status == 405, r.body
    assert_error_shape(r.json(), "method_not_allowed")
    assert r.headers["allow"] == "POST"
    r = http("DELETE", gateway + "/v1/health")
    assert r.status == 405 and r.headers["allow"] == "GET"


def test_body_over_10_mb_is_413(http: Any, gateway: str) -> None:
    r = http("POST", gateway + PREDICT, b"x" * (MAX_BODY_BYTES + 1), {"Content-Type": "application/json"})
    assert r.status == 413
    assert_error_shape(r.json(), "payload_too_large")
    # the gateway is still serving afterwards
    assert http("GET", gateway + "/v1/health").status == 200


def test_keep_alive_connection_serves_several_requests(gateway: str) -> None:
    u = urlsplit(gateway)
    conn = HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        for _ in range(3):
            conn.request("POST", PREDICT, body=json.dumps({"records": [{"x1": 1, "colour": "red"}]}),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            assert resp.status == 200 and json.loads(resp.read())["predictions"][0]["label"] == "yes"
        conn.request("GET", "/nowhere", body=b"ignored body")
        resp = conn.getresponse()
        assert resp.status == 404
        resp.read()
        conn.request("GET", "/v1/health")
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def test_cli_reports_a_busy_port_and_exits_1(local_stack: LocalStack, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gateway_module, "configure_cli_logging", lambda level: None)  # keep caplog working
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        rc = gateway_module.main(["--port", str(port), "--endpoint-url", local_stack.endpoint_url,
                                  "--log-level", "WARNING"])
    assert rc == 1
    assert f"port {port}" in capsys.readouterr().err


# --- gateway mechanics, on a template of test functions ---------------------------------------

ECHO_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Greeting: {Type: String, Default: hello}
Globals:
  Function:
    Timeout: 7
    MemorySize: 256
    Environment:
      Variables:
        ECHO_GREETING: !Ref Greeting
Resources:
  Api:
    Type: AWS::Serverless::Api
    Properties: {StageName: test}
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: echo/
      Handler: app.handler
      Events:
        Item: {Type: Api, Properties: {RestApiId: !Ref Api, Path: "/items/{id}", Method: any}}
        ItemDetail: {Type: Api, Properties: {RestApiId: !Ref Api, Path: /items/special, Method: get}}
        Files: {Type: Api, Properties: {RestApiId: !Ref Api, Path: "/files/{proxy+}", Method: get}}
  BoomFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: boom/
      Handler: app.handler
      Events:
        Boom: {Type: Api, Properties: {RestApiId: !Ref Api, Path: /boom, Method: post}}
        Bad: {Type: Api, Properties: {RestApiId: !Ref Api, Path: /bad, Method: get}}
"""

ECHO_APP = '''
import base64, json, os
from helper import TAG  # a sibling module of app.py, as Lambda allows

def handler(event, context):
    if event["path"].startswith("/files/") and event["pathParameters"]["proxy"].endswith(".bin"):
        return {"statusCode": 200, "headers": {"Content-Type": "application/octet-stream"},
                "body": base64.b64encode(b"\\x00\\xffbin").decode(), "isBase64Encoded": True}
    return {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json", "X-Tag": TAG},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": json.dumps({"event": event, "greeting": os.environ.get("ECHO_GREETING"),
                            "remaining_ms": context.get_remaining_time_in_millis(),
                            "memory": context.memory_limit_in_mb, "function": context.function_name,
                            "request_id": context.aws_request_id}),
    }
'''

BOOM_APP = '''
def handler(event, context):
    if event["path"] == "/bad":
        return "not a proxy response"
    raise RuntimeError("kaboom: secret stack detail")
'''


@pytest.fixture(scope="module")
def echo_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("echo_app")
    (root / "template.yaml").write_text(ECHO_TEMPLATE)
    (root / "echo").mkdir()
    (root / "echo" / "app.py").write_text(textwrap.dedent(ECHO_APP))
    (root / "echo" / "helper.py").write_text('TAG = "from-helper"\n')
    (root / "boom").mkdir()
    (root / "boom" / "app.py").write_text(textwrap.dedent(BOOM_APP))
    with Gateway(root / "template.yaml", {"Api": "api"}, parameters={"Greeting": "hi"}) as gw:
        yield gw.base_url


def test_event_has_the_rest_proxy_shape(http: Any, echo_gateway: str) -> None:
    r = http("PUT", echo_gateway + "/items/a%20b?x=1&x=2&y=&z=3", '{"k": "v"}',
             {"Content-Type": "application/json", "X-Multi": "one"})
    assert r.status == 201
    assert r.headers["x-tag"] == "from-helper"
    out = r.json()
    ev = out["event"]
    assert ev["resource"] == "/items/{id}"
    assert ev["path"] == "/items/a b"
    assert ev["httpMethod"] == "PUT"
    assert ev["pathParameters"] == {"id": "a b"}
    assert ev["queryStringParameters"] == {"x": "2", "y": "", "z": "3"}
    assert ev["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": [""], "z": ["3"]}
    assert ev["headers"]["X-Multi"] == "one" and ev["multiValueHeaders"]["X-Multi"] == ["one"]
    assert ev["body"] == '{"k": "v"}' and ev["isBase64Encoded"] is False
    assert ev["stageVariables"] is None
    ctx = ev["requestContext"]
    assert ctx["stage"] == "test" and ctx["resourcePath"] == "/items/{id}" and ctx["httpMethod"] == "PUT"
    assert ctx["identity"]["sourceIp"] == "127.0.0.1"
    assert ctx["requestId"] == out["request_id"]
    assert http("GET", echo_gateway + "/items/a%2Fb").json()["event"]["pathParameters"] == {"id": "a/b"}
    assert out["greeting"] == "hi"  # parameter override reached the function's environment
    assert 0 < out["remaining_ms"] <= 7000 and out["memory"] == 256


def test_no_body_and_no_query_are_none(http: Any, echo_gateway: str) -> None:
    ev = http("GET", echo_gateway + "/items/1").json()["event"]
    assert ev["body"] is None and ev["queryStringParameters"] is None
    assert ev["multiValueQueryStringParameters"] is None


def test_multi_value_response_headers(echo_gateway: str) -> None:
    u = urlsplit(echo_gateway)
    conn = HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request("GET", "/items/1")
        resp = conn.getresponse()
        resp.read()
        assert resp.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    finally:
        conn.close()


def test_literal_path_beats_parameter_and_greedy_path(http: Any, echo_gateway: str) -> None:
    assert http("GET", echo_gateway + "/items/special").json()["event"]["resource"] == "/items/special"
    # /items/special only has GET; other methods fall to /items/{id} (ANY)
    assert http("POST", echo_gateway + "/items/special").json()["event"]["resource"] == "/items/{id}"
    ev = http("GET", echo_gateway + "/files/a/b/c.txt").json()["event"]
    assert ev["resource"] == "/files/{proxy+}" and ev["pathParameters"] == {"proxy": "a/b/c.txt"}
    assert http("GET", echo_gateway + "/files/").status == 404


def test_binary_body_in_and_out(http: Any, echo_gateway: str) -> None:
    r = http("GET", echo_gateway + "/files/x.bin")
    assert r.status == 200 and r.body == b"\x00\xffbin"
    ev = http("POST", echo_gateway + "/items/1", b"\xff\xfe\x00").json()["event"]
    assert ev["isBase64Encoded"] is True and base64.b64decode(ev["body"]) == b"\xff\xfe\x00"


def test_a_handler_that_raises_is_a_502_without_the_trace(http: Any, echo_gateway: str,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("ERROR", logger="maas_local.gateway"):
        r = http("POST", echo_gateway + "/boom", "{}")
    assert r.status == 502
    assert_error_shape(r.json(), "internal_error")
    assert "kaboom" not in r.body.decode()
    assert any("BoomFunction failed" in rec.getMessage() and rec.exc_info for rec in caplog.records)


def test_a_malformed_handler_response_is_a_502(http: Any, echo_gateway: str) -> None:
    r = http("GET", echo_gateway + "/bad")
    assert r.status == 502
    assert "malformed" in r.json()["error"]["message"]


def test_busy_port_raises_eaddrinuse(echo_gateway: str) -> None:
    port = int(echo_gateway.rsplit(":", 1)[1])
    gw = Gateway(Path(__file__).resolve().parents[2] / "template.yaml", port=port)
    with pytest.raises(OSError) as info:
        gw.start()
    assert info.value.errno == errno.EADDRINUSE
