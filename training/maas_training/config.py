"""What one training run does: the dataset, the columns, the network and where the bundle goes.

A config comes from keyword arguments, from a JSON or YAML file (`TrainingConfig.from_file`, whose
keys are the field names below), or from `maas-train` flags laid over such a file.

Columns. Each input column becomes a `maas_core.preprocess.ColumnConfig`, built in three layers,
later ones winning:

1. `ColumnConfig`'s own defaults (standard scaling, one-hot, drop training rows missing a
   required value, ...);
2. this config's defaults for a kind: `scaler`, `missing`, `outliers`, `outlier_action`,
   `outlier_threshold` (numeric), `encoding`, `unseen`, `max_categories` (categorical), `missing`
   (categorical and boolean, unless it is mean / median), and `optional` (required=False). With
   `outliers` left unset, a numeric column's value beyond the IQR fences at DEFAULT_IQR_FENCE (fitted on
   the training split, stored in the spec, applied at serving) is replaced by the training median
   (outlier_action impute): a unit slip can drag neither a linear model's fit nor its predictions
   (docs/training.md, "Outliers by default");
3. the options set explicitly for that column in `columns`.

A column's kind comes from `columns[name].kind` or the `numeric` / `categorical` / `boolean` /
`text` lists; every other column (not the target, not excluded) gets an inferred kind (see
`maas_training.data.infer_kind`). Exception: when both `numeric` and `categorical` are given,
together with `columns` and the other lists they name the whole feature set and nothing is
inferred. A task left as None is inferred from the target column (`maas_training.data.infer_task`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from maas_core.preprocess import ColumnConfig
from maas_core.preprocess.config import Kind, MissingStrategy
from maas_core.registry import NAME_PATTERN

Task = Literal["binary", "multiclass", "regression"]
Optimizer = Literal["adam", "sgd", "momentum", "rmsprop"]
Loss = Literal["crossentropy", "focal", "mse", "mae", "huber"]
ModelKind = Literal["auto", "linear", "mlp", "lstm", "bow"]

KINDS: tuple[Kind, ...] = ("numeric", "categorical", "boolean", "text")
CLASSIFICATION_LOSSES = ("crossentropy", "focal")
REGRESSION_LOSSES = ("mse", "mae", "huber")
# the network hyperparameters recorded in the manifest (training.hyperparameters), by architecture
_COMMON_HYPERPARAMETERS = ("loss", "epochs", "batch_size", "learning_rate", "optimizer", "l2", "dropout",
                           "early_stopping_patience", "seed", "test_size", "val_size")
MLP_HYPERPARAMETERS = ("hidden_units", *_COMMON_HYPERPARAMETERS)
# the default outlier bounds of a numeric column: Tukey's "far out" fences, Q1 - 3 IQR and Q3 + 3 IQR (wide
# enough to leave a normal column's values alone: 0.0002% of them lie beyond)
DEFAULT_IQR_FENCE = 3.0
TEXT_HYPERPARAMETERS = ("embed_dim", "lstm_units", "lstm_reverse", *_COMMON_HYPERPARAMETERS)


def _plain_name(kind: str, value: str) -> str:
    if not NAME_PATTERN.match(value):
        raise ValueError(f"{kind} {value!r} must be 1-64 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit")
    return value


def default_loss(task: str) -> str:
    return "mse" if task == "regression" else "crossentropy"


def check_loss(loss: str | None, task: str) -> None:
    """A loss must suit the task: crossentropy / focal for classifiers, mse / mae / huber for regression."""
    if loss is None:
        return
    allowed = REGRESSION_LOSSES if task == "regression" else CLASSIFICATION_LOSSES
    if loss not in allowed:
        raise ValueError(f"loss {loss!r} does not suit a {task} task; use one of: {', '.join(allowed)}")


class QuantizeConfig(BaseModel):
    """The INT8 variant (maas_training.quantize): published beside the float model unless it fails to load
    or loses more than `max_metric_drop` of holdout accuracy (R^2 for a regression)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="also publish a dynamically quantized INT8 model.int8.onnx")
    max_metric_drop: float = Field(
        default=0.02, ge=-1, le=1, description="largest accuracy (or R^2) drop vs the float model accepted; "
                                               "a negative value demands a gain, i.e. refuses the variant")


class TrainingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    data: Path = Field(description="CSV file with a header row; 'NA', empty and other missing markers are missing")
    model_name: str
    target: str = Field(min_length=1)
    task: Task | None = Field(default=None, description="None: inferred from the target column")

    # --- which columns, of which kind -----------------------------------------------------------
    numeric: list[str] | None = Field(default=None, description="numeric feature columns")
    categorical: list[str] | None = Field(default=None, description="categorical feature columns")
    boolean: list[str] | None = Field(default=None, description="boolean feature columns (true/false, yes/no, 1/0)")
    text: list[str] | None = Field(default=None, description="the free-text column of a text model (one, and alone)")
    columns: dict[str, ColumnConfig] | None = Field(
        default=None, description="per-column preprocessing options (kind included); they win over the defaults below")
    exclude: list[str] = Field(default_factory=list, description="columns the model never sees")
    optional: list[str] = Field(default_factory=list,
                                description="features callers may omit (filled with the fitted fill)")
    sensitive: list[str] = Field(default_factory=list, description="features holding personal data: masked in captured "
                                                                   "predictions, never quoted in errors or logs")

    # --- preprocessing defaults for every column of the matching kind (None: ColumnConfig's default)
    scaler: Literal["standard", "minmax", "robust", "none"] | None = Field(default=None, description="numeric")
    missing: MissingStrategy | None = Field(
        default=None, description="numeric (any), categorical and boolean (drop, most_frequent, constant)")
    fill_value: float | str | bool | None = Field(default=None, description="the fill for missing='constant'")
    outliers: Literal["none", "iqr", "zscore"] | None = Field(
        default=None, description="numeric; unset: iqr at Q1 - 3 IQR, Q3 + 3 IQR with outlier_action impute "
                                   "(none turns it off)")
    outlier_action: Literal["clip", "impute", "drop"] | None = Field(default=None, description="numeric")
    outlier_threshold: float | None = Field(default=None, gt=0, description="numeric: IQR multiple or z-score")
    encoding: Literal["onehot", "ordinal"] | None = Field(default=None, description="categorical")
    unseen: Literal["ignore", "other", "reject"] | None = Field(default=None, description="categorical")
    max_categories: int | None = Field(default=None, ge=1, description="categorical")
    row_norm: Literal["l1", "l2"] | None = Field(default=None, description="scale each feature row to unit norm")

    # --- the network --------------------------------------------------------------------------
    model: ModelKind = Field(
        default="auto", description="auto: train the candidates that fit the data (feature columns: linear, mlp; "
                                    "a text column: bow, lstm) and keep the best on the validation split "
                                    "(maas_training.candidates)")
    allow_no_better: bool = Field(
        default=False, description="publish even when the chosen model does not beat the trivial baseline "
                                   "(majority class / training mean) on the holdout; the manifest says so")
    hidden_units: list[int] = Field(default_factory=lambda: [32, 16], description="MLP hidden layers")
    embed_dim: int = Field(default=32, ge=1, le=4096, description="text model: embedding size")
    lstm_units: int = Field(default=32, ge=1, le=4096, description="text model: LSTM units")
    lstm_reverse: bool = Field(
        default=True, description="text model: the LSTM reads the ids last to first, so the end padding comes "
                                  "before the words and the final state is the words' (no masking: docs/training.md)")
    loss: Loss | None = Field(default=None, description="None: crossentropy (classifiers) or mse (regression)")
    epochs: int = Field(default=60, ge=1, le=100_000)
    batch_size: int = Field(default=32, ge=1)
    learning_rate: float = Field(default=0.01, gt=0, le=10)
    optimizer: Optimizer = "adam"
    l2: float = Field(default=0.0, ge=0)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    early_stopping_patience: int = Field(default=10, ge=0, description="epochs without val_loss improvement; 0 = off")
    seed: int = Field(default=42, ge=0, lt=2**32)
    test_size: float = Field(default=0.2, gt=0, lt=1, description="fraction of rows held out for the test metrics")
    val_size: float = Field(default=0.1, ge=0, lt=1,
                            description="fraction of rows used for validation / early stopping")

    # --- publishing ---------------------------------------------------------------------------
    bucket: str = Field(default_factory=lambda: os.environ.get("MAAS_MODEL_BUCKET") or "maas-models", min_length=3)
    table: str = Field(default_factory=lambda: os.environ.get("MAAS_REGISTRY_TABLE") or "maas-registry", min_length=3)
    promote: str | None = Field(default=None, description="alias to point at the new version, e.g. 'prod'")
    parity_tolerance: float = Field(default=1e-4, gt=0, description="largest ONNX vs Keras output difference accepted")
    quantize: QuantizeConfig = Field(default_factory=QuantizeConfig,
                                     description="the INT8 variant; true / false turns it on / off with the defaults")

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainingConfig:
        """A JSON (.json) or YAML (.yaml / .yml) file of field values, then `overrides` on top.
        A relative `data` path in the file is relative to the file's folder."""
        return cls(**{**read_config_file(path), **overrides})

    @field_validator("quantize", mode="before")
    @classmethod
    def _quantize_switch(cls, v: Any) -> Any:
        return {"enabled": v} if isinstance(v, bool) else v  # `quantize: false` in a file, --no-quantize

    @field_validator("model_name")
    @classmethod
    def _check_model_name(cls, v: str) -> str:
        return _plain_name("model_name", v)

    @field_validator("promote")
    @classmethod
    def _check_alias(cls, v: str | None) -> str | None:
        return None if v is None else _plain_name("promote alias", v)

    @field_validator("hidden_units")
    @classmethod
    def _check_units(cls, v: list[int]) -> list[int]:
        if not v or any(u < 1 for u in v):
            raise ValueError("hidden_units needs at least one layer, each with a positive number of units")
        return v

    @field_validator("numeric", "categorical", "boolean", "text", "exclude", "optional", "sensitive")
    @classmethod
    def _no_duplicates(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        seen: set[str] = set()
        dupes = [c for c in v if c in seen or seen.add(c)]  # type: ignore[func-returns-value]
        if dupes:
            raise ValueError(f"column(s) listed twice: {', '.join(dupes)}")
        if any(not c for c in v):
            raise ValueError("empty column name")
        return v

    @model_validator(mode="after")
    def _check_consistency(self) -> TrainingConfig:
        if self.test_size + self.val_size >= 0.9:
            raise ValueError(f"test_size + val_size = {self.test_size + self.val_size:g} leaves too few rows to "
                             "train on (keep it below 0.9)")
        for kind in (*KINDS, "optional"):
            if self.target in (getattr(self, kind) or []):
                article = "an" if kind == "optional" else "a"
                raise ValueError(f"the target column {self.target!r} cannot also be {article} {kind} feature")
        if self.target in (self.columns or {}):
            raise ValueError(f"the target column {self.target!r} cannot also be a feature (it is in columns)")
        if self.target in self.exclude:
            raise ValueError(f"the target column {self.target!r} cannot be excluded")
        kinds = self.explicit_kinds()  # raises on a column given two kinds
        excluded_features = (set(kinds) | set(self.optional)) & set(self.exclude)
        if excluded_features:
            raise ValueError(f"column(s) both excluded and used as features: {', '.join(sorted(excluded_features))}")
        for name, cfg in (self.columns or {}).items():
            if name in self.optional and "required" in cfg.model_fields_set and cfg.required:
                raise ValueError(f"column {name!r} is optional but its columns entry says required: true")
        if self.missing == "constant" and self.fill_value is None:
            raise ValueError("missing='constant' needs fill_value")
        if self.task is not None:
            check_loss(self.loss, self.task)
        return self

    # --- columns ------------------------------------------------------------------------------

    def explicit_kinds(self) -> dict[str, Kind]:
        """Column -> kind, for the columns given a kind in `columns` or a kind list."""
        kinds: dict[str, Kind] = {}
        sources: dict[str, str] = {}
        for name, cfg in (self.columns or {}).items():
            kinds[name], sources[name] = cfg.kind, "columns"
        for kind in KINDS:
            for name in getattr(self, kind) or []:
                if name in kinds and kinds[name] != kind:
                    raise ValueError(f"column {name!r} is both {kinds[name]} ({sources[name]}) and {kind}")
                kinds[name], sources[name] = kind, kind
        return kinds

    def closed_feature_set(self) -> bool:
        """True when the named columns are all the features (both numeric and categorical are given)."""
        return self.numeric is not None and self.categorical is not None

    def column_config(self, name: str, kind: Kind) -> ColumnConfig:
        """The preprocessing options of one input column: ColumnConfig defaults < this config's
        defaults for the kind < the options set explicitly in `columns[name]`."""
        settings: dict[str, Any] = {"kind": kind, "required": name not in self.optional,
                                    "sensitive": name in self.sensitive}
        explicit = (self.columns or {}).get(name)
        if kind == "numeric":
            if self.outliers is None and not (explicit and "outliers" in explicit.model_fields_set):
                settings.update(outliers="iqr", outlier_threshold=DEFAULT_IQR_FENCE, outlier_action="impute")
            for key in ("scaler", "outliers", "outlier_action", "outlier_threshold", "missing", "fill_value"):
                if getattr(self, key) is not None:
                    settings[key] = getattr(self, key)
        elif kind in ("categorical", "boolean"):
            if self.missing is not None and self.missing not in ("mean", "median"):
                settings["missing"] = self.missing
                if self.fill_value is not None:
                    settings["fill_value"] = self.fill_value
            if kind == "categorical":
                for key in ("encoding", "unseen", "max_categories"):
                    if getattr(self, key) is not None:
                        settings[key] = getattr(self, key)
        if explicit is not None:
            settings.update(explicit.model_dump(include=explicit.model_fields_set))
        try:
            return ColumnConfig(**settings)
        except ValueError as exc:
            raise ValueError(f"column {name!r}: {exc}") from exc

    def hyperparameters(self, text: bool = False) -> dict[str, object]:
        """What the manifest records about how the network was trained (`loss` resolved by the job)."""
        return self.model_dump(mode="json", include=set(TEXT_HYPERPARAMETERS if text else MLP_HYPERPARAMETERS))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The field values in a JSON or YAML config file (a mapping at the top)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read config file {str(path)!r}: {exc.strerror or exc}") from exc
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            values = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:  # pragma: no cover - pyyaml ships with the training extra
                raise ValueError("YAML config files need pyyaml (pip install pyyaml), or use JSON") from None
            values = yaml.safe_load(text)
        else:
            raise ValueError(f"config file {str(path)!r}: expected a .json, .yaml or .yml file")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"config file {str(path)!r} is not valid JSON: {exc}") from exc
    except Exception as exc:
        if type(exc).__module__.startswith("yaml"):
            raise ValueError(f"config file {str(path)!r} is not valid YAML: {exc}") from exc
        raise
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping of settings, not {type(values).__name__}")
    data = values.get("data")
    if isinstance(data, str) and data and not Path(data).is_absolute():
        values["data"] = str(path.parent / data)
    return values
