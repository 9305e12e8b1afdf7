"""Admin operations behind IAM authorisation: move aliases (promote, canary, rollback), delete versions."""

from __future__ import annotations

from typing import Literal

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from maas_core.errors import ConflictError, NotFoundError
from maas_core.guardrails import MAX_BAKE_S, MIN_BAKE_S, Guardrails, MoveRequest, Watch, move_alias
from maas_core.registry import VERSION_SCHEMA, AliasTarget, Registry
from maas_core.store import BundleStore

logger = Logger(child=True)


MIN_CANARY_WEIGHT = 1e-6


class AliasUpdate(BaseModel):
    """PUT /v1/models/{model}/aliases/{alias}"""

    # the OpenAPI document states what _fields_for_action checks: one variant per action (none is promote)
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"properties": {"action": {"const": "promote"}, "version": {"type": "string"}}, "required": ["version"]},
        {"properties": {"action": {"const": "canary"}, "version": {"type": "string"}, "weight": {"type": "number"}},
         "required": ["action", "version", "weight"]},
        {"properties": {"action": {"const": "rollback"}, "version": {"type": "null"}}, "required": ["action"]},
    ], "allOf": [  # automatic promotion: a canary with a weight, and a bake time; a bake time only with it
        {"if": {"properties": {"promote_after": {"const": True}}, "required": ["promote_after"]},
         "then": {"properties": {"action": {"const": "canary"}, "weight": {"exclusiveMinimum": 0},
                                 "bake_seconds": {"type": "integer"}},
                  "required": ["action", "weight", "bake_seconds"]}},
        {"if": {"properties": {"bake_seconds": {"type": "integer"}}, "required": ["bake_seconds"]},
         "then": {"properties": {"promote_after": {"const": True}}, "required": ["promote_after"]}},
    ]})

    action: Literal["promote", "canary", "rollback"] = Field(
        default="promote",
        description="promote: point the alias at `version` (its old version goes to history, any canary ends); "
                    "canary: send `weight` of the alias's traffic to `version` (weight 0 ends the canary); "
                    "rollback: point the alias back at its previous version")
    version: str | None = Field(
        default=None, description="target version (promote, canary): a whole number without leading zeros, e.g. 3",
        json_schema_extra=VERSION_SCHEMA)
    weight: float | None = Field(
        default=None, ge=0, lt=1,
        description=f"canary share of requests: 0 (ends the canary) or {MIN_CANARY_WEIGHT} (one request in a "
                    "million) <= weight < 1",
        json_schema_extra={"anyOf": [{"const": 0}, {"type": "null"},
                                     {"type": "number", "minimum": MIN_CANARY_WEIGHT, "exclusiveMaximum": 1}]})
    expected_version: str | None = Field(
        default=None,
        description="only apply if the alias still points at this version (else 409); same form as version",
        json_schema_extra=VERSION_SCHEMA)
    promote_after: bool = Field(
        default=False, strict=True,
        description="canary only: promote the canary automatically after `bake_seconds` if none of "
                    "its alarms is in ALARM and nobody moved the alias meanwhile (docs/canary.md)")
    bake_seconds: int | None = Field(default=None, ge=MIN_BAKE_S, le=MAX_BAKE_S,
                                     description="with promote_after: how long the canary runs before promotion")

    @field_validator("weight")
    @classmethod
    def _weight_resolution(cls, weight: float | None) -> float | None:
        # a share below one in a million routes nobody, and DynamoDB cannot store numbers under 1e-130
        if weight is not None and 0 < weight < MIN_CANARY_WEIGHT:
            raise ValueError(f"a canary weight is 0 or at least {MIN_CANARY_WEIGHT} (one request in a million)")
        return weight

    @model_validator(mode="after")
    def _fields_for_action(self) -> AliasUpdate:
        # None, not falsy: an empty version is a version the registry refuses by name (400 invalid_version)
        if self.action in ("promote", "canary") and self.version is None:
            raise ValueError(f"action {self.action!r} needs a version")
        if self.action == "canary" and self.weight is None:
            raise ValueError("action 'canary' needs a weight")
        if self.action == "rollback" and self.version is not None:
            raise ValueError("action 'rollback' takes no version: it returns to the previous one")
        if self.promote_after and not (self.action == "canary" and self.weight):
            raise ValueError("promote_after goes with action 'canary' and a weight above 0")
        if self.promote_after != (self.bake_seconds is not None):
            raise ValueError("promote_after and bake_seconds go together: how long to bake before promoting")
        return self

    def move(self, by: str) -> MoveRequest:
        return MoveRequest(action=self.action, version=self.version, weight=self.weight or 0.0,
                           expected_version=self.expected_version, bake_seconds=self.bake_seconds,
                           promote_after=self.promote_after, by=by)


