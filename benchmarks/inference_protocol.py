"""The Open Inference Protocol's cost: POST /v2/models/penguins/infer against /v1/models/penguins/predict.

In this process, functions/predict/app.py answers API Gateway events for the penguins model (benchmarks.common:
the moto server on loopback, capture and metrics on as the template deploys them), warm, for the same records
sent three ways: as /v1 records, as /v2 tensors (one per raw field), and as /v2's model input tensor (the
records' feature matrix under the graph's input name: no preprocessing on the server). Rounds interleave them;
per size (1 and 1,000 records) the median over rounds of each's p50 and its ratio to /v1's are printed. The
raw-field difference is the protocol's own work (reading tensors into records, writing the outputs as tensors);
the model-tensor one also saves the spec's transform.

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


def infer_event(inputs: list[dict[str, Any]]) -> dict[str, Any]:
    from maas_local.testing.events import rest_event

    return rest_event("POST", f"/v2/models/{MODEL}/infer", {"inputs": inputs},
                      resource="/v2/models/{model}/infer", path_params={"model": MODEL})


def field_inputs(schema: list[Any], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records as one tensor of shape [N] per raw field."""
    return [{"name": f.name, "datatype": DATATYPES[f.type], "shape": [len(records)],
             "data": [r[f.name] for r in records]} for f in schema]


def model_tensor_input(world: PenguinsWorld, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records' feature matrix (the fitted spec's transform) as the graph's own FP32 input [N, F]."""
    matrix = world.spec().transform(records)
    return [{"name": world.manifest().model_input.name, "datatype": "FP32", "shape": list(matrix.shape),
             "data": matrix.tolist()}]



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
                events = {"v1": predict_event(records), "v2": infer_event(field_inputs(schema, records)),
                          "v2 tensor": infer_event(model_tensor_input(world, records))}
                calls = max(args.calls // size * 10, 20) if size > 1 else args.calls
                for event in events.values():
                    timed_handler_calls(handler, event, 5)  # warm-up: the model loaded, the paths compiled
                p50: dict[str, list[float]] = {kind: [] for kind in events}
                for _ in range(args.rounds):
                    for kind, event in events.items():
                        p50[kind].append(percentile(timed_handler_calls(handler, event, calls), 50))
                v1 = statistics.median(p50["v1"])
                label = f"{size} record{'s' if size > 1 else ''}"
                for kind, what in (("v2", "raw fields"), ("v2 tensor", "model tensor")):
                    v2 = statistics.median(p50[kind])
                    diff = f"{'+' if v2 >= v1 else '-'}{fmt_time(abs(v2 - v1))}"
                    rows.append(Row(f"{label}: /v2 infer ({what}) p50 vs /v1 predict p50 ({diff})",
                                    fmt_time(v2), fmt_time(v1), v2 / v1, ratio_format="{:.2f}x"))
    print(f"Open Inference Protocol overhead, handler level ({machine()})")
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
