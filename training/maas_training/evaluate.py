"""Holdout metrics (numpy only) and the training baseline that drift is measured against.

Baseline format (stored in the manifest under `baseline`):

    {"rows": n, "bins": 10, "features": {
        "<numeric>":     {"kind": "numeric", "count", "missing", "mean", "std", "min", "max",
                          "bin_edges": [e0 .. ek], "proportions": [p1 .. pk]},
        "<categorical>": {"kind": "categorical", "count", "missing", "frequencies": {category: share}},
        "<boolean>":     {"kind": "boolean", "count", "missing", "frequencies": {"false": share, "true": share}},
        "<text>":        {"kind": "text", "count", "missing", "oov_rate",
                          "tokens": {numeric statistics of the number of tokens per text},
                          "oov": {"rate", "tokens", "source": "validation"}}}}

Numeric bins: edges are training quantiles (ties merged, so k <= 10). A value belongs to bin
`searchsorted(bin_edges[1:-1], value, side="right")`: the first and last bins are open-ended, so
serving values outside the training range still land in a bin. Proportions are over non-missing
training values and sum to 1; categorical shares likewise (unseen categories at serving time are
a drift signal of their own). Text: the token counts are binned like a numeric feature, and
`oov_rate` is the share of training tokens outside the fitted vocabulary; `oov.rate` is the same share
over the validation split's texts, which the vocabulary was not fitted on, so it is what a serving
population like the training data shows (the training split's own rate is near 0 by construction).
Serving compares against `oov.rate` (maas_core.monitoring.quality): a rising rate means callers write
about new things.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from maas_core.preprocess import TextFeature
from maas_core.preprocess import text as txt
from maas_core.preprocess.values import to_bool

BASELINE_BINS = 10
_EPS = 1e-15


def classification_metrics(y_true: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """accuracy, macro precision / recall / F1 (over all classes; 0 where undefined), log loss."""
    probs = np.asarray(probabilities, np.float64)
    k = probs.shape[1]
    y_true = np.asarray(y_true, np.int64)
    y_pred = probs.argmax(axis=1)
    precision, recall, f1 = [], [], []
    for c in range(k):
        tp = float(np.sum((y_pred == c) & (y_true == c)))
        pred_c = float(np.sum(y_pred == c))
        true_c = float(np.sum(y_true == c))
        p = tp / pred_c if pred_c else 0.0
        r = tp / true_c if true_c else 0.0
        precision.append(p)
        recall.append(r)
        f1.append(2 * p * r / (p + r) if p + r else 0.0)
    clipped = np.clip(probs[np.arange(len(y_true)), y_true], _EPS, 1.0)
    return {
        "accuracy": float(np.mean(y_pred == y_true)),
        "precision_macro": float(np.mean(precision)),
        "recall_macro": float(np.mean(recall)),
        "f1_macro": float(np.mean(f1)),
        "log_loss": float(-np.mean(np.log(clipped))),
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R^2 (R^2 is 0 for a constant target that is not predicted exactly)."""
    y_true = np.asarray(y_true, np.float64).ravel()
    y_pred = np.asarray(y_pred, np.float64).ravel()
    err = y_pred - y_true
    ss_res = float(np.sum(err**2))
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2))), "r2": float(r2)}


def probabilities(task: str, outputs: np.ndarray) -> np.ndarray:
    """Model outputs -> (n, classes); a binary model's single sigmoid column becomes [1-p, p]."""
    out = np.asarray(outputs, np.float64).reshape(len(outputs), -1)
    if task == "binary" and out.shape[1] == 1:
        return np.hstack([1.0 - out, out])
    return out


def bin_index(edges: Sequence[float], values: np.ndarray) -> np.ndarray:
    """The baseline bin of each value (see the module docstring)."""
    return np.searchsorted(np.asarray(edges, np.float64)[1:-1], values, side="right")


def baseline_statistics(
    columns: Mapping[str, Sequence[str | None]],
    numeric: Sequence[str],
    categorical: Sequence[str],
    bins: int = BASELINE_BINS,
    boolean: Sequence[str] = (),
    text: TextFeature | None = None,
    holdout: Mapping[str, Sequence[str | None]] | None = None,
) -> dict[str, Any]:
    """Per-feature statistics of the raw training columns, for drift detection at serving time;
    `holdout` (the validation columns) gives the text field's OOV rate on unseen texts."""
    n = len(next(iter(columns.values()), []))
    features: dict[str, Any] = {}
    for name in numeric:
        values = np.array([float(v) for v in columns[name] if v is not None], np.float64)
        features[name] = {"kind": "numeric", "count": int(values.size), "missing": n - int(values.size),
                          **_numeric_summary(values, bins)}
    for name in categorical:
        present = [v for v in columns[name] if v is not None]
        features[name] = {"kind": "categorical", "count": len(present), "missing": n - len(present),
                          "frequencies": _frequencies(present)}
    for name in boolean:
        values, missing, _ = to_bool(columns[name])
        present = ["true" if v else "false" for v in values[~missing]]
        features[name] = {"kind": "boolean", "count": len(present), "missing": n - len(present),
                          "frequencies": _frequencies(present)}
    if text is not None:
        present_texts = [v for v in columns[text.name] if isinstance(v, str)]
        tokens = [txt.tokenize(v, text.lowercase, text.strip_punctuation) for v in present_texts]
        known = set(text.vocabulary)
        total = sum(len(t) for t in tokens)
        oov = sum(1 for t in tokens for w in t if w not in known)
        features[text.name] = {
            "kind": "text", "count": len(present_texts), "missing": n - len(present_texts),
            "oov_rate": oov / total if total else 0.0,
            "tokens": _numeric_summary(np.array([len(t) for t in tokens], np.float64), bins),
        }
        held_out = [txt.tokenize(v, text.lowercase, text.strip_punctuation)
                    for v in (holdout or {}).get(text.name, []) if isinstance(v, str)]
        held_total = sum(len(t) for t in held_out)
        if held_total:
            held_oov = sum(1 for t in held_out for w in t if w not in known)
            features[text.name]["oov"] = {"rate": held_oov / held_total, "tokens": held_total,
                                          "source": "validation"}
    return {"rows": n, "bins": bins, "features": features}


def _numeric_summary(values: np.ndarray, bins: int) -> dict[str, Any]:
    if not values.size:
        return {}
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size == 1:  # a constant column: one bin
        edges = np.array([edges[0], edges[0]])
    counts = np.bincount(bin_index(edges, values), minlength=edges.size - 1)
    return {"mean": float(values.mean()), "std": float(values.std()), "min": float(values.min()),
            "max": float(values.max()), "bin_edges": [float(e) for e in edges],
            "proportions": [float(c) / values.size for c in counts]}


def _frequencies(present: Sequence[str]) -> dict[str, float]:
    counts = Counter(present)
    return {k: counts[k] / len(present) for k in sorted(counts)} if present else {}
