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
import pyarrow as pa
from lxml import etree

from recon import validate as v
from recon.validate import amount_fen
from recon.profiles import Constant, Profile
from recon.sources.rawtable import RawTable
from recon.sources.native.text import NativeFileError

PROLOG_BYTES = 1 << 16
CHUNK_RECORDS = 1 << 16
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
    """'a/b|../../c|/GrpHdr/x' -> alternatives of (parent steps, 'a/b' local-name path, absolute)."""
    alternatives = []
    for part in spec.split("|"):
        part = part.strip()
        absolute = part.startswith("/")
        steps = [step for step in part.strip("/").split("/") if step]
        up = 0
        while steps and steps[0] == "..":
            up += 1
            steps.pop(0)
        if not steps or ".." in steps:
            raise ValueError(f"{part!r}: '..' may only lead a path, and a path names an element")
        alternatives.append((up, "/".join(steps), absolute))
    return alternatives


LOCAL_NAMES: dict[str, str] = {}


class _Extractor:
    """The texts of a fixed set of descendant paths of an element, in one walk over only the
    branches those paths go through (no ElementPath per value: that costs ten times more).
    A path's value is its first element's trimmed text; an element present but empty is ""."""

    def __init__(self, paths) -> None:
        self.tree: dict = {}
        for path in set(paths):
            node = self.tree
            for step in path.split("/"):
                node = node.setdefault(step, {})
            node[""] = True

    def __call__(self, element) -> dict[str, str]:
        found: dict[str, str] = {}
        self._walk(element, self.tree, "", found)
        return found

    def _walk(self, element, tree: dict, prefix: str, found: dict) -> None:
        for child in element:
            tag = child.tag
            name = LOCAL_NAMES.get(tag) if isinstance(tag, str) else None
            if name is None:
                if not isinstance(tag, str):
                    continue
                name = LOCAL_NAMES.setdefault(tag, tag.rsplit("}", 1)[-1])
            branch = tree.get(name)
            if branch is None:
                continue
            path = prefix + name
            wanted = "" in branch
            if wanted and path not in found:
                found[path] = (child.text or "").strip()
            if len(branch) > wanted:  # deeper paths go through this element
                self._walk(child, branch, path + "/", found)


class _Finder:
    """One column's path alternatives: the first non-empty value wins."""

    def __init__(self, spec: str, message_root) -> None:
        self.alternatives = _path(spec)
        self.root = message_root
        self.absolute: dict[str, str] = {}

    def relative(self, up: int) -> list[str]:
        return [path for level, path, absolute in self.alternatives
                if level == up and not absolute]

    def __call__(self, levels: list[dict[str, str]], flat: bool = False) -> str:
        """`levels[k]`: the extracted values of the record's k-th ancestor (0: the record).
        `flat`: the record is the entry itself, so every path is read on it."""
        for up, path, absolute in self.alternatives:
            if absolute:
                if path not in self.absolute:
                    root = self.root()
                    found = root.findtext("/".join("{*}" + step for step in path.split("/"))) \
                        if root is not None else None
                    if found is None or not found.strip():
                        continue
                    self.absolute[path] = found.strip()
                return self.absolute[path]
            values = levels[0] if flat else (levels[up] if up < len(levels) else None)
            if values:
                found = values.get(path)
                if found:
                    return found
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


COLUMNS = ("gateway_txn_id", "instruction_id", "amount", "status", "response_code",
           "response_msg", "txn_time")
FOUND = ("gateway_txn_id", "instruction_id", "amount", "txn_time", "response_code",
         "response_msg")
DROP_EVERY = 512  # read transactions are deleted in batches: one list shift per batch


