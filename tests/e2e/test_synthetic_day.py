"""A generated day (tests/synth) through the real CLI: every outcome equals the generator's truth.

The generator decides each installment's scenario first and writes rows to produce it, so its
truth files are an independent statement of the contract at a few thousand rows, with every
root cause, retries, binding history, format variations and planted bad rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import sqlite3

import pytest
from click.testing import CliRunner

from recon.cli import main
from tests.synth import generate_day

DAY = dt.date(2026, 11, 27)


def read_rows(path):
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module", params=[None, "CNAPS_DD"], ids=["all-files", "cnaps-missing"])
def synthetic_run(request, tmp_path_factory):
    work = tmp_path_factory.mktemp("synth")
    generate_day(DAY, 3000, work / "inbox", seed=7, missing_gateway=request.param)
    result = CliRunner().invoke(main, [
        "run", "--date", DAY.isoformat(), "--inbox", str(work / "inbox"), "--out",
        str(work / "out"), "--db", f"sqlite:///{work / 'recon.db'}"])
    return work, result, request.param


def test_exit_code_says_whether_every_settlement_file_arrived(synthetic_run):
    _, result, missing = synthetic_run
    assert result.exit_code == (4 if missing else 0), result.output


def test_every_installment_gets_the_intended_status_and_root_cause(synthetic_run):
    work, _, _ = synthetic_run
    truth = {(row["loan_id"], int(row["installment_no"])): (row["status"], row["root_cause"])
             for row in read_rows(work / "inbox" / DAY.isoformat() / "_truth.csv")}
    with sqlite3.connect(work / "recon.db") as connection:
        stored = {(loan, number): (status, cause or "") for loan, number, status, cause in
                  connection.execute("SELECT loan_id, installment_no, status, root_cause "
                                     "FROM installment_outcomes")}
    assert len(truth) == 3000
    assert stored == truth
    causes = {cause for _, cause in stored.values()}
    assert {"card_unbound", "insufficient_balance", "gateway_outage", "unclassified",
            "instruction_not_confirmed", "not_instructed", "no_settlement_record"} <= causes


def test_settlement_exceptions_are_the_planted_ones(synthetic_run):
    work, _, _ = synthetic_run
    truth = {(row["gateway_txn_id"], row["kind"]) for row in read_rows(
        work / "inbox" / DAY.isoformat() / "_truth_settlement_exceptions.csv")}
    produced = {(row["gateway_txn_id"], row["kind"]) for row in read_rows(
        work / "out" / DAY.isoformat() / "settlement_exceptions.csv")}
    assert produced == truth


def test_every_planted_bad_row_is_rejected_and_nothing_else(synthetic_run):
    work, _, missing = synthetic_run
    truth = {(row["file"], row["line"]) for row in read_rows(
        work / "inbox" / DAY.isoformat() / "_truth_rejects.csv")}
    produced = {(row["file"], row["line"]) for row in read_rows(
        work / "out" / DAY.isoformat() / "rejects.csv") if row["line"]}
    assert produced == truth
    not_arrived = [row["file"] for row in read_rows(work / "out" / DAY.isoformat() / "rejects.csv")
                   if not row["line"]]
    assert not_arrived == ([f"settlement_{missing}.csv"] if missing else [])
