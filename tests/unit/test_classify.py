"""CONTRACT section 3 as classify applies it: settled, the settlement side (4.2) and the report
fields, each with the smallest day that shows it. `Day` builds the days every rule test uses."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from recon.classify import classify
from recon.codes import CodeMap
from recon.exception_rows import exception_report

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
