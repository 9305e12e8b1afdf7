"""Which batch files run on the state machine, and the work area where one is split.

    takes_distributed_path(key, head, threshold)   # from the input's HEAD (starts_gzip then checks its bytes)
    work_prefix(paths, fid)                        # batch/work/{model}/{rest}.{fid}/

The work area of one execution (maas_core.batch.distributed writes it, Assemble or Failed removes it):

    shards.json                      the plan: [{"index", "start", "end", "first_row"}, ...] (Shard.as_dict)
    shard-00003.json                 shard 3 is done: its counts (rows, predicted, rejected, blank, bytes)
    shard-00003.predictions.jsonl    its outputs (and .errors.jsonl), written before its counts
    failed-1-shard-00003.json        a step's failure, for the Failed step

Light on purpose (no numpy, no onnxruntime): code that only needs the layout must not load the model runtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maas_core.batch.paths import BatchPaths

SHARDS = "shards.json"
GZIP_MAGIC = b"\x1f\x8b"  # the reader's (a unit test keeps them equal): reader.py loads numpy


def takes_distributed_path(key: str, head: Mapping[str, Any], threshold: int) -> bool:
    """What the HEAD says of the path an input takes: larger than `threshold` and neither named nor encoded
    gzip (gzip takes the single path). A True still needs `starts_gzip` False: gzip bytes under a .csv name."""
    size = int(head.get("ContentLength") or 0)
    return size > threshold and not key.lower().endswith(".gz") \
        and "gzip" not in str(head.get("ContentEncoding") or "").lower()


def starts_gzip(s3: Any, bucket: str, key: str) -> bool:
    return bool(s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-1")["Body"].read() == GZIP_MAGIC)


def work_prefix(paths: BatchPaths, fid: str) -> str:
    """Where one execution's shard outputs live until Assemble (removed after; a lifecycle rule sweeps)."""
    return f"batch/work/{paths.model}/{paths.rest}.{fid}/"


def shard_key(work: str, index: int, suffix: str) -> str:
    return f"{work}shard-{index:05d}{suffix}"
