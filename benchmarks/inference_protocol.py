"""The Open Inference Protocol's cost: POST /v2/models/penguins/infer against /v1/models/penguins/predict.

In this process, functions/predict/app.py answers API Gateway events for the penguins model (benchmarks.common:
the moto server on loopback, capture and metrics on as the template deploys them), warm, for the same records
sent both ways: as /v1 records, and as /v2 tensors (one per raw field). Rounds interleave the two; per size
(1 and 1,000 records) the median over rounds of each's p50 and their ratio are printed. The difference is the
protocol's own work: reading tensors into records and writing the outputs as tensors.

    python -m benchmarks.inference_protocol [--calls 300] [--rounds 3] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from benchmarks.common import (
    MODEL,
    RECORD,
    PenguinsWorld,
    Row,
    fmt_time,
    handler_stdout,
    load_predict_handler,
    machine,
    percentile,
    predict_event,
    print_table,
    timed_handler_calls,
)

DATATYPES = {"number": "FP64", "string": "BYTES", "boolean": "BOOL"}
SIZES = (1, 1000)


def infer_event(schema: list[Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """The same records as an inference request: one tensor of shape [N] per raw field."""
    from maas_local.testing.events import rest_event

    inputs = [{"name": f.name, "datatype": DATATYPES[f.type], "shape": [len(records)],
               "data": [r[f.name] for r in records]} for f in schema]
    return rest_event("POST", f"/v2/models/{MODEL}/infer", {"inputs": inputs},
                      resource="/v2/models/{model}/infer", path_params={"model": MODEL})



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="requests per size, kind and round (1 record)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model-dir", help="a cached penguins bundle (else trained once into a temp dir)")
    args = parser.parse_args(argv)
    with PenguinsWorld(args.model_dir) as world:
        schema = world.manifest().input_schema
        handler = load_predict_handler()
        rows: list[Row] = []
        with handler_stdout():
            for size in SIZES:
                records = [RECORD] * size
                events = {"v1": predict_event(records), "v2": infer_event(schema, records)}
                calls = max(args.calls // size * 10, 20) if size > 1 else args.calls
                for event in events.values():
                    timed_handler_calls(handler, event, 5)  # warm-up: the model loaded, the paths compiled
                p50: dict[str, list[float]] = {"v1": [], "v2": []}
                for _ in range(args.rounds):
                    for kind, event in events.items():
                        p50[kind].append(percentile(timed_handler_calls(handler, event, calls), 50))
                v1, v2 = statistics.median(p50["v1"]), statistics.median(p50["v2"])
                label = f"{size} record{'s' if size > 1 else ''}"
                diff = f"{'+' if v2 >= v1 else '-'}{fmt_time(abs(v2 - v1))}"
                rows.append(Row(f"{label}: /v2 infer p50 vs /v1 predict p50 ({diff})",
                                fmt_time(v2), fmt_time(v1), v2 / v1, ratio_format="{:.2f}x"))
    print(f"Open Inference Protocol overhead, handler level ({machine()})")
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
