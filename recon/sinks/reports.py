"""The CSV reports of CONTRACT section 4.1-4.3, written atomically into `OUT/<D>/`.

Files are first written into a private staging folder and moved into place only after the
database transaction has committed, so a failed run leaves the previous reports of D untouched.
"""

from __future__ import annotations

import codecs
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recon.contract import EXCEPTIONS_COLUMNS, REJECTS_COLUMNS, SETTLEMENT_EXCEPTIONS_COLUMNS

FILE_MODE = 0o640
DIR_MODE = 0o750

# Columns that carry text from outside (a gateway's message, a rejected cell): card numbers in
# them are masked. Ids are never rewritten.
FREE_TEXT = ["response_msg", "card_no_masked", "detail", "value", "reason", "evidence"]


class StagedReports:
    """Report files written to a staging folder, published into OUT/<D>/ by `publish`."""

    def __init__(self, out_dir: Path, business_date: str) -> None:
        self.target = out_dir / business_date
        out_dir.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        self.staging = Path(tempfile.mkdtemp(prefix=f".{business_date}.", dir=out_dir))
        os.chmod(self.staging, DIR_MODE)
        self.files: list[str] = []

    def write(self, name: str, frame: pd.DataFrame, columns: list[str], *, bom: bool = False) -> None:
        from recon.sinks.safety import safe_frame

        safe = safe_frame(frame.reindex(columns=columns), FREE_TEXT)
        path = self.staging / name
        write_csv(path, safe, bom=bom)
        os.chmod(path, FILE_MODE)
        self.files.append(name)

    def publish(self) -> Path:
        self.target.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        os.chmod(self.target, DIR_MODE)
        for name in self.files:
            os.replace(self.staging / name, self.target / name)
        self.discard()
        return self.target

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def csv_field(values: pa.Array) -> pa.Array:
    """RFC 4180 minimal quoting: a value with a comma, quote or line break is quoted."""
    values = pc.fill_null(values.cast(pa.large_string()), "")
    needs_quotes = pc.match_substring_regex(values, '[,"\\r\\n]')
    if not pc.any(needs_quotes).as_py():
        return values
    quote = pa.scalar('"', pa.large_string())
    quoted = pc.binary_join_element_wise(quote, pc.replace_substring(values, '"', '""'), quote,
                                         pa.scalar("", pa.large_string()))
    return pc.if_else(needs_quotes, quoted, values)


def write_csv(path: Path, frame: pd.DataFrame, *, bom: bool = False) -> None:
    """Write text columns as CSV (header, LF line ends), all rows joined in Arrow.

    pandas' to_csv formats row by row in Python, seconds for a few hundred thousand rows; here
    every field is quoted where needed and joined column-wise, and the joined text's byte buffer
    is the file.
    """
    with open(path, "wb") as handle:
        if bom:
            handle.write(codecs.BOM_UTF8)
        handle.write((",".join(csv_field(pa.array(frame.columns.astype(str).tolist())).to_pylist())
                      + "\n").encode("utf-8"))
        if frame.empty:
            return
        fields = [csv_field(pa.array(frame[column])) for column in frame.columns]
        rows = pc.binary_join_element_wise(*fields, pa.scalar(",", pa.large_string()))
        lines = pc.binary_join_element_wise(rows, pa.scalar("\n", pa.large_string()),
                                            pa.scalar("", pa.large_string()))
        # Columns read from large files come in chunks (one per Arrow read block): each
        # chunk's text is written as it is, without first copying them all into one.
        for chunk in lines.chunks if isinstance(lines, pa.ChunkedArray) else [lines]:
            if len(chunk):
                offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int64)[
                    chunk.offset: chunk.offset + len(chunk) + 1]
                handle.write(memoryview(chunk.buffers()[2])[offsets[0]:offsets[-1]])


def stage_reports(out_dir: Path, business_date: str, exceptions: pd.DataFrame,
                  settlement_exceptions: pd.DataFrame, rejects: pd.DataFrame) -> StagedReports:
    staged = StagedReports(out_dir, business_date)
    try:
        staged.write("exceptions.csv", exceptions, EXCEPTIONS_COLUMNS, bom=True)
        staged.write("settlement_exceptions.csv", settlement_exceptions,
                     SETTLEMENT_EXCEPTIONS_COLUMNS)
        staged.write("rejects.csv", rejects, REJECTS_COLUMNS)
    except BaseException:
        staged.discard()
        raise
    return staged
