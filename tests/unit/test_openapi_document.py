"""The OpenAPI document of the whole API (shared/maas_core/openapi.json): generated from every HTTP
function's resolver, never stale, covering every route of template.yaml, with the AuthMode's security."""

from __future__ import annotations

import json

import pytest

from maas_core.openapi import DOCUMENT_FILE, document, stored_document
from maas_local.openapi_doc import build_document, render
from maas_local.template import api_routes, load_template, local_resource_names
from tests.lambda_events import ROOT, call, load_function

TEMPLATE = ROOT / "template.yaml"
OPEN = {("get", "/v1/health"), ("get", "/v1/openapi.json")}
ADMIN = {("put", "/v1/models/{model}/aliases/{alias}"), ("delete", "/v1/models/{model}/versions/{version}")}


@pytest.fixture(scope="module")
def fresh() -> dict:
    return build_document(TEMPLATE)


def template_routes() -> set[tuple[str, str]]:
    t = load_template(TEMPLATE)
    return {(r.method.lower(), r.path) for r in api_routes(t, local_resource_names(t), base_dir=ROOT)}


def test_the_stored_document_is_the_generated_one(fresh) -> None:
    """Given every function's routes as they are now, when the document is generated, then it is the one
    the core layer ships (else: python -m maas_local.openapi_doc --write)."""
    assert DOCUMENT_FILE.read_text(encoding="utf-8") == render(fresh), "stale: run python -m maas_local.openapi_doc --write"


def test_every_api_route_of_the_template_is_documented_with_its_method(fresh) -> None:
    documented = {(m, p) for p, methods in fresh["paths"].items() for m in methods}
    assert template_routes() == documented
    assert {("post", "/v1/models/{model}/preprocess"), ("post", "/v1/models/{model}/feedback"),
            ("get", "/v1/models/{model}/metrics")} | ADMIN <= documented


def test_errors_are_documented_in_the_project_shape(fresh) -> None:
    """Every 422 is the project's error body (what the resolver answers), never Powertools' default."""
    text = json.dumps(fresh)
    assert "HTTPValidationError" not in text
    for p, methods in fresh["paths"].items():
        for m, op in methods.items():
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")):
                    assert response["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/ErrorResponse"}, (m, p, status)


@pytest.mark.parametrize(("mode", "scheme"), [("ApiKey", "api_key"), ("Jwt", "jwt")])
def test_security_follows_the_auth_mode(mode: str, scheme: str) -> None:
    """Given the stack's AuthMode, then the served document requires that scheme by default, SigV4 on the
    admin routes, and nothing on health and the document itself."""
    doc = document(mode)
    assert doc["security"] == [{scheme: []}]
    assert set(doc["components"]["securitySchemes"]) == {scheme, "sigv4"}
    for p, methods in doc["paths"].items():
        for m, op in methods.items():
            own = op.get("security")
            if (m, p) in OPEN:
                assert own == [], (m, p)
            elif (m, p) in ADMIN:
                assert own == [{"sigv4": []}], (m, p)
            else:
                assert own is None, (m, p)  # the default above


def test_predict_serves_the_whole_document(aws_world, monkeypatch) -> None:
    """Given MAAS_AUTH_MODE=Jwt, when GET /v1/openapi.json reaches the predict function, then the document
    lists the other functions' routes too, with the Jwt scheme."""
    monkeypatch.setenv("MAAS_AUTH_MODE", "Jwt")
    status, body = call(load_function("predict"), "GET", "/v1/openapi.json")
    assert status == 200
    assert body["paths"].keys() == stored_document()["paths"].keys()
    assert body["security"] == [{"jwt": []}]
