"""CONTRACT 7, borrower notices: selection, rendering, the send window, the rerun merge."""

from __future__ import annotations

import datetime as dt
import re
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from recon.contract import RootCause, Status
from recon.errors import UsageError
from recon.notice_templates import NOTICE_CAUSES, load_templates
from recon.notices import (CANCELLED, NEW, NOTICES_COLUMNS, Outbox, compose, earliest_send,
                           notice_items, plan_outbox, yuan_grouped)

TZ = ZoneInfo("Asia/Shanghai")
D = dt.date(2026, 11, 27)
MORNING = dt.datetime(2026, 11, 28, 0, 40, tzinfo=TZ)  # cron, just after midnight
TEMPLATES = load_templates()


def outcome(loan="L1", number=1, borrower="B1", status="unpaid", cause="insufficient_balance",
            outstanding=123450, card="622202******4321") -> dict:
    return {"loan_id": loan, "installment_no": number, "borrower_id": borrower,
            "status": status, "root_cause": cause, "amount_outstanding": outstanding,
            "card_no_masked": card}


def frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def notices_of(*rows: dict, repeat=(), templates=TEMPLATES, now=MORNING) -> pd.DataFrame:
    return compose(notice_items(frame(*rows)), templates, D, now, TZ, repeat)


# --- who gets a notice ----------------------------------------------------------------------------

@pytest.mark.parametrize("cause", [cause.value for cause in NOTICE_CAUSES])
def test_a_cause_the_borrower_can_act_on_gets_a_notice_with_its_template(cause):
    [notice] = notices_of(outcome(cause=cause)).to_dict("records")
    assert notice["template_key"] == cause


@pytest.mark.parametrize("cause", ["gateway_outage", "not_instructed", "no_settlement_record",
                                   "settlement_pending", "unclassified", "other_decline"])
def test_an_internal_or_unclear_cause_gets_no_notice(cause):
    status = "pending" if cause == "settlement_pending" else "unpaid"
    assert notices_of(outcome(cause=cause, status=status)).empty


def test_every_root_cause_is_either_noticed_or_deliberately_not():
    decided = {cause.value for cause in NOTICE_CAUSES} | {
        "gateway_outage", "not_instructed", "no_settlement_record", "settlement_pending",
        "unclassified", "other_decline"}
    assert decided == {cause.value for cause in RootCause}


@pytest.mark.parametrize("status,outstanding", [("paid", 0), ("overpaid", -100)])
def test_a_collected_installment_gets_no_notice(status, outstanding):
    assert notices_of(outcome(status=status, cause="", outstanding=outstanding)).empty


def test_a_partially_paid_installment_is_noticed_for_what_is_still_owed():
    [notice] = notices_of(outcome(status=Status.PARTIALLY_PAID.value,
                                  outstanding=50000)).to_dict("records")
    assert notice["amount"] == 50000
    assert "500.00元" in notice["message"]


# --- one notice per borrower ----------------------------------------------------------------------

def test_several_installments_of_one_borrower_make_one_notice_with_their_total():
    notices = notices_of(outcome(loan="L1", number=1, outstanding=100000),
                         outcome(loan="L1", number=2, outstanding=23450),
                         outcome(loan="L2", number=1, borrower="B2", outstanding=500))
    assert notices["borrower_id"].tolist() == ["B1", "B2"]
    first = notices.iloc[0]
    assert first["amount"] == 123450
    assert first["installments"] == ("L1/1/insufficient_balance;L1/2/insufficient_balance")
    assert "1,234.50元" in first["message"] and "2期" in first["message"]


def test_the_template_of_mixed_causes_is_that_of_the_most_pressing_one():
    [notice] = notices_of(outcome(loan="L1", cause="insufficient_balance", card="6222****1111"),
                          outcome(loan="L2", cause="account_closed", card="6222****2222")
                          ).to_dict("records")
    assert notice["template_key"] == "account_closed"
    assert notice["card_last4"] == "2222"


