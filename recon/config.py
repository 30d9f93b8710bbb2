"""Settings: command-line options over RECON_* environment variables over defaults."""

from __future__ import annotations

import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recon.errors import UsageError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECON_", extra="ignore")

    inbox: Path = Path("./inbox")
    """Folder holding one sub-folder per business date (`INBOX/<D>/`)."""

    out: Path = Path("./out")
    """Folder the reports are written to (`OUT/<D>/`)."""

    database_url: str = "sqlite:///recon.db"
    """SQLAlchemy URL; a bare `postgresql://` URL is driven by psycopg2."""

    timezone: str = "Asia/Shanghai"
    """Time zone of local timestamps and of "yesterday"."""

    max_reject_rate: float = Field(default=0.01, ge=0.0, le=1.0)
    """A file with a larger share of rejected rows refuses the run (exit 3)."""

    reason_codes: Path | None = None
    """Operator CSV `scheme,response_code,root_cause` adding to or overriding the default maps."""

    profiles: Path | None = None
    """Folder of gateway profiles (`*.toml`, one per gateway, docs/FORMATS.md) saying how each
    gateway's own settlement file is read; a gateway without a profile sends the contract CSV
    with its `.ctl`."""

    retry_policy: Path | None = None
    """Operator TOML file adjusting the retry plan's policy (README, Retry plan)."""

    notice_templates: Path | None = None
    """Operator TOML overriding the shipped borrower notice templates and policy (docs/notices.md)."""

    lock_wait_seconds: float = Field(default=0.0, ge=0.0)
    """How long to wait for another run of the same date before giving up (exit 5)."""

    lock_lease_seconds: float = Field(default=60.0, ge=1.0)
    """PostgreSQL: the lease on a running date, renewed every sixth of it. Through a
    transaction-pooling pgbouncer a killed run keeps its date this long; on a direct connection
    the date is free as soon as the killed run's session ends."""

    max_file_bytes: int = Field(default=4 * 1024**3, gt=0)
    """Input files larger than this are refused rather than read into memory."""

    max_field_chars: int = Field(default=65536, gt=0)
    """A field longer than this rejects its row (a broken quote swallowing the file, say)."""

    max_columns: int = Field(default=512, gt=0)
    """A header with more columns than this refuses the file."""

    csv_block_bytes: int = Field(default=16 * 1024**2, ge=64)
    """Bytes of a CSV file Arrow parses at a time (a tuning knob: speed and memory, never
    results). A file larger than one block comes back in several chunks, which every step
    handles; a record longer than a block makes that file's blocks grow until one holds it."""

    threads: int = Field(default=0, ge=0)
    """Threads one date's run uses to read files and write outputs side by side; 0 = one per CPU.
    `recon run --jobs N` gives each of its N worker processes an equal share of the CPUs."""

    @property
    def worker_threads(self) -> int:
        return self.threads or max(1, os.cpu_count() or 1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a path, not a zone name
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as "
                             f"Asia/Shanghai)") from None
        return value

    @field_validator("out")
    @classmethod
    def _out_is_a_folder(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} exists and is not a folder")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def settings_from_options(**options) -> Settings:
    """Settings from a command's options, None meaning not given (its RECON_* variable or the
    default applies). Values that cannot be used are one UsageError naming each setting the way
    an operator set it."""
    given = {key: value for key, value in options.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(f"{_setting_name(e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                             for e in exc.errors())
        raise UsageError(f"invalid setting: {problems}") from None


def _setting_name(location: tuple) -> str:
    """`timezone` -> `RECON_TIMEZONE`, the name an operator set it by (or its option)."""
    field = ".".join(map(str, location))
    return f"{field} (RECON_{field.upper()})" if field else "settings"
