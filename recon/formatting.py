"""Amounts in yuan and moments in local time as report text: pandas columns in, text out."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recon.frames import text_series, yuan_text


def fmt_yuan(fen: pd.Series) -> pd.Series:
    """Integer fen -> `1234.50` (exact; negative amounts keep their sign)."""
    return text_series(yuan_text(fen.to_numpy(np.int64)), fen.index)


def fmt_local(moments: pd.Series, tz: ZoneInfo) -> pd.Series:
    """UTC timestamps -> local `YYYY-MM-DD HH:MM:SS`; missing ones -> empty string."""
    if moments.empty:
        return pd.Series([], index=moments.index, dtype="str")
    local = pd.to_datetime(moments, utc=True).dt.tz_convert(tz).dt.tz_localize(None)
    # Arrow's cast to text is several times faster than strftime.
    seconds = pa.array(local).cast(pa.timestamp("s"), safe=False)
    return text_series(pc.fill_null(pc.cast(seconds, pa.string()), ""), moments.index)

