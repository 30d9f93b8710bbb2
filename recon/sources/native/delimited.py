"""Delimited text (any delimiter, quoting or none, header by name or columns by position, header
on line N, comment / summary / trailer lines, a field prefix such as WeChat's backtick)."""

from __future__ import annotations

import codecs
import csv

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from recon.profiles import Profile
from recon.sources.filebytes import is_utf8_text, refuse_binary
from recon.sources.rawtable import BAD_BYTES_REASON
from recon.sources.native.text import Lines, NativeFileError, decode_bom, sort_lines, take_lines


def to_utf8(data: bytes, encoding: str, display: str) -> bytes:
    """Bytes in the profile's encoding -> UTF-8; undecodable bytes stay marked as invalid UTF-8
    (their records are rejected)."""
    if codecs.lookup(encoding).name == "utf-8":
        return decode_bom(data, "utf-8")
    if is_utf8_text(data):
        raise NativeFileError(f"{display}: the profile says encoding {encoding}, but the "
                                  f"bytes are UTF-8 text")
    text = data.decode(encoding, errors="surrogateescape").removeprefix("\ufeff")
    return text.encode("utf-8", errors="surrogatepass")


class Fields:
    """The split records of a text file: column i's trimmed values, by position or header name."""

    def __init__(self, columns: list[pd.Series], names: list[str], lines: np.ndarray,
                 records: int, broken: list[dict], header_line: int,
                 other_text: str = "") -> None:
        self.columns = columns
        self.names = names
        self.lines = lines
        self.records = records
        self.broken = broken
        self.header_line = header_line
        self.other_text = other_text  # summary, trailer and skipped lines

    def find(self, source, column: str, display: str) -> pd.Series:
        if isinstance(source, int):
            if source > len(self.columns):
                raise NativeFileError(f"{display}: columns.{column} = {source}, but records have "
                                      f"{len(self.columns)} fields")
            return self.columns[source - 1]
        wanted = source.strip().lower()
        if wanted not in self.names:
            shown = ", ".join(name for name in self.names if name)
            raise NativeFileError(f"{display}, line {self.header_line}: no column {source!r} "
                                  f"(columns.{column}) in the header; it has: {shown}")
        return self.columns[self.names.index(wanted)]


def read_delimited(data: bytes, profile: Profile, display: str, max_field_chars: int,
                   block_bytes: int) -> Fields:
    layout = profile.layout
    data = to_utf8(data, profile.encoding, display)
    refuse_binary(data, display)
    lines = sort_lines(data, layout, has_header=layout.header_line > 0, encoding="utf-8",
                       display=display)
    prefix = layout.field_prefix
    names: list[str] = []
    if lines.header >= 0:
        names = [_clean(name, prefix).lower()
                 for name in _split(lines.text(lines.header, "utf-8"), layout)]
        if layout.trailing_delimiter and names and not names[-1]:
            names = names[:-1]
        n_fields = len(names)
    elif len(lines.data_rows):
        n_fields = len(_split(lines.text(lines.data_rows[0], "utf-8"), layout))
        if layout.trailing_delimiter:
            n_fields -= 1
    else:
        n_fields = 0
    if lines.header >= 0 and not any(names):
        raise NativeFileError(f"{display}, line {layout.header_line}: the header line holds no "
                              f"column names")
    expected = n_fields + (1 if layout.trailing_delimiter else 0)
    try:
        columns = _read_fast(take_lines(lines), layout, expected, len(lines.data_rows),
                             block_bytes)
        numbers, broken = lines.numbers(), []
        if any((pc.max(pc.utf8_length(column)).as_py() or 0) > max_field_chars
               for column in columns if len(column)):
            raise _Slow
    except (pa.ArrowInvalid, _Slow):
        columns, numbers, broken = _read_slow(lines, layout, expected, display, max_field_chars)
    if layout.trailing_delimiter:
        columns = columns[:-1]
    cleaned = [_clean_column(column, prefix) for column in columns]
    return Fields(cleaned, names, numbers, len(lines.data_rows), broken, layout.header_line,
                  lines.other_text)


class _Slow(Exception):
    pass


def _split(line: str, layout) -> list[str]:
    return next(csv.reader([line], **_dialect(layout)), [])


