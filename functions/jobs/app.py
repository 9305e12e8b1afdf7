"""Jobs function: batch jobs for web apps (maas_core.jobs). Thin on purpose: routes, parameters, wiring.

A function of its own, not a route of predict or admin: it imports no onnxruntime or numpy model code, so
its cold start is the registry's and boto3's (predict's init loads onnxruntime), and its role alone may sign
uploads to batch/input/ and downloads of batch/output/ (predict may read models/* only; admin is IAM-only).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from maas_core import aws
from maas_core.edge.callers import caller_of
from maas_core.edge.http import build_resolver, error_responses, json_response, ok_response, resolve
from maas_core.edge.openapi import ModelName
from maas_core.jobs import JobStore, create_job, describe_job
from maas_core.jobs.records import JOB_ID
from maas_core.jobs.schemas import JobCreated, JobRequest, JobStatus
from maas_core.registry import Registry
from maas_core.settings import get_settings

logger = Logger()
app = build_resolver()

JobId = Annotated[str, PathParam(description="the job id POST /v1/models/{model}/jobs answered (32 hex digits)",
                                 json_schema_extra={"pattern": JOB_ID.pattern.replace(r"\Z", "$")})]


@lru_cache(maxsize=1)
def registry() -> Registry:
    return Registry(get_settings().registry_table)


@lru_cache(maxsize=1)
def jobs() -> JobStore:
    return JobStore(get_settings().jobs_table)


@app.post("/v1/models/<model>/jobs",
          responses={**ok_response(JobCreated, "the job, and the form to upload its file with"),
                     **error_responses(400, 404, 415, 422, 503)})
def post_job(model: ModelName, request: JobRequest) -> Response[dict[str, Any]]:
    """A batch job: POST `upload.fields` and then the file (multipart/form-data) to `upload.url`, straight to S3,
    which refuses a file over `upload.max_bytes`, of another Content-Type or after `upload.expires_at`. The
    upload starts the job; follow it at GET /v1/jobs/{job_id}."""
    owner = caller_of(app.current_event.raw_event)
    job = create_job(registry(), jobs(), aws.presigning_s3(), get_settings(), owner, model, request)
    logger.info("job created", extra={"job_id": job.job_id, "model": model, "owner": owner})
    return json_response(job)


@app.get("/v1/jobs/<job_id>", responses={**ok_response(JobStatus, "how the job stands"),
                                         **error_responses(400, 404, 503)})
def get_job(job_id: JobId) -> Response[dict[str, Any]]:
    """The caller's own job: waiting_for_upload, running (its progress: a large file's stage and shards done),
    done (row counts and presigned download URLs of the predictions and errors files) or failed (the error).
    Another caller's job, or an expired one, is a 404."""
    status = describe_job(jobs(), aws.presigning_s3(), get_settings(), caller_of(app.current_event.raw_event), job_id)
    return json_response(status)


# every log line of the request names API Gateway's request id (also in the answer: maas_core.edge.http)
@logger.inject_lambda_context(clear_state=True, correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
