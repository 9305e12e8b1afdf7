"""maas_local.template: CloudFormation short tags, the template's Api routes, environment resolution."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from maas_local.template import (
    CfnLoader,
    CorsPreflight,
    RouteAuth,
    TemplateError,
    api_routes,
    gateway_response_headers,
    load_template,
    local_resource_names,
    resolve_value,
    stage_name,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
NAMES = {"ModelBucket": "maas-models", "RegistryTable": "maas-registry"}
# what the template's functions refer to beyond the bucket and registry (capture dead-letter queue, captures table, ...)
MONITORING_NAMES = {k: v for k, v in local_resource_names(load_template(TEMPLATE)).items() if k not in NAMES}
NAMES |= MONITORING_NAMES


def parse(text: str) -> object:
    return yaml.load(textwrap.dedent(text), Loader=CfnLoader)


def test_short_tags_become_long_form() -> None:
    doc = parse("""
        ref: !Ref Bucket
        sub: !Sub "arn:${AWS::Partition}:s3:::${Bucket}/*"
        sub_list: !Sub ["${A}-x", {A: !Ref Stage}]
        getatt_dotted: !GetAtt Bucket.Arn
        getatt_nested_attr: !GetAtt Db.Endpoint.Address
        getatt_list: [!GetAtt [Bucket, Arn]]
        join: !Join [",", [a, !Ref B]]
        if: !If [IsProd, 1, 2]
        select: !Select [0, !GetAZs ""]
        split: !Split [",", "a,b"]
        findinmap: !FindInMap [Map, Key, Value]
        equals: !Equals [!Ref Stage, prod]
        not: !Not [!Condition IsProd]
        and: !And [!Condition A, !Condition B]
        or: !Or [!Condition A, !Condition B]
        import: !ImportValue shared-vpc
        base64: !Base64 "hello"
        cidr: !Cidr ["10.0.0.0/16", 4, 8]
        getazs: !GetAZs us-east-1
    """)
    assert doc == {
        "ref": {"Ref": "Bucket"},
        "sub": {"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}/*"},
        "sub_list": {"Fn::Sub": ["${A}-x", {"A": {"Ref": "Stage"}}]},
        "getatt_dotted": {"Fn::GetAtt": ["Bucket", "Arn"]},
        "getatt_nested_attr": {"Fn::GetAtt": ["Db", "Endpoint.Address"]},
        "getatt_list": [{"Fn::GetAtt": ["Bucket", "Arn"]}],
        "join": {"Fn::Join": [",", ["a", {"Ref": "B"}]]},
        "if": {"Fn::If": ["IsProd", 1, 2]},
        "select": {"Fn::Select": [0, {"Fn::GetAZs": ""}]},
        "split": {"Fn::Split": [",", "a,b"]},
        "findinmap": {"Fn::FindInMap": ["Map", "Key", "Value"]},
        "equals": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
        "not": {"Fn::Not": [{"Condition": "IsProd"}]},
        "and": {"Fn::And": [{"Condition": "A"}, {"Condition": "B"}]},
        "or": {"Fn::Or": [{"Condition": "A"}, {"Condition": "B"}]},
        "import": {"Fn::ImportValue": "shared-vpc"},
        "base64": {"Fn::Base64": "hello"},
        "cidr": {"Fn::Cidr": ["10.0.0.0/16", 4, 8]},
        "getazs": {"Fn::GetAZs": "us-east-1"},
    }


def test_bad_getatt_is_a_clear_error() -> None:
    with pytest.raises(TemplateError, match="Resource.Attribute"):
        parse("x: !GetAtt NoDot")


def test_the_loader_keeps_its_tags_to_itself() -> None:
    # its constructors live in its own table, not in yaml.SafeLoader's (other libraries may add theirs there)
    assert "yaml_constructors" in CfnLoader.__dict__
    assert CfnLoader.yaml_constructors is not yaml.SafeLoader.yaml_constructors
    assert issubclass(CfnLoader, yaml.SafeLoader)
    with pytest.raises(yaml.constructor.ConstructorError):
        parse("x: !!python/object:os.system {}")  # still a safe loader


def test_load_template_reads_template_yaml() -> None:
    t = load_template(TEMPLATE)
    assert t["Globals"]["Function"]["Environment"]["Variables"]["MAAS_MODEL_BUCKET"] == {"Ref": "ModelBucket"}
    assert t["Resources"]["RegistryTable"]["Type"] == "AWS::DynamoDB::Table"


def test_load_template_refuses_a_non_template(tmp_path: Path) -> None:
    p = tmp_path / "t.yaml"
    p.write_text("just: a mapping\n")
    with pytest.raises(TemplateError, match="no Resources"):
        load_template(p)


def _declared_api_events(t: dict) -> set[tuple[str, str, str]]:
    """(function, METHOD, path) for every Type: Api event, read straight from the template."""
    out = set()
    for fn, res in t["Resources"].items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        for ev in (res["Properties"].get("Events") or {}).values():
            if ev.get("Type") == "Api":
                out.add((fn, ev["Properties"]["Method"].upper(), ev["Properties"]["Path"]))
    return out


def test_a_route_for_every_api_event_of_template_yaml() -> None:
    t = load_template(TEMPLATE)
    routes = api_routes(t, NAMES, base_dir=ROOT)
    assert {(r.function, r.method, r.path) for r in routes} == _declared_api_events(t)
    assert len(routes) == len(_declared_api_events(t))
    paths = {(r.method, r.path) for r in routes}
    assert {("GET", "/v1/health"), ("GET", "/v1/models"), ("POST", "/v1/models/{model}/predict")} <= paths
    for r in routes:
        assert r.code_uri.is_dir() and (r.code_uri / "app.py").is_file()
        assert r.handler == "app.lambda_handler"
        own = t["Resources"][r.function]["Properties"]  # a function's own Timeout/MemorySize win over Globals
        timeout = own.get("Timeout", t["Globals"]["Function"]["Timeout"])
        if isinstance(timeout, dict):  # !Ref <Function>Timeout: the parameter's default
            timeout = t["Parameters"][timeout["Ref"]]["Default"]
        assert r.timeout == timeout
        assert r.memory_size == own.get("MemorySize", t["Globals"]["Function"]["MemorySize"])


def test_environment_resolves_parameters_and_resources() -> None:
    t = load_template(TEMPLATE)
    env = api_routes(t, {**MONITORING_NAMES, "ModelBucket": "bucket-x", "RegistryTable": "table-y"},
                     base_dir=ROOT)[0].environment
    assert env["MAAS_MODEL_BUCKET"] == "bucket-x"
    assert env["MAAS_REGISTRY_TABLE"] == "table-y"
    assert env["MAAS_MAX_RECORDS"] == str(t["Parameters"]["MaxRecordsPerRequest"]["Default"])
    assert env["POWERTOOLS_LOG_LEVEL"] == t["Parameters"]["LogLevel"]["Default"]
    assert all(isinstance(v, str) for v in env.values())


def test_parameter_overrides_win_over_defaults() -> None:
    t = load_template(TEMPLATE)
    env = api_routes(t, NAMES, parameters={"MaxRecordsPerRequest": 7}, base_dir=ROOT)[0].environment
    assert env["MAAS_MAX_RECORDS"] == "7"


def test_default_local_names_match_maas_core_settings() -> None:
    from maas_core.settings import Settings

    names = local_resource_names(load_template(TEMPLATE))
    defaults = Settings.model_fields
    assert names["ModelBucket"] == defaults["model_bucket"].default
    assert names["RegistryTable"] == defaults["registry_table"].default


def test_unresolvable_ref_names_the_variable() -> None:
    t = load_template(TEMPLATE)
    with pytest.raises(TemplateError) as info:
        api_routes(t, {"ModelBucket": "b"}, base_dir=ROOT)  # no name for RegistryTable
    msg = str(info.value)
    assert "MAAS_REGISTRY_TABLE" in msg and "RegistryTable" in msg


MINI = """\
Parameters:
  Stage: {Type: String, Default: dev}
  NoDefault: {Type: String}
