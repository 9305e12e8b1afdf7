"""Where the training job reads its inputs: local files, or s3:// URIs (the cloud batch job).

    maas-train --data s3://BUCKET/datasets/penguins/penguins.csv --config s3://BUCKET/datasets/penguins/training.json

`fetched_inputs` downloads each s3:// `--data` / `--config` into a temporary folder for the run (keeping the
file name, so a config's .json/.yaml suffix still says how to read it) and points the arguments at the
copies. A `.jsonl` dataset (one JSON object per line) is rewritten as CSV, the one format the loader reads:
the header is every key in first-seen order, null or absent values become empty cells (missing).

An s3:// config's own `data` entry is not followed: give `--data` (the trigger always does).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

S3_SCHEME = "s3://"


def path_or_s3(text: str) -> Path | str:
    """argparse type: an s3:// URI stays a string (Path would fold its '//'), anything else is a Path."""
    return text if text.startswith(S3_SCHEME) else Path(text)


def split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len(S3_SCHEME):].partition("/")
    if not bucket or not key or key.endswith("/"):
        raise ValueError(f"{uri!r} is not an s3://BUCKET/KEY URI of a file")
    return bucket, key


def download(uri: str, folder: Path, s3: Any = None) -> Path:
    """Copy s3://bucket/key to folder/<file name>; ValueError naming the URI when it cannot be read."""
    from botocore.exceptions import BotoCoreError, ClientError

    from maas_core import aws

    bucket, key = split_s3_uri(uri)
    target = folder / key.rsplit("/", 1)[-1]
    try:
        (s3 or aws.client("s3")).download_file(bucket, key, str(target))
    except ClientError as exc:
        if aws.is_not_found(exc):
            raise ValueError(f"{uri} does not exist") from exc
        raise ValueError(f"cannot read {uri}: {aws.error_code(exc) or exc}") from exc
    except BotoCoreError as exc:
        raise ValueError(f"cannot read {uri}: {exc}") from exc
    return target


def jsonl_to_csv(path: Path, folder: Path) -> Path:
    """A JSONL file of flat objects -> folder/<stem>.csv. ValueError naming the line of a bad one."""
    rows: list[dict[str, Any]] = []
    header: dict[str, None] = {}  # insertion-ordered set
    with path.open(encoding="utf-8-sig") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path.name} line {n}: not JSON ({exc})") from exc
            if not isinstance(row, dict):
                raise ValueError(f"{path.name} line {n}: expected a JSON object, got {type(row).__name__}")
            nested = [k for k, v in row.items() if isinstance(v, (dict, list))]
            if nested:
                raise ValueError(f"{path.name} line {n}: field {nested[0]!r} is not a plain value")
            header.update(dict.fromkeys(row))
            rows.append(row)
    out = folder / f"{path.stem}.csv"
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(header), restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else ("true" if v is True else "false" if v is False else v)
                             for k, v in row.items()})
    return out


@contextlib.contextmanager
def fetched_inputs(args: argparse.Namespace) -> Iterator[argparse.Namespace]:
    """While open: args.data / args.config are local files (downloaded from S3 and/or JSONL rewritten as
    CSV into a temporary folder, removed afterwards). ValueError when an input cannot be fetched."""
    with tempfile.TemporaryDirectory(prefix="maas-train-") as tmp:
        folder = Path(tmp)
        if isinstance(args.config, str):
            args.config = download(args.config, folder)
        if isinstance(args.data, str):
            args.data = download(args.data, folder)
        if isinstance(args.data, Path) and args.data.suffix.lower() == ".jsonl" and args.data.is_file():
            args.data = jsonl_to_csv(args.data, folder)
        yield args
