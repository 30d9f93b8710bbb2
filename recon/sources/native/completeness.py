"""Proving a native settlement file complete (CONTRACT 2.4.1): a .ctl, a summary or trailer line,
the XML message's own counts, or a marker file. What cannot be proven has not arrived."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from recon.arrival import Arrived, NotArrived, gateway_key, parse_control
from recon.profiles import Profile
from recon.sources.filebytes import read_bytes
from recon.sources.inbox import MAX_CONTROL_BYTES
from recon.sources.native.values import amount_to_fen
from recon.timetext import expand_date

NUMBER = re.compile(r"[0-9][0-9,]*(?:\.[0-9]+)?")


@dataclass
class Facts:
    """What the file itself holds, to compare with what its proof declares."""

    records: int  # data records, well-formed or not
    totals: dict[str, set[int]]  # "success" / "all" -> sums (fen) the sender may have meant
    other_text: str = ""  # summary, trailer and skipped lines
    message_checks: list[tuple[str, str, str]] = field(default_factory=list)  # XML: what, said, found
    message_counts: bool = False  # the XML message holds counts at all


def side_file(profile: Profile, data_path: Path, business_date: dt.date | None) -> Path:
    default = "{stem}.ctl" if profile.completeness.method == "ctl" else "{name}.ok"
    template = profile.completeness.file or default
    name = data_path.name
    stem = name.rsplit(".", 1)[0] if "." in name else name
    text = template.replace("{name}", name).replace("{stem}", stem)
    if business_date is not None:
        text = expand_date(text, business_date)
    return data_path.parent / text


def _fen_text(fen: int) -> str:
    return f"{Decimal(fen) / 100:.2f}"


def prove(profile: Profile, data_path: Path, data_digest: str, facts: Facts,
          business_date: dt.date | None) -> Arrived | NotArrived:
    """Arrived, with the verdict's sentence, when the file is proven complete; else NotArrived."""
    method = profile.completeness.method
    unit = profile.completeness.total_unit or profile.values.amount_unit
    if method == "message":
        if not facts.message_counts:
            return NotArrived(f"not arrived: {data_path.name} holds no counts of its own "
                              f"({'NbOfTxsPerSts' if profile.format == 'pain.002' else 'TxsSummry'}"
                              f"), so its completeness cannot be proven", data_digest)
        for what, said, found in facts.message_checks:
            if said != found:
                return NotArrived(f"refused: {data_path.name}: {what} says {said}, the message "
                                  f"holds {found}", data_digest)
        return Arrived(profile.scheme, data_digest, f"complete: the message's own counts agree "
                                                    f"({len(facts.message_checks)} checks)")
    if method == "summary":
        match = re.search(profile.completeness.pattern, facts.other_text, re.MULTILINE)
        if not match:
            return NotArrived(f"not arrived: no summary or trailer line of {data_path.name} "
                              f"matches completeness.pattern", data_digest)
        return _compare(profile, data_path.name, "its summary line", match.groupdict(), unit,
                        facts, data_digest)
    side = side_file(profile, data_path, business_date)
    if not side.is_file():
        return NotArrived(f"not arrived: {side.name} ({'control' if method == 'ctl' else 'marker'} "
                          f"file) is missing", data_digest)
    try:
        content = read_bytes(side, side.name, MAX_CONTROL_BYTES)
    except Exception as exc:  # noqa: BLE001 - an unreadable proof is no proof
        return NotArrived(f"refused: {side.name} unreadable: {exc}", data_digest)
    if method == "ctl":
        try:
            control = parse_control(content)
        except ValueError as exc:
            return NotArrived(f"refused: control file {side.name} unreadable: {exc}",
                              data_digest)
        declared_gateway = control.get("gateway", "")
        if declared_gateway and gateway_key(declared_gateway) != profile.key:
            return NotArrived(f"refused: {side.name} names gateway {declared_gateway!r}, not "
                              f"{profile.gateway!r}", data_digest)
        declared_date = control.get("business_date", "")
        if declared_date and business_date and declared_date != business_date.isoformat():
            return NotArrived(f"refused: {side.name} is for business date {declared_date!r}, not "
                              f"{business_date.isoformat()}", data_digest)
        digest = control.get("sha256", "").lower()
        if digest and digest != data_digest:
            return NotArrived(f"refused: sha256 of {data_path.name} is {data_digest}, "
                              f"{side.name} declares {digest}", data_digest)
        said = {"count": control.get("records", control.get("count")),
                "total": control.get("amount_total", control.get("total"))}
        if said["count"] is None or said["total"] is None:
            return NotArrived(f"refused: {side.name} needs records= and amount_total=",
                              data_digest)
        return _compare(profile, data_path.name, side.name, said, "yuan" if
                        profile.completeness.total_unit is None else unit, facts, data_digest)
    # marker
    text = content.decode("utf-8-sig", errors="replace").strip()
    if not text:
        return Arrived(profile.scheme, data_digest,
                       f"complete: marker {side.name} is there (it holds no counts)")
    if profile.completeness.pattern:
        match = re.search(profile.completeness.pattern, text, re.MULTILINE)
        if not match:
            return NotArrived(f"refused: marker {side.name} does not match "
                              f"completeness.pattern", data_digest)
        said = match.groupdict()
    elif "=" in text:
        try:
            control = parse_control(content)
        except ValueError as exc:
            return NotArrived(f"refused: marker {side.name} unreadable: {exc}", data_digest)
        said = {"count": control.get("records", control.get("count")),
                "total": control.get("amount_total", control.get("total"))}
    else:
        numbers = NUMBER.findall(text)
        said = {"count": numbers[0] if numbers else None,
                "total": numbers[1] if len(numbers) > 1 else None}
    if said.get("count") is None:
        return NotArrived(f"refused: marker {side.name} holds text but no record count",
                          data_digest)
    return _compare(profile, data_path.name, f"marker {side.name}", said, unit, facts,
                    data_digest)


