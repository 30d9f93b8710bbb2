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

from decimal import Decimal, InvalidOperation
from io import BytesIO

import numpy as np
from lxml import etree

from recon.profiles import Profile
from recon.sources.native.text import NativeFileError
from recon.sources.native.xmlrecords import (LOCAL_NAMES, Extractor, MessageReader, XmlRecords,
                                             forget_read, local)
from recon.validate import amount_fen

PROLOG_BYTES = 1 << 16

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


def _reason(element) -> tuple[str, str]:
    code = (element.findtext("{*}StsRsnInf/{*}Rsn/{*}Cd") or
            element.findtext("{*}StsRsnInf/{*}Rsn/{*}Prtry") or "").strip()
    return code, (element.findtext("{*}StsRsnInf/{*}AddtlInf") or "").strip()


class _Pain002(MessageReader):
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
                forget_read(element, len(self.lines))
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


class _Camt054(MessageReader):
    kind = "camt.054"
    defaults = CAMT054_DEFAULTS
    record_paths = ("RtrInf", "RtrInf/Rsn/Cd", "RtrInf/Rsn/Prtry", "RtrInf/AddtlInf")
    entry_reader = Extractor(["Amt", "CdtDbtInd", "Sts", "Sts/Cd"])

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
            forget_read(element, entry_number)
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
