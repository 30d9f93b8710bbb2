"""CONTRACT section 3: one status and one root cause per installment. Pure and vectorised.

Nothing here touches disk, clock or database: every function takes frames and returns frames, so
each rule can be tested with the smallest frame that shows it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recon.codes import CodeMap
from recon.contract import (
    ROOT_CAUSE_ZH,
    SUGGESTED_ACTION,
    RootCause,
    SettlementExceptionKind,
    Status,
)
from recon.frames import arrow_strings, dictionary_codes, yuan_text

KEY = ["loan_id", "installment_no"]
R = RootCause
NO_ROW = -1


@dataclass
class Decisions:
    outcomes: pd.DataFrame  # one row per installment: status, root_cause and the report fields
    # orphan_settlement, duplicate_debit and debit_without_installment rows
    settlement_exceptions: pd.DataFrame


def day_start_utc(business_date: dt.date, tz: ZoneInfo) -> pd.Timestamp:
    return pd.Timestamp(dt.datetime.combine(business_date, dt.time(0), tzinfo=tz)).tz_convert("UTC")


# --- integer codes ------------------------------------------------------------------------------
# Ids stay strings in every output, but joining, sorting and grouping millions of strings is slow.
# Each id space is dictionary-encoded once; the rules then work on integer positions.

def shared_codes(*columns: pd.Series) -> tuple[list[np.ndarray], pa.Array]:
    """Integer codes of `columns` over one shared dictionary (first appearance order)."""
    arrays = [arrow_strings(column) for column in columns]
    chunks = [chunk for array in arrays
              for chunk in (array.chunks if isinstance(array, pa.ChunkedArray) else [array])]
    indices, dictionary = dictionary_codes(pa.chunked_array(chunks, type=pa.large_string()))
    bounds = np.cumsum([0] + [len(column) for column in columns])
    return [indices[bounds[i]:bounds[i + 1]] for i in range(len(columns))], dictionary


def installment_keys(loan_codes: np.ndarray, installment_no: pd.Series) -> np.ndarray:
    return (loan_codes << 32) | installment_no.to_numpy(np.int64)


def nanos(moments: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 nanoseconds; missing ones as the smallest int64 (sorts first)."""
    return moments.to_numpy("datetime64[ns]", na_value=np.datetime64("NaT")).view(np.int64)


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


def arrived_rows(gateways: pd.Series, arrived_gateways: set[str]) -> np.ndarray:
    """Per row, whether its gateway's settlement file has arrived (`arrived_gateways` holds
    upper-cased gateway ids). Gateways are a handful of distinct values: those are upper-cased,
    not every row."""
    row_code, distinct = pd.factorize(gateways)
    arrived = isin(pd.Series(distinct, dtype="str").str.upper(), arrived_gateways)
    return np.append(arrived, False)[row_code]  # a missing gateway (code -1) has not arrived


def isin(values: pd.Series, allowed) -> np.ndarray:
    """`values.isin(allowed)` through Arrow (pandas 3's string isin is slow on large inputs)."""
    value_set = pa.array(list(allowed) if isinstance(allowed, (set, frozenset)) else allowed,
                         type=pa.string())
    return pc.is_in(pa.array(values, type=pa.string()), value_set=value_set).to_numpy(
        zero_copy_only=False)


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
    loan_of_every_binding: np.ndarray | None = None
    loan_ids: pa.Array | None = None


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


