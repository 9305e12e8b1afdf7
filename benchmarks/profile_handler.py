"""Where the predict handler's time goes: cold start phases and warm per-request components.

Not part of the results table: it attributes the costs that the other benchmarks measure as a whole.

Cold (fresh processes, medians): interpreter start-up, `import app`, and, inside the first request,
boto3 client creation (DynamoDB, S3), the alias lookup, the bundle download + SHA-256 check, the
onnxruntime session, and the rest of the first call (the resolver's first-use set-up, preprocessing, ...);
plus the marginal import cost of each layer of the serving stack (numpy+onnxruntime, boto3, Powertools,
pydantic / OpenAPI validation, pydantic-settings, the rest of app).

Warm (in process, for 1 and for 1,000 records): the whole handler, then each piece it is made of, timed
on its own (round-robin over the pieces, medians over repeats): logger decorator + monitoring wrapper,
the Powertools resolver, request parsing + validation, preprocessing, onnxruntime, shaping predictions,
response serialisation.

    python -m benchmarks.profile_handler [--cold-repeats 5] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import (
    RECORD,
    ROOT,
    PenguinsWorld,
    child_env,
    fmt_time,
    handler_stdout,
    load_predict_handler,
    machine,
    predict_event,
)
from benchmarks.preprocess_spec import make_records

COLD_PHASES = r"""
import json, sys, time
from maas_local.lambda_context import FakeLambdaContext  # `time` alone: before the clock starts
T = time.perf_counter
t0 = T()
sys.path.insert(0, sys.argv[1])
import app
ph = {"import app": T() - t0}
def tick(name, fn):
    t = T(); r = fn(); ph[name] = T() - t; return r
from maas_core import aws
p = tick("settings + Predictor", app.predictor)
tick("boto3 client: dynamodb", lambda: aws.client("dynamodb"))
tick("boto3 client: s3", lambda: aws.client("s3"))
target = tick("alias lookup (DynamoDB GetItem)", lambda: p.alias_target("penguins", "prod"))
store_seconds = []  # the model cache's own S3 reads (manifest, then the files it serves), hash checks included
def timed(fn):
    def call(*a, **kw):
        t = T(); r = fn(*a, **kw); store_seconds.append(T() - t); return r
    return call
p.store.load_manifest, p.store.load = timed(p.store.load_manifest), timed(p.store.load)
tick("model load (ModelCache.get)", lambda: p.cache.get("penguins", target.version, p.store))
ph["  of which bundle download (3 S3 GETs) + SHA-256"] = sum(store_seconds)
ph["  of which spec + onnxruntime session"] = ph["model load (ModelCache.get)"] - sum(store_seconds)
ctx = FakeLambdaContext("bench")
event = json.loads(open(sys.argv[2]).read())
resp = tick("rest of the first call (resolver set-up, validation, predict, metrics)",
            lambda: app.lambda_handler(event, ctx))
