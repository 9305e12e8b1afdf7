"""What the jobs routes do: create a job with its presigned upload, and tell a job's owner how it stands.

The upload is a presigned POST (a form a browser posts to S3 without credentials) whose policy S3 enforces:
exactly the job's key, a size between 1 byte and the cap (min of MAAS_JOB_MAX_UPLOAD_BYTES and
MAAS_BATCH_MAX_DECOMPRESSED_BYTES: a bigger file would fail anyway), the Content-Type of the format, the
job id (and a requested version or alias) as object metadata, and an expiry (MAAS_JOB_UPLOAD_EXPIRY_SECONDS).
The object landing under batch/input/ is what starts the job: the bucket's notification runs it as any
batch file, and maas_core.jobs.completion records how it ended.

Status: `waiting_for_upload` until the object exists, then `running` (read from S3 at each GET: the batch
path writes nothing before its outputs, which appear atomically at the end), then `done` or `failed` as the
batch path recorded it. A job of another owner, an unknown id and an expired job are all the same 404.

A running file larger than MAAS_BATCH_DISTRIBUTED_THRESHOLD_BYTES (not gzip) is on the state machine: its
progress (stage, shards done of planned, their rows and bytes) is read from the execution's work area
(maas_core.batch.work: one listing, the plan, at most one shard's counts), named by the file id of the HEAD.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from maas_core import aws
from maas_core.batch.paths import BatchPaths, file_id
from maas_core.batch.work import read_progress, starts_gzip, takes_distributed_path, work_prefix
from maas_core.errors import BadRequestError, NotFoundError, UnprocessableError
from maas_core.jobs.records import (
    FORMATS,
    GZIP_CONTENT_TYPE,
    META_ALIAS,
    META_VERSION,
    Job,
    JobStore,
    is_job_id,
    job_input_key,
    new_job_id,
)
from maas_core.jobs.schemas import (
    Download,
    JobCounts,
    JobCreated,
    JobError,
    JobOutputs,
    JobProgress,
    JobRequest,
    JobStatus,
    PresignedUpload,
)
from maas_core.registry import Registry, check_name, check_version
from maas_core.settings import Settings

META_JOB = "maas-job"  # input metadata the upload policy requires: the job the file belongs to


def create_job(registry: Registry, store: JobStore, s3: Any, settings: Settings, owner: str, model: str,
               request: JobRequest) -> JobCreated:
    check_name("model", model)
    # `is not None`: an empty version or alias is one the registry refuses by name (400), not "not given"
    if request.version is not None and request.alias is not None:
        raise UnprocessableError("give version or alias, not both",
                                 [{"field": "version", "value": request.version},
                                  {"field": "alias", "value": request.alias}])
    if request.version is not None:
        registry.get_version(model, check_version(request.version))  # 404: unknown model or version
    else:
        alias = settings.default_alias if request.alias is None else check_name("alias", request.alias)
        registry.resolve_alias(model, alias)  # 404: unknown model or alias
    now = int(time.time())
    job_id = new_job_id()
    content_type = GZIP_CONTENT_TYPE if request.gzip else FORMATS[request.format]
    job = Job(job_id=job_id, owner=owner, model=model, version=request.version, alias=request.alias,
              input_key=job_input_key(model, job_id, request.format, request.gzip), content_type=content_type,
              max_bytes=min(settings.job_max_upload_bytes, settings.batch_max_decompressed_bytes),
              created_at=now, expires_at=now + settings.job_retention_days * 86400,
              upload_expires_at=now + settings.job_upload_expiry_seconds)
    upload = presigned_upload(s3, settings.model_bucket, job, settings.job_upload_expiry_seconds)
    store.put_new(job)
    return JobCreated(job_id=job_id, status="waiting_for_upload", model=model, upload=upload,
                      expires_at=_iso(job.expires_at))


def presigned_upload(s3: Any, bucket: str, job: Job, expires_in: int) -> PresignedUpload:
    fields = {"Content-Type": job.content_type, f"x-amz-meta-{META_JOB}": job.job_id}
    if job.version:
        fields[f"x-amz-meta-{META_VERSION}"] = job.version
    if job.alias:
        fields[f"x-amz-meta-{META_ALIAS}"] = job.alias
    conditions: list[Any] = [{k: v} for k, v in fields.items()]
    conditions.append(["content-length-range", 1, job.max_bytes])
    try:
        post = s3.generate_presigned_post(Bucket=bucket, Key=job.input_key, Fields=fields, Conditions=conditions,
                                          ExpiresIn=expires_in)
    except (ClientError, BotoCoreError) as exc:  # signing is local; only missing credentials can fail it
        raise aws.unavailable("signing the upload", exc) from exc
    return PresignedUpload(url=post["url"], fields=post["fields"], content_type=job.content_type,
                           max_bytes=job.max_bytes, expires_at=_iso(job.upload_expires_at))


def describe_job(store: JobStore, s3: Any, settings: Settings, owner: str, job_id: str) -> JobStatus:
    if not is_job_id(job_id):
        raise BadRequestError("a job id is 32 lowercase hex digits", [{"field": "job_id", "value": job_id[:64]}])
    job = store.get(job_id)
    if job is None or job.owner != owner:  # another caller's job is as unknown as a job that never was
        raise NotFoundError(f"job {job_id!r} was not found (or has expired)", [{"field": "job_id", "value": job_id}])
    status = JobStatus(job_id=job.job_id, model=job.model, status=job.status, created_at=_iso(job.created_at),
                       expires_at=_iso(job.expires_at))
    if job.status == "waiting_for_upload":
        uploaded = _running(s3, settings, job.input_key)
        if uploaded is None:
            status.upload_expires_at = _iso(job.upload_expires_at)
        else:
            status.status, status.progress = "running", uploaded
        return status
    status.finished_at = _iso(job.finished_at) if job.finished_at else None
    if job.status == "done" and job.predictions_key and job.errors_key:
        status.version = job.result_version
        status.counts = JobCounts(**{k: int(job.counts.get(k, 0)) for k in ("rows", "predicted", "rejected", "blank")})
        expires_in = settings.job_download_expiry_seconds
        status.outputs = JobOutputs(predictions=_download(s3, settings.model_bucket, job.predictions_key, expires_in),
                                    errors=_download(s3, settings.model_bucket, job.errors_key, expires_in))
    elif job.error:
        status.error = JobError(code=job.error.get("code", "failed"), message=job.error.get("message", ""))
    return status


def _running(s3: Any, settings: Settings, key: str) -> JobProgress | None:
    """The progress of a job whose input exists (None: it does not). A large file's is read from its work
    area, named by the file id of this HEAD: the upload the execution runs on."""
    bucket = settings.model_bucket
    head = aws.head_object_or_none(s3, bucket, key, "the job's input file")
    if head is None:
        return None
    modified = head.get("LastModified")
    progress = JobProgress(uploaded_bytes=int(head.get("ContentLength") or 0),
                           uploaded_at=_iso(modified.timestamp()) if modified else "", path="single",
                           stage="predicting")
    if not takes_distributed_path(key, head, settings.batch_distributed_threshold_bytes):
        return progress
    fid = file_id(bucket, key, str(head.get("ETag", "")).strip('"'), modified)
    try:  # a work area removed meanwhile is no error: read_progress reports the file ending
        shards = read_progress(s3, bucket, work_prefix(BatchPaths.from_input_key(key), fid))
        if shards is None and starts_gzip(s3, bucket, key):  # gzip bytes under a .csv name: the single path
            return progress
    except (ClientError, BotoCoreError) as exc:
        raise aws.unavailable("the job's progress", exc) from exc
    progress.path = "distributed"
    if shards is None:  # Plan has not written shards.json yet (or Failed removed the area a moment ago)
        progress.stage = "planning"
        return progress
    progress.stage = shards.stage
    progress.shards_total, progress.shards_done = shards.shards_total, shards.shards_done
    progress.rows_done, progress.bytes_done = shards.rows_done, shards.bytes_done
    return progress


def _download(s3: Any, bucket: str, key: str, expires_in: int) -> Download:
    name = key.rsplit("/", 1)[-1]
    url = s3.generate_presigned_url("get_object", ExpiresIn=expires_in, Params={
        "Bucket": bucket, "Key": key, "ResponseContentDisposition": f'attachment; filename="{name}"'})
    return Download(url=url, expires_at=_iso(time.time() + expires_in))


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
