"""Small helpers for pandas 3 columns backed by Arrow, shared by validate and classify."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa


def arrow_strings(column: pd.Series) -> pa.Array | pa.ChunkedArray:
    """The column as Arrow large_string, without a copy when it already is one.

    pandas 3's `str` columns are Arrow large_string arrays; Arrow compute kernels on them avoid
    pandas' slower paths (Series.isin and string joins on millions of rows cost seconds).
    """
    array = pa.array(column)
    return array if array.type == pa.large_string() else array.cast(pa.large_string())
