"""The Open Inference Protocol's data plane (maas_core.inference_protocol), without Lambda: tensors -> records."""

from __future__ import annotations

import math
from typing import Any

import pytest

from maas_core.inference_protocol import InferenceRequestError, RequestInput, records_from_inputs
from maas_core.manifest import InputField

SCHEMA = [InputField(name="x", type="number"), InputField(name="flag", type="boolean"),
          InputField(name="note", type="string", required=False)]


def tensor(name: str, datatype: str, shape: list[int], data: Any) -> RequestInput:
    return RequestInput(name=name, datatype=datatype, shape=shape, data=data)


def test_flat_and_nested_data_become_the_same_records() -> None:
    """Given [N] flat and [N, 1] nested inputs, when read, then record i has element i of each, by name."""
    records = records_from_inputs(SCHEMA, [tensor("x", "INT64", [2, 1], [[1], [2]]),
                                           tensor("flag", "BOOL", [2], [True, False])], max_records=10)
    assert records == [{"x": 1, "flag": True}, {"x": 2, "flag": False}]
    assert records_from_inputs(SCHEMA, [tensor("x", "FP32", [2, 1], [1.5, 2.5]), tensor("flag", "BOOL", [2, 1],
                                                                                      [[True], [False]])], 10)[1] == {
        "x": 2.5, "flag": False}


@pytest.mark.parametrize(("inputs", "words"), [
    ([tensor("x", "BYTES", [1], ["1"]), tensor("flag", "BOOL", [1], [True])], "must be FP32"),
    ([tensor("x", "FP16", [1], [1.0]), tensor("flag", "BOOL", [1], [True])], "not supported"),
    ([tensor("x", "FP32", [2], [1.0]), tensor("flag", "BOOL", [1], [True])], "do not fill shape"),
    ([tensor("x", "FP32", [1], [1.0]), tensor("flag", "BOOL", [2], [True, False])], "other inputs 1"),
    ([tensor("x", "FP32", [1, 1, 1], [1.0]), tensor("flag", "BOOL", [1], [True])], "[N] or [N, 1]"),
    ([tensor("y", "FP32", [1], [1.0])], "unknown input 'y'"),
    ([tensor("x", "FP32", [1], [1.0])], "missing input flag"),
    ([tensor("x", "FP32", [11], [1.0] * 11), tensor("flag", "BOOL", [11], [True] * 11)], "limit is 10"),
    ([tensor("x", "FP32", [2, 1], [[1.0], 2.0]), tensor("flag", "BOOL", [2], [True, True])], "ragged"),
    ([tensor("x", "FP32", [1], [[1.0]]), tensor("flag", "BOOL", [1], [True])], "ragged"),
    ([tensor("x", "FP32", [1], [1.0]), tensor("flag", "BOOL", [1], [True]), tensor("note", "BYTES", [1], [3])],
     "BYTES takes strings"),
    ([tensor("x", "FP64", [1], [math.inf]), tensor("flag", "BOOL", [1], [True])], "not a finite number"),
    ([tensor("x", "INT8", [1], [300]), tensor("flag", "BOOL", [1], [True])], "outside INT8's range"),
    ([tensor("x", "INT32", [1], [1.5]), tensor("flag", "BOOL", [1], [True])], "whole numbers"),
    ([tensor("x", "FP32", [1], [1.0]), tensor("flag", "BOOL", [1], [1])], "true or false"),
    ([tensor("x", "FP32", [1], [1.0]), tensor("x", "FP32", [1], [1.0])], "given twice"),
])
def test_tensors_that_do_not_fit_the_schema_are_refused(inputs: list[RequestInput], words: str) -> None:
    """Given inputs that do not fit the schema, when read, then a 400 InferenceRequestError says why."""
    with pytest.raises(InferenceRequestError) as refused:
        records_from_inputs(SCHEMA, inputs, max_records=10)
    assert refused.value.status == 400 and words in refused.value.message, refused.value.message