def _compare(profile: Profile, name: str, proof: str, said: dict, unit: str, facts: Facts,
             digest: str) -> Arrived | NotArrived:
    count_text = (said.get("count") or "").replace(",", "").strip()
    try:
        count = int(count_text)
    except ValueError:
        return NotArrived(f"refused: {proof} gives record count {said.get('count')!r}, not a "
                          f"whole number", digest)
    if count != facts.records:
        return NotArrived(f"refused: {name} has {facts.records} data records, {proof} declares "
                          f"{count}", digest)
    total_text = said.get("total")
    if total_text is None:
        return Arrived(profile.scheme, digest,
                       f"complete: {count} records, as {proof} declares (it gives no total)")
    total = _total_fen(total_text, unit)
    if total is None:
        return NotArrived(f"refused: {proof} gives total {total_text!r}, not an amount in {unit}",
                          digest)
    sums = facts.totals[profile.completeness.total_of]
    if total not in sums:
        which = "SUCCESS rows" if profile.completeness.total_of == "success" else "rows"
        return NotArrived(f"refused: {which} of {name} total {_fen_text(min(sums))}, {proof} "
                          f"declares {_fen_text(total)}", digest)
    return Arrived(profile.scheme, digest,
                   f"complete: {count} records totalling {_fen_text(total)}, as {proof} declares")


def _total_fen(text: str, unit: str) -> int | None:
    text = text.strip()
    if unit == "yuan":
        try:  # a .ctl's amount_total may have more digits than the row rule takes: 1234.500
            value = Decimal(text.replace(",", "").removesuffix("元").strip()) * 100
        except InvalidOperation:
            return amount_to_fen(text, unit)
        return int(value) if value == value.to_integral_value() and value > 0 else \
            (0 if value == 0 else None)
    if text in ("0", "0.00"):
        return 0
    return amount_to_fen(text, unit)
