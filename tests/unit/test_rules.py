"""CONTRACT section 3, one test per rule (recon.rules), each with the smallest day that shows it."""

from __future__ import annotations

from recon.exception_rows import exception_report
from recon.rules import Rule
from tests.unit.test_classify import TZ, D, Day


# --- status -----------------------------------------------------------------------------------

def test_paid_when_settled_equals_amount_due_and_root_cause_is_empty():
    day = Day().installment(due="100.00").binding().instruction("I1").settlement("I1")
    assert day.outcome() == ("paid", "")


def test_overpaid_when_settled_exceeds_amount_due_even_with_a_failed_retry():
    day = (Day().installment(due="100.00").binding()
           .instruction("I1").settlement("I1", amount="100.00")
           .instruction("I2", sent="2026-11-27 10:00:00").settlement("I2", amount="5.00")
           .instruction("I3", sent="2026-11-27 11:00:00")
           .settlement("I3", status="FAILED", code="51"))
    assert day.outcome() == ("overpaid", "")


def test_pending_outranks_partially_paid_when_the_cause_is_settlement_pending():
    day = (Day().installment(due="100.00").binding()
           .instruction("I1").settlement("I1", amount="40.00")
           .instruction("I2", gateway="BAOFU", sent="2026-11-27 10:00:00"))
    assert day.outcome() == ("pending", "settlement_pending")


def test_partially_paid_when_something_but_not_all_was_settled():
    day = (Day().installment(due="100.00").binding()
           .instruction("I1").settlement("I1", amount="40.00")
           .instruction("I2", sent="2026-11-27 10:00:00")
           .settlement("I2", status="FAILED", code="51"))
    assert day.outcome() == ("partially_paid", "insufficient_balance")


def test_unpaid_when_nothing_was_settled():
    day = Day().installment().binding().instruction("I1").settlement("I1", status="FAILED",
                                                                       code="62")
    assert day.outcome() == ("unpaid", "account_frozen")


def test_settled_sums_success_rows_of_every_instruction_of_the_installment():
    day = (Day().installment(due="100.00").binding()
           .instruction("I1").settlement("I1", amount="30.00")
           .instruction("I2", sent="2026-11-27 10:00:00").settlement("I2", amount="70.00"))
    outcomes = day.decide().outcomes
    assert outcomes.loc[0, "amount_settled"] == 10000
    assert day.outcome() == ("paid", "")


def test_success_rows_of_a_file_that_has_not_arrived_do_not_count():
    day = Day().installment().binding().instruction("I1", gateway="BAOFU")
    day.arrived = {"UNIONPAY"}  # BAOFU rows are never handed to classify when not arrived
    assert day.outcome() == ("pending", "settlement_pending")


# --- rule 1: sent attempts that did not succeed -------------------------------------------------

def test_rule1_deciding_attempt_is_the_latest_unsucceeded_by_sent_at():
    day = (Day().installment().binding()
           .instruction("I9", sent="2026-11-27 09:00:00").settlement("I9", status="FAILED", code="62")
           .instruction("I1", sent="2026-11-27 10:00:00").settlement("I1", status="FAILED", code="51"))
    assert day.outcome() == ("unpaid", "insufficient_balance")


def test_rule1_sent_at_tie_goes_to_the_greatest_instruction_id():
    day = (Day().installment().binding()
           .instruction("00000000000000000002").settlement("00000000000000000002", status="FAILED",
                                                           code="62")
           .instruction("00000000000000000001").settlement("00000000000000000001", status="FAILED",
                                                           code="51"))
    assert day.outcome() == ("unpaid", "account_frozen")


def test_rule1_a_succeeded_attempt_is_never_the_deciding_one():
    day = (Day().installment(due="100.00").binding()
           .instruction("I1", sent="2026-11-27 09:00:00")
           .settlement("I1", status="FAILED", code="51")
           .instruction("I2", sent="2026-11-27 10:00:00").settlement("I2", amount="60.00"))
    assert day.outcome() == ("partially_paid", "insufficient_balance")


def test_rule1_settlement_pending_when_the_deciding_gateway_file_has_not_arrived():
    day = Day().installment().binding().instruction("I1", gateway="BAOFU")
    assert day.outcome() == ("pending", "settlement_pending")


def test_rule1_pending_file_wins_over_a_failed_row_elsewhere():
    day = (Day().installment().binding().instruction("I1", gateway="BAOFU")
           .settlement("I1", status="FAILED", code="51", gateway="UNIONPAY"))
    assert day.outcome() == ("pending", "settlement_pending")


