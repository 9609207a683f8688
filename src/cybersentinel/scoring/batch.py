"""Batch I/O for ``predict``: streaming readers (CSV, Parquet, plain text) that keep every input row, the
writers, and scoring in input order across forked worker processes."""

from __future__ import annotations

import csv
import gc
import io
import itertools
import json
import math
import os
import re
import signal
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cybersentinel.core.csv_cells import escape_table
from cybersentinel.scoring.decider import Decider
from cybersentinel.scoring.detector import MAX_URL_CHARS, Detector

INPUT_FORMATS = ("csv", "parquet", "jsonl", "text")


OUTPUT_FORMATS = ("csv", "parquet", "jsonl")


MAX_CSV_FIELD = 16 << 20  # a larger field (an unclosed quote, a corrupt file) becomes one error row


RESULT_COLUMNS = ("score", "verdict", "reasons", "model_score", "feeds", "error")


@dataclass
class Batch:
    """Rows read from the input: the columns to pass through, the URL column, and per-row read errors."""

    passthrough: pa.Table
    urls: pa.Array
    read_errors: np.ndarray | None = None  # "" where the row was read fine


def format_from_name(name: str, formats: tuple[str, ...]) -> str | None:
    suffix = Path(name).suffix.lower().lstrip(".")
    aliases = {"csv": "csv", "tsv": None, "parquet": "parquet", "pq": "parquet", "txt": "text", "lst": "text",
               "list": "text", "jsonl": "jsonl", "ndjson": "jsonl", "json": "jsonl"}
    found = aliases.get(suffix)
    return found if found in formats else None


# what a column name looks like: a URL has '/' or ':' (a log export's names have dots: `src.ip`, `http.status`)
_HEADER_NAME = re.compile(r"[\w .\-]*")


UTF8_BOM = b"\xef\xbb\xbf"


PARQUET_MAGIC = b"PAR1"


# UTF-16 without a byte-order mark: ASCII text with a NUL after (or before) every character
_UTF16_TEXT = re.compile(rb"(?:[\x20-\x7e]\x00){4}|(?:\x00[\x20-\x7e]){4}")


# the magic bytes each format starts with, and the command that decompresses it to standard output
_COMPRESSED = {b"\x1f\x8b": ("gzip", "gzip -dc"), b"BZh": ("bzip2", "bzip2 -dc"),
               b"\xfd7zXZ\x00": ("xz", "xz -dc"), b"\x28\xb5\x2f\xfd": ("zstd", "zstd -dc"),
               b"PK\x03\x04": ("zip", "unzip -p"), b"PK\x05\x06": ("zip", "unzip -p")}


def refuse_compressed(head: bytes) -> None:
    """A ValueError if the input is compressed (its magic bytes, whatever its name): read as text it would be
    a row or two of garbage, scored, with status 0. An .xlsx workbook is a zip archive too."""
    for magic, (name, command) in _COMPRESSED.items():
        if head.startswith(magic):
            raise ValueError(f"the input is {name}-compressed; decompress it first, e.g. {command} FILE | "
                             "cybersentinel predict ...")


def sniff_format(head: bytes, column: str) -> str:
    """Parquet if the input starts with Parquet's magic bytes. JSON Lines if the first line is a JSON object.
    CSV if the first line is a header (a UTF-8 byte-order mark skipped, as reading does): it names the URL
    column and its other fields look like column names, not URLs (``http://a.example/x,url`` is a URL with a
    comma in it). Else one URL per line."""
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    first_line = re.split(rb"[\r\n]", head.removeprefix(UTF8_BOM), maxsplit=1)[0]
    if first_line.lstrip().startswith(b"{") and isinstance(_json_value(first_line), dict):
        return "jsonl"
    try:
        fields = next(csv.reader(io.StringIO(first_line.decode("utf-8", "replace"), newline="")), [])
    except csv.Error:
        return "text"
    return "csv" if column in fields and all(f == column or _HEADER_NAME.fullmatch(f) for f in fields) else "text"