# --- text -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fen,text", [(5, "0.05元"), (123450, "1,234.50元"),
                                      (100000000, "1,000,000.00元"), (99900, "999.00元")])
def test_amounts_are_yuan_with_thousands_separators(fen, text):
    assert yuan_grouped(pd.Series([fen])).iloc[0] == text


@pytest.mark.parametrize("cause", [cause.value for cause in NOTICE_CAUSES])
def test_the_text_names_amount_date_and_a_deadline_and_only_the_cards_last_four(cause):
    [notice] = notices_of(outcome(cause=cause, card="622202******4321")).to_dict("records")
    message = notice["message"]
    assert "1,234.50元" in message and "11月27日" in message
    assert re.search(r"请于\d+月\d+日前", message)
    assert "{" not in message and "}" not in message
    assert "622202" not in message
    if cause != "card_unbound":
        assert "尾号4321" in message


def test_no_card_known_says_the_bound_card_without_digits():
    [notice] = notices_of(outcome(card="")).to_dict("records")
    assert notice["card_last4"] == ""
    assert "您绑定的银行卡" in notice["message"]


def test_a_full_card_number_in_the_masked_column_never_reaches_the_text():
    [notice] = notices_of(outcome(card="6222021234567890")).to_dict("records")
    assert "6222021234567890" not in notice["message"]
    assert notice["card_last4"] == "7890"
    assert not re.search(r"\d{13,}", notice["message"])


def test_the_deadline_counts_from_the_first_day_it_may_be_sent():
    [notice] = notices_of(outcome(cause="insufficient_balance")).to_dict("records")
    assert "请于11月29日前" in notice["message"]  # sent 11-28, act within 1 day


# --- channel ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("case,rows,repeat,channel", [
    ("small, first time", [outcome(outstanding=99999)], (), "sms"),
    ("at the call amount", [outcome(outstanding=1000000)], (), "call"),
    ("amounts adding up to it", [outcome(number=1, outstanding=600000),
                                 outcome(number=2, outstanding=400000)], (), "call"),
    ("repeated failures", [outcome(outstanding=100)], ("B1",), "call"),
    ("frozen account", [outcome(cause="account_frozen", outstanding=100)], (), "call"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_a_call_for_large_amounts_repeated_failures_and_frozen_accounts(case, rows, repeat,
                                                                         channel):
    assert notices_of(*rows, repeat=repeat)["channel"].tolist() == [channel]


# --- when -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("local,expected", [
    ("2026-11-28 00:40:00", "2026-11-28T09:00:00+08:00"),
    ("2026-11-28 08:59:59", "2026-11-28T09:00:00+08:00"),
    ("2026-11-28 09:00:00", "2026-11-28T09:00:00+08:00"),
    ("2026-11-28 14:30:12", "2026-11-28T14:30:12+08:00"),
    ("2026-11-28 20:59:59", "2026-11-28T20:59:59+08:00"),
    ("2026-11-28 21:00:00", "2026-11-29T09:00:00+08:00"),
    ("2026-11-28 23:30:00", "2026-11-29T09:00:00+08:00"),
])
def test_no_message_at_night(local, expected):
    now = pd.Timestamp(local, tz=TZ).to_pydatetime()
    assert earliest_send(now, TZ, TEMPLATES.policy).isoformat() == expected


def test_the_send_window_is_in_the_configured_zone_whatever_zone_now_is_in():
    now = dt.datetime(2026, 11, 27, 16, 40, tzinfo=dt.timezone.utc)  # 00:40 in Shanghai
    assert earliest_send(now, TZ, TEMPLATES.policy).isoformat() == "2026-11-28T09:00:00+08:00"


NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize("utc, expected", [
    # 2026-11-01: clocks go back from 02:00 EDT to 01:00 EST; 01:30 happens twice.
    ("2026-11-01 05:30:00", "2026-11-01T09:00:00-05:00"),  # 01:30 EDT, the first time
    ("2026-11-01 06:30:00", "2026-11-01T09:00:00-05:00"),  # 01:30 EST, the second time
    ("2026-11-01 12:30:00", "2026-11-01T09:00:00-05:00"),  # 07:30 EST: not 08:00 (9 h elapsed)
    ("2026-11-01 14:15:00", "2026-11-01T09:15:00-05:00"),  # inside the window: at once
    # 2026-03-08: clocks go forward from 02:00 EST to 03:00 EDT.
    ("2026-03-08 06:30:00", "2026-03-08T09:00:00-04:00"),
    ("2026-03-09 01:30:00", "2026-03-09T09:00:00-04:00"),  # 21:30 EDT on the 8th: next day
])
def test_the_send_window_is_wall_clock_time_across_daylight_saving_changes(utc, expected):
    now = pd.Timestamp(utc, tz="UTC").to_pydatetime()
    assert earliest_send(now, NEW_YORK, TEMPLATES.policy).isoformat() == expected


def test_a_window_opening_in_the_hour_clocks_skip_opens_after_it(tmp_path):
    path = tmp_path / "notices.toml"
    path.write_text('[policy]\nsend_from = "02:30"\n', encoding="utf-8")
    policy = load_templates(path).policy
    now = pd.Timestamp("2026-03-08 06:10:00", tz="UTC").to_pydatetime()  # 01:10 EST
    assert earliest_send(now, NEW_YORK, policy).isoformat() == "2026-03-08T03:00:00-04:00"


# --- operator templates -------------------------------------------------------------------------

def test_an_operator_file_overrides_only_what_it_sets(tmp_path):
    path = tmp_path / "notices.toml"
    path.write_text('[policy]\ncall_at_amount = "500.00"\n\n[templates.insufficient_balance]\n'
                    'text = "余额不足：{amount}，尾号{card_last4}"\n', encoding="utf-8")
    templates = load_templates(path)
    assert templates.policy.call_at_fen == 50000
    assert templates.policy.send_from == dt.time(9)
    assert templates.templates["insufficient_balance"].act_within_days == 1
    [notice] = notices_of(outcome(outstanding=60000), templates=templates).to_dict("records")
    assert notice["message"] == "余额不足：600.00元，尾号4321"
    assert notice["channel"] == "call"


@pytest.mark.parametrize("content,named", [
    ('[templates.card_unbound]\ntext = "请绑卡 {card_number}"\n',
     ["templates.card_unbound.text", "unknown placeholder {card_number}"]),
    ('[templates.card_unbound]\ntext = "{amount:>10}"\n',
     ["templates.card_unbound.text", "no format"]),
    ('[templates.card_unbound]\ntext = "卡号6222021234567890"\n',
     ["templates.card_unbound.text", "card number"]),
    ('[templates.gateway_outage]\ntext = "通道异常"\n', ["templates.gateway_outage"]),
    ('[templates.card_unbound]\nchanel = "sms"\n', ["templates.card_unbound.chanel"]),
    ('[templates.card_unbound]\nchannel = "email"\n', ["templates.card_unbound.channel"]),
    ('[policy]\nsend_from = "22:00"\n', ["policy", "send_from must be before send_until"]),
    ('[policy]\ncall_at_amount = "12.345"\n', ["policy.call_at_amount"]),
    ('[templates.card_unbound\n', ["not TOML"]),
    ('[policy]\ncall_on_repeated_failure = "yes"\n', ["policy.call_on_repeated_failure",
                                                       "boolean"]),
    ('[templates.card_unbound]\nact_within_days = true\n',
     ["templates.card_unbound.act_within_days", "integer"]),
], ids=["unknown placeholder", "format spec", "card number", "cause without notices",
        "misspelt key", "unknown channel", "night window", "three decimals", "broken TOML",
        "text for a boolean", "boolean for a number"])
def test_a_mistake_in_the_operator_file_is_a_usage_error_naming_file_key_and_problem(
        tmp_path, content, named):
    path = tmp_path / "notices.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError) as error:
        load_templates(path)
    assert str(path) in str(error.value)
    for part in named:
        assert part in str(error.value)


