"""The database side (CONTRACT 4.4): schema migrations, the per-date lock, the atomic write.

PostgreSQL in production (psycopg2, COPY for the bulk rows); an SQLite file by default. Nothing
connects at import time. The write of a date's results is one transaction: delete D's rows,
load the new ones, mark the run finished; anything short of the commit leaves D as it was.
"""

from __future__ import annotations

import fcntl
import importlib.resources
import io
import json
import logging
import os
import re
import socket
import threading
import time
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from recon.contract import RETRY_PLAN_COLUMNS
from recon.errors import (CommitUnknown, DatabaseFailed, DatabaseUnavailable, DateLocked,
                          DateLockLost, MigrationFailed, MigrationsMissing, OutboxConflict,
                          SchemaOutdated, UsageError)
from recon.protect import mask_cards_in_text, protect_rows

# The migrations ship inside the package (the top-level sql/ folder, mapped to `recon.sql` by
# pyproject.toml), so an installed wheel finds them wherever it is installed.
MIGRATIONS = importlib.resources.files("recon.sql")
MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
LOCK_NAMESPACE = 0x5245434F  # "RECO": the advisory-lock key of schema upgrades
HOLDER_TAG = re.compile(r"^recon (\d+) (\S+)$")  # "recon <pid> <host>": who holds a date lock
# sqlite3 reports both "cannot reach the file" and "bad SQL" as OperationalError; these are the
# former (anything else is a bug and keeps its traceback).
SQLITE_UNAVAILABLE = re.compile(r"unable to open|database is locked|disk i/o|readonly database|"
                                r"disk is full|not a database|locking protocol", re.IGNORECASE)

OUTCOME_COLUMNS = ["business_date", "loan_id", "installment_no", "borrower_id", "status",
                   "root_cause", "amount_due", "amount_settled", "gateway", "response_code",
                   "run_id", "days_past_due", "attempts"]
SETTLEMENT_EXCEPTION_COLUMNS = ["business_date", "gateway", "gateway_txn_id", "instruction_id",
                                "amount", "kind", "detail", "run_id"]
REJECT_COLUMNS = ["business_date", "file", "line", "column_name", "value", "reason", "run_id"]
RETRY_PLAN_DB_COLUMNS = RETRY_PLAN_COLUMNS + ["run_id"]
WATCHLIST_COLUMNS = ["business_date", "loan_id", "borrower_id", "risk", "evidence",
                     "suggested_action", "run_id"]
NOTICE_COLUMNS = ["notice_id", "business_date", "borrower_id", "state", "channel",
                  "template_key", "send_after", "amount", "card_last4", "installments",
                  "message", "content_key", "created_run_id", "created_at", "cancelled_run_id",
                  "cancelled_at"]


def normalise_url(url: str) -> sa.URL:
    """Parse a database URL; bare `postgresql://` / `postgres://` are driven by psycopg2."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise UsageError(f"not a database URL: {safe_url_text(url)}",
                         next_step="use e.g. postgresql://user@host/db or sqlite:///recon.db") \
            from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def safe_url_text(url: str | sa.URL) -> str:
    """The URL with any password (`user:pw@` or `?password=pw`) replaced by ***."""
    if not isinstance(url, sa.URL):
        try:
            url = make_url(url)
        except (ArgumentError, ValueError):
            url = re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)
            return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)
    if "password" in url.query:
        url = url.update_query_dict({"password": "***"})
    if url.host and "@" in url.host:
        # An unescaped `@` in the password (`u:p@ss@host`) is parsed as part of the host.
        url = url.set(host=url.host.rsplit("@", 1)[1], password="***")
    return url.render_as_string(hide_password=True)


def _passwords(url: sa.URL) -> list:
    password = url.password
    if password is not None and url.host and "@" in url.host:
        password = f"{password}@{url.host.rsplit('@', 1)[0]}"
    return [password, url.query.get("password")]


def scrub(text: str, url: sa.URL) -> str:
    if url.host and "@" in url.host:  # the password's tail, parsed as part of the host name
        text = text.replace(url.host.rsplit("@", 1)[0] + "@", "***@")
    for secret in _passwords(url):
        if secret:
            for value in ([secret] if isinstance(secret, str) else secret):
                text = text.replace(str(value), "***")
    return text


@dataclass
class Database:
    url: sa.URL
    engine: Engine

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @property
    def dialect(self) -> str:
        """The name of this database's migration folder."""
        return "postgresql" if self.is_postgres else "sqlite"

    @property
    def shown_url(self) -> str:
        return safe_url_text(self.url)

    def dispose(self) -> None:
        self.engine.dispose()


SUPPORTED_BACKENDS = ("postgresql", "sqlite")
log = logging.getLogger("recon")


def connect(url: str) -> Database:
    parsed = normalise_url(url)
    refuse_unusable(parsed)
    try:
        engine = sa.create_engine(parsed, pool_pre_ping=True, connect_args=_connect_args(parsed))
    except (NoSuchModuleError, ArgumentError) as exc:
        raise UsageError(f"unsupported database URL {safe_url_text(parsed)}: {exc}") from exc
    except ImportError as exc:  # the dialect exists but its driver is not installed
        raise UsageError(f"database URL {safe_url_text(parsed)} needs the driver "
                         f"{exc.name or exc}, which is not installed",
                         next_step="use postgresql://... (driven by psycopg2) or sqlite:///FILE"
                         ) from None
    if parsed.get_backend_name() == "sqlite":
        _sqlite_transactions(engine)
    database = Database(parsed, engine)
    with reachable(database):
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    return database


def refuse_unusable(url: sa.URL) -> None:
    """Refuse (usage error) a database recon has no schema for, or one that keeps nothing.

    An in-memory SQLite database (`sqlite://`, `sqlite:///` -- an unset variable in a URL --,
    `:memory:`, `mode=memory`) would take the night's results and lose them when the run ends,
    while the run says "done".
    """
    backend = url.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise UsageError(f"database URL {safe_url_text(url)}: recon writes to PostgreSQL or "
                         f"SQLite, not {backend}",
                         next_step="use postgresql://user@host/db or sqlite:///FILE")
    if backend == "sqlite" and _in_memory(url):
        raise UsageError(f"database URL {safe_url_text(url)} is an in-memory SQLite database: "
                         f"the results would be lost when the run ends",
                         next_step="name a database file, e.g. sqlite:///recon.db (is a "
                                   "variable in the URL unset?)")


