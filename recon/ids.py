"""The day's ids as integers, and the array helpers the pure modules share.

Ids stay strings in every output, but joining, sorting and grouping millions of strings is slow.
Each id space is dictionary-encoded once (encode_ids); classify, outages, diff, the retry plan and
the watchlist then work on integer positions, and turn them back into text once, at the end
(gather, Vocabulary).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recon.frames import arrow_strings, chunks_of, dictionary_codes

NO_ROW = -1  # a position meaning "no such row"


# --- integer codes ------------------------------------------------------------------------------

def shared_codes(*columns: pd.Series) -> tuple[list[np.ndarray], pa.Array]:
    """Integer codes of `columns` over one shared dictionary (first appearance order)."""
    arrays = [arrow_strings(column) for column in columns]
    chunks = [chunk for array in arrays for chunk in chunks_of(array)]
    indices, dictionary = dictionary_codes(pa.chunked_array(chunks, type=pa.large_string()))
    bounds = np.cumsum([0] + [len(column) for column in columns])
    return [indices[bounds[i]:bounds[i + 1]] for i in range(len(columns))], dictionary


def installment_keys(loan_codes: np.ndarray, installment_no: pd.Series) -> np.ndarray:
    return (loan_codes << 32) | installment_no.to_numpy(np.int64)


def latest_per_group(groups: np.ndarray, times: np.ndarray, tie_ids: pd.Series) -> np.ndarray:
    """Row positions, ascending, of the last row of each group by `times`; ties go to the
    greatest id (compared as text).

    `groups` < 0 are ignored. No sort: each group's latest time is found by one scatter-max, and
    only rows tied at their group's latest time compare their ids.
    """
    rows = np.flatnonzero(groups >= 0)
    if rows.size == 0:
        return rows
    group, time = groups[rows], times[rows]
    latest = np.full(int(group.max()) + 1, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(latest, group, time)
    at_latest = rows[time == latest[group]]
    shared = np.bincount(groups[at_latest], minlength=latest.size)[groups[at_latest]] > 1
    if not shared.any():
        return at_latest
    tied = at_latest[shared]
    candidates = pd.DataFrame({"group": groups[tied], "id": tie_ids.iloc[tied].to_numpy(),
                               "row": tied}).sort_values(["group", "id"])
    winners = candidates.drop_duplicates("group", keep="last")["row"].to_numpy()
    return np.sort(np.concatenate([at_latest[~shared], winners]))


@dataclass
class IdCodes:
    """The day's ids as integers (shared_codes), encoded once for classify and outages."""

    loan_of_installment: np.ndarray
    loan_of_instruction: np.ndarray
    loan_of_binding: np.ndarray  # NO_ROW for loans with nothing due or instructed on D
    instruction_code: np.ndarray  # per instruction row ...
    settlement_instruction_code: np.ndarray  # ... and per settlement row, over one dictionary
    instruction_ids: int  # the size of that dictionary
    # Every binding row's loan code, loans of other days included (the watchlist lists them),
    # and the loan ids the codes index.
    loan_of_every_binding: np.ndarray
    loan_ids: pa.Array


def encode_ids(installments: pd.DataFrame, instructions: pd.DataFrame, bindings: pd.DataFrame,
               settlements: pd.DataFrame, executor=None) -> IdCodes:
    """Encode loan ids and instruction ids; with an `executor`, the two side by side (Arrow's
    hashing releases the GIL)."""
    def loans():
        return shared_codes(installments["loan_id"], instructions["loan_id"],
                            bindings["loan_id"])

    loan_job = executor.submit(loans) if executor is not None else None
    instruction_code, settlement_code, instruction_ids = encode_instruction_ids(instructions,
                                                                                settlements)
    (of_installment, of_instruction, of_binding), loan_ids = \
        loan_job.result() if loan_job else loans()
    # Bindings of loans with nothing due or instructed on D are never consulted. Codes follow
    # first appearance, so those loans' codes are the ones past the installments' and
    # instructions' own.
    loans_of_day = max(int(of_installment.max(initial=-1)),
                       int(of_instruction.max(initial=-1))) + 1
    return IdCodes(of_installment, of_instruction,
                   np.where(of_binding < loans_of_day, of_binding, NO_ROW),
                   instruction_code, settlement_code, instruction_ids, of_binding, loan_ids)


