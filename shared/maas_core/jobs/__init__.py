"""Batch jobs for web apps: a batch file that a caller without AWS credentials uploads and follows over HTTP.

    POST /v1/models/{model}/jobs  -> a job id and a presigned POST for batch/input/{model}/jobs/{id}/input.csv
    (the browser uploads; the batch trigger runs the file as any batch file)
    GET  /v1/jobs/{id}            -> status, row counts, and presigned download URLs of the outputs once done

- records:    the job item (DynamoDB, with a TTL), its id and its input key
- service:    create_job / describe_job, what the jobs function's routes call
- completion: batch_file_finished, called when any batch file ends: the job's status and an EventBridge event
- schemas:    the routes' request and answer models
"""

from maas_core.jobs.completion import batch_file_finished
from maas_core.jobs.records import Job, JobStore, is_job_id
from maas_core.jobs.service import create_job, describe_job

__all__ = ["Job", "JobStore", "batch_file_finished", "create_job", "describe_job", "is_job_id"]
