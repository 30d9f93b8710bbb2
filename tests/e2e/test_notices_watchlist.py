"""CONTRACT 7 through the CLI on a fixture-like day: borrower notices and the watchlist.

The 2026-11-27 fixture day, with L0011 (insufficient_balance) and L0013 (account_closed) given
to L0010's borrower B0010 (insufficient_balance): one borrower, three failed installments on
two causes. The day already holds rebindings (L0040, L0047) and loans without any binding; L0039 (no
binding, instruction not confirmed) gets an overdue installment 2, due a month before D.
"""

from __future__ import annotations

import csv
import re
import shutil
import sqlite3

import pytest
from click.testing import CliRunner

from recon.cli import main
from tests.conftest import FIXTURES

DAY = "2026-11-27"
INTERNAL = {"B0016": "gateway_outage", "B0017": "other_decline", "B0018": "unclassified",
            "B0008": "settlement_pending", "B0032": "no_settlement_record"}


def read_rows(path):
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def make_inbox(tmp_path):
    inbox = tmp_path / "inbox"
    shutil.copytree(FIXTURES / "inbox" / DAY, inbox / DAY)
    installments = inbox / DAY / "installments.csv"
    text = installments.read_text(encoding="utf-8-sig")
    text = text.replace("L0011,1,B0011,", "L0011,1,B0010,").replace("L0013,1,B0013,",
                                                                     "L0013,1,B0010,")
    # An overdue installment of a loan without any binding, collected again on D.
    text = text.rstrip("\n") + "\nL0039,2,B0039,2026-10-27,250.00,CNY,CAR36\n"
    installments.write_text(text, encoding="utf-8")
    return inbox


def run(tmp_path, inbox, *more):
    return CliRunner().invoke(main, [
        "run", "--date", DAY, "--inbox", str(inbox), "--out", str(tmp_path / "out"),
        "--db", f"sqlite:///{tmp_path / 'recon.db'}", *more])


@pytest.fixture
def day_run(tmp_path):
    inbox = make_inbox(tmp_path)
    result = run(tmp_path, inbox)
    assert result.exit_code == 4, result.output
    return tmp_path, inbox, result


def test_several_installments_of_one_borrower_make_one_notice(day_run):
    work, _, _ = day_run
    notices = read_rows(work / "out" / DAY / "notices.csv")
    borrowers = [row["borrower_id"] for row in notices]
    assert len(borrowers) == len(set(borrowers))
    [b0010] = [row for row in notices if row["borrower_id"] == "B0010"]
    assert b0010["installments"] == ("L0010/1/insufficient_balance;L0011/1/insufficient_balance;"
                                     "L0013/1/account_closed")
    assert b0010["template_key"] == "account_closed"
    assert b0010["amount"] == "3220.50"
    assert "3期车贷共3,220.50元" in b0010["message"] and "尾号4321" in b0010["message"]
    assert b0010["state"] == "new"


def test_an_overdue_installment_joins_its_borrowers_notice(day_run):
    work, _, _ = day_run
    [b0039] = [row for row in read_rows(work / "out" / DAY / "notices.csv")
               if row["borrower_id"] == "B0039"]
    assert b0039["installments"] == "L0039/1/instruction_not_confirmed;L0039/2/card_unbound"
    assert b0039["template_key"] == "card_unbound"
    assert b0039["amount"] == "4150.00"
    [overdue] = [row for row in read_rows(work / "out" / DAY / "exceptions.csv")
                 if (row["loan_id"], row["installment_no"]) == ("L0039", "2")]
    assert overdue["days_past_due"] == "31"


def test_no_notice_for_internal_causes_and_none_for_paid(day_run):
    work, _, _ = day_run
    noticed = {row["borrower_id"] for row in read_rows(work / "out" / DAY / "notices.csv")}
    assert not noticed & set(INTERNAL)
    assert not noticed & {"B0001", "B0002", "B0003"}  # paid, paid, overpaid
    assert {"B0012", "B0014", "B0015"} <= noticed  # frozen, unbound, not confirmed


def test_no_card_number_and_no_message_at_night(day_run):
    work, _, _ = day_run
    for row in read_rows(work / "out" / DAY / "notices.csv"):
        assert not re.search(r"[0-9](?:[ -]?[0-9]){12}", row["message"])
        assert "622202" not in row["message"]
        assert re.fullmatch(r"[0-9]{4}|", row["card_last4"])
        local_time = row["send_after"][11:19]
        assert "09:00:00" <= local_time < "21:00:00"
        assert row["send_after"].endswith("+08:00")


