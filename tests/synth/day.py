"""``generate_day``: one synthetic inbox day with its ground truth (see tests/synth/__init__.py)."""

from __future__ import annotations

import datetime as dt
import pathlib
import time

import numpy as np

from tests.synth.files import DayFiles
from tests.synth.oracle import evaluate
from tests.synth.plan import Day
from tests.synth.vocabulary import CAUSES, GATEWAYS, SCENARIOS, STATUSES, SynthSummary


def generate_day(business_date: dt.date, installments: int, out_dir: pathlib.Path, seed: int = 0,
                 bad_rows: bool = True, missing_gateway: str | None = None,
                 format_variations: bool = True) -> SynthSummary:
    """Write ``out_dir/<D>/`` (inputs + ``_truth*.csv``) and return counts.

    bad_rows: plant a few rows per file that break one rule each (about one in 5,000), and write
        about one valid row in 1,000 twice, exactly (at least one per file), which must collapse;
        they never touch a truth installment.
    missing_gateway: that gateway's settlement .csv/.ctl are not written; the truth becomes
        ``pending / settlement_pending`` where its deciding attempt is on that gateway.
    format_variations: the mess real files have, within the contract's tolerances: UNIONPAY file
        in gb18030 with codes padded with spaces; CNAPS_DD file with a UTF-8 BOM, CRLF, another
        column order, ISO 8601 txn_time with offset, codes in lower case and statuses capitalised;
        LIANLIAN file with a UTF-8 BOM, every field quoted, the header in upper case with an extra
        column, quoted messages spanning two lines, padded and lower-case codes, and (with
        bad_rows) no bad rows, only repeated ones; installments.csv and bindings.csv with a UTF-8
        BOM, bindings.csv in another column order, an extra column in instructions.csv, booleans
        in mixed case. Messages are Chinese with commas and quotes in every settlement file.
    """
    t_start = time.perf_counter()
    if installments < 1:
        raise ValueError("installments must be >= 1")
    if missing_gateway is not None and missing_gateway not in GATEWAYS:
        raise ValueError(f"missing_gateway must be one of {GATEWAYS}")
    day_dir = pathlib.Path(out_dir) / business_date.isoformat()
    day_dir.mkdir(parents=True, exist_ok=True)
    for stale in day_dir.glob("settlement_*"):
        stale.unlink()
    missing = GATEWAYS.index(missing_gateway) if missing_gateway else None

    g = Day(business_date, installments, seed)
    g.plan()
    g.attempts()
    g.bindings()
    g.settlements()
    status, cause, settled = evaluate(g, missing)
    if missing is None:
        _check_intended(g, status, cause)

    files = DayFiles(g, day_dir, seed, bad_rows, format_variations)
    files.installments()
    files.bindings()
    files.instructions()
    sx_rows, n_orphans, n_dupdebits = files.settlements(missing)
    files.incidents()
    files.truth(status, cause, settled, sx_rows)

    st_counts = np.bincount(status, minlength=len(STATUSES))
    c_counts = np.bincount(cause, minlength=len(CAUSES))
    return SynthSummary(
        business_date=business_date, day_dir=day_dir, installments=installments, rows=files.rows,
        bad_rows=files.bad_counts, duplicate_rows=files.dup_counts,
        status_counts={s: int(c) for s, c in zip(STATUSES, st_counts) if c},
        root_cause_counts={s: int(c) for s, c in zip(CAUSES, c_counts) if c},
        scenario_counts={s[0]: int(c) for s, c in zip(SCENARIOS, np.bincount(g.scen, minlength=len(SCENARIOS)))},
        orphan_settlements=n_orphans, duplicate_debits=n_dupdebits, missing_gateway=missing_gateway,
        seconds=time.perf_counter() - t_start)


def _check_intended(g: Day, status: np.ndarray, cause: np.ndarray) -> None:
    """The generator's own check: every installment reaches the outcome its scenario intends."""
    bad = np.flatnonzero((status != g.want_status) | (cause != g.want_cause))
    if len(bad):
        i = int(bad[0])
        raise AssertionError(
            f"synth bug: {len(bad)} installments do not reach their intended outcome, e.g. scenario "
            f"{SCENARIOS[g.scen[i]][0]}: wanted {STATUSES[g.want_status[i]]}/{CAUSES[g.want_cause[i]]}, "
            f"got {STATUSES[status[i]]}/{CAUSES[cause[i]]}")
