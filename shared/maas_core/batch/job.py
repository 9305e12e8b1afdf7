"""Batch predictions for a file dropped in S3: `batch/input/{model}/...` -> `batch/output/{model}/...`.

    result = run_batch(bucket, "batch/input/churn/2024/jan.csv", predictor)

Which model version: the alias `prod` by default. The uploader may choose another with object
metadata (S3 user metadata, sent as `x-amz-meta-*` headers):

    aws s3 cp jan.csv s3://BUCKET/batch/input/churn/2024/jan.csv --metadata maas-version=7
    aws s3 cp jan.csv s3://BUCKET/batch/input/churn/2024/jan.csv --metadata maas-alias=staging
    aws s3 cp jan.csv s3://BUCKET/batch/input/churn/2024/jan.csv --metadata maas-variant=int8

`maas-variant` picks the version's float (default) or int8 (quantized) model; the outputs' metadata
records it (`maas-model-variant`).

Metadata wins over the default; giving both `maas-version` and `maas-alias` fails the file. The
version is resolved once per file, so every row of a file is predicted by the same version even if
an alias moves meanwhile. An alias with a canary sends its share of *files* to the canary version,
chosen by the input's S3 URI (sticky: the same key always goes the same way).

What the run writes (see paths.py for the key layout):
- `{rest}.predictions.jsonl`: one line per valid input row, in input order:
  {"row": 12, "id": "<file id>-12", "label": "yes", "probabilities": {...}, "model": "churn", "version": "3"}
  (regression models give "value" instead of "label"/"probabilities"). `row` is the 1-based data row
  of the input (see reader.py). `id` has the predict API's shape, `{32 hex digits}-{row}`, and is
  deterministic: the input object's LastModified in milliseconds (12 hex digits, so ids sort by upload
  time like the API's sort by request time) and the first 20 hex digits of
  sha256("{bucket}/{key}/{etag}"); a re-run over the same object gives the same ids.
- `{rest}.errors.jsonl`: one line per problem of a rejected row, {"row", "field", "reason"}; always
  written (possibly empty) and written last, so its presence means the run finished.
Both appear atomically (see writer.py) and carry metadata `maas-input-etag` and `maas-model-version`, and
the run's row counts: `maas-rows-read` = `maas-rows-predicted` + `maas-rows-rejected` + `maas-rows-blank`
(every input row is in exactly one of the two files, or blank; see reader.py for how rows are numbered).
The same counts are in the BatchResult (rows, predicted, rejected, blank) and the function's log line.

Limits (Settings, docs/security.md): a file over MAAS_BATCH_MAX_DECOMPRESSED_BYTES (its size, or the text
it inflates to), MAAS_BATCH_MAX_ROWS rows, or gzip inflating more than MAAS_BATCH_MAX_COMPRESSION_RATIO
times fails (`too_large`, `too_many_rows`, `too_compressed`) as the limit is crossed, before more work;
a value longer than MAAS_MAX_FIELD_CHARS is a row error.

At-least-once delivery: S3 may deliver an event twice. A run whose errors file already records the
same input ETag and model version does nothing (status "skipped"); otherwise the same input gives
byte-identical outputs under the same keys, so a duplicate run never duplicates rows.

A file that cannot be processed (see reader.py, plus an unknown model or version, both version and
alias in the metadata, running out of time) gets a report at `batch/failed/{model}/{rest}.error.json`:
{"input": "s3://...", "error": "<code>", "message": "...", "details": [...]}, and run_batch raises
BatchFileError so the invocation fails (and, once retries are spent, lands in the dead-letter queue).
A later successful run of the same key removes a stale report.

With a `monitor` (maas_core.monitoring.batch.BatchMonitor, as the batch function passes), each processed
or failed file emits the predict API's metrics per model and version (a file counts as one request,
latency per chunk, rejected rows, label mix) and a sample of its rows is captured with source "batch".
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from maas_core import aws
from maas_core.batch.completion import file_finished
from maas_core.batch.errors import BatchFileError
from maas_core.batch.paths import BatchPaths, file_id
from maas_core.batch.reader import (
    DEFAULT_CHUNK_ROWS,
    READ_SIZE,
    Chunk,
    Limits,
    detect_format,
    read_records,
    too_large,
)
from maas_core.batch.writer import DEFAULT_PART_SIZE, AtomicS3Writer
from maas_core.errors import MaasError
from maas_core.manifest import DEFAULT_VARIANT
from maas_core.model_cache import LoadedModel
from maas_core.outcome import ChunkOutcome, Route
from maas_core.outputs import NON_FINITE_REASON, Predictions, nonfinite_rows, shape_outputs
from maas_core.predictor import Predictor
from maas_core.preprocess.text import tokens_reused
from maas_core.registry import check_version

if TYPE_CHECKING:
    from maas_core.monitoring.batch import BatchMonitor

logger = Logger(child=True)

META_VERSION = "maas-version"  # input metadata: predict with this version
META_ALIAS = "maas-alias"  # input metadata: predict with the version of this alias
META_VARIANT = "maas-variant"  # input metadata: float (default) or int8
OUT_VARIANT = "maas-model-variant"  # output metadata: which of the version's models predicted
OUT_INPUT_ETAG = "maas-input-etag"  # output metadata: which input content was processed
OUT_MODEL = "maas-model"
OUT_VERSION = "maas-model-version"  # output metadata: by which version
OUT_ROWS_READ, OUT_ROWS_PREDICTED = "maas-rows-read", "maas-rows-predicted"  # output metadata: the run's counts
OUT_ROWS_REJECTED, OUT_ROWS_BLANK = "maas-rows-rejected", "maas-rows-blank"
JSONL = "application/x-ndjson"
MIN_TIME_LEFT_SECONDS = 30.0  # stop (and report) before the function is killed mid-upload


@dataclass
class BatchResult:
    input: str  # s3://bucket/key
    # gone: the object was deleted before we read it; started: handed to the state machine (distributed.py)
    status: Literal["done", "skipped", "gone", "started"]
    model: str
    version: str | None = None
    alias: str | None = None
    canary: bool = False  # the alias's canary version was chosen for this file
    etag: str | None = None
    rows: int = 0  # data rows read: predicted + rejected + blank
    predicted: int = 0
    rejected: int = 0  # rows with at least one error
    blank: int = 0
    predictions_key: str | None = None
    errors_key: str | None = None
    multipart: bool = False  # the predictions file went up as a multipart upload
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def run_batch(
    bucket: str,
    key: str,
    predictor: Predictor,
    *,
    s3: Any | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    part_size: int = DEFAULT_PART_SIZE,
    time_left: Callable[[], float] | None = None,
    monitor: BatchMonitor | None = None,
) -> BatchResult:
    """Predict every row of s3://bucket/key (a batch input) and write the outputs; see the module docstring.

    `time_left()` (seconds, e.g. from the Lambda context) lets a run stop cleanly before a timeout.
    Raises BatchFileError (after writing the failure report) when the file cannot be processed.
    """
    s3 = s3 or aws.client("s3")
    paths = BatchPaths.from_input_key(key)  # ValueError: not under batch/input/ (callers filter first)
    uri = f"s3://{bucket}/{key}"
    run = _Run(bucket, paths, predictor, s3, chunk_rows, part_size, time_left, monitor)
    try:
        result = run.run()
    except Exception as exc:
        failure = as_file_error(exc, uri)
        file_finished(s3, bucket, paths, failure=failure)
        run.observed(failed=True)
        if failure is exc:
            raise
        raise failure from exc
    file_finished(s3, bucket, paths, result=result)
    if result.status == "done":  # a skipped duplicate was counted when it was processed
        run.observed(failed=False)
    return result


class _Run:
    def __init__(self, bucket: str, paths: BatchPaths, predictor: Predictor, s3: Any, chunk_rows: int,
                 part_size: int, time_left: Callable[[], float] | None, monitor: BatchMonitor | None = None) -> None:
        self.bucket, self.paths, self.predictor, self.s3 = bucket, paths, predictor, s3
        self.chunk_rows, self.part_size, self.time_left = chunk_rows, part_size, time_left
        self.monitor = monitor
        self.observation = monitor.start() if monitor is not None else None
        self.started = time.monotonic()
        self.result = BatchResult(input=f"s3://{bucket}/{paths.input_key}", status="done", model=paths.model)

    def run(self) -> BatchResult:
        paths = self.paths
        fmt = detect_format(paths.input_key)
        if not paths.model:
            raise BatchFileError("no_model", "batch files go under batch/input/{model}/: this key names no model")
        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=paths.input_key)
        except ClientError as exc:
            if aws.is_not_found(exc):  # deleted after its event was sent: nothing to do
                logger.warning("batch input is gone; nothing to do", extra={"input": self.result.input})
                return self._finish("gone")
            raise
        body = obj["Body"]
        try:
            etag = str(obj.get("ETag", "")).strip('"')
            self.result.etag = etag
            limits = Limits.from_settings(self.predictor.settings)
            if limits.max_bytes is not None and int(obj.get("ContentLength") or 0) > limits.max_bytes:
                raise too_large(limits.max_bytes)  # before reading it (gzip inflates at least to its size)
            version, alias, variant = requested_model(obj.get("Metadata") or {})
            route = self.predictor.route(paths.model, version, alias, routing_key=self.result.input,  # once per file
                                         variant=variant)
            version = route.version
            self.result.version, self.result.alias, self.result.canary = version, route.alias, route.canary
            if self._already_done(etag, version, route.variant):
                return self._finish("skipped")
            model = self.predictor.load(paths.model, version, route.variant)
            schema = model.manifest.input_schema
            chunks = read_records(body.iter_chunks(READ_SIZE), fmt, required=[f.name for f in schema if f.required],
                                  fields=[f.name for f in schema], chunk_rows=self.chunk_rows, limits=limits)
            self._predict(chunks, model, route, etag, file_id(self.bucket, paths.input_key, etag,
                                                              obj.get("LastModified")))
        finally:
            body.close()
        return self._finish("done")

    def _predict(self, chunks: Any, model: LoadedModel, route: Route, etag: str, fid: str) -> None:
        paths, name, version = self.paths, route.model, route.version
        metadata = {OUT_INPUT_ETAG: etag, OUT_MODEL: name, OUT_VERSION: version, OUT_VARIANT: model.variant}
        chunk_predictor = ChunkPredictor(model, name, version, fid, max_chars=self.predictor.settings.max_field_chars)
        with (AtomicS3Writer(self.s3, self.bucket, paths.predictions_key, part_size=self.part_size,
                             content_type=JSONL, metadata=metadata) as predictions,
              AtomicS3Writer(self.s3, self.bucket, paths.errors_key, part_size=self.part_size,
                             content_type=JSONL, metadata=metadata) as errors):
            def observe(done: ChunkResult, started: float) -> None:
                if self.monitor is not None and self.observation is not None:
                    self.monitor.chunk(self.observation, ChunkOutcome(
                        route, model.manifest, model.spec, fid, done.rows, done.records, done.predictions,
                        done.rejected(), latency_ms=(time.perf_counter() - started) * 1000.0))

            predict_chunks(chunks, chunk_predictor, predictions, errors, self.result, before=self._check_time,
                           after=observe)
            counts = row_counts(self.result)
            predictions.commit(counts)  # first: the errors file, written last, says the run finished
            try:
                errors.commit(counts)
            except Exception:
                self._withdraw(paths.predictions_key)  # no predictions file without the errors file beside it
                raise
            self.result.multipart = predictions.multipart
        self.result.predictions_key, self.result.errors_key = paths.predictions_key, paths.errors_key

    def observed(self, failed: bool) -> None:
        """Emit the file's metrics (never raises); the model only counts once its version resolved."""
        if self.monitor is not None and self.observation is not None:
            version = self.result.version
            self.monitor.finish(self.observation, self.paths.model if version else None, version, failed=failed,
                                input_uri=self.result.input)

    def _already_done(self, etag: str, version: str, variant: str) -> bool:
        return already_done(self.s3, self.bucket, self.paths, self.result, etag, version, variant)

    def _withdraw(self, key: str) -> None:
        withdraw(self.s3, self.bucket, key)

    def _check_time(self) -> None:
        if self.time_left is not None and self.time_left() < MIN_TIME_LEFT_SECONDS:
            raise BatchFileError(
                "timeout", f"the file was not finished within the function's time limit ({self.result.rows} rows "
                "done); split it into smaller files", [{"rows_done": self.result.rows}])

    def _finish(self, status: Literal["done", "skipped", "gone"]) -> BatchResult:
        self.result.status = status
        self.result.seconds = round(time.monotonic() - self.started, 3)
        return self.result


