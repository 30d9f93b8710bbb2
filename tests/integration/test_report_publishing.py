"""Database and reports always agree (issue 11): the reports of D are published in one step
after the commit, everything that can fail is checked before it, and what a kill or a failure
after the commit leaves is repaired by the next run of D. On PostgreSQL and on SQLite."""

from __future__ import annotations

import datetime as dt
import os
import stat

import pytest

from recon import pipeline
from recon.config import Settings
from recon.errors import CommitUnknown
from recon.db.write import ResultsWrite
from tests.conftest import FIXTURES
from tests.integration.helpers import (DAYS, copy_day, expected_exit_code, faulty_recon,
                                       published, query, recon_run, results_run_id, runs,
                                       snapshot)

DAY = DAYS[1]


def run_args(day: str, url: str, work, inbox=None) -> list[str]:
    return ["run", "--date", day, "--inbox", str(inbox or FIXTURES / "inbox"),
            "--out", str(work / "out"), "--db", url]


def refused_inbox(work):
    """An inbox whose D lacks installments.csv: its run is refused (exit 3) after the repair."""
    folder = copy_day(DAY, work / "broken-inbox")
    (folder / "installments.csv").unlink()
    return folder.parent


def test_reports_are_the_published_runs_folder_recorded_in_recon_runs(database_url, tmp_path):
    first = recon_run(DAY, database_url, tmp_path)
    assert first.returncode == expected_exit_code(DAY), first.stderr
    [run] = runs(database_url, DAY)
    out = tmp_path / "out"
    assert published(out, DAY) == run.run_id == results_run_id(database_url, DAY)
    assert os.readlink(out / DAY) == os.path.join(".runs", DAY, run.run_id)  # relative
    assert run.reports_path == str((out / ".runs" / DAY / run.run_id).resolve())
    assert run.reports_published_at is not None
    assert (out / DAY / "exceptions.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    for path in [out / ".runs", out / ".runs" / DAY, out / ".runs" / DAY / run.run_id]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o750, path
    for path in (out / DAY).iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path


def test_a_rerun_switches_the_link_and_keeps_only_the_previous_folder(database_url, tmp_path):
    ids = []
    for _ in range(3):
        result = recon_run(DAY, database_url, tmp_path)
        assert result.returncode == expected_exit_code(DAY), result.stderr
        ids.append(published(tmp_path / "out", DAY))
    assert len(set(ids)) == 3
    assert ids[-1] == results_run_id(database_url, DAY)
    kept = sorted(path.name for path in (tmp_path / "out" / ".runs" / DAY).iterdir())
    assert kept == sorted(ids[1:])


def test_out_date_an_existing_file_refuses_before_the_commit(database_url, tmp_path):
    first = recon_run(DAY, database_url, tmp_path)
    before = snapshot(database_url, DAY)
    out = tmp_path / "out"
    (out / DAY).unlink()
    (out / DAY).write_text("someone's notes\n")

    result = recon_run(DAY, database_url, tmp_path)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert str(out / DAY) in line and "is a file" in line
    assert snapshot(database_url, DAY) == before
    assert results_run_id(database_url, DAY) == first_run_id(database_url)
    assert (out / DAY).read_text() == "someone's notes\n"
    failed = runs(database_url, DAY)[-1]
    assert (failed.outcome, failed.exit_code) == ("failed", 2)
    assert f"nothing was written for {DAY}" in failed.message
    assert sorted(p.name for p in (out / ".runs" / DAY).iterdir()) == [first_run_id(database_url)]
    assert not list(out.glob(f".{DAY}.*"))
    assert first.returncode == expected_exit_code(DAY)


def first_run_id(url: str) -> str:
    return query(url, "SELECT run_id FROM recon_runs ORDER BY started_at LIMIT 1")[0].run_id


def test_killed_between_commit_and_publish_the_next_run_publishes_the_committed_reports(
        database_url, tmp_path):
    first = recon_run(DAY, database_url, tmp_path)
    assert first.returncode == expected_exit_code(DAY), first.stderr
    old = published(tmp_path / "out", DAY)
    old_report = (tmp_path / "out" / DAY / "exceptions.csv").read_bytes()

    killed = faulty_recon(*run_args(DAY, database_url, tmp_path), cwd=tmp_path,
                          faults={DAY: "after_commit:kill"})

    assert killed.returncode == -9
    committed = runs(database_url, DAY)[-1]
    assert committed.outcome == "incomplete" and committed.reports_published_at is None
    assert results_run_id(database_url, DAY) == committed.run_id
    assert published(tmp_path / "out", DAY) == old  # the switch never happened

    # The next run of D repairs first, under D's lock, even though it is itself refused.
    refused = recon_run(DAY, database_url, tmp_path, inbox=refused_inbox(tmp_path))
    assert refused.returncode == 3, refused.stderr

    assert published(tmp_path / "out", DAY) == committed.run_id
    assert results_run_id(database_url, DAY) == committed.run_id
    assert runs(database_url, DAY)[1].reports_published_at is not None
    assert (tmp_path / "out" / DAY / "exceptions.csv").read_bytes() == old_report  # same inputs
    assert [p.name for p in (tmp_path / "out" / ".runs" / DAY).iterdir()] == [committed.run_id]


def test_publish_failing_after_the_commit_says_what_holds_and_the_next_run_repairs(
        database_url, tmp_path):
    first = recon_run(DAY, database_url, tmp_path)
    old = published(tmp_path / "out", DAY)

    result = faulty_recon(*run_args(DAY, database_url, tmp_path), cwd=tmp_path,
                          faults={DAY: "after_commit:raise"})

    committed = runs(database_url, DAY)[-1]
    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "nothing was written" not in result.stderr + result.stdout
    assert (f"results of {DAY} committed as run {committed.run_id}; reports not yet published: "
            f"OSError: [Errno 5] Input/output error (injected); the next run of {DAY} will "
            f"publish them") in result.stderr
    assert "REPORTS NOT PUBLISHED" in result.stdout
    assert results_run_id(database_url, DAY) == committed.run_id
    assert published(tmp_path / "out", DAY) == old
    assert first.returncode == expected_exit_code(DAY)

    refused = recon_run(DAY, database_url, tmp_path, inbox=refused_inbox(tmp_path))
    assert refused.returncode == 3
    assert published(tmp_path / "out", DAY) == committed.run_id


def test_leftovers_of_earlier_runs_go_on_the_next_run_of_that_date_only(database_url, tmp_path):
    out = tmp_path / "out"
    other = DAYS[0]
    stale = [out / f".{DAY}.k2j4h1", out / ".runs" / DAY / "0123456789abcdef"]
    others = [out / f".{other}.x1y2z3", out / ".runs" / other / "fedcba9876543210"]
    for folder in stale + others:
        folder.mkdir(parents=True)
        (folder / "exceptions.csv").write_text("borrower data\n")
    os.symlink(".runs/x/y", out / f".{DAY}.0123456789abcdef.link")

    result = recon_run(DAY, database_url, tmp_path)

    assert result.returncode == expected_exit_code(DAY), result.stderr
    assert not any(path.exists() for path in stale)
    assert not os.path.lexists(out / f".{DAY}.0123456789abcdef.link")
    assert all((path / "exceptions.csv").exists() for path in others)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".runs", DAY, f".{other}.x1y2z3"])


