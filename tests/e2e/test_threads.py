"""One date's run on several threads (RECON_THREADS): the same results as on one, the same
refusal, and no database write that outlives a failed report."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3

import pytest

from recon import pipeline
from recon.config import Settings
from recon.errors import InputRefused, OutputUnusable
from recon.sinks import reports as report_files
from recon.intake import load_day
from recon.codes import CodeMap
from tests.conftest import FIXTURES

DAY = "2026-11-28"


def settings_for(tmp_path, threads: int, inbox=FIXTURES / "inbox") -> Settings:
    return Settings(inbox=inbox, out=tmp_path / "out", threads=threads,
                    database_url=f"sqlite:///{tmp_path / 'recon.db'}")


def stored(tmp_path) -> list[tuple]:
    with sqlite3.connect(tmp_path / "recon.db") as connection:
        return connection.execute(
            "SELECT loan_id, installment_no, status, root_cause, amount_settled, run_id "
            "FROM installment_outcomes WHERE business_date = ? ORDER BY 1, 2", (DAY,)).fetchall()


@pytest.mark.parametrize("day", ["2026-11-27", "2026-11-28"])
def test_one_thread_and_four_write_the_same_reports_byte_for_byte(tmp_path, day):
    reports = {}
    for threads in (1, 4):
        base = tmp_path / f"threads{threads}"
        base.mkdir()
        report = pipeline.run(dt.date.fromisoformat(day), settings_for(base, threads))
        folder = base / "out" / day
        # notices.csv carries each run's own notice ids and the moment it was made.
        reports[threads] = {path.name: path.read_bytes() for path in sorted(folder.iterdir())
                            if path.name not in ("changes.csv", "notices.csv")}
        assert report.exit_code in (0, 4)
    assert reports[1].keys() == reports[4].keys()
    assert len(reports[1]) >= 4
    for name in reports[1]:
        assert reports[1][name] == reports[4][name], name


def test_with_two_broken_required_files_the_first_in_file_order_is_named(tmp_path):
    inbox = tmp_path / "inbox"
    shutil.copytree(FIXTURES / "inbox" / DAY, inbox / DAY)
    for name in ("installments.csv", "instructions.csv"):
        path = inbox / DAY / name
        path.write_bytes(path.read_bytes().replace(b"loan_id", b"loan_ident", 1))
    for _ in range(5):  # the loads finish in any order; the message must not depend on it
        with pytest.raises(InputRefused) as refusal:
            load_day(dt.date.fromisoformat(DAY), settings_for(tmp_path, 4, inbox),
                     CodeMap.from_file(None))
        assert refusal.value.file == "installments.csv"
        assert refusal.value.column == "loan_id"


def test_a_broken_file_is_named_before_a_missing_file_that_comes_after_it(tmp_path):
    inbox = tmp_path / "inbox"
    shutil.copytree(FIXTURES / "inbox" / DAY, inbox / DAY)
    path = inbox / DAY / "installments.csv"
    path.write_bytes(path.read_bytes().replace(b"loan_id", b"loan_ident", 1))
    (inbox / DAY / "bindings.csv").unlink()
    with pytest.raises(InputRefused) as refusal:
        load_day(dt.date.fromisoformat(DAY), settings_for(tmp_path, 4, inbox),
                 CodeMap.from_file(None))
    assert (refusal.value.file, refusal.value.column) == ("installments.csv", "loan_id")

    path.write_bytes(path.read_bytes().replace(b"loan_ident", b"loan_id", 1))
    with pytest.raises(InputRefused, match="required file is missing") as refusal:
        load_day(dt.date.fromisoformat(DAY), settings_for(tmp_path, 4, inbox),
                 CodeMap.from_file(None))
    assert refusal.value.file == "bindings.csv"


def test_the_stored_counts_time_every_step(tmp_path):
    pipeline.run(dt.date.fromisoformat(DAY), settings_for(tmp_path, 2))
    with sqlite3.connect(tmp_path / "recon.db") as connection:
        [counts] = connection.execute("SELECT counts FROM recon_runs").fetchone()
    phases = json.loads(counts)["phases_seconds"]
    assert {"load", "classify", "outages", "compare", "write_csv"} <= set(phases)


def test_with_one_thread_an_interrupt_is_not_held_back():
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipeline._Inline().submit(interrupted)
    failed = pipeline._Inline().submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failed.result()


def test_reports_that_cannot_be_written_roll_the_database_write_back(tmp_path, monkeypatch):
    settings = settings_for(tmp_path, 2)
    first = pipeline.run(dt.date.fromisoformat(DAY), settings)
    before = stored(tmp_path)
    published = {path.name: path.read_bytes() for path in (tmp_path / "out" / DAY).iterdir()}
    assert before and {row[-1] for row in before} == {first.run_id}

    real_write_csv = report_files.write_csv

    def disk_fills_up(path, frame, **kwargs):
        real_write_csv(path, frame, **kwargs)
        if path.name == "rejects.csv":
            raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(report_files, "write_csv", disk_fills_up)
    with pytest.raises(OutputUnusable, match="No space left on device"):
        pipeline.run(dt.date.fromisoformat(DAY), settings)

    assert stored(tmp_path) == before
    assert {path.name: path.read_bytes()
            for path in (tmp_path / "out" / DAY).iterdir()} == published
    # Nothing of the failed run is left: only the published run's folder.
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [".runs", DAY]
    assert [path.name for path in (tmp_path / "out" / ".runs" / DAY).iterdir()] == [first.run_id]