def predict_chunks(chunks: Iterable[Chunk], chunk_predictor: ChunkPredictor, predictions: AtomicS3Writer,
                   errors: AtomicS3Writer, result: BatchResult, *, before: Callable[[], None] | None = None,
                   after: Callable[[ChunkResult, float], None] | None = None) -> None:
    """Predict `chunks` into the two writers, adding their rows to `result`'s counts (both paths: a whole file,
    or one shard of it). `before()` runs before each chunk, `after(done, started)` after it."""
    for chunk in chunks:
        with tokens_reused():  # a chunk's texts are tokenized once, for the model and its captures
            if before is not None:
                before()
            started = time.perf_counter()
            done = chunk_predictor.predict(chunk)
            predictions.write(done.lines)
            if done.problems:
                errors.write("".join(_dumps(p) for p in done.problems).encode())
            result.rows += chunk.size
            result.predicted += len(done.rows)
            result.rejected += done.rejected()
            result.blank += chunk.blank
            if after is not None:
                after(done, started)


def row_counts(result: BatchResult) -> dict[str, str]:
    """The outputs' count metadata."""
    return {OUT_ROWS_READ: str(result.rows), OUT_ROWS_PREDICTED: str(result.predicted),
            OUT_ROWS_REJECTED: str(result.rejected), OUT_ROWS_BLANK: str(result.blank)}