Globals:
  Function:
    Timeout: 9
    Environment:
      Variables:
        SHARED: from-globals
        OVERRIDDEN: from-globals
Resources:
  Api:
    Type: AWS::Serverless::Api
    Properties: {StageName: !Ref Stage}
  Table:
    Type: AWS::DynamoDB::Table
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      Handler: app.handler
      Timeout: 3
      Environment:
        Variables:
          OVERRIDDEN: from-function
          ARN: !Sub "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${Table}"
          JOINED: !Join ["-", [!Ref Stage, x]]
          PLAIN_NUMBER: 5
          FLAG: true
      Events:
        Any:
          Type: Api
          Properties: {Path: "/things/{proxy+}", Method: ANY}
        NotApi:
          Type: S3
          Properties: {Bucket: !Ref Table}
"""


def test_function_environment_overrides_globals_and_intrinsics_resolve() -> None:
    t = parse(MINI)
    (route,) = api_routes(t, {"Table": "tbl"}, base_dir="/srv")
    assert route.environment == {
        "SHARED": "from-globals",
        "OVERRIDDEN": "from-function",
        "ARN": "arn:aws:dynamodb:us-east-1:123456789012:table/tbl",
        "JOINED": "dev-x",
        "PLAIN_NUMBER": "5",
        "FLAG": "true",
    }
    assert route.method == "ANY" and route.path == "/things/{proxy+}"
    assert route.timeout == 3
    assert route.code_uri == Path("/srv/fn").resolve()
    assert stage_name(t) == "dev"
    assert stage_name(t, {"Stage": "prod"}) == "prod"


def test_resolution_errors_are_specific() -> None:
    t = parse(MINI)
    with pytest.raises(TemplateError, match=r"X: parameter 'NoDefault' has no Default"):
        resolve_value({"Ref": "NoDefault"}, t, {}, where="X")
    with pytest.raises(TemplateError, match=r"X: !Ref Nope is neither a parameter nor a resource"):
        resolve_value({"Ref": "Nope"}, t, {}, where="X")
    with pytest.raises(TemplateError, match=r"X: !GetAtt Table.Arn cannot be resolved locally"):
        resolve_value({"Fn::GetAtt": ["Table", "Arn"]}, t, {}, where="X")
    assert resolve_value({"Fn::GetAtt": ["Table", "Arn"]}, t, {"Table.Arn": "arn:x"}) == "arn:x"
    with pytest.raises(TemplateError, match=r"X: condition 'C' is not in the template's Conditions"):
        resolve_value({"Fn::If": ["C", "a", "b"]}, t, {}, where="X")
    with pytest.raises(TemplateError, match=r"X: Fn::FindInMap cannot be resolved"):
        resolve_value({"Fn::FindInMap": ["M", "a", "b"]}, t, {}, where="X")
    assert resolve_value({"Ref": "NoDefault"}, t, {}, parameters={"NoDefault": "given"}) == "given"


def test_queues_resolve_to_local_urls_and_log_subscribers_are_found() -> None:
    """Given template.yaml's capture dead-letter queue and the subscriptions of PredictLogGroup and
    BatchLogGroup (and BatchShardsLogGroup) to CaptureFunction,
    then the queue's Ref resolves to a local queue URL with its Arn and QueueName, no queue has a consumer
    any more, and log_subscribers names CaptureFunction once, for both log groups, with its own environment
    and its on-failure dead-letter queue."""
    from maas_local.template import local_queue_url, log_subscribers, queue_consumers

    t = load_template(TEMPLATE)
    names = local_resource_names(t)
    assert names["CaptureDeadLetterQueue"] == local_queue_url("maas-local-capture-dead-letter-queue")
    assert names["CaptureDeadLetterQueue.Arn"].endswith(":maas-local-capture-dead-letter-queue")
    assert queue_consumers(t, names, base_dir=ROOT) == []
    [capture] = log_subscribers(t, names, base_dir=ROOT)
    assert capture.route.function == "CaptureFunction"
    assert sorted(capture.log_groups) == ["BatchLogGroup", "BatchShardsLogGroup", "PredictLogGroup"]
    assert set(capture.filter_patterns) == {"{ $.maas_capture = 1 }"}
    assert capture.dead_letter_queue_url == names["CaptureDeadLetterQueue"]
    assert capture.route.environment["MAAS_CAPTURES_TABLE"] == names["CapturesTable"]
    assert (capture.route.code_uri / "app.py").is_file()


CONDITIONAL = """
    Parameters:
      Mode: {Type: String, Default: A}
      Origin: {Type: String, Default: ""}
    Conditions:
      IsA: !Equals [!Ref Mode, A]
      IsB: !Not [!Condition IsA]
      HasOrigin: !Not [!Equals [!Ref Origin, ""]]
      AAndOrigin: !And [!Condition IsA, !Condition HasOrigin]
      AOrOrigin: !Or [!Condition IsA, !Condition HasOrigin]
    Resources: {}
