"""Train trigger: S3 ObjectCreated under datasets/ -> one AWS Batch training job per dataset. Thin on purpose.

Accepts an S3 event (`Records[].s3`), or the same event wrapped in SQS messages (the local stack's S3
notification -> SQS -> this handler). Which uploads start a job, and how, is maas_core.training_jobs:
a `.csv`/`.jsonl` under datasets/{model}/ does, a training config alone does not.

A key that can never start a job (not a dataset, no model folder, no config and no maas-target) is
logged as an error and reported in `rejected`; the invocation succeeds, since retrying cannot fix the
key. An S3 or Batch failure (throttling, timeout, access denied) is logged with the key and raises, so
Lambda retries the event; the retry never submits a second job for the same upload (training_jobs).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from maas_core.edge.s3_events import s3_objects
from maas_core.errors import MaasError
from maas_core.training_jobs import TrainingRequestError, TrainingSettings, request_for_upload, start_training

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # read per call: cheap, and the local stack may switch the runner
    settings = TrainingSettings.from_environment()
    started: list[dict[str, Any]] = []
    ignored: list[str] = []
    rejected: list[dict[str, Any]] = []
    for bucket, key in s3_objects(event):
        try:
            request = request_for_upload(bucket, key)
            if request is None:
                logger.info("not a dataset (a config or folder); no job", extra={"bucket": bucket, "key": key})
                ignored.append(key)
                continue
            job = start_training(request, settings)
        except TrainingRequestError as err:
            logger.error("upload cannot start a training job",
                         extra={"bucket": bucket, "key": key, "error": err.message})
            rejected.append({"key": key, **err.to_body()["error"]})
            continue
        except MaasError as err:  # S3 or Batch unavailable (503), or refusing this role (500: IAM / key policy)
            logger.exception("training job not started; the invocation fails so Lambda retries the event",
                             extra={"bucket": bucket, "key": key, "code": err.code, "error": err.message})
            raise
        logger.info("training job started", extra=job.summary())
        started.append(job.summary())
    return {"started": started, "ignored": ignored, "rejected": rejected}
