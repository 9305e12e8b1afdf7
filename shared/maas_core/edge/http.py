"""Powertools REST resolver wiring shared by every HTTP function: every failure becomes the
documented error body, never a stack trace.

    {"error": {"code": "...", "message": "...", "details": [...], "request_id": "..."}}

(the Open Inference Protocol's /v2 routes answer theirs as {"error": "..."}: every error answer is built by
`error_answer`, in the body of its route family, maas_core.edge.error_bodies).

Every answer carries the request id (API Gateway's, as its access log has it) in the X-Request-Id header and
in every error body; each HTTP function's logger takes it as the correlation id (Powertools'
correlation_paths.API_GATEWAY_REST), so a web app that reports an error can be found in the logs.
"""

from __future__ import annotations

import base64
import json
from contextvars import ContextVar
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFound
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from pydantic import BaseModel

from maas_core import deadline
from maas_core.edge import deadline as invocation_deadline
from maas_core.edge import error_bodies
from maas_core.edge.error_bodies import ErrorFormat
from maas_core.errors import BadRequestError, MaasError, PayloadTooLargeError
from maas_core.schemas import TOO_MANY_RECORDS, ErrorResponse
from maas_core.settings import get_settings

logger = Logger(child=True)

REQUEST_ID_HEADER = "X-Request-Id"
# Lambda answers at most 6 MB synchronously (API Gateway turns a bigger answer into a bare 502): a bigger
# body is refused here with a 413 that says what to do. Headers and the proxy envelope take part of it.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024 - 64 * 1024
_request_id: ContextVar[str | None] = ContextVar("maas_request_id", default=None)
# the error body of the request's route family (error_bodies.for_path), chosen once per request in `resolve`
_error_format: ContextVar[ErrorFormat] = ContextVar("maas_error_format", default=error_bodies.maas_error)


def error_responses(*statuses: int) -> dict[int, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses a route can answer, all in the documented shape."""
    reasons = {400: "malformed request, or an invalid name or version", 404: "unknown model, version or alias",
               409: "conflict with the registry's state (e.g. expected_version is not the alias's version)",
               413: "too many records, or an answer over Lambda's 6 MB", 415: "body is not JSON",
               422: "invalid request or records", 500: "internal error", 503: "a dependency is unavailable"}
    return {s: {"description": reasons.get(s, "error"), "content": {"application/json": {"model": ErrorResponse}}}
            for s in statuses}


def json_response(body: BaseModel) -> Response[dict[str, Any]]:
    """200 with a pydantic body, leaving out fields that do not apply (None)."""
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON,
                    body=body.model_dump(mode="json", exclude_none=True))


def serialized_json_response(body: BaseModel) -> Response[str]:
    """json_response for big bodies (predict): pydantic writes the JSON text itself in one Rust call, instead
    of model_dump + Powertools' response validation + json.dumps (~1.5 ms instead of ~8 ms per 1,000
    predictions). The route is annotated `-> Response[str]`; its `responses=` document the schema."""
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON,
                    body=body.model_dump_json(exclude_none=True))


def ok_response(model: type[BaseModel], description: str) -> dict[int, dict[str, Any]]:
    """OpenAPI `responses` entry for a route that returns json_response(model)."""
    return {200: {"description": description, "content": {"application/json": {"model": model}}}}


def error_answer(status: int, code: str, message: str, details: list[dict[str, Any]] | None = None,
                 details_total: int | None = None) -> tuple[int, dict[str, Any]]:
    """The status and body an error is answered with, in the format of the request's route family: maas's
    documented body (at most MAX_ERROR_DETAILS details, the request id), or /v2's protocol body."""
    return _error_format.get()(status, code, message, details or [], details_total, _request_id.get())


def error_response(status: int, code: str, message: str, details: list[dict[str, Any]] | None = None,
                   retry_after: int | None = None, details_total: int | None = None) -> Response[dict[str, Any]]:
    status, body = error_answer(status, code, message, details, details_total)
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=body,
        headers={"Retry-After": str(retry_after)} if retry_after else None,
    )


def parse_json_body(text: str) -> Any:
    """The request body's JSON (the resolver's deserializer). What json.loads cannot take for reasons other
    than syntax is the caller's mistake too: a 400 naming it, not a 500. Syntax errors stay JSONDecodeErrors,
    which the validation turns into the documented malformed-JSON 400."""
    try:
        return json.loads(text)
    except RecursionError:
        raise BadRequestError("request body is nested too deeply to read: keep JSON nesting under 500 levels",
                              [{"field": "body", "reason": "nested too deeply"}]) from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # e.g. an integer of more digits than Python converts (sys.int_info)
        raise BadRequestError(f"request body holds a value that cannot be read: {exc}",
                              [{"field": "body", "reason": "number too long"}]) from None


