"""Prediction capture: a sample of predictions, written as structured log lines off the request path.

The predict and batch functions make no network call to capture: each request's captures are written to
stdout as one JSON line (a few for a big request), which Lambda ships to CloudWatch Logs asynchronously,
off the request's clock. A CloudWatch Logs subscription filter on the function's log group selects the
lines by their marker (`{ $.maas_capture = 1 }`) and invokes the capture function with them (an awslogs
event: gzip + base64, `maas_core.edge.awslogs`), which writes them to the captures table
(maas_core.monitoring.store).

    log line:  {"maas_capture": 1, "format": 1, "captures": [capture, ...]}
    capture:   {"id", "model", "version", "alias"?, "canary"?, "source"?, "time" (ISO 8601, UTC), "time_ms",
                "latency_ms", "task", "features": {field: raw value}, "output": {"label", "probabilities"}
                | {"value"}}

A line stays under MAX_LINE_BYTES (64 kB; a CloudWatch Logs event is at most 256 KB, and Lambda cuts a
longer line, which would no longer be JSON the filter selects): a 1000-record request is a handful of
lines, written together in one write. Why a plain write of pre-serialised JSON rather than Powertools'
Logger: one write per request, no logging formatter or handler lock on the request path, and no log
level can drop a capture (POWERTOOLS_LOG_LEVEL=WARNING would otherwise lose every one silently).

`source` is absent for the predict API and "batch" for batch files (maas_core.monitoring.batch), whose
`latency_ms` is the time of the chunk the row was predicted in and whose `time` is the input file's
upload time (its prediction ids carry it).

`features` is the raw record kept small: only the fields of the model's input schema, strings cut to
256 characters, anything that is not a scalar replaced by its type name, and fields the manifest marks
`sensitive` replaced by "***" (they get no drift statistics, and their values never reach a log line).
A bare-string record of a text model is stored under the text field's name. A text model's captures
also carry, under features["_text"][field], {"tokens": n, "oov": k}: the number of tokens of the whole
text (before the 256-character cut) and how many of them the model's vocabulary does not know, computed
with the model's own tokenizer. Text drift is measured on these numbers (maas_core.monitoring.quality),
so they are kept for a sensitive text field too, whose text is masked. Their cost is one more
tokenization per captured text (measured: ~18 us for a 24-token text, vs ~1 us to summarise a record
without it).

A record sent as the model's own input tensor (the Open Inference Protocol's request naming the ONNX input:
maas_core.feature_rows) has no raw fields: its capture says so, `"features": {"_vector": [v, ...]}`, the row
of the feature matrix as the model saw it (small values, as above; the whole row "***" when the manifest marks
any field sensitive, as its encoding would show it). Drift is measured on raw fields only, so such captures
are left out of it and counted (maas_core.monitoring.quality: `feature_vectors`); latency, outputs and
feedback quality take them as any other.

Sampling: MAAS_CAPTURE_RATE (0..1) of predictions, chosen by a hash of the prediction id, so the
choice is reproducible; 0 turns capture off.

Capture never fails a prediction, and a capture that cannot be written is counted (the CaptureFailures
metric) and logged with the count, never dropped silently: one that cannot be serialised as JSON (a
non-finite number), one too large for a log line, or a write to stdout that fails. A line the capture
function cannot store fails its invocation, which Lambda retries and then sends to the capture
dead-letter queue (the template's alarm watches it); the lines also stay in the log group.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from pydantic_core import to_json

from maas_core.ids import id_time_ms
from maas_core.manifest import Manifest
from maas_core.preprocess import text as txt
from maas_core.schemas import PredictResponse

if TYPE_CHECKING:  # its fitted vocabulary is read, never built here (features.py imports numpy)
    from maas_core.preprocess import TextFeature

logger = Logger(child=True)

MARKER = "maas_capture"  # the field the subscription filter selects on: { $.maas_capture = 1 }
LINE_FORMAT = 1
MAX_LINE_BYTES = 64_000  # well under CloudWatch Logs' 256 KB per event
_LINE_HEAD = f'{{"{MARKER}":1,"format":{LINE_FORMAT},"captures":['
MAX_STRING = 256
MAX_CAPTURE_BYTES = 8_000  # a capture bigger than this (UTF-8 JSON) keeps its output but not its features
MASK = "***"
TEXT_STATS = "_text"  # features key of the per-text numbers text drift is measured on
FEATURE_VECTOR = "_vector"  # features key of a record sent as the model's input row (maas_core.feature_rows)


def sampled(prediction_id: str, rate: float) -> bool:
    """Whether a prediction is captured at `rate` (0..1): a stable hash of its id, not a coin flip."""
    if rate >= 1.0:
        return True
    if rate <= 0.0 or math.isnan(rate):
        return False
    digest = hashlib.blake2b(prediction_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < rate


def small_value(value: Any) -> Any:
    kind = type(value)  # exact types first: this runs for every field of every captured record
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is str:
        return value[:MAX_STRING]
    if value is None or kind is bool:
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else float(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return str(value)[:MAX_STRING]
    return f"<{kind.__name__}>"


def text_stats(value: Any, text: TextFeature) -> dict[str, int] | None:
    """{"tokens": n, "oov": k} of one text, tokenized exactly as the model's spec does; None for a non-string."""
    if not isinstance(value, str):
        return None
    tokens = txt.tokenize(value, text.lowercase, text.strip_punctuation)
    # word -> id, built once when the spec was loaded; read from pydantic's private dict directly, since
    # `text._ids` goes through BaseModel.__getattr__ (~10 us a call on the predict path)
    known = (text.__pydantic_private__ or {}).get("_ids") or text._ids
    return {"tokens": len(tokens), "oov": len(tokens) - sum(map(known.__contains__, tokens))}


