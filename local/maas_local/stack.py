"""A local stand-in for the deployed stack: a moto server with the template's buckets, tables and queues,
created by moto's own CloudFormation from their definitions in template.yaml (see docs/local-stack.md).

    with LocalStack() as stack:          # moto on 127.0.0.1:<free port>
        stack.endpoint_url               # http://127.0.0.1:54321 (also in os.environ["AWS_ENDPOINT_URL"])
        stack.names["ModelBucket"]       # maas-models

While the stack is open, os.environ points boto3 at the moto server (AWS_ENDPOINT_URL, a fixed
region, fake credentials: nothing can reach real AWS) and maas_core's cached clients are reset; on
exit the server stops and the environment is restored. Dev-only code: never shipped to Lambda.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import socket
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

from maas_core.aws_target import FAKE_CREDENTIALS, local_stack_env
from maas_local.env import EnvPatch
from maas_local.post_policy import PostPolicyCheck
from maas_local.template import (
    FUNCTION_TYPES,
    LOCAL_REGION,
    LOCAL_STACK_NAME,
    NAMED_RESOURCE_TYPES,
    QUEUE_RESOURCE_TYPE,
    default_template_path,
    load_template,
    local_resource_names,
)

# stdlib logging, not Powertools: the local stack's messages are a developer's console output, in the
# "maas_local" logger tree that configure_cli_logging (maas_local.gateway) prints for people; and moto's
# server logs through werkzeug's stdlib logger, which start() quiets
log = logging.getLogger(__name__)


class PortInUseError(OSError):
    def __init__(self, host: str, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"{host}:{port} is already in use")
        self.host, self.port = host, port


def check_port_free(host: str, port: int) -> None:
    """Raise PortInUseError if something already listens on host:port (port 0 is always free)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(host, port) from exc
            raise


class _MotoServer(ThreadedMotoServer):
    """ThreadedMotoServer whose start() reports a failed bind instead of waiting forever, with S3's checks of
    presigned POST uploads in front of moto (maas_local.post_policy: moto skips them)."""

    _start_error: BaseException | None = None

    def _server_entry(self) -> None:
        try:
            app = PostPolicyCheck(DomainDispatcherApplication(create_backend_app),
                                  {FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]: FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]})
            self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever()
        except BaseException as exc:
            self._start_error = exc
            self._server_ready_event.set()

    def start(self) -> None:
        super().start()
        if self._start_error is not None:
            raise self._start_error


