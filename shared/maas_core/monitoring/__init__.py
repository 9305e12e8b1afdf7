"""Monitoring: predict metrics (EMF), prediction capture, feedback, quality and drift.

    predict function --EMF--> CloudWatch (RequestCount, Latency, Errors4xx/5xx, PredictedLabel, ...)
          |  sampled captures (MAAS_CAPTURE_RATE): log lines {"maas_capture": 1, ...} on stdout
          v
    its log group --subscription filter--> capture function --PutItem--> captures table (DynamoDB, TTL)
                  (a failed invocation: retried, then the capture DLQ)         ^          |
    POST /v1/models/{model}/feedback (metrics function) --UpdateItem-----------'          |
    GET  /v1/models/{model}/metrics  (metrics function) <--Query--------------------------'
    schedule, every 15 min           (metrics function) --EMF--> Accuracy, F1Macro, MAE, MaxDriftPSI, ...

    batch function --EMF + sampled captures (source "batch")--> the same metrics; capture lines in its log group

Modules: emf (how metrics are written), metrics (the predict side), batch (the batch side), capture
(what a capture is, its log lines, the subscription's events), store (the captures table), quality
(formulas), report (feedback, metrics API, publication), history (metrics over a sequence of windows: `maas report`),
schemas (the API's models).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from maas_core.lazy import lazy_exports

# Imported on first use (PEP 562): the predict function needs only PredictMonitor on a cold start, not the
# feedback/metrics service, the captures table or their pydantic models (~30 ms of imports).
_EXPORTS = {
    "CaptureWriter": "capture", "build_captures": "capture", "sampled": "capture",
    "PredictMonitor": "metrics", "BatchMonitor": "batch",
    "MonitoringService": "report", "Window": "report", "parse_window": "report",
    "CaptureStore": "store", "InvalidCapture": "store",
}

if TYPE_CHECKING:
    from maas_core.monitoring.batch import BatchMonitor
    from maas_core.monitoring.capture import CaptureWriter, build_captures, sampled
    from maas_core.monitoring.metrics import PredictMonitor
    from maas_core.monitoring.report import MonitoringService, Window, parse_window
    from maas_core.monitoring.store import CaptureStore, InvalidCapture


__getattr__ = lazy_exports(__name__, _EXPORTS)


__all__ = [
    "BatchMonitor",
    "CaptureWriter",
    "CaptureStore",
    "InvalidCapture",
    "MonitoringService",
    "PredictMonitor",
    "Window",
    "build_captures",
    "parse_window",
    "sampled",
]
