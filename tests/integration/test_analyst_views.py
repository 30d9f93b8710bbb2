"""The analyst views in sql/, on PostgreSQL and SQLite, over small hand-made ledgers."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from recon.clock import utc_now
from recon.db.engine import connect
from recon.db.migrations import upgrade
from recon.db.partitions import OUTCOMES
from recon.db.urls import normalise_url
from tests.integration.helpers import query

D1, D2 = "2026-11-27", "2026-11-28"


def make_schema(database_url: str) -> None:
    database = connect(database_url)
    try:
        upgrade(database, clock=utc_now)
    finally:
        database.dispose()


def insert(database_url: str, table: str, rows: list[dict]) -> None:
    engine = sa.create_engine(normalise_url(database_url))
    columns = list(rows[0])
    statement = sa.text(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                        f"({', '.join(':' + column for column in columns)})")
    try:
        with engine.begin() as connection:
            if table == "installment_outcomes" and engine.dialect.name == "postgresql":
                # Partitioned by date (005); recon's writes create the partitions themselves.
                for day in sorted({row["business_date"] for row in rows}):
                    name = OUTCOMES.partition(day)
                    connection.execute(sa.text(
                        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF installment_outcomes "
                        f"FOR VALUES IN ('{day}') PARTITION BY LIST (business_date)"))
                    connection.execute(sa.text(
                        f"CREATE TABLE IF NOT EXISTS {name}_data PARTITION OF {name} "
                        f"FOR VALUES IN ('{day}')"))
            connection.execute(statement, rows)
    finally:
        engine.dispose()


def run_row(run_id: str, day: str, started_at: str, outcome: str) -> dict:
    return {"run_id": run_id, "business_date": day, "started_at": started_at,
            "outcome": outcome, "host": "h", "pid": 1, "recon_version": "t", "database_url": "u"}


def outcome_row(day: str, loan: str, status: str, cause: str | None, due: str,
                settled: str, run_id: str, number: int = 1) -> dict:
    return {"business_date": day, "loan_id": loan, "installment_no": number,
            "borrower_id": "B" + loan, "status": status, "root_cause": cause,
            "amount_due": due, "amount_settled": settled, "gateway": "UNIONPAY",
            "response_code": None, "run_id": run_id}


def as_decimal(value) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def test_latest_runs_names_the_last_run_that_wrote_results_once_per_date(database_url):
    make_schema(database_url)
    same_second = "2026-11-29T01:00:00+00:00"
    insert(database_url, "recon_runs", [
        run_row("early", D1, "2026-11-29T00:00:00+00:00", "incomplete"),
        run_row("writer", D1, same_second, "done"),
        run_row("refused", D1, same_second, "refused"),
        run_row("later-failed", D1, "2026-11-29T02:00:00+00:00", "failed"),
        run_row("only", D2, "2026-11-29T00:00:00+00:00", "done"),
    ])

    rows = query(database_url, "SELECT business_date, run_id FROM latest_runs "
                               "ORDER BY business_date")

    assert [(str(row.business_date), row.run_id) for row in rows] == [(D1, "writer"),
                                                                       (D2, "only")]


def test_repeat_failures_lists_loans_not_collected_on_two_dates(database_url):
    make_schema(database_url)
    insert(database_url, "recon_runs", [run_row("r1", D1, "2026-11-28T00:00:00+00:00", "done"),
                                        run_row("r2", D2, "2026-11-29T00:00:00+00:00", "done")])
    insert(database_url, "installment_outcomes", [
        outcome_row(D1, "L1", "unpaid", "insufficient_balance", "100.10", "0.00", "r1"),
        outcome_row(D2, "L1", "partially_paid", "account_frozen", "200.20", "0.10", "r2", 2),
        outcome_row(D1, "L2", "unpaid", "card_unbound", "50.00", "0.00", "r1"),
        outcome_row(D2, "L2", "paid", None, "50.00", "50.00", "r2", 2),
        outcome_row(D1, "L3", "pending", "settlement_pending", "70.00", "0.00", "r1"),
        outcome_row(D2, "L3", "unpaid", "not_instructed", "70.00", "0.00", "r2", 2),
    ])

    rows = query(database_url, "SELECT * FROM repeat_failures")

    assert len(rows) == 1
    [row] = rows
    assert (row.loan_id, row.dates_not_collected, row.latest_root_cause) == (
        "L1", 2, "account_frozen")
    assert (str(row.first_date), str(row.last_date)) == (D1, D2)
    assert as_decimal(row.amount_outstanding) == Decimal("300.20")


def test_daily_root_causes_sums_amounts_exactly(database_url):
    make_schema(database_url)
    insert(database_url, "recon_runs", [run_row("r1", D1, "2026-11-28T00:00:00+00:00", "done")])
    insert(database_url, "installment_outcomes", [
        outcome_row(D1, f"L{n}", "unpaid", "insufficient_balance", "0.10", "0.00", "r1")
        for n in range(3)])

    [row] = query(database_url, "SELECT installments, amount_due, amount_outstanding "
                                "FROM daily_root_causes")

    assert row.installments == 3
    assert as_decimal(row.amount_due) == as_decimal(row.amount_outstanding) == Decimal("0.30")
