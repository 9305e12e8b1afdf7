"""The Open Inference Protocol (KServe V2 REST) on the predict function, through its Lambda handler."""

from __future__ import annotations

import json
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
    monkeypatch.setenv("MAAS_MAX_EXPLAIN_CELLS", "12")  # 4 records of the tiny model's 3 fields
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
    assert body["parameters"] == {"alias": "prod", "version": "1"}
    assert call(handler, "GET", "/v2/models/tiny/versions/1")[1] == {k: v for k, v in body.items() if k != "parameters"}
    assert call(handler, "GET", "/v2/models/tiny/ready") == (200, {"ready": True})
    assert call(handler, "GET", "/v2/models/tiny/versions/1/ready") == (200, {"ready": True})


def test_metadata_of_an_alias_with_a_canary_describes_its_stable_version(handler, aws_world) -> None:
    """Given prod at 1 with version 2 as its canary for half the callers, when the metadata is asked many times,
    then every answer describes version 1 and names the canary in its parameters; readiness loads version 1."""
    publish_tiny_model(aws_world.store, aws_world.registry, alias=None)
    aws_world.registry.set_canary("tiny", "prod", "2", 0.5)
    answers = [call(handler, "GET", "/v2/models/tiny") for _ in range(30)]
    assert {status for status, _ in answers} == {200}
    assert all(body == answers[0][1] for _, body in answers)  # the split is not rolled for metadata
    assert answers[0][1]["parameters"] == {"alias": "prod", "version": "1", "canary_version": "2",
                                           "canary_weight": 0.5}
    assert "parameters" not in call(handler, "GET", "/v2/models/tiny/versions/2")[1]
    assert call(handler, "GET", "/v2/models/tiny/ready") == (200, {"ready": True})


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


def feature_tensor(records: list[dict[str, Any]], **change: Any) -> dict[str, Any]:
    """The tiny model's own input: its graph's "features" tensor, the spec's [N, 4] matrix of the records."""
    matrix = SPEC.transform(records)
    return {"name": "features", "datatype": "FP32", "shape": list(matrix.shape), "data": matrix.tolist(), **change}


def test_the_models_own_input_tensor_skips_the_preprocessing(handler) -> None:
    """Given the records' feature matrix sent as the graph's input tensor "features" [2, 4] FP32, when inferred,
    then the outputs are those of the raw-field request (the spec's transform was done by the caller)."""
    status, body = call(handler, "POST", "/v2/models/tiny/infer", body={"inputs": [feature_tensor(RECORDS)]})
    assert status == 200, body
    _, raw = call(handler, "POST", "/v2/models/tiny/infer", body={"inputs": tensors(RECORDS)})
    assert body["outputs"] == raw["outputs"]
    flat = SPEC.transform(RECORDS).ravel().tolist()  # the flat form of the same tensor
    _, again = call(handler, "POST", "/v2/models/tiny/infer", body={"inputs": [feature_tensor(RECORDS, data=flat)]})
    assert again["outputs"] == raw["outputs"]


def test_explanation_output_is_v1s_explanation_as_json_text(handler) -> None:
    """Given two records, when the explanation output is asked with the label, then it is a BYTES [2] tensor whose
    elements are the JSON of /v1's ?explain=true explanations, and the label is /v1's."""
    request = {"inputs": tensors(RECORDS), "outputs": [{"name": "label"}, {"name": "explanation"}]}
    status, body = call(handler, "POST", "/v2/models/tiny/infer", body=request)
    assert status == 200, body
    label, explanation = body["outputs"]
    assert explanation["name"] == "explanation" and explanation["datatype"] == "BYTES" and explanation["shape"] == [2]
    _, v1 = call(handler, "POST", "/v1/models/tiny/predict", body={"records": RECORDS}, query={"explain": "true"})
    assert [json.loads(e) for e in explanation["data"]] == [p["explanation"] for p in v1["predictions"]]
    assert label["data"] == [p["label"] for p in v1["predictions"]]
    assert set(json.loads(explanation["data"][0])["attributions"]) == {"x1", "x2", "colour"}


def test_explanations_are_bounded_before_they_are_made(handler) -> None:
    """Given MAAS_MAX_EXPLAIN_CELLS 12, when 5 records of 3 fields are to be explained (15 occlusions), then 413
    in the protocol's body names the limit, as /v1's ?explain=true is refused."""
    status, body = call(handler, "POST", "/v2/models/tiny/infer",
                        body={"inputs": tensors([RECORDS[0]] * 5), "outputs": [{"name": "explanation"}]})
    assert status == 413 and set(body) == {"error"} and "the limit is 12" in body["error"], body


def test_a_tensor_the_graph_refuses_is_the_callers_mistake(handler, aws_world) -> None:
    """Given the text model, when its token-id tensor holds an id past the vocabulary, then 400 says the model
    refused it (onnxruntime's reason), not a 500."""
    manifest = text_model.publish_text_model(aws_world.store, aws_world.registry)
    info = manifest.model_input
    width = info.shape[1]
    datatype = {"int32": "INT32", "int64": "INT64"}[info.dtype]
    ok = call(handler, "POST", "/v2/models/sentiment/infer", body={"inputs": [
        {"name": info.name, "datatype": datatype, "shape": [1, width], "data": [[1] * width]}]})
    assert ok[0] == 200, ok
    status, body = call(handler, "POST", "/v2/models/sentiment/infer", body={"inputs": [
        {"name": info.name, "datatype": datatype, "shape": [1, width], "data": [[10**6] * width]}]})
    assert status == 400 and "the model refused the input tensor" in body["error"], body


def bad(**change: Any) -> dict[str, Any]:
    inputs = tensors(RECORDS)
    inputs[0] = {**inputs[0], **change}
    return {"inputs": inputs}


@pytest.mark.parametrize(("body", "words"), [
    (bad(datatype="BYTES", data=["1", "2"]), "field: its datatype must be FP32"),
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
    ({"inputs": [feature_tensor(RECORDS, shape=[2, 3], data=[[0.0] * 3] * 2)]}, "shape [N, 4]"),
    ({"inputs": [feature_tensor(RECORDS, shape=[8], data=[0.0] * 8)]}, "shape [N, 4]"),
    ({"inputs": [feature_tensor(RECORDS, datatype="FP64")]}, "must be FP32, got 'FP64'"),
    ({"inputs": [feature_tensor(RECORDS, shape=[0, 4], data=[])]}, "holds no records"),
    ({"inputs": [{**t, "shape": [0], "data": []} for t in tensors(RECORDS)]}, "holds no records"),
    ({"inputs": [feature_tensor(RECORDS, data=[[1e39] * 4] * 2)]}, "too large for FP32"),
    ({"inputs": [feature_tensor(RECORDS, data=[[10**400] * 4] * 2)]}, "too large for FP32"),
    ({"inputs": [feature_tensor(RECORDS, shape=[6, 4], data=[[0.0] * 4] * 6)]}, "limit is 5"),
    ({"inputs": [feature_tensor(RECORDS), tensors(RECORDS)[0]]}, "not both"),
    ({"inputs": [feature_tensor(RECORDS), feature_tensor(RECORDS)]}, "given twice"),
    ({"inputs": [feature_tensor(RECORDS)], "outputs": [{"name": "explanation"}]}, "send the fields"),
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
