"""The short human summaries the commands print: each date's run, the trend report, a gateway
sample check."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from recon.contract import ExitCode
from recon.formatting import fmt_local, fmt_yuan
from recon.protect import mask_cards_in_text
from recon.report.trend import ACTIONS_BY_DAY_COLUMNS


def yuan(fen: int) -> str:
    """Fen as yuan with thousands separators, as the counts have: `11,282,322.55`."""
    text = fmt_yuan(pd.Series([fen])).iloc[0]
    sign, text = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, cents = text.split(".")
    return f"{sign}{int(whole):,}.{cents}"


def render_summary(report) -> str:
    day = report.business_date.isoformat()
    lines = [f"recon {day}: {report.outcome} (exit {report.exit_code}), run {report.run_id}"]
    if report.exit_code == ExitCode.INPUT_REFUSED:
        return "\n".join(lines)
    total = sum(report.status_counts.values())
    statuses = ", ".join(f"{name} {count:,}" for name, count in
                         sorted(report.status_counts.items(), key=lambda item: -item[1]))
    lines.append(f"  installments {total:,}: {statuses}")
    if report.cause_counts:
        causes = ", ".join(f"{name} {count:,}" for name, count in
                           sorted(report.cause_counts.items(), key=lambda item: -item[1]))
        lines.append(f"  root causes: {causes}")
    lines.append(f"  amount due {yuan(report.amount_due_fen)}, outstanding "
                 f"{yuan(report.amount_outstanding_fen)} CNY")
    lines.extend(days_past_due_lines(report.by_days_past_due))
    if report.settlement_exceptions:
        kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(report.settlement_exceptions.items()))
        lines.append(f"  settlement exceptions: {kinds}")
    lines.append(f"  rows rejected {report.rows_rejected:,}, duplicates collapsed "
                 f"{report.duplicates_collapsed:,}")
    fields_cut = sum(entry.get("fields_cut", 0) for entry in report.ledger)
    if fields_cut:
        lines.append(f"  over-long text fields cut to RECON_MAX_FIELD_CHARS {fields_cut:,} "
                     f"(rows kept; file, line and column in the log)")
    for entry in report.not_arrived:
        lines.append(f"  NOT ARRIVED {entry}")
    lines.extend(action_lines(report))
    lines.extend(suspected_incident_lines(report.suspected_incidents))
    # What to do next, one line per output of CONTRACT 7: the retry plan here; the borrower
    # notices (by channel) and the watchlist (by risk) go below it.
    lines.extend(retry_plan_lines(report.retry_actions))
    lines.extend(change_lines(report.previous_run_id, report.changes))
    if report.out_dir:
        lines.append(f"  reports in {report.out_dir}")
    elif report.outcome == "unpublished":
        lines.append(f"  REPORTS NOT PUBLISHED: {report.message}")
    return "\n".join(lines)


SHOWN_TRANSITIONS = 8


def _counted(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in sorted(counts.items())) or "none"


def action_lines(report) -> list[str]:
    """Borrower notices by channel (and what the run did to D's outbox); watchlist by risk."""
    lines = []
    changes = report.notice_changes
    if changes:
        lines.append(f"  notices by channel: {_counted(report.notice_channels)} (added "
                     f"{changes['added']:,}, cancelled {changes['cancelled']:,}, kept "
                     f"{changes['kept']:,}, taken {changes['taken']:,}; notices.csv)")
    if report.watchlist_risks or changes:
        lines.append(f"  watchlist by risk: {_counted(report.watchlist_risks)} (watchlist.csv)")
    return lines


def suspected_incident_lines(incidents: list[dict]) -> list[str]:
    """One line per suspected gateway outage (recon.outages), with what to do about it."""
    lines = []
    for incident in incidents:
        line = (f"  SUSPECTED OUTAGE {incident['gateway']} {incident['window_start']} .. "
                f"{incident['window_end']}: {incident['failures']:,} of "
                f"{incident['attempts']:,} attempts failed ({incident['failure_rate']:.0%})")
        if incident["known_incident"]:
            line += f"; already in gateway_incidents.csv ({incident['known_incident']})"
        else:
            line += "; if confirmed, add it to gateway_incidents.csv and rerun"
        lines.append(line)
    return lines


def change_lines(previous_run_id: str, changes: dict[str, int]) -> list[str]:
    """The run diff: counts per transition since the previous completed run of the date."""
    if not previous_run_id:
        return []
    if not changes:
        return [f"  no changes since run {previous_run_id}"]
    lines = [f"  changes since run {previous_run_id}: {sum(changes.values()):,} installments "
             f"(changes.csv)"]
    shown = list(changes.items())[:SHOWN_TRANSITIONS]
    lines.extend(f"    {transition}: {count:,}" for transition, count in shown)
    if len(changes) > SHOWN_TRANSITIONS:
        lines.append(f"    ... {len(changes) - SHOWN_TRANSITIONS} more kinds of change")
    return lines


def retry_plan_lines(actions: dict[str, int]) -> list[str]:
    """The retry plan's rows per action (retry_plan.csv)."""
    if not actions:
        return ["  retry plan: nothing to do (retry_plan.csv)"]
    shown = ", ".join(f"{action} {count:,}" for action, count in
                      sorted(actions.items(), key=lambda item: (-item[1], item[0])))
    return [f"  retry plan: {shown} (retry_plan.csv)"]


def days_past_due_lines(buckets: dict[str, dict[str, int]]) -> list[str]:
    """Collected and not collected by days past due (0, 1-30, 31-60, over 60)."""
    if not buckets:
        return []
    parts = [f"{bucket}: {row['collected']:,} collected, {row['not_collected']:,} not "
             f"({yuan(row['amount_outstanding'])} outstanding)"
             for bucket, row in buckets.items()]
    return ["  by days past due: " + "; ".join(parts)]


def trend_lines(trend, folder: Path, date_from: dt.date, date_to: dt.date) -> list[str]:
    """What `recon report` prints: how many dates have results, the retry plan of each, the
    notices and watchlist rows, and where the report is."""
    days = trend.by_day
    lines = [f"recon report {date_from}..{date_to}: {len(days)} of {len(trend.days)} dates have "
             f"results; {int(days['installments'].sum()):,} installments, "
             f"{int(days['not_collected'].sum()):,} not collected"]
    for day, actions in trend.retry_plan.groupby("business_date", sort=True):
        lines.append(f"  {day} retry plan: " + ", ".join(
            f"{row.action} {row.rows:,}" for row in actions.itertuples()))
    notice_actions = trend.actions_by_day
    lines.append(f"  notices {int(notice_actions['notices_sms'].sum()):,} SMS, "
                 f"{int(notice_actions['notices_call'].sum()):,} calls, "
                 f"{int(notice_actions['notices_cancelled'].sum()):,} withdrawn; watchlist rows "
                 f"{int(notice_actions[ACTIONS_BY_DAY_COLUMNS[4:]].sum().sum()):,} "
                 f"(actions_by_day.csv)")
    lines.append(f"  report in {folder}/report.html (and by_day.csv, by_gateway.csv, "
                 f"by_root_cause.csv, by_days_past_due.csv, retry_plan_by_day.csv, "
                 f"actions_by_day.csv)")
    return lines


def sample_check_lines(result, profile, profile_name: str, rows: int, tz: ZoneInfo) -> list[str]:
    """What `recon gateways check` prints: how the sample was read, its first `rows` records as
    recon reads them (cards masked), the completeness verdict and every problem; a refused
    sample only says why."""
    lines = [f"{result.display}: read as {profile.format} for gateway {profile.gateway} "
             f"({profile_name})"]
    if result.refused:
        return lines + [f"  REFUSED: {result.refused}"]
    records = result.records
    lines.append(f"  {result.rows_read} record(s): {len(records)} used, "
                 f"{len(result.rejects)} rejected")
    if len(records) and rows:
        shown = records.head(rows)
        table = pd.DataFrame({
            "line": shown["line"].astype(str), "gateway_txn_id": shown["gateway_txn_id"],
            "instruction_id": shown["instruction_id"], "amount": fmt_yuan(shown["amount"]),
            "status": shown["status"], "response_code": shown["response_code"],
            "txn_time": fmt_local(shown["txn_time"], tz),
            "response_msg": shown["response_msg"].str.slice(0, 30)})
        lines.append(mask_cards_in_text(table.to_string(index=False)))
    lines.append(f"  completeness: {result.verdict}")
    for problem in result.rejects.itertuples(index=False):
        where = f"line {problem.line}" if pd.notna(problem.line) else "file"
        column = f", column {problem.column}" if problem.column else ""
        lines.append(mask_cards_in_text(f"  problem: {where}{column}, value {problem.value!r}: "
                                        f"{problem.reason}"))
    return lines


def sample_check_exit_code(result) -> int:
    """0: readable and proven complete; 4: readable but not proven complete; 3: refused, or rows
    rejected."""
    if result.refused or len(result.rejects):
        return ExitCode.INPUT_REFUSED
    return ExitCode.OK if result.complete else ExitCode.INCOMPLETE
