"""The OpenAPI document of the whole API, served at GET /v1/openapi.json.

Each HTTP function (predict, preprocess, admin, metrics) is its own Lambda with its own Powertools
resolver, and a function's package holds only its own routes. So the complete document is generated
at development time from every function's resolver (`python -m maas_local.openapi_doc --write`,
which merges their `get_openapi_schema()` and marks each operation's security from template.yaml's
events) into `openapi.json` beside this module, shipped in the core layer; a test regenerates it and
fails when the committed copy is stale.

What depends on the deployment is added when it is served: the security scheme of the stack's
AuthMode (MAAS_AUTH_MODE: ApiKey -> the x-api-key header, Jwt -> a Cognito token in Authorization) as
the default of every operation; admin operations keep SigV4 (IAM) and health and this document none.
"""

from __future__ import annotations

import copy
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

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


@lru_cache(maxsize=1)
def stored_document() -> dict[str, Any]:
    return json.loads(DOCUMENT_FILE.read_text(encoding="utf-8"))


def document(auth_mode: str | None = None) -> dict[str, Any]:
    """The complete document with the security of `auth_mode` (default: MAAS_AUTH_MODE, else ApiKey)."""
    mode = auth_mode or os.environ.get("MAAS_AUTH_MODE") or "ApiKey"
    doc = copy.deepcopy(stored_document())  # the cached original stays untouched
    scheme = MODE_SCHEME.get(mode, "api_key")
    components = doc.setdefault("components", {})
    components["securitySchemes"] = {name: SECURITY_SCHEMES[name] for name in (scheme, "sigv4")}
    doc["security"] = [{scheme: []}]  # operations without their own `security` (open / admin ones have it)
    return doc
