"""Clear words for the environment (issue 11): a full disk, an output folder recon may not
write, an inbox folder it may not read, a read-only folder for the SQLite lock file. Each is one
line with the path and the cause, an exit code that is not 1, and nothing written.

The tests run as root, which file permissions do not stop: recon runs as `nobody` under
`setpriv` for the permission cases, and the full disk is a tiny tmpfs mounted for the test."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ROOT

DAY = "2026-11-28"
NOBODY = 65534


def needs_root_tools() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run recon as another user")


@pytest.fixture
def work():
    """A folder every user may enter (pytest's tmp_path is root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="recon-env-"))
    os.chmod(folder, 0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def recon(*args: str, cwd: Path, as_nobody: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "recon.cli", *args]
    if as_nobody:
        command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                   *command]
    env = {key: value for key, value in os.environ.items() if not key.startswith("RECON_")}
    env.update(PYTHONPATH=str(ROOT), HOME=str(cwd))
    return subprocess.run(command, cwd=cwd, text=True, capture_output=True, timeout=300, env=env)


def run_day(work: Path, *, out: Path | None = None, inbox: Path | None = None,
            db: Path | None = None, as_nobody: bool = True) -> subprocess.CompletedProcess:
    return recon("run", "--date", DAY, "--inbox", str(inbox or FIXTURES / "inbox"),
                 "--out", str(out or work / "out"), "--db", f"sqlite:///{db or work / 'recon.db'}",
                 cwd=work, as_nobody=as_nobody)


def one_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def stored_runs(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT run_id, outcome, exit_code FROM recon_runs ORDER BY started_at").fetchall()


def results(db: Path) -> set[str]:
    with sqlite3.connect(db) as connection:
        return {row[0] for row in connection.execute(
            "SELECT DISTINCT run_id FROM installment_outcomes WHERE business_date = ?", (DAY,))}


def test_an_output_folder_recon_may_not_write_is_one_line_exit_2(work):
    needs_root_tools()
    out = work / "out"
    out.mkdir()
    os.chmod(out, 0o755)  # root's: nobody may not create anything in it (chmod: not the umask)

    result = run_day(work, out=out)

    assert result.returncode == 2, result.stderr
    line = one_line(result)
    assert f"cannot write the reports of {DAY} at {out}" in line
    assert "Permission denied" in line and f"nothing was written for {DAY}" in line
    assert results(work / "recon.db") == set()
    assert stored_runs(work / "recon.db")[0][1:] == ("failed", 2)


@pytest.mark.parametrize("mode", [0o700, 0o711, 0o744],
                         ids=["no-access", "not-listable", "not-searchable"])
def test_an_inbox_folder_that_cannot_be_read_refuses_the_date(work, mode):
    needs_root_tools()
    inbox = work / "inbox"
    shutil.copytree(FIXTURES / "inbox" / DAY, inbox / DAY)
    os.chmod(inbox, 0o755)
    for path in [inbox / DAY, *(inbox / DAY).iterdir()]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    first = run_day(work, inbox=inbox)
    assert first.returncode == 4, first.stderr
    before = results(work / "recon.db")

    os.chmod(inbox / DAY, mode)  # root's folder: nobody may not list it or look inside
    result = run_day(work, inbox=inbox)

    assert result.returncode == 3, result.stderr
    line = one_line(result)
    assert f"inbox folder {inbox / DAY} cannot be read: Permission denied" in line
    assert results(work / "recon.db") == before  # not replaced by `pending` for present files
    assert stored_runs(work / "recon.db")[-1][1:] == ("refused", 3)


def test_an_unreadable_control_file_refuses_the_date_instead_of_not_arrived(work):
    needs_root_tools()
    inbox = work / "inbox"
    shutil.copytree(FIXTURES / "inbox" / DAY, inbox / DAY)
    for path in [inbox, inbox / DAY, *(inbox / DAY).iterdir()]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    [control] = sorted((inbox / DAY).glob("settlement_*.ctl"))[:1]
    os.chmod(control, 0o600)  # root's file: nobody may not read it

    result = run_day(work, inbox=inbox)

    assert result.returncode == 3, result.stderr
    assert "Permission denied" in one_line(result) and control.name in result.stderr


def test_a_read_only_folder_for_the_sqlite_lock_file_is_one_line_exit_5(work):
    needs_root_tools()
    folder = work / "db"
    folder.mkdir()
    # root's: nobody may not create the lock file beside the database. chmod, not mkdir's mode:
    # an in-process `recon` of an earlier test set this process's umask to 007.
    os.chmod(folder, 0o755)
    db = folder / "recon.db"
    upgraded = recon("db", "upgrade", "--db", f"sqlite:///{db}", cwd=work)
    assert upgraded.returncode == 0, upgraded.stderr
    os.chmod(db, 0o666)

    result = run_day(work, db=db)

    assert result.returncode == 5, result.stderr
    line = one_line(result)
    assert f"cannot open the lock file {db}.{DAY}.lock" in line and "Permission denied" in line


@pytest.fixture
def full_disk(work):
    """An output folder on a 1 MiB tmpfs, filled up to the last byte."""
    out = work / "out"
    out.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0777", "tmpfs",
                              str(out)], capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        with open(out / "filler", "wb", buffering=0) as handle:
            try:
                while True:
                    handle.write(b"\0" * 4096)
            except OSError:
                pass
        yield out
    finally:
        subprocess.run(["umount", str(out)], check=True)


def test_a_full_disk_for_the_reports_is_one_line_exit_2_and_nothing_written(work, full_disk):
    result = run_day(work, out=full_disk, as_nobody=False)

    assert result.returncode == 2, result.stderr
    line = one_line(result)
    assert f"cannot write the reports of {DAY} at {full_disk}" in line
    assert "No space left on device" in line and f"nothing was written for {DAY}" in line
    assert results(work / "recon.db") == set()
    assert not (full_disk / DAY).exists()
    assert not list((full_disk / ".runs" / DAY).iterdir())
