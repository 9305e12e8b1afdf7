"""Hostile HTTP requests, sent through the functions' Lambda handlers as API Gateway would deliver them.

Each class of input here once took a function down or cost far more than its bytes: one long string
(gigabytes of fixed-width numpy arrays), JSON nested 100,000 deep or an integer of 5,000 digits (500s),
100,000 records that are not objects (a 9.7 MB error body), explanations of 1,000 records of a wide
model, text that Unicode normalisation multiplies. Every one must be a 4xx with the documented error
body, its request id, and work and memory bounded by what was received.
"""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from maas_core.manifest import TensorInfo
from maas_core.preprocess import CategoricalFeature, NumericFeature, PreprocessSpec
from maas_core.settings import get_settings
from maas_local.testing import text_model
from maas_local.testing.bundles import publish
from maas_local.testing.tiny_model import publish_tiny_model
from tests.lambda_events import FakeLambdaContext, assert_error, call, load_function, rest_event

GOOD = {"x1": 1.5, "x2": -2, "colour": "blue"}
PREDICT = "/v1/models/tiny/predict"
PREPROCESS = "/v1/models/tiny/preprocess"


@pytest.fixture
def world(aws_world):
    """Given the tiny model as prod, and fresh settings (each test sets the limits it needs first)."""
    get_settings.cache_clear()
    publish_tiny_model(aws_world.store, aws_world.registry)
    yield aws_world
    get_settings.cache_clear()


