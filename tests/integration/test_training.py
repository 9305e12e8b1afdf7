"""The training job against moto: data handling, a real Keras -> ONNX run, the published bundle,
serving it, training/serving matrix parity, other tasks, and the CLI.

Tests marked `training` really train (seconds each); one penguins model is trained per module and
shared. Everything runs offline in a moto account.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from moto import mock_aws

from maas_core import aws
from maas_core.manifest import (
    MANIFEST_FILE,
    MODEL_FILE,
    PREPROCESS_FILE,
    REPORT_FILE,
    REPORT_TABLE_FILE,
    Manifest,
    sha256_hex,
)
from maas_core.predictor import Predictor
from maas_core.preprocess import ColumnConfig, PreprocessSpec, outlier_bounds
from maas_core.registry import Registry
from maas_core.settings import Settings
from maas_core.store import BundleStore
from maas_training import data as ds
from maas_training.cli import build_parser, config_from_args, main
from maas_training.config import TrainingConfig
from maas_training.datasets import PENGUINS, SUPPORT_TICKETS, penguins_config, support_tickets_config
from maas_training.evaluate import baseline_statistics, bin_index, classification_metrics, regression_metrics
from maas_training.job import Prepared, prepare, run

BUCKET = "training-test-models"
TABLE = "training-test-registry"
MEASURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


@dataclass
class World:
    bucket: str
    table: str
    store: BundleStore
    registry: Registry

    def config(self, **overrides: Any) -> TrainingConfig:
        return penguins_config(**{"bucket": self.bucket, "table": self.table, **overrides})

    def keys(self, prefix: str) -> list[str]:
        resp = boto3.client("s3").list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for o in resp.get("Contents", []))

    def predictor(self) -> Predictor:
        return Predictor(Settings(model_bucket=self.bucket, registry_table=self.table), self.registry, self.store)


@contextmanager
def moto_model_account(bucket: str, table: str) -> Iterator[None]:
    """One moto account with the model bucket and the registry table (training env vars set)."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                           "MAAS_MODEL_BUCKET": bucket, "MAAS_REGISTRY_TABLE": table,
                           "MAAS_TF_THREADS": "2"}.items():
            mp.setenv(key, value)
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        mp.delenv("AWS_PROFILE", raising=False)
        with mock_aws():
            aws.reset_clients()
            boto3.client("s3").create_bucket(Bucket=bucket)
            boto3.client("dynamodb").create_table(
                TableName=table,
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                      {"AttributeName": "sk", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            )
            yield
            aws.reset_clients()


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """Given one moto account for the module, with the model bucket and the registry table."""
    with moto_model_account(BUCKET, TABLE):
        yield World(BUCKET, TABLE, BundleStore(BUCKET), Registry(TABLE))


@dataclass
class Trained:
    config: TrainingConfig
    manifest: Manifest
    progress: list[str]


@pytest.fixture(scope="module")
def trained(world: World) -> Trained:
    """Given the penguins species model trained with its shipped config and promoted to `prod`."""
    config = world.config(promote="prod")
    lines: list[str] = []
    manifest = run(config, progress=lines.append)
    return Trained(config, manifest, lines)


def json_records(columns: ds.Columns, spec: PreprocessSpec) -> list[dict[str, Any]]:
    """Raw rows as a web app would POST them: numbers as JSON numbers, a missing optional field
    either left out or null (alternating), round-tripped through JSON text."""
    kinds = {f.name: f.kind for f in spec.features}
    records: list[dict[str, Any]] = []
    for i in range(ds.n_rows(columns)):
        record: dict[str, Any] = {}
        for name, kind in kinds.items():
            raw = columns[name][i]
            if raw is None:
                if i % 2:
                    record[name] = None
                continue
            if kind == "numeric":
                record[name] = int(raw) if raw.lstrip("-").isdigit() else float(raw)
            else:
                record[name] = raw
        records.append(record)
    return json.loads(json.dumps(records))


# --- data handling (no TensorFlow) -----------------------------------------------------------------


def test_penguins_csv_ships_inside_the_package() -> None:
    assert PENGUINS.is_file() and PENGUINS.parent.name == "datasets"
    assert PENGUINS.read_text().splitlines()[0] == (
        "species,island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,year")


def tiny_config(path: Path, **overrides: Any) -> TrainingConfig:
    return TrainingConfig(**{"data": path, "model_name": "tiny", "target": "y", "model": "mlp", **overrides})


def test_csv_missing_values_and_feature_inference() -> None:
    columns = ds.load_csv(PENGUINS)
    assert ds.n_rows(columns) == 344
    assert columns["bill_length_mm"][3] is None and columns["sex"][3] is None  # 'NA' -> None
    features = ds.resolve_features(columns, penguins_config())
    assert features.numeric == MEASURES
    assert features.categorical == ["island", "sex"]
    assert (features.optional, features.inferred) == (["sex"], tuple(MEASURES + ["island", "sex"]))
    assert features.configs["sex"] == ColumnConfig(kind="categorical", required=False)
    assert ds.infer_task(columns["species"]) == "multiclass"
    assert ds.infer_task(columns["sex"]) == "binary"
    assert ds.infer_task(columns["body_mass_g"]) == "regression"


def test_kind_inference_booleans_and_a_lone_free_text_column(tmp_path: Path) -> None:
    csv = tmp_path / "d.csv"
    csv.write_text("y,flag,n,code,note\n"
                   "a,Yes,1,x1,the parcel never arrived at my door\n"
                   "b,no,0,x2,short\n"
                   "a,TRUE,1,x3,please refund the second charge on my card\n"
                   "b,false,,x4,N/A\n")
    columns = ds.load_csv(csv)
    assert columns["note"][3] is None  # the spec's missing markers are missing in training too
    features = ds.resolve_features(columns, tiny_config(csv))
    assert (features.numeric, features.boolean, features.categorical) == (["n"], ["flag"], ["code", "note"])
    # free text is inferred only when it is the model's one feature column
    text = ds.resolve_features(columns, tiny_config(csv, exclude=["flag", "n", "code"]))
    assert (text.text, text.names) == (["note"], ["note"])
    assert ds.resolve_features(columns, tiny_config(csv, exclude=["flag", "n", "note"])).categorical == ["code"]
    # given kinds win; giving both numeric and categorical names the whole feature set
    given = ds.resolve_features(columns, tiny_config(csv, categorical=["n"]))
    assert (given.categorical, given.numeric, given.inferred) == (["n", "code", "note"], [], ("code", "note", "flag"))
    closed = ds.resolve_features(columns, tiny_config(csv, numeric=[], categorical=["code"]))
    assert closed.names == ["code"] and closed.inferred == ()
    with pytest.raises(ValueError, match="a text model takes one text column and nothing else: text 'note', "
                                         "other features 'flag', 'n', 'code'"):
        ds.resolve_features(columns, tiny_config(csv, text=["note"]))
    with pytest.raises(ValueError, match="boolean column 'code': data row 1 has 'x1', which is not a boolean"):
        ds.resolve_features(columns, tiny_config(csv, boolean=["code"]))


CLEANING_CSV = ("y,a,b,c\n"
                "1,2,x,10\n"
                "1,2,x,10\n"    # duplicate
                ",3,x,11\n"     # no target
                "NA,3,y,12\n"   # no target
                "0,,x,13\n"     # a missing (required: drop)
                "0,4,,14\n"     # b missing (optional: kept, the spec fills it)
                "1, 5 ,z,\n"    # c missing (filled with the median: kept)
                "1,6,x,11\n"
                "0,7,y,12\n"
                "1,8,x,10\n"
                "0,9,y,13\n"
                "1,1000,x,11\n"  # a outlier (iqr, drop)
                "0,8,y,900\n")   # c outlier, but c clips: kept


def test_cleaning_counts_each_dropped_row_once_by_reason_and_column(tmp_path: Path) -> None:
    csv = tmp_path / "d.csv"
    csv.write_text(CLEANING_CSV)
    columns = ds.load_csv(csv)
    config = tiny_config(csv, optional=["b"], outliers="iqr", outlier_action="drop", columns={
        "c": ColumnConfig(kind="numeric", missing="median", outliers="zscore", outlier_action="clip")})
    features = ds.resolve_features(columns, config)
    assert features.configs["a"] == ColumnConfig(kind="numeric", outliers="iqr", outlier_action="drop")
    assert features.configs["c"].outlier_action == "clip" and features.configs["c"].outliers == "zscore"
    kept, report = ds.clean(columns, "y", features)
    a_kept = [2, 4, 5, 6, 7, 8, 9, 1000, 8]  # rows still kept when the bounds are computed
    low, high = outlier_bounds(np.array(a_kept, float), "iqr", None)
    assert report.as_dict() == {
        "rows_loaded": 13, "dropped_missing_target": 2, "dropped_duplicates": 1, "dropped_missing": {"a": 1},
        "dropped_outliers": {"a": 1}, "outlier_bounds": {"a": [low, high]}, "rows_kept": 8}
    assert report.rows_loaded == report.rows_kept + report.rows_dropped
    assert kept["a"] == ["2", "4", "5", "6", "7", "8", "9", "8"]
    assert kept["b"][1] is None and kept["c"][2] is None and "900" in kept["c"]  # filled / clipped by the spec
    assert list(kept) == ["y", "a", "c", "b"]  # target, then the features in spec order (numeric first)
    assert "13 rows loaded, 8 kept (2 without 'y', 1 duplicates, missing: a 1, outliers: a 1)" == report.summary("y")

    # a missing value is dropped only where the column's strategy is drop: fill it instead and the row stays
    filled = ds.resolve_features(columns, tiny_config(csv, optional=["b"], missing="mean"))
    assert ds.clean(columns, "y", filled)[1].dropped_missing == {}
    # and the spec fitted on the cleaned rows transforms them without an error
    spec = PreprocessSpec.fit(kept, features.spec_config())
    x = spec.transform_columns(kept, fill_required=True)  # c's missing value: the fitted median
    assert x.shape == (8, 1 + 1 + 3) and np.isfinite(x).all()
    c = spec.features[1]
    assert x[2, 1] == np.float32((c.fill - c.center) / c.scale)


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize(("test_size", "val_size"), [(0.2, 0.1), (0.25, 0.15), (0.3, 0.0)])
def test_split_is_seeded_disjoint_and_stratified(seed: int, test_size: float, val_size: float) -> None:
    classes = np.random.default_rng(seed).permutation(np.array([0] * 151 + [1] * 67 + [2] * 29 + [3] * 5))
    a = ds.split_indices(len(classes), test_size, val_size, seed=seed, classes=classes)
    b = ds.split_indices(len(classes), test_size, val_size, seed=seed, classes=classes)
    c = ds.split_indices(len(classes), test_size, val_size, seed=seed + 1, classes=classes)
    assert all(np.array_equal(x, y) for x, y in zip((a.train, a.val, a.test), (b.train, b.val, b.test), strict=True))
    assert not np.array_equal(a.test, c.test) and not np.array_equal(a.train, c.train)
    everything = np.concatenate([a.train, a.val, a.test])
    assert np.array_equal(np.sort(everything), np.arange(len(classes)))  # disjoint and complete
    sizes = np.bincount(classes)
    for part, fraction in ((a.test, test_size), (a.val, val_size), (a.train, 1 - test_size - val_size)):
        counts = np.bincount(classes[part], minlength=len(sizes))
        assert np.all(np.abs(counts - sizes * fraction) <= 1), (counts, sizes * fraction)  # within 1 row per class
    assert np.all(np.bincount(classes[a.train], minlength=len(sizes)) >= 1)


def test_regression_split_is_seeded_and_sized() -> None:
    a = ds.split_indices(200, 0.2, 0.1, seed=5)
    assert (len(a.train), len(a.val), len(a.test)) == (140, 20, 40)
    assert np.array_equal(a.test, ds.split_indices(200, 0.2, 0.1, seed=5).test)
    assert not np.array_equal(a.test, ds.split_indices(200, 0.2, 0.1, seed=6).test)


def test_metrics_and_baseline_by_hand() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    m = classification_metrics(np.array([0, 1, 1, 1]), probs)
    assert m["accuracy"] == 0.75
    assert m["precision_macro"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["recall_macro"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.4, 0.7])))
    r = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert r == pytest.approx({"mae": 2 / 3, "rmse": math.sqrt(4 / 3), "r2": 1 - 4 / 2})

    columns = {"x": [str(v) for v in range(100)] + [None], "c": ["a"] * 75 + ["b"] * 25 + [None]}
    base = baseline_statistics(columns, ["x"], ["c"])
    x = base["features"]["x"]
    assert (x["count"], x["missing"], len(x["bin_edges"]), x["min"], x["max"]) == (100, 1, 11, 0.0, 99.0)
    assert x["proportions"] == pytest.approx([0.1] * 10)
    assert bin_index(x["bin_edges"], np.array([-1e9, 0.0, 50.0, 99.0, 1e9])).tolist() == [0, 0, 5, 9, 9]
    assert base["features"]["c"]["frequencies"] == {"a": 0.75, "b": 0.25}


