"""The one place that sequences a run: lock -> load -> validate -> classify -> write -> report."""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pandas as pd
from sqlalchemy.exc import SQLAlchemyError

from recon import __version__, logs, signals
from recon.classify import classify
from recon.actions import act, oldest_due_date, plan
from recon.clock import utc_now
from recon.codes import CodeMap
from recon.config import Settings
from recon.contract import RETRY_PLAN_OWN, ExitCode
from recon.db import engine, ledger, locks, migrations
from recon.db.write import ResultsWrite
from recon.diff import CHANGES_COLUMNS, outcome_changes, transition_counts
from recon.errors import CommitUnknown, InputRefused, OutputUnusable, ReconError
from recon.exception_rows import exception_report
from recon.formatting import fmt_yuan
from recon.ids import IdCodes, encode_ids
from recon.intake import DayInputs, load_day
from recon.notice_templates import load_templates
from recon.notices import NOTICES_COLUMNS, NOTICES_OWN
from recon.profiles import Profiles, load_profiles, with_profile_codes
from recon.outages import SUSPECTED_COLUMNS, suspected_outages
from recon.retry import RETRY_PLAN_COLUMNS
from recon.retry_policy import RetryPolicy, load_policy
from recon.run_report import (RunReport, outcome_rows, refuse_unstorable_settled, rejects_frame,
                              report_of)
from recon.signals import Interrupted
from recon.sinks import reports
from recon.sinks.reports import stage_reports
from recon.sources import stored
from recon.watchlist import REPEAT_CAUSES, WATCHLIST_COLUMNS, WATCHLIST_OWN, history_window

log = logging.getLogger("recon")


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
        after_commit=None, await_earlier=None) -> RunReport:
    """Reconcile one business date. Never raises for expected conditions: see RunReport.exit_code.

    `before_commit` is a test hook called inside the database transaction, after every row is
    written and before the commit; `after_commit` one called after the commit, before the
    reports are published.

    `await_earlier`, for a date of a range run in parallel (--jobs, --cluster): returns once
    every earlier date of the range has ended. The actions of D (CONTRACT 7) read earlier dates'
    stored results (attempts over an installment's life, repeated failures), so they are made
    only after those dates committed; D's load and classification run meanwhile.
    """
    run_id = new_run_id()
    day = business_date.isoformat()
    extra = {"run_id": run_id, "business_date": day}
    profiles = load_profiles(settings.profiles)
    codes = with_profile_codes(CodeMap.from_file(settings.reason_codes), profiles)
    policy = load_policy(settings.retry_policy)
    templates = load_templates(settings.notice_templates)
    database = engine.connect(settings.database_url)
    try:
        migrations.ensure_schema(database, clock=utc_now)
        with locks.date_lock(database, day, settings.lock_wait_seconds, run_id=run_id,
                             lease_seconds=settings.lock_lease_seconds) as lock:
            ledger.start_run(database, run_id, day, __version__, started_at=utc_now())
            log.info("run started (database %s)", database.shown_url, extra=extra)
            try:
                repair_reports(database, settings, day, extra)
                report = _run_locked(business_date, settings, codes, profiles, policy,
                                     templates, database, run_id, lock, before_commit,
                                     after_commit, await_earlier)
                log.info("run finished: %s (exit %d)", report.outcome, report.exit_code,
                         extra=extra)
                return report
            except InputRefused as refusal:
                log.error("input refused, nothing written for this date: %s", refusal,
                          extra=extra)
                ledger.finish_run_without_results(database, run_id, "refused",
                                                  ExitCode.INPUT_REFUSED, str(refusal),
                                                  ended_at=utc_now())
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


def _close_quietly(database: engine.Database, run_id: str, outcome: str, exit_code: int,
                   message: str) -> None:
    """Close the run's ledger row if the database can still be reached (never raises)."""
    try:
        ledger.finish_run_without_results(database, run_id, outcome, exit_code, message,
                                          ended_at=utc_now())
    except (ReconError, SQLAlchemyError):
        pass


