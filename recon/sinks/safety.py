"""What every output passes through: card numbers masked, spreadsheet formulas defused."""

from __future__ import annotations

import re

import pandas as pd

CARD_CANDIDATE = re.compile(r"(?<![0-9])[0-9]{13,19}(?![0-9])")
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
    return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]


def mask_cards_in_text(text: str) -> str:
    return CARD_CANDIDATE.sub(
        lambda match: mask_card(match.group()) if luhn_valid(match.group()) else match.group(), text)


def mask_cards(values: pd.Series) -> pd.Series:
    """Mask every 13-19 digit run that passes the Luhn check (a full card number) in free text."""
    values = values.astype("str")
    suspect = values.str.contains(r"[0-9]{13}", regex=True, na=False)
    if not suspect.any():
        return values
    masked = values.copy()
    masked[suspect] = values[suspect].map(mask_cards_in_text)
    return masked


def defuse_formulas(values: pd.Series) -> pd.Series:
    """Prefix `'` to a cell Excel would read as a formula; plain numbers such as -12.50 stay."""
    values = values.astype("str")
    risky = values.str.startswith(FORMULA_START, na=False) & ~values.str.fullmatch(NUMBER, na=False)
    if not risky.any():
        return values
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
