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

from recon.codes import CodeMap, normalise_code
from recon.contract import ROOT_CAUSE_ZH, SUGGESTED_ACTION, RootCause, SettlementExceptionKind, Status

KEY = ["loan_id", "installment_no"]
R = RootCause


@dataclass
class Decisions:
    outcomes: pd.DataFrame  # one row per installment: status, root_cause and the report fields
    settlement_exceptions: pd.DataFrame  # orphan_settlement and duplicate_debit rows


def day_start_utc(business_date: dt.date, tz: ZoneInfo) -> pd.Timestamp:
    return pd.Timestamp(dt.datetime.combine(business_date, dt.time(0), tzinfo=tz)).tz_convert("UTC")


def classify(installments: pd.DataFrame, bindings: pd.DataFrame, instructions: pd.DataFrame,
             settlements: pd.DataFrame, incidents: pd.DataFrame, arrived_gateways: set[str],
             codes: CodeMap, business_date: dt.date, tz: ZoneInfo) -> Decisions:
    """Decide every installment of `business_date` from validated inputs."""
    success_rows = settlements[settlements["status"] == "SUCCESS"]
    debits, exceptions = settlement_exceptions(success_rows, instructions, business_date)
    settled = settled_per_installment(debits, instructions)

    sent = instructions[instructions["sent_at"].notna()]
    succeeded_ids = debits["instruction_id"].unique()
    attempts = sent.groupby(KEY, sort=False).agg(
        attempts=("instruction_id", "size"), last_attempt_at=("sent_at", "max"))
    last_sent = latest(sent, ["sent_at", "instruction_id"])[KEY + ["gateway"]].rename(
        columns={"gateway": "last_sent_gateway"})

    deciding = deciding_attempts(sent, succeeded_ids)
    deciding = explain_deciding_attempts(deciding, settlements, incidents, arrived_gateways, codes)

    day_start = day_start_utc(business_date, tz)
    unsent = unsent_instruction_facts(instructions, sent, bindings)

    frame = installments[KEY + ["borrower_id", "amount_due", "line"]].copy()
    frame = frame.merge(settled, on=KEY, how="left")
    frame["amount_settled"] = frame["amount_settled"].fillna(0).astype("int64")
    frame = frame.merge(attempts, on=KEY, how="left")
    frame["attempts"] = frame["attempts"].fillna(0).astype("int64")
    frame = frame.merge(last_sent, on=KEY, how="left")
    frame = frame.merge(deciding, on=KEY, how="left")
    frame = frame.merge(unsent, on=KEY, how="left")

    has_deciding = frame["deciding_instruction_id"].notna()
    has_instruction = frame["has_instruction"].fillna(False).astype(bool)
    has_sent = frame["attempts"] > 0
    unsent_only = has_instruction & ~has_sent
    no_instruction = ~has_instruction
    # Bindings are only consulted where rules 2 and 3 need them.
    bound_when_created = frame["bound_when_created"].fillna(False).astype(bool)
    bound_at_day_start = bound_at(frame.loc[no_instruction, ["loan_id"]], bindings, day_start)
    frame["bound_at_day_start"] = False
    frame.loc[no_instruction, "bound_at_day_start"] = bound_at_day_start

    root_cause = np.select(
        [
            has_deciding,
            unsent_only & frame["unconfirmed"].fillna(False).astype(bool),
            unsent_only & ~bound_when_created,
            unsent_only,
            no_instruction & ~frame["bound_at_day_start"],
            no_instruction,
        ],
        [
            frame["deciding_cause"].astype(object),
            R.INSTRUCTION_NOT_CONFIRMED.value,
            R.CARD_UNBOUND.value,
            R.NOT_INSTRUCTED.value,
            R.CARD_UNBOUND.value,
            R.NOT_INSTRUCTED.value,
        ],
        default=R.UNCLASSIFIED.value,
    )
    frame["rule"] = np.select(
        [has_deciding, unsent_only, no_instruction], ["1", "2", "3"], default="4")
    due, settled_fen = frame["amount_due"], frame["amount_settled"]
    status = np.select(
        [settled_fen > due, settled_fen == due, root_cause == R.SETTLEMENT_PENDING.value,
         settled_fen > 0],
        [Status.OVERPAID.value, Status.PAID.value, Status.PENDING.value,
         Status.PARTIALLY_PAID.value],
        default=Status.UNPAID.value,
    )
    frame["status"] = pd.Series(status, index=frame.index, dtype="str")
    settled_in_full = frame["status"].isin([Status.PAID.value, Status.OVERPAID.value])
    frame["root_cause"] = pd.Series(root_cause, index=frame.index, dtype="str").where(
        ~settled_in_full, "")
    frame["amount_outstanding"] = due - settled_fen
    frame["gateway"] = frame["deciding_gateway"].fillna(frame["last_sent_gateway"]).fillna(
        frame["latest_gateway"]).fillna("")
    frame["response_code"] = frame["response_code"].fillna("")
    frame["response_msg"] = frame["response_msg"].fillna("")
    return Decisions(frame, exceptions)


