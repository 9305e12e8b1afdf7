"""What a model version must pass, beyond its hashes, before it answers anyone (maas_core.model_cache).

A bundle can load and still be unable to answer: a preprocess.json one column wider than the graph, a
text spec with max_length 10^9, clip bounds of NaN, a manifest with three labels for a two-column
output. Each would fail (or mislead) every request; refused at load, the alias keeps serving its last
good version instead (maas_core.predictor). In order, cheapest first:

1. the spec's fitted values are finite and its sizes bounded (MAX_* below), before anything is sized by them;
2. the graph has the manifest's input and output: a (rows, columns) input with a dynamic row count, of
   the manifest's element type and the spec's kind (floats or token ids), as many columns as the spec
   makes (or, an external graph with one input per field, manifest.model_inputs: exactly those inputs,
   each (rows, 1) or (rows,), a string input for each string field and a numeric one for each other;
   maas_core.feeds);
   an output whose shape fits the task and labels;
3. a smoke run on the training baseline record (maas_core.baseline), one row then two, gives finite
   outputs of that shape.

The graph checks are registration's (maas_core.registration), so an external model that registers is
one that loads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np

from maas_core.baseline import baseline_values
from maas_core.errors import UnprocessableError
from maas_core.feeds import STRING
from maas_core.manifest import Manifest
from maas_core.outputs import nonfinite_rows
from maas_core.preprocess import CategoricalFeature, NumericFeature, PreprocessSpec, StringFeature, TextFeature

if TYPE_CHECKING:
    import onnxruntime as ort

    from maas_core.model_cache import LoadedModel

# sane sizes for a fitted spec: every request allocates records x columns, the spec lives in memory once
MAX_COLUMNS = 100_000  # model input columns (one-hot slots, tokens per text, ...)
MAX_TEXT_LENGTH = 10_000  # tokens per text (a text spec's columns)
MAX_VOCABULARY = 1_000_000  # words of a text spec
MAX_CATEGORIES = 100_000  # categories of one categorical feature

# onnxruntime's element types -> numpy dtypes serving can feed from a spec's matrix
ORT_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int32)": "int32",
              "tensor(int64)": "int64"}
# ... and, one field per input, also strings (maas_core.feeds)
FIELD_DTYPES = {**ORT_DTYPES, "tensor(string)": STRING}


class UnusableBundle(ValueError):
    """Why a version cannot be served (logged; the caller only learns that it could not be loaded)."""


def check_model(model: LoadedModel) -> None:
    """Steps 2 and 3 of the module docstring for a loaded version (its spec passed `check_spec`)."""
    m, spec = model.manifest, model.spec
    width = len(spec.feature_names())
    if m.model_inputs:
        _check_field_inputs(model.session.get_inputs(), m, spec)
    else:
        inp = _named(model.session.get_inputs(), m.model_input.name, "input")
        check_input(inp, width, f"the preprocessing spec produces {width} columns", dtypes=ORT_DTYPES)
        graph_dtype = ORT_DTYPES[inp.type]
        if graph_dtype != m.model_input.dtype or np.dtype(graph_dtype).kind != np.dtype(spec.output_dtype()).kind:
            raise UnusableBundle(f"graph input {inp.name!r} takes {inp.type}; the manifest says "
                                 f"{m.model_input.dtype} and the preprocessing spec produces {spec.output_dtype()}")
    out = _named(model.session.get_outputs(), m.model_output.name, "output")
    check_labels(m)
    shape = shape_of(out.shape)
    if shape is not None:
        check_output_shape(m.task, m.labels, out.name, shape, rows=None)
    smoke_run(model)


def _check_field_inputs(graph_inputs: list[ort.NodeArg], m: Manifest, spec: PreprocessSpec) -> None:
    """One (rows, 1) or (rows,) graph input per spec feature, of the manifest's type and rank, strings for
    string fields."""
    if len(spec.features) != len(m.model_inputs) or len(spec.feature_names()) != len(m.model_inputs):
        raise UnusableBundle(f"the manifest names {len(m.model_inputs)} graph inputs, one per field, but the "
                             f"preprocessing spec has {len(spec.features)} fields making "
                             f"{len(spec.feature_names())} columns")
    extra = sorted({a.name for a in graph_inputs} - {t.name for t in m.model_inputs})
    if extra:
        raise UnusableBundle(f"the graph has inputs the manifest does not feed: {', '.join(map(repr, extra))}")
    for feature, declared in zip(spec.features, m.model_inputs, strict=True):
        inp = _named(graph_inputs, declared.name, "input")
        check_field_input(inp, feature.name, isinstance(feature, StringFeature))
        if FIELD_DTYPES[inp.type] != declared.dtype:
            raise UnusableBundle(f"graph input {inp.name!r} takes {inp.type}; the manifest says {declared.dtype}")
        if len(field_input_shape(inp)) != len(declared.shape):
            raise UnusableBundle(f"graph input {inp.name!r} has shape {show(inp.shape)}; the manifest says "
                                 f"{show(declared.shape)}")


def check_spec(spec: PreprocessSpec) -> None:
    """Finite fitted values and bounded sizes (before anything sized by them, e.g. feature names)."""
    for f in spec.features:
        where = f"feature {f.name!r}"
        if isinstance(f, NumericFeature):
            fitted = {"center": f.center, "scale": f.scale, "fill": f.fill, "impute": f.impute,
                      "clip low": f.clip[0] if f.clip else None, "clip high": f.clip[1] if f.clip else None}
            bad = [k for k, v in fitted.items() if v is not None and not math.isfinite(v)]
            if bad:
                raise UnusableBundle(f"{where}: its fitted {', '.join(bad)} {'is' if len(bad) == 1 else 'are'} "
                                     "not finite")
            if f.scale <= 0:
                raise UnusableBundle(f"{where}: its scale {f.scale} is not positive")
            if f.clip and f.clip[0] > f.clip[1]:
                raise UnusableBundle(f"{where}: its clip bounds {list(f.clip)} are reversed")
        elif isinstance(f, CategoricalFeature):
            _bounded(where, "categories", len(f.categories), MAX_CATEGORIES, low=1)
            if any(a >= b for a, b in pairwise(f.categories)):  # transform binary-searches them
                raise UnusableBundle(f"{where}: its categories are not sorted and unique")
        elif isinstance(f, TextFeature):
            _bounded(where, "max_length", f.max_length, MAX_TEXT_LENGTH, low=1)
            _bounded(where, "vocabulary", len(f.vocabulary), MAX_VOCABULARY)
    _bounded("the spec", "columns", sum(_width(f) for f in spec.features), MAX_COLUMNS, low=1)


def smoke_run(model: LoadedModel) -> None:
    """The baseline record as one row, then two: finite outputs of the task's shape (catches graphs that fail
    at run time, that only take a fixed number of rows, or whose weights or spec give NaN)."""
    m = model.manifest
    record = baseline_values(model.spec, m.baseline)
    for rows in (1, 2):
        out = model.run(model.spec.transform([record] * rows))
        if not np.issubdtype(out.dtype, np.number):
            raise UnusableBundle(f"a test run gave a non-numeric output ({out.dtype})")
        check_output_shape(m.task, m.labels, m.model_output.name, list(out.shape), rows=rows)
        if nonfinite_rows(out).any():
            raise UnusableBundle(f"a test run on the training baseline record gave a non-finite output: "
                                 f"{out.reshape(rows, -1)[0].tolist()[:10]}")


def check_labels(m: Manifest) -> None:
    k = len(m.labels)
    if (m.task == "binary" and k != 2) or (m.task == "multiclass" and k < 2) or len(set(m.labels)) != k:
        raise UnusableBundle(f"a {m.task} model needs {'2' if m.task == 'binary' else 'at least 2'} distinct labels; "
                             f"the manifest has {k}")


# --- shared with registration (its messages, raised as 422s there) --------------------------------------------


def check_input(inp: Any, width: int, width_source: str, dtypes: dict[str, str]) -> None:
    """A (rows, columns) input of one of `dtypes`, a dynamic row count and `width` columns (if fixed)."""
    in_shape = shape_of(inp.shape)
    if in_shape is None or len(in_shape) != 2:
        raise bad(f"input {inp.name!r} must be a rank-2 matrix (rows, features), the graph has shape "
                  f"{show(inp.shape)}", field="input_name", shape=show(inp.shape))
    if inp.type not in dtypes:
        kinds = " and ".join(dtypes)
        raise bad(f"input {inp.name!r} has element type {inp.type}; only {kinds} inputs are supported",
                  field="input_name", type=inp.type)
    if in_shape[0] is not None:
        raise bad(f"input {inp.name!r} fixes the number of rows to {in_shape[0]} (shape {show(inp.shape)}); "
                  "the first dimension must be dynamic so that batches of any size can be served "
                  "(re-export with a dynamic batch axis)",
                  field="input_name", shape=show(inp.shape))
    if isinstance(in_shape[1], int) and in_shape[1] != width:
        raise bad(f"{width_source} but input {inp.name!r} takes {in_shape[1]} columns "
                  f"(shape {show(inp.shape)})", field="features", declared=width, graph=in_shape[1])


def check_field_input(inp: Any, field: str, string: bool) -> None:
    """A graph input fed by one field: (rows, 1) or (rows,) with a dynamic row count, a string input for a
    string field and a numeric one for a number."""
    in_shape = shape_of(inp.shape)
    if inp.type not in FIELD_DTYPES:
        raise bad(f"input {inp.name!r} (field {field!r}) has element type {inp.type}; only "
                  f"{', '.join(FIELD_DTYPES)} inputs are supported", field="features", type=inp.type)
    if (FIELD_DTYPES[inp.type] == STRING) != string:
        wanted = "a string field" if FIELD_DTYPES[inp.type] == STRING else "a number field"
        raise bad(f"input {inp.name!r} takes {inp.type}, so field {field!r} feeding it must be {wanted} "
                  f"(type: {'string' if 'string' in wanted else 'number'})", field="features", input=inp.name)
    if in_shape is None or in_shape[0] is not None or in_shape[1:] not in ([], [1], [None]):
        raise bad(f"input {inp.name!r} (field {field!r}) has shape {show(inp.shape)}; an input fed by one field "
                  "must be (rows, 1) or (rows,) with a dynamic number of rows", field="features",
                  shape=show(inp.shape))


def field_input_shape(inp: Any) -> list[int | None]:
    """The shape maas feeds a field's input (check_field_input passed): (rows,) for a vector input, e.g.
    skl2onnx's StringTensorType([None]), else (rows, 1)."""
    return [None] if len(inp.shape) == 1 else [None, 1]


