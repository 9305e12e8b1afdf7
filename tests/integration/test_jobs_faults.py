"""Fault injection on the jobs API's own AWS calls (the injector of test_fault_injection.py, moto underneath):

    jobs     POST: dynamodb.GetItem (registry), dynamodb.PutItem (jobs table); GET: dynamodb.GetItem (jobs table),
             s3.HeadObject (the input: running?), s3.ListObjectsV2 and s3.GetObject (a large file's progress)
    batch    after a job's file: dynamodb.UpdateItem (jobs table), eventbridge.PutEvents (every file)

A failed job write is a 503 (or 500 when denied) and leaves no job; a failed completion record or event fails the
batch invocation, and the redelivered event (a skipped run) records the job and announces the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from maas_core.errors import MaasError
from maas_core.jobs.records import job_input_key
from maas_core.settings import get_settings
from maas_local.testing.tiny_model import publish_tiny_model
from tests.conftest import AwsWorld
from tests.integration.test_fault_injection import (
    _JSON_ERRORS,
    Faults,
    assert_attempts,
    assert_fault_answer,
    install,
    new_injector,
)
from tests.lambda_events import FakeLambdaContext, load_function, rest_event

JOBS = "test-jobs"
BATCH_CONTEXT = FakeLambdaContext(remaining_ms=900_000)  # the batch function's 15 minutes


@pytest.fixture
def jobs_world(aws_world: AwsWorld, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[AwsWorld, Faults]]:
    """Given the moto world with the tiny model, a jobs table named in MAAS_JOBS_TABLE, an EventBridge fault
    vocabulary for the injector, and the injector on the functions' session."""
    boto3.client("dynamodb").create_table(
        TableName=JOBS, BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}])
    monkeypatch.setenv("MAAS_JOBS_TABLE", JOBS)
    get_settings.cache_clear()
    publish_tiny_model(aws_world.store, aws_world.registry)
    monkeypatch.setitem(_JSON_ERRORS, "eventbridge", {"throttle": "ThrottlingException",
                                                 "denied": "AccessDeniedException"})
    faults = new_injector(monkeypatch)
    install(faults)
    yield aws_world, faults
    faults.clear()
    get_settings.cache_clear()


def call_jobs(method: str, path: str, body: Any = None) -> tuple[int, dict[str, list[str]], dict[str, Any]]:
    event = rest_event(method, path, body=body)
    event["requestContext"].setdefault("identity", {})["apiKeyId"] = "key-1"
    resp = load_function("jobs").lambda_handler(event, FakeLambdaContext())
    return resp["statusCode"], resp["multiValueHeaders"], json.loads(resp["body"])


def jobs_in_table() -> int:
    return int(boto3.client("dynamodb").scan(TableName=JOBS)["Count"])


@pytest.mark.parametrize("fault", ["throttle", "denied"])  # a timeout is retried as a throttle is
def test_a_jobs_table_fault_is_answered_and_leaves_no_job(jobs_world: tuple[AwsWorld, Faults], fault: str) -> None:
    """Given the jobs table failing on writes
    When a job is asked for
    Then the answer is the fault's (503 + Retry-After, or 500 when denied), retried when retryable, quoting no AWS
    text, and no job exists; with the fault gone the same request creates one."""
    _, faults = jobs_world
    faults.inject("dynamodb.PutItem", fault)
    status, headers, body = call_jobs("POST", "/v1/models/tiny/jobs", {})
    assert_fault_answer(fault, status, headers, body, "jobs table")
    assert_attempts(faults, "dynamodb.PutItem", fault)
    faults.clear()
    assert jobs_in_table() == 0
    status, _, body = call_jobs("POST", "/v1/models/tiny/jobs", {})
    assert status == 200 and jobs_in_table() == 1, body