def repair_reports(database: engine.Database, settings: Settings, day: str, extra: dict) -> None:
    """Under D's lock, before anything else: make OUT/<D> show the reports of the run whose
    results D's tables hold (a publish that a kill or a failure cut off after the commit), and
    remove what earlier runs left in OUT for D (unpublished run folders, unswitched links, an
    earlier release's hidden staging folders)."""
    committed = ledger.committed_run(database, day)
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
                ledger.mark_published(database, committed.run_id, at=utc_now())
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
                policy: RetryPolicy, templates, database: engine.Database, run_id: str,
                lock: locks.DateLock, before_commit, after_commit,
                await_earlier) -> RunReport:
    day = business_date.isoformat()
    phases = Phases()
    # Work that does not need the main line's latest result runs on a second thread beside it:
    # reading D's stored outcomes beside the load, outage inference beside classify, the CSV
    # reports beside the database write. They wait on the server or spend their time in Arrow
    # and numpy kernels, which release the GIL.
    with _side_thread(settings) as side:
        # D's stored outcomes, before the write replaces them: the date lock is held, so
        # they are those of the previous completed run. Compared with the new ones below.
        previous_job = side.submit(stored.read_outcomes, database, day,
                                   block_bytes=settings.csv_block_bytes)
        # Earlier dates' borrower-side failures, for the watchlist's repeated failures: read
        # beside the load, or (await_earlier) once the earlier dates of the range have ended.
        first, last = history_window(business_date)
        read_history = partial(stored.read_borrower_failures, database, first.isoformat(),
                               last.isoformat(), [cause.value for cause in REPEAT_CAUSES])
        if await_earlier is None:
            history_job = side.submit(read_history)
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
        read_earlier = partial(stored.read_earlier_attempts, database, day,
                               oldest_due_date(inputs, business_date))
        if await_earlier is None:
            earlier_job = side.submit(read_earlier)
        outcomes = decisions.outcomes
        refuse_unstorable_settled(inputs, outcomes)
        report = report_of(inputs, decisions, run_id, phases.seconds)
        exit_code = ExitCode.OK if inputs.complete else ExitCode.INCOMPLETE
        outcome = "done" if inputs.complete else "incomplete"
        rejects = rejects_frame(inputs)
        with phases("compare", business_date, run_id):
            stored_rows = outcome_rows(outcomes, day, run_id)
            previous, report.previous_run_id = previous_job.result()
            changes = outcome_changes(previous, stored_rows)
            changes.insert(0, "business_date", day)
            report.changes = transition_counts(changes)
            del previous  # a rerun's million previous outcomes: not held through the write
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
            if await_earlier is not None:
                log.info("waiting for the earlier dates of the range",
                         extra={"run_id": run_id, "business_date": day})
                await_earlier()
                history_job, earlier_job = (_Inline().submit(read) for read in
                                            (read_history, read_earlier))
            with ResultsWrite(database, run_id, day, lock) as write, \
                    _writer_thread(settings, database) as writer:
                # The server stores each part while the next is made: D's outcomes while the
                # retry plan is made, the plan while the watchlist and notices are, in this
                # order on the writer thread (one connection, one job at a time).
                outcomes_written = writer.submit(
                    write.replace_outcomes, stored_rows,
                    settlement_exceptions.assign(run_id=run_id),
                    rejects.rename(columns={"column": "column_name"}).assign(run_id=run_id))
                del stored_rows  # the writer's job holds them until they are sent, no longer
                writes = [outcomes_written]
                try:
                    retry_plan = plan(business_date, settings, inputs, decisions, ids, suspected,
                                      policy, earlier_job, report, phases, run_id)
                    writes.append(writer.submit(_after, outcomes_written, write.replace_actions,
                                                retry_plan=retry_plan.assign(run_id=run_id)))
                    watch, outbox = act(business_date, settings, inputs, decisions, ids,
                                        retry_plan, templates, history_job, report, phases,
                                        run_id)
                    writes.append(writer.submit(_after, outcomes_written, write.replace_actions,
                                                watchlist=watch))
                    # D's input frames and outcomes are not needed past the actions: let them go
                    # before the write's last part (the notices), where the run peaks in memory.
                    digests = {entry.file: entry.sha256 for entry in inputs.ledger}
                    del inputs, decisions, outcomes, ids
                    # Composed here, while the server stores the parts before: this line
                    # would only wait for them (the side thread is busy with the reports).
                    outbox.compose_ahead(_Inline())
                finally:
                    for job in writes:
                        _settle(job)  # the connection is the writer's until then
                staging_job = side.submit(_stage_actions, staging_job, retry_plan, watch,
                                          phases, business_date, run_id)
                # The reports must be ready to publish before the run is closed and committed:
                # a failure to write them (a full disk) rolls the database write back. Waiting
                # for them also puts write_csv's time into the stored counts.
                counts = report.counts()
                with phases("write_db", business_date, run_id):
                    report.phases = phases.seconds
                    for job in writes:
                        job.result()
                    # The notices are known once merged with D's stored ones, inside the
                    # transaction: notices.csv is written on the side thread while the server
                    # inserts them.
                    change = write.withdraw_notices(outbox.plan)
                    staging_job = side.submit(_add_notices, staging_job, change, report, counts)
                    write.insert_notices(change)
                    staging_job.result()
                    write.close_run(
                        outcome, exit_code,
                        digests=digests,
                        counts=counts, message=report.message, ended_at=utc_now(),
                        reports_path=str(reports.runs_folder(settings.out, day).resolve()
                                         / run_id))
                    if before_commit is not None:
                        before_commit()
                    # From the commit to the switch of the reports, a stop signal waits
                    # (recon.signals).
                    signals.hold()
                    write.commit()
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