def test_rule1_latest_failed_row_by_txn_time_decides():
    day = (Day().installment().binding().instruction("I1")
           .settlement("I1", status="FAILED", code="62", at="2026-11-27 09:05:00")
           .settlement("I1", status="FAILED", code="14", at="2026-11-27 09:10:00")
           .settlement("I1", status="FAILED", code="51", at="2026-11-27 09:01:00"))
    assert day.outcome() == ("unpaid", "account_closed")


def test_rule1_settlement_pending_when_the_deciding_attempts_latest_row_is_pending():
    day = (Day().installment().binding().instruction("I1")
           .settlement("I1", status="FAILED", code="51", at="2026-11-27 09:01:00")
           .settlement("I1", status="PENDING", code="", at="2026-11-27 09:05:00"))
    assert day.outcome() == ("pending", "settlement_pending")
    evidence = exception_report(day.decide().outcomes, D, TZ)["evidence"].iloc[0]
    assert "is PENDING in the settlement file of UNIONPAY" in evidence


def test_rule1_a_failed_row_after_a_pending_one_decides_by_its_code():
    day = (Day().installment().binding().instruction("I1")
           .settlement("I1", status="PENDING", code="", at="2026-11-27 09:01:00")
           .settlement("I1", status="FAILED", code="51", at="2026-11-27 09:05:00"))
    assert day.outcome() == ("unpaid", "insufficient_balance")


def test_a_pending_row_counts_toward_no_total():
    day = (Day().installment(due="100.00").binding().instruction("I1")
           .settlement("I1", status="PENDING", amount="100.00"))
    outcomes = day.decide().outcomes
    assert outcomes["amount_settled"].iloc[0] == 0
    assert day.outcome() == ("pending", "settlement_pending")


def test_rule1_a_code_not_in_the_map_is_unclassified():
    day = Day().installment().binding().instruction("I1").settlement("I1", status="FAILED",
                                                                       code="N7")
    assert day.outcome() == ("unpaid", "unclassified")


def test_rule1_code_is_read_in_the_scheme_of_its_file():
    # 51 means insufficient balance in iso8583, nothing in iso20022.
    day = (Day().installment().binding().instruction("I1", gateway="CNAPS_DD")
           .settlement("I1", status="FAILED", code="51", gateway="CNAPS_DD"))
    assert day.outcome() == ("unpaid", "unclassified")


def test_rule1_codes_are_compared_trimmed_and_case_insensitively():
    day = (Day().installment().binding().instruction("I1", gateway="CNAPS_DD")
           .settlement("I1", status="FAILED", code=" am04 ", gateway="CNAPS_DD"))
    assert day.outcome() == ("unpaid", "insufficient_balance")


def test_rule1_gateway_outage_when_no_row_and_sent_during_an_incident():
    day = (Day().installment().binding().instruction("I1", sent="2026-11-27 10:30:00")
           .incident("UNIONPAY", "2026-11-27 10:00:00", "2026-11-27 10:30:00"))
    assert day.outcome() == ("unpaid", "gateway_outage")


def test_rule1_incident_window_includes_its_start():
    day = (Day().installment().binding().instruction("I1", sent="2026-11-27 10:00:00")
           .incident("UNIONPAY", "2026-11-27 10:00:00", "2026-11-27 10:30:00"))
    assert day.outcome() == ("unpaid", "gateway_outage")


def test_rule1_incident_of_another_gateway_does_not_count():
    day = (Day().installment().binding().instruction("I1", sent="2026-11-27 10:10:00")
           .incident("CNAPS_DD", "2026-11-27 10:00:00", "2026-11-27 10:30:00"))
    assert day.outcome() == ("unpaid", "no_settlement_record")


def test_rule1_no_settlement_record_just_after_an_incident():
    day = (Day().installment().binding().instruction("I1", sent="2026-11-27 10:30:01")
           .incident("UNIONPAY", "2026-11-27 10:00:00", "2026-11-27 10:30:00"))
    assert day.outcome() == ("unpaid", "no_settlement_record")


def test_rule1_failed_row_wins_over_an_incident():
    day = (Day().installment().binding().instruction("I1", sent="2026-11-27 10:10:00")
           .settlement("I1", status="FAILED", code="51")
           .incident("UNIONPAY", "2026-11-27 10:00:00", "2026-11-27 10:30:00"))
    assert day.outcome() == ("unpaid", "insufficient_balance")


def test_rule1_gateway_ids_match_case_insensitively():
    day = Day().installment().binding().instruction("I1", gateway="UnionPay").settlement(
        "I1", status="FAILED", code="51")
    assert day.outcome() == ("unpaid", "insufficient_balance")


# --- rule 2: instructions, none sent -------------------------------------------------------------

