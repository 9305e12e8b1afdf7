"""Large batch files on Step Functions Distributed Map: the same outputs as run_batch, from shards in parallel.

    start_large_file(bucket, key, settings)   # the batch function: a large file -> one execution (or None)
    plan_file(file, predictor)                # state Plan: route, duplicate check, shards.json
    run_shards(job, items, predictor)         # Map item batch: each shard's outputs under batch/work/
    assemble_file(job)                        # state Assemble: the outputs, by UploadPartCopy, in input order
    fail_file(file, error)                    # state Failed: the failure report, the work area removed

The state machine is `BatchStateMachine` in template.yaml (functions/batch_shards/app.py runs each step);
locally maas_local.distributed_map runs the same definition in-process. Results match the single path
byte for byte (see docs/batch.md): the shards are planned by the reader's own code (shards.py), predicted
by the same chunk code (job.predict_chunks), row numbers and prediction ids are the file's, and the
outputs carry the same metadata and counts. Both paths end in completion.file_finished.

Idempotency: the execution is named by the file id (LastModified + hash of bucket, key and ETag), so a
redelivered event for the same upload starts nothing new (Step Functions returns the running execution,
or refuses a finished one: `skipped`); the Plan step also skips a file whose errors file records this
ETag and version, as run_batch does. Nothing appears under batch/output/ until Assemble commits; a failed
execution removes its work area, so it leaves only the failure report.

Which files: larger than `batch_distributed_threshold_bytes`, not gzip (a byte range of a gzip stream
cannot be read on its own: gzip files take the single path and its limits), and only when the stack
names a state machine (`batch_state_machine_arn`); work.takes_distributed_path is the rule (the jobs API
reads a running file's progress by it), and work.py the layout of the work area.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from maas_core import aws
from maas_core.batch.completion import file_finished
from maas_core.batch.errors import BatchFileError
from maas_core.batch.job import (
    JSONL,
    OUT_INPUT_ETAG,
    OUT_MODEL,
    OUT_VARIANT,
    OUT_VERSION,
    BatchResult,
    ChunkPredictor,
    ChunkResult,
    already_done,
    as_file_error,
    predict_chunks,
    requested_model,
    row_counts,
    withdraw,
)
from maas_core.batch.paths import BatchPaths, file_id
from maas_core.batch.reader import READ_SIZE, Limits, detect_format, read_records, too_large
from maas_core.batch.shards import Shard, plan_shards
from maas_core.batch.work import SHARDS, shard_key, starts_gzip, takes_distributed_path, work_prefix
from maas_core.batch.writer import AtomicS3Writer
from maas_core.outcome import ChunkOutcome, Route
from maas_core.predictor import Predictor
from maas_core.settings import Settings

if TYPE_CHECKING:
    from maas_core.monitoring.batch import BatchMonitor

logger = Logger(child=True)

# the handler's end of a finished file (bucket, key, its result or failure): maas_core.jobs.batch_file_finished
Announce = Callable[[str, str, "BatchResult | BatchFileError"], object]


def start_large_file(bucket: str, key: str, settings: Settings, *, s3: Any | None = None,
                     sfn: Any | None = None) -> BatchResult | None:
    """Start the state machine for a large file; None: the file takes the single-function path."""
    if not settings.batch_state_machine_arn:
        return None
    s3 = s3 or aws.client("s3")
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if aws.is_not_found(exc):
            return None  # run_batch reports it gone
        raise
    size = int(head.get("ContentLength") or 0)
    if not takes_distributed_path(key, head, settings.batch_distributed_threshold_bytes) \
            or starts_gzip(s3, bucket, key):
        return None
    paths = BatchPaths.from_input_key(key)
    etag = str(head.get("ETag", "")).strip('"')
    fid = file_id(bucket, key, etag, head.get("LastModified"))
    result = BatchResult(input=f"s3://{bucket}/{key}", status="started", model=paths.model, etag=etag)
    execution = {"bucket": bucket, "key": key, "etag": etag, "file_id": fid}  # the same for a redelivery
    sfn = sfn or aws.client("stepfunctions")  # type: ignore[call-overload]
    try:
        sfn.start_execution(stateMachineArn=settings.batch_state_machine_arn, name=fid,
                            input=json.dumps(execution, sort_keys=True))
    except ClientError as exc:
        if aws.error_code(exc) != "ExecutionAlreadyExists":
            raise
        result.status = "skipped"  # this upload's execution already ran
    logger.info("large batch file handed to the state machine", extra={**result.summary(), "bytes": size})
    return result


ASSEMBLY_PART_SIZE = 5 * 1024 * 1024  # S3's smallest part (but the last): the most shard outputs copied as parts


def plan_file(file: dict[str, Any], predictor: Predictor, *, s3: Any | None = None) -> dict[str, Any]:
    """State Plan: resolve the model version once for the file, skip a duplicate, write shards.json."""
    s3 = s3 or aws.client("s3")
    settings = predictor.settings
    chunk_rows = settings.batch_chunk_rows  # the single path's chunks: a shard boundary is a chunk boundary
    bucket, key, etag, fid = file["bucket"], file["key"], file["etag"], file["file_id"]
    paths = BatchPaths.from_input_key(key)
    uri = f"s3://{bucket}/{key}"
    try:
        fmt = detect_format(key)
        if not paths.model:
            raise BatchFileError("no_model", "batch files go under batch/input/{model}/: this key names no model")
        obj = _get(s3, bucket, key, etag)  # the content the event announced
        body = obj["Body"]
        try:
            limits = Limits.from_settings(settings)
            size = int(obj.get("ContentLength") or 0)
            if limits.max_bytes is not None and size > limits.max_bytes:
                raise too_large(limits.max_bytes)
            version, alias, variant = requested_model(obj.get("Metadata") or {})
            route = predictor.route(paths.model, version, alias, routing_key=uri, variant=variant)
            result = BatchResult(input=uri, status="done", model=paths.model, version=route.version,
                                 alias=route.alias, canary=route.canary, etag=etag)
            job = {"bucket": bucket, "key": key, "etag": etag, "file_id": fid, "version": route.version,
                   "alias": route.alias, "canary": route.canary, "variant": route.variant,
                   "work": work_prefix(paths, fid), "chunk_rows": chunk_rows}
            if already_done(s3, bucket, paths, result, etag, route.version, route.variant):
                # every field the state's ResultSelector names, even unused: a missing path fails the execution
                return {"skipped": True, "job": job, "result": result.summary(),
                        "items": {"Bucket": bucket, "Key": job["work"] + SHARDS},
                        "max_concurrency": settings.batch_max_concurrency}
            model = predictor.load(paths.model, route.version, route.variant)
            schema = model.manifest.input_schema
            plan = plan_shards(body.iter_chunks(READ_SIZE), fmt, size=size, shard_bytes=settings.batch_shard_bytes,
                               shard_rows=settings.batch_shard_rows,
                               required=[f.name for f in schema if f.required], chunk_rows=chunk_rows, limits=limits)
        finally:
            body.close()
        job.update(header_end=plan.header_end, rows=plan.rows, shards=len(plan.shards))
        shards_key = job["work"] + SHARDS
        s3.put_object(Bucket=bucket, Key=shards_key, ContentType="application/json",
                      Body=json.dumps([s.as_dict() for s in plan.shards]).encode())
        logger.info("batch file planned", extra={"input": uri, "shards": len(plan.shards), "rows": plan.rows})
        return {"skipped": False, "job": job, "items": {"Bucket": bucket, "Key": shards_key},
                "max_concurrency": settings.batch_max_concurrency}
    except Exception as exc:
        _raise_noted(s3, bucket, paths, fid, "plan", exc, uri)


def run_shards(job: dict[str, Any], items: list[dict[str, Any]], predictor: Predictor, *,
               s3: Any | None = None, monitor: BatchMonitor | None = None) -> list[dict[str, Any]]:
    """A Map item batch: predict each shard into its work objects; returns their counts. With a `monitor`, each
    shard emits its rows' metrics and captures (RequestCount 0: the file counts once, at its end)."""
    s3 = s3 or aws.client("s3")
    return [_run_shard(job, Shard(**item), predictor, s3, monitor) for item in items]


