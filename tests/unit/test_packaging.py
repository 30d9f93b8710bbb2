"""What the wheel ships: every package of recon, the migrations as package data, and no test
tooling."""

from __future__ import annotations

import re
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


def test_no_test_tooling_ships_in_the_wheel():
    """The synthetic-day generator, the code tables of the tests and the fixtures live under
    tests/ and fixtures/, outside every shipped package, and nothing shipped imports them."""
    assert all(package.split(".")[0] == "recon" for package in _setuptools_config()["packages"])
    shipped = list((ROOT / "recon").rglob("*.py"))
    importers = [path.relative_to(ROOT).as_posix() for path in shipped
                 if re.search(r"^\s*(from|import) (tests|fixtures)\b", path.read_text(), re.M)]
    assert importers == []
    assert "recon/synth.py" not in {path.relative_to(ROOT).as_posix() for path in shipped}
