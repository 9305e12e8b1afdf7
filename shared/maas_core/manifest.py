"""The manifest: what a model bundle is, written last when a bundle is published.

It records every file's SHA-256 (checked before a file is trusted), the raw input schema callers
must send, the task and labels, holdout metrics and the framework versions used.

Variants: the same model in other encodings, e.g. `int8` (dynamically quantized, `model.int8.onnx`)
beside `float` (`model.onnx`). Each is recorded under `variants` with its file, size, SHA-256,
holdout metrics and (int8) its parity against float. A manifest without `variants` (written before
they existed) still loads and serves `float` from `model.onnx`.

Candidates: the models a training job compared on the same split, the trivial baseline (majority class /
training mean) and the linear one among them, each with its holdout metrics, the choice (made on the
validation split or by cross-validation, never on the holdout) and the chosen model's margin over each.
A manifest without `candidates` (written before they existed, or by `maas register`) loads with None.
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
REPORT_TABLE_FILE = "report.md"  # the models compared, as a Markdown table (Candidates.markdown)
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


Selection = Literal["validation", "cross-validation", "fixed"]
# metrics where a lower value is better; every other holdout metric (accuracy, r2, ...) is better higher
LOWER_IS_BETTER = frozenset({"mae", "rmse", "log_loss"})


def improvement(metric: str, value: float, reference: float) -> float:
    """How much better `value` is than `reference` in `metric`'s own direction (negative: worse)."""
    return reference - value if metric in LOWER_IS_BETTER else value - reference


class CandidateResult(BaseModel):
    """One model trained on the job's split: what it is, its holdout metrics and its selection score."""

    model_config = ConfigDict(extra="forbid")

    description: str
    metrics: dict[str, float] = Field(description="holdout metrics")
    selection: dict[str, float] = Field(
        default_factory=dict, description="the choice's score: `<metric>` (mean over the folds under "
                                          "cross-validation), `<metric>_std` and `folds`; empty: not a candidate")
    train_seconds: float = Field(default=0.0, ge=0)


class Candidates(BaseModel):
    """The baselines and candidates of a trained version, and why the published one was chosen."""

    model_config = ConfigDict(extra="forbid")

    chosen: str = Field(description="the key in `models` of the published model")
    metric: str = Field(description="the metric the choice and the trivial-baseline check use")
    selection: Selection = Field(
        description="how the chosen model was picked: best on the validation split, best mean over k folds of "
                    "the train + validation rows, or named by the job's `model` setting")
    models: dict[str, CandidateResult] = Field(description="`trivial`, `linear` / `bow` and every candidate")
    margins: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="baseline key -> metric -> the chosen model's improvement over it on "
                                          "the holdout (positive: better, in each metric's own direction)")
    beats_trivial: bool
    beats_linear: bool | None = Field(default=None, description="not worse than the linear baseline on the holdout "
                                                                "(None: the linear baseline was not a candidate)")
    allowed_no_better: bool = Field(default=False, description="published although it does not beat the trivial "
                                                               "(or linear) baseline (--allow-no-better)")

    def _choice(self, name: str) -> str:
        """A model's selection score as printed: the mean ± std over the folds, or '' when not a candidate."""
        sel, metric = self.models[name].selection, self.metric
        if metric not in sel:
            return ""
        spread = f" ± {sel[metric + '_std']:.2g}" if metric + "_std" in sel else ""
        return f"{sel[metric]:.4g}{spread}"

    def _metric_names(self) -> list[str]:
        return list(next(iter(self.models.values())).metrics)

    def lines(self) -> list[str]:
        """A table of the models compared (holdout metrics, selection score) and the chosen one's margins:
        the training job's output, and `maas show`'s."""
        names, keys = list(self.models), self._metric_names()
        width = max(len(n) for n in names) + 2
        widths = [max(12, len(k) + 2) for k in keys]  # a header longer than its values still gets a gap
        choice_head = "choice " + self.metric
        choice_width = max(22, len(choice_head) + 2)
        head = f"{'model':<{width}}" + "".join(f"{k:>{w}}" for k, w in zip(keys, widths, strict=True)) \
            + f"{choice_head:>{choice_width}}"
        lines = [f"holdout metrics of the models compared (choice by {self.selection}):", head]
        for name in names:
            result = self.models[name]
            mark = " *" if name == self.chosen else ""
            values = "".join(f"{result.metrics.get(k, float('nan')):>{w}.4g}"
                             for k, w in zip(keys, widths, strict=True))
            lines.append(f"{name + mark:<{width}}{values}{self._choice(name):>{choice_width}}")
        for name, margin in self.margins.items():
            gains = " ".join(f"{k}={v:+.4g}" for k, v in margin.items())
            lines.append(f"margin of {self.chosen} over {name}: {gains}")
        if self.allowed_no_better:
            lines.append(f"{self.chosen} does not beat the {'trivial' if not self.beats_trivial else 'linear'} "
                         "baseline on the holdout: published anyway (allow_no_better)")
        return lines

    def markdown(self) -> str:
        """The training report's table (report.md): each model's holdout metrics, its selection score and the
        chosen model's margin over it (positive: the chosen one is better, in each metric's own direction)."""
        keys = self._metric_names()
        head = ["model", "description", *keys, f"choice {self.metric}", f"margin of {self.chosen}", "train s"]
        rows = [head, ["---"] * len(head)]
        for name, result in self.models.items():
            margin = self.margins.get(name)
            gains = "chosen" if margin is None else ", ".join(f"{k} {v:+.4g}" for k, v in margin.items())
            label = f"**{name}** (chosen)" if name == self.chosen else name
            rows.append([label, result.description.replace("|", "\\|"),
                         *(f"{result.metrics[k]:.4g}" if k in result.metrics else "" for k in keys),
                         self._choice(name) or "-", gains,
                         f"{result.train_seconds:.1f}" if result.train_seconds else "-"])
        title = (f"## Models compared\n\nChosen: **{self.chosen}**, by {self.selection} on {self.metric}; metrics on "
                 "the holdout rows.\n")
        notes = []
        if self.allowed_no_better:
            notes.append(f"\n{self.chosen} does not beat the {'trivial' if not self.beats_trivial else 'linear'} "
                         "baseline on the holdout: published anyway (allow_no_better).\n")
        return title + "\n" + "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n" + "".join(notes)

    def summary(self) -> dict[str, Any]:
        """What the registry keeps (`maas versions`): the chosen model and its margin over each baseline."""
        return {"chosen": self.chosen, "metric": self.metric, "beats_trivial": self.beats_trivial,
                "allowed_no_better": self.allowed_no_better,
                "margins": {name: gain[self.metric] for name, gain in self.margins.items() if self.metric in gain}}


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
    model_inputs: list[TensorInfo] = Field(
        default_factory=list, description="an external graph with one input per field: the inputs, in the "
                                          "spec's column order (each (rows, 1) or (rows,)); empty: model_input "
                                          "takes the matrix")
    model_output: TensorInfo
    files: dict[str, FileEntry] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict, description="holdout metrics")
    baseline: dict[str, Any] = Field(default_factory=dict, description="training feature statistics, for drift")
    frameworks: dict[str, str] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict, description="hyper-parameters and data summary")
    variants: dict[str, Variant] = Field(default_factory=dict,
                                         description="servable encodings by name (float, int8); empty: float only")
    candidates: Candidates | None = Field(default=None, description="baselines and candidates on the same split")

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
            **({"choice": self.candidates.summary()} if self.candidates is not None else {}),
        }
