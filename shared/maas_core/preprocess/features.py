"""Fitted features. Each knows how it was fitted (`fit`), what callers send (`input_field`), which
model inputs it produces (`output_names`) and how to turn one raw column into them (`transform`)."""

from __future__ import annotations

import math
import numbers
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from maas_core.manifest import InputField
from maas_core.preprocess import text as txt
from maas_core.preprocess.config import ColumnConfig
from maas_core.preprocess.values import (
    FALSE_STRINGS,
    MISSING_STRINGS,
    TRUE_STRINGS,
    Errors,
    kind_of,
    short,
    to_bool,
    to_float,
    to_str,
    too_long_reason,
)

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_MAX_EXACT_INT = 2**53  # larger ints take the vectorised path (float range, numpy's own conversion)
_MIN_SCALE = 1e-9  # a (near) constant column is left unscaled rather than blown up
OTHER = "<other>"


class _Feature(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    required: bool = True
    sensitive: bool = Field(default=False, description="personal data: error messages never quote its values, "
                                                       "captures mask them")

    def _show(self, v: Any) -> str:
        """A bad value as an error message may quote it: never the value of a sensitive field."""
        return "(value withheld: sensitive field)" if self.sensitive else short(v)

    def _missing_errors(self, missing: np.ndarray, errors: Errors, fill_required: bool = False) -> None:
        """A missing required value is an error, unless `fill_required` (training rows, whose column's
        missing strategy is a fill: the config promised to fill them) and the feature has a fill."""
        if self.required and not (fill_required and getattr(self, "fill", None) is not None):
            for i in np.flatnonzero(missing):
                errors.add(int(i), self.name, "required field is missing")


def outlier_bounds(values: np.ndarray, method: str, threshold: float | None) -> tuple[float, float] | None:
    """(low, high) outside which a value is an outlier: IQR fences (k=1.5) or mean ± k·std (k=3). None for
    a column whose quartiles coincide (mostly one value, e.g. a rare flag): fences of width 0 would make
    every other value an outlier."""
    present = values[~np.isnan(values)]
    if method == "none" or present.size == 0:
        return None
    if method == "iqr":
        k = threshold or 1.5
        q1, q3 = np.percentile(present, [25, 75])
        if q3 <= q1:
            return None
        return float(q1 - k * (q3 - q1)), float(q3 + k * (q3 - q1))
    k = threshold or 3.0
    mean, std = float(present.mean()), float(present.std())
    return mean - k * std, mean + k * std


def _most_frequent(values: Sequence[Any]) -> Any:
    counts = Counter(values)
    return min(counts, key=lambda v: (-counts[v], str(v)))  # ties: smallest, so fitting is deterministic


class NumericFeature(_Feature):
    kind: Literal["numeric"] = "numeric"
    fill: float | None = Field(default=None, description="value used when the field is missing (optional fields)")
    clip: tuple[float, float] | None = Field(default=None, description="fitted outlier bounds, applied before scaling")
    impute: float | None = Field(
        default=None, description="a value outside `clip` is replaced by this (the training median inside the "
                                  "bounds) instead of clipped to the bound: outlier_action impute")
    scaler: Literal["standard", "minmax", "robust", "none"] = "standard"
    center: float = 0.0
    scale: float = 1.0

    @classmethod
    def fit(cls, name: str, raw: Sequence[Any], cfg: ColumnConfig) -> NumericFeature:
        values, bad = to_float(raw)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(f"column {name!r}: row {first} value {short(raw[first])} is not a number")
        present = values[~np.isnan(values)]
        if present.size == 0:
            raise ValueError(f"column {name!r} has no values to fit")
        # bounds first: fills and scales are then fitted on the values the model will see
        clip = outlier_bounds(values, cfg.outliers, cfg.outlier_threshold) \
            if cfg.outlier_action in ("clip", "impute") else None
        impute = None
        if clip and cfg.outlier_action == "impute":
            outside = (present < clip[0]) | (present > clip[1])
            impute = float(np.median(present[~outside]))  # the bounds hold the quartiles: never empty
            present = np.where(outside, impute, present)
        elif clip:
            present = np.clip(present, *clip)
        fills: dict[str, Callable[[], float | None]] = {
            "mean": lambda: float(present.mean()),
            "median": lambda: float(np.median(present)),
            "most_frequent": lambda: float(_most_frequent(present.tolist())),
            "constant": lambda: float(cfg.fill_value),  # type: ignore[arg-type]
            "drop": lambda: None,
        }
        fill = fills[cfg.missing_strategy()]()
        if cfg.scaler == "standard":
            center, scale = float(present.mean()), float(present.std())
        elif cfg.scaler == "minmax":
            center, scale = float(present.min()), float(present.max() - present.min())
        elif cfg.scaler == "robust":
            q1, median, q3 = np.percentile(present, [25, 50, 75])
            center, scale = float(median), float(q3 - q1)
        else:
            center, scale = 0.0, 1.0
        return cls(name=name, required=cfg.required, fill=fill, clip=clip, impute=impute, scaler=cfg.scaler,
                   center=center, scale=scale if scale > _MIN_SCALE else 1.0)

    def input_field(self) -> InputField:
        return InputField(name=self.name, type="number", required=self.required)

    def output_names(self) -> list[str]:
        return [self.name]

    def transform(self, raw: Sequence[Any], errors: Errors, fill_required: bool = False) -> np.ndarray:
        values, bad = to_float(raw)
        for i in np.flatnonzero(bad):
            errors.add(int(i), self.name, f"expected a number, got {kind_of(raw[int(i)])} {self._show(raw[int(i)])}")
        missing = np.isnan(values) & ~bad
        self._missing_errors(missing, errors, fill_required)
        values = np.where(missing, self.fill if self.fill is not None else 0.0, values)
        if self.clip and self.impute is not None:
            values = np.where((values < self.clip[0]) | (values > self.clip[1]), self.impute, values)
        elif self.clip:
            values = np.clip(values, *self.clip)
        scaled = (values - self.center) / self.scale
        for i in np.flatnonzero(~bad & (np.abs(scaled) > _FLOAT32_MAX)):  # would become inf in float32
            errors.add(int(i), self.name, f"value {self._show(raw[int(i)])} is out of range")
        return scaled.reshape(-1, 1)

    def transform_scalar(self, v: Any) -> list[float] | None:
        """`transform` of one plain value, bit for bit (the same IEEE float64 operations, in Python); None for
        anything that is not plainly valid (the vectorised path then decides, and names the error)."""
        t = type(v)
        if v is None:
            if self.required:
                return None
            x = self.fill if self.fill is not None else 0.0
        elif t is float or (t is int and -_MAX_EXACT_INT <= v <= _MAX_EXACT_INT):  # not bool, not a numpy scalar
            x = float(v)
            if not math.isfinite(x):
                return None
        else:
            return None
        if self.clip:  # as np.clip: x is kept when equal to a bound (the sign of a zero survives)
            lo, hi = self.clip
            if self.impute is not None:
                x = self.impute if x < lo or x > hi else x
            else:
                x = lo if x < lo else hi if x > hi else x
        scaled = (x - self.center) / self.scale
        return [scaled] if abs(scaled) <= _FLOAT32_MAX else None


class CategoricalFeature(_Feature):
    kind: Literal["categorical"] = "categorical"
    fill: str | None = None
    categories: list[str]
    encoding: Literal["onehot", "ordinal"] = "onehot"
    unseen: Literal["ignore", "other", "reject"] = "ignore"
    # category -> position (`transform`); the scalar path's copy is None when a category holds a NUL, which it
    # leaves to `transform`
    _positions: dict[str, int] = PrivateAttr(default_factory=dict)
    _index: dict[str, int] | None = PrivateAttr(default=None)

    def model_post_init(self, _context: Any) -> None:
        self._positions = {c: i for i, c in enumerate(self.categories)}
        if not any("\x00" in c for c in self.categories):
            self._index = self._positions

    def _position(self, value: str) -> int:
        """Where a value stands among the sorted categories (a fill that is no category: where it would sort)."""
        hit = self._positions.get(value)
        return hit if hit is not None else min(bisect_left(self.categories, value), len(self.categories) - 1)

    @classmethod
    def fit(cls, name: str, raw: Sequence[Any], cfg: ColumnConfig) -> CategoricalFeature:
        values, missing, wrong = to_str([None if v is None else str(v) for v in raw])
        present = values[~missing].tolist()
        if not present:
            raise ValueError(f"column {name!r} has no values to fit")
        counts = Counter(present)
        kept = sorted(counts, key=lambda c: (-counts[c], c))[: cfg.max_categories]
        strategy = cfg.missing_strategy()
        fill = (None if strategy == "drop" else str(cfg.fill_value) if strategy == "constant"
                else _most_frequent(present))
        return cls(name=name, required=cfg.required, fill=fill, categories=sorted(kept), encoding=cfg.encoding,
                   unseen=cfg.unseen)

    def input_field(self) -> InputField:
        return InputField(name=self.name, type="string", required=self.required,
                          description="one of: " + ", ".join(self.categories[:20])
                          + (" ..." if len(self.categories) > 20 else ""))

    def output_names(self) -> list[str]:
        if self.encoding == "ordinal":
            return [self.name]
        other = [f"{self.name}={OTHER}"] if self.unseen == "other" else []
        return [f"{self.name}={c}" for c in self.categories] + other

    def transform(self, raw: Sequence[Any], errors: Errors, fill_required: bool = False) -> np.ndarray:
        values, missing, wrong = to_str(raw)
        for i in np.flatnonzero(wrong):
            errors.add(int(i), self.name, f"expected a string, got {kind_of(raw[int(i)])}")
        self._missing_errors(missing, errors, fill_required)
        # dict lookups mapped in C: cheaper than numpy string arrays, and memory stays the values' own
        pos = np.fromiter(map(self._positions.get, values, repeat(-1)), np.intp, len(values))
        pos[missing] = self._position(self.fill or "")  # a missing value counts as known, at its fill's place
        pos[wrong] = 0
        known = (pos >= 0) | missing | wrong
        unseen = np.flatnonzero(~known)
        cats = self.categories
        if self.unseen == "reject":
            for i in unseen:
                errors.add(int(i), self.name,
                           f"unknown category {self._show(raw[int(i)])}; expected one of {self.categories[:20]}")
        k = len(cats)
        if self.encoding == "ordinal":
            codes = pos.astype(np.float64)
            codes[unseen] = k if self.unseen == "other" else -1.0
            return codes.reshape(-1, 1)
        width = k + (1 if self.unseen == "other" else 0)
        onehot = np.zeros((len(values), width))
        rows = np.flatnonzero(known & ~wrong)
        onehot[rows, pos[rows]] = 1.0
        if self.unseen == "other":
            onehot[unseen, k] = 1.0
        return onehot

    def transform_scalar(self, v: Any) -> list[float] | None:
        """`transform` of one plain value, bit for bit; None for anything else (the vectorised path decides)."""
        index, cats = self._index, self.categories
        if index is None or not cats or not (v is None or type(v) is str):
            return None
        if v is not None and ("\x00" in v or v[:1].isspace() or v[-1:].isspace()):
            return None  # numpy drops trailing NULs and the vectorised path strips: leave those to it
        k = len(cats)
        if v is None or v in MISSING_STRINGS:
            if self.required:
                return None
            # as np.searchsorted places the fill: a missing value counts as known, even if the fill is no category
            value = self.fill or ""
            pos, known = index.get(value), True
            if pos is None:
                pos = min(bisect_left(cats, value), k - 1)
        else:
            pos = index.get(v)
            known = pos is not None
            if pos is None:
                if self.unseen == "reject":
                    return None
                pos = min(bisect_left(cats, v), k - 1)
        if self.encoding == "ordinal":
            return [float(pos) if known else float(k) if self.unseen == "other" else -1.0]
        row = [0.0] * (k + (1 if self.unseen == "other" else 0))
        if known:
            row[pos] = 1.0
        elif self.unseen == "other":
            row[k] = 1.0
        return row


class BooleanFeature(_Feature):
    kind: Literal["boolean"] = "boolean"
    fill: bool | None = None

    @classmethod
    def fit(cls, name: str, raw: Sequence[Any], cfg: ColumnConfig) -> BooleanFeature:
        values, missing, bad = to_bool(raw)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(f"column {name!r}: row {first} value {short(raw[first])} is not a boolean")
        present = values[~missing]
        if present.size == 0:
            raise ValueError(f"column {name!r} has no values to fit")
        strategy = cfg.missing_strategy()
        fill = None if strategy == "drop" else bool(cfg.fill_value) if strategy == "constant" else bool(
            _most_frequent(present.tolist()))
        return cls(name=name, required=cfg.required, fill=fill)

    def input_field(self) -> InputField:
        return InputField(name=self.name, type="boolean", required=self.required)

    def output_names(self) -> list[str]:
        return [self.name]

    def transform(self, raw: Sequence[Any], errors: Errors, fill_required: bool = False) -> np.ndarray:
        values, missing, bad = to_bool(raw)
        for i in np.flatnonzero(bad):
            errors.add(int(i), self.name, f"expected a boolean, got {kind_of(raw[int(i)])} {self._show(raw[int(i)])}")
        self._missing_errors(missing, errors, fill_required)
        return np.where(missing, float(bool(self.fill)), values).reshape(-1, 1)

    def transform_scalar(self, v: Any) -> list[float] | None:
        """`transform` of one value (to_bool's rules); None when it is missing and required, or not a boolean."""
        if v is None or (isinstance(v, str) and v.strip() in MISSING_STRINGS):
            return None if self.required else [float(bool(self.fill))]
        if isinstance(v, bool):
            return [float(v)]
        if isinstance(v, numbers.Real) and v in (0, 1):
            return [float(v)]
        if isinstance(v, str):
            word = v.strip().lower()
            if word in TRUE_STRINGS:
                return [1.0]
            if word in FALSE_STRINGS:
                return [0.0]
        return None


class StringFeature(_Feature):
    """A string passed to the model as it is (stripped): for an external graph that encodes it itself (an
    skl2onnx OneHotEncoder). Its column is a numpy object array of Python strings, so a spec with one
    makes an object matrix (maas_core.feeds splits it into the graph's inputs)."""

    kind: Literal["string"] = "string"
    fill: str | None = Field(default=None, description="the value of a missing optional field (default: \"\")")

    def input_field(self) -> InputField:
        return InputField(name=self.name, type="string", required=self.required)

    def output_names(self) -> list[str]:
        return [self.name]

    def transform(self, raw: Sequence[Any], errors: Errors, fill_required: bool = False) -> np.ndarray:
        values, missing, wrong = to_str(raw)
        for i in map(int, np.flatnonzero(wrong)):
            errors.add(i, self.name, f"expected a string, got {kind_of(raw[i])} {self._show(raw[i])}")
        self._missing_errors(missing, errors, fill_required)
        values[missing] = self.fill or ""
        return values.reshape(-1, 1)

    def transform_scalar(self, v: Any) -> list[Any] | None:
        """`transform` of one value; None when it is missing and required, or not a string."""
        if not isinstance(v, str):
            return None
        v = v.strip()
        if v in MISSING_STRINGS:
            return None if self.required else [self.fill or ""]
        return [v]


class TextFeature(_Feature):
    kind: Literal["text"] = "text"
    lowercase: bool = True
    strip_punctuation: bool = True
    vocabulary: list[str] = Field(description=f"word i has id i+{txt.FIRST_WORD_ID}; "
                                              f"{txt.PAD_ID} pads, {txt.OOV_ID} is any other word")
    max_length: int
    truncate: Literal["post", "pre"] = "post"
    dtype: Literal["int32", "int64"] = "int32"
    _ids: dict[str, int] = PrivateAttr(default_factory=dict)

    @classmethod
    def fit(cls, name: str, raw: Sequence[Any], cfg: ColumnConfig) -> TextFeature:
        texts = [v for v in raw if isinstance(v, str) and v.strip()]
        if not texts:
            raise ValueError(f"column {name!r} has no text to fit")
        tokens = [txt.tokenize(t, cfg.lowercase, cfg.strip_punctuation) for t in texts]
        max_length = cfg.max_length or max(1, int(np.percentile([len(t) for t in tokens], 95)))
        return cls(name=name, required=True, lowercase=cfg.lowercase, strip_punctuation=cfg.strip_punctuation,
                   vocabulary=txt.fit_vocabulary(tokens, cfg.vocab_size), max_length=max_length,
                   truncate=cfg.truncate, dtype=cfg.dtype)

    def input_field(self) -> InputField:
        return InputField(name=self.name, type="string", required=True, description="free text")

    def output_names(self) -> list[str]:
        return [f"{self.name}[{i}]" for i in range(self.max_length)]

    @property
    def vocabulary_size(self) -> int:
        """Embedding input size: padding, OOV and every word."""
        return len(self.vocabulary) + txt.FIRST_WORD_ID

    def transform(self, raw: Sequence[Any], errors: Errors, fill_required: bool = False,
                  max_chars: int | None = None) -> np.ndarray:
        """`max_chars` bounds the text after Unicode normalisation too: NFKC turns one character into up to
        18 (the spec has already refused a value that long before it)."""
        token_lists: list[list[str]] = []
        for i, v in enumerate(raw):
            tokens: list[str] = []
            if v is None:
                errors.add(i, self.name, "required field is missing")
            elif not isinstance(v, str):
                errors.add(i, self.name, f"expected a string, got {kind_of(v)}")
            else:
                tokens, length = txt.tokenize_bounded(v, self.lowercase, self.strip_punctuation, max_chars)
                if length is not None:  # max_chars is set: only then is a length returned
                    errors.add(i, self.name, too_long_reason(length, max_chars or 0,
                                                             "the text after Unicode normalisation (NFKC)"))
            token_lists.append(tokens)
        return txt.encode(token_lists, self._ids, self.max_length, self.dtype, self.truncate)

    def model_post_init(self, _context: Any) -> None:
        # word -> id, built once when the spec is loaded, not per request
        self._ids = {w: i + txt.FIRST_WORD_ID for i, w in enumerate(self.vocabulary)}
