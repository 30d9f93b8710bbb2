"""What every output passes through: card numbers masked, spreadsheet formulas defused."""

from __future__ import annotations

import re

import pandas as pd

# 13 to 19 digits, each group apart by at most one space or dash (`6222 0212 3456 7890`), not
# touching further digits. Whether it is a card number is for the Luhn check to say.
CARD_CANDIDATE = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")
CARD_SUSPECT = r"[0-9](?:[ -]?[0-9]){12}"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NUMBER = r"[+-]?[0-9]+(?:\.[0-9]+)?"


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def mask_card(digits: str) -> str:
    """`6222021234567890` -> `622202******7890`: the first six and last four digits stay."""
    return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]


def _mask_match(match: re.Match) -> str:
    text = match.group()
    digits = re.sub(r"[ -]", "", text)
    if len(digits) < 13 or not luhn_valid(digits):
        return text
    masked = iter(mask_card(digits))
    # Separators stay where they were; only digits are replaced.
    return "".join(char if char in " -" else next(masked) for char in text)


def mask_cards_in_text(text: str) -> str:
    """Mask every full card number (13-19 digits passing the Luhn check) in free text."""
    return CARD_CANDIDATE.sub(_mask_match, text)


def mask_cards(values: pd.Series) -> pd.Series:
    """`mask_cards_in_text` over a column; only the few values with a long digit run are visited."""
    values = values.astype("str")
    suspect = values.str.contains(CARD_SUSPECT, regex=True, na=False)
    if not suspect.any():
        return values
    masked = values.copy()
    masked[suspect] = values[suspect].map(mask_cards_in_text)
    return masked


def defuse_formulas(values: pd.Series) -> pd.Series:
    """Prefix `'` to a cell Excel would read as a formula; plain numbers such as -12.50 stay."""
    values = values.astype("str")
    risky = values.str.startswith(FORMULA_START, na=False)
    if not risky.any():
        return values
    risky[risky] = ~values[risky].str.fullmatch(NUMBER, na=False)
    return values.where(~risky, "'" + values)


def safe_frame(frame: pd.DataFrame, free_text: list[str]) -> pd.DataFrame:
    """Every column as text, formula-safe; `free_text` columns also card-masked."""
    safe = frame.copy()
    for column in safe.columns:
        text = safe[column].astype("str").fillna("")
        if column in free_text:
            text = mask_cards(text)
        safe[column] = defuse_formulas(text)
    return safe
