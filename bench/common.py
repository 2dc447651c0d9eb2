"""Shared pieces of the benchmark suite: where the real data is, the page and feed sets, process sampling, results.

The real pages and feeds are READ from ../shared/evaldata (relative to the repository), never copied into the
repository. When that folder is absent, synthetic pages and feeds are generated instead and every result says
so (`data: synthetic`).
"""

from __future__ import annotations

import functools
import gzip
import html
import json
import os
import platform
import random
import re
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
EVALDATA = Path(os.environ.get("WATCHER_EVALDATA", REPO.parent / "shared" / "evaldata"))
RESULTS = BENCH / "results"
PYTHON = sys.executable

# Every request of the suite goes to 127.0.0.1: no proxy from the environment may take it elsewhere.
for _name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
    os.environ.pop(_name, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

# The watcher measured: the working tree, or a snapshot of a commit (`run_all.py --snapshot HEAD`), so that a
# run is not disturbed by edits made while it runs.
SRC = Path(os.environ.get("WATCHER_SRC") or REPO)
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))


def cpu_ms_per_item(fn, items, repeat: int) -> float:
    """The best of `repeat` runs of `fn(title, text)` over `items`: CPU milliseconds per item."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for title, text in items:
            fn(title, text)
        best = min(best, (time.process_time() - started) * 1000 / len(items))
    return best


def labelled_topics(path: Path) -> tuple[list[dict], list[tuple[str, str]], tuple, dict]:
    """The labelled items of `path` (topics/dev.jsonl), their (title, body), the default config's compiled topics
    and a model per topic trained on every labelled item: what the scoring benches measure with."""
    import tomllib

    from watcher.config import config_from_dict
    from watcher.learn.train import Example, train
    from watcher.rules import compile_topics

    items = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    with open(REPO / "watcher" / "default_config.toml", "rb") as f:
        config = config_from_dict(tomllib.load(f), "default_config.toml")
    topics = compile_topics(config.topics, config.terms)
    texts = [(i.get("title") or "", i.get("text") or "") for i in items]
    models = {
        topic.name: train(
            topic,
            [
                Example(t, b, i["labels"][topic.name] == "yes")
                for (t, b), i in zip(texts, items, strict=True)
                if i["labels"].get(topic.name) in ("yes", "no")
            ],
        )
        for topic in topics
    }
    return items, texts, topics, models


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# --- article pages ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PageSet:
    pages: tuple[tuple[str, bytes], ...]  # (name, raw HTML bytes), in serving order
    source: str  # "real: ..." or "synthetic"

    @property
    def real(self) -> bool:
        return not self.source.startswith("synthetic")


def load_pages(*, synthetic: bool = False, limit: int | None = None) -> PageSet:
    """The real article pages (scrapinghub, readability, trafilatura cache), shuffled with a fixed seed."""
    pages: list[tuple[str, bytes]] = []
    counts: dict[str, int] = {}
    root = EVALDATA / "articles"
    if not synthetic and root.is_dir():
        sets = {
            "scrapinghub": sorted((root / "scrapinghub_article_extraction_benchmark" / "html").glob("*.html.gz")),
            "readability": sorted((root / "readability_test_pages").glob("*/source.html")),
            "trafilatura": sorted((root / "trafilatura_eval" / "tests" / "cache").glob("*.htm*")),
        }
        for name, paths in sets.items():
            for path in paths:
                data = path.read_bytes()
                if path.suffix == ".gz":
                    data = gzip.decompress(data)
                if data.strip():
                    pages.append((f"{name}/{path.parent.name if name == 'readability' else path.name}", data))
            counts[name] = len(paths)
    if not pages:
        pages = _synthetic_pages(400)
        source = "synthetic (../shared/evaldata absent)" if not synthetic else "synthetic (asked for)"
    else:
        source = "real: " + ", ".join(f"{n} {c}" for n, c in counts.items())
    random.Random(1).shuffle(pages)
    if limit:
        pages = pages[:limit]
    return PageSet(tuple(pages), source)


_WORDS = [
    "government",
    "minister",
    "said",
    "troops",
    "border",
    "talks",
    "officials",
    "agreement",
    "drone",
    "production",
    "factory",
    "economy",
    "market",
    "election",
    "parliament",
    "president",
    "week",
    "report",
    "city",
    "police",
    "court",
    "security",
    "energy",
    "prices",
    "trade",
    "deal",
    "military",
    "capital",
    "region",
    "crisis",
    "support",
    "plan",
    "country",
    "forces",
    "attack",
    "defence",
    "summit",
    "leaders",
    "news",
    "statement",
    "spokesman",
]


def _sentence(rng: random.Random, n: int = 14) -> str:
    words = [rng.choice(_WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def _synthetic_pages(n: int) -> list[tuple[str, bytes]]:
    rng = random.Random(7)
    out = []
    for i in range(n):
        title = _sentence(rng, 8)[:-1]
        paragraphs = "\n".join(
            f"<p>{' '.join(_sentence(rng) for _ in range(rng.randint(2, 6)))}</p>" for _ in range(rng.randint(6, 30))
        )
        nav = "".join(f'<li><a href="/section/{j}">{rng.choice(_WORDS)}</a></li>' for j in range(40))
        page = (
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'<meta property="og:title" content="{title}"><meta name="author" content="Staff reporter">'
            f'<meta property="article:published_time" content="2026-02-{1 + i % 27:02d}T10:00:00Z">'
            f"<script>var x = {i};</script><style>body{{margin:0}}</style></head><body>"
            f"<header><nav><ul>{nav}</ul></nav></header><main><article><h1>{title}</h1>"
            f'<p class="byline">By Staff reporter</p>{paragraphs}</article>'
            f"<aside><h2>Most read</h2><ul>{nav}</ul></aside></main>"
            f"<footer><p>Copyright 2026 Example News. All rights reserved.</p></footer></body></html>"
        )
        out.append((f"synthetic/{i}.html", page.encode()))
    return out


# --- feeds -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemTemplate:
    title: str
    summary: str  # HTML (as the feed had it)
    content: str  # HTML, may be ""
    author: str


@dataclass(frozen=True, slots=True)
class FeedTemplate:
    name: str
    kind: str  # "rss" | "atom"
    title: str
    items: tuple[ItemTemplate, ...]


@dataclass(frozen=True, slots=True)
class FeedSet:
    templates: tuple[FeedTemplate, ...]
    originals: tuple[tuple[str, bytes], ...]  # the real feed files as captured (for the raw parsing limit)
    source: str

    @property
    def real(self) -> bool:
        return not self.source.startswith("synthetic")


REAL_FEEDS = EVALDATA / "feeds" / "fastfeedparser" / "benchmark_data.tar.xz"


def load_real_feed_files() -> list[tuple[str, bytes]]:
    if not REAL_FEEDS.is_file():
        return []
    out = []
    with tarfile.open(REAL_FEEDS) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if member.isfile():
                out.append((member.name, tar.extractfile(member).read()))
    return out


def load_feeds(*, synthetic: bool = False) -> FeedSet:
    """Feed templates: the items (titles, summaries, content, authors) of the 200 real feeds, or synthetic ones."""
    originals = [] if synthetic else load_real_feed_files()
    templates = []
    for name, data in originals:
        try:
            t = _template_from(name, data)
        except Exception:  # a feed lxml cannot make anything of: it still counts in the raw parsing limit
            t = None
        if t and t.items:
            templates.append(t)
    if not templates:
        return FeedSet(
            tuple(_synthetic_templates(200)),
            (),
            "synthetic (../shared/evaldata absent)" if not synthetic else "synthetic (asked for)",
        )
    return FeedSet(
        tuple(templates),
        tuple(originals),
        f"real: {len(originals)} feeds of fastfeedparser's benchmark_data ({len(templates)} usable as templates)",
    )


_BAD_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: str | None) -> str:
    return _BAD_XML_CHARS.sub("", text or "").strip()


def _template_from(name: str, data: bytes) -> FeedTemplate | None:
    head = data.lstrip()[:1]
    if head in (b"{", b"["):
        doc = json.loads(data)
        items = tuple(
            ItemTemplate(
                _clean(it.get("title")),
                _clean(it.get("summary")),
                _clean(it.get("content_html") or html.escape(it.get("content_text") or "")),
                _clean((it.get("author") or {}).get("name") if isinstance(it.get("author"), dict) else ""),
            )
            for it in doc.get("items", [])
        )
        return FeedTemplate(name, "rss", _clean(doc.get("title")), items)
    from lxml import etree

    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(data, parser)
    if root is None:
        return None
    local = lambda el: etree.QName(el).localname if isinstance(el.tag, str) else ""
    kind = "atom" if local(root) == "feed" else "rss"
    title = ""
    items = []
    for el in root.iter():
        tag = local(el)
        if tag == "title" and not title and local(el.getparent()) in ("channel", "feed"):
            title = _clean("".join(el.itertext()))
        if tag not in ("item", "entry"):
            continue
        fields: dict[str, str] = {}
        for child in el:
            ctag = local(child)
            if ctag in ("author", "creator") and len(child):
                text = "".join(child.itertext())
            elif len(child) and ctag in ("content", "summary"):  # Atom xhtml content: keep the markup
                text = "".join(etree.tostring(c, encoding="unicode") for c in child)
            else:
                text = child.text or ""
            fields.setdefault(ctag, _clean(text))
        items.append(
            ItemTemplate(
                fields.get("title", ""),
                fields.get("description") or fields.get("summary", ""),
                fields.get("encoded") or fields.get("content", ""),
                fields.get("creator") or fields.get("author", ""),
            )
        )
    return FeedTemplate(name, kind, title, tuple(items))


def _synthetic_templates(n: int) -> list[FeedTemplate]:
    rng = random.Random(11)
    out = []
    for i in range(n):
        items = tuple(
            ItemTemplate(
                _sentence(rng, 9)[:-1],
                "<p>" + " ".join(_sentence(rng) for _ in range(3)) + "</p>",
                "" if i % 3 else "".join(f"<p>{_sentence(rng, 20)}</p>" for _ in range(8)),
                "Staff reporter",
            )
            for _ in range(30)
        )
        out.append(FeedTemplate(f"synthetic/{i}", "atom" if i % 3 == 1 else "rss", f"Synthetic news {i}", items))
    return out


_EPOCH = datetime(2026, 2, 20, 12, 0, tzinfo=UTC)


@functools.cache
def _escaped(item: ItemTemplate) -> ItemTemplate:
    esc = html.escape
    return ItemTemplate(esc(item.title), esc(item.summary), esc(item.content), esc(item.author))


def render_feed(template: FeedTemplate, feed_url: str, home: str, items: list[tuple[int, str, ItemTemplate]]) -> bytes:
    """A feed in the template's format with our own links: items are (sequence number, article URL, item
    texts), newest first. Only URLs on the local site appear as links."""
    esc = html.escape
    parts: list[str] = []
    if template.kind == "atom":
        updated = (_EPOCH + timedelta(minutes=items[0][0] if items else 0)).strftime("%Y-%m-%dT%H:%M:%SZ")
        parts.append(
            '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>{esc(template.title)}</title><id>{esc(feed_url)}</id><updated>{updated}</updated>"
            f'<link rel="alternate" href="{esc(home)}"/><link rel="self" href="{esc(feed_url)}"/>\n'
        )
        for seq, url, item in items:
            it = _escaped(item)
            when = (_EPOCH + timedelta(minutes=seq)).strftime("%Y-%m-%dT%H:%M:%SZ")
            parts.append(
                f'<entry><title type="html">{it.title}</title><link rel="alternate" href="{esc(url)}"/>'
                f"<id>{esc(url)}</id><published>{when}</published><updated>{when}</updated>"
                + (f"<author><name>{it.author}</name></author>" if it.author else "")
                + (f'<summary type="html">{it.summary}</summary>' if it.summary else "")
                + (f'<content type="html">{it.content}</content>' if it.content else "")
                + "</entry>\n"
            )
        parts.append("</feed>\n")
    else:
        parts.append(
            '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"'
            ' xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
            f"<title>{esc(template.title)}</title><link>{esc(home)}</link><description>{esc(template.title)}</description>"
            f'<atom:link href="{esc(feed_url)}" rel="self" type="application/rss+xml"/>\n'
        )
        for seq, url, item in items:
            it = _escaped(item)
            when = (_EPOCH + timedelta(minutes=seq)).strftime("%a, %d %b %Y %H:%M:%S +0000")
            parts.append(
                f"<item><title>{it.title}</title><link>{esc(url)}</link>"
                f'<guid isPermaLink="true">{esc(url)}</guid><pubDate>{when}</pubDate>'
                + (f"<dc:creator>{it.author}</dc:creator>" if it.author else "")
                + f"<description>{it.summary}</description>"
                + (f"<content:encoded>{it.content}</content:encoded>" if it.content else "")
                + "</item>\n"
            )
        parts.append("</channel></rss>\n")
    return "".join(parts).encode("utf-8")


# --- measuring processes ------------------------------------------------------------------------------------

try:
    import psutil
except ImportError:  # the /proc fallback below covers Linux
    psutil = None


def _proc_children(pid: int) -> list[int]:
    kids = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


def descendants(pid: int) -> list[int]:
    if psutil:
        try:
            return [p.pid for p in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            return []
    out, todo = [], _proc_children(pid)
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _proc_children(p)
    return out


def rss_bytes(pid: int) -> int:
    if psutil:
        try:
            return psutil.Process(pid).memory_info().rss
        except psutil.Error:
            return 0
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def cpu_seconds(pid: int) -> float:
    if psutil:
        try:
            t = psutil.Process(pid).cpu_times()
            return t.user + t.system
        except psutil.Error:
            return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


@dataclass
class Sampler:
    """Samples the RSS of a process and its descendants (minus `exclude`) every `every` seconds in a thread,
    and their CPU seconds. Peak RSS is the peak of the SUM over processes.

    Cheap on purpose, since it runs inside the measured process: the process tree is re-read from
    /proc/<pid>/task/*/children every second (not a scan of all of /proc), RSS from /proc/<pid>/statm."""

    root: int = field(default_factory=os.getpid)
    exclude: set[int] = field(default_factory=set)
    every: float = 0.1
    peak_total: int = 0
    peak_by_role: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _cpu0: dict[int, float] = field(default_factory=dict)
    _cpu_last: dict[int, float] = field(default_factory=dict)
    _pids: list[int] = field(default_factory=list)
    _thread: threading.Thread | None = None

    def _refresh(self) -> None:
        self._pids = [self.root] + [p for p in _tree(self.root) if p not in self.exclude]
        for pid in self._pids:
            self._cpu_last[pid] = _proc_cpu(pid)
            self._cpu0.setdefault(pid, 0.0)  # a process born during the run: all its CPU counts

    def _sample(self) -> None:
        parent = children = 0
        for pid in self._pids:
            r = _proc_rss(pid)
            if pid == self.root:
                parent = r
            else:
                children += r
        self.peak_by_role["parent"] = max(self.peak_by_role.get("parent", 0), parent)
        self.peak_by_role["children"] = max(self.peak_by_role.get("children", 0), children)
        self.peak_total = max(self.peak_total, parent + children)

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(self.every):
            n += 1
            if n % 10 == 0:
                self._refresh()
            self._sample()

    def start(self) -> Sampler:
        self._pids = [self.root] + [p for p in _tree(self.root) if p not in self.exclude]
        for pid in self._pids:
            self._cpu0[pid] = _proc_cpu(pid)
        self._refresh()
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self._refresh()
        self._sample()
        cpu = sum(self._cpu_last[p] - self._cpu0.get(p, 0.0) for p in self._cpu_last)
        parent_cpu = self._cpu_last.get(self.root, 0) - self._cpu0.get(self.root, 0)
        return {
            "peak_rss_mb": round(self.peak_total / 2**20, 1),
            "peak_rss_parent_mb": round(self.peak_by_role.get("parent", 0) / 2**20, 1),
            "peak_rss_children_mb": round(self.peak_by_role.get("children", 0) / 2**20, 1),
            "cpu_s": round(cpu, 3),
            "cpu_parent_s": round(parent_cpu, 3),
            "processes": len(self._cpu_last),
        }


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _tree(pid: int) -> list[int]:
    if not os.path.isdir("/proc"):
        return descendants(pid)
    out, todo = [], _proc_children(pid)
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _proc_children(p)
    return out


def _proc_rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return rss_bytes(pid) if not os.path.isdir("/proc") else 0


def _proc_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return cpu_seconds(pid) if not os.path.isdir("/proc") else 0.0


# --- results -------------------------------------------------------------------------------------------------


def callgrind_instructions(script: str, args: list[str], env: dict[str, str] | None = None) -> int:
    """The instructions callgrind counts for `python script *args`, the whole process (valgrind must be there)."""
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", PYTHON, script, *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", run.stderr)
    if not found:
        raise SystemExit(f"no instruction count in valgrind's output:\n{run.stderr[-2000:]}")
    return int(found.group(1))


def median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    if not n:
        return float("nan")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def environment() -> dict[str, Any]:
    import importlib.metadata as md

    versions = {}
    for pkg in (
        "trafilatura",
        "feedparser",
        "httpx",
        "httpcore",
        "lxml",
        "reader",
        "requests",
        "psutil",
        "sqlite-utils",
    ):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    import sqlite3
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    import watcher

    return {
        "watcher_source": str(Path(watcher.__file__).parent),
        "snapshot_of": os.environ.get("WATCHER_SNAPSHOT_OF"),
        "git_head": git("rev-parse", "--short", "HEAD"),
        "watcher_dirty": bool(git("status", "--porcelain", "watcher")) if not os.environ.get("WATCHER_SRC") else False,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cores": cores(),
        "sqlite": sqlite3.sqlite_version,
        "packages": versions,
        "evaldata": str(EVALDATA) if EVALDATA.is_dir() else None,
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def write_json(name: str, data: Any) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def now_s() -> float:
    return time.perf_counter()


def site_module():
    """bench/site.py, loaded under another name: `import site` would give the standard library's module."""
    import importlib.util

    module = sys.modules.get("bench_site")
    if module is None:
        spec = importlib.util.spec_from_file_location("bench_site", BENCH / "site.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_site"] = module
        spec.loader.exec_module(module)
    return module


def start_site(feeds: int, items: int, **kwargs: Any):
    return site_module().Site.start(feeds, items, **kwargs)
