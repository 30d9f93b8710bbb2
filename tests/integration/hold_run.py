"""Test helper: run the pipeline for one date and stop inside its write transaction.

    python -m tests.integration.hold_run DATE INBOX OUT DB_URL READY_FILE [RELEASE_FILE]

Every row of the date has been written (not committed) when the `before_commit` hook writes
READY_FILE; the run then waits until RELEASE_FILE exists (or forever without one), so a test can
SIGKILL it mid-write or race a second run against it. With HOLD_AT=write in the environment the
run stops earlier: holding its date lock, its inputs classified, before the write transaction
begins.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path

from recon import pipeline
from recon.config import Settings
from recon.db.write import ResultsWrite
from recon.errors import ReconError


def main(argv: list[str]) -> int:
    day, inbox, out, url, ready = argv[:5]
    release = Path(argv[5]) if len(argv) > 5 else None
    settings = Settings(inbox=Path(inbox), out=Path(out), database_url=url)

    def hold() -> None:
        Path(ready).write_text("holding\n")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if release is not None and release.exists():
                return
            time.sleep(0.05)
        raise SystemExit("hold_run: never released")

    if os.environ.get("HOLD_AT") == "write":
        begin = ResultsWrite.__enter__

        def hold_then_begin(write):
            hold()
            return begin(write)

        ResultsWrite.__enter__ = hold_then_begin
    try:
        report = pipeline.run(dt.date.fromisoformat(day), settings,
                              before_commit=None if os.environ.get("HOLD_AT") == "write" else hold)
    except ReconError as error:  # as the CLI shows it
        print(f"recon {day}: {error}", file=sys.stderr)
        return error.exit_code
    print(report.run_id)
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
