"""Registering what scikit-learn users export: an skl2onnx pipeline with one input per column (strings, int64,
floats) and a LightGBM model through onnxmltools; both served over the API like the libraries predict.

Each model is trained on a few hundred synthetic rows (fast), registered with `maas register`, then asked to
predict and explain through the predict function's handler; probabilities must equal the library's own
predict_proba to 1e-5."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from maas_core.errors import UnprocessableError
from maas_core.registration import ModelDeclaration, register_onnx
from maas_core.settings import get_settings
from tests.integration.test_cli import Cli
from tests.integration.test_registration import assert_nothing_written
from tests.lambda_events import call, load_function

pytest.importorskip("skl2onnx")

CITIES = ["lisbon", "oslo", "quito"]
LABELS = ["bronze", "gold", "silver"]  # sorted, as scikit-learn orders classes_


def customers(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    age = rng.uniform(18, 80, n)
    visits = rng.integers(0, 30, n)
    city = rng.choice(CITIES, n)
    score = 0.05 * (age - 50) + 0.15 * (visits - 15) + np.where(city == "oslo", 1.5, 0.0) + rng.normal(0, 0.7, n)
    tier = np.where(score > 1.0, "gold", np.where(score > -1.0, "silver", "bronze"))
    return {"age": age, "visits": visits, "city": city, "tier": tier}


def table(records: list[dict[str, Any]]) -> np.ndarray:
    """Records as scikit-learn sees them: an object array (age as the float32 the graph takes, city stripped)."""
    return np.array([[float(np.float32(r["age"])), r["visits"], r["city"].strip()] for r in records], dtype=object)


@pytest.fixture(scope="module")
def pipeline() -> tuple[Any, bytes]:
    """Given a ColumnTransformer (StandardScaler on age and visits, OneHotEncoder on city) + LogisticRegression,
    exported by skl2onnx with one input per column: age float, visits int64, city string."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    data = customers(300)
    model = Pipeline([  # columns by position: skl2onnx feeds column j from the j-th input
        ("prep", ColumnTransformer([("num", StandardScaler(), [0, 1]),
                                    ("cat", OneHotEncoder(handle_unknown="ignore"), [2])])),
        ("clf", LogisticRegression(max_iter=500)),
    ]).fit(table([{"age": a, "visits": v, "city": c} for a, v, c in
                  zip(data["age"], data["visits"], data["city"], strict=True)]), data["tier"])
    assert list(model.classes_) == LABELS
    onnx_model = to_onnx(model, initial_types=[("age", FloatTensorType([None, 1])),
                                               ("visits", Int64TensorType([None, 1])),
                                               ("city", StringTensorType([None, 1]))],
                         options={id(model): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    return model, onnx_model.SerializeToString()


@pytest.fixture(scope="module")
def booster() -> tuple[Any, bytes]:
    """Given a LightGBM binary classifier on four numeric columns, exported by onnxmltools (one float matrix)."""
    lightgbm = pytest.importorskip("lightgbm")
    onnxmltools = pytest.importorskip("onnxmltools")
    from onnxmltools.convert.common.data_types import FloatTensorType

    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] ** 2 + rng.normal(0, 0.3, 400) > 0).astype(int)
    model = lightgbm.LGBMClassifier(n_estimators=30, num_leaves=8, verbose=-1).fit(x, y)
    onnx_model = onnxmltools.convert_lightgbm(model, initial_types=[("input", FloatTensorType([None, 4]))],
                                              zipmap=False, target_opset=15)
    return model, onnx_model.SerializeToString()


@pytest.fixture
def handler(aws_world):
    """Given the predict function with a fresh process state, pointed at the moto world."""
    get_settings.cache_clear()
    yield load_function("predict")
    get_settings.cache_clear()


def register(aws_world, capsys, tmp_path: Path, name: str, onnx_bytes: bytes, declaration: dict[str, Any],
             *args: str) -> None:
    (tmp_path / f"{name}.onnx").write_bytes(onnx_bytes)
    (tmp_path / f"{name}.json").write_text(json.dumps(declaration))
    code, _, err = Cli(aws_world, capsys)("register", name, "--onnx", str(tmp_path / f"{name}.onnx"),
                                          "--declaration", str(tmp_path / f"{name}.json"), "--promote", "prod", *args)
    assert code == 0, err


