"""Every command and option explains itself, and every command is in the user documentation
(sqlite-utils' tests/test_docs.py is the model)."""

from __future__ import annotations

import re

import click
import pytest

from recon.cli import main
from tests.conftest import ROOT


def _commands(group: click.Group, prefix: str = "recon") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        found.append((path, command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, path))
    return found


COMMANDS = _commands(main)
LEAVES = [(path, command) for path, command in COMMANDS if not isinstance(command, click.Group)]


@pytest.mark.parametrize("path, command", COMMANDS, ids=[path for path, _ in COMMANDS])
def test_every_command_has_help_text(path, command):
    assert (command.help or "").strip(), f"{path} has no docstring"


@pytest.mark.parametrize("path, command", LEAVES, ids=[path for path, _ in LEAVES])
def test_every_command_shows_an_example(path, command):
    assert re.search(r"Example: (\S+=\S+ )*recon ", command.help or ""), \
        f"{path}'s docstring has no example"


OPTIONS = [(f"{path} {' / '.join(parameter.opts)}", parameter)
           for path, command in COMMANDS for parameter in command.params
           if isinstance(parameter, click.Option)]


@pytest.mark.parametrize("name, option", OPTIONS, ids=[name for name, _ in OPTIONS])
def test_every_option_has_help_text(name, option):
    assert (option.help or "").strip(), f"{name} has no help text"


def _documentation() -> str:
    return "\n".join(path.read_text(encoding="utf-8")
                     for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])


@pytest.mark.parametrize("path, command", LEAVES, ids=[path for path, _ in LEAVES])
def test_every_command_is_in_the_documentation(path, command):
    assert path in _documentation(), f"`{path}` is in neither README.md nor docs/"
