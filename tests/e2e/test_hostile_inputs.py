"""The CLI over broken inbox days: the contract's exit code, one clear message, nothing lost or leaked.

Each case copies a fixture day into tmp_path, breaks one thing, and runs `recon run` in-process
(click's CliRunner; a few cases run the real executable). After a refused day, a good run of the
same date must still give the fixture's expected outcomes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from recon.cli import main
from tests.conftest import FIXTURES

D27, D28 = "2026-11-27", "2026-11-28"
CARD = "6222021234567890128"  # 19 digits, passes Luhn
CARD_ID = "4111111111111111"  # passes Luhn too, but used as a loan id: ids are kept as they are
RECON = Path(sys.executable).with_name("recon")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# --- helpers ------------------------------------------------------------------------------------

class Day:
    """A copy of a fixture day in tmp_path, with the paths a run uses."""

    def __init__(self, tmp_path: Path, day: str) -> None:
        self.day = day
        self.base = tmp_path
        self.inbox = tmp_path / "inbox"
        self.folder = self.inbox / day
        self.out = tmp_path / "out"
        self.db = tmp_path / "r.db"
        shutil.copytree(FIXTURES / "inbox" / day, self.folder)

    def path(self, name: str) -> Path:
        return self.folder / name

    def edit(self, name: str, old: bytes, new: bytes) -> None:
        data = self.path(name).read_bytes()
        assert old in data, (name, old)
        self.path(name).write_bytes(data.replace(old, new, 1))

    def edit_ctl(self, gateway: str, key: str, value: str | None) -> None:
        """Set (or drop, with None) one key of settlement_<gateway>.ctl."""
        path = self.path(f"settlement_{gateway}.ctl")
        lines = [line for line in path.read_text().splitlines()
                 if not line.split("=", 1)[0].strip().lower() == key]
        if value is not None:
            lines.append(f"{key}={value}")
        path.write_text("\n".join(lines) + "\n")

    def reseal(self, gateway: str) -> None:
        """Rewrite settlement_<gateway>.ctl so that it vouches for the .csv as it now is."""
        data = self.path(f"settlement_{gateway}.csv").read_bytes()
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
        total = sum(Decimal(row["amount"]) for row in rows if row["status"] == "SUCCESS")
        self.edit_ctl(gateway, "records", str(len(rows)))
        self.edit_ctl(gateway, "amount_total", f"{total:.2f}")
        self.edit_ctl(gateway, "sha256", hashlib.sha256(data).hexdigest())

    def run(self, *extra: str, env: dict[str, str] | None = None):
        return CliRunner().invoke(main, ["run", "--date", self.day, "--inbox", str(self.inbox),
                                         "--out", str(self.out), "--db", f"sqlite:///{self.db}",
                                         *extra], env=env)

    def query(self, sql: str, *params) -> list[tuple]:
        with sqlite3.connect(self.db) as connection:
            return connection.execute(sql, params).fetchall()

    def outcomes(self) -> dict[tuple[str, int], tuple[str, str]]:
        return {(loan, int(number)): (status, cause or "") for loan, number, status, cause in
                self.query("SELECT loan_id, installment_no, status, root_cause FROM "
                           "installment_outcomes WHERE business_date = ?", self.day)}

    def rejects_csv(self) -> list[dict[str, str]]:
        return read_csv(self.out / self.day / "rejects.csv")

    def last_run(self) -> dict:
        row = self.query("SELECT outcome, exit_code, counts, message FROM recon_runs "
                         "ORDER BY started_at DESC, rowid DESC LIMIT 1")[0]
        return {"outcome": row[0], "exit_code": row[1],
                "counts": json.loads(row[2]) if row[2] else {}, "message": row[3] or ""}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def expected_outcomes(day: str) -> dict[tuple[str, int], tuple[str, str]]:
    return {(row["loan_id"], int(row["installment_no"])): (row["status"], row["root_cause"])
            for row in read_csv(FIXTURES / "expected" / day / "expected_outcomes.csv")}


def expected_exit_code(day: str) -> int:
    return int((FIXTURES / "expected" / day / "expected_exit_code.txt").read_text())


def message_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_refused(result, day: Day, *words: str) -> str:
    """Exit 3, one stderr line naming what is wrong, no traceback, nothing written for D."""
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    lines = message_lines(result)
    assert len(lines) == 1, result.stderr
    message = lines[0]
    for word in words:
        assert word in message, message
    assert " -- " in message, f"no next step in: {message}"  # what to do comes after " -- "
    assert not (day.out / day.day).exists()
    assert day.outcomes() == {}
    run = day.last_run()
    assert (run["outcome"], run["exit_code"]) == ("refused", 3)
    return message


def assert_good_rerun(day: Day) -> None:
    """The original files put back: the same date now gives the fixture's expected results."""
    shutil.rmtree(day.folder)
    shutil.copytree(FIXTURES / "inbox" / day.day, day.folder)
    result = day.run()
    assert result.exit_code == expected_exit_code(day.day), result.output
    assert day.outcomes() == expected_outcomes(day.day)


