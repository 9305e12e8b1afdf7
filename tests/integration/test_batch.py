"""Batch predictions from S3 files (maas_core.batch, functions/batch, maas_local.batch_trigger), on moto.

The tiny model (maas_local/testing/tiny_model.py) has fields x1 (number, required), x2 (number, optional) and
colour (string, blue/red); labels no/yes.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
from botocore.exceptions import ClientError

from maas_core import aws
from maas_core.batch import BatchFileError, run_batch
from maas_core.batch.reader import (
    Chunk,
    FileFormat,
    Limits,
    decode_lines,
    detect_format,
    read_records,
)
from maas_core.batch.writer import AtomicS3Writer
from maas_core.predictor import Predictor, canary_share
from maas_core.registry import Registry
from maas_core.settings import Settings, get_settings
from maas_core.store import BundleStore
from maas_local.testing.tiny_model import publish_tiny_model
from tests.conftest import AwsWorld, create_registry_table
from tests.lambda_events import FakeLambdaContext, load_function

FIELDS = ["x1", "x2", "colour"]


# --- helpers ------------------------------------------------------------------------------------


def make_records(n: int, start: int = 0) -> list[dict[str, Any]]:
    """Deterministic valid records; every 5th lacks the optional x2."""
    out = []
    for i in range(start, start + n):
        r: dict[str, Any] = {"x1": round((i % 13) * 0.5 - 3, 2), "colour": "blue" if i % 3 else "red"}
        if i % 5:
            r["x2"] = float(i % 4)
        out.append(r)
    return out


def to_csv(records: list[dict[str, Any]], fields: list[str] = FIELDS) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(records)
    return buf.getvalue()


def to_jsonl(records: list[Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def s3() -> Any:
    return boto3.client("s3")


def put(bucket: str, key: str, body: str | bytes, **kwargs: Any) -> str:
    data = body.encode() if isinstance(body, str) else body
    return s3().put_object(Bucket=bucket, Key=key, Body=data, **kwargs)["ETag"]


def get_bytes(bucket: str, key: str) -> bytes:
    return s3().get_object(Bucket=bucket, Key=key)["Body"].read()


def read_jsonl(bucket: str, key: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in get_bytes(bucket, key).decode().splitlines()]


def exists(bucket: str, key: str) -> bool:
    try:
        s3().head_object(Bucket=bucket, Key=key)
        return True
    except ClientError:
        return False


def out_key(model: str, rest: str, kind: str) -> str:
    return f"batch/output/{model}/{rest}.{kind}.jsonl"


def failed_key(model: str, rest: str) -> str:
    return f"batch/failed/{model}/{rest}.error.json"


def assert_match_predictor(predictor: Predictor, records: list[dict[str, Any]], lines: list[dict[str, Any]],
                           version: str = "1") -> None:
    """Each output line carries the label/probabilities the predict API gives for the same record."""
    expected = predictor.predict("tiny", records, version=version).response.predictions
    assert len(lines) == len(expected)
    for line, pred in zip(lines, expected, strict=True):
        assert line["label"] == pred.label
        assert line["probabilities"] == pred.probabilities
        assert line["model"] == "tiny" and line["version"] == version


@pytest.fixture
def world(aws_world: AwsWorld) -> tuple[AwsWorld, Predictor]:
    """The tiny model's version 1 published with alias prod, and a Predictor over the moto account."""
    publish_tiny_model(aws_world.store, aws_world.registry)
    return aws_world, Predictor(Settings(), aws_world.registry, aws_world.store)


# --- reader (no AWS) ----------------------------------------------------------------------------


def test_detect_format_accepts_csv_jsonl_and_gzip_and_refuses_the_rest() -> None:
    assert detect_format("batch/input/m/a.CSV") == FileFormat("csv", False)
    assert detect_format("batch/input/m/a.jsonl.gz") == FileFormat("jsonl", True)
    assert detect_format("batch/input/m/a.ndjson") == FileFormat("jsonl", False)
    for bad in ("batch/input/m/a.txt", "batch/input/m/a.csv.zip", "batch/input/m/.csv", "batch/input/m/csv"):
        with pytest.raises(BatchFileError) as err:
            detect_format(bad)
        assert err.value.code == "unsupported_format"


def test_utf8_characters_split_across_reads_and_a_bom_are_decoded() -> None:
    data = "\ufeffx1,colour\n1,bl\u00e9u\n2,\u7ea2\n".encode()
    pieces = [data[i:i + 1] for i in range(len(data))]  # one byte per read: every character is split
    assert list(decode_lines(pieces)) == ["x1,colour\n", "1,bl\u00e9u\n", "2,\u7ea2\n"]


def test_csv_quoted_cells_crlf_and_blank_rows_keep_row_numbers() -> None:
    text = 'x1,colour,note\r\n1,red,"a, b"\r\n\r\n2,blue,"two\nlines"\r\n3,red\r\n4,,x\r\n'
    chunks = list(read_records([text.encode()], FileFormat("csv", False), required=["x1"]))
    assert len(chunks) == 1
    c = chunks[0]
    assert c.rows == [1, 3, 5]
    assert c.records[0] == {"x1": "1", "colour": "red", "note": "a, b"}
    assert c.records[1]["note"] == "two\nlines"
    assert c.records[2] == {"x1": "4", "colour": None, "note": "x"}  # empty cell -> None
    assert c.errors == [{"row": 4, "field": None, "reason": "expected 3 cells (one per header column), got 2"}]
    assert c.size == 5


