"""The OpenAPI document of the whole API (shared/maas_core/edge/openapi.json): generated from every HTTP
function's resolver, never stale, covering every route of template.yaml, with the AuthMode's security."""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs
import pytest
from pydantic import ValidationError

from maas_core.admin import AliasUpdate
from maas_core.edge.openapi import DOCUMENT_FILE, NAME_SCHEMA, VERSION_SCHEMA, WINDOW_SCHEMA, document, stored_document
from maas_core.errors import BadRequestError, UnprocessableError
from maas_core.monitoring import parse_window
from maas_core.monitoring.schemas import FeedbackItem
from maas_core.registry import check_name, check_version
from maas_local.openapi_doc import build_document, render
from maas_local.template import api_routes, load_template, local_resource_names
from tests.lambda_events import ROOT, call, load_function

TEMPLATE = ROOT / "template.yaml"
OPEN = {("get", "/v1/health"), ("get", "/v1/openapi.json")}
ADMIN = {("put", "/v1/models/{model}/aliases/{alias}"), ("delete", "/v1/models/{model}/versions/{version}")}
PID = "0190f3c2a1b24c6d8e9fa0b1c2d3e4f5-0"


@pytest.fixture(scope="module")
def fresh() -> dict:
    return build_document(TEMPLATE)


def template_routes() -> set[tuple[str, str]]:
    t = load_template(TEMPLATE)
    return {(r.method.lower(), r.path) for r in api_routes(t, local_resource_names(t), base_dir=ROOT)}


def test_the_stored_document_is_the_generated_one(fresh) -> None:
    """Given every function's routes as they are now, when the document is generated, then it is the one
    the core layer ships (else: python -m maas_local.openapi_doc --write)."""
    assert DOCUMENT_FILE.read_text(encoding="utf-8") == render(fresh), (
        "stale: run python -m maas_local.openapi_doc --write")


def test_every_api_route_of_the_template_is_documented_with_its_method(fresh) -> None:
    documented = {(m, p) for p, methods in fresh["paths"].items() for m in methods}
    assert template_routes() == documented
    assert {("post", "/v1/models/{model}/preprocess"), ("post", "/v1/models/{model}/feedback"),
            ("get", "/v1/models/{model}/metrics")} | ADMIN <= documented


def test_errors_are_documented_in_the_project_shape(fresh) -> None:
    """Every 422 is the project's error body (what the resolver answers), never Powertools' default; /v2 has
    none (the protocol answers a 400), and its function's errors are the protocol's body."""
    text = json.dumps(fresh)
    assert "HTTPValidationError" not in text
    for p, methods in fresh["paths"].items():
        for m, op in methods.items():
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")):
                    # the function's own /v2 errors are the Open Inference Protocol's {"error": "..."}
                    schemas = ({"ErrorResponse", "ProtocolError"} if p.startswith("/v2") and status not in
                               ("413", "429", "502", "504") else {"ErrorResponse"})
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.rsplit("/", 1)[-1] in schemas, (m, p, status)
                    assert status != "422" or not p.startswith("/v2"), (m, p)


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


# --- what the document says of names, statuses and rules (schemathesis judges the API by it) ----------------

NAME_PARAMETERS = {"model": NAME_SCHEMA, "alias": NAME_SCHEMA, "version": VERSION_SCHEMA}
GATEWAY = {"413", "429", "502", "504"}


def operations(doc: dict):
    for p, methods in doc["paths"].items():
        for m, op in methods.items():
            yield m, p, op


def test_every_name_parameter_carries_the_registrys_pattern(fresh) -> None:
    """Given the document, then every model, alias and version parameter (path or query) has the registry's
    own pattern and length bounds, so a tester's schema-valid name is one the API takes."""
    seen = set()
    for m, p, op in operations(fresh):
        for param in op.get("parameters", []):
            if param["name"] in NAME_PARAMETERS:
                seen.add((param["in"], param["name"]))
                for key, value in NAME_PARAMETERS[param["name"]].items():
                    assert param["schema"][key] == value, (m, p, param["name"], key)
    assert seen == {("path", "model"), ("path", "alias"), ("path", "version"), ("query", "alias"),
                    ("query", "version")}


@pytest.mark.parametrize(("value", "valid"), [("a", True), ("a" * 64, True), ("a" * 65, False), ("Wg [", False),
                                               ("ÄÌ", False), ("tiny\n", False), ("", False), (".x", False)])
def test_the_name_schema_agrees_with_check_name(value: str, valid: bool) -> None:
    assert schema_valid({"type": "string", **NAME_SCHEMA}, value) is valid
    if valid:
        check_name("model", value)
    else:
        with pytest.raises(BadRequestError):
            check_name("model", value)


@pytest.mark.parametrize("value", ["1", "3", "9" * 18, "01", "0", "-1", "1.0", " 1", "1\n", "１", "٣", "9" * 19, ""])
def test_the_version_schema_agrees_with_check_version(value: str) -> None:
    documented = schema_valid({"type": "string", **VERSION_SCHEMA}, value)
    try:
        check_version(value)
        accepted = True
    except BadRequestError:
        accepted = False
    assert documented is accepted, value