def refuse_utf16(head: bytes) -> None:
    """A ValueError if text or CSV input looks like UTF-16 (a byte-order mark FF FE or FE FF, or NULs between
    ASCII characters): read as UTF-8 it would give rows of NUL-laden garbage, or a header no column matches."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or _UTF16_TEXT.search(head[:4096]):
        raise ValueError("the input looks like UTF-16 text; it must be UTF-8 (convert it first, e.g. "
                         "iconv -f UTF-16 -t UTF-8)")


def read_head(stream: BinaryIO, size: int = 1 << 16) -> tuple[bytes, BinaryIO]:
    """The first ``size`` bytes of ``stream`` (fewer at its end), and a stream that still reads from its start:
    the same one sought back when it can seek, else one that replays the head (a pipe, a FIFO)."""
    head = b""
    while len(head) < size and (more := stream.read(size - len(head))):
        head += more
    if stream.seekable():
        stream.seek(-len(head), io.SEEK_CUR)
        return head, stream
    return head, io.BufferedReader(_Prepended(head, stream))


def column_hint(names: list[str], column: str) -> str:
    """What to say when ``column`` is missing: the columns there are, and ``--column`` with the likeliest one."""
    likely = [n for n in names if any(word in n.lower() for word in ("url", "link", "uri", "domain", "host"))]
    guess = (likely or names or ["NAME"])[0]
    return f"no column {column!r} (columns: {names[:10]}); name the URL column with --column {guess}"


def read_text(stream: BinaryIO, chunk_size: int, block_size: int = 1 << 20) -> Iterator[Batch]:
    """One URL, domain or IP per line. Lines end in ``\\n``, ``\\r\\n`` or a bare ``\\r`` (old Mac files, as CSV
    input reads them); the other breaks `str.splitlines` knows (U+2028, ``\\x85``, ``\\x1c``) stay part of the
    value, as in the service's text bodies. A leading UTF-8 byte-order mark is skipped. Every line is a row,
    blank ones included; a line longer than ``MAX_URL_CHARS`` is kept cut to its first bytes (and will
    get an error), so memory stays bounded whatever the input."""
    lines: list[bytes] = []
    any_yielded = False
    for block_lines in _bounded_lines(stream, MAX_URL_CHARS, block_size):
        lines.extend(block_lines)
        while len(lines) >= chunk_size:
            any_yielded = True
            yield _text_batch(lines[:chunk_size])
            del lines[:chunk_size]
    if not lines and not any_yielded:
        yield _text_batch([])  # no input at all: an empty batch, so the output still gets its header
    for start in range(0, len(lines), chunk_size):
        yield _text_batch(lines[start: start + chunk_size])


def _bounded_lines(stream: BinaryIO, limit: int, block_size: int, bare_cr: bool = True) -> Iterator[list[bytes]]:
    """The lines of ``stream`` (ends ``\\n``, ``\\r\\n`` or, with ``bare_cr``, a bare ``\\r``; a leading UTF-8
    byte-order mark skipped), a list per block read. A line longer than ``limit`` is kept cut to its first
    ``limit + 1`` bytes (so it gets an error) and the rest of it skipped: memory stays bounded whatever the input."""
    tail = b""
    overlong = False
    for parts in _line_pieces(stream, block_size, bare_cr):
        if overlong:
            parts[0] = b""
        parts[0] = tail + parts[0]
        tail = parts.pop()
        overlong = len(tail) > limit
        if overlong:
            tail = tail[: limit + 1]
        yield parts
    if tail:
        yield [tail]


def _line_pieces(stream: BinaryIO, block_size: int, bare_cr: bool = True) -> Iterator[list[bytes]]:
    """Each block read split at its line ends (a bare \\r one too with ``bare_cr``; without, a \\r stays in its
    line); a block's first piece goes on the line the block before ended in."""
    held = b""  # a \r that ended the last block: the \r\n of one line end may be cut between two blocks
    start = b""  # the first bytes, read apart so a leading byte-order mark is seen whole
    while len(start) < len(UTF8_BOM) and (more := stream.read(len(UTF8_BOM) - len(start))):
        start += more
    for block in itertools.chain([start.removeprefix(UTF8_BOM)], iter(lambda: stream.read(block_size), b"")):
        block = held + block
        held = b"\r" if bare_cr and block.endswith(b"\r") else b""
        if held:
            block = block[:-1]
        if bare_cr and b"\r" in block:
            block = block.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        yield block.split(b"\n")
    if held:
        yield [b"", b""]  # the input's last line ended in a bare \r


