"""CONTRACT 4.4 on a real PostgreSQL: what a run of the fixture days leaves in the database, and
what reruns and refused runs do to it."""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal

import pytest

from recon.db.tables import OUTCOME_COLUMNS
from recon.db.urls import normalise_url
from tests.conftest import FIXTURES, throwaway_database
from tests.integration.helpers import (DAYS, amounts_due_from_inbox, copy_day, expected_exit_code,
                                       expected_outcomes, query, read_rows, recon, recon_run, runs,
                                       snapshot)

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def loaded(postgres_server_url, tmp_path_factory):
    """Both fixture days run once, as a range, through the CLI into a throwaway database."""
    with throwaway_database(postgres_server_url) as url:
        work = tmp_path_factory.mktemp("pg-days")
        yield url, recon("run", "--from", DAYS[0], "--to", DAYS[-1], "--inbox",
                         str(FIXTURES / "inbox"), "--out", str(work / "out"), "--db", url,
                         cwd=work)


def test_range_run_exits_with_the_worst_expected_code(loaded):
    _, result = loaded
    assert result.returncode == max(expected_exit_code(day) for day in DAYS), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("day", DAYS)
def test_one_outcome_row_per_valid_installment_with_the_expected_status_and_cause(loaded, day):
    url, _ = loaded
    rows = query(url, "SELECT loan_id, installment_no, status, root_cause FROM "
                      "installment_outcomes WHERE business_date = :d", d=day)
    stored = [((row.loan_id, row.installment_no), (row.status, row.root_cause)) for row in rows]
    assert len(stored) == len(dict(stored)), "duplicate installment rows"
    assert dict(stored) == expected_outcomes(day)


@pytest.mark.parametrize("day", DAYS)
def test_paid_and_overpaid_have_null_root_cause_and_the_rest_have_one(loaded, day):
    url, _ = loaded
    rows = query(url, "SELECT status, root_cause IS NULL AS no_cause, count(*) AS n FROM "
                      "installment_outcomes WHERE business_date = :d GROUP BY 1, 2", d=day)
    for row in rows:
        assert row.no_cause == (row.status in ("paid", "overpaid")), row


def test_amount_columns_are_numeric_14_2(loaded):
    url, _ = loaded
    rows = query(url, "SELECT c.table_name, c.column_name, c.data_type, c.numeric_precision, "
                      "c.numeric_scale FROM information_schema.columns c JOIN "
                      "information_schema.tables t USING (table_schema, table_name) "
                      "WHERE t.table_type = 'BASE TABLE' AND c.column_name IN "
                      "('amount', 'amount_due', 'amount_settled')")
    # Tables partitioned by date (005, 013): their partitions list the same columns.
    tables = {(re.sub(r"^(installment_outcomes|retry_plan|borrower_notices)_d\d{8}(_data)?$",
                      r"\1", row.table_name), row.column_name) for row in rows}
    assert tables == {
        ("installment_outcomes", "amount_due"), ("installment_outcomes", "amount_settled"),
        ("settlement_exceptions", "amount"), ("retry_plan", "amount"),
        ("borrower_notices", "amount")}
    assert {(row.data_type, row.numeric_precision, row.numeric_scale) for row in rows} == {
        ("numeric", 14, 2)}


@pytest.mark.parametrize("day", DAYS)
def test_amount_due_is_stored_exactly_as_the_inbox_says(loaded, day):
    url, _ = loaded
    inbox = amounts_due_from_inbox(day)
    rows = query(url, "SELECT loan_id, installment_no, amount_due FROM installment_outcomes "
                      "WHERE business_date = :d", d=day)
    assert rows
    for row in rows:
        assert isinstance(row.amount_due, Decimal)
        assert row.amount_due == inbox[(row.loan_id, row.installment_no)], row


def test_settled_amounts_are_summed_exactly_not_as_floats(loaded):
    url, _ = loaded
    # L0005/1: 100.10 + 200.2 settle 300.30 exactly (a float sum gives 300.29999...).
    [row] = query(url, "SELECT status, amount_due, amount_settled FROM installment_outcomes "
                       "WHERE business_date = '2026-11-27' AND loan_id = 'L0005'")
    assert (row.status, row.amount_settled) == ("paid", Decimal("300.30"))
    assert row.amount_settled == row.amount_due
    totals = query(url, "SELECT business_date::text AS d, sum(amount_due) AS due FROM "
                        "installment_outcomes GROUP BY 1")
    for total in totals:
        assert total.due == sum(amounts_due_from_inbox(total.d)[key] for key in
                                expected_outcomes(total.d))


