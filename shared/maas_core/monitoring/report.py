"""The metrics function's core: feedback, metrics over a time window, and their scheduled publication.

Feedback (POST /v1/models/{model}/feedback) is stored on the capture item of the prediction it is
about, so quality joins predictions and truth by key. Each item gets its own result:

    recorded    stored
    duplicate   the same truth was already stored: the second copy is not counted again
    conflict    a different truth was stored first: the first one stays (ground truth is not edited)
    not_found   no capture of that id for this model: sampled out, not stored yet (capture is
                asynchronous: retry later), expired (MAAS_CAPTURE_TTL_DAYS), or another model's
    invalid     not a prediction id, or a label the model does not have / a value for a classifier

The request succeeds (200) when at least one item was recorded or was a duplicate. When none was,
it fails as a whole with the per-item results in the error details: 404 if every item was
not_found, 409 if every item was a conflict, else 422.

Metrics (GET /v1/models/{model}/metrics): ?window=1h|24h|7d (any N m/h/d up to 30d, default 1h) or
?since=&until= (ISO 8601; until defaults to now), optional ?version=. Per version: captured volume,
latency percentiles, quality over the captures that have feedback, drift against the manifest's
baseline (maas_core.monitoring.quality documents every formula and threshold).

Publication (the scheduled event, every 15 minutes): the same metrics over MAAS_METRICS_WINDOW for every
model, as EMF metrics (maas_core.monitoring.emf): CapturedPredictions, FeedbackCount, Accuracy,
PrecisionMacro, RecallMacro, F1Macro (classifiers), MAE, RMSE (regression), MaxDriftPSI, and DriftPSI per
field (dimensions model, version, feature). Quality and drift are only published from at least
MAAS_METRICS_MIN_SAMPLES values, so one unlucky label in a quiet hour does not page anybody.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from maas_core.errors import ConflictError, MaasError, NotFoundError, UnprocessableError
from maas_core.ids import PREDICTION_ID
from maas_core.manifest import Manifest
from maas_core.monitoring.emf import SERVICE, dimension_value, emit
from maas_core.monitoring.quality import (
    MODERATE,
    SIGNIFICANT,
    classification_quality,
    feature_drift,
    percentiles,
    regression_quality,
)
from maas_core.monitoring.schemas import (
    FeedbackRequest,
    FeedbackResponse,
    FeedbackResult,
    MetricsResponse,
    VersionMetrics,
    WindowInfo,
)
from maas_core.monitoring.store import CaptureStore, StoredCapture, output_of, truth_of
from maas_core.registry import Registry, check_name
from maas_core.settings import Settings
from maas_core.store import BundleStore

logger = Logger(child=True)

MAX_WINDOW = timedelta(days=30)
_WINDOW = re.compile(r"^([1-9][0-9]{0,4})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_MANIFESTS_KEPT = 64


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    label: str | None = None

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp() * 1000)

    def info(self) -> WindowInfo:
        return WindowInfo(start=self.start.isoformat(timespec="milliseconds"),
                          end=self.end.isoformat(timespec="milliseconds"), label=self.label)


def parse_window(window: str | None = None, since: str | None = None, until: str | None = None,
                 now: datetime | None = None, default: str = "1h") -> Window:
    """?window=, or ?since= (+ ?until=): 422 naming the parameter for anything else."""
    now = now or datetime.now(UTC)
    if window is not None and (since is not None or until is not None):
        raise UnprocessableError("give either ?window= or ?since= / ?until=, not both",
                                 [{"field": "window"}, {"field": "since"}])
    if since is None and until is not None:
        raise UnprocessableError("?until= needs ?since=", [{"field": "since", "reason": "missing"}])
    if since is not None:
        start = _instant("since", since)
        end = _instant("until", until) if until is not None else now
        if start >= end:
            raise UnprocessableError("?since= must be before ?until=",
                                     [{"field": "since", "value": since}, {"field": "until", "value": until}])
        if end - start > MAX_WINDOW:
            raise UnprocessableError("the window is longer than 30 days (captures expire)",
                                     [{"field": "since", "value": since}])
        return Window(start, end)
    label = window if window is not None else default
    m = _WINDOW.match(label.strip())
    span = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))}) if m else None
    if span is None or span > MAX_WINDOW:
        raise UnprocessableError(
            f"invalid window {label!r}: use a number of minutes, hours or days up to 30 days, e.g. 1h, 24h, 7d",
            [{"field": "window", "value": label}])
    return Window(now - span, now, label.strip())


def _instant(field: str, value: str) -> datetime:
    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UnprocessableError(f"?{field}= is not an ISO 8601 time: {value!r}",
                                 [{"field": field, "value": value}]) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class MonitoringService:
    def __init__(self, settings: Settings, registry: Registry, bundles: BundleStore, captures: CaptureStore) -> None:
        self.settings = settings
        self.registry = registry
        self.bundles = bundles
        self.captures = captures
        self._manifests: OrderedDict[tuple[str, str], Manifest | None] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> MonitoringService:
        return cls(settings, Registry(settings.registry_table), BundleStore(settings.model_bucket),
                   CaptureStore(settings.captures_table, settings.capture_ttl_days))

    @property
    def capture_rate(self) -> float:
        rate = self.settings.capture_rate
        return 0.0 if math.isnan(rate) else min(max(rate, 0.0), 1.0)

    def manifest(self, model: str, version: str) -> Manifest | None:
        """A version's manifest (versions never change: kept per process); None if it is gone."""
        key = (model, version)
        if key not in self._manifests:
            try:
                self._manifests[key] = self.bundles.load_manifest(model, version)
            except NotFoundError:
                return None  # a deleted version: not remembered, it may be published again under a new number
            while len(self._manifests) > _MANIFESTS_KEPT:
                self._manifests.popitem(last=False)
        return self._manifests[key]

    # --- feedback --------------------------------------------------------------------------------

    def feedback(self, model: str, request: FeedbackRequest, now: datetime | None = None) -> FeedbackResponse:
        check_name("model", model)
        self.registry.describe(model)  # 404 for an unknown model
        now_iso = (now or datetime.now(UTC)).isoformat()
        valid_ids = [i.prediction_id for i in request.feedback if PREDICTION_ID.match(i.prediction_id)]
        items = self.captures.get_many(model, valid_ids) if valid_ids else {}
        results: list[FeedbackResult] = []
        for entry in request.feedback:
            results.append(self._one_feedback(model, entry.prediction_id, entry.truth(), items, now_iso))
        counts = {s: sum(1 for r in results if r.status == s)
                  for s in ("recorded", "duplicate", "conflict", "not_found", "invalid")}
        response = FeedbackResponse(model=model, recorded=counts["recorded"], duplicates=counts["duplicate"],
                                    conflicts=counts["conflict"], not_found=counts["not_found"],
                                    invalid=counts["invalid"], results=results)
        logger.info("feedback", extra={"model": model, **counts})
        if counts["recorded"] or counts["duplicate"]:
            return response
        details = [r.model_dump(exclude_none=True) for r in results[:100]]
        n = len(results)
        if counts["not_found"] == n:
            raise NotFoundError(f"no captured prediction of model {model!r} has {'this id' if n == 1 else 'these ids'}",
                                details)
        if counts["conflict"] == n:
            raise ConflictError("different feedback was already recorded for these predictions", details)
        raise UnprocessableError("no feedback could be recorded", details)

    def _one_feedback(self, model: str, prediction_id: str, truth: dict[str, Any],
                      items: Mapping[str, dict[str, Any]], now_iso: str) -> FeedbackResult:
        if not PREDICTION_ID.match(prediction_id):
            return FeedbackResult(prediction_id=prediction_id, status="invalid", message="not a prediction id")
        item = items.get(prediction_id)
        if item is None:
            return _not_found(prediction_id)
        problem = _truth_problem(item, truth)
        if problem:
            return FeedbackResult(prediction_id=prediction_id, status="invalid", message=problem)
        existing = truth_of(item)
        if existing is None:
            existing_now = self.captures.set_truth(model, prediction_id, truth, now_iso)
            if existing_now is None:
                return FeedbackResult(prediction_id=prediction_id, status="recorded")
            if not existing_now:
                return _not_found(prediction_id)  # expired between our read and our write
            existing = truth_of(existing_now)
        if existing == truth:
            return FeedbackResult(prediction_id=prediction_id, status="duplicate",
                                  message="this feedback was already recorded; counted once")
        return FeedbackResult(prediction_id=prediction_id, status="conflict",
                              message=f"different feedback was recorded first: {_describe(existing)}")

    # --- metrics ---------------------------------------------------------------------------------

    def metrics(self, model: str, window: Window, version: str | None = None) -> MetricsResponse:
        check_name("model", model)
        if version is not None:
            self.registry.get_version(model, version)  # 404 for an unknown model or version
        else:
            self.registry.describe(model)
        captures, truncated = self.captures.query(model, window.start_ms, window.end_ms,
                                                  self.settings.metrics_max_captures)
        by_version: dict[str, list[StoredCapture]] = {}
        for c in captures:
            if version is None or c.version == version:
                by_version.setdefault(c.version, []).append(c)
        if version is not None:
            by_version.setdefault(version, [])
        versions = [self.version_metrics(model, v, caps)
                    for v, caps in sorted(by_version.items(), key=lambda kv: _version_order(kv[0]))]
        return MetricsResponse(model=model, window=window.info(), capture_rate=self.capture_rate, truncated=truncated,
                               thresholds={"moderate": MODERATE, "significant": SIGNIFICANT}, versions=versions)

    def version_metrics(self, model: str, version: str, captures: Sequence[StoredCapture]) -> VersionMetrics:
        manifest = self.manifest(model, version)
        labelled = [c for c in captures if c.truth]
        rate = self.capture_rate
        drift: dict[str, Any]
        if manifest is None:
            drift = {"skipped": "the version's manifest is no longer in the model store"}
        else:
            sensitive = {f.name for f in manifest.input_schema if f.sensitive}
            drift = feature_drift(manifest.baseline, [c.features for c in captures], sensitive)
        return VersionMetrics(
            version=version, predictions=len(captures),
            estimated_predictions=len(captures) / rate if rate > 0 else None,
            latency_ms=percentiles([c.latency_ms for c in captures]),
            feedback=len(labelled), quality=quality_of(labelled, manifest), drift=drift)

    # --- scheduled publication -------------------------------------------------------------------

    def publish(self, now: datetime | None = None) -> dict[str, Any]:
        """Compute the last MAAS_METRICS_WINDOW for every model and emit it as EMF metrics."""
        window = parse_window(self.settings.metrics_window, now=now)
        published: list[dict[str, Any]] = []
        failed: list[dict[str, str]] = []
        for entry in self.registry.list_models():
            name = entry["name"]
            try:
                report = self.metrics(name, window)
            except MaasError as exc:
                logger.error("metrics of a model could not be computed", extra={"model": name, "error": exc.message})
                failed.append({"model": name, "error": exc.message})
                continue
            for v in report.versions:
                published.append({"model": name, "version": v.version, "metrics": self.emit_version(name, v)})
        logger.info("metrics published", extra={"window": window.label, "versions": len(published),
                                                 "failed": len(failed)})
        return {"window": window.info().model_dump(), "published": published, "failed": failed}

    def emit_version(self, model: str, v: VersionMetrics) -> list[str]:
        enough = self.settings.metrics_min_samples
        metrics: dict[str, tuple[str, Any]] = {"CapturedPredictions": ("Count", v.predictions),
                                               "FeedbackCount": ("Count", v.feedback)}
        q = v.quality or {}
        if q and q.get("count", 0) >= enough:
            names = {"accuracy": "Accuracy", "precision_macro": "PrecisionMacro", "recall_macro": "RecallMacro",
                     "f1_macro": "F1Macro", "mae": "MAE", "rmse": "RMSE"}
            metrics |= {metric: ("None", q[key]) for key, metric in names.items() if key in q}
        drifted = {name: f for name, f in (v.drift.get("features") or {}).items()
                   if f.get("psi") is not None and f.get("count", 0) >= enough}
        if drifted:
            metrics["MaxDriftPSI"] = ("None", max(f["psi"] for f in drifted.values()))
        dims = {"model": dimension_value(model), "version": dimension_value(v.version)}
        emit(metrics, [dims, {"model": dims["model"]}, dict(SERVICE)])
        for name, f in drifted.items():
            emit({"DriftPSI": ("None", f["psi"])}, [dims | {"feature": dimension_value(name)}])
        return sorted(metrics) + (["DriftPSI"] if drifted else [])