@pytest.mark.parametrize(("overrides", "message"), [
    ({"target": "beak_colour"}, "target column 'beak_colour' is not in the data; columns are: species, island"),
    ({"numeric": ["island"]}, "numeric column 'island': data row 1 has 'Torgersen', which is not a number"),
    ({"categorical": ["feathers"]}, "categorical column(s) 'feathers' not in the data"),
    ({"exclude": ["year", "island"], "optional": ["island"]}, "both excluded and used as features: island"),
    ({"numeric": ["bill_length_mm"], "categorical": ["island"]}, "optional column(s) 'sex' are not features"),
    ({"sensitive": ["feathers"]}, "sensitive column(s) 'feathers' not in the data"),  # a typo must not unmask
    ({"exclude": ["year", "island"], "sensitive": ["island"]}, "sensitive column(s) 'island' are not features"),
    ({"task": "binary"}, "task binary needs a target with 2 classes; 'species' has 3: Adelie, Chinstrap, Gentoo"),
    ({"optional": [], "numeric": MEASURES, "categorical": ["island", "sex"], "target": "island",
      "test_size": 0.5, "val_size": 0.45}, "test_size + val_size = 0.95 leaves too few rows"),
    ({"model_name": "no spaces"}, "model_name 'no spaces' must be 1-64 letters"),
    ({"loss": "huber"}, "loss 'huber' does not suit a multiclass task; use one of: crossentropy, focal"),
    ({"task": "regression", "target": "body_mass_g", "loss": "focal"}, "loss 'focal' does not suit a regression task"),
    ({"numeric": ["island"], "categorical": ["island"]}, "column 'island' is both numeric (numeric) and categorical"),
    ({"columns": {"island": {"kind": "numeric", "scaler": "robust"}}, "categorical": ["island"]},
     "column 'island' is both numeric (columns) and categorical"),
    ({"columns": {"sex": {"kind": "boolean"}}}, "boolean column 'sex': data row 1 has 'male', which is not a boolean"),
    ({"text": ["island"]}, "a text model takes one text column and nothing else: text 'island'"),
])
def test_bad_configs_fail_with_a_message_naming_the_problem(world: World, overrides: dict[str, Any],
                                                            message: str) -> None:
    with pytest.raises(ValueError) as err:
        run(world.config(**overrides), progress=lambda _: None)
    assert message in str(err.value)


