"""The run diff (recon.diff): what changed since the previous completed run of a date."""

from __future__ import annotations

import pandas as pd
import pytest

from recon.diff import outcome_changes, outcome_name, transition_counts


def outcomes(*rows) -> pd.DataFrame:
    """rows: (loan_id, installment_no, status, root_cause)."""
    return pd.DataFrame(list(rows), columns=["loan_id", "installment_no", "status", "root_cause"])


def as_tuples(changes: pd.DataFrame) -> list[tuple]:
    return list(changes.itertuples(index=False, name=None))


def test_a_first_run_has_nothing_to_compare_with():
    changes = outcome_changes(outcomes(), outcomes(("L1", 1, "paid", "")))
    assert changes.empty
    assert list(changes.columns) == ["loan_id", "installment_no", "old_status", "old_root_cause",
                                     "new_status", "new_root_cause"]


def test_identical_runs_have_no_changes():
    same = outcomes(("L1", 1, "paid", ""), ("L2", 1, "unpaid", "insufficient_balance"))
    assert outcome_changes(same, same.copy()).empty
    assert transition_counts(outcome_changes(same, same.copy())) == {}


def test_a_late_settlement_file_turns_pending_into_paid_and_unpaid():
    before = outcomes(("L1", 1, "pending", "settlement_pending"),
                      ("L2", 1, "pending", "settlement_pending"),
                      ("L3", 1, "paid", ""))
    after = outcomes(("L1", 1, "paid", ""),
                     ("L2", 1, "unpaid", "insufficient_balance"),
                     ("L3", 1, "paid", ""))
    changes = outcome_changes(before, after)
    assert as_tuples(changes) == [
        ("L1", 1, "pending", "settlement_pending", "paid", ""),
        ("L2", 1, "pending", "settlement_pending", "unpaid", "insufficient_balance"),
    ]
    assert transition_counts(changes) == {"pending -> paid": 1,
                                          "pending -> unpaid (insufficient_balance)": 1}


def test_a_root_cause_change_with_the_same_status_is_a_change():
    before = outcomes(("L1", 1, "unpaid", "no_settlement_record"))
    after = outcomes(("L1", 1, "unpaid", "gateway_outage"))
    assert transition_counts(outcome_changes(before, after)) == {
        "unpaid (no_settlement_record) -> unpaid (gateway_outage)": 1}


def test_installments_on_one_side_only_are_absent_on_the_other():
    before = outcomes(("L1", 1, "unpaid", "card_unbound"))
    after = outcomes(("L2", 1, "paid", ""))
    assert transition_counts(outcome_changes(before, after)) == {
        "absent -> paid": 1, "unpaid (card_unbound) -> absent": 1}


def test_the_key_is_loan_and_installment_number_whatever_the_stored_types():
    before = outcomes(("0012345", "2", "paid", None))
    after = outcomes(("0012345", 2, "paid", ""))
    assert outcome_changes(before, after).empty


def test_ids_keep_their_leading_zeros():
    before = outcomes(("0012345", 1, "paid", ""))
    after = outcomes(("12345", 1, "paid", ""))
    assert set(outcome_changes(before, after)["loan_id"]) == {"0012345", "12345"}


def test_counts_are_most_frequent_first():
    before = outcomes(*[(f"L{n}", 1, "pending", "settlement_pending") for n in range(5)])
    after = outcomes(("L0", 1, "unpaid", "insufficient_balance"),
                     *[(f"L{n}", 1, "paid", "") for n in range(1, 5)])
    assert list(transition_counts(outcome_changes(before, after)).items()) == [
        ("pending -> paid", 4), ("pending -> unpaid (insufficient_balance)", 1)]


@pytest.mark.parametrize("status, cause, name", [
    ("paid", "", "paid"),
    ("overpaid", "", "overpaid"),
    ("pending", "settlement_pending", "pending"),
    ("unpaid", "account_frozen", "unpaid (account_frozen)"),
    ("partially_paid", "unclassified", "partially_paid (unclassified)"),
    ("absent", "", "absent"),
], ids=lambda value: value or "-")
def test_a_side_names_its_root_cause_unless_the_status_implies_it(status, cause, name):
    assert outcome_name(pd.Series([status]), pd.Series([cause])).tolist() == [name]
