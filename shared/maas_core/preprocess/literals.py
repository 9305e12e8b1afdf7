"""What raw JSON/CSV values mean, in plain Python (no numpy): the missing, true and false spellings and how a
caller names a value's type.

Kept apart from values.py (numpy columns) because the functions that never run a model import it too: the
request schemas name a record's type, the drift formulas read booleans and missing values, and those
functions' Lambda layers carry no numpy.
"""

from __future__ import annotations

import numbers
from typing import Any

MISSING_STRINGS = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "None"})
TRUE_STRINGS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_STRINGS = frozenset({"false", "f", "no", "n", "0"})


def is_missing_string(v: Any) -> bool:
    return isinstance(v, str) and v.strip() in MISSING_STRINGS


def kind_of(v: Any) -> str:
    """How a caller would name the JSON type they sent."""
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, numbers.Real):
        return "a number"
    return {str: "a string", list: "a list", dict: "an object", type(None): "null"}.get(type(v), type(v).__name__)