def check_output_shape(task: str, labels: Sequence[str], name: str, shape: list[int | None], rows: int | None) -> None:
    """Classifiers: (rows, classes), or one probability column / a vector for binary; regression: (rows, 1)
    or a vector. `rows` None: the graph's declared shape (unknown dims allowed); else a real output's."""
    where = (f"output {name!r} has shape {show(shape)}" if rows is None
             else f"a test run on {rows} row{'s' if rows > 1 else ''} gave output {name!r} shape {show(shape)}")
    if len(shape) not in (1, 2) or (rows is not None and shape[0] != rows):
        raise bad(f"{where}; expected (rows, columns) or (rows,)", field="output_name", shape=show(shape))
    last = shape[1] if len(shape) == 2 else 1
    if task == "regression":
        if last is not None and last != 1:
            raise bad(f"{where}; a regression model must give one value per row", field="output_name",
                      shape=show(shape))
        return
    k = len(labels)
    allowed = {1, 2} if task == "binary" else {k}
    if len(shape) == 1 and task != "binary":
        raise bad(f"{where}; a multiclass model must give one column per label ({k})", field="labels",
                  shape=show(shape))
    if last is not None and last not in allowed:
        wanted = "2 class columns or 1 probability column" if task == "binary" else f"{k} columns"
        raise bad(f"{k} labels are declared but {where} ({last} per row); expected {wanted}", field="labels",
                  labels=k, graph=last)