def validation_details(exc: RequestValidationError) -> tuple[int, str, list[dict[str, Any]]]:
    """Pydantic's errors -> (status, message, details naming each field). Malformed JSON is a 400."""
    errors = exc.errors()
    too_many = next((e for e in errors if e.get("type") == TOO_MANY_RECORDS), None)
    if too_many is not None:  # counted before any record was validated (maas_core.schemas)
        ctx = too_many.get("ctx") or {}
        return 413, str(too_many.get("msg")), [{"field": "records", "limit": ctx.get("limit"),
                                                "received": ctx.get("received")}]
    if any(e.get("type") == "json_invalid" for e in errors):
        ctx = errors[0].get("ctx") or {}
        return 400, f"request body is not valid JSON: {ctx.get('error', 'decode error')}", [
            {"field": "body", "reason": "malformed JSON", "position": errors[0]["loc"][-1]}
        ]
    details = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ())]
        if loc and loc[0] == "body" and e.get("type") == "missing" and len(loc) == 1:
            details.append({"field": "body", "reason": "request body is missing"})
            continue
        details.append({"field": ".".join(loc), "reason": e.get("msg", e.get("type", "invalid"))})
    fields = ", ".join(d["field"] for d in details[:5])
    return 422, f"request is invalid: {fields}", details


def non_json_body(event: dict[str, Any]) -> dict[str, Any] | None:
    """A 415 proxy response for a body that is not declared JSON, else None.

    Checked before the resolver: its validation would parse a `curl -d` form body and answer with
    baffling field errors, or fail on other content types.
    """
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    content_type = str(headers.get("content-type", "")).split(";")[0].strip().lower()
    json_type = content_type == "application/json" or content_type.endswith("+json")
    if not event.get("body") or not content_type or json_type:
        return None
    status, body = error_answer(
        415, "unsupported_media_type",
        f"Content-Type {content_type!r} is not supported: send JSON with Content-Type: application/json",
        [{"field": "Content-Type", "value": content_type}])
    return {"statusCode": status, "multiValueHeaders": {"Content-Type": ["application/json"]},
            "body": json.dumps(body), "isBase64Encoded": False}


