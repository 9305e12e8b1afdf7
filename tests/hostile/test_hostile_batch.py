"""Hostile batch files through run_batch on moto: every input row comes out exactly once, with its true number.

Each file of HOSTILE is run and reconciled: the result's rows == predicted + rejected + blank; the same
counts are in the S3 metadata of the predictions and errors files; each row number appears once across
the two files; every predicted row got the prediction of the input row with that number (the tiny model's
output depends on x1, and row i of a generated file has x1 = i); the rows the case names are the row
errors it expects (by field and words of the reason) or blank. Files the job must refuse as a whole (a
gzip bomb, too many rows, too many bytes) fail early, with a report under batch/failed/ and no output.

The tiny model (maas_local/testing/tiny_model.py) reads x1 (number, required), x2 (number) and colour (blue/red); the
files here also carry a `note` column it ignores.
"""

from __future__ import annotations

import gzip
import json
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import Any

import pytest

from maas_core.batch import BatchFileError, run_batch
from maas_core.batch.reader import DEFAULT_MAX_LINE_CHARS
from maas_core.predictor import Predictor
from maas_core.settings import Settings
from maas_local.testing.tiny_model import publish_tiny_model
from tests.conftest import AwsWorld
from tests.integration.test_batch import exists, failed_key, get_bytes, out_key, put, read_jsonl, s3

HEADER = "x1,x2,colour,note"
COUNTS = ("maas-rows-read", "maas-rows-predicted", "maas-rows-rejected", "maas-rows-blank")


def good(i: int) -> str:
    """Data row i of a generated CSV: x1 = i, so its prediction tells which input row it was."""
    return f"{i},1,{'red' if i % 2 else 'blue'},n{i}"


def record(i: int) -> dict[str, Any]:
    return {"x1": str(i), "x2": "1", "colour": "red" if i % 2 else "blue"}


Expect = str | tuple[str | None, str] | dict[str, Any]  # "blank", "any", (field, words of the reason), a record


@dataclass
class Case:
    """A CSV of `n` generated rows, some replaced (`rows`: row -> (text, what it must give)), joined by `eol`."""

    n: int
    rows: dict[int, tuple[str, Expect]] = field(default_factory=dict)
    eol: str = "\n"
    final_eol: bool = True
    prefix: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    def body(self) -> bytes:
        lines = [self.rows[i][0] if i in self.rows else good(i) for i in range(1, self.n + 1)]
        return (self.prefix + self.eol.join([HEADER, *lines]) + (self.eol if self.final_eol else "")).encode()

    def expected(self, i: int) -> Expect:
        return self.rows[i][1] if i in self.rows else record(i)


LONG = 20_001  # one more than Settings.max_field_chars' default
OVER_CSV_LIMIT = 131_073  # one more than the csv module's field_size_limit

HOSTILE: dict[str, Case] = {
    "stray quote at the start of a cell, row 10 of 10,000": Case(10_000, {
        10: ('10,"1,red,n10', (None, "unbalanced quote"))}),
    "stray quote in the middle of a cell (literal, as RFC 4180 readers take it)": Case(50, {
        10: ('10,1,red,n"10', record(10))}),
    "a stray quote closed by a later quoted cell": Case(60, {
        10: ('10,"1,red,n10', (None, "unbalanced quote")), 20: ('20,1,blue,"n20"', record(20))}),
    "stray quote at the last row": Case(40, {40: ('40,1,blue,"n40', (None, "unbalanced quote"))}),
    "end of file inside quotes": Case(40, {40: ('40,1,blue,"n40', (None, "unbalanced quote"))}, final_eol=False),
    "two stray quotes": Case(80, {5: ('5,"1,red,n', (None, "unbalanced")), 6: ('"6,1,blue,n', (None, "unbalanced"))}),
    "legitimate quoted cells: newlines, commas, doubled quotes": Case(30, {
        3: ('3,1,red,"two\nlines"', record(3)), 4: ('4,1,blue,"a, b"', record(4)),
        5: ('5,1,red,"say ""hi""\nand\n""bye"""', record(5)), 6: ('6,1,blue,"\r\n"', record(6))}),
    "a quoted x1 spanning two lines is one row": Case(20, {
        7: ('"7\n",1,red,n', {"x1": "7\n", "x2": "1", "colour": "red"})}),
    "CR-only line endings (old Mac)": Case(50, {9: ('9,1,red,"a\rb"', record(9))}, eol="\r"),
    "CRLF line endings": Case(50, {9: ('9,1,red,"a\r\nb"', record(9))}, eol="\r\n"),
    "a byte-order mark": Case(20, prefix="\ufeff"),
    "ragged rows": Case(30, {4: ("4,1,red", (None, "expected 4 cells")), 5: ("5,1,red,n,extra", (None, "got 5")),
                             6: ('6,1,"red,n",x,y', (None, "got 5"))}),
    "a cell longer than max_field_chars": Case(20, {
        3: (f"3,1,red,{'n' * LONG}", ("note", "longer than")), 4: (f"4,1,{'r' * LONG},n", ("colour", "longer than")),
        5: (f'5,1,red,"{"q" * LONG}"', ("note", "longer than"))}),
    "a cell longer than the csv module's field_size_limit": Case(20, {
        3: (f"3,1,red,{'n' * OVER_CSV_LIMIT}", ("note", "longer than")),
        4: (f'4,1,red,"{"q" * OVER_CSV_LIMIT}"', ("note", "longer than"))}),
    "a quoted cell spanning lines past max_field_chars": Case(200, {
        10: ('10,1,red,"' + "m" * 30, (None, "unbalanced quote"))}, settings={"max_field_chars": 500}),
    "empty lines": Case(20, {1: ("", "blank"), 7: ("", "blank"), 8: ("", "blank"), 20: ("", "blank")}),
    "a line longer than the reader holds": Case(5, {2: ("2,1,red," + "z" * DEFAULT_MAX_LINE_CHARS, (None, "longer"))}),
}