class _Reader:
    kind = ""
    defaults: dict[str, str] = {}
    record_paths: tuple[str, ...] = ()  # what the reader itself reads on a record

    def __init__(self, profile: Profile, display: str) -> None:
        self.profile = profile
        self.display = display
        self.root = None
        self.values: dict[str, list[str]] = {column: [] for column in COLUMNS}
        self.sealed: dict[str, list[pa.Array]] = {column: [] for column in COLUMNS}
        self.lines: list[int] = []
        self.paths: list[str] = []
        self.constants: dict[str, str] = {}
        self.finders: dict[str, _Finder] = {}
        for column in FOUND:
            source = profile.columns.get(column, self.defaults.get(column))
            if isinstance(source, Constant):
                self.constants[column] = source.constant
            elif isinstance(source, str):
                try:
                    self.finders[column] = _Finder(source, lambda: self.root)
                except ValueError as exc:
                    raise NativeFileError(f"{display}: columns.{column}: {exc}") from None
            elif source is not None:
                raise NativeFileError(f"{display}: columns.{column}: an XML field is a path "
                                      f"such as \"OrgnlTxRef/Amt/InstdAmt\" (alternatives "
                                      f"separated by |)")
        self.own_code = "response_code" not in profile.columns
        self.own_message = "response_msg" not in profile.columns
        depth = max([up for finder in self.finders.values() for up, _, _ in finder.alternatives]
                    + [0])
        self.extractors = [_Extractor([path for finder in self.finders.values()
                                       for path in finder.relative(up)]
                                      + (list(self.record_paths) if up == 0 else []))
                           for up in range(depth + 1)]
        self.flat_extractor = _Extractor([path for finder in self.finders.values()
                                          for _, path, absolute in finder.alternatives
                                          if not absolute] + list(self.record_paths))
        self.ancestors: list = [None] * (depth + 1)  # (element, its values) per level

    def check_root(self, element) -> None:
        if self.root is not None:
            return
        tree = element.getroottree()
        if tree.docinfo.doctype:
            raise NativeFileError(f"{self.display}: the XML declares a DOCTYPE; refused")
        document = tree.getroot()
        namespace = document.tag.split("}", 1)[0].lstrip("{") if "}" in document.tag else ""
        if self.kind not in namespace:
            raise NativeFileError(f"{self.display}: the message is "
                                  f"{namespace or local(document.tag)!r}, the profile says "
                                  f"{self.kind}")
        self.root = document[0] if len(document) else document

    def levels(self, element) -> list[dict[str, str]]:
        """The record's values, and those of the ancestors its paths reach (cached: one entry
        or payment is read once for all its transactions)."""
        levels = [self.extractors[0](element)]
        ancestor = element
        for up in range(1, len(self.extractors)):
            ancestor = ancestor.getparent() if ancestor is not None else None
            cached = self.ancestors[up]
            if cached is None or cached[0] is not ancestor:
                cached = (ancestor, self.extractors[up](ancestor) if ancestor is not None
                          else {})
                self.ancestors[up] = cached
            levels.append(cached[1])
        return levels

    def add(self, levels: list[dict[str, str]], line: int, status: str, code: str,
            message: str, path: str, flat: bool = False) -> None:
        values, constants, finders = self.values, self.constants, self.finders
        for column in FOUND:
            if column == "response_code" and self.own_code:
                value = code
            elif column == "response_msg" and self.own_message:
                value = message
            elif column in constants:
                value = constants[column]
            else:
                finder = finders.get(column)
                value = finder(levels, flat) if finder else ""
                if column == "txn_time" and len(value) == 10 and DATE_ONLY.match(value):
                    value += " 00:00:00"
            values[column].append(value)
        values["status"].append(status)
        self.lines.append(line)
        self.paths.append(path)
        if len(values["status"]) == CHUNK_RECORDS:
            self._seal()

    def _seal(self) -> None:
        """Move the values read so far into Arrow (a tenth of what Python strings take)."""
        for column, values in self.values.items():
            self.sealed[column].append(pa.array(values, type=pa.large_string()))
            values.clear()

    def column(self, column: str) -> pa.ChunkedArray:
        self._seal()
        return pa.chunked_array(self.sealed[column], type=pa.large_string())

    def records(self) -> XmlRecords:
        n = len(self.lines)
        frame = pd.DataFrame({column: pd.Series(self.column(column).combine_chunks()
                                                .to_pandas().array, dtype="str")
                              for column in COLUMNS}) if n else \
            pd.DataFrame({column: pd.Series([], dtype="str") for column in COLUMNS})
        raw = RawTable(self.display, frame, np.arange(1, n + 1, dtype=np.int64), n)
        return XmlRecords(raw, np.asarray(self.lines, dtype=np.int64), self.paths)

    @staticmethod
    def amount_fen(text: str) -> int | None:
        try:
            value = Decimal(text.strip()) * 100
        except (InvalidOperation, AttributeError):
            return None
        return int(value) if value == value.to_integral_value() else None


def _forget_read(element, count: int) -> None:
    """Memory stays flat: the read element is cleared, and every DROP_EVERY records the
    elements read before it are deleted from their parent."""
    element.clear(keep_tail=False)
    if count % DROP_EVERY == 0:
        parent = element.getparent()
        if parent is not None:
            del parent[:parent.index(element)]


def _reason(element) -> tuple[str, str]:
    code = (element.findtext("{*}StsRsnInf/{*}Rsn/{*}Cd") or
            element.findtext("{*}StsRsnInf/{*}Rsn/{*}Prtry") or "").strip()
    return code, (element.findtext("{*}StsRsnInf/{*}AddtlInf") or "").strip()


