"""One hostile request or file in a fresh process, on in-process moto: prints one JSON line
{"case", "status", "seconds", "peak_mb", "note"}. Run by benchmarks.hostile_requests, whose PYTHONPATH
decides which tree's maas (its test helpers in maas_local.testing, and functions/) is measured: this file
only drives it.

    python benchmarks/_hostile_child.py CASE
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
from moto import mock_aws

GOOD = {"x1": 1.5, "x2": -2, "colour": "blue"}
BUCKET, TABLE = "bench-models", "bench-registry"


class PeakRss:
    """The process's resident memory sampled every 2 ms while a block runs: its peak above the start."""

    def __init__(self) -> None:
        self.start = self.peak = self._rss()
        self._stop = threading.Event()

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> PeakRss:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def mb(self) -> float:
        return (self.peak - self.start) / 1e6


def world() -> None:
    from maas_local.testing.registry_table import create_registry_table

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    create_registry_table(TABLE)
    os.environ.update(MAAS_MODEL_BUCKET=BUCKET, MAAS_REGISTRY_TABLE=TABLE)


def stores() -> tuple[Any, Any]:
    from maas_core.registry import Registry
    from maas_core.store import BundleStore

    return BundleStore(BUCKET), Registry(TABLE)


def tiny() -> None:
    from maas_local.testing.tiny_model import publish_tiny_model

    publish_tiny_model(*stores())


def text() -> None:
    from maas_local.testing import text_model

    text_model.publish_text_model(*stores())


