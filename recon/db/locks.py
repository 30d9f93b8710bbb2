"""One writer per business date: the lock a run holds on D from before it reads until after it
publishes (PostgreSQL: a row with a fencing token and a lease; SQLite: a file lock)."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from recon.db.engine import Database, reachable, session_words
from recon.db.tables import iso_date
from recon.errors import DatabaseUnavailable, DateLocked, DateLockLost

log = logging.getLogger("recon")
HOLDER_TAG = re.compile(r"^recon (\d+) (\S+)$")  # "recon <pid> <host>": who holds a date lock
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
        self.business_date = iso_date(business_date)
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
            self.lost = f"its session ended: {session_words(exc)}"

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
                self.lost = f"its session ended: {session_words(exc)}"
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
