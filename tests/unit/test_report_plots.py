"""Training report pictures (maas_training.report_plots), from synthetic holdout arrays: no training."""

from __future__ import annotations

import io
from itertools import product

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from PIL import Image

from maas_training.report_plots import (
    CONFUSION_MATRIX,
    RESIDUALS,
    ROC_CURVE,
    TRAINING_CURVES,
    render_report_pngs,
    report_pngs_or_none,
    roc_curve,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HISTORY = {"loss": [0.9, 0.6, 0.45, 0.4, 0.38], "val_loss": [0.95, 0.7, 0.55, 0.56, 0.6], "epochs_run": 5,
           "best_epoch": 3}
RNG = np.random.default_rng(7)


def binary_case(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    y = RNG.integers(0, 2, n)
    p = np.clip(0.5 + 0.6 * (y - 0.5) + RNG.normal(0, 0.2, n), 0, 1)
    return y, p.reshape(-1, 1)  # one sigmoid column, as a binary model outputs


def multiclass_case(k: int = 3, n: int = 150) -> tuple[np.ndarray, np.ndarray]:
    y = RNG.integers(0, k, n)
    logits = RNG.normal(0, 1, (n, k))
    logits[np.arange(n), y] += 2.0
    return y, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def assert_png(data: bytes, min_bytes: int = 10_000) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > min_bytes  # drawn, not an empty canvas
    image = Image.open(io.BytesIO(data))
    image.verify()
    width, height = image.size
    assert width >= 400 and height >= 400
    return width, height


@pytest.mark.parametrize(
    ("task", "labels", "case", "files"),
    [
        ("binary", ["no", "yes"], binary_case, {CONFUSION_MATRIX, ROC_CURVE, TRAINING_CURVES}),
        ("multiclass", ["Adelie", "Chinstrap", "Gentoo"], multiclass_case,
         {CONFUSION_MATRIX, ROC_CURVE, TRAINING_CURVES}),
        ("regression", [], lambda: (lambda y: (y, (y + RNG.normal(0, 30, len(y))).reshape(-1, 1)))(
            RNG.normal(4000, 600, 250)), {RESIDUALS, TRAINING_CURVES}),
    ],
)
def test_each_task_gets_its_pictures_as_real_pngs(task, labels, case, files) -> None:
    y, outputs = case()
    pngs = render_report_pngs(task, labels, y, outputs, HISTORY)
    assert set(pngs) == files
    assert all(name.startswith("report_") and name.endswith(".png") for name in pngs)
    for data in pngs.values():
        assert_png(data)


def test_without_a_history_there_are_no_training_curves() -> None:
    y, p = binary_case()
    assert set(render_report_pngs("binary", ["no", "yes"], y, p, None)) == {CONFUSION_MATRIX, ROC_CURVE}
    assert set(render_report_pngs("binary", ["no", "yes"], y, p, {"loss": [], "best_epoch": 0})) == {
        CONFUSION_MATRIX, ROC_CURVE}


def test_binary_two_column_probabilities_draw_the_same_pictures_as_one_sigmoid_column() -> None:
    y, p = binary_case()
    one = render_report_pngs("binary", ["no", "yes"], y, p)
    two = render_report_pngs("binary", ["no", "yes"], y, np.hstack([1 - p, p]))
    assert one == two  # and the same inputs give the same bytes (no timestamp in the PNGs)


def test_many_classes_and_a_class_missing_from_the_holdout_still_draw() -> None:
    labels = [f"a_long_shared_prefix_for_every_class_{i}" for i in range(25)]
    y, probs = multiclass_case(k=25, n=400)
    y[y == 24] = 0  # class 24 never occurs: no ROC curve for it, but no failure either
    pngs = render_report_pngs("multiclass", labels, y, probs)
    width, height = assert_png(pngs[CONFUSION_MATRIX])
    assert width > 1000 and height > 1000  # the matrix grows with the number of classes
    assert_png(pngs[ROC_CURVE])


def test_a_holdout_of_one_row_draws() -> None:
    pngs = render_report_pngs("regression", [], np.array([3.0]), np.array([[2.5]]), {"loss": [1.0]})
    assert set(pngs) == {RESIDUALS, TRAINING_CURVES}


@pytest.mark.parametrize(
    ("task", "labels", "y", "outputs", "words"),
    [
        ("binary", ["no", "yes"], np.zeros(3), np.zeros((4, 1)), "3 targets but 4 outputs"),
        ("multiclass", ["a", "b", "c"], np.zeros(4), np.zeros((4, 2)), "2 output columns for 3 labels"),
    ],
)
def test_inconsistent_arrays_are_refused(task, labels, y, outputs, words) -> None:
    with pytest.raises(ValueError, match=words):
        render_report_pngs(task, labels, y, outputs)


def test_the_training_job_wrapper_reports_a_failure_instead_of_raising() -> None:
    said: list[str] = []
    assert report_pngs_or_none("binary", ["no", "yes"], np.zeros(3), np.zeros((4, 1)), None, said.append) == {}
    assert "report pictures skipped" in said[0] and "3 targets but 4 outputs" in said[0]
    y, p = binary_case()
    assert set(report_pngs_or_none("binary", ["no", "yes"], y, p, HISTORY, said.append)) == {
        CONFUSION_MATRIX, ROC_CURVE, TRAINING_CURVES}


# --- the ROC numbers behind the picture -------------------------------------------------------------


def pairwise_auc(y: np.ndarray, s: np.ndarray) -> float:
    """AUC as the Mann-Whitney statistic: P(score of a positive > score of a negative), ties count half."""
    pos, neg = s[y], s[~y]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_roc_auc_matches_the_pairwise_definition_with_ties() -> None:
    y = RNG.integers(0, 2, 120).astype(bool)
    s = np.round(RNG.random(120) + 0.3 * y, 1)  # rounded: many ties
    fpr, tpr, auc = roc_curve(y, s)
    assert auc == pytest.approx(pairwise_auc(y, s), abs=1e-12)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def test_roc_extremes() -> None:
    y = np.array([0, 0, 1, 1], bool)
    assert roc_curve(y, np.array([0.1, 0.2, 0.8, 0.9]))[2] == 1.0
    assert roc_curve(y, np.array([0.9, 0.8, 0.2, 0.1]))[2] == 0.0
    assert roc_curve(y, np.full(4, 0.5))[2] == 0.5
    assert roc_curve(np.ones(4, bool), np.arange(4.0)) is None  # no negatives: no curve


def test_other_per_epoch_metrics_get_their_own_panel_and_non_series_entries_are_ignored() -> None:
    y, p = binary_case()
    history = {**HISTORY, "accuracy": [0.6, 0.7, 0.8, 0.82, 0.85], "val_accuracy": [0.6, 0.68, 0.75, 0.74, 0.74],
               "note": "not a series", "empty": []}
    one_panel = render_report_pngs("binary", ["no", "yes"], y, p, HISTORY)[TRAINING_CURVES]
    two_panels = render_report_pngs("binary", ["no", "yes"], y, p, history)[TRAINING_CURVES]
    assert assert_png(two_panels)[0] > 1.5 * assert_png(one_panel)[0]  # twice as wide: loss beside accuracy
