"""Warm latency: one record through the whole predict handler, vs Keras and vs a bare onnxruntime call.

In this process, functions/predict/app.py answers API Gateway events for the penguins model (from the
moto server on loopback) after a warm-up: routing, request validation (pydantic), alias lookup (TTL
cached), preprocessing with the fitted spec, onnxruntime, output shaping, JSON response. Baselines on
the same prepared feature row: `session.run` of the same model (the floor), and Keras `model.predict`
of the same trained network in a warm child process (TensorFlow never enters this process); Keras
`model(x)` is printed for reference. Rounds interleave the three; p50 and p99 are medians over rounds.

    python -m benchmarks.warm_latency [--calls 2000] [--rounds 3] [--keras-calls 60] [--model-dir DIR] [--profile]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    CHILD,
    RECORD,
    ROOT,
    PenguinsWorld,
    Row,
    child_env,
    fmt_time,
    handler_stdout,
    load_predict_handler,
    machine,
    percentile,
    predict_event,
    print_table,
)

TARGET_P50 = 1e-3  # seconds
TARGET_VS_KERAS = 50.0


class KerasWorker:
    """A child process holding the trained Keras network, timing model.predict / model(x) on request."""

    def __init__(self, world: PenguinsWorld, row: Path, rows: int = 1) -> None:
        cmd = [sys.executable, str(CHILD), "keras-latency", "--model", str(world.keras_path), "--row", str(row),
               "--rows", str(rows)]
        self.proc = subprocess.Popen(cmd, env=child_env(), cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self._read("READY")

    def _read(self, prefix: str) -> str:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        raise RuntimeError(f"the Keras worker exited ({self.proc.wait()}) before answering")

    def time_calls(self, n: int) -> dict[str, list[float]]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        return json.loads(self._read("RESULT "))

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def time_each(fn: Any, args: list[Any]) -> list[float]:
    out = []
    perf = time.perf_counter
    for a in args:
        t = perf()
        fn(a)
        out.append(perf() - t)
    return out


def run(world: PenguinsWorld, calls: int = 2000, rounds: int = 3, keras_calls: int = 60, warmup: int = 200,
        verbose: bool = True, profile: bool = False) -> list[Row]:
    from maas_local.lambda_context import FakeLambdaContext

    app = load_predict_handler()
    context = FakeLambdaContext()
    events = [predict_event([RECORD]) for _ in range(calls)]  # one per call: each has its own requestId
    with handler_stdout():
        for ev in events[:warmup]:
            resp = app.lambda_handler(ev, context)
            assert resp["statusCode"] == 200, resp
    handler = lambda ev: app.lambda_handler(ev, context)

    session = world.session()
    x = world.spec().transform([RECORD])
    inp, out = session.get_inputs()[0].name, session.get_outputs()[0].name
    ort_run = lambda _: session.run([out], {inp: x})
    for _ in range(warmup):
        ort_run(None)

    handler_p50, handler_p99, ort_p50, ort_p99, keras_p50, keras_p99, call_p50 = ([] for _ in range(7))
    with tempfile.TemporaryDirectory(prefix="maas-warm-") as tmp:
        row = Path(tmp) / "row.json"
        world.write_row(RECORD, row)
        keras = KerasWorker(world, row)
        try:
            for _ in range(rounds):
                gc.collect()
                with handler_stdout():
                    t = time_each(handler, events)
                handler_p50.append(percentile(t, 50))
                handler_p99.append(percentile(t, 99))
                t = time_each(ort_run, [None] * calls)
                ort_p50.append(percentile(t, 50))
                ort_p99.append(percentile(t, 99))
                k = keras.time_calls(keras_calls)
                keras_p50.append(percentile(k["predict"], 50))
                keras_p99.append(percentile(k["predict"], 99))
                call_p50.append(percentile(k["call"], 50))
        finally:
            keras.close()

    med = statistics.median
    p50, p99 = med(handler_p50), med(handler_p99)
    if verbose:
        print(f"warm latency, one record, medians of {rounds} rounds ({calls} handler calls, {calls} session.run, "
              f"{keras_calls} Keras calls per round):")
        print(f"  handler            p50 {fmt_time(p50)}  p99 {fmt_time(p99)}")
        print(f"  onnxruntime run    p50 {fmt_time(med(ort_p50))}  p99 {fmt_time(med(ort_p99))}")
        print(f"  keras predict      p50 {fmt_time(med(keras_p50))}  p99 {fmt_time(med(keras_p99))}")
        print(f"  keras model(x)     p50 {fmt_time(med(call_p50))}  "
              f"(reference: {med(call_p50) / p50:.0f}x the handler)")
    if profile:
        profile_handler(handler, events)
    vs_keras = med(keras_p50) / p50
    return [
        Row(benchmark="warm latency, 1 record, full handler (p50)",
            measured=f"p50 {fmt_time(p50)}, p99 {fmt_time(p99)}",
            baseline="target 1 ms", ratio=p50 / TARGET_P50, target="p50 < 1 ms", passed=p50 < TARGET_P50,
            ratio_format="{:.2f}x target"),
        Row(benchmark="warm latency vs Keras model.predict (p50)", measured=f"handler {fmt_time(p50)}",
            baseline=f"keras predict {fmt_time(med(keras_p50))}", ratio=vs_keras,
            target=f">= {TARGET_VS_KERAS:g}x faster",
            passed=vs_keras >= TARGET_VS_KERAS, ratio_format="{:.0f}x faster"),
        Row(benchmark="warm latency vs bare session.run (p50)", measured=f"handler {fmt_time(p50)}",
            baseline=f"session.run {fmt_time(med(ort_p50))}", ratio=p50 / med(ort_p50), target="(overhead, no target)",
            ratio_format="{:.0f}x floor"),
    ]


def profile_handler(handler: Any, events: list[dict[str, Any]], top: int = 20) -> None:
    """cProfile of warm handler calls: where the time of one request goes (per call; the profiler inflates it)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    with handler_stdout():
        prof.enable()
        for ev in events:
            handler(ev)
        prof.disable()
    n = len(events)
    rows = []
    for (filename, line, name), (_cc, calls, own, cum, _callers) in pstats.Stats(prof).stats.items():  # type: ignore[attr-defined]
        where = f"{'/'.join(Path(filename).parts[-2:])}:{line}({name})" if line else name
        rows.append((own / n, cum / n, calls / n, where))
    print(f"  cProfile of {n} warm handler calls, per call. By cumulative time (project and Powertools code):")
    for own, cum, calls, where in sorted((r for r in rows if "maas_core" in r[3] or "predict/app" in r[3]
                                          or "event_handler" in r[3] or "logging" in r[3] or "metrics" in r[3]),
                                         key=lambda r: -r[1])[:top]:
        print(f"    {cum * 1e6:8.1f} us cum {own * 1e6:7.1f} us own {calls:5.1f}x  {where}")
    print("  by own time:")
    for own, cum, calls, where in sorted(rows, key=lambda r: -r[0])[:top]:
        print(f"    {own * 1e6:8.1f} us own {cum * 1e6:7.1f} us cum {calls:5.1f}x  {where}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="handler calls per round (>= 2000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keras-calls", type=int, default=60, help="Keras model.predict calls per round")
    parser.add_argument("--model-dir", help="cache of the trained bundle: reused if it holds one, else trained into")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of warm handler calls")
    args = parser.parse_args(argv)
    print(machine())
    with PenguinsWorld(args.model_dir) as world:
        rows = run(world, args.calls, args.rounds, args.keras_calls, profile=args.profile)
    print_table(rows)


if __name__ == "__main__":
    main()
