"""API Gateway's REST Lambda proxy integration: an HTTP request as the (v1) proxy event, a handler's proxy
response back as status, headers and body."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from maas_local.template import LOCAL_ACCOUNT_ID, Route

HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive", "date", "server"}


def build_event(
    *, method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes | None,
    route: Route, path_params: dict[str, str], stage: str, source_ip: str, request_id: str,
    api_key_id: str | None = None, claims: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The API Gateway REST (v1) Lambda proxy event. `api_key_id`: the id of the caller's usage-plan key (what
    API Gateway sets on routes that require one); `claims`: a token authorizer's (requestContext.authorizer)."""
    single_headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        single_headers[name] = value  # API Gateway keeps the last value of a repeated header
        multi_headers.setdefault(name, []).append(value)
    single_query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        single_query[name] = value
        multi_query.setdefault(name, []).append(value)
    body_text: str | None = None
    is_b64 = False
    if body:
        try:
            body_text = body.decode("utf-8")
        except UnicodeDecodeError:  # binary payloads arrive base64 encoded, as with binaryMediaTypes
            body_text, is_b64 = base64.b64encode(body).decode("ascii"), True
    now = datetime.now(UTC)
    host = single_headers.get("Host") or next((v for k, v in single_headers.items() if k.lower() == "host"),
                                              "localhost")
    return {
        "resource": route.path,
        "path": path,
        "httpMethod": method,
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": single_query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_params or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": LOCAL_ACCOUNT_ID,
            "apiId": "local",
            "resourceId": route.event,
            "resourcePath": route.path,
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "domainName": host,
            "identity": {
                "sourceIp": source_ip,
                "userAgent": next((v for k, v in single_headers.items() if k.lower() == "user-agent"), None),
                "accessKey": None, "accountId": None, "caller": None, "user": None, "userArn": None,
                "cognitoIdentityId": None, "cognitoIdentityPoolId": None,
                "cognitoAuthenticationProvider": None, "cognitoAuthenticationType": None,
                "apiKey": None, "apiKeyId": api_key_id,
            },
            **({"authorizer": {"claims": dict(claims)}} if claims is not None else {}),
        },
        "body": body_text,
        "isBase64Encoded": is_b64,
    }


def local_api_key_id(key: str) -> str:
    """A stable id for a local API key's value (API Gateway names a key by an id, never by its value)."""
    return "local-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def token_claims(token: str) -> dict[str, Any]:
    """What a Cognito authorizer would pass on: the JWT's payload, read without checking its signature (there is
    no Cognito locally); a token that is not a JWT gets a subject derived from it, so it still names one caller."""
    try:
        payload = token.removeprefix("Bearer ").split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, UnicodeDecodeError):
        claims = None
    if not isinstance(claims, dict) or not claims.get("sub"):
        return {"sub": "local-" + hashlib.sha256(token.encode()).hexdigest()[:16]}
    return {str(k): str(v) for k, v in claims.items()}  # API Gateway passes claims as strings


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None,
               request_id: str | None = None) -> bytes:
    """The gateway's own answers in the project's error shape, with the request id as the template's
    GatewayResponses add it ($context.requestId)."""
    error: dict[str, Any] = {"code": code, "message": message, "details": details or []}
    if request_id:
        error["request_id"] = request_id
    return json.dumps({"error": error}).encode()


class BadFunctionResponse(Exception):
    pass


def decode_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A proxy integration response -> (status, headers, body bytes), or BadFunctionResponse."""
    if not isinstance(result, Mapping) or "statusCode" not in result:
        raise BadFunctionResponse(f"handler returned {type(result).__name__}, not a proxy response with statusCode")
    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError) as exc:
        raise BadFunctionResponse(f"statusCode {result['statusCode']!r} is not an integer") from exc
    headers: list[tuple[str, str]] = []
    multi = result.get("multiValueHeaders") or {}
    seen = {k.lower() for k in multi}
    for name, values in multi.items():
        for v in values if isinstance(values, list) else [values]:
            headers.append((str(name), str(v)))
    for name, value in (result.get("headers") or {}).items():
        if name.lower() not in seen:
            headers.append((str(name), str(value)))
    body = result.get("body")
    if body is None:
        data = b""
    elif result.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body)
        except (ValueError, TypeError) as exc:
            raise BadFunctionResponse("isBase64Encoded is true but the body is not base64") from exc
    elif isinstance(body, str):
        data = body.encode("utf-8")
    else:
        raise BadFunctionResponse(f"body must be a string, got {type(body).__name__}")
    return status, [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP], data
