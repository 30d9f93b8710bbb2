"""Through a real pgbouncer in transaction-pooling mode (what banks put in front of
PostgreSQL), two runs of one date never both write, and a killed run keeps its date only for
the lease (RECON_LOCK_LEASE_SECONDS). A session advisory lock is no lock there: each
transaction may run on another server session, shared with other clients."""

from __future__ import annotations

import pytest

from tests.integration.helpers import (DAYS, HeldRun, expected_exit_code, recon, runs,
                                       snapshot, subprocess_env)
from tests.integration.servers import pgbouncer, through
from tests.conftest import FIXTURES

DAY = DAYS[1]

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def bouncer(postgres_server_url):
    with pgbouncer(postgres_server_url) as url:
        yield url


def run_through(url: str, work, *extra: str, env=None):
    return recon("run", "--date", DAY, "--inbox", str(FIXTURES / "inbox"), "--out",
                 str(work / "out"), "--db", url, *extra, cwd=work, env=env)


@pytest.mark.parametrize("at", ["write", "commit"],
                         ids=["holder-before-its-write", "holder-inside-its-write"])
def test_through_pgbouncer_a_second_run_of_a_held_date_exits_5(bouncer, postgres_url,
                                                                tmp_path, at):
    url = through(postgres_url, bouncer)
    held = HeldRun(DAY, url, tmp_path, at=at)
    try:
        held.wait_until_holding()
        [holder] = runs(postgres_url, DAY)
        second = run_through(url, tmp_path)
        code, _out, err = held.release()
    finally:
        held.kill()

    assert second.returncode == 5, second.stderr
    assert f"run {holder.run_id}" in second.stderr and f"pid {holder.pid}" in second.stderr
    assert code == expected_exit_code(DAY), err
    [only] = runs(postgres_url, DAY)  # the second run never started its ledger row
    rows = snapshot(postgres_url, DAY)
    assert rows["installment_outcomes"]
    assert {row["run_id"] for table in rows.values() for row in table} == {only.run_id}


def test_through_pgbouncer_a_killed_run_keeps_its_date_only_for_the_lease(bouncer, postgres_url,
                                                                          tmp_path):
    url = through(postgres_url, bouncer)
    env = subprocess_env(RECON_LOCK_LEASE_SECONDS="2")
    held = HeldRun(DAY, url, tmp_path, at="write", env=env)
    held.wait_until_holding()
    held.kill()  # its server session lives on in the pool: only the lease frees the date

    rerun = run_through(url, tmp_path, "--wait", "60", env=env)

    assert rerun.returncode == expected_exit_code(DAY), rerun.stderr
    assert [run.outcome for run in runs(postgres_url, DAY)] == ["abandoned", "incomplete"]
