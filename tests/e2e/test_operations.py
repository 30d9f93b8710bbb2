"""What cron, on-call and ops see, end to end: logs, progress, the run diff, suspected outages."""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import os
import pty
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
import termios
from decimal import Decimal

import pytest
from click.testing import CliRunner

from recon.cli import main
from tests.conftest import FIXTURES

DAY = "2026-11-28"
STEPS = {"load", "classify", "outages", "compare", "plan", "act", "write_csv", "write_db"}


def inbox_copy(tmp_path, day=DAY):
    inbox = tmp_path / "inbox"
    shutil.copytree(FIXTURES / "inbox" / day, inbox / day)
    return inbox


def recon(*args, stderr=subprocess.PIPE):
    """The installed command as cron runs it: no terminal, nothing in the environment."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RECON_")}
    return subprocess.run([sys.executable, "-m", "recon.cli", *map(str, args)], env=env,
                          stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=300)


def run_args(tmp_path, inbox, *more):
    return ["run", "--inbox", inbox, "--out", tmp_path / "out", "--db",
            f"sqlite:///{tmp_path / 'recon.db'}", *more]


def cli(tmp_path, inbox, *more):
    result = CliRunner().invoke(main, [str(arg) for arg in run_args(tmp_path, inbox, *more)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def read_csv(path):
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def assert_only_summaries(stdout: str, days: list[str]) -> None:
    lines = stdout.splitlines()
    heads = [line for line in lines if not line.startswith("  ")]
    assert [head.split(":")[0] for head in heads] == [f"recon {day}" for day in days], stdout
    assert not any(marker in stdout for marker in ("\r", "\x1b", " INFO ", '"level"')), stdout


# --- logs -------------------------------------------------------------------------------------

def test_under_cron_stdout_holds_only_the_summary_and_stderr_nothing(tmp_path):
    inbox = inbox_copy(tmp_path)
    result = recon(*run_args(tmp_path, inbox, "--date", DAY))
    assert result.returncode == 4, result.stderr
    assert_only_summaries(result.stdout, [DAY])
    assert "NOT ARRIVED settlement_BAOFU.csv" in result.stdout
    assert result.stderr == ""


def test_json_logs_are_one_parseable_line_per_step_with_run_id_and_business_date(tmp_path):
    inbox = inbox_copy(tmp_path)
    result = recon(*run_args(tmp_path, inbox, "--date", DAY, "--log-format", "json", "-v"))
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert {entry["step"] for entry in entries if "step" in entry} == STEPS
    for entry in entries:
        assert set(entry) >= {"ts", "level", "run_id", "business_date", "message"}
        assert entry["business_date"] == DAY and len(entry["run_id"]) == 16
    assert len({entry["run_id"] for entry in entries}) == 1
    assert entries[0]["message"].startswith("run started")
    assert entries[-1]["message"] == "run finished: incomplete (exit 4)"
    assert_only_summaries(result.stdout, [DAY])


def test_the_log_file_gets_every_step_while_cron_mail_stays_short(tmp_path):
    inbox = inbox_copy(tmp_path)
    log_file = tmp_path / "logs" / "recon.log"
    result = recon(*run_args(tmp_path, inbox, "--date", DAY, "--log-file", log_file))
    assert result.stderr == ""
    lines = log_file.read_text(encoding="utf-8").splitlines()
    assert sum(f"[{DAY} run " in line and " done in " in line for line in lines) == len(STEPS)


def test_an_error_goes_to_stderr_as_a_log_line_and_stdout_keeps_the_summary(tmp_path):
    inbox = inbox_copy(tmp_path)
    result = recon(*run_args(tmp_path, inbox, "--date", "2026-11-29", "--log-format", "json"))
    assert result.returncode == 3
    [error] = [json.loads(line) for line in result.stderr.splitlines()]
    assert error["level"] == "ERROR" and error["business_date"] == "2026-11-29"
    assert "does not exist" in error["message"]
    assert_only_summaries(result.stdout, ["2026-11-29"])


def test_an_unreachable_database_is_one_error_line_on_stderr_and_nothing_on_stdout(tmp_path):
    inbox = inbox_copy(tmp_path)
    result = recon("run", "--date", DAY, "--inbox", inbox, "--out", tmp_path / "out",
                   "--db", f"sqlite:///{tmp_path / 'missing' / 'recon.db'}")
    assert result.returncode == 5
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert f"ERROR [{DAY}] recon {DAY}: database" in line


def test_worker_processes_log_in_the_same_format(tmp_path):
    inbox = tmp_path / "inbox"
    shutil.copytree(FIXTURES / "inbox", inbox)
    # Schema first: two workers creating a fresh SQLite schema at once can race (exit 5).
    assert recon("db", "upgrade", "--db", f"sqlite:///{tmp_path / 'recon.db'}").returncode == 0
    result = recon(*run_args(tmp_path, inbox, "--from", "2026-11-27", "--to", DAY, "--jobs", "2",
                             "--log-format", "json", "-v"))
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert {entry["business_date"] for entry in entries} == {"2026-11-27", DAY}
    assert_only_summaries(result.stdout, ["2026-11-27", DAY])


# --- progress ---------------------------------------------------------------------------------

def run_on_a_terminal(args) -> tuple[subprocess.CompletedProcess, str]:
    """stderr on a pseudo-terminal (as in an interactive shell), stdout piped."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    try:
        process = subprocess.Popen([sys.executable, "-m", "recon.cli", *map(str, args)],
                                   stdout=subprocess.PIPE, stderr=terminal, text=True)
    finally:
        os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    stdout = process.stdout.read()
    process.wait(timeout=300)
    os.close(controller)
    return subprocess.CompletedProcess(args, process.returncode, stdout, ""), shown.decode()


