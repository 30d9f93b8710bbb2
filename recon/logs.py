"""What people and log shippers see while recon runs: log lines and progress bars.

stdout carries nothing but the run summary, so cron mail stays short. Log lines go to stderr and
to `--log-file`:

- stderr gets every step (INFO) when it is a terminal or with `-v`; otherwise (cron, a pipe) only
  warnings and errors.
- `--log-file PATH` gets every step whatever the terminal; it is reopened if logrotate moves it.
- `--log-format text` (default) is one readable line per record, its time with its UTC offset:
  `2026-11-28 00:10:03+08:00 INFO  [2026-11-27 run 3f2a9c01d4e5f6a7] load done in 0.12s`;
  `--log-format json` is one JSON object per line (python-json-logger) with `ts` (ISO 8601 with
  offset), `level`, `run_id`, `business_date` and `message`, plus `step`/`seconds` where a step
  reports them and `exc` for a traceback.

Progress bars (rich's progress display) are drawn on stderr only when it is a terminal, and never
by `--jobs` workers (the parent process owns the terminal). Log lines and summaries printed while a
bar is shown are written above it. Card numbers are masked in every line.
"""

from __future__ import annotations

import datetime as dt
import logging
import logging.handlers
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, TextIO

from pythonjsonlogger.json import JsonFormatter as _LibraryJsonFormatter
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress as _Display, TaskID,
                           TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

from recon.protect import mask_cards_in_text

LOGGER_NAME = "recon"
FORMATS = ("text", "json")
CONTEXT_FIELDS = ("run_id", "business_date")


@dataclass(frozen=True)
class LogOptions:
    """How to log; plain values, so a `--jobs` worker process can set up the same logging."""

    format: str = "text"
    verbose: bool = False
    file: Path | None = None
    progress: bool = True  # False in worker processes


def _context(record: logging.LogRecord) -> dict:
    return {name: getattr(record, name, None) or None for name in CONTEXT_FIELDS}


def _local_time(record: logging.LogRecord) -> dt.datetime:
    """The record's moment in the server's zone, carrying its UTC offset."""
    return dt.datetime.fromtimestamp(record.created).astimezone()


class TextFormatter(logging.Formatter):
    """`2026-11-28 00:10:03+08:00 INFO  [2026-11-27 run 3f2a...] message` (context only when
    known)."""

    def format(self, record: logging.LogRecord) -> str:
        when = _local_time(record).isoformat(sep=" ", timespec="seconds")
        context = _context(record)
        where = " ".join(part for part in (
            context["business_date"],
            f"run {context['run_id']}" if context["run_id"] else None) if part)
        line = f"{when} {record.levelname:<5} " + (f"[{where}] " if where else "") + \
            mask_cards_in_text(record.getMessage())
        if record.exc_info:
            line += "\n" + mask_cards_in_text(self.formatException(record.exc_info))
        return line


class JsonFormatter(_LibraryJsonFormatter):
    """One JSON object per line for log shippers (python-json-logger); the message never spans
    lines, card numbers are masked, Chinese stays readable."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "message", "name", "process"],
            rename_fields={"levelname": "level", "name": "logger", "process": "pid",
                           "exc_info": "exc"},
            defaults={name: None for name in CONTEXT_FIELDS},
            json_ensure_ascii=False, json_default=str)

    def add_fields(self, log_data: dict, record: logging.LogRecord, message_dict: dict) -> None:
        log_data["ts"] = _local_time(record).isoformat(timespec="milliseconds")
        super().add_fields(log_data, record, message_dict)
        for name in CONTEXT_FIELDS:
            log_data[name] = log_data.get(name) or None

    def process_log_record(self, log_data: dict) -> dict:
        for name in ("message", "exc"):
            if isinstance(log_data.get(name), str):
                log_data[name] = mask_cards_in_text(log_data[name])
        return log_data


def formatter(log_format: str) -> logging.Formatter:
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(FORMATS)}")
    return JsonFormatter() if log_format == "json" else TextFormatter()


class _ConsoleHandler(logging.StreamHandler):
    """stderr handler that writes above a progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        with _lock:
            if _display is None:
                super().emit(record)
                return
            try:
                _display.console.print(Text(self.format(record)), soft_wrap=True)
            except Exception:  # noqa: BLE001 - as logging.StreamHandler does
                self.handleError(record)


