"""template.yaml, translated offline with samtranslator and linted with cfn-lint.

Why translate first: plain cfn-lint on the SAM file misses mistakes that only exist after the
transform (e.g. a `!Ref` to a missing resource inside a function's environment), so the
CloudFormation that SAM generates is what gets linted and inspected here.

Offline: local CodeUri/ContentUri folders are swapped for s3:// URIs (what `sam package` does),
the region comes from an explicit session instead of the environment, managed policies come
from a stub loader instead of IAM, and every socket connect raises while we translate or lint.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from cfnlint.api import ManualArgs, lint
from samtranslator.parser.parser import Parser
from samtranslator.public.translator import ManagedPolicyLoader
from samtranslator.translator.arn_generator import ArnGenerator
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

from tests.cfn_extensions import apply_language_extensions, evaluate, parameter_values, prune_resolved

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
REGION = "us-east-1"
RUNTIME = "python3.12"

# cfn-lint warnings we accept, as {rule id: reason}. Errors are never accepted. Keep this empty
# unless a warning is a known false positive of SAM-generated output; say why when adding one.
ACCEPTED_WARNINGS: dict[str, str] = {
    # SAM's generated UsagePlan / UsagePlanKey (Auth.UsagePlan) carry a DependsOn beside a Ref to the same
    # resource: redundant, harmless, and not ours to change
    "W3005": "samtranslator's usage plan resources: DependsOn next to a Ref",
}

# (method, path) -> the function that answers it
EXPECTED_ROUTES = {
    ("get", "/v1/health"): "PredictFunction",
    ("get", "/v1/openapi.json"): "PredictFunction",
    ("get", "/v1/models"): "PredictFunction",
    ("get", "/v1/models/{model}"): "PredictFunction",
    ("post", "/v1/models/{model}/predict"): "PredictFunction",
    ("post", "/v1/models/{model}/preprocess"): "PreprocessFunction",
    ("put", "/v1/models/{model}/aliases/{alias}"): "AdminFunction",
    ("delete", "/v1/models/{model}/versions/{version}"): "AdminFunction",
    ("post", "/v1/models/{model}/feedback"): "MetricsFunction",
    ("get", "/v1/models/{model}/metrics"): "MetricsFunction",
    ("post", "/v1/models/{model}/jobs"): "JobsFunction",
    ("get", "/v1/jobs/{job_id}"): "JobsFunction",
}
# routes only IAM-authorised callers (signed requests) may use
ADMIN_ROUTES = {route for route, fn in EXPECTED_ROUTES.items() if fn == "AdminFunction"}
EXPECTED_FUNCTIONS = set(EXPECTED_ROUTES.values()) | {"CaptureFunction", "GuardrailFunction"}

# functions that serve models: they must be able to read bundles, the registry and the model key
MODEL_READERS = {"PredictFunction", "PreprocessFunction", "BatchFunction", "MetricsFunction"}

# writes no function role may be allowed (IAM actions are case-insensitive), unless listed for it in
# WRITE_ALLOWANCES: a function that needs to write says so here, so every other one stays read-only
FORBIDDEN_WRITE_ACTIONS = (
    "s3:put*",
    "s3:delete*",
    "s3:restore*",
    "dynamodb:put*",
    "dynamodb:update*",
    "dynamodb:delete*",
    "dynamodb:batchwrite*",
    "dynamodb:partiqlinsert",
    "dynamodb:partiqlupdate",
    "dynamodb:partiqldelete",
    "kms:encrypt",
    "kms:generatedatakey*",
)
WRITE_ALLOWANCES: dict[str, tuple[str, ...]] = {
    # alias moves and version deletes: the registry items, and the bundle files of a deleted version
    "AdminFunction": ("dynamodb:putitem", "dynamodb:updateitem", "dynamodb:deleteitem", "s3:deleteobject",
                      "s3:deleteobjectversion"),
    # batch results (batch/output/*, batch/failed/*; see test_batch_function_writes_only_batch_results),
    # SSE-KMS data keys to encrypt them, and removing a stale failure report
    "BatchFunction": ("s3:putobject", "s3:deleteobject", "kms:generatedatakey", "dynamodb:updateitem"),
    # a job's item, and signing its presigned upload (batch/input/*/jobs/* only: see
    # test_jobs_function_signs_only_job_files), which S3 encrypts with the bucket's key
    "JobsFunction": ("dynamodb:putitem", "s3:putobject", "kms:generatedatakey"),
    # the steps of a large batch file: shard outputs under batch/work/ (removed after), the results by
    # UploadPartCopy, failure reports; SSE-KMS data keys to encrypt them
    "BatchShardsFunction": ("s3:putobject", "s3:deleteobject", "kms:generatedatakey", "dynamodb:updateitem"),
    # the capture consumer writes captured predictions (conditional puts, CapturesTable only: see
    # test_monitoring_writes_touch_only_the_captures_table)
    "CaptureFunction": ("dynamodb:putitem",),
    # feedback is stored on the capture it is about (a conditional update, CapturesTable only)
    "MetricsFunction": ("dynamodb:updateitem",),
    # canary guardrails: the alias write of an automatic rollback or promotion (put the alias item, touch
    # the versions it names: test_guardrail_roles_write_only_aliases_canary_alarms_and_schedules)
    "GuardrailFunction": ("dynamodb:putitem", "dynamodb:updateitem"),
}
ALLOWED_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",  # CloudWatch Logs only
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",  # added by SAM when tracing is on
}


# --- offline translation and linting ------------------------------------------------------------


class _AnyManagedPolicy(dict[str, str]):
    """Answers every managed-policy name with an AWS-managed ARN, as IAM would for real names."""

    def get(self, name: str, default: Any = None) -> str:  # type: ignore[override]
        return f"arn:aws:iam::aws:policy/{name}"


class StubManagedPolicyLoader(ManagedPolicyLoader):
    """The public loader lists policies through IAM (network); this one never has a client."""

    def __init__(self) -> None:
        super().__init__(iam_client=None)  # type: ignore[arg-type]

    def load(self) -> dict[str, str]:
        # non-empty: samtranslator skips a falsy map
        return _AnyManagedPolicy(
            {"AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}
        )


@contextmanager
def no_network() -> Iterator[None]:
    """Any attempt to open a connection (boto3 IAM/SAR/AppConfig calls, spec downloads) fails loudly."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted while translating/linting: {args!r}")

    with (
        mock.patch.object(socket.socket, "connect", refuse),
        mock.patch.object(socket.socket, "connect_ex", refuse),
        mock.patch.object(socket, "create_connection", refuse),
        mock.patch.object(socket, "getaddrinfo", refuse),
    ):
        yield


def load_sam_template() -> dict[str, Any]:
    return yaml_parse(TEMPLATE.read_text(encoding="utf-8"))


def as_packaged(sam: dict[str, Any]) -> dict[str, Any]:
    """What `sam package` does to code locations: local folders become s3:// URIs.

    Also proves every local CodeUri/ContentUri points at a folder that exists in the repo.
    """
    sam = copy.deepcopy(sam)
    holders = [("Globals.Function", sam.get("Globals", {}).get("Function", {}))]
    holders += [(name, res.get("Properties", {})) for name, res in sam["Resources"].items()]
    for name, props in holders:
        for key in ("CodeUri", "ContentUri"):
            uri = props.get(key)
            if isinstance(uri, str) and not uri.startswith("s3://"):
                assert (TEMPLATE.parent / uri).is_dir(), f"{name}.{key} {uri!r} is not a folder in the repo"
                props[key] = f"s3://maas-artifacts-offline/{name}.zip"
    return sam


def translate(sam: dict[str, Any], parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """SAM -> CloudFormation, offline (explicit region, stub managed policies, no sockets), after what
    AWS::LanguageExtensions does first (tests/cfn_extensions.py) for these parameter values."""
    loader = StubManagedPolicyLoader()
    saved_region = ArnGenerator.BOTO_SESSION_REGION_NAME
    try:
        with no_network():
            translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=REGION))
            return prune_resolved(translator.translate(
                as_packaged(apply_language_extensions(sam, parameters)), parameter_values=dict(parameters or {}),
                get_managed_policy_map=loader.load
            ))
    finally:
        ArnGenerator.BOTO_SESSION_REGION_NAME = saved_region  # translator sets a class-level global


def run_lint(template: dict[str, Any] | str) -> list[Any]:
    text = template if isinstance(template, str) else json.dumps(template)
    with no_network():
        return lint(text, config=ManualArgs(regions=[REGION]))


def describe(matches: list[Any]) -> str:
    return "\n".join(f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches) or "(none)"


def errors_and_unaccepted_warnings(matches: list[Any]) -> tuple[list[Any], list[Any]]:
    errors = [m for m in matches if m.rule.id.startswith("E")]
    warnings = [m for m in matches if m.rule.id.startswith("W") and m.rule.id not in ACCEPTED_WARNINGS]
    return errors, warnings


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    return load_sam_template()


@pytest.fixture(scope="module")
def cfn(sam: dict[str, Any]) -> dict[str, Any]:
    return translate(sam)


def resources_of_type(cfn: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in cfn["Resources"].items() if res["Type"] == type_}


def is_ref_to(value: Any, logical_id: str) -> bool:
    return value == {"Ref": logical_id}


# --- lint ---------------------------------------------------------------------------------------


def test_translated_template_lints_clean(cfn: dict[str, Any]) -> None:
    """Given the CloudFormation SAM generates from template.yaml,
    when cfn-lint checks it for us-east-1,
    then it reports no errors and no warnings beyond the accepted ones."""
    matches = run_lint(cfn)
    errors, warnings = errors_and_unaccepted_warnings(matches)
    assert not errors, f"cfn-lint errors in the translated template:\n{describe(errors)}"
    assert not warnings, (
        f"cfn-lint warnings in the translated template (fix them, or accept one in ACCEPTED_WARNINGS "
        f"with a reason):\n{describe(warnings)}"
    )


def test_sam_source_lints_clean() -> None:
    """Given template.yaml as written (cfn-lint runs its own SAM transform on it),
    when cfn-lint checks it,
    then it reports no errors and no unaccepted warnings either."""
    errors, warnings = errors_and_unaccepted_warnings(run_lint(TEMPLATE.read_text(encoding="utf-8")))
    assert not errors, describe(errors)
    assert not warnings, describe(warnings)


def test_lint_catches_a_ref_to_a_missing_resource(sam: dict[str, Any]) -> None:
    """Given a copy of the template whose predict function refers to a layer that does not exist,
    when it is translated and linted,
    then cfn-lint reports an error naming the missing resource (so the clean lint above means something)."""
    broken = copy.deepcopy(sam)
    broken["Resources"]["PredictFunction"]["Properties"]["Layers"] = [{"Ref": "NoSuchLayer"}]
    errors = [m for m in run_lint(translate(broken)) if m.rule.id.startswith("E")]
    assert any("NoSuchLayer" in m.message for m in errors), describe(errors)


def test_lint_catches_a_ref_to_a_missing_resource_in_the_environment(sam: dict[str, Any]) -> None:
    """Given a copy of the template with an environment variable that refers to a missing resource,
    when it is translated and linted,
    then cfn-lint reports it (plain cfn-lint on the SAM source does not see this one)."""
    broken = copy.deepcopy(sam)
    broken["Globals"]["Function"]["Environment"]["Variables"]["MAAS_EXTRA"] = {"Ref": "NoSuchThing"}
    errors = [m for m in run_lint(translate(broken)) if m.rule.id.startswith("E")]
    assert any("NoSuchThing" in m.message for m in errors), describe(errors)


