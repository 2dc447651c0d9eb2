"""Peer suites through watcher's parse stage: feedparser's own ill-formed, encoding and entity test feeds, and the
200 real feeds captured by fastfeedparser.

    python bench/peer_parse.py [--evaldata PATH] [--verbose]

Each file becomes a FetchedFeed (feedparser's test files carry their HTTP Content-Type in a `Header:` line of their
leading comment; the real feeds have none recorded, so they are served as "application/xml", or
"application/feed+json" when the body is JSON) and goes through `watcher.parse.parse_feed` with the defaults the
pipeline uses. Per suite it counts files, feeds that yield entries, feeds parsed without entries, feeds parsed
with a warning, feeds refused (ParseError), entries, and time. For the real feeds it also compares the entry
counts with feedparser's own (benchmark_data_index.json; watcher keeps at most 200 entries per feed).

Invariants (the script exits 1 if any is broken, and lists the files):
  * no exception other than watcher.errors.ParseError leaves parse_feed;
  * every text field of the feed and of every entry is valid Unicode (encodes as UTF-8: no lone surrogates)
    and holds no C0 control character other than \\n and \\t.

Reads ../shared/evaldata (or $WATCHER_EVALDATA) in place: the tarball is read in memory, nothing is extracted
or copied into the repository. Without that folder it says so and exits 0.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
import tarfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from watcher.errors import ParseError
from watcher.models import FetchedFeed, ParsedFeed
from watcher.parse import parse_feed

EVALDATA = Path(os.environ.get("WATCHER_EVALDATA", REPO.parent / "shared" / "evaldata"))
FEEDPARSER_TESTS = Path("feeds/feedparser_tests/tests")
FASTFEEDPARSER = Path("feeds/fastfeedparser")
MAX_ENTRIES = 200  # what the pipeline passes (config [extract] max_entries_per_feed default)

_BAD_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")  # C0 except \t (09) and \n (0a); \r counts as bad
_HEADER = re.compile(r"^Header:\s*([A-Za-z-]+):\s*(.*?)\s*$", re.MULTILINE)
_EXPECT_TITLE = re.compile(r"^Expect:\s*feed\['title'\]\s*==\s*('.*')\s*$", re.MULTILINE)
_ENTRY_FIELDS = ("feed_url", "entry_id", "url", "link", "title", "summary", "content", "author")


@dataclass
class Case:
    name: str
    content: bytes
    headers: dict[str, str]
    expected_entries: int | None = None  # feedparser's count, when known
    expected_title: str | None = None  # feedparser's expected feed title, when the test says (entities)


@dataclass
class SuiteResult:
    name: str
    files: int = 0
    with_entries: int = 0
    without_entries: int = 0
    warnings: int = 0
    refused: int = 0
    entries: int = 0
    seconds: float = 0.0
    slowest: tuple[float, str] = (0.0, "")
    compared: int = 0  # files with a known feedparser entry count
    count_differs: list[str] = field(default_factory=list)
    expected_entries: int = 0
    refusals: list[str] = field(default_factory=list)
    titles_checked: int = 0
    titles_differ: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # invariant violations


# --- the suites ------------------------------------------------------------------------------------------------


def _description_text(raw: bytes) -> str:
    """The file's start as text, enough to read its `Header:` lines, whatever its encoding."""
    head = raw[:4096]
    for bom, codec in (
        (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\xfe\xff", "utf-16-be"),
        (b"\xff\xfe", "utf-16-le"),
    ):
        if head.startswith(bom):
            return head.decode(codec, "replace")
    if head[:4] == b"\x00\x00\x00<":
        return head.decode("utf-32-be", "replace")
    if head[:4] == b"<\x00\x00\x00":
        return head.decode("utf-32-le", "replace")
    if head[:2] == b"\x00<":
        return head.decode("utf-16-be", "replace")
    if head[:2] == b"<\x00":
        return head.decode("utf-16-le", "replace")
    return head.decode("latin-1")


def feedparser_cases(folder: Path) -> Iterator[Case]:
    for path in sorted(folder.rglob("*.xml")):
        raw = path.read_bytes()
        comment = _description_text(raw).split("-->", 1)[0]
        headers = {k.lower(): v for k, v in _HEADER.findall(comment)}
        title = _EXPECT_TITLE.search(comment)
        yield Case(
            str(path.relative_to(folder.parent)),
            raw,
            headers,
            expected_title=ast.literal_eval(title.group(1)) if title else None,
        )


def fastfeedparser_cases(folder: Path) -> Iterator[Case]:
    index_path = folder / "benchmark_data_index.json"
    counts = {}
    if index_path.exists():
        counts = {row["file"]: row.get("n") for row in json.loads(index_path.read_text())}
    with tarfile.open(folder / "benchmark_data.tar.xz", "r:xz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            raw = tar.extractfile(member).read()
            ctype = "application/feed+json" if raw.lstrip()[:1] == b"{" else "application/xml"
            yield Case(member.name, raw, {"content-type": ctype}, counts.get(member.name))


def suites(root: Path) -> list[tuple[str, Iterator[Case]]]:
    fp = root / FEEDPARSER_TESTS
    found = []
    for label, sub in (
        ("feedparser illformed", "illformed"),
        ("feedparser encoding", "encoding"),
        ("feedparser entities", "entities"),
    ):
        if (fp / sub).is_dir():
            found.append((label, feedparser_cases(fp / sub)))
    if (root / FASTFEEDPARSER / "benchmark_data.tar.xz").exists():
        found.append(("fastfeedparser 200 real", fastfeedparser_cases(root / FASTFEEDPARSER)))
    return found


# --- the checks ---------------------------------------------------------------------------------------------


def text_problems(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, str):
        return [f"{where}: not a string ({type(value).__name__})"]
    problems = []
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        problems.append(f"{where}: not valid Unicode ({e.reason} at {e.start})")
    if m := _BAD_CONTROL.search(value):
        problems.append(f"{where}: control character U+{ord(m.group()):04X} at {m.start()}")
    return problems


def feed_problems(parsed: ParsedFeed) -> list[str]:
    problems = text_problems(parsed.title, "feed.title") + text_problems(parsed.link, "feed.link")
    problems += text_problems(parsed.warning, "feed.warning")
    for i, entry in enumerate(parsed.entries):
        for name in _ENTRY_FIELDS:
            problems += text_problems(getattr(entry, name), f"entries[{i}].{name}")
    return problems


def run_suite(name: str, cases: Iterator[Case], verbose: bool) -> SuiteResult:
    result = SuiteResult(name)
    for case in cases:
        result.files += 1
        fetched = FetchedFeed(url=f"https://feeds.example.com/{case.name}", content=case.content, headers=case.headers)
        started = time.perf_counter()
        try:
            parsed = parse_feed(fetched, max_entries=MAX_ENTRIES)
        except ParseError as e:
            elapsed = time.perf_counter() - started
            result.refused += 1
            result.refusals.append(f"{case.name}: {e}")
            result.broken += [f"{case.name}: ParseError {p}" for p in text_problems(str(e), "message")]
        except Exception as e:
            elapsed = time.perf_counter() - started
            where = traceback.extract_tb(e.__traceback__)[-1]
            result.broken.append(
                f"{case.name}: {type(e).__name__}: {e} (at {Path(where.filename).name}:{where.lineno})"
            )
        else:
            elapsed = time.perf_counter() - started
            n = len(parsed.entries)
            result.entries += n
            if n:
                result.with_entries += 1
            else:
                result.without_entries += 1
            if parsed.warning:
                result.warnings += 1
            result.broken += [f"{case.name}: {p}" for p in feed_problems(parsed)]
            if case.expected_entries is not None:
                result.compared += 1
                want = min(case.expected_entries, MAX_ENTRIES)
                result.expected_entries += want
                if n != want:
                    result.count_differs.append(f"{case.name}: {n} entries, feedparser {case.expected_entries}")
            if case.expected_title is not None:
                result.titles_checked += 1
                want = " ".join(case.expected_title.split())  # watcher collapses whitespace in one-line fields
                if parsed.title != want:
                    result.titles_differ.append(f"{case.name}: {parsed.title!r}, feedparser {want!r}")
            if verbose:
                print(f"  {case.name}: {n} entries{' (warning: ' + parsed.warning + ')' if parsed.warning else ''}")
        result.seconds += elapsed
        result.slowest = max(result.slowest, (elapsed, case.name))
    return result


# --- the report ---------------------------------------------------------------------------------------------


def print_table(results: list[SuiteResult]) -> None:
    columns = (
        "suite",
        "files",
        "entries>0",
        "no entries",
        "warning",
        "refused",
        "entries",
        "broken",
        "time s",
        "slowest",
    )
    rows = [
        (
            r.name,
            r.files,
            r.with_entries,
            r.without_entries,
            r.warnings,
            r.refused,
            r.entries,
            len(r.broken),
            f"{r.seconds:.2f}",
            f"{r.slowest[0] * 1000:.0f} ms",
        )
        for r in results
    ]
    total = ("total", *(sum(r[i] for r in rows) for i in range(1, 8)), f"{sum(r.seconds for r in results):.2f}", "")
    rows.append(total)
    widths = [max(len(str(x)) for x in col) for col in zip(columns, *rows)]
    line = lambda cells: "  ".join(
        str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
    )
    print(line(columns))
    print("  ".join("-" * w for w in widths))
    for row in rows[:-1]:
        print(line(row))
    print("  ".join("-" * w for w in widths))
    print(line(rows[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--evaldata", type=Path, default=EVALDATA, help="the shared evaluation data (default %(default)s)"
    )
    parser.add_argument("--verbose", action="store_true", help="one line per file")
    args = parser.parse_args(argv)

    found = suites(args.evaldata) if args.evaldata.is_dir() else []
    if not found:
        print(f"peer_parse: skipped: no peer suites under {args.evaldata} (set WATCHER_EVALDATA or --evaldata)")
        return 0

    results = []
    for name, cases in found:
        if args.verbose:
            print(name)
        results.append(run_suite(name, cases, args.verbose))

    print("watcher parse stage on peer suites (watcher.parse.parse_feed, max_entries=200)\n")
    print_table(results)
    print()
    for r in results:
        print(
            f"{r.name}: {r.with_entries} of {r.files} feeds yield entries, {r.entries} entries, "
            f"{r.files / r.seconds if r.seconds else 0:.0f} files/s, slowest {r.slowest[1]} ({r.slowest[0] * 1000:.0f} ms)"
        )
        if r.compared:
            print(
                f"  vs feedparser's own counts (index, capped at {MAX_ENTRIES}): {r.entries} entries vs {r.expected_entries}; "
                f"{len(r.count_differs)} of {r.compared} feeds differ"
            )
            for line in r.count_differs:
                print(f"    {line}")
        if r.titles_checked:
            print(
                f"  feed titles as feedparser's tests expect them: {r.titles_checked - len(r.titles_differ)} of {r.titles_checked}"
            )
            for line in r.titles_differ:
                print(f"    {line}")
        for line in r.refusals:
            print(f"  refused: {line}")
    broken = [b for r in results for b in r.broken]
    print()
    if broken:
        print(f"INVARIANTS BROKEN: {len(broken)}")
        for line in broken:
            print(f"  {line}")
        return 1
    print(
        "invariants hold: only ParseError escapes; every text field is valid Unicode without C0 controls besides \\n \\t"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
