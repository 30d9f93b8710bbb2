"""The one place that sequences a run: lock -> load -> validate -> classify -> write -> report."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from recon import __version__, logs, signals
from recon.classify import classify
from recon.codes import CodeMap
from recon.config import Settings
from recon.contract import MAX_AMOUNT_FEN, ExitCode, Status
from recon.diff import CHANGES_COLUMNS, outcome_changes, transition_counts
from recon.errors import CommitUnknown, InputRefused, OutputUnusable, ReconError
from recon.exception_rows import exception_report
from recon.formatting import fmt_yuan
from recon.ids import IdCodes, encode_ids
from recon.intake import DayInputs, load_day
from recon.notices import NOTICES_COLUMNS, Outbox, load_templates, notice_items
from recon.profiles import Profiles, load_profiles, with_profile_codes
from recon.protect import protect_rejects
from recon.outages import SUSPECTED_COLUMNS, suspected_outages
from recon.retry import RETRY_PLAN_COLUMNS, RetryPolicy, load_policy, plan_retries
from recon.signals import Interrupted
from recon.sinks import database as db
from recon.sinks import reports
from recon.sinks.reports import stage_reports
from recon.watchlist import (REPEAT_CAUSES, WATCHLIST_COLUMNS, history_window, repeat_borrowers,
                             watchlist)

log = logging.getLogger("recon")



@dataclass
class RunReport:
    """What one business date's run did; the CLI turns it into a summary and an exit code."""

    business_date: dt.date
    run_id: str
    exit_code: int
    outcome: str  # done, incomplete, refused, failed, locked
    message: str = ""
    status_counts: dict[str, int] = field(default_factory=dict)
    cause_counts: dict[str, int] = field(default_factory=dict)
    amount_due_fen: int = 0
    amount_outstanding_fen: int = 0
    rows_rejected: int = 0
    duplicates_collapsed: int = 0
    not_arrived: list[str] = field(default_factory=list)
    ledger: list[dict] = field(default_factory=list)
    settlement_exceptions: dict[str, int] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    out_dir: str = ""
    previous_run_id: str = ""  # the run whose results this one replaced; "" on a first run
    changes: dict[str, int] = field(default_factory=dict)  # "pending -> paid" -> installments
    suspected_incidents: list[dict] = field(default_factory=list)  # rows of suspected_incidents.csv
    retry_actions: dict[str, int] = field(default_factory=dict)  # retry_plan.csv rows per action
    # Per days-past-due bucket (0, 1-30, 31-60, over 60): collected, not_collected (counts) and
    # amount_outstanding (fen).
    by_days_past_due: dict[str, dict[str, int]] = field(default_factory=dict)
    notice_channels: dict[str, int] = field(default_factory=dict)  # D's live notices by channel
    notice_changes: dict[str, int] = field(default_factory=dict)  # added, cancelled, kept, taken
    watchlist_risks: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict:
        return {
            "installments": sum(self.status_counts.values()),
            "status": self.status_counts,
            "root_cause": self.cause_counts,
            "amount_due": fmt_yuan(pd.Series([self.amount_due_fen])).iloc[0],
            "amount_outstanding": fmt_yuan(pd.Series([self.amount_outstanding_fen])).iloc[0],
            "rows_rejected": self.rows_rejected,
            "duplicates_collapsed": self.duplicates_collapsed,
            "settlement_exceptions": self.settlement_exceptions,
            "not_arrived": self.not_arrived,
            "files": self.ledger,
            "phases_seconds": self.phases,
            "previous_run_id": self.previous_run_id,
            "changes": self.changes,
            "suspected_incidents": self.suspected_incidents,
            "retry_plan": self.retry_actions,
            "by_days_past_due": self.by_days_past_due,
            "notices": {"channel": self.notice_channels, **self.notice_changes},
            "watchlist": self.watchlist_risks,
        }


