"""Command line: parse options, build settings, call the pipeline, print the summary, exit."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import click
import pandas as pd
from pydantic import ValidationError

from recon import logs, pipeline, signals
from recon.config import Settings
from recon.contract import ExitCode
from recon.errors import ReconError
from recon.profiles import load_profile, load_profiles
from recon.sinks.safety import mask_cards_in_text
from recon.report.folder import make_report
from recon.report.trend import ACTIONS_BY_DAY_COLUMNS
from recon.signals import Interrupted
from recon.sinks import database as db
from recon.summary import render_summary

log = logging.getLogger("recon")

# Worst first when a range mixes outcomes: a bug, then the database, refused input, incomplete.
# A date stopped by a signal (a --jobs worker signalled on its own) ranks just below a bug.
SEVERITY = {ExitCode.OK: 0, ExitCode.INCOMPLETE: 1, ExitCode.INPUT_REFUSED: 2,
            ExitCode.USAGE: 3, ExitCode.DATABASE: 4, ExitCode.INTERRUPTED: 5,
            ExitCode.TERMINATED: 6, ExitCode.INTERNAL: 7}


def worst(codes: list[int]) -> int:
    return max(codes, key=SEVERITY.__getitem__, default=ExitCode.OK)


def parse_date(_ctx, param, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date in YYYY-MM-DD form") from None


class SettingRefused(click.ClickException):
    """A setting (option or RECON_* variable) that cannot be used: one line, exit 2."""

    exit_code = ExitCode.USAGE

    def show(self, file=None) -> None:
        click.echo(f"recon: {self.format_message()}", err=True)


def build_settings(**options) -> Settings:
    given = {key: value for key, value in options.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(f"{_setting_name(e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                             for e in exc.errors())
        raise SettingRefused(f"invalid setting: {problems}") from None


def refuse_unusable_database(settings: Settings) -> None:
    """A database URL recon cannot use is a usage error said once, not once per date."""
    try:
        db.refuse_unusable(db.normalise_url(settings.database_url))
    except ReconError as error:
        raise SettingRefused(str(error)) from None


def _setting_name(location: tuple) -> str:
    """`timezone` -> `RECON_TIMEZONE`, the name an operator set it by (or its option)."""
    field = ".".join(map(str, location))
    return f"{field} (RECON_{field.upper()})" if field else "settings"


def log_options(command):
    """--log-format, --log-file and -v, shared by the commands that log (see recon.logs)."""
    command = click.option(
        "-v", "--verbose", is_flag=True,
        help="Log every step to stderr even when it is not a terminal (cron, systemd).")(command)
    command = click.option(
        "--log-file", type=click.Path(path_type=Path, dir_okay=False), envvar="RECON_LOG_FILE",
        help="Also append every step's log line to this file (reopened after logrotate).")(command)
    return click.option(
        "--log-format", type=click.Choice(logs.FORMATS), default="text", show_default=True,
        envvar="RECON_LOG_FORMAT",
        help="text for people; json (one object per line) for log shippers.")(command)


def setup_logging(log_format: str, log_file: Path | None, verbose: bool) -> logs.LogOptions:
    options = logs.LogOptions(format=log_format, verbose=verbose, file=log_file)
    logs.configure(options)
    return options


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="recon")
def main() -> None:
    """Reconcile car-loan auto-debit collections for a business date.

    Example: recon run --date 2026-11-27 --inbox ./inbox --out ./out
    """
    # What recon creates (reports, the SQLite file and its lock files) is for owner and group.
    os.umask(os.umask(0o007) | 0o007)


@main.command("run")
@click.option("--date", "date_", callback=parse_date, metavar="D",
              help="Business date YYYY-MM-DD (default: yesterday in RECON_TIMEZONE).")
@click.option("--from", "date_from", callback=parse_date, metavar="D1", help="First date of a range.")
@click.option("--to", "date_to", callback=parse_date, metavar="D2", help="Last date of a range.")
@click.option("--inbox", type=click.Path(path_type=Path), help="Inbox folder (default ./inbox).")
@click.option("--out", type=click.Path(path_type=Path), help="Output folder (default ./out).")
@click.option("--db", "database_url", metavar="URL",
              help="Database URL (default RECON_DATABASE_URL, else sqlite:///recon.db).")
@click.option("--reason-codes", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="CSV scheme,response_code,root_cause adding to the default code maps.")
@click.option("--retry-policy", type=click.Path(path_type=Path, dir_okay=False),
              help="TOML file adjusting the retry plan's policy (default RECON_RETRY_POLICY, "
                   "else the built-in defaults).")
@click.option("--notice-templates", type=click.Path(path_type=Path, dir_okay=False),
              help="TOML overriding the borrower notice templates and policy "
                   "(default RECON_NOTICE_TEMPLATES, else the shipped ones).")
@click.option("--max-reject-rate", type=click.FloatRange(0, 1),
              help="Share of rejected rows above which a file refuses the run (default 0.01).")
@click.option("--profiles", type=click.Path(path_type=Path, file_okay=False),
              help="Folder of gateway profiles (*.toml, docs/FORMATS.md); default RECON_PROFILES.")
@click.option("--wait", "lock_wait_seconds", type=click.FloatRange(0), metavar="SECONDS",
              help="Wait this long for another run of the same date instead of exiting 5.")
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Run the dates of a range in this many worker processes.")
@click.option("--cluster", "cluster_address", metavar="ADDRESS", envvar="RECON_DASK_SCHEDULER",
              help="Run each date as a task on this Dask scheduler (tcp://HOST:8786); needs "
                   "recon[cluster], PostgreSQL and folders shared with the workers.")
@log_options
def run_command(date_, date_from, date_to, jobs, cluster_address, log_format, log_file, verbose,
                **options) -> None:
    """Reconcile one business date, or each date of a range.

    Example: recon run --date 2026-11-27 --inbox fixtures/inbox --out out
    """
    log_setup = setup_logging(log_format, log_file, verbose)
    settings = build_settings(**options)
    refuse_unusable_database(settings)
    dates = dates_to_run(date_, date_from, date_to, settings)
    if cluster_address:
        sys.exit(worst(run_on_cluster(cluster_address, dates, settings, jobs, log_setup)))
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
            sys.exit(stop.exit_code)
    sys.exit(worst(codes))


def dates_to_run(date_, date_from, date_to, settings: Settings) -> list[dt.date]:
    if date_ and (date_from or date_to):
        raise click.UsageError("give either --date or --from/--to, not both")
    if bool(date_from) != bool(date_to):
        raise click.UsageError("--from and --to go together")
    if date_from:
        if date_to < date_from:
            raise click.UsageError("--to is before --from")
        return [date_from + dt.timedelta(days=n) for n in range((date_to - date_from).days + 1)]
    if date_:
        return [date_]
    return [dt.datetime.now(settings.tz).date() - dt.timedelta(days=1)]


def run_on_cluster(address: str, dates: list[dt.date], settings: Settings, jobs: int,
                   log_setup: logs.LogOptions) -> list[int]:
    """The dates as tasks on a Dask cluster (recon/cluster.py); a problem with the cluster as a
    whole (not installed, SQLite, unreachable, folders not shared) is one line and its exit."""
    from recon import cluster

    try:
        if jobs > 1:
            raise SettingRefused("give either --jobs or --cluster, not both")
        with logs.progress(f"recon {dates[0]}..{dates[-1]}", len(dates),
                           shown=len(dates) > 1) as dates_bar:
            return cluster.run_range(address, dates, settings, log_setup, dates_bar,
                                     show_result, run_date)
    except ReconError as error:
        log.error("recon run --cluster: %s", error)
        sys.exit(error.exit_code)


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


def run_date(day: dt.date, settings: Settings) -> tuple[int, str, str]:
    """Run one date and return (exit code, summary for stdout, message for stderr)."""
    try:
        report = pipeline.run(day, settings)
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
                result = run_date(day, settings)
            except Interrupted as stop:
                result = (stop.exit_code, "", interrupted_message(day, stop))
            try:
                connection.send(result)
            except (OSError, Interrupted):
                return
            if signals.pending():
                return


@dataclass
class _Slot:
    process: object
    connection: object
    day: dt.date | None = None


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
    import multiprocessing
    from multiprocessing.connection import wait

    # Create or check the schema once here: workers racing to create it on an empty database
    # would see each other's half-made schema.
    try:
        db.ensure_schema_of(settings.database_url)
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
        slot.day = None
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
                busy = [slot for slot in slots if slot.day is not None]
                if not busy:
                    break
                ready = wait([slot.connection for slot in busy]
                             + [slot.process.sentinel for slot in busy])
                for slot in busy:
                    if slot.connection in ready or slot.process.sentinel in ready:
                        try:
                            # A result sent just before the worker ended is still read here.
                            finish(slot, *slot.connection.recv())
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


@main.command("report")
@click.option("--from", "date_from", callback=parse_date, metavar="D1",
              help="First business date (default: 29 days before --to).")
@click.option("--to", "date_to", callback=parse_date, metavar="D2",
              help="Last business date (default: yesterday in RECON_TIMEZONE).")
@click.option("--db", "database_url", metavar="URL",
              help="Database URL (default RECON_DATABASE_URL, else sqlite:///recon.db).")
@click.option("--out", type=click.Path(path_type=Path),
              help="Folder to write report_<D1>_<D2>/ into (default ./out).")
@log_options
def report_command(date_from, date_to, database_url, out, log_format, log_file, verbose) -> None:
    """Trend report over the stored results: CSV tables and an HTML page with charts.

    Writes OUT/report_<D1>_<D2>/report.html (self-contained, opens offline) and by_day.csv,
    by_gateway.csv, by_root_cause.csv, by_days_past_due.csv, retry_plan_by_day.csv,
    actions_by_day.csv (notices by channel, watchlist by risk).

    Example: recon report --from 2026-11-01 --to 2026-11-30 --out /shared/recon
    """
    setup_logging(log_format, log_file, verbose)
    settings = build_settings(database_url=database_url, out=out)
    now = dt.datetime.now(settings.tz)
    date_to = date_to or now.date() - dt.timedelta(days=1)
    date_from = date_from or date_to - dt.timedelta(days=29)
    if date_to < date_from:
        raise click.UsageError("--to is before --from")
    try:
        folder, trend = make_report(settings.database_url, settings.out, date_from, date_to,
                                    generated_at=f"{now:%Y-%m-%d %H:%M} {settings.timezone}")
    except ReconError as error:
        log.error("recon report: %s", error)
        sys.exit(error.exit_code)
    days = trend.by_day
    logs.echo(f"recon report {date_from}..{date_to}: {len(days)} of {len(trend.days)} dates have "
              f"results; {int(days['installments'].sum()):,} installments, "
              f"{int(days['not_collected'].sum()):,} not collected")
    plan = trend.retry_plan
    for day, actions in plan.groupby("business_date", sort=True):
        logs.echo(f"  {day} retry plan: " + ", ".join(
            f"{row.action} {row.rows:,}" for row in actions.itertuples()))
    notice_actions = trend.actions_by_day
    logs.echo(f"  notices {int(notice_actions['notices_sms'].sum()):,} SMS, "
              f"{int(notice_actions['notices_call'].sum()):,} calls, "
              f"{int(notice_actions['notices_cancelled'].sum()):,} withdrawn; watchlist rows "
              f"{int(notice_actions[ACTIONS_BY_DAY_COLUMNS[4:]].sum().sum()):,} (actions_by_day.csv)")
    logs.echo(f"  report in {folder}/report.html (and by_day.csv, by_gateway.csv, "
              f"by_root_cause.csv, by_days_past_due.csv, retry_plan_by_day.csv, "
              f"actions_by_day.csv)")


@main.group("gateways")
def gateways_group() -> None:
    """Gateway profiles: how each gateway's own settlement file is read (docs/FORMATS.md)."""


