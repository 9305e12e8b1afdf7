"""Batch function: S3 ObjectCreated under batch/input/ -> maas_core.batch.run_batch. Thin on purpose.

Accepts an S3 event (`Records[].s3`), or the same event wrapped in SQS messages (`Records[].body`,
as S3 -> SQS notifications deliver it; the local emulation uses this). Keys arrive URL-encoded
(`a+b%C3%A9.csv`) and are decoded here. `s3:TestEvent` messages (sent when a notification is
configured) are ignored, as are keys outside batch/input/ and folder placeholders.

A file that cannot be processed has its report written by run_batch and makes this invocation
fail, so Lambda retries it and then hands the event to the on-failure destination (the DLQ).

A file larger than MAAS_BATCH_DISTRIBUTED_THRESHOLD_BYTES (not gzip) is handed to the state machine
(maas_core.batch.distributed: one execution per upload, named by the file id) instead of run here.

Each file emits EMF metrics per model and version and a sample of its rows is captured with source
"batch" (maas_core.monitoring.batch: log lines, MAAS_CAPTURE_RATE as for predict).

Every file that ends, done or failed, goes to maas_core.jobs.batch_file_finished: the job it belongs to (a
file uploaded through the jobs API) records the end, and an EventBridge event announces it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from maas_core.batch import BatchFileError, is_batch_input, run_batch
from maas_core.batch.distributed import start_large_file
from maas_core.edge.s3_events import s3_objects
from maas_core.jobs import batch_file_finished
from maas_core.monitoring.batch import BatchMonitor
from maas_core.predictor import Predictor
from maas_core.settings import get_settings

logger = Logger()


@lru_cache(maxsize=1)
def predictor() -> Predictor:
    # one per process: warm invocations reuse the registry client and loaded models
    return Predictor.from_settings(get_settings())


@lru_cache(maxsize=1)
def monitor() -> BatchMonitor:
    return BatchMonitor.from_settings(get_settings())


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    done: list[dict[str, Any]] = []
    failed: list[BatchFileError] = []
    for bucket, key in s3_objects(event):
        if not is_batch_input(key):
            logger.info("not a batch input; ignored", extra={"bucket": bucket, "key": key})
            continue
        try:
            handed_off = start_large_file(bucket, key, get_settings())
            if handed_off is not None:  # the state machine's assemble or fail step ends this file
                done.append(handed_off.summary())
                continue
            result = run_batch(
                bucket, key, predictor(), monitor=monitor(), chunk_rows=get_settings().batch_chunk_rows,
                time_left=lambda: context.get_remaining_time_in_millis() / 1000)
        except BatchFileError as err:
            logger.exception("batch file failed", extra={"input": err.input_uri, "error": err.code})
            failed.append(err)
            try:
                batch_file_finished(bucket, key, err)
            except Exception:  # the invocation fails anyway, and its retry announces the file again
                logger.exception("could not record or announce the failed file", extra={"input": err.input_uri})
            continue
        logger.info("batch file processed", extra=result.summary())
        batch_file_finished(bucket, key, result)  # raises: the retry (a skipped run) records it again
        done.append(result.summary())
    if len(failed) == 1:
        raise failed[0]
    if failed:  # rare: S3 sends one record per event
        raise BatchFileError("multiple_failures", "; ".join(str(f) for f in failed),
                             [f.report() for f in failed])
    return {"processed": done}
