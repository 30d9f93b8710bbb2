"""`recon report`: trends over the stored results, as CSV tables and one self-contained HTML page.

Read from the analyst view `daily_root_causes`, so the report and an analyst's own SQL agree, and
from `recon_runs` for the run whose results are stored. Per business date, gateway and root cause: installments, amounts and rates.

- `collected` = status `paid` or `overpaid`; everything else (pending included) is not collected.
- `failure_rate` = not collected / installments, of the day or of the gateway on the day.
- `amount_outstanding` = what is still owed, sum of `amount_due - amount_settled` over the
  installments not settled in full; overpayments are summed apart in `amount_overpaid`.
- `rate_of_day` (per root cause) = its installments / all installments of the day, so the rates
  of one day add up across gateways and causes.
- Gateway ids are matched case-insensitively, as everywhere in recon, and shown upper-case.
- A day whose stored run was `incomplete` (a settlement file had not arrived) is provisional:
  its `pending` installments may still turn out paid. It is marked `*` in the charts.

The HTML page has no script and loads nothing: inline CSS and SVG charts, every bar and point
carrying its numbers as `data-*` attributes and a tooltip, so it opens from a shared drive on a
machine without internet.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import math
import os
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pandas as pd

from recon.classify import fmt_yuan
from recon.contract import ROOT_CAUSE_ZH, SUGGESTED_ACTION, RootCause, Status
from recon.errors import UsageError
from recon.sinks import database as db
from recon.sinks.reports import FILE_MODE, StagedReports, clean_up, output_errors

COLLECTED = (Status.PAID.value, Status.OVERPAID.value)
CAUSE_ORDER = [cause.value for cause in RootCause]
CAUSE_COLOURS = {
    "card_unbound": "#4e79a7", "insufficient_balance": "#f28e2b", "account_frozen": "#76b7b2",
    "account_closed": "#59a14f", "gateway_outage": "#e15759",
    "instruction_not_confirmed": "#edc948", "not_instructed": "#b07aa1",
    "no_settlement_record": "#ff9da7", "settlement_pending": "#bab0ac",
    "other_decline": "#9c755f", "unclassified": "#555555",
}
GATEWAY_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
                   "#e377c2", "#7f7f7f", "#bcbd22"]

BY_DAY_COLUMNS = ["business_date", "run_outcome", "run_id", "installments", "collected",
                  "not_collected", "failure_rate", "amount_due", "amount_outstanding",
                  "amount_overpaid"]
BY_GATEWAY_COLUMNS = ["business_date", "gateway", "installments", "collected", "not_collected",
                      "failure_rate", "amount_due", "amount_outstanding"]
BY_ROOT_CAUSE_COLUMNS = ["business_date", "gateway", "root_cause", "root_cause_zh",
                         "installments", "amount_due", "amount_outstanding", "rate_of_day"]
BY_DAYS_PAST_DUE_COLUMNS = ["business_date", "days_past_due", "installments", "collected",
                            "not_collected", "amount_outstanding"]
RETRY_PLAN_BY_DAY_COLUMNS = ["business_date", "action", "rows", "amount"]
DAYS_PAST_DUE_ORDER = ["0", "1-30", "31-60", "over 60"]
PROVISIONAL = "incomplete"
# CONTRACT 7 per day: live (not cancelled) notices by channel, withdrawn ones, watchlist by risk.
ACTIONS_BY_DAY_COLUMNS = ["business_date", "notices_sms", "notices_call", "notices_cancelled",
                          "watchlist_no_active_binding", "watchlist_binding_ended",
                          "watchlist_repeated_borrower_failure"]


@dataclass
class Trend:
    """The report's three tables; amounts in integer fen until written."""

    date_from: dt.date
    date_to: dt.date
    by_day: pd.DataFrame
    by_gateway: pd.DataFrame
    by_root_cause: pd.DataFrame
    # Per day and days-past-due bucket; per day and retry plan action (CONTRACT 7).
    by_days_past_due: pd.DataFrame = dataclasses.field(
        default_factory=lambda: pd.DataFrame(columns=BY_DAYS_PAST_DUE_COLUMNS))
    retry_plan: pd.DataFrame = dataclasses.field(
        default_factory=lambda: pd.DataFrame(columns=RETRY_PLAN_BY_DAY_COLUMNS))
    actions_by_day: pd.DataFrame = dataclasses.field(
        default_factory=lambda: pd.DataFrame(columns=ACTIONS_BY_DAY_COLUMNS))

    @property
    def days(self) -> list[str]:
        count = (self.date_to - self.date_from).days + 1
        return [(self.date_from + dt.timedelta(days=n)).isoformat() for n in range(count)]

    @property
    def provisional_days(self) -> set[str]:
        return set(self.by_day.loc[self.by_day["run_outcome"] == PROVISIONAL, "business_date"])


