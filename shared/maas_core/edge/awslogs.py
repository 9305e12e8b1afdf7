"""CloudWatch Logs subscription events: what the capture function receives.

A subscription sends {"awslogs": {"data": base64(gzip(JSON))}} (decoded with Powertools' data class); a
CONTROL_MESSAGE (sent when the subscription is created) has no log lines.
"""

from __future__ import annotations

import base64
import gzip
import json
import time
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from aws_lambda_powertools.utilities.data_classes import CloudWatchLogsEvent


def awslogs_messages(event: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """A subscription's event -> (messageType, its log events [{"id", "timestamp", "message"}]).
    ValueError if the event is not an awslogs event."""
    try:
        payload = CloudWatchLogsEvent(dict(event)).parse_logs_data().raw_event
    except (KeyError, TypeError, ValueError, zlib.error) as exc:  # binascii and JSON errors are ValueErrors
        raise ValueError(f"not a CloudWatch Logs subscription event: {exc!r}") from exc
    if not isinstance(payload, dict):
        raise ValueError("not a CloudWatch Logs subscription event: the payload is not an object")
    events = payload.get("logEvents") or []
    return str(payload.get("messageType")), [e for e in events if isinstance(e, dict)]


def awslogs_event(messages: Sequence[str], *, log_group: str, log_stream: str = "local",
                  message_type: str = "DATA_MESSAGE", filter_name: str = "captures",
                  first_id: int = 0) -> dict[str, Any]:
    """The event a subscription sends for these log lines (the local stack and tests use it)."""
    now = int(time.time() * 1000)
    payload = {"messageType": message_type, "owner": "123456789012", "logGroup": log_group,
               "logStream": log_stream, "subscriptionFilters": [filter_name],
               "logEvents": [{"id": str(first_id + i), "timestamp": now, "message": m} for i, m in enumerate(messages)]}
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()}}
