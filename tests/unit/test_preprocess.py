"""The fitted preprocessing spec: fit, transform, errors by record and field, JSON round trip."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maas_core.errors import UnprocessableError
from maas_core.preprocess import SPEC_FORMAT_VERSION, ColumnConfig, PreprocessSpec, SpecConfig, outlier_bounds
from maas_core.preprocess.text import OOV_ID, tokenize

COLUMNS = {
    "size": ["1", "2", "NA", "5"],
    "weight": [10.0, 20.0, 30.0, 40.0],
    "colour": ["red", "blue", "red", None],
    "member": ["yes", "no", "true", None],
}


def fit(**columns: ColumnConfig) -> PreprocessSpec:
    return PreprocessSpec.fit(COLUMNS, SpecConfig(columns=columns))


@pytest.fixture
def spec() -> PreprocessSpec:
    return PreprocessSpec.fit(COLUMNS, SpecConfig.simple(numeric=["size", "weight"], categorical=["colour"],
                                                         boolean=["member"], optional=["colour", "member"]))


def test_fit_learns_fills_scales_and_categories(spec: PreprocessSpec) -> None:
    size, weight, colour, member = spec.features
    assert size.center == pytest.approx(8 / 3) and size.fill is None  # required: no fill; NA ignored when fitting
    assert weight.scale == pytest.approx(np.std([10, 20, 30, 40]))
    assert colour.categories == ["blue", "red"] and colour.fill == "red"
    assert member.fill is True
    assert spec.feature_names() == ["size", "weight", "colour=blue", "colour=red", "member"]
    assert [(f.name, f.type, f.required) for f in spec.input_schema()] == [
        ("size", "number", True), ("weight", "number", True), ("colour", "string", False), ("member", "boolean", False)]


def test_transform_scales_encodes_and_fills_optional_fields(spec: PreprocessSpec) -> None:
    x = spec.transform([{"size": 2, "weight": 25, "colour": "blue", "member": False}, {"size": "5", "weight": 10}])
    size = spec.features[0]
    assert x.dtype == np.float32 and x.shape == (2, 5)
    np.testing.assert_allclose(x[:, 0], np.array([(2 - size.center) / size.scale, (5 - size.center) / size.scale],
                                                 np.float32))
    np.testing.assert_allclose(x[:, 2:], [[1, 0, 0], [0, 1, 1]])  # missing colour -> "red", member -> True


@pytest.mark.parametrize(("scaler", "center", "scale"), [
    ("standard", 25.0, np.std([10, 20, 30, 40])),
    ("minmax", 10.0, 30.0),
    ("robust", 25.0, 15.0),
    ("none", 0.0, 1.0),
])
def test_scalers(scaler: str, center: float, scale: float) -> None:
    f = fit(weight=ColumnConfig(kind="numeric", scaler=scaler)).features[0]
    assert (f.center, f.scale) == (pytest.approx(center), pytest.approx(scale))


@pytest.mark.parametrize(("strategy", "fill"), [("mean", 8 / 3), ("median", 2.0), ("most_frequent", 1.0),
                                                ("constant", -1.0)])
def test_missing_value_strategies(strategy: str, fill: float) -> None:
    f = fit(size=ColumnConfig(kind="numeric", required=False, missing=strategy, fill_value=-1.0)).features[0]
    assert f.fill == pytest.approx(fill)


def test_outliers_are_clipped_to_fitted_bounds_at_serving_too() -> None:
    values = np.array([1, 2, 3, 4, 100], float)
    low, high = outlier_bounds(values, "iqr", None)
    assert (low, high) == (pytest.approx(2 - 1.5 * 2), pytest.approx(4 + 1.5 * 2))
    spec = PreprocessSpec.fit({"v": values.tolist()},
                              SpecConfig(columns={"v": ColumnConfig(kind="numeric", outliers="iqr", scaler="none")}))
    assert spec.transform([{"v": 1000}, {"v": -50}, {"v": 3}])[:, 0].tolist() == [7.0, -1.0, 3.0]
    z = outlier_bounds(values, "zscore", 1.0)
    assert z == (pytest.approx(values.mean() - values.std()), pytest.approx(values.mean() + values.std()))


def test_impute_replaces_a_value_outside_the_bounds_by_the_median_inside_them_at_serving_too() -> None:
    """Given a column with a unit slip (1000 among values 1..9), fitted with IQR bounds and outlier_action impute,
    When records inside and outside the bounds are transformed,
    Then the bounds are kept in the spec, the slip does not move the fitted scale, and values outside the bounds
    become the median of the training values inside them, while values inside pass unchanged."""
    values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 1000]
    spec = PreprocessSpec.fit({"v": values}, SpecConfig(columns={"v": ColumnConfig(
        kind="numeric", outliers="iqr", outlier_threshold=3.0, outlier_action="impute", scaler="none")}))
    f = spec.features[0]
    assert f.clip == outlier_bounds(np.array(values, float), "iqr", 3.0) and f.impute == 5.0
    assert spec.transform([{"v": 10_000}, {"v": -50}, {"v": 3}, {"v": 9}])[:, 0].tolist() == [5.0, 5.0, 3.0, 9.0]
    assert PreprocessSpec.from_json(spec.to_json()).features[0].impute == 5.0


def test_a_column_without_spread_between_its_quartiles_has_no_iqr_bounds() -> None:
    """Given a mostly-zero flag column (its quartiles are both 0), When IQR bounds are fitted,
    Then there are none: fences of width 0 would clip or impute every 1."""
    flags = np.array([0.0] * 9 + [1.0])
    assert outlier_bounds(flags, "iqr", 3.0) is None
    spec = PreprocessSpec.fit({"f": flags.tolist()}, SpecConfig(columns={"f": ColumnConfig(
        kind="numeric", outliers="iqr", outlier_action="impute", scaler="none")}))
    assert spec.features[0].clip is None and spec.transform([{"f": 1}])[0, 0] == 1.0


def test_row_normalisation() -> None:
    for norm, expected in (("l1", [0.6, -0.4]), ("l2", [0.6 / np.hypot(0.6, 0.4), -0.4 / np.hypot(0.6, 0.4)])):
        spec = PreprocessSpec.fit({"a": ["3", "0"], "b": ["-2", "0"]}, SpecConfig(
            columns={"a": ColumnConfig(kind="numeric", scaler="none"),
                     "b": ColumnConfig(kind="numeric", scaler="none")},
            row_norm=norm))
        np.testing.assert_allclose(spec.transform([{"a": 3, "b": -2}, {"a": 0, "b": 0}]), [expected, [0, 0]], rtol=1e-6)


@pytest.mark.parametrize(("encoding", "unseen", "expected"), [
    ("onehot", "ignore", [[1, 0], [0, 0]]),
    ("onehot", "other", [[1, 0, 0], [0, 0, 1]]),
    ("ordinal", "ignore", [[0], [-1]]),
    ("ordinal", "other", [[0], [2]]),
])
def test_categorical_encodings_and_unseen_policy(encoding: str, unseen: str, expected: list) -> None:
    spec = fit(colour=ColumnConfig(kind="categorical", encoding=encoding, unseen=unseen))
    assert spec.transform([{"colour": "blue"}, {"colour": "green"}]).tolist() == expected


def test_unseen_category_can_be_rejected() -> None:
    spec = fit(colour=ColumnConfig(kind="categorical", unseen="reject"))
    with pytest.raises(UnprocessableError) as err:
        spec.transform([{"colour": "blue"}, {"colour": "green"}])
    assert err.value.details == [{"index": 1, "field": "colour",
                                  "reason": "unknown category \"green\"; expected one of ['blue', 'red']"}]


def test_max_categories_keeps_the_most_frequent() -> None:
    spec = fit(colour=ColumnConfig(kind="categorical", max_categories=1, unseen="other"))
    assert spec.features[0].categories == ["red"]
    assert spec.transform([{"colour": "blue"}]).tolist() == [[0, 1]]


def test_booleans_accept_json_and_common_strings(spec: PreprocessSpec) -> None:
    x = spec.transform([{"size": 1, "weight": 1, "member": v} for v in (True, "no", "YES", 0, "t")])
    assert x[:, -1].tolist() == [1, 0, 1, 0, 1]


def test_every_bad_record_is_named_by_index_and_field(spec: PreprocessSpec) -> None:
    records = [
        {"size": 1, "weight": 2},                    # fine
        {"weight": 2},                                # required size missing
        {"size": "abc", "weight": True},              # not a number, boolean
        "not an object",
        {"size": 1, "weight": 2, "colour": 7},        # colour must be a string
        {"size": 1, "weight": 2, "member": "maybe"},  # not a boolean
    ]
    with pytest.raises(UnprocessableError) as err:
        spec.transform(records)
    found = [(d["index"], d["field"]) for d in err.value.details]
    assert found == [(1, "size"), (2, "size"), (2, "weight"), (3, None), (4, "colour"), (5, "member")]
    assert "5 of 6 records are invalid" in err.value.message and err.value.status == 422


def test_non_finite_huge_and_numpy_numbers(spec: PreprocessSpec) -> None:
    for bad in (float("inf"), 10**400, 3e300):
        with pytest.raises(UnprocessableError) as err:
            spec.transform([{"size": bad, "weight": 1}])
        assert err.value.details[0]["field"] == "size"
    assert spec.transform([{"size": np.int64(3), "weight": np.float32(2.5)}]).shape == (1, 5)


def test_json_round_trip_is_exact(spec: PreprocessSpec) -> None:
    again = PreprocessSpec.from_json(spec.to_json())
    assert again == spec and again.to_json() == spec.to_json()
    record = [{"size": 3.3, "weight": 17, "colour": "blue"}]
    assert np.array_equal(again.transform(record), spec.transform(record))


def test_unknown_format_version_is_refused(spec: PreprocessSpec) -> None:
    data = json.loads(spec.to_json())
    data["format_version"] = SPEC_FORMAT_VERSION + 1
    with pytest.raises(ValueError, match="format_version 2 is not supported"):
        PreprocessSpec.from_json(json.dumps(data))


def test_fit_rejects_bad_columns_and_configs() -> None:
    with pytest.raises(ValueError, match="'size'.*row 1"):
        PreprocessSpec.fit({"size": ["1", "big"]}, SpecConfig.simple(numeric=["size"]))
    with pytest.raises(ValueError, match="not in the data: nope"):
        PreprocessSpec.fit(COLUMNS, SpecConfig.simple(numeric=["nope"]))
    with pytest.raises(ValueError, match="fill_value"):
        ColumnConfig(kind="numeric", missing="constant")
    with pytest.raises(ValueError, match="exactly one text column"):
        SpecConfig.simple(numeric=["a"], text=["t"])


# --- text ------------------------------------------------------------------------------------

TEXTS = ["Great product, fast delivery!", "Terrible: it broke after 2 days.", "great GREAT great",
         "Livraison très rapide — merci!", "ÜBER schnell, danke"]


@pytest.fixture
def text_spec() -> PreprocessSpec:
    return PreprocessSpec.fit({"text": TEXTS}, SpecConfig(columns={"text": ColumnConfig(kind="text", max_length=5)}))


def test_tokenization_normalises_case_punctuation_and_unicode() -> None:
    assert tokenize("Hello, WORLD!! ﬁne\u00a0day — ÉTÉ") == ["hello", "world", "fine", "day", "été"]
    assert tokenize("Straße") == ["strasse"]  # full case folding, not ASCII-only lowercasing
    assert tokenize("Hi!", lowercase=False, strip_punctuation=False) == ["Hi!"]


def test_text_becomes_padded_integer_ids(text_spec: PreprocessSpec) -> None:
    f = text_spec.text_feature
    assert f.vocabulary[0] == "great"  # most frequent first
    x = text_spec.transform(["great delivery", {"text": "unknownword great great great great great"}])
    assert x.dtype == np.int32 and x.shape == (2, 5)
    great = f.vocabulary.index("great") + 2
    assert x[0].tolist() == [great, f.vocabulary.index("delivery") + 2, 0, 0, 0]
    assert x[1].tolist() == [OOV_ID, great, great, great, great]  # truncated to max_length
    assert text_spec.input_schema()[0].type == "string" and text_spec.output_dtype() == "int32"


def test_text_vocabulary_cap_and_int64() -> None:
    spec = PreprocessSpec.fit({"t": TEXTS},
                              SpecConfig(columns={"t": ColumnConfig(kind="text", vocab_size=3, dtype="int64")}))
    f = spec.text_feature
    assert len(f.vocabulary) == 3 and f.vocabulary_size == 5
    assert spec.transform(["terrible"]).dtype == np.int64


def test_bad_text_records_are_named(text_spec: PreprocessSpec) -> None:
    with pytest.raises(UnprocessableError) as err:
        text_spec.transform(["fine", 42, {"text": None}, {"text": ["a"]}])
    assert [(d["index"], d["field"]) for d in err.value.details] == [(1, None), (2, "text"), (3, "text")]


# --- properties ------------------------------------------------------------------------------

json_values = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=8)
records = st.lists(st.one_of(st.dictionaries(st.sampled_from(["size", "weight", "colour", "member", "x"]), json_values),
                             json_values), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(records)
def test_arbitrary_records_give_a_finite_matrix_or_the_documented_error(recs: list) -> None:
    spec = PreprocessSpec.fit(COLUMNS, SpecConfig.simple(numeric=["size", "weight"], categorical=["colour"],
                                                         boolean=["member"], optional=["colour", "member"]))
    rejected: list[dict[str, Any]] | None = None
    try:
        x = spec.transform(recs)
    except UnprocessableError as err:
        rejected = err.details
    if rejected is None:
        assert x.shape == (len(recs), 5) and np.isfinite(x).all()
    else:
        assert rejected and all({"index", "field", "reason"} <= set(d) for d in rejected)
        assert all(0 <= d["index"] < len(recs) for d in rejected)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=30),
       st.sampled_from(["standard", "minmax", "robust", "none"]), st.sampled_from(["none", "iqr", "zscore"]))
def test_fit_transform_invariants(values: list, scaler: str, outliers: str) -> None:
    spec = PreprocessSpec.fit({"v": values}, SpecConfig(columns={"v": ColumnConfig(kind="numeric", scaler=scaler,
                                                                                 outliers=outliers)}))
    x = spec.transform_columns({"v": values})[:, 0]
    assert np.isfinite(x).all()
    if scaler == "standard" and outliers == "none" and np.std(values) > 1e-3:
        assert abs(float(np.mean(x))) < 1e-3  # fitted on these values: centred
    if scaler == "minmax" and outliers == "none" and np.ptp(values) > 1e-3:
        assert x.min() == pytest.approx(0, abs=1e-5) and x.max() == pytest.approx(1, abs=1e-5)
    assert PreprocessSpec.from_json(spec.to_json()) == spec


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=30), min_size=1, max_size=10))
def test_any_text_encodes_within_the_vocabulary(texts: list) -> None:
    spec = PreprocessSpec.fit({"t": TEXTS}, SpecConfig(columns={"t": ColumnConfig(kind="text", max_length=6)}))
    x = spec.transform(texts)
    assert x.shape == (len(texts), 6) and x.min() >= 0 and x.max() < spec.text_feature.vocabulary_size


def test_transform_valid_keeps_good_records_and_lists_every_error(spec: PreprocessSpec) -> None:
    records = [{"size": 1, "weight": 2}] * 3 + [{"weight": 1}] * 60 + [{"size": 2, "weight": 3}]
    x, keep, errors = spec.transform_valid(records)
    assert keep == [0, 1, 2, 63] and x.shape == (4, 5)
    assert np.array_equal(x, spec.transform([records[i] for i in keep]))
    assert len(errors) == 60 and {e["index"] for e in errors} == set(range(3, 63))
    with pytest.raises(UnprocessableError) as err:
        spec.transform(records)
    assert len(err.value.details) == 50  # an API answer lists the first 50


def test_training_fills_missing_required_values_when_the_strategy_is_a_fill() -> None:
    """A required column with missing='median' fills its missing training rows (fill_required, the
    training job's call); serving still rejects a record without the field."""
    spec = PreprocessSpec.fit(COLUMNS, SpecConfig(columns={
        "size": ColumnConfig(kind="numeric", missing="median", scaler="none"),
        "colour": ColumnConfig(kind="categorical", missing="most_frequent"),
        "member": ColumnConfig(kind="boolean", missing="constant", fill_value=False)}))
    x = spec.transform_columns({k: COLUMNS[k] for k in ("size", "colour", "member")}, fill_required=True)
    assert x[:, 0].tolist() == [1, 2, 2, 5] and x[3, 1:].tolist() == [0, 1, 0]  # median 2, "red", False
    with pytest.raises(UnprocessableError) as err:
        spec.transform_columns({k: COLUMNS[k] for k in ("size", "colour", "member")})
    assert [(d["index"], d["field"]) for d in err.value.details] == [(2, "size"), (3, "colour"), (3, "member")]
    with pytest.raises(UnprocessableError):
        spec.transform([{"colour": "red", "member": True}])
    # a required column whose strategy is drop has no fill: still an error, even in training
    dropped = PreprocessSpec.fit(COLUMNS, SpecConfig.simple(numeric=["size"]))
    with pytest.raises(UnprocessableError):
        dropped.transform_columns({"size": COLUMNS["size"]}, fill_required=True)


# --- the scalar path for a few records: bit-identical to the vectorised one ------------------------------


PARITY_DATA = {
    "n": [1.0, 2.0, 2.5, 4.0, 7.0, 100.0, None, "NA", 0.0],
    "m": [-3, 0, 5, 5, 9, 12, 40, None, 1],
    "c": ["red", "blue", "red", "green", None, "red", "blue", "NA", "violet"],
    "o": ["low", "high", "mid", "low", "mid", None, "high", "low", "low"],
    "b": ["yes", "no", True, False, None, "1", 0, "t", "n"],
}
PARITY_SPECS = {
    "defaults, optional fills": SpecConfig(columns={
        "n": ColumnConfig(kind="numeric", required=False), "m": ColumnConfig(kind="numeric", scaler="minmax"),
        "c": ColumnConfig(kind="categorical", required=False), "b": ColumnConfig(kind="boolean", required=False)}),
    "clipped, other, ordinal, l1": SpecConfig(columns={
        "n": ColumnConfig(kind="numeric", outliers="iqr", outlier_action="clip", scaler="robust", required=False),
        "m": ColumnConfig(kind="numeric", outliers="zscore", outlier_threshold=0.5, required=False, missing="constant",
                          fill_value=0.0),
        "c": ColumnConfig(kind="categorical", unseen="other", required=False, missing="constant", fill_value="zzz"),
        "o": ColumnConfig(kind="categorical", encoding="ordinal", unseen="other", required=False),
        "b": ColumnConfig(kind="boolean")}, row_norm="l1"),
    "imputed outliers": SpecConfig(columns={
        "n": ColumnConfig(kind="numeric", outliers="iqr", outlier_action="impute", required=False),
        "m": ColumnConfig(kind="numeric", outliers="zscore", outlier_threshold=0.5, outlier_action="impute")}),
    "reject, ordinal ignore, l2, no fills": SpecConfig(columns={
        "n": ColumnConfig(kind="numeric", scaler="none", required=False, missing="drop"),
        "c": ColumnConfig(kind="categorical", unseen="reject", required=False, missing="drop"),
        "o": ColumnConfig(kind="categorical", encoding="ordinal", required=False, missing="drop"),
        "b": ColumnConfig(kind="boolean", required=False, missing="drop")}, row_norm="l2"),
}
# what callers send: plain values mostly, and every kind of trouble now and then
PARITY_VALUES = [0, 1, 2, 5, -7, 12, 2**60, 10**400, 0.0, -0.0, 1.5, -2.25, 1e300, -1e308, 3.0, 4.0, 100.0,
                 float("nan"), float("inf"), True, False, None, "", "NA", " null ", "5", "red", "blue", "green", " red",
                 "red\x00", "violet", "low", "mid", "high", "yes", "No", "t", "maybe", [1], {"x": 1}]


def _random_record(rng: np.random.Generator, fields: list[str], clean: bool) -> object:
    if not clean and rng.random() < 0.03:
        return ["a string", None, 3, [1, 2]][rng.integers(4)]  # not an object
    record = {}
    for name in fields:
        draw = rng.random()
        if draw < 0.08 and not clean:
            continue  # absent
        if draw < 0.6 or (clean and name not in ("n", "m")):  # a value of the field's own column
            record[name] = PARITY_DATA[name][rng.integers(len(PARITY_DATA[name]))]
        elif (draw < 0.8 or clean) and name in ("n", "m"):  # around the clip bounds and scales: any float
            record[name] = float(rng.normal(5, 20))
        else:
            record[name] = PARITY_VALUES[rng.integers(len(PARITY_VALUES))]
    return record


def _outcome(spec: PreprocessSpec, records: list) -> tuple:
    try:
        x = spec.transform(records)
    except UnprocessableError as err:
        return ("error", err.message, err.details)
    return ("matrix", x.dtype.str, x.shape, x.tobytes())


@pytest.mark.parametrize("name", sorted(PARITY_SPECS))
def test_scalar_path_is_bit_identical_to_the_vectorised_one(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given specs covering every encoding, fill, clip and norm, and 3,000 random batches of 1 to 8 records
    (missing, absent, unknown and wrongly typed values, signed zeros, huge numbers, non-objects),
    when each batch is transformed with the scalar path for few records and with it switched off,
    then both give byte-identical float32 matrices, or the same error with the same details."""
    from maas_core.preprocess import spec as spec_module

    spec = PreprocessSpec.fit(dict(PARITY_DATA), PARITY_SPECS[name])
    fields = list(PARITY_SPECS[name].columns)
    rng = np.random.default_rng(sum(map(ord, name)))
    scalar_used = 0
    for _ in range(3000):
        clean = rng.random() < 0.5  # half the batches: only values of the training columns, or plain numbers
        size = rng.integers(1, spec_module.SCALAR_MAX_RECORDS + 1)
        records = [_random_record(rng, fields, clean) for _ in range(size)]
        scalar_used += spec.transform_scalar(records) is not None
        fast = _outcome(spec, records)
        monkeypatch.setattr(spec_module, "SCALAR_MAX_RECORDS", 0)
        vectorised = _outcome(spec, records)
        monkeypatch.undo()
        assert fast == vectorised, records
    assert scalar_used > 300  # the scalar path really ran, not only its fallback


def test_scalar_path_is_not_used_for_text(text_spec: PreprocessSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    """Text specs keep their per-record tokenizer: few records give what many would, row for row."""
    from maas_core.preprocess import spec as spec_module

    records = ["Fast delivery, thanks!", {"text": "ÜBER schnell"}, {"text": "x" * 50 + " unknown words"}]
    few = spec_module.PreprocessSpec.transform(text_spec, records)
    monkeypatch.setattr(spec_module, "SCALAR_MAX_RECORDS", 0)
    assert few.tobytes() == text_spec.transform(records).tobytes() and few.dtype == np.int32
