"""The page of `recon report`: one self-contained HTML file, two charts and the tables behind them.

The page has no script and loads nothing: inline CSS and inline SVG charts, every bar and point
carrying its numbers as `data-*` attributes and a tooltip, so it opens from a shared drive on a
machine without internet. The legends are HTML, not part of the charts, so the Chinese labels are
drawn by the browser with the page's CJK fonts.
"""

from __future__ import annotations

import html

from recon.contract import ROOT_CAUSE_ZH, SUGGESTED_ACTION, RootCause
from recon.report.charts import CAUSE_COLOURS, GATEWAY_COLOURS, gateway_chart, root_cause_chart
from recon.report.trend import ACTIONS_BY_DAY_COLUMNS, CAUSE_ORDER, PROVISIONAL, Trend, yuan


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _legend(items: list[tuple[str, str]]) -> str:
    return '<ul class="legend">' + "".join(
        f'<li><span class="swatch" style="background:{colour}"></span>{_esc(text)}</li>'
        for colour, text in items) + "</ul>"


NUMERIC_CELL = '<td class="num">'


def _table(header: list[str], rows: list[list], numeric: set[int]) -> str:
    head = "".join(f"<th>{_esc(name)}</th>" for name in header)
    body = "".join(
        "<tr>" + "".join((NUMERIC_CELL if i in numeric else "<td>") + f"{_esc(cell)}</td>"
                         for i, cell in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """
body { font-family: "Microsoft YaHei", "PingFang SC", "Noto Sans CJK SC", "WenQuanYi Micro Hei",
       "DejaVu Sans", Arial, sans-serif; margin: 24px; color: #222; max-width: 1000px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.meta, .note { color: #555; font-size: 13px; }
svg { display: block; }
.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 4px 16px;
          font-size: 12px; }
.swatch { display: inline-block; width: 11px; height: 11px; margin-right: 5px;
          vertical-align: -1px; }
table { border-collapse: collapse; font-size: 12px; margin-top: 6px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; } th { background: #f4f4f4; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
"""


def render_html(trend: Trend, *, generated_at: str, source: str) -> str:
    """The self-contained page: two SVG charts and the tables behind them."""
    by_day, by_cause = trend.by_day, trend.by_root_cause
    provisional = sorted(trend.provisional_days)
    missing = [day for day in trend.days if day not in set(by_day["business_date"])]
    causes_present = [cause for cause in CAUSE_ORDER if cause in set(by_cause["root_cause"])]
    gateways = sorted(set(trend.by_gateway["gateway"]) - {""})
    notes = []
    if provisional:
        notes.append("* provisional: a settlement file had not arrived when the stored run "
                     "finished (" + ", ".join(provisional) + "); rerun those dates when it "
                     "arrives.")
    if missing:
        notes.append(f"No stored results for {len(missing)} date(s) of the range: "
                     + ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))

    day_rows = [[row.business_date + ("*" if row.run_outcome == PROVISIONAL else ""),
                 f"{row.installments:,}", f"{row.collected:,}", f"{row.not_collected:,}",
                 f"{row.failure_rate:.2%}", yuan(row.amount_due), yuan(row.amount_outstanding),
                 row.run_outcome, row.run_id] for row in by_day.itertuples()]
    cause_totals = by_cause.groupby("root_cause").agg(
        installments=("installments", "sum"), amount_outstanding=("amount_outstanding", "sum"))
    cause_rows = [[cause, ROOT_CAUSE_ZH[RootCause(cause)],
                   f"{int(cause_totals.loc[cause, 'installments']):,}",
                   yuan(int(cause_totals.loc[cause, "amount_outstanding"])),
                   SUGGESTED_ACTION[RootCause(cause)]] for cause in causes_present]
    gateway_rows = [[row.business_date, row.gateway or "(none)", f"{row.installments:,}",
                     f"{row.not_collected:,}", f"{row.failure_rate:.2%}",
                     yuan(row.amount_outstanding)] for row in trend.by_gateway.itertuples()]
    overdue_rows = [[row.business_date, row.days_past_due, f"{row.installments:,}",
                     f"{row.collected:,}", f"{row.not_collected:,}",
                     yuan(row.amount_outstanding)] for row in trend.by_days_past_due.itertuples()]
    plan_rows = [[row.business_date, row.action, f"{row.rows:,}", yuan(row.amount)]
                 for row in trend.retry_plan.itertuples()]
    title = f"Collections reconciliation, {trend.date_from} to {trend.date_to}"
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        f'<p class="meta">{len(by_day)} of {len(trend.days)} dates have stored results. '
        f"Generated {_esc(generated_at)} from {_esc(source)} by <code>recon report</code>; the "
        "same numbers are in by_day.csv, by_gateway.csv, by_root_cause.csv, "
        "by_days_past_due.csv and retry_plan_by_day.csv next to this page.</p>",
        "".join(f'<p class="note">{_esc(note)}</p>' for note in notes),
        "<h2>Installments not collected, by root cause</h2>",
        root_cause_chart(trend),
        _legend([(CAUSE_COLOURS[cause], f"{cause} {ROOT_CAUSE_ZH[RootCause(cause)]}")
                 for cause in causes_present]),
        "<h2>Failure rate per gateway (share of its installments not collected)</h2>",
        gateway_chart(trend),
        _legend([(GATEWAY_COLOURS[n % len(GATEWAY_COLOURS)], gateway)
                 for n, gateway in enumerate(gateways)]),
        '<p class="note">Installments never sent to a gateway (card_unbound, not_instructed '
        "without an instruction) are in the first chart, not in this one.</p>",
        "<h2>Per day</h2>",
        _table(["date", "installments", "collected", "not collected", "failure rate",
                "amount due", "outstanding", "run outcome", "run id"], day_rows,
               {1, 2, 3, 4, 5, 6}),
        "<h2>Borrower notices and watchlist per day</h2>",
        _table(["date", "SMS", "calls", "withdrawn", "no active binding", "binding ended",
                "repeated failure"],
               [[row[0]] + [f"{int(value):,}" for value in row[1:]]
                for row in trend.actions_by_day[ACTIONS_BY_DAY_COLUMNS].itertuples(index=False)],
               {1, 2, 3, 4, 5, 6}),
        "<h2>Root causes over the period</h2>",
        _table(["root cause", "中文", "installments", "outstanding", "what ops does next"],
               cause_rows, {2, 3}),
        "<h2>Per gateway and day</h2>",
        _table(["date", "gateway", "installments", "not collected", "failure rate",
                "outstanding"], gateway_rows, {2, 3, 4, 5}),
        "<h2>Collected and not collected by days past due</h2>",
        _table(["date", "days past due", "installments", "collected", "not collected",
                "outstanding"], overdue_rows, {2, 3, 4, 5}),
        "<h2>Retry plan per day (next action per installment not collected)</h2>",
        _table(["date", "action", "rows", "amount"], plan_rows, {2, 3}),
        "</body></html>",
    ])
