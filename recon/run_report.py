"""What one run did, for the CLI's summary and the stored counts (RunReport), and the rows it
stores made from its inputs and decisions: the outcome rows (refused when a settled amount does
not fit the column), the rejects, the days-past-due buckets."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

import pandas as pd

from recon.contract import MAX_AMOUNT_FEN, ExitCode, Status
from recon.errors import InputRefused
from recon.formatting import fmt_yuan
from recon.intake import DayInputs
from recon.protect import protect_rejects


@dataclass
class RunReport:
    """What one business date's run did; the CLI turns it into a summary and an exit code."""

    business_date: dt.date
    run_id: str
    exit_code: int
    outcome: str  # done, incomplete, refused, failed, locked
    message: str = ""
    status_counts: dict[str, int] = field(default_factory=dict)
    cause_counts: dict[str, int] = field(default_factory=dict)
    amount_due_fen: int = 0
    amount_outstanding_fen: int = 0
    rows_rejected: int = 0
    duplicates_collapsed: int = 0
    not_arrived: list[str] = field(default_factory=list)
    ledger: list[dict] = field(default_factory=list)
    settlement_exceptions: dict[str, int] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    out_dir: str = ""
    previous_run_id: str = ""  # the run whose results this one replaced; "" on a first run
    changes: dict[str, int] = field(default_factory=dict)  # "pending -> paid" -> installments
    suspected_incidents: list[dict] = field(default_factory=list)  # rows of suspected_incidents.csv
    retry_actions: dict[str, int] = field(default_factory=dict)  # retry_plan.csv rows per action
    # Per days-past-due bucket (0, 1-30, 31-60, over 60): collected, not_collected (counts) and
    # amount_outstanding (fen).
    by_days_past_due: dict[str, dict[str, int]] = field(default_factory=dict)
    notice_channels: dict[str, int] = field(default_factory=dict)  # D's live notices by channel
    notice_changes: dict[str, int] = field(default_factory=dict)  # added, cancelled, kept, taken
    watchlist_risks: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict:
        return {
            "installments": sum(self.status_counts.values()),
            "status": self.status_counts,
            "root_cause": self.cause_counts,
            "amount_due": fmt_yuan(pd.Series([self.amount_due_fen])).iloc[0],
            "amount_outstanding": fmt_yuan(pd.Series([self.amount_outstanding_fen])).iloc[0],
            "rows_rejected": self.rows_rejected,
            "duplicates_collapsed": self.duplicates_collapsed,
            "settlement_exceptions": self.settlement_exceptions,
            "not_arrived": self.not_arrived,
            "files": self.ledger,
            "phases_seconds": self.phases,
            "previous_run_id": self.previous_run_id,
            "changes": self.changes,
            "suspected_incidents": self.suspected_incidents,
            "retry_plan": self.retry_actions,
            "by_days_past_due": self.by_days_past_due,
            "notices": {"channel": self.notice_channels, **self.notice_changes},
            "watchlist": self.watchlist_risks,
        }


def refuse_unstorable_settled(inputs: DayInputs, outcomes: pd.DataFrame) -> None:
    """An installment settled more than NUMERIC(14,2) holds refuses the date, on every database.

    Each amount fits (validate rejects larger ones), but several SUCCESS rows can add up past
    999,999,999,999.99: PostgreSQL would refuse the row mid-write, SQLite would store it. No
    real car loan is settled that much: the rows are wrong, and a person must look at them.
    """
    over = outcomes[outcomes["amount_settled"] > MAX_AMOUNT_FEN]
    if over.empty:
        return
    first = over.iloc[0]
    instructions = inputs.instructions
    ids = instructions.loc[(instructions["loan_id"] == first["loan_id"])
                           & (instructions["installment_no"] == first["installment_no"]),
                           "instruction_id"]
    settlements = inputs.settlements
    rows = settlements[settlements["instruction_id"].isin(ids)
                       & (settlements["status"] == "SUCCESS")]
    where = "; ".join(f"{file} line(s) {', '.join(str(line) for line in group['line'][:5])}"
                      for file, group in rows.groupby("file", sort=True))
    others = f" (and {len(over) - 1} more installment(s))" if len(over) > 1 else ""
    raise InputRefused(
        f"installment {first['loan_id']}/{first['installment_no']} is settled "
        f"{fmt_yuan(pd.Series([first['amount_settled']]))[0]}, more than NUMERIC(14,2) holds "
        f"(999999999999.99){others}; its SUCCESS rows: {where}",
        next_step="check those settlement rows with the gateway, then rerun the date")