def test_the_window_pattern_is_what_parse_window_takes() -> None:
    """Given every number of minutes, hours and days up to 5 digits, then the documented ?window= pattern
    matches exactly those parse_window accepts (at most 30 days)."""
    window = jsonschema_rs.validator_for({"type": "string", **WINDOW_SCHEMA})
    for unit in "mhd":
        for n in range(0, 100000):
            label = f"{n}{unit}"
            try:
                parse_window(label)
                accepted = True
            except UnprocessableError:
                accepted = False
            assert window.is_valid(label) is accepted, label


def test_query_values_that_cannot_be_empty_say_so(fresh) -> None:
    """`?since=` and the like are refused: each query string parameter has a minimum length, a pattern that
    needs a character or an enum (a boolean's values are its own)."""
    for _, p, op in operations(fresh):
        for param in op.get("parameters", []):
            schema = param["schema"]
            if param["in"] == "query" and schema.get("type") != "boolean":
                assert schema.get("minLength", 0) >= 1 or schema.get("pattern") or schema.get("enum"), (p, param)


def test_version_and_alias_exclusion_is_in_their_descriptions(fresh) -> None:
    for p in ("/v1/models/{model}/predict", "/v1/models/{model}/preprocess"):
        params = {x["name"]: x for x in fresh["paths"][p]["post"]["parameters"]}
        assert "not with alias" in params["version"]["description"]
        assert "not with version" in params["alias"]["description"]


def test_every_operation_documents_its_success_and_the_gateways_answers(fresh) -> None:
    """Every operation documents its 200 with a schema, and what API Gateway answers itself: 413, 429, 502,
    504 everywhere, and the 403 of a missing signature on the admin (SigV4) routes."""
    for m, p, op in operations(fresh):
        assert op["responses"]["200"]["content"]["application/json"]["schema"], (m, p)
        assert GATEWAY <= set(op["responses"]), (m, p)
        assert ("403" in op["responses"]) is ((m, p) in ADMIN), (m, p)


@pytest.mark.parametrize(("mode", "status", "code"), [("ApiKey", "403", "INVALID_API_KEY"),
                                                      ("Jwt", "401", "UNAUTHORIZED")])
def test_the_served_document_has_the_auth_modes_refusal(mode: str, status: str, code: str) -> None:
    """Given the AuthMode, then each operation under its scheme documents the gateway's refusal (ApiKey: 403,
    Jwt: 401); open operations do not, and the admin ones keep their 403 only."""
    for m, p, op in operations(document(mode)):
        if (m, p) in OPEN:
            assert not {"401", "403"} & set(op["responses"]), (m, p)
        elif (m, p) in ADMIN:
            assert "403" in op["responses"] and "401" not in op["responses"], (m, p)
        else:
            assert code in op["responses"][status]["description"], (m, p)


def test_links_name_operations_of_the_document(fresh) -> None:
    """The stateful links (where the next call finds its names) point at operations that exist, with their
    parameters."""
    by_id = {op["operationId"]: op for _, _, op in operations(fresh)}
    links = [link for _, _, op in operations(fresh) for r in op["responses"].values()
             for link in r.get("links", {}).values()]
    assert len(links) >= 10
    for link in links:
        target = by_id[link["operationId"]]
        assert set(link["parameters"]) <= {x["name"] for x in target.get("parameters", [])}, link


@pytest.mark.parametrize(("body", "valid"), [
    ({}, False), ({"version": "2"}, True), ({"version": None}, False), ({"action": "promote"}, False),
    ({"action": "canary", "version": "2"}, False), ({"action": "canary", "version": "2", "weight": 0.1}, True),
    ({"action": "rollback"}, True), ({"action": "rollback", "version": "2"}, False),
    ({"action": "rollback", "expected_version": "3"}, True), ({"version": "02"}, False),
])
def test_the_alias_update_schema_says_what_its_validator_checks(fresh, body: dict, valid: bool) -> None:
    """Given a PUT alias body, then the document's schema and the API agree on whether it is valid."""
    documented = jsonschema_valid(fresh, "AliasUpdate", body)
    assert documented is valid, body
    try:
        AliasUpdate.model_validate(body)
        check_version(body["version"]) if body.get("version") is not None else None
        accepted = True
    except (ValidationError, BadRequestError):
        accepted = False
    assert accepted is valid, body


@pytest.mark.parametrize(("item", "valid"), [
    ({"prediction_id": PID, "label": "yes"}, True), ({"prediction_id": PID, "value": 1.5}, True),
    ({"prediction_id": PID}, False), ({"prediction_id": PID, "label": "yes", "value": 1.0}, False),
    ({"prediction_id": PID, "label": None, "value": 0.0}, True),
])
def test_the_feedback_item_schema_says_label_or_value(fresh, item: dict, valid: bool) -> None:
    assert jsonschema_valid(fresh, "FeedbackRequest", {"feedback": [item]}) is valid, item
    try:
        FeedbackItem.model_validate(item)
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted is valid, item


def schema_valid(schema: dict, instance: Any) -> bool:
    """As a JSON Schema validator reads it (ECMA-262 patterns: `$` is the end, not before a newline)."""
    return jsonschema_rs.validator_for(schema).is_valid(instance)


def jsonschema_valid(doc: dict, name: str, instance: Any) -> bool:
    """`instance` against the document's schema `name` (its references resolved within the document)."""
    return jsonschema_rs.validator_for({**doc["components"]["schemas"][name], "components": doc["components"]}
                                       ).is_valid(instance)
