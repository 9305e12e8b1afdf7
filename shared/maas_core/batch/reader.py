"""Stream a batch input file as records, a chunk of rows at a time, in bounded memory.

    chunks = read_records(body.iter_chunks(64 * 1024), detect_format(key), required=["x1"],
                          limits=Limits.from_settings(settings))
    for chunk in chunks:            # Chunk(records, rows, errors), at most `chunk_rows` rows each
        ...

Formats, chosen by the key's extension (case-insensitive):
- `.csv`: a header row naming the columns, then one record per row; an empty cell is None (a value
  the model's spec treats as missing), every other cell is the string as written; the spec turns
  "1.5" into a number and "yes" into a boolean exactly as it does for JSON callers. Comma-separated,
  RFC 4180 quoting (a quoted cell may hold commas, doubled quotes and line breaks). Lines end with
  LF, CRLF or a lone CR (old Mac files).
- `.jsonl` (or `.ndjson`): one JSON object per line (LF or CRLF); blank lines are skipped.
- either one gzip-compressed: `.csv.gz`, `.jsonl.gz`, or any file whose bytes start with the gzip
  magic (e.g. uploaded with `Content-Encoding: gzip`). Concatenated gzip members are read in turn.
Text is UTF-8 (a leading byte-order mark is ignored).

Row numbers (the contract predictions are joined back on): 1-based, counting data rows.
- JSONL: row N is line N of the file (blank lines keep their number and produce nothing).
- CSV: row N is the N-th record after the header. A record is one line, or several when a quoted
  cell holds line breaks; a blank line is a row that produces nothing. A record that spans lines is
  only taken as one row if it is a valid row: its quotes close properly (a closing quote is followed
  by a comma or the end of the line), it has one cell per header column, no cell is longer than
  `max_field_chars`, and the lines it continues over hold at most `max_field_chars` characters. Any
  other multi-line record is a stray quote: its first line is one row, rejected as "unbalanced
  quote", and reading starts again at the next line, so each following line is a row of its own
  with its own number. A quote inside an unquoted cell (`5'11"`) is an ordinary character.
Every row comes out exactly once: as a record, a row error or a blank row (Chunk.size counts them).

Problems of one row are row errors, reported in the chunk, and never stop the file: a line that is not
JSON or not an object, nested deeper than MAX_JSON_DEPTH, a number past Python's digit limit, a CSV
row whose cell count differs from the header's, an unbalanced quote, a value longer than
`max_field_chars` (named by its field; the value never enters a record), a line longer than
`max_line_chars` (dropped as it streams by). Problems of the file itself raise BatchFileError: unknown
extension, bytes that are not gzip where gzip was promised, text that is not UTF-8, a CSV header
without the model's required columns (or that cannot be read), an empty file, and the file limits
(Limits): more text than `max_bytes` (`too_large`), more rows than `max_rows` (`too_many_rows`),
gzip inflating more than `max_ratio` times (`too_compressed`, judged from the first 256 KiB of text on),
each raised as the limit is crossed, before the text past it is read.

Memory: one compressed read (64 KiB), at most 256 KiB of decompressed text per step, the current line
(at most `max_line_chars`), the current record's lines, and the current chunk's records (at most
`chunk_rows` rows and about `chunk_chars` characters of text). Nothing else of the file is held.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
import sys
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from maas_core.batch.errors import BatchFileError
from maas_core.batch.work import GZIP_MAGIC  # one definition, in the module the light jobs function imports

if TYPE_CHECKING:
    from maas_core.settings import Settings

DEFAULT_CHUNK_ROWS = 5000
DEFAULT_CHUNK_CHARS = 16 * 1024 * 1024  # a chunk also ends here: wide rows cannot make it chunk_rows times larger
READ_SIZE = 64 * 1024  # bytes per S3 read (Body.iter_chunks)
MAX_INFLATE_STEP = 256 * 1024  # decompressed bytes produced per zlib call: bounds a gzip bomb's footprint
DEFAULT_MAX_LINE_CHARS = 8 * 1024 * 1024
RATIO_GRACE_BYTES = MAX_INFLATE_STEP  # the ratio is judged past one step of text: a tiny file may compress any way
MAX_JSON_DEPTH = 64  # records are flat: deeper is hostile (and json would recurse ~1000 levels before giving up)

_EXTENSIONS: dict[str, Literal["csv", "jsonl"]] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass(frozen=True)
class FileFormat:
    kind: Literal["csv", "jsonl"]
    gzip: bool  # the name promises gzip (.gz): the bytes must be gzip


@dataclass(frozen=True)
class Limits:
    """What one file may cost (see the module docstring); None: no limit."""

    max_field_chars: int = 20_000
    max_line_chars: int = DEFAULT_MAX_LINE_CHARS
    max_bytes: int | None = None
    max_rows: int | None = None
    max_ratio: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(max_field_chars=settings.max_field_chars, max_bytes=settings.batch_max_decompressed_bytes,
                   max_rows=settings.batch_max_rows, max_ratio=settings.batch_max_compression_ratio)


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
    size: int = 0  # rows covered (records, rows with errors and blank rows)
    blank: int = 0  # blank rows among them
    chars: int = 0  # characters of text the rows came from


# (row number, record or None, its problems {"field", "reason"} (neither: a blank row), characters of text);
# plain tuples: this is made once per row
Row = tuple[int, dict[str, Any] | None, Sequence[dict[str, Any]], int]
NO_PROBLEMS: tuple[dict[str, Any], ...] = ()


def read_records(
    chunks: Iterable[bytes],
    fmt: FileFormat,
    *,
    required: Sequence[str] = (),
    fields: Sequence[str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    limits: Limits = Limits(),
    first_row: int = 1,
    whole_file: bool = True,
) -> Iterator[Chunk]:
    """Raw bytes of a file (as S3 streams them) -> chunks of records. See the module docstring.

    `required` names the columns a CSV header must have (the model's required input fields);
    `fields`, if given, are the only keys records keep (the model's input fields: a wide column the
    model ignores costs no memory).

    A shard of a file (maas_core.batch.shards) is read with `first_row` (the number of its first data row)
    and `whole_file=False` (the file-level checks already ran on the whole file: a shard of blank lines
    is no empty file); a CSV shard's bytes start with the file's header record.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    data = capped_bytes(maybe_gunzip(chunks, fmt.gzip, limits.max_ratio), limits.max_bytes)
    lines = decode_lines(data, limits.max_line_chars, universal=fmt.kind == "csv")
    rows = (_csv_rows(lines, required, fields, limits, first_row) if fmt.kind == "csv"
            else _jsonl_rows(lines, fields, limits, first_row, whole_file))
    chunk = Chunk()
    max_rows = limits.max_rows if limits.max_rows is not None else float("inf")
    for number, record, problems, chars in rows:
        if number > max_rows:
            raise too_many_rows(limits.max_rows)
        chunk.size += 1
        chunk.chars += chars
        if record is not None:
            chunk.records.append(record)
            chunk.rows.append(number)
        elif problems:
            chunk.errors += [{"row": number, **e} for e in problems]
        else:
            chunk.blank += 1
        if chunk.size >= chunk_rows or chunk.chars >= chunk_chars:
            yield chunk
            chunk = Chunk()
    if chunk.size:
        yield chunk


# --- bytes -> text lines ------------------------------------------------------------------------


def maybe_gunzip(chunks: Iterable[bytes], declared: bool, max_ratio: float | None = None) -> Iterator[bytes]:
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
        yield from _gunzip(_prepend(first, it), max_ratio)
    elif declared:
        raise BatchFileError("bad_gzip", "the file name ends with .gz but its content is not gzip",
                             [{"reason": "no gzip header"}])
    else:
        yield from _prepend(first, it)


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def capped_bytes(chunks: Iterable[bytes], max_bytes: int | None) -> Iterator[bytes]:
    """The text's bytes, refused (`too_large`) as soon as they pass `max_bytes`."""
    total = 0
    for data in chunks:
        total += len(data)
        if max_bytes is not None and total > max_bytes:
            raise too_large(max_bytes)
        yield data


def too_many_rows(max_rows: int | None) -> BatchFileError:
    return BatchFileError("too_many_rows", f"the file has more than {max_rows:,} data rows "
                          "(MAAS_BATCH_MAX_ROWS); split it into smaller files",
                          [{"reason": "too many rows", "limit": max_rows}])


def too_large(max_bytes: int) -> BatchFileError:
    return BatchFileError("too_large", f"the file holds more than {max_bytes:,} bytes of text "
                          "(MAAS_BATCH_MAX_DECOMPRESSED_BYTES); split it into smaller files",
                          [{"reason": "too many bytes", "limit": max_bytes}])


def _gunzip(chunks: Iterable[bytes], max_ratio: float | None = None) -> Iterator[bytes]:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    received = inflated = 0

    def step(out: bytes) -> bytes:  # refuse the file as soon as it has inflated more than max_ratio times
        nonlocal inflated
        inflated += len(out)
        consumed = received - len(d.unconsumed_tail)
        if max_ratio is not None and inflated > max(RATIO_GRACE_BYTES, max_ratio * consumed):
            raise BatchFileError(
                "too_compressed", f"the gzip data inflates more than {max_ratio:g} times ({consumed:,} bytes to "
                f"{inflated:,} so far): a decompression bomb, or a file to upload uncompressed or split",
                [{"reason": "compression ratio", "limit": max_ratio, "inflated_bytes": inflated,
                  "compressed_bytes": consumed}])
        return out

    try:
        for data in chunks:
            received += len(data)
            while data:
                out = d.decompress(data, MAX_INFLATE_STEP)
                if out:
                    yield step(out)
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
            yield step(out)
    except zlib.error as exc:
        raise BatchFileError("bad_gzip", f"the file is not valid gzip: {exc}", [{"reason": str(exc)}]) from exc
    if not d.eof:
        raise BatchFileError("bad_gzip", "the gzip data is truncated (the file ends mid-stream)",
                             [{"reason": "truncated"}])


@dataclass(frozen=True)
class LongLine:
    """A line longer than `max_line_chars`: its text was dropped as it streamed by."""

    chars: int
    nbytes: int = 0  # its UTF-8 bytes (shard planning places boundaries by byte offset)


def utf8_len(text: str) -> int:
    """Bytes of `text` in UTF-8 (str.isascii is O(1) in CPython: only non-ASCII text is encoded)."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


_AFTER_ANY_BREAK = re.compile(r"(?<=\n)|(?<=\r)(?!\n)")  # LF, CRLF or a lone CR; not the others of splitlines()


def decode_lines(chunks: Iterable[bytes], max_line_chars: int = DEFAULT_MAX_LINE_CHARS,
                 universal: bool = False) -> Iterator[str | LongLine]:
    """UTF-8 bytes -> lines, each ending with its line break (the last one may not): LF, or with `universal`
    also CRLF and a lone CR. Decoding is incremental, so a character split across two reads is fine; bytes
    that are not UTF-8 raise `not_utf8`. A line over `max_line_chars` comes out as a LongLine."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    pending: list[str] = []  # the current line's pieces so far
    pending_chars = 0
    skipped = -1  # characters of a too long line dropped so far; -1: not in one
    skipped_bytes = 0  # and their bytes
    lines_done = 0
    first = True
    carry = ""  # a CR at the end of a read: the LF of a CRLF may come with the next one

    def decode(data: bytes, final: bool) -> str:
        try:
            return decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            good = data[: max(exc.start, 0)].decode("utf-8", "replace")
            line = lines_done + sum(p.count("\n") for p in pending) + good.count("\n") + 1
            raise BatchFileError("not_utf8", f"the file is not UTF-8 text: invalid byte at line {line}",
                                 [{"line": line, "reason": exc.reason}]) from exc

    def split(text: str) -> Iterator[str | LongLine]:
        nonlocal pending_chars, lines_done, skipped, skipped_bytes
        if universal and text.count("\r") != text.count("\r\n"):  # a lone CR somewhere
            parts = _AFTER_ANY_BREAK.split(text)
        else:  # LF or CRLF: str.split is ~5x faster than the regex
            parts = [p + "\n" for p in text.split("\n")]
            parts[-1] = parts[-1][:-1]
        if len(parts) > 1:
            lines_done += len(parts) - 1
            first = parts[0]
            if skipped >= 0:
                yield LongLine(skipped + len(first), skipped_bytes + utf8_len(first))
                skipped = -1
            else:
                if pending:
                    pending.append(first)
                    first = "".join(pending)
                    pending.clear()
                    pending_chars = 0
                yield first if len(first) <= max_line_chars else LongLine(len(first), utf8_len(first))
            for part in parts[1:-1]:  # each ends with its line break
                yield part if len(part) <= max_line_chars else LongLine(len(part), utf8_len(part))
        tail = parts[-1]
        if skipped >= 0:
            skipped += len(tail)
            skipped_bytes += utf8_len(tail)
        elif tail:
            pending.append(tail)
            pending_chars += len(tail)
            if pending_chars > max_line_chars:  # stop holding it: only its length is kept
                skipped, pending_chars = pending_chars, 0
                skipped_bytes = sum(map(utf8_len, pending))
                pending.clear()

    for data in chunks:
        text = carry + decode(data, False)
        if first and text:
            text = text.removeprefix("\ufeff")
            first = False
        carry = ""
        if universal and text.endswith("\r"):
            text, carry = text[:-1], "\r"
        yield from split(text)
    yield from split(carry + decode(b"", True))
    if skipped >= 0:
        yield LongLine(skipped, skipped_bytes)
    elif pending:
        yield "".join(pending)


# --- lines -> rows ------------------------------------------------------------------------------


def _problem(field_name: str | None, reason: str) -> dict[str, Any]:
    return {"field": field_name, "reason": reason}


def _long_line(line: LongLine, limits: Limits) -> list[dict[str, Any]]:
    return [_problem(None, f"the line is longer than {limits.max_line_chars:,} characters ({line.chars:,})")]


def _too_long(name: str | None, chars: int, limits: Limits) -> dict[str, Any]:
    return _problem(name, f"longer than {limits.max_field_chars:,} characters ({chars:,})")


class _RejectedConstant(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _RejectedConstant(f"not valid JSON: {name} is not valid JSON")


_JSON = json.JSONDecoder(parse_constant=_reject_constant)
_decode = _JSON.decode
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_OPEN, _CLOSE = np.zeros(128, np.int8), np.zeros(128, np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_CLOSE[[ord("]"), ord("}")]] = 1


def json_depth_over(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests deeper than `limit`: two counts, and only for a line with more brackets than
    that a vectorised scan (brackets inside strings do not count)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    codes = np.frombuffer(_JSON_STRING.sub("", text).encode("ascii", "ignore"), np.uint8) & 127
    return bool(np.cumsum(_OPEN[codes] - _CLOSE[codes], dtype=np.int64).max(initial=0) > limit)


def _json_reason(exc: ValueError | RecursionError) -> str:
    """Why json.loads refused a line."""
    if isinstance(exc, (json.JSONDecodeError, _RejectedConstant)):  # _RejectedConstant: NaN, Infinity
        return f"not valid JSON: {exc}" if isinstance(exc, json.JSONDecodeError) else str(exc)
    if isinstance(exc, RecursionError):  # unreachable past the depth check; kept so no line can fail the file
        return "nested too deeply"
    return f"a number has more than {sys.get_int_max_str_digits():,} digits"  # the only other ValueError


def _jsonl_rows(lines: Iterable[str | LongLine], fields: Sequence[str] | None, limits: Limits,
                first_row: int = 1, whole_file: bool = True) -> Iterator[Row]:
    seen_content = not whole_file
    cap = limits.max_field_chars
    for number, line in enumerate(lines, start=first_row):
        if isinstance(line, LongLine):
            seen_content = True
            yield number, None, _long_line(line, limits), line.chars
            continue
        text = line.strip()
        if not text:
            yield number, None, NO_PROBLEMS, len(line)
            continue
        seen_content = True
        if json_depth_over(text):
            yield number, None, [_problem(None, f"nested deeper than {MAX_JSON_DEPTH} levels")], len(line)
            continue
        try:
            value = _decode(text)
        except (ValueError, RecursionError) as exc:
            yield number, None, [_problem(None, _json_reason(exc))], len(line)
            continue
        if not isinstance(value, dict):
            yield number, None, [_problem(None, f"expected a JSON object, got {_json_kind(value)}")], len(line)
        else:
            record = value if fields is None else {k: value[k] for k in fields if k in value}
            if len(text) > cap and (long := [_too_long(k, len(v), limits) for k, v in record.items()
                                             if isinstance(v, str) and len(v) > cap]):
                yield number, None, long, len(line)
            else:
                yield number, record, NO_PROBLEMS, len(line)
    if not seen_content:
        raise BatchFileError("empty_file", "the file has no records (only blank lines)")


def _json_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    return {str: "a string", list: "a list", type(None): "null"}.get(type(v), type(v).__name__)


# CSV: physical lines -> records -> rows


# (cells ([] for a blank line) or None, error or None, characters, the cell lengths of a line the csv module
# refused as over its field limit or None)
CsvRecord = tuple[list[str] | None, str | None, int, list[int] | None]


UNBALANCED = ("unbalanced quote: a quoted cell opened on this row does not close as a valid row; "
              "the next line is read as the next row")


class _Feed:
    """The lines csv.reader pulls for one record: the first, then more while a quoted cell stays open, unless
    they would take the cell past `cap` characters (the reader then ends the record where it is)."""

    def __init__(self, first: str, more: Callable[[], str | LongLine | None], put_back: Callable[[Any], None],
                 cap: int) -> None:
        self.lines, self.more, self.put_back, self.cap = [first], more, put_back, cap
        self.served = self.extra_chars = 0
        self.unfinished = False  # csv wanted another line and did not get it

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        if self.served == 0:
            self.served = 1
            return self.lines[0]
        line = self.more() if self.extra_chars <= self.cap else None
        if line is None or isinstance(line, LongLine):
            if line is not None:
                self.put_back(line)
            self.unfinished = True
            raise StopIteration
        self.lines.append(line)
        self.extra_chars += len(line)
        return line


def csv_records(lines: Iterable[str | LongLine], limits: Limits,
                width: Callable[[], int | None]) -> Iterator[CsvRecord]:
    """Physical lines -> CSV records (see the module docstring's row rule). `width()`: the header's cell
    count once known; a multi-line record with another count is not taken as a row."""
    source = iter(lines)
    back: deque[str | LongLine] = deque()  # lines of a record that was not a row, read again

    def more() -> str | LongLine | None:
        return back.popleft() if back else next(source, None)

    def record(line: str | LongLine) -> CsvRecord:
        if isinstance(line, LongLine):
            return None, _long_line(line, limits)[0]["reason"], line.chars, None
        if '"' not in line:  # nearly every line: no quoting, so a plain split is the RFC 4180 parse
            text = line.rstrip("\r\n")
            return text.split(",") if text else [], None, len(line), None
        return _quoted_record(line, more, back.appendleft, back.extendleft, limits, width())

    for line in source:
        if type(line) is str and '"' not in line:  # record(line), inlined for the common case
            text = line.rstrip("\r\n")
            yield text.split(",") if text else [], None, len(line), None
        else:
            yield record(line)
        while back:
            yield record(back.popleft())


def _quoted_record(line: str, more: Callable[[], str | LongLine | None], put_back: Callable[[Any], None],
                   put_back_all: Callable[[Iterable[Any]], None], limits: Limits, width: int | None) -> CsvRecord:
    feed = _Feed(line, more, put_back, limits.max_field_chars)
    try:
        cells: list[str] | None = next(csv.reader(feed), [])
        error = None
    except csv.Error as exc:
        cells, error = None, str(exc)
    if len(feed.lines) == 1:
        if feed.unfinished:
            return None, UNBALANCED, len(line), None
        lengths = _cell_lengths(line) if error is not None and "field limit" in error else None
        return cells, error, len(line), lengths
    chars = sum(map(len, feed.lines))
    if not feed.unfinished and cells is not None and (width is None or len(cells) == width) \
            and all(len(c) <= limits.max_field_chars for c in cells) and _strictly_quoted(feed.lines):
        return cells, None, chars, None
    put_back_all(reversed(feed.lines[1:]))  # a stray quote: its line is the row, the next lines are read again
    return None, UNBALANCED, len(line), None


def _strictly_quoted(lines: list[str]) -> bool:
    """Every closing quote is followed by a comma or the end of the line (the lenient reader accepts more)."""
    try:
        next(csv.reader(lines, strict=True))
    except csv.Error:
        return False
    return True


_CELL = re.compile(r'"(?:[^"]|"")*"|[^,]*')


def _cell_lengths(line: str) -> list[int]:
    """The length of each cell of a line as written, without building the cells (for one the csv module
    refuses as over its field_size_limit)."""
    text, pos, out = line.rstrip("\r\n"), 0, []
    while (m := _CELL.match(text, pos)) is not None:
        out.append(m.end() - m.start())
        pos = m.end()
        if pos >= len(text) or text[pos] != ",":
            break
        pos += 1
    return out


def _csv_rows(lines: Iterable[str | LongLine], required: Sequence[str], fields: Sequence[str] | None,
              limits: Limits, first_row: int = 1) -> Iterator[Row]:
    header: list[str] = []
    records = csv_records(lines, limits, lambda: len(header) or None)
    header += csv_header(records, required)
    width = len(header)
    keep = [(i, name) for i, name in enumerate(header) if fields is None or name in fields]
    cap = limits.max_field_chars
    for number, (cells, error, chars, lengths) in enumerate(records, start=first_row):
        if cells is None:
            # a cell over csv's field_size_limit is named like any cell over max_field_chars
            long = [_too_long(header[i] if i < width else None, n, limits)
                    for i, n in enumerate(lengths or ()) if n > cap]
            reason = error if error == UNBALANCED else f"not a valid CSV row: {error}"
            yield number, None, long or [_problem(None, reason)], chars
        elif not cells:
            yield number, None, NO_PROBLEMS, chars
        elif len(cells) != width:
            reason = f"expected {width} cells (one per header column), got {len(cells)}"
            yield number, None, [_problem(None, reason)], chars
        elif chars > cap and (long := [_too_long(header[i], len(c), limits)
                                       for i, c in enumerate(cells) if len(c) > cap]):
            yield number, None, long, chars
        else:
            yield number, {name: (cells[i] if cells[i] != "" else None) for i, name in keep}, NO_PROBLEMS, chars


def csv_header(records: Iterator[CsvRecord], required: Sequence[str]) -> list[str]:
    """Read the header record (the first that is not blank) off `records` and check it (see _check_header)."""
    for cells, error, _, _ in records:
        if error is not None:
            raise BatchFileError("bad_header", f"the CSV header row cannot be read: {error}")
        if cells:
            header = [c.strip() for c in cells]
            _check_header(header, required)
            return header
    raise BatchFileError("empty_file", "the file has no header row (it is empty or only blank lines)")


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
