"""Requests a contract tester (schemathesis) sends from the OpenAPI document's own rules: names the document
refuses must be refused by the API too, never served as another resource."""

from __future__ import annotations

import pytest

from maas_local.testing.tiny_model import publish_tiny_model
from tests.lambda_events import assert_error, call, load_function


@pytest.fixture
def predict(aws_world):
    publish_tiny_model(aws_world.store, aws_world.registry)
    return load_function("predict")


@pytest.mark.parametrize("path", ["/v1/models/\n", "/v1/models/tiny\n", "/v1/health\n", "/v1/models/tiny/\n"])
def test_a_path_with_a_trailing_newline_is_no_route(predict, path: str) -> None:
    """Given GET /v1/models/tiny%0A (the document's name pattern forbids a newline), when it reaches the
    function, then it is a 404 naming the path: not the listing of /v1/models nor the description of tiny
    (a route's `$` used to match before a trailing newline)."""
    status, body = call(predict, "GET", path)
    assert status == 404, body
    assert_error(body, "route_not_found")


def test_a_trailing_slash_still_reaches_its_route(predict) -> None:
    """Given API Gateway's tolerance of a trailing slash, then /v1/models/tiny/ still describes tiny."""
    status, body = call(predict, "GET", "/v1/models/tiny/")
    assert status == 200 and body["name"] == "tiny"
