"""Whether a settlement file has arrived (CONTRACT 2.4, 2.4.1): decisions over what was read. Pure.

The sources read a file, its .ctl and the instructions; the functions here say, as a value, that
the file arrived (`Arrived`) or why it counts as not arrived (`NotArrived`), and which gateways'
files were expected. Nothing here reads a file: every rule can be tried on bytes and numbers.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable

import pandas as pd

from recon.codes import CodeMap, normalise_scheme
from recon.protect import mask_cards_in_text
from recon.validate import Validated, amount_fen

RECORDS = re.compile(r"[0-9]{1,18}", re.ASCII)
TOTAL = re.compile(r"[0-9]{1,18}(?:\.[0-9]{1,2})?", re.ASCII)


@dataclass(frozen=True)
class Arrived:
    """A settlement file proven complete: the scheme its response codes are read in, its
    digest, and the sentence saying what proved it."""

    scheme: str
    digest: str
    verdict: str = ""


@dataclass(frozen=True)
class NotArrived:
    """Why a settlement file counts as not arrived (`not arrived: ...` or `refused: ...`); the
    digest of its bytes when they were read."""

    reason: str
    digest: str = ""

    def __post_init__(self) -> None:
        # The reason may quote a .ctl's or a file's own text.
        object.__setattr__(self, "reason", mask_cards_in_text(self.reason))


@dataclass
class SettlementRefusal:
    """A gateway's file of the day that counts as not arrived, as the run reports it."""

    gateway: str
    file: str
    reason: str


@dataclass(frozen=True)
class Declared:
    """What a contract .ctl vouches for, once its checks have passed."""

    ctl_name: str
    scheme: str
    encoding: str
    records: int
    amount_total: Decimal
    sha256: str


def gateway_key(gateway: pd.Series | str):
    """Gateway ids compare case-insensitively: `unionpay` and `UNIONPAY` are one gateway."""
    return gateway.str.upper() if isinstance(gateway, pd.Series) else gateway.upper()


def expected_gateways(instructions: pd.DataFrame) -> set[str]:
    """CONTRACT 2.4: a gateway that was sent instructions owes a settlement file for the day."""
    sent = instructions.loc[instructions["sent_at"].notna(), "gateway"].unique()
    return set(gateway_key(pd.Series(sent)))


def missing_refusals(expected: set[str], arrived: set[str], refused: set[str],
                     expected_file: Callable[[str], tuple[str, str]]) -> list[SettlementRefusal]:
    """One refusal per expected gateway with neither an arrived nor a refused file.

    `expected_file(gateway)`: (file name, what is missing) for a gateway whose file is not there.
    """
    refusals = []
    for gateway in sorted(expected - arrived - refused):
        name, missing = expected_file(gateway)
        refusals.append(SettlementRefusal(
            gateway, name,
            f"not arrived: {missing} for gateway {gateway}, which has sent instructions"))
    return refusals


def namesakes_refused(names: list[str], gateway: str) -> NotArrived:
    return NotArrived(f"refused: files {', '.join(names)} name the same gateway {gateway!r}; "
                      f"keep exactly one")


def refused(why: object, digest: str = "") -> NotArrived:
    """A file (or its .ctl) that could not be read at all has not arrived."""
    return NotArrived(f"refused: {why}", digest)


# --- the contract's settlement_<G>.csv + .ctl --------------------------------------------------

def pair_missing(csv_name: str, ctl_name: str, csv_there: bool,
                 ctl_there: bool) -> NotArrived | None:
    """The .ctl is written last: without it, or without its data file, nothing has arrived."""
    if not ctl_there:
        return NotArrived(f"not arrived: control file {ctl_name} is missing")
    if not csv_there:
        return NotArrived(f"not arrived: {ctl_name} is there but {csv_name} is missing")
    return None


def declared(gateway: str, ctl_name: str, control: dict[str, str], business_date_text: str,
             codes: CodeMap) -> Declared | NotArrived:
    """The .ctl's own checks: its gateway, business date, scheme, encoding, counts."""
    declared_gateway = control.get("gateway", "")
    if gateway_key(declared_gateway) != gateway_key(gateway):
        return NotArrived(f"refused: {ctl_name} names gateway {declared_gateway!r}, "
                          f"not {gateway!r}")
    declared_date = control.get("business_date", "")
    if declared_date != business_date_text:
        return NotArrived(f"refused: {ctl_name} is for business date {declared_date!r}, "
                          f"not {business_date_text}")
    scheme = normalise_scheme(control.get("scheme", ""))
    if not codes.knows_scheme(scheme):
        return NotArrived(f"refused: {ctl_name} declares unknown scheme {scheme!r} "
                          f"(known: {', '.join(sorted(codes.schemes))})")
    encoding = control.get("encoding", "") or "utf-8"
    if not is_text_encoding(encoding):
        return NotArrived(f"refused: {ctl_name} declares unknown encoding {encoding!r}")
    counts = declared_counts(control, ctl_name)
    if isinstance(counts, NotArrived):
        return counts
    return Declared(ctl_name, scheme, encoding, *counts, control.get("sha256", "").lower())