def _text_batch(lines: list[bytes]) -> Batch:
    # Scored from the text, as CSV input is: bytes that are not UTF-8 read as U+FFFD, so such a row gets the same
    # result (the detector's error for a host name) whatever the input format
    texts = pa.array([line[: MAX_URL_CHARS + 1].decode("utf-8", "replace") for line in lines], type=pa.string())
    return Batch(pa.table({"url": texts}), texts.cast(pa.large_string()).view(pa.large_binary()))


def read_jsonl(stream: BinaryIO, column: str, chunk_size: int) -> Iterator[Batch]:
    """JSON Lines (predict's own output, say): one object per line, the URL in its field ``column``. The first
    object's fields are the columns, as a CSV header's are, every value passed through as text (a string as it
    is, another value as its JSON; a field an object lacks is null). Every line is a row: one that is not a JSON
    object, has a field the first lacks, or whose URL is neither a string nor null keeps its row with a read
    error. Errors about the first line are raised at the first ``next()``, before anything is scored."""
    head, stream = read_head(stream)
    lines = _json_lines(stream, bare_cr=_bare_cr(head.removeprefix(UTF8_BOM)))
    first = next(lines, None)
    header = _json_header(first, column) if first is not None else [column]
    rows = itertools.chain([first], lines) if first is not None else lines
    yield from _with_header_if_empty(_json_batches(rows, header, column, chunk_size), header, column)


def _json_lines(stream: BinaryIO, bare_cr: bool, block_size: int = 1 << 20) -> Iterator[bytes]:
    """The lines of ``stream``, ended by ``\\n`` (or ``\\r\\n``), or by a bare ``\\r`` in a file whose first line
    ends so (an old Mac file, as CSV input decides: a stray \\r elsewhere stays in its line, one error row, not
    two); one longer than ``MAX_CSV_FIELD`` is cut (it gets an error)."""
    for block_lines in _bounded_lines(stream, MAX_CSV_FIELD, block_size, bare_cr):
        yield from block_lines


_NOT_JSON = object()


def _json_value(line: bytes) -> Any:
    """The JSON value of a line (bytes that are not UTF-8 replaced, as in CSV input), or ``_NOT_JSON``."""
    try:
        return json.loads(line.decode("utf-8", "replace"))
    except (ValueError, RecursionError):  # not JSON; nested too deep for the decoder
        return _NOT_JSON


def _json_header(first: bytes, column: str) -> list[str]:
    record = _json_value(first)
    if not isinstance(record, dict):
        raise ValueError("the first line is not a JSON object: JSON Lines input needs one object per line")
    if column not in record:
        raise ValueError(f"the first JSON object has {column_hint(list(record), column)}")
    return list(record)


def _json_batches(lines: Iterator[bytes], header: list[str], column: str, chunk_size: int) -> Iterator[Batch]:
    known, url_at = set(header), header.index(column)
    rows: list[list[str | None]] = []
    errors: list[str] = []
    for line in lines:
        row, error = _json_row(_json_value(line), header, known, column)
        rows.append(row)
        errors.append(error)
        if len(rows) == chunk_size:
            yield _csv_batch(header, url_at, rows, errors)  # text columns and read errors, as CSV records give
            rows, errors = [], []
    if rows:
        yield _csv_batch(header, url_at, rows, errors)


