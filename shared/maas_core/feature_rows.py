"""Records sent as the model's own input: rows of its feature matrix, not raw fields.

A caller that already holds what the fitted spec would make (the Open Inference Protocol's request naming the
ONNX graph's input) sends FeatureRows in place of records: the predictor skips the spec's transform and runs
the matrix as it is (maas_core.feeds splits it into a multi-input graph's columns). They are a Sequence, one
row per record, so the request's counts and limits, its outcome and its captures take them like records;
capture keeps a row as a feature vector, not as fields (maas_core.monitoring.capture).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np


@dataclass(frozen=True, eq=False)
class FeatureRows(Sequence[list[Any]]):
    """The model input's rows: `matrix` is (records, features), in the spec's column order."""

    matrix: np.ndarray

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def __iter__(self) -> Iterator[list[Any]]:
        return iter(self.matrix.tolist())  # one conversion, not one per row

    @overload
    def __getitem__(self, index: int) -> list[Any]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[list[Any]]: ...

    def __getitem__(self, index: int | slice) -> list[Any] | Sequence[list[Any]]:
        if isinstance(index, slice):
            return FeatureRows(self.matrix[index])
        row: list[Any] = self.matrix[index].tolist()
        return row
