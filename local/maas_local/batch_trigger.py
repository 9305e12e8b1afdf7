"""Local stand-in for the S3 -> Lambda batch trigger: S3 notification -> SQS queue -> poller thread
-> functions/batch/app.py's handler, in-process (moto cannot run Lambda code without Docker).

    with LocalStack() as stack:
        trigger = BatchTrigger(stack.names["ModelBucket"])
        trigger.start()                  # configures the notification, polls in a daemon thread
        ...                              # drop files; predictions appear under batch/output/
        trigger.stop()

Dropping a file into the local bucket while the stack runs (its endpoint is printed by the demo,
and is `stack.endpoint_url`):

    export AWS_ENDPOINT_URL=http://127.0.0.1:PORT AWS_ACCESS_KEY_ID=testing \\
           AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
    aws s3 cp rows.csv s3://maas-models/batch/input/penguins/rows.csv
    aws s3 cp rows.csv s3://maas-models/batch/input/penguins/rows-v2.csv --metadata maas-version=2
    aws s3 ls s3://maas-models/batch/output/penguins/

or from Python (same environment): `boto3.client("s3").upload_file("rows.csv", "maas-models",
"batch/input/penguins/rows.csv")`.

Like the deployed stack: keys are filtered by the `batch/input/` prefix (the handler checks the
suffix), the first message is S3's `s3:TestEvent` (skipped by the handler), keys arrive URL-encoded
(decoded by the handler), and a message whose run fails is retried once (`max_attempts`) and then
moved to a local dead-letter queue with the error, as the function's on-failure destination does.
Tests can skip the thread and call `poll_once()` / `drain()` themselves.

Dev-only code: never shipped to Lambda.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from maas_core.aws_target import LOCAL_REGION
from maas_local.lambda_context import FakeLambdaContext
from maas_local.lambda_runtime import load_function
from maas_local.queues import PollingThread
from maas_local.template import LOCAL_ACCOUNT_ID

# stdlib logging, not Powertools: the local stack's messages are a developer's console output, in the
# "maas_local" logger tree that configure_cli_logging (maas_local.gateway) prints for people, apart
# from the handlers' JSON lines
log = logging.getLogger(__name__)

INPUT_PREFIX = "batch/input/"
Handler = Callable[[dict[str, Any], Any], Any]


def load_batch_handler(repo_root: str | Path | None = None) -> Handler:
    """functions/batch/app.py's lambda_handler, imported afresh: its per-process Predictor reads the
    current settings (e.g. a new local stack's) on the first call."""
    return load_function("batch", repo_root).lambda_handler  # type: ignore[no-any-return]


class BatchTrigger(PollingThread):
    """S3 bucket notification (ObjectCreated, prefix batch/input/) -> SQS -> the batch handler."""

    thread_name = "maas-batch-trigger"
    notification_id = "maas-local-batch"  # the bucket notification's Id (one per trigger kind)
    function_name = "maas-local-BatchFunction"  # what the fake Lambda context reports
    memory_limit_in_mb = 2048  # and its memory and timeout: template.yaml's BatchFunction
    timeout_seconds = 900
    queue_attributes: dict[str, str] = {}  # of the event queue

    def __init__(self, bucket: str, *, handler: Handler | None = None, queue_name: str = "maas-local-batch-events",
                 dead_letter_queue_name: str = "maas-local-batch-dlq", prefix: str = INPUT_PREFIX,
                 max_attempts: int = 2, wait_seconds: int = 1, endpoint_url: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.queue_name = queue_name
        self.dead_letter_queue_name = dead_letter_queue_name
        self.max_attempts = max_attempts  # 1 try + MaximumRetryAttempts 1, as in template.yaml
        self.wait_seconds = wait_seconds
        self._handler = handler
        self._clients: dict[str, Any] = {}
        self._endpoint_url = endpoint_url  # None: AWS_ENDPOINT_URL from the environment (the local stack)
        self.queue_url = ""
        self.dead_letter_queue_url = ""
        self.processed: list[Any] = []  # handler results, newest last
        self.failures: list[dict[str, Any]] = []  # {"event", "error"} of messages given up on
        self._init_thread()
        self._attempts: dict[str, int] = {}

    # --- setup ------------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        """A client made on first use (so it sees the local stack's AWS_ENDPOINT_URL), then reused."""
        if service not in self._clients:
            self._clients[service] = boto3.session.Session().client(service, endpoint_url=self._endpoint_url)
        return self._clients[service]

    @property
    def handler(self) -> Handler:
        if self._handler is None:
            self._handler = load_batch_handler()
        return self._handler

    def configure(self) -> BatchTrigger:
        """Create the queues and point the bucket's ObjectCreated notifications under `prefix` at the first."""
        sqs = self.client("sqs")
        self.queue_url = sqs.create_queue(QueueName=self.queue_name, Attributes=self.queue_attributes)["QueueUrl"]
        self.dead_letter_queue_url = sqs.create_queue(QueueName=self.dead_letter_queue_name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        s3 = self.client("s3")
        config = s3.get_bucket_notification_configuration(Bucket=self.bucket)
        config.pop("ResponseMetadata", None)
        queues = [q for q in config.get("QueueConfigurations", []) if q.get("QueueArn") != arn]
        queues.append({"Id": self.notification_id, "QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
                       "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": self.prefix}]}}})
        config["QueueConfigurations"] = queues
        s3.put_bucket_notification_configuration(Bucket=self.bucket, NotificationConfiguration=config)
        return self

    # --- polling ----------------------------------------------------------------------------

    def poll_once(self, wait_seconds: int = 0) -> int:
        """Receive up to 10 messages and hand each to the handler. Returns how many were received."""
        if not self.queue_url:
            self.configure()
        sqs = self.client("sqs")
        messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=wait_seconds, AttributeNames=["All"]).get("Messages", [])
        for message in messages:
            self._deliver(sqs, message)
        return len(messages)

    def drain(self, timeout: float = 30.0) -> None:
        """Poll until the queue is empty (every event so far handled), or TimeoutError."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.poll_once(wait_seconds=0) == 0 and self._queue_empty():
                return
        raise TimeoutError(f"{self.queue_name} still has messages after {timeout} s")

    def _queue_empty(self) -> bool:
        attrs = self.client("sqs").get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return (int(attrs["ApproximateNumberOfMessages"]) == 0
                and int(attrs["ApproximateNumberOfMessagesNotVisible"]) == 0)

    def _deliver(self, sqs: Any, message: dict[str, Any]) -> None:
        record = {"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
                  "body": message["Body"], "attributes": message.get("Attributes", {}), "eventSource": "aws:sqs",
                  "eventSourceARN": f"arn:aws:sqs:local:{self.queue_name}"}
        event = {"Records": [record]}
        context = FakeLambdaContext(self.function_name, memory_limit_in_mb=self.memory_limit_in_mb,
                                    aws_request_id=str(uuid.uuid4()), remaining_ms=self.timeout_seconds * 1000,
                                    counting_down=True, region=LOCAL_REGION, account_id=LOCAL_ACCOUNT_ID)
        try:
            self.processed.append(self.handler(event, context))
        except Exception as exc:
            attempts = self._attempts.get(message["MessageId"], 0) + 1
            self._attempts[message["MessageId"]] = attempts
            if attempts < self.max_attempts:
                log.warning("batch run failed (attempt %d); retrying: %s", attempts, exc)
                sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"],
                                              VisibilityTimeout=0)
                return
            log.error("batch run failed after %d attempts; moved to %s: %s", attempts,
                      self.dead_letter_queue_name, exc)
            failure = {"requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": attempts},
                       "requestPayload": event,
                       "responsePayload": {"errorType": type(exc).__name__, "errorMessage": str(exc)}}
            self.failures.append(failure)
            sqs.send_message(QueueUrl=self.dead_letter_queue_url, MessageBody=json.dumps(failure, default=str))
        self._attempts.pop(message["MessageId"], None)
        sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    # --- thread (maas_local.queues.PollingThread) --------------------------------------------

    def start(self) -> BatchTrigger:
        """Configure (if needed) and poll in a daemon thread until stop()."""
        if not self.queue_url:
            self.configure()
        return super().start()

    def __enter__(self) -> BatchTrigger:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
