"""Turning raw JSON/CSV values into typed numpy columns, and naming what does not fit.

Every function takes one column (a sequence of raw values, None for missing) and returns numpy
arrays plus masks; the per-value Python loop runs only when a column holds mixed types.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

# the plain-Python meanings (missing, true, false, a value's type), shared with code that runs without numpy
from maas_core.preprocess.literals import FALSE_STRINGS, MISSING_STRINGS, TRUE_STRINGS, is_missing_string, kind_of

__all__ = ["FALSE_STRINGS", "MISSING_STRINGS", "TRUE_STRINGS", "Errors", "is_missing_string", "kind_of", "long_strings",
           "short", "to_bool", "to_float", "to_str", "too_long_reason"]


class Errors(list[dict[str, Any]]):
    """Per-record problems: {"index": i, "field": name, "reason": ...}; one response names them all."""

    def add(self, index: int | None, field: str | None, reason: str) -> None:
        self.append({"index": index, "field": field, "reason": reason})


def to_float(raw: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Column -> (float64 values, NaN where missing; mask of values that are not finite numbers)."""
    if set(map(type, raw)) <= {int, float, type(None)}:
        try:
            values = np.array(raw, dtype=np.float64)  # None -> nan
            return values, ~np.isfinite(values) & ~np.isnan(values)
        except OverflowError:  # an integer beyond float range: the slow path names it
            pass
    values = np.full(len(raw), np.nan)
    bad = np.zeros(len(raw), bool)
    for i, v in enumerate(raw):  # mixed types (strings from CSV, numpy scalars): check each value
        if v is None or is_missing_string(v):
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


def to_str(raw: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column -> (stripped str values as an object array, mask of missing, mask of values that are not strings).

    Missing: None, or a string in MISSING_STRINGS. Numbers are not strings (a JSON caller sending
    7 for a category is told so), but CSV input is all strings anyway. Values stay Python strings (each
    step a C-level map): memory is the bytes received, never records x longest value as numpy's
    fixed-width "<U" arrays made it (one 200,000-character value in 1,000 records cost 1.6 GB).
    """
    n = len(raw)
    objects = np.empty(n, dtype=object)
    objects[:] = raw  # (np.array(raw) would try to nest lists a caller sent)
    if set(map(type, raw)) <= {str, type(None)}:
        wrong = np.zeros(n, bool)
    else:
        wrong = np.fromiter((not (v is None or isinstance(v, str)) for v in raw), bool, n)
        objects[wrong] = None
    objects[np.equal(objects, None)] = ""  # type: ignore[call-overload]  # elementwise `is None` of an object array
    values = np.fromiter(map(str.strip, objects), dtype=object, count=n)
    missing = np.fromiter(map(MISSING_STRINGS.__contains__, values), bool, n) & ~wrong
    return values, missing, wrong


def long_strings(raw: Sequence[Any], limit: int) -> list[int]:
    """Indices of the string values longer than `limit` characters. A column without strings (JSON numbers)
    costs one pass over its types; an all-string column one `len` per value, both in C."""
    types = set(map(type, raw))
    if str not in types:
        return []
    if types == {str}:
        if max(map(len, raw)) <= limit:
            return []
    return [i for i, v in enumerate(raw) if type(v) is str and len(v) > limit]


def too_long_reason(length: int, limit: int, what: str = "value") -> str:
    return f"{what} is {length} characters long; the limit is {limit} (MAAS_MAX_FIELD_CHARS)"


def to_bool(raw: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column -> (0/1 float values, mask of missing, mask of values that are not booleans).

    Accepts JSON true/false, 0/1, and the strings true/false, yes/no, t/f, y/n, 1/0 (any case).
    """
    n = len(raw)
    values = np.zeros(n)
    missing = np.zeros(n, bool)
    bad = np.zeros(n, bool)
    for i, v in enumerate(raw):
        if v is None or is_missing_string(v):
            missing[i] = True
        elif isinstance(v, bool):
            values[i] = float(v)
        elif isinstance(v, numbers.Real) and v in (0, 1):
            values[i] = float(v)
        elif isinstance(v, str) and v.strip().lower() in TRUE_STRINGS:
            values[i] = 1.0
        elif isinstance(v, str) and v.strip().lower() in FALSE_STRINGS:
            values[i] = 0.0
        else:
            bad[i] = True
    return values, missing, bad


def short(v: Any) -> str:
    """A value as an error message quotes it: at most 40 characters, whatever its size (a long string is cut
    before it is encoded; a list or object is described, never serialised whole)."""
    if isinstance(v, str) and len(v) > 40:
        v = v[:40]
    elif isinstance(v, (list, dict)):
        return f"{kind_of(v)} of {len(v)} item{'s' if len(v) != 1 else ''}"
    text = json.dumps(v, default=str, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."