def features_summary(record: Any, manifest: Manifest, text: TextFeature | None = None) -> dict[str, Any]:
    """The raw record as captured: schema fields only, small values, sensitive fields masked; plus the
    text numbers of a text model (`text`: its spec's text feature)."""
    return _summary(record, _schema_fields(manifest, text), text)


def _schema_fields(manifest: Manifest, text: TextFeature | None) -> tuple[list[tuple[str, bool]], str]:
    """(name, sensitive) of each input field, and the field a bare-string record is stored under."""
    schema = manifest.input_schema
    text_field = next((f.name for f in schema if f.type == "string"), "text")
    return [(f.name, bool(f.sensitive)) for f in schema], text.name if text else text_field


def _summary(record: Any, fields: tuple[list[tuple[str, bool]], str], text: TextFeature | None) -> dict[str, Any]:
    schema, bare = fields
    if isinstance(record, str):  # a text model's bare string: the text field
        record = {bare: record}
    if isinstance(record, list):  # a row of FeatureRows: the model's input, not fields
        masked = any(sensitive for _, sensitive in schema)
        return {FEATURE_VECTOR: MASK if masked else [small_value(v) for v in record]}
    if not isinstance(record, Mapping):
        return {}
    out: dict[str, Any] = {}
    for name, sensitive in schema:
        if name in record:
            value = record[name]
            out[name] = MASK if sensitive and value is not None else small_value(value)
    if text is not None:
        stats = text_stats(record.get(text.name), text)
        if stats is not None:
            out[TEXT_STATS] = {text.name: stats}
    return out


Maker = Callable[[str, dict[str, Any], Any], "dict[str, Any] | None"]


def capture_maker(manifest: Manifest, *, model: str, version: str, latency_ms: float,
                  text: TextFeature | None = None, alias: str | None = None, canary: bool = False,
                  source: str | None = None) -> Maker:
    """make(prediction_id, output, record) -> one capture (see the module docstring), or None for an id
    that is not ours (nothing could find it). What the captures of one request or chunk share is worked
    out once, not per record."""
    common: dict[str, Any] = {"model": model, "version": version, "latency_ms": round(float(latency_ms), 3),
                              "task": manifest.task}
    if alias:
        common["alias"] = alias
    if canary:
        common["canary"] = True
    if source:
        common["source"] = source
    fields = _schema_fields(manifest, text)

    def make(prediction_id: str, output: dict[str, Any], record: Any) -> dict[str, Any] | None:
        try:
            time_ms = id_time_ms(prediction_id)
        except ValueError:
            return None
        return {"id": prediction_id, **common, "time": _iso_time(time_ms), "time_ms": time_ms,
                "features": _summary(record, fields, text), "output": output}

    return make


def build_captures(response: PredictResponse, records: Sequence[Any], manifest: Manifest, latency_ms: float,
                   rate: float, text: TextFeature | None = None) -> list[dict[str, Any]]:
    """The captures of one answered request (the sampled share of its predictions)."""
    make = capture_maker(manifest, model=response.model, version=response.version, latency_ms=latency_ms,
                         text=text, alias=response.alias, canary=bool(response.canary))
    regression = manifest.task == "regression"
    captures: list[dict[str, Any]] = []
    for prediction, record in zip(response.predictions, records, strict=True):
        if rate < 1.0 and not sampled(prediction.id, rate):
            continue
        output: dict[str, Any] = ({"value": prediction.value} if regression
                                  else {"label": prediction.label, "probabilities": prediction.probabilities})
        capture = make(prediction.id, output, record)
        if capture is not None:
            captures.append(capture)
    return captures


