"""Find ONNX external data (tensors whose values live in another file) in a serialized model, without
the `onnx` package (it is not in the Lambda layer) and before onnxruntime sees the bytes.

A tensor stored with `data_location=EXTERNAL` names a file (`external_data` key `location`) that
onnxruntime reads when it builds the session. A bundle is one set of hash-checked files, so such a
reference can only point outside it: at a file beside the function's code, or anywhere on the machine
(onnxruntime itself refuses absolute and `..` paths only from 1.24.3 on, and still reads a relative
path in the working directory when the model comes from bytes). maas serves self-contained models only.

Why a protobuf scan rather than an onnxruntime option: onnxruntime has no session option that disables
external initializers (only ones that relocate them, `session.model_external_initializers_file_folder_path`,
which still reads a file). The scan walks only the messages that can hold tensors (graph initializers,
node attributes, subgraphs of If/Loop/Scan, functions, training graphs, sparse tensors) and skips every
other field by its length, so it costs microseconds per node, not per byte of weights; a model without
the bytes b"location" anywhere cannot name an external file and skips the walk altogether.

Field numbers are those of onnx/onnx.proto (stable since IR version 3).
"""

from __future__ import annotations

from collections.abc import Iterator

# message -> {field number: message it holds}; a TensorProto is checked, not descended into further
_TENSOR, _SPARSE, _GRAPH, _NODE, _ATTRIBUTE, _FUNCTION, _TRAINING, _MODEL = range(8)
_CHILDREN: dict[int, dict[int, int]] = {
    _MODEL: {7: _GRAPH, 25: _FUNCTION, 20: _TRAINING},
    _TRAINING: {1: _GRAPH, 2: _GRAPH},  # initialization, algorithm
    _FUNCTION: {7: _NODE, 11: _ATTRIBUTE},  # node, attribute_proto (default attribute values)
    _GRAPH: {1: _NODE, 5: _TENSOR, 15: _SPARSE},  # node, initializer, sparse_initializer
    _NODE: {5: _ATTRIBUTE},
    _ATTRIBUTE: {5: _TENSOR, 6: _GRAPH, 10: _TENSOR, 11: _GRAPH, 22: _SPARSE, 23: _SPARSE},  # t, g, tensors, graphs
    _SPARSE: {1: _TENSOR, 2: _TENSOR},  # values, indices
}
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
_MAX_DEPTH = 64  # subgraphs nest (If inside Loop ...); deeper than this is not a model anyone exported


class MalformedModel(ValueError):
    """The bytes are not a protobuf message (onnxruntime would refuse them too)."""


def external_tensors(model: bytes) -> list[tuple[str, str]]:
    """(tensor name, location) of every tensor stored as external data; [] for a self-contained model."""
    if b"location" not in model:  # C speed over the whole file: the common case ends here
        return []
    return list(_walk(memoryview(model), _MODEL, 0))


def _walk(buf: memoryview, kind: int, depth: int) -> Iterator[tuple[str, str]]:
    if depth > _MAX_DEPTH:
        raise MalformedModel(f"subgraphs nest deeper than {_MAX_DEPTH} levels")
    if kind == _TENSOR:
        yield from _external(buf)
        return
    children = _CHILDREN[kind]
    for number, value in _fields(buf):
        child = children.get(number)
        if child is not None and isinstance(value, memoryview):
            yield from _walk(value, child, depth + 1)


def _external(tensor: memoryview) -> Iterator[tuple[str, str]]:
    name, location, external = "", "", False
    for number, value in _fields(tensor):
        if number == _TENSOR_NAME and isinstance(value, memoryview):
            name = bytes(value).decode("utf-8", "replace")
        elif number == _TENSOR_DATA_LOCATION and value == _EXTERNAL:
            external = True
        elif number == _TENSOR_EXTERNAL_DATA and isinstance(value, memoryview):
            external = True  # an external_data entry alone makes onnxruntime look for a file
            entry = dict(_fields(value))  # StringStringEntryProto: 1 key, 2 value
            if bytes(entry.get(1, b"")) == b"location":
                location = bytes(entry.get(2, b"")).decode("utf-8", "replace")
    if external:
        yield name, location


def _fields(buf: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) of one message: varints as ints, length-delimited fields as views; fixed-size
    fields are skipped (as 0)."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, value
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise MalformedModel("a field runs past the end of its message")
            yield number, buf[pos:pos + size]
            pos += size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            yield number, 0
        else:  # groups (3, 4) are not used by ONNX; anything else is not protobuf
            raise MalformedModel(f"unexpected protobuf wire type {wire}")
    if pos != end:
        raise MalformedModel("a field runs past the end of its message")


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise MalformedModel("a truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
