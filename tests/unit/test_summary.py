"""recon.summary: the lines printed at the end of a date's run."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from recon.run_report import RunReport, days_past_due_buckets
from recon.summary import render_summary, yuan


def report(**fields) -> RunReport:
    return RunReport(business_date=dt.date(2026, 11, 27), run_id="r1", exit_code=0,
                     outcome="done", status_counts={"paid": 1200, "unpaid": 34}, **fields)


def test_amounts_have_thousands_separators_as_the_counts_have():
    assert [yuan(1128232255), yuan(5), yuan(-123456789), yuan(0)] == \
        ["11,282,322.55", "0.05", "-1,234,567.89", "0.00"]
    text = render_summary(report(amount_due_fen=1128232255, amount_outstanding_fen=12345600))
    assert "amount due 11,282,322.55, outstanding 123,456.00 CNY" in text
    assert "installments 1,234" in text


def test_the_retry_plan_gets_one_line_with_its_count_per_action():
    text = render_summary(report(retry_actions={"retry": 1500, "none": 3, "refund": 2}))
    assert "  retry plan: retry 1,500, none 3, refund 2 (retry_plan.csv)" in text.splitlines()


def test_collected_and_not_collected_by_days_past_due():
    outcomes = pd.DataFrame({
        "status": ["paid", "unpaid", "paid", "partially_paid", "unpaid", "overpaid"],
        "days_past_due": [0, 0, 5, 30, 31, 90],
        "amount_outstanding": [0, 10000, 0, 2550, 700, -500],
    })
    buckets = days_past_due_buckets(outcomes)
    assert buckets == {
        "0": {"collected": 1, "not_collected": 1, "amount_outstanding": 10000},
        "1-30": {"collected": 1, "not_collected": 1, "amount_outstanding": 2550},
        "31-60": {"collected": 0, "not_collected": 1, "amount_outstanding": 700},
        "over 60": {"collected": 1, "not_collected": 0, "amount_outstanding": 0},
    }
    text = render_summary(report(by_days_past_due=buckets))
    assert ("  by days past due: 0: 1 collected, 1 not (100.00 outstanding); 1-30: 1 collected, "
            "1 not (25.50 outstanding); 31-60: 0 collected, 1 not (7.00 outstanding); over 60: "
            "1 collected, 0 not (0.00 outstanding)") in text.splitlines()
