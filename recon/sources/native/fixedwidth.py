"""Fixed-width records: field widths in bytes of the profile's encoding, an optional separator
byte between fields. Records are lines; fields are cut from a numpy byte matrix, one slice per
field for the whole file, and decoded a column at a time (GBK and GB18030 never use the LF
byte inside a character, so a column's values joined by LF decode in one call)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recon.profiles import Profile
from recon.sources.filebytes import refuse_binary
from recon.sources.rawtable import BAD_BYTES_REASON
from recon.sources.native.delimited import Fields, _clean_column
from recon.sources.native.text import NativeFileError, decode_bom, sort_lines

SPACE = 32
CHUNK_ROWS = 1 << 16


def field_spans(profile: Profile) -> tuple[list[tuple[str, int, int]], list[int], int]:
    """(name, start, width) per field (0-based byte offsets), separator offsets, record bytes."""
    spans, separators = [], []
    position = 0
    has_separator = bool(profile.layout.separator)
    for number, field in enumerate(profile.layout.fields):
        if field.start is not None:
            position = field.start - 1
        elif number and has_separator:
            separators.append(position)
            position += 1
        spans.append((field.name, position, field.width))
        position += field.width
    return spans, separators, max(start + width for _, start, width in spans)


def read_fixed_width(data: bytes, profile: Profile, display: str) -> Fields:
    layout = profile.layout
    data = decode_bom(data, profile.encoding)
    refuse_binary(data, display)
    has_header = "header_line" in layout.model_fields_set and layout.header_line > 0
    lines = sort_lines(data, layout, has_header=has_header, encoding=profile.encoding,
                       display=display)
    spans, separators, width = field_spans(profile)
    rows = lines.data_rows
    starts, ends = lines.starts[rows], lines.ends[rows]
    lengths = ends - starts
    matrix = _byte_matrix(data, starts, lengths, width)
    bad = np.zeros(len(rows), dtype=bool)
    broken: list[dict] = []
    numbers = lines.numbers()

    too_long = np.flatnonzero(lengths > width)
    for row in too_long:  # trailing blanks past the last field are padding, not data
        extra = data[starts[row] + width:ends[row]]
        if extra.strip(b" \t"):
            bad[row] = True
            broken.append(_broken(display, numbers[row], "", f"record is {lengths[row]} bytes, "
                                  f"the layout's fields take {width}",
                                  data[starts[row]:ends[row]], profile.encoding))
    if separators:
        byte = profile.layout.separator.encode(profile.encoding)[0]
        misplaced = (matrix[:, separators] != byte).any(axis=1) & ~bad
        for row in np.flatnonzero(misplaced)[:100_000]:
            offset = separators[int(np.argmax(matrix[row, separators] != byte))]
            broken.append(_broken(display, numbers[row], "", f"no separator "
                                  f"{profile.layout.separator!r} at byte {offset + 1}: the record "
                                  f"does not fit the layout", data[starts[row]:ends[row]],
                                  profile.encoding))
        bad |= misplaced

    columns, names = [], []
    for name, start, field_width in spans:
        values, undecodable = _decode_column(matrix[:, start:start + field_width],
                                             profile.encoding)
        for row in np.flatnonzero(undecodable & ~bad):
            broken.append(_broken(display, numbers[row], name, BAD_BYTES_REASON + " (or a "
                                  "character cut by the field's width)",
                                  bytes(matrix[row, start:start + field_width]),
                                  profile.encoding))
        bad |= undecodable
        columns.append(values)
        names.append(name.strip().lower())
    keep = ~bad
    cleaned = [_clean_column(column.filter(pa.array(keep)) if not keep.all() else column,
                             layout.field_prefix) for column in columns]
    broken.sort(key=lambda entry: entry["line"])
    return Fields(cleaned, names, numbers[keep], len(rows), broken, 0, lines.other_text)


def _byte_matrix(data: bytes, starts: np.ndarray, lengths: np.ndarray, width: int) -> np.ndarray:
    """(records x width) bytes; a short record is padded with spaces."""
    raw = np.frombuffer(data, dtype=np.uint8)
    n = len(starts)
    if n == 0:
        return np.zeros((0, width), dtype=np.uint8)
    stride = np.diff(starts)
    if (lengths == width).all() and (n == 1 or (stride == stride[0]).all()):
        step = int(stride[0]) if n > 1 else width
        first = int(starts[0])
        if first + step * (n - 1) + width <= len(raw):
            view = np.lib.stride_tricks.as_strided(raw[first:], shape=(n, width),
                                                   strides=(step, 1), writeable=False)
            return view
    matrix = np.full((n, width), SPACE, dtype=np.uint8)
    offsets = np.arange(width, dtype=np.int64)
    for begin in range(0, n, CHUNK_ROWS):
        part = slice(begin, begin + CHUNK_ROWS)
        index = starts[part, None] + offsets[None, :]
        inside = offsets[None, :] < np.minimum(lengths[part], width)[:, None]
        block = raw[np.where(inside, index, 0)]
        matrix[part] = np.where(inside, block, SPACE)
    return matrix


def _decode_column(block: np.ndarray, encoding: str) -> tuple[pa.Array, np.ndarray]:
    """One field of every record as text, and which records' bytes do not decode."""
    n, width = block.shape
    if n == 0:
        return pa.array([], type=pa.large_string()), np.zeros(0, dtype=bool)
    contiguous = np.ascontiguousarray(block)
    if not (contiguous >= 0x80).any():  # ASCII: the bytes are the UTF-8 text already
        offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
        binary = pa.LargeBinaryArray.from_buffers(
            pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(contiguous)])
        return binary.cast(pa.large_string()), np.zeros(n, dtype=bool)
    with_ends = np.empty((n, width + 1), dtype=np.uint8)
    with_ends[:, :width] = contiguous
    with_ends[:, width] = 10
    text = with_ends.tobytes().decode(encoding, errors="replace")
    values = pc.split_pattern(pa.array([text[:-1]], type=pa.large_string()), "\n").flatten()
    if len(values) != n:
        raise NativeFileError("a field decodes into a line break: the encoding does not fit the "
                              "file")
    undecodable = pc.match_substring(values, "\ufffd").to_numpy(zero_copy_only=False) \
        if "\ufffd" in text else np.zeros(n, dtype=bool)
    return values, undecodable


def _broken(display: str, line: int, column: str, reason: str, value: bytes,
            encoding: str) -> dict:
    return {"file": display, "line": int(line), "column": column,
            "value": value.decode(encoding, errors="replace")[:200], "reason": reason}