def wide(fields: int = 200) -> None:
    """A real 200-input softmax classifier (the explanation case)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from maas_core.manifest import TensorInfo
    from maas_core.preprocess import NumericFeature, PreprocessSpec
    from maas_local.testing.bundles import publish

    weights = np.random.default_rng(0).normal(size=(fields, 2)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "W"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
        "wide", [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, fields])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        initializer=[numpy_helper.from_array(weights, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    spec = PreprocessSpec(features=[NumericFeature(name=f"f{i}") for i in range(fields)])
    publish(*stores(), "wide", spec, model.SerializeToString(), ["no", "yes"],
            model_input=TensorInfo(name="features", dtype="float32", shape=[None, fields]),
            model_output=TensorInfo(name="probabilities", dtype="float32", shape=[None, 2]))


def http(function: str, path: str, raw_body: str, query: dict[str, str] | None = None,
         method: str = "POST") -> Run:
    from maas_local.lambda_context import FakeLambdaContext
    from maas_local.lambda_runtime import load_function
    from maas_local.testing.events import rest_event

    app = load_function(function)
    event = rest_event(method, path, raw_body=raw_body, query=query)

    def run() -> tuple[int, str]:
        resp = app.lambda_handler(event, FakeLambdaContext())
        body = resp.get("body") or ""
        return resp["statusCode"], f"{len(body)} byte answer: {body[:90]}"
    return run


def batch(key: str, data: bytes) -> Run:
    from maas_core.batch import run_batch
    from maas_core.predictor import Predictor
    from maas_core.settings import Settings

    s3 = boto3.client("s3")
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    predictor = Predictor.from_settings(Settings())

    def run() -> tuple[int, str]:
        try:
            result = run_batch(BUCKET, key, predictor)
        except Exception as exc:
            return 500, f"file failed: {type(exc).__name__}: {str(exc)[:80]}"
        out = s3.get_object(Bucket=BUCKET, Key=result.predictions_key)["Body"].read().count(b"\n")
        errs = s3.get_object(Bucket=BUCKET, Key=result.errors_key)["Body"].read().count(b"\n")
        return 200, f"{out} predictions + {errs} error lines"
    return run


def records(n: int, record: Any) -> str:
    return json.dumps({"records": [record] * n})


def csv_rows(n: int, stray_at: int | None = None) -> bytes:
    lines = ["x1,x2,colour"] + [f"{i % 5},1,{'red' if i % 2 else 'blue'}" for i in range(n)]
    if stray_at is not None:
        lines[stray_at] = '"3,1,red'
    return ("\n".join(lines) + "\n").encode()


Run = Callable[[], tuple[int, str]]
CASES: dict[str, tuple[str, Callable[[], Run]]] = {}


def case(name: str, description: str) -> Callable[[Callable[[], Run]], Callable[[], Run]]:
    """Register a case: a function that sets up its model and data and returns the call to measure."""
    def register(prepare: Callable[[], Run]) -> Callable[[], Run]:
        CASES[name] = (description, prepare)
        return prepare
    return register


def with_long_category(chars: int) -> str:
    return records(999, GOOD)[:-2] + ", " + json.dumps({**GOOD, "colour": "x" * chars}) + "]}"


@case("long-string", "predict: 999 records + one 200,000-character category")
def _long_string() -> Run:
    tiny()
    return http("predict", "/v1/models/tiny/predict", with_long_category(200_000))


@case("1mb-string", "predict: 999 records + one 1,000,000-character category")
def _1mb_string() -> Run:
    tiny()
    return http("predict", "/v1/models/tiny/predict", with_long_category(1_000_000))


@case("deep-json", "predict: JSON nested 100,000 deep")
def _deep_json() -> Run:
    tiny()
    return http("predict", "/v1/models/tiny/predict", '{"records": [' + "[" * 100_000 + "]" * 100_000 + "]}")


@case("huge-int", "predict: a 5,000-digit integer")
def _huge_int() -> Run:
    tiny()
    return http("predict", "/v1/models/tiny/predict", '{"records": [{"x1": ' + "9" * 5000 + ', "colour": "red"}]}')


@case("100k-records", "predict: 100,000 records that are not objects")
def _100k_records() -> Run:
    tiny()
    return http("predict", "/v1/models/tiny/predict", '{"records": [' + ",".join(["1"] * 100_000) + "]}")


@case("1m-records", "predict: 1,000,000 records that are not objects")
def _1m_records() -> Run:
    tiny()
    return http("predict", "/v1/models/tiny/predict", '{"records": [' + ",".join(["1"] * 1_000_000) + "]}")


@case("explain-wide", "predict ?explain=true: 1,000 records of a 200-field model")
def _explain_wide() -> Run:
    wide()
    return http("predict", "/v1/models/wide/predict", records(1000, {f"f{i}": float(i % 7) for i in range(200)}),
                query={"explain": "true"})


@case("nfkc-text", "predict (text): 5 MB of U+FDFA, which NFKC expands 18-fold")
def _nfkc_text() -> Run:
    text()
    return http("predict", "/v1/models/sentiment/predict",
                json.dumps({"records": ["\ufdfa" * 5_000_000]}, ensure_ascii=False))


@case("csv-long-cell", "batch: a 170 KB CSV with one 131,000-character cell")
def _csv_long_cell() -> Run:
    tiny()
    return batch("batch/input/tiny/long.csv", csv_rows(3000) + b"1,1," + b"y" * 131_000 + b"\n")


@case("csv-stray-quote", "batch: 10,000 CSV rows, a stray quote at row 10")
def _csv_stray_quote() -> Run:
    tiny()
    return batch("batch/input/tiny/quote.csv", csv_rows(10_000, stray_at=10))


@case("gzip-bomb", "batch: a 24 KB .gz inflating to 16 MiB of one repeated row")
def _gzip_bomb() -> Run:
    tiny()
    return batch("batch/input/tiny/bomb.csv.gz", gzip.compress(b"x1,x2,colour\n" + b"1,1,red\n" * (2 * 1024 * 1024), 9))


def main(case: str) -> None:
    description, prepare = CASES[case]
    with mock_aws():
        world()
        run = prepare()
        with PeakRss() as mem:
            started = time.perf_counter()
            status, note = run()
            seconds = time.perf_counter() - started
    print(json.dumps({"case": case, "description": description, "status": status, "seconds": round(seconds, 3),
                      "peak_mb": round(mem.mb, 1), "note": note}))


if __name__ == "__main__":
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.pop("AWS_ENDPOINT_URL", None)
    # the template's defaults: INFO logs, EMF metrics, capture of every prediction (Settings' default rate 1); the
    # parent reads only our '{"case"' line among the handlers' log, metric and capture lines
    for name, value in {"POWERTOOLS_SERVICE_NAME": "maas", "POWERTOOLS_LOG_LEVEL": "INFO",
                        "POWERTOOLS_METRICS_NAMESPACE": "maas", "MAAS_CAPTURE_RATE": "1"}.items():
        os.environ.setdefault(name, value)
    main(sys.argv[1])
