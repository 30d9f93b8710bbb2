"""The bulk load (COPY on PostgreSQL, executemany on SQLite) stores text and numbers exactly."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

from recon.clock import utc_now
from recon.db.engine import connect
from recon.db.ledger import start_run
from recon.db.migrations import ensure_schema
from recon.db.tables import OUTCOME_COLUMNS, SETTLEMENT_EXCEPTION_COLUMNS
from recon.db.write import ResultsWrite
from tests.integration.helpers import query

DAY = "2026-11-28"
AWKWARD = ['say "hi", then go', "two\nlines\r\nand a tab\t", "中文，全角逗号", "007",
           "\\N", "NULL", " padded ", "=1+2"]


def write(database_url: str, rejects: pd.DataFrame, outcomes: pd.DataFrame) -> None:
    database = connect(database_url)
    try:
        ensure_schema(database, clock=utc_now)
        start_run(database, "r1", DAY, "test", started_at=utc_now())
        empty_exceptions = pd.DataFrame(columns=SETTLEMENT_EXCEPTION_COLUMNS)
        with ResultsWrite(database, "r1", DAY) as results:
            results.replace_results(outcomes, empty_exceptions, rejects)
            results.close_run("done", 0, digests={}, counts={}, message="", ended_at=utc_now())
            results.commit()
    finally:
        database.dispose()


def test_text_survives_the_bulk_load_byte_for_byte_and_empty_is_null(database_url):
    values = AWKWARD + [""]
    rejects = pd.DataFrame({
        "business_date": DAY, "file": "installments.csv",
        "line": pd.array(list(range(2, 2 + len(values) - 1)) + [None], dtype="Int64"),
        "column_name": "amount_due", "value": values, "reason": "bad", "run_id": "r1"})
    outcomes = pd.DataFrame({
        "business_date": [DAY, DAY], "loan_id": ["0012345", 'L"1,2'], "installment_no": [1, 2],
        "borrower_id": ["0000789", "B"], "status": ["paid", "unpaid"],
        "root_cause": [None, "insufficient_balance"], "amount_due": ["0.10", "123456789012.34"],
        "amount_settled": ["0.10", "0.00"], "gateway": ["UNIONPAY", ""],
        "response_code": ["00", "05"], "run_id": "r1", "days_past_due": [0, 45],
        "attempts": [1, 0]})[OUTCOME_COLUMNS]

    write(database_url, rejects, outcomes)

    stored = query(database_url, "SELECT line, value FROM input_rejects ORDER BY line")
    assert [row.value for row in stored if row.line is not None] == AWKWARD
    assert [(row.line, row.value) for row in stored if row.line is None] == [(None, None)]
    rows = query(database_url, "SELECT loan_id, borrower_id, root_cause, amount_due, gateway, "
                               "response_code FROM installment_outcomes ORDER BY installment_no")
    assert [(row.loan_id, row.borrower_id, row.root_cause, row.gateway, row.response_code)
            for row in rows] == [("0012345", "0000789", None, "UNIONPAY", "00"),
                                 ('L"1,2', "B", "insufficient_balance", None, "05")]
    assert [Decimal(str(row.amount_due)) for row in rows] == [Decimal("0.10"),
                                                              Decimal("123456789012.34")]


def test_a_card_number_in_an_input_file_name_is_masked_in_the_runs_digests(database_url):
    """recon_runs.input_digests names the files read: the name is masked as everywhere else
    (a gateway named by a card number), the digest itself kept whole."""
    import json
    database = connect(database_url)
    digest = "6258070000111129" + "0" * 48  # hex digits that look like a card: never masked
    try:
        ensure_schema(database, clock=utc_now)
        start_run(database, "r1", DAY, "test", started_at=utc_now())
        with ResultsWrite(database, "r1", DAY) as results:
            results.close_run("done", 0, digests={"settlement_6258070000111129.csv": digest},
                              counts={}, message="", ended_at=utc_now())
            results.commit()
    finally:
        database.dispose()
    [row] = query(database_url, "SELECT input_digests FROM recon_runs WHERE run_id = 'r1'")
    stored = row.input_digests if isinstance(row.input_digests, dict) \
        else json.loads(row.input_digests)
    assert stored == {"settlement_625807******1129.csv": digest}
