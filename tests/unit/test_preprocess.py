"""The fitted preprocessing spec: fit, transform, errors by record and field, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maas_core.errors import UnprocessableError
from maas_core.preprocess import SPEC_FORMAT_VERSION, PreprocessSpec

COLUMNS = {
    "size": ["1", "2", "NA", "5"],
    "weight": [10.0, 20.0, 30.0, 40.0],
    "colour": ["red", "blue", "red", None],
}


@pytest.fixture
def spec() -> PreprocessSpec:
    return PreprocessSpec.fit(COLUMNS, numeric=["size", "weight"], categorical=["colour"], optional=["colour"])


def test_fit_learns_fills_scales_and_categories(spec: PreprocessSpec) -> None:
    size, weight, colour = spec.features
    assert size.mean == pytest.approx(8 / 3) and size.fill == size.mean  # NA ignored when fitting
    assert weight.std == pytest.approx(np.std([10, 20, 30, 40]))
    assert colour.categories == ["blue", "red"] and colour.fill == "red"
    assert spec.feature_names() == ["size", "weight", "colour=blue", "colour=red"]
    assert [(f.name, f.type, f.required) for f in spec.input_schema()] == [
        ("size", "number", True), ("weight", "number", True), ("colour", "string", False)]


def test_transform_scales_one_hot_encodes_and_fills_optional(spec: PreprocessSpec) -> None:
    x = spec.transform([{"size": 2, "weight": 25, "colour": "blue"}, {"size": "5", "weight": 10}])
    size, weight, _ = spec.features
    assert x.dtype == np.float32 and x.shape == (2, 4)
    np.testing.assert_allclose(x[:, 0], np.array([(2 - size.mean) / size.std, (5 - size.mean) / size.std], np.float32))
    np.testing.assert_allclose(x[:, 2:], [[1, 0], [0, 1]])  # missing optional colour -> fitted fill "red"


def test_unseen_category_encodes_as_all_zeros(spec: PreprocessSpec) -> None:
    x = spec.transform([{"size": 1, "weight": 1, "colour": "green"}])
    assert x[0, 2:].tolist() == [0.0, 0.0]


def test_every_bad_record_is_named_by_index_and_field(spec: PreprocessSpec) -> None:
    records = [
        {"size": 1, "weight": 2},                  # fine
        {"weight": 2},                              # required size missing
        {"size": "abc", "weight": True},            # not a number, boolean
        "not an object",
        {"size": 1, "weight": 2, "colour": 7},      # colour must be a string
    ]
    with pytest.raises(UnprocessableError) as err:
        spec.transform(records)
    found = {(d["index"], d["field"]) for d in err.value.details}
    assert {(1, "size"), (2, "size"), (2, "weight"), (3, None), (4, "colour")} <= found
    assert 0 not in {d["index"] for d in err.value.details}
    assert "4 of 5 records are invalid" in err.value.message
    assert err.value.status == 422


def test_non_finite_numbers_are_rejected(spec: PreprocessSpec) -> None:
    with pytest.raises(UnprocessableError) as err:
        spec.transform([{"size": float("inf"), "weight": 1}])
    assert err.value.details[0]["field"] == "size"


def test_json_round_trip_is_exact(spec: PreprocessSpec) -> None:
    again = PreprocessSpec.from_json(spec.to_json())
    assert again == spec and again.to_json() == spec.to_json()
    record = [{"size": 3.3, "weight": 17, "colour": "blue"}]
    assert np.array_equal(again.transform(record), spec.transform(record))


def test_unknown_format_version_is_refused(spec: PreprocessSpec) -> None:
    data = json.loads(spec.to_json())
    data["format_version"] = SPEC_FORMAT_VERSION + 1
    with pytest.raises(ValueError, match="format_version"):
        PreprocessSpec.from_json(json.dumps(data))


def test_fit_rejects_a_non_numeric_numeric_column() -> None:
    with pytest.raises(ValueError, match="'size'.*row 1"):
        PreprocessSpec.fit({"size": ["1", "big"]}, numeric=["size"], categorical=[])


json_values = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.dictionaries(st.sampled_from(["size", "weight", "colour", "other"]), json_values),
                          json_values), min_size=1, max_size=8))
def test_arbitrary_records_give_a_matrix_or_the_documented_error(records: list) -> None:
    spec = PreprocessSpec.fit(COLUMNS, numeric=["size", "weight"], categorical=["colour"], optional=["colour"])
    try:
        x = spec.transform(records)
    except UnprocessableError as err:
        assert err.details and all("index" in d and "reason" in d for d in err.details)
    else:
        assert x.shape == (len(records), 4) and np.isfinite(x).all()


def test_huge_integers_and_numpy_numbers_are_handled(spec: PreprocessSpec) -> None:
    with pytest.raises(UnprocessableError) as err:
        spec.transform([{"size": 10**400, "weight": 1}])
    assert err.value.details[0]["field"] == "size" and err.value.details[0]["index"] == 0
    x = spec.transform([{"size": np.int64(3), "weight": np.float32(2.5)}])
    assert x.shape == (1, 4)