def classify(installments: pd.DataFrame, bindings: pd.DataFrame, instructions: pd.DataFrame,
             settlements: pd.DataFrame, incidents: pd.DataFrame, arrived_gateways: set[str],
             codes: CodeMap, business_date: dt.date, tz: ZoneInfo,
             ids: IdCodes | None = None) -> Decisions:
    """Decide every installment of `business_date` from validated inputs (`ids`: their
    encode_ids, if the caller has it already)."""
    n_installments, n_instructions = len(installments), len(instructions)
    if ids is None:
        ids = encode_ids(installments, instructions, bindings, settlements)
    loan_of_installment, loan_of_instruction = ids.loan_of_installment, ids.loan_of_instruction
    loan_of_binding = ids.loan_of_binding
    installment_index = pd.Index(installment_keys(loan_of_installment,
                                                  installments["installment_no"]))
    # Instruction -> row of its installment (NO_ROW when nothing of D is due for it).
    installment_of = installment_index.get_indexer(
        installment_keys(loan_of_instruction, instructions["installment_no"]))
    # Settlement row -> row of its instruction. instruction_id is unique among valid
    # instructions, so an id's code is the instruction's row when the code is below their count.
    instruction_codes, settlement_codes = ids.instruction_code, ids.settlement_instruction_code
    instruction_of = np.where(settlement_codes < n_instructions, settlement_codes, NO_ROW)
    instruction_row_of_code = np.full(max(n_instructions, 1), NO_ROW, dtype=np.int64)
    instruction_row_of_code[instruction_codes] = np.arange(n_instructions)
    instruction_of = np.where(instruction_of >= 0,
                              instruction_row_of_code[np.maximum(instruction_of, 0)], NO_ROW)

    is_success = (settlements["status"] == "SUCCESS").to_numpy(bool)
    debits = is_success & (instruction_of >= 0)
    exceptions = settlement_exceptions(settlements, is_success, instruction_of, installment_of,
                                       instructions, business_date)

    # settled: every SUCCESS amount of the installment's instructions (integer fen).
    debit_installment = installment_of[instruction_of[debits]]
    counted = debit_installment >= 0
    settled = np.zeros(n_installments, dtype=np.int64)
    np.add.at(settled, debit_installment[counted],
              settlements["amount"].to_numpy(np.int64)[debits][counted])

    succeeded = np.zeros(n_instructions, dtype=bool)
    succeeded[instruction_of[debits]] = True
    sent_ns = nanos(instructions["sent_at"])
    is_sent = instructions["sent_at"].notna().to_numpy() & (installment_of >= 0)
    attempts = np.bincount(installment_of[is_sent], minlength=n_installments)
    last_attempt_ns = np.full(n_installments, np.iinfo(np.int64).min)
    np.maximum.at(last_attempt_ns, installment_of[is_sent], sent_ns[is_sent])
    latest_sent = latest_per_group(np.where(is_sent, installment_of, NO_ROW), sent_ns,
                                   instructions["instruction_id"])

    # Rule 1: the deciding attempt and what its settlement says.
    deciding_rows = latest_per_group(np.where(is_sent & ~succeeded, installment_of, NO_ROW),
                                     sent_ns, instructions["instruction_id"])
    deciding = explain_deciding_attempts(instructions.iloc[deciding_rows], deciding_rows,
                                         settlements, instruction_of, incidents,
                                         arrived_gateways, codes, n_instructions)

    # Sent attempts without a known outcome, the deciding one or another (the retry plan never
    # debits again before they are known): their gateway's file has not arrived, or it has and
    # holds no row for them (outside an incident of the gateway).
    unsettled = is_sent & ~succeeded
    answered = np.zeros(n_instructions, dtype=bool)
    answered[instruction_of[instruction_of >= 0]] = True
    file_in = arrived_rows(instructions["gateway"], arrived_gateways) if n_instructions else \
        np.zeros(0, dtype=bool)
    awaiting_file = unsettled & ~file_in
    unanswered = unsettled & file_in & ~answered
    if unanswered.any() and len(incidents):
        rows = np.flatnonzero(unanswered)
        unanswered[rows] = incident_during(instructions["gateway"].iloc[rows],
                                           instructions["sent_at"].iloc[rows],
                                           incidents).isna().to_numpy()

    # Rule 2: instructions, none of them sent.
    has_instruction = np.zeros(n_installments, dtype=bool)
    has_instruction[installment_of[installment_of >= 0]] = True
    has_sent = attempts > 0
    unconfirmed_instruction = (instructions["confirm_required"].to_numpy(bool)
                               & (instructions["confirm_status"] != "CONFIRMED").to_numpy(bool)
                               & (installment_of >= 0))
    unconfirmed = np.zeros(n_installments, dtype=bool)
    unconfirmed[installment_of[unconfirmed_instruction]] = True
    created_ns = nanos(instructions["created_at"])
    newest_rows = latest_per_group(installment_of, created_ns, instructions["instruction_id"])
    unsent_only = has_instruction & ~has_sent
    rule2_rows = position_of(installment_of[newest_rows], newest_rows, n_installments)[unsent_only]
    bound_when_created = np.zeros(n_installments, dtype=bool)
    bound_when_created[unsent_only] = bound_at(
        loan_of_instruction[rule2_rows], created_ns[rule2_rows], loan_of_binding, bindings)

    # Rule 3: no instruction at all.
    no_instruction = ~has_instruction
    day_start = day_start_utc(business_date, tz)
    bound_at_day_start = np.zeros(n_installments, dtype=bool)
    bound_at_day_start[no_instruction] = bound_at(
        loan_of_installment[no_instruction],
        np.full(int(no_instruction.sum()), day_start.value, dtype=np.int64),
        loan_of_binding, bindings)

    # Causes and statuses are chosen as integer codes and turned into text once, at the end.
    has_deciding = np.zeros(n_installments, dtype=bool)
    deciding_at = installment_of[deciding_rows]
    has_deciding[deciding_at] = True
    deciding_cause = np.zeros(n_installments, dtype=np.int64)
    deciding_cause[deciding_at] = deciding["cause"].to_numpy(np.int64)
    cause = CAUSE_CODE.number
    root_cause = np.select(
        [has_deciding,
         unsent_only & unconfirmed,
         unsent_only & ~bound_when_created,
         unsent_only,
         no_instruction & ~bound_at_day_start,
         no_instruction],
        [deciding_cause,
         cause[R.INSTRUCTION_NOT_CONFIRMED],
         cause[R.CARD_UNBOUND],
         cause[R.NOT_INSTRUCTED],
         cause[R.CARD_UNBOUND],
         cause[R.NOT_INSTRUCTED]],
        default=cause[R.UNCLASSIFIED],
    )
    rule = np.select([has_deciding, unsent_only, no_instruction], [1, 2, 3], default=4)
    due = installments["amount_due"].to_numpy(np.int64)
    status_code = STATUS_CODE.number
    status = np.select(
        [settled > due, settled == due, root_cause == cause[R.SETTLEMENT_PENDING], settled > 0],
        [status_code[Status.OVERPAID], status_code[Status.PAID], status_code[Status.PENDING],
         status_code[Status.PARTIALLY_PAID]],
        default=status_code[Status.UNPAID],
    )
    in_full = (status == status_code[Status.PAID]) | (status == status_code[Status.OVERPAID])
    not_paid = status != status_code[Status.PAID]

    # Report fields: the deciding attempt's gateway, else the latest sent attempt's, else the
    # newest instruction's.
    newest_of = position_of(installment_of[newest_rows], newest_rows, n_installments)
    latest_sent_of = position_of(installment_of[latest_sent], latest_sent, n_installments)
    deciding_of = position_of(deciding_at, deciding_rows, n_installments)
    shown_instruction = np.where(deciding_of >= 0, deciding_of,
                                 np.where(latest_sent_of >= 0, latest_sent_of, newest_of))
    deciding_position = position_of(deciding_at, np.arange(len(deciding_rows)), n_installments)
    failed_row = np.full(n_installments, NO_ROW, dtype=np.int64)
    failed_row[deciding_at] = deciding["failed_row"].to_numpy(np.int64)
    card_row = np.full(n_installments, NO_ROW, dtype=np.int64)
    card_row[not_paid] = shown_binding(loan_of_installment[not_paid], loan_of_binding, bindings,
                                       day_start)
    index = installments.index
    columns = {name: installments[name] for name in KEY + ["borrower_id", "amount_due", "line"]}
    columns.update({
        "loan_code": loan_of_installment,
        "days_past_due": days_past_due(installments, business_date),
        "amount_settled": settled,
        "amount_outstanding": due - settled,
        "status": STATUS_CODE.text(status, index),
        "root_cause": CAUSE_CODE.text(np.where(in_full, 0, root_cause), index),
        "rule": rule,
        "attempts": attempts,
        "attempts_awaiting_file": np.bincount(installment_of[awaiting_file],
                                              minlength=n_installments),
        "attempts_unanswered": np.bincount(installment_of[unanswered], minlength=n_installments),
        "last_attempt_at": _moments(last_attempt_ns, has_sent, index),
        "gateway": gather(instructions["gateway"], shown_instruction, index=index),
        "deciding_gateway": gather(instructions["gateway"], deciding_of, index=index),
        **{column: gather(settlements[column], failed_row, index=index)
           for column in ("response_code", "response_msg")},
        "incident": gather(deciding["incident"], deciding_position, index=index),
        "deciding_pending": np.where(
            deciding_position >= 0,
            deciding["pending_row"].to_numpy(bool)[np.maximum(deciding_position, 0)]
            if len(deciding) else False, False),
        "deciding_has_row": np.where(
            deciding_position >= 0,
            deciding["has_failed_row"].to_numpy(bool)[np.maximum(deciding_position, 0)]
            if len(deciding) else False, False),
        "deciding_sent_at": _moments(
            np.where(deciding_of >= 0, sent_ns[np.maximum(deciding_of, 0)], 0) if n_instructions
            else np.zeros(n_installments, dtype=np.int64), deciding_of >= 0, index),
        "latest_created_at": _moments(
            np.where(newest_of >= 0, created_ns[np.maximum(newest_of, 0)], 0) if n_instructions
            else np.zeros(n_installments, dtype=np.int64), newest_of >= 0, index),
        "latest_instruction_id": gather(instructions["instruction_id"], newest_of, index=index),
        "card_no_masked": gather(bindings["card_no_masked"], card_row, index=index),
    })
    frame = pd.DataFrame(columns, index=index)
    return Decisions(frame, exceptions)