def test_no_rows_left_names_the_reasons(tmp_path: Path, world: World) -> None:
    csv = tmp_path / "empty.csv"
    csv.write_text("y,a\n1,NA\n0,\n,5\n")
    with pytest.raises(ValueError, match=r"no rows left after cleaning 3 rows: 1 had no 'y', .*\{'a': 2\}"):
        run(TrainingConfig(data=csv, model_name="nothing", target="y"), progress=lambda _: None)


def test_a_missing_bucket_fails_before_training(world: World) -> None:
    with pytest.raises(RuntimeError, match="model bucket 'no-such-bucket' does not exist"):
        run(world.config(bucket="no-such-bucket"), progress=lambda _: None)


# --- the penguins model, trained once --------------------------------------------------------------


@pytest.mark.training
def test_penguins_bundle_is_published_registered_and_promoted(world: World, trained: Trained) -> None:
    m = trained.manifest
    assert (m.name, m.version, m.task, m.target) == ("penguins", "1", "multiclass", "species")
    assert m.labels == ["Adelie", "Chinstrap", "Gentoo"]

    prefix = "models/penguins/1/"
    stored_names = [k.removeprefix(prefix) for k in world.keys(prefix)]
    pictures = [n for n in stored_names if n.startswith("report_") and n.endswith(".png")]  # optional extras
    # model.onnx, and model.int8.onnx (tests/integration/test_quantization.py)
    models = [v.file for v in m.variants.values()]
    assert MODEL_FILE in models
    assert sorted(set(stored_names) - set(pictures)) == sorted([MANIFEST_FILE, *models, PREPROCESS_FILE, REPORT_FILE,
                                                               REPORT_TABLE_FILE])
    s3 = boto3.client("s3")
    stored = Manifest.model_validate_json(s3.get_object(Bucket=world.bucket, Key=prefix + MANIFEST_FILE)["Body"].read())
    assert stored == m
    assert set(stored.files) == {*models, PREPROCESS_FILE, REPORT_FILE, REPORT_TABLE_FILE, *pictures}
    for name, entry in stored.files.items():
        body = s3.get_object(Bucket=world.bucket, Key=prefix + name)["Body"].read()
        assert (sha256_hex(body), len(body)) == (entry.sha256, entry.size), name

    assert world.registry.get_version("penguins", "1")["labels"] == m.labels
    assert world.registry.resolve_alias("penguins", "prod").version == "1"

    assert m.metrics["accuracy"] > 0.85 and m.metrics["f1_macro"] > 0.85
    assert m.training["onnx_parity_max_abs_diff"] < 1e-4
    assert (m.training["model_type"], m.training["hyperparameters"]["loss"]) == ("mlp", "crossentropy")
    assert m.training["features"]["optional"] == ["sex"] and m.training["features"]["text"] == []
    assert m.training["preprocessing"]["columns"]["sex"]["required"] is False
    assert m.training["rows"]["test"] > 50 and m.training["cleaning"]["rows_kept"] == 342
    assert [(f.name, f.type, f.required) for f in m.input_schema] == [
        *[(n, "number", True) for n in MEASURES], ("island", "string", True), ("sex", "string", False)]
    assert (m.model_input.name, m.model_input.dtype, m.model_input.shape) == ("features", "float32", [None, 9])
    assert (m.model_output.name, m.model_output.shape) == ("outputs", [None, 3])
    assert {"tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "numpy"} <= set(m.frameworks)
    for name in MEASURES:
        assert sum(m.baseline["features"][name]["proportions"]) == pytest.approx(1.0)
    assert set(m.baseline["features"]["island"]["frequencies"]) == {"Biscoe", "Dream", "Torgersen"}

    report = json.loads(s3.get_object(Bucket=world.bucket, Key=prefix + REPORT_FILE)["Body"].read())
    assert report["metrics"] == m.metrics
    assert len(report["history"]["loss"]) == len(report["history"]["val_loss"]) == m.training["epochs_run"] > 0
    assert np.sum(report["confusion_matrix"]) == m.training["rows"]["test"]
    table = s3.get_object(Bucket=world.bucket, Key=prefix + REPORT_TABLE_FILE)["Body"].read().decode()
    assert table.startswith("# penguins version 1\n") and "| **mlp** (chosen) | MLP [16, 8] |" in table
    assert any("published penguins version 1" in line for line in trained.progress)


@pytest.mark.training
def test_serving_the_trained_bundle_reproduces_the_holdout_accuracy(world: World, trained: Trained) -> None:
    prepared = prepare(trained.config, progress=lambda _: None)
    records = json_records(prepared.test_columns, prepared.spec)
    response = world.predictor().predict("penguins", records).response  # alias prod
    assert (response.version, response.alias) == ("1", "prod")
    labels = [p.label for p in response.predictions]
    assert set(labels) <= set(trained.manifest.labels)
    truth = prepared.test_columns["species"]
    accuracy = np.mean([p == t for p, t in zip(labels, truth, strict=True)])
    assert accuracy == pytest.approx(trained.manifest.metrics["accuracy"])
    for p in response.predictions:
        assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-5)

    gentoo = {"island": "Biscoe", "bill_length_mm": 47.5, "bill_depth_mm": 14.2, "flipper_length_mm": 217,
              "body_mass_g": 4875}  # no sex: optional
    assert world.predictor().predict("penguins", [gentoo], version="1").response.predictions[0].label == "Gentoo"


