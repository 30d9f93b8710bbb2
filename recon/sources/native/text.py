"""What delimited and fixed-width files share: unwrapping zip/gzip, and sorting lines into data,
header, summary and skipped lines (vectorised: line bounds by numpy, line tests by Arrow)."""

from __future__ import annotations

import fnmatch
import io
import re
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recon.profiles import Layout


class NativeFileError(Exception):
    """The file cannot be read with its profile; the reason names the place."""


def unwrap(data: bytes, name: str, member: str, max_bytes: int) -> tuple[str, bytes]:
    """The file's own bytes: a gzip is inflated, a zip's one member matching `member` taken.

    Returns (the name shown in rejects, bytes). Inflating stops at `max_bytes`: a small
    archive cannot blow up into memory.
    """
    if data[:2] == b"\x1f\x8b":
        inflater = zlib.decompressobj(wbits=31)
        try:
            inner = inflater.decompress(data, max_bytes + 1)
        except zlib.error as exc:
            raise NativeFileError(f"{name}: gzip data is damaged ({exc})") from None
        if len(inner) > max_bytes:
            raise NativeFileError(f"{name}: inflates to more than the {max_bytes:,}-byte limit")
        if not inflater.eof:
            raise NativeFileError(f"{name}: gzip data is cut off (truncated file)")
        return f"{name}!{name.removesuffix('.gz').removesuffix('.gzip')}", inner
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            members = [info for info in archive.infolist()
                       if not info.is_dir() and fnmatch.fnmatch(info.filename.rsplit("/", 1)[-1],
                                                                member)]
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise NativeFileError(f"{name}: not a readable zip ({exc})") from None
        if len(members) != 1:
            shown = ", ".join(info.filename for info in members[:5]) or "none"
            raise NativeFileError(f"{name}: the zip must hold exactly one member matching "
                                  f"{member!r}, it holds {len(members)} ({shown})")
        info = members[0]
        if info.flag_bits & 0x1:
            raise NativeFileError(f"{name}: zip member {info.filename} is encrypted")
        if info.file_size > max_bytes:
            raise NativeFileError(f"{name}: zip member {info.filename} is over the "
                                  f"{max_bytes:,}-byte limit")
        try:
            with archive.open(info) as handle:
                inner = handle.read(max_bytes + 1)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as exc:
            raise NativeFileError(f"{name}: zip member {info.filename} is damaged ({exc})") \
                from None
        if len(inner) > max_bytes:
            raise NativeFileError(f"{name}: zip member {info.filename} is over the limit")
        return f"{name}!{info.filename}", inner
    return name, data


def decode_bom(data: bytes, encoding: str) -> bytes:
    if encoding.replace("-", "").replace("_", "").lower() in ("utf8", "utf8sig") and \
            data.startswith(b"\xef\xbb\xbf"):
        return data[3:]
    return data


@dataclass
class Lines:
    """A text file's lines: byte bounds (end excludes CR LF) and what each line is."""

    data: bytes
    starts: np.ndarray
    ends: np.ndarray  # exclusive, without the line end
    data_rows: np.ndarray  # indices of data lines, in order
    header: int  # index of the header line, -1 without one
    other_text: str  # the lines that are neither data nor header (summary, comments, trailer)

    def numbers(self) -> np.ndarray:
        return self.data_rows + 1  # 1-based physical line numbers

    def text(self, index: int, encoding: str) -> str:
        return self.data[self.starts[index]:self.ends[index]].decode(encoding, errors="replace")


