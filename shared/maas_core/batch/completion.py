"""Where every batch file ends, on either path: one function (job.run_batch) or the Distributed Map
(distributed.assemble_file / fail_file). Whatever must happen once per finished file belongs here, so both
paths do it alike:

    file_finished(s3, bucket, paths, result=result)     # done: a stale failure report is removed
    file_finished(s3, bucket, paths, failure=error)     # failed: batch/failed/{model}/{rest}.error.json

Neither raises: the outputs (or the run's own error) are what counts; a report that cannot be written or
removed is logged.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from maas_core.batch.errors import BatchFileError
from maas_core.batch.paths import BatchPaths

if TYPE_CHECKING:
    from maas_core.batch.job import BatchResult

logger = Logger(child=True)


def file_finished(s3: Any, bucket: str, paths: BatchPaths, *, result: BatchResult | None = None,
                  failure: BatchFileError | None = None) -> None:
    """A batch file has finished: with its `result` (its outputs are committed) or its `failure`."""
    if failure is not None:
        write_failure_report(s3, bucket, paths, failure)
        logger.info("batch file failed", extra={"input": failure.input_uri, "error": failure.code})
    elif result is not None and result.status == "done":
        remove_stale_failure_report(s3, bucket, paths)


def write_failure_report(s3: Any, bucket: str, paths: BatchPaths, failure: BatchFileError) -> None:
    """Best effort: a report that cannot be written is logged, and the run's own error still raised."""
    body = json.dumps(failure.report(), ensure_ascii=False, indent=2, default=str).encode()
    try:
        s3.put_object(Bucket=bucket, Key=paths.failure_key, Body=body, ContentType="application/json")
    except (ClientError, BotoCoreError):
        logger.exception("could not write the failure report",
                         extra={"report": f"s3://{bucket}/{paths.failure_key}", "error": failure.code})


def remove_stale_failure_report(s3: Any, bucket: str, paths: BatchPaths) -> None:
    key = paths.failure_key
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return  # none (or not ours to see)
    try:
        s3.delete_object(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError):
        logger.warning("could not remove the stale failure report", extra={"report": f"s3://{bucket}/{key}"},
                       exc_info=True)