def already_done(s3: Any, bucket: str, paths: BatchPaths, result: BatchResult, etag: str, version: str,
                 variant: str) -> bool:
    """The errors file (written last) records this input ETag and model version: a duplicate event. Then
    `result` gets the outputs' keys and the counts of the run this repeats."""
    try:
        head = s3.head_object(Bucket=bucket, Key=paths.errors_key)
    except ClientError as exc:
        if aws.is_not_found(exc) or aws.error_code(exc) in {"403", "AccessDenied"}:
            return False
        raise
    meta = head.get("Metadata") or {}
    if (meta.get(OUT_INPUT_ETAG) == etag and meta.get(OUT_VERSION) == version
            and meta.get(OUT_VARIANT, DEFAULT_VARIANT) == variant):
        result.predictions_key, result.errors_key = paths.predictions_key, paths.errors_key
        # the counts of the run this repeats (absent from outputs of older runs: 0)
        result.rows, result.predicted, result.rejected, result.blank = (int(meta.get(k) or 0) for k in (
            OUT_ROWS_READ, OUT_ROWS_PREDICTED, OUT_ROWS_REJECTED, OUT_ROWS_BLANK))
        logger.info("batch input already processed by this version; skipped",
                    extra={"input": result.input, "version": version, "variant": variant})
        return True
    return False


