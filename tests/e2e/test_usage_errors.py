"""Settings recon cannot use: a usage error (exit 2) in one line, never a traceback, nothing
written. Run as the real executable, as an operator's shell or cron sees it."""

from __future__ import annotations

import sqlite3

import pytest

from tests.conftest import FIXTURES
from tests.integration.helpers import recon, subprocess_env

DAY = "2026-11-27"


def _run(tmp_path, *args, env_extra: dict | None = None):
    env = subprocess_env()
    env.update(env_extra or {})
    return recon("run", "--date", DAY, "--inbox", str(FIXTURES / "inbox"), *args, cwd=tmp_path,
                 env=env)


def _assert_one_line_usage_error(result, *words):
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("url, words", [
    ("sqlite:///", ["in-memory", "lost"]),
    ("sqlite://", ["in-memory"]),
    ("sqlite:///:memory:", ["in-memory"]),
    ("sqlite:///file:night?mode=memory&uri=true", ["in-memory"]),
    ("mysql://recon@db.example/recon", ["PostgreSQL or SQLite, not mysql"]),
    ("postgresql+asyncpg://recon@127.0.0.1/recon", ["driver", "not installed"]),
    ("not a url", ["not a database URL"]),
], ids=["unset-variable", "sqlite-memory", "memory-name", "memory-uri", "mysql",
        "driver-missing", "garbage"])
def test_a_database_that_cannot_keep_the_results_is_a_usage_error(tmp_path, url, words):
    result = _run(tmp_path, "--out", str(tmp_path / "out"), "--db", url)
    _assert_one_line_usage_error(result, *words)
    assert not (tmp_path / "out" / DAY).exists()


def test_a_range_says_an_unusable_database_once(tmp_path):
    result = recon("run", "--from", DAY, "--to", "2026-11-28", "--inbox",
                   str(FIXTURES / "inbox"), "--out", str(tmp_path / "out"), "--db", "sqlite:///",
                   cwd=tmp_path)
    _assert_one_line_usage_error(result, "in-memory")


def test_out_naming_an_existing_file_is_a_usage_error(tmp_path):
    (tmp_path / "out").write_text("not a folder")
    result = _run(tmp_path, "--out", str(tmp_path / "out"), "--db",
                  f"sqlite:///{tmp_path / 'r.db'}")
    _assert_one_line_usage_error(result, "RECON_OUT", "is not a folder")
    assert (tmp_path / "out").read_text() == "not a folder"
    assert not (tmp_path / "r.db").exists()


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", ""])
def test_an_unknown_time_zone_is_a_usage_error(tmp_path, zone):
    result = _run(tmp_path, "--out", str(tmp_path / "out"), "--db",
                  f"sqlite:///{tmp_path / 'r.db'}", env_extra={"RECON_TIMEZONE": zone})
    _assert_one_line_usage_error(result, "RECON_TIMEZONE", "unknown time zone")


def test_db_upgrade_refuses_an_in_memory_database(tmp_path):
    result = recon("db", "upgrade", "--db", "sqlite:///", cwd=tmp_path)
    _assert_one_line_usage_error(result, "in-memory")


def test_a_good_run_after_the_refusals_still_works(tmp_path):
    result = _run(tmp_path, "--out", str(tmp_path / "out"), "--db",
                  f"sqlite:///{tmp_path / 'r.db'}")
    assert result.returncode == int((FIXTURES / "expected" / DAY / "expected_exit_code.txt")
                                    .read_text()), result.stderr
    with sqlite3.connect(tmp_path / "r.db") as connection:
        assert connection.execute("SELECT count(*) FROM installment_outcomes").fetchone()[0] > 0
