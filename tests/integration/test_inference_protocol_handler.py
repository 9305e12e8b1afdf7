"""The Open Inference Protocol (KServe V2 REST) on the predict function, through its Lambda handler."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from maas_core.settings import get_settings
from maas_local.testing import text_model
from maas_local.testing.tiny_model import SPEC, expected_probabilities, publish_tiny_model
from tests.lambda_events import call, load_function

RECORDS = [{"x1": 1.5, "x2": -2, "colour": "blue"}, {"x1": -3, "x2": 0.5, "colour": "red"}]


def tensors(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": "x1", "datatype": "FP32", "shape": [len(records)], "data": [r["x1"] for r in records]},
            {"name": "x2", "datatype": "FP64", "shape": [len(records), 1], "data": [[r["x2"]] for r in records]},
            {"name": "colour", "datatype": "BYTES", "shape": [len(records)], "data": [r["colour"] for r in records]}]


@pytest.fixture
def handler(aws_world, monkeypatch):
    """Given the predict function with a fresh process state and the tiny model published (prod: 1)."""
    monkeypatch.setenv("MAAS_MAX_RECORDS", "5")
    get_settings.cache_clear()
    app = load_function("predict")
    publish_tiny_model(aws_world.store, aws_world.registry)
    yield app
    get_settings.cache_clear()


def test_health_and_server_metadata(handler) -> None:
    """Given the function, when the protocol's health and server routes are asked, then they answer 200."""
    assert call(handler, "GET", "/v2/health/live") == (200, {"live": True})
    assert call(handler, "GET", "/v2/health/ready") == (200, {"ready": True})
    status, body = call(handler, "GET", "/v2")
    assert status == 200 and body["name"] == "maas" and body["extensions"] == []


