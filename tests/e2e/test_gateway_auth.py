"""The local gateway with auth on (`api_keys=`, as maas-demo and maas-gateway run it): each route asks what the
template's Auth asks on AWS, and a refusal has API Gateway's status and the template's GatewayResponses shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from maas_core.manifest import Manifest
from maas_local.gateway import Gateway
from maas_local.gateway import main as gateway_main
from maas_local.stack import LocalStack
from tests.e2e.conftest import TEMPLATE
from tests.e2e.test_gateway_http import assert_error_shape

pytestmark = pytest.mark.e2e

KEY = "test-key-1"
PREDICT = "/v1/models/tiny/predict"
RECORD = {"records": [{"x1": 1, "colour": "red"}]}
ALIAS = "/v1/models/tiny/aliases/prod"
SIGV4 = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261123/us-east-1/execute-api/aws4_request, " \
        "SignedHeaders=host;x-amz-date, Signature=0123abcd"


def serving(local_stack: LocalStack, **kwargs: Any) -> Iterator[str]:
    gw = Gateway(TEMPLATE, local_stack.names, host="127.0.0.1", port=0, run_queue_consumers=False, **kwargs)
    base_url = gw.start()
    try:
        yield base_url
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def keyed(local_stack: LocalStack, tiny_model: Manifest) -> Iterator[str]:
    """The gateway of the default template (AuthMode ApiKey), accepting two keys."""
    yield from serving(local_stack, api_keys=[KEY, "test-key-2"])


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}, {"x-api-key": ""}, {"Authorization": SIGV4}])
def test_predict_without_a_known_api_key_is_403_invalid_api_key(http: Any, keyed: str, headers: dict) -> None:
    r = http("POST", keyed + PREDICT, RECORD, headers=headers)
    assert r.status == 403
    assert_error_shape(r.json(), "INVALID_API_KEY")
    assert r.json()["error"]["message"] == "Forbidden"


@pytest.mark.parametrize("key", [KEY, "test-key-2"])
def test_predict_with_a_known_key_in_any_header_case_is_served(http: Any, keyed: str, key: str) -> None:
    for name in ("x-api-key", "X-API-Key"):
        r = http("POST", keyed + PREDICT, RECORD, headers={name: key})
        assert r.status == 200, r.body
        assert r.json()["model"] == "tiny"


def test_every_keyed_route_refuses_before_its_function_runs(http: Any, keyed: str) -> None:
    # a bad body would be a 422 from the function: the 403 shows the gateway answered first
    for method, path in (("GET", "/v1/models"), ("GET", "/v1/models/tiny"), ("POST", "/v1/models/tiny/preprocess"),
                         ("POST", "/v1/models/tiny/feedback"), ("GET", "/v1/models/tiny/metrics"),
                         ("POST", PREDICT)):
        r = http(method, keyed + path, "not json" if method == "POST" else None)
        assert r.status == 403, (method, path, r.body)


def test_health_and_the_openapi_document_stay_open(http: Any, keyed: str) -> None:
    assert http("GET", keyed + "/v1/health").status == 200
    assert http("GET", keyed + "/v1/openapi.json").status == 200


def test_admin_routes_take_a_sigv4_signature_not_an_api_key(http: Any, keyed: str) -> None:
    for headers in ({}, {"x-api-key": KEY}, {"Authorization": "Bearer token"}):
        r = http("PUT", keyed + ALIAS, {"version": "1"}, headers=headers)
        assert r.status == 403
        assert_error_shape(r.json(), "MISSING_AUTHENTICATION_TOKEN")
    # a signed request reaches the function (the signature itself is not verified locally)
    r = http("PUT", keyed + ALIAS, {"version": "1"}, headers={"Authorization": SIGV4})
    assert r.status == 200, r.body


def test_without_api_keys_every_route_is_open(http: Any, gateway: str) -> None:
    assert http("POST", gateway + PREDICT, RECORD).status == 200
    assert http("PUT", gateway + ALIAS, {"version": "1"}).status == 200


def test_auth_mode_jwt_asks_for_the_token_instead_of_a_key(http: Any, local_stack: LocalStack) -> None:
    parameters = {"AuthMode": "Jwt", "CognitoUserPoolArn": "arn:aws:cognito-idp:us-east-1:123456789012:userpool/x"}
    for base in serving(local_stack, api_keys=[KEY], parameters=parameters):
        r = http("POST", base + PREDICT, RECORD, headers={"x-api-key": KEY})
        assert r.status == 401
        assert_error_shape(r.json(), "UNAUTHORIZED")
        assert http("POST", base + PREDICT, RECORD, headers={"Authorization": "eyJ.token.sig"}).status == 200
        assert http("GET", base + "/v1/health").status == 200


def test_gateway_cli_refuses_no_auth_with_api_keys(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        gateway_main(["--no-auth", "--api-key", "k"])
    assert exc.value.code == 2
    assert "--no-auth and --api-key exclude each other" in capsys.readouterr().err


def test_the_gateways_own_refusals_carry_the_templates_cors_header(http: Any, local_stack: LocalStack,
                                                                   keyed: str) -> None:
    # Given AllowedOrigins set, as a browser app's stack has it (GatewayResponses DEFAULT_4XX/5XX add the header)
    origin = "https://app.example.com"
    for base in serving(local_stack, api_keys=[KEY], parameters={"AllowedOrigins": origin}):
        # When the gateway itself refuses (no key, no route) or a function answers
        refused = http("POST", base + PREDICT, RECORD, headers={"Origin": origin})
        no_route = http("GET", base + "/v1/nothing", headers={"Origin": origin})
        served = http("POST", base + PREDICT, RECORD, headers={"Origin": origin, "x-api-key": KEY})
        # Then the browser may read each answer
        assert refused.status == 403 and refused.headers["access-control-allow-origin"] == origin
        assert no_route.status == 404 and no_route.headers["access-control-allow-origin"] == origin
        assert served.status == 200 and served.headers["access-control-allow-origin"] == origin
    # And without AllowedOrigins nothing is added
    assert "access-control-allow-origin" not in http("POST", keyed + PREDICT, RECORD).headers
