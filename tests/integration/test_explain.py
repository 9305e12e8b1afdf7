"""Explanations (?explain=true): occlusion against the training baseline, on hand-written ONNX models
whose important fields are known (maas_local/testing/tiny_model.py style, built with onnx.helper)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from maas_core.errors import UnprocessableError
from maas_core.explain import baseline_values, explain_predictions
from maas_core.manifest import Manifest, Task, TensorInfo
from maas_core.model_cache import LoadedModel
from maas_core.predictor import Predictor
from maas_core.preprocess import BooleanFeature, CategoricalFeature, NumericFeature, PreprocessSpec
from maas_core.registry import Registry
from maas_core.settings import Settings, get_settings
from maas_core.store import BundleStore
from maas_local.testing import text_model
from tests.lambda_events import assert_error, call, load_function

# x1 matters a lot, x2 not at all, colour and flag a little. Encoded columns:
# x1, x2, colour=blue, colour=green, colour=red, flag
SPEC = PreprocessSpec(features=[
    NumericFeature(name="x1", fill=0.0, center=0.5, scale=2.0),
    NumericFeature(name="x2", required=False, fill=0.0, center=0.0, scale=1.0),
    CategoricalFeature(name="colour", fill="red", categories=["blue", "green", "red"]),
    BooleanFeature(name="flag", required=False, fill=False),
])
FIELDS = ["x1", "x2", "colour", "flag"]
BASELINE = {"rows": 100, "bins": 10, "features": {
    "x1": {"kind": "numeric", "count": 100, "missing": 0, "mean": 1.0, "std": 2.0},
    "x2": {"kind": "numeric", "count": 90, "missing": 10, "mean": -3.0, "std": 1.0},
    "colour": {"kind": "categorical", "count": 100, "missing": 0,
               "frequencies": {"blue": 0.2, "green": 0.5, "red": 0.3}},
    "flag": {"kind": "boolean", "count": 100, "missing": 0, "frequencies": {"false": 0.4, "true": 0.6}},
}}
LOGISTIC_W = np.array([[4.0], [0.0], [0.3], [-0.2], [0.0], [0.5]], np.float32)  # one sigmoid column: P(yes)
LINEAR_W = np.array([[3.0], [-2.0], [1.0], [5.0], [-4.0], [7.0]], np.float32)
RECORDS = [
    {"x1": 3.0, "x2": 5.0, "colour": "blue", "flag": False},
    {"x1": -2.5, "x2": -1.0, "colour": "red", "flag": True},
    {"x1": 0.2, "colour": "green"},  # x2, flag missing: filled
]


def linear_onnx(weights: np.ndarray, bias: float, sigmoid: bool) -> bytes:
    nodes = [helper.make_node("MatMul", ["features", "W"], ["z0"]),
             helper.make_node("Add", ["z0", "B"], ["z" if sigmoid else "out"])]
    if sigmoid:
        nodes.append(helper.make_node("Sigmoid", ["z"], ["out"]))
    graph = helper.make_graph(
        nodes, "explain_test",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, len(weights)])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 1])],
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(np.array([bias], np.float32), "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def manifest(name: str, task: Task, labels: list[str], baseline: dict[str, Any] | None = BASELINE,
             spec: PreprocessSpec = SPEC) -> Manifest:
    return Manifest(name=name, version="1", task=task, labels=labels, input_schema=spec.input_schema(),
                    model_input=TensorInfo(name="features", dtype="float32", shape=[None, 6]),
                    model_output=TensorInfo(name="out", dtype="float32", shape=[None, 1]),
                    baseline=baseline or {})


class CountingSession:
    """Wraps an onnxruntime session; records the batch size of every run."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        self.batches: list[int] = []

    def run(self, output_names: Any, feeds: dict[str, np.ndarray]) -> Any:
        self.batches.append(len(next(iter(feeds.values()))))
        return self.session.run(output_names, feeds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


def loaded(onnx_bytes: bytes, m: Manifest, spec: PreprocessSpec = SPEC) -> LoadedModel:
    return LoadedModel(manifest=m, spec=spec, session=CountingSession(ort.InferenceSession(onnx_bytes)))  # type: ignore[arg-type]


@pytest.fixture
def logistic() -> LoadedModel:
    return loaded(linear_onnx(LOGISTIC_W, -0.5, sigmoid=True), manifest("logit", "binary", ["no", "yes"]))


@pytest.fixture
def linear() -> LoadedModel:
    return loaded(linear_onnx(LINEAR_W, 1.5, sigmoid=False), manifest("lin", "regression", []))


# --- baseline values ---------------------------------------------------------------------------------


def test_baseline_values_come_from_the_training_statistics() -> None:
    assert baseline_values(SPEC, BASELINE) == {"x1": 1.0, "x2": -3.0, "colour": "green", "flag": True}


def test_without_training_statistics_the_spec_fills_stand_in() -> None:
    """An older bundle without a baseline: numeric fill (else scaler center), categorical / boolean fill."""
    spec = PreprocessSpec(features=[NumericFeature(name="a", fill=None, center=7.0, scale=2.0), *SPEC.features[1:]])
    assert baseline_values(spec, {}) == {"a": 7.0, "x2": 0.0, "colour": "red", "flag": False}


# --- the attributions ---------------------------------------------------------------------------------


def test_the_important_field_has_the_largest_attribution_and_a_zero_weight_field_none(logistic) -> None:
    outputs, explanations = explain_predictions(logistic, RECORDS)
    for e in explanations:
        assert (e.method, e.baseline) == ("occlusion", "training")
        assert list(e.attributions) == FIELDS
        a = e.attributions
        assert abs(a["x1"]) == max(abs(v) for v in a.values()), a
        assert abs(a["x2"]) < 1e-6, a  # weight 0: moving x2 to its baseline changes nothing
    # record 0: x1 = 3 (above the mean 1) made "yes" likely; record 1: x1 = -2.5 made "no" likely
    assert [e.target for e in explanations[:2]] == ["yes", "no"]
    assert explanations[0].attributions["x1"] > 0.1 and explanations[1].attributions["x1"] > 0.1
    # record 2: colour is already the baseline (green), so occluding it changes nothing
    assert explanations[2].attributions["colour"] == 0.0


def test_attributions_are_differences_of_the_predicted_class_probability(logistic) -> None:
    """attribution_f = P(label | x) - P(label | x with f at baseline), computed here in numpy."""
    outputs, explanations = explain_predictions(logistic, RECORDS)
    base = baseline_values(SPEC, BASELINE)

    def p_yes(records: list[dict[str, Any]]) -> np.ndarray:
        z = SPEC.transform(records).astype(np.float64) @ LOGISTIC_W.astype(np.float64) - 0.5
        return 1.0 / (1.0 + np.exp(-z[:, 0]))

    np.testing.assert_allclose(outputs[:, 0], p_yes(RECORDS), atol=1e-6)  # the records' own outputs
    for record, e in zip(RECORDS, explanations, strict=True):
        sign = 1.0 if e.target == "yes" else -1.0  # P(no) = 1 - P(yes)
        for field in FIELDS:
            occluded = {**record, field: base[field]}
            expected = sign * (p_yes([record])[0] - p_yes([occluded])[0])
            assert e.attributions[field] == pytest.approx(expected, abs=2e-6), field
        expected_out = p_yes([record])[0] if e.target == "yes" else 1.0 - p_yes([record])[0]
        assert e.output == pytest.approx(expected_out, abs=2e-6)
        expected_base = p_yes([base])[0] if e.target == "yes" else 1.0 - p_yes([base])[0]
        assert e.baseline_output == pytest.approx(expected_base, abs=2e-6)


def test_a_linear_model_attributions_sum_to_output_minus_baseline_output(linear) -> None:
    """Linear in its inputs, each field feeding its own columns: the one-at-a-time effects add up exactly."""
    _, explanations = explain_predictions(linear, RECORDS)
    for e in explanations:
        assert e.target is None
        assert sum(e.attributions.values()) == pytest.approx(e.output - e.baseline_output, abs=1e-4)
    # each attribution is the field's weight times its encoded distance from the baseline
    e0 = explanations[0]
    assert e0.attributions["x1"] == pytest.approx(3.0 * (3.0 - 1.0) / 2.0, abs=1e-5)
    assert e0.attributions["x2"] == pytest.approx(-2.0 * (5.0 - -3.0), abs=1e-5)
    assert e0.attributions["colour"] == pytest.approx(1.0 - 5.0, abs=1e-5)  # blue instead of green
    assert e0.attributions["flag"] == pytest.approx(-7.0, abs=1e-5)  # false instead of true


def test_a_non_linear_model_reports_the_gap_the_attributions_leave(logistic) -> None:
    """The sigmoid saturates: one-at-a-time effects do not add up, and output / baseline_output show by how much."""
    _, explanations = explain_predictions(logistic, RECORDS)
    gaps = [e.output - e.baseline_output - sum(e.attributions.values()) for e in explanations]
    assert max(abs(g) for g in gaps) > 1e-3, gaps


def test_every_occlusion_of_every_record_is_one_onnxruntime_call(logistic) -> None:
    explain_predictions(logistic, RECORDS)
    assert logistic.session.batches == [len(RECORDS) * (len(FIELDS) + 1) + 1]


def test_a_text_model_cannot_be_explained_yet() -> None:
    m = text_model
    model = LoadedModel(
        manifest=Manifest(name="sentiment", version="1", task="binary", labels=m.LABELS,
                          input_schema=m.SPEC.input_schema(),
                          model_input=TensorInfo(name="tokens", dtype=m.TEXT.dtype, shape=[None, m.MAX_LENGTH]),
                          model_output=TensorInfo(name="probabilities", dtype="float32", shape=[None, 2])),
        spec=m.SPEC, session=ort.InferenceSession(m.onnx_bytes()))
    with pytest.raises(UnprocessableError, match="not supported for text models"):
        explain_predictions(model, ["I love it"])


# --- through the predictor and the predict function ----------------------------------------------------


def publish(store: BundleStore, registry: Registry, m: Manifest, onnx_bytes: bytes) -> None:
    files = {"model.onnx": onnx_bytes, "preprocess.json": SPEC.to_json().encode()}
    registry.register(store.publish(m, files))
    registry.set_alias(m.name, "prod", m.version)


def test_the_predictor_predicts_and_explains_in_one_call(aws_world) -> None:
    publish(aws_world.store, aws_world.registry, manifest("logit", "binary", ["no", "yes"]),
            linear_onnx(LOGISTIC_W, -0.5, sigmoid=True))
    predictor = Predictor(Settings(), aws_world.registry, aws_world.store)
    plain = predictor.predict("logit", RECORDS).response
    model = predictor.load("logit", "1")
    model.session = CountingSession(model.session)  # type: ignore[assignment]
    explained = predictor.predict("logit", RECORDS, explain=True).response
    assert model.session.batches == [len(RECORDS) * (len(FIELDS) + 1) + 1]
    for p, q in zip(plain.predictions, explained.predictions, strict=True):
        assert p.explanation is None and q.explanation is not None
        assert (q.label, q.probabilities) == (p.label, p.probabilities)
        assert q.explanation.target == q.label
        assert q.explanation.output == pytest.approx(q.probabilities[q.label], abs=1e-5)


@pytest.fixture
def handler(aws_world):
    get_settings.cache_clear()
    publish(aws_world.store, aws_world.registry, manifest("logit", "binary", ["no", "yes"]),
            linear_onnx(LOGISTIC_W, -0.5, sigmoid=True))
    text_model.publish_text_model(aws_world.store, aws_world.registry)
    yield load_function("predict")
    get_settings.cache_clear()


def test_explain_true_adds_an_explanation_to_each_prediction(handler) -> None:
    status, body = call(handler, "POST", "/v1/models/logit/predict", body={"records": RECORDS},
                        query={"explain": "true"})
    assert status == 200, body
    for p in body["predictions"]:
        e = p["explanation"]
        assert set(e) == {"method", "baseline", "target", "output", "baseline_output", "attributions"}
        assert (e["method"], e["baseline"], e["target"]) == ("occlusion", "training", p["label"])
        assert list(e["attributions"]) == FIELDS
        assert abs(e["attributions"]["x2"]) < 1e-6
    status, body = call(handler, "POST", "/v1/models/logit/predict", body={"records": RECORDS},
                        query={"explain": "false"})
    assert status == 200 and all("explanation" not in p for p in body["predictions"])


def test_explain_must_be_a_boolean(handler) -> None:
    status, body = call(handler, "POST", "/v1/models/logit/predict", body={"records": RECORDS},
                        query={"explain": "nonsense"})
    assert status == 422
    assert_error(body, "invalid_request", "explain")


def test_explain_on_a_text_model_is_a_clear_422(handler) -> None:
    status, body = call(handler, "POST", "/v1/models/sentiment/predict", body={"records": ["I love it"]},
                        query={"explain": "true"})
    assert status == 422
    assert_error(body, "unprocessable", "not supported for text models", "explain")
    status, body = call(handler, "POST", "/v1/models/sentiment/predict", body={"records": ["I love it"]})
    assert status == 200  # without explain it predicts as ever


def test_invalid_records_are_named_by_their_own_index_when_explaining(handler) -> None:
    status, body = call(handler, "POST", "/v1/models/logit/predict", query={"explain": "true"},
                        body={"records": [RECORDS[0], {"x1": "ten", "colour": "red"}]})
    assert status == 422
    assert_error(body, "unprocessable", '"index": 1', "x1", "expected a number")


def test_the_openapi_document_describes_explain(handler) -> None:
    _, doc = call(handler, "GET", "/v1/openapi.json")
    params = {p["name"]: p for p in doc["paths"]["/v1/models/{model}/predict"]["post"]["parameters"]}
    assert "explain" in params and "occlusion" in params["explain"]["description"]
    assert "Explanation" in doc["components"]["schemas"]
