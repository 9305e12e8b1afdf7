"""Capture overhead: predict p50 latency through the handler with prediction capture on (the template's default,
MAAS_CAPTURE_RATE 1) vs off (0), for 1, 100 and 1,000 records.

In this process, two copies of functions/predict/app.py answer API Gateway events for the penguins model (from
the moto server on loopback), both with EMF metrics on, one capturing every prediction and one capturing none.
Capture writes each request's captures as log lines to stdout (maas_core.monitoring.capture), no AWS call; the
handlers' stdout goes to /dev/null while timing, so every line is still serialised and written (on Lambda the
write goes to the runtime's log pipe, shipped to CloudWatch Logs off the request's clock). Calls alternate
between the two handlers in rounds, so both see the same machine load. The ratio is on / off: what capture
adds to a warm request, its own cost (building the captures, masking, the text numbers of a text model, JSON,
one write), since nothing else differs.

Before captures became log lines (SendMessageBatch to SQS on the request path, measured the same way against a
loopback moto SQS): 1 record 11.1 ms vs 0.30 ms off, 1,000 records 381 ms vs 5.4 ms off (100 SQS calls).

    python -m benchmarks.capture_overhead [--calls 300] [--rounds 3] [--records 1 100 1000] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from benchmarks.common import (
    RECORD,
    PenguinsWorld,
    Row,
    fmt_time,
    handler_stdout,
    load_predict_handler,
    machine,
    predict_event,
    print_table,
    timed_handler_calls,
)


def _load_predict(rate: str) -> Any:
    import os

    from maas_core.settings import get_settings

    os.environ["MAAS_CAPTURE_RATE"] = rate
    get_settings.cache_clear()
    app = load_predict_handler()
    app.predictor()  # settings read now, for this handler
    app.monitor()
    return app



def run(world: PenguinsWorld, calls: int = 300, rounds: int = 3,
        records: tuple[int, ...] = (1, 100, 1000)) -> list[Row]:
    import os

    from maas_core.settings import get_settings

    previous = os.environ.get("MAAS_CAPTURE_RATE")
    try:
        handlers = {"on": _load_predict("1"), "off": _load_predict("0")}
    finally:
        if previous is None:
            os.environ.pop("MAAS_CAPTURE_RATE", None)
        else:
            os.environ["MAAS_CAPTURE_RATE"] = previous
        get_settings.cache_clear()
    assert handlers["on"].monitor().capturing and not handlers["off"].monitor().capturing
    rows: list[Row] = []
    with handler_stdout():
        for n in records:
            event = predict_event([RECORD] * n)
            per_call = max(20, calls // max(1, n // 10))  # fewer calls for big requests: a round stays short
            for app in handlers.values():
                timed_handler_calls(app, event, 20)  # warm: model loaded, clients made
            p50s: dict[str, list[float]] = {label: [] for label in handlers}
            for _ in range(rounds):
                for label, app in handlers.items():
                    p50s[label].append(statistics.median(timed_handler_calls(app, event, per_call)))
            t = {label: statistics.median(v) for label, v in p50s.items()}
            ratio = t["on"] / t["off"]
            rows.append(Row(
                benchmark=f"predict p50, {n} record{'s' if n > 1 else ''}: capture on (log lines) vs off",
                measured=f"on {fmt_time(t['on'])} (+{fmt_time(max(t['on'] - t['off'], 0.0))})",
                baseline=f"off {fmt_time(t['off'])}",
                ratio=ratio, ratio_format="{:.2f}x",
                target="(capture's own cost; no AWS call)",
            ))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per handler per round (1 record; fewer for more)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--records", type=int, nargs="+", default=[1, 100, 1000], help="records per request")
    parser.add_argument("--model-dir", help="cache of the trained bundle: reused if it holds one, else trained into")
    args = parser.parse_args(argv)
    print(machine())
    with PenguinsWorld(args.model_dir) as world:
        print_table(run(world, args.calls, args.rounds, tuple(args.records)))


if __name__ == "__main__":
    main()
