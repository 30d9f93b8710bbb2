"""The two charts of `recon report`, drawn by matplotlib as inline SVG.

matplotlib draws the axes, ticks, bars and lines; what it cannot say is what each bar or point
stands for. Every such artist gets an id (`gid`), and `_annotated` puts the numbers on the SVG
group matplotlib writes for that id: a class, `data-*` attributes and a `<title>` the browser shows
as a tooltip. The output is the same for the same tables: no date in the metadata, ids hashed
with a fixed salt (one per chart, so the two charts' ids differ on one page), and text kept as
text (`svg.fonttype: none`) so the browser draws it with the page's fonts.

matplotlib is imported when a chart is drawn, not with the module: `recon run` imports the CLI,
which imports this package, and should not pay a second for a library it never uses.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from lxml import etree

from recon.contract import ROOT_CAUSE_ZH, RootCause
from recon.report.trend import CAUSE_ORDER, Trend, yuan

CAUSE_COLOURS = {
    "card_unbound": "#4e79a7", "insufficient_balance": "#f28e2b", "account_frozen": "#76b7b2",
    "account_closed": "#59a14f", "gateway_outage": "#e15759",
    "instruction_not_confirmed": "#edc948", "not_instructed": "#b07aa1",
    "no_settlement_record": "#ff9da7", "settlement_pending": "#bab0ac",
    "other_decline": "#9c755f", "unclassified": "#555555",
}
GATEWAY_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
                   "#e377c2", "#7f7f7f", "#bcbd22"]

# Page pixels. matplotlib's SVG is in points at 72 per inch: a figure of W/72 inches has a
# viewBox W wide, so one point of font or margin is one pixel on the page.
WIDTH, HEIGHT = 960, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 28
MAX_BAR_PX = 56.0
MAX_DAY_LABELS = 16
TEXT_COLOUR, NO_DATA_COLOUR, GRID_COLOUR, AXIS_COLOUR = "#444444", "#999999", "#e4e4e4", "#888888"
# Same-looking output from one render to the next (CONTRACT: reports are reproducible).
SVG_METADATA = {"Date": None, "Format": None, "Type": None, "Creator": None}


@dataclass(frozen=True)
class Mark:
    """What one drawn artist stands for: its class, its numbers and its tooltip."""

    gid: str
    kind: str
    data: dict[str, str]
    tooltip: str = ""


class _Chart:
    """One figure with its axes and the marks of its artists."""

    def __init__(self, chart_id: str, title: str, days: list[str]) -> None:
        from matplotlib.figure import Figure  # lazily: see the module docstring

        self.chart_id, self.title, self.days = chart_id, title, days
        self.figure = Figure(figsize=(WIDTH / 72, HEIGHT / 72))
        self.figure.subplots_adjust(left=LEFT / WIDTH, right=1 - RIGHT / WIDTH,
                                    top=1 - TOP / HEIGHT, bottom=BOTTOM / HEIGHT)
        self.axes = self.figure.add_subplot()
        self.marks: list[Mark] = []

    def gid(self, kind: str) -> str:
        return f"{self.chart_id}-{kind}-{len(self.marks)}"

    def mark(self, gid: str, kind: str, data: dict[str, str], tooltip: str = "") -> None:
        self.marks.append(Mark(gid, kind, data, tooltip))

    def slot_px(self) -> float:
        return (WIDTH - LEFT - RIGHT) / max(len(self.days), 1)

    def frame(self, provisional: set[str]) -> None:
        """Grid, spines and the day axis: a slot per day, 16 labelled at most, `*` provisional."""
        axes = self.axes
        axes.set_xlim(-0.5, max(len(self.days), 1) - 0.5)
        every = max(1, -(-len(self.days) // MAX_DAY_LABELS))
        labelled = range(0, len(self.days), every)
        axes.set_xticks(list(labelled), [self.days[index][5:]
                                         + ("*" if self.days[index] in provisional else "")
                                         for index in labelled])
        axes.tick_params(length=0, colors=TEXT_COLOUR, labelsize=11)
        axes.grid(axis="y", color=GRID_COLOUR, linewidth=1)
        axes.set_axisbelow(True)
        for side in ("top", "right", "left"):
            axes.spines[side].set_visible(False)
        axes.spines["bottom"].set_color(AXIS_COLOUR)

    def svg(self) -> str:
        """The figure as an `<svg>` element for the page, its marks attached."""
        from matplotlib import rc_context  # lazily: see the module docstring

        buffer = io.StringIO()
        with rc_context({"svg.fonttype": "none", "svg.hashsalt": f"recon-{self.chart_id}"}):
            self.figure.savefig(buffer, format="svg", metadata=SVG_METADATA)
        return _annotated(buffer.getvalue(), self)


def _annotated(svg: str, chart: _Chart) -> str:
    """matplotlib's SVG document -> the `<svg>` element with ids, sizes and marks for the page."""
    # The XML declaration and DOCTYPE belong to a standalone file, not to an element in HTML.
    root = etree.fromstring(svg[svg.index("<svg"):],
                            etree.XMLParser(resolve_entities=False, no_network=True))
    root.attrib.update({"id": chart.chart_id, "role": "img", "aria-label": chart.title,
                        "width": str(WIDTH), "height": str(HEIGHT)})
    by_gid = {mark.gid: mark for mark in chart.marks}
    for element in root.iter():
        mark = by_gid.get(element.get("id"))
        if mark is None:
            continue
        element.set("class", mark.kind)
        for name, value in mark.data.items():
            element.set(f"data-{name}", value)
        if mark.tooltip:
            title = etree.Element(f"{{{root.nsmap[None]}}}title")
            title.text = mark.tooltip
            element.insert(0, title)
    return etree.tostring(root, encoding="unicode")


