"""recon.sources.csvfile: bytes -> records with their lines, or a refusal that names file and line.

CONTRACT section 2: CSV with a header row, RFC 4180 quoting, UTF-8 with or without BOM unless a
control file declares another encoding, LF or CRLF. Every case here runs on bytes in memory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from recon.errors import InputRefused
from recon.sources.csvfile import read_csv
from recon.sources.filebytes import read_bytes

LIMITS = {"max_bytes": 1 << 20, "max_field_chars": 100, "max_columns": 10,
          "block_bytes": 16 << 20}


def read(data: bytes, **overrides):
    options = {**LIMITS, **overrides}
    return read_csv(Path("f.csv"), "f.csv", data=data, **options)


def refusal(data: bytes, **overrides) -> InputRefused:
    with pytest.raises(InputRefused) as caught:
        read(data, **overrides)
    return caught.value


def rows(table) -> list[list[str]]:
    return table.frame.values.tolist()


def broken(table) -> list[tuple[int, str, str]]:
    return [(int(line), column, reason) for line, column, reason in
            table.broken[["line", "column", "reason"]].itertuples(index=False)]


# --- whole-file refusals ----------------------------------------------------------------------

@pytest.mark.parametrize("data", [b"", b"\n", b"  \r\n\r\n"], ids=["zero-bytes", "lf", "blanks"])
def test_empty_file_is_refused_naming_the_file(data):
    error = refusal(data)
    assert error.file == "f.csv"
    assert "empty" in error.message and error.next_step


def test_header_only_is_a_file_with_zero_rows():
    table = read(b"a,b\n")
    assert table.records == 0 and rows(table) == [] and list(table.frame.columns) == ["a", "b"]


def test_header_only_without_line_end_is_a_file_with_zero_rows():
    assert read(b"a,b").records == 0


@pytest.mark.parametrize("data", [b"PK\x03\x04\x00\x00binary", b"a,b\n1,\x00\x00\x00\n"],
                         ids=["zip", "nul-in-first-64k"])
def test_binary_file_is_refused(data):
    assert "binary" in refusal(data).message


def test_binary_garbage_without_nul_bytes_is_refused_at_its_header():
    error = refusal(bytes(range(128, 256)) * 40)
    assert error.line == 1 and "not text" in error.message


def test_utf16_file_is_refused_as_not_utf8():
    error = refusal("a,b\n1,2\n".encode("utf-16"))
    assert "UTF-16" in error.message


def test_header_with_more_columns_than_allowed_is_refused():
    error = refusal(b"," * 1_000_000 + b"\n1\n", max_columns=512)
    assert error.line == 1 and "1,000,001 columns" in error.message


def test_header_line_over_one_megabyte_is_refused_without_splitting_it():
    error = refusal(b"x" * 1_000_001)
    assert error.line == 1 and "header line" in error.message


def test_header_without_names_is_refused():
    assert "no column names" in refusal(b",,,\n1,2,3,4\n").message


def test_file_over_the_byte_limit_is_refused():
    error = refusal(b"a,b\n1,2\n", max_bytes=5)
    assert "5-byte limit" in error.message and "RECON_MAX_FILE_BYTES" in error.next_step


def test_read_bytes_reads_no_more_than_the_limit(tmp_path):
    path = tmp_path / "big.csv"
    path.write_bytes(b"a" * 1000)
    with pytest.raises(InputRefused, match="1,000-byte limit|999-byte limit"):
        read_bytes(path, "big.csv", 999)
    assert read_bytes(path, "big.csv", 1000) == b"a" * 1000


def test_unreadable_file_is_refused_naming_it(tmp_path):
    with pytest.raises(InputRefused) as caught:
        read_bytes(tmp_path / "absent.csv", "absent.csv", 100)
    assert caught.value.file == "absent.csv"


# --- truncated files --------------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    b'a,b\n1,2\n3,"unterminated',
    b'a,b\n1,2\n3,"unterminated\n',
    b'a,b\n1,"x"\n3,"swallows\n5,6\n7,8\n',
], ids=["no-line-end", "line-end", "swallows-following-lines"])
def test_quote_left_open_at_end_of_file_refuses_the_file_as_truncated(data):
    error = refusal(data)
    assert "truncated" in error.message and error.line == 3 and "resend" in error.next_step


def test_last_record_short_of_fields_without_line_end_refuses_the_file_as_truncated():
    error = refusal(b"a,b,c\n1,2,3\n4,5")
    assert "truncated" in error.message and error.line == 3


def test_short_record_that_ends_its_line_is_only_a_rejected_row():
    table = read(b"a,b,c\n1,2\n4,5,6\n")
    assert rows(table) == [["4", "5", "6"]]
    assert broken(table) == [(2, "", "expected 3 fields as in the header, found 2")]


def test_last_record_without_line_end_is_kept_when_whole():
    assert rows(read(b"a,b\n1,2\n3,4")) == [["1", "2"], ["3", "4"]]


# --- rows that cannot be used, each rejected with its line --------------------------------------

def test_invalid_utf8_rejects_only_its_row_with_line_and_column():
    table = read(b"a,b\n1,ok\n2,bad\xff\xfe\n3,ok\n")
    assert rows(table) == [["1", "ok"], ["3", "ok"]]
    assert table.lines.tolist() == [2, 4]
    assert broken(table) == [(3, "b", "bytes are not valid in the file's encoding")]
    assert table.records == 3


def test_nul_byte_after_the_first_64k_rejects_only_its_row():
    filler = b"".join(b"%d,x\n" % n for n in range(20000))
    table = read(b"a,b\n" + filler + b"9,bad\x00\n", max_bytes=1 << 22)
    assert table.records == 20001 and len(table.frame) == 20000
    assert broken(table)[0][0] == 20002 and "NUL" in broken(table)[0][2]


def test_field_over_the_limit_rejects_its_row():
    table = read(b"a,b\n1," + b"x" * 101 + b"\n2,y\n")
    assert rows(table) == [["2", "y"]]
    assert broken(table) == [(2, "b", "field is 101 characters long, over the 100 limit")]


def test_record_with_a_million_fields_is_rejected_not_refused():
    table = read(b"a,b\n" + b"," * 1_000_000 + b"\n1,2\n", max_bytes=1 << 21)
    assert rows(table) == [["1", "2"]] and broken(table)[0][0] == 2


def test_broken_record_spanning_lines_says_so():
    table = read(b'a,b\n1,"x\n2,y\n3",z,w\n4,w\n', max_field_chars=1000)
    assert rows(table) == [["4", "w"]]
    line, _, reason = broken(table)[0]
    assert line == 2 and "spans lines 2-4" in reason


# --- what is accepted ---------------------------------------------------------------------------

def test_header_names_are_trimmed_lower_cased_and_bom_stripped():
    table = read(b"\xef\xbb\xbf Loan_ID ,AMOUNT\n1,2\n")
    assert list(table.frame.columns) == ["loan_id", "amount"]


def test_values_are_trimmed_and_kept_as_strings():
    assert rows(read(b"a,b\n 007 , 05 \n")) == [["007", "05"]]


@pytest.mark.parametrize("data, lines", [
    (b"a,b\r\n1,2\r\n3,4\r\n", [2, 3]),
    (b"a,b\n1,2\n\n3,4\n", [2, 4]),
    (b'a,b\n1,"two\nlines"\n3,4\n', [2, 4]),
    (b'a,b\n1,"two\r\nlines"\r\n3,4', [2, 4]),
], ids=["crlf", "blank-line", "quoted-newline", "quoted-crlf"])
def test_every_row_keeps_the_physical_line_it_starts_on(data, lines):
    assert read(data).lines.tolist() == lines


@pytest.mark.parametrize("data, lines", [
    (b'a,b\n1,"x\ny"\n2,"say ""hi""\n"\n\n3,4', [2, 4, 7]),
    (b'a,b\r\n1,"x\r\ny"\r\n\r\n2,""\r\n', [2, 5]),
    (b'"a","b"\n"1","x\n"\n', [2]),
    (b'a,b\n"a""b",x\nx"y,""\n"p\nq","a""b"\n"p\nq",x"y\n"r,s",x\n', [2, 3, 4, 6, 8]),
], ids=["doubled-quotes-and-blank-line", "crlf-and-empty-quoted", "every-field-quoted",
        "quotes-inside-an-unquoted-field"])
def test_records_spanning_lines_keep_the_line_they_start_on(data, lines):
    # Counted from the bytes where quotes open fields, by the csv module where one does not
    # (`x"y` is read as it stands): both must give the csv module's line numbers.
    assert read(data).lines.tolist() == lines


def test_quoted_commas_quotes_and_chinese_survive():
    table = read('a,b\n1,"余额不足, 请""充值"""\n'.encode())
    assert rows(table) == [["1", '余额不足, 请"充值"']]


