"""What recon's tables hold, as the writers name it: column lists, and how a moment is stored
in the text timestamp columns."""

from __future__ import annotations

import datetime as dt
import re

from recon.contract import RETRY_PLAN_COLUMNS


OUTCOME_COLUMNS = ["business_date", "loan_id", "installment_no", "borrower_id", "status",
                   "root_cause", "amount_due", "amount_settled", "gateway", "response_code",
                   "run_id", "days_past_due", "attempts"]

SETTLEMENT_EXCEPTION_COLUMNS = ["business_date", "gateway", "gateway_txn_id", "instruction_id",
                                "amount", "kind", "detail", "run_id"]

REJECT_COLUMNS = ["business_date", "file", "line", "column_name", "value", "reason", "run_id"]

RETRY_PLAN_DB_COLUMNS = RETRY_PLAN_COLUMNS + ["run_id"]

WATCHLIST_COLUMNS = ["business_date", "loan_id", "borrower_id", "risk", "evidence",
                     "suggested_action", "run_id"]

def iso_date(business_date: str) -> str:
    """D as YYYY-MM-DD, checked: it is spliced into DDL (table names, partition bounds)."""
    text = str(business_date)
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(f"not a business date: {business_date!r}")
    return text


def timestamp_text(moment: dt.datetime) -> str:
    """A moment as recon_runs and schema_version store it: ISO 8601 in UTC, with microseconds
    (runs of one date started within the same second must still be ordered)."""
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")