def _add_notices(staging_job: Future, change, report: RunReport,
                 counts: dict) -> reports.StagedReports:
    """Write notices.csv from the merged change and make the staged reports ready again (so
    it is synced too, before the commit); count D's notices in the report and the stored
    counts. On the side thread, after _stage_actions."""
    staged = staging_job.result()
    try:
        staged.write("notices.csv", change.notices, NOTICES_COLUMNS, bom=True,
                     own=NOTICES_OWN)
        staged.prepare()
    except BaseException:
        staged.discard()
        raise
    report.notice_channels = change.channel_counts()
    report.notice_changes = change.counts()
    counts["notices"] = {"channel": report.notice_channels, **report.notice_changes}
    return staged


def _after(earlier: Future, function, *args, **kwargs):
    """`function(...)` on the writer thread once `earlier` (a job before it on that thread)
    succeeded; its error stands for both (the transaction is lost by then)."""
    earlier.result()
    return function(*args, **kwargs)


def _publish(staged: reports.StagedReports, database: engine.Database, report: RunReport,
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
        ledger.mark_published(database, run_id, at=utc_now())
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
            staged.write("retry_plan.csv", retry_plan, RETRY_PLAN_COLUMNS, bom=True,
                         own=RETRY_PLAN_OWN)
            staged.write("watchlist.csv", watch, WATCHLIST_COLUMNS, bom=True,
                         own=WATCHLIST_OWN)
            staged.prepare()
        except BaseException:
            staged.discard()
            raise
    return staged


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


def _writer_thread(settings: Settings, database: engine.Database):
    """A thread for the database write that overlaps the action planning (PostgreSQL only:
    SQLite's write is not worth a thread)."""
    return _thread(settings, "recon-write", database.is_postgres)


def _settle(job: Future) -> None:
    """Wait until `job` has finished, whatever it raised (its error is read where it matters).
    A stop signal that arrives meanwhile is raised once the job is done."""
    stop = None
    while not job.done():
        try:
            job.exception()
        except BaseException as signal_stop:  # noqa: BLE001 - raised below, after the wait
            stop = stop or signal_stop
    if stop is not None:
        raise stop


def _side_thread(settings: Settings):
    return _thread(settings, "recon-side")


@contextmanager
def _thread(settings: Settings, name: str, wanted: bool = True):
    """One worker thread, or (RECON_THREADS=1, or not `wanted`) jobs run at once on the
    caller's thread."""
    if settings.worker_threads < 2 or not wanted:
        yield _Inline()
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as pool:
        yield pool