def test_chunks_hold_at_most_chunk_rows_rows() -> None:
    text = to_jsonl(make_records(20)).encode()
    chunks = list(read_records([text], FileFormat("jsonl", False), chunk_rows=7))
    assert [c.size for c in chunks] == [7, 7, 6]
    assert [c.rows[0] for c in chunks] == [1, 8, 15]
    assert all(isinstance(c, Chunk) for c in chunks)


def _traced_peak(fn: Any) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _pieces(data: bytes, size: int = 65536) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_a_gzip_bomb_is_inflated_step_by_step() -> None:
    """Given 16 MiB of one endless line gzipped to ~16 KiB, the reader inflates it a step at a time: with no
    ratio cap the line streams by past the line limit and is one row error (not 16 MiB in memory); with
    the ratio cap the file is refused after the first step. 20,000 short gzipped rows stream through in
    chunks with a peak of a few MB."""
    bomb = gzip.compress(b"a" * (16 * 1024 * 1024), compresslevel=9)

    def read_bomb(limits: Limits) -> Any:
        try:
            return [c.errors for c in read_records(_pieces(bomb), FileFormat("jsonl", True), limits=limits)]
        except BatchFileError as err:
            return err.code

    errors, peak = _traced_peak(lambda: read_bomb(Limits(max_line_chars=1 << 20)))
    assert errors == [[{"row": 1, "field": None, "reason": f"the line is longer than {1 << 20:,} characters "
                        f"({16 * 1024 * 1024:,})"}]]
    assert peak < 4 * 1024 * 1024, peak
    code, peak = _traced_peak(lambda: read_bomb(Limits(max_ratio=200)))
    assert code == "too_compressed"
    assert peak < 4 * 1024 * 1024, peak

    rows = gzip.compress(b'{"x1": 1, "colour": "red"}\n' * 20_000)
    sizes, peak = _traced_peak(lambda: [c.size for c in read_records(_pieces(rows), FileFormat("jsonl", True),
                                                                     chunk_rows=1000)])
    assert sum(sizes) == 20_000 and max(sizes) == 1000
    assert peak < 4 * 1024 * 1024, peak


def test_prediction_lines_are_the_json_of_their_dicts_byte_for_byte() -> None:
    """The chunk predictor formats lines from a template (json.dumps per line was the largest cost of a batch
    file): for labels and names with %, quotes, backslashes and non-ASCII, classifiers and regressions, each
    line is exactly the compact JSON of its dict: row, id, the outputs as the predict API shapes them, model
    and version."""
    from types import SimpleNamespace

    import numpy as np

    from maas_core.batch.job import ChunkPredictor, _dumps
    from maas_core.outputs import shape_outputs

    rng = np.random.default_rng(3)
    cases = [("multiclass", ["a%s", 'b"q', "\u00e9\U0001f642", "x\\y"], rng.random((40, 4))),
             ("binary", ["no", "yes"], rng.random((40, 1))), ("regression", [], rng.standard_normal((40, 1)) * 1e-9)]
    fid = "0123abcd" * 4
    for task, labels, outputs in cases:
        model = SimpleNamespace(manifest=SimpleNamespace(labels=labels, task=task))
        chunks = ChunkPredictor(model, 'm%d"l', "7", fid)  # type: ignore[arg-type]
        rows = list(range(3, 43))
        predictions = shape_outputs(task, labels, outputs)
        expected = [{"row": r, "id": f"{fid}-{r}", **output, "model": 'm%d"l', "version": "7"}
                    for r, output in zip(rows, predictions.outputs(), strict=True)]
        assert chunks.lines(rows, predictions) == "".join(map(_dumps, expected)), task


# --- happy paths --------------------------------------------------------------------------------


