"""Prediction capture: a sample of predictions, sent to an SQS queue on the predict path.

The predict function does not wait on DynamoDB: it sends captured predictions to the capture queue
(`send_message_batch`, 10 messages per call) and the capture function writes them to the captures
table (maas_core.monitoring.store). A message carries up to 25 captures (one DynamoDB batch) and
stays under SQS's 256 KiB, so a 1000-record request costs a handful of SQS calls, not 100.

    message body: {"format": 1, "captures": [capture, ...]}
    capture:      {"id", "model", "version", "alias"?, "canary"?, "source"?, "time" (ISO 8601, UTC), "time_ms",
                   "latency_ms", "task", "features": {field: raw value}, "output": {"label", "probabilities"}
                   | {"value"}}

`source` is absent for the predict API and "batch" for batch files (maas_core.monitoring.batch), whose
`latency_ms` is the time of the chunk the row was predicted in and whose `time` is the input file's
upload time (its prediction ids carry it).

`features` is the raw record kept small: only the fields of the model's input schema, strings cut to
256 characters, anything that is not a scalar replaced by its type name, and fields the manifest marks
`sensitive` replaced by "***" (they get no drift statistics). A bare-string record of a text model is
stored under the text field's name. A text model's captures also carry, under features["_text"]
[field], {"tokens": n, "oov": k}: the number of tokens of the whole text (before the 256-character cut)
and how many of them the model's vocabulary does not know, computed with the model's own tokenizer.
Text drift is measured on these numbers (maas_core.monitoring.quality), so they are kept for a
sensitive text field too, whose text is masked. Their cost is one more tokenization per captured text
(measured: ~18 us for a 24-token text, vs ~1 us to summarise a record without it).

Sampling: MAAS_CAPTURE_RATE (0..1) of predictions, chosen by a hash of the prediction id, so the
choice is reproducible. MAAS_CAPTURE_QUEUE_URL unset (the default, e.g. a local run without a queue)
turns capture off.

Capture never fails a prediction: botocore retries SQS errors (a short client config, so a broken queue
costs the caller little); whatever still fails is counted (the CaptureFailures metric) and logged with
the count, never dropped silently. After one failed call the rest of the request's batches are not
attempted (counted as failed too): a queue that is down would otherwise cost each retry again.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from aws_lambda_powertools import Logger
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from maas_core import aws
from maas_core.ids import id_time_ms
from maas_core.manifest import Manifest
from maas_core.preprocess import TextFeature
from maas_core.preprocess import text as txt
from maas_core.schemas import PredictResponse

logger = Logger(child=True)

MESSAGE_FORMAT = 1
CAPTURES_PER_MESSAGE = 25  # one DynamoDB BatchWriteItem's worth
MESSAGES_PER_CALL = 10  # SendMessageBatch limit
MAX_MESSAGE_BYTES = 64_000  # well under SQS's 256 KiB per message ...
MAX_CALL_BYTES = 240_000  # ... and per SendMessageBatch call
MAX_STRING = 256
MAX_CAPTURE_BYTES = 8_000  # a capture bigger than this keeps its output but not its features
MASK = "***"
TEXT_STATS = "_text"  # features key of the per-text numbers text drift is measured on

# a failing queue must not hold a prediction for long: fewer, quicker retries than maas_core.aws
SQS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=1, read_timeout=3)


def sampled(prediction_id: str, rate: float) -> bool:
    """Whether a prediction is captured at `rate` (0..1): a stable hash of its id, not a coin flip."""
    if rate >= 1.0:
        return True
    if rate <= 0.0 or math.isnan(rate):
        return False
    digest = hashlib.blake2b(prediction_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < rate


def small_value(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value[:MAX_STRING]
    return f"<{type(value).__name__}>"


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
    schema = manifest.input_schema
    if isinstance(record, str):  # a text model's bare string: the text field
        text_field = next((f for f in schema if f.type == "string"), None)
        record = {text.name if text else text_field.name if text_field else "text": record}
    if not isinstance(record, Mapping):
        return {}
    out: dict[str, Any] = {}
    for f in schema:
        if f.name in record:
            out[f.name] = MASK if f.sensitive and record[f.name] is not None else small_value(record[f.name])
    if text is not None:
        stats = text_stats(record.get(text.name), text)
        if stats is not None:
            out[TEXT_STATS] = {text.name: stats}
    return out


def build_captures(response: PredictResponse, records: Sequence[Any], manifest: Manifest, latency_ms: float,
                   rate: float, text: TextFeature | None = None) -> list[dict[str, Any]]:
    """The captures of one answered request (the sampled share of its predictions)."""
    captures: list[dict[str, Any]] = []
    for prediction, record in zip(response.predictions, records):
        if not sampled(prediction.id, rate):
            continue
        output: dict[str, Any] = ({"value": prediction.value} if manifest.task == "regression"
                                  else {"label": prediction.label, "probabilities": prediction.probabilities})
        capture = make_capture(prediction.id, output, record, model=response.model, version=response.version,
                               manifest=manifest, latency_ms=latency_ms, text=text, alias=response.alias,
                               canary=response.canary)
        if capture is not None:
            captures.append(capture)
    return captures


def make_capture(prediction_id: str, output: dict[str, Any], record: Any, *, model: str, version: str,
                 manifest: Manifest, latency_ms: float, text: TextFeature | None = None, alias: str | None = None,
                 canary: bool = False, source: str | None = None) -> dict[str, Any] | None:
    """One capture (see the module docstring); None for an id that is not ours (nothing could find it)."""
    try:
        time_ms = id_time_ms(prediction_id)
    except ValueError:
        return None
    capture: dict[str, Any] = {
        "id": prediction_id, "model": model, "version": version,
        "time": datetime.fromtimestamp(time_ms / 1000, timezone.utc).isoformat(timespec="milliseconds"),
        "time_ms": time_ms, "latency_ms": round(float(latency_ms), 3), "task": manifest.task,
        "features": features_summary(record, manifest, text), "output": output,
    }
    if alias:
        capture["alias"] = alias
    if canary:
        capture["canary"] = True
    if source:
        capture["source"] = source
    if len(json.dumps(capture, default=str)) > MAX_CAPTURE_BYTES:
        kept = {TEXT_STATS: capture["features"][TEXT_STATS]} if TEXT_STATS in capture["features"] else {}
        capture["features"] = {"_omitted": "record too large to capture", **kept}
    return capture


def message_bodies(captures: Sequence[dict[str, Any]]) -> Iterator[tuple[str, int]]:
    """Captures packed into SQS message bodies (<= CAPTURES_PER_MESSAGE each, <= MAX_MESSAGE_BYTES):
    (body, how many captures it holds)."""
    chunk: list[str] = []
    size = 0
    for capture in captures:
        text = json.dumps(capture, separators=(",", ":"), default=str)
        if chunk and (len(chunk) == CAPTURES_PER_MESSAGE or size + len(text) + 64 > MAX_MESSAGE_BYTES):
            yield _body(chunk), len(chunk)
            chunk, size = [], 0
        chunk.append(text)
        size += len(text) + 1
    if chunk:
        yield _body(chunk), len(chunk)


def _body(chunk: list[str]) -> str:
    return f'{{"format":{MESSAGE_FORMAT},"captures":[{",".join(chunk)}]}}'


def batches(bodies: Sequence[tuple[str, int]]) -> Iterator[list[tuple[str, int]]]:
    """Message bodies grouped for SendMessageBatch (<= 10 messages, <= MAX_CALL_BYTES per call)."""
    batch: list[tuple[str, int]] = []
    size = 0
    for body, count in bodies:
        if batch and (len(batch) == MESSAGES_PER_CALL or size + len(body) > MAX_CALL_BYTES):
            yield batch
            batch, size = [], 0
        batch.append((body, count))
        size += len(body)
    if batch:
        yield batch


@dataclass
class CaptureResult:
    sent: int = 0
    failed: int = 0


class CaptureSender:
    """Sends captures to the capture queue. `send` never raises."""

    def __init__(self, queue_url: str, sqs: Any | None = None) -> None:
        self.queue_url = queue_url
        self._sqs = sqs

    @property
    def sqs(self) -> Any:
        if self._sqs is None:
            self._sqs = aws.new_client("sqs", SQS_CONFIG)  # the process's session: cheaper on a cold start
        return self._sqs

    def send(self, captures: Sequence[dict[str, Any]]) -> CaptureResult:
        result = CaptureResult()
        if not captures:
            return result
        broken: str | None = None
        for batch in batches(list(message_bodies(captures))):
            n = [count for _, count in batch]
            if broken is not None:
                result.failed += sum(n)
                continue
            try:
                resp = self.sqs.send_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(i), "MessageBody": body} for i, (body, _) in enumerate(batch)])
            except (ClientError, BotoCoreError) as exc:
                broken = type(exc).__name__ if isinstance(exc, BotoCoreError) else str(exc.response.get("Error", {}).get("Code"))
                result.failed += sum(n)
                continue
            except Exception as exc:  # capture never fails a prediction
                broken = type(exc).__name__
                result.failed += sum(n)
                continue
            failed_ids = {f.get("Id") for f in resp.get("Failed") or []}
            for i, count in enumerate(n):
                if str(i) in failed_ids:
                    result.failed += count
                else:
                    result.sent += count
            if failed_ids:  # entry-level failures: the other batches are still worth trying
                logger.warning("the capture queue refused some messages",
                               extra={"failed_entries": [{"id": f.get("Id"), "code": f.get("Code")}
                                                         for f in resp.get("Failed") or []][:10]})
        if result.failed:
            logger.error("captured predictions could not be queued",
                         extra={"capture_failures": result.failed, "captured": result.sent, "reason": broken})
        return result
