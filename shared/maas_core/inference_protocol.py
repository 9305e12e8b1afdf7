"""The Open Inference Protocol (KServe V2) data plane: its JSON tensors <-> maas records and predictions.

    request = InferenceRequest.model_validate(body)
    read = inputs_reader(request, max_records)       # records or FeatureRows, read against the routed version
    outcome = predictor.predict(name, read, explain=wants_explanation(request), ...)   # the one predict path
    body = response_writer(request)(outcome)          # {"model_name", "model_version", "outputs", ...}

A request names either
- one input per raw field of the manifest's input schema, shape [N] or [N, 1], with the protocol's datatype for
  the field's type (number: FP32, FP64, INT*, UINT*; string: BYTES, as JSON strings; boolean: BOOL). The inputs
  become N records, so the fitted preprocessing runs exactly as for /v1; or
- the model's own input tensor(s), by the ONNX graph's input names (manifest.model_input: one [N, F] tensor of
  the graph's datatype, F the spec's feature count; an external graph with one input per column,
  manifest.model_inputs: each [N] or [N, 1] of its own datatype). The preprocessing is skipped: the rows are
  FeatureRows (maas_core.feature_rows), run as they are. Mixing the two forms in one request is a 400.
Each input's `data` is row-major, flat or nested to the shape. Outputs: a classifier's `label` (BYTES [N]) and
`probabilities` (FP32 [N, C], in the manifest's label order), a regressor's `value` (FP32 [N]), and, only when
asked for, `explanation` (BYTES [N]: each element the JSON text of /v1's `explanation` of that record, the
same occlusion, under the same MAAS_MAX_EXPLAIN_CELLS limit; raw-field inputs only). `outputs` in the request
picks some of them. Request `parameters`: `alias`, `variant` (as /v1's query parameters). The binary tensor
extension is not spoken: every tensor is JSON (a request's `binary_data_output` is ignored; tritonclient reads
JSON outputs).

Every mistake in a request is an InferenceRequestError (400); the edge answers it, as every /v2 error, with the
protocol's body {"error": "..."} (maas_core.edge.error_bodies).
Spec: https://github.com/kserve/open-inference-protocol/blob/main/specification/protocol/inference_rest.md
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from maas_core.errors import BadRequestError
from maas_core.feature_rows import FeatureRows

if TYPE_CHECKING:
    from maas_core.manifest import InputField, Manifest, TensorInfo
    from maas_core.model_cache import LoadedModel
    from maas_core.outcome import PredictionOutcome
    from maas_core.registry import AliasTarget

PLATFORM = "onnxruntime_onnx"
_INT_RANGES = {f"INT{b}": (-(2 ** (b - 1)), 2 ** (b - 1) - 1) for b in (8, 16, 32, 64)} | {
    f"UINT{b}": (0, 2 ** b - 1) for b in (8, 16, 32, 64)}
FLOAT_TYPES = ("FP32", "FP64")
DATATYPES = ("BOOL", *_INT_RANGES, *FLOAT_TYPES, "BYTES")
# which protocol datatypes a raw field of each manifest type takes; the first is the one metadata names
FIELD_DATATYPES: dict[str, tuple[str, ...]] = {"number": ("FP32", "FP64", *_INT_RANGES), "string": ("BYTES",),
                                               "boolean": ("BOOL",)}
CLASSIFIER_OUTPUTS = ("label", "probabilities")
REGRESSOR_OUTPUTS = ("value",)
EXPLANATION = "explanation"  # an output only when asked for: it costs a prediction per field of every record
# the protocol's datatype of a graph input's element type (TensorInfo.dtype), and the numpy type it is read into
GRAPH_DATATYPES = {"float32": "FP32", "float64": "FP64", "bool": "BOOL", "string": "BYTES"} | {
    f"{kind}{b}": f"{kind.upper()}{b}" for kind in ("int", "uint") for b in (8, 16, 32, 64)}
NUMPY_TYPES: dict[str, Any] = {datatype: (object if dtype == "string" else np.dtype(dtype))
                               for dtype, datatype in GRAPH_DATATYPES.items()}


class InferenceRequestError(BadRequestError):
    code = "bad_inference_request"


# defer_build on every model here: built on the first /v2 request that needs it, not in every cold start of the
# predict function (~10 ms of its import; /v1 predict never touches them)
class RequestInput(BaseModel):
    """One input tensor: its data row-major, flat or nested to its shape."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    name: str = Field(description="a raw field of the input schema, or an input of the model's ONNX graph (its own "
                                  "tensor: preprocessing skipped); not both kinds in one request")
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: Any = Field(description="the tensor's elements, row-major: a flat array, or arrays nested to the shape")


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)

    name: str = Field(description="label and probabilities (classifiers), value (regressors), or explanation: "
                                  "BYTES [N], each the JSON of /v1's explanation of the record (asked for only)")
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    """POST /v2/models/{model}[/versions/{version}]/infer. `parameters`: alias and variant, as /v1's."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    id: str | None = None
    parameters: dict[str, Any] | None = Field(
        default=None, description="alias (default prod; not with /versions/{version}) and variant (float or int8)")
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None

    def __repr__(self) -> str:  # a 1,000-record request must not be formatted into a debug line
        return f"InferenceRequest(inputs=<{len(self.inputs)} tensors>)"

    def parameter(self, name: str) -> str | None:
        value = (self.parameters or {}).get(name)
        if value is not None and not isinstance(value, str):
            raise InferenceRequestError(f"parameter {name!r} must be a string, got {type(value).__name__}")
        return value


class MetadataTensor(BaseModel):
    model_config = ConfigDict(defer_build=True)
    name: str
    datatype: str
    shape: list[int]


class ResponseOutput(MetadataTensor):
    model_config = ConfigDict(defer_build=True)
    data: list[Any]


class InferenceResponse(BaseModel):
    model_config = ConfigDict(defer_build=True)
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class ServerMetadata(BaseModel):
    model_config = ConfigDict(defer_build=True)
    name: str
    version: str
    extensions: list[str]


class ModelMetadata(BaseModel):
    model_config = ConfigDict(defer_build=True)
    name: str
    versions: list[str] | None = None
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]
    parameters: dict[str, Any] | None = Field(
        default=None, description="without a version: the alias described (alias, version) and its canary "
                                  "(canary_version, canary_weight) when it has one")


class ReadyResponse(BaseModel):
    """Health and readiness answers: the status code says it (200), the body repeats it."""
    model_config = ConfigDict(defer_build=True)

    ready: bool | None = None
    live: bool | None = None


class ProtocolError(BaseModel):
    """The protocol's error body: what went wrong, in one string."""
    model_config = ConfigDict(defer_build=True)

    error: str


