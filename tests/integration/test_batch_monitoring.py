"""Batch predictions are monitored like the predict API (maas_core.monitoring.batch), on moto: EMF metrics
per model and version, capture as log lines (handed to the capture function as the log subscription
would) into the captures table with source "batch",
capture failures counted without failing the file, and text drift of a text model's batch rows."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

from maas_core.batch import BatchFileError, run_batch
from maas_core.manifest import Manifest, TensorInfo
from maas_core.monitoring import CaptureStore, CaptureWriter, sampled
from maas_core.monitoring.batch import BatchMonitor
from maas_core.monitoring.capture import MASK
from maas_core.monitoring.store import StoredCapture
from maas_core.predictor import Predictor
from maas_core.settings import Settings, get_settings
from maas_local.log_subscription import LogSubscription
from maas_local.testing import text_model
from maas_local.testing.tiny_model import publish_tiny_model
from maas_training.evaluate import baseline_statistics
from tests.conftest import AwsWorld, create_registry_table
from tests.integration.test_batch import make_records, out_key, put, read_jsonl, s3_event, to_csv, to_jsonl
from tests.integration.test_monitoring import broken_stdout, dimension_sets, emf_blobs
from tests.lambda_events import FakeLambdaContext, call, load_function

CAPTURES = "test-captures"
CONTEXT = FakeLambdaContext(remaining_ms=900_000)


@dataclass
class World:
    aws: AwsWorld
    subscription: LogSubscription
    captures: CaptureStore
    batch: ModuleType
    capture: ModuleType
    metrics: ModuleType

    @property
    def bucket(self) -> str:
        return self.aws.bucket

    def drain(self) -> LogSubscription:
        """Wait until the capture function has handled every capture line written so far."""
        self.subscription.drain(timeout=20)
        return self.subscription

    def stored(self, model: str = "tiny") -> list[StoredCapture]:
        now = int(time.time() * 1000)
        return self.captures.query(model, now - 3_600_000, now + 60_000)[0]

    def run(self, key: str) -> dict[str, Any]:
        return self.batch.lambda_handler(s3_event(self.bucket, key), CONTEXT)


@pytest.fixture
def world(aws_world: AwsWorld, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """Given the moto world with a captures table named in MAAS_* settings, capture lines handed to the
    capture function as the log subscription would, the tiny
    model's versions 1 (prod) and 2, and fresh batch / capture / metrics functions."""
    create_registry_table(CAPTURES)
    monkeypatch.setenv("MAAS_CAPTURES_TABLE", CAPTURES)
    get_settings.cache_clear()
    publish_tiny_model(aws_world.store, aws_world.registry)
    publish_tiny_model(aws_world.store, aws_world.registry, alias=None)
    batch = load_function("batch")
    capture = load_function("capture")
    subscription = LogSubscription(lambda ev: capture.lambda_handler(ev, FakeLambdaContext())).start()
    yield World(aws_world, subscription, CaptureStore(CAPTURES), batch, capture, load_function("metrics"))
    subscription.stop()
    get_settings.cache_clear()


def file_blobs(out: str) -> list[dict[str, Any]]:
    return [b for b in emf_blobs(out) if "FailedFiles" in b]


def capture_blobs(out: str) -> list[dict[str, Any]]:
    return [b for b in emf_blobs(out) if "CaptureFailures" in b]


GOOD = make_records(6)
BAD = [{"x1": "ten", "colour": "red"}, {"x2": 1.0, "colour": "blue"}]  # not a number; x1 missing