@lru_cache(maxsize=64)
def _iso_time(time_ms: int) -> str:
    # the predictions of one request share their id's time: formatted once, not per record
    return datetime.fromtimestamp(time_ms / 1000, UTC).isoformat(timespec="milliseconds")


def capture_json(capture: dict[str, Any]) -> bytes | None:
    """One capture as compact JSON (UTF-8); a capture over MAX_CAPTURE_BYTES keeps its output but not its
    features (its text numbers are kept). None if it holds a non-finite number: not valid JSON, so the
    subscription's filter would never select its line."""
    data = _json(capture)
    if data is not None and len(data) > MAX_CAPTURE_BYTES:
        features = capture.get("features") or {}
        kept = {TEXT_STATS: features[TEXT_STATS]} if TEXT_STATS in features else {}
        capture["features"] = {"_omitted": "record too large to capture", **kept}
        data = _json(capture)
    return data


def _json(value: Any) -> bytes | None:
    # pydantic-core's serializer (~10 us a capture, vs ~35 us for json.dumps); it writes a non-finite float as
    # NaN / Infinity, so text holding those letters (maybe only inside a string) goes through the strict one
    data = to_json(value, fallback=str)
    if b"NaN" not in data and b"Infinity" not in data:
        return data
    try:
        return json.dumps(value, separators=(",", ":"), default=str, allow_nan=False, ensure_ascii=False).encode()
    except ValueError:
        return None


def capture_lines(captures: Sequence[dict[str, Any]]) -> tuple[list[str], int]:
    """Captures packed into log lines of at most MAX_LINE_BYTES (UTF-8): (lines, how many captures they hold).
    A capture that is not valid JSON (NaN, infinity) or is too large for a line on its own is left out:
    the caller counts it as failed. One serialisation per capture."""
    lines: list[str] = []
    chunk: list[bytes] = []
    size = held = 0
    room = MAX_LINE_BYTES - len(_LINE_HEAD) - 2
    for capture in captures:
        data: bytes | None = to_json(capture, fallback=str)  # the common case inline: ~1 us less a capture
        if data is not None and (b"NaN" in data or b"Infinity" in data or len(data) > MAX_CAPTURE_BYTES):
            data = capture_json(capture)
        if data is None or len(data) > room:
            continue
        if chunk and size + len(data) + 1 > room:
            lines.append(_line(chunk))
            chunk, size = [], 0
        chunk.append(data)
        size += len(data) + 1
        held += 1
    if chunk:
        lines.append(_line(chunk))
    return lines, held


def _line(chunk: list[bytes]) -> str:
    return f"{_LINE_HEAD}{b','.join(chunk).decode()}]}}"


def write_stdout(text: str) -> None:
    """The request's capture lines in one write to stdout, which Lambda ships to CloudWatch Logs."""
    sys.stdout.write(text)
    sys.stdout.flush()


LineWriter = Callable[[str], Any]
_writer: LineWriter = write_stdout


def redirect(writer: LineWriter | None) -> LineWriter:
    """Send capture lines to `writer` instead of stdout (None: back to stdout); returns the previous writer.
    For the local stack, which has no log subscription (maas_local.log_subscription)."""
    global _writer
    previous, _writer = _writer, writer or write_stdout
    return previous


@dataclass
class CaptureResult:
    sent: int = 0
    failed: int = 0


class CaptureWriter:
    """Writes captures as log lines (see the module docstring). `send` never raises."""

    def send(self, captures: Sequence[dict[str, Any]]) -> CaptureResult:
        if not captures:
            return CaptureResult()
        try:
            lines, held = capture_lines(captures)
        except Exception:  # capture never fails a prediction
            lines, held = [], 0
            logger.exception("captures could not be serialised")
        result = CaptureResult(held, len(captures) - held)
        if lines:
            try:
                _writer("\n".join(lines) + "\n")
            except Exception:  # stdout closed, a broken pipe: nothing was written
                logger.exception("capture lines could not be written")
                result = CaptureResult(0, len(captures))
        if result.failed:
            logger.error("captured predictions could not be written",
                         extra={"capture_failures": result.failed, "captured": result.sent})
        return result
