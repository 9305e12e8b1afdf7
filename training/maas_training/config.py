"""What one training run does: the dataset, the features, the network and where the bundle goes.

Feature lists left as None are inferred from the CSV (see `maas_training.data.resolve_features`);
a task left as None is inferred from the target column (see `maas_training.data.infer_task`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from maas_core.registry import NAME_PATTERN

Task = Literal["binary", "multiclass", "regression"]
Optimizer = Literal["adam", "sgd", "momentum", "rmsprop"]


def _plain_name(kind: str, value: str) -> str:
    if not NAME_PATTERN.match(value):
        raise ValueError(f"{kind} {value!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return value


class TrainingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    data: Path = Field(description="CSV file with a header row; 'NA' and empty cells are missing")
    model_name: str
    target: str = Field(min_length=1)
    task: Task | None = Field(default=None, description="None: inferred from the target column")

    numeric: list[str] | None = Field(default=None, description="None: inferred (columns whose values all parse as numbers)")
    categorical: list[str] | None = Field(default=None, description="None: every other column")
    exclude: list[str] = Field(default_factory=list, description="columns the model never sees")
    optional: list[str] = Field(default_factory=list, description="features callers may omit (filled with the fitted fill)")

    hidden_units: list[int] = Field(default_factory=lambda: [32, 16])
    epochs: int = Field(default=60, ge=1, le=100_000)
    batch_size: int = Field(default=32, ge=1)
    learning_rate: float = Field(default=0.01, gt=0, le=10)
    optimizer: Optimizer = "adam"
    l2: float = Field(default=0.0, ge=0)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    early_stopping_patience: int = Field(default=10, ge=0, description="epochs without val_loss improvement; 0 = off")
    seed: int = Field(default=42, ge=0, lt=2**32)
    test_size: float = Field(default=0.2, gt=0, lt=1, description="fraction of rows held out for the test metrics")
    val_size: float = Field(default=0.1, ge=0, lt=1, description="fraction of rows used for validation / early stopping")

    bucket: str = Field(default_factory=lambda: os.environ.get("MAAS_MODEL_BUCKET") or "maas-models", min_length=3)
    table: str = Field(default_factory=lambda: os.environ.get("MAAS_REGISTRY_TABLE") or "maas-registry", min_length=3)
    promote: str | None = Field(default=None, description="alias to point at the new version, e.g. 'prod'")
    parity_tolerance: float = Field(default=1e-4, gt=0, description="largest ONNX vs Keras output difference accepted")

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

    @field_validator("numeric", "categorical", "exclude", "optional")
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
    def _check_consistency(self) -> "TrainingConfig":
        if self.test_size + self.val_size >= 0.9:
            raise ValueError(f"test_size + val_size = {self.test_size + self.val_size:g} leaves too few rows to train on (keep it below 0.9)")
        for kind in ("numeric", "categorical", "optional"):
            names = getattr(self, kind) or []
            if self.target in names:
                raise ValueError(f"the target column {self.target!r} cannot also be a{'n' if kind == 'optional' else ''} {kind} feature")
        if self.target in self.exclude:
            raise ValueError(f"the target column {self.target!r} cannot be excluded")
        both = set(self.numeric or []) & set(self.categorical or [])
        if both:
            raise ValueError(f"column(s) both numeric and categorical: {', '.join(sorted(both))}")
        excluded_features = (set(self.numeric or []) | set(self.categorical or []) | set(self.optional)) & set(self.exclude)
        if excluded_features:
            raise ValueError(f"column(s) both excluded and used as features: {', '.join(sorted(excluded_features))}")
        return self

    def hyperparameters(self) -> dict[str, object]:
        """What the manifest records about how the network was trained."""
        return self.model_dump(mode="json", include={
            "hidden_units", "epochs", "batch_size", "learning_rate", "optimizer", "l2", "dropout",
            "early_stopping_patience", "seed", "test_size", "val_size",
        })