def is_terminal(stream: TextIO | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # closed or file-less stream
        return False


_console: Console | None = None  # the terminal bars are drawn on; None while progress is off
_display: _Display | None = None  # rich's live display, while any bar is shown
_lock = threading.RLock()


def configure(options: LogOptions, stream: TextIO | None = None) -> None:
    """Set up the `recon` logger (replacing earlier handlers) and whether bars are drawn."""
    global _console
    stream = stream if stream is not None else sys.stderr
    on_terminal = is_terminal(stream)
    log_formatter = formatter(options.format)
    console = _ConsoleHandler(stream)
    console.setFormatter(log_formatter)
    console.setLevel(logging.INFO if options.verbose or on_terminal else logging.WARNING)
    handlers: list[logging.Handler] = [console]
    if options.file is not None:
        options.file.parent.mkdir(parents=True, exist_ok=True)
        log_file = logging.handlers.WatchedFileHandler(options.file, encoding="utf-8")
        log_file.setFormatter(log_formatter)
        log_file.setLevel(logging.INFO)
        handlers.append(log_file)
    logger = logging.getLogger(LOGGER_NAME)
    for old in logger.handlers:
        old.close()
    logger.handlers[:] = handlers
    logger.setLevel(logging.INFO)
    _console = Console(file=stream, force_terminal=True, highlight=False) \
        if options.progress and on_terminal else None


# --- progress ---------------------------------------------------------------------------------

def _size(amount: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if amount < 1024 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GB"  # pragma: no cover


def _new_display(console: Console) -> _Display:
    # Redrawn when a bar moves (and by `loading`'s timer), not by rich's own refresh thread, so
    # what is drawn follows the work; transient: the finished display leaves no trace.
    return _Display(
        TextColumn("{task.description}"), BarColumn(bar_width=30), TaskProgressColumn(),
        MofNCompleteColumn(), TimeRemainingColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[item]}"),
        console=console, auto_refresh=False, transient=True, redirect_stdout=False,
        redirect_stderr=False)


class Progress:
    """One bar: `label ━━━━━━━━       45% 3/7 0:00:12 0:00:05 item`, or, with `total` 0 (the
    amount of work unknown), a pulsing bar and the elapsed time. Inert when not shown."""

    def __init__(self, task: TaskID | None) -> None:
        self.task = task

    @property
    def shown(self) -> bool:
        return self.task is not None

    def advance(self, amount: int = 1, item: str = "") -> None:
        with _lock:
            if self.task is None or _display is None:
                return
            fields = {"item": item} if item else {}
            _display.update(self.task, advance=amount, **fields)
            _display.refresh()


@contextmanager
def progress(label: str, total: int, *, shown: bool = True) -> Iterator[Progress]:
    """A bar on the terminal for the duration of the block; inert off a terminal or if not shown.

    Bars nest: an inner one is drawn below the outer one, and goes when its block ends.
    """
    global _display
    if _console is None or not shown:
        yield Progress(None)
        return
    with _lock:
        if _display is None:
            _display = _new_display(_console)
            _display.start()
        task = _display.add_task(label, total=total or None, item="")
        _display.refresh()
    try:
        yield Progress(task)
    finally:
        with _lock:
            _display.remove_task(task)
            if _display.tasks:
                _display.refresh()
            else:
                _display.stop()
                _display = None


LOADING_DISPLAY_MIN_BYTES = 16 * 1024**2  # smaller days load in a blink: no display


def folder_bytes(folder: Path) -> int:
    try:
        return sum(entry.stat().st_size for entry in folder.iterdir() if entry.is_file())
    except OSError:
        return 0


@contextmanager
def loading(folder: Path, label: str, *, tick_seconds: float = 0.25) -> Iterator[None]:
    """While the block reads `folder`, show `label <size>` and the elapsed time on the terminal.

    The loader reports no per-file progress, so this is an activity display (a pulsing bar and
    the elapsed time, redrawn by a timer thread), shown only for folders of
    LOADING_DISPLAY_MIN_BYTES or more.
    """
    size = folder_bytes(folder) if _console is not None else 0
    if size < LOADING_DISPLAY_MIN_BYTES:
        yield
        return
    stop = threading.Event()
    with progress(f"{label} {_size(size)}", 0):
        def tick() -> None:
            while not stop.wait(tick_seconds):
                with _lock:
                    if _display is not None:
                        _display.refresh()

        ticker = threading.Thread(target=tick, name="recon-loading-display", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()


def echo(text: str, *, err: bool = False) -> None:
    """Print a line to stdout (or stderr) above any progress bar."""
    import click

    text = mask_cards_in_text(text)
    stream = sys.stderr if err else sys.stdout
    with _lock:
        if _display is not None and (err or is_terminal(stream)):
            # The bar's terminal: printed through the display, above the bar.
            _display.console.print(Text(text), soft_wrap=True)
            return
        click.echo(text, err=err)
        stream.flush()
