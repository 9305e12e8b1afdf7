"""A job as the jobs table keeps it, its id, and the input key that ties a batch file to it.

One item per job, keyed by `job_id` (32 hex digits: 128 random bits, so an id cannot be guessed or
enumerated). `owner` is the caller that created it (maas_core.edge.callers): a job of another owner is
answered as unknown. `expires_at` (Unix seconds) is the table's TTL attribute; DynamoDB deletes expired
items within days, so reads treat an expired item as gone at once.

The input key carries the job id, so the batch path needs no lookup to know a file is a job's:

    batch/input/{model}/jobs/{job_id}/input.csv      (.jsonl, .csv.gz, .jsonl.gz)

and its outputs land where every batch file's do (maas_core.batch.paths), under batch/output/{model}/jobs/{job_id}/.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from maas_core import aws
from maas_core.batch.paths import INPUT_PREFIX
from maas_core.registry import _from_item, _to_item  # the registry's item (de)serialisation, reused

JOB_ID = re.compile(r"^[0-9a-f]{32}\Z")
JOB_INPUT_KEY = re.compile(r"^batch/input/(?P<model>[^/]+)/jobs/(?P<job_id>[0-9a-f]{32})/"
                           r"input\.(?:csv|jsonl)(?:\.gz)?\Z")
FORMATS = {"csv": "text/csv", "jsonl": "application/x-ndjson"}  # the Content-Type the upload must declare
GZIP_CONTENT_TYPE = "application/gzip"
# the input metadata maas_core.batch.job reads (META_VERSION, META_ALIAS; a unit test keeps them equal): named
# here because importing job.py would load onnxruntime into the jobs function
META_VERSION, META_ALIAS = "maas-version", "maas-alias"

Stored = Literal["waiting_for_upload", "done", "failed"]  # "running" is not stored: the input object exists


def new_job_id() -> str:
    return secrets.token_hex(16)


def is_job_id(value: str) -> bool:
    return bool(JOB_ID.match(value))


def job_input_key(model: str, job_id: str, fmt: str, gzip: bool) -> str:
    return f"{INPUT_PREFIX}{model}/jobs/{job_id}/input.{fmt}{'.gz' if gzip else ''}"


def job_id_of(key: str) -> str | None:
    """The job id a batch input key names, None for a file that is not a job's."""
    match = JOB_INPUT_KEY.match(key)
    return match["job_id"] if match else None


@dataclass
class Job:
    job_id: str
    owner: str
    model: str
    input_key: str
    content_type: str
    max_bytes: int
    created_at: int  # Unix seconds
    expires_at: int  # the TTL attribute
    upload_expires_at: int
    version: str | None = None
    alias: str | None = None
    status: Stored = "waiting_for_upload"
    finished_at: int | None = None
    counts: dict[str, int] = field(default_factory=dict)  # rows, predicted, rejected, blank (BatchResult)
    result_version: str | None = None  # the version that predicted it
    predictions_key: str | None = None
    errors_key: str | None = None
    error: dict[str, str] | None = None  # {"code", "message"} of a failed file
    failure_key: str | None = None

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at <= (time.time() if now is None else now)

    def item(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != {}}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Job:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in item.items() if k in known})


class JobStore:
    """The jobs table (MAAS_JOBS_TABLE). Every failure of the table is a 503 (maas_core.aws.unavailable)."""

    def __init__(self, table: str, dynamodb: Any | None = None) -> None:
        self.table = table
        self._ddb = dynamodb

    @property
    def ddb(self) -> Any:
        return self._ddb or aws.client("dynamodb")

    def put_new(self, job: Job) -> None:
        self._call(self.ddb.put_item, TableName=self.table, Item=_to_item(job.item()),
                   ConditionExpression="attribute_not_exists(job_id)")

    def get(self, job_id: str) -> Job | None:
        """The job, None when it is unknown or expired (the TTL has not necessarily deleted it yet)."""
        resp = self._call(self.ddb.get_item, TableName=self.table, Key=_to_item({"job_id": job_id}),
                          ConsistentRead=True)
        if "Item" not in resp:
            return None
        job = Job.from_item(_from_item(resp["Item"]))
        return None if job.expired() else job

    def finish(self, job_id: str, input_key: str, changes: dict[str, Any]) -> bool:
        """Record how the job's file ended; False when there is no such job for this input key (a forged or
        expired id: nothing to record). The latest end wins: a retry that succeeds after a failure marks it done."""
        names = {f"#{k}": k for k in changes}
        values = {f":{k}": v for k, v in changes.items()}
        try:
            self.ddb.update_item(
                TableName=self.table, Key=_to_item({"job_id": job_id}),
                UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in changes),
                ConditionExpression="input_key = :input_key",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_to_item({**values, ":input_key": input_key}))
        except ClientError as exc:
            if aws.is_condition_failed(exc):
                return False
            raise aws.unavailable("the jobs table", exc) from exc
        except BotoCoreError as exc:
            raise aws.unavailable("the jobs table", exc) from exc
        return True

    @staticmethod
    def _call(fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise aws.unavailable("the jobs table", exc) from exc
