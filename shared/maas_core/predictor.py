"""Prediction logic: resolve a model version, load it (cached), preprocess, run, shape the output.

Records are JSON objects, or for a text model also bare strings; the fitted spec validates them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from maas_core.errors import ModelLoadError, PayloadTooLargeError, UnprocessableError
from maas_core.model_cache import LoadedModel, ModelCache
from maas_core.registry import Registry, check_name
from maas_core.schemas import Prediction, PredictResponse, PreprocessResponse
from maas_core.settings import Settings
from maas_core.store import BundleStore


class Predictor:
    def __init__(self, settings: Settings, registry: Registry, store: BundleStore, cache: ModelCache | None = None,
                 alias_ttl_seconds: float = 5.0) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.cache = cache or ModelCache(settings.model_cache_size)
        self.alias_ttl_seconds = alias_ttl_seconds
        self._aliases: dict[tuple[str, str], tuple[float, str]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> "Predictor":
        return cls(settings, Registry(settings.registry_table), BundleStore(settings.model_bucket))

    def resolve(self, name: str, version: str | None = None, alias: str | None = None) -> tuple[str, str | None]:
        """(version, alias used). An explicit version wins; otherwise the alias, default `prod`."""
        check_name("model", name)
        if version is not None and alias is not None:
            raise UnprocessableError("give either ?version= or ?alias=, not both",
                                     [{"field": "version"}, {"field": "alias"}])
        if version is not None:
            if (name, version) not in self.cache:
                self.registry.get_version(name, version)  # 404 for unknown model / version
            return version, None
        alias = alias or self.settings.default_alias
        key = (name, alias)
        now = time.monotonic()
        hit = self._aliases.get(key)
        if hit and hit[0] > now:
            return hit[1], alias
        target = self.registry.resolve_alias(name, alias)
        # a short TTL: alias moves reach warm functions within seconds, without a registry read per request
        self._aliases[key] = (now + self.alias_ttl_seconds, target.version)
        return target.version, alias

    def load(self, name: str, version: str) -> LoadedModel:
        return self.cache.get(name, version, lambda: self.store.load(name, version))

    def predict(self, name: str, records: Sequence[Any], version: str | None = None,
                alias: str | None = None) -> PredictResponse:
        self.check_size(records)
        resolved, alias_used = self.resolve(name, version, alias)
        model = self.load(name, resolved)
        features = model.spec.transform(records)
        outputs = model.run(features)
        return PredictResponse(model=name, version=resolved, alias=alias_used,
                               predictions=shape_predictions(model, outputs))

    def preprocess(self, name: str, records: Sequence[Any], version: str | None = None,
                   alias: str | None = None) -> PreprocessResponse:
        """The feature matrix the model would be given for these records, with its column names."""
        self.check_size(records)
        resolved, alias_used = self.resolve(name, version, alias)
        model = self.load(name, resolved)
        features = model.spec.transform(records)
        return PreprocessResponse(model=name, version=resolved, alias=alias_used,
                                  feature_names=model.spec.feature_names(), dtype=model.spec.output_dtype(),
                                  features=matrix_to_json(features))

    def check_size(self, records: Sequence[Any]) -> None:
        if len(records) > self.settings.max_records:
            raise PayloadTooLargeError(
                f"{len(records)} records in one request; the limit is {self.settings.max_records}",
                [{"field": "records", "limit": self.settings.max_records, "received": len(records)}],
            )


def matrix_to_json(features: np.ndarray) -> list[list[int]] | list[list[float]]:
    """A feature matrix as JSON rows. Integers stay integers; each float32 becomes the shortest decimal
    that reads back as the same float32 (0.1, not 0.10000000149011612), so a caller that parses the
    numbers into float32 gets exactly the matrix the model sees."""
    if np.issubdtype(features.dtype, np.integer):
        return features.tolist()
    if not np.isfinite(features).all():  # the spec rejects non-finite input; a broken spec must not emit NaN
        raise ModelLoadError("the preprocessing spec produced non-finite features")
    if features.dtype == np.float32:
        return features.astype(str).astype(np.float64).tolist()
    return features.astype(np.float64).tolist()


def class_probabilities(task: str, outputs: np.ndarray) -> np.ndarray:
    """Model outputs -> (n, classes) probabilities. A binary model may emit one sigmoid column."""
    out = outputs.reshape(len(outputs), -1).astype(np.float64)
    if task == "binary" and out.shape[1] == 1:
        return np.hstack([1.0 - out, out])
    return out


def shape_predictions(model: LoadedModel, outputs: np.ndarray) -> list[Prediction]:
    m = model.manifest
    request_id = uuid.uuid4().hex
    ids = [f"{request_id}-{i}" for i in range(len(outputs))]
    if m.task == "regression":
        values = outputs.reshape(len(outputs), -1)[:, 0].astype(float).tolist()
        return [Prediction(id=i, value=v) for i, v in zip(ids, values)]
    probs = class_probabilities(m.task, outputs)
    labels = np.asarray(m.labels)
    best = labels[probs.argmax(axis=1)].tolist()
    rounded = np.round(probs, 6).tolist()
    return [
        Prediction(id=i, label=b, probabilities=dict(zip(m.labels, p)))
        for i, b, p in zip(ids, best, rounded)
    ]