class Phases:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str, business_date: dt.date, run_id: str, *, last: bool = True):
        """Time a step; a step done in parts (write_csv) adds them up and is logged once, at the
        end of its `last` part."""
        started = time.perf_counter()
        yield
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - started,
                                   3)
        if last:
            log.info("%s done in %.2fs", name, self.seconds[name],
                     extra={"run_id": run_id, "business_date": business_date.isoformat(),
                            "step": name, "seconds": self.seconds[name]})


def new_run_id() -> str:
    """16 hex digits, never with a run of 10 decimal digits: log lines and messages mask digit
    runs that pass the Luhn check as card numbers, and a run id must print as it is."""
    while True:
        run_id = uuid.uuid4().hex[:16]
        if not re.search(r"[0-9]{10}", run_id):
            return run_id


def run(business_date: dt.date, settings: Settings, *, before_commit=None,
        after_commit=None) -> RunReport:
    """Reconcile one business date. Never raises for expected conditions: see RunReport.exit_code.

    `before_commit` is a test hook called inside the database transaction, after every row is
    written and before the commit; `after_commit` one called after the commit, before the
    reports are published.
    """
    run_id = new_run_id()
    day = business_date.isoformat()
    extra = {"run_id": run_id, "business_date": day}
    profiles = load_profiles(settings.profiles)
    codes = with_profile_codes(CodeMap.from_file(settings.reason_codes), profiles)
    policy = load_policy(settings.retry_policy)
    templates = load_templates(settings.notice_templates)
    database = db.connect(settings.database_url)
    try:
        db.ensure_schema(database)
        with db.date_lock(database, day, settings.lock_wait_seconds, run_id=run_id,
                          lease_seconds=settings.lock_lease_seconds) as lock:
            db.start_run(database, run_id, day, __version__)
            log.info("run started (database %s)", database.shown_url, extra=extra)
            try:
                repair_reports(database, settings, day, extra)
                report = _run_locked(business_date, settings, codes, profiles, policy,
                                     templates,
                                     database, run_id, lock, before_commit, after_commit)
                log.info("run finished: %s (exit %d)", report.outcome, report.exit_code,
                         extra=extra)
                return report
            except InputRefused as refusal:
                log.error("input refused, nothing written for this date: %s", refusal,
                          extra=extra)
                db.finish_run_without_results(database, run_id, "refused",
                                              ExitCode.INPUT_REFUSED, str(refusal))
                return RunReport(business_date, run_id, ExitCode.INPUT_REFUSED, "refused",
                                 str(refusal))
            except CommitUnknown:
                raise  # the run may have committed: its ledger row is not ours to close
            except OutputUnusable as unusable:
                # Raised before the commit (or by the repair, before anything): rolled back.
                said = f"{unusable.message}; nothing was written for {day}"
                _close_quietly(database, run_id, "failed", unusable.exit_code, said)
                raise OutputUnusable(said, path=unusable.path, cause=unusable.cause,
                                     next_step=unusable.next_step) from None
            except ReconError as error:
                # A timeout, a full disk, the lock lost...: close the run's ledger row with the
                # same one line, when the server can still be reached.
                _close_quietly(database, run_id, "failed", error.exit_code, str(error))
                raise
            except (KeyboardInterrupt, Interrupted) as stop:
                code = stop.exit_code if isinstance(stop, Interrupted) else 130
                name = stop.name if isinstance(stop, Interrupted) else "SIGINT"
                _close_quietly(database, run_id, "interrupted", code,
                               f"stopped by {name} before committing; the previous results of "
                               f"{day} stand")
                raise
            except Exception as bug:
                _close_quietly(database, run_id, "failed", ExitCode.INTERNAL,
                               f"internal error: {type(bug).__name__}: {bug}")
                raise
    finally:
        database.dispose()


def _close_quietly(database: db.Database, run_id: str, outcome: str, exit_code: int,
                   message: str) -> None:
    """Close the run's ledger row if the database can still be reached (never raises)."""
    try:
        db.finish_run_without_results(database, run_id, outcome, exit_code, message)
    except (ReconError, db.SQLAlchemyError):
        pass


