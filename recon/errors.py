"""One exception family. Each names its condition, carries context and says what to do next.

`exit_code` is the contract's exit code (CONTRACT section 6) the CLI returns for it.
"""

from __future__ import annotations

from recon.contract import ExitCode


class ReconError(Exception):
    """Base of every error recon expects; anything else reaching the CLI is a bug (exit 1)."""

    exit_code: int = ExitCode.INTERNAL

    def __init__(self, message: str, *, next_step: str = "") -> None:
        self.message = message
        self.next_step = next_step
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.message} -- {self.next_step}" if self.next_step else self.message


class UsageError(ReconError):
    exit_code = ExitCode.USAGE


class InputRefused(ReconError):
    """A required input is missing, unreadable or too dirty: nothing is written for the date."""

    exit_code = ExitCode.INPUT_REFUSED

    def __init__(self, message: str, *, file: str = "", line: int | None = None,
                 column: str = "", next_step: str = "") -> None:
        where = file
        if line is not None:
            where += f", line {line}"
        if column:
            where += f", column {column}"
        super().__init__(f"{where}: {message}" if where else message, next_step=next_step)
        self.file = file
        self.line = line
        self.column = column


class DatabaseUnavailable(ReconError):
    """The database cannot be reached or refuses our credentials (transient: retry later)."""

    exit_code = ExitCode.DATABASE


class DateLocked(ReconError):
    """Another run holds the business date."""

    exit_code = ExitCode.DATABASE


class DateLockLost(ReconError):
    """This run no longer holds its business date (its lock's session ended, or another run took
    the date over): it must not commit, and did not."""

    exit_code = ExitCode.DATABASE


class DatabaseFailed(ReconError):
    """The server was reached but failed the run: a statement or lock timeout, a full disk, our
    session ended by the server, a COMMIT whose outcome was lost with the connection."""

    exit_code = ExitCode.DATABASE


class CommitUnknown(DatabaseFailed):
    """The connection dropped during COMMIT and the server could not tell us since whether the
    run committed: its ledger row must not be closed as failed (it may be done)."""


class SchemaOutdated(ReconError):
    """The database schema is older than this code; `recon db upgrade` fixes it."""

    exit_code = ExitCode.DATABASE


class MigrationsMissing(ReconError):
    """The installed package holds no schema migrations: nothing can be created or checked."""

    exit_code = ExitCode.DATABASE


class MigrationFailed(ReconError):
    """A schema migration could not be applied; it was rolled back as a whole."""

    exit_code = ExitCode.DATABASE


class OutboxConflict(ReconError):
    """D's borrower notices changed under this run (the messaging system or a second run):
    nothing was written; a rerun merges with what is there now."""

    exit_code = ExitCode.DATABASE


class OutputUnusable(ReconError):
    """The output folder cannot take the reports (full disk, no permission, a file in the way).

    Raised before the database commit, so nothing is written for the date.
    """

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, *, path: str = "", cause: str = "",
                 next_step: str = "") -> None:
        super().__init__(message, next_step=next_step or
                         "free space or fix the folder's owner and permissions, then rerun")
        self.path = path
        self.cause = cause
