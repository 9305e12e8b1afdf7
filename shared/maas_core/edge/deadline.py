"""The deadline of an HTTP invocation: answer before API Gateway or Lambda gives up on the request.

API Gateway (REST) cuts an integration off at 29 s and answers 504 itself; Lambda kills a function at
its timeout. Either way the caller gets a bare gateway error and the function may stop half-way. So
every HTTP invocation records its budget -- the earlier of the Lambda context's remaining time and
API Gateway's 29 s counted from the request's `requestTimeEpoch` -- in maas_core.deadline, whose
`check()` the expensive steps call first.
"""

from __future__ import annotations

import time
from typing import Any

from maas_core import deadline

API_GATEWAY_LIMIT_MS = 29_000  # REST API integration timeout (the default, and the most it allows)


def budget_ms(context: Any, event: dict[str, Any] | None = None, now_ms: float | None = None) -> float | None:
    """Milliseconds left for this invocation: the smaller of the Lambda's remaining time and API
    Gateway's 29 s since the request arrived; None when neither is known."""
    budgets: list[float] = []
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        budgets.append(float(remaining()))
    started = ((event or {}).get("requestContext") or {}).get("requestTimeEpoch")
    if isinstance(started, (int, float)) and not isinstance(started, bool):
        elapsed = (time.time() * 1000 if now_ms is None else now_ms) - started
        # a replayed or hand-written event (elapsed beyond the limit, or in the future) says nothing
        # about this request's gateway: only the Lambda clock counts then
        if 0 <= elapsed < API_GATEWAY_LIMIT_MS:
            budgets.append(API_GATEWAY_LIMIT_MS - elapsed)
    return min(budgets) if budgets else None


def start(context: Any, event: dict[str, Any] | None = None) -> None:
    """Record this invocation's deadline from its Lambda context and API Gateway event."""
    deadline.set_budget(budget_ms(context, event))