def withdraw(s3: Any, bucket: str, key: str) -> None:
    """Best effort: delete an output whose run failed after it was committed (the redelivered event writes
    it again, byte for byte); if even that fails, the missing errors file still says the run did not end."""
    try:
        s3.delete_object(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError):
        logger.warning("could not withdraw an output of a failed run", extra={"output": f"s3://{bucket}/{key}"},
                       exc_info=True)


@dataclass(frozen=True)
class ChunkResult:
    """One chunk predicted: its prediction lines and row problems for the outputs, and the rows predicted."""

    lines: bytes  # JSONL: one line per predicted row, in row order
    problems: list[dict[str, Any]]  # {"row", "field", "reason"}, by row (a row may have several)
    rows: list[int]  # the predicted rows
    records: list[Any]  # their raw records (for capture)
    predictions: Predictions  # what they got (maas_core.outputs, as the predict API shapes it)

    def rejected(self) -> int:
        return len({p["row"] for p in self.problems})


class ChunkPredictor:
    """Predicts the chunks of one file with one model version: a chunk of records -> its ChunkResult.

    Outputs are shaped as the predict API shapes them (maas_core.outputs.shape_outputs); lines are formatted
    from a template made once per file (byte for byte what json gives for the line's dict, at a third of the
    cost: the 5 us a row of json.dumps was the largest cost of a batch file)."""

    def __init__(self, model: LoadedModel, name: str, version: str, file_id: str, max_chars: int | None = None) -> None:
        self.model = model
        self.max_chars = max_chars  # MAAS_MAX_FIELD_CHARS: the reader caps raw values, the spec normalised text
        m = model.manifest
        self.none = shape_outputs(m.task, m.labels, np.empty((0, 1), np.float32))  # a chunk with no row predicted
        self.template = _line_template(m.labels, name, version, file_id, self.none.regression)
        self.label_json = [_ENCODER.encode(label) for label in m.labels]

    def predict(self, chunk: Chunk) -> ChunkResult:
        problems = list(chunk.errors)
        rows: list[int] = []
        records: list[Any] = []
        predictions = self.none
        if chunk.records:
            matrix, kept, spec_errors = self.model.spec.transform_valid(chunk.records, max_chars=self.max_chars)
            problems += [{"row": chunk.rows[e["index"]], "field": e.get("field"), "reason": e["reason"]}
                         for e in spec_errors]
            if kept:
                rows = [chunk.rows[i] for i in kept]
                records = [chunk.records[i] for i in kept]
                outputs = self.model.run(matrix).reshape(len(kept), -1)
                finite = ~nonfinite_rows(outputs)  # the predict API refuses the same records (422), in the same words
                if not finite.all():
                    problems += [{"row": r, "field": None, "reason": NON_FINITE_REASON}
                                 for r, ok in zip(rows, finite.tolist(), strict=True) if not ok]
                    rows = [r for r, ok in zip(rows, finite.tolist(), strict=True) if ok]
                    records = [rec for rec, ok in zip(records, finite.tolist(), strict=True) if ok]
                    outputs = outputs[finite]
                predictions = shape_outputs(self.model.manifest.task, self.model.manifest.labels, outputs)
        problems.sort(key=lambda p: p["row"])  # stable: a row's problems keep their field order
        return ChunkResult(self.lines(rows, predictions).encode(), problems, rows, records, predictions)

    def lines(self, rows: list[int], predictions: Predictions) -> str:
        """The prediction lines of `rows` (see the module docstring for their fields)."""
        t = self.template
        if predictions.regression:
            return "".join([t % (r, r, v) for r, v in zip(rows, predictions.values, strict=True)])
        labels = self.label_json
        best, probabilities = predictions.best, predictions.probabilities
        return "".join([t % (r, r, labels[b], *p) for r, b, p in zip(rows, best, probabilities, strict=True)])


