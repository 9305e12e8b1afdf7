"""Metrics and capture of batch predictions (maas_core.batch.job), with the predict path's code.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

from maas_core.monitoring.capture import capture_maker, sampled
from maas_core.monitoring.emf import dimension_value, emit, model_dimension_sets, write
from maas_core.monitoring.metrics import PredictMonitor, label_documents

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

    def chunk(self, o: FileObservation, *, model: str, version: str, loaded: Any, lines: Sequence[Mapping[str, Any]],
              records: Sequence[Any], rejected: int, latency_ms: float, alias: str | None = None,
              canary: bool = False) -> None:
        """Count one chunk (`lines`: its prediction lines, `records`: their raw rows, in the same order)
        and capture a sample of it. Never raises."""
        try:
            o.records += len(lines)
            o.rejected += rejected
            o.chunk_ms.append(round(float(latency_ms), 3))
            o.labels.update(str(line["label"]) for line in lines if line.get("label") is not None)
        except Exception:
            logger.warning("could not count a batch chunk", exc_info=True)
        if not self.capturing or not lines:
            return
        sent = failed = 0
        try:
            make = capture_maker(loaded.manifest, model=model, version=version, latency_ms=latency_ms,
                                 text=loaded.spec.text_feature, alias=alias, canary=canary, source=SOURCE)
            captures = []
            for line, record in zip(lines, records):
                if not sampled(str(line["id"]), self.capture_rate):
                    continue
                output = ({"value": line["value"]} if "value" in line
                          else {"label": line.get("label"), "probabilities": line.get("probabilities")})
                capture = make(str(line["id"]), output, record)
                if capture is not None:
                    captures.append(capture)
            result = self.sender.send(captures)  # never raises
            sent, failed = result.sent, result.failed
        except Exception:  # capture never fails a batch file: count what was not queued
            failed = sum(1 for line in lines if sampled(str(line.get("id")), self.capture_rate)) - sent
            logger.exception("batch capture failed", extra={"model": model, "version": version,
                                                            "capture_failures": failed})
        o.captured += sent
        o.capture_failures += max(failed, 0)

    def finish(self, o: FileObservation, model: str | None, version: str | None, *, failed: bool,
               input_uri: str = "") -> None:
        """Emit the file's metrics (see the module docstring). Never raises."""
        try:
            resolved = model is not None and version is not None
            sets: list[dict[str, str]] = [dict(BATCH_DIMENSIONS)]
            if resolved:
                sets = [{"model": dimension_value(model), "version": dimension_value(version)},
                        {"model": dimension_value(model)}, dict(BATCH_DIMENSIONS)]
            latencies = o.chunk_ms or []
            metrics: dict[str, tuple[str, Any]] = {
                "RequestCount": ("Count", 1), "RecordCount": ("Count", o.records),
                "RejectedRecords": ("Count", o.rejected), "FailedFiles": ("Count", 1 if failed else 0),
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


