"""Load one business date's inbox (CONTRACT section 2): files -> validated frames + rejects.

No decisions are made here. The result says, per file, how many rows were read, used, collapsed
as duplicates and rejected, and which settlement files count as not arrived and why.
"""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import logging
import os
import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pandas as pd

from recon import validate as v
from recon.codes import CodeMap, normalise_scheme
from recon.config import Settings
from recon.errors import InputRefused
from recon.profiles import Profiles, load_profiles
from recon.protect import mask_cards_in_text
from recon.sources import filebytes
from recon.sources.csvfile import read_csv
from recon.sources.filebytes import read_bytes
from recon.sources.rawtable import RawTable
from recon.timetext import expand_date

log = logging.getLogger("recon")

REQUIRED_FILES = (v.INSTALLMENTS, v.BINDINGS, v.INSTRUCTIONS)
MAX_CONTROL_BYTES = 1 << 20


@dataclass
class FileLedger:
    """How every data row of one input file was accounted for."""

    file: str
    rows_read: int
    rows_used: int
    duplicates_collapsed: int
    rows_rejected: int
    sha256: str
    refused: str = ""  # why a settlement file counts as not arrived
    fields_cut: int = 0  # over-long free-text fields cut to RECON_MAX_FIELD_CHARS


@dataclass
class SettlementRefusal:
    gateway: str
    file: str
    reason: str


@dataclass
class DayInputs:
    business_date: dt.date
    installments: pd.DataFrame
    bindings: pd.DataFrame
    instructions: pd.DataFrame
    settlements: pd.DataFrame  # rows of arrived files, with `gateway`, `scheme`, `file`
    incidents: pd.DataFrame
    arrived_gateways: set[str]  # normalised (upper-case) gateway ids whose file arrived
    refusals: list[SettlementRefusal] = field(default_factory=list)
    rejects: pd.DataFrame = field(default_factory=pd.DataFrame)
    ledger: list[FileLedger] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.refusals


def gateway_key(gateway: pd.Series | str):
    return gateway.str.upper() if isinstance(gateway, pd.Series) else gateway.upper()


def load_day(business_date: dt.date, settings: Settings, codes: CodeMap,
             profiles: Profiles | None = None) -> DayInputs:
    """Read and validate everything in `INBOX/<D>/`. Raises InputRefused when the run must fail.

    `profiles`: the gateway profiles (default: those of settings.profiles)."""
    if profiles is None:
        profiles = load_profiles(settings.profiles)
    day_dir = settings.inbox / business_date.isoformat()
    _check_listable(day_dir)
    if not day_dir.is_dir():
        state = "is not a folder" if day_dir.exists() else "does not exist"
        raise InputRefused(f"inbox folder {day_dir} {state}",
                           next_step="check --inbox and --date, or wait for the upstream drop")
    context = v.RuleContext(business_date, settings.tz)
    incidents_path = day_dir / v.INCIDENTS.name
    specs = list(REQUIRED_FILES) + ([v.INCIDENTS] if incidents_path.is_file() else [])
    present = [spec for spec in specs if (day_dir / spec.name).is_file()]

    # Files are read side by side: parsing and validating run in Arrow kernels that release the
    # GIL. The largest start first, so no thread is left with a big file at the end. Results are
    # taken in the serial order, so the same file's refusal is the one raised.
    pool = ThreadPoolExecutor(max_workers=settings.worker_threads, thread_name_prefix="recon-load")
    try:
        settlement_jobs = _settlement_jobs(day_dir, context, settings, codes, profiles)
        work = [(day_dir / spec.name, _load_file, (day_dir / spec.name, spec, context, settings))
                for spec in present]
        work += [(csv_path, function, args) for _, csv_path, function, args in settlement_jobs]
        started = {path: pool.submit(function, *args) for path, function, args in
                   sorted(work, key=lambda item: _cost(*item), reverse=True)}
        pending = {spec.name: started[day_dir / spec.name] for spec in present}
        settlement_jobs = [(gateway, csv_path, started[csv_path])
                           for gateway, csv_path, _, _ in settlement_jobs]
        loaded: dict[str, v.Validated] = {}
        ledger: list[FileLedger] = []
        for spec in specs:  # in file order: the first file with a problem is the one named
            if spec.name not in pending:
                _refuse_missing(day_dir / spec.name)
            validated, digest = pending[spec.name].result()
            _check_reject_rate(validated, settings)
            loaded[spec.name] = validated
            ledger.append(_ledger(validated, digest))
        incidents = loaded[v.INCIDENTS.name].valid if v.INCIDENTS.name in loaded \
            else _empty_incidents()

        instructions = loaded[v.INSTRUCTIONS.name].valid
        expected = set(gateway_key(pd.Series(
            instructions.loc[instructions["sent_at"].notna(), "gateway"].unique())))
        settlements, arrived, refusals, settlement_rejects, settlement_ledger = \
            _gather_settlements(settlement_jobs, expected, settings,
                                lambda gateway: _expected_file(profiles, gateway, business_date))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    ledger.extend(settlement_ledger)

    rejects = pd.concat([validated.rejects for validated in loaded.values()] + settlement_rejects
                        + [_refusal_rejects(refusals)], ignore_index=True)
    return DayInputs(
        business_date=business_date,
        installments=loaded[v.INSTALLMENTS.name].valid,
        bindings=loaded[v.BINDINGS.name].valid,
        instructions=instructions,
        settlements=settlements,
        incidents=incidents,
        arrived_gateways=arrived,
        refusals=refusals,
        rejects=rejects,
        ledger=ledger,
    )


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


