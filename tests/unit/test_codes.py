"""CONTRACT section 5: every response code of both default schemes, and the operator override."""

from __future__ import annotations

import pytest

from recon.codes import CodeMap, read_overrides
from recon.errors import UsageError
from tests.unit.test_classify import Day

# The tables of CONTRACT section 5, copied here by hand so that a slip in recon/codes.py shows.
CONTRACT_TABLES = {
    "iso8583": """
        51 insufficient_balance
        62 account_frozen
        14 account_closed
        04 33 41 43 54 card_unbound
        55 38 75 instruction_not_confirmed
        68 90 91 92 96 98 gateway_outage
        03 05 12 13 15 30 34 57 59 61 65 94 other_decline
    """,
    "iso20022": """
        AM04 insufficient_balance
        AC06 account_frozen
        AC04 account_closed
        AC01 MD01 MD02 card_unbound
        AB05 AB06 AB07 AB08 AB09 AB10 ED05 gateway_outage
        AG01 AG02 AM02 AM05 MD06 MD07 MS02 MS03 RR01 RR02 RR03 RR04 SL01 TM01 other_decline
    """,
}
CASES = [
    (scheme, code, line.split()[-1])
    for scheme, table in CONTRACT_TABLES.items()
    for line in table.strip().splitlines()
    for code in line.split()[:-1]
]
GATEWAY_OF = {"iso8583": "UNIONPAY", "iso20022": "CNAPS_DD"}


@pytest.fixture(scope="module")
def decided_codes():
    """One day with one failed installment per (scheme, code), classified once."""
    day = Day()
    for number, (scheme, code, _) in enumerate(CASES):
        loan = f"L{number:03d}"
        gateway = GATEWAY_OF[scheme]
        day.installment(loan).binding(loan).instruction(f"I{number:03d}", loan=loan,
                                                        gateway=gateway)
        day.settlement(f"I{number:03d}", status="FAILED", code=code, gateway=gateway)
    outcomes = day.decide().outcomes
    return dict(zip(outcomes["loan_id"], outcomes["root_cause"]))


@pytest.mark.parametrize("scheme, code, cause", CASES,
                         ids=[f"{scheme}-{code}-{cause}" for scheme, code, cause in CASES])
def test_default_code_maps_to_contract_cause(decided_codes, scheme, code, cause):
    loan = f"L{CASES.index((scheme, code, cause)):03d}"
    assert decided_codes[loan] == cause
    assert CodeMap().cause_of(scheme, f" {code.lower()} ") == cause


def test_codes_are_kept_as_strings_05_is_not_5():
    assert CodeMap().cause_of("iso8583", "05") == "other_decline"
    assert CodeMap().cause_of("iso8583", "5") == "unclassified"


def test_unknown_code_is_unclassified():
    assert CodeMap().cause_of("iso20022", "ZZ99") == "unclassified"


def test_override_adds_and_replaces_codes_and_schemes(tmp_path):
    path = tmp_path / "codes.csv"
    path.write_text("scheme,response_code,root_cause\n"
                    "iso8583, N7 ,insufficient_balance\n"
                    "ISO20022,AM04,other_decline\n"
                    "acme,X1,gateway_outage\n", encoding="utf-8")
    codes = CodeMap.from_file(path)
    assert codes.cause_of("iso8583", "n7") == "insufficient_balance"
    assert codes.cause_of("iso20022", "AM04") == "other_decline"
    assert codes.knows_scheme("ACME")
    assert codes.cause_of("iso8583", "51") == "insufficient_balance"


def test_override_is_used_by_the_decision(tmp_path):
    path = tmp_path / "codes.csv"
    path.write_text("scheme,response_code,root_cause\niso8583,N7,account_frozen\n")
    day = Day().installment().binding().instruction("I1").settlement("I1", status="FAILED",
                                                                       code="N7")
    assert day.outcome(codes=CodeMap.from_file(path)) == ("unpaid", "account_frozen")


@pytest.mark.parametrize("content, fragment", [
    ("scheme,code,root_cause\n", "missing column(s) response_code"),
    ("scheme,response_code,root_cause\niso8583,51,broke\n", "line 2, column root_cause"),
    ("scheme,response_code,root_cause\niso8583,,card_unbound\n", "line 2"),
], ids=["missing-column", "unknown-cause", "empty-code"])
def test_bad_override_file_is_a_usage_error_naming_the_line(tmp_path, content, fragment):
    path = tmp_path / "codes.csv"
    path.write_text(content)
    with pytest.raises(UsageError) as error:
        read_overrides(path)
    assert fragment in str(error.value)
    assert error.value.exit_code == 2