def predict(handler, name: str, records: list[dict[str, Any]], explain: bool = False) -> list[dict[str, Any]]:
    status, body = call(handler, "POST", f"/v1/models/{name}/predict", body={"records": records},
                        query={"explain": "true"} if explain else None)
    assert status == 200, body
    return body["predictions"]


PIPELINE_DECLARATION = {
    "task": "multiclass", "labels": LABELS, "output_name": "probabilities",
    "features": [{"name": "age"}, {"name": "visits"}, {"name": "city", "type": "string"}],
}


def test_an_skl2onnx_pipeline_with_string_and_int64_inputs_serves_like_scikit_learn(
        pipeline, handler, aws_world, capsys, tmp_path: Path) -> None:
    """Given the skl2onnx pipeline registered with its three fields (each feeding the input of its name) and a
    background CSV,
    When records are predicted and explained over the API,
    Then the probabilities are scikit-learn's predict_proba to 1e-5, the manifest names the three inputs with
    their types, and the explanation occludes with the background's statistics (the top city, mean age)."""
    model, onnx_bytes = pipeline
    background = customers(120, seed=5)
    csv = tmp_path / "background.csv"
    csv.write_text("age,visits,city\n" + "".join(
        f"{a},{v},{c}\n" for a, v, c in zip(background["age"], background["visits"], background["city"], strict=True)))
    register(aws_world, capsys, tmp_path, "tiers", onnx_bytes, PIPELINE_DECLARATION, "--background", str(csv))

    manifest = aws_world.store.load("tiers", "1").manifest
    assert [(t.name, t.dtype, t.shape) for t in manifest.model_inputs] == [
        ("age", "float32", [None, 1]), ("visits", "int64", [None, 1]), ("city", "string", [None, 1])]
    assert [(f.name, f.type) for f in manifest.input_schema] == [("age", "number"), ("visits", "number"),
                                                                ("city", "string")]
    data = customers(40, seed=9)
    records = [{"age": float(a), "visits": int(v), "city": str(c)}
               for a, v, c in zip(data["age"], data["visits"], data["city"], strict=True)]
    records[0]["city"] = "  oslo "  # stripped, as every string field is
    records[1]["city"] = "paris"  # unseen: the encoder's handle_unknown="ignore" decides, as in scikit-learn

    predictions = predict(handler, "tiers", records)
    frame = table(records)
    expected = model.predict_proba(frame)
    got = np.array([[p["probabilities"][label] for label in LABELS] for p in predictions])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert [p["label"] for p in predictions] == list(model.predict(frame))

    explained = predict(handler, "tiers", records[:5], explain=True)
    assert [p["probabilities"] for p in explained] == [p["probabilities"] for p in predictions[:5]]
    top_city = max(CITIES, key=lambda c: (list(background["city"]).count(c), c))
    for record, p in zip(records[:5], explained, strict=True):
        explanation = p["explanation"]
        assert explanation["baseline"] == "background" and set(explanation["attributions"]) == {"age", "visits",
                                                                                                  "city"}
        occluded = {**record, "city": top_city}
        target = LABELS.index(p["label"])
        probs = model.predict_proba(table([record, occluded]))[:, target]
        assert explanation["attributions"]["city"] == pytest.approx(probs[0] - probs[1], abs=1e-5)


def test_string_fields_are_validated_like_any_field(pipeline, handler, aws_world, capsys, tmp_path: Path) -> None:
    """Given the registered pipeline, When a record sends a number for the string field or omits it,
    Then the answer is a 422 naming the record and the field, before the model runs."""
    register(aws_world, capsys, tmp_path, "tiers", pipeline[1], PIPELINE_DECLARATION)
    status, body = call(handler, "POST", "/v1/models/tiers/predict",
                        body={"records": [{"age": 30, "visits": 2, "city": 7}, {"age": 30, "visits": 2}]})
    assert status == 422
    assert [(d["index"], d["field"]) for d in body["error"]["details"]] == [(0, "city"), (1, "city")]
    assert "expected a string" in body["error"]["details"][0]["reason"]


