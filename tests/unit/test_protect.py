"""recon.protect: no full card number and no spreadsheet formula leaves recon (CONTRACT 4.1)."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recon.protect import (defuse_formulas, luhn_valid, mask_cards, mask_cards_in_text,
                                safe_frame)

# Luhn-valid test numbers of each length the contract names (13 and 19 are the edges).
CARDS = {13: "4222222222222", 15: "378282246310005", 16: "4111111111111111",
         19: "6222021234567890128"}


@pytest.mark.parametrize("length, card", CARDS.items(), ids=[f"{n}-digits" for n in CARDS])
def test_card_numbers_of_13_to_19_digits_pass_luhn(length, card):
    assert len(card) == length and luhn_valid(card)


@pytest.mark.parametrize("card", CARDS.values(), ids=[f"{n}-digits" for n in CARDS])
def test_full_card_number_in_free_text_keeps_only_first_six_and_last_four(card):
    masked = mask_cards_in_text(f"扣款失败,卡号{card}。")
    assert card not in masked
    assert masked == f"扣款失败,卡号{card[:6]}{'*' * (len(card) - 10)}{card[-4:]}。"


@pytest.mark.parametrize("written", ["4111 1111 1111 1111", "4111-1111-1111-1111",
                                     "622202 1234567890128"])
def test_card_number_written_in_groups_is_masked_too(written):
    masked = mask_cards_in_text(f"card {written} declined")
    assert sum(char.isdigit() for char in masked) == 10
    assert masked.startswith("card " + written[:4])


@pytest.mark.parametrize("value", [
    "4111111111111112",  # fails Luhn: an order number, not a card
    "20261127000000270001",  # 20 digits: an instruction id
    "411111111111",  # 12 digits
    "2026-11-27 10:00:00",
    "13812345678",
], ids=["not-luhn", "20-digit-id", "12-digits", "timestamp", "phone"])
def test_digit_runs_that_are_not_card_numbers_stay(value):
    assert mask_cards_in_text(f"x {value} y") == f"x {value} y"


def test_card_number_inside_a_longer_digit_run_is_not_cut_out_of_it():
    run = "9" + CARDS[16] + "9"
    assert mask_cards_in_text(run) == run


def test_mask_cards_on_a_column_leaves_missing_values_missing():
    masked = mask_cards(pd.Series([f"a {CARDS[16]}", None, "plain"], dtype="str"))
    assert masked.iloc[0] == "a 411111******1111" and pd.isna(masked.iloc[1])
    assert masked.iloc[2] == "plain"


@pytest.mark.parametrize("value", ["=HYPERLINK(\"http://x\")", "+cmd|' /C calc'!A0", "-2+3",
                                   "@SUM(A1)", "\tleading tab", "\rleading cr", "-", "+"])
def test_cell_that_would_start_a_formula_is_defused(value):
    assert defuse_formulas(pd.Series([value], dtype="str")).iloc[0] == "'" + value


@pytest.mark.parametrize("value", ["-12.50", "+3", "-1000", "0.00", "12", "a=b", "余额不足", ""])
def test_numbers_and_ordinary_text_are_left_alone(value):
    assert defuse_formulas(pd.Series([value], dtype="str")).iloc[0] == value


def test_safe_frame_masks_every_column_but_ids_and_defuses_every_column():
    frame = pd.DataFrame({
        "loan_id": [CARDS[16]],
        "instruction_id": [CARDS[19]],
        "response_msg": [f"=card {CARDS[16]}"],
        "response_code": [CARDS[16]],
        "line": pd.array([None], dtype="Int64"),
        "amount": [-12.5],
    })
    safe = safe_frame(frame)
    assert safe.iloc[0].tolist() == [CARDS[16], CARDS[19], "'=card 411111******1111",
                                     "411111******1111", "", "-12.5"]


SURROUNDINGS = {
    "chinese-before-and-after": ("卡{card}余额不足", "卡{masked}余额不足"),
    "space-and-digits-after": ("卡{card} 50元余额不足", "卡{masked} 50元余额不足"),
    "digits-and-space-before": ("扣款50 {card}", "扣款50 {masked}"),
    "dash-and-digits-after": ("{card}-0001", "{masked}-0001"),
    "two-cards": ("{card},{card}", "{masked},{masked}"),
    "grouped-then-digits": ("{grouped} 12", "{grouped_masked} 12"),
    "alone": ("{card}", "{masked}"),
    "fullwidth-digits": ("{fullwidth}元", "{fullwidth_masked}元"),
    "in-brackets": ("(card:{card})", "(card:{masked})"),
}


@pytest.mark.parametrize("case", SURROUNDINGS, ids=list(SURROUNDINGS))
@pytest.mark.parametrize("card", ["6258070000111129", CARDS[19], CARDS[13]])
def test_card_number_is_masked_whatever_surrounds_it(case, card):
    written, expected = SURROUNDINGS[case]
    masked = card[:6] + "*" * (len(card) - 10) + card[-4:]
    grouped = " ".join(card[i:i + 4] for i in range(0, len(card), 4))
    grouped_masked = "".join(m if g != " " else " " for g, m in
                             zip(grouped, iter_masked(grouped)))
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in card)
    fullwidth_masked = "".join(chr(ord(c) + 0xFEE0) if c != "*" else "*" for c in masked)
    values = {"card": card, "masked": masked, "grouped": grouped,
              "grouped_masked": grouped_masked, "fullwidth": fullwidth,
              "fullwidth_masked": fullwidth_masked}
    text, want = written.format(**values), expected.format(**values)
    assert mask_cards_in_text(text) == want
    assert mask_cards(pd.Series([text, "plain"], dtype="str")).tolist() == [want, "plain"]


def iter_masked(grouped: str) -> str:
    digits = grouped.replace(" ", "")
    masked = iter(digits[:6] + "*" * (len(digits) - 10) + digits[-4:])
    return "".join(" " if char == " " else next(masked) for char in grouped)


def test_masking_a_long_run_of_digit_groups_stays_linear():
    text = "1 " * 50_000 + "6258070000111129"
    assert mask_cards_in_text(text).endswith("625807******1129")


def test_run_ids_print_as_they_are_in_masked_text():
    from recon.pipeline import new_run_id

    # A digit run of 13+ passing Luhn inside a run id was masked in log lines and messages.
    for _ in range(2000):
        run_id = new_run_id()
        assert mask_cards_in_text(f"run {run_id} done") == f"run {run_id} done"


@settings(max_examples=400, deadline=None)
@given(st.lists(st.text(alphabet="0123456789０１２ -/a元", min_size=0, max_size=60), max_size=8),
       st.sampled_from(["", "6222021234567890", "4111 1111 1111 1111", "6258070000111129"]))
def test_the_column_prefilters_never_skip_a_value_the_text_rule_would_mask(texts, card):
    """mask_cards visits only suspects (13 digits, then again with 20-digit groups blanked):
    on any column it gives what mask_cards_in_text gives value by value."""
    values = pd.Series([text + card + text[::-1] for text in texts] + [card + "1" * 20 + card],
                       dtype="str")
    assert mask_cards(values).tolist() == [mask_cards_in_text(text) for text in values]


def test_notice_ids_digests_and_item_lists_are_ids_kept_as_they_are():
    """A content digest is hex: one in a few hundred holds a Luhn-valid 13-digit run."""
    digest = "4089cb4210700097732b3e296d4f9a41"
    frame = safe_frame(pd.DataFrame({"content_key": [digest], "notice_id": ["x-6222021234567890"],
                                     "installments": ["6222021234567890/1/card_unbound"],
                                     "message": ["卡4111111111111111"]}))
    assert frame.iloc[0].tolist()[:3] == [digest, "x-6222021234567890",
                                         "6222021234567890/1/card_unbound"]
    assert frame.iloc[0]["message"] == "卡411111******1111"


def test_recons_own_columns_are_not_masked_again_but_still_defused():
    """Sentences quoting ids and numbers recon computed (a 13-digit sum passes Luhn at times)."""
    frame = pd.DataFrame({"amount": ["6258070000111129.00"], "reason": ["binding 6258070000111129"],
                          "response_msg": ["卡6258070000111129"], "evidence": ["=1+1"]})
    safe = safe_frame(frame, own={"amount", "reason", "evidence"})
    assert safe.loc[0, "amount"] == "6258070000111129.00"
    assert safe.loc[0, "reason"] == "binding 6258070000111129"
    assert safe.loc[0, "response_msg"] == "卡625807******1129"
    assert safe.loc[0, "evidence"] == "'=1+1"


def test_what_recon_writes_itself_in_each_report_is_its_own_never_text_from_outside():
    """The reports' `own` columns (not masked again) are theirs, and none holds text that
    came in from a file or from the messaging system."""
    from recon.contract import (EXCEPTIONS_COLUMNS, EXCEPTIONS_OWN, RETRY_PLAN_COLUMNS,
                                RETRY_PLAN_OWN)
    from recon.notices import NOTICES_COLUMNS, NOTICES_OWN
    from recon.watchlist import WATCHLIST_COLUMNS, WATCHLIST_OWN
    from_outside = {"gateway", "response_code", "response_msg", "card_no_masked", "state",
                    "detail", "value", "file", "column"}
    for columns, own in ((EXCEPTIONS_COLUMNS, EXCEPTIONS_OWN), (RETRY_PLAN_COLUMNS, RETRY_PLAN_OWN),
                         (NOTICES_COLUMNS, NOTICES_OWN), (WATCHLIST_COLUMNS, WATCHLIST_OWN)):
        assert own <= set(columns), own - set(columns)
        assert not own & from_outside
    assert set(EXCEPTIONS_COLUMNS) & from_outside == {"gateway", "response_code", "response_msg",
                                                      "card_no_masked"}