def _json_row(record: Any, header: list[str], known: set[str], column: str) -> tuple[list[str | None], str]:
    """A line's values for the columns, and its read error ("" if none)."""
    if not isinstance(record, dict):
        return [None] * len(header), "not JSON" if record is _NOT_JSON else "not a JSON object"
    row = [value if value is None or isinstance(value, str) else json.dumps(value, ensure_ascii=False)
           for value in map(record.get, header)]
    extra = [name for name in record if name not in known]
    url = record.get(column)
    if extra:
        return row, f"field {extra[0]!r} is not one of the first line's: {header[:10]}"
    if url is None or isinstance(url, str):
        return row, ""
    return row, f"the field {column!r} holds {_JSON_TYPES.get(type(url), 'a value')}, not text"


_JSON_TYPES = {bool: "a boolean", int: "a number", float: "a number", list: "an array", dict: "an object"}


def read_csv(stream: BinaryIO, column: str, chunk_size: int, block_bytes: int = 8 << 20) -> Iterator[Batch]:
    """CSV with a header row, streamed. Every record becomes a row: one with the wrong number of fields, or
    that the parser rejects, keeps what could be read and gets a read error. Bytes that are not UTF-8 are
    replaced (U+FFFD).

    Blocks cut at a newline outside quotes (quote parity) are parsed by Arrow's CSV reader; a block it
    rejects (a malformed record, bytes that are not UTF-8) is parsed again by Python's ``csv`` module, record
    by record. If no such newline shows up within ``MAX_CSV_FIELD`` bytes (a quote that never closes), the
    rest of the input goes through Python's ``csv`` module, as does a file whose lines end in a bare carriage
    return (old Mac style). The header is one CSV record (a quoted newline in it included). A header with no
    records after it gives one empty batch, so the output still has its header. Errors about the header are
    raised at the first ``next()``, before anything is scored."""
    first = stream.read(1 << 16)
    stream = io.BufferedReader(_Prepended(first, stream))
    if _bare_cr(first):
        text = io.TextIOWrapper(stream, "utf-8-sig", "replace", newline="")
        header = _checked_header(next(csv.reader(text), []), column)
        yield from _with_header_if_empty(_python_csv(text, header, column, chunk_size), header, column)
        return
    header_bytes = stream.readline()
    while header_bytes.count(b'"') % 2 and (more := stream.readline()):  # a quoted newline: the header goes on
        header_bytes += more
    header = _checked_header(next(csv.reader(io.StringIO(header_bytes.decode("utf-8-sig", "replace"), newline="")),
                                  []), column)
    yield from _with_header_if_empty(_csv_blocks(stream, header, column, chunk_size, block_bytes), header, column)


def _bare_cr(block: bytes) -> bool:
    """Whether the first line ends in a carriage return not followed by a newline."""
    end = re.search(rb"[\r\n]", block)
    return end is not None and end.group() == b"\r" and block[end.start(): end.start() + 2] != b"\r\n"


def _checked_header(header: list[str], column: str) -> list[str]:
    if not header:
        raise ValueError("the CSV input is empty: it needs a header row naming the URL column")
    if column not in header:
        raise ValueError(f"the CSV header has {column_hint(header, column)}")
    return _unique_names(header)


def _with_header_if_empty(batches: Iterator[Batch], header: list[str], column: str) -> Iterator[Batch]:
    empty = True
    for batch in batches:
        empty = False
        yield batch
    if empty:
        table = pa.table({name: pa.array([], type=pa.string()) for name in header})
        yield Batch(table, table[column].combine_chunks(), np.asarray([], dtype=object))


