"""Explanations of external models name their real baseline: a declared record, background data, or none (422).

The model is a hand-written linear regression y = x @ w + b, so every attribution is known exactly:
attribution_j = w_j * (x_j - baseline_j)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from maas_core.errors import UnprocessableError
from maas_core.settings import get_settings
from tests.integration.test_cli import Cli
from tests.integration.test_registration import assert_nothing_written, linear_graph
from tests.lambda_events import assert_error, call, load_function

W = np.array([[2.0], [-1.0], [0.5]])
B = np.array([0.25])
FIELDS = ["a", "b", "c"]
RECORD = {"a": 1.0, "b": 4.0, "c": -2.0}


@pytest.fixture
def handler(aws_world, monkeypatch):
    """Given the predict function with a fresh process state, pointed at the moto world."""
    get_settings.cache_clear()
    yield load_function("predict")
    get_settings.cache_clear()


@pytest.fixture
def register(aws_world, capsys, tmp_path: Path):
    """`maas register lin --onnx ... --declaration ...` with the declaration's extra keys and CLI arguments."""
    cli = Cli(aws_world, capsys)
    onnx_file = tmp_path / "lin.onnx"
    onnx_file.write_bytes(linear_graph(W, B, softmax=False, in_name="x", out_name="y"))

    def run(*args: str, **declared: Any) -> tuple[int, str, str]:
        declaration = tmp_path / "lin.json"
        declaration.write_text(json.dumps({"task": "regression", "input_name": "x", "output_name": "y",
                                           "features": [{"name": n} for n in FIELDS], **declared}))
        return cli("register", "lin", "--onnx", str(onnx_file), "--declaration", str(declaration),
                   "--promote", "prod", *args)

    return run


def explain(handler, records: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    return call(handler, "POST", "/v1/models/lin/predict", body={"records": records}, query={"explain": "true"})


def expected_attributions(record: dict[str, Any], base: dict[str, float]) -> dict[str, float]:
    return {n: float(W[j, 0] * (record[n] - base[n])) for j, n in enumerate(FIELDS)}


def test_without_a_baseline_predictions_answer_and_explanations_are_a_422_saying_how(handler, register) -> None:
    """Given an external model registered with neither a baseline record nor background data,
    When it is asked to predict, and to explain,
    Then the prediction answers, and the explanation is a 422 naming both ways to give it a baseline."""
    assert register()[0] == 0
    status, body = call(handler, "POST", "/v1/models/lin/predict", body={"records": [RECORD]})
    assert status == 200 and body["predictions"][0]["value"] == pytest.approx(2.0 - 4.0 - 1.0 + 0.25)

    status, body = explain(handler, [RECORD])
    assert status == 422
    assert_error(body, "unprocessable", "registered without a baseline", "baseline:", "--background")


def test_a_declared_baseline_record_is_what_fields_are_occluded_with(handler, register, aws_world) -> None:
    """Given an external model whose declaration gives a baseline record,
    When a record is explained over the API,
    Then the explanation says `declared` and its attributions are w_j * (x_j - declared_j), exactly."""
    base = {"a": 0.5, "b": 1.0, "c": 3.0}
    assert register(baseline=base)[0] == 0
    assert aws_world.store.load("lin", "1").manifest.baseline == {"source": "declared", "record": base}

    status, body = explain(handler, [RECORD])
    assert status == 200, body
    explanation = body["predictions"][0]["explanation"]
    assert explanation["baseline"] == "declared"
    assert explanation["attributions"] == pytest.approx(expected_attributions(RECORD, base), abs=1e-6)
    all_at_baseline = float((np.array([list(base.values())]) @ W + B)[0, 0])
    assert explanation["baseline_output"] == pytest.approx(all_at_baseline, abs=1e-6)


def test_background_data_gives_the_training_statistics_and_the_means_are_the_baseline(
        handler, register, aws_world, tmp_path: Path) -> None:
    """Given an external model registered with --background, a CSV sample of its training data,
    When a record is explained over the API,
    Then the manifest holds the training job's statistics of that file (also for drift), the explanation
    says `background`, and fields are occluded with the columns' means."""
    rows = np.random.default_rng(3).normal(size=(50, 3)) * [1.0, 2.0, 3.0] + [1.0, -1.0, 0.5]
    background = tmp_path / "background.csv"
    background.write_text("a,b,c,unused\n" + "".join(f"{r[0]},{r[1]},{r[2]},x\n" for r in rows))
    code, _, err = register("--background", str(background))
    assert code == 0, err

    stats = aws_world.store.load("lin", "1").manifest.baseline
    assert stats["source"] == "background" and stats["rows"] == 50 and set(stats["features"]) == set(FIELDS)
    assert stats["features"]["a"]["kind"] == "numeric" and stats["features"]["a"]["bin_edges"]
    means = dict(zip(FIELDS, rows.mean(axis=0).tolist(), strict=True))
    assert {n: stats["features"][n]["mean"] for n in FIELDS} == pytest.approx(means)

    status, body = explain(handler, [RECORD])
    assert status == 200, body
    explanation = body["predictions"][0]["explanation"]
    assert explanation["baseline"] == "background"
    assert explanation["attributions"] == pytest.approx(expected_attributions(RECORD, means), abs=1e-5)


@pytest.mark.parametrize(("declared", "args", "words"), [
    ({"baseline": {"a": 1.0, "b": 2.0}}, [], ["no value for c"]),
    ({"baseline": {"a": 1.0, "b": 2.0, "c": 3.0, "d": 0.0}}, [], ["d is not an input field"]),
    ({"baseline": {"a": 1.0, "b": "many", "c": 3.0}}, [], ["baseline record is not a valid input record"]),
    ({}, ["--background", "{no_c}"], ["has no column for input field(s) c"]),
    ({}, ["--background", "{bad_value}"], ["background data"]),
    ({"baseline": {"a": 1.0, "b": 2.0, "c": 3.0}}, ["--background", "{good}"], ["not both"]),
])
def test_a_baseline_that_does_not_fit_the_fields_is_refused_and_nothing_is_written(
        register, aws_world, tmp_path: Path, declared: dict[str, Any], args: list[str], words: list[str]) -> None:
    """Given a baseline record or background file that does not give every input field a valid value,
    When the model is registered,
    Then registration fails (exit 1) naming the problem, and nothing is written."""
    files = {"no_c": "a,b\n1,2\n", "bad_value": "a,b,c\n1,2,three\n", "good": "a,b,c\n1,2,3\n"}
    for name, text in files.items():
        (tmp_path / f"{name}.csv").write_text(text)
    args = [str(tmp_path / f"{a[1:-1]}.csv") if a.startswith("{") else a for a in args]
    code, _, err = register(*args, **declared)
    assert code == 1
    for word in words:
        assert word in err
    assert_nothing_written(aws_world)


def test_the_declaration_validates_the_baseline_as_a_record() -> None:
    """Given a declaration whose baseline is not an object, When it is parsed, Then it is a 422 naming baseline."""
    from maas_core.registration import ModelDeclaration

    with pytest.raises(UnprocessableError, match="baseline"):
        ModelDeclaration.parse({"task": "regression", "features": [{"name": "a"}], "baseline": [1.0]})
