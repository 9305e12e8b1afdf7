"""The fitted preprocessing spec: raw records -> the feature matrix the model was trained on.

Fitted once by the training job, saved as `preprocess.json` beside the model, and applied by the
same code in training and serving, so the two cannot drift apart. Work is per column (vectorised);
the only per-record Python is pulling fields out of JSON objects (and tokenizing text).
Every problem is reported as (record index, field, reason); nothing is dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from maas_core.errors import UnprocessableError
from maas_core.manifest import InputField
from maas_core.preprocess.config import SpecConfig
from maas_core.preprocess.features import (
    BooleanFeature,
    CategoricalFeature,
    NumericFeature,
    StringFeature,
    TextFeature,
)
from maas_core.preprocess.values import Errors, kind_of, long_strings, too_long_reason

SPEC_FORMAT_VERSION = 1
MAX_REPORTED_ERRORS = 50
# up to this many records, a tabular spec transforms record by record in plain Python (~10x cheaper than the
# per-column numpy set-up for one record); results are bit-identical, and anything unusual goes vectorised
SCALAR_MAX_RECORDS = 8

Feature = Annotated[NumericFeature | CategoricalFeature | BooleanFeature | TextFeature | StringFeature,
                    Field(discriminator="kind")]
_FEATURE_TYPES: dict[str, type[NumericFeature | CategoricalFeature | BooleanFeature | TextFeature]] = {
    "numeric": NumericFeature, "categorical": CategoricalFeature, "boolean": BooleanFeature, "text": TextFeature}


class PreprocessSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: int = SPEC_FORMAT_VERSION
    features: list[Feature] = Field(min_length=1)
    row_norm: Literal["l1", "l2"] | None = None

    @model_validator(mode="after")
    def _text_alone(self) -> PreprocessSpec:
        if self.text_feature and len(self.features) > 1:
            raise ValueError("a text spec has exactly one text feature")
        if self.row_norm and self.has_strings:
            raise ValueError("a spec with string features cannot normalise rows")
        return self

    # --- (de)serialisation ----------------------------------------------------------------------

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> PreprocessSpec:
        data = json.loads(text)
        version = data.get("format_version") if isinstance(data, dict) else None
        if version != SPEC_FORMAT_VERSION:
            raise ValueError(
                f"preprocess spec format_version {version!r} is not supported (this build reads {SPEC_FORMAT_VERSION})"
            )
        return cls.model_validate(data)

    # --- what the spec expects and produces -----------------------------------------------------

    @property
    def text_feature(self) -> TextFeature | None:
        return next((f for f in self.features if isinstance(f, TextFeature)), None)

    def input_schema(self) -> list[InputField]:
        return [f.input_field().model_copy(update={"sensitive": f.sensitive}) for f in self.features]

    def with_sensitive(self, names: set[str] | frozenset[str]) -> PreprocessSpec:
        """This spec with the named fields (also) marked sensitive, e.g. from a manifest's input schema."""
        if not any(f.name in names and not f.sensitive for f in self.features):
            return self
        return self.model_copy(update={"features": [
            f.model_copy(update={"sensitive": True}) if f.name in names else f for f in self.features]})

    def feature_names(self) -> list[str]:
        return [name for f in self.features for name in f.output_names()]

    @property
    def has_strings(self) -> bool:
        """Whether a field reaches the model as a string (an external graph's own encoder reads it)."""
        return any(isinstance(f, StringFeature) for f in self.features)

    def output_dtype(self) -> Literal["float32", "int32", "int64", "object"]:
        """The model input's dtype: float32, the text feature's integer type, or object (strings among floats)."""
        return self.text_feature.dtype if self.text_feature else "object" if self.has_strings else "float32"

    # --- fitting (training job) -----------------------------------------------------------------

    @classmethod
    def fit(cls, columns: Mapping[str, Sequence[Any]], config: SpecConfig) -> PreprocessSpec:
        """Fit every configured column on the training rows (missing values are ignored when fitting)."""
        unknown = [name for name in config.columns if name not in columns]
        if unknown:
            raise ValueError(f"configured columns not in the data: {', '.join(unknown)}")
        features: list[NumericFeature | CategoricalFeature | BooleanFeature | TextFeature | StringFeature] = [
            _FEATURE_TYPES[cfg.kind].fit(name, columns[name], cfg).model_copy(update={"sensitive": cfg.sensitive})
            for name, cfg in config.columns.items()]
        return cls(features=features, row_norm=config.row_norm)

    # --- transforming (training and serving) ----------------------------------------------------

    def transform(self, records: Sequence[Any], max_errors: int | None = MAX_REPORTED_ERRORS,
                  max_chars: int | None = None) -> np.ndarray:
        """Raw JSON records -> feature matrix, or UnprocessableError naming each bad record.

        Records are JSON objects; a text model also takes bare strings (the text itself). `max_chars`
        (serving: MAAS_MAX_FIELD_CHARS) bounds every string value, checked before any value is transformed.
        """
        if 0 < len(records) <= SCALAR_MAX_RECORDS and not self.text_feature:
            matrix = self.transform_scalar(records, max_chars)
            if matrix is not None:
                return matrix
        errors = Errors()
        text = self.text_feature
        objects: Sequence[Any] = records
        if set(map(type, records)) != {dict}:  # the common case (all dicts) skips this per-record pass
            objects = []
            for i, r in enumerate(records):
                if isinstance(r, Mapping):
                    objects.append(dict(r))
                elif text and isinstance(r, str):
                    objects.append({text.name: r})
                else:
                    expected = "a JSON object or a string" if text else "a JSON object"
                    errors.add(i, None, f"record must be {expected}, got {kind_of(r)}")
                    objects.append({})
        # dict.get mapped in C: the only per-record work left in Python's hands
        columns = {f.name: list(map(dict.get, objects, repeat(f.name, len(objects)))) for f in self.features}
        bad_records = {e["index"] for e in errors}
        return self.transform_columns(columns, errors=errors, skip=bad_records, max_errors=max_errors,
                                      max_chars=max_chars)

    def transform_scalar(self, records: Sequence[Any], max_chars: int | None = None) -> np.ndarray | None:
        """A few plain, valid records of a tabular spec -> exactly the matrix `transform` makes; None as soon as
        a record or value needs the vectorised path (not an object, missing and required, a wrong type, an
        unknown category to reject, ...), which then also names every error."""
        rows: list[list[Any]] = []
        for r in records:
            if type(r) is not dict:
                return None
            row: list[Any] = []
            for f in self.features:
                v = r.get(f.name)
                if max_chars is not None and type(v) is str and len(v) > max_chars:
                    return None
                out = f.transform_scalar(v)  # type: ignore[union-attr]  # a text spec never comes here
                if out is None:
                    return None
                row += out
            rows.append(row)
        return self._finish(np.array(rows, dtype=object if self.has_strings else np.float64))

    def transform_valid(self, records: Sequence[Any], max_chars: int | None = None
                        ) -> tuple[np.ndarray, list[int], list[dict[str, Any]]]:
        """For batch jobs: (matrix of the valid records, their indices, every error of the others).

        Records are independent, so the valid ones transform exactly as they would alone.
        """
        try:
            return self.transform(records, max_errors=None, max_chars=max_chars), list(range(len(records))), []
        except UnprocessableError as err:
            bad = {e["index"] for e in err.details}
            keep = [i for i in range(len(records)) if i not in bad]
            matrix = (self.transform([records[i] for i in keep], max_chars=max_chars) if keep
                      else np.zeros((0, 0), np.float32))
            return matrix, keep, err.details

    def transform_columns(self, columns: Mapping[str, Sequence[Any]], errors: Errors | None = None,
                          skip: set[int] | None = None, max_errors: int | None = MAX_REPORTED_ERRORS,
                          fill_required: bool = False, max_chars: int | None = None) -> np.ndarray:
        """Columns of raw values -> feature matrix. The training job calls this too.

        `fill_required` (training only): a missing value of a required feature that has a fitted fill
        (its missing strategy is mean / median / most_frequent / constant, not drop) is filled rather
        than an error. Serving leaves it False: callers must send required fields. Every value that is
        present is transformed identically either way.
        """
        errors = Errors() if errors is None else errors
        n = len(next(iter(columns.values()), []))
        missing = [f.name for f in self.features if f.name not in columns]
        if missing:
            raise UnprocessableError(f"columns missing from the data: {', '.join(missing)}",
                                     [{"index": None, "field": name, "reason": "column missing"} for name in missing])
        too_long: set[tuple[int, str]] = set()
        if max_chars is not None:
            columns = self._without_long_values(columns, max_chars, errors, too_long)
        field_errors = Errors()
        blocks = [f.transform(columns[f.name], field_errors, fill_required, max_chars=max_chars)
                  if isinstance(f, TextFeature) else f.transform(columns[f.name], field_errors, fill_required)
                  for f in self.features]
        # a record that is not an object has already been reported once, and a value too long to read once
        # (not again as missing): don't list those twice
        errors.extend(e for e in field_errors
                      if not (skip and e["index"] in skip) and (e["index"], e["field"]) not in too_long)
        if errors:
            errors.sort(key=lambda e: (-1 if e["index"] is None else e["index"]))
            bad = len({e["index"] for e in errors})
            raise UnprocessableError(f"{bad} of {n} records are invalid", list(errors[:max_errors]),
                                     details_total=len(errors))
        if self.text_feature:
            return blocks[0]
        return self._finish(np.hstack(blocks))

    def _without_long_values(self, columns: Mapping[str, Sequence[Any]], max_chars: int, errors: Errors,
                             too_long: set[tuple[int, str]]) -> dict[str, Sequence[Any]]:
        """The columns with every string over `max_chars` reported and replaced by None, before any feature
        reads it: no work or memory that grows with an over-long value."""
        out = dict(columns)
        for f in self.features:
            for i in long_strings(columns[f.name], max_chars):
                if out[f.name] is columns[f.name]:
                    out[f.name] = list(columns[f.name])
                errors.add(i, f.name, too_long_reason(len(columns[f.name][i]), max_chars))
                out[f.name][i] = None  # type: ignore[index]
                too_long.add((i, f.name))
        return out

    def _finish(self, matrix: np.ndarray) -> np.ndarray:
        """(n, features) float64 -> the model's float32 input, row-normalised if the spec says so."""
        if matrix.dtype == object:  # strings among the columns: fed to the graph's inputs one by one
            return matrix
        if self.row_norm:
            norms = np.abs(matrix).sum(axis=1) if self.row_norm == "l1" else np.sqrt((matrix**2).sum(axis=1))
            matrix = matrix / np.where(norms > 0, norms, 1.0)[:, None]
        return matrix.astype(np.float32)
