"""maas_core.monitoring without AWS: formulas against hand-computed values, drift, windows, capture packing."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from maas_core.edge.awslogs import awslogs_event, awslogs_messages
from maas_core.errors import UnprocessableError
from maas_core.feature_rows import FeatureRows
from maas_core.ids import id_time_ms, new_request_id, time_prefix
from maas_core.manifest import InputField, Manifest, TensorInfo
from maas_core.monitoring.capture import (
    FEATURE_VECTOR,
    MARKER,
    MASK,
    MAX_LINE_BYTES,
    MAX_STRING,
    build_captures,
    capture_lines,
    features_summary,
    sampled,
)
from maas_core.monitoring.quality import (
    EPSILON,
    classification_quality,
    drift_status,
    feature_drift,
    percentiles,
    psi,
    regression_quality,
)
from maas_core.monitoring.report import parse_window
from maas_core.schemas import Prediction, PredictResponse

# --- ids ----------------------------------------------------------------------------------------------


def test_prediction_ids_sort_by_time_and_carry_it() -> None:
    """Given request ids made at increasing times,
    then they sort in time order, keep a uuid4-hex length, and give their time back."""
    ids = [new_request_id(ms) for ms in (5, 1_000, 1_795_000_000_000)]
    assert ids == sorted(ids) and all(len(i) == 32 for i in ids)
    assert id_time_ms(ids[2] + "-7") == 1_795_000_000_000
    assert time_prefix(1_000) <= ids[1] < time_prefix(1_001)
    with pytest.raises(ValueError):
        id_time_ms("not-an-id")


# --- latency, classification, regression: hand-computed ------------------------------------------------


def test_latency_percentiles_are_nearest_rank() -> None:
    """Given latencies 1..100 ms (shuffled), then p50 = 50, p90 = 90, p99 = 99; given 1..12, 6 / 11 / 12."""
    values = list(range(1, 101))
    np.random.default_rng(0).shuffle(values)
    assert percentiles(values) == {"p50": 50.0, "p90": 90.0, "p99": 99.0}
    assert percentiles(list(range(1, 13))) == {"p50": 6.0, "p90": 11.0, "p99": 12.0}
    assert percentiles([7.5]) == {"p50": 7.5, "p90": 7.5, "p99": 7.5}
    assert percentiles([]) == {}


# truth / predicted of 10 labelled predictions over classes a, b, c (and the values worked out by hand)
TRUTH = ["a", "a", "a", "a", "b", "b", "b", "c", "c", "c"]
PREDICTED = ["a", "a", "b", "c", "b", "b", "a", "c", "c", "b"]
EXPECTED_MATRIX = [[2, 1, 1], [1, 2, 0], [0, 1, 2]]  # rows: truth a, b, c; columns: predicted a, b, c
EXPECTED = {
    "accuracy": 6 / 10,
    "per_class": {"a": (2 / 3, 2 / 4, 4 / 7, 4), "b": (2 / 4, 2 / 3, 4 / 7, 3), "c": (2 / 3, 2 / 3, 2 / 3, 3)},
    "precision_macro": 11 / 18, "recall_macro": 11 / 18, "f1_macro": 38 / 63,
}


def test_classification_quality_matches_hand_computed_values() -> None:
    """Given 10 labelled predictions over a, b, c,
    then accuracy, precision / recall / F1 per class and macro, support and the confusion matrix are
    the values worked out by hand."""
    q = classification_quality(TRUTH, PREDICTED, labels=["a", "b", "c"])
    assert q["count"] == 10
    assert q["accuracy"] == pytest.approx(EXPECTED["accuracy"])
    for label, (p, r, f1, support) in EXPECTED["per_class"].items():
        got = q["per_class"][label]
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((p, r, f1)), label
        assert got["support"] == support
    for key in ("precision_macro", "recall_macro", "f1_macro"):
        assert q[key] == pytest.approx(EXPECTED[key]), key
    assert q["confusion_matrix"] == {"labels": ["a", "b", "c"], "matrix": EXPECTED_MATRIX}


def test_macro_averages_skip_classes_absent_from_truth_and_predictions() -> None:
    """Given a three-class model whose window only saw a and b,
    then class c (never true, never predicted) is in the matrix but not in the macro averages;
    a class that is predicted but never true counts with recall 0 (sklearn's zero_division=0)."""
    q = classification_quality(["a", "b"], ["a", "a"], labels=["a", "b", "c"])
    assert q["confusion_matrix"]["matrix"] == [[1, 0, 0], [1, 0, 0], [0, 0, 0]]
    assert q["precision_macro"] == pytest.approx((0.5 + 0.0) / 2)
    assert q["recall_macro"] == pytest.approx((1.0 + 0.0) / 2)
    assert q["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "predicted": 0}


def test_regression_quality_matches_hand_computed_values() -> None:
    """Given predictions 3, 5, 2.5, 7 for truths 2, 5, 4, 4 (errors 1, 0, -1.5, 3),
    then MAE = 5.5 / 4 = 1.375 and RMSE = sqrt(12.25 / 4) = 1.75."""
    q = regression_quality([2, 5, 4, 4], [3, 5, 2.5, 7])
    assert q == {"count": 4, "mae": pytest.approx(1.375), "rmse": pytest.approx(1.75)}


# --- drift ------------------------------------------------------------------------------------------


def test_psi_formula_and_thresholds() -> None:
    """PSI = sum((a - e) ln(a / e)); identical shares give 0; an empty bucket is floored at EPSILON;
    < 0.1 stable, 0.1..0.2 moderate, > 0.2 significant."""
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert psi([0.5, 0.5], [0.8, 0.2]) == pytest.approx(0.3 * math.log(0.8 / 0.5) - 0.3 * math.log(0.2 / 0.5))
    assert psi([0.5, 0.5], [1.0, 0.0]) == pytest.approx(0.5 * math.log(1 / 0.5)
                                                        + (EPSILON - 0.5) * math.log(EPSILON / 0.5))
    assert [drift_status(v) for v in (0.05, 0.1, 0.2, 0.21)] == ["stable", "moderate", "moderate", "significant"]


def training_baseline(rng: np.random.Generator) -> dict:
    """A baseline in the training job's format (maas_training.evaluate): deciles of x1 ~ N(0, 1),
    colour 50/50 blue/red, flag 70/30 false/true."""
    x1 = rng.normal(0.0, 1.0, 5000)
    edges = np.quantile(x1, np.linspace(0, 1, 11))
    counts = np.bincount(np.searchsorted(edges[1:-1], x1, side="right"), minlength=10)
    return {"rows": 5000, "bins": 10, "features": {
        "x1": {"kind": "numeric", "count": 5000, "missing": 0, "mean": float(x1.mean()), "std": float(x1.std()),
               "min": float(x1.min()), "max": float(x1.max()), "bin_edges": edges.tolist(),
               "proportions": (counts / 5000).tolist()},
        "colour": {"kind": "categorical", "count": 5000, "missing": 0, "frequencies": {"blue": 0.5, "red": 0.5}},
        "flag": {"kind": "boolean", "count": 5000, "missing": 0, "frequencies": {"false": 0.7, "true": 0.3}},
        "note": {"kind": "text", "count": 5000, "missing": 0, "oov_rate": 0.1, "tokens": {}},
    }}


def serving_records(rng: np.random.Generator, n: int, shift: float, colours: list[str], p: list[float],
                    p_true: float) -> list[dict]:
    x1 = rng.normal(shift, 1.0, n)
    colour = rng.choice(colours, n, p=p)
    flag = rng.random(n) < p_true
    return [{"x1": float(a), "colour": str(c), "flag": bool(f), "note": "hi"}
            for a, c, f in zip(x1, colour, flag, strict=True)]


def test_unshifted_inputs_stay_below_0_1_and_shifted_inputs_rise_above_0_2() -> None:
    """Given a training baseline and 2000 serving records,
    when the records come from the training distribution, every field's PSI stays below 0.1 (stable);
    when x1 shifts by one standard deviation, colour tilts 80/20 with unseen colours and flag flips to
    mostly true, each of those fields' PSI rises above 0.2 (significant), unseen colours get their own
    bucket, and the text field is skipped with a reason."""
    rng = np.random.default_rng(42)
    baseline = training_baseline(rng)
    same = feature_drift(baseline, serving_records(rng, 2000, 0.0, ["blue", "red"], [0.5, 0.5], 0.3))
    for name in ("x1", "colour", "flag"):
        assert same["features"][name]["psi"] < 0.1, (name, same["features"][name])
        assert same["features"][name]["status"] == "stable"
    assert same["status"] == "stable" and same["max_psi"] < 0.1
    assert "skipped" in same["features"]["note"]

    shifted = feature_drift(baseline, serving_records(rng, 2000, 1.0, ["blue", "red", "green"], [0.7, 0.1, 0.2], 0.8))
    for name in ("x1", "colour", "flag"):
        assert shifted["features"][name]["psi"] > 0.2, (name, shifted["features"][name])
        assert shifted["features"][name]["status"] == "significant"
    assert shifted["features"]["colour"]["unseen_share"] == pytest.approx(0.2, abs=0.03)
    assert shifted["status"] == "significant"


def test_drift_handles_missing_values_sensitive_fields_and_no_baseline() -> None:
    """Given records with missing and non-numeric values and a field marked sensitive,
    then missing values are counted apart, masked values are not measured, and a manifest without a
    baseline (an external model) is skipped with a reason instead of failing."""
    baseline = training_baseline(np.random.default_rng(1))
    records = [{"x1": None, "colour": MASK}, {"x1": "NA"}, {"x1": "oops"}, {"x1": 0.5, "colour": MASK}]
    out = feature_drift(baseline, records, sensitive={"colour"})
    x1 = out["features"]["x1"]
    assert (x1["count"], x1["missing"], x1["invalid"]) == (1, 2, 1)
    assert "sensitive" in out["features"]["colour"]["skipped"]
    assert feature_drift({}, records) == {"skipped": "the model's manifest has no training baseline"}
    assert feature_drift(None, records)["skipped"]


# --- windows ----------------------------------------------------------------------------------------


NOW = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)


def test_windows_by_length_or_by_since_until() -> None:
    assert parse_window("1h", now=NOW).start == NOW - timedelta(hours=1)
    assert parse_window("7d", now=NOW).start == NOW - timedelta(days=7)
    assert parse_window(None, now=NOW).label == "1h"
    w = parse_window(since="2026-01-01T00:00:00Z", until="2026-01-01T06:00:00", now=NOW)
    assert (w.start.hour, w.end.hour, w.end.tzinfo is not None) == (0, 6, True)
    assert parse_window(since="2026-01-02T11:00:00+00:00", now=NOW).end == NOW


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"window": "5x"}, "window"), ({"window": "31d"}, "window"), ({"window": "0h"}, "window"),
    ({"window": "1h", "since": "2026-01-01T00:00:00Z"}, "window"),
    ({"until": "2026-01-01T00:00:00Z"}, "since"),
    ({"since": "yesterday"}, "since"),
    ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
    ({"since": "2025-10-01T00:00:00Z"}, "since"),
])
def test_bad_windows_are_422_naming_the_parameter(kwargs, field) -> None:
    with pytest.raises(UnprocessableError) as info:
        parse_window(**kwargs, now=NOW)
    assert info.value.details[0]["field"] == field


