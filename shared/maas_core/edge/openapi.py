"""The OpenAPI document of the whole API, served at GET /v1/openapi.json.

Each HTTP function (predict, preprocess, admin, metrics) is its own Lambda with its own Powertools
resolver, and a function's package holds only its own routes. So the complete document is generated
at development time from every function's resolver (`python -m maas_local.openapi_doc --write`,
which merges their `get_openapi_schema()` and marks each operation's security from template.yaml's
events) into `openapi.json` beside this module, shipped in the core layer; a test regenerates it and
fails when the committed copy is stale.

What depends on the deployment is added when it is served: the security scheme of the stack's
AuthMode (MAAS_AUTH_MODE: ApiKey -> the x-api-key header, Jwt -> a Cognito token in Authorization) as
the default of every operation, with the gateway's refusal of a caller without it (403 or 401); admin
operations keep SigV4 (IAM) and health and this document none.

The routes declare their names with the types below: the registry's own patterns (NAME_PATTERN,
VERSION_PATTERN), in the document only: the API's checks (check_name, check_version) answer a 400 that says
the form, which a pydantic pattern error would not.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from maas_core.manifest import Manifest
from maas_core.registry import NAME_SCHEMA, VERSION_SCHEMA
from maas_core.settings import get_settings

DOCUMENT_FILE = Path(__file__).with_name("openapi.json")

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "api_key": {"type": "apiKey", "in": "header", "name": "x-api-key",
                "description": "a key of the API's usage plan (AuthMode ApiKey): per-key throttling and quota"},
    "jwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": "an ID token of the stack's Cognito user pool (AuthMode Jwt), sent as Authorization"},
    "sigv4": {"type": "apiKey", "in": "header", "name": "Authorization",
              "description": "AWS Signature Version 4 (IAM): admin routes only"},
}
MODE_SCHEME = {"ApiKey": "api_key", "Jwt": "jwt"}
# what API Gateway answers itself when the scheme's credential is missing or wrong (template GatewayResponses)
SCHEME_REFUSAL = {"api_key": (403, "no or an unknown x-api-key (INVALID_API_KEY)"),
                  "jwt": (401, "no or an invalid token (UNAUTHORIZED)")}

NAME_DESCRIPTION = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit (else 400)"
VERSION_DESCRIPTION = "a whole number without leading zeros, e.g. 3 (else 400 invalid_version)"

# ?window= of the metrics: 1-43200 minutes, 1-720 hours or 1-30 days (maas_core.monitoring.report.MAX_WINDOW;
# a unit test compares it with parse_window)
WINDOW_SCHEMA: dict[str, Any] = {"pattern": "^(?:(?:[1-9][0-9]{0,3}|[1-3][0-9]{4}|4[0-2][0-9]{3}|43[01][0-9]{2}|43200)m"
                                            "|(?:[1-9][0-9]?|[1-6][0-9]{2}|7[01][0-9]|720)h"
                                            "|(?:[1-9]|[12][0-9]|30)d)$"}
INSTANT_SCHEMA: dict[str, Any] = {"format": "date-time", "minLength": 1}

DOCUMENT_RESPONSE = {200: {"description": "this document (OpenAPI 3.1)",
                           "content": {"application/json": {"schema": {"type": "object"}}}}}

ModelName = Annotated[str, PathParam(description=f"model name: {NAME_DESCRIPTION}", json_schema_extra=NAME_SCHEMA)]
AliasName = Annotated[str, PathParam(description=f"alias: {NAME_DESCRIPTION}", json_schema_extra=NAME_SCHEMA)]
VersionId = Annotated[str, PathParam(description=f"version: {VERSION_DESCRIPTION}", json_schema_extra=VERSION_SCHEMA)]


# defer_build: the registry routes' answer models are built when first used, not in every predict cold start
class ModelSummary(BaseModel):
    model_config = ConfigDict(defer_build=True)
    name: str
    latest_version: str | None = Field(description="the newest registered version")
    versions: int = Field(description="how many versions are registered")
    aliases: dict[str, str] = Field(description="alias -> the version it points at")


class ModelList(BaseModel):
    """GET /v1/models"""
    model_config = ConfigDict(defer_build=True)

    models: list[ModelSummary]


class ModelDescription(BaseModel):
    """GET /v1/models/{model}: the registry's entries, and the manifest of the version the default alias
    (else the newest version) points at."""
    model_config = ConfigDict(defer_build=True)

    name: str
    versions: list[dict[str, Any]] = Field(description="registered versions, newest first: version, created_at, "
                                                       "task, labels, metrics")
    aliases: dict[str, dict[str, Any]] = Field(description="alias -> version, revision, canary, history, updated_at")
    manifest: Manifest | None


class VersionDeleted(BaseModel):
    """DELETE /v1/models/{model}/versions/{version}"""
    model_config = ConfigDict(defer_build=True)

    model: str
    version: str
    deleted: bool
    registry_entry_deleted: bool = Field(description="false: an earlier DELETE unregistered it, and this one "
                                                     "removed the files it left")
    files_deleted: int


@lru_cache(maxsize=1)
def stored_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DOCUMENT_FILE.read_text(encoding="utf-8"))
    return document


def document(auth_mode: str | None = None) -> dict[str, Any]:
    """The complete document with the security of `auth_mode` (default: MAAS_AUTH_MODE, else ApiKey)."""
    mode = auth_mode or get_settings().auth_mode
    doc = copy.deepcopy(stored_document())  # the cached original stays untouched
    scheme = MODE_SCHEME.get(mode, "api_key")
    components = doc.setdefault("components", {})
    components["securitySchemes"] = {name: SECURITY_SCHEMES[name] for name in (scheme, "sigv4")}
    doc["security"] = [{scheme: []}]  # operations without their own `security` (open / admin ones have it)
    status, reason = SCHEME_REFUSAL[scheme]
    for methods in doc["paths"].values():
        for op in methods.values():
            if "security" not in op:
                op["responses"][str(status)] = error_response(f"refused by the gateway: {reason}")
    return doc


def error_response(description: str) -> dict[str, Any]:
    """A documented error status: the project's error body."""
    return {"description": description, "content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/ErrorResponse"}}}}
