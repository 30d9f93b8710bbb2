"""Schema versions: `recon db upgrade` applies what is missing, each migration all or nothing;
`recon run` refuses a database older than the code. On PostgreSQL and on SQLite."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import sqlalchemy as sa

from recon.errors import ReconError
from recon.clock import utc_now
from recon.db import migrations
from recon.db.engine import connect
from recon.db.urls import normalise_url
from tests.integration.helpers import (DAYS, expected_exit_code, query, recon, recon_run, runs,
                                       subprocess_env)

DAY = DAYS[1]

# What this release ships, written out: a test comparing against what the code found would pass
# with none found (an installed wheel once shipped no migrations and said "up to date").
SHIPPED_MIGRATIONS = {
    "postgresql": ["001_initial", "002_analyst_views", "003_latest_runs_and_repeat_failures",
                   "004_lighter_outcome_writes", "005_outcomes_partitioned_by_date",
                   "006_outcome_key_leads_with_loan", "007_date_locks",
                   "008_published_reports_and_interrupted_runs", "009_overdue_and_retry_plan",
                   "010_notices_and_watchlist", "011_debit_without_installment",
                   "013_actions_partitioned_by_date"],
    "sqlite": ["001_initial", "002_analyst_views", "003_latest_runs_and_repeat_failures",
               "004_lighter_outcome_writes", "008_published_reports_and_interrupted_runs",
               "009_overdue_and_retry_plan", "010_notices_and_watchlist",
               "011_debit_without_installment", "012_exact_retry_plan_amounts"],
}


def migration_names(database_url: str) -> list[str]:
    return SHIPPED_MIGRATIONS["postgresql" if database_url.startswith("postgres") else "sqlite"]


def latest_shipped_version(database_url: str) -> int:
    return int(migration_names(database_url)[-1][:3])


def test_the_code_finds_exactly_the_shipped_migrations(database_url):
    database = connect(database_url)
    try:
        assert [name for _, name, _ in migrations.migrations(database)] == migration_names(database_url)
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
    database = connect(database_url)
    try:
        migrations.upgrade(database, clock=utc_now, target=1)
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


def test_run_refuses_a_schema_newer_than_this_recon(database_url, tmp_path):
    # A newer release migrated the database (then it was rolled back, or another host still
    # runs this one): writing with this release's idea of the tables could fail halfway.
    assert recon("db", "upgrade", "--db", database_url, cwd=tmp_path).returncode == 0
    newer = latest_shipped_version(database_url) + 1
    database = connect(database_url)
    try:
        with database.engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO schema_version (version, name, applied_at) "
                "VALUES (:version, :name, '2027-01-01')"),
                {"version": newer, "name": f"{newer:03d}_from_the_future"})
    finally:
        database.dispose()

    refused = recon_run(DAY, database_url, tmp_path)
    assert refused.returncode == 5
    assert f"schema version {newer}, newer than this recon's {newer - 1}" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert runs(database_url, DAY) == []


def test_without_shipped_migrations_upgrade_and_run_refuse_and_create_nothing(
        database_url, tmp_path, monkeypatch):
    empty = tmp_path / "sql"
    (empty / "postgresql").mkdir(parents=True)
    (empty / "sqlite").mkdir()
    monkeypatch.setattr(migrations, "MIGRATIONS", empty)
    database = connect(database_url)
    try:
        with pytest.raises(ReconError) as upgrade_refused:
            migrations.upgrade(database, clock=utc_now)
        with pytest.raises(ReconError) as check_refused:
            migrations.ensure_schema(database, clock=utc_now)
        assert not sa.inspect(database.engine).get_table_names()
    finally:
        database.dispose()
    for refusal in (upgrade_refused.value, check_refused.value):
        assert refusal.exit_code == 5
        assert "no schema migrations found" in str(refusal)
        assert "installation is incomplete" in str(refusal)


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
    database = connect(database_url)
    dialect = "postgresql" if database.is_postgres else "sqlite"
    sql_dir = tmp_path / "sql"
    shutil.copytree(str(migrations.MIGRATIONS), sql_dir)
    (sql_dir / dialect / "999_broken.sql").write_text(
        "CREATE TABLE half_done (x integer);\n"
        "CREATE INDEX half_done_x ON half_done (x);\n"
        "THIS IS NOT SQL;\n", encoding="utf-8")
    monkeypatch.setattr(migrations, "MIGRATIONS", sql_dir)
    try:
        with pytest.raises(ReconError) as failure:
            migrations.upgrade(database, clock=utc_now)
        assert "999_broken" in str(failure.value)
        assert not sa.inspect(database.engine).has_table("half_done")
        assert applied(database_url) == migration_names(database_url)  # all but 999_broken

        (sql_dir / dialect / "999_broken.sql").write_text(
            "CREATE TABLE half_done (x integer);\n", encoding="utf-8")
        assert migrations.upgrade(database, clock=utc_now) == ["999_broken"]
        assert sa.inspect(database.engine).has_table("half_done")
    finally:
        database.dispose()


# --- 005: installment_outcomes partitioned by business date (PostgreSQL) -------------------------

def _outcome_rows(url: str) -> list[dict]:
    return [dict(row._mapping) for row in query(
        url, "SELECT * FROM installment_outcomes ORDER BY business_date, loan_id, installment_no")]


def _partitions(url: str) -> dict[str, str]:
    return {row.name: row.bound for row in query(
        url, "SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound "
             "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
             "WHERE i.inhparent = 'installment_outcomes'::regclass")}


@pytest.mark.postgres
def test_upgrade_from_version_4_keeps_every_outcome_row_in_per_date_partitions(postgres_url,
                                                                               tmp_path):
    database = connect(postgres_url)
    try:
        migrations.upgrade(database, clock=utc_now, target=4)
        with database.engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO recon_runs (run_id, business_date, started_at, outcome, host, pid, "
                "recon_version, database_url) VALUES ('v4run', '2026-11-26', now(), 'done', "
                "'h', 1, 'v', 'u')"))
            connection.execute(sa.text(
                "INSERT INTO installment_outcomes SELECT DATE '2026-11-25' + (n % 3), "
                "'L' || n, 1 + n % 4, 'B' || n, CASE WHEN n % 2 = 0 THEN 'paid' ELSE 'unpaid' "
                "END, CASE WHEN n % 2 = 0 THEN NULL ELSE 'insufficient_balance' END, "
                "n + 0.05, CASE WHEN n % 2 = 0 THEN n + 0.05 ELSE 0 END, 'UNIONPAY', "
                "CASE WHEN n % 2 = 0 THEN '00' ELSE '51' END, 'v4run' "
                "FROM generate_series(1, 3000) n"))
    finally:
        database.dispose()
    before = _outcome_rows(postgres_url)
    views_before = {view: [tuple(row) for row in query(
        postgres_url, f"SELECT * FROM {view} ORDER BY 1, 2, 3")]
        for view in ("daily_root_causes", "daily_gateway_failure_rate")}
    assert len(before) == 3000

    upgraded = recon("db", "upgrade", "--db", postgres_url, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "005_outcomes_partitioned_by_date" in upgraded.stdout
    assert "006_outcome_key_leads_with_loan" in upgraded.stdout

    after = _outcome_rows(postgres_url)
    assert [{column: row[column] for column in before[0]} for row in after] == before
    # Columns of 009 that rows written before it never had.
    assert {(row["days_past_due"], row["attempts"]) for row in after} == {(None, None)}
    assert query(postgres_url, "SELECT relkind FROM pg_class "
                               "WHERE relname = 'installment_outcomes'")[0].relkind == "p"
    assert _partitions(postgres_url) == {
        f"installment_outcomes_d2026112{day}": f"FOR VALUES IN ('2026-11-2{day}')"
        for day in (5, 6, 7)}
    for view, rows in views_before.items():
        assert [tuple(row) for row in query(postgres_url,
                                            f"SELECT * FROM {view} ORDER BY 1, 2, 3")] == rows
    assert not query(postgres_url, "SELECT 1 FROM pg_class WHERE relname = "
                                   "'installment_outcomes_v4'")
    assert {row.rows for row in query(
        postgres_url, "SELECT count(*) AS rows FROM installment_outcomes_d20261125_data")} == \
        {1000}
    # Each date's rows carry the key of 006, which also finds a loan across dates.
    assert sorted(_leaf_indexes(postgres_url, "installment_outcomes_d20261125_data").values()) == [
        "(business_date, root_cause) WHERE (root_cause IS NOT NULL)",
        "(loan_id, installment_no, business_date)"]
    plan = "\n".join(row[0] for row in query(
        postgres_url, "EXPLAIN (COSTS OFF) SELECT * FROM installment_outcomes WHERE loan_id = 'L7'"))
    assert "Seq Scan" not in plan and "pkey" in plan, plan
    # The constraints still hold on the partitioned table.
    with pytest.raises(sa.exc.IntegrityError):
        query(postgres_url, "INSERT INTO installment_outcomes SELECT * FROM installment_outcomes "
                            "LIMIT 1")


@pytest.mark.postgres
def test_rerun_swaps_only_its_own_date_partition(postgres_url, tmp_path):
    """The partition path: a rerun of D replaces exactly the leaf holding D's rows, by a new one
    with the parent's indexes, and leaves the other date's leaf (its very table) alone."""
    assert recon_run(DAYS[0], postgres_url, tmp_path).returncode == expected_exit_code(DAYS[0])
    assert recon_run(DAYS[1], postgres_url, tmp_path).returncode == expected_exit_code(DAYS[1])
    oids = {row.relname: row.oid for row in query(
        postgres_url, "SELECT relname, oid::bigint AS oid FROM pg_class "
                      "WHERE relname LIKE 'installment_outcomes_d%' AND relkind = 'r'")}
    assert set(oids) == {f"installment_outcomes_d{day.replace('-', '')}_data" for day in DAYS}
    first = _outcome_rows(postgres_url)

    rerun = recon_run(DAYS[1], postgres_url, tmp_path)
    assert rerun.returncode == expected_exit_code(DAYS[1]), rerun.stderr

    after = {row.relname: row.oid for row in query(
        postgres_url, "SELECT relname, oid::bigint AS oid FROM pg_class "
                      "WHERE relname LIKE 'installment_outcomes_d%' AND relkind = 'r'")}
    other, rerun_table = (f"installment_outcomes_d{day.replace('-', '')}_data" for day in DAYS)
    assert after[other] == oids[other]
    assert after[rerun_table] != oids[rerun_table]
    assert set(after) == set(oids)  # no staging table or old partition left behind
    rows = _outcome_rows(postgres_url)
    without_run = [{k: v for k, v in row.items() if k != "run_id"} for row in rows]
    assert without_run == [{k: v for k, v in row.items() if k != "run_id"} for row in first]
    assert {row["run_id"] for row in rows if str(row["business_date"]) == DAYS[0]} == \
        {row["run_id"] for row in first if str(row["business_date"]) == DAYS[0]}
    indexes = {row.indexname for row in query(
        postgres_url, "SELECT indexname FROM pg_indexes WHERE tablename = :t", t=rerun_table)}
    assert indexes == {f"{rerun_table}_pkey", f"{rerun_table}_by_cause"}
    assert _leaf_indexes(postgres_url, rerun_table)[f"{rerun_table}_pkey"] == \
        "(loan_id, installment_no, business_date)"
    # ... and they are the parent's indexes' partitions, not stray copies.
    parents = {row.parent for row in query(
        postgres_url, "SELECT i.inhparent::regclass::text AS parent FROM pg_inherits i "
                      "JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relname = ANY(:names)",
        names=[f"{rerun_table}_pkey", f"{rerun_table}_by_cause"])}
    assert len(parents) == 2


def _leaf_indexes(url: str, table: str) -> dict[str, str]:
    """Index name -> its columns (and predicate) as pg_indexes defines them."""
    return {row.indexname: row.indexdef.split(" USING btree ")[1] for row in query(
        url, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t", t=table)}


@pytest.mark.postgres
def test_database_lacking_a_lower_numbered_migration_is_refused_then_upgraded(postgres_url,
                                                                               tmp_path):
    # Migration numbers are reserved per workstream: a database can get 009 before 007 ships.
    assert recon_run(DAY, postgres_url, tmp_path).returncode == expected_exit_code(DAY)
    engine = sa.create_engine(normalise_url(postgres_url))
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE recon_date_locks"))
            connection.execute(sa.text("DELETE FROM schema_version WHERE version = 7"))
    finally:
        engine.dispose()

    refused = recon_run(DAY, postgres_url, tmp_path)
    assert refused.returncode == 5, refused.stderr
    assert "lacks schema migration(s) 007_date_locks" in refused.stderr
    assert "Traceback" not in refused.stderr

    upgraded = recon("db", "upgrade", "--db", postgres_url, cwd=tmp_path)
    assert upgraded.returncode == 0 and "007_date_locks" in upgraded.stdout, upgraded.stderr
    assert recon_run(DAY, postgres_url, tmp_path).returncode == expected_exit_code(DAY)


def test_sqlite_upgrade_to_012_turns_stored_plan_amounts_into_exact_text(tmp_path):
    """Rows 009-011 stored as floats or integers (NUMERIC affinity) become their 2-decimal text."""
    url = f"sqlite:///{tmp_path / 'recon.db'}"
    database = connect(url)
    try:
        migrations.upgrade(database, clock=utc_now, target=11)
        with database.engine.begin() as connection:
            for number, amount in enumerate(["1500.50", "600.00", "0.07", None], start=1):
                connection.execute(sa.text(
                    "INSERT INTO retry_plan (business_date, subject, loan_id, installment_no, "
                    "action, amount, attempts, reason, run_id) VALUES ('2026-11-27', "
                    "'installment', 'L1', :n, 'retry', :amount, 0, 'r', 'run')"),
                    {"n": number, "amount": amount})
        stored = query(url, "SELECT typeof(amount) AS kind FROM retry_plan ORDER BY 1")
        assert [row.kind for row in stored] == ["integer", "null", "real", "real"]
        migrations.upgrade(database, clock=utc_now)
    finally:
        database.dispose()
    rows = query(url, "SELECT installment_no, amount, typeof(amount) AS kind FROM retry_plan "
                      "ORDER BY installment_no")
    assert [(row.amount, row.kind) for row in rows] == [
        ("1500.50", "text"), ("600.00", "text"), ("0.07", "text"), (None, "null")]


@pytest.mark.postgres
def test_upgrade_to_013_keeps_every_plan_row_and_notice_in_per_date_partitions(postgres_url,
                                                                              tmp_path):
    """retry_plan and borrower_notices stored before 013 come out partitioned by date, each row
    as it was, with the keys and indexes of 009/010 (the notices' key now with the date)."""
    database = connect(postgres_url)
    try:
        migrations.upgrade(database, clock=utc_now, target=11)
        with database.engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO retry_plan (business_date, subject, loan_id, installment_no, action, "
                "not_before, amount, attempts, reason, run_id) SELECT DATE '2026-11-25' + n % 2, "
                "'installment', 'L' || n, 1, 'retry', TIMESTAMP '2026-11-28 09:00', n + 0.25, "
                "n % 3, 'r' || n, 'run' FROM generate_series(1, 200) n"))
            connection.execute(sa.text(
                "INSERT INTO borrower_notices (notice_id, business_date, borrower_id, "
                "content_key, channel, template_key, message, amount, card_last4, installments, "
                "send_after, state, created_at, created_run_id) SELECT "
                "to_char(DATE '2026-11-25' + n % 2, 'YYYYMMDD') || '-run-' || n, "
                "DATE '2026-11-25' + n % 2, 'B' || n, 'k' || n, 'sms', 'card_unbound', "
                "'消息' || n, n + 0.5, '1234', 'L' || n || '/1/card_unbound', now(), "
                "CASE WHEN n % 3 = 0 THEN 'sent' ELSE 'new' END, now(), 'run' "
                "FROM generate_series(1, 90) n"))
            # What an operator sets up for the messaging system's role.
            connection.execute(sa.text("GRANT SELECT, UPDATE ON borrower_notices TO PUBLIC"))
            connection.execute(sa.text("GRANT SELECT ON retry_plan TO PUBLIC"))
            connection.execute(sa.text("COMMENT ON TABLE borrower_notices IS 'the outbox'"))
            connection.execute(sa.text(
                "COMMENT ON COLUMN borrower_notices.state IS 'set by messaging'"))
    finally:
        database.dispose()
    plan_before = [tuple(row) for row in query(
        postgres_url, "SELECT * FROM retry_plan ORDER BY business_date, loan_id")]
    notices_before = [tuple(row) for row in query(
        postgres_url, "SELECT * FROM borrower_notices ORDER BY notice_id")]

    upgraded = recon("db", "upgrade", "--db", postgres_url, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "013_actions_partitioned_by_date" in upgraded.stdout

    assert [tuple(row) for row in query(
        postgres_url, "SELECT * FROM retry_plan ORDER BY business_date, loan_id")] == plan_before
    assert [tuple(row) for row in query(
        postgres_url, "SELECT * FROM borrower_notices ORDER BY notice_id")] == notices_before
    for table in ("retry_plan", "borrower_notices"):
        assert query(postgres_url, "SELECT relkind FROM pg_class WHERE relname = :t",
                     t=table)[0].relkind == "p"
        leaves = {row.name: row.rows for row in query(
            postgres_url, f"SELECT tableoid::regclass::text AS name, count(*) AS rows "
                          f"FROM {table} GROUP BY 1")}
        assert set(leaves) == {f"{table}_d2026112{day}_data" for day in (5, 6)}
        assert not query(postgres_url, "SELECT 1 FROM pg_class WHERE relname = :t",
                         t=f"{table}_v12")
    assert sorted(_leaf_indexes(postgres_url, "borrower_notices_d20261125_data").values()) == [
        "(business_date, borrower_id) WHERE (state = 'new'::text)",
        "(business_date, borrower_id, content_key) WHERE (state <> 'cancelled'::text)",
        "(notice_id, business_date)",
        "(send_after) WHERE (state = 'new'::text)"]
    # The constraints of 010 still hold on the partitioned table.
    with pytest.raises(sa.exc.IntegrityError, match=r"Key \(business_date, borrower_id\)="):
        query(postgres_url, "INSERT INTO borrower_notices SELECT notice_id || 'x', business_date, "
                            "borrower_id, content_key || 'x', channel, template_key, message, "
                            "amount, card_last4, installments, send_after, state, created_at, "
                            "created_run_id FROM borrower_notices WHERE state = 'new' LIMIT 1")
    with pytest.raises(sa.exc.IntegrityError, match="card_last4_check"):
        query(postgres_url, "UPDATE borrower_notices SET card_last4 = 'abcd'")
    # The privileges and comments set on the old tables are on the new ones.
    public = {(row.table, row.privilege) for row in query(
        postgres_url, "SELECT c.relname AS table, a.privilege_type AS privilege "
                      "FROM pg_class c, aclexplode(c.relacl) a WHERE a.grantee = 0 "
                      "AND c.relname IN ('borrower_notices', 'retry_plan')")}
    assert public == {("borrower_notices", "SELECT"), ("borrower_notices", "UPDATE"),
                      ("retry_plan", "SELECT")}
    assert query(postgres_url, "SELECT obj_description('borrower_notices'::regclass, "
                               "'pg_class') AS note")[0].note == "the outbox"
    assert query(postgres_url, "SELECT col_description('borrower_notices'::regclass, a.attnum) "
                               "AS note FROM pg_attribute a WHERE a.attrelid = "
                               "'borrower_notices'::regclass AND a.attname = 'state'")[0].note \
        == "set by messaging"
    # And a run writes into the partitioned tables.
    assert recon_run(DAY, postgres_url, tmp_path).returncode == expected_exit_code(DAY)