def repair_reports(database: db.Database, settings: Settings, day: str, extra: dict) -> None:
    """Under D's lock, before anything else: make OUT/<D> show the reports of the run whose
    results D's tables hold (a publish that a kill or a failure cut off after the commit), and
    remove what earlier runs left in OUT for D (unpublished run folders, unswitched links, an
    earlier release's hidden staging folders)."""
    committed = db.committed_run(database, day)
    keep: set[str] = set()
    if committed is not None and committed.reports_path:
        folder = Path(committed.reports_path)
        ours = folder.parent == reports.runs_folder(settings.out, day).resolve()
        if ours and folder.is_dir():
            keep.add(folder.name)
            if reports.published_run(settings.out, day) != folder.name:
                reports.publish_folder(settings.out, day, folder.name)
                log.warning("published the reports of run %s, committed earlier but not "
                            "published (%s)", committed.run_id, folder, extra=extra)
            if not committed.published:
                db.mark_published(database, committed.run_id)
    try:
        removed = reports.clean_up(settings.out, day, keep)
    except OSError as exc:
        log.warning("could not remove what earlier runs left in %s: %s", settings.out,
                    exc.strerror, extra=extra)
        return
    if removed:
        log.info("removed what earlier runs of %s left: %s", day, ", ".join(removed),
                 extra=extra)


