"""Running the dates of `recon run`: one after another, in --jobs worker processes, or as tasks on
a Dask cluster (recon/cluster.py); each date's result shown as it ends, the range's exit code the
worst of its dates', a stop signal ending the range cleanly."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import multiprocessing
import os
import signal
import traceback
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import wait

from recon import cluster, logs, pipeline, signals
from recon.clock import utc_now
from recon.config import Settings
from recon.contract import ExitCode
from recon.db import migrations
from recon.errors import ReconError
from recon.signals import Interrupted
from recon.summary import render_summary

log = logging.getLogger("recon")

# Worst first when a range mixes outcomes: a bug, then the database, refused input, incomplete.
# A date stopped by a signal (a --jobs worker signalled on its own) ranks just below a bug.
SEVERITY = {ExitCode.OK: 0, ExitCode.INCOMPLETE: 1, ExitCode.INPUT_REFUSED: 2,
            ExitCode.USAGE: 3, ExitCode.DATABASE: 4, ExitCode.INTERRUPTED: 5,
            ExitCode.TERMINATED: 6, ExitCode.INTERNAL: 7}


def worst(codes: list[int]) -> int:
    return max(codes, key=SEVERITY.__getitem__, default=ExitCode.OK)


def run_dates(dates: list[dt.date], settings: Settings, *, jobs: int, cluster_address: str | None,
              log_setup: logs.LogOptions) -> int:
    """Run each date on its own (locked, atomic) and return the range's exit code, the worst of
    its dates'. A stop signal (SIGINT, SIGTERM) ends the range: the date in flight says what
    became of it, the dates not started are named, and its exit code (130, 143) is returned."""
    if cluster_address:
        return worst(run_on_cluster(cluster_address, dates, settings, log_setup))
    codes: list[int] = []
    not_started = list(dates)  # of the sequential path; run_parallel says its own
    with signals.stop_on_signals():
        try:
            with logs.progress(f"recon {dates[0]}..{dates[-1]}", len(dates),
                               shown=len(dates) > 1) as dates_bar:
                if jobs > 1 and len(dates) > 1:
                    not_started = []
                    codes = run_parallel(dates, settings, jobs, log_setup, dates_bar)
                else:
                    for day in dates:
                        signals.raise_pending()
                        not_started.remove(day)
                        dates_bar.advance(0, f"running {day}")
                        codes.append(run_one(day, settings))
                        dates_bar.advance(1, f"{day} done")
                    signals.raise_pending()
        except Interrupted as stop:
            # A date stopped mid-run has said so (run_one, run_parallel); between dates, here.
            if not_started or not stop.reported:
                log.error("recon: stopped by %s%s", stop.name,
                          f"; not started: {', '.join(map(str, not_started))}" if not_started
                          else "")
            return stop.exit_code
    return worst(codes)


def run_on_cluster(address: str, dates: list[dt.date], settings: Settings,
                   log_setup: logs.LogOptions) -> list[int]:
    """The dates as tasks on a Dask cluster (recon/cluster.py); a problem with the cluster as a
    whole (not installed, SQLite, unreachable, folders not shared) is one line and its exit code."""
    try:
        with logs.progress(f"recon {dates[0]}..{dates[-1]}", len(dates),
                           shown=len(dates) > 1) as dates_bar:
            return cluster.run_range(address, dates, settings, log_setup, dates_bar,
                                     show_result, run_date)
    except ReconError as error:
        log.error("recon run --cluster: %s", error)
        return [error.exit_code]


def run_one(day: dt.date, settings: Settings) -> int:
    """Run one date; print its summary; return its exit code. Never raises, but for a stop
    signal (recon.signals.Interrupted), once it has said what became of the date."""
    try:
        code, out, err = run_date(day, settings)
    except Interrupted as stop:
        show_result(day, "", interrupted_message(day, stop))
        stop.reported = True
        raise
    show_result(day, out, err)
    return code


def interrupted_message(day: dt.date, stop: Interrupted) -> str:
    return (f"recon {day}: stopped by {stop.name} before committing: nothing was written for "
            f"this date, its previous results and reports stand (exit {stop.exit_code})")


def show_result(day: dt.date, out: str, err: str) -> None:
    """The summary on stdout; an error as a log record (stderr, --log-file, JSON if asked)."""
    if err:
        log.error("%s", err, extra={"business_date": day.isoformat()})
    if out:
        logs.echo(out)


def run_date(day: dt.date, settings: Settings, await_earlier=None) -> tuple[int, str, str]:
    """Run one date and return (exit code, summary for stdout, message for stderr).
    `await_earlier`: see pipeline.run (the dates of a range run in parallel)."""
    try:
        report = pipeline.run(day, settings, await_earlier=await_earlier)
    except ReconError as error:
        return error.exit_code, "", f"recon {day}: {error}"
    except Exception:
        return (ExitCode.INTERNAL, "", f"recon {day}: internal error (a bug; nothing was written "
                f"for this date):\n{traceback.format_exc().rstrip()}")
    # An input refusal was logged by the pipeline, with its run id; the summary says "refused".
    return report.exit_code, render_summary(report), ""


def _worker(connection, settings: Settings, log_setup: logs.LogOptions) -> None:
    """A --jobs worker process: runs the dates the parent sends, one at a time, and sends
    back each (exit code, summary, message); ends when the parent sends None or goes away."""
    logs.configure(log_setup)
    with signals.stop_on_signals():
        while True:
            try:
                day = connection.recv()
            except (EOFError, OSError, Interrupted):
                return
            if day is None:
                return
            try:
                result = run_date(day, settings, partial(_await_go, connection, day))
            except Interrupted as stop:
                result = (stop.exit_code, "", interrupted_message(day, stop))
            try:
                connection.send(result)
            except (OSError, Interrupted):
                return
            if signals.pending():
                return


READY, GO = "ready", "go"


def _await_go(connection, day: dt.date) -> None:
    """In a --jobs worker, before D's actions: tell the parent D is ready and wait until it says
    every earlier date of the range has ended. A parent gone or ending the range stops D."""
    connection.send((READY, day))
    try:
        message = connection.recv()
    except (EOFError, OSError):
        message = None
    if message != GO:
        raise Interrupted(signal.SIGTERM)


@dataclass
class _Slot:
    process: object
    connection: object
    day: dt.date | None = None
    ready: bool = False  # waiting for GO: its date's actions wait for the earlier dates


def run_parallel(dates: list[dt.date], settings: Settings, jobs: int, log_setup: logs.LogOptions,
                 dates_bar: logs.Progress) -> list[int]:
    """Run the dates in `jobs` worker processes; each date is still locked and atomic on its own.

    Workers are spawned, not forked: pyarrow's thread pools do not survive a fork. The parent
    gives each worker one date at a time, so it knows which date a worker was running: a
    worker that dies (SIGKILL, out of memory) costs only that date (exit 1, its transaction
    rolled back by the server or SQLite), and a fresh worker takes its place for the rest.
    SIGINT or SIGTERM to the parent is passed on to the workers: each date in flight is rolled
    back (or, past its commit, finished), no further date starts, and the parent raises
    Interrupted once every worker has ended.
    """
    # Create or check the schema once here: workers racing to create it on an empty database
    # would see each other's half-made schema.
    try:
        migrations.ensure_schema_of(settings.database_url, clock=utc_now)
    except ReconError as error:
        for day in dates:
            show_result(day, "", f"recon {day}: {error}")
        return [error.exit_code] * len(dates)
    context = multiprocessing.get_context("spawn")
    # Workers draw no progress: this process owns the terminal.
    worker_logs = dataclasses.replace(log_setup, progress=False)
    # N workers share the CPUs: each one's threads get an equal part of them.
    worker_settings = settings if settings.threads else settings.model_copy(
        update={"threads": max(1, settings.worker_threads // jobs)})

    def start() -> _Slot:
        parent_end, child_end = context.Pipe()
        process = context.Process(target=_worker, args=(child_end, worker_settings, worker_logs),
                                  name="recon-worker", daemon=True)
        process.start()
        child_end.close()
        return _Slot(process, parent_end)

    results: dict[dt.date, tuple[int, str, str]] = {}
    shown = 0  # summaries are printed in date order, each once the dates before it are done
    waiting = list(dates)
    slots = [start() for _ in range(min(jobs, len(dates)))]
    stop: Interrupted | None = None

    def finish(slot: _Slot, code: int, out: str, err: str) -> None:
        nonlocal shown
        results[slot.day] = (code, out, err)
        dates_bar.advance(1, f"{slot.day} done")
        slot.day, slot.ready = None, False
        while shown < len(dates) and dates[shown] in results:
            show_result(dates[shown], *results[dates[shown]][1:])
            shown += 1

    try:
        while True:
            try:
                for index, slot in enumerate(slots):
                    if slot.day is None and waiting and stop is None:
                        try:
                            slot.connection.send(waiting[0])
                        except OSError:  # died while idle: a fresh one gets the date next turn
                            slot.process.join()
                            slots[index] = start()
                            continue
                        slot.day = waiting.pop(0)
                # A date's actions go once every earlier date of the range has ended (dates
                # are handed out in order, so the earliest one in flight never waits).
                for slot in slots:
                    if slot.ready and all(day in results for day in dates
                                          if day < slot.day):
                        slot.ready = False
                        try:
                            slot.connection.send(GO)
                        except OSError:
                            pass  # it died: its sentinel says so below
                busy = [slot for slot in slots if slot.day is not None]
                if not busy:
                    break
                ready = wait([slot.connection for slot in busy]
                             + [slot.process.sentinel for slot in busy])
                for slot in busy:
                    if slot.connection in ready or slot.process.sentinel in ready:
                        try:
                            # A result sent just before the worker ended is still read here.
                            message = slot.connection.recv()
                            if message[0] == READY:
                                slot.ready = True
                            else:
                                finish(slot, *message)
                            continue
                        except (EOFError, OSError):
                            pass  # it died before sending its result
                        slot.process.join()
                        finish(slot, ExitCode.INTERNAL, "", _died(slot))
                        slots[slots.index(slot)] = start() if stop is None else slot
            except Interrupted as signalled:
                if stop is None:
                    stop = signalled
                    for slot in slots:
                        _signal(slot.process, signalled.signum)
    finally:
        for slot in slots:
            try:
                slot.connection.send(None)
            except (OSError, ValueError):
                pass
        for slot in slots:
            slot.process.join(timeout=30)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
    for day in dates[shown:]:  # after a stop: the dates that ended, in order
        if day in results:
            show_result(day, *results[day][1:])
    if stop is not None:
        if waiting:
            log.error("recon: stopped by %s; not started: %s", stop.name,
                      ", ".join(map(str, waiting)))
        stop.reported = True
        raise stop
    return [results[day][0] for day in dates]


def _died(slot: _Slot) -> str:
    code = slot.process.exitcode
    how = f"killed by {signal.Signals(-code).name}" if code and code < 0 else f"exit {code}"
    return (f"recon {slot.day}: the worker process running this date died ({how}); its "
            f"open transaction is rolled back (had it committed, the next run of the date "
            f"publishes its reports); rerun the date")


def _signal(process, signum: int) -> None:
    try:
        os.kill(process.pid, signum)
    except (ProcessLookupError, TypeError):
        pass
