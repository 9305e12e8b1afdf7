"""Plan a large batch file as shards: byte ranges that start on a record boundary, read by the same reader.

    plan = plan_shards(body.iter_chunks(READ_SIZE), detect_format(key), size=..., shard_bytes=64 << 20,
                       required=[...], limits=Limits.from_settings(settings))
    plan.shards   # [Shard(index=0, start=0, end=67108912, first_row=1), Shard(1, 67108912, ..., 1398102), ...]

A shard is read with `read_records(header + bytes[start:end], first_row=..., whole_file=False)` and gives
exactly the rows, row numbers, row errors and chunks the single pass over the whole file gives for that
range, because the plan is made by that same reader's line and record code (decode_lines, csv_records):
- a boundary is only placed where the CSV record reader holds nothing back (no line read ahead for a
  quoted cell that might span lines, none put back after a stray quote), so a quoted line break, a stray
  quote or a too long line never straddles two shards;
- and only where the single pass would end a chunk (every `chunk_rows` rows, or `chunk_chars` of text):
  each shard's chunks are the single pass's chunks, so even a model whose numbers depend on the batch
  it is given predicts the same bytes;
- a CSV shard but the first starts with bytes [0, header_end): the byte-order mark, blank lines and the
  header record, read again so every shard checks and maps the same columns.
The plan reads the whole file once (text only, no record is built) and raises the file-level errors the
single pass would raise, with the same codes and messages: not UTF-8 (with its line), too large, too many
rows, an empty file, a bad or incomplete CSV header. gzip inputs are not planned (`not_splittable`): a
byte range of a gzip stream is not a gzip stream; they take the single-function path.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from maas_core.batch.errors import BatchFileError
from maas_core.batch.reader import (
    DEFAULT_CHUNK_CHARS,
    DEFAULT_CHUNK_ROWS,
    FileFormat,
    Limits,
    LongLine,
    capped_bytes,
    csv_header,
    csv_records,
    decode_lines,
    too_many_rows,
    utf8_len,
)
from maas_core.batch.work import GZIP_MAGIC

DEFAULT_SHARD_BYTES = 64 * 1024 * 1024  # ~1.4 M penguins rows: about 30 s of one Lambda's predictions
DEFAULT_SHARD_ROWS = 500_000  # and at most this many rows: narrow rows of a slow model must still fit 15 minutes


@dataclass(frozen=True)
class Shard:
    index: int
    start: int  # byte offset of its first record
    end: int  # exclusive
    first_row: int  # number of its first data row

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class ShardPlan:
    shards: list[Shard]
    header_end: int  # CSV: bytes [0, header_end) precede every shard but the first; JSONL: 0
    rows: int  # data rows of the file (what the outputs' maas-rows-read will say)
    size: int  # bytes of the file


class _Counted:
    """The lines decode_lines yields, counting the characters and bytes handed out so far."""

    def __init__(self, lines: Iterable[str | LongLine]) -> None:
        self.lines, self.chars, self.nbytes = lines, 0, 0

    def __iter__(self) -> Iterator[str | LongLine]:
        for line in self.lines:
            if isinstance(line, LongLine):
                self.chars += line.chars
                self.nbytes += line.nbytes
            else:
                self.chars += len(line)
                self.nbytes += utf8_len(line)
            yield line


def _head(chunks: Iterable[bytes], n: int) -> tuple[bytes, Iterator[bytes]]:
    """The first `n` bytes (fewer if the file is shorter) and an iterator over all of the bytes."""
    it, head = iter(chunks), b""
    pieces: list[bytes] = []
    for piece in it:
        pieces.append(piece)
        head += piece
        if len(head) >= n:
            break

    def again() -> Iterator[bytes]:
        yield from pieces
        yield from it

    return head[:n], again()


def plan_shards(chunks: Iterable[bytes], fmt: FileFormat, *, size: int, shard_bytes: int = DEFAULT_SHARD_BYTES,
                shard_rows: int = DEFAULT_SHARD_ROWS, required: Sequence[str] = (),
                chunk_rows: int = DEFAULT_CHUNK_ROWS, chunk_chars: int = DEFAULT_CHUNK_CHARS,
                limits: Limits | None = None) -> ShardPlan:
    """The shards of a file of `size` bytes: each ends at the first boundary past `shard_bytes` bytes or
    `shard_rows` rows (see the module docstring)."""
    limits = limits or Limits()
    if shard_bytes < 1 or chunk_rows < 1:
        raise ValueError("shard_bytes and chunk_rows must be positive")
    head, data = _head(chunks, 3)
    if not head:
        raise BatchFileError("empty_file", "the file is empty")
    if fmt.gzip or head.startswith(GZIP_MAGIC):
        raise BatchFileError("not_splittable", "a gzip file cannot be split into byte ranges")
    bom = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0  # decode_lines drops it: not in counts
    lines = _Counted(decode_lines(capped_bytes(data, limits.max_bytes), limits.max_line_chars,
                                  universal=fmt.kind == "csv"))
    max_rows = limits.max_rows if limits.max_rows is not None else float("inf")
    shards: list[Shard] = []
    start, first_row, number = 0, 1, 0
    in_chunk = chunk_text = 0
    taken_chars = 0  # characters of the records yielded so far: == lines.chars when nothing is held back
    header_end = 0

    if fmt.kind == "csv":
        header: list[str] = []
        records: Iterator[Any] = csv_records(lines, limits, lambda: len(header) or None)
        header += csv_header(records, required)  # its record ended where the line count stands now
        taken_chars, header_end = lines.chars, bom + lines.nbytes
        rows: Iterator[int] = (chars for _, _, chars, _ in records)
    else:
        rows = _jsonl_line_chars(lines)

    for chars in rows:
        number += 1
        if number > max_rows:
            raise too_many_rows(limits.max_rows)
        taken_chars += chars
        in_chunk += 1
        chunk_text += chars
        if in_chunk >= chunk_rows or chunk_text >= chunk_chars:  # the single pass ends a chunk here
            in_chunk = chunk_text = 0
            end = bom + lines.nbytes
            if taken_chars == lines.chars and (end - start >= shard_bytes or number - first_row + 1 >= shard_rows):
                shards.append(Shard(len(shards), start, end, first_row))
                start, first_row = end, number + 1
    total = bom + lines.nbytes
    if total != size:  # the object changed while it was read (or a size was misreported): refuse, never guess
        raise BatchFileError("changed_while_read", f"read {total:,} bytes of a file said to hold {size:,}")
    if start < total or not shards:
        shards.append(Shard(len(shards), start, total, first_row))
    return ShardPlan(shards, header_end, number, size)


def _jsonl_line_chars(lines: Iterable[str | LongLine]) -> Iterator[int]:
    """Characters of each line (a JSONL row is one line); an `empty_file` as the reader says it."""
    seen_content = False
    for line in lines:
        if isinstance(line, LongLine):
            seen_content = True
            yield line.chars
            continue
        seen_content = seen_content or bool(line.strip())
        yield len(line)
    if not seen_content:
        raise BatchFileError("empty_file", "the file has no records (only blank lines)")
