"""Reading TOML tables that report problems instead of raising: the machinery behind config.py.

`Table` wraps one table of the parsed file; its typed getters return the value or the default and record a
ConfigProblem (key path, expected, found) on the way, so one pass over a file finds every mistake in it.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Any

from .errors import ConfigError, ConfigProblem

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '6h', '1h30m', '2d' -> timedelta. Raises ValueError on anything else."""
    compact = text.strip().lower().replace(" ", "")
    if not compact:
        raise ValueError("empty duration")
    pos, seconds = 0, 0.0
    for m in _DURATION_RE.finditer(compact):
        if m.start() != pos:
            break
        seconds += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(compact):
        raise ValueError(f"not a duration: {text!r}")
    return timedelta(seconds=seconds)


class Table:
    """One TOML table being read: typed getters that record problems, and a final check for unknown keys."""

    def __init__(self, data: Any, path: str, problems: list[ConfigProblem]):
        self.path = path
        self.problems = problems
        self.ok = isinstance(data, dict)
        self.data: dict[str, Any] = data if self.ok else {}
        self.used: set[str] = set()
        if not self.ok:
            problems.append(ConfigProblem(path or "(top level)", "a table", _describe(data)))

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def problem(self, name: str, expected: str, found: Any = None) -> None:
        self.problems.append(ConfigProblem(self.key(name), expected, "" if found is None else _describe(found)))

    def missing(self, name: str, expected: str, found: str = "nothing") -> None:
        """A required key that is absent (or empty): `found` is said as words, not quoted as a value."""
        self.problems.append(ConfigProblem(self.key(name), expected, found))

    def get(self, name: str, kind: type | tuple[type, ...], default: Any, expected: str) -> Any:
        self.used.add(name)
        if name not in self.data:
            return default
        value = self.data[name]
        # TOML booleans are ints to isinstance(); a `true` where a number belongs is a mistake.
        if isinstance(value, kind) and not (isinstance(value, bool) and bool not in _as_tuple(kind)):
            return value
        self.problem(name, expected, value)
        return default

    def text(self, name: str, default: Any = "", *, choices: tuple[str, ...] = ()) -> Any:
        value = self.get(name, str, default, "a string")
        if choices and value not in choices and name in self.data:
            self.problem(name, "one of " + ", ".join(repr(c) for c in choices), value)
            return default
        return value

    def flag(self, name: str, default: bool) -> bool:
        return self.get(name, bool, default, "true or false")

    def number(self, name: str, default: Any, *, minimum: float = 0, integer: bool = True) -> Any:
        kind = int if integer else (int, float)
        value = self.get(name, kind, default, "a whole number" if integer else "a number")
        if value is not default and value < minimum:
            self.problem(name, f"a number >= {minimum}", value)
            return default
        return value

    def duration(self, name: str, default: Any, *, allow_zero: bool = False) -> Any:
        raw = self.get(name, str, None, 'a duration such as "90s", "15m", "6h" or "2d"')
        if raw is None:
            return default
        try:
            value = parse_duration(raw)
        except ValueError:
            self.problem(name, 'a duration such as "90s", "15m", "6h" or "2d"', raw)
            return default
        if value <= timedelta(0) and not allow_zero:
            self.problem(name, "a duration longer than zero", raw)
            return default
        return value

    def strings(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self.get(name, list, None, "a list of strings")
        if value is None:
            return default
        if not all(isinstance(v, str) for v in value):
            self.problem(name, "a list of strings", value)
            return default
        return tuple(value)

    def table(self, name: str) -> Table:
        self.used.add(name)
        return Table(self.data.get(name, {}), self.key(name), self.problems)

    def reject_unknown(self, known_elsewhere: tuple[str, ...] = ()) -> None:
        if not self.ok:
            return
        for name in self.data:
            if name not in self.used and name not in known_elsewhere:
                choices = ", ".join(sorted(self.used | set(known_elsewhere)))
                self.problems.append(ConfigProblem(self.key(name), f"a known key ({choices})", "an unknown key"))


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return f"a list {value!r}"[:80]
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def resolve_secret(env_name: str, *, what: str) -> str:
    """Read a secret from the environment at the moment it is needed; raises ConfigError when it is unset.

    Secrets never live in the config file: a key ending in `_env` names the variable that holds one.
    """
    value = os.environ.get(env_name, "")
    if not value:
        raise ConfigError(
            "(environment)", [ConfigProblem(env_name, f"an environment variable holding {what}", "it unset")]
        )
    return value