class _Pain002(_Reader):
    kind = "pain.002"
    defaults = PAIN002_DEFAULTS
    record_paths = ("TxSts", "StsRsnInf/Rsn/Cd", "StsRsnInf/Rsn/Prtry", "StsRsnInf/AddtlInf")

    def read(self, data: bytes) -> XmlRecords:
        group_status, group_reason = "", ("", "")
        payment_level = ("", ("", ""))
        group_counts: list[tuple[str, str, str]] = []
        payment_counts: list[tuple[int, str, str, str]] = []
        record_payment: list[int] = []
        payments = 0
        tx_in_payment = 0
        current_parent = None
        events = _parser_events(data, ("{*}GrpHdr", "{*}OrgnlGrpInfAndSts", "{*}TxInfAndSts",
                                       "{*}OrgnlPmtInfAndSts"))
        for _, element in events:
            if self.root is None:
                self.check_root(element)
            name = LOCAL_NAMES.get(element.tag) or local(element.tag)
            if name == "TxInfAndSts":
                parent = element.getparent()
                if parent is not current_parent:  # the first transaction of a payment info
                    current_parent = parent
                    payments += 1
                    tx_in_payment = 0
                    payment_level = ((parent.findtext("{*}PmtInfSts") or "").strip(),
                                     _reason(parent))
                    payment_counts += [(payments, *count) for count in _per_status(parent)]
                tx_in_payment += 1
                levels = self.levels(element)
                own = levels[0]
                tx_reason = (own.get("StsRsnInf/Rsn/Cd") or own.get("StsRsnInf/Rsn/Prtry")
                             or "", own.get("StsRsnInf/AddtlInf") or "")
                status, (code, message) = _inherit([
                    (own.get("TxSts") or "", tx_reason), payment_level,
                    (group_status, group_reason)])
                self.add(levels, element.sourceline or 0, status, code, message,
                         f"/Document/CstmrPmtStsRpt/OrgnlPmtInfAndSts[{payments}]/"
                         f"TxInfAndSts[{tx_in_payment}]")
                record_payment.append(payments)
                _forget_read(element, len(self.lines))
            elif name == "OrgnlGrpInfAndSts":
                group_status = (element.findtext("{*}GrpSts") or "").strip()
                group_reason = _reason(element)
                group_counts += _per_status(element)
            elif name == "OrgnlPmtInfAndSts":
                if element is not current_parent:  # a payment information with no transaction
                    payments += 1
                    payment_counts += [(payments, *count) for count in _per_status(element)]
                current_parent = None
                element.clear(keep_tail=False)
        if self.root is None:
            raise NativeFileError(f"{self.display}: no pain.002 message elements found")
        records = self.records()
        records.has_counts = bool(group_counts or payment_counts)
        statuses = records.raw.frame["status"].to_numpy(object)
        fen, parses = amount_fen(records.raw.frame["amount"], None)
        amounts = np.where(parses.to_numpy(bool), fen.to_numpy(np.int64), 0)
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
    record_paths = ("RtrInf", "RtrInf/Rsn/Cd", "RtrInf/Rsn/Prtry", "RtrInf/AddtlInf")
    entry_reader = _Extractor(["Amt", "CdtDbtInd", "Sts", "Sts/Cd"])

    def read(self, data: bytes) -> XmlRecords:
        summaries: list[tuple[int, str, str, str]] = []  # (notification, which, count, sum)
        tally: dict[int, list[int]] = {}  # per notification: entries, sum, debits, their sum
        notification = 0
        entry_number = 0
        events = _parser_events(data, ("{*}GrpHdr", "{*}TxsSummry", "{*}Ntry"))
        current_notification = None
        for _, element in events:
            if self.root is None:
                self.check_root(element)
            name = LOCAL_NAMES.get(element.tag) or local(element.tag)
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
            entry = self.entry_reader(element)
            amount = self.amount_fen(entry.get("Amt", "")) or 0
            counts = tally[notification]
            counts[0] += 1
            counts[1] += amount
            if entry.get("CdtDbtInd", "").upper() == "DBIT":
                counts[2] += 1
                counts[3] += amount
                self._entry(element, entry, notification, entry_number)
            _forget_read(element, entry_number)
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

    def _entry(self, element, entry: dict, notification: int, number: int) -> None:
        status = entry.get("Sts/Cd") or entry.get("Sts") or ""
        path = f"/Document/BkToCstmrDbtCdtNtfctn/Ntfctn[{notification}]/Ntry[{number}]"
        details = element.findall("{*}NtryDtls/{*}TxDtls")
        if not details:
            levels = [self.flat_extractor(element)]
            self.add(levels, element.sourceline or 0, status, "", "", path, flat=True)
        for position, detail in enumerate(details, start=1):
            levels = self.levels(detail)
            own = levels[0]
            returned = "RtrInf" in own
            code = (own.get("RtrInf/Rsn/Cd") or own.get("RtrInf/Rsn/Prtry") or "") \
                if returned else ""
            self.add(levels, detail.sourceline or 0, "RTRN" if returned else status, code,
                     own.get("RtrInf/AddtlInf", "") if returned else "",
                     f"{path}/NtryDtls/TxDtls[{position}]")
