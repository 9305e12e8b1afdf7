"""INT8 vs float: file size, session.run latency and holdout metrics of the two demo models.

The real training job (`maas_training.job.run`, in a child process so TensorFlow never enters this
one, publishing to an in-process moto account) trains the penguins MLP and the support-tickets
Embedding -> LSTM with their shipped configs and quantizes each (accepting any metric drop here, so
that the figures are reported even where the job's default 0.02 tolerance would refuse the variant).
Then, in this process, both models of each are loaded the way the serving cache loads them and timed
with session.run on one record and on 1,000 records (medians, float and int8 in alternating rounds),
and the manifests' holdout metrics and parity are compared.

    python -m benchmarks.quantization [--model-dir DIR] [--calls 2000] [--batches 40] [--rounds 3] [--markdown]

`--model-dir` caches the trained bundles: reused if it holds them, else trained into.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import ROOT, Row, child_env, fmt_time, machine, markdown_table, print_table

MODELS = ("penguins", "support-tickets")
FILES = ("manifest.json", "model.onnx", "model.int8.onnx", "preprocess.json")
BATCH = 1000
DEFAULT_TOLERANCE = 0.02  # the training job's default quantize.max_metric_drop


def train_into(out: Path) -> None:
    """(child process) Train and publish both demo models with the real job; save their bundle files."""
    import boto3
    from moto import mock_aws

    from maas_core.store import BundleStore
    from maas_local.testing.registry_table import create_registry_table
    from maas_training.datasets import penguins_config, support_tickets_config
    from maas_training.job import run

    bucket, table = "bench-quant-models", "bench-quant-registry"
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=bucket)
        create_registry_table(table)
        for make in (penguins_config, support_tickets_config):
            config = make(bucket=bucket, table=table, quantize={"max_metric_drop": 1.0})
            manifest = run(config, progress=lambda line: print(line, file=sys.stderr, flush=True))
            bundle = BundleStore(bucket).load(manifest.name, manifest.version, only=FILES[1:])  # hashes checked
            folder = out / manifest.name
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in bundle.files.items():
                (folder / name).write_bytes(data)
            (folder / "manifest.json").write_text(manifest.model_dump_json(indent=2))


def ensure_models(model_dir: Path) -> float:
    """Train into `model_dir` unless it holds both bundles already; returns the seconds spent training."""
    if all((model_dir / m / f).exists() for m in MODELS for f in FILES):
        return 0.0
    start = time.perf_counter()
    env = child_env(MAAS_TF_THREADS="2", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                    AWS_SESSION_TOKEN="testing", AWS_DEFAULT_REGION="us-east-1")
    env.pop("AWS_ENDPOINT_URL", None)  # the child's moto is in-process
    env.pop("AWS_PROFILE", None)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.quantization", "--train-into", str(model_dir)],
                          env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"training the demo models failed:\n{proc.stderr[-4000:]}")
    return time.perf_counter() - start


def feature_matrix(folder: Path, rows: int) -> np.ndarray:
    """`rows` feature rows of the model's own dataset (repeated as needed), through its fitted spec."""
    from maas_core.preprocess import PreprocessSpec
    from maas_training import data as ds
    from maas_training.datasets import PENGUINS, SUPPORT_TICKETS

    spec = PreprocessSpec.from_json((folder / "preprocess.json").read_bytes())
    csv_path = PENGUINS if folder.name == "penguins" else SUPPORT_TICKETS
    columns = ds.load_csv(csv_path)
    required = [f.name for f in spec.features if f.required]
    complete = [i for i in range(ds.n_rows(columns)) if all(columns[n][i] is not None for n in required)]
    x = spec.transform_columns(ds.take(columns, complete))  # the rows a caller could send as they are
    return np.ascontiguousarray(np.resize(x, (rows, x.shape[1])).astype(spec.output_dtype()))


