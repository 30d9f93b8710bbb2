"""Native settlement files read through gateway profiles (CONTRACT 2.4.1, docs/FORMATS.md).

Each reader turns a gateway's own file into the seven settlement columns as trimmed text with
the line (or XML record) of each row; the profile's value rules then go through validate.py like
the contract CSV's, so everything after loading is unchanged. A file whose completeness cannot be
proven has not arrived.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recon import filerules
from recon import validate as v
from recon.arrival import Arrived, NotArrived, refused
from recon.config import Settings
from recon.errors import InputRefused
from recon.profiles import OPTIONAL_COLUMNS, SETTLEMENT_COLUMNS, Constant, Profile, Profiles
from recon.sources.csvfile import read_csv
from recon.sources.filebytes import read_bytes
from recon.sources.native.completeness import Facts, prove, side_file
from recon.sources.native.text import NativeFileError, unwrap
from recon.sources.native.values import settlement_spec
from recon.sources.rawtable import RawTable, empty_rejects
from recon.timetext import expand_date


@dataclass
class Parsed:
    """One native file read with its profile: validated rows and the facts its proof checks."""

    validated: v.Validated
    raw: RawTable
    facts: Facts
    display: str


def settlement_jobs(day_dir: Path, context: v.RuleContext, settings: Settings,
                    profiles: Profiles):
    """(gateway, path shown, job, arguments) for each profiled gateway with a file of the day."""
    jobs = []
    for profile in profiles.by_gateway.values():
        matches = matching_files(profile, day_dir, context.business_date)
        if not matches:
            continue
        if len(matches) > 1:
            jobs.append((profile.gateway, matches[0], NotArrived,
                         (f"refused: files {', '.join(path.name for path in matches)} all match "
                          f"the {profile.gateway} profile's files = {profile.file_pattern()!r}; "
                          f"keep exactly one",)))
            continue
        jobs.append((profile.gateway, matches[0], _job, (profile, matches[0], context, settings)))
    return jobs


def matching_files(profile: Profile, day_dir: Path, business_date: dt.date) -> list[Path]:
    pattern = expand_date(profile.file_pattern(), business_date)
    try:
        names = sorted(path for path in day_dir.iterdir() if fnmatch.fnmatchcase(path.name, pattern)
                       and path.is_file())
    except OSError:
        return []
    if profile.completeness.method in ("ctl", "marker"):  # the proofs are not data files
        proofs = {side_file(profile, path, business_date).name for path in names}
        names = [path for path in names if path.name not in proofs]
    return names


def _job(profile: Profile, path: Path, context: v.RuleContext,
         settings: Settings) -> tuple[v.Validated, Arrived] | NotArrived:
    """The file's validated rows with the proof that it is complete, or why it has not arrived."""
    try:
        data = read_bytes(path, path.name, settings.max_file_bytes)
    except InputRefused as exc:
        return refused(exc)
    digest = hashlib.sha256(data).hexdigest()
    try:
        parsed = parse(profile, path, data, context, settings)
    except (NativeFileError, InputRefused) as exc:
        return refused(exc, digest)
    verdict = prove(profile, path, digest, parsed.facts, context.business_date)
    return verdict if isinstance(verdict, NotArrived) else (parsed.validated, verdict)


def _cost_per_byte(profile: Profile, path: Path, *_) -> float:
    """Relative to a contract CSV: XML is read element by element in Python; a compressed
    file holds several times its size."""
    cost = 8.0 if profile.format in ("pain.002", "camt.054") else 1.0
    return cost * (8.0 if path.suffix.lower() in (".gz", ".gzip", ".zip") else 1.0)


_job.cost_per_byte = _cost_per_byte


def parse(profile: Profile, path: Path, data: bytes, context: v.RuleContext,
          settings: Settings) -> Parsed:
    """Read `data` (the bytes of `path`) with `profile`: NativeFileError if it cannot be read."""
    display, inner = unwrap(data, path.name, profile.member, settings.max_file_bytes)
    spec = settlement_spec(profile)
    facts = Facts(records=0, totals={})
    if profile.format == "contract":
        raw = read_csv(path, display, encoding=profile.encoding,
                       max_bytes=settings.max_file_bytes, max_field_chars=settings.max_field_chars,
                       max_columns=settings.max_columns, block_bytes=settings.csv_block_bytes,
                       data=inner)
        raw = RawTable(raw.file, _contract_columns(raw.frame, profile, display), raw.lines,
                       raw.records, raw.broken, raw.flawed)
    elif profile.format in ("delimited", "fixed_width"):
        if profile.format == "delimited":
            from recon.sources.native.delimited import read_delimited

            fields = read_delimited(inner, profile, display, settings.max_field_chars,
                                    settings.csv_block_bytes)
        else:
            from recon.sources.native.fixedwidth import read_fixed_width

            fields = read_fixed_width(inner, profile, display)
        frame = _mapped(profile, lambda source, column: fields.find(source, column, display),
                        len(fields.lines))
        broken = pd.DataFrame(fields.broken) if fields.broken else empty_rejects()
        raw = RawTable(display, frame, fields.lines, fields.records, broken)
        facts.other_text = fields.other_text
    else:
        from recon.sources.native.iso20022 import read_iso20022

        records = read_iso20022(inner, profile, display)
        raw = records.raw
        facts.message_checks = records.checks
        facts.message_counts = records.has_counts
    validated = filerules.validate(raw, spec, context)
    if profile.format in ("pain.002", "camt.054"):
        validated = records.locate(validated)
    facts.records = raw.records
    facts.totals = _totals(raw, validated, spec, context)
    return Parsed(validated, raw, facts, display)