@pytest.fixture
def world(aws_world: AwsWorld) -> AwsWorld:
    publish_tiny_model(aws_world.store, aws_world.registry)
    return aws_world


def predictor_for(w: AwsWorld, **settings: Any) -> Predictor:
    return Predictor(Settings(**settings), w.registry, w.store)


def reconcile(w: AwsWorld, predictor: Predictor, key: str, result: Any) -> tuple[dict[int, dict[str, Any]],
                                                                              dict[int, list[dict[str, Any]]]]:
    """Check the counts and row numbers that must hold for any file; return predictions and errors by row."""
    rest = key.removeprefix("batch/input/tiny/")
    predictions = read_jsonl(w.bucket, out_key("tiny", rest, "predictions"))
    errors = read_jsonl(w.bucket, out_key("tiny", rest, "errors"))
    assert result.rows == result.predicted + result.rejected + result.blank
    by_row = {p["row"]: p for p in predictions}
    assert len(by_row) == len(predictions) == result.predicted, "a row predicted twice"
    errors_by_row: dict[int, list[dict[str, Any]]] = {}
    for e in errors:
        errors_by_row.setdefault(e["row"], []).append(e)
    assert len(errors_by_row) == result.rejected
    assert not set(by_row) & set(errors_by_row), "a row both predicted and rejected"
    assert all(1 <= r <= result.rows for r in [*by_row, *errors_by_row])
    for kind in ("predictions", "errors"):
        meta = s3().head_object(Bucket=w.bucket, Key=out_key("tiny", rest, kind))["Metadata"]
        assert [int(meta[k]) for k in COUNTS] == [result.rows, result.predicted, result.rejected, result.blank], kind
    return by_row, errors_by_row


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_csv_loses_no_row_and_keeps_every_row_number(world: AwsWorld, name: str) -> None:
    """Given a CSV with one kind of hostile content (HOSTILE),
    when the batch job runs,
    then the file is done (never failed for a row's problem); every row is predicted, rejected or blank,
    exactly once, under its own number; the rows the case names give the errors it expects; and the
    counts in the result and in both outputs' metadata reconcile."""
    case = HOSTILE[name]
    predictor = predictor_for(world, **case.settings)
    key = "batch/input/tiny/hostile.csv"
    put(world.bucket, key, case.body())
    started = time.perf_counter()
    result = run_batch(world.bucket, key, predictor, chunk_rows=1000)
    seconds = time.perf_counter() - started
    assert result.status == "done"
    by_row, errors = reconcile(world, predictor, key, result)
    assert result.rows == case.n, (result.rows, case.n)
    blank = {i for i in range(1, case.n + 1) if case.expected(i) == "blank"}
    assert result.blank == len(blank)
    assert set(by_row) | set(errors) | blank == set(range(1, case.n + 1))
    expected_records = {}
    for i in range(1, case.n + 1):
        want = case.expected(i)
        if isinstance(want, dict):
            assert i in by_row, (i, errors.get(i))
            expected_records[i] = want
        elif isinstance(want, tuple):
            assert i in errors, (i, by_row.get(i))
            fields, reasons = [e["field"] for e in errors[i]], " ".join(e["reason"] for e in errors[i])
            assert want[0] in fields and want[1] in reasons, (i, errors[i])
            assert len(reasons) < 500, "a reason must not echo a giant cell"
    rows = sorted(expected_records)
    api = predictor_for(world, max_records=len(rows) + 1)  # the predict API's answer for the same records
    truth = api.predict("tiny", [expected_records[i] for i in rows], version="1").response.predictions
    assert [by_row[i]["probabilities"] for i in rows] == [p.probabilities for p in truth], "a row under a wrong number"
    print(f"\n{name}: {result.rows} rows, {result.predicted} predicted, {result.rejected} rejected, "
          f"{result.blank} blank in {seconds:.2f} s")