def alternating_medians(fns: dict[str, Callable[[], object]], calls: int, rounds: int) -> dict[str, float]:
    """Median seconds per call of each fn: `rounds` rounds, each running every fn `calls` times in turn
    (a warm-up call first); the median over all calls."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            fn()
            for _ in range(calls):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def measure(folder: Path, calls: int, batches: int, rounds: int) -> dict[str, Any]:
    from maas_core.manifest import Manifest
    from maas_core.model_cache import new_session

    manifest = Manifest.model_validate_json((folder / "manifest.json").read_text())
    sessions = {v: new_session((folder / manifest.variants[v].file).read_bytes()) for v in ("float", "int8")}
    x = feature_matrix(folder, BATCH)
    inp, out = manifest.model_input.name, manifest.model_output.name
    one, many = x[:1], x

    def runner(session: Any, rows: np.ndarray) -> Callable[[], object]:
        return lambda: session.run([out], {inp: rows})

    # the two variants answer the same rows alike (the manifest's parity, on the holdout, says how closely)
    p_float, p_int8 = (np.asarray(runner(s, many)()[0]) for s in sessions.values())
    single = alternating_medians({v: runner(s, one) for v, s in sessions.items()}, calls, rounds)
    batch = alternating_medians({v: runner(s, many) for v, s in sessions.items()}, batches, rounds)
    return {"manifest": manifest, "single": single, "batch": batch,
            "agreement_1000": float(np.mean(p_float.argmax(axis=1) == p_int8.argmax(axis=1)))}


def rows_for(name: str, m: dict[str, Any]) -> list[Row]:
    manifest = m["manifest"]
    flt, int8 = manifest.variants["float"], manifest.variants["int8"]
    acc_f, acc_i = flt.metrics["accuracy"], int8.metrics["accuracy"]
    parity = int8.parity or {}
    return [
        Row(f"{name}: model file", f"int8 {int8.size / 1024:.1f} KB", f"float {flt.size / 1024:.1f} KB",
            flt.size / int8.size, "smaller (> 1x)", flt.size > int8.size),
        Row(f"{name}: session.run, 1 record", f"int8 {fmt_time(m['single']['int8'])}",
            f"float {fmt_time(m['single']['float'])}", m["single"]["float"] / m["single"]["int8"]),
        Row(f"{name}: session.run, {BATCH:,} records", f"int8 {fmt_time(m['batch']['int8'])}",
            f"float {fmt_time(m['batch']['float'])}", m["batch"]["float"] / m["batch"]["int8"]),
        Row(f"{name}: holdout accuracy", f"int8 {acc_i:.4f}", f"float {acc_f:.4f}", acc_i - acc_f,
            f"drop <= {DEFAULT_TOLERANCE}", acc_f - acc_i <= DEFAULT_TOLERANCE, ratio_format="{:+.4f}"),
        Row(f"{name}: holdout macro F1", f"int8 {int8.metrics['f1_macro']:.4f}",
            f"float {flt.metrics['f1_macro']:.4f}", int8.metrics["f1_macro"] - flt.metrics["f1_macro"],
            ratio_format="{:+.4f}"),
        Row(f"{name}: holdout labels agreeing", f"max abs p diff {parity.get('max_abs_diff', float('nan')):.4f}",
            f"{m['agreement_1000']:.1%} of {BATCH:,} rows", parity.get("label_agreement", float("nan")),
            ratio_format="{:.1%}"),
    ]


def run(model_dir: str | Path | None = None, calls: int = 2000, batches: int = 40, rounds: int = 3,
        verbose: bool = True) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="maas-bench-quant-") as tmp:
        folder = Path(model_dir) if model_dir else Path(tmp)
        trained = ensure_models(folder)
        if verbose:
            print(f"demo models {f'trained in {trained:.0f} s' if trained else f'reused from {folder}'}")
        rows: list[Row] = []
        for name in MODELS:
            m = measure(folder / name, calls, batches, rounds)
            if verbose:
                print(f"{name}: session.run medians " + ", ".join(
                    f"{v} {fmt_time(m['single'][v])} (1) / {fmt_time(m['batch'][v])} ({BATCH:,})" for v in m["single"]))
            rows += rows_for(name, m)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", help="cache of the trained bundles: reused if it holds them, else trained into")
    parser.add_argument("--calls", type=int, default=2000, help="single-record calls per variant per round")
    parser.add_argument("--batches", type=int, default=40, help=f"{BATCH:,}-record calls per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    parser.add_argument("--train-into", help=argparse.SUPPRESS)  # the child process that trains
    args = parser.parse_args(argv)
    if args.train_into:
        train_into(Path(args.train_into))
        return
    print(machine())
    rows = run(args.model_dir, args.calls, args.batches, args.rounds)
    print_table(rows)
    if args.markdown:
        print()
        print(markdown_table(rows))


if __name__ == "__main__":
    main()
