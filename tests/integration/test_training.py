"""The training job against moto: data handling, a real Keras -> ONNX run, the published bundle,
serving it, training/serving matrix parity, other tasks, and the CLI.

Tests marked `training` really train (seconds each); one penguins model is trained per module and
shared. Everything runs offline in a moto account.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from moto import mock_aws

from maas_core import aws
from maas_core.manifest import MANIFEST_FILE, MODEL_FILE, PREPROCESS_FILE, REPORT_FILE, Manifest, sha256_hex
from maas_core.predictor import Predictor
from maas_core.preprocess import PreprocessSpec
from maas_core.registry import Registry
from maas_core.settings import Settings
from maas_core.store import BundleStore
from maas_training import data as ds
from maas_training.cli import main
from maas_training.config import TrainingConfig
from maas_training.datasets import PENGUINS, penguins_config
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


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """Given one moto account for the module, with the model bucket and the registry table."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                           "MAAS_MODEL_BUCKET": BUCKET, "MAAS_REGISTRY_TABLE": TABLE,
                           "MAAS_TF_THREADS": "2"}.items():
            mp.setenv(key, value)
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        mp.delenv("AWS_PROFILE", raising=False)
        with mock_aws():
            aws.reset_clients()
            boto3.client("s3").create_bucket(Bucket=BUCKET)
            boto3.client("dynamodb").create_table(
                TableName=TABLE,
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                      {"AttributeName": "sk", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            )
            yield World(BUCKET, TABLE, BundleStore(BUCKET), Registry(TABLE))
            aws.reset_clients()


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


def test_csv_missing_values_and_feature_inference() -> None:
    columns = ds.load_csv(PENGUINS)
    assert ds.n_rows(columns) == 344
    assert columns["bill_length_mm"][3] is None and columns["sex"][3] is None  # 'NA' -> None
    features = ds.resolve_features(columns, "species", None, None, exclude=["year"], optional=["sex"])
    assert features.numeric == MEASURES
    assert features.categorical == ["island", "sex"]
    assert ds.infer_task(columns["species"]) == "multiclass"
    assert ds.infer_task(columns["sex"]) == "binary"
    assert ds.infer_task(columns["body_mass_g"]) == "regression"


def test_cleaning_drops_missing_target_duplicates_and_missing_required(tmp_path: Path) -> None:
    csv = tmp_path / "d.csv"
    csv.write_text("y,a,b\n1,2,x\n1,2,x\n,3,x\nNA,3,y\n0,,x\n0,4,\n1, 5 ,z\n")
    columns = ds.load_csv(csv)
    features = ds.resolve_features(columns, "y", None, None, optional=["b"])
    assert (features.numeric, features.categorical) == (["a"], ["b"])
    kept, report = ds.clean(columns, "y", features)
    assert report.as_dict() == {"rows_loaded": 7, "dropped_missing_target": 2, "dropped_duplicates": 1,
                                "dropped_missing_required": {"a": 1}, "rows_kept": 3}
    assert kept == {"y": ["1", "0", "1"], "a": ["2", "4", "5"], "b": ["x", None, "z"]}


def test_split_is_seeded_disjoint_and_stratified() -> None:
    classes = np.array([0] * 150 + [1] * 70 + [2] * 30)
    a = ds.split_indices(len(classes), 0.2, 0.1, seed=7, classes=classes)
    b = ds.split_indices(len(classes), 0.2, 0.1, seed=7, classes=classes)
    c = ds.split_indices(len(classes), 0.2, 0.1, seed=8, classes=classes)
    assert all(np.array_equal(x, y) for x, y in zip((a.train, a.val, a.test), (b.train, b.val, b.test)))
    assert not np.array_equal(a.test, c.test)
    everything = np.concatenate([a.train, a.val, a.test])
    assert np.array_equal(np.sort(everything), np.arange(len(classes)))
    assert np.bincount(classes[a.test]).tolist() == [30, 14, 6]
    assert np.bincount(classes[a.val]).tolist() == [15, 7, 3]


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
    ({"task": "binary"}, "task binary needs a target with 2 classes; 'species' has 3: Adelie, Chinstrap, Gentoo"),
    ({"optional": [], "numeric": MEASURES, "categorical": ["island", "sex"], "target": "island",
      "test_size": 0.5, "val_size": 0.45}, "test_size + val_size = 0.95 leaves too few rows"),
    ({"model_name": "no spaces"}, "model_name 'no spaces' must be 1-64 letters"),
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
    assert world.keys(prefix) == [prefix + f for f in sorted([MANIFEST_FILE, MODEL_FILE, PREPROCESS_FILE, REPORT_FILE])]
    s3 = boto3.client("s3")
    stored = Manifest.model_validate_json(s3.get_object(Bucket=world.bucket, Key=prefix + MANIFEST_FILE)["Body"].read())
    assert stored == m
    assert set(stored.files) == {MODEL_FILE, PREPROCESS_FILE, REPORT_FILE}
    for name, entry in stored.files.items():
        body = s3.get_object(Bucket=world.bucket, Key=prefix + name)["Body"].read()
        assert (sha256_hex(body), len(body)) == (entry.sha256, entry.size), name

    assert world.registry.get_version("penguins", "1")["labels"] == m.labels
    assert world.registry.resolve_alias("penguins", "prod").version == "1"

    assert m.metrics["accuracy"] > 0.85 and m.metrics["f1_macro"] > 0.85
    assert m.training["onnx_parity_max_abs_diff"] < 1e-4
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
    assert any("published penguins version 1" in line for line in trained.progress)


@pytest.mark.training
def test_serving_the_trained_bundle_reproduces_the_holdout_accuracy(world: World, trained: Trained) -> None:
    prepared = prepare(trained.config, progress=lambda _: None)
    records = json_records(prepared.test_columns, prepared.spec)
    response = world.predictor().predict("penguins", records)  # alias prod
    assert (response.version, response.alias) == ("1", "prod")
    labels = [p.label for p in response.predictions]
    assert set(labels) <= set(trained.manifest.labels)
    truth = prepared.test_columns["species"]
    accuracy = np.mean([p == t for p, t in zip(labels, truth)])
    assert accuracy == pytest.approx(trained.manifest.metrics["accuracy"])
    for p in response.predictions:
        assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-5)

    gentoo = {"island": "Biscoe", "bill_length_mm": 47.5, "bill_depth_mm": 14.2, "flipper_length_mm": 217,
              "body_mass_g": 4875}  # no sex: optional
    assert world.predictor().predict("penguins", [gentoo], version="1").predictions[0].label == "Gentoo"


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
    value = world.predictor().predict("penguin-mass", [record], version=m.version).predictions[0].value
    assert 4000 < value < 7000


