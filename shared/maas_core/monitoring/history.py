"""Monitoring metrics over a sequence of time windows: the data behind `maas report`.

    rows = metrics_history(service, "penguins", start, end, timedelta(days=1))

Each window is computed exactly as GET /v1/models/{model}/metrics computes one
(MonitoringService.metrics: the same captures query, per-window capture cap, quality, latency and
drift formulas of maas_core.monitoring.quality), so a report's numbers and the API's agree. Windows
are [start + i * step, start + (i + 1) * step), the last one cut at `end`; at most MAX_WINDOWS of
them and at most MAX_SPAN in all (captures expire after MAAS_CAPTURE_TTL_DAYS, 30 by default).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from maas_core.errors import UnprocessableError
from maas_core.monitoring.report import MAX_WINDOW, MonitoringService, Window
from maas_core.monitoring.schemas import MetricsResponse

MAX_WINDOWS = 200
MAX_SPAN = MAX_WINDOW
_STEP = re.compile(r"^([1-9][0-9]{0,4})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_step(text: str) -> timedelta:
    """'15m', '1h', '1d' -> a timedelta (UnprocessableError naming the value otherwise)."""
    m = _STEP.match((text or "").strip())
    if not m:
        raise UnprocessableError(f"invalid window {text!r}: use a number of minutes, hours or days, e.g. 1h or 1d",
                                 [{"field": "window", "value": text}])
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def windows(start: datetime, end: datetime, step: timedelta) -> list[Window]:
    if end <= start:
        raise UnprocessableError("the report's start must be before its end",
                                 [{"field": "since", "value": start.isoformat()}])
    if end - start > MAX_SPAN:
        raise UnprocessableError(f"the report spans more than {MAX_SPAN.days} days (captures expire)",
                                 [{"field": "since", "value": start.isoformat()}])
    count = math.ceil((end - start) / step)
    if count > MAX_WINDOWS:
        raise UnprocessableError(f"{count} windows of {step} is more than {MAX_WINDOWS}: use a longer window",
                                 [{"field": "window", "value": str(step)}])
    return [Window(start + i * step, min(start + (i + 1) * step, end)) for i in range(count)]


@dataclass(frozen=True)
class HistoryRow:
    """One window's metrics (the API's MetricsResponse) with its bounds."""

    window: Window
    metrics: MetricsResponse

    @property
    def predictions(self) -> int:
        return sum(v.predictions for v in self.metrics.versions)


def metrics_history(service: MonitoringService, model: str, start: datetime, end: datetime, step: timedelta,
                    version: str | None = None) -> list[HistoryRow]:
    """The metrics of every window (404 for an unknown model or version, before any window is read)."""
    spans = windows(start, end, step)
    if version is not None:
        service.registry.get_version(model, version)
    else:
        service.registry.describe(model)
    return [HistoryRow(w, service.metrics(model, w, version)) for w in spans]


def series(rows: list[HistoryRow]) -> dict[str, Any]:
    """The numbers a report plots, per version: {"windows": [start iso...], "versions": {version: {
    "predictions": [...], "feedback": [...], "p50": [...], "p99": [...], "accuracy"/"f1_macro" or
    "mae"/"rmse": [...], "psi": {feature: [...]}}}}; None where a window has no value."""
    n = len(rows)
    out: dict[str, Any] = {"windows": [r.window.start.isoformat(timespec="minutes") for r in rows],
                           "versions": {}}
    for i, row in enumerate(rows):
        for v in row.metrics.versions:
            s = out["versions"].setdefault(v.version, {"predictions": [0] * n, "feedback": [0] * n,
                                                       "p50": [None] * n, "p99": [None] * n, "quality": {},
                                                       "psi": {}})
            s["predictions"][i] = v.predictions
            s["feedback"][i] = v.feedback
            s["p50"][i], s["p99"][i] = v.latency_ms.get("p50"), v.latency_ms.get("p99")
            for key in ("accuracy", "f1_macro", "mae", "rmse"):
                if v.quality and key in v.quality:
                    s["quality"].setdefault(key, [None] * n)[i] = v.quality[key]
            for feature, d in (v.drift.get("features") or {}).items():
                if d.get("psi") is not None:
                    s["psi"].setdefault(feature, [None] * n)[i] = d["psi"]
    return out
