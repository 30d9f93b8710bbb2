"""The fallback CSV reader: the standard library's csv module, for files pyarrow will not take.

Slower than csvfile.py's Arrow path but it finds every broken record (ragged rows, bad bytes,
huge fields, an unbalanced quote) with the physical line it starts on, and refuses a file cut off
inside its last record.
"""

from __future__ import annotations

import csv
import io
import re
import threading

import numpy as np
import pandas as pd

from recon.errors import InputRefused
from recon.protect import mask_unless_id
from recon.sources.rawtable import (BAD_BYTES_REASON, FieldLimits, RawTable, cut_text, empty_cuts,
                                    empty_rejects)

RESEND = "ask the sender to resend the complete file, then rerun the date"


def _text_stream(data: bytes) -> io.TextIOWrapper:
    # Decoded piece by piece: a whole-file str would cost up to 4 bytes per character.
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="surrogateescape",
                            newline="")


def record_start_lines_by_csv_module(data: bytes) -> np.ndarray:
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


def read_slow(data: bytes, display: str, header: list[str], kept: list[int],
               limits: FieldLimits) -> RawTable:
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
    value = mask_unless_id(column, value)[:200]
    return {"file": display, "line": line, "column": column,
            "value": value.encode("utf-8", errors="replace").decode("utf-8").replace("\x00", ""),
            "reason": reason}


def _strip(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.apply(lambda column: column.str.strip()) if len(frame.columns) else frame