def quality_of(labelled: Sequence[StoredCapture], manifest: Manifest | None) -> dict[str, Any] | None:
    if not labelled:
        return None
    classified = [(str(c.truth["label"]), str(c.output["label"])) for c in labelled
                  if c.truth and "label" in c.truth and isinstance(c.output.get("label"), str)]
    valued = [(float(c.truth["value"]), float(c.output["value"])) for c in labelled
              if c.truth and "value" in c.truth and isinstance(c.output.get("value"), (int, float))]
    if classified and len(classified) >= len(valued):
        labels = manifest.labels if manifest else []
        quality = classification_quality([t for t, _ in classified], [p for _, p in classified], labels)
        return {"task": manifest.task if manifest else labelled[0].task, **quality}
    if valued:
        return {"task": "regression", **regression_quality([t for t, _ in valued], [p for _, p in valued])}
    return None


def _truth_problem(item: Mapping[str, Any], truth: Mapping[str, Any]) -> str | None:
    output = output_of(item)
    task = item.get("task", {}).get("S", "")
    if task == "regression" or "value" in output:
        return None if "value" in truth else "this prediction is a regression: give feedback as a value"
    if "label" not in truth:
        return "this prediction is a classification: give feedback as a label"
    labels = list((output.get("probabilities") or {}).keys())
    if labels and truth["label"] not in labels:
        shown = ", ".join(repr(lbl) for lbl in labels[:20])
        return f"label {truth['label']!r} is not one of the model's labels ({shown})"
    return None


def _not_found(prediction_id: str) -> FeedbackResult:
    return FeedbackResult(prediction_id=prediction_id, status="not_found",
                          message="no captured prediction with this id: not sampled, not stored yet (retry later), "
                                  "expired, or made by another model")


def _describe(truth: Mapping[str, Any] | None) -> str:
    if not truth:
        return "none"
    return f"label {truth['label']!r}" if "label" in truth else f"value {truth.get('value')!r}"


def _version_order(version: str) -> tuple[int, int | str]:
    return (0, int(version)) if version.isdigit() else (1, version)
