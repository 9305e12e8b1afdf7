"""Generate the complete OpenAPI document (shared/maas_core/edge/openapi.json) from every HTTP function.

    python -m maas_local.openapi_doc            # print it
    python -m maas_local.openapi_doc --write    # update shared/maas_core/edge/openapi.json (commit it)
    python -m maas_local.openapi_doc --check    # exit 1 when the stored copy is stale

Each function of template.yaml with Api events is imported (its app.py, by file path), its Powertools
resolver's `get_openapi_schema()` is taken, and the paths and component schemas are merged; two
functions declaring the same path and method, or the same schema name differently, is an error.
Security per operation comes from the template's events: `Authorizer: AWS_IAM` -> SigV4, events that
switch the default auth off (health, this document) -> none, the rest -> the AuthMode default that
maas_core.edge.openapi adds when serving, with its refusal. Powertools' default 422 body (HTTPValidationError)
is replaced by the project's error body, which is what the resolver really answers (maas_core.edge.http); /v2's
is dropped (the Open Inference Protocol answers it as a 400: maas_core.edge.inference_protocol). The
gateway's own answers (template.yaml GatewayResponses: the same error body) are added to every operation,
and LINKS: where a caller (or a stateful tester) finds the names the next operation needs.

Dev-only code: never shipped to Lambda.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from maas_core import __version__
from maas_core.edge.inference_protocol import V2_PATH
from maas_core.edge.openapi import DOCUMENT_FILE, error_response
from maas_local.lambda_runtime import load_handler
from maas_local.template import RouteAuth, api_routes, default_template_path, load_template, local_resource_names

TITLE = "maas"
DESCRIPTION = ("Model-as-a-Service: predictions, preprocessing, feedback and metrics for versioned ONNX models. "
               "Every error is {\"error\": {\"code\", \"message\", \"details\"}}.")
_ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
# what API Gateway (and Lambda behind it) answers itself on any operation, before or instead of the function
GATEWAY_RESPONSES = {
    413: "the request is over API Gateway's 10 MB or, as a Lambda event, over Lambda's 6 MB",
    429: "throttled: over the stage's or the API key's request rate, or the key's quota",
    502: "the function failed, or its answer is over Lambda's 6 MB",
    504: "the function did not answer within API Gateway's 29 s",
}
# (operation, status) -> link name -> (target operation, parameters, request body): OpenAPI links
_MODEL = {"model": "$response.body#/models/0/name"}
_SAME_MODEL = {"model": "$request.path.model"}
LINKS: dict[tuple[str, str, str], dict[str, tuple[tuple[str, str], dict[str, str], Any]]] = {
    ("get", "/v1/models", "200"): {
        "describe": (("get", "/v1/models/{model}"), _MODEL, None),
        "metrics": (("get", "/v1/models/{model}/metrics"), _MODEL, None),
        "predict": (("post", "/v1/models/{model}/predict"), _MODEL, None),
        "preprocess": (("post", "/v1/models/{model}/preprocess"), _MODEL, None),
        "feedback": (("post", "/v1/models/{model}/feedback"), _MODEL, None),
        "move_alias": (("put", "/v1/models/{model}/aliases/{alias}"), _MODEL, None),
        "delete_latest_version": (("delete", "/v1/models/{model}/versions/{version}"),
                                  {**_MODEL, "version": "$response.body#/models/0/latest_version"}, None),
    },
    ("get", "/v1/models/{model}", "200"): {
        "predict_newest_version": (("post", "/v1/models/{model}/predict"),
                                   {**_SAME_MODEL, "version": "$response.body#/versions/0/version"}, None),
        "delete_newest_version": (("delete", "/v1/models/{model}/versions/{version}"),
                                  {**_SAME_MODEL, "version": "$response.body#/versions/0/version"}, None),
    },
    ("post", "/v1/models/{model}/predict", "200"): {
        "feedback": (("post", "/v1/models/{model}/feedback"), _SAME_MODEL,
                     {"feedback": [{"prediction_id": "$response.body#/predictions/0/id",
                                    "label": "$response.body#/predictions/0/label"}]}),
    },
}
SIGV4_REFUSAL = (403, "refused by the gateway: no SigV4 signature (MISSING_AUTHENTICATION_TOKEN) or one IAM refuses")


def _route_security(auth: RouteAuth) -> list[dict[str, list[str]]] | None:
    """The operation's own security from the template's Auth: SigV4 for IAM routes, none for open ones,
    None for the AuthMode default (API key or JWT, set document-wide by maas_core.edge.openapi)."""
    if auth.authorizer == "AWS_IAM":
        return [{"sigv4": []}]
    return [] if auth.open else None


def _use_error_body(path: str, op: dict[str, Any]) -> None:
    if V2_PATH.match(path):  # the Open Inference Protocol's: an invalid request is a 400 in its body
        op.get("responses", {}).pop("422", None)
        return
    response = op.get("responses", {}).get("422")
    if response and "HTTPValidationError" in json.dumps(response):
        op["responses"]["422"] = {"description": "invalid request or records",
                                  "content": {"application/json": {"schema": _ERROR_REF}}}


def _add_gateway_responses(op: dict[str, Any]) -> None:
    """The gateway's statuses, after the function's own: a status both can answer names both reasons."""
    gateway = dict(GATEWAY_RESPONSES)
    if op.get("security") == [{"sigv4": []}]:
        gateway[SIGV4_REFUSAL[0]] = SIGV4_REFUSAL[1]
    responses = op.setdefault("responses", {})
    for status, reason in gateway.items():
        own = responses.get(str(status))
        responses[str(status)] = error_response(f"{own['description']}; or {reason}" if own else reason)
    op["responses"] = dict(sorted(responses.items()))


def _add_links(doc: dict[str, Any]) -> None:
    for (method, path, status), links in LINKS.items():
        response = doc["paths"][path][method]["responses"][status]
        response["links"] = {}
        for name, ((to_method, to_path), parameters, body) in links.items():
            link: dict[str, Any] = {"operationId": doc["paths"][to_path][to_method]["operationId"],
                                    "parameters": parameters}
            if body is not None:
                link["requestBody"] = body
            response["links"][name] = link


def _drop_unused_schemas(doc: dict[str, Any]) -> None:
    schemas = doc.get("components", {}).get("schemas", {})
    while True:
        text = json.dumps({k: v for k, v in doc.items() if k != "components"}) + json.dumps(schemas)
        unused = [n for n in schemas if f'"#/components/schemas/{n}"' not in text]
        if not unused:
            return
        for name in unused:
            del schemas[name]


def build_document(template_path: str | Path | None = None) -> dict[str, Any]:
    path = Path(template_path) if template_path else default_template_path()
    template = load_template(path)
    routes = api_routes(template, local_resource_names(template), base_dir=path.parent)
    doc: dict[str, Any] = {"openapi": "", "info": {"title": TITLE, "version": __version__, "description": DESCRIPTION},
                           "paths": {}, "components": {"schemas": {}}}
    security = {(r.method.lower(), r.path): _route_security(r.auth) for r in routes}
    seen: set[str] = set()
    for route in routes:
        if route.function in seen:
            continue
        seen.add(route.function)
        app = load_handler(route).module.app  # the function's Powertools resolver
        part = json.loads(app.get_openapi_json_schema(title=TITLE, version=__version__))
        doc["openapi"] = part["openapi"]
        for p, methods in part.get("paths", {}).items():
            target = doc["paths"].setdefault(p, {})
            for method, op in methods.items():
                if method in target:
                    raise ValueError(f"{method.upper()} {p} is declared by two functions")
                target[method] = op
        for name, schema in part.get("components", {}).get("schemas", {}).items():
            known = doc["components"]["schemas"].setdefault(name, schema)
            if known != schema:
                raise ValueError(f"schema {name!r} differs between functions")
    for p, methods in doc["paths"].items():
        for method, op in methods.items():
            _use_error_body(p, op)
            own = security.get((method, p))
            if own is not None:
                op["security"] = own
            _add_gateway_responses(op)
    doc["paths"] = dict(sorted(doc["paths"].items()))
    _add_links(doc)
    _drop_unused_schemas(doc)
    doc["components"]["schemas"] = dict(sorted(doc["components"]["schemas"].items()))
    return doc


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maas_local.openapi_doc", description=__doc__.split("\n")[0])
    parser.add_argument("--template", default=None)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help=f"update {DOCUMENT_FILE}")
    group.add_argument("--check", action="store_true", help="exit 1 when the stored document is stale")
    args = parser.parse_args(argv)
    text = render(build_document(args.template))
    if args.write:
        DOCUMENT_FILE.write_text(text, encoding="utf-8")
        print(f"wrote {DOCUMENT_FILE}")
    elif args.check:
        if DOCUMENT_FILE.read_text(encoding="utf-8") != text:
            print(f"{DOCUMENT_FILE} is stale: run python -m maas_local.openapi_doc --write", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
