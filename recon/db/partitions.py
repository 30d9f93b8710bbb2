"""PostgreSQL: installment_outcomes partitioned by date (migration 005), and the swap of D's
partition for one freshly loaded, inside the write's transaction."""

from __future__ import annotations

import re

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from recon.db.bulk import copy_frame
from recon.db.engine import Database
from recon.db.tables import OUTCOME_COLUMNS, OUTCOMES_PARENT, iso_date, outcome_partition_name


def ensure_date_partition(database: Database, business_date: str) -> None:
    """PostgreSQL: make sure D has its (empty, partitioned) partition, in a transaction of its
    own before the write: creating it is the only step that locks installment_outcomes itself
    beyond a share lock, and ATTACH's lock does not wait for other dates' open writes."""
    date = iso_date(business_date)
    name = outcome_partition_name(date)
    with database.engine.begin() as connection:
        if connection.execute(sa.text("SELECT to_regclass(:name) IS NOT NULL"),
                              {"name": name}).scalar():
            return
        connection.exec_driver_sql(
            f"CREATE TABLE {name} ({_partition_definition(connection)}) "
            f"PARTITION BY LIST (business_date)")
        connection.exec_driver_sql(
            f"ALTER TABLE {OUTCOMES_PARENT} ATTACH PARTITION {name} FOR VALUES IN ('{date}')")


def replace_outcome_partition(connection: Connection, business_date: str, run_id: str,
                              outcomes: pd.DataFrame) -> None:
    """PostgreSQL: swap the leaf holding D's rows for a freshly loaded one.

    installment_outcomes is partitioned by date, and D's partition (made by
    ensure_date_partition) by date again, with one leaf. Inside the caller's transaction (all
    of it transactional DDL, so a failed or killed run leaves D's previous leaf as it was):
    COPY D's rows into a new table with no index, build its primary key and indexes once, drop
    D's old leaf and attach the new one. The new table carries CHECK (business_date = D), so
    ATTACH proves the bound without a scan, and its indexes match the parent's, so ATTACH
    builds none. Only D's own partition is locked exclusively, only for the swap at the end:
    installment_outcomes and other dates' partitions get no more than a share lock, so other
    dates' writes and analysts' reads of other dates go on. The per-date advisory lock keeps a
    second writer of D (and so of the staging table's name) out.

    business_date and run_id, the same on every row, come from the new table's column defaults
    rather than through COPY (a quarter less to send and parse at 1M rows); the defaults are
    dropped once the rows are in. `outcomes`' own columns of those names are not read.
    """
    date = iso_date(business_date)
    middle = outcome_partition_name(date)
    final = f"{middle}_data"
    stage = f"{middle}_load"
    # Indexes are built after the load: more memory makes them sort in memory.
    connection.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
    if not re.fullmatch(r"[0-9a-z]+", run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    constant = {"business_date": f"DATE '{date}'", "run_id": f"'{run_id}'"}
    connection.exec_driver_sql(
        f"CREATE TABLE {stage} ({_partition_definition(connection, constant)}, "
        f"CONSTRAINT {stage}_date CHECK (business_date = DATE '{date}'))")
    if not outcomes.empty:
        copied = [column for column in OUTCOME_COLUMNS if column not in constant]
        copy_frame(connection, stage, copied, outcomes[copied], freeze=True)
    connection.exec_driver_sql(
        f"ALTER TABLE {stage} "
        + ", ".join(f"ALTER COLUMN {column} DROP DEFAULT" for column in constant))
    # The parent's key and index (sql 006), so that ATTACH builds none.
    connection.exec_driver_sql(
        f"ALTER TABLE {stage} ADD CONSTRAINT {stage}_pkey "
        f"PRIMARY KEY (loan_id, installment_no, business_date)")
    connection.exec_driver_sql(
        f"CREATE INDEX {stage}_by_cause ON {stage} (business_date, root_cause) "
        f"WHERE root_cause IS NOT NULL")
    old = connection.execute(sa.text(
        "SELECT inhrelid::regclass::text FROM pg_inherits "
        "WHERE inhparent = CAST(:parent AS regclass)"), {"parent": middle}).scalars().all()
    for table in old:
        connection.exec_driver_sql(f"DROP TABLE {table}")
    connection.exec_driver_sql(
        f"ALTER TABLE {middle} ATTACH PARTITION {stage} FOR VALUES IN ('{date}')")
    for suffix in ("pkey", "by_cause"):
        connection.exec_driver_sql(f"ALTER INDEX {stage}_{suffix} RENAME TO {final}_{suffix}")
    connection.exec_driver_sql(
        f"ALTER TABLE {stage} RENAME CONSTRAINT {stage}_date TO {final}_date")
    connection.exec_driver_sql(f"ALTER TABLE {stage} RENAME TO {final}")


def _partition_definition(connection: Connection, defaults: dict[str, str] | None = None) -> str:
    """The parent's columns (types, NOT NULL, defaults) and CHECK constraints (same names: ATTACH
    matches them by name), as a CREATE TABLE body, read from the catalog.

    Not `LIKE installment_outcomes`: that would hold a lock on the parent from the start of the
    load, and two runs of different dates, each waiting at the swap for the exclusive lock the
    other's LIKE blocks, would deadlock. Catalog reads lock nothing.
    """
    columns = connection.execute(sa.text(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
        "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a "
        "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE a.attrelid = CAST(:parent AS regclass) AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum"), {"parent": OUTCOMES_PARENT}).all()
    checks = connection.execute(sa.text(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = CAST(:parent AS regclass) AND contype = 'c' ORDER BY conname"),
        {"parent": OUTCOMES_PARENT}).all()
    defaults = defaults or {}
    parts = [f'"{name}" {type_}' + (" NOT NULL" if not_null else "")
             + (f" DEFAULT {defaults.get(name, default)}"
                if defaults.get(name, default) is not None else "")
             for name, type_, not_null, default in columns]
    parts += [f'CONSTRAINT "{name}" {definition}' for name, definition in checks]
    return ", ".join(parts)
