"""The Open Inference Protocol's /v2 routes at the edge: which events they are, and their documented errors.

Every error of a /v2 path (the route's, the resolver's validation, an answer given before the resolver ran:
415, deadline, too large) is answered {"error": "<message>"}, as the protocol has it, instead of maas's
{"error": {"code", "message", ...}}: the edge writes every error in its route family's body
(maas_core.edge.error_bodies). The data plane itself is maas_core.inference_protocol.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from maas_core.edge.error_bodies import V2_PATH
from maas_core.edge.http import error_responses
from maas_core.inference_protocol import ProtocolError

__all__ = ["INFER_PATH", "V2_PATH", "is_infer_event", "is_post_to", "protocol_error_responses"]

INFER_PATH = re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/infer/?$")


def protocol_error_responses(*statuses: int) -> dict[int, dict[str, Any]]:
    """OpenAPI `responses` for a /v2 route's error statuses, in the protocol's body."""
    return {status: {**entry, "content": {"application/json": {"model": ProtocolError}}}
            for status, entry in error_responses(*statuses).items()}


def is_post_to(event: Any, path: re.Pattern[str]) -> bool:
    """An API Gateway (REST) event for a POST whose path matches `path`."""
    return (isinstance(event, Mapping) and str(event.get("httpMethod", "")).upper() == "POST"
            and bool(path.match(str(event.get("path") or ""))))


def is_infer_event(event: Any) -> bool:
    """An API Gateway (REST) event for POST /v2/models/{model}[/versions/{version}]/infer."""
    return is_post_to(event, INFER_PATH)
