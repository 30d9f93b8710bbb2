"""The CSV reports of CONTRACT section 4.1-4.3, published into `OUT/<D>/` in one step.

Each run writes its reports into a folder of its own, `OUT/.runs/<D>/<run_id>/`, and `OUT/<D>`
is a symbolic link to the published run's folder. Everything that can fail (writing and syncing
the files, making the new link, adopting a real `OUT/<D>` folder an earlier release wrote) is
done before the database commit (`prepare`); after it only `publish` is left, one `rename(2)`
of the new link over `OUT/<D>`, which either happens whole or not at all. A reader opening
`OUT/<D>/exceptions.csv` sees the previous run's complete set or the new run's, never a mix and
never a partial file. The next run of D repairs a switch that did not happen (`publish_folder`)
and removes folders that no longer serve (`clean_up`).
"""

from __future__ import annotations

import codecs
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recon.contract import (EXCEPTIONS_COLUMNS, EXCEPTIONS_OWN, REJECTS_COLUMNS,
                            SETTLEMENT_EXCEPTIONS_COLUMNS)
from recon.errors import OutputUnusable
from recon.frames import join_texts, text_chunks, values_with_bytes
from recon.protect import safe_frame

FILE_MODE = 0o640
DIR_MODE = 0o750
RUNS = ".runs"  # OUT/.runs/<D>/<run_id>/: every run's own report folder
# OUT/.runs/<D>/before-<id>/: a real OUT/<D> folder an earlier release wrote
LEGACY_PREFIX = "before-"



@contextmanager
def output_errors(business_date: str, path: Path) -> Iterator[None]:
    """An OSError of the file system (full disk, no permission, a file where a folder must be)
    as OutputUnusable: one line with the path and the cause."""
    try:
        yield
    except OutputUnusable:
        raise
    except OSError as exc:
        where = Path(exc.filename) if exc.filename else path
        cause = exc.strerror or type(exc).__name__
        raise OutputUnusable(
            f"cannot write the reports of {business_date} at {where}: {cause}",
            path=str(where), cause=cause) from None


def runs_folder(out_dir: Path, business_date: str) -> Path:
    return out_dir / RUNS / business_date


class StagedReports:
    """One run's report files in OUT/.runs/<D>/<run_id>/; `prepare` before the commit, then
    `publish` switches OUT/<D> to them."""

    def __init__(self, out_dir: Path, business_date: str, run_id: str) -> None:
        self.out_dir = out_dir
        self.business_date = business_date
        self.run_id = run_id
        self.target = out_dir / business_date
        self.folder = runs_folder(out_dir, business_date) / run_id
        # The new link, made before the commit beside OUT/<D> (same folder: rename is atomic).
        self.link = out_dir / f".{business_date}.{run_id}.link"
        self.files: list[str] = []
        with output_errors(business_date, out_dir):
            _check_target(self.target, business_date)
            for folder in (out_dir, out_dir / RUNS, self.folder.parent):
                _make_folder(folder)
            self.folder.mkdir(mode=DIR_MODE)
            os.chmod(self.folder, DIR_MODE)

    @property
    def link_text(self) -> str:
        return os.path.join(RUNS, self.business_date, self.run_id)

    def write(self, name: str, frame: pd.DataFrame, columns: list[str], *,
              bom: bool = False, own=frozenset()) -> None:
        """`frame`'s `columns` as `name`, every column but ids and recon's `own` sentences and
        numbers card-masked (protect.safe_frame)."""
        safe = safe_frame(frame.reindex(columns=columns), own)
        path = self.folder / name
        with output_errors(self.business_date, path):
            write_csv(path, safe, bom=bom)
            os.chmod(path, FILE_MODE)
        self.files.append(name)

    def prepare(self) -> "StagedReports":
        """Before the commit: the files on disk for good, OUT/<D> ready to be switched.

        Raises OutputUnusable when OUT/<D> cannot become the link (a file is there, a folder
        that cannot be moved), the disk is full, or the folder refuses the new link.
        """
        with output_errors(self.business_date, self.folder):
            for name in self.files:
                _fsync_file(self.folder / name)
            _fsync_folder(self.folder)
            _fsync_folder(self.folder.parent)
        with output_errors(self.business_date, self.target):
            adopt_legacy_folder(self.out_dir, self.business_date)
        with output_errors(self.business_date, self.link):
            _remove_link(self.link)
            os.symlink(self.link_text, self.link)
        return self

    def publish(self) -> Path:
        """After the commit: OUT/<D> becomes this run's folder, in one rename."""
        with output_errors(self.business_date, self.target):
            _check_target(self.target, self.business_date)
            os.replace(self.link, self.target)
            _fsync_folder(self.out_dir)
        return self.target

    def discard(self) -> None:
        """Throw away this run's folder and its new link (a run that rolled back)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        _remove_link(self.link, quiet=True)


def _check_target(target: Path, business_date: str) -> None:
    if target.is_symlink() or not target.exists() or target.is_dir():
        return
    raise OutputUnusable(
        f"cannot write the reports of {business_date} at {target}: it is a file, not a "
        f"reports folder", path=str(target), cause="not a folder",
        next_step="move the file away, then rerun the date")


def _make_folder(folder: Path) -> None:
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        os.chmod(folder, DIR_MODE)


def _remove_link(link: Path, *, quiet: bool = False) -> None:
    try:
        os.unlink(link)
    except FileNotFoundError:
        pass
    except OSError:
        if not quiet:
            raise


def _fsync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_folder(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def adopt_legacy_folder(out_dir: Path, business_date: str) -> None:
    """A real OUT/<D> folder (written by a release before the switchable link) moves into
    OUT/.runs/<D>/before-<id>/ and OUT/<D> becomes a link to it: the same files stay readable
    at the same paths, and the next switch is one rename like any other. (Between the two
    renames, microseconds, OUT/<D> does not exist.)"""
    target = out_dir / business_date
    if target.is_symlink() or not target.is_dir():
        return
    name = f"{LEGACY_PREFIX}{uuid.uuid4().hex[:8]}"
    _make_folder(runs_folder(out_dir, business_date))
    os.rename(target, runs_folder(out_dir, business_date) / name)
    _switch(out_dir, business_date, name)


def _switch(out_dir: Path, business_date: str, name: str) -> None:
    link = out_dir / f".{business_date}.{name}.link"
    _remove_link(link)
    os.symlink(os.path.join(RUNS, business_date, name), link)
    os.replace(link, out_dir / business_date)
    _fsync_folder(out_dir)


def published_run(out_dir: Path, business_date: str) -> str | None:
    """The name of the run folder OUT/<D> points at (a run id), None when it is no such link."""
    target = out_dir / business_date
    try:
        text = os.readlink(target)
    except OSError:
        return None
    folder = Path(text)
    if folder.parent != Path(RUNS) / business_date:
        return None
    return folder.name


def run_folder_exists(out_dir: Path, business_date: str, run_id: str) -> bool:
    return (runs_folder(out_dir, business_date) / run_id).is_dir()


def publish_folder(out_dir: Path, business_date: str, run_id: str) -> Path:
    """Switch OUT/<D> to an existing run folder (the repair of a switch that did not happen)."""
    target = out_dir / business_date
    with output_errors(business_date, target):
        _check_target(target, business_date)
        adopt_legacy_folder(out_dir, business_date)
        _switch(out_dir, business_date, run_id)
    return target


def clean_up(out_dir: Path, business_date: str, keep: set[str]) -> list[str]:
    """Remove what earlier runs of D left in OUT: run folders other than `keep` (and the one
    OUT/<D> points at), new links never switched, and the hidden staging folders `.<D>.*` of
    earlier releases. Only D's own entries: the caller holds D's lock, so no live run writes
    them; other dates' folders are never touched. Returns the names removed."""
    keep = set(keep) | ({published_run(out_dir, business_date)} - {None})
    removed = []
    folder = runs_folder(out_dir, business_date)
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name not in keep:
                _remove(entry)
                removed.append(os.path.join(RUNS, business_date, entry.name))
    if out_dir.is_dir():
        for entry in out_dir.glob(f".{business_date}.*"):
            _remove(entry)
            removed.append(entry.name)
    return removed