def _refuse_missing(path: Path) -> None:
    if path.exists():  # a folder, a device, a FIFO: nothing to read as a CSV
        raise InputRefused("required file is not a regular file", file=_shown(path),
                           next_step="replace it with the CSV export, then rerun the date")
    raise InputRefused("required file is missing", file=_shown(path),
                       next_step="wait for the upstream drop, then rerun the date")


def _shown(path: Path) -> str:
    return path.name


def _load_file(path: Path, spec: v.FileSpec, context: v.RuleContext, settings: Settings,
               *, encoding: str = "utf-8", data: bytes | None = None) -> tuple[v.Validated, str]:
    display = _shown(path)
    if data is None:
        data = read_bytes(path, display, settings.max_file_bytes)
    raw = read_csv(path, display, encoding=encoding, max_bytes=settings.max_file_bytes,
                   max_field_chars=settings.max_field_chars, max_columns=settings.max_columns,
                   block_bytes=settings.csv_block_bytes, data=data, columns=spec.columns,
                   cuttable=spec.cuttable)
    _require_columns(raw, spec)
    return v.validate(raw, spec, context), hashlib.sha256(data).hexdigest()


def _require_columns(raw: RawTable, spec: v.FileSpec) -> None:
    missing = v.missing_columns(raw, spec)
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
    duplicated = v.duplicated_columns(raw, spec)
    if duplicated:
        raise InputRefused(f"column(s) appear more than once in the header: {', '.join(duplicated)}",
                           file=raw.file, line=1, column=duplicated[0],
                           next_step="ask the sender to fix the header")


def _check_reject_rate(validated: v.Validated, settings: Settings) -> None:
    if validated.rows_read == 0:
        return
    rate = validated.rows_rejected / validated.rows_read
    if rate > settings.max_reject_rate:
        first = validated.rejects.iloc[0]
        cause, next_step = _likely_cause(validated.rejects)
        raise InputRefused(
            f"{validated.rows_rejected} of {validated.rows_read} rows rejected ({rate:.1%}), over "
            f"the {settings.max_reject_rate:.1%} limit; first: line {first['line']}, column "
            f"{first['column'] or '-'}: {first['reason']}{cause}",
            file=validated.file,
            next_step=next_step or "fix the upstream file, or rerun with a higher "
                                   "--max-reject-rate if the rows may really be left out")