@gateways_group.command("list")
@click.option("--profiles", type=click.Path(path_type=Path, file_okay=False),
              help="Folder of gateway profiles (default RECON_PROFILES).")
def gateways_list(profiles: Path | None) -> None:
    """Show the configured gateways, their formats and how each proves its file complete.

    Example: recon gateways list --profiles /etc/recon/profiles
    """
    settings = build_settings(profiles=profiles)
    try:
        configured = load_profiles(settings.profiles)
    except ReconError as error:
        click.echo(f"recon gateways list: {error}", err=True)
        sys.exit(error.exit_code)
    if not configured:
        click.echo("no gateway profiles configured (--profiles / RECON_PROFILES): every gateway "
                   "sends settlement_<GATEWAY>.csv + .ctl")
        return
    click.echo(f"{'gateway':<14} {'format':<12} {'files':<32} {'encoding':<9} {'proof':<8} "
               f"{'scheme':<22} profile")
    for profile in sorted(configured.by_gateway.values(), key=lambda p: p.key):
        click.echo(f"{profile.gateway:<14} {profile.format:<12} {profile.file_pattern():<32} "
                   f"{profile.encoding:<9} {profile.completeness.method:<8} "
                   f"{profile.scheme:<22} {profile.source.name}")
    click.echo("any other gateway: the contract CSV settlement_<GATEWAY>.csv + .ctl")


