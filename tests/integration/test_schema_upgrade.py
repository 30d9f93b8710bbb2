"""Schema versions: `recon db upgrade` applies what is missing, each migration all or nothing;
`recon run` refuses a database older than the code. On PostgreSQL and on SQLite."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import sqlalchemy as sa

from recon.errors import ReconError
from recon.sinks import database as db
from tests.integration.helpers import (DAYS, expected_exit_code, query, recon, recon_run, runs,
                                       subprocess_env)

DAY = DAYS[1]


def migration_names(database_url: str) -> list[str]:
    database = db.connect(database_url)
    try:
        return [name for _, name, _ in db.migrations(database)]
    finally:
        database.dispose()


def applied(database_url: str) -> list[str]:
    return [row.name for row in query(database_url, "SELECT name FROM schema_version "
                                                    "ORDER BY version")]


def test_upgrade_of_an_empty_database_applies_every_migration_in_order(database_url, tmp_path):
    result = recon("db", "upgrade", "--db", database_url, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert applied(database_url) == migration_names(database_url)
    for name in migration_names(database_url):
        assert name in result.stdout
    again = recon("db", "upgrade", "--db", database_url, cwd=tmp_path)
    assert again.returncode == 0
    assert "already up to date" in again.stdout


def test_run_refuses_an_older_schema_until_db_upgrade(database_url, tmp_path):
    database = db.connect(database_url)
    try:
        db.upgrade(database, target=1)
    finally:
        database.dispose()
    assert applied(database_url) == ["001_initial"]

    refused = recon_run(DAY, database_url, tmp_path)
    assert refused.returncode == 5
    assert "schema version 1" in refused.stderr
    assert "run `recon db upgrade`" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "Traceback" not in refused.stderr
    assert runs(database_url, DAY) == []  # refused before anything was recorded

    upgraded = recon("db", "upgrade", "--db", database_url, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "002_analyst_views" in upgraded.stdout
    assert "001_initial" not in upgraded.stdout
    assert applied(database_url) == migration_names(database_url)

    done = recon_run(DAY, database_url, tmp_path)
    assert done.returncode == expected_exit_code(DAY), done.stderr
    assert query(database_url, "SELECT count(*) AS n FROM daily_root_causes")[0].n > 0


def test_first_run_creates_the_schema_of_an_empty_database(database_url, tmp_path):
    result = recon_run(DAY, database_url, tmp_path)
    assert result.returncode == expected_exit_code(DAY), result.stderr
    assert applied(database_url) == migration_names(database_url)


def test_concurrent_upgrades_apply_each_migration_once(database_url, tmp_path):
    processes = [subprocess.Popen([sys.executable, "-m", "recon.cli", "db", "upgrade", "--db",
                                   database_url], cwd=tmp_path, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=subprocess_env())
                 for _ in range(4)]
    results = [(process.wait(timeout=120), *process.communicate()) for process in processes]

    assert [code for code, _, _ in results] == [0, 0, 0, 0], results
    assert applied(database_url) == migration_names(database_url)


def test_a_failing_migration_is_applied_all_or_nothing(database_url, tmp_path, monkeypatch):
    database = db.connect(database_url)
    dialect = "postgresql" if database.is_postgres else "sqlite"
    sql_dir = tmp_path / "sql"
    shutil.copytree(db.SQL_DIR, sql_dir)
    (sql_dir / dialect / "999_broken.sql").write_text(
        "CREATE TABLE half_done (x integer);\n"
        "CREATE INDEX half_done_x ON half_done (x);\n"
        "THIS IS NOT SQL;\n", encoding="utf-8")
    monkeypatch.setattr(db, "SQL_DIR", sql_dir)
    try:
        with pytest.raises(ReconError) as failure:
            db.upgrade(database)
        assert "999_broken" in str(failure.value)
        assert not sa.inspect(database.engine).has_table("half_done")
        assert applied(database_url) == migration_names(database_url)[:-1]

        (sql_dir / dialect / "999_broken.sql").write_text(
            "CREATE TABLE half_done (x integer);\n", encoding="utf-8")
        assert db.upgrade(database) == ["999_broken"]
        assert sa.inspect(database.engine).has_table("half_done")
    finally:
        database.dispose()