def declared_counts(control: dict[str, str], ctl_name: str) -> tuple[int, Decimal] | NotArrived:
    """records= and amount_total= as the contract writes them: `48213`, `3150432.17`.

    Only plain digits: int() and Decimal() would also take `1_000`, Arabic-Indic digits, `1e3`,
    `NaN`, `Infinity` and `sNaN` (which cannot even be compared).
    """
    records, total = control.get("records", ""), control.get("amount_total", "")
    if not RECORDS.fullmatch(records) or not TOTAL.fullmatch(total):
        return NotArrived(f"refused: {ctl_name} needs records= as a whole number and "
                          f"amount_total= as a plain decimal with at most 2 places, found "
                          f"records={records!r}, amount_total={total!r}")
    return int(records), Decimal(total)


def digest_differs(declared: Declared, csv_name: str, digest: str) -> NotArrived | None:
    if declared.sha256 and declared.sha256 != digest:
        return NotArrived(f"refused: sha256 of {csv_name} is {digest}, {declared.ctl_name} "
                          f"declares {declared.sha256}", digest)
    return None


def unreadable(declared: Declared, error: object, line: int | None, digest: str,
               read_as_utf8: bool) -> NotArrived:
    """The data file could not be read as CSV: on its header line and not read as UTF-8,
    perhaps because the .ctl declares the wrong encoding."""
    misread = "" if read_as_utf8 or line != 1 else \
        f" (read as {declared.encoding}, the encoding {declared.ctl_name} declares: is it the " \
        f"right one?)"
    return NotArrived(f"refused: {error}{misread}", digest)


def count_differs(declared: Declared, csv_name: str, records: int,
                  digest: str) -> NotArrived | None:
    if records != declared.records:
        return NotArrived(f"refused: {csv_name} has {records} data rows, {declared.ctl_name} "
                          f"declares {declared.records}", digest)
    return None


def total_agrees(declared: Declared, csv_name: str, totals: set[Decimal],
                 digest: str) -> Arrived | NotArrived:
    """The file holds the SUCCESS total its .ctl declares (`totals`: see success_totals)."""
    if declared.amount_total not in totals:
        return NotArrived(f"refused: SUCCESS rows of {csv_name} total {min(totals):.2f}, "
                          f"{declared.ctl_name} declares {declared.amount_total}", digest)
    return Arrived(declared.scheme, digest,
                   f"complete: {declared.records} records totalling {declared.amount_total}, "
                   f"as {declared.ctl_name} declares")


def success_totals(frame: pd.DataFrame, flawed: pd.DataFrame, validated: Validated) -> set[Decimal]:
    """Totals a sender may have meant: over every SUCCESS row whose amount parses, or valid ones.

    "Every row" includes the `flawed` rows, rejected for one bad field (bad bytes, say): the
    sender counted them.
    """
    rows = pd.concat([frame, flawed], ignore_index=True) if len(flawed) else frame
    success = rows["status"].str.upper() == "SUCCESS"
    fen, parses = amount_fen(rows["amount"], None)
    every_row = int(fen[success & parses].sum())
    valid = validated.valid
    valid_rows = int(valid.loc[valid["status"] == "SUCCESS", "amount"].sum())
    return {Decimal(every_row) / 100, Decimal(valid_rows) / 100}


def parse_control(data: bytes) -> dict[str, str]:
    """A .ctl's `key=value` lines; ValueError when it is not one."""
    text = data.decode("utf-8-sig")
    if "\x00" in text:
        raise ValueError("it holds NUL bytes")
    control: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ValueError(f"line {raw_line!r} is not key=value")
        key, value = line.split("=", 1)
        for marker in (" #", "\t#"):
            if marker in value:
                value = value.split(marker, 1)[0]
        key, value = key.strip().lower(), value.strip()
        if control.get(key, value) != value:  # last-wins would let a stray line decide
            raise ValueError(f"key {key!r} is given twice with different values "
                             f"({control[key]!r} and {value!r})")
        control[key] = value
    return control


def control_of(ctl_name: str, data: bytes) -> dict[str, str] | NotArrived:
    """The .ctl's keys, or why it cannot vouch for anything."""
    try:
        return parse_control(data)
    except ValueError as exc:  # UnicodeDecodeError included
        return control_unreadable(ctl_name, exc)


def control_unreadable(ctl_name: str, why: object) -> NotArrived:
    return NotArrived(f"refused: control file {ctl_name} unreadable: {why}")


def is_text_encoding(encoding: str) -> bool:
    """True for a codec that turns bytes into text (not `rot13`, `base64`, `zlib`...)."""
    try:
        if not codecs.lookup(encoding)._is_text_encoding:
            return False
        sample = "gateway_txn_id,amount\n"
        # A bytes-to-bytes codec raises LookupError here; one made for host names and not for
        # files (idna, punycode) takes no error handler and raises UnicodeError.
        return sample.encode(encoding).decode(encoding, errors="surrogateescape") == sample
    except (LookupError, ValueError):  # UnicodeError included
        return False