def test_csv_file_gets_one_prediction_per_row_matching_the_predict_api(world: Any) -> None:
    """Given a CSV of 20 valid rows under batch/input/tiny/,
    when the batch job runs,
    then predictions.jsonl has rows 1..20 with deterministic ids, the predict API's labels and
    probabilities, the model and version; errors.jsonl exists and is empty; both record the input ETag."""
    w, predictor = world
    records = make_records(20)
    text = to_csv(records)
    etag = put(w.bucket, "batch/input/tiny/2024/jan.csv", text)
    result = run_batch(w.bucket, "batch/input/tiny/2024/jan.csv", predictor)
    assert (result.status, result.version, result.alias, result.rows, result.predicted, result.rejected) == \
        ("done", "1", "prod", 20, 20, 0)
    lines = read_jsonl(w.bucket, out_key("tiny", "2024/jan.csv", "predictions"))
    assert [line["row"] for line in lines] == list(range(1, 21))
    assert len({line["id"] for line in lines}) == 20 and lines[4]["id"].endswith("-5")
    assert all(re.fullmatch(r"[0-9a-f]{32}-[0-9]+", line["id"]) for line in lines)  # the predict API's shape
    uploaded = s3().head_object(Bucket=w.bucket, Key="batch/input/tiny/2024/jan.csv")["LastModified"]
    assert int(lines[0]["id"][:12], 16) == int(uploaded.timestamp() * 1000)  # ids sort by upload time
    assert set(lines[0]) == {"row", "id", "label", "probabilities", "model", "version"}
    csv_records = list(csv.DictReader(io.StringIO(text)))  # as strings, the way the file holds them
    assert_match_predictor(predictor, [{k: (v or None) for k, v in r.items()} for r in csv_records], lines)
    assert_match_predictor(predictor, records, lines)  # and the same as the typed JSON records
    errors_key = out_key("tiny", "2024/jan.csv", "errors")
    assert get_bytes(w.bucket, errors_key) == b""
    head = s3().head_object(Bucket=w.bucket, Key=errors_key)
    assert head["Metadata"]["maas-input-etag"] == etag.strip('"')
    assert head["Metadata"]["maas-model-version"] == "1"
    assert head["ContentType"] == "application/x-ndjson"


def test_jsonl_file_row_numbers_are_line_numbers(world: Any) -> None:
    w, predictor = world
    records = make_records(6)
    text = to_jsonl(records[:3]) + "\n" + to_jsonl(records[3:])  # a blank line 4
    put(w.bucket, "batch/input/tiny/day.jsonl", text)
    result = run_batch(w.bucket, "batch/input/tiny/day.jsonl", predictor)
    assert (result.rows, result.predicted, result.rejected) == (7, 6, 0)
    lines = read_jsonl(w.bucket, out_key("tiny", "day.jsonl", "predictions"))
    assert [line["row"] for line in lines] == [1, 2, 3, 5, 6, 7]
    assert_match_predictor(predictor, records, lines)


def test_gzip_inputs_are_predicted_like_plain_ones(world: Any) -> None:
    """Given the same 40 records as .csv.gz, .jsonl.gz, a .csv uploaded with Content-Encoding gzip and a
    .jsonl.gz made of two concatenated gzip members, then each is predicted like the plain records."""
    w, predictor = world
    records = make_records(40)
    cases = {
        "z.csv.gz": (gzip.compress(to_csv(records).encode()), {}),
        "z.jsonl.gz": (gzip.compress(to_jsonl(records).encode()), {}),
        "z.csv": (gzip.compress(to_csv(records).encode()), {"ContentEncoding": "gzip"}),
        # `cat a.gz b.gz > c.gz` is a valid gzip file
        "two.jsonl.gz": (gzip.compress(to_jsonl(records[:15]).encode())
                         + gzip.compress(to_jsonl(records[15:]).encode()), {}),
    }
    for name, (body, kwargs) in cases.items():
        key = f"batch/input/tiny/{name}"
        put(w.bucket, key, body, **kwargs)
        result = run_batch(w.bucket, key, predictor)
        assert (result.predicted, result.rejected) == (40, 0), name
        lines = read_jsonl(w.bucket, out_key("tiny", name, "predictions"))
        assert [line["row"] for line in lines] == list(range(1, 41)), name
        assert_match_predictor(predictor, records, lines)


# --- bad rows -----------------------------------------------------------------------------------


def test_bad_rows_are_listed_and_every_good_row_is_predicted(world: Any) -> None:
    """Given a JSONL file mixing good rows with a broken JSON line, a list, a row without x1,
    a non-number x1, a number as colour and NaN,
    then every good row is predicted (as the predict API would) and each bad row is in errors.jsonl
    with its row number, field and reason."""
    w, predictor = world
    good = make_records(5)
    lines_in = [
        json.dumps(good[0]),                    # 1
        '{"x1": 1, "colour": "red"',            # 2 broken JSON
        json.dumps(good[1]),                    # 3
        "[1, 2, 3]",                            # 4 not an object
        json.dumps({"colour": "red"}),          # 5 x1 missing
        json.dumps(good[2]),                    # 6
        json.dumps({"x1": "abc", "colour": "red"}),  # 7 not a number
        json.dumps({"x1": 1, "colour": 7}),     # 8 colour not a string
        '{"x1": NaN, "colour": "red"}',         # 9 NaN is not JSON
        json.dumps(good[3]),                    # 10
        json.dumps(good[4]),                    # 11
    ]
    put(w.bucket, "batch/input/tiny/mixed.jsonl", "\n".join(lines_in) + "\n")
    result = run_batch(w.bucket, "batch/input/tiny/mixed.jsonl", predictor)
    assert (result.rows, result.predicted, result.rejected) == (11, 5, 6)
    preds = read_jsonl(w.bucket, out_key("tiny", "mixed.jsonl", "predictions"))
    assert [p["row"] for p in preds] == [1, 3, 6, 10, 11]
    assert_match_predictor(predictor, good, preds)
    errors = read_jsonl(w.bucket, out_key("tiny", "mixed.jsonl", "errors"))
    assert [(e["row"], e["field"]) for e in errors] == [
        (2, None), (4, None), (5, "x1"), (7, "x1"), (8, "colour"), (9, None)]
    reasons = {e["row"]: e["reason"] for e in errors}
    assert reasons[2].startswith("not valid JSON")
    assert reasons[4] == "expected a JSON object, got a list"
    assert "required" in reasons[5] or "missing" in reasons[5]
    assert "expected a number" in reasons[7]
    assert "expected a string" in reasons[8]
    assert "NaN" in reasons[9]
    assert all(set(e) == {"row", "field", "reason"} for e in errors)


