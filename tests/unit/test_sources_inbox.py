"""recon.sources.inbox, the pure parts: the .ctl format and what counts as a text encoding."""

from __future__ import annotations

import pytest

from recon.sources.inbox import is_text_encoding, parse_control


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
                                             ("rot13", False), ("base64", False),
                                             ("zlib", False), ("klingon", False), ("", False)])
def test_only_codecs_that_turn_bytes_into_text_are_encodings(encoding, known):
    assert is_text_encoding(encoding) is known
