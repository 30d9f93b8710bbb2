"""Response-code schemes (CONTRACT section 5) and the operator's override file."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd

from recon.contract import CODE_MAPPABLE_CAUSES, RootCause
from recon.errors import UsageError

R = RootCause

DEFAULT_SCHEMES: dict[str, dict[RootCause, tuple[str, ...]]] = {
    "iso8583": {
        R.INSUFFICIENT_BALANCE: ("51",),
        R.ACCOUNT_FROZEN: ("62",),
        R.ACCOUNT_CLOSED: ("14",),
        R.CARD_UNBOUND: ("04", "33", "41", "43", "54"),
        R.INSTRUCTION_NOT_CONFIRMED: ("55", "38", "75"),
        R.GATEWAY_OUTAGE: ("68", "90", "91", "92", "96", "98"),
        R.OTHER_DECLINE: ("03", "05", "12", "13", "15", "30", "34", "57", "59", "61", "65", "94"),
    },
    "iso20022": {
        R.INSUFFICIENT_BALANCE: ("AM04",),
        R.ACCOUNT_FROZEN: ("AC06",),
        R.ACCOUNT_CLOSED: ("AC04",),
        R.CARD_UNBOUND: ("AC01", "MD01", "MD02"),
        R.GATEWAY_OUTAGE: ("AB05", "AB06", "AB07", "AB08", "AB09", "AB10", "ED05"),
        R.OTHER_DECLINE: ("AG01", "AG02", "AM02", "AM05", "MD06", "MD07", "MS02", "MS03", "RR01",
                          "RR02", "RR03", "RR04", "SL01", "TM01"),
    },
}


def normalise_code(code: str) -> str:
    return code.strip().upper()


def normalise_scheme(scheme: str) -> str:
    return scheme.strip().lower()


class CodeMap:
    """(scheme, response code) -> root cause, defaults first, operator overrides on top."""

    def __init__(self, overrides: dict[tuple[str, str], RootCause] | None = None) -> None:
        mapping: dict[tuple[str, str], RootCause] = {}
        for scheme, causes in DEFAULT_SCHEMES.items():
            for cause, codes in causes.items():
                for code in codes:
                    mapping[(scheme, normalise_code(code))] = cause
        mapping.update(overrides or {})
        self.mapping = mapping

    @property
    def schemes(self) -> frozenset[str]:
        return frozenset(scheme for scheme, _ in self.mapping)

    def knows_scheme(self, scheme: str) -> bool:
        return normalise_scheme(scheme) in self.schemes

    def cause_of(self, scheme: str, code: str) -> RootCause:
        return self.mapping.get((normalise_scheme(scheme), normalise_code(code)), R.UNCLASSIFIED)

    def causes_of(self, schemes: pd.Series, codes: pd.Series) -> pd.Series:
        """`cause_of` over whole columns: one dictionary lookup per row, no Python loop per code."""
        lookup = {f"{scheme}\x1f{code}": str(cause) for (scheme, code), cause in self.mapping.items()}
        keys = (schemes.fillna("").str.strip().str.lower() + "\x1f"
                + codes.fillna("").str.strip().str.upper())
        return keys.map(lookup).fillna(R.UNCLASSIFIED.value).astype("str")

    @classmethod
    def from_file(cls, path: Path | None) -> "CodeMap":
        return cls(read_overrides(path) if path else None)


def read_overrides(path: Path) -> dict[tuple[str, str], RootCause]:
    """Parse `scheme,response_code,root_cause`; any bad line is a usage error naming it."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the reason-code file: {exc.strerror or exc}",
                         next_step="check the --reason-codes path") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: the reason-code file is not UTF-8") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [name.strip().lower() for name in next(reader, [])]
    required = ["scheme", "response_code", "root_cause"]
    missing = [name for name in required if name not in header]
    if missing:
        raise UsageError(f"{path}, line 1: missing column(s) {', '.join(missing)}",
                         next_step="the header must be scheme,response_code,root_cause")
    position = {name: header.index(name) for name in required}
    allowed = {str(cause) for cause in CODE_MAPPABLE_CAUSES}
    overrides: dict[tuple[str, str], RootCause] = {}
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        line = reader.line_num
        if len(row) != len(header):
            raise UsageError(f"{path}, line {line}: expected {len(header)} fields, found {len(row)}")
        scheme, code, cause = (row[position[name]].strip() for name in required)
        if not scheme or not code:
            raise UsageError(f"{path}, line {line}: scheme and response_code must not be empty")
        if cause.lower() not in allowed:
            raise UsageError(
                f"{path}, line {line}, column root_cause: {cause!r} is not a root cause a code can "
                f"map to", next_step=f"use one of {', '.join(sorted(allowed))}")
        overrides[(normalise_scheme(scheme), normalise_code(code))] = RootCause(cause.lower())
    return overrides
