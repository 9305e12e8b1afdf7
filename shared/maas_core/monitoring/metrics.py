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
was routed to a model version; [service] only before that (unknown model, malformed body, ...).

A request routed to a version that could not be loaded is answered by the alias's last good version
(maas_core.predictor: `Route.fallback_from`) and counted there; the broken version also gets RequestCount 1
and Errors5xx 1 under [model, version] alone, so its error rate (a canary's alarm: maas_core.guardrails) says
it failed every request sent its way, though no caller saw an error.

The monitor takes each request once, whole: the status the caller got, when the request arrived, and what
the predictor did -- its outcome (maas_core.outcome.PredictionOutcome: the answer, its route, manifest and
spec, the records), or the route a prediction failed on, or nothing:

    monitor.record(200, started, outcome)           # answered: counted and captured
    monitor.record(422, started, route=route)       # a record refused by the version it was routed to
    monitor.record(400, started)                    # refused before any version was chosen

(The predict function's edge puts these together from its requests: maas_core.edge.predict_requests.)

Nothing here raises into the request: a failure to measure or capture is logged, and the answer the
caller gets is the one they would have got without monitoring.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from maas_core.monitoring.capture import CaptureWriter, build_captures
from maas_core.monitoring.emf import dimension_value, document, model_dimension_sets, write
from maas_core.settings import Settings

if TYPE_CHECKING:
    from maas_core.outcome import PredictionOutcome, Route

logger = Logger(child=True)

MAX_LABEL_BLOBS = 25  # a request with more distinct labels counts the rest as "(other)"


def elapsed_ms(started: float) -> float:
    """Milliseconds since `started` (a time.perf_counter() reading)."""
    return (time.perf_counter() - started) * 1000.0


class PredictMonitor:
    def __init__(self, capture_rate: float = 1.0, sender: CaptureWriter | None = None) -> None:
        rate = float(capture_rate)
        self.capture_rate = 0.0 if math.isnan(rate) else min(max(rate, 0.0), 1.0)
        self.sender = sender if sender is not None else CaptureWriter()

    @classmethod
    def from_settings(cls, settings: Settings) -> PredictMonitor:
        """Capture is on when MAAS_CAPTURE_RATE > 0 (log lines: nothing else to configure)."""
        return cls(settings.capture_rate)

    @property
    def capturing(self) -> bool:
        return self.capture_rate > 0

    def record(self, status: int, started: float, outcome: PredictionOutcome | None = None,
               route: Route | None = None) -> None:
        """Count one predict request in one EMF blob (see the module docstring), and capture a sample of its
        predictions. `status`: what the caller was answered; `started`: time.perf_counter() when the request
        arrived; `outcome`: what the predictor answered, if it did; `route`: the version a failed prediction
        had been routed to. Never raises."""
        captured = failed = 0
        if outcome is not None:
            route = outcome.route
            captured, failed = self.capture(outcome, elapsed_ms(started))
        self._emit(status, started, outcome, route, captured, failed)

    def capture(self, outcome: PredictionOutcome, latency_ms: float) -> tuple[int, int]:
        """Capture the sampled share of an answer's predictions: (written, failed). Never raises."""
        if not self.capturing:
            return 0, 0
        response = outcome.response
        try:
            captures = build_captures(response, outcome.records, outcome.manifest, latency_ms, self.capture_rate,
                                      text=outcome.spec.text_feature)
            result = self.sender.send(captures)  # never raises
            return result.sent, result.failed
        except Exception:  # monitoring never fails a prediction
            failed = len(response.predictions)
            logger.exception("prediction capture failed", extra={"model": response.model, "version": response.version,
                                                                   "capture_failures": failed})
            return 0, failed

    def _emit(self, status: int, started: float, outcome: PredictionOutcome | None, route: Route | None,
              captured: int, capture_failures: int) -> None:
        try:
            answered = outcome if status < 400 else None  # an answer the caller got (not one over Lambda's 6 MB)
            metrics: dict[str, tuple[str, Any]] = {
                "RequestCount": ("Count", 1),
                "RecordCount": ("Count", answered.record_count if answered is not None else 0),
                "Latency": ("Milliseconds", round(elapsed_ms(started), 3)),
                "Errors4xx": ("Count", 1 if 400 <= status < 500 else 0),
                "Errors5xx": ("Count", 1 if status >= 500 else 0),
            }
            if self.capturing or capture_failures:
                metrics["Captured"] = ("Count", captured)
                metrics["CaptureFailures"] = ("Count", capture_failures)
            model, version = (route.model, route.version) if route is not None else (None, None)
            docs = document(metrics, model_dimension_sets(model, version), metadata={"status": status})
            broken = route.fallback_from if route is not None else None
            if model and broken:
                docs += document({"RequestCount": ("Count", 1), "Errors5xx": ("Count", 1)},
                                 [{"model": dimension_value(model), "version": dimension_value(broken)}],
                                 metadata={"status": status, "served_by": version})
            if answered is not None and model and version:
                labels = Counter(p.label for p in answered.response.predictions if p.label is not None)
                if labels:
                    docs += label_documents(model, version, labels)
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
