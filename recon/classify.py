"""CONTRACT section 3: one status and one root cause per installment. Pure and vectorised.

Nothing here touches disk, clock or database: every function takes frames and returns frames, so
each rule can be tested with the smallest frame that shows it. classify links the day's rows,
runs the rules of recon.rules in the contract's order and gathers what the reports show of each
installment; the settlement side (CONTRACT 4.2) lists the SUCCESS rows no installment counts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from recon.codes import CodeMap
from recon.contract import RootCause, SettlementExceptionKind, Status
from recon.ids import (NO_ROW, IdCodes, arrived_rows, day_start_utc, encode_ids, gather,
                       installment_keys, latest_per_group, nanos, position_of)
from recon.rules import (CAUSE_CODE, STATUS_CODE, DecidingAttempts, Links, Rule, Verdict,
                         active_at, anything_else, deciding_attempt, in_full, incident_during,
                         latest_answers, no_instruction, settled_of, status_of,
                         unsent_instructions)

KEY = ["loan_id", "installment_no"]


@dataclass
class Decisions:
    outcomes: pd.DataFrame  # one row per installment: status, root_cause and the report fields
    # orphan_settlement, duplicate_debit and debit_without_installment rows
    settlement_exceptions: pd.DataFrame


def classify(installments: pd.DataFrame, bindings: pd.DataFrame, instructions: pd.DataFrame,
             settlements: pd.DataFrame, incidents: pd.DataFrame, arrived_gateways: set[str],
             codes: CodeMap, business_date: dt.date, tz: ZoneInfo,
             ids: IdCodes | None = None) -> Decisions:
    """Decide every installment of `business_date` from validated inputs (`ids`: their
    encode_ids, if the caller has it already)."""
    if ids is None:
        ids = encode_ids(installments, instructions, bindings, settlements)
    links = link(installments, instructions, settlements, ids)
    day_start = day_start_utc(business_date, tz)
    deciding = deciding_attempt(instructions, settlements, links, incidents, arrived_gateways,
                                codes)
    # CONTRACT 3: the first rule that applies decides the root cause.
    rule, root_cause = first_that_applies({
        Rule.DECIDING_ATTEMPT: deciding,
        Rule.UNSENT_INSTRUCTIONS: unsent_instructions(instructions, bindings, links, ids),
        Rule.NO_INSTRUCTION: no_instruction(bindings, links, ids, day_start),
        Rule.ANYTHING_ELSE: anything_else(len(installments)),
    })
    settled = settled_of(settlements, links)
    due = installments["amount_due"].to_numpy(np.int64)
    status = status_of(settled, due, root_cause)
    index = installments.index
    columns = {name: installments[name] for name in KEY + ["borrower_id", "amount_due", "line"]}
    columns.update({
        "loan_code": ids.loan_of_installment,
        "days_past_due": days_past_due(installments, business_date),
        "amount_settled": settled,
        "amount_outstanding": due - settled,
        "status": STATUS_CODE.text(status, index),
        "root_cause": CAUSE_CODE.text(np.where(in_full(status), 0, root_cause), index),
        "rule": rule,
        **attempt_columns(instructions, settlements, links, incidents, arrived_gateways, index),
        **shown_attempt_columns(instructions, settlements, links, deciding, index),
        "card_no_masked": shown_card(bindings, ids, status, day_start, index),
    })
    return Decisions(pd.DataFrame(columns, index=index),
                     settlement_exceptions(settlements, links, instructions, business_date))


def first_that_applies(verdicts: dict[Rule, Verdict]) -> tuple[np.ndarray, np.ndarray]:
    """Per installment, the first rule of `verdicts` (in their order) that applies, and the root
    cause (a CAUSE_CODE) it gives."""
    applies = [verdict.applies for verdict in verdicts.values()]
    return (np.select(applies, list(verdicts), default=Rule.ANYTHING_ELSE),
            np.select(applies, [verdict.cause for verdict in verdicts.values()],
                      default=CAUSE_CODE.number[RootCause.UNCLASSIFIED]))


def link(installments: pd.DataFrame, instructions: pd.DataFrame, settlements: pd.DataFrame,
         ids: IdCodes) -> Links:
    """Tie the day's rows together by position: each instruction to its installment, each
    settlement row to its instruction, and what the rules count per installment."""
    n_installments, n_instructions = len(installments), len(instructions)
    installment_index = pd.Index(installment_keys(ids.loan_of_installment,
                                                  installments["installment_no"]))
    # Instruction -> row of its installment (NO_ROW when nothing of D is due for it).
    installment_of = installment_index.get_indexer(
        installment_keys(ids.loan_of_instruction, instructions["installment_no"]))
    # Settlement row -> row of its instruction. instruction_id is unique among valid
    # instructions, so an id's code is the instruction's row when the code is below their count.
    instruction_codes, settlement_codes = ids.instruction_code, ids.settlement_instruction_code
    instruction_of = np.where(settlement_codes < n_instructions, settlement_codes, NO_ROW)
    instruction_row_of_code = np.full(max(n_instructions, 1), NO_ROW, dtype=np.int64)
    instruction_row_of_code[instruction_codes] = np.arange(n_instructions)
    instruction_of = np.where(instruction_of >= 0,
                              instruction_row_of_code[np.maximum(instruction_of, 0)], NO_ROW)

    is_success = (settlements["status"] == "SUCCESS").to_numpy(bool)
    succeeded = np.zeros(n_instructions, dtype=bool)
    succeeded[instruction_of[is_success & (instruction_of >= 0)]] = True
    sent_ns, created_ns = nanos(instructions["sent_at"]), nanos(instructions["created_at"])
    is_sent = instructions["sent_at"].notna().to_numpy() & (installment_of >= 0)
    has_instruction = np.zeros(n_installments, dtype=bool)
    has_instruction[installment_of[installment_of >= 0]] = True
    newest_rows = latest_per_group(installment_of, created_ns, instructions["instruction_id"])
    return Links(installment_of=installment_of, instruction_of=instruction_of,
                 is_success=is_success, succeeded=succeeded, is_sent=is_sent, sent_ns=sent_ns,
                 created_ns=created_ns,
                 attempts=np.bincount(installment_of[is_sent], minlength=n_installments),
                 has_instruction=has_instruction,
                 newest_of=position_of(installment_of[newest_rows], newest_rows, n_installments),
                 answer_of=latest_answers(settlements, instruction_of, n_instructions))


# --- report fields --------------------------------------------------------------------------------

def attempt_columns(instructions: pd.DataFrame, settlements: pd.DataFrame, links: Links,
                    incidents: pd.DataFrame,
                    arrived_gateways: set[str], index: pd.Index) -> dict[str, object]:
    """Per installment: its sent attempts, those without a known outcome (the retry plan never
    debits again before they are known), and the moment of the latest."""
    n_installments = len(index)
    installment_of, is_sent = links.installment_of, links.is_sent
    awaiting_file, unanswered, pending = unknown_outcomes(instructions, settlements, links,
                                                          incidents, arrived_gateways)
    last_attempt_ns = np.full(n_installments, np.iinfo(np.int64).min)
    np.maximum.at(last_attempt_ns, installment_of[is_sent], links.sent_ns[is_sent])
    return {
        "attempts": links.attempts,
        "attempts_awaiting_file": np.bincount(installment_of[awaiting_file],
                                              minlength=n_installments),
        "attempts_unanswered": np.bincount(installment_of[unanswered], minlength=n_installments),
        "attempts_pending": np.bincount(installment_of[pending], minlength=n_installments),
        "last_attempt_at": _moments(last_attempt_ns, links.attempts > 0, index),
    }


def unknown_outcomes(instructions: pd.DataFrame, settlements: pd.DataFrame, links: Links,
                     incidents: pd.DataFrame,
                     arrived_gateways: set[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sent attempts without a known outcome, the deciding one or another: their gateway's file
    has not arrived (first mask), or it has and holds no row for them, outside an incident of
    the gateway (second), or their latest answer is PENDING, no final result yet (third)."""
    n_instructions, instruction_of = len(instructions), links.instruction_of
    unsettled = links.is_sent & ~links.succeeded
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
    answer = links.answer_of
    pending = unsettled & file_in & (answer >= 0)
    if pending.any():
        rows = np.flatnonzero(pending)
        pending[rows] = (settlements["status"].iloc[answer[rows]] == "PENDING").to_numpy(bool)
    return awaiting_file, unanswered, pending


