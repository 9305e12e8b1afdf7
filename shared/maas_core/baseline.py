"""The training baseline record: one raw value per input field, from the training statistics.

Explanations occlude fields with these values (maas_core.explain), and every model version is run on
this record once when it is loaded (maas_core.load_checks): a version whose baseline record does not
give a finite output of the right shape is refused before it answers anyone.

    numeric              the training mean (manifest.baseline features[name].mean), else the
                         spec's fill value, else its scaler center
    categorical/boolean  the most frequent training value (manifest.baseline frequencies), else
                         the spec's fill value, else the first category / false
    text                 the empty text (all padding)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from maas_core.preprocess import BooleanFeature, CategoricalFeature, NumericFeature, PreprocessSpec, TextFeature


def baseline_values(spec: PreprocessSpec, baseline: Mapping[str, Any] | None) -> dict[str, Any]:
    """The baseline record (see the module docstring), field -> JSON value."""
    stats: Mapping[str, Any] = (baseline or {}).get("features") or {}
    values: dict[str, Any] = {}
    for f in spec.features:
        s = stats.get(f.name) or {}
        if isinstance(f, NumericFeature):
            mean = s.get("mean")
            values[f.name] = float(mean) if isinstance(mean, (int, float)) and np.isfinite(mean) else (
                f.fill if f.fill is not None else f.center)
        elif isinstance(f, CategoricalFeature):
            top = _most_frequent(s.get("frequencies"))
            values[f.name] = top if top in f.categories else (
                f.fill if f.fill is not None else f.categories[0])
        elif isinstance(f, BooleanFeature):
            top = _most_frequent(s.get("frequencies"))
            values[f.name] = (top == "true") if top in ("true", "false") else bool(f.fill)
        elif isinstance(f, TextFeature):
            values[f.name] = ""
    return values


def _most_frequent(frequencies: Mapping[str, float] | None) -> str | None:
    if not frequencies:
        return None
    return min(frequencies, key=lambda k: (-frequencies[k], k))  # ties: the smallest, deterministically
