"""The dates of a range on a Dask cluster (`recon run --from D1 --to D2 --cluster ADDRESS`).

One task per date, each today's `pipeline.run` for its date on whichever worker the scheduler
picks: still locked per date in the database, still one transaction. The scheduler, not recon,
decides where a date runs and runs it again elsewhere when its worker is lost; a date that fails
for its own reasons returns its exit code like any other and is not retried (the task never
raises). The killed run's `recon_runs` row is marked `abandoned` when the retry starts
(`database.start_run`), and its transaction died with its connection, so the date lands once.

Before anything is submitted every worker is asked whether it sees the inbox and can write the
out folder, and whether it shares them with the others (each writes a probe file into the out
folder that every other must see): a worker that cannot is named and nothing runs (exit 2).

`distributed` is the optional extra `recon[cluster]`; this module imports it only when a range
is run on a cluster.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from recon import logs
from recon.clock import utc_now
from recon.config import Settings
from recon.contract import ExitCode
from recon.db import migrations
from recon.db.urls import normalise_url, safe_url_text
from recon.errors import ReconError, UsageError
from recon.signals import Interrupted

log = logging.getLogger("recon")

INSTALL_HINT = "pip install 'recon[cluster]' (Dask's distributed scheduler)"
CONNECT_TIMEOUT_SECONDS = 30
WORKERS_TIMEOUT_SECONDS = 60
# How often a date waiting for earlier dates checks that its range still runs.
AWAIT_POLL_SECONDS = 2.0
# A date retried after its worker was lost may find the lost run's session still holding the
# date lock until the database notices the dead connection: wait for it, unless told otherwise.
RETRY_LOCK_WAIT_SECONDS = 120.0
PROBE_PREFIX = ".recon-cluster-check-"


class ClusterUnavailable(ReconError):
    """The Dask scheduler cannot be reached or has no workers (transient: retry later)."""

    exit_code = ExitCode.DATABASE


def require_distributed():
    """The `distributed` module, or a UsageError saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise UsageError("--cluster needs Dask's distributed package, which is not installed",
                         next_step=INSTALL_HINT) from None
    return distributed


def check_database_url(settings: Settings) -> None:
    """Every worker writes to the one database: an SQLite file lives on one machine."""
    if normalise_url(settings.database_url).get_backend_name() == "sqlite":
        shown = safe_url_text(settings.database_url)
        raise UsageError(
            f"--cluster needs a database every worker reaches; {shown} is an SQLite file of "
            f"one machine",
            next_step="give --db postgresql://... (or RECON_DATABASE_URL)")


def cluster_settings(settings: Settings) -> Settings:
    """The settings as the workers need them: folders absolute (a worker's working directory is
    its own), and a lock wait long enough for a retried date (see RETRY_LOCK_WAIT_SECONDS)."""
    update: dict = {"inbox": Path(os.path.abspath(settings.inbox)),
                    "out": Path(os.path.abspath(settings.out))}
    if settings.reason_codes is not None:
        update["reason_codes"] = Path(os.path.abspath(settings.reason_codes))
    if "lock_wait_seconds" not in settings.model_fields_set:
        update["lock_wait_seconds"] = RETRY_LOCK_WAIT_SECONDS
    return settings.model_copy(update=update)


# --- the start check: does every worker see the same inbox and out folder? ----------------------

@dataclass
class WorkerReport:
    """What one worker found when asked to look at the run's folders."""

    address: str
    host: str
    cpus: int
    nthreads: int
    problems: list[str] = field(default_factory=list)
    dates_seen: list[str] = field(default_factory=list)
    probe: str = ""  # the probe file it wrote into the out folder ("" if it could not)
    probes_seen: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"worker {self.address} (host {self.host})"


def _folder_problems(settings: Settings) -> list[str]:
    problems = []
    inbox = settings.inbox
    if not inbox.is_dir() or not os.access(inbox, os.R_OK | os.X_OK):
        problems.append(f"cannot see the inbox {inbox}")
    try:
        settings.out.mkdir(parents=True, exist_ok=True)
        if not os.access(settings.out, os.W_OK | os.X_OK):
            problems.append(f"cannot write the out folder {settings.out}")
    except OSError as error:
        problems.append(f"cannot write the out folder {settings.out}: {error.strerror or error}")
    return problems