def test_on_a_terminal_a_range_shows_a_progress_bar_and_every_step(tmp_path):
    inbox = tmp_path / "inbox"
    shutil.copytree(FIXTURES / "inbox", inbox)
    result, terminal = run_on_a_terminal(run_args(tmp_path, inbox, "--from", "2026-11-27",
                                                  "--to", DAY))
    assert result.returncode == 4
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal)  # colours and cursor moves
    assert re.search(r"recon 2026-11-27\.\.2026-11-28 \S+ +50% 1/2 .*2026-11-27 done", shown), \
        shown
    assert "100% 2/2" in shown
    assert f"INFO  [{DAY} run " in shown
    assert_only_summaries(result.stdout, ["2026-11-27", DAY])


def test_without_a_terminal_there_is_no_progress_display(tmp_path):
    inbox = tmp_path / "inbox"
    shutil.copytree(FIXTURES / "inbox", inbox)
    result = recon(*run_args(tmp_path, inbox, "--from", "2026-11-27", "--to", DAY, "-v"))
    assert "\r" not in result.stderr and "[#" not in result.stderr
    assert "\x1b" not in result.stderr


# --- the run diff -----------------------------------------------------------------------------

def add_settlement_file(day_dir, gateway: str, rows: list[dict], scheme: str = "iso8583"):
    header = ["gateway_txn_id", "instruction_id", "amount", "status", "response_code",
              "response_msg", "txn_time"]
    with open(day_dir / f"settlement_{gateway}.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    write_control(day_dir, gateway, scheme)


def write_control(day_dir, gateway: str, scheme: str) -> None:
    data = (day_dir / f"settlement_{gateway}.csv").read_bytes()
    rows = list(csv.DictReader(data.decode("utf-8").splitlines()))
    total = sum(Decimal(row["amount"]) for row in rows if row["status"] == "SUCCESS")
    (day_dir / f"settlement_{gateway}.ctl").write_text(
        f"gateway={gateway}\nbusiness_date={day_dir.name}\nscheme={scheme}\nrecords={len(rows)}\n"
        f"amount_total={total:.2f}\nsha256={hashlib.sha256(data).hexdigest()}\n")


BAOFU_ROWS = [
    {"gateway_txn_id": "BF0101", "instruction_id": "20261128000001010001", "amount": "1010.00",
     "status": "SUCCESS", "response_code": "00", "response_msg": "交易成功",
     "txn_time": "2026-11-28 08:01:30"},
    {"gateway_txn_id": "BF0102", "instruction_id": "20261128000001020002", "amount": "1020.00",
     "status": "FAILED", "response_code": "51", "response_msg": "余额不足",
     "txn_time": "2026-11-28 10:00:30"},
]


def test_the_first_run_of_a_date_has_no_changes(tmp_path):
    inbox = inbox_copy(tmp_path)
    result = cli(tmp_path, inbox, "--date", DAY)
    assert "changes since" not in result.stdout
    assert read_csv(tmp_path / "out" / DAY / "changes.csv") == []


def test_rerun_after_a_late_settlement_file_lists_the_transitions(tmp_path):
    inbox = inbox_copy(tmp_path)
    first = cli(tmp_path, inbox, "--date", DAY)
    first_run = first.stdout.split("run ", 1)[1].split()[0]
    add_settlement_file(inbox / DAY, "BAOFU", BAOFU_ROWS)
    second = cli(tmp_path, inbox, "--date", DAY)

    assert second.exit_code == 4  # ALLINPAY's file is still refused
    assert f"  changes since run {first_run}: 2 installments (changes.csv)" in second.stdout
    assert "    pending -> paid: 1\n" in second.stdout
    assert "    pending -> unpaid (insufficient_balance): 1\n" in second.stdout
    assert read_csv(tmp_path / "out" / DAY / "changes.csv") == [
        {"business_date": DAY, "loan_id": "L0101", "installment_no": "1",
         "old_status": "pending", "old_root_cause": "settlement_pending", "new_status": "paid",
         "new_root_cause": ""},
        {"business_date": DAY, "loan_id": "L0102", "installment_no": "1",
         "old_status": "pending", "old_root_cause": "settlement_pending",
         "new_status": "unpaid", "new_root_cause": "insufficient_balance"},
    ]
    with sqlite3.connect(tmp_path / "recon.db") as connection:
        [counts] = connection.execute(
            "SELECT counts FROM recon_runs WHERE business_date = ? ORDER BY started_at DESC "
            "LIMIT 1", (DAY,)).fetchone()
    assert json.loads(counts)["changes"] == {"pending -> paid": 1,
                                             "pending -> unpaid (insufficient_balance)": 1}
    assert json.loads(counts)["previous_run_id"] == first_run


def test_a_rerun_with_the_same_inputs_says_nothing_changed(tmp_path):
    inbox = inbox_copy(tmp_path)
    cli(tmp_path, inbox, "--date", DAY)
    again = cli(tmp_path, inbox, "--date", DAY)
    assert "  no changes since run " in again.stdout
    assert read_csv(tmp_path / "out" / DAY / "changes.csv") == []


def test_a_refused_rerun_leaves_the_stored_results_to_compare_with(tmp_path):
    inbox = inbox_copy(tmp_path)
    first = cli(tmp_path, inbox, "--date", DAY)
    first_run = first.stdout.split("run ", 1)[1].split()[0]
    installments = (inbox / DAY / "installments.csv").read_bytes()
    (inbox / DAY / "installments.csv").unlink()
    assert cli(tmp_path, inbox, "--date", DAY).exit_code == 3
    (inbox / DAY / "installments.csv").write_bytes(installments)
    add_settlement_file(inbox / DAY, "BAOFU", BAOFU_ROWS)
    third = cli(tmp_path, inbox, "--date", DAY)
    assert f"changes since run {first_run}: 2 installments" in third.stdout


# --- suspected outages ------------------------------------------------------------------------

def drop_unionpay_answers(day_dir, start: str, end: str) -> list[dict]:
    """Drop UNIONPAY's settlement rows for attempts sent in [start, end); return those attempts."""
    instructions = read_csv(day_dir / "instructions.csv")
    lost = [row for row in instructions if row["gateway"] == "UNIONPAY" and row["sent_at"]
            and start <= row["sent_at"][11:] < end]
    lost_ids = {row["instruction_id"] for row in lost}
    path = day_dir / "settlement_UNIONPAY.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [lines[0]] + [line for line in lines[1:] if line.split(",")[1] not in lost_ids]
    assert len(kept) < len(lines)
    path.write_text("".join(kept), encoding="utf-8")
    write_control(day_dir, "UNIONPAY", "iso8583")
    return lost


def test_a_gateway_losing_a_quarter_hour_of_answers_is_a_suspected_outage(tmp_path):
    inbox = inbox_copy(tmp_path)
    lost = drop_unionpay_answers(inbox / DAY, "09:30:00", "09:45:00")
    attempts = [row for row in read_csv(inbox / DAY / "instructions.csv")
                if row["gateway"] == "UNIONPAY" and "09:30:00" <= row["sent_at"][11:] < "09:45:00"]
    result = cli(tmp_path, inbox, "--date", DAY)

    start, end = min(row["sent_at"] for row in lost), max(row["sent_at"] for row in lost)
    [suspected] = read_csv(tmp_path / "out" / DAY / "suspected_incidents.csv")
    assert suspected == {
        "business_date": DAY, "gateway": "UNIONPAY", "window_start": start, "window_end": end,
        "failures": str(len(lost)), "attempts": str(len(attempts)),
        "failure_rate": f"{len(lost) / len(attempts):.1f}", "no_settlement_record": str(len(lost)),
        "outage_code": "0", "known_incident": ""}
    assert (f"  SUSPECTED OUTAGE UNIONPAY {start} .. {end}: {len(lost)} of {len(attempts)} "
            f"attempts failed (100%); if confirmed, add it to gateway_incidents.csv and rerun"
            in result.stdout)


def test_confirming_a_suspected_outage_and_rerunning_reclassifies_its_installments(tmp_path):
    inbox = inbox_copy(tmp_path)
    lost = drop_unionpay_answers(inbox / DAY, "09:30:00", "09:45:00")
    cli(tmp_path, inbox, "--date", DAY)
    [suspected] = read_csv(tmp_path / "out" / DAY / "suspected_incidents.csv")
    (inbox / DAY / "gateway_incidents.csv").write_text(
        "gateway,started_at,ended_at,description\n"
        f"{suspected['gateway']},{suspected['window_start']},{suspected['window_end']},"
        "UNIONPAY lost answers (confirmed by ops)\n", encoding="utf-8")
    rerun = cli(tmp_path, inbox, "--date", DAY)

    assert (f"    unpaid (no_settlement_record) -> unpaid (gateway_outage): {len(lost)}\n"
            in rerun.stdout)
    assert "already in gateway_incidents.csv (UNIONPAY lost answers (confirmed by ops))" \
        in rerun.stdout
    changed = read_csv(tmp_path / "out" / DAY / "changes.csv")
    assert {row["new_root_cause"] for row in changed} == {"gateway_outage"}
    assert len(changed) == len(lost)


def test_an_ordinary_day_has_no_suspected_outage(tmp_path):
    inbox = inbox_copy(tmp_path)
    result = cli(tmp_path, inbox, "--date", DAY)
    assert "SUSPECTED OUTAGE" not in result.stdout
    assert read_csv(tmp_path / "out" / DAY / "suspected_incidents.csv") == []


@pytest.mark.parametrize("name", ["changes.csv", "suspected_incidents.csv"])
def test_new_reports_are_not_world_readable(tmp_path, name):
    inbox = inbox_copy(tmp_path)
    cli(tmp_path, inbox, "--date", DAY)
    assert not os.stat(tmp_path / "out" / DAY / name).st_mode & 0o007