def _csv_blocks(stream: BinaryIO, header: list[str], column: str, chunk_size: int, block_bytes: int
                ) -> Iterator[Batch]:
    carry = b""
    while block := stream.read(block_bytes):
        data = carry + block if carry else block
        cut = _record_end(data)
        if cut < 0:
            carry = data
            if len(carry) > MAX_CSV_FIELD:
                chained = io.BufferedReader(_Prepended(carry, stream))
                yield from _python_csv(io.TextIOWrapper(chained, "utf-8", "replace", newline=""), header, column,
                                       chunk_size)
                return
            continue
        carry = data[cut:]
        yield from _csv_piece(data[:cut], header, column, chunk_size)
    if carry:
        yield from _csv_piece(carry, header, column, chunk_size)


def _record_end(data: bytes) -> int:
    """The offset just past the last newline outside quoted fields (an even number of quotes before it), or -1.
    The quotes after each newline are counted once, walking back (one stray quote leaves every newline after it
    inside a field: recounting to the end at each made a 1.5 MB file cost 14 s)."""
    before = data.count(b'"')
    end = len(data)
    while (pos := data.rfind(b"\n", 0, end)) >= 0:
        before -= data.count(b'"', pos, end)
        if before % 2 == 0:
            return pos + 1
        end = pos
    return -1


def _csv_piece(piece: bytes, header: list[str], column: str, chunk_size: int) -> Iterator[Batch]:
    import pyarrow.csv as pacsv

    if piece.startswith(b"\xef\xbb\xbf"):  # Arrow would drop a byte-order mark that here is data
        yield from _python_csv(io.StringIO(piece.decode("utf-8", "replace"), newline=""), header, column, chunk_size)
        return
    try:
        table = pacsv.read_csv(
            pa.py_buffer(piece),
            read_options=pacsv.ReadOptions(column_names=header, use_threads=False, block_size=max(len(piece), 1 << 20)),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()),
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        yield from _python_csv(io.StringIO(piece.decode("utf-8", "replace"), newline=""), header, column, chunk_size)
        return
    for start in range(0, table.num_rows, chunk_size):
        part = table.slice(start, chunk_size)
        yield Batch(part, part[column].combine_chunks())


def _python_csv(lines: Any, header: list[str], column: str, chunk_size: int) -> Iterator[Batch]:
    # the csv module's limit is one for the whole process: raised while this file is read, then put back
    previous = csv.field_size_limit(MAX_CSV_FIELD)
    try:
        reader = csv.reader(lines)
        width, url_at = len(header), header.index(column)
        rows: list[list[str]] = []
        errors: list[str] = []
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                row, error = [], f"malformed CSV record: {err}"
            else:
                error = ("" if len(row) in (0, width)
                         else f"malformed CSV record: {len(row)} fields, the header has {width}")
            rows.append(row if len(row) == width else (row + [""] * width)[:width])
            errors.append(error)
            if len(rows) == chunk_size:
                yield _csv_batch(header, url_at, rows, errors)
                rows, errors = [], []
        if rows:
            yield _csv_batch(header, url_at, rows, errors)
    finally:
        csv.field_size_limit(previous)


class _Prepended(io.RawIOBase):
    """A raw stream that reads ``head`` first, then ``stream``."""

    def __init__(self, head: bytes, stream: BinaryIO):
        self.head, self.stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.head[: len(buffer)] if self.head else self.stream.read(len(buffer))
        self.head = self.head[len(data):] if self.head else b""
        buffer[: len(data)] = data
        return len(data)


def _unique_names(names: list[str]) -> list[str]:
    """Column names made unique as a CSV header's are: the first of a name keeps it, a later one becomes
    ``name.1`` (``.2``, ...), never a name the header already has (``url,url,url.1``: ``url.2``). Every writer
    needs unique names (JSON lines refuse duplicates, a Parquet file with them is unreadable)."""
    given, used = set(names), set()
    out = []
    for name in names:
        new, count = name, 0
        while new in used or (count and new in given):
            count += 1
            new = f"{name}.{count}"
        used.add(new)
        out.append(new)
    return out


