"""Metrics function: feedback and metrics routes (API Gateway REST), and the scheduled publication of
quality and drift metrics (EventBridge). Thin on purpose: the logic is maas_core.monitoring.report."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from maas_core.edge.http import (
    build_resolver,
    error_responses,
    json_response,
    ok_response,
    resolve,
)
from maas_core.edge.openapi import INSTANT_SCHEMA, VERSION_SCHEMA, WINDOW_SCHEMA, ModelName
from maas_core.edge.schedule import is_publish_event
from maas_core.monitoring import MonitoringService, parse_window
from maas_core.monitoring.schemas import (
    FeedbackRequest,
    FeedbackResponse,
    MetricsResponse,
)
from maas_core.settings import get_settings

logger = Logger()
app = build_resolver()


@lru_cache(maxsize=1)
def service() -> MonitoringService:
    return MonitoringService.from_settings(get_settings())


@app.post(
    "/v1/models/<model>/feedback",
    responses={**ok_response(FeedbackResponse, "one result per item; at least one was recorded (or already was)"),
               **error_responses(400, 404, 409, 415, 422, 503)},
)
def feedback(model: ModelName, request: FeedbackRequest) -> Response[dict[str, Any]]:
    return json_response(service().feedback(model, request))


@app.get(
    "/v1/models/<model>/metrics",
    responses={**ok_response(MetricsResponse, "volume, latency, quality and drift per version"),
               **error_responses(400, 404, 422, 503)},
)
def metrics(
    model: ModelName,
    window: Annotated[str | None, Query(description="minutes, hours or days up to 30 days: 15m, 1h, 24h, 7d, ... "
                                                    "(default 1h); not with since or until (422)",
                                        json_schema_extra=WINDOW_SCHEMA)] = None,
    since: Annotated[str | None, Query(description="ISO 8601 start, instead of window: before until, at most 30 "
                                                   "days before it (422)", json_schema_extra=INSTANT_SCHEMA)] = None,
    until: Annotated[str | None, Query(description="ISO 8601 end (default now), only with since (422)",
                                       json_schema_extra=INSTANT_SCHEMA)] = None,
    version: Annotated[str | None, Query(description="only this version", json_schema_extra=VERSION_SCHEMA)] = None,
) -> Response[dict[str, Any]]:
    return json_response(service().metrics(model, parse_window(window, since, until), version))


# every log line of the request names API Gateway's request id (also in the answer: maas_core.edge.http)
@logger.inject_lambda_context(clear_state=True, correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_publish_event(event):  # the EventBridge schedule
        return service().publish()
    return resolve(app, event, context)