# --- settlement side --------------------------------------------------------------------------

def settlement_exceptions(success_rows: pd.DataFrame, instructions: pd.DataFrame,
                          business_date: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(SUCCESS rows tied to an instruction, orphan and duplicate-debit exception rows)."""
    known = success_rows["instruction_id"].isin(instructions["instruction_id"])
    orphans = success_rows[~known]
    debits = success_rows[known].sort_values(["instruction_id", "txn_time", "gateway_txn_id"])
    order = debits.groupby("instruction_id", sort=False).cumcount()
    extra = debits[order >= 1]
    first = debits[order == 0].set_index("instruction_id")["gateway_txn_id"]
    orphan_rows = pd.DataFrame({
        "gateway": orphans["gateway"],
        "gateway_txn_id": orphans["gateway_txn_id"],
        "instruction_id": orphans["instruction_id"],
        "amount": orphans["amount"],
        "kind": SettlementExceptionKind.ORPHAN_SETTLEMENT.value,
        "detail": "SUCCESS row matches no instruction of " + business_date.isoformat()
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
    exceptions = pd.concat([orphan_rows, duplicate_rows], ignore_index=True)
    exceptions.insert(0, "business_date", business_date.isoformat())
    exceptions["amount"] = exceptions["amount"].astype("int64")
    return debits, exceptions


def settled_per_installment(debits: pd.DataFrame, instructions: pd.DataFrame) -> pd.DataFrame:
    tied = debits[["instruction_id", "amount"]].merge(
        instructions[["instruction_id"] + KEY], on="instruction_id", how="inner")
    return tied.groupby(KEY, sort=False, as_index=False)["amount"].sum().rename(
        columns={"amount": "amount_settled"})


# --- rule 1 -----------------------------------------------------------------------------------

def latest(frame: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """The last row per installment by `order` (ties broken by the later columns of `order`)."""
    return frame.sort_values(KEY + order, kind="stable").drop_duplicates(KEY, keep="last")


def deciding_attempts(sent: pd.DataFrame, succeeded_ids) -> pd.DataFrame:
    """Per installment, the latest sent attempt without a SUCCESS row (ties: greatest id)."""
    failed = sent[~sent["instruction_id"].isin(succeeded_ids)]
    chosen = latest(failed, ["sent_at", "instruction_id"])
    return chosen[KEY + ["instruction_id", "gateway", "sent_at"]].rename(columns={
        "instruction_id": "deciding_instruction_id", "gateway": "deciding_gateway",
        "sent_at": "deciding_sent_at"})


def explain_deciding_attempts(deciding: pd.DataFrame, settlements: pd.DataFrame,
                              incidents: pd.DataFrame, arrived_gateways: set[str],
                              codes: CodeMap) -> pd.DataFrame:
    """Rule 1's branches: pending file, FAILED row's code, incident window, no record."""
    failed_rows = settlements[settlements["status"] == "FAILED"].sort_values(
        ["instruction_id", "txn_time", "gateway_txn_id"]).drop_duplicates(
        "instruction_id", keep="last")
    failed_rows = failed_rows[["instruction_id", "response_code", "response_msg", "scheme",
                               "txn_time", "gateway_txn_id"]].rename(
        columns={"instruction_id": "deciding_instruction_id"})
    failed_rows["code_key"] = failed_rows["response_code"].map(normalise_code, na_action="ignore") \
        if len(failed_rows) else failed_rows["response_code"]
    mapped = failed_rows.merge(codes.as_frame().rename(columns={"code": "code_key"}),
                               on=["scheme", "code_key"], how="left")
    frame = deciding.merge(mapped.drop(columns=["code_key"]), on="deciding_instruction_id",
                           how="left")

    gateway = frame["deciding_gateway"].str.upper()
    arrived = gateway.isin(arrived_gateways)
    has_failed_row = frame["gateway_txn_id"].notna()
    incident = incident_during(frame, incidents)
    frame["incident"] = incident
    cause = np.select(
        [~arrived, has_failed_row, incident.notna()],
        [R.SETTLEMENT_PENDING.value, frame["mapped_cause"].fillna(R.UNCLASSIFIED.value),
         R.GATEWAY_OUTAGE.value],
        default=R.NO_SETTLEMENT_RECORD.value,
    )
    frame["deciding_cause"] = cause
    frame["deciding_txn_time"] = frame["txn_time"]
    # A row from an arrived file of another gateway does not speak for a file still missing.
    frame.loc[~arrived, ["response_code", "response_msg"]] = None
    return frame.drop(columns=["scheme", "txn_time", "gateway_txn_id", "mapped_cause"])


def incident_during(attempts: pd.DataFrame, incidents: pd.DataFrame) -> pd.Series:
    """Per attempt, a description of the first incident of its gateway covering `sent_at`."""
    result = pd.Series(pd.NA, index=attempts.index, dtype="str")
    if incidents.empty or attempts.empty:
        return result
    windows = incidents.assign(gateway_key=incidents["gateway"].str.upper())
    probe = pd.DataFrame({"gateway_key": attempts["deciding_gateway"].str.upper(),
                          "sent_at": attempts["deciding_sent_at"], "row": attempts.index})
    joined = probe.merge(windows, on="gateway_key", how="inner")
    hit = joined[(joined["started_at"] <= joined["sent_at"]) & (joined["sent_at"] <= joined["ended_at"])]
    hit = hit.sort_values(["row", "started_at"]).drop_duplicates("row")
    result.loc[hit["row"].to_numpy()] = hit["description"].where(
        hit["description"].str.len() > 0, "incident").to_numpy()
    return result


# --- rules 2 and 3 ----------------------------------------------------------------------------

def bound_at(loans: pd.DataFrame, bindings: pd.DataFrame, when) -> np.ndarray:
    """For each row of `loans` (loan_id and optionally `when` column), is a binding active then?

    Active at t: bound_at <= t and (unbound_at empty or unbound_at > t).
    """
    if loans.empty:
        return np.zeros(0, dtype=bool)
    probe = loans[["loan_id"]].copy()
    probe["t"] = loans[when] if isinstance(when, str) else when
    probe["row"] = np.arange(len(probe))
    joined = probe.merge(bindings[["loan_id", "bound_at", "unbound_at"]], on="loan_id",
                         how="inner")
    active = (joined["bound_at"] <= joined["t"]) & (
        joined["unbound_at"].isna() | (joined["unbound_at"] > joined["t"]))
    result = np.zeros(len(probe), dtype=bool)
    result[joined.loc[active, "row"].to_numpy()] = True
    return result


def unsent_instruction_facts(instructions: pd.DataFrame, sent: pd.DataFrame,
                             bindings: pd.DataFrame) -> pd.DataFrame:
    """Per installment with instructions: rule 2's facts (confirmation, binding at creation)."""
    has_sent = pd.MultiIndex.from_frame(instructions[KEY]).isin(pd.MultiIndex.from_frame(sent[KEY])) \
        if len(sent) else np.zeros(len(instructions), dtype=bool)
    unconfirmed = instructions["confirm_required"] & (instructions["confirm_status"] != "CONFIRMED")
    facts = instructions[KEY].assign(unconfirmed=unconfirmed).groupby(
        KEY, sort=False, as_index=False)["unconfirmed"].any()
    facts["has_instruction"] = True
    newest = latest(instructions, ["created_at", "instruction_id"])[
        KEY + ["instruction_id", "gateway", "created_at", "confirm_status"]].rename(columns={
            "instruction_id": "latest_instruction_id", "gateway": "latest_gateway",
            "created_at": "latest_created_at", "confirm_status": "latest_confirm_status"})
    facts = facts.merge(newest, on=KEY, how="left")
    # Only installments that never had a sent attempt need the binding history.
    unsent_keys = instructions.loc[~np.asarray(has_sent), KEY].drop_duplicates()
    needs_binding = facts.merge(unsent_keys, on=KEY, how="inner")
    needs_binding["bound_when_created"] = bound_at(needs_binding, bindings, "latest_created_at")
    return facts.merge(needs_binding[KEY + ["bound_when_created"]], on=KEY, how="left")


# --- report fields ----------------------------------------------------------------------------

def fmt_yuan(fen: pd.Series) -> pd.Series:
    """Integer fen -> `1234.50` (exact; negative amounts keep their sign)."""
    fen = fen.astype("int64")
    magnitude = fen.abs()
    text = (magnitude // 100).astype(str) + "." + (magnitude % 100).astype(str).str.zfill(2)
    return text.where(fen >= 0, "-" + text)


def fmt_local(moments: pd.Series, tz: ZoneInfo) -> pd.Series:
    """UTC timestamps -> local `YYYY-MM-DD HH:MM:SS`; missing ones -> empty string."""
    if moments.empty:
        return pd.Series([], index=moments.index, dtype="str")
    moments = pd.to_datetime(moments, utc=True)
    text = moments.dt.tz_convert(tz).dt.strftime("%Y-%m-%d %H:%M:%S")
    return text.fillna("").astype("str")


def pick_card(outcomes: pd.DataFrame, bindings: pd.DataFrame, day_start: pd.Timestamp) -> pd.Series:
    """The card shown to ops: the binding active at the start of D, else the latest bound."""
    if outcomes.empty:
        return pd.Series([], index=outcomes.index, dtype="str")
    candidates = outcomes[["loan_id"]].assign(row=np.arange(len(outcomes))).merge(
        bindings[["loan_id", "card_no_masked", "bound_at", "unbound_at"]], on="loan_id")
    active = (candidates["bound_at"] <= day_start) & (
        candidates["unbound_at"].isna() | (candidates["unbound_at"] > day_start))
    candidates = candidates.assign(active=active).sort_values(["row", "active", "bound_at"])
    chosen = candidates.drop_duplicates("row", keep="last")
    cards = pd.Series("", index=range(len(outcomes)), dtype="str")
    cards.loc[chosen["row"].to_numpy()] = chosen["card_no_masked"].to_numpy()
    return pd.Series(cards.to_numpy(), index=outcomes.index, dtype="str")


def exception_report(outcomes: pd.DataFrame, bindings: pd.DataFrame, business_date: dt.date,
                     tz: ZoneInfo) -> pd.DataFrame:
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
        "card_no_masked": pick_card(rows, bindings, day_start_utc(business_date, tz)),
        "suggested_action": cause.map({str(k): v for k, v in SUGGESTED_ACTION.items()}).fillna(""),
        "evidence": evidence(rows, due, settled, business_date, tz),
    })
    return report.reset_index(drop=True)


