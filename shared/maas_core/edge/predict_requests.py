"""The predict function's requests, handed to its monitor (maas_core.monitoring.metrics.PredictMonitor).

The monitor takes each POST /v1/models/{model}/predict once, whole: the status the caller got, when the
request arrived, and what the predictor did (its outcome, or the route a failed prediction had been given;
maas_core.outcome). The handler makes two calls for it:

    def lambda_handler(event, context):
        return resolve_monitored(app, event, context, monitor())   # instead of http.resolve

    # in the predict route
    return answer(app, lambda: predictor().predict(model, request.records, ...))

`resolve_monitored` times a predict request, answers it (maas_core.edge.http.resolve), and gives the monitor
the status and what `answer` kept: the resolver turns the route's errors into answers before the handler sees
them, so `answer` keeps the prediction's outcome (or the route its error carries) in the resolver's
per-request context (Powertools' `app.context`). A request refused before it reached the route (a malformed
body) or before a version was chosen (an unknown model) leaves nothing there: counted under [service] only.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from maas_core.edge.http import resolve, serialized_json_response
from maas_core.edge.inference_protocol import is_infer_event, is_post_to
from maas_core.outcome import PredictionOutcome, Route, failed_route
from maas_core.preprocess.text import tokens_reused

if TYPE_CHECKING:
    from maas_core.monitoring.metrics import PredictMonitor

PREDICT_PATH = re.compile(r"^/v1/models/[^/]+/predict/?$")
_CONTEXT_KEY = "maas_predict_request"


def is_predict_event(event: Any) -> bool:
    """An API Gateway (REST) event for POST /v1/models/{model}/predict, or the Open Inference Protocol's
    POST /v2/models/{model}[/versions/{version}]/infer (maas_core.edge.inference_protocol)."""
    return is_post_to(event, PREDICT_PATH) or is_infer_event(event)


def response_status(response: Any) -> int:
    try:
        return int(response["statusCode"])
    except (KeyError, TypeError, ValueError):  # a malformed response: API Gateway answers 502
        return 502


@dataclass
class _Request:
    """What the predict route kept of one request for the monitor (`answer`)."""

    started: float = field(default_factory=time.perf_counter)
    outcome: PredictionOutcome | None = None
    route: Route | None = None  # the version a failed prediction had been routed to


def resolve_monitored(app: APIGatewayRestResolver, event: dict[str, Any], context: Any,
                      monitor: PredictMonitor) -> dict[str, Any]:
    """http.resolve, and for a predict request its status, latency and outcome to the monitor."""
    if not is_predict_event(event):
        return resolve(app, event, context)
    request = _Request()
    app.context[_CONTEXT_KEY] = request  # Powertools' append_context, typed
    try:
        with tokens_reused():  # a text is tokenized once, for the model and for its capture
            try:
                response = resolve(app, event, context)
            except BaseException:  # Lambda's crash: the resolver answers every error itself
                monitor.record(500, request.started, request.outcome, request.route)
                raise
            monitor.record(response_status(response), request.started, request.outcome, request.route)
    finally:
        app.context.pop(_CONTEXT_KEY, None)  # an answer given before the resolver ran leaves it there
    return response


def answer(app: APIGatewayRestResolver, predict: Callable[[], PredictionOutcome],
           body: Callable[[PredictionOutcome], str] | None = None) -> Response[str]:
    """The predict route's answer: the prediction's JSON (or `body` of its outcome: /v2's inference response).
    Its outcome, or the route of the error it raised, is kept for the monitor (`resolve_monitored`)."""
    request = app.context.get(_CONTEXT_KEY)
    try:
        outcome = predict()
    except Exception as exc:
        if isinstance(request, _Request):
            request.route = failed_route(exc)
        raise
    if isinstance(request, _Request):
        request.outcome = outcome
    if body is not None:
        return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=body(outcome))
    return serialized_json_response(outcome.response)
