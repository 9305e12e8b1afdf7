"""maas_local.gateway's pure parts: route matching, the proxy event, decoding handler responses."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

import pytest

from maas_local.lambda_runtime import context_for
from maas_local.proxy_integration import BadFunctionResponse, build_event, decode_response
from maas_local.routing import Router
from maas_local.template import CorsPreflight, Route


def route(method: str, path: str, function: str = "Fn") -> Route:
    return Route(function=function, event=f"{method}{path}", method=method, path=path, code_uri=Path("/x"),
                 handler="app.handler", timeout=5, memory_size=512, function_name="maas-local-Fn")


ROUTER = Router([
    route("GET", "/v1/models"),
    route("GET", "/v1/models/{model}"),
    route("POST", "/v1/models/{model}/predict"),
    route("GET", "/v1/models/special"),
    route("ANY", "/v1/models/special"),
    route("GET", "/files/{proxy+}"),
    route("ANY", "/"),
])


@pytest.mark.parametrize(("method", "path", "pattern", "params"), [
    ("GET", "/v1/models", "/v1/models", {}),
    ("GET", "/v1/models/", "/v1/models", {}),
    ("GET", "/v1/models/iris", "/v1/models/{model}", {"model": "iris"}),
    ("GET", "/v1/models/a%2Fb", "/v1/models/{model}", {"model": "a/b"}),
    ("POST", "/v1/models/iris/predict", "/v1/models/{model}/predict", {"model": "iris"}),
    ("GET", "/v1/models/special", "/v1/models/special", {}),
    ("GET", "/files/a/b/c", "/files/{proxy+}", {"proxy": "a/b/c"}),
    ("DELETE", "/", "/", {}),
])
def test_matching(method: str, path: str, pattern: str, params: dict[str, str]) -> None:
    found, got, _ = ROUTER.match(method, path)
    assert found is not None and found.route.path == pattern
    assert got == params


def test_exact_method_beats_any_on_the_same_path() -> None:
    assert ROUTER.match("GET", "/v1/models/special")[0].route.method == "GET"
    assert ROUTER.match("PUT", "/v1/models/special")[0].route.method == "ANY"


def test_no_route_and_wrong_method() -> None:
    assert ROUTER.match("GET", "/v2/x") == (None, {}, [])
    found, _, allowed = ROUTER.match("GET", "/v1/models/iris/predict")
    assert found is None and allowed == ["POST"]
    assert ROUTER.match("GET", "/files")[0] is None  # {proxy+} needs at least one character


def test_event_shape() -> None:
    r = route("POST", "/v1/models/{model}/predict")
    ev = build_event(method="POST", path="/v1/models/iris/predict", query="version=2&x=1&x=2",
                     headers=[("Content-Type", "application/json"), ("X-A", "1"), ("X-A", "2")],
                     body=b'{"records": []}', route=r, path_params={"model": "iris"}, stage="live",
                     source_ip="127.0.0.1", request_id="rid")
    assert ev["resource"] == "/v1/models/{model}/predict"
    assert ev["queryStringParameters"] == {"version": "2", "x": "2"}
    assert ev["multiValueQueryStringParameters"] == {"version": ["2"], "x": ["1", "2"]}
    assert ev["headers"]["X-A"] == "2" and ev["multiValueHeaders"]["X-A"] == ["1", "2"]
    assert ev["body"] == '{"records": []}' and ev["isBase64Encoded"] is False
    assert ev["requestContext"]["requestId"] == "rid" and ev["requestContext"]["path"] == "/live/v1/models/iris/predict"


def test_decode_response() -> None:
    status, headers, body = decode_response({
        "statusCode": 200, "headers": {"X-One": "1", "content-type": "text/plain"},
        "multiValueHeaders": {"Content-Type": ["application/json"], "Set-Cookie": ["a", "b"]},
        "body": '{"ok": true}', "isBase64Encoded": False,
    })
    assert status == 200 and body == b'{"ok": true}'
    assert headers == [("Content-Type", "application/json"), ("Set-Cookie", "a"), ("Set-Cookie", "b"), ("X-One", "1")]
    assert decode_response({"statusCode": 204})[2] == b""
    assert decode_response({"statusCode": 200, "body": base64.b64encode(b"\x00").decode(),
                            "isBase64Encoded": True})[2] == b"\x00"
    for bad in ("nope", {"body": "x"}, {"statusCode": "abc"}, {"statusCode": 200, "body": {"a": 1}}):
        with pytest.raises(BadFunctionResponse):
            decode_response(bad)


def test_fake_context_counts_down_from_the_timeout() -> None:
    ctx = context_for(route("GET", "/"), "rid")
    assert 4000 < ctx.get_remaining_time_in_millis() <= 5000
    assert ctx.memory_limit_in_mb == 512 and ctx.aws_request_id == "rid"
    assert ctx.invoked_function_arn.endswith(":function:maas-local-Fn")


def test_preflight_is_the_most_specific_resource_s_mock() -> None:
    # Given routes whose paths carry SAM's CORS mock, one of them without it
    cors = CorsPreflight(headers=(("Access-Control-Allow-Origin", "*"),))
    other = CorsPreflight(headers=(("Access-Control-Allow-Origin", "https://other.example"),))
    router = Router([
        replace(route("GET", "/v1/models/{model}"), preflight=cors),
        replace(route("POST", "/v1/models/{model}"), preflight=cors),
        replace(route("ANY", "/v1/{proxy+}"), preflight=other),
        route("GET", "/v1/models/special"),
    ])
    # Then OPTIONS on a path gets the mock of the resource API Gateway would pick, the most specific one
    assert router.preflight("/v1/models/iris") is cors
    assert router.preflight("/v1/elsewhere/x") is other
    # And a most specific resource without Cors has no mock (even if a less specific one has), nor an unknown path
    assert router.preflight("/v1/models/special") is None
    assert router.preflight("/v2/models") is None


def test_demo_takes_template_parameters_like_the_gateway() -> None:
    from maas_local import demo

    # Given maas-demo's --parameter NAME=VALUE (repeatable), When parsed; Then they override the demo's own
    assert demo.gateway_parameters(["AllowedOrigins=http://127.0.0.1:3000", "LogLevel=DEBUG"], verbose=False) == \
        {"LogLevel": "DEBUG", "AllowedOrigins": "http://127.0.0.1:3000"}
    assert demo.gateway_parameters([], verbose=False) == {"LogLevel": "WARNING"}
    assert demo.gateway_parameters(["A=b=c"], verbose=True) == {"A": "b=c"}
    # And a malformed one stops the demo at once, before any port or training, naming it
    with pytest.raises(SystemExit, match="--parameter 'AllowedOrigins': expected KEY=VALUE"):
        demo.main(["--parameter", "AllowedOrigins"])


def test_the_clis_say_whether_browsers_may_call_the_api() -> None:
    from maas_local.gateway import cors_note

    cors = CorsPreflight(headers=(("Access-Control-Allow-Origin", "http://127.0.0.1:3000"),))
    assert cors_note([route("GET", "/x")]).startswith("CORS: off")
    assert "pages on http://127.0.0.1:3000 may call" in cors_note([replace(route("GET", "/x"), preflight=cors)])
