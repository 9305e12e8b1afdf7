"""Prediction logic: resolve a model version, load it (cached), preprocess, run, shape the output.

Records are JSON objects, or for a text model also bare strings; the fitted spec validates them.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aws_lambda_powertools import Logger

from maas_core.errors import IntegrityError, MaasError, ModelLoadError, PayloadTooLargeError, UnprocessableError
from maas_core.explain import explain_predictions
from maas_core.ids import new_request_id
from maas_core.model_cache import LoadedModel, ModelCache
from maas_core.registry import AliasTarget, Registry, check_name
from maas_core.schemas import Prediction, PredictResponse, PreprocessResponse
from maas_core.settings import Settings
from maas_core.store import SERVING_FILES, BundleStore

logger = Logger(child=True)


@dataclass(frozen=True)
class Route:
    """Which version answers a request, and why."""

    version: str
    alias: str | None = None
    canary: bool = False  # the alias's canary version was chosen for this caller
    fallback_from: str | None = None  # the alias's version failed to load; its last good version answered


def canary_share(name: str, alias: str, routing_key: str) -> float:
    """A caller's fixed position in [0, 1): the same key always lands on the same side of a canary split."""
    digest = hashlib.sha256(f"{name}/{alias}/{routing_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class Predictor:
    def __init__(self, settings: Settings, registry: Registry, store: BundleStore, cache: ModelCache | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.cache = cache or ModelCache(settings.model_cache_size)
        self._aliases: dict[tuple[str, str], tuple[float, AliasTarget]] = {}
        self._versions_seen: dict[tuple[str, str], float] = {}  # (model, version) -> exists, until
        self._last_good: dict[tuple[str, str], str] = {}  # (model, alias) -> version that last loaded
        self._broken: dict[tuple[str, str], tuple[float, MaasError]] = {}  # (model, version) -> (retry after, error)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Predictor":
        return cls(settings, Registry(settings.registry_table), BundleStore(settings.model_bucket))

    def route(self, name: str, version: str | None = None, alias: str | None = None,
              routing_key: str | None = None) -> Route:
        """Pick the version for a request: an explicit version, else the alias (default `prod`), whose canary
        takes `canary_weight` of callers, chosen by routing key (sticky) or at random without one."""
        check_name("model", name)
        if version is not None and alias is not None:
            raise UnprocessableError("give either ?version= or ?alias=, not both",
                                     [{"field": "version"}, {"field": "alias"}])
        if version is not None:
            # re-checked after the alias TTL too, so a deleted version stops answering on warm functions
            if self._versions_seen.get((name, version), 0) <= time.monotonic():
                self.registry.get_version(name, version)  # 404 for unknown model / version
                self._versions_seen[(name, version)] = time.monotonic() + self.settings.alias_ttl_seconds
            return Route(version)
        alias = alias or self.settings.default_alias
        target = self.alias_target(name, alias)
        if target.canary_version and target.canary_weight > 0:
            share = canary_share(name, alias, routing_key) if routing_key else random.random()
            if share < target.canary_weight:
                return Route(target.canary_version, alias, canary=True)
        return Route(target.version, alias)

    def alias_target(self, name: str, alias: str) -> AliasTarget:
        # a short TTL: alias moves reach warm functions within seconds, without a registry read per request
        key = (name, alias)
        now = time.monotonic()
        hit = self._aliases.get(key)
        if hit and hit[0] > now:
            return hit[1]
        target = self.registry.resolve_alias(name, alias)
        self._aliases[key] = (now + self.settings.alias_ttl_seconds, target)
        return target

    def load(self, name: str, version: str) -> LoadedModel:
        return self.cache.get(name, version, lambda: self.store.load(name, version, only=SERVING_FILES))

    def load_route(self, name: str, route: Route) -> tuple[LoadedModel, Route]:
        """Load the routed version. If an alias's version is broken (hash mismatch, unloadable), keep serving
        the alias's last good version rather than failing every request; without one, the error stands."""
        try:
            broken = self._broken.get((name, route.version))
            if broken and broken[0] > time.monotonic():
                raise broken[1]  # failed moments ago: don't fetch and hash it again on every request
            model = self.load(name, route.version)
        except (IntegrityError, ModelLoadError) as exc:
            self._broken[(name, route.version)] = (time.monotonic() + self.settings.alias_ttl_seconds, exc)
            fallback = self._fallback_version(name, route)
            if fallback is None:
                raise
            logger.error("serving the last good version instead of a broken one",
                         extra={"model": name, "alias": route.alias, "broken": route.version, "serving": fallback,
                                "error": getattr(exc, "message", str(exc))})
            return self.load(name, fallback), Route(fallback, route.alias, fallback_from=route.version)
        if route.alias:
            self._last_good[(name, route.alias)] = route.version
        return model, route

    def _fallback_version(self, name: str, route: Route) -> str | None:
        if route.alias is None:
            return None  # an explicit ?version= asks for that version, nothing else
        candidates = [self._last_good.get((name, route.alias))]
        target = self._aliases.get((name, route.alias))
        if target:
            candidates += [target[1].version, *reversed(target[1].history)]
        for v in candidates:
            if v and v != route.version and self._broken.get((name, v), (0.0,))[0] <= time.monotonic():
                return v
        return None

    def predict(self, name: str, records: Sequence[Any], version: str | None = None,
                alias: str | None = None, routing_key: str | None = None, explain: bool = False,
                on_route: Callable[[str, Route], None] | None = None) -> PredictResponse:
        """`on_route(name, route)` is told which version answers as soon as it is loaded, before the records
        are checked (monitoring counts a rejected request against that version)."""
        self.check_size(records)
        model, route = self.load_route(name, self.route(name, version, alias, routing_key))
        if on_route is not None:
            on_route(name, route)
        features = model.spec.transform(records)
        if explain:  # the records and all their occlusions in one onnxruntime call (maas_core.explain)
            outputs, explanations = explain_predictions(model, records)
        else:
            outputs, explanations = model.run(features), []
        predictions = shape_predictions(model, outputs)
        for prediction, explanation in zip(predictions, explanations):
            prediction.explanation = explanation
        return PredictResponse(model=name, version=route.version, alias=route.alias, canary=route.canary or None,
                               predictions=predictions)

    def preprocess(self, name: str, records: Sequence[Any], version: str | None = None,
                   alias: str | None = None) -> PreprocessResponse:
        """The feature matrix the model would be given for these records, with its column names."""
        self.check_size(records)
        model, route = self.load_route(name, self.route(name, version, alias))
        features = model.spec.transform(records)
        return PreprocessResponse(model=name, version=route.version, alias=route.alias,
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
    request_id = new_request_id()  # time-ordered: the captures table keys on it (maas_core.ids)
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
