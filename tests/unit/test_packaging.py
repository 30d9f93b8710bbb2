"""What the wheel ships: every package of recon, and the migrations as package data."""

from __future__ import annotations

import tomllib

from tests.conftest import ROOT


def _setuptools_config() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)["tool"]["setuptools"]


def test_every_package_folder_of_recon_is_listed_in_pyproject():
    listed = set(_setuptools_config()["packages"])
    on_disk = {".".join(init.parent.relative_to(ROOT).parts)
               for init in (ROOT / "recon").rglob("__init__.py")}
    assert on_disk - listed == set(), "add these packages to [tool.setuptools] packages"


def test_the_top_level_sql_folder_ships_as_recon_sql_with_every_migration():
    config = _setuptools_config()
    assert config["package-dir"] == {"recon.sql": "sql"}
    dialects = {init.parent.name for init in (ROOT / "sql").glob("*/__init__.py")}
    assert dialects == {"postgresql", "sqlite"}
    for dialect in dialects:
        assert f"recon.sql.{dialect}" in config["packages"]
        assert config["package-data"][f"recon.sql.{dialect}"] == ["*.sql"]
