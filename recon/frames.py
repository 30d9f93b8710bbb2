"""Small helpers for pandas 3 columns backed by Arrow, shared by validate and classify.

A column read from a file larger than one Arrow block (RECON_CSV_BLOCK_BYTES), or concatenated
from several files, is a ChunkedArray of many chunks: nothing here assumes one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def arrow_strings(column: pd.Series) -> pa.Array | pa.ChunkedArray:
    """The column as Arrow large_string, without a copy when it already is one.

    pandas 3's `str` columns are Arrow large_string arrays; Arrow compute kernels on them avoid
    pandas' slower paths (Series.isin and string joins on millions of rows cost seconds).
    """
    array = pa.array(column)
    return array if array.type == pa.large_string() else array.cast(pa.large_string())


def dictionary_codes(values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """An int64 code per value and the dictionary they index (distinct values, first appearance
    first), for one array or a chunked one alike."""
    encoded = pc.dictionary_encode(values)
    if isinstance(encoded, pa.Array):
        return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary
    if encoded.num_chunks == 0:
        return np.zeros(0, dtype=np.int64), pa.array([], type=encoded.type.value_type)
    # Arrow encodes a chunked array over one dictionary, which every output chunk carries, so
    # the chunks' indices are codes over the same dictionary.
    codes = np.concatenate([chunk.indices.to_numpy(zero_copy_only=False)
                            for chunk in encoded.chunks]).astype(np.int64)
    return codes, encoded.chunk(0).dictionary
