"""Small vectorised helpers of the generator: random draws, integers and fen as strings,
timestamps built as bytes, and columns accumulated in blocks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DAY = 86400
HOUR = 3600


def draw_ints(rng: np.random.Generator, lo, hi, n: int) -> np.ndarray:
    """Uniform integers in [lo, hi] (inclusive; lo/hi may be arrays)."""
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    return lo + np.floor(rng.random(n) * (hi - lo + 1)).astype(np.int64)


def draw_choice(rng: np.random.Generator, n: int, probs: Sequence[float]) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    return np.searchsorted(np.cumsum(p / p.sum()), rng.random(n), side="right").astype(np.int64).clip(0, len(p) - 1)


def decimal_strings(x) -> pa.Array:
    """Integers -> decimal strings."""
    return pc.cast(pa.array(np.asarray(x, dtype=np.int64)), pa.string())


def zero_padded(x, width: int, prefix: str = "") -> pa.Array:
    s = pc.utf8_lpad(decimal_strings(x), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, s, "") if prefix else s


def yuan_strings(fen) -> pa.Array:
    fen = np.asarray(fen, dtype=np.int64)
    cents = pc.utf8_lpad(decimal_strings(fen % 100), width=2, padding="0")
    return pc.binary_join_element_wise(decimal_strings(fen // 100), cents, ".")


def yuan_text(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def timestamps(base: dt.date, secs, *, iso: bool = False, mask: np.ndarray | None = None) -> pa.Array:
    """Seconds after base 00:00:00 -> 'YYYY-MM-DD HH:MM:SS' (or ISO 8601 with +08:00); mask -> empty."""
    secs = np.asarray(secs, dtype=np.int64)
    n = len(secs)
    days = np.floor_divide(secs, DAY)
    sod = secs - days * DAY
    ud, inv = np.unique(days, return_inverse=True)
    lut = np.frombuffer(b"".join((base + dt.timedelta(days=int(d))).isoformat().encode() for d in ud) or b"",
                        dtype=np.uint8).reshape(-1, 10)
    w = 25 if iso else 19
    m = np.empty((n, w), dtype=np.uint8)
    if n:
        m[:, :10] = lut[inv.reshape(-1)]
    m[:, 10] = ord("T") if iso else ord(" ")
    h, mi, s = sod // 3600, sod // 60 % 60, sod % 60
    for col, v in ((11, h), (14, mi), (17, s)):
        m[:, col] = v // 10 + 48
        m[:, col + 1] = v % 10 + 48
    m[:, 13] = m[:, 16] = ord(":")
    if iso:
        m[:, 19:25] = np.frombuffer(b"+08:00", dtype=np.uint8)
    offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int64) * w).astype(np.int32).tobytes())
    arr = pa.Array.from_buffers(pa.string(), n, [None, offsets, pa.py_buffer(m.tobytes())])
    if mask is not None:
        arr = pc.if_else(pa.array(mask), pa.scalar(None, pa.string()), arr)
    return arr


def timestamp(base: dt.date, sec: int) -> str:
    return (dt.datetime.combine(base, dt.time()) + dt.timedelta(seconds=int(sec))).strftime("%Y-%m-%d %H:%M:%S")


def lookup(values: Sequence[str], idx) -> pa.Array:
    return pc.take(pa.array(list(values), pa.string()), pa.array(np.asarray(idx, dtype=np.int64)))


class Columns:
    """Columns built block by block (a block: n rows, a value or array per column, the rest
    defaulted), joined once at the end."""

    def __init__(self, defaults: dict[str, tuple[type, object]]):
        self.defaults = defaults
        self.blocks: list[dict[str, np.ndarray]] = []

    def add(self, n: int, **cols) -> None:
        if n:
            self.blocks.append({k: np.broadcast_to(np.asarray(v), (n,)) for k, v in cols.items()} | {"_n": n})

    def build(self) -> dict[str, np.ndarray]:
        out = {}
        for k, (dtype, default) in self.defaults.items():
            parts = [b[k] if k in b else np.full(b["_n"], default) for b in self.blocks]
            out[k] = np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
        return out

