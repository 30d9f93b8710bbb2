"""COPY vs INSERT for the outcome rows of one business date, into PostgreSQL.

    python -m tests.bench.copy_vs_insert                 # 100,000 rows, best of 3
    python -m tests.bench.copy_vs_insert --rows 1000000 --repeat 1

Loads the same synthetic `installment_outcomes` rows four ways, each in its own transaction on
an emptied table, and prints the wall time of each:

- partition swap: what recon does since migration 005 (`recon.db.partitions`'
  `load_date_leaf`): COPY into a fresh table of the date with no index, build the
  primary key and indexes once, drop the date's old partition, attach the new one;
- COPY: COPY straight into the date's partition with its primary key and indexes in place
  (what recon did before 005, less the DELETE);
- batched INSERT: multi-row `INSERT ... VALUES (...), (...)` pages of 1,000 (psycopg2
  `execute_values`), the best a plain INSERT can do;
- row-by-row INSERT: one `INSERT` per row (psycopg2 `executemany`), a round trip each.

PostgreSQL comes from RECON_BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1/postgres);
a database `recon_bench_copy` is created on that server and dropped afterwards. A tool, not a
test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import sqlalchemy as sa
from psycopg2.extras import execute_values

from recon.contract import RootCause, Status
from recon.clock import utc_now
from recon.db.bulk import bulk_insert
from recon.db.engine import Database, connect
from recon.db.migrations import upgrade
from recon.db.partitions import OUTCOMES, ensure_date_partitions, load_date_leaf
from recon.db.tables import OUTCOME_COLUMNS
from recon.db.urls import normalise_url, safe_url_text

TABLE = "installment_outcomes"
BUSINESS_DATE = "2026-11-27"
RUN_ID = "bench"


def outcome_rows(count: int, seed: int = 20261127) -> pd.DataFrame:
    """`count` rows shaped like pipeline.outcome_rows: ids as text, amounts as exact decimals."""
    rng = np.random.default_rng(seed)
    due_fen = rng.integers(10_000, 1_000_000, count)
    paid = rng.random(count) < 0.9
    settled_fen = np.where(paid, due_fen, 0)
    causes = [cause.value for cause in RootCause]
    return pd.DataFrame({
        "business_date": BUSINESS_DATE,
        "loan_id": [f"L{n:09d}" for n in range(count)],
        "installment_no": rng.integers(1, 60, count),
        "borrower_id": [f"B{n:09d}" for n in rng.integers(0, count, count)],
        "status": np.where(paid, Status.PAID.value, Status.UNPAID.value),
        "root_cause": np.where(paid, None, rng.choice(causes, count)),
        "amount_due": [f"{fen // 100}.{fen % 100:02d}" for fen in due_fen],
        "amount_settled": [f"{fen // 100}.{fen % 100:02d}" for fen in settled_fen],
        "gateway": rng.choice(["UNIONPAY", "CNAPS_DD", "ALLINPAY"], count),
        "response_code": np.where(paid, "00", "51"),
        "run_id": RUN_ID,
    })[OUTCOME_COLUMNS]


def load_with_partition_swap(_database, connection: sa.Connection, rows: pd.DataFrame) -> None:
    load_date_leaf(connection, OUTCOMES, BUSINESS_DATE, rows, OUTCOME_COLUMNS,
                   {"business_date": f"DATE '{BUSINESS_DATE}'", "run_id": f"'{RUN_ID}'"},
                   replace=True)


def load_with_copy(database: Database, connection: sa.Connection, rows: pd.DataFrame) -> None:
    bulk_insert(database, connection, TABLE, OUTCOME_COLUMNS, rows)


def _values(rows: pd.DataFrame) -> list[tuple]:
    return list(rows.astype(object).where(rows.notna(), None).itertuples(index=False, name=None))


def load_batched_insert(_database, connection: sa.Connection, rows: pd.DataFrame) -> None:
    with connection.connection.driver_connection.cursor() as cursor:
        execute_values(cursor, f"INSERT INTO {TABLE} ({', '.join(OUTCOME_COLUMNS)}) "
                               f"VALUES %s", _values(rows), page_size=1000)


def load_row_by_row(_database, connection: sa.Connection, rows: pd.DataFrame) -> None:
    placeholders = ", ".join(["%s"] * len(OUTCOME_COLUMNS))
    with connection.connection.driver_connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {TABLE} ({', '.join(OUTCOME_COLUMNS)}) "
                           f"VALUES ({placeholders})", _values(rows))


def timed_load(database: Database, rows: pd.DataFrame,
               load: Callable[[Database, sa.Connection, pd.DataFrame], None]) -> float:
    """Seconds to load `rows` into the emptied table and commit; checks every row arrived."""
    with database.engine.begin() as connection:
        connection.execute(sa.text(f"TRUNCATE {TABLE}"))
    started = time.perf_counter()
    with database.engine.begin() as connection:
        load(database, connection, rows)
    seconds = time.perf_counter() - started
    with database.engine.connect() as connection:
        count, due = connection.execute(sa.text(
            f"SELECT count(*), sum(amount_due) FROM {TABLE}")).one()
    expected_due = sum(int(amount.replace(".", "")) for amount in rows["amount_due"])
    assert count == len(rows) and int(due * 100) == expected_due, (count, due)
    return seconds


def throwaway_database(server_url: str, name: str) -> tuple[str, Callable[[], None]]:
    admin = sa.create_engine(normalise_url(server_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    url = normalise_url(server_url).set(database=name)
    return url.render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per method; best is shown")
    options = parser.parse_args()

    server = os.environ.get("RECON_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1/postgres")
    url, drop = throwaway_database(server, "recon_bench_copy")
    try:
        database = connect(url)
        upgrade(database, clock=utc_now)
        with database.engine.begin() as connection:  # the rows' run, for the foreign key
            connection.execute(sa.text(
                "INSERT INTO recon_runs (run_id, business_date, started_at, outcome, host, pid, "
                "recon_version, database_url) VALUES (:run, :d, now(), 'running', 'bench', 0, "
                "'bench', 'bench')"), {"run": RUN_ID, "d": BUSINESS_DATE})
        # The date's partition and its leaf, for the methods that load through the parent.
        ensure_date_partitions(database, BUSINESS_DATE, (OUTCOMES,))
        with database.engine.begin() as connection:
            name = OUTCOMES.partition(BUSINESS_DATE)
            connection.execute(sa.text(f"CREATE TABLE {name}_data PARTITION OF {name} "
                                       f"FOR VALUES IN ('{BUSINESS_DATE}')"))
        rows = outcome_rows(options.rows)
        methods = {"partition swap (recon)": load_with_partition_swap,
                   "COPY into indexed table": load_with_copy, "batched INSERT (1,000/stmt)":
                   load_batched_insert, "row-by-row INSERT": load_row_by_row}
        print(f"{options.rows:,} installment_outcomes rows into {safe_url_text(url)}, "
              f"best of {options.repeat}:")
        best: dict[str, float] = {}
        for name, load in methods.items():
            times = [timed_load(database, rows, load) for _ in range(options.repeat)]
            best[name] = min(times)
            print(f"  {name:<28} {best[name]:8.3f} s  ({options.rows / best[name]:>10,.0f} rows/s;"
                  f" median {statistics.median(times):.3f} s)", flush=True)
        recon_time = best["partition swap (recon)"]
        for name, seconds in best.items():
            if name != "partition swap (recon)":
                print(f"  recon's partition swap is {seconds / recon_time:.1f}x faster than "
                      f"{name}")
        database.dispose()
    finally:
        drop()


if __name__ == "__main__":
    main()
