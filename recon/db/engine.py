"""The connection to the results database (CONTRACT 4.4) and what its failures mean.

PostgreSQL in production (psycopg2); an SQLite file by default. Nothing connects at import time.
The driver's errors about reaching the server, or about the server failing a run (timeouts, a
full disk, the session ended), become one-line DatabaseUnavailable / DatabaseFailed (exit 5).
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from recon.db.urls import normalise_url, safe_url_text, scrub
from recon.errors import DatabaseFailed, DatabaseUnavailable, UsageError


# sqlite3 reports both "cannot reach the file" and "bad SQL" as OperationalError; these are the
# former (anything else is a bug and keeps its traceback).
SQLITE_UNAVAILABLE = re.compile(r"unable to open|database is locked|disk i/o|readonly database|"
                                r"disk is full|not a database|locking protocol", re.IGNORECASE)


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


def is_unavailable(database: Database, exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, sa.exc.OperationalError):
        return False
    return database.is_postgres or bool(SQLITE_UNAVAILABLE.search(str(exc.orig)))


def first_line(database: Database, exc: DBAPIError) -> str:
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
        if is_unavailable(database, exc):
            raise _unavailable(database, first_line(database, exc)) from None
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
    message = first_line(database, exc)
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


def session_words(exc: BaseException) -> str:
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
