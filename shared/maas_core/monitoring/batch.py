"""Metrics and capture of batch predictions (maas_core.batch.job), with the predict path's code.

The job hands the monitor each chunk it predicted, whole (maas_core.outcome.ChunkOutcome: its route, rows,
records and their predictions), then the file's end (`finish`).

Per input file, once its model version is resolved, one EMF blob (maas_core.monitoring.emf) with
dimension sets [model, version], [model] and [source="batch"]:

    RequestCount     Count         1 per file (a request is a file here)
    RecordCount      Count         rows predicted
    RejectedRecords  Count         rows rejected (each one is in the file's errors file)
    FailedFiles      Count         1 if the file could not be finished (its failure report says why), else 0
    Latency          Milliseconds  one value per chunk (up to MAAS batch chunk_rows rows, 5000 by default):
                                   read, preprocess, predict and write that chunk. Per chunk rather than per
                                   file so a dashboard's p99 compares with a predict request of many records,
                                   not with a file's total run time

The label mix is counted as for predict: PredictedLabel per [model, version, label]. Captured and
CaptureFailures go in their own blob under [model, version], [model], [service], so the template's
CaptureFailures alarm (which watches [service]) covers batch captures too. The file blob has
[source="batch"] instead of [service] on purpose: the API's alarms (5xx rate, p99 latency) watch
[service], and neither a rejected CSV row nor a 5000-row chunk is a caller waiting on an answer.

A file whose version never resolved (unknown model, bad metadata) is counted under [source] only:
a dimension value is never a name an uploader made up. A re-delivered event that is skipped (the
outputs already exist) emits nothing: the file was counted when it was processed.

Capture: rows are sampled at MAAS_CAPTURE_RATE by prediction id and written as log lines by the same
CaptureWriter as predict, one write per chunk, with `"source": "batch"` (maas_core.monitoring.capture):
no network call per row, so a 2M-row file costs its log lines, not 200k SQS calls. Capturing never fails
a file: whatever cannot be written, or raises, is counted in CaptureFailures and logged.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from maas_core.monitoring.capture import capture_maker, sampled
from maas_core.monitoring.emf import dimension_value, emit, model_dimension_sets, write
from maas_core.monitoring.metrics import PredictMonitor, label_documents

if TYPE_CHECKING:
    from maas_core.outcome import ChunkOutcome

logger = Logger(child=True)

SOURCE = "batch"
BATCH_DIMENSIONS = {"source": SOURCE}


@dataclass
class FileObservation:
    """What one batch file did, filled in chunk by chunk."""

    started: float = field(default_factory=time.perf_counter)
    records: int = 0
    rejected: int = 0
    chunk_ms: list[float] = field(default_factory=list)
    labels: Counter[str] = field(default_factory=Counter)
    captured: int = 0
    capture_failures: int = 0


class BatchMonitor(PredictMonitor):
    """PredictMonitor's capture setting (MAAS_CAPTURE_RATE) applied to batch files."""

    def start(self) -> FileObservation:
        return FileObservation()

    def chunk(self, o: FileObservation, chunk: ChunkOutcome) -> None:
        """Count one chunk and capture a sample of its rows. Never raises."""
        try:
            o.records += len(chunk.rows)
            o.rejected += chunk.rejected
            o.chunk_ms.append(round(float(chunk.latency_ms), 3))
            predictions = chunk.predictions
            if not predictions.regression:
                for best, n in Counter(predictions.best).items():  # in order of first appearance, as the API's
                    o.labels[predictions.labels[best]] += n
        except Exception:
            logger.warning("could not count a batch chunk", exc_info=True)
        if not self.capturing or not chunk.rows:
            return
        route = chunk.route
        ids = chunk.prediction_ids()
        sent = failed = 0
        try:
            make = capture_maker(chunk.manifest, model=route.model, version=route.version, latency_ms=chunk.latency_ms,
                                 text=chunk.spec.text_feature, alias=route.alias, canary=route.canary, source=SOURCE)
            captures = []
            for prediction_id, output, record in zip(ids, chunk.predictions.outputs(), chunk.records, strict=True):
                if not sampled(prediction_id, self.capture_rate):
                    continue
                capture = make(prediction_id, output, record)
                if capture is not None:
                    captures.append(capture)
            result = self.sender.send(captures)  # never raises
            sent, failed = result.sent, result.failed
        except Exception:  # capture never fails a batch file: count what was not queued
            failed = sum(1 for prediction_id in ids if sampled(prediction_id, self.capture_rate)) - sent
            logger.exception("batch capture failed", extra={"model": route.model, "version": route.version,
                                                            "capture_failures": failed})
        o.captured += sent
        o.capture_failures += max(failed, 0)

    def finish(self, o: FileObservation, model: str | None, version: str | None, *, failed: bool,
               input_uri: str = "", requests: int = 1) -> None:
        """Emit the file's metrics (see the module docstring). Never raises. A shard of a large file
        (maas_core.batch.distributed) emits its rows with `requests=0`; its file's last step the 1."""
        try:
            resolved = model is not None and version is not None
            sets: list[dict[str, str]] = [dict(BATCH_DIMENSIONS)]
            if resolved:
                sets = [{"model": dimension_value(model), "version": dimension_value(version)},
                        {"model": dimension_value(model)}, dict(BATCH_DIMENSIONS)]
            latencies = o.chunk_ms or []
            metrics: dict[str, tuple[str, Any]] = {
                "RequestCount": ("Count", requests), "RecordCount": ("Count", o.records),
                "RejectedRecords": ("Count", o.rejected), "FailedFiles": ("Count", requests if failed else 0),
            }
            if latencies:  # emf.document splits more than EMF's 100 values a metric over several documents
                metrics["Latency"] = ("Milliseconds", latencies)
            emit(metrics, sets, metadata={"input": input_uri, "failed": failed,
                                          "file_ms": round((time.perf_counter() - o.started) * 1000, 3)})
            if resolved and (self.capturing or o.capture_failures):
                emit({"Captured": ("Count", o.captured), "CaptureFailures": ("Count", o.capture_failures)},
                     model_dimension_sets(model, version), metadata={"source": SOURCE})
            if resolved and o.labels:
                write(label_documents(model, version, o.labels))  # type: ignore[arg-type]
        except Exception:  # metrics never fail the file
            logger.warning("could not emit batch metrics", exc_info=True)


