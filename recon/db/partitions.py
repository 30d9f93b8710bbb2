"""PostgreSQL: the tables partitioned by business date (migrations 005 and 013), and the load of
D's rows into a fresh leaf, attached inside the write's transaction.

Each such table is partitioned by date; D's partition (`<table>_dYYYYMMDD`, made by
ensure_date_partitions) is itself partitioned by date again, with at most one leaf that holds
the rows (`<table>_dYYYYMMDD_data`). A run loads D's rows into a new table with no index, builds
its keys and indexes once (several times faster than keeping them up to date row by row), and
attaches it in place of D's old leaf, if any. Only D's own partition is ever locked
exclusively: the parent and other dates' partitions get no more than a share lock, so other
dates' writes and readers of other dates go on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from recon.db.bulk import copy_frame
from recon.db.engine import Database
from recon.db.tables import iso_date


@dataclass(frozen=True)
class DatePartitioned:
    """A table partitioned by business date: its name, and its leaves' keys and indexes, as
    the parent defines them (so that ATTACH builds none): (suffix, kind, definition), kind
    "primary key", "unique" or "index"."""

    parent: str
    keys: tuple[tuple[str, str, str], ...]

    def partition(self, business_date: str) -> str:
        """D's partition (itself partitioned, with at most one leaf: `<partition>_data`)."""
        return f"{self.parent}_d{iso_date(business_date).replace('-', '')}"


OUTCOMES = DatePartitioned("installment_outcomes", (
    ("pkey", "primary key", "(loan_id, installment_no, business_date)"),
    ("by_cause", "index", "(business_date, root_cause) WHERE root_cause IS NOT NULL")))
RETRY_PLAN = DatePartitioned("retry_plan", (
    ("by_date", "index", "(business_date, action)"),
    ("by_loan", "index", "(loan_id, installment_no)")))
NOTICES = DatePartitioned("borrower_notices", (
    ("pkey", "primary key", "(notice_id, business_date)"),
    ("one_open", "unique", "(business_date, borrower_id) WHERE state = 'new'"),
    ("same_thing", "unique",
     "(business_date, borrower_id, content_key) WHERE state <> 'cancelled'"),
    ("to_take", "index", "(send_after) WHERE state = 'new'")))
BY_DATE = (OUTCOMES, RETRY_PLAN, NOTICES)


class LeafTaken(Exception):
    """D's partition got a leaf from another transaction while this one loaded its own."""


def ensure_date_partitions(database: Database, business_date: str,
                           tables: tuple[DatePartitioned, ...] = BY_DATE) -> None:
    """PostgreSQL: make sure D has its (empty, partitioned) partition of each table, in a
    transaction of its own before the write: creating one is the only step that locks a parent
    beyond a share lock, and ATTACH's lock does not wait for other dates' open writes."""
    date = iso_date(business_date)
    with database.engine.begin() as connection:
        for table in tables:
            name = table.partition(date)
            if connection.execute(sa.text("SELECT to_regclass(:name) IS NOT NULL"),
                                  {"name": name}).scalar():
                continue
            connection.exec_driver_sql(
                f"CREATE TABLE {name} ({_definition(connection, table.parent)}) "
                f"PARTITION BY LIST (business_date)")
            connection.exec_driver_sql(
                f"ALTER TABLE {table.parent} ATTACH PARTITION {name} FOR VALUES IN ('{date}')")


def has_leaf(connection: Connection, table: DatePartitioned, business_date: str) -> bool:
    """Whether D's partition of `table` has a leaf (holds rows or could)."""
    return bool(_leaves(connection, table.partition(business_date)))


def load_date_leaf(connection: Connection, table: DatePartitioned, business_date: str,
                   frame: pd.DataFrame, columns: list[str], constants: dict[str, str],
                   *, replace: bool) -> None:
    """stage_date_leaf, then attach_date_leaf at once."""
    stage_date_leaf(connection, table, business_date, frame, columns, constants)
    attach_date_leaf(connection, table, business_date, replace=replace)


