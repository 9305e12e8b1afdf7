"""The manifest: what a model bundle is, written last when a bundle is published.

It records every file's SHA-256 (checked before a file is trusted), the raw input schema callers
must send, the task and labels, holdout metrics and the framework versions used.

Variants: the same model in other encodings, e.g. `int8` (dynamically quantized, `model.int8.onnx`)
beside `float` (`model.onnx`). Each is recorded under `variants` with its file, size, SHA-256,
holdout metrics and (int8) its parity against float. A manifest without `variants` (written before
they existed) still loads and serves `float` from `model.onnx`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_FORMAT_VERSION = 1
MODEL_FILE = "model.onnx"
PREPROCESS_FILE = "preprocess.json"
MANIFEST_FILE = "manifest.json"
REPORT_FILE = "report.json"
INT8_MODEL_FILE = "model.int8.onnx"

DEFAULT_VARIANT = "float"
VARIANT_FILES = {DEFAULT_VARIANT: MODEL_FILE, "int8": INT8_MODEL_FILE}  # the variants serving knows, and their files
VARIANTS = tuple(VARIANT_FILES)

Task = Literal["binary", "multiclass", "regression"]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class InputField(BaseModel):
    """One field of a raw input record, as a caller sends it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    type: Literal["number", "string", "boolean"]
    required: bool = True
    description: str = ""
    sensitive: bool = Field(default=False, description="masked in captured predictions (maas_core.monitoring)")


class TensorInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    dtype: str
    shape: list[int | None]


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class Variant(BaseModel):
    """One servable encoding of the model: its file (also listed, with the same hash, in `files`)."""

    model_config = ConfigDict(extra="forbid")

    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    metrics: dict[str, float] = Field(default_factory=dict, description="holdout metrics of this variant")
    parity: dict[str, float] | None = Field(
        default=None, description="against the float variant on the holdout: max_abs_diff (probabilities or "
                                  "values), label_agreement (classifiers)")

    @classmethod
    def of(cls, file: str, data: bytes, metrics: dict[str, float],
           parity: dict[str, float] | None = None) -> Variant:
        return cls(file=file, sha256=sha256_hex(data), size=len(data), metrics=metrics, parity=parity)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    format_version: int = MANIFEST_FORMAT_VERSION
    name: str
    version: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    task: Task
    labels: list[str] = Field(default_factory=list, description="class labels in output order; empty for regression")
    target: str = ""
    input_schema: list[InputField]
    model_input: TensorInfo
    model_output: TensorInfo
    files: dict[str, FileEntry] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict, description="holdout metrics")
    baseline: dict[str, Any] = Field(default_factory=dict, description="training feature statistics, for drift")
    frameworks: dict[str, str] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict, description="hyper-parameters and data summary")
    variants: dict[str, Variant] = Field(default_factory=dict,
                                         description="servable encodings by name (float, int8); empty: float only")

    def variant_names(self) -> list[str]:
        """The variants this version can be served as: float always, and each recorded one."""
        return [DEFAULT_VARIANT, *(v for v in self.variants if v != DEFAULT_VARIANT)]

    def variant_file(self, variant: str) -> str | None:
        """The file holding `variant`, or None when this version has no such variant."""
        if variant in self.variants:
            return self.variants[variant].file
        return MODEL_FILE if variant == DEFAULT_VARIANT else None

    def summary(self) -> dict[str, Any]:
        """What the registry keeps about a version (the full manifest stays in S3)."""
        return {
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "task": self.task,
            "labels": self.labels,
            "metrics": self.metrics,
        }