# --- capture: sampling, the record kept, packing ---------------------------------------------------------


def test_sampling_is_a_stable_share_of_prediction_ids() -> None:
    ids = [f"{new_request_id(1_000 + i)}-0" for i in range(4000)]
    share = sum(sampled(i, 0.25) for i in ids) / len(ids)
    assert 0.22 < share < 0.28
    assert [sampled(i, 0.25) for i in ids[:50]] == [sampled(i, 0.25) for i in ids[:50]]  # same id, same answer
    assert all(sampled(i, 1.0) for i in ids[:10]) and not any(sampled(i, 0.0) for i in ids[:10])


def manifest(fields: list[InputField], task: str = "binary", labels: list[str] | None = None) -> Manifest:
    return Manifest(name="m", version="1", task=task, labels=labels if labels is not None else ["no", "yes"],
                    input_schema=fields, model_input=TensorInfo(name="x", dtype="float32", shape=[None, 1]),
                    model_output=TensorInfo(name="y", dtype="float32", shape=[None, 2]))


def test_the_captured_record_is_small_and_masks_sensitive_fields() -> None:
    """Given a record with a sensitive field, a long string, a nested value and a field outside the schema,
    then the capture keeps schema fields only, masks the sensitive one, cuts the string to 256
    characters and names the nested value's type; a text model's bare string goes under its field."""
    m = manifest([InputField(name="email", type="string", sensitive=True), InputField(name="bio", type="string"),
                  InputField(name="age", type="number"), InputField(name="tags", type="string", required=False)])
    got = features_summary({"email": "a@b.c", "bio": "x" * 1000, "age": 41, "tags": ["a"], "extra": 1}, m)
    assert got == {"email": MASK, "bio": "x" * MAX_STRING, "age": 41, "tags": "<list>"}
    text = manifest([InputField(name="review", type="string")])
    assert features_summary("great stuff", text) == {"review": "great stuff"}