def test_a_lightgbm_model_from_onnxmltools_serves_like_lightgbm(booster, handler, aws_world, capsys,
                                                                tmp_path: Path) -> None:
    """Given the onnxmltools LightGBM classifier registered with a declared baseline record,
    When records are predicted and explained over the API,
    Then the probabilities are LightGBM's predict_proba to 1e-5 and the explanation says `declared`."""
    model, onnx_bytes = booster
    names = ["f0", "f1", "f2", "f3"]
    register(aws_world, capsys, tmp_path, "gbm", onnx_bytes, {
        "task": "binary", "labels": ["no", "yes"], "input_name": "input", "output_name": "probabilities",
        "features": [{"name": n} for n in names], "baseline": dict.fromkeys(names, 0.0)})
    x = np.random.default_rng(7).normal(size=(25, 4)).astype(np.float32)
    records = [dict(zip(names, row, strict=True)) for row in x.tolist()]

    predictions = predict(handler, "gbm", records)
    got = np.array([[p["probabilities"]["no"], p["probabilities"]["yes"]] for p in predictions])
    np.testing.assert_allclose(got, model.predict_proba(x), atol=1e-5)

    explained = predict(handler, "gbm", records[:3], explain=True)
    assert all(p["explanation"]["baseline"] == "declared" for p in explained)


# --- what one-input-per-field graphs must declare ---------------------------------------------------


