"""The INT8 variant: the exported float ONNX model, dynamically quantized, checked before it is published.

    outcome = quantize_variant(float_bytes, x_test, y_test, task, max_metric_drop=0.02)
    outcome.onnx_bytes   # model.int8.onnx, or None (outcome.reason says why; the float model still publishes)

`onnxruntime.quantization.quantize_dynamic` stores the weights of MatMul, LSTM and Gather (embedding)
nodes as int8 and quantizes activations on the fly, so it needs no calibration data. It can produce a
graph that onnxruntime refuses or that aborts the process when loaded (docs/training.md: seen on a GRU `Loop`
graph), so the quantized bytes are first loaded and run in a child process; only then does this
process open a session, evaluate the variant on the same holdout as the float model (the same metric
code), and measure its parity with the float ONNX model (largest absolute difference of the
probabilities or values; the share of identical labels). A variant whose headline metric (accuracy,
or R^2 for a regression) falls more than `max_metric_drop` below the float model's is not published.
"""

from __future__ import annotations

import logging  # only to filter a message onnxruntime.quantization logs on the root logger
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maas_core.manifest import DEFAULT_VARIANT, INT8_MODEL_FILE, MODEL_FILE, Variant
from maas_training.evaluate import classification_metrics, probabilities, regression_metrics

# the node types dynamic quantization handles that our exports contain: Dense -> MatMul, the fused LSTM,
# and Embedding -> Gather; anything else (Add, Softmax, ...) stays float
OP_TYPES = ("MatMul", "LSTM", "Gather")
LOAD_TIMEOUT_SECONDS = 120.0
_SMOKE_ROWS = 16

# run in a child process: a graph that aborts onnxruntime on load or first run kills the child, not the job
_CHILD = """
import sys
import numpy as np
import onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
session.run(None, {session.get_inputs()[0].name: x})
"""


class _NoPreprocessHint(logging.Filter):
    # quantize_dynamic logs a hint to run quant_pre_process (shape inference for big vision graphs) on the
    # root logger at every call; our small exported graphs have their shapes already
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


class QuantizationError(RuntimeError):
    """The quantized model could not be produced or does not load."""


@dataclass(frozen=True)
class QuantizeOutcome:
    onnx_bytes: bytes | None  # the INT8 model to publish, or None
    float_size: int
    metrics: dict[str, float] = field(default_factory=dict)  # the INT8 model's holdout metrics
    float_metrics: dict[str, float] = field(default_factory=dict)  # the float ONNX model's, on the same rows
    parity: dict[str, float] = field(default_factory=dict)  # max_abs_diff, label_agreement (classifiers)
    reason: str | None = None  # why there is no variant to publish

    @property
    def published(self) -> bool:
        return self.onnx_bytes is not None

    def summary(self) -> str:
        if self.onnx_bytes is None:
            return f"INT8 variant not published: {self.reason}"
        drop = {k: self.metrics[k] - self.float_metrics[k] for k in self.metrics if k in self.float_metrics}
        return (f"INT8 variant: {len(self.onnx_bytes) / 1024:.1f} KB (float {self.float_size / 1024:.1f} KB), "
                + " ".join(f"{k}={v:.4g}" for k, v in self.parity.items()) + "; "
                + " ".join(f"{k} {v:+.4g}" for k, v in drop.items()))


def headline_metric(task: str) -> str:
    """The metric the drop tolerance applies to."""
    return "r2" if task == "regression" else "accuracy"


def quantize(float_bytes: bytes) -> bytes:
    """Dynamic INT8 quantization (QInt8 weights) of MatMul / LSTM / Gather nodes."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="maas-quantize-") as tmp:
        out = Path(tmp) / "model.int8.onnx"
        hint = _NoPreprocessHint()
        logging.getLogger().addFilter(hint)
        try:
            quantize_dynamic(onnx.load_from_string(float_bytes), out, op_types_to_quantize=list(OP_TYPES),
                             weight_type=QuantType.QInt8)
        except Exception as exc:
            raise QuantizationError(f"quantize_dynamic failed: {type(exc).__name__}: {exc}") from exc
        finally:
            logging.getLogger().removeFilter(hint)
        return out.read_bytes()


def check_loads_in_subprocess(onnx_bytes: bytes, sample: np.ndarray, timeout: float = LOAD_TIMEOUT_SECONDS) -> None:
    """Load the model and run `sample` through it in a fresh interpreter; QuantizationError if that fails."""
    with tempfile.TemporaryDirectory(prefix="maas-quantize-") as tmp:
        model_path, sample_path = Path(tmp) / "model.onnx", Path(tmp) / "sample.npy"
        model_path.write_bytes(onnx_bytes)
        np.save(sample_path, sample)
        try:
            done = subprocess.run([sys.executable, "-c", _CHILD, str(model_path), str(sample_path)],
                                  capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise QuantizationError(f"loading the quantized model took over {timeout:g} s") from exc
    if done.returncode != 0:
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit code {done.returncode}"
        tail = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise QuantizationError(f"onnxruntime cannot load or run the quantized model ({how}): {tail}")


def run_session(session: object, x: np.ndarray) -> np.ndarray:
    inp = session.get_inputs()[0]  # type: ignore[attr-defined]
    out = session.run(None, {inp.name: x})  # type: ignore[attr-defined]
    return np.asarray(out[0], np.float64).reshape(len(x), -1)


def holdout_metrics(task: str, y_true: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
    """The training job's metrics (maas_training.evaluate) of raw model outputs."""
    if task == "regression":
        return regression_metrics(y_true, outputs[:, 0])
    return classification_metrics(y_true, probabilities(task, outputs))


