"""Canary guardrails: alarms per canary, automatic rollback when one fires, automatic promotion after a bake.

    maas canary M prod 4 --weight 0.1 --bake 30m --promote-after      (or PUT .../aliases/prod, the same fields)
      -> PutMetricAlarm  <prefix>/M/prod/4/error-rate   5xx share of version 4 (metric math, per minute)
                         <prefix>/M/prod/4/latency-p99  p99 latency of version 4
                         <prefix>/M/prod/4/accuracy     classifiers: accuracy over the last hour of feedback
      -> the alias move (Registry.set_canary, conditional)
      -> EventBridge Scheduler: at(now + bake) -> the guardrail function {"action": "canary_promote", ...}

    alarm -> ALARM --EventBridge rule (alarm name prefix)--> guardrail function: `on_alarm` ends the canary
    schedule fires ---------------------------------------> guardrail function: `on_promotion_due` promotes

Every automatic move is the conditional write an admin's is, expecting the canary it was made for
(`expected_canary`, and for a promotion the stable version too): a person's move in between makes it a 409,
which the guardrail logs as "a later move wins" and leaves alone. Every alias move (admin, CLI or guardrail)
ends with `settle`, which deletes the alarms and schedules of canaries the alias no longer has: so no
redeploy is needed for new models, and nothing outlives its canary (if that cleanup fails, the move still
stands and the failure is logged: a leftover alarm can only name a canary that is over, which is left alone).

The signals are the EMF series predict already writes per [model, version] (maas_core.monitoring.emf), so a
version's alarms see its traffic from every alias naming it. Alarm names hold model, alias and version
separated by '/', which names cannot contain: `CanaryRef.from_alarm_name` reads them back unambiguously.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from maas_core import aws
from maas_core.errors import ConflictError, MaasError, NotFoundError, UnprocessableError
from maas_core.monitoring.emf import NAMESPACE
from maas_core.registry import NAME_PATTERN, VERSION_PATTERN, AliasTarget, Registry
from maas_core.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

logger = Logger(child=True)

PROMOTE_ACTION = "canary_promote"  # the schedule's payload names it (maas_core.edge.guardrail_events)
ALARM_PERIOD_S = 60  # per-minute datapoints: a canary's bake is minutes, not hours
EVALUATION_PERIODS, DATAPOINTS_TO_ALARM = 3, 2  # 2 bad minutes out of 3: one slow cold start is not enough
ACCURACY_PERIOD_S = 900  # the metrics function publishes accuracy every 15 minutes
MIN_BAKE_S, MAX_BAKE_S = 60, 7 * 24 * 3600
GUARDRAIL = "guardrail"  # `by` of the moves it makes
SIGNALS = ("error-rate", "latency-p99", "accuracy")


@dataclass(frozen=True)
class CanaryRef:
    """One canary: `version` taking part of `alias`'s traffic."""

    model: str
    alias: str
    version: str

    def alarm_name(self, prefix: str, signal: str) -> str:
        return f"{self.alias_prefix(prefix, self.model, self.alias)}{self.version}/{signal}"

    @staticmethod
    def alias_prefix(prefix: str, model: str, alias: str) -> str:
        return f"{prefix}/{model}/{alias}/"

    @classmethod
    def from_alarm_name(cls, prefix: str, name: str) -> tuple[CanaryRef, str] | None:
        """(canary, signal) of one of our alarm names; None for any other name."""
        if not name.startswith(prefix + "/"):
            return None
        parts = name[len(prefix) + 1:].split("/")
        if len(parts) != 4 or parts[3] not in SIGNALS:
            return None
        model, alias, version, signal = parts
        if not (NAME_PATTERN.fullmatch(model) and NAME_PATTERN.fullmatch(alias) and VERSION_PATTERN.fullmatch(version)):
            return None
        return cls(model, alias, version), signal


