"""Monitoring against moto: predict metrics (EMF), capture as log lines handed to the capture function as a
log subscription would (maas_local.log_subscription), feedback, metrics over windows (hand-computed values),
drift, scheduled publication, and failure injection."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError

from maas_core.edge.awslogs import awslogs_event, awslogs_messages
from maas_core.errors import NotFoundError, UnprocessableError
from maas_core.ids import new_request_id
from maas_core.manifest import Manifest, TensorInfo
from maas_core.monitoring import CaptureStore
from maas_core.monitoring import capture as capture_module
from maas_core.monitoring.capture import MASK, CaptureWriter, capture_lines
from maas_core.monitoring.metrics import PredictMonitor
from maas_core.outcome import PredictionOutcome, Route, failed_route
from maas_core.predictor import canary_share
from maas_core.registry import Registry
from maas_core.settings import get_settings
from maas_core.store import BundleStore
from maas_local.log_subscription import LogSubscription
from maas_local.testing.bundles import publish
from maas_local.testing.tiny_model import (
    LABELS,
    SPEC,
    WEIGHTS,
    onnx_bytes,
    publish_sensitive_tiny_model,
    publish_tiny_model,
)
from tests.conftest import create_registry_table
from tests.lambda_events import FakeLambdaContext, assert_error, call, load_function
from tests.unit.test_monitoring_formulas import (
    EXPECTED,
    EXPECTED_MATRIX,
    PREDICTED,
    TRUTH,
    serving_records,
    training_baseline,
)

CAPTURES = "test-captures"
GOOD = {"x1": 1.5, "x2": -2, "colour": "blue"}


@dataclass
class World:
    subscription: LogSubscription
    dlq_url: str
    store: BundleStore
    registry: Registry
    captures: CaptureStore
    predict: ModuleType
    capture: ModuleType
    metrics: ModuleType

    def drain(self) -> LogSubscription:
        """Wait until the capture function has handled every capture line written so far."""
        self.subscription.drain(timeout=20)
        return self.subscription


@pytest.fixture
def world(aws_world, monkeypatch) -> Iterator[World]:
    """Given the moto world plus a captures table and a capture dead-letter queue, named in MAAS_* settings;
    fresh predict / capture / metrics functions; and the capture lines written in this process handed to the
    capture function as the template's log subscription does (retried twice, then dead-lettered)."""
    dlq_url = boto3.client("sqs").create_queue(QueueName="test-capture-dlq")["QueueUrl"]
    create_registry_table(CAPTURES)  # same key schema: pk, sk
    monkeypatch.setenv("MAAS_CAPTURES_TABLE", CAPTURES)
    monkeypatch.setenv("MAAS_METRICS_MIN_SAMPLES", "5")
    get_settings.cache_clear()
    capture = load_function("capture")
    subscription = LogSubscription(lambda ev: capture.lambda_handler(ev, FakeLambdaContext()),
                                   dead_letter_queue_url=dlq_url).start()
    yield World(subscription, dlq_url, aws_world.store, aws_world.registry, CaptureStore(CAPTURES),
                load_function("predict"), capture, load_function("metrics"))
    subscription.stop()
    get_settings.cache_clear()


def emf_blobs(out: str) -> list[dict[str, Any]]:
    blobs = []
    for line in out.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "_aws" in doc:
            blobs.append(doc)
    return blobs


def request_blobs(out: str) -> list[dict[str, Any]]:
    return [b for b in emf_blobs(out) if "RequestCount" in b]


def dimension_sets(blob: dict[str, Any]) -> list[list[str]]:
    return blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"]


# --- predict: metrics -------------------------------------------------------------------------------


def test_predict_emits_request_metrics_per_model_version(world, capsys) -> None:
    """Given the tiny model as prod and capture on,
    when a caller predicts two records (one yes, one no),
    then one EMF blob in namespace maas counts the request, its records, latency, no errors and two
    captures, under [model, version], [model] and [service]; and the label mix is counted per label."""
    publish_tiny_model(world.store, world.registry)
    capsys.readouterr()
    status, body = call(world.predict, "POST", "/v1/models/tiny/predict",
                        body={"records": [GOOD, {"x1": -3, "colour": "red"}]})
    assert status == 200, body
    out = capsys.readouterr().out
    [blob] = request_blobs(out)
    assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "maas"
    assert dimension_sets(blob) == [["model", "version"], ["model"], ["service"]]
    assert (blob["model"], blob["version"], blob["service"]) == ("tiny", "1", "maas")
    assert (blob["RequestCount"], blob["RecordCount"], blob["Errors4xx"], blob["Errors5xx"]) == (
        [1.0], [2.0], [0.0], [0.0])
    assert (blob["Captured"], blob["CaptureFailures"]) == ([2.0], [0.0])
    assert blob["Latency"][0] > 0
    labels = {b["label"]: b["PredictedLabel"] for b in emf_blobs(out) if "PredictedLabel" in b}
    assert labels == {"yes": [1.0], "no": [1.0]}