def _in_memory(url: sa.URL) -> bool:
    database = (url.database or "").strip()
    return (database in ("", ":memory:") or database.startswith("file::memory:")
            or "mode=memory" in database or url.query.get("mode") == "memory")


def _connect_args(url: sa.URL) -> dict:
    if url.get_backend_name() == "postgresql":
        # utf8 whatever the server's default client encoding: messages and details are Chinese.
        return {"connect_timeout": 10, "application_name": "recon", "client_encoding": "utf8"}
    if url.get_backend_name() == "sqlite":
        return {"timeout": 30}
    return {}


def _sqlite_transactions(engine: Engine) -> None:
    """Let SQLAlchemy, not the sqlite3 module, begin transactions.

    The sqlite3 module of Python < 3.12 opens a transaction only before INSERT/UPDATE/DELETE, so
    a migration's CREATE statements would each commit on their own and a failing migration would
    leave half a schema. (The recipe of SQLAlchemy's SQLite dialect documentation.)
    """

    @sa.event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql(connection.info.get("recon_begin", "BEGIN"))


@contextmanager
def write_transaction(connection: Connection) -> Iterator[None]:
    """A transaction that reads, then writes what it read (the schema version). On SQLite it
    takes the write lock at BEGIN, so two such transactions queue instead of both reading the
    old state; PostgreSQL callers hold an advisory lock instead."""
    connection.info["recon_begin"] = "BEGIN IMMEDIATE"
    try:
        with connection.begin():
            yield
    finally:
        connection.info.pop("recon_begin", None)


def _is_unavailable(database: Database, exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, sa.exc.OperationalError):
        return False
    return database.is_postgres or bool(SQLITE_UNAVAILABLE.search(str(exc.orig)))


def _first_line(database: Database, exc: DBAPIError) -> str:
    """The server's own message, first line only: never a CONTEXT line (COPY puts the row it
    was reading there) or the SQL statement."""
    primary = getattr(getattr(exc.orig, "diag", None), "message_primary", None)
    text = str(primary or (exc.orig if exc.orig is not None else exc)).strip()
    return scrub(text.splitlines()[0] if text else type(exc).__name__, database.url)


@contextmanager
def reachable(database: Database) -> Iterator[None]:
    """Turn driver errors about reaching the server, or about the server failing us (timeouts,
    a full disk, our session ended), into one-line DatabaseUnavailable / DatabaseFailed."""
    try:
        yield
    except DBAPIError as exc:
        failed = _server_failure(database, exc) if database.is_postgres else None
        if failed is not None:
            raise failed from None
        if _is_unavailable(database, exc):
            raise _unavailable(database, _first_line(database, exc)) from None
        raise


def _unavailable(database: Database, why: str) -> DatabaseUnavailable:
    return DatabaseUnavailable(
        f"database {database.shown_url} unavailable: {why}",
        next_step="check the server is up and the credentials (RECON_DATABASE_URL or "
                  "~/.pgpass), then rerun")


RERUN = "rerun (a run that fails leaves the date's previous results as they were)"

# SQLSTATEs of the server failing a run that did reach it, and what to say (CONTRACT exit 5).
SESSION_ENDED = {
    "57P01": "terminated by an administrator, or the server is shutting down",
    "57P05": "idle_session_timeout",
    "25P03": "idle_in_transaction_session_timeout",
}


def _server_failure(database: Database, exc: DBAPIError) -> DatabaseFailed | None:
    """PostgreSQL: what the server did to us, in words, or None (unreachable, or a bug)."""
    code = getattr(exc.orig, "pgcode", None)
    message = _first_line(database, exc)
    where = f"database {database.shown_url}"
    if code == "57014" and "statement timeout" in message:
        return DatabaseFailed(
            f"{where}: a statement timed out after "
            f"{_setting_origin(database, 'statement_timeout')}",
            next_step="raise the timeout for recon's role, or look for what made the server slow "
                      "(locks, load); then " + RERUN)
    if code == "57014":
        return DatabaseFailed(f"{where}: the server cancelled our statement ({message})",
                              next_step=RERUN)
    if code == "55P03":
        return DatabaseFailed(
            f"{where}: waited longer than {_setting_origin(database, 'lock_timeout')} for a "
            f"lock another session holds",
            next_step="find the session holding recon's tables (pg_locks), or raise the "
                      "timeout; then " + RERUN)
    if code == "53100" or "no space left on device" in message.lower():
        return DatabaseFailed(f"{where}: the server's disk is full ({message})",
                              next_step="free space on the database server; then " + RERUN)
    if code in SESSION_ENDED:
        return DatabaseFailed(f"{where}: the server ended our session ({SESSION_ENDED[code]})",
                              next_step=RERUN)
    if exc.connection_invalidated and code is None and _server_answers(database):
        return DatabaseFailed(
            f"{where}: the server ended our session ({message}; the server is up: terminated "
            f"by an administrator, a restart or a proxy)",
            next_step=RERUN)
    return None


def _session_words(exc: BaseException) -> str:
    """Why a session ended, in a few words (the lock's heartbeat and confirm)."""
    code = getattr(getattr(exc, "orig", None), "pgcode", None)
    if code in SESSION_ENDED:
        return SESSION_ENDED[code]
    orig = getattr(exc, "orig", None) or exc
    text = str(getattr(getattr(orig, "diag", None), "message_primary", None) or orig).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _server_answers(database: Database) -> bool:
    try:
        with database.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return True
    except SQLAlchemyError:
        return False


def _setting_origin(database: Database, name: str) -> str:
    """"1s (statement_timeout of role recon)": the setting's value as the run's sessions get it,
    and where it comes from; just the name when the server cannot be asked."""
    try:
        with database.engine.connect() as connection:
            row = connection.execute(sa.text(
                "SELECT current_setting(:name) AS value, s.source, current_user AS role, "
                "current_database() AS db FROM pg_settings s WHERE s.name = :name"),
                {"name": name}).one()
    except SQLAlchemyError:
        return name
    origin = {"user": f"{name} of role {row.role}",
              "database": f"{name} of database {row.db}",
              "database user": f"{name} of role {row.role} in database {row.db}",
              "configuration file": f"{name} in the server's configuration",
              }.get(row.source, f"{name}, set by {row.source}")
    return f"{row.value} ({origin})"


# --- migrations -------------------------------------------------------------------------------

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


