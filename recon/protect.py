"""What every output passes through: card numbers masked, spreadsheet formulas defused. Pure.

The one owner of data protection: the row rules (free text), the rejects, the CSV reports, the
database rows, log lines and terminal output all call these functions, so what gets masked is
decided here and nowhere else.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recon.frames import arrow_strings, first_bytes

# A run of digit groups, each apart from the next by one space or dash (`6222 0212 3456 7890`,
# `6258070000111129 50`), not touching further digits. Any digits count, fullwidth ones too.
DIGIT_GROUPS = re.compile(r"(?<!\d)\d+(?:[ -]\d+)*(?!\d)")
GROUP = re.compile(r"\d+")
# What a column's values are searched for before any is visited: 13 digits, separators allowed
# (RE2 syntax, run by Arrow over the whole column).
CARD_SUSPECT = r"\p{Nd}(?:[ -]?\p{Nd}){12}"
CARD_DIGITS = range(13, 20)
# A group of 20 or more digits is never part of a card number (an instruction id, an order
# number): suspects left with 13 digits once such groups are blanked out are the ones visited.
LONG_GROUP = r"\p{Nd}{20,}"
# Ids are kept byte for byte, card-shaped or not (a loan id may pass Luhn); every other column
# of every output is text that may carry a card number and goes through the rule below.
# A notice's id, its content digest (hex: one in a few hundred holds a Luhn-valid 13-digit run)
# and its list of `loan_id/installment_no/cause` items are ids too.
ID_COLUMNS = frozenset({"loan_id", "installment_no", "borrower_id", "binding_id",
                        "instruction_id", "gateway_txn_id", "account_token",
                        "loan_id/installment_no", "run_id", "created_run_id",
                        "cancelled_run_id", "notice_id", "content_key", "installments"})
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NUMBER = r"[+-]?[0-9]+(?:\.[0-9]+)?"


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def mask_card(digits: str) -> str:
    """`6222021234567890` -> `622202******7890`: the first six and last four digits stay."""
    return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]


def _mask_groups(match: re.Match) -> str:
    """Within one run of digit groups, mask every span of whole groups that is a card number:
    13-19 digits passing Luhn, the longest span from the leftmost group first. A group is
    never split: the digits of a 20-digit order number stay as they are."""
    text = match.group()
    groups = [(group.start(), group.end()) for group in GROUP.finditer(text)]
    chars = list(text)
    first = 0
    while first < len(groups):
        spans = []
        digits = 0
        for last in range(first, len(groups)):
            digits += groups[last][1] - groups[last][0]
            if digits > CARD_DIGITS[-1]:
                break
            spans.append((last, digits))
        for last, digits in reversed(spans):
            if digits not in CARD_DIGITS:
                continue
            positions = [i for start, end in groups[first:last + 1] for i in range(start, end)]
            if luhn_valid("".join(text[i] for i in positions)):
                for i in positions[6:-4]:  # separators stay where they were
                    chars[i] = "*"
                first = last
                break
        first += 1
    return "".join(chars)


def mask_cards_in_text(text: str) -> str:
    """Mask every full card number (13-19 digits passing the Luhn check) in any text, whatever
    surrounds it: Chinese, other digits after a space or dash, separators inside it."""
    return DIGIT_GROUPS.sub(_mask_groups, text)


def mask_unless_id(column: str, value: str) -> str:
    """One field's value as an output may show it: an id stays byte for byte, other text is
    card-masked."""
    return value if column in ID_COLUMNS else mask_cards_in_text(value)


def mask_cards(values: pd.Series) -> pd.Series:
    """`mask_cards_in_text` over a column; only the few values with a long digit run are visited."""
    values = values.astype("str")
    text = arrow_strings(values)
    # Three sieves, each on what the one before kept: 13 bytes at least, 13 digits in a row
    # (Arrow's RE2), still 13 once groups of 20 digits or more are blanked.
    suspect = pc.fill_null(pc.greater_equal(pc.binary_length(text), CARD_DIGITS[0]),
                           False).to_numpy(zero_copy_only=False)
    for blank in (False, True):
        rows = np.flatnonzero(suspect)
        if not rows.size:
            return values
        candidates = text.take(pa.array(rows))
        if blank:
            candidates = pc.replace_substring_regex(candidates, LONG_GROUP, "_")
        suspect[rows] = pc.fill_null(pc.match_substring_regex(candidates, CARD_SUSPECT),
                                     False).to_numpy(zero_copy_only=False)
    if not suspect.any():
        return values
    masked = values.copy()
    masked[suspect] = values[suspect].map(mask_cards_in_text)
    return masked


def defuse_formulas(values: pd.Series) -> pd.Series:
    """Prefix `'` to a cell Excel would read as a formula; plain numbers such as -12.50 stay."""
    values = values.astype("str")
    risky = pd.Series(np.isin(first_bytes(arrow_strings(values)),
                              np.frombuffer("".join(FORMULA_START).encode(), dtype=np.uint8)),
                      index=values.index)
    if not risky.any():
        return values
    risky[risky] = ~values[risky].str.fullmatch(NUMBER, na=False)
    return values.where(~risky, "'" + values)


def protect_text(frame: pd.DataFrame, columns) -> pd.DataFrame:
    """`frame` with card numbers masked in `columns` (those it has); copied only if needed."""
    protected = frame
    for column in columns:
        if column in frame.columns and frame[column].dtype != "int64":
            masked = mask_cards(frame[column])
            if protected is frame:
                protected = frame.copy()
            protected[column] = masked
    return protected


# Per stored table, the text columns that may carry a card number (ids and codes of our own do not).
STORED_TEXT = {
    "outcomes": ("gateway", "response_code"),
    "settlement_exceptions": ("gateway", "detail"),
    "rejects": ("file", "column_name", "reason"),
}


def protect_rows(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame`, about to be stored in `table`, with card numbers masked in its text columns."""
    return protect_text(frame, STORED_TEXT[table])


def protect_rejects(rejects: pd.DataFrame) -> pd.DataFrame:
    """Rejected rows' values masked unless they are ids, their reasons masked (a reason may
    quote a .ctl or a value); `rejects` is changed in place and returned."""
    free_text = ~rejects["column"].isin(ID_COLUMNS)
    rejects["value"] = rejects["value"].fillna("").astype("str")
    rejects.loc[free_text, "value"] = mask_cards(rejects.loc[free_text, "value"])
    rejects["reason"] = mask_cards(rejects["reason"].fillna("").astype("str"))
    return rejects


def safe_frame(frame: pd.DataFrame, own=frozenset()) -> pd.DataFrame:
    """Every column as text, formula-safe; every column but the ids and `own` also card-masked.

    `own`: columns recon writes itself, its sentences (an outcome's evidence, a retry's reason,
    a watchlist row's evidence) and its numbers (the trend report's sums and counts). The
    sentences are built from ids, kept as they are, and from input text that the row rules
    masked on intake (validate's free_text and code checks), so masking them again could only
    mask an id they quote: a 16-digit binding id passes the Luhn check one time in ten, and
    `binding 000000******7245` names no binding. A sum of 13 digits is no card number either.
    The same text is stored.
    """
    safe = frame.copy()
    for column in safe.columns:
        text = safe[column].astype("str").fillna("")
        if column not in ID_COLUMNS and column not in own:
            text = mask_cards(text)
        safe[column] = defuse_formulas(text)
    return safe