def evidence(rows: pd.DataFrame, due: pd.Series, settled: pd.Series, business_date: dt.date,
             tz: ZoneInfo) -> pd.Series:
    """One plain sentence per row saying why it got its status and root cause."""
    sent_at = fmt_local(rows["deciding_sent_at"], tz)
    # "last attempt" unless a later attempt succeeded and the deciding one is an earlier failure.
    which = pd.Series("last attempt ", index=rows.index, dtype="str").where(
        rows["deciding_sent_at"] >= rows["last_attempt_at"], "latest unsuccessful attempt ")
    via = which + sent_at + " via " + rows["deciding_gateway"].fillna("")
    created = fmt_local(rows["latest_created_at"], tz)
    latest_id = rows["latest_instruction_id"].fillna("")
    day = business_date.isoformat()
    cause = rows["root_cause"]
    code = rows["response_code"]
    failed_with_code = cause.isin([c.value for c in R]) & rows["deciding_txn_time"].notna() & \
        (rows["rule"] == "1") & (cause != R.SETTLEMENT_PENDING.value)
    sentences = pd.Series("", index=rows.index, dtype="str")
    choices = [
        (rows["status"] == Status.OVERPAID.value,
         "settled " + settled + " against " + due + " due: more was debited than owed"),
        (cause == R.SETTLEMENT_PENDING.value,
         via + " awaits the settlement file of "
         + rows["deciding_gateway"].fillna("") + ", which has not arrived"),
        (failed_with_code,
         via + " failed " + code.where(code.str.len() > 0, "(no code)")),
        (cause == R.GATEWAY_OUTAGE.value,
         via + " has no settlement record and was sent during incident: "
         + rows["incident"].fillna("")),
        (cause == R.NO_SETTLEMENT_RECORD.value,
         via + " has no row in the arrived settlement file"),
        (cause == R.INSTRUCTION_NOT_CONFIRMED.value,
         "instruction " + latest_id + " needs the borrower's confirmation and was never sent"),
        ((cause == R.CARD_UNBOUND.value) & (rows["rule"] == "2"),
         "instruction " + latest_id + " created " + created
         + " was never sent and no card binding was active then"),
        ((cause == R.NOT_INSTRUCTED.value) & (rows["rule"] == "2"),
         "instruction " + latest_id + " created " + created
         + " was never sent although a card binding was active"),
        ((cause == R.CARD_UNBOUND.value) & (rows["rule"] == "3"),
         "no debit instruction and no card binding active at " + day + " 00:00:00"),
        ((cause == R.NOT_INSTRUCTED.value) & (rows["rule"] == "3"),
         "no debit instruction although a card binding was active at " + day + " 00:00:00"),
        (rows["rule"] == "4",
         rows["attempts"].astype(str) + " sent attempt(s) all succeeded but only " + settled
         + " of " + due + " was settled"),
    ]
    filled = pd.Series(False, index=rows.index)
    for condition, sentence in choices:
        take = condition & ~filled
        sentences = sentences.where(~take, sentence)
        filled |= take
    partial = (rows["status"] == Status.PARTIALLY_PAID.value) & (rows["rule"] != "4")
    sentences = sentences.where(~partial, sentences + "; " + settled + " of " + due + " settled")
    return sentences
