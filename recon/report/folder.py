"""The report folder of `recon report`: read the stored results of a range, write its CSVs and page.

`OUT/report_<D1>_<D2>/` is staged and published whole, as a date's reports are, so a reader never
sees half of it.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

from recon.db import engine
from recon.errors import UsageError
from recon.report.page import render_html
from recon.report.trend import (ACTIONS_BY_DAY_COLUMNS, BY_DAY_COLUMNS, BY_DAYS_PAST_DUE_COLUMNS,
                                BY_GATEWAY_COLUMNS, BY_ROOT_CAUSE_COLUMNS, NUMBER_COLUMNS,
                                RETRY_PLAN_BY_DAY_COLUMNS, Trend, actions_by_day, as_text,
                                build_trend, days_past_due_table, retry_plan_table)
from recon.sinks.reports import FILE_MODE, StagedReports, clean_up, output_errors
from recon.sources import stored


def make_report(database_url: str, out_dir: Path, date_from: dt.date, date_to: dt.date, *,
                generated_at: str) -> tuple[Path, Trend]:
    """Read the stored results of the dates and write the report folder; return it and tables."""
    database = engine.connect(database_url)
    try:
        if not stored.has_results_schema(database):
            raise UsageError(f"database {database.shown_url} holds no recon results",
                             next_step="check --db or RECON_DATABASE_URL, or run `recon run` first")
        groups = stored.read_daily_root_causes(database, date_from.isoformat(), date_to.isoformat())
        runs = stored.read_stored_runs(database, date_from.isoformat(), date_to.isoformat())
        overdue = stored.read_days_past_due(database, date_from.isoformat(), date_to.isoformat())
        actions = stored.read_retry_actions(database, date_from.isoformat(), date_to.isoformat())
        notice_actions = stored.read_daily_actions(database, date_from.isoformat(),
                                               date_to.isoformat())
        source = database.shown_url
    finally:
        database.dispose()
    trend = build_trend(groups, runs, date_from, date_to)
    trend.by_days_past_due = days_past_due_table(overdue)
    trend.retry_plan = retry_plan_table(actions)
    trend.actions_by_day = actions_by_day(notice_actions, set(trend.by_day["business_date"]))
    page = render_html(trend, generated_at=generated_at, source=source)
    return write_report(trend, page, out_dir), trend


def write_report(trend: Trend, page: str, out_dir: Path) -> Path:
    """Write `OUT/report_<D1>_<D2>/` (report.html and three CSVs), replacing an earlier one."""
    name = f"report_{trend.date_from}_{trend.date_to}"
    staged = StagedReports(out_dir, name, uuid.uuid4().hex[:16])
    try:
        for file, frame, columns in (
                ("by_day.csv", as_text(trend.by_day), BY_DAY_COLUMNS),
                ("by_gateway.csv", as_text(trend.by_gateway), BY_GATEWAY_COLUMNS),
                ("by_root_cause.csv", as_text(trend.by_root_cause), BY_ROOT_CAUSE_COLUMNS),
                ("by_days_past_due.csv", as_text(trend.by_days_past_due),
                 BY_DAYS_PAST_DUE_COLUMNS),
                ("retry_plan_by_day.csv", as_text(trend.retry_plan), RETRY_PLAN_BY_DAY_COLUMNS),
                ("actions_by_day.csv", trend.actions_by_day, ACTIONS_BY_DAY_COLUMNS)):
            staged.write(file, frame, columns, bom=True, own=NUMBER_COLUMNS)
        page_path = staged.folder / "report.html"
        with output_errors(name, page_path):
            page_path.write_text(page, encoding="utf-8")
            os.chmod(page_path, FILE_MODE)
        staged.files.append("report.html")
        staged.prepare()
    except BaseException:
        staged.discard()
        raise
    published = staged.publish()
    clean_up(out_dir, name, {staged.run_id})
    return published
