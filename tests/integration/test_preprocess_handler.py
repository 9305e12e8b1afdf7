"""The preprocess function end to end through its Lambda handler: raw records in, the feature matrix
the model is given out (the bundle's fitted spec, the same code predict runs)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maas_core.settings import get_settings
from maas_local.testing import text_model
from maas_local.testing.tiny_model import SPEC, publish_tiny_model
from tests.lambda_events import assert_error, call, load_function

GOOD = {"x1": 1.5, "x2": -2, "colour": "blue"}
PATH = "/v1/models/tiny/preprocess"


@pytest.fixture
def handler(aws_world, monkeypatch):
    """Given the preprocess function with a fresh process state, pointed at the moto world, and the
    tiny tabular model published as prod."""
    monkeypatch.setenv("MAAS_MAX_RECORDS", "5")
    get_settings.cache_clear()
    app = load_function("preprocess")
    publish_tiny_model(aws_world.store, aws_world.registry)
    yield app
    get_settings.cache_clear()


def test_tabular_features_are_exactly_what_the_spec_gives(handler) -> None:
    records = [GOOD, {"x1": "-3", "colour": "red"}, {"x1": 0.1, "x2": None, "colour": "green"}]
    status, body = call(handler, "POST", PATH, body={"records": records})
    assert status == 200, body
    assert set(body) == {"model", "version", "alias", "feature_names", "dtype", "features"}
    assert (body["model"], body["version"], body["alias"]) == ("tiny", "1", "prod")
    assert body["feature_names"] == SPEC.feature_names() and len(body["feature_names"]) == 4
    assert body["dtype"] == "float32"
    expected = SPEC.transform(records)
    got = np.array(body["features"], dtype=np.float32)
    assert got.shape == expected.shape == (3, 4)
    np.testing.assert_array_equal(got, expected)  # exact: every float32 survives the JSON round trip


def test_float32_features_are_written_short(handler) -> None:
    """0.1 as float32 is sent as 0.1 (which reads back as the same float32), not 0.10000000149011612."""
    status, body = call(handler, "POST", PATH, body={"records": [{"x1": 0.1, "x2": 0.2, "colour": "red"}]})
    assert status == 200, body
    assert body["features"][0][:2] == [0.1, 0.1]
    assert "0000000" not in json.dumps(body["features"])


def test_version_and_alias_select_the_spec(handler, aws_world) -> None:
    publish_tiny_model(aws_world.store, aws_world.registry, alias="staging")
    _, by_version = call(handler, "POST", PATH, body={"records": [GOOD]}, query={"version": "2"})
    _, by_alias = call(handler, "POST", PATH, body={"records": [GOOD]}, query={"alias": "staging"})
    _, default = call(handler, "POST", PATH, body={"records": [GOOD]})
    assert (by_version["version"], by_alias["version"], default["version"]) == ("2", "2", "1")
    assert "alias" not in by_version and by_alias["alias"] == "staging" and default["alias"] == "prod"


def test_text_model_gives_integer_token_ids(handler, aws_world) -> None:
    text_model.publish_text_model(aws_world.store, aws_world.registry)
    records = ["I love it!", {"text": "AWFUL support"}, "", "never seen words"]
    status, body = call(handler, "POST", "/v1/models/sentiment/preprocess", body={"records": records})
    assert status == 200, body
    assert body["dtype"] == "int32"
    assert body["feature_names"] == [f"text[{i}]" for i in range(text_model.MAX_LENGTH)]
    assert all(isinstance(v, int) for row in body["features"] for v in row)
    assert body["features"] == text_model.SPEC.transform(records).tolist()
    ids = {w: i + 2 for i, w in enumerate(text_model.TEXT.vocabulary)}
    assert body["features"][0][:4] == [ids["i"], ids["love"], ids["it"], 0]
    assert body["features"][2] == [0] * text_model.MAX_LENGTH  # empty text: all padding
    assert body["features"][3][:4] == [1, 1, 1, 0]  # unknown words: the OOV id


def test_preprocess_and_predict_agree(handler, aws_world) -> None:
    """The features preprocess returns, run through the model, give the probabilities predict returns."""
    from maas_local.testing.tiny_model import expected_probabilities

    predict = load_function("predict")
    records = [GOOD, {"x1": -1, "colour": "red"}]
    _, pre = call(handler, "POST", PATH, body={"records": records})
    _, pred = call(predict, "POST", "/v1/models/tiny/predict", body={"records": records})
    probs = expected_probabilities(np.array(pre["features"], np.float32))
    got = [[p["probabilities"]["no"], p["probabilities"]["yes"]] for p in pred["predictions"]]
    np.testing.assert_allclose(got, probs, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "status", "code", "words"),
    [
        ({"raw_body": "{not json"}, 400, "bad_request", ["not valid JSON"]),
        ({"raw_body": '{"records": ['}, 400, "bad_request", ["not valid JSON"]),
        ({}, 422, "invalid_request", ["body", "missing"]),
        ({"body": {"records": []}}, 422, "invalid_request", ["records", "at least 1"]),
        ({"body": {}}, 422, "invalid_request", ["records"]),
        ({"body": {"rows": [GOOD]}}, 422, "invalid_request", ["records"]),
        ({"body": {"records": [GOOD], "extra": 1}}, 422, "invalid_request", ["extra"]),
        ({"body": {"records": GOOD}}, 422, "invalid_request", ["records"]),
        ({"body": [GOOD]}, 422, "invalid_request", ["body"]),
        ({"body": {"records": [GOOD, 7]}}, 422, "invalid_request", ["records.1", "got a number"]),
        ({"body": {"records": [GOOD, True]}}, 422, "invalid_request", ["records.1", "got a boolean"]),
        ({"body": {"records": [[1.5, -2, "blue"]]}}, 422, "invalid_request", ["records.0", "got a list"]),
        ({"body": {"records": [GOOD, "x1=1.5, colour=blue"]}}, 422, "unprocessable",
         ['"index": 1', "record must be a JSON object, got a string"]),
        ({"body": {"records": [{"x2": 1, "colour": "red"}]}}, 422, "unprocessable",
         ["x1", "required field is missing"]),
        ({"body": {"records": [GOOD, {"x1": "ten", "colour": "red"}]}}, 422, "unprocessable",
         ["x1", "expected a number", '"index": 1']),
        ({"body": {"records": [{"x1": 1, "colour": 3}]}}, 422, "unprocessable", ["colour", "expected a string"]),
        ({"body": {"records": [{"x1": 1e300, "colour": "red"}]}}, 422, "unprocessable", ["x1", "out of range"]),
        ({"body": {"records": [GOOD] * 6}}, 413, "payload_too_large", ["6 records", "limit is 5"]),
        ({"body": {"records": [GOOD]}, "query": {"version": "1", "alias": "prod"}}, 422, "unprocessable", ["either"]),
        ({"body": {"records": [GOOD]}, "headers": {"Content-Type": "text/plain"}}, 415, "unsupported_media_type",
         ["text/plain"]),
        ({"body": {"records": [GOOD]}, "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, 415,
         "unsupported_media_type", ["application/json"]),
    ],
)
def test_bad_input_gets_a_4xx_naming_what_is_wrong(handler, kwargs, status, code, words) -> None:
    got, body = call(handler, "POST", PATH, **kwargs)
    assert got == status, body
    assert_error(body, code, *words)


@pytest.mark.parametrize(
    ("path", "query", "status", "code", "words"),
    [
        ("/v1/models/ghost/preprocess", None, 404, "not_found", ["model 'ghost' was not found"]),
        (PATH, {"version": "42"}, 404, "not_found", ["no version '42'"]),
        (PATH, {"alias": "canary"}, 404, "not_found", ["no alias 'canary'"]),
        ("/v1/models/bad%20name/preprocess", None, 400, "bad_request", ["invalid model"]),
    ],
)
def test_unknown_model_version_or_alias(handler, path, query, status, code, words) -> None:
    got, body = call(handler, "POST", path, body={"records": [GOOD]}, query=query)
    assert got == status, body
    assert_error(body, code, *words)


def test_other_routes_are_not_this_functions(handler) -> None:
    status, body = call(handler, "POST", "/v1/models/tiny/predict", body={"records": [GOOD]})
    assert status == 404
    assert_error(body, "route_not_found", "/v1/models/tiny/predict")


# --- broken bundles -------------------------------------------------------------------------------


def test_a_spec_of_an_unknown_format_version_is_a_500_and_not_cached(handler, aws_world, caplog) -> None:
    """A bundle whose hashes match but whose preprocess.json this build cannot read is our fault (500),
    names the version (the log says why), and is not cached (a fixed build or bundle is picked up without
    a restart)."""
    future = json.loads(SPEC.to_json())
    future["format_version"] = 99
    publish_tiny_model(aws_world.store, aws_world.registry, name="future", preprocess_json=json.dumps(future).encode())
    for _ in range(2):  # tried again on the next request, not served from a cache
        status, body = call(handler, "POST", "/v1/models/future/preprocess", body={"records": [GOOD]})
        assert status == 500, body
        assert_error(body, "model_unusable", "'future'", "could not be loaded", "has been logged")
        assert "format_version" not in json.dumps(body)
        assert ("future", "1") not in handler.predictor().cache
    assert "format_version 99 is not supported" in " ".join(str(getattr(r, "reason", "")) for r in caplog.records)
    predict = load_function("predict")
    status, body = call(predict, "POST", "/v1/models/future/predict", body={"records": [GOOD]})
    assert status == 500
    assert_error(body, "model_unusable", "'future'", "could not be loaded")


def test_a_tampered_spec_is_refused_and_not_cached(handler, aws_world) -> None:
    import boto3

    boto3.client("s3").put_object(Bucket=aws_world.bucket, Key="models/tiny/1/preprocess.json", Body=b"{}")
    status, body = call(handler, "POST", PATH, body={"records": [GOOD]})
    assert status == 500
    assert_error(body, "model_integrity", "preprocess.json", "SHA-256")
    assert ("tiny", "1") not in handler.predictor().cache


def test_the_route_generates_its_openapi_description(handler) -> None:
    """The preprocess route's request, response and error bodies are documented from the code."""
    doc = json.loads(handler.app.get_openapi_json_schema(title="maas", version="test"))
    op = doc["paths"]["/v1/models/{model}/preprocess"]["post"]
    assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/PreprocessRequest")
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/PreprocessResponse")
    for status in ("400", "404", "413", "415", "422", "500"):
        assert op["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert {p["name"] for p in op["parameters"]} == {"model", "version", "alias"}
    schemas = doc["components"]["schemas"]
    items = schemas["PreprocessRequest"]["properties"]["records"]["items"]
    assert {v.get("type") for v in items["anyOf"]} == {"object", "string"}
    response = schemas["PreprocessResponse"]
    assert {"feature_names", "dtype", "features"} <= set(response["required"])
    assert response["properties"]["dtype"]["enum"] == ["float32", "int32", "int64"]
