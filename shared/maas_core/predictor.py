"""Prediction logic: resolve a model version, load it (cached), preprocess, run, shape the output.

Records are JSON objects, or for a text model also bare strings; the fitted spec validates them.
`predict` returns the answer with what made it, a PredictionOutcome (maas_core.outcome), which the predict
API's monitor takes whole.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from aws_lambda_powertools import Logger
from onnxruntime.capi.onnxruntime_pybind11_state import Fail as OrtFail
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument as OrtInvalidArgument
from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException as OrtRuntimeException

from maas_core import deadline
from maas_core.errors import (
    BadRequestError,
    IntegrityError,
    MaasError,
    ModelLoadError,
    PayloadTooLargeError,
    UnprocessableError,
)
from maas_core.feature_rows import FeatureRows
from maas_core.ids import new_request_id
from maas_core.manifest import DEFAULT_VARIANT, VARIANTS
from maas_core.model_cache import LoadedModel, ModelCache
from maas_core.outcome import PredictionOutcome, Route, Timings, note_route
from maas_core.outputs import nonfinite_rows, refuse_nonfinite, shape_outputs
from maas_core.registry import AliasTarget, Registry, check_name, check_version
from maas_core.schemas import PredictResponse, PreprocessResponse
from maas_core.settings import Settings
from maas_core.store import BundleStore

logger = Logger(child=True)
# what a request's records are once its version is chosen and loaded (its manifest's input schema names the
# fields, its graph the input tensors): records, or FeatureRows of the model's own input
RecordSource = Callable[[LoadedModel], Sequence[Any]]


def canary_share(name: str, alias: str, routing_key: str) -> float:
    """A caller's fixed position in [0, 1): the same key always lands on the same side of a canary split."""
    digest = hashlib.sha256(f"{name}/{alias}/{routing_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class Predictor:
    def __init__(self, settings: Settings, registry: Registry, store: BundleStore,
                 cache: ModelCache | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.cache = cache or ModelCache(settings.model_cache_size)
        self._aliases: dict[tuple[str, str], tuple[float, AliasTarget]] = {}
        self._versions_seen: dict[tuple[str, str], float] = {}  # (model, version) -> exists, until
        self._last_good: dict[tuple[str, str], str] = {}  # (model, alias) -> version that last loaded
        # (model, version, variant) -> (retry after, error): a broken int8 file leaves its float sibling serving
        self._broken: dict[tuple[str, str, str], tuple[float, MaasError]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Predictor:
        return cls(settings, Registry(settings.registry_table), BundleStore(settings.model_bucket))

    def route(self, name: str, version: str | None = None, alias: str | None = None,
              routing_key: str | None = None, variant: str | None = None) -> Route:
        """Pick the version for a request: an explicit version, else the alias (default `prod`), whose canary
        takes `canary_weight` of callers, chosen by routing key (sticky) or at random without one."""
        check_name("model", name)
        variant = check_variant(variant)
        if version is not None and alias is not None:
            raise UnprocessableError("give either ?version= or ?alias=, not both",
                                     [{"field": "version"}, {"field": "alias"}])
        if version is not None:
            check_version(version)  # before the cache below: "01" must not even be looked up
            # re-checked after the alias TTL too, so a deleted version stops answering on warm functions
            if self._versions_seen.get((name, version), 0) <= time.monotonic():
                self.registry.get_version(name, version)  # 404 for unknown model / version
                self._versions_seen[(name, version)] = time.monotonic() + self.settings.alias_ttl_seconds
            return Route(name, version, variant=variant)
        alias = alias or self.settings.default_alias
        target = self.alias_target(name, alias)
        if target.canary_version and target.canary_weight > 0:
            share = canary_share(name, alias, routing_key) if routing_key else random.random()
            if share < target.canary_weight:
                return Route(name, target.canary_version, alias, canary=True, variant=variant)
        return Route(name, target.version, alias, variant=variant)

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

    def load(self, name: str, version: str, variant: str = DEFAULT_VARIANT) -> LoadedModel:
        # only the variant's model file and the spec are fetched (and hash-checked); sessions are shared by hash
        deadline.check(f"loading model {name!r} version {version!r}")  # 503 + Retry-After rather than a cut-off
        return self.cache.get(name, version, self.store, variant)

    def load_route(self, name: str, route: Route) -> tuple[LoadedModel, Route]:
        """Load the routed version. If an alias's version is broken (hash mismatch, unloadable), keep serving
        the alias's last good version rather than failing every request; without one, the error stands."""
        try:
            broken = self._broken.get((name, route.version, route.variant))
            if broken and broken[0] > time.monotonic():
                raise broken[1]  # failed moments ago: don't fetch and hash it again on every request
            model = self.load(name, route.version, route.variant)
        except (IntegrityError, ModelLoadError) as exc:
            retry_at = time.monotonic() + self.settings.alias_ttl_seconds
            self._broken[(name, route.version, route.variant)] = (retry_at, exc)
            fallback = self._fallback_version(name, route)
            if fallback is None:
                raise
            logger.error("serving the last good version instead of a broken one",
                         extra={"model": name, "alias": route.alias, "broken": route.version, "serving": fallback,
                                "variant": route.variant, "error": getattr(exc, "message", str(exc))})
            return (self.load(name, fallback, route.variant),
                    Route(name, fallback, route.alias, fallback_from=route.version, variant=route.variant))
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
            if v and v != route.version and self._broken.get((name, v, route.variant), (0.0,))[0] <= time.monotonic():
                return v
        return None

    def predict(self, name: str, records: Sequence[Any] | RecordSource, version: str | None = None,
                alias: str | None = None, routing_key: str | None = None, explain: bool = False,
                variant: str | None = None) -> PredictionOutcome:
        """The records' predictions by the version the request routes to (`route`), with what made them.
        `records` may be a RecordSource: the request's records read against the routed version's manifest, or
        FeatureRows (maas_core.feature_rows): the model's input as it is, the spec's transform skipped.
        `variant`: float (default) or int8, the version's quantized model (404 when the version has none).
        An error raised once the version is loaded has its route noted on it (maas_core.outcome.failed_route),
        so a rejected request is counted against that version."""
        started = time.perf_counter()
        if not callable(records):
            self.check_size(records)
        model, route = self.load_route(name, self.route(name, version, alias, routing_key, variant))
        try:
            if callable(records):  # a request read against the routed version's manifest (e.g. /v2's tensors)
                records = records(model)
                self.check_size(records)
            return self._predict(model, route, records, explain, started)
        except Exception as exc:
            note_route(exc, route)
            raise

    def _predict(self, model: LoadedModel, route: Route, records: Sequence[Any], explain: bool,
                 started: float) -> PredictionOutcome:
        loaded = time.perf_counter()
        if explain and isinstance(records, FeatureRows):
            raise BadRequestError("an explanation occludes the record's raw fields one by one: send the fields, "
                                  "not the model's input tensor, to have a prediction explained",
                                  [{"field": "explain", "reason": "needs raw-field records"}])
        if explain:
            self.check_explain_work(model, len(records))
        deadline.check("running the model")
        features = (records.matrix if isinstance(records, FeatureRows)
                    else model.spec.transform(records, max_chars=self.settings.max_field_chars))
        transformed = time.perf_counter()
        if explain:  # the records and all their occlusions in one onnxruntime call (maas_core.explain)
            from maas_core.explain import (
                explain_predictions,  # on first use: not part of a cold start
            )

            outputs, explanations = explain_predictions(model, records)
        else:
            outputs, explanations = (run_rows(model, features) if isinstance(records, FeatureRows)
                                     else model.run(features)), []
        predictions = shape_predictions(model, outputs)
        if explain:
            for prediction, explanation in zip(predictions, explanations, strict=True):
                prediction["explanation"] = explanation
        # validated in one pydantic-core call from plain dicts, strictly (we made every value with its exact
        # type): ~4x cheaper than a Prediction(...) per record
        response = PredictResponse.model_validate({
            "model": route.model, "version": route.version, "variant": route.variant, "alias": route.alias,
            "canary": route.canary or None, "predictions": predictions}, strict=True)
        done = time.perf_counter()
        return PredictionOutcome(route, model.manifest, model.spec, records, response,
                                 Timings(_ms(loaded - started), _ms(transformed - loaded), _ms(done - transformed)))

    def preprocess(self, name: str, records: Sequence[Any], version: str | None = None,
                   alias: str | None = None) -> PreprocessResponse:
        """The feature matrix the model would be given for these records, with its column names."""
        self.check_size(records)
        model, route = self.load_route(name, self.route(name, version, alias))
        if model.spec.has_strings:  # fed to the graph field by field: the graph's own encoders make its matrix
            raise UnprocessableError(
                f"model {name!r} version {route.version!r} takes its string fields as they are (its graph encodes "
                "them), so there is no feature matrix to show; predict instead",
                [{"field": "model", "reason": "string inputs", "model": name, "version": route.version}])
        deadline.check("preprocessing the records")
        features = model.spec.transform(records, max_chars=self.settings.max_field_chars)
        dtype = model.spec.output_dtype()
        assert dtype != "object"  # string fields were refused above
        return PreprocessResponse(model=name, version=route.version, alias=route.alias,
                                  feature_names=model.spec.feature_names(), dtype=dtype,
                                  features=matrix_to_json(features))

    def check_size(self, records: Sequence[Any]) -> None:
        if len(records) > self.settings.max_records:
            raise PayloadTooLargeError(
                f"{len(records)} records in one request; the limit is {self.settings.max_records}",
                [{"field": "records", "limit": self.settings.max_records, "received": len(records)}],
            )

    def check_explain_work(self, model: LoadedModel, n_records: int) -> None:
        """An explanation occludes every field of every record: records x fields predictions, bounded
        (MAAS_MAX_EXPLAIN_CELLS) before any of them is made."""
        fields = len(model.spec.features)
        limit = self.settings.max_explain_cells
        if n_records * fields > limit:
            most = max(limit // max(fields, 1), 1)
            raise PayloadTooLargeError(
                f"explaining {n_records} records of {fields} fields is {n_records * fields} occlusions; the limit is "
                f"{limit} (MAAS_MAX_EXPLAIN_CELLS): send at most {most} records with ?explain=true",
                [{"field": "explain", "limit": limit, "received": n_records * fields, "max_records": most}])


def run_rows(model: LoadedModel, features: np.ndarray) -> np.ndarray:
    """model.run of a caller's own feature rows: values the spec never checked (a token id past the vocabulary)
    can make the graph fail, which is the caller's mistake, a 400 with onnxruntime's reason."""
    try:
        return model.run(features)
    except (OrtFail, OrtInvalidArgument, OrtRuntimeException) as exc:
        raise BadRequestError(f"the model refused the input tensor: {str(exc)[:300]}",
                              [{"field": "inputs", "reason": "refused by the model's graph"}]) from exc


def check_variant(variant: str | None) -> str:
    """None -> float; an unknown name is the caller's mistake (422), answered with the names there are."""
    if variant is None or variant == "":
        return DEFAULT_VARIANT
    if variant not in VARIANTS:
        raise UnprocessableError(f"unknown variant {variant!r}: use one of {', '.join(VARIANTS)}",
                                 [{"field": "variant", "value": variant, "allowed": list(VARIANTS)}])
    return variant


def matrix_to_json(features: np.ndarray) -> list[list[int]] | list[list[float]]:
    """A feature matrix as JSON rows. Integers stay integers; each float32 becomes the shortest decimal
    that reads back as the same float32 (0.1, not 0.10000000149011612), so a caller that parses the
    numbers into float32 gets exactly the matrix the model sees."""
    rows: list[list[int]] | list[list[float]]
    if np.issubdtype(features.dtype, np.integer):
        rows = features.tolist()
        return rows
    if not np.isfinite(features).all():  # the spec rejects non-finite input; a broken spec must not emit NaN
        raise ModelLoadError("the preprocessing spec produced non-finite features")
    rows = (features.astype(str) if features.dtype == np.float32 else features).astype(np.float64).tolist()
    return rows


def shape_predictions(model: LoadedModel, outputs: np.ndarray) -> list[dict[str, Any]]:
    """Model outputs -> one Prediction-shaped dict per record (PredictResponse validates them all at once).
    A record whose output is not finite (a finite input can overflow inside the graph) is a 422 naming it,
    as batch makes it a row error (maas_core.outputs): NaN is not a probability or a value."""
    refuse_nonfinite(nonfinite_rows(outputs))
    m = model.manifest
    request_id = new_request_id()  # time-ordered: the captures table keys on it (maas_core.ids)
    ids = [f"{request_id}-{i}" for i in range(len(outputs))]
    return shape_outputs(m.task, m.labels, outputs).outputs(ids)


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)
