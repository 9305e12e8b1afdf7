"""Canary guardrails against moto (maas_core.guardrails): what a canary start refuses before creating anything,
which events the guardrail function ignores, and the alarms' names. The full story (alarm -> EventBridge ->
rollback, schedule -> promotion, races) runs on the local stack: tests/e2e/test_canary_guardrails.py."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from maas_core.errors import UnprocessableError
from maas_core.guardrails import CanaryRef, Guardrails, MoveRequest, move_alias, parse_bake
from maas_core.settings import Settings, get_settings
from maas_local.testing.events import alarm_state_change
from maas_local.testing.tiny_model import publish_tiny_model
from tests.lambda_events import FakeLambdaContext, call, load_function


@pytest.fixture
def tiny(aws_world):
    """Given model tiny: version 1 (prod), 2 and 3."""
    for alias in ("prod", None, None):
        publish_tiny_model(aws_world.store, aws_world.registry, alias=alias)
    return aws_world


def canary_alarms() -> list[str]:
    return [a["AlarmName"] for a in boto3.client("cloudwatch").describe_alarms(AlarmNamePrefix="maas-canary/")
            ["MetricAlarms"]]


def test_alarm_names_read_back_only_our_own() -> None:
    """Given the alarm name of a canary,
    then it reads back as that canary and signal; names of another prefix, shape, signal or version form don't."""
    ref = CanaryRef("iris.v2", "prod-eu", "12")
    name = ref.alarm_name("maas-canary", "error-rate")
    assert name == "maas-canary/iris.v2/prod-eu/12/error-rate"
    assert CanaryRef.from_alarm_name("maas-canary", name) == (ref, "error-rate")
    for other in ("other-canary/iris/prod/1/error-rate", "maas-canary/iris/prod/1",
                  "maas-canary/iris/prod/01/error-rate", "maas-canary/iris/prod/1/cpu",
                  "maas-canary/ir is/prod/1/error-rate", "maas-canaryx/iris/prod/1/accuracy"):
        assert CanaryRef.from_alarm_name("maas-canary", other) is None, other


@pytest.mark.parametrize(("text", "seconds"), [("30m", 1800), ("90s", 90), ("2h", 7200), ("7d", 604800)])
def test_bake_times_parse(text: str, seconds: int) -> None:
    """Given a bake time as the CLI takes it, then it is that many seconds."""
    assert parse_bake(text) == seconds


@pytest.mark.parametrize("text", ["59s", "8d", "30", "m", "1.5h", "-5m", "030m"])
def test_bake_times_out_of_bounds_or_malformed_are_refused(text: str) -> None:
    """Given a bake time under a minute, over 7 days or not a number and unit, then a 422 naming it."""
    with pytest.raises(UnprocessableError, match="bake"):
        parse_bake(text)


REFUSED_STARTS = [
    ({"action": "canary", "version": "2", "weight": 0.1, "promote_after": True}, "go together"),
    ({"action": "canary", "version": "2", "weight": 0.1, "bake_seconds": 600}, "go together"),
    ({"action": "canary", "version": "2", "weight": 0, "promote_after": True, "bake_seconds": 600}, "weight above 0"),
    ({"version": "2", "promote_after": True, "bake_seconds": 600}, "action 'canary'"),
    ({"action": "canary", "version": "2", "weight": 0.1, "promote_after": True, "bake_seconds": 30}, "bake_seconds"),
    # no guardrail function or scheduler role configured (this environment): refused before anything exists
    ({"action": "canary", "version": "2", "weight": 0.1, "promote_after": True, "bake_seconds": 600},
     "MAAS_GUARDRAIL_FUNCTION_ARN"),
]


def test_a_canary_start_that_cannot_be_guarded_is_refused_before_anything_is_created(tiny) -> None:
    """Given the admin function and prod on version 1,
    when a canary start asks for automatic promotion without a bake time (or the other way round), with no
    weight, with a bake under a minute, or where no guardrail function and scheduler role are configured,
    then it is a 422 naming what is wrong, the alias did not move and no alarm was created."""
    get_settings.cache_clear()
    admin = load_function("admin")
    admin.registry.cache_clear()
    before = tiny.registry.resolve_alias("tiny", "prod")
    for body, words in REFUSED_STARTS:
        status, resp = call(admin, "PUT", "/v1/models/tiny/aliases/prod", body=body)
        assert status == 422, (body, resp)
        assert words in resp["error"]["message"] + json.dumps(resp["error"]["details"]), (words, resp)
        assert tiny.registry.resolve_alias("tiny", "prod") == before
        assert canary_alarms() == []


