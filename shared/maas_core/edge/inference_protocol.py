"""The Open Inference Protocol's /v2 routes at the edge: their errors in the protocol's body.

Every error of a /v2 path (the route's, the resolver's validation, an answer given before the resolver ran:
415, deadline, too large) is answered {"error": "<message>"}, as the protocol has it, instead of maas's
{"error": {"code", "message", ...}}; a 422 (records the fitted spec refuses, an invalid body) is a 400 there.
The data plane itself is maas_core.inference_protocol.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from maas_core.edge.http import error_responses
from maas_core.inference_protocol import ProtocolError

V2_PATH = re.compile(r"^/v2(/|$)")
MAX_REASONS = 3  # details told in the one-line error
INFER_PATH = re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/infer/?$")


def protocol_error_responses(*statuses: int) -> dict[int, dict[str, Any]]:
    """OpenAPI `responses` for a /v2 route's error statuses, in the protocol's body."""
    return {status: {**entry, "content": {"application/json": {"model": ProtocolError}}}
            for status, entry in error_responses(*statuses).items()}


def is_protocol_path(event: Any) -> bool:
    return isinstance(event, Mapping) and bool(V2_PATH.match(str(event.get("path") or "")))


def is_post_to(event: Any, path: re.Pattern[str]) -> bool:
    """An API Gateway (REST) event for a POST whose path matches `path`."""
    return (isinstance(event, Mapping) and str(event.get("httpMethod", "")).upper() == "POST"
            and bool(path.match(str(event.get("path") or ""))))


def is_infer_event(event: Any) -> bool:
    """An API Gateway (REST) event for POST /v2/models/{model}[/versions/{version}]/infer."""
    return is_post_to(event, INFER_PATH)


def protocol_errors(event: Any, response: dict[str, Any]) -> dict[str, Any]:
    """The response, with a /v2 error's body in the protocol's shape (others untouched)."""
    status = response.get("statusCode")
    if not isinstance(status, int) or status < 400 or not is_protocol_path(event):
        return response
    try:
        error = json.loads(response.get("body") or "{}").get("error")
    except (ValueError, AttributeError):
        return response
    message = error.get("message") if isinstance(error, Mapping) else error
    if not isinstance(message, str):
        return response
    details = error.get("details") if isinstance(error, Mapping) else None
    response["body"] = json.dumps({"error": message + _reasons(details)})
    if status == 422:
        response["statusCode"] = 400
    return response


def _reasons(details: Any) -> str:
    """The first details' reasons, as the protocol's error is one string: which record and field, and why."""
    if not isinstance(details, list):
        return ""
    said = []
    for d in details[:MAX_REASONS]:
        if isinstance(d, Mapping) and d.get("reason"):
            where = ", ".join(f"{k} {d[k]}" for k in ("index", "field") if d.get(k) is not None)
            said.append(f"{where}: {d['reason']}" if where else str(d["reason"]))
    more = len(details) - MAX_REASONS
    return (" (" + "; ".join(said) + (f"; {more} more" if more > 0 else "") + ")") if said else ""