def _contract_columns(frame: pd.DataFrame, profile: Profile, display: str) -> pd.DataFrame:
    """A contract CSV under a profile: its own columns, or those the profile renames."""
    columns = {}
    for column in SETTLEMENT_COLUMNS:
        source = profile.columns.get(column, column)
        if isinstance(source, Constant):
            columns[column] = pd.Series(source.constant, index=frame.index, dtype="str")
            continue
        name = str(source).strip().lower()
        if name not in frame.columns:
            if column in OPTIONAL_COLUMNS and column not in profile.columns:
                columns[column] = pd.Series("", index=frame.index, dtype="str")
                continue
            raise NativeFileError(f"{display}, line 1: no column {str(source)!r} "
                                  f"(columns.{column}) in the header")
        if list(frame.columns).count(name) > 1:
            raise NativeFileError(f"{display}, line 1: column {name!r} appears more than once "
                                  f"in the header")
        columns[column] = frame[name]
    return pd.DataFrame(columns, index=frame.index)


def _mapped(profile: Profile, find, n_rows: int) -> pd.DataFrame:
    """The seven settlement columns from the file's fields, as the profile's [columns] says."""
    columns: dict[str, pd.Series] = {}
    for column in SETTLEMENT_COLUMNS:
        source = profile.columns.get(column)
        if column == "status" and profile.status.constant:
            source = Constant(constant=profile.status.constant)
        elif column == "status" and source is None and profile.lists == "success_only":
            source = Constant(constant="SUCCESS")
        if source is None:
            if column not in OPTIONAL_COLUMNS:
                raise NativeFileError(f"the profile gives no source for {column}")
            columns[column] = pd.Series([""] * n_rows, dtype="str")
        elif isinstance(source, Constant):
            columns[column] = pd.Series([source.constant] * n_rows, dtype="str")
        elif isinstance(source, list):
            parts = [pa.array(find(part, column)).cast(pa.large_string()) for part in source]
            joined = pc.binary_join_element_wise(*parts, pa.scalar(" ", pa.large_string()))
            columns[column] = pd.Series(pc.utf8_trim_whitespace(joined).to_pandas().array,
                                        dtype="str")
        else:
            columns[column] = find(source, column).reset_index(drop=True)
    return pd.DataFrame(columns)


def _totals(raw: RawTable, validated: v.Validated, spec: v.FileSpec,
            context: v.RuleContext) -> dict[str, set[int]]:
    """Sums (fen) a sender may have meant: over every row whose amount parses (rows rejected for
    another field included: the sender counted them), or over the valid rows only."""
    frame = raw.frame
    checks = {check.column: check for check in spec.checks}
    fen, parses = checks["amount"].parse(frame["amount"], context)
    status, _ = checks["status"].parse(frame["status"], context)
    success = (status == "SUCCESS").to_numpy(bool)
    parses = parses.to_numpy(bool)
    amounts = fen.to_numpy(np.int64)
    valid = validated.valid
    valid_amounts = valid["amount"].to_numpy(np.int64)
    return {
        "success": {int(amounts[parses & success].sum()),
                    int(valid_amounts[(valid["status"] == "SUCCESS").to_numpy(bool)].sum())},
        "all": {int(amounts[parses].sum()), int(valid_amounts.sum())},
    }


@dataclass
class SampleCheck:
    """What `recon gateways check` shows: the records as recon reads them, the verdict, problems."""

    display: str
    records: pd.DataFrame  # the valid rows, typed
    rows_read: int
    rejects: pd.DataFrame
    verdict: str  # "complete: ..." or why not
    complete: bool
    refused: str = ""  # the file could not be read at all


def check_sample(profile: Profile, path: Path, business_date: dt.date | None,
                 settings: Settings) -> SampleCheck:
    """Read one sample file with `profile` the way a night's run would."""
    context = v.RuleContext(business_date or dt.date.today(), settings.tz)
    empty = pd.DataFrame()
    try:
        data = read_bytes(path, path.name, settings.max_file_bytes)
        parsed = parse(profile, path, data, context, settings)
    except (NativeFileError, InputRefused) as exc:
        return SampleCheck(path.name, empty, 0, empty_rejects(), "", False, str(exc))
    digest = hashlib.sha256(data).hexdigest()
    verdict = prove(profile, path, digest, parsed.facts, business_date)
    complete = isinstance(verdict, Arrived)
    return SampleCheck(parsed.display, parsed.validated.valid, parsed.validated.rows_read,
                       parsed.validated.rejects, verdict.verdict if complete else verdict.reason,
                       complete)