@pytest.mark.parametrize("operation", ["eventbridge.PutEvents", "dynamodb.UpdateItem"])
def test_a_failed_completion_record_fails_the_invocation_and_the_redelivery_records_it(
        jobs_world: tuple[AwsWorld, Faults], operation: str) -> None:
    """Given a job whose file is uploaded, and EventBridge or the jobs table throttling
    When the batch function runs the file
    Then the invocation fails after writing the outputs; and when Lambda redelivers the event (the run is skipped)
    the job is done with its counts and the file is announced."""
    world, faults = jobs_world
    status, _, job = call_jobs("POST", "/v1/models/tiny/jobs", {})
    assert status == 200, job
    key = job_input_key("tiny", job["job_id"], "csv", False)
    boto3.client("s3").put_object(Bucket=world.bucket, Key=key, Body=b"x1,colour\n1,red\n2,blue\n")
    event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                          "s3": {"bucket": {"name": world.bucket}, "object": {"key": key}}}]}
    batch = load_function("batch")
    faults.inject(operation, "throttle")
    with pytest.raises((MaasError, ClientError)):
        batch.lambda_handler(event, BATCH_CONTEXT)
    assert faults.attempts[operation] > 1
    faults.clear()
    assert batch.lambda_handler(event, BATCH_CONTEXT)["processed"][0]["status"] == "skipped"
    status, _, body = call_jobs("GET", f"/v1/jobs/{job['job_id']}")
    assert status == 200 and body["status"] == "done", body
    assert body["counts"] == {"rows": 2, "predicted": 2, "rejected": 0, "blank": 0}


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"gzip": 0}, 422, "gzip"),  # a number is not a boolean (it was read as false)
    ({"version": "0.1.0"}, 400, "invalid version"),
    ({"version": "1", "alias": "prod"}, 422, "not both"),
    ({"alias": ""}, 400, "invalid alias"),  # was taken for "no alias"
])
def test_a_bad_job_request_is_refused_and_makes_no_job(jobs_world: tuple[AwsWorld, Faults], body: dict[str, Any],
                                                       status: int, words: str) -> None:
    """Given the tiny model, When a job is asked for with a body the document forbids (found by schemathesis),
    Then the answer is that 4xx naming the field, and no job exists."""
    got, _, answer = call_jobs("POST", "/v1/models/tiny/jobs", body)
    assert got == status and words in json.dumps(answer), answer
    assert jobs_in_table() == 0


@pytest.mark.parametrize(("operation", "fault"), [("s3.ListObjectsV2", "throttle"), ("s3.ListObjectsV2", "denied"),
                                                  ("s3.GetObject", "throttle")])
def test_a_failed_progress_read_is_answered_as_a_dependency_fault(
        jobs_world: tuple[AwsWorld, Faults], monkeypatch: pytest.MonkeyPatch, operation: str, fault: str) -> None:
    """Given a running job whose file is above the distributed threshold (its progress is read from S3)
    When the work area's listing, or the check of the file's first bytes, fails
    Then the GET is the fault's answer (503 + Retry-After after retries, or 500 when denied), quoting no AWS text;
    with the fault gone it is 200, running, planning."""
    world, faults = jobs_world
    monkeypatch.setenv("MAAS_BATCH_DISTRIBUTED_THRESHOLD_BYTES", "10")
    get_settings.cache_clear()
    status, _, job = call_jobs("POST", "/v1/models/tiny/jobs", {})
    assert status == 200, job
    key = job_input_key("tiny", job["job_id"], "csv", False)
    boto3.client("s3").put_object(Bucket=world.bucket, Key=key, Body=b"x1,colour\n" + b"1,red\n" * 10)
    faults.inject(operation, fault)
    status, headers, body = call_jobs("GET", f"/v1/jobs/{job['job_id']}")
    assert_fault_answer(fault, status, headers, body, "job's progress")
    assert_attempts(faults, operation, fault)
    faults.clear()
    status, _, body = call_jobs("GET", f"/v1/jobs/{job['job_id']}")
    assert status == 200 and body["progress"]["stage"] == "planning", body
