"""Fixtures of the database integration tests."""

from __future__ import annotations

import pytest


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres), "sqlite"])
def database_url(request, tmp_path) -> str:
    """The same test on a throwaway PostgreSQL database and on a fresh SQLite file."""
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'recon.db'}"
