"""Database URLs are shown without their password, even when the password is malformed."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from recon.db.urls import normalise_url, safe_url_text, scrub


@pytest.mark.parametrize("url, shown", [
    ("postgresql://u:s3cretPW@db/recon", "postgresql://u:***@db/recon"),
    ("postgresql://u:s3cr@tPW@db/recon", "postgresql://u:***@db/recon"),
    ("postgresql://u@db/recon?password=s3cretPW", "postgresql://u@db/recon?password=%2A%2A%2A"),
], ids=["plain", "unescaped-at", "query-password"])
def test_password_is_hidden(url, shown):
    assert safe_url_text(url) == shown
    assert "s3c" not in safe_url_text(make_url(url))


def test_error_text_is_scrubbed_of_every_piece_of_the_password():
    url = make_url("postgresql://u:s3cr@tPW@db/recon")
    message = 'could not translate host name "tPW@db" to address; password s3cr@tPW'
    assert "s3cr" not in scrub(message, url) and "tPW" not in scrub(message, url)


def test_bare_postgresql_url_is_driven_by_psycopg2():
    assert normalise_url("postgresql://u@db/recon").drivername == "postgresql+psycopg2"
    assert normalise_url("postgres://u@db/recon").drivername == "postgresql+psycopg2"
