"""Datasets shipped with the package, and training configs that work on them.

`penguins.csv` is the Palmer penguins data (Horst, Hill & Gorman, CC0): 344 penguins of three
species, columns species, island, bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g,
sex, year; 'NA' marks a missing value.

`support_tickets.csv` is 613 hand-written, synthetic customer-support messages (columns text, label;
labels billing, shipping, technical, account; ~16% non-ASCII, ~10% not English); see
SUPPORT_TICKETS.md beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maas_training.config import TrainingConfig

DATASETS = Path(__file__).resolve().parent
PENGUINS = DATASETS / "penguins.csv"
SUPPORT_TICKETS = DATASETS / "support_tickets.csv"


def penguins_config(**overrides: Any) -> TrainingConfig:
    """Species from measurements and island with an MLP; `sex` may be missing at serving time, `year` is ignored.
    Every run also trains the trivial and linear baselines beside it (maas_training.candidates).

    Reaches > 0.9 holdout accuracy (typically ~0.98) in a few seconds on two cores.
    """
    settings: dict[str, Any] = {
        "data": PENGUINS,
        "model_name": "penguins",
        "target": "species",
        "model": "mlp",  # the tuned network; `auto` (maas-train's default) also tries the linear model
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


def support_tickets_config(**overrides: Any) -> TrainingConfig:
    """A text classifier: raw message -> billing / shipping / technical / account, Embedding -> LSTM.

    Reaches ~0.7 holdout accuracy (chance: 0.25) in under 15 s on two cores; the data is small
    (~430 training rows), so more epochs mostly overfit (early stopping keeps the best).
    """
    settings: dict[str, Any] = {
        "data": SUPPORT_TICKETS,
        "model_name": "support-tickets",
        "target": "label",
        "model": "lstm",  # the tuned network; `auto` (maas-train's default) also tries bag-of-words
        "text": ["text"],
        "embed_dim": 64,
        "lstm_units": 32,
        "epochs": 40,
        "batch_size": 32,
        "learning_rate": 0.005,
        "early_stopping_patience": 10,
    }
    settings.update(overrides)
    return TrainingConfig(**settings)