def parity(task: str, float_outputs: np.ndarray, int8_outputs: np.ndarray) -> dict[str, float]:
    """INT8 against float on the same rows: the largest probability (or value) difference, label agreement."""
    if task == "regression":
        return {"max_abs_diff": float(np.max(np.abs(int8_outputs - float_outputs), initial=0.0))}
    p_float, p_int8 = probabilities(task, float_outputs), probabilities(task, int8_outputs)
    return {"max_abs_diff": float(np.max(np.abs(p_int8 - p_float), initial=0.0)),
            "label_agreement": float(np.mean(p_int8.argmax(axis=1) == p_float.argmax(axis=1))) if len(p_float) else 1.0}


def quantize_variant(float_bytes: bytes, x_test: np.ndarray, y_test: np.ndarray, task: str,
                     max_metric_drop: float = 0.02) -> QuantizeOutcome:
    """Quantize, prove the result loads (child process), evaluate it on the holdout next to the float model.

    `x_test` must already have the model input's dtype. Never raises for a bad variant: the outcome
    carries the reason instead, so the float model is published either way.
    """
    import onnxruntime as ort

    x = np.ascontiguousarray(x_test)
    try:
        int8_bytes = quantize(float_bytes)
        check_loads_in_subprocess(int8_bytes, x[:_SMOKE_ROWS])
        int8_session = ort.InferenceSession(int8_bytes, providers=["CPUExecutionProvider"])
    except QuantizationError as exc:
        return QuantizeOutcome(None, len(float_bytes), reason=str(exc))
    except Exception as exc:
        return QuantizeOutcome(None, len(float_bytes), reason=f"onnxruntime refused the quantized model: {exc}")
    float_session = ort.InferenceSession(float_bytes, providers=["CPUExecutionProvider"])
    float_out, int8_out = run_session(float_session, x), run_session(int8_session, x)
    float_metrics = holdout_metrics(task, y_test, float_out)
    metrics = holdout_metrics(task, y_test, int8_out)
    checks = parity(task, float_out, int8_out)
    outcome = QuantizeOutcome(int8_bytes, len(float_bytes), metrics, float_metrics, checks)
    key = headline_metric(task)
    drop = float_metrics[key] - metrics[key]
    if not np.isfinite(metrics[key]) or drop > max_metric_drop:
        return QuantizeOutcome(None, len(float_bytes), metrics, float_metrics, checks,
                               reason=f"holdout {key} {metrics[key]:.4g} vs float {float_metrics[key]:.4g} drops "
                                      f"by {drop:.4g}, more than the tolerance {max_metric_drop:g}")
    return outcome


def build_variants(enabled: bool, max_metric_drop: float, float_bytes: bytes, x_test: np.ndarray,
                   y_test: np.ndarray, task: str, float_metrics: dict[str, float],
                   progress: Callable[[str], None]) -> tuple[dict[str, Variant], dict[str, bytes], dict[str, Any]]:
    """What the training job publishes: the manifest's variants, their files, and a record for `training`.

    float is always a variant (model.onnx, the job's holdout metrics); int8 only when it passes."""
    variants = {DEFAULT_VARIANT: Variant.of(MODEL_FILE, float_bytes, float_metrics)}
    if not enabled:
        return variants, {}, {"int8": {"published": False, "reason": "quantization is off in the training config"}}
    outcome = quantize_variant(float_bytes, x_test, y_test, task, max_metric_drop)
    progress(outcome.summary())
    record: dict[str, Any] = {"published": outcome.published, "op_types": list(OP_TYPES), "weight_type": "QInt8",
                              "max_metric_drop": max_metric_drop}
    if outcome.reason:
        record["reason"] = outcome.reason
    if not outcome.published or outcome.onnx_bytes is None:
        return variants, {}, {"int8": record}
    variants["int8"] = Variant.of(INT8_MODEL_FILE, outcome.onnx_bytes, outcome.metrics, outcome.parity)
    return variants, {INT8_MODEL_FILE: outcome.onnx_bytes}, {"int8": record}
