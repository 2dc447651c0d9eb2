"""Edits of config.toml that keep the user's comments and layout: the only module that imports tomlkit.

`watcher feeds add/remove/import` and the analyst's page (feeds, a topic's rule) change the file people also edit by hand, so an edit must read like one a
careful person would make: the new `[[feeds]]` table goes after the last one (not after the comment block that
introduces the next section), a removed feed takes no comment with it, and nothing else moves.

Every edit is checked before it is written: the new text must load as a Config (config.py, rules compiled),
or nothing is written and the ConfigError says why. The file is replaced atomically (temp file, fsync,
os.replace), so the daemon's watcher (daemon.py) never reads half a file, and an edit is refused if the file
changed while we worked on it (a person saving in an editor at the same moment). Only a file that cannot be
renamed over (bind-mounted on its own into a container) is rewritten in place.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import tomlkit
import tomlkit.exceptions
from tomlkit.items import AoT, Array, Comment, Item, Table, Whitespace
from tomlkit.toml_document import TOMLDocument

from .config import Config, config_from_dict
from .errors import ConfigError, ConfigProblem


@dataclass(frozen=True, slots=True)
class NewFeed:
    name: str
    url: str
    interval: str | None = None  # as the user wrote it ("30m"); None: the [schedule] default


def add_feeds(path: str | os.PathLike[str], feeds: Sequence[NewFeed]) -> Config:
    """Append `[[feeds]]` tables after the last feed; returns the config as it now loads."""

    def change(doc: TOMLDocument) -> None:
        for feed in feeds:
            _append_feed(doc, feed)

    return edit_config(path, change)


def remove_feed(path: str | os.PathLike[str], name: str) -> Config:
    """Remove the feed named `name` (its comments stay where they were); returns the config as it now loads."""

    def change(doc: TOMLDocument) -> None:
        feeds = doc.get("feeds")
        names = [str(item.get("name")) for item in feeds] if isinstance(feeds, (AoT, Array)) else []
        if name not in names:
            raise ConfigError(str(path), [ConfigProblem("feeds", f"a feed named {name!r}", "none")])
        index = names.index(name)
        if isinstance(feeds, AoT):
            _remove_table(doc, feeds, index)
        elif isinstance(feeds, Array):
            del feeds[index]

    return edit_config(path, change)


def set_topic_rule(path: str | os.PathLike[str], topic: str, rule: str) -> Config:
    """Replace the rule of `[topics.NAME]` (the analyst's page, "try a rule"); the topic's other keys and comments
    stay. The rule must compile: the edit is checked like any other (ConfigError with the position)."""

    def change(doc: TOMLDocument) -> None:
        topics = doc.get("topics")
        table = topics.get(topic) if isinstance(topics, (Table, dict)) else None
        if not isinstance(table, (Table, dict)):
            raise ConfigError(str(path), [ConfigProblem("topics", f"a topic named {topic!r}", "none")])
        # A rule written over several lines stays readable in the file: a multi-line literal string when it can be.
        multiline = "\n" in rule
        literal = "'''" not in rule and not any(ch in rule for ch in "\x00\x08\x0b\x0c\x1f\x7f")
        table["rule"] = tomlkit.string(rule, literal=literal and multiline, multiline=multiline)

    return edit_config(path, change)


def edit_config(path: str | os.PathLike[str], change: Callable[[TOMLDocument], None]) -> Config:
    """Read, change, check and atomically rewrite a config file. Raises ConfigError and writes nothing on a problem."""
    # A symlinked config (a mounted secret, a dotfiles repo) is edited where it lives; the link stays a link.
    target = Path(path).resolve()
    shown = str(path)
    try:
        original = target.read_bytes()
    except OSError as e:
        raise ConfigError(shown, [ConfigProblem("(file)", "a readable file", e.strerror or str(e))]) from e
    try:
        doc = tomlkit.parse(original.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(shown, [ConfigProblem("(file)", "UTF-8 text", f"a byte that is not at {e.start}")]) from e
    except tomlkit.exceptions.ParseError as e:
        raise ConfigError(shown, [ConfigProblem("(file)", "valid TOML", str(e))]) from e
    change(doc)
    text = tomlkit.dumps(doc)
    # Checked with the same reader the daemon uses: never write a file the daemon would refuse.
    config = config_from_dict(tomllib.loads(text), shown)
    if target.read_bytes() != original:
        raise ConfigError(
            shown, [ConfigProblem("(file)", "no other change while editing", "the file changed; run the command again")]
        )
    _write_atomically(target, text.encode("utf-8"))
    return config


def _write_atomically(target: Path, data: bytes) -> None:
    mode = stat.S_IMODE(target.stat().st_mode)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp makes 0600 files; keep the original's permissions
        try:
            os.replace(tmp, target)
        except OSError as e:
            # A file bind-mounted on its own (docker -v ./config.toml:/data/config.toml) cannot be renamed over:
            # write it in place. A reader may then see it half-written once; the daemon logs that and reloads
            # when the write completes.
            if e.errno not in (errno.EBUSY, errno.EXDEV):
                raise
            with open(target, "r+b") as f:
                f.truncate(0)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            Path(tmp).unlink(missing_ok=True)
            return
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # the rename itself survives a power cut only once the directory is synced (POSIX)
        dir_fd = os.open(target.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


# --- tomlkit surgery ------------------------------------------------------------------------------------------
# tomlkit attaches comments and blank lines to the table above them. The comment block that introduces the next
# section ("# --- Topics ---") therefore belongs to the last [[feeds]] table: appending naively would put the new
# feed under that heading, and removing the last feed would delete the heading. We move that trailing trivia.


def _append_feed(doc: TOMLDocument, feed: NewFeed) -> None:
    table = tomlkit.table()
    table["name"] = feed.name
    table["url"] = feed.url
    if feed.interval:
        table["interval"] = feed.interval
    feeds = doc.get("feeds")
    if feeds is None:
        aot = tomlkit.aot()
        aot.append(table)
        doc.append("feeds", aot)
        return
    if isinstance(feeds, Array):  # feeds = [{...}, ...] written inline
        inline = tomlkit.inline_table()
        inline.update(table.unwrap())
        feeds.append(inline)
        return
    if not isinstance(feeds, AoT):
        raise ConfigError(
            "(config)", [ConfigProblem("feeds", "an array of tables: [[feeds]] with name and url", "something else")]
        )
    if len(feeds):
        last = feeds[-1]
        trailing = _take_trailing_trivia(last)
        # A blank line between the last feed and the new one (two newlines if the file had no final one).
        last.value.append(None, Whitespace("\n" if last.as_string().endswith("\n") else "\n\n"))
        feeds.append(table)
        for item in trailing:
            table.value.append(None, item)
    else:
        feeds.append(table)


def _remove_table(doc: TOMLDocument, feeds: AoT, index: int) -> None:
    trailing = _take_trailing_trivia(feeds[index])
    del feeds[index]
    holder = feeds[index - 1] if index > 0 else _table_before(doc, "feeds")
    if holder is None:
        return  # nothing above to keep the comments: they go with the feed (a file that starts with [[feeds]])
    body = holder.value.body
    if index > 0:
        while body and body[-1][0] is None and isinstance(body[-1][1], Whitespace):
            body.pop()  # the previous feed's own blank line; the moved trivia brings one
    elif all(isinstance(item, Whitespace) for item in trailing):
        trailing = []  # the first feed's blank line: the comment above it now introduces the next feed
    for item in trailing:
        holder.value.append(None, item)
    if not len(feeds):
        del doc["feeds"]


def _take_trailing_trivia(table: Table) -> list[Item]:
    """Detach the comments and blank lines after a table's last key, and return them in order."""
    body = table.value.body
    start = len(body)
    while start > 0 and body[start - 1][0] is None and isinstance(body[start - 1][1], (Comment, Whitespace)):
        start -= 1
    trailing = [item for _, item in body[start:]]
    del body[start:]
    return trailing


def _table_before(doc: TOMLDocument, key: str) -> Table | None:
    """The last plain table above `key` in the document (a super-table's last sub-table counts)."""
    previous: Table | None = None
    for k, item in doc.body:
        if k is not None and k.key == key:
            return previous
        if isinstance(item, Table):
            previous = item
            while True:  # [a] then [a.b]: the text just above the next table belongs to the innermost one
                subs = [v for kk, v in previous.value.body if kk is not None and isinstance(v, Table)]
                if not subs:
                    break
                previous = subs[-1]
    return previous