def stage_date_leaf(connection: Connection, table: DatePartitioned, business_date: str,
                    frame: pd.DataFrame, columns: list[str], constants: dict[str, str]) -> None:
    """PostgreSQL, inside the caller's transaction (all of it transactional DDL, so a failed or
    killed run leaves D's previous leaf as it was): COPY `frame`'s `columns` into a new table
    of D, `<partition>_load`, and build its keys and indexes; attach_date_leaf makes it D's
    leaf. Nothing else is locked: the table is this transaction's own until it commits.

    `constants`: column -> SQL literal, the same on every row (D, the run id): they come from
    the new table's column defaults rather than through COPY (a quarter less to send and parse
    at 1M outcome rows), and the defaults are dropped once the rows are in. `frame`'s own
    columns of those names are not read.
    """
    date = iso_date(business_date)
    stage = f"{table.partition(date)}_load"
    for literal in constants.values():
        if not re.fullmatch(r"DATE '\d{4}-\d{2}-\d{2}'|'[0-9a-z]+'", literal):
            raise ValueError(f"not a constant recon splices into DDL: {literal!r}")
    # Indexes are built after the load: more memory makes them sort in memory.
    connection.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
    connection.exec_driver_sql(
        f"CREATE TABLE {stage} ({_definition(connection, table.parent, constants)}, "
        f"CONSTRAINT {stage}_date CHECK (business_date = DATE '{date}'))")
    if not frame.empty:
        copied = [column for column in columns if column not in constants]
        copy_frame(connection, stage, copied, frame[copied], freeze=True)
    if constants:
        connection.exec_driver_sql(
            f"ALTER TABLE {stage} "
            + ", ".join(f"ALTER COLUMN {column} DROP DEFAULT" for column in constants))
    for suffix, kind, definition in table.keys:
        if kind == "primary key":
            connection.exec_driver_sql(
                f"ALTER TABLE {stage} ADD CONSTRAINT {stage}_{suffix} PRIMARY KEY {definition}")
        else:
            unique = "UNIQUE " if kind == "unique" else ""
            connection.exec_driver_sql(
                f"CREATE {unique}INDEX {stage}_{suffix} ON {stage} {definition}")


def attach_date_leaf(connection: Connection, table: DatePartitioned, business_date: str,
                     *, replace: bool) -> None:
    """Make D's staged table (stage_date_leaf) D's leaf of `table`, in the same transaction.
    `replace`: D's old leaf, if any, is dropped first; else a leaf there is LeafTaken (another
    transaction attached one since the caller looked).

    The staged table carries CHECK (business_date = D), so ATTACH proves the bound without a
    scan, and its indexes match the parent's, so ATTACH builds none. The DROP locks D's
    partition exclusively until the commit: any query that cannot rule D's partition out when
    it is planned (a generic plan, `business_date = current_date`) waits for it, so the writer
    calls this last, just before COMMIT. A second writer of D is kept out by the date lock,
    whose row the write transaction holds locked from its start (DateLock.check): a second
    transaction of D waits there for this one, then finds the lock's token changed.
    """
    date = iso_date(business_date)
    middle = table.partition(date)
    final = f"{middle}_data"
    stage = f"{middle}_load"
    # ATTACH's own lock, taken first: a leaf attached by a transaction racing this one is seen.
    connection.exec_driver_sql(f"LOCK TABLE {middle} IN SHARE UPDATE EXCLUSIVE MODE")
    old = _leaves(connection, middle)
    if old and not replace:
        raise LeafTaken(f"{middle} has a leaf already: {', '.join(old)}")
    for leaf in old:
        connection.exec_driver_sql(f"DROP TABLE {leaf}")
    connection.exec_driver_sql(
        f"ALTER TABLE {middle} ATTACH PARTITION {stage} FOR VALUES IN ('{date}')")
    for suffix, _, _ in table.keys:
        connection.exec_driver_sql(f"ALTER INDEX {stage}_{suffix} RENAME TO {final}_{suffix}")
    connection.exec_driver_sql(
        f"ALTER TABLE {stage} RENAME CONSTRAINT {stage}_date TO {final}_date")
    connection.exec_driver_sql(f"ALTER TABLE {stage} RENAME TO {final}")


def _leaves(connection: Connection, middle: str) -> list[str]:
    return connection.execute(sa.text(
        "SELECT inhrelid::regclass::text FROM pg_inherits "
        "WHERE inhparent = CAST(:parent AS regclass)"), {"parent": middle}).scalars().all()


def _definition(connection: Connection, parent: str,
                defaults: dict[str, str] | None = None) -> str:
    """The parent's columns (types, NOT NULL, defaults) and CHECK constraints (same names: ATTACH
    matches them by name), as a CREATE TABLE body, read from the catalog.

    Not `LIKE <parent>`: that would hold a lock on the parent from the start of the load, and
    two runs of different dates, each waiting at the swap for the exclusive lock the other's
    LIKE blocks, would deadlock. Catalog reads lock nothing.
    """
    columns = connection.execute(sa.text(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
        "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a "
        "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE a.attrelid = CAST(:parent AS regclass) AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum"), {"parent": parent}).all()
    checks = connection.execute(sa.text(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = CAST(:parent AS regclass) AND contype = 'c' ORDER BY conname"),
        {"parent": parent}).all()
    defaults = defaults or {}
    parts = [f'"{name}" {type_}' + (" NOT NULL" if not_null else "")
             + (f" DEFAULT {defaults.get(name, default)}"
                if defaults.get(name, default) is not None else "")
             for name, type_, not_null, default in columns]
    parts += [f'CONSTRAINT "{name}" {definition}' for name, definition in checks]
    return ", ".join(parts)