def test_a_missing_operator_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot read"):
        load_templates(tmp_path / "absent.toml")


# --- the rerun merge ----------------------------------------------------------------------------

def stored_from(change) -> pd.DataFrame:
    return change.notices[NOTICES_COLUMNS]


def plan(stored, *rows, now=MORNING, run_id="run2"):
    return plan_outbox(stored, notice_items(frame(*rows)), TEMPLATES, D, now, TZ, run_id)


EMPTY = pd.DataFrame(columns=NOTICES_COLUMNS)


def test_a_first_run_adds_every_notice_as_new():
    change = plan(EMPTY, outcome(borrower="B1"), outcome(loan="L2", borrower="B2"), run_id="r1")
    assert change.cancel == [] and change.kept == 0
    assert change.insert["state"].tolist() == [NEW, NEW]
    assert change.insert["notice_id"].is_unique
    assert change.insert["amount"].tolist() == ["1234.50", "1234.50"]


def test_a_rerun_with_the_same_result_keeps_the_open_notice_as_it_was():
    first = plan(EMPTY, outcome(), run_id="r1")
    later = dt.datetime(2026, 11, 28, 15, 0, tzinfo=TZ)
    again = plan(stored_from(first), outcome(), now=later)
    assert again.cancel == [] and again.insert.empty and again.kept == 1
    assert again.notices.to_dict("records") == first.notices.to_dict("records")


def test_a_rerun_on_a_later_day_keeps_the_open_notice_though_its_deadline_would_move():
    """The text's deadline counts from the first day it may be sent, which a rerun the next
    night moves: what the notice tells (template, channel, amount, card, installments) is the
    same, so it stays as first written, not cancelled and written again."""
    first = plan(EMPTY, outcome(), run_id="r1")
    next_night = dt.datetime(2026, 11, 29, 23, 0, tzinfo=TZ)
    fresh = plan(EMPTY, outcome(), now=next_night)
    assert fresh.insert["message"].item() != first.insert["message"].item()
    again = plan(stored_from(first), outcome(), now=next_night)
    assert again.cancel == [] and again.insert.empty and again.kept == 1
    assert again.notices.to_dict("records") == first.notices.to_dict("records")


@pytest.mark.parametrize("override", [
    'text = "余额不足：{amount}，请于{due_by}前存入尾号{card_last4}的卡。客服95555"\n',
    "act_within_days = 3\n"])
def test_a_rerun_after_a_template_is_corrected_replaces_the_open_notices_it_words(
        tmp_path, override):
    """Ops fix a template's wording or its deadline and rerun D: the open notice is cancelled
    and written again in the corrected words, even on the same day."""
    first = plan(EMPTY, outcome(), run_id="r1")
    path = tmp_path / "notices.toml"
    path.write_text("[templates.insufficient_balance]\n" + override, encoding="utf-8")
    corrected = load_templates(path)
    again = plan_outbox(stored_from(first), notice_items(frame(outcome())), corrected, D,
                        MORNING, TZ, "run2")
    assert again.cancel == first.insert["notice_id"].tolist() and again.kept == 0
    [added] = again.insert.to_dict("records")
    assert added["message"] != first.insert["message"].item()


def test_a_rerun_cancels_an_open_notice_whose_installment_turned_paid():
    first = plan(EMPTY, outcome(borrower="B1"), outcome(loan="L2", borrower="B2"), run_id="r1")
    b1 = first.insert.loc[first.insert["borrower_id"] == "B1", "notice_id"].item()
    again = plan(stored_from(first), outcome(status="paid", cause="", outstanding=0),
                 outcome(loan="L2", borrower="B2"))
    assert again.cancel == [b1] and again.insert.empty and again.kept == 1
    states = again.notices.set_index("notice_id")["state"]
    assert states[b1] == CANCELLED
    assert again.notices.set_index("notice_id").loc[b1, "cancelled_run_id"] == "run2"


