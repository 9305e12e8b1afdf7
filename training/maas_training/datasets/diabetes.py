"""A public regression dataset made messy the way real exports are: scikit-learn's diabetes data.

`load_diabetes(scaled=False)` (Efron et al., 442 patients, 10 baseline measurements, the
target a measure of disease progression one year later) ships inside scikit-learn, so no network is
needed; scikit-learn is a development dependency, imported only here. `write_messy_diabetes` writes it as
a CSV with what a new user's file has: blank and "NA" cells, numbers padded with spaces, duplicated rows,
a few absurd outliers and an extra categorical column (`clinic`, unrelated to the target). It is the
regression case of docs/performance.md ("Model quality") and of the baseline test.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from maas_training.config import TrainingConfig

TARGET = "progression"
CLINICS = ("north", "south", "east", "west")


def write_messy_diabetes(path: Path, seed: int = 0) -> Path:
    """Write the messy diabetes CSV to `path` (the same bytes for the same seed) and return it."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=False)  # as_frame=True would need pandas: plain arrays do
    names = [str(c) for c in bunch.feature_names]
    rng = np.random.default_rng(seed)
    header = [*names, TARGET, "clinic"]
    rows: list[list[str]] = []
    for values, target in zip(bunch.data, bunch.target, strict=True):
        rows.append([*(f"{v:g}" for v in values), f"{target:g}", str(rng.choice(CLINICS))])
    n, n_features = len(rows), len(names)
    bmi, bp = names.index("bmi"), names.index("bp")
    for i in rng.choice(n, 25, replace=False):  # blanks and NA markers in the features
        rows[i][int(rng.integers(n_features))] = str(rng.choice(["", "NA", " "]))
    for i in rng.choice(n, 40, replace=False):  # numbers padded with spaces
        j = int(rng.integers(n_features))
        rows[i][j] = f"  {rows[i][j]} "
    for i in rng.choice(n, 4, replace=False):  # absurd outliers: a unit slip in bmi and bp
        rows[i][bmi] = f"{bunch.data[i, bmi] * 100:g}"
        rows[i][bp] = f"{bunch.data[i, bp] * 10:g}"
    rows += [list(rows[int(i)]) for i in rng.choice(n, 12, replace=False)]  # duplicated rows
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def diabetes_config(data: Path, **overrides: Any) -> TrainingConfig:
    """maas-train's defaults on the messy file: only the data, a name and the target."""
    return TrainingConfig(**{"data": data, "model_name": "diabetes", "target": TARGET, **overrides})
