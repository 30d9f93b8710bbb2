"""Reads of stored results, a source like the inbox: D's previous outcomes (the run diff),
earlier dates' attempts and failures (the retry plan, the watchlist), and the trend report's
rows."""

from __future__ import annotations

import re

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from recon.db.bulk import select_table
from recon.db.engine import Database, reachable
from recon.formatting import fmt_yuan


def read_outcomes(database: Database, business_date: str, *,
                  block_bytes: int) -> tuple[pd.DataFrame, str]:
    """D's stored outcomes and the run that wrote them ("" if none): the run diff's "before".

    Columns loan_id, installment_no, status, root_cause ('' for none). Read through the driver
    (COPY on PostgreSQL): a million rows through SQLAlchemy's row objects take seconds.
    """
    query = ("SELECT loan_id, installment_no, status, root_cause FROM installment_outcomes "
             "WHERE business_date = {}")
    types = {"loan_id": pa.string(), "installment_no": pa.int64(), "status": pa.string(),
             "root_cause": pa.string()}
    with reachable(database), database.engine.connect() as connection:
        run_id = connection.execute(sa.text(
            "SELECT run_id FROM installment_outcomes WHERE business_date = :d LIMIT 1"),
            {"d": business_date}).scalar()
        table = select_table(database, connection, query, (business_date,), types,
                              block_bytes=block_bytes, strings_can_be_null=True)
    frame = table.to_pandas()
    frame["root_cause"] = frame["root_cause"].fillna("")
    return frame, run_id or ""


def read_earlier_attempts(database: Database, business_date: str, since: str) -> pd.DataFrame:
    """Sent attempts stored for dates from `since` to before D, per installment not collected
    on them (loan_id, installment_no, attempts): the retry plan's attempt caps. Rows written
    before migration 009 have no attempts and count none."""
    query = ("SELECT loan_id, installment_no, sum(attempts) AS attempts "
             "FROM installment_outcomes WHERE business_date >= {} AND business_date < {} "
             "AND root_cause IS NOT NULL AND attempts > 0 GROUP BY loan_id, installment_no")
    types = {"loan_id": pa.string(), "installment_no": pa.int64(), "attempts": pa.int64()}
    with reachable(database), database.engine.connect() as connection:
        table = select_table(database, connection, query, (since, business_date), types)
    return table.to_pandas()


def has_results_schema(database: Database) -> bool:
    return _has_table(database, "installment_outcomes")


def _has_table(database: Database, table: str) -> bool:
    with reachable(database), database.engine.connect() as connection:
        return sa.inspect(connection).has_table(table)


def _rows_by_day(database: Database, query: str, date_from: str, date_to: str, *,
                 exact: tuple[str, ...] = (), fen: tuple[str, ...] = ()) -> pd.DataFrame:
    """The rows of `query` (`:a` and `:b` the first and last date) for the trend report:
    business_date as YYYY-MM-DD, the `exact` columns (NUMERIC sums) as their exact text, the
    `fen` columns (integer sums of _fen) as yuan."""
    with reachable(database), database.engine.connect() as connection:
        frame = pd.read_sql(sa.text(query), connection, params={"a": date_from, "b": date_to},
                            coerce_float=False)
    frame["business_date"] = frame["business_date"].astype("str")
    for column in exact:
        frame[column] = frame[column].map(str)
    for column in fen:
        frame[column] = fmt_yuan(frame[column].astype("int64"))
    return frame


def _fen(database: Database, amount: str) -> str:
    """SQL for an exact amount column (NUMERIC on PostgreSQL, 2-decimal text on SQLite) in
    integer fen: summed exactly on both (SQLite's arithmetic on the text is a float's)."""
    if database.is_postgres:
        return f"CAST({amount} * 100 AS BIGINT)"
    return f"CAST(replace({amount}, '.', '') AS INTEGER)"


def read_daily_root_causes(database: Database, date_from: str, date_to: str) -> pd.DataFrame:
    """Rows of the analyst view `daily_root_causes` for the dates, amounts as exact text."""
    return _rows_by_day(
        database, "SELECT business_date, root_cause, gateway, status, installments, amount_due, "
        "amount_outstanding FROM daily_root_causes WHERE business_date BETWEEN :a AND :b "
        "ORDER BY business_date, gateway, root_cause, status", date_from, date_to,
        exact=("amount_due", "amount_outstanding"))


