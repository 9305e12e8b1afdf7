"""Preprocessing: a declarative spec, fitted at training time and applied by training and serving alike.

    spec = PreprocessSpec.fit(train_columns, SpecConfig(columns={"age": ColumnConfig(kind="numeric"), ...}))
    x = spec.transform(records)          # serving: JSON records
    x = spec.transform_columns(columns)  # training: the same code on CSV columns
"""

from maas_core.preprocess.config import ColumnConfig, SpecConfig
from maas_core.preprocess.features import (
    BooleanFeature,
    CategoricalFeature,
    NumericFeature,
    StringFeature,
    TextFeature,
    outlier_bounds,
)
from maas_core.preprocess.spec import SPEC_FORMAT_VERSION, PreprocessSpec

__all__ = [
    "SPEC_FORMAT_VERSION",
    "BooleanFeature",
    "CategoricalFeature",
    "ColumnConfig",
    "NumericFeature",
    "PreprocessSpec",
    "SpecConfig",
    "StringFeature",
    "TextFeature",
    "outlier_bounds",
]
