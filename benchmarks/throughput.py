"""Throughput: 1,000 records per request through the predict handler, vs the floor doing only the math.

In this process, functions/predict/app.py answers API Gateway events carrying 1,000 raw penguins
records (the default MAAS_MAX_RECORDS) after a warm-up: JSON parsing and request validation, preprocessing,
onnxruntime, 1,000 predictions with ids and probabilities, JSON response. The floor is the least any
server must do with the same payload: json.loads of the same body + spec.transform + session.run.
Blocks of consecutive calls alternate handler / floor (a server answers requests back to back; strict
one-to-one alternation slows both by ~1.5x, each evicting the other's memory); records/s from the
median over blocks of the mean time per request.

    python -m benchmarks.throughput [--records 1000] [--blocks 10] [--block-size 5] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from benchmarks.common import (
    PenguinsWorld,
    Row,
    handler_stdout,
    load_predict_handler,
    machine,
    predict_event,
    print_table,
)
from benchmarks.preprocess_spec import make_records

TARGET_SHARE = 0.30  # handler records/s at least 30% of the floor's


def run(world: PenguinsWorld, n_records: int = 1000, blocks: int = 10, block_size: int = 5, warmup: int = 3,
        verbose: bool = True) -> list[Row]:
    from maas_local.lambda_context import FakeLambdaContext

    app = load_predict_handler()
    context = FakeLambdaContext()
    records = make_records(n_records, seed=1)
    event = predict_event(records)
    body = event["body"]

    spec = world.spec()
    session = world.session()
    inp, out = session.get_inputs()[0].name, session.get_outputs()[0].name

    def handler() -> Any:
        resp = app.lambda_handler(event, context)
        assert resp["statusCode"] == 200, resp["body"][:500]
        return resp

    def floor() -> Any:
        recs = json.loads(body)["records"]
        return session.run([out], {inp: spec.transform(recs)})[0]

    with handler_stdout():
        answer = json.loads(handler()["body"])
        assert len(answer["predictions"]) == n_records
        for _ in range(warmup):
            handler()
            floor()
        t_handler, t_floor = [], []
        perf = time.perf_counter
        for _ in range(blocks):
            for fn, times in ((handler, t_handler), (floor, t_floor)):
                fn()  # the first call after a switch pays for the other's evictions: not timed
                t = perf()
                for _ in range(block_size):
                    fn()
                times.append((perf() - t) / block_size)
    h, f = statistics.median(t_handler), statistics.median(t_floor)
    share = f / h  # = handler rec/s / floor rec/s
    if verbose:
        print(f"throughput, {n_records} records per request, medians of {blocks} alternating blocks of "
              f"{block_size} calls:")
        print(f"  handler  {h * 1e3:7.2f} ms/request  {n_records / h:10,.0f} records/s  "
              f"(body {len(body) / 1e3:.0f} KB in, {len(json.dumps(answer)) / 1e3:.0f} KB out)")
        print(f"  floor    {f * 1e3:7.2f} ms/request  {n_records / f:10,.0f} records/s  "
              "(json.loads + spec.transform + session.run)")
    return [Row(benchmark=f"throughput, {n_records:,} records/request", measured=f"handler {n_records / h:,.0f} rec/s",
                baseline=f"floor {n_records / f:,.0f} rec/s", ratio=share, target=f">= {TARGET_SHARE:.0%} of floor",
                passed=share >= TARGET_SHARE, ratio_format="{:.0%} of floor")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--block-size", type=int, default=5)
    parser.add_argument("--model-dir", help="cache of the trained bundle: reused if it holds one, else trained into")
    args = parser.parse_args(argv)
    print(machine())
    with PenguinsWorld(args.model_dir) as world:
        rows = run(world, args.records, args.blocks, args.block_size)
    print_table(rows)


if __name__ == "__main__":
    main()
