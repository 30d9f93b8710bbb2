"""The field rules of CONTRACT section 2: each column's check and each file's specification. Pure.

Every rule is a vectorised check over a whole column. recon.filerules applies a file's rules to
a table read from it (rejects, duplicate keys, the reject-rate limit).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recon.contract import BINDING_STATUSES, CONFIRM_STATUSES, SETTLEMENT_STATUSES
from recon.frames import arrow_strings, chunks_of
from recon.protect import mask_cards

AMOUNT_PATTERN = r"0*[0-9]{1,12}(?:\.[0-9]{1,2})?"  # leading zeros do not count
TIMESTAMP_PATTERN = (r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
                     r"(?:Z|z|[+-][0-9]{2}:?[0-9]{2})?")
OFFSET_SUFFIX = r"(?:Z|z|[+-][0-9]{2}:?[0-9]{2})$"
# What datetime64[ns] holds, with a day to spare for time-zone shifts.
EARLIEST_MOMENT = pd.Timestamp("1677-09-23")
LATEST_MOMENT = pd.Timestamp("2262-04-10")


@dataclass(frozen=True)
class Check:
    """A column rule: parse the trimmed strings; `ok` is False where the rule is broken."""

    column: str
    reason: str
    parse: Callable[[pd.Series, "RuleContext"], tuple[pd.Series, pd.Series]]
    # For the rows that break the rule: a more precise reason per value ("" keeps `reason`).
    precise_reason: Callable[[pd.Series, str], pd.Series] | None = None


@dataclass(frozen=True)
class RuleContext:
    business_date: dt.date
    tz: ZoneInfo


@dataclass
class Validated:
    file: str
    valid: pd.DataFrame  # typed columns plus `line`
    rejects: pd.DataFrame  # file, line, column, value, reason
    rows_read: int
    duplicates_collapsed: int
    cut: pd.DataFrame | None = None  # over-long free-text fields cut on reading: line, column, length

    @property
    def fields_cut(self) -> int:
        return 0 if self.cut is None else len(self.cut)

    @property
    def rows_rejected(self) -> int:
        return len(self.rejects)

    @property
    def rows_used(self) -> int:
        return len(self.valid)


# --- column parsers: (parsed values, ok mask) -------------------------------------------------

def non_empty(values: pd.Series, _: RuleContext) -> tuple[pd.Series, pd.Series]:
    return values, values.str.len() > 0


def maybe_empty(values: pd.Series, _: RuleContext) -> tuple[pd.Series, pd.Series]:
    return values, pd.Series(True, index=values.index)


def free_text(values: pd.Series, _: RuleContext) -> tuple[pd.Series, pd.Series]:
    """Any text; a full card number in it is masked here, before anything can copy it out."""
    return mask_cards(values), pd.Series(True, index=values.index)


def code(values: pd.Series, _: RuleContext) -> tuple[pd.Series, pd.Series]:
    """A code from outside (response code, bank code), may be empty; a card number in it is
    masked like in free text."""
    return mask_cards(values), pd.Series(True, index=values.index)


def non_empty_code(values: pd.Series, _: RuleContext) -> tuple[pd.Series, pd.Series]:
    return mask_cards(values), values.str.len() > 0


def _series(array, index: pd.Index) -> pd.Series:
    return pd.Series(array.to_numpy(zero_copy_only=False), index=index)


def positive_integer(values: pd.Series, _: RuleContext) -> tuple[pd.Series, pd.Series]:
    text = arrow_strings(values)
    digits = pc.match_substring_regex(text, r"^[0-9]{1,9}$")
    parsed = _series(pc.cast(pc.if_else(digits, text, "0"), pa.int64()), values.index)
    return parsed, _series(digits, values.index) & (parsed >= 1)


def amount_fen(values: pd.Series, _: RuleContext) -> tuple[pd.Series, pd.Series]:
    """Yuan text -> integer fen, exactly: `1234.5` -> 123450. Zero and negatives break the rule."""
    # Arrow regex kernels: pandas' str.extract / split(expand=True) loop in Python.
    text = arrow_strings(values)
    ok = pc.match_substring_regex(text, "^" + AMOUNT_PATTERN + "$")
    # The pattern's leading zeros trimmed, what is left (at most 12 digits, 2 decimals) is read
    # as a decimal of scale 2, whose stored integer is the amount in fen.
    text = pc.utf8_ltrim(pc.if_else(ok, text, "0"), "0")
    text = pc.if_else(pc.equal(text, ""), "0", text)
    fen = _series(_scaled_integers(pc.cast(text, pa.decimal128(16, 2))), values.index)
    return fen, _series(ok, values.index) & (fen > 0)


def _scaled_integers(decimals: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """The integers a decimal128 column stores (the value times 10**scale), as int64: the low
    64 bits of each little-endian 128-bit value, enough for NUMERIC(14,2)'s range."""
    chunks = []
    for chunk in chunks_of(decimals):
        words = np.frombuffer(chunk.buffers()[1], dtype=np.int64)[
            2 * chunk.offset: 2 * (chunk.offset + len(chunk))][::2] if len(chunk) else \
            np.zeros(0, dtype=np.int64)
        missing = ~chunk.is_valid().to_numpy(zero_copy_only=False) if chunk.null_count else None
        chunks.append(pa.array(words, type=pa.int64(), mask=missing))
    return pa.chunked_array(chunks, type=pa.int64())


