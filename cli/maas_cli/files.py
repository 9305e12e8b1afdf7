"""Reading the files `maas register` is given: the ONNX model, its declaration (JSON or YAML), an
optional preprocessing spec and optional background data. Every problem is a MaasError naming the file,
never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from maas_core.errors import MaasError, UnprocessableError
from maas_core.preprocess import BooleanFeature, CategoricalFeature, NumericFeature, PreprocessSpec, StringFeature
from maas_core.registration import ModelDeclaration


def read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MaasError(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}") from None


def parse_document(path: Path, what: str) -> Any:
    """A JSON file, or YAML when the name ends in .yaml / .yml."""
    text = read_bytes(path, what).decode("utf-8", errors="replace")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:  # pragma: no cover - pyyaml comes with the dev extra
            raise MaasError(f"reading {what} {str(path)!r} as YAML needs pyyaml (pip install pyyaml), "
                            "or write it as JSON") from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UnprocessableError(f"{what} {str(path)!r} is not valid YAML: {' '.join(str(exc).split())}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnprocessableError(f"{what} {str(path)!r} is not valid JSON: {exc.msg} "
                                 f"(line {exc.lineno}, column {exc.colno})") from None


def load_declaration(path: Path) -> ModelDeclaration:
    data = parse_document(path, "declaration file")
    if not isinstance(data, dict):
        raise UnprocessableError(f"declaration file {str(path)!r} must hold an object with task, labels, features, "
                                 f"input_name and output_name, not {type(data).__name__}")
    return ModelDeclaration.parse(data, source=f"declaration file {str(path)!r}")


def load_spec(path: Path) -> PreprocessSpec:
    text = read_bytes(path, "preprocessing spec")
    try:
        return PreprocessSpec.from_json(text)
    except json.JSONDecodeError as exc:
        raise UnprocessableError(f"preprocessing spec {str(path)!r} is not valid JSON: {exc.msg} "
                                 f"(line {exc.lineno}, column {exc.colno})") from None
    except ValidationError as exc:
        details = [{"field": ".".join(str(p) for p in e["loc"]), "reason": e["msg"]} for e in exc.errors()]
        raise UnprocessableError(f"preprocessing spec {str(path)!r} is invalid: "
                                 + "; ".join(f"{d['field']}: {d['reason']}" for d in details[:5]), details) from None
    except ValueError as exc:  # e.g. an unsupported format_version
        raise UnprocessableError(f"preprocessing spec {str(path)!r}: {exc}") from None


def load_background(path: Path, spec: PreprocessSpec) -> dict[str, Any]:
    """Baseline statistics of a background CSV (a sample of the model's training data): the training job's
    own (maas_training.evaluate), over the columns of the spec's fields once the spec accepts every row."""
    from maas_training.data import load_csv  # the training package, but not TensorFlow: numpy only
    from maas_training.evaluate import baseline_statistics

    try:
        columns = load_csv(path)
    except ValueError as exc:
        raise UnprocessableError(f"background data: {exc}") from None
    missing = [f.name for f in spec.features if f.name not in columns]
    if missing:
        raise UnprocessableError(f"background data {str(path)!r} has no column for input field(s) "
                                 f"{', '.join(missing)}", [{"field": "background", "missing": missing}])
    try:
        spec.transform_columns(columns, fill_required=True)  # values it cannot read would skew the statistics
    except UnprocessableError as exc:
        raise UnprocessableError(f"background data {str(path)!r}: {exc.message}", exc.details) from None

    def named(kind: type) -> list[str]:
        return [f.name for f in spec.features if isinstance(f, kind)]

    return baseline_statistics(columns, named(NumericFeature), named(CategoricalFeature) + named(StringFeature),
                               boolean=named(BooleanFeature))