def test_a_rerun_never_touches_a_taken_notice_even_when_its_installment_turned_paid():
    first = plan(EMPTY, outcome(), run_id="r1")
    stored = stored_from(first).assign(state="sent")
    again = plan(stored, outcome(status="paid", cause="", outstanding=0))
    assert again.cancel == [] and again.insert.empty
    assert again.notices.to_dict("records") == stored.to_dict("records")


def test_what_a_taken_notice_covers_is_never_noticed_again_only_what_is_new():
    first = plan(EMPTY, outcome(loan="L1"), run_id="r1")
    stored = stored_from(first).assign(state="sent")
    again = plan(stored, outcome(loan="L1"), outcome(loan="L2", outstanding=500))
    assert again.cancel == []
    [added] = again.insert.to_dict("records")
    assert added["installments"] == "L2/1/insufficient_balance"
    assert added["amount"] == "5.00"


@pytest.mark.parametrize("loan", ["L;40", "L%3B40", "L;", ";", "L%"])
def test_a_loan_id_holding_the_separator_is_one_item_never_told_twice(loan):
    first = plan(EMPTY, outcome(loan=loan), outcome(loan="L2"), run_id="r1")
    [notice] = first.insert.to_dict("records")
    assert sorted(notice["installments"].split(";")) == sorted(
        [loan.replace("%", "%25").replace(";", "%3B") + "/1/insufficient_balance",
         "L2/1/insufficient_balance"])
    stored = stored_from(first).assign(state="sent")
    again = plan(stored, outcome(loan=loan), outcome(loan="L2"))
    assert again.cancel == [] and again.insert.empty  # what the taken notice covered, told once


def test_a_changed_open_notice_is_replaced_cancelled_and_added_again():
    first = plan(EMPTY, outcome(loan="L1"), run_id="r1")
    again = plan(stored_from(first), outcome(loan="L1"), outcome(loan="L2"))
    assert again.cancel == first.insert["notice_id"].tolist()
    [added] = again.insert.to_dict("records")
    assert added["installments"] == "L1/1/insufficient_balance;L2/1/insufficient_balance"
    live = again.notices[again.notices["state"] == NEW]
    assert len(live) == 1  # still one open notice per borrower and D


def test_a_new_cause_for_a_told_installment_is_a_new_thing_to_tell():
    first = plan(EMPTY, outcome(cause="insufficient_balance"), run_id="r1")
    stored = stored_from(first).assign(state="sent")
    again = plan(stored, outcome(cause="account_closed"))
    assert again.insert["installments"].tolist() == ["L1/1/account_closed"]


def test_notices_composed_ahead_are_used_only_when_no_taken_notice_covers_an_item():
    """Outbox.compose_ahead composes before the stored notices are read; plan then gives the
    same change as composing there, with or without taken notices."""
    items = pd.DataFrame({
        "borrower_id": ["B1", "B2"], "loan_id": ["L1", "L2"], "installment_no": [1, 1],
        "root_cause": ["insufficient_balance", "card_unbound"],
        "template_key": ["insufficient_balance", "card_unbound"],
        "item": ["L1/1/insufficient_balance", "L2/1/card_unbound"], "amount": [1000, 2000],
        "card_no_masked": ["622202******7890", ""]})
    args = (load_templates(), dt.date(2026, 11, 27),
            dt.datetime(2026, 11, 28, 2, tzinfo=dt.timezone.utc), ZoneInfo("Asia/Shanghai"),
            "0123abcd4567ef89")
    empty = pd.DataFrame({column: pd.Series([], dtype="str") for column in NOTICES_COLUMNS})
    first = plan_outbox(empty, items, *args)
    taken = first.notices[first.notices["borrower_id"] == "B1"].assign(state="sent")
    for stored in (empty, taken):
        outbox = Outbox(items, *args)
        with ThreadPoolExecutor(1) as pool:
            outbox.compose_ahead(pool)
            ahead = outbox.plan(stored)
        here = plan_outbox(stored, items, *args)
        pd.testing.assert_frame_equal(ahead.insert, here.insert)
        assert ahead.cancel == here.cancel
    assert ahead.insert["borrower_id"].tolist() == ["B2"]  # B1's item was told already


