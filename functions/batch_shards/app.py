"""Batch shards function: the steps of BatchStateMachine (template.yaml) for a large batch file. Thin on purpose.

The state machine passes `step` and the step's input (maas_core.batch.distributed says what each does):
- plan:     {"step": "plan", "file": {bucket, key, etag, file_id}} -> the job, shards.json, max concurrency
- shard:    {"step": "shard", "BatchInput": {"job": ...}, "Items": [shard, ...]} (the Map's ItemBatcher)
- assemble: {"step": "assemble", "job": ...} -> the file's BatchResult summary
- fail:     {"step": "fail", "file": ..., "error": {"Error", "Cause"}} -> the failure report

Metrics and captures as for the batch function (maas_core.monitoring.batch): each shard its rows, the
assemble (or fail) step the file once. The assemble and fail steps also end the file as the batch function
ends a small one (maas_core.jobs.batch_file_finished: a job's record, the completion event).

A step that fails raises (BatchFileError, noted for the fail step): the state machine retries or catches it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from maas_core.batch.distributed import assemble_file, fail_file, plan_file, run_shards
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
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    step = event.get("step")
    if step == "plan":
        return plan_file(event["file"], predictor())
    if step == "shard":
        return run_shards(event["BatchInput"]["job"], event["Items"], predictor(), monitor=monitor())
    if step == "assemble":
        return assemble_file(event["job"], monitor=monitor(), announce=batch_file_finished)
    if step == "fail":
        return fail_file(event["file"], event.get("error"), monitor=monitor(), announce=batch_file_finished)
    raise ValueError(f"unknown step {step!r}: expected plan, shard, assemble or fail")
