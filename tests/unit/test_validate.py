"""recon.validate: the row rules of CONTRACT section 2, one test per rule, on the smallest frame."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from recon import filerules
from recon import validate as v
from recon.sources.rawtable import RawTable

D = dt.date(2026, 11, 27)
CONTEXT = v.RuleContext(D, ZoneInfo("Asia/Shanghai"))
CARD = "6222021234567890128"  # 19 digits, passes Luhn


def text(*values: str) -> pd.Series:
    return pd.Series(list(values), dtype="str")


def raw(spec: v.FileSpec, records: list[dict]) -> RawTable:
    frame = pd.DataFrame({column: [record.get(column, "") for record in records]
                          for column in spec.columns}, dtype="str")
    return RawTable(spec.name, frame, np.arange(2, len(records) + 2, dtype=np.int64),
                    len(records))


INSTALLMENT = {"loan_id": "L1", "installment_no": "1", "borrower_id": "B1",
               "due_date": "2026-11-27", "amount_due": "100.00", "currency": "CNY"}
SETTLEMENT_ROW = {"gateway_txn_id": "T1", "instruction_id": "I1", "amount": "5", "status": "FAILED",
                  "response_code": "51", "response_msg": "", "txn_time": "2026-11-27 08:00:00"}


# --- amounts ------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, fen", [("1234.5", 123450), ("1234.50", 123450), ("500", 50000),
                                        ("0.01", 1), ("100.10", 10010), ("999999999999.99",
                                                                         99999999999999)])
def test_amount_is_exact_integer_fen(value, fen):
    parsed, ok = v.amount_fen(text(value), CONTEXT)
    assert bool(ok[0]) and int(parsed[0]) == fen


@pytest.mark.parametrize("value", ["0", "0.00", "-5", "+5", "1,000", "1e3", "12.345", "1.", ".5",
                                   "", "abc", "１２"])
def test_amount_that_is_not_a_positive_plain_decimal_breaks_the_rule(value):
    _, ok = v.amount_fen(text(value), CONTEXT)
    assert not bool(ok[0])


@pytest.mark.parametrize("value, fen", [("00000000000001.50", 150), ("0999999999999.99",
                                                                      99999999999999)])
def test_leading_zeros_of_an_amount_do_not_count_as_digits(value, fen):
    parsed, ok = v.amount_fen(text(value), CONTEXT)
    assert bool(ok[0]) and int(parsed[0]) == fen


@pytest.mark.parametrize("spec, column", [(v.INSTALLMENTS, "amount_due"), (v.SETTLEMENT, "amount")])
@pytest.mark.parametrize("value", ["1000000000000.00", "1000000000000", "99999999999999999999.5"])
def test_amount_too_large_for_the_database_is_rejected_saying_so(spec, column, value):
    base = INSTALLMENT if spec is v.INSTALLMENTS else SETTLEMENT_ROW
    validated = filerules.validate(raw(spec, [{**base, column: value}, base]), spec, CONTEXT)
    assert validated.rejects[["line", "column", "value"]].values.tolist() == [[2, column, value]]
    reason = validated.rejects.loc[0, "reason"]
    assert "too large" in reason and "NUMERIC(14,2)" in reason and "decimals" not in reason


@pytest.mark.parametrize("value", ["1.005", "-1.00", "1e13", "abc"])
def test_amount_of_the_wrong_form_keeps_the_form_reason(value):
    validated = filerules.validate(raw(v.INSTALLMENTS, [{**INSTALLMENT, "amount_due": value}]),
                           v.INSTALLMENTS, CONTEXT)
    assert validated.rejects.loc[0, "reason"] == \
        "amount_due must be a positive amount with at most 2 decimals"


def test_amount_rule_on_no_rows_gives_no_rows():
    parsed, ok = v.amount_fen(text(), CONTEXT)
    assert len(parsed) == 0 and len(ok) == 0


# --- timestamps ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value, utc", [
    ("2026-11-27 08:00:00", "2026-11-27 00:00:00"),
    ("2026-11-27T08:00:00+08:00", "2026-11-27 00:00:00"),
    ("2026-11-27T00:00:00Z", "2026-11-27 00:00:00"),
    ("2026-11-27 08:00:00.5", "2026-11-27 00:00:00.5"),
])
def test_timestamp_is_local_time_or_iso_with_offset(value, utc):
    parsed, ok = v.timestamp(text(value), CONTEXT)
    assert bool(ok[0]) and parsed[0] == pd.Timestamp(utc, tz="UTC")


@pytest.mark.parametrize("value", ["9999-12-31 23:59:59", "0001-01-01T00:00:00Z",
                                   "1000-01-01 00:00:00", "2026-02-30 00:00:00", "2026-11-27",
                                   "27/11/2026 08:00:00", ""])
def test_timestamp_out_of_range_or_malformed_breaks_the_rule_without_crashing(value):
    _, ok = v.timestamp(text(value, "2026-11-27 08:00:00"), CONTEXT)
    assert ok.tolist() == [False, True]


@pytest.mark.parametrize("value", [
    "2026-11-27 10:29:60", "2026-11-27 10:29:61", "2026-11-27 10:29:99", "2026-11-27 10:60:00",
    "2026-11-27 10:61:30", "2026-11-27 24:00:00", "2026-11-27 25:00:00",
    "2026-11-27T10:29:60", "2026-11-27T10:29:61+08:00", "2026-11-27 10:29:61.5",
    "2026-11-27T10:60:00Z", "2026-11-27T24:00:00", "2026-11-27 10:29:61+0800",
], ids=lambda value: value.replace(" ", "_"))
def test_timestamp_with_a_field_out_of_range_breaks_the_rule_not_rolls_over(value):
    # Arrow's strptime reads 10:29:61 as 10:30:01 (leap seconds); no path may.
    _, ok = v.timestamp(text(value, "2026-11-27 23:59:59", "2026-11-27 00:00:00"), CONTEXT)
    assert ok.tolist() == [False, True, True]


def test_optional_timestamp_may_be_empty():
    _, ok = v.optional_timestamp(text("", "x"), CONTEXT)
    assert ok.tolist() == [True, False]


# --- other column rules -------------------------------------------------------------------------

@pytest.mark.parametrize("value, ok", [("1", True), ("01", True), ("0", False), ("-1", False),
                                       ("1.0", False), ("", False), ("x", False)])
def test_installment_no_is_an_integer_of_at_least_one(value, ok):
    assert bool(v.positive_integer(text(value), CONTEXT)[1][0]) is ok


def test_enum_values_are_compared_case_insensitively():
    parsed, ok = v.one_of(("ACTIVE", "UNBOUND"))(text("active", "Unbound", "gone"), CONTEXT)
    assert parsed.tolist()[:2] == ["ACTIVE", "UNBOUND"] and ok.tolist() == [True, True, False]


def test_free_text_masks_full_card_numbers_and_keeps_the_rest():
    parsed, ok = v.free_text(text(f"卡号{CARD}余额不足", "订单 20261127000000270001"), CONTEXT)
    assert parsed.tolist() == ["卡号622202*********0128余额不足", "订单 20261127000000270001"]
    assert ok.all()


# --- whole files --------------------------------------------------------------------------------

SPECS = [v.INSTALLMENTS, v.BINDINGS, v.INSTRUCTIONS, v.SETTLEMENT, v.INCIDENTS]


@pytest.mark.parametrize("spec", SPECS, ids=[spec.name for spec in SPECS])
def test_a_file_with_no_rows_validates_to_no_rows(spec):
    validated = filerules.validate(raw(spec, []), spec, CONTEXT)
    assert validated.rows_read == validated.rows_used == validated.rows_rejected == 0


def test_a_row_is_rejected_once_for_its_first_broken_column_in_contract_order():
    bad = {**INSTALLMENT, "installment_no": "0", "amount_due": "-1", "currency": "USD"}
    validated = filerules.validate(raw(v.INSTALLMENTS, [INSTALLMENT, bad]), v.INSTALLMENTS, CONTEXT)
    assert validated.rejects[["line", "column"]].values.tolist() == [[3, "installment_no"]]
    assert validated.rows_used == 1


def test_due_date_of_another_day_is_rejected_with_its_value():
    other = {**INSTALLMENT, "due_date": "2026-11-28"}
    rejects = filerules.validate(raw(v.INSTALLMENTS, [other]), v.INSTALLMENTS, CONTEXT).rejects
    assert rejects[["column", "value"]].values.tolist() == [["due_date", "2026-11-28"]]


def test_due_date_after_the_business_date_is_rejected_with_a_reason_saying_so():
    rejects = filerules.validate(raw(v.INSTALLMENTS, [{**INSTALLMENT, "due_date": "2026-12-15"}]),
                         v.INSTALLMENTS, CONTEXT).rejects
    assert rejects["reason"].tolist() == [
        "due_date is after the business date 2026-11-27: not collectible yet"]


@pytest.mark.parametrize("due", ["2026-11-27", "2026-11-26", "2026-01-31", "2024-02-29"])
def test_installment_due_on_or_before_the_business_date_is_accepted(due):
    validated = filerules.validate(raw(v.INSTALLMENTS, [{**INSTALLMENT, "due_date": due}]),
                           v.INSTALLMENTS, CONTEXT)
    assert validated.rows_rejected == 0
    assert validated.valid["due_date"].tolist() == [pd.Timestamp(due)]


@pytest.mark.parametrize("due", ["2026-02-30", "2025-02-29", "27/11/2026", "2026-11-27 00:00:00",
                                 "2026-1-5", "", "yesterday", "0000-01-01", "9999-12-31"])
def test_due_date_that_is_not_a_date_is_rejected(due):
    rejects = filerules.validate(raw(v.INSTALLMENTS, [{**INSTALLMENT, "due_date": due}]),
                         v.INSTALLMENTS, CONTEXT).rejects
    assert rejects[["column", "value"]].values.tolist() == [["due_date", due]]
    assert rejects["reason"].tolist() == ["due_date must be a date YYYY-MM-DD"]


def test_exact_duplicate_collapses_and_is_counted():
    validated = filerules.validate(raw(v.INSTALLMENTS, [INSTALLMENT, INSTALLMENT]), v.INSTALLMENTS,
                           CONTEXT)
    assert (validated.rows_used, validated.duplicates_collapsed, validated.rows_rejected) == \
        (1, 1, 0)


def test_same_key_with_different_values_rejects_every_row_of_the_key():
    other = {**INSTALLMENT, "amount_due": "200.00"}
    validated = filerules.validate(raw(v.INSTALLMENTS, [INSTALLMENT, other, INSTALLMENT]),
                           v.INSTALLMENTS, CONTEXT)
    assert validated.rows_used == 0 and validated.rows_rejected == 3
    assert set(validated.rejects["column"]) == {"loan_id/installment_no"}


def test_amounts_equal_in_fen_are_the_same_value_for_duplicates():
    same = {**INSTALLMENT, "amount_due": "100"}
    validated = filerules.validate(raw(v.INSTALLMENTS, [INSTALLMENT, same]), v.INSTALLMENTS, CONTEXT)
    assert validated.duplicates_collapsed == 1


def test_card_number_in_response_msg_never_reaches_the_valid_frame():
    row = {**SETTLEMENT_ROW, "response_msg": f"card {CARD} declined"}
    valid = filerules.validate(raw(v.SETTLEMENT, [row]), v.SETTLEMENT, CONTEXT).valid
    assert CARD not in valid["response_msg"].iloc[0]


def test_rows_read_add_up_to_used_collapsed_and_rejected():
    rows = [INSTALLMENT, INSTALLMENT, {**INSTALLMENT, "loan_id": ""},
            {**INSTALLMENT, "loan_id": "L2"}, {**INSTALLMENT, "loan_id": "L2", "currency": "cny"}]
    validated = filerules.validate(raw(v.INSTALLMENTS, rows), v.INSTALLMENTS, CONTEXT)
    assert validated.rows_read == 5
    assert validated.rows_used + validated.duplicates_collapsed + validated.rows_rejected == 5
