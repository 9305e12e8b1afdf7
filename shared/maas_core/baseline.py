"""The baseline record: one raw value per input field, from the training statistics.

Explanations occlude fields with these values (maas_core.explain), and every model version is run on
this record once when it is loaded (maas_core.load_checks): a version whose baseline record does not
give a finite output of the right shape is refused before it answers anyone.

    numeric              the training mean (manifest.baseline features[name].mean), else the
                         spec's fill value, else its scaler center
    categorical/boolean  the most frequent training value (manifest.baseline frequencies), else
                         the spec's fill value, else the first category / false
    string               the most frequent value (of the background data), else the fill, else
                         UNKNOWN_STRING (not missing, so a required field has a value for the smoke run;
                         explanations never use it: a model without statistics has no baseline)
    text                 the empty text (all padding)

Where the statistics come from is `manifest.baseline["source"]` (BaselineSource): absent for a trained
model (its training split), "background" for an external model registered with a background CSV (the
same statistics, over that file), "declared" for one registered with a baseline record of its own
(`{"source": "declared", "record": {field: value}}`: the record's values are taken as they are). An
external model registered with neither has no baseline (`baseline_source` is None): its fallbacks would
be the spec's zeros, good enough for a load-time smoke run, meaningless for an explanation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from maas_core.manifest import Manifest
from maas_core.preprocess import (
    BooleanFeature,
    CategoricalFeature,
    NumericFeature,
    PreprocessSpec,
    StringFeature,
    TextFeature,
)

UNKNOWN_STRING = "unknown"
BaselineSource = Literal["training", "declared", "background"]
DECLARED: BaselineSource = "declared"
BACKGROUND: BaselineSource = "background"


def baseline_source(manifest: Manifest) -> BaselineSource | None:
    """Where the manifest's baseline comes from; None for an external model registered without one."""
    source = manifest.baseline.get("source")
    if source in (DECLARED, BACKGROUND):
        return source  # type: ignore[no-any-return]
    return None if manifest.training.get("source") == "external" else "training"


def baseline_values(spec: PreprocessSpec, baseline: Mapping[str, Any] | None) -> dict[str, Any]:
    """The baseline record (see the module docstring), field -> JSON value."""
    stats: Mapping[str, Any] = (baseline or {}).get("features") or {}
    record: Mapping[str, Any] = (baseline or {}).get("record") or {}
    values: dict[str, Any] = {}
    for f in spec.features:
        s = stats.get(f.name) or {}
        if f.name in record:
            values[f.name] = record[f.name]
        elif isinstance(f, NumericFeature):
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
        elif isinstance(f, StringFeature):  # an external graph's own encoder reads it
            values[f.name] = _most_frequent(s.get("frequencies")) or f.fill or UNKNOWN_STRING
        elif isinstance(f, TextFeature):
            values[f.name] = ""
    return values


def _most_frequent(frequencies: Mapping[str, float] | None) -> str | None:
    if not frequencies:
        return None
    return min(frequencies, key=lambda k: (-frequencies[k], k))  # ties: the smallest, deterministically
