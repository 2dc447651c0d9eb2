"""What every channel type provides, so that one registry (registry.py) serves both the config and the outbox.

A channel module declares one `ChannelType`: its name in `type = "..."`, a frozen dataclass of its typed options,
a reader that takes them from the channel's TOML table (recording every problem with its key path, as the rest of
the config does), and a builder that makes the sender. Adding a channel type is adding a module and a line in
registry.py; config.py and outbox.py do not change (docs/architecture.md, "Where a change goes").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from ..config_reader import Table
from .digest import Message
from .http import Pacer


class Channel(Protocol):
    """Every channel: a name and one coroutine. Raise DeliveryError to retry, PermanentDeliveryError to give up.

    A channel may also offer `split(message) -> Sequence[Message]` to cut a message to its size limits; each part
    is sent and recorded on its own.
    """

    name: str

    async def send(self, message: Message) -> None: ...


@dataclass(frozen=True, slots=True)
class ChannelOptions:
    """The type-specific keys of a channel's table; each channel type subclasses this with its own fields."""

    def secret_envs(self) -> Mapping[str, str]:
        """key -> the environment variable it names, for every secret this channel reads (empty: none)."""
        return {}


@dataclass(frozen=True, slots=True)
class ChannelContext:
    """What a channel may need from outside its own table when it is built."""

    config_dir: Path | None = None  # relative paths in options are relative to the config file's folder
    use_env_proxy: bool = False
    pacer: Pacer | None = None  # shared by channels that must pace posts per URL (Slack: one per second)


OptionsT = TypeVar("OptionsT", bound=ChannelOptions)


@dataclass(frozen=True, slots=True)
class ChannelType(Generic[OptionsT]):
    name: str
    options: type[OptionsT]
    read_options: Callable[[Table], OptionsT]  # reads its keys from the channel's table, recording problems there
    build: Callable[[str, OptionsT, ChannelContext], Channel]

    def make(self, name: str, options: ChannelOptions, context: ChannelContext) -> Channel:
        if not isinstance(options, self.options):
            raise TypeError(f"channel {name!r}: {type(options).__name__} given to a {self.name} channel")
        return self.build(name, options, context)

    def option_keys(self) -> frozenset[str]:
        """The keys this type reads (from a dry read of an empty table), to name them in 'unknown key' errors."""
        probe = Table({}, "", [])
        self.read_options(probe)
        return frozenset(probe.used)