def _remove(entry: Path) -> None:
    if entry.is_symlink() or not entry.is_dir():
        entry.unlink(missing_ok=True)
    else:
        shutil.rmtree(entry, ignore_errors=True)


def csv_field(values: pa.Array) -> pa.Array:
    """RFC 4180 minimal quoting: a value with a comma, quote or line break is quoted."""
    values = pc.fill_null(values.cast(pa.large_string()), "")
    needs_quotes = values_with_bytes(values, b',"\r\n')
    if not needs_quotes.any():
        return values
    quoted = join_texts('"', pc.replace_substring(values, '"', '""'), '"')
    return pc.if_else(pa.array(needs_quotes), quoted, values)


def write_csv(path: Path, frame: pd.DataFrame, *, bom: bool = False) -> None:
    """Write text columns as CSV (header, LF line ends), all rows joined in Arrow.

    pandas' to_csv formats row by row in Python, seconds for a few hundred thousand rows; here
    every field is quoted where needed and joined column-wise, and the joined text's byte buffer
    is the file.
    """
    with open(path, "wb") as handle:
        if bom:
            handle.write(codecs.BOM_UTF8)
        handle.write((",".join(csv_field(pa.array(frame.columns.astype(str).tolist())).to_pylist())
                      + "\n").encode("utf-8"))
        if frame.empty:
            return
        fields = [csv_field(pa.array(frame[column])) for column in frame.columns]
        lines = join_texts(join_texts(*fields, separator=","), "\n")
        # Columns read from large files come in chunks (one per Arrow read block): each
        # chunk's text is written as it is, without first copying them all into one.
        for offsets, data, _ in text_chunks(lines):
            handle.write(data[offsets[0]:offsets[-1]])


def stage_reports(out_dir: Path, business_date: str, run_id: str, exceptions: pd.DataFrame,
                  settlement_exceptions: pd.DataFrame, rejects: pd.DataFrame) -> StagedReports:
    staged = StagedReports(out_dir, business_date, run_id)
    try:
        staged.write("exceptions.csv", exceptions, EXCEPTIONS_COLUMNS, bom=True,
                     own=EXCEPTIONS_OWN)
        staged.write("settlement_exceptions.csv", settlement_exceptions,
                     SETTLEMENT_EXCEPTIONS_COLUMNS)
        staged.write("rejects.csv", rejects, REJECTS_COLUMNS)
    except BaseException:
        staged.discard()
        raise
    return staged
