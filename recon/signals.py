"""SIGINT and SIGTERM as one exception, `Interrupted`, and a way to hold them off briefly.

Ctrl-C (SIGINT) and `systemctl stop` / `kill` (SIGTERM) both stop a run the same way: the
exception unwinds the run, its open database transaction rolls back, its ledger row is closed
`interrupted`, and the process exits 128 + the signal number (130, 143). Between the database
commit and the switch of the reports (`hold` ... `release`) a signal is only noted, so that a
committed run also publishes its reports; it takes effect at `release` or `raise_pending`.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_held = 0
_pending: int | None = None
_stopping = False


class Interrupted(BaseException):
    """The process was asked to stop. A BaseException, like KeyboardInterrupt: `except
    Exception` does not swallow it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.reported = False  # recon.ranges has said what became of the date it stopped
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def _handler(signum: int, _frame) -> None:
    global _pending, _stopping
    if _stopping or _held:
        # Already stopping (a second Ctrl-C, or the signal forwarded to a worker too), or
        # between commit and publish: noted, not raised again.
        _pending = _pending or signum
        return
    _stopping = True
    _pending = signum
    raise Interrupted(signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM raise Interrupted (main thread only)."""
    global _held, _pending, _stopping
    previous = {signum: signal.signal(signum, _handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _held, _pending, _stopping = 0, None, False


def hold() -> None:
    """From here until `release`, a stop signal is noted, not raised."""
    global _held
    _held += 1


def release() -> None:
    global _held
    _held = max(0, _held - 1)


def pending() -> int | None:
    """The stop signal received so far (None when none)."""
    return _pending


def raise_pending() -> None:
    """Raise Interrupted now if a stop signal arrived while it was held."""
    global _stopping
    if _pending is not None and not _held:
        _stopping = True
        raise Interrupted(_pending)
