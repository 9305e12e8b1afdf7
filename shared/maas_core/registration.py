"""Register an ONNX model that our trainer did not make (a hand-written graph, an skl2onnx export, ...).

The caller declares what the graph cannot tell us (the task, the class labels, the raw input fields)
and the graph is checked against that declaration before anything is written: it must load in
onnxruntime, take one float/double matrix (rows x features) and give an output whose shape fits the
task, also on a real test run. Only then is a version reserved, the bundle published and registered
(maas_core.publishing, the training job's path too), so a refused model leaves no trace and burns no
version number. It then serves like a trained one.

    declaration = ModelDeclaration(task="multiclass", labels=["a", "b", "c"], input_name="input",
                                   output_name="scores", features=[{"name": "x1"}, {"name": "x2"}])
    manifest = register_onnx(store, registry, "my-model", onnx_bytes, declaration, promote="prod")

Serving-core code: imports onnxruntime, numpy and pydantic only (never the `onnx` package).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from maas_core.errors import UnprocessableError
from maas_core.load_checks import bad as _bad
from maas_core.load_checks import check_input, check_output_shape
from maas_core.load_checks import shape_of as _shape
from maas_core.manifest import MODEL_FILE, PREPROCESS_FILE, InputField, Manifest, Task, TensorInfo
from maas_core.onnx_external import MalformedModel, external_tensors
from maas_core.preprocess import NumericFeature, PreprocessSpec
from maas_core.publishing import publish_version
from maas_core.registry import Registry, check_name
from maas_core.store import BundleStore

# onnxruntime's element types we can feed from the preprocessing spec's float matrix
_INPUT_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64"}
_OUTPUT_DTYPES = _INPUT_DTYPES


class DeclaredFeature(BaseModel):
    """One raw input field, in the order of the model input's columns."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    type: Literal["number"] = Field(default="number", description="only numeric fields for now")
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


def passthrough_spec(declaration: ModelDeclaration) -> PreprocessSpec:
    """Numeric pass-through: each declared field becomes one unscaled input column."""
    return PreprocessSpec(features=[
        NumericFeature(name=f.name, required=f.required, sensitive=f.sensitive, fill=None, clip=None, scaler="none",
                       center=0.0, scale=1.0)
        for f in declaration.features
    ])


def register_onnx(store: BundleStore, registry: Registry, name: str, onnx_bytes: bytes,
                  declaration: ModelDeclaration, spec: PreprocessSpec | None = None,
                  promote: str | None = None) -> Manifest:
    """Check an external ONNX model against its declaration, then publish and register it as the next
    version of `name` (and point `promote` at it). Any problem is a 422 raised before anything is written."""
    check_name("model", name)
    if promote is not None:
        check_name("alias", promote)
    given_spec = spec is not None
    spec, input_schema = _spec_and_schema(declaration, spec)
    width = len(spec.feature_names())
    graph = check_graph(onnx_bytes, declaration, width=width,
                        width_source=f"the preprocessing spec produces {width} columns" if given_spec else None)

    files = {MODEL_FILE: onnx_bytes, PREPROCESS_FILE: spec.to_json().encode()}

    def bundle(version: str) -> tuple[Manifest, dict[str, bytes]]:
        return Manifest(
            name=name,
            version=version,
            task=declaration.task,
            labels=declaration.labels,
            input_schema=input_schema,
            model_input=graph.model_input,
            model_output=graph.model_output,
            metrics=declaration.metrics,
            frameworks={"source": "external", "onnxruntime": ort.__version__},
            training={"source": "external", "description": declaration.description, "producer": graph.producer},
        ), files

    return publish_version(store, registry, name, bundle, promote=promote)


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
                width_source: str | None = None) -> CheckedGraph:
    """Load the graph in onnxruntime and check it against the declaration; `width` is the number of input
    columns the preprocessing spec produces (`width_source` says so in messages; default: the declared
    features). Raises UnprocessableError (422) on the first problem found."""
    session = _session(onnx_bytes)
    inputs, outputs = session.get_inputs(), session.get_outputs()

    inp = _pick(inputs, declaration.input_name, "input")
    if len(inputs) > 1:
        raise _bad(f"the graph needs {len(inputs)} inputs ({_names(inputs)}); only single-input models "
                   "(one feature matrix) can be registered", field="input_name", graph_inputs=_names_list(inputs))
    # the checks serving repeats at every load (maas_core.load_checks): a model that registers, loads
    check_input(inp, width, width_source or f"{width} features are declared", dtypes=_INPUT_DTYPES)
    in_shape = _shape(inp.shape)

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

    _smoke_run(session, inp.name, out.name, _INPUT_DTYPES[inp.type], width, declaration)
    producer = session.get_modelmeta().producer_name or ""
    assert in_shape is not None  # check_input refused any other
    return CheckedGraph(
        model_input=TensorInfo(name=inp.name, dtype=_INPUT_DTYPES[inp.type], shape=in_shape),
        model_output=TensorInfo(name=out.name, dtype=_OUTPUT_DTYPES[out.type], shape=out_shape or []),
        producer=producer,
    )


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