def test_model_metadata_comes_from_the_manifest(handler) -> None:
    """Given the tiny model, when its metadata is asked, then its raw fields, outputs and versions are listed."""
    status, body = call(handler, "GET", "/v2/models/tiny")
    assert status == 200, body
    assert body["platform"] == "onnxruntime_onnx" and body["versions"] == ["1"]
    assert body["inputs"] == [{"name": "x1", "datatype": "FP32", "shape": [-1]},
                              {"name": "x2", "datatype": "FP32", "shape": [-1]},
                              {"name": "colour", "datatype": "BYTES", "shape": [-1]}]
    assert body["outputs"] == [{"name": "label", "datatype": "BYTES", "shape": [-1]},
                               {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]
    assert call(handler, "GET", "/v2/models/tiny/versions/1")[1] == body
    assert call(handler, "GET", "/v2/models/tiny/ready") == (200, {"ready": True})
    assert call(handler, "GET", "/v2/models/tiny/versions/1/ready") == (200, {"ready": True})


def test_infer_runs_the_fitted_preprocessing_as_v1_does(handler) -> None:
    """Given two records as tensors (flat and nested), when inferred, then labels and probabilities are /v1's."""
    status, body = call(handler, "POST", "/v2/models/tiny/infer", body={"id": "r1", "inputs": tensors(RECORDS)})
    assert status == 200, body
    assert body["model_name"] == "tiny" and body["model_version"] == "1" and body["id"] == "r1"
    out = {o["name"]: o for o in body["outputs"]}
    assert out["label"] == {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["yes", "no"]}
    assert out["probabilities"]["shape"] == [2, 2]
    np.testing.assert_allclose(np.array(out["probabilities"]["data"]).reshape(2, 2),
                               expected_probabilities(SPEC.transform(RECORDS)), atol=1e-5)
    _, v1 = call(handler, "POST", "/v1/models/tiny/predict", body={"records": RECORDS})
    assert [p["label"] for p in v1["predictions"]] == out["label"]["data"]


def test_outputs_and_parameters_choose_what_answers(handler, aws_world) -> None:
    """Given a second version under alias staging, when outputs, a version or the alias are asked, they answer."""
    publish_tiny_model(aws_world.store, aws_world.registry, alias="staging")
    request = {"inputs": tensors(RECORDS), "outputs": [{"name": "probabilities"}]}
    _, by_version = call(handler, "POST", "/v2/models/tiny/versions/2/infer", body=request)
    assert by_version["model_version"] == "2" and [o["name"] for o in by_version["outputs"]] == ["probabilities"]
    _, by_alias = call(handler, "POST", "/v2/models/tiny/infer", body={**request, "parameters": {"alias": "staging"}})
    assert by_alias["model_version"] == "2" and by_alias["parameters"]["alias"] == "staging"


def test_text_model_takes_bytes(handler, aws_world) -> None:
    """Given the text model, when texts are sent as a BYTES tensor, then they are classified by their words."""
    text_model.publish_text_model(aws_world.store, aws_world.registry)
    texts = ["I love it, great", "awful, I hate it"]
    status, body = call(handler, "POST", "/v2/models/sentiment/infer", body={"inputs": [
        {"name": text_model.TEXT_FIELD, "datatype": "BYTES", "shape": [2, 1], "data": texts}]})
    assert status == 200, body
    assert body["outputs"][0]["data"] == ["positive", "negative"]


def bad(**change: Any) -> dict[str, Any]:
    inputs = tensors(RECORDS)
    inputs[0] = {**inputs[0], **change}
    return {"inputs": inputs}


@pytest.mark.parametrize(("body", "words"), [
    (bad(datatype="BYTES", data=["1", "2"]), "must be FP32"),
    (bad(datatype="FP16"), "not supported"),
    (bad(shape=[3]), "do not fill shape"),
    (bad(shape=[2, 2]), "shape [2, 2]"),
    (bad(name="x9"), "unknown input 'x9'"),
    ({"inputs": tensors(RECORDS)[1:]}, "missing input x1"),
    (bad(shape=[6], data=[1.0] * 6), "limit is 5"),
    (bad(shape=[2, 1], data=[[1.0], 2.0]), "ragged"),
    (bad(shape=[2, 1], data=[[1.0], [2.0, 3.0]]), "nested data does not match"),
    ({"inputs": [*tensors(RECORDS)[:2], {"name": "colour", "datatype": "BYTES", "shape": [2], "data": [1, 2]}]},
     "BYTES takes strings"),
    (bad(data=[math.nan, 1.0]), "not a finite number"),
    (bad(data=[True, 1.0]), "takes numbers"),
    (bad(data="1,2"), "must be an array"),
    ({"inputs": tensors(RECORDS), "outputs": [{"name": "value"}]}, "unknown output 'value'"),
    ({"inputs": tensors(RECORDS), "parameters": {"variant": "fp8"}}, "unknown variant"),
    ({"inputs": tensors(RECORDS), "parameters": {"alias": 3}}, "must be a string"),
    ({"inputs": [{"name": "x1"}]}, "request is invalid"),
    ({"inputs": [*tensors(RECORDS)[:2], {"name": "colour", "datatype": "BYTES", "shape": [2],
                                         "data": ["blue", "x" * 20_001]}]}, "characters"),
])
def test_bad_requests_are_400_with_the_protocol_error_body(handler, body, words) -> None:
    """Given a request that does not fit the model, when inferred, then 400 {"error": "..."} says why."""
    status, answer = call(handler, "POST", "/v2/models/tiny/infer", body=body)
    assert status == 400 and set(answer) == {"error"} and isinstance(answer["error"], str), answer
    assert words in answer["error"], answer


def test_unknown_model_and_malformed_json_answer_in_the_protocol_body(handler) -> None:
    """Given no model 'nope', when its metadata or a malformed body is sent, then errors are {"error": "..."}."""
    status, body = call(handler, "GET", "/v2/models/nope")
    assert status == 404 and set(body) == {"error"} and "nope" in body["error"]
    status, body = call(handler, "POST", "/v2/models/tiny/infer", raw_body="{not json")
    assert status == 400 and "not valid JSON" in body["error"]
