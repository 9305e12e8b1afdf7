"""Local stand-in for Lambda's SQS event source mappings: a poller thread per queue -> function.

moto cannot run Lambda code without Docker (and its event source mapping, which it runs inside
send_message, hands one message per invocation and ignores ReportBatchItemFailures; docs/local-stack.md),
so the gateway runs every queue consumer of template.yaml (a `Type: SQS`
event, or an AWS::Lambda::EventSourceMapping; maas_local.template.queue_consumers) in-process:

    poller = QueuePoller(queue_url, invoke, function_name="maas-local-SomeConsumer")
    poller.start()        # receive up to 10 messages -> one SQS event -> the handler, until stop()
    poller.drain()        # or, in tests: poll until the queue is empty

Like the deployed mapping: the event has the shape Lambda sends (`Records[]` with messageId, body,
attributes, eventSource aws:sqs ...); messages are deleted when the handler returns, except those it
names in `batchItemFailures` (ReportBatchItemFailures), which become visible again and are retried; a
handler that raises fails the whole batch. The queue's own redrive policy (the template's, which moto's
CloudFormation gives the queue; maas_local.stack) moves a message to its dead-letter queue after
maxReceiveCount receives: that, and the visibility timeouts, are moto's SQS, not ours. Failed
messages come back after `retry_delay` seconds rather than the queue's visibility timeout, so a local
run does not wait minutes for a retry.

Dev-only code: never shipped to Lambda.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Self

import boto3

# stdlib logging, not Powertools: the local stack's messages are a developer's console output, in the
# "maas_local" logger tree that configure_cli_logging (maas_local.gateway) prints for people, apart
# from the handlers' JSON lines
log = logging.getLogger(__name__)

Invoke = Callable[[dict[str, Any]], Any]  # event -> handler result (the caller supplies the context)


class PollingThread:
    """A daemon thread calling `poll_once(wait_seconds)` until stop(); subclasses set `queue_url`,
    `wait_seconds` and `thread_name`, and call `_init_thread()`."""

    queue_url: str
    wait_seconds: int
    thread_name = "maas-queue-poller"

    def _init_thread(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self, wait_seconds: int = 0) -> int:
        raise NotImplementedError

    def start(self) -> Self:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                if self.poll_once(wait_seconds=self.wait_seconds) == 0:
                    self._stop.wait(0.2)
                failing = False
            except Exception:  # keep polling: the stack may be stopping, or the queue missing
                if not self._stop.is_set() and not failing:  # once per outage, not every second
                    log.warning("polling %s failed; retrying every second", self.queue_url, exc_info=True)
                failing = True
                self._stop.wait(1.0)


class QueuePoller(PollingThread):
    def __init__(self, queue_url: str, invoke: Invoke, *, function_name: str = "maas-local-consumer",
                 batch_size: int = 10, report_batch_item_failures: bool = True, wait_seconds: int = 1,
                 retry_delay: int = 1, endpoint_url: str | None = None) -> None:
        self.queue_url = queue_url
        self.invoke = invoke
        self.function_name = function_name
        self.batch_size = max(1, min(batch_size, 10))
        self.report_batch_item_failures = report_batch_item_failures
        self.wait_seconds = wait_seconds
        self.retry_delay = retry_delay
        self.delivered = 0  # messages handed to the function
        self.failed = 0  # deliveries that came back failed (retried, or dead-lettered by the queue)
        self._endpoint_url = endpoint_url  # None: AWS_ENDPOINT_URL (the local stack)
        self._sqs: Any = None
        self.thread_name = f"maas-queue-{function_name}"
        self._init_thread()

    @property
    def sqs(self) -> Any:
        if self._sqs is None:
            self._sqs = boto3.session.Session().client("sqs", endpoint_url=self._endpoint_url)
        return self._sqs

    # --- one poll ----------------------------------------------------------------------------

    def poll_once(self, wait_seconds: int = 0) -> int:
        """Receive up to batch_size messages and hand them to the function as one event; returns how many."""
        messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=self.batch_size,
                                            WaitTimeSeconds=wait_seconds, AttributeNames=["All"],
                                            MessageAttributeNames=["All"]).get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [self._record(m) for m in messages]}
        by_id = {m["MessageId"]: m for m in messages}
        try:
            result = self.invoke(event)
            failed = self._failed_ids(result, by_id)
        except Exception:  # a crashed invocation fails the whole batch, as in Lambda
            log.exception("%s failed on a batch of %d messages", self.function_name, len(messages))
            failed = set(by_id)
        self.delivered += len(messages)
        self.failed += len(failed)
        done = [m for i, m in by_id.items() if i not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done[start:start + 10])])
        for i in failed:
            self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=by_id[i]["ReceiptHandle"],
                                               VisibilityTimeout=self.retry_delay)
        return len(messages)

    def _failed_ids(self, result: Any, by_id: dict[str, Any]) -> set[str]:
        if not self.report_batch_item_failures:
            return set()
        failures = (result or {}).get("batchItemFailures") if isinstance(result, dict) else None
        ids = {str(f.get("itemIdentifier")) for f in failures or []}
        unknown = ids - set(by_id)
        if unknown:  # Lambda fails the whole batch when a reported id is not in it
            log.error("%s reported failures for unknown message ids %s", self.function_name, sorted(unknown))
            return set(by_id)
        return ids

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        queue_name = self.queue_url.rstrip("/").rsplit("/", 1)[-1]
        return {
            "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
            "attributes": message.get("Attributes", {}), "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody", ""), "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue_name}", "awsRegion": "us-east-1",
        }

    def drain(self, timeout: float = 30.0) -> None:
        """Poll until the queue holds no message, visible or in flight (or TimeoutError)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.poll_once() == 0 and self._empty():
                return
            time.sleep(0.05)
        raise TimeoutError(f"{self.queue_url} still has messages after {timeout} s")

    def _empty(self) -> bool:
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return (int(attrs["ApproximateNumberOfMessages"]) == 0
                and int(attrs["ApproximateNumberOfMessagesNotVisible"]) == 0)


