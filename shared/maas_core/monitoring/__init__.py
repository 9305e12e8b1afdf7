"""Monitoring: predict metrics (EMF), prediction capture, feedback, quality and drift.

    predict function --EMF--> CloudWatch (RequestCount, Latency, Errors4xx/5xx, PredictedLabel, ...)
          |  sampled captures (MAAS_CAPTURE_RATE), SendMessageBatch
          v
    capture queue (SQS, DLQ) --> capture function --PutItem--> captures table (DynamoDB, TTL)
                                                                   ^          |
    POST /v1/models/{model}/feedback (metrics function) --UpdateItem       |
    GET  /v1/models/{model}/metrics  (metrics function) <--Query-----------'
    schedule, every 15 min           (metrics function) --EMF--> Accuracy, F1Macro, MAE, MaxDriftPSI, ...

Modules: emf (how metrics are written), metrics (the predict side), capture (what a capture is and
how it is queued), store (the captures table), quality (formulas), report (feedback, metrics API,
publication), schemas (the API's models).
"""

from maas_core.monitoring.capture import CaptureSender, build_captures, sampled
from maas_core.monitoring.metrics import PredictMonitor
from maas_core.monitoring.report import (
    MonitoringService,
    Window,
    is_publish_event,
    parse_window,
)
from maas_core.monitoring.store import CaptureStore, InvalidCapture

__all__ = [
    "CaptureSender",
    "CaptureStore",
    "InvalidCapture",
    "MonitoringService",
    "PredictMonitor",
    "Window",
    "build_captures",
    "is_publish_event",
    "parse_window",
    "sampled",
]