def make_report(database_url: str, out_dir: Path, date_from: dt.date, date_to: dt.date, *,
                generated_at: str) -> tuple[Path, Trend]:
    """Read the stored results of the dates and write the report folder; return it and tables."""
    database = db.connect(database_url)
    try:
        if not db.has_results_schema(database):
            raise UsageError(f"database {database.shown_url} holds no recon results",
                             next_step="check --db or RECON_DATABASE_URL, or run `recon run` first")
        groups = db.read_daily_root_causes(database, date_from.isoformat(), date_to.isoformat())
        runs = db.read_stored_runs(database, date_from.isoformat(), date_to.isoformat())
        overdue = db.read_days_past_due(database, date_from.isoformat(), date_to.isoformat())
        actions = db.read_retry_actions(database, date_from.isoformat(), date_to.isoformat())
        notice_actions = db.read_daily_actions(database, date_from.isoformat(),
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


def to_fen(amounts: pd.Series) -> pd.Series:
    """Exact decimal amounts (text or Decimal, as the database returns them) -> integer fen."""
    return pd.Series([int(Decimal(str(amount)) * 100) for amount in amounts], index=amounts.index,
                     dtype="int64")


def _rate(part: pd.Series, whole: pd.Series) -> pd.Series:
    # As numbers whatever they came as: an empty lookup (no failing installment on any date)
    # comes back as an empty column of text.
    part, whole = part.astype("float64"), whole.astype("float64")
    return (part / whole.where(whole > 0)).fillna(0.0).round(4)


def build_trend(groups: pd.DataFrame, runs: pd.DataFrame, date_from: dt.date,
                date_to: dt.date) -> Trend:
    """The tables from rows of `daily_root_causes` and of the runs that wrote them. Pure."""
    groups = groups.assign(
        business_date=groups["business_date"].astype("str"),
        root_cause=groups["root_cause"].fillna("").astype("str"),
        gateway=groups["gateway"].fillna("").astype("str").str.upper(),
        installments=groups["installments"].astype("int64"),
        due_fen=to_fen(groups["amount_due"]),
        balance_fen=to_fen(groups["amount_outstanding"]))
    # Within one status every installment's balance has one sign, so clipping the group sums is
    # the same as clipping each installment.
    groups["outstanding_fen"] = groups["balance_fen"].clip(lower=0)
    groups["overpaid_fen"] = (-groups["balance_fen"]).clip(lower=0)
    collected = groups["status"].isin(COLLECTED)
    groups["collected"] = groups["installments"].where(collected, 0)
    groups["not_collected"] = groups["installments"].where(~collected, 0)

    totals = {"installments": ("installments", "sum"), "collected": ("collected", "sum"),
              "not_collected": ("not_collected", "sum"), "amount_due": ("due_fen", "sum"),
              "amount_outstanding": ("outstanding_fen", "sum")}
    by_day = groups.groupby("business_date", as_index=False).agg(
        **totals, amount_overpaid=("overpaid_fen", "sum"))
    by_day["failure_rate"] = _rate(by_day["not_collected"], by_day["installments"])
    runs = runs.assign(business_date=runs["business_date"].astype("str"))[
        ["business_date", "run_id", "outcome"]].rename(columns={"outcome": "run_outcome"}) \
        .drop_duplicates("business_date", keep="last")
    by_day = by_day.merge(runs, on="business_date", how="left").fillna(
        {"run_id": "", "run_outcome": ""})[BY_DAY_COLUMNS]

    by_gateway = groups.groupby(["business_date", "gateway"], as_index=False).agg(**totals)
    by_gateway["failure_rate"] = _rate(by_gateway["not_collected"], by_gateway["installments"])
    by_gateway = by_gateway[BY_GATEWAY_COLUMNS]

    failing = groups[~collected]
    by_cause = failing.groupby(["business_date", "gateway", "root_cause"], as_index=False).agg(
        installments=("installments", "sum"), amount_due=("due_fen", "sum"),
        amount_outstanding=("outstanding_fen", "sum"))
    day_installments = by_cause["business_date"].map(
        by_day.set_index("business_date")["installments"])
    by_cause["rate_of_day"] = _rate(by_cause["installments"], day_installments)
    by_cause["root_cause_zh"] = by_cause["root_cause"].map(
        {str(cause): label for cause, label in ROOT_CAUSE_ZH.items()}).fillna("")
    by_cause = by_cause[BY_ROOT_CAUSE_COLUMNS]
    return Trend(date_from, date_to, by_day.reset_index(drop=True),
                 by_gateway.reset_index(drop=True), by_cause.reset_index(drop=True))


def days_past_due_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of db.read_days_past_due -> BY_DAYS_PAST_DUE_COLUMNS, buckets in age order."""
    table = pd.DataFrame({
        "business_date": rows["business_date"].astype("str"),
        "days_past_due": rows["bucket"].astype("str"),
        "collected": rows["collected"].astype("int64"),
        "not_collected": rows["not_collected"].astype("int64"),
        "amount_outstanding": to_fen(rows["amount_outstanding"]).clip(lower=0),
    })
    table["installments"] = table["collected"] + table["not_collected"]
    table["order"] = table["days_past_due"].map(DAYS_PAST_DUE_ORDER.index)
    return table.sort_values(["business_date", "order"]).reset_index(drop=True)[
        BY_DAYS_PAST_DUE_COLUMNS]


def retry_plan_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of db.read_retry_actions -> RETRY_PLAN_BY_DAY_COLUMNS."""
    return pd.DataFrame({
        "business_date": rows["business_date"].astype("str"),
        "action": rows["action"].astype("str"),
        "rows": rows["plan_rows"].astype("int64"),
        "amount": to_fen(rows["amount"]),
    })[RETRY_PLAN_BY_DAY_COLUMNS].reset_index(drop=True)


def actions_by_day(counts: pd.DataFrame, days: set[str]) -> pd.DataFrame:
    """ACTIONS_BY_DAY_COLUMNS for the days with stored results (0 where a day has none)."""
    counts = counts.assign(business_date=counts["business_date"].astype("str"))
    table = pd.DataFrame({"business_date": sorted(days)}).merge(counts, on="business_date",
                                                                how="left")
    table = table.reindex(columns=ACTIONS_BY_DAY_COLUMNS)
    numbers = ACTIONS_BY_DAY_COLUMNS[1:]
    table[numbers] = table[numbers].fillna(0).astype("int64")
    return table


def as_text(table: pd.DataFrame) -> pd.DataFrame:
    """A table as written to CSV: amounts as yuan with two decimals, rates with four."""
    text = table.copy()
    for column in ("amount_due", "amount_outstanding", "amount_overpaid", "amount"):
        if column in text:
            text[column] = fmt_yuan(text[column])
    if "rate_of_day" in text:
        text["rate_of_day"] = text["rate_of_day"].map("{:.4f}".format)
    if "failure_rate" in text:
        text["failure_rate"] = text["failure_rate"].map("{:.4f}".format)
    return text


def write_report(trend: Trend, page: str, out_dir: Path) -> Path:
    """Write `OUT/report_<D1>_<D2>/` (report.html and three CSVs), replacing an earlier one."""
    name = f"report_{trend.date_from}_{trend.date_to}"
    staged = StagedReports(out_dir, name, uuid.uuid4().hex[:16])
    try:
        staged.write("by_day.csv", as_text(trend.by_day), BY_DAY_COLUMNS, bom=True)
        staged.write("by_gateway.csv", as_text(trend.by_gateway), BY_GATEWAY_COLUMNS, bom=True)
        staged.write("by_root_cause.csv", as_text(trend.by_root_cause), BY_ROOT_CAUSE_COLUMNS,
                     bom=True)
        staged.write("by_days_past_due.csv", as_text(trend.by_days_past_due),
                     BY_DAYS_PAST_DUE_COLUMNS, bom=True)
        staged.write("retry_plan_by_day.csv", as_text(trend.retry_plan),
                     RETRY_PLAN_BY_DAY_COLUMNS, bom=True)
        staged.write("actions_by_day.csv", trend.actions_by_day, ACTIONS_BY_DAY_COLUMNS,
                     bom=True)
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


# --- the HTML page ----------------------------------------------------------------------------

def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _yuan(fen: int) -> str:
    return f"{fen // 100:,}.{fen % 100:02d}" if fen >= 0 else "-" + _yuan(-fen)


def _nice_ceiling(value: float) -> tuple[float, float]:
    """(axis maximum, tick step) with about five steps of 1, 2 or 5 x 10^k."""
    if value <= 0:
        return 1.0, 1.0
    rough = value / 5
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
    step = max(step, 1.0)
    return math.ceil(value / step) * step, step


class _Frame:
    """Plot geometry shared by both charts."""

    def __init__(self, days: list[str], width: int = 960, height: int = 260) -> None:
        self.days = days
        self.width, self.height = width, height
        self.left, self.right, self.top, self.bottom = 64, 16, 16, 28
        self.plot_w = width - self.left - self.right
        self.plot_h = height - self.top - self.bottom
        self.slot = self.plot_w / max(len(days), 1)

    def x_centre(self, index: int) -> float:
        return self.left + self.slot * (index + 0.5)

    def y(self, value: float, maximum: float) -> float:
        return self.top + self.plot_h * (1 - value / maximum)

    def axes(self, maximum: float, step: float, label, provisional: set[str]) -> list[str]:
        parts = []
        tick = 0.0
        while tick <= maximum + 1e-9:
            y = self.y(tick, maximum)
            parts.append(f'<line class="grid" x1="{self.left}" x2="{self.width - self.right}" '
                         f'y1="{y:.1f}" y2="{y:.1f}"/>')
            parts.append(f'<text class="tick" x="{self.left - 6}" y="{y + 4:.1f}" '
                         f'text-anchor="end">{_esc(label(tick))}</text>')
            tick += step
        every = max(1, math.ceil(len(self.days) / 16))
        for index, day in enumerate(self.days):
            if index % every:
                continue
            mark = "*" if day in provisional else ""
            parts.append(f'<text class="tick" x="{self.x_centre(index):.1f}" '
                         f'y="{self.height - self.bottom + 18}" text-anchor="middle">'
                         f'{_esc(day[5:])}{mark}</text>')
        parts.append(f'<line class="axis" x1="{self.left}" x2="{self.width - self.right}" '
                     f'y1="{self.top + self.plot_h}" y2="{self.top + self.plot_h}"/>')
        return parts

    def svg(self, parts: list[str], chart_id: str, title: str) -> str:
        return (f'<svg id="{chart_id}" xmlns="http://www.w3.org/2000/svg" role="img" '
                f'width="{self.width}" height="{self.height}" '
                f'viewBox="0 0 {self.width} {self.height}" aria-label="{_esc(title)}">'
                + "".join(parts) + "</svg>")


def root_cause_chart(trend: Trend) -> str:
    """Stacked bars: per day, installments not collected split by root cause."""
    counts = trend.by_root_cause.groupby(["business_date", "root_cause"])[
        ["installments", "amount_outstanding"]].sum()
    per_day = counts["installments"].groupby(level=0).sum()
    frame = _Frame(trend.days)
    maximum, step = _nice_ceiling(float(per_day.max()) if len(per_day) else 0.0)
    provisional = trend.provisional_days
    parts = frame.axes(maximum, step, lambda tick: f"{tick:,.0f}", provisional)
    bar_w = min(max(frame.slot * 0.7, 1.0), 56.0)
    stored = set(trend.by_day["business_date"])
    for index, day in enumerate(trend.days):
        x = frame.x_centre(index) - bar_w / 2
        if day not in stored:
            parts.append(f'<text class="nodata" x="{frame.x_centre(index):.1f}" '
                         f'y="{frame.top + frame.plot_h - 4}" text-anchor="middle">no run</text>')
            continue
        base = 0
        for cause in CAUSE_ORDER:
            if (day, cause) not in counts.index:
                continue
            count = int(counts.loc[(day, cause), "installments"])
            outstanding = int(counts.loc[(day, cause), "amount_outstanding"])
            y_top, y_bottom = frame.y(base + count, maximum), frame.y(base, maximum)
            parts.append(
                f'<rect class="segment" x="{x:.1f}" y="{y_top:.1f}" width="{bar_w:.1f}" '
                f'height="{y_bottom - y_top:.1f}" fill="{CAUSE_COLOURS[cause]}" '
                f'data-date="{day}" data-root-cause="{cause}" data-count="{count}" '
                f'data-amount-outstanding="{_yuan(outstanding)}"><title>{day} {cause} '
                f'{_esc(ROOT_CAUSE_ZH[RootCause(cause)])}: {count:,} installments, '
                f'{_yuan(outstanding)} CNY outstanding</title></rect>')
            base += count
        parts.append(f'<text class="total" x="{frame.x_centre(index):.1f}" '
                     f'y="{frame.y(base, maximum) - 4:.1f}" text-anchor="middle" '
                     f'data-date="{day}" data-count="{base}">{base:,}</text>')
    return frame.svg(parts, "root-causes", "installments not collected per day by root cause")


def gateway_chart(trend: Trend) -> str:
    """Lines: per gateway, the share of its installments not collected, day by day."""
    rows = trend.by_gateway[trend.by_gateway["gateway"] != ""]
    frame = _Frame(trend.days)
    parts = frame.axes(1.0, 0.25, lambda tick: f"{tick:.0%}", trend.provisional_days)
    position = {day: index for index, day in enumerate(trend.days)}
    for number, (gateway, points) in enumerate(rows.groupby("gateway", sort=True)):
        colour = GATEWAY_COLOURS[number % len(GATEWAY_COLOURS)]
        points = points.assign(slot=points["business_date"].map(position)).sort_values("slot")
        path, previous = [], None
        for point in points.itertuples():
            x, y = frame.x_centre(point.slot), frame.y(point.failure_rate, 1.0)
            path.append(f"{'L' if previous == point.slot - 1 else 'M'}{x:.1f},{y:.1f}")
            previous = point.slot
        parts.append(f'<path class="line" d="{" ".join(path)}" stroke="{colour}" fill="none" '
                     f'data-gateway="{_esc(gateway)}"/>')
        for point in points.itertuples():
            x, y = frame.x_centre(point.slot), frame.y(point.failure_rate, 1.0)
            parts.append(
                f'<circle class="rate" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}" '
                f'data-gateway="{_esc(gateway)}" data-date="{point.business_date}" '
                f'data-rate="{point.failure_rate:.4f}" data-installments="{point.installments}" '
                f'data-not-collected="{point.not_collected}"><title>{_esc(gateway)} '
                f'{point.business_date}: {point.failure_rate:.1%} not collected '
                f'({point.not_collected:,} of {point.installments:,})</title></circle>')
    return frame.svg(parts, "gateway-rates", "failure rate per gateway per day")


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
svg { display: block; } .grid { stroke: #e4e4e4; } .axis { stroke: #888; }
.tick, .total, .nodata { font-size: 11px; fill: #444; } .nodata { fill: #999; }
.line { stroke-width: 2; }
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
                 f"{row.failure_rate:.2%}", _yuan(row.amount_due), _yuan(row.amount_outstanding),
                 row.run_outcome, row.run_id] for row in by_day.itertuples()]
    cause_totals = by_cause.groupby("root_cause").agg(
        installments=("installments", "sum"), amount_outstanding=("amount_outstanding", "sum"))
    cause_rows = [[cause, ROOT_CAUSE_ZH[RootCause(cause)],
                   f"{int(cause_totals.loc[cause, 'installments']):,}",
                   _yuan(int(cause_totals.loc[cause, "amount_outstanding"])),
                   SUGGESTED_ACTION[RootCause(cause)]] for cause in causes_present]
    gateway_rows = [[row.business_date, row.gateway or "(none)", f"{row.installments:,}",
                     f"{row.not_collected:,}", f"{row.failure_rate:.2%}",
                     _yuan(row.amount_outstanding)] for row in trend.by_gateway.itertuples()]
    overdue_rows = [[row.business_date, row.days_past_due, f"{row.installments:,}",
                     f"{row.collected:,}", f"{row.not_collected:,}",
                     _yuan(row.amount_outstanding)] for row in trend.by_days_past_due.itertuples()]
    plan_rows = [[row.business_date, row.action, f"{row.rows:,}", _yuan(row.amount)]
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
