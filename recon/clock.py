"""The wall clock, read by the entry points (the CLI, the cluster, the pipeline) and passed
down: the database modules and the rules never read it themselves."""

from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    """The current moment, in UTC."""
    return dt.datetime.now(dt.timezone.utc)
