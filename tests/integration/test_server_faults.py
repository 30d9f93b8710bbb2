"""Faults of the server itself, on a private cluster this module creates and drops (never the
shared server): a restart, the role's idle_session_timeout, statement_timeout and lock_timeout,
a full disk. Each: exit 5, one line saying what happened, the run's ledger row closed with
that line, and D's previous results exactly as they were."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa

from recon.db.urls import normalise_url
from tests.integration.helpers import (DAYS, HeldRun, expected_exit_code, recon_run, runs,
                                       snapshot)
from tests.integration.servers import Cluster

DAY = DAYS[1]
ROLE = "recon_faults"

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def cluster(postgres_server_url):  # postgres_server_url: skip/fail like every Postgres test
    server = Cluster()
    try:
        server.sql(f"CREATE ROLE {ROLE} LOGIN")
        yield server
    finally:
        server.drop()


@pytest.fixture
def url(cluster):
    """A fresh database owned by the unprivileged role recon runs as; its settings reset."""
    name = f"recon_f_{uuid.uuid4().hex[:10]}"
    cluster.sql(f"CREATE DATABASE {name} OWNER {ROLE}")
    try:
        yield normalise_url(cluster.url).set(username=ROLE, database=name).render_as_string(
            hide_password=False)
    finally:
        cluster.sql(f"ALTER ROLE {ROLE} RESET ALL")
        cluster.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def assert_one_line(result_code: int, err: str, *words: str) -> None:
    assert result_code == 5, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err


def assert_failed_run_recorded(url: str, err: str) -> None:
    finished, failed = runs(url, DAY)
    assert finished.outcome == "incomplete"
    assert (failed.outcome, failed.exit_code) == ("failed", 5)
    assert failed.message in err  # the same line the operator saw


def test_server_restarted_while_a_run_holds_its_date(cluster, url, tmp_path):
    assert recon_run(DAY, url, tmp_path).returncode == expected_exit_code(DAY)
    before = snapshot(url, DAY)
    held = HeldRun(DAY, url, tmp_path, at="write")
    try:
        held.wait_until_holding()
        cluster.ctl("restart")
        code, _out, err = held.release()
    finally:
        held.kill()

    assert_one_line(code, err, f"lost the lock on {DAY}")
    assert snapshot(url, DAY) == before
    assert_failed_run_recorded(url, err)
    assert recon_run(DAY, url, tmp_path).returncode == expected_exit_code(DAY)


def test_role_idle_session_timeout_does_not_cost_a_run_its_date(cluster, url, tmp_path):
    cluster.sql(f"ALTER ROLE {ROLE} SET idle_session_timeout = '1s'")
    held = HeldRun(DAY, url, tmp_path, at="write")
    try:
        held.wait_until_holding()
        # An idle session of the role, opened after the holder's, ended by the server: the
        # holder's lock session has been idle that long too, between heartbeats.
        probe = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
        assert select.select([probe.fileno()], [], [], 30)[0], "idle session never ended"
        probe.close()
        second = recon_run(DAY, url, tmp_path)
        code, _out, err = held.release()
    finally:
        held.kill()

    assert second.returncode == 5, second.stderr
    assert "is held by another run" in second.stderr
    assert code == expected_exit_code(DAY), err
    assert [run.outcome for run in runs(url, DAY)] == ["incomplete"]


@contextmanager
def table_locked(cluster: Cluster, database: str, table: str):
    """Another session holds an exclusive lock on `table` (an analyst's ALTER, a VACUUM FULL)."""
    engine = sa.create_engine(normalise_url(cluster.url).set(database=database))
    try:
        with engine.connect() as connection, connection.begin():
            connection.exec_driver_sql(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        engine.dispose()


@pytest.mark.parametrize("setting, value, words", [
    ("statement_timeout", "1s",
     ["a statement timed out after 1s (statement_timeout of role recon_faults)"]),
    ("lock_timeout", "300ms",
     ["waited longer than 300ms (lock_timeout of role recon_faults) for a lock"]),
], ids=["statement_timeout", "lock_timeout"])
def test_role_timeout_is_named_and_closes_the_run(cluster, url, tmp_path, setting, value, words):
    assert recon_run(DAY, url, tmp_path).returncode == expected_exit_code(DAY)
    before = snapshot(url, DAY)
    cluster.sql(f"ALTER ROLE {ROLE} SET {setting} = '{value}'")
    with table_locked(cluster, normalise_url(url).database, "settlement_exceptions"):
        result = recon_run(DAY, url, tmp_path)

    assert_one_line(result.returncode, result.stderr, *words)
    assert "unavailable" not in result.stderr
    assert snapshot(url, DAY) == before
    assert_failed_run_recorded(url, result.stderr)


@pytest.fixture
def small_disk(cluster):
    """A tablespace on an 8 MB tmpfs (skips where this sandbox may not mount)."""
    mount = Path(tempfile.mkdtemp(prefix="recon-small-disk-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                             capture_output=True)
    if mounted.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        location = mount / "tablespace"
        location.mkdir()
        shutil.chown(location, "postgres", "postgres")
        cluster.sql(f"CREATE TABLESPACE recon_small LOCATION '{location}'")
        cluster.sql(f"GRANT CREATE ON TABLESPACE recon_small TO {ROLE}")
        yield mount
    finally:
        (mount / "filler").unlink(missing_ok=True)
        yield_cleanup = cluster.sql  # databases using it are dropped by `url` first
        try:
            yield_cleanup("DROP TABLESPACE IF EXISTS recon_small")
        finally:
            subprocess.run(["umount", str(mount)], capture_output=True)
            shutil.rmtree(mount, ignore_errors=True)


def test_full_database_disk_is_named_and_closes_the_run(cluster, small_disk, tmp_path):
    name = f"recon_f_{uuid.uuid4().hex[:10]}"
    cluster.sql(f"CREATE DATABASE {name} OWNER {ROLE}")
    url = normalise_url(cluster.url).set(username=ROLE, database=name).render_as_string(
        hide_password=False)
    try:
        assert recon_run(DAY, url, tmp_path).returncode == expected_exit_code(DAY)
        before = snapshot(url, DAY)
        # New tables (the run's fresh partition of D) go to the small disk, which is then full.
        cluster.sql(f"ALTER DATABASE {name} SET default_tablespace = recon_small")
        with open(small_disk / "filler", "wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * (1 << 16))
                    filler.flush()
            except OSError:
                pass
        result = recon_run(DAY, url, tmp_path)

        assert_one_line(result.returncode, result.stderr, "the server's disk is full")
        assert "unavailable" not in result.stderr
        assert snapshot(url, DAY) == before
        assert_failed_run_recorded(url, result.stderr)
    finally:
        cluster.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