def _shard_key(job: dict[str, Any], index: int, suffix: str) -> str:
    return shard_key(job["work"], index, suffix)


def _run_shard(job: dict[str, Any], shard: Shard, predictor: Predictor, s3: Any,
               monitor: BatchMonitor | None) -> dict[str, Any]:
    bucket, key, etag = job["bucket"], job["key"], job["etag"]
    paths = BatchPaths.from_input_key(key)
    uri = f"s3://{bucket}/{key}"
    try:
        fmt = detect_format(key)
        model = predictor.load(paths.model, job["version"], job["variant"])
        schema = model.manifest.input_schema
        settings = predictor.settings
        limits = Limits(max_field_chars=settings.max_field_chars)  # file limits: checked by the plan

        def data() -> Iterator[bytes]:
            if shard.start > 0 and job["header_end"] > 0:  # every CSV shard reads the header record again
                yield _range(s3, bucket, key, etag, 0, job["header_end"]).read()
            body = _range(s3, bucket, key, etag, shard.start, shard.end)
            try:
                yield from body.iter_chunks(READ_SIZE)
            finally:
                body.close()

        chunks = read_records(data(), fmt, required=[f.name for f in schema if f.required],
                              fields=[f.name for f in schema], chunk_rows=int(job["chunk_rows"]), limits=limits,
                              first_row=shard.first_row, whole_file=False)
        chunk_predictor = ChunkPredictor(model, paths.model, job["version"], job["file_id"],
                                          max_chars=settings.max_field_chars)
        counts = BatchResult(input=uri, status="done", model=paths.model)
        route = Route(paths.model, job["version"], job["alias"], bool(job["canary"]), variant=job["variant"])
        observation = monitor.start() if monitor is not None else None

        def observe(done: ChunkResult, started: float) -> None:
            if monitor is not None and observation is not None:
                monitor.chunk(observation, ChunkOutcome(
                    route, model.manifest, model.spec, job["file_id"], done.rows, done.records, done.predictions,
                    done.rejected(), latency_ms=(time.perf_counter() - started) * 1000.0))

        with (AtomicS3Writer(s3, bucket, _shard_key(job, shard.index, ".predictions.jsonl"),
                             content_type=JSONL) as predictions,
              AtomicS3Writer(s3, bucket, _shard_key(job, shard.index, ".errors.jsonl"), content_type=JSONL) as errors):
            predict_chunks(chunks, chunk_predictor, predictions, errors, counts, after=observe)
            predictions.commit()
            errors.commit()
        if monitor is not None and observation is not None:
            monitor.finish(observation, paths.model, job["version"], failed=False, input_uri=uri, requests=0)
        done = {"index": shard.index, "rows": counts.rows, "predicted": counts.predicted,
                "rejected": counts.rejected, "blank": counts.blank,
                "predictions_bytes": predictions.bytes_written, "errors_bytes": errors.bytes_written}
        s3.put_object(Bucket=bucket, Key=_shard_key(job, shard.index, ".json"), Body=json.dumps(done).encode(),
                      ContentType="application/json")
        # a failure noted by an earlier attempt of this shard (retried since) is not the file's
        s3.delete_object(Bucket=bucket, Key=f"{job['work']}failed-1-shard-{shard.index:05d}.json")
        return done
    except Exception as exc:
        _raise_noted(s3, bucket, paths, job["file_id"], f"shard-{shard.index:05d}", exc, uri)


