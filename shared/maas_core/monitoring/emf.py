"""CloudWatch metrics as Embedded Metric Format log lines (Powertools' EMF provider), namespace `maas`.

Every blob is written with its own dimension sets:

    [model, version]   per model version (dashboards, `GET /metrics` comparisons)
    [model]            per model, across versions
    [service]          service = "maas": one series for everything, which the template's alarms watch
                       (alarms need fixed dimensions; model names are only known at run time)

A request that never resolved to a model version (malformed body, unknown model, registry down) is
counted under [service] only: a dimension value is never a name the caller made up, so a caller
cannot create metric series (and CloudWatch cost) at will.

Emitting never raises: metrics must not fail the request or job that produces them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)

logger = Logger(child=True)

NAMESPACE = "maas"
SERVICE = {"service": "maas"}
_MAX_DIMENSION_VALUE = 250

Values = float | int | list[float]


def dimension_value(value: Any) -> str:
    """CloudWatch dimension values are non-blank ASCII, at most 1024 characters."""
    text = str(value).encode("ascii", "backslashreplace").decode("ascii").strip()
    return text[:_MAX_DIMENSION_VALUE] or "(blank)"


def model_dimension_sets(model: str | None, version: str | None) -> list[dict[str, str]]:
    """[model, version], [model], [service] for a resolved request; [service] alone otherwise."""
    if model is None or version is None:
        return [dict(SERVICE)]
    return [{"model": dimension_value(model), "version": dimension_value(version)},
            {"model": dimension_value(model)}, dict(SERVICE)]


def emit(metrics: Mapping[str, tuple[str, Values]], dimension_sets: Iterable[Mapping[str, str]],
         metadata: Mapping[str, Any] | None = None) -> bool:
    """Print one EMF blob: metrics = {name: (unit, value or values)}; the first dimension set is the
    primary one. Returns False (and logs) instead of raising."""
    try:
        sets = [dict(s) for s in dimension_sets if s]
        if not metrics or not sets:
            return False
        # service="": no implicit `service` dimension from POWERTOOLS_SERVICE_NAME; the sets say what they mean
        provider = AmazonCloudWatchEMFProvider(namespace=NAMESPACE, service="")
        for name, (unit, values) in metrics.items():
            for v in values if isinstance(values, list) else [values]:
                provider.add_metric(name=name, unit=unit, value=float(v))
        for key, value in sets[0].items():
            provider.add_dimension(name=key, value=value)
        for extra in sets[1:]:
            provider.add_dimensions(**extra)
        for key, value in (metadata or {}).items():
            provider.add_metadata(key=key, value=value)
        provider.flush_metrics()
        return True
    except Exception:  # metrics never fail the caller
        logger.warning("could not emit metrics", exc_info=True, extra={"metrics": sorted(metrics)})
        return False
