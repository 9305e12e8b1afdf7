"""Which bucket and table the CLI works on: --bucket/--table, else the stack's outputs (--stack), else
$MAAS_MODEL_BUCKET / $MAAS_REGISTRY_TABLE, else the defaults. boto3 itself honours AWS_PROFILE,
AWS_DEFAULT_REGION and AWS_ENDPOINT_URL, so a local moto server and a real account need no special code."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from maas_core import aws
from maas_core.errors import MaasError, NotFoundError
from maas_core.guardrails import Guardrails
from maas_core.registry import Registry
from maas_core.settings import get_settings
from maas_core.store import BundleStore

DEFAULT_BUCKET = "maas-models"
DEFAULT_TABLE = "maas-registry"
BUCKET_OUTPUT = "ModelBucketName"
TABLE_OUTPUT = "RegistryTableName"
# the stack outputs canary guardrails need (maas_core.guardrails), as the settings they fill in
GUARDRAIL_OUTPUTS = {"CanaryAlarmPrefix": "canary_alarm_prefix", "GuardrailFunctionArn": "guardrail_function_arn",
                     "SchedulerRoleArn": "scheduler_role_arn", "AlarmTopicArn": "canary_alarm_topic_arn"}


@dataclass
class Context:
    bucket: str
    table: str
    as_json: bool = False
    guardrail_settings: dict[str, str] = field(default_factory=dict)
    _registry: Registry | None = field(default=None, repr=False)
    _store: BundleStore | None = field(default=None, repr=False)

    @property
    def registry(self) -> Registry:
        self._registry = self._registry or Registry(self.table)
        return self._registry

    @property
    def store(self) -> BundleStore:
        self._store = self._store or BundleStore(self.bucket)
        return self._store

    @property
    def guardrails(self) -> Guardrails:
        """Alarms and schedules of canaries: MAAS_* settings, the stack's outputs (--stack) taking precedence."""
        return Guardrails(get_settings().model_copy(update=self.guardrail_settings))

    @property
    def s3(self) -> Any:
        return aws.client("s3")


def resolve(bucket: str | None, table: str | None, stack: str | None, as_json: bool = False) -> Context:
    outputs: dict[str, str] = {}
    if stack and not (bucket and table):
        outputs = stack_outputs(stack)
        missing = [k for k in (BUCKET_OUTPUT, TABLE_OUTPUT) if k not in outputs]
        if missing:
            raise MaasError(f"CloudFormation stack {stack!r} has no output {' or '.join(missing)}",
                            [{"stack": stack, "outputs": sorted(outputs)}])
        bucket, table = bucket or outputs[BUCKET_OUTPUT], table or outputs[TABLE_OUTPUT]
    return Context(
        bucket=bucket or os.environ.get("MAAS_MODEL_BUCKET") or DEFAULT_BUCKET,
        table=table or os.environ.get("MAAS_REGISTRY_TABLE") or DEFAULT_TABLE,
        as_json=as_json,
        guardrail_settings={setting: outputs[key] for key, setting in GUARDRAIL_OUTPUTS.items() if outputs.get(key)},
    )


def stack_outputs(stack: str) -> dict[str, str]:
    try:
        stacks = aws.client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc.response.get("Error", {}).get("Message", "")):
            raise NotFoundError(f"CloudFormation stack {stack!r} was not found (deployed in another region "
                                "or account? check AWS_PROFILE / AWS_DEFAULT_REGION)") from None
        raise MaasError(f"cannot read CloudFormation stack {stack!r}: {exc}") from None
    except BotoCoreError as exc:
        raise MaasError(f"cannot read CloudFormation stack {stack!r}: {exc}") from None
    if not stacks:
        raise NotFoundError(f"CloudFormation stack {stack!r} was not found")
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
