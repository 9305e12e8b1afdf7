"""Preprocessing: a declarative spec, fitted at training time and applied by training and serving alike.

    spec = PreprocessSpec.fit(train_columns, SpecConfig(columns={"age": ColumnConfig(kind="numeric"), ...}))
    x = spec.transform(records)          # serving: JSON records
    x = spec.transform_columns(columns)  # training: the same code on CSV columns

Modules: config (the pydantic column configs), spec (the fitted spec), features (one fitted feature per
column), values (raw values -> numpy columns), literals (missing/true/false spellings, type names: no numpy),
text (standardisation and tokenization).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from maas_core.lazy import lazy_exports

# Imported on first use (PEP 562): `import maas_core.preprocess.literals` (the request schemas, the drift
# formulas) then runs no numpy import, which the functions that never run a model do not carry.
_EXPORTS = {
    "ColumnConfig": "config", "SpecConfig": "config",
    "BooleanFeature": "features", "CategoricalFeature": "features", "NumericFeature": "features",
    "StringFeature": "features", "TextFeature": "features", "outlier_bounds": "features",
    "SPEC_FORMAT_VERSION": "spec", "PreprocessSpec": "spec",
}

if TYPE_CHECKING:
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


__getattr__ = lazy_exports(__name__, _EXPORTS)


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
