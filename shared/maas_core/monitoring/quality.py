"""Model quality over captured predictions with ground truth, latency percentiles, and drift (PSI).

Pure functions in plain Python (no numpy: the metrics function, which never runs a model, does not carry
it; math.fsum keeps the sums exact): maas_core.monitoring.report feeds them captures.

Classification (captures whose feedback is a label): accuracy; precision, recall and F1 per class
(0 where undefined, as when a class is never predicted); their macro averages over the classes that
occur in the truth or the predictions (a class absent from both says nothing about this window); the
confusion matrix, rows = true label, columns = predicted label, in the manifest's label order (then
any other label seen, sorted).

Regression (feedback is a value): MAE and RMSE.

Latency percentiles use the nearest-rank definition: p50 of [1..100] is 50, p99 is 99 (an observed
latency, never an interpolation between two).

Drift: the population stability index of each input field, captured raw values against the training
baseline of the version that answered (manifest.baseline, maas_training.evaluate documents it):

    PSI = sum over buckets of (actual - expected) * ln(actual / expected)

with both shares floored at EPSILON = 1e-4 so an empty bucket counts as rare, not impossible.
Buckets: numeric fields use the baseline's bins (value -> bisect_right(bin_edges[1:-1], value), as
numpy's searchsorted(side="right"): the outer bins are open-ended); categorical and boolean fields use the baseline's
categories, plus one "(unseen)" bucket for categories training never saw. Missing values are left
out on both sides (the baseline's shares are over non-missing values too) and reported as
`missing`. Thresholds (the usual reading of PSI):

    PSI < 0.1          stable
    0.1 <= PSI <= 0.2  moderate drift: worth a look
    PSI > 0.2          significant drift: the inputs no longer look like the training data

Text fields are measured on two numbers per text, which the capture computes with the model's own
tokenizer (maas_core.monitoring.capture stores them under features["_text"][field] as {"tokens": n,
"oov": k}; the raw text is never needed, so a sensitive text field is measured too):

    tokens  the number of tokens per text, in the baseline's token-count bins (baseline
            `tokens.bin_edges` / `tokens.proportions`, training quantiles, open-ended outer bins):
            callers writing much longer or shorter texts than training
    oov     the share of tokens outside the fitted vocabulary, as two buckets (known, out of
            vocabulary) against baseline `oov.rate`: callers writing about things training never saw.
            That rate is measured on the validation split (texts the vocabulary was not fitted on),
            since the training split's own rate is near 0 by construction and would flag every
            serving population; a manifest without it reports the OOV rate but no OOV PSI

The field's `psi` is the larger of the two. A text field whose baseline has neither (models trained
before text drift was recorded, or a manifest without any baseline) is reported with status
"unavailable" and why, never as an error.

Not measured: fields marked sensitive other than text (their values are masked when captured), and
models whose manifest has no baseline (e.g. registered external ONNX models): reported as skipped,
with why.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

from maas_core.monitoring.capture import FEATURE_VECTOR, MASK, TEXT_STATS
from maas_core.preprocess.literals import FALSE_STRINGS, TRUE_STRINGS, is_missing_string

EPSILON = 1e-4
MODERATE = 0.1
SIGNIFICANT = 0.2
UNSEEN = "(unseen)"


# --- latency ---------------------------------------------------------------------------------------


def percentiles(values: Sequence[float], qs: Sequence[int] = (50, 90, 99)) -> dict[str, float]:
    """Nearest-rank percentiles {"p50": ..., ...}; {} without values."""
    if not values:
        return {}
    ordered = sorted(values)
    n = len(ordered)
    return {f"p{q}": float(ordered[max(math.ceil(q / 100 * n), 1) - 1]) for q in qs}


# --- quality ---------------------------------------------------------------------------------------


def classification_quality(truth: Sequence[str], predicted: Sequence[str],
                           labels: Sequence[str] = ()) -> dict[str, Any]:
    """Accuracy, macro and per-class precision / recall / F1, confusion matrix (see the module docstring)."""
    if len(truth) != len(predicted):
        raise ValueError("truth and predicted differ in length")
    n = len(truth)
    seen = set(truth) | set(predicted)
    order = list(dict.fromkeys(labels)) + sorted(seen - set(labels))
    index = {lbl: i for i, lbl in enumerate(order)}
    matrix = [[0] * len(order) for _ in order]
    for t, p in zip(truth, predicted, strict=True):
        matrix[index[t]][index[p]] += 1
    per_class: dict[str, dict[str, float | int]] = {}
    present: list[str] = []
    for lbl, i in index.items():
        tp = matrix[i][i]
        predicted_i = sum(row[i] for row in matrix)
        support = sum(matrix[i])
        precision = tp / predicted_i if predicted_i else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[lbl] = {"precision": precision, "recall": recall, "f1": f1, "support": support,
                          "predicted": predicted_i}
        if support or predicted_i:
            present.append(lbl)

    def macro(key: str) -> float:
        return _mean([per_class[lbl][key] for lbl in present]) if present else 0.0

    return {
        "count": n,
        "accuracy": sum(matrix[i][i] for i in range(len(order))) / n if n else 0.0,
        "precision_macro": macro("precision"),
        "recall_macro": macro("recall"),
        "f1_macro": macro("f1"),
        "per_class": per_class,
        "confusion_matrix": {"labels": order, "matrix": matrix},
    }


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def regression_quality(truth: Sequence[float], predicted: Sequence[float]) -> dict[str, Any]:
    if len(truth) != len(predicted):
        raise ValueError("truth and predicted differ in length")
    if not len(truth):
        return {"count": 0, "mae": 0.0, "rmse": 0.0}
    err = [float(p) - float(t) for t, p in zip(truth, predicted, strict=True)]
    return {"count": len(err), "mae": _mean([abs(e) for e in err]), "rmse": math.sqrt(_mean([e * e for e in err]))}


# --- drift -----------------------------------------------------------------------------------------


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two share vectors over the same buckets (floored at EPSILON)."""
    if len(expected) != len(actual):
        raise ValueError("expected and actual shares differ in length")
    floored = [(max(float(e), EPSILON), max(float(a), EPSILON)) for e, a in zip(expected, actual, strict=True)]
    return math.fsum((a - e) * math.log(a / e) for e, a in floored)


