"""Runs whose files are larger than one Arrow read block give what one-block runs give.

A real day's files are many times RECON_CSV_BLOCK_BYTES (16 MiB), so their columns come back in
chunks; the sample files fit in one block. Here the block is a few hundred bytes, so every file
is in many chunks, and the run must give the same reports, outcomes and run diff, byte for byte.
`make test` also runs all of tests/e2e a second time with such a block size.
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
import sqlite3

import pyarrow as pa
import pytest
from click.testing import CliRunner

from recon.cli import main
from recon.db.engine import connect
from recon.sources.stored import read_outcomes
from tests.conftest import FIXTURES, throwaway_database
from tests.synth import generate_day

DAY = dt.date(2026, 11, 27)
SMALL_BLOCK = "256"
ONE_BLOCK = str(16 << 20)
REPORTS = ["exceptions.csv", "settlement_exceptions.csv", "rejects.csv", "suspected_incidents.csv"]


def read_rows(path):
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def run(inbox, out, database_url, day, block_bytes):
    result = CliRunner().invoke(main, [
        "run", "--date", day, "--inbox", str(inbox), "--out", str(out), "--db", database_url],
        env={"RECON_CSV_BLOCK_BYTES": block_bytes})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


@pytest.fixture(scope="module")
def clean_day(tmp_path_factory):
    """A generated day in which every row of every file is valid (no rejects, no duplicates):
    the row filter then keeps each file's columns as Arrow read them, chunk for chunk."""
    work = tmp_path_factory.mktemp("clean")
    generate_day(DAY, 2000, work / "inbox", seed=11, bad_rows=False)
    for block in (SMALL_BLOCK, ONE_BLOCK):
        result = run(work / "inbox", work / f"out-{block}", f"sqlite:///{work / block}.db",
                     DAY.isoformat(), block)
        assert result.exit_code == 0, result.output
    return work


def test_a_clean_day_in_small_blocks_gets_the_generators_truth(clean_day):
    truth = {(row["loan_id"], int(row["installment_no"])): (row["status"], row["root_cause"])
             for row in read_rows(clean_day / "inbox" / DAY.isoformat() / "_truth.csv")}
    with sqlite3.connect(clean_day / f"{SMALL_BLOCK}.db") as connection:
        stored = {(loan, number): (status, cause or "") for loan, number, status, cause in
                  connection.execute("SELECT loan_id, installment_no, status, root_cause "
                                     "FROM installment_outcomes")}
    assert len(truth) == 2000 and stored == truth


@pytest.mark.parametrize("name", REPORTS)
def test_a_clean_day_in_small_blocks_writes_the_same_reports(clean_day, name):
    day = DAY.isoformat()
    small = (clean_day / f"out-{SMALL_BLOCK}" / day / name).read_bytes()
    assert small == (clean_day / f"out-{ONE_BLOCK}" / day / name).read_bytes()


def test_a_rerun_on_postgres_diffs_stored_outcomes_read_in_small_blocks(tmp_path,
                                                                        postgres_server_url):
    """The rerun reads D's stored outcomes back through Arrow's CSV reader (COPY TO STDOUT):
    in small blocks they too are chunked, and the run diff must not change."""
    day = "2026-11-28"
    changes = {}
    for block in (SMALL_BLOCK, ONE_BLOCK):
        inbox = tmp_path / block / "inbox"
        shutil.copytree(FIXTURES / "inbox" / day, inbox / day)
        late = tmp_path / block / "late"
        late.mkdir()
        for name in ("settlement_UNIONPAY.csv", "settlement_UNIONPAY.ctl"):
            shutil.move(inbox / day / name, late / name)
        out = tmp_path / block / "out"
        with throwaway_database(postgres_server_url) as url:
            assert run(inbox, out, url, day, block).exit_code == 4
            for name in ("settlement_UNIONPAY.csv", "settlement_UNIONPAY.ctl"):
                shutil.move(late / name, inbox / day / name)
            # Still 4, the sample day's own code: one of its gateways never sends a file.
            assert run(inbox, out, url, day, block).exit_code == 4
            database = connect(url)
            try:
                stored, _ = read_outcomes(database, day, block_bytes=int(block))
            finally:
                database.dispose()
        loan_ids = pa.chunked_array(pa.array(stored["loan_id"]))
        assert (loan_ids.num_chunks > 1) == (block == SMALL_BLOCK)
        changes[block] = (out / day / "changes.csv").read_bytes()
    assert changes[SMALL_BLOCK] == changes[ONE_BLOCK]
    assert changes[SMALL_BLOCK].count(b"\n") > 5  # pending -> paid, and the like
