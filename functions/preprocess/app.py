"""Preprocess function: API Gateway (REST) -> maas_core. Raw records in, the feature matrix the model
sees out (the bundle's fitted spec, the same code predict runs). Thin on purpose: routes, parameters, wiring."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from maas_core.edge.http import build_resolver, error_responses, json_response, ok_response, resolve
from maas_core.edge.openapi import NAME_SCHEMA, VERSION_SCHEMA, ModelName
from maas_core.predictor import Predictor
from maas_core.schemas import PreprocessRequest, PreprocessResponse
from maas_core.settings import get_settings

logger = Logger()
app = build_resolver()


@lru_cache(maxsize=1)
def predictor() -> Predictor:
    # one per process: warm invocations reuse the registry client and loaded models
    return Predictor.from_settings(get_settings())


@app.post(
    "/v1/models/<model>/preprocess",
    responses={**ok_response(PreprocessResponse, "the feature matrix, one row per record, and its column names"),
               **error_responses(400, 404, 413, 415, 422, 500, 503)},
)
def preprocess(
    model: ModelName,
    request: PreprocessRequest,
    version: Annotated[str | None, Query(description="model version, a whole number without leading zeros (e.g. 3; "
                                                     "else 400 invalid_version); not with alias (422)",
                                         json_schema_extra=VERSION_SCHEMA)] = None,
    alias: Annotated[str | None, Query(description="alias to resolve, default prod; not with version (422)",
                                       json_schema_extra=NAME_SCHEMA)] = None,
) -> Response[dict[str, Any]]:
    return json_response(predictor().preprocess(model, request.records, version=version, alias=alias))


# every log line of the request names API Gateway's request id (also in the answer: maas_core.edge.http)
@logger.inject_lambda_context(clear_state=True, correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