def days_past_due(installments: pd.DataFrame, business_date: dt.date) -> np.ndarray:
    """CONTRACT 2.1: D - due_date in days, 0 for an installment due on D (and for a frame
    without due dates)."""
    if "due_date" not in installments:
        return np.zeros(len(installments), dtype=np.int64)
    due = pd.to_datetime(installments["due_date"]).to_numpy("datetime64[D]")
    return (np.datetime64(business_date, "D") - due).astype(np.int64)


def _moments(ns: np.ndarray, present: np.ndarray, index: pd.Index) -> pd.Series:
    values = np.where(present, ns, np.iinfo(np.int64).min).view("datetime64[ns]")
    return pd.Series(pd.to_datetime(values).tz_localize("UTC"), index=index)


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


CAUSE_CODE = Vocabulary([""] + [cause.value for cause in RootCause])
STATUS_CODE = Vocabulary([""] + [status.value for status in Status])


def position_of(targets: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """An array of `size` holding positions[i] at targets[i] and NO_ROW elsewhere."""
    placed = np.full(size, NO_ROW, dtype=np.int64)
    placed[targets] = positions
    return placed


# --- settlement side --------------------------------------------------------------------------

def settlement_exceptions(settlements: pd.DataFrame, is_success: np.ndarray,
                          instruction_of: np.ndarray, installment_of: np.ndarray,
                          instructions: pd.DataFrame, business_date: dt.date) -> pd.DataFrame:
    """CONTRACT 4.2. Every SUCCESS row is counted in an installment's `settled` or listed here:
    orphans (no instruction), debits of an instruction whose installment is not among D's
    (every such row: none of their money is counted), and, among counted debits, every SUCCESS
    row after an instruction's first by txn_time (counted and listed, README)."""
    day = business_date.isoformat()
    orphans = settlements[is_success & (instruction_of < 0)]
    debits = is_success & (instruction_of >= 0)
    installment_of_row = np.where(debits, installment_of[np.maximum(instruction_of, 0)]
                                  if len(installment_of) else NO_ROW, NO_ROW)
    uncounted = debits & (installment_of_row < 0)
    counted = debits & ~uncounted
    per_instruction = np.bincount(instruction_of[debits],
                                  minlength=int(instruction_of.max(initial=0)) + 1)
    repeated = counted & (per_instruction[np.maximum(instruction_of, 0)] >= 2)
    candidates = settlements[repeated].sort_values(["instruction_id", "txn_time",
                                                    "gateway_txn_id"])
    order = candidates.groupby("instruction_id", sort=False).cumcount()
    extra = candidates[order >= 1]
    first = candidates[order == 0].set_index("instruction_id")["gateway_txn_id"]
    orphan_rows = pd.DataFrame({
        "gateway": orphans["gateway"],
        "gateway_txn_id": orphans["gateway_txn_id"],
        "instruction_id": orphans["instruction_id"],
        "amount": orphans["amount"],
        "kind": SettlementExceptionKind.ORPHAN_SETTLEMENT.value,
        "detail": "SUCCESS row matches no instruction of " + day
                  + " (" + orphans["file"] + " line " + orphans["line"].astype(str) + ")",
    })
    duplicate_rows = pd.DataFrame({
        "gateway": extra["gateway"],
        "gateway_txn_id": extra["gateway_txn_id"],
        "instruction_id": extra["instruction_id"],
        "amount": extra["amount"],
        "kind": SettlementExceptionKind.DUPLICATE_DEBIT.value,
        "detail": "instruction already debited by gateway_txn_id "
                  + extra["instruction_id"].map(first).astype(str)
                  + "; extra SUCCESS row (" + extra["file"] + " line "
                  + extra["line"].astype(str) + ")",
    })
    stray = settlements[uncounted]
    stray_instruction = instruction_of[uncounted]
    loans = gather(instructions["loan_id"], stray_instruction, index=stray.index)
    numbers = gather(instructions["installment_no"].astype("str"), stray_instruction,
                     index=stray.index)
    rows_of_instruction = pd.Series(per_instruction[stray_instruction], index=stray.index)
    several = pd.Series("", index=stray.index, dtype="str").where(
        rows_of_instruction < 2, "; the instruction has " + rows_of_instruction.astype(str)
        + " SUCCESS rows, each listed")
    stray_rows = pd.DataFrame({
        "gateway": stray["gateway"],
        "gateway_txn_id": stray["gateway_txn_id"],
        "instruction_id": stray["instruction_id"],
        "amount": stray["amount"],
        "kind": SettlementExceptionKind.DEBIT_WITHOUT_INSTALLMENT.value,
        "detail": "money debited for installment " + loans + "/" + numbers
                  + ", which is not among the valid installments of " + day
                  + ": not counted as settled (" + stray["file"] + " line "
                  + stray["line"].astype(str) + ")" + several,
    })
    exceptions = pd.concat([orphan_rows, duplicate_rows, stray_rows], ignore_index=True)
    exceptions.insert(0, "business_date", business_date.isoformat())
    exceptions["amount"] = exceptions["amount"].astype("int64")
    return exceptions


# --- rule 1 -----------------------------------------------------------------------------------

def explain_deciding_attempts(deciding: pd.DataFrame, deciding_rows: np.ndarray,
                              settlements: pd.DataFrame, instruction_of: np.ndarray,
                              incidents: pd.DataFrame, arrived_gateways: set[str],
                              codes: CodeMap, n_instructions: int) -> pd.DataFrame:
    """Rule 1's branches: pending file or PENDING row, FAILED row's code, incident window, no
    record.

    One row per deciding attempt: `cause` (a CAUSE_CODE), `failed_row` (the settlement row whose
    code and message it shows, or NO_ROW), `has_failed_row`, `pending_row` (that row is PENDING:
    the gateway has no final result yet) and `incident` (its description).
    """
    status = settlements["status"]
    # The attempt's latest row (by txn_time) among FAILED and PENDING ones decides: a PENDING
    # row (native formats, CONTRACT 2.4.1) after a FAILED one means the retry is still in flight.
    is_answer = ((status == "FAILED") | (status == "PENDING")).to_numpy(bool) & \
        (instruction_of >= 0)
    failed_rows = latest_per_group(np.where(is_answer, instruction_of, NO_ROW),
                                   nanos(settlements["txn_time"]), settlements["gateway_txn_id"])
    failed_row_of = np.full(max(n_instructions, 1), NO_ROW, dtype=np.int64)
    failed_row_of[instruction_of[failed_rows]] = failed_rows
    row = failed_row_of[deciding_rows] if len(deciding_rows) else np.zeros(0, dtype=np.int64)
    has_failed_row = row >= 0
    chosen = settlements.iloc[row[has_failed_row]]

    arrived = arrived_rows(deciding["gateway"], arrived_gateways)
    cause = CAUSE_CODE.number
    mapped = np.full(len(deciding), cause[R.UNCLASSIFIED], dtype=np.int64)
    mapped[has_failed_row] = CAUSE_CODE.of(codes.causes_of(chosen["scheme"],
                                                           chosen["response_code"]))
    pending_row = np.zeros(len(deciding), dtype=bool)
    pending_row[has_failed_row] = (chosen["status"] == "PENDING").to_numpy(bool)
    incident = incident_during(deciding["gateway"], deciding["sent_at"], incidents)
    # A row from an arrived file of another gateway does not speak for a file still missing.
    speaks = has_failed_row & arrived
    return pd.DataFrame({
        "cause": np.select(
            [~arrived, pending_row, has_failed_row, incident.notna().to_numpy()],
            [cause[R.SETTLEMENT_PENDING], cause[R.SETTLEMENT_PENDING], mapped,
             cause[R.GATEWAY_OUTAGE]],
            default=cause[R.NO_SETTLEMENT_RECORD]),
        "failed_row": np.where(speaks, row, NO_ROW),  # the FAILED/PENDING row it shows
        "has_failed_row": speaks,
        "pending_row": speaks & pending_row,
        "incident": incident.fillna("").to_numpy(object),
    }, index=np.arange(len(deciding)))


def incident_during(gateways: pd.Series, sent_at: pd.Series, incidents: pd.DataFrame) -> pd.Series:
    """Per attempt, a description of the first incident of its gateway covering `sent_at`."""
    found = pd.Series(pd.NA, index=range(len(gateways)), dtype="str")
    if incidents.empty or gateways.empty:
        return found
    gateway_key = gateways.str.upper().to_numpy(object)
    sent = nanos(sent_at)
    # Incidents are a handful of rows: loop over them, each test vectorised over the attempts.
    for incident in incidents.sort_values("started_at").itertuples(index=False):
        covered = ((gateway_key == str(incident.gateway).upper())
                   & (sent >= incident.started_at.value) & (sent <= incident.ended_at.value)
                   & found.isna().to_numpy())
        if covered.any():
            found[covered] = incident.description or "incident"
    return found


# --- rules 2 and 3 ----------------------------------------------------------------------------

def active_at(bindings: pd.DataFrame, rows: np.ndarray, moments_ns) -> np.ndarray:
    """CONTRACT 2.2: are binding rows `rows` active at `moments_ns` (one moment, or one per row)?

    Active at t: bound_at <= t and (unbound_at empty or unbound_at > t).
    """
    bound = nanos(bindings["bound_at"])[rows]
    still_open = bindings["unbound_at"].isna().to_numpy()[rows]
    return (bound <= moments_ns) & (still_open | (nanos(bindings["unbound_at"])[rows] > moments_ns))


def bound_at(loans: np.ndarray, moments_ns: np.ndarray, loan_of_binding: np.ndarray,
             bindings: pd.DataFrame) -> np.ndarray:
    """For each (loan code, moment): is a binding of the loan active then?"""
    if loans.size == 0 or len(bindings) == 0:
        return np.zeros(loans.size, dtype=bool)
    probe = pd.DataFrame({"loan": loans, "t": moments_ns, "row": np.arange(loans.size)})
    rows = np.flatnonzero(np.isin(loan_of_binding, loans))
    history = pd.DataFrame({"loan": loan_of_binding[rows], "binding": rows})
    joined = probe.merge(history, on="loan", how="inner")
    active = active_at(bindings, joined["binding"].to_numpy(), joined["t"].to_numpy())
    result = np.zeros(loans.size, dtype=bool)
    result[joined["row"].to_numpy()[active]] = True
    return result


# --- report fields ----------------------------------------------------------------------------

def fmt_yuan(fen: pd.Series) -> pd.Series:
    """Integer fen -> `1234.50` (exact; negative amounts keep their sign)."""
    text = yuan_text(fen.to_numpy(np.int64)).to_pandas()
    text.index = fen.index
    return text


def fmt_local(moments: pd.Series, tz: ZoneInfo) -> pd.Series:
    """UTC timestamps -> local `YYYY-MM-DD HH:MM:SS`; missing ones -> empty string."""
    if moments.empty:
        return pd.Series([], index=moments.index, dtype="str")
    local = pd.to_datetime(moments, utc=True).dt.tz_convert(tz).dt.tz_localize(None)
    # Arrow's cast to text is several times faster than strftime.
    seconds = pa.array(local).cast(pa.timestamp("s"), safe=False)
    text = pc.fill_null(pc.cast(seconds, pa.string()), "").to_pandas()
    text.index = moments.index
    return text


def shown_binding(loans: np.ndarray, loan_of_binding: np.ndarray, bindings: pd.DataFrame,
                  day_start: pd.Timestamp) -> np.ndarray:
    """Per loan, the binding row whose card ops are shown: the one active at the start of D, else
    the latest bound (of two bound at once, the later in the file); NO_ROW for a loan without
    bindings."""
    if loans.size == 0 or len(bindings) == 0:
        return np.full(loans.size, NO_ROW, dtype=np.int64)
    rows = np.flatnonzero(np.isin(loan_of_binding, loans))
    history = pd.DataFrame({
        "loan": loan_of_binding[rows],
        "row": rows,
        "bound": nanos(bindings["bound_at"])[rows],
        "active": active_at(bindings, rows, day_start.value),
    })
    # Bound at the same moment: the later row of the file wins, whatever the sort algorithm.
    chosen = history.sort_values(["loan", "active", "bound", "row"]).drop_duplicates(
        "loan", keep="last").set_index("loan")["row"]
    return chosen.reindex(loans).fillna(NO_ROW).to_numpy(np.int64)


def exception_report(outcomes: pd.DataFrame, business_date: dt.date, tz: ZoneInfo) -> pd.DataFrame:
    """Rows of exceptions.csv (CONTRACT 4.1) for every installment not `paid`, as text."""
    rows = outcomes[outcomes["status"] != Status.PAID.value]
    rows = rows.sort_values(["status", "root_cause", "loan_id", "installment_no"], kind="stable")
    cause = rows["root_cause"]
    due, settled = fmt_yuan(rows["amount_due"]), fmt_yuan(rows["amount_settled"])
    last_attempt_at = fmt_local(rows["last_attempt_at"], tz)
    report = pd.DataFrame({
        "business_date": business_date.isoformat(),
        "loan_id": rows["loan_id"],
        "installment_no": rows["installment_no"].astype(str),
        "borrower_id": rows["borrower_id"],
        "status": rows["status"],
        "root_cause": cause,
        "root_cause_zh": cause.map({str(k): v for k, v in ROOT_CAUSE_ZH.items()}).fillna(""),
        "amount_due": due,
        "amount_settled": settled,
        "amount_outstanding": fmt_yuan(rows["amount_outstanding"]),
        "gateway": rows["gateway"],
        "response_code": rows["response_code"],
        "response_msg": rows["response_msg"],
        "attempts": rows["attempts"].astype(str),
        "last_attempt_at": last_attempt_at,
        "card_no_masked": rows["card_no_masked"],
        "suggested_action": cause.map({str(k): v for k, v in SUGGESTED_ACTION.items()}).fillna(""),
        "evidence": evidence(rows, due, settled, business_date, tz),
        "days_past_due": rows["days_past_due"].astype(str),
    })
    return report.reset_index(drop=True)


def evidence(rows: pd.DataFrame, due: pd.Series, settled: pd.Series, business_date: dt.date,
             tz: ZoneInfo) -> pd.Series:
    """One plain sentence per row saying why it got its status and root cause."""
    day = business_date.isoformat()
    cause, rule = rows["root_cause"], rows["rule"].to_numpy()

    def attempt(part: pd.DataFrame) -> pd.Series:
        # "last attempt" unless a later attempt succeeded and the deciding one is an earlier one.
        which = pd.Series("last attempt ", index=part.index, dtype="str").where(
            part["deciding_sent_at"] >= part["last_attempt_at"], "latest unsuccessful attempt ")
        return which + fmt_local(part["deciding_sent_at"], tz) + " via " + part["deciding_gateway"]

    def instruction(part: pd.DataFrame) -> pd.Series:
        return ("instruction " + part["latest_instruction_id"] + " created "
                + fmt_local(part["latest_created_at"], tz))

    choices = [
        (rows["status"] == Status.OVERPAID.value,
         lambda part: "settled " + settled[part.index] + " against " + due[part.index]
         + " due: more was debited than owed"),
        ((cause == R.SETTLEMENT_PENDING.value) & rows["deciding_pending"],
         lambda part: attempt(part) + " is PENDING in the settlement file of "
         + part["deciding_gateway"] + " (no final result yet)"),
        (cause == R.SETTLEMENT_PENDING.value,
         lambda part: attempt(part) + " awaits the settlement file of " + part["deciding_gateway"]
         + ", which has not arrived"),
        (rows["deciding_has_row"] & (rule == 1),
         lambda part: attempt(part) + " failed "
         + part["response_code"].where(part["response_code"].str.len() > 0, "(no code)")),
        (cause == R.GATEWAY_OUTAGE.value,
         lambda part: attempt(part) + " has no settlement record and was sent during incident: "
         + part["incident"]),
        (cause == R.NO_SETTLEMENT_RECORD.value,
         lambda part: attempt(part) + " has no row in the arrived settlement file"),
        (cause == R.INSTRUCTION_NOT_CONFIRMED.value,
         lambda part: "instruction " + part["latest_instruction_id"]
         + " needs the borrower's confirmation and was never sent"),
        ((cause == R.CARD_UNBOUND.value) & (rule == 2),
         lambda part: instruction(part) + " was never sent and no card binding was active then"),
        ((cause == R.NOT_INSTRUCTED.value) & (rule == 2),
         lambda part: instruction(part) + " was never sent although a card binding was active"),
        ((cause == R.CARD_UNBOUND.value) & (rule == 3),
         lambda part: pd.Series(f"no debit instruction and no card binding active at {day} "
                                "00:00:00", index=part.index, dtype="str")),
        ((cause == R.NOT_INSTRUCTED.value) & (rule == 3),
         lambda part: pd.Series(f"no debit instruction although a card binding was active at "
                                f"{day} 00:00:00", index=part.index, dtype="str")),
        (rule == 4,
         lambda part: part["attempts"].astype(str) + " sent attempt(s) all succeeded but only "
         + settled[part.index] + " of " + due[part.index] + " was settled"),
    ]
    sentences = pd.Series("", index=rows.index, dtype="str")
    filled = pd.Series(False, index=rows.index)
    for condition, sentence in choices:
        take = condition & ~filled
        if take.any():
            sentences[take] = sentence(rows[take])
        filled |= take
    partial = (rows["status"] == Status.PARTIALLY_PAID.value) & (rule != 4)
    if partial.any():
        sentences[partial] = sentences[partial] + "; " + settled[partial] + " of " + \
            due[partial] + " settled"
    return sentences
