"""The date lock cannot be lost without the run knowing (issue 11): a run whose lock session
ends, or whose date another run took over, commits nothing and exits 5 saying so; the other
run's results stand. On SQLite, a lock file removed under a running run does the same."""

from __future__ import annotations

import sqlalchemy as sa

from recon.db.urls import normalise_url
from tests.integration.helpers import (DAYS, HeldRun, expected_exit_code, query, recon_run,
                                       runs, snapshot)

DAY = DAYS[1]


def terminate_lock_session(url: str, day: str) -> None:
    """The server ends the session that keeps D's lock (what a restart, idle_session_timeout or
    an administrator does to it)."""
    [(pid,)] = query(url, "SELECT backend_pid FROM recon_date_locks WHERE business_date = :d",
                     d=day)
    engine = sa.create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT pg_terminate_backend(:pid, 10000)"),
                                      {"pid": pid}).scalar()
    finally:
        engine.dispose()


def assert_lost_the_lock(code: int, err: str) -> None:
    assert code == 5, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert f"lost the lock on {DAY}" in err


def test_run_whose_lock_session_ended_mid_write_commits_nothing(postgres_url, tmp_path):
    assert recon_run(DAY, postgres_url, tmp_path).returncode == expected_exit_code(DAY)
    before = snapshot(postgres_url, DAY)
    held = HeldRun(DAY, postgres_url, tmp_path)  # every row written, not committed
    try:
        held.wait_until_holding()
        terminate_lock_session(postgres_url, DAY)
        code, _out, err = held.release()
    finally:
        held.kill()

    assert_lost_the_lock(code, err)
    assert "its session ended" in err
    assert snapshot(postgres_url, DAY) == before
    finished, lost = runs(postgres_url, DAY)
    assert (lost.outcome, lost.exit_code) == ("failed", 5)
    assert f"lost the lock on {DAY}" in lost.message
    # D is free again at once: the next run takes it without waiting.
    assert recon_run(DAY, postgres_url, tmp_path).returncode == expected_exit_code(DAY)


def test_date_taken_over_after_the_lock_session_ended_keeps_the_second_runs_results(
        postgres_url, tmp_path):
    held = HeldRun(DAY, postgres_url, tmp_path, at="write")  # holds D, has not written yet
    try:
        held.wait_until_holding()
        terminate_lock_session(postgres_url, DAY)
        second = recon_run(DAY, postgres_url, tmp_path)
        assert second.returncode == expected_exit_code(DAY), second.stderr
        after_second = snapshot(postgres_url, DAY)
        code, _out, err = held.release()
    finally:
        held.kill()

    assert_lost_the_lock(code, err)
    assert snapshot(postgres_url, DAY) == after_second
    first, second_run = runs(postgres_url, DAY)
    assert first.outcome == "failed" and second_run.outcome == "incomplete"
    assert {row["run_id"] for rows in after_second.values() for row in rows} == {
        second_run.run_id}


def test_sqlite_run_whose_lock_file_was_replaced_commits_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'recon.db'}"
    held = HeldRun(DAY, url, tmp_path, at="write")
    try:
        held.wait_until_holding()
        (tmp_path / f"recon.db.{DAY}.lock").unlink()  # a clean-up job, an operator
        second = recon_run(DAY, url, tmp_path)
        assert second.returncode == expected_exit_code(DAY), second.stderr
        after_second = snapshot(url, DAY)
        code, _out, err = held.release()
    finally:
        held.kill()

    assert_lost_the_lock(code, err)
    assert "lock file" in err
    assert snapshot(url, DAY) == after_second
    assert [run.outcome for run in runs(url, DAY)] == ["failed", "incomplete"]