def model_metadata(manifest: Manifest, versions: Sequence[str] | None = None,
                   target: AliasTarget | None = None) -> dict[str, Any]:
    """The model's metadata: its raw fields as inputs ([-1]: one element per record), its outputs. `target`:
    the alias the manifest's version was described for (its stable version, never the canary: metadata must
    not change from one call to the next), named in `parameters` with its canary."""
    inputs = [{"name": f.name, "datatype": FIELD_DATATYPES[f.type][0], "shape": [-1]} for f in manifest.input_schema]
    if manifest.task == "regression":
        outputs = [{"name": "value", "datatype": "FP32", "shape": [-1]}]
    else:
        outputs = [{"name": "label", "datatype": "BYTES", "shape": [-1]},
                   {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(manifest.labels)]}]
    meta: dict[str, Any] = {"name": manifest.name, "platform": PLATFORM, "inputs": inputs, "outputs": outputs}
    if versions is not None:
        meta["versions"] = list(versions)
    if target is not None:
        meta["parameters"] = {"alias": target.alias, "version": target.version}
        if target.canary_version and target.canary_weight > 0:
            meta["parameters"] |= {"canary_version": target.canary_version, "canary_weight": target.canary_weight}
    return meta


def records_from_inputs(schema: Sequence[InputField], inputs: Sequence[RequestInput],
                        max_records: int) -> list[dict[str, Any]]:
    """The records the inputs hold: record i has element i of each input, under the input's name."""
    fields = {f.name: f for f in schema}
    columns: dict[str, list[Any]] = {}
    n: int | None = None
    for tensor in inputs:
        field = fields.get(tensor.name)
        if field is None:
            raise InferenceRequestError(f"unknown input {tensor.name!r}: the model's inputs are "
                                        f"{', '.join(fields)}")
        if tensor.name in columns:
            raise InferenceRequestError(f"input {tensor.name!r} is given twice")
        _refuse_binary(tensor)
        rows = _record_count(tensor, max_records)
        if n is not None and rows != n:
            raise InferenceRequestError(f"input {tensor.name!r} has {rows} elements, other inputs {n}: every "
                                        "input holds one element per record")
        n = rows
        allowed = FIELD_DATATYPES[field.type]
        if tensor.datatype in DATATYPES and tensor.datatype not in allowed:
            raise InferenceRequestError(f"input {tensor.name!r} is a {field.type} field: its datatype must be "
                                        f"{' or '.join(allowed)}, got {tensor.datatype!r}")
        columns[tensor.name] = tensor_elements(tensor)
    missing = [f.name for f in schema if f.required and f.name not in columns]
    if missing:
        raise InferenceRequestError(f"missing input{'s' if len(missing) > 1 else ''} {', '.join(missing)}: "
                                    "every required field of the model's input schema is one input")
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def _refuse_binary(tensor: RequestInput) -> None:
    if (tensor.parameters or {}).get("binary_data_size") is not None:
        raise InferenceRequestError(f"input {tensor.name!r}: binary tensor data is not supported; send JSON "
                                    "data (tritonclient: set_data_from_numpy(..., binary_data=False))")


