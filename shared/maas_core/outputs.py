"""Model outputs -> what callers are told: class probabilities, and which records' outputs are unusable.

The predict API and batch jobs share these, so a record the API refuses is a row error in batch, for
the same reason in the same words.
"""

from __future__ import annotations

import numpy as np

from maas_core.errors import UnprocessableError
from maas_core.preprocess.spec import MAX_REPORTED_ERRORS

# a finite input can still overflow inside the graph (3e38 times a weight of 2 is inf in float32)
NON_FINITE_REASON = ("the model's output for this record is not finite: its values are far outside the "
                     "range the model was trained on")


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