def test_csv_rows_with_wrong_cell_counts_are_row_errors(world: Any) -> None:
    w, predictor = world
    text = "x1,x2,colour\n1,2,red\n3,blue\n4,1,blue,extra\n,1,red\n5,,blue\n"
    put(w.bucket, "batch/input/tiny/cells.csv", text)
    result = run_batch(w.bucket, "batch/input/tiny/cells.csv", predictor)
    assert (result.predicted, result.rejected) == (2, 3)
    preds = read_jsonl(w.bucket, out_key("tiny", "cells.csv", "predictions"))
    assert [p["row"] for p in preds] == [1, 5]
    assert_match_predictor(predictor, [{"x1": "1", "x2": "2", "colour": "red"},
                                       {"x1": "5", "x2": None, "colour": "blue"}], preds)
    errors = read_jsonl(w.bucket, out_key("tiny", "cells.csv", "errors"))
    assert [(e["row"], e["field"]) for e in errors] == [(2, None), (3, None), (4, "x1")]
    assert "got 2" in errors[0]["reason"] and "got 4" in errors[1]["reason"]


def test_chunks_smaller_than_the_file_keep_row_numbers_and_output_bytes(world: Any) -> None:
    """Given 50 rows with bad rows scattered across chunk boundaries,
    when the job reads 7 rows at a time,
    then the outputs are byte-identical to reading them all at once and rows are numbered across chunks."""
    w, predictor = world
    records: list[Any] = make_records(50)
    for i in (0, 6, 7, 13, 27, 49):  # first, chunk edges, middle, last
        records[i] = {"x1": "not a number", "colour": "red"}
    body = to_jsonl(records)
    put(w.bucket, "batch/input/tiny/a.jsonl", body)
    put(w.bucket, "batch/input/tiny/b.jsonl", body)
    small = run_batch(w.bucket, "batch/input/tiny/a.jsonl", predictor, chunk_rows=7)
    whole = run_batch(w.bucket, "batch/input/tiny/b.jsonl", predictor, chunk_rows=10_000)
    assert (small.predicted, small.rejected) == (whole.predicted, whole.rejected) == (44, 6)
    errors = read_jsonl(w.bucket, out_key("tiny", "a.jsonl", "errors"))
    assert [e["row"] for e in errors] == [1, 7, 8, 14, 28, 50]
    a = read_jsonl(w.bucket, out_key("tiny", "a.jsonl", "predictions"))
    b = read_jsonl(w.bucket, out_key("tiny", "b.jsonl", "predictions"))
    strip = [{k: v for k, v in line.items() if k != "id"} for line in a]  # ids name the file
    assert strip == [{k: v for k, v in line.items() if k != "id"} for line in b]
    assert [line["row"] for line in a] == [i + 1 for i in range(50) if i not in (0, 6, 7, 13, 27, 49)]
    assert get_bytes(w.bucket, out_key("tiny", "a.jsonl", "errors")) == \
        get_bytes(w.bucket, out_key("tiny", "b.jsonl", "errors"))


# --- at-least-once delivery ---------------------------------------------------------------------


def test_reprocessing_the_same_input_is_skipped_or_byte_identical(world: Any) -> None:
    """Given a processed file,
    when the same event arrives again, the job skips it (the errors file records the same ETag and version)
    and the outputs are untouched; when it must redo the work (the errors file is gone, as after a crash
    between the two commits), the outputs are byte-identical: same ids, no duplicate rows."""
    w, predictor = world
    key = "batch/input/tiny/again.csv"
    put(w.bucket, key, to_csv(make_records(30)))
    first = run_batch(w.bucket, key, predictor)
    pred_key, err_key = out_key("tiny", "again.csv", "predictions"), out_key("tiny", "again.csv", "errors")
    before = get_bytes(w.bucket, pred_key)
    modified = s3().head_object(Bucket=w.bucket, Key=pred_key)["LastModified"]

    second = run_batch(w.bucket, key, predictor)
    assert (first.status, second.status) == ("done", "skipped")
    assert second.predictions_key == pred_key and second.version == "1"
    assert s3().head_object(Bucket=w.bucket, Key=pred_key)["LastModified"] == modified

    s3().delete_object(Bucket=w.bucket, Key=err_key)
    third = run_batch(w.bucket, key, predictor)
    assert third.status == "done"
    after = get_bytes(w.bucket, pred_key)
    assert after == before
    ids = [json.loads(line)["id"] for line in after.splitlines()]
    assert len(ids) == len(set(ids)) == 30


