"""The handlers answer before API Gateway (29 s) or Lambda (its timeout) cuts them off: with too little
time left they answer 503 + Retry-After in the documented shape instead of starting a model load or
inference that could not finish (maas_core.deadline)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from maas_core import deadline
from maas_core.edge import deadline as invocation_deadline
from maas_core.settings import get_settings
from maas_local.testing.tiny_model import publish_tiny_model
from tests.lambda_events import FakeLambdaContext, assert_error, load_function, rest_event

GOOD = {"x1": 1.5, "x2": -2, "colour": "blue"}
PREDICT = "/v1/models/tiny/predict"


@pytest.fixture
def predict_fn(aws_world, monkeypatch):
    """Given the predict function (fresh process state) and the tiny model published as prod."""
    monkeypatch.delenv("MAAS_DEADLINE_MARGIN_MS", raising=False)
    get_settings.cache_clear()
    publish_tiny_model(aws_world.store, aws_world.registry)
    yield load_function("predict")
    deadline.clear()
    get_settings.cache_clear()


def invoke(app: Any, event: dict[str, Any], remaining_ms: int) -> tuple[int, dict[str, list[str]], dict[str, Any]]:
    resp = app.lambda_handler(event, FakeLambdaContext(remaining_ms=remaining_ms))
    return resp["statusCode"], resp["multiValueHeaders"], json.loads(resp["body"])


def predict_event(**kwargs: Any) -> dict[str, Any]:
    return rest_event("POST", PREDICT, body={"records": [GOOD]}, resource="/v1/models/{model}/predict",
                      path_params={"model": "tiny"}, **kwargs)


def test_a_request_with_less_than_the_margin_left_gets_503_with_retry_after(predict_fn) -> None:
    """Given a Lambda context with 300 ms left (below the default 1000 ms margin),
    when a predict request arrives,
    then it is answered 503 deadline_exceeded with Retry-After, in the documented error shape."""
    status, headers, body = invoke(predict_fn, predict_event(), remaining_ms=300)
    assert status == 503
    assert headers["Retry-After"] == ["1"]
    assert_error(body, "deadline_exceeded", "not enough time left", "retry")
    assert body["error"]["details"][0]["remaining_ms"] <= 300


def test_the_same_request_with_time_to_spare_is_answered(predict_fn) -> None:
    """Given the same request with 28 s left, then it predicts (the guard is not always on)."""
    status, headers, body = invoke(predict_fn, predict_event(), remaining_ms=28_000)
    assert status == 200, body
    assert "Retry-After" not in headers and body["predictions"][0]["label"] in {"yes", "no"}


def test_the_margin_is_a_setting(predict_fn, monkeypatch) -> None:
    """Given the model loaded by a first request, and MAAS_DEADLINE_MARGIN_MS=100, then 300 ms left is enough;
    with 5000, 3 s left is not. (Loaded first: on a loaded machine loading it alone can take over 200 ms.)"""
    assert invoke(predict_fn, predict_event(), remaining_ms=28_000)[0] == 200
    monkeypatch.setenv("MAAS_DEADLINE_MARGIN_MS", "100")
    get_settings.cache_clear()  # settings are read once per process
    assert invoke(predict_fn, predict_event(), remaining_ms=300)[0] == 200
    monkeypatch.setenv("MAAS_DEADLINE_MARGIN_MS", "5000")
    get_settings.cache_clear()
    status, _, body = invoke(predict_fn, predict_event(), remaining_ms=3_000)
    assert status == 503 and body["error"]["details"][0]["margin_ms"] == 5000


@pytest.mark.parametrize("bad", ["soon", "-5", "60000"])
def test_a_bad_margin_keeps_the_default_and_requests_are_answered(predict_fn, monkeypatch, bad: str) -> None:
    """Given MAAS_DEADLINE_MARGIN_MS that is not a number, negative, or so large it would refuse everything,
    when requests arrive, then the default 1000 ms margin applies: 28 s left is answered, 300 ms is a 503."""
    monkeypatch.setenv("MAAS_DEADLINE_MARGIN_MS", bad)
    get_settings.cache_clear()
    assert invoke(predict_fn, predict_event(), remaining_ms=28_000)[0] == 200
    status, _, body = invoke(predict_fn, predict_event(), remaining_ms=300)
    assert status == 503 and body["error"]["details"][0]["margin_ms"] == 1000


def test_api_gateway_29_s_limit_counts_from_the_request_time(predict_fn) -> None:
    """Given a Lambda with plenty of time (60 s) but a request API Gateway received 28.5 s ago,
    then the handler answers 503 at once: the gateway would answer 504 before a prediction came back."""
    event = predict_event()
    event["requestContext"]["requestTimeEpoch"] = int(time.time() * 1000) - 28_500
    status, headers, body = invoke(predict_fn, event, remaining_ms=60_000)
    assert status == 503 and headers["Retry-After"] == ["1"]
    assert_error(body, "deadline_exceeded")


def test_a_replayed_event_with_an_old_request_time_is_judged_by_the_lambda_clock(predict_fn) -> None:
    """Given an event whose requestTimeEpoch is a day old (a replayed test event), then only the Lambda's
    remaining time counts and it is answered."""
    event = predict_event()
    event["requestContext"]["requestTimeEpoch"] = int(time.time() * 1000) - 86_400_000
    assert invoke(predict_fn, event, remaining_ms=28_000)[0] == 200


def test_time_running_out_before_the_model_load_stops_there(predict_fn, monkeypatch) -> None:
    """Given a request that starts with time to spare but whose registry lookup uses it up,
    when the predictor is about to load the model,
    then it answers 503 naming that step, and the model was never loaded."""
    p = predict_fn.predictor()
    loads: list[str] = []
    real_resolve, real_get = p.registry.resolve_alias, p.cache.get

    def slow_resolve(name: str, alias: str):
        target = real_resolve(name, alias)
        monkeypatch.setattr(deadline, "remaining_ms", lambda: 50.0)  # the clock ran down meanwhile
        return target

    monkeypatch.setattr(p.registry, "resolve_alias", slow_resolve)
    monkeypatch.setattr(p.cache, "get", lambda *a, **k: loads.append("load") or real_get(*a, **k))
    status, headers, body = invoke(predict_fn, predict_event(), remaining_ms=28_000)
    assert status == 503 and headers["Retry-After"] == ["1"]
    assert_error(body, "deadline_exceeded", "loading model 'tiny'")
    assert loads == []


@pytest.mark.parametrize(("remaining", "epoch_offset", "expected"), [
    (5_000, None, 5_000.0),  # Lambda only
    (60_000, 10_000, 19_000.0),  # gateway: 29 s - 10 s
    (5_000, 10_000, 5_000.0),  # the earlier of the two
    (5_000, -1_000, 5_000.0),  # a request time in the future is ignored
])
def test_budget_is_the_earlier_of_lambda_and_api_gateway(remaining: int, epoch_offset: int | None,
                                                         expected: float) -> None:
    now = 1_700_000_000_000
    event = {"requestContext": {"requestTimeEpoch": now - epoch_offset}} if epoch_offset is not None else {}
    assert invocation_deadline.budget_ms(FakeLambdaContext(remaining_ms=remaining), event, now_ms=now) == expected


def test_without_a_context_there_is_no_deadline() -> None:
    """Batch jobs and the CLI call the predictor without a Lambda HTTP context: check() never refuses."""
    invocation_deadline.start(object(), None)
    deadline.check("anything")
    assert deadline.remaining_ms() is None
