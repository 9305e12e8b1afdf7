"""Canary guardrails end to end on the local stack: the admin route starts a canary and its alarms (moto
CloudWatch), the predict route serves it, an alarm going to ALARM reaches the guardrail function through the
template's EventBridge rule (moto EventBridge matching, maas_local.event_rules delivering), a promotion schedule
(moto EventBridge Scheduler) fires with its own payload, and the alias history records every automatic move.

One stack and gateway for the module; model `guarded`: version 1 (prod) and 3 are the tiny model, version 2 a
bundle whose model file onnxruntime cannot load (every request routed to it fails, and is answered by the
alias's last good version: the failures show in version 2's metrics, not in the callers' answers).
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from maas_cli.main import main as maas
from maas_core.errors import ConflictError
from maas_core.guardrails import CanaryRef, Guardrails, MoveRequest, move_alias, on_alarm, on_promotion_due
from maas_core.manifest import TensorInfo
from maas_core.predictor import canary_share
from maas_core.registry import AliasTarget, Registry
from maas_core.settings import get_settings
from maas_core.store import BundleStore
from maas_local.env import EnvPatch
from maas_local.gateway import Gateway
from maas_local.stack import LocalStack
from maas_local.testing import tiny_model
from maas_local.testing.bundles import publish
from maas_local.testing.events import alarm_state_change
from tests.e2e.conftest import TEMPLATE

MODEL = "guarded"
SIGV4 = {"Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261202/us-east-1/execute-api/aws4_request, "
                          "SignedHeaders=host;x-amz-date, Signature=0"}
KEY = {"x-api-key": "maas-local-key"}
RECORD = {"x1": 2.0, "colour": "blue"}


@dataclass
class World:
    stack: LocalStack
    gateway: Gateway
    url: str
    registry: Registry

    @property
    def prefix(self) -> str:
        return self.guard().prefix  # <stack name>-canary, as the template sets it

    def guard(self) -> Guardrails:
        get_settings.cache_clear()  # the gateway's environment: the template's prefix, function and role ARNs
        return Guardrails(get_settings())

    def reset(self) -> None:
        """prod back on version 1 with no canary, and no canary alarm or schedule left."""
        self.registry.set_alias(MODEL, "prod", "1")
        self.guard().settle(MODEL, "prod", self.registry.resolve_alias(MODEL, "prod"))


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with LocalStack(TEMPLATE, port=0) as stack:
        registry, store = Registry(stack.names["RegistryTable"]), BundleStore(stack.names["ModelBucket"])
        tiny_model.publish_tiny_model(store, registry, name=MODEL, alias="prod")
        publish(store, registry, MODEL, tiny_model.SPEC, b"\x08\x07 not an onnx graph", tiny_model.LABELS,
                model_input=TensorInfo(name="features", dtype="float32", shape=[None, len(tiny_model.WEIGHTS)]),
                model_output=TensorInfo(name="probabilities", dtype="float32", shape=[None, 2]), alias=None)
        tiny_model.publish_tiny_model(store, registry, name=MODEL, alias=None)
        gateway = Gateway(TEMPLATE, stack.names, port=0, api_keys={"maas-local-key"})
        ttl = EnvPatch()
        ttl.apply({"MAAS_ALIAS_TTL_SECONDS": "0"})  # predict sees each alias move at once (deployed: within 5 s)
        url = gateway.start()
        try:
            yield World(stack, gateway, url, registry)
        finally:
            gateway.stop()
            ttl.restore()


@pytest.fixture
def fresh(world: World) -> World:
    world.reset()
    return world


def put_alias(http: Any, world: World, body: dict[str, Any]) -> dict[str, Any]:
    r = http("PUT", f"{world.url}/v1/models/{MODEL}/aliases/prod", body, headers=SIGV4)
    assert r.status == 200, r.body
    return r.json()


def keys_routed(weight: float, to_canary: bool, n: int) -> list[str]:
    """n routing keys the predictor sends to the canary (or not) at this weight."""
    keys = (f"caller-{i}" for i in range(10_000))
    return [k for k in keys if (canary_share(MODEL, "prod", k) < weight) == to_canary][:n]


def alarms(world: World, version: str | None = None) -> list[dict[str, Any]]:
    prefix = f"{world.prefix}/{MODEL}/prod/" + (f"{version}/" if version else "")
    return world.stack.client("cloudwatch").describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]


def alarm_fires(world: World, name: str, reason: str) -> list[Any]:
    """moto sets the alarm's state; the state change CloudWatch would put on the bus goes through the rules."""
    world.stack.client("cloudwatch").set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason=reason)
    alarm = world.stack.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    event = alarm_state_change(alarm)
    assert world.gateway.event_rules is not None
    return world.gateway.event_rules.put_events([{
        "Source": event["source"], "DetailType": event["detail-type"], "Detail": json.dumps(event["detail"]),
        "Resources": event["resources"]}])


