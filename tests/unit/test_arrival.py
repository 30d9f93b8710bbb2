"""recon.arrival: the .ctl format, what counts as a text encoding, the arrival decisions (pure)."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from recon.arrival import (Arrived, NotArrived, count_differs, declared, declared_counts,
                           expected_gateways, is_text_encoding, missing_refusals, pair_missing,
                           parse_control, total_agrees)
from recon.codes import CodeMap


def test_control_file_is_key_value_lines_with_comments_and_blank_lines():
    control = parse_control(
        b"# written last\nGateway=UNIONPAY\n\nbusiness_date = 2026-11-27\n"
        b"scheme=iso8583            # response-code table\nrecords=3\tamount_total=1\n")
    assert control["gateway"] == "UNIONPAY"
    assert control["business_date"] == "2026-11-27"
    assert control["scheme"] == "iso8583"


def test_control_file_may_have_a_bom_and_crlf():
    assert parse_control(b"\xef\xbb\xbfrecords=3\r\n") == {"records": "3"}


@pytest.mark.parametrize("data", [b"records 3\n", b"\xff\xfe\x00r", b"records=3\x00\n"],
                         ids=["no-equals", "not-utf8", "nul"])
def test_control_file_that_is_not_key_value_text_is_an_error(data):
    with pytest.raises(ValueError):
        parse_control(data)


@pytest.mark.parametrize("encoding, known", [("utf-8", True), ("GB18030", True), ("gbk", True),
                                             ("utf-16", True), ("latin-1", True),
                                             ("utf-8-sig", True), ("utf-32", True),
                                             ("rot13", False), ("base64", False),
                                             ("idna", False), ("punycode", False),
                                             ("zlib", False), ("klingon", False), ("", False)])
def test_only_codecs_that_turn_bytes_into_text_are_encodings(encoding, known):
    assert is_text_encoding(encoding) is known


@pytest.mark.parametrize("data", [b"records=3\nrecords=4\n", b"records=3\n RECORDS = 4\n",
                                  b"Amount_Total=1.00\namount_total =2.00 # again\n"],
                         ids=["same-spelling", "odd-case-and-space", "comment"])
def test_control_file_that_gives_a_key_two_values_is_an_error(data):
    with pytest.raises(ValueError, match="twice with different values"):
        parse_control(data)


def test_control_file_may_repeat_a_key_with_the_same_value():
    assert parse_control(b"records=3\n Records = 3 \n") == {"records": "3"}


@pytest.mark.parametrize("records, total", [("3", "1.00"), ("0", "0"), ("48213", "3150432.1")])
def test_control_counts_are_plain_digits(records, total):
    assert declared_counts({"records": records, "amount_total": total}, "x.ctl")[0] == int(records)


@pytest.mark.parametrize("records, total", [
    ("3", "sNaN"), ("3", "NaN"), ("3", "-NaN"), ("3", "Infinity"), ("3", "-inf"), ("3", "1e3"),
    ("3", "1.005"), ("3", "-1.00"), ("3", "+1.00"), ("3", "1_000.00"), ("3", "\u0661.00"),
    ("3", ""), ("1_000", "1.00"), ("\u0663", "1.00"), ("-3", "1.00"), ("3.0", "1.00"), ("", "1.00"),
])
def test_exotic_control_counts_make_the_file_not_arrived(records, total):
    refusal = declared_counts({"records": records, "amount_total": total}, "x.ctl")
    assert isinstance(refusal, NotArrived) and "records= as a whole number" in refusal.reason


CONTROL = {"gateway": "UNIONPAY", "business_date": "2026-11-27", "scheme": "iso8583",
           "records": "2", "amount_total": "12.50"}


def test_a_missing_ctl_or_data_file_means_not_arrived():
    assert pair_missing("s.csv", "s.ctl", True, True) is None
    assert pair_missing("s.csv", "s.ctl", True, False).reason == \
        "not arrived: control file s.ctl is missing"
    assert pair_missing("s.csv", "s.ctl", False, True).reason == \
        "not arrived: s.ctl is there but s.csv is missing"


@pytest.mark.parametrize("change, reason", [
    ({"gateway": "LIANLIAN"}, "names gateway 'LIANLIAN', not 'unionpay'"),
    ({"business_date": "2026-11-26"}, "is for business date '2026-11-26', not 2026-11-27"),
    ({"scheme": "morse"}, "declares unknown scheme 'morse'"),
    ({"encoding": "rot13"}, "declares unknown encoding 'rot13'"),
])
def test_a_ctl_that_does_not_vouch_for_the_file_is_a_refusal_value(change, reason):
    verdict = declared("unionpay", "s.ctl", {**CONTROL, **change}, "2026-11-27", CodeMap())
    assert isinstance(verdict, NotArrived) and reason in verdict.reason


def test_counts_and_total_decide_arrival_without_any_file():
    vouched = declared("unionpay", "s.ctl", CONTROL, "2026-11-27", CodeMap())
    assert count_differs(vouched, "s.csv", 2, "d") is None
    assert count_differs(vouched, "s.csv", 3, "d").reason == \
        "refused: s.csv has 3 data rows, s.ctl declares 2"
    arrived = total_agrees(vouched, "s.csv", {Decimal("12.50")}, "d")
    assert arrived == Arrived("iso8583", "d", "complete: 2 records totalling 12.50, as s.ctl "
                                               "declares")
    assert total_agrees(vouched, "s.csv", {Decimal("10")}, "d").digest == "d"


def test_a_gateway_sent_instructions_owes_a_file():
    instructions = pd.DataFrame({"gateway": ["unionpay", "LIANLIAN", "CNAPS_DD"],
                                 "sent_at": [pd.Timestamp("2026-11-27", tz="UTC"), pd.NaT,
                                             pd.Timestamp("2026-11-27", tz="UTC")]})
    expected = expected_gateways(instructions)
    assert expected == {"UNIONPAY", "CNAPS_DD"}
    refusals = missing_refusals(expected, {"UNIONPAY"}, set(),
                                lambda gateway: (f"settlement_{gateway}.csv", "no settlement file"))
    assert [(r.gateway, r.file) for r in refusals] == [("CNAPS_DD", "settlement_CNAPS_DD.csv")]


def test_a_refusal_masks_the_card_numbers_it_quotes():
    assert NotArrived("refused: s.ctl names gateway '4111111111111111'").reason == \
        "refused: s.ctl names gateway '411111******1111'"