def test_new_content_or_a_moved_alias_is_processed_again(world: Any) -> None:
    w, _ = world
    predictor = Predictor(Settings(alias_ttl_seconds=0), w.registry, w.store)  # sees alias moves at once
    key = "batch/input/tiny/moving.jsonl"
    put(w.bucket, key, to_jsonl(make_records(4)))
    assert run_batch(w.bucket, key, predictor).status == "done"
    put(w.bucket, key, to_jsonl(make_records(6)))  # new content, new ETag
    r = run_batch(w.bucket, key, predictor)
    assert (r.status, r.predicted) == ("done", 6)
    publish_tiny_model(w.store, w.registry)  # version 2 becomes prod
    r = run_batch(w.bucket, key, predictor)
    assert (r.status, r.version) == ("done", "2")
    assert {line["version"] for line in read_jsonl(w.bucket, out_key("tiny", "moving.jsonl", "predictions"))} == {"2"}


# --- choosing the version -----------------------------------------------------------------------


def test_object_metadata_chooses_the_version_or_alias(world: Any) -> None:
    w, predictor = world
    publish_tiny_model(w.store, w.registry, alias="staging")  # version 2, prod stays at 1
    body = to_jsonl(make_records(3))
    cases = {"default.jsonl": ({}, "1", "prod"),
             "pinned.jsonl": ({"maas-version": "1"}, "1", None),
             "staged.jsonl": ({"maas-alias": "staging"}, "2", "staging"),
             "v2.jsonl": ({"maas-version": "2"}, "2", None)}
    for name, (meta, version, alias) in cases.items():
        put(w.bucket, f"batch/input/tiny/{name}", body, Metadata=meta)
        r = run_batch(w.bucket, f"batch/input/tiny/{name}", predictor)
        assert (r.version, r.alias) == (version, alias), name
        lines = read_jsonl(w.bucket, out_key("tiny", name, "predictions"))
        assert {line["version"] for line in lines} == {version}
        assert_match_predictor(predictor, make_records(3), lines, version=version)


def test_a_canary_alias_sends_a_sticky_share_of_files_to_the_canary(world: Any) -> None:
    """Given prod with a 50% canary on version 2,
    then each file goes wholly to one version, chosen by its S3 URI (so a re-run goes the same way)."""
    w, predictor = world
    publish_tiny_model(w.store, w.registry, alias=None)  # version 2
    w.registry.set_canary("tiny", "prod", "2", 0.5)
    seen = {}
    for i in range(8):
        key = f"batch/input/tiny/c{i}.jsonl"
        put(w.bucket, key, to_jsonl(make_records(2)))
        r = run_batch(w.bucket, key, predictor)
        expected = "2" if canary_share("tiny", "prod", f"s3://{w.bucket}/{key}") < 0.5 else "1"
        assert (r.version, r.canary) == (expected, expected == "2")
        assert {line["version"] for line in read_jsonl(w.bucket, out_key("tiny", f"c{i}.jsonl", "predictions"))} \
            == {expected}
        seen[key] = r.version
    assert set(seen.values()) == {"1", "2"}
    again = run_batch(w.bucket, "batch/input/tiny/c0.jsonl", predictor)
    assert (again.status, again.version) == ("skipped", seen["batch/input/tiny/c0.jsonl"])


# --- file failures ------------------------------------------------------------------------------

FAILURES = {
    # name: (key under batch/input/, body, put kwargs, error code, words in the message/details)
    "unknown model": ("ghost/a.csv", to_csv(make_records(2)), {}, "not_found", ["ghost"]),
    "unknown version": ("tiny/v9.csv", to_csv(make_records(2)), {"Metadata": {"maas-version": "9"}},
                        "not_found", ["9"]),
    "version and alias": ("tiny/both.csv", to_csv(make_records(2)),
                          {"Metadata": {"maas-version": "1", "maas-alias": "prod"}}, "version_and_alias",
                          ["maas-version", "maas-alias"]),
    "bad gzip": ("tiny/a.csv.gz", to_csv(make_records(2)), {}, "bad_gzip", ["gzip"]),
    "corrupt gzip": ("tiny/b.jsonl.gz", gzip.compress(to_jsonl(make_records(50)).encode())[:10] + b"\x00" * 40, {},
                     "bad_gzip", ["gzip"]),
    "truncated gzip": ("tiny/c.jsonl.gz", gzip.compress(to_jsonl(make_records(50)).encode())[:-30], {},
                       "bad_gzip", ["truncated"]),
    "not utf-8": ("tiny/latin1.csv", "x1,colour\n1,red\n2,r\u00f6d\n".encode("latin-1"), {}, "not_utf8", ["line 3"]),
    "missing column": ("tiny/nox1.csv", "x2,colour\n1,red\n", {}, "missing_columns", ["x1"]),
    "unknown extension": ("tiny/a.txt", "x1,colour\n1,red\n", {}, "unsupported_format", [".csv", ".jsonl"]),
    "empty file": ("tiny/empty.csv", b"", {}, "empty_file", ["empty"]),
    "blank jsonl": ("tiny/blank.jsonl", "\n\n  \n", {}, "empty_file", ["no records"]),
    "no model folder": ("loose.csv", to_csv(make_records(2)), {}, "no_model", ["batch/input/{model}/"]),
}


