"""CONTRACT 4.1: exceptions.csv rows, each with the evidence sentence of its deciding rule."""

from __future__ import annotations

import pytest

from recon.exception_rows import exception_report
from tests.unit.test_classify import TZ, D, Day


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