def _csv_batch(header: list[str], url_at: int, rows: list[list[str]], errors: list[str]) -> Batch:
    columns = [pa.array(values, type=pa.string()) for values in zip(*rows, strict=True)]
    return Batch(pa.Table.from_arrays(columns, names=header), columns[url_at], np.asarray(errors, dtype=object))


def read_parquet(source: Any, column: str, chunk_size: int,
                 row_groups: tuple[int, ...] | None = None) -> Iterator[Batch]:
    """Parquet in batches (of the given row groups only, in order, when ``row_groups`` is set). The URL column
    must hold text or bytes (dictionary-encoded or not); any other type is refused before anything is read: a
    number scored as its text would be an IP address (1 as 0.0.0.1), NaN the host "nan", and --column pointed at
    an id column an all-benign output. Byte columns pass through, and a byte URL column is scored, as text, bytes
    that are not UTF-8 replaced (U+FFFD) as in CSV input. Duplicate column names are made unique as a CSV
    header's are."""
    import pyarrow.parquet as pq

    reader = pq.ParquetFile(source)
    schema = reader.schema_arrow
    if column not in schema.names:
        raise ValueError(f"the Parquet file has {column_hint(schema.names, column)}")
    names = _unique_names(schema.names)  # as a CSV header's: the first column of a name is the URL column
    kind = schema.field(names.index(column)).type
    if not _is_text_or_bytes(kind.value_type if pa.types.is_dictionary(kind) else kind):
        raise ValueError(f"the Parquet column {column!r} holds {kind} values, not text; name a text column with "
                         "--column")
    return _parquet_batches(reader, schema, names, column, chunk_size, row_groups)


def _parquet_batches(reader: Any, schema: pa.Schema, names: list[str], column: str, chunk_size: int,
                     row_groups: tuple[int, ...] | None) -> Iterator[Batch]:
    empty = True
    for batch in (reader.iter_batches(batch_size=chunk_size, row_groups=row_groups) if row_groups != () else ()):
        empty = False
        yield _parquet_batch(pa.Table.from_batches([batch]).rename_columns(names), column)
    if empty:
        yield _parquet_batch(schema.empty_table().rename_columns(names), column)


def _parquet_batch(table: pa.Table, column: str) -> Batch:
    # a byte URL column is scored from this text, as CSV input is: a value that is not UTF-8 gets U+FFFD, and so
    # the same result (the detector's error for its host name) as in CSV or text input
    # so is a text column holding bytes that are not UTF-8 (Arrow does not check what a Parquet file says is text;
    # written out as it was, such a value crashed the JSON writer and broke the CSV one)
    columns = [_as_text(c) if _is_bytes(c.type) else _as_text(c.cast(pa.large_binary())) if _bad_text(c) else c
               for c in table.columns]
    table = pa.Table.from_arrays(columns, names=table.column_names)
    urls = table[column].combine_chunks()
    if pa.types.is_dictionary(urls.type):
        urls = urls.dictionary_decode()
    if _is_bytes(urls.type):  # dictionary-encoded bytes
        urls = _as_text(urls)
    elif not (pa.types.is_string(urls.type) or pa.types.is_large_string(urls.type)):
        urls = urls.cast(pa.string())
    return Batch(table, urls)


def _is_text_or_bytes(kind: pa.DataType) -> bool:
    return (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
            or _is_bytes(kind))


def _is_bytes(kind: pa.DataType) -> bool:
    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind)


def _bad_text(column: pa.ChunkedArray) -> bool:
    """Whether a text column (plain or dictionary-encoded) holds a value that is not UTF-8."""
    if not _is_text_or_bytes(column.type.value_type if pa.types.is_dictionary(column.type) else column.type):
        return False
    try:
        column.validate(full=True)
    except pa.ArrowInvalid:
        return True
    return False


