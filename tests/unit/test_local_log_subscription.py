"""The local stand-in for the capture log subscription (maas_local.log_subscription), without AWS."""

from __future__ import annotations

import threading
from typing import Any

from maas_core.edge.awslogs import awslogs_messages
from maas_core.monitoring import capture
from maas_core.monitoring.capture import CaptureWriter, capture_lines
from maas_local.log_subscription import LogSubscription

CAPTURES = [{"id": f"{i:032x}-0", "model": "m", "version": "1"} for i in range(3)]


def test_lines_reach_the_function_as_an_awslogs_event_without_the_writer_waiting(capsys) -> None:
    """Given a subscription whose function is busy (blocked) and a writer of three captures,
    when the writer writes them, then it returns at once with all three sent (the request does not wait on
    the function), and once the function is free it gets them as an awslogs DATA_MESSAGE holding the very
    line the writer wrote; after stop, capture lines go to stdout again."""
    release = threading.Event()
    events: list[dict[str, Any]] = []

    def busy_function(event: dict[str, Any]) -> None:
        release.wait(5)
        events.append(event)

    with LogSubscription(busy_function) as subscription:
        result = CaptureWriter().send(CAPTURES)
        assert (result.sent, result.failed) == (3, 0) and events == []
        release.set()
        subscription.drain(timeout=5)
    [event] = events
    kind, log_events = awslogs_messages(event)
    assert kind == "DATA_MESSAGE" and [e["message"] for e in log_events] == capture_lines(CAPTURES)[0]
    assert capsys.readouterr().out == ""
    CaptureWriter().send(CAPTURES[:1])
    assert capsys.readouterr().out == capture_lines(CAPTURES[:1])[0][0] + "\n"
    assert capture._writer is capture.write_stdout


def test_a_function_that_keeps_failing_is_retried_twice_and_its_event_kept() -> None:
    calls: list[int] = []

    def failing(event: dict[str, Any]) -> None:
        calls.append(1)
        raise RuntimeError("table down")

    with LogSubscription(failing) as subscription:
        CaptureWriter().send(CAPTURES)
        subscription.drain(timeout=5)
    assert len(calls) == 3 and subscription.lines == 0
    [failure] = subscription.failures
    assert failure["responsePayload"] == {"errorType": "RuntimeError", "errorMessage": "table down"}
    assert [e["message"] for e in awslogs_messages(failure["requestPayload"])[1]] == capture_lines(CAPTURES)[0]
