"""Work the benchmarks run in a separate, fresh Python process. Run by path, not imported:

    python benchmarks/_child.py handler  --out R.json --function-dir functions/predict --event E.json
    python benchmarks/_child.py keras    --out R.json --model model.keras --row row.json
    python benchmarks/_child.py floor    --out R.json --bucket B --key K --row row.json
    python benchmarks/_child.py local    --out R.json --model model.onnx --row row.json
    python benchmarks/_child.py keras-latency --model model.keras --row row.json [--rows N]   (stdin/stdout loop)
    python benchmarks/_child.py train    --out DIR [--epochs N]

The cold-start modes import nothing at module level beyond the standard library (and nothing from
`benchmarks`); the handler mode takes the fake Lambda context (maas_local.lambda_context: `time` alone)
before its clock starts. So what they pay is what the measured code pays. Each writes a JSON result with
`time.time()` at the moment the first answer exists; the parent subtracts the time it started the
process. The process then leaves with os._exit: interpreter tear-down is not part of a cold start.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (VmHWM), in MB: what a Lambda's MemorySize must hold."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _finish(out: str, result: dict) -> None:
    result["end"] = time.time()
    result["peak_rss_mb"] = peak_rss_mb()
    Path(out).write_text(json.dumps(result))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def cold_handler(args: argparse.Namespace) -> None:
    """What the Lambda runtime does: put the function's code dir on sys.path, `import app`, call the handler."""
    from maas_local.lambda_context import FakeLambdaContext

    context = FakeLambdaContext("maas-bench-predict")
    t0 = time.perf_counter()
    sys.path.insert(0, args.function_dir)
    import app  # type: ignore[import-not-found]

    t1 = time.perf_counter()
    event = json.loads(Path(args.event).read_text())
    resp = app.lambda_handler(event, context)
    t2 = time.perf_counter()
    body = json.loads(resp["body"])
    if resp["statusCode"] != 200:
        raise SystemExit(f"predict answered {resp['statusCode']}: {body}")
    answer = {"label": body["predictions"][0]["label"]} if "predictions" in body else {"argmax": body["argmax"][0]}
    _finish(args.out, {"import": t1 - t0, "first_call": t2 - t1, **answer})


def cold_keras(args: argparse.Namespace) -> None:
    """The TensorFlow way: import TensorFlow/Keras, load the saved .keras model, predict one row."""
    t0 = time.perf_counter()
    import keras
    import numpy as np
    import tensorflow  # noqa: F401 - the backend keras loads anyway; imported explicitly, as a TF server would

    t1 = time.perf_counter()
    model = keras.saving.load_model(args.model)
    t2 = time.perf_counter()
    x = np.asarray([json.loads(Path(args.row).read_text())], dtype=np.float32)
    y = model.predict(x, verbose=0)
    t3 = time.perf_counter()
    _finish(args.out, {"import": t1 - t0, "load": t2 - t1, "first_call": t3 - t2, "argmax": int(y.argmax())})


def cold_floor(args: argparse.Namespace) -> None:
    """The floor: the least any Lambda serving an ONNX model from S3 does. numpy + onnxruntime + boto3, one S3
    client, one GET of the .onnx, a session from its bytes, one run (no registry, no validation, no checks)."""
    t0 = time.perf_counter()
    import boto3
    import numpy as np
    import onnxruntime as ort

    t1 = time.perf_counter()
    model = boto3.client("s3").get_object(Bucket=args.bucket, Key=args.key)["Body"].read()
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    t2 = time.perf_counter()
    x = np.asarray([json.loads(Path(args.row).read_text())], dtype=np.float32)
    y = session.run(None, {session.get_inputs()[0].name: x})[0]
    t3 = time.perf_counter()
    _finish(args.out, {"import": t1 - t0, "load": t2 - t1, "first_call": t3 - t2, "argmax": int(y.argmax())})


def cold_local(args: argparse.Namespace) -> None:
    """Below the floor: numpy + onnxruntime, a session from a local .onnx file, one run (no boto3, no S3)."""
    t0 = time.perf_counter()
    import numpy as np
    import onnxruntime as ort

    t1 = time.perf_counter()
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    t2 = time.perf_counter()
    x = np.asarray([json.loads(Path(args.row).read_text())], dtype=np.float32)
    y = session.run(None, {session.get_inputs()[0].name: x})[0]
    t3 = time.perf_counter()
    _finish(args.out, {"import": t1 - t0, "load": t2 - t1, "first_call": t3 - t2, "argmax": int(y.argmax())})


def keras_latency(args: argparse.Namespace) -> None:
    """A warm Keras process for the latency baseline. Reads `N` lines on stdin; answers each with one
    `RESULT {...}` line on stdout: per-call seconds of model.predict(x) and of model(x), N calls each, x being
    the row repeated --rows times; and the process's peak RSS in MB."""
    import keras
    import numpy as np

    model = keras.saving.load_model(args.model)
    x = np.asarray([json.loads(Path(args.row).read_text())] * max(1, args.rows), dtype=np.float32)
    for _ in range(20):  # warm-up: tf.function tracing, the predict loop's first-call set-up
        model.predict(x, verbose=0)
        model(x, training=False)
    print("READY", flush=True)
    for line in sys.stdin:
        n = int(line)
        predict, call = [], []
        for _ in range(n):
            t = time.perf_counter()
            model.predict(x, verbose=0)
            predict.append(time.perf_counter() - t)
            t = time.perf_counter()
            np.asarray(model(x, training=False))
            call.append(time.perf_counter() - t)
        print("RESULT " + json.dumps({"predict": predict, "call": call, "peak_rss_mb": peak_rss_mb()}), flush=True)


def train(args: argparse.Namespace) -> None:
    """The real training job on penguins, published to the moto server named by AWS_ENDPOINT_URL and
    promoted to `prod`; the trained Keras network (the one the job exported to ONNX) is saved as
    DIR/model.keras, and the published version written to DIR/published.json."""
    from maas_training import export
    from maas_training.datasets import penguins_config
    from maas_training.job import run

    out = Path(args.out)
    real_export = export.export_and_check

    def export_and_save(model, *a, **kw):  # the exact network the job converts: same weights, same graph
        result = real_export(model, *a, **kw)
        model.save(out / "model.keras")
        return result

    export.export_and_check = export_and_save  # job.run imports it from the module at call time
    overrides = {"promote": "prod"}
    if args.epochs:
        overrides["epochs"] = args.epochs
    manifest = run(penguins_config(**overrides), progress=lambda line: print(line, file=sys.stderr))
    (out / "published.json").write_text(json.dumps({"name": manifest.name, "version": manifest.version}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["handler", "keras", "floor", "local", "keras-latency", "train"])
    parser.add_argument("--out")
    parser.add_argument("--function-dir")
    parser.add_argument("--event")
    parser.add_argument("--model")
    parser.add_argument("--row")
    parser.add_argument("--bucket")
    parser.add_argument("--key")
    parser.add_argument("--epochs", type=int, default=0)
    parser.add_argument("--rows", type=int, default=1, help="keras-latency: rows per call")
    args = parser.parse_args()
    {"handler": cold_handler, "keras": cold_keras, "floor": cold_floor, "local": cold_local,
     "keras-latency": keras_latency,
     "train": train}[args.mode](args)


if __name__ == "__main__":
    main()