def _as_text(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A byte column as text; only when some value is not UTF-8 is it decoded value by value (with U+FFFD)."""
    try:
        return column.cast(pa.string())
    except pa.ArrowInvalid:
        return pa.array([None if v is None else v.decode("utf-8", "replace") for v in column.to_pylist()],
                        type=pa.string())


def with_results(batch: Batch, results: pa.Table) -> pa.Table:
    """The input columns (renamed ``input_<name>`` where they clash with a result column), then the results
    as plain strings; rows the reader could not read carry its error instead of a score."""
    table = batch.passthrough
    names = _unique_names([f"input_{n}" if n in RESULT_COLUMNS else n for n in table.column_names])
    table = table.rename_columns(names)
    bad = None
    if batch.read_errors is not None and (batch.read_errors != "").any():
        bad = pa.array(batch.read_errors != "")
    for name in results.column_names:
        column = results[name].combine_chunks()
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        if bad is not None:
            replacement = pa.array(batch.read_errors, type=pa.string()) if name == "error" else \
                pa.nulls(len(column), column.type) if name in ("score", "model_score") else \
                pa.array([""] * len(column), type=pa.string())
            column = pc.if_else(bad, replacement, column)
        table = table.append_column(name, column)
    return table


class BatchWriter:
    """Streams tables to CSV (formula-like cells escaped, `core.csv_cells`), Parquet or JSON lines (one object per
    row, NaN as null); Parquet and JSON lines keep the raw values."""

    def __init__(self, sink: BinaryIO, fmt: str):
        self.sink, self.format, self._writer = sink, fmt, None

    def write(self, table: pa.Table) -> None:
        if self.format == "jsonl":
            if table.num_rows:
                _write_all(self.sink, "".join(_json_text(_finite(row)) + "\n" for row in table.to_pylist()).encode())
            return
        if self.format == "csv":
            table = escape_table(_nested_as_json(table))
        if self._writer is None:
            if self.format == "csv":
                import pyarrow.csv as pacsv

                self._writer = pacsv.CSVWriter(self.sink, table.schema)
            else:
                import pyarrow.parquet as pq

                self._writer = pq.ParquetWriter(self.sink, table.schema)
        self._writer.write_table(table)

    def close(self, schema: pa.Schema | None = None) -> None:
        """Ends the output, flushed: an error writing it is raised here, not when the sink is closed later."""
        if self._writer is None and schema is not None and self.format != "jsonl":
            self.write(schema.empty_table())  # an empty input still gives a valid file with the header
        if self._writer is not None:
            self._writer.close()
        self.sink.flush()


def _nested_as_json(table: pa.Table) -> pa.Table:
    """Columns CSV has no cell for (lists, structs, maps from a Parquet input) as their JSON text."""
    nested = [i for i, field in enumerate(table.schema) if pa.types.is_nested(field.type)]
    for i in nested:
        text = pa.array([None if v is None else _json_text(_finite(v)) for v in table.column(i).to_pylist()],
                        pa.string())
        table = table.set_column(i, table.schema.field(i).name, text)
    return table


def _finite(value: Any) -> Any:
    """A value with NaN and infinities as None, in lists and structs too (JSON has neither); every other value as
    Arrow gives it: integers and floats exact (a pandas detour made a 64-bit id a float and cut 1e-12 to 0)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, default=_json_default)


def _json_default(value: Any) -> Any:
    """Values JSON has no type for: dates and times in ISO 8601, decimals and anything else as text."""
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _write_all(sink: BinaryIO, data: bytes) -> None:
    """All of ``data``: a buffered writer whose pipe's reader left takes part of a large write without an error
    (it comes with the next write), so one unchecked write could lose the rest of a batch unnoticed."""
    view = memoryview(data)
    while view:
        view = view[sink.write(view):]


def score_batch(batch: Batch, detector: Detector, decider: Decider | None = None, reasons: bool = True) -> pa.Table:
    """The output rows of one batch: its input columns and the detector's results, in input order. The one
    scoring step of every batch engine (local processes here, Dask workers in `cybersentinel.ops.distributed`)."""
    return with_results(batch, detector.score_values(batch.urls, reasons=reasons, decider=decider))