def test_build_captures_follows_the_rate_and_shapes_outputs() -> None:
    rid = new_request_id(1_700_000_000_000)
    preds = [Prediction(id=f"{rid}-{i}", label="yes", probabilities={"no": 0.1, "yes": 0.9}) for i in range(3)]
    response = PredictResponse(model="m", version="1", alias="prod", predictions=preds)
    caps = build_captures(response, [{"a": 1}] * 3, manifest([InputField(name="a", type="number")]), 12.3456, 1.0)
    assert [c["id"] for c in caps] == [p.id for p in preds]
    assert caps[0] | {"features": None} == {
        "id": preds[0].id, "model": "m", "version": "1", "alias": "prod", "time": "2023-11-14T22:13:20.000+00:00",
        "time_ms": 1_700_000_000_000, "latency_ms": 12.346, "task": "binary", "features": None,
        "output": {"label": "yes", "probabilities": {"no": 0.1, "yes": 0.9}}}
    assert build_captures(response, [{"a": 1}] * 3, manifest([]), 1.0, 0.0) == []


def test_feature_rows_are_captured_as_feature_vectors_and_left_out_of_drift() -> None:
    """Given a request sent as the model's input rows (FeatureRows), when captured, then each capture's features
    say it is a feature vector (the row, or "***" when a field is sensitive), and drift leaves such captures out,
    counting them, so the raw fields' drift is measured on the other captures only."""
    rid = new_request_id(1_700_000_000_000)
    preds = [Prediction(id=f"{rid}-{i}", label="yes", probabilities={"no": 0.1, "yes": 0.9}) for i in range(2)]
    response = PredictResponse(model="m", version="1", predictions=preds)
    rows = FeatureRows(np.array([[0.5, 1.0], [2.0, -1.0]], np.float32))
    caps = build_captures(response, rows, manifest([InputField(name="a", type="number")]), 1.0, 1.0)
    assert [c["features"] for c in caps] == [{FEATURE_VECTOR: [0.5, 1.0]}, {FEATURE_VECTOR: [2.0, -1.0]}]
    masked = build_captures(response, rows, manifest([InputField(name="a", type="number", sensitive=True)]), 1.0, 1.0)
    assert [c["features"] for c in masked] == [{FEATURE_VECTOR: MASK}] * 2
    baseline = {"features": {"a": {"kind": "numeric", "bin_edges": [-9.0, 0.0, 9.0], "proportions": [0.5, 0.5]}}}
    raw = [{"a": v} for v in (-2.0, -0.5, 0.5, 2.0)]
    mixed = feature_drift(baseline, [c["features"] for c in caps] + raw)
    assert mixed == {**feature_drift(baseline, raw), "feature_vectors": 2}
    assert mixed["features"]["a"]["psi"] == pytest.approx(0.0, abs=1e-9)  # the raw records alone: no drift


