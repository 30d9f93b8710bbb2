"""A server session ended while COPY streams D's rows: one line (exit 5), never a row of data,
in the message, the log or the run's ledger row; D's previous results as they were."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
import sqlalchemy as sa

from recon import ranges
from recon.config import Settings
from recon.db import bulk
from recon.db.urls import normalise_url
from tests.conftest import FIXTURES
from tests.integration.helpers import (DAYS, expected_exit_code, read_rows, recon_run, runs,
                                       snapshot)

DAY = DAYS[1]

pytestmark = pytest.mark.postgres


def terminating_stream(url: str, after_reads: int):
    """bulk's COPY stream, whose reads end the reading COPY's server session after a few
    chunks: the session is terminated while the server is taking rows."""
    admin = sa.create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    reads = {"n": 0}

    class Stream(bulk._CsvStream):
        def readinto(self, target) -> int:
            reads["n"] += 1
            if reads["n"] == after_reads:
                with admin.connect() as connection:
                    ended = connection.execute(sa.text(
                        "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND query LIKE 'COPY %'"
                        " AND pid <> pg_backend_pid()")).scalars().all()
                assert ended == [True]
            return super().readinto(target)

    return Stream, admin


def test_session_ended_during_copy_is_one_line_without_data(postgres_url, tmp_path,
                                                            monkeypatch, caplog, capfd):
    assert recon_run(DAY, postgres_url, tmp_path).returncode == expected_exit_code(DAY)
    before = snapshot(postgres_url, DAY)
    stream, admin = terminating_stream(postgres_url, after_reads=3)
    monkeypatch.setattr(bulk, "_CsvStream", stream)
    monkeypatch.setattr(bulk, "COPY_CHUNK_BYTES", 256)  # several reads for the fixture's rows
    settings = Settings(inbox=FIXTURES / "inbox", out=tmp_path / "out",
                        database_url=postgres_url)
    try:
        with caplog.at_level(logging.DEBUG, logger="recon"):
            code, out, err = ranges.run_date(dt.date.fromisoformat(DAY), settings)
    finally:
        admin.dispose()

    assert code == 5, err
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert "the server ended our session" in err
    [failed] = [run for run in runs(postgres_url, DAY) if run.outcome == "failed"]
    printed = capfd.readouterr()
    assert "SystemError" not in printed.err and "AdminShutdown" not in printed.err, printed.err
    shown = "\n".join([err, failed.message, caplog.text, printed.out, printed.err])
    for row in read_rows(FIXTURES / "inbox" / DAY / "installments.csv"):
        assert row["loan_id"] not in shown, shown  # no row values: no CONTEXT line, no data
    assert "CONTEXT" not in shown and "COPY" not in err
    assert snapshot(postgres_url, DAY) == before
