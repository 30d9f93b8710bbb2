"""CONTRACT 4.4: a killed run leaves the previous results of D as they were, and two runs of the
same D never both write. On PostgreSQL (advisory lock) and on the SQLite default (lock file)."""

from __future__ import annotations

import datetime as dt

import pytest

from recon.errors import DateLocked
from recon.clock import utc_now
from recon.db import locks
from recon.db.engine import connect
from recon.db.migrations import ensure_schema
from tests.integration.helpers import (DAYS, HeldRun, expected_exit_code, expected_outcomes,
                                       recon_run, runs, snapshot, start_recon_run,
                                       wait_for_stderr_line)

DAY = DAYS[1]


def as_utc(timestamp) -> dt.datetime:
    """A recon_runs timestamp (timestamptz on PostgreSQL, ISO text on SQLite) in UTC."""
    if isinstance(timestamp, str):
        timestamp = dt.datetime.fromisoformat(timestamp)
    return timestamp.astimezone(dt.timezone.utc)


def test_run_killed_mid_write_leaves_the_previous_results_exactly(database_url, tmp_path):
    first = recon_run(DAY, database_url, tmp_path)
    assert first.returncode == expected_exit_code(DAY), first.stderr
    before = snapshot(database_url, DAY)
    assert len(before["installment_outcomes"]) == len(expected_outcomes(DAY))

    held = HeldRun(DAY, database_url, tmp_path, releasable=False)
    held.wait_until_holding()  # every row of D deleted and rewritten, not yet committed
    held.kill()

    assert snapshot(database_url, DAY) == before
    finished, killed = runs(database_url, DAY)
    assert (finished.outcome, killed.outcome) == ("incomplete", "running")
    assert killed.ended_at is None and killed.exit_code is None

    # The next run of D takes over and records that the killed one never finished.
    rerun = recon_run(DAY, database_url, tmp_path, "--wait", "30")
    assert rerun.returncode == expected_exit_code(DAY), rerun.stderr
    outcomes = [run.outcome for run in runs(database_url, DAY)]
    assert outcomes == ["incomplete", "abandoned", "incomplete"]
    after = snapshot(database_url, DAY)
    assert len(after["installment_outcomes"]) == len(expected_outcomes(DAY))


def test_second_run_of_a_held_date_exits_5_naming_the_holder(database_url, tmp_path):
    held = HeldRun(DAY, database_url, tmp_path)
    try:
        held.wait_until_holding()
        [holder] = runs(database_url, DAY)

        refused = recon_run(DAY, database_url, tmp_path)

        assert refused.returncode == 5
        assert f"run {holder.run_id}" in refused.stderr
        assert f"pid {holder.pid}" in refused.stderr
        assert "--wait" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert len(runs(database_url, DAY)) == 1  # the refused run wrote nothing, not even a run
    finally:
        code, _, err = held.release()
    assert code == expected_exit_code(DAY), err


class FakeClock:
    """Stands in for the `time` module inside recon.db.locks: sleeping advances it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_retries_until_the_given_seconds_then_gives_up_with_exit_5(database_url,
                                                                        monkeypatch):
    database = connect(database_url)
    try:
        ensure_schema(database, clock=utc_now)
        with locks.date_lock(database, DAY):  # held by "another run" (its own connection or file)
            clock = FakeClock()
            monkeypatch.setattr(locks, "time", clock)
            with pytest.raises(DateLocked) as refused:
                with locks.date_lock(database, DAY, wait_seconds=2):
                    raise AssertionError("took a lock that is held")
            monkeypatch.undo()
    finally:
        database.dispose()
    assert refused.value.exit_code == 5
    assert "held by another run" in str(refused.value)
    assert "after waiting 2s" in str(refused.value)
    assert len(clock.sleeps) > 1  # it tried again, more than once ...
    assert 1.999 <= sum(clock.sleeps) < 2.6  # ... for as long as it was told, no longer


def test_run_with_wait_runs_after_the_holder_finishes(database_url, tmp_path):
    held = HeldRun(DAY, database_url, tmp_path)
    held.wait_until_holding()
    waiting = start_recon_run(DAY, database_url, tmp_path, "--wait", "60", "-v")
    try:
        said = wait_for_stderr_line(waiting, "is held by another run")
    except BaseException:
        waiting.kill()
        held.kill()
        raise
    assert "waiting up to 60s" in said

    held_code, _, held_err = held.release()
    out, err = waiting.communicate(timeout=60)

    assert held_code == expected_exit_code(DAY), held_err
    assert waiting.returncode == expected_exit_code(DAY), err
    first, second = runs(database_url, DAY)
    assert first.ended_at is not None
    assert as_utc(second.started_at) >= as_utc(first.ended_at)  # only once the holder let go
    stored = snapshot(database_url, DAY)
    assert len(stored["installment_outcomes"]) == len(expected_outcomes(DAY))
    assert {row["run_id"] for row in stored["installment_outcomes"]} == {second.run_id}


def test_locks_of_different_dates_are_independent_and_of_one_date_exclusive(database_url):
    database = connect(database_url)
    try:
        ensure_schema(database, clock=utc_now)
        with locks.date_lock(database, DAY):
            with locks.date_lock(database, DAYS[0]):  # another date: taken while D is held
                with pytest.raises(DateLocked):
                    with locks.date_lock(database, DAY):
                        raise AssertionError("took a lock that is held")
                with pytest.raises(DateLocked):
                    with locks.date_lock(database, DAYS[0]):
                        raise AssertionError("took a lock that is held")
    finally:
        database.dispose()


@pytest.mark.postgres
def test_a_run_of_another_date_finishes_while_one_date_is_held(postgres_url, tmp_path):
    # PostgreSQL writes dates side by side (SQLite has one writer per file, so there the other
    # date's write waits for the held commit: the lock-level test above covers it).
    held = HeldRun(DAY, postgres_url, tmp_path)
    held.wait_until_holding()
    try:
        other = recon_run(DAYS[0], postgres_url, tmp_path)
        assert other.returncode == expected_exit_code(DAYS[0]), other.stderr
        assert held.process.poll() is None  # still holding D while the other date finished
    finally:
        held_code, _, held_err = held.release()
    assert held_code == expected_exit_code(DAY), held_err


def test_date_lock_is_released_when_the_holder_ends(database_url):
    database = connect(database_url)
    try:
        ensure_schema(database, clock=utc_now)
        with locks.date_lock(database, DAY):
            pass
        with locks.date_lock(database, DAY):
            pass
    finally:
        database.dispose()
