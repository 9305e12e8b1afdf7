"""Read template.yaml the way the local gateway needs it: which HTTP routes go to which handler,
with which environment, asking which auth, answering which CORS preflight.

CloudFormation short tags (`!Ref X`, `!GetAtt A.B`, `!Sub ...`) are not YAML that `yaml.safe_load`
accepts, so `CfnLoader` turns each into its long form (`{"Ref": "X"}`, `{"Fn::GetAtt": ["A", "B"]}`).
Environment values are resolved against parameter defaults (or overrides), pseudo parameters and a
mapping of logical resource ids to local physical names; anything else is refused with an error
that names the variable, rather than silently handing a handler a dict where it expects a string.

Dev-only code: never shipped to Lambda.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from maas_core.aws_target import LOCAL_REGION

__all__ = [
    "CfnLoader",
    "CorsPreflight",
    "QueueConsumer",
    "RuleTarget",
    "Route",
    "TemplateError",
    "api_routes",
    "default_template_path",
    "load_template",
    "local_queue_url",
    "local_resource_names",
    "queue_consumers",
    "resolve_value",
    "rule_targets",
]

LOCAL_ACCOUNT_ID = "123456789012"  # moto's default account
LOCAL_STACK_NAME = "maas-local"

# Physical names of the resources the serving code reads; they match maas_core.settings' defaults,
# so a shell without MAAS_* variables (e.g. the training CLI) talks to the same local bucket and table.
KNOWN_LOCAL_NAMES = {"ModelBucket": "maas-models", "RegistryTable": "maas-registry"}

PSEUDO_PARAMETERS = {
    "AWS::Region": LOCAL_REGION,
    "AWS::AccountId": LOCAL_ACCOUNT_ID,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": LOCAL_STACK_NAME,
    "AWS::StackId": f"arn:aws:cloudformation:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:stack/{LOCAL_STACK_NAME}/local",
}


class TemplateError(ValueError):
    """The template cannot be used locally as written (unknown tag shape, unresolvable intrinsic, ...)."""


_NO_VALUE = object()  # `!Ref AWS::NoValue`: the key or list item holding it disappears


# --- YAML loading -----------------------------------------------------------------------------


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation's short-form intrinsic function tags."""


def _construct(node: yaml.Node, loader: yaml.SafeLoader) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]


