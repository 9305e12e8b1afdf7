"""Metrics of the predict API, one EMF blob per request (maas_core.monitoring.emf), and capture.

    RequestCount      Count         1 per predict request, whatever its outcome
    RecordCount       Count         records answered (0 for a rejected request)
    Latency           Milliseconds  handler time, as the caller waited for it (minus API Gateway)
    Errors4xx         Count         1 if the request was answered 4xx, else 0  (Average = 4xx rate)
    Errors5xx         Count         1 if answered 5xx, else 0                  (Average = 5xx rate)
    Captured          Count         predictions written for capture (log lines; maas_core.monitoring.capture)
    CaptureFailures   Count         sampled predictions that could not be written (not serialisable, too big)
    PredictedLabel    Count         predictions per label, dimensions model, version, label (classifiers;
                                    labels come from the manifest, so their number is bounded)

Dimension sets as in maas_core.monitoring.emf: [model, version], [model], [service] once the request
resolved to a model version; [service] only before that (unknown model, malformed body, ...).

The handler wires it in two places (functions/predict/app.py):

    def lambda_handler(event, context):
        return monitor().observe(event, lambda: resolve(app, event, context))

    # in the predict route
    response = predictor().predict(..., on_route=monitor().routed)
    monitor().answered(predictor(), request.records, response)

Nothing here raises into the request: a failure to measure or capture is logged, and the answer the
caller gets is the one they would have got without monitoring.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

from maas_core.monitoring.capture import CaptureWriter, build_captures
from maas_core.monitoring.emf import dimension_value, document, model_dimension_sets, write
from maas_core.schemas import PredictResponse
from maas_core.settings import Settings

logger = Logger(child=True)

PREDICT_PATH = re.compile(r"^/v1/models/[^/]+/predict/?$")
MAX_LABEL_BLOBS = 25  # a request with more distinct labels counts the rest as "(other)"


@dataclass
class RequestObservation:
    """What one predict request did, filled in as it goes."""

    started: float = field(default_factory=time.perf_counter)
    model: str | None = None
    version: str | None = None
    records: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    captured: int = 0
    capture_failures: int = 0

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0


_current: ContextVar[RequestObservation | None] = ContextVar("maas_predict_request", default=None)


def is_predict_event(event: Mapping[str, Any]) -> bool:
    return (isinstance(event, Mapping) and str(event.get("httpMethod", "")).upper() == "POST"
            and bool(PREDICT_PATH.match(str(event.get("path") or ""))))


def response_status(response: Any) -> int:
    try:
        return int(response["statusCode"])
    except Exception:  # a malformed response: API Gateway answers 502
        return 502


class PredictMonitor:
    def __init__(self, capture_rate: float = 1.0, sender: CaptureWriter | None = None) -> None:
        rate = float(capture_rate)
        self.capture_rate = 0.0 if math.isnan(rate) else min(max(rate, 0.0), 1.0)
        self.sender = sender if sender is not None else CaptureWriter()

    @classmethod
    def from_settings(cls, settings: Settings) -> "PredictMonitor":
        """Capture is on when MAAS_CAPTURE_RATE > 0 (log lines: nothing else to configure)."""
        return cls(settings.capture_rate)

    @property
    def capturing(self) -> bool:
        return self.capture_rate > 0

    # --- the handler wraps each invocation -------------------------------------------------------

    def observe(self, event: Mapping[str, Any], call: Callable[[], Any]) -> Any:
        """Run `call` (the resolver) and emit the request's metrics if it was a predict request."""
        if not is_predict_event(event):
            return call()
        observation = RequestObservation()
        token = _current.set(observation)
        try:
            response = call()
        except BaseException:
            self._emit(observation, 500)  # the resolver answers every error itself; this is Lambda's crash
            raise
        finally:
            _current.reset(token)
        self._emit(observation, response_status(response))
        return response

    # --- the predict route reports what happened --------------------------------------------------

    def routed(self, model: str, route: Any) -> None:
        """Predictor.predict's on_route: the version that answers (so a rejected request counts for it)."""
        observation = _current.get()
        if observation is not None:
            observation.model, observation.version = model, str(getattr(route, "version", route))

    def answered(self, predictor: Any, records: Sequence[Any], response: PredictResponse) -> None:
        """Count the answer's records and labels, and capture a sample of its predictions. Never raises."""
        observation = _current.get() or RequestObservation()
        try:
            observation.model, observation.version = response.model, response.version
            observation.records = len(response.predictions)
            observation.labels.update(p.label for p in response.predictions if p.label is not None)
            if not self.capturing:
                return
            loaded = predictor.load(response.model, response.version, response.variant)  # cached: loaded to predict
            captures = build_captures(response, records, loaded.manifest, observation.elapsed_ms(), self.capture_rate,
                                      text=loaded.spec.text_feature)
            result = self.sender.send(captures)  # never raises
            observation.captured += result.sent
            observation.capture_failures += result.failed
        except Exception:  # monitoring never fails a prediction
            lost = len(response.predictions) - observation.captured - observation.capture_failures
            observation.capture_failures += max(lost, 0)
            logger.exception("prediction capture failed", extra={"model": response.model, "version": response.version,
                                                                   "capture_failures": observation.capture_failures})

    # --- emission --------------------------------------------------------------------------------

    def _emit(self, o: RequestObservation, status: int) -> None:
        try:
            metrics: dict[str, tuple[str, Any]] = {
                "RequestCount": ("Count", 1),
                "RecordCount": ("Count", o.records if status < 400 else 0),
                "Latency": ("Milliseconds", round(o.elapsed_ms(), 3)),
                "Errors4xx": ("Count", 1 if 400 <= status < 500 else 0),
                "Errors5xx": ("Count", 1 if status >= 500 else 0),
            }
            if self.capturing or o.capture_failures:
                metrics["Captured"] = ("Count", o.captured)
                metrics["CaptureFailures"] = ("Count", o.capture_failures)
            docs = document(metrics, model_dimension_sets(o.model, o.version), metadata={"status": status})
            if status < 400 and o.model and o.version and o.labels:
                docs += label_documents(o.model, o.version, o.labels)
            write(docs)  # the request's blobs in one write: ~0.1 ms instead of ~0.3 ms through a provider each
        except Exception:  # metrics never fail the request
            logger.warning("could not emit predict metrics", exc_info=True)


def label_documents(model: str, version: str, labels: Counter[str]) -> list[dict[str, Any]]:
    """PredictedLabel per [model, version, label] (predict and batch alike): the rarest beyond MAX_LABEL_BLOBS
    labels counted as "(other)", so a caller cannot create metric series at will."""
    ranked = labels.most_common()
    kept = ranked[:MAX_LABEL_BLOBS]
    other = sum(n for _, n in ranked[MAX_LABEL_BLOBS:])
    if other:
        kept.append(("(other)", other))
    docs: list[dict[str, Any]] = []
    for label, n in kept:
        docs += document({"PredictedLabel": ("Count", n)}, [{"model": dimension_value(model),
                                                             "version": dimension_value(version),
                                                             "label": dimension_value(label)}])
    return docs
