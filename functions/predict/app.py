"""Predict function: API Gateway (REST) -> maas_core. Thin on purpose: routes, parameters, wiring."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Header, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from maas_core import __version__
from maas_core.edge import coldstart
from maas_core.edge.http import build_resolver, error_responses, ok_response
from maas_core.edge.inference_protocol import protocol_error_responses
from maas_core.edge.openapi import (
    DOCUMENT_RESPONSE,
    NAME_SCHEMA,
    VERSION_SCHEMA,
    ModelDescription,
    ModelList,
    ModelName,
    VersionId,
)
from maas_core.edge.openapi import document as openapi_document
from maas_core.edge.predict_requests import answer, resolve_monitored
from maas_core.inference_protocol import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ReadyResponse,
    ServerMetadata,
    inputs_reader,
    model_metadata,
    response_writer,
    wants_explanation,
)
from maas_core.manifest import VARIANTS
from maas_core.monitoring import PredictMonitor
from maas_core.outcome import Route
from maas_core.predictor import Predictor
from maas_core.registry import AliasTarget
from maas_core.schemas import HealthResponse, PredictRequest, PredictResponse
from maas_core.settings import get_settings

logger = Logger()
app = build_resolver()
coldstart.prime()  # boto3 clients during init, when init is off the clock (SnapStart, provisioned)


@lru_cache(maxsize=1)
def predictor() -> Predictor:
    # one per process: warm invocations reuse the registry client and loaded models
    return Predictor.from_settings(get_settings())


@lru_cache(maxsize=1)
def monitor() -> PredictMonitor:
    # EMF metrics of every predict request, and capture as log lines (on when MAAS_CAPTURE_RATE > 0)
    return PredictMonitor.from_settings(get_settings())


@app.get("/v1/health", responses=ok_response(HealthResponse, "the function answers"))
def health() -> HealthResponse:
    return HealthResponse(status="ok", version=__version__)


@app.get("/v1/openapi.json", responses=DOCUMENT_RESPONSE)
def openapi() -> dict[str, Any]:
    """The OpenAPI document of the whole API (every function's routes; maas_core.edge.openapi), with the
    security of this stack's AuthMode."""
    return openapi_document()


@app.get("/v1/models", responses={**ok_response(ModelList, "every registered model"), **error_responses(503)})
def list_models() -> dict[str, Any]:
    return {"models": predictor().registry.list_models()}


@app.get("/v1/models/<model>", responses={**ok_response(ModelDescription, "its versions, aliases and manifest"),
                                          **error_responses(400, 404, 503)})
def describe_model(model: ModelName) -> dict[str, Any]:
    p = predictor()
    info = p.registry.describe(model)
    latest = info["versions"][0]["version"] if info["versions"] else None
    target = info["aliases"].get(p.settings.default_alias, {}).get("version", latest)
    info["manifest"] = p.store.load_manifest(model, target).model_dump(mode="json") if target else None
    return info


@app.post(
    "/v1/models/<model>/predict",
    responses={**ok_response(PredictResponse, "one prediction per record, in order"),
               **error_responses(400, 404, 413, 415, 422, 500, 503)},
)
def predict(
    model: ModelName,
    request: PredictRequest,
    version: Annotated[str | None, Query(description="model version, a whole number without leading zeros (e.g. 3; "
                                                     "else 400 invalid_version); not with alias (422)",
                                         json_schema_extra=VERSION_SCHEMA)] = None,
    alias: Annotated[str | None, Query(description="alias to resolve, default prod; not with version (422)",
                                       json_schema_extra=NAME_SCHEMA)] = None,
    variant: Annotated[str | None, Query(description="which of the version's models answers: float (default) or "
                                                     "int8, its dynamically quantized model (404 if it has none)",
                                         json_schema_extra={"enum": list(VARIANTS)})] = None,
    explain: Annotated[bool, Query(description="add per-field attributions to each prediction: occlusion against the "
                                               "training baseline (tabular models; a text model answers 422)")] = False,
    routing_key: Annotated[str | None, Header(
        alias="x-maas-routing-key", description="sticky canary routing key; default: the caller's IP")] = None,
) -> Response[str]:  # pre-serialised JSON (PredictResponse, documented above)
    key = routing_key or app.current_event.request_context.identity.source_ip
    # classifiers answer label + probabilities, regressors a value: the other fields are left out; the
    # prediction's outcome goes to the monitor (maas_core.edge.predict_requests)
    return answer(app, lambda: predictor().predict(model, request.records, version=version, alias=alias,
                                                   routing_key=key, explain=explain, variant=variant))


# The Open Inference Protocol (KServe V2 REST; maas_core.inference_protocol): the same predictor, monitor and
# limits as /v1; its errors are answered {"error": "..."} (maas_core.edge.inference_protocol)
V2_ERRORS = protocol_error_responses(400, 404, 413, 415, 500, 503)


@app.get("/v2/health/live", responses=ok_response(ReadyResponse, "the function answers"))
def v2_live() -> dict[str, Any]:
    return {"live": True}


@app.get("/v2/health/ready", responses=ok_response(ReadyResponse, "the function answers"))
def v2_ready() -> dict[str, Any]:
    return {"ready": True}


@app.get("/v2", responses=ok_response(ServerMetadata, "the server's name and version"))
def v2_server_metadata() -> dict[str, Any]:
    return {"name": "maas", "version": __version__, "extensions": []}


@app.get("/v2/models/<model>", responses={**ok_response(ModelMetadata, "the default alias's stable version (its "
                                                                       "canary named in parameters)"), **V2_ERRORS})
def v2_model_metadata(model: ModelName) -> dict[str, Any]:
    p = predictor()
    target = p.alias_target(model, p.settings.default_alias)  # its stable version: the same answer every call
    return _metadata(model, target.version, target)


@app.get("/v2/models/<model>/versions/<version>", responses={**ok_response(ModelMetadata, "that version"),
                                                             **V2_ERRORS})
def v2_version_metadata(model: ModelName, version: VersionId) -> dict[str, Any]:
    return _metadata(model, predictor().route(model, version).version)


def _metadata(model: str, version: str, target: AliasTarget | None = None) -> dict[str, Any]:
    p = predictor()
    versions = [v["version"] for v in p.registry.describe(model)["versions"]]
    return model_metadata(p.store.load_manifest(model, version), versions, target)


@app.get("/v2/models/<model>/ready", responses={**ok_response(ReadyResponse, "the default alias's stable version "
                                                                             "loads"), **V2_ERRORS})
def v2_model_ready(model: ModelName) -> dict[str, Any]:
    p = predictor()
    target = p.alias_target(model, p.settings.default_alias)
    p.load_route(model, Route(model, target.version, target.alias))
    return {"ready": True}


@app.get("/v2/models/<model>/versions/<version>/ready",
         responses={**ok_response(ReadyResponse, "that version loads"), **V2_ERRORS})
def v2_version_ready(model: ModelName, version: VersionId) -> dict[str, Any]:
    p = predictor()
    p.load_route(model, p.route(model, version))
    return {"ready": True}


INFER_RESPONSES = {**ok_response(InferenceResponse, "the outputs asked for, one element (or row) per record"),
                   **V2_ERRORS}


@app.post("/v2/models/<model>/infer", responses=INFER_RESPONSES)
def v2_infer(model: ModelName, request: InferenceRequest) -> Response[str]:
    return _infer(model, None, request)


@app.post("/v2/models/<model>/versions/<version>/infer", responses=INFER_RESPONSES)
def v2_version_infer(model: ModelName, version: VersionId, request: InferenceRequest) -> Response[str]:
    return _infer(model, version, request)


def _infer(model: str, version: str | None, request: InferenceRequest) -> Response[str]:
    p = predictor()
    key = app.current_event.request_context.identity.source_ip
    return answer(app, lambda: p.predict(model, inputs_reader(request, p.settings.max_records), version=version,
                                         alias=request.parameter("alias"), variant=request.parameter("variant"),
                                         routing_key=key, explain=wants_explanation(request)),
                  body=response_writer(request))


# every log line of the request names API Gateway's request id (also in the answer: maas_core.edge.http)
@logger.inject_lambda_context(clear_state=True, correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_monitored(app, event, context, monitor())  # each predict request counted, captured
