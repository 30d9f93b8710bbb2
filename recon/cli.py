"""Command line: parse options, build settings, call the pipeline, print the summary, exit."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import traceback
from pathlib import Path

import click
from pydantic import ValidationError

from recon import pipeline
from recon.config import Settings
from recon.contract import ExitCode
from recon.errors import ReconError
from recon.sinks import database as db
from recon.summary import render_summary

log = logging.getLogger("recon")

# Worst first when a range mixes outcomes: a bug, then the database, refused input, incomplete.
SEVERITY = {ExitCode.OK: 0, ExitCode.INCOMPLETE: 1, ExitCode.INPUT_REFUSED: 2,
            ExitCode.USAGE: 3, ExitCode.DATABASE: 4, ExitCode.INTERNAL: 5}


def worst(codes: list[int]) -> int:
    return max(codes, key=SEVERITY.__getitem__, default=ExitCode.OK)


def parse_date(_ctx, param, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date in YYYY-MM-DD form") from None


def build_settings(**options) -> Settings:
    given = {key: value for key, value in options.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise click.UsageError(f"invalid setting: {problems}") from None


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s",
                                           "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger("recon")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)


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
@click.option("--max-reject-rate", type=click.FloatRange(0, 1),
              help="Share of rejected rows above which a file refuses the run (default 0.01).")
@click.option("--wait", "lock_wait_seconds", type=click.FloatRange(0), metavar="SECONDS",
              help="Wait this long for another run of the same date instead of exiting 5.")
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Run the dates of a range in this many worker processes.")
@click.option("-v", "--verbose", is_flag=True, help="Log each step to stderr.")
def run_command(date_, date_from, date_to, jobs, verbose, **options) -> None:
    """Reconcile one business date, or each date of a range.

    Example: recon run --date 2026-11-27 --inbox fixtures/inbox --out out
    """
    setup_logging(verbose)
    settings = build_settings(**options)
    dates = dates_to_run(date_, date_from, date_to, settings)
    if jobs > 1 and len(dates) > 1:
        codes = run_parallel(dates, settings, jobs, verbose)
    else:
        codes = [run_one(day, settings) for day in dates]
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


def run_one(day: dt.date, settings: Settings) -> int:
    """Run one date; print its summary; return its exit code. Never raises."""
    code, out, err = run_date(day, settings)
    if err:
        click.echo(err, err=True)
    if out:
        click.echo(out)
    return code


def run_date(day: dt.date, settings: Settings) -> tuple[int, str, str]:
    """Run one date and return (exit code, summary for stdout, message for stderr)."""
    try:
        report = pipeline.run(day, settings)
    except ReconError as error:
        return error.exit_code, "", f"recon {day}: {error}"
    except Exception:
        return (ExitCode.INTERNAL, "", f"recon {day}: internal error (a bug; nothing was written "
                f"for this date):\n{traceback.format_exc().rstrip()}")
    err = ""
    if report.exit_code == ExitCode.INPUT_REFUSED:
        err = f"recon {day}: input refused, nothing written: {report.message}"
    return report.exit_code, render_summary(report), err


def _run_date_in_worker(day: dt.date, settings: Settings, verbose: bool) -> tuple[int, str, str]:
    setup_logging(verbose)
    return run_date(day, settings)


def run_parallel(dates: list[dt.date], settings: Settings, jobs: int, verbose: bool) -> list[int]:
    """Run the dates in `jobs` worker processes; each date is still locked and atomic on its own.

    Workers are spawned, not forked: pyarrow's thread pools do not survive a fork.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    codes = []
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [pool.submit(_run_date_in_worker, day, settings, verbose) for day in dates]
        for day, future in zip(dates, futures):
            try:
                code, out, err = future.result()
            except Exception as exc:  # a worker died: count it as an internal error of its date
                code, out, err = ExitCode.INTERNAL, "", f"recon {day}: worker failed: {exc!r}"
            if err:
                click.echo(err, err=True)
            if out:
                click.echo(out)
            codes.append(code)
    return codes


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
