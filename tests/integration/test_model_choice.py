"""Baselines and the choice of model (maas_training.candidates) against moto: every run records the trivial and
linear baselines on its split, `auto` chooses on validation, and a model that does not beat the trivial
baseline is not published unless asked.

The messy diabetes case (maas_training.datasets.diabetes) is the one a new user hit: a network that lost to a
linear regression and was published without a word.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from maas_core.manifest import CandidateResult, Candidates, Manifest
from maas_core.preprocess import PreprocessSpec
from maas_core.preprocess.features import NumericFeature
from maas_core.registry import Registry
from maas_core.store import BundleStore
from maas_training.candidates import candidate_kinds
from maas_training.cli import main
from maas_training.datasets.diabetes import diabetes_config, write_messy_diabetes
from maas_training.job import run
from tests.integration.test_training import moto_model_account

BUCKET = "choice-test-models"
TABLE = "choice-test-registry"


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[BundleStore, Registry]]:
    """Given one moto account for the module, with the model bucket and the registry table."""
    with moto_model_account(BUCKET, TABLE):
        yield BundleStore(BUCKET), Registry(TABLE)


def noise_csv(path: Path, n: int = 120) -> Path:
    """A regression target that is pure noise: no model beats the training mean."""
    rng = np.random.default_rng(1)
    rows = [f"{a:.4f},{b:.4f},{y:.4f}" for a, b, y in rng.normal(size=(n, 3))]
    path.write_text("a,b,y\n" + "\n".join(rows) + "\n")
    return path


def test_candidate_kinds_fit_the_data() -> None:
    """Given the model settings, When the candidates are listed, Then auto is linear + mlp on features and
    bow + lstm on text, a named model is alone, and one that does not suit the data is refused."""
    assert candidate_kinds("auto", is_text=False) == ("linear", "mlp")
    assert candidate_kinds("auto", is_text=True) == ("bow", "lstm")
    assert candidate_kinds("mlp", is_text=False) == ("mlp",)
    with pytest.raises(ValueError, match="model 'lstm' does not suit feature columns; use auto, linear or mlp"):
        candidate_kinds("lstm", is_text=False)


def test_old_manifests_without_candidates_still_load() -> None:
    """Given a manifest written before candidates existed, When it is loaded, Then candidates is None."""
    old = {"name": "m", "version": "1", "task": "regression", "input_schema": [],
           "model_input": {"name": "features", "dtype": "float32", "shape": [None, 2]},
           "model_output": {"name": "outputs", "dtype": "float32", "shape": [None, 1]}, "metrics": {"rmse": 1.0}}
    assert Manifest.model_validate(old).candidates is None


@pytest.mark.training
def test_messy_diabetes_with_defaults_publishes_a_model_no_worse_than_linear(
        world: tuple[BundleStore, Registry], tmp_path: Path) -> None:
    """Given the messy diabetes CSV (blanks, NA, padded numbers, duplicates, unit-slip outliers in bmi and bp, an
    extra category),
    When maas-train runs with its defaults,
    Then the numeric columns get IQR bounds (k=3) with outliers imputed, stored in the published spec, so a unit
    slip sent at serving is the training median; the choice is made by 5-fold CV between linear and mlp; the
    job publishes, and the published model's holdout RMSE is no worse than the linear baseline's, the manifest,
    the report and its Markdown table showing both."""
    store, registry = world
    data = write_messy_diabetes(tmp_path / "diabetes.csv")
    lines: list[str] = []
    config = diabetes_config(data, bucket=BUCKET, table=TABLE, quantize=False)
    assert config.model == "auto" and not config.allow_no_better and config.outliers is None
    manifest = run(config, progress=lines.append)

    c = manifest.candidates
    assert c is not None and c.selection == "cross-validation" and c.metric == "rmse"
    assert {"trivial", "linear", "mlp"} <= set(c.models)
    assert c.models["linear"].selection["folds"] == 5 and "rmse_std" in c.models["mlp"].selection
    assert manifest.metrics == c.models[c.chosen].metrics
    assert c.beats_trivial and not c.allowed_no_better
    assert c.models[c.chosen].metrics["rmse"] <= c.models["linear"].metrics["rmse"]  # the done-when
    assert c.margins["trivial"]["rmse"] == pytest.approx(
        c.models["trivial"].metrics["rmse"] - c.models[c.chosen].metrics["rmse"])
    assert any(line.startswith("  linear: rmse ") and "over 5 folds" in line for line in lines), lines

    bundle = store.load("diabetes", manifest.version)  # every listed file, each checked against its hash
    assert bundle.manifest.candidates == c
    spec = PreprocessSpec.from_json(bundle.files["preprocess.json"])
    bmi = next(f for f in spec.features if isinstance(f, NumericFeature) and f.name == "bmi")
    assert bmi.clip is not None and bmi.impute is not None and bmi.clip[0] < bmi.impute < bmi.clip[1] < 100
    record = {f.name: 1.0 for f in spec.features} | {"clinic": "north"}
    slipped, median = spec.transform([record | {"bmi": 2500.0}, record | {"bmi": bmi.impute}])
    assert slipped.tolist() == median.tolist()

    text = bundle.files["report.md"].decode()
    assert text.startswith(f"# diabetes version {manifest.version}\n")
    assert "| model | description | mae | rmse |" in text
    assert f"| **{c.chosen}** (chosen) |" in text and "| trivial | training mean |" in text


@pytest.mark.training
def test_a_model_no_better_than_the_mean_is_refused_then_published_when_allowed(
        world: tuple[BundleStore, Registry], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Given a target that is pure noise, When maas-train runs, Then it exits 3 naming the chosen and trivial
    metric values and publishes nothing; with --allow-no-better it publishes and the manifest says so."""
    store, registry = world
    argv = ["--data", str(noise_csv(tmp_path / "noise.csv")), "--model-name", "noise", "--target", "y",
            "--model", "linear", "--epochs", "30", "--no-quantize"]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "does not beat the trivial baseline (training mean) on the holdout: rmse " in err, err
    assert "--allow-no-better" in err and "Traceback" not in err
    assert "noise" not in {m["name"] for m in registry.list_models()}

    assert main([*argv, "--allow-no-better"]) == 0
    out = capsys.readouterr().out
    assert "published anyway (allow_no_better)" in out and "margin over trivial rmse -" in out, out
    c = store.load_manifest("noise", "1").candidates
    assert c is not None and c.selection == "fixed" and c.chosen == "linear"
    assert not c.beats_trivial and c.allowed_no_better and set(c.models) == {"trivial", "linear"}
    assert any(line.startswith("linear *") for line in c.lines())