def _run_locked(business_date: dt.date, settings: Settings, codes: CodeMap, profiles: Profiles,
                policy: RetryPolicy, templates, database: db.Database, run_id: str,
                lock: db.DateLock,
                before_commit, after_commit) -> RunReport:
    day = business_date.isoformat()
    phases = Phases()
    # Work that does not need the main line's latest result runs on a second thread beside it:
    # reading D's stored outcomes beside the load, outage inference beside classify, the CSV
    # reports beside the database write. They wait on the server or spend their time in Arrow
    # and numpy kernels, which release the GIL.
    with _side_thread(settings) as side:
        # D's stored outcomes, before write_results replaces them: the date lock is held, so
        # they are those of the previous completed run. Compared with the new ones below.
        previous_job = side.submit(db.read_outcomes, database, day,
                                   block_bytes=settings.csv_block_bytes)
        # Earlier dates' borrower-side failures, for the watchlist's repeated failures.
        first, last = history_window(business_date)
        history_job = side.submit(db.read_borrower_failures, database, first.isoformat(),
                                  last.isoformat(), [cause.value for cause in REPEAT_CAUSES])
        with (phases("load", business_date, run_id),
              logs.loading(settings.inbox / day, f"{day} loading")):
            inputs = load_day(business_date, settings, codes, profiles)
        with phases("classify", business_date, run_id):
            ids = encode_ids(inputs.installments, inputs.instructions, inputs.bindings,
                             inputs.settlements, side)
            outages_job = side.submit(_suspected_outages, inputs, codes, settings, phases,
                                      run_id, ids)
            decisions = classify(inputs.installments, inputs.bindings, inputs.instructions,
                                 inputs.settlements, inputs.incidents, inputs.arrived_gateways,
                                 codes, business_date, settings.tz, ids)
        # Attempts stored for earlier dates (the retry plan's caps), since the oldest due date.
        earlier_job = side.submit(
            db.read_earlier_attempts, database, day, _oldest_due_date(inputs, business_date))
        outcomes = decisions.outcomes
        _refuse_unstorable_settled(inputs, outcomes)
        report = _report(inputs, decisions, run_id, phases)
        exit_code = ExitCode.OK if inputs.complete else ExitCode.INCOMPLETE
        outcome = "done" if inputs.complete else "incomplete"
        rejects = rejects_frame(inputs)
        with phases("compare", business_date, run_id):
            stored_rows = outcome_rows(outcomes, day, run_id)
            previous, report.previous_run_id = previous_job.result()
            changes = outcome_changes(previous, stored_rows)
            changes.insert(0, "business_date", day)
            report.changes = transition_counts(changes)
        suspected = outages_job.result()
        report.suspected_incidents = suspected.to_dict("records")
        settlement_exceptions = decisions.settlement_exceptions.assign(
            amount=fmt_yuan(decisions.settlement_exceptions["amount"]))
        # The reports known by now are written on the side thread while the main line plans
        # the actions; the plan's and the watchlist's follow (_stage_actions).
        staging_job = side.submit(_stage_reports, settings, business_date, outcomes,
                                  settlement_exceptions, rejects, changes, suspected, phases,
                                  run_id)
        try:
            with phases("act", business_date, run_id):
                watch = watchlist(outcomes, inputs.bindings, history_job.result(),
                                  business_date, settings.tz, ids)
                report.watchlist_risks = {str(k): int(v) for k, v in
                                          watch["risk"].value_counts().sort_index().items()}
                # The clock is read here, once: the notices' earliest send time follows from it.
                outbox = Outbox(notice_items(outcomes), templates, business_date,
                                dt.datetime.now(dt.timezone.utc), settings.tz, run_id,
                                repeat_borrowers(watch))
                outbox.compose_ahead(side)
            with phases("plan", business_date, run_id):
                retry_plan = plan_retries(
                    outcomes, bindings=inputs.bindings, loan_of_binding=ids.loan_of_binding,
                    incidents=inputs.incidents, duplicates=decisions.settlement_exceptions,
                    instructions=inputs.instructions, earlier_attempts=earlier_job.result(),
                    clean_gateways=clean_gateways(inputs, suspected, settings.tz),
                    policy=policy, business_date=business_date,
                    now=plan_moment(business_date, settings), tz=settings.tz)
                report.retry_actions = {str(action): int(count) for action, count in
                                        retry_plan["action"].value_counts().sort_index().items()}
        except BaseException:
            _discard(staging_job)
            raise
        staging_job = side.submit(_stage_actions, staging_job, retry_plan, watch, phases,
                                  business_date, run_id)

        def commit_now() -> None:
            if before_commit is not None:
                before_commit()
            # From the commit to the switch of the reports, a stop signal waits (recon.signals).
            signals.hold()

        # The reports must be ready to publish before the run is closed and committed
        # (before_finish): a failure to write them (a full disk) rolls the database write back.
        # Waiting there also puts write_csv's time into the stored counts.
        counts = report.counts()

        def before_finish() -> None:
            # The notices are known once merged with D's stored ones, inside the transaction.
            staged = staging_job.result()
            change = outbox.change
            staged.write("notices.csv", change.notices, NOTICES_COLUMNS, bom=True)
            staged.prepare()  # again: notices.csv synced too, before the commit
            report.notice_channels = change.channel_counts()
            report.notice_changes = change.counts()
            counts["notices"] = {"channel": report.notice_channels, **report.notice_changes}

        try:
            with phases("write_db", business_date, run_id):
                report.phases = phases.seconds
                db.write_results(
                    database, run_id, day,
                    stored_rows,
                    settlement_exceptions.assign(run_id=run_id),
                    rejects.rename(columns={"column": "column_name"}).assign(run_id=run_id),
                    outcome=outcome, exit_code=exit_code,
                    digests={entry.file: entry.sha256 for entry in inputs.ledger},
                    counts=counts, message=report.message, lock=lock,
                    retry_plan=retry_plan.assign(run_id=run_id), watchlist=watch,
                    outbox=outbox,
                    reports_path=str(reports.runs_folder(settings.out, day).resolve() / run_id),
                    before_finish=before_finish, before_commit=commit_now)
        except CommitUnknown as unknown:
            signals.release()
            # Kept, not discarded: if the commit did reach the server, the next run of D
            # publishes this folder; if not, it removes it.
            _forget_link(staging_job)
            raise CommitUnknown(
                f"{unknown.message}; the next run of {day} publishes the reports of run {run_id} "
                f"if it committed, or removes them", next_step=unknown.next_step) from None
        except BaseException:
            signals.release()
            _discard(staging_job)
            raise
        staged = staging_job.result()
    try:
        _publish(staged, database, report, after_commit)
    finally:
        signals.release()
    if not report.exit_code:
        report.exit_code, report.outcome = exit_code, outcome
    return report


