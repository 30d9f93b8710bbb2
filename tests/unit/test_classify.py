"""CONTRACT section 3, one test per rule, each with the smallest day that shows it."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recon.classify import classify, encode_ids, exception_report, latest_per_group
from recon.codes import CodeMap

D = dt.date(2026, 11, 27)
TZ = ZoneInfo("Asia/Shanghai")


def ts(text: str | None) -> pd.Timestamp:
    if text is None:
        return pd.NaT
    return pd.Timestamp(text, tz=TZ).tz_convert("UTC")


class Day:
    """A tiny business day built row by row, classified with `decide()`."""

    def __init__(self) -> None:
        self.installments: list[dict] = []
        self.bindings: list[dict] = []
        self.instructions: list[dict] = []
        self.settlements: list[dict] = []
        self.incidents: list[dict] = []
        self.arrived = {"UNIONPAY", "CNAPS_DD"}
        self.schemes = {"UNIONPAY": "iso8583", "CNAPS_DD": "iso20022"}

    def installment(self, loan="L1", no=1, due="100.00", due_date="2026-11-27", borrower=None):
        self.installments.append({"loan_id": loan, "installment_no": no,
                                  "borrower_id": borrower or "B" + loan,
                                  "due_date": pd.Timestamp(due_date), "amount_due": fen(due),
                                  "line": len(self.installments) + 2})
        return self

    def binding(self, loan="L1", bound="2026-01-01 00:00:00", unbound=None, card="622202******1234"):
        self.bindings.append({"binding_id": f"b{len(self.bindings)}", "loan_id": loan,
                              "card_no_masked": card, "bound_at": ts(bound),
                              "unbound_at": ts(unbound)})
        return self

    def instruction(self, iid, loan="L1", no=1, gateway="UNIONPAY", sent="2026-11-27 09:00:00",
                    created="2026-11-27 08:00:00", confirm_required=False,
                    confirm_status="NOT_REQUIRED"):
        self.instructions.append({"instruction_id": iid, "loan_id": loan, "installment_no": no,
                                  "gateway": gateway, "amount": 10000, "created_at": ts(created),
                                  "confirm_required": confirm_required,
                                  "confirm_status": confirm_status, "sent_at": ts(sent)})
        return self

    def settlement(self, iid, status="SUCCESS", amount="100.00", code="00", gateway="UNIONPAY",
                   at="2026-11-27 09:01:00", txn=None, msg=""):
        self.settlements.append({
            "gateway_txn_id": txn or f"T{len(self.settlements)}", "instruction_id": iid,
            "amount": fen(amount), "status": status, "response_code": code, "response_msg": msg,
            "txn_time": ts(at), "line": len(self.settlements) + 2, "gateway": gateway,
            "scheme": self.schemes.get(gateway, "iso8583"), "file": f"settlement_{gateway}.csv"})
        return self

    def incident(self, gateway, start, end, description="outage"):
        self.incidents.append({"gateway": gateway, "started_at": ts(start), "ended_at": ts(end),
                               "description": description})
        return self

    def decide(self, codes: CodeMap | None = None):
        return classify(**self.frames(), arrived_gateways=self.arrived, codes=codes or CodeMap(),
                        business_date=D, tz=TZ)

    def frames(self) -> dict[str, pd.DataFrame]:
        return {
            "installments": _frame(self.installments, ["loan_id", "installment_no", "borrower_id",
                                                       "due_date", "amount_due", "line"]),
            "bindings": _frame(self.bindings, ["binding_id", "loan_id", "card_no_masked",
                                               "bound_at", "unbound_at"]),
            "instructions": _frame(self.instructions, [
                "instruction_id", "loan_id", "installment_no", "gateway", "amount", "created_at",
                "confirm_required", "confirm_status", "sent_at"]),
            "settlements": _frame(self.settlements, [
                "gateway_txn_id", "instruction_id", "amount", "status", "response_code",
                "response_msg", "txn_time", "line", "gateway", "scheme", "file"]),
            "incidents": _frame(self.incidents, ["gateway", "started_at", "ended_at",
                                                 "description"]),
        }

    def outcome(self, loan="L1", no=1, codes: CodeMap | None = None) -> tuple[str, str]:
        outcomes = self.decide(codes).outcomes.set_index(["loan_id", "installment_no"])
        row = outcomes.loc[(loan, no)]
        return row["status"], row["root_cause"]


TYPES = {"installment_no": "int64", "amount_due": "int64", "amount": "int64", "line": "int64",
         "due_date": "datetime64[ns]",
         "confirm_required": "bool"}
TIMES = {"bound_at", "unbound_at", "created_at", "sent_at", "txn_time", "started_at", "ended_at"}


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    for column in columns:
        if column in TIMES:
            frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[ns, UTC]")
        elif column in TYPES:
            frame[column] = frame[column].astype(TYPES[column])
        else:
            frame[column] = frame[column].astype("str")
    return frame


def fen(yuan: str) -> int:
    whole, _, cents = yuan.partition(".")
    return int(whole) * 100 + int((cents + "00")[:2])


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


# --- settlement-side exceptions ------------------------------------------------------------------

def test_orphan_settlement_is_a_success_row_matching_no_instruction():
    day = (Day().installment().binding().instruction("I1").settlement("I1")
           .settlement("NOPE", txn="TX9").settlement("NOPE2", status="FAILED", code="51"))
    exceptions = day.decide().settlement_exceptions
    assert exceptions[["gateway_txn_id", "kind"]].values.tolist() == [["TX9", "orphan_settlement"]]


def test_duplicate_debit_lists_each_extra_success_row_and_settled_counts_all():
    day = (Day().installment(due="100.00").binding().instruction("I1")
           .settlement("I1", txn="A", at="2026-11-27 09:01:00")
           .settlement("I1", txn="C", at="2026-11-27 09:03:00")
           .settlement("I1", txn="B", at="2026-11-27 09:02:00"))
    decisions = day.decide()
    exceptions = decisions.settlement_exceptions
    assert sorted(exceptions["gateway_txn_id"]) == ["B", "C"]
    assert set(exceptions["kind"]) == {"duplicate_debit"}
    assert decisions.outcomes.loc[0, "amount_settled"] == 30000
    assert day.outcome() == ("overpaid", "")


def test_debit_without_installment_is_a_success_row_of_an_instruction_for_no_installment_of_d():
    day = (Day().installment("L1").binding("L1").instruction("I1", loan="L1")
           .instruction("I2", loan="L9", no=3).settlement("I2", txn="TX2", amount="250.00")
           .settlement("I2", txn="TX3", status="FAILED", code="51"))
    decisions = day.decide()
    exceptions = decisions.settlement_exceptions
    assert exceptions[["gateway_txn_id", "instruction_id", "amount", "kind"]].values.tolist() == [
        ["TX2", "I2", 25000, "debit_without_installment"]]
    detail = exceptions.loc[0, "detail"]
    assert "installment L9/3" in detail and "settlement_UNIONPAY.csv line 2" in detail
    assert decisions.outcomes["amount_settled"].tolist() == [0]


def test_debit_without_installment_lists_every_success_row_once_and_none_as_duplicate():
    day = (Day().installment("L1").binding("L1")
           .instruction("I2", loan="L1", no=2).settlement("I2", txn="A").settlement("I2", txn="B"))
    exceptions = day.decide().settlement_exceptions
    assert sorted(exceptions["gateway_txn_id"]) == ["A", "B"]
    assert set(exceptions["kind"]) == {"debit_without_installment"}
    assert all("2 SUCCESS rows" in detail for detail in exceptions["detail"])


@st.composite
def settlement_worlds(draw):
    """Installments, instructions (some for installments not of D) and settlement rows (some
    for no instruction, several per instruction, SUCCESS and FAILED) of a few gateways."""
    day = Day()
    day.arrived = set(draw(st.sets(st.sampled_from(["UNIONPAY", "CNAPS_DD"]))))
    keys = draw(st.sets(st.tuples(st.sampled_from(["L1", "L2", "L3"]), st.integers(1, 2)),
                        max_size=6))
    for loan, number in sorted(keys):
        day.installment(loan, number, due=draw(st.sampled_from(["100.00", "0.01", "250.00"])))
    for loan in ("L1", "L2", "L3"):
        day.binding(loan)
    instructions = draw(st.lists(st.tuples(st.sampled_from(["L1", "L2", "L3", "L4"]),
                                           st.integers(1, 2), st.booleans()), max_size=8))
    for position, (loan, number, sent) in enumerate(instructions):
        day.instruction(f"I{position}", loan=loan, no=number,
                        sent="2026-11-27 09:00:00" if sent else None)
    ids = [f"I{position}" for position in range(len(instructions))] + ["NOPE"]
    for _ in range(draw(st.integers(0, 12))):
        day.settlement(draw(st.sampled_from(ids)),
                       status=draw(st.sampled_from(["SUCCESS", "SUCCESS", "FAILED"])),
                       amount=draw(st.sampled_from(["100.00", "0.01", "99.99"])),
                       gateway=draw(st.sampled_from(["UNIONPAY", "CNAPS_DD"])),
                       at=f"2026-11-27 09:{draw(st.integers(0, 3)):02d}:00", code="51")
    return day


@settings(max_examples=60, deadline=None)
@given(settlement_worlds())
def test_every_success_rows_money_is_settled_or_listed_never_neither_nor_both(day):
    """CONTRACT 3: a SUCCESS row counts in an installment's settled, or it is an
    orphan_settlement or a debit_without_installment, never both. duplicate_debit rows are the
    exception that README states: counted in settled and listed."""
    decisions = day.decide()
    exceptions = decisions.settlement_exceptions
    installments = {(row["loan_id"], row["installment_no"]) for row in day.installments}
    instruction_of = {row["instruction_id"]: (row["loan_id"], row["installment_no"])
                      for row in day.instructions}
    kinds = {txn: set(exceptions.loc[exceptions["gateway_txn_id"] == txn, "kind"])
             for txn in exceptions["gateway_txn_id"]}
    settled_by_rows = 0
    for row in day.settlements:
        listed = kinds.get(row["gateway_txn_id"], set())
        if row["status"] != "SUCCESS":
            assert not listed, row
            continue
        counted = instruction_of.get(row["instruction_id"]) in installments
        uncounted_kinds = listed & {"orphan_settlement", "debit_without_installment"}
        assert counted != bool(uncounted_kinds), (row, listed)  # settled xor listed as lost
        assert len(uncounted_kinds) <= 1 and (counted or "duplicate_debit" not in listed)
        settled_by_rows += row["amount"] if counted else 0
    assert int(decisions.outcomes["amount_settled"].sum()) == settled_by_rows
    success_total = sum(row["amount"] for row in day.settlements if row["status"] == "SUCCESS")
    lost = exceptions["kind"].isin(["orphan_settlement", "debit_without_installment"])
    assert settled_by_rows + int(exceptions.loc[lost, "amount"].sum()) == success_total
    assert len(exceptions) == exceptions["gateway_txn_id"].nunique()


# --- the exception report -------------------------------------------------------------------------

def test_exception_report_has_every_non_paid_installment_with_its_evidence():
    day = (Day().installment("L1").binding("L1").instruction("I1", loan="L1").settlement("I1")
           .installment("L2").binding("L2")
           .instruction("I2", loan="L2", sent="2026-11-27 09:14:03")
           .settlement("I2", status="FAILED", code="51", msg="余额不足, 请充值"))
    report = exception_report(day.decide().outcomes, D, TZ)
    assert report["loan_id"].tolist() == ["L2"]
    row = report.iloc[0]
    assert row["root_cause_zh"] == "余额不足"
    assert row["amount_outstanding"] == "100.00"
    assert row["attempts"] == "1"
    assert row["last_attempt_at"] == "2026-11-27 09:14:03"
    assert row["card_no_masked"] == "622202******1234"
    assert row["suggested_action"] == "SMS reminder; retry after payday"
    assert row["evidence"] == "last attempt 2026-11-27 09:14:03 via UNIONPAY failed 51"


@pytest.mark.parametrize("cause_day, sentence_start", [
    (lambda: Day().installment(), "no debit instruction and no card binding active"),
    (lambda: Day().installment().binding(), "no debit instruction although a card binding"),
    (lambda: Day().installment().binding().instruction("I1", gateway="BAOFU"),
     "last attempt 2026-11-27 09:00:00 via BAOFU awaits the settlement file"),
    (lambda: Day().installment().binding().instruction("I1"),
     "last attempt 2026-11-27 09:00:00 via UNIONPAY has no row"),
], ids=["card_unbound", "not_instructed", "settlement_pending", "no_settlement_record"])
def test_every_exception_row_gets_an_evidence_sentence(cause_day, sentence_start):
    report = exception_report(cause_day().decide().outcomes, D, TZ)
    assert report.loc[0, "evidence"].startswith(sentence_start)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 4), st.integers(0, 3),
                          st.text(alphabet="ab9Z", min_size=1, max_size=3)),
                max_size=30))
def test_latest_per_group_is_the_greatest_time_then_the_greatest_id(rows):
    groups = np.array([group for group, _, _ in rows], dtype=np.int64)
    times = np.array([time for _, time, _ in rows], dtype=np.int64)
    ids = pd.Series([row_id for _, _, row_id in rows], dtype="str")
    best: dict[int, int] = {}
    for position, (group, time, row_id) in enumerate(rows):
        if group < 0:
            continue
        current = best.get(group)
        if current is None or (time, row_id) > (rows[current][1], rows[current][2]):
            best[group] = position
    # Equal (time, id) pairs in one group are the same row twice: either one is right.
    chosen = latest_per_group(groups, times, ids)
    assert list(chosen) == sorted(chosen)
    assert sorted(groups[chosen].tolist()) == sorted(best)
    for position in chosen:
        winner = best[int(groups[position])]
        assert (times[position], ids[position]) == (rows[winner][1], rows[winner][2])


def test_ids_encoded_on_two_threads_equal_those_encoded_on_one():
    from concurrent.futures import ThreadPoolExecutor

    day = (Day().installment("L1").installment("L2").binding("L2").binding("L9")
           .binding("L1").instruction("I1", loan="L1").instruction("I2", loan="L7")
           .settlement("I2").settlement("I5"))
    frames = {name: _frame(rows, list(rows[0])) for name, rows in
              [("installments", day.installments), ("instructions", day.instructions),
               ("bindings", day.bindings), ("settlements", day.settlements)]}
    alone = encode_ids(**frames)
    with ThreadPoolExecutor(1) as pool:
        beside = encode_ids(**frames, executor=pool)
    for field in ("loan_of_installment", "loan_of_instruction", "loan_of_binding",
                  "instruction_code", "settlement_instruction_code"):
        assert getattr(alone, field).tolist() == getattr(beside, field).tolist(), field
    # L9 has nothing due and no instruction on D: its binding is never consulted.
    assert alone.loan_of_binding.tolist() == [alone.loan_of_installment[1], -1,
                                              alone.loan_of_installment[0]]
    # I5 matches no instruction: its code is past the instructions' own.
    assert alone.settlement_instruction_code.tolist() == [1, 2]
    assert alone.instruction_ids == 3


def test_the_card_shown_is_the_binding_active_at_the_start_of_d_else_the_latest_bound():
    day = (Day()
           # L1: an old binding still active at D 00:00 beats a newer one bound later on D.
           .installment("L1").binding("L1", bound="2025-01-01 00:00:00", card="A-active")
           .binding("L1", bound="2026-11-27 10:00:00", card="B-later")
           # L2: nothing active at D 00:00: the latest bound is shown.
           .installment("L2").binding("L2", bound="2025-01-01 00:00:00",
                                      unbound="2026-01-01 00:00:00", card="C-old")
           .binding("L2", bound="2026-02-01 00:00:00", unbound="2026-03-01 00:00:00",
                    card="D-latest")
           # L3: two active bindings bound at the same moment: the later row of the file.
           .installment("L3").binding("L3", bound="2025-05-05 05:05:05", card="E-first")
           .binding("L3", bound="2025-05-05 05:05:05", card="F-second")
           # L4: no binding at all; L5: paid, so no card is looked up.
           .installment("L4")
           .installment("L5").binding("L5", card="G-paid").instruction("I5", loan="L5")
           .settlement("I5"))
    outcomes = day.decide().outcomes.set_index("loan_id")["card_no_masked"]
    assert outcomes.to_dict() == {"L1": "A-active", "L2": "D-latest", "L3": "F-second",
                                  "L4": "", "L5": ""}


# --- overdue installments (CONTRACT 2.1) ---------------------------------------------------------

def test_days_past_due_is_the_business_date_minus_the_due_date():
    day = (Day().binding("L1").binding("L2").binding("L3")
           .installment("L1").installment("L2", due_date="2026-11-26")
           .installment("L3", due_date="2026-08-01"))
    outcomes = day.decide().outcomes.set_index("loan_id")
    assert outcomes["days_past_due"].to_dict() == {"L1": 0, "L2": 1, "L3": 118}


def test_an_overdue_installment_is_classified_by_the_same_rules_and_reported_with_its_age():
    day = (Day().binding("L1").installment("L1", due_date="2026-10-28").instruction("I1")
           .settlement("I1", status="FAILED", code="51"))
    decisions = day.decide()
    row = decisions.outcomes.iloc[0]
    assert (row["status"], row["root_cause"], row["days_past_due"]) == \
        ("unpaid", "insufficient_balance", 30)
    report = exception_report(decisions.outcomes, D, TZ)
    assert report.columns[-1] == "days_past_due" and report["days_past_due"].tolist() == ["30"]
