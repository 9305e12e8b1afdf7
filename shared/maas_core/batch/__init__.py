"""Batch predictions for files dropped in S3 (`batch/input/{model}/...csv|jsonl[.gz]`).

- paths:  the key layout of inputs, outputs and failure reports; file_id, the id of one upload of an input
- reader: stream a CSV / JSONL (optionally gzip) object as chunks of records, in bounded memory
- writer: write an S3 object atomically (single put, or a multipart upload completed at the end)
- job:    run_batch(bucket, key, predictor) -> BatchResult, tying them to a model version
- shards: plan a large file as byte ranges that start on a record boundary, read by the same reader
- distributed: a large file on the Step Functions Distributed Map (plan, shards, assembly), same outputs
- work:   which files take that path, and its work area read back as progress (light: the jobs function's)
- completion: file_finished, where every file ends on either path (its failure report written or removed)

Knows nothing of Lambda events: functions/batch/app.py turns S3 events into run_batch calls.

`run_batch` and `BatchResult` are imported on first use (PEP 562): job.py loads numpy and onnxruntime, which
code that only needs the key layout (the jobs function: maas_core.jobs) must not pay for at cold start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from maas_core.batch.errors import BatchFileError
from maas_core.batch.paths import BatchPaths, is_batch_input

if TYPE_CHECKING:
    from maas_core.batch.job import BatchResult, run_batch

__all__ = ["BatchFileError", "BatchPaths", "BatchResult", "is_batch_input", "run_batch"]


def __getattr__(name: str) -> Any:
    if name in {"BatchResult", "run_batch"}:
        from maas_core.batch import job

        return getattr(job, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