def emf_documents(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def versions_table(world: World) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert maas(["versions", MODEL, "--table", world.stack.names["RegistryTable"],
                     "--bucket", world.stack.names["ModelBucket"]]) == 0
    return out.getvalue()


def test_a_failing_canary_is_rolled_back_when_its_alarm_fires(fresh: World, http: Any,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Given prod on version 1 and a canary of version 2 (a bundle that cannot load) at half the traffic,
    when every request routed to it fails (answered by version 1 instead, counted as 5xx of version 2), its
    error-rate alarm goes to ALARM and CloudWatch's state change event is put on the bus,
    then the template's rule hands it to the guardrail function, which ends the canary (prod is version 1
    alone), deletes its alarms, and records the move with the alarm and its reason in the alias history, which
    `maas versions` shows; an OK state change reaches nobody."""
    world = fresh
    started = put_alias(http, world, {"action": "canary", "version": "2", "weight": 0.5})
    names = started["guardrails"]["alarms"]
    assert names == [f"{world.prefix}/{MODEL}/prod/2/{s}" for s in ("error-rate", "latency-p99", "accuracy")]
    assert {a["AlarmName"] for a in alarms(world, "2")} == set(names)

    capsys.readouterr()
    canary_keys, stable_keys = keys_routed(0.5, True, 6), keys_routed(0.5, False, 6)
    for key in canary_keys + stable_keys:
        r = http("POST", f"{world.url}/v1/models/{MODEL}/predict", {"records": [RECORD]},
                 headers={**KEY, "X-Maas-Routing-Key": key})
        assert r.status == 200 and r.json()["version"] == "1", (key, r.body)
    docs = emf_documents(capsys.readouterr().out)
    # the signal the alarm watches: Errors5xx and RequestCount under [model, version] of the canary
    error_rate = next(a for a in alarms(world, "2") if a["AlarmName"].endswith("/error-rate"))
    watched = {(q["MetricStat"]["Metric"]["MetricName"],
                tuple((d["Name"], d["Value"]) for d in q["MetricStat"]["Metric"]["Dimensions"]))
               for q in error_rate["Metrics"] if "MetricStat" in q}
    assert watched == {("Errors5xx", (("model", MODEL), ("version", "2"))),
                       ("RequestCount", (("model", MODEL), ("version", "2")))}
    per_version = [d for d in docs if d.get("model") == MODEL and "Errors5xx" in d
                   and ["model", "version"] in d["_aws"]["CloudWatchMetrics"][0]["Dimensions"]]
    assert sorted((d["version"], d["RequestCount"], d["Errors5xx"]) for d in per_version) == \
        [("1", [1.0], [0.0])] * 12 + [("2", [1.0], [1.0])] * 6

    reason = "Threshold Crossed: 2 out of the last 3 datapoints [0.5 (02/12/26 03:30:00)] were greater than 0.05"
    results = alarm_fires(world, names[0], reason)
    assert [r["outcome"] for r in results] == ["rolled_back"], results
    target = world.registry.resolve_alias(MODEL, "prod")
    assert (target.version, target.canary_version) == ("1", None)
    last = target.moves[-1]
    assert (last.action, last.by, last.version) == ("end_canary", "guardrail", "1")
    assert names[0] in last.reason and "Threshold Crossed" in last.reason
    assert alarms(world) == []
    table = versions_table(world)
    assert "end_canary" in table and "guardrail" in table and names[0] in table

    ok = alarm_state_change({"AlarmName": names[0], "StateValue": "OK", "StateReason": "back"}, previous="ALARM")
    assert world.gateway.event_rules is not None
    assert world.gateway.event_rules.put_events([{"Source": ok["source"], "DetailType": ok["detail-type"],
                                                  "Detail": json.dumps(ok["detail"])}]) == []


def test_a_healthy_canary_is_promoted_by_its_schedule_after_the_bake(fresh: World, http: Any) -> None:
    """Given a canary of version 3 (healthy) at 10% started with promote_after and a 30-minute bake,
    when its EventBridge Scheduler schedule fires (its payload, to the function it targets, as Scheduler does),
    then the schedule was at(now + 30 min) in UTC, invoking the guardrail function as the scheduler role; the
    function promotes version 3 (1 goes to history), records why, and the alarms and schedule are gone."""
    world = fresh
    before = datetime.now(UTC).replace(microsecond=0)
    started = put_alias(http, world, {"action": "canary", "version": "3", "weight": 0.1, "promote_after": True,
                                      "bake_seconds": 1800})
    plan = started["guardrails"]
    assert before + timedelta(minutes=30) <= datetime.fromisoformat(plan["promote_at"]) <= \
        datetime.now(UTC) + timedelta(minutes=30)
    scheduler = world.stack.client("scheduler")
    schedule = scheduler.get_schedule(Name=plan["schedule"])
    assert schedule["ScheduleExpression"] == f"at({plan['promote_at'][:19]})"
    assert schedule["ScheduleExpressionTimezone"] == "UTC" and schedule["ActionAfterCompletion"] == "DELETE"
    assert schedule["Target"]["Arn"] == world.stack.names["GuardrailFunction.Arn"]
    assert schedule["Target"]["RoleArn"] == world.stack.client("iam").get_role(
        RoleName=world.stack.names["SchedulerRole"])["Role"]["Arn"]
    for key in keys_routed(0.1, True, 3):
        r = http("POST", f"{world.url}/v1/models/{MODEL}/predict", {"records": [RECORD]},
                 headers={**KEY, "X-Maas-Routing-Key": key})
        assert r.status == 200 and r.json()["version"] == "3"

    assert world.gateway.event_rules is not None
    decision = world.gateway.event_rules.fire_schedule(plan["schedule"])
    assert decision["outcome"] == "promoted", decision
    target = world.registry.resolve_alias(MODEL, "prod")
    assert (target.version, target.canary_version, target.history[-1]) == ("3", None, "1")
    assert (target.moves[-1].action, target.moves[-1].by) == ("promote", "guardrail")
    assert plan["schedule"] in target.moves[-1].reason and "no canary alarm in ALARM" in target.moves[-1].reason
    assert alarms(world) == []
    with pytest.raises(ClientError, match="ResourceNotFound"):
        scheduler.get_schedule(Name=plan["schedule"])
    assert "promote" in versions_table(world).split("ALIAS")[-1]


def test_a_schedule_does_not_promote_while_an_alarm_is_in_alarm(fresh: World, http: Any) -> None:
    """Given a canary of the failing version 2 with promote_after, whose p99 alarm is in ALARM but whose
    state change has not been delivered yet,
    when its schedule fires first,
    then the function keeps the canary (and says which alarm), and the late alarm event still ends it."""
    world = fresh
    plan = put_alias(http, world, {"action": "canary", "version": "2", "weight": 0.2, "promote_after": True,
                                   "bake_seconds": 60})["guardrails"]
    p99 = f"{world.prefix}/{MODEL}/prod/2/latency-p99"
    world.stack.client("cloudwatch").set_alarm_state(AlarmName=p99, StateValue="ALARM", StateReason="p99 2400 ms")
    assert world.gateway.event_rules is not None
    decision = world.gateway.event_rules.fire_schedule(plan["schedule"])
    assert decision["outcome"] == "kept" and p99 in decision["reason"] and "p99 2400 ms" in decision["reason"]
    assert world.registry.resolve_alias(MODEL, "prod").canary_version == "2"
    assert [r["outcome"] for r in alarm_fires(world, p99, "p99 2400 ms")] == ["rolled_back"]
    assert world.registry.resolve_alias(MODEL, "prod").canary_version is None


class _RacingRegistry(Registry):
    """A registry whose first alias read in each of two threads waits for the other's: both moves read the
    same revision, so both conditional writes race for it."""

    def __init__(self, table: str) -> None:
        super().__init__(table)
        self.barrier = threading.Barrier(2, timeout=20)
        self._waited = threading.local()

    def _alias_or_none(self, name: str, alias: str) -> AliasTarget | None:
        found = super()._alias_or_none(name, alias)
        if not getattr(self._waited, "done", False):
            self._waited.done = True
            self.barrier.wait()
        return found


@pytest.mark.parametrize("automatic", ["rollback", "promotion"])
def test_a_human_move_and_an_automatic_one_never_both_apply(fresh: World, automatic: str) -> None:
    """Given a canary of version 3 on prod (stable 1),
    when a person promotes version 2 (expecting 1) at the same moment as the guardrail rolls the canary back
    (its alarm fired) or promotes it (its schedule fired), both having read the same alias revision,
    then exactly one of the two conditional writes applies: one new move in the history, and the loser is a
    409 for the person or a logged `kept` for the guardrail, never a second move over the first."""
    world = fresh
    guard = world.guard()
    started, _ = move_alias(world.registry, guard, MODEL, "prod", MoveRequest("canary", "3", 0.2))
    racing = _RacingRegistry(world.stack.names["RegistryTable"])
    outcomes: dict[str, Any] = {}

    def person() -> None:
        try:
            outcomes["person"] = move_alias(racing, guard, MODEL, "prod",
                                            MoveRequest("promote", "2", expected_version="1", by="alice"))[0]
        except ConflictError as exc:
            outcomes["person"] = exc

    def machine() -> None:
        ref = CanaryRef(MODEL, "prod", "3")
        if automatic == "rollback":
            outcomes["machine"] = on_alarm(racing, guard, ref.alarm_name(guard.prefix, "error-rate"), "ALARM", "5xx")
        else:
            from maas_core.guardrails import Promotion

            outcomes["machine"] = on_promotion_due(racing, guard, Promotion(MODEL, "prod", "3", "1", "s", "t"))

    threads = [threading.Thread(target=person), threading.Thread(target=machine)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    person_won = isinstance(outcomes["person"], AliasTarget)
    machine_won = outcomes["machine"].outcome != "kept"
    assert person_won != machine_won, outcomes
    after = world.registry.resolve_alias(MODEL, "prod")
    assert after.revision == started.revision + 1 and len(after.moves) == len(started.moves) + 1
    if person_won:
        assert (after.version, after.moves[-1].by) == ("2", "alice")
        assert "not" in outcomes["machine"].reason
    else:
        assert after.moves[-1].by == "guardrail"
        assert after.version == ("1" if automatic == "rollback" else "3")
        assert "changed concurrently" in outcomes["person"].message
    assert after.canary_version is None
