"""The load step of a run (CONTRACT section 2): read a date's files, validate them, decide arrival.

The pipeline calls `load_day`, which puts the three together: recon.sources reads each file and
its .ctl (bytes, CSV, native formats), recon.filerules applies the row rules and the reject-rate
limit, recon.arrival says which settlement files arrived and which were expected. Files are read
and validated side by side on a thread pool; their results are taken in file order, so the
first file with a problem is the one named. No decisions are made about installments here.
"""

from __future__ import annotations

import datetime as dt
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from recon import arrival, filerules
from recon import validate as v
from recon.arrival import Arrived, NotArrived, SettlementRefusal
from recon.codes import CodeMap
from recon.config import Settings
from recon.profiles import Profiles, load_profiles
from recon.sources import inbox, native

log = logging.getLogger("recon")

REQUIRED_FILES = (v.INSTALLMENTS, v.BINDINGS, v.INSTRUCTIONS)


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


def load_day(business_date: dt.date, settings: Settings, codes: CodeMap,
             profiles: Profiles | None = None) -> DayInputs:
    """Read and validate everything in `INBOX/<D>/`. Raises InputRefused when the run must fail.

    `profiles`: the gateway profiles (default: those of settings.profiles)."""
    if profiles is None:
        profiles = load_profiles(settings.profiles)
    day_dir = settings.inbox / business_date.isoformat()
    inbox.check_folder(day_dir)
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
        work = [(day_dir / spec.name, _validated_file, (day_dir / spec.name, spec, context,
                                                        settings)) for spec in present]
        work += [(path, function, args) for _, path, function, args in settlement_jobs]
        started = {path: pool.submit(function, *args) for path, function, args in
                   sorted(work, key=lambda item: inbox.cost(*item), reverse=True)}
        pending = {spec.name: started[day_dir / spec.name] for spec in present}
        settlement_jobs = [(gateway, path, started[path])
                           for gateway, path, _, _ in settlement_jobs]
        loaded: dict[str, v.Validated] = {}
        ledger: list[FileLedger] = []
        for spec in specs:  # in file order: the first file with a problem is the one named
            if spec.name not in pending:
                inbox.refuse_missing(day_dir / spec.name)
            validated, digest = pending[spec.name].result()
            filerules.check_reject_rate(validated, settings.max_reject_rate)
            loaded[spec.name] = validated
            ledger.append(_ledger(validated, digest))
        incidents = loaded[v.INCIDENTS.name].valid if v.INCIDENTS.name in loaded \
            else _empty_incidents()

        instructions = loaded[v.INSTRUCTIONS.name].valid
        settlements, arrived, refusals, settlement_rejects, settlement_ledger = \
            _gather_settlements(settlement_jobs, arrival.expected_gateways(instructions),
                                settings, lambda gateway: inbox.expected_file(
                                    profiles, gateway, business_date))
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


def _validated_file(path: Path, spec: v.FileSpec, context: v.RuleContext,
                    settings: Settings) -> tuple[v.Validated, str]:
    raw, digest = inbox.read_file(path, spec, settings)
    return filerules.validate(raw, spec, context), digest


def _settlement_jobs(day_dir: Path, context: v.RuleContext, settings: Settings, codes: CodeMap,
                     profiles: Profiles):
    """Every settlement file of the day, by file name: (gateway, path, job, job's arguments).

    A job's result is (validated, Arrived), or the NotArrived saying why not. A gateway with a
    profile is read through it (recon.sources.native), not as settlement_<G>.csv + .ctl.
    """
    jobs = []
    for gateway, csv_path, ctl_path, refusal in inbox.settlement_files(day_dir, profiles):
        if refusal is not None:  # refused without reading: the job only hands the refusal over
            jobs.append((gateway, csv_path, _as_read, (refusal,)))
        else:
            jobs.append((gateway, csv_path, _contract_settlement,
                         (gateway, csv_path, ctl_path, context, settings, codes)))
    return jobs + native.settlement_jobs(day_dir, context, settings, profiles)


def _as_read(refusal: NotArrived) -> NotArrived:
    return refusal


def _contract_settlement(gateway: str, csv_path: Path, ctl_path: Path, context: v.RuleContext,
                         settings: Settings,
                         codes: CodeMap) -> tuple[v.Validated, Arrived] | NotArrived:
    """The validated rows of one settlement file whose .ctl vouches for it; else NotArrived."""
    read = inbox.read_settlement(gateway, csv_path, ctl_path, context.business_date, settings,
                                 codes)
    if isinstance(read, NotArrived):
        return read
    short = arrival.count_differs(read.declared, csv_path.name, read.raw.records, read.digest)
    if short is not None:
        return short
    validated = filerules.validate(read.raw, v.SETTLEMENT, context)
    totals = arrival.success_totals(read.raw.frame, read.raw.flawed, validated)
    verdict = arrival.total_agrees(read.declared, csv_path.name, totals, read.digest)
    return verdict if isinstance(verdict, NotArrived) else (validated, verdict)


def _gather_settlements(jobs: list[tuple[str, Path, Future]], expected: set[str],
                        settings: Settings, expected_file):
    frames: list[pd.DataFrame] = []
    arrived: set[str] = set()
    refusals: list[SettlementRefusal] = []
    rejects: list[pd.DataFrame] = []
    ledger: list[FileLedger] = []
    for gateway, path, job in jobs:
        result = job.result()
        if isinstance(result, NotArrived):
            refusals.append(SettlementRefusal(gateway, path.name, result.reason))
            if path.is_file():
                ledger.append(FileLedger(path.name, 0, 0, 0, 0, result.digest, result.reason))
            continue
        validated, proof = result
        filerules.check_reject_rate(validated, settings.max_reject_rate)
        frame = validated.valid
        frame["gateway"] = gateway
        frame["scheme"] = proof.scheme
        frame["file"] = validated.file
        frames.append(frame)
        rejects.append(validated.rejects)
        ledger.append(_ledger(validated, proof.digest))
        arrived.add(arrival.gateway_key(gateway))
    refused = {arrival.gateway_key(refusal.gateway) for refusal in refusals}
    refusals += arrival.missing_refusals(expected, arrived, refused, expected_file)
    settlements = pd.concat(frames, ignore_index=True) if frames else _empty_settlements()
    return settlements, arrived, refusals, rejects, ledger


def _ledger(validated: v.Validated, digest: str) -> FileLedger:
    if validated.fields_cut:
        first = validated.cut.iloc[0]
        log.warning("%s, line %d, column %s: over-long free-text field (%s characters) cut to "
                    "RECON_MAX_FIELD_CHARS, its row kept; %d such field(s) in the file",
                    validated.file, int(first["line"]), first["column"],
                    f"{int(first['length']):,}", validated.fields_cut)
    return FileLedger(validated.file, validated.rows_read, validated.rows_used,
                      validated.duplicates_collapsed, validated.rows_rejected, digest, "",
                      validated.fields_cut)


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