def _shares(values: Sequence[float], edges: Sequence[float], buckets: int) -> list[float]:
    """Share of values in each bin of `edges` (the outer bins open-ended, a value on an edge in the bin above)."""
    inner = [float(x) for x in edges[1:-1]]
    counts = Counter(bisect_right(inner, v) for v in values)
    return [counts.get(b, 0) / len(values) for b in range(buckets)]


def drift_status(value: float) -> str:
    if value > SIGNIFICANT:
        return "significant"
    if value >= MODERATE:
        return "moderate"
    return "stable"


def _is_missing(v: Any) -> bool:
    return v is None or is_missing_string(v)


def numeric_drift(stats: Mapping[str, Any], values: Sequence[Any]) -> dict[str, Any]:
    edges = stats.get("bin_edges") or []
    expected = stats.get("proportions") or []
    if len(edges) < 2 or len(expected) != len(edges) - 1:
        return {"kind": "numeric", "skipped": "the baseline has no bins for this field"}
    numbers: list[float] = []
    missing = invalid = 0
    for v in values:
        if _is_missing(v):
            missing += 1
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            invalid += 1
            continue
        try:
            x = float(v)
        except ValueError:
            invalid += 1
            continue
        if math.isfinite(x):
            numbers.append(x)
        else:
            invalid += 1
    result: dict[str, Any] = {"kind": "numeric", "count": len(numbers), "missing": missing}
    if invalid:
        result["invalid"] = invalid
    if not numbers:
        return result | {"psi": None, "status": "no_data"}
    value = psi(expected, _shares(numbers, edges, len(expected)))
    return result | {"psi": value, "status": drift_status(value), "mean": _mean(numbers),
                     "baseline_mean": stats.get("mean")}


def categorical_drift(stats: Mapping[str, Any], values: Sequence[Any], kind: str = "categorical") -> dict[str, Any]:
    frequencies: Mapping[str, float] = stats.get("frequencies") or {}
    if not frequencies:
        return {"kind": kind, "skipped": "the baseline has no frequencies for this field"}
    categories: list[str] = []
    missing = 0
    for v in values:
        if _is_missing(v):
            missing += 1
        elif kind == "boolean":
            categories.append(_bool_category(v))
        else:
            categories.append(v if isinstance(v, str) else str(v))
    result: dict[str, Any] = {"kind": kind, "count": len(categories), "missing": missing}
    if not categories:
        return result | {"psi": None, "status": "no_data"}
    counts = Counter(c if c in frequencies else UNSEEN for c in categories)
    buckets = [*frequencies, UNSEEN]
    expected = [float(frequencies[b]) for b in frequencies] + [0.0]
    actual = [counts.get(b, 0) / len(categories) for b in buckets]
    value = psi(expected, actual)
    result |= {"psi": value, "status": drift_status(value)}
    if counts.get(UNSEEN):
        result["unseen_share"] = counts[UNSEEN] / len(categories)
    return result


def _bool_category(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)) and v in (0, 1):
        return "true" if v == 1 else "false"
    if isinstance(v, str) and v.strip().lower() in TRUE_STRINGS:
        return "true"
    if isinstance(v, str) and v.strip().lower() in FALSE_STRINGS:
        return "false"
    return str(v)  # not a boolean: lands in the unseen bucket


def _text_stats(records: Sequence[Mapping[str, Any]], name: str) -> tuple[list[float], list[float]]:
    """(tokens, oov) per captured text of field `name`, from features["_text"] (texts without them left out)."""
    tokens: list[float] = []
    oov: list[float] = []
    for r in records:
        by_field = r.get(TEXT_STATS)
        stats = by_field.get(name) if isinstance(by_field, Mapping) else None
        if not isinstance(stats, Mapping):
            continue
        n, k = stats.get("tokens"), stats.get("oov")
        if _is_count(n) and _is_count(k) and k <= n:
            tokens.append(float(n))
            oov.append(float(k))
    return tokens, oov


