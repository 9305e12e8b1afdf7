"""CloudWatch metrics as Embedded Metric Format log lines (Powertools' EMF layout, written directly: one write
per request instead of a provider object and a print per blob), namespace `maas`.

Every blob is written with its own dimension sets:

    [model, version]   per model version (dashboards, `GET /metrics` comparisons)
    [model]            per model, across versions
    [service]          service = "maas": one series for everything, which the template's alarms watch
                       (alarms need fixed dimensions; model names are only known at run time)

A request that never resolved to a model version (malformed body, unknown model, registry down) is
counted under [service] only: a dimension value is never a name the caller made up, so a caller
cannot create metric series (and CloudWatch cost) at will.

On Lambda, the first write of a process also carries `ColdStart` = 1 under [function_name, service], the
layout of Powertools' capture_cold_start_metric: one per new execution environment, in the write the
function makes anyway (no extra print, no Powertools Metrics object on the cold path).

Emitting never raises: metrics must not fail the request or job that produces them.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.constants import MAX_DIMENSIONS, MAX_METRICS
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.metric_properties import MetricUnit

logger = Logger(child=True)

NAMESPACE = "maas"
SERVICE = {"service": "maas"}
_MAX_DIMENSION_VALUE = 250

Values = float | int | list[float]
_UNITS = frozenset(u.value for u in MetricUnit)


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


def document(metrics: Mapping[str, tuple[str, Values]], dimension_sets: Iterable[Mapping[str, str]],
             metadata: Mapping[str, Any] | None = None, timestamp_ms: int | None = None) -> list[dict[str, Any]]:
    """The EMF documents of one blob, in Powertools' layout: metrics = {name: (unit, value or values)}; the
    first dimension set is the primary one. Checked as Powertools' provider checks them (units, at most
    29 dimensions, at most 100 values per metric: more make further documents). ValueError if invalid."""
    sets = [{str(k): str(v) for k, v in s.items()} for s in dimension_sets if s]
    if not metrics or not sets:
        raise ValueError("no metrics or no dimensions")
    keys: dict[str, str] = {}
    for s in sets:
        keys.update(s)
    if len(keys) > MAX_DIMENSIONS:
        raise ValueError(f"more than {MAX_DIMENSIONS} dimensions")
    series: dict[str, tuple[str, list[float]]] = {}
    for name, (unit, values) in metrics.items():
        if not name or unit not in _UNITS:
            raise ValueError(f"metric {name!r}: invalid unit {unit!r}")
        # a non-finite value would make the line invalid JSON: dropped (Powertools would print NaN)
        numbers = map(float, values if isinstance(values, list) else [values])
        series[name] = (unit, [f for f in numbers if math.isfinite(f)])
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    dimensions = [list(s) for s in sets]
    docs = []
    for start in range(0, max(len(v) for _, v in series.values()), MAX_METRICS):
        chunk = {name: (unit, v[start:start + MAX_METRICS]) for name, (unit, v) in series.items() if v[start:]}
        directive = {"Namespace": NAMESPACE, "Dimensions": dimensions,
                     "Metrics": [{"Name": name, "Unit": unit} for name, (unit, _) in chunk.items()]}
        doc: dict[str, Any] = {"_aws": {"Timestamp": ts, "CloudWatchMetrics": [directive]}, **keys, **(metadata or {})}
        doc.update((name, v) for name, (_, v) in chunk.items())
        docs.append(doc)
    if not docs:
        raise ValueError("no finite metric values")
    return docs


_cold_start = {"pending": True}  # this process has not written its ColdStart metric yet


def cold_start_documents() -> list[dict[str, Any]]:
    """[the ColdStart document] the first time a process on Lambda asks, [] after that and off Lambda."""
    # Lambda's runtime sets the function's name (not a setting of ours: no MAAS_ prefix)
    function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    if not (_cold_start["pending"] and function):
        return []
    _cold_start["pending"] = False
    return document({"ColdStart": ("Count", 1)}, [{"function_name": dimension_value(function), **SERVICE}])


def write(documents: Sequence[Mapping[str, Any]]) -> None:
    """Every EMF document of a request in one write to stdout (CloudWatch Logs): one JSON document a line,
    the process's ColdStart first if it is due. Nothing when Powertools' POWERTOOLS_METRICS_DISABLED (or
    POWERTOOLS_DEV) turns metrics off."""
    if documents and not is_metrics_disabled():
        lines = [*cold_start_documents(), *documents]
        print("\n".join(json.dumps(d, separators=(",", ":"), default=str) for d in lines), flush=False)


def emit(metrics: Mapping[str, tuple[str, Values]], dimension_sets: Iterable[Mapping[str, str]],
         metadata: Mapping[str, Any] | None = None) -> bool:
    """Print one EMF blob (see `document`). Returns False (and logs) instead of raising."""
    try:
        write(document(metrics, dimension_sets, metadata))
        return True
    except Exception:  # metrics never fail the caller
        logger.warning("could not emit metrics", exc_info=True, extra={"metrics": sorted(metrics)})
        return False