def test_rule2_instruction_not_confirmed_when_confirmation_required_and_not_confirmed():
    day = Day().installment().binding().instruction("I1", sent=None, confirm_required=True,
                                                    confirm_status="PENDING")
    assert day.outcome() == ("unpaid", "instruction_not_confirmed")


def test_rule2_not_confirmed_outranks_card_unbound():
    day = Day().installment().instruction("I1", sent=None, confirm_required=True,
                                          confirm_status="EXPIRED")
    assert day.outcome() == ("unpaid", "instruction_not_confirmed")


def test_rule2_confirmed_instruction_with_no_binding_at_creation_is_card_unbound():
    day = (Day().installment()
           .binding(bound="2026-01-01 00:00:00", unbound="2026-11-27 07:59:59")
           .binding(bound="2026-11-27 08:00:01")
           .instruction("I1", sent=None, created="2026-11-27 08:00:00", confirm_required=True,
                        confirm_status="CONFIRMED"))
    assert day.outcome() == ("unpaid", "card_unbound")


def test_rule2_binding_active_at_creation_means_not_instructed():
    day = (Day().installment().binding(bound="2026-11-27 07:00:00")
           .instruction("I1", sent=None, created="2026-11-27 08:00:00"))
    assert day.outcome() == ("unpaid", "not_instructed")


def test_rule2_binding_unbound_exactly_at_creation_is_not_active():
    day = (Day().installment()
           .binding(bound="2026-01-01 00:00:00", unbound="2026-11-27 08:00:00")
           .instruction("I1", sent=None, created="2026-11-27 08:00:00"))
    assert day.outcome() == ("unpaid", "card_unbound")


def test_rule2_latest_unsent_instruction_decides_the_binding_check():
    day = (Day().installment()
           .binding(bound="2026-01-01 00:00:00", unbound="2026-11-27 09:00:00")
           .instruction("I1", sent=None, created="2026-11-27 08:00:00")
           .instruction("I2", sent=None, created="2026-11-27 10:00:00"))
    assert day.outcome() == ("unpaid", "card_unbound")


def test_rule2_does_not_apply_when_any_attempt_was_sent():
    # The sent attempt succeeded in part; the unsent unconfirmed retry does not make it rule 2.
    day = (Day().installment(due="100.00").binding()
           .instruction("I1").settlement("I1", amount="50.00")
           .instruction("I2", sent=None, confirm_required=True, confirm_status="PENDING"))
    assert day.outcome() == ("partially_paid", "unclassified")


# --- rule 3: no instruction ---------------------------------------------------------------------

def test_rule3_no_instruction_and_no_binding_is_card_unbound():
    assert Day().installment().outcome() == ("unpaid", "card_unbound")


def test_rule3_binding_unbound_exactly_at_day_start_is_not_active():
    day = Day().installment().binding(unbound="2026-11-27 00:00:00")
    assert day.outcome() == ("unpaid", "card_unbound")


def test_rule3_binding_bound_exactly_at_day_start_is_active():
    day = Day().installment().binding(bound="2026-11-27 00:00:00")
    assert day.outcome() == ("unpaid", "not_instructed")


def test_rule3_binding_bound_during_the_day_is_not_active_at_day_start():
    day = Day().installment().binding(bound="2026-11-27 00:00:01")
    assert day.outcome() == ("unpaid", "card_unbound")


def test_rule3_binding_of_another_loan_does_not_count():
    day = Day().installment(loan="L1").binding(loan="L2")
    assert day.outcome() == ("unpaid", "card_unbound")


def test_rule3_bound_and_never_instructed_is_not_instructed():
    day = Day().installment().binding(unbound="2026-11-27 00:00:01")
    assert day.outcome() == ("unpaid", "not_instructed")


# --- rule 4 -------------------------------------------------------------------------------------

def test_rule4_all_attempts_succeeded_yet_short_is_unclassified():
    day = Day().installment(due="100.00").binding().instruction("I1").settlement("I1",
                                                                                 amount="99.99")
    assert day.outcome() == ("partially_paid", "unclassified")


def test_each_outcome_names_the_rule_that_decided_it():
    day = (Day().installment("L1").binding("L1").instruction("I1", loan="L1")
           .installment("L2").binding("L2").instruction("I2", loan="L2", sent=None)
           .installment("L3")
           .installment("L4").binding("L4").instruction("I4", loan="L4")
           .settlement("I4", amount="99.99"))
    rules = day.decide().outcomes.set_index("loan_id")["rule"]
    assert rules.to_dict() == {"L1": Rule.DECIDING_ATTEMPT, "L2": Rule.UNSENT_INSTRUCTIONS,
                               "L3": Rule.NO_INSTRUCTION, "L4": Rule.ANYTHING_ELSE}
