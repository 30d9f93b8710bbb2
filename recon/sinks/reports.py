"""The CSV reports of CONTRACT section 4.1-4.3, written atomically into `OUT/<D>/`.

Files are first written into a private staging folder and moved into place only after the
database transaction has committed, so a failed run leaves the previous reports of D untouched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

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
        safe.to_csv(path, index=False, encoding="utf-8-sig" if bom else "utf-8",
                    lineterminator="\n")
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