def resolve(app: APIGatewayRestResolver, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """What every HTTP function's lambda_handler calls. Records the invocation's deadline first, so
    model loads and inference refuse to start when they could not finish (maas_core.deadline)."""
    invocation_deadline.start(context, event)
    request_id = request_id_of(event, context)
    scope = _request_id.set(request_id)
    format_scope = _error_format.set(error_bodies.for_path(str(event.get("path") or "")))
    try:
        response = within_response_limit(event, _answer(app, event, context))
        response.setdefault("multiValueHeaders", {})[REQUEST_ID_HEADER] = [request_id]
        return response
    finally:
        _request_id.reset(scope)
        _error_format.reset(format_scope)
        # a warm process serves the next invocation (or, in tests and the local gateway, other work
        # such as a batch file) on the same context: this request's deadline must not outlive it
        deadline.clear()


def _answer(app: APIGatewayRestResolver, event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        deadline.check("starting the request")
        early = non_json_body(event) or undecodable_body(event)
        return with_cors(event, early) if early is not None else app.resolve(event, context)
    except deadline.DeadlineExceededError as exc:
        logger.warning("request refused: too little time left", extra={"details": exc.details})
        return with_cors(event, _proxy_error(exc))


def request_id_of(event: dict[str, Any], context: Any) -> str:
    """API Gateway's request id (what its access log records), else the Lambda invocation's."""
    rid = (event.get("requestContext") or {}).get("requestId")
    return str(rid or getattr(context, "aws_request_id", "") or "unknown")


def within_response_limit(event: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """The response, or a 413 saying so when its body is over what Lambda may return (a 502 once deployed)."""
    size = len(response.get("body") or "")
    if size <= MAX_RESPONSE_BYTES:
        return response
    logger.warning("answer too large for Lambda", extra={"bytes": size, "limit": MAX_RESPONSE_BYTES})
    too_large = PayloadTooLargeError(
        f"the answer would be {size} bytes, over the {MAX_RESPONSE_BYTES} bytes Lambda can return: "
        "send fewer records in one request", [{"field": "records", "reason": "answer too large", "bytes": size,
                                               "limit": MAX_RESPONSE_BYTES}])
    return with_cors(event, _proxy_error(too_large))


def undecodable_body(event: dict[str, Any]) -> dict[str, Any] | None:
    """A 400 for a base64-encoded body that is not UTF-8 (bytes a gateway passed on as binary), else None;
    the resolver would fail decoding it (a 500)."""
    if not event.get("isBase64Encoded") or not event.get("body"):
        return None
    try:
        base64.b64decode(str(event["body"]), validate=True).decode("utf-8")
        return None
    except (ValueError, UnicodeDecodeError):
        return _proxy_error(BadRequestError("request body is not UTF-8 text: send JSON",
                                            [{"field": "body", "reason": "not UTF-8"}]))


def with_cors(event: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """The CORS headers the resolver adds (MAAS_ALLOWED_ORIGINS), on an answer given before it runs: without
    them a browser hides the 415/400/503 and reports an opaque CORS failure instead."""
    cors = cors_config()
    if cors is None:
        return response
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    sent = headers.get("origin")
    origin = None if sent is None else cors.allowed_origin(str(sent))
    if origin is not None:
        response["multiValueHeaders"].update({k: [v] for k, v in cors.to_dict(origin).items()})
    return response


def _proxy_error(exc: MaasError) -> dict[str, Any]:
    """A MaasError as a proxy response, for answers given before the resolver runs."""
    headers: dict[str, list[str]] = {"Content-Type": ["application/json"]}
    if exc.retry_after:
        headers["Retry-After"] = [str(exc.retry_after)]
    status, body = error_answer(exc.status, exc.code, exc.message, exc.details, exc.details_total)
    return {"statusCode": status, "multiValueHeaders": headers, "body": json.dumps(body), "isBase64Encoded": False}


CORS_ALLOW_HEADERS = ["Content-Type", "Authorization", "X-Api-Key", "X-Amz-Date", "X-Amz-Security-Token",
                      "X-Maas-Routing-Key"]


def cors_config() -> CORSConfig | None:
    """CORS headers for the functions' answers from MAAS_ALLOWED_ORIGINS (template parameter
    AllowedOrigins: one origin, or *); unset or empty: none, browsers refuse cross-origin calls."""
    origins = get_settings().allowed_origins
    if not origins:
        return None
    return CORSConfig(allow_origin=origins[0], extra_origins=origins[1:], allow_headers=CORS_ALLOW_HEADERS,
                      expose_headers=["Retry-After", REQUEST_ID_HEADER, "x-amzn-RequestId"], max_age=600)


class _WholePathResolver(APIGatewayRestResolver):
    """Routes match the whole path. Powertools' `^...$` also matches before a trailing newline, so
    GET /v1/models/tiny%0A described tiny and /v1/models/%0A listed the models."""

    @staticmethod
    def _compile_regex(rule: str, base_regex: str = "") -> Any:
        return ApiGatewayResolver._compile_regex(rule, r"^{}/*\Z")  # trailing slashes allowed, as REST's resolver


def build_resolver() -> APIGatewayRestResolver:
    app = _WholePathResolver(enable_validation=True, cors=cors_config(), json_body_deserializer=parse_json_body)

    @app.exception_handler(MaasError)
    def _maas_error(exc: MaasError) -> Response[dict[str, Any]]:
        if exc.status >= 500:
            # the AWS error behind it (code, operation, resource) is for the log, never for the caller
            logger.error("request failed", extra={"code": exc.code, "error": exc.message,
                                                  "cause": repr(exc.__cause__) if exc.__cause__ else None})
        else:
            logger.info("request rejected", extra={"status": exc.status, "code": exc.code})
        return error_response(exc.status, exc.code, exc.message, exc.details, retry_after=exc.retry_after,
                              details_total=exc.details_total)

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response[dict[str, Any]]:
        status, message, details = validation_details(exc)
        code = {400: "bad_request", 413: "payload_too_large"}.get(status, "invalid_request")
        return error_response(status, code, message, details)

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported(exc: RequestUnsupportedContentType) -> Response[dict[str, Any]]:
        return error_response(415, "unsupported_media_type", "send JSON with Content-Type: application/json")

    @app.not_found
    def _no_route(exc: RouteNotFound) -> Response[dict[str, Any]]:
        ev = app.current_event
        return error_response(404, "route_not_found", f"no route for {ev.http_method} {ev.path}")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[dict[str, Any]]:
        logger.exception("unhandled error")
        return error_response(500, "internal_error", "internal error; it has been logged")

    return app
