"""ISO 20022 `pain.002` (status report) and `camt.054` (debit notification), read safely.

Safety: a DOCTYPE is refused before the parser sees the file (no DTD, so no entity of any kind:
no XXE, no entity expansion); lxml (>= 6.1.3) is also told not to resolve entities, load a DTD
or touch the network, and keeps its depth and text-size limits (no huge_tree). Parsing streams
with iterparse, filtered in C to the few elements recon reads; each transaction is cleared and
dropped once read, so memory stays flat however large the file. Anything lxml refuses (broken,
truncated, too deep) refuses the file with lxml's reason and line: the file has not arrived.

Namespaces are ignored: elements are matched by local name, so the same reader takes every
version of the message (pain.002.001.03 to .001.10 and later, camt.054.001.02 to .001.08 ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from io import BytesIO

import numpy as np
import pandas as pd
from lxml import etree

from recon import validate as v
from recon.profiles import Constant, Profile
from recon.sources.csvfile import RawTable
from recon.sources.native.text import NativeFileError

PROLOG_BYTES = 1 << 16
DATE_ONLY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")

PAIN002_DEFAULTS = {
    "instruction_id": "OrgnlEndToEndId",
    "gateway_txn_id": "StsId|AcctSvcrRef|OrgnlEndToEndId|OrgnlInstrId",
    "amount": "OrgnlTxRef/Amt/InstdAmt|OrgnlTxRef/IntrBkSttlmAmt",
    "txn_time": "AccptncDtTm|/GrpHdr/CreDtTm",
}
CAMT054_DEFAULTS = {
    "instruction_id": "Refs/EndToEndId",
    "gateway_txn_id": "Refs/AcctSvcrRef|Refs/TxId|Refs/EndToEndId|../../AcctSvcrRef|"
                      "../../NtryRef",
    "amount": "AmtDtls/TxAmt/Amt|Amt|../../Amt",
    "txn_time": "../../BookgDt/DtTm|../../BookgDt/Dt|../../ValDt/DtTm|../../ValDt/Dt|"
                "/GrpHdr/CreDtTm",
}
REASON = "StsRsnInf/Rsn/Cd|StsRsnInf/Rsn/Prtry"
REASON_TEXT = "StsRsnInf/AddtlInf"


@dataclass
class XmlRecords:
    raw: RawTable
    source_lines: np.ndarray  # per record (by ordinal), the line its element starts on
    paths: list[str]  # per record, its element path
    checks: list[tuple[str, str, str]] = field(default_factory=list)
    has_counts: bool = False

    def locate(self, validated: v.Validated) -> v.Validated:
        """Record ordinals -> the element's line, and its path in every reject's reason."""
        rejects = validated.rejects
        if len(rejects):
            ordinal = rejects["line"].to_numpy(np.int64) - 1
            rejects = rejects.assign(
                line=self.source_lines[ordinal],
                reason=rejects["reason"] + " (at " + pd.Series(
                    [self.paths[i] for i in ordinal], index=rejects.index, dtype="str") + ")")
        valid = validated.valid
        if len(valid):
            valid["line"] = self.source_lines[valid["line"].to_numpy(np.int64) - 1]
        return v.Validated(validated.file, valid, rejects, validated.rows_read,
                           validated.duplicates_collapsed)


def refuse_doctype(data: bytes, display: str) -> None:
    head = data[:PROLOG_BYTES]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head[:4]:
        raise NativeFileError(f"{display}: the XML is UTF-16/UTF-32; ISO 20022 messages are "
                              f"UTF-8")
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head or b"<!doctype" in head:
        raise NativeFileError(f"{display}: the XML declares a DOCTYPE (a DTD or entities); "
                              f"recon refuses DTDs in settlement files (entity expansion, "
                              f"external entities)")


def _parser_events(data: bytes, tags: tuple[str, ...]):
    return etree.iterparse(BytesIO(data), events=("end",), tag=tags, resolve_entities=False,
                           load_dtd=False, dtd_validation=False, no_network=True,
                           huge_tree=False, remove_comments=True, remove_pis=True)


def local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _path(spec: str) -> list[tuple[int, str, bool]]:
    """'a/b|../../c|/GrpHdr/x' -> alternatives of (parent steps, ElementPath, absolute)."""
    alternatives = []
    for part in spec.split("|"):
        part = part.strip()
        absolute = part.startswith("/")
        steps = [step for step in part.strip("/").split("/") if step]
        up = 0
        while steps and steps[0] == "..":
            up += 1
            steps.pop(0)
        alternatives.append((up, "/".join("{*}" + step for step in steps), absolute))
    return alternatives


class _Finder:
    def __init__(self, spec: str, message_root) -> None:
        self.alternatives = _path(spec)
        self.root = message_root
        self.absolute: dict[str, str] = {}

    def __call__(self, element, entry_is_record: bool = False) -> str:
        for up, path, absolute in self.alternatives:
            if absolute:
                if path not in self.absolute:
                    found = self.root().findtext(path) if self.root() is not None else None
                    if found is None or not found.strip():
                        continue
                    self.absolute[path] = found.strip()
                return self.absolute[path]
            target = element
            if not entry_is_record:
                for _ in range(up):
                    target = target.getparent() if target is not None else None
            if target is None:
                continue
            found = target.findtext(path) if path else target.text
            if found is not None and found.strip():
                return found.strip()
        return ""


def read_iso20022(data: bytes, profile: Profile, display: str) -> XmlRecords:
    refuse_doctype(data, display)
    reader = _Pain002 if profile.format == "pain.002" else _Camt054
    try:
        return reader(profile, display).read(data)
    except etree.XMLSyntaxError as exc:
        line = f" at line {exc.lineno}" if getattr(exc, "lineno", None) else ""
        raise NativeFileError(f"{display}: the XML is not well-formed{line}: {exc.msg}") from None
    except (etree.LxmlError, ValueError, RecursionError) as exc:
        raise NativeFileError(f"{display}: the XML cannot be read: {exc}") from None


class _Reader:
    kind = ""
    defaults: dict[str, str] = {}

    def __init__(self, profile: Profile, display: str) -> None:
        self.profile = profile
        self.display = display
        self.root = None
        self.values: dict[str, list[str]] = {column: [] for column in
                                             ("gateway_txn_id", "instruction_id", "amount",
                                              "status", "response_code", "response_msg",
                                              "txn_time")}
        self.lines: list[int] = []
        self.paths: list[str] = []
        self.constants: dict[str, str] = {}
        self.finders: dict[str, _Finder] = {}
        for column in ("gateway_txn_id", "instruction_id", "amount", "txn_time",
                       "response_code", "response_msg"):
            source = profile.columns.get(column, self.defaults.get(column))
            if isinstance(source, Constant):
                self.constants[column] = source.constant
            elif isinstance(source, str):
                self.finders[column] = _Finder(source, lambda: self.root)
            elif source is not None:
                raise NativeFileError(f"{display}: columns.{column}: an XML field is a path "
                                      f"such as \"OrgnlTxRef/Amt/InstdAmt\" (alternatives "
                                      f"separated by |)")

    def check_root(self, element) -> None:
        if self.root is not None:
            return
        document = element.getroottree().getroot()
        if element.getroottree().docinfo.doctype:
            raise NativeFileError(f"{self.display}: the XML declares a DOCTYPE; refused")
        namespace = document.tag.split("}", 1)[0].lstrip("{") if "}" in document.tag else ""
        if self.kind not in namespace:
            raise NativeFileError(f"{self.display}: the message is {namespace or local(document.tag)!r}, "
                                  f"the profile says {self.kind}")
        self.root = document[0] if len(document) else document

    def field(self, column: str, element, entry_is_record: bool = False) -> str:
        if column in self.constants:
            return self.constants[column]
        finder = self.finders.get(column)
        value = finder(element, entry_is_record) if finder else ""
        if column == "txn_time" and DATE_ONLY.match(value):
            value += " 00:00:00"
        return value

    def add(self, element, status: str, code: str, message: str, path: str,
            entry_is_record: bool = False) -> None:
        values = self.values
        for column in ("gateway_txn_id", "instruction_id", "amount", "txn_time"):
            values[column].append(self.field(column, element, entry_is_record))
        values["status"].append(status)
        values["response_code"].append(
            self.field("response_code", element, entry_is_record)
            if "response_code" in self.profile.columns else code)
        values["response_msg"].append(
            self.field("response_msg", element, entry_is_record)
            if "response_msg" in self.profile.columns else message)
        self.lines.append(element.sourceline or 0)
        self.paths.append(path)

    def records(self) -> XmlRecords:
        n = len(self.lines)
        frame = pd.DataFrame({column: pd.Series(values, dtype="str")
                              for column, values in self.values.items()})
        raw = RawTable(self.display, frame, np.arange(1, n + 1, dtype=np.int64), n)
        return XmlRecords(raw, np.asarray(self.lines, dtype=np.int64), self.paths)

    def amount_fen(self, text: str) -> int | None:
        try:
            value = Decimal(text.strip()) * 100
        except (InvalidOperation, AttributeError):
            return None
        return int(value) if value == value.to_integral_value() else None


def _drop(element) -> None:
    """Forget a read element and the read elements of its kind before it: memory stays flat.
    (Other siblings, such as the group header, stay: absolute paths read them.)"""
    element.clear(keep_tail=False)
    parent = element.getparent()
    if parent is None:
        return
    previous = element.getprevious()
    while previous is not None and previous.tag == element.tag:
        parent.remove(previous)
        previous = element.getprevious()


class _Pain002(_Reader):
    kind = "pain.002"
    defaults = PAIN002_DEFAULTS

    def read(self, data: bytes) -> XmlRecords:
        group_status, group_reason = "", ("", "")
        payment_status: dict[int, tuple[str, tuple[str, str]]] = {}
        group_counts: list[tuple[str, str, str]] = []
        payment_counts: list[tuple[int, str, str, str]] = []
        record_payment: list[int] = []
        payments = 0
        tx_in_payment = 0
        current_parent = None
        reason_finder = _Finder(REASON, lambda: self.root)
        text_finder = _Finder(REASON_TEXT, lambda: self.root)
        events = _parser_events(data, ("{*}GrpHdr", "{*}OrgnlGrpInfAndSts", "{*}TxInfAndSts",
                                       "{*}OrgnlPmtInfAndSts"))
        for _, element in events:
            self.check_root(element)
            name = local(element.tag)
            if name == "GrpHdr":
                continue
            if name == "OrgnlGrpInfAndSts":
                group_status = (element.findtext("{*}GrpSts") or "").strip()
                group_reason = (reason_finder(element), text_finder(element))
                group_counts += _per_status(element)
                continue
            if name == "OrgnlPmtInfAndSts":
                if element is not current_parent:  # a payment information with no transaction
                    payments += 1
                payment_counts += [(payments, *count) for count in _per_status(element)]
                current_parent = None
                _drop(element)
                continue
            # TxInfAndSts
            parent = element.getparent()
            if parent is not current_parent:
                current_parent = parent
                payments += 1
                tx_in_payment = 0
                own = (parent.findtext("{*}PmtInfSts") or "").strip()
                payment_status[payments] = (own, (reason_finder(parent), text_finder(parent)))
            tx_in_payment += 1
            own_status = (element.findtext("{*}TxSts") or "").strip()
            levels = [(own_status, (reason_finder(element), text_finder(element))),
                      payment_status[payments], (group_status, group_reason)]
            status, (code, message) = _inherit(levels)
            self.add(element, status, code, message,
                     f"/Document/CstmrPmtStsRpt/OrgnlPmtInfAndSts[{payments}]/"
                     f"TxInfAndSts[{tx_in_payment}]")
            record_payment.append(payments)
            _drop(element)
        if self.root is None:
            raise NativeFileError(f"{self.display}: no pain.002 message elements found")
        records = self.records()
        records.has_counts = bool(group_counts or payment_counts)
        statuses = np.asarray(self.values["status"], dtype=object)
        amounts = np.asarray([self.amount_fen(text) or 0 for text in self.values["amount"]],
                             dtype=np.int64)
        of_payment = np.asarray(record_payment, dtype=np.int64)
        for status, said_count, said_sum in group_counts:
            chosen = statuses == status
            records.checks.append(_count_check(f"NbOfTxsPerSts {status} (group)", said_count,
                                               chosen, amounts, said_sum))
        for payment, status, said_count, said_sum in payment_counts:
            chosen = (statuses == status) & (of_payment == payment)
            records.checks.append(_count_check(
                f"NbOfTxsPerSts {status} of OrgnlPmtInfAndSts[{payment}]", said_count, chosen,
                amounts, said_sum))
        return records


def _inherit(levels):
    """The first level with a status gives it; its reason, else the reason of the next level
    up that has the same status."""
    for position, (status, reason) in enumerate(levels):
        if status:
            if reason[0] or reason[1]:
                return status, reason
            for higher_status, higher_reason in levels[position + 1:]:
                if higher_status == status and (higher_reason[0] or higher_reason[1]):
                    return status, higher_reason
            return status, ("", "")
    return "", ("", "")


def _per_status(element) -> list[tuple[str, str, str]]:
    counts = []
    for entry in element.findall("{*}NbOfTxsPerSts"):
        counts.append(((entry.findtext("{*}DtldSts") or "").strip(),
                       (entry.findtext("{*}DtldNbOfTxs") or "").strip(),
                       (entry.findtext("{*}DtldCtrlSum") or "").strip()))
    return counts


def _count_check(what: str, said_count: str, chosen: np.ndarray, amounts: np.ndarray,
                 said_sum: str) -> tuple[str, str, str]:
    found_count = int(chosen.sum())
    if not said_sum:
        return what, f"{said_count} transaction(s)", f"{found_count} transaction(s)"
    found_sum = Decimal(int(amounts[chosen].sum())) / 100
    try:
        said = f"{Decimal(said_sum):.2f}"
    except InvalidOperation:
        said = said_sum
    return (what, f"{said_count} transaction(s) totalling {said}",
            f"{found_count} transaction(s) totalling {found_sum:.2f}")


class _Camt054(_Reader):
    kind = "camt.054"
    defaults = CAMT054_DEFAULTS

    def read(self, data: bytes) -> XmlRecords:
        summaries: list[tuple[int, str, str, str]] = []  # (notification, which, count, sum)
        # per notification: [entries, their sum, debit entries, their sum]
        tally: dict[int, list[int]] = {}
        notification = 0
        entry_number = 0
        reason_finder = _Finder("RtrInf/Rsn/Cd|RtrInf/Rsn/Prtry", lambda: self.root)
        text_finder = _Finder("RtrInf/AddtlInf", lambda: self.root)
        events = _parser_events(data, ("{*}GrpHdr", "{*}TxsSummry", "{*}Ntry"))
        current_notification = None
        for _, element in events:
            self.check_root(element)
            name = local(element.tag)
            if name == "GrpHdr":
                continue
            parent = element.getparent()
            if parent is not current_notification:
                current_notification = parent
                notification += 1
                entry_number = 0
                tally[notification] = [0, 0, 0, 0]
            if name == "TxsSummry":
                for which in ("TtlNtries", "TtlDbtNtries"):
                    block = element.find("{*}" + which)
                    if block is not None:
                        summaries.append((notification, which,
                                          (block.findtext("{*}NbOfNtries") or "").strip(),
                                          (block.findtext("{*}Sum") or "").strip()))
                continue
            entry_number += 1
            amount = self.amount_fen(element.findtext("{*}Amt") or "") or 0
            counts = tally[notification]
            counts[0] += 1
            counts[1] += amount
            if (element.findtext("{*}CdtDbtInd") or "").strip().upper() != "DBIT":
                _drop(element)
                continue
            counts[2] += 1
            counts[3] += amount
            status = (element.findtext("{*}Sts/{*}Cd") or element.findtext("{*}Sts") or "")
            status = status.strip()
            details = element.findall("{*}NtryDtls/{*}TxDtls")
            path = f"/Document/BkToCstmrDbtCdtNtfctn/Ntfctn[{notification}]/Ntry[{entry_number}]"
            if not details:
                self.add(element, status, "", "", path, entry_is_record=True)
            for number, detail in enumerate(details, start=1):
                returned = detail.find("{*}RtrInf") is not None
                self.add(detail, "RTRN" if returned else status,
                         reason_finder(detail) if returned else "",
                         text_finder(detail) if returned else "",
                         f"{path}/NtryDtls/TxDtls[{number}]")
            _drop(element)
        if self.root is None:
            raise NativeFileError(f"{self.display}: no camt.054 message elements found")
        records = self.records()
        records.has_counts = bool(summaries)
        for number, which, said_count, said_sum in summaries:
            entries, entries_sum, debits, debits_sum = tally[number]
            count, total = (debits, debits_sum) if which == "TtlDbtNtries" else \
                (entries, entries_sum)
            said = f"{said_count} entries"
            found = f"{count} entries"
            if said_sum:
                try:
                    said += f" totalling {Decimal(said_sum):.2f}"
                except InvalidOperation:
                    said += f" totalling {said_sum}"
                found += f" totalling {Decimal(total) / 100:.2f}"
            records.checks.append((f"Ntfctn[{number}]/TxsSummry/{which}", said, found))
        return records