def encode_instruction_ids(instructions: pd.DataFrame,
                           settlements: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, int]:
    """Codes of instructions' and settlement rows' instruction_id over one dictionary, and its
    size."""
    (instruction_code, settlement_code), dictionary = shared_codes(
        instructions["instruction_id"], settlements["instruction_id"])
    return instruction_code, settlement_code, len(dictionary)


# --- moments ------------------------------------------------------------------------------------

def day_start_utc(business_date: dt.date, tz: ZoneInfo) -> pd.Timestamp:
    return pd.Timestamp(dt.datetime.combine(business_date, dt.time(0), tzinfo=tz)).tz_convert("UTC")


def nanos(moments: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 nanoseconds; missing ones as the smallest int64 (sorts first)."""
    return moments.to_numpy("datetime64[ns]", na_value=np.datetime64("NaT")).view(np.int64)


# --- membership ---------------------------------------------------------------------------------

def isin(values: pd.Series, allowed) -> np.ndarray:
    """`values.isin(allowed)` through Arrow (pandas 3's string isin is slow on large inputs)."""
    value_set = pa.array(list(allowed) if isinstance(allowed, (set, frozenset)) else allowed,
                         type=pa.string())
    return pc.is_in(pa.array(values, type=pa.string()), value_set=value_set).to_numpy(
        zero_copy_only=False)


def arrived_rows(gateways: pd.Series, arrived_gateways: set[str]) -> np.ndarray:
    """Per row, whether its gateway's settlement file has arrived (`arrived_gateways` holds
    upper-cased gateway ids). Gateways are a handful of distinct values: those are upper-cased,
    not every row."""
    row_code, distinct = pd.factorize(gateways)
    arrived = isin(pd.Series(distinct, dtype="str").str.upper(), arrived_gateways)
    return np.append(arrived, False)[row_code]  # a missing gateway (code -1) has not arrived


# --- positions and labels -----------------------------------------------------------------------

def position_of(targets: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """An array of `size` holding positions[i] at targets[i] and NO_ROW elsewhere."""
    placed = np.full(size, NO_ROW, dtype=np.int64)
    placed[targets] = positions
    return placed


def gather(values: pd.Series, rows: np.ndarray, default: str = "", *,
           index: pd.Index | None = None) -> pd.Series:
    """`values` taken at positions `rows` as strings; a negative position gives `default`."""
    rows = np.asarray(rows, dtype=np.int64)
    if not len(rows):
        return pd.Series([], dtype="str", index=index)
    taken = arrow_strings(values).take(pa.array(rows, mask=rows < 0))
    gathered = pc.fill_null(taken, default).to_pandas()
    if index is not None:
        gathered.index = index
    return gathered


class Vocabulary:
    """A fixed set of labels as small integers: rules choose codes, `text` decodes them once."""

    def __init__(self, labels: list[str]) -> None:  # labels[0] is "": code 0, no label
        self.number = {label: code for code, label in enumerate(labels)}
        self._dictionary = pa.array(labels, type=pa.large_string())

    def of(self, values: pd.Series) -> np.ndarray:
        """Codes of `values`, each of which must be a label."""
        labels = arrow_strings(values)
        codes = pc.index_in(labels, value_set=self._dictionary)
        if codes.null_count:
            raise ValueError(f"not a known label: {pc.filter(labels, pc.is_null(codes))[0]}")
        return codes.to_numpy(zero_copy_only=False).astype(np.int64)

    def text(self, codes: np.ndarray, index: pd.Index) -> pd.Series:
        decoded = self._dictionary.take(pa.array(codes, type=pa.int64()))
        return pd.Series(decoded.to_pandas().array, index=index)
