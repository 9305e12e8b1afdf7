"""Registering ONNX models our trainer did not make: checked against a declaration, then served like any other."""

from __future__ import annotations

import subprocess
import sys

import boto3
import numpy as np
import onnx
import pytest
from moto import mock_aws
from onnx import TensorProto, helper, numpy_helper

from maas_core import aws
from maas_core.errors import BadRequestError, UnprocessableError
from maas_core.manifest import MODEL_FILE, PREPROCESS_FILE
from maas_core.predictor import Predictor
from maas_core.preprocess import CategoricalFeature, NumericFeature, PreprocessSpec
from maas_core.registration import ModelDeclaration, register_onnx
from maas_core.registry import Registry
from maas_core.settings import Settings
from maas_core.store import BundleStore
from tests.conftest import BUCKET, TABLE, AwsWorld, create_registry_table

W = np.array([[1.0, -1.0, 0.5], [0.0, 2.0, -1.0], [-0.5, 0.0, 1.5], [0.25, 0.25, 0.25]], np.float32)
B = np.array([0.1, -0.2, 0.0], np.float32)
LABELS = ["setosa", "versicolor", "virginica"]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def graph_bytes(nodes: list, inputs: list, outputs: list, initializers: list | None = None) -> bytes:
    graph = helper.make_graph(nodes, "external", inputs, outputs, initializer=initializers or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="hand-written")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def linear_graph(w: np.ndarray = W, b: np.ndarray = B, softmax: bool = True, in_name: str = "input",
                 out_name: str = "scores", elem: int = TensorProto.FLOAT, in_shape: list | None = None,
                 out_shape: list | None = None) -> bytes:
    """input (N, features) @ W + B [-> softmax] -> output."""
    dtype = np.float64 if elem == TensorProto.DOUBLE else np.float32
    last = "logits" if softmax else out_name
    nodes = [helper.make_node("MatMul", [in_name, "W"], ["mm"]), helper.make_node("Add", ["mm", "B"], [last])]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], [out_name], axis=1))
    return graph_bytes(
        nodes,
        [helper.make_tensor_value_info(in_name, elem, in_shape or ["N", w.shape[0]])],
        [helper.make_tensor_value_info(out_name, elem, out_shape or ["N", w.shape[1]])],
        [numpy_helper.from_array(w.astype(dtype), "W"), numpy_helper.from_array(b.astype(dtype), "B")],
    )


def declaration(**overrides) -> ModelDeclaration:
    data = {
        "task": "multiclass", "labels": LABELS, "input_name": "input", "output_name": "scores",
        "features": [{"name": n, "description": f"{n} in cm"} for n in FEATURES],
        "description": "a hand-written iris classifier", "metrics": {"accuracy": 0.9},
    } | overrides
    return ModelDeclaration.model_validate(data)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def bucket_keys(world) -> list[str]:
    return [o["Key"] for o in world.store.s3.list_objects_v2(Bucket=world.bucket).get("Contents", [])]


def assert_nothing_written(world) -> None:
    assert world.registry.list_models() == []
    assert bucket_keys(world) == []


def predictor(world) -> Predictor:
    return Predictor(Settings(model_bucket=world.bucket, registry_table=world.table), world.registry, world.store)


# --- the happy paths ------------------------------------------------------------------------------


def test_hand_written_multiclass_model_registers_and_predicts_like_numpy(aws_world) -> None:
    manifest = register_onnx(aws_world.store, aws_world.registry, "iris-ext", linear_graph(), declaration(),
                             promote="prod")

    assert (manifest.name, manifest.version, manifest.task, manifest.labels) == ("iris-ext", "1", "multiclass", LABELS)
    assert manifest.frameworks["source"] == "external" and manifest.frameworks["onnxruntime"]
    assert manifest.model_input.model_dump() == {"name": "input", "dtype": "float32", "shape": [None, 4]}
    assert manifest.model_output.model_dump() == {"name": "scores", "dtype": "float32", "shape": [None, 3]}
    assert [(f.name, f.type, f.required, f.description) for f in manifest.input_schema] == [
        (n, "number", True, f"{n} in cm") for n in FEATURES]
    assert manifest.metrics == {"accuracy": 0.9}
    assert set(manifest.files) == {MODEL_FILE, PREPROCESS_FILE}
    assert aws_world.registry.resolve_alias("iris-ext", "prod").version == "1"
    stored = aws_world.store.load("iris-ext", "1")  # hashes verified
    spec = PreprocessSpec.from_json(stored.files[PREPROCESS_FILE])
    assert all(f.scaler == "none" and f.center == 0 and f.scale == 1 and f.fill is None for f in spec.features)

    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])
    records = [dict(zip(FEATURES, r, strict=True)) for r in rows.tolist()]
    response = predictor(aws_world).predict("iris-ext", records).response

    expected = softmax(rows.astype(np.float32) @ W + B)
    assert response.version == "1" and response.alias == "prod"
    for pred, probs in zip(response.predictions, expected, strict=True):
        assert pred.label == LABELS[int(probs.argmax())]
        assert [pred.probabilities[label] for label in LABELS] == pytest.approx(probs.tolist(), abs=1e-5)