def rejects_frame(inputs: DayInputs) -> pd.DataFrame:
    rejects = inputs.rejects.copy()
    rejects.insert(0, "business_date", inputs.business_date.isoformat())
    rejects["line"] = rejects["line"].astype("Int64")
    return protect_rejects(rejects)


def outcome_rows(outcomes: pd.DataFrame, day: str, run_id: str) -> pd.DataFrame:
    return pd.DataFrame({
        "business_date": day,
        "loan_id": outcomes["loan_id"],
        "installment_no": outcomes["installment_no"],
        "borrower_id": outcomes["borrower_id"],
        "status": outcomes["status"],
        "root_cause": outcomes["root_cause"],
        "amount_due": fmt_yuan(outcomes["amount_due"]),
        "amount_settled": fmt_yuan(outcomes["amount_settled"]),
        "gateway": outcomes["gateway"],
        "response_code": outcomes["response_code"],
        "run_id": run_id,
        "days_past_due": outcomes["days_past_due"],
        "attempts": outcomes["attempts"],
    })


def report_of(inputs: DayInputs, decisions, run_id: str, phases: dict[str, float]) -> RunReport:
    """The run's report from its inputs and decisions; `phases` (seconds per phase, filled in
    as the run goes on) is shared, not copied."""
    outcomes = decisions.outcomes
    causes = outcomes.loc[outcomes["status"] != Status.PAID.value, "root_cause"].value_counts()
    causes = {str(cause): int(count) for cause, count in causes.items() if cause}
    outstanding = outcomes["amount_outstanding"]
    report = RunReport(
        business_date=inputs.business_date,
        run_id=run_id,
        exit_code=ExitCode.OK,
        outcome="done",
        status_counts={str(k): int(v) for k, v in outcomes["status"].value_counts().items()},
        cause_counts=dict(sorted(causes.items())),
        amount_due_fen=int(outcomes["amount_due"].sum()),
        amount_outstanding_fen=int(outstanding[outstanding > 0].sum()),
        rows_rejected=int(sum(entry.rows_rejected for entry in inputs.ledger)),
        duplicates_collapsed=int(sum(entry.duplicates_collapsed for entry in inputs.ledger)),
        not_arrived=[f"{refusal.file}: {refusal.reason}" for refusal in inputs.refusals],
        ledger=[dataclasses.asdict(entry) for entry in inputs.ledger],
        settlement_exceptions={str(k): int(v) for k, v in
                               decisions.settlement_exceptions["kind"].value_counts().items()},
        phases=phases,
    )
    report.by_days_past_due = days_past_due_buckets(outcomes)
    if inputs.refusals:
        report.message = f"{len(inputs.refusals)} settlement file(s) not arrived; rerun later"
    return report


DAYS_PAST_DUE_BUCKETS = ["0", "1-30", "31-60", "over 60"]


def days_past_due_bucket(days: pd.Series) -> pd.Series:
    """0, 1-30, 31-60 or over 60 (CONTRACT 2.1's days_past_due)."""
    return pd.Series(pd.cut(days, [-1, 0, 30, 60, float("inf")], labels=DAYS_PAST_DUE_BUCKETS)
                     .astype(str), index=days.index)


def days_past_due_buckets(outcomes: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per bucket with installments: collected and not collected counts, outstanding fen."""
    if outcomes.empty:
        return {}
    collected = outcomes["status"].isin([Status.PAID.value, Status.OVERPAID.value])
    frame = pd.DataFrame({
        "bucket": days_past_due_bucket(outcomes["days_past_due"]),
        "collected": collected.astype("int64"),
        "not_collected": (~collected).astype("int64"),
        "amount_outstanding": outcomes["amount_outstanding"].clip(lower=0).astype("int64"),
    })
    sums = frame.groupby("bucket").sum()
    return {bucket: {column: int(sums.loc[bucket, column]) for column in sums.columns}
            for bucket in DAYS_PAST_DUE_BUCKETS if bucket in sums.index}