def shown_attempt_columns(instructions: pd.DataFrame, settlements: pd.DataFrame, links: Links,
                          deciding: DecidingAttempts, index: pd.Index) -> dict[str, object]:
    """What the reports show of an installment's attempts: the gateway of the deciding attempt,
    else of the latest sent one, else of the newest instruction; the deciding attempt's
    settlement row, incident and moment; the newest instruction."""
    n_installments, n_instructions = len(index), len(instructions)
    installment_of, details = links.installment_of, deciding.details
    latest_sent = latest_per_group(np.where(links.is_sent, installment_of, NO_ROW), links.sent_ns,
                                   instructions["instruction_id"])
    newest_of = links.newest_of
    latest_sent_of = position_of(installment_of[latest_sent], latest_sent, n_installments)
    deciding_of = position_of(deciding.at, deciding.rows, n_installments)
    shown_instruction = np.where(deciding_of >= 0, deciding_of,
                                 np.where(latest_sent_of >= 0, latest_sent_of, newest_of))
    deciding_position = position_of(deciding.at, np.arange(len(deciding.rows)), n_installments)
    failed_row = np.full(n_installments, NO_ROW, dtype=np.int64)
    failed_row[deciding.at] = details["failed_row"].to_numpy(np.int64)
    return {
        "gateway": gather(instructions["gateway"], shown_instruction, index=index),
        "deciding_gateway": gather(instructions["gateway"], deciding_of, index=index),
        **{column: gather(settlements[column], failed_row, index=index)
           for column in ("response_code", "response_msg")},
        "incident": gather(details["incident"], deciding_position, index=index),
        "deciding_pending": np.where(
            deciding_position >= 0,
            details["pending_row"].to_numpy(bool)[np.maximum(deciding_position, 0)]
            if len(details) else False, False),
        "deciding_has_row": np.where(
            deciding_position >= 0,
            details["has_failed_row"].to_numpy(bool)[np.maximum(deciding_position, 0)]
            if len(details) else False, False),
        "deciding_sent_at": _moments(
            np.where(deciding_of >= 0, links.sent_ns[np.maximum(deciding_of, 0)], 0)
            if n_instructions else np.zeros(n_installments, dtype=np.int64), deciding_of >= 0,
            index),
        "latest_created_at": _moments(
            np.where(newest_of >= 0, links.created_ns[np.maximum(newest_of, 0)], 0)
            if n_instructions else np.zeros(n_installments, dtype=np.int64), newest_of >= 0,
            index),
        "latest_instruction_id": gather(instructions["instruction_id"], newest_of, index=index),
    }


def shown_card(bindings: pd.DataFrame, ids: IdCodes, status: np.ndarray,
               day_start: pd.Timestamp, index: pd.Index) -> pd.Series:
    """The masked card of every installment not paid (shown_binding's); empty for paid ones."""
    not_paid = status != STATUS_CODE.number[Status.PAID]
    card_row = np.full(len(index), NO_ROW, dtype=np.int64)
    card_row[not_paid] = shown_binding(ids.loan_of_installment[not_paid], ids.loan_of_binding,
                                       bindings, day_start)
    return gather(bindings["card_no_masked"], card_row, index=index)


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


# --- settlement side --------------------------------------------------------------------------

def settlement_exceptions(settlements: pd.DataFrame, links: Links, instructions: pd.DataFrame,
                          business_date: dt.date) -> pd.DataFrame:
    """CONTRACT 4.2. Every SUCCESS row is counted in an installment's `settled` or listed here:
    orphans (no instruction), debits of an instruction whose installment is not among D's
    (every such row: none of their money is counted), and, among counted debits, every SUCCESS
    row after an instruction's first by txn_time (counted and listed, README)."""
    day = business_date.isoformat()
    is_success, instruction_of, installment_of = (links.is_success, links.instruction_of,
                                                  links.installment_of)
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
