"""Model quality: every candidate of `--model auto` against the baselines, on the bundled datasets and a public one.

For penguins (multiclass), support tickets (text) and scikit-learn's diabetes data made messy
(maas_training.datasets.diabetes: regression), the real training job (`maas_training.job.run`, in a child
process so TensorFlow never enters this one, publishing to an in-process moto account) runs with
`model: auto` and `allow_no_better: true` (so the numbers are reported even when the job would refuse the
model). Each row is one model of the manifest's `candidates`: its holdout metric (log loss and accuracy, or
RMSE and R^2), its selection score (cross-validated mean ± std under 2,000 rows) and its training time on the
training split; then the chosen model's margin over the trivial and the linear baseline (positive: better).

    python -m benchmarks.model_quality [--epochs N] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, Row, child_env, machine, markdown_table, print_table

DATASETS = ("penguins", "support-tickets", "diabetes")


def train_all(out: Path, epochs: int | None) -> None:
    """(child process) Train each dataset with model auto; write {dataset: {candidates, seconds}} to `out`."""
    import boto3
    from moto import mock_aws

    from maas_local.testing.registry_table import create_registry_table
    from maas_training.datasets import penguins_config, support_tickets_config
    from maas_training.datasets.diabetes import diabetes_config, write_messy_diabetes
    from maas_training.job import run

    bucket, table = "bench-quality-models", "bench-quality-registry"
    results: dict[str, Any] = {}
    with mock_aws(), tempfile.TemporaryDirectory(prefix="maas-bench-quality-") as tmp:
        boto3.client("s3").create_bucket(Bucket=bucket)
        create_registry_table(table)
        configs = {
            "penguins": penguins_config(),
            "support-tickets": support_tickets_config(),
            "diabetes": diabetes_config(write_messy_diabetes(Path(tmp) / "diabetes.csv")),
        }
        for name, config in configs.items():
            update: dict[str, Any] = {"bucket": bucket, "table": table, "model": "auto", "allow_no_better": True,
                                      "quantize": {"enabled": False}}
            if epochs:
                update["epochs"] = epochs
            config = config.model_validate({**config.model_dump(), **update})
            started = time.perf_counter()
            manifest = run(config, progress=lambda line: print(line, file=sys.stderr, flush=True))
            assert manifest.candidates is not None
            results[name] = {"candidates": manifest.candidates.model_dump(mode="json"),
                             "seconds": time.perf_counter() - started}
    out.write_text(json.dumps(results, indent=2))


def trained(epochs: int | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="maas-bench-quality-") as tmp:
        out = Path(tmp) / "results.json"
        env = child_env(MAAS_TF_THREADS="2", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                        AWS_SESSION_TOKEN="testing", AWS_DEFAULT_REGION="us-east-1")
        env.pop("AWS_ENDPOINT_URL", None)  # the child's moto is in-process
        env.pop("AWS_PROFILE", None)
        command = [sys.executable, "-m", "benchmarks.model_quality", "--train-into", str(out)]
        if epochs:
            command += ["--epochs", str(epochs)]
        proc = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"training failed:\n{proc.stderr[-4000:]}")
        results: dict[str, Any] = json.loads(out.read_text())
        return results


def rows_for(dataset: str, result: dict[str, Any]) -> list[Row]:
    c = result["candidates"]
    metric = c["metric"]
    second = "r2" if metric == "rmse" else "accuracy"
    rows = []
    for name, model in c["models"].items():
        sel = model.get("selection") or {}
        choice = f"{sel[metric]:.4g}" + (f" ± {sel[metric + '_std']:.2g}" if f"{metric}_std" in sel else "") \
            if metric in sel else "-"
        mark = " (chosen)" if name == c["chosen"] else ""
        rows.append(Row(f"{dataset}: {name}{mark}",
                        f"holdout {metric} {model['metrics'][metric]:.4g}, {second} {model['metrics'][second]:.4g}",
                        f"choice {metric} {choice}; trained in {model.get('train_seconds', 0.0):.1f} s",
                        model["metrics"][metric], ratio_format="{:.4g}"))
    linear = "bow" if "bow" in c["models"] else "linear"
    for baseline in ("trivial", linear):
        if baseline == c["chosen"]:
            rows.append(Row(f"{dataset}: {c['chosen']} is the linear baseline", "margin 0",
                            f"job {result['seconds']:.0f} s", 0.0, ">= 0", True, ratio_format="{:+.4g}"))
            continue
        margin = c["margins"][baseline][metric]
        strict = baseline == "trivial"  # the job refuses a model that does not beat the trivial baseline
        rows.append(Row(f"{dataset}: {c['chosen']} over {baseline} ({c['selection']})",
                        f"margin {metric} {margin:+.4g}", f"job {result['seconds']:.0f} s", margin,
                        "> 0" if strict else ">= 0", margin > 0 if strict else margin >= 0, ratio_format="{:+.4g}"))
    return rows


def run(epochs: int | None = None, verbose: bool = True) -> list[Row]:
    started = time.perf_counter()
    results = trained(epochs)
    if verbose:
        print(f"{len(results)} datasets trained with model auto in {time.perf_counter() - started:.0f} s")
    return [row for dataset in DATASETS for row in rows_for(dataset, results[dataset])]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, help="override each config's epochs (default: theirs)")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    parser.add_argument("--train-into", help=argparse.SUPPRESS)  # the child process that trains
    args = parser.parse_args(argv)
    if args.train_into:
        train_all(Path(args.train_into), args.epochs)
        return
    print(machine())
    rows = run(args.epochs)
    print_table(rows)
    if args.markdown:
        print()
        print(markdown_table(rows))


if __name__ == "__main__":
    main()