def _record_count(tensor: RequestInput, max_records: int, width: int = 1, what: str = "a field's input") -> int:
    """N of a tensor of shape [N, width] (or [N] when width is 1), at most max_records."""
    shape = tensor.shape
    if (len(shape) not in (1, 2) or (len(shape) == 1 and width != 1) or (len(shape) == 2 and shape[1] != width)
            or shape[0] < 0):
        form = "[N] or [N, 1], one element" if width == 1 else f"[N, {width}], one row of {width} features"
        raise InferenceRequestError(f"input {tensor.name!r} has shape {shape}: {what} has shape {form} per record")
    if shape[0] == 0:  # as /v1 refuses an empty records list
        raise InferenceRequestError(f"input {tensor.name!r} holds no records: send at least one")
    if shape[0] > max_records:
        raise InferenceRequestError(f"input {tensor.name!r} holds {shape[0]} records; the limit is {max_records} "
                                    "in one request")
    return shape[0]


def tensor_elements(tensor: RequestInput) -> list[Any]:
    """The tensor's elements as a flat list, checked against its shape and datatype."""
    if tensor.datatype not in DATATYPES:
        raise InferenceRequestError(f"input {tensor.name!r}: datatype {tensor.datatype!r} is not supported; use "
                                    f"one of {', '.join(DATATYPES)}")
    flat = _flatten(tensor)
    if _all_valid(flat, tensor.datatype):  # the common case, in C-speed passes over the list
        return flat
    check = _ELEMENT_CHECKS[tensor.datatype[:2] if tensor.datatype[:2] in ("FP", "IN", "UI") else tensor.datatype]
    for i, value in enumerate(flat):  # which element, and why
        reason = check(value, tensor.datatype)
        if reason:
            raise InferenceRequestError(f"input {tensor.name!r} element {i}: {reason}")
    return flat


def _all_valid(flat: list[Any], datatype: str) -> bool:
    """Whether every element fits the datatype (what the per-element checks say, without a call per element):
    1,000 records of ten features are 10,000 elements."""
    if not flat:
        return True
    kinds = set(map(type, flat))
    if datatype in FLOAT_TYPES:
        try:
            return kinds <= {int, float} and all(map(math.isfinite, flat))
        except OverflowError:  # an integer past float's range: the element checks decide
            return False
    if datatype in _INT_RANGES:
        low, high = _INT_RANGES[datatype]
        return kinds <= {int} and low <= min(flat) and max(flat) <= high
    return kinds <= ({bool} if datatype == "BOOL" else {str})


def _flatten(tensor: RequestInput) -> list[Any]:
    data, shape = tensor.data, tensor.shape
    if not isinstance(data, list):
        raise InferenceRequestError(f"input {tensor.name!r}: data must be an array")
    size = math.prod(shape)
    if not any(isinstance(v, list) for v in data):  # the flat form
        if len(data) != size:
            raise InferenceRequestError(f"input {tensor.name!r}: {len(data)} elements do not fill shape {shape} "
                                        f"({size} elements)")
        return data
    flat: list[Any] = []
    _walk(tensor.name, data, shape, 0, flat)
    return flat


