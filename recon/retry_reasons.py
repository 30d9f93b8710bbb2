"""The retry plan's `reason` column: one plain sentence per row saying why its action, built in
Arrow only for the rows each sentence describes. Pure."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recon.contract import RootCause
from recon.rules import Rule
from recon.formatting import fmt_local
from recon.frames import arrow_strings, join_texts, yuan_text

R = RootCause


def format_local(moments_ns: np.ndarray, present: np.ndarray, tz: ZoneInfo) -> np.ndarray:
    """UTC nanoseconds -> local `YYYY-MM-DD HH:MM:SS` where `present`, else ""."""
    text = np.full(len(moments_ns), "", dtype=object)
    if present.any():
        moments = pd.Series(pd.to_datetime(moments_ns[present], utc=True))
        text[present] = fmt_local(moments, tz).to_numpy(object)
    return text


def reasons(rows, choice, step, gateway, other, attempts, cap, incident_end, binding_id, amount,
             tz) -> pa.ChunkedArray:
    """One plain sentence per row saying why this action. Each sentence is built, in Arrow, only
    for the rows it describes."""
    n = len(rows)
    if not n:
        return pa.chunked_array([], pa.large_string())
    cause = rows["root_cause"]
    columns = {
        "cause": arrow_strings(cause),
        "gw": arrow_strings(gateway),
        "other": pa.array(other, type=pa.large_string()),
        "binding": arrow_strings(binding_id),
        "yuan": yuan_text(np.abs(amount)).cast(pa.large_string()),
        "count": pc.cast(pa.array(attempts, type=pa.int64()), pa.large_string()),
        "limit": pc.cast(pa.array(np.where(cap >= 1, cap, 0), type=pa.int64()),
                         pa.large_string()),
    }
    ended = incident_end > np.iinfo(np.int64).min
    policy = step == "policy"

    def fixed(text: str):
        return lambda part: pa.repeat(pa.scalar(text, pa.large_string()), len(part["rows"]))

    def outage_on_same_gateway(part: dict) -> pa.Array:
        at = part["rows"]
        known = ended[at]
        when = pa.array(format_local(incident_end[at], known, tz), type=pa.large_string())
        return join_texts(part["gw"], " had an outage and no other gateway's file arrived clean: "
                          "retry ", part["yuan"], " on ", part["gw"], " after the incident",
                          pc.if_else(pa.array(known), join_texts(" (ended ", when, ")"), ""))

    def is_cause(value: str) -> np.ndarray:
        return (cause == value).to_numpy(bool)

    sentences = [
        (step == "duplicates",
         fixed("overpaid by its duplicate debits only: refunded through their refund rows")),
        (step == "refund",
         lambda p: join_texts("settled more than due: refund ", p["yuan"], " to the borrower")),
        (step == "file", fixed("a settlement file of this installment's attempts has not "
                               "arrived: rerun D when it does, no debit before")),
        (step == "pending", fixed("an attempt of this installment is PENDING at its gateway (no "
                                  "final result yet, it may still succeed): no debit before its "
                                  "result arrives; rerun D when it does")),
        (step == "query",
         lambda p: join_texts("an attempt via ", p["gw"], " has no settlement record: ask ",
                              p["gw"], " for its result before any new debit, or the borrower "
                              "may be charged twice")),
        (step == "rebind",
         lambda p: join_texts("card rebound after the failed attempt (binding ", p["binding"],
                              "): retry ", p["yuan"], " on the new binding; ", p["count"],
                              " of at most ", p["limit"], " attempts made so far")),
        (step == "cap",
         lambda p: join_texts(p["cause"], ": ", p["count"], " attempts reached the limit of ",
                              p["limit"], "; no automatic debit, hand to collections")),
        (policy & (choice == "retry_other_gateway"),
         lambda p: join_texts(p["gw"], " had an outage: retry ", p["yuan"], " through ", p["other"],
                              ", whose file arrived clean")),
        (policy & (choice == "retry") & is_cause(R.GATEWAY_OUTAGE.value),
         outage_on_same_gateway),
        (policy & (choice == "retry") & is_cause(R.NOT_INSTRUCTED.value),
         lambda p: join_texts("internal: the collections system did not send a debit; send ",
                              p["yuan"])),
        (policy & (choice == "retry"),
         lambda p: join_texts(p["cause"], ": retry ", p["yuan"], "; ", p["count"], " of at most ",
                              p["limit"], " attempts made so far")),
        (policy & (choice == "wait_for_borrower") & is_cause(R.INSTRUCTION_NOT_CONFIRMED.value),
         fixed("the borrower must confirm the debit instruction first")),
        (policy & (choice == "wait_for_borrower"),
         lambda p: join_texts(p["cause"],
                              ": the borrower must bind a valid card or account first")),
        (policy & (choice == "query_gateway"),
         lambda p: join_texts("ask ", p["gw"], " for the attempt's result before any new debit")),
        (policy & (choice == "wait_for_file"), fixed("wait for the settlement file, then rerun D")),
        (policy & (choice == "none") & is_cause(R.ACCOUNT_FROZEN.value),
         fixed("account frozen: no debit; contact the borrower and check for a judicial freeze")),
        (policy & (choice == "none") & is_cause(R.UNCLASSIFIED.value)
         & (rows["rule"].to_numpy(np.int64) == Rule.ANYTHING_ELSE),
         lambda p: join_texts("every attempt succeeded, yet ", p["yuan"], " is still owed: no "
                              "automatic debit; investigate the instructions' amounts")),
        (policy & (choice == "none") & is_cause(R.UNCLASSIFIED.value),
         fixed("cause not recognised: no automatic debit; investigate and extend the code map")),
        (policy & (choice == "none"),
         lambda p: join_texts(p["cause"], ": the policy plans no automatic action")),
    ]
    # Each sentence's texts for its rows, then all put back in row order with one take.
    pieces, positions = [], []
    filled = np.zeros(n, dtype=bool)
    for condition, sentence in sentences:
        taken = np.flatnonzero(np.asarray(condition, dtype=bool) & ~filled)
        if taken.size:
            index = pa.array(taken)
            part = {name: column.take(index) for name, column in columns.items()}
            part["rows"] = taken
            pieces.append(sentence(part))
            positions.append(taken)
            filled[taken] = True
    rest = np.flatnonzero(~filled)
    pieces.append(pa.repeat(pa.scalar("", pa.large_string()), rest.size))
    positions.append(rest)
    order = np.argsort(np.concatenate(positions), kind="stable")
    return pa.chunked_array(pieces, pa.large_string()).take(pa.array(order))
