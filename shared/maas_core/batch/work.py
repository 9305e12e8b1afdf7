"""Which batch files run on the state machine, and the work area where one is split, read back for its progress.

    takes_distributed_path(key, head, threshold)   # from the input's HEAD (starts_gzip then checks its bytes)
    work_prefix(paths, fid)                        # batch/work/{model}/{rest}.{fid}/
    read_progress(s3, bucket, work)                # ShardProgress, or None before the plan

The work area of one execution (maas_core.batch.distributed writes it, Assemble or Failed removes it):

    shards.json                      the plan: [{"index", "start", "end", "first_row"}, ...] (Shard.as_dict)
    shard-00003.json                 shard 3 is done: its counts (rows, predicted, rejected, blank, bytes)
    shard-00003.predictions.jsonl    its outputs (and .errors.jsonl), written before its counts
    failed-1-shard-00003.json        a step's failure, for the Failed step

Light on purpose (no numpy, no onnxruntime): the jobs function imports it to tell a job how far its file is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from maas_core import aws
from maas_core.batch.paths import BatchPaths

SHARDS = "shards.json"
GZIP_MAGIC = b"\x1f\x8b"  # the reader takes it from here (reader.py loads numpy; this module must not)
_SHARD_DONE = re.compile(r"shard-(?P<index>\d{5,})\.json\Z")  # not .predictions.jsonl, .errors.jsonl, failed-*

Stage = Literal["planning", "predicting", "assembling"]


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


@dataclass(frozen=True)
class ShardProgress:
    """How far an execution is. The counts are None when the work area went away while it was read (the file
    is ending: Assemble and Failed remove it last)."""

    stage: Stage
    shards_total: int | None = None
    shards_done: int | None = None
    rows_done: int | None = None
    bytes_done: int | None = None


def read_progress(s3: Any, bucket: str, work: str) -> ShardProgress | None:
    """The progress of the execution whose work area is `work`; None: not planned yet (or its area is gone).

    Bounded: one ListObjectsV2 over the area (about three objects a shard, one page up to ~330 shards), the
    plan's GetObject, and the last shard's counts (a few bytes) once it is done. A shard's rows are the gap
    between its first_row and the next shard's, its bytes its range: no prediction file is read."""
    done: set[int] = set()
    planned = False
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=work):
        for obj in page.get("Contents", []):
            name = obj["Key"][len(work):]
            match = _SHARD_DONE.match(name)
            if match:
                done.add(int(match["index"]))
            planned = planned or name == SHARDS
    if not planned:
        return None
    plan = _json_or_none(s3, bucket, work + SHARDS)
    if plan is None:
        return ShardProgress("assembling")  # listed, then removed: the file just ended
    shards = sorted(plan, key=lambda s: int(s["index"]))
    done &= {int(s["index"]) for s in shards}
    rows = bytes_ = 0
    for i, shard in enumerate(shards):
        if int(shard["index"]) not in done:
            continue
        bytes_ += int(shard["end"]) - int(shard["start"])
        if i + 1 < len(shards):
            rows += int(shards[i + 1]["first_row"]) - int(shard["first_row"])
        else:  # the last shard's rows are known only to it
            counts = _json_or_none(s3, bucket, shard_key(work, int(shard["index"]), ".json"))
            if counts is None:
                return ShardProgress("assembling")
            rows += int(counts["rows"])
    stage: Stage = "assembling" if len(done) == len(shards) else "predicting"
    return ShardProgress(stage, shards_total=len(shards), shards_done=len(done), rows_done=rows, bytes_done=bytes_)


def _json_or_none(s3: Any, bucket: str, key: str) -> Any:
    """A small JSON object of the work area; None if it is gone (other S3 errors are the caller's).

    Gone may also read as AccessDenied: S3 answers a missing key with 403 unless the caller may list the
    bucket, and the jobs role may list only under some prefixes. So a denied read of a key the listing just
    showed is looked up again; if the listing no longer has it, the area went away, else the denial stands."""
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as exc:
        if aws.is_not_found(exc):
            return None
        if aws.is_access_denied(exc) and not aws.is_listed(s3, bucket, key):
            return None
        raise