def line_bounds(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    raw = np.frombuffer(data, dtype=np.uint8)
    newline = np.flatnonzero(raw == 10)
    starts = np.concatenate([[0], newline + 1]).astype(np.int64)
    ends = np.concatenate([newline, [len(data)]]).astype(np.int64)
    if starts[-1] == len(data):  # the file ends with a line end: no last, empty line
        starts, ends = starts[:-1], ends[:-1]
    if len(ends):
        has_cr = (ends > starts) & (raw[np.maximum(ends - 1, 0)] == 13)
        ends = ends - has_cr
    return starts, ends


def line_array(data: bytes, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """The lines as one Arrow binary array, without a copy of the file."""
    offsets = np.concatenate([starts, [len(data)]]).astype(np.int64)
    whole = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(starts),
                                             [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return whole


def sort_lines(data: bytes, layout: Layout, *, has_header: bool, encoding: str,
               display: str) -> Lines:
    """Which lines are data: after the header (or from first_data_line), not blank, not a
    comment or a `skip_matching` line, not one of the last `trailer_lines` non-blank lines."""
    starts, ends = line_bounds(data)
    n = len(starts)
    whole = line_array(data, starts, ends)
    lengths = ends - starts
    blank = lengths == 0
    if n:
        # a line of spaces and tabs (the line end is in the slice, not in the bounds)
        only_space = pc.match_substring_regex(whole, r"^[ \t\r\n]*$").to_numpy(
            zero_copy_only=False)
        blank |= only_space
    header = -1
    if has_header:
        header = layout.header_line - 1
        if header >= n:
            raise NativeFileError(f"{display}: the header is to be on line {layout.header_line}, "
                                  f"the file has {n} line(s)")
        first = layout.first_data_line - 1 if layout.first_data_line else header + 1
    else:
        first = (layout.first_data_line or 1) - 1
    index = np.arange(n)
    data_line = (index >= first) & ~blank & (index != header)
    skipped = np.zeros(n, dtype=bool)
    if layout.comment and n:
        skipped |= _search(whole, "^" + re.escape(layout.comment), encoding)
    for pattern in layout.skip_matching:
        if n:
            skipped |= _search(whole, pattern, encoding)
    data_line &= ~skipped
    if layout.trailer_lines:
        candidates = np.flatnonzero(~blank & (index != header))
        trailer = candidates[-layout.trailer_lines:]
        data_line[trailer] = False
    other = np.flatnonzero(~data_line & ~blank & (index != header))
    other_text = "\n".join(data[starts[i]:ends[i]].decode(encoding, errors="replace")
                           for i in other[:1000])
    return Lines(data, starts, ends, np.flatnonzero(data_line), header, other_text)


def _search(lines: pa.Array, pattern: str, encoding: str) -> np.ndarray:
    """re.search over every line (lines are bytes in the file's encoding). Arrow's regex runs on
    the bytes when it can mean the same there: an ASCII pattern, or UTF-8 lines."""
    utf8 = encoding.replace("-", "").replace("_", "").lower() in ("utf8", "utf8sig")
    try:
        if utf8:
            return pc.match_substring_regex(lines.cast(pa.large_string()), pattern).to_numpy(
                zero_copy_only=False)
        if pattern.isascii():
            return pc.match_substring_regex(lines, pattern).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass  # bad bytes in a UTF-8 file, or a construct RE2 does not have
    compiled = re.compile(pattern)
    return np.fromiter((bool(compiled.search(line.decode(encoding, errors="replace")))
                        for line in lines.to_pylist()), dtype=bool, count=len(lines))


def take_lines(lines: Lines) -> bytes:
    """The data lines' bytes, each ending in a line end (a contiguous run is one slice)."""
    rows = lines.data_rows
    if not len(rows):
        return b""
    if rows[-1] - rows[0] + 1 == len(rows):
        last = rows[-1]
        end = lines.starts[last + 1] if last + 1 < len(lines.starts) else len(lines.data)
        chunk = lines.data[lines.starts[rows[0]]:end]
        return chunk if chunk.endswith(b"\n") else chunk + b"\n"
    data = lines.data
    return b"".join(data[start:end] + b"\n"
                    for start, end in zip(lines.starts[rows].tolist(), lines.ends[rows].tolist()))
