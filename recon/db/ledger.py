"""The run ledger (recon_runs): a run recorded as running, closed with its outcome, and the
publishing of its reports. The caller gives the moments; nothing here reads the clock."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from recon.db.engine import Database, reachable
from recon.db.tables import timestamp_text
from recon.errors import DatabaseUnavailable
from recon.protect import mask_cards_in_text


def start_run(database: Database, run_id: str, business_date: str, version: str, *,
              started_at: dt.datetime) -> None:
    """Record the run as running, and mark runs of D that died without finishing as abandoned."""
    with reachable(database), database.engine.begin() as connection:
        connection.execute(sa.text(
            "UPDATE recon_runs SET outcome = 'abandoned', message = 'process ended before "
            "finishing (killed or crashed)' WHERE business_date = :d AND outcome = 'running'"),
            {"d": business_date})
        connection.execute(sa.text(
            "INSERT INTO recon_runs (run_id, business_date, started_at, outcome, host, pid, "
            "recon_version, database_url) VALUES (:run_id, :d, :started, 'running', :host, :pid, "
            ":version, :url)"),
            {"run_id": run_id, "d": business_date, "started": timestamp_text(started_at),
             "host": socket.gethostname(), "pid": os.getpid(), "version": version,
             "url": database.shown_url})


FINISH = ("UPDATE recon_runs SET ended_at = :ended, outcome = :outcome, exit_code = :exit_code, "
          "input_digests = :digests, counts = :counts, message = :message WHERE run_id = :run_id")


def close_run(connection: Connection, run_id: str, outcome: str, exit_code: int, digests: dict,
              counts: dict, message: str, *, ended_at: dt.datetime,
              only_unfinished: bool = False) -> None:
    """Record the run's end inside the caller's transaction: its outcome, the digests of its
    inputs and its counts (no full card number stored). `only_unfinished` leaves a run already
    closed as it is."""
    statement = FINISH + (" AND outcome IN ('running', 'abandoned')" if only_unfinished else "")
    connection.execute(sa.text(statement), {
        "ended": timestamp_text(ended_at), "outcome": outcome, "exit_code": exit_code,
        # File names as every other output shows them (a name can hold a card number); the
        # digests themselves are hex, never masked.
        "digests": json.dumps({mask_cards_in_text(str(name)): digest
                               for name, digest in digests.items()}, sort_keys=True),
        "counts": mask_cards_in_text(json.dumps(counts, sort_keys=True, default=str)),
        "message": mask_cards_in_text(message),
        "run_id": run_id})


def record_reports_path(connection: Connection, run_id: str, reports_path: str | None) -> None:
    """The reports that go with the run's results, published once the transaction commits."""
    connection.execute(sa.text("UPDATE recon_runs SET reports_path = :p WHERE run_id = :r"),
                       {"p": reports_path, "r": run_id})


def finish_run_without_results(database: Database, run_id: str, outcome: str, exit_code: int,
                               message: str, *, ended_at: dt.datetime) -> None:
    """Close a run that wrote nothing (refused or failed); D's results stay as they were.
    A run already closed as done or incomplete (a COMMIT that went through) stays so."""
    with reachable(database), database.engine.begin() as connection:
        close_run(connection, run_id, outcome, exit_code, {}, {}, message, ended_at=ended_at,
                  only_unfinished=True)


@dataclass
class CommittedRun:
    """The run whose results D's tables hold, and the reports recorded with them."""

    run_id: str
    reports_path: str | None
    published: bool


def committed_run(database: Database, business_date: str) -> CommittedRun | None:
    """The last run of D that committed results (outcome done or incomplete), None if none."""
    with reachable(database), database.engine.connect() as connection:
        row = connection.execute(sa.text(
            "SELECT run_id, reports_path, reports_published_at FROM recon_runs "
            "WHERE business_date = :d AND outcome IN ('done', 'incomplete') "
            "ORDER BY ended_at DESC, started_at DESC LIMIT 1"), {"d": business_date}).first()
    if row is None:
        return None
    return CommittedRun(row.run_id, row.reports_path, row.reports_published_at is not None)


def run_outcome(database: Database, run_id: str) -> str | None:
    """The ledger's outcome of a run, read afresh; None when the database cannot say."""
    try:
        with reachable(database), database.engine.connect() as connection:
            return connection.execute(sa.text(
                "SELECT outcome FROM recon_runs WHERE run_id = :r"), {"r": run_id}).scalar()
    except (DatabaseUnavailable, SQLAlchemyError):
        return None


def mark_published(database: Database, run_id: str, *, at: dt.datetime) -> None:
    """Record that OUT/<D> shows the run's reports since `at`."""
    with reachable(database), database.engine.begin() as connection:
        connection.execute(sa.text(
            "UPDATE recon_runs SET reports_published_at = :at WHERE run_id = :r"),
            {"at": timestamp_text(at), "r": run_id})
