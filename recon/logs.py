"""What people and log shippers see while recon runs: log lines and progress bars.

stdout carries nothing but the run summary, so cron mail stays short. Log lines go to stderr and
to `--log-file`:

- stderr gets every step (INFO) when it is a terminal or with `-v`; otherwise (cron, a pipe) only
  warnings and errors.
- `--log-file PATH` gets every step whatever the terminal; it is reopened if logrotate moves it.
- `--log-format text` (default) is one readable line per record:
  `2026-11-28 00:10:03 INFO  [2026-11-27 run 3f2a9c01d4e5f6a7] load done in 0.12s`;
  `--log-format json` is one JSON object per line with `ts` (ISO 8601 with offset), `level`,
  `run_id`, `business_date` and `message`, plus `step`/`seconds` where a step reports them and
  `exc` for a traceback.

Progress bars are drawn on stderr only when it is a terminal, and never by `--jobs` workers (the
parent process owns the terminal). Log lines and summaries printed while a bar is shown are
written above it: the bar is cleared, the line printed, the bar redrawn.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import logging.handlers
import os
import shutil
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, TextIO

from recon.sinks.safety import mask_cards_in_text

LOGGER_NAME = "recon"
FORMATS = ("text", "json")
CONTEXT_FIELDS = ("run_id", "business_date")
STEP_FIELDS = ("step", "seconds")
CLEAR_LINE = "\r\x1b[K"


@dataclass(frozen=True)
class LogOptions:
    """How to log; plain values, so a `--jobs` worker process can set up the same logging."""

    format: str = "text"
    verbose: bool = False
    file: Path | None = None
    progress: bool = True  # False in worker processes


def _context(record: logging.LogRecord) -> dict:
    return {name: getattr(record, name, None) or None for name in CONTEXT_FIELDS}


class TextFormatter(logging.Formatter):
    """`2026-11-28 00:10:03 INFO  [2026-11-27 run 3f2a...] message` (context only when known)."""

    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created).strftime("%Y-%m-%d %H:%M:%S")
        context = _context(record)
        where = " ".join(part for part in (
            context["business_date"],
            f"run {context['run_id']}" if context["run_id"] else None) if part)
        line = f"{when} {record.levelname:<5} " + (f"[{where}] " if where else "") + \
            mask_cards_in_text(record.getMessage())
        if record.exc_info:
            line += "\n" + mask_cards_in_text(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line for log shippers; the message never spans lines."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": dt.datetime.fromtimestamp(record.created).astimezone().isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            **_context(record),
            "message": mask_cards_in_text(record.getMessage()),
            "logger": record.name,
            "pid": record.process,
        }
        for name in STEP_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exc"] = mask_cards_in_text(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter(log_format: str) -> logging.Formatter:
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(FORMATS)}")
    return JsonFormatter() if log_format == "json" else TextFormatter()


class _ConsoleHandler(logging.StreamHandler):
    """stderr handler that writes above a progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        with _above_progress():
            super().emit(record)


def is_terminal(stream: TextIO | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # closed or file-less stream
        return False


_console: TextIO | None = None  # where bars are drawn; None while progress is off
_bars: list["Progress"] = []
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
    _console = stream if options.progress and on_terminal else None


# --- progress ---------------------------------------------------------------------------------

def _size(amount: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if amount < 1024 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GB"  # pragma: no cover


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _columns(stream: TextIO | None) -> int:
    """Width of the terminal the bar is drawn on (stderr's, not stdout's)."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        columns = 0
    return columns or shutil.get_terminal_size((100, 20)).columns


class Progress:
    """A one-line bar: `label [#####     ]  45%  3/7  eta 12s  item`. Draws nothing when off.

    With `total` 0 the amount of work is unknown: `label  12s ...` instead.
    """

    def __init__(self, label: str, total: int, stream: TextIO | None, *, width: int = 30) -> None:
        self.label = label
        self.total = max(total, 0)
        self.stream = stream
        self.width = width
        self.done = 0
        self.item = ""
        self.started = time.monotonic()

    @property
    def shown(self) -> bool:
        return self.stream is not None

    def advance(self, amount: int = 1, item: str = "") -> None:
        with _lock:
            self.done = min(self.total, self.done + amount) if self.total else self.done + amount
            self.item = item or self.item
            if _bars and _bars[-1] is self:
                self.draw()

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        if not self.total:  # no measure of the work: show that it is alive, and for how long
            dots = "." * (int(elapsed * 2) % 4)
            return f"{self.label}  {_duration(elapsed)} {dots}"
        share = self.done / self.total
        filled = int(round(share * self.width))
        text = (f"{self.label} [{'#' * filled}{' ' * (self.width - filled)}] {share:4.0%}  "
                f"{self.done:,}/{self.total:,}")
        if 0 < self.done < self.total and elapsed >= 1:
            text += f"  eta {_duration(elapsed / self.done * (self.total - self.done))}"
        if self.item:
            text += f"  {self.item}"
        return text[: max(_columns(self.stream) - 1, 20)]

    def draw(self) -> None:
        if self.stream is not None:
            self.stream.write(CLEAR_LINE + self.line())
            self.stream.flush()

    def clear(self) -> None:
        if self.stream is not None:
            self.stream.write(CLEAR_LINE)
            self.stream.flush()


@contextmanager
def progress(label: str, total: int, *, shown: bool = True) -> Iterator[Progress]:
    """A bar on the terminal for the duration of the block; inert off a terminal or if not shown.

    Bars nest: only the innermost is drawn, and the outer one comes back when it ends.
    """
    bar = Progress(label, total, _console if shown else None)
    with _lock:
        if _bars:
            _bars[-1].clear()
        _bars.append(bar)
        bar.draw()
    try:
        yield bar
    finally:
        with _lock:
            bar.clear()
            _bars.remove(bar)
            if _bars:
                _bars[-1].draw()


@contextmanager
def _above_progress() -> Iterator[None]:
    with _lock:
        bar = _bars[-1] if _bars else None
        if bar is not None:
            bar.clear()
        try:
            yield
        finally:
            if bar is not None:
                bar.draw()


LOADING_DISPLAY_MIN_BYTES = 16 * 1024**2  # smaller days load in a blink: no display


def folder_bytes(folder: Path) -> int:
    try:
        return sum(entry.stat().st_size for entry in folder.iterdir() if entry.is_file())
    except OSError:
        return 0


@contextmanager
def loading(folder: Path, label: str, *, tick_seconds: float = 0.25) -> Iterator[None]:
    """While the block reads `folder`, show `label <size>  <elapsed>` on the terminal.

    The loader reports no per-file progress, so this is an activity display (size and elapsed
    time, redrawn by a timer thread), shown only for folders of LOADING_DISPLAY_MIN_BYTES or more.
    """
    size = folder_bytes(folder) if _console is not None else 0
    if size < LOADING_DISPLAY_MIN_BYTES:
        yield
        return
    stop = threading.Event()
    with progress(f"{label} {_size(size)}", 0) as bar:
        def tick() -> None:
            while not stop.wait(tick_seconds):
                with _lock:
                    if _bars and _bars[-1] is bar:
                        bar.draw()

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

    with _above_progress():
        click.echo(text, err=err)
        (sys.stderr if err else sys.stdout).flush()