def _publish(staged: reports.StagedReports, database: db.Database, report: RunReport,
             after_commit) -> None:
    """After the commit: switch OUT/<D> to this run's reports and record that it did. Never
    raises for a failure (the results are committed): the report says what holds."""
    day, run_id = staged.business_date, staged.run_id
    extra = {"run_id": run_id, "business_date": day}
    try:
        if after_commit is not None:
            after_commit()
        report.out_dir = str(staged.publish())
    except Exception as exc:  # noqa: BLE001 - whatever it is, the commit stands
        cause = str(exc) if isinstance(exc, ReconError) else f"{type(exc).__name__}: {exc}"
        report.message = (f"results of {day} committed as run {run_id}; reports not yet "
                          f"published: {cause}; the next run of {day} will publish them")
        report.exit_code, report.outcome = ExitCode.INCOMPLETE, "unpublished"
        log.error("%s", report.message, extra=extra)
        return
    try:
        db.mark_published(database, run_id)
    except ReconError as exc:
        log.warning("reports published in %s, but not recorded in recon_runs (%s); the next "
                    "run of %s records it", staged.target, exc, day, extra=extra)


def _suspected_outages(inputs: DayInputs, codes: CodeMap, settings: Settings, phases: Phases,
                       run_id: str, ids: IdCodes) -> pd.DataFrame:
    with phases("outages", inputs.business_date, run_id):
        suspected = suspected_outages(inputs.instructions, inputs.settlements,
                                      inputs.arrived_gateways, codes, inputs.incidents,
                                      settings.tz, ids=ids)
        suspected.insert(0, "business_date", inputs.business_date.isoformat())
    return suspected


def _stage_reports(settings: Settings, business_date: dt.date, outcomes: pd.DataFrame,
                   settlement_exceptions: pd.DataFrame, rejects: pd.DataFrame,
                   changes: pd.DataFrame, suspected: pd.DataFrame,
                   phases: Phases, run_id: str) -> reports.StagedReports:
    with phases("write_csv", business_date, run_id, last=False):
        exceptions = exception_report(outcomes, business_date, settings.tz)
        staged = stage_reports(settings.out, business_date.isoformat(), run_id, exceptions,
                               settlement_exceptions, rejects)
        try:
            staged.write("changes.csv", changes, CHANGES_COLUMNS)
            staged.write("suspected_incidents.csv", suspected, SUSPECTED_COLUMNS)
        except BaseException:
            staged.discard()
            raise
    return staged


def _stage_actions(staging_job: Future, retry_plan: pd.DataFrame, watch: pd.DataFrame,
                   phases: Phases, business_date: dt.date, run_id: str) -> reports.StagedReports:
    """The plan's and the watchlist's reports, after the others (same side thread)."""
    staged = staging_job.result()
    with phases("write_csv", business_date, run_id):
        try:
            staged.write("retry_plan.csv", retry_plan, RETRY_PLAN_COLUMNS)
            staged.write("watchlist.csv", watch, WATCHLIST_COLUMNS, bom=True)
            staged.prepare()
        except BaseException:
            staged.discard()
            raise
    return staged


def plan_moment(business_date: dt.date, settings: Settings) -> dt.datetime:
    """The moment the retry plan is made as of: the end of D (D+1 00:00 local), not the clock,
    so a rerun of D on the same inputs plans the same. Its times are earliest times: one already
    past when the plan is read means "now"."""
    return dt.datetime.combine(business_date + dt.timedelta(days=1), dt.time(0),
                               tzinfo=settings.tz)


