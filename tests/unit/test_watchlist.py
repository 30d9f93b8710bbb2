"""CONTRACT 7, early warning: loans without a binding, bindings ended on D, repeated failures."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from recon.watchlist import (BINDING_ENDED, HISTORY_COLUMNS, NO_ACTIVE_BINDING, REPEAT_CAUSES,
                             REPEATED, WATCHLIST_COLUMNS, history_window, repeat_borrowers,
                             watchlist)

TZ = ZoneInfo("Asia/Shanghai")
D = dt.date(2026, 11, 27)
NO_HISTORY = pd.DataFrame({column: pd.Series([], dtype="str") for column in HISTORY_COLUMNS})


def local(text: str | None) -> pd.Timestamp:
    return pd.NaT if text is None else pd.Timestamp(text, tz=TZ).tz_convert("UTC")


def bindings(*rows: tuple) -> pd.DataFrame:
    """(binding_id, loan_id, status, bound_at, unbound_at) in local time."""
    frame = pd.DataFrame({
        "binding_id": pd.Series([row[0] for row in rows], dtype="str"),
        "loan_id": pd.Series([row[1] for row in rows], dtype="str"),
        "card_no_masked": pd.Series(["622202******" + row[0][-4:].rjust(4, "0") for row in rows],
                                    dtype="str"),
        "status": pd.Series([row[2] for row in rows], dtype="str"),
        "bound_at": pd.Series([local(row[3]) for row in rows], dtype="datetime64[ns, UTC]"),
        "unbound_at": pd.Series([local(row[4]) for row in rows], dtype="datetime64[ns, UTC]"),
    })
    return frame


def outcomes(*rows: tuple) -> pd.DataFrame:
    """(loan_id, borrower_id, status, root_cause)."""
    return pd.DataFrame({
        "loan_id": pd.Series([row[0] for row in rows], dtype="str"),
        "installment_no": [1] * len(rows),
        "borrower_id": pd.Series([row[1] for row in rows], dtype="str"),
        "status": pd.Series([row[2] for row in rows], dtype="str"),
        "root_cause": pd.Series([row[3] for row in rows], dtype="str"),
    })


def history(*rows: tuple) -> pd.DataFrame:
    """(business_date, borrower_id, loan_id, root_cause)."""
    return pd.DataFrame(list(rows), columns=HISTORY_COLUMNS, dtype="str")


def risks(rows: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(rows["risk"], rows["loan_id"]))


ACTIVE = ("B1", "L1", "ACTIVE", "2025-01-01 10:00:00", None)
PAID = ("L1", "X1", "paid", "")


def test_a_loan_with_an_active_binding_is_not_on_the_watchlist():
    assert watchlist(outcomes(PAID), bindings(ACTIVE), NO_HISTORY, D, TZ).empty


@pytest.mark.parametrize("binding,expected", [
    (("B1", "L1", "UNBOUND", "2025-01-01 10:00:00", "2026-11-20 12:00:00"),
     [(NO_ACTIVE_BINDING, "L1")]),
    (("B1", "L1", "UNBOUND", "2025-01-01 10:00:00", "2026-11-27 12:00:00"),
     [(NO_ACTIVE_BINDING, "L1"), (BINDING_ENDED, "L1")]),
    (("B1", "L1", "EXPIRED", "2025-01-01 10:00:00", "2026-11-28 00:00:00"),  # ends at the end
     [(NO_ACTIVE_BINDING, "L1")]),
    (("B1", "L1", "EXPIRED", "2025-01-01 10:00:00", "2026-11-28 00:00:01"),  # ends next day
     []),
    (("B1", "L1", "ACTIVE", "2026-11-28 00:00:01", None), [(NO_ACTIVE_BINDING, "L1")]),
    (("B1", "L1", "REVOKED", "2025-01-01 10:00:00", "2026-11-27 00:00:00"),  # ends at the start
     [(NO_ACTIVE_BINDING, "L1"), (BINDING_ENDED, "L1")]),
    (("B1", "L1", "REVOKED", "2025-01-01 10:00:00", "2026-11-26 23:59:59"),
     [(NO_ACTIVE_BINDING, "L1")]),
], ids=["unbound earlier", "unbound during D", "ends at D+1 00:00", "ends after D",
        "bound only after D", "ends at D 00:00", "ends just before D"])
def test_binding_risks_at_the_end_of_d(binding, expected):
    assert risks(watchlist(outcomes(PAID), bindings(binding), NO_HISTORY, D, TZ)) == expected


def test_every_loan_of_the_bindings_file_counts_including_loans_with_nothing_due():
    rows = watchlist(outcomes(PAID), bindings(
        ACTIVE, ("B9", "L9", "UNBOUND", "2025-01-01 10:00:00", "2026-01-01 00:00:00")),
        NO_HISTORY, D, TZ)
    assert risks(rows) == [(NO_ACTIVE_BINDING, "L9")]
    [row] = rows.to_dict("records")
    assert row["borrower_id"] == ""  # nothing due on D: the borrower is not in D's files
    assert "binding B9" in row["evidence"]
    assert "UNBOUND since 2026-01-01 00:00:00" in row["evidence"]


def test_a_loan_due_on_d_without_any_binding_row_is_listed_with_its_borrower():
    rows = watchlist(outcomes(PAID, ("L2", "X2", "unpaid", "card_unbound")), bindings(ACTIVE),
                     NO_HISTORY, D, TZ)
    [row] = rows.to_dict("records")
    assert (row["risk"], row["loan_id"], row["borrower_id"]) == (NO_ACTIVE_BINDING, "L2", "X2")
    assert row["evidence"] == "no card binding on file for a loan due on 2026-11-27"


def test_a_binding_ended_during_d_with_a_new_one_says_the_next_debit_uses_the_new_card():
    rows = watchlist(outcomes(PAID), bindings(
        ("B1A", "L1", "UNBOUND", "2025-01-01 10:00:00", "2026-11-27 08:00:00"),
        ("B1B", "L1", "ACTIVE", "2026-11-27 08:05:00", None)), NO_HISTORY, D, TZ)
    [row] = rows.to_dict("records")
    assert (row["risk"], row["loan_id"], row["borrower_id"]) == (BINDING_ENDED, "L1", "X1")
    assert "binding B1A" in row["evidence"] and "now active: binding B1B" in row["evidence"]
    assert "new card" in row["suggested_action"]


# --- repeated borrower-side failures -----------------------------------------------------------

@pytest.mark.parametrize("cause", [cause.value for cause in REPEAT_CAUSES])
def test_the_same_borrower_side_cause_on_two_recent_dates_is_a_repeated_failure(cause):
    rows = watchlist(outcomes(("L1", "X1", "unpaid", cause)), bindings(ACTIVE),
                     history(("2026-11-20", "X1", "L1", cause)), D, TZ)
    [row] = rows.to_dict("records")
    assert (row["risk"], row["loan_id"], row["borrower_id"]) == (REPEATED, "L1", "X1")
    assert "on 2 dates of the last 30 days: 2026-11-20, 2026-11-27" in row["evidence"]
    assert repeat_borrowers(rows) == {"X1"}


@pytest.mark.parametrize("case,today,earlier,flagged", [
    ("once only", ("L1", "X1", "unpaid", "insufficient_balance"), [], False),
    ("different causes", ("L1", "X1", "unpaid", "insufficient_balance"),
     [("2026-11-20", "X1", "L1", "account_frozen")], False),
    ("outside the window", ("L1", "X1", "unpaid", "insufficient_balance"),
     [("2026-10-28", "X1", "L1", "insufficient_balance")], False),
    ("first day of the window", ("L1", "X1", "unpaid", "insufficient_balance"),
     [("2026-10-29", "X1", "L1", "insufficient_balance")], True),
    ("paid today, failed twice before", PAID,
     [("2026-11-20", "X1", "L1", "insufficient_balance"),
      ("2026-11-25", "X1", "L1", "insufficient_balance")], True),
    ("internal cause twice", ("L1", "X1", "unpaid", "gateway_outage"),
     [("2026-11-20", "X1", "L1", "gateway_outage")], False),
    ("pending today", ("L1", "X1", "pending", "settlement_pending"),
     [("2026-11-20", "X1", "L1", "insufficient_balance")], False),
    ("another loan of the borrower", ("L1", "X1", "partially_paid", "insufficient_balance"),
     [("2026-11-20", "X1", "L7", "insufficient_balance")], True),
], ids=lambda value: value if isinstance(value, str) else None)
def test_several_and_recent(case, today, earlier, flagged):
    rows = watchlist(outcomes(today), bindings(ACTIVE), history(*earlier), D, TZ)
    assert (REPEATED in set(rows["risk"])) == flagged


def test_a_repeated_failure_lists_each_loan_of_the_borrower_that_failed_so():
    rows = watchlist(outcomes(("L1", "X1", "unpaid", "insufficient_balance")), bindings(ACTIVE),
                     history(("2026-11-20", "X1", "L7", "insufficient_balance")), D, TZ)
    assert risks(rows) == [(REPEATED, "L1"), (REPEATED, "L7")]


def test_history_window_is_the_29_days_before_d():
    assert history_window(D) == (dt.date(2026, 10, 29), dt.date(2026, 11, 26))


def test_rows_are_text_in_the_contract_column_order():
    rows = watchlist(outcomes(("L2", "X2", "unpaid", "card_unbound")), bindings(ACTIVE),
                     NO_HISTORY, D, TZ)
    assert list(rows.columns) == WATCHLIST_COLUMNS
    assert rows["business_date"].tolist() == ["2026-11-27"]


def test_the_days_loan_codes_give_the_same_watchlist_as_encoding_the_loans_here():
    """The pipeline hands watchlist the day's encode_ids, whose dictionary also holds loans only
    instructed on D: they are not listed, and every row is what encoding the loans here gives."""
    from recon.ids import encode_ids

    day = outcomes(PAID, ("L2", "X2", "unpaid", "card_unbound"))
    files = bindings(("B1", "L1", "UNBOUND", "2025-01-01 10:00:00", "2026-11-27 09:00:00"),
                     ("B9", "L9", "ACTIVE", "2025-01-01 10:00:00", None),
                     ("B8", "L8", "UNBOUND", "2025-01-01 10:00:00", "2026-01-01 09:00:00"))
    instructions = pd.DataFrame({"loan_id": pd.Series(["L7", "L1"], dtype="str"),
                                 "instruction_id": pd.Series(["I1", "I2"], dtype="str")})
    settlements = pd.DataFrame({"instruction_id": pd.Series([], dtype="str")})
    ids = encode_ids(day, instructions, files, settlements)
    here = watchlist(day, files, NO_HISTORY, D, TZ)
    with_codes = watchlist(day.assign(loan_code=ids.loan_of_installment), files, NO_HISTORY, D,
                           TZ, ids)
    pd.testing.assert_frame_equal(with_codes, here)
    assert "L7" not in set(with_codes["loan_id"])  # instructed only: not a loan to warn about
    assert set(risks(here)) == {(NO_ACTIVE_BINDING, "L1"), (BINDING_ENDED, "L1"),
                                (NO_ACTIVE_BINDING, "L2"), (NO_ACTIVE_BINDING, "L8")}