def test_a_real_folder_of_an_earlier_release_is_switched_over(database_url, tmp_path):
    out = tmp_path / "out"
    (out / DAY).mkdir(parents=True)
    (out / DAY / "exceptions.csv").write_text("written by the previous release\n")

    result = recon_run(DAY, database_url, tmp_path)

    assert result.returncode == expected_exit_code(DAY), result.stderr
    assert published(out, DAY) == results_run_id(database_url, DAY)
    assert b"previous release" not in (out / DAY / "exceptions.csv").read_bytes()
    [before] = [p for p in (out / ".runs" / DAY).iterdir() if p.name.startswith("before-")]
    assert (before / "exceptions.csv").read_text() == "written by the previous release\n"


def test_a_failed_run_leaves_an_earlier_releases_folder_readable_where_it_was(database_url,
                                                                             tmp_path):
    out = tmp_path / "out"
    (out / DAY).mkdir(parents=True)
    (out / DAY / "exceptions.csv").write_text("written by the previous release\n")

    result = faulty_recon(*run_args(DAY, database_url, tmp_path), cwd=tmp_path,
                          faults={DAY: "before_commit:raise"})

    assert result.returncode == 1  # the injected OSError is an unexpected one: a bug
    assert (out / DAY / "exceptions.csv").read_text() == "written by the previous release\n"
    assert results_run_id(database_url, DAY) is None


@pytest.mark.parametrize("committed", [True, False], ids=["commit-held", "commit-lost"])
def test_commit_unknown_keeps_the_reports_for_the_next_run_to_publish_or_remove(
        database_url, tmp_path, monkeypatch, committed):
    settings = Settings(inbox=FIXTURES / "inbox", out=tmp_path / "out", database_url=database_url)
    first = pipeline.run(dt.date.fromisoformat(DAY), settings)
    real_commit = ResultsWrite.commit

    def commit_in_flight(write):
        if committed:
            real_commit(write)
        raise CommitUnknown("the connection was lost during COMMIT and the server could not "
                            "be asked since")

    monkeypatch.setattr(ResultsWrite, "commit", commit_in_flight)
    with pytest.raises(CommitUnknown, match="next run of") as lost:
        pipeline.run(dt.date.fromisoformat(DAY), settings)
    assert "nothing was written" not in str(lost.value)
    assert published(tmp_path / "out", DAY) == first.run_id
    lost_run = runs(database_url, DAY)[-1].run_id
    assert (tmp_path / "out" / ".runs" / DAY / lost_run).is_dir()  # kept for the next run

    monkeypatch.setattr(ResultsWrite, "commit", real_commit)
    refused = pipeline.run(dt.date.fromisoformat(DAY),
                           settings.model_copy(update={"inbox": refused_inbox(tmp_path)}))
    assert refused.exit_code == 3
    if committed:
        assert published(tmp_path / "out", DAY) == lost_run == results_run_id(database_url, DAY)
    else:
        assert not (tmp_path / "out" / ".runs" / DAY / lost_run).exists()
        assert published(tmp_path / "out", DAY) == first.run_id
