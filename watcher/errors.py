"""watcher's one exception tree.

    WatcherError                 anything watcher expects and reports without a traceback
    ├── ConfigError              a config file that cannot be used; carries every problem found
    ├── RuleError                a topic rule that does not compile (topic, rule, position)
    ├── FetchError               one URL could not be fetched (status, retry_after)
    │   └── BlockedAddressError  the URL points at an address the guard refuses
    ├── ParseError               a feed body that yields nothing usable
    ├── ExtractError             an article page that yields no text, or ran out of time
    ├── MatchError               matching one article against the topics ran out of time
    ├── StoreError               the database cannot be opened, migrated or written
    ├── LearnError               a topic's model cannot be trained (too few labels, no learner installed)
    └── DeliveryError            one alert could not be sent
        └── PermanentDeliveryError   ... and retrying will not help (SMTP 5xx, webhook 4xx)

Anything else that reaches the daemon's top level is a bug: it is logged with its traceback and the
daemon keeps running. Foreign exceptions are translated at the module that imports the library, with
`raise ... from e` so the cause stays visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from .models import FetchFailure


class WatcherError(Exception):
    """Base of every error watcher raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a config file, located by its key path (``feeds[3].url``)."""

    path: str
    expected: str
    found: str = ""

    def __str__(self) -> str:
        if not self.expected:  # a problem that explains itself (a rule's syntax error)
            return f"{self.path}: {self.found}"
        found = f", found {self.found}" if self.found else ""
        return f"{self.path}: expected {self.expected}{found}"


class ConfigError(WatcherError):
    def __init__(self, file: str, problems: list[ConfigProblem]):
        self.file = file
        self.problems = list(problems)
        lines = [f"{file}: {len(self.problems)} error(s)"]
        lines += [f"  {file}: {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class RuleError(WatcherError):
    """A topic rule that does not compile. ``position`` is a 0-based offset into ``rule``."""

    def __init__(self, message: str, *, rule: str = "", position: int | None = None, topic: str = ""):
        self.message = message
        self.rule = rule
        self.position = position
        self.topic = topic
        super().__init__(self.describe())

    def describe(self, *, name_topic: bool = True) -> str:
        head = f"topic {self.topic!r}: " if self.topic and name_topic else ""
        if self.position is None:
            return f"{head}{self.message}"
        if not self.rule.strip():
            return f"{head}{self.message} at position {self.position + 1}"
        position = self.position
        several_lines = "\n" in self.rule.strip("\n")
        line_no = self.rule.count("\n", 0, position) + 1
        if position >= len(self.rule.rstrip()):
            # Point just after the last character written, not at a blank line or trailing space after it.
            position = len(self.rule.rstrip())
            at_end = "" if "end of the rule" in self.message else ", at the end of the rule"
            where = f"{at_end} (position {position + 1})"
        elif several_lines:
            column = position - self.rule.rfind("\n", 0, position)
            where = f" at line {line_no}, column {column} (position {self.position + 1})"
        else:
            where = f" at position {self.position + 1}"
        # Rules are often written over several lines: show the line of the error, with a caret under it.
        start = self.rule.rfind("\n", 0, position) + 1
        end = self.rule.find("\n", position)
        line_text = self.rule[start : end if end >= 0 else len(self.rule)]
        return f"{head}{self.message}{where}\n    {line_text}\n    {' ' * (position - start)}^"


class FetchError(WatcherError):
    """A URL that could not be fetched. ``kind`` is a short stable word used in logs and metrics."""

    def __init__(
        self,
        url: str,
        message: str,
        *,
        kind: FetchFailure = "http",
        status: int | None = None,
        retry_after: timedelta | None = None,
    ):
        self.url = url
        self.message = message
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        super().__init__(f"{message}")


class BlockedAddressError(FetchError):
    """The guard refused to connect: the host resolves to a loopback, private or otherwise reserved address."""

    def __init__(self, url: str, message: str):
        super().__init__(url, message, kind="blocked")


class ParseError(WatcherError):
    pass


class ExtractError(WatcherError):
    pass


class MatchError(WatcherError):
    """Matching one article ran past its time limit (hostile text or a hostile rule); the article is kept unmatched."""


class StoreError(WatcherError):
    pass


class StoreConflict(StoreError):
    """Two writers' transactions locked each other (PostgreSQL's deadlock or serialization failure): the server
    rolled this one back, and running it again is safe."""


class LearnError(WatcherError):
    pass


class DeliveryError(WatcherError):
    """A send that failed but may succeed later (SMTP 4xx, webhook 429/5xx, connection trouble)."""

    def __init__(self, message: str, *, retry_after: timedelta | None = None):
        self.retry_after = retry_after
        super().__init__(message)


class PermanentDeliveryError(DeliveryError):
    """A send the server refused for good (SMTP 5xx, webhook 4xx): the delivery goes to dead letter."""
