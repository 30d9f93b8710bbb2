"""Stop signals and dead workers (issue 11): SIGINT / SIGTERM end a run with 130 / 143, roll
it back and close its ledger row `interrupted`; under --jobs a dead worker costs only its own
date, and a signal to the parent stops every worker and the range. PostgreSQL and SQLite."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal

import pytest

from tests.conftest import FIXTURES
from tests.integration.helpers import (DAYS, expected_exit_code, faulty_recon, published, query,
                                       recon_run, results_run_id, runs, snapshot, wait_for_file)
from tests.synth import generate_day

DAY = DAYS[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is not alive either.
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().split(") ", 1)[1][0] != "Z"


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_rolls_the_run_back_and_records_it_interrupted(database_url, tmp_path,
                                                                     signum, code):
    first = recon_run(DAY, database_url, tmp_path)
    assert first.returncode == expected_exit_code(DAY), first.stderr
    before = snapshot(database_url, DAY)
    shown = published(tmp_path / "out", DAY)

    process = faulty_recon("run", "--date", DAY, "--inbox", str(FIXTURES / "inbox"), "--out",
                           str(tmp_path / "out"), "--db", database_url, cwd=tmp_path,
                           faults={DAY: "before_commit:hold"}, background=True)
    wait_for_file(tmp_path / f"{DAY}.ready", process)  # every row written, not committed
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)

    assert process.returncode == code, err
    assert "Traceback" not in err and "Aborted" not in err
    [line] = err.strip().splitlines()
    assert (f"recon {DAY}: stopped by {signal.Signals(signum).name} before committing: nothing "
            f"was written for this date") in line
    assert snapshot(database_url, DAY) == before
    stopped = runs(database_url, DAY)[-1]
    assert (stopped.outcome, stopped.exit_code) == ("interrupted", code)
    assert stopped.ended_at is not None
    assert published(tmp_path / "out", DAY) == shown
    assert not (tmp_path / "out" / ".runs" / DAY / stopped.run_id).exists()


def range_inbox(tmp_path, days: list[str]):
    """The fixture days, and small synthetic days for the dates after them."""
    inbox = tmp_path / "inbox"
    for day in days:
        if day in DAYS:
            shutil.copytree(FIXTURES / "inbox" / day, inbox / day)
        else:
            generate_day(dt.date.fromisoformat(day), 300, inbox, seed=7, bad_rows=False)
    return inbox


def test_a_killed_worker_costs_only_its_own_date(database_url, tmp_path):
    days = ["2026-11-27", "2026-11-28", "2026-11-29", "2026-11-30"]
    inbox = range_inbox(tmp_path, days)
    process = faulty_recon("run", "--from", days[0], "--to", days[-1], "--jobs", "2", "--inbox",
                           str(inbox), "--out", str(tmp_path / "out"), "--db", database_url,
                           cwd=tmp_path, faults={days[0]: "before_commit:hold"},
                           background=True)
    worker = int(wait_for_file(tmp_path / f"{days[0]}.ready", process))
    os.kill(worker, signal.SIGKILL)
    out, err = process.communicate(timeout=300)

    assert process.returncode == 1, err
    assert "Traceback" not in err
    assert (f"recon {days[0]}: the worker process running this date died (killed by SIGKILL)"
            in err)
    assert results_run_id(database_url, days[0]) is None
    for day in days[1:]:
        [finished] = runs(database_url, day)
        assert finished.outcome in ("done", "incomplete"), finished.message
        assert f"recon {day}: {finished.outcome} (exit {finished.exit_code})" in out
        assert results_run_id(database_url, day) == published(tmp_path / "out", day)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_to_the_parent_stops_every_worker_and_the_range(database_url, tmp_path,
                                                                      signum, code):
    days = ["2026-11-27", "2026-11-28", "2026-11-29"]
    inbox = range_inbox(tmp_path, days)
    process = faulty_recon("run", "--from", days[0], "--to", days[-1], "--jobs", "2", "--inbox",
                           str(inbox), "--out", str(tmp_path / "out"), "--db", database_url,
                           cwd=tmp_path, faults={days[0]: "before_commit:hold",
                                                          days[1]: "before_load:hold"},
                           background=True)
    workers = [int(wait_for_file(tmp_path / f"{day}.ready", process)) for day in days[:2]]
    process.send_signal(signum)  # to the parent only, as `kill` or systemd's main-PID stop
    out, err = process.communicate(timeout=120)

    assert process.returncode == code, err
    assert "Traceback" not in err
    assert not any(alive(pid) for pid in workers)
    for day in days[:2]:
        assert f"recon {day}: stopped by {signal.Signals(signum).name} before committing" in err
        assert results_run_id(database_url, day) is None
        [stopped] = runs(database_url, day)
        assert (stopped.outcome, stopped.exit_code) == ("interrupted", code)
    assert runs(database_url, days[2]) == []  # never started
    assert f"not started: {days[2]}" in err
    assert query(database_url, "SELECT count(*) AS n FROM recon_runs")[0].n == 2
