"""Capture function: the capture queue (SQS) -> the captures table. Thin on purpose.

Each SQS message holds up to 25 captured predictions (maas_core.monitoring.capture). Powertools' batch
processor reports the messages that could not be written (DynamoDB down after retries, a message that
is not a capture) as batch item failures: SQS retries only those, and after the queue's
maxReceiveCount moves them to the dead-letter queue. Writes are conditional puts, so a redelivered
message neither duplicates a capture nor erases its feedback.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from maas_core.monitoring import CaptureStore
from maas_core.settings import get_settings

logger = Logger()
# every record failing is reported like any other partial failure (not raised), so each message
# keeps its own receive count on its way to the dead-letter queue
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@lru_cache(maxsize=1)
def store() -> CaptureStore:
    settings = get_settings()
    return CaptureStore(settings.captures_table, settings.capture_ttl_days)


def record_handler(record: SQSRecord) -> dict[str, int]:
    try:
        written, duplicates = store().write_message(record.body)
    except Exception:
        logger.exception("capture message not written", extra={"message_id": record.message_id})
        raise
    return {"written": written, "duplicates": duplicates}


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                        context=context)
    failed = len(response.get("batchItemFailures", []))
    logger.info("capture batch", extra={"messages": len(event.get("Records") or []), "failed": failed})
    return response
