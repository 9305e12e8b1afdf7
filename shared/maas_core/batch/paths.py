"""Where batch files live in the bucket.

    batch/input/{model}/{rest}                      a CSV or JSONL file to predict (optionally .gz)
    batch/output/{model}/{rest}.predictions.jsonl   one JSON line per valid input row
    batch/output/{model}/{rest}.errors.jsonl        one JSON line per rejected row; written last,
                                                    so its presence means the run finished
    batch/failed/{model}/{rest}.error.json          why the whole file could not be processed

`rest` keeps every folder and the full file name of the input (`2024/day 1.csv`), so
`day1.csv` and `day1.jsonl` never overwrite each other's results.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

INPUT_PREFIX = "batch/input/"
OUTPUT_PREFIX = "batch/output/"
FAILED_PREFIX = "batch/failed/"

PREDICTIONS_SUFFIX = ".predictions.jsonl"
ERRORS_SUFFIX = ".errors.jsonl"
FAILURE_SUFFIX = ".error.json"


def is_batch_input(key: str) -> bool:
    """An object the batch job should look at: under batch/input/ and not a folder placeholder."""
    return key.startswith(INPUT_PREFIX) and not key.endswith("/")


@dataclass(frozen=True)
class BatchPaths:
    """The keys of one input file's results. `model` is empty when the key names no model folder."""

    input_key: str
    model: str
    rest: str

    @classmethod
    def from_input_key(cls, key: str) -> BatchPaths:
        if not is_batch_input(key):
            raise ValueError(f"{key!r} is not a batch input (expected {INPUT_PREFIX}{{model}}/...)")
        model, sep, rest = key[len(INPUT_PREFIX):].partition("/")
        if not sep:  # batch/input/file.csv: no model folder
            return cls(input_key=key, model="", rest=model)
        return cls(input_key=key, model=model, rest=rest)

    def _under(self, prefix: str) -> str:
        return f"{prefix}{self.model}/{self.rest}" if self.model else f"{prefix}{self.rest}"

    @property
    def predictions_key(self) -> str:
        return self._under(OUTPUT_PREFIX) + PREDICTIONS_SUFFIX

    @property
    def errors_key(self) -> str:
        return self._under(OUTPUT_PREFIX) + ERRORS_SUFFIX

    @property
    def failure_key(self) -> str:
        return self._under(FAILED_PREFIX) + FAILURE_SUFFIX


def file_id(bucket: str, key: str, etag: str, last_modified: datetime | None) -> str:
    """32 hex digits naming one version of an input file: its LastModified (ms, 12 hex digits) and a hash. It
    starts the prediction ids, names a large file's execution and its work area (work.py)."""
    ms = int(last_modified.timestamp() * 1000) if last_modified is not None else 0
    return f"{ms:012x}" + hashlib.sha256(f"{bucket}/{key}/{etag}".encode()).hexdigest()[:20]