class AliasMoveRecord(BaseModel):
    at: str
    action: str
    version: str
    canary_version: str | None = None
    canary_weight: float = 0.0
    by: str = Field(default="", description="who: the caller's IAM identity, cli, or guardrail")
    reason: str = Field(default="", description="why, for an automatic move: the alarm and its reason, or the bake")


class CanaryGuardrails(BaseModel):
    alarms: list[str] = Field(description="the CloudWatch alarms watching the canary; ALARM ends it")
    promote_at: str | None = Field(default=None, description="when the promotion schedule fires (UTC)")
    schedule: str | None = Field(default=None, description="the EventBridge Scheduler schedule")

    @classmethod
    def of(cls, watch: Watch) -> CanaryGuardrails:
        p = watch.promotion
        return cls(alarms=watch.alarms, promote_at=p.due_at if p else None, schedule=p.schedule if p else None)


class AliasState(BaseModel):
    model: str
    alias: str
    version: str
    revision: int
    canary_version: str | None = None
    canary_weight: float = 0.0
    history: list[str] = Field(default_factory=list, description="earlier versions, newest last")
    moves: list[AliasMoveRecord] = Field(default_factory=list,
                                         description="the alias's last moves, newest last: who moved it and why")
    guardrails: CanaryGuardrails | None = Field(default=None, description="a canary start: its alarms and promotion")

    @classmethod
    def of(cls, model: str, t: AliasTarget, watch: Watch | None = None) -> AliasState:
        return cls(model=model, alias=t.alias, version=t.version, revision=t.revision, canary_version=t.canary_version,
                   canary_weight=t.canary_weight, history=list(t.history),
                   moves=[AliasMoveRecord(**m.item()) for m in t.moves],
                   guardrails=CanaryGuardrails.of(watch) if watch is not None else None)


def update_alias(registry: Registry, guard: Guardrails, model: str, alias: str, update: AliasUpdate,
                 by: str = "") -> AliasState:
    target, watch = move_alias(registry, guard, model, alias, update.move(by))
    return AliasState.of(model, target, watch)


def delete_version(registry: Registry, store: BundleStore, model: str, version: str) -> tuple[bool, int]:
    """Unregister a version no alias names (409 otherwise), then delete its bundle files. Returns (whether
    the registry entry was deleted now, files deleted).

    Unregistering comes first (an alias can never name a version whose files are going). If S3 fails after
    it, the caller gets 503 and the files stay: the same DELETE again finds the version unregistered, its
    deletion recorded and its files present, and finishes the job (404 only when neither is left), as
    `maas delete` does. Files of a version that was never registered are left alone (409): the training job
    uploads a bundle before it registers it, so they may be a publish in progress."""
    try:
        registry.delete_version(model, version)
        unregistered = True
    except NotFoundError as not_found:
        check_leftover_files(registry, store, model, version, not_found)
        logger.warning("the version was unregistered by an earlier delete; deleting its leftover files",
                       extra={"model": model, "version": version})
        unregistered = False
    return unregistered, store.delete_bundle(model, version)


def check_leftover_files(registry: Registry, store: BundleStore, model: str, version: str,
                         not_found: NotFoundError, allow_unregistered: bool = False) -> None:
    """For a version the registry does not have (`not_found` says so): return if its files may be deleted
    (an earlier delete was cut short, or `allow_unregistered`); raise `not_found` when it has no files, and
    UnregisteredFilesError (409) when it was never registered: a training job uploads before it registers."""
    if not store.bundle_objects(model, version):
        raise not_found
    if not allow_unregistered and not registry.was_deleted(model, version):
        raise UnregisteredFilesError(model, version)


class UnregisteredFilesError(ConflictError):
    def __init__(self, model: str, version: str) -> None:
        super().__init__(
            f"version {version!r} of model {model!r} has files but was never registered: it may be being published "
            "right now, so nothing was deleted (files a failed publish left behind: "
            f"`maas delete {model} {version} --unregistered`)",
            [{"field": "version", "value": version}])
