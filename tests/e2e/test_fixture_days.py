"""The CLI over the sample days in fixtures/: every output file, the database and the exit code.

Two expectations are checked: the hand-derived ones (fixtures/expected/<D>/expected_*.csv,
written from the contract by a second person) and the committed output files
(fixtures/expected/<D>/out/*.csv), which pin every cell of every report.
"""

from __future__ import annotations

import csv
import os
import sqlite3
import stat

import pytest
from click.testing import CliRunner

from recon.cli import main
from tests.conftest import FIXTURES

DAYS = ["2026-11-27", "2026-11-28"]


def read_rows(path):
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """Run both fixture days once, as a range, into a temporary out folder and SQLite file."""
    work = tmp_path_factory.mktemp("sample")
    result = CliRunner().invoke(main, [
        "run", "--from", DAYS[0], "--to", DAYS[1], "--inbox", str(FIXTURES / "inbox"),
        "--out", str(work / "out"), "--db", f"sqlite:///{work / 'recon.db'}"])
    return work, result


def test_range_exit_code_is_the_worst_of_its_days(sample_run):
    _, result = sample_run
    expected = max(int((FIXTURES / "expected" / day / "expected_exit_code.txt").read_text())
                   for day in DAYS)
    assert result.exit_code == expected, result.output


@pytest.mark.parametrize("day", DAYS)
@pytest.mark.parametrize("name", ["exceptions.csv", "settlement_exceptions.csv", "rejects.csv"])
def test_output_file_matches_the_committed_expectation(sample_run, day, name):
    work, _ = sample_run
    produced = (work / "out" / day / name).read_bytes()
    expected = (FIXTURES / "expected" / day / "out" / name).read_bytes()
    assert produced == expected


@pytest.mark.parametrize("day", DAYS)
def test_exceptions_csv_is_utf8_with_bom_and_ordered_columns(sample_run, day):
    work, _ = sample_run
    raw = (work / "out" / day / "exceptions.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    header = raw[3:].split(b"\n", 1)[0].decode()
    assert header == ("business_date,loan_id,installment_no,borrower_id,status,root_cause,"
                      "root_cause_zh,amount_due,amount_settled,amount_outstanding,gateway,"
                      "response_code,response_msg,attempts,last_attempt_at,card_no_masked,"
                      "suggested_action,evidence,days_past_due")


@pytest.mark.parametrize("day", DAYS)
def test_outcomes_match_the_hand_derived_expectation(sample_run, day):
    work, _ = sample_run
    expected = {(row["loan_id"], int(row["installment_no"])): (row["status"], row["root_cause"])
                for row in read_rows(FIXTURES / "expected" / day / "expected_outcomes.csv")}
    with sqlite3.connect(work / "recon.db") as connection:
        stored = {(loan, number): (status, cause or "") for loan, number, status, cause in
                  connection.execute("SELECT loan_id, installment_no, status, root_cause FROM "
                                     "installment_outcomes WHERE business_date = ?", (day,))}
    assert stored == expected


@pytest.mark.parametrize("day", DAYS)
def test_every_bad_row_and_missing_file_is_in_rejects(sample_run, day):
    work, _ = sample_run
    expected = {(row["file"], row["line"], row["column"]) for row in
                read_rows(FIXTURES / "expected" / day / "expected_rejects.csv")}
    produced = {(row["file"], row["line"], row["column"]) for row in
                read_rows(work / "out" / day / "rejects.csv")}
    assert produced == expected


@pytest.mark.parametrize("day", DAYS)
def test_settlement_exceptions_match_the_hand_derived_expectation(sample_run, day):
    work, _ = sample_run
    expected = {(row["gateway_txn_id"], row["kind"]) for row in
                read_rows(FIXTURES / "expected" / day / "expected_settlement_exceptions.csv")}
    produced = {(row["gateway_txn_id"], row["kind"]) for row in
                read_rows(work / "out" / day / "settlement_exceptions.csv")}
    assert produced == expected


def test_summary_names_counts_and_missing_files(sample_run):
    _, result = sample_run
    assert "recon 2026-11-27: incomplete (exit 4)" in result.output
    assert "NOT ARRIVED settlement_BAOFU.csv" in result.output
    assert "rows rejected 11, duplicates collapsed 1" in result.output


def test_reports_are_not_world_readable(sample_run):
    work, _ = sample_run
    for path in (work / "out" / DAYS[0]).iterdir():
        assert not os.stat(path).st_mode & stat.S_IRWXO, path


def test_run_ledger_adds_up_per_file(sample_run):
    import json

    work, _ = sample_run
    with sqlite3.connect(work / "recon.db") as connection:
        rows = connection.execute("SELECT counts, exit_code, outcome FROM recon_runs").fetchall()
    assert len(rows) == 2
    for counts_json, exit_code, outcome in rows:
        assert (exit_code, outcome) == (4, "incomplete")
        for entry in json.loads(counts_json)["files"]:
            assert entry["rows_read"] == (entry["rows_used"] + entry["duplicates_collapsed"]
                                          + entry["rows_rejected"]), entry
