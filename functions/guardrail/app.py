"""Guardrail function: ends a canary whose alarm went to ALARM (EventBridge rule on the canary alarms) and
promotes a canary whose bake time is over (its EventBridge Scheduler schedule). Thin on purpose: the logic
is maas_core.guardrails; its moves are the admin's conditional writes, so a person's move in between wins."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from maas_core.edge.guardrail_events import AlarmChange, parse
from maas_core.guardrails import Decision, Guardrails, on_alarm, on_promotion_due
from maas_core.registry import Registry
from maas_core.settings import get_settings

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    registry, guard = Registry(settings.registry_table), Guardrails(settings)
    parsed = parse(event)
    if parsed is None:
        logger.warning("not an alarm state change or promotion schedule event: ignored",
                       extra={"event_keys": sorted(event)[:20] if isinstance(event, dict) else type(event).__name__})
        decision = Decision("ignored", reason="unrecognised event")
    elif isinstance(parsed, AlarmChange):
        decision = on_alarm(registry, guard, parsed.alarm_name, parsed.state, parsed.reason)
    else:
        decision = on_promotion_due(registry, guard, parsed)
    logger.info("guardrail decision", extra={"decision": asdict(decision)})
    return asdict(decision)
