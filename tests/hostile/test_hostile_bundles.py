"""Hostile or broken model bundles: bundles that load but cannot run, outputs that are not finite, ONNX
external data, and 500s that must not leak internals (hashes, library messages and versions).

The tiny model (maas_local/testing/tiny_model.py): fields x1 (number), x2 (number, optional, scale 2),
colour (blue/red); a 4-column float32 input; softmax over no/yes.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import onnx
import onnxruntime as ort
import pydantic
import pytest
from onnx import TensorProto, helper, numpy_helper

from maas_core.errors import UnprocessableError
from maas_core.manifest import TensorInfo
from maas_core.preprocess import NumericFeature, PreprocessSpec
from maas_core.registration import ModelDeclaration, register_onnx
from maas_core.settings import get_settings
from maas_local.testing import text_model, tiny_model
from maas_local.testing.bundles import publish
from maas_local.testing.tiny_model import LABELS, SPEC, WEIGHTS, publish_tiny_model
from tests.lambda_events import assert_error, call, load_function

GOOD = {"x1": 1.5, "x2": -2, "colour": "blue"}
PREDICT = "/v1/models/tiny/predict"
FALLBACK_LOG = "serving the last good version instead of a broken one"
HEX64 = re.compile(r"[0-9a-f]{64}")
TINY_IO = {"model_input": TensorInfo(name="features", dtype="float32", shape=[None, len(WEIGHTS)]),
           "model_output": TensorInfo(name="probabilities", dtype="float32", shape=[None, 2])}


@pytest.fixture
def handler(aws_world, monkeypatch):
    """Given the predict function with a fresh process state and no alias caching (promotions reach it at once)."""
    monkeypatch.setenv("MAAS_ALIAS_TTL_SECONDS", "0")
    get_settings.cache_clear()
    yield load_function("predict")
    get_settings.cache_clear()


def predict(handler, records: list[Any], **query: str) -> tuple[int, dict[str, Any]]:
    return call(handler, "POST", PREDICT, body={"records": records}, query=query or None)


def spec_json(spec: PreprocessSpec, **numeric_updates: Any) -> bytes:
    """The spec's preprocess.json with fields of its numeric features replaced, written with Python's json
    (which writes NaN / Infinity literals, as a hand-edited or foreign file might)."""
    data = json.loads(spec.to_json())
    for feature in data["features"]:
        if feature["kind"] == "numeric":
            feature.update(numeric_updates)
    return json.dumps(data).encode()


def graph(weights: np.ndarray, bias: np.ndarray, softmax: bool = True, width: int | None = None,
          outputs: int | None = None) -> bytes:
    """A linear model features @ W + B (then softmax), its declared shapes (rows, width) -> (rows, outputs)."""
    nodes = [helper.make_node("MatMul", ["features", "W"], ["z0"]),
             helper.make_node("Add", ["z0", "B"], ["probabilities" if not softmax else "z"])]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["z"], ["probabilities"], axis=1))
    g = helper.make_graph(
        nodes, "linear",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, width or weights.shape[0]])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, outputs or weights.shape[1]])],
        initializer=[numpy_helper.from_array(weights.astype(np.float32), "W"),
                     numpy_helper.from_array(bias.astype(np.float32), "B")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def external_data_model(tmp_path: Path) -> tuple[bytes, Path]:
    """The tiny model saved with onnx.save_model(save_as_external_data=True): its weights live in a file
    beside it (outside any bundle); the model bytes name that file."""
    model = onnx.load_from_string(tiny_model.onnx_bytes())
    folder = tmp_path / "outside"
    folder.mkdir()
    onnx.save_model(model, folder / "model.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    return (folder / "model.onnx").read_bytes(), folder


@pytest.fixture
def logs(caplog):
    """The log records (Powertools loggers propagate to pytest's handler), at INFO as deployed."""
    caplog.set_level(logging.INFO)
    return caplog


def log_lines(logs) -> list[dict[str, Any]]:
    """Each record since the last call, as the JSON line Powertools writes: message and extra keys."""
    lines = [{k: v for k, v in vars(r).items() if isinstance(v, (str, int, float, type(None)))}
             | {"message": r.getMessage()}
             for r in logs.records]
    logs.clear()
    return lines


def logged(logs) -> str:
    return "\n".join(json.dumps(line) for line in log_lines(logs))


def assert_no_internals(body: dict[str, Any]) -> None:
    """A 5xx body names the model problem for humans, never hashes, library versions or pydantic's text."""
    text = json.dumps(body)
    assert not HEX64.search(text), text
    for internal in (ort.__version__, np.__version__, pydantic.VERSION, "pydantic", "validation error",
                     "Traceback", "ONNXRuntimeError", "format_version 99"):
        assert internal not in text, (internal, text)


# --- 1. bundles that load but cannot run: refused at load, the alias keeps its last good version --------------


def wider_spec(world) -> None:
    """preprocess.json one column wider than the graph's 4-column input."""
    spec = PreprocessSpec(features=[*SPEC.features, NumericFeature(name="x3", required=False, fill=0.0)])
    publish(world.store, world.registry, "tiny", spec, tiny_model.onnx_bytes(), LABELS, alias=None, **TINY_IO)


def nan_clip(world) -> None:
    """Clip bounds of NaN: every numeric value becomes NaN before the model sees it."""
    publish(world.store, world.registry, "tiny", SPEC, tiny_model.onnx_bytes(), LABELS, alias=None,
            preprocess_json=spec_json(SPEC, clip=[math.nan, math.nan]), **TINY_IO)


def infinite_center(world) -> None:
    publish(world.store, world.registry, "tiny", SPEC, tiny_model.onnx_bytes(), LABELS, alias=None,
            preprocess_json=spec_json(SPEC, center=math.inf), **TINY_IO)


def huge_text(world) -> None:
    """A text spec whose max_length is 10^9: every request would allocate n x 10^9 token ids."""
    data = json.loads(text_model.SPEC.to_json())
    data["features"][0]["max_length"] = 10**9
    publish(world.store, world.registry, "tiny", text_model.SPEC, text_model.onnx_bytes(), text_model.LABELS,
            alias=None, preprocess_json=json.dumps(data).encode(),
            model_input=TensorInfo(name="tokens", dtype="int32", shape=[None, text_model.MAX_LENGTH]),
            model_output=TensorInfo(name="probabilities", dtype="float32", shape=[None, 2]))


def three_labels(world) -> None:
    """The manifest says multiclass over three labels; the graph gives two columns."""
    publish(world.store, world.registry, "tiny", SPEC, tiny_model.onnx_bytes(), ["a", "b", "c"], alias=None,
            task="multiclass", **TINY_IO)


def integer_input(world) -> None:
    """A float spec feeding a graph that takes int64 (the spec's values would be truncated)."""
    g = helper.make_graph(
        [helper.make_node("Cast", ["features"], ["f"], to=TensorProto.FLOAT),
         helper.make_node("MatMul", ["f", "W"], ["z"]), helper.make_node("Softmax", ["z"], ["probabilities"], axis=1)],
        "ints", [helper.make_tensor_value_info("features", TensorProto.INT64, [None, 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        initializer=[numpy_helper.from_array(WEIGHTS, "W")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    publish(world.store, world.registry, "tiny", SPEC, model.SerializeToString(), LABELS, alias=None,
            model_input=TensorInfo(name="features", dtype="int64", shape=[None, 4]),
            model_output=TINY_IO["model_output"])


def nan_weights(world) -> None:
    """A graph whose weights are NaN: it runs, and every output is NaN (the smoke run on the baseline sees it)."""
    publish(world.store, world.registry, "tiny", SPEC, graph(np.full((4, 2), np.nan), np.zeros(2)), LABELS,
            alias=None, **TINY_IO)


BROKEN = [wider_spec, nan_clip, infinite_center, huge_text, three_labels, integer_input, nan_weights]


@pytest.mark.parametrize("make_broken", BROKEN, ids=[f.__name__ for f in BROKEN])
def test_a_promoted_bundle_that_cannot_run_is_refused_and_the_alias_keeps_its_last_good_version(
        handler, aws_world, logs, make_broken) -> None:
    """Given v1 of tiny on prod, answering,
    when a v2 that loads but cannot run is promoted,
    then requests still answer from v1 (the fallback logged), and asking for v2 explicitly is a 500
    model_unusable naming the model and version, without internals."""
    publish_tiny_model(aws_world.store, aws_world.registry)
    status, body = predict(handler, [GOOD])
    assert (status, body["version"]) == (200, "1"), body
    make_broken(aws_world)
    aws_world.registry.set_alias("tiny", "prod", "2")
    log_lines(logs)

    for _ in range(2):
        status, body = predict(handler, [GOOD])
        assert (status, body["version"]) == (200, "1"), body
        assert body["predictions"][0]["label"] == "yes"
    assert FALLBACK_LOG in logged(logs)

    status, body = predict(handler, [GOOD], version="2")
    assert status == 500, body
    assert_error(body, "model_unusable", "'tiny'", "'2'", "could not be loaded")
    assert_no_internals(body)
    assert ("tiny", "2") not in handler.predictor().cache


def test_a_cold_function_falls_back_along_the_alias_history(handler, aws_world) -> None:
    """Given v1 then a v2 with NaN clip bounds promoted before this process ever served v1,
    when a request comes in, then v1 answers (from the alias history)."""
    publish_tiny_model(aws_world.store, aws_world.registry)
    nan_clip(aws_world)
    aws_world.registry.set_alias("tiny", "prod", "2")
    status, body = predict(handler, [GOOD])
    assert (status, body["version"]) == (200, "1"), body


def test_the_refusal_reason_is_logged_with_model_version_and_variant(handler, aws_world, logs) -> None:
    """Given a v2 one column wider than its graph, when asked for, then the log (not the body) says why."""
    publish_tiny_model(aws_world.store, aws_world.registry)
    wider_spec(aws_world)
    log_lines(logs)
    status, body = predict(handler, [GOOD], version="2")
    assert status == 500 and "5" not in body["error"]["message"]
    line = next(line for line in log_lines(logs) if line.get("code") == "model_unusable")
    assert line["model"] == "tiny" and line["version"] == "2" and line["variant"] == "float"
    assert "5 columns" in json.dumps(line) and "4" in json.dumps(line), line


def test_a_good_bundle_still_loads_and_answers_its_baseline_exactly(handler, aws_world) -> None:
    """The load-time checks let every test bundle through: tabular and text models answer as before."""
    publish_tiny_model(aws_world.store, aws_world.registry)
    text_model.publish_text_model(aws_world.store, aws_world.registry)
    status, body = predict(handler, [GOOD])
    assert status == 200, body
    expected = tiny_model.expected_probabilities(SPEC.transform([GOOD]))[0]
    assert body["predictions"][0]["probabilities"]["yes"] == pytest.approx(float(expected[1]), abs=1e-6)
    status, body = call(handler, "POST", "/v1/models/sentiment/predict", body={"records": ["I love it"]})
    assert (status, body["predictions"][0]["label"]) == (200, "positive"), body


# --- 2. non-finite outputs are a 422 naming each record -----------------------------------------------------

REGRESSION_W = np.array([[1.0], [1.0], [0.0], [0.0]])
REGRESSION_B = np.array([1e38])


def publish_regression(world) -> None:
    """value = x1 + x2/2 + 1e38 (float32): finite inputs may overflow inside the graph."""
    publish(world.store, world.registry, "tiny", SPEC, graph(REGRESSION_W, REGRESSION_B, softmax=False), [],
            task="regression", model_input=TINY_IO["model_input"],
            model_output=TensorInfo(name="probabilities", dtype="float32", shape=[None, 1]))


def assert_nonfinite_422(body: dict[str, Any], indices: list[int]) -> None:
    assert_error(body, "unprocessable", "not finite", "training range")
    assert [d["index"] for d in body["error"]["details"]] == indices, body
    assert all("not finite" in d["reason"] for d in body["error"]["details"])


def test_a_finite_input_that_overflows_in_the_graph_is_a_422_naming_the_record(handler, aws_world) -> None:
    """Given the tiny classifier, when record 1 of 3 carries x1 = 3e38 (finite, within float32, but the
    logits overflow to inf and softmax gives NaN), then the answer is a 422 naming record 1, not a label with
    null probabilities."""
    publish_tiny_model(aws_world.store, aws_world.registry)
    status, body = predict(handler, [GOOD, {**GOOD, "x1": 3e38}, GOOD])
    assert status == 422, body
    assert_nonfinite_422(body, [1])


def test_a_regression_value_that_overflows_is_a_422(handler, aws_world) -> None:
    publish_regression(aws_world)
    status, body = predict(handler, [{"x1": 3e38, "x2": 6e38, "colour": "red"}, {"x1": 1, "colour": "red"}])
    assert status == 422, body
    assert_nonfinite_422(body, [0])
    status, body = predict(handler, [{"x1": 1, "colour": "red"}])
    assert status == 200 and body["predictions"][0]["value"] == pytest.approx(1e38, rel=1e-6)


def test_an_explanation_that_overflows_is_a_422(handler, aws_world) -> None:
    """Given the regression graph, a record whose own value is finite (3e38 - 3e38 + 1e38) but whose occlusion
    of x2 (at its baseline, 0) overflows (3e38 + 1e38): the explanation would carry an infinite attribution."""
    publish_regression(aws_world)
    record = {"x1": 3e38, "x2": -6e38, "colour": "red"}
    status, body = predict(handler, [record])
    assert status == 200 and math.isfinite(body["predictions"][0]["value"]), body
    status, body = predict(handler, [{"x1": 1, "colour": "red"}, record], explain="true")
    assert status == 422, body
    assert_nonfinite_422(body, [1])


def test_batch_rejects_the_same_row_with_the_same_reason(handler, aws_world) -> None:
    """The API and batch agree: the overflowing record is a row error in batch, with the API's reason text."""
    from maas_core.batch import run_batch
    from maas_core.predictor import Predictor
    from maas_core.settings import Settings

    publish_tiny_model(aws_world.store, aws_world.registry)
    _, api = predict(handler, [{**GOOD, "x1": 3e38}])
    body = "".join(json.dumps(r) + "\n" for r in [GOOD, {**GOOD, "x1": 3e38}])
    boto3.client("s3").put_object(Bucket=aws_world.bucket, Key="batch/input/tiny/f.jsonl", Body=body.encode())
    predictor = Predictor(Settings(model_bucket=aws_world.bucket, registry_table=aws_world.table),
                          aws_world.registry, aws_world.store)
    result = run_batch(aws_world.bucket, "batch/input/tiny/f.jsonl", predictor)
    errors = boto3.client("s3").get_object(Bucket=aws_world.bucket, Key=result.errors_key)["Body"].read().decode()
    rows = [json.loads(line) for line in errors.splitlines()]
    assert (result.predicted, result.rejected) == (1, 1)
    assert [r["reason"] for r in rows] == [api["error"]["details"][0]["reason"]]


def test_a_batch_chunk_whose_every_row_overflows_is_rows_of_errors_not_a_failed_file(handler, aws_world) -> None:
    """Given the tiny classifier and a batch file read 2 rows at a time whose second chunk holds only
    overflowing rows, then the file is done: the good rows predicted, each overflowing row a row error with
    the API's reason, none of them a crash of the whole file."""
    from maas_core.batch import run_batch
    from maas_core.outputs import NON_FINITE_REASON
    from maas_core.predictor import Predictor
    from maas_core.settings import Settings

    publish_tiny_model(aws_world.store, aws_world.registry)
    rows = [GOOD, GOOD, {**GOOD, "x1": 3e38}, {**GOOD, "x1": 3e38}, GOOD]
    body = "".join(json.dumps(r) + "\n" for r in rows)
    boto3.client("s3").put_object(Bucket=aws_world.bucket, Key="batch/input/tiny/g.jsonl", Body=body.encode())
    predictor = Predictor(Settings(model_bucket=aws_world.bucket, registry_table=aws_world.table),
                          aws_world.registry, aws_world.store)
    result = run_batch(aws_world.bucket, "batch/input/tiny/g.jsonl", predictor, chunk_rows=2)
    assert (result.status, result.predicted, result.rejected) == ("done", 3, 2)
    errors = boto3.client("s3").get_object(Bucket=aws_world.bucket, Key=result.errors_key)["Body"].read().decode()
    assert [json.loads(line) for line in errors.splitlines()] == [
        {"row": r, "field": None, "reason": NON_FINITE_REASON} for r in (3, 4)]


# --- 3. ONNX external data is refused by maas itself -----------------------------------------------------------


def test_a_model_with_external_data_is_refused_before_onnxruntime_opens_it(handler, aws_world, tmp_path,
                                                                          monkeypatch, logs) -> None:
    """Given v1 on prod and a promoted v2 whose model.onnx keeps its weights in a file outside the bundle (and
    the process runs where that file is, so onnxruntime's own path check would let it be read),
    then v1 keeps answering, v2 is refused without onnxruntime ever building a session from it, the log
    names the external data, and the caller only learns that v2 could not be loaded."""
    import maas_core.model_cache as model_cache

    publish_tiny_model(aws_world.store, aws_world.registry)
    assert predict(handler, [GOOD])[0] == 200
    data, folder = external_data_model(tmp_path)
    monkeypatch.chdir(folder)
    publish(aws_world.store, aws_world.registry, "tiny", SPEC, data, LABELS, alias="prod", **TINY_IO)
    sessions: list[bytes] = []
    original = model_cache.new_session
    monkeypatch.setattr(model_cache, "new_session", lambda b: sessions.append(b) or original(b))
    log_lines(logs)

    status, body = predict(handler, [GOOD])
    assert (status, body["version"]) == (200, "1"), body
    status, body = predict(handler, [GOOD], version="2")
    assert_error(body, "model_unusable", "'2'")
    assert_no_internals(body) and "weights.bin" not in json.dumps(body)
    assert data not in sessions
    log = logged(logs)
    assert "external data" in log and "weights.bin" in log


def test_registering_a_model_with_external_data_is_a_422_and_writes_nothing(aws_world, tmp_path, monkeypatch) -> None:
    data, folder = external_data_model(tmp_path)
    monkeypatch.chdir(folder)
    declaration = ModelDeclaration(task="binary", labels=LABELS, input_name="features", output_name="probabilities",
                                   features=[{"name": n} for n in ("a", "b", "c", "d")])
    with pytest.raises(UnprocessableError, match="external data") as err:
        register_onnx(aws_world.store, aws_world.registry, "ext", data, declaration)
    assert "self-contained" in err.value.message and "W" in json.dumps(err.value.details)
    assert boto3.client("s3").list_objects_v2(Bucket=aws_world.bucket).get("KeyCount", 0) == 0


# --- 4. 500s name the problem for humans; the internals go to the log ------------------------------------------


def test_a_tampered_file_is_a_500_without_hashes_and_the_log_has_them(handler, aws_world, logs) -> None:
    manifest = publish_tiny_model(aws_world.store, aws_world.registry)
    boto3.client("s3").put_object(Bucket=aws_world.bucket, Key="models/tiny/1/model.onnx", Body=b"garbage")
    log_lines(logs)
    status, body = predict(handler, [GOOD])
    assert status == 500
    assert_error(body, "model_integrity", "'tiny'", "model.onnx", "has been logged")
    assert_no_internals(body)
    log = logged(logs)
    assert manifest.files["model.onnx"].sha256 in log
    assert __import__("hashlib").sha256(b"garbage").hexdigest() in log


def test_an_unreadable_spec_is_a_500_without_pydantic_text_and_the_log_has_it(handler, aws_world, logs) -> None:
    """A preprocess.json pydantic refuses (a wrong type): the body says the version could not be loaded; the
    log keeps pydantic's message (with its version in the link it prints)."""
    data = json.loads(SPEC.to_json())
    data["features"][0]["scale"] = "wide"
    publish_tiny_model(aws_world.store, aws_world.registry, preprocess_json=json.dumps(data).encode())
    log_lines(logs)
    status, body = predict(handler, [GOOD])
    assert status == 500
    assert_error(body, "model_unusable", "'tiny'", "'1'", "has been logged")
    assert_no_internals(body)
    log = logged(logs)
    assert "validation error" in log and "scale" in log


def test_an_unsupported_spec_format_is_a_500_without_the_build_details(handler, aws_world, logs) -> None:
    data = json.loads(SPEC.to_json())
    data["format_version"] = 99
    publish_tiny_model(aws_world.store, aws_world.registry, preprocess_json=json.dumps(data).encode())
    log_lines(logs)
    status, body = predict(handler, [GOOD])
    assert status == 500
    assert_error(body, "model_unusable", "could not be loaded")
    assert_no_internals(body)
    assert "format_version 99 is not supported" in logged(logs)


# --- the external data scan itself (maas_core.onnx_external) ----------------------------------------------------


def with_external(tensor: onnx.TensorProto, location: str) -> onnx.TensorProto:
    """The tensor as onnx writes external data: values moved out, data_location EXTERNAL, a location entry."""
    from onnx.external_data_helper import set_external_data

    set_external_data(tensor, location=location, offset=0, length=len(tensor.raw_data))
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    return tensor


def test_the_scan_finds_external_tensors_in_subgraphs_and_node_attributes() -> None:
    """Given external tensors hidden in an If branch's Constant node and in a sparse initializer,
    when scanned, then each is found with its location; the same model without them is self-contained."""
    from maas_core.onnx_external import external_tensors

    const = helper.make_node("Constant", [], ["c"], value=with_external(numpy_helper.from_array(WEIGHTS, "hidden"),
                                                                         "../../etc/passwd"))
    branch = helper.make_graph([const], "then", [], [helper.make_tensor_value_info("c", TensorProto.FLOAT, [4, 2])])
    other = helper.make_graph([helper.make_node("Constant", [], ["d"], value=numpy_helper.from_array(WEIGHTS, "d0"))],
                              "else", [], [helper.make_tensor_value_info("d", TensorProto.FLOAT, [4, 2])])
    sparse = helper.make_sparse_tensor(with_external(numpy_helper.from_array(np.ones(2, np.float32), "sv"), "/abs/v"),
                                       numpy_helper.from_array(np.array([0, 3], np.int64), "si"), [4])
    g = helper.make_graph([helper.make_node("If", ["cond"], ["out"], then_branch=branch, else_branch=other)], "g",
                          [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, [4, 2])],
                          sparse_initializer=[sparse])
    found = external_tensors(helper.make_model(g).SerializeToString())
    assert sorted(found) == [("hidden", "../../etc/passwd"), ("sv", "/abs/v")]


def test_the_scan_has_no_false_positive_on_a_tensor_named_location() -> None:
    """The word `location` in a self-contained model (a tensor's name) sends the scan down its slow path,
    which finds nothing."""
    from maas_core.onnx_external import external_tensors

    model = onnx.load_from_string(tiny_model.onnx_bytes())
    model.graph.initializer[0].name = "location"
    model.graph.node[0].input[1] = "location"
    data = model.SerializeToString()
    assert b"location" in data and external_tensors(data) == []
    assert external_tensors(tiny_model.onnx_bytes()) == []


def test_bytes_that_are_not_protobuf_are_refused_at_registration(aws_world) -> None:
    declaration = ModelDeclaration(task="binary", labels=LABELS, features=[{"name": n} for n in "abcd"])
    truncated = tiny_model.onnx_bytes()[:-7] + b"location"
    with pytest.raises(UnprocessableError, match="not a valid ONNX model"):
        register_onnx(aws_world.store, aws_world.registry, "bad", truncated, declaration)
