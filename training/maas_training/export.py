"""Keras 3 -> ONNX, checked against onnxruntime before anything is published.

`tf2onnx.convert.from_keras` fails on Keras 3 models; what works (docs/training.md, "Keras 3 to ONNX") is
wrapping the model in a `tf.function` with an explicit input signature (dynamic batch) and converting
that with `from_function`. The output dict's key names the ONNX output. A conversion can "succeed"
and still give a graph onnxruntime refuses or computes differently, so the bytes are loaded in
onnxruntime and compared with Keras on the holdout matrix; a mismatch fails the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from maas_core.manifest import TensorInfo

INPUT_NAME = "features"  # a float32 feature matrix (tabular models)
TOKENS_INPUT_NAME = "tokens"  # int32 / int64 token ids (text models)
OUTPUT_NAME = "outputs"
OPSET = 17

_ORT_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int64)": "int64",
               "tensor(int32)": "int32", "tensor(string)": "str"}


class ParityError(RuntimeError):
    """The ONNX model does not reproduce the Keras model's outputs."""


@dataclass(frozen=True)
class ExportResult:
    onnx_bytes: bytes
    model_input: TensorInfo
    model_output: TensorInfo
    max_abs_diff: float
    max_scaled_diff: float  # |onnx - keras| / max(1, |keras|): the figure checked against the tolerance


def input_name_for(dtype: str) -> str:
    """The ONNX input's name: `tokens` for integer ids, `features` for a float32 matrix."""
    return TOKENS_INPUT_NAME if np.dtype(dtype).kind in "iu" else INPUT_NAME


def to_onnx(model: Any, n_features: int, opset: int = OPSET, dtype: str = "float32",
            input_name: str | None = None) -> bytes:
    """The model as ONNX bytes, input (None, n_features) of `dtype` (dynamic batch), output OUTPUT_NAME."""
    import tensorflow as tf
    import tf2onnx

    signature = (tf.TensorSpec((None, n_features), tf.as_dtype(dtype), name=input_name or input_name_for(dtype)),)

    @tf.function(input_signature=signature)
    def serve(inputs: Any) -> dict[str, Any]:
        return {OUTPUT_NAME: model(inputs, training=False)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=signature, opset=opset)
    return proto.SerializeToString()


def export_and_check(model: Any, x_check: np.ndarray, tolerance: float, opset: int = OPSET,
                     dtype: str = "float32", input_name: str | None = None) -> ExportResult:
    """Convert, load in onnxruntime, and compare with Keras on `x_check`; ParityError if they differ.

    `dtype` is the model input's type, the preprocessing spec's `output_dtype()`: float32 for a
    feature matrix, int32 / int64 for token ids (onnxruntime refuses any other integer type).
    """
    import onnxruntime as ort

    from maas_training.model import predict

    n_features = x_check.shape[1]
    input_name = input_name or input_name_for(dtype)
    onnx_bytes = to_onnx(model, n_features, opset, dtype=dtype, input_name=input_name)
    try:
        session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ParityError(f"the exported ONNX model does not load in onnxruntime: {exc}") from exc
    inp, out = session.get_inputs()[0], session.get_outputs()[0]
    model_input = TensorInfo(name=inp.name, dtype=_ORT_DTYPES.get(inp.type, inp.type), shape=_shape(inp.shape))
    model_output = TensorInfo(name=out.name, dtype=_ORT_DTYPES.get(out.type, out.type), shape=_shape(out.shape))
    if out.name != OUTPUT_NAME or inp.name != input_name or model_input.dtype != np.dtype(dtype).name:
        raise ParityError(f"unexpected ONNX signature: input {inp.name!r} {inp.type}, output {out.name!r}; "
                          f"expected input {input_name!r} {dtype}, output {OUTPUT_NAME!r}")

    x = np.ascontiguousarray(x_check, dtype=dtype)
    if x.dtype.kind in "iu" and not np.array_equal(x, x_check):  # e.g. int64 ids beyond int32
        raise ParityError(f"the check matrix ({x_check.dtype}) does not fit the model input type {dtype}")
    expected = predict(model, x)
    actual = np.asarray(session.run([OUTPUT_NAME], {inp.name: x})[0], dtype=np.float32).reshape(len(x), -1)
    if actual.shape != expected.shape:
        raise ParityError(f"ONNX output shape {actual.shape} differs from the Keras output shape {expected.shape}")
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    max_abs = float(diff.max()) if diff.size else 0.0
    max_scaled = float((diff / np.maximum(1.0, np.abs(expected))).max()) if diff.size else 0.0
    if not np.isfinite(max_scaled) or max_scaled > tolerance:
        raise ParityError(
            f"ONNX output differs from Keras by up to {max_scaled:.3g} (max abs diff {max_abs:.3g}) on "
            f"{len(x)} holdout rows; tolerance is {tolerance:g}. Nothing was published."
        )
    return ExportResult(onnx_bytes=onnx_bytes, model_input=model_input, model_output=model_output,
                        max_abs_diff=max_abs, max_scaled_diff=max_scaled)


def _shape(shape: list[Any]) -> list[int | None]:
    return [d if isinstance(d, int) else None for d in shape]
