"""Shared test fixtures. Postgres tests use RECON_TEST_DATABASE_URL (set by .ci/run)."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
DEFAULT_TEST_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _server_url() -> str:
    return os.environ.get("RECON_TEST_DATABASE_URL", DEFAULT_TEST_URL)


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """URL of a reachable PostgreSQL; skips on a laptop without one, fails under CI=true."""
    from recon.db.urls import normalise_url

    url = _server_url()
    try:
        engine = sa.create_engine(normalise_url(url), connect_args={"connect_timeout": 5})
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        message = f"PostgreSQL not reachable at {url.split('@')[-1]}: {type(exc).__name__}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: Postgres tests must run)")
        pytest.skip(f"{message}; set RECON_TEST_DATABASE_URL or start a server to run this test")
    return url


@contextmanager
def throwaway_database(server_url: str) -> Iterator[str]:
    """A fresh, empty database on the server, dropped afterwards: its URL."""
    from recon.db.urls import normalise_url

    admin_url = normalise_url(server_url)
    name = f"recon_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_server_url: str):
    """A fresh, empty schema-less database per test, dropped afterwards."""
    with throwaway_database(postgres_server_url) as url:
        yield url


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES
