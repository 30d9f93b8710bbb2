"""CONTRACT 7's retry plan end to end: retry_plan.csv and table retry_plan written with D's
results, replaced on rerun, attempts counted across business dates from the stored outcomes, and
overdue installments carried with their days past due. On PostgreSQL and on SQLite."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.integration.helpers import DAYS, query, recon, recon_run


def read_rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_plan_is_stored_as_written_and_a_rerun_replaces_it_identically(database_url,
                                                                              tmp_path):
    day = DAYS[0]
    assert recon_run(day, database_url, tmp_path).returncode == 4
    written = read_rows(tmp_path / "out" / day / "retry_plan.csv")
    first = query(database_url, "SELECT action, count(*) AS n, sum(amount) AS amount "
                                "FROM retry_plan WHERE business_date = :d GROUP BY action "
                                "ORDER BY action", d=day)
    counts = {}
    for row in written:
        counts[row["action"]] = counts.get(row["action"], 0) + 1
    assert {row.action: row.n for row in first} == counts
    assert "refund" in counts and "retry" in counts and "query_gateway" in counts
    csv_before = (tmp_path / "out" / day / "retry_plan.csv").read_bytes()

    assert recon_run(day, database_url, tmp_path).returncode == 4
    again = query(database_url, "SELECT action, count(*) AS n, sum(amount) AS amount "
                                "FROM retry_plan WHERE business_date = :d GROUP BY action "
                                "ORDER BY action", d=day)
    assert [tuple(row) for row in again] == [tuple(row) for row in first]
    assert (tmp_path / "out" / day / "retry_plan.csv").read_bytes() == csv_before
    run_ids = query(database_url, "SELECT DISTINCT run_id FROM retry_plan WHERE "
                                  "business_date = :d", d=day)
    last = query(database_url, "SELECT run_id FROM recon_runs WHERE business_date = :d "
                               "ORDER BY started_at DESC LIMIT 1", d=day)
    assert [row.run_id for row in run_ids] == [last[0].run_id]


# --- a small inbox of three dates: one installment failing for lack of money day after day ----

HEADERS = {
    "installments.csv": "loan_id,installment_no,borrower_id,due_date,amount_due,currency",
    "bindings.csv": "binding_id,loan_id,account_token,card_no_masked,bank_code,status,bound_at,"
                    "unbound_at",
    "instructions.csv": "instruction_id,loan_id,installment_no,gateway,amount,created_at,"
                        "confirm_required,confirm_status,sent_at",
    "settlement_UNIONPAY.csv": "gateway_txn_id,instruction_id,amount,status,response_code,"
                               "response_msg,txn_time",
}


def write_day(inbox: Path, day: str, due_date: str) -> None:
    """L1/1 (300.00, due `due_date`) fails 51 on `day`; L2/1 (due on `day`) is paid."""
    folder = inbox / day
    folder.mkdir(parents=True)
    n = day.replace("-", "")
    rows = {
        "installments.csv": [f"L1,1,B1,{due_date},300.00,CNY", f"L2,1,B2,{day},100.00,CNY"],
        "bindings.csv": ["K1,L1,tok1,622202******1111,ICBC,ACTIVE,2025-01-01 00:00:00,",
                         "K2,L2,tok2,622202******2222,ICBC,ACTIVE,2025-01-01 00:00:00,"],
        "instructions.csv": [f"{n}01,L1,1,UNIONPAY,300.00,{day} 06:00:00,false,NOT_REQUIRED,"
                             f"{day} 09:00:00",
                             f"{n}02,L2,1,UNIONPAY,100.00,{day} 06:00:00,false,NOT_REQUIRED,"
                             f"{day} 09:00:00"],
        "settlement_UNIONPAY.csv": [f"T{n}01,{n}01,300.00,FAILED,51,余额不足,{day} 09:00:05",
                                    f"T{n}02,{n}02,100.00,SUCCESS,00,OK,{day} 09:00:05"],
    }
    for name, lines in rows.items():
        (folder / name).write_text("\n".join([HEADERS[name]] + lines) + "\n", encoding="utf-8")
    (folder / "settlement_UNIONPAY.ctl").write_text(
        f"gateway=UNIONPAY\nbusiness_date={day}\nscheme=iso8583\nrecords=2\n"
        f"amount_total=100.00\n", encoding="utf-8")


def plan_row(tmp_path: Path, day: str, loan: str = "L1") -> dict:
    rows = [row for row in read_rows(tmp_path / "out" / day / "retry_plan.csv")
            if row["loan_id"] == loan]
    assert len(rows) == 1, rows
    return rows[0]


def test_attempts_of_earlier_dates_cap_the_retries_of_an_overdue_installment(database_url,
                                                                             tmp_path):
    inbox = tmp_path / "inbox"
    days = ["2026-12-01", "2026-12-02", "2026-12-03"]
    for day in days:
        write_day(inbox, day, due_date=days[0])
    for day in days:
        result = recon_run(day, database_url, tmp_path, inbox=inbox)
        assert result.returncode == 0, result.stdout + result.stderr

    first, second, third = (plan_row(tmp_path, day) for day in days)
    assert (first["action"], first["attempts"], first["not_before"]) == \
        ("retry", "1", "2026-12-02 09:00:00")
    assert (second["action"], second["attempts"], second["days_past_due"]) == ("retry", "2", "1")
    # The third failed attempt over the installment's life reaches the default cap of 3.
    assert (third["action"], third["attempts"], third["max_attempts"]) == ("none", "3", "3")
    stored = query(database_url, "SELECT business_date, days_past_due, attempts FROM "
                                 "installment_outcomes WHERE loan_id = 'L1' ORDER BY 1")
    assert [(row.days_past_due, row.attempts) for row in stored] == [(0, 1), (1, 1), (2, 1)]
    exceptions = read_rows(tmp_path / "out" / days[2] / "exceptions.csv")
    assert [(row["loan_id"], row["days_past_due"]) for row in exceptions] == [("L1", "2")]
    assert not [row for row in read_rows(tmp_path / "out" / days[2] / "retry_plan.csv")
                if row["loan_id"] == "L2"]


def write_slow_first_range(inbox: Path, days: list[str]) -> None:
    """write_day for each of `days`, the first also holding 20,000 paid installments: it takes
    seconds longer than the others, which would otherwise plan before it committed."""
    for day in days:
        write_day(inbox, day, due_date=days[0])
    folder, n = inbox / days[0], days[0].replace("-", "")
    extra = {"installments.csv": [f"P{i},1,BP{i},{days[0]},10.00,CNY" for i in range(20_000)],
             "bindings.csv": [f"KP{i},P{i},tp{i},622202******0000,ICBC,ACTIVE,"
                              f"2025-01-01 00:00:00," for i in range(20_000)],
             "instructions.csv": [f"{n}P{i},P{i},1,UNIONPAY,10.00,{days[0]} 06:00:00,false,"
                                  f"NOT_REQUIRED,{days[0]} 09:00:00" for i in range(20_000)],
             "settlement_UNIONPAY.csv": [f"T{n}P{i},{n}P{i},10.00,SUCCESS,00,OK,"
                                         f"{days[0]} 09:00:05" for i in range(20_000)]}
    for name, lines in extra.items():
        with open(folder / name, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
    (folder / "settlement_UNIONPAY.ctl").write_text(
        f"gateway=UNIONPAY\nbusiness_date={days[0]}\nscheme=iso8583\nrecords=20002\n"
        f"amount_total=200100.00\n", encoding="utf-8")


def test_dates_run_in_parallel_plan_as_if_run_one_after_another(database_url, tmp_path):
    """--jobs 2: each date's actions wait for the dates before it, which its caps count."""
    inbox = tmp_path / "inbox"
    days = ["2026-12-01", "2026-12-02", "2026-12-03"]
    write_slow_first_range(inbox, days)
    result = recon("run", "--from", days[0], "--to", days[-1], "--jobs", "2", "--inbox",
                   str(inbox), "--out", str(tmp_path / "out"), "--db", database_url,
                   cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [(row["action"], row["attempts"]) for row in
            (plan_row(tmp_path, day) for day in days)] == [("retry", "1"), ("retry", "2"),
                                                          ("none", "3")]


def test_a_rerun_of_an_earlier_date_does_not_count_its_own_attempts_twice(database_url, tmp_path):
    inbox = tmp_path / "inbox"
    days = ["2026-12-01", "2026-12-02"]
    for day in days:
        write_day(inbox, day, due_date=days[0])
    for day in days + days:
        assert recon_run(day, database_url, tmp_path, inbox=inbox).returncode == 0
    assert plan_row(tmp_path, days[0])["attempts"] == "1"
    assert plan_row(tmp_path, days[1])["attempts"] == "2"


def test_ids_quoted_in_reasons_and_evidence_read_as_in_their_own_columns(database_url, tmp_path):
    """A binding id passing the Luhn check (one 16-digit id in ten does) is an id, not a card:
    the retry reason and the watchlist evidence that quote it show it byte for byte, in the CSV
    as in the table."""
    from recon.protect import luhn_valid

    new_binding, ended_binding = "0000000005791272", "0000000005785779"
    assert luhn_valid(new_binding) and luhn_valid(ended_binding)
    day = "2026-12-01"
    folder = tmp_path / "inbox" / day
    folder.mkdir(parents=True)
    rows = {
        # L1: no binding at the start of D, no instruction (card_unbound), rebound at noon.
        # L3: its only binding revoked during D (no binding active at the end of D).
        "installments.csv": [f"L1,1,B1,{day},300.00,CNY", f"L3,1,B3,{day},100.00,CNY"],
        "bindings.csv": ["K0,L1,tok0,622202******0000,ICBC,REVOKED,2025-01-01 00:00:00,"
                         "2026-11-30 20:00:00",
                         f"{new_binding},L1,tok1,622202******1111,ICBC,ACTIVE,{day} 12:00:00,",
                         f"{ended_binding},L3,tok3,622202******3333,ICBC,REVOKED,"
                         f"2025-01-01 00:00:00,{day} 10:00:00"],
        "instructions.csv": [],
    }
    for name, lines in rows.items():
        (folder / name).write_text("\n".join([HEADERS[name]] + lines) + "\n", encoding="utf-8")
    result = recon_run(day, database_url, tmp_path, inbox=tmp_path / "inbox")
    assert result.returncode == 0, result.stdout + result.stderr

    plan = plan_row(tmp_path, day)
    assert (plan["root_cause"], plan["action"], plan["binding_id"]) == \
        ("card_unbound", "retry", new_binding)
    assert f"(binding {new_binding})" in plan["reason"]
    stored = query(database_url, "SELECT reason FROM retry_plan WHERE loan_id = 'L1'")
    assert [row.reason for row in stored] == [plan["reason"]]

    watch = [row for row in read_rows(tmp_path / "out" / day / "watchlist.csv")
             if row["loan_id"] == "L3" and row["risk"] == "no_active_binding"]
    assert len(watch) == 1 and watch[0]["evidence"].startswith(
        f"binding {ended_binding} (card ****3333) REVOKED since {day} 10:00:00"), watch
    stored = query(database_url, "SELECT evidence FROM watchlist WHERE loan_id = 'L3' AND "
                                 "risk = 'no_active_binding'")
    assert [row.evidence for row in stored] == [watch[0]["evidence"]]


def test_stored_plan_amounts_are_exact_and_the_trend_report_sums_them_exactly(database_url,
                                                                              tmp_path):
    """SQLite's NUMERIC affinity once stored the plan's 1500.50 as the float 1500.5 and summed
    floats: the amounts are exact text there (migration 012), the table reads back the CSV's."""
    from decimal import Decimal

    from tests.integration.helpers import recon

    day = DAYS[0]
    assert recon_run(day, database_url, tmp_path).returncode == 4
    written = read_rows(tmp_path / "out" / day / "retry_plan.csv")
    stored = query(database_url, "SELECT loan_id, installment_no, subject, gateway_txn_id, "
                                 "amount FROM retry_plan WHERE amount IS NOT NULL")
    in_csv = {(row["loan_id"], row["installment_no"], row["subject"], row["gateway_txn_id"]):
              row["amount"] for row in written if row["amount"]}
    assert {(row.loan_id, str(row.installment_no), row.subject, row.gateway_txn_id or ""):
            str(row.amount) for row in stored} == in_csv
    result = recon("report", "--from", day, "--to", day, "--db", database_url, "--out",
                   str(tmp_path / "report"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    by_action = {row["action"]: row for row in
                 read_rows(tmp_path / "report" / f"report_{day}_{day}" / "retry_plan_by_day.csv")}
    for action in {row["action"] for row in written}:
        expected = sum((Decimal(row["amount"]) for row in written
                        if row["action"] == action and row["amount"]), Decimal("0.00"))
        assert Decimal(by_action[action]["amount"]) == expected
        assert by_action[action]["amount"] == f"{expected:.2f}", by_action[action]


def test_a_notice_total_numeric_14_2_cannot_hold_refuses_the_date_on_every_database(
        database_url, tmp_path):
    day = "2026-12-01"
    folder = tmp_path / "inbox" / day
    folder.mkdir(parents=True)
    n = day.replace("-", "")
    rows = {
        "installments.csv": [f"L{i},1,B1,{day},999999999999.99,CNY" for i in (1, 2)],
        "bindings.csv": [f"K{i},L{i},tok{i},622202******1111,ICBC,ACTIVE,2025-01-01 00:00:00,"
                         for i in (1, 2)],
        "instructions.csv": [f"{n}0{i},L{i},1,UNIONPAY,999999999999.99,{day} 06:00:00,false,"
                             f"NOT_REQUIRED,{day} 09:00:00" for i in (1, 2)],
        "settlement_UNIONPAY.csv": [f"T{n}0{i},{n}0{i},999999999999.99,FAILED,51,余额不足,"
                                    f"{day} 09:00:05" for i in (1, 2)],
    }
    for name, lines in rows.items():
        (folder / name).write_text("\n".join([HEADERS[name]] + lines) + "\n", encoding="utf-8")
    (folder / "settlement_UNIONPAY.ctl").write_text(
        f"gateway=UNIONPAY\nbusiness_date={day}\nscheme=iso8583\nrecords=2\namount_total=0.00\n",
        encoding="utf-8")
    result = recon_run(day, database_url, tmp_path, inbox=tmp_path / "inbox")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "borrower B1" in result.stderr and "NUMERIC(14,2)" in result.stderr
    assert query(database_url, "SELECT count(*) AS n FROM borrower_notices")[0].n == 0
    assert query(database_url, "SELECT count(*) AS n FROM installment_outcomes")[0].n == 0
