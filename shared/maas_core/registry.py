"""The model registry on DynamoDB: which versions exist and which version each alias names.

One table, key (pk, sk):
  pk=MODEL#{name}  sk=META               name, latest_version (atomic counter), created_at
  pk=MODEL#{name}  sk=VERSION#{0000000n}  one published version (summary of its manifest)
  pk=MODEL#{name}  sk=ALIAS#{alias}       the version an alias points at, a revision counter, and its
                                         last moves (who moved it, why: `AliasMove`)
Versions are written once (conditional put); alias moves are conditional writes.

A version id has one spelling, the one `next_version` mints: a whole number from 1, ASCII digits, no
leading zero (`check_version`). Table keys, S3 prefixes and alias items all compare that string, so
"01" must never stand for "1" anywhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from maas_core import aws
from maas_core.errors import BadRequestError, ConflictError, NotFoundError, UnprocessableError
from maas_core.manifest import Manifest

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import PutTypeDef, TransactWriteItemTypeDef

MAX_NAME_CHARS = 64
NAME_PATTERN = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_NAME_CHARS - 1}}}$")
# ASCII digits on purpose: str.isdigit() and int() also take "\uff11" and "\u0663". 18 digits fit an int64
# and any counter a model will reach; an unbounded string would reach int() (and error messages) whole.
MAX_VERSION_DIGITS = 18
VERSION_PATTERN = re.compile(rf"[1-9][0-9]{{0,{MAX_VERSION_DIGITS - 1}}}")
VERSION_FORM = "versions are whole numbers without leading zeros, e.g. 3"
# the same forms as JSON Schema, for request models and the OpenAPI document; VERSION_PATTERN is used with
# fullmatch, a JSON Schema pattern matches anywhere: hence the anchors
NAME_SCHEMA: dict[str, Any] = {"pattern": NAME_PATTERN.pattern, "minLength": 1, "maxLength": MAX_NAME_CHARS}
VERSION_SCHEMA: dict[str, Any] = {"pattern": f"^(?:{VERSION_PATTERN.pattern})$", "minLength": 1,
                                  "maxLength": MAX_VERSION_DIGITS}
_ser = TypeSerializer()
_de = TypeDeserializer()


def check_name(kind: str, value: str) -> str:
    """Model names and aliases become S3 keys and table keys: keep them plain (versions: check_version)."""
    if not NAME_PATTERN.fullmatch(value or ""):  # fullmatch: `$` alone lets a trailing newline through
        raise BadRequestError(
            f"invalid {kind} {value!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            [{"field": kind, "value": value}],
        )
    return value


class InvalidVersionError(BadRequestError):
    code = "invalid_version"


def check_version(value: str, field: str = "version") -> str:
    """The one check of a version id at every entry (API, CLI, batch metadata, registry, store): the
    canonical form or a 400 saying it. Returns the value unchanged: there is nothing to normalise."""
    if isinstance(value, str) and VERSION_PATTERN.fullmatch(value):
        return value
    shown = value[:24] + "..." if isinstance(value, str) and len(value) > 24 else value
    raise InvalidVersionError(f"invalid {field} {shown!r}: {VERSION_FORM} (1-{MAX_VERSION_DIGITS} digits)",
                              [{"field": field, "value": shown, "expected": VERSION_PATTERN.pattern}])


def _pk(name: str) -> str:
    return f"MODEL#{name}"


def _version_sk(version: str) -> str:
    # zero-padded so versions sort numerically in the table (up to 8 digits; describe() sorts itself)
    return f"VERSION#{int(check_version(version)):08d}"


def _deleted_sk(version: str) -> str:
    return "DELETED#" + _version_sk(version).removeprefix("VERSION#")


def _to_item(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(_dynamo_safe(v)) for k, v in data.items()}


def _dynamo_safe(value: Any) -> Any:
    if isinstance(value, float):
        if not math.isfinite(value):
            return None  # DynamoDB has no NaN/inf
        # nor magnitudes under 1e-130 (boto3 raises decimal.Underflow): those are 0 to anything stored here
        return Decimal(repr(value)) if abs(value) >= 1e-130 or value == 0 else Decimal(0)
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
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class AliasMove:
    """One write of an alias, as recorded in its item: what it did, who did it and why (a person's move has
    no reason unless given; an automatic one names the alarm or schedule behind it)."""

    at: str
    action: str  # promote | canary | end_canary (weight 0) | rollback
    version: str
    canary_version: str | None = None
    canary_weight: float = 0.0
    by: str = ""
    reason: str = ""

    def item(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, "")}


@dataclass(frozen=True)
class AliasTarget:
    """Where an alias points: a version, optionally a canary version taking `canary_weight` of requests,
    the versions it pointed at before (newest last), for rollback, and its last moves (newest last)."""

    alias: str
    version: str
    revision: int
    canary_version: str | None = None
    canary_weight: float = 0.0
    history: tuple[str, ...] = ()
    updated_at: str = ""
    moves: tuple[AliasMove, ...] = ()


class Registry:
    def __init__(self, table: str, dynamodb: Any | None = None) -> None:
        self.table = table
        self._ddb = dynamodb

    @property
    def ddb(self) -> DynamoDBClient:
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
            UpdateExpression=("ADD latest_version :one "
                              "SET #n = :name, updated_at = :now, created_at = if_not_exists(created_at, :now)"),
            ExpressionAttributeNames={"#n": "name"},
            ExpressionAttributeValues=_to_item({":one": 1, ":name": name, ":now": now}),
            ReturnValues="UPDATED_NEW",
        )
        return check_version(str(int(resp["Attributes"]["latest_version"]["N"])))  # from 1: ADD on no attribute

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

    # --- aliases: promote, canary, rollback (admin) ---------------------------------------------
    # Every alias write is one DynamoDB transaction: put the alias item on the condition that its
    # revision is the one read (no lost or half-written update), and touch each version it names
    # on the condition that the version exists (so a version deleted meanwhile cannot be named).
    # `expected_version` / `expected_canary`: only if the alias still points at that version / still has that
    # canary (else 409, and a write racing ours makes it 409 too, never a retry over someone else's move).
    # `by` and `reason` go to the alias's recorded moves.

    def set_alias(self, name: str, alias: str, version: str, expected_version: str | None = None, *,
                  expected_canary: str | None = None, by: str = "", reason: str = "") -> AliasTarget:
        """Promote: point `alias` at `version` (clearing any canary); the old version goes to history."""
        check_version(version)
        return self._move_alias(name, alias, _Expected(expected_version, expected_canary), lambda cur: _AliasState(
            version=version,
            history=_push(cur.history, cur.version) if cur and cur.version != version else (cur.history if cur else ()),
        ), _Note("promote", by, reason))

    def set_canary(self, name: str, alias: str, version: str, weight: float,
                   expected_version: str | None = None, *, expected_canary: str | None = None, by: str = "",
                   reason: str = "") -> AliasTarget:
        """Send `weight` (0 < weight < 1) of the alias's traffic to `version`; weight 0 removes the canary."""
        if not 0 <= weight < 1:
            raise UnprocessableError(f"canary weight must be in [0, 1), got {weight}",
                                     [{"field": "weight", "value": weight}])
        check_version(version)
        return self._move_alias(name, alias, _Expected(expected_version, expected_canary), lambda cur: _AliasState(
            version=(target := _require_alias(cur, name, alias)).version, history=target.history,
            canary_version=version if weight > 0 else None, canary_weight=weight if weight > 0 else 0.0,
        ), _Note("canary" if weight > 0 else "end_canary", by, reason), must_exist=True)

    def rollback(self, name: str, alias: str, expected_version: str | None = None, *, by: str = "",
                 reason: str = "") -> AliasTarget:
        """Point the alias back at the version it named before its last promotion."""
        def rolled(cur: AliasTarget | None) -> _AliasState:
            cur = _require_alias(cur, name, alias)
            if not cur.history:
                raise ConflictError(f"alias {alias!r} of model {name!r} has no earlier version to roll back to")
            return _AliasState(version=cur.history[-1], history=cur.history[:-1])

        return self._move_alias(name, alias, _Expected(expected_version), rolled, _Note("rollback", by, reason),
                                must_exist=True)

    def delete_version(self, name: str, version: str) -> None:
        """Remove a version from the registry; refused (409) while any alias names it. The same transaction
        leaves a record that the version was deleted (`was_deleted`), so a cleanup of its files can later
        tell an interrupted delete from a version still being published."""
        item = self.get_version(name, version)  # checks the version before the alias check compares it
        self.check_unaliased(name, version)
        # an alias write since we looked would have touched the version: then refuse and let the caller look again
        seen = item.get("alias_writes")
        condition: dict[str, Any] = {
            "ConditionExpression": "attribute_exists(sk) AND attribute_not_exists(alias_writes)"}
        if seen is not None:
            condition = {"ConditionExpression": "attribute_exists(sk) AND alias_writes = :seen",
                         "ExpressionAttributeValues": _to_item({":seen": seen})}
        delete = {"TableName": self.table, "Key": _to_item({"pk": _pk(name), "sk": _version_sk(version)}), **condition}
        record = {"TableName": self.table, "Item": _to_item({"pk": _pk(name), "sk": _deleted_sk(version),
                                                             "kind": "deleted", "version": version,
                                                             "deleted_at": _now()})}
        try:
            self._call(self.ddb.transact_write_items, TransactItems=[{"Delete": delete}, {"Put": record}])
        except ConflictError as exc:
            raise ConflictError(f"version {version!r} of model {name!r} changed while deleting it; retry") from exc

    def was_deleted(self, name: str, version: str) -> bool:
        """Whether `delete_version` removed this version (its files may outlive it if the delete was cut short)."""
        return self._get(name, _deleted_sk(version)) is not None

    def check_unaliased(self, name: str, version: str) -> None:
        """409 while any alias (or alias canary) names the version."""
        check_version(version)  # aliases hold the canonical string: "01" would match none of them
        pointing = sorted(a.alias for a in self.aliases(name) if version in (a.version, a.canary_version))
        if pointing:
            raise ConflictError(f"version {version!r} of model {name!r} is in use by alias(es) {', '.join(pointing)}; "
                                "promote or roll back the alias first", [{"alias": a} for a in pointing])

    def _move_alias(self, name: str, alias: str, expected: _Expected,
                    change: Callable[[AliasTarget | None], _AliasState], note: _Note,
                    must_exist: bool = False) -> AliasTarget:
        check_name("alias", alias)
        expected.check_form()
        for attempt in range(3):
            current = self._alias_or_none(name, alias)
            if must_exist:
                _require_alias(current, name, alias)
            expected.check(name, alias, current)
            state = change(current)
            for v in state.versions():
                self.get_version(name, v)  # a clear 404 before writing anything
            try:
                return self._write_alias(name, alias, current, state, note)
            except _AliasRaced as exc:
                if expected.any or attempt == 2:
                    raise ConflictError(
                        f"alias {alias!r} of model {name!r} was changed concurrently; reload and retry",
                        [{"field": "revision", "read": current.revision if current else None}]) from exc
        raise AssertionError("unreachable")

    def _write_alias(self, name: str, alias: str, current: AliasTarget | None, state: _AliasState,
                     note: _Note) -> AliasTarget:
        revision = (current.revision if current else 0) + 1
        now = _now()
        move = AliasMove(at=now, action=note.action, version=state.version, canary_version=state.canary_version,
                         canary_weight=state.canary_weight, by=note.by, reason=note.reason)
        moves = [m.item() for m in (*(current.moves if current else ()), move)][-MOVES_KEPT:]
        item = {"pk": _pk(name), "sk": f"ALIAS#{alias}", "kind": "alias", "alias": alias, "version": state.version,
                "revision": revision, "history": list(state.history), "updated_at": now, "moves": moves}
        if state.canary_version:
            item |= {"canary_version": state.canary_version, "canary_weight": state.canary_weight}
        put: PutTypeDef = {"TableName": self.table, "Item": _to_item(item)}
        if current is None:
            put["ConditionExpression"] = "attribute_not_exists(sk)"
        else:
            put["ConditionExpression"] = "revision = :rev"
            put["ExpressionAttributeValues"] = _to_item({":rev": current.revision})
        touches: list[TransactWriteItemTypeDef] = [{"Update": {
            "TableName": self.table, "Key": _to_item({"pk": _pk(name), "sk": _version_sk(v)}),
            "UpdateExpression": "ADD alias_writes :one", "ConditionExpression": "attribute_exists(sk)",
            "ExpressionAttributeValues": _to_item({":one": 1}),
        }} for v in state.versions()]
        try:
            self.ddb.transact_write_items(TransactItems=[{"Put": put}, *touches])
        except ClientError as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if aws.error_code(exc) != "TransactionCanceledException":
                raise aws.unavailable("the model registry", exc) from exc
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise _AliasRaced() from exc
            if "ConditionalCheckFailed" in reasons[1:]:
                raise NotFoundError(
                    f"a version named by alias {alias!r} of model {name!r} was deleted meanwhile") from exc
            raise aws.unavailable("the model registry", exc) from exc
        except BotoCoreError as exc:
            raise aws.unavailable("the model registry", exc) from exc
        return _alias_target(item)

    # --- reads (serving) ----------------------------------------------------------------------

    def get_version(self, name: str, version: str) -> dict[str, Any]:
        item = self._get(name, _version_sk(version))
        if item is None:
            self._require_model(name)
            raise NotFoundError(f"model {name!r} has no version {version!r}", [{"field": "version", "value": version}])
        return item

    def resolve_alias(self, name: str, alias: str) -> AliasTarget:
        check_name("alias", alias)
        target = self._alias_or_none(name, alias)
        if target is None:
            self._require_model(name)
            raise NotFoundError(f"model {name!r} has no alias {alias!r}", [{"field": "alias", "value": alias}])
        return target

    def aliases(self, name: str) -> list[AliasTarget]:
        return [_alias_target(i) for i in self._query(name) if i["sk"].startswith("ALIAS#")]

    def _alias_or_none(self, name: str, alias: str) -> AliasTarget | None:
        item = self._get(name, f"ALIAS#{alias}")
        return _alias_target(item) if item else None

    def describe(self, name: str) -> dict[str, Any]:
        """Versions (newest first) and aliases of one model."""
        items = self._query(name)
        if not any(i["sk"] == "META" for i in items):
            raise NotFoundError(f"model {name!r} was not found", [{"field": "model", "value": name}])
        versions = [_public(i) for i in items if i["sk"].startswith("VERSION#")]
        versions.sort(key=lambda v: (len(v["version"]), v["version"]), reverse=True)
        aliases = {i["alias"]: _public(i) for i in items if i["sk"].startswith("ALIAS#")}
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
    return {k: v for k, v in item.items() if k not in {"pk", "sk", "kind", "alias_writes"}}