def _look(settings: Settings, days: list[str], token: str, dask_worker=None) -> WorkerReport:
    """On each worker: its folder problems, the range's date folders it sees, and a probe file
    written into the out folder for the other workers to find."""
    report = WorkerReport(address=dask_worker.address, host=socket.gethostname(),
                          cpus=os.cpu_count() or 1, nthreads=dask_worker.state.nthreads,
                          problems=_folder_problems(settings))
    if settings.inbox.is_dir():
        report.dates_seen = [day for day in days if (settings.inbox / day).is_dir()]
    if not report.problems:
        probe = settings.out / f"{PROBE_PREFIX}{token}-{uuid.uuid4().hex[:8]}"
        try:
            probe.write_text(f"{report.name}\n", encoding="utf-8")
            report.probe = probe.name
        except OSError as error:
            report.problems.append(f"cannot write the out folder {settings.out}: "
                                   f"{error.strerror or error}")
    return report


def _probes_seen(out: Path, token: str) -> list[str]:
    try:
        return sorted(path.name for path in out.glob(f"{PROBE_PREFIX}{token}-*"))
    except OSError:
        return []


def _remove_probe(out: Path, name: str) -> None:
    if name:
        try:
            (out / name).unlink()
        except OSError:
            pass


def shared_folder_problems(reports: list[WorkerReport], inbox: Path, out: Path) -> list[str]:
    """One line per worker that cannot take part, naming it and saying why (pure)."""
    lines = []
    written = {report.probe for report in reports if report.probe}
    every_date = sorted({day for report in reports for day in report.dates_seen})
    for report in sorted(reports, key=lambda r: r.address):
        problems = list(report.problems)
        if report.probe and not written <= set(report.probes_seen):
            missing = len(written - set(report.probes_seen))
            problems.append(f"does not share the out folder {out} with the other workers "
                            f"(misses the check files of {missing} of {len(written)})")
        if not report.problems and len(report.dates_seen) < len(every_date):
            problems.append(f"sees {len(report.dates_seen)} of the {len(every_date)} date "
                            f"folders in {inbox} that other workers see (not the shared inbox?)")
        lines += [f"{report.name} {problem}" for problem in problems]
    return lines


def check_workers(client, settings: Settings, days: list[str]) -> list[WorkerReport]:
    """Ask every worker about the folders; raise UsageError naming each one that cannot."""
    token = uuid.uuid4().hex[:12]
    reports = list(client.run(_look, settings, days, token).values())
    seen = client.run(_probes_seen, settings.out, token)
    for report in reports:
        report.probes_seen = seen.get(report.address, [])
    for report in reports:
        if report.probe:
            client.run(_remove_probe, settings.out, report.probe, workers=[report.address])
    problems = shared_folder_problems(reports, settings.inbox, settings.out)
    if problems:
        for line in problems:
            log.error("recon cluster: %s", line)
        raise UsageError(
            f"{len(problems)} problem(s) with the shared folders on {len(reports)} worker(s) "
            f"(listed above); nothing was run",
            next_step="mount the inbox and out folders at the same paths on every worker")
    return reports


