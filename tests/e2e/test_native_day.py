"""A day whose gateways send their own formats, read through profiles, decides every installment
as the same day in contract CSV does (CONTRACT 2.4.1); a broken or hostile native file is
refused with its reason and the rest of the night still runs."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3

import pytest
from click.testing import CliRunner

from recon.cli import main
from tests.conftest import FIXTURES
from tests.native_days import COMMON, convert_day
from tests.synth import generate_day

DAY = "2026-11-27"
NATIVE = FIXTURES / "native"
PROFILES = NATIVE / "profiles"
OUTCOME_COLUMNS = ("loan_id, installment_no, borrower_id, status, root_cause, amount_due, "
                   "amount_settled, gateway, response_code")


def run_day(inbox, out, db, profiles=None):
    args = ["run", "--date", DAY, "--inbox", str(inbox), "--out", str(out),
            "--db", f"sqlite:///{db}"]
    if profiles:
        args += ["--profiles", str(profiles)]
    return CliRunner().invoke(main, args)


def outcomes(db) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(f"SELECT {OUTCOME_COLUMNS} FROM installment_outcomes "
                                  f"ORDER BY loan_id, installment_no").fetchall()


def settlement_exceptions(db) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT gateway, gateway_txn_id, instruction_id, amount, kind FROM "
            "settlement_exceptions ORDER BY 2, 3, 5").fetchall()


def contract_twin(tmp_path):
    """The shipped native day's contract twin: its common files plus the contract settlements."""
    twin = tmp_path / "contract" / DAY
    twin.mkdir(parents=True)
    for name in COMMON:
        shutil.copyfile(NATIVE / "inbox" / DAY / name, twin / name)
    for path in (NATIVE / "contract-settlements" / DAY).iterdir():
        shutil.copyfile(path, twin / path.name)
    return twin.parent


def test_shipped_native_day_decides_as_its_contract_twin(tmp_path):
    contract = run_day(contract_twin(tmp_path), tmp_path / "out-c", tmp_path / "c.db")
    native = run_day(NATIVE / "inbox", tmp_path / "out-n", tmp_path / "n.db", PROFILES)
    assert contract.exit_code == 0, contract.output
    assert native.exit_code == 0, native.output
    assert outcomes(tmp_path / "n.db") == outcomes(tmp_path / "c.db")
    assert len(outcomes(tmp_path / "n.db")) == 400
    assert settlement_exceptions(tmp_path / "n.db") == settlement_exceptions(tmp_path / "c.db")


@pytest.fixture(scope="module")
def synthetic_day(tmp_path_factory):
    work = tmp_path_factory.mktemp("synth")
    generate_day(dt.date.fromisoformat(DAY), 1500, work / "contract", seed=23)
    run_day(work / "contract", work / "out-c", work / "c.db")
    return work


@pytest.mark.parametrize("camt", [False, True], ids=["pain.002", "camt.054"])
def test_synthetic_day_in_native_formats_decides_as_in_contract_csv(synthetic_day, tmp_path,
                                                                    camt):
    native = tmp_path / "native"
    convert_day(synthetic_day / "contract", dt.date.fromisoformat(DAY), native, camt=camt)
    profiles = tmp_path / "profiles"
    shutil.copytree(PROFILES, profiles)
    if camt:
        (profiles / "cnaps_dd.toml").write_text(
            'gateway = "CNAPS_DD"\nformat = "camt.054"\nfiles = "camt054_{D:%Y%m%d}.xml"\n'
            '[columns]\ngateway_txn_id = "Refs/AcctSvcrRef"\n'
            '[codes]\nscheme = "iso20022"\n[completeness]\nmethod = "message"\n')
    result = run_day(native, tmp_path / "out", tmp_path / "n.db", profiles)
    assert result.exit_code == 0, result.output
    assert outcomes(tmp_path / "n.db") == outcomes(synthetic_day / "c.db")
    assert settlement_exceptions(tmp_path / "n.db") == settlement_exceptions(synthetic_day / "c.db")


def copy_native_day(tmp_path):
    inbox = tmp_path / "inbox"
    shutil.copytree(NATIVE / "inbox", inbox)
    return inbox, inbox / DAY


XXE = (b'<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
       b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt>'
       b'<OrgnlPmtInfAndSts><TxInfAndSts><OrgnlEndToEndId>&x;</OrgnlEndToEndId></TxInfAndSts>'
       b'</OrgnlPmtInfAndSts></CstmrPmtStsRpt></Document>')