def linear_model_bytes(width: int) -> bytes:
    """A real ONNX softmax classifier over `width` float inputs."""
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(width, 2)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "W"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
        "wide", [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        initializer=[numpy_helper.from_array(weights, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def publish_wide(world, name: str, spec: PreprocessSpec) -> None:
    width = len(spec.feature_names())
    publish(world.store, world.registry, name, spec, linear_model_bytes(width), ["no", "yes"],
            model_input=TensorInfo(name="features", dtype="float32", shape=[None, width]),
            model_output=TensorInfo(name="probabilities", dtype="float32", shape=[None, 2]))


def raw_call(app: Any, method: str, path: str, raw_body: str, **kwargs: Any) -> tuple[int, dict[str, Any], dict]:
    resp = app.lambda_handler(rest_event(method, path, raw_body=raw_body, **kwargs), FakeLambdaContext())
    return resp["statusCode"], json.loads(resp["body"]), resp


# --- one long string ------------------------------------------------------------------------------


def test_one_long_value_costs_memory_in_proportion_to_the_body(world, monkeypatch) -> None:
    """Given a field cap high enough to let a 100,000-character category through to the encoder,
    when it comes with 999 ordinary records,
    then the answer needs memory of the order of the body, not records x longest value (400 MB before)."""
    monkeypatch.setenv("MAAS_MAX_FIELD_CHARS", "1000000")
    handler = load_function("predict")
    records = [GOOD] * 999 + [{**GOOD, "colour": "x" * 100_000}]
    body = json.dumps({"records": records})
    call(handler, "POST", PREDICT, body={"records": [GOOD]})  # model loaded: measure the request alone
    tracemalloc.start()
    try:
        status, answer, _ = raw_call(handler, "POST", PREDICT, body)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == 200, answer  # an unseen category is ignored by this spec: a real answer
    assert len(answer["predictions"]) == 1000
    assert peak < 40 * len(body), f"peak {peak / 1e6:.1f} MB for a {len(body) / 1e6:.2f} MB body"


@pytest.mark.parametrize("route", [PREDICT, PREPROCESS])
@pytest.mark.parametrize(("field", "value"), [("colour", "x" * 20_001), ("x1", "1" * 30_000), ("x2", " " * 25_000)])
def test_a_value_over_the_field_cap_is_a_422_naming_record_and_field(world, route, field, value) -> None:
    """Given the default cap of 20,000 characters per value,
    when record 3 of 5 carries a longer one (a category, a numeric string, blanks),
    then the answer is a 422 that names record 3, the field, its length and the limit."""
    handler = load_function("predict" if route == PREDICT else "preprocess")
    records = [GOOD] * 3 + [{**GOOD, field: value}] + [GOOD]
    status, body = call(handler, "POST", route, body={"records": records})
    assert status == 422, body
    assert_error(body, "unprocessable", "1 of 5 records")
    assert body["error"]["details"] == [{"index": 3, "field": field, "reason": f"value is {len(value)} characters "
                                         "long; the limit is 20000 (MAAS_MAX_FIELD_CHARS)"}]


def test_a_long_value_of_a_few_records_is_named_on_the_scalar_path_too(world) -> None:
    """Given one record (the per-record fast path), when its category is over the cap, then the same 422."""
    handler = load_function("predict")
    status, body = call(handler, "POST", PREDICT, body={"records": [{**GOOD, "colour": "y" * 20_001}]})
    assert status == 422 and body["error"]["details"][0]["field"] == "colour", body


# --- text that normalisation multiplies -----------------------------------------------------------


@pytest.fixture
def text_world(aws_world):
    get_settings.cache_clear()
    text_model.publish_text_model(aws_world.store, aws_world.registry)
    yield aws_world
    get_settings.cache_clear()


def test_text_over_the_cap_is_refused_before_normalisation(text_world) -> None:
    """Given a text model, when a text is 1,000,000 characters of U+FDFA (each becomes 18 under NFKC),
    then a 422 names the record by its raw length: the expansion never runs."""
    handler = load_function("predict")
    status, body = call(handler, "POST", "/v1/models/sentiment/predict",
                        body={"records": ["fine", "\ufdfa" * 1_000_000]})
    assert status == 422, body
    assert body["error"]["details"] == [{"index": 1, "field": "text", "reason": "value is 1000000 characters long; "
                                         "the limit is 20000 (MAAS_MAX_FIELD_CHARS)"}]


def test_text_that_normalisation_expands_past_the_cap_is_refused(text_world) -> None:
    """Given a text model, when a 2,000-character text expands to 36,000 under NFKC,
    then a 422 says the normalised text is over the limit (a short text of the same character is fine)."""
    handler = load_function("predict")
    status, body = call(handler, "POST", "/v1/models/sentiment/predict",
                        body={"records": ["\ufdfa" * 10, {"text": "\ufdfa" * 2_000}]})
    assert status == 422, body
    (detail,) = body["error"]["details"]
    assert detail["index"] == 1 and detail["field"] == "text"
    assert "after Unicode normalisation (NFKC) is 36000 characters long; the limit is 20000" in detail["reason"]


def test_a_request_tokenizes_each_text_once_even_with_capture(text_world, monkeypatch, capsys) -> None:
    """Given capture on, when a text is predicted, then the model and the capture share one tokenization."""
    from maas_core.preprocess import text as txt

    monkeypatch.setenv("MAAS_CAPTURE_RATE", "1")
    handler = load_function("predict")
    call(handler, "POST", "/v1/models/sentiment/predict", body={"records": ["warm up"]})  # load (and smoke-run) first
    calls: list[str] = []
    folded = txt._folded
    monkeypatch.setattr(txt, "_folded", lambda t, lower: calls.append(t) or folded(t, lower))
    capsys.readouterr()
    status, body = call(handler, "POST", "/v1/models/sentiment/predict", body={"records": ["a great day"]})
    assert status == 200, body
    assert '"maas_capture":1' in capsys.readouterr().out, "the prediction was captured (a capture log line)"
    assert calls == ["a great day"]


# --- parser limits --------------------------------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000
JSON_ROUTES = [
    ("predict", "POST", PREDICT, '{"records": [%s]}'),
    ("preprocess", "POST", PREPROCESS, '{"records": [%s]}'),
    ("metrics", "POST", "/v1/models/tiny/feedback", '{"prediction_id": "x", "label": %s}'),
    ("admin", "PUT", "/v1/models/tiny/aliases/prod", '{"version": %s}'),
]


@pytest.mark.parametrize(("function", "method", "path", "template"), JSON_ROUTES)
@pytest.mark.parametrize(("value", "words"), [(DEEP, "nested too deeply"), ("9" * 5_000, "cannot be read")])
def test_json_the_parser_cannot_take_is_a_400_on_every_route(world, function, method, path, template, value,
                                                            words) -> None:
    """Given any route that reads a JSON body, when the body nests 100,000 deep or holds a 5,000-digit
    integer (both beyond Python's json: RecursionError, ValueError), then a 400 says so (was a 500)."""
    status, body, _ = raw_call(load_function(function), method, path, template % value)
    assert status == 400, body
    assert_error(body, "bad_request", words)


def test_an_integer_python_can_read_but_float_cannot_is_a_422(world) -> None:
    """Given a 400-digit integer (readable, but beyond float range), then a 422 names its field."""
    status, body, _ = raw_call(load_function("predict"), "POST", PREDICT,
                               '{"records": [{"x1": %s, "colour": "red"}]}' % ("9" * 400))
    assert status == 422 and body["error"]["details"][0]["field"] == "x1", body


# --- counts before work ---------------------------------------------------------------------------


@pytest.mark.parametrize("records", [100_000, 1_000_000])
def test_too_many_records_are_counted_before_any_is_validated(world, records) -> None:
    """Given the default limit of 1,000 records, when 100,000 or 1,000,000 records that are not objects
    arrive (a small body), then a 413 with a short body (was a 422 listing each, 9.7 MB and 98 MB)."""
    for function, path in (("predict", PREDICT), ("preprocess", PREPROCESS)):
        status, body, resp = raw_call(load_function(function), "POST", path,
                                      '{"records": [' + ",".join(["1"] * records) + "]}")
        assert status == 413, body
        assert_error(body, "payload_too_large", f"{records} records", "limit is 1000")
        assert len(resp["body"]) < 1_000


def test_feedback_items_are_counted_before_any_is_validated(world) -> None:
    """Given the feedback route, when 100,000 feedback items that are not objects arrive, then a short 422."""
    status, body, resp = raw_call(load_function("metrics"), "POST", "/v1/models/tiny/feedback",
                                  '{"feedback": [' + ",".join(["1"] * 100_000) + "]}")
    assert 400 <= status < 500, body
    assert len(resp["body"]) < 10_000, len(resp["body"])


def test_error_details_are_capped_and_counted(world) -> None:
    """Given 1,000 records that are all wrong, then the 422 lists 50 and counts all 1,000."""
    for records in ([1] * 1000, [{"x1": "abc", "colour": "red"}] * 1000):
        status, body = call(load_function("predict"), "POST", PREDICT, body={"records": records})
        assert status == 422, body
        assert len(body["error"]["details"]) == 50 and body["error"]["details_total"] == 1000, body["error"]["message"]


# --- explanations ---------------------------------------------------------------------------------


def test_explanation_work_is_capped_before_it_starts(aws_world) -> None:
    """Given a 200-field model and the default cap of 20,000 occlusions, when 101 records ask for an
    explanation, then a 413 says how many may (100); 100 records are explained."""
    get_settings.cache_clear()
    spec = PreprocessSpec(features=[NumericFeature(name=f"f{i}") for i in range(200)])
    publish_wide(aws_world, "wide", spec)
    handler = load_function("predict")
    record = {f"f{i}": float(i % 7) for i in range(200)}
    status, body = call(handler, "POST", "/v1/models/wide/predict", body={"records": [record] * 101},
                        query={"explain": "true"})
    assert status == 413, body
    assert_error(body, "payload_too_large", "20200 occlusions", "at most 100 records")
    status, body = call(handler, "POST", "/v1/models/wide/predict", body={"records": [record] * 100},
                        query={"explain": "true"})
    assert status == 200 and len(body["predictions"][0]["explanation"]["attributions"]) == 200


# --- answers Lambda could not return ------------------------------------------------------------


def test_an_answer_over_lambdas_6_mb_is_a_413_not_a_502(aws_world) -> None:
    """Given a one-hot feature of 2,000 categories, when 1,000 records are preprocessed (an 8 MB matrix),
    then a 413 says the answer is too large and to send fewer records; 100 records are answered."""
    get_settings.cache_clear()
    spec = PreprocessSpec(features=[CategoricalFeature(name="c", categories=sorted(f"c{i:04d}" for i in range(2000)))])
    publish_wide(aws_world, "onehot", spec)
    handler = load_function("preprocess")
    status, body = call(handler, "POST", "/v1/models/onehot/preprocess", body={"records": [{"c": "c0001"}] * 1000})
    assert status == 413, body["error"] if "error" in body else status
    assert_error(body, "payload_too_large", "send fewer records")
    status, body = call(handler, "POST", "/v1/models/onehot/preprocess", body={"records": [{"c": "c0001"}] * 100})
    assert status == 200 and len(body["features"]) == 100


# --- traceability ---------------------------------------------------------------------------------


def test_every_answer_carries_the_request_id_and_the_logs_do_too(world) -> None:
    """Given API Gateway's request id on the event, then the X-Request-Id header of a 200 and of a 4xx
    carries it, the error body does too, and the function's logger has it as its correlation id (every
    log line of the request prints it as correlation_id)."""
    handler = load_function("predict")
    ok = rest_event("POST", PREDICT, body={"records": [GOOD]})
    bad = rest_event("POST", PREDICT, body={"records": [{"colour": "red"}]})
    for event, status in ((ok, 200), (bad, 422)):
        resp = handler.lambda_handler(event, FakeLambdaContext())
        rid = event["requestContext"]["requestId"]
        assert resp["statusCode"] == status
        assert resp["multiValueHeaders"]["X-Request-Id"] == [rid]
        assert handler.logger.get_correlation_id() == rid
    assert json.loads(resp["body"])["error"]["request_id"] == rid