def _oldest_due_date(inputs: DayInputs, business_date: dt.date) -> str:
    """The earliest due date of D's installments: no earlier date can hold their attempts."""
    due = inputs.installments["due_date"]
    oldest = due.min() if len(due) else pd.NaT
    return (pd.Timestamp(oldest).date() if pd.notna(oldest) else business_date).isoformat()


def clean_gateways(inputs: DayInputs, suspected: pd.DataFrame, tz) -> list[str]:
    """Gateways a retry may move to: their file of D arrived, no incident of theirs is known for
    D and none is suspected; the one that settled most debits of D first."""
    day_start = pd.Timestamp(dt.datetime.combine(inputs.business_date, dt.time(0)), tz=tz)
    troubled = set()
    if len(inputs.incidents):
        troubled |= set(inputs.incidents.loc[inputs.incidents["ended_at"] >= day_start,
                                             "gateway"].str.upper())
    if len(suspected):
        troubled |= set(suspected["gateway"].astype(str).str.upper())
    successes = inputs.settlements.loc[inputs.settlements["status"] == "SUCCESS", "gateway"]
    counts = successes.str.upper().value_counts()
    usable = [gateway for gateway in inputs.arrived_gateways if gateway not in troubled]
    return sorted(usable, key=lambda gateway: (-int(counts.get(gateway, 0)), gateway))


def _forget_link(staging_job: Future) -> None:
    """Keep the staged folder, drop only its new link (never switched)."""
    try:
        reports._remove_link(staging_job.result().link, quiet=True)
    except BaseException:
        pass  # staging failed: it removed its own folder


def _discard(staging_job: Future) -> None:
    """Throw away staged reports once their writer is done (it may still be writing)."""
    try:
        staging_job.result().discard()
    except BaseException:
        pass  # staging failed: it removed its own folder


class _Inline:
    """An executor that runs each job at once, on the caller's thread (RECON_THREADS=1)."""

    def submit(self, function, *args, **kwargs) -> Future:
        job: Future = Future()
        try:
            job.set_result(function(*args, **kwargs))
        except Exception as error:  # Ctrl-C and exits go up at once, as without threads
            job.set_exception(error)
        return job


@contextmanager
def _side_thread(settings: Settings):
    if settings.worker_threads < 2:
        yield _Inline()
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="recon-side") as pool:
        yield pool


def _refuse_unstorable_settled(inputs: DayInputs, outcomes: pd.DataFrame) -> None:
    """An installment settled more than NUMERIC(14,2) holds refuses the date, on every database.

    Each amount fits (validate rejects larger ones), but several SUCCESS rows can add up past
    999,999,999,999.99: PostgreSQL would refuse the row mid-write, SQLite would store it. No
    real car loan is settled that much: the rows are wrong, and a person must look at them.
    """
    over = outcomes[outcomes["amount_settled"] > MAX_AMOUNT_FEN]
    if over.empty:
        return
    first = over.iloc[0]
    instructions = inputs.instructions
    ids = instructions.loc[(instructions["loan_id"] == first["loan_id"])
                           & (instructions["installment_no"] == first["installment_no"]),
                           "instruction_id"]
    settlements = inputs.settlements
    rows = settlements[settlements["instruction_id"].isin(ids)
                       & (settlements["status"] == "SUCCESS")]
    where = "; ".join(f"{file} line(s) {', '.join(str(line) for line in group['line'][:5])}"
                      for file, group in rows.groupby("file", sort=True))
    others = f" (and {len(over) - 1} more installment(s))" if len(over) > 1 else ""
    raise InputRefused(
        f"installment {first['loan_id']}/{first['installment_no']} is settled "
        f"{fmt_yuan(pd.Series([first['amount_settled']]))[0]}, more than NUMERIC(14,2) holds "
        f"(999999999999.99){others}; its SUCCESS rows: {where}",
        next_step="check those settlement rows with the gateway, then rerun the date")