@pytest.mark.parametrize("day", DAYS)
def test_settlement_exceptions_are_stored(loaded, day):
    url, _ = loaded
    rows = query(url, "SELECT gateway_txn_id, instruction_id, kind, amount, run_id FROM "
                      "settlement_exceptions WHERE business_date = :d", d=day)
    expected = read_rows(FIXTURES / "expected" / day / "expected_settlement_exceptions.csv")
    assert sorted((row.gateway_txn_id, row.instruction_id, row.kind) for row in rows) == sorted(
        (row["gateway_txn_id"], row["instruction_id"], row["kind"]) for row in expected)
    assert all(row.amount > 0 for row in rows)


@pytest.mark.parametrize("day", DAYS)
def test_input_rejects_are_stored(loaded, day):
    url, _ = loaded
    rows = query(url, "SELECT file, line, column_name, reason FROM input_rejects "
                      "WHERE business_date = :d", d=day)
    expected = read_rows(FIXTURES / "expected" / day / "expected_rejects.csv")
    # (file, line): the column named for a key conflict is the validator's choice, not ours.
    assert sorted((row.file, row.line or 0) for row in rows) == sorted(
        (row["file"], int(row["line"] or 0)) for row in expected)
    assert all(row.reason for row in rows)
    assert all(row.column_name for row in rows if row.line is not None)


@pytest.mark.parametrize("day", DAYS)
def test_recon_runs_records_outcome_exit_code_counts_and_digests(loaded, day):
    url, _ = loaded
    [run] = runs(url, day)
    assert run.outcome == ("incomplete" if expected_exit_code(day) == 4 else "done")
    assert run.exit_code == expected_exit_code(day)
    assert run.ended_at is not None and run.ended_at >= run.started_at
    assert run.counts["installments"] == len(expected_outcomes(day))
    assert run.counts["rows_rejected"] == sum(
        1 for row in read_rows(FIXTURES / "expected" / day / "expected_rejects.csv") if row["line"])
    for name in ("installments.csv", "bindings.csv", "instructions.csv"):
        digest = hashlib.sha256((FIXTURES / "inbox" / day / name).read_bytes()).hexdigest()
        assert run.input_digests[name] == digest
    stored_run_ids = {row.run_id for row in query(
        url, "SELECT DISTINCT run_id FROM installment_outcomes WHERE business_date = :d", d=day)}
    assert stored_run_ids == {run.run_id}


@pytest.mark.parametrize("day", DAYS)
def test_the_dates_rows_keep_no_column_default_from_their_load(loaded, day):
    # The load fills business_date and run_id from defaults of the new leaf; none may stay.
    url, _ = loaded
    leaf = f"installment_outcomes_d{day.replace('-', '')}_data"
    defaults = query(url, "SELECT column_name, column_default FROM information_schema.columns "
                          "WHERE table_name = :t AND column_default IS NOT NULL", t=leaf)
    assert query(url, "SELECT count(*) AS n FROM information_schema.columns "
                      "WHERE table_name = :t", t=leaf)[0].n == len(OUTCOME_COLUMNS)
    assert defaults == []
    assert query(url, "SELECT DISTINCT business_date::text AS d FROM " + leaf)[0].d == day


@pytest.mark.parametrize("day", DAYS)
@pytest.mark.parametrize("table, kept", [("retry_plan", []),
                                         ("borrower_notices", [("state", "'new'::text")])])
def test_the_plan_and_notices_leaves_keep_only_the_parents_defaults(loaded, day, table, kept):
    # Loaded like the outcomes (013): D and the run id from defaults of the new leaf, dropped.
    url, _ = loaded
    leaf = f"{table}_d{day.replace('-', '')}_data"
    defaults = query(url, "SELECT column_name, column_default FROM information_schema.columns "
                          "WHERE table_name = :t AND column_default IS NOT NULL", t=leaf)
    assert [tuple(row) for row in defaults] == kept
    rows = query(url, f"SELECT DISTINCT business_date::text AS d FROM {leaf}")
    assert [row.d for row in rows] == [day]
    run_column = "run_id" if table == "retry_plan" else "created_run_id"
    stored_run = query(url, f"SELECT DISTINCT {run_column} AS run FROM {leaf}")
    assert len(stored_run) == 1 and stored_run[0].run


def test_analyst_views_answer_from_the_stored_outcomes(loaded):
    url, _ = loaded
    by_cause = query(url, "SELECT root_cause, sum(installments) AS n, sum(amount_outstanding) "
                          "AS outstanding FROM daily_root_causes WHERE business_date = "
                          "'2026-11-27' GROUP BY 1")
    counts = {row.root_cause: row.n for row in by_cause}
    assert counts["insufficient_balance"] == sum(
        1 for status, cause in expected_outcomes("2026-11-27").values()
        if cause == "insufficient_balance")
    [latest] = query(url, "SELECT outcome FROM latest_runs WHERE business_date = '2026-11-28'")
    assert latest.outcome == "incomplete"