def _line_template(labels: list[str], name: str, version: str, file_id: str, regression: bool) -> str:
    """A %-format of one prediction line: (row, row, value) or (row, row, label JSON, *probabilities). Floats
    go in with %r, which is how json writes them (float.__repr__); the constant parts are json-encoded once."""
    def literal(encoded: str) -> str:
        return encoded.replace("%", "%%")

    head = '{"row":%d,"id":' + literal(_ENCODER.encode(f"{file_id}-")[:-1]) + '%d",'
    tail = "," + literal(_ENCODER.encode({"model": name, "version": version})[1:]) + "\n"
    if regression:
        return head + '"value":%r' + tail
    probabilities = ",".join(literal(_ENCODER.encode(label)) + ":%r" for label in labels)
    return head + '"label":%s,"probabilities":{' + probabilities + "}" + tail


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _dumps(obj: dict[str, Any]) -> str:
    return _ENCODER.encode(obj) + "\n"


def requested_model(metadata: dict[str, str]) -> tuple[str | None, str | None, str | None]:
    """(version, alias, variant) the uploader asked for in the object's metadata; None = the default
    (the default alias; the float variant)."""
    meta = {k.lower(): v.strip() for k, v in metadata.items()}
    version, alias = meta.get(META_VERSION) or None, meta.get(META_ALIAS) or None
    if version:
        check_version(version, META_VERSION)  # as the predict API's ?version=: "01" is not version 1
    if version and alias:
        raise BatchFileError("version_and_alias",
                             f"the object's metadata gives both {META_VERSION} and {META_ALIAS}; give one",
                             [{"field": META_VERSION, "value": version}, {"field": META_ALIAS, "value": alias}])
    return version, alias, meta.get(META_VARIANT)


def as_file_error(exc: BaseException, uri: str) -> BatchFileError:
    """Any failure of a run as a BatchFileError naming the input (the same object if it already is one)."""
    if isinstance(exc, BatchFileError):
        err = exc
    elif isinstance(exc, MaasError):
        err = BatchFileError(exc.code, exc.message, exc.details)
    elif isinstance(exc, ClientError):
        code = aws.error_code(exc)
        op = getattr(exc, "operation_name", "an AWS call")
        err = BatchFileError("service_unavailable", f"{op} failed ({code}); try again later",
                             [{"reason": code, "operation": op}])
    elif isinstance(exc, BotoCoreError):
        err = BatchFileError("service_unavailable", "an AWS service could not be reached; try again later",
                             [{"reason": type(exc).__name__}])
    else:
        err = BatchFileError("internal_error", "an unexpected error stopped the run; see the function's logs",
                             [{"reason": type(exc).__name__}])
    err.input_uri = uri
    return err
