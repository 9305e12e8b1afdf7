"""Answer before API Gateway or Lambda gives up on the request.

API Gateway (REST) cuts an integration off at 29 s and answers 504 itself; Lambda kills a function at
its timeout. Either way the caller gets a bare gateway error and the function may stop half-way. So
every HTTP invocation records its deadline -- the earlier of the Lambda context's remaining time and
API Gateway's 29 s counted from the request's `requestTimeEpoch` -- and the expensive steps (loading
a model, running inference) call `check()` first: when less than the safety margin is left they raise
`DeadlineExceededError`, a 503 with `Retry-After` in the documented error shape, instead of starting
work that cannot finish.

The margin is `MAAS_DEADLINE_MARGIN_MS` (default 1000 ms): time kept back for writing the answer,
metrics and capture. Outside an HTTP invocation (batch jobs, the CLI, tests without a context) there
is no deadline and `check()` does nothing.
"""

from __future__ import annotations

import os
import time
from contextvars import ContextVar
from typing import Any

from maas_core.errors import ServiceUnavailableError

API_GATEWAY_LIMIT_MS = 29_000  # REST API integration timeout (the default, and the most it allows)
DEFAULT_MARGIN_MS = 1_000
RETRY_AFTER_SECONDS = 1

_deadline: ContextVar[float | None] = ContextVar("maas_deadline", default=None)  # time.monotonic() seconds


class DeadlineExceededError(ServiceUnavailableError):
    """Too little time is left to finish the request: the caller should retry (a warm function will be
    faster: the model is then loaded)."""

    code = "deadline_exceeded"
    retry_after = RETRY_AFTER_SECONDS


def margin_ms() -> int:
    raw = os.environ.get("MAAS_DEADLINE_MARGIN_MS", "")
    try:
        return max(0, int(raw)) if raw.strip() else DEFAULT_MARGIN_MS
    except ValueError:
        return DEFAULT_MARGIN_MS  # a bad setting must not take every request down


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
    """Record this invocation's deadline (each Lambda invocation, or local gateway request, runs in
    its own context, so concurrent requests in one process do not share it)."""
    budget = budget_ms(context, event)
    _deadline.set(None if budget is None else time.monotonic() + budget / 1000)


def clear() -> None:
    _deadline.set(None)


def remaining_ms() -> float | None:
    deadline = _deadline.get()
    return None if deadline is None else (deadline - time.monotonic()) * 1000


def check(step: str) -> None:
    """Raise DeadlineExceededError when less than the margin is left before `step` starts."""
    left = remaining_ms()
    if left is None:
        return
    margin = margin_ms()
    if left < margin:
        raise DeadlineExceededError(
            f"not enough time left to finish the request ({step}); retry in {RETRY_AFTER_SECONDS} s",
            [{"reason": "deadline", "step": step, "remaining_ms": max(0, int(left)), "margin_ms": margin}],
        )
