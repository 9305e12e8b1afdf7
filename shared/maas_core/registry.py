"""The model registry on DynamoDB: which versions exist and which version each alias names.

One table, key (pk, sk):
  pk=MODEL#{name}  sk=META               name, latest_version (atomic counter), created_at
  pk=MODEL#{name}  sk=VERSION#{0000000n}  one published version (summary of its manifest)
  pk=MODEL#{name}  sk=ALIAS#{alias}       the version an alias points at, and a revision counter
Versions are written once (conditional put); alias moves are conditional writes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from maas_core import aws
from maas_core.errors import BadRequestError, ConflictError, NotFoundError
from maas_core.manifest import Manifest

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ser = TypeSerializer()
_de = TypeDeserializer()


def check_name(kind: str, value: str) -> str:
    """Model names, versions and aliases become S3 keys and table keys: keep them plain."""
    if not NAME_PATTERN.match(value or ""):
        raise BadRequestError(
            f"invalid {kind} {value!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            [{"field": kind, "value": value}],
        )
    return value


def _pk(name: str) -> str:
    return f"MODEL#{name}"


def _version_sk(version: str) -> str:
    # zero-padded so versions sort numerically in the table
    return f"VERSION#{int(version):08d}" if version.isdigit() else f"VERSION#{version}"


def _to_item(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(_dynamo_safe(v)) for k, v in data.items()}


def _dynamo_safe(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None  # DynamoDB has no NaN/inf
    if isinstance(value, dict):
        return {k: _dynamo_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dynamo_safe(v) for v in value]
    return value


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_de.deserialize(v)) for k, v in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass(frozen=True)
class AliasTarget:
    alias: str
    version: str
    revision: int


class Registry:
    def __init__(self, table: str, dynamodb: Any | None = None) -> None:
        self.table = table
        self._ddb = dynamodb

    @property
    def ddb(self) -> Any:
        return self._ddb or aws.client("dynamodb")

    # --- writes (training job, admin) ---------------------------------------------------------

    def next_version(self, name: str) -> str:
        """Reserve the next version number of a model (atomic counter; creates the model on first use)."""
        check_name("model", name)
        now = _now()
        resp = self._call(
            self.ddb.update_item,
            TableName=self.table,
            Key=_to_item({"pk": _pk(name), "sk": "META"}),
            UpdateExpression="ADD latest_version :one SET #n = :name, updated_at = :now, created_at = if_not_exists(created_at, :now)",
            ExpressionAttributeNames={"#n": "name"},
            ExpressionAttributeValues=_to_item({":one": 1, ":name": name, ":now": now}),
            ReturnValues="UPDATED_NEW",
        )
        return str(int(resp["Attributes"]["latest_version"]["N"]))

    def register(self, manifest: Manifest) -> None:
        """Record a published version. A version is written once and never changes."""
        item = {"pk": _pk(manifest.name), "sk": _version_sk(manifest.version), "kind": "version", **manifest.summary()}
        try:
            self._call(
                self.ddb.put_item,
                TableName=self.table,
                Item=_to_item(item),
                ConditionExpression="attribute_not_exists(sk)",
            )
        except ConflictError as exc:
            raise ConflictError(f"model {manifest.name!r} version {manifest.version!r} is already registered") from exc

    def set_alias(self, name: str, alias: str, version: str, expected_version: str | None = None) -> AliasTarget:
        """Point `alias` at `version`. With `expected_version`, only if the alias still points there."""
        check_name("alias", alias)
        self.get_version(name, version)  # 404 for a version that does not exist
        condition = "attribute_not_exists(sk) OR version = :expected" if expected_version else None
        values: dict[str, Any] = {":one": 1, ":v": version, ":alias": alias, ":now": _now()}
        if expected_version:
            values[":expected"] = expected_version
        kwargs: dict[str, Any] = {}
        if condition:
            kwargs["ConditionExpression"] = condition
        try:
            resp = self._call(
                self.ddb.update_item,
                TableName=self.table,
                Key=_to_item({"pk": _pk(name), "sk": f"ALIAS#{alias}"}),
                UpdateExpression="SET version = :v, alias = :alias, kind = :kind, updated_at = :now ADD revision :one",
                ExpressionAttributeValues=_to_item({**values, ":kind": "alias"}),
                ReturnValues="ALL_NEW",
                **kwargs,
            )
        except ConflictError as exc:
            raise ConflictError(
                f"alias {alias!r} of model {name!r} no longer points at version {expected_version!r}; reload and retry"
            ) from exc
        attrs = _from_item(resp["Attributes"])
        return AliasTarget(alias=alias, version=attrs["version"], revision=attrs["revision"])

    # --- reads (serving) ----------------------------------------------------------------------

    def get_version(self, name: str, version: str) -> dict[str, Any]:
        check_name("version", version)
        item = self._get(name, _version_sk(version))
        if item is None:
            self._require_model(name)
            raise NotFoundError(f"model {name!r} has no version {version!r}", [{"field": "version", "value": version}])
        return item

    def resolve_alias(self, name: str, alias: str) -> AliasTarget:
        check_name("alias", alias)
        item = self._get(name, f"ALIAS#{alias}")
        if item is None:
            self._require_model(name)
            raise NotFoundError(f"model {name!r} has no alias {alias!r}", [{"field": "alias", "value": alias}])
        return AliasTarget(alias=alias, version=item["version"], revision=item["revision"])

    def describe(self, name: str) -> dict[str, Any]:
        """Versions (newest first) and aliases of one model."""
        items = self._query(name)
        if not any(i["sk"] == "META" for i in items):
            raise NotFoundError(f"model {name!r} was not found", [{"field": "model", "value": name}])
        versions = [_public(i) for i in items if i["sk"].startswith("VERSION#")]
        versions.sort(key=lambda v: (len(v["version"]), v["version"]), reverse=True)
        aliases = {i["alias"]: {"version": i["version"], "revision": i["revision"], "updated_at": i["updated_at"]}
                   for i in items if i["sk"].startswith("ALIAS#")}
        return {"name": name, "versions": versions, "aliases": aliases}

    def list_models(self) -> list[dict[str, Any]]:
        """Every model with its aliases. A scan: the registry holds few items per model."""
        by_model: dict[str, dict[str, Any]] = {}
        kwargs: dict[str, Any] = {"TableName": self.table}
        while True:
            resp = self._call(self.ddb.scan, **kwargs)
            for raw in resp.get("Items", []):
                item = _from_item(raw)
                name = item["pk"].removeprefix("MODEL#")
                entry = by_model.setdefault(name, {"name": name, "latest_version": None, "versions": 0, "aliases": {}})
                if item["sk"] == "META":
                    entry["latest_version"] = str(item.get("latest_version"))
                elif item["sk"].startswith("VERSION#"):
                    entry["versions"] += 1
                elif item["sk"].startswith("ALIAS#"):
                    entry["aliases"][item["alias"]] = item["version"]
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return sorted(by_model.values(), key=lambda m: m["name"])

    # --- plumbing -----------------------------------------------------------------------------

    def _require_model(self, name: str) -> None:
        if self._get(name, "META") is None:
            raise NotFoundError(f"model {name!r} was not found", [{"field": "model", "value": name}])

    def _get(self, name: str, sk: str) -> dict[str, Any] | None:
        check_name("model", name)
        resp = self._call(self.ddb.get_item, TableName=self.table, Key=_to_item({"pk": _pk(name), "sk": sk}))
        return _from_item(resp["Item"]) if "Item" in resp else None

    def _query(self, name: str) -> list[dict[str, Any]]:
        check_name("model", name)
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": _to_item({":pk": _pk(name)}),
        }
        while True:
            resp = self._call(self.ddb.query, **kwargs)
            items.extend(_from_item(i) for i in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                return items
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    @staticmethod
    def _call(fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except ClientError as exc:
            if aws.is_condition_failed(exc):
                raise ConflictError("the registry changed concurrently; reload and retry") from exc
            if aws.is_not_found(exc):
                raise aws.unavailable("the model registry table", exc) from exc
            raise aws.unavailable("the model registry", exc) from exc
        except BotoCoreError as exc:
            raise aws.unavailable("the model registry", exc) from exc


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in {"pk", "sk", "kind"}}
