"""Register an ONNX model that our trainer did not make (a hand-written graph, an skl2onnx export, ...).

The caller declares what the graph cannot tell us (the task, the class labels, the raw input fields)
and the graph is checked against that declaration before anything is written: it must load in
onnxruntime, take one float/double matrix (rows x features), or one (rows, 1) or (rows,) input per declared
field (skl2onnx's convention for a pipeline over named columns: strings, int64 and floats mixed; each field
feeds the input of its name or the one its `input` names, maas_core.feeds), and give an output whose
shape fits the task, also on a real test run. Only then is a version reserved, the bundle published and registered
(maas_core.publishing, the training job's path too), so a refused model leaves no trace and burns no
version number. It then serves like a trained one.

Explanations (?explain=true) occlude fields with a baseline record, which a trained model takes from its
training statistics. An external model has none: its declaration may give one (`baseline: {field:
value}`), or the caller gives background statistics (`maas register --background FILE.csv` computes them
with the training job's own function); without either, explaining it is a 422 (maas_core.explain).

    declaration = ModelDeclaration(task="multiclass", labels=["a", "b", "c"], input_name="input",
                                   output_name="scores", features=[{"name": "x1"}, {"name": "x2"}])
    manifest = register_onnx(store, registry, "my-model", onnx_bytes, declaration, promote="prod")

Serving-core code: imports onnxruntime, numpy and pydantic only (never the `onnx` package).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from maas_core.baseline import BACKGROUND, DECLARED, baseline_values
from maas_core.errors import UnprocessableError
from maas_core.feeds import feeds
from maas_core.load_checks import (
    FIELD_DTYPES,
    UnusableBundle,
    check_field_input,
    check_input,
    check_output_shape,
    check_spec,
    field_input_shape,
)
from maas_core.load_checks import bad as _bad
from maas_core.load_checks import shape_of as _shape
from maas_core.manifest import MODEL_FILE, PREPROCESS_FILE, InputField, Manifest, Task, TensorInfo
from maas_core.onnx_external import MalformedModel, external_tensors
from maas_core.preprocess import NumericFeature, PreprocessSpec, StringFeature
from maas_core.publishing import publish_version
from maas_core.registry import Registry, check_name
from maas_core.store import BundleStore

# onnxruntime's element types we can feed from the preprocessing spec's float matrix
_INPUT_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64"}
_OUTPUT_DTYPES = _INPUT_DTYPES


class DeclaredFeature(BaseModel):
    """One raw input field: a column of the model input, or (a graph with one input per field) one input."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    type: Literal["number", "string"] = Field(
        default="number", description="number, or string (fed as it is to a graph input of type string)")
    input: str | None = Field(
        default=None, description="the graph input this field feeds, for a graph with one (rows, 1) or (rows,) "
                                  "input per field (skl2onnx's convention); default: the input named like the field")
    required: bool = True
    description: str = ""
    sensitive: bool = Field(default=False, description="personal data: masked in captured predictions, never "
                                                       "quoted in error messages or logs")


