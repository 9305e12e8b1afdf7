"""The S3 objects an S3-triggered function was invoked for.

Lambda hands the function either an S3 event (`Records[].s3`) or, behind a queue (the local stack's
S3 notification -> SQS), SQS records whose bodies are S3 events. Both arrive here; S3's `s3:TestEvent`
(sent when a notification is configured) and anything but ObjectCreated are skipped, and keys are
URL-decoded (S3 sends `a+b%C3%A9.csv` for "a bé.csv").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger

logger = Logger(child=True)


def s3_objects(event: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(bucket, decoded key) of every ObjectCreated record, unwrapping SQS messages."""
    if event.get("Event") == "s3:TestEvent":
        return
    for record in event.get("Records") or []:
        if "s3" in record:
            if str(record.get("eventName", "")).startswith("ObjectCreated"):
                s3 = record["s3"]
                yield s3["bucket"]["name"], unquote_plus(s3["object"]["key"])
        elif "body" in record:  # SQS: the body is an S3 event (or a TestEvent)
            try:
                inner = json.loads(record["body"])
            except (TypeError, ValueError):
                logger.warning("ignoring an SQS message that is not JSON",
                               extra={"message_id": record.get("messageId")})
                continue
            if isinstance(inner, dict):
                yield from s3_objects(inner)
