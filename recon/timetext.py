"""Dates and times as gateway profiles write them: the {D} placeholder of file names, timestamp
formats (yyyyMMddHHmmss or strftime), and time zones by name or offset.

Pure text rules: the profile models check with them, the native readers apply them.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

OFFSET = re.compile(r"^(?:UTC|GMT)?([+-])([0-9]{2}):?([0-9]{2})$")


def zone_of(name: str):
    """A time zone name (Asia/Shanghai) or a fixed offset (+08:00, UTC+0800)."""
    offset = OFFSET.match(name.strip())
    if offset:
        sign, hours, minutes = offset.groups()
        delta = dt.timedelta(hours=int(hours), minutes=int(minutes))
        return dt.timezone(-delta if sign == "-" else delta)
    return ZoneInfo(name)


PLACEHOLDER = re.compile(r"\{D(?::([^}]*))?\}")


def date_placeholders(pattern: str) -> None:
    stripped = PLACEHOLDER.sub("", pattern)
    if "{" in stripped or "}" in stripped:
        raise ValueError(f"{pattern!r}: the only placeholder is {{D}} or {{D:%Y%m%d}} "
                         f"(the business date in strftime form)")


def expand_date(pattern: str, business_date) -> str:
    return PLACEHOLDER.sub(lambda m: business_date.strftime(m.group(1) or "%Y-%m-%d"), pattern)


JAVA_TOKENS = [("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"),
               ("ss", "%S")]


def time_pattern(value: str) -> str:
    """A profile's time_format -> strptime format ('' for contract / iso)."""
    if value in ("contract", "iso"):
        return ""
    if "%" in value:
        return value
    out, rest = "", value
    while rest:
        for token, directive in JAVA_TOKENS:
            if rest.startswith(token):
                out += directive
                rest = rest[len(token):]
                break
        else:
            if rest[0].isalpha():
                raise ValueError(f"{value!r}: unknown letter {rest[0]!r}; use yyyy MM dd HH mm "
                                 f"ss (or a strftime pattern such as %Y%m%d%H%M%S)")
            out += rest[0].replace("%", "%%")
            rest = rest[1:]
    if "%Y" not in out or "%m" not in out or "%d" not in out:
        raise ValueError(f"{value!r}: a timestamp format needs at least yyyy, MM and dd")
    return out
