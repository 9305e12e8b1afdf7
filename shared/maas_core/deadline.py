"""A request's time budget: refuse to start work that cannot finish in time.

The edge (maas_core.edge.deadline) records each HTTP invocation's budget -- the earlier of the Lambda
context's remaining time and API Gateway's 29 s -- and the expensive steps (loading a model, running
inference) call `check()` first: when less than the safety margin is left they raise
`DeadlineExceededError`, a 503 with `Retry-After` in the documented error shape, instead of starting
work that cannot finish.

The margin is `MAAS_DEADLINE_MARGIN_MS` (Settings.deadline_margin_ms, default 1000 ms, at most 10 s): time
kept back for writing the answer, metrics and capture; a bad value is logged and the default is used.
Outside an HTTP invocation (batch jobs, the CLI, tests without a context) there is no budget and `check()`
does nothing.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

from maas_core.errors import ServiceUnavailableError
from maas_core.settings import get_settings

RETRY_AFTER_SECONDS = 1

_deadline: ContextVar[float | None] = ContextVar("maas_deadline", default=None)  # time.monotonic() seconds


class DeadlineExceededError(ServiceUnavailableError):
    """Too little time is left to finish the request: the caller should retry (a warm function will be
    faster: the model is then loaded)."""

    code = "deadline_exceeded"
    retry_after = RETRY_AFTER_SECONDS


def margin_ms() -> int:
    return get_settings().deadline_margin_ms


def set_budget(budget_ms: float | None) -> None:
    """Record this invocation's budget (each Lambda invocation, or local gateway request, runs in its own
    context, so concurrent requests in one process do not share it); None: no deadline."""
    _deadline.set(None if budget_ms is None else time.monotonic() + budget_ms / 1000)


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
