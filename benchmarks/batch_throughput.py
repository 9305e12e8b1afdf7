"""Batch throughput: a 1,000,000-row penguins CSV through the batch function, vs the onnxruntime floor.

The CSV (generated, vectorised: benchmarks/_batch_child.make_columns) is uploaded to the moto server under
batch/input/penguins/; a fresh process then does what Lambda does with its S3 event: imports
functions/batch/app.py and calls lambda_handler, which streams the file from S3, parses and validates each
row, preprocesses, runs onnxruntime in chunks, writes predictions.jsonl + errors.jsonl back to S3 and, as
the template configures it (CaptureRate 1), captures every row as log lines, one write per chunk. The
floor, in another fresh process, has the same rows already in memory as columns of strings and only runs
spec.transform_columns + session.run over them in the same 5,000-row chunks (and, on its own line,
session.run alone on the ready feature matrix). Each side reports rows/s (one run each: a 1M-row file is
its own repeat) and its peak RSS (VmHWM: imports, the model and whatever the run holds at once). The
moto server runs in this process and shares the two cores with the handler's: real S3 would not.

    python -m benchmarks.batch_throughput [--rows 1000000] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, PenguinsWorld, Row, child_env, machine, print_table

CHILD = Path(__file__).resolve().parent / "_batch_child.py"
KEY = "batch/input/penguins/bench.csv"


def _child(mode: str, out: Path, *args: str) -> dict[str, Any]:
    cmd = [sys.executable, str(CHILD), mode, "--out", str(out), *args]
    # the child's stdout (EMF metrics and the capture lines of every row: CloudWatch Logs on Lambda) is still
    # written, so it is paid for, but to /dev/null rather than held in this process
    proc = subprocess.run(cmd, env=child_env(), cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} child failed:\n{proc.stderr[-4000:]}")
    return json.loads(out.read_text())


def run(world: PenguinsWorld, rows: int = 1_000_000, verbose: bool = True) -> list[Row]:
    import boto3

    from benchmarks._batch_child import csv_bytes, make_columns  # stdlib only at module level

    t = time.perf_counter()
    data = csv_bytes(make_columns(rows))
    made = time.perf_counter() - t
    bucket = os.environ["MAAS_MODEL_BUCKET"]
    s3 = boto3.client("s3")
    t = time.perf_counter()
    s3.put_object(Bucket=bucket, Key=KEY, Body=data)
    uploaded = time.perf_counter() - t
    if verbose:
        print(f"batch throughput: {rows:,} rows, {len(data) / 1e6:.1f} MB CSV (generated in {made:.1f} s, "
              f"uploaded to moto in {uploaded:.1f} s)", flush=True)
    del data
    with tempfile.TemporaryDirectory(prefix="maas-bench-batch-") as tmp:
        h = _child("handler", Path(tmp) / "handler.json", "--function-dir", str(ROOT / "functions" / "batch"),
                   "--bucket", bucket, "--key", KEY)
        f = _child("floor", Path(tmp) / "floor.json", "--model-dir", str(world.dir), "--rows", str(rows))
    done = h["result"]["processed"][0]
    if (done.get("rows"), done.get("predicted")) != (rows, rows):
        raise RuntimeError(f"the batch run did not predict every row: {done}")
    out_mb = s3.head_object(Bucket=bucket, Key=done["predictions_key"])["ContentLength"] / 1e6
    h_rate, f_rate, run_rate = rows / h["seconds"], rows / f["seconds"], rows / f["seconds_session_run"]
    if verbose:
        print(f"  handler  {h['seconds']:7.1f} s  {h_rate:10,.0f} rows/s  peak RSS {h['peak_rss_mb']:6.0f} MB "
              f"({h['rss_after_imports_mb']:.0f} MB after imports); {out_mb:.0f} MB of predictions written")
        print(f"  floor    {f['seconds']:7.1f} s  {f_rate:10,.0f} rows/s  peak RSS {f['peak_rss_mb']:6.0f} MB "
              f"({f['rss_after_imports_mb']:.0f} MB after imports)  "
              "spec.transform_columns + session.run, rows in memory")
        print(f"  session.run alone on the ready features: {f['seconds_session_run']:.1f} s, {run_rate:,.0f} rows/s")
    label = f"batch file, {rows:,} CSV rows (S3 on moto)"
    return [
        Row(benchmark=f"{label}: throughput", measured=f"handler {h_rate:,.0f} rows/s ({h['seconds']:.0f} s)",
            baseline=f"floor {f_rate:,.0f} rows/s (transform + run, in memory)", ratio=h_rate / f_rate,
            ratio_format="{:.0%} of floor"),
        Row(benchmark=f"{label}: peak RSS", measured=f"handler {h['peak_rss_mb']:,.0f} MB",
            baseline=f"floor {f['peak_rss_mb']:,.0f} MB (rows in memory)", ratio=h["peak_rss_mb"] / f["peak_rss_mb"],
            ratio_format="{:.2f}x floor"),
        Row(benchmark=f"{label}: vs session.run alone", measured=f"handler {h_rate:,.0f} rows/s",
            baseline=f"session.run {run_rate:,.0f} rows/s (ready features)", ratio=run_rate / h_rate,
            ratio_format="{:,.0f}x slower"),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--model-dir", help="cache of the trained bundle: reused if it holds one, else trained into")
    args = parser.parse_args(argv)
    print(machine())
    started = time.perf_counter()
    with PenguinsWorld(args.model_dir) as world:
        rows = run(world, args.rows)
    print_table(rows)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
