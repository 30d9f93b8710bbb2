"""Writing the generated files: CSV records joined column-wise with pyarrow, bad and resent
rows placed at random, and the reject truth (file, physical line, data record) of every bad row."""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tests.synth.arrays import draw_ints

_NEEDS_QUOTE = '[",\r\n]'
_TEXT_COLUMNS = frozenset({"response_msg", "description"})  # the only generated values that may need quotes


def _quote(col: pa.Array) -> pa.Array:
    needs = pc.fill_null(pc.match_substring_regex(col, _NEEDS_QUOTE), False)
    if not pc.any(needs).as_py():
        return col
    q = pc.binary_join_element_wise('"', pc.replace_substring(col, '"', '""'), '"', "")
    return pc.if_else(needs, q, col)


def _quote_every(col: pa.Array) -> pa.Array:
    """Every value in quotes, as exports that quote all fields write them."""
    return pc.binary_join_element_wise('"', pc.replace_substring(col, '"', '""'), '"', "")


def _q1(v: str, every: bool = False) -> str:
    return '"' + v.replace('"', '""') + '"' if every or any(ch in v for ch in '",\r\n') else v


def _rows(cols: Sequence[pa.Array], eol: str) -> tuple[memoryview, np.ndarray]:
    """Join (already quoted) string columns into CSV records: (bytes of all records, record offsets)."""
    n = len(cols[0])
    if not n:
        return memoryview(b""), np.zeros(1, np.int64)
    rows = pc.binary_join_element_wise(*cols, ",", null_handling="replace", null_replacement="")
    rows = pc.binary_join_element_wise(rows, eol, "")
    if isinstance(rows, pa.ChunkedArray):
        rows = rows.combine_chunks()
    off_t = np.int64 if pa.types.is_large_string(rows.type) else np.int32
    bufs = rows.buffers()
    off = np.frombuffer(bufs[1], dtype=off_t, count=n + 1,
                        offset=rows.offset * np.dtype(off_t).itemsize).astype(np.int64)
    return memoryview(bufs[2]), off


def csv_bytes(header: Sequence[str], cols: Sequence[pa.Array], eol: str = "\n") -> bytes:
    """CSV of columns whose values never need quoting (ids, amounts, enum values)."""
    data, off = _rows(cols, eol)
    return (",".join(header) + eol).encode() + bytes(data[off[0]:off[-1]])


@dataclasses.dataclass
class InputFile:
    name: str
    columns: list[str]                    # contract column names, in writing order
    data: dict[str, pa.Array]             # valid rows
    bad: list[tuple[dict[str, str], str, str]] = dataclasses.field(default_factory=list)  # row, column, reason
    dups: list[int] = dataclasses.field(default_factory=list)  # valid row indexes written twice
    header: list[str] | None = None       # written header (variations), default = columns
    eol: str = "\n"
    encoding: str = "utf-8"
    bom: bool = False
    quote_every: bool = False             # every field (and the header) in quotes

    def write(self, day_dir: pathlib.Path, rng) -> tuple[str, int, list[dict]]:
        """Write the file (valid rows in order, bad/duplicate rows at random places).

        Returns the sha256 of the written bytes, the number of data records and the reject truth.
        """
        cols = [_quote_every(self.data[c]) if self.quote_every else
                _quote(self.data[c]) if c in _TEXT_COLUMNS else self.data[c] for c in self.columns]
        n_valid = len(cols[0])
        data, off = _rows(cols, self.eol)
        # extra records: bad rows (rendered here) and exact copies of valid records
        extra = [(",".join(_q1(row.get(c, ""), self.quote_every) for c in self.columns) + self.eol).encode()
                 for row, _, _ in self.bad]
        extra += [bytes(data[off[i]:off[i + 1]]) for i in self.dups]
        n_extra = len(extra)
        pos = np.sort(draw_ints(rng, 0, n_valid, n_extra))        # inserted before valid record pos[j]
        which = rng.permutation(n_extra)                    # extra record placed at the j-th insertion point
        header = ",".join(_q1(h, self.quote_every) for h in (self.header or self.columns))
        chunks: list = [(header + self.eol).encode()]
        prev = 0
        for j in range(n_extra):
            chunks.append(data[off[prev]:off[pos[j]]])
            chunks.append(extra[which[j]])
            prev = pos[j]
        chunks.append(data[off[prev]:off[n_valid]])
        if self.encoding != "utf-8":
            chunks = [b"".join(chunks).decode("utf-8").encode(self.encoding)]
        if self.bom:
            chunks.insert(0, b"\xef\xbb\xbf")
        h = hashlib.sha256()
        with open(day_dir / self.name, "wb") as fh:
            for ch in chunks:
                h.update(ch)
                fh.write(ch)
        # reject truth: physical line (header = line 1) and data record (1-based) of each bad row
        rejects = []
        if self.bad:
            nl_valid = np.zeros(n_valid + 1, np.int64)   # newlines inside records 0..i-1
            for c, col in zip(self.columns, cols):
                if c in _TEXT_COLUMNS:
                    newlines = pc.fill_null(pc.count_substring(col, "\n"), 0)
                    nl_valid[1:] += np.cumsum(newlines.to_numpy(zero_copy_only=False))
            extra_nl = [e.count(b"\n") - 1 for e in extra]
            nl_extra_before = 0
            for j in range(n_extra):
                rec = int(pos[j]) + j                     # 0-based data record
                b_i = int(which[j])
                if b_i < len(self.bad):
                    row, column, reason = self.bad[b_i]
                    rejects.append({"file": self.name, "line": 2 + rec + int(nl_valid[pos[j]]) + nl_extra_before,
                                    "record": rec + 1, "column": column, "value": row.get(column, ""),
                                    "reason": reason})
                nl_extra_before += extra_nl[b_i]
        return h.hexdigest(), n_valid + n_extra, rejects


def bad_row_count(rows: int) -> int:
    return min(max(3, rows // 5000), rows // 200)


def resent_rows(rng, rows: int, candidates: np.ndarray | None = None) -> list[int]:
    """Valid records written twice, exactly (a sender resending part of its export): about one
    in a thousand, at least one."""
    pool = np.arange(rows) if candidates is None else candidates
    if not len(pool):
        return []
    k = min(len(pool), max(1, rows // 1000))
    return sorted(int(i) for i in pool[rng.choice(len(pool), size=k, replace=False)])


def take_bad_kinds(kinds: list, budget: int, rng) -> list:
    """Cycle through kinds in a random order (a kind is one row, or a pair for a duplicate key) within budget rows."""
    kinds = [kinds[i] for i in rng.permutation(len(kinds))]
    out, used, i = [], 0, 0
    while kinds and used < budget and i < 10 * budget + len(kinds):
        k = kinds[i % len(kinds)]
        i += 1
        size = 2 if isinstance(k, list) else 1
        if used + size <= budget:
            out.append(k)
            used += size
    return out
