"""Large batch files on the Distributed Map path, in the local stand-in's steps, against the single function.

A generated CSV for the tiny model (maas_local/testing/tiny_model.py: no TensorFlow) is uploaded to moto
(in-process); the single path (run_batch) runs it once as the baseline; then for each shard count the plan,
every shard (one after another: each is its own Lambda when deployed) and the assembly run as the state
machine's steps do (maas_core.batch.distributed), and the outputs are checked byte-identical to the
single path's. Printed: wall time and rows/s of the single path and of the stand-in (sequential), the plan's
rate, the per-shard rate, the assembly's cost (UploadPartCopy: bytes copied server-side vs read back),
peak Python memory of one shard (tracemalloc), and the model of the deployed wall time
(plan + slowest shard + assembly, shards in parallel) and of the cost per million rows on Lambda (2,048 MB,
$0.0000166667 per GB-s, $0.20 per million requests) + Step Functions standard ($0.025 per 1,000 transitions).
moto's S3 runs in this process and shares its core: real S3 would not.

    python -m benchmarks.batch_distributed [--rows 10000000] [--shards 1,4,16]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
import tracemalloc
from typing import Any

import numpy as np

from benchmarks.common import Row, machine, print_table

KEY = "batch/input/tiny/bench.csv"
LAMBDA_GB_SECOND, LAMBDA_REQUEST, SFN_TRANSITION = 0.0000166667, 0.20 / 1e6, 0.025 / 1000
MEMORY_GB = 2.0  # BatchShardsFunction's MemorySize


def make_csv(rows: int) -> bytes:
    i = np.arange(rows)
    x1 = np.char.mod("%.1f", (i % 13) * 0.5 - 3)
    x2 = np.where(i % 5 == 0, "", np.char.mod("%d", i % 4))
    colour = np.where(i % 3 == 0, "red", "blue")
    lines = np.char.add(np.char.add(np.char.add(np.char.add(x1, ","), x2), ","), colour)
    return ("x1,x2,colour\n" + "\n".join(lines.tolist()) + "\n").encode()


def _digest(s3: Any, bucket: str, key: str) -> str:
    return hashlib.sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()


def run(rows: int, shard_counts: list[int]) -> list[Row]:
    import boto3
    from moto import mock_aws

    from maas_core import aws
    from maas_core.batch import distributed, run_batch
    from maas_core.batch.paths import file_id
    from maas_core.predictor import Predictor
    from maas_core.registry import Registry
    from maas_core.settings import Settings
    from maas_core.store import BundleStore
    from maas_local.testing.registry_table import create_registry_table
    from maas_local.testing.tiny_model import publish_tiny_model

    out: list[Row] = []
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        aws.reset_clients()
        bucket, table = "bench-models", "bench-registry"
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=bucket)
        create_registry_table(table)
        publish_tiny_model(BundleStore(bucket, s3=s3), Registry(table))
        data = make_csv(rows)
        s3.put_object(Bucket=bucket, Key=KEY, Body=data)
        print(f"batch distributed: {rows:,} rows, {len(data) / 1e6:.0f} MB CSV", flush=True)
        del data
        settings = Settings(model_bucket=bucket, registry_table=table, capture_rate=0.0)
        predictor = Predictor.from_settings(settings)
        t = time.perf_counter()
        single = run_batch(bucket, KEY, predictor)
        single_s = time.perf_counter() - t
        expected = {k: _digest(s3, bucket, k) for k in (single.predictions_key, single.errors_key)}
        for k in expected:
            s3.delete_object(Bucket=bucket, Key=k)
        print(f"  single function: {single_s:.1f} s, {rows / single_s:,.0f} rows/s", flush=True)
        head = s3.head_object(Bucket=bucket, Key=KEY)
        etag = head["ETag"].strip('"')
        file = {"bucket": bucket, "key": KEY, "etag": etag,
                "file_id": file_id(bucket, KEY, etag, head["LastModified"])}
        for count in shard_counts:
            p = Predictor.from_settings(settings.model_copy(update={
                "batch_shard_bytes": max(1, int(head["ContentLength"]) // count), "batch_shard_rows": rows}))
            t = time.perf_counter()
            plan = distributed.plan_file(file, p, s3=s3)
            plan_s = time.perf_counter() - t
            items = _items(s3, plan)
            shard_s = []
            for item in items:
                t = time.perf_counter()
                distributed.run_shards(plan["job"], [item], p, s3=s3)
                shard_s.append(time.perf_counter() - t)
            peak = 0
            if count == shard_counts[-1]:  # the first shard again, traced (tracemalloc slows it: not timed)
                tracemalloc.start()
                distributed.run_shards(plan["job"], [items[0]], p, s3=s3)
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
            t = time.perf_counter()
            result = distributed.assemble_file(plan["job"], s3=s3)
            assemble_s = time.perf_counter() - t
            same = all(_digest(s3, bucket, k) == v for k, v in expected.items())
            if not same or result["rows"] != rows:
                raise RuntimeError(f"{count} shards: outputs differ from the single path's ({result})")
            for k in expected:
                s3.delete_object(Bucket=bucket, Key=k)
            total = plan_s + sum(shard_s) + assemble_s
            deployed = plan_s + max(shard_s) + assemble_s
            lambda_s = plan_s + sum(shard_s) + assemble_s
            transitions = 6 + 3 * len(items)  # Plan, Choice, Map, Assemble, Done + each child: start, task, end
            cost = (lambda_s * MEMORY_GB * LAMBDA_GB_SECOND + (len(items) + 2) * LAMBDA_REQUEST
                    + transitions * SFN_TRANSITION) / rows * 1e6
            per_shard = rows / len(items) / (sum(shard_s) / len(items))
            print(f"  {len(items):3d} shards: plan {plan_s:5.1f} s ({rows / plan_s:,.0f} rows/s), shards "
                  f"{sum(shard_s):6.1f} s ({per_shard:,.0f} rows/s per shard, slowest {max(shard_s):.1f} s), "
                  f"assembly {assemble_s:.2f} s; stand-in (sequential) {total:.1f} s = {rows / total:,.0f} rows/s; "
                  f"peak Python memory of a shard {peak / 1e6:.0f} MB (0: not traced); "
                  f"deployed model {deployed:.1f} s, "
                  f"${cost:.4f} per million rows", flush=True)
            out.append(Row(benchmark=f"{rows:,} rows, {len(items)} shards: deployed wall time (model)",
                           measured=f"{deployed:.1f} s (plan {plan_s:.1f} + slowest shard {max(shard_s):.1f} + "
                                    f"assembly {assemble_s:.2f})",
                           baseline=f"single function {single_s:.1f} s", ratio=single_s / deployed,
                           ratio_format="{:.1f}x faster"))
        aws.reset_clients()
    return out


def _items(s3: Any, plan: dict[str, Any]) -> list[dict[str, Any]]:
    import json

    items = plan["items"]
    return json.loads(s3.get_object(Bucket=items["Bucket"], Key=items["Key"])["Body"].read())  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--shards", default="1,4,16", help="shard counts to plan, comma-separated")
    args = parser.parse_args(argv)
    print(machine())
    started = time.perf_counter()
    print_table(run(args.rows, [int(n) for n in args.shards.split(",")]))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