def upgrade(database: Database, *, target: int | None = None) -> list[str]:
    """Apply every migration not yet applied (up to `target`), each in its own transaction:
    a migration that fails leaves nothing of itself behind. Returns the names applied.

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
                    {"version": version, "name": name, "at": _now_text()})
            applied.append(name)
    return applied


def _apply(database: Database, connection: Connection, name: str, path: Traversable) -> None:
    try:
        for statement in split_statements(path.read_text(encoding="utf-8")):
            connection.exec_driver_sql(statement)
    except DBAPIError as exc:
        if _is_unavailable(database, exc):
            raise
        raise MigrationFailed(
            f"migration {name} failed and was rolled back: {_first_line(database, exc)}",
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


def ensure_schema_of(url: str) -> None:
    """ensure_schema on a connection of its own: what a range does once before its workers
    (they would race to create an empty database's schema)."""
    database = connect(url)
    try:
        ensure_schema(database)
    finally:
        database.dispose()


def ensure_schema(database: Database) -> None:
    """Create the schema in an empty database; refuse one older or newer than this code."""
    latest = latest_version(database)  # first: an install without migrations checks nothing
    with reachable(database), database.engine.connect() as connection:
        version = applied_version(connection)
        applied = set(connection.execute(sa.text("SELECT version FROM schema_version"))
                      .scalars()) if version else set()
    if version is None:
        upgrade(database)
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


# --- one writer per business date ---------------------------------------------------------------

LOCK_LEASE_SECONDS = 60.0  # a killed run blocks D this long at most when its session outlives it


class DateLock:
    """The holding of one business date by one run.

    `check` runs first in the write transaction, `confirm` last before its commit: each raises
    DateLockLost if the run no longer holds D, so a run that lost D commits nothing.
    """

    business_date: str = ""

    def check(self, connection: Connection) -> None:
        pass

    def confirm(self, connection: Connection) -> None:
        pass


@contextmanager
def date_lock(database: Database, business_date: str, wait_seconds: float = 0.0, *,
              run_id: str = "", lease_seconds: float = LOCK_LEASE_SECONDS) -> Iterator[DateLock]:
    """Hold the lock on `business_date` for the duration of the block, or raise DateLocked."""
    if database.is_postgres:
        lock = _PostgresDateLock(database, business_date, run_id, lease_seconds)
        with reachable(database):
            lock.take(wait_seconds)
        try:
            yield lock
        finally:
            lock.release()
    else:
        with _file_date_lock(database, business_date, wait_seconds) as lock:
            yield lock


def _holder_tag() -> str:
    """Who we are, as the lock holder shows it to a second run: "recon <pid> <host>"."""
    return f"recon {os.getpid()} {socket.gethostname()}"


def _date_locked(business_date: str, wait_seconds: float, holder_text: str) -> DateLocked:
    waited = f" after waiting {wait_seconds:g}s" if wait_seconds else ""
    return DateLocked(f"business date {business_date} is held by another run "
                      f"({holder_text}){waited}",
                      next_step="let it finish, or rerun with --wait SECONDS")


def _say_waiting(business_date: str, wait_seconds: float, holder_text: str, *,
                 first: bool) -> None:
    if first:  # once per wait, naming whom we wait for
        log.info("business date %s is held by another run (%s); waiting up to %gs",
                 business_date, holder_text, wait_seconds,
                 extra={"business_date": business_date, "step": "lock_wait"})


def _lock_lost(business_date: str, why: str) -> DateLockLost:
    return DateLockLost(f"lost the lock on {business_date} ({why}): nothing of this run was "
                        f"committed; {business_date} keeps the results of the run that last "
                        f"committed it", next_step="rerun the date")


class _PostgresDateLock(DateLock):
    """D's row in recon_date_locks (sql 007): a fencing token, a lease and a heartbeat.

    Taking D bumps the row's token, names the holder and starts a lease of `lease_seconds`,
    renewed by a heartbeat thread on a connection of its own, whose server session
    (backend_pid, backend_start) the row records. A second run may take D over when the lease
    has run out or that session has ended: on a direct connection the session ends the moment
    the holder's process dies (as an advisory lock did); through a transaction-pooling
    pgbouncer the server session outlives the process and the lease decides. Whatever the
    connection, the write transaction locks the row first and finds its own token there, or
    stops; and while it holds the row nobody can take D.
    """

    def __init__(self, database: Database, business_date: str, run_id: str,
                 lease_seconds: float) -> None:
        self.database = database
        self.business_date = _iso_date(business_date)
        self.run_id = run_id
        self.lease_seconds = lease_seconds
        self.token: int | None = None
        self.lost: str = ""  # why, once the heartbeat found D lost
        self._connection: Connection | None = None
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    # taking and releasing

    def take(self, wait_seconds: float) -> None:
        self._connection = self.database.engine.connect()
        deadline = time.monotonic() + wait_seconds
        waiting = False
        try:
            while holder_text := self._try_take():
                if time.monotonic() >= deadline:
                    raise _date_locked(self.business_date, wait_seconds, holder_text)
                _say_waiting(self.business_date, wait_seconds, holder_text, first=not waiting)
                waiting = True
                time.sleep(min(0.5, max(0.05, deadline - time.monotonic())))
        except BaseException:
            self._close()
            raise
        self._heartbeat = threading.Thread(target=self._beat, daemon=True,
                                           name=f"recon-lock-{self.business_date}")
        self._heartbeat.start()

    def _try_take(self) -> str:
        """Take D if it is free: "" then, else who holds it."""
        connection = self._connection
        params = {"d": self.business_date}
        try:
            with connection.begin():
                connection.execute(sa.text(
                    "INSERT INTO recon_date_locks (business_date) VALUES (:d) "
                    "ON CONFLICT (business_date) DO NOTHING"), params)
                row = connection.execute(sa.text(
                    "SELECT l.token, l.run_id, l.host, l.pid, l.taken_at, "
                    "       coalesce(l.lease_until > now(), false) AS leased, "
                    "       EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.backend_pid "
                    "               AND (a.backend_start IS NULL "
                    "                    OR a.backend_start = l.backend_start)) AS alive "
                    "FROM recon_date_locks l WHERE l.business_date = :d FOR UPDATE NOWAIT"),
                    params).one()
                if row.leased and row.alive:
                    return _holder_text(row)
                self.token = connection.execute(sa.text(
                    "UPDATE recon_date_locks SET token = token + 1, run_id = :run_id, "
                    "host = :host, pid = :pid, taken_at = now(), "
                    "lease_until = now() + make_interval(secs => :lease), "
                    "backend_pid = pg_backend_pid(), backend_start = (SELECT backend_start "
                    "FROM pg_stat_activity WHERE pid = pg_backend_pid()) "
                    "WHERE business_date = :d RETURNING token"),
                    {**params, "run_id": self.run_id or None, "host": socket.gethostname(),
                     "pid": os.getpid(), "lease": self.lease_seconds}).scalar_one()
                return ""
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "pgcode", None) != "55P03":  # lock_not_available (NOWAIT)
                raise
        # Another run is inside its write transaction of D (or taking D this instant).
        with connection.begin():
            row = connection.execute(sa.text(
                "SELECT run_id, host, pid, taken_at FROM recon_date_locks "
                "WHERE business_date = :d"), params).one()
        return _holder_text(row)

    def release(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        with self._mutex:
            if self._connection is None:
                return
            try:
                with self._connection.begin():
                    self._connection.execute(sa.text(
                        "UPDATE recon_date_locks SET run_id = NULL, host = NULL, pid = NULL, "
                        "backend_pid = NULL, backend_start = NULL, lease_until = NULL "
                        "WHERE business_date = :d AND token = :token"),
                        {"d": self.business_date, "token": self.token})
            except SQLAlchemyError:
                pass  # the session or the lease ending frees D all the same
            self._close()

    def _close(self) -> None:
        try:
            self._connection.close()
        except SQLAlchemyError:
            pass
        self._connection = None

    # keeping

    def _interval(self) -> float:
        """Seconds between heartbeats: a sixth of the lease, and well inside the role's
        idle_session_timeout, if it has one (the server would end an idle lock session)."""
        interval = self.lease_seconds / 6
        idle_ms = self._connection.execute(sa.text(
            "SELECT setting::bigint FROM pg_settings WHERE name = 'idle_session_timeout'")
        ).scalar()
        self._connection.commit()
        if idle_ms:
            interval = min(interval, idle_ms / 1000 / 3)
        return max(interval, 0.05)

    def _beat(self) -> None:
        try:
            with self._mutex:
                interval = self._interval()
            while not self._stop.wait(interval):
                with self._mutex:
                    if not self._renew():
                        return
        except SQLAlchemyError as exc:
            self.lost = f"its session ended: {_session_words(exc)}"

    def _renew(self) -> bool:
        connection = self._connection
        with connection.begin():
            token = connection.execute(sa.text(
                "SELECT token FROM recon_date_locks WHERE business_date = :d "
                "FOR UPDATE SKIP LOCKED"), {"d": self.business_date}).scalar()
            if token is None:
                return True  # our write transaction holds the row (or a run is looking at it)
            if token != self.token:
                self.lost = "another run took the date over"
                return False
            connection.execute(sa.text(
                "UPDATE recon_date_locks SET lease_until = now() + make_interval(secs => :lease),"
                " backend_pid = pg_backend_pid(), backend_start = (SELECT backend_start "
                "FROM pg_stat_activity WHERE pid = pg_backend_pid()) WHERE business_date = :d"),
                {"d": self.business_date, "lease": self.lease_seconds})
        return True

    # fencing the write

    def check(self, connection: Connection) -> None:
        token = connection.execute(sa.text(
            "SELECT token FROM recon_date_locks WHERE business_date = :d FOR UPDATE"),
            {"d": self.business_date}).scalar()
        if token != self.token:
            raise _lock_lost(self.business_date, "another run took the date over")
        if self.lost:
            raise _lock_lost(self.business_date, self.lost)

    def confirm(self, connection: Connection) -> None:
        """Just before the commit: the lock's session is alive and the lease runs on, so that no
        run takes D over while this one publishes its reports."""
        if self.lost:
            raise _lock_lost(self.business_date, self.lost)
        with self._mutex:
            try:
                self._connection.execute(sa.text("SELECT 1"))
                self._connection.commit()
            except SQLAlchemyError as exc:
                self.lost = f"its session ended: {_session_words(exc)}"
                raise _lock_lost(self.business_date, self.lost) from None
        connection.execute(sa.text(
            "UPDATE recon_date_locks SET lease_until = now() + make_interval(secs => :lease) "
            "WHERE business_date = :d"), {"d": self.business_date, "lease": self.lease_seconds})


def _holder_text(row) -> str:
    if row.run_id is None and row.pid is None:
        return "holder unknown"
    started = f", started {row.taken_at}" if row.taken_at is not None else ""
    return f"run {row.run_id or '(none)'} on {row.host}, pid {row.pid}{started}"


class _FileDateLock(DateLock):
    """SQLite: flock on `<db file>.<D>.lock`. The lock lives as long as the open file does, so
    it cannot be lost while the process lives, unless the file is deleted or replaced (then a
    second run locks a new file): check and confirm find the path still naming our file."""

    def __init__(self, business_date: str, path: Path | None, handle) -> None:
        self.business_date = business_date
        self.path = path
        self.handle = handle

    def check(self, connection: Connection) -> None:
        if self.path is None:
            return
        try:
            ours = os.stat(self.path).st_ino == os.fstat(self.handle.fileno()).st_ino
        except OSError:
            ours = False
        if not ours:
            raise _lock_lost(self.business_date, f"its lock file {self.path} was removed or "
                                                  f"replaced")

    confirm = check


@contextmanager
def _file_date_lock(database: Database, business_date: str, wait_seconds: float):
    lock_path = _lock_file(database, business_date)
    try:
        handle = open(lock_path, "a+")
    except OSError as exc:
        raise DatabaseUnavailable(
            f"cannot open the lock file {lock_path} of business date {business_date}: "
            f"{exc.strerror or exc}",
            next_step="let the recon user create files in the database file's folder, then "
                      "rerun") from None
    try:
        deadline = time.monotonic() + wait_seconds
        waiting = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _date_locked(business_date, wait_seconds,
                                       holder(database, business_date)) from None
                _say_waiting(business_date, wait_seconds, holder(database, business_date),
                             first=not waiting)
                waiting = True
                time.sleep(min(0.1, max(0.01, deadline - time.monotonic())))
        handle.seek(0)
        handle.truncate()
        handle.write(_holder_tag() + "\n")
        handle.flush()
        yield _FileDateLock(business_date, lock_path, handle)
    finally:
        handle.close()  # closing the file releases the lock; the process dying does too


def _lock_file(database: Database, business_date: str) -> Path:
    return Path(f"{database.url.database}.{business_date}.lock")


def holder(database: Database, business_date: str) -> str:
    """SQLite: who is running `business_date`: its recon_runs row, matched to the lock file's
    holder tag. A run killed earlier leaves a 'running' row too; the tag says which is alive."""
    try:
        tag = HOLDER_TAG.match(_lock_file(database, business_date).read_text().strip())
        with database.engine.connect() as connection:
            rows = connection.execute(sa.text(
                "SELECT run_id, host, pid, started_at FROM recon_runs WHERE business_date = :d "
                "AND outcome = 'running' ORDER BY started_at DESC"),
                {"d": business_date}).all()
    except (SQLAlchemyError, OSError):
        return "holder unknown"
    if tag:
        pid, host = int(tag.group(1)), tag.group(2)
        rows = [row for row in rows if row.pid == pid and row.host.startswith(host)]
        if not rows:
            return f"a run on {host}, pid {pid}, starting"
    if not rows:
        return "holder unknown"
    row = rows[0]
    return f"run {row.run_id} on {row.host}, pid {row.pid}, started {row.started_at}"


# --- the run ledger and the atomic write ----------------------------------------------------------

def _now_text() -> str:
    # Microseconds: runs of one date started within the same second must still be ordered.
    return pd.Timestamp.now(tz="UTC").isoformat(timespec="microseconds")


def start_run(database: Database, run_id: str, business_date: str, version: str) -> None:
    """Record the run as running, and mark runs of D that died without finishing as abandoned."""
    with reachable(database), database.engine.begin() as connection:
        connection.execute(sa.text(
            "UPDATE recon_runs SET outcome = 'abandoned', message = 'process ended before "
            "finishing (killed or crashed)' WHERE business_date = :d AND outcome = 'running'"),
            {"d": business_date})
        connection.execute(sa.text(
            "INSERT INTO recon_runs (run_id, business_date, started_at, outcome, host, pid, "
            "recon_version, database_url) VALUES (:run_id, :d, :started, 'running', :host, :pid, "
            ":version, :url)"),
            {"run_id": run_id, "d": business_date, "started": _now_text(),
             "host": socket.gethostname(), "pid": os.getpid(), "version": version,
             "url": database.shown_url})


def _finish_statement() -> sa.TextClause:
    return sa.text(
        "UPDATE recon_runs SET ended_at = :ended, outcome = :outcome, exit_code = :exit_code, "
        "input_digests = :digests, counts = :counts, message = :message WHERE run_id = :run_id")


def _finish_params(run_id: str, outcome: str, exit_code: int, digests: dict, counts: dict,
                   message: str) -> dict:
    return {"ended": _now_text(), "outcome": outcome, "exit_code": exit_code,
            "digests": json.dumps(digests, sort_keys=True),
            "counts": mask_cards_in_text(json.dumps(counts, sort_keys=True, default=str)),
            "message": mask_cards_in_text(message),
            "run_id": run_id}


def finish_run_without_results(database: Database, run_id: str, outcome: str, exit_code: int,
                               message: str, digests: dict | None = None,
                               counts: dict | None = None) -> None:
    """Close a run that wrote nothing (refused or failed); D's results stay as they were.
    A run already closed as done or incomplete (a COMMIT that went through) stays so."""
    with reachable(database), database.engine.begin() as connection:
        connection.execute(sa.text(_finish_statement().text
                                   + " AND outcome IN ('running', 'abandoned')"),
                           _finish_params(run_id, outcome, exit_code, digests or {},
                                          counts or {}, message))


@dataclass
class CommittedRun:
    """The run whose results D's tables hold, and the reports recorded with them."""

    run_id: str
    reports_path: str | None
    published: bool


def committed_run(database: Database, business_date: str) -> CommittedRun | None:
    """The last run of D that committed results (outcome done or incomplete), None if none."""
    with reachable(database), database.engine.connect() as connection:
        row = connection.execute(sa.text(
            "SELECT run_id, reports_path, reports_published_at FROM recon_runs "
            "WHERE business_date = :d AND outcome IN ('done', 'incomplete') "
            "ORDER BY ended_at DESC, started_at DESC LIMIT 1"), {"d": business_date}).first()
    if row is None:
        return None
    return CommittedRun(row.run_id, row.reports_path, row.reports_published_at is not None)


def run_outcome(database: Database, run_id: str) -> str | None:
    """The ledger's outcome of a run, read afresh; None when the database cannot say."""
    try:
        with reachable(database), database.engine.connect() as connection:
            return connection.execute(sa.text(
                "SELECT outcome FROM recon_runs WHERE run_id = :r"), {"r": run_id}).scalar()
    except (DatabaseUnavailable, SQLAlchemyError):
        return None


def mark_published(database: Database, run_id: str) -> None:
    """Record that OUT/<D> now shows the run's reports."""
    with reachable(database), database.engine.begin() as connection:
        connection.execute(sa.text(
            "UPDATE recon_runs SET reports_published_at = :at WHERE run_id = :r"),
            {"at": _now_text(), "r": run_id})


def write_results(database: Database, run_id: str, business_date: str, outcomes: pd.DataFrame,
                  settlement_exceptions: pd.DataFrame, rejects: pd.DataFrame, *, outcome: str,
                  exit_code: int, digests: dict, counts: dict, message: str,
                  lock: DateLock | None = None, retry_plan: pd.DataFrame | None = None,
                  watchlist: pd.DataFrame | None = None, outbox=None,
                  reports_path: str | None = None, before_finish=None,
                  before_commit=None) -> None:
    """Replace D's rows in the result tables, merge D's borrower notices and close the run, in
    one transaction.

    `retry_plan` (CONTRACT 7, columns RETRY_PLAN_DB_COLUMNS) replaces D's plan when given.

    The transaction first checks the run still holds D (`lock`, see date_lock) and confirms it
    last, before the commit. `outbox` (recon.notices.Outbox) plans the notice merge from D's
    stored notices, read under row locks (see merge_notices). `before_finish` is called once the
    rows are written and before the run is closed (its `counts` are stored then);
    `before_commit` after that, just before the lock is confirmed and the transaction committed.
    An exception from either rolls everything back. A connection lost during the COMMIT itself:
    see _lost_commit. `reports_path` (the run's report folder) is recorded with the
    results.
    """
    lock = lock or DateLock()
    # The text columns that come from outside (codes, messages, details): no full card number
    # is stored, whatever the caller masked before.
    outcomes = protect_rows("outcomes", outcomes)
    settlement_exceptions = protect_rows("settlement_exceptions", settlement_exceptions)
    rejects = protect_rows("rejects", rejects)
    if database.is_postgres:
        with reachable(database):
            _ensure_date_partition(database, business_date)
    with reachable(database), database.engine.connect() as connection:
        # SQLite: take the write lock at BEGIN, so the notice merge reads what no one else
        # can change before the commit (PostgreSQL locks the rows it reads).
        connection.info["recon_begin"] = "BEGIN IMMEDIATE"
        try:
            transaction = connection.begin()
        finally:
            connection.info.pop("recon_begin", None)
        try:
            lock.check(connection)
            _write_rows(database, connection, run_id, business_date, outcomes,
                        settlement_exceptions, rejects, retry_plan, watchlist)
            if outbox is not None:
                merge_notices(database, connection, business_date, outbox.plan)
            if before_finish is not None:
                before_finish()
            connection.execute(_finish_statement(), _finish_params(
                run_id, outcome, exit_code, digests, counts, message))
            # The reports that go with these results, published once this commits.
            connection.execute(sa.text(
                "UPDATE recon_runs SET reports_path = :p WHERE run_id = :r"),
                {"p": reports_path, "r": run_id})
            if before_commit is not None:
                before_commit()
            lock.confirm(connection)
        except BaseException:
            try:
                transaction.rollback()
            except SQLAlchemyError:
                pass  # the connection is gone: the server rolls back
            raise
        try:
            transaction.commit()
        except DBAPIError as exc:
            if not database.is_postgres:
                raise
            _lost_commit(database, run_id, business_date, exc)


def _write_rows(database: Database, connection: Connection, run_id: str, business_date: str,
                outcomes: pd.DataFrame, settlement_exceptions: pd.DataFrame,
                rejects: pd.DataFrame, retry_plan: pd.DataFrame | None = None,
                watchlist: pd.DataFrame | None = None) -> None:
    if database.is_postgres:
        tables = ("settlement_exceptions", "input_rejects")
    else:
        tables = ("installment_outcomes", "settlement_exceptions", "input_rejects")
    if watchlist is not None:
        tables += ("watchlist",)
    for table in tables:
        connection.execute(sa.text(f"DELETE FROM {table} WHERE business_date = :d"),
                           {"d": business_date})
    if database.is_postgres:
        _replace_outcome_partition(connection, business_date, run_id, outcomes)
    else:
        _bulk_insert(database, connection, "installment_outcomes", OUTCOME_COLUMNS, outcomes)
    _bulk_insert(database, connection, "settlement_exceptions", SETTLEMENT_EXCEPTION_COLUMNS,
                 settlement_exceptions)
    _bulk_insert(database, connection, "input_rejects", REJECT_COLUMNS, rejects)
    if retry_plan is not None:
        connection.execute(sa.text("DELETE FROM retry_plan WHERE business_date = :d"),
                           {"d": business_date})
        _bulk_insert(database, connection, "retry_plan", RETRY_PLAN_DB_COLUMNS, retry_plan)
    if watchlist is not None:
        _bulk_insert(database, connection, "watchlist", WATCHLIST_COLUMNS,
                     watchlist.assign(run_id=run_id))


LOST_COMMIT_WAIT = "30s"  # how long to wait for the server to end the lost COMMIT's session


def _lost_commit(database: Database, run_id: str, business_date: str, exc: DBAPIError) -> None:
    """The connection dropped while COMMIT was in flight: did the server commit?

    Ask on a new connection. The run's recon_runs row was closed in the lost transaction, so
    its row lock is held until that transaction ends on the server: SELECT ... FOR UPDATE waits
    for that end, then reads what holds. Committed: return (the run carries on, as done). Not
    committed: DatabaseFailed, D kept its previous results. No answer: CommitUnknown.
    """
    why = _first_line(database, exc)
    where = f"database {database.shown_url}"
    try:
        with database.engine.begin() as connection:
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOST_COMMIT_WAIT}'")
            state = connection.execute(sa.text(
                "SELECT outcome FROM recon_runs WHERE run_id = :run_id FOR UPDATE"),
                {"run_id": run_id}).scalar()
    except SQLAlchemyError:
        raise CommitUnknown(
            f"{where}: the connection was lost during COMMIT ({why}) and the server could not "
            f"be asked since: whether run {run_id} committed its results of {business_date} is "
            f"unknown",
            next_step=f"check recon_runs for run {run_id}: 'running' means D kept its previous "
                      f"results (rerun), anything else that the run's results stand") from None
    if state is not None and state != "running":
        log.warning("the connection was lost during COMMIT (%s); the server confirms the run's "
                    "results of %s were committed", why, business_date,
                    extra={"run_id": run_id, "business_date": business_date})
        return
    raise DatabaseFailed(
        f"{where}: the connection was lost during COMMIT ({why}); the server says it was not "
        f"committed: {business_date} keeps its previous results",
        next_step="rerun the date")


