"""Stream a batch input file as records, a chunk of rows at a time, in bounded memory.

    chunks = read_records(body.iter_chunks(64 * 1024), detect_format(key), required=["x1"])
    for chunk in chunks:            # Chunk(records, rows, errors), at most `chunk_rows` rows each
        ...

Formats, chosen by the key's extension (case-insensitive):
- `.csv`: a header row naming the columns, then one record per row; an empty cell is None (a value
  the model's spec treats as missing), every other cell is the string as written; the spec turns
  "1.5" into a number and "yes" into a boolean exactly as it does for JSON callers. Comma-separated,
  RFC 4180 quoting (a quoted cell may hold commas and newlines).
- `.jsonl` (or `.ndjson`): one JSON object per line; blank lines are skipped.
- either one gzip-compressed: `.csv.gz`, `.jsonl.gz`, or any file whose bytes start with the gzip
  magic (e.g. uploaded with `Content-Encoding: gzip`). Concatenated gzip members are read in turn.
Text is UTF-8 (a leading byte-order mark is ignored).

Row numbers are 1-based and count data rows: for CSV the rows after the header (blank rows keep
their number but produce nothing), for JSONL the lines, so row N is line N of the file.

Problems of one row (a line that is not JSON or not an object, a CSV row whose cell count differs
from the header's) are row errors, reported in the chunk and never stop the file. Problems of the
file itself raise BatchFileError: unknown extension, bytes that are not gzip where gzip was
promised, text that is not UTF-8, a CSV header without the model's required columns, an empty file,
a line longer than `max_line_chars`.

Memory: one compressed read (64 KiB), at most 256 KiB of decompressed text per step, the current line
and the current chunk's records. Nothing else of the file is held, whatever its size.
"""

from __future__ import annotations

import codecs
import csv
import json
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from maas_core.batch.errors import BatchFileError

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_CHUNK_ROWS = 5000
READ_SIZE = 64 * 1024  # bytes per S3 read (Body.iter_chunks)
MAX_INFLATE_STEP = 256 * 1024  # decompressed bytes produced per zlib call: bounds a gzip bomb's footprint
DEFAULT_MAX_LINE_CHARS = 8 * 1024 * 1024

_EXTENSIONS: dict[str, Literal["csv", "jsonl"]] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass(frozen=True)
class FileFormat:
    kind: Literal["csv", "jsonl"]
    gzip: bool  # the name promises gzip (.gz): the bytes must be gzip


def detect_format(key: str) -> FileFormat:
    """The format a key's extension names, or BatchFileError `unsupported_format`."""
    name = key.rsplit("/", 1)[-1].lower()
    gz = name.endswith(".gz")
    stem = name[:-3] if gz else name
    for ext, kind in _EXTENSIONS.items():
        if stem.endswith(ext) and len(stem) > len(ext):
            return FileFormat(kind, gz)
    accepted = ", ".join(f"{e}, {e}.gz" for e in _EXTENSIONS)
    raise BatchFileError("unsupported_format", f"cannot read {name!r}: batch inputs must end with one of {accepted}",
                         [{"field": "key", "reason": "unknown extension", "accepted": sorted(_EXTENSIONS)}])


@dataclass
class Chunk:
    """Up to `chunk_rows` consecutive rows: the records read and the rows that could not be read."""

    records: list[dict[str, Any]] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # row number of each record
    errors: list[dict[str, Any]] = field(default_factory=list)  # {"row", "field", "reason"}
    size: int = 0  # rows covered (records, errors and blank rows)