@pytest.mark.training
def test_training_and_serving_feature_matrices_are_identical(world: World, trained: Trained) -> None:
    """Principle 2: the matrix the model was trained on is, bit for bit, the one serving computes
    from the same raw rows sent as JSON, with the spec loaded from the published bundle."""
    prepared: Prepared = prepare(trained.config, progress=lambda _: None)
    bundle = world.store.load("penguins", "1")
    served_spec = PreprocessSpec.from_json(bundle.files[PREPROCESS_FILE])
    assert served_spec == prepared.spec
    for columns, trained_matrix in ((prepared.train_columns, prepared.x_train),
                                    (prepared.val_columns, prepared.x_val),
                                    (prepared.test_columns, prepared.x_test)):
        records = json_records(columns, served_spec)
        served = served_spec.transform(records)
        assert served.dtype == trained_matrix.dtype == np.float32
        assert np.array_equal(served, trained_matrix)
    # the training rows with a missing optional `sex` got the fitted fill, exactly as serving does
    assert any(v is None for v in prepared.train_columns["sex"])


# --- other tasks --------------------------------------------------------------------------------------


@pytest.mark.training
def test_a_regression_model_trains_exports_and_serves(world: World) -> None:
    m = run(world.config(model_name="penguin-mass", target="body_mass_g", epochs=25), progress=lambda _: None)
    assert (m.task, m.labels, m.model_output.shape) == ("regression", [], [None, 1])
    assert m.training["task_inferred"] is True
    assert m.metrics["r2"] > 0.6 and m.metrics["mae"] < 500
    # outputs are in grams (the standardised target is undone inside the graph), where float32
    # resolution is ~5e-4: parity is checked relative to the output's size
    assert m.training["onnx_parity_max_scaled_diff"] < 1e-4
    assert "body_mass_g" not in [f.name for f in m.input_schema]
    record = {"species": "Gentoo", "island": "Biscoe", "bill_length_mm": 47.5, "bill_depth_mm": 14.2,
              "flipper_length_mm": 217, "sex": "male"}
    value = world.predictor().predict("penguin-mass", [record], version=m.version).response.predictions[0].value
    assert 4000 < value < 7000