@pytest.mark.training
def test_a_binary_model_trains_exports_and_serves(world: World) -> None:
    m = run(world.config(model_name="penguin-sex", target="sex", optional=[], epochs=25), progress=lambda _: None)
    assert (m.task, m.labels, m.model_output.shape) == ("binary", ["female", "male"], [None, 1])
    assert m.metrics["accuracy"] > 0.75
    assert m.training["onnx_parity_max_abs_diff"] < 1e-4
    record = {"species": "Gentoo", "island": "Biscoe", "bill_length_mm": 50.0, "bill_depth_mm": 16.3,
              "flipper_length_mm": 230, "body_mass_g": 5700}
    p = world.predictor().predict("penguin-sex", [record], version=m.version).predictions[0]
    assert p.label in m.labels and set(p.probabilities) == {"female", "male"}
    assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.training
def test_a_failed_parity_check_publishes_nothing(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import maas_training.model as nn

    real = nn.predict
    monkeypatch.setattr(nn, "predict", lambda model, x: real(model, x) + 1e-3)  # Keras and ONNX now disagree
    with pytest.raises(RuntimeError, match="ONNX output differs from Keras by up to .* Nothing was published"):
        run(world.config(model_name="penguin-broken", epochs=2), progress=lambda _: None)
    assert world.keys("models/penguin-broken/") == []
    assert "penguin-broken" not in [m["name"] for m in world.registry.list_models()]


# --- CLI ------------------------------------------------------------------------------------------


CLI_BASE = ["--data", str(PENGUINS), "--model-name", "cli", "--target", "species"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--model-name", "x", "--target", "species"], "the following arguments are required: --data"),
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


@pytest.mark.training
def test_cli_trains_publishes_and_promotes_against_moto(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--data", str(PENGUINS), "--model-name", "penguins-cli", "--target", "species",
                 "--exclude", "year", "--optional", "sex", "--hidden-units", "16,8", "--epochs", "15",
                 "--batch-size", "16", "--optimizer", "rmsprop", "--l2", "0.0001", "--dropout", "0.1",
                 "--early-stopping", "5", "--seed", "3", "--promote", "staging"])  # bucket/table from MAAS_* env
    out = capsys.readouterr().out
    assert code == 0, out
    assert "done: penguins-cli version 1 (multiclass)" in out
    assert world.registry.resolve_alias("penguins-cli", "staging").version == "1"
    m = world.store.load_manifest("penguins-cli", "1")
    assert m.training["hyperparameters"] == {
        "hidden_units": [16, 8], "epochs": 15, "batch_size": 16, "learning_rate": 0.01, "optimizer": "rmsprop",
        "l2": 0.0001, "dropout": 0.1, "early_stopping_patience": 5, "seed": 3, "test_size": 0.2, "val_size": 0.1}
    assert m.metrics["accuracy"] > 0.85
