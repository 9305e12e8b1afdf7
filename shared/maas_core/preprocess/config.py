"""How to fit a preprocessing spec: one ColumnConfig per input column (training-time options)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Kind = Literal["numeric", "categorical", "boolean", "text"]
MissingStrategy = Literal["drop", "mean", "median", "most_frequent", "constant"]


class ColumnConfig(BaseModel):
    """Options for one input column. Defaults give a sensible tabular pipeline."""

    # training-only: no schema build on a serving cold start
    model_config = ConfigDict(extra="forbid", defer_build=True)

    kind: Kind
    required: bool = Field(default=True, description="callers must send it; a missing value is a 422 at serving time")
    sensitive: bool = Field(default=False, description="personal data: masked in captured predictions, never quoted "
                                                       "in error messages or logs")
    missing: MissingStrategy | None = Field(
        default=None,
        description="training rows with the value missing: drop the row, or fill (the fill is also used at serving "
                    "for optional fields). Default: drop for required fields, mean / most frequent for optional ones",
    )
    fill_value: float | str | bool | None = Field(default=None, description="the fill for missing='constant'")
    # numeric
    outliers: Literal["none", "iqr", "zscore"] = "none"
    outlier_action: Literal["clip", "impute", "drop"] = Field(
        default="clip", description="clip: values are clipped to the fitted bounds (training and serving); "
                                    "impute: a value outside them is replaced by the training median, as a "
                                    "value that cannot be a measurement (training and serving); "
                                    "drop: training rows outside the bounds are dropped")
    outlier_threshold: float | None = Field(default=None, gt=0, description="IQR multiple (1.5) or z-score (3.0)")
    scaler: Literal["standard", "minmax", "robust", "none"] = "standard"
    # categorical
    encoding: Literal["onehot", "ordinal"] = "onehot"
    unseen: Literal["ignore", "other", "reject"] = Field(
        default="ignore", description="a category not seen in training: all-zero one-hot / -1 ordinal (ignore), "
                                      "its own 'other' slot (other), or a 422 (reject)")
    max_categories: int | None = Field(default=None, ge=1, description="keep the most frequent; rarer ones are unseen")
    # text
    lowercase: bool = True
    strip_punctuation: bool = True
    vocab_size: int = Field(default=10_000, ge=1, description="most frequent words kept; others map to the OOV id")
    max_length: int | None = Field(default=None, ge=1, description="tokens per text; default: the 95th percentile")
    truncate: Literal["post", "pre"] = "post"
    dtype: Literal["int32", "int64"] = Field(default="int32", description="the ONNX input's integer type")

    @model_validator(mode="after")
    def _consistent(self) -> ColumnConfig:
        if self.missing == "constant" and self.fill_value is None:
            raise ValueError("missing='constant' needs fill_value")
        numeric_only = self.missing in ("mean", "median") or self.outliers != "none"
        if numeric_only and self.kind != "numeric":
            raise ValueError(f"missing={self.missing!r} / outliers={self.outliers!r} apply to numeric columns only")
        return self

    def missing_strategy(self) -> MissingStrategy:
        if self.missing:
            return self.missing
        if self.required:
            return "drop"
        return "mean" if self.kind == "numeric" else "most_frequent"


class SpecConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    columns: dict[str, ColumnConfig]
    row_norm: Literal["l1", "l2"] | None = Field(default=None, description="scale each feature row to unit norm")

    @classmethod
    def simple(cls, numeric: Sequence[str] = (), categorical: Sequence[str] = (), optional: Sequence[str] = (),
               boolean: Sequence[str] = (), text: Sequence[str] = ()) -> SpecConfig:
        """Defaults for every column, by kind; `optional` columns may be missing at serving time."""
        cols: dict[str, ColumnConfig] = {}
        by_kind: tuple[tuple[Kind, Sequence[str]], ...] = (
            ("numeric", numeric), ("categorical", categorical), ("boolean", boolean), ("text", text))
        for kind, names in by_kind:
            for name in names:
                cols[name] = ColumnConfig(kind=kind, required=name not in optional)
        return cls(columns=cols)

    @model_validator(mode="after")
    def _one_text_input(self) -> SpecConfig:
        kinds = [c.kind for c in self.columns.values()]
        if "text" in kinds and len(kinds) > 1:
            raise ValueError("a text model takes exactly one text column and nothing else")
        if not kinds:
            raise ValueError("no input columns configured")
        return self
