"""Exit codes through the CLI: a range exits with its worst date's code and goes on past a failing
date; a bug exits 1, records the run `failed` and leaves D's previous results as they were."""

from __future__ import annotations

import shutil

from click.testing import CliRunner

from recon import pipeline
from recon.cli import main
from tests.conftest import FIXTURES
from tests.integration.helpers import DAYS, expected_exit_code, runs, snapshot


def test_a_range_exits_with_its_worst_date_and_goes_on_past_a_refused_one(database_url,
                                                                          tmp_path):
    inbox = tmp_path / "inbox"
    shutil.copytree(FIXTURES / "inbox", inbox)
    (inbox / DAYS[0] / "installments.csv").unlink()  # DAYS[0] is refused: exit 3
    assert expected_exit_code(DAYS[1]) == 4  # ... and the later day is incomplete: exit 4

    result = CliRunner().invoke(main, ["run", "--from", DAYS[0], "--to", DAYS[1], "--inbox",
                                       str(inbox), "--out", str(tmp_path / "out"), "--db",
                                       database_url])

    assert result.exit_code == 3, result.output  # max() of the codes would say 4
    [refused] = runs(database_url, DAYS[0])
    [done] = runs(database_url, DAYS[1])
    assert (refused.outcome, refused.exit_code) == ("refused", 3)
    assert (done.outcome, done.exit_code) == ("incomplete", 4)
    assert snapshot(database_url, DAYS[0])["installment_outcomes"] == []
    assert snapshot(database_url, DAYS[1])["installment_outcomes"] != []


def test_a_bug_exits_1_records_the_run_failed_and_keeps_the_previous_results(
        database_url, tmp_path, monkeypatch):
    day = DAYS[1]
    args = ["run", "--date", day, "--inbox", str(FIXTURES / "inbox"), "--out",
            str(tmp_path / "out"), "--db", database_url]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == expected_exit_code(day), first.output
    before = snapshot(database_url, day)
    reports_before = {path.name: path.read_bytes() for path in (tmp_path / "out" / day).iterdir()}

    def broken_classify(*_args, **_kwargs):
        raise RuntimeError("injected bug in classify")

    monkeypatch.setattr(pipeline, "classify", broken_classify)
    crashed = CliRunner().invoke(main, args)

    assert crashed.exit_code == 1
    assert "internal error (a bug; nothing was written" in crashed.output
    assert "RuntimeError: injected bug in classify" in crashed.output
    previous, failed = runs(database_url, day)
    assert failed.outcome == "failed" and failed.exit_code == 1
    assert "RuntimeError: injected bug in classify" in failed.message
    assert failed.ended_at is not None
    assert snapshot(database_url, day) == before
    assert {path.name: path.read_bytes() for path in (tmp_path / "out" / day).iterdir()} \
        == reports_before
