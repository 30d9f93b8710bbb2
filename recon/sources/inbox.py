"""Read one business date's inbox (CONTRACT section 2): its files as tables, its .ctl files.

Sources read and report; they do not decide. A file is read into trimmed strings with the line
of each row (recon.sources.csvfile) and its digest; a settlement file's .ctl is read and handed
to recon.arrival, which says whether the file arrived. recon.intake validates what was read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from recon import arrival, filerules
from recon import validate as v
from recon.arrival import Declared, NotArrived, gateway_key
from recon.codes import CodeMap
from recon.config import Settings
from recon.errors import InputRefused
from recon.profiles import Profiles
from recon.sources import filebytes
from recon.sources.csvfile import read_csv
from recon.sources.filebytes import read_bytes
from recon.sources.rawtable import RawTable
from recon.timetext import expand_date

MAX_CONTROL_BYTES = 1 << 20


def check_folder(day_dir: Path) -> None:
    """Refuse the date when its inbox folder is not there, is not a folder or cannot be read."""
    _check_listable(day_dir)
    if not day_dir.is_dir():
        state = "is not a folder" if day_dir.exists() else "does not exist"
        raise InputRefused(f"inbox folder {day_dir} {state}",
                           next_step="check --inbox and --date, or wait for the upstream drop")


def _check_listable(day_dir: Path) -> None:
    """Refuse the date when its inbox folder cannot be listed or its files cannot be looked at
    (no read or search permission): a file that is there would otherwise pass for missing, and
    a settlement file for not arrived, replacing complete results by `pending`."""
    try:
        os.stat(day_dir)
    except FileNotFoundError:
        return  # said below: the folder does not exist
    except OSError as exc:
        raise _unreadable_folder(day_dir, exc) from None
    if not day_dir.is_dir():
        return
    try:
        with os.scandir(day_dir) as entries:
            for entry in entries:
                try:
                    entry.stat()
                except FileNotFoundError:
                    pass  # a dangling link: treated as the missing file it stands for
    except OSError as exc:
        raise _unreadable_folder(day_dir, exc) from None


def _unreadable_folder(day_dir: Path, exc: OSError) -> InputRefused:
    return InputRefused(f"inbox folder {day_dir} cannot be read: {exc.strerror or exc}",
                        next_step="give the recon user read and search (r-x) permission on the "
                                  "folder and its files, then rerun the date")


def refuse_missing(path: Path) -> None:
    if path.exists():  # a folder, a device, a FIFO: nothing to read as a CSV
        raise InputRefused("required file is not a regular file", file=_shown(path),
                           next_step="replace it with the CSV export, then rerun the date")
    raise InputRefused("required file is missing", file=_shown(path),
                       next_step="wait for the upstream drop, then rerun the date")


def _shown(path: Path) -> str:
    return path.name


def read_file(path: Path, spec: v.FileSpec, settings: Settings) -> tuple[RawTable, str]:
    """A contract CSV as trimmed strings with its lines, and the sha256 of its bytes."""
    display = _shown(path)
    data = read_bytes(path, display, settings.max_file_bytes)
    return _read_table(path, spec, settings, data, "utf-8"), hashlib.sha256(data).hexdigest()


def _read_table(path: Path, spec: v.FileSpec, settings: Settings, data: bytes,
                encoding: str) -> RawTable:
    raw = read_csv(path, path.name, encoding=encoding, max_bytes=settings.max_file_bytes,
                   max_field_chars=settings.max_field_chars, max_columns=settings.max_columns,
                   block_bytes=settings.csv_block_bytes, data=data, columns=spec.columns,
                   cuttable=spec.cuttable)
    _require_columns(raw, spec)
    return raw


def _require_columns(raw: RawTable, spec: v.FileSpec) -> None:
    missing = filerules.missing_columns(raw, spec)
    if missing:
        names = list(raw.header or raw.frame.columns)
        separator = next((sep for sep in ";|\t" if len(names) == 1 and sep in names[0]), None)
        if separator:
            raise InputRefused(f"the header does not split on commas; the file looks "
                               f"{separator!r}-separated", file=raw.file, line=1,
                               next_step="ask the sender for a comma-separated export")
        raise InputRefused(f"required column(s) missing: {', '.join(missing)}", file=raw.file,
                           line=1, column=missing[0],
                           next_step="ask the sender for the file with the contract's columns")
    duplicated = filerules.duplicated_columns(raw, spec)
    if duplicated:
        raise InputRefused(f"column(s) appear more than once in the header: {', '.join(duplicated)}",
                           file=raw.file, line=1, column=duplicated[0],
                           next_step="ask the sender to fix the header")


# --- settlement files -------------------------------------------------------------------------

@dataclass(frozen=True)
class SettlementRead:
    """A contract settlement file read after its .ctl's own checks passed."""

    raw: RawTable
    digest: str
    declared: Declared