"""


@pytest.mark.parametrize(("parameters", "expected"), [
    ({}, {"mode": "a", "b": False, "both": False, "either": True, "list": ["x"], "headers": {}}),
    ({"Mode": "B", "Origin": "https://app"}, {"mode": "b", "b": True, "both": False, "either": True,
                                               "list": ["x", "https://app"], "headers": {"Origin": "https://app"}}),
    ({"Origin": "*"}, {"mode": "a", "b": False, "both": True, "either": True, "list": ["x", "*"],
                       "headers": {"Origin": "*"}}),
])
def test_conditions_and_fn_if_resolve_with_parameters(parameters: dict, expected: dict) -> None:
    # Given a template whose values depend on Conditions, and NoValue dropping keys and items
    t = parse(CONDITIONAL)
    value = parse("""
        mode: !If [IsA, a, b]
        b: !Condition IsB
        both: !Condition AAndOrigin
        either: !Condition AOrOrigin
        list: [x, !If [HasOrigin, !Ref Origin, !Ref AWS::NoValue]]
        headers: {Origin: !If [HasOrigin, !Ref Origin, !Ref AWS::NoValue]}
    """)
    # When resolved, Then each condition follows the parameters
    assert resolve_value(value, t, {}, parameters) == expected


def test_each_route_asks_for_what_the_template_auth_asks() -> None:
    # Given template.yaml with its default AuthMode (ApiKey)
    routes = {(r.method, r.path): r.auth for r in api_routes(load_template(TEMPLATE), NAMES, base_dir=ROOT)}
    key, iam, open_ = RouteAuth(api_key=True), RouteAuth(authorizer="AWS_IAM"), RouteAuth()
    # Then health and the OpenAPI document are open, admin routes take IAM, everything else an API key
    assert routes[("GET", "/v1/health")] == routes[("GET", "/v1/openapi.json")] == open_
    assert routes[("PUT", "/v1/models/{model}/aliases/{alias}")] == iam
    assert routes[("DELETE", "/v1/models/{model}/versions/{version}")] == iam
    others = {k: v for k, v in routes.items() if k[1] not in ("/v1/health", "/v1/openapi.json")
              and v.authorizer != "AWS_IAM"}
    assert others and set(others.values()) == {key}
    assert ("POST", "/v1/models/{model}/predict") in others
    # And with AuthMode=Jwt the same routes take the Cognito authorizer's token instead of a key
    jwt = {(r.method, r.path): r.auth for r in api_routes(
        load_template(TEMPLATE), NAMES, {"AuthMode": "Jwt", "CognitoUserPoolArn": "arn:aws:cognito-idp:x"},
        base_dir=ROOT)}
    assert jwt[("POST", "/v1/models/{model}/predict")] == RouteAuth(authorizer="CognitoJwt")
    assert jwt[("GET", "/v1/health")] == open_ and jwt[("PUT", "/v1/models/{model}/aliases/{alias}")] == iam


def test_gateway_response_headers_follow_allowed_origins() -> None:
    t = load_template(TEMPLATE)
    assert gateway_response_headers(t, NAMES) == {"4XX": [], "5XX": []}
    with_cors = gateway_response_headers(t, NAMES, {"AllowedOrigins": "https://app.example.com"})
    assert with_cors == {family: [("Access-Control-Allow-Origin", "https://app.example.com")]
                         for family in ("4XX", "5XX")}


def test_a_no_value_environment_variable_is_left_unset() -> None:
    t = parse(CONDITIONAL)
    t["Resources"] = {"Fn": {"Type": "AWS::Serverless::Function", "Properties": {
        "CodeUri": "functions/predict", "Handler": "app.lambda_handler",
        "Environment": {"Variables": {"ORIGIN": {"Fn::If": ["HasOrigin", {"Ref": "Origin"}, {"Ref": "AWS::NoValue"}]},
                                      "MODE": {"Ref": "Mode"}}},
        "Events": {"Get": {"Type": "Api", "Properties": {"Path": "/x", "Method": "get"}}}}}}
    assert api_routes(t, {}, base_dir=ROOT)[0].environment == {"MODE": "A"}
    assert api_routes(t, {}, {"Origin": "*"}, base_dir=ROOT)[0].environment == {"MODE": "A", "ORIGIN": "*"}


# --- CORS preflight (the OPTIONS mock SAM adds to every path of an Api with Cors) -----------------------------

APP = "https://app.example.com"
TEMPLATE_CORS_HEADERS = (
    ("Access-Control-Allow-Origin", APP),
    ("Access-Control-Allow-Headers",
     "Content-Type,Authorization,X-Api-Key,X-Amz-Date,X-Amz-Security-Token,X-Maas-Routing-Key"),
    ("Access-Control-Allow-Methods", "GET,POST,PUT,DELETE,OPTIONS"),
    ("Access-Control-Max-Age", "600"),
)


def test_template_yaml_preflights_follow_allowed_origins() -> None:
    t = load_template(TEMPLATE)
    # Given template.yaml's default AllowedOrigins (empty): MaasApi has no Cors, so no path answers OPTIONS
    assert {r.preflight for r in api_routes(t, NAMES, base_dir=ROOT)} == {None}
    # When AllowedOrigins names an origin, in either auth mode
    for extra in ({}, {"AuthMode": "Jwt", "CognitoUserPoolArn": "arn:aws:cognito-idp:x"}):
        routes = api_routes(t, NAMES, {"AllowedOrigins": APP, **extra}, base_dir=ROOT)
        # Then every route's path answers with MaasApi's Cors headers, asking no key and no token
        # (AddApiKeyRequiredToCorsPreflight / AddDefaultAuthorizerToCorsPreflight are false)
        assert {r.preflight for r in routes} == {CorsPreflight(headers=TEMPLATE_CORS_HEADERS)}, extra


SAM_CORS = """\
Parameters:
  Origin: {Type: String, Default: "'*'"}
