"""CONTRACT 7, the borrower notices' templates and sending policy: the shipped defaults
(recon/defaults/notice_templates.toml) with an operator file's values over them, validated by
pydantic."""

from __future__ import annotations

import datetime as dt
import re
import string
import tomllib
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import (BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError,
                      field_validator, model_validator)

from recon.contract import RootCause
from recon.errors import UsageError

# Causes that get a notice, the one most in need of the borrower first: it picks the template of
# a notice about several installments.
NOTICE_CAUSES = [RootCause.ACCOUNT_CLOSED, RootCause.CARD_UNBOUND, RootCause.ACCOUNT_FROZEN,
                 RootCause.INSTRUCTION_NOT_CONFIRMED, RootCause.INSUFFICIENT_BALANCE]
# Templates for what the retry plan does about an installment, where the cause's own template
# would say otherwise: the card was rebound and the debit goes to the new card; the card lacked
# money but no automatic debit is planned any more (the attempts reached their limit).
RETRY_ON_NEW_CARD, NO_AUTOMATIC_RETRY = "retry_on_new_card", "no_automatic_retry"
# Every template key, the one most in need of the borrower first: it picks the template of a
# notice about several installments. A notice that says "no more automatic debits" comes last:
# told so while another of their installments is still debited, a borrower may pay twice.
TEMPLATE_KEYS = [RootCause.ACCOUNT_CLOSED.value, RootCause.CARD_UNBOUND.value,
                 RootCause.ACCOUNT_FROZEN.value, RootCause.INSTRUCTION_NOT_CONFIRMED.value,
                 RootCause.INSUFFICIENT_BALANCE.value, RETRY_ON_NEW_CARD, NO_AUTOMATIC_RETRY]
PLACEHOLDERS = frozenset({"amount", "card", "card_last4", "business_date", "due_by",
                          "installments"})
CARD_LIKE = re.compile(r"[0-9](?:[ -]?[0-9]){12}")


class NoticeTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    """The message, with {placeholders} (PLACEHOLDERS)."""

    channel: Literal["sms", "call"] = "sms"
    """`call` sends every notice of this template to the call centre."""

    act_within_days: StrictInt = Field(default=1, ge=0, le=30)
    """{due_by} = the day the notice may first be sent + this many days."""

    @field_validator("text")
    @classmethod
    def _known_placeholders(cls, text: str) -> str:
        try:
            fields = [(name, spec, conversion) for _, name, spec, conversion
                      in string.Formatter().parse(text) if name is not None]
        except ValueError as exc:
            raise ValueError(f"not a template ({exc}); write a literal brace as {{{{ or }}}}") \
                from None
        for name, spec, conversion in fields:
            if name not in PLACEHOLDERS:
                raise ValueError(f"unknown placeholder {{{name}}}; known are "
                                 + ", ".join(f"{{{known}}}" for known in sorted(PLACEHOLDERS)))
            if spec or conversion:
                raise ValueError(f"placeholder {{{name}}} takes no format or conversion")
        if CARD_LIKE.search(text):
            raise ValueError("holds what looks like a full card number (13 or more digits)")
        return text

    def parts(self) -> list[tuple[str, str | None]]:
        return [(literal, name) for literal, name, _, _ in string.Formatter().parse(self.text)]


class NoticePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    call_at_amount: Decimal = Field(default=Decimal("10000.00"), gt=0, decimal_places=2)
    call_on_repeated_failure: StrictBool = True
    send_from: dt.time = dt.time(9, 0)
    send_until: dt.time = dt.time(21, 0)

    @model_validator(mode="after")
    def _window(self) -> "NoticePolicy":
        if not self.send_from < self.send_until:
            raise ValueError("send_from must be before send_until")
        return self

    @property
    def call_at_fen(self) -> int:
        return int(self.call_at_amount * 100)


class NoticeTemplates(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: NoticePolicy = NoticePolicy()
    templates: dict[Literal[tuple(TEMPLATE_KEYS)], NoticeTemplate]

    @model_validator(mode="after")
    def _every_cause(self) -> "NoticeTemplates":
        missing = [key for key in TEMPLATE_KEYS if key not in self.templates]
        if missing:
            raise ValueError(f"no template for {', '.join(missing)}")
        return self


def default_templates_text() -> str:
    return resources.files("recon.defaults").joinpath("notice_templates.toml").read_text("utf-8")


def load_templates(path: Path | None = None) -> NoticeTemplates:
    """The shipped templates, with the operator file's values (if any) over them.

    A mistake in the file is a usage error naming the file, the key and the problem.
    """
    merged = tomllib.loads(default_templates_text())
    if path is None:
        return NoticeTemplates.model_validate(merged)
    try:
        given = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"notice templates {path}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"notice templates {path}: not TOML: {exc}") from None
    for section, values in given.items():
        if isinstance(values, dict) and isinstance(merged.get(section), dict):
            for key, value in values.items():
                if isinstance(value, dict) and isinstance(merged[section].get(key), dict):
                    merged[section][key] = {**merged[section][key], **value}
                else:
                    merged[section][key] = value
        else:
            merged[section] = values
    try:
        return NoticeTemplates.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(part) for part in error['loc']) or '(top)'}: "
                             f"{error['msg']}" for error in exc.errors())
        raise UsageError(f"notice templates {path}: {problems}",
                         next_step="fix the file (see recon/defaults/notice_templates.toml)") \
            from None