def _long_form(fn: str):
    def constructor(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        return {fn: _construct(node, loader)}

    return constructor


def _ref(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    return {"Ref": _construct(node, loader)}


def _condition(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    return {"Condition": _construct(node, loader)}


def _get_att(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    value = _construct(node, loader)
    if isinstance(value, str):
        resource, sep, attribute = value.partition(".")
        if not sep or not resource or not attribute:
            raise TemplateError(f"!GetAtt {value!r}: expected 'Resource.Attribute' (line {node.start_mark.line + 1})")
        return {"Fn::GetAtt": [resource, attribute]}
    if isinstance(value, list) and len(value) == 2:
        return {"Fn::GetAtt": value}
    raise TemplateError(f"!GetAtt {value!r}: expected 'Resource.Attribute' or [Resource, Attribute]")


CfnLoader.add_constructor("!Ref", _ref)
CfnLoader.add_constructor("!Condition", _condition)
CfnLoader.add_constructor("!GetAtt", _get_att)
for _tag in ("Sub", "Join", "If", "Select", "Split", "FindInMap", "Equals", "Not", "And", "Or", "GetAZs",
             "ImportValue", "Base64", "Cidr", "Length", "ToJsonString", "Transform"):
    CfnLoader.add_constructor(f"!{_tag}", _long_form(f"Fn::{_tag}"))


def load_template(path: str | Path) -> dict[str, Any]:
    """template.yaml -> dict, short intrinsic tags in their long (JSON) form."""
    path = Path(path)
    with path.open(encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=CfnLoader)
    if not isinstance(data, dict) or "Resources" not in data:
        raise TemplateError(f"{path}: not a CloudFormation/SAM template (no Resources section)")
    return data


def default_template_path() -> Path:
    """./template.yaml if there is one, else the repository's (this package lives in <repo>/local/)."""
    here = Path.cwd() / "template.yaml"
    if here.is_file():
        return here
    return Path(__file__).resolve().parents[2] / "template.yaml"


# --- resource names ---------------------------------------------------------------------------


def _kebab(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()


# resource types whose Ref is a name a local stack can create under that name
NAMED_RESOURCE_TYPES = {"AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable"}
# SQS queues: their Ref is the queue URL (see local_queue_url)
QUEUE_RESOURCE_TYPE = "AWS::SQS::Queue"
# resources named by an ARN the local stack knows: an EventBridge rule and an IAM role (created by the
# local stack: their Ref is a name), an SNS topic (its Ref is its ARN), and functions, which are not
# created (the local gateway runs them in-process) but which those resources and the environment name
ARN_FORMATS = {
    "AWS::Events::Rule": f"arn:aws:events:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:rule/{{}}",
    "AWS::IAM::Role": f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/{{}}",
    "AWS::SNS::Topic": f"arn:aws:sns:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:{{}}",
    "AWS::Serverless::Function": f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{{}}",
}
_REF_IS_ARN = {"AWS::SNS::Topic"}
FUNCTION_TYPES = {"AWS::Serverless::Function", "AWS::Lambda::Function"}


def local_queue_url(name: str) -> str:
    """The URL a local queue is known by. It has AWS's shape: boto3 sends SQS calls to its own endpoint
    (the moto server) and moto finds the queue by the name at the end, so the URL works against any
    local stack, whatever its port."""
    return f"https://sqs.{LOCAL_REGION}.amazonaws.com/{LOCAL_ACCOUNT_ID}/{name}"


def local_resource_names(template: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Logical id -> local physical name, for the resources a local stack creates.

    ModelBucket/RegistryTable get maas_core's default names (maas-models, maas-registry); any other
    S3 bucket or DynamoDB table in `template` gets `maas-local-<kebab-case logical id>`. An SQS queue
    maps to its URL (its Ref), with `<id>.Arn` and `<id>.QueueName` for !GetAtt; a rule, role, topic or
    function (ARN_FORMATS) to the same name (a topic: its ARN, and its name as `<id>.Name`), with `<id>.Arn`.
    """
    names = dict(KNOWN_LOCAL_NAMES)
    if template is not None:
        for logical_id, res in (template.get("Resources") or {}).items():
            if not isinstance(res, dict) or logical_id in names:
                continue
            if res.get("Type") in NAMED_RESOURCE_TYPES:
                names[logical_id] = f"{LOCAL_STACK_NAME}-{_kebab(logical_id)}"
            elif res.get("Type") == QUEUE_RESOURCE_TYPE:
                queue = f"{LOCAL_STACK_NAME}-{_kebab(logical_id)}"
                names[logical_id] = local_queue_url(queue)
                names[f"{logical_id}.QueueName"] = queue
                names[f"{logical_id}.Arn"] = f"arn:aws:sqs:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:{queue}"
            elif res.get("Type") in ARN_FORMATS:
                name = f"{LOCAL_STACK_NAME}-{_kebab(logical_id)}"
                arn = ARN_FORMATS[res["Type"]].format(name)
                names[logical_id] = arn if res["Type"] in _REF_IS_ARN else name
                names[f"{logical_id}.Arn"] = arn
                if res["Type"] in _REF_IS_ARN:
                    names[f"{logical_id}.Name"] = name
    return names


# --- intrinsic resolution ---------------------------------------------------------------------

_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


def resolve_value(
    value: Any,
    template: Mapping[str, Any],
    resource_names: Mapping[str, str],
    parameters: Mapping[str, Any] | None = None,
    where: str = "value",
) -> Any:
    """Resolve Ref / Fn::Sub / Fn::Join / Fn::Select / Fn::Split / Fn::GetAtt (from the mapping as 'Res.Attr'),
    and Fn::If with the template's Conditions (Fn::Equals / Not / And / Or, Condition); `!Ref AWS::NoValue`
    drops the key or item holding it.

    Parameters resolve to `parameters[name]` or the template Default; resources to
    `resource_names[logical_id]`. Anything else raises TemplateError naming `where`.
    """
    return _Resolver(template, resource_names, parameters or {}, where).resolve(value)


@dataclass
class _Resolver:
    """One resolve_value call: the names an intrinsic may use, and the conditions evaluated so far."""

    template: Mapping[str, Any]
    resource_names: Mapping[str, str]
    parameters: Mapping[str, Any]
    where: str
    conditions: dict[str, bool] = field(default_factory=dict)

    def resolve(self, v: Any) -> Any:
        """An intrinsic (a one-key mapping `_INTRINSICS` names) is evaluated; lists and mappings are walked."""
        if isinstance(v, dict) and len(v) == 1:
            (key, arg), = v.items()
            intrinsic = _INTRINSICS.get(key)
            if intrinsic is not None:
                return intrinsic(self, arg)
            if key.startswith("Fn::"):
                raise TemplateError(f"{self.where}: {key} cannot be resolved by the local gateway")
        if isinstance(v, list):
            return [x for x in (self.resolve(i) for i in v) if x is not _NO_VALUE]
        if isinstance(v, dict):
            return {k: x for k, x in ((k, self.resolve(i)) for k, i in v.items()) if x is not _NO_VALUE}
        return v

    def condition(self, name: str) -> bool:
        """`Condition: Name` (and Fn::If's first argument): the template's condition, evaluated once."""
        if name not in self.conditions:
            declared = (self.template.get("Conditions") or {}).get(name)
            if declared is None:
                raise TemplateError(f"{self.where}: condition {name!r} is not in the template's Conditions")
            self.conditions[name] = bool(self.resolve(declared))
        return self.conditions[name]

    def ref(self, name: str) -> Any:
        """A parameter (given, else its Default), AWS::NoValue, a pseudo parameter, or a resource's local name."""
        if name in self.parameters:
            return _scalar(self.parameters[name])
        declared = (self.template.get("Parameters") or {}).get(name)
        if declared is not None:
            if "Default" not in declared:
                raise TemplateError(f"{self.where}: parameter {name!r} has no Default; pass a value for it")
            return _scalar(declared["Default"])
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if name in self.resource_names:
            return self.resource_names[name]
        if name in (self.template.get("Resources") or {}):
            raise TemplateError(
                f"{self.where}: !Ref {name} names a resource with no local physical name; "
                f"add {name!r} to the resource names mapping"
            )
        raise TemplateError(f"{self.where}: !Ref {name} is neither a parameter nor a resource of the template")

    def get_att(self, arg: Any) -> str:
        """`Resource.Attribute`, looked up in the resource names mapping as that dotted key."""
        dotted = ".".join(arg) if isinstance(arg, list) else str(arg)
        if dotted in self.resource_names:
            return self.resource_names[dotted]
        raise TemplateError(f"{self.where}: !GetAtt {dotted} cannot be resolved locally; "
                            f"add {dotted!r} to the resource names mapping")

    def sub(self, arg: Any) -> str:
        """`${Name}` from the given variables, else `${Res.Attr}` as !GetAtt, else as !Ref; `${!x}` is `${x}`."""
        text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        variables = {k: self.resolve(x) for k, x in extra.items()}

        def substitute(m: re.Match[str]) -> str:
            name = m.group(1)
            if name in variables:
                return _scalar(variables[name])
            if "." in name:
                return _scalar(self.get_att(name.split(".", 1)))
            resolved: str = self.ref(name)
            return resolved

        return _SUB_VAR.sub(substitute, text).replace("${!", "${")

    def join(self, arg: Any) -> str:
        sep, items = arg
        joined: str = sep.join(_scalar(self.resolve(i)) for i in self.resolve(items))
        return joined

    def select(self, arg: Any) -> Any:
        index, items = arg
        return self.resolve(items)[int(self.resolve(index))]

    def split(self, arg: Any) -> list[str]:
        sep, text = arg
        resolved: str = self.resolve(text)
        return resolved.split(sep)

    def if_(self, arg: Any) -> Any:
        name, if_true, if_false = arg
        return self.resolve(if_true if self.condition(name) else if_false)

    def equals(self, arg: Any) -> bool:
        left, right = (self.resolve(x) for x in arg)
        return _scalar(left) == _scalar(right)

    def not_(self, arg: Any) -> bool:
        return not self.resolve(arg[0])

    def and_(self, arg: Any) -> bool:
        return all(self._operands(arg))

    def or_(self, arg: Any) -> bool:
        return any(self._operands(arg))

    def _operands(self, arg: Any) -> list[bool]:
        """Every operand resolved, not only up to the first that decides: an unresolvable one is an error."""
        return [bool(self.resolve(x)) for x in arg]


# the intrinsics resolved locally; any other `Fn::` is refused by name
_INTRINSICS: dict[str, Callable[[_Resolver, Any], Any]] = {
    "Ref": _Resolver.ref,
    "Fn::GetAtt": _Resolver.get_att,
    "Fn::Sub": _Resolver.sub,
    "Fn::Join": _Resolver.join,
    "Fn::Select": _Resolver.select,
    "Fn::Split": _Resolver.split,
    "Fn::If": _Resolver.if_,
    "Condition": _Resolver.condition,
    "Fn::Equals": _Resolver.equals,
    "Fn::Not": _Resolver.not_,
    "Fn::And": _Resolver.and_,
    "Fn::Or": _Resolver.or_,
}


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TemplateError(f"expected a plain value, got {value!r}")


# --- routes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteAuth:
    """What API Gateway asks of a caller on one route: the API's Auth with the event's Auth on top."""

    api_key: bool = False  # x-api-key of a usage plan
    authorizer: str | None = None  # "AWS_IAM" (SigV4), or the name of a token authorizer (e.g. CognitoJwt)
    token_header: str = "Authorization"  # where a token authorizer reads the token

    @property
    def open(self) -> bool:
        return not self.api_key and self.authorizer is None


@dataclass(frozen=True)
class CorsPreflight:
    """What SAM makes of an Api's `Cors` on each of its paths: an OPTIONS method with a MOCK integration that
    answers 200 with these static headers, whatever Origin the request names (a browser on another origin
    then refuses the answer), asking what `auth` asks (SAM's AddApiKeyRequiredToCorsPreflight and
    AddDefaultAuthorizerToCorsPreflight, both true unless the Api's Auth says false)."""

    headers: tuple[tuple[str, str], ...]
    auth: RouteAuth = field(default_factory=RouteAuth)


@dataclass(frozen=True)
class Route:
    """One `Type: Api` event of a function: what the gateway matches and what it calls."""

    function: str  # logical id, e.g. PredictFunction
    event: str  # event name, e.g. Predict
    method: str  # upper case; ANY matches every method
    path: str  # API Gateway pattern, e.g. /v1/models/{model}/predict
    code_uri: Path  # absolute
    handler: str  # e.g. app.lambda_handler
    environment: dict[str, str] = field(default_factory=dict)
    timeout: int = 3
    memory_size: int = 128
    function_name: str = ""  # what the fake context reports
    auth: RouteAuth = field(default_factory=RouteAuth)
    preflight: CorsPreflight | None = None  # OPTIONS on this route's path, if its API has Cors


SERVERLESS_FUNCTION = "AWS::Serverless::Function"


def api_routes(
    template: Mapping[str, Any],
    resource_names: Mapping[str, str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    base_dir: str | Path = ".",
) -> list[Route]:
    """Every `Type: Api` event of every AWS::Serverless::Function, with Globals merged in.

    `base_dir` is the template's folder (CodeUri is relative to it). Environment values are
    resolved (see `resolve_value`); a value that cannot be resolved raises TemplateError naming
    the function and the variable.
    """
    names = dict(resource_names if resource_names is not None else local_resource_names(template))
    routes: list[tuple[str, Route]] = []  # (the logical id of the route's API, the route)
    apis: dict[str, Mapping[str, Any]] = {}  # API logical id -> its properties
    for logical_id, res in (template.get("Resources") or {}).items():
        if not isinstance(res, dict) or res.get("Type") != SERVERLESS_FUNCTION:
            continue
        props = res.get("Properties") or {}
        events = {n: e for n, e in (props.get("Events") or {}).items()
                  if isinstance(e, dict) and e.get("Type") == "Api"}
        if not events:
            continue
        fn = _function(template, logical_id, names, parameters, base_dir)
        for event_name, event in events.items():
            ep = event.get("Properties") or {}
            path, method = ep.get("Path"), ep.get("Method")
            if not isinstance(path, str) or not isinstance(method, str):
                raise TemplateError(f"{logical_id} event {event_name}: Api events need a literal Path and Method")
            api_id, apis[api_id] = _api_of(template, ep)
            routes.append((api_id, Route(
                event=event_name,
                method="ANY" if method.lower() in {"any", "x-amazon-apigateway-any-method"} else method.upper(),
                path=path,
                auth=_route_auth(template, ep, names, parameters, where=f"{logical_id} event {event_name}"),
                **fn,
            )))
    return _with_preflights(template, routes, apis, names, parameters)


# what SAM puts in Access-Control-Allow-Methods for a path with an ANY method and no AllowMethods
ALL_HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
CORS_KEYS = ("AllowMethods", "AllowHeaders", "AllowOrigin", "MaxAge", "AllowCredentials")


def _with_preflights(template: Mapping[str, Any], routes: list[tuple[str, Route]],
                     apis: Mapping[str, Mapping[str, Any]], names: Mapping[str, str],
                     parameters: Mapping[str, Any] | None) -> list[Route]:
    """The routes, each with its path's CORS preflight: SAM adds one OPTIONS mock per path of an Api with Cors
    (`/x` and `/x/` being one resource), unless a function already takes OPTIONS there."""
    def resource(api_id: str, path: str) -> tuple[str, str]:
        return api_id, path.rstrip("/") or "/"

    methods: dict[tuple[str, str], set[str]] = {}
    for api_id, route in routes:
        methods.setdefault(resource(api_id, route.path), set()).add(route.method)
    preflights: dict[tuple[str, str], CorsPreflight | None] = {}
    for (api_id, path), path_methods in methods.items():
        preflights[api_id, path] = None if "OPTIONS" in path_methods else _cors_preflight(
            template, apis[api_id], path_methods, names, parameters, where=f"{api_id} Cors")
    return [replace(route, preflight=preflights[resource(api_id, route.path)]) for api_id, route in routes]


def _cors_preflight(template: Mapping[str, Any], api_props: Mapping[str, Any], path_methods: set[str],
                    names: Mapping[str, str], parameters: Mapping[str, Any] | None, where: str) -> CorsPreflight | None:
    """The OPTIONS mock SAM builds from an Api's `Cors` (a string is AllowOrigin alone), as
    samtranslator's SwaggerEditor.add_cors does; None without Cors."""
    cors = resolve_value(api_props.get("Cors"), template, names, parameters, where=where)
    if cors is None or cors is _NO_VALUE:
        return None
    cors = {"AllowOrigin": cors} if isinstance(cors, str) else _mapping(cors)
    unknown = sorted(set(cors) - set(CORS_KEYS))
    if unknown:
        raise TemplateError(f"{where}: unknown key {unknown[0]!r}; SAM takes {', '.join(CORS_KEYS)}")
    origin = _static(cors.get("AllowOrigin", "'*'"))
    if not origin:
        raise TemplateError(f"{where}: AllowOrigin is empty; SAM needs an origin (or '*')")
    allowed_methods = _static(cors["AllowMethods"]) if cors.get("AllowMethods") else ",".join(
        ALL_HTTP_METHODS if "ANY" in path_methods else sorted(path_methods | {"OPTIONS"}))
    headers = [("Access-Control-Allow-Origin", origin)]
    if cors.get("AllowHeaders"):
        headers.append(("Access-Control-Allow-Headers", _static(cors["AllowHeaders"])))
    headers.append(("Access-Control-Allow-Methods", allowed_methods))
    if cors.get("MaxAge") is not None:
        headers.append(("Access-Control-Max-Age", _static(cors["MaxAge"])))
    if cors.get("AllowCredentials") is True:  # SAM: only a literal true adds the header
        if origin == "*":
            raise TemplateError(f"{where}: AllowCredentials cannot be true when AllowOrigin is '*'")
        headers.append(("Access-Control-Allow-Credentials", "true"))
    api_auth = _mapping(resolve_value(api_props.get("Auth") or {}, template, names, parameters,
                                      where=f"{where} Auth"))
    asks_key = _true(api_auth.get("ApiKeyRequired", False)) and \
        _true(api_auth.get("AddApiKeyRequiredToCorsPreflight", True))
    authorizer = api_auth.get("DefaultAuthorizer") \
        if _true(api_auth.get("AddDefaultAuthorizerToCorsPreflight", True)) else None
    return CorsPreflight(headers=tuple(headers), auth=_auth(api_auth, authorizer, asks_key))


def gateway_response_headers(template: Mapping[str, Any], resource_names: Mapping[str, str] | None = None,
                             parameters: Mapping[str, Any] | None = None) -> dict[str, list[tuple[str, str]]]:
    """{"4XX": [(header, value)], "5XX": [...]}: the static headers the template's AWS::Serverless::Api adds to
    API Gateway's own answers (GatewayResponses DEFAULT_4XX / DEFAULT_5XX ResponseParameters.Headers),
    e.g. CORS's Access-Control-Allow-Origin, so a browser can read a 403 for a missing API key."""
    names = dict(resource_names if resource_names is not None else local_resource_names(template))
    out: dict[str, list[tuple[str, str]]] = {"4XX": [], "5XX": []}
    for logical_id, res in (template.get("Resources") or {}).items():
        if not isinstance(res, dict) or res.get("Type") != "AWS::Serverless::Api":
            continue
        responses = ((res.get("Properties") or {}).get("GatewayResponses")) or {}
        for family in out:
            declared = (responses.get(f"DEFAULT_{family}") or {}).get("ResponseParameters")
            resolved = resolve_value(declared or {}, template, names, parameters,
                                     where=f"{logical_id} GatewayResponses DEFAULT_{family}")
            for header, value in (_mapping(resolved).get("Headers") or {}).items():
                out[family].append((header, _static(value)))
    return out


def _static(value: Any) -> str:
    """A static response header value as API Gateway writes it, quoted ("'x'"), without its quotes."""
    return _scalar(value).strip("'")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}  # `!Ref AWS::NoValue` (or a non-map): nothing set


def _true(value: Any) -> bool:
    return str(value).lower() == "true"


def _route_auth(template: Mapping[str, Any], event_props: Mapping[str, Any], names: Mapping[str, str],
                parameters: Mapping[str, Any] | None, where: str) -> RouteAuth:
    """The event's Auth over its API's (see `_api_of`), as SAM reads them: ApiKeyRequired, DefaultAuthorizer /
    Authorizer (NONE = no authorizer), Authorizers' Identity.Header."""
    api_props = _api_of(template, event_props)[1]
    api_auth = _mapping(resolve_value(api_props.get("Auth") or {}, template, names, parameters,
                                      where=f"{where} API Auth"))
    event_auth = _mapping(resolve_value(event_props.get("Auth") or {}, template, names, parameters,
                                        where=f"{where} Auth"))
    return _auth(api_auth, event_auth.get("Authorizer", api_auth.get("DefaultAuthorizer")),
                 _true(event_auth.get("ApiKeyRequired", api_auth.get("ApiKeyRequired", False))))


def _auth(api_auth: Mapping[str, Any], authorizer: Any, api_key: bool) -> RouteAuth:
    """RouteAuth for an authorizer name of the API's Auth (None or NONE: none) and whether a key is asked."""
    authorizer = None if authorizer in (None, "NONE") else str(authorizer)
    header = (((api_auth.get("Authorizers") or {}).get(authorizer) or {}).get("Identity") or {}).get("Header")
    return RouteAuth(api_key=api_key, authorizer=authorizer, token_header=header or "Authorization")


IMPLICIT_API = "ServerlessRestApi"  # the API SAM creates for Api events without a RestApiId


def _api_of(template: Mapping[str, Any], event_props: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """(logical id, properties) of an Api event's API: its RestApiId resource, else SAM's implicit API; either
    way with Globals.Api under them, as SAM merges it."""
    globals_api = (template.get("Globals") or {}).get("Api") or {}
    api_id = event_props.get("RestApiId")
    if isinstance(api_id, dict) and isinstance(api_id.get("Ref"), str):
        props = ((template.get("Resources") or {}).get(api_id["Ref"]) or {}).get("Properties") or {}
        return api_id["Ref"], {**globals_api, **props}
    return IMPLICIT_API, globals_api


def _function(template: Mapping[str, Any], logical_id: str, names: Mapping[str, str],
              parameters: Mapping[str, Any] | None, base_dir: str | Path) -> dict[str, Any]:
    """What running one AWS::Serverless::Function locally needs (Globals merged in): the Route fields
    other than event, method and path."""
    res = (template.get("Resources") or {})[logical_id]
    props = res.get("Properties") or {}
    glob = (template.get("Globals") or {}).get("Function") or {}
    merged_env: dict[str, Any] = {}
    merged_env.update(((glob.get("Environment") or {}).get("Variables")) or {})
    merged_env.update(((props.get("Environment") or {}).get("Variables")) or {})
    env = {}
    for var, v in merged_env.items():
        value = resolve_value(v, template, names, parameters, where=f"{logical_id} environment variable {var}")
        if value is not _NO_VALUE:  # `!If [Cond, x, !Ref AWS::NoValue]` leaves the variable unset
            env[var] = _scalar(value)
    code_uri = props.get("CodeUri", glob.get("CodeUri"))
    handler = props.get("Handler", glob.get("Handler"))
    if not isinstance(code_uri, str) or not isinstance(handler, str):
        raise TemplateError(f"{logical_id}: the local gateway needs a local CodeUri folder and a Handler")
    timeout = int(resolve_value(props.get("Timeout", glob.get("Timeout", 3)), template, names, parameters,
                                where=f"{logical_id} Timeout"))
    memory = int(resolve_value(props.get("MemorySize", glob.get("MemorySize", 128)), template, names, parameters,
                               where=f"{logical_id} MemorySize"))
    fn_name = props.get("FunctionName")
    fn_name = _scalar(resolve_value(fn_name, template, names, parameters, where=f"{logical_id} FunctionName")) \
        if fn_name is not None else f"{LOCAL_STACK_NAME}-{logical_id}"
    return {"function": logical_id, "code_uri": (Path(base_dir).resolve() / code_uri).resolve(), "handler": handler,
            "environment": env, "timeout": timeout, "memory_size": memory, "function_name": fn_name}


@dataclass(frozen=True)
class RuleTarget:
    """A function an EventBridge rule of the template targets (`Targets: [{Arn: !GetAtt Fn.Arn}]`)."""

    route: Route  # the function (method "EVENTS", path = the rule's local name), as load_handler takes it
    rule: str  # the rule's local name
    target_id: str
    function_arn: str


def rule_targets(
    template: Mapping[str, Any],
    resource_names: Mapping[str, str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    base_dir: str | Path = ".",
) -> list[RuleTarget]:
    """Every function target of every AWS::Events::Rule of the template that has a local name."""
    names = dict(resource_names if resource_names is not None else local_resource_names(template))
    resources = template.get("Resources") or {}
    found: list[RuleTarget] = []
    for logical_id, res in resources.items():
        if not isinstance(res, dict) or res.get("Type") != "AWS::Events::Rule" or logical_id not in names:
            continue
        for target in (res.get("Properties") or {}).get("Targets") or []:
            arn = target.get("Arn") if isinstance(target, dict) else None
            att = arn.get("Fn::GetAtt") if isinstance(arn, dict) else None
            function = att[0] if isinstance(att, list) and len(att) == 2 and att[1] == "Arn" else None
            if function is None or resources.get(function, {}).get("Type") != SERVERLESS_FUNCTION:
                continue
            fn = _function(template, function, names, parameters, base_dir)
            found.append(RuleTarget(route=Route(event=logical_id, method="EVENTS", path=names[logical_id], **fn),
                                    rule=names[logical_id], target_id=str(target.get("Id")),
                                    function_arn=names[f"{function}.Arn"]))
    return found


@dataclass(frozen=True)
class QueueConsumer:
    """A function fed by an SQS queue: a `Type: SQS` event, or an AWS::Lambda::EventSourceMapping."""

    route: Route  # the function (method "SQS", path = the queue URL), as load_handler takes it
    queue_url: str
    batch_size: int = 10
    report_batch_item_failures: bool = False


def queue_consumers(
    template: Mapping[str, Any],
    resource_names: Mapping[str, str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    base_dir: str | Path = ".",
) -> list[QueueConsumer]:
    """Every SQS queue -> function subscription of the template whose queue has a local name."""
    names = dict(resource_names if resource_names is not None else local_resource_names(template))
    resources = template.get("Resources") or {}
    found: list[tuple[str, str, Any, Mapping[str, Any]]] = []  # (function, source, queue arn, properties)
    for logical_id, res in resources.items():
        if not isinstance(res, dict):
            continue
        props = res.get("Properties") or {}
        if res.get("Type") == SERVERLESS_FUNCTION:
            for event_name, event in (props.get("Events") or {}).items():
                if isinstance(event, dict) and event.get("Type") == "SQS":
                    ep = event.get("Properties") or {}
                    found.append((logical_id, event_name, ep.get("Queue"), ep))
        elif res.get("Type") == "AWS::Lambda::EventSourceMapping":
            target = props.get("FunctionName")
            if isinstance(target, dict) and isinstance(target.get("Ref"), str):
                found.append((target["Ref"], logical_id, props.get("EventSourceArn"), props))
    consumers: list[QueueConsumer] = []
    for function, source, queue_arn, props in found:
        queue_id = _queue_of(queue_arn)
        if queue_id is None or queue_id not in names or resources.get(function, {}).get("Type") != SERVERLESS_FUNCTION:
            continue  # not a queue of this template (e.g. a stream), or no local name: not run locally
        fn = _function(template, function, names, parameters, base_dir)
        consumers.append(QueueConsumer(
            route=Route(event=source, method="SQS", path=names[queue_id], **fn),
            queue_url=names[queue_id],
            batch_size=int(resolve_value(props.get("BatchSize", 10), template, names, parameters,
                                         where=f"{source} BatchSize")),
            report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
        ))
    return consumers


def _queue_of(arn: Any) -> str | None:
    """The logical id of a queue named by `!GetAtt Queue.Arn`."""
    if isinstance(arn, dict) and isinstance(arn.get("Fn::GetAtt"), list) and arn["Fn::GetAtt"][1:] == ["Arn"]:
        return str(arn["Fn::GetAtt"][0])
    return None


def stage_name(template: Mapping[str, Any], parameters: Mapping[str, Any] | None = None) -> str:
    """The StageName of the template's first AWS::Serverless::Api (resolved), or 'local'."""
    for res in (template.get("Resources") or {}).values():
        if isinstance(res, dict) and res.get("Type") == "AWS::Serverless::Api":
            stage = (res.get("Properties") or {}).get("StageName")
            if stage is not None:
                try:
                    return _scalar(resolve_value(stage, template, {}, parameters, where="StageName"))
                except TemplateError:
                    break
    return "local"


@dataclass(frozen=True)
class LogSubscriber:
    """A function invoked by CloudWatch Logs subscription filters (AWS::Logs::SubscriptionFilter -> a function)."""

    route: Route  # the function (method "LOGS", path = the log groups it reads), as load_handler takes it
    log_groups: tuple[str, ...]  # logical ids of the subscribed log groups
    filter_patterns: tuple[str, ...]
    dead_letter_queue_url: str | None = None  # its EventInvokeConfig's OnFailure SQS queue, if it has a local name


def log_subscribers(
    template: Mapping[str, Any],
    resource_names: Mapping[str, str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    base_dir: str | Path = ".",
) -> list[LogSubscriber]:
    """Every function of the template that subscription filters deliver log lines to (`!GetAtt Fn.Arn`)."""
    names = dict(resource_names if resource_names is not None else local_resource_names(template))
    resources = template.get("Resources") or {}
    found: dict[str, list[tuple[str, str]]] = {}
    for res in resources.values():
        if not isinstance(res, dict) or res.get("Type") != "AWS::Logs::SubscriptionFilter":
            continue
        props = res.get("Properties") or {}
        target, group = props.get("DestinationArn"), props.get("LogGroupName")
        fn = target.get("Fn::GetAtt") if isinstance(target, dict) else None
        if not (isinstance(fn, list) and fn[1:] == ["Arn"]
                and resources.get(fn[0], {}).get("Type") == SERVERLESS_FUNCTION):
            continue  # not a function of this template (e.g. Kinesis, Firehose)
        group_id = group.get("Ref") if isinstance(group, dict) else str(group)
        found.setdefault(fn[0], []).append((str(group_id), str(props.get("FilterPattern", ""))))
    subscribers: list[LogSubscriber] = []
    for function, subs in found.items():
        props = resources[function].get("Properties") or {}
        on_failure = (((props.get("EventInvokeConfig") or {}).get("DestinationConfig") or {}).get("OnFailure") or {})
        dlq = _queue_of(on_failure.get("Destination")) if on_failure.get("Type") == "SQS" else None
        subscribers.append(LogSubscriber(
            route=Route(event="LogSubscription", method="LOGS", path=",".join(g for g, _ in subs),
                        **_function(template, function, names, parameters, base_dir)),
            log_groups=tuple(g for g, _ in subs), filter_patterns=tuple(p for _, p in subs),
            dead_letter_queue_url=names.get(dlq) if dlq else None))
    return subscribers