def _likely_cause(rejects: pd.DataFrame) -> tuple[str, str]:
    """What a file with mostly one kind of reject probably is, and what to do about it."""
    most = len(rejects) / 2
    bad_bytes = rejects["reason"].str.startswith(filebytes.BAD_BYTES_REASON)
    if bad_bytes.sum() > most:
        return ("; the file does not look like UTF-8 (GB18030?)",
                "a settlement file declares its encoding in its .ctl (encoding=gb18030); "
                "the other files must be UTF-8: ask the sender to fix the file or its .ctl")
    due = rejects.loc[rejects["column"] == "due_date", "value"]
    if len(due) > most:
        return (mask_cards_in_text(f"; most rows are due {due.value_counts().index[0]}: these "
                                   f"look like another date's files"),
                "put each date's files in its own inbox folder, then rerun the date")
    return "", ""


def _ledger(validated: v.Validated, digest: str, refused: str = "") -> FileLedger:
    if validated.fields_cut:
        first = validated.cut.iloc[0]
        log.warning("%s, line %d, column %s: over-long free-text field (%s characters) cut to "
                    "RECON_MAX_FIELD_CHARS, its row kept; %d such field(s) in the file",
                    validated.file, int(first["line"]), first["column"],
                    f"{int(first['length']):,}", validated.fields_cut)
    return FileLedger(validated.file, validated.rows_read, validated.rows_used,
                      validated.duplicates_collapsed, validated.rows_rejected, digest, refused,
                      validated.fields_cut)


# --- settlement files -------------------------------------------------------------------------

class _NotArrived(Exception):
    def __init__(self, reason: str, digest: str = "") -> None:
        super().__init__(reason)
        self.reason = mask_cards_in_text(reason)  # the reason quotes the .ctl's own text
        self.digest = digest


def _settlement_jobs(day_dir: Path, context: v.RuleContext, settings: Settings, codes: CodeMap,
                     profiles: Profiles):
    """Every settlement file of the day, by file name: (gateway, csv path, job, job's arguments).

    A job's result is (validated, digest, scheme), or the _NotArrived saying why not. A gateway
    with a profile is read through it (recon.sources.native), not as settlement_<G>.csv + .ctl.
    """
    from recon.sources import native

    stems = {path.stem for path in day_dir.glob("settlement_*.csv") if path.is_file()}
    stems |= {path.stem for path in day_dir.glob("settlement_*.ctl") if path.is_file()}
    stems = {stem for stem in stems if profiles.get(stem[len("settlement_"):]) is None}
    by_gateway: dict[str, list[str]] = {}
    for stem in stems:
        by_gateway.setdefault(gateway_key(stem[len("settlement_"):]), []).append(stem)
    jobs = []
    for stem in sorted(stems):
        gateway = stem[len("settlement_"):]
        csv_path, ctl_path = day_dir / f"{stem}.csv", day_dir / f"{stem}.ctl"
        namesakes = sorted(by_gateway[gateway_key(gateway)])
        if len(namesakes) > 1:  # refused without reading: the job only makes the _NotArrived
            jobs.append((gateway, csv_path, _NotArrived,
                         (f"refused: files {', '.join(namesakes)} name the same gateway "
                          f"{gateway!r}; keep exactly one",)))
        else:
            jobs.append((gateway, csv_path, _settlement_or_refusal,
                         (gateway, csv_path, ctl_path, context, settings, codes)))
    return jobs + native.settlement_jobs(day_dir, context, settings, profiles)


def _cost(path: Path, function, args) -> float:
    """A job's expected work: its file's size, times a reader's cost per byte (an XML or a
    compressed native file costs several times a CSV's: it starts first)."""
    per_byte = getattr(function, "cost_per_byte", None)
    return _size(path) * (per_byte(*args) if per_byte else 1)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _settlement_or_refusal(*args):
    try:
        return _load_settlement(*args)
    except _NotArrived as refusal:
        return refusal


def _expected_file(profiles: Profiles, gateway: str, business_date: dt.date) -> tuple[str, str]:
    """(file name, what is missing) for a gateway whose file is not there."""
    profile = profiles.get(gateway)
    if profile is None:
        return f"settlement_{gateway}.csv", "no settlement file"
    pattern = expand_date(profile.file_pattern(), business_date)
    return pattern, f"no file matching {pattern!r} (its profile {profile.source.name})"


