"""The jobs API end to end, over HTTP as a web app uses it: the local gateway (API keys on), the moto server with
S3's presigned-POST checks in front (maas_local.post_policy), the batch trigger running uploaded files, and an
EventBridge rule on the default bus delivering the completion events to an SQS queue."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from maas_core.jobs.records import JobStore
from maas_local.batch_trigger import BatchTrigger, load_batch_handler
from maas_local.gateway import Gateway
from maas_local.stack import LocalStack
from maas_local.static import StaticSite
from tests.e2e.conftest import TEMPLATE
from tests.e2e.test_browser_cors import browser  # noqa: F401 - the module's Chromium, a fixture

KEY_A, KEY_B = "key-of-app-a", "key-of-app-b"
MAX_UPLOAD = 20_000  # bytes: JobMaxUploadBytes for this stack


@pytest.fixture(scope="module")
def api(local_stack: LocalStack, tiny_model: Any) -> Iterator[str]:
    gw = Gateway(TEMPLATE, local_stack.names, port=0, api_keys=[KEY_A, KEY_B],
                 parameters={"JobMaxUploadBytes": MAX_UPLOAD}, static=StaticSite.playground(KEY_A))
    base = gw.start()
    load_batch_handler()  # its settings are this stack's
    trigger = BatchTrigger(local_stack.names["ModelBucket"], wait_seconds=1).start()
    try:
        yield base
    finally:
        trigger.stop()
        gw.stop()


@pytest.fixture(scope="module")
def events_queue(local_stack: LocalStack) -> str:
    """An SQS queue that a rule on the default bus fills with every maas.batch event."""
    sqs, events = local_stack.client("sqs"), local_stack.client("events")
    url = sqs.create_queue(QueueName="maas-test-batch-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="maas-batch-files", EventPattern=json.dumps({"source": ["maas.batch"]}))
    events.put_targets(Rule="maas-batch-files", Targets=[{"Id": "queue", "Arn": arn}])
    return str(url)


def create(api: str, key: str, body: dict[str, Any] | None = None, model: str = "tiny") -> requests.Response:
    return requests.post(f"{api}/v1/models/{model}/jobs", json=body or {}, headers={"x-api-key": key}, timeout=30)


def status(api: str, key: str, job_id: str) -> requests.Response:
    return requests.get(f"{api}/v1/jobs/{job_id}", headers={"x-api-key": key}, timeout=30)


def upload(job: dict[str, Any], data: bytes) -> requests.Response:
    """As a browser form posts it: the fields, then the file; no AWS credentials."""
    form = job["upload"]
    return requests.post(form["url"], data=form["fields"], files={"file": ("rows.csv", data, form["content_type"])},
                         timeout=30)


def wait_until_finished(api: str, key: str, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = status(api, key, job_id).json()
        if body["status"] in {"done", "failed"} or time.monotonic() > deadline:
            return dict(body)
        time.sleep(0.2)


def csv_rows(n: int, bad: set[int] = frozenset()) -> bytes:  # type: ignore[assignment]
    lines = ["x1,x2,colour"] + [f"{'oops' if i in bad else i / 10},{i % 3},{'blue' if i % 2 else 'red'}"
                                for i in range(1, n + 1)]
    return ("\n".join(lines) + "\n").encode()


def received_events(url: str, local_stack: LocalStack, want: int, timeout: float = 15) -> list[dict[str, Any]]:
    sqs, found = local_stack.client("sqs"), []
    deadline = time.monotonic() + timeout
    while len(found) < want and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []):
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def test_a_job_runs_from_upload_to_download(api: str, events_queue: str, local_stack: LocalStack) -> None:
    """Given a job created over HTTP
    When its file is posted to the presigned form without credentials and the batch trigger runs it
    Then the job goes waiting_for_upload -> done, its counts reconcile with the file, the presigned download
    URLs give every row (predicted or rejected), and a "Batch job succeeded" event names the job."""
    created = create(api, KEY_A)
    assert created.status_code == 200, created.text
    job = created.json()
    assert len(job["job_id"]) == 32 and job["status"] == "waiting_for_upload"
    assert job["upload"]["max_bytes"] == MAX_UPLOAD and job["upload"]["content_type"] == "text/csv"
    assert status(api, KEY_A, job["job_id"]).json()["status"] == "waiting_for_upload"

    posted = upload(job, csv_rows(50, bad={7, 30}))
    assert posted.status_code == 204, posted.text
    body = wait_until_finished(api, KEY_A, job["job_id"])

    assert body["status"] == "done", body
    assert body["counts"] == {"rows": 50, "predicted": 48, "rejected": 2, "blank": 0}
    assert body["version"] == "1"
    predictions = requests.get(body["outputs"]["predictions"]["url"], timeout=30)
    errors = requests.get(body["outputs"]["errors"]["url"], timeout=30)
    assert predictions.status_code == errors.status_code == 200
    predicted_rows = [json.loads(line)["row"] for line in predictions.text.splitlines()]
    rejected_rows = sorted({json.loads(line)["row"] for line in errors.text.splitlines()})
    assert rejected_rows == [7, 30]
    assert sorted(predicted_rows + rejected_rows) == list(range(1, 51))

    events = received_events(events_queue, local_stack, want=1)
    mine = [e for e in events if e["detail"].get("job_id") == job["job_id"]]
    assert [e["detail-type"] for e in mine] == ["Batch job succeeded"]
    assert mine[0]["source"] == "maas.batch"
    assert {k: mine[0]["detail"][k] for k in ("status", "rows", "predicted", "rejected")} == {
        "status": "done", "rows": 50, "predicted": 48, "rejected": 2}


def test_a_file_that_cannot_run_fails_its_job(api: str, events_queue: str, local_stack: LocalStack) -> None:
    """Given a job whose upload lacks a column the model requires
    When the batch path fails the file
    Then the job is failed with the file's error code and a "Batch job failed" event is put."""
    job = create(api, KEY_A).json()
    assert upload(job, b"colour\nred\nblue\n").status_code == 204
    body = wait_until_finished(api, KEY_A, job["job_id"])
    assert body["status"] == "failed" and body["error"]["code"] == "missing_columns", body
    assert "outputs" not in body
    events = received_events(events_queue, local_stack, want=1)
    assert any(e["detail-type"] == "Batch job failed" and e["detail"].get("job_id") == job["job_id"]
               and e["detail"]["error"]["code"] == "missing_columns" for e in events)


