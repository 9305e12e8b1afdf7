"""The two sides of the batch throughput benchmark, each run in its own fresh process (by path, not imported
as part of `benchmarks`, so its peak RSS is its own):

    python benchmarks/_batch_child.py handler --function-dir functions/batch --bucket B --key K --out R.json
    python benchmarks/_batch_child.py floor --model-dir DIR --rows N --chunk-rows C --out R.json

`handler` does what the Lambda runtime does with the S3 event of the uploaded file: imports app.py from the
function's folder and calls lambda_handler (S3 read, parsing, validation, preprocessing, onnxruntime, the
predictions and errors files written back to S3). `floor` generates the same rows in memory (not timed),
then times only spec.transform_columns + session.run over them, chunk by chunk. Both report wall seconds
and the process's peak resident set size (VmHWM) after imports and at the end.

`make_columns` (also used by the parent to write the CSV) builds penguins-like rows, vectorised.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

FIELDS = ("island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex")


def make_columns(n: int, seed: int = 7) -> dict[str, Any]:
    """n penguins-like raw rows as columns of strings (what a CSV holds): three islands; measurements drawn
    around each species' means; sex male / female, missing in 4% of rows ("" = missing)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    species = rng.integers(0, 3, n)
    means = np.array([[38.8, 18.3, 190.0, 3700.0], [48.8, 18.4, 195.8, 3733.0], [47.5, 15.0, 217.2, 5076.0]])
    sds = np.array([[2.7, 1.2, 6.5, 459.0], [3.3, 1.1, 7.1, 384.0], [3.1, 1.0, 6.5, 504.0]])
    values = means[species] + rng.standard_normal((n, 4)) * sds[species]
    return {
        "island": np.array(["Biscoe", "Dream", "Torgersen"])[rng.integers(0, 3, n)],
        "bill_length_mm": values[:, 0].round(1).astype(str),
        "bill_depth_mm": values[:, 1].round(1).astype(str),
        "flipper_length_mm": values[:, 2].round(0).astype(np.int64).astype(str),
        "body_mass_g": (values[:, 3] // 25 * 25).astype(np.int64).astype(str),
        "sex": np.array(["male", "female", ""])[rng.choice(3, n, p=[0.48, 0.48, 0.04])],
    }


def csv_bytes(columns: dict[str, Any]) -> bytes:
    cols = [columns[f] for f in FIELDS]
    lines = [",".join(FIELDS)] + [",".join(row) for row in zip(*(c.tolist() for c in cols), strict=True)]
    return ("\n".join(lines) + "\n").encode()


def _rss_mb() -> float:
    """Peak resident set size of this process so far, MB. VmHWM, not ru_maxrss: Linux carries ru_maxrss
    over exec from the parent at fork time (here the moto server holding the whole file), VmHWM is this
    process's own."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # elsewhere: KiB (Linux) as a fallback


def handler(args: argparse.Namespace) -> dict[str, Any]:
    from maas_local.lambda_context import FakeLambdaContext

    sys.path.insert(0, args.function_dir)
    import app  # type: ignore[import-not-found]

    rss_imports = _rss_mb()
    event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                          "s3": {"bucket": {"name": args.bucket}, "object": {"key": args.key}}}]}
    context = FakeLambdaContext("maas-bench-batch", memory_limit_in_mb=2048, remaining_ms=900_000,  # the template's
                                aws_request_id="00000000-0000-0000-0000-000000000001", counting_down=True)  # 900 s
    t = time.perf_counter()
    out = app.lambda_handler(event, context)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "rss_after_imports_mb": rss_imports, "peak_rss_mb": _rss_mb(), "result": out}


def floor(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    from maas_core.preprocess import PreprocessSpec

    spec = PreprocessSpec.from_json((Path(args.model_dir) / "preprocess.json").read_bytes())
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(Path(args.model_dir) / "model.onnx"), options,
                                   providers=["CPUExecutionProvider"])
    inp, out = session.get_inputs()[0].name, session.get_outputs()[0].name
    rss_imports = _rss_mb()
    columns = make_columns(args.rows)  # the rows already in memory: not timed
    raw = {k: [None if v == "" else v for v in col.tolist()] for k, col in columns.items()}
    del columns
    n, step = args.rows, args.chunk_rows
    t = time.perf_counter()
    labels = 0
    for start in range(0, n, step):
        chunk = {k: v[start:start + step] for k, v in raw.items()}
        scores = session.run([out], {inp: spec.transform_columns(chunk)})[0]
        labels += int(np.argmax(scores, axis=1).size)
    seconds_transform_run = time.perf_counter() - t
    matrix = np.concatenate([spec.transform_columns({k: v[s:s + step] for k, v in raw.items()})
                             for s in range(0, n, step)])  # features already in memory: not timed
    t = time.perf_counter()
    for start in range(0, n, step):
        session.run([out], {inp: matrix[start:start + step]})
    seconds_run = time.perf_counter() - t
    return {"seconds": seconds_transform_run, "seconds_session_run": seconds_run, "rows": labels,
            "rss_after_imports_mb": rss_imports, "peak_rss_mb": _rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["handler", "floor"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--function-dir")
    parser.add_argument("--bucket")
    parser.add_argument("--key")
    parser.add_argument("--model-dir")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--chunk-rows", type=int, default=5000)
    args = parser.parse_args()
    result = handler(args) if args.mode == "handler" else floor(args)
    Path(args.out).write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