def test_batch_files_emit_metrics_per_version_and_are_captured_with_source_batch(world: World, capsys) -> None:
    """Given a CSV of 6 good and 2 bad rows for prod (version 1) and a JSONL of 3 rows for version 2,
    when the batch function processes both,
    then each file emits one blob under [model, version], [model], [source=batch] counting 1 request, its
    predicted and rejected rows, no failure and one latency per chunk; the label mix per version matches its
    predictions file; Captured counts every row under [service] too (the CaptureFailures alarm's set);
    and once the capture lines are consumed the captures table holds every row with source "batch", the
    prediction's id and output, and the metrics API counts them per version."""
    put(world.bucket, "batch/input/tiny/a.csv", to_csv(GOOD[:3] + BAD + GOOD[3:]))
    put(world.bucket, "batch/input/tiny/b.jsonl", to_jsonl(make_records(3, start=10)), Metadata={"maas-version": "2"})
    capsys.readouterr()
    assert [p["predicted"] for p in world.run("batch/input/tiny/a.csv")["processed"]] == [6]
    assert [p["predicted"] for p in world.run("batch/input/tiny/b.jsonl")["processed"]] == [3]
    out = capsys.readouterr().out

    one, two = file_blobs(out)
    assert dimension_sets(one) == [["model", "version"], ["model"], ["source"]]
    assert (one["model"], one["version"], one["source"], two["version"]) == ("tiny", "1", "batch", "2")
    counts = ("RequestCount", "RecordCount", "RejectedRecords", "FailedFiles")
    assert tuple(one[c] for c in counts) == ([1.0], [6.0], [2.0], [0.0])
    assert tuple(two[c] for c in counts) == ([1.0], [3.0], [0.0], [0.0])
    assert len(one["Latency"]) == 1 and one["Latency"][0] > 0  # one chunk
    lines = {"1": read_jsonl(world.bucket, out_key("tiny", "a.csv", "predictions")),
             "2": read_jsonl(world.bucket, out_key("tiny", "b.jsonl", "predictions"))}
    for version, predicted in lines.items():
        mix = {b["label"]: b["PredictedLabel"][0] for b in emf_blobs(out)
               if "PredictedLabel" in b and b["version"] == version}
        assert mix == dict(Counter(line["label"] for line in predicted)), version
    captured = capture_blobs(out)
    assert [(b["version"], b["Captured"], b["CaptureFailures"]) for b in captured] == [("1", [6.0], [0.0]),
                                                                                      ("2", [3.0], [0.0])]
    assert dimension_sets(captured[0]) == [["model", "version"], ["model"], ["service"]]

    world.drain()
    stored = {c.id: c for c in world.stored()}
    assert stored.keys() == {line["id"] for v in lines.values() for line in v}
    for version, predicted in lines.items():
        for line in predicted:
            c = stored[line["id"]]
            assert (c.source, c.version, c.task) == ("batch", version, "binary")
            assert c.output == {"label": line["label"], "probabilities": line["probabilities"]}
            assert set(c.features) <= {"x1", "x2", "colour"} and c.latency_ms > 0
    status, body = call(world.metrics, "GET", "/v1/models/tiny/metrics", query={"window": "1h"})
    assert status == 200 and [(v["version"], v["predictions"]) for v in body["versions"]] == [("1", 6), ("2", 3)]
    first = lines["1"][0]["id"]  # feedback can refer to a batch prediction like to an API one
    status, fb = call(world.metrics, "POST", "/v1/models/tiny/feedback", body={"prediction_id": first, "label": "no"})
    assert status == 200 and fb["recorded"] == 1


