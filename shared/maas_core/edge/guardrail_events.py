"""The guardrail function's two events, as AWS delivers them:

    EventBridge, a CloudWatch alarm state change (the template's CanaryAlarmRule matches the canary alarms'
    name prefix going to ALARM):
        {"source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change",
         "detail": {"alarmName": "...", "state": {"value": "ALARM", "reason": "..."}, ...}, ...}
    EventBridge Scheduler, a canary's promotion schedule: its target Input as it was written,
        {"action": "canary_promote", "model": ..., "alias": ..., "version": ..., "stable_version": ..., ...}

Anything else is `None`: logged and dropped by the function (retrying a malformed event would not fix it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from maas_core.guardrails import PROMOTE_ACTION, Promotion

ALARM_SOURCE = "aws.cloudwatch"
ALARM_DETAIL_TYPE = "CloudWatch Alarm State Change"


@dataclass(frozen=True)
class AlarmChange:
    alarm_name: str
    state: str
    reason: str


class _State(BaseModel):
    value: str
    reason: str = ""


class _AlarmDetail(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    alarm_name: str = Field(alias="alarmName", max_length=255)
    state: _State


class _PromotionPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    alias: str
    version: str
    stable_version: str
    schedule: str = ""
    due_at: str = ""


def parse(event: Any) -> AlarmChange | Promotion | None:
    if not isinstance(event, Mapping):
        return None
    try:
        if event.get("source") == ALARM_SOURCE and event.get("detail-type") == ALARM_DETAIL_TYPE:
            detail = _AlarmDetail.model_validate(event.get("detail"))
            return AlarmChange(detail.alarm_name, detail.state.value, detail.state.reason)
        if event.get("action") == PROMOTE_ACTION:
            return Promotion(**_PromotionPayload.model_validate(event).model_dump())
    except ValidationError:
        return None
    return None