REJECTED = [  # (request, status, resolved to a model version?)
    ({"raw_body": "{not json"}, 400, False),  # rejected before any model is looked at
    ({"path": "/v1/models/ghost/predict", "body": {"records": [GOOD]}}, 404, False),  # a made-up name is no dimension
    ({"body": {"records": [{"x1": "ten", "colour": "red"}]}}, 422, True),  # a bad record for a real version
]


def test_rejected_requests_count_as_4xx_and_only_resolved_ones_per_model(world, capsys) -> None:
    """Given requests rejected before and after the model version was resolved,
    then each counts one Errors4xx and no records; only the resolved one is counted per model and
    version, the others under [service] alone (a caller cannot create metric series)."""
    publish_tiny_model(world.store, world.registry)
    for kwargs, status, resolved in REJECTED:
        kwargs = dict(kwargs)
        capsys.readouterr()
        path = kwargs.pop("path", "/v1/models/tiny/predict")
        got, body = call(world.predict, "POST", path, **kwargs)
        assert got == status, body
        [blob] = request_blobs(capsys.readouterr().out)
        assert (blob["Errors4xx"], blob["Errors5xx"], blob["RecordCount"]) == ([1.0], [0.0], [0.0])
        if resolved:
            assert dimension_sets(blob)[0] == ["model", "version"] and blob["version"] == "1"
        else:
            assert dimension_sets(blob) == [["service"]] and "model" not in blob


def test_the_predictor_hands_over_its_outcome_and_a_refused_request_its_route(world) -> None:
    """Given the tiny model as prod,
    when the predictor answers two records, then it returns one outcome: the answer, the route it took
    (model, version, alias, variant), the manifest and spec that made it, the records and its timings;
    when a record is refused after routing (422), the error carries that route; when the model is unknown
    (404, refused before routing), the error carries none."""
    publish_tiny_model(world.store, world.registry)
    predictor = world.predict.predictor()
    records = [GOOD, {"x1": -3, "colour": "red"}]
    outcome = predictor.predict("tiny", records)
    assert isinstance(outcome, PredictionOutcome)
    assert outcome.route == Route("tiny", "1", "prod", variant="float")
    assert [p.label for p in outcome.response.predictions] == ["yes", "no"] and outcome.record_count == 2
    assert (outcome.manifest.name, outcome.manifest.version, outcome.records) == ("tiny", "1", records)
    assert outcome.spec is predictor.load("tiny", "1").spec  # the loaded model's own
    assert min(dataclasses.astuple(outcome.timings)) >= 0 and outcome.timings.run_ms > 0
    with pytest.raises(UnprocessableError) as refused:
        predictor.predict("tiny", [{"x1": "ten", "colour": "red"}])
    assert failed_route(refused.value) == Route("tiny", "1", "prod")
    with pytest.raises(NotFoundError) as unknown:
        predictor.predict("ghost", [GOOD])
    assert failed_route(unknown.value) is None


def test_the_monitor_counts_a_request_from_what_it_is_handed_alone(world, capsys) -> None:
    """Given a monitor capturing every prediction, and no Lambda event anywhere,
    when it is handed an answered outcome, the route of a refused request, and a request refused before
    routing, then each makes exactly one request blob: the answer under [model, version], [model], [service]
    with its records, labels and captures; the refusal under the same version with no records; the early
    refusal under [service] alone."""
    publish_tiny_model(world.store, world.registry)
    outcome = world.predict.predictor().predict("tiny", [GOOD, {"x1": -3, "colour": "red"}])
    monitor = PredictMonitor(1.0, CaptureWriter())
    capsys.readouterr()
    with lines_written(forward=False) as written:
        monitor.record(200, time.perf_counter(), outcome)
        answered = capsys.readouterr().out
        monitor.record(422, time.perf_counter(), route=outcome.route)
        refused = capsys.readouterr().out
        monitor.record(400, time.perf_counter())
        early = capsys.readouterr().out
    [blob] = request_blobs(answered)
    assert dimension_sets(blob) == [["model", "version"], ["model"], ["service"]] and blob["version"] == "1"
    assert (blob["RecordCount"], blob["Errors4xx"], blob["Captured"], blob["CaptureFailures"]) == (
        [2.0], [0.0], [2.0], [0.0])
    assert {b["label"]: b["PredictedLabel"] for b in emf_blobs(answered) if "PredictedLabel" in b} == {
        "yes": [1.0], "no": [1.0]}
    assert [c["id"] for line in written for c in json.loads(line)["captures"]] == [
        p.id for p in outcome.response.predictions]
    [blob] = emf_blobs(refused)
    assert (blob["version"], blob["RecordCount"], blob["Errors4xx"], blob["Captured"]) == ("1", [0.0], [1.0], [0.0])
    [blob] = emf_blobs(early)
    assert dimension_sets(blob) == [["service"]] and "model" not in blob and blob["Errors4xx"] == [1.0]
    assert len(written) == 1  # only the answer was captured