# --- whole files refused: exit 3 ----------------------------------------------------------------

def break_empty(day: Day) -> None:
    day.path("installments.csv").write_bytes(b"")


def break_binary(day: Day) -> None:
    day.path("bindings.csv").write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 20)


def break_binary_without_nul(day: Day) -> None:
    day.path("bindings.csv").write_bytes(bytes(range(128, 256)) * 40)


def break_truncated(day: Day) -> None:
    path = day.path("instructions.csv")
    path.write_bytes(path.read_bytes() + b'20261128000009990001,L0999,1,UNIONPAY,"10')


def break_semicolons(day: Day) -> None:
    path = day.path("installments.csv")
    path.write_bytes(path.read_bytes().replace(b",", b";"))


def break_missing_column(day: Day) -> None:
    path = day.path("instructions.csv")
    lines = [line.rsplit(b",", 1)[0] for line in path.read_bytes().splitlines()]
    path.write_bytes(b"\n".join(lines) + b"\n")  # sent_at, the last column, is gone


def break_duplicated_column(day: Day) -> None:
    path = day.path("bindings.csv")
    lines = [line + b"," + line.split(b",")[1] for line in path.read_bytes().splitlines()]
    path.write_bytes(b"\n".join(lines) + b"\n")  # loan_id twice


def break_missing_required_file(day: Day) -> None:
    day.path("bindings.csv").unlink()


def break_other_dates_files(day: Day) -> None:
    shutil.rmtree(day.folder)
    shutil.copytree(FIXTURES / "inbox" / D27, day.folder)


def break_undeclared_gb18030(day: Day) -> None:
    text = day.path("settlement_UNIONPAY.csv").read_text(encoding="utf-8")
    data = text.encode("gb18030")
    day.path("settlement_UNIONPAY.csv").write_bytes(data)
    day.edit_ctl("UNIONPAY", "sha256", hashlib.sha256(data).hexdigest())