def merge_notices(database: Database, connection: Connection, business_date: str, plan) -> None:
    """Apply the notice merge of D inside the caller's transaction (CONTRACT 7, docs/notices.md).

    D's stored notices are read under row locks (SELECT ... FOR UPDATE on PostgreSQL; SQLite's
    write transaction holds the whole database), so the messaging system's `UPDATE ... SET
    state = 'sent' WHERE notice_id = ... AND state = 'new'` either committed before the read (and
    this run sees the notice taken) or waits for this commit (and then finds it cancelled or
    kept, and updates nothing). `plan(stored)` returns the change (recon.notices.OutboxChange).
    Cancelling is conditional on the state still being `new` all the same; a notice taken
    anyway, or a live notice of the same borrower and content written by a run racing this one
    past the date lock (the unique indexes of sql 010), rolls this run back (OutboxConflict).
    """
    lock = " FOR UPDATE" if database.is_postgres else ""
    rows = connection.execute(sa.text(
        f"SELECT {', '.join(NOTICE_COLUMNS)} FROM borrower_notices WHERE business_date = :d "
        f"ORDER BY notice_id{lock}"), {"d": business_date}).all()
    stored = pd.DataFrame([tuple(_notice_text(value) for value in row) for row in rows],
                          columns=NOTICE_COLUMNS, dtype="str")
    change = plan(stored)
    if change.cancel:
        made_at = change.notices.loc[change.notices["notice_id"].isin(change.cancel),
                                     "cancelled_at"].iloc[0]
        run_id = change.notices.loc[change.notices["notice_id"].isin(change.cancel),
                                    "cancelled_run_id"].iloc[0]
        statement = sa.text(
            "UPDATE borrower_notices SET state = 'cancelled', cancelled_at = :at, "
            "cancelled_run_id = :run WHERE notice_id = :id AND state = 'new'")
        if database.is_postgres:
            cancelled = connection.execute(sa.text(
                "UPDATE borrower_notices SET state = 'cancelled', cancelled_at = :at, "
                "cancelled_run_id = :run WHERE notice_id = ANY(:ids) AND state = 'new'"),
                {"at": made_at, "run": run_id, "ids": list(change.cancel)}).rowcount
        else:
            cancelled = sum(connection.execute(statement, {"at": made_at, "run": run_id,
                                                           "id": notice_id}).rowcount
                            for notice_id in change.cancel)
        if cancelled != len(change.cancel):
            raise OutboxConflict(
                f"{len(change.cancel) - cancelled} notice(s) of {business_date} were taken by "
                f"the messaging system while this run was withdrawing them",
                next_step="nothing was written; rerun the date")
    try:
        _bulk_insert(database, connection, "borrower_notices", STORED_NOTICE_COLUMNS,
                     change.insert)
    except sa.exc.IntegrityError as exc:
        raise OutboxConflict(
            f"another run wrote notices of {business_date} at the same time: "
            f"{_first_line(database, exc)}", next_step="nothing was written; rerun the date") \
            from None