assert resp["statusCode"] == 200, resp
tick("second call", lambda: app.lambda_handler(event, ctx))
print("PHASES " + json.dumps(ph))
"""

IMPORT_LAYERS = [
    ("numpy + onnxruntime", "import numpy, onnxruntime"),
    ("+ boto3", "import boto3"),
    ("+ Powertools Logger, REST resolver", ("from aws_lambda_powertools import Logger\n"
                                            "from aws_lambda_powertools.event_handler import APIGatewayRestResolver")),
    ("+ pydantic, Powertools OpenAPI validation",
     "import pydantic\nfrom aws_lambda_powertools.event_handler.openapi.params import Query"),
    ("+ pydantic-settings", "import pydantic_settings"),
    ("+ Powertools metrics (EMF)", ("from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch "
                                    "import AmazonCloudWatchEMFProvider")),
    ("+ the rest of app (maas_core, routes)", "import app"),
]


def cold(world: PenguinsWorld, repeats: int, layer_repeats: int = 11) -> None:
    fdir = ROOT / "functions" / "predict"
    with tempfile.TemporaryDirectory(prefix="maas-prof-") as tmp:
        event = Path(tmp) / "event.json"
        event.write_text(json.dumps(predict_event([RECORD])))
        runs: list[dict[str, float]] = []
        layer_times: dict[str, list[float]] = {name: [] for name, _ in IMPORT_LAYERS}
        for _ in range(repeats + 1):
            start = time.time()
            proc = subprocess.run([sys.executable, "-c", COLD_PHASES + "\nprint('END', time.time())", str(fdir),
                                   str(event)],
                                  env=child_env(), cwd=tmp, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr[-3000:])
            lines = {ln.split(" ", 1)[0]: ln.split(" ", 1)[1] for ln in proc.stdout.splitlines()
                     if ln.startswith(("PHASES ", "END "))}
            phases = json.loads(lines["PHASES"])
            phases["total to first answer (excl. second call)"] = float(lines["END"]) - start - phases["second call"]
            runs.append(phases)
        runs = runs[1:]  # the first warms the OS file cache
        for _ in range(layer_repeats + 1):
            for n in range(len(IMPORT_LAYERS)):  # cumulative layers: each process imports layers 0..n
                code = "\n".join(c for _, c in IMPORT_LAYERS[:n + 1])
                prog = (f"import sys, time\nsys.path.insert(0, {str(fdir)!r})\nt = time.perf_counter()\n{code}\n"
                        "print(time.perf_counter() - t)")
                out = subprocess.run([sys.executable, "-c", prog], env=child_env(), cwd=tmp, capture_output=True,
                                     text=True, check=False)
                layer_times[IMPORT_LAYERS[n][0]].append(float(out.stdout.strip().splitlines()[-1]))
    print(f"cold start of the predict handler, medians of {repeats} fresh processes:")
    for key in runs[0]:
        print(f"  {statistics.median(r[key] for r in runs) * 1e3:8.1f} ms  {key}")
    print(f"  marginal import cost of each layer of the stack (medians of {layer_repeats} fresh processes per layer, "
          f"each importing every layer up to it; differences of medians, so +-20 ms is noise):")
    prev = 0.0
    for name, _ in IMPORT_LAYERS:
        m = statistics.median(layer_times[name][1:])
        print(f"    {m * 1e3:7.1f} ms total  {(m - prev) * 1e3:+7.1f} ms  {name}")
        prev = m


def components(world: PenguinsWorld, n_records: int, repeats: int, batch: int) -> None:
    import pydantic

    from maas_core.edge.http import json_response, resolve, serialized_json_response
    from maas_core.edge.predict_requests import resolve_monitored
    from maas_core.predictor import PredictResponse, shape_predictions
    from maas_core.schemas import PredictRequest
    from maas_local.lambda_context import FakeLambdaContext

    app = load_predict_handler()
    ctx = FakeLambdaContext()
    records = [RECORD] if n_records == 1 else make_records(n_records, seed=1)
    event = predict_event(records)
    body = event["body"]
    with handler_stdout():
        assert app.lambda_handler(event, ctx)["statusCode"] == 200
        p = app.predictor()
        route = p.route("penguins", None, None, "127.0.0.1")
        model = p.load("penguins", route.version)
        x = model.spec.transform(records)
        outputs = model.run(x)
        outcome = p.predict("penguins", records, routing_key="127.0.0.1")
        response = outcome.response
        dumped = response.model_dump(mode="json", exclude_none=True)
        request = PredictRequest.model_validate(json.loads(body))
        any_dict = pydantic.TypeAdapter(dict[str, Any])
        monitor = app.monitor()

        pieces: dict[str, Callable[[], Any]] = {
            "whole handler (lambda_handler)": lambda: app.lambda_handler(event, ctx),
            "  minus logger decorator: resolve_monitored(app)": lambda: resolve_monitored(app.app, event, ctx, monitor),
            "  minus monitoring: maas_core.edge.http.resolve(app)": lambda: resolve(app.app, event, ctx),
            "  json.loads(body)": lambda: json.loads(body),
            "  request validation: PredictRequest.model_validate(json)": lambda: PredictRequest.model_validate(
                json.loads(body)),
            "  repr(request) (Powertools debug f-string)": lambda: repr(request),
            "  predictor.predict (route, transform, run, shape)": lambda: p.predict("penguins", records,
                                                                                     routing_key="127.0.0.1"),
            "    route (alias, TTL cached)": lambda: p.route("penguins", None, None, "127.0.0.1"),
            "    spec.transform": lambda: model.spec.transform(records),
            "    session.run": lambda: model.run(x),
            "    shape_predictions (a dict per record)": lambda: shape_predictions(model, outputs),
            "    PredictResponse.model_validate (all predictions, one call)": lambda: PredictResponse.model_validate(
                {"model": "penguins", "version": "1", "predictions": shape_predictions(model, outputs)}),
            "  monitor().record (label counts, capture, EMF)": lambda: monitor.record(200, time.perf_counter(),
                                                                                   outcome),
            "  serialized_json_response: model_dump_json (what predict does)": lambda: serialized_json_response(
                response),
            "  before: json_response: model_dump(mode=json)": lambda: json_response(response),
            "  before: Powertools response validation (dict[str, Any])": lambda: any_dict.dump_python(
                any_dict.validate_python(dumped), mode="json"),
            "  before: json.dumps(response dict)": lambda: json.dumps(dumped, separators=(",", ":")),
            "  alternative: PredictResponse.model_construct": lambda: PredictResponse.model_construct(**dict(response)),
        }
        times: dict[str, list[float]] = {k: [] for k in pieces}
        for _ in range(repeats):
            for name, fn in pieces.items():
                t = time.perf_counter()
                for _ in range(batch):
                    fn()
                times[name].append((time.perf_counter() - t) / batch)
    print(f"warm handler, {n_records} record(s) per request: median per call over {repeats} x {batch} calls "
          f"(pieces timed on their own, round-robin):")
    for name, ts in times.items():
        print(f"  {fmt_time(statistics.median(ts)):>10}  {name}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold-repeats", type=int, default=5)
    parser.add_argument("--model-dir", help="cache of the trained bundle: reused if it holds one, else trained into")
    args = parser.parse_args(argv)
    print(machine())
    with PenguinsWorld(args.model_dir) as world:
        cold(world, args.cold_repeats)
        print()
        components(world, 1, repeats=30, batch=100)
        print()
        components(world, 1000, repeats=15, batch=2)


if __name__ == "__main__":
    main()