def test_latency_is_one_value_per_chunk_and_rows_are_captured_at_the_capture_rate(world: World, capsys) -> None:
    """Given a monitor capturing half of the predictions and a file of 8 rows read 3 rows at a time,
    then the file's blob has 3 latency values (one per chunk) and exactly the rows whose prediction id the
    stable sampler picks at 0.5 are written and stored."""
    put(world.bucket, "batch/input/tiny/c.csv", to_csv(make_records(8)))
    predictor = Predictor(Settings(), world.aws.registry, world.aws.store)
    monitor = BatchMonitor(0.5, CaptureWriter())
    capsys.readouterr()
    result = run_batch(world.bucket, "batch/input/tiny/c.csv", predictor, chunk_rows=3, monitor=monitor)
    assert (result.status, result.predicted) == ("done", 8)
    out = capsys.readouterr().out
    [blob] = file_blobs(out)
    assert len(blob["Latency"]) == 3 and blob["RecordCount"] == [8.0]
    ids = [line["id"] for line in read_jsonl(world.bucket, out_key("tiny", "c.csv", "predictions"))]
    chosen = {i for i in ids if sampled(i, 0.5)}
    assert 0 < len(chosen) < 8  # the sample is a real subset here, so the rate is what decides
    [cap] = capture_blobs(out)
    assert (cap["Captured"], cap["CaptureFailures"]) == ([float(len(chosen))], [0.0])
    world.drain()
    assert {c.id for c in world.stored()} == chosen


def test_a_capture_failure_never_fails_the_file_and_is_counted(world: World, capsys, caplog, monkeypatch) -> None:
    """Given the capture lines failing to be written (stdout gone),
    when a file of 5 rows is processed, then the file is done with all 5 predictions written and
    CaptureFailures counts 5 (Captured 0); given capture crashing outright on the next file, the file is
    done too and its 4 rows are counted as failed captures, with the error logged."""
    put(world.bucket, "batch/input/tiny/d.csv", to_csv(make_records(5)))
    capsys.readouterr()
    with broken_stdout():
        [done] = world.run("batch/input/tiny/d.csv")["processed"]
    assert (done["status"], done["predicted"]) == ("done", 5)
    assert len(read_jsonl(world.bucket, out_key("tiny", "d.csv", "predictions"))) == 5
    [cap] = capture_blobs(capsys.readouterr().out)
    assert (cap["Captured"], cap["CaptureFailures"]) == ([0.0], [5.0])

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("capture bug")

    monkeypatch.setattr("maas_core.monitoring.batch.capture_maker", crash)
    put(world.bucket, "batch/input/tiny/e.csv", to_csv(make_records(4)))
    [done] = world.run("batch/input/tiny/e.csv")["processed"]
    assert (done["status"], done["predicted"]) == ("done", 4)
    [cap] = capture_blobs(capsys.readouterr().out)
    assert (cap["Captured"], cap["CaptureFailures"]) == ([0.0], [4.0])
    assert any(r.getMessage() == "batch capture failed" for r in caplog.records)


def test_failed_files_count_per_version_only_once_the_version_resolved(world: World, capsys) -> None:
    """Given a file for tiny missing its required column, and a file for a model that does not exist,
    then both count FailedFiles 1 and no records; the first under tiny's version 1, the second under
    [source] alone (an uploader cannot create metric series with made-up model names)."""
    put(world.bucket, "batch/input/tiny/bad.csv", "x2\n1\n")
    put(world.bucket, "batch/input/ghost/f.csv", to_csv(make_records(2)))
    capsys.readouterr()
    for key in ("batch/input/tiny/bad.csv", "batch/input/ghost/f.csv"):
        with pytest.raises(BatchFileError):
            world.run(key)
    tiny, ghost = file_blobs(capsys.readouterr().out)
    assert (tiny["version"], tiny["FailedFiles"], tiny["RecordCount"]) == ("1", [1.0], [0.0])
    assert dimension_sets(ghost) == [["source"]] and "model" not in ghost and ghost["FailedFiles"] == [1.0]


# --- text drift through batch captures -----------------------------------------------------------


TRAIN = text_model.SENTENCES * 10
# validation-like texts: the training sentences with one word the vocabulary never saw
HOLDOUT = [s.replace(s.split()[-1], "zzz") for s in text_model.SENTENCES]
SAME = [s.replace(s.split()[-1], "qqq") for s in text_model.SENTENCES] * 10  # same lengths, other unknown words
LONG = ["my order number arrived broken and the courier refused a refund " * 4] * 60  # long, mostly unknown


