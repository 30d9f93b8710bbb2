"""The connection lost while COMMIT is in flight: the run cannot know from the driver whether
it committed. It asks the server on a new connection and says exactly what holds: committed
(the run's results stand, reports published, its exit code) or not (exit 5, D as it was)."""

from __future__ import annotations

import pytest

from tests.integration.helpers import (DAYS, expected_exit_code, recon_run, runs, snapshot)
from tests.integration.servers import CommitCutter

DAY = DAYS[1]

pytestmark = pytest.mark.postgres


@pytest.fixture
def previous(postgres_url, tmp_path):
    """D's results of a first, undisturbed run."""
    assert recon_run(DAY, postgres_url, tmp_path).returncode == expected_exit_code(DAY)
    return snapshot(postgres_url, DAY)


def test_commit_that_went_through_before_the_connection_was_lost_stands(postgres_url,
                                                                        previous, tmp_path):
    cutter = CommitCutter(postgres_url, forward=True)
    try:
        result = recon_run(DAY, cutter.url(postgres_url), tmp_path)
    finally:
        cutter.close()

    assert cutter.cut.is_set()  # the fault did happen
    assert result.returncode == expected_exit_code(DAY), result.stderr
    assert "Traceback" not in result.stderr and "nothing was written" not in result.stderr
    first, second = runs(postgres_url, DAY)
    assert second.outcome == "incomplete"
    after = snapshot(postgres_url, DAY)
    assert {row["run_id"] for rows in after.values() for row in rows} == {second.run_id}
    assert (tmp_path / "out" / DAY / "exceptions.csv").exists()


def test_commit_lost_before_the_server_saw_it_leaves_the_previous_results(postgres_url,
                                                                          previous, tmp_path):
    cutter = CommitCutter(postgres_url, forward=False)
    try:
        result = recon_run(DAY, cutter.url(postgres_url), tmp_path)
    finally:
        cutter.close()

    assert cutter.cut.is_set()
    assert result.returncode == 5, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "lost during COMMIT" in result.stderr and "not committed" in result.stderr
    assert snapshot(postgres_url, DAY) == previous
    assert [run.outcome for run in runs(postgres_url, DAY)] == ["incomplete", "failed"]