def _gather_settlements(jobs: list[tuple[str, Path, Future]], expected: set[str],
                        settings: Settings, expected_file=None):
    frames: list[pd.DataFrame] = []
    arrived: set[str] = set()
    refusals: list[SettlementRefusal] = []
    rejects: list[pd.DataFrame] = []
    ledger: list[FileLedger] = []
    for gateway, csv_path, job in jobs:
        result = job.result()
        if isinstance(result, _NotArrived):
            refusals.append(SettlementRefusal(gateway, csv_path.name, result.reason))
            if csv_path.is_file():
                ledger.append(FileLedger(csv_path.name, 0, 0, 0, 0, result.digest,
                                         result.reason))
            continue
        validated, digest, scheme = result
        _check_reject_rate(validated, settings)
        frame = validated.valid
        frame["gateway"] = gateway
        frame["scheme"] = scheme
        frame["file"] = validated.file
        frames.append(frame)
        rejects.append(validated.rejects)
        ledger.append(_ledger(validated, digest))
        arrived.add(gateway_key(gateway))
    for gateway in sorted(expected - arrived - {gateway_key(r.gateway) for r in refusals}):
        name, missing = expected_file(gateway) if expected_file else \
            (f"settlement_{gateway}.csv", "no settlement file")
        refusals.append(SettlementRefusal(
            gateway, name,
            f"not arrived: {missing} for gateway {gateway}, which has sent instructions"))
    settlements = pd.concat(frames, ignore_index=True) if frames else _empty_settlements()
    return settlements, arrived, refusals, rejects, ledger


