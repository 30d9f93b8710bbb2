"""recon.sources.inbox, the pure parts: the .ctl format and what counts as a text encoding."""

from __future__ import annotations

import pytest

from recon.sources.inbox import _declared_counts, _NotArrived, is_text_encoding, parse_control


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
    assert _declared_counts({"records": records, "amount_total": total}, "x.ctl")[0] == int(records)


@pytest.mark.parametrize("records, total", [
    ("3", "sNaN"), ("3", "NaN"), ("3", "-NaN"), ("3", "Infinity"), ("3", "-inf"), ("3", "1e3"),
    ("3", "1.005"), ("3", "-1.00"), ("3", "+1.00"), ("3", "1_000.00"), ("3", "\u0661.00"),
    ("3", ""), ("1_000", "1.00"), ("\u0663", "1.00"), ("-3", "1.00"), ("3.0", "1.00"), ("", "1.00"),
])
def test_exotic_control_counts_make_the_file_not_arrived(records, total):
    with pytest.raises(_NotArrived, match="records= as a whole number"):
        _declared_counts({"records": records, "amount_total": total}, "x.ctl")
