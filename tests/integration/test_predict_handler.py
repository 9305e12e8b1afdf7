"""The predict function end to end through its Lambda handler: API Gateway events in, responses out."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from maas_core.settings import get_settings
from tests.lambda_events import FakeLambdaContext, load_function, rest_event
from tests.tiny_model import SPEC, expected_probabilities, publish_tiny_model

GOOD = {"x1": 1.5, "x2": -2, "colour": "blue"}


@pytest.fixture
def handler(aws_world, monkeypatch):
    """Given the predict function with a fresh process state, pointed at the moto world."""
    monkeypatch.setenv("MAAS_MAX_RECORDS", "5")
    get_settings.cache_clear()
    app = load_function("predict")
    yield app
    get_settings.cache_clear()


def call(app, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    resp = app.lambda_handler(rest_event(method, path, **kwargs), FakeLambdaContext())
    assert resp["multiValueHeaders"]["Content-Type"] == ["application/json"]
    return resp["statusCode"], json.loads(resp["body"])


def assert_error(body: dict[str, Any], code: str, *words: str) -> None:
    """Every error has the documented shape and says what is wrong."""
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    for word in words:
        assert word in body["error"]["message"] + json.dumps(body["error"]["details"]), (word, body)


def test_health(handler) -> None:
    status, body = call(handler, "GET", "/v1/health")
    assert status == 200 and body["status"] == "ok"


def test_predict_returns_labels_probabilities_ids_and_version(handler, aws_world) -> None:
    publish_tiny_model(aws_world.store, aws_world.registry)
    records = [GOOD, {"x1": -3, "colour": "red"}]
    status, body = call(handler, "POST", "/v1/models/tiny/predict", body={"records": records})
    assert status == 200, body
    assert body["model"] == "tiny" and body["version"] == "1" and body["alias"] == "prod"
    expected = expected_probabilities(SPEC.transform(records))
    got = np.array([[p["probabilities"]["no"], p["probabilities"]["yes"]] for p in body["predictions"]])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert [p["label"] for p in body["predictions"]] == ["yes", "no"]
    assert all(set(p) == {"id", "label", "probabilities"} for p in body["predictions"])
    ids = [p["id"] for p in body["predictions"]]
    assert len(set(ids)) == 2 and all(ids)


def test_version_and_alias_select_what_answers(handler, aws_world) -> None:
    publish_tiny_model(aws_world.store, aws_world.registry)
    publish_tiny_model(aws_world.store, aws_world.registry, alias="staging")
    _, by_version = call(handler, "POST", "/v1/models/tiny/predict", body={"records": [GOOD]}, query={"version": "2"})
    _, by_alias = call(handler, "POST", "/v1/models/tiny/predict", body={"records": [GOOD]}, query={"alias": "staging"})
    _, default = call(handler, "POST", "/v1/models/tiny/predict", body={"records": [GOOD]})
    assert (by_version["version"], by_alias["version"], default["version"]) == ("2", "2", "1")


def test_models_are_listed_and_described_with_their_manifest(handler, aws_world) -> None:
    publish_tiny_model(aws_world.store, aws_world.registry)
    status, body = call(handler, "GET", "/v1/models")
    assert status == 200 and body["models"][0]["name"] == "tiny" and body["models"][0]["aliases"] == {"prod": "1"}
    status, body = call(handler, "GET", "/v1/models/tiny")
    assert status == 200 and body["manifest"]["labels"] == ["no", "yes"]
    assert [f["name"] for f in body["manifest"]["input_schema"]] == ["x1", "x2", "colour"]


@pytest.mark.parametrize(
    ("kwargs", "status", "code", "words"),
    [
        ({"raw_body": "{not json"}, 400, "bad_request", ["not valid JSON"]),
        ({}, 422, "invalid_request", ["body"]),
        ({"body": {"records": []}}, 422, "invalid_request", ["records"]),
        ({"body": {"rows": [GOOD]}}, 422, "invalid_request", ["records"]),
        ({"body": {"records": [GOOD, 7]}}, 422, "invalid_request", ["records.1"]),
        ({"body": [GOOD]}, 422, "invalid_request", ["body"]),
        ({"body": {"records": [{"x2": 1, "colour": "red"}]}}, 422, "unprocessable", ["x1", "required field is missing"]),
        ({"body": {"records": [GOOD, {"x1": "ten", "colour": "red"}]}}, 422, "unprocessable", ["x1", "expected a number", '"index": 1']),
        ({"body": {"records": [{"x1": 1, "colour": 3}]}}, 422, "unprocessable", ["colour", "expected a string"]),
        ({"body": {"records": [GOOD] * 6}}, 413, "payload_too_large", ["6 records", "limit is 5"]),
        ({"body": {"records": [GOOD]}, "query": {"version": "1", "alias": "prod"}}, 422, "unprocessable", ["either"]),
        ({"body": {"records": [GOOD]}, "headers": {"Content-Type": "text/plain"}}, 415, "unsupported_media_type", ["text/plain"]),
        ({"body": {"records": [GOOD]}, "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, 415,
         "unsupported_media_type", ["application/json"]),
    ],
)
def test_bad_input_gets_a_4xx_naming_what_is_wrong(handler, aws_world, kwargs, status, code, words) -> None:
    publish_tiny_model(aws_world.store, aws_world.registry)
    got, body = call(handler, "POST", "/v1/models/tiny/predict", **kwargs)
    assert got == status, body
    assert_error(body, code, *words)


@pytest.mark.parametrize(
    ("path", "query", "words"),
    [
        ("/v1/models/ghost/predict", None, ["model 'ghost' was not found"]),
        ("/v1/models/tiny/predict", {"version": "42"}, ["no version '42'"]),
        ("/v1/models/tiny/predict", {"alias": "canary"}, ["no alias 'canary'"]),
    ],
)
def test_unknown_model_version_or_alias_is_404(handler, aws_world, path, query, words) -> None:
    publish_tiny_model(aws_world.store, aws_world.registry)
    status, body = call(handler, "POST", path, body={"records": [GOOD]}, query=query)
    assert status == 404
    assert_error(body, "not_found", *words)


def test_unknown_route_and_bad_model_name(handler) -> None:
    status, body = call(handler, "GET", "/v1/nothing")
    assert status == 404
    assert_error(body, "route_not_found", "/v1/nothing")
    status, body = call(handler, "GET", "/v1/models/bad%20name")
    assert status == 400
    assert_error(body, "bad_request", "invalid model")


def test_a_tampered_model_is_refused_and_not_cached(handler, aws_world) -> None:
    import boto3

    publish_tiny_model(aws_world.store, aws_world.registry)
    boto3.client("s3").put_object(Bucket=aws_world.bucket, Key="models/tiny/1/model.onnx", Body=b"garbage")
    status, body = call(handler, "POST", "/v1/models/tiny/predict", body={"records": [GOOD]})
    assert status == 500
    assert_error(body, "model_integrity", "SHA-256")
    assert ("tiny", "1") not in handler.predictor().cache


def test_the_model_is_loaded_once_per_process(handler, aws_world, monkeypatch) -> None:
    publish_tiny_model(aws_world.store, aws_world.registry)
    loads = []
    store = handler.predictor().store
    original = store.load
    monkeypatch.setattr(store, "load", lambda *a: loads.append(a) or original(*a))
    for _ in range(3):
        status, _ = call(handler, "POST", "/v1/models/tiny/predict", body={"records": [GOOD]})
        assert status == 200
    assert loads == [("tiny", "1")]


def test_the_api_serves_its_openapi_document_with_the_error_shape(handler) -> None:
    status, doc = call(handler, "GET", "/v1/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    assert {"/v1/health", "/v1/models", "/v1/models/{model}", "/v1/models/{model}/predict"} <= set(doc["paths"])
    responses = doc["paths"]["/v1/models/{model}/predict"]["post"]["responses"]
    assert responses["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert "PredictRequest" in doc["components"]["schemas"]
    ok = doc["paths"]["/v1/models/{model}/predict"]["post"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/PredictResponse")
