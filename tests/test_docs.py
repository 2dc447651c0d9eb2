"""The README documents every command and every config key; docs/rules.md and docs/alerts.md exist."""

from __future__ import annotations

import tomllib
from pathlib import Path

import click
import pytest

from watcher.cli import main

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def commands(group: click.Group, prefix: str = "watcher") -> list[str]:
    found = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        found += commands(command, path) if isinstance(command, click.Group) else [path]
    return found


@pytest.mark.parametrize("command", commands(main))
def test_every_command_is_in_the_readme_and_its_help_has_an_example(command):
    assert f"`{command}" in README, f"{command} is missing from the README's command table"
    parts = command.split()[1:]
    cmd = main
    for part in parts:
        cmd = cmd.commands[part]
    assert "Example" in (cmd.help or ""), f"{command} --help has no example"


def _keys(table: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in table.items():
        if isinstance(value, dict) and prefix not in ("terms", "topics", "channels"):
            keys += _keys(value, key)
        elif prefix and prefix not in ("terms", "topics", "channels"):
            keys.append(f"[{prefix}] {key}")
    return keys


@pytest.mark.parametrize("key", _keys(tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))))
def test_every_setting_of_the_default_config_is_in_the_readme(key):
    section, name = key.split(" ")
    assert f"`{section} {name}" in README or (f"`{section}" in README and f"`{name}`" in README), key
