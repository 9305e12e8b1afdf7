"""Request and answer models of the jobs routes (they also generate the OpenAPI document)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from maas_core.registry import NAME_SCHEMA, VERSION_SCHEMA

JobState = Literal["waiting_for_upload", "running", "done", "failed"]


class JobRequest(BaseModel):
    """What the file will be; the model comes from the path. Which version predicts it: `version` or `alias`
    (at most one), else the default alias, as for any batch file's metadata (maas_core.batch.job)."""

    # the document states the one rule across fields: version and alias are not both given (else a 422)
    model_config = ConfigDict(extra="forbid", json_schema_extra={"not": {
        "properties": {"version": {"type": "string"}, "alias": {"type": "string"}}, "required": ["version", "alias"]}})

    format: Literal["csv", "jsonl"] = Field(default="csv", description="CSV with a header row, or JSON lines")
    gzip: bool = Field(default=False, strict=True,
                       description="the upload is gzip-compressed (Content-Type application/gzip)")
    version: str | None = Field(default=None, description="predict with this version (checked now: 404 if unknown)",
                                json_schema_extra=VERSION_SCHEMA)
    alias: str | None = Field(default=None, description="predict with the version of this alias when the file runs",
                              json_schema_extra=NAME_SCHEMA)


class PresignedUpload(BaseModel):
    url: str = Field(description="POST a multipart/form-data form here: every field below, then `file` last")
    method: Literal["POST"] = "POST"
    fields: dict[str, str] = Field(description="form fields to send as they are (key, policy, signature, ...)")
    content_type: str = Field(description="the Content-Type field the policy requires (already in `fields`)")
    max_bytes: int = Field(description="S3 refuses a bigger file (EntityTooLarge)")
    expires_at: str = Field(description="after this instant S3 refuses the upload (ISO 8601, UTC)")


class JobCreated(BaseModel):
    job_id: str = Field(description="32 hex digits; GET /v1/jobs/{job_id} follows the job")
    status: JobState
    model: str
    upload: PresignedUpload
    expires_at: str = Field(description="when the job and its results are forgotten (ISO 8601, UTC)")


class JobCounts(BaseModel):
    rows: int = Field(description="data rows read: predicted + rejected + blank")
    predicted: int
    rejected: int = Field(description="rows with at least one error, listed in the errors file")
    blank: int


class JobProgress(BaseModel):
    """How far a running job is. A file up to BatchDistributedThresholdBytes (or gzip) runs in one function
    invocation: `path` single, `stage` predicting, no shard counts. A larger one is split into shards that run
    in parallel: `path` distributed, `stage` planning, then predicting with the shard counts, then assembling."""

    uploaded_bytes: int = Field(description="size of the uploaded file")
    uploaded_at: str = Field(description="when the upload finished (ISO 8601, UTC)")
    path: Literal["single", "distributed"] = Field(
        description="single: one function reads, predicts and writes the file; distributed: a large file, split "
                    "into shards predicted in parallel (docs/batch.md, Large files)")
    stage: Literal["planning", "predicting", "assembling"] = Field(
        description="planning: the file is read once to cut it into shards (no counts yet); predicting; "
                    "assembling: every shard is predicted, the outputs are being put together (or the file is "
                    "just ending: the next GET says done or failed)")
    shards_total: int | None = Field(default=None, ge=1, description="distributed, once planned: shards of the file")
    shards_done: int | None = Field(default=None, ge=0, description="distributed, once planned: shards predicted")
    rows_done: int | None = Field(default=None, ge=0,
                                  description="distributed, once planned: data rows of the shards predicted (the "
                                              "total is known when done: counts.rows)")
    bytes_done: int | None = Field(default=None, ge=0,
                                   description="distributed, once planned: input bytes of the shards predicted (of "
                                               "uploaded_bytes)")


class Download(BaseModel):
    url: str = Field(description="presigned GET; needs no credentials")
    expires_at: str


class JobOutputs(BaseModel):
    predictions: Download = Field(description="one JSON line per predicted row (docs/batch.md)")
    errors: Download = Field(description="one JSON line per problem of a rejected row")


class JobError(BaseModel):
    code: str
    message: str


class JobStatus(BaseModel):
    job_id: str
    model: str
    status: JobState
    created_at: str
    expires_at: str
    upload_expires_at: str | None = Field(default=None, description="while waiting for the upload")
    version: str | None = Field(default=None, description="the version that predicted the file (done)")
    finished_at: str | None = None
    counts: JobCounts | None = Field(default=None, description="when done")
    progress: JobProgress | None = Field(default=None, description="while running")
    outputs: JobOutputs | None = Field(default=None, description="when done")
    error: JobError | None = Field(default=None, description="when failed")