@pytest.mark.training
def test_a_binary_model_trains_exports_and_serves(world: World) -> None:
    m = run(world.config(model_name="penguin-sex", target="sex", optional=[], epochs=25), progress=lambda _: None)
    assert (m.task, m.labels, m.model_output.shape) == ("binary", ["female", "male"], [None, 1])
    assert m.metrics["accuracy"] > 0.75
    assert m.training["onnx_parity_max_abs_diff"] < 1e-4
    record = {"species": "Gentoo", "island": "Biscoe", "bill_length_mm": 50.0, "bill_depth_mm": 16.3,
              "flipper_length_mm": 230, "body_mass_g": 5700}
    p = world.predictor().predict("penguin-sex", [record], version=m.version).response.predictions[0]
    assert p.label in m.labels and set(p.probabilities) == {"female", "male"}
    assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def tiny_task_csv(path: Path, n: int = 48) -> Path:
    """Two numbers, a category, a yes/no flag and targets for each task."""
    rng = np.random.default_rng(0)
    lines = ["x1,x2,colour,member,two,three,amount"]
    for i in range(n):
        x1, x2 = rng.normal(size=2)
        lines.append(f"{x1:.4f},{x2:.4f},{'rgb'[i % 3]},{'yes' if i % 4 else 'no'},{'ab'[i % 2]},{'pqr'[i % 3]},"
                     f"{10 * x1 + x2:.3f}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.training
@pytest.mark.parametrize(("target", "loss", "optimizer", "keras_loss"), [
    # binary crossentropy and mse (the defaults) train end to end in the binary and regression tests
    ("two", "focal", "momentum", "BinaryFocalCrossentropy"),
    ("three", None, "rmsprop", "SparseCategoricalCrossentropy"),
    ("three", "focal", "adam", "CategoricalFocalCrossentropy"),
    ("amount", "mae", "sgd", "MeanAbsoluteError"),
    ("amount", "huber", "momentum", "Huber"),
])
def test_each_loss_and_optimizer_builds_and_trains_an_epoch(tmp_path: Path, target: str, loss: str | None,
                                                            optimizer: str, keras_loss: str) -> None:
    import maas_training.model as nn
    from maas_training.job import _training_targets

    others = [t for t in ("two", "three", "amount") if t != target]
    config = TrainingConfig(data=tiny_task_csv(tmp_path / "d.csv"), model_name="tiny", target=target, exclude=others,
                            task="regression" if target == "amount" else None, loss=loss, optimizer=optimizer,
                            epochs=1, batch_size=16, hidden_units=[4], l2=0.001, dropout=0.1)
    p = prepare(config, progress=lambda _: None)
    assert p.features.boolean == ["member"] and p.x_train.shape[1] == 2 + 3 + 1
    y_train, _, _ = _training_targets(p)
    net = nn.build_model(p.x_train.shape[1], p.task, len(p.labels), config, loss=p.loss)
    assert type(net.loss).__name__ == keras_loss
    keras_names = {"sgd": "SGD", "momentum": "SGD", "rmsprop": "RMSprop", "adam": "Adam"}
    assert type(net.optimizer).__name__ == keras_names[optimizer]
    history = nn.train(net, p.x_train, y_train, None, None, config, progress=lambda _: None)
    assert history.epochs_run == 1 and np.isfinite(history.loss[0])
    if loss == "focal" and p.task == "multiclass":
        assert y_train.shape == (len(p.x_train), 3)  # Keras 3 has no sparse focal loss: one-hot targets


@pytest.mark.training
def test_a_failed_parity_check_publishes_nothing(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import maas_training.model as nn

    real = nn.predict
    monkeypatch.setattr(nn, "predict", lambda model, x: real(model, x) + 1e-3)  # Keras and ONNX now disagree
    with pytest.raises(RuntimeError, match="ONNX output differs from Keras by up to .* Nothing was published"):
        run(world.config(model_name="penguin-broken", epochs=2), progress=lambda _: None)
    assert world.keys("models/penguin-broken/") == []
    assert "penguin-broken" not in [m["name"] for m in world.registry.list_models()]


# --- the text model -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_trained(world: World) -> Trained:
    """Given the support-tickets text classifier trained with its shipped config and promoted to `prod`."""
    config = support_tickets_config(bucket=world.bucket, table=world.table, promote="prod")
    lines: list[str] = []
    manifest = run(config, progress=lines.append)
    return Trained(config, manifest, lines)


def test_support_tickets_csv_ships_inside_the_package() -> None:
    columns = ds.load_csv(SUPPORT_TICKETS)
    assert list(columns) == ["text", "label"] and ds.n_rows(columns) > 500
    assert set(columns["label"]) == {"account", "billing", "shipping", "technical"}
    assert any(not t.isascii() for t in columns["text"])
    config = support_tickets_config()
    assert ds.resolve_features(columns, config.model_copy(update={"text": None})).text == ["text"]  # inferred too


@pytest.mark.training
def test_text_model_trains_exports_and_publishes_int_token_input(world: World, text_trained: Trained) -> None:
    m = text_trained.manifest
    assert (m.name, m.version, m.task, m.target) == ("support-tickets", "1", "multiclass", "label")
    assert m.labels == ["account", "billing", "shipping", "technical"]
    assert world.registry.resolve_alias("support-tickets", "prod").version == "1"
    assert m.metrics["accuracy"] > 0.5  # chance is 0.25; typically ~0.7 on this small dataset
    assert m.training["onnx_parity_max_abs_diff"] < 1e-4
    assert m.training["model_type"] == "embedding-lstm"
    hp = m.training["hyperparameters"]
    assert (hp["embed_dim"], hp["lstm_units"], hp["lstm_reverse"], hp["loss"]) == (64, 32, True, "crossentropy")
    assert "hidden_units" not in hp
    spec = PreprocessSpec.from_json(world.store.load("support-tickets", "1").files[PREPROCESS_FILE])
    f = spec.text_feature
    assert f is not None and f.name == "text" and f.dtype == "int32"
    assert (m.model_input.name, m.model_input.dtype, m.model_input.shape) == ("tokens", "int32", [None, f.max_length])
    assert (m.model_output.name, m.model_output.shape) == ("outputs", [None, 4])
    assert [(i.name, i.type, i.required) for i in m.input_schema] == [("text", "string", True)]
    base = m.baseline["features"]["text"]
    assert base["kind"] == "text" and base["oov_rate"] == 0.0 and sum(base["tokens"]["proportions"]) == pytest.approx(1)
    # text drift compares serving texts with the OOV rate of the validation split, not training's own 0
    assert base["oov"]["source"] == "validation" and 0.0 < base["oov"]["rate"] < 0.5 and base["oov"]["tokens"] > 0
    assert any("Embedding(" in line and "LSTM(32)" in line for line in text_trained.progress)

    import onnx  # the graph is the fused LSTM op, not a slow Loop (docs/training.md)
    graph = onnx.load_from_string(world.store.load("support-tickets", "1").files[MODEL_FILE]).graph
    ops = {n.op_type for n in graph.node}
    assert "LSTM" in ops and "Loop" not in ops


@pytest.mark.training
def test_text_model_serves_raw_text(world: World, text_trained: Trained) -> None:
    prepared = prepare(text_trained.config, progress=lambda _: None)
    texts = prepared.test_columns["text"]
    predictor = world.predictor()
    as_objects = predictor.predict("support-tickets", [{"text": t} for t in texts]).response
    labels = [p.label for p in as_objects.predictions]
    accuracy = np.mean([p == t for p, t in zip(labels, prepared.test_columns["label"], strict=True)])
    assert accuracy == pytest.approx(text_trained.manifest.metrics["accuracy"])
    as_strings = predictor.predict("support-tickets", texts).response  # a text model takes bare strings too
    assert [p.label for p in as_strings.predictions] == labels
    one = predictor.predict("support-tickets",
                            [{"text": "I was charged twice for my subscription, please refund"}]).response
    assert one.predictions[0].label in text_trained.manifest.labels
    assert sum(one.predictions[0].probabilities.values()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.training
def test_text_training_and_serving_token_matrices_are_identical(world: World, text_trained: Trained) -> None:
    """Principle 2 for text: the token ids the LSTM trained on are, bit for bit, what serving computes
    from the raw strings, non-ASCII included, with the spec loaded from the published bundle."""
    prepared = prepare(text_trained.config, progress=lambda _: None)
    served_spec = PreprocessSpec.from_json(world.store.load("support-tickets", "1").files[PREPROCESS_FILE])
    assert served_spec == prepared.spec and served_spec.output_dtype() == "int32"
    non_ascii = 0
    for columns, trained_matrix in ((prepared.train_columns, prepared.x_train),
                                    (prepared.val_columns, prepared.x_val),
                                    (prepared.test_columns, prepared.x_test)):
        texts = json.loads(json.dumps(columns["text"], ensure_ascii=False))  # as a web app would POST them
        non_ascii += sum(not t.isascii() for t in texts)
        for records in ([{"text": t} for t in texts], texts):
            served = served_spec.transform(records)
            assert served.dtype == trained_matrix.dtype == np.int32
            assert np.array_equal(served, trained_matrix)
    assert non_ascii > 20
    # and the non-ASCII words are in the vocabulary, normalised the way serving normalises them
    assert any(not w.isascii() for w in served_spec.text_feature.vocabulary)


@pytest.mark.training
def test_a_text_model_with_int64_ids_trains_exports_and_serves(world: World, tmp_path: Path) -> None:
    words = {"billing": ["invoice", "charged", "refund", "payment", "Rückerstattung", "facture"],
             "shipping": ["parcel", "delivery", "courier", "arrived", "Lieferung", "colis"]}
    rng = np.random.default_rng(1)
    lines = ["message,topic"]
    for i in range(80):
        topic = ["billing", "shipping"][i % 2]
        picked = rng.choice(words[topic], size=4).tolist() + rng.choice(["my", "the", "please", "¿", "é"], 3).tolist()
        lines.append(f"{' '.join(rng.permutation(picked))} #{i},{topic}")
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = TrainingConfig(data=tmp_path / "t.csv", model_name="topics64", target="topic", bucket=world.bucket,
                            table=world.table, columns={"message": ColumnConfig(kind="text", dtype="int64")},
                            embed_dim=8, lstm_units=8, epochs=8, learning_rate=0.02, model="lstm")
    m = run(config, progress=lambda _: None)
    assert m.task == "binary" and (m.model_input.name, m.model_input.dtype) == ("tokens", "int64")
    assert m.training["onnx_parity_max_abs_diff"] < 1e-4
    p = world.predictor().predict("topics64", ["refund the invoice payment", "Lieferung parcel courier"],
                                  version=m.version).response.predictions
    assert [x.label for x in p] == ["billing", "shipping"]


# --- CLI ------------------------------------------------------------------------------------------


CLI_BASE = ["--data", str(PENGUINS), "--model-name", "cli", "--target", "species"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--model-name", "x", "--target", "species"], "--data is required (give --data, or a --config file)"),
    (CLI_BASE + ["--hidden-units", "32,abc"], "expected comma-separated layer sizes like 32,16"),
    (CLI_BASE + ["--epochs", "0"], "--epochs: Input should be greater than or equal to 1"),
    (CLI_BASE + ["--optimizer", "adagrad"], "invalid choice: 'adagrad'"),
    (CLI_BASE + ["--model-name", "bad name"], "--model-name: model_name 'bad name' must be 1-64 letters"),
    (CLI_BASE + ["--data", "/nowhere/penguins.csv"], "--data: '/nowhere/penguins.csv' does not exist"),
    (CLI_BASE + ["--dropout", "1.5"], "--dropout: Input should be less than 1"),
    (CLI_BASE + ["--early-stopping", "-1"], "--early-stopping: Input should be greater than or equal to 0"),
    (CLI_BASE + ["--optional", "species"], "the target column 'species' cannot also be an optional feature"),
])
def test_cli_bad_arguments_exit_2_with_a_message(argv: list[str], message: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_help_is_fast_and_does_not_import_tensorflow() -> None:
    import subprocess
    import sys

    code = "import sys; from maas_training.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\n" \
           "assert 'tensorflow' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--hidden-units" in proc.stdout and "--promote" in proc.stdout


def test_cli_job_failure_exits_1_without_a_traceback(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--data", str(PENGUINS), "--model-name", "cli", "--target", "beak_colour",
                 "--bucket", world.bucket, "--table", world.table])
    assert code == 1
    err = capsys.readouterr().err
    assert "maas-train: error: target column 'beak_colour' is not in the data" in err
    assert "Traceback" not in err


def test_config_file_defaults_per_column_options_and_flag_overrides(tmp_path: Path) -> None:
    """JSON or YAML: flags win over the file; per column: ColumnConfig < the kind defaults < `columns`."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.csv").write_text("y,a,b,c\n1,2,x,3\n")
    yaml_text = """
data: data/d.csv            # relative to this file
model_name: from-file
target: y
epochs: 99
scaler: robust
outliers: iqr
unseen: other
row_norm: l2
optional: [b]
columns:
  a: {kind: numeric, scaler: minmax}
  c: {kind: numeric, outlier_action: drop, required: false, missing: median}
"""
    (tmp_path / "train.yaml").write_text(yaml_text)
    import yaml
    (tmp_path / "train.json").write_text(json.dumps(yaml.safe_load(yaml_text)))
    for name in ("train.yaml", "train.json"):
        args = build_parser().parse_args(["--config", str(tmp_path / name), "--epochs", "7", "--loss", "focal",
                                          "--scaler", "standard", "--encoding", "ordinal", "--boolean", ""])
        config = config_from_args(args)
        assert config.data == tmp_path / "data" / "d.csv"
        assert (config.model_name, config.epochs, config.loss, config.scaler, config.row_norm) == (
            "from-file", 7, "focal", "standard", "l2")  # flags over the file
        features = ds.resolve_features(ds.load_csv(config.data), config)
        assert features.configs == {
            "a": ColumnConfig(kind="numeric", scaler="minmax", outliers="iqr"),  # its own scaler wins over --scaler
            "c": ColumnConfig(kind="numeric", scaler="standard", outliers="iqr", outlier_action="drop",
                              required=False, missing="median"),
            "b": ColumnConfig(kind="categorical", required=False, unseen="other", encoding="ordinal"),
        }
        assert features.spec_config(config.row_norm).row_norm == "l2"
    # TrainingConfig.from_file: the same file, keyword overrides on top
    assert TrainingConfig.from_file(tmp_path / "train.yaml", epochs=3).epochs == 3


def test_numeric_columns_impute_values_beyond_the_far_out_fences_unless_told_otherwise(tmp_path: Path) -> None:
    """Given configs that leave `outliers` unset, turn it off, change the action, or set a column's own,
    When a numeric column's options are resolved,
    Then the default is IQR bounds at K=3 with impute; `none` turns it off; a config-wide action or K replaces
    the default's; a column naming its own `outliers` gets ColumnConfig's defaults for the rest (K 1.5, clip)."""
    def numeric(**settings: object) -> ColumnConfig:
        config = TrainingConfig(data=tmp_path / "d.csv", model_name="m", target="y", **settings)
        return config.column_config("a", "numeric")

    assert numeric() == ColumnConfig(kind="numeric", outliers="iqr", outlier_threshold=3.0, outlier_action="impute")
    assert numeric(outliers="none") == ColumnConfig(kind="numeric")
    assert numeric(outlier_action="clip", outlier_threshold=4.0) == ColumnConfig(
        kind="numeric", outliers="iqr", outlier_threshold=4.0, outlier_action="clip")
    assert numeric(columns={"a": ColumnConfig(kind="numeric", outliers="iqr")}) == ColumnConfig(
        kind="numeric", outliers="iqr")
    assert TrainingConfig(data=tmp_path / "d.csv", model_name="m", target="y").column_config(
        "c", "categorical") == ColumnConfig(kind="categorical")


@pytest.mark.parametrize(("content", "argv", "message"), [
    ("epochs: 0\n", [], "train.yaml: epochs: Input should be greater than or equal to 1"),
    ("epochs: 5\n", ["--epochs", "0"], "--epochs: Input should be greater than or equal to 1"),
    ("epoch: 5\n", [], "train.yaml: epoch: Extra inputs are not permitted"),
    ("columns: {a: {kind: numeric, missing: constant}}\n", [],
     "train.yaml: columns.a: missing='constant' needs fill_value"),
    ("columns: {a: {scaler: robust}}\n", [], "train.yaml: columns.a.kind: Field required"),
    ("[1, 2]\n", [], "--config: config file 'train.yaml' must hold a mapping of settings, not list"),
    ("epochs: [\n", [], "--config: config file 'train.yaml' is not valid YAML"),
    ("model_name: x\n", ["--target", "y"], "--data is required (give --data, or `data` in the --config file)"),
])
def test_config_file_errors_name_the_file_and_key(tmp_path: Path, content: str, argv: list[str], message: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(content)
    base = ["--data", str(PENGUINS), "--model-name", "m", "--target", "species"]
    if "--data is required" in message:
        base = []
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(path), *base, *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message.replace("train.yaml", str(path)) in err, err
    assert "Traceback" not in err


@pytest.mark.training
def test_cli_trains_publishes_and_promotes_against_moto(world: World, capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path) -> None:
    config = tmp_path / "penguins.yaml"
    config.write_text(f"data: {PENGUINS}\nmodel_name: penguins-cli\ntarget: species\nexclude: [year]\n"
                      "optional: [sex]\nepochs: 200\noptimizer: sgd\nscaler: robust\n")
    code = main(["--config", str(config), "--model", "mlp", "--hidden-units", "16,8", "--epochs", "15",
                 "--batch-size", "16", "--optimizer", "rmsprop", "--l2", "0.0001", "--dropout", "0.1",
                 "--early-stopping", "5", "--seed", "3", "--promote", "staging"])  # bucket/table from MAAS_* env
    out = capsys.readouterr().out
    assert code == 0, out
    assert "done: penguins-cli version 1 (multiclass)" in out
    assert world.registry.resolve_alias("penguins-cli", "staging").version == "1"
    m = world.store.load_manifest("penguins-cli", "1")
    assert m.training["hyperparameters"] == {
        "hidden_units": [16, 8], "epochs": 15, "batch_size": 16, "learning_rate": 0.01, "optimizer": "rmsprop",
        "l2": 0.0001, "dropout": 0.1, "early_stopping_patience": 5, "seed": 3, "test_size": 0.2, "val_size": 0.1,
        "loss": "crossentropy"}
    assert m.training["preprocessing"]["columns"]["body_mass_g"]["scaler"] == "robust"  # from the file
    assert m.metrics["accuracy"] > 0.85
