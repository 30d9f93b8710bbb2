"""The act and plan steps of a run (CONTRACT 7): the watchlist, the borrower notices and the
retry plan of D, from its outcomes. The clock is read once, here, for the notices' moment; the
plan is made as of the end of D."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow.compute as pc

from recon.clock import utc_now
from recon.config import Settings
from recon.frames import arrow_strings
from recon.intake import DayInputs
from recon.notices import Outbox, notice_items
from recon.retry import plan_retries
from recon.retry_policy import RetryPolicy
from recon.run_report import RunReport
from recon.watchlist import repeat_borrowers, watchlist

if TYPE_CHECKING:
    from recon.pipeline import Phases


def plan(business_date: dt.date, settings: Settings, inputs: DayInputs, decisions, ids,
         suspected: pd.DataFrame, policy: RetryPolicy, earlier_job, report: RunReport,
         phases: Phases, run_id: str) -> pd.DataFrame:
    """CONTRACT 7's retry plan. Made first: the server stores it while the watchlist and the
    notices are made (act)."""
    with phases("plan", business_date, run_id):
        retry_plan = plan_retries(
            decisions.outcomes, bindings=inputs.bindings, loan_of_binding=ids.loan_of_binding,
            incidents=inputs.incidents, duplicates=decisions.settlement_exceptions,
            instructions=inputs.instructions, earlier_attempts=earlier_job.result(),
            clean_gateways=clean_gateways(inputs, suspected, settings.tz), policy=policy,
            business_date=business_date, now=plan_moment(business_date, settings),
            tz=settings.tz)
        report.retry_actions = {str(action): int(count) for action, count in
                                retry_plan["action"].value_counts().sort_index().items()}
    return retry_plan


def act(business_date: dt.date, settings: Settings, inputs: DayInputs, decisions, ids,
        retry_plan: pd.DataFrame, templates, history_job, report: RunReport, phases: Phases,
        run_id: str) -> tuple[pd.DataFrame, Outbox]:
    """CONTRACT 7's watchlist, and the notices' items (composed by the caller: Outbox.
    compose_ahead), which say what the retry plan does."""
    outcomes = decisions.outcomes
    with phases("act", business_date, run_id):
        watch = watchlist(outcomes, inputs.bindings, history_job.result(), business_date,
                          settings.tz, ids)
        report.watchlist_risks = {str(k): int(v) for k, v in
                                  watch["risk"].value_counts().sort_index().items()}
        # The clock is read here, once: the notices' earliest send time follows from it.
        outbox = Outbox(notice_items(outcomes, retry_plan, inputs.bindings), templates,
                        business_date, utc_now(), settings.tz, run_id, repeat_borrowers(watch))
    return watch, outbox


def plan_moment(business_date: dt.date, settings: Settings) -> dt.datetime:
    """The moment the retry plan is made as of: the end of D (D+1 00:00 local), not the clock,
    so a rerun of D on the same inputs plans the same. Its times are earliest times: one already
    past when the plan is read means "now"."""
    return dt.datetime.combine(business_date + dt.timedelta(days=1), dt.time(0),
                               tzinfo=settings.tz)


def oldest_due_date(inputs: DayInputs, business_date: dt.date) -> str:
    """The earliest due date of D's installments: no earlier date can hold their attempts."""
    due = inputs.installments["due_date"]
    oldest = due.min() if len(due) else pd.NaT
    return (pd.Timestamp(oldest).date() if pd.notna(oldest) else business_date).isoformat()


def clean_gateways(inputs: DayInputs, suspected: pd.DataFrame, tz) -> list[str]:
    """Gateways a retry may move to: their file of D arrived, no incident of theirs is known for
    D and none is suspected; the one that settled most debits of D first."""
    day_start = pd.Timestamp(dt.datetime.combine(inputs.business_date, dt.time(0)), tz=tz)
    troubled = set()
    if len(inputs.incidents):
        troubled |= set(inputs.incidents.loc[inputs.incidents["ended_at"] >= day_start,
                                             "gateway"].str.upper())
    if len(suspected):
        troubled |= set(suspected["gateway"].astype(str).str.upper())
    # SUCCESS rows counted per gateway in Arrow (no frame of a million rows copied), then the
    # handful of distinct gateways upper-cased.
    settlements = inputs.settlements
    counts: dict[str, int] = {}
    if len(settlements):
        success = pc.equal(arrow_strings(settlements["status"]), "SUCCESS")
        for item in pc.value_counts(pc.filter(arrow_strings(settlements["gateway"]),
                                              success)).to_pylist():
            gateway = str(item["values"]).upper()
            counts[gateway] = counts.get(gateway, 0) + int(item["counts"])
    usable = [gateway for gateway in inputs.arrived_gateways if gateway not in troubled]
    return sorted(usable, key=lambda gateway: (-int(counts.get(gateway, 0)), gateway))
