"""Admin function: alias moves and version deletes. Behind IAM authorisation (template.yaml), with a
role that may write the registry; callers of predict cannot reach it."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from maas_core.admin import AliasState, AliasUpdate, delete_version, update_alias
from maas_core.edge.http import build_resolver, error_responses, json_response, ok_response, resolve
from maas_core.edge.openapi import AliasName, ModelName, VersionDeleted, VersionId
from maas_core.guardrails import Guardrails
from maas_core.registry import Registry
from maas_core.settings import get_settings
from maas_core.store import BundleStore

logger = Logger()
app = build_resolver()


@lru_cache(maxsize=1)
def registry() -> Registry:
    return Registry(get_settings().registry_table)


def guardrails() -> Guardrails:
    return Guardrails(get_settings())  # cheap: the settings are cached, the clients shared


@app.put(
    "/v1/models/<model>/aliases/<alias>",
    responses={**ok_response(AliasState, "where the alias points now"),
               **error_responses(400, 404, 409, 415, 422, 503)},
)
def put_alias(model: ModelName, alias: AliasName, update: AliasUpdate) -> Response[dict[str, Any]]:
    caller = app.current_event.request_context.identity.user_arn or ""
    state = update_alias(registry(), guardrails(), model, alias, update, by=caller)
    logger.info("alias moved", extra={"model": model, "alias": alias, "action": update.action, "version": state.version,
                                      "canary_version": state.canary_version, "caller": caller,
                                      "guardrails": state.guardrails.model_dump() if state.guardrails else None})
    return json_response(state)


@app.delete("/v1/models/<model>/versions/<version>",
            responses={**ok_response(VersionDeleted, "unregistered, and its files deleted"),
                       **error_responses(400, 404, 409, 503)})
def delete(model: ModelName, version: VersionId) -> dict[str, Any]:
    unregistered, files = delete_version(registry(), BundleStore(get_settings().model_bucket), model, version)
    logger.info("version deleted", extra={"model": model, "version": version, "files": files,
                                          "registry_entry_deleted": unregistered})
    # registry_entry_deleted false: an earlier DELETE unregistered it, and this one removed the files it left
    return {"model": model, "version": version, "deleted": True, "registry_entry_deleted": unregistered,
            "files_deleted": files}


# every log line of the request names API Gateway's request id (also in the answer: maas_core.edge.http)
@logger.inject_lambda_context(clear_state=True, correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
