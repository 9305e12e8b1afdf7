"""The feeds of one onnxruntime call: the preprocessing spec's matrix as the graph's input(s).

A model takes the whole matrix as one input (manifest.model_input), or, an external graph exported with
one input per column (skl2onnx's convention for a pipeline over named columns), one input per field:
column j of the matrix feeds manifest.model_inputs[j], cast to that input's element type and shaped to its
declared rank, (rows, 1) or (rows,). Strings
stay Python strings in an object array (onnxruntime's tensor(string)); numbers fed to an integer input
are rounded to the nearest integer first (a baseline mean is rarely whole).
"""

from __future__ import annotations

import numpy as np

from maas_core.manifest import Manifest, TensorInfo

STRING = "string"  # TensorInfo.dtype of a tensor(string) input


def graph_feeds(manifest: Manifest, matrix: np.ndarray) -> dict[str, np.ndarray]:
    """{input name: array} for `matrix`, the spec's output for some records."""
    return feeds(manifest.model_input, manifest.model_inputs, matrix)


def feeds(model_input: TensorInfo, model_inputs: list[TensorInfo], matrix: np.ndarray) -> dict[str, np.ndarray]:
    if not model_inputs:
        return {model_input.name: matrix.astype(model_input.dtype, copy=False)}
    return {inp.name: column(matrix[:, j:j + 1] if len(inp.shape) != 1 else matrix[:, j], inp.dtype)
            for j, inp in enumerate(model_inputs)}


def column(values: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == STRING:
        return values.astype(object)
    if np.issubdtype(np.dtype(dtype), np.integer):
        return np.rint(values.astype(np.float64)).astype(dtype)
    return values.astype(dtype)
