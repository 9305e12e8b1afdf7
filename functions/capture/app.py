"""Capture function: captured predictions' log lines (a CloudWatch Logs subscription) -> the captures table.

The predict and batch functions write their captures as log lines (maas_core.monitoring.capture); the
subscription filter on their log groups (`{ $.maas_capture = 1 }`) invokes this function asynchronously
with batches of those lines, as an awslogs event (base64 + gzip JSON). Writes are conditional puts, so a
retried event neither duplicates a capture nor erases its feedback. A CONTROL_MESSAGE (CloudWatch Logs
checks the destination when the subscription is created) has no lines and is ignored. Lines are written
WRITERS at a time (each line's captures in order): an event of a big batch file holds thousands of
captures, one PutItem each, and the puts wait on the network, not the CPU (botocore's clients are
thread-safe; its default pool holds 10 connections).

A line that cannot be stored (DynamoDB down after botocore's retries, a line that is not a capture) fails
the invocation once every other line of the event is written: Lambda retries the event twice, then sends
it to the on-failure destination, the capture dead-letter queue, which an alarm watches. Nothing is lost
silently (and the lines stay in their log group for LogRetentionDays).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from maas_core.edge.awslogs import awslogs_messages
from maas_core.monitoring import CaptureStore
from maas_core.settings import get_settings

logger = Logger()
WRITERS = 8


class CaptureLinesNotWritten(RuntimeError):
    """Some lines of the event were not stored: the invocation fails, so Lambda retries, then dead-letters it."""


@lru_cache(maxsize=1)
def store() -> CaptureStore:
    settings = get_settings()
    return CaptureStore(settings.captures_table, settings.capture_ttl_days)


def write_line(log_event: dict[str, Any]) -> tuple[int, int] | None:
    """(written, already there) of one capture line; None if it was not written (logged)."""
    try:
        return store().write_message(log_event.get("message"))
    except Exception:  # the others are still written; this one fails the invocation
        logger.exception("capture line not written", extra={"log_event_id": log_event.get("id")})
        return None


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    kind, log_events = awslogs_messages(event)  # not an awslogs event: raises, and is dead-lettered
    if kind == "CONTROL_MESSAGE":
        logger.info("subscription control message ignored")
        return {"lines": 0, "written": 0, "duplicates": 0}
    written = duplicates = 0
    failed: list[str] = []
    with ThreadPoolExecutor(max_workers=min(WRITERS, max(1, len(log_events)))) as pool:
        for log_event, outcome in zip(log_events, pool.map(write_line, log_events), strict=True):
            if outcome is None:
                failed.append(str(log_event.get("id")))
            else:
                written += outcome[0]
                duplicates += outcome[1]
    summary = {"lines": len(log_events), "written": written, "duplicates": duplicates, "failed": len(failed)}
    logger.info("capture lines", extra=summary)
    if failed:
        raise CaptureLinesNotWritten(f"{len(failed)} of {len(log_events)} capture lines were not written "
                                     f"(log event ids {', '.join(failed[:10])}); see this function's log")
    return summary
