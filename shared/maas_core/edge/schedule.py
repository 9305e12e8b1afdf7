"""The metrics function's scheduled event: EventBridge invokes it every 15 minutes to publish quality and
drift metrics (maas_core.monitoring.report.MonitoringService.publish)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PUBLISH_ACTION = "publish_metrics"  # the template's rule sends {"action": "publish_metrics"} as its input


def is_publish_event(event: Any) -> bool:
    """The schedule's event (the template's input), or a raw EventBridge scheduled event."""
    return isinstance(event, Mapping) and (event.get("action") == PUBLISH_ACTION
                                           or event.get("detail-type") == "Scheduled Event")