def read_records(
    chunks: Iterable[bytes],
    fmt: FileFormat,
    *,
    required: Sequence[str] = (),
    fields: Sequence[str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    max_line_chars: int = DEFAULT_MAX_LINE_CHARS,
) -> Iterator[Chunk]:
    """Raw bytes of a file (as S3 streams them) -> chunks of records. See the module docstring.

    `required` names the columns a CSV header must have (the model's required input fields);
    `fields`, if given, are the only keys records keep (the model's input fields: a wide column the
    model ignores costs no memory).
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    lines = decode_lines(maybe_gunzip(chunks, fmt.gzip), max_line_chars)
    rows = _csv_rows(lines, required, fields) if fmt.kind == "csv" else _jsonl_rows(lines, fields)
    chunk = Chunk()
    for row, record, error in rows:
        chunk.size += 1
        if record is not None:
            chunk.records.append(record)
            chunk.rows.append(row)
        elif error is not None:
            chunk.errors.append({"row": row, **error})
        if chunk.size >= chunk_rows:
            yield chunk
            chunk = Chunk()
    if chunk.size:
        yield chunk


# --- bytes -> text lines ------------------------------------------------------------------------


def maybe_gunzip(chunks: Iterable[bytes], declared: bool) -> Iterator[bytes]:
    """Decompress if the bytes start with the gzip magic; if `declared` (a .gz name) they must.

    An input with no bytes at all is an `empty_file`.
    """
    it = iter(chunks)
    first = b""
    for piece in it:
        first += piece
        if len(first) >= len(GZIP_MAGIC):
            break
    if not first:
        raise BatchFileError("empty_file", "the file is empty")
    if first.startswith(GZIP_MAGIC):
        yield from _gunzip(_prepend(first, it))
    elif declared:
        raise BatchFileError("bad_gzip", "the file name ends with .gz but its content is not gzip",
                             [{"reason": "no gzip header"}])
    else:
        yield from _prepend(first, it)


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _gunzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        for data in chunks:
            while data:
                out = d.decompress(data, MAX_INFLATE_STEP)
                if out:
                    yield out
                if d.eof:  # end of one gzip member: another may follow (concatenated .gz files)
                    data = d.unused_data
                    if data:
                        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                else:
                    data = d.unconsumed_tail
        while not d.eof:  # output held back by the step limit
            out = d.decompress(b"", MAX_INFLATE_STEP) or d.flush()
            if not out:
                break
            yield out
    except zlib.error as exc:
        raise BatchFileError("bad_gzip", f"the file is not valid gzip: {exc}", [{"reason": str(exc)}]) from exc
    if not d.eof:
        raise BatchFileError("bad_gzip", "the gzip data is truncated (the file ends mid-stream)",
                             [{"reason": "truncated"}])


def decode_lines(chunks: Iterable[bytes], max_line_chars: int = DEFAULT_MAX_LINE_CHARS) -> Iterator[str]:
    """UTF-8 bytes -> lines, each ending with "\\n" (the last one may not). Decoding is incremental,
    so a character split across two reads is fine; bytes that are not UTF-8 raise `not_utf8`."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    pending: list[str] = []
    pending_chars = 0
    lines_done = 0
    first = True

    def decode(data: bytes, final: bool) -> str:
        try:
            return decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            good = data[: max(exc.start, 0)].decode("utf-8", "replace")
            line = lines_done + sum(p.count("\n") for p in pending) + good.count("\n") + 1
            raise BatchFileError("not_utf8", f"the file is not UTF-8 text: invalid byte at line {line}",
                                 [{"line": line, "reason": exc.reason}]) from exc

    def split(text: str) -> Iterator[str]:
        nonlocal pending_chars, lines_done
        parts = text.split("\n")
        for part in parts[:-1]:
            if pending:
                pending.append(part)
                part = "".join(pending)
                pending.clear()
                pending_chars = 0
            lines_done += 1
            yield part + "\n"
        tail = parts[-1]
        if tail:
            pending.append(tail)
            pending_chars += len(tail)
            if pending_chars > max_line_chars:
                raise BatchFileError("line_too_long",
                                     f"line {lines_done + 1} is longer than {max_line_chars} characters",
                                     [{"line": lines_done + 1, "limit": max_line_chars}])

    for data in chunks:
        text = decode(data, False)
        if first and text:
            text = text.removeprefix("\ufeff")
            first = False
        yield from split(text)
    yield from split(decode(b"", True))
    if pending:
        yield "".join(pending)


# --- lines -> rows ------------------------------------------------------------------------------

Row = tuple[int, dict[str, Any] | None, dict[str, Any] | None]  # (row number, record, error)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_JSON = json.JSONDecoder(parse_constant=_reject_constant)


def _jsonl_rows(lines: Iterable[str], fields: Sequence[str] | None) -> Iterator[Row]:
    seen_content = False
    for row, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            yield row, None, None
            continue
        seen_content = True
        try:
            value = _JSON.decode(text)
        except ValueError as exc:  # JSONDecodeError, or NaN/Infinity
            yield row, None, {"field": None, "reason": f"not valid JSON: {exc}"}
            continue
        if isinstance(value, dict):
            yield row, value if fields is None else {k: value[k] for k in fields if k in value}, None
        else:
            yield row, None, {"field": None, "reason": f"expected a JSON object, got {_json_kind(value)}"}
    if not seen_content:
        raise BatchFileError("empty_file", "the file has no records (only blank lines)")


def _json_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    return {str: "a string", list: "a list", type(None): "null"}.get(type(v), type(v).__name__)


def _csv_rows(lines: Iterable[str], required: Sequence[str], fields: Sequence[str] | None) -> Iterator[Row]:
    reader = csv.reader(lines)
    header: list[str] | None = None
    for cells in _csv_lenient(reader):
        if isinstance(cells, str):
            raise BatchFileError("bad_header", f"the CSV header row cannot be read: {cells}")
        if cells:
            header = [c.strip() for c in cells]
            break
    if header is None:
        raise BatchFileError("empty_file", "the file has no header row (it is empty or only blank lines)")
    _check_header(header, required)
    width = len(header)
    keep = [(i, name) for i, name in enumerate(header) if fields is None or name in fields]
    for row, cells in enumerate(_csv_lenient(reader), start=1):
        if isinstance(cells, str):  # the csv module refused this row
            yield row, None, {"field": None, "reason": f"not a valid CSV row: {cells}"}
        elif not cells:
            yield row, None, None
        elif len(cells) != width:
            yield row, None, {"field": None,
                              "reason": f"expected {width} cells (one per header column), got {len(cells)}"}
        else:
            yield row, {name: (cells[i] if cells[i] != "" else None) for i, name in keep}, None


def _csv_lenient(reader: Iterator[list[str]]) -> Iterator[list[str] | str]:
    """csv rows; a row the csv module refuses (e.g. a cell over its size limit) comes out as its message."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield str(exc)


def _check_header(header: list[str], required: Sequence[str]) -> None:
    if not any(header):
        raise BatchFileError("missing_columns", "the CSV header row is empty")
    dupes = sorted({h for h in header if h and header.count(h) > 1})
    if dupes:
        raise BatchFileError("duplicate_columns", f"the CSV header names these columns twice: {', '.join(dupes)}",
                             [{"field": d, "reason": "duplicate column"} for d in dupes])
    missing = [name for name in required if name not in header]
    if missing:
        raise BatchFileError(
            "missing_columns",
            f"the CSV header lacks required columns of the model's input schema: {', '.join(missing)}",
            [{"field": name, "reason": "required column missing"} for name in missing],
        )
