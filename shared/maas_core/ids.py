"""Prediction ids that sort by time.

A request id is 32 lowercase hex digits, like a uuid4 hex: the first 12 are the Unix time in
milliseconds, the other 20 are random (80 bits). Prediction ids are `{request id}-{index}`. Because
the id starts with its time, the captures table (maas_core.monitoring.store) uses it as its sort key:
a time window is a key range, and feedback, which only knows the id, finds its capture by key.
"""

from __future__ import annotations

import re
import secrets
import time

_TIME_DIGITS = 12
PREDICTION_ID = re.compile(r"^[0-9a-f]{32}-[0-9]{1,7}$")


def new_request_id(now_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{ms:0{_TIME_DIGITS}x}{secrets.token_hex(10)}"


def time_prefix(ms: int) -> str:
    """The id prefix of a moment: every id made at or after `ms` sorts at or after it."""
    return f"{max(ms, 0):0{_TIME_DIGITS}x}"


def id_time_ms(prediction_id: str) -> int:
    """When a prediction was made, from its id (ValueError for an id this module did not make)."""
    if not PREDICTION_ID.match(prediction_id):
        raise ValueError(f"not a prediction id: {prediction_id!r}")
    return int(prediction_id[:_TIME_DIGITS], 16)
