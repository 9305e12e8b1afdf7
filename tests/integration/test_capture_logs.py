"""Prediction capture off the request path: predict and batch write their captures as structured log lines
(maas_core.monitoring.capture), a CloudWatch Logs subscription hands them to the capture function as awslogs
events (gzip + base64), and the capture function writes them to the captures table (on moto)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.client import BaseClient

from maas_core.batch import run_batch
from maas_core.monitoring.batch import BatchMonitor
from maas_core.predictor import Predictor
from maas_core.settings import Settings, get_settings
from maas_local.testing.tiny_model import publish_tiny_model
from tests.conftest import create_registry_table
from tests.integration.test_batch import make_records, out_key, put, read_jsonl, to_csv
from tests.integration.test_monitoring import lines_written
from tests.lambda_events import call, load_function

CAPTURES = "test-captures"
GOOD = {"x1": 1.5, "x2": -2, "colour": "blue"}
PREDICT = "/v1/models/tiny/predict"


@pytest.fixture
def world(aws_world, monkeypatch) -> Iterator[Any]:
    """Given the tiny model as prod, a captures table, and capture on as the template configures it."""
    create_registry_table(CAPTURES)
    monkeypatch.setenv("MAAS_CAPTURE_RATE", "1")
    monkeypatch.setenv("MAAS_CAPTURES_TABLE", CAPTURES)
    get_settings.cache_clear()
    publish_tiny_model(aws_world.store, aws_world.registry)
    yield aws_world
    get_settings.cache_clear()


def count_aws_calls(monkeypatch) -> Counter[str]:
    """Every botocore API call from now on, as "service.Operation"."""
    calls: Counter[str] = Counter()
    real = BaseClient._make_api_call

    def counting(self: BaseClient, operation: str, params: Any) -> Any:
        calls[f"{self.meta.service_model.service_name}.{operation}"] += 1
        return real(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counting)
    return calls


def test_a_captured_prediction_makes_no_aws_call(world, monkeypatch, capsys) -> None:
    """Given capture on (rate 1) and a warm predict function (the model loaded),
    when a caller predicts 100 records,
    then the request makes exactly the AWS calls it makes with capture off (none for capture: no SQS),
    and the captures are written to stdout as log lines carrying the subscription's marker."""
    get_settings().max_records = max(get_settings().max_records, 100)
    app = load_function("predict")
    assert call(app, "POST", PREDICT, body={"records": [GOOD]})[0] == 200  # warm: model, alias
    capsys.readouterr()
    calls = count_aws_calls(monkeypatch)
    status, body = call(app, "POST", PREDICT, body={"records": [GOOD] * 100})
    assert status == 200 and len(body["predictions"]) == 100
    on = dict(calls)
    out = capsys.readouterr().out
    assert not any(c.startswith("sqs.") for c in on), on
    assert '"maas_capture":1' in out

    monkeypatch.setenv("MAAS_CAPTURE_RATE", "0")
    get_settings.cache_clear()
    off_app = load_function("predict")
    assert call(off_app, "POST", PREDICT, body={"records": [GOOD]})[0] == 200
    calls.clear()
    assert call(off_app, "POST", PREDICT, body={"records": [GOOD] * 100})[0] == 200
    assert on == dict(calls)


def test_a_big_batch_file_captures_every_row_with_one_write_per_chunk_and_no_aws_call(world, monkeypatch) -> None:
    """Given a 2,000-row file read 500 rows at a time,
    when the batch runs with capture on, then capture makes no AWS call (no SQS: the calls are the file's
    reads and writes), writes once per chunk, and the lines hold every row once, with source "batch"."""
    put(world.bucket, "batch/input/tiny/big.csv", to_csv(make_records(2000)))
    predictor = Predictor(Settings(), world.registry, world.store)
    with lines_written(forward=False) as writes:
        calls = count_aws_calls(monkeypatch)
        result = run_batch(world.bucket, "batch/input/tiny/big.csv", predictor, chunk_rows=500,
                           monitor=BatchMonitor(1.0))
    assert (result.status, result.predicted) == ("done", 2000)
    assert len(writes) == 4 and not any(c.startswith("sqs.") for c in calls), calls
    captures = [c for text in writes for line in text.splitlines() for c in json.loads(line)["captures"]]
    ids = [line["id"] for line in read_jsonl(world.bucket, out_key("tiny", "big.csv", "predictions"))]
    assert sorted(c["id"] for c in captures) == sorted(ids) and {c["source"] for c in captures} == {"batch"}