REFUSED = {
    "empty-file": (break_empty, ["installments.csv", "empty"]),
    "binary-garbage": (break_binary, ["bindings.csv", "binary"]),
    "binary-garbage-without-nul": (break_binary_without_nul, ["bindings.csv", "line 1"]),
    "truncated-last-line": (break_truncated, ["instructions.csv", "line 122", "truncated"]),
    "semicolon-delimiter": (break_semicolons, ["installments.csv", "';'-separated"]),
    "required-column-missing": (break_missing_column,
                                ["instructions.csv", "line 1", "column sent_at", "missing"]),
    "duplicated-column": (break_duplicated_column,
                          ["bindings.csv", "line 1", "column loan_id", "more than once"]),
    "required-file-missing": (break_missing_required_file, ["bindings.csv", "missing"]),
    "gb18030-not-declared": (break_undeclared_gb18030,
                             ["settlement_UNIONPAY.csv", "line 2", "UTF-8", "encoding"]),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_broken_required_input_refuses_the_run_with_one_clear_message(tmp_path, case):
    breaker, words = REFUSED[case]
    day = Day(tmp_path, D28)
    breaker(day)
    assert_refused(day.run(), day, *words)


@pytest.mark.parametrize("case", ["truncated-last-line", "gb18030-not-declared"])
def test_a_good_run_after_a_refused_one_gives_the_right_results(tmp_path, case):
    day = Day(tmp_path, D28)
    REFUSED[case][0](day)
    assert day.run().exit_code == 3
    assert_good_rerun(day)


def test_another_dates_files_are_caught_by_their_control_files_not_by_due_dates(tmp_path):
    # Overdue installments are collectible on D (CONTRACT 2.1), so the day-27 installments alone
    # cannot tell a misfiled folder from a day of retries (a date nothing falls due on, say).
    # The settlement files' .ctl name their business date: none of them has arrived for D.
    day = Day(tmp_path, D28)
    break_other_dates_files(day)
    result = day.run()
    assert result.exit_code == 4, result.output
    rejects = (day.out / D28 / "rejects.csv").read_text(encoding="utf-8")
    assert "is for business date '2026-11-27', not 2026-11-28" in rejects


def test_refused_rerun_keeps_the_previous_results_of_the_date(tmp_path):
    day = Day(tmp_path, D28)
    assert day.run().exit_code == expected_exit_code(D28)
    before = (day.outcomes(), (day.out / D28 / "exceptions.csv").read_bytes())
    break_truncated(day)
    assert day.run().exit_code == 3
    assert (day.outcomes(), (day.out / D28 / "exceptions.csv").read_bytes()) == before


def test_inbox_day_that_does_not_exist_is_refused(tmp_path):
    day = Day(tmp_path, D28)
    shutil.rmtree(day.folder)
    message = assert_refused(day.run(), day, "inbox folder", D28, "does not exist")
    assert "--inbox" in message


def test_required_file_that_is_a_device_is_refused_without_reading_it(tmp_path):
    day = Day(tmp_path, D28)
    day.path("installments.csv").unlink()
    day.path("installments.csv").symlink_to("/dev/zero")  # would never end
    assert_refused(day.run(), day, "installments.csv", "not a regular file")


def test_real_executable_prints_no_traceback_for_a_broken_file(tmp_path):
    day = Day(tmp_path, D28)
    break_binary(day)
    result = subprocess.run([str(RECON), "run", "--date", D28, "--inbox", str(day.inbox),
                             "--out", str(day.out), "--db", f"sqlite:///{day.db}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 3
    assert "Traceback" not in result.stderr + result.stdout
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1


# --- limits -------------------------------------------------------------------------------------

def test_file_over_max_file_bytes_is_refused(tmp_path):
    day = Day(tmp_path, D28)
    size = day.path("installments.csv").stat().st_size
    result = day.run(env={"RECON_MAX_FILE_BYTES": str(size - 1)})
    assert_refused(result, day, "installments.csv", "byte limit", "RECON_MAX_FILE_BYTES")


def test_header_with_more_than_max_columns_is_refused(tmp_path):
    day = Day(tmp_path, D28)
    path = day.path("bindings.csv")
    path.write_bytes(b"," * 100_000 + path.read_bytes())  # a 100,008-column header line
    assert_refused(day.run(), day, "bindings.csv", "line 1", "100,008 columns", "512 allowed")


def test_settlement_file_over_max_file_bytes_has_not_arrived(tmp_path):
    day = Day(tmp_path, D28)
    big = day.path("settlement_UNIONPAY.csv")
    big.write_bytes(big.read_bytes() + b"\n" * 20_000)
    result = day.run(env={"RECON_MAX_FILE_BYTES": "20000"})
    assert result.exit_code == 4, result.output
    assert "NOT ARRIVED settlement_UNIONPAY.csv" in result.stdout
    assert "byte limit" in result.stdout


def test_field_over_max_field_chars_rejects_its_row_only(tmp_path):
    day = Day(tmp_path, D27)
    day.edit("installments.csv", b"L0001,1,B0001", b"L0001,1,B" + b"9" * 300)
    result = day.run(env={"RECON_MAX_FIELD_CHARS": "200"})
    assert result.exit_code == expected_exit_code(D27), result.output
    rejects = [row for row in day.rejects_csv() if row["file"] == "installments.csv"]
    assert {"line": "2", "column": "borrower_id"}.items() <= rejects[0].items()
    assert "over the 200 limit" in rejects[0]["reason"]
    assert ("L0001", 1) not in day.outcomes()


# --- bad rows: rejected with their line, the rest used ------------------------------------------

def test_header_only_file_is_valid_and_has_zero_rows(tmp_path):
    day = Day(tmp_path, D28)
    path = day.path("installments.csv")
    path.write_bytes(path.read_bytes().split(b"\n", 1)[0] + b"\n")
    result = day.run()
    assert result.exit_code == expected_exit_code(D28), result.output
    assert day.outcomes() == {}
    files = {entry["file"]: entry for entry in day.last_run()["counts"]["files"]}
    assert files["installments.csv"]["rows_read"] == 0


def test_invalid_utf8_rejects_its_row_with_line_and_the_rest_is_used(tmp_path):
    day = Day(tmp_path, D27)
    day.edit("installments.csv", b"L0001,1,B0001", b"L0001,1,B\xff\xfe0001")
    result = day.run()
    assert result.exit_code == expected_exit_code(D27), result.output
    rejects = [row for row in day.rejects_csv() if row["file"] == "installments.csv"]
    assert {"line": "2", "column": "borrower_id"}.items() <= rejects[0].items()
    assert "not valid" in rejects[0]["reason"]
    outcomes = day.outcomes()
    assert ("L0001", 1) not in outcomes
    assert len(outcomes) == len(expected_outcomes(D27)) - 1


# --- settlement files that have not arrived: exit 4 --------------------------------------------

def ctl(key: str, value: str | None):
    return lambda day: day.edit_ctl("UNIONPAY", key, value)


NOT_ARRIVED = {
    "ctl-wrong-rows": (ctl("records", "74"), "has 75 data rows"),
    "ctl-wrong-total": (ctl("amount_total", "1.00"), "declares 1.00"),
    "ctl-wrong-digest": (ctl("sha256", "0" * 64), "sha256"),
    "ctl-unknown-scheme": (ctl("scheme", "iso9999"), "unknown scheme 'iso9999'"),
    "ctl-unknown-encoding": (ctl("encoding", "rot13"), "unknown encoding 'rot13'"),
    "ctl-another-date": (ctl("business_date", D27), "business date '2026-11-27'"),
    "ctl-another-gateway": (ctl("gateway", "CNAPS_DD"), "names gateway 'CNAPS_DD'"),
    "ctl-missing": (lambda day: day.path("settlement_UNIONPAY.ctl").unlink(),
                    "settlement_UNIONPAY.ctl is missing"),
    "csv-missing": (lambda day: day.path("settlement_UNIONPAY.csv").unlink(),
                    "settlement_UNIONPAY.csv is missing"),
    "ctl-unreadable": (lambda day: day.path("settlement_UNIONPAY.ctl").write_bytes(b"\x00\xff"),
                       "unreadable"),
    "csv-empty": (lambda day: (day.path("settlement_UNIONPAY.csv").write_bytes(b""),
                               day.edit_ctl("UNIONPAY", "sha256", None)), "empty"),
    "csv-truncated": (lambda day: (day.path("settlement_UNIONPAY.csv").write_bytes(
        day.path("settlement_UNIONPAY.csv").read_bytes()[:-30] + b'"'),
        day.edit_ctl("UNIONPAY", "sha256", None)), "truncated"),
    "two-files-one-gateway": (
        lambda day: shutil.copy(day.path("settlement_UNIONPAY.csv"),
                                day.path("settlement_unionpay.csv")), "same gateway"),
}


def reencode(encoding: str, declared: str):
    """The UNIONPAY file re-encoded (`ascii`: its non-ASCII text dropped), declared as `declared`."""
    def breaker(day: Day) -> None:
        path = day.path("settlement_UNIONPAY.csv")
        path.write_bytes(path.read_text(encoding="utf-8").encode(encoding, errors="ignore"))
        if encoding == "ascii":
            day.reseal("UNIONPAY")
        day.edit_ctl("UNIONPAY", "sha256", hashlib.sha256(path.read_bytes()).hexdigest())
        day.edit_ctl("UNIONPAY", "encoding", declared)
    return breaker


def ctl_lines(*lines: str):
    def breaker(day: Day) -> None:
        path = day.path("settlement_UNIONPAY.ctl")
        path.write_text(path.read_text() + "".join(line + "\n" for line in lines))
    return breaker


for _declared in ("utf-16", "utf-32", "idna", "punycode", "utf-16-be", "cp037"):
    for _encoding in ("utf-8", "gb18030", "ascii"):
        NOT_ARRIVED[f"ctl-encoding-{_declared}-on-{_encoding}"] = (
            reencode(_encoding, _declared), "encoding")
for _name, _value in {"snan": "sNaN", "nan": "NaN", "infinity": "Infinity", "exponent": "1e3",
                      "underscore": "304_278.38", "three-decimals": "304278.380"}.items():
    NOT_ARRIVED[f"ctl-total-{_name}"] = (ctl("amount_total", _value), "amount_total=")
NOT_ARRIVED["ctl-records-not-ascii-digits"] = (ctl("records", "\u0667\u0665"), "records=")
NOT_ARRIVED["ctl-key-repeated-other-value"] = (ctl_lines("records=76"), "twice")
NOT_ARRIVED["ctl-key-repeated-odd-case"] = (ctl_lines(" Amount_Total = 1.00"), "twice")


@pytest.mark.parametrize("case", NOT_ARRIVED, ids=list(NOT_ARRIVED))
def test_settlement_file_the_ctl_does_not_vouch_for_has_not_arrived(tmp_path, case):
    breaker, reason = NOT_ARRIVED[case]
    day = Day(tmp_path, D28)
    breaker(day)
    result = day.run()
    assert result.exit_code == 4, result.output
    assert "Traceback" not in result.output
    summary = [line for line in result.stdout.splitlines()
               if "NOT ARRIVED settlement_UNIONPAY.csv" in line]
    assert len(summary) == 1 and reason in summary[0], result.stdout
    refusals = [row for row in day.rejects_csv() if row["file"] == "settlement_UNIONPAY.csv"]
    assert len(refusals) == 1 and refusals[0]["line"] == "" and reason in refusals[0]["reason"]
    stored = day.query("SELECT reason FROM input_rejects WHERE file = ?",
                       "settlement_UNIONPAY.csv")
    assert len(stored) == 1 and reason in stored[0][0]
    # Nothing of the file is used: every UNIONPAY-decided installment waits for it.
    outcomes = day.outcomes()
    assert outcomes[("L0106", 1)] == ("pending", "settlement_pending")  # was FAILED 62 in the file


@pytest.mark.parametrize("declared", ["utf-8-sig", "UTF8"])
@pytest.mark.parametrize("bom", [True, False], ids=["bom", "no-bom"])
def test_settlement_file_declared_utf8_under_another_name_is_read(tmp_path, declared, bom):
    day = Day(tmp_path, D28)
    path = day.path("settlement_UNIONPAY.csv")
    if bom:
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
        day.edit_ctl("UNIONPAY", "sha256", hashlib.sha256(path.read_bytes()).hexdigest())
    day.edit_ctl("UNIONPAY", "encoding", declared)
    ctl_lines("records=75", "RECORDS = 75")(day)  # a key repeated with its own value is fine
    result = day.run()
    assert result.exit_code == expected_exit_code(D28), result.output
    assert "NOT ARRIVED settlement_UNIONPAY.csv" not in result.stdout
    assert day.outcomes() == expected_outcomes(D28)


def test_good_run_after_a_settlement_file_arrives_gives_the_right_results(tmp_path):
    day = Day(tmp_path, D28)
    day.path("settlement_UNIONPAY.ctl").unlink()
    assert day.run().exit_code == 4
    assert_good_rerun(day)


# --- data protection ----------------------------------------------------------------------------

def plant_card_numbers(day: Day) -> None:
    """Full card numbers in every free-text field, a formula, and a card-shaped loan id."""
    day.edit("settlement_UNIONPAY.csv", "62,受限制的卡".encode(),  # L0106 FAILED 62
             f"62,=HYPERLINK(\"http://x\") card {CARD} 受限制的卡".encode())
    # P1001's SUCCESS row goes: its attempt falls in an incident whose description names a card.
    day.edit("settlement_UNIONPAY.csv",
             "UP20261128001001,20261128100000001001,7769,SUCCESS,00,交易成功,2026-11-28 09:17:47\n"
             .encode(), b"")
    day.reseal("UNIONPAY")
    day.path("gateway_incidents.csv").write_text(
        "gateway,started_at,ended_at,description\n"
        f"UNIONPAY,2026-11-28 09:00:00,2026-11-28 09:30:00,\"@cmd card {CARD} outage\"\n")
    day.edit("bindings.csv", b"BND0106,L0106,tok_bnd0106,622202******0106",
             f"BND0106,L0106,tok_bnd0106,{CARD}".encode())
    day.edit("installments.csv", b"L0108,1,B0108", f"{CARD_ID},1,B0108".encode())
    day.edit("bindings.csv", b"BND0108,L0108,", f"BND0108,{CARD_ID},".encode())
    # A rejected row whose bad cell is a card number in a column that is not an id.
    path = day.path("installments.csv")
    path.write_bytes(path.read_bytes() + f"Q0001,1,B9,2026-11-28,{CARD},CNY\n".encode())


def test_full_card_numbers_appear_in_no_output_and_ids_stay_intact(tmp_path):
    day = Day(tmp_path, D28)
    plant_card_numbers(day)
    result = day.run("-v", "--max-reject-rate", "0.05")
    assert result.exit_code == 4, result.output
    exceptions = read_csv(day.out / D28 / "exceptions.csv")
    l0106 = next(row for row in exceptions if row["loan_id"] == "L0106")
    assert l0106["response_msg"].startswith("'=HYPERLINK")
    assert "622202*********0128" in l0106["response_msg"]
    assert l0106["card_no_masked"] == "622202*********0128"
    assert any(row["loan_id"] == CARD_ID for row in exceptions)  # an id is not masked
    p1001 = next(row for row in exceptions if row["loan_id"] == "P1001")
    assert p1001["root_cause"] == "gateway_outage" and "622202*********0128" in p1001["evidence"]
    assert (CARD_ID, 1) in day.outcomes()
    rejected = next(row for row in day.rejects_csv() if row["value"].startswith("622202"))
    assert rejected["column"] == "amount_due" and rejected["value"] == "622202*********0128"

    everything = [result.stdout, result.stderr]
    for name in ("exceptions.csv", "settlement_exceptions.csv", "rejects.csv"):
        everything.append((day.out / D28 / name).read_text(encoding="utf-8-sig"))
    for table in ("recon_runs", "installment_outcomes", "settlement_exceptions", "input_rejects"):
        everything.append(repr(day.query(f"SELECT * FROM {table}")))
    assert CARD not in "\n".join(everything)


def test_no_csv_cell_starts_a_formula_unless_it_is_a_number(tmp_path):
    day = Day(tmp_path, D28)
    plant_card_numbers(day)
    day.edit("installments.csv", b"L0101,1,B0101", b"L0101,1,=1+1")
    day.run("--max-reject-rate", "0.05")
    for name in ("exceptions.csv", "settlement_exceptions.csv", "rejects.csv"):
        with open(day.out / D28 / name, encoding="utf-8-sig", newline="") as handle:
            for row in csv.reader(handle):
                for cell in row:
                    if cell.startswith(FORMULA_START):
                        float(cell)  # raises unless a plain number such as -12.50


def test_outputs_have_no_world_permissions(tmp_path):
    day = Day(tmp_path, D28)
    result = subprocess.run([str(RECON), "run", "--date", D28, "--inbox", str(day.inbox),
                             "--out", str(day.out), "--db", f"sqlite:///{day.db}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == expected_exit_code(D28), result.stderr
    produced = [day.out, *day.out.rglob("*"), *day.base.glob("r.db*")]
    assert len(produced) > 4
    for path in produced:
        assert not os.stat(path).st_mode & stat.S_IRWXO, oct(os.stat(path).st_mode) + str(path)


def test_database_password_is_never_printed(tmp_path):
    day = Day(tmp_path, D28)
    url = "postgresql://recon:s3cr3t-pw@127.0.0.1:9/recon"
    result = CliRunner().invoke(main, ["run", "--date", D28, "--inbox", str(day.inbox), "--out",
                                       str(day.out), "--db", url, "-v"])
    assert result.exit_code == 5, result.output
    assert "s3cr3t-pw" not in result.output
    assert "recon:***@127.0.0.1" in result.output


# --- the run ledger ---------------------------------------------------------------------------

def test_every_refusal_and_rejected_row_is_in_rejects_csv_and_input_rejects(tmp_path):
    day = Day(tmp_path, D27)
    day.edit("instructions.csv", b"\n", b"\nnot,enough,fields\n")
    result = day.run()
    assert result.exit_code == 4, result.output
    in_csv = sorted((row["file"], row["line"], row["column"], row["reason"])
                    for row in day.rejects_csv())
    in_db = sorted((file, "" if line is None else str(line), column or "", reason) for
                   file, line, column, reason in
                   day.query("SELECT file, line, column_name, reason FROM input_rejects"))
    assert in_csv == in_db
    assert ("instructions.csv", "2", "", "expected 10 fields as in the header, found 3") in in_csv
    assert any(row[0] == "settlement_BAOFU.csv" and row[1] == "" for row in in_csv)


def test_recon_runs_counts_add_up_per_file_and_list_refused_files(tmp_path):
    day = Day(tmp_path, D27)
    day.edit("instructions.csv", b"\n", b"\nnot,enough,fields\n")
    day.run()
    counts = day.last_run()["counts"]
    files = {entry["file"]: entry for entry in counts["files"]}
    assert {"installments.csv", "bindings.csv", "instructions.csv", "gateway_incidents.csv",
            "settlement_UNIONPAY.csv", "settlement_CNAPS_DD.csv",
            "settlement_BAOFU.csv"} <= set(files)
    for entry in files.values():
        assert entry["rows_read"] == (entry["rows_used"] + entry["duplicates_collapsed"]
                                      + entry["rows_rejected"]), entry
    assert (files["installments.csv"]["rows_read"], files["installments.csv"]["rows_used"],
            files["installments.csv"]["duplicates_collapsed"],
            files["installments.csv"]["rows_rejected"]) == (705, 698, 1, 6)
    assert files["instructions.csv"]["rows_rejected"] == 2
    assert "ctl" in files["settlement_BAOFU.csv"]["refused"]
    assert counts["rows_rejected"] == sum(entry["rows_rejected"] for entry in files.values())
    assert counts["rows_rejected"] == len([row for row in day.rejects_csv() if row["line"]])


def test_ledger_of_a_settlement_file_with_bad_rows_adds_up(tmp_path):
    day = Day(tmp_path, D28)
    day.edit("settlement_UNIONPAY.csv", b"\n", b"\nX1,I1,1.00,SUCCESS,00,ok\n")  # 6 of 7 fields
    data = day.path("settlement_UNIONPAY.csv").read_bytes()
    day.edit_ctl("UNIONPAY", "records", "76")  # the sender counts every record, broken or not
    day.edit_ctl("UNIONPAY", "sha256", hashlib.sha256(data).hexdigest())
    result = day.run("--max-reject-rate", "0.05")
    assert result.exit_code == 4, result.output
    files = {entry["file"]: entry for entry in day.last_run()["counts"]["files"]}
    unionpay = files["settlement_UNIONPAY.csv"]
    assert (unionpay["rows_read"], unionpay["rows_used"], unionpay["rows_rejected"]) == (76, 75, 1)
    assert day.outcomes() == expected_outcomes(D28)


def test_output_of_a_refused_file_names_only_the_file_not_its_contents(tmp_path):
    day = Day(tmp_path, D28)
    day.path("installments.csv").write_bytes(f"{CARD};x\n1;2\n".encode())
    result = day.run()
    assert result.exit_code == 3
    assert CARD not in result.output and CARD not in day.last_run()["message"]


# --- money that vanishes ----------------------------------------------------------------------

def test_success_debit_for_an_installment_not_of_the_day_is_a_settlement_exception(tmp_path):
    day = Day(tmp_path, D28)
    path = day.path("instructions.csv")
    path.write_bytes(path.read_bytes() + b"20261128000099990001,L9999,2,UNIONPAY,777.01,"
                     b"2026-11-28 06:00:00,false,NOT_REQUIRED,2026-11-28 08:00:00\n")
    path = day.path("settlement_UNIONPAY.csv")
    path.write_bytes(path.read_bytes() + "UPD9999,20261128000099990001,777.01,SUCCESS,00,交易成功,"
                     "2026-11-28 08:00:30\n".encode())
    day.reseal("UNIONPAY")
    result = day.run()
    assert result.exit_code == expected_exit_code(D28), result.output
    assert "debit_without_installment 1" in result.stdout
    rows = [row for row in read_csv(day.out / D28 / "settlement_exceptions.csv")
            if row["gateway_txn_id"] == "UPD9999"]
    assert len(rows) == 1 and rows[0]["kind"] == "debit_without_installment"
    assert rows[0]["amount"] == "777.01" and rows[0]["instruction_id"] == "20261128000099990001"
    assert "L9999/2" in rows[0]["detail"] and "settlement_UNIONPAY.csv line 77" in rows[0]["detail"]
    stored = day.query("SELECT amount, kind FROM settlement_exceptions WHERE gateway_txn_id = ?",
                       "UPD9999")
    assert [(str(amount), kind) for amount, kind in stored] == [("777.01",
                                                                 "debit_without_installment")]
    assert day.outcomes() == expected_outcomes(D28)


# --- values -----------------------------------------------------------------------------------

VALUES = {
    "seconds-61": ("settlement_UNIONPAY.csv", "2026-11-28 09:04:30", "2026-11-28 10:29:61",
                   "txn_time", "txn_time must be a timestamp"),
    "seconds-60-iso": ("settlement_UNIONPAY.csv", "2026-11-28 09:04:30", "2026-11-28T10:29:60",
                       "txn_time", "txn_time must be a timestamp"),
    "minutes-60": ("settlement_UNIONPAY.csv", "2026-11-28 09:04:30", "2026-11-28 10:60:00",
                   "txn_time", "txn_time must be a timestamp"),
    "hours-24": ("settlement_UNIONPAY.csv", "2026-11-28 09:04:30", "2026-11-28 24:00:00",
                 "txn_time", "txn_time must be a timestamp"),
    "amount-too-large": ("installments.csv", "L0104,1,B0104,2026-11-28,1040.00",
                         "L0104,1,B0104,2026-11-28,1000000000000.00", "amount_due",
                         "too large: NUMERIC(14,2) holds at most 999999999999.99"),
}


@pytest.mark.parametrize("case", VALUES, ids=list(VALUES))
def test_value_out_of_range_rejects_its_row_with_file_line_column_and_reason(tmp_path, case):
    name, old, new, column, reason = VALUES[case]
    day = Day(tmp_path, D28)
    day.edit(name, old.encode(), new.encode())
    if name.startswith("settlement_"):
        day.edit_ctl("UNIONPAY", "sha256", hashlib.sha256(day.path(name).read_bytes()).hexdigest())
    result = day.run("--max-reject-rate", "0.05")
    assert result.exit_code == expected_exit_code(D28), result.output
    assert "Traceback" not in result.output
    rejected = [row for row in day.rejects_csv() if row["file"] == name and row["line"]
                and row["column"] == column]
    assert len(rejected) == 1, day.rejects_csv()
    assert rejected[0]["value"] == new.split(",")[-1] and reason in rejected[0]["reason"]
    assert rejected[0]["line"] == ("3" if name.startswith("settlement_") else "5")
    assert "decimals" not in rejected[0]["reason"]


# --- card numbers, whatever surrounds them ------------------------------------------------------

PLAIN_CARD = "6258070000111129"  # passes Luhn
CARD_PLANTS = {
    # (file, bytes replaced, replacement with {card}, rejected row expected)
    "msg-space-digits-after": ("settlement_UNIONPAY.csv", "62,受限制的卡", "62,卡{card} 50元余额不足"),
    "msg-chinese-around": ("settlement_UNIONPAY.csv", "62,受限制的卡", "62,卡{card}余额不足"),
    "msg-dashes": ("settlement_UNIONPAY.csv", "62,受限制的卡", "62,卡 {dashed}-01 受限"),
    "msg-digits-before": ("settlement_UNIONPAY.csv", "62,受限制的卡", "62,扣款 1060 {card}"),
    "in-response-code": ("settlement_UNIONPAY.csv", "62,受限制的卡", "{card},受限制的卡"),
    "in-response-code-with-digits": ("settlement_UNIONPAY.csv", "62,受限制的卡",
                                     "{card} 62,受限制的卡"),
    "in-rejects-value": ("installments.csv", "L0104,1,B0104,2026-11-28,1040.00",
                         "L0104,1,B0104,2026-11-28,{card} 50"),
    "in-broken-record": ("installments.csv", "L0104,1,B0104,2026-11-28,1040.00,CNY",
                         "L0104,1,B0104,2026-11-28,1040.00,CNY,卡{card} 7"),
    "in-bank-code": ("bindings.csv", "BND0106,L0106,tok_bnd0106,622202******0106,",
                     "BND0106,L0106,tok_bnd0106,622202******0106,{card} 1"),
}


@pytest.mark.parametrize("case", CARD_PLANTS, ids=list(CARD_PLANTS))
def test_card_number_is_masked_in_every_output_whatever_surrounds_it(tmp_path, case):
    name, old, new = CARD_PLANTS[case]
    day = Day(tmp_path, D28)
    dashed = "-".join(PLAIN_CARD[i:i + 4] for i in range(0, 16, 4))
    day.edit(name, old.encode(), new.format(card=PLAIN_CARD, dashed=dashed).encode())
    if name.startswith("settlement_"):
        day.edit_ctl("UNIONPAY", "sha256", hashlib.sha256(day.path(name).read_bytes()).hexdigest())
    result = day.run("-v", "--max-reject-rate", "0.05")
    assert result.exit_code == expected_exit_code(D28), result.output
    everything = [result.stdout, result.stderr]
    for output in sorted((day.out / D28).iterdir()):
        everything.append(output.read_text(encoding="utf-8-sig"))
    for table in ("recon_runs", "installment_outcomes", "settlement_exceptions", "input_rejects",
                  "retry_plan", "borrower_notices", "watchlist"):
        everything.append(repr(day.query(f"SELECT * FROM {table}")))
    joined = "\n".join(everything)
    if case != "in-bank-code":  # bank_code is in no output: only that it does not leak counts
        assert "625807******1129" in joined or "6258-07**-****-1129" in joined, case
    for leaked in (PLAIN_CARD, dashed, PLAIN_CARD[:12], PLAIN_CARD[4:]):
        assert leaked not in joined, (case, leaked)
    assert (CARD_ID, 1) not in day.outcomes()  # sanity: the planted day is the fixture day


# --- over-long values -----------------------------------------------------------------------------

def add_column(day: Day, name: str, header: str, value_of_row) -> None:
    """Append a column to every line of `name`; value_of_row(line number) gives the value."""
    lines = day.path(name).read_bytes().splitlines()
    out = [lines[0] + b"," + header.encode()]
    out += [line + b"," + value_of_row(number).encode() for number, line in
            enumerate(lines[1:], start=2)]
    day.path(name).write_bytes(b"\n".join(out) + b"\n")


@pytest.mark.parametrize("name", ["installments.csv", "instructions.csv",
                                  "settlement_UNIONPAY.csv"])
def test_an_over_long_value_in_an_ignored_column_rejects_nothing(tmp_path, name):
    day = Day(tmp_path, D28)
    add_column(day, name, "remark", lambda number: "备" * 70_000 if number == 3 else "ok")
    if name.startswith("settlement_"):
        day.edit_ctl("UNIONPAY", "sha256", hashlib.sha256(day.path(name).read_bytes()).hexdigest())
    result = day.run()
    assert result.exit_code == expected_exit_code(D28), result.output
    expected = read_csv(FIXTURES / "expected" / D28 / "expected_rejects.csv")
    assert [(row["line"], row["column"]) for row in day.rejects_csv() if row["file"] == name] == \
        [(row["line"], row["column"]) for row in expected if row["file"] == name]  # the fixture's
    assert day.outcomes() == expected_outcomes(D28)


def test_an_over_long_response_msg_on_a_success_row_is_cut_and_the_debit_counted(tmp_path):
    day = Day(tmp_path, D28)
    long = "交易成功" * 17_500 + PLAIN_CARD  # 70,016 characters, a card number past the cut
    day.edit("settlement_UNIONPAY.csv", "UPD0104,20261128000001040002,1040.00,SUCCESS,00,交易成功"
             .encode(), f"UPD0104,20261128000001040002,1040.00,SUCCESS,00,{long}".encode())
    day.edit_ctl("UNIONPAY", "sha256",
                 hashlib.sha256(day.path("settlement_UNIONPAY.csv").read_bytes()).hexdigest())
    result = day.run(env={"RECON_MAX_FIELD_CHARS": "65536"})
    assert result.exit_code == expected_exit_code(D28), result.output
    assert day.outcomes() == expected_outcomes(D28)  # L0104 stays paid
    assert not [row for row in day.rejects_csv() if row["file"] == "settlement_UNIONPAY.csv"
                and row["line"]]
    assert "over-long text fields cut to RECON_MAX_FIELD_CHARS 1" in result.stdout
    warning = [line for line in result.stderr.splitlines() if "over-long" in line]
    assert len(warning) == 1 and "settlement_UNIONPAY.csv, line 3, column response_msg" in \
        warning[0] and "70,016 characters" in warning[0], result.stderr
    files = {entry["file"]: entry for entry in day.last_run()["counts"]["files"]}
    assert files["settlement_UNIONPAY.csv"]["fields_cut"] == 1
    assert PLAIN_CARD not in result.output


def test_an_over_long_amount_still_rejects_its_row(tmp_path):
    day = Day(tmp_path, D27)
    day.edit("installments.csv", b"L0001,1,B0001,2026-11-27,", b"L0001,1,B0001,2026-11-27,"
             + b"1" * 300)
    result = day.run(env={"RECON_MAX_FIELD_CHARS": "200"})
    assert result.exit_code == expected_exit_code(D27), result.output
    rejected = [row for row in day.rejects_csv() if row["file"] == "installments.csv"
                and row["line"] == "2"]
    assert rejected and "over the 200 limit" in rejected[0]["reason"]
