"""The fitted preprocessing spec: raw records -> the feature matrix the model was trained on.

Fitted once by the training job, saved as `preprocess.json` beside the model, and applied by the
same numpy code in training and serving, so the two cannot drift apart. Work is per column
(vectorised); the only per-record Python is pulling fields out of JSON objects.

Numeric fields: cast to float (numbers or numeric strings), missing -> fitted fill, then
standardised with the fitted mean/std. Categorical fields: missing -> fitted fill (most frequent),
then one-hot over the fitted categories; an unseen category encodes as all zeros.
A field marked required must be present; every problem is reported as (record index, field, reason).
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from maas_core.errors import UnprocessableError
from maas_core.manifest import InputField

SPEC_FORMAT_VERSION = 1
MAX_REPORTED_ERRORS = 50
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class NumericFeature(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["numeric"] = "numeric"
    name: str
    required: bool = True
    fill: float
    mean: float
    std: float


class CategoricalFeature(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["categorical"] = "categorical"
    name: str
    required: bool = True
    fill: str
    categories: list[str]


Feature = Annotated[NumericFeature | CategoricalFeature, Field(discriminator="kind")]


class RecordError(Exception):
    """Collects per-record problems so one response can name all of them."""


class PreprocessSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: int = SPEC_FORMAT_VERSION
    features: list[Feature]

    # --- (de)serialisation ------------------------------------------------------------------

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> "PreprocessSpec":
        data = json.loads(text)
        version = data.get("format_version") if isinstance(data, dict) else None
        if version != SPEC_FORMAT_VERSION:
            raise ValueError(
                f"preprocess spec format_version {version!r} is not supported (this build reads {SPEC_FORMAT_VERSION})"
            )
        return cls.model_validate(data)

    # --- what the spec expects and produces ---------------------------------------------------

    def input_schema(self) -> list[InputField]:
        return [
            InputField(name=f.name, type="number" if f.kind == "numeric" else "string", required=f.required)
            for f in self.features
        ]

    def feature_names(self) -> list[str]:
        names: list[str] = []
        for f in self.features:
            if f.kind == "numeric":
                names.append(f.name)
            else:
                names.extend(f"{f.name}={c}" for c in f.categories)
        return names

    # --- fitting (training job) ---------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        columns: Mapping[str, Sequence[Any]],
        numeric: Sequence[str],
        categorical: Sequence[str],
        optional: Sequence[str] = (),
    ) -> "PreprocessSpec":
        """Fit fills, scales and categories on training columns (missing values are ignored)."""
        features: list[NumericFeature | CategoricalFeature] = []
        for name in numeric:
            values, bad = _to_float(columns[name])
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                raise ValueError(f"column {name!r}: row {first} value {columns[name][first]!r} is not numeric")
            present = values[~np.isnan(values)]
            if present.size == 0:
                raise ValueError(f"column {name!r} has no values to fit")
            mean = float(present.mean())
            std = float(present.std())
            features.append(NumericFeature(name=name, required=name not in optional, fill=mean, mean=mean,
                                           std=std if std > 0 else 1.0))
        for name in categorical:
            values, missing = _to_str(columns[name])
            present = values[~missing]
            if present.size == 0:
                raise ValueError(f"column {name!r} has no values to fit")
            cats, counts = np.unique(present, return_counts=True)
            features.append(CategoricalFeature(name=name, required=name not in optional,
                                               fill=str(cats[np.argmax(counts)]), categories=[str(c) for c in cats]))
        return cls(features=features)

    # --- transforming (training and serving) --------------------------------------------------

    def transform(self, records: Sequence[Any]) -> np.ndarray:
        """Raw JSON records -> float32 feature matrix, or UnprocessableError naming each bad record."""
        errors: list[dict[str, Any]] = []
        objects = [r if isinstance(r, Mapping) else {} for r in records]
        for i, r in enumerate(records):
            if not isinstance(r, Mapping):
                errors.append({"index": i, "field": None, "reason": f"record must be a JSON object, got {_kind(r)}"})
        columns = {f.name: [o.get(f.name) for o in objects] for f in self.features}
        return self.transform_columns(columns, errors=errors)

    def transform_columns(self, columns: Mapping[str, Sequence[Any]], errors: list[dict[str, Any]] | None = None) -> np.ndarray:
        """Columns of raw values -> float32 feature matrix. The training job calls this too."""
        errors = [] if errors is None else errors
        blocks: list[np.ndarray] = []
        for f in self.features:
            raw = columns.get(f.name)
            if raw is None:
                raise UnprocessableError(f"field {f.name!r} is missing from every record", [{"index": None, "field": f.name, "reason": "missing"}])
            if f.kind == "numeric":
                blocks.append(self._numeric(f, raw, errors))
            else:
                blocks.append(self._categorical(f, raw, errors))
        if errors:
            errors.sort(key=lambda e: (e["index"] if e["index"] is not None else -1))
            bad = len({e["index"] for e in errors})
            raise UnprocessableError(
                f"{bad} of {len(next(iter(columns.values()), []))} records are invalid",
                errors[:MAX_REPORTED_ERRORS],
            )
        return np.hstack(blocks).astype(np.float32, copy=False) if blocks else np.zeros((0, 0), np.float32)

    @staticmethod
    def _numeric(f: NumericFeature, raw: Sequence[Any], errors: list[dict[str, Any]]) -> np.ndarray:
        values, bad = _to_float(raw)
        for i in np.flatnonzero(bad):
            errors.append({"index": int(i), "field": f.name, "reason": f"expected a number, got {_kind(raw[i])} {_short(raw[i])}"})
        missing = np.isnan(values) & ~bad
        if f.required:
            for i in np.flatnonzero(missing):
                errors.append({"index": int(i), "field": f.name, "reason": "required field is missing"})
        values = np.where(np.isnan(values), f.fill, values)
        scaled = (values - f.mean) / f.std
        for i in np.flatnonzero(~bad & (np.abs(scaled) > _FLOAT32_MAX)):  # would become inf in the model's float32
            errors.append({"index": int(i), "field": f.name, "reason": f"value {_short(raw[i])} is out of range"})
        return scaled.reshape(-1, 1)

    @staticmethod
    def _categorical(f: CategoricalFeature, raw: Sequence[Any], errors: list[dict[str, Any]]) -> np.ndarray:
        values, missing = _to_str(raw)
        wrong = np.fromiter((not (v is None or isinstance(v, str)) for v in raw), bool, len(raw))
        for i in np.flatnonzero(wrong):
            errors.append({"index": int(i), "field": f.name, "reason": f"expected a string, got {_kind(raw[i])}"})
        if f.required:
            for i in np.flatnonzero(missing & ~wrong):
                errors.append({"index": int(i), "field": f.name, "reason": "required field is missing"})
        values = np.where(missing, f.fill, values)
        cats = np.asarray(f.categories)
        order = np.argsort(cats)
        pos = np.searchsorted(cats, values, sorter=order).clip(0, len(cats) - 1)
        idx = order[pos]
        known = cats[idx] == values
        onehot = np.zeros((len(values), len(cats)), np.float64)
        onehot[np.flatnonzero(known), idx[known]] = 1.0  # unseen category: all zeros
        return onehot


def _to_float(raw: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Column -> (float64 values with NaN for missing, mask of values that are not numbers)."""
    if set(map(type, raw)) <= {int, float, type(None)}:
        try:
            values = np.array(raw, dtype=np.float64)  # None -> nan
            return values, ~np.isfinite(values) & ~np.isnan(values)
        except OverflowError:  # an integer beyond float range: the slow path names it
            pass
    values = np.full(len(raw), np.nan)
    bad = np.zeros(len(raw), bool)
    for i, v in enumerate(raw):  # slow path only when strings or other types are present
        if v is None or (isinstance(v, str) and v.strip() in {"", "NA", "NaN", "nan", "null"}):
            continue
        if isinstance(v, bool) or not isinstance(v, (numbers.Real, str)):
            bad[i] = True
            continue
        try:
            values[i] = float(v)
        except (ValueError, OverflowError):
            bad[i] = True
            continue
        if not np.isfinite(values[i]):
            bad[i] = True
            values[i] = np.nan
    return values, bad


def _to_str(raw: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Column -> (string values, mask of missing). Empty strings and 'NA' count as missing."""
    values = np.array(["" if v is None else str(v) for v in raw], dtype=object)
    missing = np.isin(values, ["", "NA"])
    return values.astype(str) if len(values) else np.array([], dtype=str), missing


def _kind(v: Any) -> str:
    return {bool: "a boolean", str: "a string", list: "a list", dict: "an object", type(None): "null"}.get(
        type(v), "a number" if isinstance(v, (int, float)) else type(v).__name__
    )


def _short(v: Any) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= 40 else text[:37] + "..."
