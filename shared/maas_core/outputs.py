"""Model outputs -> what callers are told: values, labels and probabilities, and which records' outputs
are unusable.

The predict API and batch jobs share these: a prediction has the same label and probabilities (rounded to
PROBABILITY_DIGITS) in an API answer and in a batch line, and a record the API refuses is a row error in
batch, for the same reason in the same words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from maas_core.errors import UnprocessableError
from maas_core.preprocess.spec import MAX_REPORTED_ERRORS

# a finite input can still overflow inside the graph (3e38 times a weight of 2 is inf in float32)
NON_FINITE_REASON = ("the model's output for this record is not finite: its values are far outside the "
                     "range the model was trained on")
PROBABILITY_DIGITS = 6


@dataclass(frozen=True)
class Predictions:
    """A model's finite outputs as callers are told them, one entry per record, as plain Python values:
    a regression's `values`, or a classifier's `best` (index of the most probable of `labels`) and
    `probabilities` (per label, in `labels` order, rounded to PROBABILITY_DIGITS)."""

    regression: bool
    labels: Sequence[str]  # the manifest's labels (none for a regression)
    values: list[float]
    best: list[int]
    probabilities: list[list[float]]

    def outputs(self, ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Per record, its prediction's fields: {"value"}, or {"label", "probabilities": {label: p}}; with
        `ids`, each after its {"id"} (the predict API's Prediction). Built in one pass: the predict path's cost."""
        labels = self.labels
        if ids is None:
            if self.regression:
                return [{"value": v} for v in self.values]
            return [{"label": labels[b], "probabilities": dict(zip(labels, p, strict=True))}
                    for b, p in zip(self.best, self.probabilities, strict=True)]
        if self.regression:
            return [{"id": i, "value": v} for i, v in zip(ids, self.values, strict=True)]
        return [{"id": i, "label": labels[b], "probabilities": dict(zip(labels, p, strict=True))}
                for i, b, p in zip(ids, self.best, self.probabilities, strict=True)]


def shape_outputs(task: str, labels: Sequence[str], outputs: np.ndarray) -> Predictions:
    """Model outputs (one row per record, all finite: see `nonfinite_rows`) -> their Predictions."""
    if len(outputs) == 0:  # (0, k) does not reshape to (0, -1)
        return Predictions(task == "regression", labels, [], [], [])
    if task == "regression":
        return Predictions(True, labels, outputs.reshape(len(outputs), -1)[:, 0].astype(float).tolist(), [], [])
    probs = class_probabilities(task, outputs)
    return Predictions(False, labels, [], probs.argmax(axis=1).tolist(),
                       np.round(probs, PROBABILITY_DIGITS).tolist())


def class_probabilities(task: str, outputs: np.ndarray) -> np.ndarray:
    """Model outputs -> (n, classes) probabilities. A binary model may emit one sigmoid column."""
    out = outputs.reshape(len(outputs), -1).astype(np.float64)
    if task == "binary" and out.shape[1] == 1:
        return np.hstack([1.0 - out, out])
    return out


def nonfinite_rows(outputs: np.ndarray) -> np.ndarray:
    """Per output row: True where any of its values is NaN or infinite."""
    return ~np.isfinite(outputs.reshape(len(outputs), -1)).all(axis=1)


def refuse_nonfinite(bad: np.ndarray) -> None:
    """A 422 naming each record (by index) whose output is not finite; nothing when there is none."""
    indices = np.flatnonzero(bad).tolist()
    if not indices:
        return
    raise UnprocessableError(
        f"{len(indices)} of {len(bad)} records give a model output that is not finite: their values are far "
        "outside the training range",
        [{"index": i, "field": None, "reason": NON_FINITE_REASON} for i in indices[:MAX_REPORTED_ERRORS]],
        details_total=len(indices))