def publish_text(world: World, baseline: dict[str, Any], name: str = "sentiment") -> None:
    """The tiny text model with `baseline` in its manifest and its text field marked sensitive."""
    version = world.aws.registry.next_version(name)
    schema = [f.model_copy(update={"sensitive": True}) for f in text_model.SPEC.input_schema()]
    manifest = Manifest(name=name, version=version, task="binary", labels=text_model.LABELS, input_schema=schema,
                        model_input=TensorInfo(name="tokens", dtype=text_model.TEXT.dtype,
                                                          shape=[None, text_model.MAX_LENGTH]),
                        model_output=TensorInfo(name="probabilities", dtype="float32", shape=[None, 2]),
                        baseline=baseline)
    published = world.aws.store.publish(manifest, {"model.onnx": text_model.onnx_bytes(),
                                                   "preprocess.json": text_model.SPEC.to_json().encode()})
    world.aws.registry.register(published)
    world.aws.registry.set_alias(name, "prod", version)


def text_drift(world: World, name: str = "sentiment") -> dict[str, Any]:
    world.drain()
    status, body = call(world.metrics, "GET", f"/v1/models/{name}/metrics", query={"window": "1h"})
    assert status == 200, body
    return body["versions"][0]["drift"]


def test_text_drift_of_batch_rows_against_the_training_baseline(world: World) -> None:
    """Given a text model whose manifest has the training job's text baseline (token counts of the training
    texts, OOV rate of validation texts) and whose text field is sensitive,
    when a batch of texts like the validation ones is predicted, the text field's PSI stays below 0.1
    (stable) and no captured text is readable (masked); when a batch of much longer texts full of unknown
    words follows, its PSI rises above 0.2 (significant) on both token counts and OOV share."""
    column = text_model.TEXT_FIELD
    baseline = baseline_statistics({column: TRAIN}, [], [], text=text_model.TEXT, holdout={column: HOLDOUT})
    assert baseline["features"][column]["oov"]["source"] == "validation"
    publish_text(world, baseline)
    put(world.bucket, "batch/input/sentiment/same.jsonl", to_jsonl([{column: t} for t in SAME]))
    assert world.run("batch/input/sentiment/same.jsonl")["processed"][0]["predicted"] == len(SAME)
    drift = text_drift(world)
    text = drift["features"][column]
    assert text["count"] == len(SAME) and text["psi"] < 0.1 and text["status"] == "stable", text
    assert {c.features[column] for c in world.stored("sentiment")} == {MASK}

    put(world.bucket, "batch/input/sentiment/long.jsonl", to_jsonl([{column: t} for t in LONG]))
    world.run("batch/input/sentiment/long.jsonl")
    text = text_drift(world)["features"][column]
    assert text["tokens"]["psi"] > 0.2 and text["oov"]["psi"] > 0.2 and text["status"] == "significant", text


def test_a_text_model_without_a_text_baseline_reports_its_drift_as_unavailable(world: World) -> None:
    """Given text models published before text baselines: one with no baseline at all, one whose baseline
    entry for the text field has neither token-count bins nor a validation OOV rate, when a batch is predicted,
    then GET /metrics answers 200 and lists the text field as unavailable with why, not an error."""
    column = text_model.TEXT_FIELD
    publish_text(world, {}, name="old-text")
    publish_text(world, {"rows": 60, "bins": 10, "features": {column: {"kind": "text", "count": 60, "missing": 0,
                                                                        "oov_rate": 0.0}}}, name="older-text")
    for name in ("old-text", "older-text"):
        put(world.bucket, f"batch/input/{name}/x.jsonl", to_jsonl([{column: t} for t in SAME[:6]]))
        world.run(f"batch/input/{name}/x.jsonl")
        drift = text_drift(world, name)
        text = drift["features"][column]
        assert (text["status"], text["psi"]) == ("unavailable", None) and "baseline" in text["skipped"], drift
        assert drift["status"] == "unavailable"
    json.dumps(drift)  # the API's answer is plain JSON