Resources:
  Api:
    Type: AWS::Serverless::Api
    Properties:
      StageName: v1
      Cors: !Ref Origin
      Auth:
        ApiKeyRequired: true
        DefaultAuthorizer: Jwt
        Authorizers: {Jwt: {UserPoolArn: x, Identity: {Header: X-Token}}}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      Handler: app.handler
      Events:
        Get: {Type: Api, Properties: {RestApiId: !Ref Api, Path: /things, Method: get}}
        Post: {Type: Api, Properties: {RestApiId: !Ref Api, Path: /things, Method: post}}
        Any: {Type: Api, Properties: {RestApiId: !Ref Api, Path: "/any/{proxy+}", Method: any}}
        Own: {Type: Api, Properties: {RestApiId: !Ref Api, Path: /own, Method: options}}
        OwnGet: {Type: Api, Properties: {RestApiId: !Ref Api, Path: /own, Method: get}}
"""


def test_sam_cors_defaults_methods_from_the_path_and_preflight_auth_from_the_api() -> None:
    # Given an Api whose Cors is only an origin (a string), with an API key and a default authorizer
    t = parse(SAM_CORS)
    pre = {r.path: r.preflight for r in api_routes(t, {}, base_dir=ROOT)}
    # Then AllowMethods is what SAM derives: the path's methods and OPTIONS, every method under ANY
    assert pre["/things"].headers == (("Access-Control-Allow-Origin", "*"),
                                      ("Access-Control-Allow-Methods", "GET,OPTIONS,POST"))
    assert dict(pre["/any/{proxy+}"].headers)["Access-Control-Allow-Methods"] == \
        "DELETE,GET,HEAD,OPTIONS,PATCH,POST,PUT"
    # And the preflight asks the key and the token, as SAM's defaults (Add...ToCorsPreflight true) make it
    assert pre["/things"].auth == RouteAuth(api_key=True, authorizer="Jwt", token_header="X-Token")
    # And a path whose function takes OPTIONS itself gets no mock
    assert pre["/own"] is None


def test_sam_cors_options_as_a_map() -> None:
    t = parse(SAM_CORS)
    auth = t["Resources"]["Api"]["Properties"]["Auth"]
    auth.update(AddApiKeyRequiredToCorsPreflight=False, AddDefaultAuthorizerToCorsPreflight=False)
    t["Resources"]["Api"]["Properties"]["Cors"] = {"AllowOrigin": "'https://a.example'", "AllowCredentials": True,
                                                    "MaxAge": 0, "AllowMethods": "'GET'"}
    (route, *_) = api_routes(t, {}, base_dir=ROOT)
    assert route.preflight == CorsPreflight(headers=(
        ("Access-Control-Allow-Origin", "https://a.example"), ("Access-Control-Allow-Methods", "GET"),
        ("Access-Control-Max-Age", "0"), ("Access-Control-Allow-Credentials", "true")))


@pytest.mark.parametrize(("cors", "message"), [
    ({"AllowOrigin": "'*'", "AllowCredentials": True}, "AllowCredentials"),
    ({"AllowOrigin": "''"}, "AllowOrigin"),
    ({"AllowOrigins": "'*'"}, "AllowOrigins"),
])
def test_sam_cors_that_sam_refuses_is_a_clear_error(cors: dict, message: str) -> None:
    t = parse(SAM_CORS)
    t["Resources"]["Api"]["Properties"]["Cors"] = cors
    with pytest.raises(TemplateError, match=message):
        api_routes(t, {}, base_dir=ROOT)