# --- reruns ---------------------------------------------------------------------------------------

def without_run_id(rows: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Snapshot rows with the run_id column left out (it names the run that wrote them)."""
    return {table: [{key: value for key, value in row.items() if key != "run_id"}
                    for row in table_rows] for table, table_rows in rows.items()}


def test_rerun_of_the_same_inputs_leaves_identical_rows_and_two_runs(postgres_url, tmp_path):
    day = DAYS[0]
    first = recon_run(day, postgres_url, tmp_path)
    before = snapshot(postgres_url, day)
    second = recon_run(day, postgres_url, tmp_path)
    after = snapshot(postgres_url, day)

    assert first.returncode == second.returncode == expected_exit_code(day), second.stderr
    assert len(after["installment_outcomes"]) == len(expected_outcomes(day))
    assert without_run_id(after) == without_run_id(before)
    first_run, second_run = runs(postgres_url, day)
    assert {row["run_id"] for rows in after.values() for row in rows} == {second_run.run_id}
    assert [first_run.outcome, second_run.outcome] == ["incomplete", "incomplete"]


def test_rerun_replaces_the_day_and_leaves_other_days_alone(postgres_url, tmp_path):
    inbox = tmp_path / "inbox"
    day_dir = copy_day(DAYS[1], inbox)
    copy_day(DAYS[0], inbox)
    assert recon_run(DAYS[0], postgres_url, tmp_path, inbox=inbox).returncode == 4
    assert recon_run(DAYS[1], postgres_url, tmp_path, inbox=inbox).returncode == 4
    other_day = snapshot(postgres_url, DAYS[0])

    # The late file arrives with fewer installments: the day's rows are replaced, not merged.
    installments = day_dir / "installments.csv"
    lines = installments.read_text(encoding="utf-8").splitlines(keepends=True)
    dropped = lines[1].split(",")[0]
    installments.write_text("".join(lines[:1] + lines[2:]), encoding="utf-8")
    assert recon_run(DAYS[1], postgres_url, tmp_path, inbox=inbox).returncode == 4

    stored = query(postgres_url, "SELECT loan_id FROM installment_outcomes WHERE "
                                 "business_date = :d", d=DAYS[1])
    assert dropped not in {row.loan_id for row in stored}
    assert len(stored) == len(expected_outcomes(DAYS[1])) - 1
    assert snapshot(postgres_url, DAYS[0]) == other_day


def test_refused_run_writes_nothing_and_leaves_the_previous_results(postgres_url, tmp_path):
    day = DAYS[0]
    inbox = tmp_path / "inbox"
    day_dir = copy_day(day, inbox)
    assert recon_run(day, postgres_url, tmp_path, inbox=inbox).returncode == 4
    before = snapshot(postgres_url, day)
    report_before = (tmp_path / "out" / day / "exceptions.csv").read_bytes()

    (day_dir / "instructions.csv").unlink()
    refused = recon_run(day, postgres_url, tmp_path, inbox=inbox)

    assert refused.returncode == 3, refused.stderr
    assert "instructions.csv" in refused.stderr
    assert snapshot(postgres_url, day) == before
    assert (tmp_path / "out" / day / "exceptions.csv").read_bytes() == report_before
    last = runs(postgres_url, day)[-1]
    assert (last.outcome, last.exit_code) == ("refused", 3)
    assert last.ended_at is not None


# --- URLs -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_bare_postgresql_url_is_driven_by_psycopg2(postgres_url, tmp_path, scheme):
    bare = postgres_url.replace("postgresql+psycopg2://", f"{scheme}://", 1)
    assert bare.startswith(f"{scheme}://")
    result = recon_run(DAYS[1], bare, tmp_path)
    assert result.returncode == expected_exit_code(DAYS[1]), result.stderr
    [run] = runs(postgres_url, DAYS[1])
    assert run.database_url.startswith("postgresql+psycopg2://")


def test_url_without_host_or_database_uses_the_libpq_environment(postgres_url, tmp_path):
    from tests.integration.helpers import subprocess_env

    parsed = normalise_url(postgres_url)
    env = subprocess_env(PGHOST=parsed.host, PGPORT=str(parsed.port or 5432),
                         PGUSER=parsed.username, PGDATABASE=parsed.database)
    result = recon_run(DAYS[1], "postgresql://", tmp_path, env=env)
    assert result.returncode == expected_exit_code(DAYS[1]), result.stderr
    assert len(runs(postgres_url, DAYS[1])) == 1