@dataclass(frozen=True)
class Promotion:
    """What a promotion schedule carries: the canary, and the stable version it was to replace."""

    model: str
    alias: str
    version: str
    stable_version: str
    schedule: str
    due_at: str

    def payload(self) -> dict[str, Any]:
        return {"action": PROMOTE_ACTION, **asdict(self)}


@dataclass(frozen=True)
class Watch:
    """The guardrails of one canary: its alarms and, with --promote-after, its promotion."""

    alarms: list[str]
    promotion: Promotion | None = None


@dataclass(frozen=True)
class Decision:
    """What the guardrail function did with one event, for its log and its return value."""

    outcome: Literal["rolled_back", "promoted", "kept", "ignored"]
    model: str = ""
    alias: str = ""
    version: str = ""
    reason: str = ""
    alias_state: dict[str, Any] = field(default_factory=dict)


_BAKE = re.compile(r"^([1-9][0-9]{0,6})([smhd])$")
_BAKE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_bake(text: str) -> int:
    """'30m' -> 1800 (s, m, h or d), checked against the bounds."""
    m = _BAKE.match(text.strip())
    if m is None:
        raise UnprocessableError(f"invalid bake time {text!r}: a number and s, m, h or d, e.g. 30m",
                                 [{"field": "bake", "value": text}])
    return check_bake(int(m.group(1)) * _BAKE_UNITS[m.group(2)])


def check_bake(seconds: int) -> int:
    if not MIN_BAKE_S <= seconds <= MAX_BAKE_S:
        raise UnprocessableError(f"bake time must be {MIN_BAKE_S} s to 7 days, got {seconds} s",
                                 [{"field": "bake_seconds", "value": seconds}])
    return seconds


