"""Command line: each command parses its options, calls one library function (`recon run`:
recon.ranges.run_dates) and turns the errors recon expects into their exit codes."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from pathlib import Path

import click

from recon import logs, ranges
from recon.clock import utc_now
from recon.config import Settings, settings_from_options
from recon.contract import ExitCode
from recon.db import engine, migrations
from recon.db.urls import normalise_url, safe_url_text
from recon.errors import ReconError, UsageError
from recon.profiles import load_profile, load_profiles
from recon.report.folder import make_report
from recon.sources.native import check_sample
from recon.summary import sample_check_exit_code, sample_check_lines, trend_lines

log = logging.getLogger("recon")


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
    try:
        return settings_from_options(**options)
    except UsageError as error:
        raise SettingRefused(str(error)) from None


def refuse_unusable_database(settings: Settings) -> None:
    """A database URL recon cannot use is a usage error said once, not once per date."""
    try:
        engine.refuse_unusable(normalise_url(settings.database_url))
    except ReconError as error:
        raise SettingRefused(str(error)) from None


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
    if cluster_address and jobs > 1:
        raise SettingRefused("give either --jobs or --cluster, not both")
    sys.exit(ranges.run_dates(dates, settings, jobs=jobs, cluster_address=cluster_address,
                              log_setup=log_setup))


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
    for line in trend_lines(trend, folder, date_from, date_to):
        logs.echo(line)


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
    settings = build_settings()
    try:
        profile = load_profile(profile_path)
    except ReconError as error:
        click.echo(f"recon gateways check: {error}", err=True)
        sys.exit(error.exit_code)
    result = check_sample(profile, sample, date_, settings)
    for line in sample_check_lines(result, profile, profile_path.name, rows, settings.tz):
        click.echo(line)
    sys.exit(sample_check_exit_code(result))


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
        database = engine.connect(settings.database_url)
        try:
            applied = migrations.upgrade(database, clock=utc_now)
        finally:
            database.dispose()
    except ReconError as error:
        click.echo(f"recon db upgrade: {error}", err=True)
        sys.exit(error.exit_code)
    shown = safe_url_text(settings.database_url)
    if applied:
        click.echo(f"{shown}: applied {', '.join(applied)}")
    else:
        click.echo(f"{shown}: schema already up to date")


if __name__ == "__main__":  # pragma: no cover
    main()