STORED_NOTICE_COLUMNS = ["notice_id", "business_date", "borrower_id", "content_key", "channel",
                         "template_key", "message", "amount", "card_last4", "installments",
                         "send_after", "state", "created_at", "created_run_id"]


def _notice_text(value) -> str:
    """A stored notice's cell as the text recon wrote (timestamps ISO 8601 with offset)."""
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


OUTCOMES_PARENT = "installment_outcomes"


def outcome_partition_name(business_date: str) -> str:
    """The partition of installment_outcomes that holds `business_date` (migration 005). It is
    itself partitioned by date, with one leaf, `<name>_data`, that holds the rows."""
    return f"{OUTCOMES_PARENT}_d{business_date.replace('-', '')}"


def _ensure_date_partition(database: Database, business_date: str) -> None:
    """PostgreSQL: make sure D has its (empty, partitioned) partition, in a transaction of its
    own before the write: creating it is the only step that locks installment_outcomes itself
    beyond a share lock, and ATTACH's lock does not wait for other dates' open writes."""
    date = _iso_date(business_date)
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


def _replace_outcome_partition(connection: Connection, business_date: str, run_id: str,
                               outcomes: pd.DataFrame) -> None:
    """PostgreSQL: swap the leaf holding D's rows for a freshly loaded one.

    installment_outcomes is partitioned by date, and D's partition (made by
    _ensure_date_partition) by date again, with one leaf. Inside the caller's transaction (all
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
    date = _iso_date(business_date)
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
        _copy(connection, stage, copied, outcomes[copied], freeze=True)
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


def _iso_date(business_date: str) -> str:
    """D as YYYY-MM-DD, checked: it is spliced into DDL (table names, partition bounds)."""
    text = str(business_date)
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(f"not a business date: {business_date!r}")
    return text


def _copy_csv(frame: pd.DataFrame) -> bytes:
    """The frame as COPY's CSV, UTF-8: missing values and empty strings as unquoted empty
    fields (NULL), every other string quoted.

    Arrow's CSV writer is about ten times faster than DataFrame.to_csv (0.04 s against 0.42 s
    for 100k outcome rows).
    """
    loose = frame.select_dtypes(include=["object", "category"], exclude=["str"]).columns
    if len(loose):  # Python objects of mixed types: as their text, so Arrow can type them
        frame = frame.astype({column: "string" for column in loose})
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for index, column in enumerate(table.columns):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            empty_as_null = pc.if_else(pc.equal(column, ""), pa.scalar(None, column.type),
                                       column)
            table = table.set_column(index, table.field(index), empty_as_null)
    sink = io.BytesIO()
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False,
                                                      quoting_style="needed"))
    return sink.getvalue()


COPY_CHUNK_BYTES = 1 << 20  # psycopg2 reads the stream 8 KiB at a time unless told otherwise


def _copy(connection: Connection, table: str, columns: list[str], frame: pd.DataFrame, *,
          freeze: bool = False) -> None:
    """COPY the frame into `table` inside the connection's transaction: one stream per table.

    The driver's errors are raised as SQLAlchemy's, like any other statement's, so a connection
    lost mid-COPY is "database unavailable" (exit 5).
    """
    import psycopg2

    # FREEZE (only for a table created in this transaction) writes the rows already frozen,
    # sparing the first reader and vacuum a rewrite of every page.
    options = "FORMAT csv, FREEZE" if freeze else "FORMAT csv"
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH ({options})"
    buffer = io.BytesIO(_copy_csv(frame))
    try:
        # When the server ends the session mid-COPY, psycopg2 prints an exception chain to
        # sys.stderr on its own (its CONTEXT line can quote a row being loaded): the error raised
        # below is what the run reports, in one line, so that print is dropped.
        with connection.connection.driver_connection.cursor() as cursor, \
                redirect_stderr(io.StringIO()):
            cursor.copy_expert(statement, buffer, size=COPY_CHUNK_BYTES)
    except psycopg2.Error as exc:
        raise DBAPIError.instance(
            statement, None, exc, psycopg2.Error, dialect=connection.dialect,
            connection_invalidated=connection.dialect.is_disconnect(
                exc, connection.connection.driver_connection, None)) from exc


def _bulk_insert(database: Database, connection: Connection, table: str, columns: list[str],
                 frame: pd.DataFrame) -> None:
    if frame.empty:
        return
    frame = frame[columns]
    if database.is_postgres:
        _copy(connection, table, columns, frame)
        return
    records = frame.astype(object).where(frame.notna(), None)
    records = records.replace({"": None})
    placeholders = ", ".join("?" for _ in columns)
    connection.exec_driver_sql(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",
        list(records.itertuples(index=False, name=None)))


# --- reading stored results (run diff, trend report) ----------------------------------------------

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
        table = _select_table(database, connection, query, (business_date,), types,
                              block_bytes=block_bytes, strings_can_be_null=True)
    frame = table.to_pandas()
    frame["root_cause"] = frame["root_cause"].fillna("")
    return frame, run_id or ""


def read_earlier_attempts(database: Database, business_date: str, since: str) -> pd.DataFrame:
    """Sent attempts stored for dates from `since` to before D, per installment not collected
    on them (loan_id, installment_no, attempts): the retry plan's attempt caps. Rows written
    before migration 009 have no attempts and count none."""
    query = ("SELECT loan_id, installment_no, sum(attempts) FROM installment_outcomes "
             "WHERE business_date >= {0} AND business_date < {0} AND root_cause IS NOT NULL "
             "AND attempts > 0 GROUP BY loan_id, installment_no")
    with reachable(database), database.engine.connect() as connection:
        if database.is_postgres:
            with connection.connection.driver_connection.cursor() as cursor:
                cursor.execute(query.format("%s::date"), (since, business_date))
                rows = cursor.fetchall()
        else:
            rows = connection.exec_driver_sql(query.format("?"), (since, business_date)).fetchall()
    columns = list(zip(*rows)) or [(), (), ()]
    return pd.DataFrame({"loan_id": pd.Series(columns[0], dtype="str"),
                         "installment_no": pd.Series(columns[1], dtype="int64"),
                         "attempts": pd.Series(columns[2], dtype="int64")})


def has_results_schema(database: Database) -> bool:
    with reachable(database), database.engine.connect() as connection:
        return sa.inspect(connection).has_table("installment_outcomes")


def read_daily_root_causes(database: Database, date_from: str, date_to: str) -> pd.DataFrame:
    """Rows of the analyst view `daily_root_causes` for the dates, amounts as exact text."""
    with reachable(database), database.engine.connect() as connection:
        frame = pd.read_sql(sa.text(
            "SELECT business_date, root_cause, gateway, status, installments, amount_due, "
            "amount_outstanding FROM daily_root_causes WHERE business_date BETWEEN :a AND :b "
            "ORDER BY business_date, gateway, root_cause, status"),
            connection, params={"a": date_from, "b": date_to}, coerce_float=False)
    frame["business_date"] = frame["business_date"].astype("str")
    for column in ("amount_due", "amount_outstanding"):
        frame[column] = frame[column].map(str)
    return frame


def read_days_past_due(database: Database, date_from: str, date_to: str) -> pd.DataFrame:
    """Per business date and days-past-due bucket (0, 1-30, 31-60, over 60): installments
    collected and not, and the amount outstanding, exact. Rows from before migration 009 have no
    days_past_due: they were all due on their date (the contract then required it), so 0."""
    days = "COALESCE(days_past_due, 0)"
    not_collected = "status NOT IN ('paid', 'overpaid')"
    with reachable(database), database.engine.connect() as connection:
        frame = pd.read_sql(sa.text(
            f"SELECT business_date, CASE WHEN {days} = 0 THEN '0' WHEN {days} <= 30 THEN '1-30' "
            f"WHEN {days} <= 60 THEN '31-60' ELSE 'over 60' END AS bucket, "
            f"sum(CASE WHEN {not_collected} THEN 0 ELSE 1 END) AS collected, "
            f"sum(CASE WHEN {not_collected} THEN 1 ELSE 0 END) AS not_collected, "
            f"sum(CASE WHEN {not_collected} THEN amount_due - amount_settled ELSE 0 END) "
            f"AS amount_outstanding FROM installment_outcomes "
            f"WHERE business_date BETWEEN :a AND :b GROUP BY 1, 2 ORDER BY 1, 2"),
            connection, params={"a": date_from, "b": date_to}, coerce_float=False)
    frame["business_date"] = frame["business_date"].astype("str")
    frame["amount_outstanding"] = frame["amount_outstanding"].map(str)
    return frame


def read_retry_actions(database: Database, date_from: str, date_to: str) -> pd.DataFrame:
    """Per business date and action of the stored retry plans: rows and their amount, exact."""
    with reachable(database), database.engine.connect() as connection:
        if not sa.inspect(connection).has_table("retry_plan"):
            return pd.DataFrame(columns=["business_date", "action", "plan_rows", "amount"])
        frame = pd.read_sql(sa.text(
            "SELECT business_date, action, count(*) AS plan_rows, "
            "COALESCE(sum(amount), 0) AS amount FROM retry_plan "
            "WHERE business_date BETWEEN :a AND :b GROUP BY 1, 2 ORDER BY 1, 2"),
            connection, params={"a": date_from, "b": date_to}, coerce_float=False)
    frame["business_date"] = frame["business_date"].astype("str")
    frame["amount"] = frame["amount"].map(str)
    return frame


def read_stored_runs(database: Database, date_from: str, date_to: str) -> pd.DataFrame:
    """Per business date with results, the run that wrote them: run_id, outcome, exit_code."""
    with reachable(database), database.engine.connect() as connection:
        frame = pd.read_sql(sa.text(
            "SELECT s.business_date, s.run_id, r.outcome, r.exit_code, r.ended_at "
            "FROM (SELECT business_date, min(run_id) AS run_id FROM installment_outcomes "
            "      WHERE business_date BETWEEN :a AND :b GROUP BY business_date) s "
            "JOIN recon_runs r ON r.run_id = s.run_id ORDER BY s.business_date"),
            connection, params={"a": date_from, "b": date_to})
    frame["business_date"] = frame["business_date"].astype("str")
    return frame


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
        table = _select_table(database, connection, query, (date_from, date_to),
                              {column: pa.string() for column in columns})
    return table.to_pandas().astype("str")


def _select_table(database: Database, connection: Connection, query: str, params: tuple,
                  types: dict[str, pa.DataType], *, block_bytes: int | None = None,
                  strings_can_be_null: bool = False) -> pa.Table:
    """The rows of `query` (one `{}` per parameter) as an Arrow table of `types`' columns, read
    through the driver: COPY on PostgreSQL (a million rows through SQLAlchemy's row objects
    take seconds), the sqlite3 cursor on SQLite."""
    if database.is_postgres:
        cursor = connection.connection.driver_connection.cursor()
        select = cursor.mogrify(query.format(*["%s"] * len(params)), params).decode()
        buffer = io.BytesIO()
        cursor.copy_expert(f"COPY ({select}) TO STDOUT WITH (FORMAT csv, HEADER)", buffer)
        cursor.close()
        buffer.seek(0)
        read = pa_csv.ReadOptions(block_size=block_bytes) if block_bytes else None
        return pa_csv.read_csv(buffer, read_options=read, convert_options=pa_csv.ConvertOptions(
            column_types=types, strings_can_be_null=strings_can_be_null))
    rows = connection.exec_driver_sql(query.format(*["?"] * len(params)), params).fetchall()
    values = list(zip(*rows)) or [()] * len(types)
    return pa.table({name: pa.array(column, type_)
                     for (name, type_), column in zip(types.items(), values)})


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
