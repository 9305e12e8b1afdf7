"""API Gateway REST (v1) proxy events, as the service sends them to a function."""

from __future__ import annotations

import json
import uuid
from typing import Any


def rest_event(method: str, path: str, body: Any = None, query: dict[str, str] | None = None,
               resource: str | None = None, path_params: dict[str, str] | None = None,
               raw_body: str | None = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway proxy event. `body` is JSON-encoded; `raw_body` is sent as is (for malformed JSON)."""
    text = raw_body if raw_body is not None else (None if body is None else json.dumps(body))
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method,
        "headers": hdrs,
        "multiValueHeaders": {k: [v] for k, v in hdrs.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": path_params,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource or path, "httpMethod": method, "stage": "live",
            "requestId": str(uuid.uuid4()), "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": text,
        "isBase64Encoded": False,
    }


def alarm_state_change(alarm: dict[str, Any], previous: str = "OK") -> dict[str, Any]:
    """The EventBridge event CloudWatch sends when `alarm` (an item of describe_alarms' MetricAlarms) entered
    its current state, as a rule's target receives it (the fields the guardrail function reads, and the
    envelope around them)."""
    name = alarm["AlarmName"]
    arn = alarm.get("AlarmArn") or f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"
    region, account = arn.split(":")[3:5]
    updated = alarm.get("StateUpdatedTimestamp")
    at = updated.isoformat() if hasattr(updated, "isoformat") else str(updated or "")
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch", "account": account, "time": at, "region": region, "resources": [arn],
        "detail": alarm_change_detail(alarm, previous),
    }


def alarm_change_detail(alarm: dict[str, Any], previous: str = "OK") -> dict[str, Any]:
    """The `detail` of an alarm state change event."""
    return {
        "alarmName": alarm["AlarmName"],
        "state": {"value": alarm["StateValue"], "reason": alarm.get("StateReason", "")},
        "previousState": {"value": previous, "reason": ""},
        "configuration": {"description": alarm.get("AlarmDescription", ""),
                          "metrics": alarm.get("Metrics", [])},
    }