# --- what the retry plan does -------------------------------------------------------------------

def planned_notice(day, earlier=None) -> dict:
    """D's one notice, composed from the outcomes and the retry plan as a run makes them."""
    from tests.unit.test_retry import plan as retry_plan

    decided = day.decide().outcomes
    items = notice_items(decided, retry_plan(day, earlier=earlier), day.frames()["bindings"])
    [notice] = compose(items, TEMPLATES, D, MORNING, TZ).to_dict("records")
    return notice


def failed_51():
    from tests.unit.test_classify import Day

    return (Day().binding(card="622202******1111").installment(due="300.00").instruction("I1")
            .settlement("I1", status="FAILED", code="51"))


def test_a_retry_planned_on_the_same_card_keeps_the_causes_template():
    notice = planned_notice(failed_51())
    assert (notice["template_key"], notice["card_last4"]) == ("insufficient_balance", "1111")
    assert "我们将再次扣款" in notice["message"]


def test_a_retry_on_a_card_rebound_after_the_failure_names_the_new_card():
    from tests.unit.test_classify import Day

    day = (Day().binding(unbound="2026-11-27 10:00:00", card="622202******1111")
           .binding(bound="2026-11-27 12:00:00", card="622202******6161").installment()
           .instruction("I1", sent="2026-11-27 09:00:00")
           .settlement("I1", status="FAILED", code="51"))
    notice = planned_notice(day)
    assert (notice["template_key"], notice["card_last4"]) == ("retry_on_new_card", "6161")
    assert "尾号6161" in notice["message"] and "1111" not in notice["message"]


def test_a_card_bound_during_d_for_an_unbound_loan_is_not_asked_to_bind_again():
    from tests.unit.test_classify import Day

    day = Day().binding(bound="2026-11-27 12:00:00", card="622202******6161").installment()
    notice = planned_notice(day)
    assert (notice["template_key"], notice["card_last4"]) == ("retry_on_new_card", "6161")
    assert "绑定有效的银行卡" not in notice["message"]


def test_no_debit_is_promised_once_the_attempts_reached_their_limit():
    from tests.unit.test_retry import earlier

    notice = planned_notice(failed_51(), earlier=earlier(2))  # 2 earlier + 1 today = the cap
    assert notice["template_key"] == "no_automatic_retry"
    assert "不再自动扣款" in notice["message"] and "我们将再次扣款" not in notice["message"]


def test_a_borrower_total_over_what_numeric_14_2_holds_refuses_the_date():
    from recon.errors import InputRefused

    with pytest.raises(InputRefused) as refused:
        notices_of(outcome(loan="L1", outstanding=99_999_999_999_999),
                   outcome(loan="L2", outstanding=99_999_999_999_999))
    message = str(refused.value)
    assert "borrower B1" in message and "1999999999999.98" in message
    assert "L1/1/insufficient_balance, L2/1/insufficient_balance" in message
    assert refused.value.exit_code == 3
    assert len(notices_of(outcome(loan="L1", outstanding=99_999_999_999_999))) == 1  # fits


def test_a_borrower_with_one_installment_still_debited_is_never_told_no_more_debits():
    from tests.unit.test_classify import Day
    from tests.unit.test_retry import earlier

    # L1 reached its limit (2 earlier attempts + today's), L2 of the same borrower is retried.
    day = (Day().binding("L1", card="622202******1111").binding("L2", card="622202******2222")
           .installment("L1", borrower="B1", due="300.00")
           .installment("L2", borrower="B1", due="200.00")
           .instruction("I1", loan="L1").settlement("I1", status="FAILED", code="51")
           .instruction("I2", loan="L2").settlement("I2", status="FAILED", code="51"))
    notice = planned_notice(day, earlier=earlier(2))
    assert notice["template_key"] == "insufficient_balance"
    assert "不再自动扣款" not in notice["message"]