def test_a_file_that_cannot_be_processed_gets_a_report_and_raises(world: Any) -> None:
    """Given each kind of file that cannot be processed (FAILURES),
    when the job runs, then it writes batch/failed/{model}/{rest}.error.json with the input URI, an error
    code, a message and details, writes no predictions, and raises BatchFileError (so the invocation fails).
    (One moto account for all cases: each case has its own key.)"""
    w, predictor = world
    for case, (rest, body, kwargs, code, words) in FAILURES.items():
        key = f"batch/input/{rest}"
        put(w.bucket, key, body, **kwargs)
        with pytest.raises(BatchFileError) as err:
            run_batch(w.bucket, key, predictor)
        assert err.value.code == code, case
        assert err.value.input_uri == f"s3://{w.bucket}/{key}", case
        report_key = f"batch/failed/{rest}.error.json"
        report = json.loads(get_bytes(w.bucket, report_key))
        assert set(report) == {"input", "error", "message", "details"}, case
        assert report["input"] == f"s3://{w.bucket}/{key}" and report["error"] == code, case
        for word in words:
            assert word in report["message"] + json.dumps(report["details"]), (case, word, report)
        assert s3().get_object(Bucket=w.bucket, Key=report_key)["ContentType"] == "application/json"
    listed = s3().list_objects_v2(Bucket=w.bucket, Prefix="batch/output/").get("KeyCount", 0)
    assert listed == 0, "a failed file must not leave outputs"
    reports = s3().list_objects_v2(Bucket=w.bucket, Prefix="batch/failed/").get("KeyCount", 0)
    assert reports == len(FAILURES)


def test_a_later_success_removes_the_stale_failure_report(world: Any) -> None:
    w, predictor = world
    key = "batch/input/tiny/fixme.csv"
    put(w.bucket, key, "x2,colour\n1,red\n")
    with pytest.raises(BatchFileError):
        run_batch(w.bucket, key, predictor)
    assert exists(w.bucket, failed_key("tiny", "fixme.csv"))
    put(w.bucket, key, "x1,colour\n1,red\n")
    assert run_batch(w.bucket, key, predictor).predicted == 1
    assert not exists(w.bucket, failed_key("tiny", "fixme.csv"))


def test_an_input_deleted_before_it_is_read_is_skipped_quietly(world: Any) -> None:
    w, predictor = world
    assert run_batch(w.bucket, "batch/input/tiny/gone.csv", predictor).status == "gone"
    assert not exists(w.bucket, failed_key("tiny", "gone.csv"))


# --- atomic output ------------------------------------------------------------------------------


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> int:
    """moto (like S3) refuses parts under 5 MiB but the last; let tests use 64 KiB parts."""
    import moto.s3.models

    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 64 * 1024)
    return 64 * 1024


def test_a_run_stopped_midway_leaves_no_output_and_no_open_upload(world: Any, small_parts: int) -> None:
    """Given a file whose predictions span several multipart parts,
    when the run stops after a few chunks (the function is running out of time),
    then no predictions or errors object appears, the multipart upload is aborted, and the failure
    report says why."""
    w, predictor = world
    key = "batch/input/tiny/slow.jsonl"
    put(w.bucket, key, to_jsonl(make_records(3000)))
    calls = iter([900.0] * 5 + [10.0] * 100)
    with pytest.raises(BatchFileError) as err:
        run_batch(w.bucket, key, predictor, chunk_rows=200, part_size=small_parts, time_left=lambda: next(calls))
    assert err.value.code == "timeout"
    assert not exists(w.bucket, out_key("tiny", "slow.jsonl", "predictions"))
    assert not exists(w.bucket, out_key("tiny", "slow.jsonl", "errors"))
    assert s3().list_multipart_uploads(Bucket=w.bucket).get("Uploads", []) == []
    assert json.loads(get_bytes(w.bucket, failed_key("tiny", "slow.jsonl")))["error"] == "timeout"


def test_writer_uses_one_put_below_a_part_and_multipart_above(aws_world: AwsWorld, small_parts: int) -> None:
    client = s3()
    with AtomicS3Writer(client, aws_world.bucket, "small", part_size=small_parts) as out:
        out.write(b"x" * 100)
        out.commit()
    assert not out.multipart and get_bytes(aws_world.bucket, "small") == b"x" * 100
    with AtomicS3Writer(client, aws_world.bucket, "big", part_size=small_parts, metadata={"k": "v"}) as out:
        for _ in range(10):
            out.write(b"y" * 20_000)
        assert out.multipart and not exists(aws_world.bucket, "big")  # invisible until commit
        out.commit()
    assert out.parts == 3 and get_bytes(aws_world.bucket, "big") == b"y" * 200_000
    head = client.head_object(Bucket=aws_world.bucket, Key="big")
    assert head["ETag"].strip('"').endswith("-3") and head["Metadata"] == {"k": "v"}

    def fail_midway() -> None:
        with AtomicS3Writer(client, aws_world.bucket, "broken", part_size=small_parts) as out:
            out.write(b"z" * 200_000)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_midway()
    assert not exists(aws_world.bucket, "broken")
    assert client.list_multipart_uploads(Bucket=aws_world.bucket).get("Uploads", []) == []