def test_a_canary_answer_and_a_canary_refusal_each_count_once_under_the_canary_version(world, capsys) -> None:
    """Given prod at version 1 with version 2 as its canary, and a caller whose routing key lands on the canary,
    when that caller predicts (200) and then sends a bad record (422),
    then each request makes exactly one request blob, both under version 2, the version that answered and
    the version that refused; only the answer counts records and labels."""
    publish_tiny_model(world.store, world.registry)
    publish_tiny_model(world.store, world.registry, alias=None)
    world.registry.set_canary("tiny", "prod", "2", 0.5)
    key = next(k for k in (f"caller-{i}" for i in range(100)) if canary_share("tiny", "prod", k) < 0.5)
    headers = {"Content-Type": "application/json", "X-Maas-Routing-Key": key}
    capsys.readouterr()
    status, body = call(world.predict, "POST", "/v1/models/tiny/predict", body={"records": [GOOD]}, headers=headers)
    assert (status, body["version"], body["canary"]) == (200, "2", True), body
    out = capsys.readouterr().out
    [blob] = request_blobs(out)
    assert (blob["version"], blob["RecordCount"], blob["Errors4xx"]) == ("2", [1.0], [0.0])
    assert [(b["version"], b["label"]) for b in emf_blobs(out) if "PredictedLabel" in b] == [("2", "yes")]
    status, body = call(world.predict, "POST", "/v1/models/tiny/predict",
                        body={"records": [{"x1": "ten", "colour": "red"}]}, headers=headers)
    assert status == 422, body
    out = capsys.readouterr().out
    [blob] = request_blobs(out)
    assert (blob["version"], blob["RecordCount"], blob["Errors4xx"]) == ("2", [0.0], [1.0])
    assert dimension_sets(blob) == [["model", "version"], ["model"], ["service"]]
    assert not [b for b in emf_blobs(out) if "PredictedLabel" in b]


def test_a_server_error_counts_as_5xx(world, capsys) -> None:
    publish_tiny_model(world.store, world.registry)
    boto3.client("s3").put_object(Bucket=world.store.bucket, Key="models/tiny/1/model.onnx", Body=b"garbage")
    capsys.readouterr()
    status, _ = call(world.predict, "POST", "/v1/models/tiny/predict", body={"records": [GOOD]})
    assert status == 500
    [blob] = request_blobs(capsys.readouterr().out)
    assert (blob["Errors4xx"], blob["Errors5xx"]) == ([0.0], [1.0])


def test_other_routes_emit_no_predict_metrics(world, capsys) -> None:
    call(world.predict, "GET", "/v1/health")
    assert request_blobs(capsys.readouterr().out) == []


# --- capture ----------------------------------------------------------------------------------------


def test_captured_predictions_reach_the_captures_table(world) -> None:
    """Given capture on and `colour` marked sensitive,
    when a caller predicts and the capture function consumes the queue,
    then each prediction is stored under its id with model, version, time, latency, its output, its
    raw record (colour masked) and a 30-day TTL; nothing is dead-lettered."""
    publish_sensitive_tiny_model(world.store, world.registry, {"colour"})
    status, body = call(world.predict, "POST", "/v1/models/tiny/predict",
                        body={"records": [GOOD, {"x1": -3, "colour": "red"}]})
    assert status == 200
    subscription = world.drain()
    assert (subscription.lines, subscription.invocations, subscription.failures) == (1, 1, [])  # one line
    now = time.time() * 1000
    found, truncated = world.captures.query("tiny", int(now - 60_000), int(now + 1))
    assert not truncated and [c.id for c in found] == [p["id"] for p in body["predictions"]]
    first = found[0]
    assert (first.model, first.version, first.task) == ("tiny", "1", "binary")
    assert first.features == {"x1": 1.5, "x2": -2, "colour": MASK}
    assert first.output == {"label": "yes", "probabilities": body["predictions"][0]["probabilities"]}
    assert first.latency_ms > 0 and abs(first.time_ms - now) < 60_000
    raw = boto3.client("dynamodb").scan(TableName=CAPTURES)["Items"][0]
    assert int(raw["expires_at"]["N"]) == int(raw["time_ms"]["N"]) // 1000 + 30 * 86400
    assert "Messages" not in boto3.client("sqs").receive_message(QueueUrl=world.dlq_url)


