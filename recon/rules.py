"""CONTRACT section 3: each rule one function, in the contract's order, each sentence of
`evidence` beside the rule it explains. Pure and vectorised.

A rule reads the day's rows as classify has linked them (Links) and returns, per installment,
whether it applies and the root cause it gives, as codes of CAUSE_CODE; classify takes the first
rule that applies. After each rule come its evidence sentences (exceptions.csv, CONTRACT 4.1):
pairs of a condition on the report's rows and the sentence for the rows it holds, the first that
holds winning; EVIDENCE lists them all in that order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from recon.codes import CodeMap
from recon.contract import RootCause, Status
from recon.formatting import fmt_local
from recon.ids import NO_ROW, IdCodes, Vocabulary, arrived_rows, latest_per_group, nanos

R = RootCause
CAUSE_CODE = Vocabulary([""] + [cause.value for cause in RootCause])
STATUS_CODE = Vocabulary([""] + [status.value for status in Status])


class Rule(IntEnum):
    """The rule of CONTRACT 3 that decided an installment's root cause (the outcomes' `rule`)."""

    DECIDING_ATTEMPT = 1  # sent attempts that did not succeed
    UNSENT_INSTRUCTIONS = 2  # instructions, none of them sent
    NO_INSTRUCTION = 3
    ANYTHING_ELSE = 4


@dataclass
class Links:
    """The day's rows tied together by position (classify.link): what every rule reads."""

    installment_of: np.ndarray  # per instruction: its installment's row, NO_ROW if none of D's
    instruction_of: np.ndarray  # per settlement row: its instruction's row, NO_ROW if none
    is_success: np.ndarray  # per settlement row
    succeeded: np.ndarray  # per instruction: it has a SUCCESS row
    is_sent: np.ndarray  # per instruction: sent, for an installment of D
    sent_ns: np.ndarray  # per instruction (nanos)
    created_ns: np.ndarray  # per instruction (nanos)
    attempts: np.ndarray  # per installment: how many sent attempts
    has_instruction: np.ndarray  # per installment
    newest_of: np.ndarray  # per installment: its newest instruction by created_at, or NO_ROW
    answer_of: np.ndarray  # per instruction: its latest FAILED or PENDING row (latest_answers)


@dataclass
class Verdict:
    """One rule's answer, per installment."""

    applies: np.ndarray  # bool
    cause: np.ndarray  # a CAUSE_CODE, meaningful where the rule applies


class Words:
    """What the evidence sentences quote, formatted once per report: amounts in yuan (indexed as
    the report's rows), the business date, moments in the zone of the report."""

    def __init__(self, due: pd.Series, settled: pd.Series, business_date: dt.date,
                 tz: ZoneInfo) -> None:
        self.due, self.settled, self.day, self.tz = due, settled, business_date.isoformat(), tz

    def moment(self, moments: pd.Series) -> pd.Series:
        return fmt_local(moments, self.tz)


# A condition on the report's rows, and the sentence for the rows it holds.
Sentence = tuple[Callable[[pd.DataFrame], pd.Series],
                 Callable[[pd.DataFrame, Words], pd.Series]]


# --- rule 1: the deciding attempt -----------------------------------------------------------------

@dataclass
class DecidingAttempts(Verdict):
    """Rule 1's verdict, with what the report shows of each deciding attempt."""

    rows: np.ndarray  # instruction rows of the deciding attempts ...
    at: np.ndarray  # ... their installments' rows ...
    details: pd.DataFrame  # ... and explain_deciding_attempts' row for each


def deciding_attempt(instructions: pd.DataFrame, settlements: pd.DataFrame, links: Links,
                     incidents: pd.DataFrame, arrived_gateways: set[str],
                     codes: CodeMap) -> DecidingAttempts:
    """Rule 1: the installment has sent attempts that did not succeed. The latest of them by
    sent_at (ties: the greatest instruction_id) decides, by what its settlement says."""
    n_installments = len(links.attempts)
    rows = latest_per_group(np.where(links.is_sent & ~links.succeeded, links.installment_of,
                                     NO_ROW), links.sent_ns, instructions["instruction_id"])
    details = explain_deciding_attempts(instructions.iloc[rows], rows, settlements,
                                        links.answer_of, incidents, arrived_gateways, codes)
    at = links.installment_of[rows]
    applies = np.zeros(n_installments, dtype=bool)
    applies[at] = True
    cause = np.zeros(n_installments, dtype=np.int64)
    cause[at] = details["cause"].to_numpy(np.int64)
    return DecidingAttempts(applies, cause, rows, at, details)


def _attempt(part: pd.DataFrame, words: Words) -> pd.Series:
    # "last attempt" unless a later attempt succeeded and the deciding one is an earlier one.
    which = pd.Series("last attempt ", index=part.index, dtype="str").where(
        part["deciding_sent_at"] >= part["last_attempt_at"], "latest unsuccessful attempt ")
    return which + words.moment(part["deciding_sent_at"]) + " via " + part["deciding_gateway"]


