"""The trend tables of `recon report`: per day, gateway, root cause, days past due and action.

Read from the analyst view `daily_root_causes`, so the report and an analyst's own SQL agree, and
from `recon_runs` for the run whose results are stored. Per business date, gateway and root
cause: installments, amounts and rates. Pure: the tables from rows already read.

- `collected` = status `paid` or `overpaid`; everything else (pending included) is not collected.
- `failure_rate` = not collected / installments, of the day or of the gateway on the day.
- `amount_outstanding` = what is still owed, sum of `amount_due - amount_settled` over the
  installments not settled in full; overpayments are summed apart in `amount_overpaid`.
- `rate_of_day` (per root cause) = its installments / all installments of the day, so the rates
  of one day add up across gateways and causes.
- Gateway ids are matched case-insensitively, as everywhere in recon, and shown upper-case.
- A day whose stored run was `incomplete` (a settlement file had not arrived) is provisional:
  its `pending` installments may still turn out paid. It is marked `*` in the charts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pandas as pd

from recon.contract import ROOT_CAUSE_ZH, RootCause, Status
from recon.formatting import fmt_yuan

COLLECTED = (Status.PAID.value, Status.OVERPAID.value)
CAUSE_ORDER = [cause.value for cause in RootCause]
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
# The columns of sums, counts and rates: numbers recon computed, never card-masked (a sum over
# many days can have 13 digits).
NUMBER_COLUMNS = frozenset({"installments", "collected", "not_collected", "failure_rate",
                            "amount_due", "amount_outstanding", "amount_overpaid", "rate_of_day",
                            "rows", "amount", "notices_sms", "notices_call", "notices_cancelled",
                            "watchlist_no_active_binding", "watchlist_binding_ended",
                            "watchlist_repeated_borrower_failure"})
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
    # Every date with a committed run has a row, also one with no installment (its watchlist
    # and notices count all the same): zero installments, a failure rate of 0.
    by_day = by_day.merge(runs, on="business_date", how="outer").fillna(
        {"run_id": "", "run_outcome": "", "installments": 0, "collected": 0,
         "not_collected": 0, "amount_due": 0, "amount_outstanding": 0, "amount_overpaid": 0,
         "failure_rate": 0.0})
    by_day = by_day.astype({column: "int64" for column in (
        "installments", "collected", "not_collected", "amount_due", "amount_outstanding",
        "amount_overpaid")}).sort_values("business_date", kind="stable").reset_index(
        drop=True)[BY_DAY_COLUMNS]

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
    """Rows of stored.read_days_past_due -> BY_DAYS_PAST_DUE_COLUMNS, buckets in age order."""
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
    """Rows of stored.read_retry_actions -> RETRY_PLAN_BY_DAY_COLUMNS."""
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


def yuan(fen: int) -> str:
    """Integer fen as yuan with thousands separators, as the page and its tooltips show them."""
    return f"{fen // 100:,}.{fen % 100:02d}" if fen >= 0 else "-" + yuan(-fen)