def test_lint_catches_a_deprecated_runtime(sam: dict[str, Any]) -> None:
    """Given a copy of the template whose functions run on python2.7,
    when it is translated and linted,
    then cfn-lint reports an error about that runtime."""
    broken = copy.deepcopy(sam)
    broken["Globals"]["Function"]["Runtime"] = "python2.7"
    errors = [m for m in run_lint(translate(broken)) if m.rule.id.startswith("E")]
    assert any("python2.7" in m.message for m in errors), describe(errors)


# --- functions and API --------------------------------------------------------------------------


def test_every_function_runs_python312_with_layers(cfn: dict[str, Any]) -> None:
    """Given the translated template,
    when we look at every AWS::Lambda::Function,
    then each runs python3.12 (Amazon Linux 2023: current numpy/onnxruntime wheels load) and uses
    layers that are LayerVersions of this template compatible with python3.12."""
    functions = resources_of_type(cfn, "AWS::Lambda::Function")
    layers = resources_of_type(cfn, "AWS::Lambda::LayerVersion")
    assert EXPECTED_FUNCTIONS <= set(functions), f"missing functions: {sorted(EXPECTED_FUNCTIONS - set(functions))}"
    for name, fn in functions.items():
        props = fn["Properties"]
        assert props.get("Runtime") == RUNTIME, f"{name} runs {props.get('Runtime')!r}"
        assert props.get("Layers"), f"{name} has no layers"
        for layer in props["Layers"]:
            assert isinstance(layer, dict) and layer.get("Ref") in layers, f"{name}: layer {layer!r} not in template"
            assert RUNTIME in layers[layer["Ref"]]["Properties"].get("CompatibleRuntimes", [])