def test_fast_and_slow_readers_agree_on_the_same_rows():
    clean = b'a,b\n1,"x, y"\n2,z\n\n3,"q ""r"""\n'
    slow = clean + b"4,bad\xff\n"  # one bad row sends the whole file to the csv-module reader
    fast_table, slow_table = read(clean), read(slow)
    assert rows(slow_table) == rows(fast_table)
    assert slow_table.lines.tolist() == fast_table.lines.tolist()


# --- declared encodings -------------------------------------------------------------------------

def test_declared_gb18030_is_transcoded():
    table = read("a,b\n1,余额不足\n".encode("gb18030"), encoding="gb18030")
    assert rows(table) == [["1", "余额不足"]]


def test_bytes_invalid_in_the_declared_encoding_reject_their_row():
    data = "a,b\n1,余额\n".encode("gb18030") + b"2,\xff\n"
    table = read(data, encoding="gb18030")
    assert rows(table) == [["1", "余额"]] and broken(table)[0][:2] == (3, "b")


def test_utf8_bytes_declared_as_gb18030_are_refused_not_turned_into_mojibake():
    error = refusal("a,b\n1,余额不足\n".encode("utf-8"), encoding="gb18030")
    assert "UTF-8" in error.message and "encoding=" in error.next_step


def test_ascii_file_declared_as_gb18030_is_fine():
    assert rows(read(b"a,b\n1,2\n", encoding="gb18030")) == [["1", "2"]]