def test_the_watchlist_has_the_rebinding_the_unbound_and_the_never_bound(day_run):
    work, _, _ = day_run
    rows = read_rows(work / "out" / DAY / "watchlist.csv")
    by_key = {(row["risk"], row["loan_id"]): row for row in rows}
    rebound = by_key[("binding_ended", "L0040")]
    assert "now active: binding BND0040B" in rebound["evidence"]
    assert ("no_active_binding", "L0040") not in by_key  # rebound: bound at the end of D
    assert ("no_active_binding", "L0043") in by_key and ("binding_ended", "L0043") in by_key
    assert by_key[("no_active_binding", "L0039")]["evidence"] == \
        f"no card binding on file for a loan due on {DAY}"
    with sqlite3.connect(work / "recon.db") as connection:
        stored = connection.execute("SELECT count(*) FROM current_watchlist").fetchone()[0]
    assert stored == len(rows)


def test_the_summary_counts_notices_by_channel_and_watchlist_by_risk(day_run):
    work, _, result = day_run
    notices = read_rows(work / "out" / DAY / "notices.csv")
    calls = sum(row["channel"] == "call" for row in notices)
    sms = sum(row["channel"] == "sms" for row in notices)
    assert (f"notices by channel: call {calls}, sms {sms} (added {len(notices)}, cancelled 0, "
            f"kept 0, taken 0; notices.csv)") in result.output
    assert "watchlist by risk: binding_ended 6, no_active_binding 9" in result.output


def test_a_rerun_with_the_same_inputs_keeps_every_notice(day_run):
    work, inbox, _ = day_run
    before = (work / "out" / DAY / "notices.csv").read_bytes()
    again = run(work, inbox)
    assert again.exit_code == 4, again.output
    assert "cancelled 0, kept" in again.output and "(added 0," in again.output
    assert (work / "out" / DAY / "notices.csv").read_bytes() == before


def test_a_bad_template_file_is_exit_2_naming_file_key_and_problem(tmp_path):
    inbox = make_inbox(tmp_path)
    templates = tmp_path / "notices.toml"
    templates.write_text('[templates.card_unbound]\ntext = "请绑卡 {card_no}"\n',
                         encoding="utf-8")
    result = run(tmp_path, inbox, "--notice-templates", str(templates))
    assert result.exit_code == 2
    assert str(templates) in result.output
    assert "templates.card_unbound.text" in result.output
    assert "unknown placeholder {card_no}" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / DAY).exists()


def test_operator_templates_change_the_text(tmp_path):
    inbox = make_inbox(tmp_path)
    templates = tmp_path / "notices.toml"
    templates.write_text('[templates.account_frozen]\nchannel = "sms"\n'
                         'text = "冻结：{amount}，请于{due_by}前处理"\n', encoding="utf-8")
    result = run(tmp_path, inbox, "--notice-templates", str(templates))
    assert result.exit_code == 4, result.output
    [b0012] = [row for row in read_rows(tmp_path / "out" / DAY / "notices.csv")
               if row["borrower_id"] == "B0012"]
    assert re.fullmatch(r"冻结：1,200\.00元，请于\d+月\d+日前处理", b0012["message"])
    assert b0012["channel"] == "sms"


def test_recon_report_shows_notices_and_watchlist_per_day(day_run):
    work, _, _ = day_run
    notices = read_rows(work / "out" / DAY / "notices.csv")
    result = CliRunner().invoke(main, ["report", "--from", "2026-11-26", "--to", DAY, "--db",
                                       f"sqlite:///{work / 'recon.db'}", "--out",
                                       str(work / "out")])
    assert result.exit_code == 0, result.output
    folder = work / "out" / f"report_2026-11-26_{DAY}"
    [row] = read_rows(folder / "actions_by_day.csv")
    assert row == {"business_date": DAY,
                   "notices_sms": str(sum(n["channel"] == "sms" for n in notices)),
                   "notices_call": str(sum(n["channel"] == "call" for n in notices)),
                   "notices_cancelled": "0", "watchlist_no_active_binding": "9",
                   "watchlist_binding_ended": "6", "watchlist_repeated_borrower_failure": "0"}
    assert "Borrower notices and watchlist per day" in (folder / "report.html").read_text(
        encoding="utf-8")