def test_regression_model_with_one_output_column_and_a_double_input(aws_world) -> None:
    w, b = np.array([[2.0], [-1.0]]), np.array([0.5])
    onnx_model = linear_graph(w, b, softmax=False, in_name="x", out_name="y", elem=TensorProto.DOUBLE)
    decl = ModelDeclaration(task="regression", input_name="x", output_name="y",
                            features=[{"name": "a"}, {"name": "b", "required": False}])
    manifest = register_onnx(aws_world.store, aws_world.registry, "reg", onnx_model, decl, promote="prod")

    assert manifest.model_input.dtype == "float64" and manifest.model_output.shape == [None, 1]
    assert [f.required for f in manifest.input_schema] == [True, False]
    response = predictor(aws_world).predict("reg", [{"a": 1.5, "b": 2.0}, {"a": -1.0}]).response
    assert [p.value for p in response.predictions] == pytest.approx([1.5, -1.5])  # missing optional b -> 0


def test_names_default_to_the_only_input_and_output_and_a_given_spec_is_published(aws_world) -> None:
    spec = PreprocessSpec(features=[NumericFeature(name=n, center=1.0, scale=2.0) for n in FEATURES])
    decl = ModelDeclaration(task="multiclass", labels=LABELS)  # features come from the spec
    manifest = register_onnx(aws_world.store, aws_world.registry, "iris-ext", linear_graph(), decl, spec=spec)

    assert manifest.model_input.name == "input" and [f.name for f in manifest.input_schema] == FEATURES
    response = predictor(aws_world).predict("iris-ext", [dict.fromkeys(FEATURES, 3.0)], version="1").response
    expected = softmax(np.full((1, 4), 1.0, np.float32) @ W + B)[0]
    probabilities = response.predictions[0].probabilities
    assert [probabilities[label] for label in LABELS] == pytest.approx(expected.tolist(), abs=1e-5)


def test_a_binary_model_may_emit_one_probability_column(aws_world) -> None:
    w, b = np.array([[1.0], [1.0]], np.float32), np.array([0.0], np.float32)
    nodes = [helper.make_node("MatMul", ["input", "W"], ["mm"]), helper.make_node("Add", ["mm", "B"], ["z"]),
             helper.make_node("Sigmoid", ["z"], ["p"])]
    model = graph_bytes(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 2])],
                        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [None, 1])],
                        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    decl = ModelDeclaration(task="binary", labels=["no", "yes"], features=[{"name": "u"}, {"name": "v"}])
    register_onnx(aws_world.store, aws_world.registry, "bin", model, decl)
    pred = predictor(aws_world).predict("bin", [{"u": 2.0, "v": 1.0}], version="1").response.predictions[0]
    assert pred.label == "yes" and pred.probabilities["yes"] == pytest.approx(1 / (1 + np.exp(-3.0)), abs=1e-6)


def test_registration_module_does_not_import_the_onnx_package() -> None:
    code = "import sys, maas_core.registration; assert 'onnx' not in sys.modules, 'onnx was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- each bad input is a 422 and writes nothing -----------------------------------------------------


def two_input_graph() -> bytes:
    return graph_bytes([helper.make_node("Add", ["input", "other"], ["scores"])],
                       [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3]),
                        helper.make_tensor_value_info("other", TensorProto.FLOAT, ["N", 3])],
                       [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3])])


def identity_graph(elem: int, shape: list) -> bytes:
    return graph_bytes([helper.make_node("Identity", ["input"], ["scores"])],
                       [helper.make_tensor_value_info("input", elem, shape)],
                       [helper.make_tensor_value_info("scores", elem, shape)])


def wrong_width_at_runtime() -> bytes:
    """Emits 4 columns for 3 labels, hidden from static shape inference by a Reshape to its own Shape."""
    nodes = [helper.make_node("MatMul", ["input", "W"], ["mm"]), helper.make_node("Shape", ["mm"], ["s"]),
             helper.make_node("Reshape", ["mm", "s"], ["scores"])]
    return graph_bytes(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
                       [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", "K"])],
                       [numpy_helper.from_array(np.ones((4, 4), np.float32), "W")])


def fixed_batch_reshape() -> bytes:
    """Loads and runs on one row, but reshapes its output to (1, 3): a batch of two rows fails."""
    shape = numpy_helper.from_array(np.array([1, 3], np.int64), "shape")
    nodes = [helper.make_node("MatMul", ["input", "W"], ["mm"]),
             helper.make_node("Reshape", ["mm", "shape"], ["scores"])]
    return graph_bytes(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
                       [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3])],
                       [numpy_helper.from_array(W, "W"), shape])


