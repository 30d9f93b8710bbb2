"""The CSV writer of the reports: RFC 4180 minimal quoting, byte for byte what csv.writer writes."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from recon.sinks.reports import write_csv

AWKWARD = ["plain", "a,b", 'say "hi"', "line\nbreak", "", " padded ", "余额不足, 请充值",
           "0012345", "'=cmd"]


@pytest.mark.parametrize("bom", [False, True], ids=["utf8", "utf8-bom"])
def test_write_csv_matches_the_standard_csv_writer(tmp_path, bom):
    frame = pd.DataFrame({"text": AWKWARD, "id": [f"{n:020d}" for n in range(len(AWKWARD))]},
                         dtype="str")
    path = tmp_path / "out.csv"
    write_csv(path, frame, bom=bom)
    expected = io.StringIO(newline="")
    writer = csv.writer(expected, lineterminator="\n")
    writer.writerow(frame.columns)
    writer.writerows(frame.itertuples(index=False, name=None))
    prefix = b"\xef\xbb\xbf" if bom else b""
    assert path.read_bytes() == prefix + expected.getvalue().encode("utf-8")


def test_write_csv_of_no_rows_is_the_header(tmp_path):
    path = tmp_path / "out.csv"
    write_csv(path, pd.DataFrame({"a": pd.Series(dtype="str"), "b": pd.Series(dtype="str")}))
    assert path.read_bytes() == b"a,b\n"


def test_missing_values_are_empty_cells(tmp_path):
    path = tmp_path / "out.csv"
    write_csv(path, pd.DataFrame({"a": ["x", None], "b": [None, "y"]}, dtype="str"))
    assert path.read_bytes() == b"a,b\nx,\n,y\n"


def test_a_bare_carriage_return_is_quoted_and_reads_back(tmp_path):
    # csv.writer with lineterminator="\n" leaves a bare CR unquoted; readers take it as a line end.
    path = tmp_path / "out.csv"
    write_csv(path, pd.DataFrame({"a": ["cr\rhere"], "b": ["x"]}, dtype="str"))
    assert path.read_bytes() == b'a,b\n"cr\rhere",x\n'
    with open(path, newline="", encoding="utf-8") as handle:
        assert list(csv.reader(handle)) == [["a", "b"], ["cr\rhere", "x"]]
