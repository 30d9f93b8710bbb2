"""A profile's value rules as validate.py column checks: amounts, timestamps, status words.

The readers hand over every field as the trimmed text the file holds; these checks turn it into
the contract's typed values (integer fen, UTC timestamps, SUCCESS / FAILED / PENDING), so a bad
value is rejected by validate.py with the value as the file wrote it.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recon import validate as v
from recon.frames import arrow_strings
from recon.profiles import Profile
from recon.timetext import time_pattern, zone_of

CURRENCY_AROUND = r"^(?:[¥￥]|RMB|CNY)\s*|\s*(?:元|RMB|CNY)$"
GROUPED = r"^[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?$"
FEN_PATTERN = r"^[0-9]{1,17}$"


def _series(array, index: pd.Index) -> pd.Series:
    return pd.Series(array.to_numpy(zero_copy_only=False), index=index)


def plain_amount_text(values: pd.Series) -> pa.Array:
    """`¥1,234.50元` -> `1234.50`: currency marks and grouping commas removed."""
    text = pc.replace_substring_regex(arrow_strings(values), CURRENCY_AROUND, "")
    grouped = pc.match_substring_regex(text, GROUPED)
    return pc.if_else(grouped, pc.replace_substring(text, ",", ""), text)


def amount_parser(unit: str):
    def parse(values: pd.Series, context: v.RuleContext) -> tuple[pd.Series, pd.Series]:
        text = plain_amount_text(values)
        plain = pd.Series(text.to_pandas().array, index=values.index)
        if unit == "yuan":
            return v.amount_fen(plain, context)
        ok = pc.match_substring_regex(text, FEN_PATTERN)
        fen = _series(pc.cast(pc.if_else(ok, text, "0"), pa.int64()), values.index)
        return fen, _series(ok, values.index) & (fen > 0)
    return parse


def amount_to_fen(text: str, unit: str) -> int | None:
    """One amount (a summary line's total, a marker's): integer fen, or None."""
    values = pd.Series([text.strip()], dtype="str")
    fen, ok = amount_parser(unit)(values, v.RuleContext(dt.date.today(), ZoneInfo("UTC")))
    return int(fen.iloc[0]) if bool(ok.iloc[0]) else None


def time_parser(time_format: str, timezone: str | None):
    fmt = time_pattern(time_format)

    def parse(values: pd.Series, context: v.RuleContext) -> tuple[pd.Series, pd.Series]:
        tz = zone_of(timezone) if timezone else context.tz
        if not fmt:
            return v.timestamp(values, v.RuleContext(context.business_date, tz))
        text = arrow_strings(values)
        moments = pc.strptime(text, format=fmt, unit="s", error_is_null=True)
        # strptime rolls 2026-02-30 into March and takes unpadded digits: what it read, written
        # back in the same format, must be what the file holds.
        written = pc.strftime(moments, format=fmt)
        same = pc.fill_null(pc.equal(written, pc.cast(text, pa.string())), False)
        seconds = pc.fill_null(pc.cast(moments, pa.int64()), v.NO_SECONDS).to_numpy(
            zero_copy_only=False)
        ok = same.to_numpy(zero_copy_only=False) & (seconds >= v.EARLIEST_SECONDS) & \
            (seconds <= v.LATEST_SECONDS)
        local = pd.Series(np.where(ok, seconds * 1_000_000_000, v.NAT).view("datetime64[ns]"),
                          index=values.index)
        parsed = local.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert(
            "UTC").astype("datetime64[ns, UTC]")
        return parsed, parsed.notna()
    return parse


def status_parser(profile: Profile):
    words = profile.status_words()
    contains = [(text.upper(), status) for text, status in profile.status.contains.items()]
    constant = profile.status.constant or (
        "SUCCESS" if profile.lists == "success_only" and "status" not in profile.columns
        else None)
    keys = pa.array(list(words), type=pa.large_string())
    meanings = pa.array(list(words.values()), type=pa.large_string())

    def parse(values: pd.Series, _: v.RuleContext) -> tuple[pd.Series, pd.Series]:
        if constant:
            return pd.Series(constant, index=values.index, dtype="str"), \
                pd.Series(True, index=values.index)
        upper = pc.utf8_upper(arrow_strings(values))
        found = pc.take(meanings, pc.index_in(upper, value_set=keys)) if len(words) else \
            pa.nulls(len(values), pa.large_string())
        for text, status in contains:  # in the profile's order; an exact word wins
            found = pc.if_else(pc.and_(pc.is_null(found), pc.match_substring(upper, text)),
                               status, found)
        status = pd.Series(pc.fill_null(found, "").to_pandas().array, index=values.index)
        return status, status.str.len() > 0
    return parse


def settlement_spec(profile: Profile) -> v.FileSpec:
    """validate.SETTLEMENT with this profile's value rules."""
    unit = profile.values.amount_unit
    shown_format = {"contract": "YYYY-MM-DD HH:MM:SS", "iso": "ISO 8601"}.get(
        profile.values.time_format, profile.values.time_format)
    words = ", ".join(sorted(profile.status_words())[:12])
    return v.FileSpec(
        "settlement",
        (
            v.Check("gateway_txn_id", "gateway_txn_id is empty", v.non_empty),
            v.Check("instruction_id", "instruction_id is empty", v.non_empty),
            v.Check("amount", f"amount must be a positive amount in {unit}"
                    + (" with at most 2 decimals" if unit == "yuan" else " (whole fen)"),
                    amount_parser(unit)),
            v.Check("status", "status is not a value the profile maps to SUCCESS, FAILED or "
                    f"PENDING ([status] map / contains{': ' + words if words else ''})",
                    status_parser(profile)),
            v.Check("response_code", "", v.maybe_empty),
            v.Check("response_msg", "", v.free_text),
            v.Check("txn_time", f"txn_time must be a timestamp in the form {shown_format}",
                    time_parser(profile.values.time_format, profile.values.timezone)),
        ),
        key=("gateway_txn_id",),
    )
