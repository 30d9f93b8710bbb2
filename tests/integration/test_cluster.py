"""Date ranges on a Dask cluster (issue 15): a real scheduler and two worker processes on
127.0.0.1, the real PostgreSQL, and a worker SIGKILLed in the middle of a date."""

from __future__ import annotations

import datetime as dt
import functools
import os
import threading
import time

import pytest

from recon import logs
from recon.cluster import run_range
from recon.config import Settings
from recon.ranges import worst
from tests.conftest import FIXTURES
from tests.integration.dask_cluster import held_run_date
from tests.integration.helpers import (DAYS, expected_exit_code, expected_outcomes, query, recon,
                                       runs, subprocess_env)

pytestmark = pytest.mark.postgres

REFUSED_DAY = "2026-11-26"  # no inbox folder: refused (exit 3), never retried
HELD_DAY = "2026-11-27"


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    try:
        import distributed  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("distributed is not installed (CI=true: `make setup` installs "
                        "recon[cluster])")
        pytest.skip("distributed is not installed: pip install -e '.[cluster]'")
    from tests.integration.dask_cluster import LocalDaskCluster

    cluster = LocalDaskCluster(tmp_path_factory.mktemp("dask"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def two_workers(dask_cluster):
    dask_cluster.ensure_workers(2)
    return dask_cluster


def wait_for(condition, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return found


def test_a_worker_killed_mid_date_the_date_runs_again_elsewhere_and_lands_once(
        two_workers, postgres_url, tmp_path):
    ready, release = tmp_path / "held.ready", tmp_path / "held.release"
    settings = Settings(inbox=FIXTURES / "inbox", out=tmp_path / "out", database_url=postgres_url)
    dates = [dt.date.fromisoformat(day) for day in [REFUSED_DAY, *DAYS]]
    task = functools.partial(held_run_date, held_day=HELD_DAY, ready=str(ready),
                             release=str(release))
    shown: list[tuple[dt.date, str, str]] = []
    result: dict = {}

    def client_side() -> None:
        try:
            with logs.progress("range", len(dates), shown=False) as bar:
                result["codes"] = run_range(two_workers.address, dates, settings,
                                            logs.LogOptions(), bar,
                                            lambda day, out, err: shown.append((day, out, err)),
                                            task)
        except BaseException as error:  # noqa: BLE001 - reported by the test thread
            result["error"] = error

    client = threading.Thread(target=client_side)
    client.start()
    try:
        # The held date has written every row of its first attempt and not committed: its
        # ledger row says running, on the worker whose pid the hold wrote.
        wait_for(lambda: ready.exists() or not client.is_alive(),
                 "the held date to reach its write transaction")
        assert ready.exists(), result
        pid = int(ready.read_text())
        running = [row for row in runs(postgres_url, HELD_DAY) if row.outcome == "running"]
        assert [row.pid for row in running] == [pid]
        two_workers.kill(pid)
        release.write_text("go\n")
        client.join(timeout=300)
    finally:
        release.write_text("go\n")
        client.join(timeout=300)
    assert "error" not in result, result.get("error")

    codes = dict(zip([day.isoformat() for day, _, _ in shown], result["codes"]))
    assert codes == {REFUSED_DAY: 3, **{day: expected_exit_code(day) for day in DAYS}}
    assert worst(result["codes"]) == 3

    # The killed attempt is abandoned; the retry, on the other worker, landed the date.
    held_runs = runs(postgres_url, HELD_DAY)
    assert [(row.outcome, row.pid == pid) for row in held_runs] == [
        ("abandoned", True), ("incomplete", False)]
    landed = held_runs[1].run_id
    for day in DAYS:
        rows = query(postgres_url, "SELECT loan_id, installment_no, status, root_cause, run_id "
                     "FROM installment_outcomes WHERE business_date = :d", d=day)
        assert {(r.loan_id, r.installment_no): (r.status, r.root_cause) for r in rows} == \
            expected_outcomes(day)
        assert len(rows) == len(expected_outcomes(day))
        assert len({r.run_id for r in rows}) == 1
    assert {r.run_id for r in query(postgres_url, "SELECT DISTINCT run_id FROM "
                                    "installment_outcomes WHERE business_date = :d",
                                    d=HELD_DAY)} == {landed}
    # A date refused for its own reasons ran once. The later date waits for the held one before
    # its actions (CONTRACT 7 reads earlier dates' results): if it waited on the killed worker,
    # it was lost with it and ran again, landing once all the same.
    assert [row.outcome for row in runs(postgres_url, REFUSED_DAY)] == ["refused"]
    later = [row.outcome for row in runs(postgres_url, DAYS[1])]
    assert later[-1] == "incomplete" and set(later[:-1]) <= {"abandoned"}, later
    for day in DAYS:
        assert (tmp_path / "out" / day / "exceptions.csv").read_bytes() == \
            (FIXTURES / "expected" / day / "out" / "exceptions.csv").read_bytes()


def test_recon_run_cluster_runs_the_range_and_prints_each_date(two_workers, postgres_url,
                                                               tmp_path):
    done = recon("run", "--from", DAYS[0], "--to", DAYS[1], "--inbox", str(FIXTURES / "inbox"),
                 "--out", str(tmp_path / "out"), "--db", postgres_url, "-v", cwd=tmp_path,
                 env=subprocess_env(RECON_DASK_SCHEDULER=two_workers.address), timeout=300)
    assert done.returncode == max(expected_exit_code(day) for day in DAYS), done.stderr
    for day in DAYS:
        assert f"recon {day}: incomplete (exit 4)" in done.stdout
        # The workers' step lines come back to the terminal, each once, with date and run id.
        run_id = runs(postgres_url, day)[0].run_id
        assert done.stderr.count(f"[{day} run {run_id}] write_db done in") == 1
        assert [row.outcome for row in runs(postgres_url, day)] == ["incomplete"]
        for name in ("exceptions.csv", "settlement_exceptions.csv", "rejects.csv"):
            assert (tmp_path / "out" / day / name).read_bytes() == \
                (FIXTURES / "expected" / day / "out" / name).read_bytes()


def test_workers_that_cannot_see_the_inbox_are_named_and_nothing_runs(two_workers, postgres_url,
                                                                     tmp_path):
    missing = tmp_path / "not-mounted"
    done = recon("run", "--date", DAYS[0], "--inbox", str(missing), "--out",
                 str(tmp_path / "out"), "--db", postgres_url, "--cluster", two_workers.address,
                 cwd=tmp_path, timeout=300)
    assert done.returncode == 2, done.stderr
    named = [line for line in done.stderr.splitlines() if f"cannot see the inbox {missing}" in line]
    assert len(named) == 2 and all("worker tcp://127.0.0.1:" in line for line in named)
    assert "nothing was run" in done.stderr
    assert query(postgres_url, "SELECT count(*) FROM pg_tables WHERE tablename = 'recon_runs'"
                 )[0][0] == 0


def test_an_out_folder_no_worker_can_write_is_refused(two_workers, postgres_url, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    done = recon("run", "--date", DAYS[0], "--inbox", str(FIXTURES / "inbox"), "--out",
                 str(blocker / "out"), "--db", postgres_url, "--cluster", two_workers.address,
                 cwd=tmp_path, timeout=300)
    assert done.returncode == 2, done.stderr
    assert len([line for line in done.stderr.splitlines()
                if f"cannot write the out folder {blocker / 'out'}" in line]) == 2


def test_dates_on_the_cluster_plan_as_if_run_one_after_another(two_workers, postgres_url,
                                                               tmp_path):
    """Each date's actions wait for the dates before it (their stored attempts cap its retries),
    whichever worker runs what first."""
    from tests.integration.test_retry_plan import plan_row, write_slow_first_range

    inbox = tmp_path / "inbox"
    days = ["2026-12-01", "2026-12-02", "2026-12-03"]
    write_slow_first_range(inbox, days)
    done = recon("run", "--from", days[0], "--to", days[-1], "--inbox", str(inbox),
                 "--out", str(tmp_path / "out"), "--db", postgres_url, cwd=tmp_path,
                 env=subprocess_env(RECON_DASK_SCHEDULER=two_workers.address), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [(row["action"], row["attempts"]) for row in
            (plan_row(tmp_path, day) for day in days)] == [("retry", "1"), ("retry", "2"),
                                                          ("none", "3")]