@pytest.mark.parametrize("damage, reason", [
    (lambda data: XXE, "DOCTYPE"),
    (lambda data: data[: len(data) // 2], "not well-formed"),
    (lambda data: data.replace(b"<DtldNbOfTxs>", b"<DtldNbOfTxs>1", 1), "NbOfTxsPerSts"),
], ids=["xxe", "truncated", "counts-disagree"])
def test_a_refused_xml_file_leaves_its_gateway_not_arrived_and_the_night_runs(tmp_path, damage,
                                                                             reason):
    inbox, day = copy_native_day(tmp_path)
    xml = day / "pain002_20261127.xml"
    xml.write_bytes(damage(xml.read_bytes()))
    result = run_day(inbox, tmp_path / "out", tmp_path / "n.db", PROFILES)
    assert result.exit_code == 4, result.output
    assert "Traceback" not in result.output
    rejects = (tmp_path / "out" / DAY / "rejects.csv").read_text(encoding="utf-8-sig")
    refusal = [line for line in rejects.splitlines() if "pain002_20261127.xml" in line]
    assert len(refusal) == 1 and reason in refusal[0]
    assert "root:" not in rejects  # nothing of /etc/passwd was read
    with sqlite3.connect(tmp_path / "n.db") as connection:
        pending = connection.execute(
            "SELECT count(*) FROM installment_outcomes WHERE root_cause = 'settlement_pending' "
            "AND gateway <> 'CNAPS_DD'").fetchone()[0]
        paid_elsewhere = connection.execute(
            "SELECT count(*) FROM installment_outcomes WHERE status = 'paid' AND gateway IN "
            "('UNIONPAY', 'LIANLIAN')").fetchone()[0]
    assert pending == 0 and paid_elsewhere > 0


def test_a_summary_line_that_disagrees_refuses_the_file(tmp_path):
    inbox, day = copy_native_day(tmp_path)
    cup = day / "CUP_20261127.dat"
    lines = cup.read_bytes().splitlines(keepends=True)
    cup.write_bytes(b"".join(lines[:5] + lines[6:]))  # one record lost in transfer
    result = run_day(inbox, tmp_path / "out", tmp_path / "n.db", PROFILES)
    assert result.exit_code == 4
    assert "CUP_20261127.dat has" in result.output and "declares" in result.output


def test_gateways_list_shows_each_profile_and_its_format():
    result = CliRunner().invoke(main, ["gateways", "list", "--profiles", str(PROFILES)])
    assert result.exit_code == 0, result.output
    for gateway, file_format in [("UNIONPAY", "fixed_width"), ("LIANLIAN", "delimited"),
                                 ("CNAPS_DD", "pain.002")]:
        assert any(line.startswith(gateway) and file_format in line
                   for line in result.output.splitlines())


def test_gateways_check_prints_records_verdict_and_problems():
    result = CliRunner().invoke(main, ["gateways", "check", "--profile",
                                       str(PROFILES / "lianlian.toml"),
                                       str(NATIVE / "inbox" / DAY / "LL_20261127.txt.gz")])
    assert "LL_20261127.txt.gz!LL_20261127.txt" in result.output
    assert "completeness: complete:" in result.output
    assert result.exit_code in (0, 3), result.output


def test_gateways_check_names_a_profile_mistake_as_a_usage_error(tmp_path):
    profile = tmp_path / "bad.toml"
    profile.write_text('gateway = "X"\nformat = "delimited"\n[layout]\ndelimter = "|"\n'
                       '[completeness]\nmethod = "marker"\n')
    sample = tmp_path / "x.txt"
    sample.write_text("a|b\n")
    result = CliRunner().invoke(main, ["gateways", "check", "--profile", str(profile),
                                       str(sample)])
    assert result.exit_code == 2
    assert "bad.toml" in result.output and "layout.delimter" in result.output


def test_recon_run_with_a_broken_profile_is_a_usage_error_naming_file_and_key(tmp_path):
    profiles = tmp_path / "profiles"
    shutil.copytree(PROFILES, profiles)
    text = (profiles / "lianlian.toml").read_text(encoding="utf-8")
    (profiles / "lianlian.toml").write_text(text.replace('amount_unit = "fen"',
                                                         'amount_unit = "jiao"'),
                                            encoding="utf-8")
    result = run_day(NATIVE / "inbox", tmp_path / "out", tmp_path / "n.db", profiles)
    assert result.exit_code == 2, result.output
    assert "lianlian.toml: key values.amount_unit" in result.output
    assert not (tmp_path / "out").exists()


def test_a_missing_native_file_is_not_arrived_naming_its_pattern(tmp_path):
    inbox, day = copy_native_day(tmp_path)
    (day / "LL_20261127.txt.gz").unlink()
    result = run_day(inbox, tmp_path / "out", tmp_path / "n.db", PROFILES)
    assert result.exit_code == 4
    assert "no file matching 'LL_20261127.txt.gz' (its profile lianlian.toml)" in result.output