def _range(s3: Any, bucket: str, key: str, etag: str, start: int, end: int) -> Any:
    return _get(s3, bucket, key, etag, Range=f"bytes={start}-{end - 1}")["Body"]


def _get(s3: Any, bucket: str, key: str, etag: str, **kwargs: Any) -> Any:
    """The input as the execution started on it: a replaced object fails the run (its own upload runs anew)."""
    try:
        return s3.get_object(Bucket=bucket, Key=key, IfMatch=etag, **kwargs)
    except ClientError as exc:
        if aws.error_code(exc) not in {"PreconditionFailed", "412"}:
            raise
        raise BatchFileError("changed_while_read", "the input was replaced while it was processed; the new "
                             "upload is processed on its own", [{"reason": "ETag changed", "etag": etag}]) from exc


def assemble_file(job: dict[str, Any], *, s3: Any | None = None, part_size: int | None = None,
                  monitor: BatchMonitor | None = None, announce: Announce | None = None) -> dict[str, Any]:
    """State Assemble: the shards' outputs, in input order, as the file's two outputs (errors last); then
    the file finishes as run_batch's does (`announce`: the handler's end of a file, e.g. the job's record and
    the completion event) and the work area is removed. Returns the BatchResult summary.

    `announce` runs before the work area goes: if it raises, the state's retry assembles the same outputs
    again from the shards and announces again (what a redelivery does on the single path)."""
    s3 = s3 or aws.client("s3")
    part_size = part_size or ASSEMBLY_PART_SIZE
    bucket, key, etag = job["bucket"], job["key"], job["etag"]
    paths = BatchPaths.from_input_key(key)
    uri = f"s3://{bucket}/{key}"
    try:
        shards = [_read_json(s3, bucket, _shard_key(job, i, ".json")) for i in range(int(job["shards"]))]
        result = BatchResult(input=uri, status="done", model=paths.model, version=job["version"],
                             alias=job["alias"], canary=bool(job["canary"]), etag=etag)
        for done in shards:
            result.rows += done["rows"]
            result.predicted += done["predicted"]
            result.rejected += done["rejected"]
            result.blank += done["blank"]
        if result.rows != job["rows"]:  # every row the plan counted is in exactly one shard
            raise BatchFileError("internal_error", f"the shards read {result.rows} rows of the {job['rows']} planned")
        metadata = {OUT_INPUT_ETAG: etag, OUT_MODEL: paths.model, OUT_VERSION: job["version"],
                    OUT_VARIANT: job["variant"], **row_counts(result)}
        with (AtomicS3Writer(s3, bucket, paths.predictions_key, part_size=part_size,
                             content_type=JSONL, metadata=metadata) as predictions,
              AtomicS3Writer(s3, bucket, paths.errors_key, part_size=part_size,
                             content_type=JSONL, metadata=metadata) as errors):
            for done in shards:
                predictions.append_object(_shard_key(job, done["index"], ".predictions.jsonl"),
                                          done["predictions_bytes"])
                errors.append_object(_shard_key(job, done["index"], ".errors.jsonl"), done["errors_bytes"])
            predictions.commit()  # first: the errors file, written last, says the run finished
            try:
                errors.commit()
            except Exception:
                withdraw(s3, bucket, paths.predictions_key)
                raise
        result.predictions_key, result.errors_key = paths.predictions_key, paths.errors_key
        result.multipart = predictions.multipart
    except Exception as exc:
        _raise_noted(s3, bucket, paths, job["file_id"], "assemble", exc, uri)
    if announce is not None:
        announce(bucket, key, result)
    remove_work(s3, bucket, job["work"])
    file_finished(s3, bucket, paths, result=result)
    if monitor is not None:  # the file, counted once (its rows were counted by its shards)
        monitor.finish(monitor.start(), paths.model, job["version"], failed=False, input_uri=uri)
    logger.info("batch file processed", extra={**result.summary(), "shards": len(shards),
                                               "copied_bytes": predictions.copied_bytes + errors.copied_bytes})
    return result.summary()


