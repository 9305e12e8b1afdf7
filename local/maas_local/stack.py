"""A local stand-in for the deployed stack: a moto server with the template's buckets, tables and queues.

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
import socket
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from maas_core.aws_target import local_stack_env
from maas_local.env import EnvPatch
from maas_local.template import (
    LOCAL_REGION,
    NAMED_RESOURCE_TYPES,
    QUEUE_RESOURCE_TYPE,
    default_template_path,
    load_template,
    local_resource_names,
    resolve_value,
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
    """ThreadedMotoServer whose start() reports a failed bind instead of waiting forever."""

    _start_error: BaseException | None = None

    def _server_entry(self) -> None:
        try:
            super()._server_entry()
        except BaseException as exc:  # noqa: BLE001 - handed to start()
            self._start_error = exc
            self._server_ready_event.set()

    def start(self) -> None:
        super().start()
        if self._start_error is not None:
            raise self._start_error


class LocalStack:
    """Context manager: moto server + the template's S3 buckets, DynamoDB tables and SQS queues."""

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

    def __enter__(self) -> "LocalStack":
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> "LocalStack":
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
        """Create every S3 bucket, DynamoDB table and SQS queue of the template that has a local name."""
        for logical_id, res in (self.template.get("Resources") or {}).items():
            if isinstance(res, dict) and res.get("Type") == QUEUE_RESOURCE_TYPE:
                self.create_queue(logical_id, res)
            if not isinstance(res, dict) or res.get("Type") not in NAMED_RESOURCE_TYPES:
                continue
            name = self.names.get(logical_id)
            if name is None:
                log.warning("resource %s has no local name; not created", logical_id)
                continue
            props = res.get("Properties") or {}
            if res["Type"] == "AWS::S3::Bucket":
                self.create_bucket(name, versioned=(props.get("VersioningConfiguration") or {}).get("Status") == "Enabled")
            else:
                self.create_table(name, table_key_schema(res))

    def create_bucket(self, name: str, versioned: bool = False) -> None:
        s3 = self.client("s3")
        s3.create_bucket(Bucket=name)  # us-east-1: no LocationConstraint
        s3.get_waiter("bucket_exists").wait(Bucket=name)
        if versioned:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})

    def create_queue(self, logical_id: str, resource: Mapping[str, Any]) -> None:
        """Create a queue under its local name, with the template's visibility timeout, retention and
        redrive policy (moto moves a message to the dead-letter queue after maxReceiveCount receives).
        A dead-letter queue is created first."""
        queue = self.names.get(f"{logical_id}.QueueName")
        if queue is None:
            log.warning("queue %s has no local name; not created", logical_id)
            return
        sqs = self.client("sqs")
        props = resource.get("Properties") or {}
        attributes: dict[str, str] = {}
        for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds"):
            if key in props:
                attributes[key] = str(resolve_value(props[key], self.template, self.names, where=f"{logical_id} {key}"))
        redrive = props.get("RedrivePolicy")
        if redrive:
            target = redrive.get("deadLetterTargetArn") or {}
            dlq = target.get("Fn::GetAtt", [None])[0] if isinstance(target, dict) else None
            if dlq and dlq != logical_id:
                self.create_queue(dlq, (self.template.get("Resources") or {}).get(dlq) or {})
            resolved = resolve_value(redrive, self.template, self.names, where=f"{logical_id} RedrivePolicy")
            attributes["RedrivePolicy"] = json.dumps(resolved)
        sqs.create_queue(QueueName=queue, Attributes=attributes)  # idempotent for the same attributes

    def create_table(self, name: str, key_schema: Mapping[str, Any]) -> None:
        ddb = self.client("dynamodb")
        ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **key_schema)
        ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


def table_key_schema(resource: Mapping[str, Any]) -> dict[str, Any]:
    """AttributeDefinitions / KeySchema / indexes of a template table, as create_table arguments."""
    props = resource.get("Properties") or {}
    if resource.get("Type") == "AWS::Serverless::SimpleTable":
        pk = props.get("PrimaryKey") or {"Name": "id", "Type": "String"}
        short = {"String": "S", "Number": "N", "Binary": "B"}[pk.get("Type", "String")]
        return {"AttributeDefinitions": [{"AttributeName": pk["Name"], "AttributeType": short}],
                "KeySchema": [{"AttributeName": pk["Name"], "KeyType": "HASH"}]}
    out: dict[str, Any] = {
        "AttributeDefinitions": [dict(a) for a in props["AttributeDefinitions"]],
        "KeySchema": [dict(k) for k in props["KeySchema"]],
    }
    for index_key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        indexes = props.get(index_key)
        if indexes:
            out[index_key] = [
                {k: v for k, v in idx.items() if k in {"IndexName", "KeySchema", "Projection"}} for idx in indexes
            ]
    return out