def rejects_frame(inputs: DayInputs) -> pd.DataFrame:
    rejects = inputs.rejects.copy()
    rejects.insert(0, "business_date", inputs.business_date.isoformat())
    rejects["line"] = rejects["line"].astype("Int64")
    return protect_rejects(rejects)


def outcome_rows(outcomes: pd.DataFrame, day: str, run_id: str) -> pd.DataFrame:
    return pd.DataFrame({
        "business_date": day,
        "loan_id": outcomes["loan_id"],
        "installment_no": outcomes["installment_no"],
        "borrower_id": outcomes["borrower_id"],
        "status": outcomes["status"],
        "root_cause": outcomes["root_cause"],
        "amount_due": fmt_yuan(outcomes["amount_due"]),
        "amount_settled": fmt_yuan(outcomes["amount_settled"]),
        "gateway": outcomes["gateway"],
        "response_code": outcomes["response_code"],
        "run_id": run_id,
        "days_past_due": outcomes["days_past_due"],
        "attempts": outcomes["attempts"],
    })


def _report(inputs: DayInputs, decisions, run_id: str, phases: Phases) -> RunReport:
    outcomes = decisions.outcomes
    causes = outcomes.loc[outcomes["status"] != Status.PAID.value, "root_cause"].value_counts()
    causes = {str(cause): int(count) for cause, count in causes.items() if cause}
    outstanding = outcomes["amount_outstanding"]
    report = RunReport(
        business_date=inputs.business_date,
        run_id=run_id,
        exit_code=ExitCode.OK,
        outcome="done",
        status_counts={str(k): int(v) for k, v in outcomes["status"].value_counts().items()},
        cause_counts=dict(sorted(causes.items())),
        amount_due_fen=int(outcomes["amount_due"].sum()),
        amount_outstanding_fen=int(outstanding[outstanding > 0].sum()),
        rows_rejected=int(sum(entry.rows_rejected for entry in inputs.ledger)),
        duplicates_collapsed=int(sum(entry.duplicates_collapsed for entry in inputs.ledger)),
        not_arrived=[f"{refusal.file}: {refusal.reason}" for refusal in inputs.refusals],
        ledger=[dataclasses.asdict(entry) for entry in inputs.ledger],
        settlement_exceptions={str(k): int(v) for k, v in
                               decisions.settlement_exceptions["kind"].value_counts().items()},
        phases=phases.seconds,
    )
    report.by_days_past_due = days_past_due_buckets(outcomes)
    if inputs.refusals:
        report.message = f"{len(inputs.refusals)} settlement file(s) not arrived; rerun later"
    return report


DAYS_PAST_DUE_BUCKETS = ["0", "1-30", "31-60", "over 60"]


def days_past_due_bucket(days: pd.Series) -> pd.Series:
    """0, 1-30, 31-60 or over 60 (CONTRACT 2.1's days_past_due)."""
    return pd.Series(pd.cut(days, [-1, 0, 30, 60, float("inf")], labels=DAYS_PAST_DUE_BUCKETS)
                     .astype(str), index=days.index)


def days_past_due_buckets(outcomes: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per bucket with installments: collected and not collected counts, outstanding fen."""
    if outcomes.empty:
        return {}
    collected = outcomes["status"].isin([Status.PAID.value, Status.OVERPAID.value])
    frame = pd.DataFrame({
        "bucket": days_past_due_bucket(outcomes["days_past_due"]),
        "collected": collected.astype("int64"),
        "not_collected": (~collected).astype("int64"),
        "amount_outstanding": outcomes["amount_outstanding"].clip(lower=0).astype("int64"),
    })
    sums = frame.groupby("bucket").sum()
    return {bucket: {column: int(sums.loc[bucket, column]) for column in sums.columns}
            for bucket in DAYS_PAST_DUE_BUCKETS if bucket in sums.index}
