"""CONTRACT 4.4: a killed run leaves the previous results of D as they were, and two runs of the
same D never both write. On PostgreSQL (advisory lock) and on the SQLite default (lock file)."""

from __future__ import annotations

import datetime as dt
import time

from recon.sinks import database as db
from tests.integration.helpers import (DAYS, HeldRun, expected_exit_code, expected_outcomes,
                                       recon_run, runs, snapshot, start_recon_run)

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


def test_wait_gives_up_after_the_given_seconds_with_exit_5(database_url, tmp_path):
    held = HeldRun(DAY, database_url, tmp_path)
    try:
        held.wait_until_holding()
        started = time.monotonic()
        refused = recon_run(DAY, database_url, tmp_path, "--wait", "2")
        waited = time.monotonic() - started
    finally:
        held.release()
    assert refused.returncode == 5, refused.stderr
    assert "held by another run" in refused.stderr and "after waiting 2s" in refused.stderr
    assert waited >= 2


def test_run_with_wait_runs_after_the_holder_finishes(database_url, tmp_path):
    held = HeldRun(DAY, database_url, tmp_path)
    held.wait_until_holding()
    waiting = start_recon_run(DAY, database_url, tmp_path, "--wait", "60")
    time.sleep(2)
    assert waiting.poll() is None, "the waiting run did not wait"

    released_at = dt.datetime.now(dt.timezone.utc)
    held_code, _, held_err = held.release()
    out, err = waiting.communicate(timeout=60)

    assert held_code == expected_exit_code(DAY), held_err
    assert waiting.returncode == expected_exit_code(DAY), err
    first, second = runs(database_url, DAY)
    assert as_utc(second.started_at) >= released_at  # it started only once the holder let go
    stored = snapshot(database_url, DAY)
    assert len(stored["installment_outcomes"]) == len(expected_outcomes(DAY))
    assert {row["run_id"] for row in stored["installment_outcomes"]} == {second.run_id}


def test_different_dates_do_not_block_each_other(database_url, tmp_path):
    held = HeldRun(DAY, database_url, tmp_path)
    held.wait_until_holding()
    other = start_recon_run(DAYS[0], database_url, tmp_path)
    if database_url.startswith("sqlite"):
        # SQLite has one writer per file: the other date's write waits for the held commit.
        held.release()
        out, err = other.communicate(timeout=60)
    else:
        out, err = other.communicate(timeout=60)
        held.release()
    assert other.returncode == expected_exit_code(DAYS[0]), err


def test_date_lock_is_released_when_the_holder_ends(database_url):
    database = db.connect(database_url)
    try:
        db.ensure_schema(database)
        with db.date_lock(database, DAY):
            pass
        with db.date_lock(database, DAY):
            pass
    finally:
        database.dispose()