def test_capture_is_off_at_rate_0(world, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MAAS_CAPTURE_RATE", "0")
    get_settings.cache_clear()
    app = load_function("predict")
    publish_tiny_model(world.store, world.registry)
    capsys.readouterr()
    assert call(app, "POST", "/v1/models/tiny/predict", body={"records": [GOOD]})[0] == 200
    [blob] = request_blobs(capsys.readouterr().out)
    assert "Captured" not in blob and "CaptureFailures" not in blob
    assert world.drain().lines == 0


@contextmanager
def lines_written(forward: bool = True) -> Iterator[list[str]]:
    """The capture lines written meanwhile (`forward`: also handed on to where they went before)."""
    written: list[str] = []
    inner = capture_module.redirect(lambda text: written.append(text) or (inner(text) if forward else None))
    try:
        yield written
    finally:
        capture_module.redirect(inner)


@contextmanager
def broken_stdout() -> Iterator[None]:
    """Capture lines fail to be written (a broken pipe), then go where they went before."""
    def broken(text: str) -> None:
        raise BrokenPipeError("stdout is gone")

    previous = capture_module.redirect(broken)
    try:
        yield
    finally:
        capture_module.redirect(previous)


def test_capture_lines_that_cannot_be_written_are_counted_and_the_answer_is_200(world, capsys, caplog) -> None:
    """Given stdout failing (a broken pipe) when the capture lines are written,
    when a caller predicts three records,
    then the caller still gets 200 with three predictions, CaptureFailures counts all three (and
    Captured none), and the error is logged with the count."""
    publish_tiny_model(world.store, world.registry)
    capsys.readouterr()
    with broken_stdout():
        status, body = call(world.predict, "POST", "/v1/models/tiny/predict", body={"records": [GOOD] * 3})
    assert status == 200 and len(body["predictions"]) == 3
    [blob] = request_blobs(capsys.readouterr().out)
    assert (blob["Captured"], blob["CaptureFailures"], blob["Errors5xx"]) == ([0.0], [3.0], [0.0])
    logged = [r for r in caplog.records if r.getMessage() == "captured predictions could not be written"]
    assert [(r.levelname, r.capture_failures, r.captured) for r in logged] == [("ERROR", 3, 0)]


def test_a_capture_that_is_not_valid_json_is_counted_and_the_others_written(world, capsys, monkeypatch) -> None:
    """Given the first of three captures holding a non-finite number (which would make the line invalid
    JSON, so the subscription's filter would never select it),
    then the prediction answers 200, Captured = 2 and CaptureFailures = 1, and the two others are stored."""
    publish_tiny_model(world.store, world.registry)
    build = world.predict.monitor().record.__globals__["build_captures"]

    def with_nan(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        captures = build(*args, **kwargs)
        captures[0]["latency_ms"] = float("nan")
        return captures

    monkeypatch.setitem(world.predict.monitor().record.__globals__, "build_captures", with_nan)
    capsys.readouterr()
    status, body = call(world.predict, "POST", "/v1/models/tiny/predict", body={"records": [GOOD] * 3})
    assert status == 200
    [blob] = request_blobs(capsys.readouterr().out)
    assert (blob["Captured"], blob["CaptureFailures"]) == ([2.0], [1.0])
    world.drain()
    ids = [p["id"] for p in body["predictions"]]
    assert world.captures.get_many("tiny", ids).keys() == set(ids[1:])


def test_a_capture_crash_never_fails_the_prediction(world, capsys, monkeypatch) -> None:
    publish_tiny_model(world.store, world.registry)
    monkeypatch.setattr(world.predict.monitor().sender, "send", lambda captures: 1 / 0)
    capsys.readouterr()
    status, body = call(world.predict, "POST", "/v1/models/tiny/predict", body={"records": [GOOD]})
    assert status == 200 and body["predictions"][0]["label"] == "yes"
    [blob] = request_blobs(capsys.readouterr().out)
    assert blob["CaptureFailures"] == [1.0]


# --- the capture consumer ---------------------------------------------------------------------------


def capture(model: str = "tiny", version: str = "1", *, at_ms: int | None = None, latency: float = 5.0,
            label: str | None = "yes", value: float | None = None, features: dict | None = None,
            labels: list[str] = LABELS, task: str = "binary") -> dict[str, Any]:
    """A capture as the predict function writes it."""
    pid = f"{new_request_id(at_ms if at_ms is not None else int(time.time() * 1000))}-0"
    output = ({"value": value} if value is not None
              else {"label": label, "probabilities": {lbl: round(1 / len(labels), 6) for lbl in labels}})
    return {"id": pid, "model": model, "version": version, "time_ms": int(pid[:12], 16), "time": "",
            "latency_ms": latency, "task": task, "features": features or {}, "output": output}


def logs_event(*lines: Any, message_type: str = "DATA_MESSAGE") -> dict[str, Any]:
    """The awslogs event a subscription sends: each argument a list of captures (one capture line) or a raw line."""
    messages = [line if isinstance(line, str) else capture_lines(line)[0][0] for line in lines]
    return awslogs_event(messages, log_group="/aws/lambda/maas-predict", message_type=message_type)


def failing_puts(world: World, monkeypatch, fails: Any) -> None:
    """DynamoDB failing (after retries) the capture function's puts for which fails(item) is true."""
    ddb = world.capture.store().ddb
    real_put = ddb.put_item

    def put_item(**kwargs: Any) -> Any:
        if fails(kwargs["Item"]):
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                              "PutItem")
        return real_put(**kwargs)

    monkeypatch.setattr(world.capture.store(), "_ddb", ddb)
    monkeypatch.setattr(ddb, "put_item", put_item)


def test_the_capture_function_writes_every_line_it_can_then_fails_the_invocation(world, monkeypatch) -> None:
    """Given an awslogs event of three lines where DynamoDB fails (after retries) for the capture of the
    second and the third is not a capture line,
    then the first is written and the invocation fails naming the two others, so Lambda retries the event
    and, in the end, dead-letters it: nothing is lost silently."""
    good, broken = capture(), capture()
    failing_puts(world, monkeypatch, lambda item: item["sk"]["S"] == broken["id"])
    with pytest.raises(world.capture.CaptureLinesNotWritten, match=r"2 of 3 capture lines .* ids 1, 2"):
        world.capture.lambda_handler(logs_event([good], [broken], "not json"), FakeLambdaContext())
    assert world.captures.get_many("tiny", [good["id"], broken["id"]]).keys() == {good["id"]}


def test_the_capture_function_writes_the_lines_of_a_big_event_concurrently_and_all_of_them(world) -> None:
    """Given an event of 30 lines of 4 captures each (more lines than the function's writer threads),
    then every capture is written once, and the same event again writes none twice."""
    lines = [[capture() for _ in range(4)] for _ in range(30)]
    event = logs_event(*lines)
    assert world.capture.lambda_handler(event, FakeLambdaContext()) == {
        "lines": 30, "written": 120, "duplicates": 0, "failed": 0}
    assert world.capture.lambda_handler(event, FakeLambdaContext())["duplicates"] == 120
    ids = [c["id"] for line in lines for c in line]
    assert world.captures.get_many("tiny", ids).keys() == set(ids)


def test_the_capture_function_ignores_a_control_message(world) -> None:
    """Given the CONTROL_MESSAGE CloudWatch Logs sends when a subscription is created (to check the
    destination), then the capture function returns without writing anything."""
    event = logs_event("CWL CONTROL MESSAGE: Checking health of destination Lambda function.",
                       message_type="CONTROL_MESSAGE")
    assert world.capture.lambda_handler(event, FakeLambdaContext()) == {"lines": 0, "written": 0, "duplicates": 0}
    assert boto3.client("dynamodb").scan(TableName=CAPTURES)["Items"] == []


@pytest.mark.parametrize("event", [{}, {"awslogs": {"data": "not base64!"}}, {"awslogs": {"data": "aGVsbG8="}},
                                   {"Records": [{"body": "{}"}]}])
def test_an_event_that_is_not_from_a_log_subscription_fails_the_invocation(world, event) -> None:
    with pytest.raises(ValueError, match="not a CloudWatch Logs subscription event"):
        world.capture.lambda_handler(event, FakeLambdaContext())


def test_a_line_that_keeps_failing_ends_in_the_dead_letter_queue(world, monkeypatch) -> None:
    """Given the captures table failing every write,
    when predict writes a capture line (the stand-in retries the invocation twice, as Lambda does),
    then the event is moved to the dead-letter queue with its capture, not dropped."""
    publish_tiny_model(world.store, world.registry)
    failing_puts(world, monkeypatch, lambda item: True)
    status, body = call(world.predict, "POST", "/v1/models/tiny/predict", body={"records": [GOOD]})
    assert status == 200
    subscription = world.drain()
    assert (subscription.invocations, subscription.lines, len(subscription.failures)) == (3, 0, 1)
    dead = boto3.client("sqs").receive_message(QueueUrl=world.dlq_url).get("Messages", [])
    assert len(dead) == 1
    failure = json.loads(dead[0]["Body"])
    assert failure["responsePayload"]["errorType"] == "CaptureLinesNotWritten"
    _, [line] = awslogs_messages(failure["requestPayload"])
    assert json.loads(line["message"])["captures"][0]["id"] == body["predictions"][0]["id"]


def test_a_retried_event_neither_duplicates_nor_erases_feedback(world) -> None:
    publish_tiny_model(world.store, world.registry)
    c = capture()
    event = logs_event([c])
    assert world.capture.lambda_handler(event, FakeLambdaContext())["written"] == 1
    status, _ = call(world.metrics, "POST", "/v1/models/tiny/feedback", body={"prediction_id": c["id"], "label": "no"})
    assert status == 200
    assert world.capture.lambda_handler(event, FakeLambdaContext())["duplicates"] == 1
    [stored] = world.captures.query("tiny", 0, 2**42)[0]
    assert stored.truth == {"label": "no"}


# --- feedback ---------------------------------------------------------------------------------------


def stored(world: World, *captures: dict[str, Any]) -> list[str]:
    world.capture.lambda_handler(logs_event(list(captures)), FakeLambdaContext())
    return [c["id"] for c in captures]


def feedback(world: World, body: Any, model: str = "tiny") -> tuple[int, dict[str, Any]]:
    return call(world.metrics, "POST", f"/v1/models/{model}/feedback", body=body)


def test_feedback_is_recorded_once_per_prediction(world) -> None:
    """Given two captured predictions,
    when the same feedback arrives twice (in one batch and again later), a different label arrives for
    a prediction that already has one, and an unknown id and a foreign label are mixed in,
    then each item gets its own result, the request succeeds, and the metrics count each prediction's
    feedback once, the first one."""
    publish_tiny_model(world.store, world.registry)
    a, b = stored(world, capture(label="yes"), capture(label="no"))
    unknown = f"{new_request_id()}-0"
    status, body = feedback(world, {"feedback": [
        {"prediction_id": a, "label": "yes"}, {"prediction_id": a, "label": "yes"},
        {"prediction_id": b, "label": "yes"}, {"prediction_id": unknown, "label": "no"},
        {"prediction_id": b, "label": "maybe"}]})
    assert status == 200, body
    assert [r["status"] for r in body["results"]] == ["recorded", "duplicate", "recorded", "not_found", "invalid"]
    assert (body["recorded"], body["duplicates"], body["not_found"], body["invalid"]) == (2, 1, 1, 1)
    assert "maybe" in body["results"][4]["message"]
    status, again = feedback(world, {"prediction_id": a, "label": "yes"})  # the single form
    assert status == 200 and again["results"] == [
        {"prediction_id": a, "status": "duplicate", "message": "this feedback was already recorded; counted once"}]
    status, conflict = feedback(world, {"feedback": [{"prediction_id": a, "label": "no"}]})
    assert status == 409
    assert_error(conflict, "conflict", "conflict", "label 'yes'")
    status, report = call(world.metrics, "GET", "/v1/models/tiny/metrics")
    assert status == 200
    [v] = report["versions"]
    assert (v["predictions"], v["feedback"], v["quality"]["count"]) == (2, 2, 2)
    # labels no, yes; truth yes, yes; predicted yes, no: the "yes" row holds one of each
    assert v["quality"]["confusion_matrix"] == {"labels": ["no", "yes"], "matrix": [[0, 0], [1, 1]]}


def test_feedback_for_unknown_predictions_only_is_a_404_with_per_item_details(world) -> None:
    publish_tiny_model(world.store, world.registry)
    ids = [f"{new_request_id()}-0", f"{new_request_id()}-1"]
    status, body = feedback(world, {"feedback": [{"prediction_id": i, "label": "yes"} for i in ids]})
    assert status == 404
    assert_error(body, "not_found", "these ids", ids[1], "not_found")


def test_regression_feedback_takes_values(world) -> None:
    publish(world.store, world.registry, "house", SPEC, onnx_bytes(), [], task="regression",
            model_input=TensorInfo(name="features", dtype="float32", shape=[None, 4]),
            model_output=TensorInfo(name="probabilities", dtype="float32", shape=[None, 2]))
    [pid] = stored(world, capture("house", label=None, value=3.0, task="regression"))
    assert feedback(world, {"prediction_id": pid, "label": "cheap"}, "house")[0] == 422
    status, body = feedback(world, {"prediction_id": pid, "value": 2.5}, "house")
    assert status == 200 and body["recorded"] == 1


BAD_FEEDBACK = [  # (request, status, code, words the error must contain)
        ({"raw_body": "{nope"}, 400, "bad_request", ["not valid JSON"]),
        ({}, 422, "invalid_request", ["body"]),
        ({"body": {"feedback": []}}, 422, "invalid_request", ["feedback"]),
        ({"body": {"feedback": [{"prediction_id": "x"}]}}, 422, "invalid_request", ["exactly one of label"]),
        ({"body": {"feedback": [{"prediction_id": "x", "label": "a", "value": 1}]}}, 422, "invalid_request",
         ["exactly one"]),
        ({"body": {"feedback": [{"prediction_id": "x", "label": "a", "extra": 1}]}}, 422, "invalid_request", ["extra"]),
        ({"body": {"feedback": [{"prediction_id": "x", "label": "a"}] * 1001}}, 422, "invalid_request", ["feedback"]),
        ({"body": {"prediction_id": "x", "label": "yes"}, "path": "/v1/models/ghost/feedback"}, 404, "not_found",
         ["ghost"]),
        ({"body": {"prediction_id": "x", "label": "yes"}, "path": "/v1/models/bad%20name/feedback"}, 400, "bad_request",
         ["invalid model"]),
        ({"body": {"prediction_id": "x", "label": "yes"}}, 422, "unprocessable", ["not a prediction id"]),
        ({"body": {"prediction_id": "x", "label": "yes"}, "headers": {"Content-Type": "text/plain"}}, 415,
         "unsupported_media_type", ["text/plain"]),
]


def test_bad_feedback_gets_a_4xx_naming_what_is_wrong(world) -> None:
    """Given each malformed, empty, invalid or misdirected feedback request in BAD_FEEDBACK (one moto
    world for all: they write nothing), then it gets its 4xx and an error body naming the problem."""
    publish_tiny_model(world.store, world.registry)
    for kwargs, status, code, words in BAD_FEEDBACK:
        kwargs = dict(kwargs)
        path = kwargs.pop("path", "/v1/models/tiny/feedback")
        got, body = call(world.metrics, "POST", path, **kwargs)
        assert got == status, (kwargs, body)
        assert_error(body, code, *words)


# --- metrics: hand-computed values --------------------------------------------------------------------


def test_metrics_match_hand_computed_values(world) -> None:
    """Given a three-class model and, in the last hour, 12 captured predictions of version 1 (latencies
    1..12 ms; 10 with feedback: the truth/predicted pairs of tests/unit/test_monitoring_formulas.py) and one of
    version 2, plus one version-1 capture two hours old,
    when the metrics of the last hour are asked for,
    then version 1 reports volume 12, latency p50/p90/p99 6/11/12 ms, feedback 10, accuracy 0.6,
    precision/recall/F1 macro and per class and the confusion matrix as computed by hand; version 2
    reports volume 1 without quality; ?version=2 reports version 2 only; the old capture is left out
    of 1h and counted in 24h."""
    labels = ["a", "b", "c"]
    for _ in range(2):
        publish(world.store, world.registry, "iris", SPEC, onnx_bytes(), labels, task="multiclass",
                model_input=TensorInfo(name="features", dtype="float32", shape=[None, 4]),
                model_output=TensorInfo(name="probabilities", dtype="float32", shape=[None, 2]))
    now = int(time.time() * 1000)
    v1 = [capture("iris", "1", at_ms=now - 60_000 + i, latency=float(i + 1), label=p, labels=labels)
          for i, p in enumerate(PREDICTED + ["a", "b"])]
    old = capture("iris", "1", at_ms=now - 2 * 3600_000, latency=500.0, label="a", labels=labels)
    ids = stored(world, *v1, capture("iris", "2", at_ms=now - 1000, latency=3.0, label="c", labels=labels), old)
    status, fb = feedback(world, {"feedback": [{"prediction_id": i, "label": t}
                                               for i, t in zip(ids[:len(TRUTH)], TRUTH, strict=True)]}, "iris")
    assert status == 200 and fb["recorded"] == 10

    status, body = call(world.metrics, "GET", "/v1/models/iris/metrics", query={"window": "1h"})
    assert status == 200, body
    assert body["window"]["label"] == "1h" and body["truncated"] is False and body["capture_rate"] == 1.0
    one, two = body["versions"]
    assert (one["version"], one["predictions"], one["estimated_predictions"], one["feedback"]) == ("1", 12, 12.0, 10)
    assert one["latency_ms"] == {"p50": 6.0, "p90": 11.0, "p99": 12.0}
    q = one["quality"]
    assert q["task"] == "multiclass" and q["count"] == 10
    assert q["accuracy"] == pytest.approx(EXPECTED["accuracy"])
    for key in ("precision_macro", "recall_macro", "f1_macro"):
        assert q[key] == pytest.approx(EXPECTED[key]), key
    for label, (p, r, f1, support) in EXPECTED["per_class"].items():
        got = q["per_class"][label]
        assert (got["precision"], got["recall"], got["f1"], got["support"]) == pytest.approx((p, r, f1, support))
    assert q["confusion_matrix"] == {"labels": labels, "matrix": EXPECTED_MATRIX}
    assert one["drift"] == {"skipped": "the model's manifest has no training baseline"}
    assert (two["version"], two["predictions"], two["feedback"], two.get("quality")) == ("2", 1, 0, None)

    status, only = call(world.metrics, "GET", "/v1/models/iris/metrics", query={"version": "2"})
    assert status == 200 and [v["version"] for v in only["versions"]] == ["2"]
    status, day = call(world.metrics, "GET", "/v1/models/iris/metrics", query={"window": "24h"})
    assert status == 200 and day["versions"][0]["predictions"] == 13
    assert day["versions"][0]["latency_ms"]["p99"] == 500.0


def test_regression_metrics_match_hand_computed_values(world) -> None:
    """Given predictions 3, 5, 2.5, 7 with truths 2, 5, 4, 4, then MAE 1.375 and RMSE 1.75."""
    publish(world.store, world.registry, "house", SPEC, onnx_bytes(), [], task="regression",
            model_input=TensorInfo(name="features", dtype="float32", shape=[None, 4]),
            model_output=TensorInfo(name="probabilities", dtype="float32", shape=[None, 2]))
    ids = stored(world, *[capture("house", label=None, value=v, task="regression") for v in (3, 5, 2.5, 7)])
    assert feedback(world, {"feedback": [{"prediction_id": i, "value": t}
                                         for i, t in zip(ids, (2, 5, 4, 4), strict=True)]},
                    "house")[0] == 200
    status, body = call(world.metrics, "GET", "/v1/models/house/metrics")
    assert status == 200
    assert body["versions"][0]["quality"] == {"task": "regression", "count": 4, "mae": pytest.approx(1.375),
                                              "rmse": pytest.approx(1.75)}


def publish_with_baseline(world: World, baseline: dict[str, Any]) -> None:
    version = world.registry.next_version("tiny")
    manifest = Manifest(name="tiny", version=version, task="binary", labels=LABELS, input_schema=SPEC.input_schema(),
                        model_input=TensorInfo(name="features", dtype="float32", shape=[None, len(WEIGHTS)]),
                        model_output=TensorInfo(name="probabilities", dtype="float32", shape=[None, 2]),
                        baseline=baseline)
    published = world.store.publish(manifest, {"model.onnx": onnx_bytes(), "preprocess.json": SPEC.to_json().encode()})
    world.registry.register(published)
    world.registry.set_alias("tiny", "prod", version)


def test_drift_in_the_metrics_api_and_its_publication(world, capsys) -> None:
    """Given a version whose manifest has a training baseline, and 300 captured records whose x1 is
    shifted by one standard deviation and whose colour tilts to blue,
    then GET /metrics reports significant drift (PSI > 0.2) for x1 and colour; and the scheduled
    publication emits MaxDriftPSI under [model, version], [model], [service] and DriftPSI per feature."""
    rng = np.random.default_rng(7)
    publish_with_baseline(world, training_baseline(rng))
    records = serving_records(rng, 300, 1.0, ["blue", "red"], [0.8, 0.2], 0.3)
    for start in range(0, 300, 100):  # several messages
        stored(world, *[capture(features={k: r[k] for k in ("x1", "colour")}) for r in records[start:start + 100]])
    status, body = call(world.metrics, "GET", "/v1/models/tiny/metrics")
    assert status == 200
    drift = body["versions"][0]["drift"]
    assert drift["features"]["x1"]["psi"] > 0.2 and drift["features"]["colour"]["psi"] > 0.2
    assert drift["status"] == "significant" and drift["max_psi"] > 0.2
    assert drift["features"]["flag"]["status"] == "no_data"  # never sent: all missing

    capsys.readouterr()
    result = world.metrics.lambda_handler({"action": "publish_metrics"}, FakeLambdaContext())
    assert result["failed"] == [] and [p["version"] for p in result["published"]] == ["1"]
    blobs = emf_blobs(capsys.readouterr().out)
    [main] = [b for b in blobs if "MaxDriftPSI" in b]
    assert dimension_sets(main) == [["model", "version"], ["model"], ["service"]]
    assert main["MaxDriftPSI"][0] == pytest.approx(drift["max_psi"]) and main["CapturedPredictions"] == [300.0]
    per_feature = {b["feature"]: b["DriftPSI"][0] for b in blobs if "DriftPSI" in b}
    assert per_feature.keys() == {"x1", "colour"}


def test_scheduled_publication_emits_quality_from_enough_feedback(world, capsys) -> None:
    """Given 10 labelled predictions (at least MAAS_METRICS_MIN_SAMPLES = 5) of a three-class model,
    then the scheduled event publishes Accuracy, PrecisionMacro, RecallMacro and F1Macro with the
    values GET /metrics reports."""
    labels = ["a", "b", "c"]
    publish(world.store, world.registry, "iris", SPEC, onnx_bytes(), labels, task="multiclass",
            model_input=TensorInfo(name="features", dtype="float32", shape=[None, 4]),
            model_output=TensorInfo(name="probabilities", dtype="float32", shape=[None, 2]))
    ids = stored(world, *[capture("iris", label=p, labels=labels) for p in PREDICTED])
    feedback(world, {"feedback": [{"prediction_id": i, "label": t}
                                  for i, t in zip(ids[:len(TRUTH)], TRUTH, strict=True)]}, "iris")
    capsys.readouterr()
    world.metrics.lambda_handler({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events"},
                                 FakeLambdaContext())
    [blob] = [b for b in emf_blobs(capsys.readouterr().out) if "Accuracy" in b]
    assert blob["Accuracy"][0] == pytest.approx(0.6)
    assert blob["F1Macro"][0] == pytest.approx(EXPECTED["f1_macro"])
    assert blob["FeedbackCount"] == [10.0] and "MaxDriftPSI" not in blob


BAD_METRICS = [  # (path, query, status, code, words)
        ("/v1/models/ghost/metrics", None, 404, "not_found", ["ghost"]),
        ("/v1/models/tiny/metrics", {"version": "9"}, 404, "not_found", ["no version '9'"]),
        ("/v1/models/tiny/metrics", {"window": "soon"}, 422, "unprocessable", ["invalid window", "window"]),
        ("/v1/models/tiny/metrics", {"window": "90d"}, 422, "unprocessable", ["30 days"]),
        ("/v1/models/tiny/metrics", {"window": "1h", "since": "2026-01-01T00:00:00Z"}, 422, "unprocessable",
         ["either"]),
        ("/v1/models/tiny/metrics", {"since": "last week"}, 422, "unprocessable", ["ISO 8601"]),
        ("/v1/models/tiny/metrics", {"until": "2026-01-01T00:00:00Z"}, 422, "unprocessable", ["since"]),
        ("/v1/models/bad%20name/metrics", None, 400, "bad_request", ["invalid model"]),
]


def test_bad_metrics_requests_get_a_4xx(world) -> None:
    """Given each request in BAD_METRICS (unknown model or version, bad windows, a bad name),
    then it gets its 4xx and an error body naming the parameter."""
    publish_tiny_model(world.store, world.registry)
    for path, query, status, code, words in BAD_METRICS:
        got, body = call(world.metrics, "GET", path, query=query)
        assert got == status, (path, query, body)
        assert_error(body, code, *words)


def test_predict_capture_feedback_metrics_end_to_end(world) -> None:
    """Given the tiny model, when callers predict, the captures are consumed and feedback arrives for
    each prediction, then GET /metrics counts every prediction and its accuracy."""
    publish_tiny_model(world.store, world.registry)
    records = [GOOD, {"x1": -3, "colour": "red"}, {"x1": 2, "colour": "red"}, {"x1": -1, "colour": "blue"}]
    _, body = call(world.predict, "POST", "/v1/models/tiny/predict", body={"records": records})
    world.drain()
    truth = ["yes", "no", "no", "no"]  # the model says yes, no, yes, no: 3 of 4 right
    status, fb = feedback(world, {"feedback": [{"prediction_id": p["id"], "label": t}
                                               for p, t in zip(body["predictions"], truth, strict=True)]})
    assert status == 200 and fb["recorded"] == 4
    _, report = call(world.metrics, "GET", "/v1/models/tiny/metrics", query={"window": "5m"})
    [v] = report["versions"]
    assert (v["predictions"], v["feedback"], v["quality"]["accuracy"]) == (4, 4, 0.75)
    assert v["latency_ms"]["p50"] > 0
