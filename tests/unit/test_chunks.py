"""Columns in several Arrow chunks give exactly what they give in one.

A file larger than one Arrow read block (RECON_CSV_BLOCK_BYTES) is parsed block by block, and its
columns come back as one chunk per block; so do columns concatenated from several files. Every
step after the reader (row rules, duplicate keys, id codes, reports) must not care. Each test
here reads or builds the same data both ways, checks that one way really is in several chunks,
and compares.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recon import filerules
from recon import validate as v
from recon.frames import dictionary_codes, first_bytes, values_with_bytes
from recon.ids import shared_codes
from recon.sinks.reports import write_csv
from recon.sources.csvfile import read_csv

ONE_BLOCK = 16 << 20
SMALL_BLOCK = 256
CONTEXT = v.RuleContext(dt.date(2026, 11, 27), ZoneInfo("Asia/Shanghai"))
SETTLEMENT_HEADER = b"gateway_txn_id,instruction_id,amount,status,response_code,response_msg,txn_time"


def chunks(column: pd.Series) -> int:
    return pa.chunked_array(pa.array(column)).num_chunks if len(column) else 0


def read(data: bytes, block_bytes: int):
    return read_csv(Path("f.csv"), "f.csv", data=data, max_bytes=1 << 24, max_field_chars=4096,
                    max_columns=20, block_bytes=block_bytes)


def record(n: int, amount: bytes | None = None) -> bytes:
    code = [b"51", b" 51 ", b"am04", b"00"][n % 4]
    status = b"SUCCESS" if code == b"00" else b"FAILED"
    message = ['"余额不足, 请充值后重试 (""NSF"")"', '"第一行\n第二行, 请稍后"', "交易成功"][n % 3]
    return b"T%06d,I%06d,%s,%s,%s,%s,2026-11-27 09:%02d:%02d" % (
        n, n // 2, amount or b"%d.%02d" % (100 + n, n % 100), status, code, message.encode(),
        n // 60 % 60, n % 60)


def settlement_file(rows: int, *, eol: bytes = b"\n", extra: list[bytes] = ()) -> bytes:
    """A messy settlement file: BOM, quoted Chinese with commas, a message over two lines,
    codes padded or in lower case, CRLF if asked."""
    lines = [b"\xef\xbb\xbf" + SETTLEMENT_HEADER] + [record(n) for n in range(rows)] + list(extra)
    return eol.join(lines) + eol


def as_one_chunk(frame: pd.DataFrame) -> pd.DataFrame:
    return pa.Table.from_pandas(frame, preserve_index=False).combine_chunks().to_pandas()


def test_a_file_over_one_block_comes_back_in_chunks_with_the_same_rows_and_lines():
    data = settlement_file(300, eol=b"\r\n")
    whole, blocks = read(data, ONE_BLOCK), read(data, SMALL_BLOCK)
    assert chunks(whole.frame["gateway_txn_id"]) == 1
    assert chunks(blocks.frame["gateway_txn_id"]) > 10
    pd.testing.assert_frame_equal(blocks.frame, whole.frame)
    assert blocks.lines.tolist() == whole.lines.tolist()
    assert blocks.records == whole.records == 300
    assert blocks.frame["response_code"].tolist()[:4] == ["51", "51", "am04", "00"]


def test_a_record_longer_than_a_block_is_still_parsed_by_arrow_in_chunks():
    long_message = b"x" * 3000
    data = settlement_file(40, extra=[b"T999999,I999999,1.00,FAILED,51,%s,2026-11-27 10:00:00"
                                      % long_message])
    whole, blocks = read(data, ONE_BLOCK), read(data, SMALL_BLOCK)
    # The csv-module reader would give one chunk: several mean Arrow read it, in larger blocks.
    assert chunks(blocks.frame["response_msg"]) > 1
    pd.testing.assert_frame_equal(blocks.frame, whole.frame)
    assert blocks.frame["response_msg"].iloc[-1] == long_message.decode()


def test_dictionary_codes_of_chunks_are_codes_over_one_dictionary():
    values = ["L2", "L1", "L2", "L3", "L1", "L4", "L3"]
    chunked = pa.chunked_array([pa.array(values[:2]), pa.array(values[2:3]), pa.array([], pa.string()),
                                pa.array(values[3:])])
    codes, dictionary = dictionary_codes(chunked)
    assert codes.tolist() == [0, 1, 0, 2, 1, 3, 2]
    assert dictionary.take(pa.array(codes)).to_pylist() == values
    one_codes, one_dictionary = dictionary_codes(pa.array(values))
    assert codes.tolist() == one_codes.tolist() and dictionary.equals(one_dictionary)


def test_dictionary_codes_of_no_chunks_are_empty():
    codes, dictionary = dictionary_codes(pa.chunked_array([], type=pa.large_string()))
    assert codes.tolist() == [] and len(dictionary) == 0


def test_shared_codes_of_chunked_columns_equal_those_of_whole_columns():
    first = read(settlement_file(200), SMALL_BLOCK).frame["instruction_id"]
    second = read(settlement_file(90), SMALL_BLOCK).frame["instruction_id"]
    assert chunks(first) > 1 and chunks(second) > 1
    chunked_codes, chunked_dictionary = shared_codes(first, second)
    whole_codes, whole_dictionary = shared_codes(as_one_chunk(first.to_frame())["instruction_id"],
                                                 as_one_chunk(second.to_frame())["instruction_id"])
    assert [codes.tolist() for codes in chunked_codes] == [codes.tolist() for codes in whole_codes]
    assert chunked_dictionary.equals(whole_dictionary)


DUPLICATE = record(8)  # rows repeated exactly collapse into one
CONFLICT = [record(9, amount=b"1.00")]  # the same gateway_txn_id with another amount


@pytest.mark.parametrize("extra", [[], [DUPLICATE], [DUPLICATE] + CONFLICT,
                                   [b"T1,I1,abc,FAILED,51,x,2026-11-27 09:00:00"]],
                         ids=["every-row-valid", "exact-duplicate", "conflicting-key", "bad-row"])
def test_validation_of_a_chunked_file_equals_that_of_the_whole_file(extra):
    data = settlement_file(300, extra=extra)
    whole = filerules.validate(read(data, ONE_BLOCK), v.SETTLEMENT, CONTEXT)
    raw = read(data, SMALL_BLOCK)
    assert chunks(raw.frame["gateway_txn_id"]) > 1
    chunked = filerules.validate(raw, v.SETTLEMENT, CONTEXT)
    pd.testing.assert_frame_equal(chunked.valid, whole.valid)
    pd.testing.assert_frame_equal(chunked.rejects, whole.rejects)
    assert chunked.duplicates_collapsed == whole.duplicates_collapsed == (1 if extra[:1] ==
                                                                           [DUPLICATE] else 0)


def test_key_codes_of_chunked_key_columns_equal_those_of_whole_ones():
    frame = read(settlement_file(300, extra=[DUPLICATE]), SMALL_BLOCK).frame
    keys = frame[["instruction_id", "gateway_txn_id"]]
    assert chunks(keys["instruction_id"]) > 1
    chunked = filerules.key_codes(keys, ["instruction_id", "gateway_txn_id"])
    whole = filerules.key_codes(as_one_chunk(keys), ["instruction_id", "gateway_txn_id"])
    assert np.array_equal(chunked, whole)
    assert filerules.repeated(chunked).sum() == 2  # the duplicate and the row it repeats


def test_a_report_of_chunked_columns_is_byte_for_byte_that_of_whole_ones(tmp_path):
    frame = read(settlement_file(300), SMALL_BLOCK).frame
    assert chunks(frame["response_msg"]) > 1
    write_csv(tmp_path / "chunked.csv", frame)
    write_csv(tmp_path / "whole.csv", as_one_chunk(frame))
    assert (tmp_path / "chunked.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert (tmp_path / "whole.csv").read_bytes().count(b"\n") > 300


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet='ab,"\r\n1２元=+-@\t ', max_size=12)),
                max_size=30), st.integers(min_value=1, max_value=7))
def test_byte_looks_at_a_column_agree_with_python_in_any_chunking(texts, size):
    """values_with_bytes and first_bytes read Arrow's buffers directly: in
    chunks, with nulls and with multi-byte characters they say what a loop over the values says."""
    chunks = [pa.array(texts[start:start + size], type=pa.large_string())
              for start in range(0, len(texts), size)]
    column = pa.chunked_array(chunks, type=pa.large_string())
    sliced = pa.array(texts + ["x"], type=pa.large_string()).slice(0, len(texts))
    for values in (column, sliced):
        assert values_with_bytes(values, b',"\r\n').tolist() == [
            text is not None and any(char in text for char in ',"\r\n') for text in texts]
        assert first_bytes(values).tolist() == [
            text.encode()[0] if text else 0 for text in texts]


def test_amounts_read_from_chunks_and_slices_are_the_same_fen():
    """amount_fen reads the decimals' stored integers from Arrow's buffer: chunk offsets (a
    slice), several chunks and missing values give what one plain array gives."""
    texts = ["1234.5", "0007", None, "0.01", "999999999999.99", "abc", "", "12.3", "0"] * 3
    plain = pd.Series(texts, dtype="str")
    whole = pa.array(texts + ["9.99"], type=pa.large_string()).slice(0, len(texts))
    chunked = pa.chunked_array([whole.slice(0, 4), whole.slice(4, 10), whole.slice(14)])
    expected_fen, expected_ok = v.amount_fen(plain, CONTEXT)
    for column in (whole, chunked):
        fen, ok = v.amount_fen(pd.Series(pd.arrays.ArrowStringArray(column)), CONTEXT)
        assert ok.tolist() == expected_ok.tolist()
        assert fen[ok].tolist() == expected_fen[expected_ok].tolist()
    assert expected_fen[expected_ok].tolist()[:4] == [123450, 700, 1, 99999999999999]
    decimals = pc.cast(pa.array(["1.5", "2", "3.25", "4"], type=pa.large_string()),
                       pa.decimal128(16, 2))
    assert v._scaled_integers(pa.chunked_array([decimals.slice(2), decimals.slice(0, 1)])
                              ).to_pylist() == [325, 400, 150]