def root_cause_chart(trend: Trend) -> str:
    """Stacked bars: per day, installments not collected split by root cause."""
    counts = trend.by_root_cause.groupby(["business_date", "root_cause"])[
        ["installments", "amount_outstanding"]].sum()
    per_day = counts["installments"].groupby(level=0).sum()
    chart = _Chart("root-causes", "installments not collected per day by root cause", trend.days)
    chart.frame(trend.provisional_days)
    axes = chart.axes
    axes.yaxis.set_major_formatter(lambda tick, _position: f"{tick:,.0f}")
    axes.locator_params(axis="y", nbins=5, integer=True)
    bar_width = min(max(chart.slot_px() * 0.7, 1.0), MAX_BAR_PX) / chart.slot_px()
    stored = set(trend.by_day["business_date"])
    for index, day in enumerate(trend.days):
        if day not in stored:
            gid = chart.gid("nodata")
            axes.annotate("no run", (index, 0), xytext=(0, 4), textcoords="offset points",
                          ha="center", va="bottom", fontsize=11, color=NO_DATA_COLOUR, gid=gid)
            chart.mark(gid, "nodata", {"date": day})
            continue
        base = 0
        for cause in CAUSE_ORDER:
            if (day, cause) not in counts.index:
                continue
            count = int(counts.loc[(day, cause), "installments"])
            outstanding = int(counts.loc[(day, cause), "amount_outstanding"])
            gid = chart.gid("segment")
            axes.bar(index, count, bar_width, bottom=base, color=CAUSE_COLOURS[cause], gid=gid)
            chart.mark(gid, "segment", {
                "date": day, "root-cause": cause, "count": str(count),
                "amount-outstanding": yuan(outstanding)},
                f"{day} {cause} {ROOT_CAUSE_ZH[RootCause(cause)]}: {count:,} installments, "
                f"{yuan(outstanding)} CNY outstanding")
            base += count
        gid = chart.gid("total")
        axes.annotate(f"{base:,}", (index, base), xytext=(0, 4), textcoords="offset points",
                      ha="center", va="bottom", fontsize=11, color=TEXT_COLOUR, gid=gid)
        chart.mark(gid, "total", {"date": day, "count": str(base)})
    _round_count_axis(axes, int(per_day.max()) if len(per_day) else 0)
    return chart.svg()


def _round_count_axis(axes, highest: int) -> None:
    """From 0 to a round tick above the highest bar, with room for its total above it."""
    if highest <= 0:
        axes.set_ylim(0, 1)
        return
    axes.set_ylim(0, highest)
    ticks = axes.yaxis.get_major_locator().tick_values(0, highest)
    axes.set_ylim(0, float(min(tick for tick in ticks if tick >= highest)))


def gateway_chart(trend: Trend) -> str:
    """Lines: per gateway, the share of its installments not collected, day by day."""
    rows = trend.by_gateway[trend.by_gateway["gateway"] != ""]
    chart = _Chart("gateway-rates", "failure rate per gateway per day", trend.days)
    chart.frame(trend.provisional_days)
    axes = chart.axes
    axes.set_ylim(0, 1)
    axes.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    axes.yaxis.set_major_formatter(lambda tick, _position: f"{tick:.0%}")
    position = {day: index for index, day in enumerate(trend.days)}
    for number, (gateway, points) in enumerate(rows.groupby("gateway", sort=True)):
        colour = GATEWAY_COLOURS[number % len(GATEWAY_COLOURS)]
        points = points.assign(slot=points["business_date"].map(position)).sort_values("slot")
        # A day without the gateway breaks its line: no segment across a gap.
        rates = np.full(len(trend.days), np.nan)
        rates[points["slot"].to_numpy()] = points["failure_rate"].to_numpy()
        gid = chart.gid("line")
        axes.plot(np.arange(len(trend.days)), rates, color=colour, linewidth=2, gid=gid)
        chart.mark(gid, "line", {"gateway": gateway})
        for point in points.itertuples():
            gid = chart.gid("rate")
            axes.plot([point.slot], [point.failure_rate], marker="o", markersize=8,
                      linestyle="none", color=colour, clip_on=False, gid=gid)
            chart.mark(gid, "rate", {
                "gateway": gateway, "date": point.business_date,
                "rate": f"{point.failure_rate:.4f}", "installments": str(point.installments),
                "not-collected": str(point.not_collected)},
                f"{gateway} {point.business_date}: {point.failure_rate:.1%} not collected "
                f"({point.not_collected:,} of {point.installments:,})")
    return chart.svg()