def test_s3_refuses_an_upload_outside_the_policy(api: str) -> None:
    """Given a job's presigned form
    When a file over the size cap, a file of another Content-Type, or a file under another key is posted
    Then S3 refuses each (EntityTooLarge, AccessDenied), nothing lands, and the job still waits for its upload."""
    job = create(api, KEY_A).json()
    too_big = upload(job, csv_rows(3000))
    assert len(csv_rows(3000)) > MAX_UPLOAD
    assert too_big.status_code == 400 and "<Code>EntityTooLarge</Code>" in too_big.text
    form = job["upload"]
    wrong_type = requests.post(form["url"], data={**form["fields"], "Content-Type": "text/html"},
                               files={"file": ("x.csv", csv_rows(2), "text/html")}, timeout=30)
    assert wrong_type.status_code == 403 and "AccessDenied" in wrong_type.text
    elsewhere = requests.post(form["url"], data={**form["fields"], "key": "batch/input/tiny/jobs/other.csv"},
                              files={"file": ("x.csv", csv_rows(2), "text/csv")}, timeout=30)
    assert elsewhere.status_code == 403
    assert status(api, KEY_A, job["job_id"]).json()["status"] == "waiting_for_upload"


def test_a_caller_sees_only_its_own_jobs(api: str) -> None:
    """Given a job created with API key A
    When key B asks for it
    Then B gets the 404 of an unknown job (not a 403), and A still sees it."""
    job = create(api, KEY_A).json()
    other = status(api, KEY_B, job["job_id"])
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    assert status(api, KEY_A, job["job_id"]).status_code == 200


