"""The error body of each route family, chosen in one place: every error answer of an HTTP function is built by
maas_core.edge.http.error_answer, which asks `for_path` which family the request's path is in.

    /v1 and every other path: maas's documented body, {"error": {"code", "message", "details",
                              ["details_total"], ["request_id"]}}
    /v2 (the Open Inference Protocol): the protocol's {"error": "<message> (index 0, field x1: reason; ...)"},
                              one string; a 422 (records the fitted spec refuses, an invalid body) is a 400 there

A format takes the error as maas raised it (status, code, message, details) and returns the status and body to
answer, so an error is written once, in its family's shape, never rewritten afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

V2_PATH = re.compile(r"^/v2(/|$)")
MAX_ERROR_DETAILS = 50  # details listed in one maas error body; the rest are counted (details_total)
MAX_REASONS = 3  # details told in the protocol's one-line error

# (status, code, message, details, details_total, request_id) -> (status, body)
ErrorFormat = Callable[[int, str, str, list[dict[str, Any]], int | None, str | None], tuple[int, dict[str, Any]]]


def maas_error(status: int, code: str, message: str, details: list[dict[str, Any]], details_total: int | None,
               request_id: str | None) -> tuple[int, dict[str, Any]]:
    """maas's documented body: at most MAX_ERROR_DETAILS details (the count of all of them when there were
    more), and the request id."""
    error: dict[str, Any] = {"code": code, "message": message, "details": details[:MAX_ERROR_DETAILS]}
    total = max(details_total or 0, len(details))
    if total > len(error["details"]):
        error["details_total"] = total
    if request_id:
        error["request_id"] = request_id
    return status, {"error": error}


def protocol_error(status: int, code: str, message: str, details: list[dict[str, Any]], details_total: int | None,
                   request_id: str | None) -> tuple[int, dict[str, Any]]:
    """The Open Inference Protocol's body: the message and the first details' reasons in one string (the
    request id is in the X-Request-Id header). The protocol has no 422: a request it cannot take is a 400."""
    return (400 if status == 422 else status), {"error": message + _reasons(details)}


def _reasons(details: list[dict[str, Any]]) -> str:
    """Which record and field, and why, for the first MAX_REASONS details that give a reason."""
    said = []
    for d in details[:MAX_REASONS]:
        if isinstance(d, Mapping) and d.get("reason"):
            where = ", ".join(f"{k} {d[k]}" for k in ("index", "field") if d.get(k) is not None)
            said.append(f"{where}: {d['reason']}" if where else str(d["reason"]))
    more = len(details) - MAX_REASONS
    return (" (" + "; ".join(said) + (f"; {more} more" if more > 0 else "") + ")") if said else ""


def for_path(path: str) -> ErrorFormat:
    """The error format of the route family `path` is in."""
    return protocol_error if V2_PATH.match(path) else maas_error
