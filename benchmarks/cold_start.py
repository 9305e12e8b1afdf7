"""Cold start: a fresh process answering its first predict request, vs the S3-loading ONNX floor and vs TensorFlow.

Every round starts one fresh Python process (this interpreter) per variant; the order rotates every round:

  handler     import functions/predict/app.py as the Lambda runtime does, answer one API Gateway event for
              the penguins model in the template's default configuration (EMF metrics, capture of every
              prediction as a log line): alias from DynamoDB and bundle from S3 (SHA-256 checked) on a moto
              server on loopback, onnxruntime session, validation, preprocessing, prediction, JSON response
  capture off the same with MAAS_CAPTURE_RATE=0: the difference is capture's own share of a cold start
  stack floor the floor plus the libraries maas's standards require, in a function of their own with no maas
              code (benchmarks/stack_floor/app.py): Powertools' REST resolver with validation, Logger and
              Metrics, pydantic-settings, a DynamoDB GetItem of the alias; the body carries the prepared row.
              handler / stack floor is what maas itself adds; stack floor / floor what the libraries cost
  floor       the least any Lambda serving an ONNX model from S3 must do: import numpy, onnxruntime and
              boto3, one S3 client, one GET of the .onnx from the same moto server, an InferenceSession from
              its bytes, one run of the prepared row (no registry, no validation, no hash check)
  local       below the floor, for reference: numpy + onnxruntime, the .onnx from local disk, one run
  tensorflow  import tensorflow + keras, keras.saving.load_model of the same trained network (.keras),
              model.predict of the prepared row

A cold start is the time from starting the process to the first answer (interpreter start-up included,
tear-down not). One discarded round first warms the OS file cache for all of them, so every measured
round starts from the same state. Medians over the rounds; ratios of the medians: the handler against the
floor (target <= 1.2x) and the TensorFlow way against the handler (target >= 6x).

    python -m benchmarks.cold_start [--repeats 7] [--model-dir DIR] [--no-importtime]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.common import (
    CHILD,
    RECORD,
    ROOT,
    PenguinsWorld,
    Row,
    child_env,
    fmt_time,
    machine,
    predict_event,
    print_table,
)

VARIANTS = ("handler", "capture off", "stack floor", "floor", "local", "tensorflow")
TARGET_VS_TF = 6.0  # handler at least 6x faster than the TensorFlow way
TARGET_VS_FLOOR = 1.2  # handler at most 1.2x the S3-loading floor
STACK_FLOOR = Path(__file__).parent / "stack_floor"  # the floor + the libraries the standards require, no maas code


class ColdStart:
    def __init__(self, world: PenguinsWorld, workdir: Path) -> None:
        self.world = world
        self.workdir = workdir
        self.event = workdir / "event.json"
        self.event.write_text(json.dumps(predict_event([RECORD])))
        self.row = workdir / "row.json"
        row = world.write_row(RECORD, self.row)
        self.out = workdir / "result.json"
        self.stack_event = workdir / "stack_event.json"  # the stack floor takes the prepared row itself
        self.stack_event.write_text(json.dumps(predict_event([], raw_body=json.dumps({"rows": [row]}))))

    def command(self, variant: str, python_flags: tuple[str, ...] = ()) -> list[str]:
        base = [sys.executable, *python_flags, str(CHILD)]
        if variant in ("handler", "capture off"):
            return base + ["handler", "--function-dir", str(ROOT / "functions" / "predict"), "--event", str(self.event),
                           "--out", str(self.out)]
        if variant == "stack floor":
            return base + ["handler", "--function-dir", str(STACK_FLOOR), "--event", str(self.stack_event),
                           "--out", str(self.out)]
        if variant == "tensorflow":
            return base + ["keras", "--model", str(self.world.keras_path), "--row", str(self.row),
                           "--out", str(self.out)]
        if variant == "floor":
            return base + ["floor", "--bucket", self.world.bucket, "--key", self.world.onnx_key, "--row", str(self.row),
                           "--out", str(self.out)]
        return base + ["local", "--model", str(self.world.onnx_path), "--row", str(self.row), "--out", str(self.out)]

    def once(self, variant: str, python_flags: tuple[str, ...] = ()) -> tuple[dict, str]:
        """(result with `total` seconds from process start to first answer, the child's stderr)."""
        self.out.unlink(missing_ok=True)
        env = child_env(MAAS_CAPTURE_RATE="0") if variant == "capture off" else child_env()
        start = time.time()
        proc = subprocess.run(self.command(variant, python_flags), env=env, cwd=self.workdir,
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not self.out.exists():
            raise RuntimeError(f"cold start {variant} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        result = json.loads(self.out.read_text())
        result["total"] = result["end"] - start
        return result, proc.stderr

    def rounds(self, repeats: int) -> dict[str, list[dict]]:
        for variant in VARIANTS:  # warm-up round, discarded
            self.once(variant)
        results: dict[str, list[dict]] = defaultdict(list)
        for i in range(repeats):
            order = VARIANTS[i % len(VARIANTS):] + VARIANTS[:i % len(VARIANTS)]
            for variant in order:
                results[variant].append(self.once(variant)[0])
        # all must agree on the answer: same network, same prepared row
        labels = self.world.manifest().labels
        handler_label = results["handler"][0]["label"]
        assert results["capture off"][0]["label"] == handler_label
        for variant in ("tensorflow", "stack floor", "floor", "local"):
            assert labels[results[variant][0]["argmax"]] == handler_label, (variant, results[variant][0], handler_label)
        return results

    def importtime(self, top: int = 12) -> list[tuple[str, float]]:
        """Self import time summed per top-level package, for one handler cold start under -X importtime."""
        _, stderr = self.once("handler", ("-X", "importtime"))
        per_package: dict[str, float] = defaultdict(float)
        for line in stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            _, self_us, _cumulative, name = (part.strip() for part in line.replace("import time:", "|").split("|"))
            per_package[name.split(".")[0]] += int(self_us) / 1e6
        return sorted(per_package.items(), key=lambda kv: -kv[1])[:top]


def median_of(results: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in results)


def run(world: PenguinsWorld, repeats: int = 7, importtime: bool = True, verbose: bool = True) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="maas-cold-") as tmp:
        bench = ColdStart(world, Path(tmp))
        results = bench.rounds(repeats)
        packages = bench.importtime() if importtime else []
    total = {v: median_of(results[v], "total") for v in VARIANTS}
    if verbose:
        print(f"cold start, medians of {repeats} fresh processes each (seconds):")
        for v in VARIANTS:
            phases = [k for k in ("import", "load", "first_call") if k in results[v][0]]
            detail = ", ".join(f"{k} {median_of(results[v], k):.3f}" for k in phases)
            spread = sorted(r["total"] for r in results[v])
            print(f"  {v:<10} total {total[v]:.3f} (min {spread[0]:.3f}, max {spread[-1]:.3f}): {detail}")
        if packages:
            print("  handler imports, self time per top-level package (one run under -X importtime, inflated):")
            print("    " + ", ".join(f"{name} {sec * 1e3:.0f} ms" for name, sec in packages))
    vs_tf = total["tensorflow"] / total["handler"]
    vs_floor = total["handler"] / total["floor"]
    stack_vs_floor = total["stack floor"] / total["floor"]
    vs_stack = total["handler"] / total["stack floor"]
    capture = total["handler"] - total["capture off"]
    if verbose:
        print(f"  handler / floor {vs_floor:.2f}x (target <= {TARGET_VS_FLOOR:g}x); tensorflow / handler {vs_tf:.1f}x "
              f"(target >= {TARGET_VS_TF:g}x); floor / local {total['floor'] / total['local']:.2f}x (boto3 + S3)")
        print(f"  stack floor / floor {stack_vs_floor:.2f}x (Powertools, pydantic, pydantic-settings, the registry's "
              f"GetItem); handler / stack floor {vs_stack:.2f}x (maas's own work)")
    return [
        Row(benchmark="cold start vs the S3-loading ONNX floor",
            measured=f"handler {fmt_time(total['handler'])}",
            baseline=f"numpy+ort+boto3, S3 GET, session {fmt_time(total['floor'])}",
            ratio=vs_floor, target=f"<= {TARGET_VS_FLOOR:g}x floor", passed=vs_floor <= TARGET_VS_FLOOR,
            ratio_format="{:.2f}x floor"),
        Row(benchmark="cold start: the required libraries alone vs the floor",
            measured=f"stack floor {fmt_time(total['stack floor'])}",
            baseline=f"floor {fmt_time(total['floor'])}", ratio=stack_vs_floor,
            target=f"(the least the handler can be; <= {TARGET_VS_FLOOR:g}x needs this below it)",
            ratio_format="{:.2f}x floor"),
        Row(benchmark="cold start: what maas adds to the required libraries",
            measured=f"handler {fmt_time(total['handler'])}",
            baseline=f"stack floor {fmt_time(total['stack floor'])}", ratio=vs_stack,
            target="(maas's own share)", ratio_format="{:.2f}x"),
        Row(benchmark="cold start: fresh process -> first predict (S3 model)",
            measured=f"handler {fmt_time(total['handler'])}",
            baseline=f"tensorflow+keras {fmt_time(total['tensorflow'])}",
            ratio=vs_tf, target=f">= {TARGET_VS_TF:g}x faster", passed=vs_tf >= TARGET_VS_TF,
            ratio_format="{:.1f}x faster"),
        Row(benchmark="cold start: capture on (default) vs off",
            measured=f"on {fmt_time(total['handler'])} ({'+' if capture >= 0 else '-'}{fmt_time(abs(capture))})",
            baseline=f"off {fmt_time(total['capture off'])}", ratio=total["handler"] / total["capture off"],
            target="(capture's own cost)", ratio_format="{:.2f}x"),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="fresh processes per variant (>= 5)")
    parser.add_argument("--model-dir", help="cache of the trained bundle: reused if it holds one, else trained into")
    parser.add_argument("--no-importtime", action="store_true", help="skip the -X importtime attribution run")
    args = parser.parse_args(argv)
    print(machine())
    with PenguinsWorld(args.model_dir) as world:
        rows = run(world, args.repeats, importtime=not args.no_importtime)
    print_table(rows)


if __name__ == "__main__":
    main()