def test_line_numbers_of_a_file_with_long_fields_do_not_depend_on_other_files(monkeypatch):
    # Records spanning lines are numbered by the csv module when a quote stands inside a field
    # (`q"r"`), and its field-size limit is process-wide: it must be raised for this file
    # whatever another file set it to.
    import csv

    csv.field_size_limit(131072)
    long = b"z" * 200_000
    table = read(b'a,b\n"x\ny",' + long + b'\nq"r",s\n', max_field_chars=300_000)
    assert table.lines.tolist() == [2, 4]
    assert rows(table)[0] == ["x\ny", long.decode()]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-32-le", "idna",
                                      "punycode"])
@pytest.mark.parametrize("data", [b"a,b\n1,2\n\n", "a,b\n1,余额\n".encode("gb18030")],
                         ids=["ascii", "gb18030"])
def test_bytes_the_declared_codec_cannot_decode_refuse_the_file_not_the_run(encoding, data):
    error = refusal(data, encoding=encoding)
    assert encoding in error.message and "encoding=" in error.next_step


@pytest.mark.parametrize("encoding", ["utf-8-sig", "UTF-8-SIG", "utf8", "U8"])
@pytest.mark.parametrize("bom", [b"\xef\xbb\xbf", b""], ids=["bom", "no-bom"])
def test_utf8_under_any_of_its_names_is_read_with_or_without_a_bom(encoding, bom):
    table = read(bom + "a,b\n1,余额不足\n".encode("utf-8"), encoding=encoding)
    assert list(table.frame.columns) == ["a", "b"] and rows(table) == [["1", "余额不足"]]


# --- ignored columns and over-long free text ----------------------------------------------------

def read_kept(data: bytes, **overrides):
    return read(data, columns=["a", "b"], cuttable=frozenset({"b"}), **overrides)


SLOW = b"x\n"  # a record of one field: the file goes to the csv-module reader


@pytest.mark.parametrize("tail", [b"", SLOW], ids=["fast-reader", "slow-reader"])
@pytest.mark.parametrize("extra", [b"z" * 500, b"\xff\xfe"], ids=["over-long", "bad-bytes"])
def test_an_ignored_column_never_rejects_a_row(tail, extra):
    table = read_kept(b"a,extra,b\n1," + extra + b",2\n3,y,4\n" + tail)
    assert list(table.frame.columns) == ["a", "b"] and table.header == ["a", "extra", "b"]
    assert rows(table) == [["1", "2"], ["3", "4"]]
    assert all(reason.startswith("expected") for _, _, reason in broken(table))


@pytest.mark.parametrize("tail", [b"", SLOW], ids=["fast-reader", "slow-reader"])
def test_an_over_long_free_text_field_is_cut_and_listed_not_rejected(tail):
    long = "余" * 150
    table = read_kept(f"a,b\n1,{long}\n2,short\n".encode() + tail)
    assert rows(table)[:2] == [["1", "余" * 100], ["2", "short"]]
    assert table.cut.values.tolist() == [[2, "b", 150]]
    assert not [entry for entry in broken(table) if entry[0] == 2]


@pytest.mark.parametrize("tail", [b"", SLOW], ids=["fast-reader", "slow-reader"])
def test_a_card_number_across_the_cut_is_masked_before_the_cut(tail):
    value = "x" * 90 + "6258070000111129" + "y" * 20
    table = read_kept(f"a,b\n1,{value}\n".encode() + tail)
    assert rows(table)[0][1] == ("x" * 90 + "625807****")


@pytest.mark.parametrize("tail", [b"", SLOW], ids=["fast-reader", "slow-reader"])
def test_an_over_long_field_of_a_kept_column_that_is_not_free_text_still_rejects(tail):
    table = read_kept(b"a,b\n" + b"1" * 150 + b",ok\n2,ok\n" + tail)
    assert rows(table)[0] == ["2", "ok"]
    assert broken(table)[0][:2] == (2, "a") and "over the 100 limit" in broken(table)[0][2]