def zipmap_graph() -> bytes:
    """What skl2onnx exports for a classifier by default: probabilities as a sequence of maps (ZipMap)."""
    seq = helper.make_sequence_type_proto(helper.make_map_type_proto(
        TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, [])))
    nodes = [helper.make_node("MatMul", ["input", "W"], ["mm"]), helper.make_node("Softmax", ["mm"], ["p"], axis=1),
             helper.make_node("ZipMap", ["p"], ["scores"], domain="ai.onnx.ml", classlabels_int64s=[0, 1, 2])]
    graph = helper.make_graph(nodes, "zipmap", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 4])],
                              [helper.make_value_info("scores", seq)], initializer=[numpy_helper.from_array(W, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 8
    return model.SerializeToString()


BAD_CASES = {
    "garbage bytes": (lambda: b"this is not a protobuf", {}, "not a valid ONNX model: "),
    "empty file": (lambda: b"", {}, "not a valid ONNX model: the file is empty"),
    "unknown input name": (linear_graph, {"input_name": "features"},
                           "declared input 'features' is not a graph input; the graph's inputs are 'input'"),
    "two matrix inputs": (two_input_graph, {"input_name": None, "features": [{"name": "a", "input": "input"},
                                                                         {"name": "b", "input": "other"}]},
                          "input 'input' (field 'a') has shape (?, 3); an input fed by one field must be (rows, 1)"),
    "rank 3 input": (lambda: identity_graph(TensorProto.FLOAT, ["N", 4, 1]), {},
                     "input 'input' must be a rank-2 matrix (rows, features), the graph has shape (?, 4, 1)"),
    "int64 matrix input": (lambda: identity_graph(TensorProto.INT64, ["N", 4]),
                           {"input_name": None, "features": [{"name": "a", "input": "input"}]},
                           "input 'input' (field 'a') has shape (?, 4); an input fed by one field must be (rows, 1)"),
    "bool input": (lambda: identity_graph(TensorProto.BOOL, ["N", 1]),
                   {"input_name": None, "features": [{"name": "a", "input": "input"}]},
                   "input 'input' (field 'a') has element type tensor(bool); only tensor(float), "),
    "fixed batch of one": (lambda: linear_graph(in_shape=[1, 4]), {},
                           "input 'input' fixes the number of rows to 1"),
    "feature count": (linear_graph, {"features": [{"name": "a"}, {"name": "b"}]},
                      "2 features are declared but input 'input' takes 4 columns (shape (?, 4))"),
    "unknown output name": (linear_graph, {"output_name": "probabilities"},
                            "declared output 'probabilities' is not a graph output; the graph's outputs are 'scores'"),
    "zipmap output": (zipmap_graph, {}, "output 'scores' has type seq(map(int64,tensor(float))); only tensor(float) "
                                        "and tensor(double) outputs are supported (for skl2onnx classifiers, convert "
                                        "with options={id(model): {'zipmap': False}}"),
    "label count": (linear_graph, {"labels": ["a", "b", "c", "d"]},
                    "4 labels are declared but output 'scores' has shape (?, 3) (3 per row); expected 4 columns"),
    "binary with three columns": (linear_graph, {"task": "binary", "labels": ["no", "yes"]},
                                  "2 labels are declared but output 'scores' has shape (?, 3) (3 per row)"),
    "regression with three columns": (linear_graph, {"task": "regression", "labels": []},
                                      "a regression model must give one value per row"),
    "runtime output shape": (wrong_width_at_runtime, {},
                             "3 labels are declared but a test run on 1 row gave output 'scores' shape (1, 4)"),
    "runtime failure": (lambda: linear_graph(in_shape=["N", "F"]), {"features": [{"name": n} for n in "abcde"]},
                        "the model failed a test run on one row of 5 zeros: "),
    "fixed batch inside the graph": (fixed_batch_reshape, {}, "the model failed a test run on 2 rows of 4 zeros"),
}


@pytest.fixture(scope="class")
def empty_world():
    """One moto account for every refused model: each case asserts that it is still empty afterwards."""
    with pytest.MonkeyPatch.context() as mp, mock_aws():
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            mp.setenv(key, "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        aws.reset_clients()
        s3, ddb = boto3.client("s3"), boto3.client("dynamodb")  # kept for the class: no client per case
        s3.create_bucket(Bucket=BUCKET)
        create_registry_table(TABLE)
        yield AwsWorld(BUCKET, TABLE, BundleStore(BUCKET, s3=s3), Registry(TABLE, dynamodb=ddb))


class TestRefused:
    @pytest.mark.parametrize("case", BAD_CASES, ids=list(BAD_CASES))
    def test_bad_models_are_refused_with_422_and_nothing_is_written(self, empty_world, case: str) -> None:
        make, overrides, message = BAD_CASES[case]
        with pytest.raises(UnprocessableError) as info:
            register_onnx(empty_world.store, empty_world.registry, "ext", make(), declaration(**overrides),
                          promote="prod")
        assert info.value.status == 422
        assert message in info.value.message
        assert info.value.details and info.value.details[0]["field"]
        assert_nothing_written(empty_world)


def test_the_refused_model_burns_no_version_number(aws_world) -> None:
    with pytest.raises(UnprocessableError):
        register_onnx(aws_world.store, aws_world.registry, "ext", b"junk", declaration())
    assert register_onnx(aws_world.store, aws_world.registry, "ext", linear_graph(), declaration()).version == "1"


def test_declaration_problems_are_422_with_every_field_named() -> None:
    with pytest.raises(UnprocessableError) as info:
        ModelDeclaration.parse({"task": "multiclass", "labels": ["a"], "features": [{"name": "x", "type": "boolean"}]},
                               source="declaration file d.json")
    assert info.value.message.startswith("declaration file d.json is invalid: ")
    assert "features.0.type" in info.value.message
    with pytest.raises(UnprocessableError, match="needs at least 2 labels"):
        ModelDeclaration.parse({"task": "multiclass", "labels": ["a"]})
    with pytest.raises(UnprocessableError, match="task: Field required"):
        ModelDeclaration.parse({"labels": ["a", "b"]})
    with pytest.raises(UnprocessableError, match="regression model has no labels"):
        ModelDeclaration.parse({"task": "regression", "labels": ["a"]})
    with pytest.raises(UnprocessableError, match="repeated: x"):
        ModelDeclaration.parse({"task": "regression", "features": [{"name": "x"}, {"name": "x"}]})


@pytest.mark.parametrize(("feature", "reason"), [
    (NumericFeature(name="petal_width", scale=0.0), "feature 'petal_width': its scale 0.0 is not positive"),
    (NumericFeature(name="petal_width", center=float("nan")), "feature 'petal_width': its fitted center is not finite"),
    (NumericFeature(name="petal_width", clip=(2.0, 1.0)), "feature 'petal_width': its clip bounds .* are reversed"),
])
def test_a_spec_serving_would_refuse_is_refused_at_registration(aws_world, feature, reason) -> None:
    """Given a preprocessing spec whose fitted values every load refuses (maas_core.load_checks.check_spec),
    When it is registered with a graph that fits it,
    Then the registration is a 422 naming the feature and the reason, and nothing is written."""
    spec = PreprocessSpec(features=[NumericFeature(name=n) for n in FEATURES[:3]] + [feature])
    with pytest.raises(UnprocessableError, match=f"the preprocessing spec cannot be served: {reason}") as raised:
        register_onnx(aws_world.store, aws_world.registry, "ext", linear_graph(), declaration(features=[]), spec=spec)
    assert raised.value.details == [{"field": "spec"}]
    assert_nothing_written(aws_world)


def test_spec_and_declared_features_must_agree_and_names_are_checked_first(aws_world) -> None:
    spec = PreprocessSpec(features=[NumericFeature(name=n) for n in ["a", "b", "c", "d"]])
    with pytest.raises(UnprocessableError, match="do not match the preprocessing spec.*sepal_length: declared but not"):
        register_onnx(aws_world.store, aws_world.registry, "ext", linear_graph(), declaration(), spec=spec)
    onehot = PreprocessSpec(features=[NumericFeature(name="a"), CategoricalFeature(name="c", categories=["x", "y"])])
    with pytest.raises(UnprocessableError, match="the preprocessing spec produces 3 columns but input 'input' takes 4"):
        register_onnx(aws_world.store, aws_world.registry, "ext", linear_graph(), declaration(features=[]), spec=onehot)
    with pytest.raises(UnprocessableError, match="declare the model's input features"):
        register_onnx(aws_world.store, aws_world.registry, "ext", linear_graph(), declaration(features=[]))
    with pytest.raises(BadRequestError, match="invalid model"):
        register_onnx(aws_world.store, aws_world.registry, "bad name!", linear_graph(), declaration())
    with pytest.raises(BadRequestError, match="invalid alias"):
        register_onnx(aws_world.store, aws_world.registry, "ext", linear_graph(), declaration(), promote="no way")
    assert_nothing_written(aws_world)