CLASSIFIER_RECORD = Candidates(
    chosen="mlp", metric="log_loss", selection="cross-validation", beats_trivial=True, beats_linear=True,
    models={"trivial": CandidateResult(description="majority class (training class frequencies)", metrics={
                "accuracy": 0.4348, "precision_macro": 0.1449, "recall_macro": 0.3333, "log_loss": 1.054}),
            "linear": CandidateResult(description="logistic regression", metrics={
                "accuracy": 1.0, "precision_macro": 1.0, "recall_macro": 1.0, "log_loss": 0.03492},
                selection={"log_loss": 0.04282, "log_loss_std": 0.014, "folds": 5}, train_seconds=13.3),
            "mlp": CandidateResult(description="MLP [16, 8]", metrics={
                "accuracy": 1.0, "precision_macro": 1.0, "recall_macro": 1.0, "log_loss": 0.0002053},
                selection={"log_loss": 0.005881, "log_loss_std": 0.0074, "folds": 5}, train_seconds=19.5)},
    margins={"trivial": {"accuracy": 0.5652, "precision_macro": 0.8551, "recall_macro": 0.6667, "log_loss": 1.054},
             "linear": {"accuracy": 0.0, "precision_macro": 0.0, "recall_macro": 0.0, "log_loss": 0.03471}})


def test_the_printed_table_keeps_long_metric_names_apart() -> None:
    """Given a classifier's candidates (metric names longer than the values' width),
    When the job's table is printed, Then every header is its own word and each value sits under its header."""
    head, *rows = CLASSIFIER_RECORD.lines()[1:5]
    assert head.split() == ["model", "accuracy", "precision_macro", "recall_macro", "log_loss", "choice", "log_loss"]
    for name in ("precision_macro", "recall_macro", "log_loss"):
        end = head.index(name) + len(name)  # right-aligned: a value ends where its header does
        assert all(row[end - 1] != " " and row[end] == " " for row in rows), (name, rows)


def test_the_report_table_gives_each_model_its_holdout_metrics_and_the_chosen_ones_margin() -> None:
    """Given a classifier's candidates, When the report's Markdown table is written,
    Then it has one row per model with its holdout metrics, its CV score and the chosen model's margin over it,
    the chosen row marked."""
    text = CLASSIFIER_RECORD.markdown()
    assert "Chosen: **mlp**, by cross-validation on log_loss" in text
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert rows[0] == ("| model | description | accuracy | precision_macro | recall_macro | log_loss | "
                       "choice log_loss | margin of mlp | train s |")
    assert rows[2] == ("| trivial | majority class (training class frequencies) | 0.4348 | 0.1449 | 0.3333 | 1.054 | - "
                       "| accuracy +0.5652, precision_macro +0.8551, recall_macro +0.6667, log_loss +1.054 | - |")
    assert rows[3].startswith("| linear | logistic regression | 1 | 1 | 1 | 0.03492 | 0.04282 ± 0.014 | ")
    assert rows[3].endswith("log_loss +0.03471 | 13.3 |")
    assert rows[4] == "| **mlp** (chosen) | MLP [16, 8] | 1 | 1 | 1 | 0.0002053 | 0.005881 ± 0.0074 | chosen | 19.5 |"


