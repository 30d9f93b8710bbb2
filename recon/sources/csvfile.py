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

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from recon.errors import InputRefused
from recon.sources.csvfallback import read_slow, record_start_lines_by_csv_module
from recon.sources.filebytes import (UTF8_BOM, is_utf8, read_bytes, refuse_binary, too_large,
                                     transcode)
from recon.sources.rawtable import FieldLimits, RawTable, cut_text, empty_cuts

MAX_HEADER_BYTES = 1_000_000
BLANK = re.compile(rb"[ \t\r\n]*")  # fullmatch: no copy of the file, unlike bytes.strip


def normalise_header(name: str) -> str:
    return name.strip().lstrip("\ufeff").strip().lower()


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
    limits = FieldLimits(max_field_chars, frozenset(index for index in kept
                                                if header[index] in cuttable))
    if b"\x00" in data or (b'"' in data and data.count(b'"') % 2):
        table = read_slow(data, display, header, kept, limits)
    else:
        try:
            table = _read_fast(data, display, header, kept, limits, block_bytes)
        except (pa.ArrowInvalid, UnicodeDecodeError, _NeedsSlowPath):
            table = read_slow(data, display, header, kept, limits)
    table.header = header
    return table


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
               limits: FieldLimits, block_bytes: int) -> RawTable:
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


def _record_start_lines(data: bytes) -> np.ndarray:
    """Physical line where each data record starts, in a file whose records may span lines."""
    lines = _quoted_record_start_lines(data)
    return lines if lines is not None else record_start_lines_by_csv_module(data)


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