# --- a large file against an out-of-process moto server: multipart + bounded memory -------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto server in its own process (so tracemalloc here counts only the batch job's memory),
    accepting 256 KiB multipart parts."""
    port = _free_port()
    env = {**os.environ, "S3_UPLOAD_PART_MIN_SIZE": str(256 * 1024)}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        aws.reset_clients()
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        aws.reset_clients()


def test_a_large_file_streams_in_bounded_memory_through_a_multipart_upload(moto_server: str) -> None:
    """Given a 30,000-row CSV (about 6.4 MB, with a wide note column the model ignores),
    when the job runs with 500-row chunks and 256 KiB parts,
    then the predictions file (about 4.5 MB) is a completed multipart upload with every row once and the
    run's counts in its metadata (copied in after the upload), no upload is left open, and the job's peak
    traced memory is a small fraction of the input and output
    (measured: ~1 MB, the same for 10,000 rows as for 30,000: it depends on the part and chunk size)."""
    bucket, table = "big-models", "big-registry"
    boto3.client("s3").create_bucket(Bucket=bucket)
    create_registry_table(table)
    store, registry = BundleStore(bucket), Registry(table)
    publish_tiny_model(store, registry)
    predictor = Predictor(Settings(model_bucket=bucket, registry_table=table), registry, store)
    predictor.load("tiny", "1")  # model loading is not what this test measures

    n = 30_000
    records = make_records(n)
    for r in records:
        r["note"] = "n" * 200
    body = to_csv(records, FIELDS + ["note"]).encode()
    key = "batch/input/tiny/big.csv"
    put(bucket, key, body)

    tracemalloc.start()
    try:
        result = run_batch(bucket, key, predictor, chunk_rows=500, part_size=256 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (result.rows, result.predicted, result.rejected, result.multipart) == (n, n, 0, True)
    pred_key = out_key("tiny", "big.csv", "predictions")
    head = s3().head_object(Bucket=bucket, Key=pred_key)
    assert head["Metadata"]["maas-rows-predicted"] == str(n) and head["ContentType"] == "application/x-ndjson"
    parts = -(-head["ContentLength"] // (256 * 1024))
    assert s3().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    rows = [json.loads(line)["row"] for line in get_bytes(bucket, pred_key).splitlines()]
    assert rows == list(range(1, n + 1))
    print(f"\ninput {len(body):,} B, output {head['ContentLength']:,} B in {parts} parts, "
          f"peak traced memory {peak:,} B ({peak / len(body):.0%} of the input)")
    assert peak < len(body) / 4, (peak, len(body))


# --- the Lambda handler -------------------------------------------------------------------------


def s3_event(bucket: str, key: str, event_name: str = "ObjectCreated:Put") -> dict[str, Any]:
    """An S3 notification as Lambda receives it: the key URL-encoded (spaces as +)."""
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventName": event_name,
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": quote_plus(key, safe="/"), "size": 1}},
    }]}


@pytest.fixture
def batch_app(world: Any) -> Iterator[Any]:
    get_settings.cache_clear()
    app = load_function("batch")
    app.predictor.cache_clear()
    yield app
    app.predictor.cache_clear()
    get_settings.cache_clear()


def test_handler_decodes_url_encoded_keys(world: Any, batch_app: Any) -> None:
    """Given a file whose key has spaces, a plus sign and non-ASCII letters,
    when the handler gets S3's event (key URL-encoded),
    then it processes the decoded key and writes outputs under the decoded name."""
    w, _ = world
    key = "batch/input/tiny/my files/été 1+1.csv"
    put(w.bucket, key, to_csv(make_records(3)))
    event = s3_event(w.bucket, key)
    assert "%C3%A9t%C3%A9+1%2B1.csv" in event["Records"][0]["s3"]["object"]["key"]
    out = batch_app.lambda_handler(event, FakeLambdaContext(remaining_ms=900_000))
    assert [(p["status"], p["predicted"]) for p in out["processed"]] == [("done", 3)]
    assert len(read_jsonl(w.bucket, out_key("tiny", "my files/été 1+1.csv", "predictions"))) == 3


def test_handler_accepts_sqs_wrapped_events_and_ignores_test_events(world: Any, batch_app: Any) -> None:
    w, _ = world
    put(w.bucket, "batch/input/tiny/q.jsonl", to_jsonl(make_records(2)))
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": w.bucket}
    assert batch_app.lambda_handler(test_event, FakeLambdaContext(remaining_ms=900_000)) == {"processed": []}
    wrapped = {"Records": [
        {"messageId": "1", "eventSource": "aws:sqs", "body": json.dumps(test_event)},
        {"messageId": "2", "eventSource": "aws:sqs",
         "body": json.dumps(s3_event(w.bucket, "batch/input/tiny/q.jsonl"))},
        {"messageId": "3", "eventSource": "aws:sqs", "body": json.dumps(s3_event(w.bucket, "models/tiny/1/x.csv"))},
        {"messageId": "4", "eventSource": "aws:sqs", "body": json.dumps(s3_event(w.bucket, "batch/input/tiny/"))},
    ]}
    out = batch_app.lambda_handler(wrapped, FakeLambdaContext(remaining_ms=900_000))
    assert [p["input"] for p in out["processed"]] == [f"s3://{w.bucket}/batch/input/tiny/q.jsonl"]
    # the same event again (at-least-once delivery): skipped, no duplicate rows
    again = batch_app.lambda_handler(wrapped, FakeLambdaContext(remaining_ms=900_000))
    assert [p["status"] for p in again["processed"]] == ["skipped"]
    assert len(read_jsonl(w.bucket, out_key("tiny", "q.jsonl", "predictions"))) == 2


def test_handler_fails_the_invocation_for_a_bad_file(world: Any, batch_app: Any) -> None:
    """Given one good and one bad file in the same event,
    then the good one is processed, the bad one reported, and the invocation raises (for the DLQ)."""
    w, _ = world
    put(w.bucket, "batch/input/tiny/ok.csv", to_csv(make_records(2)))
    put(w.bucket, "batch/input/tiny/bad.csv", "x2\n1\n")
    event = {"Records": s3_event(w.bucket, "batch/input/tiny/bad.csv")["Records"]
             + s3_event(w.bucket, "batch/input/tiny/ok.csv")["Records"]}
    with pytest.raises(BatchFileError) as err:
        batch_app.lambda_handler(event, FakeLambdaContext(remaining_ms=900_000))
    assert err.value.code == "missing_columns" and "bad.csv" in str(err.value)
    assert exists(w.bucket, out_key("tiny", "ok.csv", "predictions"))
    assert exists(w.bucket, failed_key("tiny", "bad.csv"))


# --- local emulation: S3 notification -> SQS -> handler -----------------------------------------


def test_local_trigger_in_process_turns_a_put_into_predictions(world: Any, batch_app: Any) -> None:
    """Given moto's S3 -> SQS notification configured by BatchTrigger (driven synchronously),
    when a file lands under batch/input/, then draining the queue skips S3's TestEvent, decodes the
    key, and produces the predictions; a file outside batch/input/ sends no event."""
    from maas_local.batch_trigger import BatchTrigger

    w, _ = world
    trigger = BatchTrigger(w.bucket, handler=batch_app.lambda_handler).configure()
    put(w.bucket, "batch/input/tiny/local run.csv", to_csv(make_records(5)))
    put(w.bucket, "elsewhere/x.csv", to_csv(make_records(5)))
    trigger.drain()
    assert [[p["predicted"] for p in r["processed"]] for r in trigger.processed] == [[], [5]]  # TestEvent, file
    assert len(read_jsonl(w.bucket, out_key("tiny", "local run.csv", "predictions"))) == 5


def test_local_stack_trigger_end_to_end_with_retry_and_dead_letter_queue() -> None:
    """Given the local stack (moto server with template.yaml's bucket and table) and the trigger's
    poller thread, when files are uploaded, then a good one gets its predictions and a bad one is
    tried twice, reported under batch/failed/ and sent to the local dead-letter queue with its reason."""
    from maas_local.batch_trigger import BatchTrigger, load_batch_handler
    from maas_local.stack import LocalStack

    with LocalStack() as stack:
        bucket, table = stack.names["ModelBucket"], stack.names["RegistryTable"]
        publish_tiny_model(BundleStore(bucket), Registry(table))
        load_batch_handler()  # (re)loaded for this stack's settings
        with BatchTrigger(bucket, wait_seconds=1) as trigger:
            client = stack.client("s3")
            client.put_object(Bucket=bucket, Key="batch/input/tiny/e2e/day 1.jsonl",
                              Body=to_jsonl(make_records(12)).encode())
            client.put_object(Bucket=bucket, Key="batch/input/tiny/e2e/bad.csv", Body=b"colour\nred\n")
            errors_key = out_key("tiny", "e2e/day 1.jsonl", "errors")
            deadline = time.monotonic() + 30
            while not (trigger.failures and exists(bucket, errors_key)) and time.monotonic() < deadline:
                time.sleep(0.1)
        assert trigger.failures, "the bad file never reached the dead-letter queue"
        body = client.get_object(Bucket=bucket, Key=out_key("tiny", "e2e/day 1.jsonl", "predictions"))["Body"].read()
        assert [json.loads(line)["row"] for line in body.splitlines()] == list(range(1, 13))
        messages = stack.client("sqs").receive_message(QueueUrl=trigger.dead_letter_queue_url,
                                                       MaxNumberOfMessages=10)["Messages"]
        assert len(messages) == 1
        record = json.loads(messages[0]["Body"])
        assert record["requestContext"]["approximateInvokeCount"] == 2
        assert "missing_columns" in record["responsePayload"]["errorMessage"]
        report = json.loads(client.get_object(Bucket=bucket, Key=failed_key("tiny", "e2e/bad.csv"))["Body"].read())
        assert report["error"] == "missing_columns"