JSONL_ROWS: list[tuple[str, Expect]] = [
    (json.dumps({"x1": 1, "colour": "red"}), {"x1": 1, "colour": "red"}),
    ("[" * 100_000 + "]" * 100_000, (None, "nested")),
    ('{"x1": ' + "[" * 5000 + "]" * 5000 + ', "colour": "red"}', (None, "nested")),
    ('{"x1": ' + "9" * 5000 + ', "colour": "red"}', (None, "digits")),
    (json.dumps({"x1": 5, "colour": "r" * LONG}), ("colour", "longer than")),
    (json.dumps({"x1": 6, "colour": "blue", "ignored": "i" * LONG}), {"x1": 6, "colour": "blue"}),
    ("", "blank"),
    (json.dumps({"x1": 8, "colour": "red", "deep": [[[[[1]]]]]}), {"x1": 8, "colour": "red"}),
    ('{"x1": 9, "colour": "blue", "s": "[[[[' + "[" * 100 + '"}', {"x1": 9, "colour": "blue"}),  # brackets in a string
    (json.dumps({"x1": 10, "colour": "x" * OVER_CSV_LIMIT}), ("colour", "longer than")),
    ("z" * (DEFAULT_MAX_LINE_CHARS + 1), (None, "longer")),
    (json.dumps({"x1": 12, "colour": "red"}) + "\r", {"x1": 12, "colour": "red"}),
]


def test_hostile_jsonl_lines_are_row_errors_never_a_failed_file(world: AwsWorld) -> None:
    """Given a JSONL file with a line nested 100,000 deep (RecursionError in json), a value nested 5,000
    deep, an integer of 5,000 digits (ValueError from int conversion), a string over max_field_chars (in a
    field the model reads, and in one it ignores), a line longer than the reader holds, brackets inside a
    string and a CRLF line,
    then each problem is a row error naming row and field, the others are predicted, and the counts reconcile."""
    predictor = predictor_for(world)
    key = "batch/input/tiny/hostile.jsonl"
    put(world.bucket, key, "\n".join(text for text, _ in JSONL_ROWS) + "\n")
    tracemalloc.start()
    try:
        result = run_batch(world.bucket, key, predictor)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.status == "done" and result.rows == len(JSONL_ROWS)
    by_row, errors = reconcile(world, predictor, key, result)
    for i, (_, want) in enumerate(JSONL_ROWS, start=1):
        if isinstance(want, dict):
            assert i in by_row, (i, errors.get(i))
            truth = predictor.predict("tiny", [want], version="1").response.predictions[0]
            assert by_row[i]["probabilities"] == truth.probabilities
        elif isinstance(want, tuple):
            assert [e["field"] for e in errors[i]] == [want[0]] and want[1] in errors[i][0]["reason"], errors[i]
            assert len(errors[i][0]["reason"]) < 500
    print(f"\nhostile JSONL: peak traced memory {peak / 1e6:.1f} MB")
    assert peak < 120e6, peak  # the 8 MiB line and a few copies of it; not records x longest value


# --- files refused as a whole: early, with a report and no output --------------------------------


def assert_refused(w: AwsWorld, key: str, code: str, err: BatchFileError) -> dict[str, Any]:
    rest = key.removeprefix("batch/input/tiny/")
    assert err.code == code, (err.code, err.message)
    report = json.loads(get_bytes(w.bucket, failed_key("tiny", rest)))
    assert report["error"] == code
    assert not exists(w.bucket, out_key("tiny", rest, "predictions"))
    assert not exists(w.bucket, out_key("tiny", rest, "errors"))
    assert s3().list_multipart_uploads(Bucket=w.bucket).get("Uploads", []) == []
    return report


