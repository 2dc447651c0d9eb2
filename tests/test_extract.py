"""Extraction in worker processes: main text without clutter, metadata, a time limit, a dead worker survived."""

from __future__ import annotations

import gzip
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from tests.helpers.misbehaving_extract import crashes_the_worker, runs_away_on_marked_pages
from watcher.config import TopicConfig
from watcher.errors import ExtractError, MatchError
from watcher.extract import extract_text
from watcher.models import FetchedPage
from watcher.rules import RuleSet
from watcher.workers import Workers

ROOT = Path(__file__).resolve().parent.parent

ARTICLE = """<html lang="ko"><head><title>Drone plant | Test News</title>
<meta property="article:published_time" content="2026-11-25T08:00:00+09:00"></head><body>
<nav><a href="/">Home</a> <a href="/world">World</a></nav>
<article><h1>Drone plant opens</h1>
<p>North Korea and Russia opened a factory that will produce attack drones, officials said on Wednesday.</p>
<p>The plant is expected to turn out thousands of drones a year, according to the intelligence service.</p>
<p>Analysts said the joint production deepens the military cooperation between the two countries.</p>
</article>
<div class="comments"><p>COMMENT-MARKER first!</p></div>
<footer>Copyright Test News</footer></body></html>"""


def test_extract_text_keeps_the_article_and_drops_comments_and_navigation():
    extracted = extract_text(ARTICLE.encode(), "https://news.example/drone-plant")
    assert "factory that will produce attack drones" in extracted.text
    assert "COMMENT-MARKER" not in extracted.text and "Copyright" not in extracted.text
    assert extracted.language == "ko"  # from <html lang>, trafilatura's own detector being optional
    assert extracted.published_at is not None and extracted.published_at.tzinfo is not None


PROSE_DATE = ARTICLE.replace(
    '<meta property="article:published_time" content="2026-11-25T08:00:00+09:00">', ""
).replace("<footer>", "<p>Posted on 25 November 2026 by the desk.</p><footer>")


def test_the_page_date_comes_from_where_sites_declare_it_not_from_a_search_of_the_prose():
    # The page's date only stands in for an undated feed entry; the extensive search behind a date in prose costs a
    # fifth of extraction and ~40 MB of dateparser tables per worker (watcher/extract.py).
    code = (
        "import sys; from tests.test_extract import ARTICLE, PROSE_DATE; from watcher.extract import extract_text\n"
        "dated = extract_text(ARTICLE.encode(), 'https://news.example/a')\n"
        "prose = extract_text(PROSE_DATE.encode(), 'https://news.example/b')\n"
        "print(dated.published_at.date(), prose.published_at, 'dateparser' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.split() == ["2026-11-25", "None", "False"]


def test_without_metadata_the_text_is_the_same_and_title_author_and_date_are_not_looked_for():
    page = ARTICLE.replace("<title>", '<meta name="author" content="Kim Reporter"><title>').encode()
    full = extract_text(page, "https://news.example/drone-plant")
    bare = extract_text(page, "https://news.example/drone-plant", metadata=False)
    assert full.author == "Kim Reporter" and full.title and full.published_at is not None
    assert (bare.title, bare.author, bare.published_at) == ("", "", None)
    assert bare.text == full.text and bare.language == full.language == "ko"


def test_a_page_without_text_gives_none():
    assert extract_text(b"<html><body><nav>Home</nav></body></html>", "https://news.example/empty") is None


async def test_a_runaway_page_is_stopped_at_its_time_limit_and_the_pool_recovers():
    extractor = Workers(workers=1, timeout_s=1.0, function=runs_away_on_marked_pages)
    try:
        good = FetchedPage("https://news.example/ok", ARTICLE.encode())
        assert "attack drones" in (await extractor.extract(good)).text  # the pool is warm
        started = time.monotonic()
        with pytest.raises(ExtractError, match="longer than 1 s"):
            await extractor.extract(
                FetchedPage("https://news.example/bad", ARTICLE.replace("Drone plant opens", "RUNAWAY").encode())
            )
        assert time.monotonic() - started < 10  # bounded by the limit, not by the page
        # The stuck worker was killed and replaced: the next page is extracted normally.
        assert "attack drones" in (await extractor.extract(good)).text
    finally:
        extractor.shutdown()


async def test_a_dead_worker_is_an_extract_error_not_a_crash():
    extractor = Workers(workers=1, timeout_s=10, function=crashes_the_worker)
    try:
        with pytest.raises(ExtractError, match="worker died"):
            await extractor.extract(FetchedPage("https://news.example/x", ARTICLE.encode()))
    finally:
        extractor.shutdown()


async def test_several_texts_are_matched_in_one_worker_call_in_order_and_a_runaway_one_fails_the_call():
    from tests.helpers.misbehaving_extract import matching_runs_away_on_marked_titles

    rules = RuleSet.of((TopicConfig(name="drones", rule="drone* AND factory"),), {})
    texts = [("Drone factory opens", "It will make drones."), ("Snow in Seoul", "Ten centimetres."), ("Drones", "")]
    workers = Workers(workers=1, timeout_s=1.0, matcher=matching_runs_away_on_marked_titles)
    try:
        found = await workers.match_each(rules, texts)
        assert [[m.topic for m in matches] for matches in found] == [["drones"], [], []]
        with pytest.raises(MatchError, match="matching 2 articles took longer than 1 s"):
            await workers.match_each(rules, [texts[0], ("RUNAWAY drone factory", "")])
        assert [m.topic for m in (await workers.match_each(rules, texts[:1]))[0]] == ["drones"]  # pool recovered
    finally:
        workers.shutdown()


async def test_a_compressed_page_is_decoded_extracted_and_matched_in_one_worker_call():
    rules = RuleSet.of((TopicConfig(name="drones", rule="drone* AND factory"),), {})
    bomb = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb_body = b"".join(bomb.compress(bytes(2**20)) for _ in range(8)) + bomb.flush()  # 8 MB of zeros
    workers = Workers(workers=1, timeout_s=20)
    try:
        good = FetchedPage("https://news.example/a", gzip.compress(ARTICLE.encode()), content_encoding="gzip")
        read = await workers.read_article(good, rules, "Drone plant opens", "feed text", "feed-summary")
        assert read.body_source == "page" and "attack drones" in read.body
        assert [m.topic for m in read.matches] == ["drones"]
        assert read.body in (await workers.extract(good)).text  # the same page; the body drops its headline

        big = FetchedPage("https://news.example/b", bomb_body, content_encoding="gzip", max_bytes=2**20)
        read = await workers.read_article(
            big, rules, "Drone factory", "drone factory news from the feed", "feed-summary"
        )
        assert read.page is None and "larger than 1.0 MB" in read.page_failure
        assert read.body == "drone factory news from the feed" and [m.topic for m in read.matches] == ["drones"]
        with pytest.raises(ExtractError, match="larger than 1.0 MB"):
            await workers.extract(big)
    finally:
        workers.shutdown()
