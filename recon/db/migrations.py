"""Schema migrations: the files shipped per dialect, applied by number, and the check that the
database's schema is the one this code writes."""

from __future__ import annotations

import datetime as dt
import importlib.resources
import re
from importlib.resources.abc import Traversable
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from recon.db.engine import (Database, connect, first_line, is_unavailable, reachable,
                             write_transaction)
from recon.db.tables import timestamp_text
from recon.errors import MigrationFailed, MigrationsMissing, SchemaOutdated


# The migrations ship inside the package (the top-level sql/ folder, mapped to `recon.sql` by
# pyproject.toml), so an installed wheel finds them wherever it is installed.
MIGRATIONS = importlib.resources.files("recon.sql")
MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
LOCK_NAMESPACE = 0x5245434F  # "RECO": the advisory-lock key of schema upgrades


def migrations(database: Database) -> list[tuple[int, str, Traversable]]:
    """(version, name, file) of every migration shipped for the database's dialect, in order.

    Raises MigrationsMissing when there are none: an install without its migrations would
    otherwise report an empty database as "up to date".
    """
    folder = MIGRATIONS.joinpath(database.dialect)
    found = []
    if folder.is_dir():
        for entry in folder.iterdir():
            match = MIGRATION_NAME.match(entry.name)
            if match and entry.is_file():
                found.append((int(match.group(1)), entry.name.removesuffix(".sql"), entry))
    if not found:
        raise MigrationsMissing(
            f"no schema migrations found for {database.dialect} in {folder}: this recon "
            f"installation is incomplete", next_step="reinstall recon from its wheel or source "
            "(the migrations ship inside the package as recon.sql)")
    return sorted(found, key=lambda migration: migration[0])


def latest_version(database: Database) -> int:
    return migrations(database)[-1][0]


def applied_version(connection: Connection) -> int | None:
    """The schema version recorded in the database; None for an empty database."""
    inspector = sa.inspect(connection)
    if not inspector.has_table("schema_version"):
        return 0 if inspector.has_table("recon_runs") else None
    return connection.execute(sa.text("SELECT max(version) FROM schema_version")).scalar() or 0


def upgrade(database: Database, *, clock: Callable[[], dt.datetime],
            target: int | None = None) -> list[str]:
    """Apply every migration not yet applied (up to `target`), each in its own transaction:
    a migration that fails leaves nothing of itself behind. Returns the names applied.
    `clock` gives the moment each is recorded as applied.

    Concurrent upgrades (two first runs on an empty database) apply each migration once: on
    PostgreSQL they queue on an advisory lock, on SQLite on the write lock.
    """
    shipped = migrations(database)  # before anything is created: none found refuses
    applied: list[str] = []
    with reachable(database), database.engine.connect() as connection:
        with write_transaction(connection):
            _upgrade_lock(database, connection)
            connection.execute(sa.text(
                "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at text NOT NULL)"))
        for version, name, path in shipped:
            if target is not None and version > target:
                break
            with write_transaction(connection):
                _upgrade_lock(database, connection)
                # By version, not "above the highest applied": migration numbers are
                # reserved per workstream, so 007 may land after a database got 009.
                if connection.execute(sa.text(
                        "SELECT count(*) FROM schema_version WHERE version = :version"),
                        {"version": version}).scalar():
                    continue
                _apply(database, connection, name, path)
                connection.execute(
                    sa.text("INSERT INTO schema_version (version, name, applied_at) "
                            "VALUES (:version, :name, :at)"),
                    {"version": version, "name": name, "at": timestamp_text(clock())})
            applied.append(name)
    return applied


def _apply(database: Database, connection: Connection, name: str, path: Traversable) -> None:
    try:
        for statement in split_statements(path.read_text(encoding="utf-8")):
            connection.exec_driver_sql(statement)
    except DBAPIError as exc:
        if is_unavailable(database, exc):
            raise
        raise MigrationFailed(
            f"migration {name} failed and was rolled back: {first_line(database, exc)}",
            next_step="the schema is as before; fix the cause (permissions, a broken "
                      "migration), then run `recon db upgrade` again") from exc


def _upgrade_lock(database: Database, connection: Connection) -> None:
    """PostgreSQL: upgrades queue on a transaction-level advisory lock, taken first in each of
    their transactions. (A session lock would not be ours through a transaction-pooling
    pgbouncer, and its unlock could land on another server session.)"""
    if database.is_postgres:
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:ns, 0)"),
                           {"ns": LOCK_NAMESPACE})


def split_statements(script: str) -> list[str]:
    """Split a migration on `;` at line ends, except inside a `$$ ... $$` body (a DO block or a
    function), which stays one statement. Comment lines (`--` first) are dropped."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    statements, current = [], []
    in_body = False
    for line in lines:
        current.append(line)
        if line.count("$$") % 2:
            in_body = not in_body
        if not in_body and line.rstrip().endswith(";"):
            statement = "\n".join(current).strip().rstrip(";").strip()
            if statement:
                statements.append(statement)
            current = []
    rest = "\n".join(current).strip()
    if rest:
        statements.append(rest)
    return statements


def ensure_schema_of(url: str, *, clock: Callable[[], dt.datetime]) -> None:
    """ensure_schema on a connection of its own: what a range does once before its workers
    (they would race to create an empty database's schema)."""
    database = connect(url)
    try:
        ensure_schema(database, clock=clock)
    finally:
        database.dispose()


def ensure_schema(database: Database, *, clock: Callable[[], dt.datetime]) -> None:
    """Create the schema in an empty database (`clock`: see upgrade); refuse one older or newer
    than this code."""
    latest = latest_version(database)  # first: an install without migrations checks nothing
    with reachable(database), database.engine.connect() as connection:
        version = applied_version(connection)
        applied = set(connection.execute(sa.text("SELECT version FROM schema_version"))
                      .scalars()) if version else set()
    if version is None:
        upgrade(database, clock=clock)
        return
    if version < latest:
        raise SchemaOutdated(
            f"database {database.shown_url} has schema version {version}, this recon needs "
            f"{latest}", next_step="run `recon db upgrade` (with the same --db), then rerun")
    # Numbers are reserved per workstream: a database at 009 may still lack 007.
    missing = [name for number, name, _ in migrations(database) if number not in applied]
    if version == latest and missing:
        raise SchemaOutdated(
            f"database {database.shown_url} lacks schema migration(s) {', '.join(missing)}",
            next_step="run `recon db upgrade` (with the same --db), then rerun")
    if version > latest:
        # A newer recon has migrated it (006 re-keyed installment_outcomes, say): this one's
        # writes would fail halfway or write what the newer schema does not expect.
        raise SchemaOutdated(
            f"database {database.shown_url} has schema version {version}, newer than this "
            f"recon's {latest}",
            next_step="run the recon release that upgraded it (or a later one)")
