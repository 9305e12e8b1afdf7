"""Local stand-in for the CloudWatch Logs subscriptions that feed the capture function (moto runs none).

Deployed, the predict and batch functions print their capture lines (maas_core.monitoring.capture), Lambda
ships them to the functions' log groups, and a subscription filter (`{ $.maas_capture = 1 }`) invokes the
capture function asynchronously with them. Locally every function runs in one process, so:

    subscription = LogSubscription(invoke, dead_letter_queue_url=...)  # invoke: awslogs event -> handler
    subscription.start()     # capture lines written in this process now go to the capture function
    ...                      # predict / batch, in-process (the gateway, the batch trigger, tests)
    subscription.drain()     # tests: wait until every line so far has been handled
    subscription.stop()      # lines go to stdout again

As deployed: the lines reach the capture function's own handler in the shape CloudWatch Logs sends them
(an awslogs event: gzip + base64 JSON, `logEvents[].message` one line each), so the same code runs; the
request that wrote them does not wait (a daemon thread delivers them); an invocation that raises is
retried twice (the template's EventInvokeConfig MaximumRetryAttempts) and then its event is put on the
dead-letter queue, as Lambda's OnFailure destination does (`requestContext`, `requestPayload`,
`responsePayload`).

Not modelled: stdout and CloudWatch Logs themselves (lines are handed over through
maas_core.monitoring.capture.redirect, so only capture lines are seen, there is no filter pattern to
apply, and they are not printed); the 256 KB event limit and log retention; the subscription's batching
window and delivery delay (lines are delivered within ~0.1 s, at most MAX_EVENTS_PER_INVOCATION per
event) and Lambda's retry backoff (retries are immediate); the capture function's concurrency (one
invocation at a time); which log group a line came from (every line is reported from `log_group`).

Dev-only code: never shipped to Lambda.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Self

import boto3

import maas_core.monitoring.capture as capture
from maas_core.edge.awslogs import awslogs_event

# stdlib logging, not Powertools: the local stack's messages are a developer's console output, in the
# "maas_local" logger tree that configure_cli_logging (maas_local.gateway) prints for people, apart
# from the handlers' JSON lines
log = logging.getLogger(__name__)

Invoke = Callable[[dict[str, Any]], Any]  # awslogs event -> the handler's result (the caller supplies the context)
MAX_EVENTS_PER_INVOCATION = 100
RETRIES = 2  # Lambda's default for asynchronous invocations, and the template's MaximumRetryAttempts


class LogSubscription:
    def __init__(self, invoke: Invoke, *, dead_letter_queue_url: str | None = None,
                 log_group: str = "/aws/lambda/maas-local", function_name: str = "maas-local-CaptureFunction",
                 retries: int = RETRIES, endpoint_url: str | None = None) -> None:
        self.invoke = invoke
        self.dead_letter_queue_url = dead_letter_queue_url
        self.log_group = log_group
        self.function_name = function_name
        self.retries = retries
        self.invocations = 0  # handler calls, retries included
        self.lines = 0  # lines delivered in events that succeeded
        self.failures: list[dict[str, Any]] = []  # what went to the dead-letter queue
        self._endpoint_url = endpoint_url  # None: AWS_ENDPOINT_URL (the local stack)
        self._queue: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._previous: capture.LineWriter | None = None
        self._next_id = 0

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is None:
            self._previous = capture.redirect(self._write)
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name=f"maas-logs-{self.function_name}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Deliver what is already written (up to `timeout`), then give stdout back its lines."""
        if self._thread is None:
            return
        capture.redirect(self._previous)
        try:
            self.drain(timeout)
        except TimeoutError:
            log.warning("%s: %d capture lines not delivered at stop", self.function_name, self._queue.qsize())
        self._stop.set()
        self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every line written so far has been handled (delivered or dead-lettered)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self._queue.unfinished_tasks} capture writes not handled after {timeout} s")
            time.sleep(0.01)

    # --- the writer side: what maas_core.monitoring.capture calls instead of writing to stdout ----------

    def _write(self, text: str) -> None:
        self._queue.put(text)

    # --- delivery ---------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                texts = [self._queue.get(timeout=0.1)]
            except queue.Empty:
                continue
            while len(texts) < MAX_EVENTS_PER_INVOCATION:  # what is already there goes in the same event
                try:
                    texts.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                lines = [line for text in texts for line in text.splitlines() if line]
                for start in range(0, len(lines), MAX_EVENTS_PER_INVOCATION):
                    self._deliver(lines[start:start + MAX_EVENTS_PER_INVOCATION])
            except Exception:  # keep delivering: one bad event must not stop the stand-in
                log.exception("%s: capture lines could not be delivered", self.function_name)
            finally:
                for _ in texts:
                    self._queue.task_done()

    def _deliver(self, lines: list[str]) -> None:
        event = awslogs_event(lines, log_group=self.log_group, first_id=self._next_id)
        self._next_id += len(lines)
        error: Exception | None = None
        for attempt in range(1 + self.retries):
            self.invocations += 1
            try:
                self.invoke(event)
                self.lines += len(lines)
                return
            except Exception as exc:
                error = exc
                log.warning("%s failed on %d capture lines (attempt %d): %s", self.function_name, len(lines),
                            attempt + 1, exc)
        failure = {"requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 1 + self.retries,
                                      "functionArn": self.function_name},
                   "requestPayload": event,
                   "responsePayload": {"errorType": type(error).__name__, "errorMessage": str(error)}}
        self.failures.append(failure)
        if self.dead_letter_queue_url:
            sqs = boto3.session.Session().client("sqs", endpoint_url=self._endpoint_url)
            sqs.send_message(QueueUrl=self.dead_letter_queue_url, MessageBody=json.dumps(failure))
        log.error("%s: %d capture lines moved to the dead-letter queue %s", self.function_name, len(lines),
                  self.dead_letter_queue_url or "(none configured)")
