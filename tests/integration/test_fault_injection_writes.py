"""Fault injection on the calls that write or start something: batch results (multipart and single put),
failure reports, version deletes, training job submission, and the scheduled metrics publication; and the
CORS headers of the answers http.py gives before the resolver runs.

The injector, its fixtures and the fault -> answer mapping are test_fault_injection's (see its docstring
for the complete list of calls). What these tests add is the second half of "nothing accepted is lost":
after the fault clears, the retry (Lambda's redelivery, or the caller's second request) completes the work
exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import moto.s3.models
import pytest

from maas_core import training_jobs
from maas_core.batch import BatchFileError, run_batch
from maas_core.errors import DependencyAccessDeniedError, ServiceUnavailableError
from maas_core.predictor import Predictor
from maas_core.settings import Settings, get_settings
from maas_local.testing.tiny_model import publish_tiny_model
from tests.integration.test_fault_injection import (
    FAULTS,
    GOOD,
    RETRYABLE,
    SECRET_ARN,
    Faults,
    _captured_prediction,
    assert_attempts,
    assert_fault_answer,
    faulty_world,
    install,
    invoke,
    new_injector,
)
from tests.integration.test_monitoring import World
from tests.integration.test_monitoring import world as monitoring_world  # noqa: F401 - a fixture
from tests.integration.test_training_jobs import PENGUINS_CONFIG, BatchWorld, s3_event
from tests.integration.test_training_jobs import world as training_world  # noqa: F401 - a fixture
from tests.lambda_events import FakeLambdaContext, load_function, rest_event


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> Iterator[Faults]:
    injector = new_injector(monkeypatch)
    yield injector
    injector.clear()


@pytest.fixture
def world(request: pytest.FixtureRequest, faults: Faults) -> World:
    """test_fault_injection's world: the monitoring world, tiny published as prod, the injector installed."""
    return faulty_world(request, faults)


# --- batch: writing the results ---------------------------------------------------------------------

KEY = "batch/input/tiny/rows.csv"
PREDICTIONS = "batch/output/tiny/rows.csv.predictions.jsonl"
ERRORS = "batch/output/tiny/rows.csv.errors.jsonl"
REPORT = "batch/failed/tiny/rows.csv.error.json"
PART = 64 * 1024
ROWS = 1200  # about 150 KB of predictions: three parts of 64 KiB


@pytest.fixture
def batch_bucket(world: World, monkeypatch: pytest.MonkeyPatch) -> str:
    """The monitoring world's model bucket as the batch bucket, accepting 64 KiB multipart parts."""
    monkeypatch.setenv("MAAS_MODEL_BUCKET", world.store.bucket)
    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", PART)
    get_settings.cache_clear()
    return world.store.bucket


def _upload(bucket: str, rows: int, bad_rows: int = 0) -> None:
    body = "x1,colour\n" + "".join(f"{i % 7},{('red', 'blue')[i % 2]}\n" for i in range(rows))
    body += "".join("oops,red\n" for _ in range(bad_rows))
    boto3.client("s3").put_object(Bucket=bucket, Key=KEY, Body=body.encode())


def _run(world: World, bucket: str) -> Any:
    return run_batch(bucket, KEY, Predictor(Settings(), world.registry, world.store), chunk_rows=200, part_size=PART)


def _outputs(bucket: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="batch/output/")
    return sorted(o["Key"] for o in listed.get("Contents", []))