DECIDING_ATTEMPT_EVIDENCE: list[Sentence] = [
    (lambda rows: (rows["root_cause"] == R.SETTLEMENT_PENDING.value) & rows["deciding_pending"],
     lambda part, words: _attempt(part, words) + " is PENDING in the settlement file of "
     + part["deciding_gateway"] + " (no final result yet)"),
    (lambda rows: rows["root_cause"] == R.SETTLEMENT_PENDING.value,
     lambda part, words: _attempt(part, words) + " awaits the settlement file of "
     + part["deciding_gateway"] + ", which has not arrived"),
    (lambda rows: rows["deciding_has_row"] & (rows["rule"] == Rule.DECIDING_ATTEMPT),
     lambda part, words: _attempt(part, words) + " failed "
     + part["response_code"].where(part["response_code"].str.len() > 0, "(no code)")),
    (lambda rows: rows["root_cause"] == R.GATEWAY_OUTAGE.value,
     lambda part, words: _attempt(part, words)
     + " has no settlement record and was sent during incident: " + part["incident"]),
    (lambda rows: rows["root_cause"] == R.NO_SETTLEMENT_RECORD.value,
     lambda part, words: _attempt(part, words) + " has no row in the arrived settlement file"),
]


def latest_answers(settlements: pd.DataFrame, instruction_of: np.ndarray,
                   n_instructions: int) -> np.ndarray:
    """Per instruction, the row of its latest FAILED or PENDING settlement row by txn_time (ties:
    the greatest gateway_txn_id), or NO_ROW: what an attempt that did not succeed was answered.
    A PENDING row (native formats, CONTRACT 2.4.1) after a FAILED one means the retry is still
    in flight; a FAILED row after a PENDING one is the final result."""
    status = settlements["status"]
    is_answer = ((status == "FAILED") | (status == "PENDING")).to_numpy(bool) & \
        (instruction_of >= 0)
    rows = latest_per_group(np.where(is_answer, instruction_of, NO_ROW),
                            nanos(settlements["txn_time"]), settlements["gateway_txn_id"])
    answer_of = np.full(n_instructions, NO_ROW, dtype=np.int64)
    answer_of[instruction_of[rows]] = rows
    return answer_of


def explain_deciding_attempts(deciding: pd.DataFrame, deciding_rows: np.ndarray,
                              settlements: pd.DataFrame, answer_of: np.ndarray,
                              incidents: pd.DataFrame, arrived_gateways: set[str],
                              codes: CodeMap) -> pd.DataFrame:
    """Rule 1's branches: pending file or PENDING row, FAILED row's code, incident window, no
    record. `answer_of`: latest_answers.

    One row per deciding attempt: `cause` (a CAUSE_CODE), `failed_row` (the settlement row whose
    code and message it shows, or NO_ROW), `has_failed_row`, `pending_row` (that row is PENDING:
    the gateway has no final result yet) and `incident` (its description).
    """
    row = answer_of[deciding_rows] if len(deciding_rows) else np.zeros(0, dtype=np.int64)
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


# --- rule 2: instructions, none of them sent ------------------------------------------------------

def unsent_instructions(instructions: pd.DataFrame, bindings: pd.DataFrame, links: Links,
                        ids: IdCodes) -> Verdict:
    """Rule 2: the installment has instructions but no sent attempt. An unconfirmed one needing
    confirmation, else whether a binding was active when the newest of them was created."""
    n_installments = len(links.attempts)
    applies = links.has_instruction & (links.attempts == 0)
    installment_of = links.installment_of
    unconfirmed_instruction = (instructions["confirm_required"].to_numpy(bool)
                               & (instructions["confirm_status"] != "CONFIRMED").to_numpy(bool)
                               & (installment_of >= 0))
    unconfirmed = np.zeros(n_installments, dtype=bool)
    unconfirmed[installment_of[unconfirmed_instruction]] = True
    newest = links.newest_of[applies]
    bound_when_created = np.zeros(n_installments, dtype=bool)
    bound_when_created[applies] = bound_at(ids.loan_of_instruction[newest],
                                           links.created_ns[newest], ids.loan_of_binding,
                                           bindings)
    cause = CAUSE_CODE.number
    return Verdict(applies, np.select(
        [unconfirmed, ~bound_when_created],
        [cause[R.INSTRUCTION_NOT_CONFIRMED], cause[R.CARD_UNBOUND]],
        default=cause[R.NOT_INSTRUCTED]))


def _instruction(part: pd.DataFrame, words: Words) -> pd.Series:
    return ("instruction " + part["latest_instruction_id"] + " created "
            + words.moment(part["latest_created_at"]))


UNSENT_INSTRUCTIONS_EVIDENCE: list[Sentence] = [
    (lambda rows: rows["root_cause"] == R.INSTRUCTION_NOT_CONFIRMED.value,
     lambda part, words: "instruction " + part["latest_instruction_id"]
     + " needs the borrower's confirmation and was never sent"),
    (lambda rows: (rows["root_cause"] == R.CARD_UNBOUND.value)
     & (rows["rule"] == Rule.UNSENT_INSTRUCTIONS),
     lambda part, words: _instruction(part, words)
     + " was never sent and no card binding was active then"),
    (lambda rows: (rows["root_cause"] == R.NOT_INSTRUCTED.value)
     & (rows["rule"] == Rule.UNSENT_INSTRUCTIONS),
     lambda part, words: _instruction(part, words)
     + " was never sent although a card binding was active"),
]


