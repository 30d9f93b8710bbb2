"""Shared helpers of the database integration tests: run the CLI as a real process, snapshot a
date's rows, read the hand-derived expectations."""

from __future__ import annotations

import csv
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from recon.db.urls import normalise_url
from tests.conftest import FIXTURES, ROOT

DAYS = ["2026-11-27", "2026-11-28"]
RESULT_TABLES = {
    "installment_outcomes": "loan_id, installment_no",
    "settlement_exceptions": "gateway, gateway_txn_id, kind",
    "input_rejects": "file, line, column_name, reason",
    "retry_plan": "subject, loan_id, installment_no, gateway_txn_id",
    "watchlist": "risk, loan_id, evidence",
}


def expected_exit_code(day: str) -> int:
    return int((FIXTURES / "expected" / day / "expected_exit_code.txt").read_text())


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def expected_outcomes(day: str) -> dict[tuple[str, int], tuple[str, str | None]]:
    """(loan_id, installment_no) -> (status, root_cause or None), as derived by hand."""
    return {(row["loan_id"], int(row["installment_no"])): (row["status"], row["root_cause"] or None)
            for row in read_rows(FIXTURES / "expected" / day / "expected_outcomes.csv")}


def amounts_due_from_inbox(day: str) -> dict[tuple[str, int], Decimal]:
    """amount_due per installment key, read straight from installments.csv (keys whose rows
    disagree are left out: those rows are rejected)."""
    with open(FIXTURES / "inbox" / day / "installments.csv", encoding="utf-8-sig",
              newline="") as handle:
        reader = csv.reader(handle)
        header = [name.strip().lower() for name in next(reader)]
        amounts: dict[tuple[str, int], set[str]] = {}
        for values in reader:
            row = dict(zip(header, (value.strip() for value in values)))
            if not row.get("installment_no", "").isdigit():
                continue
            key = (row["loan_id"], int(row["installment_no"]))
            amounts.setdefault(key, set()).add(row["amount_due"])
    return {key: Decimal(next(iter(found))) for key, found in amounts.items() if len(found) == 1}


def copy_day(day: str, inbox: Path) -> Path:
    """A private copy of a fixture day, to break or change without touching fixtures/."""
    target = inbox / day
    shutil.copytree(FIXTURES / "inbox" / day, target)
    return target


def engine_for(url: str) -> sa.Engine:
    return sa.create_engine(normalise_url(url))


def query(url: str, sql: str, **params) -> list[sa.Row]:
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(sql), params))
    finally:
        engine.dispose()


def snapshot(url: str, day: str) -> dict[str, list[dict]]:
    """Every row of the result tables for `day`, in a stable order, run_id included."""
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            return {table: [dict(row._mapping) for row in connection.execute(sa.text(
                        f"SELECT * FROM {table} WHERE business_date = :d ORDER BY {order}"),
                        {"d": day})]
                    for table, order in RESULT_TABLES.items()}
    finally:
        engine.dispose()


def runs(url: str, day: str) -> list[sa.Row]:
    return query(url, "SELECT * FROM recon_runs WHERE business_date = :d ORDER BY started_at",
                 d=day)


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("RECON_", "PG"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def recon(*args: str, cwd: Path, timeout: float = 120, env: dict | None = None
          ) -> subprocess.CompletedProcess:
    """`recon ARGS` as a real process (exit code, stdout and stderr as cron sees them)."""
    return subprocess.run([sys.executable, "-m", "recon.cli", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=timeout, env=env or subprocess_env())


def recon_run(day: str, url: str, work: Path, *extra: str, inbox: Path | None = None,
              **kwargs) -> subprocess.CompletedProcess:
    return recon("run", "--date", day, "--inbox", str(inbox or FIXTURES / "inbox"),
                 "--out", str(work / "out"), "--db", url, *extra, cwd=work, **kwargs)


def start_recon_run(day: str, url: str, work: Path, *extra: str) -> subprocess.Popen:
    """`recon run` of `day` started in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "recon.cli", "run", "--date", day, "--inbox",
         str(FIXTURES / "inbox"), "--out", str(work / "out"), "--db", url, *extra],
        cwd=work, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=subprocess_env())


def wait_for_stderr_line(process: subprocess.Popen, text: str, timeout: float = 60) -> str:
    """Read `process`' stderr until a line holding `text` (returned); AssertionError if the
    process ends or `timeout` passes first. Lines read are kept in `process.stderr_seen`."""
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in process.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen = process.stderr_seen = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no stderr line with {text!r} in {timeout}s: {seen}") from None
        if line is None:
            raise AssertionError(f"process ended without a line with {text!r}: {seen}")
        seen.append(line)
        if text in line:
            return line


class HeldRun:
    """A run of `day` stopped inside its write transaction (see tests/integration/hold_run.py)."""

    def __init__(self, day: str, url: str, work: Path, *, releasable: bool = True,
                 inbox: Path | None = None, at: str = "commit", env: dict | None = None) -> None:
        self.ready = work / f"held-{day}.ready"
        self.release_file = work / f"held-{day}.release"
        args = [day, str(inbox or FIXTURES / "inbox"), str(work / "held-out"), url,
                str(self.ready)]
        if releasable:
            args.append(str(self.release_file))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.hold_run", *args], cwd=work, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**(env or subprocess_env()), "HOLD_AT": at})

    def wait_until_holding(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready.exists():
            if self.process.poll() is not None:
                out, err = self.process.communicate()
                raise AssertionError(f"held run ended early ({self.process.returncode}):\n"
                                     f"{out}\n{err}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("held run never reached its write transaction")
            time.sleep(0.05)

    def release(self, timeout: float = 60) -> tuple[int, str, str]:
        self.release_file.write_text("go\n")
        out, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, out, err

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.communicate(timeout=30)


def faulty_recon(*args: str, cwd: Path, faults: dict[str, str], timeout: float = 120,
                 background: bool = False):
    """`recon ARGS` with faults ({date: "point:action"}) injected into those dates' runs
    (tests/integration/faulty_run.py); `hold` files are in `cwd`. A Popen when `background`,
    else its result."""
    env = subprocess_env(RECON_TEST_FAULTS=";".join(f"{day}={fault}"
                                                    for day, fault in faults.items()),
                         RECON_TEST_FAULT_DIR=str(cwd))
    command = [sys.executable, str(ROOT / "tests" / "integration" / "faulty_run.py"), *args]
    if background:
        return subprocess.Popen(command, cwd=cwd, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
    return subprocess.run(command, cwd=cwd, text=True, capture_output=True, timeout=timeout,
                          env=env)


def wait_for_file(path: Path, process: subprocess.Popen, timeout: float = 120) -> str:
    """The text of `path` once a held run has written it (polling: the run writes it)."""
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().endswith("\n"):
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"process ended early ({process.returncode}):\n{out}\n{err}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path.name} never appeared")
        time.sleep(0.02)
    return path.read_text()


def published(out: Path, day: str) -> str | None:
    """The run id whose reports OUT/<D> shows (it is a link to OUT/.runs/<D>/<run_id>)."""
    target = out / day
    return Path(os.readlink(target)).name if target.is_symlink() else None


def results_run_id(url: str, day: str) -> str | None:
    found = {row.run_id for row in query(
        url, "SELECT DISTINCT run_id FROM installment_outcomes WHERE business_date = :d", d=day)}
    assert len(found) <= 1, found
    return next(iter(found), None)
