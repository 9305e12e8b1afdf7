"""Datasets shipped with the package, and training configs that work on them.

`penguins.csv` is the Palmer penguins data (Horst, Hill & Gorman, CC0): 344 penguins of three
species, columns species, island, bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g,
sex, year; 'NA' marks a missing value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maas_training.config import TrainingConfig

DATASETS = Path(__file__).resolve().parent
PENGUINS = DATASETS / "penguins.csv"


def penguins_config(**overrides: Any) -> TrainingConfig:
    """Species from measurements and island; `sex` may be missing at serving time, `year` is ignored.

    Reaches > 0.9 holdout accuracy (typically ~0.98) in a few seconds on two cores.
    """
    settings: dict[str, Any] = {
        "data": PENGUINS,
        "model_name": "penguins",
        "target": "species",
        "exclude": ["year"],
        "optional": ["sex"],
        "hidden_units": [16, 8],
        "epochs": 40,
        "batch_size": 16,
        "learning_rate": 0.01,
        "early_stopping_patience": 10,
    }
    settings.update(overrides)
    return TrainingConfig(**settings)
