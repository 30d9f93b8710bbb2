"""exceptions.csv (CONTRACT 4.1): one row of text per installment not paid, with its evidence.

The evidence sentences themselves sit beside the rules they explain (recon.rules); here they are
applied, the first whose condition holds for a row winning. Pure: frames in, frames out.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd

from recon.contract import ROOT_CAUSE_ZH, SUGGESTED_ACTION, Status
from recon.formatting import fmt_local, fmt_yuan
from recon.rules import EVIDENCE, PARTLY_SETTLED, Words


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
    """One plain sentence per row saying why it got its status and root cause: the first of
    recon.rules.EVIDENCE that holds, and how much was settled for a partially paid one."""
    words = Words(due, settled, business_date, tz)
    sentences = pd.Series("", index=rows.index, dtype="str")
    filled = pd.Series(False, index=rows.index)
    for condition, sentence in EVIDENCE:
        take = condition(rows) & ~filled
        if take.any():
            sentences[take] = sentence(rows[take], words)
        filled |= take
    condition, clause = PARTLY_SETTLED
    partial = condition(rows)
    if partial.any():
        sentences[partial] = sentences[partial] + clause(rows[partial], words)
    return sentences
