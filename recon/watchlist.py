"""CONTRACT 7, early warning for the next due date. Pure and vectorised.

Three risks, one row each (a loan may carry more than one):

- `no_active_binding`: a loan with no binding active at the end of D (`D+1 00:00:00` local):
  every loan of the bindings file, and every loan due on D that has no binding row at all.
- `binding_ended`: a binding whose `unbound_at` falls within D (one row per binding).
- `repeated_borrower_failure`: a borrower whose installments were not collected for the same
  borrower-side cause (REPEAT_CAUSES) on at least REPEAT_DATES different business dates within
  the REPEAT_WINDOW_DAYS days ending with D, counted from the stored `installment_outcomes` of
  earlier dates plus D's own outcomes. One row per loan of the borrower that failed so.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa

from recon.contract import ROOT_CAUSE_ZH, RootCause, Status
from recon.formatting import fmt_local
from recon.frames import arrow_strings, chunks_of
from recon.ids import IdCodes, day_start_utc, isin, nanos, shared_codes
from recon.notices import card_last_four

NO_ACTIVE_BINDING, BINDING_ENDED, REPEATED = ("no_active_binding", "binding_ended",
                                              "repeated_borrower_failure")
RISKS = [NO_ACTIVE_BINDING, BINDING_ENDED, REPEATED]
REPEAT_CAUSES = [RootCause.INSUFFICIENT_BALANCE, RootCause.ACCOUNT_FROZEN,
                 RootCause.ACCOUNT_CLOSED, RootCause.CARD_UNBOUND,
                 RootCause.INSTRUCTION_NOT_CONFIRMED]
FAILED_STATUSES = [Status.UNPAID.value, Status.PARTIALLY_PAID.value]
REPEAT_DATES = 2
REPEAT_WINDOW_DAYS = 30
SHOWN_DATES = 5

WATCHLIST_COLUMNS = ["business_date", "loan_id", "borrower_id", "risk", "evidence",
                     "suggested_action"]
# The columns recon writes itself (contract.EXCEPTIONS_OWN): not searched for card numbers.
WATCHLIST_OWN = frozenset({"business_date", "risk", "evidence", "suggested_action"})
HISTORY_COLUMNS = ["business_date", "borrower_id", "loan_id", "root_cause"]

REPEAT_ACTION = {
    RootCause.INSUFFICIENT_BALANCE: "call before the next due date: agree when the card will "
                                    "hold the amount, or offer another card",
    RootCause.ACCOUNT_FROZEN: "call before the next due date: check for a judicial freeze; "
                              "ask for another card",
    RootCause.ACCOUNT_CLOSED: "call before the next due date: the borrower must bind an open "
                              "account",
    RootCause.CARD_UNBOUND: "call before the next due date: the borrower must bind a valid card",
    RootCause.INSTRUCTION_NOT_CONFIRMED: "call before the next due date: walk the borrower "
                                         "through confirming the debit; check SMS delivery",
}


def history_window(business_date: dt.date) -> tuple[dt.date, dt.date]:
    """The earlier dates whose stored failures count: (first, last), both inclusive."""
    return (business_date - dt.timedelta(days=REPEAT_WINDOW_DAYS - 1),
            business_date - dt.timedelta(days=1))


def watchlist(outcomes: pd.DataFrame, bindings: pd.DataFrame, history: pd.DataFrame,
              business_date: dt.date, tz: ZoneInfo, ids: IdCodes | None = None) -> pd.DataFrame:
    """The watchlist of D (WATCHLIST_COLUMNS, as text), sorted by risk, loan, borrower.

    `history`: HISTORY_COLUMNS, the stored failures with a REPEAT_CAUSES cause of the dates in
    history_window (the database sink's read_borrower_failures). `ids`: the day's encode_ids,
    whose loan codes `outcomes` carry (`loan_code`); without it the loans are encoded here.
    """
    parts = [binding_risks(outcomes, bindings, business_date, tz, ids),
             repeated_failures(outcomes, history, business_date)]
    rows = pd.concat(parts, ignore_index=True)
    rows["rank"] = rows["risk"].map({risk: rank for rank, risk in enumerate(RISKS)})
    rows = rows.sort_values(["rank", "loan_id", "borrower_id", "evidence"], kind="stable")
    rows.insert(0, "business_date", business_date.isoformat())
    return rows[WATCHLIST_COLUMNS].reset_index(drop=True)


def _empty() -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series([], dtype="str")
                         for column in WATCHLIST_COLUMNS if column != "business_date"})


def _loan_codes(outcomes: pd.DataFrame, bindings: pd.DataFrame,
                ids: IdCodes | None) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """Loan codes of the bindings and of the outcomes over one dictionary, and the dictionary:
    the day's (encoding 2M loan ids again costs a second) when `ids` has them."""
    if ids is not None:
        return ids.loan_of_every_binding, outcomes["loan_code"].to_numpy(np.int64), ids.loan_ids
    (of_binding, of_outcome), dictionary = shared_codes(bindings["loan_id"], outcomes["loan_id"])
    return of_binding, of_outcome, dictionary


def binding_risks(outcomes: pd.DataFrame, bindings: pd.DataFrame, business_date: dt.date,
                  tz: ZoneInfo, ids: IdCodes | None = None) -> pd.DataFrame:
    """`no_active_binding` and `binding_ended` rows."""
    day = business_date.isoformat()
    start = day_start_utc(business_date, tz).value
    end = day_start_utc(business_date + dt.timedelta(days=1), tz).value
    loan_of_binding, loan_of_outcome, dictionary = _loan_codes(outcomes, bindings, ids)
    n_loans = len(dictionary)

    def loan_ids(codes: np.ndarray) -> np.ndarray:
        return dictionary.take(pa.array(codes, type=pa.int64())).to_numpy(zero_copy_only=False)

    bound = nanos(bindings["bound_at"])
    open_ended = bindings["unbound_at"].isna().to_numpy()
    unbound = nanos(bindings["unbound_at"])
    active_at_end = (bound <= end) & (open_ended | (unbound > end))
    has_active = np.bincount(loan_of_binding[active_at_end], minlength=n_loans) > 0
    has_binding = np.bincount(loan_of_binding, minlength=n_loans) > 0
    # The loans considered: those of the bindings file and those due on D (the day's shared
    # dictionary also holds loans only instructed).
    considered = has_binding.copy()
    considered[loan_of_outcome] = True
    # A loan's borrower is known when it has something due on D (first installment's borrower):
    # the first outcome row of each loan, looked up only for the loans listed.
    first_seen = np.full(n_loans + 1, len(outcomes), dtype=np.int64)
    np.minimum.at(first_seen, loan_of_outcome, np.arange(len(outcomes), dtype=np.int64))
    known = arrow_strings(outcomes["borrower_id"].astype("str"))
    borrowers = pa.chunked_array(chunks_of(known) + [pa.array([""], type=pa.large_string())],
                                 type=pa.large_string())

    def borrower_of(loans: np.ndarray) -> np.ndarray:
        return borrowers.take(pa.array(first_seen[loans])).to_numpy()

    # The binding each listed loan's evidence names: the active one at the end of D, else the
    # one bound last (of two bound at once, the later in the file). Only the bindings of loans
    # listed below are sorted: at 1M bindings, few.
    missing = np.flatnonzero(~has_active & considered)
    ended_rows = np.flatnonzero(~open_ended & (unbound >= start) & (unbound < end))
    listed = np.zeros(n_loans, dtype=bool)
    listed[missing] = True
    listed[loan_of_binding[ended_rows]] = True
    rows = np.flatnonzero(listed[loan_of_binding]) if len(bindings) else \
        np.zeros(0, dtype=np.int64)
    history = pd.DataFrame({"loan": loan_of_binding[rows], "active": active_at_end[rows],
                            "bound": bound[rows], "row": rows})
    shown = history.sort_values(["loan", "active", "bound", "row"]).drop_duplicates(
        "loan", keep="last").set_index("loan")["row"]
    shown_row = np.full(n_loans, -1, dtype=np.int64)
    shown_row[shown.index.to_numpy()] = shown.to_numpy()

    def describe(rows: np.ndarray) -> pd.Series:
        picked = bindings.iloc[rows]
        last4 = card_last_four(picked["card_no_masked"].fillna(""))
        card = (" (card ****" + last4 + ")").where(last4 != "", "")
        return pd.Series(("binding " + picked["binding_id"].astype("str") + card).to_numpy(),
                         dtype="str")

    # (a) no binding active at the end of D
    with_rows = missing[has_binding[missing]]
    without_rows = missing[~has_binding[missing]]
    described = describe(shown_row[with_rows])
    picked = bindings.iloc[shown_row[with_rows]]
    ended = fmt_local(picked["unbound_at"], tz).to_numpy()
    status = picked["status"].astype("str").to_numpy()
    state = np.where(ended != "", " " + status + " since " + ended,
                     " bound only from " + fmt_local(picked["bound_at"], tz).to_numpy())
    no_active = pd.DataFrame({
        "loan_id": np.concatenate([loan_ids(with_rows), loan_ids(without_rows)]),
        "borrower_id": np.concatenate([borrower_of(with_rows), borrower_of(without_rows)]),
        "risk": NO_ACTIVE_BINDING,
        "evidence": np.concatenate([
            described.to_numpy() + state + f"; no binding active at the end of {day}",
            np.full(len(without_rows), f"no card binding on file for a loan due on {day}",
                    dtype=object)]),
        "suggested_action": "ask the borrower to bind a valid card before the next due date",
    })

    # (b) bindings that ended during D
    loans = loan_of_binding[ended_rows]
    rebound = has_active[loans]
    now_active = describe(shown_row[loans]).to_numpy()
    ended_bindings = bindings.iloc[ended_rows]
    binding_ended = pd.DataFrame({
        "loan_id": loan_ids(loans) if len(loans) else np.zeros(0, dtype=object),
        "borrower_id": borrower_of(loans),
        "risk": BINDING_ENDED,
        "evidence": describe(ended_rows).to_numpy() + " "
                    + ended_bindings["status"].astype("str").to_numpy() + " at "
                    + fmt_local(ended_bindings["unbound_at"], tz).to_numpy()
                    + np.where(rebound, "; now active: " + now_active,
                               "; no other binding active"),
        "suggested_action": np.where(
            rebound, "the next debit goes to the new card: confirm it with the borrower",
            "ask the borrower to bind a new card before the next due date"),
    })
    return pd.concat([_empty(), no_active.astype("str"), binding_ended.astype("str")],
                     ignore_index=True)


def repeated_failures(outcomes: pd.DataFrame, history: pd.DataFrame,
                      business_date: dt.date) -> pd.DataFrame:
    """`repeated_borrower_failure` rows: same borrower-side cause on REPEAT_DATES or more dates."""
    causes = [cause.value for cause in REPEAT_CAUSES]
    first, _ = history_window(business_date)
    earlier = history[(history["business_date"].astype("str") >= first.isoformat())
                      & (history["business_date"].astype("str") < business_date.isoformat())]
    failed = isin(outcomes["status"], FAILED_STATUSES) & isin(outcomes["root_cause"], causes)
    if REPEAT_DATES >= 2:
        # D is one date: only borrowers failing on an earlier date too can repeat.
        failed &= isin(outcomes["borrower_id"], earlier["borrower_id"].astype("str").unique())
    today = outcomes.loc[failed, ["borrower_id", "loan_id", "root_cause"]]
    failures = pd.concat([
        earlier[HISTORY_COLUMNS].astype("str"),
        pd.DataFrame({"business_date": business_date.isoformat(),
                      "borrower_id": today["borrower_id"].astype("str"),
                      "loan_id": today["loan_id"].astype("str"),
                      "root_cause": today["root_cause"].astype("str")}),
    ], ignore_index=True)
    if failures.empty:
        return _empty()
    dates = failures[["borrower_id", "root_cause", "business_date"]].drop_duplicates()
    per_cause = dates.groupby(["borrower_id", "root_cause"])["business_date"]
    count = per_cause.size()
    repeated = count[count >= REPEAT_DATES]
    if repeated.empty:
        return _empty()
    flagged = dates.set_index(["borrower_id", "root_cause"]).loc[repeated.index].reset_index()
    flagged = flagged.sort_values(["borrower_id", "root_cause", "business_date"])
    shown = flagged.groupby(["borrower_id", "root_cause"])["business_date"].agg(
        lambda days: ", ".join(list(days)[-SHOWN_DATES:]))
    loans = failures.merge(repeated.rename("dates").reset_index(),
                           on=["borrower_id", "root_cause"])[
        ["borrower_id", "root_cause", "loan_id", "dates"]].drop_duplicates(
        ["borrower_id", "root_cause", "loan_id"])
    key = pd.MultiIndex.from_frame(loans[["borrower_id", "root_cause"]])
    zh = loans["root_cause"].map({cause.value: text for cause, text in ROOT_CAUSE_ZH.items()})
    evidence = ("not collected for " + loans["root_cause"] + " (" + zh + ") on "
                + loans["dates"].astype("str") + " dates of the last "
                + f"{REPEAT_WINDOW_DAYS} days: "
                + pd.Series(shown.reindex(key).to_numpy(), index=loans.index, dtype="str"))
    return pd.DataFrame({
        "loan_id": loans["loan_id"],
        "borrower_id": loans["borrower_id"],
        "risk": REPEATED,
        "evidence": evidence,
        "suggested_action": loans["root_cause"].map(
            {cause.value: text for cause, text in REPEAT_ACTION.items()}),
    }).astype("str").reset_index(drop=True)


def repeat_borrowers(rows: pd.DataFrame) -> set[str]:
    """Borrowers of the watchlist's `repeated_borrower_failure` rows."""
    return set(rows.loc[rows["risk"] == REPEATED, "borrower_id"])