def read_days_past_due(database: Database, date_from: str, date_to: str) -> pd.DataFrame:
    """Per business date and days-past-due bucket (0, 1-30, 31-60, over 60): installments
    collected and not, and the amount outstanding, exact. Rows from before migration 009 have no
    days_past_due: they were all due on their date (the contract then required it), so 0."""
    days = "COALESCE(days_past_due, 0)"
    not_collected = "status NOT IN ('paid', 'overpaid')"
    return _rows_by_day(
        database, f"SELECT business_date, CASE WHEN {days} = 0 THEN '0' WHEN {days} <= 30 "
        f"THEN '1-30' WHEN {days} <= 60 THEN '31-60' ELSE 'over 60' END AS bucket, "
        f"sum(CASE WHEN {not_collected} THEN 0 ELSE 1 END) AS collected, "
        f"sum(CASE WHEN {not_collected} THEN 1 ELSE 0 END) AS not_collected, "
        f"sum(CASE WHEN {not_collected} THEN {_fen(database, 'amount_due')} - "
        f"{_fen(database, 'amount_settled')} ELSE 0 END) "
        f"AS amount_outstanding FROM installment_outcomes "
        f"WHERE business_date BETWEEN :a AND :b GROUP BY 1, 2 ORDER BY 1, 2",
        date_from, date_to, fen=("amount_outstanding",))


def read_retry_actions(database: Database, date_from: str, date_to: str) -> pd.DataFrame:
    """Per business date and action of the stored retry plans: rows and their amount, exact."""
    if not _has_table(database, "retry_plan"):
        return pd.DataFrame(columns=["business_date", "action", "plan_rows", "amount"])
    return _rows_by_day(
        database, f"SELECT business_date, action, count(*) AS plan_rows, "
        f"COALESCE(sum({_fen(database, 'amount')}), 0) AS amount FROM retry_plan "
        f"WHERE business_date BETWEEN :a AND :b GROUP BY 1, 2 ORDER BY 1, 2",
        date_from, date_to, fen=("amount",))


def read_stored_runs(database: Database, date_from: str, date_to: str) -> pd.DataFrame:
    """Per business date with results, the run whose results D's tables hold (the last that
    committed: done or incomplete): run_id, outcome, exit_code. A date with no installment is
    one too (its watchlist and notices are results)."""
    committed = "outcome IN ('done', 'incomplete')"
    return _rows_by_day(
        database, f"SELECT r.business_date, r.run_id, r.outcome, r.exit_code, r.ended_at "
        f"FROM recon_runs r WHERE r.business_date BETWEEN :a AND :b AND r.{committed} "
        f"AND r.ended_at = (SELECT max(x.ended_at) FROM recon_runs x "
        f"WHERE x.business_date = r.business_date AND x.{committed}) "
        f"ORDER BY r.business_date", date_from, date_to)


def read_borrower_failures(database: Database, date_from: str, date_to: str,
                           causes: list[str]) -> pd.DataFrame:
    """Distinct (business_date, borrower_id, loan_id, root_cause) of the stored installments not
    collected (`unpaid`, `partially_paid`) for one of `causes`, dates in [date_from, date_to]:
    the watchlist's history of repeated failures."""
    columns = ["business_date", "borrower_id", "loan_id", "root_cause"]
    cause_list = ", ".join(f"'{cause}'" for cause in causes if re.fullmatch(r"[a-z_]+", cause))
    query = ("SELECT DISTINCT business_date, borrower_id, loan_id, root_cause "
             "FROM installment_outcomes WHERE business_date BETWEEN {} AND {} "
             f"AND status IN ('unpaid', 'partially_paid') AND root_cause IN ({cause_list})")
    with reachable(database), database.engine.connect() as connection:
        table = select_table(database, connection, query, (date_from, date_to),
                              {column: pa.string() for column in columns})
    return table.to_pandas().astype("str")


def read_daily_actions(database: Database, date_from: str, date_to: str) -> pd.DataFrame:
    """Per business date: notices not cancelled by channel and cancelled ones, watchlist rows by
    risk, as columns `notices_<channel>`, `notices_cancelled`, `watchlist_<risk>` (counts)."""
    with reachable(database), database.engine.connect() as connection:
        if not sa.inspect(connection).has_table("borrower_notices"):
            return pd.DataFrame({"business_date": pd.Series([], dtype="str")})
        notices = connection.execute(sa.text(
            "SELECT business_date, CASE WHEN state = 'cancelled' THEN 'cancelled' "
            "ELSE channel END AS kind, count(*) FROM borrower_notices "
            "WHERE business_date BETWEEN :a AND :b GROUP BY 1, 2"),
            {"a": date_from, "b": date_to}).all()
        risks = connection.execute(sa.text(
            "SELECT business_date, risk, count(*) FROM watchlist "
            "WHERE business_date BETWEEN :a AND :b GROUP BY 1, 2"),
            {"a": date_from, "b": date_to}).all()
    rows = [(str(day), f"notices_{kind}", int(count)) for day, kind, count in notices]
    rows += [(str(day), f"watchlist_{risk}", int(count)) for day, risk, count in risks]
    frame = pd.DataFrame(rows, columns=["business_date", "what", "count"])
    return frame.pivot_table(index="business_date", columns="what", values="count",
                             aggfunc="sum", fill_value=0).reset_index().rename_axis(
        columns=None)