def _uploads_in_progress(bucket: str) -> int:
    return len(boto3.client("s3").list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def _assert_failed_cleanly(bucket: str, err: BatchFileError, fault: str) -> None:
    """The failure report names the input and a retryable or permission error; no output is visible."""
    s3 = boto3.client("s3")
    report = json.loads(s3.get_object(Bucket=bucket, Key=REPORT)["Body"].read())
    assert report["input"] == f"s3://{bucket}/{KEY}" and report["error"] == err.code
    expected = {"dependency_access_denied", "service_unavailable"} if fault == "denied" else {"service_unavailable"}
    assert err.code in expected, report
    assert SECRET_ARN not in json.dumps(report) and "injected" not in json.dumps(report)
    assert _outputs(bucket) == []


def _assert_redelivery_writes_everything_once(world: World, bucket: str, rows: int, bad_rows: int = 0,
                                              abandoned_uploads: int = 0) -> None:
    """The redelivered event (the fault gone) writes every row once and removes the report; a third
    delivery changes nothing."""
    result = _run(world, bucket)
    assert (result.status, result.predicted, result.rejected) == ("done", rows, bad_rows)
    s3 = boto3.client("s3")
    lines = s3.get_object(Bucket=bucket, Key=PREDICTIONS)["Body"].read().decode().splitlines()
    assert sorted(json.loads(line)["row"] for line in lines) == list(range(1, rows + 1))
    errors = s3.get_object(Bucket=bucket, Key=ERRORS)["Body"].read().decode().splitlines()
    assert len(errors) == bad_rows
    assert _outputs(bucket) == [ERRORS, PREDICTIONS]
    assert s3.list_objects_v2(Bucket=bucket, Prefix="batch/failed/").get("KeyCount", 0) == 0
    assert _uploads_in_progress(bucket) == abandoned_uploads
    assert _run(world, bucket).status == "skipped"


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("operation", ["s3.CreateMultipartUpload", "s3.UploadPart", "s3.CompleteMultipartUpload"])
def test_a_multipart_fault_fails_the_file_without_output_and_the_redelivery_writes_it_once(
        world: World, faults: Faults, batch_bucket: str, operation: str, fault: str) -> None:
    """Given a file whose predictions span three multipart parts and S3 failing on creating the upload, a
    part, or completing it,
    when the batch job runs, then it raises (the invocation fails: Lambda retries the event) after botocore's
    retries, the failure report says why, no predictions or errors object is visible and no upload is left
    (aborted); when the event is delivered again, every row is predicted once."""
    _upload(batch_bucket, ROWS)
    faults.inject(operation, fault)
    with pytest.raises(BatchFileError) as err:
        _run(world, batch_bucket)
    assert_attempts(faults, operation, fault)
    faults.clear()
    _assert_failed_cleanly(batch_bucket, err.value, fault)
    assert _uploads_in_progress(batch_bucket) == 0
    _assert_redelivery_writes_everything_once(world, batch_bucket, ROWS)


def test_an_abort_that_fails_too_still_fails_the_file_and_leaves_nothing_visible(
        world: World, faults: Faults, batch_bucket: str, caplog: pytest.LogCaptureFixture) -> None:
    """Given S3 throttling every UploadPart and AbortMultipartUpload,
    then the run still fails with the upload's error (not the abort's), logs the upload it could not abort
    (the bucket's lifecycle rule removes it after a day), shows no object, and the redelivery completes."""
    _upload(batch_bucket, ROWS)
    faults.inject("s3.UploadPart", "throttle")
    faults.inject("s3.AbortMultipartUpload", "throttle")
    with pytest.raises(BatchFileError) as err:
        _run(world, batch_bucket)
    assert faults.attempts["s3.AbortMultipartUpload"] > 1
    faults.clear()
    assert err.value.details[0]["operation"] == "UploadPart"
    assert "could not abort multipart upload" in caplog.text
    assert _uploads_in_progress(batch_bucket) == 1
    _assert_failed_cleanly(batch_bucket, err.value, "throttle")
    _assert_redelivery_writes_everything_once(world, batch_bucket, ROWS, abandoned_uploads=1)


@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_on_the_errors_file_withdraws_the_predictions_and_fails_the_invocation(
        world: World, faults: Faults, batch_bucket: str, fault: str) -> None:
    """Given a small file (single puts) with one bad row, and S3 failing on the errors file only, which is
    written after the predictions file,
    when the batch function gets the file's S3 event, then the invocation fails (Lambda retries it), the
    predictions file it had already written is withdrawn (no predictions without their errors file, whose
    presence says the run finished), and the redelivered event writes both."""
    _upload(batch_bucket, 3, bad_rows=1)
    faults.inject("s3.PutObject", fault, when=lambda request: request.url.endswith(ERRORS.rsplit("/", 1)[-1]))
    event = s3_event(batch_bucket, KEY)
    with pytest.raises(BatchFileError) as err:
        load_function("batch").lambda_handler(event, FakeLambdaContext(remaining_ms=300_000))
    assert_attempts(faults, "s3.PutObject", fault)
    faults.clear()
    _assert_failed_cleanly(batch_bucket, err.value, fault)
    _assert_redelivery_writes_everything_once(world, batch_bucket, 3, bad_rows=1)


@pytest.mark.parametrize("fault", FAULTS)
def test_a_failure_report_that_cannot_be_written_still_fails_the_file_with_its_own_reason(
        world: World, faults: Faults, batch_bucket: str, fault: str, caplog: pytest.LogCaptureFixture) -> None:
    """Given a file for an unknown model (it cannot be processed) and S3 failing on its failure report,
    then the run raises the file's own error (not_found, naming the model), so the invocation fails and the
    event reaches the dead-letter queue with that reason, and the unwritten report is logged."""
    key = "batch/input/ghost/rows.csv"
    boto3.client("s3").put_object(Bucket=batch_bucket, Key=key, Body=b"x1,colour\n1,red\n")
    faults.inject("s3.PutObject", fault, when=lambda request: "/batch/failed/" in request.url)
    with pytest.raises(BatchFileError) as err:
        run_batch(batch_bucket, key, Predictor(Settings(), world.registry, world.store))
    assert_attempts(faults, "s3.PutObject", fault)
    faults.clear()
    assert err.value.code == "not_found" and "ghost" in err.value.message
    assert "could not write the failure report" in caplog.text
    assert boto3.client("s3").list_objects_v2(Bucket=batch_bucket, Prefix="batch/").get("KeyCount") == 1  # the input


@pytest.mark.parametrize("operation", ["s3.HeadObject", "s3.DeleteObject"])
def test_a_stale_report_that_cannot_be_removed_does_not_fail_a_finished_run(
        world: World, faults: Faults, batch_bucket: str, operation: str) -> None:
    """Given a report left by an earlier failed run and S3 failing to look at or delete it,
    then the run (whose outputs are complete) still succeeds; the stale report is removed by a later run."""
    _upload(batch_bucket, 3)
    boto3.client("s3").put_object(Bucket=batch_bucket, Key=REPORT, Body=b"{}")
    faults.inject(operation, "throttle", when=lambda request: "/batch/failed/" in request.url)
    result = _run(world, batch_bucket)
    assert result.status == "done" and result.predicted == 3
    assert_attempts(faults, operation, "throttle")
    assert _outputs(batch_bucket) == [ERRORS, PREDICTIONS]


# --- admin: deleting a version ------------------------------------------------------------------------

VERSION_PATH = "/v1/models/tiny/versions/2"
REGISTRY_CALLS = ["dynamodb.GetItem", "dynamodb.Query", "dynamodb.TransactWriteItems"]
BUCKET_CALLS = ["s3.ListObjectVersions", "s3.DeleteObjects"]


def _bundle_keys(bucket: str, version: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=f"models/tiny/{version}/")
    return sorted(o["Key"] for o in listed.get("Contents", []))


def _registered(world: World) -> list[str]:
    return [v["version"] for v in world.registry.describe("tiny")["versions"]]


@pytest.mark.parametrize(("operation", "fault"), [(op, f) for op in REGISTRY_CALLS for f in FAULTS + ["missing_table"]]
                         + [(op, f) for op in BUCKET_CALLS for f in FAULTS])
def test_a_failed_delete_is_answered_and_the_same_delete_again_completes_it(
        world: World, faults: Faults, operation: str, fault: str) -> None:
    """Given version 2 (no alias) and the registry (GetItem, Query of the aliases, the conditional
    TransactWriteItems deleting it and recording the deletion) or the bucket (ListObjectVersions,
    DeleteObjects) failing, when an admin deletes version 2, then the answer is 503/500 naming the registry or
    the bucket; a registry fault leaves the version registered with all its files, a bucket fault (after the version was
    unregistered) leaves its files; and the same DELETE again, once AWS is back, deletes the files and
    answers 200; a third one is 404."""
    publish_tiny_model(world.store, world.registry, alias=None)
    files = _bundle_keys(world.store.bucket, "2")
    admin = load_function("admin")
    faults.inject(operation, "missing" if fault == "missing_table" else fault)
    status, headers, body = invoke(admin, "DELETE", VERSION_PATH)
    assert_fault_answer(fault, status, headers, body, "registry" if operation in REGISTRY_CALLS else "model bucket")
    assert_attempts(faults, operation, "missing" if fault == "missing_table" else fault)
    faults.clear()
    assert _registered(world) == (["2", "1"] if operation in REGISTRY_CALLS else ["1"])
    assert _bundle_keys(world.store.bucket, "2") == files and len(files) == 3

    status, _, body = invoke(admin, "DELETE", VERSION_PATH)
    assert status == 200, body
    assert body == {"model": "tiny", "version": "2", "deleted": True, "files_deleted": 3,
                    "registry_entry_deleted": operation in REGISTRY_CALLS}, body
    assert _registered(world) == ["1"] and _bundle_keys(world.store.bucket, "2") == []
    status, _, body = invoke(admin, "DELETE", VERSION_PATH)
    assert status == 404 and body["error"]["code"] == "not_found"
    assert world.registry.resolve_alias("tiny", "prod").version == "1"
    assert _bundle_keys(world.store.bucket, "1")  # the served version was never touched


def test_deleting_an_unknown_version_with_no_files_is_still_404(world: World, faults: Faults) -> None:
    """The retry path (unregistered, files left) only applies when files are left: a version that never
    existed is 404, and a version an alias names is still refused (409)."""
    admin = load_function("admin")
    status, _, body = invoke(admin, "DELETE", "/v1/models/tiny/versions/7")
    assert status == 404 and "no version '7'" in body["error"]["message"]
    status, _, body = invoke(admin, "DELETE", "/v1/models/tiny/versions/1")
    assert status == 409 and "in use by alias(es) prod" in body["error"]["message"]


# --- the train trigger -----------------------------------------------------------------------------


@pytest.fixture
def trainer(request: pytest.FixtureRequest, faults: Faults, monkeypatch: pytest.MonkeyPatch) -> BatchWorld:
    """The moto Batch world with a config and a dataset uploaded, the injector installed, no backoff sleeps."""
    monkeypatch.setattr(training_jobs, "SUBMIT_BACKOFF_SECONDS", 0.0)
    w: BatchWorld = request.getfixturevalue("training_world")
    w.put("datasets/penguins/training.json", json.dumps(PENGUINS_CONFIG))
    w.put("datasets/penguins/p.csv", "species,bill\nAdelie,1\n")
    install(faults)
    return w


DATASET = "datasets/penguins/p.csv"


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("operation", ["s3.HeadObject", "s3.ListObjectsV2", "batch.ListJobs", "batch.SubmitJob"])
def test_a_train_trigger_fault_fails_the_invocation_logs_it_and_the_retry_submits_once(
        trainer: BatchWorld, faults: Faults, caplog: pytest.LogCaptureFixture, operation: str, fault: str) -> None:
    """Given a dataset upload and S3 (HeadObject of the dataset, the config lookup) or Batch (the look for
    an earlier job of the same name, SubmitJob) failing,
    when the trigger gets the event, then it raises (503-class for throttling and timeouts, access denied as
    a permissions error) so Lambda retries the event, the log names the key and the error code, nothing is
    submitted; when the event is delivered again, exactly one job is submitted."""
    faults.inject(operation, fault)
    expected = DependencyAccessDeniedError if fault == "denied" else ServiceUnavailableError
    with pytest.raises(expected):
        trainer.trigger(DATASET)
    if operation == "batch.SubmitJob":  # not retried by botocore: by the trigger, looking for the job each time
        n = faults.attempts[operation]
        assert n == (training_jobs.SUBMIT_ATTEMPTS if fault in RETRYABLE else 1), n
    else:
        assert_attempts(faults, operation, fault)
    faults.clear()
    [logged] = [r for r in caplog.records if r.getMessage().startswith("training job not started")]
    assert logged.levelname == "ERROR" and logged.__dict__["key"] == DATASET and logged.exc_info
    assert logged.__dict__["code"] == ("dependency_access_denied" if fault == "denied" else "service_unavailable")
    assert SECRET_ARN not in logged.__dict__["error"]
    assert trainer.jobs() == []
    started = trainer.trigger(DATASET)["started"]
    assert len(started) == 1 and len(trainer.jobs()) == 1


def test_a_submit_whose_answer_was_lost_is_found_not_submitted_again(trainer: BatchWorld, faults: Faults) -> None:
    """Given Batch accepting SubmitJob but its answer never arriving (a read timeout),
    then the trigger finds the job it submitted by its deterministic name instead of submitting another,
    and so does a redelivery of the same event: one job."""
    faults.inject("batch.SubmitJob", "lost_answer")
    [started] = trainer.trigger(DATASET)["started"]
    assert faults.attempts["batch.SubmitJob"] == 1
    faults.clear()
    [job] = trainer.jobs()
    assert started["job_id"] == job["jobId"] and started["already_submitted"] is True
    [again] = trainer.trigger(DATASET)["started"]
    assert again["job_id"] == job["jobId"] and again["already_submitted"] is True
    assert len(trainer.jobs()) == 1


# --- the metrics function's scheduled publication ----------------------------------------------------

SCHEDULED = {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events"}


@pytest.mark.parametrize("fault", FAULTS + ["missing_table"])
def test_a_publication_that_cannot_list_the_models_fails_the_invocation(world: World, faults: Faults,
                                                                         fault: str) -> None:
    """Given the registry's Scan failing, the scheduled publication raises (EventBridge's invocation is
    retried) rather than publishing nothing silently."""
    faults.inject("dynamodb.Scan", "missing" if fault == "missing_table" else fault)
    with pytest.raises(DependencyAccessDeniedError if fault == "denied" else ServiceUnavailableError):
        world.metrics.lambda_handler(SCHEDULED, FakeLambdaContext())
    assert_attempts(faults, "dynamodb.Scan", "missing" if fault == "missing_table" else fault)


def _about_tiny(request: Any) -> bool:
    """A registry Query of model tiny (not of model other), or a GetObject of tiny's bundle."""
    body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
    return "MODEL#tiny" in body or "/models/tiny/" in request.url


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("operation", ["dynamodb.Query", "s3.GetObject"])
def test_a_model_whose_metrics_cannot_be_read_is_reported_and_the_others_published(
        world: World, faults: Faults, operation: str, fault: str) -> None:
    """Given two models with captures and the registry/captures Query or the manifest's GetObject failing
    for one of them, the publication reports that model as failed (logged), still publishes the other, and
    succeeds: a failed model is published again by the next schedule, while failing the invocation would
    publish the other's counts twice."""
    publish_tiny_model(world.store, world.registry, name="other")
    _captured_prediction(world)
    assert invoke(world.predict, "POST", "/v1/models/other/predict", {"records": [GOOD]})[0] == 200
    assert world.drain().lines == 2  # one line per request
    faults.inject(operation, fault, when=_about_tiny)
    out = world.metrics.lambda_handler(SCHEDULED, FakeLambdaContext())
    assert faults.attempts[operation] >= 1
    assert [f["model"] for f in out["failed"]] == ["tiny"]
    assert SECRET_ARN not in json.dumps(out) and "injected" not in json.dumps(out)
    assert {p["model"] for p in out["published"]} == {"other"}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_manifest_fault_on_get_metrics_is_answered(world: World, faults: Faults, fault: str) -> None:
    """Given a captured prediction and the manifest's GetObject (for drift) failing, GET metrics is 503/500
    naming the model bucket."""
    _captured_prediction(world)
    faults.inject("s3.GetObject", fault)
    status, headers, body = invoke(world.metrics, "GET", "/v1/models/tiny/metrics")
    assert_fault_answer(fault, status, headers, body, "model bucket")
    assert_attempts(faults, "s3.GetObject", fault)


# --- CORS on the answers given before the resolver runs -----------------------------------------------

ORIGIN = "https://app.example.com"


def _cors(resp: dict[str, Any]) -> dict[str, list[str]]:
    return {k: v for k, v in resp["multiValueHeaders"].items() if k.lower().startswith("access-control-")}


def test_early_answers_carry_the_same_cors_headers_as_the_resolvers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given MAAS_ALLOWED_ORIGINS naming a web app's origin,
    when that origin sends a form body (415), a body that is not UTF-8 (400) or a request with too little
    time left (503), answered before the Powertools resolver runs,
    then each answer carries the CORS headers the resolver puts on its own answers (so the browser shows
    the error, not an opaque CORS failure); another origin gets none, as from the resolver."""
    monkeypatch.setenv("MAAS_ALLOWED_ORIGINS", f"{ORIGIN},https://other.example.com")
    predict = load_function("predict")
    path = "/v1/models/tiny/predict"

    def send(origin: str, remaining_ms: int = 28_000, **kwargs: Any) -> dict[str, Any]:
        extra = kwargs.pop("extra", {})
        event = rest_event("POST", path, headers={"Origin": origin, **kwargs.pop("headers", {})}, **kwargs) | extra
        return predict.lambda_handler(event, FakeLambdaContext(remaining_ms=remaining_ms))

    resolver = send(ORIGIN, body={"rows": []})  # answered by the resolver (its request validation)
    assert resolver["statusCode"] == 422
    expected = _cors(resolver)
    assert expected["Access-Control-Allow-Origin"] == [ORIGIN]
    assert "Retry-After" in expected["Access-Control-Expose-Headers"][0]
    early = {
        415: send(ORIGIN, raw_body="a=1", headers={"Content-Type": "application/x-www-form-urlencoded"}),
        400: send(ORIGIN, raw_body="//79", extra={"isBase64Encoded": True}),
        503: send(ORIGIN, remaining_ms=1, body={"records": [GOOD]}),
    }
    for status, resp in early.items():
        assert resp["statusCode"] == status, resp
        assert _cors(resp) == expected, (status, resp["multiValueHeaders"])
    assert early[503]["multiValueHeaders"]["Retry-After"] == ["1"]
    stranger = send("https://evil.example.com", raw_body="a=1", headers={"Content-Type": "text/plain"})
    assert stranger["statusCode"] == 415 and _cors(stranger) == {}
    assert _cors(send("https://evil.example.com", body={"rows": []})) == {}


def test_without_allowed_origins_no_answer_has_cors_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAAS_ALLOWED_ORIGINS", raising=False)
    predict = load_function("predict")
    event = rest_event("POST", "/v1/models/tiny/predict", raw_body="a=1",
                       headers={"Origin": ORIGIN, "Content-Type": "text/plain"})
    resp = predict.lambda_handler(event, FakeLambdaContext())
    assert resp["statusCode"] == 415 and _cors(resp) == {}

