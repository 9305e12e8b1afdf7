"""The captures table (DynamoDB): captured predictions, and the ground truth fed back for them.

Key design (one item per captured prediction):

    pk = "{model}#{shard}"   shard = crc32(prediction id) % 4: a model's writes spread over 4
                              partitions (ids are time-ordered, so without it every write of a busy
                              model would land on the same end of one partition)
    sk = prediction id        time-ordered (maas_core.ids): a time window is a key range per shard,
                              and feedback, which only knows the id, finds the item by key

    attributes: model, version, time_ms, latency_ms, task, label (classifiers), data (JSON: features,
    output, alias, canary, source: "batch" for batch files), truth (JSON: {"label"} or {"value"}, once fed back),
    feedback_at,
    expires_at (TTL, epoch seconds: MAAS_CAPTURE_TTL_DAYS after the prediction)

Raw values and outputs are stored as JSON strings: a record may hold numbers DynamoDB's Number type
cannot (1e300), and nothing queries inside them.

Writes are idempotent: a capture is put only if absent (Lambda retries a failed invocation of the capture
function, a dead-lettered event may be redriven, and a re-put must not erase feedback), and feedback is set only
where none is.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from maas_core import aws
from maas_core.ids import PREDICTION_ID, time_prefix
from maas_core.registry import NAME_PATTERN

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SHARDS = 4
_GET_BATCH = 100  # BatchGetItem limit


def shard_key(model: str, prediction_id: str) -> str:
    return f"{model}#{zlib.crc32(prediction_id.encode()) % SHARDS}"


class InvalidCapture(ValueError):
    """A capture line that is not one this code wrote: its invocation fails, ending in the dead-letter queue."""


def _number(value: float) -> dict[str, str]:
    return {"N": str(Decimal(repr(float(value))))}


def check_capture(capture: Any) -> dict[str, Any]:
    if not isinstance(capture, dict):
        raise InvalidCapture(f"a capture must be an object, got {type(capture).__name__}")
    missing = [k for k in ("id", "model", "version", "time_ms", "task", "output") if k not in capture]
    if missing:
        raise InvalidCapture(f"capture lacks {', '.join(missing)}")
    if not isinstance(capture["id"], str) or not PREDICTION_ID.match(capture["id"]):
        raise InvalidCapture(f"capture id {capture['id']!r} is not a prediction id")
    for key in ("model", "version"):
        if not isinstance(capture[key], str) or not NAME_PATTERN.match(capture[key]):
            raise InvalidCapture(f"capture {key} {capture[key]!r} is not a valid name")
    if not isinstance(capture["output"], dict):
        raise InvalidCapture("capture output must be an object")
    latency = capture.get("latency_ms", 0.0)
    if not isinstance(latency, (int, float)) or not math.isfinite(latency):
        raise InvalidCapture(f"capture latency_ms {latency!r} is not a number")
    return capture


@dataclass(frozen=True)
class StoredCapture:
    """A capture as read back for metrics."""

    id: str
    model: str
    version: str
    time_ms: int
    latency_ms: float
    task: str
    output: dict[str, Any]
    features: dict[str, Any]
    truth: dict[str, Any] | None = None
    source: str = "api"  # "batch": a row of a batch file

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> StoredCapture:
        data = json.loads(item["data"]["S"]) if "data" in item else {}
        truth = json.loads(item["truth"]["S"]) if "truth" in item else None
        return cls(id=item["sk"]["S"], model=item["model"]["S"], version=item["version"]["S"],
                   time_ms=int(item["time_ms"]["N"]), latency_ms=float(item.get("latency_ms", {"N": "0"})["N"]),
                   task=item.get("task", {"S": ""})["S"], output=data.get("output") or {},
                   features=data.get("features") or {}, truth=truth, source=str(data.get("source") or "api"))


class CaptureStore:
    def __init__(self, table: str, ttl_days: int = 30, dynamodb: Any | None = None) -> None:
        self.table = table
        self.ttl_days = ttl_days
        self._ddb = dynamodb

    @property
    def ddb(self) -> DynamoDBClient:
        return self._ddb or aws.client("dynamodb")

    # --- writes: the capture function ----------------------------------------------------------

    def item(self, capture: Mapping[str, Any]) -> dict[str, Any]:
        c = check_capture(dict(capture))
        data = {k: c[k] for k in ("features", "output", "alias", "canary", "source") if k in c}
        item: dict[str, Any] = {
            "pk": {"S": shard_key(c["model"], c["id"])}, "sk": {"S": c["id"]},
            "model": {"S": c["model"]}, "version": {"S": c["version"]},
            "time_ms": {"N": str(int(c["time_ms"]))}, "latency_ms": _number(round(float(c.get("latency_ms", 0.0)), 3)),
            "task": {"S": str(c["task"])}, "data": {"S": json.dumps(data, separators=(",", ":"), default=str)},
            "expires_at": {"N": str(int(c["time_ms"]) // 1000 + self.ttl_days * 86400)},
        }
        label = c["output"].get("label")
        if isinstance(label, str):
            item["label"] = {"S": label}
        return item

    def put_capture(self, capture: Mapping[str, Any]) -> bool:
        """Write one capture; False if it was already there (a retried event). Raises on failure
        (after botocore's retries) so the event is retried and, in the end, dead-lettered."""
        try:
            self.ddb.put_item(TableName=self.table, Item=self.item(capture),
                              ConditionExpression="attribute_not_exists(pk)")
            return True
        except ClientError as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise

    def write_message(self, body: Any) -> tuple[int, int]:
        """One capture line ({"captures": [...]}, maas_core.monitoring.capture) -> (written, already there).
        Raises if it is not a capture line, or if a write fails: the event then fails, it is not lost."""
        try:
            message = json.loads(body) if isinstance(body, (str, bytes)) else body
        except ValueError as exc:
            raise InvalidCapture(f"capture line is not JSON: {exc}") from exc
        if not isinstance(message, dict) or not isinstance(message.get("captures"), list):
            raise InvalidCapture("capture line has no captures list")
        captures = [check_capture(c) for c in message["captures"]]  # validate all before writing any
        written = duplicates = 0
        for capture in captures:
            if self.put_capture(capture):
                written += 1
            else:
                duplicates += 1
        return written, duplicates

    # --- reads: the metrics function -----------------------------------------------------------

    def query(self, model: str, start_ms: int, end_ms: int,
              limit: int | None = None) -> tuple[list[StoredCapture], bool]:
        """Captures of `model` made in [start_ms, end_ms), oldest first, at most `limit` (newest kept);
        returns (captures, truncated)."""
        low, high = time_prefix(start_ms), time_prefix(max(end_ms - 1, start_ms)) + "~"  # '~' sorts after '-', digits
        found: list[StoredCapture] = []
        truncated = False
        for shard in range(SHARDS):
            items, more = self._query_shard(f"{model}#{shard}", low, high, limit)
            truncated = truncated or more
            for item in items:
                capture = StoredCapture.from_item(item)
                if start_ms <= capture.time_ms < end_ms:
                    found.append(capture)
        found.sort(key=lambda c: c.id)
        if limit is not None and len(found) > limit:
            found, truncated = found[-limit:], True
        return found, truncated

    def _query_shard(self, pk: str, low: str, high: str, limit: int | None) -> tuple[list[dict[str, Any]], bool]:
        """(items newest first, at most `limit`; whether more were left unread)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table, "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":low": {"S": low}, ":high": {"S": high}},
            "ScanIndexForward": False,  # newest first: a limit keeps the most recent captures
        }
        items: list[dict[str, Any]] = []
        while True:
            if limit is not None:
                kwargs["Limit"] = limit - len(items) + 1  # one more than needed: tells whether more exist
            resp = self._call(self.ddb.query, **kwargs)
            items.extend(resp.get("Items", []))
            if limit is not None and len(items) > limit:
                return items[:limit], True
            if "LastEvaluatedKey" not in resp:
                return items, False
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def get_many(self, model: str, prediction_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Raw items by prediction id (ids of other models, or never captured, are absent)."""
        keys = {i: {"pk": {"S": shard_key(model, i)}, "sk": {"S": i}} for i in dict.fromkeys(prediction_ids)}
        found: dict[str, dict[str, Any]] = {}
        pending = list(keys.values())
        while pending:
            chunk, pending = pending[:_GET_BATCH], pending[_GET_BATCH:]
            request = {self.table: {"Keys": chunk, "ConsistentRead": True}}
            for _ in range(5):
                resp = self._call(self.ddb.batch_get_item, RequestItems=request)
                for item in resp.get("Responses", {}).get(self.table, []):
                    if item.get("model", {}).get("S") == model:
                        found[item["sk"]["S"]] = item
                request = resp.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise aws.unavailable("the captures table", RuntimeError("unprocessed keys after retries"))
        return found

    def set_truth(self, model: str, prediction_id: str, truth: Mapping[str, Any],
                  now_iso: str) -> dict[str, Any] | None:
        """Record ground truth unless some is recorded already. None if recorded; else the item as it is
        ({} if it does not exist)."""
        try:
            self._call(self.ddb.update_item, TableName=self.table,
                       Key={"pk": {"S": shard_key(model, prediction_id)}, "sk": {"S": prediction_id}},
                       UpdateExpression="SET truth = :truth, feedback_at = :now",
                       ConditionExpression="attribute_exists(pk) AND attribute_not_exists(truth)",
                       ExpressionAttributeValues={":truth": {"S": json.dumps(dict(truth), separators=(",", ":"))},
                                                  ":now": {"S": now_iso}},
                       ReturnValuesOnConditionCheckFailure="ALL_OLD", raise_conditional=True)
            return None
        except ClientError as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                item: dict[str, Any] = exc.response.get("Item") or {}  # type: ignore[assignment]  # ALL_OLD
                return item
            raise

    def _call(self, fn: Any, raise_conditional: bool = False, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except ClientError as exc:
            if raise_conditional and aws.error_code(exc) == "ConditionalCheckFailedException":
                raise
            raise aws.unavailable("the captures table", exc) from exc
        except BotoCoreError as exc:
            raise aws.unavailable("the captures table", exc) from exc


def truth_of(item: Mapping[str, Any]) -> dict[str, Any] | None:
    return json.loads(item["truth"]["S"]) if "truth" in item else None


def output_of(item: Mapping[str, Any]) -> dict[str, Any]:
    return (json.loads(item["data"]["S"]) if "data" in item else {}).get("output") or {}