@gateways_group.command("check")
@click.option("--profile", "profile_path", required=True,
              type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="The gateway profile (TOML) to read the sample with.")
@click.option("--date", "date_", callback=parse_date, metavar="D",
              help="Business date the sample is for (checks a .ctl's business_date).")
@click.option("--rows", type=click.IntRange(0), default=10, show_default=True,
              help="How many records to show.")
@click.argument("sample", type=click.Path(path_type=Path, exists=True, dir_okay=False))
def gateways_check(profile_path: Path, date_, rows: int, sample: Path) -> None:
    """Read SAMPLE with a profile: the first records as recon reads them, the completeness
    verdict and every problem. Exit 0: readable and proven complete; 4: readable but not proven
    complete; 3: unreadable, or rows rejected; 2: the profile is wrong.

    Example: recon gateways check --profile profiles/unionpay.toml inbox/2026-11-27/CUP_20261127.dat
    """
    from recon.classify import fmt_local, fmt_yuan
    from recon.sources.native import check_sample

    settings = build_settings()
    try:
        profile = load_profile(profile_path)
    except ReconError as error:
        click.echo(f"recon gateways check: {error}", err=True)
        sys.exit(error.exit_code)
    result = check_sample(profile, sample, date_, settings)
    click.echo(f"{result.display}: read as {profile.format} for gateway {profile.gateway} "
               f"({profile_path.name})")
    if result.refused:
        click.echo(f"  REFUSED: {result.refused}")
        sys.exit(ExitCode.INPUT_REFUSED)
    records = result.records
    click.echo(f"  {result.rows_read} record(s): {len(records)} used, "
               f"{len(result.rejects)} rejected")
    if len(records) and rows:
        shown = records.head(rows)
        table = pd.DataFrame({
            "line": shown["line"].astype(str), "gateway_txn_id": shown["gateway_txn_id"],
            "instruction_id": shown["instruction_id"], "amount": fmt_yuan(shown["amount"]),
            "status": shown["status"], "response_code": shown["response_code"],
            "txn_time": fmt_local(shown["txn_time"], settings.tz),
            "response_msg": shown["response_msg"].str.slice(0, 30)})
        click.echo(mask_cards_in_text(table.to_string(index=False)))
    click.echo(f"  completeness: {result.verdict}")
    for problem in result.rejects.itertuples(index=False):
        where = f"line {problem.line}" if pd.notna(problem.line) else "file"
        column = f", column {problem.column}" if problem.column else ""
        click.echo(mask_cards_in_text(f"  problem: {where}{column}, value {problem.value!r}: "
                                      f"{problem.reason}"))
    if len(result.rejects):
        sys.exit(ExitCode.INPUT_REFUSED)
    sys.exit(ExitCode.OK if result.complete else ExitCode.INCOMPLETE)


@main.group("db")
def db_group() -> None:
    """Database schema commands."""


@db_group.command("upgrade")
@click.option("--db", "database_url", metavar="URL",
              help="Database URL (default RECON_DATABASE_URL, else sqlite:///recon.db).")
def db_upgrade(database_url: str | None) -> None:
    """Apply the schema migrations this database has not had yet.

    Example: RECON_DATABASE_URL=postgresql://recon@dbhost/recon recon db upgrade
    """
    settings = build_settings(database_url=database_url)
    try:
        database = db.connect(settings.database_url)
        try:
            applied = db.upgrade(database)
        finally:
            database.dispose()
    except ReconError as error:
        click.echo(f"recon db upgrade: {error}", err=True)
        sys.exit(error.exit_code)
    shown = db.safe_url_text(settings.database_url)
    if applied:
        click.echo(f"{shown}: applied {', '.join(applied)}")
    else:
        click.echo(f"{shown}: schema already up to date")


if __name__ == "__main__":  # pragma: no cover
    main()