_worker_state: dict[str, Any] = {}


def _start_worker(parent: int | None = None) -> None:
    # A batch's new host-cache entries (~25,000 tuples) set off hundreds of automatic collections, some of them
    # full ones over the grown caches (3% of a worker's time); scoring makes no reference cycles, so the young
    # objects are collected once per batch instead (`_score_in_worker`), which still frees any cycle a batch made.
    gc.disable()
    if parent is not None:
        _end_with_parent(parent)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _end_with_parent(parent: int) -> None:
    """SIGTERM ends this forked worker (the default action): the Python handler it inherited from the parent
    (`core.files.exit_on_sigterm`) would raise SystemExit while scoring, which goes back to the parent as that
    batch's result, the worker living on. On Linux the kernel also sends it SIGKILL when the parent dies (even
    killed), else it would wait on its queue forever, holding the parent's standard output open."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)


def _score_in_worker(urls: pa.Array) -> pa.Table:
    state = _worker_state  # only the URLs cross the process boundary; the parent joins the input columns back
    table = state["detector"].score_values(urls, reasons=state["reasons"], decider=state["decider"])
    gc.collect(0)
    return table


def score_batches(batches: Iterator[Batch], detector: Detector, decider: Decider | None = None, reasons: bool = True,
                  workers: int = 1) -> Iterator[pa.Table]:
    """Output tables (`score_batch`) in input order, in ``workers`` forked processes once the input proves
    larger than one batch (a small input is scored at once, without starting any). At most ``2 * workers``
    batches are in flight, so memory stays constant however long the input."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    first = next(batches, None)
    if first is None:
        return
    second = next(batches, None)
    if second is None or workers <= 1:
        for batch in _chain(tuple(b for b in (first, second) if b is not None), batches):
            yield score_batch(batch, detector, decider, reasons)
        return
    _worker_state.update(detector=detector, reasons=reasons, decider=decider)  # inherited by the forked workers
    # the compiled kernels (and numba's own start-up, ~0.4 s) are loaded on first use: once here, not in each worker
    detector.score_values(first.urls.slice(0, 256), reasons=reasons, decider=decider)
    gc.freeze()  # what the workers inherit is never collected there, so its pages are not walked and copied in each
    fork = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=fork, initializer=_start_worker, initargs=(os.getpid(),)) as pool:
        try:
            yield from _in_order(pool, _chain((first, second), batches), workers)
        except BaseException:  # an error, Ctrl-C, SIGTERM's SystemExit, or the consumer closed this generator
            _stop_workers(pool)
            raise


def _in_order(pool: Any, batches: Iterator[Batch], workers: int) -> Iterator[pa.Table]:
    pending: deque = deque()
    for batch in batches:
        pending.append((batch, pool.submit(_score_in_worker, batch.urls)))
        if len(pending) >= 2 * workers:
            done, future = pending.popleft()
            yield with_results(done, future.result())
    while pending:
        done, future = pending.popleft()
        yield with_results(done, future.result())


def _stop_workers(pool: Any) -> None:
    """End the workers now: the pool's own shutdown would first score every batch in flight (seconds each), and
    a SIGKILL following a SIGTERM (docker stop) would then come before the temporary output is removed. The
    pool has no public way to do it before Python 3.14 (`terminate_workers`); it sees the workers die, fails
    what was pending and joins them. A worker killed while sending its result leaves half a message in the
    result pipe, which the pool's thread then waits on for ever: once the workers are dead, this process's own
    end of that pipe is closed too, so the wait ends (no writer left) and the pool sees it broken."""
    processes = list(pool._processes.values())
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(5)
    pool._result_queue._writer.close()
    pool.shutdown(wait=True, cancel_futures=True)


def _chain(head: tuple, tail: Iterator) -> Iterator:
    yield from head
    yield from tail