def test_maas_versions_and_show_print_the_chosen_model_and_its_margins(aws_world, capsys) -> None:
    """Given a version trained with baselines and an older one without, When `maas versions` and `maas show` run,
    Then versions shows the chosen model with its margin over each baseline (the older one '-'), and show prints
    the candidates table on stderr, stdout staying the manifest's JSON."""
    from maas_cli.main import main as maas
    from maas_core.manifest import CandidateResult, Candidates
    from tests.integration.test_cli import SPEC, publish_version

    publish_version(aws_world, "diab", {"rmse": 60.0})
    version = aws_world.registry.next_version("diab")
    old = aws_world.store.load_manifest("diab", "1")
    models = {"trivial": CandidateResult(description="training mean", metrics={"rmse": 77.0, "r2": 0.0}),
              "linear": CandidateResult(description="linear regression", metrics={"rmse": 55.5, "r2": 0.46},
                                        selection={"rmse": 54.0, "rmse_std": 2.9, "folds": 5}, train_seconds=1.5),
              "mlp": CandidateResult(description="MLP [32, 16]", metrics={"rmse": 58.0, "r2": 0.4},
                                     selection={"rmse": 56.4, "rmse_std": 2.1, "folds": 5}, train_seconds=2.0)}
    record = Candidates(chosen="linear", metric="rmse", selection="cross-validation", models=models,
                        margins={"trivial": {"rmse": 21.5, "r2": 0.46}, "mlp": {"rmse": 2.5, "r2": 0.06}},
                        beats_trivial=True, beats_linear=None)
    manifest = old.model_copy(update={"version": version, "task": "regression", "labels": [],
                                      "metrics": models["linear"].metrics, "candidates": record})
    files = {"model.onnx": b"onnx bytes", "preprocess.json": SPEC.to_json().encode(), "report.json": b"{}"}
    aws_world.registry.register(aws_world.store.publish(manifest, files))
    prefix = ["--bucket", aws_world.bucket, "--table", aws_world.table]

    capsys.readouterr()
    assert maas([*prefix, "versions", "diab"]) == 0
    out = capsys.readouterr().out
    assert "MODEL (MARGIN OVER BASELINES)" in out
    assert "linear rmse +21.5 vs trivial, +2.5 vs mlp" in out
    assert out.splitlines()[-1].rstrip().endswith("-")  # version 1: trained before baselines

    assert maas([*prefix, "show", "diab"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["candidates"]["chosen"] == "linear"
    assert "holdout metrics of the models compared (choice by cross-validation):" in err
    assert any(line.startswith("linear *") and line.rstrip().endswith("54 ± 2.9") for line in err.splitlines()), err
    assert "margin of linear over trivial: rmse=+21.5 r2=+0.46" in err


def test_the_report_draws_the_models_compared() -> None:
    """Given a candidates record as the manifest stores it, When the report pictures are rendered, Then
    report_candidates.png is one of them, a real PNG."""
    from maas_training.report_plots import CANDIDATES, render_report_pngs

    record = {"chosen": "mlp", "metric": "log_loss", "selection": "cross-validation", "models": {
        "trivial": {"metrics": {"log_loss": 0.69}, "selection": {}},
        "linear": {"metrics": {"log_loss": 0.4}, "selection": {"log_loss": 0.42, "log_loss_std": 0.05}},
        "mlp": {"metrics": {"log_loss": 0.3}, "selection": {"log_loss": 0.33, "log_loss_std": 0.04}}}}
    pngs = render_report_pngs("binary", ["no", "yes"], np.array([0, 1, 1]), np.array([[0.2], [0.7], [0.9]]),
                              candidates=record)
    assert pngs[CANDIDATES].startswith(b"\x89PNG\r\n\x1a\n") and len(pngs[CANDIDATES]) > 5000


@pytest.mark.training
def test_a_bag_of_words_model_trains_exports_and_serves(world: tuple[BundleStore, Registry],
                                                        tmp_path: Path) -> None:
    """Given a small text dataset, When maas-train runs with --model bow, Then the bag-of-words model is
    exported (parity checked), published with its baselines and answers raw text through the predictor."""
    from maas_core.predictor import Predictor
    from maas_core.settings import Settings

    store, registry = world
    rng = np.random.default_rng(3)
    words = {"billing": ["invoice", "refund", "charge", "payment"], "shipping": ["parcel", "courier", "delivery"]}
    lines = ["message,topic"]
    for i in range(90):
        topic = ["billing", "shipping"][i % 2]
        lines.append(f"{' '.join(rng.choice(words[topic], 3))} please help {i},{topic}")
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    m = run(diabetes_config(tmp_path / "t.csv", model_name="topics-bow", target="topic", text=["message"],
                            model="bow", epochs=15, embed_dim=8, learning_rate=0.05, bucket=BUCKET, table=TABLE,
                            quantize=False), progress=lambda _: None)
    assert m.training["model_type"] == "bag-of-words" and m.training["onnx_parity_max_abs_diff"] < 1e-4
    c = m.candidates
    assert c is not None and c.selection == "fixed" and set(c.models) == {"trivial", "bow"} and c.beats_trivial
    answer = Predictor(Settings(model_bucket=BUCKET, registry_table=TABLE), registry, store).predict(
        "topics-bow", [{"message": "refund my invoice"}, {"message": "where is the courier"}], version="1").response
    assert [p.label for p in answer.predictions] == ["billing", "shipping"]