def shape_of(shape: Any) -> list[int | None] | None:
    """onnxruntime's shape (ints, symbolic names, None) -> ints and None; None when the rank is unknown."""
    if not isinstance(shape, (list, tuple)) or not shape:
        return None
    return [d if isinstance(d, int) and d >= 0 else None for d in shape]


def show(shape: Any) -> str:
    if not isinstance(shape, (list, tuple)) or not shape:
        return "unknown"
    return "(" + ", ".join(str(d) if isinstance(d, int) else "?" for d in shape) + (",)" if len(shape) == 1 else ")")


def bad(message: str, field: str, **details: Any) -> UnprocessableError:
    return UnprocessableError(message, [{"field": field, **details}])


# --- helpers -------------------------------------------------------------------------------------------------


def _named(args: list[ort.NodeArg], name: str, kind: str) -> ort.NodeArg:
    for a in args:
        if a.name == name:
            return a
    have = ", ".join(repr(a.name) for a in args) or "none"
    raise UnusableBundle(f"the graph has no {kind} {name!r}, which the manifest names (its {kind}s: {have})")


def _width(f: Any) -> int:
    """Columns a feature makes, without building their names (output_names of a huge text spec would not fit)."""
    if isinstance(f, TextFeature):
        return f.max_length
    if isinstance(f, CategoricalFeature) and f.encoding == "onehot":
        return len(f.categories) + (1 if f.unseen == "other" else 0)
    return 1


def _bounded(where: str, what: str, value: int, limit: int, low: int = 0) -> None:
    if not low <= value <= limit:
        raise UnusableBundle(f"{where}: {value:,} {what} is outside the sane range {low:,}..{limit:,}")