class ModelDeclaration(BaseModel):
    """What an external ONNX model computes: the facts its graph does not carry."""

    model_config = ConfigDict(extra="forbid")

    task: Task
    labels: list[str] = Field(default_factory=list, description="class labels in output column order; "
                                                                "empty for regression")
    features: list[DeclaredFeature] = Field(
        default_factory=list,
        description="raw input fields, one per input column, in column order. Required without a preprocessing "
                    "spec; with one, optional (the spec defines the fields) and, when given, they must match it")
    input_name: str | None = Field(default=None, description="graph input to feed; default: the graph's only input")
    output_name: str | None = Field(default=None, description="graph output to read; default: the graph's only output")
    description: str = ""
    metrics: dict[str, float] = Field(default_factory=dict, description="holdout metrics measured elsewhere")
    baseline: dict[str, Any] | None = Field(
        default=None, description="a baseline record, field -> value (every input field): what explanations "
                                  "replace each field with; or give background data at registration instead")

    @field_validator("metrics")
    @classmethod
    def _finite(cls, metrics: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in metrics.items() if not math.isfinite(v)]
        if bad:
            raise ValueError(f"metrics must be finite numbers: {', '.join(bad)}")
        return metrics

    @model_validator(mode="after")
    def _consistent(self) -> ModelDeclaration:
        if self.task == "regression" and self.labels:
            raise ValueError("a regression model has no labels")
        if self.task == "binary" and len(self.labels) != 2:
            raise ValueError(f"a binary classifier needs exactly 2 labels, got {len(self.labels)}")
        if self.task == "multiclass" and len(self.labels) < 2:
            raise ValueError(f"a multiclass classifier needs at least 2 labels, got {len(self.labels)}")
        for what, names in (("labels", self.labels), ("feature names", [f.name for f in self.features])):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what} must be unique; repeated: {', '.join(dupes)}")
        return self

    @classmethod
    def parse(cls, data: Any, source: str = "the declaration") -> ModelDeclaration:
        """Validate raw data (e.g. a parsed JSON/YAML file) into a declaration, or a 422 naming each problem."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            details: list[dict[str, Any]] = [{"field": ".".join(str(p) for p in e["loc"]) or None,
                        "reason": e["msg"].removeprefix("Value error, ")} for e in exc.errors()]
            summary = "; ".join(f"{d['field']}: {d['reason']}" if d["field"] else d["reason"] for d in details)
            raise UnprocessableError(f"{source} is invalid: {summary}", details) from None


@dataclass(frozen=True)
class CheckedGraph:
    """The result of checking a graph against its declaration: what the manifest records about it."""

    model_input: TensorInfo
    model_output: TensorInfo
    producer: str
    model_inputs: list[TensorInfo] = field(default_factory=list)  # one per field (maas_core.feeds)


def passthrough_spec(declaration: ModelDeclaration) -> PreprocessSpec:
    """Pass-through: each declared field becomes one input column, numbers unscaled, strings as they are."""
    return PreprocessSpec(features=[
        StringFeature(name=f.name, required=f.required, sensitive=f.sensitive) if f.type == "string" else
        NumericFeature(name=f.name, required=f.required, sensitive=f.sensitive, fill=None, clip=None, scaler="none",
                       center=0.0, scale=1.0)
        for f in declaration.features
    ])


def register_onnx(store: BundleStore, registry: Registry, name: str, onnx_bytes: bytes,
                  declaration: ModelDeclaration, spec: PreprocessSpec | None = None,
                  promote: str | None = None, background: dict[str, Any] | None = None) -> Manifest:
    """Check an external ONNX model against its declaration, then publish and register it as the next
    version of `name` (and point `promote` at it). Any problem is a 422 raised before anything is written.

    `background`: baseline statistics of background data (maas_training.evaluate.baseline_statistics over
    a sample of the model's training data, fields of `serving_spec(declaration, spec)`)."""
    check_name("model", name)
    if promote is not None:
        check_name("alias", promote)
    given_spec = spec is not None
    spec, input_schema = _spec_and_schema(declaration, spec)
    baseline = _baseline(spec, declaration.baseline, background)
    width = len(spec.feature_names())
    graph = check_graph(onnx_bytes, declaration, width=width,
                        width_source=f"the preprocessing spec produces {width} columns" if given_spec else None,
                        spec=None if given_spec else spec, baseline=baseline)

    files = {MODEL_FILE: onnx_bytes, PREPROCESS_FILE: spec.to_json().encode()}

    def bundle(version: str) -> tuple[Manifest, dict[str, bytes]]:
        return Manifest(
            name=name,
            version=version,
            task=declaration.task,
            labels=declaration.labels,
            input_schema=input_schema,
            model_input=graph.model_input,
            model_inputs=graph.model_inputs,
            model_output=graph.model_output,
            metrics=declaration.metrics,
            baseline=baseline,
            frameworks={"source": "external", "onnxruntime": ort.__version__},
            training={"source": "external", "description": declaration.description, "producer": graph.producer},
        ), files

    return publish_version(store, registry, name, bundle, promote=promote)


def serving_spec(declaration: ModelDeclaration, spec: PreprocessSpec | None = None) -> PreprocessSpec:
    """The preprocessing spec the model will be served with: `spec`, or the declared fields passed through."""
    return _spec_and_schema(declaration, spec)[0]


def _baseline(spec: PreprocessSpec, record: dict[str, Any] | None,
              background: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest's baseline (maas_core.baseline): background statistics, a declared record, or none."""
    names = [f.name for f in spec.features]
    if record is not None and background is not None:
        raise _bad("give a baseline record in the declaration or background data, not both", field="baseline")
    if background is not None:
        stats = background.get("features") or {}
        missing = [n for n in names if n not in stats]
        if missing:
            raise _bad(f"the background data has no column for input field(s) {', '.join(missing)}",
                       field="background", missing=missing)
        return {**background, "source": BACKGROUND}
    if record is None:
        return {}
    missing = [n for n in names if n not in record]
    unknown = sorted(set(record) - set(names))
    if missing or unknown:
        problems = ([f"no value for {', '.join(missing)}"] if missing else []) + (
            [f"{', '.join(unknown)} " + ("is not an input field" if len(unknown) == 1 else "are not input fields")]
            if unknown else [])
        raise _bad(f"the baseline record must give one value per input field: {'; '.join(problems)}",
                   field="baseline", missing=missing, unknown=unknown)
    try:
        spec.transform([record])
    except UnprocessableError as exc:
        raise UnprocessableError(f"the baseline record is not a valid input record: {exc.message}",
                                 exc.details) from None
    return {"source": DECLARED, "record": record}


def _spec_and_schema(declaration: ModelDeclaration,
                     spec: PreprocessSpec | None) -> tuple[PreprocessSpec, list[InputField]]:
    """The spec to publish and the raw input schema callers see (declared descriptions kept)."""
    declared = {f.name: f for f in declaration.features}
    if spec is None:
        if not declaration.features:
            raise UnprocessableError("declare the model's input features (or give a preprocessing spec)",
                                     [{"field": "features", "reason": "empty"}])
        spec = passthrough_spec(declaration)
    else:
        if spec.text_feature:
            raise UnprocessableError("text preprocessing specs cannot be used with external models yet "
                                     "(they produce integer token ids; only float inputs are supported)",
                                     [{"field": "spec", "reason": "text feature"}])
        from_spec = spec.input_schema()
        if declaration.features:
            problems = _schema_mismatch(from_spec, declaration.features)
            if problems:
                raise UnprocessableError(
                    "the declared features do not match the preprocessing spec's input fields (leave features "
                    "out to take them from the spec): " + "; ".join(f"{p['field']}: {p['reason']}" for p in problems),
                    problems)
    spec = spec.with_sensitive({f.name for f in declaration.features if f.sensitive})
    try:  # what every load checks first: a spec serving would refuse is refused now, with its reason
        check_spec(spec)
    except UnusableBundle as exc:
        raise _bad(f"the preprocessing spec cannot be served: {exc}", field="spec") from None
    schema = [
        field.model_copy(update={"description": declared[field.name].description}) if field.name in declared else field
        for field in spec.input_schema()
    ]
    return spec, schema


def _schema_mismatch(from_spec: list[InputField], declared: list[DeclaredFeature]) -> list[dict[str, Any]]:
    spec_fields = {f.name: f for f in from_spec}
    problems: list[dict[str, Any]] = []
    for f in declared:
        if f.name not in spec_fields:
            problems.append({"field": f.name, "reason": "declared but not in the spec"})
        elif spec_fields[f.name].type != f.type:
            problems.append({"field": f.name,
                             "reason": f"declared {f.type}, the spec reads a {spec_fields[f.name].type}"})
        elif spec_fields[f.name].required != f.required:
            problems.append({"field": f.name, "reason": f"declared required={f.required}, "
                                                        f"the spec has required={spec_fields[f.name].required}"})
    names = {f.name for f in declared}
    problems += [{"field": n, "reason": "in the spec but not declared"} for n in spec_fields if n not in names]
    return problems


# --- checking the graph ------------------------------------------------------------------------


def check_graph(onnx_bytes: bytes, declaration: ModelDeclaration, width: int,
                width_source: str | None = None, spec: PreprocessSpec | None = None,
                baseline: dict[str, Any] | None = None) -> CheckedGraph:
    """Load the graph in onnxruntime and check it against the declaration; `width` is the number of input
    columns the preprocessing spec produces (`width_source` says so in messages; default: the declared
    features). `spec`: the declared fields passed through (None when the caller gave a spec); a graph with
    one input per field needs it, and is smoke-run on the `baseline` record. Raises UnprocessableError (422)
    on the first problem found."""
    session = _session(onnx_bytes)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if _one_input_per_field(inputs, declaration):
        return _check_field_graph(session, declaration, spec, baseline)

    inp = _pick(inputs, declaration.input_name, "input")
    # the checks serving repeats at every load (maas_core.load_checks): a model that registers, loads
    check_input(inp, width, width_source or f"{width} features are declared", dtypes=_INPUT_DTYPES)
    in_shape = _shape(inp.shape)

    out = _check_output(outputs, declaration)

    _smoke_run(session, inp.name, out.name, _INPUT_DTYPES[inp.type], width, declaration)
    producer = session.get_modelmeta().producer_name or ""
    assert in_shape is not None  # check_input refused any other
    return CheckedGraph(
        model_input=TensorInfo(name=inp.name, dtype=_INPUT_DTYPES[inp.type], shape=in_shape),
        model_output=TensorInfo(name=out.name, dtype=_OUTPUT_DTYPES[out.type], shape=_shape(out.shape) or []),
        producer=producer,
    )


def _one_input_per_field(inputs: list[Any], declaration: ModelDeclaration) -> bool:
    """A graph fed field by field: several inputs, a field mapped to an input, a string field, or one
    input that is not a float matrix (an int64 or string column)."""
    return (len(inputs) > 1 or any(f.input is not None or f.type == "string" for f in declaration.features)
            or (len(inputs) == 1 and inputs[0].type not in _INPUT_DTYPES))


def _check_field_graph(session: ort.InferenceSession, declaration: ModelDeclaration, spec: PreprocessSpec | None,
                       baseline: dict[str, Any] | None) -> CheckedGraph:
    """Each declared field feeds one (rows, 1) or (rows,) graph input and every input is fed by one field."""
    inputs = session.get_inputs()
    if spec is None:
        raise _bad(f"the graph takes one input per field ({_names(inputs)}): declare the fields (with type and "
                   "input) instead of giving a preprocessing spec; such a graph does its own preprocessing",
                   field="spec", graph_inputs=_names_list(inputs))
    if declaration.input_name is not None:
        raise _bad("input_name names the one input of a model taking a feature matrix; this graph takes one input "
                   "per field: map each field to its input with features[].input", field="input_name")
    by_name = {a.name: a for a in inputs}
    fed: dict[str, str] = {}
    model_inputs = []
    for f in declaration.features:
        name = f.input or f.name
        if name not in by_name:
            raise _bad(f"field {f.name!r} feeds input {name!r}, which is not a graph input; the graph's inputs are "
                       f"{_names(inputs)} (map the field with input: NAME)", field="features", declared=name,
                       graph_inputs=_names_list(inputs))
        if name in fed:
            raise _bad(f"fields {fed[name]!r} and {f.name!r} both feed input {name!r}; each input takes one field",
                       field="features", input=name)
        fed[name] = f.name
        inp = by_name[name]
        check_field_input(inp, f.name, f.type == "string")
        model_inputs.append(TensorInfo(name=name, dtype=FIELD_DTYPES[inp.type], shape=field_input_shape(inp)))
    unfed = [a.name for a in inputs if a.name not in fed]
    if unfed:
        raise _bad(f"graph input(s) {', '.join(map(repr, unfed))} are fed by no declared field; declare one field "
                   "per input (input: NAME when the names differ)", field="features", unfed=unfed)
    out = _check_output(session.get_outputs(), declaration)
    record = baseline_values(spec, baseline)
    for rows in (1, 2):
        what = "one row" if rows == 1 else f"{rows} rows"
        try:
            fed_arrays = feeds(model_inputs[0], model_inputs, spec.transform([record] * rows))
            result = np.asarray(session.run([out.name], fed_arrays)[0])
        except Exception as exc:  # onnxruntime's runtime errors (unknown categories, unsupported ops, ...)
            raise _bad(f"the model failed a test run on {what} of the baseline record {record}: "
                       f"{_ort_message(exc)}", field="onnx", rows=rows) from None
        if not np.issubdtype(result.dtype, np.number):
            raise _bad(f"a test run gave a non-numeric output ({result.dtype})", field="output_name")
        check_output_shape(declaration.task, declaration.labels, out.name, list(result.shape), rows=rows)
    return CheckedGraph(
        model_input=model_inputs[0], model_inputs=model_inputs,
        model_output=TensorInfo(name=out.name, dtype=_OUTPUT_DTYPES[out.type], shape=_shape(out.shape) or []),
        producer=session.get_modelmeta().producer_name or "",
    )


def _check_output(outputs: list[Any], declaration: ModelDeclaration) -> Any:
    out = _pick(outputs, declaration.output_name, "output")
    if out.type not in _OUTPUT_DTYPES:
        hint = (" (for skl2onnx classifiers, convert with options={id(model): {'zipmap': False}} and declare the "
                "probabilities output)" if not out.type.startswith("tensor(")
                else " (declare the output holding probabilities or values, not predicted labels)")
        raise _bad(f"output {out.name!r} has type {out.type}; only tensor(float) and tensor(double) outputs are "
                   f"supported{hint}", field="output_name", type=out.type)
    out_shape = _shape(out.shape)
    if out_shape is not None:
        check_output_shape(declaration.task, declaration.labels, out.name, out_shape, rows=None)
    return out


def refuse_external_data(onnx_bytes: bytes) -> None:
    """A 422 for a model whose tensors live in other files (ONNX external data): a bundle is the hash-checked
    files it lists, so maas serves self-contained models only (maas_core.onnx_external)."""
    try:
        external = external_tensors(onnx_bytes)
    except MalformedModel as exc:
        raise _bad(f"not a valid ONNX model: {exc}", field="onnx") from None
    if external:
        names = ", ".join(f"{name!r} (in {location!r})" for name, location in external[:5])
        raise _bad(f"the model keeps {len(external)} tensor(s) as ONNX external data, in other files: {names}; "
                   "only self-contained models can be registered: save it as one file "
                   "(onnx.save_model(model, path, save_as_external_data=False); up to 2 GB)",
                   field="onnx", external_tensors=[{"name": n, "location": loc} for n, loc in external[:20]])


def _session(onnx_bytes: bytes) -> ort.InferenceSession:
    if not onnx_bytes:
        raise _bad("not a valid ONNX model: the file is empty", field="onnx")
    refuse_external_data(onnx_bytes)
    try:
        return ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...) for bad graphs
        raise _bad(f"not a valid ONNX model: {_ort_message(exc)}", field="onnx") from None


def _pick(args: list[Any], declared: str | None, kind: str) -> Any:
    by_name = {a.name: a for a in args}
    if declared is None:
        if len(args) == 1:
            return args[0]
        raise _bad(f"the graph has {len(args)} {kind}s ({_names(args)}); declare which one is the model's "
                   f"{kind} with {kind}_name", field=f"{kind}_name", **{f"graph_{kind}s": _names_list(args)})
    if declared not in by_name:
        raise _bad(f"declared {kind} {declared!r} is not a graph {kind}; the graph's {kind}s are {_names(args)}",
                   field=f"{kind}_name", declared=declared, **{f"graph_{kind}s": _names_list(args)})
    return by_name[declared]


def _smoke_run(session: ort.InferenceSession, inp: str, out: str, dtype: str, width: int,
               declaration: ModelDeclaration) -> None:
    """Run one row of zeros, then two: catches graphs that load but fail, give a shape the task cannot
    use, or only work for a fixed number of rows."""
    for rows in (1, 2):
        what = "one row" if rows == 1 else f"{rows} rows"
        try:
            result = np.asarray(session.run([out], {inp: np.zeros((rows, width), dtype=dtype)})[0])
        except Exception as exc:  # onnxruntime's runtime errors (bad dimensions, unsupported ops, ...)
            raise _bad(f"the model failed a test run on {what} of {width} zeros: {_ort_message(exc)}",
                       field="onnx", rows=rows) from None
        if not np.issubdtype(result.dtype, np.number):
            raise _bad(f"a test run gave a non-numeric output ({result.dtype})", field="output_name")
        check_output_shape(declaration.task, declaration.labels, out, list(result.shape), rows=rows)


# --- small helpers --------------------------------------------------------------------------------


def _names(args: list[Any]) -> str:
    return ", ".join(repr(a.name) for a in args) or "none"


def _names_list(args: list[Any]) -> list[str]:
    return [a.name for a in args]


def _ort_message(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text.split(" : ", 2)[-1] if text.startswith("[ONNXRuntimeError]") else text
