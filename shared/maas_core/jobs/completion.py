"""What happens when a batch file ends: one function, whichever path ran the file.

    batch_file_finished(bucket, key, result)      # a BatchResult (done, skipped, gone)
    batch_file_finished(bucket, key, error)       # the BatchFileError it failed with

1. A job's file (its key names the job: maas_core.jobs.records) records the end in the jobs table: `done` with
   the counts and output keys, or `failed` with the error's code and message. The latest end wins (a failed
   first attempt that the retry fixes ends `done`).
2. Every batch file, a job's or not, is announced on EventBridge (MAAS_EVENTS_BUS, the default bus): source
   `maas.batch`, detail-type `Batch job succeeded` or `Batch job failed`, the detail below. So any batch user
   can react to a finished file with a rule, instead of watching for the errors file to appear.

       {"input": "s3://b/batch/input/m/day1.csv", "bucket": "b", "key": "...", "model": "m", "status": "done",
        "version": "3", "rows": 10, "predicted": 9, "rejected": 1, "blank": 0,
        "predictions": "s3://b/batch/output/m/day1.csv.predictions.jsonl", "errors": "s3://...errors.jsonl",
        "job_id": "<32 hex digits, for a job's file>"}
       {"input": ..., "status": "failed", "error": {"code": "missing_columns", "message": "..."},
        "failure_report": "s3://b/batch/failed/m/day1.csv.error.json", ...}

A redelivered S3 event (the run is `skipped`) announces the file again, and a failing file is announced at each
of Lambda's attempts: EventBridge delivers at least once anyway, so consumers dedupe by `input` and `etag`. A
file deleted before it was read (`gone`) fails its job. Errors of the table or of PutEvents raise: the invocation
fails and Lambda's retry (a skipped run) calls this again.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from maas_core import aws
from maas_core.batch.errors import BatchFileError
from maas_core.batch.paths import BatchPaths
from maas_core.jobs.records import JobStore, job_id_of
from maas_core.settings import Settings, get_settings

if TYPE_CHECKING:  # job.py loads onnxruntime: the jobs function imports this package without it
    from maas_core.batch.job import BatchResult

logger = Logger(child=True)

EVENT_SOURCE = "maas.batch"
SUCCEEDED, FAILED = "Batch job succeeded", "Batch job failed"
MAX_MESSAGE_CHARS = 1000  # an event holds at most 256 KB; the failure report has the details


def batch_file_finished(bucket: str, key: str, outcome: BatchResult | BatchFileError, *,
                        jobs: JobStore | None = None, events: Any | None = None,
                        settings: Settings | None = None) -> dict[str, Any]:
    """Record a job's end and announce the file (see the module docstring); returns the event's detail."""
    settings = settings or get_settings()
    detail = event_detail(bucket, key, outcome)
    job_id = job_id_of(key)
    if job_id is not None:
        store = jobs or JobStore(settings.jobs_table)
        if store.finish(job_id, key, job_changes(bucket, detail)):
            detail["job_id"] = job_id
        else:
            logger.warning("a job input with no job (expired, or never created)", extra={"key": key})
    put_event(events or aws.client("events"), settings.events_bus, detail)
    return detail


def event_detail(bucket: str, key: str, outcome: BatchResult | BatchFileError) -> dict[str, Any]:
    paths = BatchPaths.from_input_key(key)
    detail: dict[str, Any] = {"input": f"s3://{bucket}/{key}", "bucket": bucket, "key": key, "model": paths.model}
    if not isinstance(outcome, BatchFileError) and outcome.status != "gone":
        detail.update(status="done", version=outcome.version, etag=outcome.etag, rows=outcome.rows,
                      predicted=outcome.predicted, rejected=outcome.rejected, blank=outcome.blank,
                      predictions=f"s3://{bucket}/{paths.predictions_key}", errors=f"s3://{bucket}/{paths.errors_key}")
        return detail
    if isinstance(outcome, BatchFileError):  # else a BatchResult whose input was gone
        code, message = outcome.code, outcome.message
        detail["failure_report"] = f"s3://{bucket}/{paths.failure_key}"
    else:
        code, message = "gone", "the input file was deleted before it could be read"
    detail.update(status="failed", error={"code": code, "message": message[:MAX_MESSAGE_CHARS]})
    return detail


def job_changes(bucket: str, detail: dict[str, Any]) -> dict[str, Any]:
    """The jobs-table attributes that record the end `detail` describes."""
    changes: dict[str, Any] = {"status": detail["status"], "finished_at": int(time.time())}
    if detail["status"] == "done":
        prefix = f"s3://{bucket}/"
        changes.update(counts={k: detail[k] for k in ("rows", "predicted", "rejected", "blank")},
                       result_version=detail["version"], predictions_key=detail["predictions"].removeprefix(prefix),
                       errors_key=detail["errors"].removeprefix(prefix))
    else:
        changes["error"] = detail["error"]
    return changes


def put_event(events: Any, bus: str, detail: dict[str, Any]) -> None:
    entry = {"Source": EVENT_SOURCE, "DetailType": SUCCEEDED if detail["status"] == "done" else FAILED,
             "Detail": json.dumps(detail, default=str), "EventBusName": bus,
             "Resources": [f"arn:aws:s3:::{detail['bucket']}/{detail['key']}"]}
    try:
        resp = events.put_events(Entries=[entry])
    except (ClientError, BotoCoreError) as exc:
        raise aws.unavailable("EventBridge", exc) from exc
    if resp.get("FailedEntryCount"):
        failure = (resp.get("Entries") or [{}])[0]
        logger.error("EventBridge refused the event", extra={"code": failure.get("ErrorCode"),
                                                             "message": failure.get("ErrorMessage")})
        raise aws.unavailable("EventBridge", RuntimeError(str(failure.get("ErrorCode"))))
