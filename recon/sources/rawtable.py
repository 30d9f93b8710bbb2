"""What a reader of a CSV-shaped file returns: its records as strings, with lines and rejects.

Shared by the fast (pyarrow) and the fallback (csv module) readers of csvfile.py and csvfallback.py,
and by the native readers, which build the same table from other formats.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recon.protect import mask_cards_in_text

# The reason of a row whose bytes do not decode (read in sources, counted by filerules).
BAD_BYTES_REASON = "bytes are not valid in the file's encoding"


@dataclass
class RawTable:
    """The records of one CSV file: every value a trimmed string, every column name normalised."""

    file: str
    frame: pd.DataFrame  # normalised column names; one row per well-formed record
    lines: np.ndarray  # physical line where each row of `frame` starts (header is line 1)
    records: int  # data records in the file, well-formed or not
    broken: pd.DataFrame = field(default_factory=lambda: empty_rejects())  # records left out
    # Records of `broken` that did split into the header's fields (one field too long, bad
    # bytes), as rows like `frame`'s: a control total over the file still counts them.
    flawed: pd.DataFrame = field(default_factory=pd.DataFrame)
    header: list[str] = field(default_factory=list)  # every column name, ignored ones included
    # Over-long free-text fields cut to max_field_chars: line, column, original length.
    cut: pd.DataFrame = field(default_factory=lambda: empty_cuts())


def empty_cuts() -> pd.DataFrame:
    return pd.DataFrame({"line": pd.Series(dtype="int64"), "column": pd.Series(dtype="str"),
                         "length": pd.Series(dtype="int64")})


def empty_rejects() -> pd.DataFrame:
    return pd.DataFrame({"file": pd.Series(dtype="str"), "line": pd.Series(dtype="Int64"),
                         "column": pd.Series(dtype="str"), "value": pd.Series(dtype="str"),
                         "reason": pd.Series(dtype="str")})


@dataclass(frozen=True)
class FieldLimits:
    """How long a field may be; the free-text columns whose longer fields are cut, not refused."""

    max_field_chars: int
    cuttable: frozenset[int]  # positions (in the header) of columns whose long fields are cut


def cut_text(value: str, max_chars: int) -> str:
    """A free-text value cut to `max_chars`, card numbers masked before the cut can split one."""
    return mask_cards_in_text(value)[:max_chars]