HISTORY_LENGTH = 20
MOVES_KEPT = 20  # recorded moves per alias: ~200 bytes each, far under DynamoDB's 400 KB item
MAX_REASON_CHARS = 500


def _push(history: tuple[str, ...], version: str) -> tuple[str, ...]:
    return (*history, version)[-HISTORY_LENGTH:]


def _require_alias(current: AliasTarget | None, name: str, alias: str) -> AliasTarget:
    if current is None:
        raise NotFoundError(f"model {name!r} has no alias {alias!r}", [{"field": "alias", "value": alias}])
    return current


def _alias_target(item: dict[str, Any]) -> AliasTarget:
    moves = tuple(AliasMove(**{**m, "canary_weight": float(m.get("canary_weight", 0.0))})
                  for m in item.get("moves", ()))
    return AliasTarget(alias=item["alias"], version=item["version"], revision=item["revision"],
                       canary_version=item.get("canary_version"), canary_weight=float(item.get("canary_weight", 0.0)),
                       history=tuple(item.get("history", ())), updated_at=item.get("updated_at", ""), moves=moves)


@dataclass(frozen=True)
class _Expected:
    """What the caller expects the alias to hold before the move (None: anything)."""

    version: str | None = None
    canary: str | None = None

    @property
    def any(self) -> bool:
        return self.version is not None or self.canary is not None

    def check_form(self) -> None:
        if self.version is not None:
            check_version(self.version, "expected_version")
        if self.canary is not None:
            check_version(self.canary, "expected_canary")

    def check(self, name: str, alias: str, current: AliasTarget | None) -> None:
        if self.version is not None and (current is None or current.version != self.version):
            now_at = current.version if current else None
            raise ConflictError(
                f"alias {alias!r} of model {name!r} points at version {now_at!r}, not {self.version!r}; "
                "reload and retry", [{"field": "expected_version", "expected": self.version, "actual": now_at}])
        if self.canary is not None and (current is None or current.canary_version != self.canary):
            now_canary = current.canary_version if current else None
            raise ConflictError(
                f"alias {alias!r} of model {name!r} has canary version {now_canary!r}, not {self.canary!r}; "
                "reload and retry", [{"field": "expected_canary", "expected": self.canary, "actual": now_canary}])


@dataclass(frozen=True)
class _Note:
    action: str
    by: str = ""
    reason: str = ""

    def __post_init__(self) -> None:  # a reason may quote an alarm's state reason: bounded, one line
        object.__setattr__(self, "reason", " ".join(self.reason.split())[:MAX_REASON_CHARS])
        object.__setattr__(self, "by", self.by[:MAX_REASON_CHARS])


@dataclass(frozen=True)
class _AliasState:
    version: str
    history: tuple[str, ...] = ()
    canary_version: str | None = None
    canary_weight: float = 0.0

    def versions(self) -> list[str]:
        """The versions the alias points at (stable, and the canary if any), sorted."""
        return sorted({self.version} | ({self.canary_version} if self.canary_version else set()))


class _AliasRaced(Exception):
    """The alias changed between our read and our conditional write."""