def settlement_files(day_dir: Path, profiles: Profiles):
    """The day's settlement_<G>.csv/.ctl pairs of gateways without a profile, by file name:
    (gateway, csv path, ctl path, the NotArrived of files naming one gateway, else None)."""
    stems = {path.stem for path in day_dir.glob("settlement_*.csv") if path.is_file()}
    stems |= {path.stem for path in day_dir.glob("settlement_*.ctl") if path.is_file()}
    stems = {stem for stem in stems if profiles.get(stem[len("settlement_"):]) is None}
    by_gateway: dict[str, list[str]] = {}
    for stem in stems:
        by_gateway.setdefault(gateway_key(stem[len("settlement_"):]), []).append(stem)
    files = []
    for stem in sorted(stems):
        gateway = stem[len("settlement_"):]
        namesakes = sorted(by_gateway[gateway_key(gateway)])
        refusal = arrival.namesakes_refused(namesakes, gateway) if len(namesakes) > 1 else None
        files.append((gateway, day_dir / f"{stem}.csv", day_dir / f"{stem}.ctl", refusal))
    return files


def cost(path: Path, function, args) -> float:
    """A job's expected work: its file's size, times a reader's cost per byte (an XML or a
    compressed native file costs several times a CSV's: it starts first)."""
    per_byte = getattr(function, "cost_per_byte", None)
    return _size(path) * (per_byte(*args) if per_byte else 1)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def expected_file(profiles: Profiles, gateway: str, business_date: dt.date) -> tuple[str, str]:
    """(file name, what is missing) for a gateway whose file is not there."""
    profile = profiles.get(gateway)
    if profile is None:
        return f"settlement_{gateway}.csv", "no settlement file"
    pattern = expand_date(profile.file_pattern(), business_date)
    return pattern, f"no file matching {pattern!r} (its profile {profile.source.name})"


def read_settlement(gateway: str, csv_path: Path, ctl_path: Path, business_date: dt.date,
                    settings: Settings, codes: CodeMap) -> SettlementRead | NotArrived:
    """Read a settlement file as far as its .ctl vouches for it; recon.arrival decides each
    step. Raises InputRefused only when the .ctl is there but not ours to read."""
    missing = arrival.pair_missing(csv_path.name, ctl_path.name, csv_path.is_file(),
                                   ctl_path.is_file())
    if missing is not None:
        return missing
    control = _read_control(ctl_path)
    if isinstance(control, NotArrived):
        return control
    declared = arrival.declared(gateway, ctl_path.name, control, business_date.isoformat(),
                                codes)
    if isinstance(declared, NotArrived):
        return declared
    try:
        data = read_bytes(csv_path, csv_path.name, settings.max_file_bytes)
    except InputRefused as exc:
        return arrival.refused(exc)
    digest = hashlib.sha256(data).hexdigest()
    differs = arrival.digest_differs(declared, csv_path.name, digest)
    if differs is not None:
        return differs
    try:
        raw = _read_table(csv_path, v.SETTLEMENT, settings, data, declared.encoding)
    except InputRefused as exc:
        return arrival.unreadable(declared, exc, exc.line, digest,
                                  filebytes.is_utf8(declared.encoding))
    return SettlementRead(raw, digest, declared)


def _read_control(ctl_path: Path) -> dict[str, str] | NotArrived:
    try:
        data = read_bytes(ctl_path, ctl_path.name, MAX_CONTROL_BYTES)
    except InputRefused as exc:
        if isinstance(exc.__cause__, PermissionError):
            raise  # there but not ours to read: the date is refused, not the file not arrived
        return arrival.control_unreadable(ctl_path.name, exc.message)
    return arrival.control_of(ctl_path.name, data)