def fail_file(file: dict[str, Any], error: dict[str, Any] | None = None, *, s3: Any | None = None,
              monitor: BatchMonitor | None = None, announce: Announce | None = None) -> dict[str, Any]:
    """State Failed: the failure a step noted (the first by step order), or one made of the state machine's
    error; the report written, the work area removed. Returns the report."""
    s3 = s3 or aws.client("s3")
    bucket, key = file["bucket"], file["key"]
    paths = BatchPaths.from_input_key(key)
    work = work_prefix(paths, file["file_id"])
    noted = sorted(k for k in _list(s3, bucket, work + "failed-"))
    if noted:
        report = _read_json(s3, bucket, noted[0])
        failure = BatchFileError(report["error"], report["message"], report.get("details"), report.get("input"))
    else:  # a step that could not note its failure (a timeout, a Lambda or Step Functions error)
        name = str((error or {}).get("Error") or "States.Runtime")
        code = "timeout" if "Timeout" in name or "Timedout" in name else "internal_error"
        failure = BatchFileError(code, f"a step of the state machine failed ({name}); see its execution history",
                                 [{"reason": name}], f"s3://{bucket}/{key}")
    remove_work(s3, bucket, work)
    file_finished(s3, bucket, paths, failure=failure)
    if announce is not None:
        announce(bucket, key, failure)
    if monitor is not None:  # counted under source only: which version answered is not known here
        monitor.finish(monitor.start(), None, None, failed=True, input_uri=failure.input_uri or "")
    return failure.report()


def _raise_noted(s3: Any, bucket: str, paths: BatchPaths, fid: str, step: str, exc: Exception, uri: str) -> NoReturn:
    """Raise the step's failure as a BatchFileError, noted in the work area for fail_file (best effort)."""
    failure = as_file_error(exc, uri)
    order = {"plan": "0", "assemble": "2"}.get(step, "1")  # fail_file takes the first: plan, shards in order
    try:
        s3.put_object(Bucket=bucket, Key=f"{work_prefix(paths, fid)}failed-{order}-{step}.json",
                      Body=json.dumps(failure.report(), default=str).encode(), ContentType="application/json")
    except (ClientError, BotoCoreError):
        logger.warning("could not note a step's failure", extra={"input": uri, "step": step}, exc_info=True)
    if failure is exc:
        raise failure
    raise failure from exc


def _read_json(s3: Any, bucket: str, key: str) -> Any:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _list(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield obj["Key"]


def remove_work(s3: Any, bucket: str, prefix: str) -> None:
    """Best effort: delete an execution's work objects (the bucket's lifecycle rule sweeps what is left)."""
    try:
        keys = list(_list(s3, bucket, prefix))
        for i in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]],
                                                     "Quiet": True})
    except (ClientError, BotoCoreError):
        logger.warning("could not remove the work area", extra={"prefix": f"s3://{bucket}/{prefix}"}, exc_info=True)