class Guardrails:
    """The CloudWatch alarms and Scheduler schedules of an alias's canaries (clients: tests may pass their own)."""

    def __init__(self, settings: Settings, cloudwatch: Any | None = None, scheduler: Any | None = None) -> None:
        self.settings = settings
        self._cloudwatch = cloudwatch
        self._scheduler = scheduler

    @property
    def cloudwatch(self) -> CloudWatchClient:
        return self._cloudwatch or aws.client("cloudwatch")

    @property
    def scheduler(self) -> Any:  # no boto3 stubs for EventBridge Scheduler are installed
        return self._scheduler or aws.client("scheduler")  # type: ignore[call-overload]

    @property
    def prefix(self) -> str:
        return self.settings.canary_alarm_prefix

    # --- alarms --------------------------------------------------------------------------------

    def watch(self, ref: CanaryRef, task: str | None) -> list[str]:
        """Create (or overwrite: PutMetricAlarm is an upsert) the canary's alarms; their names."""
        alarms = [self._error_rate(ref), self._latency(ref)]
        if task in ("binary", "multiclass"):
            alarms.append(self._accuracy(ref))
        for alarm in alarms:
            self._call("CloudWatch", self.cloudwatch.put_metric_alarm, **alarm)
        return [a["AlarmName"] for a in alarms]

    def firing(self, ref: CanaryRef) -> list[dict[str, str]]:
        """The canary's alarms now in ALARM: [{name, reason}]."""
        names = [ref.alarm_name(self.prefix, s) for s in SIGNALS]
        resp = self._call("CloudWatch", self.cloudwatch.describe_alarms, AlarmNames=names, AlarmTypes=["MetricAlarm"])
        return [{"name": a["AlarmName"], "reason": a.get("StateReason", "")}
                for a in resp.get("MetricAlarms", []) if a.get("StateValue") == "ALARM"]

    def _base(self, ref: CanaryRef, signal: str, what: str) -> dict[str, Any]:
        topic = [self.settings.canary_alarm_topic_arn] if self.settings.canary_alarm_topic_arn else []
        return {"AlarmName": ref.alarm_name(self.prefix, signal),
                "AlarmDescription": f"maas canary guardrail: {what} of model {ref.model} version {ref.version} "
                                    f"(canary of alias {ref.alias}); ALARM ends the canary",
                "EvaluationPeriods": EVALUATION_PERIODS, "DatapointsToAlarm": DATAPOINTS_TO_ALARM,
                "TreatMissingData": "notBreaching", "AlarmActions": topic, "OKActions": topic}

    def _dimensions(self, ref: CanaryRef) -> list[dict[str, str]]:
        return [{"Name": "model", "Value": ref.model}, {"Name": "version", "Value": ref.version}]

    def _error_rate(self, ref: CanaryRef) -> dict[str, Any]:
        def stat(metric: str, query_id: str) -> dict[str, Any]:
            return {"Id": query_id, "ReturnData": False, "MetricStat": {
                "Metric": {"Namespace": NAMESPACE, "MetricName": metric, "Dimensions": self._dimensions(ref)},
                "Period": ALARM_PERIOD_S, "Stat": "Sum"}}

        # fewer than canary_min_requests a minute count as 0: one failed request of two is not a 50% error rate
        rate = f"IF(requests >= {self.settings.canary_min_requests}, errors / requests, 0)"
        return {**self._base(ref, "error-rate", "share of requests answered 5xx"),
                "Metrics": [stat("Errors5xx", "errors"), stat("RequestCount", "requests"),
                            {"Id": "rate", "Expression": rate, "Label": "5xx share", "ReturnData": True}],
                "Threshold": self.settings.canary_error_rate, "ComparisonOperator": "GreaterThanThreshold"}

    def _latency(self, ref: CanaryRef) -> dict[str, Any]:
        return {**self._base(ref, "latency-p99", "p99 latency (ms)"), "Namespace": NAMESPACE,
                "MetricName": "Latency", "Dimensions": self._dimensions(ref), "ExtendedStatistic": "p99",
                "Period": ALARM_PERIOD_S, "Threshold": self.settings.canary_latency_p99_ms,
                "ComparisonOperator": "GreaterThanThreshold"}

    def _accuracy(self, ref: CanaryRef) -> dict[str, Any]:
        return {**self._base(ref, "accuracy", "accuracy over the last hour of feedback"), "Namespace": NAMESPACE,
                "MetricName": "Accuracy", "Dimensions": self._dimensions(ref), "Statistic": "Minimum",
                "Period": ACCURACY_PERIOD_S, "EvaluationPeriods": 2, "DatapointsToAlarm": 2,
                "Threshold": self.settings.canary_accuracy, "ComparisonOperator": "LessThanThreshold"}

    # --- promotion schedules ---------------------------------------------------------------------

    def schedule_promotion(self, ref: CanaryRef, stable_version: str, bake_seconds: int,
                           now: datetime | None = None) -> Promotion:
        """A one-time EventBridge Scheduler schedule that invokes the guardrail function after the bake."""
        self.check_can_promote(bake_seconds)
        due = (now or datetime.now(UTC)).replace(microsecond=0) + timedelta(seconds=check_bake(bake_seconds))
        name = self._schedule_prefix(ref.model, ref.alias) + ref.version
        promotion = Promotion(ref.model, ref.alias, ref.version, stable_version, name, due.isoformat())
        self.delete_schedule(name)  # a canary restarted with a new bake replaces its schedule
        self._call("EventBridge Scheduler", self.scheduler.create_schedule,
                   Name=name, ScheduleExpression=f"at({due.strftime('%Y-%m-%dT%H:%M:%S')})",
                   ScheduleExpressionTimezone="UTC", FlexibleTimeWindow={"Mode": "OFF"},
                   ActionAfterCompletion="DELETE",
                   Description=f"promote {ref.model} {ref.alias} to version {ref.version} if its canary alarms "
                               "stayed quiet"[:512],
                   Target={"Arn": self.settings.guardrail_function_arn, "RoleArn": self.settings.scheduler_role_arn,
                           "Input": json.dumps(promotion.payload()),
                           "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600}})
        return promotion

    def check_can_promote(self, bake_seconds: int) -> None:
        """422 unless a promotion can be scheduled: a bake time in bounds, and the function and role to run it."""
        check_bake(bake_seconds)
        if not (self.settings.guardrail_function_arn and self.settings.scheduler_role_arn):
            raise UnprocessableError(
                "automatic promotion needs the stack's guardrail function and scheduler role "
                "(MAAS_GUARDRAIL_FUNCTION_ARN, MAAS_SCHEDULER_ROLE_ARN; the CLI reads them from --stack)",
                [{"field": "promote_after"}])

    def delete_schedule(self, name: str) -> None:
        try:
            self.scheduler.delete_schedule(Name=name)
        except ClientError as exc:
            if aws.error_code(exc) != "ResourceNotFoundException":
                raise aws.unavailable("EventBridge Scheduler", exc) from exc
        except BotoCoreError as exc:
            raise aws.unavailable("EventBridge Scheduler", exc) from exc

    def _schedule_prefix(self, model: str, alias: str) -> str:
        # schedule names are [0-9A-Za-z_.-], at most 64: a digest of prefix/model/alias, then the version
        digest = hashlib.sha256(CanaryRef.alias_prefix(self.prefix, model, alias).encode()).hexdigest()[:24]
        return f"canary-{digest}-"

    # --- after every alias move ----------------------------------------------------------------

    def settle(self, model: str, alias: str, target: AliasTarget | None) -> list[str]:
        """Delete the alarms and promotion schedules of this alias's canaries other than its current one
        (none after a promotion, a rollback or weight 0). Returns the alarm names deleted."""
        keep = target.canary_version if target is not None else None
        prefix = CanaryRef.alias_prefix(self.prefix, model, alias)
        pages = self.cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=prefix,
                                                                          AlarmTypes=["MetricAlarm"])
        try:
            stale = [a["AlarmName"] for page in pages for a in page.get("MetricAlarms", [])
                     if a["AlarmName"].removeprefix(prefix).split("/")[0] != keep]
            for start in range(0, len(stale), 100):  # DeleteAlarms takes at most 100 names
                self.cloudwatch.delete_alarms(AlarmNames=stale[start:start + 100])
        except (ClientError, BotoCoreError) as exc:
            raise aws.unavailable("CloudWatch", exc) from exc
        schedules = self._schedule_prefix(model, alias)
        found = self._call("EventBridge Scheduler", self.scheduler.list_schedules, NamePrefix=schedules)
        for s in found.get("Schedules", []):
            if s["Name"].removeprefix(schedules) != keep:
                self.delete_schedule(s["Name"])
        return stale

    @staticmethod
    def _call(what: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise aws.unavailable(what, exc) from exc


# --- the flows: every alias move (admin, CLI) and the guardrail function's two events -------------


@dataclass(frozen=True)
class MoveRequest:
    """One alias move as an admin asks for it (AliasUpdate, or the CLI's arguments)."""

    action: Literal["promote", "canary", "rollback"]
    version: str | None = None
    weight: float = 0.0
    expected_version: str | None = None
    bake_seconds: int | None = None
    promote_after: bool = False
    by: str = ""


def move_alias(registry: Registry, guard: Guardrails, model: str, alias: str,
               move: MoveRequest) -> tuple[AliasTarget, Watch | None]:
    """Move the alias; a canary start first creates its alarms (so a canary is never unwatched), then, with
    promote_after, its promotion schedule; every move ends with `settle`."""
    watch = None
    if move.action == "canary" and move.weight > 0 and move.version:
        if move.promote_after:
            guard.check_can_promote(move.bake_seconds or 0)  # refused before anything is created
        task = registry.get_version(model, move.version).get("task")  # a clear 404 before any alarm
        alarms = guard.watch(CanaryRef(model, alias, move.version), task)
        try:
            target = registry.set_canary(model, alias, move.version, move.weight, move.expected_version, by=move.by)
        except Exception:
            with contextlib.suppress(Exception):  # the alarms of a canary that did not start; the move's error wins
                current = registry.aliases(model)
                guard.settle(model, alias, next((a for a in current if a.alias == alias), None))
            raise
        promotion = (guard.schedule_promotion(CanaryRef(model, alias, move.version), target.version,
                                              move.bake_seconds or 0) if move.promote_after else None)
        watch = Watch(alarms, promotion)
    elif move.action == "canary":
        target = registry.set_canary(model, alias, move.version or "", 0.0, move.expected_version, by=move.by)
    elif move.action == "promote":
        target = registry.set_alias(model, alias, move.version or "", move.expected_version, by=move.by)
    else:
        target = registry.rollback(model, alias, move.expected_version, by=move.by)
    _settle_after(guard, model, alias, target)
    return target, watch


def _settle_after(guard: Guardrails, model: str, alias: str, target: AliasTarget) -> None:
    """`settle` after a move that is done: a failure is logged, not raised (the move stands; an alarm left
    behind can only reach a canary that is over, which the guardrail then leaves alone)."""
    try:
        guard.settle(model, alias, target)
    except MaasError as exc:
        logger.warning("the alias moved, but the alarms or schedules of its ended canary could not be deleted",
                       extra={"model": model, "alias": alias, "error": exc.message})


def on_alarm(registry: Registry, guard: Guardrails, alarm_name: str, state: str, reason: str) -> Decision:
    """A canary alarm went to ALARM: end that canary (the alias's traffic back to its stable version)."""
    parsed = CanaryRef.from_alarm_name(guard.prefix, alarm_name)
    if parsed is None or state != "ALARM":
        logger.info("not a canary alarm going to ALARM: ignored", extra={"alarm": alarm_name, "state": state})
        return Decision("ignored", reason=f"alarm {alarm_name!r} in state {state!r}")
    ref, _ = parsed
    why = f"alarm {alarm_name}: {reason}"
    try:
        target = registry.set_canary(ref.model, ref.alias, ref.version, 0.0, expected_canary=ref.version,
                                     by=GUARDRAIL, reason=why)
    except (ConflictError, NotFoundError) as exc:
        return _kept(ref, f"{why}; not rolled back: {exc.message}")
    _settle_after(guard, ref.model, ref.alias, target)
    logger.warning("canary rolled back automatically", extra={**asdict(ref), "stable_version": target.version,
                                                               "reason": why})
    return Decision("rolled_back", ref.model, ref.alias, ref.version, why, _state(target))


def on_promotion_due(registry: Registry, guard: Guardrails, promotion: Promotion) -> Decision:
    """A canary's bake time is over: promote it if none of its alarms is in ALARM and the alias still has the
    canary and the stable version the schedule was made for."""
    ref = CanaryRef(promotion.model, promotion.alias, promotion.version)
    firing = guard.firing(ref)
    if firing:
        alarms = "; ".join(f"{a['name']}: {a['reason']}" for a in firing)
        return _kept(ref, f"not promoted: alarm(s) in ALARM: {alarms}")
    why = f"baked until {promotion.due_at} with no canary alarm in ALARM (schedule {promotion.schedule})"
    try:
        target = registry.set_alias(ref.model, ref.alias, ref.version, promotion.stable_version,
                                    expected_canary=ref.version, by=GUARDRAIL, reason=why)
    except (ConflictError, NotFoundError) as exc:
        return _kept(ref, f"not promoted: {exc.message}")
    _settle_after(guard, ref.model, ref.alias, target)
    logger.info("canary promoted automatically", extra={**asdict(ref), "reason": why})
    return Decision("promoted", ref.model, ref.alias, ref.version, why, _state(target))


def _kept(ref: CanaryRef, reason: str) -> Decision:
    # a person (or another guardrail event) moved the alias since: their move wins, ours is not made
    logger.warning("guardrail made no move: a later move wins or the canary is not healthy",
                   extra={**asdict(ref), "reason": reason})
    return Decision("kept", ref.model, ref.alias, ref.version, reason)


def _state(target: AliasTarget) -> dict[str, Any]:
    return {"version": target.version, "canary_version": target.canary_version, "revision": target.revision}
