"""The predict function end to end through its Lambda handler: API Gateway events in, responses out."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from maas_core.settings import get_settings
from maas_local.testing import text_model
from maas_local.testing.tiny_model import SPEC, expected_probabilities, publish_tiny_model
from tests.lambda_events import assert_error, call, load_function

GOOD = {"x1": 1.5, "x2": -2, "colour": "blue"}


@pytest.fixture
def handler(aws_world, monkeypatch):
    """Given the predict function with a fresh process state, pointed at the moto world."""
    monkeypatch.setenv("MAAS_MAX_RECORDS", "5")
    get_settings.cache_clear()
    app = load_function("predict")
    yield app
    get_settings.cache_clear()


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
        ({"body": {"records": [GOOD, 7]}}, 422, "invalid_request",
         ["records.1", "JSON object or a string, got a number"]),
        ({"body": {"records": [[1, 2]]}}, 422, "invalid_request", ["records.0", "got a list"]),
        ({"body": {"records": [None]}}, 422, "invalid_request", ["records.0", "got null"]),
        ({"body": {"records": "x1=1"}}, 422, "invalid_request", ["records"]),
        ({"body": {"records": [GOOD, "a raw text"]}}, 422, "unprocessable",
         ['"index": 1', "record must be a JSON object, got a string"]),
        ({"body": [GOOD]}, 422, "invalid_request", ["body"]),
        ({"body": {"records": [{"x2": 1, "colour": "red"}]}}, 422, "unprocessable",
         ["x1", "required field is missing"]),
        ({"body": {"records": [GOOD, {"x1": "ten", "colour": "red"}]}}, 422, "unprocessable",
         ["x1", "expected a number", '"index": 1']),
        ({"body": {"records": [{"x1": 1, "colour": 3}]}}, 422, "unprocessable", ["colour", "expected a string"]),
        ({"body": {"records": [GOOD] * 6}}, 413, "payload_too_large", ["6 records", "limit is 5"]),
        ({"body": {"records": [GOOD]}, "query": {"version": "1", "alias": "prod"}}, 422, "unprocessable", ["either"]),
        ({"body": {"records": [GOOD]}, "headers": {"Content-Type": "text/plain"}}, 415, "unsupported_media_type",
         ["text/plain"]),
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
    monkeypatch.setattr(store, "load", lambda *a, **kw: loads.append(a) or original(*a, **kw))
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
    schemas = doc["components"]["schemas"]
    assert "PredictRequest" in schemas
    # records: JSON objects or bare strings, both documented
    items = schemas["PredictRequest"]["properties"]["records"]["items"]
    assert {v.get("type") for v in items["anyOf"]} == {"object", "string"}, items
    ok = doc["paths"]["/v1/models/{model}/predict"]["post"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/PredictResponse")


# --- text models: raw strings or {"text": ...} objects ----------------------------------------------


@pytest.fixture
def text_handler(handler, aws_world):
    """Given the predict function and the tiny text model (maas_local/testing/text_model.py) published as prod."""
    text_model.publish_text_model(aws_world.store, aws_world.registry)
    return handler


def predict_text(app, records: list[Any]) -> list[dict[str, Any]]:
    status, body = call(app, "POST", "/v1/models/sentiment/predict", body={"records": records})
    assert status == 200, body
    assert (body["model"], body["version"], body["alias"]) == ("sentiment", "1", "prod")
    return body["predictions"]


def test_text_model_predicts_raw_strings(text_handler) -> None:
    records = ["I love it, great stuff", "awful. just awful!", "GOOD value", "Ich hasse es: BAD, bad, bad"]
    preds = predict_text(text_handler, records)
    assert [p["label"] for p in preds] == ["positive", "negative", "positive", "negative"]
    expected = text_model.expected_probabilities(text_model.SPEC.transform(records))
    got = np.array([[p["probabilities"]["negative"], p["probabilities"]["positive"]] for p in preds])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_text_model_takes_objects_strings_and_a_mix_alike(text_handler) -> None:
    texts = ["we love it", "we hate it"]
    as_strings = predict_text(text_handler, texts)
    as_objects = predict_text(text_handler, [{"text": t} for t in texts])
    mixed = predict_text(text_handler, [texts[0], {"text": texts[1]}])
    for preds in (as_strings, as_objects, mixed):
        assert [p["label"] for p in preds] == ["positive", "negative"]
        assert [p["probabilities"] for p in preds] == [p["probabilities"] for p in as_strings]


def test_empty_or_unknown_text_still_predicts(text_handler) -> None:
    """Empty text is valid input: all padding, so the model answers from its bias alone (here: negative,
    with the probabilities the graph gives a text without any known word)."""
    preds = predict_text(text_handler, ["", "   ", {"text": ""}, "zzz qqq", "!!!"])
    assert len({json.dumps(p["probabilities"], sort_keys=True) for p in preds}) == 1
    expected = text_model.expected_probabilities(np.zeros((1, text_model.MAX_LENGTH), np.int32))[0]
    assert preds[0]["label"] == "negative"
    assert [preds[0]["probabilities"]["negative"], preds[0]["probabilities"]["positive"]] == pytest.approx(
        expected.tolist(), abs=1e-5)


@pytest.mark.parametrize(
    ("records", "words"),
    [
        ([{"text": 7}], ['"index": 0', "text", "expected a string"]),
        (["fine", {"body": "wrong field"}], ['"index": 1', "text", "required field is missing"]),
        (["fine", {"text": None}], ['"index": 1', "required field is missing"]),
    ],
)
def test_text_model_names_bad_records(text_handler, records, words) -> None:
    status, body = call(text_handler, "POST", "/v1/models/sentiment/predict", body={"records": records})
    assert status == 422
    assert_error(body, "unprocessable", *words)