def _dialect(layout) -> dict:
    if layout.quote:
        return {"delimiter": layout.delimiter, "quotechar": layout.quote, "doublequote": True}
    return {"delimiter": layout.delimiter, "quoting": csv.QUOTE_NONE}


def _clean(value: str, prefix: str) -> str:
    value = value.strip().lstrip("\ufeff").strip()
    if prefix and value.startswith(prefix):
        value = value[len(prefix):].strip()
    return value


def _clean_column(column: pa.Array | pd.Series, prefix: str) -> pd.Series:
    array = pa.array(column) if isinstance(column, pd.Series) else column
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array = pc.utf8_trim_whitespace(array.cast(pa.large_string()))
    if prefix:
        escaped = "".join("\\" + char if not char.isalnum() else char for char in prefix)
        array = pc.utf8_trim_whitespace(pc.replace_substring_regex(array, "^" + escaped, "",
                                                                   max_replacements=1))
    return pd.Series(array.to_pandas().array, dtype="str") if len(array) else \
        pd.Series([], dtype="str")


def _read_fast(data: bytes, layout, n_fields: int, n_rows: int,
               block_bytes: int) -> list[pa.Array]:
    if n_rows == 0 or n_fields == 0:
        return [pa.array([], type=pa.large_string()) for _ in range(n_fields)]
    names = [f"c{i}" for i in range(n_fields)]
    table = pacsv.read_csv(
        pa.py_buffer(data),
        # RECON_CSV_BLOCK_BYTES; a line longer than a block is ArrowInvalid: the slow reader.
        read_options=pacsv.ReadOptions(column_names=names, block_size=block_bytes),
        parse_options=pacsv.ParseOptions(delimiter=layout.delimiter,
                                         quote_char=layout.quote or False,
                                         newlines_in_values=False, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.large_string() for name in names},
            strings_can_be_null=False, quoted_strings_can_be_null=False))
    if table.num_rows != n_rows:
        raise _Slow
    if layout.trailing_delimiter and pc.max(pc.utf8_length(table.column(n_fields - 1))).as_py():
        raise _Slow  # some record has a field past the trailing delimiter: find which
    return [column.combine_chunks() for column in table.columns]


def _read_slow(lines: Lines, layout, n_fields: int, display: str, max_field_chars: int):
    """Record by record, so every broken one is named with its line."""
    good: list[list[str]] = []
    numbers: list[int] = []
    broken: list[dict] = []
    dialect = _dialect(layout)
    data = lines.data
    for row in lines.data_rows.tolist():
        number = row + 1
        text = data[lines.starts[row]:lines.ends[row]].decode("utf-8", errors="surrogateescape")
        try:
            fields = next(csv.reader([text], strict=True, **dialect), [])
        except csv.Error as exc:
            broken.append(_broken(display, number, "", f"record cannot be split: {exc}", text))
            continue
        if layout.trailing_delimiter and len(fields) == n_fields and fields[-1].strip():
            broken.append(_broken(display, number, "", f"expected {n_fields - 1} fields and a "
                                  f"trailing delimiter, found {len(fields)} fields", text))
            continue
        if len(fields) != n_fields:
            wanted = n_fields - (1 if layout.trailing_delimiter else 0)
            found = len(fields) - (1 if layout.trailing_delimiter else 0)
            broken.append(_broken(display, number, "", f"expected {wanted} fields, found {found}",
                                  text))
            continue
        bad = next((i for i, value in enumerate(fields) if _bad(value, max_field_chars)), None)
        if bad is not None:
            reason = BAD_BYTES_REASON if _has_surrogate(fields[bad]) else \
                f"field is over the {max_field_chars:,}-character limit"
            broken.append(_broken(display, number, f"field {bad + 1}", reason, fields[bad]))
            continue
        good.append(fields)
        numbers.append(number)
    columns = [pa.array([fields[i] for fields in good], type=pa.large_string())
               for i in range(n_fields)]
    return columns, np.asarray(numbers, dtype=np.int64), broken


def _has_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _bad(value: str, max_field_chars: int) -> bool:
    return len(value) > max_field_chars or _has_surrogate(value)


def _broken(display: str, line: int, column: str, reason: str, value: str) -> dict:
    shown = value.encode("utf-8", errors="replace").decode("utf-8")[:200]
    return {"file": display, "line": line, "column": column, "value": shown, "reason": reason}
