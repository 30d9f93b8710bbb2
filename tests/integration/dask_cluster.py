"""Test helpers: a real Dask scheduler and worker processes on 127.0.0.1 (`dask scheduler`,
`dask worker` as subprocesses), and a per-date run that holds inside its write transaction so a
test can SIGKILL its worker mid-date."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.helpers import subprocess_env

DASK = str(Path(sys.executable).parent / "dask")


class LocalDaskCluster:
    """A scheduler on a free port (it writes its address to a scheduler file) and workers
    without nannies (a killed worker stays dead), one thread each."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.scheduler_file = work / "scheduler.json"
        self.workers: list[subprocess.Popen] = []
        self.scheduler = self._spawn("scheduler", [
            DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
            "--scheduler-file", str(self.scheduler_file)])
        deadline = time.monotonic() + 60
        while not self._address_written():
            if self.scheduler.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"dask scheduler did not start:\n{self._log('scheduler')}")
            time.sleep(0.05)
        self.address = json.loads(self.scheduler_file.read_text())["address"]

    def _address_written(self) -> bool:
        try:
            return bool(json.loads(self.scheduler_file.read_text()).get("address"))
        except (OSError, ValueError):
            return False

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        log = open(self.work / f"{name}.log", "ab")
        try:
            # A worker imports this checkout's recon and tests (the task functions).
            return subprocess.Popen(command, cwd=self.work, stdout=log, stderr=log,
                                    env=subprocess_env())
        finally:
            log.close()

    def _log(self, name: str) -> str:
        try:
            return (self.work / f"{name}.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def alive_workers(self) -> list[subprocess.Popen]:
        return [worker for worker in self.workers if worker.poll() is None]

    def ensure_workers(self, count: int) -> None:
        """Start workers until `count` are alive, and wait until the scheduler has them all."""
        from distributed import Client

        while len(self.alive_workers()) < count:
            self.workers.append(self._spawn(f"worker{len(self.workers)}", [
                DASK, "worker", "--scheduler-file", str(self.scheduler_file), "--nthreads", "1",
                "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"]))
        with Client(self.address, timeout=30, set_as_default=False) as client:
            deadline = time.monotonic() + 90
            while len(client.scheduler_info(n_workers=-1)["workers"]) != count:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the scheduler never had {count} workers:\n"
                                         f"{self._log('scheduler')}")
                time.sleep(0.05)

    def kill(self, pid: int) -> None:
        worker = next(w for w in self.workers if w.pid == pid)
        os.kill(pid, signal.SIGKILL)
        worker.wait(timeout=30)

    def stop(self) -> None:
        # Workers are killed outright (a test's workers hold nothing worth a clean shutdown,
        # which waits on the scheduler); the scheduler is asked to stop.
        for worker in self.workers:
            if worker.poll() is None:
                worker.kill()
        if self.scheduler.poll() is None:
            self.scheduler.terminate()
        for process in [*self.workers, self.scheduler]:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


def held_run_date(day: dt.date, settings, await_earlier=None, *, held_day: str, ready: str,
                  release: str):
    """ranges.run_date, except that the run of `held_day` stops inside its write transaction
    (every row written, nothing committed), writes its pid to `ready` and waits for `release`.
    Runs on a Dask worker."""
    from recon import pipeline, ranges
    from recon.summary import render_summary

    if day.isoformat() != held_day:
        return ranges.run_date(day, settings, await_earlier)

    def hold() -> None:
        Path(ready).write_text(f"{os.getpid()}\n")
        deadline = time.monotonic() + 300
        while not Path(release).exists():
            if time.monotonic() > deadline:
                raise SystemExit("held_run_date: never released")
            time.sleep(0.05)

    report = pipeline.run(day, settings, before_commit=hold, await_earlier=await_earlier)
    return report.exit_code, render_summary(report), ""
