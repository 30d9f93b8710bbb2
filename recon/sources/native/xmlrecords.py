"""The streaming reader under both ISO 20022 readers: records out of an iterparse, column by column.

A profile's XML column is a path with alternatives ("a/b|../../c|/GrpHdr/x"); `Extractor` reads
every path a record needs in one walk over the branches they go through, `_Finder` picks the first
non-empty alternative, and `MessageReader` collects the values in Arrow chunks so memory stays
flat. iso20022.py says which elements are records in pain.002 and camt.054.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import numpy as np
import pandas as pd
import pyarrow as pa

from recon import validate as v
from recon.profiles import Constant, Profile
from recon.sources.native.text import NativeFileError
from recon.sources.rawtable import RawTable

CHUNK_RECORDS = 1 << 16
DATE_ONLY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
COLUMNS = ("gateway_txn_id", "instruction_id", "amount", "status", "response_code",
           "response_msg", "txn_time")
FOUND = ("gateway_txn_id", "instruction_id", "amount", "txn_time", "response_code",
         "response_msg")
DROP_EVERY = 512  # read transactions are deleted in batches: one list shift per batch


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


class Extractor:
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


class MessageReader:
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
        self.extractors = [Extractor([path for finder in self.finders.values()
                                       for path in finder.relative(up)]
                                      + (list(self.record_paths) if up == 0 else []))
                           for up in range(depth + 1)]
        self.flat_extractor = Extractor([path for finder in self.finders.values()
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


def forget_read(element, count: int) -> None:
    """Memory stays flat: the read element is cleared, and every DROP_EVERY records the
    elements read before it are deleted from their parent."""
    element.clear(keep_tail=False)
    if count % DROP_EVERY == 0:
        parent = element.getparent()
        if parent is not None:
            del parent[:parent.index(element)]
