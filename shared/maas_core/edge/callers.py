"""Who is calling, as API Gateway tells the function: what a caller's own resources (jobs) are keyed by.

AuthMode=ApiKey: the id of the caller's API key (`requestContext.identity.apiKeyId`, set by API Gateway when
the route requires a key: the id, never the key's value). AuthMode=Jwt: the token's subject (the Cognito
authorizer's `requestContext.authorizer.claims.sub`). Each is prefixed by its kind, so a key id and a subject
never name the same owner. A request without either (only possible when a route is open) is refused: 403.
"""

from __future__ import annotations

from typing import Any

from maas_core.errors import ForbiddenError
from maas_core.settings import get_settings


def caller_of(event: dict[str, Any]) -> str:
    context = event.get("requestContext") or {}
    if get_settings().auth_mode == "Jwt":
        claims = (context.get("authorizer") or {}).get("claims") or {}
        subject = claims.get("sub")
        if subject:
            return f"sub:{subject}"
    else:
        key_id = (context.get("identity") or {}).get("apiKeyId")
        if key_id:
            return f"apikey:{key_id}"
    raise ForbiddenError("this route needs a caller identity (an API key or a token) to keep its jobs apart",
                         [{"field": "Authorization" if get_settings().auth_mode == "Jwt" else "x-api-key",
                           "reason": "no caller identity"}])