def test_unknown_expired_and_malformed_ids(api: str, local_stack: LocalStack) -> None:
    """Given a never-created id, a job whose TTL has passed (DynamoDB has not deleted it yet) and a malformed id
    When their status is asked
    Then the first two are 404 and the malformed one a 400 naming job_id."""
    assert status(api, KEY_A, "0" * 32).status_code == 404
    job = create(api, KEY_A).json()
    local_stack.client("dynamodb").update_item(
        TableName=local_stack.names["JobsTable"], Key={"job_id": {"S": job["job_id"]}},
        UpdateExpression="SET expires_at = :past", ExpressionAttributeValues={":past": {"N": "1"}})
    assert JobStore(local_stack.names["JobsTable"]).get(job["job_id"]) is None
    assert status(api, KEY_A, job["job_id"]).status_code == 404
    bad = status(api, KEY_A, "not-a-job")
    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["field"] == "job_id"


def test_creating_a_job_checks_the_model_and_the_request(api: str) -> None:
    """Given the tiny model (version 1, alias prod)
    When jobs are asked for an unknown model, an unknown version, both version and alias, and an unknown field
    Then each is refused before any job exists: 404, 404, 422, 422; without a key the gateway answers 403."""
    assert create(api, KEY_A, model="nope").status_code == 404
    assert create(api, KEY_A, {"version": "9"}).status_code == 404
    assert create(api, KEY_A, {"version": "1", "alias": "prod"}).status_code == 422
    assert create(api, KEY_A, {"colour": "red"}).status_code == 422
    assert requests.post(f"{api}/v1/models/tiny/jobs", json={}, timeout=30).status_code == 403
    pinned = create(api, KEY_A, {"version": "1", "format": "jsonl", "gzip": True}).json()
    assert pinned["upload"]["content_type"] == "application/gzip"
    assert pinned["upload"]["fields"]["x-amz-meta-maas-version"] == "1"
    assert pinned["upload"]["fields"]["key"].endswith(f"/jobs/{pinned['job_id']}/input.jsonl.gz")


def test_the_playground_runs_a_file_as_a_job(browser: Any, api: str, tmp_path: Any) -> None:  # noqa: F811
    """Given the playground on the gateway (its key) and a CSV file on disk
    When a person picks the tiny model, chooses the file and clicks "Run as a job"
    Then the page posts it to S3 itself (another origin: moto's), follows the job to done, shows the counts and
    links the outputs; a file over the cap is refused by the page before any upload."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{api}/playground/")
        page.wait_for_function("() => document.body.dataset.ready === 'true'")
        page.select_option("#model", "tiny")
        page.wait_for_selector("#job-section:not([hidden])")
        rows = tmp_path / "rows.csv"
        rows.write_bytes(csv_rows(20, bad={3}))
        page.set_input_files("#job-file", str(rows))
        page.click("#run-job")
        page.wait_for_selector("#job-status[data-status=done]", timeout=60_000)
        assert "20 rows: 19 predicted, 1 rejected, 0 blank" in (page.text_content("#job-status") or "")
        links = page.eval_on_selector_all("#job-outputs a", "as => as.map(a => [a.dataset.output, a.href])")
        assert [kind for kind, _ in links] == ["predictions", "errors"]
        assert len(requests.get(links[0][1], timeout=30).text.splitlines()) == 19
        big = tmp_path / "big.csv"
        big.write_bytes(csv_rows(3000))
        page.set_input_files("#job-file", str(big))
        page.click("#run-job")
        page.wait_for_selector("#error:not([hidden])")
        assert "file_too_large" in (page.text_content("#error") or "")
        assert errors == []
    finally:
        page.close()
