"""Database URLs as recon reads and shows them: the driver of a bare `postgresql://`, and the
password (`user:pw@`, `?password=pw`) never printed, in the URL or in a server's message."""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from recon.errors import UsageError


def normalise_url(url: str) -> sa.URL:
    """Parse a database URL; bare `postgresql://` / `postgres://` are driven by psycopg2."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise UsageError(f"not a database URL: {safe_url_text(url)}",
                         next_step="use e.g. postgresql://user@host/db or sqlite:///recon.db") \
            from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def safe_url_text(url: str | sa.URL) -> str:
    """The URL with any password (`user:pw@` or `?password=pw`) replaced by ***."""
    if not isinstance(url, sa.URL):
        try:
            url = make_url(url)
        except (ArgumentError, ValueError):
            url = re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)
            return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)
    if "password" in url.query:
        url = url.update_query_dict({"password": "***"})
    if url.host and "@" in url.host:
        # An unescaped `@` in the password (`u:p@ss@host`) is parsed as part of the host.
        url = url.set(host=url.host.rsplit("@", 1)[1], password="***")
    return url.render_as_string(hide_password=True)


def _passwords(url: sa.URL) -> list:
    password = url.password
    if password is not None and url.host and "@" in url.host:
        password = f"{password}@{url.host.rsplit('@', 1)[0]}"
    return [password, url.query.get("password")]


def scrub(text: str, url: sa.URL) -> str:
    if url.host and "@" in url.host:  # the password's tail, parsed as part of the host name
        text = text.replace(url.host.rsplit("@", 1)[0] + "@", "***@")
    for secret in _passwords(url):
        if secret:
            for value in ([secret] if isinstance(secret, str) else secret):
                text = text.replace(str(value), "***")
    return text
