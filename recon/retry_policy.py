"""CONTRACT section 7: the retry plan's policy, an operator file (TOML, validated by pydantic)
over the defaults of README "Retry plan": per root cause, the action, when, how often."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import (BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError,
                      field_validator, model_validator)

from recon.contract import RootCause
from recon.errors import UsageError

R = RootCause
Action = Literal["retry", "retry_other_gateway", "query_gateway", "wait_for_file",
                 "wait_for_borrower", "refund", "none"]
ACTIONS = ("retry", "retry_other_gateway", "query_gateway", "wait_for_file", "wait_for_borrower",
           "refund", "none")


# --- the policy ---------------------------------------------------------------------------------

def _clock(value) -> dt.time:
    if isinstance(value, dt.time):
        return value
    if isinstance(value, str):
        try:
            parsed = dt.time.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and len(value) == 5:
            return parsed
    raise ValueError("must be a local time of day HH:MM, e.g. \"09:00\"")


class CausePolicy(BaseModel):
    """What to do next about installments of one root cause."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Action
    at: dt.time | None = None
    """A debit's earliest time is the next time the local clock reads this (else the start of
    the debit window, or now when inside it)."""
    delay_hours: float = Field(default=0.0, ge=0.0, le=24 * 31, allow_inf_nan=False)
    """Hours to wait first: after now, or for gateway_outage after the incident's end."""
    max_attempts: StrictInt | None = Field(default=None, ge=1, le=100)
    """Most sent attempts over the installment's life; a debit past it becomes `none`."""
    retry_on_rebind: StrictBool = False
    """Retry on the new binding when the card was rebound after the failure."""

    @field_validator("at", mode="before")
    @classmethod
    def _time_of_day(cls, value):
        return None if value is None else _clock(value)


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    debit_window: tuple[dt.time, dt.time] = (dt.time(9), dt.time(21))
    """Debits are planned inside this local time window (no debits, so no bank SMS, at night)."""
    causes: dict[RootCause, CausePolicy]

    @field_validator("debit_window", mode="before")
    @classmethod
    def _window(cls, value):
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ValueError("must be two local times [\"HH:MM\", \"HH:MM\"]")
        start, end = (_clock(item) for item in value)
        if not start < end:
            raise ValueError("the window's start must be before its end")
        return start, end

    @field_validator("causes")
    @classmethod
    def _safe_actions(cls, causes: dict[RootCause, CausePolicy]):
        missing = [cause.value for cause in RootCause if cause not in causes]
        if missing:
            raise ValueError(f"causes: no policy for {', '.join(missing)}")
        for cause, allowed in ((R.NO_SETTLEMENT_RECORD, ("query_gateway",)),
                               (R.SETTLEMENT_PENDING, ("wait_for_file",))):
            if causes[cause].action not in allowed:
                raise ValueError(f"causes.{cause.value}.action: must be {allowed[0]}: the "
                                 f"outcome of the last attempt is not known, a new debit could "
                                 f"charge the borrower twice")
            if causes[cause].retry_on_rebind:
                raise ValueError(f"causes.{cause.value}.retry_on_rebind: must be false: the "
                                 f"outcome of the last attempt is not known")
        for cause, policy in causes.items():
            if policy.action == "refund":
                raise ValueError(f"causes.{cause.value}.action: refund is for overpaid "
                                 f"installments and duplicate debits only")
        return causes

    @model_validator(mode="after")
    def _debits_inside_the_window(self) -> "RetryPolicy":
        start, end = self.debit_window
        for cause, policy in self.causes.items():
            if policy.at is not None and not start <= policy.at <= end:
                raise ValueError(
                    f"causes.{cause.value}.at: {policy.at:%H:%M} is outside debit_window "
                    f"{start:%H:%M}-{end:%H:%M}: debits are never planned at night; move `at` "
                    f"into the window or widen the window")
        return self


DEFAULT_POLICY: dict = {
    "debit_window": ["09:00", "21:00"],
    "causes": {
        # Money may come in: try again the next morning, a few times at most.
        "insufficient_balance": {"action": "retry", "at": "09:00", "max_attempts": 3,
                                 "retry_on_rebind": True},
        # Judicial or bank freeze: debiting again fails and annoys; ops contact the borrower.
        "account_frozen": {"action": "none"},
        # The account is gone: only a new binding helps.
        "account_closed": {"action": "wait_for_borrower", "max_attempts": 3,
                           "retry_on_rebind": True},
        "card_unbound": {"action": "wait_for_borrower", "max_attempts": 3,
                         "retry_on_rebind": True},
        # Not the borrower's fault: through another gateway whose file arrived clean, else the
        # same one an hour after the incident ends.
        "gateway_outage": {"action": "retry_other_gateway", "delay_hours": 1,
                           "max_attempts": 4},
        "instruction_not_confirmed": {"action": "wait_for_borrower"},
        # Internal: the collections system did not send; send it in the debit window.
        "not_instructed": {"action": "retry", "max_attempts": 3},
        "no_settlement_record": {"action": "query_gateway"},
        "settlement_pending": {"action": "wait_for_file"},
        # A decline we have no specific rule for: one more try the next morning.
        "other_decline": {"action": "retry", "at": "09:00", "max_attempts": 2,
                          "retry_on_rebind": True},
        # A code we do not understand is not retried blindly: extend the code map first.
        "unclassified": {"action": "none"},
    },
}


def load_policy(path: Path | None) -> RetryPolicy:
    """The default policy, with the operator file's settings (TOML) on top, cause by cause and
    key by key. A mistake is a usage error (exit 2) naming the file, the key and the problem."""
    merged = {"debit_window": DEFAULT_POLICY["debit_window"],
              "causes": {cause: dict(policy) for cause, policy in
                         DEFAULT_POLICY["causes"].items()}}
    if path is not None:
        try:
            given = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"retry policy {path}: cannot read: {exc.strerror or exc}",
                             next_step="check --retry-policy / RECON_RETRY_POLICY") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"retry policy {path}: not valid TOML: {exc}",
                             next_step="fix the file (see README, Retry plan)") from None
        unknown = sorted(set(given) - {"debit_window", "causes"})
        if unknown:
            raise UsageError(f"retry policy {path}: {unknown[0]}: unknown key (expected "
                             f"debit_window or [causes.<root_cause>])",
                             next_step="fix the file (see README, Retry plan)")
        if "debit_window" in given:
            merged["debit_window"] = given["debit_window"]
        causes = given.get("causes", {})
        if not isinstance(causes, dict):
            raise UsageError(f"retry policy {path}: causes: must be a table of root causes",
                             next_step="fix the file (see README, Retry plan)")
        for cause, settings in causes.items():
            if cause not in merged["causes"]:
                raise UsageError(f"retry policy {path}: causes.{cause}: not a root cause",
                                 next_step="use one of " + ", ".join(merged["causes"]))
            if not isinstance(settings, dict):
                raise UsageError(f"retry policy {path}: causes.{cause}: must be a table",
                                 next_step="fix the file (see README, Retry plan)")
            merged["causes"][cause].update(settings)
    try:
        return RetryPolicy.model_validate(merged)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        problem = error["msg"].removeprefix("Value error, ")
        shown = problem if problem.startswith(where) else f"{where}: {problem}"
        source = path if path is not None else "(defaults)"
        raise UsageError(f"retry policy {source}: {shown}",
                         next_step="fix the file (see README, Retry plan)") from None
