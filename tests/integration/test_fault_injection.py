"""Fault injection on every AWS call the functions make, through their handlers (moto underneath).

The calls (botocore operation names, as recorded from each handler path); * = in
test_fault_injection_writes.py, which also checks that the retry after the fault completes the work once:
    predict       dynamodb.GetItem (alias), s3.GetObject (manifest, model, spec); capture is log lines, no call
    preprocess    dynamodb.GetItem, s3.GetObject
    metrics       feedback: dynamodb.Query, dynamodb.BatchGetItem, dynamodb.UpdateItem (captures table);
                  GET metrics: dynamodb.Query (registry, captures), s3.GetObject* (manifest, for drift);
                  scheduled publication*: dynamodb.Scan (registry), then per model dynamodb.Query, s3.GetObject
    capture       dynamodb.PutItem (captures table)
    admin         alias moves: dynamodb.GetItem, dynamodb.TransactWriteItems;
                  version delete*: dynamodb.GetItem, dynamodb.Query, dynamodb.DeleteItem, s3.ListObjectVersions,
                  s3.DeleteObjects
    batch         s3.GetObject (input, model), s3.HeadObject (duplicate check), s3.PutObject (results);
                  s3.CreateMultipartUpload*, s3.UploadPart*, s3.CompleteMultipartUpload*,
                  s3.AbortMultipartUpload* (large results), s3.PutObject* (errors file, failure report),
                  s3.HeadObject* / s3.DeleteObject* (stale failure report); capture as predict's (no call)
    train_trigger* s3.HeadObject (dataset), s3.ListObjectsV2 (its training config), batch.ListJobs (a job of
                  the same name already submitted), batch.SubmitJob
KMS is reached only through S3 (SSE-KMS): a denied key is an S3 AccessDenied, covered by "denied".

Faults are injected at the HTTP layer (a `before-send` hook on the process's boto3 session answers the
chosen operation with the service's own error response, or raises a botocore timeout), so botocore's
standard retry mode really runs: retryable faults are attempted several times (backoff sleeps patched
to zero), the others once. What callers get:
    throttling, timeouts (after the retries)  -> 503 service_unavailable, Retry-After: 1
    access denied (IAM / key policy)           -> 500 dependency_access_denied, no AWS text (ARNs) quoted
    missing model object (NoSuchKey)           -> 404 not_found
    missing table (ResourceNotFoundException)  -> 503 (the stack is being deployed or was deleted)
and nothing accepted is lost: a failed feedback write leaves the capture without truth (retry is safe),
a failed capture write fails the capture function's invocation (Lambda retries it, then dead-letters it), a
failed alias move leaves the alias where it was, a failed batch file gets its failure report and no partial
output and fails the invocation (Lambda redelivers it; the redelivery writes everything once), a failed
version delete is completed by the same DELETE again, a failed train trigger fails its invocation (logged;
the retry submits one job, never two), and a failed scheduled publication either fails (no model list) or
reports the one model it could not compute.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.retries.standard
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from moto.core.botocore_stubber import BotocoreStubber, MockRawResponse
from moto.core.models import botocore_stubber

from maas_core import aws
from maas_core.batch import BatchFileError, run_batch
from maas_core.edge.awslogs import awslogs_event
from maas_core.predictor import Predictor
from maas_core.settings import Settings, get_settings
from maas_local.testing.tiny_model import publish_tiny_model
from tests.integration.test_monitoring import CAPTURES, World, lines_written
from tests.integration.test_monitoring import world as monitoring_world  # noqa: F401 - a fixture
from tests.lambda_events import FakeLambdaContext, assert_error, load_function, rest_event

GOOD = {"x1": 1.5, "x2": -2, "colour": "blue"}
SECRET_ARN = "arn:aws:iam::123456789012:role/secret-role-name"  # in AWS's message; never in ours

# --- the injector -------------------------------------------------------------------------------------

_S3_ERRORS = {  # fault -> (status, code)
    "throttle": (503, "SlowDown"), "denied": (403, "AccessDenied"), "missing": (404, "NoSuchKey"),
}
_JSON_ERRORS = {
    "dynamodb": {"throttle": "ProvisionedThroughputExceededException", "denied": "AccessDeniedException",
                 "missing": "ResourceNotFoundException"},
    "sqs": {"throttle": "ThrottlingException", "denied": "AccessDeniedException",
            "missing": "QueueDoesNotExist"},
    "batch": {"throttle": "TooManyRequestsException", "denied": "AccessDeniedException",
              "missing": "ClientException"},
}
RETRYABLE = {"throttle", "timeout", "lost_answer"}


def fault_response(service: str, fault: str, request: Any) -> AWSResponse:
    message = f"User: {SECRET_ARN} is not authorized" if fault == "denied" else f"injected {fault}"
    if service == "s3":
        status, code = _S3_ERRORS[fault]
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message>'
                f"<RequestId>fault</RequestId></Error>").encode()
        if request.method == "HEAD":  # HEAD answers carry no body: the status is the code
            body = b""
        return AWSResponse(request.url, status, {"Content-Type": "application/xml"}, MockRawResponse(body))
    code = _JSON_ERRORS[service][fault]
    body = json.dumps({"__type": f"com.amazonaws.{service}#{code}", "message": message}).encode()
    return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.0"}, MockRawResponse(body))


@dataclass
class Faults:
    """Answers the planned operation with a fault and counts the attempts botocore makes."""

    plan: dict[str, tuple[str, Callable[[Any], bool]]] = field(default_factory=dict)  # "s3.GetObject" -> fault
    attempts: Counter[str] = field(default_factory=Counter)

    def inject(self, operation: str, fault: str, when: Callable[[Any], bool] = lambda request: True) -> None:
        self.plan[operation] = (fault, when)
        self.attempts.clear()

    def clear(self) -> None:
        self.plan.clear()

    def __call__(self, request: Any, event_name: str, **kwargs: Any) -> AWSResponse | None:
        _, service, operation = event_name.split(".", 2)
        key = f"{service}.{operation}"
        planned = self.plan.get(key)
        if planned is None or not planned[1](request):
            return None  # moto answers
        self.attempts[key] += 1
        fault = planned[0]
        if fault == "lost_answer":  # AWS performed the request, then its answer never arrived
            botocore_stubber(event_name, request)
        request.maas_fault = True  # moto's hook (also on before-send) must not carry the request out
        if fault in ("timeout", "lost_answer"):
            raise ReadTimeoutError(endpoint_url=request.url)
        return fault_response(service, fault, request)


def new_injector(monkeypatch: pytest.MonkeyPatch) -> Faults:
    """The injector, with botocore's retry backoff not sleeping and moto's hook skipping faulted requests;
    install() puts it on the functions' session."""
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)
    # botocore calls every before-send handler and uses the first answer: without this, moto would still
    # perform a write we answered with a fault (AWS does not perform a throttled or denied request)
    moto_hook = BotocoreStubber.__call__

    def unless_faulted(self: BotocoreStubber, event_name: str, request: Any, **kwargs: Any) -> Any:
        return None if getattr(request, "maas_fault", False) else moto_hook(self, event_name, request, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", unless_faulted)
    return Faults()


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> Iterator[Faults]:
    """The injector on a fresh boto3 session (every client of the functions comes from it)."""
    injector = new_injector(monkeypatch)
    yield injector
    injector.clear()


def install(injector: Faults) -> None:
    """On a fresh session, after the moto world is up (its fixture resets the clients)."""
    aws.reset_clients()
    aws.session().events.register_first("before-send", injector)


def faulty_world(request: pytest.FixtureRequest, injector: Faults) -> World:
    """The monitoring world (moto S3/DynamoDB/SQS, captures table and log subscription, fresh functions) with the tiny
    model published as prod, and the fault injector in place."""
    w: World = request.getfixturevalue("monitoring_world")
    publish_tiny_model(w.store, w.registry)
    install(injector)
    return w


@pytest.fixture
def world(request: pytest.FixtureRequest, faults: Faults) -> World:
    return faulty_world(request, faults)


def invoke(fn: Any, method: str, path: str, body: Any = None) -> tuple[int, dict[str, list[str]], dict[str, Any]]:
    resp = fn.lambda_handler(rest_event(method, path, body=body), FakeLambdaContext())
    return resp["statusCode"], resp["multiValueHeaders"], json.loads(resp["body"])


def assert_fault_answer(fault: str, status: int, headers: dict[str, list[str]], body: dict[str, Any],
                        what: str) -> None:
    """The status and message each fault maps to, in the documented shape, quoting nothing of AWS's text."""
    text = json.dumps(body)
    assert SECRET_ARN not in text and "injected" not in text
    if fault in RETRYABLE or fault == "missing_table":
        assert status == 503, body
        assert_error(body, "service_unavailable", what, "try again later")
        assert headers["Retry-After"] == ["1"]
    elif fault == "denied":
        assert status == 500, body
        assert_error(body, "dependency_access_denied", what, "permissions problem")
    else:
        raise AssertionError(fault)


def assert_attempts(faults: Faults, operation: str, fault: str) -> None:
    """Retryable faults were retried (botocore's standard mode), the others tried once."""
    n = faults.attempts[operation]
    assert (n > 1) if fault in RETRYABLE else (n == 1), (operation, fault, n)


def captured_lines(w: World) -> int:
    """Capture lines the capture function has handled so far."""
    return w.drain().lines


# --- predict and preprocess: registry and model store -------------------------------------------------

SERVING = {"predict": "/v1/models/tiny/predict", "preprocess": "/v1/models/tiny/preprocess"}
FAULTS = ["throttle", "timeout", "denied"]


@pytest.mark.parametrize("fault", FAULTS + ["missing_table"])
@pytest.mark.parametrize("function", sorted(SERVING))
def test_a_registry_fault_is_answered_and_retried(world: World, faults: Faults, function: str, fault: str) -> None:
    """Given the registry (DynamoDB GetItem of the alias) throttling, timing out, denying access or missing,
    when a caller predicts or preprocesses,
    then the answer is 503 (retryable, after botocore's retries) or 500 (denied), naming the registry and
    quoting nothing of AWS's message; nothing is captured."""
    faults.inject("dynamodb.GetItem", "missing" if fault == "missing_table" else fault)
    status, headers, body = invoke(load_function(function), "POST", SERVING[function], {"records": [GOOD]})
    assert_fault_answer(fault, status, headers, body, "registry")
    assert_attempts(faults, "dynamodb.GetItem", "missing" if fault == "missing_table" else fault)
    assert captured_lines(world) == 0


@pytest.mark.parametrize("fault", FAULTS + ["missing"])
@pytest.mark.parametrize("function", sorted(SERVING))
def test_a_model_store_fault_is_answered_and_retried(world: World, faults: Faults, function: str, fault: str) -> None:
    """Given S3 (GetObject of the bundle files; KMS decrypts through it) throttling (SlowDown), timing out,
    denying access or missing the object,
    then throttling/timeouts are 503 after retries, access denied 500, a missing object 404 naming it."""
    faults.inject("s3.GetObject", fault)
    status, headers, body = invoke(load_function(function), "POST", SERVING[function], {"records": [GOOD]})
    assert_attempts(faults, "s3.GetObject", fault)
    if fault == "missing":
        assert status == 404
        assert_error(body, "not_found", "model 'tiny' version '1'", "not found")
    else:
        assert_fault_answer(fault, status, headers, body, "model bucket")
    assert captured_lines(world) == 0


# --- the capture function ---------------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS + ["missing_table"])
def test_a_capture_write_fault_fails_the_invocation_for_a_retry(world: World, faults: Faults, fault: str) -> None:
    """Given the captures table (PutItem) failing,
    when the capture function gets a capture line from the log subscription, then the invocation fails
    (Lambda retries the event, then dead-letters it): the capture is not lost."""
    with lines_written(forward=False) as lines:
        assert invoke(world.predict, "POST", SERVING["predict"], {"records": [GOOD]})[0] == 200
    faults.inject("dynamodb.PutItem", "missing" if fault == "missing_table" else fault)
    with pytest.raises(world.capture.CaptureLinesNotWritten, match="1 of 1 capture lines"):
        world.capture.lambda_handler(awslogs_event(lines[0].splitlines(), log_group="/aws/lambda/p"),
                                     FakeLambdaContext())
    assert_attempts(faults, "dynamodb.PutItem", "missing" if fault == "missing_table" else fault)
    assert boto3.client("dynamodb").scan(TableName=CAPTURES)["Count"] == 0


# --- feedback and metrics -------------------------------------------------------------------------------


def _captured_prediction(world: World) -> str:
    status, _, body = invoke(world.predict, "POST", SERVING["predict"], {"records": [GOOD]})
    assert status == 200
    assert world.drain().lines == 1
    return body["predictions"][0]["id"]


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("operation", ["dynamodb.UpdateItem", "dynamodb.BatchGetItem"])
def test_a_feedback_write_fault_is_503_and_writes_nothing(world: World, faults: Faults, operation: str,
                                                          fault: str) -> None:
    """Given a captured prediction and the captures table failing on the read (BatchGetItem) or the write
    (UpdateItem) of feedback,
    then the caller gets 503/500 naming the captures table, the capture holds no truth (nothing half
    written), and the same feedback sent again once the table is back is recorded."""
    pid = _captured_prediction(world)
    feedback = {"feedback": [{"prediction_id": pid, "label": "yes"}]}
    faults.inject(operation, fault)
    status, headers, body = invoke(world.metrics, "POST", "/v1/models/tiny/feedback", feedback)
    assert_fault_answer(fault, status, headers, body, "captures table")
    assert_attempts(faults, operation, fault)
    [item] = boto3.client("dynamodb").scan(TableName=CAPTURES)["Items"]
    assert "truth" not in item
    faults.clear()
    status, _, body = invoke(world.metrics, "POST", "/v1/models/tiny/feedback", feedback)
    assert status == 200 and body["results"][0]["status"] == "recorded", body


@pytest.mark.parametrize("fault", FAULTS + ["missing_table"])
def test_a_metrics_read_fault_is_answered(world: World, faults: Faults, fault: str) -> None:
    """Given DynamoDB Query failing (registry and captures), GET metrics answers 503/500, never a 5xx trace."""
    faults.inject("dynamodb.Query", "missing" if fault == "missing_table" else fault)
    status, headers, body = invoke(world.metrics, "GET", "/v1/models/tiny/metrics")
    assert_fault_answer(fault, status, headers, body, "table" if fault == "missing_table" else "")
    assert_attempts(faults, "dynamodb.Query", "missing" if fault == "missing_table" else fault)


# --- admin: alias moves ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
def test_a_failed_alias_move_leaves_the_alias_where_it_was(world: World, faults: Faults, fault: str) -> None:
    """Given version 2 published and the registry's transaction (TransactWriteItems) failing,
    when an admin promotes version 2 to prod, then the answer is 503/500 and prod still points at 1."""
    publish_tiny_model(world.store, world.registry, alias=None)
    faults.inject("dynamodb.TransactWriteItems", fault)
    status, headers, body = invoke(load_function("admin"), "PUT", "/v1/models/tiny/aliases/prod", {"version": "2"})
    assert_fault_answer(fault, status, headers, body, "registry")
    assert_attempts(faults, "dynamodb.TransactWriteItems", fault)
    faults.clear()
    assert world.registry.resolve_alias("tiny", "prod").version == "1"


# --- batch files ----------------------------------------------------------------------------------------


def _is_key(prefix: str) -> Callable[[Any], bool]:
    return lambda request: f"/{prefix}" in request.url


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize(("operation", "prefix"), [("s3.GetObject", "batch/input/"), ("s3.GetObject", "models/"),
                                                    ("s3.HeadObject", "batch/output/"),
                                                    ("s3.PutObject", "batch/output/")])
def test_a_batch_file_hit_by_a_fault_gets_a_failure_report_and_no_output(
        world: World, faults: Faults, monkeypatch: pytest.MonkeyPatch, operation: str, prefix: str,
        fault: str) -> None:
    """Given a batch file and S3 failing on the input, the model or the results,
    when the batch job runs, then it raises (the event goes to the dead-letter queue after Lambda's retry),
    the failure report names the input and a retryable or permission error, and no partial output exists."""
    monkeypatch.setenv("MAAS_MODEL_BUCKET", world.store.bucket)
    get_settings.cache_clear()
    s3 = boto3.client("s3")
    key = "batch/input/tiny/rows.csv"
    s3.put_object(Bucket=world.store.bucket, Key=key, Body=b"x1,colour\n1,red\n2,blue\n")
    faults.inject(operation, fault, when=_is_key(prefix))
    if (operation, fault) == ("s3.HeadObject", "denied"):
        # the duplicate check reads a 403 as "not processed yet" (S3's answer for a missing key without
        # s3:ListBucket): the file is processed, nothing is lost
        result = run_batch(world.store.bucket, key, Predictor(Settings(), world.registry, world.store))
        assert result.status == "done" and result.predicted == 2
        assert faults.attempts[operation] >= 1
        return
    with pytest.raises(BatchFileError) as err:
        run_batch(world.store.bucket, key, Predictor(Settings(), world.registry, world.store))
    faults.clear()
    assert faults.attempts[operation], f"the run failed before reaching the fault: {err.value.report()}"
    assert_attempts(faults, operation, fault)
    report = json.loads(s3.get_object(Bucket=world.store.bucket,
                                      Key="batch/failed/tiny/rows.csv.error.json")["Body"].read())
    assert report["input"] == f"s3://{world.store.bucket}/{key}" and report["error"] == err.value.code
    expected = {"denied": {"dependency_access_denied", "service_unavailable"}}.get(fault, {"service_unavailable"})
    assert err.value.code in expected, (err.value.code, report)
    assert SECRET_ARN not in json.dumps(report)
    assert s3.list_objects_v2(Bucket=world.store.bucket, Prefix="batch/output/").get("KeyCount", 0) == 0