REFUSED = {
    "a field feeding no graph input": ({"features": [{"name": "age"}, {"name": "visits"},
                                                     {"name": "town", "type": "string"}]},
                                       "field 'town' feeds input 'town', which is not a graph input"),
    "an input no field feeds": ({"features": [{"name": "age"}, {"name": "visits"}]},
                                "graph input(s) 'city' are fed by no declared field"),
    "two fields on one input": ({"features": [{"name": "age"}, {"name": "visits"},
                                              {"name": "city", "type": "string"},
                                              {"name": "town", "type": "string", "input": "city"}]},
                                "fields 'city' and 'town' both feed input 'city'"),
    "a number on a string input": ({"features": [{"name": "age"}, {"name": "visits"}, {"name": "city"}]},
                                   "input 'city' takes tensor(string), so field 'city' feeding it must be a string"),
    "a string on a number input": ({"features": [{"name": "age", "type": "string"}, {"name": "visits"},
                                                 {"name": "city", "type": "string"}]},
                                   "input 'age' takes tensor(float), so field 'age' feeding it must be a number"),
    "input_name on such a graph": ({"input_name": "age"}, "this graph takes one input per field"),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_a_field_to_input_mapping_that_does_not_fit_the_graph_is_a_422(pipeline, aws_world, case: str) -> None:
    """Given the skl2onnx pipeline and a declaration whose fields do not map one to one onto its inputs,
    When it is registered, Then it is refused with a message naming the field or input, and nothing is written."""
    overrides, message = REFUSED[case]
    with pytest.raises(UnprocessableError) as info:
        register_onnx(aws_world.store, aws_world.registry, "tiers", pipeline[1],
                      ModelDeclaration.model_validate(PIPELINE_DECLARATION | overrides))
    assert message in info.value.message
    assert_nothing_written(aws_world)


def test_a_model_fed_field_by_field_has_no_feature_matrix_to_show(pipeline, aws_world) -> None:
    """Given the registered pipeline (its graph encodes the strings itself),
    When its feature matrix is asked for (the preprocess route), Then it is a 422 that says to predict instead."""
    from tests.integration.test_registration import predictor

    register_onnx(aws_world.store, aws_world.registry, "tiers", pipeline[1],
                  ModelDeclaration.model_validate(PIPELINE_DECLARATION), promote="prod")
    with pytest.raises(UnprocessableError, match="no feature matrix to show; predict instead"):
        predictor(aws_world).preprocess("tiers", [{"age": 30, "visits": 2, "city": "oslo"}])


# --- batch files and vector inputs ------------------------------------------------------------------


def test_a_csv_upload_to_batch_is_predicted_by_the_registered_pipeline_like_scikit_learn(
        pipeline, aws_world, capsys, tmp_path: Path) -> None:
    """Given the skl2onnx pipeline (float, int64 and string inputs) registered under alias prod,
    When a CSV of its three columns lands under batch/input/tiers/ and moto's S3 notification reaches the batch
    function (maas_local.batch_trigger),
    Then every valid row gets scikit-learn's predict_proba to 1e-5 (cells arrive as text: the int64 input gets the
    number, the string input the stripped text), and the rows with a bad number or no city are named errors."""
    from maas_local.batch_trigger import BatchTrigger
    from tests.integration.test_batch import out_key, put, read_jsonl

    model, onnx_bytes = pipeline
    register(aws_world, capsys, tmp_path, "tiers", onnx_bytes, PIPELINE_DECLARATION)
    data = customers(30, seed=11)
    records = [{"age": round(float(a), 3), "visits": int(v), "city": str(c)}
               for a, v, c in zip(data["age"], data["visits"], data["city"], strict=True)]
    records[3]["city"] = " quito  "
    rows = [f"{r['age']},{r['visits']},{r['city']}" for r in records]
    rows[5], rows[9] = "40,many,oslo", "40,3,"  # rows 6 and 10 of the file
    get_settings.cache_clear()
    app = load_function("batch")
    app.predictor.cache_clear()
    try:
        trigger = BatchTrigger(aws_world.bucket, handler=app.lambda_handler).configure()
        put(aws_world.bucket, "batch/input/tiers/day.csv", "age,visits,city\n" + "\n".join(rows) + "\n")
        trigger.drain()
    finally:
        app.predictor.cache_clear()
        get_settings.cache_clear()
    assert [[(p["status"], p["predicted"], p["rejected"]) for p in r["processed"]] for r in trigger.processed][-1] \
        == [("done", 28, 2)]
    errors = read_jsonl(aws_world.bucket, out_key("tiers", "day.csv", "errors"))
    assert [(e["row"], e["field"]) for e in errors] == [(6, "visits"), (10, "city")]
    assert "expected a number" in errors[0]["reason"] and "required field is missing" in errors[1]["reason"]
    lines = read_jsonl(aws_world.bucket, out_key("tiers", "day.csv", "predictions"))
    good = [r for i, r in enumerate(records) if i not in (5, 9)]
    assert [line["row"] for line in lines] == [i + 1 for i in range(30) if i not in (5, 9)]
    got = np.array([[line["probabilities"][label] for label in LABELS] for line in lines])
    np.testing.assert_allclose(got, model.predict_proba(table(good)), atol=1e-5)


@pytest.fixture(scope="module")
def vector_graph() -> bytes:
    """Given an ONNX regression graph whose string input is a vector, shape [N] (as skl2onnx writes
    StringTensorType([None]) and hand-made graphs often do): ai.onnx.ml OneHotEncoder over the city, then
    concatenated with the (N, 1) float age and a MatMul with fixed weights."""
    import onnx
    from onnx import TensorProto, helper

    weights = np.array([[0.5], [10.0], [20.0], [30.0]], np.float32)  # age, lisbon, oslo, quito
    graph = helper.make_graph(
        [helper.make_node("OneHotEncoder", ["city"], ["onehot"], domain="ai.onnx.ml", cats_strings=CITIES, zeros=1),
         helper.make_node("Cast", ["onehot"], ["onehot_f"], to=TensorProto.FLOAT),
         helper.make_node("Concat", ["age", "onehot_f"], ["x"], axis=1),
         helper.make_node("MatMul", ["x", "w"], ["y"])],
        "vector_input",
        [helper.make_tensor_value_info("age", TensorProto.FLOAT, [None, 1]),
         helper.make_tensor_value_info("city", TensorProto.STRING, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, [4, 1], weights.ravel().tolist())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def test_a_string_input_of_shape_n_is_fed_a_vector(vector_graph: bytes, handler, aws_world, capsys,
                                                   tmp_path: Path) -> None:
    """Given a graph whose string input `city` has shape [N] (no column dimension) beside an (N, 1) float input,
    When it is registered and records are predicted over the API,
    Then the manifest records city as (rows,), and each prediction is age * 0.5 + the city's weight."""
    register(aws_world, capsys, tmp_path, "towns", vector_graph, {
        "task": "regression", "output_name": "y", "features": [{"name": "age"}, {"name": "city", "type": "string"}],
        "baseline": {"age": 40.0, "city": "oslo"}})
    manifest = aws_world.store.load("towns", "1").manifest
    assert [(t.name, t.dtype, t.shape) for t in manifest.model_inputs] == [
        ("age", "float32", [None, 1]), ("city", "string", [None])]
    predictions = predict(handler, "towns", [{"age": 20, "city": "lisbon"}, {"age": 60, "city": " quito"},
                                             {"age": 2, "city": "paris"}])
    assert [p["value"] for p in predictions] == pytest.approx([20.0, 60.0, 1.0])


def test_a_manifest_whose_input_rank_differs_from_the_graph_is_not_served(vector_graph: bytes, handler, aws_world,
                                                                          capsys, caplog, tmp_path: Path) -> None:
    """Given the [N]-input graph registered, then its manifest rewritten to say city is (rows, 1),
    When a record is predicted, Then the version is refused as unusable (a 500 model_unusable; the log names the
    input and both shapes), not run with feeds the graph does not take."""
    register(aws_world, capsys, tmp_path, "towns", vector_graph, {
        "task": "regression", "output_name": "y", "features": [{"name": "age"}, {"name": "city", "type": "string"}],
        "baseline": {"age": 40.0, "city": "oslo"}})
    manifest = aws_world.store.load_manifest("towns", "1")
    wrong = manifest.model_copy(update={"model_inputs": [
        t.model_copy(update={"shape": [None, 1]}) for t in manifest.model_inputs]})
    aws_world.store.s3.put_object(Bucket=aws_world.bucket, Key="models/towns/1/manifest.json",
                                  Body=wrong.model_dump_json().encode())
    status, body = call(handler, "POST", "/v1/models/towns/predict", body={"records": [{"age": 2, "city": "oslo"}]})
    assert status == 500 and body["error"]["code"] == "model_unusable", body
    refusals = [vars(r) for r in caplog.records if r.getMessage().startswith("model version refused")]
    assert "graph input 'city' has shape (?,); the manifest says (?, 1)" in json.dumps(refusals, default=str)


def test_the_graphs_own_inputs_over_v2_take_each_columns_datatype(pipeline, handler, aws_world) -> None:
    """Given the pipeline registered with fields named apart from its graph inputs (customer_age feeds age, ...),
    When records are sent over /v2 as the graph's own inputs (age FP32, visits INT64, city BYTES, each [N, 1]),
    Then the probabilities are scikit-learn's; an input of another datatype than its graph input's is a 400."""
    model, onnx_bytes = pipeline
    renamed = {"features": [{"name": "customer_age", "input": "age"}, {"name": "customer_visits", "input": "visits"},
                            {"name": "home", "type": "string", "input": "city"}]}
    register_onnx(aws_world.store, aws_world.registry, "tiers", onnx_bytes,
                  ModelDeclaration.model_validate(PIPELINE_DECLARATION | renamed), promote="prod")
    records = [{"age": 30.5, "visits": 3, "city": "oslo"}, {"age": 61.0, "visits": 22, "city": "quito"}]
    inputs = [{"name": "age", "datatype": "FP32", "shape": [2, 1], "data": [[r["age"]] for r in records]},
              {"name": "visits", "datatype": "INT64", "shape": [2], "data": [r["visits"] for r in records]},
              {"name": "city", "datatype": "BYTES", "shape": [2, 1], "data": [r["city"] for r in records]}]
    status, body = call(handler, "POST", "/v2/models/tiers/infer", body={"inputs": inputs})
    assert status == 200, body
    probabilities = next(o for o in body["outputs"] if o["name"] == "probabilities")
    np.testing.assert_allclose(np.array(probabilities["data"]).reshape(2, 3), model.predict_proba(table(records)),
                               atol=1e-5)
    status, body = call(handler, "POST", "/v2/models/tiers/infer", body={"inputs": [
        *inputs[:1], {**inputs[1], "datatype": "FP64"}, inputs[2]]})
    assert status == 400 and "must be INT64, got 'FP64'" in body["error"], body
    status, body = call(handler, "POST", "/v2/models/tiers/infer", body={"inputs": inputs[:2]})
    assert status == 400 and "missing input tensor city" in body["error"], body