class LocalStack:
    """Context manager: moto server + the template's S3 buckets, DynamoDB tables and SQS queues (create_resources)."""

    def __init__(
        self,
        template_path: str | Path | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        names: Mapping[str, str] | None = None,
        verbose: bool = False,
    ) -> None:
        self.template_path = Path(template_path) if template_path else default_template_path()
        self.template = load_template(self.template_path)
        self.host = host
        self.port = port
        self.names: dict[str, str] = dict(names) if names is not None else local_resource_names(self.template)
        self.endpoint_url = ""
        self.verbose = verbose  # False: moto's per-request access log (werkzeug, INFO) is silenced
        self._server: _MotoServer | None = None
        self._werkzeug_level: int | None = None
        self._env = EnvPatch()

    # --- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> LocalStack:
        check_port_free(self.host, self.port)
        if not self.verbose:
            werkzeug_log = logging.getLogger("werkzeug")
            self._werkzeug_level = werkzeug_log.level
            werkzeug_log.setLevel(logging.WARNING)
        server = _MotoServer(ip_address=self.host, port=self.port, verbose=False)
        server.start()
        self._server = server
        host, port = server.get_host_and_port()
        self.port = port
        self.endpoint_url = f"http://{host}:{port}"
        try:
            self._apply_env()
            self.reset()
            self.create_resources()
        except BaseException:
            self.stop()
            raise
        log.info("local stack ready at %s: %s", self.endpoint_url, self.names)
        return self

    def stop(self) -> None:
        if self._server is not None:
            try:
                self._server.stop()
            finally:
                self._server = None
        if self._werkzeug_level is not None:
            logging.getLogger("werkzeug").setLevel(self._werkzeug_level)
            self._werkzeug_level = None
        self._restore_env()

    def _apply_env(self) -> None:
        self._env.apply({
            **local_stack_env(self.endpoint_url),
            # no AWS Batch here: the datasets/ trigger trains in-process (maas_core.training_jobs)
            "MAAS_TRAINING_RUNNER": "inprocess",
        })

    def _restore_env(self) -> None:
        self._env.restore()

    # --- resources ----------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        return boto3.session.Session().client(service, endpoint_url=self.endpoint_url, region_name=LOCAL_REGION)

    def reset(self) -> None:
        """Empty every moto backend. moto keeps its state per process (not per server), so without
        this a second stack in the same process would find the first one's buckets and tables."""
        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()

    def create_resources(self) -> None:
        """Create the template's S3 buckets, DynamoDB tables and SQS queues that have a local name, under that
        name, as one stack of moto's CloudFormation (so every property moto models is the template's own: key
        schemas and indexes, queue attributes and redrive policies, bucket encryption with its KMS key); then
        what moto's CloudFormation leaves out: a bucket's VersioningConfiguration."""
        body = local_resources_template(self.template, self.names)
        if not body["Resources"]:
            return
        cloudformation = self.client("cloudformation")
        cloudformation.create_stack(StackName=LOCAL_STACK_NAME, TemplateBody=json.dumps(body))
        stack = cloudformation.describe_stacks(StackName=LOCAL_STACK_NAME)["Stacks"][0]
        if stack["StackStatus"] != "CREATE_COMPLETE":
            raise RuntimeError(f"moto could not create the local resources: {stack['StackStatus']} "
                               f"{stack.get('StackStatusReason', '')}".strip())
        s3 = self.client("s3")
        for res in body["Resources"].values():
            props = res.get("Properties") or {}
            versioning = (props.get("VersioningConfiguration") or {}).get("Status")
            if res["Type"] == "AWS::S3::Bucket" and versioning == "Enabled":
                s3.put_bucket_versioning(Bucket=props["BucketName"], VersioningConfiguration={"Status": "Enabled"})


# the property that names a resource: the local stack sets it to the resource's local name
NAME_PROPERTIES = {"AWS::S3::Bucket": "BucketName", "AWS::DynamoDB::Table": "TableName", "AWS::SQS::Queue": "QueueName",
                   "AWS::Events::Rule": "Name", "AWS::IAM::Role": "RoleName", "AWS::SNS::Topic": "TopicName"}
# created whenever the template has them: EventBridge rules (moto's EventBridge keeps their patterns and targets)
ALWAYS_CREATED_TYPES = {"AWS::Events::Rule"}
# created when a function's environment names them (e.g. the role promotion schedules run as, the alarm topic)
NAMED_BY_FUNCTIONS_TYPES = {"AWS::IAM::Role", "AWS::SNS::Topic"}