def test_captures_are_packed_into_few_marked_json_lines_within_the_size_limit() -> None:
    """Given 1000 captures of ~260 bytes (a 1000-record request), then they fit in a handful of lines, each
    at most MAX_LINE_BYTES of UTF-8, a JSON object with the subscription's marker and every capture in
    order; captures near the capture size limit are packed within it too."""
    captures = [{"id": f"{i:032x}-0", "features": {"text": "y\u00e9" * 100}} for i in range(1000)]
    lines, held = capture_lines(captures)
    fewest = math.ceil(sum(len(json.dumps(c, separators=(",", ":"), ensure_ascii=False).encode()) for c in captures)
                       / MAX_LINE_BYTES)
    assert held == 1000 and fewest <= len(lines) <= fewest + 1 and len(lines) < 20
    assert all(len(line.encode()) <= MAX_LINE_BYTES and "\n" not in line for line in lines)
    docs = [json.loads(line) for line in lines]
    assert all(d[MARKER] == 1 and d["format"] == 1 for d in docs)
    assert [c["id"] for d in docs for c in d["captures"]] == [c["id"] for c in captures]
    big = [{"id": f"{i:032x}-0", "features": {"text": "z" * 7000}} for i in range(30)]
    assert all(len(line.encode()) <= MAX_LINE_BYTES for line in capture_lines(big)[0])