def test_a_gzip_bomb_fails_within_its_first_megabytes(world: AwsWorld) -> None:
    """Given 24 KB of gzip inflating to 16 MiB of CSV rows (2 million rows),
    when the job runs with the default settings,
    then it fails with `too_compressed` after inflating a few MiB (not after predicting the file), with a
    report and no output."""
    key = "batch/input/tiny/bomb.csv.gz"
    body = gzip.compress(b"x1,x2,colour\n" + b"1,2,red\n" * (2 * 1024 * 1024), compresslevel=9)
    put(world.bucket, key, body)
    started = time.perf_counter()
    with pytest.raises(BatchFileError) as err:
        run_batch(world.bucket, key, predictor_for(world))
    seconds = time.perf_counter() - started
    report = assert_refused(world, key, "too_compressed", err.value)
    inflated = report["details"][0]["inflated_bytes"]
    print(f"\n{len(body):,} B bomb refused after inflating {inflated:,} B in {seconds:.2f} s")
    assert inflated <= 4 * 1024 * 1024, inflated


def test_a_file_over_the_decompressed_byte_cap_fails_as_the_cap_is_crossed(world: AwsWorld) -> None:
    """Given batch_max_decompressed_bytes = 256 KiB, a plain CSV over it is refused before it is read and
    an ordinary gzip CSV (ratio ~4) as its inflated text crosses the cap; a file just under is predicted."""
    cap = 256 * 1024
    predictor = predictor_for(world, batch_max_decompressed_bytes=cap)
    rows = "".join(good(i) + "\n" for i in range(1, 30_000))
    text = (HEADER + "\n" + rows).encode()
    assert len(text) > 2 * cap
    put(world.bucket, "batch/input/tiny/big.csv", text)
    with pytest.raises(BatchFileError) as err:
        run_batch(world.bucket, "batch/input/tiny/big.csv", predictor)
    report = assert_refused(world, "batch/input/tiny/big.csv", "too_large", err.value)
    assert "256" in report["message"] or f"{cap:,}" in report["message"]
    put(world.bucket, "batch/input/tiny/big.csv.gz", gzip.compress(text))
    with pytest.raises(BatchFileError) as err:
        run_batch(world.bucket, "batch/input/tiny/big.csv.gz", predictor)
    assert_refused(world, "batch/input/tiny/big.csv.gz", "too_large", err.value)
    small = text[: cap - 100].rsplit(b"\n", 1)[0] + b"\n"
    put(world.bucket, "batch/input/tiny/fits.csv.gz", gzip.compress(small))
    assert run_batch(world.bucket, "batch/input/tiny/fits.csv.gz", predictor).rejected == 0


def test_a_file_over_the_row_cap_fails_as_the_cap_is_crossed(world: AwsWorld) -> None:
    """Given batch_max_rows = 500, a file of 500 rows is predicted and one of 501 (blank rows count) is
    refused with `too_many_rows`, a report and no output."""
    predictor = predictor_for(world, batch_max_rows=500)
    put(world.bucket, "batch/input/tiny/ok.csv", Case(500).body())
    assert run_batch(world.bucket, "batch/input/tiny/ok.csv", predictor).rows == 500
    put(world.bucket, "batch/input/tiny/many.jsonl", "\n" * 200 + "{}\n" * 301)
    with pytest.raises(BatchFileError) as err:
        run_batch(world.bucket, "batch/input/tiny/many.jsonl", predictor, chunk_rows=50)
    report = assert_refused(world, "batch/input/tiny/many.jsonl", "too_many_rows", err.value)
    assert "500" in report["message"]


def test_a_skipped_duplicate_reports_the_counts_of_the_run_it_repeats(world: AwsWorld) -> None:
    predictor = predictor_for(world)
    key = "batch/input/tiny/twice.csv"
    put(world.bucket, key, Case(30, {3: ("", "blank"), 4: ("4,1", (None, "cells"))}).body())
    first, second = run_batch(world.bucket, key, predictor), run_batch(world.bucket, key, predictor)
    assert second.status == "skipped"
    assert (second.rows, second.predicted, second.rejected, second.blank) == \
        (first.rows, first.predicted, first.rejected, first.blank) == (30, 28, 1, 1)
