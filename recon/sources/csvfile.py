"""Read one contract CSV into a frame of trimmed strings with the physical line of every record.

No value is interpreted here (validate.py does that); this module only answers "what rows are in
this file, on which lines, under which normalised column names", and which records could not even
be split into fields. Clean files take the multi-threaded pyarrow reader; a file pyarrow will not
take (ragged rows, bad bytes, huge fields) is re-read with the standard library's csv module,
which is slower but finds every broken record with its line number.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from recon.errors import InputRefused

UTF8_BOM = codecs.BOM_UTF8


@dataclass
class RawTable:
    """The records of one CSV file: every value a trimmed string, every column name normalised."""

    file: str
    frame: pd.DataFrame  # normalised column names; one row per well-formed record
    lines: np.ndarray  # physical line where each row of `frame` starts (header is line 1)
    records: int  # data records in the file, well-formed or not
    broken: pd.DataFrame = field(default_factory=lambda: empty_rejects())  # unsplittable records


def empty_rejects() -> pd.DataFrame:
    return pd.DataFrame({"file": pd.Series(dtype="str"), "line": pd.Series(dtype="Int64"),
                         "column": pd.Series(dtype="str"), "value": pd.Series(dtype="str"),
                         "reason": pd.Series(dtype="str")})


def normalise_header(name: str) -> str:
    return name.strip().lstrip("\ufeff").strip().lower()


def read_bytes(path: Path, display: str, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputRefused(
                f"file is {size:,} bytes, above the {max_bytes:,}-byte limit",
                file=display, next_step="check the upstream export or raise RECON_MAX_FILE_BYTES")
        return path.read_bytes()
    except OSError as exc:
        raise InputRefused(f"cannot read file: {exc.strerror or exc}", file=display,
                           next_step="check the file exists and is readable") from exc


def decode(data: bytes, encoding: str, display: str) -> str:
    """Text of `data`; undecodable bytes survive as lone surrogates so their rows can be rejected."""
    if b"\x00" in data[:65536]:
        raise InputRefused("file holds NUL bytes: it is binary, not CSV text", file=display,
                           next_step="ask the sender for the CSV export")
    text = data.decode(encoding, errors="surrogateescape")
    return text[1:] if text.startswith("\ufeff") else text


def read_csv(path: Path, display: str, *, encoding: str = "utf-8", max_bytes: int,
             max_field_chars: int, max_columns: int, data: bytes | None = None) -> RawTable:
    """Split `path` into records. Raises InputRefused when the file has no usable header."""
    if data is None:
        data = read_bytes(path, display, max_bytes)
    if codecs.lookup(encoding).name != "utf-8":
        # Transcode once so both readers below see UTF-8; bad bytes stay marked as surrogates.
        text = decode(data, encoding, display)
        data = text.encode("utf-8", errors="surrogatepass")
        encoding = "utf-8"
    elif data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM):]
    if b"\x00" in data[:65536]:
        raise InputRefused("file holds NUL bytes: it is binary, not CSV text", file=display,
                           next_step="ask the sender for the CSV export")

    header = _read_header(data, display, max_columns)
    try:
        return _read_fast(data, display, header, max_field_chars)
    except (pa.ArrowInvalid, UnicodeDecodeError, _NeedsSlowPath):
        return _read_slow(data, display, header, max_field_chars)


class _NeedsSlowPath(Exception):
    pass


def _read_header(data: bytes, display: str, max_columns: int) -> list[str]:
    first_line_end = data.find(b"\n")
    head = data if first_line_end < 0 else data[: first_line_end + 1]
    if len(head) > 1_000_000:
        raise InputRefused("header line is over 1 MB long", file=display, line=1,
                           next_step="check the file is a CSV export")
    text = head.decode("utf-8", errors="replace")
    try:
        row = next(csv.reader(io.StringIO(text)), [])
    except csv.Error as exc:
        raise InputRefused(f"header cannot be parsed: {exc}", file=display, line=1) from exc
    names = [normalise_header(name) for name in row]
    if not any(names):
        raise InputRefused("file is empty: no header row", file=display, line=1,
                           next_step="ask the sender to resend the file")
    if len(names) > max_columns:
        raise InputRefused(f"header has {len(names):,} columns, more than the {max_columns} allowed",
                           file=display, line=1, next_step="check the file is the right export")
    return names


def _arrow_options(n_columns: int) -> tuple:
    names = [f"c{i}" for i in range(n_columns)]
    read = pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=16 << 20,
                             encoding="utf-8")
    parse = pacsv.ParseOptions(newlines_in_values=True)
    convert = pacsv.ConvertOptions(column_types={name: pa.string() for name in names},
                                   strings_can_be_null=False, quoted_strings_can_be_null=False)
    return read, parse, convert


def _read_fast(data: bytes, display: str, header: list[str], max_field_chars: int) -> RawTable:
    read, parse, convert = _arrow_options(len(header))
    table = pacsv.read_csv(pa.py_buffer(data), read_options=read, parse_options=parse,
                           convert_options=convert)
    frame = table.to_pandas()
    records = len(frame)
    for name in frame.columns:
        lengths = frame[name].str.len()
        if records and int(lengths.max()) > max_field_chars:
            raise _NeedsSlowPath
    # Every record on its own line, no blank lines: line numbers follow from the row index.
    newline_count = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if newline_count == records + 1 and not any(
        frame[name].str.contains("\n|\r", regex=True).any() for name in frame.columns
    ):
        lines = np.arange(2, records + 2, dtype=np.int64)
    else:
        lines = _record_start_lines(data)
        if len(lines) != records:
            raise _NeedsSlowPath
    frame.columns = header
    return RawTable(display, _strip(frame), lines, records)


def _record_start_lines(data: bytes) -> np.ndarray:
    reader = csv.reader(io.StringIO(data.decode("utf-8", errors="surrogateescape"), newline=""))
    starts = []
    previous_end = 0
    for row in reader:
        start = previous_end + 1
        previous_end = reader.line_num
        if row and start > 1:
            starts.append(start)
    return np.asarray(starts, dtype=np.int64)


def _read_slow(data: bytes, display: str, header: list[str], max_field_chars: int) -> RawTable:
    text = data.decode("utf-8", errors="surrogateescape")
    csv.field_size_limit(max(max_field_chars * 4, 131072))
    reader = csv.reader(io.StringIO(text, newline=""))
    n_columns = len(header)
    good_rows: list[list[str]] = []
    good_lines: list[int] = []
    broken: list[dict] = []
    previous_end = 0
    records = 0
    first = True
    while True:
        start = previous_end + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            previous_end = reader.line_num
            records += 1
            broken.append(_broken(display, start, "", f"record cannot be parsed: {exc}"))
            continue
        previous_end = reader.line_num
        if first:
            first = False
            continue
        if not row:
            continue  # blank line
        records += 1
        if len(row) != n_columns:
            broken.append(_broken(display, start, "",
                                  f"expected {n_columns} fields as in the header, found {len(row)}",
                                  ",".join(row)[:200]))
            continue
        bad_column = _first_bad_field(row, header, max_field_chars)
        if bad_column is not None:
            index, reason = bad_column
            broken.append(_broken(display, start, header[index], reason, row[index][:200]))
            continue
        good_rows.append(row)
        good_lines.append(start)
    frame = pd.DataFrame(good_rows, columns=range(n_columns), dtype="str") if good_rows else \
        pd.DataFrame({i: pd.Series(dtype="str") for i in range(n_columns)})
    frame.columns = header
    broken_frame = pd.DataFrame(broken) if broken else empty_rejects()
    return RawTable(display, _strip(frame), np.asarray(good_lines, dtype=np.int64), records,
                    broken_frame)


def _first_bad_field(row: list[str], header: list[str], max_field_chars: int):
    for index, value in enumerate(row):
        if len(value) > max_field_chars:
            return index, f"field is {len(value):,} characters long, over the {max_field_chars:,} limit"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return index, "bytes are not valid in the file's encoding"
    return None


def _broken(display: str, line: int, column: str, reason: str, value: str = "") -> dict:
    return {"file": display, "line": line, "column": column,
            "value": value.encode("utf-8", errors="replace").decode("utf-8"), "reason": reason}


def _strip(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.apply(lambda column: column.str.strip()) if len(frame.columns) else frame