def test_a_canary_whose_move_fails_leaves_no_alarms(tiny) -> None:
    """Given prod on version 1,
    when a canary of version 2 is started expecting prod on version 3 (a 409),
    then its alarms, created first so that a canary is never unwatched, are deleted again."""
    guard = Guardrails(Settings())
    with pytest.raises(Exception, match="not '3'"):
        move_alias(tiny.registry, guard, "tiny", "prod", MoveRequest("canary", "2", 0.1, expected_version="3"))
    assert canary_alarms() == []
    target, watch = move_alias(tiny.registry, guard, "tiny", "prod", MoveRequest("canary", "2", 0.1))
    assert watch is not None and sorted(watch.alarms) == sorted(canary_alarms()) and len(watch.alarms) == 3
    move_alias(tiny.registry, guard, "tiny", "prod", MoveRequest("promote", "3"))
    assert canary_alarms() == []


def guardrail(event: Any) -> dict[str, Any]:
    get_settings.cache_clear()
    result: dict[str, Any] = load_function("guardrail").lambda_handler(event, FakeLambdaContext())
    return result


def test_the_guardrail_function_ignores_what_is_not_its_own(tiny) -> None:
    """Given the guardrail function,
    when it gets an unrelated event, another alarm's state change, or a canary alarm going to OK,
    then it moves nothing and says `ignored`."""
    before = tiny.registry.resolve_alias("tiny", "prod")
    foreign = alarm_state_change({"AlarmName": "billing-over-budget", "StateValue": "ALARM", "StateReason": "x"})
    ok = alarm_state_change({"AlarmName": "maas-canary/tiny/prod/2/error-rate", "StateValue": "OK",
                             "StateReason": "x"})
    for event in ({"hello": "world"}, {"source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change"},
                  foreign, ok, {"action": "canary_promote", "model": "tiny"}):
        assert guardrail(event)["outcome"] == "ignored", event
    assert tiny.registry.resolve_alias("tiny", "prod") == before


def test_an_alarm_after_a_person_promoted_the_canary_changes_nothing(tiny, caplog) -> None:
    """Given a canary of version 2 that a person then promoted,
    when the canary's alarm event arrives late,
    then the guardrail makes no move (the person's move wins) and its log says why."""
    guard = Guardrails(Settings())
    move_alias(tiny.registry, guard, "tiny", "prod", MoveRequest("canary", "2", 0.1))
    move_alias(tiny.registry, guard, "tiny", "prod", MoveRequest("promote", "2", by="alice"))
    before = tiny.registry.resolve_alias("tiny", "prod")
    event = alarm_state_change({"AlarmName": "maas-canary/tiny/prod/2/error-rate", "StateValue": "ALARM",
                                "StateReason": "Threshold Crossed"})
    decision = guardrail(event)
    assert decision["outcome"] == "kept" and "canary version None, not '2'" in decision["reason"]
    assert tiny.registry.resolve_alias("tiny", "prod") == before
    assert "a later move wins" in caplog.text


def test_a_move_stands_when_its_cleanup_is_refused_and_a_leftover_alarm_then_changes_nothing(tiny, caplog) -> None:
    """Given a canary of version 2, and CloudWatch refusing to list alarms (a CLI user without the permission),
    when a person promotes version 3,
    then the promotion stands, the failed cleanup is logged and the canary's alarms are left; when one of them
    fires later, the guardrail finds no such canary and moves nothing."""
    from botocore.exceptions import ClientError

    guard = Guardrails(Settings())
    move_alias(tiny.registry, guard, "tiny", "prod", MoveRequest("canary", "2", 0.1))
    refusing = boto3.client("cloudwatch")

    def refuse(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "DescribeAlarms")

    refusing.meta.events.register("before-call.cloudwatch.DescribeAlarms", refuse)
    target, _ = move_alias(tiny.registry, Guardrails(Settings(), cloudwatch=refusing), "tiny", "prod",
                           MoveRequest("promote", "3", by="alice"))
    assert (target.version, target.canary_version) == ("3", None)
    assert "could not be deleted" in caplog.text and len(canary_alarms()) == 3
    event = alarm_state_change({"AlarmName": "maas-canary/tiny/prod/2/error-rate", "StateValue": "ALARM",
                                "StateReason": "late"})
    assert guardrail(event)["outcome"] == "kept"
    assert tiny.registry.resolve_alias("tiny", "prod").version == "3"
