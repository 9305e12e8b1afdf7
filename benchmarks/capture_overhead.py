"""Capture overhead: predict p50 latency through the handler with prediction capture on vs off.

In this process, against moto (in-process, `mock_aws`): functions/predict/app.py answers API Gateway
events for the tiny test model (tests/tiny_model.py) twice over, once loaded without a capture queue
(capture off: metrics only) and once with one (MAAS_CAPTURE_RATE 1: every prediction is queued with
SendMessageBatch before the response). Calls alternate between the two handlers in rounds, so both
see the same machine load; the handler's stdout (EMF lines) is discarded while timing, and after each
call (untimed) the queue is emptied, as the capture function keeps it in production: moto's
SendMessage cost grows with the number of messages a queue holds, which would bill moto's slowness
to capture. A third handler sends to a botocore Stubber instead (request built, validated and
serialized by botocore, no network): what capture's own code costs. The ratio is on / off: what
capture adds to a warm request. moto answers SQS in-process, in well under a
millisecond of network; a real SQS call in-region adds a few milliseconds more, which a lower
MAAS_CAPTURE_RATE takes off most requests.

    python -m benchmarks.capture_overhead [--calls 300] [--rounds 3] [--records 1 10]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.* (events, the tiny model) from any working directory
    sys.path.append(str(ROOT))

from benchmarks.common import Row, machine, print_table

RECORD = {"x1": 1.5, "x2": -2, "colour": "blue"}


def _env(**values: str | None) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _load_predict(queue_url: str | None) -> Any:
    from maas_core.settings import get_settings

    from tests.lambda_events import load_function

    _env(MAAS_CAPTURE_QUEUE_URL=queue_url, MAAS_CAPTURE_RATE="1")
    get_settings.cache_clear()
    app = load_function("predict")
    app.predictor()  # settings read now, for this handler
    app.monitor()
    return app


def _timed_calls(app: Any, event: dict[str, Any], calls: int, queue_url: str) -> list[float]:
    import boto3

    from tests.lambda_events import FakeLambdaContext

    sqs = boto3.client("sqs")

    context = FakeLambdaContext()
    times = []
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        for _ in range(calls):
            start = time.perf_counter()
            response = app.lambda_handler(event, context)
            times.append(time.perf_counter() - start)
            if response["statusCode"] != 200:
                raise RuntimeError(f"predict answered {response['statusCode']}: {response['body']}")
            sink.seek(0)
            sink.truncate()
            for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return times


def run(calls: int = 300, rounds: int = 3, records: tuple[int, ...] = (1, 10)) -> list[Row]:
    import boto3
    from botocore.stub import Stubber
    from maas_core import aws
    from maas_core.registry import Registry
    from maas_core.store import BundleStore
    from moto import mock_aws

    from tests.conftest import create_registry_table
    from tests.lambda_events import rest_event
    from tests.tiny_model import publish_tiny_model

    _env(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_SESSION_TOKEN="testing",
         AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=None, AWS_PROFILE=None,
         MAAS_MODEL_BUCKET="bench-models", MAAS_REGISTRY_TABLE="bench-registry")
    rows: list[Row] = []
    with mock_aws():
        aws.reset_clients()
        boto3.client("s3").create_bucket(Bucket="bench-models")
        create_registry_table("bench-registry")
        queue_url = boto3.client("sqs").create_queue(QueueName="bench-captures")["QueueUrl"]
        publish_tiny_model(BundleStore("bench-models"), Registry("bench-registry"))
        off = _load_predict(None)
        on = _load_predict(queue_url)
        stubbed = _load_predict(queue_url)
        stub_client = boto3.session.Session().client("sqs")
        stubbed.monitor().sender._sqs = stub_client
        stubber = Stubber(stub_client)
        stubber.activate()
        accepted = {"Successful": [{"Id": "0", "MessageId": "m", "MD5OfMessageBody": "0" * 32}], "Failed": []}
        handlers = {"off": off, "on (moto SQS)": on, "on (stubbed SQS)": stubbed}
        for n in records:
            event = rest_event("POST", "/v1/models/tiny/predict", body={"records": [RECORD] * n})
            for _ in range(20 + rounds * calls):
                stubber.add_response("send_message_batch", accepted)  # one call per request (<= 25 records)
            for app in handlers.values():
                _timed_calls(app, event, 20, queue_url)  # warm: model loaded, clients made
            p50s: dict[str, list[float]] = {label: [] for label in handlers}
            for _ in range(rounds):
                for label, app in handlers.items():
                    p50s[label].append(statistics.median(_timed_calls(app, event, calls, queue_url)))
            t = {label: statistics.median(v) for label, v in p50s.items()}
            plural = "s" if n > 1 else ""
            for label in ("on (moto SQS)", "on (stubbed SQS)"):
                rows.append(Row(
                    benchmark=f"predict p50, {n} record{plural}, capture {label} vs off",
                    measured=f"capture on {t[label] * 1e3:.2f} ms",
                    baseline=f"capture off {t['off'] * 1e3:.2f} ms",
                    ratio=t[label] / t["off"],
                    target="+ one SQS call",
                ))
            stubber._queue.clear()  # unused responses of this size
        aws.reset_clients()
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per handler per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--records", type=int, nargs="+", default=[1, 10], help="records per request")
    args = parser.parse_args(argv)
    print(machine())
    print_table(run(args.calls, args.rounds, tuple(args.records)))


if __name__ == "__main__":
    main()
