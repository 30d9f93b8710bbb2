"""The trend report's tables over stored results (recon.report.trend.build_trend). Pure."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from recon.report.page import render_html
from recon.report.trend import build_trend

GROUP_COLUMNS = ["business_date", "root_cause", "gateway", "status", "installments", "amount_due",
                 "amount_outstanding"]
RUN_COLUMNS = ["business_date", "run_id", "outcome", "exit_code", "ended_at"]


def test_dates_without_results_give_empty_tables_not_a_crash():
    # As the database read gives them when every run of the dates crashed or was refused.
    groups = pd.DataFrame({column: pd.Series(dtype="str") for column in GROUP_COLUMNS})
    runs = pd.DataFrame({column: pd.Series(dtype="str") for column in RUN_COLUMNS})
    trend = build_trend(groups, runs, dt.date(2026, 11, 1), dt.date(2026, 11, 2))
    assert trend.by_day.empty and trend.by_gateway.empty and trend.by_root_cause.empty
    page = render_html(trend, generated_at="2026-11-03T08:00:00+08:00", source="sqlite:///r.db")
    assert page.count("no run</text>") == 2


def test_a_day_with_every_installment_collected_has_rate_zero():
    groups = pd.DataFrame({"business_date": ["2026-11-01"], "root_cause": [None],
                           "gateway": ["UNIONPAY"], "status": ["paid"], "installments": [3],
                           "amount_due": ["300.00"], "amount_outstanding": ["0.00"]})
    runs = pd.DataFrame({"business_date": ["2026-11-01"], "run_id": ["r1"], "outcome": ["done"],
                         "exit_code": [0], "ended_at": ["2026-11-02"]})
    trend = build_trend(groups, runs, dt.date(2026, 11, 1), dt.date(2026, 11, 1))
    assert trend.by_day["failure_rate"].tolist() == [0.0]
    assert trend.by_root_cause.empty