def _load_settlement(gateway: str, csv_path: Path, ctl_path: Path, context: v.RuleContext,
                     settings: Settings, codes: CodeMap):
    """The validated rows of one settlement file whose .ctl vouches for it; else _NotArrived."""
    if not ctl_path.is_file():
        raise _NotArrived(f"not arrived: control file {ctl_path.name} is missing")
    if not csv_path.is_file():
        raise _NotArrived(f"not arrived: {ctl_path.name} is there but {csv_path.name} is missing")
    control = _read_control(ctl_path)
    declared_gateway = control.get("gateway", "")
    if gateway_key(declared_gateway) != gateway_key(gateway):
        raise _NotArrived(f"refused: {ctl_path.name} names gateway {declared_gateway!r}, "
                          f"not {gateway!r}")
    declared_date = control.get("business_date", "")
    if declared_date != context.business_date.isoformat():
        raise _NotArrived(f"refused: {ctl_path.name} is for business date {declared_date!r}, "
                          f"not {context.business_date.isoformat()}")
    scheme = normalise_scheme(control.get("scheme", ""))
    if not codes.knows_scheme(scheme):
        raise _NotArrived(f"refused: {ctl_path.name} declares unknown scheme {scheme!r} "
                          f"(known: {', '.join(sorted(codes.schemes))})")
    encoding = control.get("encoding", "") or "utf-8"
    if not is_text_encoding(encoding):
        raise _NotArrived(f"refused: {ctl_path.name} declares unknown encoding {encoding!r}")
    declared_records, declared_total = _declared_counts(control, ctl_path.name)

    try:
        data = read_bytes(csv_path, csv_path.name, settings.max_file_bytes)
    except InputRefused as exc:
        raise _NotArrived(f"refused: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    declared_digest = control.get("sha256", "").lower()
    if declared_digest and declared_digest != digest:
        raise _NotArrived(f"refused: sha256 of {csv_path.name} is {digest}, {ctl_path.name} "
                          f"declares {declared_digest}", digest)
    try:
        raw = read_csv(csv_path, csv_path.name, encoding=encoding,
                       max_bytes=settings.max_file_bytes, max_field_chars=settings.max_field_chars,
                       max_columns=settings.max_columns, block_bytes=settings.csv_block_bytes,
                       data=data, columns=v.SETTLEMENT.columns, cuttable=v.SETTLEMENT.cuttable)
        _require_columns(raw, v.SETTLEMENT)
    except InputRefused as exc:
        misread = "" if filebytes.is_utf8(encoding) or exc.line != 1 else \
            f" (read as {encoding}, the encoding {ctl_path.name} declares: is it the right one?)"
        raise _NotArrived(f"refused: {exc}{misread}", digest) from None
    if raw.records != declared_records:
        raise _NotArrived(f"refused: {csv_path.name} has {raw.records} data rows, "
                          f"{ctl_path.name} declares {declared_records}", digest)
    validated = v.validate(raw, v.SETTLEMENT, context)
    totals = success_totals(raw, validated)
    if declared_total not in totals:
        raise _NotArrived(f"refused: SUCCESS rows of {csv_path.name} total {min(totals):.2f}, "
                          f"{ctl_path.name} declares {declared_total}", digest)
    return validated, digest, scheme


RECORDS = re.compile(r"[0-9]{1,18}", re.ASCII)
TOTAL = re.compile(r"[0-9]{1,18}(?:\.[0-9]{1,2})?", re.ASCII)


def _declared_counts(control: dict[str, str], ctl_name: str) -> tuple[int, Decimal]:
    """records= and amount_total= as the contract writes them: `48213`, `3150432.17`.

    Only plain digits: int() and Decimal() would also take `1_000`, Arabic-Indic digits, `1e3`,
    `NaN`, `Infinity` and `sNaN` (which cannot even be compared).
    """
    records, total = control.get("records", ""), control.get("amount_total", "")
    if not RECORDS.fullmatch(records) or not TOTAL.fullmatch(total):
        raise _NotArrived(f"refused: {ctl_name} needs records= as a whole number and "
                          f"amount_total= as a plain decimal with at most 2 places, found "
                          f"records={records!r}, amount_total={total!r}")
    return int(records), Decimal(total)


def _read_control(ctl_path: Path) -> dict[str, str]:
    try:
        return parse_control(read_bytes(ctl_path, ctl_path.name, MAX_CONTROL_BYTES))
    except InputRefused as exc:
        if isinstance(exc.__cause__, PermissionError):
            raise  # there but not ours to read: the date is refused, not the file not arrived
        raise _NotArrived(f"refused: control file {ctl_path.name} unreadable: "
                          f"{exc.message}") from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise _NotArrived(f"refused: control file {ctl_path.name} unreadable: {exc}") from None


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


def success_totals(raw: RawTable, validated: v.Validated) -> set[Decimal]:
    """Totals a sender may have meant: over every SUCCESS row whose amount parses, or valid ones.

    "Every row" includes rows rejected for one bad field (bad bytes, say): the sender counted them.
    """
    rows = pd.concat([raw.frame, raw.flawed], ignore_index=True) if len(raw.flawed) else raw.frame
    success = rows["status"].str.upper() == "SUCCESS"
    fen, parses = v.amount_fen(rows["amount"], None)
    every_row = int(fen[success & parses].sum())
    valid = validated.valid
    valid_rows = int(valid.loc[valid["status"] == "SUCCESS", "amount"].sum())
    return {Decimal(every_row) / 100, Decimal(valid_rows) / 100}


def parse_control(data: bytes) -> dict[str, str]:
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


def _refusal_rejects(refusals: list[SettlementRefusal]) -> pd.DataFrame:
    return pd.DataFrame({
        "file": [refusal.file for refusal in refusals],
        "line": pd.array([None] * len(refusals), dtype="Int64"),
        "column": "",
        "value": "",
        "reason": [refusal.reason for refusal in refusals],
    })


def _empty_settlements() -> pd.DataFrame:
    frame = pd.DataFrame({
        "gateway_txn_id": pd.Series(dtype="str"), "instruction_id": pd.Series(dtype="str"),
        "amount": pd.Series(dtype="int64"), "status": pd.Series(dtype="str"),
        "response_code": pd.Series(dtype="str"), "response_msg": pd.Series(dtype="str"),
        "txn_time": pd.Series(dtype="datetime64[ns, UTC]"), "line": pd.Series(dtype="int64"),
        "gateway": pd.Series(dtype="str"), "scheme": pd.Series(dtype="str"),
        "file": pd.Series(dtype="str"),
    })
    return frame


def _empty_incidents() -> pd.DataFrame:
    return pd.DataFrame({
        "gateway": pd.Series(dtype="str"),
        "started_at": pd.Series(dtype="datetime64[ns, UTC]"),
        "ended_at": pd.Series(dtype="datetime64[ns, UTC]"),
        "description": pd.Series(dtype="str"),
        "line": pd.Series(dtype="int64"),
    })
