"""recon.retry: the retry plan (CONTRACT 7), one test per default of the policy, then the safety
rules: no debit while an outcome is unknown or a file is pending, refunds equal what was taken
too much, rebinding, attempt caps across dates, and the operator's policy file."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from recon.errors import UsageError
from recon.ids import encode_ids
from recon.retry import RETRY_PLAN_COLUMNS, plan_retries
from recon.retry_policy import load_policy
from tests.unit.test_classify import TZ, D, Day

NIGHT = dt.datetime(2026, 11, 28, 0, 30, tzinfo=TZ)  # cron runs D shortly after midnight
NO_EARLIER = pd.DataFrame({"loan_id": pd.Series([], dtype="str"),
                           "installment_no": pd.Series([], dtype="int64"),
                           "attempts": pd.Series([], dtype="int64")})


def plan(day: Day, *, now=NIGHT, earlier=None, clean=("CNAPS_DD",), policy=None) -> pd.DataFrame:
    frames = day.frames()
    decisions = day.decide()
    ids = encode_ids(frames["installments"], frames["instructions"], frames["bindings"],
                     frames["settlements"])
    return plan_retries(
        decisions.outcomes, bindings=frames["bindings"], loan_of_binding=ids.loan_of_binding,
        incidents=frames["incidents"], duplicates=decisions.settlement_exceptions,
        instructions=frames["instructions"],
        earlier_attempts=NO_EARLIER if earlier is None else earlier,
        clean_gateways=list(clean), policy=policy or load_policy(None), business_date=D,
        now=now, tz=TZ)


def only(plan_rows: pd.DataFrame) -> dict:
    assert len(plan_rows) == 1, plan_rows
    return plan_rows.iloc[0].to_dict()


def failed(code: str, gateway="UNIONPAY") -> Day:
    return (Day().binding().installment(due="300.00").instruction("I1", gateway=gateway)
            .settlement("I1", status="FAILED", code=code, gateway=gateway))


# One case per root cause of the default policy: (day, action, not_before, gateway, amount,
# max_attempts).
DEFAULTS = {
    "insufficient_balance": (lambda: failed("51"), "retry", "2026-11-28 09:00:00", "UNIONPAY",
                             "300.00", "3"),
    "account_frozen": (lambda: failed("62"), "none", "", "", "", ""),
    "account_closed": (lambda: failed("14"), "wait_for_borrower", "", "", "", ""),
    "card_unbound": (lambda: Day().installment(), "wait_for_borrower", "", "", "", ""),
    "gateway_outage": (lambda: Day().binding().installment(due="300.00").instruction("I1")
                       .incident("UNIONPAY", "2026-11-27 08:00:00", "2026-11-27 12:00:00"),
                       "retry_other_gateway", "2026-11-28 09:00:00", "CNAPS_DD", "300.00", "4"),
    "instruction_not_confirmed": (lambda: Day().binding().installment().instruction(
        "I1", sent=None, confirm_required=True, confirm_status="PENDING"),
        "wait_for_borrower", "", "", "", ""),
    "not_instructed": (lambda: Day().binding().installment(due="300.00"), "retry",
                       "2026-11-28 09:00:00", "CNAPS_DD", "300.00", "3"),
    "no_settlement_record": (lambda: Day().binding().installment().instruction("I1"),
                             "query_gateway", "2026-11-28 00:30:00", "UNIONPAY", "", ""),
    "settlement_pending": (lambda: Day().binding().installment().instruction(
        "I1", gateway="BAOFU"), "wait_for_file", "", "BAOFU", "", ""),
    "other_decline": (lambda: failed("05"), "retry", "2026-11-28 09:00:00", "UNIONPAY", "300.00",
                      "2"),
    "unclassified": (lambda: failed("XX"), "none", "", "", "", ""),
}


@pytest.mark.parametrize("cause", list(DEFAULTS))
def test_each_default_of_the_policy(cause):
    build, action, not_before, gateway, amount, max_attempts = DEFAULTS[cause]
    row = only(plan(build()))
    assert row["root_cause"] == cause
    assert (row["action"], row["not_before"], row["gateway"], row["amount"],
            row["max_attempts"]) == (action, not_before, gateway, amount, max_attempts)
    assert row["reason"] and "." not in row["reason"].rstrip(".")[-1:]


def test_every_root_cause_has_a_default_case():
    assert set(DEFAULTS) == set(load_policy(None).causes)


def test_paid_installments_get_no_row_and_the_columns_are_the_contracts():
    day = Day().binding().installment().instruction("I1").settlement("I1")
    rows = plan(day)
    assert rows.empty and list(rows.columns) == RETRY_PLAN_COLUMNS


def test_partially_paid_is_retried_for_what_is_still_owed():
    day = (Day().binding().installment(due="300.00").instruction("I1", sent="2026-11-27 09:00:00")
           .instruction("I2", sent="2026-11-27 10:00:00")
           .settlement("I1", amount="100.00").settlement("I2", status="FAILED", code="51"))
    row = only(plan(day))
    assert (row["status"], row["action"], row["amount"], row["attempts"]) == \
        ("partially_paid", "retry", "200.00", "2")


def test_overpaid_is_refunded_by_exactly_what_was_taken_too_much():
    day = Day().binding().installment(due="300.00").instruction("I1").settlement(
        "I1", amount="450.50")
    row = only(plan(day))
    assert (row["status"], row["action"], row["amount"], row["gateway"]) == \
        ("overpaid", "refund", "150.50", "UNIONPAY")


def test_each_duplicate_debit_is_one_refund_of_its_amount_with_its_ids():
    day = (Day().binding().installment(due="300.00").instruction("I1")
           .settlement("I1", amount="300.00", txn="T-first", at="2026-11-27 09:01:00")
           .settlement("I1", amount="300.00", txn="T-again", at="2026-11-27 09:02:00")
           .settlement("I1", amount="300.00", txn="T-third", at="2026-11-27 09:03:00"))
    rows = plan(day)
    refunds = rows[rows["subject"] == "duplicate_debit"]
    assert sorted(refunds["gateway_txn_id"]) == ["T-again", "T-third"]
    assert set(refunds["amount"]) == {"300.00"} and set(refunds["action"]) == {"refund"}
    assert set(refunds["instruction_id"]) == {"I1"} and set(refunds["loan_id"]) == {"L1"}
    # The installment is overpaid by exactly those 600.00: not refunded a second time.
    installment = only(rows[rows["subject"] == "installment"])
    assert (installment["status"], installment["action"], installment["amount"]) == \
        ("overpaid", "none", "")


def test_an_overpayment_beyond_the_duplicates_is_refunded_by_the_rest():
    day = (Day().binding().installment(due="300.00").instruction("I1").instruction("I2")
           .settlement("I1", amount="300.00", txn="T1", at="2026-11-27 09:01:00")
           .settlement("I1", amount="300.00", txn="T2", at="2026-11-27 09:02:00")
           .settlement("I2", amount="50.00", txn="T3"))
    rows = plan(day)
    assert rows.set_index("gateway_txn_id").loc["T2", "amount"] == "300.00"
    assert only(rows[rows["subject"] == "installment"])["amount"] == "50.00"


def debited_twice(each: str) -> Day:
    """An installment due 1000.00 whose one instruction, for `each`, is debited twice (T1, T2)."""
    return (Day().binding().installment(due="1000.00").instruction("I1")
            .settlement("I1", amount=each, txn="T1", at="2026-11-27 09:01:00")
            .settlement("I1", amount=each, txn="T2", at="2026-11-27 09:02:00"))


def test_a_duplicate_debit_that_covered_what_was_still_owed_is_refunded_only_beyond_it():
    # 600.00 debited twice: 1200.00 settled, 200.00 overpaid.
    rows = plan(debited_twice("600.00"))
    refund = rows.set_index("gateway_txn_id").loc["T2"]
    assert (refund["action"], refund["amount"]) == ("refund", "200.00")
    assert "refund 200.00 of its 600.00" in refund["reason"]
    installment = only(rows[rows["subject"] == "installment"])
    assert (installment["status"], installment["action"], installment["amount"]) == \
        ("overpaid", "none", "")


def test_a_duplicate_debit_of_an_installment_still_short_is_not_refunded():
    # 400.00 debited twice: 800.00 settled, 200.00 still owed.
    rows = plan(debited_twice("400.00"))
    duplicate = rows.set_index("gateway_txn_id").loc["T2"]
    assert (duplicate["action"], duplicate["amount"]) == ("none", "")
    assert "no refund" in duplicate["reason"]
    # Every attempt succeeded yet less than due is settled: CONTRACT 3's rule 4, for a person.
    installment = only(rows[rows["subject"] == "installment"])
    assert (installment["status"], installment["root_cause"]) == ("partially_paid", "unclassified")
    assert installment["reason"] == ("every attempt succeeded, yet 200.00 is still owed: no "
                                     "automatic debit; investigate the instructions' amounts")


# --- never debit before an outcome is known -----------------------------------------------------

def test_no_debit_while_another_attempts_outcome_is_unknown():
    # The deciding (latest) attempt failed 51, but an earlier one has no row: it may have taken
    # the money.
    day = (Day().binding().installment().instruction("I0", sent="2026-11-27 08:00:00")
           .instruction("I1", sent="2026-11-27 09:00:00")
           .settlement("I1", status="FAILED", code="51"))
    row = only(plan(day))
    assert (row["root_cause"], row["action"]) == ("insufficient_balance", "query_gateway")


def test_no_debit_while_another_attempts_file_is_pending():
    day = (Day().binding().installment().instruction("I0", gateway="BAOFU",
                                                     sent="2026-11-27 08:00:00")
           .instruction("I1", sent="2026-11-27 09:00:00")
           .settlement("I1", status="FAILED", code="51"))
    assert only(plan(day))["action"] == "wait_for_file"


def test_no_debit_while_another_attempt_is_still_pending_at_its_gateway():
    # The deciding (latest) attempt failed 51; an earlier one's latest row is PENDING: it is in
    # flight and may still take the money.
    day = (Day().binding().installment().instruction("I0", sent="2026-11-27 08:00:00")
           .instruction("I1", sent="2026-11-27 10:00:00")
           .settlement("I0", status="PENDING", code="P", at="2026-11-27 08:00:05")
           .settlement("I1", status="FAILED", code="51", at="2026-11-27 10:00:05"))
    row = only(plan(day))
    assert (row["root_cause"], row["action"], row["amount"]) == \
        ("insufficient_balance", "wait_for_file", "")
    assert row["reason"].startswith("an attempt of this installment is PENDING")


def test_a_pending_row_followed_by_a_final_failure_is_answered():
    day = (Day().binding().installment().instruction("I0", sent="2026-11-27 08:00:00")
           .instruction("I1", sent="2026-11-27 10:00:00")
           .settlement("I0", status="PENDING", code="P", at="2026-11-27 08:00:05")
           .settlement("I0", status="FAILED", code="51", at="2026-11-27 08:30:00")
           .settlement("I1", status="FAILED", code="51", at="2026-11-27 10:00:05"))
    assert only(plan(day))["action"] == "retry"


def test_a_deciding_pending_row_says_pending_not_a_missing_file():
    day = (Day().binding().installment().instruction("I1")
           .settlement("I1", status="PENDING", code="P"))
    row = only(plan(day))
    assert (row["root_cause"], row["action"]) == ("settlement_pending", "wait_for_file")
    assert "PENDING" in row["reason"] and "has not arrived" not in row["reason"]


def test_a_rebinding_does_not_debit_while_the_outcome_is_unknown():
    day = (Day().binding(bound="2026-01-01 00:00:00", unbound="2026-11-27 10:00:00")
           .binding(bound="2026-11-27 12:00:00").installment().instruction("I1"))
    assert only(plan(day))["action"] == "query_gateway"


@pytest.mark.parametrize("cause", ["no_settlement_record", "settlement_pending"])
@pytest.mark.parametrize("action", ["retry", "retry_other_gateway"])
def test_a_policy_that_would_debit_on_an_unknown_outcome_is_refused(tmp_path, cause, action):
    path = tmp_path / "policy.toml"
    path.write_text(f'[causes.{cause}]\naction = "{action}"\n')
    with pytest.raises(UsageError) as refused:
        load_policy(path)
    assert str(path) in str(refused.value) and f"causes.{cause}" in str(refused.value)


# --- rebinding ----------------------------------------------------------------------------------

def test_a_card_rebound_after_the_failure_is_retried_on_the_new_binding():
    day = (Day().binding(bound="2026-01-01 00:00:00", unbound="2026-11-27 10:00:00")
           .binding(bound="2026-11-27 15:00:00")
           .installment(due="300.00").instruction("I1", sent="2026-11-27 09:00:00")
           .settlement("I1", status="FAILED", code="14"))
    row = only(plan(day))
    assert (row["root_cause"], row["action"], row["binding_id"], row["amount"]) == \
        ("account_closed", "retry", "b1", "300.00")
    assert "rebound" in row["reason"]


def test_a_binding_older_than_the_failure_is_not_a_rebinding():
    day = (Day().binding(bound="2026-01-01 00:00:00").installment()
           .instruction("I1", sent="2026-11-27 09:00:00")
           .settlement("I1", status="FAILED", code="14"))
    row = only(plan(day))
    assert (row["action"], row["binding_id"]) == ("wait_for_borrower", "")


def test_a_card_bound_during_d_after_an_unbound_start_is_retried_on_it():
    day = Day().binding(bound="2026-11-27 18:00:00").installment()
    row = only(plan(day))
    assert (row["root_cause"], row["action"], row["binding_id"]) == ("card_unbound", "retry", "b0")


def test_a_frozen_account_is_not_retried_even_on_a_new_binding():
    day = (Day().binding(bound="2026-01-01 00:00:00", unbound="2026-11-27 10:00:00")
           .binding(bound="2026-11-27 15:00:00").installment()
           .instruction("I1", sent="2026-11-27 09:00:00")
           .settlement("I1", status="FAILED", code="62"))
    assert only(plan(day))["action"] == "none"


# --- attempt caps over the installment's life ---------------------------------------------------

def earlier(attempts: int) -> pd.DataFrame:
    return pd.DataFrame({"loan_id": ["L1"], "installment_no": [1], "attempts": [attempts]})


@pytest.mark.parametrize("before, action", [(0, "retry"), (1, "retry"), (2, "none")])
def test_insufficient_balance_is_retried_at_most_three_times_over_the_installments_life(
        before, action):
    row = only(plan(failed("51"), earlier=earlier(before)))
    assert (row["action"], row["attempts"]) == (action, str(before + 1))
    if action == "none":
        assert "limit of 3" in row["reason"]


def test_attempts_of_other_installments_do_not_count():
    other = pd.DataFrame({"loan_id": ["L1", "L2"], "installment_no": [2, 1], "attempts": [5, 5]})
    assert only(plan(failed("51"), earlier=other))["action"] == "retry"


# --- timing and gateways ------------------------------------------------------------------------

def test_a_rerun_in_the_afternoon_retries_the_next_morning():
    row = only(plan(failed("51"), now=dt.datetime(2026, 11, 28, 15, 0, tzinfo=TZ)))
    assert row["not_before"] == "2026-11-29 09:00:00"


def test_an_internal_resend_goes_within_the_debit_window():
    row = only(plan(Day().binding().installment(), now=dt.datetime(2026, 11, 28, 15, 0,
                                                                    tzinfo=TZ)))
    assert row["not_before"] == "2026-11-28 15:00:00"


def test_an_outage_without_a_clean_gateway_retries_the_same_one_an_hour_after_it_ends():
    day = (Day().binding().installment().instruction("I1")
           .incident("UNIONPAY", "2026-11-27 08:00:00", "2026-11-28 10:15:00"))
    row = only(plan(day, clean=("UNIONPAY",)))
    assert (row["action"], row["gateway"], row["not_before"]) == \
        ("retry", "UNIONPAY", "2026-11-28 11:15:00")


def test_an_operator_file_overrides_some_keys_of_some_causes(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text('debit_window = ["08:00", "20:00"]\n'
                    '[causes.insufficient_balance]\nat = "10:30"\nmax_attempts = 5\n'
                    '[causes.account_frozen]\naction = "wait_for_borrower"\n')
    policy = load_policy(path)
    row = only(plan(failed("51"), policy=policy, earlier=earlier(3)))
    assert (row["action"], row["not_before"], row["max_attempts"]) == \
        ("retry", "2026-11-28 10:30:00", "5")
    assert only(plan(failed("62"), policy=policy))["action"] == "wait_for_borrower"
    assert only(plan(Day().binding().installment(), policy=policy))["not_before"] == \
        "2026-11-28 08:00:00"


@pytest.mark.parametrize("text, words", [
    ('[causes.insufficient_balance]\naction = "retyr"\n', ["causes.insufficient_balance.action"]),
    ('[causes.insufficient_balance]\nat = "9am"\n', ["causes.insufficient_balance.at", "HH:MM"]),
    ('[causes.insufficient_balance]\nmax_attempts = 0\n', ["max_attempts"]),
    ('[causes.insufficient_balance]\nmax_atempts = 2\n', ["max_atempts"]),
    ('[causes.no_such_cause]\naction = "none"\n', ["causes.no_such_cause", "not a root cause"]),
    ('debit_window = ["21:00", "09:00"]\n', ["debit_window", "before its end"]),
    ('[causes.account_frozen]\naction = "refund"\n', ["causes.account_frozen", "refund"]),
    ('retries = 3\n', ["retries", "unknown key"]),
    ('[causes.insufficient_balance]\nmax_attempts = true\n', ["max_attempts", "integer"]),
    ('[causes.insufficient_balance]\nretry_on_rebind = "yes"\n', ["retry_on_rebind", "boolean"]),
    ('[causes.insufficient_balance]\ndelay_hours = nan\n', ["delay_hours", "finite"]),
    ('debit_window = ["08:00", "20:00"]\n[causes.insufficient_balance]\nat = "23:30"\n',
     ["causes.insufficient_balance.at", "23:30 is outside debit_window 08:00-20:00"]),
    ('[causes.insufficient_balance]\nat = "07:00"\n',
     ["causes.insufficient_balance.at", "outside debit_window 09:00-21:00"]),
    ('[causes\n', ["not valid TOML"]),
])
def test_a_mistake_in_the_policy_file_is_a_usage_error_naming_file_key_and_problem(
        tmp_path, text, words):
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as refused:
        load_policy(path)
    message = str(refused.value)
    assert refused.value.exit_code == 2
    for word in [str(path)] + words:
        assert word in message, message


def test_a_debit_no_attempt_names_a_gateway_for_goes_through_the_preferred_clean_one():
    day = Day().binding(bound="2026-11-27 12:00:00").installment()  # card_unbound, rebound
    row = only(plan(day, clean=("LIANLIAN", "CNAPS_DD")))
    assert (row["action"], row["gateway"], row["binding_id"]) == ("retry", "LIANLIAN", "b0")
    assert only(plan(day, clean=()))["gateway"] == ""  # no clean gateway: the system's choice