def test_a_capture_that_is_not_json_or_too_big_for_a_line_is_left_out_for_the_caller_to_count() -> None:
    ok = {"id": "a", "latency_ms": 1.0}
    lines, held = capture_lines([{"id": "nan", "latency_ms": float("nan")}, ok,
                                 {"id": "inf", "output": {"value": float("inf")}},
                                 {"id": "huge", "output": {"probabilities": {str(i): 0.0 for i in range(20_000)}}}])
    assert held == 1 and [c["id"] for line in lines for c in json.loads(line)["captures"]] == ["a"]
    assert capture_lines([]) == ([], 0)


def test_a_capture_over_the_size_limit_keeps_its_output_and_text_numbers_but_not_its_record() -> None:
    big = {"id": "b", "output": {"label": "yes"},
           "features": {"text": "x" * 9000, "_text": {"text": {"tokens": 1, "oov": 0}}}}
    [line], held = capture_lines([big, {"id": "c", "features": {"note": "NaN is a word here"}}])
    first, second = json.loads(line)["captures"]
    assert held == 2 and first["output"] == {"label": "yes"}
    assert first["features"] == {"_omitted": "record too large to capture", "_text": {"text": {"tokens": 1, "oov": 0}}}
    assert second["features"] == {"note": "NaN is a word here"}  # letters of a non-finite number, in a string


def test_awslogs_events_round_trip_and_bad_ones_are_refused() -> None:
    event = awslogs_event(["one", "two"], log_group="/aws/lambda/p")
    kind, events = awslogs_messages(event)
    assert kind == "DATA_MESSAGE" and [e["message"] for e in events] == ["one", "two"]
    for bad in ({}, {"awslogs": {}}, {"awslogs": {"data": 5}}, {"awslogs": {"data": "bm90IGd6aXA="}}):
        with pytest.raises(ValueError, match="not a CloudWatch Logs subscription event"):
            awslogs_messages(bad)


# --- text drift: token counts and out-of-vocabulary share ---------------------------------------------


def text_baseline(oov_rate: float | None = 0.1) -> dict:
    """A text field's baseline in the training job's format: token counts in bins [0,4) [4,6) [6,inf)
    holding 25 / 50 / 25 % of the training texts, and (unless None) a validation OOV rate."""
    stats: dict = {"kind": "text", "count": 400, "missing": 0, "oov_rate": 0.0,
                   "tokens": {"mean": 5.0, "bin_edges": [1.0, 4.0, 6.0, 12.0], "proportions": [0.25, 0.5, 0.25]}}
    if oov_rate is not None:
        stats["oov"] = {"rate": oov_rate, "tokens": 2000, "source": "validation"}
    return {"rows": 400, "bins": 3, "features": {"note": stats}}


def text_records(stats: list[tuple[int, int]]) -> list[dict]:
    """Captured records carrying only the text numbers (the text itself may be masked)."""
    return [{"note": MASK, "_text": {"note": {"tokens": n, "oov": k}}} for n, k in stats]


def test_text_psi_matches_hand_computed_values() -> None:
    """Given a text baseline (token-count bins 25/50/25 %, validation OOV rate 0.1) and 4 captured texts of
    2, 5, 8 and 9 tokens with 1 of their 24 tokens out of vocabulary,
    then the token PSI is over shares 1/4, 1/4, 1/2, the OOV PSI over (known, oov) = (23/24, 1/24) against
    (0.9, 0.1), and the field's PSI is the larger; the masked text does not stop the measurement."""
    out = feature_drift(text_baseline(), text_records([(2, 0), (5, 1), (8, 0), (9, 0)]), sensitive={"note"})
    note = out["features"]["note"]
    tokens_psi = (0.25 - 0.25) * math.log(1) + (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.5 - 0.25) * math.log(0.5 / 0.25)
    rate = 1 / 24
    oov_psi = (1 - rate - 0.9) * math.log((1 - rate) / 0.9) + (rate - 0.1) * math.log(rate / 0.1)
    assert note["tokens"]["psi"] == pytest.approx(tokens_psi) and note["tokens"]["mean"] == pytest.approx(6.0)
    assert note["oov"] == {"psi": pytest.approx(oov_psi), "rate": pytest.approx(rate), "baseline_rate": 0.1}
    assert note["psi"] == pytest.approx(max(tokens_psi, oov_psi)) and note["count"] == 4
    assert note["status"] == drift_status(max(tokens_psi, oov_psi)) == "significant"  # 0.3466 > 0.2
    assert out["max_psi"] == pytest.approx(note["psi"])


