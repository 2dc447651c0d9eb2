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


def test_the_module_map_lists_every_module():
    """docs/architecture.md has one line per module of the package: a contributor finds each one there."""
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "watcher").rglob("*.py"))
    missing = [m for m in modules if f"| `{m}` |" not in doc]
    assert not missing, f"docs/architecture.md's module map lacks {missing}"


def test_code_and_docs_cite_only_files_in_the_repository():
    """The design documents the team works from are not in the repository; nothing may point at them."""
    texts = [
        p for d in ("watcher", "tests", "bench", "docs") for p in (ROOT / d).rglob("*") if p.suffix in (".py", ".md")
    ]
    texts += [ROOT / "README.md", ROOT / "CONTRIBUTING.md"]
    outside = ("DESIGN" + ".md", "RELIABILITY" + ".md")  # spelled in pieces so this file does not cite them
    offenders = [str(p.relative_to(ROOT)) for p in texts if any(s in p.read_text(encoding="utf-8") for s in outside)]
    assert not offenders
