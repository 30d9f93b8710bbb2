"""Test helper: `recon` itself, with faults injected at named points of chosen dates' runs.

    RECON_TEST_FAULTS="D1=after_commit:kill;D2=before_load:hold" RECON_TEST_FAULT_DIR=DIR \
        python tests/integration/faulty_run.py run --date D1 ...

A point is `before_load` (the date is locked, nothing read yet), `before_commit` (every row
written, not committed) or `after_commit` (committed, reports not yet published). An action is
`kill` (SIGKILL itself there), `raise` (an OSError there) or `hold` (write DIR/<D>.ready holding
its pid, then wait until DIR/<D>.release exists, so that a test can signal or kill it there).

The patch is made at import, outside the main guard: `--jobs` workers are spawned and import
this file as their main module, so they carry the faults too.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import time
from pathlib import Path

from recon import cli, pipeline

FAULTS = dict(item.split("=", 1) for item in
              filter(None, os.environ.get("RECON_TEST_FAULTS", "").split(";")))
FOLDER = Path(os.environ.get("RECON_TEST_FAULT_DIR", "."))


def _fault(day: str, action: str, *_args) -> None:
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "raise":
        raise OSError(5, "Input/output error (injected)")
    if action == "hold":
        (FOLDER / f"{day}.ready").write_text(f"{os.getpid()}\n")
        release = FOLDER / f"{day}.release"
        deadline = time.monotonic() + 300
        while not release.exists():
            if time.monotonic() > deadline:
                raise SystemExit("faulty_run: never released")
            time.sleep(0.02)


if FAULTS:
    real_run, real_load_day = pipeline.run, pipeline.load_day

    @functools.wraps(real_run)
    def faulty_run(business_date, settings, **hooks):
        day = business_date.isoformat()
        if day in FAULTS:
            point, action = FAULTS[day].split(":")
            if point in ("before_commit", "after_commit"):
                hooks[point] = functools.partial(_fault, day, action)
        return real_run(business_date, settings, **hooks)

    @functools.wraps(real_load_day)
    def faulty_load_day(business_date, *args):
        day = business_date.isoformat()
        if FAULTS.get(day, "").startswith("before_load:"):
            _fault(day, FAULTS[day].split(":")[1])
        return real_load_day(business_date, *args)

    pipeline.run, pipeline.load_day = faulty_run, faulty_load_day


if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:], prog_name="recon"))
