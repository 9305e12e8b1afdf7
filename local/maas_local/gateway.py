"""A local API Gateway (REST, Lambda proxy integration) for the routes declared in template.yaml.

Every `Type: Api` event of every function in the template becomes a route. A request is matched
on method and path (`{model}` matches one path segment, `{proxy+}` the rest of the path; literal
segments win over parameters, parameters over greedy ones), turned into the API Gateway REST (v1)
proxy event, and handed to the function's handler, called in-process with a fake Lambda context;
the handler's response goes back over HTTP. No Docker, no `sam local`.

    gw = Gateway("template.yaml", {"ModelBucket": "maas-models", "RegistryTable": "maas-registry"})
    base_url = gw.start()      # http://127.0.0.1:<port>, served from a daemon thread
    ...
    gw.stop()

How it differs from the deployed stack (all on purpose, for a dev loop):
- Handlers run in this process. Each function's module (`app.py` from its CodeUri) is imported
  once by file path under a unique module name (every function has an `app.py`), like one warm
  Lambda container per function; invocations of one function are serialised (a container runs
  one request at a time, and Powertools' resolver keeps the current event on the app object).
- os.environ is shared by all functions: the gateway applies every function's environment from
  the template before importing handlers (and restores it on stop). The functions of this project
  read their settings lazily and all get the same Globals environment, so that is enough; if two
  functions set one variable to different values a warning names it.
- Queue consumers (a `Type: SQS` event or an AWS::Lambda::EventSourceMapping) run in-process too, on a
  poller thread per queue (maas_local.queues), when the queue has a local name (LocalStack creates the
  template's queues). A function that CloudWatch Logs subscriptions feed (CaptureFunction: the capture
  lines of predict and batch) gets the lines this process writes for capture, as awslogs events, on a
  thread of its own (maas_local.log_subscription). `run_queue_consumers=False` turns both off.
- No stage prefix in the URL (like `sam local start-api`); requestContext.stage still carries the
  template's StageName. No throttling, or request validation beyond the body size.
- Auth (`api_keys=...`; maas-demo and maas-gateway turn it on): each route asks what the template's Auth
  asks on AWS, answered as the template's GatewayResponses would: no or an unknown `x-api-key` -> 403
  INVALID_API_KEY; an AWS_IAM route without a SigV4 Authorization header -> 403 MISSING_AUTHENTICATION_TOKEN;
  a token-authorizer route (AuthMode=Jwt) without its token -> 401 UNAUTHORIZED. Signatures and tokens
  are checked for presence only (no IAM or Cognito here). Without `api_keys` every route is open. The event
  names the caller as API Gateway does: requestContext.identity.apiKeyId (a stable id made from the key's value)
  and, with a token, requestContext.authorizer.claims (the JWT's payload, its signature unchecked).
- Static files (`static=StaticSite.playground(key)`, as maas-demo and maas-gateway do): the playground page
  under /playground/, on the API's origin (maas_local.static). API Gateway serves no such thing.
- CORS: with the Api's `Cors` set (template.yaml: parameter AllowedOrigins), OPTIONS on every route's path is
  answered as SAM's MOCK integration answers it on AWS, before any function runs: 200 with the static
  Access-Control-Allow-Origin / -Methods / -Headers / -Max-Age of `Cors`, asking no key or token (the
  template's AddApiKeyRequiredToCorsPreflight / AddDefaultAuthorizerToCorsPreflight: false). As on AWS the
  origin is the configured one whatever the request's Origin: a browser on another origin refuses the answer
  and fetch() rejects. Without `Cors`, OPTIONS is a 405 like any undeclared method (on AWS a 403).
- Errors: no route -> 404, route but not that method -> 405 (API Gateway itself answers 403
  "Missing Authentication Token" for both), a handler that raises or returns a malformed response
  -> 502, a request body over 10 MB (API Gateway) or an event over 6 MB (Lambda) -> 413, a function's
  answer over Lambda's 6 MB -> 502; all in the project's error shape
  {"error": {"code": ..., "message": ..., "details": [...], "request_id": ...}}, with the headers the template's
  GatewayResponses DEFAULT_4XX / DEFAULT_5XX add (CORS's Access-Control-Allow-Origin with AllowedOrigins).

Dev-only code: never shipped to Lambda.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Collection, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3

from maas_local.env import EnvPatch
from maas_local.event_rules import EventRules
from maas_local.lambda_runtime import LoadedFunction, context_for, load_handler
from maas_local.log_subscription import LogSubscription
from maas_local.proxy_integration import (
    BadFunctionResponse,
    build_event,
    decode_response,
    local_api_key_id,
    token_claims,
)
from maas_local.proxy_integration import error_body as proxy_error_body
from maas_local.queues import QueuePoller
from maas_local.routing import Router
from maas_local.static import PLAYGROUND_PREFIX, StaticSite
from maas_local.template import (
    LOCAL_REGION,
    CorsPreflight,
    Route,
    RouteAuth,
    RuleTarget,
    api_routes,
    default_template_path,
    gateway_response_headers,
    load_template,
    local_resource_names,
    log_subscribers,
    queue_consumers,
    rule_targets,
    stage_name,
)

# stdlib logging, not Powertools: the local stack's messages are a developer's console output, in the
# "maas_local" logger tree that configure_cli_logging (below) prints for people, apart from the
# handlers' JSON lines
log = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway REST payload limit
# Lambda's synchronous invocation limits, on the event and on the function's answer as JSON: a bigger event
# is refused before the function runs (413), a bigger answer becomes API Gateway's 502
LAMBDA_REQUEST_BYTES = 6 * 1024 * 1024
LAMBDA_RESPONSE_BYTES = 6 * 1024 * 1024 + 100
LOCAL_API_KEY = "maas-local-key"  # what maas-demo and maas-gateway accept as x-api-key unless told otherwise


# --- HTTP -------------------------------------------------------------------------------------


class _RequestHandler(BaseHTTPRequestHandler):
    server_version = "maas-local-gateway"
    protocol_version = "HTTP/1.1"
    gateway: Gateway  # set on the subclass each Gateway creates

    def do_GET(self) -> None:
        self.gateway.handle(self)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def __getattr__(self, name: str) -> Any:
        # any other method (TRACE, made-up ones) gets the gateway's 405/404 in the error shape, as API
        # Gateway answers with its own error, instead of http.server's HTML 501
        if name.startswith("do_") and name[3:].isalpha():
            return self.do_GET
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Gateway:
    def __init__(
        self,
        template_path: str | Path | None = None,
        resource_names: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        parameters: Mapping[str, Any] | None = None,
        run_queue_consumers: bool = True,
        api_keys: Collection[str] | None = None,
        static: StaticSite | None = None,
    ) -> None:
        """`api_keys` None serves every route to anyone (tests, tools). A collection makes the gateway ask what
        API Gateway asks on each route (template Auth, maas_local.template.RouteAuth): an `x-api-key` among
        these keys where a usage-plan key is required, a SigV4 `Authorization` header on AWS_IAM routes and a
        token on token-authorizer routes. Signatures and tokens are only checked for presence: there is no
        IAM or Cognito here. `static` (e.g. StaticSite.playground(key)) serves its files beside the API."""
        self.template_path = Path(template_path) if template_path else default_template_path()
        self.template = load_template(self.template_path)
        names = dict(resource_names) if resource_names is not None else local_resource_names(self.template)
        self.routes = api_routes(self.template, names, parameters, base_dir=self.template_path.parent)
        self.consumers = queue_consumers(self.template, names, parameters, base_dir=self.template_path.parent) \
            if run_queue_consumers else []
        self.subscribers = log_subscribers(self.template, names, parameters, base_dir=self.template_path.parent) \
            if run_queue_consumers else []
        self.rule_targets = rule_targets(self.template, names, parameters, base_dir=self.template_path.parent) \
            if run_queue_consumers else []
        self.event_rules: EventRules | None = None  # started with the pollers: maas_local.event_rules
        self.pollers: list[QueuePoller | LogSubscription] = []
        if not self.routes:
            raise ValueError(f"{self.template_path}: no function has an Api event; nothing to serve")
        self.router = Router(self.routes)
        self.stage = stage_name(self.template, parameters)
        self.api_keys = frozenset(api_keys) if api_keys is not None else None
        self.own_answer_headers = gateway_response_headers(self.template, names, parameters)
        if static is not None and any(static.owns(r.path) for r in self.routes):
            raise ValueError(f"an API route's path starts with {static.prefix}, where the static files are served")
        self.static = static
        self.host = host
        self.port = port
        self._functions: dict[str, LoadedFunction] = {}
        self._load_lock = threading.Lock()
        self._env = EnvPatch()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> str:
        """Bind, apply the functions' environment, import their handlers, serve from a daemon
        thread. Returns the base URL. Raises OSError (EADDRINUSE) if the port is taken."""
        handler_cls = type("GatewayRequestHandler", (_RequestHandler,), {"gateway": self})
        self._server = _Server((self.host, self.port), handler_cls)
        self.port = self._server.server_address[1]
        try:
            self._apply_environment()
            for route in self.routes:
                self._function(route)  # import now: a broken handler fails at start, not per request
            self._start_pollers()
        except BaseException:
            self._stop_pollers()
            self._server.server_close()
            self._server = None
            self._restore_environment()
            raise
        self._thread = threading.Thread(target=self._server.serve_forever, name="maas-gateway", daemon=True)
        self._thread.start()
        log.info("gateway serving %d routes at %s", len(self.routes), self.base_url)
        return self.base_url

    def stop(self) -> None:
        self._stop_pollers()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        for fn in self._functions.values():
            if sys.modules.get(fn.module.__name__) is fn.module:  # not a newer import of the same function
                del sys.modules[fn.module.__name__]
        self._functions.clear()
        self._restore_environment()

    def __enter__(self) -> Gateway:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Block until stop() or KeyboardInterrupt (which propagates after a clean stop)."""
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(timeout=0.5)
        finally:
            self.stop()

    def _start_pollers(self) -> None:
        for consumer in self.consumers:
            fn = self._function(consumer.route)

            def invoke(event: dict[str, Any], fn: LoadedFunction = fn) -> Any:
                return fn.invoke(event, context_for(fn.route, str(uuid.uuid4())))

            poller = QueuePoller(consumer.queue_url, invoke, function_name=consumer.route.function_name,
                                 batch_size=consumer.batch_size,
                                 report_batch_item_failures=consumer.report_batch_item_failures)
            self.pollers.append(poller.start())
            log.info("%s consumes %s in-process", consumer.route.function, consumer.queue_url)
        for subscriber in self.subscribers[:1]:  # capture lines have one destination (the writer hook is global)
            fn = self._function(subscriber.route)

            def on_lines(event: dict[str, Any], fn: LoadedFunction = fn) -> Any:
                return fn.invoke(event, context_for(fn.route, str(uuid.uuid4())))

            self.pollers.append(LogSubscription(on_lines, dead_letter_queue_url=subscriber.dead_letter_queue_url,
                                                function_name=subscriber.route.function_name).start())
            log.info("%s gets the capture lines of %s in-process", subscriber.route.function,
                     ", ".join(subscriber.log_groups))

        if self.rule_targets:
            def on_event(target: RuleTarget, event: dict[str, Any]) -> Any:
                fn = self._function(target.route)
                return fn.invoke(event, context_for(fn.route, str(uuid.uuid4())))

            self.event_rules = EventRules(boto3.client("events"), boto3.client("sqs"), self.rule_targets, on_event,
                                          scheduler=boto3.client("scheduler")).start()

    def _stop_pollers(self) -> None:
        for poller in self.pollers:
            poller.stop()
        self.pollers.clear()

    def _apply_environment(self) -> None:
        env: dict[str, str] = {}
        owner: dict[str, str] = {}
        for route in [*self.routes, *(c.route for c in self.consumers), *(s.route for s in self.subscribers),
                      *(t.route for t in self.rule_targets)]:
            for key, value in route.environment.items():
                if key in env and env[key] != value:
                    log.warning("%s sets %s=%r but %s sets %r; the local gateway shares one os.environ, "
                                "keeping %r", route.function, key, value, owner[key], env[key], env[key])
                    continue
                env[key], owner[key] = value, route.function
        self._env.apply(env)

    def _restore_environment(self) -> None:
        self._env.restore()

    def _function(self, route: Route) -> LoadedFunction:
        with self._load_lock:
            fn = self._functions.get(route.function)
            if fn is None:
                fn = self._functions[route.function] = load_handler(route)
            return fn

    # --- one request --------------------------------------------------------------------------

    def handle(self, req: _RequestHandler) -> None:
        started = time.perf_counter()
        method = req.command.upper()
        split = urlsplit(req.path)
        status, headers, body = self._dispatch(req, method, split.path or "/", split.query)
        try:
            req.send_response(status)
            for name, value in headers:
                req.send_header(name, value)
            req.send_header("Content-Length", str(len(body)))
            req.end_headers()
            if method != "HEAD" and body:
                req.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            log.info("client went away before the response to %s %s", method, req.path)
        log.info("%s %s -> %d (%.1f ms)", method, req.path, status, (time.perf_counter() - started) * 1000)

    def _dispatch(self, req: _RequestHandler, method: str, raw_path: str,
                  query: str) -> tuple[int, list[tuple[str, str]], bytes]:
        request_id = str(uuid.uuid4())
        status, headers, body, own = self._answer(req, method, raw_path, query, request_id)
        if own and status >= 400:  # the template's GatewayResponses headers (e.g. CORS) on the gateway's answers
            headers = headers + self.own_answer_headers["4XX" if status < 500 else "5XX"]
        # API Gateway names every answer, its own and the functions', with its request id
        return status, headers + [("x-amzn-RequestId", request_id)], body

    def _answer(self, req: _RequestHandler, method: str, raw_path: str, query: str,
                request_id: str) -> tuple[int, list[tuple[str, str]], bytes, bool]:
        """(status, headers, body, whether the gateway answered itself rather than a function)."""
        json_ct = [("Content-Type", "application/json")]

        error_body = functools.partial(proxy_error_body, request_id=request_id)

        if self.static is not None and self.static.owns(raw_path):  # no API route starts with its prefix
            self._discard_body(req)
            return *self.static.answer(method, raw_path, request_id), True
        preflight = self.router.preflight(raw_path) if method == "OPTIONS" else None
        if preflight is not None:
            return *self._preflight(req, preflight, request_id), True
        route, params, allowed = self.router.match(method, raw_path)  # %2F stays inside one segment
        path = unquote(raw_path)
        if route is None:
            self._discard_body(req)
            if allowed:
                return 405, json_ct + [("Allow", ", ".join(allowed))], error_body(
                    "method_not_allowed", f"{method} is not allowed on {path}; use {', '.join(allowed)}",
                    [{"field": "method", "allowed": allowed}]), True
            return 404, json_ct, error_body("route_not_found", f"no route for {method} {path}"), True
        try:
            body = self._read_body(req)
        except _BodyTooLarge as exc:
            self._drain(req, exc.size)
            return 413, json_ct + [("Connection", "close")], error_body(
                "payload_too_large", f"request body is larger than the {MAX_BODY_BYTES} byte limit",
                [{"field": "body", "limit": MAX_BODY_BYTES, "received": exc.size}]), True
        except ValueError as exc:
            req.close_connection = True
            return 400, json_ct, error_body("bad_request", f"could not read the request body: {exc}"), True
        denied = self._denied(route.route.auth, req.headers, request_id)
        if denied is not None:
            return *denied, True
        event = build_event(
            method=method, path=path, query=query, headers=list(req.headers.items()), body=body,
            route=route.route, path_params=params, stage=self.stage, source_ip=req.client_address[0],
            request_id=request_id, **self._caller(route.route.auth, req.headers),
        )
        event_bytes = len(json.dumps(event))
        if event_bytes > LAMBDA_REQUEST_BYTES:
            return 413, json_ct, error_body(
                "payload_too_large", f"the request is {event_bytes} bytes as a Lambda event, over Lambda's "
                f"{LAMBDA_REQUEST_BYTES} byte limit: send fewer or smaller records",
                [{"field": "body", "limit": LAMBDA_REQUEST_BYTES, "received": event_bytes}]), True
        try:
            fn = self._function(route.route)
            result = fn.invoke(event, context_for(route.route, request_id))
            answer_bytes = len(json.dumps(result, default=str))
            if answer_bytes > LAMBDA_RESPONSE_BYTES:  # as deployed: Lambda refuses it, API Gateway answers 502
                log.error("%s answered %d bytes, over Lambda's %d byte limit (request %s)", route.route.function,
                          answer_bytes, LAMBDA_RESPONSE_BYTES, request_id)
                return 502, json_ct, error_body(
                    "internal_error", "Internal server error: the function's answer is over Lambda's "
                    f"{LAMBDA_RESPONSE_BYTES} byte limit; see the gateway log"), True
            return *decode_response(result), False
        except Exception as exc:
            log.exception("%s failed on %s %s (request %s)", route.route.function, method, path, request_id)
            kind = "returned a malformed response" if isinstance(exc, BadFunctionResponse) else "raised an error"
            return 502, json_ct, error_body(
                "internal_error", f"Internal server error: the function {kind}; see the gateway log"), True

    def _preflight(self, req: _RequestHandler, preflight: CorsPreflight,
                   request_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
        """API Gateway's CORS mock integration: the static headers, and the `{}` of its response template."""
        self._discard_body(req)
        denied = self._denied(preflight.auth, req.headers, request_id)
        if denied is not None:
            return denied
        return 200, [("Content-Type", "application/json"), *preflight.headers], b"{}"

    def _denied(self, auth: RouteAuth, headers: Mapping[str, str],
                request_id: str) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """API Gateway's own answer (status, code, message as the template's GatewayResponses shape them)
        when the caller lacks what the route's Auth asks for; None to go on."""
        if self.api_keys is None or auth.open:
            return None
        json_ct = [("Content-Type", "application/json")]

        error_body = functools.partial(proxy_error_body, request_id=request_id)

        if auth.authorizer == "AWS_IAM":
            if not (headers.get("Authorization") or "").startswith("AWS4-HMAC-SHA256 "):
                return 403, json_ct, error_body("MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token")
        elif auth.authorizer is not None and not headers.get(auth.token_header):
            return 401, json_ct, error_body("UNAUTHORIZED", "Unauthorized")
        if auth.api_key and headers.get("x-api-key") not in self.api_keys:
            return 403, json_ct, error_body("INVALID_API_KEY", "Forbidden")
        return None

    def _caller(self, auth: RouteAuth, headers: Mapping[str, str]) -> dict[str, Any]:
        """Who API Gateway says is calling (build_event's api_key_id and claims), once _denied let the call in."""
        if self.api_keys is None or auth.open:
            return {}
        caller: dict[str, Any] = {}
        if auth.api_key and headers.get("x-api-key"):
            caller["api_key_id"] = local_api_key_id(str(headers.get("x-api-key")))
        if auth.authorizer not in (None, "AWS_IAM") and headers.get(auth.token_header):
            caller["claims"] = token_claims(str(headers.get(auth.token_header)))
        return caller

    @staticmethod
    def _read_body(req: _RequestHandler) -> bytes | None:
        if "chunked" in (req.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                size_line = req.rfile.readline(1024)
                try:
                    size = int(size_line.split(b";")[0].strip(), 16)
                except ValueError as exc:
                    raise ValueError("bad chunked encoding") from exc
                if size == 0:
                    while req.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    raise _BodyTooLarge(total)
                chunks.append(req.rfile.read(size))
                req.rfile.readline(1024)
            return b"".join(chunks)
        length_header = req.headers.get("Content-Length")
        if not length_header:
            return None
        try:
            length = int(length_header)
        except ValueError as exc:
            raise ValueError(f"Content-Length {length_header!r} is not a number") from exc
        if length > MAX_BODY_BYTES:
            raise _BodyTooLarge(length)
        return req.rfile.read(length) if length > 0 else None

    @staticmethod
    def _drain(req: _RequestHandler, size: int) -> None:
        """Swallow an oversized body (so the client can read our 413 instead of a reset), then close."""
        req.close_connection = True
        if "chunked" in (req.headers.get("Transfer-Encoding") or "").lower() or size > DRAIN_LIMIT:
            return
        remaining = size
        while remaining > 0:
            chunk = req.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)

    def _discard_body(self, req: _RequestHandler) -> None:
        """Read and drop a request body we will not use, so a keep-alive connection stays in sync."""
        try:
            self._read_body(req)
        except (ValueError, _BodyTooLarge):
            req.close_connection = True


DRAIN_LIMIT = 4 * MAX_BODY_BYTES


class _BodyTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


# --- CLI --------------------------------------------------------------------------------------


def configure_cli_logging(level: str | int = "INFO") -> None:
    """Log maas_local's messages to stderr through a handler of its own.

    Not through the root logger: a Powertools Logger (service "maas", as the handlers create)
    puts a filter on the root handlers that drops every record whose logger name contains "maas",
    which would silence the gateway's access log as soon as a handler module is imported.
    """
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    own = logging.getLogger("maas_local")
    if not any(getattr(h, "_maas_local_cli", False) for h in own.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._maas_local_cli = True  # type: ignore[attr-defined]
        own.addHandler(handler)
    own.setLevel(level.upper() if isinstance(level, str) else level)
    own.propagate = False


def key_values(items: list[str], what: str) -> dict[str, str]:
    """`--parameter NAME=VALUE`-style arguments as a dict; a malformed one stops the CLI, naming it."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{what} {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def auth_note(auth: RouteAuth, api_keys: Collection[str] | None) -> str:
    """', x-api-key' etc.: what a caller must send on a route, for the route listing."""
    if api_keys is None or auth.open:
        return ""
    needs = (["x-api-key"] if auth.api_key else []) + (
        ["SigV4 Authorization"] if auth.authorizer == "AWS_IAM" else [auth.token_header] if auth.authorizer else [])
    return "  [" + " + ".join(needs) + "]"


def cors_note(routes: Collection[Route]) -> str:
    """One line saying which origin's pages may call the API (the template's Cors), for the CLIs."""
    origins = sorted({dict(r.preflight.headers)["Access-Control-Allow-Origin"] for r in routes if r.preflight})
    if not origins:
        return "CORS: off, browsers on other origins cannot call this API (--parameter AllowedOrigins=ORIGIN)"
    return f"CORS: OPTIONS preflights answered, pages on {', '.join(origins)} may call this API"


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def stop_signals_as_keyboard_interrupt() -> Iterator[None]:
    """While inside, Ctrl-C / `kill -INT` and `kill <pid>` (SIGTERM) stop the CLI cleanly. SIGINT is set
    explicitly: a process started in the background of a non-interactive shell (a script's `cmd &`, some CI
    runners) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise_keyboard_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    from maas_core.aws_target import FAKE_CREDENTIALS
    from maas_local.stack import LocalStack, PortInUseError, check_port_free

    parser = argparse.ArgumentParser(
        prog="maas-gateway",
        description="Serve template.yaml's API routes on a local port, calling the handlers in-process.",
    )
    parser.add_argument("--template", default=None, help="SAM template (default: ./template.yaml or the repo's)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--endpoint-url", default=None,
                        help="an existing moto server (e.g. http://127.0.0.1:4566, as started by maas-demo); "
                             "default: $AWS_ENDPOINT_URL, else a fresh in-process moto server")
    parser.add_argument("--resource", action="append", default=[], metavar="LOGICAL_ID=NAME",
                        help="physical name for a template resource (default ModelBucket=maas-models, "
                             "RegistryTable=maas-registry)")
    parser.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE",
                        help="template parameter override")
    parser.add_argument("--api-key", action="append", default=None, metavar="KEY",
                        help=f"an x-api-key the routes that need one accept (repeatable; default {LOCAL_API_KEY})")
    parser.add_argument("--no-auth", action="store_true",
                        help="serve every route to anyone (no API key, IAM signature or token asked)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.no_auth and args.api_key:
        parser.error("--no-auth and --api-key exclude each other")
    api_keys = None if args.no_auth else (args.api_key or [LOCAL_API_KEY])
    configure_cli_logging(args.log_level)

    template_path = Path(args.template) if args.template else default_template_path()
    names = local_resource_names(load_template(template_path))
    names.update(key_values(args.resource, "--resource"))
    busy = f"maas-gateway: port {args.port} on {args.host} is already in use; pick another with --port"
    try:
        check_port_free(args.host, args.port)  # before starting anything else
    except PortInUseError:
        print(busy, file=sys.stderr)
        return 1
    stack: LocalStack | None = None
    endpoint = args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    try:
        if endpoint:
            os.environ["AWS_ENDPOINT_URL"] = endpoint
            os.environ.setdefault("AWS_DEFAULT_REGION", LOCAL_REGION)
            for key, value in FAKE_CREDENTIALS.items():
                if key != "AWS_SESSION_TOKEN":
                    os.environ.setdefault(key, value)
        else:
            stack = LocalStack(template_path, names=names).start()
            endpoint = stack.endpoint_url
            print(f"started an empty moto server at {endpoint} (use --endpoint-url to reuse one)", flush=True)
        gateway = Gateway(template_path, names, host=args.host, port=args.port,
                          parameters=key_values(args.parameter, "--parameter"), api_keys=api_keys,
                          static=StaticSite.playground(api_keys[0] if api_keys else None))
        try:
            url = gateway.start()
        except OSError as exc:
            if isinstance(exc, PortInUseError) or exc.errno == errno.EADDRINUSE:
                print(busy, file=sys.stderr)
                return 1
            raise
        print(f"maas gateway on {url} -> AWS at {endpoint}", flush=True)
        for r in gateway.routes:
            print(f"  {r.method:6} {r.path}  ->  {r.function} ({r.handler}){auth_note(r.auth, api_keys)}")
        for c in gateway.consumers:
            print(f"  SQS    {c.queue_url}  ->  {c.route.function} ({c.route.handler}), in-process")
        for s in gateway.subscribers[:1]:
            print(f"  LOGS   capture lines of {', '.join(s.log_groups)}  ->  {s.route.function} ({s.route.handler}), "
                  "in-process")
        if api_keys is not None:
            print(f"routes marked [x-api-key] accept x-api-key: {', '.join(api_keys)} (--no-auth opens them)")
        print(cors_note(gateway.routes), flush=True)
        print(f"playground (and API reference) on {url}{PLAYGROUND_PREFIX}", flush=True)
        print("Ctrl-C to stop", flush=True)
        try:
            with stop_signals_as_keyboard_interrupt():
                gateway.serve_forever()
        except KeyboardInterrupt:
            pass
        print("stopped", flush=True)
        return 0
    finally:
        if stack is not None:
            stack.stop()


if __name__ == "__main__":
    raise SystemExit(main())