def _walk(name: str, node: list[Any], shape: list[int], depth: int, out: list[Any]) -> None:
    # nested data: each level an array as long as its dimension, scalars only at the last
    if len(node) != shape[depth]:
        raise InferenceRequestError(f"input {name!r}: nested data does not match shape {shape} (an array of "
                                    f"{len(node)} at depth {depth}, expected {shape[depth]}; ragged or misshapen)")
    last = depth == len(shape) - 1
    for v in node:
        if isinstance(v, list) != (not last):
            raise InferenceRequestError(f"input {name!r}: nested data does not match shape {shape} (ragged: "
                                        f"{'an array' if last else 'a scalar'} at depth {depth + 1})")
    if last:
        out.extend(node)
    else:
        for v in node:
            _walk(name, v, shape, depth + 1, out)


def _check_float(value: Any, datatype: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{datatype} takes numbers, got {type(value).__name__}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a finite number"
    return None


def _check_int(value: Any, datatype: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{datatype} takes whole numbers, got {type(value).__name__}"
    low, high = _INT_RANGES[datatype]
    return None if low <= value <= high else f"{value} is outside {datatype}'s range"


def _check_bool(value: Any, datatype: str) -> str | None:
    return None if isinstance(value, bool) else f"BOOL takes true or false, got {type(value).__name__}"


def _check_bytes(value: Any, datatype: str) -> str | None:
    return None if isinstance(value, str) else f"BYTES takes strings, got {type(value).__name__}"


_ELEMENT_CHECKS = {"FP": _check_float, "IN": _check_int, "UI": _check_int, "BOOL": _check_bool, "BYTES": _check_bytes}


def requested_outputs(manifest: Manifest, request: InferenceRequest) -> list[str]:
    """The outputs to answer: those asked for, in the request's order, else all of the task's."""
    names = REGRESSOR_OUTPUTS if manifest.task == "regression" else CLASSIFIER_OUTPUTS
    if not request.outputs:
        return list(names)
    asked = [o.name for o in request.outputs]
    unknown = [a for a in asked if a not in (*names, EXPLANATION)]
    if unknown:
        raise InferenceRequestError(f"unknown output {unknown[0]!r}: this model's outputs are {', '.join(names)} "
                                    f"and {EXPLANATION}")
    return asked


def infer_response(outcome: PredictionOutcome, outputs: Sequence[str], request_id: str | None) -> dict[str, Any]:
    """The protocol's inference response for a prediction's outcome (maas_core.outcome)."""
    predictions = outcome.response.predictions
    n = len(predictions)
    tensors: list[dict[str, Any]] = []
    for name in outputs:
        if name == "label":
            tensors.append({"name": "label", "datatype": "BYTES", "shape": [n],
                            "data": [p.label for p in predictions]})
        elif name == EXPLANATION:  # the JSON text /v1 answers under the prediction's "explanation"
            tensors.append({"name": EXPLANATION, "datatype": "BYTES", "shape": [n], "data": [
                p.explanation.model_dump_json(exclude_none=True) if p.explanation else "null" for p in predictions]})
        elif name == "probabilities":
            classes = len(outcome.manifest.labels)
            tensors.append({"name": "probabilities", "datatype": "FP32", "shape": [n, classes],
                            "data": [v for p in predictions for v in (p.probabilities or {}).values()]})
        else:
            tensors.append({"name": "value", "datatype": "FP32", "shape": [n], "data": [p.value for p in predictions]})
    route = outcome.route
    body: dict[str, Any] = {"model_name": route.model, "model_version": route.version, "outputs": tensors}
    if request_id is not None:
        body["id"] = request_id
    body["parameters"] = {k: v for k, v in (("alias", route.alias), ("variant", route.variant),
                                            ("canary", route.canary or None)) if v is not None}
    return body


def graph_inputs(manifest: Manifest) -> list[TensorInfo]:
    """The ONNX graph's inputs a request may name: its one input, or its per-column inputs."""
    return list(manifest.model_inputs) or [manifest.model_input]


def read_inputs(model: LoadedModel, inputs: Sequence[RequestInput], max_records: int) -> Sequence[Any]:
    """The request's records (raw-field inputs), or FeatureRows when it names the graph's input tensors."""
    manifest = model.manifest
    fields = {f.name for f in manifest.input_schema}
    graph = {t.name for t in graph_inputs(manifest)} - fields  # a field's name always means the field
    tensors = [t.name for t in inputs if t.name in graph]
    if not tensors:
        return records_from_inputs(manifest.input_schema, inputs, max_records)
    if len(tensors) < len(inputs):
        others = [t.name for t in inputs if t.name not in graph]
        raise InferenceRequestError(f"inputs {', '.join(map(repr, tensors[:3]))} are the model's input tensor(s) "
                                    f"and {', '.join(map(repr, others[:3]))} are not: send either the raw fields "
                                    f"({', '.join(fields)}) or the model's tensor(s), not both")
    return feature_rows(model, inputs, max_records)


def feature_rows(model: LoadedModel, inputs: Sequence[RequestInput], max_records: int) -> FeatureRows:
    """The graph input tensors as the model's feature matrix, each checked against the graph's shape and
    datatype: one input [N, F] (F features, the spec's columns), or one [N] / [N, 1] per column input."""
    manifest = model.manifest
    expected = graph_inputs(manifest)
    width = 1 if manifest.model_inputs else len(model.spec.feature_names())
    given: dict[str, RequestInput] = {}
    for tensor in inputs:
        if tensor.name in given:
            raise InferenceRequestError(f"input {tensor.name!r} is given twice")
        given[tensor.name] = tensor
    missing = [t.name for t in expected if t.name not in given]
    if missing:
        raise InferenceRequestError(f"missing input tensor{'s' if len(missing) > 1 else ''} {', '.join(missing)}: "
                                    "a request in the model's own tensors gives every input of its graph")
    columns: list[np.ndarray] = []
    n: int | None = None
    for info in expected:
        tensor = given[info.name]
        _refuse_binary(tensor)
        rows = _record_count(tensor, max_records, width, "the model's input tensor")
        if n is not None and rows != n:
            raise InferenceRequestError(f"input {tensor.name!r} has {rows} rows, other inputs {n}: every input "
                                        "holds one row per record")
        n = rows
        datatype = GRAPH_DATATYPES.get(info.dtype)
        if datatype is None:
            raise InferenceRequestError(f"input {info.name!r}: the graph's element type {info.dtype!r} has no "
                                        "datatype in the protocol; send the raw fields instead")
        if tensor.datatype != datatype:
            raise InferenceRequestError(f"input {info.name!r} is the graph's {info.dtype} tensor: its datatype "
                                        f"must be {datatype}, got {tensor.datatype!r}")
        elements = tensor_elements(tensor)
        try:
            with np.errstate(over="ignore"):  # a finite JSON number over FP32's range: refused just below
                values = np.array(elements, dtype=NUMPY_TYPES[datatype]).reshape(rows, width)
        except OverflowError:  # an integer past float's range
            values = None
        if values is None or (values.dtype.kind == "f" and not np.isfinite(values).all()):
            raise InferenceRequestError(f"input {info.name!r}: a value is too large for {datatype}")
        columns.append(values)
    # a multi-input graph's columns of several types travel as objects; maas_core.feeds casts each to its input
    matrix = columns[0] if len(columns) == 1 else np.concatenate([c.astype(object) for c in columns], axis=1)
    return FeatureRows(matrix)


def wants_explanation(request: InferenceRequest) -> bool:
    return any(o.name == EXPLANATION for o in request.outputs or ())


def inputs_reader(request: InferenceRequest, max_records: int) -> Callable[[LoadedModel], Sequence[Any]]:
    """The request's records, read once its version is chosen and loaded (Predictor.predict's RecordSource):
    its manifest names the fields and tensors, and the outputs asked for are checked against its task before
    anything runs."""
    def read(model: LoadedModel) -> Sequence[Any]:
        requested_outputs(model.manifest, request)
        return read_inputs(model, request.inputs, max_records)
    return read


def response_writer(request: InferenceRequest) -> Callable[[PredictionOutcome], str]:
    """The inference response's JSON text for an outcome of the request."""
    def write(outcome: PredictionOutcome) -> str:
        return json.dumps(infer_response(outcome, requested_outputs(outcome.manifest, request), request.id))
    return write