def test_function_events_produce_the_api_routes(cfn: dict[str, Any]) -> None:
    """Given the functions' Api events on MaasApi,
    when SAM generates the REST API,
    then its body routes every expected (method, path) -- health, OpenAPI, model listing, predict,
    preprocess -- to the function that answers it, through a Lambda proxy integration, and routes
    nothing to a function that is not in the template."""
    apis = resources_of_type(cfn, "AWS::ApiGateway::RestApi")
    assert "MaasApi" in apis
    paths = apis["MaasApi"]["Properties"]["Body"]["paths"]
    routes = {(method, path) for path, methods in paths.items() for method in methods}
    assert set(EXPECTED_ROUTES) <= routes, f"missing routes: {sorted(set(EXPECTED_ROUTES) - routes)}"
    for (method, path), function in EXPECTED_ROUTES.items():
        integration = paths[path][method]["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy"
        assert f"${{{function}.Arn}}" in json.dumps(integration["uri"]), (method, path, integration["uri"])
    functions = set(resources_of_type(cfn, "AWS::Lambda::Function"))
    for path, methods in paths.items():
        for method, op in methods.items():
            uri = json.dumps(op["x-amazon-apigateway-integration"]["uri"])
            assert any(f"${{{f}.Arn}}" in uri for f in functions), (method, path, uri)


def test_admin_routes_need_iam_auth_and_the_others_do_not(cfn: dict[str, Any]) -> None:
    """Given the generated REST API body,
    when we read each route's security requirement,
    then alias moves and deletes require AWS_IAM (signed requests) and predict-side routes do not."""
    api = next(iter(resources_of_type(cfn, "AWS::ApiGateway::RestApi").values()))
    paths = api["Properties"]["Body"]["paths"]
    for (method, path) in EXPECTED_ROUTES:
        schemes = {name for req in paths[path][method].get("security", []) for name in req}
        assert ("AWS_IAM" in schemes) == ((method, path) in ADMIN_ROUTES), (method, path, schemes)


def test_every_function_has_a_log_group_with_retention(sam: dict[str, Any]) -> None:
    """Given every AWS::Serverless::Function in template.yaml,
    then a log group named /aws/lambda/<that function> keeps its logs LogRetentionDays days
    (without one, Lambda creates a log group that keeps logs forever)."""
    functions = [n for n, r in sam["Resources"].items() if r["Type"] == "AWS::Serverless::Function"]
    retention: dict[str, Any] = {}
    for res in sam["Resources"].values():
        if res["Type"] == "AWS::Logs::LogGroup":
            name = json.dumps(res["Properties"].get("LogGroupName"))
            for fn in functions:
                if f"/aws/lambda/${{{fn}}}" in name:
                    retention[fn] = res["Properties"].get("RetentionInDays")
    assert set(functions) == set(retention), f"functions without a log group: {sorted(set(functions) - set(retention))}"
    assert all(is_ref_to(r, "LogRetentionDays") for r in retention.values()), retention


def test_api_has_no_stray_default_stage(cfn: dict[str, Any]) -> None:
    """Given the translated template,
    when we look at the API deployment,
    then it does not create SAM's extra stage named "Stage" beside the configured one
    (SAM sets Deployment.StageName "Stage" unless an OpenApiVersion is set)."""
    for name, dep in resources_of_type(cfn, "AWS::ApiGateway::Deployment").items():
        assert "StageName" not in dep["Properties"], f"{name} creates an extra stage {dep['Properties']['StageName']!r}"


# --- storage ------------------------------------------------------------------------------------


def test_model_bucket_is_versioned_private_and_kms_encrypted(cfn: dict[str, Any]) -> None:
    """Given the model bucket,
    then versioning is Enabled, all four public access block flags are true and objects are
    encrypted with aws:kms by default."""
    props = cfn["Resources"]["ModelBucket"]["Properties"]
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    pab = props["PublicAccessBlockConfiguration"]
    for flag in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
        assert pab.get(flag) is True, f"PublicAccessBlockConfiguration.{flag} is {pab.get(flag)!r}"
    rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert [r["ServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules] == ["aws:kms"]


def test_model_bucket_policy_denies_insecure_transport(cfn: dict[str, Any]) -> None:
    """Given the bucket policy attached to the model bucket,
    then it denies every principal any S3 action on the bucket and its objects when
    aws:SecureTransport is false."""
    policies = [
        p for p in resources_of_type(cfn, "AWS::S3::BucketPolicy").values()
        if is_ref_to(p["Properties"]["Bucket"], "ModelBucket")
    ]
    assert policies, "no bucket policy on ModelBucket"
    statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    denies = [
        s for s in statements
        if s["Effect"] == "Deny"
        and str(s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")).lower() == "false"
    ]
    assert denies, "no Deny statement on aws:SecureTransport false"
    deny = denies[0]
    assert deny["Principal"] in ("*", {"AWS": "*"})
    actions = deny["Action"] if isinstance(deny["Action"], list) else [deny["Action"]]
    assert "s3:*" in actions
    resources = json.dumps(deny["Resource"])
    assert "ModelBucket.Arn" in resources and "/*" in resources, "deny must cover the bucket and its objects"


def test_registry_table_is_encrypted_recoverable_and_keyed_pk_sk(cfn: dict[str, Any]) -> None:
    """Given the registry table,
    then server-side encryption and point-in-time recovery are on and the key is pk (hash) + sk (range)."""
    props = cfn["Resources"]["RegistryTable"]["Properties"]
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert {k["AttributeName"]: k["KeyType"] for k in props["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert types["pk"] == "S" and types["sk"] == "S"


def test_outputs_name_the_api_url_and_model_bucket(cfn: dict[str, Any]) -> None:
    """Given the stack outputs,
    then ApiUrl (built from MaasApi) and ModelBucketName (the model bucket) are there."""
    outputs = cfn["Outputs"]
    assert "${MaasApi}" in json.dumps(outputs["ApiUrl"]["Value"])
    assert is_ref_to(outputs["ModelBucketName"]["Value"], "ModelBucket")


# --- IAM ----------------------------------------------------------------------------------------


def _statements_of_role(cfn: dict[str, Any], role: str) -> list[dict[str, Any]]:
    """Inline policies of the role plus any AWS::IAM::Policy / ManagedPolicy attached to it."""
    docs = [p["PolicyDocument"] for p in cfn["Resources"][role]["Properties"].get("Policies", [])]
    for res in cfn["Resources"].values():
        if res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            if any(is_ref_to(r, role) for r in res["Properties"].get("Roles", [])):
                docs.append(res["Properties"]["PolicyDocument"])
    return [s for d in docs for s in (d["Statement"] if isinstance(d["Statement"], list) else [d["Statement"]])]


def test_every_function_role_is_least_privilege(cfn: dict[str, Any]) -> None:
    """Given the IAM role SAM generates for each function,
    when we collect every Allow statement of its policies,
    then none grants a wildcard action or NotAction, none grants a write (s3:Put*, dynamodb:Put*, ...)
    unless WRITE_ALLOWANCES lists it for that function, the only managed policies are the Lambda basic
    execution ones, and the functions that serve models can still read bundles, the registry and the key."""
    functions = resources_of_type(cfn, "AWS::Lambda::Function")
    assert EXPECTED_FUNCTIONS <= set(functions)
    for name, fn in functions.items():
        role_ref = fn["Properties"]["Role"]
        assert isinstance(role_ref, dict) and "Fn::GetAtt" in role_ref, f"{name}: unexpected role {role_ref!r}"
        role = role_ref["Fn::GetAtt"][0]
        statements = [s for s in _statements_of_role(cfn, role) if s["Effect"] == "Allow"]
        actions: list[str] = []
        for s in statements:
            assert "NotAction" not in s, f"{name}: NotAction grants everything else: {s}"
            actions += s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        lowered = [a.lower() for a in actions]
        assert not [a for a in actions if "*" in a], f"{name}: wildcard actions {[a for a in actions if '*' in a]}"
        allowed_writes = WRITE_ALLOWANCES.get(name, ())
        writes = [a for a in lowered if any(fnmatch.fnmatchcase(a, p) for p in FORBIDDEN_WRITE_ACTIONS)
                  and not any(fnmatch.fnmatchcase(a, p) for p in allowed_writes)]
        assert not writes, f"{name} must be read-only, but its role allows {writes}"
        if name in MODEL_READERS:
            assert {"s3:getobject", "dynamodb:getitem", "kms:decrypt"} <= set(lowered), (name, sorted(lowered))
        managed = set(cfn["Resources"][role]["Properties"].get("ManagedPolicyArns", []))
        assert managed <= ALLOWED_MANAGED_POLICIES, f"{name}: unexpected managed policies {managed}"


def test_role_check_catches_a_write_policy(sam: dict[str, Any]) -> None:
    """Given a copy of the template whose preprocess function may write to the model bucket,
    when the role check runs on it,
    then it fails naming the function (so the passing check above means something)."""
    broken = copy.deepcopy(sam)
    broken["Resources"]["PreprocessFunction"]["Properties"]["Policies"].append(
        {"S3CrudPolicy": {"BucketName": {"Ref": "ModelBucket"}}})
    with pytest.raises(AssertionError, match="PreprocessFunction must be read-only"):
        test_every_function_role_is_least_privilege(translate(broken))


# --- batch predictions (S3 trigger) -------------------------------------------------------------


def _batch_role_statements(cfn: dict[str, Any]) -> list[dict[str, Any]]:
    role = cfn["Resources"]["BatchFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]
    return [s for s in _statements_of_role(cfn, role) if s["Effect"] == "Allow"]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_batch_function_is_triggered_by_uploads_under_batch_input(cfn: dict[str, Any]) -> None:
    """Given the translated template,
    then the model bucket notifies BatchFunction of every ObjectCreated under batch/input/ (the
    extension is checked in code: S3 suffix rules cannot be OR-ed), S3 may invoke the function, and
    the function runs up to 15 minutes with 2 GB."""
    bucket = cfn["Resources"]["ModelBucket"]
    configs = bucket["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
    # (TrainTriggerFunction's entry is wrapped in Fn::If TrainingEnabled: it has no "Function" key)
    batch = [c for c in configs if c.get("Function") == {"Fn::GetAtt": ["BatchFunction", "Arn"]}]
    assert len(batch) == 1, configs
    assert batch[0]["Event"] == "s3:ObjectCreated:*"
    assert batch[0]["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "batch/input/"}]
    permissions = [p["Properties"] for p in resources_of_type(cfn, "AWS::Lambda::Permission").values()
                   if p["Properties"]["FunctionName"] == {"Ref": "BatchFunction"}]
    assert [p["Principal"] for p in permissions] == ["s3.amazonaws.com"]
    props = cfn["Resources"]["BatchFunction"]["Properties"]
    assert (props["Timeout"], props["MemorySize"]) == (900, 2048)


def test_batch_function_retries_once_then_sends_the_event_to_an_encrypted_dlq(cfn: dict[str, Any]) -> None:
    """Given BatchFunction's asynchronous invoke config,
    then a failed file is retried once and its event then goes to BatchDeadLetterQueue (SSE, kept
    14 days), which the function's role may send to."""
    configs = [c["Properties"] for c in resources_of_type(cfn, "AWS::Lambda::EventInvokeConfig").values()
               if c["Properties"]["FunctionName"] == {"Ref": "BatchFunction"}]
    assert len(configs) == 1
    assert configs[0]["MaximumRetryAttempts"] == 1
    assert configs[0]["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["BatchDeadLetterQueue", "Arn"]}
    queue = cfn["Resources"]["BatchDeadLetterQueue"]
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    sends = [s for s in _batch_role_statements(cfn) if "sqs:sendmessage" in [a.lower() for a in _as_list(s["Action"])]]
    assert any(s["Resource"] == {"Fn::GetAtt": ["BatchDeadLetterQueue", "Arn"]} for s in sends), sends


def test_batch_function_writes_only_batch_results(cfn: dict[str, Any]) -> None:
    """Given BatchFunction's role,
    then every S3 write (put, multipart abort, delete) is on batch/output/* or batch/failed/*, never on
    models/* or batch/input/*; it reads inputs and model bundles; and its bucket ARNs name the same
    bucket as ModelBucket.BucketName (the function must not reference the bucket resource: see below)."""
    statements = _batch_role_statements(cfn)
    writes = {"s3:putobject", "s3:deleteobject", "s3:abortmultipartupload", "s3:deleteobjectversion"}
    bucket_name = cfn["Resources"]["ModelBucket"]["Properties"]["BucketName"]
    assert bucket_name["Fn::Sub"][0] == "maas-models-${StackUuid}"
    read_resources: list[str] = []
    for s in statements:
        actions = {a.lower() for a in _as_list(s["Action"])}
        resources = [r["Fn::Sub"][0] if isinstance(r, dict) and "Fn::Sub" in r else json.dumps(r)
                     for r in _as_list(s["Resource"])]
        if actions & writes:
            assert all(r.endswith(("/batch/output/*", "/batch/failed/*")) for r in resources), (s, resources)
            assert not any("models/" in r or "batch/input" in r for r in resources), resources
        if "s3:getobject" in actions:
            read_resources += resources
        for r in resources:
            if ":s3:::" in r:
                assert r.startswith("arn:${AWS::Partition}:s3:::maas-models-${StackUuid}"), r
    assert any(r.endswith("/models/*") for r in read_resources), read_resources
    assert any(r.endswith("/batch/input/*") for r in read_resources), read_resources
    assert cfn["Resources"]["BatchFunction"]["Properties"]["Environment"]["Variables"]["MAAS_MODEL_BUCKET"] \
        == bucket_name


def test_jobs_function_signs_only_job_files(cfn: dict[str, Any]) -> None:
    """Given JobsFunction's role (a presigned request acts with the signer's rights)
    then it may put only batch/input/*/jobs/* and read only that, batch/output/*/jobs/* and the work areas of
    jobs' large files (batch/work/*/jobs/*: their progress), list only under batch/input/ and those work areas,
    write only the jobs table; the table expires items by TTL; and BatchFunction may record job ends and put
    events on the default bus only."""
    role = cfn["Resources"]["JobsFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]
    lists = []
    for s in _statements_of_role(cfn, role):
        actions = {a.lower() for a in _as_list(s["Action"])}
        resources = [r["Fn::Sub"] if isinstance(r, dict) and "Fn::Sub" in r else json.dumps(r)
                     for r in _as_list(s["Resource"])]
        if "s3:putobject" in actions:
            assert resources == ["${ModelBucket.Arn}/batch/input/*/jobs/*"], resources
        if "s3:getobject" in actions:
            assert set(resources) == {"${ModelBucket.Arn}/batch/input/*/jobs/*",
                                      "${ModelBucket.Arn}/batch/output/*/jobs/*",
                                      "${ModelBucket.Arn}/batch/work/*/jobs/*"}, resources
        if "s3:listbucket" in actions:
            lists.append((s["Resource"], s["Condition"]))
        if actions & {"dynamodb:putitem", "dynamodb:updateitem", "dynamodb:deleteitem"}:
            assert all("JobsTable" in r for r in resources), resources
    assert lists == [({"Fn::GetAtt": ["ModelBucket", "Arn"]},
                      {"StringLike": {"s3:prefix": ["batch/input/*", "batch/work/*/jobs/*"]}})], lists
    # the path a running file takes, as the jobs function tells it, is the one the batch function chose
    env = {name: cfn["Resources"][name]["Properties"]["Environment"]["Variables"]
           for name in ("JobsFunction", "BatchFunction")}
    assert env["JobsFunction"]["MAAS_BATCH_DISTRIBUTED_THRESHOLD_BYTES"] \
        == env["BatchFunction"]["MAAS_BATCH_DISTRIBUTED_THRESHOLD_BYTES"] == {"Ref": "BatchDistributedThresholdBytes"}
    table = cfn["Resources"]["JobsTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["KeySchema"] == [{"AttributeName": "job_id", "KeyType": "HASH"}]
    batch = _batch_role_statements(cfn)
    events = [s for s in batch if "events:PutEvents" in _as_list(s["Action"])]
    assert [s["Resource"] for s in events] == [
        {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"}]
    updates = [s for s in batch if "dynamodb:UpdateItem" in _as_list(s["Action"])]
    assert [s["Resource"] for s in updates] == [{"Fn::GetAtt": ["JobsTable", "Arn"]}]


def test_batch_function_does_not_reference_the_bucket_resource(cfn: dict[str, Any]) -> None:
    """Given that ModelBucket's notification makes the bucket depend on BatchFunction,
    then neither the function nor its role references ModelBucket (which would be a cycle)."""
    role = cfn["Resources"]["BatchFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]
    for name in ("BatchFunction", role):
        text = json.dumps(cfn["Resources"][name])
        assert '"ModelBucket"' not in text and "${ModelBucket" not in text, name


def test_lint_catches_a_circular_dependency_through_the_batch_trigger(sam: dict[str, Any]) -> None:
    """Given a copy of the template whose BatchFunction policy references !Ref ModelBucket,
    when translated and linted,
    then cfn-lint reports the circular dependency (E3004), so the clean lint above proves there is none."""
    broken = copy.deepcopy(sam)
    broken["Resources"]["BatchFunction"]["Properties"]["Policies"].append(
        {"S3ReadPolicy": {"BucketName": {"Ref": "ModelBucket"}}})
    errors, _ = errors_and_unaccepted_warnings(run_lint(translate(broken)))
    assert any(m.rule.id == "E3004" for m in errors), describe(errors)


# --- monitoring: capture subscriptions, captures table, metrics function, alarms, dashboard --------------


def _role_statements(cfn: dict[str, Any], function: str) -> list[dict[str, Any]]:
    role = cfn["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    return [s for s in _statements_of_role(cfn, role) if s["Effect"] == "Allow"]


def test_capture_dead_letter_queue_is_encrypted_and_kept_14_days(cfn: dict[str, Any]) -> None:
    """Given the capture dead-letter queue (events of capture lines that could not be written),
    then it is SSE-encrypted, keeps its messages 14 days, a queue policy denies insecure transport on it,
    and there is no capture queue any more (captures are log lines)."""
    dlq = cfn["Resources"]["CaptureDeadLetterQueue"]["Properties"]
    assert dlq["SqsManagedSseEnabled"] is True and dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert "CaptureQueue" not in cfn["Resources"] and "CaptureEventSource" not in cfn["Resources"]
    policies = [p["Properties"] for p in resources_of_type(cfn, "AWS::SQS::QueuePolicy").values()]
    covered = [q for p in policies for q in p["Queues"]
               if any(s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s.get("Condition"))
                      for s in p["PolicyDocument"]["Statement"])]
    assert {"Ref": "CaptureDeadLetterQueue"} in covered


def test_captures_table_is_keyed_pk_sk_encrypted_and_expires_items(cfn: dict[str, Any]) -> None:
    """Given the captures table,
    then its key is pk (hash) + sk (range), SSE is on and items expire through the expires_at TTL
    attribute (what maas_core.monitoring.store writes)."""
    from maas_core.monitoring.store import CaptureStore

    props = cfn["Resources"]["CapturesTable"]["Properties"]
    assert {k["AttributeName"]: k["KeyType"] for k in props["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    item = CaptureStore("t").item({"id": "0" * 32 + "-0", "model": "m", "version": "1", "time_ms": 0,
                                   "task": "binary", "output": {"label": "a"}})
    assert "expires_at" in item and {"pk", "sk"} <= set(item)


def test_predict_and_batch_capture_logs_reach_the_capture_function_by_subscription(cfn: dict[str, Any]) -> None:
    """Given the capture subscriptions,
    then PredictLogGroup, BatchLogGroup and BatchShardsLogGroup each have a subscription filter selecting the
    capture lines' marker (what maas_core.monitoring.capture writes) to CaptureFunction, created after a permission that
    lets logs.amazonaws.com invoke it from that log group (of this account) only."""
    from maas_core.monitoring.capture import MARKER, CaptureWriter, capture_lines

    [line], _ = capture_lines([{"id": "x"}])
    assert json.loads(line)[MARKER] == 1 and CaptureWriter
    filters = {f["Properties"]["LogGroupName"]["Ref"]: (name, f)
               for name, f in resources_of_type(cfn, "AWS::Logs::SubscriptionFilter").items()}
    assert set(filters) == {"PredictLogGroup", "BatchLogGroup", "BatchShardsLogGroup"}
    permissions = resources_of_type(cfn, "AWS::Lambda::Permission")
    for group, (_, f) in filters.items():
        props = f["Properties"]
        assert props["FilterPattern"] == f"{{ $.{MARKER} = 1 }}"
        assert props["DestinationArn"] == {"Fn::GetAtt": ["CaptureFunction", "Arn"]}
        [permission] = [p for p in _as_list(f.get("DependsOn")) if p in permissions]
        perm = permissions[permission]["Properties"]
        assert (perm["Action"], perm["Principal"]) == ("lambda:InvokeFunction", "logs.amazonaws.com")
        assert perm["FunctionName"] == {"Ref": "CaptureFunction"}
        assert perm["SourceArn"] == {"Fn::GetAtt": [group, "Arn"]}
        assert perm["SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_a_failed_capture_invocation_is_retried_then_dead_lettered_and_alarmed(cfn: dict[str, Any]) -> None:
    """Given CaptureFunction (invoked asynchronously by CloudWatch Logs),
    then a failed invocation is retried twice and then sent to CaptureDeadLetterQueue, which its role may
    send to; an alarm watches that queue; the role may only PutItem on the captures table besides, and
    reads no queue."""
    [config] = [c["Properties"] for c in resources_of_type(cfn, "AWS::Lambda::EventInvokeConfig").values()
                if c["Properties"]["FunctionName"] == {"Ref": "CaptureFunction"}]
    assert config["MaximumRetryAttempts"] == 2
    dlq = {"Fn::GetAtt": ["CaptureDeadLetterQueue", "Arn"]}
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == dlq
    statements = _role_statements(cfn, "CaptureFunction")
    actions = {a.lower() for s in statements for a in _as_list(s["Action"])}
    assert "sqs:sendmessage" in actions and "dynamodb:putitem" in actions
    assert not actions & {"sqs:receivemessage", "sqs:deletemessage"}
    assert all(s["Resource"] == dlq for s in statements if "sqs:SendMessage" in _as_list(s["Action"]))
    alarms = [a["Properties"] for a in resources_of_type(cfn, "AWS::CloudWatch::Alarm").values()
              if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
              and a["Properties"]["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["CaptureDeadLetterQueue", "QueueName"]}]
    assert len(alarms) == 1 and alarms[0]["Threshold"] == 0


def test_predict_and_batch_may_not_use_sqs_to_capture(cfn: dict[str, Any]) -> None:
    """Given PredictFunction's and BatchFunction's roles and environments,
    then neither may use SQS (captures are log lines), and both get the capture rate (a template
    parameter, 0..1) but no queue URL."""
    for function in ("PredictFunction", "BatchFunction"):
        sqs = [s for s in _role_statements(cfn, function)
               if any(a.lower().startswith("sqs:") for a in _as_list(s["Action"]))]
        env = cfn["Resources"][function]["Properties"]["Environment"]["Variables"]
        if function == "BatchFunction":  # its on-failure destination, which SAM grants
            assert all(s["Resource"] == {"Fn::GetAtt": ["BatchDeadLetterQueue", "Arn"]} for s in sqs), sqs
        else:
            assert sqs == []
        assert env["MAAS_CAPTURE_RATE"] == {"Ref": "CaptureRate"} and "MAAS_CAPTURE_QUEUE_URL" not in env
    rate = cfn["Parameters"]["CaptureRate"]
    assert (rate["Default"], rate["MinValue"], rate["MaxValue"]) == (1, 0, 1)


def test_monitoring_writes_touch_only_the_captures_table(cfn: dict[str, Any]) -> None:
    """Given the roles of CaptureFunction and MetricsFunction (the writers WRITE_ALLOWANCES names),
    then every DynamoDB write they may do is on CapturesTable, never on the registry."""
    for function in ("CaptureFunction", "MetricsFunction"):
        for s in _role_statements(cfn, function):
            actions = {a.lower() for a in _as_list(s["Action"])}
            if actions & {"dynamodb:putitem", "dynamodb:updateitem", "dynamodb:deleteitem"}:
                assert s["Resource"] == {"Fn::GetAtt": ["CapturesTable", "Arn"]}, (function, s)


def test_metrics_function_publishes_on_a_schedule(cfn: dict[str, Any]) -> None:
    """Given the translated template,
    then an EventBridge rule invokes MetricsFunction every 15 minutes with the publish action the
    handler recognises."""
    from maas_core.edge.schedule import is_publish_event

    rules = [r["Properties"] for r in resources_of_type(cfn, "AWS::Events::Rule").values()
             if any(t["Arn"] == {"Fn::GetAtt": ["MetricsFunction", "Arn"]} for t in r["Properties"]["Targets"])]
    assert len(rules) == 1 and rules[0]["ScheduleExpression"] == "rate(15 minutes)"
    assert is_publish_event(json.loads(rules[0]["Targets"][0]["Input"]))


# what the code emits under [service] (maas_core.monitoring): the alarms must watch these
EMITTED_SERVICE_METRICS = {"RequestCount", "RecordCount", "Latency", "Errors4xx", "Errors5xx", "Captured",
                           "CaptureFailures", "CapturedPredictions", "FeedbackCount", "Accuracy", "PrecisionMacro",
                           "RecallMacro", "F1Macro", "MAE", "RMSE", "MaxDriftPSI"}


def test_alarms_watch_error_rate_latency_accuracy_drift_and_capture(cfn: dict[str, Any]) -> None:
    """Given the CloudWatch alarms,
    then there is one on the predict 5xx rate, the p99 latency, accuracy (below a parameter), drift (above
    a parameter), capture failures and the capture dead-letter queue; every maas alarm watches a metric
    the code emits, with the [service] dimensions it is emitted under, and notifies AlarmTopic."""
    from maas_core.monitoring.emf import NAMESPACE, SERVICE

    every = [a["Properties"] for a in resources_of_type(cfn, "AWS::CloudWatch::Alarm").values()]
    assert all(a["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in every)
    # one metric each (the metric-math alarms over every function: test_every_function_alarms_on_lambda_errors_...)
    alarms = {a["MetricName"]: a for a in every if "MetricName" in a}
    assert {"Errors5xx", "Latency", "Accuracy", "MaxDriftPSI", "CaptureFailures",
            "ApproximateNumberOfMessagesVisible"} <= set(alarms)
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        if alarm["Namespace"] == NAMESPACE:
            assert name in EMITTED_SERVICE_METRICS, name
            assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == SERVICE, name
    assert alarms["Latency"]["ExtendedStatistic"] == "p99"
    assert alarms["Errors5xx"]["Statistic"] == "Average"  # 0/1 per request: the average is the rate
    assert alarms["Accuracy"]["Threshold"] == {"Ref": "AccuracyAlarmThreshold"}
    assert alarms["Accuracy"]["ComparisonOperator"] == "LessThanThreshold"
    assert alarms["MaxDriftPSI"]["Threshold"] == {"Ref": "DriftAlarmThreshold"}
    assert cfn["Parameters"]["DriftAlarmThreshold"]["Default"] == 0.2
    dlq = alarms["ApproximateNumberOfMessagesVisible"]
    assert dlq["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["CaptureDeadLetterQueue", "QueueName"]}


def test_dashboard_shows_volume_latency_errors_accuracy_drift_and_batch(cfn: dict[str, Any]) -> None:
    """Given the CloudWatch dashboard,
    then its body (once substituted) is valid JSON whose widgets chart request volume, latency
    percentiles, errors, accuracy, drift and the batch files (source=batch, their dead-letter queue)."""
    assert len(resources_of_type(cfn, "AWS::CloudWatch::Dashboard")) == 1
    widgets, raw = _dashboard(cfn)
    for attr in ("CaptureDeadLetterQueue.QueueName", "BatchDeadLetterQueue.QueueName"):
        assert f"${{{attr}}}" in raw, attr
    charted = json.dumps([w["properties"].get("metrics", []) for w in widgets])
    for metric in ("RequestCount", "Latency", "Errors5xx", "Accuracy", "MaxDriftPSI", "RejectedRecords", "FailedFiles"):
        assert metric in charted, metric
    assert '"source", "batch"' in charted
    stats = {m[-1].get("stat") for w in widgets for m in w["properties"].get("metrics", []) if isinstance(m[-1], dict)}
    assert {"p50", "p90", "p99"} <= stats


# --- auth, CORS and capacity parameters (AuthMode, AllowedOrigins, *Timeout, *ReservedConcurrency) ----

OPEN_ROUTES = {("get", "/v1/health"), ("get", "/v1/openapi.json")}
USER_POOL = "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_Example"
JWT_MODE = {"AuthMode": "Jwt", "CognitoUserPoolArn": USER_POOL}
API_FUNCTIONS = {"PredictFunction": "Predict", "PreprocessFunction": "Preprocess", "AdminFunction": "Admin",
                 "MetricsFunction": "Metrics"}


def _security(cfn: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    paths = cfn["Resources"]["MaasApi"]["Properties"]["Body"]["paths"]
    return {(method, path): {name for req in op.get("security", []) for name in req}
            for path, methods in paths.items() for method, op in methods.items() if method != "options"}


@pytest.mark.parametrize(("params", "credential"), [({}, "api_key"), (JWT_MODE, "CognitoJwt")],
                         ids=["ApiKey", "Jwt"])
def test_every_route_but_health_and_openapi_needs_the_auth_mode_credential(
        sam: dict[str, Any], params: dict[str, str], credential: str) -> None:
    """Given AuthMode ApiKey (the default) or Jwt,
    when SAM generates the REST API,
    then every route except health and the OpenAPI document requires exactly that credential, admin routes
    require IAM (SigV4) alone, and the two open routes require nothing (NONE, SAM's marker, in Jwt mode)."""
    security = _security(translate(sam, params))
    assert set(EXPECTED_ROUTES) <= set(security)
    for route, schemes in security.items():
        if route in OPEN_ROUTES:
            assert schemes <= {"NONE"}, (route, schemes)
        elif route in ADMIN_ROUTES:
            assert schemes == {"AWS_IAM"}, (route, schemes)
        else:
            assert schemes == {credential}, (route, schemes)


def test_api_key_mode_has_a_usage_plan_with_throttling_and_quota_from_parameters(cfn: dict[str, Any]) -> None:
    """Given the default AuthMode ApiKey, then a usage plan on MaasApi's stage limits each key's rate, burst
    and quota to the UsagePlan* parameters (SAM inlines the values at transform time), with one key in it."""
    sam_params = load_sam_template()["Parameters"]
    plans = resources_of_type(cfn, "AWS::ApiGateway::UsagePlan")
    assert len(plans) == 1
    plan = next(iter(plans.values()))["Properties"]
    assert plan["ApiStages"][0]["ApiId"] == {"Ref": "MaasApi"}
    assert float(plan["Throttle"]["RateLimit"]) == float(sam_params["UsagePlanRateLimit"]["Default"])
    assert int(plan["Throttle"]["BurstLimit"]) == int(sam_params["UsagePlanBurstLimit"]["Default"])
    assert int(plan["Quota"]["Limit"]) == int(sam_params["UsagePlanQuotaLimit"]["Default"])
    assert plan["Quota"]["Period"] == sam_params["UsagePlanQuotaPeriod"]["Default"]
    assert resources_of_type(cfn, "AWS::ApiGateway::UsagePlanKey") and resources_of_type(cfn, "AWS::ApiGateway::ApiKey")


def test_jwt_mode_uses_the_cognito_user_pool_and_no_api_keys(sam: dict[str, Any]) -> None:
    """Given AuthMode Jwt, then the authorizer checks tokens of CognitoUserPoolArn in the Authorization
    header, no usage plan or key is created, and a template rule refuses Jwt without a user pool."""
    cfn = translate(sam, JWT_MODE)
    schemes = cfn["Resources"]["MaasApi"]["Properties"]["Body"]["components"]["securitySchemes"]
    authorizer = schemes["CognitoJwt"]["x-amazon-apigateway-authorizer"]
    assert authorizer == {"type": "cognito_user_pools", "providerARNs": [USER_POOL]}
    assert schemes["CognitoJwt"]["name"] == "Authorization" and "api_key" not in schemes
    assert not resources_of_type(cfn, "AWS::ApiGateway::UsagePlan")
    rule = sam["Rules"]["JwtNeedsAUserPool"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "AuthMode"}, "Jwt"]}
    assert {"Ref": "CognitoUserPoolArn"} in json.loads(json.dumps(rule["Assertions"][0]["Assert"]))["Fn::Not"][0][
        "Fn::Equals"]
    errors, warnings = errors_and_unaccepted_warnings(run_lint(cfn))
    assert not errors and not warnings, describe(errors + warnings)


def test_cors_follows_allowed_origins(sam: dict[str, Any]) -> None:
    """Given AllowedOrigins empty (the default), then no route answers preflights (browsers refuse
    cross-origin calls); given https://app.example.com, then every path answers OPTIONS with that origin,
    the gateway's own 4xx/5xx answers carry it, and the functions are told it (MAAS_ALLOWED_ORIGINS)."""
    closed = translate(sam)["Resources"]["MaasApi"]["Properties"]["Body"]
    assert not any("options" in methods for methods in closed["paths"].values())
    origin = "https://app.example.com"
    cfn = translate(sam, {"AllowedOrigins": origin})
    body = cfn["Resources"]["MaasApi"]["Properties"]["Body"]
    sub = {"Fn::Sub": "'${AllowedOrigins}'"}
    for path, methods in body["paths"].items():
        headers = methods["options"]["x-amazon-apigateway-integration"]["responses"]["default"]["responseParameters"]
        assert headers["method.response.header.Access-Control-Allow-Origin"] == sub, path
        assert "x-api-key" in headers["method.response.header.Access-Control-Allow-Headers"].lower()
        assert "security" not in methods["options"] or methods["options"]["security"] in ([], [{"NONE": []}])
    for kind in ("DEFAULT_4XX", "DEFAULT_5XX"):
        response = body["x-amazon-apigateway-gateway-responses"][kind]
        assert response["responseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"] == sub
        assert '"error"' in response["responseTemplates"]["application/json"]  # the documented shape
    env = sam["Globals"]["Function"]["Environment"]["Variables"]
    assert env["MAAS_ALLOWED_ORIGINS"] == {"Ref": "AllowedOrigins"}
    assert sam["Parameters"]["AllowedOrigins"]["Default"] == ""


@pytest.mark.parametrize("reserved", ["0", "25"])
def test_timeouts_and_reserved_concurrency_are_parameters(sam: dict[str, Any], reserved: str) -> None:
    """Given each API function's <Name>Timeout and <Name>ReservedConcurrency parameters,
    then its Timeout is the parameter (API functions at most 29 s, API Gateway's limit), and its reserved
    concurrency is the parameter, or left out (unreserved) for 0, which would otherwise throttle every call."""
    params = {f"{short}ReservedConcurrency": reserved for short in API_FUNCTIONS.values()}
    cfn = translate(sam, params)
    for function, short in API_FUNCTIONS.items():
        props = cfn["Resources"][function]["Properties"]
        assert props["Timeout"] == {"Ref": f"{short}Timeout"}, function
        if reserved == "0":
            assert "ReservedConcurrentExecutions" not in props, function
        else:
            assert props["ReservedConcurrentExecutions"] == {"Ref": f"{short}ReservedConcurrency"}, function
        declared = sam["Parameters"][f"{short}Timeout"]
        if short != "Metrics":  # metrics also runs the scheduled publication; its API calls use the deadline
            assert int(declared["MaxValue"]) <= 29 and int(declared["Default"]) <= 29
        assert int(sam["Parameters"][f"{short}ReservedConcurrency"]["Default"]) == 0


# --- training as a batch job (AWS Batch on Fargate, datasets/ trigger, model write protection) -----


def _fixed_bucket_arns(resources: Any) -> list[str]:
    """The Fn::Sub text of each resource naming the bucket by its fixed name (arn:...:maas-models-${StackUuid}...)."""
    return [r["Fn::Sub"][0] if isinstance(r, dict) and "Fn::Sub" in r else json.dumps(r) for r in _as_list(resources)]


def _role_allows(cfn: dict[str, Any], role: str) -> list[tuple[set[str], list[str], dict[str, Any]]]:
    """(lower-cased actions, resources as text, statement) of every Allow statement of the role."""
    return [({a.lower() for a in _as_list(s["Action"])}, _fixed_bucket_arns(s["Resource"]), s)
            for s in _statements_of_role(cfn, role) if s["Effect"] == "Allow"]


def test_training_job_role_reads_datasets_and_writes_models_only(cfn: dict[str, Any]) -> None:
    """Given TrainingJobRole (the Batch job's role),
    then it may read datasets/* (and models/*, to check a version is not yet published), write models/* only,
    use the model key to decrypt/encrypt, and write the registry table; nothing else, no wildcard actions, and
    it names the bucket by its fixed name (the trigger's job definition references it: no cycle)."""
    role = cfn["Resources"]["TrainingJobRole"]
    principal = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
    assert principal == {"Service": "ecs-tasks.amazonaws.com"}
    assert "ModelBucket" not in json.dumps(role).replace("ModelBucketPolicy", "")
    services: set[str] = set()
    for actions, resources, statement in _role_allows(cfn, "TrainingJobRole"):
        assert "NotAction" not in statement and not [a for a in actions if "*" in a], statement
        services |= {a.split(":")[0] for a in actions}
        if actions & {"s3:putobject", "s3:deleteobject", "s3:abortmultipartupload"}:
            assert actions == {"s3:putobject"} and resources == [
                "arn:${AWS::Partition}:s3:::maas-models-${StackUuid}/models/*"], statement
        if "s3:getobject" in actions:
            assert {r.rsplit("/", 2)[-2] for r in resources} == {"datasets", "models"}, resources
        if any(a.startswith("kms:") for a in actions):
            assert actions == {"kms:decrypt", "kms:generatedatakey"}
            assert statement["Resource"] == {"Fn::GetAtt": ["ModelKey", "Arn"]}
        if any(a.startswith("dynamodb:") for a in actions):
            assert statement["Resource"] == {"Fn::GetAtt": ["RegistryTable", "Arn"]}
            assert not actions & {"dynamodb:deleteitem", "dynamodb:scan", "dynamodb:batchwriteitem"}, actions
    assert services == {"s3", "kms", "dynamodb"}
    assert not cfn["Resources"]["TrainingJobRole"]["Properties"].get("ManagedPolicyArns")


def test_only_the_training_job_role_may_write_models(cfn: dict[str, Any]) -> None:
    """Given every IAM role of the translated template (function roles, the Batch roles),
    then the only one allowed s3:PutObject under models/ is TrainingJobRole; no role is given s3:* or
    s3:Put* on anything."""
    writers = []
    for role in resources_of_type(cfn, "AWS::IAM::Role"):
        for actions, resources, statement in _role_allows(cfn, role):
            assert not {"s3:*", "s3:put*", "*"} & actions, (role, statement)
            if "s3:putobject" in actions and any("/models/" in r or "}/*" in r or r.endswith("/*\"")
                                                 for r in resources):
                writers.append(role)
    assert writers == ["TrainingJobRole"], writers


def test_model_writer_check_catches_another_writer(sam: dict[str, Any]) -> None:
    """Given a copy of the template whose batch function may also put objects under models/,
    then the check above fails (so its passing means something)."""
    broken = copy.deepcopy(sam)
    broken["Resources"]["BatchFunction"]["Properties"]["Policies"].append({"Statement": [
        {"Effect": "Allow", "Action": "s3:PutObject",
         "Resource": {"Fn::Sub": ["arn:${AWS::Partition}:s3:::maas-models-${StackUuid}/models/*",
                                  {"StackUuid": "x"}]}}]})
    with pytest.raises(AssertionError, match="TrainingJobRole"):
        test_only_the_training_job_role_may_write_models(translate(broken))


def test_model_bucket_policy_denies_model_writes_by_anyone_but_the_publishers(cfn: dict[str, Any]) -> None:
    """Given the model bucket's policy,
    then it denies s3:PutObject on models/* to every principal whose ARN is not TrainingJobRole's or one of
    ModelPublisherArns (left out of the list when that parameter is empty: an empty ARN is no ARN)."""
    policy = cfn["Resources"]["ModelBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    denies = [s for s in policy if s["Effect"] == "Deny" and "s3:PutObject" in _as_list(s["Action"])]
    assert len(denies) == 1, denies
    deny = denies[0]
    assert deny["Principal"] in ("*", {"AWS": "*"})
    assert deny["Resource"] == {"Fn::Sub": "${ModelBucket.Arn}/models/*"}
    allowed = deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"]["Fn::If"]
    role_arn = {"Fn::GetAtt": ["TrainingJobRole", "Arn"]}
    assert allowed[0] == "HasModelPublishers"
    assert role_arn in allowed[1]["Fn::Split"][1]["Fn::Join"][1]
    assert {"Fn::Join": [",", {"Ref": "ModelPublisherArns"}]} in allowed[1]["Fn::Split"][1]["Fn::Join"][1]
    assert allowed[2] == [role_arn]
    assert cfn["Parameters"]["ModelPublisherArns"]["Default"] == ""


def test_model_bucket_aborts_incomplete_multipart_uploads(cfn: dict[str, Any]) -> None:
    rules = cfn["Resources"]["ModelBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    aborts = [r for r in rules if r["Status"] == "Enabled" and "AbortIncompleteMultipartUpload" in r]
    assert aborts and aborts[0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] <= 7, rules
    assert "Prefix" not in aborts[0] and "Filter" not in aborts[0]  # the whole bucket


def test_training_runs_as_a_fargate_batch_job_only_when_configured(cfn: dict[str, Any]) -> None:
    """Given the Batch resources,
    then a managed FARGATE compute environment in the parameter subnets/security groups feeds the job queue,
    the job definition runs the image parameter on FARGATE with the job and execution roles, the vCPU/memory
    parameters and awslogs into a log group with retention; all of it (and the trigger) exists only when
    TrainingEnabled, which needs the image, the subnets and the security groups."""
    res = cfn["Resources"]
    for name in ("TrainingComputeEnvironment", "TrainingJobQueue", "TrainingJobDefinition", "TrainingExecutionRole",
                 "TrainingLogGroup", "TrainTriggerFunction", "TrainTriggerLogGroup"):
        assert res[name].get("Condition") == "TrainingEnabled", name
    assert "Condition" not in res["TrainingJobRole"]  # the bucket policy names it either way
    enabled = json.dumps(cfn["Conditions"]["TrainingEnabled"])
    for param in ("TrainingImageUri", "TrainingSubnetIds", "TrainingSecurityGroupIds"):
        assert param in enabled and cfn["Parameters"][param]["Default"] == ""
    ce = res["TrainingComputeEnvironment"]["Properties"]
    assert (ce["Type"], ce["ComputeResources"]["Type"]) == ("MANAGED", "FARGATE")
    assert ce["ComputeResources"]["Subnets"] == {"Ref": "TrainingSubnetIds"}
    assert ce["ComputeResources"]["SecurityGroupIds"] == {"Ref": "TrainingSecurityGroupIds"}
    queue = res["TrainingJobQueue"]["Properties"]
    assert queue["ComputeEnvironmentOrder"] == [{"Order": 1,
                                                 "ComputeEnvironment": {"Ref": "TrainingComputeEnvironment"}}]
    jd = res["TrainingJobDefinition"]["Properties"]
    assert jd["PlatformCapabilities"] == ["FARGATE"] and jd["Type"] == "container"
    c = jd["ContainerProperties"]
    assert c["Image"] == {"Ref": "TrainingImageUri"}
    assert c["JobRoleArn"] == {"Fn::GetAtt": ["TrainingJobRole", "Arn"]}
    assert c["ExecutionRoleArn"] == {"Fn::GetAtt": ["TrainingExecutionRole", "Arn"]}
    assert {r["Type"]: r["Value"] for r in c["ResourceRequirements"]} == {
        "VCPU": {"Ref": "TrainingVcpu"}, "MEMORY": {"Ref": "TrainingMemory"}}
    assert c["NetworkConfiguration"]["AssignPublicIp"] == {"Ref": "TrainingAssignPublicIp"}
    assert c["LogConfiguration"]["LogDriver"] == "awslogs"
    assert c["LogConfiguration"]["Options"]["awslogs-group"] == {"Ref": "TrainingLogGroup"}
    assert res["TrainingLogGroup"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    env = {e["Name"]: e["Value"] for e in c["Environment"]}
    assert env["MAAS_REGISTRY_TABLE"] == {"Ref": "RegistryTable"}
    assert env["MAAS_MODEL_BUCKET"] == res["ModelBucket"]["Properties"]["BucketName"]
    exec_actions = {a.lower() for actions, _, _ in _role_allows(cfn, "TrainingExecutionRole") for a in actions}
    assert exec_actions == {"ecr:getauthorizationtoken", "ecr:batchchecklayeravailability", "ecr:batchgetimage",
                            "ecr:getdownloadurlforlayer", "logs:createlogstream", "logs:putlogevents"}


def test_train_trigger_may_only_submit_to_the_training_queue(cfn: dict[str, Any]) -> None:
    """Given TrainTriggerFunction,
    then the model bucket notifies it (when TrainingEnabled) of every ObjectCreated under datasets/; its role's
    Batch permissions are batch:SubmitJob on the training queue and job definition and batch:ListJobs (read-only,
    to find the upload's job already submitted; it has no resource-level permissions), and on S3 it may only read
    datasets/* and list under datasets/ (no writes, no KMS); on SQS it may only send a failed event to the
    dead-letter queue (its on-failure destination); its environment names the queue, the definition, the
    batch runner and the bucket by its fixed name (no cycle through the notification)."""
    configs = cfn["Resources"]["ModelBucket"]["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
    conditional = [c["Fn::If"] for c in configs if "Fn::If" in c]
    assert len(conditional) == 1 and conditional[0][0] == "TrainingEnabled"
    trigger = conditional[0][1]
    assert trigger["Function"] == {"Fn::GetAtt": ["TrainTriggerFunction", "Arn"]}
    assert trigger["Event"] == "s3:ObjectCreated:*"
    assert trigger["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "datasets/"}]

    statements = _role_allows(cfn, "TrainTriggerFunction" + "Role")
    batch = [(a, s) for a, _, s in statements if any(x.startswith("batch:") for x in a)]
    assert [(a, s["Resource"]) for a, s in batch] == [
        ({"batch:submitjob"}, [{"Ref": "TrainingJobQueue"}, {"Ref": "TrainingJobDefinition"}]),
        ({"batch:listjobs"}, "*")]
    for actions, resources, statement in statements:
        assert not [a for a in actions if "*" in a], statement
        assert {a.split(":")[0] for a in actions} <= {"batch", "s3", "sqs"}, statement
        if any(a.startswith("sqs:") for a in actions):  # its on-failure destination, nothing else
            assert actions == {"sqs:sendmessage"}, statement
            assert statement["Resource"] == {"Fn::GetAtt": ["BatchDeadLetterQueue", "Arn"]}, statement
        if "s3:getobject" in actions:
            assert actions == {"s3:getobject"}
            assert resources == ["arn:${AWS::Partition}:s3:::maas-models-${StackUuid}/datasets/*"]
        if "s3:listbucket" in actions:
            assert statement["Condition"] == {"StringLike": {"s3:prefix": "datasets/*"}}
    props = cfn["Resources"]["TrainTriggerFunction"]["Properties"]
    env = props["Environment"]["Variables"]
    assert env["MAAS_TRAINING_JOB_QUEUE"] == {"Ref": "TrainingJobQueue"}
    assert env["MAAS_TRAINING_JOB_DEFINITION"] == {"Ref": "TrainingJobDefinition"}
    assert env["MAAS_TRAINING_RUNNER"] == "batch"
    assert env["MAAS_MODEL_BUCKET"] == cfn["Resources"]["ModelBucket"]["Properties"]["BucketName"]
    for name in ("TrainTriggerFunction", props["Role"]["Fn::GetAtt"][0], "TrainingJobDefinition", "TrainingJobRole"):
        text = json.dumps(cfn["Resources"][name])
        assert '"ModelBucket"' not in text and "${ModelBucket" not in text, name


def test_batch_dead_letter_queue_depth_raises_an_alarm(cfn: dict[str, Any]) -> None:
    """Given the alarms on SQS queue depth,
    then one watches BatchDeadLetterQueue (a batch file that failed twice) and notifies AlarmTopic."""
    alarms = [a["Properties"] for a in resources_of_type(cfn, "AWS::CloudWatch::Alarm").values()
              if a["Properties"].get("Namespace") == "AWS/SQS"]
    batch = [a for a in alarms
             if a["Dimensions"] == [{"Name": "QueueName",
                                     "Value": {"Fn::GetAtt": ["BatchDeadLetterQueue", "QueueName"]}}]]
    assert len(batch) == 1
    assert batch[0]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert (batch[0]["Threshold"], batch[0]["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert batch[0]["AlarmActions"] == [{"Ref": "AlarmTopic"}]


@pytest.mark.parametrize("mode", ["None", "ProvisionedConcurrency", "SnapStart"])
def test_cold_start_mode_sets_alias_provisioned_concurrency_or_snapstart(sam: dict[str, Any], mode: str) -> None:
    """Given ColdStartMode (and ProvisionedConcurrency = 3),
    when the template is translated,
    then None publishes nothing and the API invokes the function itself; ProvisionedConcurrency publishes
    alias `live` with 3 provisioned environments and SnapStart publishes it with SnapStart on published
    versions, and in both the API invokes that alias (as does every permission); it lints clean."""
    cfn = translate(sam, {"ColdStartMode": mode, "ProvisionedConcurrency": "3"})
    fn = cfn["Resources"]["PredictFunction"]["Properties"]
    aliases = {n: r["Properties"] for n, r in resources_of_type(cfn, "AWS::Lambda::Alias").items()
               if r["Properties"]["FunctionName"] == {"Ref": "PredictFunction"}}
    paths = cfn["Resources"]["MaasApi"]["Properties"]["Body"]["paths"]
    uri = json.dumps(paths["/v1/models/{model}/predict"]["post"]["x-amazon-apigateway-integration"]["uri"])
    permissions = [r["Properties"]["FunctionName"] for r in resources_of_type(cfn, "AWS::Lambda::Permission").values()
                   if "PredictFunction" in json.dumps(r["Properties"]["FunctionName"])]
    if mode == "None":
        assert aliases == {} and "SnapStart" not in fn
        assert "${PredictFunction.Arn}" in uri
        return
    [(alias_id, alias)] = aliases.items()
    assert alias["Name"] == "live"
    assert f"${{{alias_id}}}" in uri and permissions and all(p == {"Ref": alias_id} for p in permissions)
    if mode == "ProvisionedConcurrency":
        assert alias["ProvisionedConcurrencyConfig"] == {
            "ProvisionedConcurrentExecutions": {"Ref": "ProvisionedConcurrency"}}
        assert "SnapStart" not in fn
    else:
        assert fn["SnapStart"] == {"ApplyOn": "PublishedVersions"} and "ProvisionedConcurrencyConfig" not in alias
    errors = [m for m in run_lint(cfn) if m.rule.id.startswith("E")]
    assert not errors, describe(errors)


# --- hostile requests: least privilege, capacity, alarms, access logs, encryption, limits ----------


def _bucket_pattern(resource: Any) -> str:
    """An S3 resource of a role statement as one text with the model bucket written BUCKET, whichever way the
    template names it: ${ModelBucket.Arn}, GetAtt ModelBucket.Arn, SAM's ${bucketName} = Ref ModelBucket, or the
    fixed name maas-models-${StackUuid}."""
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        return "arn:s3:::BUCKET" if resource["Fn::GetAtt"] == ["ModelBucket", "Arn"] else json.dumps(resource)
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        text, variables = (resource["Fn::Sub"], {}) if isinstance(resource["Fn::Sub"], str) else resource["Fn::Sub"]
        bucket_vars = [f"${{{k}}}" for k, v in variables.items() if v == {"Ref": "ModelBucket"}]
        for token in ["${ModelBucket.Arn}"] + [f"arn:${{AWS::Partition}}:s3:::{b}" for b in bucket_vars] + [
                "arn:${AWS::Partition}:s3:::maas-models-${StackUuid}"]:
            text = text.replace(token, "arn:s3:::BUCKET")
        return text
    return resource if isinstance(resource, str) else json.dumps(resource)


def _may(cfn: dict[str, Any], function: str, action: str, arn: str) -> bool:
    """Does some Allow statement of the function's role grant `action` on `arn` (ignoring conditions)?"""
    for s in _role_statements(cfn, function):
        if any(fnmatch.fnmatchcase(action, a.lower()) for a in _as_list(s["Action"])):
            if any(fnmatch.fnmatchcase(arn, _bucket_pattern(r)) for r in _as_list(s["Resource"])):
                return True
    return False


SERVING_READERS = ("PredictFunction", "PreprocessFunction")
OUTSIDE_MODELS = ("datasets/penguins/train.csv", "batch/input/penguins/f.csv", "batch/output/penguins/f.csv",
                  "batch/failed/penguins/f.csv.error.json", "captures.csv")


@pytest.mark.parametrize("function", SERVING_READERS)
def test_serving_functions_read_model_bundles_only(cfn: dict[str, Any], function: str) -> None:
    """Given the role of predict or preprocess (they load models/{name}/{version}/ bundles: store.BundleStore),
    then it may get objects under models/* and nothing else of the bucket (no datasets/, no batch files),
    may list the bucket only under models/ (what makes a missing bundle file a 404, not a 403), reads the
    registry and decrypts with the model key only, and has no other S3 action."""
    assert _may(cfn, function, "s3:getobject", "arn:s3:::BUCKET/models/penguins/1/manifest.json")
    for key in OUTSIDE_MODELS:
        assert not _may(cfn, function, "s3:getobject", f"arn:s3:::BUCKET/{key}"), (function, key)
    s3 = [s for s in _role_statements(cfn, function) if any(a.lower().startswith("s3:") for a in _as_list(s["Action"]))]
    actions = {a.lower() for s in s3 for a in _as_list(s["Action"])}
    assert actions == {"s3:getobject", "s3:listbucket"}, actions
    for s in s3:
        if "s3:listbucket" in {a.lower() for a in _as_list(s["Action"])}:
            assert [_bucket_pattern(r) for r in _as_list(s["Resource"])] == ["arn:s3:::BUCKET"], s
            assert s.get("Condition") == {"StringLike": {"s3:prefix": "models/*"}}, s
    kms = [s for s in _role_statements(cfn, function)
           if any(a.lower().startswith("kms:") for a in _as_list(s["Action"]))]
    assert {a.lower() for s in kms for a in _as_list(s["Action"])} == {"kms:decrypt"}
    assert all("ModelKey" in json.dumps(s["Resource"]) for s in kms), kms
    ddb = [s for s in _role_statements(cfn, function)
           if any(a.lower().startswith("dynamodb:") for a in _as_list(s["Action"]))]
    assert ddb and all("RegistryTable" in json.dumps(s["Resource"]) for s in ddb), ddb


def test_read_scope_check_sees_a_bucket_wide_read(sam: dict[str, Any]) -> None:
    """Given a copy of the template whose preprocess function may read the whole bucket again,
    then the check above fails (and the same helper sees the batch function read its inputs)."""
    cfn = translate(sam)
    assert _may(cfn, "BatchFunction", "s3:getobject", "arn:s3:::BUCKET/batch/input/penguins/f.csv")
    broken = copy.deepcopy(sam)
    broken["Resources"]["PreprocessFunction"]["Properties"]["Policies"].append(
        {"S3ReadPolicy": {"BucketName": {"Ref": "ModelBucket"}}})
    with pytest.raises(AssertionError, match="datasets/"):
        test_serving_functions_read_model_bundles_only(translate(broken), "PreprocessFunction")


@pytest.mark.parametrize("reserved", [None, "0", "40"], ids=["default", "unreserved", "40"])
def test_batch_reserved_concurrency_caps_batch_and_leaves_predict_room(sam: dict[str, Any],
                                                                       reserved: str | None) -> None:
    """Given BatchReservedConcurrency (default, 0 or 40),
    then the batch function's concurrency is reserved and capped at the parameter (an upload burst cannot take
    the account's pool from predict; throttled S3 events are retried by Lambda for up to 6 hours), or left
    unreserved for 0 like the other <Name>ReservedConcurrency parameters; the default reserves a few
    environments, far below the 1000 of a default account pool."""
    declared = sam["Parameters"]["BatchReservedConcurrency"]
    assert declared["Type"] == "Number" and int(declared["MinValue"]) == 0 and declared.get("Description")
    assert 1 <= int(declared["Default"]) <= 50
    props = translate(sam, {} if reserved is None else {"BatchReservedConcurrency": reserved})[
        "Resources"]["BatchFunction"]["Properties"]
    if reserved == "0":
        assert "ReservedConcurrentExecutions" not in props
    else:
        assert props["ReservedConcurrentExecutions"] == {"Ref": "BatchReservedConcurrency"}


def _alarm_metrics(alarm: dict[str, Any]) -> list[tuple[dict[str, Any], str | None]]:
    """(metric, condition) of every metric an alarm watches: its own, or each MetricStat of its metric math
    (one wrapped in Fn::If [Condition, metric, AWS::NoValue] is watched only under that condition)."""
    props = alarm["Properties"]
    if "MetricName" in props:
        return [({"Namespace": props["Namespace"], "MetricName": props["MetricName"],
                  "Dimensions": props.get("Dimensions", [])}, None)]
    found = []
    for entry in props.get("Metrics", []):
        condition = None
        if "Fn::If" in entry:
            condition, entry, no = entry["Fn::If"]
            assert no == {"Ref": "AWS::NoValue"}, entry
        if "MetricStat" in entry:
            found.append((entry["MetricStat"]["Metric"], condition))
    return found


def _returned_expression(alarm: dict[str, Any]) -> str:
    returned = [m for m in alarm["Properties"].get("Metrics", []) if "Expression" in m and m.get("ReturnData", True)]
    assert len(returned) == 1, alarm
    return returned[0]["Expression"]


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_alarms_on_lambda_errors_and_throttles(metric: str) -> None:
    """Given the translated template with cloud training on (so the trigger function exists too),
    then for every Lambda function an alarm watches AWS/Lambda <metric> of that function (errors: an unhandled
    exception, a timeout or an out-of-memory kill, which the code cannot report itself; throttles: concurrency
    exhausted) -- the trigger's only under its TrainingEnabled condition -- summed by metric math over all of
    them, above 0, notifying AlarmTopic."""
    cfn = translate(load_sam_template(), TRAINING_ON)
    functions = resources_of_type(cfn, "AWS::Lambda::Function")
    assert "TrainTriggerFunction" in functions
    watched: dict[str, tuple[str | None, dict[str, Any]]] = {}
    for alarm in resources_of_type(cfn, "AWS::CloudWatch::Alarm").values():
        for m, condition in _alarm_metrics(alarm):
            if (m["Namespace"], m["MetricName"]) == ("AWS/Lambda", metric):
                dims = {d["Name"]: d["Value"] for d in m["Dimensions"]}
                watched[dims["FunctionName"]["Ref"]] = (condition, alarm["Properties"])
    assert set(watched) == set(functions), sorted(set(functions) ^ set(watched))
    for name, (condition, alarm) in watched.items():
        assert condition == functions[name].get("Condition"), name
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold"), name
        assert alarm["TreatMissingData"] == "notBreaching"
        if "Metrics" in alarm:
            assert _returned_expression({"Properties": alarm}) == "SUM(METRICS())", name
            assert len(alarm["Metrics"]) <= 10, "CloudWatch takes at most 10 metrics in one alarm's metric math"
            assert all(not m.get("ReturnData", True) for m in alarm["Metrics"] if "MetricStat" in m)


def test_api_stage_5xx_rate_raises_an_alarm(cfn: dict[str, Any]) -> None:
    """Given the API (named by MaasApi's Name) and its stage,
    then an alarm watches AWS/ApiGateway 5XXError of that API and stage -- every route, and also what no
    function reports itself: a Lambda crash (502) or timeout (504) -- as a share of requests (Average) above
    ErrorRateAlarmThreshold, notifying AlarmTopic."""
    api_name = cfn["Resources"]["MaasApi"]["Properties"]["Name"]
    alarms = [a["Properties"] for a in resources_of_type(cfn, "AWS::CloudWatch::Alarm").values()
              if a["Properties"].get("Namespace") == "AWS/ApiGateway"]
    assert [a["MetricName"] for a in alarms] == ["5XXError"], alarms
    alarm = alarms[0]
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {"ApiName": api_name, "Stage": {"Ref": "StageName"}}
    assert cfn["Resources"]["MaasApiStage"]["Properties"]["StageName"] == {"Ref": "StageName"}
    assert alarm["Statistic"] == "Average" and alarm["Threshold"] == {"Ref": "ErrorRateAlarmThreshold"}
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


TRAINING_ON = {"TrainingImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/maas-training:1",
               "TrainingSubnetIds": "subnet-1", "TrainingSecurityGroupIds": "sg-1"}


def _dashboard(cfn: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The dashboard's widgets, its ${...} substituted with placeholders (each once valid JSON), and its raw text."""
    body = next(iter(resources_of_type(cfn, "AWS::CloudWatch::Dashboard").values()))["Properties"]["DashboardBody"]
    raw, variables = body["Fn::Sub"]
    text = raw
    for name in variables:
        text = text.replace(f"${{{name}}}", "1")
    text = re.sub(r"\$\{[A-Za-z0-9:.]+\}", "x", text)
    return json.loads(text)["widgets"], raw


def test_dashboard_charts_lambda_errors_throttles_api_5xx_and_every_alarm() -> None:
    """Given the dashboard (cloud training on),
    then it charts AWS/Lambda Errors and Throttles of every function (the trigger through a conditional
    variable), AWS/ApiGateway 5XXError of the stage, and an alarm widget shows every alarm of the template."""
    cfn = translate(load_sam_template(), TRAINING_ON)
    widgets, raw = _dashboard(cfn)
    body = next(iter(resources_of_type(cfn, "AWS::CloudWatch::Dashboard").values()))["Properties"]["DashboardBody"]
    variables = body["Fn::Sub"][1]
    charted = json.dumps([w["properties"].get("metrics", []) for w in widgets])
    for metric in ("Errors", "Throttles"):
        assert f'["AWS/Lambda", "{metric}", "FunctionName"' in charted, metric
    for name, fn in resources_of_type(cfn, "AWS::Lambda::Function").items():
        if "Condition" in fn:
            holders = [v for v, value in variables.items() if isinstance(value, dict) and "Fn::If" in value
                       and value["Fn::If"][:2] == [fn["Condition"], {"Ref": name}]]
            assert holders and all(f"${{{h}}}" in raw for h in holders), name
        else:
            assert raw.count(f"${{{name}}}") >= 2, name  # errors and throttles
    assert "AWS/ApiGateway" in charted and "5XXError" in charted
    alarm_widgets = [w for w in widgets if w["type"] == "alarm"]
    assert len(alarm_widgets) == 1
    for alarm in resources_of_type(cfn, "AWS::CloudWatch::Alarm"):
        assert f"${{{alarm}.Arn}}" in raw, alarm


# $context variables of REST API access logs (API Gateway developer guide), to catch a typo in the format
ACCESS_LOG_VARIABLES = {
    "requestId", "extendedRequestId", "identity.sourceIp", "identity.caller", "identity.user", "identity.apiKeyId",
    "requestTime", "requestTimeEpoch", "httpMethod", "resourcePath", "path", "protocol", "status",
    "responseLength", "responseLatency", "integrationLatency", "integrationStatus", "integration.status",
    "integration.error", "integration.latency", "error.message", "error.messageString", "error.responseType",
    "stage", "domainName", "wafResponseCode",
}
REQUIRED_ACCESS_LOG_VARIABLES = {"requestId", "extendedRequestId", "identity.sourceIp", "identity.caller", "status",
                                 "path", "responseLength", "integrationLatency", "integrationStatus",
                                 "error.messageString"}


def test_api_stage_writes_json_access_logs_with_retention(cfn: dict[str, Any]) -> None:
    """Given the API's stage,
    then it writes access logs to a log group of the template kept LogRetentionDays days, one JSON object per
    request with the request ids, the caller (source IP, IAM caller, API key id), method, path, status,
    response length, latencies, the integration's status and the error message (the quoted messageString,
    so a message with quotes keeps the line valid JSON); every $context variable used exists."""
    setting = cfn["Resources"]["MaasApiStage"]["Properties"]["AccessLogSetting"]
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    group = cfn["Resources"]["ApiAccessLogGroup"]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    fmt = setting["Format"]
    used = set(re.findall(r"\$context\.([A-Za-z.]+[A-Za-z])", fmt))
    assert used <= ACCESS_LOG_VARIABLES, used - ACCESS_LOG_VARIABLES
    assert REQUIRED_ACCESS_LOG_VARIABLES <= used, REQUIRED_ACCESS_LOG_VARIABLES - used
    sample = re.sub(r"\$context\.error\.messageString", '"a \\\\"quoted\\\\" message"', fmt)
    sample = re.sub(r"\$context\.[A-Za-z.]+[A-Za-z]", "v", sample)
    record = json.loads(sample)
    assert record["requestId"] == "v" and "quoted" in json.dumps(record)
    assert "\n" not in fmt  # one line per request


@pytest.mark.parametrize("mode", ["Create", "Existing"])
def test_api_gateway_account_logging_role(sam: dict[str, Any], mode: str) -> None:
    """Given ApiGatewayAccountRole (REST API stages write access logs only once the region's API Gateway account
    settings name a CloudWatch role): Create (the default) makes that role and sets it (AWS::ApiGateway::Account,
    both retained when the stack is deleted, since other APIs of the account use the setting too) and the stage
    is created after it (through its log group: a DependsOn cannot name a conditional resource); Existing
    creates neither. Both lint clean."""
    assert sam["Parameters"]["ApiGatewayAccountRole"]["Default"] == "Create"
    cfn = translate(sam, {"ApiGatewayAccountRole": mode})
    accounts = resources_of_type(cfn, "AWS::ApiGateway::Account")
    assert list(accounts) == ["ApiGatewayAccount"]
    account = accounts["ApiGatewayAccount"]
    condition = account["Condition"]
    assert evaluate(condition, sam, parameter_values(sam, {"ApiGatewayAccountRole": mode})) == (mode == "Create")
    role_id = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    role = cfn["Resources"][role_id]
    assert role.get("Condition") == condition
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "apigateway.amazonaws.com"}
    assert role["Properties"]["ManagedPolicyArns"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"}]
    for res in (account, role):
        assert res["DeletionPolicy"] == "Retain" and res["UpdateReplacePolicy"] == "Retain"
    tags = cfn["Resources"]["ApiAccessLogGroup"]["Properties"]["Tags"]
    assert any(t["Value"] == {"Fn::If": [condition, {"Ref": "ApiGatewayAccount"}, t["Value"]["Fn::If"][2]]}
               for t in tags if isinstance(t["Value"], dict)), tags
    errors, warnings = errors_and_unaccepted_warnings(run_lint(cfn))
    assert not errors and not warnings, describe(errors + warnings)


def test_every_queue_denies_insecure_transport(cfn: dict[str, Any]) -> None:
    """Given every SQS queue of the template (the capture and the batch dead-letter queues),
    then a queue policy attached to it denies every principal any SQS action on it when aws:SecureTransport is
    false."""
    queues = resources_of_type(cfn, "AWS::SQS::Queue")
    assert {"CaptureDeadLetterQueue", "BatchDeadLetterQueue"} <= set(queues)
    for name in queues:
        denies = [s for p in resources_of_type(cfn, "AWS::SQS::QueuePolicy").values()
                  if {"Ref": name} in p["Properties"]["Queues"]
                  for s in p["Properties"]["PolicyDocument"]["Statement"]
                  if s["Effect"] == "Deny" and s["Principal"] in ("*", {"AWS": "*"})
                  and "sqs:*" in _as_list(s["Action"])
                  and {"Fn::GetAtt": [name, "Arn"]} in _as_list(s["Resource"])
                  and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}]
        assert denies, f"{name} accepts requests without TLS"


def test_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use(cfn: dict[str, Any]) -> None:
    """Given AlarmTopic,
    then it is encrypted with a customer-managed KMS key of the template (CloudWatch alarms cannot publish to a
    topic under the AWS-managed alias/aws/sns key, whose policy cannot name cloudwatch.amazonaws.com), with
    rotation on, administered by the account, and whose policy lets the CloudWatch service principal, for this
    account's alarms only, generate and decrypt data keys -- nothing more."""
    key_ref = cfn["Resources"]["AlarmTopic"]["Properties"]["KmsMasterKeyId"]
    key_id = key_ref["Ref"] if "Ref" in key_ref else key_ref["Fn::GetAtt"][0]
    key = cfn["Resources"][key_id]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [s for s in statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert len(cloudwatch) == 1
    assert cloudwatch[0]["Effect"] == "Allow"
    assert sorted(_as_list(cloudwatch[0]["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert cloudwatch[0]["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    account_root = {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    admins = [s for s in statements if s["Principal"] == account_root]
    assert len(admins) == 1 and len(statements) == 2


# limit parameter -> (environment variable, the functions that enforce it, or "Globals": every function)
LIMIT_PARAMETERS = {
    "MaxRecordsPerRequest": ("MAAS_MAX_RECORDS", "Globals"),
    "MaxFieldChars": ("MAAS_MAX_FIELD_CHARS", "Globals"),
    "ExplainMaxCells": ("MAAS_MAX_EXPLAIN_CELLS", ("PredictFunction",)),
    "BatchMaxDecompressedBytes": ("MAAS_BATCH_MAX_DECOMPRESSED_BYTES", ("BatchFunction",)),
    "BatchMaxRows": ("MAAS_BATCH_MAX_ROWS", ("BatchFunction",)),
}


@pytest.mark.parametrize("parameter", sorted(LIMIT_PARAMETERS))
def test_limit_parameters_reach_the_functions_that_enforce_them(sam: dict[str, Any], cfn: dict[str, Any],
                                                                parameter: str) -> None:
    """Given a hostile-input limit parameter,
    then it is a Number with a MinValue of at least 1, a description, and the same default as its Settings
    field, and it is passed as its MAAS_* variable to the functions that enforce it (Globals: every function)."""
    from maas_core.settings import Settings

    variable, where = LIMIT_PARAMETERS[parameter]
    declared = sam["Parameters"][parameter]
    assert declared["Type"] == "Number" and int(declared["MinValue"]) >= 1 and declared.get("Description")
    field = Settings.model_fields[variable.removeprefix("MAAS_").lower()]
    assert int(declared["Default"]) == field.default
    functions = resources_of_type(cfn, "AWS::Lambda::Function")
    if where == "Globals":
        assert sam["Globals"]["Function"]["Environment"]["Variables"][variable] == {"Ref": parameter}
        where = tuple(functions)
    for function in where:
        assert functions[function]["Properties"]["Environment"]["Variables"][variable] == {"Ref": parameter}, function


# Settings fields the template leaves at the code's default, with why
CODE_DEFAULT_FIELDS = {
    "default_alias": "the alias a request without one resolves (prod), a convention of the API",
    "alias_ttl_seconds": "cache tuning",
    "model_cache_size": "cache tuning, bounded by MemorySize",
    "metrics_window": "the scheduled publication's window, matched by the alarms' periods",
    "metrics_max_captures": "metrics tuning",
    "metrics_min_samples": "metrics tuning",
    "deadline_margin_ms": "time kept back of API Gateway's 29 s for the answer, a property of the code",
    "ort_threads": "onnxruntime follows the vCPUs MemorySize gives (os.cpu_count())",
    "batch_chunk_rows": "batch tuning: rows per model call, the same on both batch paths",
    "batch_shard_bytes": "batch tuning: the shards of a large file (BatchMaxConcurrency bounds their parallelism)",
    "batch_shard_rows": "batch tuning: a shard's rows, bounded by Lambda's 15 minutes at the slowest model",
}


def _template_maas_variables(cfn: dict[str, Any]) -> set[str]:
    names = {n for fn in resources_of_type(cfn, "AWS::Lambda::Function").values()
             for n in fn["Properties"].get("Environment", {}).get("Variables", {})}
    for jd in resources_of_type(cfn, "AWS::Batch::JobDefinition").values():
        names |= {e["Name"] for e in jd["Properties"]["ContainerProperties"].get("Environment", [])}
    return {n for n in names if n.startswith("MAAS_")}


def test_every_maas_variable_the_template_sets_is_read_and_every_setting_is_set() -> None:
    """Given every MAAS_* variable the translated template sets (functions and the training job, training on),
    then each is a field of Settings / TrainingSettings, so none is a typo the code never reads; and every
    Settings field is set by the template, or listed in CODE_DEFAULT_FIELDS with why it keeps the code's
    default (a new limit cannot be forgotten in the template)."""
    from maas_core.settings import ENV_PREFIX, Settings
    from maas_core.training_jobs import TrainingSettings

    cfn = translate(load_sam_template(), TRAINING_ON)
    variables = _template_maas_variables(cfn)
    fields = {f"{ENV_PREFIX}{name.upper()}" for name in TrainingSettings.model_fields}
    unread = variables - fields
    assert not unread, f"the template sets variables no Settings field reads: {sorted(unread)}"
    unset = {name for name in Settings.model_fields
             if f"{ENV_PREFIX}{name.upper()}" not in variables and name not in CODE_DEFAULT_FIELDS}
    assert not unset, ("Settings fields the template does not set (set them, or list them in CODE_DEFAULT_FIELDS): "
                       f"{sorted(unset)}")
    assert not set(CODE_DEFAULT_FIELDS) - set(Settings.model_fields), "CODE_DEFAULT_FIELDS names a field that is gone"


# --- canary guardrails and tracing ---------------------------------------------------------------


def test_canary_alarm_changes_reach_the_guardrail_function_and_schedules_run_as_a_narrow_role(
        cfn: dict[str, Any]) -> None:
    """Given the translated template,
    then CanaryAlarmRule matches CloudWatch alarm state changes to ALARM of alarms named with the canary prefix
    (the prefix the admin and guardrail functions are given) and targets the guardrail function, which events
    may invoke from that rule only; SchedulerRole is assumable by EventBridge Scheduler of this account only and
    may only invoke the guardrail function; the admin function may pass that role to Scheduler and nothing else,
    and both functions may write (put, delete) only alarms under the prefix and schedules named canary-*."""
    res = cfn["Resources"]
    rule = res["CanaryAlarmRule"]["Properties"]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.cloudwatch"] and pattern["detail-type"] == ["CloudWatch Alarm State Change"]
    assert pattern["detail"]["alarmName"] == [{"prefix": {"Fn::Sub": "${AWS::StackName}-canary/"}}]
    assert pattern["detail"]["state"] == {"value": ["ALARM"]}
    assert [t["Arn"] for t in rule["Targets"]] == [{"Fn::GetAtt": ["GuardrailFunction", "Arn"]}]
    permissions = [p["Properties"] for p in resources_of_type(cfn, "AWS::Lambda::Permission").values()
                   if is_ref_to(p["Properties"]["FunctionName"], "GuardrailFunction")]
    assert [(p["Principal"], p["SourceArn"]) for p in permissions] == [
        ("events.amazonaws.com", {"Fn::GetAtt": ["CanaryAlarmRule", "Arn"]})]
    for fn in ("AdminFunction", "GuardrailFunction"):
        env = res[fn]["Properties"]["Environment"]["Variables"]
        assert env["MAAS_CANARY_ALARM_PREFIX"] == {"Fn::Sub": "${AWS::StackName}-canary"}, fn

    role = res["SchedulerRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    [grant] = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert grant["Action"] == "lambda:InvokeFunction"
    assert grant["Resource"] == {"Fn::GetAtt": ["GuardrailFunction", "Arn"]}

    alarm_arn = "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:${AWS::StackName}-canary/*"
    schedule_arn = "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/default/canary-*"
    for fn in ("AdminFunction", "GuardrailFunction"):
        statements = [s for s in _statements_of_role(cfn, res[fn]["Properties"]["Role"]["Fn::GetAtt"][0])
                      if s["Effect"] == "Allow"]
        for s in statements:
            actions = {a.lower() for a in _as_list(s["Action"])}
            if actions & {"cloudwatch:putmetricalarm", "cloudwatch:deletealarms"}:
                assert s["Resource"] == {"Fn::Sub": alarm_arn}, (fn, s)
            if actions & {"scheduler:createschedule", "scheduler:deleteschedule"}:
                assert s["Resource"] == {"Fn::Sub": schedule_arn}, (fn, s)
            if "iam:passrole" in actions:
                assert fn == "AdminFunction" and s["Resource"] == {"Fn::GetAtt": ["SchedulerRole", "Arn"]}
                assert s["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}
            if s["Resource"] == "*":
                assert actions <= {"cloudwatch:describealarms", "scheduler:listschedules"}, (fn, s)


@pytest.mark.parametrize(("mode", "api_tracing"), [("Active", True), ("PassThrough", False)])
def test_tracing_parameter_sets_every_function_and_the_api_stage(sam: dict[str, Any], mode: str,
                                                                 api_tracing: bool) -> None:
    """Given Tracing=Active or PassThrough (the default),
    then every function's TracingConfig mode is that parameter and the API stage traces only when Active; and no
    code of the functions imports the X-Ray SDK (Lambda's own tracing needs none on the cold path)."""
    assert sam["Parameters"]["Tracing"]["Default"] == "PassThrough"
    cfn = translate(sam, {"Tracing": mode})
    for name, fn in resources_of_type(cfn, "AWS::Lambda::Function").items():
        assert fn["Properties"]["TracingConfig"]["Mode"] == {"Ref": "Tracing"}, name
    [stage] = resources_of_type(cfn, "AWS::ApiGateway::Stage").values()
    assert stage["Properties"]["TracingEnabled"] is api_tracing  # the !If, as AWS::LanguageExtensions resolves it
    root = TEMPLATE.parent
    sources = [*root.glob("functions/*/*.py"), *root.glob("shared/maas_core/**/*.py")]
    assert sources and not [p for p in sources if re.search(r"^\s*(from|import) aws_xray_sdk|Tracer\(",
                                                            p.read_text(encoding="utf-8"), re.M)]
