"""A database that cannot be reached, refuses us, or drops us mid-write: exit 5, one clear line,
no traceback, the previous results of D untouched, and the password never shown or stored."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from recon import pipeline
from recon.config import Settings
from recon.errors import DatabaseFailed
from recon.db.urls import normalise_url
from tests.conftest import FIXTURES
from tests.integration.helpers import (DAYS, expected_exit_code, recon, recon_run, runs,
                                       snapshot)

DAY = DAYS[1]
PASSWORD = "s3cretPW"


def with_password(url: str, **changes) -> str:
    parsed = normalise_url(url).set(password=PASSWORD, **changes)
    return parsed.render_as_string(hide_password=False)


def assert_one_clear_line(result, *expected_words: str) -> None:
    assert result.returncode == 5, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for word in expected_words:
        assert word in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


@pytest.fixture
def unreachable_url() -> str:
    return f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/recon"


@pytest.mark.parametrize("command", ["run", "db upgrade"])
def test_unreachable_server_exits_5_with_one_line_and_no_password(unreachable_url, tmp_path,
                                                                   command):
    if command == "run":
        result = recon_run(DAY, unreachable_url, tmp_path)
    else:
        result = recon("db", "upgrade", "--db", unreachable_url, cwd=tmp_path)
    assert_one_clear_line(result, "unavailable", "127.0.0.1:1")
    assert "postgres:***@" in result.stderr


@pytest.mark.postgres
@pytest.mark.parametrize("wrong", ["database", "username"])
def test_unknown_database_or_role_exits_5_with_one_line_and_no_password(postgres_url, tmp_path,
                                                                         wrong):
    url = with_password(postgres_url, **{wrong: "no_such_" + wrong})
    result = recon_run(DAY, url, tmp_path)
    assert_one_clear_line(result, "unavailable", f"no_such_{wrong}")


@pytest.mark.parametrize("url", [f"postgresql://postgres:{PASSWORD}@127.0.0.1:notaport/recon",
                                 f"nosuchdb://postgres:{PASSWORD}@127.0.0.1/recon",
                                 "not a url"], ids=["bad-port", "unknown-dialect", "garbage"])
def test_malformed_url_is_a_usage_error_without_traceback(url, tmp_path):
    result = recon_run(DAY, url, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert PASSWORD not in result.stdout + result.stderr


@pytest.mark.postgres
def test_password_in_the_url_is_never_printed_logged_or_stored(postgres_url, tmp_path):
    url = with_password(postgres_url)  # trust authentication accepts and ignores it
    result = recon_run(DAY, url, tmp_path, "--verbose")
    upgrade = recon("db", "upgrade", "--db", url, cwd=tmp_path)

    assert result.returncode == expected_exit_code(DAY), result.stderr
    assert upgrade.returncode == 0, upgrade.stderr
    assert "run started" in result.stderr  # --verbose did log
    for output in (result.stdout, result.stderr, upgrade.stdout, upgrade.stderr):
        assert PASSWORD not in output
    [run] = runs(postgres_url, DAY)
    assert PASSWORD not in str(tuple(run))
    assert run.database_url == with_password(postgres_url).replace(PASSWORD, "***")
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


@pytest.mark.postgres
def test_session_ended_mid_write_exits_5_says_so_and_leaves_the_previous_results(postgres_url,
                                                                                 tmp_path):
    assert recon_run(DAY, postgres_url, tmp_path).returncode == expected_exit_code(DAY)
    before = snapshot(postgres_url, DAY)
    admin = sa.create_engine(normalise_url(postgres_url), isolation_level="AUTOCOMMIT")

    def server_drops_the_writer() -> None:
        with admin.connect() as connection:
            terminated = connection.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                "datname = current_database() AND state = 'idle in transaction' AND "
                "pid <> pg_backend_pid()")).scalars().all()
        assert terminated == [True]

    settings = Settings(inbox=FIXTURES / "inbox", out=tmp_path / "out",
                        database_url=postgres_url)
    try:
        with pytest.raises(DatabaseFailed) as failure:
            pipeline.run(dt.date.fromisoformat(DAY), settings,
                         before_commit=server_drops_the_writer)
    finally:
        admin.dispose()

    # Not "unavailable, check the server is up": the server is up and ended our session.
    assert failure.value.exit_code == 5
    assert "the server ended our session" in str(failure.value)
    assert "unavailable" not in str(failure.value)
    assert snapshot(postgres_url, DAY) == before
    # The server can still be reached: the run's ledger row is closed with the same words.
    finished, dropped = runs(postgres_url, DAY)
    assert finished.outcome == "incomplete"
    assert (dropped.outcome, dropped.exit_code, dropped.message) == ("failed", 5,
                                                                     str(failure.value))
    assert recon_run(DAY, postgres_url, tmp_path).returncode == expected_exit_code(DAY)
    assert [run.outcome for run in runs(postgres_url, DAY)] == ["incomplete", "failed",
                                                                "incomplete"]