# --- rule 3: no instruction -----------------------------------------------------------------------

def no_instruction(bindings: pd.DataFrame, links: Links, ids: IdCodes,
                   day_start: pd.Timestamp) -> Verdict:
    """Rule 3: the installment has no instruction; whether a binding was active at D 00:00:00."""
    applies = ~links.has_instruction
    bound_at_day_start = np.zeros(len(applies), dtype=bool)
    bound_at_day_start[applies] = bound_at(
        ids.loan_of_installment[applies],
        np.full(int(applies.sum()), day_start.value, dtype=np.int64), ids.loan_of_binding,
        bindings)
    cause = CAUSE_CODE.number
    return Verdict(applies, np.where(bound_at_day_start, cause[R.NOT_INSTRUCTED],
                                     cause[R.CARD_UNBOUND]))


NO_INSTRUCTION_EVIDENCE: list[Sentence] = [
    (lambda rows: (rows["root_cause"] == R.CARD_UNBOUND.value)
     & (rows["rule"] == Rule.NO_INSTRUCTION),
     lambda part, words: pd.Series(f"no debit instruction and no card binding active at "
                                   f"{words.day} 00:00:00", index=part.index, dtype="str")),
    (lambda rows: (rows["root_cause"] == R.NOT_INSTRUCTED.value)
     & (rows["rule"] == Rule.NO_INSTRUCTION),
     lambda part, words: pd.Series(f"no debit instruction although a card binding was active "
                                   f"at {words.day} 00:00:00", index=part.index, dtype="str")),
]


# --- rule 4: anything else ------------------------------------------------------------------------

def anything_else(n_installments: int) -> Verdict:
    """Rule 4: what no earlier rule decides (for example every sent attempt succeeded, yet
    settled < amount_due) is unclassified."""
    return Verdict(np.ones(n_installments, dtype=bool),
                   np.full(n_installments, CAUSE_CODE.number[R.UNCLASSIFIED], dtype=np.int64))


ANYTHING_ELSE_EVIDENCE: list[Sentence] = [
    (lambda rows: rows["rule"] == Rule.ANYTHING_ELSE,
     lambda part, words: part["attempts"].astype(str) + " sent attempt(s) all succeeded but only "
     + words.settled[part.index] + " of " + words.due[part.index] + " was settled"),
]


# --- status ---------------------------------------------------------------------------------------

def settled_of(settlements: pd.DataFrame, links: Links) -> np.ndarray:
    """CONTRACT 3's `settled`, per installment: every SUCCESS amount of its instructions
    (integer fen; classify is handed the rows of arrived files only)."""
    debits = links.is_success & (links.instruction_of >= 0)
    debit_installment = links.installment_of[links.instruction_of[debits]]
    counted = debit_installment >= 0
    settled = np.zeros(len(links.attempts), dtype=np.int64)
    np.add.at(settled, debit_installment[counted],
              settlements["amount"].to_numpy(np.int64)[debits][counted])
    return settled


def status_of(settled: np.ndarray, due: np.ndarray, root_cause: np.ndarray) -> np.ndarray:
    """CONTRACT 3's status (STATUS_CODE), the first that applies: overpaid, paid, pending (the
    root cause is settlement_pending), partially_paid (something settled), unpaid."""
    status = STATUS_CODE.number
    return np.select(
        [settled > due, settled == due, root_cause == CAUSE_CODE.number[R.SETTLEMENT_PENDING],
         settled > 0],
        [status[Status.OVERPAID], status[Status.PAID], status[Status.PENDING],
         status[Status.PARTIALLY_PAID]],
        default=status[Status.UNPAID])


def in_full(status: np.ndarray) -> np.ndarray:
    """Paid or overpaid: root_cause is empty for those."""
    code = STATUS_CODE.number
    return (status == code[Status.PAID]) | (status == code[Status.OVERPAID])


# An overpaid installment's sentence comes before any rule's; a partially paid one's rule
# sentence gets how much was settled (rule 4's already says).
STATUS_EVIDENCE: list[Sentence] = [
    (lambda rows: rows["status"] == Status.OVERPAID.value,
     lambda part, words: "settled " + words.settled[part.index] + " against "
     + words.due[part.index] + " due: more was debited than owed"),
]
PARTLY_SETTLED: Sentence = (
    lambda rows: (rows["status"] == Status.PARTIALLY_PAID.value)
    & (rows["rule"] != Rule.ANYTHING_ELSE),
    lambda part, words: "; " + words.settled[part.index] + " of " + words.due[part.index]
    + " settled")

EVIDENCE: list[Sentence] = (STATUS_EVIDENCE + DECIDING_ATTEMPT_EVIDENCE
                            + UNSENT_INSTRUCTIONS_EVIDENCE + NO_INSTRUCTION_EVIDENCE
                            + ANYTHING_ELSE_EVIDENCE)


# --- bindings (rules 2 and 3) ---------------------------------------------------------------------

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
