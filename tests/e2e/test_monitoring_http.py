"""Monitoring over HTTP on the local stack: the gateway hands the capture lines predict writes to
CaptureFunction, as template.yaml's log subscription does (maas_local.log_subscription), so
predict -> capture -> feedback -> metrics works locally."""

from __future__ import annotations

import time
from typing import Any

from maas_local.stack import LocalStack

GOOD = {"x1": 1.5, "x2": -2, "colour": "blue"}


def wait_for(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def test_the_local_stack_has_the_capture_dead_letter_queue_and_no_capture_queue(local_stack: LocalStack) -> None:
    sqs = local_stack.client("sqs")
    sqs.get_queue_attributes(QueueUrl=local_stack.names["CaptureDeadLetterQueue"], AttributeNames=["All"])
    assert "CaptureQueue" not in local_stack.names


def test_predict_capture_feedback_and_metrics_over_http(http: Any, gateway: str) -> None:
    """Given the gateway serving template.yaml on the local stack,
    when a caller predicts two records and then sends feedback for both,
    then the predictions are captured in the background (the feedback finds them), and the metrics
    route counts two predictions of version 1 with their accuracy."""
    resp = http("POST", f"{gateway}/v1/models/tiny/predict", {"records": [GOOD, {"x1": -3, "colour": "red"}]})
    assert resp.status == 200
    ids = [p["id"] for p in resp.json()["predictions"]]  # labels yes, no
    body = {"feedback": [{"prediction_id": ids[0], "label": "yes"}, {"prediction_id": ids[1], "label": "yes"}]}

    def both_captured() -> bool:
        # the capture function stores them in the background, one item at a time: feedback sent before
        # both are stored would (rightly) answer not_found for the missing one
        r = http("GET", f"{gateway}/v1/models/tiny/metrics?window=1h")
        return r.status == 200 and sum(v["predictions"] for v in r.json()["versions"]) == 2

    assert wait_for(both_captured)
    fb = http("POST", f"{gateway}/v1/models/tiny/feedback", body)
    assert fb.status == 200 and fb.json()["recorded"] == 2, fb.body
    resp = http("GET", f"{gateway}/v1/models/tiny/metrics?window=1h")
    assert resp.status == 200
    [version] = resp.json()["versions"]
    assert (version["version"], version["predictions"], version["feedback"]) == ("1", 2, 2)
    assert version["quality"]["accuracy"] == 0.5
    resp = http("GET", f"{gateway}/v1/models/tiny/metrics?window=forever")
    assert resp.status == 422 and resp.json()["error"]["details"][0]["field"] == "window"