def local_resources_template(template: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """The CloudFormation template of what a local stack creates: every S3 bucket, DynamoDB table, SQS queue and
    EventBridge rule of `template` that has a local name in `names` (its name property set to it; a SimpleTable
    as the table SAM makes of it), the roles and topics the functions' environments name, with the resources they
    reference (e.g. a bucket's KMS key, a queue's dead-letter queue) and the template's parameters and conditions.
    Functions are not created (the local gateway runs them in-process): a reference to one is its local name."""
    resources = template.get("Resources") or {}
    named_by_functions = _references([(res.get("Properties") or {}).get("Environment") for res in resources.values()
                                      if isinstance(res, dict) and res.get("Type") in FUNCTION_TYPES]
                                     + [((template.get("Globals") or {}).get("Function") or {}).get("Environment")],
                                     resources)
    chosen: dict[str, Any] = {}
    for logical_id, res in resources.items():
        kind = res.get("Type") if isinstance(res, dict) else None
        if not (kind in NAMED_RESOURCE_TYPES or kind == QUEUE_RESOURCE_TYPE or kind in ALWAYS_CREATED_TYPES
                or (kind in NAMED_BY_FUNCTIONS_TYPES and logical_id in named_by_functions)):
            continue
        name = names.get(f"{logical_id}.QueueName" if kind == QUEUE_RESOURCE_TYPE
                         else f"{logical_id}.Name" if kind == "AWS::SNS::Topic" else logical_id)
        if name is None:
            log.warning("resource %s has no local name; not created", logical_id)
            continue
        res = _simple_table_as_table(res) if kind == "AWS::Serverless::SimpleTable" else res
        props = {**_functions_by_name(res.get("Properties") or {}, resources, names),
                 NAME_PROPERTIES[res["Type"]]: name}
        # DependsOn is the deployed stack's ordering (often on resources left out here); moto orders by reference
        chosen[logical_id] = {**{k: v for k, v in res.items() if k != "DependsOn"}, "Properties": props}
    pending = [*chosen.values()]
    while pending:  # what the chosen resources reference, and what that references, under their own names
        for ref in sorted(_references(pending.pop(), resources) - chosen.keys()):
            chosen[ref] = _functions_by_name({k: v for k, v in resources[ref].items() if k != "DependsOn"},
                                             resources, names)
            pending.append(chosen[ref])
    return {"AWSTemplateFormatVersion": "2010-09-09", "Parameters": template.get("Parameters") or {},
            "Conditions": template.get("Conditions") or {}, "Resources": chosen}


def _functions_by_name(value: Any, resources: Mapping[str, Any], names: Mapping[str, str]) -> Any:
    """`value` with each Ref / GetAtt of a function replaced by the function's local name / ARN."""
    def is_function(logical_id: Any) -> bool:
        res = resources.get(logical_id) if isinstance(logical_id, str) else None
        return isinstance(res, dict) and res.get("Type") in FUNCTION_TYPES

    if isinstance(value, dict):
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref" and is_function(arg):
                return names[arg]
            if key == "Fn::GetAtt":
                dotted = ".".join(arg) if isinstance(arg, list) else str(arg)
                if is_function(dotted.split(".", 1)[0]):
                    return names[dotted]
        return {k: _functions_by_name(v, resources, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_functions_by_name(v, resources, names) for v in value]
    return value


_SUB_NAME = re.compile(r"\$\{([^}!.][^}.]*)")  # the resource (or parameter) a `${Name}` or `${Name.Attr}` names


def _references(value: Any, resources: Mapping[str, Any]) -> set[str]:
    """The logical ids of the template's resources that `value` names by Ref, Fn::GetAtt or Fn::Sub."""
    found: set[str] = set()
    if isinstance(value, dict):
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0])
            elif key == "Fn::Sub":
                found.update(_SUB_NAME.findall(arg if isinstance(arg, str) else arg[0]))
        for item in value.values():
            found |= _references(item, resources)
    elif isinstance(value, list):
        for item in value:
            found |= _references(item, resources)
    return found & set(resources)


def _simple_table_as_table(resource: Mapping[str, Any]) -> dict[str, Any]:
    """An AWS::Serverless::SimpleTable as the AWS::DynamoDB::Table SAM makes of it (moto's CloudFormation does
    not run the SAM transform): its PrimaryKey (default `id`, a string) as the hash key, billed per request
    unless it gives a ProvisionedThroughput."""
    props = resource.get("Properties") or {}
    pk = props.get("PrimaryKey") or {"Name": "id", "Type": "String"}
    short = {"String": "S", "Number": "N", "Binary": "B"}[pk.get("Type", "String")]
    table: dict[str, Any] = {
        "AttributeDefinitions": [{"AttributeName": pk["Name"], "AttributeType": short}],
        "KeySchema": [{"AttributeName": pk["Name"], "KeyType": "HASH"}],
    }
    if "ProvisionedThroughput" in props:
        table["ProvisionedThroughput"] = props["ProvisionedThroughput"]
    else:
        table["BillingMode"] = "PAY_PER_REQUEST"
    if "SSESpecification" in props:
        table["SSESpecification"] = props["SSESpecification"]
    return {**resource, "Type": "AWS::DynamoDB::Table", "Properties": table}