AMOUNT_SHAPE = r"^[0-9]+(?:\.[0-9]{1,2})?$"
LARGEST_AMOUNT = "999999999999.99"  # NUMERIC(14,2), what the database stores


def amount_reason(values: pd.Series, column: str) -> pd.Series:
    """Why a rejected amount is wrong, when it is not its form: it is too large to store."""
    text = arrow_strings(values)
    whole = pc.replace_substring_regex(text, r"\..*$", "")
    significant = pc.replace_substring_regex(whole, r"^0+", "")
    too_large = pc.and_(pc.match_substring_regex(text, AMOUNT_SHAPE),
                        pc.greater(pc.utf8_length(significant), 12))
    return pd.Series(np.where(too_large.to_numpy(zero_copy_only=False),
                              f"{column} is too large: NUMERIC(14,2) holds at most "
                              f"{LARGEST_AMOUNT}", ""), index=values.index, dtype="str")


LOCAL_FORMAT = "%Y-%m-%d %H:%M:%S"
# Hours, minutes and seconds in range (no leap seconds 60 and 61): strptime would roll them over.
LOCAL_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} (?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$"
NO_SECONDS = np.iinfo(np.int64).min
NAT = np.iinfo(np.int64).min  # NaT as int64 nanoseconds
EARLIEST_SECONDS = EARLIEST_MOMENT.value // 1_000_000_000 + 1
LATEST_SECONDS = LATEST_MOMENT.value // 1_000_000_000 - 1


def timestamp(values: pd.Series, context: RuleContext) -> tuple[pd.Series, pd.Series]:
    """Local `YYYY-MM-DD HH:MM:SS` or ISO 8601 with offset -> UTC timestamps.

    A moment outside what datetime64[ns] holds (years before 1678 or after 2261, say the
    `9999-12-31` some systems write for "never") breaks the rule rather than the run.
    """
    # The common shape, `2026-11-27 09:14:03`, goes through Arrow's strptime (to seconds, which
    # cannot overflow); the rest (ISO `T`, fractions, offsets) through pandas' ISO 8601 parser.
    text = arrow_strings(values)
    moments = pc.strptime(text, format=LOCAL_FORMAT, unit="s", error_is_null=True)
    # strptime rolls 2026-02-30 over into March, and 10:29:61 into 10:30:01 (the pattern keeps
    # the clock fields in range): the day it read must be the day written.
    shaped = pc.match_substring_regex(text, LOCAL_PATTERN)
    written = pc.if_else(shaped, pc.utf8_slice_codeunits(text, 8, 10), "0")
    shaped = pc.and_kleene(shaped, pc.equal(pc.day(moments), pc.cast(written, pa.int64())))
    seconds = pc.fill_null(pc.cast(moments, pa.int64()), NO_SECONDS).to_numpy(
        zero_copy_only=False)
    plain = pc.fill_null(shaped, False).to_numpy(zero_copy_only=False) & \
        (seconds >= EARLIEST_SECONDS) & (seconds <= LATEST_SECONDS)
    local_ns = np.where(plain, seconds * 1_000_000_000, NAT)
    local = pd.Series(local_ns.view("datetime64[ns]"), index=values.index)
    rest = values[~plain & (values.str.len() > 0).to_numpy(bool)]
    aware = pd.Series(dtype="datetime64[ns, UTC]")
    if len(rest):
        shaped = rest.str.fullmatch(TIMESTAMP_PATTERN)
        has_offset = shaped & rest.str.contains(OFFSET_SUFFIX, regex=True)
        naive_text = rest[shaped & ~has_offset].str.replace("T", " ", regex=False)
        if len(naive_text):
            local.loc[naive_text.index] = _in_range(
                pd.to_datetime(naive_text, format="ISO8601", errors="coerce"))
        if has_offset.any():
            aware = _in_range(pd.to_datetime(rest[has_offset], format="ISO8601",
                                             errors="coerce", utc=True))
    parsed = local.dt.tz_localize(context.tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert(
        "UTC").astype("datetime64[ns, UTC]")
    if len(aware):
        parsed.loc[aware.index] = aware
    return parsed, parsed.notna()


def _in_range(moments: pd.Series) -> pd.Series:
    """`moments` in nanoseconds; those nanoseconds cannot hold become NaT."""
    naive = moments.dt.tz_localize(None) if moments.dt.tz is not None else moments
    inside = (naive >= EARLIEST_MOMENT) & (naive <= LATEST_MOMENT)
    kept = moments.where(inside)
    unit = "datetime64[ns, UTC]" if moments.dt.tz is not None else "datetime64[ns]"
    return kept.astype(unit)


def optional_timestamp(values: pd.Series, context: RuleContext) -> tuple[pd.Series, pd.Series]:
    parsed, ok = timestamp(values, context)
    return parsed, ok | (values.str.len() == 0)


DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def calendar_date(values: pd.Series, _: RuleContext) -> tuple[pd.Series, pd.Series]:
    """`YYYY-MM-DD` -> a date (datetime64, midnight); anything else, 2026-02-30 included, breaks
    the rule."""
    text = arrow_strings(values)
    moments = pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=True)
    shaped = pc.match_substring_regex(text, DATE_PATTERN)
    # strptime rolls 2026-02-30 over into March: the day it read must be the day written.
    day_written = pc.if_else(shaped, pc.utf8_slice_codeunits(text, 8, 10), "0")
    ok = pc.fill_null(pc.and_kleene(shaped, pc.equal(pc.day(moments), pc.cast(
        day_written, pa.int64()))), False).to_numpy(zero_copy_only=False)
    seconds = pc.fill_null(pc.cast(moments, pa.int64()), 0).to_numpy(zero_copy_only=False)
    ok = ok & (seconds >= EARLIEST_SECONDS) & (seconds <= LATEST_SECONDS)
    dates = np.where(ok, seconds * 1_000_000_000, NAT).view("datetime64[ns]")
    return pd.Series(dates, index=values.index), pd.Series(ok, index=values.index)


def one_of(allowed: tuple[str, ...]):
    def parse(values: pd.Series, _: RuleContext) -> tuple[pd.Series, pd.Series]:
        upper = values.str.upper()
        return upper, upper.isin(allowed)
    return parse


def boolean(values: pd.Series, _: RuleContext) -> tuple[pd.Series, pd.Series]:
    lower = values.str.lower()
    return lower == "true", lower.isin(("true", "false"))


# --- file specifications ----------------------------------------------------------------------

@dataclass(frozen=True)
class FileSpec:
    name: str
    checks: tuple[Check, ...]
    key: tuple[str, ...]
    # Rules over several parsed columns (or a column and the business date), after the row rules.
    cross_checks: tuple[Callable[[pd.DataFrame, RuleContext], tuple[pd.Series, str, str]],
                        ...] = ()

    @property
    def columns(self) -> list[str]:
        return [check.column for check in self.checks]

    @property
    def cuttable(self) -> frozenset[str]:
        """Free-text and code columns: an over-long value is cut, never a reason to drop a row."""
        return frozenset(check.column for check in self.checks if check.parse in (free_text, code))


def _binding_unbound_at_matches_status(frame: pd.DataFrame,
                                       _: "RuleContext") -> tuple[pd.Series, str, str]:
    active = frame["status"] == "ACTIVE"
    has_unbound = frame["unbound_at"].notna()
    broken = (active & has_unbound) | (~active & ~has_unbound)
    return broken, "unbound_at", "unbound_at must be empty while ACTIVE and set otherwise"


def _due_date_not_after_business_date(frame: pd.DataFrame, context: RuleContext
                                      ) -> tuple[pd.Series, str, str]:
    """CONTRACT 2.1: an installment due on D, or an overdue one collected again on D."""
    after = frame["due_date"] > pd.Timestamp(context.business_date)
    return after, "due_date", (f"due_date is after the business date "
                               f"{context.business_date.isoformat()}: not collectible yet")


INSTALLMENTS = FileSpec(
    "installments.csv",
    (
        Check("loan_id", "loan_id is empty", non_empty),
        Check("installment_no", "installment_no must be an integer >= 1", positive_integer),
        Check("borrower_id", "borrower_id is empty", non_empty),
        Check("due_date", "due_date must be a date YYYY-MM-DD", calendar_date),
        Check("amount_due", "amount_due must be a positive amount with at most 2 decimals",
              amount_fen, amount_reason),
        Check("currency", "currency must be CNY", one_of(("CNY",))),
    ),
    key=("loan_id", "installment_no"),
    cross_checks=(_due_date_not_after_business_date,),
)

BINDINGS = FileSpec(
    "bindings.csv",
    (
        Check("binding_id", "binding_id is empty", non_empty),
        Check("loan_id", "loan_id is empty", non_empty),
        Check("account_token", "account_token is empty", non_empty),
        Check("card_no_masked", "", free_text),
        Check("bank_code", "", code),
        Check("status", "status must be ACTIVE, UNBOUND, REVOKED or EXPIRED",
              one_of(BINDING_STATUSES)),
        Check("bound_at", "bound_at must be a timestamp", timestamp),
        Check("unbound_at", "unbound_at must be a timestamp or empty", optional_timestamp),
    ),
    key=("binding_id",),
    cross_checks=(_binding_unbound_at_matches_status,),
)

INSTRUCTIONS = FileSpec(
    "instructions.csv",
    (
        Check("instruction_id", "instruction_id is empty", non_empty),
        Check("loan_id", "loan_id is empty", non_empty),
        Check("installment_no", "installment_no must be an integer >= 1", positive_integer),
        Check("gateway", "gateway is empty", non_empty_code),
        Check("amount", "amount must be a positive amount with at most 2 decimals", amount_fen,
              amount_reason),
        Check("created_at", "created_at must be a timestamp", timestamp),
        Check("confirm_required", "confirm_required must be true or false", boolean),
        Check("confirm_status",
              "confirm_status must be CONFIRMED, PENDING, EXPIRED, FAILED or NOT_REQUIRED",
              one_of(CONFIRM_STATUSES)),
        Check("sent_at", "sent_at must be a timestamp or empty", optional_timestamp),
    ),
    key=("instruction_id",),
)

SETTLEMENT = FileSpec(
    "settlement",
    (
        Check("gateway_txn_id", "gateway_txn_id is empty", non_empty),
        Check("instruction_id", "instruction_id is empty", non_empty),
        Check("amount", "amount must be a positive amount with at most 2 decimals", amount_fen,
              amount_reason),
        Check("status", "status must be SUCCESS or FAILED", one_of(SETTLEMENT_STATUSES)),
        Check("response_code", "", code),
        Check("response_msg", "", free_text),
        Check("txn_time", "txn_time must be a timestamp", timestamp),
    ),
    key=("gateway_txn_id",),
)

INCIDENTS = FileSpec(
    "gateway_incidents.csv",
    (
        Check("gateway", "gateway is empty", non_empty_code),
        Check("started_at", "started_at must be a timestamp", timestamp),
        Check("ended_at", "ended_at must be a timestamp", timestamp),
        Check("description", "", free_text),
    ),
    key=(),
)
