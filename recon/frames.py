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


def chunks_of(values: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    """The arrays a column is made of: its chunks, or the one array."""
    return values.chunks if isinstance(values, pa.ChunkedArray) else [values]


def text_series(text: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
    """Arrow text as a pandas `str` column on `index`."""
    series = text.to_pandas()
    series.index = index
    return series


def join_texts(*pieces, separator: str = "") -> pa.Array | pa.ChunkedArray:
    """Text columns (Arrow strings of one length) and literals joined row by row."""
    return pc.binary_join_element_wise(*(_literal(piece) for piece in pieces),
                                       _literal(separator))


def _literal(piece):
    """A str as a large_string scalar (the type of recon's text columns); columns as they are."""
    return pa.scalar(piece, pa.large_string()) if isinstance(piece, str) else piece


def sorted_ranks(values: pd.Series) -> np.ndarray:
    """Each value's rank among the sorted distinct values (equal values, equal ranks): integer
    sort keys for np.lexsort, which orders rows as sorting the texts would, several times faster."""
    return pd.factorize(values, sort=True)[0]


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


def yuan_text(fen: np.ndarray, *, thousands: bool = False) -> pa.Array:
    """Integer fen -> `1234.50` (or `1,234.50` with `thousands`) as Arrow strings, exact and
    column-wise: pandas' string concatenation and regex replacement visit every value in Python
    (a second per million amounts)."""
    fen = np.asarray(fen, dtype=np.int64)
    magnitude = np.abs(fen)
    whole = magnitude // 100
    if not thousands:
        text = pc.cast(pa.array(whole), pa.string())
    else:
        # From the right, a group of three digits at a time, zero-padded below the top group.
        text, rest = _digit_group(whole), whole // 1000
        while rest.any():
            more = pa.array(rest > 0)
            text = pc.if_else(more, pc.binary_join_element_wise(_digit_group(rest), text, ","),
                              text)
            rest = rest // 1000
    cents = pc.utf8_lpad(pc.cast(pa.array(magnitude % 100), pa.string()), 2, "0")
    text = pc.binary_join_element_wise(text, cents, ".")
    return pc.if_else(pa.array(fen < 0), pc.binary_join_element_wise("-", text, ""), text)


def _digit_group(number: np.ndarray) -> pa.Array:
    """The last three digits of each number, zero-padded where more digits come before them."""
    group = pc.cast(pa.array(number % 1000), pa.string())
    return pc.if_else(pa.array(number >= 1000), pc.utf8_lpad(group, 3, "0"), group)


# --- byte-level looks at a text column -----------------------------------------------------------
# A regular expression run by Arrow costs a few hundred nanoseconds per value even when it finds
# nothing; numpy over a column's UTF-8 buffer finds which values hold a given byte in one pass.

def text_chunks(values: pa.Array | pa.ChunkedArray):
    """(offsets, bytes, valid) of each chunk of a large_string column, zero-copy."""
    for chunk in chunks_of(values):
        if not len(chunk):
            continue
        offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int64)[
            chunk.offset: chunk.offset + len(chunk) + 1]
        data = chunk.buffers()[2]
        data = np.frombuffer(data, dtype=np.uint8) if data is not None else \
            np.zeros(0, dtype=np.uint8)
        valid = chunk.is_valid().to_numpy(zero_copy_only=False)
        yield offsets, data, valid


def values_with_bytes(values: pa.Array | pa.ChunkedArray, wanted: bytes) -> np.ndarray:
    """Per value of a large_string column, whether it holds any of the bytes `wanted` (ASCII)."""
    found = [np.zeros(0, dtype=bool)]
    for offsets, data, valid in text_chunks(values):
        text = data[offsets[0]:offsets[-1]]
        hits = np.zeros(len(text), dtype=bool)
        for byte in wanted:
            hits |= text == byte
        holding = np.zeros(len(offsets) - 1, dtype=bool)
        # The value each hit falls in: the last one starting at or before it.
        holding[np.searchsorted(offsets[1:] - offsets[0], np.flatnonzero(hits), "right")] = True
        found.append(holding & valid)
    return np.concatenate(found)


def first_bytes(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Per value, its first byte (0 for an empty or missing value)."""
    found = [np.zeros(0, dtype=np.uint8)]
    for offsets, data, valid in text_chunks(values):
        starts = offsets[:-1]
        present = (offsets[1:] > starts) & valid
        first = np.zeros(len(starts), dtype=np.uint8)
        first[present] = data[starts[present]]
        found.append(first)
    return np.concatenate(found)
