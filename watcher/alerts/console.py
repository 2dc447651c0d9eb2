"""The zero-setup channels of the default config: `console` prints the plain text, `file` writes each message
as .txt and .html under a directory (default ./digests) with a UTC timestamp in the name, so they sort."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TextIO

from ..config_reader import Table
from ..errors import DeliveryError
from .channel import ChannelContext, ChannelOptions, ChannelType
from .digest import Message


class ConsoleChannel:
    def __init__(self, name: str, *, stream: TextIO | None = None):
        self.name = name
        self.stream = stream  # None: sys.stdout at the time of sending

    async def send(self, message: Message) -> None:
        stream = self.stream or sys.stdout
        try:
            stream.write(f"\n{message.subject}\n{'=' * min(len(message.subject), 78)}\n{message.text}")
            stream.flush()
        except (OSError, ValueError) as e:  # a closed or broken stdout
            raise DeliveryError(f"console channel {self.name!r}: cannot write: {e}") from e


class FileChannel:
    def __init__(self, name: str, *, directory: str | os.PathLike[str] = "digests", html: bool = True):
        self.name = name
        self.directory = Path(directory)
        self.html = html

    async def send(self, message: Message) -> None:
        try:
            await asyncio.to_thread(self.write, message)
        except OSError as e:  # disk full, permissions: retried later like any failed send
            raise DeliveryError(
                f"file channel {self.name!r}: cannot write to {self.directory}: {e.strerror or e}"
            ) from e

    def write(self, message: Message) -> Path:
        """Write the message; returns the .txt path. Files are written to a temporary name, then renamed."""
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = message.created_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        safe_name = re.sub(r"[^A-Za-z0-9_-]+", "-", self.name)[:60] or "channel"
        part = f"-part{message.part[0]}of{message.part[1]}" if message.part[1] > 1 else ""
        base = f"{stamp}-{safe_name}-{message.kind}{part}"
        n = 1
        stem = base
        while (self.directory / f"{stem}.txt").exists() or (self.directory / f"{stem}.html").exists():
            n += 1
            stem = f"{base}-{n}"
        outputs = [(self.directory / f"{stem}.txt", f"{message.subject}\n\n{message.text}")]
        if self.html:
            outputs.insert(0, (self.directory / f"{stem}.html", message.html))
        for path, content in outputs:
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(content, encoding="utf-8")
            os.replace(tmp, path)
        return outputs[-1][0]


@dataclass(frozen=True, slots=True)
class ConsoleOptions(ChannelOptions):
    pass


@dataclass(frozen=True, slots=True)
class FileOptions(ChannelOptions):
    directory: str = "digests"


def _read_file_options(t: Table) -> FileOptions:
    return FileOptions(directory=t.text("directory", "digests"))


def _build_file(name: str, options: FileOptions, context: ChannelContext) -> FileChannel:
    directory = Path(options.directory)
    if not directory.is_absolute() and context.config_dir is not None:
        # Relative to the config file, like the database: the daemon's working directory does not matter.
        directory = context.config_dir / directory
    return FileChannel(name, directory=directory)


CONSOLE = ChannelType("console", ConsoleOptions, lambda t: ConsoleOptions(), lambda name, o, c: ConsoleChannel(name))
FILE = ChannelType("file", FileOptions, _read_file_options, _build_file)