def threads_per_date(reports: list[WorkerReport]) -> dict[str, int]:
    """Per worker, its share of its host's CPUs for one date (workers on a host share them)."""
    slots: dict[str, int] = {}
    for report in reports:
        slots[report.host] = slots.get(report.host, 0) + report.nthreads
    return {report.address: max(1, report.cpus // slots[report.host]) for report in reports}


# --- the task that runs on a worker ---------------------------------------------------------

_worker_logging_format: str | None = None


def _worker_logging(log_format: str) -> None:
    """The worker's own log gets every step (its stderr), whatever its terminal.

    Not logs.configure: that would remove the handlers of other dates running on the worker
    (_ForwardToClient).
    """
    global _worker_logging_format
    if _worker_logging_format == log_format:
        return
    logger = logging.getLogger(logs.LOGGER_NAME)
    for handler in [h for h in logger.handlers if getattr(h, "recon_worker_console", False)]:
        logger.removeHandler(handler)
    console = logging.StreamHandler()
    console.setFormatter(logs.formatter(log_format))
    console.recon_worker_console = True
    logger.addHandler(console)
    logger.setLevel(logging.INFO)
    _worker_logging_format = log_format


class _ForwardToClient(logging.Handler):
    """Sends the log records of one date's run to the client that submitted it, as events of
    that client's own topic (Client.forward_logging would send every recon record of the
    cluster to every client)."""

    def __init__(self, worker, topic: str, day: str) -> None:
        super().__init__(logging.INFO)
        self.worker, self.topic, self.day = worker, topic, day

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "business_date", None) != self.day:
            return  # another date's run on another thread of this worker
        attributes = dict(record.__dict__)
        attributes.update(msg=record.getMessage(), args=None, exc_info=None,
                          exc_text=self.formatter.formatException(record.exc_info)
                          if record.exc_info and self.formatter else record.exc_text)
        attributes.pop("message", None)
        self.worker.log_event(self.topic, attributes)


def run_date_task(day: dt.date, settings: Settings, log_format: str, log_topic: str,
                  threads: dict[str, int], run_date, batch: str = "",
                  earlier: tuple[str, ...] = ()) -> tuple[int, str, str]:
    """One date on a worker: (exit code, summary, error message). Never raises, so the scheduler
    retries a date only when its worker is lost, never for the date's own failure.

    `earlier`: the range's dates before this one; its actions wait until the client has seen
    each of them end (_await_dates)."""
    from distributed import get_worker

    worker = get_worker()
    _worker_logging(log_format)
    if not settings.threads:
        own_share = max(1, (os.cpu_count() or 1) // max(1, worker.state.nthreads))
        share = threads.get(worker.address) or own_share
        settings = settings.model_copy(update={"threads": share})
    # A worker that joined after the start check gets the check's first half here.
    problems = _folder_problems(settings)
    if problems:
        return (ExitCode.USAGE, "", f"recon {day}: worker {worker.address} (host "
                f"{socket.gethostname()}) {'; '.join(problems)}; nothing was run for this date")
    forward = _ForwardToClient(worker, log_topic, day.isoformat())
    forward.setFormatter(logs.formatter(log_format))
    logger = logging.getLogger(logs.LOGGER_NAME)
    logger.addHandler(forward)
    await_earlier = partial(_await_dates, batch, earlier, worker.get_current_task()) \
        if earlier else None
    try:
        return run_date(day, settings, await_earlier)
    finally:
        logger.removeHandler(forward)


def _date_done(batch: str, day: str) -> str:
    return f"recon-done-{batch}-{day}"


def _await_dates(batch: str, days: tuple[str, ...], key) -> None:
    """On a worker, before a date's actions: wait until the client has seen each of `days` end
    (it sets their events), off the worker's thread pool meanwhile (secede: the earlier dates
    may need its threads). The range stopped, or this task released (its client gone), stops
    the date."""
    from distributed import Event, get_worker, rejoin, secede

    worker = get_worker()
    stop = Event(_date_done(batch, "stop"))
    secede()
    try:
        for day in days:
            done = Event(_date_done(batch, day))
            while not done.wait(timeout=AWAIT_POLL_SECONDS):
                task = worker.state.tasks.get(key)
                if stop.is_set() or task is None or task.state in ("cancelled", "released",
                                                                     "forgotten"):
                    raise Interrupted(signal.SIGTERM)
    finally:
        rejoin()


def _show_forwarded(event) -> None:
    """A worker's log record, handled by the client's recon logger (terminal, --log-file)."""
    _, attributes = event
    record = logging.makeLogRecord(attributes)
    logging.getLogger(logs.LOGGER_NAME).handle(record)


# --- the client side ----------------------------------------------------------------------------

def run_range(address: str, dates: list[dt.date], settings: Settings,
              log_setup: logs.LogOptions, dates_bar: logs.Progress, show_result,
              run_date) -> list[int]:
    """Run each date as one task on the cluster at `address`; show each date's result as it
    finishes; return the exit codes. Raises ReconError for the cluster as a whole (unreachable,
    no workers, folders not shared) before anything runs.

    `run_date(day, settings) -> (exit code, summary, error)` is the per-date work (recon.ranges.run_date);
    `show_result(day, summary, error)` prints one date's result.
    """
    distributed = require_distributed()
    check_database_url(settings)
    settings = cluster_settings(settings)
    days = [day.isoformat() for day in dates]
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT_SECONDS,
                                    set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise ClusterUnavailable(f"Dask scheduler {address} unavailable: {error}",
                                 next_step="check the scheduler is up and the address "
                                           "(--cluster or RECON_DASK_SCHEDULER), then rerun") \
            from None
    try:
        try:
            client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_SECONDS)
        except TimeoutError:
            raise ClusterUnavailable(
                f"Dask scheduler {address} has no worker after {WORKERS_TIMEOUT_SECONDS}s",
                next_step="start workers (`dask worker ADDRESS`), then rerun") from None
        reports = check_workers(client, settings, days)
        log.info("running %d date(s) on %s: %d worker(s), %d thread(s)", len(dates), address,
                 len(reports), sum(report.nthreads for report in reports))
        # Create or check the schema once, on a worker (it is the workers that must reach the
        # database): workers racing to create it would see each other's half-made schema.
        problem = client.submit(_prepare_database, settings, pure=False,
                                key=f"recon-schema-{uuid.uuid4().hex[:8]}").result()
        if problem is not None:
            code, message = problem
            for day in dates:
                show_result(day, "", f"recon {day}: {message}")
            return [code] * len(dates)
        threads = threads_per_date(reports)
        batch = uuid.uuid4().hex[:8]
        log_topic = f"recon-log-{batch}"
        client.subscribe_topic(log_topic, _show_forwarded)
        # Each date's actions wait for the dates before it (pipeline.run's await_earlier): the
        # client sets a date's event once it has seen the date end, however it ended.
        futures = {client.submit(run_date_task, day, settings, log_setup.format, log_topic,
                                 threads, run_date, batch, tuple(days[:position]),
                                 key=f"recon-run-{day}-{batch}", pure=False): day
                   for position, day in enumerate(dates)}
        codes = []
        try:
            for future in distributed.as_completed(list(futures), loop=client.loop):
                day = futures[future]
                try:
                    code, out, err = future.result()
                except distributed.KilledWorker as lost:
                    code, out, err = ExitCode.INTERNAL, "", (
                        f"recon {day}: every worker that ran this date was lost ({lost}); "
                        f"nothing was written for it -- out of memory? see the workers' logs")
                except Exception as error:  # the scheduler went away, say
                    code, out, err = ExitCode.INTERNAL, "", (
                        f"recon {day}: lost track of this date on the cluster: {error!r}")
                distributed.Event(_date_done(batch, day.isoformat()), client=client).set()
                show_result(day, out, err)
                dates_bar.advance(1, f"{day} done")
                codes.append(code)
        except BaseException:
            # Ctrl-C: dates not started are dropped; a date already running on a worker
            # finishes (or not) on its own, atomically either way; one waiting for earlier
            # dates stops.
            try:
                distributed.Event(_date_done(batch, "stop"), client=client).set()
            except Exception:  # noqa: BLE001 - the scheduler may be gone: the tasks see that
                pass
            client.cancel(list(futures))
            raise
        return codes
    finally:
        client.close()  # its topic subscriptions go with it


def _prepare_database(settings: Settings) -> tuple[int, str] | None:
    try:
        migrations.ensure_schema_of(settings.database_url, clock=utc_now)
    except ReconError as error:
        return error.exit_code, str(error)
    return None
