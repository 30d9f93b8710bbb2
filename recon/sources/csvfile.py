"""Read one contract CSV into a frame of trimmed strings with the physical line of every record.

No value is interpreted here (validate.py does that); this module only answers "what rows are in
this file, on which lines, under which normalised column names", and which records could not even
be split into fields. Clean files take the multi-threaded pyarrow reader; a file pyarrow will not
take (ragged rows, bad bytes, huge fields, an odd number of quotes) is re-read with the standard
library's csv module, which is slower but finds every broken record with its line number.

A file that cannot be used at all (too large, binary, no header, cut off in the middle of its
last record) raises InputRefused naming the file, the line where it applies, and what to do.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from recon.errors import InputRefused
from recon.sinks.safety import ID_COLUMNS, mask_cards_in_text

UTF8_BOM = codecs.BOM_UTF8
MAX_HEADER_BYTES = 1_000_000
BAD_BYTES_REASON = "bytes are not valid in the file's encoding"
BLANK = re.compile(rb"[ \t\r\n]*")  # fullmatch: no copy of the file, unlike bytes.strip
RESEND = "ask the sender to resend the complete file, then rerun the date"


@dataclass
class RawTable:
    """The records of one CSV file: every value a trimmed string, every column name normalised."""

    file: str
    frame: pd.DataFrame  # normalised column names; one row per well-formed record
    lines: np.ndarray  # physical line where each row of `frame` starts (header is line 1)
    records: int  # data records in the file, well-formed or not
    broken: pd.DataFrame = field(default_factory=lambda: empty_rejects())  # records left out
    # Records of `broken` that did split into the header's fields (one field too long, bad
    # bytes), as rows like `frame`'s: a control total over the file still counts them.
    flawed: pd.DataFrame = field(default_factory=pd.DataFrame)
    header: list[str] = field(default_factory=list)  # every column name, ignored ones included
    # Over-long free-text fields cut to max_field_chars: line, column, original length.
    cut: pd.DataFrame = field(default_factory=lambda: empty_cuts())


def empty_cuts() -> pd.DataFrame:
    return pd.DataFrame({"line": pd.Series(dtype="int64"), "column": pd.Series(dtype="str"),
                         "length": pd.Series(dtype="int64")})


def empty_rejects() -> pd.DataFrame:
    return pd.DataFrame({"file": pd.Series(dtype="str"), "line": pd.Series(dtype="Int64"),
                         "column": pd.Series(dtype="str"), "value": pd.Series(dtype="str"),
                         "reason": pd.Series(dtype="str")})


def normalise_header(name: str) -> str:
    return name.strip().lstrip("\ufeff").strip().lower()


def too_large(display: str, max_bytes: int) -> InputRefused:
    return InputRefused(f"file is over the {max_bytes:,}-byte limit", file=display,
                        next_step="check the upstream export, or raise RECON_MAX_FILE_BYTES")


def read_bytes(path: Path, display: str, max_bytes: int) -> bytes:
    """The bytes of `path`; a file over `max_bytes` is refused without reading more than that."""
    try:
        with path.open("rb") as handle:
            # One byte past the limit at most: a file still being written (or a device posing as
            # a file) cannot make us hold more than max_bytes.
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise InputRefused(f"cannot read file: {exc.strerror or exc}", file=display,
                           next_step="check the file exists and is readable") from exc
    if len(data) > max_bytes:
        raise too_large(display, max_bytes)
    return data


def is_utf8_text(data: bytes) -> bool:
    """Non-ASCII bytes that decode as UTF-8: text a declared legacy encoding would garble."""
    if data.isascii():
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def transcode(data: bytes, encoding: str, display: str) -> bytes:
    """Bytes in a declared non-UTF-8 encoding -> UTF-8; undecodable bytes stay marked.

    Undecodable bytes become lone surrogates (encoded with surrogatepass), which the readers below
    treat as invalid UTF-8, so their rows are rejected. A file whose bytes are in fact UTF-8 with
    non-ASCII text is refused: decoded as, say, GB18030 it would turn into mojibake that no row
    rule notices.
    """
    if is_utf8_text(data):
        raise InputRefused(
                f"the control file declares encoding {encoding}, but the bytes are UTF-8 text",
                file=display, next_step="correct or remove encoding= in the control file")
    try:
        text = data.decode(encoding, errors="surrogateescape")
    except (UnicodeError, ValueError, LookupError) as exc:
        # Bytes no escape can carry (an ASCII byte a UTF-16 or UTF-32 decoder cannot place), or a
        # codec that takes no error handler (idna, punycode): the file is not in that encoding.
        raise InputRefused(f"the bytes cannot be decoded as {encoding} "
                           f"({_decode_problem(exc)})", file=display,
                           next_step="correct or remove encoding= in the control file") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.encode("utf-8", errors="surrogatepass")


def _decode_problem(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"{exc.reason} at byte {exc.start:,}"
    return str(exc).split("(", 1)[0].strip() or type(exc).__name__


def is_utf8(encoding: str) -> bool:
    """`utf-8`, `UTF8`, `utf-8-sig`...: read by the UTF-8 path, which strips a BOM itself."""
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


def refuse_binary(data: bytes, display: str) -> None:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputRefused("file is UTF-16 text, not UTF-8", file=display,
                           next_step="ask the sender for a UTF-8 CSV export")
    if b"\x00" in data[:65536]:
        raise InputRefused("file holds NUL bytes: it is binary, not CSV text", file=display,
                           next_step="ask the sender for the CSV export")


def read_csv(path: Path, display: str, *, encoding: str = "utf-8", max_bytes: int,
             max_field_chars: int, max_columns: int, block_bytes: int,
             data: bytes | None = None, columns: list[str] | None = None,
             cuttable: frozenset[str] = frozenset()) -> RawTable:
    """Split `path` (or `data`, its bytes) into records; InputRefused if it is unusable.

    Arrow parses `block_bytes` of the file at a time: a larger file's columns come back in
    several chunks, and so does the frame built on them.

    With `columns`, only those columns are kept: the others (the contract ignores extra
    columns) are dropped before any field rule, so nothing in them can reject a row. A field of a
    `cuttable` column (free text) over `max_field_chars` is cut to that length (card numbers
    masked first) and listed in `cut`; an over-long field of any other kept column rejects its
    row.
    """
    if data is None:
        data = read_bytes(path, display, max_bytes)
    elif len(data) > max_bytes:
        raise too_large(display, max_bytes)
    if not is_utf8(encoding):
        data = transcode(data, encoding, display)
    elif data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM):]
    refuse_binary(data, display)

    header = _read_header(data, display, max_columns)
    # pyarrow takes a quote left open at the end of the file, and NUL bytes, without a word:
    # such files go to the csv-module reader, which reports them.
    kept = [index for index, name in enumerate(header) if columns is None or name in columns]
    limits = _Limits(max_field_chars, frozenset(index for index in kept
                                                if header[index] in cuttable))
    if b"\x00" in data or (b'"' in data and data.count(b'"') % 2):
        table = _read_slow(data, display, header, kept, limits)
    else:
        try:
            table = _read_fast(data, display, header, kept, limits, block_bytes)
        except (pa.ArrowInvalid, UnicodeDecodeError, _NeedsSlowPath):
            table = _read_slow(data, display, header, kept, limits)
    table.header = header
    return table


@dataclass(frozen=True)
class _Limits:
    max_field_chars: int
    cuttable: frozenset[int]  # positions (in the header) of columns whose long fields are cut


def cut_text(value: str, max_chars: int) -> str:
    """A free-text value cut to `max_chars`, card numbers masked before the cut can split one."""
    return mask_cards_in_text(value)[:max_chars]


class _NeedsSlowPath(Exception):
    pass


def _read_header(data: bytes, display: str, max_columns: int) -> list[str]:
    if BLANK.fullmatch(data):
        raise InputRefused("file is empty: no header row", file=display,
                           next_step="ask the sender to resend the file")
    first_line_end = data.find(b"\n", 0, MAX_HEADER_BYTES + 1)
    if first_line_end < 0 and len(data) > MAX_HEADER_BYTES:
        raise InputRefused(f"header line is over {MAX_HEADER_BYTES:,} bytes long", file=display,
                           line=1, next_step="check the file is the CSV export")
    head = data if first_line_end < 0 else data[: first_line_end + 1]
    columns = head.count(b",") + 1
    if columns > max_columns:
        raise InputRefused(f"header has {columns:,} columns, more than the {max_columns:,} allowed",
                           file=display, line=1,
                           next_step="check the file is the right export, or raise "
                                     "RECON_MAX_COLUMNS")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise InputRefused("header row is not text in the file's encoding (UTF-8 unless the "
                           "control file declares another): the file is binary or in another "
                           "encoding", file=display, line=1,
                           next_step="ask the sender for the CSV export in UTF-8") from None
    try:
        row = next(csv.reader(io.StringIO(text, newline="")), [])
    except csv.Error as exc:
        raise InputRefused(f"header row cannot be parsed as CSV ({exc})", file=display, line=1,
                           next_step="check the file is the CSV export") from None
    names = [normalise_header(name) for name in row]
    if not any(names):
        raise InputRefused("line 1 holds no column names; the header row must come first",
                           file=display, line=1, next_step="ask the sender to fix the file")
    return names


def _arrow_options(n_columns: int, block_bytes: int) -> tuple:
    names = [f"c{i}" for i in range(n_columns)]
    read = pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=block_bytes,
                             encoding="utf-8")
    parse = pacsv.ParseOptions(newlines_in_values=True)
    # large_string: what pandas 3 keeps its `str` columns in, so to_pandas copies nothing.
    convert = pacsv.ConvertOptions(column_types={name: pa.large_string() for name in names},
                                   strings_can_be_null=False, quoted_strings_can_be_null=False)
    return read, parse, convert


def _arrow_table(data: bytes, n_columns: int, block_bytes: int,
                 kept: list[int] | None = None) -> pa.Table:
    """The file parsed by Arrow `block_bytes` at a time, each column in one chunk per block.

    A record longer than a block stops Arrow ("straddles two block boundaries"): the file is
    parsed again in larger blocks, so a small RECON_CSV_BLOCK_BYTES never sends a file with a
    long record to the slow reader.
    """
    while True:
        read, parse, convert = _arrow_options(n_columns, block_bytes)
        if kept is not None:  # ignored columns are never converted, so never checked
            convert.include_columns = [f"c{index}" for index in kept]
        try:
            return pacsv.read_csv(pa.py_buffer(data), read_options=read, parse_options=parse,
                                  convert_options=convert)
        except pa.ArrowInvalid as exc:
            if "straddl" not in str(exc) or block_bytes > len(data):
                raise
            block_bytes *= 16


def _read_fast(data: bytes, display: str, header: list[str], kept: list[int],
               limits: _Limits, block_bytes: int) -> RawTable:
    table = _arrow_table(data, len(header), block_bytes, kept)
    records = table.num_rows
    trimmed = []
    long_fields: list[tuple[int, np.ndarray, np.ndarray]] = []
    for index, column in zip(kept, table.columns):
        if records and pc.max(pc.utf8_length(column)).as_py() > limits.max_field_chars:
            if index not in limits.cuttable:
                raise _NeedsSlowPath
            lengths = np.asarray(pc.utf8_length(column))
            rows = np.flatnonzero(lengths > limits.max_field_chars)
            column = _cut_column(column, rows, limits.max_field_chars)
            long_fields.append((index, rows, lengths[rows]))
        trimmed.append(pc.utf8_trim_whitespace(column))
    # When the file has exactly one line per record (no blank lines, no line breaks inside
    # quoted fields, no bare CR), line numbers follow from the row index.
    lines_in_file = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if lines_in_file == records + 1 and (b"\r" not in data
                                         or data.count(b"\r") == data.count(b"\r\n")):
        lines = np.arange(2, records + 2, dtype=np.int64)
    else:
        lines = _record_start_lines(data)
        if len(lines) != records:
            raise _NeedsSlowPath
    frame = pa.table(trimmed, names=[f"c{index}" for index in kept]).to_pandas()
    frame.columns = [header[index] for index in kept]
    cut = pd.DataFrame({
        "line": np.concatenate([lines[rows] for _, rows, _ in long_fields]
                               or [np.zeros(0, dtype=np.int64)]),
        "column": np.concatenate([np.full(len(rows), header[index], dtype=object)
                                  for index, rows, _ in long_fields] or [np.zeros(0, object)]),
        "length": np.concatenate([lengths for _, _, lengths in long_fields]
                                 or [np.zeros(0, dtype=np.int64)]).astype(np.int64),
    }) if long_fields else empty_cuts()
    return RawTable(display, frame, lines, records, cut=cut)


def _cut_column(column, rows: np.ndarray, max_chars: int) -> pa.Array:
    """`column` with its values at `rows` cut (they are few: each is visited in Python)."""
    values = column.to_pylist()
    for row in rows:
        values[row] = cut_text(values[row], max_chars)
    return pa.array(values, type=pa.large_string())


def _text_stream(data: bytes) -> io.TextIOWrapper:
    # Decoded piece by piece: a whole-file str would cost up to 4 bytes per character.
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="surrogateescape",
                            newline="")


def _record_start_lines(data: bytes) -> np.ndarray:
    """Physical line where each data record starts, in a file whose records may span lines."""
    lines = _quoted_record_start_lines(data)
    return lines if lines is not None else _record_start_lines_by_csv_module(data)


QUOTE, COMMA, LINE_FEED, CARRIAGE_RETURN = ord('"'), ord(","), ord("\n"), ord("\r")


def _quoted_record_start_lines(data: bytes) -> np.ndarray | None:
    """`_record_start_lines` from the bytes, vectorised: a line feed ends a record when an even
    number of quotes come before it.

    That is how the csv module reads a file only when every quote that opens a quoted field
    starts a field (or doubles a quote inside one) and there is no bare CR; otherwise None.
    """
    if data.count(b"\r") != data.count(b"\r\n"):
        return None
    view = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(view == QUOTE)
    opening = quotes[0::2]
    before = view[opening[opening > 0] - 1]
    if not ((before == COMMA) | (before == LINE_FEED) | (before == QUOTE)).all():
        return None
    feeds = np.flatnonzero(view == LINE_FEED)
    record_ends = np.flatnonzero(np.searchsorted(quotes, feeds) % 2 == 0)  # positions in feeds
    starts = feeds[record_ends] + 1  # the record after feeds[i] starts on line i + 2
    # No record starts at the end of the file or on a blank line (a CR is always CRLF here).
    first = view[np.minimum(starts, len(view) - 1)]
    blank = (starts >= len(view)) | (first == LINE_FEED) | (first == CARRIAGE_RETURN)
    return (record_ends[~blank] + 2).astype(np.int64)


def _record_start_lines_by_csv_module(data: bytes) -> np.ndarray:
    _allow_fields_of(len(data))
    reader = csv.reader(_text_stream(data))
    starts = []
    previous_end = 0
    for row in reader:
        start = previous_end + 1
        previous_end = reader.line_num
        if row and start > 1:
            starts.append(start)
    return np.asarray(starts, dtype=np.int64)


_FIELD_LIMIT_LOCK = threading.Lock()


def _allow_fields_of(size: int) -> None:
    """Let the csv module read fields as long as `size`. The limit is process-wide and files are
    read on several threads: it is raised, never lowered."""
    with _FIELD_LIMIT_LOCK:
        csv.field_size_limit(max(csv.field_size_limit(), size, 131072))


def _read_slow(data: bytes, display: str, header: list[str], kept: list[int],
               limits: _Limits) -> RawTable:
    # No field-size limit in the csv module itself: it would stop inside a runaway quoted field
    # and resume mid-field, splitting one broken record into many bogus ones. The file is bounded
    # by max_file_bytes already; a field over max_field_chars rejects its row below.
    _allow_fields_of(len(data))
    reader = csv.reader(_text_stream(data))
    n_columns = len(header)
    good_rows: list[list[str]] = []
    good_lines: list[int] = []
    flawed_rows: list[list[str]] = []
    broken: list[dict] = []
    cut: list[tuple[int, str, int]] = []
    previous_end = 0
    records = 0
    first = True
    last_start, last_fields = 0, n_columns
    while True:
        start = previous_end + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            previous_end = reader.line_num
            records += 1
            broken.append(_broken(display, start, "", f"record cannot be parsed as CSV: {exc}"))
            continue
        previous_end = reader.line_num
        if first:
            first = False
            continue
        if not row:
            continue  # blank line
        records += 1
        last_start, last_fields = start, len(row)
        if len(row) != n_columns:
            spans = f" (the record spans lines {start}-{previous_end}: an unbalanced quote?)" \
                if previous_end > start else ""
            broken.append(_broken(display, start, "",
                                  f"expected {n_columns} fields as in the header, found "
                                  f"{len(row)}{spans}", ",".join(row)))
            continue
        row = [row[index] for index in kept]
        for position, index in enumerate(kept):
            if index in limits.cuttable and len(row[position]) > limits.max_field_chars:
                cut.append((start, header[index], len(row[position])))
                row[position] = cut_text(row[position], limits.max_field_chars)
        bad_column = _first_bad_field(row, limits.max_field_chars)
        if bad_column is not None:
            position, reason = bad_column
            broken.append(_broken(display, start, header[kept[position]], reason, row[position]))
            flawed_rows.append([value.encode("utf-8", errors="replace").decode("utf-8")
                                for value in row])
            continue
        good_rows.append(row)
        good_lines.append(start)
    if last_start:
        _refuse_truncated(data, display, last_start, last_fields, n_columns)
    broken_frame = pd.DataFrame(broken) if broken else empty_rejects()
    names = [header[index] for index in kept]
    cut_frame = pd.DataFrame(cut, columns=["line", "column", "length"]).astype(
        {"line": "int64", "column": "str", "length": "int64"}) if cut else empty_cuts()
    return RawTable(display, _string_frame(good_rows, names),
                    np.asarray(good_lines, dtype=np.int64), records, broken_frame,
                    _string_frame(flawed_rows, names), cut=cut_frame)


def _string_frame(rows: list[list[str]], header: list[str]) -> pd.DataFrame:
    n_columns = len(header)
    frame = pd.DataFrame(rows, columns=range(n_columns), dtype="str") if rows else \
        pd.DataFrame({i: pd.Series(dtype="str") for i in range(n_columns)})
    frame.columns = header
    return _strip(frame)


LINE_END = re.compile(rb"\r\n|\r|\n")


def _refuse_truncated(data: bytes, display: str, last_start: int, last_fields: int,
                      n_columns: int) -> None:
    """Refuse a file cut off inside its last record: the rows after the cut are lost unseen.

    Two signs: the last record opens a quote that never closes (the csv module would quietly
    end the field at the end of the file), or it is short of fields with no line end after it.
    """
    if data.count(b'"') % 2:
        tail = data[_line_offset(data, last_start):]
        try:
            for _ in csv.reader(_text_stream(tail), strict=True):
                pass
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise InputRefused(
                    "a quoted field opened on this line is never closed before the end of the "
                    "file: the file looks truncated", file=display, line=last_start,
                    next_step=RESEND) from None
    if last_fields < n_columns and not data.endswith((b"\n", b"\r")):
        raise InputRefused(
            f"the last record has {last_fields} of the header's {n_columns} fields and no line "
            f"end: the file looks truncated", file=display, line=last_start, next_step=RESEND)


def _line_offset(data: bytes, line: int) -> int:
    """Byte offset where physical `line` (1-based, as the csv module counts) starts."""
    if line <= 1:
        return 0
    for number, match in enumerate(LINE_END.finditer(data), start=2):
        if number == line:
            return match.end()
    return len(data)


def _first_bad_field(row: list[str], max_field_chars: int):
    for index, value in enumerate(row):
        if len(value) > max_field_chars:
            return index, f"field is {len(value):,} characters long, over the {max_field_chars:,} limit"
        if "\x00" in value:
            return index, "field holds a NUL byte (binary data)"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return index, BAD_BYTES_REASON
    return None


def _broken(display: str, line: int, column: str, reason: str, value: str = "") -> dict:
    # Masked before it is cut: a card number cut in two would pass for two harmless digit runs.
    value = (value if column in ID_COLUMNS else mask_cards_in_text(value))[:200]
    return {"file": display, "line": line, "column": column,
            "value": value.encode("utf-8", errors="replace").decode("utf-8").replace("\x00", ""),
            "reason": reason}


def _strip(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.apply(lambda column: column.str.strip()) if len(frame.columns) else frame