def _is_count(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def text_drift(stats: Mapping[str, Any] | None, records: Sequence[Mapping[str, Any]], name: str) -> dict[str, Any]:
    """PSI of a text field's token counts and OOV share (see the module docstring)."""
    stats = stats or {}
    token_stats: Mapping[str, Any] = stats.get("tokens") or {}
    edges, expected = token_stats.get("bin_edges") or [], token_stats.get("proportions") or []
    has_tokens = len(edges) >= 2 and len(expected) == len(edges) - 1
    oov_base: Mapping[str, Any] = stats["oov"] if isinstance(stats.get("oov"), Mapping) else {}
    base_rate = oov_base.get("rate") if isinstance(oov_base.get("rate"), (int, float)) else None
    if not has_tokens and base_rate is None:
        return {"kind": "text", "psi": None, "status": "unavailable",
                "skipped": "the training baseline has no text statistics for this field (a model trained "
                           "before text drift was recorded): retrain to measure it"}
    tokens, oov = _text_stats(records, name)
    result: dict[str, Any] = {"kind": "text", "count": len(tokens), "missing": len(records) - len(tokens)}
    if not tokens:
        return result | {"psi": None, "status": "no_data"}
    measured: list[float] = []
    if has_tokens:
        value = psi(expected, _shares(tokens, edges, len(expected)))
        measured.append(value)
        result["tokens"] = {"psi": value, "mean": _mean(tokens), "baseline_mean": token_stats.get("mean")}
    else:
        result["tokens"] = {"psi": None, "mean": _mean(tokens),
                            "skipped": "the baseline has no token-count bins"}
    total = math.fsum(tokens)
    rate = math.fsum(oov) / total if total else 0.0
    if base_rate is not None and total:
        value = psi([1.0 - float(base_rate), float(base_rate)], [1.0 - rate, rate])
        measured.append(value)
        result["oov"] = {"psi": value, "rate": rate, "baseline_rate": float(base_rate)}
    else:
        result["oov"] = {"psi": None, "rate": rate, "training_rate": stats.get("oov_rate"),
                         "skipped": "no texts with tokens" if not total else
                                    "the baseline has no validation OOV rate (the training split's own rate "
                                    "is near 0 by construction, so it is not compared)"}
    if not measured:
        return result | {"psi": None, "status": "unavailable"}
    value = max(measured)
    return result | {"psi": value, "status": drift_status(value)}


def feature_drift(baseline: Mapping[str, Any] | None, records: Sequence[Mapping[str, Any]],
                  sensitive: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """PSI of every baseline field over the captured records: {"features": {name: ...}, "max_psi",
    "status"}, or {"skipped": why} when there is no baseline. Text fields the captures carry numbers
    for but the baseline does not know are listed as unavailable. Captures of records sent as the model's
    input row (capture's FEATURE_VECTOR) have no raw fields: left out, and counted as `feature_vectors`."""
    vectors = sum(1 for r in records if FEATURE_VECTOR in r)
    if vectors:
        kept = [r for r in records if FEATURE_VECTOR not in r]
        return {**feature_drift(baseline, kept, sensitive), "feature_vectors": vectors}
    features_stats: Mapping[str, Any] = (baseline or {}).get("features") or {}
    captured_text = {n for r in records if isinstance(r.get(TEXT_STATS), Mapping) for n in r[TEXT_STATS]}
    if not features_stats:
        skipped: dict[str, Any] = {"skipped": "the model's manifest has no training baseline"}
        if captured_text:  # a text model trained before baselines: its text field is listed, unavailable
            skipped |= {"features": {n: text_drift(None, records, n) for n in sorted(captured_text)},
                        "status": "unavailable"}
        return skipped
    out: dict[str, Any] = {}
    for name, stats in features_stats.items():
        kind = stats.get("kind")
        if kind == "text":  # measured on numbers the capture computed, never on the (maybe masked) text
            out[name] = text_drift(stats, records, name)
            continue
        if name in sensitive:
            out[name] = {"kind": kind, "skipped": "sensitive field: its values are masked when captured"}
            continue
        values = [r.get(name) for r in records]
        values = [v for v in values if v != MASK]
        if kind == "numeric":
            out[name] = numeric_drift(stats, values)
        elif kind in ("categorical", "boolean"):
            out[name] = categorical_drift(stats, values, kind)
        else:
            out[name] = {"kind": kind, "skipped": f"drift of {kind} fields is not measured"}
    for name in sorted(captured_text - set(features_stats)):  # a text field the (older) baseline lacks
        out[name] = text_drift(None, records, name)
    measured = [v["psi"] for v in out.values() if v.get("psi") is not None]
    summary: dict[str, Any] = {"features": out}
    if measured:
        summary["max_psi"] = max(measured)
        summary["status"] = drift_status(summary["max_psi"])
    else:
        unavailable = bool(out) and all(v.get("status") == "unavailable" for v in out.values())
        summary["status"] = "unavailable" if unavailable else "no_data"
    return summary