def sample_texts(rng: np.random.Generator, n: int, shares: list[float], oov_share: float) -> list[tuple[int, int]]:
    """n texts whose token counts fall in the baseline's bins with `shares`, each token OOV with `oov_share`."""
    bins = rng.choice(3, n, p=shares)
    lengths = np.where(bins == 0, rng.integers(1, 4, n), np.where(bins == 1, rng.integers(4, 6, n),
                                                                   rng.integers(6, 12, n)))
    return [(int(t), int(rng.binomial(t, oov_share))) for t in lengths]


def test_unshifted_texts_are_stable_and_longer_or_unknown_words_drift() -> None:
    """Given 2000 texts drawn like the baseline (25/50/25 %, 10 % OOV), the text PSI stays below 0.1;
    much longer texts (90 % in the top bin) or texts full of unknown words (40 % OOV) each push it above 0.2."""
    rng = np.random.default_rng(3)
    same = feature_drift(text_baseline(), text_records(sample_texts(rng, 2000, [0.25, 0.5, 0.25], 0.1)))
    assert same["features"]["note"]["psi"] < 0.1 and same["features"]["note"]["status"] == "stable"
    longer = feature_drift(text_baseline(), text_records(sample_texts(rng, 2000, [0.05, 0.05, 0.9], 0.1)))
    assert longer["features"]["note"]["tokens"]["psi"] > 0.2 and longer["features"]["note"]["oov"]["psi"] < 0.1
    unknown = feature_drift(text_baseline(), text_records(sample_texts(rng, 2000, [0.25, 0.5, 0.25], 0.4)))
    assert unknown["features"]["note"]["oov"]["psi"] > 0.2 and unknown["features"]["note"]["tokens"]["psi"] < 0.1
    for out in (longer, unknown):
        assert out["features"]["note"]["status"] == "significant" and out["status"] == "significant"


def test_old_manifests_without_a_text_baseline_report_text_drift_as_unavailable() -> None:
    """Given captured text numbers and (a) a baseline that never recorded the text field (tabular entries
    only), (b) a text entry without bins or OOV rate, (c) token bins but no validation OOV rate,
    then (a) and (b) report the field as unavailable with why, not as an error, and (c) measures the token
    counts only, reporting the OOV rate without a PSI."""
    records = text_records([(5, 0), (5, 1)])
    tabular_only = {"features": {"x1": training_baseline(np.random.default_rng(0))["features"]["x1"]}}
    for baseline in (tabular_only, {"features": {"note": {"kind": "text", "count": 9, "oov_rate": 0.1, "tokens": {}}}}):
        note = feature_drift(baseline, records)["features"]["note"]
        assert (note["status"], note["psi"]) == ("unavailable", None) and "baseline" in note["skipped"]
    no_oov = feature_drift(text_baseline(oov_rate=None), records)["features"]["note"]
    assert no_oov["status"] in ("stable", "moderate", "significant") and no_oov["psi"] == no_oov["tokens"]["psi"]
    assert no_oov["oov"]["psi"] is None and no_oov["oov"]["rate"] == pytest.approx(0.1) and "skipped" in no_oov["oov"]
    assert feature_drift(text_baseline(), [{"note": "hello"}])["features"]["note"]["status"] == "no_data"


def test_text_captures_carry_token_and_oov_counts_even_when_masked() -> None:
    """Given a text model's spec (tokenizer and vocabulary) and a sensitive text field,
    then the captured features keep the text masked but carry its token count and how many tokens the
    vocabulary does not know, counted on the whole text (not the 256-character cut)."""
    from maas_core.preprocess import ColumnConfig, PreprocessSpec, SpecConfig

    spec = PreprocessSpec.fit({"note": ["good service", "bad service, slow"]},
                              SpecConfig(columns={"note": ColumnConfig(kind="text", max_length=4)}))
    text = spec.text_feature
    m = manifest([InputField(name="note", type="string", sensitive=True)])
    long = "Good service! " + "zebra " * 100  # 102 tokens, 100 of them unknown, longer than MAX_STRING
    got = features_summary({"note": long}, m, text)
    assert got == {"note": MASK, "_text": {"note": {"tokens": 102, "oov": 100}}}
    assert features_summary("bad SERVICE", m, text)["_text"] == {"note": {"tokens": 2, "oov": 0}}
    assert "_text" not in features_summary({"note": 3}, m, text)
