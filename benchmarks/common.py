"""Timing helpers shared by the benchmarks: medians over repeats, a printed table, and the trained
penguins model on a loopback moto server (`PenguinsWorld`) that the serving benchmarks measure."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from maas_local.env import EnvPatch

ROOT = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).resolve().parent / "_child.py"


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of the values, linear interpolation (numpy's default)."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def fmt_time(seconds: float) -> str:
    """1.23 s / 45.6 ms / 0.321 ms / 12.3 us: three significant figures in a readable unit."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        ms = seconds * 1e3
        return f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"
    if seconds >= 1e-4:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.1f} us"


@dataclass
class Row:
    benchmark: str
    measured: str
    baseline: str
    ratio: float
    target: str = ""
    passed: bool | None = None  # None: no pass/fail target
    ratio_format: str = "{:.1f}x"

    @property
    def met(self) -> str:
        return "" if self.passed is None else ("yes" if self.passed else "NO")

    @property
    def ratio_text(self) -> str:
        return self.ratio_format.format(self.ratio)


def machine() -> str:
    return (f"{platform.python_implementation()} {platform.python_version()}, numpy {np.__version__}, "
            f"{os.cpu_count()} CPUs, {platform.machine()}")


def versions() -> dict[str, str]:
    """Versions of what the serving path and the baselines run on (read from metadata: nothing heavy is imported)."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("numpy", "onnxruntime", "aws-lambda-powertools", "pydantic", "boto3", "moto", "tensorflow-cpu",
                 "keras"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def print_table(rows: list[Row]) -> None:
    headers = ("benchmark", "measured", "baseline", "ratio", "target", "met")
    cells = [headers] + [(r.benchmark, r.measured, r.baseline, r.ratio_text, r.target, r.met) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(headers))]
    for n, c in enumerate(cells):
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def markdown_table(rows: list[Row]) -> str:
    lines = ["| benchmark | measured | baseline | ratio | target | met |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.benchmark} | {r.measured} | {r.baseline} | {r.ratio_text} | {r.target} | {r.met} |" for r in rows]
    return "\n".join(lines)


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a fresh child process: this one's (moto endpoint, fake credentials), quiet TensorFlow."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


# --- the trained penguins model on a loopback moto server --------------------------------------------

MODEL = "penguins"
BUNDLE_FILES = ("manifest.json", "model.onnx", "preprocess.json")


class PenguinsWorld:
    """A LocalStack (moto server on 127.0.0.1) holding the penguins model, promoted to `prod`.

    The model is trained once per run by the real training job (`maas_training.job.run`), in a child
    process so that TensorFlow never enters this one; the job publishes to the moto server. The bundle
    files and the trained Keras network (`model.keras`, the network the job exported) are cached in
    `self.dir` (a temp dir unless `model_dir` is given). With a `model_dir` that already holds them,
    nothing is trained: the cached bundle is published to the fresh moto server instead.

    While open, os.environ points boto3 at the moto server and names the bucket and table in MAAS_*, with the
    template's default configuration (metrics and capture on): every serving benchmark measures what a deployed
    stack runs, capture's log lines included (benchmarks.capture_overhead measures their own cost).
    """

    def __init__(self, model_dir: str | Path | None = None, epochs: int = 0, quiet: bool = True) -> None:
        self.model_dir = Path(model_dir) if model_dir else None
        self.epochs = epochs
        self.quiet = quiet
        self.stack: Any = None
        self.dir = Path()
        self.version = ""
        self.train_seconds = 0.0
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._env = EnvPatch()

    # -- lifecycle --
    def __enter__(self) -> Self:
        from maas_local.stack import LocalStack

        if self.model_dir:
            self.dir = self.model_dir
            self.dir.mkdir(parents=True, exist_ok=True)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="maas-bench-")
            self.dir = Path(self._tmp.name)
        self.stack = LocalStack().start()
        try:
            self._set_env({"MAAS_MODEL_BUCKET": self.stack.names["ModelBucket"],
                           "MAAS_REGISTRY_TABLE": self.stack.names["RegistryTable"],
                           # the template's defaults: INFO logs, EMF metrics and capture of every prediction on
                           "POWERTOOLS_SERVICE_NAME": "maas", "POWERTOOLS_LOG_LEVEL": "INFO",
                           "POWERTOOLS_METRICS_NAMESPACE": "maas", "MAAS_CAPTURE_RATE": "1"})
            if all((self.dir / f).exists() for f in (*BUNDLE_FILES, "model.keras")):
                self._publish_cached()
            else:
                self._train()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._env.restore()
        if self.stack is not None:
            self.stack.stop()
            self.stack = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _set_env(self, values: dict[str, str]) -> None:
        self._env.apply(values)

    # -- the model --
    def _train(self) -> None:
        from maas_core.store import BundleStore

        start = time.perf_counter()
        cmd = [sys.executable, str(CHILD), "train", "--out", str(self.dir)]
        if self.epochs:
            cmd += ["--epochs", str(self.epochs)]
        proc = subprocess.run(cmd, env=child_env(), cwd=ROOT, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"training the penguins model failed:\n{proc.stderr[-4000:]}")
        self.train_seconds = time.perf_counter() - start
        self.version = json.loads((self.dir / "published.json").read_text())["version"]
        bundle = BundleStore(os.environ["MAAS_MODEL_BUCKET"]).load(MODEL, self.version)  # hashes checked
        for name, data in bundle.files.items():
            (self.dir / name).write_bytes(data)
        (self.dir / "manifest.json").write_text(bundle.manifest.model_dump_json(indent=2))

    def _publish_cached(self) -> None:
        from maas_core.manifest import Manifest
        from maas_core.registry import Registry
        from maas_core.store import BundleStore

        manifest = Manifest.model_validate_json((self.dir / "manifest.json").read_text())
        registry = Registry(os.environ["MAAS_REGISTRY_TABLE"])
        store = BundleStore(os.environ["MAAS_MODEL_BUCKET"])
        self.version = registry.next_version(MODEL)
        files = {name: (self.dir / name).read_bytes() for name in manifest.files}
        published = store.publish(manifest.model_copy(update={"version": self.version}), files)
        registry.register(published)
        registry.set_alias(MODEL, "prod", self.version)

    # -- what the benchmarks need --
    @property
    def onnx_path(self) -> Path:
        return self.dir / "model.onnx"

    @property
    def bucket(self) -> str:
        return str(os.environ["MAAS_MODEL_BUCKET"])

    @property
    def onnx_key(self) -> str:
        """The S3 key of the published version's float model (what the handler serves)."""
        from maas_core.manifest import DEFAULT_VARIANT
        from maas_core.store import bundle_prefix

        file = self.manifest().variant_file(DEFAULT_VARIANT)
        return bundle_prefix(MODEL, self.version) + str(file)

    @property
    def keras_path(self) -> Path:
        return self.dir / "model.keras"

    def spec(self) -> Any:
        from maas_core.preprocess import PreprocessSpec

        return PreprocessSpec.from_json((self.dir / "preprocess.json").read_bytes())

    def manifest(self) -> Any:
        from maas_core.manifest import Manifest

        return Manifest.model_validate_json((self.dir / "manifest.json").read_text())

    def session(self) -> Any:
        """An onnxruntime session built the way the serving model cache builds it."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(str(self.onnx_path), options, providers=["CPUExecutionProvider"])

    def write_row(self, record: dict[str, Any], path: Path) -> list[float]:
        """The prepared (preprocessed) feature row of a record, written as JSON for a child process."""
        row = self.spec().transform([record])[0].astype(float).tolist()
        path.write_text(json.dumps(row))
        return row


# a typical caller's record: all fields, one optional field present
RECORD = {"island": "Biscoe", "bill_length_mm": 48.6, "bill_depth_mm": 16.0, "flipper_length_mm": 230.0,
          "body_mass_g": 5800.0, "sex": "male"}


def predict_event(records: list[Any], **kwargs: Any) -> dict[str, Any]:
    """An API Gateway REST proxy event for POST /v1/models/penguins/predict."""
    from maas_local.testing.events import rest_event

    return rest_event("POST", f"/v1/models/{MODEL}/predict", {"records": records},
                      resource="/v1/models/{model}/predict", path_params={"model": MODEL}, **kwargs)


def load_predict_handler() -> Any:
    """functions/predict/app.py, imported in this process (as the tests and the local gateway do)."""
    from maas_local.lambda_runtime import load_function

    return load_function("predict")


@contextlib.contextmanager
def handler_stdout() -> Iterator[None]:
    """While handlers run in this process: their stdout (log lines, EMF metrics, capture lines; CloudWatch Logs on
    Lambda) goes to /dev/null, still written, so it is paid for, but it stays out of the benchmark's output."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def timed_handler_calls(handler: Any, event: dict[str, Any], calls: int) -> list[float]:
    """Seconds of each of `calls` invocations of a function module's lambda_handler with `event` (one fake
    Lambda context); any answer but 200 stops the benchmark with the answer."""
    from maas_local.lambda_context import FakeLambdaContext

    context = FakeLambdaContext()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        response = handler.lambda_handler(event, context)
        times.append(time.perf_counter() - start)
        if response["statusCode"] != 200:
            raise RuntimeError(f"{event['path']} answered {response['statusCode']}: {response['body'][:500]}")
    return times
